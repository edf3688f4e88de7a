//! The hashing and locality schedulers (dh, sh, mh, lblc, lblcr) and the kernel hash functions
//! against the worked vectors of spec §1.15 (H1, H2, H3, M1, L5), the kernel's hsiphash
//! self-test vectors, and their availability rules.

use core::net::IpAddr;

use lvs_core::sched::hash::{
    addr_fold, bucket, hash_32, hsiphash, hsiphash_u32, legacy_hash, HsiphashKey,
};
use lvs_core::sched::{
    dh::Dh, lblc::Lblc, lblcr::Lblcr, mh::Mh, mh::MH_PRIMES, sh::Sh, DestChange, DestFlags, DestId,
    DestInfo, FlowKey, HashVariant, SchedConfig, SchedContext, SchedFlags, SchedKind, Scheduler,
};
use lvs_core::{Duration, Instant, Protocol};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn dest(id: u32, addr: &str, port: u16, weight: u32) -> DestInfo {
    DestInfo::new(DestId(id), ip(addr), port, weight)
}

/// List [C, B, A] as `ipvsadm -a` A, B, C leaves it.
fn cba(wc: u32, wb: u32, wa: u32) -> Vec<DestInfo> {
    vec![
        dest(3, "10.0.0.3", 80, wc),
        dest(2, "10.0.0.2", 80, wb),
        dest(1, "10.0.0.1", 80, wa),
    ]
}

fn from_client(saddr: &str, sport: u16) -> FlowKey {
    FlowKey::new(Protocol::Tcp, ip(saddr), sport, ip("10.9.9.9"), 80)
}

fn to_daddr(daddr: &str) -> FlowKey {
    FlowKey::new(Protocol::Tcp, ip("192.0.2.200"), 33333, ip(daddr), 80)
}

fn pick(s: &mut dyn Scheduler, dests: &[DestInfo], flow: &FlowKey, now: Instant) -> Option<usize> {
    let mut rng = rand_pcg::Pcg32::new(7, 7);
    let mut ctx = SchedContext { now, rng: &mut rng };
    s.schedule(dests, flow, &mut ctx)
}

const H1: [(&str, u32, u32, u32, u32, u32); 4] = [
    // address, host-order value, current, legacy, current+port 40000, legacy+port 40000
    ("192.168.1.10", 0xC0A8_010A, 248, 234, 156, 42),
    ("10.0.0.1", 0x0A00_0001, 39, 177, 203, 241),
    ("172.16.5.77", 0xAC10_054D, 108, 61, 16, 125),
    ("203.0.113.200", 0xCB00_71C8, 52, 72, 216, 136),
];

// ---------------------------------------------------------------- hash functions

#[test]
fn h1_bucket_hashes() {
    for (a, x, cur, leg, cur_p, leg_p) in H1 {
        assert_eq!(addr_fold(ip(a)), x, "{a}");
        assert_eq!(hash_32(x, 8), cur, "{a} current");
        assert_eq!(legacy_hash(x, 0xFF), leg, "{a} legacy");
        assert_eq!(
            bucket(HashVariant::Current, x + 40000, 8),
            cur_p,
            "{a} current port"
        );
        assert_eq!(
            bucket(HashVariant::Legacy, x + 40000, 8),
            leg_p,
            "{a} legacy port"
        );
    }
    // IPv6: 2001:db8::1 folds to 0x20010DB9 → bucket 63.
    assert_eq!(addr_fold(ip("2001:db8::1")), 0x2001_0DB9);
    assert_eq!(hash_32(0x2001_0DB9, 8), 63);
}

#[test]
fn h1_through_the_schedulers() {
    // A table of 256 distinct destinations makes the bucket observable as the position.
    let dests: Vec<DestInfo> = (0..256u32)
        .map(|i| dest(i, &format!("10.1.{}.{}", i / 256, i % 256), 80, 1))
        .collect();
    for (a, _, cur, leg, cur_p, leg_p) in H1 {
        for (variant, plain, with_port) in [
            (HashVariant::Current, cur, cur_p),
            (HashVariant::Legacy, leg, leg_p),
        ] {
            let mut sh = Sh::new(SchedFlags::empty(), variant);
            sh.update(&dests, DestChange::Init);
            assert_eq!(
                pick(&mut sh, &dests, &from_client(a, 40000), Instant::ZERO),
                Some(plain as usize)
            );
            let mut shp = Sh::new(SchedFlags::SCHED2, variant);
            shp.update(&dests, DestChange::Init);
            assert_eq!(
                pick(&mut shp, &dests, &from_client(a, 40000), Instant::ZERO),
                Some(with_port as usize),
                "{a} sh-port {variant:?}"
            );
            let mut dh = Dh::new(variant);
            dh.update(&dests, DestChange::Init);
            assert_eq!(
                pick(&mut dh, &dests, &to_daddr(a), Instant::ZERO),
                Some(plain as usize)
            );
        }
    }
    // IPv6 client through sh: bucket 63.
    let mut sh = Sh::new(SchedFlags::empty(), HashVariant::Current);
    sh.update(&dests, DestChange::Init);
    let f = FlowKey::new(Protocol::Tcp, ip("2001:db8::1"), 1, ip("2001:db8::80"), 80);
    assert_eq!(pick(&mut sh, &dests, &f, Instant::ZERO), Some(63));
}

