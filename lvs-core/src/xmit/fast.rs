//! The common case of [`transmit`](super::transmit) in a few straight-line steps: a whole TCP
//! or UDP packet with a plain IP header (IPv4 without options, IPv6 without extension headers),
//! TTL / hop limit above 1, within the route MTU, forwarded by NAT (either direction), DR or
//! TUN (the outer headers written by [`tunnel`](super::tunnel)). DR, which changes nothing
//! above the IP header, takes any protocol but ICMP, fragments included ([`dr`]).
//!
//! [`try_fast`] either finishes such a packet, with exactly the bytes and the verdict the
//! general path gives, or returns `None` having changed nothing, and the general path
//! ([`transmit_general`](super::transmit_general)) takes the packet from the start. Everything
//! that needs a decision beyond "rewrite and forward" (ICMP, fragments, options, extension
//! headers, TTL expiry, MTU, loopback DNAT, family mismatch, a UDP checksum of 0, tunnel
//! room and configuration, local delivery, a summary that does not describe the bytes) is left
//! to the general path, so this module never builds an error and never drops.
//!
//! The checks are the general path's, in one pass over fixed-size header borrows: the IP
//! header's structure is re-validated against the summary (version, header length, total
//! length, protocol) before the first byte changes. The IPv4 header checksum is not verified
//! again (by either path): [`classify`](crate::wire::classify) verified it, as the kernel's
//! `ip_rcv` does before IPVS sees a packet, and the incremental updates keep a checksum
//! exactly as valid as it was. The arithmetic is the general path's too (the same
//! folds of the same RFC 1624 terms), so the results are identical byte for byte;
//! `tests/xmit_fast.rs` and the `xmit_rewrite` fuzz target compare the two paths on every
//! input. The IPv4 header is read as three little-endian words, one load each, and the
//! checksum updates work on them directly: one's-complement sums commute with the byte swap
//! (RFC 1071), so the bytes are the general path's (the unit tests below check it).

use core::net::{IpAddr, SocketAddr};

use super::tunnel::{self, Inner};
use super::{Direction, Mapping, Verdict};
use crate::rules::Forward;
use crate::wire::{checksum, proto, Classified, Family};

/// Rewrites the packet if it is the common case (see the [module docs](self)); `None` with
/// `buf` unchanged otherwise.
#[inline(always)]
pub(super) fn try_fast(
    buf: &mut [u8],
    headroom: usize,
    c: &Classified,
    m: &Mapping,
    dir: Direction,
) -> Option<Verdict> {
    let (start, len) = if (m.forward == Forward::DirectRoute) & (dir == Direction::In) {
        dr(buf, headroom, c, m.daddr.is_ipv6(), m.route_mtu)?
    } else {
        rewrite(buf, headroom, c, (m, dir), m.route_mtu)?
    };
    Some(Verdict::Forward {
        method: m.forward,
        // The real server (TUN and DR are inbound only), or the client for NAT replies.
        next_hop: match dir {
            Direction::In => m.daddr,
            Direction::Out => m.caddr,
        },
        start,
        len,
    })
}

/// [`try_fast`] for a client's packet forwarded by NAT or DR to `real` (the real server's
/// address and the connection's destination port), without a [`Mapping`]: what the fast
/// path reads of one is the method, the real server and the route MTU. The new start and
/// length of the packet, whose next hop is `real`'s address; `None` with `buf` unchanged
/// when [`transmit`](super::transmit) must decide (any other method, or not the common case).
/// The bytes are those `transmit` writes with a mapping of these fields.
#[inline(always)]
pub(crate) fn try_fast_in(
    buf: &mut [u8],
    headroom: usize,
    c: &Classified,
    forward: Forward,
    real: SocketAddr,
    route_mtu: u32,
) -> Option<(usize, usize)> {
    if forward == Forward::DirectRoute {
        return dr(buf, headroom, c, real.is_ipv6(), route_mtu);
    }
    rewrite(buf, headroom, c, InTo { forward, real }, route_mtu)
}

