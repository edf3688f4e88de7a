//! Packet builders for the xmit tests, on etherparse only: every checksum here is computed by
//! etherparse (IP, TCP, UDP, ICMP) or by the small independent one's-complement sum below
//! (GRE), never by `lvs_core`, so expected packets built with them check our rewrite
//! independently.
#![allow(dead_code)]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    IcmpEchoHeader, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type, IpNumber, Ipv4Dscp,
    Ipv4Ecn, Ipv4Header, Ipv6FlowLabel, Ipv6Header, TcpHeader, UdpHeader,
};

/// A test address of either family derived from `n` (documentation / private ranges).
pub fn addr(v6: bool, n: u32) -> IpAddr {
    if v6 {
        IpAddr::V6(core::net::Ipv6Addr::new(
            0x2001,
            0xdb8,
            (n >> 16) as u16,
            0,
            0,
            0,
            0,
            n as u16 | 1,
        ))
    } else {
        IpAddr::V4(core::net::Ipv4Addr::from(0x0a00_0001 | (n & 0x00ff_fff0)))
    }
}

/// The client's packet to the virtual service of `m` (TCP or UDP) with `payload` and `ttl`.
pub fn flow(m: &lvs_core::xmit::Mapping, tcp: bool, payload: Vec<u8>, ttl: u8) -> Flow {
    let (c, v) = (m.caddr.to_string(), m.vaddr.to_string());
    let mut f = if tcp {
        Flow::tcp(&c, m.cport, &v, m.vport)
    } else {
        Flow::udp(&c, m.cport, &v, m.vport)
    };
    f.payload = payload;
    f.ttl = ttl;
    f
}

/// One TCP or UDP packet, described by its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// 6 (TCP) or 17 (UDP).
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub ttl: u8,
    /// IPv4 TOS / IPv6 traffic class.
    pub tos: u8,
    /// IPv4 DF.
    pub df: bool,
    /// IPv4 identification.
    pub id: u16,
    pub payload: Vec<u8>,
    /// UDP: compute the checksum (false: 0, "none", IPv4 only).
    pub udp_csum: bool,
}

impl Flow {
    pub fn tcp(src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
        Flow {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: 6,
            sport,
            dport,
            ttl: 64,
            tos: 0,
            df: true,
            id: 0x1234,
            payload: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            udp_csum: true,
        }
    }

    pub fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
        Flow {
            proto: 17,
            payload: b"\x12\x34\x01\x00\x00\x01query".to_vec(),
            ..Flow::tcp(src, sport, dst, dport)
        }
    }

    /// The packet's bytes (IP header first).
    pub fn build(&self) -> Vec<u8> {
        let seg = l4(
            self.src,
            self.dst,
            self.proto,
            self.sport,
            self.dport,
            &self.payload,
            self.udp_csum,
        );
        ip(
            self.src, self.dst, self.proto, self.ttl, self.tos, self.df, self.id, &seg,
        )
    }
}

/// An IPv4 or IPv6 packet around `payload`; `df` and `id` are ignored for IPv6.
#[allow(clippy::too_many_arguments)]
pub fn ip(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ttl: u8,
    tos: u8,
    df: bool,
    id: u16,
    payload: &[u8],
) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4(tos, id, df, ttl, proto, s, d, payload),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6(tos, ttl, proto, s, d, payload),
        _ => panic!("mixed families in one header"),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn ipv4(
    tos: u8,
    id: u16,
    df: bool,
    ttl: u8,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = Ipv4Header::new(
        payload.len() as u16,
        ttl,
        IpNumber(proto),
        src.octets(),
        dst.octets(),
    )
    .unwrap();
    h.dscp = Ipv4Dscp::try_new(tos >> 2).unwrap();
    h.ecn = Ipv4Ecn::try_new(tos & 3).unwrap();
    h.identification = id;
    h.dont_fragment = df;
    h.header_checksum = h.calc_header_checksum();
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

pub fn ipv6(tc: u8, hop: u8, nh: u8, src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let h = Ipv6Header {
        traffic_class: tc,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: payload.len() as u16,
        next_header: IpNumber(nh),
        hop_limit: hop,
        source: src.octets(),
        destination: dst.octets(),
    };
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// A TCP (ACK|PSH, seq 1, window 1024) or UDP segment with its checksum for `src → dst`.
pub fn l4(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
    payload: &[u8],
    udp_csum: bool,
) -> Vec<u8> {
    let mut v = Vec::new();
    if proto == 6 {
        let mut t = TcpHeader::new(sport, dport, 1, 1024);
        t.ack = true;
        t.psh = true;
        t.acknowledgment_number = 7;
        t.checksum = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => t
                .calc_checksum_ipv4_raw(s.octets(), d.octets(), payload)
                .unwrap(),
            (IpAddr::V6(s), IpAddr::V6(d)) => t
                .calc_checksum_ipv6_raw(s.octets(), d.octets(), payload)
                .unwrap(),
            _ => unreachable!(),
        };
        t.write(&mut v).unwrap();
    } else {
        let mut u = UdpHeader {
            source_port: sport,
            destination_port: dport,
            length: (8 + payload.len()) as u16,
            checksum: 0,
        };
        if udp_csum {
            u.checksum = udp_checksum(src, dst, &u, payload);
        }
        v.extend_from_slice(&u.to_bytes());
    }
    v.extend_from_slice(payload);
    v
}

/// etherparse's UDP checksum for `src → dst`.
pub fn udp_checksum(src: IpAddr, dst: IpAddr, u: &UdpHeader, payload: &[u8]) -> u16 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => u
            .calc_checksum_ipv4_raw(s.octets(), d.octets(), payload)
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => u
            .calc_checksum_ipv6_raw(s.octets(), d.octets(), payload)
            .unwrap(),
        _ => unreachable!(),
    }
}

