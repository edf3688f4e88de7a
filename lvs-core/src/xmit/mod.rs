//! Packet rewrite for the forwarding methods, in place, as pure functions over `&mut [u8]`.
//!
//! The director's per-packet path is `classify → connection lookup →` [`transmit`]: given the
//! buffer, the free headroom in front of the packet, the [`Classified`] summary, the
//! connection's [`Mapping`] and the [`Direction`], `transmit` rewrites in place without
//! allocating and returns a [`Verdict`]:
//!
//! - NAT (spec 3.2, [`nat`]): inbound DNAT (VIP:vport → RIP:dport) and reply SNAT
//!   (RIP:dport → VIP:vport), incremental checksums, TTL / hop limit decremented.
//! - DR (spec 3.3): the IP packet unchanged except TTL and the IPv4 header checksum; the
//!   verdict names the real server as next hop, [`set_ethernet_addrs`] writes the MACs.
//! - TUN (spec 3.4, [`tunnel`]): IPIP, GUE or GRE outer headers written into the headroom,
//!   any inner and outer family; [`decapsulate`] is the real-server side.
//! - ICMP errors quoting a connection (spec 3.7, [`icmp`]): NAT translates the outer and the
//!   quoted headers both ways; DR/TUN forward them unchanged through their transmitter.
//! - Errors *we* send (spec 3.1, 3.4, 6.1): Time Exceeded, Fragmentation Needed, Packet Too
//!   Big and port unreachable are built by [`icmp`] into a caller-provided output buffer and
//!   returned as [`Verdict::Reply`].
//!
//! Every step validates all it reads before the first byte changes: bad input gives
//! [`Verdict::Drop`] or [`Verdict::NotOurs`] with the buffer untouched, never a panic.
//!
//! Buffer convention: the packet that was classified starts at `buf[headroom]`
//! (`classify(&buf[headroom..])`), so the IP header is at `headroom + c.l3_offset`. Every byte
//! before the IP header is free space for tunnel headers (an Ethernet header there is
//! overwritten by TUN; the caller rebuilds the link layer anyway). Verdict ranges index `buf`
//! (and `out` for replies).
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
//! use lvs_core::rules::{Forward, TunnelConfig};
//! use lvs_core::wire::classify;
//! use lvs_core::xmit::{transmit, Direction, Mapping, Verdict};
//! # let pkt = {
//! #     let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [203, 0, 113, 1], 64)
//! #         .tcp(40000, 80, 1, 1024).syn();
//! #     let mut v = Vec::new();
//! #     b.write(&mut v, b"hi").unwrap();
//! #     v
//! # };
//! let mut buf = vec![0u8; 64 + pkt.len()];
//! buf[64..].copy_from_slice(&pkt);
//! let c = classify(&buf[64..]).unwrap();
//! let m = Mapping {
//!     forward: Forward::Tunnel,
//!     ..Mapping::new(
//!         (c.src, c.src_port),
//!         (c.dst, c.dst_port),
//!         ("10.1.1.1".parse().unwrap(), 80),
//!     )
//! };
//! let mut out = [0u8; 576];
//! let v = transmit(&mut buf, 64, &c, &m, Direction::In, &mut out);
//! assert_eq!(
//!     v,
//!     Verdict::Forward {
//!         method: Forward::Tunnel,
//!         next_hop: m.daddr,
//!         start: 44,
//!         len: pkt.len() + 20,
//!     }
//! );
//! let outer = classify(&buf[44..]).unwrap();
//! assert_eq!((outer.protocol, outer.dst, outer.ttl), (4, m.daddr, 63));
//! ```

mod fast;
pub mod icmp;
pub mod nat;
pub mod tunnel;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::rules::{Forward, TunnelConfig};
use crate::wire::{checksum, icmpv4, icmpv6, proto, Classified, Family};

pub(crate) use fast::{try_fast_in, try_fast_out};
pub use icmp::{build_error, port_unreachable, ErrorKind, IcmpError};
pub use nat::{decrement_ttl, nat_in, nat_out, NatError, Verdict as NatVerdict};
pub use tunnel::{decapsulate, encapsulate, overhead, DecapError, Decapsulated};

/// Which way a packet travels relative to the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → real server (and ICMP errors arriving from the client side).
    In,
    /// Real server → client: NAT replies (and ICMP errors from the real-server side).
    Out,
}

