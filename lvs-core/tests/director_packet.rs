//! End-to-end byte tests of `Director::handle_packet`: rules in, packets in, every output
//! checked independently with etherparse (fields and checksums) or the test's own
//! one's-complement sum, never with `lvs_core`'s parsers.

mod director_support;
mod xmit_support;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use director_support::named_bytes;
use etherparse::{Ipv4Header, Ipv6Header, NetSlice, SlicedPacket, TransportSlice};
use lvs_core::conn::HashKey;
use lvs_core::director::{Director, DirectorConfig, PacketConfig, PacketVerdict};
use lvs_core::rules::{Forward, RuleSet};
use lvs_core::xmit::DropReason;
use lvs_core::Instant;
use xmit_support::{icmp_error_packet, ones_complement, ttl_minus_one, Flow};

const HEADROOM: usize = 96;
const LOCAL4: &str = "10.255.0.1";
const LOCAL6: &str = "2001:db8:ff::1";

fn t(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn director_mtu(rules: &str, mtu: u32) -> Director {
    let mut cfg = DirectorConfig::new(4096, HashKey::from_u128(0xd1ec));
    cfg.packet = PacketConfig {
        local_v4: LOCAL4.parse().unwrap(),
        local_v6: LOCAL6.parse().unwrap(),
        route_mtu: mtu,
        pmtu_disc: true,
        first_ip_id: 0x100,
    };
    let mut d = Director::new(cfg);
    d.apply_rules(Instant::ZERO, &RuleSet::from_text(rules).unwrap())
        .unwrap();
    d
}

fn director(rules: &str) -> Director {
    director_mtu(rules, 0)
}

/// The verdict and the bytes it names (forwarded packet or ICMP error built).
fn run(d: &mut Director, now: Instant, pkt: &[u8]) -> (PacketVerdict, Vec<u8>) {
    let mut buf = vec![0u8; HEADROOM];
    buf.extend_from_slice(pkt);
    let mut out = [0u8; 1280];
    let v = d.handle_packet(now, &mut buf, HEADROOM, &mut out);
    (v, named_bytes(v, &buf, &out))
}

fn tcp_syn(src: &str, sport: u16, dst: &str, dport: u16, ttl: u8) -> Vec<u8> {
    let b = match (ip(src), ip(dst)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            etherparse::PacketBuilder::ipv4(s.octets(), d.octets(), ttl)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            etherparse::PacketBuilder::ipv6(s.octets(), d.octets(), ttl)
        }
        _ => unreachable!(),
    };
    let mut v = Vec::new();
    b.tcp(sport, dport, 1000, 64240)
        .syn()
        .write(&mut v, b"hello")
        .unwrap();
    v
}

/// Parsed view of an IP packet checked by etherparse: addresses, ports, TTL; asserts the IPv4
/// header checksum and the TCP / UDP checksum.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    ttl: u8,
}

fn check(pkt: &[u8]) -> Seen {
    let p = SlicedPacket::from_ip(pkt).unwrap();
    let (src, dst, ttl, v4h, v6h): (IpAddr, IpAddr, u8, Option<Ipv4Header>, Option<Ipv6Header>) =
        match &p.net {
            Some(NetSlice::Ipv4(s)) => {
                let h = s.header().to_header();
                assert_eq!(
                    h.header_checksum,
                    h.calc_header_checksum(),
                    "IPv4 header sum"
                );
                (
                    IpAddr::V4(h.source.into()),
                    IpAddr::V4(h.destination.into()),
                    h.time_to_live,
                    Some(h),
                    None,
                )
            }
            Some(NetSlice::Ipv6(s)) => {
                let h = s.header().to_header();
                (
                    IpAddr::V6(h.source.into()),
                    IpAddr::V6(h.destination.into()),
                    h.hop_limit,
                    None,
                    Some(h),
                )
            }
            _ => panic!("not IP"),
        };
    let (sport, dport) = match &p.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            let h = tcp.to_header();
            let want = match (&v4h, &v6h) {
                (Some(h4), _) => h.calc_checksum_ipv4(h4, tcp.payload()).unwrap(),
                (_, Some(h6)) => h.calc_checksum_ipv6(h6, tcp.payload()).unwrap(),
                _ => unreachable!(),
            };
            assert_eq!(tcp.checksum(), want, "TCP checksum");
            (tcp.source_port(), tcp.destination_port())
        }
        Some(TransportSlice::Udp(udp)) => {
            let h = udp.to_header();
            let want = match (&v4h, &v6h) {
                (Some(h4), _) => h.calc_checksum_ipv4(h4, udp.payload()).unwrap(),
                (_, Some(h6)) => h.calc_checksum_ipv6(h6, udp.payload()).unwrap(),
                _ => unreachable!(),
            };
            assert_eq!(udp.checksum(), want, "UDP checksum");
            (udp.source_port(), udp.destination_port())
        }
        _ => (0, 0),
    };
    Seen {
        src,
        dst,
        sport,
        dport,
        ttl,
    }
}

/// An ICMP error checked by etherparse: IPv4 header sum, ICMP checksum (ICMPv6 with the
/// pseudo-header); returns (src, dst, type, code, rest of header, quoted bytes).
fn check_icmp(pkt: &[u8]) -> (IpAddr, IpAddr, u8, u8, [u8; 4], Vec<u8>) {
    let p = SlicedPacket::from_ip(pkt).unwrap();
    match (&p.net, &p.transport) {
        (Some(NetSlice::Ipv4(s)), Some(TransportSlice::Icmpv4(m))) => {
            let h = s.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            let msg = &pkt[h.header_len()..usize::from(h.total_len)];
            assert_eq!(ones_complement(msg), 0, "ICMP checksum");
            let b = m.slice();
            (
                IpAddr::V4(h.source.into()),
                IpAddr::V4(h.destination.into()),
                b[0],
                b[1],
                [b[4], b[5], b[6], b[7]],
                b[8..].to_vec(),
            )
        }
        (Some(NetSlice::Ipv6(s)), Some(TransportSlice::Icmpv6(m))) => {
            let h = s.header().to_header();
            let b = m.slice();
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&h.source);
            pseudo.extend_from_slice(&h.destination);
            pseudo.extend_from_slice(&(b.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 58]);
            pseudo.extend_from_slice(b);
            assert_eq!(ones_complement(&pseudo), 0, "ICMPv6 checksum");
            (
                IpAddr::V6(h.source.into()),
                IpAddr::V6(h.destination.into()),
                b[0],
                b[1],
                [b[4], b[5], b[6], b[7]],
                b[8..].to_vec(),
            )
        }
        other => panic!("not ICMP: {other:?}"),
    }
}

