//! ICMPv6 messages (RFC 4443). The checksum covers the IPv6 pseudo-header.
//!
//! ```
//! use core::net::IpAddr;
//! use lvs_core::wire::{icmpv6, Icmpv6Packet};
//! let (src, dst): (IpAddr, IpAddr) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
//! let mut bytes = [0u8; 8 + 48];
//! let mut msg = Icmpv6Packet::new_checked(&mut bytes[..]).unwrap();
//! msg.set_msg_type(icmpv6::types::PACKET_TOO_BIG);
//! msg.set_mtu(1280);
//! msg.fill_checksum(&src, &dst);
//! assert!(msg.is_error());
//! assert!(msg.verify_checksum(&src, &dst));
//! assert_eq!(msg.mtu(), 1280);
//! ```

use core::net::IpAddr;

use super::{
    checksum, get_u16, get_u32, need, proto, put_u16, put_u32, quote, Error, Layer, LenSource,
};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const HEADER_LEN: usize = 8;
}

/// Length of the ICMPv6 header (type, code, checksum and the 4-byte rest of header).
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// ICMPv6 message types used by IPVS.
pub mod types {
    /// Destination Unreachable (1).
    pub const DEST_UNREACH: u8 = 1;
    /// Packet Too Big (2).
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time Exceeded (3).
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter Problem (4).
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo Request (128).
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo Reply (129).
    pub const ECHO_REPLY: u8 = 129;
}

/// Whether an ICMPv6 type is an error message (type < 128, RFC 4443 section 2.1); IPVS treats
/// every ICMPv6 error as possibly related to a connection.
#[inline]
pub const fn is_error_type(t: u8) -> bool {
    t < 128
}

/// A view of an ICMPv6 message.
///
/// After [`new_checked`](Packet::new_checked): the 8-byte header is present. For error
/// messages the [`payload`](Packet::payload) is the quoted packet; [`Packet::quoted`] gives
/// the lax view of it.
#[derive(Debug, Clone)]
pub struct Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    icmp_header_accessors!(Layer::Icmpv6);

    /// The MTU of a Packet Too Big message (bytes 4..8).
    #[inline]
    pub fn mtu(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::REST)
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
    /// start of this ICMPv6 message.
    #[inline]
    pub fn quoted(&self) -> Result<quote::Packet<&[u8]>, Error> {
        quote::Packet::new_checked(self.payload()).map_err(|e| e.add_offset(field::HEADER_LEN))
    }

    fn sum(&self, src: &IpAddr, dst: &IpAddr) -> u16 {
        let b = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header(src, dst, proto::ICMPV6, b.len() as u32);
        checksum::combine(&[pseudo, checksum::data(b)])
    }

    /// Whether the checksum over the pseudo-header and the whole buffer verifies.
    #[inline]
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        self.sum(src, dst) == 0xffff
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

    /// Sets the MTU of a Packet Too Big message.
    #[inline]
    pub fn set_mtu(&mut self, v: u32) {
        put_u32(self.buffer.as_mut(), field::REST, v);
    }

    /// Computes and writes the checksum.
    #[inline]
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let sum = self.sum(src, dst);
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
