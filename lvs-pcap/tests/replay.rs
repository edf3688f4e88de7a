//! End-to-end replays: the committed captures of real traffic (see `fixtures/README.md`)
//! through NAT, DR and TUN (ipip, gue, gre) over IPv4 and IPv6, the same traffic in other
//! link types and pcapng, synthetic director-side scenarios (NAT replies, ICMP errors both
//! ways, errors the director builds, timeouts), a deliberately corrupted output, a truncated
//! capture, and the DR ARP lint.

use std::path::{Path, PathBuf};
use std::process::Command;

use lvs_core::rules::RuleSet;
use lvs_pcap::capture::{CaptureReader, CaptureWriter, LinkType};
use lvs_pcap::replay::{run, Replay, ReplayOptions, Report, Side};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn rules(name: &str) -> RuleSet {
    RuleSet::from_text(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn locals() -> Vec<std::net::IpAddr> {
    vec!["10.99.0.2".parse().unwrap(), "fd99::2".parse().unwrap()]
}

fn neigh() -> lvs_pcap::neigh::NeighTable {
    lvs_pcap::neigh::parse(&std::fs::read_to_string(fixture("neigh")).unwrap()).unwrap()
}

fn replay_bytes(rules: &RuleSet, options: ReplayOptions, capture: &[u8]) -> (Report, Vec<u8>) {
    let mut reader = CaptureReader::new(capture).unwrap();
    let mut out = Vec::new();
    let report = run(rules, options, &mut reader, Some(&mut out)).unwrap();
    (report, out)
}

fn replay_file(rules_name: &str, capture: &str, options: ReplayOptions) -> (Report, Vec<u8>) {
    let cap = std::fs::read(fixture(capture)).unwrap();
    replay_bytes(&rules(rules_name), options, &cap)
}

fn assert_clean(r: &Report, what: &str) {
    assert_eq!(r.failed, 0, "{what}:\n{}", r.summary());
    assert!(r.packets_out > 0, "{what}: nothing out\n{}", r.summary());
    assert_eq!(r.passed, r.packets_out, "{what}:\n{}", r.summary());
    assert_eq!(r.exit_status(), 0, "{what}");
    assert!(r.input_error.is_none());
}

/// Every output record, as (timestamp, bytes).
fn records(capture: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut r = CaptureReader::new(capture).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        v.push((p.ts_nanos, p.data.to_vec()));
    }
    v
}

#[test]
fn real_traffic_nat_client_side_round_trips_byte_for_byte() {
    for fam in ["v4", "v6"] {
        let options = ReplayOptions {
            side: Side::Client,
            ..ReplayOptions::default()
        };
        let (r, out) = replay_file(
            &format!("nat-{fam}.rules"),
            &format!("real-{fam}.pcap"),
            options,
        );
        assert_clean(&r, fam);
        // HTTP (7 client segments and 6 replies... as captured), UDP, the refused connection.
        assert!(r.client_replies_compared >= 7, "{}", r.summary());
        assert_eq!(r.client_replies_compared, r.client_replies_matched);
        assert_eq!(r.verdicts.replies, r.client_replies_compared);
        // rr: the HTTP flow goes to the head of the list (the real server added last).
        let rs2 = if fam == "v4" {
            "10.100.0.2:8080"
        } else {
            "[fd00:100::2]:8080"
        };
        assert_eq!(r.flows_per_real_server[rs2], 1, "{}", r.summary());
        assert_eq!(r.flows_per_real_server.values().sum::<u64>(), 3);
        // Pings are the director's own business.
        assert!(r.verdicts.not_ours >= 4);
        assert_eq!(records(&out).len() as u64, r.packets_out);
    }
}

#[test]
fn real_traffic_dr_frames_carry_the_real_servers_mac() {
    for fam in ["v4", "v6"] {
        let options = ReplayOptions {
            neigh: neigh(),
            ..ReplayOptions::default()
        };
        let (r, out) = replay_file(
            &format!("dr-{fam}.rules"),
            &format!("real-{fam}.pcap"),
            options,
        );
        assert_clean(&r, fam);
        let mut reader = CaptureReader::new(&out[..]).unwrap();
        assert_eq!(reader.link_type(), LinkType::ETHERNET);
        let mut n = 0;
        while let Some(p) = reader.next_packet().unwrap() {
            let rs = &p.data[..6];
            assert!(
                rs == [2, 0, 0, 0x99, 0, 0x21] || rs == [2, 0, 0, 0x99, 0, 0x22],
                "{rs:02x?}"
            );
            if fam == "v4" {
                // Source: the director's MAC, learnt from the frames sent to the VIP.
                assert_eq!(&p.data[6..12], &[2, 0, 0, 0x99, 0, 0x10]);
            }
            n += 1;
        }
        assert_eq!(n, r.packets_out);
    }
}

#[test]
fn real_traffic_tunnels_ipip_gue_gre_both_families() {
    for fam in ["v4", "v6"] {
        for t in ["ipip", "gue", "gre"] {
            let options = ReplayOptions {
                locals: locals(),
                ..ReplayOptions::default()
            };
            let (r, out) = replay_file(
                &format!("tun-{t}-{fam}.rules"),
                &format!("real-{fam}.pcap"),
                options,
            );
            assert_clean(&r, &format!("{t} {fam}"));
            // Every output decapsulates to an inner packet addressed to the VIP.
            for (_, pkt) in records(&out) {
                let port = if t == "gue" { 6080 } else { 0 };
                let d = lvs_core::xmit::decapsulate(&pkt, port).unwrap();
                let inner = lvs_core::wire::classify(&pkt[d.inner]).unwrap();
                assert_eq!(
                    inner.dst.to_string(),
                    if fam == "v4" {
                        "10.99.0.10"
                    } else {
                        "fd99::10"
                    }
                );
            }
        }
    }
}

#[test]
fn timestamps_are_the_inputs() {
    let cap = std::fs::read(fixture("real-v4.pcap")).unwrap();
    let input: Vec<u64> = records(&cap).iter().map(|r| r.0).collect();
    let options = ReplayOptions {
        locals: locals(),
        ..ReplayOptions::default()
    };
    let (_, out) = replay_bytes(&rules("tun-ipip-v4.rules"), options, &cap);
    for (ts, _) in records(&out) {
        assert!(input.contains(&ts), "{ts}");
    }
}

/// Rewrites a capture's Ethernet frames into another link type and container.
fn convert(cap: &[u8], link: LinkType, vlan: bool, ng: bool) -> Vec<u8> {
    let mut frames = Vec::new();
    for (ts, f) in records(cap) {
        let et = [f[12], f[13]];
        let ip = f[14..].to_vec();
        let to_host = f[0] & 1 == 0;
        let data = match link {
            LinkType::ETHERNET if vlan => {
                let mut v = f[..12].to_vec();
                v.extend([0x81, 0x00, 0x00, 0x2a]);
                v.extend(&f[12..]);
                v
            }
            LinkType::LINUX_SLL => {
                let mut v = vec![0, if to_host { 0 } else { 1 }, 0, 1, 0, 6];
                v.extend(&f[6..12]);
                v.extend([0, 0]);
                v.extend(et);
                v.extend(ip);
                v
            }
            LinkType::LINUX_SLL2 => {
                let mut v = et.to_vec();
                v.extend([0, 0, 0, 0, 0, 2, 0, 1, if to_host { 0 } else { 1 }, 6]);
                v.extend(&f[6..12]);
                v.extend([0, 0]);
                v.extend(ip);
                v
            }
            LinkType::RAW => ip,
            _ => f.clone(),
        };
        frames.push((ts, data));
    }
    if !ng {
        let mut out = Vec::new();
        let mut w = CaptureWriter::new(&mut out, link).unwrap();
        for (ts, d) in &frames {
            w.write_packet(*ts, d).unwrap();
        }
        w.into_inner().unwrap();
        return out;
    }
    // pcapng, big-endian, microsecond resolution (the default), one interface.
    let block = |kind: u32, body: &[u8]| {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = (body.len() + 12) as u32;
        let mut b = kind.to_be_bytes().to_vec();
        b.extend(len.to_be_bytes());
        b.extend(body);
        b.extend(len.to_be_bytes());
        b
    };
    let mut shb = 0x1a2b_3c4du32.to_be_bytes().to_vec();
    shb.extend([0, 1, 0, 0]);
    shb.extend((-1i64).to_be_bytes());
    let mut out = block(0x0a0d_0d0a, &shb);
    let mut idb = link.0.to_be_bytes().to_vec();
    idb.extend([0, 0, 0, 0, 0, 0]);
    out.extend(block(1, &idb));
    for (ts, d) in &frames {
        let us = ts / 1000;
        let mut epb = 0u32.to_be_bytes().to_vec();
        epb.extend(((us >> 32) as u32).to_be_bytes());
        epb.extend((us as u32).to_be_bytes());
        epb.extend((d.len() as u32).to_be_bytes());
        epb.extend((d.len() as u32).to_be_bytes());
        epb.extend(d);
        out.extend(block(6, &epb));
    }
    out
}

#[test]
fn link_types_and_pcapng_give_the_same_result() {
    let cap = std::fs::read(fixture("real-v4.pcap")).unwrap();
    let rules = rules("nat-v4.rules");
    let base = |c: &[u8]| {
        let options = ReplayOptions {
            side: Side::Client,
            ..ReplayOptions::default()
        };
        replay_bytes(&rules, options, c).0
    };
    let reference = base(&cap);
    assert_clean(&reference, "reference");
    for (link, vlan, ng) in [
        (LinkType::ETHERNET, true, false),
        (LinkType::ETHERNET, false, true),
        (LinkType::LINUX_SLL, false, false),
        (LinkType::LINUX_SLL2, false, true),
        (LinkType::RAW, false, false),
    ] {
        let c = convert(&cap, link, vlan, ng);
        let r = base(&c);
        assert_clean(&r, &format!("{link:?} vlan {vlan} ng {ng}"));
        assert_eq!(r.format, if ng { "pcapng" } else { "pcap" });
        assert_eq!(r.packets_out, reference.packets_out, "{link:?}");
        assert_eq!(
            r.client_replies_matched, reference.client_replies_matched,
            "{link:?}"
        );
        assert_eq!(r.flows_per_real_server, reference.flows_per_real_server);
    }
    // An unsupported link type is counted and skipped.
    let mut c = convert(&cap, LinkType::RAW, false, false);
    c[20] = 147;
    let r = base(&c);
    assert_eq!(r.skipped["link_linktype_147"], r.packets_in);
    assert_eq!(r.packets_out, 0);
}

#[test]
fn a_corrupted_output_is_caught_and_named() {
    fn flip_payload(n: u64, pkt: &mut [u8]) {
        // Input packet 4 is the HTTP request: change its last payload byte.
        if n == 4 {
            let last = pkt.len() - 1;
            pkt[last] ^= 0x20;
        }
    }
    fn flip_seq(n: u64, pkt: &mut [u8]) {
        if n == 3 {
            // IPv4 header 20 bytes, TCP sequence number at 4; fix nothing.
            pkt[24] ^= 1;
        }
    }
    fn wrong_ttl(n: u64, pkt: &mut [u8]) {
        if n == 1 {
            pkt[8] -= 1;
            pkt[10] = pkt[10].wrapping_add(1);
        }
    }
    for (tamper, reason, needle) in [
        (
            flip_payload as fn(u64, &mut [u8]),
            "l4_checksum",
            "TCP checksum",
        ),
        (flip_seq, "l4_checksum", "TCP checksum"),
        (wrong_ttl, "ttl", "TTL 64 became 62"),
    ] {
        let options = ReplayOptions {
            tamper: Some(tamper),
            neigh: neigh(),
            ..ReplayOptions::default()
        };
        let (r, _) = replay_file("dr-v4.rules", "real-v4.pcap", options);
        assert_eq!(r.failed, 1, "{}", r.summary());
        assert_eq!(r.exit_status(), 1);
        let f = &r.failures[0];
        assert_eq!(f.reason, reason, "{f:?}");
        assert!(f.detail.contains(needle), "{f:?}");
        assert!(r.summary().contains(&format!("packet {}", f.packet)));
    }
    // A corruption with a valid checksum is named by field.
    fn seq_fixed(n: u64, pkt: &mut [u8]) {
        if n == 3 {
            pkt[24] ^= 1;
            // Compensate in the checksum (RFC 1624 by hand: the word 24..26 changed by 0x0100).
            let c = u16::from_be_bytes([pkt[36], pkt[37]]);
            let c = lvs_core::wire::checksum::update_u16(
                c,
                u16::from_be_bytes([pkt[24] ^ 1, pkt[25]]),
                u16::from_be_bytes([pkt[24], pkt[25]]),
            );
            pkt[36..38].copy_from_slice(&c.to_be_bytes());
        }
    }
    let options = ReplayOptions {
        tamper: Some(seq_fixed),
        neigh: neigh(),
        ..ReplayOptions::default()
    };
    let (r, _) = replay_file("dr-v4.rules", "real-v4.pcap", options);
    assert_eq!(r.failed, 1, "{}", r.summary());
    assert_eq!(r.failures[0].reason, "changed");
    assert!(
        r.failures[0].detail.contains("TCP sequence number"),
        "{:?}",
        r.failures[0]
    );
    assert_eq!(r.failures[0].packet, 3);
}

#[test]
fn truncated_capture_reports_the_offset_and_keeps_what_came_before() {
    let cap = std::fs::read(fixture("real-v4.pcap")).unwrap();
    let all = records(&cap);
    // Cut inside the 6th record: 24-byte header, then 16 + len per record.
    let mut off = 24;
    for (_, d) in &all[..5] {
        off += 16 + d.len();
    }
    let cut = &cap[..off + 20];
    let options = ReplayOptions {
        locals: locals(),
        ..ReplayOptions::default()
    };
    let (r, out) = replay_bytes(&rules("tun-gre-v4.rules"), options, cut);
    assert_eq!(r.packets_in, 5);
    let e = r.input_error.as_ref().unwrap();
    assert_eq!(e.offset, off as u64);
    assert!(
        e.message.contains(&format!("byte offset {off}")),
        "{}",
        e.message
    );
    assert_eq!(r.exit_status(), 2);
    // The client packets among the first five were forwarded and written.
    assert_eq!(records(&out).len() as u64, r.packets_out);
    assert!(r.packets_out >= 3);
    assert_eq!(r.failed, 0);
}

// ----- synthetic director-side scenarios ----------------------------------------------------

fn tcp(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    ttl: u8,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ipv4(src, dst, ttl).tcp(sport, dport, 1000, 4096);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(1),
            'F' => b.fin(),
            'R' => b.rst(),
            _ => b,
        };
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ipv4(src, dst, 64).udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// An ICMPv4 error of `kind`/`code` from `src` to `dst` quoting `quoted`.
fn icmp_error(src: [u8; 4], dst: [u8; 4], kind: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let t = match (kind, code) {
        (3, 4) => etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ),
        (3, _) => etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ),
        _ => etherparse::Icmpv4Type::TimeExceeded(
            etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
        ),
    };
    let b = etherparse::PacketBuilder::ipv4(src, dst, 64).icmpv4(t);
    let mut v = Vec::new();
    b.write(&mut v, &quoted[..quoted.len().min(28)]).unwrap();
    v
}

