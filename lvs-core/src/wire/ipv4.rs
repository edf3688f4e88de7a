//! IPv4 packets (RFC 791), options included.
//!
//! ```
//! use core::net::Ipv4Addr;
//! use lvs_core::wire::{checksum, Ipv4Packet};
//! # let mut bytes = {
//! #     let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [192, 0, 2, 1], 64).udp(5000, 53);
//! #     let mut v = Vec::new();
//! #     b.write(&mut v, &[1, 2, 3]).unwrap();
//! #     v
//! # };
//! let mut ip = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
//! assert_eq!(ip.dst_addr(), Ipv4Addr::new(192, 0, 2, 1));
//! assert_eq!(ip.payload().len(), 8 + 3);
//!
//! // Decrement the TTL and patch the header checksum incrementally (TTL shares a word with
//! // the protocol).
//! let old_word = u16::from_be_bytes([ip.ttl(), ip.protocol()]);
//! ip.set_ttl(ip.ttl() - 1);
//! let new_word = u16::from_be_bytes([ip.ttl(), ip.protocol()]);
//! ip.set_checksum(checksum::update_u16(ip.checksum(), old_word, new_word));
//! assert!(ip.verify_checksum());
//! assert_eq!(ip.ttl(), 63);
//! ```

use core::net::Ipv4Addr;

use super::{
    checksum, clamped, clamped_mut, get_u16, need, put_u16, Error, Field, Layer, LenSource,
};

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
    pub const MIN_HEADER_LEN: usize = 20;
}

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = field::MIN_HEADER_LEN;
/// Length of an IPv4 header with the most options (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

const DF: u16 = 0x4000;
const MF: u16 = 0x2000;
const FRAG_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
///
/// After [`new_checked`](Packet::new_checked): version 4, IHL >= 5, the header (options
/// included) is in the buffer, header length <= total length <= buffer length. Bytes after
/// the total length (link-layer padding) are not part of [`payload`](Packet::payload).
#[derive(Debug, Clone)]
pub struct Packet<T> {
    buffer: T,
}

/// Validates the header of `b` as [`Packet::new_checked`] does; returns the header length.
#[inline]
pub(super) fn check(b: &[u8]) -> Result<usize, Error> {
    need(
        Layer::Ipv4,
        field::MIN_HEADER_LEN,
        b.len(),
        LenSource::Slice,
    )?;
    let version = b[field::VER_IHL] >> 4;
    if version != 4 {
        return Err(Error::Invalid {
            layer: Layer::Ipv4,
            offset: 0,
            field: Field::Version,
            found: version.into(),
        });
    }
    let header_len = usize::from(b[field::VER_IHL] & 0x0f) * 4;
    if header_len < field::MIN_HEADER_LEN {
        return Err(Error::Invalid {
            layer: Layer::Ipv4,
            offset: 0,
            field: Field::HeaderLen,
            found: header_len as u32,
        });
    }
    need(Layer::Ipv4, header_len, b.len(), LenSource::Slice)?;
    let total_len = usize::from(get_u16(b, field::TOTAL_LEN));
    if total_len < header_len {
        return Err(Error::Invalid {
            layer: Layer::Ipv4,
            offset: 0,
            field: Field::TotalLen,
            found: total_len as u32,
        });
    }
    need(Layer::Ipv4, total_len, b.len(), LenSource::Slice)?;
    Ok(header_len)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    ///
    /// # Panics
    /// Getters of fixed fields panic if the buffer is shorter than 20 bytes.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after validating the header (see [`Packet`]).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        check(buffer.as_ref())?;
        Ok(Packet { buffer })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4 after `new_checked`).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Differentiated services code point (6 bits).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification (2 bits).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The whole TOS byte (DSCP and ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length (header and payload) in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// The Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & DF != 0
    }

    /// The More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & MF != 0
    }

    /// Fragment offset in bytes (the field times 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FRAG_MASK) << 3
    }

    /// Whether this is a fragment (More Fragments set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & (MF | FRAG_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload (`IPPROTO_*`).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    /// The options bytes (between the fixed header and the payload).
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamped(
            self.buffer.as_ref(),
            field::MIN_HEADER_LEN,
            self.header_len(),
        )
    }

    /// The payload: from the header end to the total length (clamped to the buffer).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(
            self.buffer.as_ref(),
            self.header_len(),
            usize::from(self.total_len()),
        )
    }

    /// Whether the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(clamped(self.buffer.as_ref(), 0, self.header_len())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version nibble.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the header length in bytes (rounded down to 32-bit words; at most 60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let words = (len / 4).min(15) as u8;
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | words;
    }

    /// Sets the DSCP (6 bits).
    #[inline]
    pub fn set_dscp(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (v << 2);
    }

    /// Sets the ECN bits (2 bits).
    #[inline]
    pub fn set_ecn(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (v & 0x03);
    }

    /// Sets the whole TOS byte.
    #[inline]
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::TOTAL_LEN, v);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::IDENT, v);
    }

    fn set_flag(&mut self, mask: u16, on: bool) {
        let b = self.buffer.as_mut();
        let raw = get_u16(b, field::FLAGS_FRAG);
        put_u16(
            b,
            field::FLAGS_FRAG,
            if on { raw | mask } else { raw & !mask },
        );
    }

    /// Sets the Don't Fragment flag.
    #[inline]
    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flag(DF, on);
    }

    /// Sets the More Fragments flag.
    #[inline]
    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flag(MF, on);
    }

    /// Sets the fragment offset in bytes (rounded down to 8).
    #[inline]
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let b = self.buffer.as_mut();
        let raw = get_u16(b, field::FLAGS_FRAG);
        put_u16(b, field::FLAGS_FRAG, (raw & !FRAG_MASK) | (bytes >> 3));
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Computes and writes the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(clamped(self.buffer.as_ref(), 0, self.header_len()));
        self.set_checksum(!sum);
    }

    /// The options bytes, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        clamped_mut(self.buffer.as_mut(), field::MIN_HEADER_LEN, h)
    }

    /// The payload, mutable (header end to total length, clamped to the buffer).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), usize::from(self.total_len()));
        clamped_mut(self.buffer.as_mut(), h, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0] = 0x45;
        b[2..4].copy_from_slice(&24u16.to_be_bytes());
        b
    }

    #[test]
    fn rejects_each_bad_field_precisely() {
        let mut b = header();
        b[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::Invalid {
                layer: Layer::Ipv4,
                offset: 0,
                field: Field::Version,
                found: 6
            }
        );
        b[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err().reason(),
            super::super::Reason::BadHeaderLen
        );
        b[0] = 0x47; // 28-byte header in a 24-byte buffer
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::Truncated {
                layer: Layer::Ipv4,
                offset: 0,
                required: 28,
                found: 24,
                len_source: LenSource::Slice
            }
        );
        let mut b = header();
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(Error::Invalid {
                field: Field::TotalLen,
                found: 19,
                ..
            })
        ));
        b[2..4].copy_from_slice(&25u16.to_be_bytes());
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(Error::Truncated {
                required: 25,
                found: 24,
                ..
            })
        ));
    }

    #[test]
    fn setters_never_break_accessors() {
        let mut b = header();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_header_len(60);
        p.set_total_len(u16::MAX);
        assert_eq!(p.options().len(), 4);
        assert!(p.payload().is_empty());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_frag_offset(8 * 100);
        p.set_more_frags(true);
        assert_eq!(p.frag_offset(), 800);
        assert!(p.is_fragment() && p.more_frags() && !p.dont_frag());
    }
}