#[test]
fn nat_tcp_in_and_reply_v4_with_stats() {
    let mut d = director("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m\n");
    let syn = tcp_syn("192.0.2.7", 40000, "10.0.0.1", 80, 64);
    let (v, fwd) = run(&mut d, t(1), &syn);
    let PacketVerdict::Forward {
        method,
        next_hop,
        new,
        reply,
        conn,
        ..
    } = v
    else {
        panic!("{v:?}")
    };
    assert_eq!(
        (method, next_hop, new, reply),
        (Forward::Masq, ip("10.1.0.1"), true, false)
    );
    assert!(conn.is_some());
    assert_eq!(
        check(&fwd),
        Seen {
            src: ip("192.0.2.7"),
            dst: ip("10.1.0.1"),
            sport: 40000,
            dport: 8080,
            ttl: 63
        }
    );
    assert_eq!(fwd.len(), syn.len());
    // The reply, from the real server to the client.
    let mut b = Vec::new();
    etherparse::PacketBuilder::ipv4([10, 1, 0, 1], [192, 0, 2, 7], 64)
        .tcp(8080, 40000, 5000, 64240)
        .syn()
        .ack(1001)
        .write(&mut b, b"")
        .unwrap();
    let (v, back) = run(&mut d, t(1), &b);
    assert!(
        matches!(v, PacketVerdict::Forward { method: Forward::Masq, reply: true, conn: c, next_hop, .. }
            if c == conn && next_hop == ip("192.0.2.7")),
        "{v:?}"
    );
    assert_eq!(
        check(&back),
        Seen {
            src: ip("10.0.0.1"),
            dst: ip("192.0.2.7"),
            sport: 80,
            dport: 40000,
            ttl: 63
        }
    );
    // Statistics: one packet each way, counted with the L3 length, one connection.
    let s = d.stats();
    assert_eq!(
        (s.conns, s.inpkts, s.inbytes, s.outpkts, s.outbytes),
        (1, 1, syn.len() as u64, 1, b.len() as u64)
    );
    assert_eq!(d.flow_counters().forwarded, 1);
    assert_eq!(d.flow_counters().replies, 1);
}

#[test]
fn nat_udp_v6_in_and_reply() {
    let mut d =
        director("-A -u [2001:db8::1]:53\n-a -u [2001:db8::1]:53 -r [2001:db8:1::5]:5353 -m\n");
    let q = Flow::udp("2001:db8:2::7", 1234, "2001:db8::1", 53).build();
    let (v, fwd) = run(&mut d, t(1), &q);
    assert!(
        matches!(v, PacketVerdict::Forward { new: true, .. }),
        "{v:?}"
    );
    assert_eq!(
        check(&fwd),
        Seen {
            src: ip("2001:db8:2::7"),
            dst: ip("2001:db8:1::5"),
            sport: 1234,
            dport: 5353,
            ttl: 63
        }
    );
    let r = Flow::udp("2001:db8:1::5", 5353, "2001:db8:2::7", 1234).build();
    let (v, back) = run(&mut d, t(1), &r);
    assert!(
        matches!(v, PacketVerdict::Forward { reply: true, .. }),
        "{v:?}"
    );
    assert_eq!(
        check(&back),
        Seen {
            src: ip("2001:db8::1"),
            dst: ip("2001:db8:2::7"),
            sport: 53,
            dport: 1234,
            ttl: 63
        }
    );
}

#[test]
fn dr_forwards_unchanged_but_ttl() {
    let mut d = director("-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -g\n");
    let q = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53).build();
    let (v, fwd) = run(&mut d, t(1), &q);
    assert!(
        matches!(v, PacketVerdict::Forward { method: Forward::DirectRoute, next_hop, .. } if next_hop == ip("10.1.0.9")),
        "{v:?}"
    );
    assert_eq!(fwd, ttl_minus_one(&q));
    check(&fwd);
    // A DR connection has no reply path through the director: the stack's business.
    let r = Flow::udp("10.1.0.9", 53, "192.0.2.7", 1234).build();
    assert_eq!(run(&mut d, t(1), &r).0, PacketVerdict::NotOurs);
}

/// Runs one TUN case: `rules` has one tunnelled real server `rip`; returns the outer packet.
fn tun_case(rules: &str, client: &str, vip: &str, rip: &str) -> (Vec<u8>, Vec<u8>) {
    let mut d = director(rules);
    let q = Flow::udp(client, 1234, vip, 53).build();
    let (v, fwd) = run(&mut d, t(1), &q);
    let PacketVerdict::Forward {
        method,
        next_hop,
        start,
        len,
        ..
    } = v
    else {
        panic!("{v:?}")
    };
    assert_eq!((method, next_hop), (Forward::Tunnel, ip(rip)));
    assert_eq!(len, fwd.len());
    assert_eq!(
        start + len,
        HEADROOM + q.len(),
        "outer headers end where the packet ends"
    );
    (q, fwd)
}

/// The outer header's (src, dst, protocol, ttl) and payload, checked by etherparse.
fn outer(pkt: &[u8]) -> (IpAddr, IpAddr, u8, u8, Vec<u8>) {
    match pkt[0] >> 4 {
        4 => {
            let (h, rest) = Ipv4Header::from_slice(pkt).unwrap();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            assert_eq!(usize::from(h.total_len), pkt.len());
            (
                IpAddr::V4(h.source.into()),
                IpAddr::V4(h.destination.into()),
                h.protocol.0,
                h.time_to_live,
                rest.to_vec(),
            )
        }
        6 => {
            let (h, rest) = Ipv6Header::from_slice(pkt).unwrap();
            assert_eq!(usize::from(h.payload_length) + 40, pkt.len());
            (
                IpAddr::V6(h.source.into()),
                IpAddr::V6(h.destination.into()),
                h.next_header.0,
                h.hop_limit,
                rest.to_vec(),
            )
        }
        v => panic!("version {v}"),
    }
}

#[test]
fn tun_ipip_v4_and_v6() {
    let (q, fwd) = tun_case(
        "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -i\n",
        "192.0.2.7",
        "10.0.0.1",
        "10.1.0.9",
    );
    let (s, dd, p, ttl, inner) = outer(&fwd);
    assert_eq!((s, dd, p, ttl), (ip(LOCAL4), ip("10.1.0.9"), 4, 63));
    assert_eq!(inner, ttl_minus_one(&q));
    check(&inner);

    let (q, fwd) = tun_case(
        "-A -u [2001:db8::1]:53\n-a -u [2001:db8::1]:53 -r [2001:db8:1::9]:53 -i\n",
        "2001:db8:2::7",
        "2001:db8::1",
        "2001:db8:1::9",
    );
    let (s, dd, p, ttl, inner) = outer(&fwd);
    assert_eq!((s, dd, p, ttl), (ip(LOCAL6), ip("2001:db8:1::9"), 41, 63));
    assert_eq!(inner, ttl_minus_one(&q));
}

#[test]
fn tun_mixed_family_v4_service_over_v6_tunnel() {
    let (q, fwd) = tun_case(
        "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r [2001:db8:1::9]:53 -i\n",
        "192.0.2.7",
        "10.0.0.1",
        "2001:db8:1::9",
    );
    let (s, dd, p, _, inner) = outer(&fwd);
    // IPv4 inside IPv6: next header 4.
    assert_eq!((s, dd, p), (ip(LOCAL6), ip("2001:db8:1::9"), 4));
    assert_eq!(inner, ttl_minus_one(&q));
    check(&inner);
}

#[test]
fn tun_gue_v4() {
    let (q, fwd) = tun_case(
        "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -i --tun-type gue --tun-port 6080 --tun-csum\n",
        "192.0.2.7",
        "10.0.0.1",
        "10.1.0.9",
    );
    let (s, dd, p, _, _) = outer(&fwd);
    assert_eq!((s, dd, p), (ip(LOCAL4), ip("10.1.0.9"), 17));
    // etherparse checks the outer UDP checksum.
    let o = check(&fwd);
    assert_eq!(o.dport, 6080);
    assert!((32768..=60999).contains(&o.sport), "{}", o.sport);
    let udp_payload = &fwd[28..];
    // GUE version 0, no options, proto 4 (IPv4), flags 0.
    assert_eq!(udp_payload[..4], [0, 4, 0, 0]);
    assert_eq!(udp_payload[4..], ttl_minus_one(&q)[..]);
}

