//! Fuzz body for the rewrite layer: `xmit::transmit` (every method and direction),
//! `port_unreachable` and `decapsulate` over arbitrary bytes and arbitrary mappings.
//!
//! Input: the first [`CONTROL`] bytes choose the mapping (method, direction, tunnel options,
//! headroom, MTU, ...); the rest is the IP packet. The mapping's addresses are taken from the
//! packet (or from the packet an ICMP error quotes) so the interesting paths are reached.
//!
//! Invariants: nothing panics; `transmit` (with its fast path) and `transmit_general` agree
//! on the verdict and every byte; a drop / not-ours verdict leaves the buffer untouched; every
//! output that claims success parses with our views and its checksums verify (IPv4 header
//! always; TCP/UDP when they verified before, and a UDP checksum that was 0, which NAT
//! computes in full over the whole IP payload as the kernel does; ICMP messages; tunnels
//! decapsulate back to the packet with its TTL decremented).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_core::rules::{Forward, TunnelConfig, TunnelCsum, TunnelType};
use lvs_core::wire::{
    checksum, classify, proto, Classified, Family, Icmpv4Packet, Icmpv6Packet, QuotedPacket,
    TcpPacket, UdpPacket,
};
use lvs_core::xmit::{
    decapsulate, port_unreachable, transmit, transmit_general, Direction, Mapping, Verdict,
};

/// Control bytes in front of the packet.
pub const CONTROL: usize = 12;

/// Runs the rewrite layer over `data`.
pub fn xmit_rewrite(data: &[u8]) {
    let mut ctl = [0u8; CONTROL];
    let n = data.len().min(CONTROL);
    ctl[..n].copy_from_slice(&data[..n]);
    let pkt = &data[n..];

    // The real-server side never panics either.
    if let Ok(d) = decapsulate(pkt, u16::from_be_bytes([ctl[7], ctl[8]])) {
        assert!(d.inner.start <= d.inner.end && d.inner.end <= pkt.len());
    }

    let headroom = usize::from(ctl[1] % 96);
    let mut buf = vec![0u8; headroom + pkt.len()];
    buf[headroom..].copy_from_slice(pkt);
    let Ok(c) = classify(&buf[headroom..]) else {
        return;
    };
    let m = mapping(&ctl, &buf[headroom..], &c);
    let dir = if ctl[0] & 0x04 != 0 {
        Direction::Out
    } else {
        Direction::In
    };
    let before = buf.clone();
    let valid_l4 = l4_valid(&before[headroom..], &c);
    let zero_udp = c.protocol == proto::UDP
        && c.l4_present
        && !c.is_fragment
        && before[headroom..].get(c.l4_offset + 6..c.l4_offset + 8) == Some(&[0, 0]);
    let mut out = vec![0u8; if ctl[4] & 2 != 0 { 1280 } else { 60 }];

    let v = port_unreachable(&buf, headroom, &c, &m, &mut out);
    check_reply_or_nothing(v, &out);

    // The general path alone is the reference for the fast path: same verdict, same bytes.
    let mut general = buf.clone();
    let mut general_out = out.clone();
    let gv = transmit_general(&mut general, headroom, &c, &m, dir, &mut general_out);

    let v = transmit(&mut buf, headroom, &c, &m, dir, &mut out);
    assert_eq!(v, gv, "transmit and transmit_general disagree");
    assert_eq!(
        buf, general,
        "transmit and transmit_general wrote different bytes"
    );
    if let Verdict::Reply { start, len, .. } = v {
        assert_eq!(out[start..start + len], general_out[start..start + len]);
    }
    match v {
        Verdict::Forward {
            method,
            next_hop,
            start,
            len,
        } => {
            let fwd = &buf[start..start + len];
            let after = classify(fwd).expect("a forwarded packet classifies");
            if method == Forward::Tunnel {
                assert_eq!(next_hop, m.daddr);
                let d = decapsulate(fwd, m.tunnel.port).expect("our tunnel packet decapsulates");
                let inner = classify(&fwd[d.inner]).expect("the inner packet classifies");
                assert_eq!(inner.ttl, c.ttl - 1);
                assert_eq!((inner.src, inner.dst), (c.src, c.dst));
            } else {
                assert_eq!(after.ttl, c.ttl - 1);
                if method == Forward::DirectRoute {
                    assert_eq!((after.src, after.dst), (c.src, c.dst));
                }
                if zero_udp && method == Forward::Masq {
                    let seg = &fwd[after.l4_range()];
                    assert_eq!(
                        checksum::segment(&after.src, &after.dst, proto::UDP, seg),
                        0xffff,
                        "NAT's full UDP checksum does not verify over the IP payload"
                    );
                } else if valid_l4 && method == Forward::Masq {
                    assert!(l4_valid(fwd, &after), "NAT broke a valid L4 checksum");
                }
                if method == Forward::Masq && after.icmp_error {
                    assert!(icmp_valid(fwd, &after), "NAT broke the ICMP checksum");
                }
            }
        }
        Verdict::Reply { .. } => {
            assert_eq!(buf, before, "a reply leaves the packet alone");
            check_reply_or_nothing(v, &out);
        }
        Verdict::Drop(r) => {
            assert!(r.index() < lvs_core::xmit::DropReason::COUNT);
            assert_eq!(buf, before, "a drop leaves the packet alone");
        }
        Verdict::NotOurs | Verdict::Local { .. } => assert_eq!(buf, before),
    }
}

