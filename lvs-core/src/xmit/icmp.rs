//! ICMP errors: the ones the director builds (spec 3.1 Time Exceeded, 3.1/3.4 Fragmentation
//! Needed and Packet Too Big, 6.1 port unreachable), and the NAT translation of related
//! errors that quote a load-balanced flow (spec 3.7).
//!
//! Built errors follow Linux's `icmp_send` / `icmp6_send` (RFC 792 / RFC 4443 limits):
//! - IPv4: IP header (20 bytes, TOS `(tos & 0x1e) | 0xc0` of the offending packet, ID from
//!   the caller, DF clear, TTL 64, protocol 1), ICMP header, then as much of the offending
//!   packet (from its IP header) as fits in 576 bytes in total (in the route MTU, when the
//!   mapping's is smaller).
//! - IPv6: IPv6 header (traffic class 0, flow label 0, hop limit 64, next header 58), ICMPv6
//!   header, then as much of the offending packet as fits in 1280 bytes.
//! - From the offending packet's destination when it travelled client → real server (it
//!   was addressed to the director, which the kernel answers from), from the director's
//!   own address for a forwarded reply.
//! - Never about an ICMP error, a non-first fragment, a packet to a multicast or broadcast
//!   address (IPv6: but Packet Too Big), or from a source naming no single host (the
//!   kernel's rules for sending errors).
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::wire::{classify, icmpv4, Icmpv4Packet};
//! use lvs_core::xmit::icmp::{build_error, ErrorKind};
//! # let pkt = {
//! #     let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [203, 0, 113, 1], 64)
//! #         .udp(5353, 53);
//! #     let mut v = Vec::new();
//! #     b.write(&mut v, &[7; 1000]).unwrap();
//! #     v
//! # };
//! let mut out = [0u8; 576];
//! let me = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 254));
//! let n = build_error(&mut out, &pkt, me, ErrorKind::PortUnreachable, 1).unwrap();
//! assert_eq!(n, 576);
//! let c = classify(&out[..n]).unwrap();
//! assert_eq!((c.src, c.dst, c.icmp_type, c.icmp_code), (me, "192.0.2.7".parse().unwrap(), 3, 3));
//! let icmp = Icmpv4Packet::new_checked(&out[20..n]).unwrap();
//! assert!(icmp.verify_checksum());
//! assert_eq!(icmp.payload(), &pkt[..548]);
//! ```

use core::net::IpAddr;

use super::{Checked, Direction, DropReason, Mapping, Verdict};
use crate::rules::Forward;
use crate::wire::{
    icmpv4, icmpv6, proto, Classified, Family, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet,
    QuotedPacket,
};

/// Total size limit of an ICMPv4 error (RFC 1812 4.3.2.3; Linux `icmp_send`).
pub const IPV4_ERROR_MAX: usize = 576;
/// Total size limit of an ICMPv6 error (the IPv6 minimum MTU; RFC 4443 2.4 (c)).
pub const IPV6_ERROR_MAX: usize = 1280;
/// TTL / hop limit of the errors we build (Linux's default `ip_default_ttl` / hop limit).
pub const ERROR_TTL: u8 = 64;

/// The error to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// TTL / hop limit exceeded in transit: ICMP 11/0, ICMPv6 3/0.
    TimeExceeded,
    /// ICMP 3/4 with the next-hop MTU (IPv4 only).
    FragNeeded {
        /// Next-hop MTU.
        mtu: u16,
    },
    /// ICMPv6 2/0 with the MTU (IPv6 only).
    PacketTooBig {
        /// MTU.
        mtu: u32,
    },
    /// ICMP 3/3, ICMPv6 1/4 (spec 6.1, no destination available).
    PortUnreachable,
}

