//! The trace language of `lvs-sim sched`: one event per line, parsed strictly.
//!
//! ```text
//! at <seconds>                         advance the clock (absolute, never backwards; up to 9 decimals)
//! syn <client-ip>:<port> <vip>:<port>  a TCP SYN from a client
//! ack|fin|rst <client> <vip>           a client -> director packet of that flow
//! reply-syn|reply-ack|reply-fin|reply-rst <client> <vip>   the reply direction
//! udp <client> <vip>                   a UDP datagram from a client
//! tcp-fwmark <mark> <client> <vip>     a SYN that arrives with that firewall mark
//! rule <ipvsadm arguments>             apply one rule line now
//! list [--stats|--rate|-c|--thresholds|--persistent-conn|--tun-info] [--exact] [--nosort]
//! save                                 the rules as `ipvsadm -S -n` prints them
//! ```
//!
//! Words are separated by spaces and tabs; a `#` starts a comment that runs to the end of the
//! line; blank lines are skipped; a trailing carriage return is ignored. Addresses are numeric
//! only: `a.b.c.d:port` or `[ipv6]:port`, the port always given; a client and its virtual
//! address are of one family. Nothing is guessed: an unknown keyword, a bad address, a missing
//! or extra field, a time going backwards is a [`TraceError`] naming the line and the column
//! (in characters, 1-based) and what was expected.
//!
//! ```
//! use lvs_sim::trace::{parse, EventKind, TraceErrorKind};
//! let trace = parse("at 1.5\nsyn 203.0.113.9:5000 10.0.0.1:80  # first client\n").unwrap();
//! assert_eq!(trace.events.len(), 2);
//! assert_eq!(trace.events[1].line, 2);
//! assert!(matches!(trace.events[1].kind, EventKind::Tcp { .. }));
//! let err = parse("at 2\nat 1\n").unwrap_err();
//! assert_eq!((err.line, err.column), (2, 4));
//! assert!(matches!(err.kind, TraceErrorKind::TimeBackwards { .. }));
//! ```

use core::fmt;
use core::net::{IpAddr, SocketAddr};

use lvs_core::rules::listing::{ListFormat, ListOptions};
use lvs_core::rules::{parse_line, Command, ParseErrorKind};
use lvs_core::time::Instant;

/// A whole parsed trace: its events in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// The events, in trace order, each with its line.
    pub events: Vec<Event>,
}

/// One event of a trace and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// 1-based line number in the trace.
    pub line: usize,
    /// 1-based column of the keyword.
    pub column: usize,
    /// What happens.
    pub kind: EventKind,
}

/// The TCP flag a `syn`, `ack`, `fin` or `rst` event carries (and its `reply-` forms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpFlag {
    /// `syn` (from the client: SYN; in reply: SYN+ACK).
    Syn,
    /// `ack`: ACK only.
    Ack,
    /// `fin`: FIN+ACK.
    Fin,
    /// `rst`: RST.
    Rst,
}

impl TcpFlag {
    /// The TCP flags byte of the segment. A client's `syn` is a bare SYN, a `reply-syn` a
    /// SYN+ACK; FIN carries ACK as real stacks send it. IPVS classifies RST > SYN > FIN > ACK,
    /// so the extra ACK bits change nothing in the state machine.
    pub fn bits(self, reply: bool) -> u8 {
        const FIN: u8 = 0x01;
        const SYN: u8 = 0x02;
        const RST: u8 = 0x04;
        const ACK: u8 = 0x10;
        match self {
            TcpFlag::Syn if reply => SYN | ACK,
            TcpFlag::Syn => SYN,
            TcpFlag::Ack => ACK,
            TcpFlag::Fin => FIN | ACK,
            TcpFlag::Rst => RST,
        }
    }

    /// The keyword without `reply-`.
    pub fn name(self) -> &'static str {
        match self {
            TcpFlag::Syn => "syn",
            TcpFlag::Ack => "ack",
            TcpFlag::Fin => "fin",
            TcpFlag::Rst => "rst",
        }
    }
}