#[test]
fn sh_port_uses_inverse_side_and_ignores_portless_protocols() {
    let dests: Vec<DestInfo> = (0..256u32)
        .map(|i| dest(i, &format!("10.2.0.{i}"), 80, 1))
        .collect();
    let mut sh = Sh::new(SchedFlags::SCHED2, HashVariant::Current);
    sh.update(&dests, DestChange::Init);
    // An ICMP error travelling in reverse: the client is the packet's destination.
    let mut f = FlowKey::new(Protocol::Tcp, ip("10.9.9.9"), 80, ip("192.168.1.10"), 40000);
    f.inverse = true;
    assert_eq!(pick(&mut sh, &dests, &f, Instant::ZERO), Some(156));
    // No ports for IP: the port is 0.
    let f = FlowKey::new(Protocol::Ip, ip("192.168.1.10"), 40000, ip("10.9.9.9"), 0);
    assert_eq!(pick(&mut sh, &dests, &f, Instant::ZERO), Some(248));
}

/// `in[i] = i` for `len` bytes, key 00..0f: the kernel's 64-bit hsiphash vectors
/// (lib/siphash_kunit.c, `BITS_PER_LONG == 64`).
const HSIPHASH_VECTORS: [u32; 64] = [
    0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7, 0x9bb11140,
    0x8d299a8e, 0x6c063de4, 0x92ff097f, 0xf94dc352, 0x57b4d9a2, 0x1229ffa7, 0xc0f95d34, 0x2a519956,
    0x7d908b66, 0x63dbd80c, 0xb473e63e, 0x8d297d1c, 0xa6cce040, 0x2b45f844, 0xa320872e, 0xdae6c123,
    0x67349c8c, 0x705b0979, 0xca9913a5, 0x4ade3b35, 0xef6cd00d, 0x4ab1e1f4, 0x43c5e663, 0x8c21d1bc,
    0x16a7b60d, 0x7a8ff9bf, 0x1f2a753e, 0xbf186b91, 0xada26206, 0xa3c33057, 0xae3a36a1, 0x7b108392,
    0x99e41531, 0x3f1ad944, 0xc8138825, 0xc28949a6, 0xfaf8876b, 0x9f042196, 0x68b1d623, 0x8b5114fd,
    0xdf074c46, 0x12cc86b3, 0x0a52098f, 0x9d292f9a, 0xa2f41f12, 0x43a71ed0, 0x73f0bce6, 0x70a7e980,
    0x243c6d75, 0xfdb71513, 0xa67d8a08, 0xb7e8f148, 0xf7a644ee, 0x0f1837f2, 0x4b6694e0, 0xb7bbb3a8,
];

