//! NAT / masquerading rewrite (spec 3.2) and the TTL step of spec 3.1.
//!
//! These are the building blocks [`transmit`](super::transmit) uses for NAT; called directly
//! they do no MTU check and build no ICMP error (their [`Verdict::TimeExceeded`] only says one
//! is due), and their [`Verdict`] is this module's, re-exported as
//! [`NatVerdict`](super::NatVerdict).
//!
//! - [`nat_in`]: client → real server. Destination address VIP → RIP, destination port
//!   vport → dport; the source is unchanged.
//! - [`nat_out`]: real server → client (the reply). Source address RIP → VIP, source port
//!   dport → vport; the destination is unchanged.
//!
//! Both first apply the TTL rule (a packet with TTL / hop limit <= 1 is not rewritten and gets
//! [`Verdict::TimeExceeded`]), then decrement it, then rewrite. Inbound this is IPVS's own
//! `decrement_ttl` in its transmitter; for replies it is the decrement the kernel's IP
//! forwarding does before IPVS's SNAT (spec 3.2: "TTL is decremented by the ordinary IP
//! forwarding"), which a director that is also the router must do itself.
//!
//! Checksums follow spec 3.2: the IPv4 header checksum and the TCP/UDP checksums are updated
//! incrementally (RFC 1624; equal to IPVS's recomputation, see the `wire_checksum` tests); a
//! UDP checksum of 0 gets a full computation, and a UDP result of 0 is sent as 0xFFFF.
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::wire::classify;
//! use lvs_core::xmit::nat::{nat_in, Verdict};
//! # let mut pkt = {
//! #     let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [203, 0, 113, 1], 64)
//! #         .udp(5353, 53);
//! #     let mut v = Vec::new();
//! #     b.write(&mut v, b"query").unwrap();
//! #     v
//! # };
//! let c = classify(&pkt).unwrap();
//! let rip = IpAddr::V4(Ipv4Addr::new(10, 1, 1, 1));
//! assert_eq!(nat_in(&mut pkt, &c, rip, 5300), Ok(Verdict::Forward));
//! let after = classify(&pkt).unwrap();
//! assert_eq!((after.dst, after.dst_port, after.ttl), (rip, 5300, 63));
//! assert_eq!((after.src, after.src_port), (c.src, c.src_port));
//! ```

use core::net::IpAddr;

use crate::wire::{
    checksum, proto, Classified, Error, Family, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};

/// What a rewrite decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The packet was rewritten in place; forward it.
    Forward,
    /// TTL / hop limit was <= 1: nothing was changed. Drop the packet and send ICMP Time
    /// Exceeded (type 11 code 0; ICMPv6 type 3 code 0) to its source, quoting it as it is.
    TimeExceeded,
}

/// Why a packet could not be rewritten. Nothing was changed when one is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NatError {
    /// The new address is of the other family (mixed families are for tunnelling only).
    #[error("NAT address family differs from the packet's")]
    FamilyMismatch,
    /// The protocol has no port rewrite here (TCP and UDP only).
    #[error("no NAT rewrite for IP protocol {protocol}")]
    Unsupported {
        /// The packet's L4 protocol.
        protocol: u8,
    },
    /// A fragment: IPVS sees reassembled packets (spec 3.0), so it has no ports to rewrite.
    #[error("fragment: NAT needs a whole packet")]
    Fragment,
    /// The [`Classified`] summary does not describe this buffer (offsets outside it or not
    /// where the headers end).
    #[error("classification does not match the buffer")]
    SummaryMismatch,
    /// A header did not validate.
    #[error(transparent)]
    Parse(#[from] Error),
}

/// Which side of the connection the rewrite changes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Destination (inbound DNAT).
    Dst,
    /// Source (reply SNAT).
    Src,
}

/// Client → real server: destination address and port become `daddr` / `dport`, TTL is
/// decremented (see the [module docs](self)).
pub fn nat_in(
    buf: &mut [u8],
    c: &Classified,
    daddr: IpAddr,
    dport: u16,
) -> Result<Verdict, NatError> {
    rewrite(buf, c, Side::Dst, daddr, dport)
}

