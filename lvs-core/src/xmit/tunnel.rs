//! TUN forwarding (spec 3.4): IPIP, GUE and GRE encapsulation into the headroom in front of
//! the packet, and [`decapsulate`], the real server's side.
//!
//! Outer header fields, as `ip_vs_tunnel_xmit` / `_v6` write them:
//! - IPv4 outer: version 4, IHL 5, TOS = the inner DSCP/ECN with CE turned into ECT(0)
//!   (`INET_ECN_encapsulate`), ID from [`Mapping::ip_id`], DF copied from an IPv4 inner packet
//!   when `pmtu_disc` (an IPv6 inner packet gives DF 0), TTL = the inner (already
//!   decremented) TTL, protocol 4 / 41 / 17 / 47, source [`Mapping::local_v4`], destination the
//!   real server; header checksum filled.
//! - IPv6 outer: traffic class by the same rule, flow label 0, hop limit = inner TTL, next
//!   header 4 / 41 / 17 / 47, source [`Mapping::local_v6`].
//! - GUE: UDP from a flow-hash source port in the ephemeral range
//!   [`EPHEMERAL_MIN`]..[`EPHEMERAL_MAX`] to the configured port; a 4-byte GUE header (version
//!   0, C 0, Hlen 0, proto 4 / 41, flags 0); UDP checksum 0 for `--tun-nocsum`, computed for
//!   `--tun-csum`. `--tun-remcsum` is treated like `--tun-csum`: the kernel adds the
//!   remote-checksum option only for `CHECKSUM_PARTIAL` packets, and ours are always complete,
//!   so it computes the full UDP checksum and writes the plain header, exactly as here.
//! - GRE: 4-byte header (flags 0, protocol type 0x0800 / 0x86DD), or 8 bytes with the C bit
//!   and the GRE checksum for `--tun-csum` (only the csum flag turns it on in the kernel;
//!   `--tun-remcsum` gives a plain header).
//!
//! The flow hash is ours ([`flow_hash`], deterministic over the 5-tuple); the kernel's
//! `skb_get_hash` is keyed with a boot-time secret, so its ports cannot be reproduced anyway.
//! The mapping to a port is the kernel's `udp_flow_src_port` formula.

use core::net::IpAddr;
use core::ops::Range;

use super::{mtu_check, ttl_and_mtu, Checked, Direction, DropReason, Mapping, Verdict};
use crate::rules::{Forward, TunnelConfig, TunnelCsum, TunnelType};
use crate::wire::{
    checksum, ethertype, gre, gue, ipip, ipv4, ipv6, proto, Classified, Error, Family, GrePacket,
    GuePacket, Ipv4Packet, Ipv6Packet, UdpPacket,
};

/// Low end of the GUE source-port range (Linux's default `ip_local_port_range` 32768).
pub const EPHEMERAL_MIN: u16 = 32768;
/// High end (exclusive, as `udp_flow_src_port` computes it) of the range (60999).
pub const EPHEMERAL_MAX: u16 = 60999;

/// Bytes the outer headers take: 20 (IPv4) or 40 (IPv6), plus 8 + 4 for GUE, 4 for GRE
/// (8 with `--tun-csum`).
pub const fn overhead(outer: Family, cfg: &TunnelConfig) -> usize {
    let ip = match outer {
        Family::V4 => ipv4::MIN_HEADER_LEN,
        Family::V6 => ipv6::HEADER_LEN,
    };
    ip + match cfg.kind {
        TunnelType::Ipip => 0,
        TunnelType::Gue => 8 + gue::BASE_HEADER_LEN,
        TunnelType::Gre => match cfg.csum {
            TunnelCsum::Csum => 8,
            _ => gre::BASE_HEADER_LEN,
        },
    }
}

