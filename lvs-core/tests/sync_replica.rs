//! Property: a master's datagrams reproduce its table on a backup. Random client traffic goes
//! through a sync master (every incoming packet considered: `sync_threshold = 0 1`), the
//! datagrams (of a random `sync_maxlen`) are applied to a backup with the same rules, and
//! every master entry in a synced state must be on the backup with the same protocol,
//! addresses, real server, state and flags (but HASHED and SYNC); the backup's real-server
//! counters must match its own entries.
//!
//! One kernel rule makes the backup diverge on purpose: an INACTIVE record for a connection
//! the backup holds with another real server is taken for the late expiry message of a
//! replaced connection and ignored (spec §4.4). A connection rescheduled on the master (a SYN
//! on TIME_WAIT) whose first synced record after that is INACTIVE therefore stays on the
//! backup with its old real server. A reference model of that rule, run over the decoded
//! records, says which entries are expected to match the master.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::collections::HashMap;

use lvs_core::conn::{Conn, ConnFlags, HashKey};
use lvs_core::director::{Director, DirectorConfig, FlowPacket, PacketDir, SyncMasterConfig};
use lvs_core::rules::RuleSet;
use lvs_core::sched::DestId;
use lvs_core::sync::decode;
use lvs_core::sync::master::SyncSysctls;
use lvs_core::{Duration, Instant, Protocol};
use proptest::prelude::*;

const RULES: [&str; 3] = [
    "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n\
     -a -t 10.0.0.1:80 -r 10.1.0.2:80 -i\n-a -t 10.0.0.1:80 -r 10.1.0.3:8080 -m\n\
     -A -u 10.0.0.1:53 -s wrr\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -g\n\
     -a -u 10.0.0.1:53 -r 10.1.0.2:5353 -m -w 2\n",
    "-A -t 10.0.0.1:80 -s lc -p 120\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n\
     -a -t 10.0.0.1:80 -r 10.1.0.2:80 -g\n\
     -A -u 10.0.0.1:53 -s rr -p 60\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -g\n\
     -a -u 10.0.0.1:53 -r 10.1.0.2:53 -g\n",
    "-A -t 10.0.0.1:80 -s sh\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n\
     -a -t 10.0.0.1:80 -r 10.1.0.2:80 -m\n\
     -A -u 10.0.0.1:53 -s rr\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -m\n",
];

/// TCP flag choices: SYN, ACK, FIN+ACK, RST, SYN+ACK.
const TCP_FLAGS: [u8; 5] = [0x02, 0x10, 0x11, 0x04, 0x12];

fn synced_state(c: &Conn) -> bool {
    if c.is_template() || c.protocol != Protocol::Tcp {
        return true;
    }
    // ESTABLISHED, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT.
    matches!(c.state, 1 | 4 | 5 | 6 | 7)
}

fn key(c: &Conn) -> (Protocol, IpAddr, u16, IpAddr, u16, bool) {
    (
        c.protocol,
        c.caddr,
        c.cport,
        c.vaddr,
        c.vport,
        c.is_template(),
    )
}

fn director(rules: &str, k: u128) -> Director {
    let mut d = Director::new(DirectorConfig::new(1024, HashKey::from_u128(k)));
    d.apply_rules(Instant::ZERO, &RuleSet::from_text(rules).unwrap())
        .unwrap();
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn backup_reproduces_master(
        rules in 0..RULES.len(),
        maxlen in 60usize..1500,
        ops in prop::collection::vec((0u8..6, 0u16..3, any::<bool>(), 0..TCP_FLAGS.len(), 0u64..20), 1..120),
    ) {
        let mut m = director(RULES[rules], 1);
        let mut b = director(RULES[rules], 2);
        m.set_sync_master(Some(SyncMasterConfig {
            maxlen,
            sysctls: SyncSysctls { threshold: 0, period: 1, ..SyncSysctls::default() },
            ..SyncMasterConfig::default()
        }));
        let mut now = Instant::from_secs(1);
        let mut datagrams = Vec::new();
        for (client, port, udp, f, dt) in ops {
            now += Duration::from_millis(dt);
            let (protocol, vport) = if udp { (Protocol::Udp, 53) } else { (Protocol::Tcp, 80) };
            let pkt = FlowPacket {
                protocol,
                src: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, client)), 40000 + port),
                dst: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), vport),
                fwmark: 0,
                tcp_flags: TCP_FLAGS[f],
                len: 60,
                dir: PacketDir::FromClient,
            };
            m.handle_flow(now, &pkt);
            while let Some(g) = m.poll_sync(now) {
                prop_assert!(g.len() <= maxlen.max(8 + 36));
                datagrams.push(g);
            }
        }
        m.flush_sync();
        while let Some(g) = m.poll_sync(now) {
            datagrams.push(g);
        }
        for g in &datagrams {
            b.apply_sync(now, g).unwrap();
        }

        // Reference model of the backup: key -> (real server, state, INACTIVE).
        let mut model: HashMap<_, (IpAddr, u16, u16, bool)> = HashMap::new();
        for g in &datagrams {
            for r in decode(g).unwrap().records {
                let k = (
                    Protocol::from_number(r.protocol).unwrap(), r.caddr, r.cport, r.vaddr, r.vport,
                    r.is_template(),
                );
                let inactive = r.flags.contains(ConnFlags::INACTIVE);
                if let Some(old) = model.get(&k) {
                    if !r.is_template() && (old.0, old.1) != (r.daddr, r.dport) && inactive {
                        continue; // late expiry message: ignored
                    }
                }
                model.insert(k, (r.daddr, r.dport, r.state, inactive));
            }
        }
        let on_backup: HashMap<_, Conn> = b.table().iter().map(|c| (key(&c), c)).collect();
        prop_assert_eq!(on_backup.len(), model.len());
        for (k, want) in &model {
            let bc = on_backup.get(k).unwrap();
            prop_assert_eq!(
                (bc.daddr, bc.dport, u16::from(bc.state), bc.flags.contains(ConnFlags::INACTIVE)),
                *want
            );
        }
        let strip = ConnFlags::HASHED.with(ConnFlags::SYNC);
        for mc in m.table().iter().filter(synced_state) {
            if model.get(&key(&mc)).is_some_and(|w| (w.0, w.1) != (mc.daddr, mc.dport)) {
                continue; // the late-expiry rule above
            }
            let Some(bc) = on_backup.get(&key(&mc)) else {
                return Err(TestCaseError::fail(format!("missing on backup: {mc:?}")));
            };
            prop_assert_eq!((bc.daddr, bc.dport), (mc.daddr, mc.dport));
            prop_assert_eq!(bc.state, mc.state, "{:?} / {:?}", mc, bc);
            prop_assert_eq!(bc.flags.without(strip), mc.flags.without(strip));
            prop_assert!(bc.flags.contains(ConnFlags::SYNC));
            prop_assert_eq!(bc.fwmark, mc.fwmark);
            prop_assert!(bc.dest.is_some());
        }

        // The backup's counters are those of its own entries.
        let mut expect: HashMap<DestId, (u32, u32, u32)> = HashMap::new();
        for c in b.table().iter() {
            if let Some(d) = c.dest {
                let e = expect.entry(d).or_default();
                if c.is_template() {
                    e.2 += 1;
                } else if c.flags.contains(ConnFlags::INACTIVE) {
                    e.1 += 1;
                } else {
                    e.0 += 1;
                }
            }
        }
        for (_, _, info, _) in b.all_dests() {
            let e = expect.get(&info.id).copied().unwrap_or_default();
            prop_assert_eq!((info.activeconns, info.inactconns, info.persistconns), e);
        }
    }
}