/// Real server → client: source address and port become `saddr` / `sport` (the VIP and
/// vport), TTL is decremented (see the [module docs](self)).
pub fn nat_out(
    buf: &mut [u8],
    c: &Classified,
    saddr: IpAddr,
    sport: u16,
) -> Result<Verdict, NatError> {
    rewrite(buf, c, Side::Src, saddr, sport)
}

/// The TTL step alone (spec 3.1), for forwarding methods that do not otherwise touch the IP
/// header (DR, and the inner packet of TUN): TTL / hop limit <= 1 gives
/// [`Verdict::TimeExceeded`] with nothing changed; otherwise it is decremented (IPv4 header
/// checksum updated incrementally).
///
/// ```
/// use lvs_core::wire::{classify, Ipv4Packet};
/// use lvs_core::xmit::nat::{decrement_ttl, Verdict};
/// # let mut pkt = {
/// #     let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [203, 0, 113, 1], 2).udp(1, 2);
/// #     let mut v = Vec::new();
/// #     b.write(&mut v, &[]).unwrap();
/// #     v
/// # };
/// let c = classify(&pkt).unwrap();
/// assert_eq!(decrement_ttl(&mut pkt, &c), Ok(Verdict::Forward));
/// assert!(Ipv4Packet::new_checked(&pkt[..]).unwrap().verify_checksum());
/// let c = classify(&pkt).unwrap();
/// assert_eq!(c.ttl, 1);
/// let before = pkt.clone();
/// assert_eq!(decrement_ttl(&mut pkt, &c), Ok(Verdict::TimeExceeded));
/// assert_eq!(pkt, before);
/// ```
pub fn decrement_ttl(buf: &mut [u8], c: &Classified) -> Result<Verdict, NatError> {
    let ip = buf.get_mut(c.ip_range()).ok_or(NatError::SummaryMismatch)?;
    match c.family {
        Family::V4 => {
            let mut p = Ipv4Packet::new_checked(ip)?;
            if p.ttl() <= 1 {
                return Ok(Verdict::TimeExceeded);
            }
            ttl_v4(&mut p);
        }
        Family::V6 => {
            let mut p = Ipv6Packet::new_checked(ip)?;
            if p.hop_limit() <= 1 {
                return Ok(Verdict::TimeExceeded);
            }
            p.set_hop_limit(p.hop_limit() - 1);
        }
    }
    Ok(Verdict::Forward)
}

/// Decrements the TTL (> 1) and patches the header checksum: TTL shares a 16-bit word with
/// the protocol.
fn ttl_v4<T: AsRef<[u8]> + AsMut<[u8]>>(p: &mut Ipv4Packet<T>) {
    let (ttl, protocol) = (p.ttl(), p.protocol());
    p.set_ttl(ttl - 1);
    p.set_checksum(checksum::update_u16(
        p.checksum(),
        u16::from_be_bytes([ttl, protocol]),
        u16::from_be_bytes([ttl - 1, protocol]),
    ));
}

