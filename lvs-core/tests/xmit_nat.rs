//! NAT rewrite (spec 3.2) checked against etherparse: the rewritten packet must be exactly
//! the packet etherparse builds with the new address, port and TTL; NAT in then NAT out on
//! the reply restores the client's view of the tuple.

#[path = "wire_support/mod.rs"]
mod wire_support;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_core::wire::{classify, proto, tcp, udp};
use lvs_core::xmit::{nat_in, nat_out, NatVerdict as Verdict};
use proptest::prelude::*;
use wire_support::*;

fn tcp_or_udp() -> impl Strategy<Value = PacketSpec> {
    spec_with(
        prop_oneof![v4_net(), v6_net()],
        prop_oneof![tcp_l4(), udp_l4()],
    )
}

fn new_addr(spec: &PacketSpec, v4: [u8; 4], v6: [u8; 16]) -> IpAddr {
    if spec.is_v6() {
        IpAddr::V6(Ipv6Addr::from(v6))
    } else {
        IpAddr::V4(Ipv4Addr::from(v4))
    }
}

/// `spec` with one side's address and port replaced and the TTL decremented.
fn expected(spec: &PacketSpec, dst_side: bool, addr: IpAddr, port: u16) -> PacketSpec {
    let mut want = spec.clone();
    want.ttl -= 1;
    match (&mut want.net, addr) {
        (NetSpec::V4(n), IpAddr::V4(a)) if dst_side => n.dst = a.octets(),
        (NetSpec::V4(n), IpAddr::V4(a)) => n.src = a.octets(),
        (NetSpec::V6(n), IpAddr::V6(a)) if dst_side => n.dst = a.octets(),
        (NetSpec::V6(n), IpAddr::V6(a)) => n.src = a.octets(),
        _ => unreachable!(),
    }
    match &mut want.l4 {
        L4Spec::Tcp {
            src_port, dst_port, ..
        }
        | L4Spec::Udp { src_port, dst_port } => {
            if dst_side {
                *dst_port = port
            } else {
                *src_port = port
            }
        }
        L4Spec::Echo { .. } => unreachable!(),
    }
    want
}