/// A deterministic hash of the classified 5-tuple, for the GUE source port.
pub fn flow_hash(c: &Classified) -> u32 {
    let mut h: u64 =
        (u64::from(c.protocol) << 32) ^ (u64::from(c.src_port) << 16) ^ u64::from(c.dst_port);
    let mut mix = |w: u64| {
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    };
    for a in [c.src, c.dst] {
        match a {
            IpAddr::V4(a) => mix(u64::from(u32::from(a))),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                mix(v as u64);
                mix((v >> 64) as u64);
            }
        }
    }
    (h >> 32) as u32
}

/// The GUE source port for a flow hash (`udp_flow_src_port`: `min + hash * (max - min) >> 32`).
pub const fn source_port(hash: u32) -> u16 {
    let span = (EPHEMERAL_MAX - EPHEMERAL_MIN) as u64;
    EPHEMERAL_MIN + ((hash as u64 * span) >> 32) as u16
}

/// `INET_ECN_encapsulate`: the inner DSCP and ECN, except CE becomes ECT(0).
const fn ecn_encapsulate(ds: u8) -> u8 {
    if ds & 3 == 3 {
        (ds & !3) | 2
    } else {
        ds
    }
}

/// TUN transmit after [`super::transmit`] validated the packet: TTL, tunnel MTU, room, then
/// the TTL decrement and the outer headers (what [`encapsulate`] writes).
#[inline(always)]
pub(crate) fn transmit(
    buf: &mut [u8],
    pkt: &Checked,
    c: &Classified,
    m: &Mapping,
    relay: bool,
    out: &mut [u8],
) -> Verdict {
    if m.tunnel.kind == TunnelType::Gue && m.tunnel.port == 0 {
        return Verdict::Drop(DropReason::TunnelConfig);
    }
    let outer = if m.daddr.is_ipv6() {
        Family::V6
    } else {
        Family::V4
    };
    // TTL first (`decrement_ttl` runs before the MTU is computed).
    if let Some(v) = ttl_and_mtu(buf, pkt, c, m, 0, relay, Direction::In, out) {
        return v;
    }
    let ov = overhead(outer, &m.tunnel);
    match tunnel_mtu(outer, ov, m.route_mtu) {
        TunnelMtu::Unchecked => {}
        TunnelMtu::TooSmall => return Verdict::Drop(DropReason::TunnelMtu),
        // The TTL passed above: only the MTU step remains.
        TunnelMtu::Mtu(mtu) => {
            if let Some(v) = mtu_check(buf, pkt, c, m, mtu, relay, Direction::In, out) {
                return v;
            }
        }
    }
    if !room_ok(outer, pkt.start, pkt.len, ov) {
        return Verdict::Drop(DropReason::NoRoom);
    }
    pkt.decrement_ttl(buf, c.family);
    let hash = if m.tunnel.kind == TunnelType::Gue {
        flow_hash(c)
    } else {
        0
    };
    // The inner fields the outer header copies are known from the validated header: no
    // second parse as the public `encapsulate` needs. `Checked::new` read the TTL before the
    // decrement above, and `df` is false for IPv6 (as `encapsulate` takes it).
    let Some(h) = buf.get(pkt.start..pkt.start + 2) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    let ds = match c.family {
        Family::V4 => h[1],
        Family::V6 => (h[0] << 4) | (h[1] >> 4),
    };
    let inner = Inner {
        family: c.family,
        ds,
        ttl: pkt.ttl - 1,
        df: pkt.df,
    };
    match write_outer(buf, pkt.start, pkt.len, m, hash, inner) {
        Ok(start) => Verdict::Forward {
            method: Forward::Tunnel,
            next_hop: m.daddr,
            start,
            len: pkt.len + ov,
        },
        Err(r) => Verdict::Drop(r),
    }
}

/// The MTU a tunnelled packet must fit: `route_mtu` less the tunnel overhead `ov`.
enum TunnelMtu {
    /// Route MTU 0: no check.
    Unchecked,
    /// Below the outer family's minimum (68 / 1280): spec 3.4 drops.
    TooSmall,
    /// The MTU to check against.
    Mtu(u32),
}