/// DR inbound on its own: the TTL (hop limit) less one, and for IPv4 the header checksum,
/// of a packet to a real server of family `real_v6`; the new start and length, or `None`
/// with `buf` unchanged. DR rewrites nothing above the IP header, so this takes what the
/// general path forwards unchanged without looking further (any protocol but ICMP, whose
/// errors are related to connections; fragments too), with fewer checks than [`rewrite`]:
/// the general path's [`Checked`](super::Checked) holds for a plain IP header (20 or 40
/// bytes, the transport header right after it) once 20 bytes follow that header, more than
/// any fixed transport header it asks for, whether or not the summary says one is present.
#[inline(always)]
fn dr(
    buf: &mut [u8],
    headroom: usize,
    c: &Classified,
    real_v6: bool,
    route_mtu: u32,
) -> Option<(usize, usize)> {
    let len = c.total_len;
    let p = Pkt {
        headroom,
        l3_offset: c.l3_offset,
        len,
        tcp: false,
    };
    // As in `rewrite`: every test evaluated, the MTU test with both sides less one.
    let mtu_ok = (len as u64).wrapping_sub(1) <= u64::from(route_mtu.wrapping_sub(1));
    match c.family {
        Family::V4 => {
            if real_v6 | (c.protocol == proto::ICMP) | (len < 40) | !mtu_ok {
                return None;
            }
            let (h, _, start) = split::<20>(buf, p, c)?;
            let (a, b, _) = header_words(h);
            if (a as u8 != 0x45)
                | (usize::from(((a >> 16) as u16).swap_bytes()) != len)
                | ((b >> 8) as u8 != c.protocol)
                | (b as u8 <= 1)
            {
                return None;
            }
            h[8..12].copy_from_slice(&ttl_word(b).to_le_bytes());
            Some((start, len))
        }
        Family::V6 => {
            if !real_v6 | (c.protocol == proto::ICMPV6) | (len < 60) | !mtu_ok {
                return None;
            }
            let (h, _, start) = split::<40>(buf, p, c)?;
            let a = le64(h);
            let hop = (a >> 56) as u8;
            if ((a as u8) >> 4 != 6)
                | (usize::from(((a >> 32) as u16).swap_bytes()) + 40 != len)
                | (hop <= 1)
            {
                return None;
            }
            h[7] = hop - 1;
            Some((start, len))
        }
    }
}

/// [`try_fast`] for a NAT reply (from the real server, to the client: the packet's
/// destination), its source rewritten to `virt` (the virtual address and port), without a
/// [`Mapping`]; as [`try_fast_in`], `None` for any other method.
#[inline(always)]
pub(crate) fn try_fast_out(
    buf: &mut [u8],
    headroom: usize,
    c: &Classified,
    forward: Forward,
    virt: SocketAddr,
    route_mtu: u32,
) -> Option<(usize, usize)> {
    rewrite(buf, headroom, c, OutTo { forward, virt }, route_mtu)
}

/// The rewrite of [`try_fast`] by the plan `plan` gives (asked for once the headers passed
/// their checks; `None`: none): the new start and length, or `None` with `buf`
/// unchanged.
#[inline(always)]
fn rewrite<'m>(
    buf: &mut [u8],
    headroom: usize,
    c: &Classified,
    plan: impl PlanOf<'m>,
    route_mtu: u32,
) -> Option<(usize, usize)> {
    let tcp = c.protocol == proto::TCP;
    let len = c.total_len;
    // Every test evaluated (`|`, not `||`). The MTU test is `route_mtu != 0 && len > route_mtu`
    // with both sides less one (route MTU 0 becomes the largest u32); it also refuses a length
    // of 0 or beyond 2^32, which the header checks below refuse anyway.
    if !(tcp | (c.protocol == proto::UDP))
        | c.is_fragment
        | !c.l4_present
        | ((len as u64).wrapping_sub(1) > u64::from(route_mtu.wrapping_sub(1)))
    {
        return None;
    }
    let p = Pkt {
        headroom,
        l3_offset: c.l3_offset,
        len,
        tcp,
    };
    match c.family {
        Family::V4 => v4(buf, p, c, plan),
        Family::V6 => v6(buf, p, c, plan),
    }
}

