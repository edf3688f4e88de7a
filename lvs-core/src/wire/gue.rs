//! GUE (Generic UDP Encapsulation, draft-ietf-intarea-gue) variant 0, as IPVS's
//! `--tun-type gue` emits it (spec 3.4).
//!
//! The view's buffer is the UDP payload: the GUE header (4 bytes plus Hlen 32-bit words of
//! optional fields), then the inner packet. Header layout: version (2 bits, 0) | C (1 bit,
//! 1 = control message) | Hlen (5 bits); Proto/ctype (the inner IP protocol: 4 or 41); flags
//! (16 bits; 0x0001 = private flags present, used for remote checksum offload).
//!
//! ```
//! use lvs_core::wire::{proto, GuePacket};
//! let mut bytes = [0u8; 4 + 40];
//! let mut gue = GuePacket::init(&mut bytes[..], proto::IPV6).unwrap();
//! gue.payload_mut()[0] = 0x60;
//! let view = GuePacket::new_checked(&bytes[..]).unwrap();
//! assert_eq!(view.protocol(), proto::IPV6);
//! assert_eq!((view.header_len(), view.is_control()), (4, false));
//! assert_eq!(view.payload().len(), 40);
//! ```

use super::{get_u16, need, put_u16, Error, Field, Layer, LenSource};

mod field {
    pub const VER_C_HLEN: usize = 0;
    pub const PROTO_CTYPE: usize = 1;
    pub const FLAGS: usize = 2;
    pub const BASE_LEN: usize = 4;
}

/// Length of the GUE base header.
pub const BASE_HEADER_LEN: usize = field::BASE_LEN;
/// The "private flags present" bit in the flags field (remote checksum offload).
pub const FLAG_PRIV: u16 = 0x0001;

/// A view of a GUE packet (variant 0).
///
/// After [`new_checked`](Packet::new_checked): version 0 and the base header plus the Hlen
/// words of optional fields are present. GUE variant 1 (direct IP encapsulation, version bits
/// 01) is not parsed: IPVS never emits it. The header length is fixed when the view is made.
#[derive(Debug, Clone)]
pub struct Packet<T> {
    buffer: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    ///
    /// # Panics
    /// Panics if the buffer is empty; getters panic if it is shorter than the header.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        let header_len = field::BASE_LEN + usize::from(buffer.as_ref()[0] & 0x1f) * 4;
        Packet { buffer, header_len }
    }

    /// Wraps a buffer after validating the header (see [`Packet`]).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let b = buffer.as_ref();
        need(Layer::Gue, field::BASE_LEN, b.len(), LenSource::Slice)?;
        let version = b[field::VER_C_HLEN] >> 6;
        if version != 0 {
            return Err(Error::Invalid {
                layer: Layer::Gue,
                offset: 0,
                field: Field::Version,
                found: version.into(),
            });
        }
        let header_len = field::BASE_LEN + usize::from(b[field::VER_C_HLEN] & 0x1f) * 4;
        need(Layer::Gue, header_len, b.len(), LenSource::GueHlen)?;
        Ok(Packet { buffer, header_len })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version bits (0 after `new_checked`).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_C_HLEN] >> 6
    }

    /// Whether this is a control message (C bit) rather than data.
    #[inline]
    pub fn is_control(&self) -> bool {
        self.buffer.as_ref()[field::VER_C_HLEN] & 0x20 != 0
    }

    /// Header length in bytes: 4 + Hlen * 4.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Proto/ctype: the inner IP protocol of a data message (4 or 41 from IPVS).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTO_CTYPE]
    }

    /// The flags field.
    #[inline]
    pub fn flags(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLAGS)
    }

    /// The optional fields (Hlen words).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::BASE_LEN..self.header_len]
    }

    /// The inner packet.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes a data header without optional fields (version 0, C 0, Hlen 0, flags 0) for
    /// inner protocol `protocol`, as IPVS emits it without remote checksum offload; returns the
    /// checked view.
    pub fn init(mut buffer: T, protocol: u8) -> Result<Packet<T>, Error> {
        let b = buffer.as_mut();
        need(Layer::Gue, field::BASE_LEN, b.len(), LenSource::Slice)?;
        b[field::VER_C_HLEN] = 0;
        b[field::PROTO_CTYPE] = protocol;
        put_u16(b, field::FLAGS, 0);
        Ok(Packet {
            buffer,
            header_len: field::BASE_LEN,
        })
    }

    /// Sets Proto/ctype.
    #[inline]
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTO_CTYPE] = v;
    }

    /// Sets the flags field.
    #[inline]
    pub fn set_flags(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::FLAGS, v);
    }

    /// The optional fields, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let h = self.header_len;
        &mut self.buffer.as_mut()[field::BASE_LEN..h]
    }

    /// The inner packet, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len;
        &mut self.buffer.as_mut()[h..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hlen_and_version_errors() {
        let mut b = [0u8; 8];
        b[0] = 2; // Hlen 2: 12-byte header in 8 bytes
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::Truncated {
                layer: Layer::Gue,
                offset: 0,
                required: 12,
                found: 8,
                len_source: LenSource::GueHlen
            }
        );
        b[0] = 0x40;
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(Error::Invalid {
                field: Field::Version,
                found: 1,
                ..
            })
        ));
        b[0] = 0x21;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_control());
        assert_eq!(
            (p.header_len(), p.options().len(), p.payload().len()),
            (8, 4, 0)
        );
    }
}