#[inline(always)]
fn tunnel_mtu(outer: Family, ov: usize, route_mtu: u32) -> TunnelMtu {
    if route_mtu == 0 {
        return TunnelMtu::Unchecked;
    }
    let mtu = i64::from(route_mtu) - ov as i64;
    let min = match outer {
        Family::V4 => 68,
        Family::V6 => 1280,
    };
    if mtu < min {
        TunnelMtu::TooSmall
    } else {
        // In range: min <= mtu <= route_mtu.
        TunnelMtu::Mtu(mtu as u32)
    }
}

/// Whether the outer headers (`ov` bytes) fit in front of `buf[start..start + len]` and the
/// result within the outer family's 64 KiB length field.
#[inline(always)]
fn room_ok(outer: Family, start: usize, len: usize, ov: usize) -> bool {
    start >= ov
        && match outer {
            Family::V4 => len + ov <= 0xffff,
            Family::V6 => len + ov - ipv6::HEADER_LEN <= 0xffff,
        }
}

/// The tunnel step of `transmit`'s fast path (`xmit::fast`), first half: whether the outer
/// headers for the IP packet `buf[start..start + len]` (header validated, TTL / hop limit
/// above 1) can be written with no configuration, MTU or room question, before anything
/// changes. `false` leaves the packet to the general path ([`transmit`]).
#[inline(always)]
pub(super) fn fast_fits(start: usize, len: usize, m: &Mapping) -> bool {
    if m.tunnel.kind == TunnelType::Gue && m.tunnel.port == 0 {
        return false;
    }
    let outer = if m.daddr.is_ipv6() {
        Family::V6
    } else {
        Family::V4
    };
    let ov = overhead(outer, &m.tunnel);
    let mtu_ok = match tunnel_mtu(outer, ov, m.route_mtu) {
        TunnelMtu::Unchecked => true,
        TunnelMtu::Mtu(mtu) => len <= mtu as usize,
        TunnelMtu::TooSmall => false,
    };
    mtu_ok && room_ok(outer, start, len, ov)
}

/// Second half, after [`fast_fits`] and after the caller decremented the inner TTL / hop
/// limit (a GRE or GUE checksum covers the inner packet), as the general path does: writes
/// the outer headers and returns the new start and length; `None` with no outer byte
/// written if that fails (not expected after [`fast_fits`]), and the caller puts the TTL
/// back.
#[inline(always)]
pub(super) fn fast_write(
    buf: &mut [u8],
    start: usize,
    len: usize,
    c: &Classified,
    m: &Mapping,
    inner: Inner,
) -> Option<(usize, usize)> {
    let hash = if m.tunnel.kind == TunnelType::Gue {
        flow_hash(c)
    } else {
        0
    };
    let new_start = write_outer(buf, start, len, m, hash, inner).ok()?;
    // In range: the headers were written in front of `start`.
    Some((new_start, len + (start - new_start)))
}

/// What the outer header copies from the inner packet (after its TTL decrement).
#[derive(Clone, Copy)]
pub(super) struct Inner {
    /// The inner packet's family.
    pub(super) family: Family,
    /// IPv4 TOS / IPv6 traffic class.
    pub(super) ds: u8,
    /// TTL / hop limit after the decrement.
    pub(super) ttl: u8,
    /// IPv4 DF (false for IPv6).
    pub(super) df: bool,
}

