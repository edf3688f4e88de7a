//! One-pass classification of an IP packet: the director's per-packet entry point.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::ops::Range;

use super::{
    checksum, ethernet, ethertype, get_u16, icmpv4, icmpv6, ipv4, ipv6, need, proto, tcp, udp,
    Error, Field, Layer, LenSource,
};

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// What [`classify`] found in one IP packet. Small and `Copy`; offsets index the buffer that
/// was classified.
///
/// Fields that do not apply are 0: ports for ICMP, ICMP type/code for TCP/UDP, TCP flags for
/// anything but TCP, and all L4 fields when [`l4_present`](Classified::l4_present) is false.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified {
    /// Address family.
    pub family: Family,
    /// L4 protocol (IPv4 protocol; for IPv6 the protocol after the extension headers).
    pub protocol: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TCP / UDP / SCTP source port.
    pub src_port: u16,
    /// TCP / UDP / SCTP destination port.
    pub dst_port: u16,
    /// ICMP / ICMPv6 type.
    pub icmp_type: u8,
    /// ICMP / ICMPv6 code.
    pub icmp_code: u8,
    /// TCP flags byte (see [`tcp::flags`]).
    pub tcp_flags: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Whether the ICMP message is an error IPVS relates to a connection (ICMPv4 types 3, 4,
    /// 11; ICMPv6 types below 128).
    pub icmp_error: bool,
    /// Whether the packet is a fragment (IPv4 MF or offset; IPv6 Fragment header).
    pub is_fragment: bool,
    /// Whether it is a first fragment (offset 0; also true for unfragmented packets).
    pub first_fragment: bool,
    /// Whether the L4 header of TCP, UDP, SCTP, ICMP or ICMPv6 was parsed (false for other
    /// protocols and for non-first fragments).
    pub l4_present: bool,
    /// Offset of the IP header.
    pub l3_offset: usize,
    /// Offset of the L4 header (after IPv4 options / IPv6 extension headers).
    pub l4_offset: usize,
    /// Offset of the L4 payload (after the TCP header with options, the UDP / ICMP 8-byte
    /// header, the SCTP common header); equals `l4_offset` when no L4 header was parsed.
    pub payload_offset: usize,
    /// IP total length (IPv4 total length; IPv6 40 + payload length). Bytes beyond it
    /// (link-layer padding) are not part of the packet.
    pub total_len: usize,
}

impl Classified {
    /// The IP packet's bytes in the classified buffer.
    #[inline]
    pub fn ip_range(&self) -> Range<usize> {
        self.l3_offset..self.l3_offset + self.total_len
    }

    /// The L4 segment (header and payload) in the classified buffer.
    #[inline]
    pub fn l4_range(&self) -> Range<usize> {
        self.l4_offset..self.l3_offset + self.total_len
    }

    /// Whether the packet is a non-first fragment (no L4 header to read).
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        self.is_fragment && !self.first_fragment
    }
}

/// SCTP common header length (ports, verification tag, checksum).
const SCTP_HEADER_LEN: usize = 12;

/// Classifies one IP packet (IPv4 or IPv6, by its version nibble) starting at byte 0.
///
/// Validates what Linux validates before IPVS sees a packet: the IP version, the IPv4 header
/// length, total length and header checksum (`ip_rcv`), the IPv6 payload length and the
/// extension-header chain (bounded by [`ipv6::MAX_EXTENSION_HEADERS`]); then the L4 header of
/// TCP (data offset), UDP (length, unless fragmented), SCTP, ICMP and ICMPv6 (8 bytes) must be
/// present within the IP length. L4 checksums are not verified here (IPVS verifies them only
/// on the paths that need it; see the views' `verify_checksum`). Errors carry byte offsets from
/// the start of `buf`.
///
/// ```
/// use lvs_core::wire::{classify, proto, tcp, Family};
/// # let bytes = {
/// #     let b = etherparse::PacketBuilder::ipv6([0x20, 1, 0xd, 0xb8, 0,0,0,0,0,0,0,0,0,0,0,1],
/// #         [0x20, 1, 0xd, 0xb8, 0,0,0,0,0,0,0,0,0,0,0,2], 64).tcp(40000, 443, 1, 1000).syn();
/// #     let mut v = Vec::new();
/// #     b.write(&mut v, b"abc").unwrap();
/// #     v
/// # };
/// let c = classify(&bytes).unwrap();
/// assert_eq!((c.family, c.protocol), (Family::V6, proto::TCP));
/// assert_eq!((c.src_port, c.dst_port, c.tcp_flags), (40000, 443, tcp::flags::SYN));
/// assert_eq!((c.l4_offset, c.payload_offset, c.total_len), (40, 60, 63));
/// assert!(!c.is_fragment && c.first_fragment && !c.icmp_error);
///
/// let err = classify(&bytes[..50]).unwrap_err();
/// assert_eq!(err.reason(), lvs_core::wire::Reason::Truncated);
/// ```
#[inline]
pub fn classify(buf: &[u8]) -> Result<Classified, Error> {
    let Some(&first) = buf.first() else {
        return Err(Error::Truncated {
            layer: Layer::Ip,
            offset: 0,
            required: 1,
            found: 0,
            len_source: LenSource::Slice,
        });
    };
    match first >> 4 {
        4 => classify_v4(buf),
        6 => classify_v6(buf),
        v => Err(Error::Invalid {
            layer: Layer::Ip,
            offset: 0,
            field: Field::Version,
            found: v.into(),
        }),
    }
}

