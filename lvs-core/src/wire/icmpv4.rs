//! ICMP messages for IPv4 (RFC 792). The checksum covers the whole message.
//!
//! ```
//! use lvs_core::wire::{icmpv4, Icmpv4Packet};
//! let mut bytes = [0u8; 8 + 28];
//! let mut msg = Icmpv4Packet::new_checked(&mut bytes[..]).unwrap();
//! msg.set_msg_type(icmpv4::types::DEST_UNREACH);
//! msg.set_code(icmpv4::codes::FRAG_NEEDED);
//! msg.set_next_hop_mtu(1480);
//! msg.fill_checksum();
//! assert!(msg.is_error());
//! assert!(msg.verify_checksum());
//! assert_eq!(msg.next_hop_mtu(), 1480);
//! ```

use super::{checksum, get_u16, get_u32, need, put_u16, put_u32, quote, Error, Layer, LenSource};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const HEADER_LEN: usize = 8;
}

/// Length of the ICMP header (type, code, checksum and the 4-byte rest of header).
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// ICMP message types used by IPVS.
pub mod types {
    /// Echo Reply (0).
    pub const ECHO_REPLY: u8 = 0;
    /// Destination Unreachable (3).
    pub const DEST_UNREACH: u8 = 3;
    /// Source Quench (4).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect (5).
    pub const REDIRECT: u8 = 5;
    /// Echo Request (8).
    pub const ECHO_REQUEST: u8 = 8;
    /// Time Exceeded (11).
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter Problem (12).
    pub const PARAM_PROBLEM: u8 = 12;
}

/// Destination Unreachable codes used by IPVS.
pub mod codes {
    /// Port Unreachable (3).
    pub const PORT_UNREACH: u8 = 3;
    /// Fragmentation Needed and DF set (4).
    pub const FRAG_NEEDED: u8 = 4;
}

/// Whether an ICMP type is an error IPVS relates to a connection: Destination Unreachable (3),
/// Source Quench (4) and Time Exceeded (11) only, as `ip_vs_in_icmp` does (Redirect and
/// Parameter Problem are left to the stack).
#[inline]
pub const fn is_error_type(t: u8) -> bool {
    matches!(
        t,
        types::DEST_UNREACH | types::SOURCE_QUENCH | types::TIME_EXCEEDED
    )
}

/// A view of an ICMP message.
///
/// After [`new_checked`](Packet::new_checked): the 8-byte header is present. For error
/// messages the [`payload`](Packet::payload) is the quoted packet; [`Packet::quoted`] gives
/// the lax view of it.
#[derive(Debug, Clone)]
pub struct Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    icmp_header_accessors!(Layer::Icmpv4);

    /// Next-hop MTU of a Fragmentation Needed message (bytes 6..8, RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::REST + 2)
    }

    /// Whether this is an error message (see [`is_error_type`]).
    #[inline]
    pub fn is_error(&self) -> bool {
        is_error_type(self.msg_type())
    }

    /// The bytes after the 8-byte header (for errors: the quoted packet).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..]
    }

    /// The lax view of the quoted packet of an error message; error offsets count from the
    /// start of this ICMP message.
    #[inline]
    pub fn quoted(&self) -> Result<quote::Packet<&[u8]>, Error> {
        quote::Packet::new_checked(self.payload()).map_err(|e| e.add_offset(field::HEADER_LEN))
    }

    fn sum(&self) -> u16 {
        checksum::data(self.buffer.as_ref())
    }

    /// Whether the checksum over the whole buffer verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        self.sum() == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    /// Sets the message code.
    #[inline]
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the 4 bytes after the checksum.
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        put_u32(self.buffer.as_mut(), field::REST, v);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::IDENT, v);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::SEQ, v);
    }

    /// Sets the next-hop MTU of a Fragmentation Needed message (bytes 4..6 are left alone).
    #[inline]
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::REST + 2, v);
    }

    /// Computes and writes the checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = self.sum();
        self.set_checksum(!sum);
    }

    /// The bytes after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::HEADER_LEN..]
    }

    /// The lax view of the quoted packet, mutable (for the NAT rewrite of ICMP errors).
    #[inline]
    pub fn quoted_mut(&mut self) -> Result<quote::Packet<&mut [u8]>, Error> {
        quote::Packet::new_checked(self.payload_mut()).map_err(|e| e.add_offset(field::HEADER_LEN))
    }
}
