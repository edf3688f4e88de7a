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

/// An IPv4 or IPv6 packet of any protocol number from `src` to `dst`, its payload raw bytes
/// (not parsed as a transport header by the builder): a fragment when `frag` is given
/// (offset in 8-byte units, more fragments), with 4 bytes of IPv4 options when `options`.
#[allow(clippy::too_many_arguments)]
fn raw_ip(
    src: core::net::IpAddr,
    dst: core::net::IpAddr,
    protocol: u8,
    ttl: u8,
    df: bool,
    frag: Option<(u16, bool)>,
    options: bool,
    payload: &[u8],
) -> Vec<u8> {
    use core::net::IpAddr;
    use etherparse::{IpNumber, Ipv4Header, Ipv4Options, Ipv6FragmentHeader, Ipv6Header};
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = Ipv4Header::new(
                payload.len() as u16,
                ttl,
                IpNumber(protocol),
                s.octets(),
                d.octets(),
            )
            .unwrap();
            h.dont_fragment = df;
            if let Some((offset, more)) = frag {
                h.fragment_offset = offset.try_into().unwrap();
                h.more_fragments = more;
            }
            if options {
                h.options = Ipv4Options::from([1, 1, 1, 0]);
            }
            h.total_len = (h.header_len() + payload.len()) as u16;
            h.header_checksum = h.calc_header_checksum();
            h.write(&mut out).unwrap();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let frag_len = if frag.is_some() { 8 } else { 0 };
            let h = Ipv6Header {
                next_header: if frag.is_some() {
                    IpNumber::IPV6_FRAGMENTATION_HEADER
                } else {
                    IpNumber(protocol)
                },
                payload_length: (frag_len + payload.len()) as u16,
                hop_limit: ttl,
                source: s.octets(),
                destination: d.octets(),
                ..Default::default()
            };
            h.write(&mut out).unwrap();
            if let Some((offset, more)) = frag {
                Ipv6FragmentHeader::new(IpNumber(protocol), offset.try_into().unwrap(), more, 7)
                    .write(&mut out)
                    .unwrap();
            }
        }
        _ => unreachable!(),
    }
    out.extend_from_slice(payload);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// DR changes nothing above the IP header, so both paths forward any protocol (ICMP
    /// included: errors about a connection and queries are the general path's decision),
    /// fragments, IPv4 options and IPv6 fragment headers, short transport headers: the fast
    /// path takes the plain ones and agrees with the general path on all of them.
    #[test]
    fn dr_of_any_protocol_fragment_or_option(
        v6 in any::<bool>(), mixed in any::<bool>(), seed in any::<u32>(),
        protocol in prop_oneof![Just(1u8), Just(6), Just(17), Just(47), Just(58), Just(132), any::<u8>()],
        payload in proptest::collection::vec(any::<u8>(), 0..80),
        ttl in 0u8..=255, df in any::<bool>(),
        frag in proptest::option::of((0u16..4, any::<bool>())), options in any::<bool>(),
        mtu in prop_oneof![Just(0u32), Just(1500), 40u32..140],
        corrupt in proptest::option::of((any::<usize>(), 1u8..)),
    ) {
        let mut m = Mapping::new(
            (addr(v6, seed.wrapping_mul(3)), 1024 + (seed % 60000) as u16),
            (addr(v6, seed.wrapping_mul(5) ^ 0x55), 80),
            (addr(v6 != mixed, seed.wrapping_mul(7) ^ 0xaa), 80),
        );
        m.forward = Forward::DirectRoute;
        m.route_mtu = mtu;
        let pkt = raw_ip(m.caddr, m.vaddr, protocol, ttl, df, frag, options, &payload);
        if classify(&pkt).is_err() {
            // Not a packet the director would hand to the rewrite.
            return Ok(());
        }
        both(&pkt, corrupt, &m, Direction::In)?;
    }
}
