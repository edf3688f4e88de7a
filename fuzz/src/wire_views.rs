//! Fuzz body for the packet views: every view and both classifiers over arbitrary bytes.
//!
//! Invariants checked: nothing panics (parsing, getters, setters with arbitrary values); a
//! successful `classify` reports offsets inside the buffer, in order; every checksum we fill
//! afterwards verifies.

use core::net::IpAddr;

use lvs_core::wire::{
    checksum, classify, classify_ethernet, ipip, proto, Classified, EthernetFrame, Family,
    GrePacket, GuePacket, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet, QuotedPacket,
    TcpPacket, UdpPacket,
};
use lvs_core::xmit::{nat_in, nat_out, NatVerdict as Verdict};

/// Runs every view over `data`.
pub fn wire_views(data: &[u8]) {
    // A value for setters, taken from the input so the fuzzer can steer it.
    let v = data
        .iter()
        .fold(0x9e37u16, |a, &b| a.rotate_left(5) ^ u16::from(b));

    if let Ok(c) = classify(data) {
        check_classified(&c, data.len());
        l4_views(data, &c, v);
        nat(data, &c, v, classify);
    }
    if let Ok(c) = classify_ethernet(data) {
        check_classified(&c, data.len());
        l4_views(data, &c, v);
        nat(data, &c, v, classify_ethernet);
    }
    ethernet(data, v);
    ipv4(data, v);
    ipv6(data, v);
    tcp(
        data,
        v,
        &IpAddr::from([10, 0, 0, 1]),
        &IpAddr::from([10, 0, 0, 2]),
    );
    udp(
        data,
        v,
        &IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
        &IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2]),
    );
    icmp(
        data,
        v,
        &IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
        &IpAddr::from([10, 0, 0, 1]),
    );
    tunnels(data, v);
    quoted(data, v);
}

fn check_classified(c: &Classified, len: usize) {
    assert!(c.l3_offset <= c.l4_offset);
    assert!(c.l4_offset <= c.payload_offset);
    assert!(c.payload_offset <= c.ip_range().end);
    assert!(c.ip_range().end <= len);
    assert_eq!(c.family == Family::V6, c.src.is_ipv6());
    assert!(c.l4_present || (c.src_port, c.dst_port, c.tcp_flags) == (0, 0, 0));
    assert!(!c.is_later_fragment() || !c.l4_present);
}

/// The L4 views over what classify found; fills and verifies checksums on a copy.
fn l4_views(data: &[u8], c: &Classified, v: u16) {
    let seg = &data[c.l4_range()];
    let mut copy = seg.to_vec();
    match c.protocol {
        proto::TCP if c.l4_present => {
            let mut t = TcpPacket::new_checked(&mut copy[..]).expect("classify checked TCP");
            assert_eq!(
                (t.src_port(), t.dst_port(), t.flags()),
                (c.src_port, c.dst_port, c.tcp_flags)
            );
            t.set_dst_port(v);
            t.fill_checksum(&c.src, &c.dst);
            assert!(t.verify_checksum(&c.src, &c.dst));
        }
        proto::UDP if c.l4_present && !c.is_fragment => {
            let mut u = UdpPacket::new_checked(&mut copy[..]).expect("classify checked UDP");
            assert_eq!((u.src_port(), u.dst_port()), (c.src_port, c.dst_port));
            u.set_src_port(v);
            u.fill_checksum(&c.src, &c.dst);
            assert_ne!(u.checksum(), 0);
            assert!(u.verify_checksum(&c.src, &c.dst));
        }
        proto::ICMP if c.l4_present && c.family == Family::V4 => {
            let mut m = Icmpv4Packet::new_checked(&mut copy[..]).expect("classify checked ICMP");
            assert_eq!(m.is_error(), c.icmp_error);
            if let Ok(mut q) = m.quoted_mut() {
                q.set_dst_port(v);
                if let Some(mut ip) = q.ipv4_mut() {
                    ip.set_dst_addr([1, 2, 3, 4].into());
                    ip.fill_checksum();
                    assert!(ip.verify_checksum());
                }
            }
            m.fill_checksum();
            assert!(m.verify_checksum());
        }
        proto::ICMPV6 if c.l4_present && c.family == Family::V6 => {
            let mut m = Icmpv6Packet::new_checked(&mut copy[..]).expect("classify checked ICMPv6");
            assert_eq!(m.is_error(), c.icmp_error);
            if let Ok(mut q) = m.quoted_mut() {
                q.set_src_port(v);
                if let Some(mut ip) = q.ipv6_mut() {
                    ip.set_hop_limit(1);
                }
            }
            m.fill_checksum(&c.src, &c.dst);
            assert!(m.verify_checksum(&c.src, &c.dst));
        }
        proto::IPIP | proto::IPV6 => {
            if let Ok(inner) = ipip::inner(c.protocol, seg) {
                match inner {
                    ipip::Inner::V4(p) => assert_eq!(p.version(), 4),
                    ipip::Inner::V6(p) => assert_eq!(p.version(), 6),
                }
            }
        }
        proto::GRE => {
            if let Ok(mut g) = GrePacket::new_checked(&mut copy[..]) {
                let _ = (g.key(), g.sequence(), g.protocol_type());
                g.fill_checksum();
                assert!(g.verify_checksum());
                let _ = classify(g.payload());
            }
        }
        _ => {}
    }
}

