//! The views and `classify` checked field by field against etherparse, over packets etherparse
//! builds from random specifications (IPv4 with options, IPv6 with extension headers, TCP with
//! options, UDP, ICMP / ICMPv6, plain and inside Ethernet with or without an 802.1Q tag).

mod wire_support;

use core::net::IpAddr;

use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use lvs_core::wire::{
    classify, classify_ethernet, tcp, EthernetFrame, Family, Icmpv4Packet, Icmpv6Packet,
    Ipv4Packet, Ipv6Packet, Reason, TcpPacket, UdpPacket,
};
use proptest::prelude::*;
use wire_support::*;

/// Checks every view over `ip` (an IP packet) against etherparse's parse of the same bytes.
fn check_views(spec: &PacketSpec, ip: &[u8]) -> Result<(), TestCaseError> {
    let h = PacketHeaders::from_ip_slice(ip).expect("etherparse parses what it built");
    let (src, dst) = (spec.src(), spec.dst());
    let l4_off = spec.l3_len();
    match h.net.as_ref().unwrap() {
        NetHeaders::Ipv4(e, _) => {
            let p = Ipv4Packet::new_checked(ip).unwrap();
            prop_assert_eq!(p.version(), 4);
            prop_assert_eq!(p.header_len(), usize::from(e.ihl()) * 4);
            prop_assert_eq!(p.dscp(), e.dscp.value());
            prop_assert_eq!(p.ecn(), e.ecn.value());
            prop_assert_eq!(p.total_len(), e.total_len);
            prop_assert_eq!(p.ident(), e.identification);
            prop_assert_eq!(p.dont_frag(), e.dont_fragment);
            prop_assert_eq!(p.more_frags(), e.more_fragments);
            prop_assert_eq!(p.frag_offset(), e.fragment_offset.value() * 8);
            prop_assert_eq!(p.ttl(), e.time_to_live);
            prop_assert_eq!(p.protocol(), e.protocol.0);
            prop_assert_eq!(p.checksum(), e.header_checksum);
            prop_assert_eq!(p.checksum(), e.calc_header_checksum());
            prop_assert_eq!(p.src_addr().octets(), e.source);
            prop_assert_eq!(p.dst_addr().octets(), e.destination);
            prop_assert_eq!(p.options(), e.options.as_slice());
            prop_assert_eq!(p.payload().len(), ip.len() - p.header_len());
            prop_assert!(p.verify_checksum());
            // Refill from zero: the same checksum etherparse wrote.
            let mut copy = ip.to_vec();
            let mut q = Ipv4Packet::new_checked(&mut copy[..]).unwrap();
            q.set_checksum(0);
            prop_assert!(!q.verify_checksum() || e.header_checksum == 0);
            q.fill_checksum();
            prop_assert_eq!(q.checksum(), e.header_checksum);
        }
        NetHeaders::Ipv6(e, exts) => {
            let p = Ipv6Packet::new_checked(ip).unwrap();
            prop_assert_eq!(p.version(), 6);
            prop_assert_eq!(p.traffic_class(), e.traffic_class);
            prop_assert_eq!(p.flow_label(), e.flow_label.value());
            prop_assert_eq!(p.payload_len(), e.payload_length);
            prop_assert_eq!(p.next_header(), e.next_header.0);
            prop_assert_eq!(p.hop_limit(), e.hop_limit);
            prop_assert_eq!(p.src_addr().octets(), e.source);
            prop_assert_eq!(p.dst_addr().octets(), e.destination);
            let t = p.transport().unwrap();
            prop_assert_eq!(t.offset, 40 + exts.header_len());
            prop_assert_eq!(t.offset, l4_off);
            prop_assert_eq!(t.protocol, spec.protocol());
            prop_assert_eq!(t.fragment, None);
        }
    }
    let seg = &ip[l4_off..];
    match h.transport.as_ref().unwrap() {
        TransportHeader::Tcp(e) => {
            let p = TcpPacket::new_checked(seg).unwrap();
            prop_assert_eq!(p.src_port(), e.source_port);
            prop_assert_eq!(p.dst_port(), e.destination_port);
            prop_assert_eq!(p.seq_number(), e.sequence_number);
            prop_assert_eq!(p.ack_number(), e.acknowledgment_number);
            prop_assert_eq!(p.header_len(), e.header_len());
            prop_assert_eq!(p.fin(), e.fin);
            prop_assert_eq!(p.syn(), e.syn);
            prop_assert_eq!(p.rst(), e.rst);
            prop_assert_eq!(p.ack(), e.ack);
            prop_assert_eq!(p.flags() & tcp::flags::CWR != 0, e.cwr);
            prop_assert_eq!(p.flags() & tcp::flags::ECE != 0, e.ece);
            prop_assert_eq!(p.flags() & tcp::flags::URG != 0, e.urg);
            prop_assert_eq!(p.flags() & tcp::flags::PSH != 0, e.psh);
            prop_assert_eq!(p.window_len(), e.window_size);
            prop_assert_eq!(p.checksum(), e.checksum);
            prop_assert_eq!(p.urgent_at(), e.urgent_pointer);
            prop_assert_eq!(p.options(), e.options.as_slice());
            prop_assert_eq!(p.payload(), &spec.payload[..]);
            prop_assert!(p.verify_checksum(&src, &dst));
            let mut copy = seg.to_vec();
            let mut q = TcpPacket::new_checked(&mut copy[..]).unwrap();
            q.set_checksum(0);
            q.fill_checksum(&src, &dst);
            prop_assert_eq!(q.checksum(), e.checksum);
        }
        TransportHeader::Udp(e) => {
            let p = UdpPacket::new_checked(seg).unwrap();
            prop_assert_eq!(p.src_port(), e.source_port);
            prop_assert_eq!(p.dst_port(), e.destination_port);
            prop_assert_eq!(p.len(), e.length);
            prop_assert_eq!(p.checksum(), e.checksum);
            prop_assert_eq!(p.payload(), &spec.payload[..]);
            prop_assert!(p.verify_checksum(&src, &dst));
            let mut copy = seg.to_vec();
            let mut q = UdpPacket::new_checked(&mut copy[..]).unwrap();
            q.set_checksum(0);
            q.fill_checksum(&src, &dst);
            prop_assert_eq!(q.checksum(), e.checksum);
        }
        TransportHeader::Icmpv4(e) => {
            let p = Icmpv4Packet::new_checked(seg).unwrap();
            let b = e.to_bytes();
            prop_assert_eq!(p.msg_type(), b[0]);
            prop_assert_eq!(p.code(), b[1]);
            prop_assert_eq!(p.checksum(), e.checksum);
            prop_assert_eq!(p.rest_of_header().to_be_bytes(), [b[4], b[5], b[6], b[7]]);
            prop_assert!(p.verify_checksum());
            prop_assert!(!p.is_error());
            let mut copy = seg.to_vec();
            let mut q = Icmpv4Packet::new_checked(&mut copy[..]).unwrap();
            q.set_checksum(0);
            q.fill_checksum();
            prop_assert_eq!(q.checksum(), e.checksum);
        }
        TransportHeader::Icmpv6(e) => {
            let p = Icmpv6Packet::new_checked(seg).unwrap();
            let b = e.to_bytes();
            prop_assert_eq!(p.msg_type(), b[0]);
            prop_assert_eq!(p.code(), b[1]);
            prop_assert_eq!(p.checksum(), e.checksum);
            prop_assert_eq!(p.echo_ident(), u16::from_be_bytes([b[4], b[5]]));
            prop_assert_eq!(p.echo_seq(), u16::from_be_bytes([b[6], b[7]]));
            prop_assert!(p.verify_checksum(&src, &dst));
            prop_assert!(!p.is_error());
            let mut copy = seg.to_vec();
            let mut q = Icmpv6Packet::new_checked(&mut copy[..]).unwrap();
            q.set_checksum(0);
            q.fill_checksum(&src, &dst);
            prop_assert_eq!(q.checksum(), e.checksum);
        }
    }
    Ok(())
}