/// Why [`build_error`] could not build an error. Nothing useful was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IcmpError {
    /// The offending packet does not start with a valid IPv4 / IPv6 header.
    #[error("offending packet: no valid IP header at byte 0")]
    Malformed,
    /// The local address is of the other family, or the kind does not exist in this family.
    #[error("error kind or source address does not fit the packet's family")]
    Family,
    /// The output buffer cannot hold the headers, the quoted IP header and 8 bytes of L4.
    #[error("output buffer of {found} bytes, {required} needed")]
    OutTooSmall {
        /// Bytes needed.
        required: usize,
        /// Bytes available.
        found: usize,
    },
}

/// Builds an ICMP error about `original` (an IP packet from its first byte) into `out`, from
/// `src` (the address the kernel answers from: the original's destination when it was sent
/// to the director, else the director's own address) to the original's source; returns its length. `ip_id` is
/// the IPv4 identification (ignored for IPv6). See the [module docs](self) for the fields.
pub fn build_error(
    out: &mut [u8],
    original: &[u8],
    src: IpAddr,
    kind: ErrorKind,
    ip_id: u16,
) -> Result<usize, IcmpError> {
    let version = original.first().map(|b| b >> 4);
    match (version, src) {
        (Some(4), IpAddr::V4(src)) => {
            let p = Ipv4Packet::new_checked(original).map_err(|_| IcmpError::Malformed)?;
            let (t, code, rest) = match kind {
                ErrorKind::TimeExceeded => (icmpv4::types::TIME_EXCEEDED, 0, 0),
                ErrorKind::FragNeeded { mtu } => (
                    icmpv4::types::DEST_UNREACH,
                    icmpv4::codes::FRAG_NEEDED,
                    u32::from(mtu),
                ),
                ErrorKind::PortUnreachable => {
                    (icmpv4::types::DEST_UNREACH, icmpv4::codes::PORT_UNREACH, 0)
                }
                ErrorKind::PacketTooBig { .. } => return Err(IcmpError::Family),
            };
            let orig_len = usize::from(p.total_len()).min(original.len());
            let min_quote = (p.header_len() + 8).min(orig_len);
            let quoted = &original[..orig_len];
            let (tos, dst) = (p.tos(), p.src_addr());
            write_v4_error(
                out,
                quoted,
                min_quote,
                tos,
                src,
                dst,
                (t, code, rest),
                ip_id,
            )
        }
        (Some(6), IpAddr::V6(src)) => {
            let p = Ipv6Packet::new_checked(original).map_err(|_| IcmpError::Malformed)?;
            let (t, code, rest) = match kind {
                ErrorKind::TimeExceeded => (icmpv6::types::TIME_EXCEEDED, 0, 0),
                ErrorKind::PacketTooBig { mtu } => (icmpv6::types::PACKET_TOO_BIG, 0, mtu),
                ErrorKind::PortUnreachable => (icmpv6::types::DEST_UNREACH, 4, 0),
                ErrorKind::FragNeeded { .. } => return Err(IcmpError::Family),
            };
            let orig_len = p.total_len().min(original.len());
            let min_quote = (crate::wire::ipv6::HEADER_LEN + 8).min(orig_len);
            let hdr = 40 + icmpv6::HEADER_LEN;
            let room = out.len().min(IPV6_ERROR_MAX).saturating_sub(hdr);
            if room < min_quote {
                return Err(IcmpError::OutTooSmall {
                    required: hdr + min_quote,
                    found: out.len(),
                });
            }
            let q = orig_len.min(room);
            let total = hdr + q;
            let dst = p.src_addr();
            out[hdr..total].copy_from_slice(&original[..q]);
            out[..hdr].fill(0);
            let mut ip = Ipv6Packet::new_unchecked(&mut out[..total]);
            ip.set_version(6);
            // In range: total <= 1280.
            ip.set_payload_len((total - 40) as u16);
            ip.set_next_header(proto::ICMPV6);
            ip.set_hop_limit(ERROR_TTL);
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
            let mut icmp = Icmpv6Packet::new_unchecked(&mut out[40..total]);
            icmp.set_msg_type(t);
            icmp.set_code(code);
            icmp.set_rest_of_header(rest);
            icmp.fill_checksum(&IpAddr::V6(src), &IpAddr::V6(dst));
            Ok(total)
        }
        (Some(4 | 6), _) => Err(IcmpError::Family),
        _ => Err(IcmpError::Malformed),
    }
}

