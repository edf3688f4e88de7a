//! `director_ops`: arbitrary sequences of control operations (commands, whole rule sets,
//! sysctls, zeroing) and flow operations (client packets, replies, time steps) on a small
//! director, checking after every step that each real server's counters equal a recount of
//! the live entries bound to it, that the table stays within its capacity, that no entry
//! outlives its timeout by a tick, that forwarded packets go to a configured real server, and
//! that everything drains in the end.

use std::net::{IpAddr, SocketAddr};

use lvs_core::conn::{ConnFlags, HashKey};
use lvs_core::director::{Director, DirectorConfig, FlowPacket, FlowVerdict, PacketDir, Sysctls};
use lvs_core::rules::{Command, DestConfig, Forward, RuleSet, ServiceConfig, ServiceKey};
use lvs_core::sched::SchedKind;
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
            _ => {
                let snap = d.snapshot(now);
                assert_eq!(snap.services.len(), d.rules().len());
                let _ = lvs_core::rules::listing::list(&snap, &Default::default());
                let _ = d.connections(now);
            }
        }
        check(&d);
    }
    // Everything drains.
    for _ in 0..12 {
        now += Duration::from_secs(3600);
        settle(&mut d, now);
    }
    assert_eq!(d.table().len(), 0, "entries left after draining");
    assert_eq!(d.trash_len(), 0, "trash not reaped");
    check(&d);
}