fn mapping(ctl: &[u8; CONTROL], pkt: &[u8], c: &Classified) -> Mapping {
    let forward = Forward::from_conn_flags(u32::from(ctl[0] & 3));
    let dir_out = ctl[0] & 0x04 != 0;
    // Client / virtual from the packet, or from what a related error quotes.
    let (mut client, mut virt) = ((c.src, c.src_port), (c.dst, c.dst_port));
    if c.icmp_error {
        if let Some(q) = pkt
            .get(c.l4_offset + 8..c.l3_offset + c.total_len)
            .and_then(|b| QuotedPacket::new_checked(b).ok())
        {
            if dir_out {
                client = (q.src_addr(), q.src_port());
                virt = (q.dst_addr(), q.dst_port());
            } else {
                virt = (q.src_addr(), q.src_port());
                client = (q.dst_addr(), q.dst_port());
            }
        }
    }
    let rip6 = if ctl[0] & 0x08 != 0 {
        c.family == Family::V4
    } else {
        c.family == Family::V6
    };
    let real = if rip6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            0,
            u16::from(ctl[9]),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 0, ctl[9], ctl[10]))
    };
    let dport = u16::from_be_bytes([ctl[10], ctl[11]]);
    let mut m = Mapping::new(client, virt, (real, dport));
    if dir_out && c.icmp_error {
        // Outbound errors quote client → RIP:dport.
        m.daddr = virt.0;
        m.dport = virt.1;
        m.vaddr = if virt.0.is_ipv6() {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1))
        } else {
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1))
        };
    } else if dir_out {
        // Replies come from RIP:dport.
        m.daddr = c.src;
        m.dport = c.src_port;
        m.caddr = c.dst;
        m.cport = c.dst_port;
    }
    m.forward = forward;
    m.tunnel = TunnelConfig {
        kind: [TunnelType::Ipip, TunnelType::Gue, TunnelType::Gre][usize::from(ctl[0] >> 4) % 3],
        port: u16::from_be_bytes([ctl[7], ctl[8]]),
        csum: [TunnelCsum::NoCsum, TunnelCsum::Csum, TunnelCsum::RemCsum]
            [usize::from(ctl[0] >> 6) % 3],
    };
    m.route_mtu = u32::from(u16::from_be_bytes([ctl[2], ctl[3]]));
    m.pmtu_disc = ctl[4] & 1 == 0;
    m.ip_id = u16::from_be_bytes([ctl[5], ctl[6]]);
    m.local_v4 = Ipv4Addr::new(198, 51, 100, 254);
    m.local_v6 = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 0xfe);
    m
}

fn l4_valid(pkt: &[u8], c: &Classified) -> bool {
    let Some(seg) = pkt.get(c.l4_range()) else {
        return false;
    };
    match c.protocol {
        proto::TCP if c.l4_present => {
            TcpPacket::new_checked(seg).is_ok_and(|t| t.verify_checksum(&c.src, &c.dst))
        }
        proto::UDP if c.l4_present && !c.is_fragment => {
            UdpPacket::new_checked(seg).is_ok_and(|u| u.verify_checksum(&c.src, &c.dst))
        }
        _ => false,
    }
}

fn icmp_valid(pkt: &[u8], c: &Classified) -> bool {
    let seg = &pkt[c.l4_range()];
    match c.family {
        Family::V4 => Icmpv4Packet::new_checked(seg).is_ok_and(|i| i.verify_checksum()),
        Family::V6 => {
            Icmpv6Packet::new_checked(seg).is_ok_and(|i| i.verify_checksum(&c.src, &c.dst))
        }
    }
}

fn check_reply_or_nothing(v: Verdict, out: &[u8]) {
    if let Verdict::Reply { start, len, .. } = v {
        let reply = &out[start..start + len];
        let r = classify(reply).expect("a built ICMP error classifies");
        let limit = if r.family == Family::V4 { 576 } else { 1280 };
        assert!(len <= limit);
        assert!(r.icmp_error, "a built reply is an ICMP error");
        assert!(
            icmp_valid(reply, &r),
            "a built reply has a valid ICMP checksum"
        );
    }
}