/// Builds the IPv4 ICMP error of the tunnel special case of spec 3.7: an error of type
/// `msg_type` / `code` with `rest` as bytes 4..8 of the ICMP header, from `src` to `dst`,
/// quoting `quoted` (the client's original packet as far as the error we received quoted it:
/// often truncated, so its IP total length is not checked against it) up to 576 bytes in
/// total. The IP header fields are those of [`build_error`]; TOS from the quoted header.
/// Returns the length.
#[allow(clippy::too_many_arguments)]
pub fn build_relayed_v4(
    out: &mut [u8],
    quoted: &[u8],
    src: core::net::Ipv4Addr,
    dst: core::net::Ipv4Addr,
    msg_type: u8,
    code: u8,
    rest: u32,
    ip_id: u16,
) -> Result<usize, IcmpError> {
    let (Some(&ver_ihl), Some(&tos)) = (quoted.first(), quoted.get(1)) else {
        return Err(IcmpError::Malformed);
    };
    let ihl = usize::from(ver_ihl & 0x0f) * 4;
    if ver_ihl >> 4 != 4 || ihl < 20 || quoted.len() < ihl + 8 {
        return Err(IcmpError::Malformed);
    }
    write_v4_error(
        out,
        quoted,
        ihl + 8,
        tos,
        src,
        dst,
        (msg_type, code, rest),
        ip_id,
    )
}

/// Writes an IPv4 ICMP error (the fields of the [module docs](self)) into `out`: the
/// `(type, code, rest of header)` message quoting as much of `quoted` as fits in 576 bytes,
/// at least `min_quote` bytes; TOS derived from the quoted packet's `tos`. Returns its length.
#[allow(clippy::too_many_arguments)]
fn write_v4_error(
    out: &mut [u8],
    quoted: &[u8],
    min_quote: usize,
    tos: u8,
    src: core::net::Ipv4Addr,
    dst: core::net::Ipv4Addr,
    (msg_type, code, rest): (u8, u8, u32),
    ip_id: u16,
) -> Result<usize, IcmpError> {
    let hdr = 20 + icmpv4::HEADER_LEN;
    let room = out.len().min(IPV4_ERROR_MAX).saturating_sub(hdr);
    if room < min_quote {
        return Err(IcmpError::OutTooSmall {
            required: hdr + min_quote,
            found: out.len(),
        });
    }
    let q = quoted.len().min(room);
    let total = hdr + q;
    out[hdr..total].copy_from_slice(&quoted[..q]);
    out[..hdr].fill(0);
    let mut ip = Ipv4Packet::new_unchecked(&mut out[..total]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_tos((tos & 0x1e) | 0xc0);
    // In range: total <= 576.
    ip.set_total_len(total as u16);
    ip.set_ident(ip_id);
    ip.set_ttl(ERROR_TTL);
    ip.set_protocol(proto::ICMP);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    let mut icmp = Icmpv4Packet::new_unchecked(&mut out[20..total]);
    icmp.set_msg_type(msg_type);
    icmp.set_code(code);
    icmp.set_rest_of_header(rest);
    icmp.fill_checksum();
    Ok(total)
}

/// Whether the kernel would send an error about this packet at all: not about a non-first
/// fragment, and not about an ICMP error (`icmp_send`: types 3, 4, 5, 11, 12 and unknown
/// types above 18; `icmpv6_send`: any type below 128). Nor about a packet to a multicast or
/// broadcast address (`icmp_send` refuses `RTCF_BROADCAST | RTCF_MULTICAST` routes;
/// `icmp6_send` a multicast destination except for Packet Too Big), nor to a source that
/// names no single host (unspecified, multicast, limited broadcast: RFC 1122 3.2.2,
/// RFC 4443 2.4 (e); Linux drops such IPv4 sources as martians before IPVS, and
/// `icmp6_send` refuses them).
fn may_reply(c: &Classified, kind: &ErrorKind) -> bool {
    let icmp_error = c.l4_present
        && match (c.family, c.protocol) {
            (Family::V4, proto::ICMP) => matches!(c.icmp_type, 3 | 4 | 5 | 11 | 12 | 19..),
            (Family::V6, proto::ICMPV6) => c.icmp_type < 128,
            _ => false,
        };
    let group = match (c.src, c.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            d.is_multicast()
                || d.is_broadcast()
                || s.is_unspecified()
                || s.is_multicast()
                || s.is_broadcast()
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            (d.is_multicast() && !matches!(kind, ErrorKind::PacketTooBig { .. }))
                || s.is_unspecified()
                || s.is_multicast()
        }
        _ => true,
    };
    !(c.is_later_fragment() || icmp_error || group)
}

