//! `Director::handle_flow_hinted` against `handle_flow`: two directors with the same
//! configuration get the same packets, one with hints (the packet's own, another packet's, one
//! from a director with another hash key, one made before a rule change, with or without a
//! prefetch), the other without. Verdicts, connections, counters and statistics must stay
//! identical.

use core::net::{IpAddr, SocketAddr};

use proptest::prelude::*;

use lvs_core::conn::HashKey;
use lvs_core::director::{Director, DirectorConfig, FlowHint, FlowPacket, PacketDir};
use lvs_core::rules::{Command, DestConfig, Forward, RuleSet};
use lvs_core::{Duration, Instant, Protocol};

const RULES: &str = "-A -t 10.0.0.1:80 -s wlc\n\
    -a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -g\n\
    -A -u 10.0.0.1:53 -s rr\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -m\n\
    -A -t 10.0.0.2:80 -s sh -p 30\n-a -t 10.0.0.2:80 -r 10.1.0.4:80 -m\n-a -t 10.0.0.2:80 -r 10.1.0.5:80\n";

#[derive(Clone, Debug)]
enum Op {
    Flow {
        client: u8,
        target: u8,
        flags: u8,
        reply: bool,
        /// 0: the packet's own hint; 1: another packet's; 2: another director's; 3: the
        /// packet's own, made earlier and kept; 4: none.
        hint: u8,
        prefetch: bool,
    },
    Advance(u32),
    Weight(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u8>(), 0u8..3, prop::sample::select(vec![0x02u8, 0x10, 0x11, 0x04, 0x12]), any::<bool>(), 0u8..5, any::<bool>())
            .prop_map(|(client, target, flags, reply, hint, prefetch)| Op::Flow { client, target, flags, reply, hint, prefetch }),
        2 => (0u32..200_000).prop_map(Op::Advance),
        1 => (0u8..3).prop_map(Op::Weight),
    ]
}

fn director(key: u128) -> Director {
    let mut cfg = DirectorConfig::new(64, HashKey::from_u128(key));
    cfg.rng_seed = 3;
    let mut d = Director::new(cfg);
    d.apply_rules(Instant::ZERO, &RuleSet::from_text(RULES).unwrap())
        .unwrap();
    d
}

/// Everything observable that the flow layer changes.
fn state(d: &Director, now: Instant) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        d.connections(now),
        d.flow_counters(),
        d.stats(),
        d.all_dests(),
        d.snapshot(now)
    )
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut plain = director(42);
    let mut hinted = director(42);
    let other = director(43);
    let targets: [(Protocol, &str); 3] = [
        (Protocol::Tcp, "10.0.0.1:80"),
        (Protocol::Udp, "10.0.0.1:53"),
        (Protocol::Tcp, "10.0.0.2:80"),
    ];
    let mut kept: Vec<(FlowPacket, FlowHint)> = Vec::new();
    let mut now = Instant::from_secs(1);
    for op in ops {
        match op {
            Op::Flow {
                client,
                target,
                flags,
                reply,
                hint,
                prefetch,
            } => {
                let (protocol, vip) = targets[target as usize];
                let client = SocketAddr::new(IpAddr::from([192, 0, 2, client % 16]), 1000);
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
                    let Some(c) = plain.conn(protocol, client, vip) else {
                        continue;
                    };
                    pkt.src = if c.method == Forward::Masq {
                        c.dest
                    } else {
                        vip
                    };
                    pkt.dst = client;
                    pkt.dir = PacketDir::FromServer;
                }
                let own = hinted.flow_hint(&pkt);
                let h = match hint {
                    0 => Some(own),
                    1 => kept.last().map(|(_, h)| *h),
                    2 => Some(other.flow_hint(&pkt)),
                    3 => kept
                        .iter()
                        .rev()
                        .find(|(p, _)| *p == pkt)
                        .map(|(_, h)| *h)
                        .or(Some(own)),
                    _ => None,
                };
                if prefetch {
                    if let Some(h) = &h {
                        hinted.prefetch(h);
                    }
                }
                let a = plain.handle_flow(now, &pkt);
                let b = match &h {
                    Some(h) => hinted.handle_flow_hinted(now, &pkt, h),
                    None => hinted.handle_flow(now, &pkt),
                };
                prop_assert_eq!(a, b);
                kept.push((pkt, own));
                if kept.len() > 32 {
                    kept.remove(0);
                }
            }
            Op::Advance(ms) => {
                now += Duration::from_millis(ms as u64);
                for d in [&mut plain, &mut hinted] {
                    while d.poll_timeout().is_some_and(|t| t <= now) {
                        d.handle_timeout(now);
                    }
                }
            }
            Op::Weight(w) => {
                let mut dc = DestConfig::new("10.1.0.1".parse().unwrap(), 80);
                dc.forward = Forward::Masq;
                dc.weight = w as u32;
                let cmd = Command::EditDest("-t 10.0.0.1:80".parse().unwrap(), dc);
                prop_assert_eq!(
                    plain.apply_command(now, &cmd).is_ok(),
                    hinted.apply_command(now, &cmd).is_ok()
                );
            }
        }
        prop_assert_eq!(state(&plain, now), state(&hinted, now));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn hinted_flows_match_plain_flows(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}

