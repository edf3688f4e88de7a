//! `sync_apply`: arbitrary datagrams applied to a backup director with a small rule set
//! (DR, NAT and tunnel real servers, a persistent service, a one-packet UDP service, a fwmark
//! service), with time steps and expiry in between.
//!
//! Input: byte 0 picks the backup's syncid (low 2 bits; 0 accepts all) and whether the
//! director also runs a sync master (bit 2); then up to 16 chunks of `[len_hi, len_lo,
//! step, bytes…]` (`len` clamped to what is left), each one datagram applied at the current
//! time, followed by `step` seconds of time and the expiry that brings.
//!
//! Invariants: nothing panics; a refused datagram changes nothing (same entries, same real
//! server counters); after every step each real server's active / inactive / persistent
//! counts equal a recount of the live entries bound to it, no entry has a state the table
//! cannot hold, and the counters add up (datagrams received = applied + refused + ignored).

use lvs_core::conn::{ConnFlags, HashKey};
use lvs_core::director::{Director, DirectorConfig, SyncBackupConfig, SyncMasterConfig};
use lvs_core::rules::RuleSet;
use lvs_core::sync::SyncReason;
use lvs_core::{Duration, Instant};

const RULES: &str = "-A -t 198.51.100.80:80 -s rr\n\
    -a -t 198.51.100.80:80 -r 10.0.1.11:80 -g\n\
    -a -t 198.51.100.80:80 -r 10.0.1.12:8080 -m\n\
    -A -t 198.51.100.80:443 -s wlc -p 60\n\
    -a -t 198.51.100.80:443 -r 10.0.1.11:443 -i\n\
    -A -u 198.51.100.80:53 -s rr -o\n\
    -a -u 198.51.100.80:53 -r 10.0.1.11:53 -m\n\
    -A -f 7 -s sh -p 20\n\
    -a -f 7 -r 10.0.1.11:0 -g\n";

/// Recounts every linked and trashed real server's counters from the table.
fn check_accounting(d: &Director) {
    let mut live = std::collections::HashMap::new();
    for c in d.table().iter() {
        assert!(c.state <= 15);
        assert!(!c.flags.contains(ConnFlags::ONE_PACKET));
        if let Some(id) = c.dest {
            let e: &mut (u32, u32, u32) = live.entry(id).or_default();
            if c.is_template() {
                e.2 += 1;
            } else if c.flags.contains(ConnFlags::INACTIVE) {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        }
    }
    for (_, _, info, _) in d.all_dests() {
        let want = live.remove(&info.id).unwrap_or_default();
        assert_eq!(
            (info.activeconns, info.inactconns, info.persistconns),
            want,
            "counters of {}:{}",
            info.addr,
            info.port
        );
    }
    assert!(live.is_empty(), "entries bound to unknown real servers");
}

/// Applies the datagrams of `data` and checks the invariants above.
pub fn sync_apply(data: &[u8]) {
    let Some((&head, mut rest)) = data.split_first() else {
        return;
    };
    let mut d = Director::new(DirectorConfig::new(64, HashKey::from_u128(0x5a5a)));
    d.apply_rules(Instant::ZERO, &RuleSet::from_text(RULES).unwrap())
        .unwrap();
    d.set_sync_backup(SyncBackupConfig {
        syncid: head & 3,
        threshold: 3,
    });
    if head & 4 != 0 {
        d.set_sync_master(Some(SyncMasterConfig::default()));
    }
    let mut now = Instant::from_secs(1);
    for _ in 0..16 {
        if rest.len() < 3 {
            break;
        }
        let len = (usize::from(rest[0]) << 8 | usize::from(rest[1])).min(rest.len() - 3);
        let step = rest[2];
        let datagram = &rest[3..3 + len];
        rest = &rest[3 + len..];

        let before = (d.connections(now), d.all_dests(), d.table().len());
        match d.apply_sync(now, datagram) {
            Ok(a) => {
                if a.ignored_syncid {
                    assert_eq!(d.table().len(), before.2);
                }
                assert!(a.unbound <= a.created && a.bound_late <= a.updated);
            }
            Err(e) => {
                assert!(e.reason().drops_datagram());
                assert_eq!(
                    d.connections(now),
                    before.0,
                    "refused datagram changed entries"
                );
                assert_eq!(d.all_dests(), before.1, "refused datagram changed counters");
            }
        }
        check_accounting(&d);

        now += Duration::from_secs(u64::from(step));
        let mut rounds = 0;
        while d.handle_timeout(now) {
            rounds += 1;
            assert!(rounds < 10_000, "expiry does not settle");
        }
        while d.poll_sync(now).is_some() {}
        check_accounting(&d);
    }
    let s = d.sync_stats();
    let refused: u64 = SyncReason::ALL
        .iter()
        .filter(|r| r.drops_datagram())
        .map(|&r| s.rejected(r))
        .sum();
    assert_eq!(
        s.datagrams_received,
        s.datagrams_applied + refused + s.rejected(SyncReason::SyncidIgnored)
    );
    // Everything expires in the end (the longest synced timeout is below 2^32 s; jump far).
    let end = now + Duration::from_secs(1 << 33);
    let mut rounds = 0;
    while d.handle_timeout(end) {
        rounds += 1;
        assert!(rounds < 10_000);
    }
    check_accounting(&d);
    assert!(d.table().is_empty(), "entries outlive every timeout");
}
