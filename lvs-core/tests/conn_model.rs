//! Property test: the connection table against a plain `HashMap` model.
//!
//! Random sequences of insert / lookup-in / lookup-out / TCP and UDP packets / time advance /
//! handle_timeout / expire_now. After every step: the table holds exactly the model's
//! entries, both lookups find the same entry, per-destination counters computed from the
//! deltas the table returned equal those computed from the model's contents, the capacity is
//! never exceeded, nothing is expired before its deadline and nothing outlives it by a tick.

use std::collections::HashMap;
use std::net::IpAddr;

use lvs_core::conn::state::tcp_transition;
use lvs_core::conn::{
    ActiveStates, ConnFlags, ConnId, ConnTable, ConnTableConfig, DestDelta, Direction, Expired,
    FwdMethod, HashKey, InKey, InsertError, NewConn, TcpState, TcpTable, Timeouts,
};
use lvs_core::sched::DestId;
use lvs_core::{Duration, Instant, Protocol};
use proptest::prelude::*;

const CAP: u32 = 12;
const TICK_NS: u64 = 125_000_000;

#[derive(Clone, Debug)]
enum Op {
    Insert {
        client: u8,
        port: u8,
        vip: u8,
        tcp: bool,
        nat: bool,
        dest: u8,
    },
    LookupIn {
        client: u8,
        port: u8,
        vip: u8,
        tcp: bool,
    },
    Tcp {
        pick: u8,
        output: bool,
        flags: u8,
        secure: bool,
    },
    Udp {
        pick: u8,
        output: bool,
    },
    Advance {
        ms: u32,
    },
    Timeout {
        limit: u8,
    },
    ExpireNow {
        pick: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0u8..3, 0u8..2, any::<bool>(), any::<bool>(), 0u8..3)
            .prop_map(|(client, port, vip, tcp, nat, dest)| Op::Insert { client, port, vip, tcp, nat, dest }),
        2 => (0u8..6, 0u8..3, 0u8..2, any::<bool>())
            .prop_map(|(client, port, vip, tcp)| Op::LookupIn { client, port, vip, tcp }),
        5 => (any::<u8>(), any::<bool>(), prop::sample::select(vec![0x02u8, 0x12, 0x10, 0x11, 0x04, 0x14, 0x08, 0x00]), prop::bool::weighted(0.2))
            .prop_map(|(pick, output, flags, secure)| Op::Tcp { pick, output, flags, secure }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(pick, output)| Op::Udp { pick, output }),
        3 => prop_oneof![0u32..2_000, 0u32..200_000, 0u32..1_000_000].prop_map(|ms| Op::Advance { ms }),
        2 => (1u8..8).prop_map(|limit| Op::Timeout { limit }),
        1 => any::<u8>().prop_map(|pick| Op::ExpireNow { pick }),
    ]
}

fn client_addr(c: u8) -> IpAddr {
    if c < 4 {
        IpAddr::from([192, 0, 2, c])
    } else {
        format!("2001:db8::{c}").parse().unwrap()
    }
}

fn vip(c: u8, v: u8) -> IpAddr {
    if c < 4 {
        IpAddr::from([198, 51, 100, v])
    } else {
        format!("2001:db8:1::{v}").parse().unwrap()
    }
}

#[derive(Clone, Debug)]
struct M {
    id: ConnId,
    new: NewConn,
    state: TcpState,
    nooutput: bool,
    inactive: bool,
    deadline: Instant,
}

struct World {
    tab: ConnTable,
    model: HashMap<InKey, M>,
    applied: HashMap<DestId, (i64, i64)>,
    now: Instant,
    timeouts: Timeouts,
}

impl World {
    fn apply(&mut self, d: Option<(DestId, DestDelta)>) {
        if let Some((id, d)) = d {
            let e = self.applied.entry(id).or_default();
            e.0 += d.active as i64;
            e.1 += d.inactive as i64;
            assert_eq!(d.persist, 0);
        }
    }

    fn removed(&mut self, ex: &Expired) {
        let key = ex.conn.in_key();
        let m = self
            .model
            .remove(&key)
            .expect("removed entry is in the model");
        assert_eq!(m.id, ex.conn.id);
        self.apply(ex.unbind);
    }