/// Where the IP packet is in the buffer (`buf[headroom + l3_offset..][..len]`, not yet
/// checked), and whether it is TCP (else UDP).
#[derive(Clone, Copy)]
struct Pkt {
    headroom: usize,
    l3_offset: usize,
    len: usize,
    tcp: bool,
}

/// The fixed IP header (`N` bytes, with the transport header right after it) and the rest
/// of the packet, and where the packet starts in `buf`; `None` if the summary puts the
/// transport header elsewhere, or the packet is not within `buf` or shorter than `N`. Three bounds checks, none of which can overflow.
#[inline(always)]
fn split<'a, const N: usize>(
    buf: &'a mut [u8],
    p: Pkt,
    c: &Classified,
) -> Option<(&'a mut [u8; N], &'a mut [u8], usize)> {
    if c.l4_offset.wrapping_sub(c.l3_offset) != N {
        return None;
    }
    let (h, seg) = buf
        .get_mut(p.headroom..)?
        .get_mut(p.l3_offset..)?
        .get_mut(..p.len)?
        .split_first_chunk_mut::<N>()?;
    Some((h, seg, p.headroom + p.l3_offset))
}

/// What the rewrite does: the method's choice for this direction.
enum Plan {
    /// NAT: the new address (destination inbound, source for replies) and port.
    Nat { new: IpAddr, port: u16, dst: bool },
    /// TUN inbound: outer headers in front, as the mapping says.
    Tunnel,
}

/// Where a [`Plan`] comes from: asked for once the headers passed their checks (the rewrite
/// reads it only then), `None` when the general path must decide.
trait PlanOf<'m> {
    /// The plan.
    fn plan(&self) -> Option<Plan>;
    /// The mapping whose tunnel [`Plan::Tunnel`] writes.
    fn tunnel(&self) -> Option<&'m Mapping>;
}

impl<'m> PlanOf<'m> for (&'m Mapping, Direction) {
    #[inline(always)]
    fn plan(&self) -> Option<Plan> {
        plan(self.0, self.1)
    }

    #[inline(always)]
    fn tunnel(&self) -> Option<&'m Mapping> {
        Some(self.0)
    }
}

/// A client's packet forwarded by `forward` to `real` ([`try_fast_in`]).
struct InTo {
    forward: Forward,
    real: SocketAddr,
}

impl PlanOf<'static> for InTo {
    /// As [`plan`] for an inbound mapping of this method and real server.
    #[inline(always)]
    fn plan(&self) -> Option<Plan> {
        match self.forward {
            Forward::Masq if !self.real.ip().is_loopback() => Some(Plan::Nat {
                new: self.real.ip(),
                port: self.real.port(),
                dst: true,
            }),
            _ => None,
        }
    }

    #[inline(always)]
    fn tunnel(&self) -> Option<&'static Mapping> {
        None
    }
}

/// A reply of a connection forwarded by `forward`, from `virt` ([`try_fast_out`]).
struct OutTo {
    forward: Forward,
    virt: SocketAddr,
}

impl PlanOf<'static> for OutTo {
    /// As [`plan`] for an outbound mapping of this method and virtual service.
    #[inline(always)]
    fn plan(&self) -> Option<Plan> {
        (self.forward == Forward::Masq).then_some(Plan::Nat {
            new: self.virt.ip(),
            port: self.virt.port(),
            dst: false,
        })
    }

    #[inline(always)]
    fn tunnel(&self) -> Option<&'static Mapping> {
        None
    }
}

/// The plan for `m` and `dir`, or `None` when the general path must decide (local delivery,
/// DR and TUN replies, loopback DNAT).
#[inline(always)]
fn plan(m: &Mapping, dir: Direction) -> Option<Plan> {
    match (m.forward, dir) {
        (Forward::Tunnel, Direction::In) => Some(Plan::Tunnel),
        (Forward::Masq, Direction::In) if !m.daddr.is_loopback() => Some(Plan::Nat {
            new: m.daddr,
            port: m.dport,
            dst: true,
        }),
        (Forward::Masq, Direction::Out) => Some(Plan::Nat {
            new: m.vaddr,
            port: m.vport,
            dst: false,
        }),
        _ => None,
    }
}