/// A hint for a SYN carries the insert's reply key: the connection created with it is found
/// by its replies (DR: from the virtual service) and by its client's next packets.
#[test]
fn a_syn_hint_serves_the_insert_and_the_flows_later_packets() {
    let mut d = director(9);
    let now = Instant::from_secs(1);
    let client: SocketAddr = "192.0.2.9:4000".parse().unwrap();
    let vip: SocketAddr = "10.0.0.1:80".parse().unwrap();
    let mut syn = FlowPacket {
        protocol: Protocol::Tcp,
        src: client,
        dst: vip,
        fwmark: 0,
        tcp_flags: 0x02,
        len: 60,
        dir: PacketDir::FromClient,
    };
    let hint = d.flow_hint(&syn);
    d.prefetch(&hint);
    let v = d.handle_flow_hinted(now, &syn, &hint);
    assert!(matches!(
        v,
        lvs_core::director::FlowVerdict::Forward { new: true, .. }
    ));
    syn.tcp_flags = 0x10;
    let later = hint.without_insert();
    d.prefetch(&later);
    let v = d.handle_flow_hinted(now, &syn, &later);
    assert!(matches!(
        v,
        lvs_core::director::FlowVerdict::Forward { new: false, .. }
    ));
    assert_eq!(
        d.conn(Protocol::Tcp, client, vip).unwrap().state,
        "ESTABLISHED"
    );
}

/// `flow_hint_v4` gives the hint that `flow_hint` gives for the same client packet: every
/// protocol (`Protocol::Ip` included), client port 0, SYN, ACK and RST, with and without a
/// real server that is not NAT (which decides whether a hint holds the insert's reply hash),
/// and with `sloppy_tcp`.
#[test]
fn flow_hint_v4_equals_flow_hint() {
    use core::net::SocketAddrV4;
    let nat_only = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n";
    let mut sloppy = director(7);
    let mut sysctls = *sloppy.sysctls();
    sysctls.sloppy_tcp = true;
    sloppy.set_sysctls(sysctls);
    let mut nat = Director::new(DirectorConfig::new(64, HashKey::from_u128(7)));
    nat.apply_rules(Instant::ZERO, &RuleSet::from_text(nat_only).unwrap())
        .unwrap();
    for d in [&director(7), &director(9), &sloppy, &nat] {
        for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp, Protocol::Ip] {
            for flags in [0u8, 0x02, 0x10, 0x04, 0x12, 0x06] {
                for (c, v) in [
                    ("192.0.2.7:40000", "10.0.0.1:80"),
                    ("192.0.2.7:0", "10.0.0.1:80"),
                    ("198.51.100.1:1024", "10.0.0.2:0"),
                ] {
                    let (c, v): (SocketAddrV4, SocketAddrV4) =
                        (c.parse().unwrap(), v.parse().unwrap());
                    let pkt = FlowPacket {
                        protocol,
                        src: c.into(),
                        dst: v.into(),
                        fwmark: 0,
                        tcp_flags: flags,
                        len: 60,
                        dir: PacketDir::FromClient,
                    };
                    assert_eq!(
                        format!("{:?}", d.flow_hint_v4(protocol, flags, c, v)),
                        format!("{:?}", d.flow_hint(&pkt)),
                        "{protocol:?} {flags:#x} {c} {v}"
                    );
                }
            }
        }
    }
}