fn raw_capture(pkts: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = CaptureWriter::new(&mut out, LinkType::RAW).unwrap();
    for (ts, p) in pkts {
        w.write_packet(*ts, p).unwrap();
    }
    w.into_inner().unwrap();
    out
}

const SEC: u64 = 1_000_000_000;
const VIP: [u8; 4] = [10, 0, 0, 1];
const RIP: [u8; 4] = [10, 1, 0, 1];
const C1: [u8; 4] = [192, 0, 2, 7];

fn synthetic_rules() -> RuleSet {
    RuleSet::from_text(
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m\n\
         -A -u 10.0.0.1:53 -s rr\n-a -u 10.0.0.1:53 -r 10.1.0.1:5353 -m\n\
         -A -u 10.0.0.1:123 -s rr\n-a -u 10.0.0.1:123 -r 10.1.0.2:123 -m -w 0\n",
    )
    .unwrap()
}

#[test]
fn synthetic_nat_director_side_replies_icmp_and_timeouts() {
    let t0 = 1_700_000_000 * SEC;
    let syn = tcp(C1, 40000, VIP, 80, 64, "S", b"");
    let synack = tcp(RIP, 8080, C1, 40000, 64, "SA", b"");
    let data = tcp(C1, 40000, VIP, 80, 64, "A", b"GET / HTTP/1.0\r\n\r\n");
    // A router on the real-server side: fragmentation needed about client -> RIP:8080.
    let to_rs = tcp(C1, 40000, RIP, 8080, 63, "A", b"GET / HTTP/1.0\r\n\r\n");
    let frag_needed = icmp_error([10, 1, 0, 254], C1, 3, 4, &to_rs);
    // The client says port unreachable about a VIP:80 -> client packet.
    let from_vip = tcp(VIP, 80, C1, 40000, 64, "A", b"x");
    let unreach = icmp_error(C1, VIP, 3, 3, &from_vip);
    let ttl1 = tcp(C1, 40000, VIP, 80, 1, "A", b"late");
    let no_dest = udp(C1, 5000, VIP, 123, b"ntp");
    let dns = udp(C1, 5001, VIP, 53, b"q1");
    let dns_reply = udp(RIP, 5353, C1, 5001, b"a1");
    let pkts = vec![
        (t0, syn),
        (t0 + 1000, synack),
        (t0 + 2000, data),
        (t0 + 3000, frag_needed),
        (t0 + 4000, unreach),
        (t0 + 5000, ttl1),
        (t0 + 6000, no_dest),
        (t0 + 7000, dns.clone()),
        (t0 + 8000, dns_reply),
        // 400 s later the UDP connection (300 s timeout) has expired: a new life.
        (t0 + 400 * SEC, dns),
    ];
    let options = ReplayOptions {
        locals: locals(),
        ..ReplayOptions::default()
    };
    let (r, out) = replay_bytes(&synthetic_rules(), options, &raw_capture(&pkts));
    assert_clean(&r, "synthetic");
    assert_eq!(r.packets_in, 10);
    // syn, data, client-side ICMP, dns, dns again.
    assert_eq!(r.verdicts.forwarded, 5, "{}", r.summary());
    // syn-ack, the router's ICMP, the DNS answer.
    assert_eq!(r.verdicts.replies, 3, "{}\n{:?}", r.summary(), r.verdicts);
    assert_eq!(r.verdicts.icmp_generated, 2, "{}", r.summary());
    assert_eq!(r.drop_reasons["ttl_expired"], 1);
    assert_eq!(r.drop_reasons["no_destination"], 1);
    // The UDP flow lived twice on its real server: the timer fired between packets.
    assert_eq!(r.flows_per_real_server["10.1.0.1:5353"], 2);
    assert_eq!(r.flows_per_real_server["10.1.0.1:8080"], 1);
    let recs = records(&out);
    assert_eq!(recs.len(), 10);
    // The router's error now comes from the VIP and quotes client -> VIP:80.
    let (_, e) = &recs[3];
    let c = lvs_core::wire::classify(e).unwrap();
    assert_eq!(c.src.to_string(), "10.0.0.1");
    let q = lvs_core::wire::QuotedPacket::new_checked(&e[c.l4_offset + 8..]).unwrap();
    assert_eq!(
        (q.dst_addr().to_string(), q.dst_port()),
        ("10.0.0.1".to_string(), 80)
    );
}