/// IPv4 without options: the new start and length of the forwarded packet.
#[inline(always)]
fn v4<'m>(buf: &mut [u8], p: Pkt, c: &Classified, plan: impl PlanOf<'m>) -> Option<(usize, usize)> {
    let (h, seg, start) = split::<20>(buf, p, c)?;
    let len = p.len;
    // The header as two 64-bit and one 32-bit little-endian words, each field taken from
    // them (one load per word, nothing read twice). Byte i of a word is bits 8i..8i+8.
    let (a, b, e) = header_words(h);
    let ttl = b as u8;
    // Every check evaluated (`|`, not `||`): all three words are needed anyway.
    if (a as u8 != 0x45)
        | (usize::from(((a >> 16) as u16).swap_bytes()) != len)
        | ((b >> 8) as u8 != c.protocol)
        | (ttl <= 1)
    {
        return None;
    }
    match plan.plan()? {
        Plan::Tunnel => {
            let m = plan.tunnel()?;
            if !tunnel::fast_fits(start, len, m) {
                return None;
            }
            h[8..12].copy_from_slice(&ttl_word(b).to_le_bytes());
            let inner = Inner {
                family: Family::V4,
                ds: (a >> 8) as u8,
                ttl: ttl - 1,
                df: (a >> 48) as u8 & 0x40 != 0,
            };
            let done = tunnel::fast_write(buf, start, len, c, m, inner);
            if done.is_none() {
                // Not expected after `fast_fits`; the packet goes to the general path as it was.
                buf.get_mut(start + 8..start + 12)?
                    .copy_from_slice(&(b as u32).to_le_bytes());
            }
            return done;
        }
        Plan::Nat { new, port, dst } => {
            let IpAddr::V4(new) = new else {
                return None;
            };
            let l4 = l4_fields(seg, p.tcp)?;
            // As `nat::apply`, IPv4 arm, in the byte-swapped domain of the little-endian
            // words (see the module docs): the addresses and the checksum as they lie in
            // memory, no byte swaps.
            let at = if dst { 16 } else { 12 };
            let old = if dst { e } else { (b >> 32) as u32 };
            let new = u32::from_le_bytes(new.octets());
            let addr_acc = u64::from(!(old >> 16) & 0xffff)
                + u64::from(!old & 0xffff)
                + u64::from(new >> 16)
                + u64::from(new & 0xffff);
            // The TTL/protocol word's RFC 1624 terms, `!(ttl, p) + (ttl - 1, p)`: 0xFEFF since
            // TTL >= 2, which reads 0xFFFE swapped.
            let ttl_acc = 0xfffe;
            let check = (b >> 16) as u16;
            let check = !checksum::fold(u64::from(!check) + addr_acc + ttl_acc);
            h[at..at + 4].copy_from_slice(&new.to_le_bytes());
            let word = (u32::from(check) << 16) | (b as u32 & 0xff00) | u32::from(ttl - 1);
            h[8..12].copy_from_slice(&word.to_le_bytes());
            l4_rewrite(l4, dst, addr_acc, port);
        }
    }
    Some((start, len))
}

