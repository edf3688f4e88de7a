//! `lvs-sim sched`: plays a [`Trace`] through the director and prints what IPVS would do.
//!
//! The rules are applied at time 0, then each event runs at the trace clock (the last `at`):
//! first the director's timers run up to that time, each at its own deadline (as kernel
//! timers fire at their own time, so a template re-armed by a timer gets its 60 s from the
//! deadline, not from the next event), then the event itself.
//!
//! - `syn`, `udp`, `tcp-fwmark`: the packet goes through [`Director::handle_flow`]; one line
//!   `client -> rip:rport`, `client -> none` (no service, no real server available, or a
//!   packet the service does not schedule, such as an FTP service's data port) or
//!   `client -> drop` (IPVS drops it: the connection's real server was deleted, or our
//!   bounded connection table is full). The kernel answers "none" with an ICMP port
//!   unreachable or passes the packet to its own stack, and "drop" silently; either way the
//!   packet reaches no real server.
//! - `ack`, `fin`, `rst`: the client's packet of that flow; prints nothing.
//! - `reply-*`: the connection is looked up ([`Director::conn`]); its real server sends the
//!   segment from rip:rport to the client. With no connection nothing is sent (a reply IPVS
//!   never saw a connection for is not IPVS's business) and nothing is printed. Only NAT
//!   connections match such a reply: with direct routing or tunnelling the real server
//!   answers the client directly (from the virtual address), IPVS never sees the reply, and
//!   the connection stays in the input-only state machine, as in the kernel.
//! - `rule`: applied with [`Director::apply_command`]. A rule the kernel refuses stops the
//!   run with [`SchedError::RuleRefused`], as `ipvsadm -R` stops at the first failing line
//!   (everything before it has been applied and printed).
//! - `list`, `save`: what ipvsadm prints, from [`Director::snapshot`] and
//!   [`Director::rules`].
//!
//! Packets carry no payload: a TCP segment is 40 bytes over IPv4 (60 over IPv6), a UDP
//! datagram 28 (48); that is what `list --stats` counts.
//!
//! ```
//! use lvs_sim::sched_cmd::run_text;
//! let rules = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m\n";
//! let trace = "syn 1.1.1.1:1000 10.0.0.1:80\nsyn 1.1.1.1:1001 10.0.0.1:80\nsyn 1.1.1.1:1002 10.0.0.1:81\n";
//! let mut out = Vec::new();
//! run_text(rules, trace, &mut out).unwrap();
//! // rr starts with the real server added last (the head of the kernel's list).
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     "1.1.1.1:1000 -> 10.1.0.2:80\n1.1.1.1:1001 -> 10.1.0.1:80\n1.1.1.1:1002 -> none\n",
//! );
//! ```

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use std::io::Write;

use lvs_core::conn::HashKey;
use lvs_core::director::{Director, DirectorConfig, FlowPacket, FlowVerdict, PacketDir};
use lvs_core::rules::listing::{list, list_conns};
use lvs_core::rules::{RuleError, RuleSet, RulesError};
use lvs_core::time::Instant;
use lvs_core::Protocol;

use crate::trace::{self, fmt_socket_addr, Event, EventKind, ListRequest, Trace, TraceError};

/// Why `lvs-sim sched` stopped.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    /// The rules file does not parse, or the kernel would refuse one of its lines.
    #[error("{0}")]
    Rules(RulesError),
    /// The director refused the configuration of the rules file as a whole (for example an
    /// mh service it has no room for).
    #[error("rules refused by the director: {0} (errno {errno})", errno = .0.errno())]
    Director(RuleError),
    /// A trace line is malformed (nothing was run).
    #[error("{0}")]
    Trace(TraceError),
    /// A `rule` line of the trace that the kernel refuses; the run stopped there.
    #[error("line {line}, column {column}: rule refused: {source} (errno {errno})", errno = source.errno())]
    RuleRefused {
        /// 1-based trace line.
        line: usize,
        /// 1-based column of the rule's command word.
        column: usize,
        /// The kernel's answer.
        source: RuleError,
    },
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
}

impl SchedError {
    /// The process exit status for this error: 2 for malformed input (rules or trace), 1 for
    /// a refused trace rule or an output error.
    pub fn exit_status(&self) -> u8 {
        match self {
            SchedError::Rules(_) | SchedError::Director(_) | SchedError::Trace(_) => 2,
            SchedError::RuleRefused { .. } | SchedError::Io(_) => 1,
        }
    }

    /// The error prefixed with the file it is about, as `file:line:column: message`.
    pub fn display_with<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        WithFile { err: self, file }
    }
}

struct WithFile<'a> {
    err: &'a SchedError,
    file: &'a str,
}