fn rewrite(
    buf: &mut [u8],
    c: &Classified,
    side: Side,
    addr: IpAddr,
    port: u16,
) -> Result<Verdict, NatError> {
    if c.protocol != proto::TCP && c.protocol != proto::UDP {
        return Err(NatError::Unsupported {
            protocol: c.protocol,
        });
    }
    if c.is_fragment {
        return Err(NatError::Fragment);
    }
    if addr.is_ipv6() != (c.family == Family::V6) {
        return Err(NatError::FamilyMismatch);
    }
    let ip = buf.get_mut(c.ip_range()).ok_or(NatError::SummaryMismatch)?;
    let l4_at = c
        .l4_offset
        .checked_sub(c.l3_offset)
        .ok_or(NatError::SummaryMismatch)?;

    // Validate every layer before changing a byte, so an error leaves the packet intact.
    let ttl = match c.family {
        Family::V4 => {
            let p = Ipv4Packet::new_checked(&ip[..])?;
            if p.header_len() != l4_at {
                return Err(NatError::SummaryMismatch);
            }
            p.ttl()
        }
        Family::V6 => {
            let p = Ipv6Packet::new_checked(&ip[..])?;
            if l4_at < crate::wire::ipv6::HEADER_LEN || l4_at > p.total_len() {
                return Err(NatError::SummaryMismatch);
            }
            p.hop_limit()
        }
    };
    // In bounds: the checks above put `l4_at` within the IP length.
    let seg = &ip[l4_at..];
    let l4_ok = match c.protocol {
        proto::TCP => TcpPacket::new_checked(seg).map(|_| ()),
        _ => UdpPacket::new_checked(seg).map(|_| ()),
    };
    l4_ok.map_err(|e| e.add_offset(c.l4_offset))?;
    if ttl <= 1 {
        return Ok(Verdict::TimeExceeded);
    }
    if apply(ip, l4_at, c.family, c.protocol, side, addr, port) {
        Ok(Verdict::Forward)
    } else {
        Err(NatError::SummaryMismatch)
    }
}