/// IPv6 without extension headers: the new start and length of the forwarded packet.
#[inline(always)]
fn v6<'m>(buf: &mut [u8], p: Pkt, c: &Classified, plan: impl PlanOf<'m>) -> Option<(usize, usize)> {
    let (h, seg, start) = split::<40>(buf, p, c)?;
    let len = p.len;
    // The first 8 bytes as one little-endian word (as for IPv4): version, traffic class,
    // payload length, next header, hop limit.
    let a = le64(h);
    let hop = (a >> 56) as u8;
    if ((a as u8) >> 4 != 6)
        | (usize::from(((a >> 32) as u16).swap_bytes()) + 40 != len)
        | ((a >> 48) as u8 != c.protocol)
        | (hop <= 1)
    {
        return None;
    }
    match plan.plan()? {
        Plan::Tunnel => {
            let m = plan.tunnel()?;
            if !tunnel::fast_fits(start, len, m) {
                return None;
            }
            h[7] = hop - 1;
            let inner = Inner {
                family: Family::V6,
                ds: ((a as u8) << 4) | ((a >> 8) as u8 >> 4),
                ttl: hop - 1,
                df: false,
            };
            let done = tunnel::fast_write(buf, start, len, c, m, inner);
            if done.is_none() {
                // Not expected after `fast_fits`; the packet goes to the general path as it was.
                *buf.get_mut(start + 7)? = hop;
            }
            return done;
        }
        Plan::Nat { new, port, dst } => {
            let IpAddr::V6(new) = new else {
                return None;
            };
            let l4 = l4_fields(seg, p.tcp)?;
            // As `nat::apply`, IPv6 arm.
            let at = if dst { 24 } else { 8 };
            let old: &mut [u8; 16] = (&mut h[at..at + 16]).try_into().ok()?;
            let new = new.octets();
            let addr_acc =
                u64::from(!folded_sum_swapped(old)) + u64::from(folded_sum_swapped(&new));
            *old = new;
            h[7] = hop - 1;
            l4_rewrite(l4, dst, addr_acc, port);
        }
    }
    Some((start, len))
}

/// The fixed transport header the NAT rewrite changes: TCP's 20 bytes or UDP's 8.
enum L4<'a> {
    /// TCP: ports at 0 and 2, checksum at 16.
    Tcp(&'a mut [u8; 20]),
    /// UDP with a checksum (not 0): ports at 0 and 2, checksum at 6.
    Udp(&'a mut [u8; 8]),
}

/// The fixed L4 header of `seg`, after checking that it is there; `None` for a UDP checksum
/// of 0 (the general path computes a full one).
#[inline(always)]
fn l4_fields(seg: &mut [u8], tcp: bool) -> Option<L4<'_>> {
    if tcp {
        seg.first_chunk_mut::<20>().map(L4::Tcp)
    } else {
        let h = seg.first_chunk_mut::<8>()?;
        (h[6] != 0 || h[7] != 0).then_some(L4::Udp(h))
    }
}

/// The port and the L4 checksum, as `nat::apply` does them, in the byte-swapped domain
/// (`addr_acc` too): the port and the checksum read and written as they lie in memory. One
/// copy per protocol, so that each knows its checksum's place and rule.
#[inline(always)]
fn l4_rewrite(l4: L4<'_>, dst: bool, addr_acc: u64, port: u16) {
    match l4 {
        L4::Tcp(h) => port_and_check::<20, 16, false>(h, dst, addr_acc, port),
        L4::Udp(h) => port_and_check::<8, 6, true>(h, dst, addr_acc, port),
    }
}

/// [`l4_rewrite`] on an `N`-byte header whose checksum is at `CHECK`; `UDP`: a computed 0 is
/// sent as 0xFFFF.
#[inline(always)]
fn port_and_check<const N: usize, const CHECK: usize, const UDP: bool>(
    h: &mut [u8; N],
    dst: bool,
    addr_acc: u64,
    port: u16,
) {
    let port_at = if dst { 2 } else { 0 };
    let old_port = u16::from_le_bytes([h[port_at], h[port_at + 1]]);
    let port = port.swap_bytes();
    h[port_at..port_at + 2].copy_from_slice(&port.to_le_bytes());
    let check = u16::from_le_bytes([h[CHECK], h[CHECK + 1]]);
    let check =
        !checksum::fold(u64::from(!check) + addr_acc + u64::from(!old_port) + u64::from(port));
    // TCP uses the result as it is; UDP sends a computed 0 as 0xFFFF (both read the same
    // swapped).
    let check = if UDP {
        checksum::udp_nonzero(check)
    } else {
        check
    };
    h[CHECK..CHECK + 2].copy_from_slice(&check.to_le_bytes());
}

