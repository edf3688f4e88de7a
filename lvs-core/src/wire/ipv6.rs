//! IPv6 packets (RFC 8200) and a bounded walk over their extension headers.
//!
//! ```
//! use lvs_core::wire::{proto, Ipv6Packet};
//! # let bytes = {
//! #     use etherparse::*;
//! #     let ip = Ipv6Header { source: [0x20, 1, 0xd, 0xb8, 0,0,0,0,0,0,0,0,0,0,0,1],
//! #         destination: [0x20, 1, 0xd, 0xb8, 0,0,0,0,0,0,0,0,0,0,0,2], hop_limit: 64, ..Default::default() };
//! #     let exts = Ipv6Extensions {
//! #         destination_options: Some(Ipv6RawExtHeader::new_raw(ip_number::TCP, &[1, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]).unwrap()),
//! #         ..Default::default() };
//! #     let b = PacketBuilder::ip(IpHeaders::Ipv6(ip, exts)).tcp(1000, 443, 1, 100);
//! #     let mut v = Vec::new();
//! #     b.write(&mut v, &[]).unwrap();
//! #     v
//! # };
//! // An IPv6 packet with a 16-byte Destination Options header in front of TCP.
//! let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
//! assert_eq!(ip.next_header(), proto::IPV6_OPTS);
//! let t = ip.transport().unwrap();
//! assert_eq!(t.protocol, proto::TCP);
//! assert_eq!(t.offset, 40 + 16);
//! assert_eq!(t.fragment, None);
//! ```

use core::net::Ipv6Addr;

use super::{
    clamped, clamped_mut, get_u16, get_u32, need, proto, put_u16, put_u32, Error, Field, Layer,
    LenSource,
};

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
    pub const HEADER_LEN: usize = 40;

    /// Generic extension header: next header, length in 8-octet units not counting the first.
    pub const EXT_NEXT_HEADER: usize = 0;
    pub const EXT_LEN: usize = 1;
    /// Fragment header: offset (13 bits) << 3 | res | M, then the identification.
    pub const FRAG_OFFSET_M: usize = 2;
    pub const FRAG_IDENT: usize = 4;
    pub const FRAG_HEADER_LEN: usize = 8;
}

/// Length of the IPv6 fixed header.
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// How many extension headers [`Packet::transport`] walks at most. Real traffic carries two or
/// three; the bound keeps the per-packet work fixed whatever the bytes say.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// A view of an IPv6 packet (fixed header; see [`Packet::transport`] for the extension
/// headers).
///
/// After [`new_checked`](Packet::new_checked): version 6, the fixed header and the payload
/// length are in the buffer. Jumbograms (payload length 0 with a Jumbo option) are not
/// supported: payload length 0 means an empty payload.
#[derive(Debug, Clone)]
pub struct Packet<T> {
    buffer: T,
}

/// What follows the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// The upper-layer protocol (the last next-header value; [`proto::IPV6_NONXT`] or
    /// [`proto::ESP`] end the walk too).
    pub protocol: u8,
    /// Byte offset of the upper-layer header from the start of the IPv6 header.
    pub offset: usize,
    /// The Fragment header, if one was found.
    pub fragment: Option<Fragment>,
}

/// The contents of an IPv6 Fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Fragment offset in bytes.
    pub offset: u16,
    /// The M (more fragments) flag.
    pub more: bool,
    /// Identification.
    pub ident: u32,
    /// Byte offset of the Fragment header from the start of the IPv6 header.
    pub header_offset: usize,
}

impl Fragment {
    /// Whether this is the first fragment (offset 0): only it carries the L4 header.
    pub const fn is_first(&self) -> bool {
        self.offset == 0
    }
}

