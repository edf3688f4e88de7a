//! Tunnel headers (spec 3.4) and fragments: IPIP, GRE (with and without checksum) and GUE
//! around etherparse-built inner packets inside etherparse-built outer packets; IPv4 and IPv6
//! fragments through `classify`.

mod wire_support;

use etherparse::{checksum::Sum16BitWords, IpNumber, PacketBuilder};
use lvs_core::wire::{
    classify, ethertype, ipip, proto, Classified, Family, GrePacket, GuePacket, Ipv4Packet,
};
use proptest::prelude::*;
use wire_support::*;

/// An outer IPv4 or IPv6 packet of protocol `protocol` carrying `payload`, built by etherparse.
fn outer(v6: bool, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let b = if v6 {
        PacketBuilder::ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xd],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe],
            17,
        )
    } else {
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17)
    };
    let mut out = Vec::new();
    b.write(&mut out, IpNumber(protocol), payload).unwrap();
    out
}

/// Checks that `inner` classified from the tunnel payload matches its specification.
fn check_inner(c: &Classified, spec: &PacketSpec, len: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(c.family, if spec.is_v6() { Family::V6 } else { Family::V4 });
    prop_assert_eq!(c.protocol, spec.protocol());
    prop_assert_eq!((c.src, c.dst), (spec.src(), spec.dst()));
    prop_assert_eq!(c.l4_offset, spec.l3_len());
    prop_assert_eq!(c.total_len, len);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ipip(inner in packet_spec(), outer_v6 in any::<bool>()) {
        let bytes = build(&inner);
        let protocol = ipip::protocol_for(if inner.is_v6() { Family::V6 } else { Family::V4 });
        let pkt = outer(outer_v6, protocol, &bytes);
        let c = classify(&pkt).unwrap();
        prop_assert_eq!(c.protocol, protocol);
        prop_assert!(!c.l4_present);
        prop_assert_eq!(ipip::family_of(c.protocol), Some(if inner.is_v6() { Family::V6 } else { Family::V4 }));
        let payload = &pkt[c.l4_range()];
        prop_assert_eq!(payload, &bytes[..]);
        match ipip::inner(c.protocol, payload).unwrap() {
            ipip::Inner::V4(p) => prop_assert_eq!(usize::from(p.total_len()), bytes.len()),
            ipip::Inner::V6(p) => prop_assert_eq!(p.total_len(), bytes.len()),
        }
        // The wrong outer protocol is a version error of the inner view.
        let wrong = if inner.is_v6() { proto::IPIP } else { proto::IPV6 };
        prop_assert!(ipip::inner(wrong, payload).is_err());
        check_inner(&classify(payload).unwrap(), &inner, bytes.len())?;
    }

    #[test]
    fn gre(inner in packet_spec(), outer_v6 in any::<bool>(), csum in any::<bool>()) {
        let bytes = build(&inner);
        let hl = if csum { 8 } else { 4 };
        let mut gre = vec![0u8; hl + bytes.len()];
        let et = if inner.is_v6() { ethertype::IPV6 } else { ethertype::IPV4 };
        {
            let mut g = GrePacket::init(&mut gre[..], csum, et).unwrap();
            g.payload_mut().copy_from_slice(&bytes);
            g.fill_checksum();
        }
        // An independent check of the GRE checksum: etherparse's one's-complement sum.
        if csum {
            prop_assert_eq!(Sum16BitWords::new().add_slice(&gre).ones_complement(), 0);
            prop_assert_eq!(gre[0], 0x80);
        } else {
            prop_assert_eq!(&gre[..2], &[0, 0]);
        }
        let pkt = outer(outer_v6, proto::GRE, &gre);
        let c = classify(&pkt).unwrap();
        prop_assert_eq!(c.protocol, proto::GRE);
        let g = GrePacket::new_checked(&pkt[c.l4_range()]).unwrap();
        prop_assert_eq!(g.protocol_type(), et);
        prop_assert_eq!(g.checksum().is_some(), csum);
        prop_assert!(g.verify_checksum());
        prop_assert_eq!(g.payload(), &bytes[..]);
        check_inner(&classify(g.payload()).unwrap(), &inner, bytes.len())?;
        // A flipped inner byte fails the checksum only when there is one.
        let mut bad = pkt.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x5a;
        prop_assert_eq!(GrePacket::new_checked(&bad[c.l4_range()]).unwrap().verify_checksum(), !csum);
    }

    #[test]
    fn gue(inner in packet_spec(), outer_v6 in any::<bool>(), sport in 32768u16..61000, port in 1u16..) {
        let bytes = build(&inner);
        let mut gue = vec![0u8; 4 + bytes.len()];
        let p = if inner.is_v6() { proto::IPV6 } else { proto::IPIP };
        GuePacket::init(&mut gue[..], p).unwrap().payload_mut().copy_from_slice(&bytes);
        let b = if outer_v6 {
            PacketBuilder::ipv6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xd], [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe], 9)
        } else {
            PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 9)
        };
        let mut pkt = Vec::new();
        b.udp(sport, port).write(&mut pkt, &gue).unwrap();
        let c = classify(&pkt).unwrap();
        prop_assert_eq!((c.protocol, c.src_port, c.dst_port), (proto::UDP, sport, port));
        let g = GuePacket::new_checked(&pkt[c.payload_offset..c.ip_range().end]).unwrap();
        prop_assert_eq!((g.version(), g.is_control(), g.header_len(), g.flags()), (0, false, 4, 0));
        prop_assert_eq!(g.protocol(), p);
        prop_assert_eq!(g.payload(), &bytes[..]);
        check_inner(&classify(g.payload()).unwrap(), &inner, bytes.len())?;
    }

    /// IPv4 fragments (etherparse sets the flags and offset): the first carries the ports even
    /// though the UDP length covers more than the fragment; later ones carry no L4 header.
    #[test]
    fn ipv4_fragments(spec in spec_with(v4_net(), prop_oneof![tcp_l4(), udp_l4()]), offset_units in 1u16..8000, more in any::<bool>()) {
        let mut bytes = build(&spec);
        // First fragment: MF set, offset 0; cut the datagram so UDP's length overshoots.
        {
            let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
            p.set_more_frags(true);
            p.fill_checksum();
        }
        let keep = spec.l3_len() + spec.l4_header_len();
        let mut first = bytes[..keep].to_vec();
        {
            let mut p = Ipv4Packet::new_unchecked(&mut first[..]);
            p.set_total_len(keep as u16);
            p.fill_checksum();
        }
        prop_assert!(etherparse::Ipv4HeaderSlice::from_slice(&first).unwrap().more_fragments());
        let c = classify(&first).unwrap();
        prop_assert!(c.is_fragment && c.first_fragment && c.l4_present);
        let want = match spec.l4 {
            L4Spec::Tcp { src_port, dst_port, .. } | L4Spec::Udp { src_port, dst_port } => (src_port, dst_port),
            L4Spec::Echo { .. } => unreachable!(),
        };
        prop_assert_eq!((c.src_port, c.dst_port), want);
        // A later fragment.
        let mut later = bytes.clone();
        {
            let mut p = Ipv4Packet::new_checked(&mut later[..]).unwrap();
            p.set_more_frags(more);
            p.set_frag_offset(offset_units * 8);
            p.fill_checksum();
        }
        let e = etherparse::Ipv4HeaderSlice::from_slice(&later).unwrap();
        prop_assert_eq!(e.fragments_offset().value(), offset_units);
        let c = classify(&later).unwrap();
        prop_assert!(c.is_fragment && !c.first_fragment && !c.l4_present && c.is_later_fragment());
        prop_assert_eq!((c.src_port, c.dst_port, c.tcp_flags), (0, 0, 0));
        prop_assert_eq!(c.payload_offset, c.l4_offset);
    }

    /// IPv6 Fragment header inserted by hand (see `wire_support` on etherparse 0.16).
    #[test]
    fn ipv6_fragments(spec in spec_with(v6_net(), prop_oneof![tcp_l4(), udp_l4()]), offset_units in 0u16..8192, more in any::<bool>(), ident in any::<u32>()) {
        let bytes = build(&spec);
        let l4 = spec.l3_len();
        // Insert the Fragment header right before the L4 header: it takes over the L4
        // protocol as its next header; the header before it now points at 44.
        let mut frag = vec![spec.protocol(), 0];
        frag.extend_from_slice(&((offset_units << 3) | u16::from(more)).to_be_bytes());
        frag.extend_from_slice(&ident.to_be_bytes());
        let mut pkt = bytes[..l4].to_vec();
        pkt.extend_from_slice(&frag);
        pkt.extend_from_slice(&bytes[l4..]);
        let pl = (pkt.len() - 40) as u16;
        pkt[4..6].copy_from_slice(&pl.to_be_bytes());
        // The last extension header's next-header byte (or the fixed header's) now says 44.
        let t = lvs_core::wire::Ipv6Packet::new_checked(&bytes[..]).unwrap();
        let mut prev = 6;
        let mut off = 40;
        let mut next = t.next_header();
        while off < l4 {
            prev = off;
            let len = if next == proto::AH { (usize::from(bytes[off + 1]) + 2) * 4 } else { (usize::from(bytes[off + 1]) + 1) * 8 };
            next = bytes[off];
            off += len;
        }
        pkt[prev] = proto::IPV6_FRAG;
        let c = classify(&pkt).unwrap();
        prop_assert!(c.is_fragment);
        prop_assert_eq!(c.protocol, spec.protocol());
        prop_assert_eq!(c.l4_offset, l4 + 8);
        prop_assert_eq!(c.first_fragment, offset_units == 0);
        prop_assert_eq!(c.l4_present, offset_units == 0);
        let f = lvs_core::wire::Ipv6Packet::new_checked(&pkt[..]).unwrap().transport().unwrap().fragment.unwrap();
        prop_assert_eq!((f.offset, f.more, f.ident, f.header_offset), (offset_units * 8, more, ident, l4));
    }
}
