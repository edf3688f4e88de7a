//! `director_ops`: arbitrary sequences of control operations (commands, whole rule sets,
//! sysctls, zeroing) and flow operations (client packets, replies, time steps) on a small
//! director, checking after every step that each real server's counters equal a recount of
//! the live entries bound to it, that the table stays within its capacity, that no entry
//! outlives its timeout by a tick, that forwarded packets go to a configured real server, and
//! that everything drains in the end. Op 15 runs packet bytes through `handle_packet`,
//! through `handle_classified_hinted` with the packet's own hint, or as a burst of one through
//! `handle_burst` (client packets, replies, ICMP errors quoting either direction, TTL 1) and
//! checks the verdict's ranges and next hops.

use std::net::{IpAddr, SocketAddr};

use lvs_core::conn::{ConnFlags, HashKey};
use lvs_core::director::{
    Director, DirectorConfig, FlowPacket, FlowVerdict, PacketDir, PacketVerdict, Sysctls,
};
use lvs_core::rules::{Command, DestConfig, Forward, RuleSet, ServiceConfig, ServiceKey};
use lvs_core::sched::SchedKind;
use lvs_core::wire::checksum;
use lvs_core::{Duration, Instant, Protocol};

const CAP: u32 = 32;
const TICK: Duration = Duration::from_millis(125);

const RULE_SETS: [&str; 3] = [
    "-A -t 10.0.0.1:80 -s wlc -p 30 -M 255.255.255.0\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -x 2\n\
     -a -t 10.0.0.1:80 -r 10.1.0.2:80 -m\n-A -u 10.0.0.1:53 -s rr -o\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n\
     -A -f 7 -s sh -p 20\n-a -f 7 -r 10.1.0.3:0 -m\n-A -t 10.0.0.2:0 -s lblc -p 10\n-a -t 10.0.0.2:0 -r 10.1.0.4:0\n",
    "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 3\n-a -t 10.0.0.1:80 -r 10.1.0.5:80 -m\n\
     -A -u 10.0.0.2:5000 -s mh\n-a -u 10.0.0.2:5000 -r 10.1.0.6:5000 -m\n--set 20 10 30\n",
    "-A -f 7 -s twos\n-a -f 7 -r 10.1.0.3:0 -m\n-a -f 7 -r 10.1.0.7:8080 -m -x 1 -y 0\n",
];

fn vips() -> [(Protocol, SocketAddr, u32); 6] {
    let s = |x: &str| x.parse::<SocketAddr>().unwrap();
    [
        (Protocol::Tcp, s("10.0.0.1:80"), 0),
        (Protocol::Udp, s("10.0.0.1:53"), 0),
        (Protocol::Tcp, s("10.0.0.2:443"), 0),
        (Protocol::Udp, s("10.0.0.2:5000"), 0),
        (Protocol::Tcp, s("10.0.0.9:25"), 7),
        (Protocol::Udp, s("10.0.0.1:80"), 7),
    ]
}

fn dests() -> [(IpAddr, u16); 8] {
    let a = |x: &str| x.parse::<IpAddr>().unwrap();
    [
        (a("10.1.0.1"), 80),
        (a("10.1.0.2"), 80),
        (a("10.1.0.1"), 53),
        (a("10.1.0.3"), 0),
        (a("10.1.0.4"), 0),
        (a("10.1.0.5"), 80),
        (a("10.1.0.6"), 5000),
        (a("10.1.0.7"), 8080),
    ]
}

fn services() -> [ServiceKey; 5] {
    [
        "-t 10.0.0.1:80".parse().unwrap(),
        "-u 10.0.0.1:53".parse().unwrap(),
        "-f 7".parse().unwrap(),
        "-t 10.0.0.2:0".parse().unwrap(),
        "-u 10.0.0.2:5000".parse().unwrap(),
    ]
}

