//! Input settings of the health monitor, with keepalived's defaults (spec §5.2, §7).
//!
//! These are *resolved* settings: keepalived's cascade (virtual_server → real_server →
//! checker, spec §5.2) is applied by whoever builds them (the keepalived.conf front-end), so
//! every field here holds the value that applies to this checker.

use crate::rules::{DestConfig, ServiceKey};
use crate::time::Duration;

/// Which keepalived checker a probe runs. The monitor only uses it to pick defaults
/// (`retry`, the MISC timeout) and the MISC exit-code rules; the driver uses it, with the
/// checker index, to know what to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// `TCP_CHECK`: a TCP connect.
    Tcp,
    /// `HTTP_GET`: an HTTP request, status code and optional digest compared.
    Http,
    /// `SSL_GET`: as `HTTP_GET` over TLS.
    Ssl,
    /// `SMTP_CHECK`: an SMTP greeting and HELO.
    Smtp,
    /// `DNS_CHECK`: a DNS query (`retry` defaults to 3).
    Dns,
    /// `UDP_CHECK`: a UDP datagram (optionally requiring a reply).
    Udp,
    /// `PING_CHECK`: an ICMP echo.
    Ping,
    /// `MISC_CHECK`: an external script; its exit code is the result (`retry` defaults to 0,
    /// the timeout to `delay_loop`).
    Misc,
}

impl CheckKind {
    /// keepalived's default `retry` for the checker: 1, except `DNS_CHECK` 3 and
    /// `MISC_CHECK` 0 (spec §5.2; `check_misc.c` sets `default_retry = 0`).
    pub const fn default_retry(self) -> u32 {
        match self {
            CheckKind::Dns => 3,
            CheckKind::Misc => 0,
            _ => 1,
        }
    }
}

/// Settings of one checker of one real server.
///
/// ```
/// use lvs_core::health::{CheckKind, CheckSettings};
/// use lvs_core::time::Duration;
/// let tcp = CheckSettings::new(CheckKind::Tcp);
/// assert_eq!(tcp.delay_loop, Duration::from_secs(60));
/// assert_eq!(tcp.connect_timeout, Duration::from_secs(5));
/// assert_eq!((tcp.retry, tcp.delay_before_retry), (1, Duration::from_secs(1)));
/// assert_eq!(tcp.warmup, tcp.delay_loop);
/// assert_eq!(CheckSettings::new(CheckKind::Misc).retry, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckSettings {
    /// The checker type.
    pub kind: CheckKind,
    /// `delay_loop`: interval between probes of a settled checker (default 60 s). Must not be
    /// zero.
    pub delay_loop: Duration,
    /// `connect_timeout` (default 5 s); for `MISC_CHECK` this is `misc_timeout` (default
    /// `delay_loop`). The driver enforces it; the monitor also fails a probe that has not
    /// reported by then.
    pub connect_timeout: Duration,
    /// `retry` (old name `nb_get_retry`): failures tolerated while up before the checker goes
    /// down, so it goes down on the `retry + 1`-th consecutive failure. Not on the first
    /// probe: keepalived starts every checker (but `SMTP_CHECK`) with its retries used up.
    pub retry: u32,
    /// `delay_before_retry`: spacing of those retries (default 1 s; `DNS_CHECK`:
    /// `delay_loop`).
    pub delay_before_retry: Duration,
    /// `alpha`: start with this checker down, so the server is out of the pool until the
    /// first success (default off).
    pub alpha: bool,
    /// `warmup`: the first probe waits 1 s (keepalived's `BOOTSTRAP_DELAY`) plus a random
    /// delay uniform in `0..=warmup` (default `delay_loop`; zero disables the random part).
    pub warmup: Duration,
    /// `misc_dynamic` (`MISC_CHECK` only): exit 0 = up at the configured weight, 1 = down,
    /// 2..=255 = up with weight `code − 2`. Without it every non-zero exit is a failure.
    pub dynamic_weight: bool,
    /// `HTTP_GET` / `SSL_GET` only: the number of `url { }` blocks (default 1; 0 is taken as
    /// 1). keepalived fetches them one per probe, `delay_loop` apart; the probe request
    /// names the URL index.
    pub urls: usize,
}