impl fmt::Display for WithFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file;
        match self.err {
            SchedError::Rules(e) => match e {
                RulesError::Parse(p) => write!(f, "{file}:{}:{}: {}", p.line, p.column, p.kind),
                RulesError::Apply {
                    line,
                    column,
                    source,
                } => write!(
                    f,
                    "{file}:{line}:{column}: refused: {source} (errno {})",
                    source.errno()
                ),
            },
            SchedError::Director(e) => write!(
                f,
                "{file}: rules refused by the director: {e} (errno {})",
                e.errno()
            ),
            SchedError::Trace(e) => write!(f, "{file}:{}:{}: {}", e.line, e.column, e.kind),
            SchedError::RuleRefused {
                line,
                column,
                source,
            } => write!(
                f,
                "{file}:{line}:{column}: rule refused: {source} (errno {})",
                source.errno()
            ),
            SchedError::Io(e) => write!(f, "writing the output: {e}"),
        }
    }
}

/// Settings of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedOptions {
    /// Room in the connection table (connections and templates at once).
    pub conn_capacity: u32,
    /// Most timer steps run before one event; past that the director's timers run once at
    /// the event's time to catch up (a bound on the work a large `at` jump can cause).
    pub max_timer_steps: u32,
}

impl Default for SchedOptions {
    fn default() -> Self {
        SchedOptions {
            conn_capacity: 1 << 16,
            // 65536 steps: a jump of 36 hours with the rate estimator ticking every 2 s
            // still runs every timer at its own deadline.
            max_timer_steps: 1 << 16,
        }
    }
}

/// The director's hash key for simulations: fixed, so runs are reproducible. (A driver that
/// faces the network draws it from a CSPRNG; a trace is not an adversary.)
const SIM_HASH_KEY: u128 = 0x6c76_732d_7369_6d20_7368_6564_2074_7261;

/// A director being driven by a trace, with the trace's clock.
pub struct SchedRunner {
    director: Director,
    now: Instant,
    options: SchedOptions,
}

impl fmt::Debug for SchedRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedRunner")
            .field("now", &self.now)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SchedRunner {
    /// A director with `rules` applied at time 0.
    pub fn new(rules: &RuleSet, options: SchedOptions) -> Result<Self, RuleError> {
        // Kernel defaults for every sysctl (conn_reuse_mode 1, expire_nodest_conn 0,
        // expire_quiescent_template 0, no conntrack) and a fixed scheduler seed.
        let config = DirectorConfig::new(options.conn_capacity, HashKey::from_u128(SIM_HASH_KEY));
        let mut director = Director::new(config);
        director.apply_rules(Instant::ZERO, rules)?;
        Ok(SchedRunner {
            director,
            now: Instant::ZERO,
            options,
        })
    }

    /// The director, for inspection.
    pub fn director(&self) -> &Director {
        &self.director
    }

    /// The trace clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Runs the director's timers due up to `now`, each at its own deadline, at most
    /// `max_timer_steps` calls; past that (a long jump of the clock with the 2 s rate
    /// estimator ticking) the rest runs late, at `now`: the director then samples the rates
    /// once and expires what is due, a bounded number of entries per call.
    fn run_timers(&mut self, now: Instant) {
        let mut steps = 0;
        while let Some(deadline) = self.director.poll_timeout() {
            if deadline > now || steps >= self.options.max_timer_steps {
                break;
            }
            // Never behind the clock already reached (a deadline in the past fires now).
            let at = deadline.max(self.now);
            self.director.handle_timeout(at);
            self.now = at;
            steps += 1;
        }
        // Catch-up at `now`: each call expires at most the director's expire limit, so the
        // calls are bounded by the table's capacity.
        let mut calls = 0u64;
        let bound = u64::from(self.options.conn_capacity) + 2;
        while calls < bound
            && self
                .director
                .poll_timeout()
                .is_some_and(|deadline| deadline <= now)
        {
            if !self.director.handle_timeout(now) {
                break;
            }
            calls += 1;
        }
    }

    /// Runs one event and writes what it prints to `out`.
    pub fn run_event(&mut self, ev: &Event, out: &mut dyn Write) -> Result<(), SchedError> {
        let at = match ev.kind {
            EventKind::At(t) => t.max(self.now),
            _ => self.now,
        };
        self.run_timers(at);
        self.now = at;
        let now = self.now;
        match &ev.kind {
            EventKind::At(_) => {}
            EventKind::Tcp {
                flag,
                reply: false,
                client,
                vip,
            } => {
                let pkt = FlowPacket {
                    protocol: Protocol::Tcp,
                    src: *client,
                    dst: *vip,
                    fwmark: 0,
                    tcp_flags: flag.bits(false),
                    len: tcp_len(client),
                    dir: PacketDir::FromClient,
                };
                let verdict = self.director.handle_flow(now, &pkt);
                if *flag == trace::TcpFlag::Syn {
                    print_verdict(out, *client, &verdict)?;
                }
            }
            EventKind::Tcp {
                flag,
                reply: true,
                client,
                vip,
            } => {
                // No connection: the reply never reaches IPVS's books; nothing to do.
                if let Some(conn) = self.director.conn(Protocol::Tcp, *client, *vip) {
                    let pkt = FlowPacket {
                        protocol: Protocol::Tcp,
                        src: conn.dest,
                        dst: *client,
                        fwmark: 0,
                        tcp_flags: flag.bits(true),
                        len: tcp_len(client),
                        dir: PacketDir::FromServer,
                    };
                    self.director.handle_flow(now, &pkt);
                }
            }
            EventKind::Udp { client, vip } => {
                let pkt = FlowPacket {
                    protocol: Protocol::Udp,
                    src: *client,
                    dst: *vip,
                    fwmark: 0,
                    tcp_flags: 0,
                    len: udp_len(client),
                    dir: PacketDir::FromClient,
                };
                let verdict = self.director.handle_flow(now, &pkt);
                print_verdict(out, *client, &verdict)?;
            }
            EventKind::TcpFwmark { mark, client, vip } => {
                let pkt = FlowPacket {
                    protocol: Protocol::Tcp,
                    src: *client,
                    dst: *vip,
                    fwmark: *mark,
                    tcp_flags: trace::TcpFlag::Syn.bits(false),
                    len: tcp_len(client),
                    dir: PacketDir::FromClient,
                };
                let verdict = self.director.handle_flow(now, &pkt);
                print_verdict(out, *client, &verdict)?;
            }
            EventKind::Rule { command, column } => {
                self.director
                    .apply_command(now, command)
                    .map_err(|source| SchedError::RuleRefused {
                        line: ev.line,
                        column: *column,
                        source,
                    })?;
            }
            EventKind::List(ListRequest::Services(opts)) => {
                let snap = self.director.snapshot(now);
                out.write_all(list(&snap, opts).as_bytes())?;
            }
            EventKind::List(ListRequest::Conns { persistent_conn }) => {
                let entries = self.director.connections(now);
                out.write_all(list_conns(&entries, *persistent_conn).as_bytes())?;
            }
            EventKind::Save => {
                out.write_all(self.director.rules().save().as_bytes())?;
            }
        }
        Ok(())
    }
}

