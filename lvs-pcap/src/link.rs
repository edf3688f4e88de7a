//! Link-layer headers of captured packets: where the IP packet starts, and what the frame
//! says about who sent it to whom.
//!
//! ```
//! use lvs_pcap::capture::LinkType;
//! use lvs_pcap::link::{decode, Decoded};
//! let mut frame = vec![0u8; 14];
//! frame[12..14].copy_from_slice(&[0x08, 0x00]);
//! frame.extend([0x45, 0, 0, 20]);
//! match decode(LinkType::ETHERNET, &frame) {
//!     Decoded::Ip { offset, to_host: true, .. } => assert_eq!(offset, 14),
//!     d => panic!("{d:?}"),
//! }
//! ```

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::capture::LinkType;

/// A MAC address.
pub type Mac = [u8; 6];

/// What a captured frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// An IPv4 or IPv6 packet at `offset`.
    Ip {
        /// Where the IP header starts.
        offset: usize,
        /// Whether the frame was addressed to the capturing host (`PACKET_HOST`): Ethernet
        /// unicast (any unicast MAC: the capture point is the director), SLL packet type 0.
        /// IPVS ignores everything else (spec 3.0).
        to_host: bool,
        /// Ethernet destination and source MACs, when the link layer has them.
        macs: Option<(Mac, Mac)>,
    },
    /// An ARP packet (Ethernet, SLL, SLL2).
    Arp(Arp),
    /// Not IP or ARP: the protocol number (Ethernet type).
    OtherProtocol(u16),
    /// A link type this tool does not read.
    UnsupportedLink,
    /// The frame is shorter than its link-layer header.
    Truncated,
}

/// The fields of an Ethernet/IPv4 ARP packet the DR lint needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
/// Most VLAN tags stripped (802.1ad outer + 802.1Q inner, and one more to be lenient).
const MAX_TAGS: usize = 3;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn mac(b: &[u8], at: usize) -> Option<Mac> {
    b.get(at..at + 6)?.try_into().ok()
}

/// Decodes the link layer of one captured frame.
pub fn decode(link: LinkType, data: &[u8]) -> Decoded {
    match link {
        LinkType::ETHERNET => ethernet(data),
        LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 | LinkType::IPV4 | LinkType::IPV6 => {
            raw(data)
        }
        LinkType::LINUX_SLL => {
            // pkttype(2) hatype(2) addrlen(2) addr(8) protocol(2).
            let (Some(pkttype), Some(proto)) = (be16(data, 0), be16(data, 14)) else {
                return Decoded::Truncated;
            };
            // A VLAN tag here (protocol 0x8100, put back by libpcap) is the copy `-i any`
            // took on the parent device; the kernel hands the same packet to the capture
            // again, untagged, on the VLAN device. It stays `OtherProtocol`, so the packet is
            // replayed once.
            payload(data, 16, proto, pkttype == 0, None)
        }
        LinkType::LINUX_SLL2 => {
            // protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) addrlen(1) addr(8).
            let (Some(proto), Some(&pkttype)) = (be16(data, 0), data.get(10)) else {
                return Decoded::Truncated;
            };
            if data.len() < 20 {
                return Decoded::Truncated;
            }
            payload(data, 20, proto, pkttype == 0, None)
        }
        _ => Decoded::UnsupportedLink,
    }
}

fn raw(data: &[u8]) -> Decoded {
    match data.first().map(|b| b >> 4) {
        Some(4 | 6) => Decoded::Ip {
            offset: 0,
            to_host: true,
            macs: None,
        },
        Some(_) => Decoded::OtherProtocol(0),
        None => Decoded::Truncated,
    }
}

fn ethernet(data: &[u8]) -> Decoded {
    let (Some(dst), Some(src)) = (mac(data, 0), mac(data, 6)) else {
        return Decoded::Truncated;
    };
    let mut at = 12;
    let mut et = match be16(data, at) {
        Some(e) => e,
        None => return Decoded::Truncated,
    };
    let mut tags = 0;
    while (et == ETH_VLAN || et == ETH_QINQ) && tags < MAX_TAGS {
        at += 4;
        et = match be16(data, at) {
            Some(e) => e,
            None => return Decoded::Truncated,
        };
        tags += 1;
    }
    // Group bit clear: unicast, which at the director's capture point is its own MAC.
    let to_host = dst[0] & 1 == 0;
    payload(data, at + 2, et, to_host, Some((dst, src)))
}

fn payload(data: &[u8], at: usize, proto: u16, to_host: bool, macs: Option<(Mac, Mac)>) -> Decoded {
    if data.len() < at {
        return Decoded::Truncated;
    }
    match proto {
        ETH_IPV4 | ETH_IPV6 => Decoded::Ip {
            offset: at,
            to_host,
            macs,
        },
        ETH_ARP => match arp(&data[at..]) {
            Some(a) => Decoded::Arp(a),
            None => Decoded::Truncated,
        },
        p => Decoded::OtherProtocol(p),
    }
}