/// The connection as the rewrite sees it: its addresses, forwarding method, tunnel options,
/// and the few routing facts the caller knows (local source addresses, route MTU, IP ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Client address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real-server address.
    pub daddr: IpAddr,
    /// Real-server port (equal to the virtual port for DR and TUN).
    pub dport: u16,
    /// Forwarding method.
    pub forward: Forward,
    /// Tunnel options (used for [`Forward::Tunnel`] only).
    pub tunnel: TunnelConfig,
    /// The director's IPv4 source address: outer source of IPv4 tunnels, source of the IPv4
    /// ICMP errors we build about replies ([`Direction::Out`]; errors about a client's packet
    /// come from its destination, the virtual address).
    pub local_v4: Ipv4Addr,
    /// The director's IPv6 source address (IPv6 tunnels and ICMPv6 errors about replies).
    pub local_v6: Ipv6Addr,
    /// MTU of the route the packet leaves by (towards the real server; towards the client for
    /// NAT replies). 0 skips the MTU check (spec 3.1 step 4).
    pub route_mtu: u32,
    /// Sysctl `pmtu_disc` (default true): copy DF into IPv4 tunnel headers and check DF
    /// packets against the tunnel MTU; false tunnels them with DF clear and no check.
    pub pmtu_disc: bool,
    /// IPv4 identification for headers we create (outer tunnel header, ICMP errors). The
    /// caller owns the generator (a counter, a hash); no global state here.
    pub ip_id: u16,
}

impl Mapping {
    /// A NAT mapping for `client → virtual` forwarded to `real`, with the defaults: local
    /// addresses unspecified, no MTU check, `pmtu_disc` on, IP ID 0, no tunnel options.
    pub fn new(client: (IpAddr, u16), virt: (IpAddr, u16), real: (IpAddr, u16)) -> Mapping {
        Mapping {
            caddr: client.0,
            cport: client.1,
            vaddr: virt.0,
            vport: virt.1,
            daddr: real.0,
            dport: real.1,
            forward: Forward::Masq,
            tunnel: TunnelConfig::default(),
            local_v4: Ipv4Addr::UNSPECIFIED,
            local_v6: Ipv6Addr::UNSPECIFIED,
            route_mtu: 0,
            pmtu_disc: true,
            ip_id: 0,
        }
    }

    /// The director's local address of `family`.
    pub fn local(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => IpAddr::V4(self.local_v4),
            Family::V6 => IpAddr::V6(self.local_v6),
        }
    }
}

/// Why a packet was dropped. `Copy`, with [`index`](DropReason::index) for counter arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The bytes do not parse (truncated, wrong version, bad header length) or the summary
    /// does not describe them.
    Malformed,
    /// A fragment where a whole packet is needed (NAT: IPVS sees reassembled packets).
    Fragment,
    /// An L4 protocol the method cannot rewrite (NAT handles TCP, UDP and related ICMP).
    UnsupportedProtocol,
    /// The real server's family differs from the packet's (mixed families: TUN only).
    FamilyMismatch,
    /// TTL / hop limit was <= 1 (a Time Exceeded is returned as a [`Verdict::Reply`] when
    /// one may be sent).
    TtlExpired,
    /// Larger than the route (or tunnel) MTU (Fragmentation Needed / Packet Too Big is
    /// returned as a [`Verdict::Reply`] when one may be sent).
    TooBig,
    /// The tunnel MTU is below 68 (IPv4 outer) or 1280 (IPv6 outer): spec 3.4 drops.
    TunnelMtu,
    /// Not enough headroom for the tunnel headers, or the result exceeds 65535 bytes.
    NoRoom,
    /// A related ICMP error whose checksum does not verify (spec 3.7).
    IcmpChecksum,
    /// The tunnel configuration is unusable (GUE port 0).
    TunnelConfig,
    /// A reply should be sent but the output buffer is too small for it.
    ReplyBuffer,
    /// No destination available (spec 6.1; [`port_unreachable`]).
    NoDestination,
    /// NAT to a loopback real server (127/8, ::1) for a packet from the network: refused as
    /// `ip_vs_nat_xmit` does (spec 3.2).
    LoopbackDnat,
    /// An ICMP error about one of the director's own tunnel packets (spec 3.7, tunnel special
    /// case): consumed; a new error goes to the client when one is due.
    TunnelError,
}

