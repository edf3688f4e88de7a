//! The lax view of the packet quoted inside an ICMP error.
//!
//! An ICMP error quotes the IP header of the packet that caused it and at least the first 8
//! bytes of its L4 header (RFC 792; ICMPv6 quotes as much as fits, RFC 4443). Those 8 bytes
//! hold the TCP/UDP/SCTP ports, which is all IPVS reads (`ip_vs_in_icmp` / `ip_vs_out_icmp`).
//! The quoted length fields describe the *original* packet and are not checked against what
//! was quoted; nothing past the first 8 L4 bytes is guaranteed.
//!
//! ```
//! use core::net::IpAddr;
//! use lvs_core::wire::{icmpv4, proto, Icmpv4Packet};
//! # let bytes = {
//! #     use etherparse::*;
//! #     // The packet that caused the error: a TCP SYN from 192.0.2.1 to 10.0.0.9:80.
//! #     let inner = PacketBuilder::ipv4([192, 0, 2, 1], [10, 0, 0, 9], 1).tcp(40000, 80, 1, 100).syn();
//! #     let mut q = Vec::new();
//! #     inner.write(&mut q, &[0; 100]).unwrap();
//! #     q.truncate(20 + 8);
//! #     let outer = PacketBuilder::ipv4([10, 0, 0, 254], [192, 0, 2, 1], 64)
//! #         .icmpv4(Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit));
//! #     let mut v = Vec::new();
//! #     outer.write(&mut v, &q).unwrap();
//! #     v[20..].to_vec()
//! # };
//! let mut msg = bytes; // an ICMP Time Exceeded message quoting a TCP SYN
//! let mut icmp = Icmpv4Packet::new_checked(&mut msg[..]).unwrap();
//! assert_eq!(icmp.msg_type(), icmpv4::types::TIME_EXCEEDED);
//! let mut q = icmp.quoted_mut().unwrap();
//! assert_eq!(q.protocol(), proto::TCP);
//! assert_eq!(q.dst_addr(), "10.0.0.9".parse::<IpAddr>().unwrap());
//! assert_eq!((q.src_port(), q.dst_port()), (40000, 80));
//! // NAT of the quoted packet: destination port and address, then its header checksum.
//! q.set_dst_port(8080);
//! let mut ip = q.ipv4_mut().unwrap();
//! ip.set_dst_addr("10.1.1.1".parse().unwrap());
//! ip.fill_checksum();
//! assert!(ip.verify_checksum());
//! icmp.fill_checksum();
//! assert!(icmp.verify_checksum());
//! ```

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{get_u16, ipv4, ipv6, need, put_u16, Error, Field, Layer, LenSource};

/// Bytes of the L4 header an ICMP error is guaranteed to quote.
pub const L4_QUOTED_LEN: usize = 8;