/// Checks `classify`'s summary of an IP packet that starts at `l3` in `buf`.
fn check_classified(
    spec: &PacketSpec,
    c: &lvs_core::wire::Classified,
    l3: usize,
    ip_len: usize,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(c.family, if spec.is_v6() { Family::V6 } else { Family::V4 });
    prop_assert_eq!(c.protocol, spec.protocol());
    prop_assert_eq!(c.src, spec.src());
    prop_assert_eq!(c.dst, spec.dst());
    prop_assert_eq!(c.ttl, spec.ttl);
    prop_assert_eq!(c.l3_offset, l3);
    prop_assert_eq!(c.l4_offset, l3 + spec.l3_len());
    prop_assert_eq!(c.payload_offset, c.l4_offset + spec.l4_header_len());
    prop_assert_eq!(c.total_len, ip_len);
    prop_assert_eq!(c.ip_range(), l3..l3 + ip_len);
    prop_assert!(!c.is_fragment && c.first_fragment && c.l4_present && !c.icmp_error);
    match &spec.l4 {
        L4Spec::Tcp {
            src_port,
            dst_port,
            flags,
            ..
        } => {
            prop_assert_eq!((c.src_port, c.dst_port), (*src_port, *dst_port));
            prop_assert_eq!(c.tcp_flags, *flags);
            prop_assert_eq!((c.icmp_type, c.icmp_code), (0, 0));
        }
        L4Spec::Udp { src_port, dst_port } => {
            prop_assert_eq!((c.src_port, c.dst_port), (*src_port, *dst_port));
            prop_assert_eq!(c.tcp_flags, 0);
        }
        L4Spec::Echo { .. } => {
            prop_assert_eq!((c.src_port, c.dst_port), (0, 0));
            prop_assert_eq!(c.icmp_type, if spec.is_v6() { 128 } else { 8 });
            prop_assert_eq!(c.icmp_code, 0);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn views_match_etherparse(spec in packet_spec()) {
        let ip = build(&spec);
        check_views(&spec, &ip)?;
        let c = classify(&ip).unwrap();
        check_classified(&spec, &c, 0, ip.len())?;
        // The L4 range classify reports is what the L4 views want.
        let seg = &ip[c.l4_range()];
        if let L4Spec::Tcp { .. } = spec.l4 {
            prop_assert!(TcpPacket::new_checked(seg).unwrap().verify_checksum(&c.src, &c.dst));
        }
    }

    #[test]
    fn ethernet_and_vlan_frames(spec in packet_spec(), vlan in prop::option::of(0u16..4096), pad in 0usize..20) {
        let mut frame = build_eth(&spec, vlan);
        let ip_len = frame.len() - if vlan.is_some() { 18 } else { 14 };
        // Link-layer padding after the IP packet is not part of it.
        frame.resize(frame.len() + pad, 0xee);
        let f = EthernetFrame::new_checked(&frame[..]).unwrap();
        prop_assert_eq!(f.vlan_id(), vlan.map(|v| v & 0xfff));
        prop_assert_eq!(f.ethertype(), if spec.is_v6() { 0x86dd } else { 0x0800 });
        let l3 = f.header_len();
        let c = classify_ethernet(&frame).unwrap();
        check_classified(&spec, &c, l3, ip_len)?;
        check_views(&spec, &frame[c.ip_range()])?;
    }

    /// Every strict prefix of a packet is rejected with a precise truncation error (never a
    /// panic, never a wrong success); the error's offset points into the buffer.
    #[test]
    fn every_prefix_is_a_precise_error(spec in packet_spec()) {
        let ip = build(&spec);
        for cut in 0..ip.len() {
            let err = classify(&ip[..cut]).unwrap_err();
            prop_assert_eq!(err.reason(), Reason::Truncated, "cut {}: {}", cut, err);
            if let lvs_core::wire::Error::Truncated { required, found, offset, .. } = err {
                prop_assert!(found < required);
                prop_assert!(offset <= cut);
            }
        }
    }

    /// A corrupted byte in the IPv4 header is caught by classify's header checksum check
    /// (or by the version / length checks first).
    #[test]
    fn ipv4_header_corruption_is_detected(spec in packet_spec(), at in 0usize..60, flip in 1u8..=255) {
        prop_assume!(!spec.is_v6());
        let mut ip = build(&spec);
        let at = at % spec.l3_len();
        ip[at] ^= flip;
        prop_assert!(classify(&ip).is_err());
    }
}

#[test]
fn non_ip_ethertype_is_not_ip() {
    let mut frame = vec![0u8; 60];
    frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(
        classify_ethernet(&frame).unwrap_err().reason(),
        Reason::NotIp
    );
}

#[test]
fn udp_zero_checksum_v4_is_none_v6_is_invalid() {
    for v6 in [false, true] {
        let spec = PacketSpec {
            net: if v6 {
                NetSpec::V6(V6Spec {
                    src: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    dst: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                    traffic_class: 0,
                    flow_label: 0,
                    hop_by_hop: None,
                    dest_opts: None,
                    routing: None,
                    auth_icv: None,
                })
            } else {
                NetSpec::V4(V4Spec {
                    src: [10, 0, 0, 1],
                    dst: [10, 0, 0, 2],
                    dscp: 0,
                    ecn: 0,
                    ident: 1,
                    dont_frag: true,
                    options: vec![],
                })
            },
            ttl: 64,
            l4: L4Spec::Udp {
                src_port: 1000,
                dst_port: 53,
            },
            payload: b"query".to_vec(),
        };
        let mut ip = build(&spec);
        let off = spec.l3_len();
        let (src, dst): (IpAddr, IpAddr) = (spec.src(), spec.dst());
        let mut udp = UdpPacket::new_checked(&mut ip[off..]).unwrap();
        assert!(udp.verify_checksum(&src, &dst));
        udp.set_checksum(0);
        assert_eq!(udp.verify_checksum(&src, &dst), !v6);
    }
}
