//! Packet parsing and checksums: `classify` per family, the views, and the NAT checksum
//! update done incrementally (RFC 1624) versus recomputed in full.
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{BenchmarkId, Criterion, Throughput};
use etherparse::{
    IpHeaders, IpNumber, Ipv6Extensions, Ipv6Header, Ipv6RawExtHeader, PacketBuilder,
};
use lvs_core::wire::{checksum, classify, Ipv4Packet, Ipv6Packet, TcpPacket};

const SRC4: [u8; 4] = [192, 0, 2, 10];
const DST4: [u8; 4] = [10, 0, 0, 80];
const SRC6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a];
const DST6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x50];

fn v4_tcp(payload: usize) -> Vec<u8> {
    let b = PacketBuilder::ipv4(SRC4, DST4, 64)
        .tcp(40000, 80, 1, 64240)
        .ack(7);
    let mut v = Vec::new();
    b.write(&mut v, &vec![0xab; payload]).unwrap();
    v
}

fn v6_tcp(payload: usize, exts: bool) -> Vec<u8> {
    let ip = Ipv6Header {
        source: SRC6,
        destination: DST6,
        hop_limit: 64,
        ..Default::default()
    };
    let exts = Ipv6Extensions {
        destination_options: exts
            .then(|| Ipv6RawExtHeader::new_raw(IpNumber(6), &[1, 4, 0, 0, 0, 0]).unwrap()),
        ..Default::default()
    };
    let b = PacketBuilder::ip(IpHeaders::Ipv6(ip, exts))
        .tcp(40000, 443, 1, 64240)
        .ack(7);
    let mut v = Vec::new();
    b.write(&mut v, &vec![0xab; payload]).unwrap();
    v
}

fn classify_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire/classify");
    let cases = [
        ("ipv4_tcp", v4_tcp(64)),
        ("ipv6_tcp", v6_tcp(64, false)),
        ("ipv6_tcp_dstopts", v6_tcp(64, true)),
    ];
    for (name, pkt) in &cases {
        assert!(classify(pkt).is_ok());
        // The result is observed in place: moving the ~90-byte struct out through a copy
        // would measure a store-forwarding stall of the copy, not the classification.
        g.bench_function(*name, |b| {
            b.iter(|| {
                let r = classify(black_box(pkt));
                black_box(&r);
            })
        });
    }
    g.finish();

    // The views directly: header checks plus reading the 5-tuple.
    let mut g = c.benchmark_group("wire/views");
    let v4 = v4_tcp(64);
    g.bench_function("ipv4_tcp_5tuple", |b| {
        b.iter(|| {
            let ip = Ipv4Packet::new_checked(black_box(&v4[..])).unwrap();
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            (
                ip.src_addr(),
                ip.dst_addr(),
                tcp.src_port(),
                tcp.dst_port(),
                tcp.flags(),
            )
        })
    });
    let v6 = v6_tcp(64, false);
    g.bench_function("ipv6_tcp_5tuple", |b| {
        b.iter(|| {
            let ip = Ipv6Packet::new_checked(black_box(&v6[..])).unwrap();
            let t = ip.transport().unwrap();
            let tcp = TcpPacket::new_checked(&v6[t.offset..]).unwrap();
            (
                ip.src_addr(),
                ip.dst_addr(),
                tcp.src_port(),
                tcp.dst_port(),
                tcp.flags(),
            )
        })
    });
    g.finish();
}