/// An ICMP (IPv4) or ICMPv6 message `type/code/rest` around `body`, checksum by etherparse.
pub fn icmp(src: IpAddr, dst: IpAddr, t: u8, code: u8, rest: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            let h = Icmpv4Header::with_checksum(
                Icmpv4Type::Unknown {
                    type_u8: t,
                    code_u8: code,
                    bytes5to8: rest.to_be_bytes(),
                },
                body,
            );
            h.write(&mut v).unwrap();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let h = Icmpv6Header::with_checksum(
                Icmpv6Type::Unknown {
                    type_u8: t,
                    code_u8: code,
                    bytes5to8: rest.to_be_bytes(),
                },
                s.octets(),
                d.octets(),
                body,
            )
            .unwrap();
            h.write(&mut v).unwrap();
        }
        _ => unreachable!(),
    }
    v.extend_from_slice(body);
    v
}

/// An ICMP echo request (not an error).
pub fn echo(src: IpAddr, dst: IpAddr, ttl: u8) -> Vec<u8> {
    let body = [1u8, 2, 3, 4];
    let msg = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            let h = Icmpv4Header::with_checksum(
                Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 7, seq: 1 }),
                &body,
            );
            let mut v = h.to_bytes().to_vec();
            v.extend_from_slice(&body);
            v
        }
        _ => icmp(src, dst, 128, 0, 0x0007_0001, &body),
    };
    let p = if src.is_ipv4() { 1 } else { 58 };
    ip(src, dst, p, ttl, 0, false, 0x4321, &msg)
}

/// A full ICMP error packet from `from` to `to` quoting `quote`.
#[allow(clippy::too_many_arguments)]
pub fn icmp_error_packet(
    from: IpAddr,
    to: IpAddr,
    ttl: u8,
    t: u8,
    code: u8,
    rest: u32,
    quote: &[u8],
) -> Vec<u8> {
    let msg = icmp(from, to, t, code, rest, quote);
    let p = if from.is_ipv4() { 1 } else { 58 };
    ip(from, to, p, ttl, 0, false, 0x0bad, &msg)
}

/// Independent one's-complement checksum (RFC 1071) over `data`.
pub fn ones_complement(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for ch in data.chunks(2) {
        let w = if ch.len() == 2 {
            u16::from_be_bytes([ch[0], ch[1]])
        } else {
            u16::from_be_bytes([ch[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `pkt` (an IPv4 or IPv6 packet built here) with its TTL / hop limit decremented and the
/// IPv4 header checksum recomputed by etherparse.
pub fn ttl_minus_one(pkt: &[u8]) -> Vec<u8> {
    let mut v = pkt.to_vec();
    if v[0] >> 4 == 4 {
        let (mut h, _) = Ipv4Header::from_slice(&v).unwrap();
        h.time_to_live -= 1;
        h.header_checksum = h.calc_header_checksum();
        let hb = h.to_bytes();
        v[..hb.len()].copy_from_slice(&hb);
    } else {
        v[7] -= 1;
    }
    v
}