/// The source of an error we build about a packet travelling `dir`. Client → real server
/// packets reach IPVS at LOCAL_IN, addressed to a local address (the VIP), and the kernel's
/// `icmp_send` / `icmp6_send` answer from the offending packet's destination when it is
/// local (`saddr = iph->daddr` for an `RTCF_LOCAL` route; `ipv6_chk_addr(&hdr->daddr)`).
/// Replies are forwarded (not local): their errors come from the director's own address.
fn error_source(c: &Classified, m: &Mapping, dir: Direction) -> IpAddr {
    match dir {
        Direction::In => c.dst,
        Direction::Out => m.local(c.family),
    }
}

/// The part of `out` an IPv4 error may fill: `icmp_send` quotes at most
/// `min(576, MTU of the route back) - 28` bytes, so with a route MTU (`route_mtu`, 0 for
/// none) below 576 the error is no larger than that MTU. (IPv6 routes carry 1280.)
pub(crate) fn v4_error_room(out: &mut [u8], route_mtu: u32) -> &mut [u8] {
    let room = match route_mtu {
        0 => out.len(),
        mtu => out.len().min(usize::try_from(mtu).unwrap_or(usize::MAX)),
    };
    &mut out[..room]
}

/// Builds the reply for a dropped packet travelling `dir` (`ip` is its IP packet as
/// received; the error's source is [`error_source`]); when `decremented` the quoted copy
/// gets the TTL decrement the kernel applied before the check.
#[allow(clippy::too_many_arguments)]
pub(crate) fn reply(
    out: &mut [u8],
    ip: &[u8],
    c: &Classified,
    m: &Mapping,
    dir: Direction,
    kind: ErrorKind,
    decremented: bool,
    reason: DropReason,
) -> Verdict {
    if !may_reply(c, &kind) {
        return Verdict::Drop(reason);
    }
    let out = match c.family {
        Family::V4 => v4_error_room(out, m.route_mtu),
        Family::V6 => out,
    };
    match build_error(out, ip, error_source(c, m, dir), kind, m.ip_id) {
        Ok(len) => {
            if decremented {
                let hdr = match c.family {
                    Family::V4 => 28,
                    Family::V6 => 48,
                };
                let quoted = &mut out[hdr..len];
                match c.family {
                    Family::V4 => {
                        // The quote holds the whole header (min_quote); patch TTL and checksum.
                        let mut q = Ipv4Packet::new_unchecked(quoted);
                        q.set_ttl(q.ttl().saturating_sub(1));
                        q.fill_checksum();
                        let mut icmp = Icmpv4Packet::new_unchecked(&mut out[20..len]);
                        icmp.fill_checksum();
                    }
                    Family::V6 => {
                        let mut q = Ipv6Packet::new_unchecked(quoted);
                        q.set_hop_limit(q.hop_limit().saturating_sub(1));
                        let (s, d) = {
                            let o = Ipv6Packet::new_unchecked(&out[..len]);
                            (IpAddr::V6(o.src_addr()), IpAddr::V6(o.dst_addr()))
                        };
                        Icmpv6Packet::new_unchecked(&mut out[40..len]).fill_checksum(&s, &d);
                    }
                }
            }
            Verdict::Reply {
                reason,
                start: 0,
                len,
            }
        }
        Err(IcmpError::OutTooSmall { .. }) => Verdict::Drop(DropReason::ReplyBuffer),
        Err(_) => Verdict::Drop(reason),
    }
}

