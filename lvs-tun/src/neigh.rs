//! Link-layer resolution on the tap device (DR, spec 3.3): the director must put the real
//! server's MAC on each frame. The runtime learns MACs from the ARP and neighbour discovery
//! traffic it sees on the segment and asks with its own requests when one is missing.
//!
//! Requests never claim an address of the segment: ARP requests are probes (sender address
//! 0.0.0.0, RFC 5227), which Linux answers without caching the sender; neighbour
//! solicitations come from the link-local address derived from the runtime's own MAC.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use lvs_core::wire::{checksum, ethertype};

/// Most entries kept; learning stops adding new addresses past this (bounded memory).
pub const MAX_ENTRIES: usize = 4096;

/// The MAC of an IP address on the segment, as learned.
#[derive(Debug, Default)]
pub struct Neighbours {
    map: Mutex<HashMap<IpAddr, [u8; 6]>>,
}

impl Neighbours {
    /// The learned MAC of `ip`.
    pub fn get(&self, ip: IpAddr) -> Option<[u8; 6]> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ip)
            .copied()
    }

    /// Records `ip` at `mac` (updates an entry; adds one while there is room). Ignores
    /// unspecified, multicast and broadcast addresses.
    pub fn learn(&self, ip: IpAddr, mac: [u8; 6]) {
        if ip.is_unspecified() || ip.is_multicast() || mac[0] & 1 == 1 || mac == [0; 6] {
            return;
        }
        if let IpAddr::V4(v4) = ip {
            if v4.is_broadcast() {
                return;
            }
        }
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() < MAX_ENTRIES || m.contains_key(&ip) {
            m.insert(ip, mac);
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Learns from one Ethernet frame if it is ARP (sender), a neighbour solicitation (source
    /// link-layer option) or a neighbour advertisement (target link-layer option, or the
    /// frame's source). Returns whether the frame was ARP or neighbour discovery.
    pub fn learn_from_frame(&self, frame: &[u8]) -> bool {
        let Some(et) = frame.get(12..14) else {
            return false;
        };
        match u16::from_be_bytes([et[0], et[1]]) {
            ethertype::ARP => {
                // htype 1, ptype IPv4, hlen 6, plen 4.
                if let Some(a) = frame.get(14..42) {
                    if a[0..6] == [0, 1, 8, 0, 6, 4] {
                        let mut mac = [0u8; 6];
                        mac.copy_from_slice(&a[8..14]);
                        let ip = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
                        self.learn(IpAddr::V4(ip), mac);
                    }
                }
                true
            }
            ethertype::IPV6 => {
                let Some(ip6) = frame.get(14..) else {
                    return false;
                };
                // Neighbour discovery: next header ICMPv6 directly, hop limit 255.
                if ip6.len() < 40 + 24 || ip6[6] != 58 || ip6[7] != 255 {
                    return false;
                }
                let icmp = &ip6[40..];
                let ty = icmp[0];
                if ty != 135 && ty != 136 {
                    return false;
                }
                let mut target = [0u8; 16];
                target.copy_from_slice(&icmp[8..24]);
                let mut src = [0u8; 16];
                src.copy_from_slice(&ip6[8..24]);
                // Options: type, length in units of 8 bytes; bounded by the packet.
                let mut opt_mac = None;
                let mut opts = &icmp[24..];
                while opts.len() >= 8 {
                    let len = usize::from(opts[1]) * 8;
                    if len == 0 || len > opts.len() {
                        break;
                    }
                    let want = if ty == 135 { 1 } else { 2 };
                    if opts[0] == want {
                        let mut mac = [0u8; 6];
                        mac.copy_from_slice(&opts[2..8]);
                        opt_mac = Some(mac);
                    }
                    opts = &opts[len..];
                }
                if ty == 136 {
                    let mut eth_src = [0u8; 6];
                    eth_src.copy_from_slice(&frame[6..12]);
                    self.learn(
                        IpAddr::V6(Ipv6Addr::from(target)),
                        opt_mac.unwrap_or(eth_src),
                    );
                } else if let Some(mac) = opt_mac {
                    self.learn(IpAddr::V6(Ipv6Addr::from(src)), mac);
                }
                true
            }
            _ => false,
        }
    }
}

/// The link-local address (modified EUI-64) of `mac`.
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 2,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ])
}