impl CheckSettings {
    /// keepalived's defaults for a checker kind.
    pub const fn new(kind: CheckKind) -> Self {
        let delay_loop = Duration::from_secs(60);
        CheckSettings {
            kind,
            delay_loop,
            connect_timeout: match kind {
                // misc_timeout unset: the script gets the virtual server's delay_loop
                // (check_misc.c, misc_check_thread).
                CheckKind::Misc => delay_loop,
                _ => Duration::from_secs(5),
            },
            retry: kind.default_retry(),
            delay_before_retry: match kind {
                // check_dns.c: default_delay_before_retry = 0, "will default to delay_loop".
                CheckKind::Dns => delay_loop,
                _ => Duration::from_secs(1),
            },
            alpha: false,
            warmup: delay_loop,
            dynamic_weight: false,
            urls: 1,
        }
    }

    /// The same settings with `delay_loop` set and the defaults that follow it updated:
    /// `warmup`, the `MISC_CHECK` timeout and the `DNS_CHECK` `delay_before_retry`.
    pub const fn with_delay_loop(mut self, delay_loop: Duration) -> Self {
        self.delay_loop = delay_loop;
        self.warmup = delay_loop;
        match self.kind {
            CheckKind::Misc => self.connect_timeout = delay_loop,
            CheckKind::Dns => self.delay_before_retry = delay_loop,
            _ => {}
        }
        self
    }
}

/// What the operator has set a real server to, as in cluster managers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AdminState {
    /// In service: its rule follows the checkers and the quorum.
    #[default]
    Online,
    /// Paused: keeps its existing flows and takes no new ones (kept at weight 0 while its
    /// checkers say up). Contributes nothing to the quorum.
    Draining,
    /// Out of service: its rule is removed whatever the checkers say. Its checkers keep
    /// running, so bringing it back online re-adds it only if they say up.
    Offline,
}

/// Settings of one real server of a monitored service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    /// The real server's rule when it is in the pool; `dest.weight` is keepalived's
    /// configured weight (`iweight`).
    pub dest: DestConfig,
    /// `inhibit_on_failure`: when down, keep the rule with weight 0 instead of removing it.
    pub inhibit_on_failure: bool,
    /// `notify_up` script, reported with the up notification.
    pub notify_up: Option<String>,
    /// `notify_down` script, reported with the down notification.
    pub notify_down: Option<String>,
    /// Its checkers; the server is up only when all of them are up. No checker = always up.
    pub checkers: Vec<CheckSettings>,
    /// The operator state it starts in.
    pub admin: AdminState,
}

impl ServerSettings {
    /// A server with one checker, no scripts, not inhibited, online.
    pub fn new(dest: DestConfig, checker: CheckSettings) -> Self {
        ServerSettings {
            dest,
            inhibit_on_failure: false,
            notify_up: None,
            notify_down: None,
            checkers: vec![checker],
            admin: AdminState::Online,
        }
    }
}

/// Per virtual service settings: quorum, hysteresis, sorry server (spec §5.2).
///
/// ```
/// use lvs_core::health::ServiceHealthSettings;
/// let s = ServiceHealthSettings::default();
/// assert_eq!((s.quorum, s.hysteresis), (1, 0));
/// assert!(s.sorry_server.is_none() && !s.sorry_server_inhibit && !s.omega);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceHealthSettings {
    /// `quorum`: the live weight needed (default 1, at least 1).
    pub quorum: u32,
    /// `hysteresis` (default 0): quorum is lost when the live weight is 0 or below
    /// `quorum − hysteresis`, gained when it reaches `quorum + hysteresis`.
    pub hysteresis: u32,
    /// `sorry_server`: added when quorum is lost (the live real servers are then taken out).
    pub sorry_server: Option<DestConfig>,
    /// `sorry_server_inhibit`: the sorry server stays in the service at weight 0 while not
    /// needed, instead of being removed.
    pub sorry_server_inhibit: bool,
    /// `quorum_up` script, reported with the quorum-up notification.
    pub quorum_up: Option<String>,
    /// `quorum_down` script, reported with the quorum-down notification.
    pub quorum_down: Option<String>,
    /// `omega`: on shutdown, report the server-down and quorum-down notifications.
    pub omega: bool,
}

impl Default for ServiceHealthSettings {
    fn default() -> Self {
        ServiceHealthSettings {
            quorum: 1,
            hysteresis: 0,
            sorry_server: None,
            sorry_server_inhibit: false,
            quorum_up: None,
            quorum_down: None,
            omega: false,
        }
    }
}

/// One monitored virtual service: its key, its settings and its real servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The service the rule commands name. It must already exist in the rules the caller
    /// applies them to; the monitor manages real servers only.
    pub key: ServiceKey,
    /// Quorum and sorry server.
    pub settings: ServiceHealthSettings,
    /// Real servers, indexed by [`ServerId::server`](super::ServerId::server).
    pub servers: Vec<ServerSettings>,
}
