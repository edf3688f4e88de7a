//! The rewrite alone (`xmit::transmit`) on a pre-classified packet, per forwarding method and
//! family.
//!
//! Shape: the rewrite works in place, so each iteration first puts back the bytes the previous
//! one changed (`restore::window`). Setup finds them by diffing the packet before and after
//! one rewrite: the smallest range covering every changed byte, widened to whole aligned
//! 8-byte words (the rewrite loads the header in such words, and a narrower store that a
//! load overlaps in part would cost a store-forwarding stall a packet from the network never
//! pays) and restored as one copy of power-of-two length. For this packet that is IP header
//! bytes 8..16 for DR and the tunnels over IPv4 (the changed TTL and header checksum are
//! 8..12), 0..8 over IPv6 (the hop limit is byte 7), 8..40 for NAT over IPv4 (TTL word,
//! destination address, destination port, TCP checksum: 8..38) and 0..64 for NAT over IPv6
//! (7..58). The headroom where the tunnel headers go is written, never read, so it is not
//! restored. After the timed loop one more restore and rewrite must give exactly the bytes
//! and the verdict of the first rewrite, so the loop cannot have measured another path (TTL
//! expiry, say).
//!
//! `xmit/restore64` is the copy of the packet's first 64 bytes alone: the restore every
//! iteration did before this shape (medians measured with it are about that much higher).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::Criterion;
use lvs_core::rules::{Forward, TunnelConfig, TunnelCsum, TunnelType};
use lvs_core::wire::{classify, Classified};
use lvs_core::xmit::{transmit, transmit_general, Direction, Mapping, Verdict};

use crate::restore::{self, with_window};

const HEADROOM: usize = 64;

fn packet(v6: bool) -> Vec<u8> {
    let b = if v6 {
        etherparse::PacketBuilder::ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
            [0x20, 1, 0xd, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            64,
        )
    } else {
        etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [203, 0, 113, 1], 64)
    };
    let b = b.tcp(40000, 80, 1, 1024).ack(7);
    let mut v = Vec::new();
    b.write(&mut v, &[0x5a; 512]).unwrap();
    v
}

fn mapping(v6: bool, forward: Forward, tunnel: TunnelType) -> Mapping {
    let (c, v, r): (IpAddr, IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1).into(),
        )
    } else {
        (
            Ipv4Addr::new(192, 0, 2, 7).into(),
            Ipv4Addr::new(203, 0, 113, 1).into(),
            Ipv4Addr::new(10, 1, 1, 1).into(),
        )
    };
    let dport = if forward == Forward::Masq { 8080 } else { 80 };
    Mapping {
        forward,
        tunnel: TunnelConfig {
            kind: tunnel,
            port: 6080,
            csum: TunnelCsum::NoCsum,
        },
        local_v4: Ipv4Addr::new(198, 51, 100, 254),
        local_v6: Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 0xfe),
        route_mtu: 1500,
        ip_id: 0x4242,
        ..Mapping::new((c, 40000), (v, 80), (r, dport))
    }
}

/// One rewrite bench: `name/family` in `g`, through `tx`.
fn rewrite(
    g: &mut criterion::BenchmarkGroup<'_, WallTime>,
    name: &str,
    v6: bool,
    fwd: Forward,
    kind: TunnelType,
    tx: impl Tx,
) {
    let fam = if v6 { "ipv6" } else { "ipv4" };
    let pkt = packet(v6);
    let m = mapping(v6, fwd, kind);
    let mut buf = vec![0u8; HEADROOM + pkt.len()];
    buf[HEADROOM..].copy_from_slice(&pkt);
    let cl = classify(&buf[HEADROOM..]).unwrap();
    let before = buf.clone();
    let mut out = [0u8; 1280];
    // The rewrite must succeed, or the numbers are meaningless.
    let v = tx.tx(&mut buf, HEADROOM, &cl, &m, Direction::In, &mut out);
    assert!(matches!(v, Verdict::Forward { .. }), "{name} {fam}: {v:?}");
    let (at, n) = restore::window(&before, &buf, HEADROOM).expect("the rewrite changes bytes");
    let first = Rewritten {
        buf: buf.clone(),
        verdict: v,
    };
    with_window!(
        n,
        timed(
            g,
            &format!("{name}/{fam}"),
            &mut buf,
            at,
            &before,
            &cl,
            &m,
            tx,
            &first
        )
    );
}