#[test]
fn tun_gre_v4_with_checksum_and_v6_plain() {
    let (q, fwd) = tun_case(
        "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -i --tun-type gre --tun-csum\n",
        "192.0.2.7",
        "10.0.0.1",
        "10.1.0.9",
    );
    let (s, dd, p, _, gre) = outer(&fwd);
    assert_eq!((s, dd, p), (ip(LOCAL4), ip("10.1.0.9"), 47));
    // C bit, version 0, protocol 0x0800, checksum over the GRE header and payload.
    assert_eq!(gre[..4], [0x80, 0, 0x08, 0x00]);
    assert_eq!(ones_complement(&gre), 0);
    assert_eq!(gre[8..], ttl_minus_one(&q)[..]);

    let (q, fwd) = tun_case(
        "-A -u [2001:db8::1]:53\n-a -u [2001:db8::1]:53 -r [2001:db8:1::9]:53 -i --tun-type gre\n",
        "2001:db8:2::7",
        "2001:db8::1",
        "2001:db8:1::9",
    );
    let (s, dd, p, _, gre) = outer(&fwd);
    assert_eq!((s, dd, p), (ip(LOCAL6), ip("2001:db8:1::9"), 47));
    assert_eq!(gre[..4], [0, 0, 0x86, 0xdd]);
    assert_eq!(gre[4..], ttl_minus_one(&q)[..]);
}

#[test]
fn persistence_keeps_a_client_on_one_real_server() {
    let mut d = director(
        "-A -u 10.0.0.1:53 -s rr -p 300\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -m\n-a -u 10.0.0.1:53 -r 10.1.0.2:53 -m\n",
    );
    let mut seen = Vec::new();
    for sport in 1000..1006 {
        let q = Flow::udp("192.0.2.7", sport, "10.0.0.1", 53).build();
        let (v, fwd) = run(&mut d, t(1), &q);
        assert!(
            matches!(v, PacketVerdict::Forward { new: true, .. }),
            "{v:?}"
        );
        seen.push(check(&fwd).dst);
    }
    assert!(seen.iter().all(|a| *a == seen[0]), "{seen:?}");
    // Another client goes round-robin to the other server.
    let q = Flow::udp("192.0.2.8", 1000, "10.0.0.1", 53).build();
    let (_, fwd) = run(&mut d, t(2), &q);
    assert_ne!(check(&fwd).dst, seen[0]);
    // A second packet of an existing connection is not new and goes to the same place.
    let q = Flow::udp("192.0.2.7", 1000, "10.0.0.1", 53).build();
    let (v, fwd) = run(&mut d, t(3), &q);
    assert!(
        matches!(v, PacketVerdict::Forward { new: false, .. }),
        "{v:?}"
    );
    assert_eq!(check(&fwd).dst, seen[0]);
}

#[test]
fn no_destination_builds_port_unreachable() {
    let mut d = director("-A -u 10.0.0.1:53\n");
    let q = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53).build();
    let (v, err) = run(&mut d, t(1), &q);
    assert!(
        matches!(v, PacketVerdict::Reply { reason: DropReason::NoDestination, start: 0, len } if len == err.len()),
        "{v:?}"
    );
    let (src, dst, ty, code, _, quoted) = check_icmp(&err);
    // From the virtual address the packet was sent to (`icmp_send` answers from a local
    // destination).
    assert_eq!(
        (src, dst, ty, code),
        (ip("10.0.0.1"), ip("192.0.2.7"), 3, 3)
    );
    assert_eq!(quoted, q, "the whole short packet is quoted");
    assert_eq!(d.flow_counters().no_destination, 1);

    let mut d = director("-A -u [2001:db8::1]:53\n");
    let q = Flow::udp("2001:db8:2::7", 1234, "2001:db8::1", 53).build();
    let (_, err) = run(&mut d, t(1), &q);
    let (src, dst, ty, code, _, quoted) = check_icmp(&err);
    assert_eq!(
        (src, dst, ty, code),
        (ip("2001:db8::1"), ip("2001:db8:2::7"), 1, 4)
    );
    assert_eq!(quoted, q);
}

#[test]
fn ttl_one_gives_time_exceeded_after_the_state_update() {
    let mut d = director("-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -m\n");
    let mut f = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53);
    f.ttl = 1;
    let q = f.build();
    let (v, err) = run(&mut d, t(1), &q);
    assert!(
        matches!(
            v,
            PacketVerdict::Reply {
                reason: DropReason::TtlExpired,
                ..
            }
        ),
        "{v:?}"
    );
    let (src, dst, ty, code, _, quoted) = check_icmp(&err);
    assert_eq!(
        (src, dst, ty, code),
        (ip("10.0.0.1"), ip("192.0.2.7"), 11, 0)
    );
    assert_eq!(quoted, q);
    // The connection exists (the flow layer ran first) and the packet was counted in.
    assert_eq!(d.stats().conns, 1);
    assert_eq!(d.stats().inpkts, 1);
}

#[test]
fn mtu_gives_frag_needed_and_packet_too_big() {
    let mut d = director_mtu(
        "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -m\n",
        1000,
    );
    let mut f = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53);
    f.payload = vec![7; 1200];
    let q = f.build();
    let (v, err) = run(&mut d, t(1), &q);
    assert!(
        matches!(
            v,
            PacketVerdict::Reply {
                reason: DropReason::TooBig,
                ..
            }
        ),
        "{v:?}"
    );
    let (src, dst, ty, code, rest, quoted) = check_icmp(&err);
    assert_eq!(
        (src, dst, ty, code),
        (ip("10.0.0.1"), ip("192.0.2.7"), 3, 4)
    );
    assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), 1000);
    // The quote starts with the packet as it was about to leave (TTL decremented).
    assert_eq!(quoted[..28], ttl_minus_one(&q)[..28]);
    // Without DF it is forwarded.
    f.df = false;
    let (v, _) = run(&mut d, t(1), &f.build());
    assert!(matches!(v, PacketVerdict::Forward { .. }), "{v:?}");

    // TUN: the tunnel MTU is the route MTU minus the outer header.
    let mut d = director_mtu(
        "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -i\n",
        1000,
    );
    let mut f = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53);
    f.payload = vec![7; 1000 - 28 - 20 + 1];
    let (_, err) = run(&mut d, t(1), &f.build());
    let (_, _, ty, code, rest, _) = check_icmp(&err);
    assert_eq!(
        (ty, code, u16::from_be_bytes([rest[2], rest[3]])),
        (3, 4, 980)
    );
    f.payload.pop();
    let (v, fwd) = run(&mut d, t(1), &f.build());
    assert!(matches!(v, PacketVerdict::Forward { .. }), "{v:?}");
    assert_eq!(fwd.len(), 1000);

    // IPv6: Packet Too Big.
    let mut d = director_mtu(
        "-A -u [2001:db8::1]:53\n-a -u [2001:db8::1]:53 -r [2001:db8:1::5]:53 -m\n",
        1280,
    );
    let mut f = Flow::udp("2001:db8:2::7", 1234, "2001:db8::1", 53);
    f.payload = vec![7; 1300];
    let (_, err) = run(&mut d, t(1), &f.build());
    let (src, _, ty, code, rest, _) = check_icmp(&err);
    assert_eq!(
        (src, ty, code, u32::from_be_bytes(rest)),
        (ip("2001:db8::1"), 2, 0, 1280)
    );
}

