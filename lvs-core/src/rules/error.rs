//! Errors of the rule model (kernel-style, with an errno) and of the rule language (line and
//! column).

use core::fmt;
use core::net::IpAddr;

use super::model::ServiceKey;

/// `ESRCH`: no such service.
pub const ESRCH: i32 = 3;
/// `ENOENT`: no such real server, scheduler or persistence engine.
pub const ENOENT: i32 = 2;
/// `EFAULT`: the sockopt interface's answer to a service protocol other than TCP, UDP, SCTP.
pub const EFAULT: i32 = 14;
/// `EEXIST`: the service or real server already exists.
pub const EEXIST: i32 = 17;
/// `EINVAL`: an invalid argument.
pub const EINVAL: i32 = 22;
/// `ERANGE`: a weight or threshold out of range.
pub const ERANGE: i32 = 34;

/// Why applying one [`Command`](super::Command) to a [`RuleSet`](super::RuleSet) failed.
///
/// Each variant is an error the kernel returns (its errno is given by [`RuleError::errno`]), or
/// a configuration that ipvsadm's rule language cannot write down ([`RuleError::Inexpressible`],
/// reported as `EINVAL`): refusing those keeps every [`RuleSet`](super::RuleSet) savable, so
/// `save` followed by parsing always gives the same rules back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// `-A` of a service that already exists (`EEXIST`).
    #[error("service {0} already exists")]
    ServiceExists(ServiceKey),
    /// The service named by `-E`, `-D`, `-a`, `-e`, `-d` or `-Z` does not exist (`ESRCH`, which
    /// ipvsadm prints as "No such service" for `-E`, `-D` and `-Z`, and as "Service not
    /// defined" for `-a`, `-e` and `-d`).
    #[error("no such service {0}")]
    NoSuchService(ServiceKey),
    /// `-a` of a real server already in the service (`EEXIST`).
    #[error("real server {} already exists in service {service}", fmt_addr_port(*addr, *port))]
    DestExists {
        /// The service.
        service: ServiceKey,
        /// Real server address.
        addr: IpAddr,
        /// Real server port.
        port: u16,
    },
    /// `-e` or `-d` of a real server the service does not have (`ENOENT`).
    #[error("no real server {} in service {service}", fmt_addr_port(*addr, *port))]
    NoSuchDest {
        /// The service.
        service: ServiceKey,
        /// Real server address.
        addr: IpAddr,
        /// Real server port.
        port: u16,
    },
    /// Weight above 65535 (`ERANGE`; the kernel itself refuses only negative weights, ipvsadm
    /// cannot write weights above 65535).
    #[error("weight {0} out of range 0..=65535")]
    WeightRange(u32),
    /// Lower threshold above the upper threshold (`ERANGE`); note the kernel compares even when
    /// the upper threshold is 0 (unset).
    #[error("lower threshold {lower} is above upper threshold {upper}")]
    ThresholdRange {
        /// `-y` value.
        lower: u32,
        /// `-x` value.
        upper: u32,
    },
    /// A GUE tunnel real server without a tunnel port (`EINVAL`).
    #[error("GUE tunnel real server needs a non-zero tunnel port")]
    GueWithoutPort,
    /// A real server address that is neither unicast nor local (`EINVAL`): IPv4 0.0.0.0/8,
    /// 255.255.255.255 or multicast; IPv6 `::`, multicast, link-local or IPv4-mapped.
    #[error("real server address {0} is not a unicast address")]
    BadDestAddress(IpAddr),
    /// A real server of another address family than its service, with a forwarding method
    /// other than tunnelling (`EINVAL`).
    #[error("real server {0} has another address family than its service; only tunnelling (-i) allows that")]
    MixedFamily(IpAddr),
    /// An IPv6 persistence prefix outside 1..=128 (`EINVAL`).
    #[error("IPv6 persistence prefix length {0} out of range 1..=128")]
    BadNetmask(u8),
    /// A persistence engine the kernel does not have (`ENOENT`; only `sip` exists).
    #[error("persistence engine {0:?} not found (only \"sip\" exists)")]
    UnknownPe(String),
    /// A service protocol other than TCP, UDP or SCTP (`EFAULT`, as the kernel answers).
    #[error("service protocol must be TCP, UDP or SCTP")]
    BadProtocol,
    /// A `--set` timeout above ipvsadm's bound of 31 days (`EINVAL`). The kernel's own bound
    /// is `INT_MAX / HZ` seconds (24.8 days at HZ=1000, more at lower HZ); we do not model
    /// HZ and keep ipvsadm's bound.
    #[error("timeout {0} s above 31 days")]
    BadTimeout(u32),
    /// The service's scheduler cannot take another real server (`EINVAL`; mh: more real
    /// servers than its table size). Reported by the director, not by [`RuleSet`](super::RuleSet).
    #[error("scheduler {0} cannot take more real servers")]
    SchedulerFull(crate::sched::SchedKind),
    /// A tunnelling real server of another address family than its service, added or edited
    /// while the director runs as sync master (`EINVAL`, `ip_vs_genl_set_cmd`: the sync
    /// protocol cannot carry such connections). Reported by the director, not by
    /// [`RuleSet`](super::RuleSet).
    #[error("real server {0} has another address family than its service, which connection sync cannot carry")]
    SyncMixedFamily(IpAddr),
    /// A configuration the ipvsadm language cannot express (`EINVAL`).
    #[error("configuration not expressible in ipvsadm rules: {0}")]
    Inexpressible(Inexpressible),
}

