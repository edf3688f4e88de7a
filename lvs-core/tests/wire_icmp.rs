//! ICMP and ICMPv6 errors quoting TCP/UDP packets, built with etherparse: classification of
//! the error, the lax quoted view, and a NAT of the quoted packet (spec 3.7) compared byte for
//! byte with the error etherparse builds around the rewritten packet.

mod wire_support;

use etherparse::{icmpv4, icmpv6, Icmpv4Type, Icmpv6Type};
use lvs_core::wire::{
    classify, icmpv4 as v4, icmpv6 as v6, Error, Icmpv4Packet, Icmpv6Packet, Layer, LenSource,
    QuotedPacket,
};
use proptest::prelude::*;
use wire_support::*;

fn ports(spec: &PacketSpec) -> Option<(u16, u16)> {
    match spec.l4 {
        L4Spec::Tcp {
            src_port, dst_port, ..
        }
        | L4Spec::Udp { src_port, dst_port } => Some((src_port, dst_port)),
        L4Spec::Echo { .. } => None,
    }
}

fn v4_error_kind() -> impl Strategy<Value = Icmpv4Type> {
    prop_oneof![
        Just(Icmpv4Type::TimeExceeded(
            icmpv4::TimeExceededCode::TtlExceededInTransit
        )),
        Just(Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::Port
        )),
        (68u16..1500).prop_map(|mtu| Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu }
        )),
    ]
}

/// Checks the quoted view against the specification of the quoted packet.
fn check_quote(q: &QuotedPacket<&[u8]>, spec: &PacketSpec) -> Result<(), TestCaseError> {
    prop_assert_eq!(q.is_ipv6(), spec.is_v6());
    prop_assert_eq!(q.protocol(), spec.protocol());
    prop_assert_eq!(q.src_addr(), spec.src());
    prop_assert_eq!(q.dst_addr(), spec.dst());
    prop_assert_eq!(q.l4_offset(), spec.l3_len());
    prop_assert!(!q.is_fragment() && !q.is_later_fragment());
    prop_assert!(q.l4().len() >= 8);
    if let Some((s, d)) = ports(spec) {
        prop_assert_eq!((q.src_port(), q.dst_port()), (s, d));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn icmpv4_error_quotes(inner in spec_with(v4_net(), l4_spec()), kind in v4_error_kind()) {
        let orig = build(&inner);
        let err = icmpv4_error(&orig, kind.clone());
        let c = classify(&err).unwrap();
        prop_assert!(c.icmp_error);
        let e = etherparse::Icmpv4Header::with_checksum(kind.clone(), &[]).to_bytes();
        prop_assert_eq!((c.icmp_type, c.icmp_code), (e[0], e[1]));
        let msg = Icmpv4Packet::new_checked(&err[c.l4_range()]).unwrap();
        prop_assert!(msg.verify_checksum());
        if let Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu }) = kind {
            prop_assert_eq!(msg.next_hop_mtu(), next_hop_mtu);
        }
        let q = msg.quoted().unwrap();
        check_quote(&q, &inner)?;
        let ip = q.ipv4().unwrap();
        prop_assert!(ip.verify_checksum());
        prop_assert_eq!(usize::from(ip.total_len()), orig.len());
    }

    #[test]
    fn icmpv6_error_quotes(inner in spec_with(v6_net(), l4_spec()), extra in 0usize..64) {
        let orig = build(&inner);
        let kind = Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded);
        let err = icmpv6_error(&orig, inner.l3_len() + 8 + extra, kind);
        let c = classify(&err).unwrap();
        prop_assert!(c.icmp_error);
        prop_assert_eq!((c.icmp_type, c.icmp_code), (v6::types::TIME_EXCEEDED, 0));
        let msg = Icmpv6Packet::new_checked(&err[c.l4_range()]).unwrap();
        prop_assert!(msg.verify_checksum(&c.src, &c.dst));
        let q = msg.quoted().unwrap();
        check_quote(&q, &inner)?;
    }

    /// NAT of an ICMP error travelling to the client (spec 3.7, outgoing direction): quoted
    /// destination address and port become the VIP's, the quoted IPv4 header checksum and the
    /// ICMP checksum are recomputed. TCP only: the quote then ends before the TCP checksum,
    /// which IPVS leaves alone.
    #[test]
    fn quoted_nat_matches_rebuilt_error(
        inner in spec_with(v4_net(), tcp_l4()),
        kind in v4_error_kind(),
        vip in any::<[u8; 4]>(),
        vport in any::<u16>(),
    ) {
        let mut err = icmpv4_error(&build(&inner), kind.clone());
        let c = classify(&err).unwrap();
        {
            let mut msg = Icmpv4Packet::new_checked(&mut err[c.l4_range()]).unwrap();
            let mut q = msg.quoted_mut().unwrap();
            q.set_dst_port(vport);
            let mut ip = q.ipv4_mut().unwrap();
            ip.set_dst_addr(vip.into());
            ip.fill_checksum();
            msg.fill_checksum();
        }
        let mut want = inner.clone();
        if let NetSpec::V4(n) = &mut want.net {
            n.dst = vip;
        }
        if let L4Spec::Tcp { dst_port, .. } = &mut want.l4 {
            *dst_port = vport;
        }
        prop_assert_eq!(err, icmpv4_error(&build(&want), kind));
    }

    /// Quoting fewer than 8 L4 bytes is a precise error at the quoted L4 header.
    #[test]
    fn short_quote_is_precise(inner in packet_spec(), short in 1usize..8) {
        let orig = build(&inner);
        let cut = inner.l3_len() + 8 - short;
        let e = if inner.is_v6() {
            let err = icmpv6_error(&orig, cut, Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded));
            Icmpv6Packet::new_checked(&err[40..]).unwrap().quoted().unwrap_err()
        } else {
            let mut o = orig.clone();
            o.truncate(cut);
            let b = etherparse::PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
                .icmpv4(Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit));
            let mut err = Vec::new();
            b.write(&mut err, &o).unwrap();
            Icmpv4Packet::new_checked(&err[20..]).unwrap().quoted().unwrap_err()
        };
        prop_assert_eq!(e, Error::Truncated {
            layer: Layer::QuotedL4,
            offset: 8 + inner.l3_len(),
            required: 8,
            found: 8 - short,
            len_source: LenSource::Slice,
        });
    }
}

#[test]
fn error_type_sets_follow_ipvs() {
    // ICMPv4: only 3, 4, 11 are "related" (ip_vs_in_icmp).
    let related: Vec<u8> = (0..=255u8).filter(|&t| v4::is_error_type(t)).collect();
    assert_eq!(related, vec![3, 4, 11]);
    // ICMPv6: every type below 128.
    assert!((0..128u8).all(v6::is_error_type));
    assert!(!(128..=255u8).any(v6::is_error_type));
}
