//! `conn_ops`: arbitrary operation sequences on a small connection table, checking its
//! invariants after every step: the capacity bound, both keys of every entry find it (or an
//! entry with the same reply key), destination counters rebuilt from the returned deltas
//! never go negative and equal a recount of the live entries, and everything expires in the
//! end.

use std::collections::HashMap;
use std::net::IpAddr;

use lvs_core::conn::{
    ConnFlags, ConnTable, ConnTableConfig, DestDelta, Direction, FwdMethod, HashKey, NewConn,
    TcpTable,
};
use lvs_core::sched::DestId;
use lvs_core::{Duration, Instant, Protocol};

const CAP: u32 = 16;

fn apply(counts: &mut HashMap<u32, [i64; 3]>, d: Option<(DestId, DestDelta)>) {
    if let Some((id, d)) = d {
        let c = counts.entry(id.0).or_default();
        c[0] += d.active as i64;
        c[1] += d.inactive as i64;
        c[2] += d.persist as i64;
        assert!(c.iter().all(|v| *v >= 0), "counter below zero");
    }
}

fn addr(b: u8, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b])
    } else {
        IpAddr::from([192, 0, 2, b])
    }
}

/// The fuzz body.
pub fn conn_ops(data: &[u8]) {
    let mut key = [0u8; 16];
    for (k, b) in key.iter_mut().zip(data) {
        *k = *b;
    }
    let mut tab = ConnTable::new(ConnTableConfig::new(CAP, HashKey::from_bytes(key)));
    let mut counts: HashMap<u32, [i64; 3]> = HashMap::new();
    let mut now = Instant::from_secs(100);
    let mut ids = Vec::new();
    for op in data.get(16..).unwrap_or_default().chunks(4) {
        let [a, b, c, d] = [
            op[0],
            *op.get(1).unwrap_or(&0),
            *op.get(2).unwrap_or(&0),
            *op.get(3).unwrap_or(&0),
        ];
        match a % 8 {
            0 | 1 => {
                let v6 = b & 0x80 != 0;
                let template = a & 0x10 != 0;
                let method = if b & 1 == 0 {
                    FwdMethod::Masq
                } else {
                    FwdMethod::DirectRoute
                };
                let mut flags = ConnFlags::for_method(method).with(ConnFlags::INACTIVE);
                if template {
                    flags = flags.with(ConnFlags::TEMPLATE);
                }
                let control = if !template && a & 0x20 != 0 {
                    ids.get(d as usize % ids.len().max(1))
                        .copied()
                        .filter(|id| tab.get(*id).is_some_and(|c| c.is_template()))
                } else {
                    None
                };
                let new = NewConn {
                    protocol: if b & 2 == 0 {
                        Protocol::Tcp
                    } else {
                        Protocol::Udp
                    },
                    caddr: addr(c & 7, v6),
                    cport: if template { 0 } else { (c >> 3) as u16 },
                    vaddr: addr(100 + (b >> 2 & 1), v6),
                    vport: 80,
                    daddr: addr(200 + (d & 3), v6),
                    dport: 8080,
                    flags,
                    fwmark: (d >> 4) as u32,
                    dest: Some(DestId((d & 3) as u32)),
                    control,
                    timeout: Duration::from_millis(100 * (1 + b as u64)),
                };
                if let Ok(ins) = tab.insert(now, new) {
                    if let Some(ev) = ins.evicted {
                        apply(&mut counts, ev.unbind);
                    }
                    apply(&mut counts, ins.bind);
                    if let Some(t) = control {
                        tab.touch(t, now);
                    }
                    ids.push(ins.id);
                }
            }
            2 | 3 => {
                if let Some(id) = ids.get(b as usize % ids.len().max(1)).copied() {
                    let dir = if c & 1 == 0 {
                        Direction::Input
                    } else {
                        Direction::Output
                    };
                    let table = if c & 2 == 0 {
                        TcpTable::Normal
                    } else {
                        TcpTable::Secure
                    };
                    if let Some(u) = tab.tcp_packet(id, now, dir, d, table) {
                        apply(&mut counts, u.delta);
                    }
                    tab.udp_packet(id, now, dir);
                    tab.inc_in_pkts(id);
                }
            }
            4 => now += Duration::from_millis(u16::from_le_bytes([b, c]) as u64 * 50),
            5 => {
                while tab
                    .handle_timeout(now, 1 + (b as usize & 7), |e| apply(&mut counts, e.unbind))
                {
                }
            }
            6 => {
                if let Some(id) = ids.get(b as usize % ids.len().max(1)).copied() {
                    if let Some(e) = tab.expire_now(id, now) {
                        apply(&mut counts, e.unbind);
                    }
                }
            }
            _ => {
                if let Some(id) = ids.get(b as usize % ids.len().max(1)).copied() {
                    if c & 1 == 0 {
                        tab.unhash(id);
                    } else {
                        let _ = tab.fill_cport(id, d as u16);
                    }
                }
            }
        }
        ids.retain(|id| tab.contains(*id));
        check(&tab, &counts);
    }
    now += Duration::from_secs(100_000);
    for _ in 0..1000 {
        if !tab.handle_timeout(now, 64, |e| apply(&mut counts, e.unbind)) {
            break;
        }
        now += Duration::from_secs(100);
    }
    // Templates deferred by 60 s go once their conns are gone.
    while tab.poll_timeout().is_some() {
        now += Duration::from_secs(61);
        while tab.handle_timeout(now, 64, |e| apply(&mut counts, e.unbind)) {}
    }
    assert!(tab.is_empty());
    assert!(
        counts.values().all(|c| *c == [0, 0, 0]),
        "counters back to zero"
    );
}

fn check(tab: &ConnTable, counts: &HashMap<u32, [i64; 3]>) {
    assert!(tab.len() <= CAP as usize);
    let mut recount: HashMap<u32, [i64; 3]> = HashMap::new();
    for c in tab.iter() {
        if c.flags.contains(ConnFlags::HASHED) {
            if c.is_template() {
                assert_eq!(tab.lookup_template(&c.in_key()), Some(c.id));
            } else if c.cport != 0 {
                assert_eq!(tab.lookup_in(&c.in_key()), Some(c.id));
            }
            let o = tab
                .lookup_out(&c.out_key())
                .expect("reply key finds an entry");
            assert_eq!(tab.get(o).unwrap().out_key(), c.out_key());
        }
        let d = c.dest.unwrap();
        let r = recount.entry(d.0).or_default();
        let k = if c.is_template() {
            2
        } else if c.flags.contains(ConnFlags::INACTIVE) {
            1
        } else {
            0
        };
        r[k] += 1;
    }
    for d in 0..4 {
        assert_eq!(
            counts.get(&d).copied().unwrap_or_default(),
            recount.get(&d).copied().unwrap_or_default()
        );
    }
}
