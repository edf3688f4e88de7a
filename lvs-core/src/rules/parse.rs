//! The ipvsadm rule language as `ipvsadm -R` reads it.
//!
//! One command per line, split at spaces, tabs and carriage returns; a `#` starts a comment
//! that runs to the end of the line; blank lines and comment lines are skipped; a leading
//! `ipvsadm` word is ignored. Options follow popt's rules, as ipvsadm's do: short options may
//! be clustered and take their value attached or as the next word (`-w5`, `-w 5`), long
//! options take `--name value` or `--name=value`, `-p`'s timeout is optional (the next word
//! is taken only when it does not start with `-`), options may come in any order after the
//! command, and `--` ends the options.
//!
//! Accepted commands: `-A`/`--add-service`, `-E`/`--edit-service`, `-D`/`--delete-service`,
//! `-a`/`--add-server`, `-e`/`--edit-server`, `-d`/`--delete-server`, `-C`/`--clear`,
//! `-Z`/`--zero`, `--set tcp tcpfin udp`. The listing, save, restore and daemon commands are
//! refused.
//!
//! Differences from ipvsadm, all in what is refused, never in what an accepted line means:
//! - **Only numeric addresses and ports**: no host or service names are looked up (the core
//!   does no I/O). IPv4 must be dotted quad (`inet_aton`'s short and octal forms such as `10.1`
//!   or `010.0.0.1` are refused), and a bracketed address must be IPv6.
//! - Numbers are plain decimal digits (no sign, no trailing junk that `atoi` would ignore).
//! - Scheduler names must be one of the fourteen schedulers (the kernel would answer
//!   `ENOENT` for others; `none` is not supported).
//! - `#` starts a comment anywhere on a line (ipvsadm's own reader documents this but its
//!   check never fires), and only a *leading* `ipvsadm` word is dropped.
//!
//! Everything ipvsadm itself refuses is a [`ParseError`] here: option/command combinations,
//! duplicate options, ranges (`-w 0..65535`, `-p 1..2678400`, `-x`/`-y 0..2147483647`,
//! `--tun-port 1..65535`, fwmark `1..4294967295`, IPv6 `-M 1..128`), `-6` before `-f`, a port-0
//! service without `-p`, `-o` on TCP/SCTP, mixed families without `-i`, tunnel options with
//! `-g`/`-m` or that the tunnel type does not take, gue without `--tun-port`, `sh-*`/`mh-*`
//! flags without sh/mh. What only the kernel refuses (existing or missing services and
//! servers, `-y` above `-x`, an unknown `--pe`) is a [`RuleError`](super::RuleError) when
//! the command is applied.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

use super::error::{ParseError, ParseErrorKind as K};
use super::model::{
    Command, DestConfig, Family, Forward, PersistMask, Persistence, ServiceConfig, ServiceKey,
    Timeouts, TunnelConfig, TunnelCsum, TunnelType,
};
use crate::protocol::Protocol;
use crate::sched::{SchedFlags, SchedKind};

/// Parses one line. `Ok(None)` for a blank or comment-only line. Errors report line 1.
///
/// ```
/// use lvs_core::rules::{parse_line, Command};
/// let cmd = parse_line("-a -t 10.0.0.1:80 -r 10.1.0.1 -m -w 3").unwrap().unwrap();
/// let Command::AddDest(_, dest) = cmd else { panic!() };
/// assert_eq!((dest.port, dest.weight), (80, 3)); // port taken from the service
/// assert_eq!(parse_line("  # nothing here").unwrap(), None);
/// let err = parse_line("-A -t 10.0.0.1:80 -w 3").unwrap_err();
/// assert_eq!((err.line, err.column), (1, 19));
/// ```
pub fn parse_line(line: &str) -> Result<Option<Command>, ParseError> {
    Ok(parse_line_at(line, 1)?.map(|(_, cmd)| cmd))
}

/// Parses a whole rule text: each command with its 1-based line number. Stops at the first
/// bad line.
pub fn parse(text: &str) -> Result<Vec<(usize, Command)>, ParseError> {
    Ok(parse_positioned(text)?
        .into_iter()
        .map(|(line, _, cmd)| (line, cmd))
        .collect())
}

/// [`parse`] with the column of each command word too.
pub(crate) fn parse_positioned(text: &str) -> Result<Vec<(usize, usize, Command)>, ParseError> {
    commands(text).collect()
}

/// The commands of `text` in order, each with its line and column, parsed one line at a time
/// as they are taken (blank and comment lines give none).
pub(crate) fn commands(
    text: &str,
) -> impl Iterator<Item = Result<(usize, usize, Command), ParseError>> + '_ {
    text.split('\n').enumerate().filter_map(|(i, line)| {
        parse_line_at(line, i + 1)
            .map(|c| c.map(|(col, cmd)| (i + 1, col, cmd)))
            .transpose()
    })
}