/// A UDP header quote (20-byte IPv4 header + 8 bytes) of `src:sport → dst:dport`.
fn quote_of(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let mut q = Flow::udp(src, sport, dst, dport).build();
    q.truncate(if q[0] >> 4 == 4 { 28 } else { 48 });
    q
}

#[test]
fn nat_icmp_errors_both_ways() {
    let mut d = director("-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.1:5353 -m\n");
    let q = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53).build();
    let (v, _) = run(&mut d, t(1), &q);
    let PacketVerdict::Forward { conn, .. } = v else {
        panic!("{v:?}")
    };
    let before = d.stats();

    // From the client side: a router says our reply VIP:53 → client:1234 could not be
    // delivered. Translated and sent to the real server.
    let e = icmp_error_packet(
        ip("198.51.100.1"),
        ip("10.0.0.1"),
        64,
        3,
        1,
        0,
        &quote_of("10.0.0.1", 53, "192.0.2.7", 1234),
    );
    let (v, fwd) = run(&mut d, t(2), &e);
    assert!(
        matches!(v, PacketVerdict::Forward { conn: c, reply: false, next_hop, .. } if c == conn && next_hop == ip("10.1.0.1")),
        "{v:?}"
    );
    let (src, dst, ty, code, _, quoted) = check_icmp(&fwd);
    assert_eq!(
        (src, dst, ty, code),
        (ip("198.51.100.1"), ip("10.1.0.1"), 3, 1)
    );
    assert_eq!(fwd[8], 63);
    let (qh, ql4) = Ipv4Header::from_slice(&quoted).unwrap();
    assert_eq!(
        qh.header_checksum,
        qh.calc_header_checksum(),
        "quoted header sum"
    );
    assert_eq!(
        (Ipv4Addr::from(qh.source), Ipv4Addr::from(qh.destination)),
        ("10.1.0.1".parse().unwrap(), "192.0.2.7".parse().unwrap())
    );
    assert_eq!(u16::from_be_bytes([ql4[0], ql4[1]]), 5353);
    assert_eq!(u16::from_be_bytes([ql4[2], ql4[3]]), 1234);
    let after = d.stats();
    assert_eq!(after.inpkts, before.inpkts + 1);
    assert_eq!(after.inbytes, before.inbytes + e.len() as u64);

    // From the real-server side: an error about client → RIP:5353, translated to come from
    // the VIP and quote the VIP.
    let e = icmp_error_packet(
        ip("10.1.0.1"),
        ip("192.0.2.7"),
        64,
        3,
        3,
        0,
        &quote_of("192.0.2.7", 1234, "10.1.0.1", 5353),
    );
    let (v, back) = run(&mut d, t(2), &e);
    assert!(
        matches!(v, PacketVerdict::Forward { reply: true, next_hop, .. } if next_hop == ip("192.0.2.7")),
        "{v:?}"
    );
    let (src, dst, _, _, _, quoted) = check_icmp(&back);
    assert_eq!((src, dst), (ip("10.0.0.1"), ip("192.0.2.7")));
    let (qh, ql4) = Ipv4Header::from_slice(&quoted).unwrap();
    assert_eq!(qh.header_checksum, qh.calc_header_checksum());
    assert_eq!(
        Ipv4Addr::from(qh.destination),
        "10.0.0.1".parse::<Ipv4Addr>().unwrap()
    );
    assert_eq!(u16::from_be_bytes([ql4[2], ql4[3]]), 53);
    assert_eq!(d.stats().outpkts, after.outpkts + 1);

    // Errors about other flows, and echo requests: not ours.
    let e = icmp_error_packet(
        ip("198.51.100.1"),
        ip("10.0.0.1"),
        64,
        3,
        1,
        0,
        &quote_of("10.0.0.1", 53, "192.0.2.7", 9999),
    );
    assert_eq!(run(&mut d, t(2), &e).0, PacketVerdict::NotOurs);
    let echo = xmit_support::echo(ip("192.0.2.7"), ip("10.0.0.1"), 64);
    assert_eq!(run(&mut d, t(2), &echo).0, PacketVerdict::NotOurs);
    // A corrupted checksum on a related error: dropped.
    let mut e = icmp_error_packet(
        ip("198.51.100.1"),
        ip("10.0.0.1"),
        64,
        3,
        1,
        0,
        &quote_of("10.0.0.1", 53, "192.0.2.7", 1234),
    );
    let n = e.len();
    e[n - 1] ^= 0xff;
    assert!(matches!(run(&mut d, t(2), &e).0, PacketVerdict::Drop(_)));
}

#[test]
fn nat_icmpv6_error_from_the_client_side() {
    let mut d =
        director("-A -u [2001:db8::1]:53\n-a -u [2001:db8::1]:53 -r [2001:db8:1::5]:5353 -m\n");
    let q = Flow::udp("2001:db8:2::7", 1234, "2001:db8::1", 53).build();
    run(&mut d, t(1), &q);
    let e = icmp_error_packet(
        ip("2001:db8:3::1"),
        ip("2001:db8::1"),
        64,
        1,
        0,
        0,
        &quote_of("2001:db8::1", 53, "2001:db8:2::7", 1234),
    );
    let (v, fwd) = run(&mut d, t(2), &e);
    assert!(matches!(v, PacketVerdict::Forward { .. }), "{v:?}");
    let (_, dst, ty, _, _, quoted) = check_icmp(&fwd);
    assert_eq!((dst, ty), (ip("2001:db8:1::5"), 1));
    let (qh, ql4) = Ipv6Header::from_slice(&quoted).unwrap();
    assert_eq!(
        Ipv6Addr::from(qh.source),
        "2001:db8:1::5".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(u16::from_be_bytes([ql4[0], ql4[1]]), 5353);
}

#[test]
fn dr_icmp_errors_both_ways() {
    let mut d = director("-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -g\n");
    let q = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53).build();
    run(&mut d, t(1), &q);
    let before = d.stats();
    // From the client side: forwarded unchanged (TTL aside) to the real server.
    let e = icmp_error_packet(
        ip("198.51.100.1"),
        ip("10.0.0.1"),
        64,
        3,
        1,
        0,
        &quote_of("10.0.0.1", 53, "192.0.2.7", 1234),
    );
    let (v, fwd) = run(&mut d, t(2), &e);
    assert!(
        matches!(v, PacketVerdict::Forward { method: Forward::DirectRoute, next_hop, .. } if next_hop == ip("10.1.0.9")),
        "{v:?}"
    );
    assert_eq!(fwd, ttl_minus_one(&e));
    check_icmp(&fwd);
    assert_eq!(d.stats().inpkts, before.inpkts + 1);
    // From the real-server side about client → RIP: left to the stack unchanged. The
    // connection table indexes only NAT connections for the reply direction (a DR real
    // server's traffic never comes back through the director), so nothing is counted.
    let e = icmp_error_packet(
        ip("10.1.0.9"),
        ip("192.0.2.7"),
        64,
        3,
        3,
        0,
        &quote_of("192.0.2.7", 1234, "10.1.0.9", 53),
    );
    assert_eq!(run(&mut d, t(2), &e).0, PacketVerdict::NotOurs);
    assert_eq!(d.stats().outpkts, before.outpkts);
}