/// Classifies an Ethernet II frame (one optional 802.1Q tag) carrying IPv4 or IPv6; offsets in
/// the result and in errors count from the start of the frame. Other Ethernet types are
/// `Invalid { field: EtherType }` ([`Reason::NotIp`](super::Reason::NotIp)).
pub fn classify_ethernet(frame: &[u8]) -> Result<Classified, Error> {
    let f = ethernet::Frame::new_checked(frame)?;
    let hl = f.header_len();
    let et = f.ethertype();
    if et != ethertype::IPV4 && et != ethertype::IPV6 {
        return Err(Error::Invalid {
            layer: Layer::Ethernet,
            offset: 0,
            field: Field::EtherType,
            found: et.into(),
        });
    }
    let mut c = classify(&frame[hl..]).map_err(|e| e.add_offset(hl))?;
    c.l3_offset += hl;
    c.l4_offset += hl;
    c.payload_offset += hl;
    Ok(c)
}

#[inline(always)]
fn classify_v4(buf: &[u8]) -> Result<Classified, Error> {
    // Fast path: one fixed-size borrow serves every fixed field, so the reads below need no
    // bounds checks; anything unusual goes to `ipv4::check` for the precise error.
    let Some(h) = buf.first_chunk::<{ ipv4::MIN_HEADER_LEN }>() else {
        return Err(Error::Truncated {
            layer: Layer::Ipv4,
            offset: 0,
            required: ipv4::MIN_HEADER_LEN,
            found: buf.len(),
            len_source: LenSource::Slice,
        });
    };
    let header_len = usize::from(h[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if header_len < ipv4::MIN_HEADER_LEN || total_len < header_len || total_len > buf.len() {
        // Exactly the cases `check` rejects (the version is 4 here): its error is precise.
        ipv4::check(buf)?;
    }
    let sum = if header_len == ipv4::MIN_HEADER_LEN {
        let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
        checksum::fold(w(0) + w(4) + w(8) + w(12) + w(16))
    } else {
        checksum::data(&buf[..header_len])
    };
    if sum != 0xffff {
        return Err(Error::Checksum {
            layer: Layer::Ipv4,
            offset: 0,
        });
    }
    let frag = u16::from_be_bytes([h[6], h[7]]);
    let is_fragment = frag & 0x3fff != 0;
    let first_fragment = frag & 0x1fff == 0;
    let protocol = h[9];
    let l4 = if first_fragment {
        l4(
            protocol,
            Family::V4,
            is_fragment,
            &buf[header_len..total_len],
            header_len,
            LenSource::Ipv4TotalLen,
        )?
    } else {
        L4::default()
    };
    Ok(Classified {
        family: Family::V4,
        protocol,
        src: IpAddr::V4(Ipv4Addr::from([h[12], h[13], h[14], h[15]])),
        dst: IpAddr::V4(Ipv4Addr::from([h[16], h[17], h[18], h[19]])),
        src_port: l4.src_port,
        dst_port: l4.dst_port,
        icmp_type: l4.icmp_type,
        icmp_code: l4.icmp_code,
        tcp_flags: l4.tcp_flags,
        ttl: h[8],
        icmp_error: l4.icmp_error,
        is_fragment,
        first_fragment,
        l4_present: l4.present,
        l3_offset: 0,
        l4_offset: header_len,
        payload_offset: header_len + l4.header_len,
        total_len,
    })
}

#[inline(always)]
fn classify_v6(buf: &[u8]) -> Result<Classified, Error> {
    ipv6::check(buf)?;
    let total_len = ipv6::HEADER_LEN + usize::from(get_u16(buf, 4));
    let packet = &buf[..total_len];
    let next = buf[6];
    let t = match next {
        // Fast path: no extension headers.
        proto::TCP | proto::UDP | proto::ICMPV6 | proto::SCTP => ipv6::Transport {
            protocol: next,
            offset: ipv6::HEADER_LEN,
            fragment: None,
        },
        _ => ipv6::walk(packet, next, LenSource::Ipv6PayloadLen)?,
    };
    let first_fragment = t.fragment.is_none_or(|f| f.is_first());
    let is_fragment = t.fragment.is_some();
    let l4 = if first_fragment {
        l4(
            t.protocol,
            Family::V6,
            is_fragment,
            &packet[t.offset..],
            t.offset,
            LenSource::Ipv6PayloadLen,
        )?
    } else {
        L4::default()
    };
    let mut src = [0u8; 16];
    src.copy_from_slice(&buf[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&buf[24..40]);
    Ok(Classified {
        family: Family::V6,
        protocol: t.protocol,
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        src_port: l4.src_port,
        dst_port: l4.dst_port,
        icmp_type: l4.icmp_type,
        icmp_code: l4.icmp_code,
        tcp_flags: l4.tcp_flags,
        ttl: buf[7],
        icmp_error: l4.icmp_error,
        is_fragment,
        first_fragment,
        l4_present: l4.present,
        l3_offset: 0,
        l4_offset: t.offset,
        payload_offset: t.offset + l4.header_len,
        total_len,
    })
}

/// The L4 part of a [`Classified`].
#[derive(Clone, Copy, Default)]
struct L4 {
    src_port: u16,
    dst_port: u16,
    icmp_type: u8,
    icmp_code: u8,
    tcp_flags: u8,
    icmp_error: bool,
    present: bool,
    /// Bytes from the L4 header to its payload (0 when not parsed).
    header_len: usize,
}

/// Parses the L4 header of a non-fragment or first fragment: `seg` runs from the L4 header
/// (at byte `off` of the classified buffer) to the end of the IP packet.
#[inline(always)]
fn l4(
    protocol: u8,
    family: Family,
    is_fragment: bool,
    seg: &[u8],
    off: usize,
    len_source: LenSource,
) -> Result<L4, Error> {
    let at = |e: Error| e.add_offset(off);
    let ports = |header_len| L4 {
        src_port: get_u16(seg, 0),
        dst_port: get_u16(seg, 2),
        present: true,
        header_len,
        ..L4::default()
    };
    let icmp = |error: fn(u8) -> bool| L4 {
        icmp_type: seg[0],
        icmp_code: seg[1],
        icmp_error: error(seg[0]),
        present: true,
        header_len: icmpv4::HEADER_LEN,
        ..L4::default()
    };
    Ok(match protocol {
        proto::TCP => {
            // Stricter than IPVS, which reads only the 20-byte header and never the data
            // offset (the real server's TCP drops a bad one): a data offset below 5 words or
            // past the packet is an error here, so that every later view of the segment is
            // consistent and the director drops what no TCP stack would accept.
            // Fast path as in `classify_v4`: the fixed header by one borrow.
            if let Some(t) = seg.first_chunk::<{ tcp::MIN_HEADER_LEN }>() {
                let header_len = usize::from(t[12] >> 4) * 4;
                if header_len >= tcp::MIN_HEADER_LEN && header_len <= seg.len() {
                    return Ok(L4 {
                        src_port: u16::from_be_bytes([t[0], t[1]]),
                        dst_port: u16::from_be_bytes([t[2], t[3]]),
                        tcp_flags: t[13],
                        present: true,
                        header_len,
                        ..L4::default()
                    });
                }
            }
            let header_len = tcp::check(seg, len_source).map_err(at)?;
            L4 {
                tcp_flags: seg[13],
                ..ports(header_len)
            }
        }
        proto::UDP => {
            if is_fragment {
                // A first fragment carries the header, but not the whole datagram its length
                // field describes.
                need(Layer::Udp, udp::HEADER_LEN, seg.len(), len_source).map_err(at)?;
            } else {
                udp::check(seg, len_source).map_err(at)?;
            }
            ports(udp::HEADER_LEN)
        }
        proto::SCTP => {
            need(Layer::Sctp, SCTP_HEADER_LEN, seg.len(), len_source).map_err(at)?;
            ports(SCTP_HEADER_LEN)
        }
        proto::ICMP if family == Family::V4 => {
            need(Layer::Icmpv4, icmpv4::HEADER_LEN, seg.len(), len_source).map_err(at)?;
            icmp(icmpv4::is_error_type)
        }
        proto::ICMPV6 if family == Family::V6 => {
            need(Layer::Icmpv6, icmpv6::HEADER_LEN, seg.len(), len_source).map_err(at)?;
            icmp(icmpv6::is_error_type)
        }
        _ => L4::default(),
    })
}
