//! The seed corpus of the `wire_views` fuzz target (`fuzz/corpus/wire_views/`), generated
//! with etherparse: IPv4/IPv6 TCP, UDP and ICMP, with IPv4 options and IPv6 extension headers,
//! ICMP errors quoting packets, fragments, IPIP / GRE / GUE encapsulation and Ethernet frames
//! with and without an 802.1Q tag.
//!
//! Regenerate after changing the list:
//! `cargo test -p lvs-core --test wire_corpus -- --ignored regenerate`.
//! The plain test checks that every committed seed is what the generator produces.

mod wire_support;

use std::path::PathBuf;

use etherparse::{icmpv4, IpNumber, PacketBuilder};
use lvs_core::wire::{ethertype, GrePacket, GuePacket, Ipv4Packet};
use wire_support::*;

const A4: [u8; 4] = [192, 0, 2, 10];
const B4: [u8; 4] = [10, 0, 0, 80];
const A6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a];
const B6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x50];

fn v4(options: Vec<u8>) -> NetSpec {
    NetSpec::V4(V4Spec {
        src: A4,
        dst: B4,
        dscp: 10,
        ecn: 1,
        ident: 0x1234,
        dont_frag: true,
        options,
    })
}

fn v6(exts: bool) -> NetSpec {
    NetSpec::V6(V6Spec {
        src: A6,
        dst: B6,
        traffic_class: 0x28,
        flow_label: 0x12345,
        hop_by_hop: exts.then_some(6),
        dest_opts: exts.then_some(14),
        routing: exts.then_some(6),
        auth_icv: exts.then_some(4),
    })
}

fn tcp(flags: u8, options: Vec<u8>) -> L4Spec {
    L4Spec::Tcp {
        src_port: 40000,
        dst_port: 80,
        seq: 0x0102_0304,
        ack: 0,
        flags,
        window: 64240,
        options,
    }
}

fn udp() -> L4Spec {
    L4Spec::Udp {
        src_port: 5353,
        dst_port: 53,
    }
}

fn spec(net: NetSpec, l4: L4Spec, payload: &[u8]) -> PacketSpec {
    PacketSpec {
        net,
        ttl: 64,
        l4,
        payload: payload.to_vec(),
    }
}

fn outer(v6: bool, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let b = if v6 {
        PacketBuilder::ipv6(B6, A6, 63)
    } else {
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 63)
    };
    let mut out = Vec::new();
    b.write(&mut out, IpNumber(protocol), payload).unwrap();
    out
}

fn gre(inner: &[u8], csum: bool, et: u16) -> Vec<u8> {
    let mut g = vec![0u8; if csum { 8 } else { 4 } + inner.len()];
    let mut p = GrePacket::init(&mut g[..], csum, et).unwrap();
    p.payload_mut().copy_from_slice(inner);
    p.fill_checksum();
    g
}

fn gue(inner: &[u8], proto: u8, outer_v6: bool) -> Vec<u8> {
    let mut g = vec![0u8; 4 + inner.len()];
    GuePacket::init(&mut g[..], proto)
        .unwrap()
        .payload_mut()
        .copy_from_slice(inner);
    let b = if outer_v6 {
        PacketBuilder::ipv6(B6, A6, 63)
    } else {
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 63)
    };
    let mut out = Vec::new();
    b.udp(49152, 6080).write(&mut out, &g).unwrap();
    out
}