fn check(d: &Director) {
    assert!(d.table().len() <= CAP as usize, "capacity exceeded");
    let conns: Vec<_> = d.table().iter().collect();
    for (_, cfg, info, _) in d.all_dests() {
        let (mut a, mut i, mut p) = (0u32, 0u32, 0u32);
        for c in conns.iter().filter(|c| c.dest == Some(info.id)) {
            if c.is_template() {
                p += 1;
            } else if c.flags.contains(ConnFlags::INACTIVE) {
                i += 1;
            } else {
                a += 1;
            }
        }
        assert_eq!(
            (info.activeconns, info.inactconns, info.persistconns),
            (a, i, p),
            "counters of {}:{}",
            cfg.addr,
            cfg.port
        );
    }
}

fn settle(d: &mut Director, now: Instant) {
    let mut guard = 0;
    while d.poll_timeout().is_some_and(|t| t <= now) {
        d.handle_timeout(now);
        guard += 1;
        assert!(guard < 100_000, "timers never settle");
    }
}

/// An IPv4 packet `src → dst` around `l4` (header checksum filled).
fn ipv4(src: IpAddr, dst: IpAddr, protocol: u8, ttl: u8, l4: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else {
        unreachable!("the fuzz addresses are IPv4")
    };
    let len = (20 + l4.len()) as u16;
    let mut v = vec![0x45, 0, 0, 0, 0, 1, 0, 0, ttl, protocol, 0, 0];
    v[2..4].copy_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&s.octets());
    v.extend_from_slice(&d.octets());
    let sum = !checksum::data(&v);
    v[10..12].copy_from_slice(&sum.to_be_bytes());
    v.extend_from_slice(l4);
    v
}

/// A TCP (20-byte header, `flags`) or UDP (8 bytes, checksum 0) segment without payload.
fn segment(protocol: Protocol, sport: u16, dport: u16, flags: u8) -> (u8, Vec<u8>) {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    if protocol == Protocol::Tcp {
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0x10, 0, 0, 0, 0, 0]);
        (6, v)
    } else {
        v.extend_from_slice(&[0, 8, 0, 0]);
        (17, v)
    }
}