impl DropReason {
    /// Number of reasons (the length of a counter array).
    pub const COUNT: usize = 14;

    /// Every reason in [`index`](DropReason::index) order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Malformed,
        DropReason::Fragment,
        DropReason::UnsupportedProtocol,
        DropReason::FamilyMismatch,
        DropReason::TtlExpired,
        DropReason::TooBig,
        DropReason::TunnelMtu,
        DropReason::NoRoom,
        DropReason::IcmpChecksum,
        DropReason::TunnelConfig,
        DropReason::ReplyBuffer,
        DropReason::NoDestination,
        DropReason::LoopbackDnat,
        DropReason::TunnelError,
    ];

    /// The counter index, `0..COUNT`.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A stable `snake_case` name for statistics output.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Fragment => "fragment",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::FamilyMismatch => "family_mismatch",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::TooBig => "too_big",
            DropReason::TunnelMtu => "tunnel_mtu",
            DropReason::NoRoom => "no_room",
            DropReason::IcmpChecksum => "icmp_checksum",
            DropReason::TunnelConfig => "tunnel_config",
            DropReason::ReplyBuffer => "reply_buffer",
            DropReason::NoDestination => "no_destination",
            DropReason::LoopbackDnat => "loopback_dnat",
            DropReason::TunnelError => "tunnel_error",
        }
    }
}

/// What [`transmit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send `buf[start..start + len]` (an IP packet) towards `next_hop`: the real server for
    /// DR / TUN / NAT inbound, the client for NAT replies (routed normally).
    Forward {
        /// The method that produced it.
        method: Forward,
        /// Where the packet goes next (DR: the real server whose MAC the frame gets).
        next_hop: IpAddr,
        /// Start of the IP packet in `buf`.
        start: usize,
        /// Its length.
        len: usize,
    },
    /// Local node (spec 3.5): deliver `buf[start..start + len]` to the local stack unchanged.
    Local {
        /// Start of the IP packet in `buf`.
        start: usize,
        /// Its length.
        len: usize,
    },
    /// The packet is dropped and an ICMP error we built is in `out[start..start + len]`
    /// (an IP packet to the packet's source, from its destination for a client's packet and
    /// from the director's local address for a reply).
    Reply {
        /// Why the original packet was dropped.
        reason: DropReason,
        /// Start of the ICMP error in `out` (always 0).
        start: usize,
        /// Its length.
        len: usize,
    },
    /// Drop the packet; nothing to send.
    Drop(DropReason),
    /// Not for IPVS: hand the packet to the director's own stack (e.g. ICMP that is not a
    /// related error, an error quoting another flow, a DR/TUN packet in the reply direction).
    NotOurs,
}

/// Rewrites one classified packet for its connection (see the [module docs](self) for the
/// buffer convention). `out` receives the ICMP error when the verdict is [`Verdict::Reply`];
/// 576 bytes (IPv4) / 1280 bytes (IPv6) hold any error we build.
///
/// Order (spec 3.1, as `__ip_vs_get_out_rt` does it): validate → TTL (Time Exceeded) → MTU
/// (Fragmentation Needed / Packet Too Big, quoting the packet with its TTL already
/// decremented, as the kernel's `icmp_send` sees it) → rewrite.
///
/// The common case (a whole TCP or UDP packet with a plain IP header, NAT or DR, nothing to
/// refuse) is finished by a straight-line fast path; every other packet takes
/// [`transmit_general`]. Both give the same verdict and the same bytes for every input whose
/// summary `c` is what [`classify`](crate::wire::classify) returned, for these bytes or for
/// others (both re-validate the IP header's structure against it). A summary whose fields
/// were changed after `classify` is a caller bug: the verdict may then differ between the two
/// paths, but neither changes anything outside the packet's range.
#[inline(always)]
pub fn transmit(
    buf: &mut [u8],
    headroom: usize,
    c: &Classified,
    m: &Mapping,
    dir: Direction,
    out: &mut [u8],
) -> Verdict {
    if let Some(v) = fast::try_fast(buf, headroom, c, m, dir) {
        return v;
    }
    general_out_of_line(buf, headroom, c, m, dir, out)
}

/// [`transmit_general`] as a call: kept out of [`transmit`] so that the fast path, inlined
/// into its caller, does not carry the general path's stack frame and register saves on every
/// packet.
#[inline(never)]
fn general_out_of_line(
    buf: &mut [u8],
    headroom: usize,
    c: &Classified,
    m: &Mapping,
    dir: Direction,
    out: &mut [u8],
) -> Verdict {
    transmit_general(buf, headroom, c, m, dir, out)
}