/// Splits an IPv4 packet (20-byte header) into fragments of `size` payload bytes.
fn fragments(ip: &[u8], size: usize) -> Vec<Vec<u8>> {
    let body = &ip[20..];
    let mut v = Vec::new();
    for (i, chunk) in body.chunks(size).enumerate() {
        let mut f = ip[..20].to_vec();
        f.extend_from_slice(chunk);
        let len = f.len() as u16;
        f[2..4].copy_from_slice(&len.to_be_bytes());
        let more = (i + 1) * size < body.len();
        let off = ((i * size / 8) as u16) | if more { 0x2000 } else { 0 };
        f[6..8].copy_from_slice(&off.to_be_bytes());
        f[10..12].copy_from_slice(&[0, 0]);
        let sum = !lvs_core::wire::checksum::data(&f[..20]);
        f[10..12].copy_from_slice(&sum.to_be_bytes());
        v.push(f);
    }
    v
}

#[test]
fn ipv4_fragments_are_reassembled_before_the_director() {
    // A 3000-byte DNS query in three fragments, the last first: the kernel reassembles
    // before IPVS looks (spec 3.0), so NAT forwards the whole datagram once.
    let t0 = 1_700_000_000 * SEC;
    let mut dns = udp(C1, 5001, VIP, 53, &[b'q'; 3000]);
    dns[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    let mut frags = fragments(&dns, 1480);
    assert_eq!(frags.len(), 3);
    frags.rotate_right(1);
    // An incomplete datagram too: its first fragment only.
    let mut lone = udp(C1, 5002, VIP, 53, &[b'z'; 2000]);
    lone[4..6].copy_from_slice(&0x5678u16.to_be_bytes());
    let lone_first = fragments(&lone, 1480).remove(0);
    let mut pkts: Vec<(u64, Vec<u8>)> = frags
        .into_iter()
        .enumerate()
        .map(|(i, f)| (t0 + i as u64 * 1000, f))
        .collect();
    pkts.push((t0 + 5000, lone_first));
    let (r, out) = replay_bytes(
        &synthetic_rules(),
        ReplayOptions::default(),
        &raw_capture(&pkts),
    );
    assert_clean(&r, "fragments");
    assert_eq!(
        (r.packets_in, r.packets_processed),
        (4, 1),
        "{}",
        r.summary()
    );
    assert_eq!(r.verdicts.forwarded, 1, "{}", r.summary());
    assert!(r.drop_reasons.is_empty(), "{}", r.summary());
    assert_eq!(r.skipped["fragment_held"], 3, "{}", r.summary());
    assert_eq!(r.skipped["fragment_incomplete"], 1, "{}", r.summary());
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    let (ts, p) = &recs[0];
    // Stamped with the fragment that completed it; the whole datagram, to the real server.
    assert_eq!(*ts, t0 + 2000);
    assert_eq!(p.len(), dns.len());
    let c = lvs_core::wire::classify(p).unwrap();
    assert!(!c.is_fragment);
    assert_eq!(
        (c.dst.to_string(), c.dst_port),
        ("10.1.0.1".to_string(), 5353)
    );
    assert_eq!(&p[28..], &dns[28..]);
}

#[test]
fn two_armed_director_replies_arrive_at_its_other_mac() {
    // Clients reach the director on one NIC (MAC ..:01), real servers on another (..:02),
    // both captured into one Ethernet file (dumpcap -i eth0 -i eth1, or mergecap).
    const OUTSIDE: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const INSIDE: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const CLIENT: [u8; 6] = [2, 0, 0, 0, 0, 7];
    const SERVER: [u8; 6] = [2, 0, 0, 0, 0, 9];
    let frame = |dst: [u8; 6], src: [u8; 6], ip: Vec<u8>| {
        let mut f = dst.to_vec();
        f.extend(src);
        f.extend([0x08, 0x00]);
        f.extend(ip);
        f
    };
    let t0 = 1_700_000_000 * SEC;
    let frames = [
        frame(OUTSIDE, CLIENT, tcp(C1, 40000, VIP, 80, 64, "S", b"")),
        // What the director itself sent to the real server, seen on the inside NIC.
        frame(SERVER, INSIDE, tcp(C1, 40000, RIP, 8080, 63, "S", b"")),
        frame(INSIDE, SERVER, tcp(RIP, 8080, C1, 40000, 64, "SA", b"")),
        // What the director sent to the client, seen on the outside NIC.
        frame(CLIENT, OUTSIDE, tcp(VIP, 80, C1, 40000, 63, "SA", b"")),
        frame(OUTSIDE, CLIENT, tcp(C1, 40000, VIP, 80, 64, "A", b"")),
    ];
    let mut cap = Vec::new();
    let mut w = CaptureWriter::new(&mut cap, LinkType::ETHERNET).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(t0 + i as u64 * 1000, f).unwrap();
    }
    w.into_inner().unwrap();
    let (r, _) = replay_bytes(&synthetic_rules(), ReplayOptions::default(), &cap);
    assert_clean(&r, "two-armed");
    assert_eq!(
        (r.verdicts.forwarded, r.verdicts.replies),
        (2, 1),
        "{}",
        r.summary()
    );
    assert_eq!(r.skipped["not_to_director_mac"], 2, "{}", r.summary());
}