/// An Ethernet frame asking for the MAC of `ip` from `our_mac`: an ARP probe for IPv4, a
/// neighbour solicitation to the solicited-node address for IPv6.
pub fn request(ip: IpAddr, our_mac: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::with_capacity(86);
    match ip {
        IpAddr::V4(t) => {
            f.extend_from_slice(&[0xff; 6]);
            f.extend_from_slice(&our_mac);
            f.extend_from_slice(&ethertype::ARP.to_be_bytes());
            f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&our_mac);
            f.extend_from_slice(&[0; 4]);
            f.extend_from_slice(&[0; 6]);
            f.extend_from_slice(&t.octets());
        }
        IpAddr::V6(t) => {
            let o = t.octets();
            let dst = Ipv6Addr::from([
                0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
            ]);
            let src = link_local(our_mac);
            f.extend_from_slice(&[0x33, 0x33, 0xff, o[13], o[14], o[15]]);
            f.extend_from_slice(&our_mac);
            f.extend_from_slice(&ethertype::IPV6.to_be_bytes());
            // IPv6 header: payload 32, next header 58, hop limit 255.
            f.extend_from_slice(&[0x60, 0, 0, 0, 0, 32, 58, 255]);
            f.extend_from_slice(&src.octets());
            f.extend_from_slice(&dst.octets());
            let mut icmp = [0u8; 32];
            icmp[0] = 135;
            icmp[8..24].copy_from_slice(&o);
            icmp[24] = 1;
            icmp[25] = 1;
            icmp[26..32].copy_from_slice(&our_mac);
            let sum = checksum::combine(&[
                checksum::pseudo_header_v6(&src, &dst, 58, 32),
                checksum::data(&icmp),
            ]);
            icmp[2..4].copy_from_slice(&(!sum).to_be_bytes());
            f.extend_from_slice(&icmp);
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    #[test]
    fn arp_probe_layout_and_learning_from_a_reply() {
        let ip: IpAddr = "10.0.1.11".parse().unwrap();
        let f = request(ip, MAC);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[28..32], &[0, 0, 0, 0], "a probe claims no address");
        assert_eq!(&f[38..42], &[10, 0, 1, 11]);
        // A reply: swap roles.
        let mut r = f.clone();
        r[21] = 2;
        r[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 0x11]);
        r[28..32].copy_from_slice(&[10, 0, 1, 11]);
        let n = Neighbours::default();
        assert!(n.learn_from_frame(&r));
        assert_eq!(n.get(ip), Some([2, 0, 0, 0, 0, 0x11]));
        // The probe itself teaches nothing (sender 0.0.0.0).
        let n2 = Neighbours::default();
        n2.learn_from_frame(&f);
        assert!(n2.is_empty());
    }

    #[test]
    fn solicitation_checksum_verifies_and_advertisement_is_learned() {
        let ip: Ipv6Addr = "fd00:1::11".parse().unwrap();
        let f = request(IpAddr::V6(ip), MAC);
        assert_eq!(f.len(), 14 + 40 + 32);
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap());
        let sum = checksum::combine(&[
            checksum::pseudo_header_v6(&src, &dst, 58, 32),
            checksum::data(&f[54..]),
        ]);
        assert_eq!(sum, 0xffff);
        // Turn it into an advertisement from the target.
        let mut a = f.clone();
        a[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x22]);
        a[54] = 136;
        a[78] = 2;
        a[80..86].copy_from_slice(&[2, 0, 0, 0, 0, 0x22]);
        let n = Neighbours::default();
        assert!(n.learn_from_frame(&a));
        assert_eq!(n.get(IpAddr::V6(ip)), Some([2, 0, 0, 0, 0, 0x22]));
    }

    #[test]
    fn truncated_and_odd_frames_teach_nothing() {
        let n = Neighbours::default();
        for len in 0..90 {
            let f = vec![0x86; len];
            n.learn_from_frame(&f);
        }
        let mut nd = request(IpAddr::V6("fd00::1".parse().unwrap()), MAC);
        nd[79] = 0; // zero-length option: stop, no loop
        n.learn_from_frame(&nd);
        assert!(n.is_empty());
    }
}
