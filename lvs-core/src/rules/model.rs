//! The rule model: virtual services, real servers and the commands that change them.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr};

use crate::protocol::Protocol;
use crate::sched::{SchedFlags, SchedKind};

/// Address family of a service or real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The Linux `AF_*` number (2 or 10); ipvsadm sorts services by it.
    pub const fn af(self) -> u16 {
        match self {
            Family::V4 => 2,
            Family::V6 => 10,
        }
    }
}

/// What identifies a virtual service: protocol, address and port, or a firewall mark and
/// family. A service is unique per key (spec §6.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// `-t`, `-u` or `--sctp-service addr[:port]`. Port 0 is the wildcard port (persistent
    /// services only).
    Addr {
        /// TCP, UDP or SCTP.
        protocol: Protocol,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
    /// `-f mark [-6]`.
    Fwmark {
        /// Firewall mark, greater than zero.
        mark: u32,
        /// `-6` gives [`Family::V6`].
        family: Family,
    },
}

impl ServiceKey {
    /// A `-t addr:port` key.
    pub fn tcp(addr: IpAddr, port: u16) -> Self {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr,
            port,
        }
    }

    /// A `-u addr:port` key.
    pub fn udp(addr: IpAddr, port: u16) -> Self {
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr,
            port,
        }
    }

    /// A `-f mark` key (IPv4).
    pub fn fwmark(mark: u32) -> Self {
        ServiceKey::Fwmark {
            mark,
            family: Family::V4,
        }
    }

    /// The service's address family.
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(addr),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }

    /// Whether `-Z` with this key zeroes every counter: no address, port 0 and no firewall
    /// mark, which the zero command takes as "no service given" (`ipvs_zero_service` sends
    /// no service then; `do_ip_vs_set_ctl` checks the same three fields).
    pub(crate) fn zeroes_all(&self) -> bool {
        matches!(self, ServiceKey::Addr { addr, port: 0, .. } if addr.is_unspecified())
    }

    /// Whether this is a fwmark service.
    pub fn is_fwmark(&self) -> bool {
        matches!(self, ServiceKey::Fwmark { .. })
    }

    /// The virtual port (0 for fwmark services).
    pub fn port(&self) -> u16 {
        match self {
            ServiceKey::Addr { port, .. } => *port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }

    /// The protocol of an address service; `None` for fwmark services (they match any).
    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            ServiceKey::Addr { protocol, .. } => Some(*protocol),
            ServiceKey::Fwmark { .. } => None,
        }
    }
}

/// Prints the key as `ipvsadm -S -n` does: `-t 1.2.3.4:80`, `-u [::1]:53`,
/// `--sctp-service 1.2.3.4:9`, `-f 7`, `-f 7 -6`.
///
/// One deliberate difference: ipvsadm prints the mark with `%d`, so marks above 2147483647
/// come out negative (and its own `-R` then refuses them); this prints the unsigned value.
///
/// ```
/// use lvs_core::rules::{Family, ServiceKey};
/// let k = ServiceKey::udp("::1".parse().unwrap(), 53);
/// assert_eq!(k.to_string(), "-u [::1]:53");
/// assert_eq!(ServiceKey::Fwmark { mark: 7, family: Family::V6 }.to_string(), "-f 7 -6");
/// ```
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => {
                let opt = match protocol {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                    Protocol::Sctp => "--sctp-service",
                    // ipvsadm's fallback for a protocol it has no option for.
                    Protocol::Ip => "--xxx-service",
                };
                write!(f, "{opt} {}", super::error::fmt_addr_port(*addr, *port))
            }
            ServiceKey::Fwmark {
                mark,
                family: Family::V4,
            } => write!(f, "-f {mark}"),
            ServiceKey::Fwmark {
                mark,
                family: Family::V6,
            } => write!(f, "-f {mark} -6"),
        }
    }
}

/// Forwarding method of a real server (`IP_VS_CONN_F_FWD_MASK` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Forward {
    /// `-m`: masquerading / NAT (0).
    Masq,
    /// Local node (1): the real server is the director itself. ipvsadm cannot set it and
    /// saves it as `-g`.
    Local,
    /// `-i`: IP tunnelling (2).
    Tunnel,
    /// `-g`: direct routing / gatewaying (3), ipvsadm's default.
    DirectRoute,
}