#[test]
fn hsiphash_kernel_self_test_vectors() {
    let key = HsiphashKey::new(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
    let input: Vec<u8> = (0..64u8).collect();
    for (len, &want) in HSIPHASH_VECTORS.iter().enumerate() {
        assert_eq!(hsiphash(&input[..len], &key), want, "length {len}");
    }
    // hsiphash_1u32(0x03020100) is the 4-byte vector.
    assert_eq!(hsiphash_u32(0x0302_0100, &key), HSIPHASH_VECTORS[4]);
}

// ---------------------------------------------------------------- sh

fn sh_owner_counts(sh: &Sh, n: usize) -> Vec<usize> {
    let mut c = vec![0; n];
    for b in sh.buckets() {
        c[b.unwrap()] += 1;
    }
    c
}

#[test]
fn h2_sh_tables() {
    let d = cba(1, 1, 1);
    let mut sh = Sh::new(SchedFlags::empty(), HashVariant::Current);
    sh.update(&d, DestChange::Init);
    let b: Vec<usize> = sh.buckets().map(Option::unwrap).collect();
    assert_eq!(&b[..6], &[0, 1, 2, 0, 1, 2]);
    assert_eq!(b[255], 0);
    assert_eq!(
        pick(&mut sh, &d, &from_client("192.168.1.10", 1), Instant::ZERO),
        Some(2)
    ); // A
    assert_eq!(
        pick(&mut sh, &d, &from_client("10.0.0.1", 1), Instant::ZERO),
        Some(0)
    ); // C
    assert_eq!(
        pick(&mut sh, &d, &from_client("172.16.5.77", 1), Instant::ZERO),
        Some(0)
    ); // C
    let mut legacy = Sh::new(SchedFlags::empty(), HashVariant::Legacy);
    legacy.update(&d, DestChange::Init);
    assert_eq!(
        pick(
            &mut legacy,
            &d,
            &from_client("192.168.1.10", 1),
            Instant::ZERO
        ),
        Some(0)
    );

    // Weighted [C(3), B(2), A(1)]: C C C B B A, bucket 255 → B; counts 129 / 85 / 42.
    let d = cba(3, 2, 1);
    sh.update(&d, DestChange::Init);
    let b: Vec<usize> = sh.buckets().map(Option::unwrap).collect();
    assert_eq!(&b[..12], &[0, 0, 0, 1, 1, 2, 0, 0, 0, 1, 1, 2]);
    assert_eq!(b[255], 1);
    assert_eq!(sh_owner_counts(&sh, 3), vec![129, 85, 42]);

    // [C(1), B(1), A(0)]: A still owns one bucket per cycle (86 / 85 / 85) but is never chosen.
    let d = cba(1, 1, 0);
    sh.update(&d, DestChange::Edited { pos: 2 });
    assert_eq!(sh_owner_counts(&sh, 3), vec![86, 85, 85]);
    assert_eq!(
        pick(&mut sh, &d, &from_client("192.168.1.10", 1), Instant::ZERO),
        None
    );
    for i in 0..2000u32 {
        let f = from_client(
            &IpAddr::from((0x0A10_0000 + i).to_be_bytes()).to_string(),
            1,
        );
        assert_ne!(pick(&mut sh, &d, &f, Instant::ZERO), Some(2));
    }
}

#[test]
fn h2_sh_fallback_probe_order() {
    // 256 destinations, one per bucket; make the primary (248) and the first probes unusable
    // and watch where the walk lands: 2*248 mod 256 = 240, then 241, 242, ...
    let mut d: Vec<DestInfo> = (0..256u32)
        .map(|i| dest(i, &format!("10.3.0.{i}"), 80, 1))
        .collect();
    let mut sh = Sh::new(SchedFlags::SCHED1, HashVariant::Current);
    sh.update(&d, DestChange::Init);
    let f = from_client("192.168.1.10", 1);
    assert_eq!(pick(&mut sh, &d, &f, Instant::ZERO), Some(248));
    d[248].weight = 0;
    sh.update(&d, DestChange::Edited { pos: 248 });
    assert_eq!(pick(&mut sh, &d, &f, Instant::ZERO), Some(240));
    d[240].flags.set(DestFlags::OVERLOAD, true);
    assert_eq!(pick(&mut sh, &d, &f, Instant::ZERO), Some(241));
    d[241].weight = 0;
    sh.update(&d, DestChange::Edited { pos: 241 });
    assert_eq!(pick(&mut sh, &d, &f, Instant::ZERO), Some(242));
    // Without the fallback flag: no destination.
    let mut plain = Sh::new(SchedFlags::empty(), HashVariant::Current);
    plain.update(&d, DestChange::Init);
    assert_eq!(pick(&mut plain, &d, &f, Instant::ZERO), None);
    // Everything unusable: the walk ends after 256 probes with none.
    for x in d.iter_mut() {
        x.weight = 0;
    }
    sh.update(&d, DestChange::Edited { pos: 0 });
    assert_eq!(pick(&mut sh, &d, &f, Instant::ZERO), None);
}

#[test]
fn sh_fallback_on_small_weighted_table() {
    // [C(1), B(1), A(0)] with sh-fallback: client 192.168.1.10 hashes to bucket 248 (A, weight
    // 0); the walk starts at 240 (240 mod 3 = 0 → C).
    let d = cba(1, 1, 0);
    let mut sh = Sh::new(SchedFlags::SCHED1, HashVariant::Current);
    sh.update(&d, DestChange::Init);
    assert_eq!(
        pick(&mut sh, &d, &from_client("192.168.1.10", 1), Instant::ZERO),
        Some(0)
    );
}

#[test]
fn sh_empty_service() {
    let mut sh = Sh::new(SchedFlags::SCHED1, HashVariant::Current);
    sh.update(&[], DestChange::Init);
    assert!(sh.buckets().all(|b| b.is_none()));
    assert_eq!(
        pick(&mut sh, &[], &from_client("1.2.3.4", 1), Instant::ZERO),
        None
    );
}

// ---------------------------------------------------------------- dh

#[test]
fn h3_dh_table() {
    let mut d = cba(5, 0, 1);
    let mut dh = Dh::new(HashVariant::Current);
    dh.update(&d, DestChange::Init);
    let b: Vec<usize> = dh.buckets().map(Option::unwrap).collect();
    for (i, &p) in b.iter().enumerate() {
        assert_eq!(p, i % 3, "weights are ignored");
    }
    assert_eq!(
        pick(&mut dh, &d, &to_daddr("192.168.1.10"), Instant::ZERO),
        Some(2)
    ); // A
       // B (weight 0) owns buckets but is never chosen: 10.0.0.1 → bucket 39 → C; find one of B's.
    let mut b_hit = None;
    for i in 0..1000u32 {
        let a = IpAddr::from((0x0A20_0000 + i).to_be_bytes());
        if dh.bucket_of(a) % 3 == 1 {
            b_hit = Some(a);
            break;
        }
    }
    let a = b_hit.unwrap();
    assert_eq!(
        pick(&mut dh, &d, &to_daddr(&a.to_string()), Instant::ZERO),
        None
    );
    // OVERLOAD and not AVAILABLE are refused too; no fallback in dh.
    d[2].flags.set(DestFlags::OVERLOAD, true);
    assert_eq!(
        pick(&mut dh, &d, &to_daddr("192.168.1.10"), Instant::ZERO),
        None
    );
    d[2].flags = DestFlags::empty();
    assert_eq!(
        pick(&mut dh, &d, &to_daddr("192.168.1.10"), Instant::ZERO),
        None
    );
}

#[test]
fn dh_rebuilds_on_add_and_remove_but_not_on_edit() {
    let mut d = cba(1, 1, 1);
    let mut dh = Dh::new(HashVariant::Current);
    dh.update(&d, DestChange::Init);
    let before: Vec<_> = dh.buckets().collect();
    d[0].weight = 9;
    dh.update(&d, DestChange::Edited { pos: 0 });
    assert_eq!(dh.buckets().collect::<Vec<_>>(), before);
    d.insert(0, dest(4, "10.0.0.4", 80, 1));
    dh.update(&d, DestChange::Added { pos: 0 });
    assert_eq!(dh.buckets().nth(3), Some(Some(3)));
    let gone = d.remove(1);
    dh.update(
        &d,
        DestChange::Removed {
            pos: 1,
            id: gone.id,
        },
    );
    assert_eq!(dh.buckets().nth(3), Some(Some(0)));
    assert!(dh.buckets().all(|b| b.unwrap() < 3));
    d.clear();
    dh.update(
        &d,
        DestChange::Removed {
            pos: 0,
            id: DestId(4),
        },
    );
    assert_eq!(
        pick(&mut dh, &d, &to_daddr("192.168.1.10"), Instant::ZERO),
        None
    );
}

#[test]
fn dh_legacy_only_uses_the_low_byte() {
    let d: Vec<DestInfo> = (0..256u32)
        .map(|i| dest(i, &format!("10.4.0.{i}"), 80, 1))
        .collect();
    let mut dh = Dh::new(HashVariant::Legacy);
    dh.update(&d, DestChange::Init);
    for hi in [0u32, 0x0102_0300, 0xFFFF_FF00] {
        let a = IpAddr::from((hi | 10).to_be_bytes());
        assert_eq!(
            pick(&mut dh, &d, &to_daddr(&a.to_string()), Instant::ZERO),
            Some(234)
        );
    }
}

// ---------------------------------------------------------------- mh

fn m1() -> Vec<DestInfo> {
    vec![
        dest(3, "10.0.0.3", 80, 1),
        dest(2, "10.0.0.2", 80, 1),
        dest(1, "10.0.0.1", 80, 1),
    ]
}

#[test]
fn m1_offsets_skips_and_counts() {
    let d = m1();
    let mut mh = Mh::new(SchedFlags::empty(), 4093);
    mh.update(&d, DestChange::Init);
    let perms = mh.permutations(&d);
    let os: Vec<(u32, u32)> = perms.iter().map(|p| (p.offset, p.skip)).collect();
    assert_eq!(os, vec![(1631, 3453), (1231, 3544), (3167, 700)]);
    assert!(perms.iter().all(|p| p.turns == 1));
    let mut counts = [0usize; 3];
    for s in mh.slots() {
        counts[s.unwrap()] += 1;
    }
    assert_eq!(counts, [1365, 1364, 1364]);
    // Slots 0..9: R1 R2 R2 R3 R3 R1 R2 R3 R3 R1 (R3 = pos 0, R2 = 1, R1 = 2).
    let first: Vec<usize> = mh.slots().take(10).map(Option::unwrap).collect();
    assert_eq!(first, vec![2, 1, 1, 0, 0, 2, 1, 0, 0, 2]);
}

#[test]
fn m1_lookups() {
    let d = m1();
    let mut mh = Mh::new(SchedFlags::empty(), 4093);
    mh.update(&d, DestChange::Init);
    for (client, slot, want) in [
        ("192.168.1.10", 3323, 2),  // R1
        ("10.0.0.1", 3711, 0),      // R3
        ("172.16.5.77", 2602, 1),   // R2
        ("203.0.113.200", 3310, 1), // R2
    ] {
        assert_eq!(mh.slot_of(ip(client), 0), slot, "{client}");
        assert_eq!(
            pick(&mut mh, &d, &from_client(client, 5000), Instant::ZERO),
            Some(want)
        );
    }
}

#[test]
fn m1_deleting_r2() {
    let mut d = m1();
    let mut mh = Mh::new(SchedFlags::empty(), 4093);
    mh.update(&d, DestChange::Init);
    let ids =
        |mh: &Mh, d: &[DestInfo]| -> Vec<DestId> { mh.slots().map(|s| d[s.unwrap()].id).collect() };
    let before = ids(&mh, &d);
    let gone = d.remove(1);
    mh.update(
        &d,
        DestChange::Removed {
            pos: 1,
            id: gone.id,
        },
    );
    let after = ids(&mh, &d);
    assert!(after.iter().all(|&id| id != DestId(2)));
    let moved = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| **b != DestId(2) && b != a)
        .count();
    assert_eq!(moved, 4);
}

