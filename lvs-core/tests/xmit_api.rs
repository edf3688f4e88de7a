//! Edge cases of the xmit API that the golden fixtures do not reach: summaries that do not
//! belong to the buffer, small output buffers, decapsulation errors, counters.

mod xmit_support;

use core::net::IpAddr;

use lvs_core::rules::{Forward, TunnelConfig, TunnelCsum, TunnelType};
use lvs_core::wire::classify;
use lvs_core::xmit::icmp::{build_error, ErrorKind, IcmpError};
use lvs_core::xmit::{
    decapsulate, set_ethernet_addrs, transmit, DecapError, Direction, DropReason, Mapping, Verdict,
};
use xmit_support::*;

fn m4(fwd: Forward) -> Mapping {
    Mapping {
        forward: fwd,
        local_v4: "198.51.100.254".parse().unwrap(),
        local_v6: "2001:db8:ff::fe".parse().unwrap(),
        ..Mapping::new(
            ("192.0.2.7".parse().unwrap(), 40000),
            ("203.0.113.1".parse().unwrap(), 80),
            ("10.1.1.1".parse().unwrap(), 80),
        )
    }
}

fn pkt() -> Vec<u8> {
    Flow::tcp("192.0.2.7", 40000, "203.0.113.1", 80).build()
}

#[test]
fn a_summary_of_another_buffer_is_malformed_and_changes_nothing() {
    let p = pkt();
    let c = classify(&p).unwrap();
    let mut out = [0u8; 576];
    for fwd in [Forward::Masq, Forward::DirectRoute, Forward::Tunnel] {
        let m = m4(fwd);
        // Shorter buffer than the summary says.
        let mut short = p[..p.len() - 1].to_vec();
        let before = short.clone();
        let v = transmit(&mut short, 0, &c, &m, Direction::In, &mut out);
        assert_eq!(v, Verdict::Drop(DropReason::Malformed));
        assert_eq!(short, before);
        // A summary whose protocol, length or offsets are wrong.
        for bad in [
            {
                let mut x = c;
                x.protocol = 17;
                x
            },
            {
                let mut x = c;
                x.total_len -= 4;
                x
            },
            {
                let mut x = c;
                x.l4_offset = 8;
                x
            },
            {
                let mut x = c;
                x.family = lvs_core::wire::Family::V6;
                x
            },
        ] {
            let mut b = p.clone();
            let v = transmit(&mut b, 0, &bad, &m, Direction::In, &mut out);
            assert_eq!(v, Verdict::Drop(DropReason::Malformed), "{fwd:?} {bad:?}");
            assert_eq!(b, p);
        }
        // Headroom pointing past the buffer.
        let mut b = p.clone();
        let v = transmit(&mut b, usize::MAX, &c, &m, Direction::In, &mut out);
        assert_eq!(v, Verdict::Drop(DropReason::Malformed));
    }
}

#[test]
fn local_node_is_delivered_unchanged() {
    let mut b = pkt();
    let c = classify(&b).unwrap();
    let before = b.clone();
    let v = transmit(&mut b, 0, &c, &m4(Forward::Local), Direction::In, &mut []);
    assert_eq!(
        v,
        Verdict::Local {
            start: 0,
            len: before.len()
        }
    );
    assert_eq!(b, before);
}

#[test]
fn too_small_output_buffer_drops_without_reply() {
    let mut f = Flow::tcp("192.0.2.7", 40000, "203.0.113.1", 80);
    f.ttl = 1;
    let mut b = f.build();
    let c = classify(&b).unwrap();
    let mut out = [0u8; 40];
    let v = transmit(&mut b, 0, &c, &m4(Forward::Masq), Direction::In, &mut out);
    assert_eq!(v, Verdict::Drop(DropReason::ReplyBuffer));
    // Exactly header + IP header + 8 bytes is enough (a shorter quote).
    let mut out = [0u8; 56];
    let v = transmit(&mut b, 0, &c, &m4(Forward::Masq), Direction::In, &mut out);
    assert_eq!(
        v,
        Verdict::Reply {
            reason: DropReason::TtlExpired,
            start: 0,
            len: 56
        }
    );
}

#[test]
fn build_error_rejects_wrong_family_and_short_buffers() {
    let p = pkt();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let v4: IpAddr = "192.0.2.1".parse().unwrap();
    let mut out = [0u8; 576];
    assert_eq!(
        build_error(&mut out, &p, v6, ErrorKind::TimeExceeded, 0),
        Err(IcmpError::Family)
    );
    assert_eq!(
        build_error(&mut out, &p, v4, ErrorKind::PacketTooBig { mtu: 1280 }, 0),
        Err(IcmpError::Family)
    );
    assert_eq!(
        build_error(&mut out, &[0x45, 0, 0], v4, ErrorKind::TimeExceeded, 0),
        Err(IcmpError::Malformed)
    );
    assert_eq!(
        build_error(&mut out[..50], &p, v4, ErrorKind::TimeExceeded, 0),
        Err(IcmpError::OutTooSmall {
            required: 56,
            found: 50
        })
    );
}

#[test]
fn decapsulate_refuses_what_is_not_our_tunnel() {
    let mut m = m4(Forward::Tunnel);
    m.tunnel = TunnelConfig {
        kind: TunnelType::Gue,
        port: 6080,
        csum: TunnelCsum::Csum,
    };
    let p = pkt();
    let mut buf = vec![0u8; 64 + p.len()];
    buf[64..].copy_from_slice(&p);
    let c = classify(&buf[64..]).unwrap();
    let v = transmit(&mut buf, 64, &c, &m, Direction::In, &mut []);
    let Verdict::Forward { start, len, .. } = v else {
        panic!("{v:?}")
    };
    let outer = buf[start..start + len].to_vec();
    assert!(decapsulate(&outer, 6080).is_ok());
    assert_eq!(
        decapsulate(&outer, 6081),
        Err(DecapError::NotTunnel { protocol: 17 })
    );
    let mut bad = outer.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(decapsulate(&bad, 6080), Err(DecapError::Checksum));
    // A plain TCP packet is not a tunnel.
    assert_eq!(
        decapsulate(&p, 6080),
        Err(DecapError::NotTunnel { protocol: 6 })
    );
    // GRE with a broken checksum.
    m.tunnel.kind = TunnelType::Gre;
    let mut buf = vec![0u8; 64 + p.len()];
    buf[64..].copy_from_slice(&p);
    let Verdict::Forward { start, len, .. } =
        transmit(&mut buf, 64, &c, &m, Direction::In, &mut [])
    else {
        panic!()
    };
    let mut gre = buf[start..start + len].to_vec();
    assert!(decapsulate(&gre, 0).is_ok());
    gre[30] ^= 0xff;
    assert_eq!(decapsulate(&gre, 0), Err(DecapError::Checksum));
}

#[test]
fn ethernet_helper_and_counters() {
    let mut f = [0u8; 13];
    assert!(!set_ethernet_addrs(&mut f, [1; 6], [2; 6]));
    assert_eq!(f, [0; 13]);
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert!(!r.name().is_empty());
    }
    assert_eq!(DropReason::ALL.len(), DropReason::COUNT);
}
