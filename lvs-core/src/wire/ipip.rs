//! IP-in-IP (`--tun-type ipip`, the default): no header of its own. The outer IP protocol
//! (IPv4) or next header (IPv6) is 4 for an IPv4 inner packet and 41 for an IPv6 one, and the
//! outer payload *is* the inner packet (spec 3.4).
//!
//! ```
//! use lvs_core::wire::{ipip, Family};
//! assert_eq!(ipip::protocol_for(Family::V6), 41);
//! let mut inner = [0u8; 20];
//! inner[0] = 0x45;
//! inner[2..4].copy_from_slice(&20u16.to_be_bytes());
//! match ipip::inner(4, &inner[..]).unwrap() {
//!     ipip::Inner::V4(p) => assert_eq!(p.header_len(), 20),
//!     ipip::Inner::V6(_) => unreachable!(),
//! }
//! // The inner version must match the outer protocol.
//! assert!(ipip::inner(41, &inner[..]).is_err());
//! ```

use super::{ipv4, ipv6, proto, Error, Family};

/// The inner packet of an IP-in-IP tunnel, as a checked view.
#[derive(Debug, Clone)]
pub enum Inner<T> {
    /// IPv4 inner packet (outer protocol 4).
    V4(ipv4::Packet<T>),
    /// IPv6 inner packet (outer protocol 41).
    V6(ipv6::Packet<T>),
}

/// The outer protocol / next header for an inner packet of `family`: 4 or 41.
pub const fn protocol_for(family: Family) -> u8 {
    match family {
        Family::V4 => proto::IPIP,
        Family::V6 => proto::IPV6,
    }
}

/// The inner family an outer protocol announces (`None` unless 4 or 41).
pub const fn family_of(protocol: u8) -> Option<Family> {
    match protocol {
        proto::IPIP => Some(Family::V4),
        proto::IPV6 => Some(Family::V6),
        _ => None,
    }
}

/// Parses the outer payload as the inner packet the outer `protocol` announces: 41 means
/// IPv6, anything else IPv4 (callers pass 4 or 41). A version mismatch is the inner view's
/// `Invalid { field: Version }` error.
pub fn inner<T: AsRef<[u8]>>(protocol: u8, payload: T) -> Result<Inner<T>, Error> {
    if protocol == proto::IPV6 {
        ipv6::Packet::new_checked(payload).map(Inner::V6)
    } else {
        ipv4::Packet::new_checked(payload).map(Inner::V4)
    }
}