#[test]
fn ip_id_is_owned_by_the_director_and_advances() {
    let mut d = director("-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -i\n");
    let q = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53).build();
    let (_, a) = run(&mut d, t(1), &q);
    let (_, b) = run(&mut d, t(1), &q);
    let id = |p: &[u8]| u16::from_be_bytes([p[4], p[5]]);
    assert_eq!(id(&b), id(&a).wrapping_add(1));
}

#[test]
fn one_packet_scheduling_uses_the_real_servers_tunnel_config() {
    let mut d =
        director("-A -u 10.0.0.1:53 -o\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -i --tun-type gre\n");
    let q = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53).build();
    let (v, fwd) = run(&mut d, t(1), &q);
    assert!(
        matches!(
            v,
            PacketVerdict::Forward {
                conn: None,
                new: true,
                method: Forward::Tunnel,
                ..
            }
        ),
        "{v:?}"
    );
    let (_, _, p, _, gre) = outer(&fwd);
    assert_eq!(p, 47);
    assert_eq!(gre[4..], ttl_minus_one(&q)[..]);
    assert_eq!(d.table().len(), 0, "nothing kept");
}

#[test]
fn tunnel_without_headroom_is_dropped_untouched() {
    use lvs_core::director::PacketDrop;
    let mut d = director("-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -i\n");
    let q = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53).build();
    let mut buf = q.clone();
    let mut out = [0u8; 576];
    let v = d.handle_packet(t(1), &mut buf, 0, &mut out);
    assert_eq!(v, PacketVerdict::Drop(PacketDrop::Xmit(DropReason::NoRoom)));
    assert_eq!(buf, q);
    // A headroom beyond the buffer is malformed, not a panic.
    let v = d.handle_packet(t(1), &mut buf, q.len() + 1, &mut out);
    assert!(matches!(v, PacketVerdict::Drop(_)), "{v:?}");
}

/// Spec 3.7 tunnel special case: a router between the director and a TUN real server sends
/// the director an error about its own tunnel packet; the director consumes it and tells the
/// client, from the virtual address, quoting the client's packet.
fn tunnel_error_case(
    rules: &str,
    df: bool,
    t_c: (u8, u8),
    rest: u32,
    mtu: u32,
) -> (PacketVerdict, Vec<u8>, Vec<u8>) {
    let mut d = director_mtu(rules, mtu);
    let mut f = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53);
    f.df = df;
    let q = f.build();
    let (v, fwd) = run(&mut d, t(1), &q);
    assert!(
        matches!(
            v,
            PacketVerdict::Forward {
                method: Forward::Tunnel,
                ..
            }
        ),
        "{v:?}"
    );
    // The router quotes the outer packet (all of it fits in 576 bytes).
    let e = icmp_error_packet(ip("10.1.0.254"), ip(LOCAL4), 64, t_c.0, t_c.1, rest, &fwd);
    let (v, bytes) = run(&mut d, t(2), &e);
    (v, bytes, q)
}

#[test]
fn tunnel_errors_are_relayed_to_the_client() {
    let ipip = "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -i\n";
    let gue =
        "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -i --tun-type gue --tun-port 6080\n";
    let gre = "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -i --tun-type gre --tun-csum\n";
    for rules in [ipip, gue, gre] {
        // Fragmentation Needed, client with DF: mtu - 20 (no route MTU configured).
        let (v, err, q) = tunnel_error_case(rules, true, (3, 4), 1400, 0);
        assert!(
            matches!(
                v,
                PacketVerdict::Reply {
                    reason: DropReason::TunnelError,
                    ..
                }
            ),
            "{rules}: {v:?}"
        );
        let (src, dst, ty, code, rest, quoted) = check_icmp(&err);
        assert_eq!(
            (src, dst, ty, code),
            (ip("10.0.0.1"), ip("192.0.2.7"), 3, 4),
            "{rules}"
        );
        assert_eq!(u32::from_be_bytes(rest), 1380, "{rules}");
        // The client's packet as the director forwarded it (TTL already decremented).
        assert_eq!(quoted, ttl_minus_one(&q), "{rules}");

        // A configured route MTU lower than the reported one wins.
        let (_, err, _) = tunnel_error_case(rules, true, (3, 4), 1400, 1300);
        assert_eq!(u32::from_be_bytes(check_icmp(&err).4), 1280, "{rules}");

        // Without DF the error is consumed and nothing is sent.
        let (v, _, _) = tunnel_error_case(rules, false, (3, 4), 1400, 0);
        assert_eq!(
            v,
            PacketVerdict::Drop(lvs_core::director::PacketDrop::Xmit(
                DropReason::TunnelError
            )),
            "{rules}"
        );

        // Other errors keep their type, code and rest of header.
        let (v, err, _) = tunnel_error_case(rules, false, (11, 0), 0, 0);
        assert!(matches!(v, PacketVerdict::Reply { .. }), "{rules}: {v:?}");
        let (src, dst, ty, code, rest, _) = check_icmp(&err);
        assert_eq!(
            (src, dst, ty, code, rest),
            (ip("10.0.0.1"), ip("192.0.2.7"), 11, 0, [0; 4])
        );
    }
}

#[test]
fn tunnel_errors_need_a_known_tunnel_and_a_connection() {
    let rules = "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -i\n";
    let mut d = director(rules);
    let q = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53).build();
    let (_, fwd) = run(&mut d, t(1), &q);
    // Addressed to someone else than the director: not the special case.
    let e = icmp_error_packet(ip("10.1.0.254"), ip("10.77.0.1"), 64, 3, 4, 1400, &fwd);
    assert_eq!(run(&mut d, t(2), &e).0, PacketVerdict::NotOurs);
    // A quoted tunnel packet to an address that is no tunnel real server.
    let mut other = fwd.clone();
    other[16..20].copy_from_slice(&[10, 1, 0, 99]);
    let e = icmp_error_packet(ip("10.1.0.254"), ip(LOCAL4), 64, 3, 4, 1400, &other);
    assert_eq!(run(&mut d, t(2), &e).0, PacketVerdict::NotOurs);
    // The client's flow is unknown (another client port).
    let mut unknown = fwd.clone();
    unknown[20 + 20..20 + 22].copy_from_slice(&999u16.to_be_bytes());
    let e = icmp_error_packet(ip("10.1.0.254"), ip(LOCAL4), 64, 3, 4, 1400, &unknown);
    assert_eq!(run(&mut d, t(2), &e).0, PacketVerdict::NotOurs);
    // A bad ICMP checksum is dropped.
    let mut e = icmp_error_packet(ip("10.1.0.254"), ip(LOCAL4), 64, 3, 4, 1400, &fwd);
    e[22] ^= 0xff;
    assert_eq!(
        run(&mut d, t(2), &e).0,
        PacketVerdict::Drop(lvs_core::director::PacketDrop::Xmit(
            DropReason::IcmpChecksum
        ))
    );
}