/// What one trace line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `at <seconds>`: the clock moves to this instant (never backwards).
    At(Instant),
    /// `syn|ack|fin|rst` from the client, or `reply-*` from the real server of the flow.
    Tcp {
        /// The segment's flag.
        flag: TcpFlag,
        /// `reply-*`: the real server's answer, sent to the client.
        reply: bool,
        /// Client address and port.
        client: SocketAddr,
        /// Virtual address and port.
        vip: SocketAddr,
    },
    /// `udp <client> <vip>`: a datagram from the client.
    Udp {
        /// Client address and port.
        client: SocketAddr,
        /// Virtual address and port.
        vip: SocketAddr,
    },
    /// `tcp-fwmark <mark> <client> <vip>`: a SYN carrying a firewall mark.
    TcpFwmark {
        /// The packet's firewall mark (0 means none).
        mark: u32,
        /// Client address and port.
        client: SocketAddr,
        /// Virtual (destination) address and port.
        vip: SocketAddr,
    },
    /// `rule <ipvsadm arguments>`: one rule command, applied when the event runs.
    Rule {
        /// The command.
        command: Command,
        /// 1-based column of the rule's first word after `rule` (and after a leading
        /// `ipvsadm`, which the rule language ignores): where a refusal points.
        column: usize,
    },
    /// `list [options]`: print `ipvsadm -L -n` with these options.
    List(ListRequest),
    /// `save`: print `ipvsadm -S -n`.
    Save,
}

/// What a `list` line prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListRequest {
    /// The service listing with these columns and options.
    Services(ListOptions),
    /// `-c`: the connection entries; with `--persistent-conn` the engine columns too.
    Conns {
        /// `--persistent-conn` was given.
        persistent_conn: bool,
    },
}

/// A malformed trace line: where, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column (in characters) of the word at fault, or just past the last word when
    /// a field is missing.
    pub column: usize,
    /// What was expected or found.
    pub kind: TraceErrorKind,
}

/// Why a trace line is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceErrorKind {
    /// The first word is not a trace keyword.
    #[error("unknown keyword {0:?} (expected at, syn, ack, fin, rst, reply-syn, reply-ack, reply-fin, reply-rst, udp, tcp-fwmark, rule, list or save)")]
    UnknownKeyword(String),
    /// The line ends before a required field.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A word after the last field of the keyword.
    #[error("unexpected extra field {0:?}")]
    Extra(String),
    /// Not a numeric `a.b.c.d:port` or `[ipv6]:port`.
    #[error("expected {what} as a.b.c.d:port or [ipv6]:port, found {found:?}")]
    BadAddress {
        /// Which address (client or virtual).
        what: &'static str,
        /// The text found.
        found: String,
    },
    /// The client and the virtual address are of different families.
    #[error("virtual address {0:?} is not of the client's address family")]
    MixedFamily(String),
    /// Not a number of seconds (`12`, `0.25`; at most 9 decimals, at most about 584 years).
    #[error("expected seconds as digits with up to 9 decimals, found {0:?}")]
    BadTime(String),
    /// An `at` earlier than the clock.
    #[error("time goes backwards: {found} s is before {previous} s")]
    TimeBackwards {
        /// The clock before this line.
        previous: Seconds,
        /// The time asked for.
        found: Seconds,
    },
    /// Not a firewall mark (plain decimal digits, or `0x` and hex digits, 0..=4294967295).
    #[error("expected a firewall mark 0..=4294967295 (decimal or 0x hex), found {0:?}")]
    BadFwmark(String),
    /// A `list` option that is unknown, repeated or conflicts with another.
    #[error("bad list option {found:?}: {why}")]
    BadListOption {
        /// The option found.
        found: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The arguments of a `rule` line are not an ipvsadm rule (the column points into them).
    #[error("rule: {0}")]
    Rule(ParseErrorKind),
}