/// [`transmit`] without its fast path: every packet goes through the general, step-by-step
/// validation and rewrite. The results are the same as [`transmit`]'s, byte for byte (the
/// tests and the `xmit_rewrite` fuzz target compare the two); it is public as the reference
/// for that comparison.
pub fn transmit_general(
    buf: &mut [u8],
    headroom: usize,
    c: &Classified,
    m: &Mapping,
    dir: Direction,
    out: &mut [u8],
) -> Verdict {
    let Some(pkt) = Checked::new(buf, headroom, c) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    if m.forward == Forward::Local {
        return Verdict::Local {
            start: pkt.start,
            len: pkt.len,
        };
    }
    if dir == Direction::Out && m.forward != Forward::Masq {
        // DR / TUN connections see no replies (NOOUTPUT); errors from the real-server side
        // about them are "forwarded unchanged" by the stack (spec 3.7).
        return Verdict::NotOurs;
    }
    let is_icmp = matches!(
        (c.family, c.protocol),
        (Family::V4, proto::ICMP) | (Family::V6, proto::ICMPV6)
    );
    let relay = if is_icmp {
        // Spec 3.7: only errors are related; everything else is the director's own business.
        let error = c.l4_present
            && match c.family {
                Family::V4 => icmpv4::is_error_type(c.icmp_type),
                Family::V6 => icmpv6::is_error_type(c.icmp_type),
            };
        if !error {
            return Verdict::NotOurs;
        }
        match icmp::check_related(buf, &pkt, c, m, dir) {
            Ok(()) => true,
            Err(v) => return v,
        }
    } else {
        false
    };
    match m.forward {
        Forward::Masq => {
            if !relay {
                if c.protocol != proto::TCP && c.protocol != proto::UDP {
                    return Verdict::Drop(DropReason::UnsupportedProtocol);
                }
                if c.is_fragment {
                    return Verdict::Drop(DropReason::Fragment);
                }
            }
            let new = if dir == Direction::In {
                m.daddr
            } else {
                m.vaddr
            };
            if dir == Direction::In && new.is_loopback() {
                // "From world but DNAT to loopback address?" (the director's packets come
                // from the network; locally generated traffic does not pass through here).
                return Verdict::Drop(DropReason::LoopbackDnat);
            }
            if new.is_ipv6() != (c.family == Family::V6) {
                return Verdict::Drop(DropReason::FamilyMismatch);
            }
            if let Some(v) = ttl_and_mtu(buf, &pkt, c, m, m.route_mtu, relay, dir, out) {
                return v;
            }
            let done = if relay {
                icmp::nat_related(buf, &pkt, c, m, dir)
            } else {
                let (side, port) = if dir == Direction::In {
                    (nat::Side::Dst, m.dport)
                } else {
                    (nat::Side::Src, m.vport)
                };
                let ip = &mut buf[pkt.start..pkt.start + pkt.len];
                nat::apply(
                    ip,
                    pkt.l4 - pkt.start,
                    c.family,
                    c.protocol,
                    side,
                    new,
                    port,
                )
            };
            if !done {
                // Unreachable after the checks above; kept total.
                return Verdict::Drop(DropReason::Malformed);
            }
            Verdict::Forward {
                method: Forward::Masq,
                next_hop: if dir == Direction::In {
                    m.daddr
                } else {
                    m.caddr
                },
                start: pkt.start,
                len: pkt.len,
            }
        }
        Forward::DirectRoute => {
            if m.daddr.is_ipv6() != (c.family == Family::V6) {
                return Verdict::Drop(DropReason::FamilyMismatch);
            }
            if let Some(v) = ttl_and_mtu(buf, &pkt, c, m, m.route_mtu, relay, dir, out) {
                return v;
            }
            pkt.decrement_ttl(buf, c.family);
            Verdict::Forward {
                method: Forward::DirectRoute,
                next_hop: m.daddr,
                start: pkt.start,
                len: pkt.len,
            }
        }
        Forward::Tunnel => tunnel::transmit(buf, &pkt, c, m, relay, out),
        // Handled above.
        Forward::Local => Verdict::NotOurs,
    }
}

