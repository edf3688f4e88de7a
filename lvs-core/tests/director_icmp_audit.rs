//! Byte-level conformance of `Director::handle_packet` for ICMP errors and IPv6, against
//! packets built and checksummed by hand in this file (RFC 1071 sum, pseudo-headers), with no
//! packet library and none of `lvs_core`'s parsers or checksum helpers: spec 3.1–3.4, 3.7, 3.8
//! and 6.1, as the kernel's `ip_vs_nat_icmp{,_v6}`, `icmp_send` and `icmp6_send` do them.

mod director_support;

use core::net::IpAddr;

use director_support::named_bytes;
use lvs_core::conn::HashKey;
use lvs_core::director::{Director, DirectorConfig, PacketConfig, PacketVerdict};
use lvs_core::rules::RuleSet;
use lvs_core::Instant;

const HEADROOM: usize = 96;
const LOCAL4: [u8; 4] = [10, 255, 0, 1];
const LOCAL6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

// ---------------------------------------------------------------------------------------
// The reference: RFC 1071 and hand-built headers.

fn sum(data: &[u8]) -> u32 {
    let mut s: u32 = 0;
    for ch in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([ch[0], *ch.get(1).unwrap_or(&0)]));
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The Internet checksum of the concatenation of `parts` (each of even length but the last).
fn csum(parts: &[&[u8]]) -> u16 {
    !fold(parts.iter().map(|p| sum(p)).sum())
}

fn pseudo(src: &[u8], dst: &[u8], proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    if src.len() == 4 {
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        p.extend_from_slice(&(len as u32).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, proto]);
    }
    p
}

