//! Ethernet II frames, optionally with one 802.1Q VLAN tag.
//!
//! ```
//! use lvs_core::wire::{ethertype, EthernetFrame};
//! let mut bytes = [0u8; 18 + 20];
//! bytes[12..14].copy_from_slice(&ethertype::VLAN.to_be_bytes());
//! bytes[14..16].copy_from_slice(&0x2064u16.to_be_bytes()); // PCP 1, VID 100
//! bytes[16..18].copy_from_slice(&ethertype::IPV4.to_be_bytes());
//! let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
//! assert_eq!(frame.vlan_id(), Some(100));
//! assert_eq!(frame.ethertype(), ethertype::IPV4);
//! assert_eq!(frame.header_len(), 18);
//! assert_eq!(frame.payload().len(), 20);
//! ```

use super::{ethertype, get_u16, need, put_u16, Error, Layer, LenSource};

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const HEADER_LEN: usize = 14;
    /// With a tag: the TCI, then the inner Ethernet type.
    pub const VLAN_TCI: usize = 14;
    pub const VLAN_ETHERTYPE: usize = 16;
    pub const TAGGED_HEADER_LEN: usize = 18;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Length of an Ethernet II header with one 802.1Q tag.
pub const TAGGED_HEADER_LEN: usize = field::TAGGED_HEADER_LEN;

/// A view of an Ethernet II frame (without the FCS), with at most one 802.1Q tag.
///
/// A second tag (QinQ) is not parsed: the frame's [`ethertype`](Frame::ethertype) is then
/// 0x8100 again and the caller treats it as not IP.
#[derive(Debug, Clone)]
pub struct Frame<T> {
    buffer: T,
    /// Decided once at construction, so no setter can move the header end.
    tagged: bool,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it.
    ///
    /// # Panics
    /// Panics if the buffer is shorter than 14 bytes; getters panic if it is shorter than the
    /// header (18 bytes with a tag).
    pub fn new_unchecked(buffer: T) -> Frame<T> {
        let tagged = get_u16(buffer.as_ref(), field::ETHERTYPE) == ethertype::VLAN;
        Frame { buffer, tagged }
    }

    /// Wraps a buffer after checking that the whole header (including a tag) is present.
    pub fn new_checked(buffer: T) -> Result<Frame<T>, Error> {
        let b = buffer.as_ref();
        need(
            Layer::Ethernet,
            field::HEADER_LEN,
            b.len(),
            LenSource::Slice,
        )?;
        let tagged = get_u16(b, field::ETHERTYPE) == ethertype::VLAN;
        if tagged {
            need(
                Layer::Vlan,
                4,
                b.len() - field::HEADER_LEN,
                LenSource::Slice,
            )
            .map_err(|e| e.add_offset(field::HEADER_LEN))?;
        }
        Ok(Frame { buffer, tagged })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Whether an 802.1Q tag is present.
    #[inline]
    pub fn is_tagged(&self) -> bool {
        self.tagged
    }

    /// Header length: 14, or 18 with a tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            field::TAGGED_HEADER_LEN
        } else {
            field::HEADER_LEN
        }
    }

    /// Destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }

    /// Source MAC address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    /// The Ethernet type of the payload (the inner one when tagged).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        if self.is_tagged() {
            get_u16(b, field::VLAN_ETHERTYPE)
        } else {
            get_u16(b, field::ETHERTYPE)
        }
    }

    /// The tag control information (PCP, DEI, VID), if tagged.
    #[inline]
    pub fn vlan_tci(&self) -> Option<u16> {
        self.is_tagged()
            .then(|| get_u16(self.buffer.as_ref(), field::VLAN_TCI))
    }

    /// The 12-bit VLAN ID, if tagged.
    #[inline]
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|t| t & 0x0fff)
    }

    /// The payload after the header (and tag).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: [u8; 6]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr);
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: [u8; 6]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr);
    }

    /// Sets the payload's Ethernet type (the inner one when tagged; the tag stays).
    #[inline]
    pub fn set_ethertype(&mut self, value: u16) {
        let off = if self.is_tagged() {
            field::VLAN_ETHERTYPE
        } else {
            field::ETHERTYPE
        };
        put_u16(self.buffer.as_mut(), off, value);
    }

    /// Sets the tag control information; does nothing on an untagged frame (adding a tag
    /// changes the header length, which a view cannot do).
    #[inline]
    pub fn set_vlan_tci(&mut self, tci: u16) {
        if self.is_tagged() {
            put_u16(self.buffer.as_mut(), field::VLAN_TCI, tci);
        }
    }

    /// The payload after the header, mutable.
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
    fn truncated_tag_reports_offset_14() {
        let mut b = [0u8; 16];
        b[12..14].copy_from_slice(&ethertype::VLAN.to_be_bytes());
        assert_eq!(
            Frame::new_checked(&b[..]).unwrap_err(),
            Error::Truncated {
                layer: Layer::Vlan,
                offset: 14,
                required: 4,
                found: 2,
                len_source: LenSource::Slice
            }
        );
        assert!(Frame::new_checked(&b[..13]).is_err());
    }

    #[test]
    fn setters_round_trip() {
        let mut b = [0u8; 30];
        let mut f = Frame::new_checked(&mut b[..]).unwrap();
        f.set_dst_addr([1, 2, 3, 4, 5, 6]);
        f.set_src_addr([7, 8, 9, 10, 11, 12]);
        f.set_ethertype(ethertype::IPV6);
        f.set_vlan_tci(5); // untagged: ignored
        assert_eq!(f.dst_addr(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(f.src_addr(), [7, 8, 9, 10, 11, 12]);
        assert_eq!(f.ethertype(), ethertype::IPV6);
        assert_eq!(f.vlan_tci(), None);
        assert_eq!(f.payload_mut().len(), 16);
    }
}