/// The rewrite functions compared (`transmit`, `transmit_general`), as marker types whose one
/// method is inlined into the timed loop, as `transmit` is inlined into a caller's packet
/// loop. (Passed as plain function items, the call went through the `Fn::call` shim, which
/// was not inlined: every iteration then paid a call and the shim's register saves.)
trait Tx: Copy {
    fn tx(
        self,
        buf: &mut [u8],
        headroom: usize,
        c: &Classified,
        m: &Mapping,
        dir: Direction,
        out: &mut [u8],
    ) -> Verdict;
}

/// [`transmit`]: the fast path, else the general one.
#[derive(Clone, Copy)]
struct Fast;

impl Tx for Fast {
    #[inline(always)]
    fn tx(
        self,
        buf: &mut [u8],
        headroom: usize,
        c: &Classified,
        m: &Mapping,
        dir: Direction,
        out: &mut [u8],
    ) -> Verdict {
        transmit(buf, headroom, c, m, dir, out)
    }
}

/// [`transmit_general`] alone.
#[derive(Clone, Copy)]
struct General;

impl Tx for General {
    #[inline(always)]
    fn tx(
        self,
        buf: &mut [u8],
        headroom: usize,
        c: &Classified,
        m: &Mapping,
        dir: Direction,
        out: &mut [u8],
    ) -> Verdict {
        transmit_general(buf, headroom, c, m, dir, out)
    }
}

/// The buffer and verdict after the first rewrite.
struct Rewritten {
    buf: Vec<u8>,
    verdict: Verdict,
}

/// The timed loop for a restore of `N` bytes at `at` (from `before`), then the check that one
/// more restore and rewrite reproduces `first`.
#[allow(clippy::too_many_arguments)]
fn timed<const N: usize>(
    g: &mut criterion::BenchmarkGroup<'_, WallTime>,
    id: &str,
    buf: &mut [u8],
    at: usize,
    before: &[u8],
    cl: &Classified,
    m: &Mapping,
    tx: impl Tx,
    first: &Rewritten,
) {
    let saved: [u8; N] = before[at..at + N].try_into().unwrap();
    let mut out = [0u8; 1280];
    g.bench_function(id, |b| {
        b.iter(|| {
            buf[at..at + N].copy_from_slice(&saved);
            let v = tx.tx(
                black_box(&mut *buf),
                HEADROOM,
                black_box(cl),
                m,
                Direction::In,
                &mut out,
            );
            // The verdict stays where the rewrite wrote it, and its address escapes. Returned
            // by value, `iter` would copy it into its own `black_box` slot in 8-byte loads
            // that straddle the rewrite's narrower field stores: a failed store-to-load
            // forward per iteration (most of the DR median), which a caller reading the
            // verdict's fields never pays.
            black_box(&v);
        })
    });
    buf[at..at + N].copy_from_slice(&saved);
    let v = tx.tx(buf, HEADROOM, cl, m, Direction::In, &mut out);
    assert_eq!(v, first.verdict, "{id}: verdict after the timed loop");
    assert!(*buf == *first.buf, "{id}: bytes after the timed loop");
}

pub fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("xmit/rewrite");
    for v6 in [false, true] {
        for (name, fwd, kind) in [
            ("nat_tcp", Forward::Masq, TunnelType::Ipip),
            ("dr", Forward::DirectRoute, TunnelType::Ipip),
            ("ipip", Forward::Tunnel, TunnelType::Ipip),
            ("gue", Forward::Tunnel, TunnelType::Gue),
            ("gre", Forward::Tunnel, TunnelType::Gre),
        ] {
            rewrite(&mut g, name, v6, fwd, kind, Fast);
        }
    }
    g.finish();

    // The restore the bench did before its current shape: the packet's first 64 bytes.
    let pkt = packet(false);
    let mut buf = vec![0u8; HEADROOM + pkt.len()];
    let head: [u8; 64] = pkt[..64].try_into().unwrap();
    c.bench_function("xmit/restore64", |b| {
        b.iter(|| {
            buf[HEADROOM..HEADROOM + 64].copy_from_slice(&head);
            black_box(&mut buf);
        })
    });

    // The same NAT and DR rewrites through the general path alone (what `transmit` does for
    // packets its fast path leaves alone), for the ratio of the two in one run.
    let mut g = c.benchmark_group("xmit/general");
    for v6 in [false, true] {
        for (name, fwd) in [("nat_tcp", Forward::Masq), ("dr", Forward::DirectRoute)] {
            rewrite(&mut g, name, v6, fwd, TunnelType::Ipip, General);
        }
    }
    g.finish();
}