/// Parses `-t addr:port`, `-u ...`, `--sctp-service ...`, `-f mark [-6]` (and the long
/// forms), the way [`ServiceKey`]'s `Display` writes them.
///
/// ```
/// use lvs_core::rules::ServiceKey;
/// let k: ServiceKey = "-t [2001:db8::1]:443".parse().unwrap();
/// assert_eq!(k.to_string(), "-t [2001:db8::1]:443");
/// assert!("-t example.com:80".parse::<ServiceKey>().is_err());
/// ```
impl FromStr for ServiceKey {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Parsed as the service of a `-Z` line; columns are shifted back.
        const PREFIX: &str = "-Z ";
        let shift = |mut e: ParseError| {
            e.column = e.column.saturating_sub(PREFIX.len()).max(1);
            e
        };
        match parse_line(&format!("{PREFIX}{s}")).map_err(shift)? {
            Some(Command::Zero(Some(key))) => Ok(key),
            _ => Err(ParseError {
                line: 1,
                column: 1,
                kind: K::MissingCommand,
            }),
        }
    }
}

/// A word of a line and its 1-based column.
#[derive(Clone, Copy, Debug)]
struct Tok<'a> {
    s: &'a str,
    col: usize,
}

/// Splits at space, tab, CR and LF; stops at `#`.
fn tokenize(line: &str) -> Vec<Tok<'_>> {
    let mut toks = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    let mut col = 0;
    let mut end_at = line.len();
    for (b, ch) in line.char_indices() {
        col += 1;
        if ch == '#' {
            end_at = b;
            break;
        }
        if matches!(ch, ' ' | '\t' | '\r' | '\n') {
            if let Some((sb, sc)) = start.take() {
                toks.push(Tok {
                    s: &line[sb..b],
                    col: sc,
                });
            }
        } else if start.is_none() {
            start = Some((b, col));
        }
    }
    if let Some((sb, sc)) = start {
        toks.push(Tok {
            s: &line[sb..end_at],
            col: sc,
        });
    }
    toks
}

/// The longest piece of outside text quoted in an error message.
const SNIPPET_MAX: usize = 64;

fn snippet(s: &str) -> String {
    match s.char_indices().nth(SNIPPET_MAX) {
        Some((b, _)) => format!("{}...", &s[..b]),
        None => s.to_string(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    AddDest,
    DelDest,
    EditDest,
    Set,
    Zero,
}

impl Cmd {
    /// ipvsadm's `cmdnames`.
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Set => "set",
            Cmd::Zero => "zero",
        }
    }

    /// ipvsadm's `commands_v_options` row for the options a rule line can carry:
    /// `b'+'` required, `b'x'` illegal, `b' '` optional; indexed by [`Bit`].
    fn table(self) -> &'static [u8; NBITS] {
        // Columns, in [`BITS`] order: service, -s, -p, -M, -r, forward, -w, -x, -y, -o, --pe,
        // -b, --tun-type, --tun-port, --tun-nocsum, --tun-csum, --tun-remcsum.
        match self {
            Cmd::Add | Cmd::Edit => b"+   xxxxx   xxxxx",
            Cmd::Del => b"+xxxxxxxxxxxxxxxx",
            Cmd::DelDest => b"+xxx+xxxxxxxxxxxx",
            Cmd::AddDest | Cmd::EditDest => b"+xxx+    xxx     ",
            Cmd::Flush | Cmd::Set => b"xxxxxxxxxxxxxxxxx",
            Cmd::Zero => b" xxxxxxxxxxxxxxxx",
        }
    }
}

/// The options a rule line may carry, in ipvsadm's `optnames` order (which decides which
/// error is reported first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bit {
    Service,
    Sched,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Ops,
    Pe,
    SchedFlags,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

const NBITS: usize = 17;

const BITS: [Bit; NBITS] = [
    Bit::Service,
    Bit::Sched,
    Bit::Persistent,
    Bit::Netmask,
    Bit::Server,
    Bit::Forward,
    Bit::Weight,
    Bit::UThreshold,
    Bit::LThreshold,
    Bit::Ops,
    Bit::Pe,
    Bit::SchedFlags,
    Bit::TunType,
    Bit::TunPort,
    Bit::TunNocsum,
    Bit::TunCsum,
    Bit::TunRemcsum,
];

impl Bit {
    /// ipvsadm's `optnames`.
    fn name(self) -> &'static str {
        match self {
            Bit::Service => "service-address",
            Bit::Sched => "scheduler",
            Bit::Persistent => "persistent",
            Bit::Netmask => "netmask",
            Bit::Server => "real-server",
            Bit::Forward => "forwarding-method",
            Bit::Weight => "weight",
            Bit::UThreshold => "u-threshold",
            Bit::LThreshold => "l-threshold",
            Bit::Ops => "ops",
            Bit::Pe => "pe",
            Bit::SchedFlags => "sched-flags",
            Bit::TunType => "tun-type",
            Bit::TunPort => "tun-port",
            Bit::TunNocsum => "tun-nocsum",
            Bit::TunCsum => "tun-csum",
            Bit::TunRemcsum => "tun-remcsum",
        }
    }
}