impl RuleError {
    /// The errno the kernel (or ipvsadm's own check, for [`RuleError::Inexpressible`]) gives
    /// for this error.
    ///
    /// ```
    /// use lvs_core::rules::{RuleError, RuleSet, Command, ServiceKey};
    /// let mut rules = RuleSet::new();
    /// let key: ServiceKey = "-t 10.0.0.1:80".parse().unwrap();
    /// let err = rules.apply(&Command::DeleteService(key)).unwrap_err();
    /// assert_eq!(err.errno(), 3); // ESRCH
    /// ```
    pub fn errno(&self) -> i32 {
        match self {
            RuleError::ServiceExists(_) | RuleError::DestExists { .. } => EEXIST,
            RuleError::NoSuchService(_) => ESRCH,
            RuleError::NoSuchDest { .. } | RuleError::UnknownPe(_) => ENOENT,
            RuleError::WeightRange(_) | RuleError::ThresholdRange { .. } => ERANGE,
            RuleError::BadProtocol => EFAULT,
            RuleError::GueWithoutPort
            | RuleError::BadDestAddress(_)
            | RuleError::MixedFamily(_)
            | RuleError::BadNetmask(_)
            | RuleError::BadTimeout(_)
            | RuleError::SchedulerFull(_)
            | RuleError::SyncMixedFamily(_)
            | RuleError::Inexpressible(_) => EINVAL,
        }
    }
}

/// Configurations ipvsadm refuses to send, or cannot print back: the model refuses them too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Inexpressible {
    /// A port-0 (wildcard) address service that is not persistent.
    #[error("a zero port service must be persistent")]
    ZeroPortNotPersistent,
    /// One-packet scheduling on a TCP or SCTP address service.
    #[error("one-packet scheduling (-o) is only for UDP and fwmark services")]
    OpsNotUdp,
    /// Persistence timeout outside 1 s ..= 31 days.
    #[error("persistence timeout outside 1..=2678400 seconds")]
    PersistTimeout,
    /// Persistence mask of the other address family than the service's.
    #[error("persistence mask family differs from the service family")]
    MaskFamily,
    /// Scheduler flags ipvsadm cannot print for this scheduler (flag-3 with sh or mh).
    #[error("flag-3 cannot be saved with the sh or mh scheduler")]
    SchedFlags,
    /// fwmark 0 (it means "no fwmark").
    #[error("fwmark must be greater than zero")]
    ZeroFwmark,
    /// A direct-routing, local or tunnel real server of an address service with another port
    /// than the service's (ipvsadm forces the service port).
    #[error("a -g/-i real server of an address service must use the service port")]
    DestPort,
    /// Tunnel settings on a non-tunnel real server, or settings its tunnel type does not take
    /// (a port for ipip/gre, a checksum option for ipip, `--tun-remcsum` for gre).
    #[error("tunnel settings do not fit the forwarding method or tunnel type")]
    TunnelOptions,
    /// A connection threshold above `i32::MAX`.
    #[error("connection threshold above 2147483647")]
    Threshold,
}

/// What went wrong on one line of ipvsadm rule text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column (in characters) of the token or argument at fault.
    pub column: usize,
    /// What was expected or found.
    pub kind: ParseErrorKind,
}