/// An instant printed as seconds with its decimals (`12.5`), for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Instant);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.as_nanos();
        let (s, frac) = (n / 1_000_000_000, n % 1_000_000_000);
        if frac == 0 {
            write!(f, "{s}")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{s}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// A word of a line and its 1-based character column.
#[derive(Clone, Copy, Debug)]
struct Word<'a> {
    s: &'a str,
    col: usize,
}

/// The content of a line before any `#`, without a trailing carriage return.
fn strip_comment(line: &str) -> &str {
    let line = line.split('#').next().unwrap_or("");
    line.strip_suffix('\r').unwrap_or(line)
}

/// Splits at spaces and tabs (and a carriage return inside the line, which ends a word too).
fn words(line: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    let mut col = 0;
    for (b, ch) in line.char_indices() {
        col += 1;
        if matches!(ch, ' ' | '\t' | '\r') {
            if let Some((sb, sc)) = start.take() {
                out.push(Word {
                    s: &line[sb..b],
                    col: sc,
                });
            }
        } else if start.is_none() {
            start = Some((b, col));
        }
    }
    if let Some((sb, sc)) = start {
        out.push(Word {
            s: &line[sb..],
            col: sc,
        });
    }
    out
}

/// Parses a whole trace. Stops at the first malformed line; the clock starts at 0.
pub fn parse(text: &str) -> Result<Trace, TraceError> {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if let Some(ev) = parser.line(line, i + 1)? {
            events.push(ev);
        }
    }
    Ok(Trace { events })
}

/// A line-at-a-time trace parser: it keeps the clock, so `at` lines are checked against the
/// lines before them.
///
/// ```
/// use lvs_sim::trace::Parser;
/// let mut p = Parser::new();
/// assert!(p.line("# nothing", 1).unwrap().is_none());
/// assert!(p.line("at 3", 2).unwrap().is_some());
/// assert!(p.line("at 2.999", 3).is_err());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Parser {
    clock: Instant,
}

impl Parser {
    /// A parser with the clock at 0.
    pub fn new() -> Self {
        Parser::default()
    }

    /// The clock after the lines parsed so far.
    pub fn clock(&self) -> Instant {
        self.clock
    }

    /// Parses one line (`line_no` is used in errors). `Ok(None)` for a blank or comment line.
    pub fn line(&mut self, line: &str, line_no: usize) -> Result<Option<Event>, TraceError> {
        let content = strip_comment(line);
        let ws = words(content);
        let Some(first) = ws.first() else {
            return Ok(None);
        };
        let err = |column: usize, kind: TraceErrorKind| TraceError {
            line: line_no,
            column,
            kind,
        };
        // Column just past the last character of the content, for missing fields.
        let end_col = content.chars().count() + 1;
        let mut fields = Fields {
            words: &ws[1..],
            next: 0,
            end_col,
            line: line_no,
        };
        let kind = match first.s {
            "at" => {
                let w = fields.need("a time in seconds")?;
                let t = parse_seconds(w.s)
                    .ok_or_else(|| err(w.col, TraceErrorKind::BadTime(w.s.to_string())))?;
                fields.end()?;
                if t < self.clock {
                    return Err(err(
                        w.col,
                        TraceErrorKind::TimeBackwards {
                            previous: Seconds(self.clock),
                            found: Seconds(t),
                        },
                    ));
                }
                self.clock = t;
                EventKind::At(t)
            }
            "syn" | "ack" | "fin" | "rst" | "reply-syn" | "reply-ack" | "reply-fin"
            | "reply-rst" => {
                let (reply, name) = match first.s.strip_prefix("reply-") {
                    Some(n) => (true, n),
                    None => (false, first.s),
                };
                let flag = match name {
                    "syn" => TcpFlag::Syn,
                    "ack" => TcpFlag::Ack,
                    "fin" => TcpFlag::Fin,
                    _ => TcpFlag::Rst,
                };
                let (client, vip) = fields.flow()?;
                fields.end()?;
                EventKind::Tcp {
                    flag,
                    reply,
                    client,
                    vip,
                }
            }
            "udp" => {
                let (client, vip) = fields.flow()?;
                fields.end()?;
                EventKind::Udp { client, vip }
            }
            "tcp-fwmark" => {
                let w = fields.need("a firewall mark")?;
                let mark = parse_mark(w.s)
                    .ok_or_else(|| err(w.col, TraceErrorKind::BadFwmark(w.s.to_string())))?;
                let (client, vip) = fields.flow()?;
                fields.end()?;
                EventKind::TcpFwmark { mark, client, vip }
            }
            "rule" => {
                let Some(w) = ws.get(1) else {
                    return Err(err(
                        end_col,
                        TraceErrorKind::Missing("ipvsadm rule arguments"),
                    ));
                };
                // The rest of the line after `rule`, as the rule parser's own line; its
                // columns are shifted back onto the trace line.
                let start = content
                    .char_indices()
                    .nth(w.col - 1)
                    .map_or(content.len(), |(b, _)| b);
                let shift = w.col - 1;
                let column = match (ws.get(1), ws.get(2)) {
                    (Some(a), Some(b)) if a.s == "ipvsadm" => b.col,
                    _ => w.col,
                };
                match parse_line(&content[start..]) {
                    Ok(Some(command)) => EventKind::Rule { command, column },
                    // Cannot happen (there is a word), but say so rather than guess.
                    Ok(None) => {
                        return Err(err(
                            end_col,
                            TraceErrorKind::Missing("ipvsadm rule arguments"),
                        ))
                    }
                    Err(e) => return Err(err(e.column + shift, TraceErrorKind::Rule(e.kind))),
                }
            }
            "list" => EventKind::List(parse_list(&ws[1..], line_no)?),
            "save" => {
                fields.end()?;
                EventKind::Save
            }
            other => {
                return Err(err(
                    first.col,
                    TraceErrorKind::UnknownKeyword(other.to_string()),
                ))
            }
        };
        Ok(Some(Event {
            line: line_no,
            column: first.col,
            kind,
        }))
    }
}