impl Forward {
    /// The `IP_VS_CONN_F_*` value (0..=3).
    pub const fn conn_flags(self) -> u32 {
        match self {
            Forward::Masq => 0,
            Forward::Local => 1,
            Forward::Tunnel => 2,
            Forward::DirectRoute => 3,
        }
    }

    /// The method for the low bits of connection flags.
    pub const fn from_conn_flags(flags: u32) -> Forward {
        match flags & 7 {
            0 => Forward::Masq,
            1 => Forward::Local,
            2 => Forward::Tunnel,
            _ => Forward::DirectRoute,
        }
    }

    /// The name `ipvsadm -L` prints: `Masq`, `Local`, `Tunnel`, `Route`.
    pub const fn name(self) -> &'static str {
        match self {
            Forward::Masq => "Masq",
            Forward::Local => "Local",
            Forward::Tunnel => "Tunnel",
            Forward::DirectRoute => "Route",
        }
    }

    /// The switch `ipvsadm -S` prints: `-m`, `-i`, and `-g` for both DirectRoute and Local.
    pub const fn switch(self) -> &'static str {
        match self {
            Forward::Masq => "-m",
            Forward::Tunnel => "-i",
            Forward::Local | Forward::DirectRoute => "-g",
        }
    }
}

/// Encapsulation of a tunnelling real server (`--tun-type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunnelType {
    /// IP-in-IP (the default).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation; needs `--tun-port`.
    Gue,
    /// GRE.
    Gre,
}

impl TunnelType {
    /// The ipvsadm name.
    pub const fn name(self) -> &'static str {
        match self {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        }
    }
}

/// Checksum option of a GUE or GRE tunnel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunnelCsum {
    /// `--tun-nocsum` (the default, flags 0).
    #[default]
    NoCsum,
    /// `--tun-csum` (`IP_VS_TUNNEL_ENCAP_FLAG_CSUM`).
    Csum,
    /// `--tun-remcsum` (`IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM`).
    RemCsum,
}

impl TunnelCsum {
    /// The option ipvsadm saves.
    pub const fn option(self) -> &'static str {
        match self {
            TunnelCsum::NoCsum => "--tun-nocsum",
            TunnelCsum::Csum => "--tun-csum",
            TunnelCsum::RemCsum => "--tun-remcsum",
        }
    }

    /// The short form `ipvsadm -L --tun-info` prints: `-c`, `+c`, `r+c`.
    pub const fn short(self) -> &'static str {
        match self {
            TunnelCsum::NoCsum => "-c",
            TunnelCsum::Csum => "+c",
            TunnelCsum::RemCsum => "r+c",
        }
    }
}

/// Tunnel settings of a real server; meaningful for [`Forward::Tunnel`] only, and left at the
/// default (ipip, port 0, no checksum) for other methods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunnelConfig {
    /// Encapsulation.
    pub kind: TunnelType,
    /// GUE destination port (0 for ipip and gre).
    pub port: u16,
    /// Checksum option (GUE and GRE; no checksum for ipip).
    pub csum: TunnelCsum,
}

/// Persistence granularity (`-M`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PersistMask {
    /// IPv4 netmask applied to the client address (default 255.255.255.255). Any 32-bit value
    /// is accepted, as the kernel does.
    V4(Ipv4Addr),
    /// IPv6 prefix length 1..=128 (default 128).
    V6(u8),
}

impl PersistMask {
    /// The default for a family: /32 or /128 (one client address per template).
    pub const fn default_for(family: Family) -> PersistMask {
        match family {
            Family::V4 => PersistMask::V4(Ipv4Addr::BROADCAST),
            Family::V6 => PersistMask::V6(128),
        }
    }

    /// Whether this is the default of its family (ipvsadm then prints no `-M`).
    pub fn is_default(&self) -> bool {
        matches!(self, PersistMask::V4(m) if *m == Ipv4Addr::BROADCAST)
            || matches!(self, PersistMask::V6(128))
    }

    /// The family the mask is for.
    pub fn family(&self) -> Family {
        match self {
            PersistMask::V4(_) => Family::V4,
            PersistMask::V6(_) => Family::V6,
        }
    }
}

