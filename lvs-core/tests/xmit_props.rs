//! Property tests of `xmit::transmit` against etherparse-built expectations and round trips.

mod xmit_support;

use lvs_core::rules::{Forward, TunnelConfig, TunnelCsum, TunnelType};
use lvs_core::wire::classify;
use lvs_core::xmit::{decapsulate, transmit, Direction, Mapping, Verdict};
use proptest::prelude::*;
use xmit_support::*;

const HEADROOM: usize = 80;

/// Runs `transmit`; returns the verdict and the bytes it names (forwarded packet or reply).
fn tx(m: &Mapping, dir: Direction, pkt: &[u8]) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; HEADROOM + pkt.len()];
    buf[HEADROOM..].copy_from_slice(pkt);
    let c = classify(&buf[HEADROOM..]).expect("input classifies");
    let mut out = [0u8; 1280];
    let v = transmit(&mut buf, HEADROOM, &c, m, dir, &mut out);
    let bytes = match v {
        Verdict::Forward { start, len, .. } => buf[start..start + len].to_vec(),
        Verdict::Reply { start, len, .. } => out[start..start + len].to_vec(),
        _ => Vec::new(),
    };
    (v, bytes)
}

fn mapping(v6: bool, seed: u32, fwd: Forward) -> Mapping {
    let mut m = Mapping::new(
        (addr(v6, seed.wrapping_mul(3)), 1024 + (seed % 60000) as u16),
        (addr(v6, seed.wrapping_mul(5) ^ 0x55), 80),
        (addr(v6, seed.wrapping_mul(7) ^ 0xaa), 8080),
    );
    m.forward = fwd;
    m.local_v4 = "198.51.100.254".parse().unwrap();
    m.local_v6 = "2001:db8:ff::fe".parse().unwrap();
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// NAT inbound equals the etherparse rebuild with RIP:dport; the reply rewrite equals the
    /// rebuild with VIP:vport; inbound with the inverse mapping restores the original tuple and
    /// checksums (TTL aside).
    #[test]
    fn nat_in_out_round_trip(
        v6 in any::<bool>(), tcp in any::<bool>(), seed in any::<u32>(), dport in 1u16..,
        payload in proptest::collection::vec(any::<u8>(), 0..200), ttl in 3u8..,
        udp_csum in any::<bool>(),
    ) {
        let mut m = mapping(v6, seed, Forward::Masq);
        m.dport = dport;
        let mut f = flow(&m, tcp, payload, ttl);
        f.udp_csum = udp_csum || v6;
        let input = f.build();
        let (v, out) = tx(&m, Direction::In, &input);
        prop_assert!(matches!(v, Verdict::Forward { .. }), "{:?}", v);
        let mut e = f.clone();
        (e.dst, e.dport, e.ttl, e.udp_csum) = (m.daddr, m.dport, ttl - 1, true);
        prop_assert_eq!(&out, &e.build());

        // Back: treat RIP:dport as the virtual service of an inverse mapping.
        let mut inv = m;
        (inv.vaddr, inv.vport, inv.daddr, inv.dport) = (m.daddr, m.dport, m.vaddr, m.vport);
        let (_, back) = tx(&inv, Direction::In, &out);
        let mut o = f.clone();
        (o.ttl, o.udp_csum) = (ttl - 2, true);
        prop_assert_eq!(&back, &o.build());

        // The reply from RIP:dport.
        let mut r = f.clone();
        (r.src, r.sport, r.dst, r.dport) = (m.daddr, m.dport, m.caddr, m.cport);
        let (_, rout) = tx(&m, Direction::Out, &r.build());
        let mut re = r.clone();
        (re.src, re.sport, re.ttl, re.udp_csum) = (m.vaddr, m.vport, ttl - 1, true);
        prop_assert_eq!(&rout, &re.build());
    }

    /// Decapsulating our TUN output gives the original packet after its TTL decrement, byte
    /// for byte, for every encapsulation and family pair.
    #[test]
    fn tun_decapsulate_round_trip(
        inner6 in any::<bool>(), outer6 in any::<bool>(), tcp in any::<bool>(),
        kind in 0u8..3, csum in 0u8..3, seed in any::<u32>(), tos in any::<u8>(),
        df in any::<bool>(), id in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300), ttl in 2u8..,
    ) {
        let mut m = mapping(inner6, seed, Forward::Tunnel);
        m.daddr = addr(outer6, seed ^ 0x1234);
        m.dport = m.vport;
        m.ip_id = id;
        m.tunnel = TunnelConfig {
            kind: [TunnelType::Ipip, TunnelType::Gue, TunnelType::Gre][usize::from(kind)],
            port: 6080,
            csum: [TunnelCsum::NoCsum, TunnelCsum::Csum, TunnelCsum::RemCsum][usize::from(csum)],
        };
        let mut f = flow(&m, tcp, payload, ttl);
        (f.tos, f.df) = (tos, df);
        let input = f.build();
        let (v, out) = tx(&m, Direction::In, &input);
        prop_assert!(matches!(v, Verdict::Forward { method: Forward::Tunnel, .. }), "{:?}", v);
        let d = decapsulate(&out, 6080).expect("our own tunnel packet decapsulates");
        prop_assert_eq!(d.kind, m.tunnel.kind);
        prop_assert_eq!(d.outer_dst, m.daddr);
        prop_assert_eq!(&out[d.inner], &ttl_minus_one(&input)[..]);
        let outer = classify(&out).expect("outer classifies");
        prop_assert_eq!(outer.ttl, ttl - 1);
    }

    /// A related ICMP error NAT-ed inbound and then inbound again through the inverse mapping
    /// is the original message (outer TTL aside); the intermediate one has valid checksums.
    #[test]
    fn icmp_nat_round_trip(
        v6 in any::<bool>(), tcp in any::<bool>(), seed in any::<u32>(), dport in 1u16..,
        qlen in 8usize..40, t in 0u8..3,
    ) {
        let mut m = mapping(v6, seed, Forward::Masq);
        m.dport = dport;
        let mut q = flow(&m, tcp, vec![0x42; 32], 50);
        (q.src, q.sport, q.dst, q.dport) = (m.vaddr, m.vport, m.caddr, m.cport);
        let quoted = q.build();
        let l4 = if v6 { 40 } else { 20 };
        let quote = &quoted[..(l4 + qlen).min(quoted.len())];
        let (ty, code) = match (v6, t) {
            (false, 0) => (3, 3),
            (false, 1) => (11, 0),
            (false, _) => (4, 0),
            (true, 0) => (1, 4),
            (true, 1) => (3, 0),
            (true, _) => (2, 0),
        };
        let router = addr(v6, 0x0099_0000);
        let input = icmp_error_packet(router, m.vaddr, 60, ty, code, 1400, quote);
        let (v, mid) = tx(&m, Direction::In, &input);
        prop_assert!(matches!(v, Verdict::Forward { .. }), "{:?}", v);
        let c = classify(&mid).unwrap();
        prop_assert_eq!((c.dst, c.ttl), (m.daddr, 59));
        if !v6 {
            prop_assert_eq!(ones_complement(&mid[l4..]), 0);
        }
        let e = etherparse::SlicedPacket::from_ip(&mid).unwrap();
        prop_assert!(e.net.is_some());
        let mut inv = m;
        (inv.vaddr, inv.vport, inv.daddr, inv.dport) = (m.daddr, m.dport, m.vaddr, m.vport);
        let (_, back) = tx(&inv, Direction::In, &mid);
        let want = icmp_error_packet(router, m.vaddr, 58, ty, code, 1400, quote);
        prop_assert_eq!(back, want);
    }
}