/// The NAT rewrite in both directions: errors and Time Exceeded leave the bytes alone; a
/// rewrite changes exactly the requested side and keeps a valid L4 checksum valid (a UDP
/// checksum of 0 becomes the kernel's full one).
fn nat(
    data: &[u8],
    c: &Classified,
    v: u16,
    reparse: fn(&[u8]) -> Result<Classified, lvs_core::wire::Error>,
) {
    let seg = &data[c.l4_range()];
    let valid_before = match c.protocol {
        proto::TCP if c.l4_present => {
            TcpPacket::new_checked(seg).is_ok_and(|t| t.verify_checksum(&c.src, &c.dst))
        }
        proto::UDP if c.l4_present && !c.is_fragment => {
            UdpPacket::new_checked(seg).is_ok_and(|u| u.verify_checksum(&c.src, &c.dst))
        }
        _ => false,
    };
    // A UDP datagram without a checksum gets the kernel's full one, over the IP payload.
    let zero_udp = c.protocol == proto::UDP
        && c.l4_present
        && !c.is_fragment
        && seg.get(6..8) == Some(&[0, 0]);
    let addr = match c.family {
        Family::V4 => IpAddr::from([10, 0, (v >> 8) as u8, v as u8]),
        Family::V6 => IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, v]),
    };
    for dst_side in [true, false] {
        let mut copy = data.to_vec();
        let r = if dst_side {
            nat_in(&mut copy, c, addr, v)
        } else {
            nat_out(&mut copy, c, addr, v)
        };
        match r {
            Ok(Verdict::Forward) => {
                let after = reparse(&copy).expect("a rewritten packet still classifies");
                assert_eq!(after.ttl, c.ttl - 1);
                if dst_side {
                    assert_eq!((after.dst, after.dst_port, after.src), (addr, v, c.src));
                } else {
                    assert_eq!((after.src, after.src_port, after.dst), (addr, v, c.dst));
                }
                if zero_udp {
                    let seg = &copy[after.l4_range()];
                    assert_eq!(
                        checksum::segment(&after.src, &after.dst, proto::UDP, seg),
                        0xffff,
                        "NAT's full UDP checksum does not verify over the IP payload"
                    );
                } else if valid_before {
                    let seg = &copy[after.l4_range()];
                    let ok = if c.protocol == proto::TCP {
                        TcpPacket::new_checked(seg)
                            .is_ok_and(|t| t.verify_checksum(&after.src, &after.dst))
                    } else {
                        UdpPacket::new_checked(seg)
                            .is_ok_and(|u| u.verify_checksum(&after.src, &after.dst))
                    };
                    assert!(ok, "NAT broke a valid checksum");
                }
            }
            Ok(Verdict::TimeExceeded) | Err(_) => assert_eq!(copy, data),
        }
    }
}

fn ethernet(data: &[u8], v: u16) {
    let mut copy = data.to_vec();
    if let Ok(mut f) = EthernetFrame::new_checked(&mut copy[..]) {
        let _ = (
            f.dst_addr(),
            f.src_addr(),
            f.ethertype(),
            f.vlan_tci(),
            f.vlan_id(),
        );
        f.set_ethertype(v);
        f.set_vlan_tci(v);
        f.set_src_addr([v as u8; 6]);
        assert_eq!(f.ethertype(), v);
        let hl = f.header_len();
        assert_eq!(f.payload_mut().len() + hl, data.len());
    }
}

fn ipv4(data: &[u8], v: u16) {
    let mut copy = data.to_vec();
    let Ok(mut p) = Ipv4Packet::new_checked(&mut copy[..]) else {
        return;
    };
    let _ = (
        p.dscp(),
        p.ecn(),
        p.ident(),
        p.dont_frag(),
        p.more_frags(),
        p.frag_offset(),
    );
    let _ = (
        p.ttl(),
        p.protocol(),
        p.src_addr(),
        p.dst_addr(),
        p.options(),
        p.payload(),
    );
    let (hl, tl) = (p.header_len(), p.total_len());
    // Arbitrary layout fields: accessors must stay in bounds.
    p.set_header_len(usize::from(v) % 64);
    p.set_total_len(v);
    let _ = (
        p.options_mut().len(),
        p.payload_mut().len(),
        p.verify_checksum(),
    );
    p.set_header_len(hl);
    p.set_total_len(tl);
    p.set_ttl(v as u8);
    p.set_dst_addr([v as u8, 0, 0, 1].into());
    p.set_frag_offset(v);
    p.set_dont_frag(v & 1 == 0);
    p.fill_checksum();
    assert!(p.verify_checksum());
}

