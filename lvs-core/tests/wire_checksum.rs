//! RFC 1624 incremental checksum updates against full recomputation, on whole packets: a NAT
//! rewrite done with the views and `checksum::update_*` must give exactly the bytes etherparse
//! builds for the rewritten packet, including the UDP rules of spec section 3.2 (an IPv4 UDP
//! checksum of 0 means "none" and gets a full computation; a computed 0 is sent as 0xFFFF).

mod wire_support;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_core::wire::{checksum, proto, tcp, udp, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};
use proptest::prelude::*;
use wire_support::*;

/// The rewrite under test: the address and port on one side (`snat`: source, else
/// destination), and the TTL / hop limit decremented, all checksums updated incrementally.
fn rewrite(ip: &mut [u8], spec: &PacketSpec, snat: bool, addr: IpAddr, port: u16) {
    let l4 = spec.l3_len();
    let (old_addr, old_port);
    let proto_num = spec.protocol();
    match addr {
        IpAddr::V4(a) => {
            let mut p = Ipv4Packet::new_checked(&mut ip[..]).unwrap();
            let old = if snat { p.src_addr() } else { p.dst_addr() };
            if snat {
                p.set_src_addr(a);
            } else {
                p.set_dst_addr(a);
            }
            let mut c = checksum::update_u32(p.checksum(), u32::from(old), u32::from(a));
            let word = |t: u8| u16::from_be_bytes([t, proto_num]);
            let ttl = p.ttl();
            p.set_ttl(ttl - 1);
            c = checksum::update_u16(c, word(ttl), word(ttl - 1));
            p.set_checksum(c);
            old_addr = IpAddr::V4(old);
        }
        IpAddr::V6(a) => {
            let mut p = Ipv6Packet::new_checked(&mut ip[..]).unwrap();
            let old = if snat { p.src_addr() } else { p.dst_addr() };
            if snat {
                p.set_src_addr(a);
            } else {
                p.set_dst_addr(a);
            }
            p.set_hop_limit(p.hop_limit() - 1);
            old_addr = IpAddr::V6(old);
        }
    }
    let addr_update = |c: u16| match (old_addr, addr) {
        (IpAddr::V4(o), IpAddr::V4(n)) => checksum::update_u32(c, u32::from(o), u32::from(n)),
        (IpAddr::V6(o), IpAddr::V6(n)) => checksum::update_u128(c, &o.octets(), &n.octets()),
        _ => unreachable!(),
    };
    let seg = &mut ip[l4..];
    match proto_num {
        proto::TCP => {
            let mut t = TcpPacket::new_checked(seg).unwrap();
            old_port = if snat { t.src_port() } else { t.dst_port() };
            if snat {
                t.set_src_port(port);
            } else {
                t.set_dst_port(port);
            }
            let c = checksum::update_u16(addr_update(t.checksum()), old_port, port);
            t.set_checksum(c);
        }
        proto::UDP => {
            let mut u = UdpPacket::new_checked(seg).unwrap();
            old_port = if snat { u.src_port() } else { u.dst_port() };
            if snat {
                u.set_src_port(port);
            } else {
                u.set_dst_port(port);
            }
            if u.checksum() == 0 {
                // IPv4 "no checksum": IPVS computes a full one (spec 3.2).
                let (s, d) = if snat {
                    (addr, spec.dst())
                } else {
                    (spec.src(), addr)
                };
                u.fill_checksum(&s, &d);
            } else {
                let c = checksum::update_u16(addr_update(u.checksum()), old_port, port);
                u.set_checksum(checksum::udp_nonzero(c));
            }
        }
        _ => unreachable!(),
    }
}

/// The specification of the packet after [`rewrite`].
fn rewritten(spec: &PacketSpec, snat: bool, addr: IpAddr, port: u16) -> PacketSpec {
    let mut want = spec.clone();
    want.ttl -= 1;
    match (&mut want.net, addr) {
        (NetSpec::V4(n), IpAddr::V4(a)) => {
            if snat {
                n.src = a.octets()
            } else {
                n.dst = a.octets()
            }
        }
        (NetSpec::V6(n), IpAddr::V6(a)) => {
            if snat {
                n.src = a.octets()
            } else {
                n.dst = a.octets()
            }
        }
        _ => unreachable!(),
    }
    match &mut want.l4 {
        L4Spec::Tcp {
            src_port, dst_port, ..
        }
        | L4Spec::Udp { src_port, dst_port } => {
            if snat {
                *src_port = port
            } else {
                *dst_port = port
            }
        }
        L4Spec::Echo { .. } => unreachable!(),
    }
    want
}

/// One's-complement addition of two 16-bit words.
fn ones_add(a: u16, b: u16) -> u16 {
    checksum::fold(u64::from(a) + u64::from(b))
}

fn tcp_or_udp() -> impl Strategy<Value = PacketSpec> {
    spec_with(
        prop_oneof![v4_net(), v6_net()],
        prop_oneof![tcp_l4(), udp_l4()],
    )
    .prop_map(|mut s| {
        s.ttl = s.ttl.max(2);
        s
    })
}

