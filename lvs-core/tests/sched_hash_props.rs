//! Property tests of the hashing schedulers: how many keys move when a destination leaves
//! (mh consistent, sh modular), shares proportional to weights, and the hash helpers.

use core::net::IpAddr;

use lvs_core::sched::hash::{hsiphash, hsiphash_u32, HsiphashKey};
use lvs_core::sched::{
    dh::Dh, mh::Mh, sh::Sh, DestChange, DestId, DestInfo, FlowKey, HashVariant, SchedContext,
    SchedFlags, Scheduler,
};
use lvs_core::{Instant, Protocol};
use proptest::prelude::*;

fn dests_from(addrs: &[(u32, u16)], weights: &[u32]) -> Vec<DestInfo> {
    addrs
        .iter()
        .zip(weights)
        .enumerate()
        .map(|(i, (&(a, p), &w))| {
            DestInfo::new(DestId(i as u32), IpAddr::from(a.to_be_bytes()), p, w)
        })
        .collect()
}

/// Distinct real-server address/port pairs.
fn servers(n: core::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<(u32, u16)>> {
    prop::collection::hash_set((any::<u32>(), 1u16..=65535), n)
        .prop_map(|s| s.into_iter().collect())
}

fn owners(mh: &Mh, d: &[DestInfo]) -> Vec<DestId> {
    mh.slots().map(|s| d[s.expect("populated")].id).collect()
}

fn pick(s: &mut dyn Scheduler, d: &[DestInfo], client: u32) -> Option<usize> {
    let mut rng = rand_pcg::Pcg32::new(3, 3);
    let mut ctx = SchedContext {
        now: Instant::ZERO,
        rng: &mut rng,
    };
    let a = IpAddr::from(client.to_be_bytes());
    let f = FlowKey::new(Protocol::Tcp, a, 4242, IpAddr::from([10, 255, 0, 1]), 80);
    s.schedule(d, &f, &mut ctx)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Maglev: when one of N destinations leaves, keys of the others mostly stay: of the
    /// slots (and of sampled client keys) not owned by the leaver, < 10 % change owner
    /// (a modular hash such as sh moves about (N-1)/N of them). Maglev's disruption is not
    /// bounded exactly: it averages 1-3 % here, and random sets of 10 servers have shown
    /// 5.8 %, so the bound leaves room for that tail.
    #[test]
    fn mh_removal_moves_about_one_nth(
        srv in servers(10..=50),
        victim in any::<prop::sample::Index>(),
        clients in prop::collection::vec(any::<u32>(), 2000),
    ) {
        let n = srv.len();
        let mut d = dests_from(&srv, &vec![1; n]);
        let mut mh = Mh::new(SchedFlags::empty(), 4093);
        mh.update(&d, DestChange::Init);
        let before = owners(&mh, &d);
        let key_before: Vec<DestId> =
            clients.iter().map(|&c| d[pick(&mut mh, &d, c).unwrap()].id).collect();
        let k = victim.index(n);
        let gone = d.remove(k);
        mh.update(&d, DestChange::Removed { pos: k, id: gone.id });
        let after = owners(&mh, &d);

        let kept: Vec<usize> = (0..before.len()).filter(|&i| before[i] != gone.id).collect();
        let moved = kept.iter().filter(|&&i| before[i] != after[i]).count();
        prop_assert!((moved as f64) < 0.10 * kept.len() as f64, "{moved} of {} slots moved", kept.len());
        // Every slot of the leaver went to someone else.
        prop_assert!(after.iter().all(|&id| id != gone.id));

        let mut kept_keys = 0;
        let mut moved_keys = 0;
        for (&c, &was) in clients.iter().zip(&key_before) {
            let now = d[pick(&mut mh, &d, c).unwrap()].id;
            if was != gone.id {
                kept_keys += 1;
                moved_keys += (now != was) as usize;
            }
        }
        prop_assert!((moved_keys as f64) < 0.10 * kept_keys as f64 + 1.0,
            "{moved_keys} of {kept_keys} keys moved");
    }

    /// Maglev slot shares follow the weights: with T = Σ turns, every destination owns between
    /// ⌊M/T⌋·t and (⌊M/T⌋+1)·t slots, i.e. within t of M·t/T (t = weight/gcd, or its high bits
    /// when the weights need more bits than the table allows).
    #[test]
    fn mh_slot_shares_are_proportional(
        srv in servers(2..=20),
        weights in prop::collection::vec(1u32..=20, 20),
        m in prop::sample::select(vec![251u32, 1021, 4093, 8191]),
    ) {
        let n = srv.len();
        let d = dests_from(&srv, &weights[..n]);
        let mut mh = Mh::new(SchedFlags::empty(), m);
        mh.update(&d, DestChange::Init);
        // Turns are weight / gcd, shifted right when that needs more than the table's bits
        // (4 bits for M = 251, 5 for 1021, 6 for 4093, 6 for 8191).
        let g = mh.gcd();
        let turns: Vec<u64> = mh.permutations(&d).iter().map(|p| p.turns as u64).collect();
        for (x, &t) in d.iter().zip(&turns) {
            prop_assert_eq!(t, (((x.last_weight / g) >> mh.rshift()) as u64).max(1));
        }
        let t: u64 = turns.iter().sum();
        let mut count = vec![0u64; n];
        for s in mh.slots() {
            count[s.unwrap()] += 1;
        }
        let rounds = m as u64 / t;
        for i in 0..n {
            prop_assert!(count[i] >= rounds * turns[i] && count[i] <= (rounds + 1) * turns[i],
                "dest {i}: {} slots, turns {}, rounds {rounds}", count[i], turns[i]);
            let ideal = m as f64 * turns[i] as f64 / t as f64;
            prop_assert!((count[i] as f64 - ideal).abs() <= turns[i] as f64);
        }
    }

    /// sh is modular, not consistent: with equal weights, after removing list position k the
    /// table is re-dealt from scratch (bucket i → new_list[i mod (N−1)]), so most clients of
    /// the remaining destinations move, unlike mh.
    #[test]
    fn sh_removal_redeals_every_bucket(
        n in 4usize..=40,
        victim in any::<prop::sample::Index>(),
    ) {
        let srv: Vec<(u32, u16)> = (0..n as u32).map(|i| (0x0A00_0000 + i, 80)).collect();
        let mut d = dests_from(&srv, &vec![1; n]);
        let mut sh = Sh::new(SchedFlags::empty(), HashVariant::Current);
        sh.update(&d, DestChange::Init);
        let before: Vec<DestId> = sh.buckets().map(|b| d[b.unwrap()].id).collect();
        let k = victim.index(n);
        let gone = d.remove(k);
        sh.update(&d, DestChange::Removed { pos: k, id: gone.id });
        let after: Vec<DestId> = sh.buckets().map(|b| d[b.unwrap()].id).collect();
        for (i, id) in after.iter().enumerate() {
            prop_assert_eq!(*id, d[i % (n - 1)].id);
        }
        let kept: Vec<usize> = (0..256).filter(|&i| before[i] != gone.id).collect();
        let moved = kept.iter().filter(|&&i| before[i] != after[i]).count();
        prop_assert!(moved * 2 > kept.len(), "only {moved} of {} moved", kept.len());
    }

    /// sh weighted dealing: with S = Σ max(w, 1), each destination owns between
    /// ⌊256/S⌋·max(w,1) and (⌊256/S⌋+1)·max(w,1) buckets, in runs of max(w,1).
    #[test]
    fn sh_bucket_shares_follow_weights(weights in prop::collection::vec(0u32..=12, 1..=16)) {
        let n = weights.len();
        let srv: Vec<(u32, u16)> = (0..n as u32).map(|i| (0x0A00_0000 + i, 80)).collect();
        let d = dests_from(&srv, &weights);
        let mut sh = Sh::new(SchedFlags::empty(), HashVariant::Current);
        sh.update(&d, DestChange::Init);
        let per: Vec<u64> = weights.iter().map(|&w| w.max(1) as u64).collect();
        let s: u64 = per.iter().sum();
        let mut count = vec![0u64; n];
        for b in sh.buckets() {
            count[b.unwrap()] += 1;
        }
        let cycles = 256 / s;
        for i in 0..n {
            prop_assert!(count[i] >= cycles * per[i] && count[i] <= (cycles + 1) * per[i]);
        }
    }

    /// dh deals buckets round-robin whatever the weights.
    #[test]
    fn dh_round_robin(weights in prop::collection::vec(0u32..=5, 1..=300)) {
        let n = weights.len();
        let srv: Vec<(u32, u16)> = (0..n as u32).map(|i| (0x0A00_0000 + i, 80)).collect();
        let d = dests_from(&srv, &weights);
        let mut dh = Dh::new(HashVariant::Legacy);
        dh.update(&d, DestChange::Init);
        for (i, b) in dh.buckets().enumerate() {
            prop_assert_eq!(b, Some(i % n));
        }
    }

    /// The 4-byte fast path is hsiphash over the little-endian bytes.
    #[test]
    fn hsiphash_u32_matches_bytes(v in any::<u32>(), k0 in any::<u64>(), k1 in any::<u64>()) {
        let key = HsiphashKey::new(k0, k1);
        prop_assert_eq!(hsiphash_u32(v, &key), hsiphash(&v.to_le_bytes(), &key));
    }

    /// Whatever the state, a decision is an index into the slice or none, and sh/mh answers
    /// are usable destinations.
    #[test]
    fn answers_are_usable(
        srv in servers(1..=30),
        weights in prop::collection::vec(0u32..=3, 30),
        overload in prop::collection::vec(any::<bool>(), 30),
        clients in prop::collection::vec(any::<u32>(), 50),
        fallback in any::<bool>(),
    ) {
        let n = srv.len();
        let mut d = dests_from(&srv, &weights[..n]);
        for (x, &o) in d.iter_mut().zip(&overload) {
            x.flags.set(lvs_core::sched::DestFlags::OVERLOAD, o);
        }
        let flags = if fallback { SchedFlags::SCHED1 } else { SchedFlags::empty() };
        let mut scheds: Vec<Box<dyn Scheduler>> = vec![
            Box::new(Sh::new(flags, HashVariant::Current)),
            Box::new(Mh::new(flags, 251)),
            Box::new(Dh::new(HashVariant::Current)),
        ];
        let any_usable = d.iter().any(|x| x.weight > 0 && !x.is_overloaded());
        for s in scheds.iter_mut() {
            s.update(&d, DestChange::Init);
            for &c in &clients {
                if let Some(p) = pick(s.as_mut(), &d, c) {
                    prop_assert!(p < n);
                    prop_assert!(d[p].weight > 0 && !d[p].is_overloaded());
                }
            }
        }
        // mh with fallback and a usable destination always finds one when some usable
        // destination owns slots (last_weight > 0 here equals weight > 0).
        if fallback && any_usable {
            let mut mh = Mh::new(flags, 251);
            mh.update(&d, DestChange::Init);
            let owns_usable = mh.slots().flatten().any(|p| d[p].weight > 0 && !d[p].is_overloaded());
            if owns_usable {
                // Not guaranteed for every key (the rehash may hit only unusable slots), but
                // most keys must find one.
                let found = clients.iter().filter(|&&c| pick(&mut mh, &d, c).is_some()).count();
                prop_assert!(found * 2 >= clients.len());
            }
        }
    }
}

/// mh's decision as spec §1.11 states it, from the public table: the client side of the flow
/// (destination side for inverse packets), its port only with mh-port and a protocol with
/// ports, one lookup, and with mh-fallback the rehash over offsets until an empty slot.
fn mh_reference(mh: &Mh, flags: SchedFlags, d: &[DestInfo], f: &FlowKey) -> Option<usize> {
    use lvs_core::sched::mh::{mh_hashkey, MH_HASH1};
    let (addr, port) = if f.inverse {
        (f.daddr, f.dport)
    } else {
        (f.saddr, f.sport)
    };
    let port = if flags.port() && f.protocol != Protocol::Ip {
        port
    } else {
        0
    };
    let m = mh.table_size();
    let slots: Vec<Option<usize>> = mh.slots().collect();
    let usable = |p: usize| d[p].weight > 0 && !d[p].is_overloaded();
    let ihash = mh_hashkey(addr, port, &MH_HASH1, 0) % m;
    let p = slots[ihash as usize]?;
    if usable(p) {
        return Some(p);
    }
    if !flags.fallback() {
        return None;
    }
    for offset in 0..m {
        let roffset = (offset + ihash) % m;
        let p = slots[(mh_hashkey(addr, port, &MH_HASH1, roffset) % m) as usize]?;
        if usable(p) {
            return Some(p);
        }
    }
    None
}

fn any_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => any::<u32>().prop_map(|a| IpAddr::from(a.to_be_bytes())),
        1 => any::<u128>().prop_map(|a| IpAddr::from(a.to_be_bytes())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every mh decision equals the reference lookup, over both flow directions, both address
    /// families, protocols with and without ports, all four flag combinations, and
    /// destinations quiesced or OVERLOAD (so that the fallback runs).
    #[test]
    fn mh_decision_is_the_reference_lookup(
        srv in servers(1..=20),
        weights in prop::collection::vec(0u32..=3, 20),
        overload in prop::collection::vec(prop::bool::weighted(0.3), 20),
        flows in prop::collection::vec(
            (any_addr(), any::<u16>(), any_addr(), any::<u16>(), any::<bool>(), 0u8..3),
            40,
        ),
        flag_bits in 0u8..4,
    ) {
        let n = srv.len();
        let mut d = dests_from(&srv, &vec![1; n]);
        let flags = SchedFlags::from_bits_truncate(flag_bits << 3);
        let mut mh = Mh::new(flags, 251);
        mh.update(&d, DestChange::Init);
        // Quiesce and overload after the build: the table keeps every destination's slots.
        for (i, x) in d.iter_mut().enumerate() {
            x.weight = weights[i];
            x.flags.set(lvs_core::sched::DestFlags::OVERLOAD, overload[i]);
        }
        // Told as the pool tells it: an edit for the weight (last_weight, hence the table, is
        // unchanged), a counts change for OVERLOAD.
        for i in 0..n {
            mh.update(&d, DestChange::Edited { pos: i });
            mh.counts_changed(&d, i);
        }
        let mut rng = rand_pcg::Pcg32::new(3, 3);
        let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut rng };
        for &(saddr, sport, daddr, dport, inverse, proto) in &flows {
            let protocol = [Protocol::Tcp, Protocol::Udp, Protocol::Ip][proto as usize];
            let mut f = FlowKey::new(protocol, saddr, sport, daddr, dport);
            f.inverse = inverse;
            prop_assert_eq!(mh.schedule(&d, &f, &mut ctx), mh_reference(&mh, flags, &d, &f));
        }
    }
}