/// A TCP segment without payload: IP header + 20 bytes.
fn tcp_len(client: &SocketAddr) -> u32 {
    ip_header_len(client.ip()) + 20
}

/// A UDP datagram without payload: IP header + 8 bytes.
fn udp_len(client: &SocketAddr) -> u32 {
    ip_header_len(client.ip()) + 8
}

fn ip_header_len(ip: IpAddr) -> u32 {
    if ip.is_ipv4() {
        20
    } else {
        40
    }
}

/// `client -> rip:rport`, `client -> none` or `client -> drop`.
fn print_verdict(
    out: &mut dyn Write,
    client: SocketAddr,
    verdict: &FlowVerdict,
) -> std::io::Result<()> {
    let client = fmt_socket_addr(client);
    match verdict {
        FlowVerdict::Forward { dest, .. } => {
            writeln!(out, "{client} -> {}", fmt_socket_addr(*dest))
        }
        // Not IPVS's packet (no service), or a service with no available real server.
        FlowVerdict::NoDestination | FlowVerdict::NotOurs => writeln!(out, "{client} -> none"),
        FlowVerdict::Drop(_) => writeln!(out, "{client} -> drop"),
        // A reply is only ever the answer to a server's packet.
        FlowVerdict::Reply { .. } => writeln!(out, "{client} -> none"),
    }
}

/// Runs a parsed trace against `rules` with the default [`SchedOptions`].
pub fn run(rules: &RuleSet, trace: &Trace, out: &mut dyn Write) -> Result<(), SchedError> {
    run_with(rules, trace, SchedOptions::default(), out)
}

/// Runs a parsed trace against `rules` with `options`.
pub fn run_with(
    rules: &RuleSet,
    trace: &Trace,
    options: SchedOptions,
    out: &mut dyn Write,
) -> Result<(), SchedError> {
    let mut runner = SchedRunner::new(rules, options).map_err(SchedError::Director)?;
    for ev in &trace.events {
        runner.run_event(ev, out)?;
    }
    Ok(())
}

/// Parses the rules and the whole trace (a malformed trace runs nothing), then runs it with
/// the default [`SchedOptions`].
pub fn run_text(rules: &str, trace: &str, out: &mut dyn Write) -> Result<(), SchedError> {
    run_text_with(rules, trace, SchedOptions::default(), out)
}

/// [`run_text`] with `options`.
pub fn run_text_with(
    rules: &str,
    trace: &str,
    options: SchedOptions,
    out: &mut dyn Write,
) -> Result<(), SchedError> {
    let rules = RuleSet::from_text(rules).map_err(SchedError::Rules)?;
    let trace = trace::parse(trace).map_err(SchedError::Trace)?;
    run_with(&rules, &trace, options, out)
}
