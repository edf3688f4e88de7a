//! GRE (RFC 2784 with the RFC 2890 key and sequence extensions), as IPVS's `--tun-type gre`
//! uses it (spec 3.4): version 0, the C bit only when `--tun-csum` is set, protocol type
//! 0x0800 / 0x86DD.
//!
//! The view's buffer is the IP payload of protocol 47: GRE header, then the inner packet. The
//! GRE checksum (when present) covers the header and the inner packet.
//!
//! ```
//! use lvs_core::wire::{ethertype, GrePacket};
//! let mut bytes = [0u8; 8 + 20];
//! // Build a header with a checksum, as `--tun-csum` does.
//! let mut gre = GrePacket::init(&mut bytes[..], true, ethertype::IPV4).unwrap();
//! gre.payload_mut()[0] = 0x45;
//! gre.fill_checksum();
//! assert_eq!(gre.header_len(), 8);
//! assert!(gre.checksum().is_some() && gre.verify_checksum());
//! let view = GrePacket::new_checked(&bytes[..]).unwrap();
//! assert_eq!(view.protocol_type(), ethertype::IPV4);
//! assert_eq!(view.payload().len(), 20);
//! ```

use super::{checksum, get_u16, get_u32, need, put_u16, put_u32, Error, Field, Layer, LenSource};

mod field {
    pub const FLAGS_VERSION: usize = 0;
    pub const PROTOCOL: usize = 2;
    /// Optional fields follow in this order when their bit is set: checksum + reserved1,
    /// key, sequence number; 4 bytes each.
    pub const OPTIONAL: usize = 4;
    pub const BASE_LEN: usize = 4;
}

/// Checksum present.
pub const FLAG_C: u16 = 0x8000;
/// Routing present (rejected, as Linux does).
pub const FLAG_R: u16 = 0x4000;
/// Key present.
pub const FLAG_K: u16 = 0x2000;
/// Sequence number present.
pub const FLAG_S: u16 = 0x1000;
const VERSION_MASK: u16 = 0x0007;

/// Length of the GRE base header (flags, version, protocol type).
pub const BASE_HEADER_LEN: usize = field::BASE_LEN;

/// GRE header length for the given flags (4, plus 4 per optional field).
pub const fn header_len_for(flags: u16) -> usize {
    let mut n = field::BASE_LEN;
    if flags & FLAG_C != 0 {
        n += 4;
    }
    if flags & FLAG_K != 0 {
        n += 4;
    }
    if flags & FLAG_S != 0 {
        n += 4;
    }
    n
}