/// What an option does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Cmd(Cmd),
    /// A command a rule file cannot use.
    Unsupported,
    Svc(Protocol),
    Fwmark,
    Sched,
    Persistent,
    Netmask,
    Real,
    Fwd(Forward),
    Weight,
    UThreshold,
    LThreshold,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    TunType,
    TunPort,
    TunCsum(TunnelCsum),
    /// `--sort`: a no-op kept for compatibility.
    Sort,
    /// A listing or daemon option (`optnames` entry), illegal with every rule command.
    Listing(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArgKind {
    No,
    Required,
    Optional,
}

struct OptDef {
    long: &'static str,
    short: Option<char>,
    key: Key,
    arg: ArgKind,
}

const fn opt(long: &'static str, short: Option<char>, key: Key, arg: ArgKind) -> OptDef {
    OptDef {
        long,
        short,
        key,
        arg,
    }
}

use ArgKind::{No, Optional, Required};

/// ipvsadm's popt table.
#[rustfmt::skip]
const OPTS: &[OptDef] = &[
    opt("add-service", Some('A'), Key::Cmd(Cmd::Add), No),
    opt("edit-service", Some('E'), Key::Cmd(Cmd::Edit), No),
    opt("delete-service", Some('D'), Key::Cmd(Cmd::Del), No),
    opt("clear", Some('C'), Key::Cmd(Cmd::Flush), No),
    opt("list", Some('L'), Key::Unsupported, No),
    opt("list", Some('l'), Key::Unsupported, No),
    opt("zero", Some('Z'), Key::Cmd(Cmd::Zero), No),
    opt("add-server", Some('a'), Key::Cmd(Cmd::AddDest), No),
    opt("edit-server", Some('e'), Key::Cmd(Cmd::EditDest), No),
    opt("delete-server", Some('d'), Key::Cmd(Cmd::DelDest), No),
    opt("set", None, Key::Cmd(Cmd::Set), No),
    opt("help", Some('h'), Key::Unsupported, No),
    opt("version", Some('v'), Key::Unsupported, No),
    opt("restore", Some('R'), Key::Unsupported, No),
    opt("save", Some('S'), Key::Unsupported, No),
    opt("start-daemon", None, Key::Unsupported, Required),
    opt("stop-daemon", None, Key::Unsupported, Required),
    opt("tcp-service", Some('t'), Key::Svc(Protocol::Tcp), Required),
    opt("udp-service", Some('u'), Key::Svc(Protocol::Udp), Required),
    opt("sctp-service", None, Key::Svc(Protocol::Sctp), Required),
    opt("fwmark-service", Some('f'), Key::Fwmark, Required),
    opt("scheduler", Some('s'), Key::Sched, Required),
    opt("persistent", Some('p'), Key::Persistent, Optional),
    opt("netmask", Some('M'), Key::Netmask, Required),
    opt("real-server", Some('r'), Key::Real, Required),
    opt("masquerading", Some('m'), Key::Fwd(Forward::Masq), No),
    opt("ipip", Some('i'), Key::Fwd(Forward::Tunnel), No),
    opt("gatewaying", Some('g'), Key::Fwd(Forward::DirectRoute), No),
    opt("weight", Some('w'), Key::Weight, Required),
    opt("u-threshold", Some('x'), Key::UThreshold, Required),
    opt("l-threshold", Some('y'), Key::LThreshold, Required),
    opt("numeric", Some('n'), Key::Listing("numeric"), No),
    opt("connection", Some('c'), Key::Listing("connection"), No),
    opt(
        "mcast-interface",
        None,
        Key::Listing("mcast-interface"),
        Required,
    ),
    opt("syncid", None, Key::Listing("syncid"), Required),
    opt("timeout", None, Key::Listing("timeout"), No),
    opt("daemon", None, Key::Listing("daemon"), No),
    opt("stats", None, Key::Listing("stats"), No),
    opt("rate", None, Key::Listing("rate"), No),
    opt("thresholds", None, Key::Listing("thresholds"), No),
    opt("persistent-conn", None, Key::Listing("persistent-conn"), No),
    opt("nosort", None, Key::Listing("nosort"), No),
    opt("sort", None, Key::Sort, No),
    opt("exact", Some('X'), Key::Listing("exact"), No),
    opt("ipv6", Some('6'), Key::Ipv6, No),
    opt("ops", Some('o'), Key::Ops, No),
    opt("pe", None, Key::Pe, Required),
    opt("sched-flags", Some('b'), Key::SchedFlags, Required),
    opt("mcast-group", None, Key::Listing("mcast-group"), Required),
    opt("mcast-port", None, Key::Listing("mcast-port"), Required),
    opt("mcast-ttl", None, Key::Listing("mcast-ttl"), Required),
    opt("sync-maxlen", None, Key::Listing("sync-maxlen"), Required),
    opt("tun-info", None, Key::Listing("tun-info"), No),
    opt("tun-type", None, Key::TunType, Required),
    opt("tun-port", None, Key::TunPort, Required),
    opt("tun-nocsum", None, Key::TunCsum(TunnelCsum::NoCsum), No),
    opt("tun-csum", None, Key::TunCsum(TunnelCsum::Csum), No),
    opt("tun-remcsum", None, Key::TunCsum(TunnelCsum::RemCsum), No),
];

/// ipvsadm's persistence netmask as it evolves while options are read: an IPv4 mask, or an
/// IPv6 prefix once the service is known to be IPv6.
#[derive(Clone, Copy, Debug)]
enum Mask {
    V4(Ipv4Addr),
    V6(u8),
}

/// The parser state: ipvsadm's `struct ipvs_command_entry` plus where each option was.
struct State<'a> {
    line: usize,
    cmd: Option<(Cmd, usize)>,
    seen: [Option<usize>; NBITS],
    protocol: Protocol,
    svc_addr: Option<IpAddr>,
    svc_port: u16,
    fwmark: u32,
    af: Option<Family>,
    sched: Option<SchedKind>,
    persistent: Option<u32>,
    mask: Mask,
    pe: Option<String>,
    ops: bool,
    sched_flags: Option<Tok<'a>>,
    dest_addr: Option<IpAddr>,
    dest_port: u16,
    forward: Forward,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: TunnelType,
    tun_port: u16,
    csum: TunnelCsum,
    positional: Vec<Tok<'a>>,
}