fn ipv6(data: &[u8], v: u16) {
    let mut copy = data.to_vec();
    let Ok(mut p) = Ipv6Packet::new_checked(&mut copy[..]) else {
        return;
    };
    let _ = (
        p.traffic_class(),
        p.flow_label(),
        p.hop_limit(),
        p.src_addr(),
        p.dst_addr(),
    );
    if let Ok(t) = p.transport() {
        assert!(t.offset <= p.total_len());
    }
    p.set_payload_len(v);
    let _ = (p.payload_mut().len(), p.transport());
    p.set_flow_label(u32::from(v) << 8);
    p.set_traffic_class(v as u8);
    assert_eq!(p.traffic_class(), v as u8);
}

fn tcp(data: &[u8], v: u16, src: &IpAddr, dst: &IpAddr) {
    let mut copy = data.to_vec();
    let Ok(mut t) = TcpPacket::new_checked(&mut copy[..]) else {
        return;
    };
    let _ = (
        t.seq_number(),
        t.ack_number(),
        t.window_len(),
        t.urgent_at(),
        t.options(),
        t.payload(),
    );
    let hl = t.header_len();
    t.set_header_len(usize::from(v) % 64);
    let _ = (t.options().len(), t.payload_mut().len());
    t.set_header_len(hl);
    t.set_seq_number(u32::from(v));
    t.fill_checksum(src, dst);
    assert!(t.verify_checksum(src, dst));
}

fn udp(data: &[u8], v: u16, src: &IpAddr, dst: &IpAddr) {
    let mut copy = data.to_vec();
    let Ok(mut u) = UdpPacket::new_checked(&mut copy[..]) else {
        return;
    };
    let len = u.len();
    u.set_len(v);
    let _ = (
        u.payload().len(),
        u.payload_mut().len(),
        u.verify_checksum(src, dst),
    );
    u.set_len(len);
    u.fill_checksum(src, dst);
    assert!(u.verify_checksum(src, dst));
}

fn icmp(data: &[u8], v: u16, src: &IpAddr, dst: &IpAddr) {
    let mut copy = data.to_vec();
    if let Ok(mut m) = Icmpv4Packet::new_checked(&mut copy[..]) {
        let _ = (
            m.echo_ident(),
            m.echo_seq(),
            m.next_hop_mtu(),
            m.rest_of_header(),
            m.quoted().is_ok(),
        );
        m.set_next_hop_mtu(v);
        m.fill_checksum();
        assert!(m.verify_checksum());
    }
    let mut copy = data.to_vec();
    if let Ok(mut m) = Icmpv6Packet::new_checked(&mut copy[..]) {
        let _ = (m.mtu(), m.quoted().is_ok());
        m.set_mtu(u32::from(v));
        m.fill_checksum(src, dst);
        assert!(m.verify_checksum(src, dst));
    }
}

fn tunnels(data: &[u8], v: u16) {
    let mut copy = data.to_vec();
    if let Ok(mut g) = GrePacket::new_checked(&mut copy[..]) {
        let _ = (g.checksum(), g.key(), g.sequence(), g.payload().len());
        g.set_protocol_type(v);
        g.fill_checksum();
        assert!(g.verify_checksum());
    }
    let mut copy = data.to_vec();
    if let Ok(mut g) = GuePacket::new_checked(&mut copy[..]) {
        let _ = (g.is_control(), g.flags(), g.options(), g.payload().len());
        g.set_protocol(v as u8);
        g.set_flags(v);
        let _ = (g.options_mut().len(), g.payload_mut().len());
        let _ = ipip::inner(g.protocol(), g.payload());
    }
}

fn quoted(data: &[u8], v: u16) {
    let mut copy = data.to_vec();
    if let Ok(mut q) = QuotedPacket::new_checked(&mut copy[..]) {
        let _ = (
            q.src_addr(),
            q.dst_addr(),
            q.src_port(),
            q.dst_port(),
            q.protocol(),
        );
        let _ = (q.is_fragment(), q.is_later_fragment(), q.l4().len());
        q.set_src_port(v);
        q.set_dst_port(v);
        assert_eq!((q.src_port(), q.dst_port()), (v, v));
        if let Some(mut ip) = q.ipv4_mut() {
            ip.set_header_len(usize::from(v) % 64);
            let _ = (ip.payload().len(), ip.options().len());
        }
        if let Some(mut ip) = q.ipv6_mut() {
            ip.set_payload_len(v);
            let _ = (ip.payload().len(), ip.transport());
        }
        assert_eq!(q.l4().len() + q.l4_offset(), data.len());
    }
}
