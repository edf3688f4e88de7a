//! Property tests of the director: random control and flow operations, with invariants checked
//! against the connection table after every step.

use core::net::{IpAddr, SocketAddr};

use proptest::prelude::*;

use lvs_core::conn::{ConnFlags, HashKey};
use lvs_core::director::{Director, DirectorConfig, FlowPacket, FlowVerdict, PacketDir, Sysctls};
use lvs_core::rules::{Command, DestConfig, Forward, RuleSet, ServiceKey};
use lvs_core::{Duration, Instant, Protocol};

const CAPACITY: u32 = 24;
const TICK: Duration = Duration::from_millis(125);

const RULES: &str = "-A -t 10.0.0.1:80 -s wlc -p 20 -M 255.255.255.0\n\
    -a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -x 3\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m\n\
    -A -u 10.0.0.1:53 -s rr -o\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.3:53 -x 2 -y 1\n\
    -A -t 10.0.0.2:80 -s lc\n-a -t 10.0.0.2:80 -r 10.1.0.4:80\n-a -t 10.0.0.2:80 -r 10.1.0.5:80 -m\n\
    -A -u 10.0.0.2:5000 -s sh\n-a -u 10.0.0.2:5000 -r 10.1.0.6:5000 -m\n";

#[derive(Clone, Debug)]
enum Op {
    Flow {
        client: u8,
        port: u8,
        target: u8,
        flags: u8,
        reply: bool,
    },
    Advance(u32),
    Weight {
        svc: u8,
        dest: u8,
        weight: u8,
    },
    Delete {
        svc: u8,
        dest: u8,
    },
    Add {
        svc: u8,
        dest: u8,
    },
    Sysctl(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), 0u8..4, 0u8..4, prop::sample::select(vec![0x02u8, 0x10, 0x11, 0x04, 0x12, 0x00]), any::<bool>())
            .prop_map(|(client, port, target, flags, reply)| Op::Flow { client, port, target, flags, reply }),
        2 => (0u32..200_000).prop_map(Op::Advance),
        1 => (0u8..4, 0u8..2, 0u8..3).prop_map(|(svc, dest, weight)| Op::Weight { svc, dest, weight }),
        1 => (0u8..4, 0u8..2).prop_map(|(svc, dest)| Op::Delete { svc, dest }),
        1 => (0u8..4, 0u8..2).prop_map(|(svc, dest)| Op::Add { svc, dest }),
        1 => any::<u8>().prop_map(Op::Sysctl),
    ]
}

/// A service and two real servers it may have (address, port, method).
type ServiceDests = (ServiceKey, [(IpAddr, u16, Forward); 2]);

fn services() -> [ServiceDests; 4] {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    [
        (
            "-t 10.0.0.1:80".parse().unwrap(),
            [
                (ip("10.1.0.1"), 80, Forward::Masq),
                (ip("10.1.0.2"), 80, Forward::Masq),
            ],
        ),
        (
            "-u 10.0.0.1:53".parse().unwrap(),
            [
                (ip("10.1.0.1"), 53, Forward::DirectRoute),
                (ip("10.1.0.3"), 53, Forward::DirectRoute),
            ],
        ),
        (
            "-t 10.0.0.2:80".parse().unwrap(),
            [
                (ip("10.1.0.4"), 80, Forward::DirectRoute),
                (ip("10.1.0.5"), 80, Forward::Masq),
            ],
        ),
        (
            "-u 10.0.0.2:5000".parse().unwrap(),
            [
                (ip("10.1.0.6"), 5000, Forward::Masq),
                (ip("10.1.0.7"), 5000, Forward::Masq),
            ],
        ),
    ]
}