impl<'a> State<'a> {
    fn err(&self, column: usize, kind: K) -> ParseError {
        ParseError {
            line: self.line,
            column,
            kind,
        }
    }

    /// `set_option`: each option once.
    fn set(&mut self, bit: Bit, col: usize) -> Result<(), ParseError> {
        let slot = &mut self.seen[bit as usize];
        if slot.is_some() {
            return Err(self.err(col, K::DuplicateOption(bit.name())));
        }
        *slot = Some(col);
        Ok(())
    }

    fn number(
        &self,
        arg: Tok<'_>,
        what: &'static str,
        min: u64,
        max: u64,
    ) -> Result<u64, ParseError> {
        parse_decimal(arg.s)
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                self.err(
                    arg.col,
                    K::BadNumber {
                        what,
                        min,
                        max,
                        found: snippet(arg.s),
                    },
                )
            })
    }

    /// Handles one option (`opt_col` is where the option itself is written).
    fn handle(
        &mut self,
        def: &OptDef,
        shown: &str,
        opt_col: usize,
        arg: Option<Tok<'a>>,
    ) -> Result<(), ParseError> {
        let Some((cmd, _)) = self.cmd else {
            return match def.key {
                Key::Cmd(c) => {
                    self.cmd = Some((c, opt_col));
                    Ok(())
                }
                Key::Unsupported => Err(self.err(opt_col, K::UnsupportedCommand(snippet(shown)))),
                _ => Err(self.err(opt_col, K::ExpectedCommand(snippet(shown)))),
            };
        };
        // `arg` is always present for options that require one (checked by the caller).
        let a = arg.unwrap_or(Tok {
            s: "",
            col: opt_col,
        });
        match def.key {
            Key::Cmd(_) | Key::Unsupported => {
                return Err(self.err(opt_col, K::MultipleCommands(snippet(shown))));
            }
            Key::Listing(name) => {
                return Err(self.err(
                    opt_col,
                    K::IllegalOption {
                        option: name,
                        command: cmd.name(),
                    },
                ));
            }
            Key::Sort => {}
            Key::Svc(protocol) => {
                self.set(Bit::Service, opt_col)?;
                let (addr, port) = parse_addr_port(a.s)
                    .ok_or_else(|| self.err(a.col, K::BadAddress(snippet(a.s))))?;
                self.protocol = protocol;
                self.svc_addr = Some(addr);
                self.svc_port = port.unwrap_or(0);
                self.af = Some(Family::of(&addr));
                if addr.is_ipv6() {
                    self.mask = Mask::V6(128);
                }
            }
            Key::Fwmark => {
                self.set(Bit::Service, opt_col)?;
                self.fwmark = self.number(a, "fwmark", 1, u64::from(u32::MAX))? as u32;
                // ipvsadm: "set protocol to a sane value, even though it is not used".
                self.af = Some(Family::V4);
                self.protocol = Protocol::Tcp;
            }
            Key::Sched => {
                self.set(Bit::Sched, opt_col)?;
                self.sched = Some(
                    SchedKind::from_name(a.s)
                        .ok_or_else(|| self.err(a.col, K::UnknownScheduler(snippet(a.s))))?,
                );
            }
            Key::Persistent => {
                self.set(Bit::Persistent, opt_col)?;
                self.persistent = Some(match arg {
                    None => Persistence::DEFAULT_TIMEOUT_SECS,
                    Some(t) => self.number(
                        t,
                        "persistence timeout",
                        1,
                        u64::from(Persistence::MAX_TIMEOUT_SECS),
                    )? as u32,
                });
            }
            Key::Netmask => {
                self.set(Bit::Netmask, opt_col)?;
                self.mask = if self.af == Some(Family::V6) {
                    Mask::V6(self.number(a, "IPv6 netmask prefix length", 1, 128)? as u8)
                } else {
                    Mask::V4(
                        a.s.parse::<Ipv4Addr>()
                            .map_err(|_| self.err(a.col, K::BadNetmask(snippet(a.s))))?,
                    )
                };
            }
            Key::Real => {
                self.set(Bit::Server, opt_col)?;
                let (addr, port) = parse_addr_port(a.s)
                    .ok_or_else(|| self.err(a.col, K::BadAddress(snippet(a.s))))?;
                self.dest_addr = Some(addr);
                // "copy vport to dport if not specified" (the service port known so far).
                self.dest_port = port.unwrap_or(self.svc_port);
            }
            Key::Fwd(f) => {
                self.set(Bit::Forward, opt_col)?;
                self.forward = f;
            }
            Key::Weight => {
                self.set(Bit::Weight, opt_col)?;
                self.weight = self.number(a, "weight", 0, 65535)? as u32;
            }
            Key::UThreshold => {
                self.set(Bit::UThreshold, opt_col)?;
                self.u_threshold = self.number(a, "upper threshold", 0, i32::MAX as u64)? as u32;
            }
            Key::LThreshold => {
                self.set(Bit::LThreshold, opt_col)?;
                self.l_threshold = self.number(a, "lower threshold", 0, i32::MAX as u64)? as u32;
            }
            Key::Ipv6 => {
                if self.fwmark == 0 {
                    return Err(self.err(opt_col, K::Ipv6BeforeFwmark));
                }
                self.af = Some(Family::V6);
                self.mask = Mask::V6(128);
            }
            Key::Ops => {
                self.set(Bit::Ops, opt_col)?;
                self.ops = true;
            }
            Key::Pe => {
                self.set(Bit::Pe, opt_col)?;
                // The kernel's IP_VS_PENAME_MAXLEN is 16 bytes with the terminator.
                if a.s.len() > 15 {
                    return Err(self.err(a.col, K::BadPeName(snippet(a.s))));
                }
                self.pe = (!a.s.is_empty()).then(|| a.s.to_string());
            }
            Key::SchedFlags => {
                self.set(Bit::SchedFlags, opt_col)?;
                self.sched_flags = Some(a);
            }
            Key::TunType => {
                self.set(Bit::TunType, opt_col)?;
                self.tun_type = match a.s {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    "gre" => TunnelType::Gre,
                    _ => return Err(self.err(a.col, K::BadTunnelType(snippet(a.s)))),
                };
            }
            Key::TunPort => {
                self.set(Bit::TunPort, opt_col)?;
                self.tun_port = self.number(a, "tunnel port", 1, 65535)? as u16;
            }
            Key::TunCsum(c) => {
                let bit = match c {
                    TunnelCsum::NoCsum => Bit::TunNocsum,
                    TunnelCsum::Csum => Bit::TunCsum,
                    TunnelCsum::RemCsum => Bit::TunRemcsum,
                };
                self.set(bit, opt_col)?;
                self.csum = c;
            }
        }
        Ok(())
    }

    fn service_key(&self) -> Option<ServiceKey> {
        if self.fwmark != 0 {
            let family = self.af.unwrap_or(Family::V4);
            Some(ServiceKey::Fwmark {
                mark: self.fwmark,
                family,
            })
        } else {
            let addr = self.svc_addr?;
            Some(ServiceKey::Addr {
                protocol: self.protocol,
                addr,
                port: self.svc_port,
            })
        }
    }

    /// The checks ipvsadm makes after reading every option, then the command.
    fn finish(mut self) -> Result<Option<(usize, Command)>, ParseError> {
        let Some((cmd, cmd_col)) = self.cmd else {
            return match self.positional.first() {
                None => Ok(None),
                Some(t) => Err(self.err(t.col, K::MissingCommand)),
            };
        };
        let mut timeouts = Timeouts {
            tcp_secs: 0,
            tcpfin_secs: 0,
            udp_secs: 0,
        };
        let mut rest = &self.positional[..];
        if cmd == Cmd::Set {
            if rest.len() < 3 {
                return Err(self.err(cmd_col, K::SetNeedsThree));
            }
            let max = u64::from(Persistence::MAX_TIMEOUT_SECS);
            timeouts.tcp_secs = self.number(rest[0], "tcp timeout", 0, max)? as u32;
            timeouts.tcpfin_secs = self.number(rest[1], "tcpfin timeout", 0, max)? as u32;
            timeouts.udp_secs = self.number(rest[2], "udp timeout", 0, max)? as u32;
            rest = &rest[3..];
        }
        if let Some(t) = rest.first() {
            return Err(self.err(t.col, K::UnexpectedArgument(snippet(t.s))));
        }
        let flags = match self.sched_flags {
            Some(arg) => parse_sched_flags(&self, self.sched.unwrap_or(SchedKind::Wlc), arg)?,
            None => SchedFlags::empty(),
        };
        // generic_opt_check
        let table = cmd.table();
        for (i, bit) in BITS.iter().enumerate() {
            match (self.seen[i], table[i]) {
                (None, b'+') => {
                    return Err(self.err(
                        cmd_col,
                        K::MissingOption {
                            option: bit.name(),
                            command: cmd.name(),
                        },
                    ));
                }
                (Some(col), b'x') => {
                    return Err(self.err(
                        col,
                        K::IllegalOption {
                            option: bit.name(),
                            command: cmd.name(),
                        },
                    ));
                }
                _ => {}
            }
        }
        let key = self.service_key();
        let command = match cmd {
            Cmd::Add | Cmd::Edit => {
                let key = key.ok_or_else(|| self.err(cmd_col, K::MissingCommand))?;
                let svc_col = self.seen[Bit::Service as usize].unwrap_or(cmd_col);
                if !key.is_fwmark() && key.port() == 0 && self.persistent.is_none() {
                    return Err(self.err(svc_col, K::ZeroPortNotPersistent));
                }
                if self.ops && !key.is_fwmark() && self.protocol != Protocol::Udp {
                    let col = self.seen[Bit::Ops as usize].unwrap_or(cmd_col);
                    return Err(self.err(col, K::OpsNotUdp));
                }
                let family = key.family();
                let mask = match (family, self.mask) {
                    (Family::V4, Mask::V4(m)) => PersistMask::V4(m),
                    (Family::V6, Mask::V6(p)) => PersistMask::V6(p),
                    (f, _) => PersistMask::default_for(f),
                };
                let cfg = ServiceConfig {
                    key,
                    scheduler: self.sched.unwrap_or(SchedKind::Wlc),
                    flags,
                    persistence: self
                        .persistent
                        .map(|timeout_secs| Persistence { timeout_secs, mask }),
                    pe: self.pe.take(),
                    one_packet: self.ops,
                };
                if cmd == Cmd::Add {
                    Command::AddService(cfg)
                } else {
                    Command::EditService(cfg)
                }
            }
            Cmd::Del => {
                Command::DeleteService(key.ok_or_else(|| self.err(cmd_col, K::MissingCommand))?)
            }
            Cmd::Flush => Command::Clear,
            Cmd::Set => Command::SetTimeouts(timeouts),
            Cmd::Zero => Command::Zero(key),
            Cmd::AddDest | Cmd::EditDest | Cmd::DelDest => {
                let key = key.ok_or_else(|| self.err(cmd_col, K::MissingCommand))?;
                let addr = self
                    .dest_addr
                    .ok_or_else(|| self.err(cmd_col, K::MissingCommand))?;
                if cmd == Cmd::DelDest {
                    Command::DeleteDest {
                        service: key,
                        addr,
                        port: self.dest_port,
                    }
                } else {
                    self.dest_command(cmd, cmd_col, key, addr)?
                }
            }
        };
        Ok(Some((cmd_col, command)))
    }

    fn dest_command(
        &self,
        cmd: Cmd,
        cmd_col: usize,
        key: ServiceKey,
        addr: IpAddr,
    ) -> Result<Command, ParseError> {
        let server_col = self.seen[Bit::Server as usize].unwrap_or(cmd_col);
        // "The destination port must be equal to the service port if the
        // IP_VS_CONN_F_TUNNEL or IP_VS_CONN_F_DROUTE is set" (not for fwmark services).
        let port =
            if !key.is_fwmark() && matches!(self.forward, Forward::Tunnel | Forward::DirectRoute) {
                key.port()
            } else {
                self.dest_port
            };
        if Family::of(&addr) != key.family() && self.forward != Forward::Tunnel {
            return Err(self.err(server_col, K::MixedFamily));
        }
        let tun_bits = [
            Bit::TunType,
            Bit::TunPort,
            Bit::TunNocsum,
            Bit::TunCsum,
            Bit::TunRemcsum,
        ];
        let first_tun = tun_bits.iter().filter_map(|b| self.seen[*b as usize]).min();
        if let Some(col) = first_tun {
            if self.forward != Forward::Tunnel {
                return Err(self.err(col, K::TunnelOptionsWithoutTunnel));
            }
        }
        // tunnel_opt_check: tun-port and the checksum options per tunnel type.
        let tunnel = self.tun_type.name();
        let port_rule = match self.tun_type {
            TunnelType::Ipip | TunnelType::Gre => b'x',
            TunnelType::Gue => b'+',
        };
        match (self.seen[Bit::TunPort as usize], port_rule) {
            (None, b'+') => {
                let col = self.seen[Bit::TunType as usize].unwrap_or(cmd_col);
                return Err(self.err(col, K::MissingTunPort));
            }
            (Some(col), b'x') => {
                return Err(self.err(
                    col,
                    K::IllegalTunnelOption {
                        option: "tun-port",
                        tunnel,
                    },
                ));
            }
            _ => {}
        }
        // ipvsadm's `tunnel_types_v_options`: no checksum option with ipip, and no remote
        // checksum with gre (its row is `x 1 1 x`: only --tun-nocsum or --tun-csum).
        let mut csum_seen = 0;
        for bit in [Bit::TunNocsum, Bit::TunCsum, Bit::TunRemcsum] {
            if let Some(col) = self.seen[bit as usize] {
                let illegal = match self.tun_type {
                    TunnelType::Ipip => true,
                    TunnelType::Gre => bit == Bit::TunRemcsum,
                    TunnelType::Gue => false,
                };
                if illegal {
                    return Err(self.err(
                        col,
                        K::IllegalTunnelOption {
                            option: bit.name(),
                            tunnel,
                        },
                    ));
                }
                csum_seen += 1;
                if csum_seen > 1 {
                    return Err(self.err(col, K::ConflictingCsum(bit.name())));
                }
            }
        }
        let dest = DestConfig {
            addr,
            port,
            forward: self.forward,
            weight: self.weight,
            u_threshold: self.u_threshold,
            l_threshold: self.l_threshold,
            tunnel: if self.forward == Forward::Tunnel {
                TunnelConfig {
                    kind: self.tun_type,
                    port: self.tun_port,
                    csum: self.csum,
                }
            } else {
                TunnelConfig::default()
            },
        };
        Ok(if cmd == Cmd::AddDest {
            Command::AddDest(key, dest)
        } else {
            Command::EditDest(key, dest)
        })
    }
}