#[test]
fn synthetic_reply_for_another_flow_is_a_failure() {
    // The director translates a reply of flow A; tampering sends it to another client port.
    fn other_client(n: u64, pkt: &mut [u8]) {
        if n == 2 {
            // Destination port of the reply (IPv4 20 bytes + 2).
            pkt[23] ^= 1;
        }
    }
    let t0 = SEC;
    let pkts = vec![
        (t0, tcp(C1, 40000, VIP, 80, 64, "S", b"")),
        (t0 + 1, tcp(RIP, 8080, C1, 40000, 64, "SA", b"")),
    ];
    let options = ReplayOptions {
        tamper: Some(other_client),
        ..ReplayOptions::default()
    };
    let (r, _) = replay_bytes(&synthetic_rules(), options, &raw_capture(&pkts));
    assert_eq!(r.failed, 1, "{}", r.summary());
    // The port changed without a checksum fix: caught by the checksum first.
    assert_eq!(r.failures[0].packet, 2);
}

#[test]
fn dr_lint_flags_a_real_server_answering_arp_for_the_vip() {
    let mut f = vec![0xff; 6];
    f.extend([2, 0, 0, 0x99, 0, 0x21]);
    f.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    f.extend([2, 0, 0, 0x99, 0, 0x21, 10, 99, 0, 10]);
    f.extend([2, 0, 0, 0x99, 0, 1, 10, 99, 0, 1]);
    let mut cap = Vec::new();
    let mut w = CaptureWriter::new(&mut cap, LinkType::ETHERNET).unwrap();
    w.write_packet(SEC, &f).unwrap();
    w.into_inner().unwrap();
    let options = ReplayOptions {
        neigh: neigh(),
        ..ReplayOptions::default()
    };
    let (r, _) = replay_bytes(&rules("dr-v4.rules"), options, &cap);
    assert_eq!(r.failed, 1);
    assert_eq!(r.failures[0].reason, "dr_arp_vip");
    assert!(r.failures[0].detail.contains("02:00:00:99:00:21"));
    assert_eq!(r.exit_status(), 1);
}