/// `handle_classified` with the packet's own classification (and `handle_classified_hinted`
/// with any hint) gives what `handle_packet` gives: verdicts, output bytes, and the state later packets see (a NAT flow, its reply, a
/// packet with no real server, DR and TUN, IPv4 and IPv6).
#[test]
fn handle_classified_matches_handle_packet() {
    let rules = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m\n\
                 -A -u 10.0.0.1:53\n\
                 -A -t 10.0.0.2:80 -s rr\n-a -t 10.0.0.2:80 -r 10.1.0.2:80 -g\n\
                 -A -t [fd00::1]:80 -s rr\n-a -t [fd00::1]:80 -r fd01::1:80 -i\n";
    let mut a = director(rules);
    let mut b = director(rules);
    let mut h = director(rules);
    let packets = [
        tcp_syn("192.0.2.7", 40000, "10.0.0.1", 80, 64),
        tcp_syn("10.1.0.1", 8080, "192.0.2.7", 40000, 64),
        Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53).build(),
        tcp_syn("192.0.2.8", 40001, "10.0.0.2", 80, 64),
        tcp_syn("2001:db8::7", 40002, "fd00::1", 80, 64),
        tcp_syn("192.0.2.7", 40000, "10.0.0.1", 80, 1),
    ];
    for (i, pkt) in packets.iter().enumerate() {
        let now = t(1 + i as u64);
        let (va, bytes_a) = run(&mut a, now, pkt);
        let mut buf = vec![0u8; HEADROOM];
        buf.extend_from_slice(pkt);
        let mut out = [0u8; 1280];
        let c = lvs_core::wire::classify(pkt).unwrap();
        let vb = b.handle_classified(now, &mut buf, HEADROOM, &c, &mut out, 0);
        let bytes_b = named_bytes(vb, &buf, &out);
        assert_eq!(va, vb, "packet {i}");
        assert_eq!(bytes_a, bytes_b, "packet {i}");
        // And with hints (`packet_hint`, read-ahead, `handle_classified_hinted`): its own
        // hint for even packets, the previous packet's (ignored) for odd ones.
        let own = h.packet_hint(&c, 0);
        let hint = if i % 2 == 0 {
            own
        } else {
            h.packet_hint(&lvs_core::wire::classify(&packets[i - 1]).unwrap(), 0)
        };
        h.prefetch(&hint);
        h.prefetch_conn(&hint);
        let mut buf = vec![0u8; HEADROOM];
        buf.extend_from_slice(pkt);
        let vh = h.handle_classified_hinted(now, &mut buf, HEADROOM, &c, &mut out, 0, &hint);
        let bytes_h = named_bytes(vh, &buf, &out);
        assert_eq!(va, vh, "packet {i}, hinted");
        assert_eq!(bytes_a, bytes_h, "packet {i}, hinted");
    }
}

/// NAT packets in both directions and DR packets, rewritten without a mapping in the common
/// case, still take an IPv4 identification each, as every transmitted packet does.
#[test]
fn ip_id_advances_for_nat_and_dr_packets_too() {
    let mut d = director(concat!(
        "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.9:53 -i\n",
        "-A -u 10.0.0.2:53\n-a -u 10.0.0.2:53 -r 10.1.0.2:5300 -m\n",
        "-A -u 10.0.0.3:53\n-a -u 10.0.0.3:53 -r 10.1.0.3:53 -g\n",
    ));
    let id = |p: &[u8]| u16::from_be_bytes([p[4], p[5]]);
    let tun = Flow::udp("192.0.2.7", 1234, "10.0.0.1", 53).build();
    let (_, a) = run(&mut d, t(1), &tun);
    let nat_in = Flow::udp("192.0.2.7", 1234, "10.0.0.2", 53).build();
    let (v, _) = run(&mut d, t(1), &nat_in);
    assert!(
        matches!(v, PacketVerdict::Forward { reply: false, .. }),
        "{v:?}"
    );
    let nat_out = Flow::udp("10.1.0.2", 5300, "192.0.2.7", 1234).build();
    let (v, _) = run(&mut d, t(1), &nat_out);
    assert!(
        matches!(v, PacketVerdict::Forward { reply: true, .. }),
        "{v:?}"
    );
    let dr = Flow::udp("192.0.2.7", 1234, "10.0.0.3", 53).build();
    let (v, _) = run(&mut d, t(1), &dr);
    assert!(
        matches!(v, PacketVerdict::Forward { reply: false, .. }),
        "{v:?}"
    );
    let (_, b) = run(&mut d, t(1), &tun);
    assert_eq!(id(&b), id(&a).wrapping_add(4));
}

/// One step of [`existing_flow_path_matches_the_flow_layer`]: a TCP or UDP packet from a client
/// to a virtual service or from a real server to a client, a rule change, or time passing.
#[derive(Clone, Debug)]
enum Step {
    Packet {
        client: u8,
        service: u8,
        udp: bool,
        flags: u8,
        reply: bool,
        ttl: u8,
    },
    Rule(u8),
    Wait(u16),
}

/// The bytes of [`Step::Packet`]: a client's packet to service 0 (`10.0.0.1:80`, NAT
/// to `10.1.0.1` / `10.1.0.2:8080`) or 1 (`10.0.0.2:80`, DR to `10.1.0.3`), or its real
/// server's reply (`reply`); TCP flags by `flags` (SYN, ACK, PSH ACK, FIN ACK, RST, SYN ACK).
fn step_packet(client: u8, service: u8, udp: bool, flags: u8, reply: bool, ttl: u8) -> Vec<u8> {
    let c = format!("192.0.2.{}", 10 + client);
    let cport = 40000 + u16::from(client);
    let (vip, rips) = if service == 0 {
        ("10.0.0.1", ["10.1.0.1", "10.1.0.2"])
    } else {
        ("10.0.0.2", ["10.1.0.3", "10.1.0.3"])
    };
    let (src, sport, dst, dport) = if reply {
        let (rip, rport) = if service == 0 {
            (rips[usize::from(client & 1)], 8080)
        } else {
            (rips[0], 80)
        };
        (rip.to_string(), rport, c.clone(), cport)
    } else {
        (c.clone(), cport, vip.to_string(), 80)
    };
    let (IpAddr::V4(s4), IpAddr::V4(d4)) = (ip(&src), ip(&dst)) else {
        unreachable!()
    };
    let b = etherparse::PacketBuilder::ipv4(s4.octets(), d4.octets(), ttl);
    let mut pkt = Vec::new();
    if udp {
        b.udp(sport, dport).write(&mut pkt, &[0x61; 20]).unwrap();
    } else {
        let b = b.tcp(sport, dport, 1000, 64240);
        let b = match flags {
            0 => b.syn(),
            1 => b.ack(1),
            2 => b.ack(1).psh(),
            3 => b.ack(1).fin(),
            4 => b.rst(),
            _ => b.syn().ack(1),
        };
        b.write(&mut pkt, &[0x61; 20]).unwrap();
    }
    pkt
}