/// Writes the outer headers for `m.tunnel` in front of the IP packet at
/// `buf[start..start + len]` (TTL already decremented) and returns the new start
/// (`start - overhead`). `hash` picks the GUE source port ([`flow_hash`]). Nothing is written
/// on error: [`DropReason::NoRoom`] (headroom or 64 KiB), [`DropReason::Malformed`] (the inner
/// packet is not IP), [`DropReason::TunnelConfig`] (GUE port 0).
pub fn encapsulate(
    buf: &mut [u8],
    start: usize,
    len: usize,
    m: &Mapping,
    hash: u32,
) -> Result<usize, DropReason> {
    let inner = start
        .checked_add(len)
        .and_then(|end| buf.get(start..end))
        .ok_or(DropReason::Malformed)?;
    let inner = match inner.first().map(|b| b >> 4) {
        Some(4) if inner.len() >= ipv4::MIN_HEADER_LEN => {
            let p = Ipv4Packet::new_unchecked(inner);
            Inner {
                family: Family::V4,
                ds: p.tos(),
                ttl: p.ttl(),
                df: p.dont_frag(),
            }
        }
        Some(6) if inner.len() >= ipv6::HEADER_LEN => {
            let p = Ipv6Packet::new_unchecked(inner);
            Inner {
                family: Family::V6,
                ds: p.traffic_class(),
                ttl: p.hop_limit(),
                df: false,
            }
        }
        _ => return Err(DropReason::Malformed),
    };
    write_outer(buf, start, len, m, hash, inner)
}

/// [`encapsulate`] once the inner fields are known. `buf[start..start + len]` is in range
/// (checked by both callers); every other condition is checked before the first write.
///
/// Each header is written as one fixed-size array (a single bounds check and a few wide
/// stores) rather than field by field through the views. Inlined into both callers so the
/// TUN transmitter pays no extra call frame.
#[inline(always)]
fn write_outer(
    buf: &mut [u8],
    start: usize,
    len: usize,
    m: &Mapping,
    hash: u32,
    inner: Inner,
) -> Result<usize, DropReason> {
    if m.tunnel.kind == TunnelType::Gue && m.tunnel.port == 0 {
        return Err(DropReason::TunnelConfig);
    }
    let outer = if m.daddr.is_ipv6() {
        Family::V6
    } else {
        Family::V4
    };
    let ov = overhead(outer, &m.tunnel);
    let ip_len = match outer {
        Family::V4 => ipv4::MIN_HEADER_LEN,
        Family::V6 => ipv6::HEADER_LEN,
    };
    let new_start = start.checked_sub(ov).ok_or(DropReason::NoRoom)?;
    let total = len + ov;
    let len_field = match outer {
        Family::V4 => total,
        Family::V6 => total - ipv6::HEADER_LEN,
    };
    let len_field = u16::try_from(len_field).map_err(|_| DropReason::NoRoom)?;
    let next = match m.tunnel.kind {
        TunnelType::Ipip => ipip::protocol_for(inner.family),
        TunnelType::Gue => proto::UDP,
        TunnelType::Gre => proto::GRE,
    };
    let (tos, ttl) = (ecn_encapsulate(inner.ds), inner.ttl);
    let pkt = buf
        .get_mut(new_start..new_start + total)
        .ok_or(DropReason::NoRoom)?;
    let (header, rest) = pkt.split_at_mut(ip_len);
    match (outer, m.daddr) {
        (Family::V4, IpAddr::V4(d)) => {
            let Some(h) = header.first_chunk_mut::<20>() else {
                return Err(DropReason::NoRoom);
            };
            // Flags and fragment offset: DF only (MF 0, offset 0).
            let flags: u32 = if m.pmtu_disc && inner.df { 0x40 } else { 0 };
            // The header as its five big-endian 32-bit words: the checksum is the folded sum
            // of the words (checksum field 0), computed on registers instead of on bytes
            // assembled and read back.
            let w = [
                0x4500_0000 | (u32::from(tos) << 16) | u32::from(len_field),
                (u32::from(m.ip_id) << 16) | (flags << 8),
                (u32::from(ttl) << 24) | (u32::from(next) << 16),
                u32::from(m.local_v4),
                u32::from(d),
            ];
            let sum = w.iter().map(|&x| u64::from(x)).sum::<u64>();
            let check = !checksum::fold(sum);
            let w2 = w[2] | u32::from(check);
            h[0..4].copy_from_slice(&w[0].to_be_bytes());
            h[4..8].copy_from_slice(&w[1].to_be_bytes());
            h[8..12].copy_from_slice(&w2.to_be_bytes());
            h[12..16].copy_from_slice(&w[3].to_be_bytes());
            h[16..20].copy_from_slice(&w[4].to_be_bytes());
        }
        (_, IpAddr::V6(d)) => {
            let Some(h) = header.first_chunk_mut::<40>() else {
                return Err(DropReason::NoRoom);
            };
            let lf = len_field.to_be_bytes();
            // Version 6, traffic class, flow label 0.
            h[..8].copy_from_slice(&[0x60 | (tos >> 4), tos << 4, 0, 0, lf[0], lf[1], next, ttl]);
            h[8..24].copy_from_slice(&m.local_v6.octets());
            h[24..40].copy_from_slice(&d.octets());
        }
        // `outer` is derived from `daddr`.
        _ => return Err(DropReason::FamilyMismatch),
    }
    match m.tunnel.kind {
        TunnelType::Ipip => {}
        TunnelType::Gue => {
            // In range: the UDP length is at most the outer length.
            let ul = ((total - ip_len) as u16).to_be_bytes();
            let sp = source_port(hash).to_be_bytes();
            let dp = m.tunnel.port.to_be_bytes();
            let Some(h) = rest.first_chunk_mut::<12>() else {
                return Err(DropReason::NoRoom);
            };
            // UDP (checksum 0 for now), then GUE: version 0, C 0, Hlen 0, proto, flags 0.
            *h = [
                sp[0],
                sp[1],
                dp[0],
                dp[1],
                ul[0],
                ul[1],
                0,
                0,
                0,
                ipip::protocol_for(inner.family),
                0,
                0,
            ];
            if m.tunnel.csum != TunnelCsum::NoCsum {
                let (src, dst) = match m.daddr {
                    IpAddr::V4(d) => (IpAddr::V4(m.local_v4), IpAddr::V4(d)),
                    IpAddr::V6(d) => (IpAddr::V6(m.local_v6), IpAddr::V6(d)),
                };
                UdpPacket::new_unchecked(&mut *rest).fill_checksum(&src, &dst);
            }
        }
        TunnelType::Gre => {
            let et = match inner.family {
                Family::V4 => ethertype::IPV4,
                Family::V6 => ethertype::IPV6,
            }
            .to_be_bytes();
            // The header `GrePacket::init` writes: flags (C for `--tun-csum` only), version 0,
            // protocol type; with C, the checksum over header and payload, reserved 0.
            if m.tunnel.csum == TunnelCsum::Csum {
                let Some(h) = rest.first_chunk_mut::<8>() else {
                    return Err(DropReason::NoRoom);
                };
                let flags = gre::FLAG_C.to_be_bytes();
                *h = [flags[0], flags[1], et[0], et[1], 0, 0, 0, 0];
                let sum = !checksum::data(rest);
                rest[4..6].copy_from_slice(&sum.to_be_bytes());
            } else {
                let Some(h) = rest.first_chunk_mut::<4>() else {
                    return Err(DropReason::NoRoom);
                };
                *h = [0, 0, et[0], et[1]];
            }
        }
    }
    Ok(new_start)
}

