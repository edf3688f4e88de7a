//! UDP datagrams (RFC 768), with the checksum-zero rules of IPv4 and IPv6.
//!
//! ```
//! use core::net::IpAddr;
//! use lvs_core::wire::UdpPacket;
//! let (src, dst): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "192.0.2.1".parse().unwrap());
//! let mut bytes = [0u8; 8 + 4];
//! let mut udp = UdpPacket::new_unchecked(&mut bytes[..]);
//! udp.set_src_port(5353);
//! udp.set_dst_port(53);
//! udp.set_len(12);
//! udp.payload_mut().copy_from_slice(b"abcd");
//! // Checksum 0 on IPv4 means "none" and verifies; on IPv6 it is invalid.
//! assert!(udp.verify_checksum(&src, &dst));
//! udp.fill_checksum(&src, &dst);
//! assert_ne!(udp.checksum(), 0);
//! assert!(udp.verify_checksum(&src, &dst));
//! ```

use core::net::IpAddr;

use super::{
    checksum, clamped, clamped_mut, get_u16, need, proto, put_u16, Error, Field, Layer, LenSource,
};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const HEADER_LEN: usize = 8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Byte offset of the checksum field in the UDP header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view of a UDP datagram.
///
/// After [`new_checked`](Packet::new_checked): the header is present and
/// 8 <= length field <= buffer length. Bytes after the length field's end are not part of the
/// datagram (and not covered by the checksum).
#[derive(Debug, Clone)]
pub struct Packet<T> {
    buffer: T,
}

/// Validates as [`Packet::new_checked`].
#[inline]
pub(super) fn check(b: &[u8], len_source: LenSource) -> Result<(), Error> {
    need(Layer::Udp, field::HEADER_LEN, b.len(), len_source)?;
    let len = usize::from(get_u16(b, field::LENGTH));
    if len < field::HEADER_LEN {
        return Err(Error::Invalid {
            layer: Layer::Udp,
            offset: 0,
            field: Field::UdpLength,
            found: len as u32,
        });
    }
    need(Layer::Udp, len, b.len(), len_source)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    ///
    /// # Panics
    /// Getters panic if the buffer is shorter than 8 bytes.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after validating the header (see [`Packet`]).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        check(buffer.as_ref(), LenSource::Slice)?;
        Ok(Packet { buffer })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field (header and payload).
    #[inline]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the length field says there is no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= field::HEADER_LEN
    }

    /// Checksum field (0: none, allowed on IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Payload: from the header to the length field's end (clamped to the buffer).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(
            self.buffer.as_ref(),
            field::HEADER_LEN,
            usize::from(self.len()),
        )
    }

    fn sum(&self, src: &IpAddr, dst: &IpAddr) -> u16 {
        let len = self.len();
        let pseudo = checksum::pseudo_header(src, dst, proto::UDP, u32::from(len));
        let data = clamped(self.buffer.as_ref(), 0, usize::from(len));
        checksum::combine(&[pseudo, checksum::data(data)])
    }

    /// Whether the checksum verifies. A zero checksum means "none" on IPv4 (verifies) and is
    /// invalid on IPv6 (RFC 8200 section 8.1); the family is the source address's.
    #[inline]
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        self.sum(src, dst) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Computes and writes the checksum; a computed 0 is written as 0xFFFF (0 would mean
    /// "no checksum").
    #[inline]
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let sum = self.sum(src, dst);
        self.set_checksum(checksum::udp_nonzero(!sum));
    }

    /// Payload, mutable (clamped to the buffer).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        clamped_mut(self.buffer.as_mut(), field::HEADER_LEN, l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_errors() {
        let mut b = [0u8; 10];
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::Invalid {
                layer: Layer::Udp,
                offset: 0,
                field: Field::UdpLength,
                found: 7
            }
        );
        b[4..6].copy_from_slice(&11u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::Truncated {
                layer: Layer::Udp,
                offset: 0,
                required: 11,
                found: 10,
                len_source: LenSource::Slice
            }
        );
        b[4..6].copy_from_slice(&9u16.to_be_bytes());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 1);
    }

    #[test]
    fn zero_checksum_rules_per_family() {
        let mut b = [0u8; 8];
        b[4..6].copy_from_slice(&8u16.to_be_bytes());
        let p = Packet::new_checked(&b[..]).unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(p.verify_checksum(&v4, &v4));
        assert!(!p.verify_checksum(&v6, &v6));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the payload word so the one's-complement sum is 0xffff (checksum 0).
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let dst: IpAddr = "10.0.0.2".parse().unwrap();
        let mut b = [0u8; 10];
        b[4..6].copy_from_slice(&10u16.to_be_bytes());
        let partial = {
            let p = Packet::new_checked(&b[..]).unwrap();
            p.sum(&src, &dst)
        };
        b[8..10].copy_from_slice(&(!partial).to_be_bytes());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.sum(&src, &dst), 0xffff);
        p.fill_checksum(&src, &dst);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(&src, &dst));
    }
}