/// The IPv4 TTL word (bytes 8..12: TTL, protocol, header checksum) after the TTL decrement,
/// from the header's second [`header_words`] word `b` (TTL above 1), as a little-endian
/// word. The checksum update is the kernel's `ip_decrease_ttl` as a little-endian host runs
/// it: the checksum as it lies in memory plus `htons(0x0100)` (= 1), plus the end-around
/// carry when the sum reaches 0xFFFF. For every checksum this gives the bytes of
/// `Checked::decrement_ttl`'s RFC 1624 update (the unit test below checks all 65,536), in
/// five instructions instead of a two-step fold.
#[inline(always)]
fn ttl_word(b: u64) -> u32 {
    // On the word itself: the TTL (low byte, at least 2: no borrow) less one is `- 1`, the
    // checksum (high half) plus one is `+ 0x10000`, and the carry `+ 0x10000` more when the
    // checksum was 0xFFFE or 0xFFFF; what passes bit 31 is the 16-bit wrap.
    let w = b as u32;
    w.wrapping_add(0xffff + (u32::from(w >= 0xfffe_0000) << 16))
}

/// The first 8 bytes of `b` as a little-endian word, 0 if shorter (the callers pass fixed-size
/// headers, so the length test folds away). A whole-array copy is one load; a word assembled
/// from indexed bytes lets LLVM split the load and join the pieces again.
#[inline(always)]
fn le64(b: &[u8]) -> u64 {
    b.first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w))
}

/// The IPv4 header (20 bytes, no options) as two 64-bit and one 32-bit little-endian words.
#[inline(always)]
fn header_words(h: &[u8; 20]) -> (u64, u64, u32) {
    let e = h[16..]
        .first_chunk::<4>()
        .map_or(0, |w| u32::from_le_bytes(*w));
    (le64(h), le64(&h[8..]), e)
}

