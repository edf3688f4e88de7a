//! Health checking of real servers, keepalived style, as a sans-IO state machine.
//!
//! The [`HealthMonitor`] decides *when* to probe each real server and *what* a result means;
//! the driver runs the probes (TCP connect, HTTP GET, script…) and applies the rule changes.
//! It reproduces keepalived's checker semantics (`check_api.c`, `check_tcp.c`,
//! `check_misc.c`, `ipwrapper.c`, spec §5.2):
//!
//! - **Per checker**: probes every `delay_loop`; a failure while up is retried
//!   `retry` times, `delay_before_retry` apart, and the checker goes down on the
//!   `retry + 1`-th consecutive failure, except on its very first probe: keepalived starts
//!   every checker with its retries used up, so a server failing from the start leaves at
//!   once and an alpha checker reports it is down after one failure (`SMTP_CHECK` retries
//!   every cycle); one success brings it up (`HTTP_GET` / `SSL_GET`: the failed URL must
//!   answer and then every URL in a clean pass, `delay_loop` apart);
//!   `alpha` starts it down; the first probe waits 1 s plus a random `warmup` share; a
//!   probe that does not report within `connect_timeout` fails.
//! - **Per real server**: up only when all its checkers are up. Down means removed, or kept
//!   at weight 0 with `inhibit_on_failure`. `MISC_CHECK` with `misc_dynamic` sets the weight
//!   from the exit code.
//! - **Per virtual service**: quorum with hysteresis over the live weight; on loss the
//!   sorry server replaces the live real servers, on gain they come back.
//! - **Operator states** ([`AdminState`]) combine with the checkers (table on
//!   [`HealthMonitor`]).
//!
//! # Calling sequence (quinn style)
//! 1. [`HealthMonitor::new`], then drain [`poll_action`](HealthMonitor::poll_action): the
//!    initial rule commands.
//! 2. Loop: [`poll_probe`](HealthMonitor::poll_probe) until `None` and start each probe;
//!    sleep until [`poll_timeout`](HealthMonitor::poll_timeout) or a probe result; feed
//!    [`handle_probe_result`](HealthMonitor::handle_probe_result) or
//!    [`handle_timeout`](HealthMonitor::handle_timeout); drain `poll_action`.
//!
//! ```
//! use lvs_core::health::*;
//! use lvs_core::rules::{Command, DestConfig, RuleSet, ServiceKey};
//! use lvs_core::time::{Duration, Instant};
//! # struct Zero;
//! # impl rand_core::RngCore for Zero {
//! #     fn next_u32(&mut self) -> u32 { 0 }
//! #     fn next_u64(&mut self) -> u64 { 0 }
//! #     fn fill_bytes(&mut self, d: &mut [u8]) { d.fill(0) }
//! # }
//! let key = ServiceKey::tcp("192.0.2.10".parse().unwrap(), 80);
//! let mut rules = RuleSet::from_text("-A -t 192.0.2.10:80 -s wlc\n").unwrap();
//! let check = CheckSettings::new(CheckKind::Tcp).with_delay_loop(Duration::from_secs(5));
//! let rs = ServerSettings::new(DestConfig::new("10.1.0.11".parse().unwrap(), 80), check);
//! let spec = ServiceSpec { key, settings: ServiceHealthSettings::default(), servers: vec![rs] };
//! let mut mon = HealthMonitor::new(Instant::ZERO, vec![spec], &mut Zero).unwrap();
//! while let Some(Action::Rule(cmd)) = mon.poll_action() { rules.apply(&cmd).unwrap(); }
//! assert_eq!(rules.service(&key).unwrap().1.len(), 1); // added at start (no alpha)
//!
//! // warmup drew 0: the first probe is due after keepalived's 1 s bootstrap delay
//! assert_eq!(mon.poll_timeout(), Some(Instant::from_secs(1)));
//! let now = Instant::from_secs(1);
//! let probe = mon.poll_probe(now).unwrap();
//! mon.handle_probe_result(now, probe.id, ProbeOutcome::Success).unwrap();
//! assert!(mon.poll_action().is_none()); // already in the pool
//! // retry 1: a failure is retried 1 s later, the second one takes the server out
//! let now = Instant::from_secs(6);
//! let probe = mon.poll_probe(now).unwrap();
//! mon.handle_probe_result(now, probe.id, ProbeOutcome::Failure(FailureReason::Refused)).unwrap();
//! assert!(mon.poll_action().is_none());
//! let now = Instant::from_secs(7);
//! let probe = mon.poll_probe(now).unwrap();
//! mon.handle_probe_result(now, probe.id, ProbeOutcome::Timeout).unwrap();
//! assert!(matches!(mon.poll_action(), Some(Action::Rule(Command::DeleteDest { .. }))));
//! ```

//! # Differences from keepalived
//! - Operator states (online / draining / offline) are not a keepalived feature; they combine
//!   with the checkers as the table on [`HealthMonitor`] says, and only online servers count
//!   towards the quorum.
//! - A sorry server with the address and port of a real server is refused
//!   ([`HealthError::DuplicateDest`]); keepalived shares the rule between the two.
//! - A `MISC_CHECK` script that outlives its timeout fails at the deadline; keepalived first
//!   sends SIGTERM and SIGKILL (2 s apart) and fails it when it dies.
//! - Not modelled: configuration reload (`migrate_checkers`), `ha_suspend`, HTTP
//!   `fast_recovery`, BFD / FILE checkers and `track_file` weights, virtual server groups,
//!   SMTP / SNMP / FIFO alerts, and keepalived's `rs_init_notifies` option (off by default:
//!   no notifications for the start-up state).

mod monitor;
mod settings;

pub use monitor::{
    Action, FailureReason, HealthError, HealthMonitor, Notification, ProbeId, ProbeOutcome,
    ProbeRequest, ServerId, ServerStatus,
};
pub use settings::{
    AdminState, CheckKind, CheckSettings, ServerSettings, ServiceHealthSettings, ServiceSpec,
};