/// ipvsadm's `parse_sched_flags`: a comma list; `sh-*` only with sh, `mh-*` only with mh.
fn parse_sched_flags(
    st: &State<'_>,
    sched: SchedKind,
    arg: Tok<'_>,
) -> Result<SchedFlags, ParseError> {
    let mut flags = SchedFlags::empty();
    if arg.s.is_empty() {
        // `-b=` / `--sched-flags=`: ipvsadm parses its flags only `if (sched_flags_arg[0])`,
        // so an empty list sets none.
        return Ok(flags);
    }
    let mut any = false;
    let mut col = arg.col;
    for name in arg.s.split(',') {
        let here = col;
        col += name.chars().count() + 1;
        if name.is_empty() {
            // strtok skips empty fields.
            continue;
        }
        any = true;
        let (bit, needs) = match name {
            "flag-1" => (SchedFlags::SCHED1, None),
            "flag-2" => (SchedFlags::SCHED2, None),
            "flag-3" => (SchedFlags::SCHED3, None),
            "sh-fallback" => (SchedFlags::SCHED1, Some(SchedKind::Sh)),
            "sh-port" => (SchedFlags::SCHED2, Some(SchedKind::Sh)),
            "mh-fallback" => (SchedFlags::SCHED1, Some(SchedKind::Mh)),
            "mh-port" => (SchedFlags::SCHED2, Some(SchedKind::Mh)),
            _ => return Err(st.err(here, K::BadSchedFlag(snippet(name)))),
        };
        if needs.is_some_and(|s| s != sched) {
            return Err(st.err(here, K::IncompatibleSchedFlag(name.to_string())));
        }
        flags = flags | bit;
    }
    if !any {
        return Err(st.err(arg.col, K::BadSchedFlag(snippet(arg.s))));
    }
    Ok(flags)
}