/// The fields after a keyword, taken in order.
struct Fields<'a, 'w> {
    words: &'w [Word<'a>],
    next: usize,
    end_col: usize,
    line: usize,
}

impl<'a> Fields<'a, '_> {
    fn err(&self, column: usize, kind: TraceErrorKind) -> TraceError {
        TraceError {
            line: self.line,
            column,
            kind,
        }
    }

    fn need(&mut self, what: &'static str) -> Result<Word<'a>, TraceError> {
        let w = self
            .words
            .get(self.next)
            .copied()
            .ok_or_else(|| self.err(self.end_col, TraceErrorKind::Missing(what)))?;
        self.next += 1;
        Ok(w)
    }

    fn addr(&mut self, what: &'static str) -> Result<(SocketAddr, Word<'a>), TraceError> {
        let w = self.need(what)?;
        let a = parse_socket_addr(w.s).ok_or_else(|| {
            self.err(
                w.col,
                TraceErrorKind::BadAddress {
                    what,
                    found: w.s.to_string(),
                },
            )
        })?;
        Ok((a, w))
    }

    /// `<client> <vip>`, of one family.
    fn flow(&mut self) -> Result<(SocketAddr, SocketAddr), TraceError> {
        let (client, _) = self.addr("the client address")?;
        let (vip, w) = self.addr("the virtual address")?;
        if client.is_ipv4() != vip.is_ipv4() {
            return Err(self.err(w.col, TraceErrorKind::MixedFamily(w.s.to_string())));
        }
        Ok((client, vip))
    }

    fn end(&self) -> Result<(), TraceError> {
        match self.words.get(self.next) {
            Some(w) => Err(self.err(w.col, TraceErrorKind::Extra(w.s.to_string()))),
            None => Ok(()),
        }
    }
}