/// A view of a GRE packet (header and inner packet).
///
/// After [`new_checked`](Packet::new_checked): version 0, no routing bit, and the base header
/// with every optional field its flags announce is present. The layout (which optional fields
/// exist) is fixed when the view is made.
#[derive(Debug, Clone)]
pub struct Packet<T> {
    buffer: T,
    flags: u16,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it (the layout is read from its flags).
    ///
    /// # Panics
    /// Panics if the buffer is shorter than 4 bytes; getters panic if it is shorter than the
    /// header its flags announce.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        let flags = get_u16(buffer.as_ref(), field::FLAGS_VERSION);
        Packet { buffer, flags }
    }

    /// Wraps a buffer after validating the header (see [`Packet`]).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let b = buffer.as_ref();
        need(Layer::Gre, field::BASE_LEN, b.len(), LenSource::Slice)?;
        let flags = get_u16(b, field::FLAGS_VERSION);
        if flags & VERSION_MASK != 0 {
            return Err(Error::Invalid {
                layer: Layer::Gre,
                offset: 0,
                field: Field::Version,
                found: u32::from(flags & VERSION_MASK),
            });
        }
        if flags & FLAG_R != 0 {
            return Err(Error::Invalid {
                layer: Layer::Gre,
                offset: 0,
                field: Field::GreFlags,
                found: u32::from(flags),
            });
        }
        need(
            Layer::Gre,
            header_len_for(flags),
            b.len(),
            LenSource::GreFlags,
        )?;
        Ok(Packet { buffer, flags })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags and version word as it was when the view was made.
    #[inline]
    pub fn flags(&self) -> u16 {
        self.flags
    }

    /// Header length: 4 plus 4 for each optional field present.
    #[inline]
    pub fn header_len(&self) -> usize {
        header_len_for(self.flags)
    }

    /// Protocol type of the inner packet (an Ethernet type: 0x0800, 0x86DD).
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// The checksum field, if the C bit is set.
    #[inline]
    pub fn checksum(&self) -> Option<u16> {
        (self.flags & FLAG_C != 0).then(|| get_u16(self.buffer.as_ref(), field::OPTIONAL))
    }

    fn key_offset(&self) -> usize {
        field::OPTIONAL + if self.flags & FLAG_C != 0 { 4 } else { 0 }
    }

    /// The key, if the K bit is set.
    #[inline]
    pub fn key(&self) -> Option<u32> {
        (self.flags & FLAG_K != 0).then(|| get_u32(self.buffer.as_ref(), self.key_offset()))
    }

    /// The sequence number, if the S bit is set.
    #[inline]
    pub fn sequence(&self) -> Option<u32> {
        let off = self.key_offset() + if self.flags & FLAG_K != 0 { 4 } else { 0 };
        (self.flags & FLAG_S != 0).then(|| get_u32(self.buffer.as_ref(), off))
    }

    /// The inner packet.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum verifies; `true` when there is none (the C bit is clear).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        self.flags & FLAG_C == 0 || checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes a version-0 base header with protocol type `protocol_type`, and a zeroed
    /// checksum field when `with_checksum` (fill it with [`fill_checksum`](Packet::fill_checksum)
    /// once the inner packet is in place), as IPVS emits it; returns the checked view.
    pub fn init(
        mut buffer: T,
        with_checksum: bool,
        protocol_type: u16,
    ) -> Result<Packet<T>, Error> {
        let flags = if with_checksum { FLAG_C } else { 0 };
        let b = buffer.as_mut();
        need(Layer::Gre, header_len_for(flags), b.len(), LenSource::Slice)?;
        put_u16(b, field::FLAGS_VERSION, flags);
        put_u16(b, field::PROTOCOL, protocol_type);
        if with_checksum {
            put_u32(b, field::OPTIONAL, 0);
        }
        Ok(Packet { buffer, flags })
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::PROTOCOL, v);
    }

    /// Computes and writes the checksum; does nothing when the header has no checksum field.
    #[inline]
    pub fn fill_checksum(&mut self) {
        if self.flags & FLAG_C != 0 {
            put_u16(self.buffer.as_mut(), field::OPTIONAL, 0);
            let sum = checksum::data(self.buffer.as_ref());
            put_u16(self.buffer.as_mut(), field::OPTIONAL, !sum);
        }
    }

    /// The inner packet, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_in_order() {
        let mut b = [0u8; 16 + 4];
        b[0..2].copy_from_slice(&(FLAG_C | FLAG_K | FLAG_S).to_be_bytes());
        b[2..4].copy_from_slice(&0x86ddu16.to_be_bytes());
        b[8..12].copy_from_slice(&7u32.to_be_bytes());
        b[12..16].copy_from_slice(&9u32.to_be_bytes());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.header_len(), 16);
        assert_eq!((p.key(), p.sequence()), (Some(7), Some(9)));
        assert_eq!(p.payload().len(), 4);
        assert!(!p.verify_checksum() || p.checksum() == Some(0xffff));
        p.fill_checksum();
        assert!(p.verify_checksum());
    }

    #[test]
    fn rejects_version_routing_and_short_optional_fields() {
        let mut b = [0u8; 8];
        b[1] = 1;
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(Error::Invalid {
                field: Field::Version,
                found: 1,
                ..
            })
        ));
        b[0..2].copy_from_slice(&FLAG_R.to_be_bytes());
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(Error::Invalid {
                field: Field::GreFlags,
                ..
            })
        ));
        b[0..2].copy_from_slice(&(FLAG_C | FLAG_K).to_be_bytes());
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::Truncated {
                layer: Layer::Gre,
                offset: 0,
                required: 12,
                found: 8,
                len_source: LenSource::GreFlags
            }
        );
        let p = Packet::new_checked(&[0u8; 4][..]).unwrap();
        assert!(p.verify_checksum() && p.checksum().is_none() && p.key().is_none());
    }
}
