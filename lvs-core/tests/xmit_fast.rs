//! `transmit`'s fast path against the general path (`transmit_general`): for well-formed
//! packets of every method, direction, family and protocol, for packets the fast path must
//! leave alone (TTL 1, too big, UDP checksum 0, loopback DNAT, family mismatch), and for bytes
//! corrupted after classification, both give the same verdict and the same bytes.

mod xmit_support;

use lvs_core::rules::{Forward, TunnelConfig, TunnelCsum, TunnelType};
use lvs_core::wire::classify;
use lvs_core::xmit::{transmit, transmit_general, Direction, Mapping, Verdict};
use proptest::prelude::*;
use xmit_support::*;

const HEADROOM: usize = 40;

/// Runs both paths on the same input; asserts they agree; returns the verdict.
fn both(
    pkt: &[u8],
    corrupt: Option<(usize, u8)>,
    m: &Mapping,
    dir: Direction,
) -> Result<Verdict, TestCaseError> {
    let mut buf = vec![0u8; HEADROOM + pkt.len()];
    buf[HEADROOM..].copy_from_slice(pkt);
    let c = classify(&buf[HEADROOM..]).expect("input classifies");
    // Bytes changed after classification: the summary no longer describes them.
    if let Some((at, x)) = corrupt {
        let at = HEADROOM + at % pkt.len();
        buf[at] ^= x;
    }
    let mut general = buf.clone();
    let (mut out, mut general_out) = ([0u8; 1280], [0u8; 1280]);
    let v = transmit(&mut buf, HEADROOM, &c, m, dir, &mut out);
    let g = transmit_general(&mut general, HEADROOM, &c, m, dir, &mut general_out);
    prop_assert_eq!(v, g);
    prop_assert_eq!(&buf, &general);
    prop_assert_eq!(&out[..], &general_out[..]);
    Ok(v)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fast_path_equals_general_path(
        v6 in any::<bool>(), tcp in any::<bool>(), seed in any::<u32>(),
        method in 0u8..4, out_dir in any::<bool>(), dport in 1u16..,
        payload in proptest::collection::vec(any::<u8>(), 0..120),
        ttl in 0u8..=255, udp_csum in any::<bool>(), df in any::<bool>(),
        mtu in prop_oneof![Just(0u32), Just(1500), 60u32..200],
        loopback in any::<bool>(), mixed in any::<bool>(),
        corrupt in proptest::option::of((any::<usize>(), 1u8..)),
        kind in 0usize..3, csum in 0usize..3, tun_port in prop_oneof![Just(0u16), Just(6080)],
        pmtu_disc in any::<bool>(), tos in any::<u8>(), id in any::<u16>(),
    ) {
        let forward = [Forward::Masq, Forward::DirectRoute, Forward::Tunnel, Forward::Local]
            [usize::from(method)];
        let mut m = Mapping::new(
            (addr(v6, seed.wrapping_mul(3)), 1024 + (seed % 60000) as u16),
            (addr(v6, seed.wrapping_mul(5) ^ 0x55), 80),
            (addr(v6 != mixed, seed.wrapping_mul(7) ^ 0xaa), dport),
        );
        if loopback {
            m.daddr = if v6 { "::1".parse().unwrap() } else { "127.0.0.9".parse().unwrap() };
        }
        m.forward = forward;
        m.route_mtu = mtu;
        m.tunnel = TunnelConfig {
            kind: [TunnelType::Ipip, TunnelType::Gue, TunnelType::Gre][kind],
            port: tun_port,
            csum: [TunnelCsum::NoCsum, TunnelCsum::Csum, TunnelCsum::RemCsum][csum],
        };
        m.pmtu_disc = pmtu_disc;
        m.ip_id = id;
        m.local_v4 = "198.51.100.254".parse().unwrap();
        m.local_v6 = "2001:db8:ff::fe".parse().unwrap();
        let mut f = flow(&m, tcp, payload, ttl);
        f.df = df;
        f.tos = tos;
        f.udp_csum = udp_csum || v6;
        let dir = if out_dir {
            // A reply: from the real server to the client.
            (f.src, f.sport, f.dst, f.dport) = (m.daddr, m.dport, m.caddr, m.cport);
            if mixed {
                return Ok(());
            }
            Direction::Out
        } else {
            Direction::In
        };
        both(&f.build(), corrupt, &m, dir)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A summary of another packet (other family, protocol, length, header offsets) given
    /// with these bytes, as a caller of `Director::handle_classified` could get wrong: both
    /// paths re-validate before they change anything, agree, and never panic.
    #[test]
    fn summary_of_another_packet(
        a_v6 in any::<bool>(), a_tcp in any::<bool>(), a_len in 0usize..120, a_ttl in 0u8..=255,
        b_v6 in any::<bool>(), b_tcp in any::<bool>(), b_len in 0usize..120, b_ttl in 0u8..=255,
        seed in any::<u32>(), method in 0u8..4, out_dir in any::<bool>(),
        cut in 0usize..200,
    ) {
        let forward = [Forward::Masq, Forward::DirectRoute, Forward::Tunnel, Forward::Local]
            [usize::from(method)];
        let mapping = |v6: bool| {
            let mut m = Mapping::new(
                (addr(v6, seed.wrapping_mul(3)), 1024 + (seed % 60000) as u16),
                (addr(v6, seed.wrapping_mul(5) ^ 0x55), 80),
                (addr(v6, seed.wrapping_mul(7) ^ 0xaa), 8080),
            );
            m.forward = forward;
            m.route_mtu = 1500;
            m.local_v4 = "198.51.100.254".parse().unwrap();
            m.local_v6 = "2001:db8:ff::fe".parse().unwrap();
            m
        };
        let (ma, mb) = (mapping(a_v6), mapping(b_v6));
        let a = flow(&ma, a_tcp, vec![0xa5; a_len], a_ttl).build();
        let mut b = flow(&mb, b_tcp, vec![0x5a; b_len], b_ttl).build();
        // Also shorter than its header says.
        b.truncate(b.len().min(cut.max(1)));
        let c = classify(&a).expect("input classifies");
        let dir = if out_dir { Direction::Out } else { Direction::In };
        let mut buf = vec![0u8; HEADROOM + b.len()];
        buf[HEADROOM..].copy_from_slice(&b);
        let mut general = buf.clone();
        let (mut out, mut general_out) = ([0u8; 1280], [0u8; 1280]);
        let v = transmit(&mut buf, HEADROOM, &c, &mb, dir, &mut out);
        let g = transmit_general(&mut general, HEADROOM, &c, &mb, dir, &mut general_out);
        prop_assert_eq!(v, g);
        prop_assert_eq!(&buf, &general);
    }
}

/// An IPv4 header checksum broken after classification (`classify` verifies it, as `ip_rcv`
/// does; the rewrite does not verify it again): both paths forward the packet, and their
/// incremental updates leave the header's sum exactly as far from valid as it was.
#[test]
fn a_checksum_broken_after_classify_stays_as_broken() {
    for (forward, dir) in [
        (Forward::DirectRoute, Direction::In),
        (Forward::Masq, Direction::In),
        (Forward::Masq, Direction::Out),
    ] {
        let mut m = Mapping::new(
            (addr(false, 3), 40000),
            (addr(false, 5), 80),
            (addr(false, 7), 8080),
        );
        m.forward = forward;
        m.route_mtu = 1500;
        let pkt = flow(&m, true, vec![7; 20], 64).build();
        let header_sum = |b: &[u8]| lvs_core::wire::checksum::data(&b[..20]);
        // Byte 10 is the checksum's high byte.
        let v = both(&pkt, Some((10, 0x01)), &m, dir).unwrap();
        let Verdict::Forward { start, len, .. } = v else {
            panic!("{forward:?} {dir:?}: {v:?}");
        };
        let mut expect = pkt.clone();
        expect[10] ^= 0x01;
        let broken = header_sum(&expect);
        assert_ne!(broken, 0xffff);
        let mut buf = vec![0u8; HEADROOM + pkt.len()];
        buf[HEADROOM..].copy_from_slice(&expect);
        let c = classify(&pkt).unwrap();
        let _ = transmit(&mut buf, HEADROOM, &c, &m, dir, &mut [0u8; 1280]);
        assert_eq!(
            header_sum(&buf[start..start + len]),
            broken,
            "{forward:?} {dir:?}"
        );
    }
}