/// Walks the extension headers of `b` (an IPv6 packet cut at its end, or at the end of what an
/// ICMP error quoted). At most [`MAX_EXTENSION_HEADERS`]; stops after the Fragment header of a
/// non-first fragment (what follows is not a header). `len_source` names what cut `b`.
pub(super) fn walk(b: &[u8], first: u8, len_source: LenSource) -> Result<Transport, Error> {
    let mut fragment: Option<Fragment> = None;
    let mut next = first;
    let mut off = field::HEADER_LEN;
    let mut seen = 0;
    loop {
        // The headers Linux walks (`ipv6_ext_hdr`, used by `ipv6_find_hdr` when IPVS fills its
        // header info): Mobility, HIP and Shim6 are upper-layer protocols there, and so here.
        let len = match next {
            proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS => 0,
            proto::AH => 1,
            proto::IPV6_FRAG => 2,
            _ => {
                return Ok(Transport {
                    protocol: next,
                    offset: off,
                    fragment,
                })
            }
        };
        if seen == MAX_EXTENSION_HEADERS {
            return Err(Error::TooManyExtensionHeaders {
                offset: off,
                limit: MAX_EXTENSION_HEADERS,
                next_header: next,
            });
        }
        seen += 1;
        let avail = b.len().saturating_sub(off);
        let ext = |required| {
            need(Layer::Ipv6Ext, required, avail, len_source).map_err(|e| e.add_offset(off))
        };
        ext(2)?;
        let h = &b[off..];
        let this_len = match len {
            // Generic: (Hdr Ext Len + 1) * 8 octets.
            0 => (usize::from(h[field::EXT_LEN]) + 1) * 8,
            // AH (RFC 4302): (Payload Len + 2) * 4 octets.
            1 => (usize::from(h[field::EXT_LEN]) + 2) * 4,
            _ => field::FRAG_HEADER_LEN,
        };
        ext(this_len)?;
        let following = h[field::EXT_NEXT_HEADER];
        if len == 2 {
            let raw = get_u16(h, field::FRAG_OFFSET_M);
            let frag = Fragment {
                offset: raw & 0xfff8,
                more: raw & 1 != 0,
                ident: get_u32(h, field::FRAG_IDENT),
                header_offset: off,
            };
            fragment = Some(frag);
            if !frag.is_first() {
                // What follows a non-first fragment's header is payload, not a header.
                return Ok(Transport {
                    protocol: following,
                    offset: off + this_len,
                    fragment,
                });
            }
        }
        next = following;
        off += this_len;
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    ///
    /// # Panics
    /// Getters of fixed fields panic if the buffer is shorter than 40 bytes.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after validating the fixed header (see [`Packet`]).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        check(buffer.as_ref())?;
        Ok(Packet { buffer })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (6 after `new_checked`).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    /// Traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// Total length: 40 + payload length.
    #[inline]
    pub fn total_len(&self) -> usize {
        field::HEADER_LEN + usize::from(self.payload_len())
    }

    /// The fixed header's next-header field.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(a)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(a)
    }

    /// The payload after the fixed header (extension headers included), clamped to the buffer.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), field::HEADER_LEN, self.total_len())
    }

    /// Walks the extension headers (at most [`MAX_EXTENSION_HEADERS`]) to the upper-layer
    /// header. Errors name the extension header that does not fit in the payload length.
    pub fn transport(&self) -> Result<Transport, Error> {
        let b = clamped(self.buffer.as_ref(), 0, self.total_len());
        walk(b, self.next_header(), LenSource::Ipv6PayloadLen)
    }
}