/// A lax view of a quoted IP packet: IPv4 or IPv6 header (IPv6 extension headers walked within
/// the quoted bytes) followed by at least [`L4_QUOTED_LEN`] bytes of L4 header.
#[derive(Debug, Clone)]
pub struct Packet<T> {
    buffer: T,
    /// Offset of the L4 header, fixed at construction so setters cannot move it.
    l4_offset: usize,
    protocol: u8,
    v6: bool,
    /// IPv6 Fragment header seen (offset, more); IPv4 reads its header instead.
    v6_fragment: Option<(u16, bool)>,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps the quoted bytes (the ICMP error's payload) after checking that the IP header and
    /// [`L4_QUOTED_LEN`] bytes of L4 header are present.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let b = buffer.as_ref();
        need(Layer::QuotedIp, 1, b.len(), LenSource::Slice)?;
        let version = b[0] >> 4;
        let (l4_offset, protocol, v6, v6_fragment) = match version {
            4 => {
                need(
                    Layer::QuotedIp,
                    ipv4::MIN_HEADER_LEN,
                    b.len(),
                    LenSource::Slice,
                )?;
                let h = usize::from(b[0] & 0x0f) * 4;
                if h < ipv4::MIN_HEADER_LEN {
                    return Err(Error::Invalid {
                        layer: Layer::QuotedIp,
                        offset: 0,
                        field: Field::HeaderLen,
                        found: h as u32,
                    });
                }
                need(Layer::QuotedIp, h, b.len(), LenSource::Slice)?;
                (h, b[9], false, None)
            }
            6 => {
                need(Layer::QuotedIp, ipv6::HEADER_LEN, b.len(), LenSource::Slice)?;
                let t = ipv6::walk(b, b[6], LenSource::Slice)?;
                (
                    t.offset,
                    t.protocol,
                    true,
                    t.fragment.map(|f| (f.offset, f.more)),
                )
            }
            v => {
                return Err(Error::Invalid {
                    layer: Layer::QuotedIp,
                    offset: 0,
                    field: Field::Version,
                    found: v.into(),
                })
            }
        };
        need(
            Layer::QuotedL4,
            L4_QUOTED_LEN,
            b.len() - l4_offset,
            LenSource::Slice,
        )
        .map_err(|e| e.add_offset(l4_offset))?;
        Ok(Packet {
            buffer,
            l4_offset,
            protocol,
            v6,
            v6_fragment,
        })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Whether the quoted packet is IPv6.
    #[inline]
    pub fn is_ipv6(&self) -> bool {
        self.v6
    }

    /// The quoted L4 protocol (after IPv6 extension headers).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// Offset of the quoted L4 header (the IP header length, extension headers included).
    #[inline]
    pub fn l4_offset(&self) -> usize {
        self.l4_offset
    }

    /// Quoted source address.
    #[inline]
    pub fn src_addr(&self) -> IpAddr {
        let b = self.buffer.as_ref();
        if self.v6 {
            let mut a = [0; 16];
            a.copy_from_slice(&b[8..24]);
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15]))
        }
    }

    /// Quoted destination address.
    #[inline]
    pub fn dst_addr(&self) -> IpAddr {
        let b = self.buffer.as_ref();
        if self.v6 {
            let mut a = [0; 16];
            a.copy_from_slice(&b[24..40]);
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            IpAddr::V4(Ipv4Addr::new(b[16], b[17], b[18], b[19]))
        }
    }

    /// Whether the quoted packet was a fragment.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        if self.v6 {
            self.v6_fragment.is_some()
        } else {
            get_u16(self.buffer.as_ref(), 6) & 0x3fff != 0
        }
    }

    /// Whether the quoted packet was a non-first fragment: then its "L4 bytes" are payload and
    /// the ports are meaningless (IPVS ignores such errors).
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        if self.v6 {
            matches!(self.v6_fragment, Some((off, _)) if off != 0)
        } else {
            get_u16(self.buffer.as_ref(), 6) & 0x1fff != 0
        }
    }

    /// First 16 bits of the quoted L4 header (the source port of TCP/UDP/SCTP).
    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), self.l4_offset)
    }

    /// Second 16 bits of the quoted L4 header (the destination port of TCP/UDP/SCTP).
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), self.l4_offset + 2)
    }

    /// The quoted L4 bytes (at least [`L4_QUOTED_LEN`]).
    #[inline]
    pub fn l4(&self) -> &[u8] {
        &self.buffer.as_ref()[self.l4_offset..]
    }

    /// The quoted IPv4 header as an [`ipv4::Packet`] view (`None` for IPv6). Its length
    /// fields describe the original packet; its accessors clamp to the quoted bytes.
    #[inline]
    pub fn ipv4(&self) -> Option<ipv4::Packet<&[u8]>> {
        (!self.v6).then(|| ipv4::Packet::new_unchecked(self.buffer.as_ref()))
    }

    /// The quoted IPv6 header as an [`ipv6::Packet`] view (`None` for IPv4).
    #[inline]
    pub fn ipv6(&self) -> Option<ipv6::Packet<&[u8]>> {
        self.v6
            .then(|| ipv6::Packet::new_unchecked(self.buffer.as_ref()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the quoted source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        let o = self.l4_offset;
        put_u16(self.buffer.as_mut(), o, v);
    }

    /// Sets the quoted destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        let o = self.l4_offset + 2;
        put_u16(self.buffer.as_mut(), o, v);
    }

    /// The quoted L4 bytes, mutable.
    #[inline]
    pub fn l4_mut(&mut self) -> &mut [u8] {
        let o = self.l4_offset;
        &mut self.buffer.as_mut()[o..]
    }

    /// The quoted IPv4 header, mutable (addresses, then `fill_checksum`).
    #[inline]
    pub fn ipv4_mut(&mut self) -> Option<ipv4::Packet<&mut [u8]>> {
        (!self.v6).then(|| ipv4::Packet::new_unchecked(self.buffer.as_mut()))
    }

    /// The quoted IPv6 header, mutable.
    #[inline]
    pub fn ipv6_mut(&mut self) -> Option<ipv6::Packet<&mut [u8]>> {
        self.v6
            .then(|| ipv6::Packet::new_unchecked(self.buffer.as_mut()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_eight_l4_bytes_after_options() {
        let mut b = [0u8; 24 + 7];
        b[0] = 0x46;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::Truncated {
                layer: Layer::QuotedL4,
                offset: 24,
                required: 8,
                found: 7,
                len_source: LenSource::Slice
            }
        );
        let mut b = [0u8; 24 + 8];
        b[0] = 0x46;
        b[9] = 17;
        // The quoted total length may exceed what was quoted.
        b[2..4].copy_from_slice(&1500u16.to_be_bytes());
        b[24..28].copy_from_slice(&[0x13, 0x88, 0x00, 0x35]);
        let q = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((q.src_port(), q.dst_port()), (5000, 53));
        assert_eq!(q.l4_offset(), 24);
        assert!(!q.is_fragment());
        assert_eq!(q.ipv4().unwrap().payload().len(), 8);
    }

    #[test]
    fn rejects_other_versions() {
        assert_eq!(
            Packet::new_checked(&[0x50u8; 64][..]).unwrap_err().layer(),
            Layer::QuotedIp
        );
        assert!(Packet::new_checked(&[][..]).is_err());
    }
}