#[test]
fn mh_quiescing_keeps_the_table_and_fallback_rehashes() {
    let mut d = m1();
    let mut mh = Mh::new(SchedFlags::SCHED1, 4093);
    mh.update(&d, DestChange::Init);
    let before: Vec<_> = mh.slots().collect();
    // Quiesce R1 (weight 0): last_weight stays 1, the table does not change.
    d[2].weight = 0;
    mh.update(&d, DestChange::Edited { pos: 2 });
    assert_eq!(mh.slots().collect::<Vec<_>>(), before);
    // 192.168.1.10 was R1's: the fallback rehash with roffset = (0 + 3323) % 4093 ...
    let f = from_client("192.168.1.10", 1);
    let got = pick(&mut mh, &d, &f, Instant::ZERO).unwrap();
    assert_ne!(got, 2);
    // ... is exactly the first usable slot of the kernel's probe sequence.
    let ihash = mh.slot_of(ip("192.168.1.10"), 0);
    let slots: Vec<_> = mh.slots().collect();
    let want = (0..4093u32)
        .map(|o| {
            let v = ((o + ihash) % 4093).wrapping_add(0xC0A8_010A);
            let h = hsiphash_u32(v, &lvs_core::sched::mh::MH_HASH1) % 4093;
            slots[h as usize].unwrap()
        })
        .find(|&p| d[p].weight > 0)
        .unwrap();
    assert_eq!(got, want);
    // Without fallback: none.
    let mut plain = Mh::new(SchedFlags::empty(), 4093);
    plain.update(&d, DestChange::Init);
    assert_eq!(pick(&mut plain, &d, &f, Instant::ZERO), None);
    // All unusable: none, after at most M probes. (The scheduler is told of each OVERLOAD
    // change, as the pool does.)
    for x in d.iter_mut() {
        x.flags.set(DestFlags::OVERLOAD, true);
    }
    for pos in 0..d.len() {
        mh.counts_changed(&d, pos);
    }
    assert_eq!(pick(&mut mh, &d, &f, Instant::ZERO), None);
}