/// Validates the fixed header as [`Packet::new_checked`] does.
#[inline]
pub(super) fn check(b: &[u8]) -> Result<(), Error> {
    need(Layer::Ipv6, field::HEADER_LEN, b.len(), LenSource::Slice)?;
    let version = b[field::VER_TC_FLOW] >> 4;
    if version != 6 {
        return Err(Error::Invalid {
            layer: Layer::Ipv6,
            offset: 0,
            field: Field::Version,
            found: version.into(),
        });
    }
    let total = field::HEADER_LEN + usize::from(get_u16(b, field::PAYLOAD_LEN));
    need(Layer::Ipv6, total, b.len(), LenSource::Slice)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version nibble.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[0];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.buffer.as_mut();
        b[0] = (b[0] & 0xf0) | (tc >> 4);
        b[1] = (b[1] & 0x0f) | (tc << 4);
    }

    /// Sets the flow label (low 20 bits of `v`).
    #[inline]
    pub fn set_flow_label(&mut self, v: u32) {
        let b = self.buffer.as_mut();
        let raw = get_u32(b, 0);
        put_u32(b, 0, (raw & 0xfff0_0000) | (v & 0x000f_ffff));
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, v);
    }

    /// Sets the fixed header's next-header field.
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = v;
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// The payload, mutable (clamped to the buffer).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let t = self.total_len();
        clamped_mut(self.buffer.as_mut(), field::HEADER_LEN, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_exts(exts: &[(u8, &[u8])], last: u8) -> Vec<u8> {
        // exts: (type, body without the 2 leading bytes); bodies are padded to 8n - 2.
        let mut b = vec![0x60, 0, 0, 0, 0, 0, exts.first().map_or(last, |e| e.0), 64];
        b.extend_from_slice(&[0; 32]);
        for (i, (_, body)) in exts.iter().enumerate() {
            let next = exts.get(i + 1).map_or(last, |e| e.0);
            let total = (body.len() + 2).div_ceil(8) * 8;
            b.push(next);
            b.push((total / 8 - 1) as u8);
            b.extend_from_slice(body);
            b.resize(b.len() + total - 2 - body.len(), 0);
        }
        b.extend_from_slice(&[0; 8]);
        let pl = (b.len() - 40) as u16;
        b[4..6].copy_from_slice(&pl.to_be_bytes());
        b
    }

    #[test]
    fn walks_generic_headers_and_stops_at_the_bound() {
        let b = with_exts(&[(0, &[0; 6]), (60, &[0; 14])], proto::UDP);
        let t = Packet::new_checked(&b[..]).unwrap().transport().unwrap();
        assert_eq!(t.protocol, proto::UDP);
        assert_eq!(t.offset, 40 + 8 + 16);
        assert_eq!(t.fragment, None);

        let many: Vec<(u8, &[u8])> = (0..=MAX_EXTENSION_HEADERS)
            .map(|_| (proto::IPV6_OPTS, &[0u8; 6][..]))
            .collect();
        let b = with_exts(&many, proto::TCP);
        assert_eq!(
            Packet::new_checked(&b[..])
                .unwrap()
                .transport()
                .unwrap_err(),
            Error::TooManyExtensionHeaders {
                offset: 40 + 8 * MAX_EXTENSION_HEADERS,
                limit: MAX_EXTENSION_HEADERS,
                next_header: proto::IPV6_OPTS
            }
        );
    }

    #[test]
    fn only_the_headers_linux_walks_are_walked() {
        // Mobility (135) is an upper-layer protocol to `ipv6_find_hdr`.
        let b = with_exts(&[(proto::IPV6_OPTS, &[0; 6])], 135);
        let t = Packet::new_checked(&b[..]).unwrap().transport().unwrap();
        assert_eq!((t.protocol, t.offset), (135, 48));
        // AH counts its length in 4-byte words plus 2.
        let mut b = with_exts(&[(proto::AH, &[0; 14])], proto::UDP);
        b[41] = 2; // (2 + 2) * 4 = 16 bytes
        let t = Packet::new_checked(&b[..]).unwrap().transport().unwrap();
        assert_eq!((t.protocol, t.offset), (proto::UDP, 56));
    }

    #[test]
    fn extension_header_past_payload_len_is_precise() {
        let mut b = with_exts(&[(60, &[0; 6])], proto::TCP);
        b[41] = 3; // claims 32 bytes, payload holds 16
        assert_eq!(
            Packet::new_checked(&b[..])
                .unwrap()
                .transport()
                .unwrap_err(),
            Error::Truncated {
                layer: Layer::Ipv6Ext,
                offset: 40,
                required: 32,
                found: 16,
                len_source: LenSource::Ipv6PayloadLen
            }
        );
    }

    #[test]
    fn non_first_fragment_stops_the_walk() {
        let mut body = [0u8; 6];
        body[0..2].copy_from_slice(&((185u16 << 3) | 1).to_be_bytes());
        body[2..6].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
        let mut b = with_exts(&[(proto::IPV6_FRAG, &body)], proto::TCP);
        // Fragment header's length byte is reserved (0); with_exts wrote 0 already.
        b[41] = 0;
        let t = Packet::new_checked(&b[..]).unwrap().transport().unwrap();
        assert_eq!(t.protocol, proto::TCP);
        assert_eq!(t.offset, 48);
        let f = t.fragment.unwrap();
        assert_eq!((f.offset, f.more, f.ident), (185 * 8, true, 0xdead_beef));
        assert!(!f.is_first());
    }

    #[test]
    fn setters_round_trip() {
        let mut b = with_exts(&[], proto::TCP);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_traffic_class(0xb8);
        p.set_flow_label(0xabcde);
        p.set_hop_limit(3);
        p.set_payload_len(u16::MAX);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0xabcde);
        assert_eq!(p.version(), 6);
        assert_eq!(p.hop_limit(), 3);
        assert_eq!(p.payload().len(), 8);
        assert!(p.transport().is_ok());
    }
}