/// An ICMP destination unreachable (code 1) quoting the first 28 bytes of `quoted`.
fn icmp_error(quoted: &[u8]) -> Vec<u8> {
    let mut m = vec![3, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&quoted[..28.min(quoted.len())]);
    let sum = !checksum::data(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// Op 15: one packet as bytes through `handle_packet`, or classified and through
/// `handle_classified_hinted` with its own hint.
fn packet_op(
    d: &mut Director,
    now: Instant,
    [b, c, e]: [u8; 3],
    vips: &[(Protocol, SocketAddr, u32)],
    dests: &[(IpAddr, u16)],
) {
    let (protocol, vip, _) = vips[b as usize % vips.len()];
    let client = SocketAddr::new(
        IpAddr::from([192, 0, 2 + (c & 1), c >> 4]),
        1000 + (e & 7) as u16,
    );
    let (dip, dport) = dests[(b >> 3) as usize % dests.len()];
    let ttl = if c & 2 != 0 { 1 } else { 64 };
    let flags = [0x02, 0x10, 0x11, 0x04][(e >> 3 & 3) as usize];
    let pkt = match e >> 6 {
        0 => {
            let (p, l4) = segment(protocol, client.port(), vip.port(), flags);
            ipv4(client.ip(), vip.ip(), p, ttl, &l4)
        }
        1 => {
            let (p, l4) = segment(protocol, dport, client.port(), flags);
            ipv4(dip, client.ip(), p, ttl, &l4)
        }
        2 => {
            let (p, l4) = segment(protocol, vip.port(), client.port(), flags);
            let q = ipv4(vip.ip(), client.ip(), p, 64, &l4);
            ipv4(
                IpAddr::from([198, 51, 100, 1]),
                vip.ip(),
                1,
                ttl,
                &icmp_error(&q),
            )
        }
        _ => {
            let (p, l4) = segment(protocol, client.port(), dport, flags);
            let q = ipv4(client.ip(), dip, p, 64, &l4);
            ipv4(dip, client.ip(), 1, ttl, &icmp_error(&q))
        }
    };
    const HEADROOM: usize = 64;
    let mut buf = vec![0u8; HEADROOM];
    buf.extend_from_slice(&pkt);
    let mut out = [0u8; 576];
    // Half through the read-ahead entry points (the packet's own hint, prefetched), a
    // quarter as a burst of one (`handle_burst`).
    let v = match lvs_core::wire::classify(&buf[HEADROOM..]) {
        Ok(cl) if c & 4 != 0 => {
            let hint = d.packet_hint(&cl, 0);
            d.prefetch(&hint);
            d.prefetch_conn(&hint);
            d.handle_classified_hinted(now, &mut buf, HEADROOM, &cl, &mut out, 0, &hint)
        }
        _ if c & 8 != 0 => {
            let mut verdicts = Vec::new();
            d.handle_burst(now, [&mut buf[..]], HEADROOM, &mut out, |k, _, v, _| {
                verdicts.push((k, v));
            });
            assert_eq!(verdicts.len(), 1, "one verdict per packet");
            assert_eq!(verdicts[0].0, 0);
            verdicts[0].1
        }
        _ => d.handle_packet(now, &mut buf, HEADROOM, &mut out),
    };
    match v {
        PacketVerdict::Forward {
            next_hop,
            start,
            len,
            reply,
            ..
        } => {
            assert!(start + len <= buf.len() && len >= 20, "range {start}+{len}");
            assert!(matches!(buf[start] >> 4, 4 | 6));
            if reply {
                assert_eq!(next_hop, client.ip(), "reply to the client");
            } else {
                assert!(
                    dests.iter().any(|(ip, _)| *ip == next_hop),
                    "forwarded to {next_hop}"
                );
            }
        }
        PacketVerdict::Reply { start, len, .. } => {
            assert!(start + len <= out.len() && len > 28);
            assert_eq!(out[start] >> 4, 4);
        }
        PacketVerdict::Local { start, len, .. } => assert!(start + len <= buf.len()),
        PacketVerdict::NotOurs | PacketVerdict::Drop(_) => {}
    }
}

/// The fuzz body.
pub fn director_ops(data: &[u8]) {
    let mut cfg = DirectorConfig::new(CAP, HashKey::from_u128(0xd1));
    cfg.expire_limit = 4;
    let mut d = Director::new(cfg);
    let mut now = Instant::from_secs(1);
    let vips = vips();
    let dests = dests();
    let services = services();
    for op in data.chunks(4) {
        let [a, b, c, e] = [
            op[0],
            *op.get(1).unwrap_or(&0),
            *op.get(2).unwrap_or(&0),
            *op.get(3).unwrap_or(&0),
        ];
        match a % 16 {
            0..=6 => {
                let (protocol, vip, mark) = vips[b as usize % vips.len()];
                let client = SocketAddr::new(
                    IpAddr::from([192, 0, 2 + (c & 1), c >> 4]),
                    1000 + (e & 7) as u16,
                );
                let mut pkt = FlowPacket {
                    protocol,
                    src: client,
                    dst: vip,
                    fwmark: if a & 0x10 != 0 { mark } else { 0 },
                    tcp_flags: e >> 3,
                    len: 40 + c as u32,
                    dir: PacketDir::FromClient,
                };
                if a & 0x20 != 0 {
                    if let Some(ci) = d.conn(protocol, client, vip) {
                        pkt.src = if ci.method == Forward::Masq {
                            ci.dest
                        } else {
                            vip
                        };
                        pkt.dst = client;
                        pkt.dir = PacketDir::FromServer;
                        assert_eq!(d.handle_flow(now, &pkt), FlowVerdict::Reply { src: vip });
                    }
                } else if let FlowVerdict::Forward { dest, .. } = d.handle_flow(now, &pkt) {
                    // The port may be the client's (port-0 real servers, and persistent fwmark
                    // services keep the packet's port whatever the real server's port is).
                    assert!(
                        dests.iter().any(|(ip, _)| *ip == dest.ip()),
                        "forwarded to {dest}"
                    );
                }
            }
            7 | 8 => {
                now += Duration::from_millis(((b as u64) << 8 | c as u64) * 40);
                settle(&mut d, now);
                for c in d.table().iter() {
                    assert!(c.expires + TICK > now, "{c:?} outlived its timeout");
                }
            }
            9 => {
                let rules = RuleSet::from_text(RULE_SETS[b as usize % RULE_SETS.len()]).unwrap();
                let before = d.rules().clone();
                match d.apply_rules(now, &rules) {
                    Ok(_) => assert_eq!(d.rules().save(), {
                        // The mirror holds the same services and servers (order may differ).
                        let mut r = RuleSet::new();
                        r.apply_text(&d.rules().save()).unwrap();
                        r.save()
                    }),
                    Err(_) => assert_eq!(d.rules(), &before),
                }
            }
            10 | 11 => {
                let key = services[b as usize % services.len()];
                let (addr, port) = dests[c as usize % dests.len()];
                let mut dc = DestConfig::new(addr, port);
                dc.forward = if e & 1 != 0 {
                    Forward::Masq
                } else {
                    Forward::DirectRoute
                };
                dc.weight = (e >> 1 & 3) as u32;
                dc.u_threshold = (e >> 3 & 3) as u32;
                let cmd = match (a % 16, e >> 6) {
                    (10, 0) => Command::AddDest(key, dc),
                    (10, 1) => Command::EditDest(key, dc),
                    (10, _) => Command::DeleteDest {
                        service: key,
                        addr,
                        port,
                    },
                    (_, 0) => {
                        let mut sc = ServiceConfig::new(key);
                        sc.scheduler = SchedKind::ALL[c as usize % SchedKind::ALL.len()];
                        Command::AddService(sc)
                    }
                    (_, 1) => {
                        let mut sc = ServiceConfig::new(key);
                        sc.scheduler = SchedKind::ALL[c as usize % SchedKind::ALL.len()];
                        if key.port() == 0 || c & 1 != 0 {
                            sc.persistence = Some(lvs_core::rules::Persistence::new(
                                5 + c as u32,
                                key.family(),
                            ));
                        }
                        Command::EditService(sc)
                    }
                    (_, 2) => Command::DeleteService(key),
                    _ => Command::Zero(if c & 1 != 0 { Some(key) } else { None }),
                };
                let mut mirror = d.rules().clone();
                let want = mirror.apply(&cmd);
                let got = d.apply_command(now, &cmd);
                assert_eq!(got.is_ok(), want.is_ok(), "{cmd:?}");
                if got.is_ok() {
                    assert_eq!(d.rules(), &mirror);
                }
            }
            12 => {
                let s = Sysctls {
                    expire_nodest_conn: b & 1 != 0,
                    expire_quiescent_template: b & 2 != 0,
                    conn_reuse_mode: b >> 2 & 3,
                    sloppy_tcp: b & 16 != 0,
                    secure_tcp: b >> 5 & 3,
                    nat_icmp_send: c & 1 != 0,
                    ..Sysctls::default()
                };
                d.set_sysctls(s);
            }
            13 => {
                let _ = d.apply_command(now, &Command::Clear);
                assert_eq!(d.rules().len(), 0);
            }
            15 => packet_op(&mut d, now, [b, c, e], &vips, &dests),
            _ => {
                let snap = d.snapshot(now);
                assert_eq!(snap.services.len(), d.rules().len());
                let _ = lvs_core::rules::listing::list(&snap, &Default::default());
                let _ = d.connections(now);
            }
        }
        check(&d);
    }
    // Everything drains: the connections within hours, and the lblc / lblcr caches, whose
    // entries keep deleted real servers in the trash (as the kernel's references do), once
    // they have been idle for the default 24 h expiration. The caches are checked by a 60 s
    // timer (a full pass every 30 ticks) that runs one tick per late call, as the kernel's
    // does, so the timers are run every minute, as a driver following `poll_timeout` would.
    for _ in 0..26 * 60 {
        now += Duration::from_secs(60);
        settle(&mut d, now);
    }
    assert_eq!(d.table().len(), 0, "entries left after draining");
    assert_eq!(d.trash_len(), 0, "trash not reaped");
    check(&d);
}