/// DNAT as the NAT rewrite does it: destination address and port, TTL, checksums.
fn nat_v4(pkt: &mut [u8], incremental: bool) {
    let rip = Ipv4Addr::new(10, 1, 1, 1);
    let mut ip = Ipv4Packet::new_unchecked(&mut *pkt);
    let old = ip.dst_addr();
    let (ttl, proto) = (ip.ttl(), ip.protocol());
    ip.set_dst_addr(rip);
    ip.set_ttl(ttl.wrapping_sub(1));
    if incremental {
        let c = checksum::update_u32(ip.checksum(), u32::from(old), u32::from(rip));
        let c = checksum::update_u16(
            c,
            u16::from_be_bytes([ttl, proto]),
            u16::from_be_bytes([ttl.wrapping_sub(1), proto]),
        );
        ip.set_checksum(c);
    } else {
        ip.fill_checksum();
    }
    let hl = ip.header_len();
    let mut tcp = TcpPacket::new_unchecked(&mut pkt[hl..]);
    let old_port = tcp.dst_port();
    tcp.set_dst_port(8080);
    if incremental {
        let c = checksum::update_u32(tcp.checksum(), u32::from(old), u32::from(rip));
        tcp.set_checksum(checksum::update_u16(c, old_port, 8080));
    } else {
        tcp.fill_checksum(&IpAddr::V4(Ipv4Addr::from(SRC4)), &IpAddr::V4(rip));
    }
}

fn nat_v6(pkt: &mut [u8], incremental: bool) {
    let rip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 1);
    let mut ip = Ipv6Packet::new_unchecked(&mut *pkt);
    let old = ip.dst_addr();
    ip.set_dst_addr(rip);
    ip.set_hop_limit(ip.hop_limit().wrapping_sub(1));
    let mut tcp = TcpPacket::new_unchecked(&mut pkt[40..]);
    let old_port = tcp.dst_port();
    tcp.set_dst_port(8080);
    if incremental {
        let c = checksum::update_u128(tcp.checksum(), &old.octets(), &rip.octets());
        tcp.set_checksum(checksum::update_u16(c, old_port, 8080));
    } else {
        tcp.fill_checksum(&IpAddr::V6(Ipv6Addr::from(SRC6)), &IpAddr::V6(rip));
    }
}

fn checksum_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire/nat_checksum");
    for payload in [64usize, 1400] {
        for (family, base) in [
            ("ipv4_tcp", v4_tcp(payload)),
            ("ipv6_tcp", v6_tcp(payload, false)),
        ] {
            g.throughput(Throughput::Bytes(base.len() as u64));
            for (mode, incremental) in [("incremental", true), ("full", false)] {
                let id = BenchmarkId::new(format!("{family}/{mode}"), payload);
                let mut pkt = base.clone();
                g.bench_function(id, |b| {
                    b.iter(|| {
                        // Rewriting the same buffer again and again keeps it valid: the
                        // checksums stay consistent whichever way they are updated.
                        if family == "ipv4_tcp" {
                            nat_v4(black_box(&mut pkt[..]), incremental)
                        } else {
                            nat_v6(black_box(&mut pkt[..]), incremental)
                        }
                    })
                });
                // Both ways give a packet whose checksums verify.
                let ip = classify(&pkt).expect("rewritten packet classifies");
                assert!(TcpPacket::new_checked(&pkt[ip.l4_range()])
                    .unwrap()
                    .verify_checksum(&ip.src, &ip.dst));
            }
        }
    }
    g.finish();
}

/// The whole NAT step as the director will run it: classify, then `xmit::nat_in`. The packet
/// is restored from a copy each time (its TTL would otherwise run out).
fn xmit_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("xmit/nat_in");
    for (name, base, rip) in [
        (
            "ipv4_tcp",
            v4_tcp(64),
            IpAddr::V4(Ipv4Addr::new(10, 1, 1, 1)),
        ),
        (
            "ipv6_tcp",
            v6_tcp(64, false),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 1)),
        ),
    ] {
        let mut pkt = base.clone();
        g.bench_function(name, |b| {
            b.iter(|| {
                pkt.copy_from_slice(&base);
                let c = classify(black_box(&pkt)).unwrap();
                lvs_core::xmit::nat_in(black_box(&mut pkt), &c, rip, 8080)
            })
        });
    }
    g.finish();
}

pub fn benches(c: &mut Criterion) {
    classify_benches(c);
    checksum_benches(c);
    xmit_benches(c);
}