/// `list` options: at most one column set, `-c` optionally with `--persistent-conn`, and
/// `--exact` / `--nosort` for the service listing; each at most once.
fn parse_list(opts: &[Word<'_>], line: usize) -> Result<ListRequest, TraceError> {
    let bad = |w: &Word<'_>, why: &'static str| TraceError {
        line,
        column: w.col,
        kind: TraceErrorKind::BadListOption {
            found: w.s.to_string(),
            why,
        },
    };
    let mut format: Option<ListFormat> = None;
    let (mut conns, mut persistent, mut exact, mut nosort) = (false, false, false, false);
    for w in opts {
        let flag = match w.s {
            "-c" | "--connection" => &mut conns,
            "--persistent-conn" => &mut persistent,
            "--exact" => &mut exact,
            "--nosort" => &mut nosort,
            "--stats" | "--rate" | "--thresholds" | "--tun-info" => {
                if format.is_some() {
                    return Err(bad(w, "only one of --stats, --rate, --thresholds, --tun-info, --persistent-conn"));
                }
                format = Some(match w.s {
                    "--stats" => ListFormat::Stats,
                    "--rate" => ListFormat::Rate,
                    "--thresholds" => ListFormat::Thresholds,
                    _ => ListFormat::TunInfo,
                });
                continue;
            }
            _ => {
                return Err(bad(
                    w,
                    "expected --stats, --rate, -c, --thresholds, --persistent-conn, --tun-info, --exact or --nosort",
                ))
            }
        };
        if *flag {
            return Err(bad(w, "given twice"));
        }
        *flag = true;
    }
    if persistent && format.is_some() {
        let w = opts
            .iter()
            .find(|w| w.s == "--persistent-conn")
            .copied()
            .unwrap_or(opts[0]);
        return Err(bad(
            &w,
            "only one of --stats, --rate, --thresholds, --tun-info, --persistent-conn",
        ));
    }
    if conns {
        // ipvsadm: -c lists connections; the column options do not apply.
        if let Some(w) = opts
            .iter()
            .find(|w| !matches!(w.s, "-c" | "--connection" | "--persistent-conn"))
        {
            return Err(bad(w, "not allowed with -c (only --persistent-conn is)"));
        }
        return Ok(ListRequest::Conns {
            persistent_conn: persistent,
        });
    }
    let format = if persistent {
        ListFormat::PersistentConn
    } else {
        format.unwrap_or_default()
    };
    Ok(ListRequest::Services(ListOptions {
        format,
        exact,
        nosort,
    }))
}

/// `12`, `12.5`, `0.000000001`: digits, an optional point and 1..=9 decimals.
fn parse_seconds(s: &str) -> Option<Instant> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = int.parse().ok()?;
    let mut nanos: u64 = 0;
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nanos = f.parse::<u64>().ok()? * 10u64.pow(9 - f.len() as u32);
    }
    Some(Instant::from_nanos(
        secs.checked_mul(1_000_000_000)?.checked_add(nanos)?,
    ))
}

/// A firewall mark: decimal digits or `0x` and hex digits, within `u32`.
fn parse_mark(s: &str) -> Option<u32> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        return u32::from_str_radix(hex, 16).ok();
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `a.b.c.d:port` (dotted quad, as std parses it: no short or octal forms) or `[v6]:port`
/// (no zone index); the port is plain decimal digits.
fn parse_socket_addr(s: &str) -> Option<SocketAddr> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        let a: core::net::Ipv6Addr = host.parse().ok()?;
        (IpAddr::V6(a), port)
    } else {
        let (host, port) = s.split_once(':')?;
        let a: core::net::Ipv4Addr = host.parse().ok()?;
        (IpAddr::V4(a), port)
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(SocketAddr::new(host, port.parse().ok()?))
}