#[test]
fn mh_port_flag_and_empty_tables() {
    let d = m1();
    let mut mh = Mh::new(SchedFlags::SCHED2, 4093);
    mh.update(&d, DestChange::Init);
    assert_eq!(mh.slot_of(ip("192.168.1.10"), 40000), {
        let v = 0xC0A8_010Au32 + 40000;
        hsiphash_u32(v, &lvs_core::sched::mh::MH_HASH1) % 4093
    });
    let slot = mh.slot_of(ip("192.168.1.10"), 40000) as usize;
    let want = mh.slots().nth(slot).unwrap();
    assert_eq!(
        pick(
            &mut mh,
            &d,
            &from_client("192.168.1.10", 40000),
            Instant::ZERO
        ),
        want
    );

    // All last_weight 0 (added with weight 0): empty table, no destination.
    let mut z = m1();
    for x in z.iter_mut() {
        x.weight = 0;
        x.last_weight = 0;
    }
    mh.update(&z, DestChange::Init);
    assert!(mh.slots().all(|s| s.is_none()));
    assert_eq!(mh.gcd(), 0);
    assert_eq!(
        pick(&mut mh, &z, &from_client("192.168.1.10", 1), Instant::ZERO),
        None
    );
    mh.update(&[], DestChange::Init);
    assert_eq!(
        pick(&mut mh, &[], &from_client("192.168.1.10", 1), Instant::ZERO),
        None
    );
}

#[test]
fn mh_table_sizes_and_max_dests() {
    for m in MH_PRIMES {
        let mh = Mh::new(SchedFlags::empty(), m);
        assert_eq!(mh.max_dests(), m as usize);
    }
    assert_eq!(Mh::new(SchedFlags::empty(), 4094).table_size(), 4093);
    // Building through the registry uses the configured size.
    let cfg = SchedConfig {
        mh_table_size: 251,
        ..SchedConfig::default()
    };
    assert_eq!(
        SchedKind::Mh.build(SchedFlags::empty(), &cfg).max_dests(),
        251
    );
    // More destinations than slots: the kernel refuses; here an empty table.
    let many: Vec<DestInfo> = (0..252u32)
        .map(|i| dest(i, &format!("10.5.{}.{}", i / 256, i % 256), 80, 1))
        .collect();
    let mut mh = Mh::new(SchedFlags::empty(), 251);
    mh.update(&many, DestChange::Init);
    assert!(mh.slots().all(|s| s.is_none()));
    mh.update(
        &many[..251],
        DestChange::Removed {
            pos: 251,
            id: DestId(251),
        },
    );
    let mut owners = vec![0; 251];
    for s in mh.slots() {
        owners[s.unwrap()] += 1;
    }
    assert!(
        owners.iter().all(|&c| c == 1),
        "251 dests in 251 slots: one each"
    );
}

#[test]
fn mh_weights_and_rshift() {
    // last_weight 4 and 2 → gcd 2, turns 2 and 1.
    let d = vec![dest(1, "10.0.0.1", 80, 4), dest(2, "10.0.0.2", 80, 2)];
    let mut mh = Mh::new(SchedFlags::empty(), 4093);
    mh.update(&d, DestChange::Init);
    assert_eq!(mh.gcd(), 2);
    assert_eq!(mh.rshift(), 0);
    let t: Vec<u32> = mh.permutations(&d).iter().map(|p| p.turns).collect();
    assert_eq!(t, vec![2, 1]);
    // 1000 and 1: max/gcd = 1000, fls = 10, bits 6 → rshift 4; turns 62 and 1.
    let d = vec![dest(1, "10.0.0.1", 80, 1000), dest(2, "10.0.0.2", 80, 1)];
    mh.update(&d, DestChange::Init);
    assert_eq!(mh.rshift(), 4);
    let t: Vec<u32> = mh.permutations(&d).iter().map(|p| p.turns).collect();
    assert_eq!(t, vec![62, 1]);
}