/// Every seed: (file name, bytes).
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let syn = 0x02;
    let v4_tcp = build(&spec(v4(vec![]), tcp(syn, vec![2, 4, 5, 0xb4]), b""));
    let v4_udp = build(&spec(v4(vec![]), udp(), b"\x12\x34\x01\x00query"));
    let v6_tcp = build(&spec(
        v6(false),
        tcp(0x18, vec![]),
        b"GET / HTTP/1.1\r\n\r\n",
    ));
    let v6_udp_exts = build(&spec(v6(true), udp(), b"payload"));
    let mut seeds = vec![
        ("v4_tcp_syn", v4_tcp.clone()),
        (
            "v4_tcp_options",
            build(&spec(
                v4(vec![0x94, 4, 0, 0, 1, 1, 1, 0]),
                tcp(0x10, vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]),
                b"data",
            )),
        ),
        ("v4_udp", v4_udp.clone()),
        (
            "v4_icmp_echo",
            build(&spec(
                v4(vec![]),
                L4Spec::Echo { ident: 7, seq: 1 },
                b"ping",
            )),
        ),
        ("v6_tcp", v6_tcp.clone()),
        ("v6_udp_exts", v6_udp_exts.clone()),
        (
            "v6_icmpv6_echo",
            build(&spec(v6(false), L4Spec::Echo { ident: 7, seq: 1 }, b"ping")),
        ),
        (
            "v4_icmp_time_exceeded",
            icmpv4_error(
                &v4_tcp,
                etherparse::Icmpv4Type::TimeExceeded(
                    icmpv4::TimeExceededCode::TtlExceededInTransit,
                ),
            ),
        ),
        (
            "v4_icmp_frag_needed",
            icmpv4_error(
                &v4_udp,
                etherparse::Icmpv4Type::DestinationUnreachable(
                    icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
                ),
            ),
        ),
        (
            "v6_icmpv6_packet_too_big",
            icmpv6_error(
                &v6_udp_exts,
                v6_udp_exts.len(),
                etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 },
            ),
        ),
        ("v4_ipip_v4_tcp", outer(false, 4, &v4_tcp)),
        ("v4_ipip_v6_tcp", outer(false, 41, &v6_tcp)),
        ("v6_ipip_v6_udp", outer(true, 41, &v6_udp_exts)),
        (
            "v4_gre_csum_v6_tcp",
            outer(false, 47, &gre(&v6_tcp, true, ethertype::IPV6)),
        ),
        (
            "v4_gre_v4_udp",
            outer(false, 47, &gre(&v4_udp, false, ethertype::IPV4)),
        ),
        ("v4_gue_v4_tcp", gue(&v4_tcp, 4, false)),
        ("v6_gue_v6_udp", gue(&v6_udp_exts, 41, true)),
        (
            "eth_vlan_v4_tcp",
            build_eth(&spec(v4(vec![]), tcp(syn, vec![]), b""), Some(100)),
        ),
        ("eth_v6_udp", build_eth(&spec(v6(false), udp(), b"x"), None)),
    ];
    // IPv4 fragments: first (MF, header present) and a later one.
    let mut first = v4_udp.clone();
    let mut p = Ipv4Packet::new_checked(&mut first[..]).unwrap();
    p.set_more_frags(true);
    p.fill_checksum();
    let mut later = v4_udp.clone();
    let mut p = Ipv4Packet::new_checked(&mut later[..]).unwrap();
    p.set_frag_offset(1480);
    p.fill_checksum();
    seeds.push(("v4_fragment_first", first));
    seeds.push(("v4_fragment_later", later));
    // IPv6 Fragment header (offset 1448, more) inserted by hand: see wire_support on why.
    let mut frag = v6_tcp[..40].to_vec();
    frag[6] = 44;
    frag.extend_from_slice(&[6, 0]);
    frag.extend_from_slice(&((181u16 << 3) | 1).to_be_bytes());
    frag.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
    frag.extend_from_slice(&v6_tcp[40..]);
    let pl = (frag.len() - 40) as u16;
    frag[4..6].copy_from_slice(&pl.to_be_bytes());
    seeds.push(("v6_fragment_later", frag));
    seeds
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/wire_views")
}

#[test]
fn committed_seeds_match_the_generator() {
    for (name, bytes) in seeds() {
        let path = corpus_dir().join(name);
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; regenerate the corpus", path.display()));
        assert_eq!(committed, bytes, "{name} differs from the generator");
    }
}

#[test]
fn seeds_parse() {
    for (name, bytes) in seeds() {
        let ok = if name.starts_with("eth_") {
            lvs_core::wire::classify_ethernet(&bytes).is_ok()
        } else {
            lvs_core::wire::classify(&bytes).is_ok()
        };
        assert!(ok, "{name} does not classify");
    }
}

#[test]
#[ignore = "writes fuzz/corpus/wire_views; run by hand after changing the seeds"]
fn regenerate() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}