/// Spec 6.1: no destination available for a packet the service matched. The packet is
/// dropped; unless it is itself ICMP-related (dropped silently) the verdict carries an ICMP
/// port unreachable (type 3 code 3; ICMPv6 type 1 code 4) to the client, built into `out`
/// from the packet's destination (the virtual address, local to the director: `icmp_send`
/// answers from it) with ID `m.ip_id`. `buf[headroom..]` is the classified packet, as for
/// [`transmit`](super::transmit).
pub fn port_unreachable(
    buf: &[u8],
    headroom: usize,
    c: &Classified,
    m: &Mapping,
    out: &mut [u8],
) -> Verdict {
    port_unreachable_for(buf, headroom, c, m, Direction::In, out)
}

/// [`port_unreachable`] for a packet travelling `dir`: [`Direction::Out`] for the
/// `nat_icmp_send` case (a real server's packet, forwarded, so the error comes from the
/// director's own address, spec 3.2), [`Direction::In`] for spec 6.1.
pub(crate) fn port_unreachable_for(
    buf: &[u8],
    headroom: usize,
    c: &Classified,
    m: &Mapping,
    dir: Direction,
    out: &mut [u8],
) -> Verdict {
    let Some(start) = headroom.checked_add(c.l3_offset) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    let Some(ip) = start
        .checked_add(c.total_len)
        .and_then(|end| buf.get(start..end))
    else {
        return Verdict::Drop(DropReason::Malformed);
    };
    if c.icmp_error {
        return Verdict::Drop(DropReason::NoDestination);
    }
    reply(
        out,
        ip,
        c,
        m,
        dir,
        ErrorKind::PortUnreachable,
        false,
        DropReason::NoDestination,
    )
}

/// The quoted tuple a related error must carry, per direction (spec 3.7): inbound errors
/// quote a packet the real server sent to the client through the VIP; outbound ones quote
/// a client packet as the real server received it.
fn expected_quote(m: &Mapping, dir: Direction) -> (IpAddr, u16, IpAddr, u16) {
    match dir {
        Direction::In => (m.vaddr, m.vport, m.caddr, m.cport),
        Direction::Out => (m.caddr, m.cport, m.daddr, m.dport),
    }
}