// ---------------------------------------------------------------- lblc / lblcr

fn lblc_cfg() -> SchedConfig {
    SchedConfig {
        lblc_expiration: Duration::from_secs(3600),
        lblcr_expiration: Duration::from_secs(3600),
        ..SchedConfig::default()
    }
}

#[test]
fn l5_lblc_overload_reschedules() {
    // Cached A(w2, act 3) and B(w4, act 1): A is lblc-overloaded → wlc picks again.
    let mut d = vec![dest(1, "10.0.0.1", 3128, 2), dest(2, "10.0.0.2", 3128, 4)];
    let mut s = Lblc::new(&lblc_cfg());
    s.update(&d, DestChange::Init);
    let f = to_daddr("198.51.100.7");
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(1)), Some(0));
    d[0].activeconns = 3;
    d[1].activeconns = 1;
    // wlc: A 768*4 = 3072 > B 256*2 = 512 → B.
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(2)), Some(1));
    assert_eq!(
        s.cached(ip("198.51.100.7")),
        Some((DestId(2), Instant::from_secs(2)))
    );
    // Not overloaded when no dest is below half its weight: B at act 2 (4 < 4 false).
    d[1].activeconns = 2;
    let mut s2 = Lblc::new(&lblc_cfg());
    s2.update(&d, DestChange::Init);
    d[0].activeconns = 0;
    assert_eq!(pick(&mut s2, &d, &f, Instant::from_secs(1)), Some(0));
    d[0].activeconns = 3;
    assert_eq!(pick(&mut s2, &d, &f, Instant::from_secs(2)), Some(0));
}

#[test]
fn lblc_hit_ignores_overload_flag_but_not_weight_or_removal() {
    let mut d = vec![dest(1, "10.0.0.1", 3128, 1), dest(2, "10.0.0.2", 3128, 1)];
    let mut s = Lblc::new(&lblc_cfg());
    s.update(&d, DestChange::Init);
    let f = to_daddr("198.51.100.8");
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(1)), Some(0));
    // OVERLOAD flag: a cache hit does not check it.
    d[0].flags.set(DestFlags::OVERLOAD, true);
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(2)), Some(0));
    // Weight 0: rescheduled (wlc skips OVERLOAD and weight 0 alike).
    d[0].flags.set(DestFlags::OVERLOAD, false);
    d[0].weight = 0;
    s.update(&d, DestChange::Edited { pos: 0 });
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(3)), Some(1));
    // Removal of the cached dest: positions shift, the id is gone → rescheduled.
    d[0].weight = 1;
    let gone = d.remove(1);
    s.update(
        &d,
        DestChange::Removed {
            pos: 1,
            id: gone.id,
        },
    );
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(4)), Some(0));
    assert_eq!(s.cached(ip("198.51.100.8")).unwrap().0, DestId(1));
    // A new dest at the head shifts positions; the cached id still maps correctly.
    d.insert(0, dest(9, "10.0.0.9", 3128, 1));
    s.update(&d, DestChange::Added { pos: 0 });
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(5)), Some(1));
    // Nothing usable: none.
    for x in d.iter_mut() {
        x.weight = 0;
    }
    s.update(&d, DestChange::Edited { pos: 0 });
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(6)), None);
}

#[test]
fn lblc_expiry_timeline() {
    let d = vec![dest(1, "10.0.0.1", 3128, 1)];
    let mut s = Lblc::new(&lblc_cfg()); // expiration 1 h
    s.update(&d, DestChange::Init);
    // Before the time is known the timer asks to run at once; that arms it.
    assert_eq!(s.poll_timeout(), Some(Instant::ZERO));
    s.handle_timeout(Instant::from_secs(0));
    assert_eq!(s.poll_timeout(), Some(Instant::from_secs(60)));
    // Used at t = 10 s and t = 1000 s.
    let (a, b) = (to_daddr("198.51.100.1"), to_daddr("198.51.100.2"));
    pick(&mut s, &d, &a, Instant::from_secs(10));
    pick(&mut s, &d, &b, Instant::from_secs(1000));
    // Ticks at 60, 120, ...: counter 1..29 increments; the 30th tick (t = 1800) is the first
    // full check; a at 10 + 3600 not yet expired; the next full check is 30 ticks later
    // (t = 3600): still not; t = 5400: a (10 + 3600 <= 5400) goes, b (1000 + 3600 = 4600) too.
    let mut t = 0;
    let mut seen = Vec::new();
    while t < 5400 {
        t += 60;
        assert_eq!(s.poll_timeout(), Some(Instant::from_secs(t)));
        let before = s.cache_len();
        s.handle_timeout(Instant::from_secs(t));
        if s.cache_len() != before {
            seen.push((t, s.cache_len()));
        }
    }
    assert_eq!(seen, vec![(5400, 0)]);
    assert_eq!(s.stats().expired, 2);
    // A tick that is not due does nothing.
    s.handle_timeout(Instant::from_secs(5401));
    assert_eq!(s.poll_timeout(), Some(Instant::from_secs(5460)));
}