/// The rules of [`existing_flow_path_matches_the_flow_layer`] and
/// [`a_burst_matches_its_packets_one_by_one`]: the services [`step_packet`] addresses.
const STEP_RULES: &str = "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m\n\
                          -a -t 10.0.0.1:80 -r 10.1.0.2:8080 -m\n\
                          -A -t 10.0.0.2:80 -s rr\n-a -t 10.0.0.2:80 -r 10.1.0.3:80 -g\n\
                          -A -u 10.0.0.1:80 -s rr\n-a -u 10.0.0.1:80 -r 10.1.0.1:8080 -m\n\
                          -A -u 10.0.0.2:80 -s rr\n-a -u 10.0.0.2:80 -r 10.1.0.3:80 -g\n";

/// The rule change `r` (0..6) of a step: weight 0 and back, a real server deleted and added
/// again, in either service.
fn step_command(r: u8) -> lvs_core::rules::Command {
    let cmd = [
        "-e -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 0",
        "-e -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 1",
        "-d -t 10.0.0.1:80 -r 10.1.0.2:8080",
        "-a -t 10.0.0.1:80 -r 10.1.0.2:8080 -m",
        "-d -t 10.0.0.2:80 -r 10.1.0.3:80",
        "-a -t 10.0.0.2:80 -r 10.1.0.3:80 -g",
    ][usize::from(r)];
    lvs_core::rules::parse_line(cmd).unwrap().unwrap()
}

/// Two directors in the same state after step `i`: counters, statistics, real servers and
/// connections.
fn same_state(
    a: &Director,
    b: &Director,
    at: Instant,
    i: usize,
) -> Result<(), proptest::test_runner::TestCaseError> {
    proptest::prop_assert_eq!(
        format!("{:?}", a.flow_counters()),
        format!("{:?}", b.flow_counters()),
        "step {}",
        i
    );
    proptest::prop_assert_eq!(
        format!("{:?}", a.stats()),
        format!("{:?}", b.stats()),
        "step {}",
        i
    );
    proptest::prop_assert_eq!(
        format!("{:?}", a.all_dests()),
        format!("{:?}", b.all_dests()),
        "step {}",
        i
    );
    proptest::prop_assert_eq!(
        format!("{:?}", a.connections(at)),
        format!("{:?}", b.connections(at)),
        "step {}",
        i
    );
    Ok(())
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        8 => (0u8..6, 0u8..2, proptest::bool::weighted(0.2), 0u8..6, proptest::bool::weighted(0.3), prop_oneof![Just(64u8), Just(1)])
            .prop_map(|(client, service, udp, flags, reply, ttl)| Step::Packet { client, service, udp, flags, reply, ttl }),
        1 => (0u8..6).prop_map(Step::Rule),
        1 => (0u16..400).prop_map(Step::Wait),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// `handle_packet` takes a shorter way for an IPv4 packet of an existing connection, and
    /// so does `handle_classified_hinted` given the packet's own hint (with the hint's hash);
    /// a director given the same packets through `handle_classified_hinted` with another
    /// flow's hint (ignored: the flow layer, hashing as usual) must see the same verdicts,
    /// bytes, counters, statistics and connections as both, whatever the packets (SYN on an
    /// existing entry, FIN, RST, TTL 1, replies), rule changes (weight 0, a deleted real
    /// server, `expire_nodest_conn`) and expiries.
    #[test]
    fn existing_flow_path_matches_the_flow_layer(steps in proptest::collection::vec(step(), 1..60)) {
        let mut a = director(STEP_RULES);
        let mut h = director(STEP_RULES);
        let mut k = director(STEP_RULES);
        // A flow none of the packets belongs to: its hint sends `h`'s packets to the flow layer.
        let foreign = {
            let mut p = Vec::new();
            etherparse::PacketBuilder::ipv4([198, 51, 100, 1], [10, 0, 0, 1], 64)
                .tcp(1, 80, 1, 1)
                .ack(1)
                .write(&mut p, &[])
                .unwrap();
            h.packet_hint(&lvs_core::wire::classify(&p).unwrap(), 0)
        };
        let mut now = 1u64 << 20;
        for (i, s) in steps.iter().enumerate() {
            let at = Instant::from_millis(now);
            match *s {
                Step::Wait(ms) => {
                    now += u64::from(ms) * 50;
                    let at = Instant::from_millis(now);
                    a.handle_timeout(at);
                    h.handle_timeout(at);
                    k.handle_timeout(at);
                }
                Step::Rule(r) => {
                    let cmd = step_command(r);
                    let ra = a.apply_command(at, &cmd);
                    proptest::prop_assert_eq!(&ra, &h.apply_command(at, &cmd));
                    proptest::prop_assert_eq!(&ra, &k.apply_command(at, &cmd));
                    if r == 2 {
                        let mut sys = *a.sysctls();
                        sys.expire_nodest_conn = !sys.expire_nodest_conn;
                        a.set_sysctls(sys);
                        h.set_sysctls(sys);
                        k.set_sysctls(sys);
                    }
                }
                Step::Packet { client, service, udp, flags, reply, ttl } => {
                    let pkt = step_packet(client, service, udp, flags, reply, ttl);
                    let (va, bytes_a) = run(&mut a, at, &pkt);
                    let cl = lvs_core::wire::classify(&pkt).unwrap();
                    let hinted = |d: &mut lvs_core::director::Director, hint: &lvs_core::director::FlowHint| {
                        let mut buf = vec![0u8; HEADROOM];
                        buf.extend_from_slice(&pkt);
                        let mut out = [0u8; 1280];
                        let v = d.handle_classified_hinted(at, &mut buf, HEADROOM, &cl, &mut out, 0, hint);
                        (v, named_bytes(v, &buf, &out))
                    };
                    let (vh, bytes_h) = hinted(&mut h, &foreign);
                    let own = k.packet_hint(&cl, 0);
                    let (vk, bytes_k) = hinted(&mut k, &own);
                    proptest::prop_assert_eq!(va, vh, "step {}", i);
                    proptest::prop_assert_eq!(&bytes_a, &bytes_h, "step {}", i);
                    proptest::prop_assert_eq!(vk, vh, "step {}", i);
                    proptest::prop_assert_eq!(bytes_k, bytes_h, "step {}", i);
                }
            }
            let at = Instant::from_millis(now);
            same_state(&a, &h, at, i)?;
            same_state(&k, &h, at, i)?;
        }
    }
}

/// A packet of a burst in [`a_burst_matches_its_packets_one_by_one`].
#[derive(Clone, Debug)]
enum BurstPacket {
    /// As [`Step::Packet`].
    Flow {
        client: u8,
        service: u8,
        udp: bool,
        flags: u8,
        reply: bool,
        ttl: u8,
    },
    /// An IPv6 client's TCP packet to `[fd00::1]:80` (SYN or ACK).
    V6 {
        client: u8,
        syn: bool,
    },
    /// A client's TCP ACK to service 0 with 4 bytes of IPv4 options (NOPs).
    Options(u8),
    /// Such a packet cut short at this many bytes, or these bytes.
    Cut(u8, usize),
    Bytes(Vec<u8>),
    /// A buffer shorter than the headroom.
    NoRoom(usize),
}

