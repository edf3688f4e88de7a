//! Transport protocols a virtual service can balance.

use core::fmt;

/// The transport protocol of a virtual service or connection.
///
/// fwmark services match any protocol; their persistence templates use [`Protocol::Ip`]
/// (`IPPROTO_IP`, 0), as the kernel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// `IPPROTO_IP` (0): used only for fwmark persistence templates.
    Ip,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Ip => 0,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The protocol for an IP protocol number, if it is one IPVS balances.
    pub const fn from_number(n: u8) -> Option<Protocol> {
        match n {
            0 => Some(Protocol::Ip),
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Whether the protocol carries ports (TCP, UDP, SCTP).
    pub const fn has_ports(self) -> bool {
        !matches!(self, Protocol::Ip)
    }

    /// The name ipvsadm prints in listings (`TCP`, `UDP`, `SCTP`, `IP`).
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Ip => "IP",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