    fn pick(&self, p: u8) -> Option<(InKey, M)> {
        if self.model.is_empty() {
            return None;
        }
        let mut keys: Vec<&InKey> = self.model.keys().collect();
        keys.sort_by_key(|k| self.model[*k].id);
        let k = *keys[p as usize % keys.len()];
        Some((k, self.model[&k].clone()))
    }

    fn check(&self) {
        assert!(self.tab.len() <= CAP as usize);
        assert_eq!(self.tab.len(), self.model.len());
        let mut want: HashMap<DestId, (i64, i64)> = HashMap::new();
        for (k, m) in &self.model {
            let c = self.tab.get(m.id).expect("model entry is live");
            assert_eq!(c.in_key(), *k);
            assert_eq!(self.tab.lookup_in(k), Some(m.id));
            // Both keys find the same entry. Two NAT conns of one client port to two VIPs on
            // the same real server share a reply key (IPVS cannot tell them apart either):
            // then any of them may answer.
            let out = self
                .tab
                .lookup_out(&c.out_key())
                .expect("reply key finds an entry");
            let sharing = self
                .model
                .values()
                .filter(|o| self.tab.get(o.id).unwrap().out_key() == c.out_key())
                .count();
            if sharing == 1 {
                assert_eq!(out, m.id, "both keys find the same entry");
            } else {
                assert_eq!(self.tab.get(out).unwrap().out_key(), c.out_key());
            }
            assert_eq!(c.flags.contains(ConnFlags::INACTIVE), m.inactive);
            assert_eq!(c.flags.contains(ConnFlags::NOOUTPUT), m.nooutput);
            if m.new.protocol == Protocol::Tcp {
                assert_eq!(c.tcp_state(), Some(m.state));
            }
            assert_eq!(
                (c.daddr, c.dport, c.dest),
                (m.new.daddr, m.new.dport, m.new.dest)
            );
            // Due at the first tick at or after the deadline: less than a tick later.
            assert!(c.expires >= m.deadline, "{} < {}", c.expires, m.deadline);
            assert!(c.expires.as_nanos() < m.deadline.as_nanos() + TICK_NS);
            let w = want.entry(m.new.dest.unwrap()).or_default();
            if m.inactive {
                w.1 += 1;
            } else {
                w.0 += 1;
            }
        }
        for d in 0..3 {
            let id = DestId(d);
            assert_eq!(
                self.applied.get(&id).copied().unwrap_or_default(),
                want.get(&id).copied().unwrap_or_default(),
                "counters of dest {d}"
            );
        }
        assert_eq!(self.tab.iter().count(), self.model.len());
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Insert {
                client,
                port,
                vip: v,
                tcp,
                nat,
                dest,
            } => {
                let proto = if tcp { Protocol::Tcp } else { Protocol::Udp };
                let method = if nat {
                    FwdMethod::Masq
                } else {
                    FwdMethod::DirectRoute
                };
                let new = NewConn {
                    protocol: proto,
                    caddr: client_addr(client),
                    cport: 1000 + port as u16,
                    vaddr: vip(client, v),
                    vport: 80,
                    daddr: if client < 4 {
                        IpAddr::from([10, 1, 0, dest])
                    } else {
                        format!("fd00::{dest}").parse().unwrap()
                    },
                    dport: 8080,
                    flags: ConnFlags::for_method(method).with(ConnFlags::INACTIVE),
                    fwmark: if dest == 2 { 9 } else { 0 },
                    dest: Some(DestId(dest as u32)),
                    control: None,
                    timeout: Duration::from_secs(3),
                };
                let key = InKey {
                    protocol: proto,
                    caddr: new.caddr,
                    cport: new.cport,
                    vaddr: new.vaddr,
                    vport: new.vport,
                };
                let embryonic_exists = self
                    .model
                    .values()
                    .any(|m| m.new.protocol == Protocol::Tcp && m.state.is_embryonic());
                match self.tab.insert(self.now, new) {
                    Ok(ins) => {
                        assert!(!self.model.contains_key(&key));
                        if let Some(ev) = &ins.evicted {
                            assert_eq!(self.model.len(), CAP as usize);
                            let m = &self.model[&ev.conn.in_key()];
                            assert!(m.new.protocol == Protocol::Tcp && m.state.is_embryonic());
                            self.removed(ev);
                        } else {
                            assert!(self.model.len() < CAP as usize);
                        }
                        self.apply(ins.bind);
                        let deadline = self.now + Duration::from_secs(3);
                        self.model.insert(
                            key,
                            M {
                                id: ins.id,
                                new,
                                state: TcpState::None,
                                nooutput: !nat,
                                inactive: true,
                                deadline,
                            },
                        );
                    }
                    Err(InsertError::Exists(id)) => assert_eq!(self.model[&key].id, id),
                    Err(InsertError::Full) => {
                        assert_eq!(self.model.len(), CAP as usize);
                        assert!(
                            !embryonic_exists,
                            "full although an embryonic conn could go"
                        );
                    }
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            Op::LookupIn {
                client,
                port,
                vip: v,
                tcp,
            } => {
                let key = InKey {
                    protocol: if tcp { Protocol::Tcp } else { Protocol::Udp },
                    caddr: client_addr(client),
                    cport: 1000 + port as u16,
                    vaddr: vip(client, v),
                    vport: 80,
                };
                assert_eq!(self.tab.lookup_in(&key), self.model.get(&key).map(|m| m.id));
            }
            Op::Tcp {
                pick,
                output,
                flags,
                secure,
            } => {
                let Some((k, m)) = self.pick(pick) else {
                    return;
                };
                let dir = if output {
                    Direction::Output
                } else {
                    Direction::Input
                };
                let table = if secure {
                    TcpTable::Secure
                } else {
                    TcpTable::Normal
                };
                let u = self.tab.tcp_packet(m.id, self.now, dir, flags, table);
                if m.new.protocol != Protocol::Tcp {
                    assert!(u.is_none());
                    return;
                }
                let u = u.unwrap();
                let tr = tcp_transition(table, m.state, m.nooutput, dir, flags);
                assert_eq!((u.old, u.new), (m.state, tr.state));
                let mm = self.model.get_mut(&k).unwrap();
                mm.nooutput &= !tr.clear_nooutput;
                if tr.state != m.state {
                    let act = ActiveStates::Current.is_active(tr.state);
                    mm.inactive = !act;
                }
                mm.state = tr.state;
                mm.deadline = self.now + self.timeouts.tcp(tr.state);
                self.apply(u.delta);
            }
            Op::Udp { pick, output } => {
                let Some((k, m)) = self.pick(pick) else {
                    return;
                };
                if m.new.protocol != Protocol::Udp {
                    return;
                }
                let dir = if output {
                    Direction::Output
                } else {
                    Direction::Input
                };
                self.tab.udp_packet(m.id, self.now, dir);
                self.model.get_mut(&k).unwrap().deadline = self.now + self.timeouts.udp();
            }
            Op::Advance { ms } => self.now += Duration::from_millis(ms as u64),
            Op::Timeout { limit } => {
                let now = self.now;
                let mut out = Vec::new();
                let more = self
                    .tab
                    .handle_timeout(now, limit as usize, |e| out.push(e));
                assert!(out.len() <= limit as usize);
                for e in &out {
                    let m = &self.model[&e.conn.in_key()];
                    assert!(
                        m.deadline <= now,
                        "expired early: deadline {} now {now}",
                        m.deadline
                    );
                    self.removed(e);
                }
                if !more {
                    // Nothing outlives its deadline by a tick.
                    for m in self.model.values() {
                        assert!(
                            m.deadline.as_nanos() + TICK_NS > now.as_nanos(),
                            "overdue entry left"
                        );
                    }
                }
            }
            Op::ExpireNow { pick } => {
                let Some((_, m)) = self.pick(pick) else {
                    return;
                };
                let ex = self
                    .tab
                    .expire_now(m.id, self.now)
                    .expect("conns are freed at once");
                self.removed(&ex);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn table_matches_model(ops in prop::collection::vec(op(), 1..160), key in any::<u128>(), start in 0u64..5_000_000_000_000) {
        let mut world = World {
            tab: ConnTable::new(ConnTableConfig::new(CAP, HashKey::from_u128(key))),
            model: HashMap::new(),
            applied: HashMap::new(),
            now: Instant::from_nanos(start),
            timeouts: Timeouts::default(),
        };
        for op in ops {
            world.step(op);
            world.check();
        }
        // Finally everything expires.
        world.now += Duration::from_secs(1000);
        let mut out = Vec::new();
        while world.tab.handle_timeout(world.now, 5, |e| out.push(e)) {}
        for e in &out {
            world.removed(e);
        }
        world.check();
        prop_assert!(world.tab.is_empty());
        prop_assert_eq!(world.tab.poll_timeout(), None);
    }
}