/// etherparse writes a TCP checksum that computes to 0 as 0xFFFF (the same sum); IPVS uses
/// the incremental result as it is, which may be 0.
fn normalize_tcp(pkt: &mut [u8], spec: &PacketSpec) {
    if spec.protocol() == proto::TCP {
        let off = spec.l3_len() + tcp::CHECKSUM_OFFSET;
        if pkt[off..off + 2] == [0, 0] {
            pkt[off..off + 2].copy_from_slice(&[0xff, 0xff]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn nat_matches_etherparse(
        spec in tcp_or_udp(),
        dst_side in any::<bool>(),
        v4 in any::<[u8; 4]>(),
        v6 in any::<[u8; 16]>(),
        port in any::<u16>(),
        udp_zero in any::<bool>(),
    ) {
        prop_assume!(spec.ttl >= 2);
        let mut pkt = build(&spec);
        if udp_zero && spec.protocol() == proto::UDP {
            // A zero UDP checksum gets a full one (both families, as IPVS does).
            let off = spec.l3_len() + udp::CHECKSUM_OFFSET;
            pkt[off..off + 2].copy_from_slice(&[0, 0]);
        }
        let c = classify(&pkt).unwrap();
        let addr = new_addr(&spec, v4, v6);
        let verdict = if dst_side {
            nat_in(&mut pkt, &c, addr, port)
        } else {
            nat_out(&mut pkt, &c, addr, port)
        };
        prop_assert_eq!(verdict, Ok(Verdict::Forward));
        let want = expected(&spec, dst_side, addr, port);
        let mut want_bytes = build(&want);
        normalize_tcp(&mut pkt, &spec);
        normalize_tcp(&mut want_bytes, &spec);
        prop_assert_eq!(pkt, want_bytes);
    }

    /// Client -> VIP, DNAT to the RIP; the real server answers RIP -> client; SNAT back to the
    /// VIP: the client sees the exact reverse of what it sent, and every checksum verifies.
    #[test]
    fn nat_in_then_out_restores_the_tuple(
        spec in tcp_or_udp(),
        v4 in any::<[u8; 4]>(),
        v6 in any::<[u8; 16]>(),
        rport in any::<u16>(),
    ) {
        prop_assume!(spec.ttl >= 2);
        let mut req = build(&spec);
        let before = classify(&req).unwrap();
        let rip = new_addr(&spec, v4, v6);
        prop_assert_eq!(nat_in(&mut req, &before, rip, rport), Ok(Verdict::Forward));
        let at_rs = classify(&req).unwrap();
        prop_assert_eq!((at_rs.src, at_rs.src_port), (before.src, before.src_port));
        prop_assert_eq!((at_rs.dst, at_rs.dst_port), (rip, rport));

        // The reply the real server sends (etherparse builds it).
        let mut reply_spec = spec.clone();
        match &mut reply_spec.net {
            NetSpec::V4(n) => {
                n.src = match rip { IpAddr::V4(a) => a.octets(), _ => unreachable!() };
                n.dst = match before.src { IpAddr::V4(a) => a.octets(), _ => unreachable!() };
            }
            NetSpec::V6(n) => {
                n.src = match rip { IpAddr::V6(a) => a.octets(), _ => unreachable!() };
                n.dst = match before.src { IpAddr::V6(a) => a.octets(), _ => unreachable!() };
            }
        }
        match &mut reply_spec.l4 {
            L4Spec::Tcp { src_port, dst_port, .. } | L4Spec::Udp { src_port, dst_port } => {
                *src_port = rport;
                *dst_port = before.src_port;
            }
            L4Spec::Echo { .. } => unreachable!(),
        }
        let mut reply = build(&reply_spec);
        let r = classify(&reply).unwrap();
        prop_assert_eq!(nat_out(&mut reply, &r, before.dst, before.dst_port), Ok(Verdict::Forward));
        let at_client = classify(&reply).unwrap();
        prop_assert_eq!((at_client.src, at_client.src_port), (before.dst, before.dst_port));
        prop_assert_eq!((at_client.dst, at_client.dst_port), (before.src, before.src_port));
        let seg = &reply[at_client.l4_range()];
        let ok = if spec.protocol() == proto::TCP {
            lvs_core::wire::TcpPacket::new_checked(seg).unwrap().verify_checksum(&at_client.src, &at_client.dst)
        } else {
            lvs_core::wire::UdpPacket::new_checked(seg).unwrap().verify_checksum(&at_client.src, &at_client.dst)
        };
        prop_assert!(ok);
    }

    /// The rewritten datagram's checksum is made to compute to 0 (first payload word chosen
    /// for it): both the incremental and the full path must send 0xFFFF.
    #[test]
    fn udp_computed_zero_is_sent_as_ffff(
        spec in spec_with(prop_oneof![v4_net(), v6_net()], udp_l4())
            .prop_filter("payload word and TTL", |s| s.payload.len() >= 2 && s.ttl >= 2),
        dst_side in any::<bool>(),
        v4 in any::<[u8; 4]>(),
        v6 in any::<[u8; 16]>(),
        port in any::<u16>(),
        udp_zero in any::<bool>(),
    ) {
        let addr = new_addr(&spec, v4, v6);
        let off = spec.l3_len() + udp::CHECKSUM_OFFSET;
        let built = build(&expected(&spec, dst_side, addr, port));
        let c = u16::from_be_bytes([built[off], built[off + 1]]);
        prop_assume!(c != 0xffff);
        // Adding C (one's complement) to a covered word makes the sum 0xFFFF: checksum 0.
        let mut spec = spec;
        let w = u16::from_be_bytes([spec.payload[0], spec.payload[1]]);
        let w = lvs_core::wire::checksum::fold(u64::from(w) + u64::from(c));
        spec.payload[..2].copy_from_slice(&w.to_be_bytes());
        let want = build(&expected(&spec, dst_side, addr, port));
        prop_assert_eq!(&want[off..off + 2], &[0xff, 0xff]);

        let mut pkt = build(&spec);
        if udp_zero {
            pkt[off..off + 2].copy_from_slice(&[0, 0]);
        }
        let cl = classify(&pkt).unwrap();
        let v = if dst_side { nat_in(&mut pkt, &cl, addr, port) } else { nat_out(&mut pkt, &cl, addr, port) };
        prop_assert_eq!(v, Ok(Verdict::Forward));
        prop_assert_eq!(pkt, want);
    }

    /// TTL / hop limit <= 1: Time Exceeded, and not a byte changed.
    #[test]
    fn expiring_ttl_is_time_exceeded(spec in tcp_or_udp(), ttl in 0u8..=1, dst_side in any::<bool>()) {
        let mut spec = spec;
        spec.ttl = ttl;
        let mut pkt = build(&spec);
        let orig = pkt.clone();
        let c = classify(&pkt).unwrap();
        let addr = new_addr(&spec, [10, 0, 0, 1], [0xfd; 16]);
        let v = if dst_side { nat_in(&mut pkt, &c, addr, 1) } else { nat_out(&mut pkt, &c, addr, 1) };
        prop_assert_eq!(v, Ok(Verdict::TimeExceeded));
        prop_assert_eq!(pkt, orig);
    }
}