/// The folded sum of an IPv6 address's 16-bit words in the byte-swapped domain (as they lie
/// in memory, read little-endian), from two little-endian words: one's-complement sums
/// commute with the byte swap (RFC 1071), and the fold maps 0 to 0 and any other sum into
/// 1..=0xFFFF in either byte order, so swapping the result gives the folded big-endian sum.
#[inline(always)]
fn folded_sum_swapped(a: &[u8; 16]) -> u16 {
    checksum::fold(checksum::add64(le64(a), le64(&a[8..])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The sum of the four big-endian 32-bit words of an IPv6 address (unfolded).
    fn sum32(a: &[u8; 16]) -> u64 {
        let w = |i: usize| u64::from(u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]));
        w(0) + w(4) + w(8) + w(12)
    }

    /// `folded_sum_swapped`, swapped back, is the folded big-endian sum of an address.
    #[test]
    fn folded_sum_is_the_plain_sum() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let mut cases: Vec<[u8; 16]> = vec![[0; 16], [0xff; 16]];
        cases.extend((0..20_000).map(|_| rng.random::<[u8; 16]>()));
        for a in cases {
            assert_eq!(
                folded_sum_swapped(&a).swap_bytes(),
                checksum::fold(sum32(&a)),
                "{a:02x?}"
            );
        }
    }

    /// The DR update of the TTL word, done on the little-endian word, writes the bytes of the
    /// general path's big-endian update for every checksum and a few TTLs.
    #[test]
    fn swapped_ttl_update_is_rfc1624() {
        for check in 0..=u16::MAX {
            for (ttl, p) in [(2u8, 6u8), (64, 17), (255, 6), (3, 0xff)] {
                // `Checked::decrement_ttl`, which equals `checksum::update_u16` here.
                let be = !checksum::fold(u64::from(!check) + 0xfeff);
                assert_eq!(
                    be,
                    checksum::update_u16(
                        check,
                        u16::from_be_bytes([ttl, p]),
                        u16::from_be_bytes([ttl - 1, p]),
                    )
                );
                let [c0, c1] = check.to_be_bytes();
                let b = u64::from_le_bytes([ttl, p, c0, c1, 0, 0, 0, 0]);
                let [t, q, s0, s1] = ttl_word(b).to_le_bytes();
                assert_eq!([t, q], [ttl - 1, p]);
                assert_eq!([s0, s1], be.to_be_bytes(), "{check:#x} {ttl}");
            }
        }
    }

    /// `try_fast_in` and `try_fast_out`, which the director calls without a [`Mapping`], do
    /// exactly what [`transmit`](super::super::transmit) does with a mapping of the same
    /// fields: on success the same bytes and the verdict's start and length, and on `None`
    /// the buffer untouched, for random methods, families, protocols, TTLs, MTUs, UDP
    /// checksums of 0, loopback real servers and bytes changed after classification.
    #[test]
    fn entry_points_without_a_mapping_equal_transmit() {
        use crate::wire::classify;
        use crate::xmit::transmit;
        use core::net::{Ipv4Addr, Ipv6Addr};
        use etherparse::PacketBuilder;

        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut fast_hits = 0u32;
        for _ in 0..20_000 {
            let v6 = rng.random_bool(0.5);
            let tcp = rng.random_bool(0.5);
            let ttl = rng.random_range(0..=3u8) * rng.random_range(1..=80u8);
            let ip = |n: u32, lo: bool| -> IpAddr {
                match (v6, lo) {
                    (false, false) => Ipv4Addr::from(0x0a00_0000 | n >> 8).into(),
                    (false, true) => Ipv4Addr::LOCALHOST.into(),
                    (true, false) => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n as u16).into(),
                    (true, true) => Ipv6Addr::LOCALHOST.into(),
                }
            };
            let (c, v) = (ip(rng.random(), false), ip(rng.random(), false));
            let lo = rng.random_bool(0.1);
            let r = ip(rng.random(), lo);
            let (cport, vport, dport): (u16, u16, u16) = (rng.random(), rng.random(), rng.random());
            let forward = [
                Forward::Masq,
                Forward::DirectRoute,
                Forward::Tunnel,
                Forward::Local,
            ][rng.random_range(0..4)];
            let out = forward == Forward::Masq && rng.random_bool(0.5);
            // The packet as it arrives: client -> virtual, or real server -> client.
            let (src, sport, dst, dport_pkt) = if out {
                (r, dport, c, cport)
            } else {
                (c, cport, v, vport)
            };
            let b = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), ttl),
                (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), ttl),
                _ => unreachable!(),
            };
            let payload: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
            let mut pkt = Vec::new();
            if tcp {
                b.tcp(sport, dport_pkt, rng.random(), 1000)
                    .ack(rng.random())
                    .write(&mut pkt, &payload)
                    .unwrap();
            } else {
                b.udp(sport, dport_pkt).write(&mut pkt, &payload).unwrap();
                if !v6 && rng.random_bool(0.1) {
                    // No UDP checksum: the general path's case.
                    pkt[26] = 0;
                    pkt[27] = 0;
                }
            }
            let mut buf = vec![0u8; 40 + pkt.len()];
            buf[40..].copy_from_slice(&pkt);
            let Ok(cl) = classify(&buf[40..]) else {
                continue;
            };
            if rng.random_bool(0.2) {
                let at = 40 + rng.random_range(0..pkt.len());
                buf[at] ^= rng.random_range(1..=255u8);
            }
            let route_mtu = [0, 1500, 60, 100][rng.random_range(0..4)];
            let mut m = Mapping::new((c, cport), (v, vport), (r, dport));
            m.forward = forward;
            m.route_mtu = route_mtu;
            let dir = if out { Direction::Out } else { Direction::In };
            let (mut fast, mut general) = (buf.clone(), buf.clone());
            let got = if out {
                try_fast_out(
                    &mut fast,
                    40,
                    &cl,
                    forward,
                    SocketAddr::new(v, vport),
                    route_mtu,
                )
            } else {
                try_fast_in(
                    &mut fast,
                    40,
                    &cl,
                    forward,
                    SocketAddr::new(r, dport),
                    route_mtu,
                )
            };
            let mut icmp = [0u8; 1280];
            let want = transmit(&mut general, 40, &cl, &m, dir, &mut icmp);
            match got {
                Some((start, len)) => {
                    fast_hits += 1;
                    let Verdict::Forward {
                        start: s, len: l, ..
                    } = want
                    else {
                        panic!("fast {got:?}, transmit {want:?}");
                    };
                    assert_eq!((start, len), (s, l));
                    assert_eq!(fast, general);
                }
                None => assert_eq!(fast, buf, "None must leave the packet alone"),
            }
        }
        // The fast entry points took a fair share of the cases, not only refusals.
        assert!(fast_hits > 2_000, "{fast_hits}");
    }
}