/// The rewrite itself, on an IP packet `ip` whose header (`l4_at` bytes, TTL > 1) and fixed
/// L4 header (20 bytes TCP, 8 UDP) were validated: address, TTL, port and checksums, at fixed
/// offsets. Returns false, with nothing changed, when `addr` is of the other family or the
/// lengths do not hold.
#[inline]
pub(crate) fn apply(
    ip: &mut [u8],
    l4_at: usize,
    family: Family,
    protocol: u8,
    side: Side,
    addr: IpAddr,
    port: u16,
) -> bool {
    let need = if protocol == proto::TCP { 20 } else { 8 };
    if l4_at.checked_add(need).is_none_or(|e| e > ip.len()) {
        return false;
    }
    let (header, seg) = ip.split_at_mut(l4_at);
    // L3: the address (and TTL); `addr_acc` is the address's RFC 1624 term `~m + m'` for the
    // L4 pseudo-header.
    //
    // Each checksum is updated with all its changed words summed into one accumulator and
    // folded once. That equals chaining one `checksum::update_*` per word: `fold` keeps the
    // residue mod 0xffff and gives 0 only for a zero sum, so folding the intermediate result
    // first changes neither the residue nor whether the total is zero.
    let addr_acc: u64;
    match (family, addr) {
        (Family::V4, IpAddr::V4(new)) => {
            let Some(h) = header.first_chunk_mut::<20>() else {
                return false;
            };
            let at = if side == Side::Dst { 16 } else { 12 };
            let old = u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
            let new = u32::from(new);
            h[at..at + 4].copy_from_slice(&new.to_be_bytes());
            let (ttl, p) = (h[8], h[9]);
            let new_ttl = ttl.saturating_sub(1);
            h[8] = new_ttl;
            // As `checksum::update_u32`.
            addr_acc = u64::from(!(old >> 16) & 0xffff)
                + u64::from(!old & 0xffff)
                + u64::from(new >> 16)
                + u64::from(new & 0xffff);
            let ttl_acc = u64::from(!u16::from_be_bytes([ttl, p]))
                + u64::from(u16::from_be_bytes([new_ttl, p]));
            let check = u16::from_be_bytes([h[10], h[11]]);
            let check = !checksum::fold(u64::from(!check) + addr_acc + ttl_acc);
            h[10..12].copy_from_slice(&check.to_be_bytes());
        }
        (Family::V6, IpAddr::V6(new)) => {
            let Some(h) = header.first_chunk_mut::<40>() else {
                return false;
            };
            let at = if side == Side::Dst { 24 } else { 8 };
            let Some(old) = h[at..at + 16].first_chunk::<16>() else {
                return false;
            };
            // As `checksum::update_u128`: `~fold(old)` and the new address's words. Summing
            // 32-bit words instead of 16-bit ones keeps the residue mod 0xffff (2^16 is 1)
            // and zero-ness, so the folds are the same.
            let neg_old = !checksum::fold(sum32(old));
            let new = new.octets();
            addr_acc = u64::from(neg_old) + sum32(&new);
            h[at..at + 16].copy_from_slice(&new);
            h[7] = h[7].saturating_sub(1);
        }
        _ => return false,
    }

    // L4: the port and the checksum.
    let port_at = if side == Side::Dst { 2 } else { 0 };
    let old_port = u16::from_be_bytes([seg[port_at], seg[port_at + 1]]);
    seg[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    if protocol == proto::TCP {
        // TCP: the incremental result is used as it is (tcp_fast_csum_update).
        let check = u16::from_be_bytes([seg[16], seg[17]]);
        let check = port_and_addr_update(check, addr_acc, old_port, port);
        seg[16..18].copy_from_slice(&check.to_be_bytes());
    } else {
        let check = u16::from_be_bytes([seg[6], seg[7]]);
        if check == 0 {
            // "No checksum": IPVS computes a full one (udp_snat_handler / udp_dnat_handler),
            // for either family, over the whole IP payload with its length
            // (`skb->len - udphoff`: the packet is trimmed to its IP length on receive),
            // not over the UDP length field; a computed 0 is sent as 0xFFFF.
            let (src, dst) = match family {
                Family::V4 => {
                    let h = Ipv4Packet::new_unchecked(&*header);
                    (IpAddr::V4(h.src_addr()), IpAddr::V4(h.dst_addr()))
                }
                Family::V6 => {
                    let h = Ipv6Packet::new_unchecked(&*header);
                    (IpAddr::V6(h.src_addr()), IpAddr::V6(h.dst_addr()))
                }
            };
            seg[6..8].fill(0);
            let sum = checksum::segment(&src, &dst, proto::UDP, seg);
            seg[6..8].copy_from_slice(&checksum::udp_nonzero(!sum).to_be_bytes());
        } else {
            let check = port_and_addr_update(check, addr_acc, old_port, port);
            seg[6..8].copy_from_slice(&checksum::udp_nonzero(check).to_be_bytes());
        }
    }
    true
}

/// The L4 checksum after the address (`addr_acc`, its `~m + m'` term) and the port changed:
/// `checksum::update_u16(update_u32/u128(check, ..), old_port, port)` in one fold.
#[inline(always)]
fn port_and_addr_update(check: u16, addr_acc: u64, old_port: u16, port: u16) -> u16 {
    !checksum::fold(u64::from(!check) + addr_acc + u64::from(!old_port) + u64::from(port))
}

/// The sum of the four big-endian 32-bit words of an IPv6 address (unfolded).
#[inline(always)]
fn sum32(a: &[u8; 16]) -> u64 {
    let w = |i: usize| u64::from(u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]));
    w(0) + w(4) + w(8) + w(12)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::classify;
    use core::net::Ipv4Addr;

    fn udp_v4(ttl: u8) -> Vec<u8> {
        let mut b = vec![0u8; 20 + 8 + 4];
        let mut ip = Ipv4Packet::new_unchecked(&mut b[..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len(32);
        ip.set_ttl(ttl);
        ip.set_protocol(proto::UDP);
        ip.set_src_addr([192, 0, 2, 1].into());
        ip.set_dst_addr([203, 0, 113, 1].into());
        ip.fill_checksum();
        let mut u = UdpPacket::new_unchecked(&mut b[20..]);
        u.set_src_port(1000);
        u.set_dst_port(53);
        u.set_len(12);
        b
    }

    #[test]
    fn errors_leave_the_packet_alone() {
        let mut b = udp_v4(64);
        let c = classify(&b).unwrap();
        let orig = b.clone();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(nat_in(&mut b, &c, v6, 1), Err(NatError::FamilyMismatch));
        let mut wrong = c;
        wrong.l4_offset = 24;
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            nat_in(&mut b, &wrong, v4, 1),
            Err(NatError::SummaryMismatch)
        );
        wrong = c;
        wrong.total_len = 99;
        assert_eq!(
            nat_out(&mut b, &wrong, v4, 1),
            Err(NatError::SummaryMismatch)
        );
        wrong = c;
        wrong.protocol = proto::SCTP;
        assert_eq!(
            nat_in(&mut b, &wrong, v4, 1),
            Err(NatError::Unsupported { protocol: 132 })
        );
        wrong = c;
        wrong.is_fragment = true;
        assert_eq!(nat_in(&mut b, &wrong, v4, 1), Err(NatError::Fragment));
        assert_eq!(b, orig);
    }

    #[test]
    fn ttl_one_is_time_exceeded_and_untouched() {
        for ttl in [0, 1] {
            let mut b = udp_v4(ttl);
            let c = classify(&b).unwrap();
            let orig = b.clone();
            let v4: IpAddr = "10.0.0.1".parse().unwrap();
            assert_eq!(nat_in(&mut b, &c, v4, 1), Ok(Verdict::TimeExceeded));
            assert_eq!(nat_out(&mut b, &c, v4, 1), Ok(Verdict::TimeExceeded));
            assert_eq!(decrement_ttl(&mut b, &c), Ok(Verdict::TimeExceeded));
            assert_eq!(b, orig);
        }
    }

    /// A UDP length shorter than the IP payload: the kernel's full computation covers the
    /// whole payload, with its length in the pseudo-header (checked here against a sum
    /// written out by hand).
    #[test]
    fn zero_udp_checksum_covers_the_whole_ip_payload() {
        // IPv4 header, UDP header saying 8 + 4 bytes, then 4 + 3 bytes of payload.
        let payload = [1u8, 2, 3, 4, 5, 6, 7];
        let mut b = vec![0x45, 0, 0, 35, 0, 0, 0x40, 0, 64, 17, 0, 0];
        b.extend_from_slice(&[192, 0, 2, 1, 10, 99, 0, 10]);
        b.extend_from_slice(&[0x13, 0x88, 0, 53, 0, 12, 0, 0]);
        b.extend_from_slice(&payload);
        let hsum = {
            let mut s = 0u32;
            for w in b[..20].chunks(2) {
                s += u32::from(u16::from_be_bytes([w[0], w[1]]));
            }
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            !(s as u16)
        };
        b[10..12].copy_from_slice(&hsum.to_be_bytes());
        let c = classify(&b).unwrap();
        let rip = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(
            nat_in(&mut b, &c, IpAddr::V4(rip), 5353),
            Ok(Verdict::Forward)
        );
        // By hand: pseudo-header (source, new destination, protocol, IP payload length 15),
        // then the 15 bytes with the checksum field 0.
        let mut s = 0u32;
        for a in [[192u8, 0, 2, 1], rip.octets()] {
            s += u32::from(u16::from_be_bytes([a[0], a[1]]));
            s += u32::from(u16::from_be_bytes([a[2], a[3]]));
        }
        s += 17 + 15;
        let mut seg = b[20..].to_vec();
        seg[6..8].fill(0);
        seg.push(0);
        for w in seg.chunks(2) {
            s += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        let want = match !(s as u16) {
            0 => 0xffff,
            x => x,
        };
        assert_eq!(u16::from_be_bytes([b[26], b[27]]), want);
        assert_eq!(u16::from_be_bytes([b[22], b[23]]), 5353);
    }

    #[test]
    fn zero_udp_checksum_gets_a_full_one() {
        let mut b = udp_v4(64);
        let c = classify(&b).unwrap();
        let rip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(nat_in(&mut b, &c, rip, 5353), Ok(Verdict::Forward));
        let u = UdpPacket::new_checked(&b[20..]).unwrap();
        assert_ne!(u.checksum(), 0);
        assert!(u.verify_checksum(&c.src, &rip));
    }
}