/// etherparse writes a TCP checksum that computes to 0 as 0xFFFF; both mean the same sum.
fn normalize_tcp(ip: &mut [u8], spec: &PacketSpec) {
    if spec.protocol() == proto::TCP {
        let off = spec.l3_len() + tcp::CHECKSUM_OFFSET;
        if ip[off..off + 2] == [0, 0] {
            ip[off..off + 2].copy_from_slice(&[0xff, 0xff]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nat_rewrite_incremental_equals_rebuild(
        spec in tcp_or_udp(),
        snat in any::<bool>(),
        v4 in any::<[u8; 4]>(),
        v6 in any::<[u8; 16]>(),
        port in any::<u16>(),
        udp_zero in any::<bool>(),
    ) {
        let mut ip = build(&spec);
        if udp_zero && !spec.is_v6() && spec.protocol() == proto::UDP {
            let off = spec.l3_len() + udp::CHECKSUM_OFFSET;
            ip[off..off + 2].copy_from_slice(&[0, 0]);
        }
        let addr = if spec.is_v6() {
            IpAddr::V6(Ipv6Addr::from(v6))
        } else {
            IpAddr::V4(Ipv4Addr::from(v4))
        };
        rewrite(&mut ip, &spec, snat, addr, port);

        // The same packet, built from scratch by etherparse.
        let want = rewritten(&spec, snat, addr, port);
        let mut expected = build(&want);
        normalize_tcp(&mut ip, &spec);
        normalize_tcp(&mut expected, &spec);
        prop_assert_eq!(ip, expected);
    }

    /// The rare case made certain: the first payload word is chosen so that the rewritten
    /// datagram's checksum computes to 0; both the incremental path and the full path (IPv4
    /// checksum 0) must send 0xFFFF.
    #[test]
    fn udp_computed_zero_is_sent_as_ffff(
        spec in spec_with(prop_oneof![v4_net(), v6_net()], udp_l4()).prop_filter(
            "a payload word and a TTL to decrement",
            |s| s.payload.len() >= 2 && s.ttl >= 2,
        ),
        snat in any::<bool>(),
        v4 in any::<[u8; 4]>(),
        v6 in any::<[u8; 16]>(),
        port in any::<u16>(),
        udp_zero in any::<bool>(),
    ) {
        let addr = if spec.is_v6() {
            IpAddr::V6(Ipv6Addr::from(v6))
        } else {
            IpAddr::V4(Ipv4Addr::from(v4))
        };
        let mut spec = spec;
        let want = rewritten(&spec, snat, addr, port);
        let built = build(&want);
        let off = want.l3_len() + udp::CHECKSUM_OFFSET;
        let c = u16::from_be_bytes([built[off], built[off + 1]]);
        prop_assume!(c != 0xffff);
        // Adding C to one word makes the sum 0xFFFF, so the checksum computes to 0.
        let w = u16::from_be_bytes([spec.payload[0], spec.payload[1]]);
        spec.payload[..2].copy_from_slice(&ones_add(w, c).to_be_bytes());
        let want = rewritten(&spec, snat, addr, port);
        let expected = build(&want);
        prop_assert_eq!(&expected[off..off + 2], &[0xff, 0xff]);

        let mut ip = build(&spec);
        if udp_zero && !spec.is_v6() {
            let o = spec.l3_len() + udp::CHECKSUM_OFFSET;
            ip[o..o + 2].copy_from_slice(&[0, 0]);
        }
        rewrite(&mut ip, &spec, snat, addr, port);
        prop_assert_eq!(ip, expected);
    }

    /// Field-level: for any 16-bit word change in a UDP datagram, the incremental update with
    /// the 0 -> 0xFFFF rule equals `fill_checksum`.
    #[test]
    fn udp_incremental_equals_fill(
        payload in proptest::collection::vec(any::<u8>(), 2..40),
        word in 0usize..20,
        new in any::<u16>(),
        v6 in any::<bool>(),
    ) {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap())
        } else {
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap())
        };
        let mut b = vec![0u8; 8];
        b.extend_from_slice(&payload);
        let len = b.len() as u16;
        let mut u = UdpPacket::new_unchecked(&mut b[..]);
        u.set_src_port(1);
        u.set_dst_port(2);
        u.set_len(len);
        u.fill_checksum(&src, &dst);
        // Change one word of the payload (never the checksum word itself).
        let at = 8 + (word * 2) % ((payload.len() / 2) * 2);
        let old = u16::from_be_bytes([b[at], b[at + 1]]);
        b[at..at + 2].copy_from_slice(&new.to_be_bytes());
        let mut u = UdpPacket::new_checked(&mut b[..]).unwrap();
        let inc = checksum::udp_nonzero(checksum::update_u16(u.checksum(), old, new));
        u.fill_checksum(&src, &dst);
        prop_assert_eq!(inc, u.checksum());
        prop_assert!(u.verify_checksum(&src, &dst));
    }
}

/// The plain RFC 1071 sum: 16-bit big-endian words, end-around carry at every step.
fn reference_sum(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for pair in data.chunks(2) {
        let w = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        acc += u32::from(w);
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// `data` and `accumulate` (folded, alone and combined) give the reference sum for any
    /// length, including all-zero, all-ones and carry-heavy data.
    #[test]
    fn data_equals_the_reference_sum(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        fill in prop_oneof![Just(None), Just(Some(0u8)), Just(Some(0xffu8)), Just(Some(0xfeu8))],
        split in 0usize..150,
    ) {
        let bytes = match fill {
            Some(b) => vec![b; bytes.len()],
            None => bytes,
        };
        prop_assert_eq!(checksum::data(&bytes), reference_sum(&bytes));
        // Sums of an even-length head and the rest combine into the whole's.
        let at = (split * 2).min(bytes.len() & !1);
        let (a, b) = bytes.split_at(at);
        prop_assert_eq!(
            checksum::fold(checksum::accumulate(a) + checksum::accumulate(b)),
            reference_sum(&bytes)
        );
        prop_assert_eq!(checksum::combine(&[checksum::data(a), checksum::data(b)]), reference_sum(&bytes));
    }
}