fn burst_packet() -> impl proptest::strategy::Strategy<Value = BurstPacket> {
    use proptest::prelude::*;
    prop_oneof![
        12 => (0u8..6, 0u8..2, proptest::bool::weighted(0.2), 0u8..6, proptest::bool::weighted(0.3), prop_oneof![Just(64u8), Just(1)])
            .prop_map(|(client, service, udp, flags, reply, ttl)| BurstPacket::Flow { client, service, udp, flags, reply, ttl }),
        2 => (0u8..3, any::<bool>()).prop_map(|(client, syn)| BurstPacket::V6 { client, syn }),
        1 => (0u8..6).prop_map(BurstPacket::Options),
        1 => (0u8..6, 0usize..60).prop_map(|(client, n)| BurstPacket::Cut(client, n)),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(BurstPacket::Bytes),
        1 => (0usize..HEADROOM).prop_map(BurstPacket::NoRoom),
    ]
}

impl BurstPacket {
    /// The packet's buffer: `HEADROOM` free bytes, then the packet (but for `NoRoom`).
    fn buffer(&self) -> Vec<u8> {
        let pkt = match *self {
            BurstPacket::Flow {
                client,
                service,
                udp,
                flags,
                reply,
                ttl,
            } => step_packet(client, service, udp, flags, reply, ttl),
            BurstPacket::V6 { client, syn } => {
                let mut src = [0u8; 16];
                src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                src[15] = 7 + client;
                let mut dst = [0u8; 16];
                dst[..2].copy_from_slice(&[0xfd, 0x00]);
                dst[15] = 1;
                let b = etherparse::PacketBuilder::ipv6(src, dst, 64).tcp(
                    41000 + u16::from(client),
                    80,
                    1000,
                    64240,
                );
                let b = if syn { b.syn() } else { b.ack(1) };
                let mut p = Vec::new();
                b.write(&mut p, &[0x62; 10]).unwrap();
                p
            }
            BurstPacket::Options(client) => {
                let mut p = step_packet(client, 0, false, 1, false, 64);
                p.splice(20..20, [1u8; 4]);
                p[0] = 0x46;
                let total = u16::from_be_bytes([p[2], p[3]]) + 4;
                p[2..4].copy_from_slice(&total.to_be_bytes());
                p[10..12].fill(0);
                let sum: u32 = p[..24]
                    .chunks(2)
                    .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                    .sum();
                let sum = (sum & 0xffff) + (sum >> 16);
                let sum = (sum & 0xffff) + (sum >> 16);
                p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
                p
            }
            BurstPacket::Cut(client, n) => {
                let mut p = step_packet(client, 0, false, 1, false, 64);
                p.truncate(n);
                p
            }
            BurstPacket::Bytes(ref b) => b.clone(),
            BurstPacket::NoRoom(n) => return vec![0u8; n],
        };
        let mut buf = vec![0u8; HEADROOM];
        buf.extend_from_slice(&pkt);
        buf
    }
}

/// A step of [`a_burst_matches_its_packets_one_by_one`]: a burst, a rule change or time
/// passing.
#[derive(Clone, Debug)]
enum BurstStep {
    Burst(Vec<BurstPacket>),
    Rule(u8),
    Wait(u16),
}

fn burst_step() -> impl proptest::strategy::Strategy<Value = BurstStep> {
    use proptest::prelude::*;
    prop_oneof![
        6 => proptest::collection::vec(burst_packet(), 0..40).prop_map(BurstStep::Burst),
        1 => (0u8..6).prop_map(BurstStep::Rule),
        1 => (0u16..400).prop_map(BurstStep::Wait),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// `handle_burst` reads packets ahead (keys peeked from the bytes, hashed, buckets and
    /// entries prefetched, in groups of 16); a director given the same packets one by one through
    /// `handle_packet` must see the same verdicts, in order, the same bytes (the packet and
    /// any ICMP error), counters, statistics and connections, whatever the bursts hold: a
    /// flow's SYN and its later packets in one burst, replies, TTL 1, IPv6, IPv4 options (no
    /// key peeked), malformed packets and buffers shorter than the headroom, and bursts
    /// shorter or longer than a group.
    #[test]
    fn a_burst_matches_its_packets_one_by_one(steps in proptest::collection::vec(burst_step(), 1..12)) {
        let rules = format!("{STEP_RULES}-A -t [fd00::1]:80 -s rr\n-a -t [fd00::1]:80 -r [fd01::1]:8080 -m\n");
        let mut a = director(&rules);
        let mut b = director(&rules);
        let mut now = 1u64 << 20;
        for (i, s) in steps.iter().enumerate() {
            let at = Instant::from_millis(now);
            match s {
                BurstStep::Wait(ms) => {
                    now += u64::from(*ms) * 50;
                    let at = Instant::from_millis(now);
                    a.handle_timeout(at);
                    b.handle_timeout(at);
                }
                BurstStep::Rule(r) => {
                    let cmd = step_command(*r);
                    proptest::prop_assert_eq!(a.apply_command(at, &cmd), b.apply_command(at, &cmd));
                }
                BurstStep::Burst(packets) => {
                    let mut out = [0u8; 1280];
                    let mut expected = Vec::new();
                    for p in packets {
                        let mut buf = p.buffer();
                        let v = a.handle_packet(at, &mut buf, HEADROOM, &mut out);
                        expected.push((v, named_bytes(v, &buf, &out), buf));
                    }
                    let mut bufs: Vec<Vec<u8>> = packets.iter().map(BurstPacket::buffer).collect();
                    let mut seen = Vec::new();
                    b.handle_burst(at, bufs.iter_mut().map(|b| &mut b[..]), HEADROOM, &mut out, |k, buf, v, out| {
                        seen.push((k, v, named_bytes(v, buf, out), buf.to_vec()));
                    });
                    proptest::prop_assert_eq!(seen.len(), expected.len(), "step {}", i);
                    for (k, ((j, v, bytes, buf), (ve, bytes_e, buf_e))) in seen.iter().zip(&expected).enumerate() {
                        proptest::prop_assert_eq!(*j, k, "step {}", i);
                        proptest::prop_assert_eq!(v, ve, "step {}, packet {}", i, k);
                        proptest::prop_assert_eq!(bytes, bytes_e, "step {}, packet {}", i, k);
                        proptest::prop_assert_eq!(buf, buf_e, "step {}, packet {}", i, k);
                    }
                }
            }
            let at = Instant::from_millis(now);
            same_state(&a, &b, at, i)?;
        }
    }
}

/// A burst's packet with IPv4 options has no key peeked ahead (the peek reads plain headers
/// only) and is still forwarded on its connection, as `handle_packet` forwards it.
#[test]
fn a_burst_forwards_a_packet_with_ipv4_options() {
    let mut d = director(STEP_RULES);
    let mut out = [0u8; 1280];
    let (v, _) = run(&mut d, t(1), &step_packet(0, 0, false, 0, false, 64));
    assert!(
        matches!(v, PacketVerdict::Forward { new: true, .. }),
        "{v:?}"
    );
    let mut bufs = vec![BurstPacket::Options(0).buffer(); 3];
    let mut seen = Vec::new();
    d.handle_burst(
        t(1),
        bufs.iter_mut().map(|b| &mut b[..]),
        HEADROOM,
        &mut out,
        |k, _, v, _| {
            seen.push((k, v));
        },
    );
    assert_eq!(seen.len(), 3);
    for (k, v) in seen {
        assert!(
            matches!(
                v,
                PacketVerdict::Forward {
                    new: false,
                    reply: false,
                    ..
                }
            ),
            "packet {k}: {v:?}"
        );
    }
}
