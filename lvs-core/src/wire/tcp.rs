//! TCP segments (RFC 9293).
//!
//! The view's buffer is the whole segment (the IP payload): TCP has no length field, and the
//! checksum covers every byte of the buffer.
//!
//! ```
//! use lvs_core::wire::{tcp, TcpPacket};
//! # let (src, dst, bytes) = {
//! #     let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [192, 0, 2, 1], 64)
//! #         .tcp(40000, 80, 7, 1024).syn();
//! #     let mut v = Vec::new();
//! #     b.write(&mut v, b"hi").unwrap();
//! #     ("10.0.0.1".parse().unwrap(), "192.0.2.1".parse().unwrap(), v[20..].to_vec())
//! # };
//! let mut seg = TcpPacket::new_checked(bytes).unwrap();
//! assert_eq!(seg.flags(), tcp::flags::SYN);
//! assert_eq!(seg.payload(), b"hi");
//! assert!(seg.verify_checksum(&src, &dst));
//! seg.set_dst_port(8080);
//! assert!(!seg.verify_checksum(&src, &dst));
//! seg.fill_checksum(&src, &dst);
//! assert!(seg.verify_checksum(&src, &dst));
//! ```

use core::net::IpAddr;

use super::{
    checksum, clamped, clamped_mut, get_u16, get_u32, need, proto, put_u16, put_u32, Error, Field,
    Layer, LenSource,
};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const MIN_HEADER_LEN: usize = 20;
}

/// Length of a TCP header without options.
pub const MIN_HEADER_LEN: usize = field::MIN_HEADER_LEN;
/// Byte offset of the checksum field in the TCP header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// TCP flag bits as found in the flags byte (byte 13).
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;
}

/// A view of a TCP segment.
///
/// After [`new_checked`](Packet::new_checked): the fixed header is present, the data offset is
/// at least 5 words and the header (options included) is in the buffer.
#[derive(Debug, Clone)]
pub struct Packet<T> {
    buffer: T,
}

/// Validates as [`Packet::new_checked`]; returns the header length.
#[inline]
pub(super) fn check(b: &[u8], len_source: LenSource) -> Result<usize, Error> {
    need(Layer::Tcp, field::MIN_HEADER_LEN, b.len(), len_source)?;
    let header_len = usize::from(b[field::DATA_OFF] >> 4) * 4;
    if header_len < field::MIN_HEADER_LEN {
        return Err(Error::Invalid {
            layer: Layer::Tcp,
            offset: 0,
            field: Field::HeaderLen,
            found: header_len as u32,
        });
    }
    need(Layer::Tcp, header_len, b.len(), len_source)?;
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flags byte (see [`flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// FIN flag.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    /// SYN flag.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    /// RST flag.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    /// ACK flag.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    /// Window size.
    #[inline]
    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Option bytes (clamped to the buffer).
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamped(
            self.buffer.as_ref(),
            field::MIN_HEADER_LEN,
            self.header_len(),
        )
    }

    /// Payload after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        clamped(b, self.header_len(), b.len())
    }

    /// Whether the checksum over the pseudo-header and the whole buffer verifies.
    #[inline]
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        let b = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header(src, dst, proto::TCP, b.len() as u32);
        checksum::combine(&[pseudo, checksum::data(b)]) == 0xffff
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        put_u32(self.buffer.as_mut(), field::SEQ, v);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        put_u32(self.buffer.as_mut(), field::ACK, v);
    }

    /// Sets the header length in bytes (rounded down to words; at most 60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let words = (len / 4).min(15) as u8;
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | (words << 4);
    }

    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    /// Sets the window size.
    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::WINDOW, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// Computes and writes the checksum over the pseudo-header and the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header(src, dst, proto::TCP, b.len() as u32);
        let sum = checksum::combine(&[pseudo, checksum::data(b)]);
        self.set_checksum(!sum);
    }

    /// Payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        let b = self.buffer.as_mut();
        let end = b.len();
        clamped_mut(b, h, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_offset_errors() {
        let mut b = [0u8; 24];
        b[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::Invalid {
                layer: Layer::Tcp,
                offset: 0,
                field: Field::HeaderLen,
                found: 16
            }
        );
        b[12] = 0x70;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::Truncated {
                layer: Layer::Tcp,
                offset: 0,
                required: 28,
                found: 24,
                len_source: LenSource::Slice
            }
        );
        b[12] = 0x60;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.options().len(), 4);
        assert!(p.payload().is_empty());
    }

    #[test]
    fn setters_round_trip_and_clamp() {
        let mut b = [0u8; 20];
        b[12] = 0x50;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_seq_number(0x0102_0304);
        p.set_ack_number(0xa0b0_c0d0);
        p.set_flags(flags::SYN | flags::ACK);
        p.set_header_len(60);
        assert_eq!(p.seq_number(), 0x0102_0304);
        assert_eq!(p.ack_number(), 0xa0b0_c0d0);
        assert!(p.syn() && p.ack() && !p.fin() && !p.rst());
        assert!(p.options().is_empty() && p.payload_mut().is_empty());
    }
}