#[test]
fn setup_errors() {
    let dr = rules("dr-v4.rules");
    assert!(Replay::<Vec<u8>>::new(&dr, ReplayOptions::default(), None).is_err());
    let tun = rules("tun-ipip-v4.rules");
    let e = Replay::<Vec<u8>>::new(&tun, ReplayOptions::default(), None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("--local"), "{e}");
}

// ----- the binary -------------------------------------------------------------------------

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lvs-pcap"))
}

#[test]
fn cli_json_report_and_exit_statuses() {
    let dir = std::env::temp_dir().join(format!("lvs-pcap-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.pcap");
    let o = bin()
        .args(["replay", "--rules"])
        .arg(fixture("tun-gue-v6.rules"))
        .arg("--in")
        .arg(fixture("real-v6.pcap"))
        .arg("--out")
        .arg(&out)
        .args(["--local", "fd99::2", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["failed"], 0);
    assert_eq!(v["passed"], v["packets_out"]);
    assert!(v["packets_out"].as_u64().unwrap() > 0);
    assert!(std::fs::metadata(&out).unwrap().len() > 24);

    // Truncated input: exit 2, the offset on stderr.
    let cap = std::fs::read(fixture("real-v6.pcap")).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &cap[..cap.len() - 7]).unwrap();
    let o = bin()
        .args(["replay", "--rules"])
        .arg(fixture("nat-v6.rules"))
        .arg("--in")
        .arg(&cut)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("byte offset"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A bad neighbour file: exit 2 with line and column.
    let bad = dir.join("neigh");
    std::fs::write(&bad, "10.99.0.21 02:00:00:99:00:21\n10.99.0.22 zz\n").unwrap();
    let o = bin()
        .args(["replay", "--rules"])
        .arg(fixture("dr-v4.rules"))
        .arg("--in")
        .arg(fixture("real-v4.pcap"))
        .arg("--neigh")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(":2:12:"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records fresh captures of real traffic with `scripts/capture-fixtures.sh` (network
/// namespaces, python3 -m http.server, curl, tcpdump) and replays them. Needs root and
/// tcpdump; otherwise it says why it is skipped.
#[test]
fn fresh_captures_of_real_traffic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/capture-fixtures.sh");
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let have = |t: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !is_root || !have("tcpdump") || !have("curl") || !have("python3") || !have("ip") {
        eprintln!(
            "skipped: recording real traffic needs root, tcpdump, curl, python3 and iproute2"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("lvs-pcap-real-{}", std::process::id()));
    let o = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .output()
        .unwrap();
    if o.status.code() == Some(3) {
        eprintln!("skipped: {}", String::from_utf8_lossy(&o.stderr));
        return;
    }
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for fam in ["v4", "v6"] {
        let cap = std::fs::read(dir.join(format!("real-{fam}.pcap"))).unwrap();
        let options = ReplayOptions {
            side: Side::Client,
            ..ReplayOptions::default()
        };
        let (r, _) = replay_bytes(&rules(&format!("nat-{fam}.rules")), options, &cap);
        assert_clean(&r, &format!("fresh nat {fam}"));
        // HTTP, UDP and the refused connection each went to a real server and came back.
        assert_eq!(
            r.flows_per_real_server.values().sum::<u64>(),
            3,
            "{}",
            r.summary()
        );
        assert!(r.client_replies_matched >= 5, "{}", r.summary());
        let options = ReplayOptions {
            locals: locals(),
            ..ReplayOptions::default()
        };
        let (r, _) = replay_bytes(&rules(&format!("tun-gre-{fam}.rules")), options, &cap);
        assert_clean(&r, &format!("fresh gre {fam}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