/// Persistence (`-p [timeout] [-M mask]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Persistence {
    /// Template timeout in seconds, 1..=2678400 (31 days).
    pub timeout_secs: u32,
    /// Client address granularity.
    pub mask: PersistMask,
}

impl Persistence {
    /// What a bare `-p` gives: 360 s (`IPVS_SVC_PERSISTENT_TIMEOUT` in ipvsadm's code; its man
    /// page says 300, the code wins, spec §2.6).
    pub const DEFAULT_TIMEOUT_SECS: u32 = 360;
    /// The largest timeout ipvsadm accepts: 31 days.
    pub const MAX_TIMEOUT_SECS: u32 = 86400 * 31;

    /// Persistence with a timeout and the family's default mask.
    pub const fn new(timeout_secs: u32, family: Family) -> Self {
        Persistence {
            timeout_secs,
            mask: PersistMask::default_for(family),
        }
    }
}

/// The configuration of one virtual service (`-A` / `-E`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceConfig {
    /// Identity.
    pub key: ServiceKey,
    /// `-s` (default wlc).
    pub scheduler: SchedKind,
    /// `-b`.
    pub flags: SchedFlags,
    /// `-p` / `-M`.
    pub persistence: Option<Persistence>,
    /// `--pe` (only `sip` exists).
    pub pe: Option<String>,
    /// `-o`: one-packet scheduling (UDP and fwmark services).
    pub one_packet: bool,
}

impl ServiceConfig {
    /// A service with ipvsadm's defaults: wlc, no flags, not persistent, no engine, no `-o`.
    pub fn new(key: ServiceKey) -> Self {
        ServiceConfig {
            key,
            scheduler: SchedKind::Wlc,
            flags: SchedFlags::empty(),
            persistence: None,
            pe: None,
            one_packet: false,
        }
    }
}

/// The configuration of one real server (`-a` / `-e`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DestConfig {
    /// Real server address (may be of the other family than the service with tunnelling).
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
    /// `-g` (default), `-i`, `-m`.
    pub forward: Forward,
    /// `-w` 0..=65535 (default 1; 0 = quiesced).
    pub weight: u32,
    /// `-x` upper connection threshold (0 = none).
    pub u_threshold: u32,
    /// `-y` lower connection threshold (0 = none).
    pub l_threshold: u32,
    /// `--tun-type`, `--tun-port`, checksum option.
    pub tunnel: TunnelConfig,
}

impl DestConfig {
    /// A real server with ipvsadm's defaults: direct routing, weight 1, no thresholds.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        DestConfig {
            addr,
            port,
            forward: Forward::DirectRoute,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: TunnelConfig::default(),
        }
    }
}

/// Protocol timeouts (`--set tcp tcpfin udp`), in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// TCP ESTABLISHED timeout (default 900).
    pub tcp_secs: u32,
    /// TCP FIN_WAIT timeout (default 120).
    pub tcpfin_secs: u32,
    /// UDP timeout (default 300).
    pub udp_secs: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_secs: 900,
            tcpfin_secs: 120,
            udp_secs: 300,
        }
    }
}

/// One ipvsadm command, as `ipvsadm -R` reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-A`: add a service.
    AddService(ServiceConfig),
    /// `-E`: replace the whole configuration of a service (options not given take their
    /// defaults, as with ipvsadm). Its real servers stay.
    EditService(ServiceConfig),
    /// `-D`: delete a service and its real servers.
    DeleteService(ServiceKey),
    /// `-a`: add a real server at the head of the service's list.
    AddDest(ServiceKey, DestConfig),
    /// `-e`: replace the whole configuration of a real server (found by address and port);
    /// it keeps its list position.
    EditDest(ServiceKey, DestConfig),
    /// `-d`: delete a real server.
    DeleteDest {
        /// The service.
        service: ServiceKey,
        /// Real server address.
        addr: IpAddr,
        /// Real server port.
        port: u16,
    },
    /// `-C`: delete every service.
    Clear,
    /// `--set tcp tcpfin udp`: a 0 keeps the current value.
    SetTimeouts(Timeouts),
    /// `-Z [service]`: zero the counters of one service or all. No effect on the rules
    /// themselves (the counters live in the director), but a missing service is an error.
    Zero(Option<ServiceKey>),
}