/// The reasons a rule line is refused, as ipvsadm refuses them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The first option is not a command (`-A -E -D -a -e -d -C -Z --set`).
    #[error("expected a command (-A, -E, -D, -a, -e, -d, -C, -Z or --set), found {0:?}")]
    ExpectedCommand(String),
    /// A line with arguments but no option at all.
    #[error("expected a command (-A, -E, -D, -a, -e, -d, -C, -Z or --set)")]
    MissingCommand,
    /// A command ipvsadm has but a rule file cannot use (`-L`, `-S`, `-R`, daemons, help).
    #[error("command {0} is not allowed in rules")]
    UnsupportedCommand(String),
    /// A second command on one line.
    #[error("multiple commands specified ({0})")]
    MultipleCommands(String),
    /// An option ipvsadm does not know.
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    /// An option that needs a value came last.
    #[error("option {0} needs a value")]
    MissingValue(&'static str),
    /// `--opt=value` for an option that takes no value.
    #[error("option {0} takes no value")]
    UnwantedValue(&'static str),
    /// The same option twice (`-t` and `-f` count as one, as do `-g -i -m`).
    #[error("multiple '{0}' options specified")]
    DuplicateOption(&'static str),
    /// An option the command does not take.
    #[error("option '{option}' is not allowed with the '{command}' command")]
    IllegalOption {
        /// ipvsadm's name of the option.
        option: &'static str,
        /// ipvsadm's name of the command.
        command: &'static str,
    },
    /// An option the command needs is missing.
    #[error("the '{command}' command needs the '{option}' option")]
    MissingOption {
        /// ipvsadm's name of the option.
        option: &'static str,
        /// ipvsadm's name of the command.
        command: &'static str,
    },
    /// A left-over argument that belongs to no option.
    #[error("unexpected argument {0:?}")]
    UnexpectedArgument(String),
    /// `--set` without its three timeouts.
    #[error("--set needs 3 timeout values (tcp tcpfin udp)")]
    SetNeedsThree,
    /// A bad `host[:port]`: only numeric IPv4 `a.b.c.d[:port]`, IPv6 `[addr]:port` or a bare
    /// IPv6 address are accepted (no host or service names: nothing is resolved).
    #[error("expected a numeric address[:port] (a.b.c.d:port or [ipv6]:port), found {0:?}")]
    BadAddress(String),
    /// A number out of its range or not plain decimal digits.
    #[error("expected {what} in {min}..={max}, found {found:?}")]
    BadNumber {
        /// What the number is.
        what: &'static str,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
        /// The text found.
        found: String,
    },
    /// A bad IPv4 persistence netmask.
    #[error("expected an IPv4 netmask a.b.c.d, found {0:?}")]
    BadNetmask(String),
    /// A scheduler name that is not one of the fourteen.
    #[error(
        "unknown scheduler {0:?} (expected rr wrr lc wlc lblc lblcr dh sh sed nq mh fo ovf twos)"
    )]
    UnknownScheduler(String),
    /// A `-b` flag ipvsadm does not know.
    #[error("invalid scheduler flag {0:?} (expected sh-fallback sh-port mh-fallback mh-port flag-1 flag-2 flag-3)")]
    BadSchedFlag(String),
    /// `sh-*` flags without `-s sh`, or `mh-*` flags without `-s mh`.
    #[error("scheduler flag {0:?} does not fit the scheduler")]
    IncompatibleSchedFlag(String),
    /// A bad `--tun-type`.
    #[error("expected tunnel type ipip, gue or gre, found {0:?}")]
    BadTunnelType(String),
    /// A bad `--pe` name.
    #[error("expected a persistence engine name of 1..=15 bytes, found {0:?}")]
    BadPeName(String),
    /// `-6` that does not follow `-f`.
    #[error("-6 used before -f")]
    Ipv6BeforeFwmark,
    /// `-A`/`-E` of a port-0 service without `-p`.
    #[error("zero port specified for non-persistent service")]
    ZeroPortNotPersistent,
    /// `-o` on a TCP or SCTP service.
    #[error("one-packet scheduling is only for UDP virtual services")]
    OpsNotUdp,
    /// A real server of another family than the service, not tunnelled.
    #[error("different address family is allowed only for tunneling servers")]
    MixedFamily,
    /// Tunnel options with `-g` or `-m`.
    #[error("tunnel options conflict with forward method")]
    TunnelOptionsWithoutTunnel,
    /// A tunnel option the tunnel type does not take.
    #[error("option '{option}' is not allowed with the '{tunnel}' tunnel type")]
    IllegalTunnelOption {
        /// ipvsadm's option name.
        option: &'static str,
        /// Tunnel type.
        tunnel: &'static str,
    },
    /// GUE without `--tun-port`.
    #[error("the 'gue' tunnel type needs the 'tun-port' option")]
    MissingTunPort,
    /// Two of `--tun-nocsum --tun-csum --tun-remcsum`.
    #[error("option '{0}' conflicts with another checksum option")]
    ConflictingCsum(&'static str),
}

/// Error of [`RuleSet::apply_text`](super::RuleSet::apply_text): a line that does not parse,
/// or a command the rule set refuses. Either way nothing was applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// A line does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A parsed command was refused.
    #[error("line {line}, column {column}: {source}")]
    Apply {
        /// 1-based line number.
        line: usize,
        /// 1-based column of the command.
        column: usize,
        /// Why it was refused.
        source: RuleError,
    },
}

impl RulesError {
    /// The 1-based line at fault.
    pub fn line(&self) -> usize {
        match self {
            RulesError::Parse(e) => e.line,
            RulesError::Apply { line, .. } => *line,
        }
    }

    /// The 1-based column at fault.
    pub fn column(&self) -> usize {
        match self {
            RulesError::Parse(e) => e.column,
            RulesError::Apply { column, .. } => *column,
        }
    }
}

/// `a.b.c.d:port` or `[v6]:port`, as ipvsadm prints numeric addresses.
pub(crate) fn fmt_addr_port(addr: IpAddr, port: u16) -> AddrPort {
    AddrPort(addr, port)
}

/// Display helper for an address and port in ipvsadm's numeric form.
pub(crate) struct AddrPort(IpAddr, u16);

impl fmt::Display for AddrPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{}]:{}", super::save::Ipv6Text(a), self.1),
        }
    }
}