/// `a.b.c.d:port` or `[v6]:port` as ipvsadm prints addresses (IPv6 compressed as glibc does).
pub fn fmt_socket_addr(a: SocketAddr) -> String {
    lvs_core::rules::save::addr_port(a.ip(), a.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_core::rules::ServiceKey;

    fn one(line: &str) -> EventKind {
        parse(line).unwrap().events.remove(0).kind
    }

    fn err(text: &str) -> (usize, usize, TraceErrorKind) {
        let e = parse(text).unwrap_err();
        (e.line, e.column, e.kind)
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_keyword() {
        assert_eq!(one("at 0.25"), EventKind::At(Instant::from_millis(250)));
        assert_eq!(
            one("syn 1.2.3.4:5 10.0.0.1:80"),
            EventKind::Tcp {
                flag: TcpFlag::Syn,
                reply: false,
                client: sa("1.2.3.4:5"),
                vip: sa("10.0.0.1:80")
            }
        );
        for (kw, flag, reply) in [
            ("ack", TcpFlag::Ack, false),
            ("fin", TcpFlag::Fin, false),
            ("rst", TcpFlag::Rst, false),
            ("reply-syn", TcpFlag::Syn, true),
            ("reply-ack", TcpFlag::Ack, true),
            ("reply-fin", TcpFlag::Fin, true),
            ("reply-rst", TcpFlag::Rst, true),
        ] {
            assert_eq!(
                one(&format!("{kw} [2001:db8::5]:1000 [2001:db8::1]:443")),
                EventKind::Tcp {
                    flag,
                    reply,
                    client: sa("[2001:db8::5]:1000"),
                    vip: sa("[2001:db8::1]:443")
                },
                "{kw}"
            );
        }
        assert_eq!(
            one("udp 1.2.3.4:53000 10.0.0.1:53"),
            EventKind::Udp {
                client: sa("1.2.3.4:53000"),
                vip: sa("10.0.0.1:53")
            }
        );
        assert_eq!(
            one("tcp-fwmark 0x10 1.2.3.4:1 10.0.0.9:8080"),
            EventKind::TcpFwmark {
                mark: 16,
                client: sa("1.2.3.4:1"),
                vip: sa("10.0.0.9:8080")
            }
        );
        let EventKind::Rule {
            command: Command::EditDest(key, d),
            column: 6,
        } = one("rule -e -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 0")
        else {
            panic!("not an edit");
        };
        assert_eq!(key, ServiceKey::tcp("10.0.0.1".parse().unwrap(), 80));
        assert_eq!(d.weight, 0);
        assert!(matches!(
            one("rule  ipvsadm -C"),
            EventKind::Rule {
                command: Command::Clear,
                column: 15
            }
        ));
        assert_eq!(one("save"), EventKind::Save);
        assert_eq!(
            one("list"),
            EventKind::List(ListRequest::Services(ListOptions::default()))
        );
        assert_eq!(
            one("list --stats --exact"),
            EventKind::List(ListRequest::Services(ListOptions {
                format: ListFormat::Stats,
                exact: true,
                nosort: false
            }))
        );
        assert_eq!(
            one("list --persistent-conn"),
            EventKind::List(ListRequest::Services(ListOptions {
                format: ListFormat::PersistentConn,
                ..ListOptions::default()
            }))
        );
        assert_eq!(
            one("list -c --persistent-conn"),
            EventKind::List(ListRequest::Conns {
                persistent_conn: true
            })
        );
        assert_eq!(
            one("list --rate"),
            EventKind::List(ListRequest::Services(ListOptions {
                format: ListFormat::Rate,
                ..ListOptions::default()
            }))
        );
        assert_eq!(
            one("list --thresholds --nosort"),
            EventKind::List(ListRequest::Services(ListOptions {
                format: ListFormat::Thresholds,
                exact: false,
                nosort: true
            }))
        );
    }

    #[test]
    fn comments_blank_lines_crlf_and_positions() {
        let t = parse("# header\n\n  \t\r\n  at 1 # later\r\n\tsave\r\n").unwrap();
        assert_eq!(t.events.len(), 2);
        assert_eq!((t.events[0].line, t.events[0].column), (4, 3));
        assert_eq!((t.events[1].line, t.events[1].column), (5, 2));
        assert_eq!(t.events[1].kind, EventKind::Save);
        assert!(parse("").unwrap().events.is_empty());
    }

    #[test]
    fn time_forms() {
        assert_eq!(parse_seconds("0"), Some(Instant::ZERO));
        assert_eq!(
            parse_seconds("1.000000001"),
            Some(Instant::from_nanos(1_000_000_001))
        );
        assert_eq!(parse_seconds("360.5"), Some(Instant::from_millis(360_500)));
        for bad in [
            "",
            ".5",
            "5.",
            "1.0000000001",
            "-1",
            "+1",
            "1e3",
            "1,5",
            "0x10",
            "1.2.3",
        ] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
        // u64 nanoseconds: 18446744073.709551615 s is the last instant.
        assert!(parse_seconds("18446744073.709551615").is_some());
        assert_eq!(parse_seconds("18446744073.709551616"), None);
        assert_eq!(parse_seconds("99999999999999999999999"), None);
        // Equal times are fine; the clock is absolute.
        let t = parse("at 5\nat 5\nat 5.5\n").unwrap();
        assert_eq!(t.events[2].kind, EventKind::At(Instant::from_millis(5500)));
        assert_eq!(Seconds(Instant::from_millis(5500)).to_string(), "5.5");
        assert_eq!(Seconds(Instant::from_secs(7)).to_string(), "7");
    }

    #[test]
    fn address_forms() {
        assert_eq!(parse_socket_addr("10.0.0.1:0"), Some(sa("10.0.0.1:0")));
        assert_eq!(parse_socket_addr("[::1]:65535"), Some(sa("[::1]:65535")));
        for bad in [
            "10.0.0.1",
            "10.0.0.1:",
            "10.0.0.1:65536",
            "10.0.0.1:+80",
            "10.1:80",
            "010.0.0.1:80",
            "host:80",
            "::1:80",
            "[::1]",
            "[::1]80",
            "[10.0.0.1]:80",
            "[fe80::1%eth0]:80",
            "[::1]:000080",
        ] {
            assert_eq!(parse_socket_addr(bad), None, "{bad:?}");
        }
        assert_eq!(parse_mark("4294967295"), Some(u32::MAX));
        assert_eq!(parse_mark("4294967296"), None);
        assert_eq!(parse_mark("0xffffffff"), Some(u32::MAX));
        assert_eq!(parse_mark("0x"), None);
        assert_eq!(parse_mark("-1"), None);
    }

    #[test]
    fn error_unknown_keyword() {
        let (l, c, k) = err("at 1\n  connect 1.2.3.4:5 10.0.0.1:80\n");
        assert_eq!((l, c), (2, 3));
        assert_eq!(k, TraceErrorKind::UnknownKeyword("connect".into()));
        // Keywords are case-sensitive: nothing is guessed.
        assert_eq!(err("SYN 1.2.3.4:5 10.0.0.1:80").1, 1);
    }

    #[test]
    fn error_missing_fields_point_past_the_line() {
        let (l, c, k) = err("syn 1.2.3.4:5");
        assert_eq!((l, c), (1, 14));
        assert_eq!(k, TraceErrorKind::Missing("the virtual address"));
        let (_, c, k) = err("udp   # no addresses");
        assert_eq!((c, k), (7, TraceErrorKind::Missing("the client address")));
        let (_, c, k) = err("at");
        assert_eq!((c, k), (3, TraceErrorKind::Missing("a time in seconds")));
        let (_, c, k) = err("tcp-fwmark");
        assert_eq!((c, k), (11, TraceErrorKind::Missing("a firewall mark")));
        let (_, c, k) = err("rule   ");
        assert_eq!(
            (c, k),
            (8, TraceErrorKind::Missing("ipvsadm rule arguments"))
        );
        let (_, c, k) = err("rule # just a comment");
        assert_eq!(
            (c, k),
            (6, TraceErrorKind::Missing("ipvsadm rule arguments"))
        );
    }

    #[test]
    fn error_extra_fields() {
        let (_, c, k) = err("syn 1.2.3.4:5 10.0.0.1:80 10.0.0.2:80");
        assert_eq!((c, k), (27, TraceErrorKind::Extra("10.0.0.2:80".into())));
        let (_, c, k) = err("save now");
        assert_eq!((c, k), (6, TraceErrorKind::Extra("now".into())));
        let (_, c, k) = err("at 1 2");
        assert_eq!((c, k), (6, TraceErrorKind::Extra("2".into())));
    }

    #[test]
    fn error_bad_addresses() {
        let (_, c, k) = err("syn 1.2.3.4 10.0.0.1:80");
        assert_eq!(c, 5);
        assert_eq!(
            k,
            TraceErrorKind::BadAddress {
                what: "the client address",
                found: "1.2.3.4".into()
            }
        );
        let (_, c, k) = err("fin 1.2.3.4:5 www.example.com:80");
        assert_eq!(c, 15);
        assert!(matches!(
            k,
            TraceErrorKind::BadAddress {
                what: "the virtual address",
                ..
            }
        ));
        let (_, c, k) = err("udp 1.2.3.4:5 [2001:db8::1]:53");
        assert_eq!(
            (c, k),
            (15, TraceErrorKind::MixedFamily("[2001:db8::1]:53".into()))
        );
    }

    #[test]
    fn error_bad_time_and_backwards() {
        let (_, c, k) = err("at 1.5s");
        assert_eq!((c, k), (4, TraceErrorKind::BadTime("1.5s".into())));
        let (l, c, k) = err("at 10\nsyn 1.2.3.4:5 10.0.0.1:80\nat 9.5\n");
        assert_eq!((l, c), (3, 4));
        assert_eq!(
            k,
            TraceErrorKind::TimeBackwards {
                previous: Seconds(Instant::from_secs(10)),
                found: Seconds(Instant::from_millis(9500))
            }
        );
        assert_eq!(
            parse("at 10\nat 9.5").unwrap_err().to_string(),
            "line 2, column 4: time goes backwards: 9.5 s is before 10 s"
        );
    }

    #[test]
    fn error_bad_fwmark() {
        let (_, c, k) = err("tcp-fwmark mark 1.2.3.4:5 10.0.0.1:80");
        assert_eq!((c, k), (12, TraceErrorKind::BadFwmark("mark".into())));
    }

    #[test]
    fn error_bad_list_options() {
        let (_, c, k) = err("list --stats --rate");
        assert_eq!(c, 14);
        assert!(matches!(k, TraceErrorKind::BadListOption { found, .. } if found == "--rate"));
        let (_, c, _) = err("list --stats --stats");
        assert_eq!(c, 14);
        let (_, c, k) = err("list -c -c");
        assert_eq!(c, 9);
        assert!(matches!(
            k,
            TraceErrorKind::BadListOption {
                why: "given twice",
                ..
            }
        ));
        let (_, c, _) = err("list -L");
        assert_eq!(c, 6);
        let (_, c, _) = err("list -c --stats");
        assert_eq!(c, 9);
        let (_, c, _) = err("list --stats --persistent-conn");
        assert_eq!(c, 14);
    }

    #[test]
    fn error_rule_columns_point_into_the_trace_line() {
        // `-w 70000` is out of range: the rule parser's column 25 is trace column 30.
        let text = "rule -a -t 10.0.0.1:80 -r 10.1.0.1 -w 70000";
        let e = parse(text).unwrap_err();
        assert_eq!(e.line, 1);
        assert_eq!(&text[e.column - 1..], "70000");
        assert!(matches!(
            e.kind,
            TraceErrorKind::Rule(ParseErrorKind::BadNumber { .. })
        ));
        let e = parse("at 1\n  rule   -X").unwrap_err();
        assert_eq!((e.line, e.column), (2, 10));
        assert!(matches!(e.kind, TraceErrorKind::Rule(_)));
        // A rule line ipvsadm refuses by itself (port 0 without -p).
        let e = parse("rule -A -t 10.0.0.1:0").unwrap_err();
        assert!(matches!(
            e.kind,
            TraceErrorKind::Rule(ParseErrorKind::ZeroPortNotPersistent)
        ));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let (_, c, k) = err("at 1 é x");
        assert_eq!((c, k), (6, TraceErrorKind::Extra("é".into())));
        let (_, c, _) = err("é");
        assert_eq!(c, 1);
        let (_, c, _) = err("rule -A -t é");
        assert!(c >= 9, "{c}");
    }
}