/// What [`decapsulate`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decapsulated {
    /// The encapsulation.
    pub kind: TunnelType,
    /// The outer source (the director).
    pub outer_src: IpAddr,
    /// The outer destination (the real server).
    pub outer_dst: IpAddr,
    /// The inner IP packet in the buffer (its own total length).
    pub inner: Range<usize>,
}

/// Why [`decapsulate`] refused a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecapError {
    /// A header did not parse (outer IP, UDP, GUE, GRE or the inner IP packet).
    #[error(transparent)]
    Parse(#[from] Error),
    /// The outer packet is not IPIP, GUE to the expected port, or GRE.
    #[error("not a tunnel packet (protocol {protocol})")]
    NotTunnel {
        /// The outer protocol / next header.
        protocol: u8,
    },
    /// The outer IPv4 header, UDP or GRE checksum does not verify.
    #[error("outer checksum does not verify")]
    Checksum,
    /// The inner packet's family does not match what the tunnel header announces, or it is
    /// longer than the outer payload, or a GUE control message / unknown inner protocol.
    #[error("inner packet does not match the tunnel header")]
    Inner,
    /// An outer IPv4 fragment (a decapsulator reassembles first).
    #[error("outer fragment")]
    Fragment,
}

/// The real server's side of spec 3.4: parses an outer IPv4 / IPv6 packet at `buf[0..]`
/// carrying IPIP (4 / 41), GUE (UDP to `gue_port`) or GRE (47), verifies every outer checksum
/// present, and returns where the inner packet is.
///
/// ```
/// use lvs_core::xmit::{decapsulate, DecapError};
/// assert!(matches!(decapsulate(&[0x45, 0], 6080), Err(DecapError::Parse(_))));
/// ```
pub fn decapsulate(buf: &[u8], gue_port: u16) -> Result<Decapsulated, DecapError> {
    let (protocol, payload, src, dst) = match buf.first().map(|b| b >> 4) {
        Some(6) => {
            let p = Ipv6Packet::new_checked(buf)?;
            let t = p.transport()?;
            if t.fragment.is_some() {
                return Err(DecapError::Fragment);
            }
            (
                t.protocol,
                t.offset..p.total_len(),
                IpAddr::V6(p.src_addr()),
                IpAddr::V6(p.dst_addr()),
            )
        }
        _ => {
            let p = Ipv4Packet::new_checked(buf)?;
            if !p.verify_checksum() {
                return Err(DecapError::Checksum);
            }
            if p.is_fragment() {
                return Err(DecapError::Fragment);
            }
            (
                p.protocol(),
                p.header_len()..usize::from(p.total_len()),
                IpAddr::V4(p.src_addr()),
                IpAddr::V4(p.dst_addr()),
            )
        }
    };
    let body = &buf[payload.clone()];
    let (kind, family, at) = match protocol {
        proto::IPIP | proto::IPV6 => (
            TunnelType::Ipip,
            ipip::family_of(protocol).ok_or(DecapError::Inner)?,
            0,
        ),
        proto::UDP => {
            let u = UdpPacket::new_checked(body)?;
            if u.dst_port() != gue_port {
                return Err(DecapError::NotTunnel { protocol });
            }
            if usize::from(u.len()) != body.len() {
                return Err(DecapError::Inner);
            }
            if u.checksum() != 0 && !u.verify_checksum(&src, &dst) {
                return Err(DecapError::Checksum);
            }
            let g = GuePacket::new_checked(&body[8..]).map_err(|e| e.add_offset(8))?;
            if g.is_control() {
                return Err(DecapError::Inner);
            }
            let fam = ipip::family_of(g.protocol()).ok_or(DecapError::Inner)?;
            (TunnelType::Gue, fam, 8 + g.header_len())
        }
        proto::GRE => {
            let g = GrePacket::new_checked(body)?;
            if !g.verify_checksum() {
                return Err(DecapError::Checksum);
            }
            let fam = match g.protocol_type() {
                ethertype::IPV4 => Family::V4,
                ethertype::IPV6 => Family::V6,
                _ => return Err(DecapError::Inner),
            };
            (TunnelType::Gre, fam, g.header_len())
        }
        _ => return Err(DecapError::NotTunnel { protocol }),
    };
    let inner = &body[at..];
    let inner_len = match family {
        Family::V4 => {
            if inner.first().map(|b| b >> 4) != Some(4) {
                return Err(DecapError::Inner);
            }
            usize::from(Ipv4Packet::new_checked(inner)?.total_len())
        }
        Family::V6 => {
            if inner.first().map(|b| b >> 4) != Some(6) {
                return Err(DecapError::Inner);
            }
            Ipv6Packet::new_checked(inner)?.total_len()
        }
    };
    let s = payload.start + at;
    Ok(Decapsulated {
        kind,
        outer_src: src,
        outer_dst: dst,
        inner: s..s + inner_len,
    })
}