/// Writes the destination MAC (the real server's, from the neighbour table) and the source
/// MAC (the director's egress interface) of an Ethernet frame: the DR link-layer step
/// (spec 3.3). Returns false, with nothing changed, if `frame` is shorter than an Ethernet
/// header.
///
/// ```
/// let mut frame = [0u8; 14];
/// assert!(lvs_core::xmit::set_ethernet_addrs(&mut frame, [2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 1]));
/// assert_eq!(frame[..12], [2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 1]);
/// ```
pub fn set_ethernet_addrs(frame: &mut [u8], dst: [u8; 6], src: [u8; 6]) -> bool {
    let Ok(mut f) = crate::wire::EthernetFrame::new_checked(frame) else {
        return false;
    };
    f.set_dst_addr(dst);
    f.set_src_addr(src);
    true
}

/// The IP packet located and re-validated: `buf[start..start + len]` holds a header that
/// parses with its view, whose family and length agree with the summary.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Checked {
    /// Start of the IP header in `buf`.
    pub(crate) start: usize,
    /// IP total length.
    pub(crate) len: usize,
    /// Start of the L4 header in `buf`.
    pub(crate) l4: usize,
    /// TTL / hop limit.
    pub(crate) ttl: u8,
    /// IPv4 DF (false for IPv6).
    pub(crate) df: bool,
}

impl Checked {
    /// Locates the IP packet and re-validates its header's structure against the summary
    /// (version, header length, total length, protocol), plus the fixed L4 header the rewrite
    /// touches: 20 bytes for TCP, 8 for UDP and ICMP. The IPv4 header checksum is not verified
    /// again: [`classify`](crate::wire::classify) verified it, as the kernel's `ip_rcv` does
    /// before IPVS sees the packet, and the rewrite's incremental updates keep a checksum
    /// exactly as valid (or not) as it was.
    #[inline]
    fn new(buf: &[u8], headroom: usize, c: &Classified) -> Option<Checked> {
        let start = headroom.checked_add(c.l3_offset)?;
        let end = start.checked_add(c.total_len)?;
        let l4 = headroom.checked_add(c.l4_offset)?;
        let ip = buf.get(start..end)?;
        if l4 < start || l4 > end {
            return None;
        }
        let (ttl, df) = match c.family {
            Family::V4 => {
                // One fixed-size borrow for every fixed field (as `classify` does).
                let h = ip.first_chunk::<20>()?;
                let hl = usize::from(h[0] & 0x0f) * 4;
                if h[0] >> 4 != 4
                    || hl < 20
                    || usize::from(u16::from_be_bytes([h[2], h[3]])) != c.total_len
                    || h[9] != c.protocol
                    || l4 - start < hl
                {
                    return None;
                }
                (h[8], h[6] & 0x40 != 0)
            }
            Family::V6 => {
                let h = ip.first_chunk::<40>()?;
                if h[0] >> 4 != 6
                    || usize::from(u16::from_be_bytes([h[4], h[5]])) + 40 != c.total_len
                    || l4 - start < 40
                {
                    return None;
                }
                (h[7], false)
            }
        };
        if c.l4_present {
            let need = match c.protocol {
                proto::TCP => 20,
                proto::UDP | proto::ICMP | proto::ICMPV6 => 8,
                _ => 0,
            };
            if end - l4 < need {
                return None;
            }
        }
        Some(Checked {
            start,
            len: c.total_len,
            l4,
            ttl,
            df,
        })
    }

    /// Decrements the TTL (checked > 1 by the caller) with the IPv4 checksum update.
    ///
    /// `family` is the one [`Checked::new`] validated the header for, so the version is not
    /// read again. The IPv4 checksum update is RFC 1624 for the TTL/protocol word with
    /// `~m + m'` folded to the constant `0xfeff` (the word drops by exactly `0x0100` since
    /// TTL >= 2): the same arithmetic as [`checksum::update_u16`], hence the same bytes.
    #[inline(always)]
    pub(crate) fn decrement_ttl(&self, buf: &mut [u8], family: Family) {
        match family {
            Family::V4 => {
                let Some(h) = buf
                    .get_mut(self.start..)
                    .and_then(|b| b.first_chunk_mut::<12>())
                else {
                    return;
                };
                let ttl = h[8];
                if ttl < 2 {
                    // Not reached (the caller checked); kept total without the shortcut.
                    return;
                }
                h[8] = ttl - 1;
                let check = u16::from_be_bytes([h[10], h[11]]);
                let check = !checksum::fold(u64::from(!check) + 0xfeff);
                h[10..12].copy_from_slice(&check.to_be_bytes());
            }
            Family::V6 => {
                if let Some(b) = buf.get_mut(self.start + 7) {
                    *b = b.saturating_sub(1);
                }
            }
        }
    }
}