/// An IPv4 header (IHL 5 unless `opts`) with its checksum, then `payload`.
#[allow(clippy::too_many_arguments)]
fn ipv4(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ttl: u8,
    tos: u8,
    id: u16,
    frag: u16,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let hl = 20 + opts.len();
    let mut h = vec![0u8; hl];
    h[0] = 0x40 | (hl / 4) as u8;
    h[1] = tos;
    h[2..4].copy_from_slice(&((hl + payload.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    h[20..].copy_from_slice(opts);
    let c = csum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// A TCP segment (its checksum filled in) in an IPv4 packet with DF set and no options.
#[allow(clippy::too_many_arguments)]
fn tcp4(
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    id: u16,
    sport: u16,
    dport: u16,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let seg = tcp(&src, &dst, sport, dport, flags, data);
    ipv4(src, dst, 6, ttl, 0, id, 0x4000, &[], &seg)
}

/// A UDP datagram (its checksum filled in) in an IPv4 packet without options, TOS 0.
#[allow(clippy::too_many_arguments)]
fn udp4(
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    id: u16,
    frag: u16,
    sport: u16,
    dport: u16,
    data: &[u8],
) -> Vec<u8> {
    let dgram = udp(&src, &dst, sport, dport, data, false);
    ipv4(src, dst, 17, ttl, 0, id, frag, &[], &dgram)
}

/// An ICMP message (`icmp4`'s bytes) in an IPv4 packet without options, not a fragment.
fn err4(src: [u8; 4], dst: [u8; 4], ttl: u8, tos: u8, id: u16, msg: &[u8]) -> Vec<u8> {
    ipv4(src, dst, 1, ttl, tos, id, 0, &[], msg)
}

/// Recomputes the IPv4 header checksum of `p` in place.
fn refill_v4(p: &mut [u8]) {
    let hl = usize::from(p[0] & 0xf) * 4;
    p[10..12].fill(0);
    let c = csum(&[&p[..hl]]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

/// An IPv6 header (`nh` the first next header) with `hop` limit, then `payload` (extension
/// headers included).
fn ipv6(src: [u8; 16], dst: [u8; 16], nh: u8, hop: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    h[6] = nh;
    h[7] = hop;
    h[8..24].copy_from_slice(&src);
    h[24..40].copy_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

fn tcp(src: &[u8], dst: &[u8], sport: u16, dport: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&0x0101_0101u32.to_be_bytes());
    t[12] = 0x50;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(data);
    let c = csum(&[&pseudo(src, dst, 6, t.len()), &t]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// A UDP datagram; `zero` leaves the checksum 0, else it is computed (0 sent as 0xffff).
fn udp(src: &[u8], dst: &[u8], sport: u16, dport: u16, data: &[u8], zero: bool) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(data);
    if !zero {
        let mut c = csum(&[&pseudo(src, dst, 17, u.len()), &u]);
        if c == 0 {
            c = 0xffff;
        }
        u[6..8].copy_from_slice(&c.to_be_bytes());
    }
    u
}

fn icmp4(t: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![t, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let c = csum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn icmp6(src: &[u8], dst: &[u8], t: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![t, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let c = csum(&[&pseudo(src, dst, 58, m.len()), &m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn v4(s: &str) -> [u8; 4] {
    s.parse::<core::net::Ipv4Addr>().unwrap().octets()
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<core::net::Ipv6Addr>().unwrap().octets()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// The director under test.

fn director(rules: &str) -> Director {
    let mut cfg = DirectorConfig::new(4096, HashKey::from_u128(0xa0d1));
    cfg.packet = PacketConfig {
        local_v4: LOCAL4.into(),
        local_v6: LOCAL6.into(),
        route_mtu: 0,
        pmtu_disc: true,
        first_ip_id: 0x4000,
    };
    let mut d = Director::new(cfg);
    d.apply_rules(Instant::ZERO, &RuleSet::from_text(rules).unwrap())
        .unwrap();
    d
}

fn run(d: &mut Director, secs: u64, pkt: &[u8]) -> (PacketVerdict, Vec<u8>) {
    let mut buf = vec![0u8; HEADROOM];
    buf.extend_from_slice(pkt);
    let mut out = [0u8; 1280];
    let v = d.handle_packet(Instant::from_secs(secs), &mut buf, HEADROOM, &mut out);
    let bytes = named_bytes(v, &buf, &out);
    (v, bytes)
}

fn forwarded(v: &PacketVerdict) -> bool {
    matches!(v, PacketVerdict::Forward { .. })
}

const NAT4: &str = "-A -t 192.0.2.10:80 -s rr\n-a -t 192.0.2.10:80 -r 10.0.0.2:8080 -m\n\
                    -A -u 192.0.2.10:53 -s rr\n-a -u 192.0.2.10:53 -r 10.0.0.2:5353 -m\n";
const NAT6: &str = "-A -t [2001:db8::10]:80 -s rr\n-a -t [2001:db8::10]:80 -r [fd00::2]:8080 -m\n\
                    -A -u [2001:db8::10]:53 -s rr\n-a -u [2001:db8::10]:53 -r [fd00::2]:5353 -m\n";

// ---------------------------------------------------------------------------------------
// NAT: ICMP errors quoting a connection, both directions.

/// The quoted packet VIP:80 → client:40000 as the real server's reply carried it (after SNAT).
fn reply_seg_v4(full: bool) -> Vec<u8> {
    let (vip, client) = (v4("192.0.2.10"), v4("198.51.100.7"));
    let mut p = tcp4(vip, client, 61, 0x1234, 80, 40000, 0x12, b"hello");
    if !full {
        p.truncate(28);
    }
    p
}

#[test]
fn nat_v4_errors_both_directions() {
    for full in [true, false] {
        let mut d = director(NAT4);
        let (client, vip, rip) = (v4("198.51.100.7"), v4("192.0.2.10"), v4("10.0.0.2"));
        let syn = tcp4(client, vip, 64, 1, 40000, 80, 0x02, &[]);
        assert!(forwarded(&run(&mut d, 1, &syn).0));

        // From the client side: a router 203.0.113.1 says VIP → client was unreachable.
        let quote = reply_seg_v4(full);
        let err = err4(
            v4("203.0.113.1"),
            vip,
            50,
            0,
            7,
            &icmp4(3, 1, [0; 4], &quote),
        );
        let (v, got) = run(&mut d, 2, &err);
        assert!(
            matches!(v, PacketVerdict::Forward { reply: false, next_hop, .. } if next_hop == IpAddr::from(rip)),
            "{v:?}"
        );
        // Expected: outer dst RIP, TTL 49; quoted src RIP:8080 with its IP checksum
        // recomputed, the quoted TCP checksum as it was; the ICMP checksum recomputed.
        let mut q = quote.clone();
        q[12..16].copy_from_slice(&rip);
        refill_v4(&mut q);
        q[20..22].copy_from_slice(&8080u16.to_be_bytes());
        let want = err4(v4("203.0.113.1"), rip, 49, 0, 7, &icmp4(3, 1, [0; 4], &q));
        assert_eq!(got, want, "in, full={full}");

        // From the real-server side: RIP says client → RIP:8080 hit a closed port.
        let req = tcp4(client, rip, 63, 1, 40000, 8080, 0x10, b"x");
        let quote = if full {
            req.clone()
        } else {
            req[..28].to_vec()
        };
        let err = err4(rip, client, 64, 0xc0, 9, &icmp4(3, 3, [0; 4], &quote));
        let (v, got) = run(&mut d, 2, &err);
        assert!(
            matches!(v, PacketVerdict::Forward { reply: true, next_hop, .. } if next_hop == IpAddr::from(client)),
            "{v:?}"
        );
        let mut q = quote.clone();
        q[16..20].copy_from_slice(&vip);
        refill_v4(&mut q);
        q[22..24].copy_from_slice(&80u16.to_be_bytes());
        let want = err4(vip, client, 63, 0xc0, 9, &icmp4(3, 3, [0; 4], &q));
        assert_eq!(got, want, "out, full={full}");

        // Fragmentation needed from a router on the real server's path: MTU field kept.
        let err = err4(
            v4("10.0.0.254"),
            client,
            64,
            0,
            9,
            &icmp4(3, 4, [0, 0, 5, 0xdc], &quote),
        );
        let (_, got) = run(&mut d, 2, &err);
        let want = err4(vip, client, 63, 0, 9, &icmp4(3, 4, [0, 0, 5, 0xdc], &q));
        assert_eq!(got, want, "frag needed out, full={full}");
    }
}

#[test]
fn nat_v4_error_quoting_a_header_with_options() {
    let mut d = director(NAT4);
    let (client, vip, rip) = (v4("198.51.100.7"), v4("192.0.2.10"), v4("10.0.0.2"));
    let syn = udp4(client, vip, 64, 1, 0, 5000, 53, b"q");
    assert!(forwarded(&run(&mut d, 1, &syn).0));
    let opts = [1, 1, 1, 0]; // NOP NOP NOP EOL
    let quote = ipv4(
        vip,
        client,
        17,
        60,
        0,
        3,
        0,
        &opts,
        &udp(&vip, &client, 53, 5000, b"answer", false),
    );
    let err = err4(
        v4("203.0.113.1"),
        vip,
        50,
        0,
        7,
        &icmp4(11, 0, [0; 4], &quote),
    );
    let (_, got) = run(&mut d, 2, &err);
    let mut q = quote.clone();
    q[12..16].copy_from_slice(&rip);
    refill_v4(&mut q);
    q[24..26].copy_from_slice(&5353u16.to_be_bytes());
    let want = err4(v4("203.0.113.1"), rip, 49, 0, 7, &icmp4(11, 0, [0; 4], &q));
    assert_eq!(got, want);
}

#[test]
fn nat_v6_errors_both_directions() {
    for full in [true, false] {
        let mut d = director(NAT6);
        let (client, vip, rip) = (v6("2001:db8:c::7"), v6("2001:db8::10"), v6("fd00::2"));
        let syn = ipv6(
            client,
            vip,
            6,
            64,
            &tcp(&client, &vip, 40000, 80, 0x02, &[]),
        );
        assert!(forwarded(&run(&mut d, 1, &syn).0));

        let router = v6("2001:db8:99::1");
        let mut quote = ipv6(
            vip,
            client,
            6,
            61,
            &tcp(&vip, &client, 80, 40000, 0x12, b"hello"),
        );
        if !full {
            quote.truncate(48);
        }
        let err = ipv6(
            router,
            vip,
            58,
            50,
            &icmp6(&router, &vip, 1, 0, [0; 4], &quote),
        );
        let (v, got) = run(&mut d, 2, &err);
        assert!(forwarded(&v), "{v:?}");
        let mut q = quote.clone();
        q[8..24].copy_from_slice(&rip);
        q[40..42].copy_from_slice(&8080u16.to_be_bytes());
        let want = ipv6(router, rip, 58, 49, &icmp6(&router, &rip, 1, 0, [0; 4], &q));
        assert_eq!(got, want, "in, full={full}");

        let req = ipv6(
            client,
            rip,
            6,
            63,
            &tcp(&client, &rip, 40000, 8080, 0x10, b"x"),
        );
        let quote = if full {
            req.clone()
        } else {
            req[..48].to_vec()
        };
        let err = ipv6(
            rip,
            client,
            58,
            64,
            &icmp6(&rip, &client, 2, 0, [0, 0, 5, 0], &quote),
        );
        let (v, got) = run(&mut d, 2, &err);
        assert!(forwarded(&v), "{v:?}");
        let mut q = quote.clone();
        q[24..40].copy_from_slice(&vip);
        q[42..44].copy_from_slice(&80u16.to_be_bytes());
        let want = ipv6(
            vip,
            client,
            58,
            63,
            &icmp6(&vip, &client, 2, 0, [0, 0, 5, 0], &q),
        );
        assert_eq!(got, want, "out, full={full}");
    }
}

#[test]
fn errors_not_ours_or_never_answered() {
    let mut d = director(NAT4);
    let (client, vip) = (v4("198.51.100.7"), v4("192.0.2.10"));
    let syn = tcp4(client, vip, 64, 1, 40000, 80, 0x02, &[]);
    assert!(forwarded(&run(&mut d, 1, &syn).0));
    let router = v4("203.0.113.1");
    // Quoting a flow we do not know.
    let other = ipv4(
        vip,
        client,
        6,
        61,
        0,
        1,
        0,
        &[],
        &tcp(&vip, &client, 80, 40001, 0x12, &[]),
    );
    let err = err4(router, vip, 50, 0, 7, &icmp4(3, 1, [0; 4], &other[..28]));
    assert_eq!(run(&mut d, 2, &err).0, PacketVerdict::NotOurs);
    // Quoting a later fragment of the connection's flow (its "ports" are payload).
    let mut frag = reply_seg_v4(false);
    frag[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
    refill_v4(&mut frag);
    let err = err4(router, vip, 50, 0, 7, &icmp4(3, 1, [0; 4], &frag));
    assert_eq!(run(&mut d, 2, &err).0, PacketVerdict::NotOurs);
    // An ICMP error about the connection arriving with TTL 1: dropped, no Time Exceeded.
    let err = err4(
        router,
        vip,
        1,
        0,
        7,
        &icmp4(3, 1, [0; 4], &reply_seg_v4(false)),
    );
    let (v, _) = run(&mut d, 2, &err);
    assert!(matches!(v, PacketVerdict::Drop(_)), "{v:?}");
    // An ICMP error to a service without destination: dropped silently (spec 6.1 step 3).
    let mut d = director("-A -u 192.0.2.30:53\n");
    let q = ipv4(
        vip,
        client,
        17,
        61,
        0,
        1,
        0,
        &[],
        &udp(&v4("192.0.2.30"), &client, 53, 5000, &[], false),
    );
    let err = err4(
        router,
        v4("192.0.2.30"),
        50,
        0,
        7,
        &icmp4(3, 3, [0; 4], &q[..28]),
    );
    assert!(!matches!(
        run(&mut d, 2, &err).0,
        PacketVerdict::Reply { .. }
    ));
}

// ---------------------------------------------------------------------------------------
// DR: errors forwarded unchanged (TTL aside) to the connection's real server.

#[test]
fn dr_error_from_client_side_goes_to_the_real_server() {
    let mut d = director("-A -t 192.0.2.20:80\n-a -t 192.0.2.20:80 -r 10.0.0.3:80 -g\n");
    let (client, vip) = (v4("198.51.100.7"), v4("192.0.2.20"));
    let syn = tcp4(client, vip, 64, 1, 40000, 80, 0x02, &[]);
    assert!(forwarded(&run(&mut d, 1, &syn).0));
    let quote = tcp4(vip, client, 61, 1, 80, 40000, 0x12, &[]);
    let err = err4(
        v4("203.0.113.1"),
        vip,
        50,
        0,
        7,
        &icmp4(3, 4, [0, 0, 5, 0xdc], &quote[..28]),
    );
    let (v, got) = run(&mut d, 2, &err);
    assert!(
        matches!(v, PacketVerdict::Forward { next_hop, .. } if next_hop == ip("10.0.0.3")),
        "{v:?}"
    );
    let want = err4(
        v4("203.0.113.1"),
        vip,
        49,
        0,
        7,
        &icmp4(3, 4, [0, 0, 5, 0xdc], &quote[..28]),
    );
    assert_eq!(got, want);
}

// ---------------------------------------------------------------------------------------
// Port unreachable for no destination (spec 6.1), `icmp_send` / `icmp6_send` rules.

#[test]
fn port_unreachable_v4_bytes() {
    let mut d = director("-A -u 192.0.2.30:53\n-A -t 192.0.2.30:80\n");
    let (client, vip) = (v4("198.51.100.7"), v4("192.0.2.30"));
    // A datagram larger than 576 bytes: the quote stops at 576 - 28.
    let big = ipv4(
        client,
        vip,
        17,
        64,
        0x2e,
        0x77,
        0,
        &[],
        &udp(&client, &vip, 5000, 53, &[0xab; 700], false),
    );
    let (v, got) = run(&mut d, 1, &big);
    assert!(matches!(v, PacketVerdict::Reply { start: 0, .. }), "{v:?}");
    // The offending packet was addressed to a local address (the VIP): `icmp_send` answers
    // from it (saddr = iph->daddr for an RTCF_LOCAL route).
    let want = ipv4(
        vip,
        client,
        1,
        64,
        (0x2e & 0x1e) | 0xc0,
        0x4000,
        0,
        &[],
        &icmp4(3, 3, [0; 4], &big[..548]),
    );
    assert_eq!(got.len(), 576);
    assert_eq!(got[..4], want[..4]);
    // ID is the director's; compare everything else.
    let mut g = got.clone();
    g[4..6].copy_from_slice(&want[4..6]);
    refill_v4(&mut g);
    assert_eq!(g, want);

    // TCP gets a port unreachable too, quoting the whole short packet.
    let syn = tcp4(client, vip, 64, 1, 40000, 80, 0x02, &[]);
    let (v, got) = run(&mut d, 1, &syn);
    assert!(matches!(v, PacketVerdict::Reply { .. }), "{v:?}");
    assert_eq!(&got[28..], &syn[..]);
    assert_eq!(
        (&got[12..16], &got[16..20], got[8], got[20], got[21]),
        (&vip[..], &client[..], 64, 3, 3)
    );
    assert_eq!(csum(&[&got[..20]]), 0);
    assert_eq!(csum(&[&got[20..]]), 0);
}

#[test]
fn port_unreachable_v6_bytes() {
    let mut d = director("-A -u [2001:db8::30]:53\n");
    let (client, vip) = (v6("2001:db8:c::7"), v6("2001:db8::30"));
    let big = ipv6(
        client,
        vip,
        17,
        64,
        &udp(&client, &vip, 5000, 53, &[0xcd; 1400], false),
    );
    let (v, got) = run(&mut d, 1, &big);
    assert!(matches!(v, PacketVerdict::Reply { .. }), "{v:?}");
    let want = ipv6(
        vip,
        client,
        58,
        64,
        &icmp6(&vip, &client, 1, 4, [0; 4], &big[..1280 - 48]),
    );
    assert_eq!(got, want);
}

#[test]
fn no_error_about_multicast_broadcast_or_bad_sources() {
    // Services on group addresses, and unicast ones reached from bad sources: the kernel's
    // icmp_send refuses RTCF_BROADCAST / RTCF_MULTICAST routes, icmp6_send a multicast
    // destination (but for Packet Too Big) and an unspecified / multicast source.
    let mut d = director("-A -u 224.1.2.3:53\n-A -u 255.255.255.255:53\n-A -u [ff0e::1]:53\n-A -u 192.0.2.30:53\n-A -u [2001:db8::30]:53\n");
    let client = v4("198.51.100.7");
    for dst in ["224.1.2.3", "255.255.255.255"] {
        let p = ipv4(
            client,
            v4(dst),
            17,
            64,
            0,
            1,
            0,
            &[],
            &udp(&client, &v4(dst), 5000, 53, b"q", false),
        );
        let (v, _) = run(&mut d, 1, &p);
        assert!(!matches!(v, PacketVerdict::Reply { .. }), "{dst}: {v:?}");
    }
    for src in ["0.0.0.0", "224.0.0.9", "255.255.255.255"] {
        let vip = v4("192.0.2.30");
        let p = ipv4(
            v4(src),
            vip,
            17,
            64,
            0,
            1,
            0,
            &[],
            &udp(&v4(src), &vip, 5000, 53, b"q", false),
        );
        let (v, _) = run(&mut d, 1, &p);
        assert!(!matches!(v, PacketVerdict::Reply { .. }), "{src}: {v:?}");
    }
    let c6 = v6("2001:db8:c::7");
    let m6 = v6("ff0e::1");
    let p = ipv6(c6, m6, 17, 64, &udp(&c6, &m6, 5000, 53, b"q", false));
    assert!(!matches!(run(&mut d, 1, &p).0, PacketVerdict::Reply { .. }));
    let vip6 = v6("2001:db8::30");
    for src in ["::", "ff02::1"] {
        let p = ipv6(
            v6(src),
            vip6,
            17,
            64,
            &udp(&v6(src), &vip6, 5000, 53, b"q", false),
        );
        let (v, _) = run(&mut d, 1, &p);
        assert!(!matches!(v, PacketVerdict::Reply { .. }), "{src}: {v:?}");
    }
}

// ---------------------------------------------------------------------------------------
// IPv6 forwarding: hop limit, checksums, extension headers.

/// A UDP payload making the datagram's checksum compute to 0 once sent `src → dst` with
/// these ports (the last two bytes chosen to cancel the rest).
fn zero_sum_payload(src: &[u8], dst: &[u8], sport: u16, dport: u16) -> Vec<u8> {
    let mut data = vec![1, 2, 3, 4, 0, 0];
    let u = udp(src, dst, sport, dport, &data, true);
    let s = fold(sum(&pseudo(src, dst, 17, u.len())) + sum(&u));
    // Sum must become 0xffff: add the complement of the current sum.
    data[4..6].copy_from_slice(&(!s).to_be_bytes());
    let u = udp(src, dst, sport, dport, &data, true);
    assert_eq!(csum(&[&pseudo(src, dst, 17, u.len()), &u]), 0);
    data
}

#[test]
fn ipv6_udp_checksum_zero_becomes_ffff() {
    let mut d = director(NAT6);
    let (client, vip, rip) = (v6("2001:db8:c::7"), v6("2001:db8::10"), v6("fd00::2"));
    let data = zero_sum_payload(&client, &rip, 5000, 5353);
    let pkt = ipv6(
        client,
        vip,
        17,
        64,
        &udp(&client, &vip, 5000, 53, &data, false),
    );
    let (v, got) = run(&mut d, 1, &pkt);
    assert!(forwarded(&v), "{v:?}");
    let mut u = udp(&client, &rip, 5000, 5353, &data, true);
    u[6..8].copy_from_slice(&0xffffu16.to_be_bytes());
    assert_eq!(got, ipv6(client, rip, 17, 63, &u));
    // And the reply, whose sum computes to 0 after SNAT.
    let data = zero_sum_payload(&vip, &client, 53, 5000);
    let pkt = ipv6(
        rip,
        client,
        17,
        64,
        &udp(&rip, &client, 5353, 5000, &data, false),
    );
    let (v, got) = run(&mut d, 2, &pkt);
    assert!(forwarded(&v), "{v:?}");
    let mut u = udp(&vip, &client, 53, 5000, &data, true);
    u[6..8].copy_from_slice(&0xffffu16.to_be_bytes());
    let hop = got[7];
    assert_eq!(hop, 63, "forwarded: hop limit decremented");
    assert_eq!(got, ipv6(vip, client, 17, hop, &u));
}

#[test]
fn ipv4_udp_checksum_zero_and_zero_sum() {
    let mut d = director(NAT4);
    let (client, vip, rip) = (v4("198.51.100.7"), v4("192.0.2.10"), v4("10.0.0.2"));
    // A datagram without a checksum gets a full one (spec 3.2, `udp_dnat_handler`).
    let pkt = ipv4(
        client,
        vip,
        17,
        64,
        0,
        1,
        0,
        &[],
        &udp(&client, &vip, 5000, 53, b"abc", true),
    );
    let (_, got) = run(&mut d, 1, &pkt);
    let want = udp4(client, rip, 63, 1, 0, 5000, 5353, b"abc");
    assert_eq!(got, want);
    // An incremental update that gives 0 is sent as 0xffff.
    let data = zero_sum_payload(&client, &rip, 5001, 5353);
    let pkt = udp4(client, vip, 64, 1, 0, 5001, 53, &data);
    let (_, got) = run(&mut d, 1, &pkt);
    let mut u = udp(&client, &rip, 5001, 5353, &data, true);
    u[6..8].copy_from_slice(&0xffffu16.to_be_bytes());
    assert_eq!(got, ipv4(client, rip, 17, 63, 0, 1, 0, &[], &u));
}

#[test]
fn ipv6_extension_headers_are_kept() {
    let (client, vip, rip) = (v6("2001:db8:c::7"), v6("2001:db8::10"), v6("fd00::2"));
    // Hop-by-hop (PadN) then destination options (PadN), then TCP.
    let ext = |nh_last: u8| {
        let mut e = vec![60, 0, 1, 4, 0, 0, 0, 0];
        e.extend_from_slice(&[nh_last, 0, 1, 4, 0, 0, 0, 0]);
        e
    };
    for (rules, nat) in [
        (NAT6, true),
        (
            "-A -t [2001:db8::10]:80\n-a -t [2001:db8::10]:80 -r [fd00::3]:80 -g\n",
            false,
        ),
    ] {
        let mut d = director(rules);
        let mut payload = ext(6);
        payload.extend_from_slice(&tcp(&client, &vip, 40000, 80, 0x02, b"data"));
        let pkt = ipv6(client, vip, 0, 64, &payload);
        let (v, got) = run(&mut d, 1, &pkt);
        assert!(forwarded(&v), "{v:?}");
        let want = if nat {
            let mut p = ext(6);
            p.extend_from_slice(&tcp(&client, &rip, 40000, 8080, 0x02, b"data"));
            ipv6(client, rip, 0, 63, &p)
        } else {
            let mut p = pkt.clone();
            p[7] = 63;
            p
        };
        assert_eq!(got, want, "nat={nat}");
    }
}

// ---------------------------------------------------------------------------------------
// No panics on truncated and corrupted variants.

#[test]
fn truncations_and_bit_flips_never_panic() {
    let (client, vip, rip) = (v4("198.51.100.7"), v4("192.0.2.10"), v4("10.0.0.2"));
    let (c6, vip6, rip6) = (v6("2001:db8:c::7"), v6("2001:db8::10"), v6("fd00::2"));
    let router = v4("203.0.113.1");
    let r6 = v6("2001:db8:99::1");
    let mut samples = vec![
        err4(
            router,
            vip,
            50,
            0,
            7,
            &icmp4(3, 1, [0; 4], &reply_seg_v4(true)),
        ),
        err4(
            router,
            vip,
            50,
            0,
            7,
            &icmp4(3, 1, [0; 4], &reply_seg_v4(false)),
        ),
        ipv4(
            rip,
            client,
            1,
            64,
            0,
            9,
            0,
            &[],
            &icmp4(
                3,
                4,
                [0, 0, 5, 0xdc],
                &tcp4(client, rip, 63, 1, 40000, 8080, 0x10, b"x")[..28],
            ),
        ),
        udp4(client, vip, 64, 1, 0, 5000, 53, b"q"),
        ipv4(
            client,
            v4("192.0.2.30"),
            17,
            64,
            0,
            1,
            0,
            &[],
            &udp(&client, &v4("192.0.2.30"), 5000, 53, b"q", false),
        ),
    ];
    let q6 = ipv6(vip6, c6, 6, 61, &tcp(&vip6, &c6, 80, 40000, 0x12, b"hello"));
    samples.push(ipv6(
        r6,
        vip6,
        58,
        50,
        &icmp6(&r6, &vip6, 1, 0, [0; 4], &q6),
    ));
    samples.push(ipv6(
        r6,
        vip6,
        58,
        50,
        &icmp6(&r6, &vip6, 1, 0, [0; 4], &q6[..48]),
    ));
    let q6b = ipv6(c6, rip6, 17, 63, &udp(&c6, &rip6, 5000, 5353, b"x", false));
    samples.push(ipv6(
        rip6,
        c6,
        58,
        64,
        &icmp6(&rip6, &c6, 2, 0, [0, 0, 5, 0], &q6b),
    ));
    let rules = format!("{NAT4}{NAT6}-A -u 192.0.2.30:53\n-A -u [2001:db8::30]:53\n");
    let mut d = director(&rules);
    let syn = tcp4(client, vip, 64, 1, 40000, 80, 0x02, &[]);
    run(&mut d, 1, &syn);
    let syn6 = ipv6(c6, vip6, 6, 64, &tcp(&c6, &vip6, 40000, 80, 0x02, &[]));
    run(&mut d, 1, &syn6);
    let u6 = ipv6(c6, vip6, 17, 64, &udp(&c6, &vip6, 5000, 53, b"x", false));
    run(&mut d, 1, &u6);
    for s in &samples {
        for n in 0..=s.len() {
            run(&mut d, 2, &s[..n]);
            // A length field that claims more than is there.
            let mut t = s[..n].to_vec();
            if n > 4 {
                t[3] ^= 0x01;
                run(&mut d, 2, &t);
            }
        }
        for i in 0..s.len() {
            for bit in [0x01u8, 0x10, 0x80] {
                let mut t = s.clone();
                t[i] ^= bit;
                run(&mut d, 2, &t);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The source and quote of the errors we build, per direction.

#[test]
fn errors_about_client_packets_come_from_the_virtual_address() {
    let (client, vip) = (v4("198.51.100.7"), v4("192.0.2.20"));
    let mut d = director("-A -t 192.0.2.20:80\n-a -t 192.0.2.20:80 -r 10.0.0.3:80 -g\n");
    let syn = tcp4(client, vip, 1, 1, 40000, 80, 0x02, &[]);
    let (v, got) = run(&mut d, 1, &syn);
    assert!(matches!(v, PacketVerdict::Reply { .. }), "{v:?}");
    let want = err4(vip, client, 64, 0xc0, 0, &icmp4(11, 0, [0; 4], &syn));
    let mut g = got.clone();
    g[4..6].fill(0);
    refill_v4(&mut g);
    assert_eq!(g, want);
}

fn director_with(rules: &str, mtu: u32, nat_icmp_send: bool) -> Director {
    let mut cfg = DirectorConfig::new(4096, HashKey::from_u128(0xa0d1));
    cfg.packet = PacketConfig {
        local_v4: LOCAL4.into(),
        local_v6: LOCAL6.into(),
        route_mtu: mtu,
        pmtu_disc: true,
        first_ip_id: 0,
    };
    cfg.sysctls.nat_icmp_send = nat_icmp_send;
    let mut d = Director::new(cfg);
    d.apply_rules(Instant::ZERO, &RuleSet::from_text(rules).unwrap())
        .unwrap();
    d
}

#[test]
fn errors_about_forwarded_replies_come_from_the_director() {
    let (client, vip, rip) = (v4("198.51.100.7"), v4("192.0.2.10"), v4("10.0.0.2"));
    // A NAT reply too big for the route towards the client, DF set: `ip_forward`'s
    // Fragmentation Needed, before its TTL decrement and before SNAT, from the director.
    let mut d = director_with(NAT4, 1000, false);
    let syn = tcp4(client, vip, 64, 1, 40000, 80, 0x02, &[]);
    assert!(forwarded(&run(&mut d, 1, &syn).0));
    let reply = tcp4(rip, client, 64, 2, 8080, 40000, 0x12, &[9; 1200]);
    let (v, got) = run(&mut d, 2, &reply);
    assert!(matches!(v, PacketVerdict::Reply { .. }), "{v:?}");
    let want = err4(
        LOCAL4,
        rip,
        64,
        0xc0,
        0,
        &icmp4(3, 4, [0, 0, 0x03, 0xe8], &reply[..548]),
    );
    let mut g = got.clone();
    g[4..6].fill(0);
    refill_v4(&mut g);
    assert_eq!(g, want);

    // nat_icmp_send: a real server's packet matching no connection gets a port unreachable
    // from the director (the packet was being forwarded, not addressed to it).
    let mut d = director_with(NAT4, 0, true);
    let stray = udp4(rip, client, 64, 3, 0, 5353, 6000, b"late");
    let (v, got) = run(&mut d, 1, &stray);
    assert!(matches!(v, PacketVerdict::Reply { .. }), "{v:?}");
    assert_eq!((&got[12..16], &got[16..20]), (&LOCAL4[..], &rip[..]));
    assert_eq!(&got[28..], &stray[..]);
}

#[test]
fn ipv6_udp_without_checksum_gets_a_full_one() {
    // Checksum 0 is not valid over IPv6; `udp_dnat_handler` computes a full checksum for it
    // as for IPv4 (spec 3.2), never leaving 0.
    let mut d = director(NAT6);
    let (client, vip, rip) = (v6("2001:db8:c::7"), v6("2001:db8::10"), v6("fd00::2"));
    let pkt = ipv6(
        client,
        vip,
        17,
        64,
        &udp(&client, &vip, 5000, 53, b"abc", true),
    );
    let (v, got) = run(&mut d, 1, &pkt);
    assert!(forwarded(&v), "{v:?}");
    let want = ipv6(
        client,
        rip,
        17,
        63,
        &udp(&client, &rip, 5000, 5353, b"abc", false),
    );
    assert_eq!(got, want);
    let data = zero_sum_payload(&client, &rip, 5001, 5353);
    let pkt = ipv6(
        client,
        vip,
        17,
        64,
        &udp(&client, &vip, 5001, 53, &data, true),
    );
    let (_, got) = run(&mut d, 1, &pkt);
    let mut u = udp(&client, &rip, 5001, 5353, &data, true);
    u[6..8].copy_from_slice(&0xffffu16.to_be_bytes());
    assert_eq!(got, ipv6(client, rip, 17, 63, &u));
}

#[test]
fn nat_v6_error_quoting_extension_headers() {
    let mut d = director(NAT6);
    let (client, vip, rip) = (v6("2001:db8:c::7"), v6("2001:db8::10"), v6("fd00::2"));
    let syn = ipv6(
        client,
        vip,
        17,
        64,
        &udp(&client, &vip, 5000, 53, b"q", false),
    );
    assert!(forwarded(&run(&mut d, 1, &syn).0));
    // The quoted reply carries a destination-options header before UDP.
    let mut inner = vec![17, 0, 1, 4, 0, 0, 0, 0];
    inner.extend_from_slice(&udp(&vip, &client, 53, 5000, b"answer", false));
    let quote = ipv6(vip, client, 60, 61, &inner);
    let router = v6("2001:db8:99::1");
    let err = ipv6(
        router,
        vip,
        58,
        50,
        &icmp6(&router, &vip, 3, 0, [0; 4], &quote),
    );
    let (v, got) = run(&mut d, 2, &err);
    assert!(forwarded(&v), "{v:?}");
    let mut q = quote.clone();
    q[8..24].copy_from_slice(&rip);
    q[48..50].copy_from_slice(&5353u16.to_be_bytes());
    let want = ipv6(router, rip, 58, 49, &icmp6(&router, &rip, 3, 0, [0; 4], &q));
    assert_eq!(got, want);
}

#[test]
fn ipv4_errors_fit_a_route_mtu_below_576() {
    // `icmp_send`: room = min(576, route MTU) - 28. A 1000-byte DF datagram over a 500-byte
    // route gets a 500-byte Fragmentation Needed quoting its first 472 bytes (TTL decremented).
    let mut d = director_with(NAT4, 500, false);
    let (client, vip) = (v4("198.51.100.7"), v4("192.0.2.10"));
    let pkt = udp4(client, vip, 64, 1, 0x4000, 5000, 53, &[3; 972]);
    let (v, got) = run(&mut d, 1, &pkt);
    assert!(matches!(v, PacketVerdict::Reply { .. }), "{v:?}");
    let mut quoted = pkt.clone();
    quoted[8] = 63;
    refill_v4(&mut quoted);
    let want = err4(
        vip,
        client,
        64,
        0xc0,
        0,
        &icmp4(3, 4, [0, 0, 0x01, 0xf4], &quoted[..472]),
    );
    let mut g = got.clone();
    g[4..6].fill(0);
    refill_v4(&mut g);
    assert_eq!(g, want);
}

#[test]
fn only_a_scheduling_packet_gets_port_unreachable() {
    // `tcp_conn_schedule` schedules only a SYN: an ACK or RST to a service without a
    // destination is the local stack's (no error built); a SYN gets the port unreachable.
    let mut d = director("-A -t 192.0.2.30:80\n");
    let (client, vip) = (v4("198.51.100.7"), v4("192.0.2.30"));
    for flags in [0x10u8, 0x04, 0x11] {
        let p = tcp4(client, vip, 64, 1, 40000, 80, flags, &[]);
        let (v, _) = run(&mut d, 1, &p);
        assert_eq!(v, PacketVerdict::NotOurs, "flags {flags:#x}");
    }
    let p = tcp4(client, vip, 64, 1, 40000, 80, 0x02, &[]);
    assert!(matches!(run(&mut d, 1, &p).0, PacketVerdict::Reply { .. }));
}

#[test]
fn nat_v6_error_behind_an_outer_extension_header() {
    let mut d = director(NAT6);
    let (client, vip, rip) = (v6("2001:db8:c::7"), v6("2001:db8::10"), v6("fd00::2"));
    let syn = ipv6(
        client,
        vip,
        6,
        64,
        &tcp(&client, &vip, 40000, 80, 0x02, &[]),
    );
    assert!(forwarded(&run(&mut d, 1, &syn).0));
    let router = v6("2001:db8:99::1");
    let quote = ipv6(
        vip,
        client,
        6,
        61,
        &tcp(&vip, &client, 80, 40000, 0x12, &[]),
    );
    // Destination options (PadN) in front of the ICMPv6 error.
    let msg = |dst: &[u8; 16], q: &[u8]| {
        let mut p = vec![58, 0, 1, 4, 0, 0, 0, 0];
        p.extend_from_slice(&icmp6(&router, dst, 1, 3, [0; 4], q));
        p
    };
    let err = ipv6(router, vip, 60, 50, &msg(&vip, &quote));
    let (v, got) = run(&mut d, 2, &err);
    assert!(forwarded(&v), "{v:?}");
    let mut q = quote.clone();
    q[8..24].copy_from_slice(&rip);
    q[40..42].copy_from_slice(&8080u16.to_be_bytes());
    assert_eq!(got, ipv6(router, rip, 60, 49, &msg(&rip, &q)));
}

#[test]
fn relayed_tunnel_error_fits_a_route_mtu_below_576() {
    // Spec 3.7 tunnel case: the error the director sends the client about its own IPIP
    // packet follows `icmp_send`'s size rule too (min(576, route MTU)).
    let mut d = director_with(
        "-A -u 192.0.2.40:53\n-a -u 192.0.2.40:53 -r 10.0.0.9:53 -i\n",
        500,
        false,
    );
    let (client, vip) = (v4("198.51.100.7"), v4("192.0.2.40"));
    let pkt = udp4(client, vip, 64, 1, 0, 5000, 53, &[5; 1000]);
    let (v, tunnelled) = run(&mut d, 1, &pkt);
    assert!(forwarded(&v), "{v:?}");
    let router = v4("10.0.0.254");
    let err = err4(
        router,
        LOCAL4,
        64,
        0,
        9,
        &icmp4(11, 0, [0; 4], &tunnelled[..548]),
    );
    let (v, got) = run(&mut d, 2, &err);
    assert!(matches!(v, PacketVerdict::Reply { .. }), "{v:?}");
    // The client's packet as the tunnel carried it (TTL decremented), 472 bytes of it.
    let inner = &tunnelled[20..20 + 472];
    let want = err4(vip, client, 64, 0xc0, 0, &icmp4(11, 0, [0; 4], inner));
    let mut g = got.clone();
    g[4..6].fill(0);
    refill_v4(&mut g);
    assert_eq!(g, want);
}