/// Plain decimal digits (at most 19, so the value fits a u64).
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// ipvsadm's `parse_service`, numeric only: `a.b.c.d[:port]`, `[v6]:port`, or a bare IPv6
/// address (no port). An all-digit text is refused, as ipvsadm refuses it.
fn parse_addr_port(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = |p: &str| parse_decimal(p).filter(|&n| n <= 65535).map(|n| n as u16);
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']')?;
        let port_text = rest[close + 1..].strip_prefix(':')?;
        let addr: Ipv6Addr = rest[..close].parse().ok()?;
        return Some((IpAddr::V6(addr), Some(port(port_text)?)));
    }
    if let Ok(addr) = s.parse::<Ipv6Addr>() {
        return Some((IpAddr::V6(addr), None));
    }
    let (host, p) = match s.rfind(':') {
        Some(k) => (&s[..k], Some(port(&s[k + 1..])?)),
        None => (s, None),
    };
    let addr: Ipv4Addr = host.parse().ok()?;
    Some((IpAddr::V4(addr), p))
}

/// One line: the command and the column of its command word, or `None` when blank.
fn parse_line_at(line: &str, lineno: usize) -> Result<Option<(usize, Command)>, ParseError> {
    let mut toks = tokenize(line);
    if toks.first().is_some_and(|t| t.s == "ipvsadm") {
        toks.remove(0);
    }
    let mut st = State {
        line: lineno,
        cmd: None,
        seen: [None; NBITS],
        protocol: Protocol::Ip,
        svc_addr: None,
        svc_port: 0,
        fwmark: 0,
        af: None,
        sched: None,
        persistent: None,
        mask: Mask::V4(Ipv4Addr::BROADCAST),
        pe: None,
        ops: false,
        sched_flags: None,
        dest_addr: None,
        dest_port: 0,
        forward: Forward::DirectRoute,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
        tun_type: TunnelType::Ipip,
        tun_port: 0,
        csum: TunnelCsum::NoCsum,
        positional: Vec::new(),
    };
    let mut i = 0;
    let mut only_args = false;
    while i < toks.len() {
        let t = toks[i];
        i += 1;
        if only_args || t.s == "-" || !t.s.starts_with('-') {
            st.positional.push(t);
            continue;
        }
        if t.s == "--" {
            only_args = true;
            continue;
        }
        if let Some(body) = t.s.strip_prefix("--") {
            let (name, value) = match body.find('=') {
                Some(k) => (
                    &body[..k],
                    Some(Tok {
                        s: &body[k + 1..],
                        col: t.col + 2 + body[..k].chars().count() + 1,
                    }),
                ),
                None => (body, None),
            };
            let def = OPTS
                .iter()
                .find(|d| d.long == name)
                .ok_or_else(|| st.err(t.col, K::UnknownOption(snippet(t.s))))?;
            let arg = match def.arg {
                No => {
                    if value.is_some() {
                        return Err(st.err(t.col, K::UnwantedValue(def.long)));
                    }
                    None
                }
                Required => match value {
                    Some(v) => Some(v),
                    None => {
                        let next = toks.get(i).copied();
                        i += 1;
                        Some(next.ok_or_else(|| st.err(t.col, K::MissingValue(def.long)))?)
                    }
                },
                Optional => match value {
                    Some(v) => Some(v),
                    None => take_optional(&toks, &mut i),
                },
            };
            st.handle(def, t.s, t.col, arg)?;
            continue;
        }
        // A cluster of short options. As in popt, one `=` right after a letter is skipped
        // (`-w=5`), and an option that takes a value takes the rest of the word, if any.
        let body = &t.s[1..];
        let mut pos = 0;
        let mut char_col = t.col + 1;
        while let Some(c) = body[pos..].chars().next() {
            // The first option of a cluster is reported at its dash.
            let col = if pos == 0 { t.col } else { char_col };
            let def = OPTS
                .iter()
                .find(|d| d.short == Some(c))
                .ok_or_else(|| st.err(col, K::UnknownOption(format!("-{c}"))))?;
            pos += c.len_utf8();
            char_col += 1;
            let eq = body[pos..].starts_with('=');
            if eq {
                pos += 1;
                char_col += 1;
            }
            let rest = &body[pos..];
            let attached = (eq || !rest.is_empty()).then_some(Tok {
                s: rest,
                col: char_col,
            });
            let shown = format!("-{c}");
            match def.arg {
                No => st.handle(def, &shown, col, None)?,
                Required => {
                    let arg = match attached {
                        Some(a) => a,
                        None => {
                            let next = toks.get(i).copied();
                            i += 1;
                            next.ok_or_else(|| st.err(col, K::MissingValue(def.long)))?
                        }
                    };
                    st.handle(def, &shown, col, Some(arg))?;
                    break;
                }
                Optional => {
                    let arg = attached.or_else(|| take_optional(&toks, &mut i));
                    st.handle(def, &shown, col, arg)?;
                    break;
                }
            }
        }
    }
    st.finish()
}

/// popt's optional argument: the next word, unless it starts with `-`.
fn take_optional<'a>(toks: &[Tok<'a>], i: &mut usize) -> Option<Tok<'a>> {
    let next = toks.get(*i).copied().filter(|t| !t.s.starts_with('-'))?;
    *i += 1;
    Some(next)
}