/// Spec 3.1 steps 3 and 4 before any byte changes: `Some(verdict)` when the packet must not
/// be forwarded. `mtu` is the MTU the packet must fit (route MTU, minus tunnel overhead);
/// `dir` the packet's direction (which decides the source of an error we build).
///
/// Only the two comparisons are inlined into the per-packet path; building an ICMP error is
/// rare and lives in the cold functions below, so the common case is a few instructions.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn ttl_and_mtu(
    buf: &[u8],
    pkt: &Checked,
    c: &Classified,
    m: &Mapping,
    mtu: u32,
    relay: bool,
    dir: Direction,
    out: &mut [u8],
) -> Option<Verdict> {
    if pkt.ttl <= 1 {
        return Some(ttl_expired(buf, pkt, c, m, dir, out));
    }
    mtu_check(buf, pkt, c, m, mtu, relay, dir, out)
}

/// Spec 3.1 step 4 alone (the TTL was checked): `Some(verdict)` when the packet is larger
/// than `mtu` and must not be forwarded; `mtu` 0 skips the check.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn mtu_check(
    buf: &[u8],
    pkt: &Checked,
    c: &Classified,
    m: &Mapping,
    mtu: u32,
    relay: bool,
    dir: Direction,
    out: &mut [u8],
) -> Option<Verdict> {
    let len = u32::try_from(pkt.len).unwrap_or(u32::MAX);
    // Both families only act on a packet longer than the MTU: exit early on the common case.
    if mtu == 0 || len <= mtu {
        return None;
    }
    too_big(buf, pkt, c, m, mtu, relay, dir, out)
}

/// The Time Exceeded reply (TTL / hop limit <= 1).
#[cold]
#[inline(never)]
fn ttl_expired(
    buf: &[u8],
    pkt: &Checked,
    c: &Classified,
    m: &Mapping,
    dir: Direction,
    out: &mut [u8],
) -> Verdict {
    let ip = &buf[pkt.start..pkt.start + pkt.len];
    icmp::reply(
        out,
        ip,
        c,
        m,
        dir,
        ErrorKind::TimeExceeded,
        false,
        DropReason::TtlExpired,
    )
}

/// A packet longer than `mtu` (non-zero): what `ensure_mtu_is_adequate` decides.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn too_big(
    buf: &[u8],
    pkt: &Checked,
    c: &Classified,
    m: &Mapping,
    mtu: u32,
    relay: bool,
    dir: Direction,
    out: &mut [u8],
) -> Option<Verdict> {
    let ip = &buf[pkt.start..pkt.start + pkt.len];
    // Client → real server: IPVS decremented the TTL before its MTU check (`decrement_ttl`
    // then `ensure_mtu_is_adequate`). A NAT reply meets the MTU in `ip_forward`, before its
    // TTL is decreased: quoted as received.
    let quote_decremented = dir == Direction::In;
    match c.family {
        Family::V4 => {
            // ensure_mtu_is_adequate: DF, too long, and not a relayed ICMP error.
            let tunnel_no_pmtu = m.forward == Forward::Tunnel && !m.pmtu_disc;
            if !tunnel_no_pmtu && pkt.df && !relay {
                let mtu = u16::try_from(mtu).unwrap_or(u16::MAX);
                return Some(icmp::reply(
                    out,
                    ip,
                    c,
                    m,
                    dir,
                    ErrorKind::FragNeeded { mtu },
                    quote_decremented,
                    DropReason::TooBig,
                ));
            }
        }
        Family::V6 => {
            // Too big is always dropped; Packet Too Big only for a first fragment that is
            // not a relayed ICMP error.
            if relay || c.is_later_fragment() {
                return Some(Verdict::Drop(DropReason::TooBig));
            }
            return Some(icmp::reply(
                out,
                ip,
                c,
                m,
                dir,
                ErrorKind::PacketTooBig { mtu },
                quote_decremented,
                DropReason::TooBig,
            ));
        }
    }
    None
}