fn arp(b: &[u8]) -> Option<Arp> {
    // Ethernet (1) / IPv4 (0x0800), hlen 6, plen 4.
    if be16(b, 0)? != 1 || be16(b, 2)? != ETH_IPV4 || *b.get(4)? != 6 || *b.get(5)? != 4 {
        return None;
    }
    let ip = |at: usize| -> Option<Ipv4Addr> {
        let x: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(x))
    };
    Some(Arp {
        op: be16(b, 6)?,
        sender_mac: mac(b, 8)?,
        sender_ip: ip(14)?,
        target_ip: ip(24)?,
    })
}

/// An IPv6 Neighbor Advertisement's target and its link-layer address option, if `ip` is
/// one (for the DR lint: a real server advertising the VIP).
pub fn neighbor_advertisement(ip: &[u8]) -> Option<(Ipv6Addr, Option<Mac>)> {
    // IPv6 header, next header ICMPv6 directly, type 136.
    if ip.first()? >> 4 != 6 || *ip.get(6)? != 58 || *ip.get(40)? != 136 {
        return None;
    }
    let t: [u8; 16] = ip.get(48..64)?.try_into().ok()?;
    // Option 2 (target link-layer address), length 1 (8 bytes).
    let m = match (ip.get(64), ip.get(65)) {
        (Some(2), Some(1)) => mac(ip, 66),
        _ => None,
    };
    Some((Ipv6Addr::from(t), m))
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Builds the 14-byte Ethernet header of an output frame carrying an IP packet of `addr`'s
/// family.
pub fn ethernet_header(dst: Mac, src: Mac, ip: &[u8]) -> [u8; 14] {
    let mut h = [0u8; 14];
    h[0..6].copy_from_slice(&dst);
    h[6..12].copy_from_slice(&src);
    let et = if ip.first().map(|b| b >> 4) == Some(6) {
        ETH_IPV6
    } else {
        ETH_IPV4
    };
    h[12..14].copy_from_slice(&et.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_tags_are_stripped() {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend([0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x86, 0xdd]);
        f.push(0x60);
        assert!(matches!(
            decode(LinkType::ETHERNET, &f),
            Decoded::Ip {
                offset: 22,
                to_host: true,
                ..
            }
        ));
        f[0] = 0xff;
        assert!(matches!(
            decode(LinkType::ETHERNET, &f),
            Decoded::Ip { to_host: false, .. }
        ));
        assert_eq!(decode(LinkType::ETHERNET, &f[..15]), Decoded::Truncated);
    }

    #[test]
    fn cooked_captures() {
        let mut sll = vec![0u8; 16];
        sll[14..16].copy_from_slice(&[0x08, 0x00]);
        sll.push(0x45);
        assert!(matches!(
            decode(LinkType::LINUX_SLL, &sll),
            Decoded::Ip {
                offset: 16,
                to_host: true,
                macs: None
            }
        ));
        sll[1] = 4; // PACKET_OUTGOING
        assert!(matches!(
            decode(LinkType::LINUX_SLL, &sll),
            Decoded::Ip { to_host: false, .. }
        ));
        let mut sll2 = vec![0u8; 20];
        sll2[0..2].copy_from_slice(&[0x86, 0xdd]);
        sll2.push(0x60);
        assert!(matches!(
            decode(LinkType::LINUX_SLL2, &sll2),
            Decoded::Ip {
                offset: 20,
                to_host: true,
                ..
            }
        ));
        assert_eq!(decode(LinkType(147), &sll2), Decoded::UnsupportedLink);
        // `-i any`: the tagged copy from the parent device is not the one replayed.
        let mut tagged = vec![0u8; 14];
        tagged.extend([0x81, 0x00, 0x00, 0x0a, 0x08, 0x00, 0x45]);
        assert_eq!(
            decode(LinkType::LINUX_SLL, &tagged),
            Decoded::OtherProtocol(0x8100)
        );
    }

    #[test]
    fn arp_reply() {
        let mut f = vec![0xffu8; 6];
        f.extend([2, 0, 0, 0, 0, 9]);
        f.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
        f.extend([2, 0, 0, 0, 0, 9, 10, 0, 0, 1]);
        f.extend([0, 0, 0, 0, 0, 0, 10, 0, 0, 7]);
        let Decoded::Arp(a) = decode(LinkType::ETHERNET, &f) else {
            panic!()
        };
        assert_eq!(a.op, 2);
        assert_eq!(a.sender_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(a.target_ip, Ipv4Addr::new(10, 0, 0, 7));
        assert_eq!(fmt_mac(&a.sender_mac), "02:00:00:00:00:09");
    }
}