#[test]
fn lblc_expiry_boundary_is_inclusive() {
    let d = vec![dest(1, "10.0.0.1", 3128, 1)];
    let cfg = SchedConfig {
        lblc_expiration: Duration::from_secs(1740),
        ..SchedConfig::default()
    };
    let mut s = Lblc::new(&cfg);
    s.update(&d, DestChange::Init);
    s.handle_timeout(Instant::ZERO);
    pick(
        &mut s,
        &d,
        &to_daddr("198.51.100.1"),
        Instant::from_secs(60),
    ); // 60 + 1740 = 1800
    pick(
        &mut s,
        &d,
        &to_daddr("198.51.100.2"),
        Instant::from_secs(61),
    ); // 1801
    for t in (60..=1800).step_by(60) {
        s.handle_timeout(Instant::from_secs(t));
    }
    // Full check at 1800: now >= lastuse + expiration deletes the first, keeps the second.
    assert!(s.cached(ip("198.51.100.1")).is_none());
    assert!(s.cached(ip("198.51.100.2")).is_some());
}

#[test]
fn lblcr_set_growth_and_shrink_timeline() {
    let mut d = vec![
        dest(1, "10.0.0.1", 3128, 1),
        dest(2, "10.0.0.2", 3128, 1),
        dest(3, "10.0.0.3", 3128, 1),
    ];
    let daddr = ip("198.51.100.9");
    let f = to_daddr("198.51.100.9");
    let mut s = Lblcr::new(&lblc_cfg()); // expiration 1 h
    s.update(&d, DestChange::Init);
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(0)), Some(0));
    assert_eq!(s.cached_set(daddr), Some(vec![DestId(1)]));
    // Dest 1 lblc-overloaded (2 > 1, others idle): wlc picks 2, which joins at the head.
    d[0].activeconns = 2;
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(100)), Some(1));
    assert_eq!(s.cached_set(daddr), Some(vec![DestId(2), DestId(1)]));
    assert_eq!(
        s.cached_times(daddr),
        Some((Instant::from_secs(100), Instant::from_secs(100)))
    );
    // set_min = 2 (overhead 0 vs 512), not overloaded: reused, set unchanged.
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(200)), Some(1));
    assert_eq!(
        s.cached_times(daddr),
        Some((Instant::from_secs(200), Instant::from_secs(100)))
    );
    // At lastmod + expiration exactly: not yet (strictly after).
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(3700)), Some(1));
    assert_eq!(s.cached_set(daddr).unwrap().len(), 2);
    // One second later: set_max (dest 1, overhead 512) is erased, lastmod = now.
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(3701)), Some(1));
    assert_eq!(s.cached_set(daddr), Some(vec![DestId(2)]));
    assert_eq!(
        s.cached_times(daddr),
        Some((Instant::from_secs(3701), Instant::from_secs(3701)))
    );
    // A single member is never erased.
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(90000)), Some(1));
    assert_eq!(s.cached_set(daddr), Some(vec![DestId(2)]));
}

#[test]
fn lblcr_tied_members_erase_the_chosen_one_but_return_it() {
    let mut d = vec![dest(1, "10.0.0.1", 3128, 1), dest(2, "10.0.0.2", 3128, 1)];
    let daddr = ip("198.51.100.10");
    let f = to_daddr("198.51.100.10");
    let mut s = Lblcr::new(&lblc_cfg());
    s.update(&d, DestChange::Init);
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(0)), Some(0));
    d[0].activeconns = 2;
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(1)), Some(1));
    assert_eq!(s.cached_set(daddr), Some(vec![DestId(2), DestId(1)]));
    // Equal loads: set_min = first member (2), set_max = first member (2) as well.
    d[0].activeconns = 0;
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(4000)), Some(1));
    assert_eq!(s.cached_set(daddr), Some(vec![DestId(1)]));
}

#[test]
fn lblcr_skips_unusable_members_and_keeps_removed_ones() {
    let mut d = vec![dest(1, "10.0.0.1", 3128, 1), dest(2, "10.0.0.2", 3128, 1)];
    let daddr = ip("198.51.100.11");
    let f = to_daddr("198.51.100.11");
    let mut s = Lblcr::new(&lblc_cfg());
    s.update(&d, DestChange::Init);
    pick(&mut s, &d, &f, Instant::from_secs(0));
    d[0].activeconns = 2;
    pick(&mut s, &d, &f, Instant::from_secs(1));
    assert_eq!(s.cached_set(daddr), Some(vec![DestId(2), DestId(1)]));
    // OVERLOAD flag on 2: set_min skips it → 1, which is lblc-overloaded only if someone is
    // below half its weight; 2 has 0 active (0 < 1) → overloaded → wlc: 2 is OVERLOAD → 1.
    d[1].flags.set(DestFlags::OVERLOAD, true);
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(2)), Some(0));
    d[1].flags.set(DestFlags::OVERLOAD, false);
    // Remove 2: it stays in the set (size 2) but is never chosen.
    let gone = d.remove(1);
    s.update(
        &d,
        DestChange::Removed {
            pos: 1,
            id: gone.id,
        },
    );
    d[0].activeconns = 0;
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(3)), Some(0));
    assert_eq!(s.cached_set(daddr), Some(vec![DestId(2), DestId(1)]));
    // After the expiration, set_max sees the removed member with its last weight 1 and
    // overhead 0, and the live one with overhead 0: tie → first (the removed one) goes.
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(5000)), Some(0));
    assert_eq!(s.cached_set(daddr), Some(vec![DestId(1)]));
}

