//! The rewrite alone (`xmit::transmit`) on a pre-classified packet, per forwarding method and
//! family. Each iteration first restores the packet's first 64 bytes (IP + L4 headers) from a
//! copy, since the rewrite decrements the TTL in place; that copy is part of the measurement.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::hint::black_box;

use criterion::Criterion;
use lvs_core::rules::{Forward, TunnelConfig, TunnelCsum, TunnelType};
use lvs_core::wire::{classify, Classified};
use lvs_core::xmit::{transmit, transmit_general, Direction, Mapping, Verdict};

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

/// One rewrite bench: `name/family` in `g`, through `tx` (a function item, so the call is
/// static and inlined as a caller's would be).
fn rewrite<M: criterion::measurement::Measurement>(
    g: &mut criterion::BenchmarkGroup<'_, M>,
    name: &str,
    v6: bool,
    fwd: Forward,
    kind: TunnelType,
    tx: impl Fn(&mut [u8], usize, &Classified, &Mapping, Direction, &mut [u8]) -> Verdict,
) {
    let fam = if v6 { "ipv6" } else { "ipv4" };
    let pkt = packet(v6);
    let m = mapping(v6, fwd, kind);
    let mut buf = vec![0u8; HEADROOM + pkt.len()];
    buf[HEADROOM..].copy_from_slice(&pkt);
    let cl = classify(&buf[HEADROOM..]).unwrap();
    let head: [u8; 64] = pkt[..64].try_into().unwrap();
    let mut out = [0u8; 1280];
    // The rewrite must succeed, or the numbers are meaningless.
    let v = tx(&mut buf, HEADROOM, &cl, &m, Direction::In, &mut out);
    assert!(matches!(v, Verdict::Forward { .. }), "{name} {fam}: {v:?}");
    g.bench_function(format!("{name}/{fam}"), |b| {
        b.iter(|| {
            buf[HEADROOM..HEADROOM + 64].copy_from_slice(&head);
            tx(
                black_box(&mut buf),
                HEADROOM,
                black_box(&cl),
                &m,
                Direction::In,
                &mut out,
            )
        })
    });
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
            rewrite(&mut g, name, v6, fwd, kind, transmit);
        }
    }
    g.finish();

    // The same NAT and DR rewrites through the general path alone (what `transmit` does for
    // packets its fast path leaves alone), for the ratio of the two in one run.
    let mut g = c.benchmark_group("xmit/general");
    for v6 in [false, true] {
        for (name, fwd) in [("nat_tcp", Forward::Masq), ("dr", Forward::DirectRoute)] {
            rewrite(&mut g, name, v6, fwd, TunnelType::Ipip, transmit_general);
        }
    }
    g.finish();
}