fn check_invariants(d: &Director) -> Result<(), TestCaseError> {
    prop_assert!(d.table().len() <= CAPACITY as usize);
    let conns: Vec<_> = d.table().iter().collect();
    for (_, cfg, info, _trashed) in d.all_dests() {
        let mine = conns.iter().filter(|c| c.dest == Some(info.id));
        let (mut a, mut i, mut p) = (0u32, 0u32, 0u32);
        for c in mine {
            if c.is_template() {
                p += 1;
            } else if c.flags.contains(ConnFlags::INACTIVE) {
                i += 1;
            } else {
                a += 1;
            }
        }
        prop_assert_eq!(
            (info.activeconns, info.inactconns, info.persistconns),
            (a, i, p),
            "counters of {}:{}",
            cfg.addr,
            cfg.port
        );
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut cfg = DirectorConfig::new(CAPACITY, HashKey::from_u128(42));
    cfg.rng_seed = 7;
    let mut d = Director::new(cfg);
    d.apply_rules(Instant::ZERO, &RuleSet::from_text(RULES).unwrap())
        .unwrap();
    let svcs = services();
    let targets: [(Protocol, &str); 4] = [
        (Protocol::Tcp, "10.0.0.1:80"),
        (Protocol::Udp, "10.0.0.1:53"),
        (Protocol::Tcp, "10.0.0.2:80"),
        (Protocol::Udp, "10.0.0.2:5000"),
    ];
    let mut now = Instant::from_secs(1);
    for op in ops {
        match op {
            Op::Flow {
                client,
                port,
                target,
                flags,
                reply,
            } => {
                let (protocol, vip) = targets[target as usize];
                let client: SocketAddr = SocketAddr::new(
                    IpAddr::from([192, 0, 2 + client % 2, client / 2]),
                    1000 + port as u16,
                );
                let vip: SocketAddr = vip.parse().unwrap();
                let mut pkt = FlowPacket {
                    protocol,
                    src: client,
                    dst: vip,
                    fwmark: 0,
                    tcp_flags: flags,
                    len: 64,
                    dir: PacketDir::FromClient,
                };
                if reply {
                    // A reply from the connection's real server, if there is one.
                    if let Some(c) = d.conn(protocol, client, vip) {
                        let from = if c.method == Forward::Masq {
                            c.dest
                        } else {
                            vip
                        };
                        pkt.src = from;
                        pkt.dst = client;
                        pkt.dir = PacketDir::FromServer;
                        let v = d.handle_flow(now, &pkt);
                        prop_assert_eq!(v, FlowVerdict::Reply { src: vip });
                    }
                } else {
                    let v = d.handle_flow(now, &pkt);
                    if let FlowVerdict::Forward { dest, .. } = v {
                        let known = svcs[target as usize]
                            .1
                            .iter()
                            .any(|(a, p, _)| *a == dest.ip() && *p == dest.port());
                        prop_assert!(known, "forwarded to a stranger {}", dest);
                    }
                }
            }
            Op::Advance(ms) => {
                now += Duration::from_millis(ms as u64);
                let mut guard = 0;
                while d.poll_timeout().is_some_and(|t| t <= now) {
                    d.handle_timeout(now);
                    guard += 1;
                    prop_assert!(guard < 10_000);
                }
                // No entry outlives its timeout by a tick or more.
                for c in d.table().iter() {
                    prop_assert!(c.expires + TICK > now, "{:?} outlived its timeout", c);
                }
            }
            Op::Weight { svc, dest, weight } => {
                let (key, dests) = svcs[svc as usize];
                let (addr, port, fwd) = dests[dest as usize];
                let mut dc = DestConfig::new(addr, port);
                dc.forward = fwd;
                dc.weight = weight as u32;
                let _ = d.apply_command(now, &Command::EditDest(key, dc));
            }
            Op::Delete { svc, dest } => {
                let (key, dests) = svcs[svc as usize];
                let (addr, port, _) = dests[dest as usize];
                let _ = d.apply_command(
                    now,
                    &Command::DeleteDest {
                        service: key,
                        addr,
                        port,
                    },
                );
            }
            Op::Add { svc, dest } => {
                let (key, dests) = svcs[svc as usize];
                let (addr, port, fwd) = dests[dest as usize];
                let mut dc = DestConfig::new(addr, port);
                dc.forward = fwd;
                let _ = d.apply_command(now, &Command::AddDest(key, dc));
            }
            Op::Sysctl(bits) => {
                d.set_sysctls(Sysctls {
                    expire_nodest_conn: bits & 1 != 0,
                    expire_quiescent_template: bits & 2 != 0,
                    conn_reuse_mode: (bits >> 2) & 3,
                    sloppy_tcp: bits & 16 != 0,
                    secure_tcp: (bits >> 5) & 3,
                    ..Sysctls::default()
                });
            }
        }
        check_invariants(&d)?;
        // The rules mirror and the snapshot agree.
        let snap = d.snapshot(now);
        prop_assert_eq!(snap.services.len(), d.rules().len());
    }
    // Drain everything: all counters return to zero and the trash empties.
    now += Duration::from_secs(3600);
    for _ in 0..10 {
        while d.poll_timeout().is_some_and(|t| t <= now) {
            d.handle_timeout(now);
        }
        now += Duration::from_secs(120);
    }
    prop_assert_eq!(d.table().len(), 0);
    prop_assert_eq!(d.trash_len(), 0);
    for (_, _, info, _) in d.all_dests() {
        prop_assert_eq!(
            (info.activeconns, info.inactconns, info.persistconns),
            (0, 0, 0)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn counters_match_table_and_nothing_outlives_its_timeout(ops in prop::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