/// Validates a related ICMP error (spec 3.7) before anything changes: checksum (bad → drop),
/// a quoted TCP/UDP/SCTP header of the connection (else not ours).
///
/// Out of line: ICMP errors are rare, and inlined this would crowd the registers of the
/// per-packet path in `transmit`.
#[inline(never)]
pub(crate) fn check_related(
    buf: &[u8],
    pkt: &Checked,
    c: &Classified,
    m: &Mapping,
    dir: Direction,
) -> Result<(), Verdict> {
    if c.is_fragment {
        // ICMPv6 behind a Fragment header is dropped (spec 3.8); IPv4 is reassembled first.
        return Err(Verdict::Drop(DropReason::Fragment));
    }
    let msg = &buf[pkt.l4..pkt.start + pkt.len];
    let ok = match c.family {
        Family::V4 => Icmpv4Packet::new_checked(msg)
            .map_err(|_| Verdict::Drop(DropReason::Malformed))?
            .verify_checksum(),
        Family::V6 => Icmpv6Packet::new_checked(msg)
            .map_err(|_| Verdict::Drop(DropReason::Malformed))?
            .verify_checksum(&c.src, &c.dst),
    };
    if !ok {
        return Err(Verdict::Drop(DropReason::IcmpChecksum));
    }
    // In range: the ICMP view checked the 8-byte header.
    let q = QuotedPacket::new_checked(&msg[icmpv4::HEADER_LEN..]).map_err(|_| Verdict::NotOurs)?;
    if q.is_ipv6() != (c.family == Family::V6)
        || !matches!(q.protocol(), proto::TCP | proto::UDP | proto::SCTP)
        || q.is_later_fragment()
    {
        return Err(Verdict::NotOurs);
    }
    let got = (q.src_addr(), q.src_port(), q.dst_addr(), q.dst_port());
    if got != expected_quote(m, dir) {
        return Err(Verdict::NotOurs);
    }
    if m.forward == Forward::Masq {
        let new = match dir {
            Direction::In => m.daddr,
            Direction::Out => m.vaddr,
        };
        if new.is_ipv6() != q.is_ipv6() {
            return Err(Verdict::Drop(DropReason::FamilyMismatch));
        }
    }
    Ok(())
}

/// The NAT translation of a related error (`ip_vs_nat_icmp` / `_v6`), after
/// [`check_related`] and the TTL / MTU step accepted it: inbound, outer destination → RIP,
/// quoted source → RIP:dport; outbound, outer source → VIP, quoted destination → VIP:vport;
/// TTL decremented; both IPv4 header checksums and the whole ICMP checksum recomputed.
/// Returns false (nothing changed) only if the checked layout does not hold.
#[inline(never)]
pub(crate) fn nat_related(
    buf: &mut [u8],
    pkt: &Checked,
    c: &Classified,
    m: &Mapping,
    dir: Direction,
) -> bool {
    let ip = &mut buf[pkt.start..pkt.start + pkt.len];
    let (header, msg) = ip.split_at_mut(pkt.l4 - pkt.start);
    match (c.family, m.daddr, m.vaddr) {
        (Family::V4, IpAddr::V4(rip), IpAddr::V4(vip)) => {
            let mut icmp = Icmpv4Packet::new_unchecked(&mut *msg);
            let Ok(mut q) = icmp.quoted_mut() else {
                return false;
            };
            if dir == Direction::In {
                q.set_src_port(m.dport);
            } else {
                q.set_dst_port(m.vport);
            }
            if let Some(mut qi) = q.ipv4_mut() {
                if dir == Direction::In {
                    qi.set_src_addr(rip);
                } else {
                    qi.set_dst_addr(vip);
                }
                qi.fill_checksum();
            }
            icmp.fill_checksum();
            let mut p = Ipv4Packet::new_unchecked(header);
            if dir == Direction::In {
                p.set_dst_addr(rip);
            } else {
                p.set_src_addr(vip);
            }
            p.set_ttl(p.ttl().saturating_sub(1));
            p.fill_checksum();
            true
        }
        (Family::V6, IpAddr::V6(rip), IpAddr::V6(vip)) => {
            let mut p = Ipv6Packet::new_unchecked(header);
            if dir == Direction::In {
                p.set_dst_addr(rip);
            } else {
                p.set_src_addr(vip);
            }
            p.set_hop_limit(p.hop_limit().saturating_sub(1));
            let (s, d) = (IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()));
            let mut icmp = Icmpv6Packet::new_unchecked(&mut *msg);
            let Ok(mut q) = icmp.quoted_mut() else {
                return false;
            };
            if dir == Direction::In {
                q.set_src_port(m.dport);
            } else {
                q.set_dst_port(m.vport);
            }
            if let Some(mut qi) = q.ipv6_mut() {
                if dir == Direction::In {
                    qi.set_src_addr(rip);
                } else {
                    qi.set_dst_addr(vip);
                }
            }
            icmp.fill_checksum(&s, &d);
            true
        }
        _ => false,
    }
}