#[test]
fn lblcr_expiry_timeline() {
    let d = vec![dest(1, "10.0.0.1", 3128, 1)];
    let mut s = Lblcr::new(&lblc_cfg());
    s.update(&d, DestChange::Init);
    // Armed by the first decision.
    pick(
        &mut s,
        &d,
        &to_daddr("198.51.100.1"),
        Instant::from_secs(30),
    );
    assert_eq!(s.poll_timeout(), Some(Instant::from_secs(90)));
    let mut t = 30;
    let mut gone_at = None;
    while gone_at.is_none() && t < 20000 {
        t += 60;
        s.handle_timeout(Instant::from_secs(t));
        if s.cache_len() == 0 {
            gone_at = Some(t);
        }
    }
    // Full checks at ticks 30 and 60 (t = 30 + 60 * k): 1830 keeps it, 3630 = 30 + 3600
    // (now >= lastuse + expiration) deletes it.
    assert_eq!(gone_at, Some(3630));
    assert_eq!(s.stats().expired, 1);
}

#[test]
fn lblc_and_lblcr_init_flushes() {
    let d = vec![dest(1, "10.0.0.1", 3128, 1)];
    let mut a = Lblc::new(&lblc_cfg());
    a.update(&d, DestChange::Init);
    pick(&mut a, &d, &to_daddr("198.51.100.1"), Instant::from_secs(1));
    a.update(&d, DestChange::Init);
    assert_eq!(a.cache_len(), 0);
    let mut b = Lblcr::new(&lblc_cfg());
    b.update(&d, DestChange::Init);
    pick(&mut b, &d, &to_daddr("198.51.100.1"), Instant::from_secs(1));
    b.update(&d, DestChange::Init);
    assert_eq!(b.cache_len(), 0);
}

#[test]
fn lblc_ipv6_daddr_keys() {
    let d = vec![
        dest(1, "2001:db8::1", 3128, 1),
        dest(2, "2001:db8::2", 3128, 1),
    ];
    let mut s = Lblc::new(&lblc_cfg());
    s.update(&d, DestChange::Init);
    let f = FlowKey::new(
        Protocol::Tcp,
        ip("2001:db8:1::5"),
        5,
        ip("2001:db8:2::7"),
        80,
    );
    assert_eq!(pick(&mut s, &d, &f, Instant::from_secs(1)), Some(0));
    assert_eq!(s.cached(ip("2001:db8:2::7")).map(|c| c.0), Some(DestId(1)));
}

// ---------------------------------------------------------------- all five

#[test]
fn never_weight_zero_or_overload() {
    // Random-ish states; whatever each scheduler answers must be usable by its own rule.
    let kinds = [
        SchedKind::Dh,
        SchedKind::Sh,
        SchedKind::Mh,
        SchedKind::Lblc,
        SchedKind::Lblcr,
    ];
    let mut rng_state = 0x1234_5678u32;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 17;
        rng_state ^= rng_state << 5;
        rng_state
    };
    for kind in kinds {
        for flags in [SchedFlags::empty(), SchedFlags::SCHED1 | SchedFlags::SCHED2] {
            let mut d: Vec<DestInfo> = (0..12u32)
                .map(|i| dest(i, &format!("10.6.0.{i}"), 80, 1 + i % 3))
                .collect();
            let mut s = kind.build(flags, &SchedConfig::default());
            s.update(&d, DestChange::Init);
            for step in 0..400u32 {
                let i = (next() % 12) as usize;
                match next() % 4 {
                    0 => {
                        d[i].weight = 0;
                        s.update(&d, DestChange::Edited { pos: i });
                    }
                    1 => {
                        d[i].weight = 1 + next() % 4;
                        d[i].last_weight = d[i].weight;
                        s.update(&d, DestChange::Edited { pos: i });
                    }
                    2 => {
                        let on = !d[i].is_overloaded();
                        d[i].flags.set(DestFlags::OVERLOAD, on);
                        s.counts_changed(&d, i);
                    }
                    _ => {}
                }
                let c = IpAddr::from((0x0A70_0000 + next() % 5000).to_be_bytes());
                let f = FlowKey::new(Protocol::Tcp, c, 1000 + (step % 7) as u16, c, 80);
                if let Some(p) = pick(s.as_mut(), &d, &f, Instant::from_secs(step as u64)) {
                    assert!(d[p].weight > 0, "{kind} chose weight 0");
                    // lblc's cache hit does not look at the OVERLOAD flag (spec §1.7).
                    if kind != SchedKind::Lblc {
                        assert!(!d[p].is_overloaded(), "{kind} chose an OVERLOAD dest");
                    }
                }
            }
        }
    }
}
