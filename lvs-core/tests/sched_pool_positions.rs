//! `Pool` finds a destination's list position whether identities are dense (the director's)
//! or scattered (callers that bring their own), through additions and removals.

use core::net::{IpAddr, Ipv4Addr};

use lvs_core::sched::pool::Pool;
use lvs_core::sched::{DestId, DestInfo, SchedConfig, SchedFlags, SchedKind};

fn addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i))
}

/// Checks every linked destination's position against the list, and that `absent` is absent.
fn check(pool: &Pool, absent: &[DestId]) {
    for (pos, d) in pool.dests().iter().enumerate() {
        assert_eq!(pool.position(d.id), Some(pos), "{:?}", d.id);
        assert_eq!(pool.get(d.id).map(|g| g.id), Some(d.id));
    }
    for id in absent {
        assert_eq!(
            pool.position(*id),
            None,
            "{id:?} in {:?}",
            pool.dests().iter().map(|d| d.id).collect::<Vec<_>>()
        );
    }
}

#[test]
fn positions_follow_dense_and_scattered_identities() {
    let mut pool = Pool::new(SchedKind::Wlc, SchedFlags::empty(), &SchedConfig::default());
    let ids: Vec<DestId> = (0..10).map(|i| pool.add(addr(i), 80, 1).unwrap()).collect();
    check(&pool, &[DestId(11), DestId(1001), DestId(u32::MAX)]);
    pool.remove(ids[3]).unwrap();
    check(&pool, &[ids[3], DestId(11)]);
    // A scattered identity: too far for a table indexed by identity.
    let far = DestId(3_000_000_000);
    pool.insert(DestInfo::new(far, addr(100), 80, 2)).unwrap();
    check(&pool, &[ids[3], DestId(11), DestId(5_000)]);
    assert_eq!(
        pool.update_counts(far, |d| {
            d.activeconns += 1;
            d.activeconns
        }),
        Some(1)
    );
    assert_eq!(pool.update_counts(ids[3], |d| d.activeconns), None);
    pool.remove(far).unwrap();
    check(&pool, &[ids[3], far]);
    // Back to dense identities, and a revived one.
    pool.insert(DestInfo::new(ids[3], addr(3), 80, 1)).unwrap();
    check(&pool, &[far]);
    for id in ids {
        pool.remove(id).unwrap();
    }
    check(&pool, &[DestId(0), far]);
    assert!(pool.dests().is_empty());
}
