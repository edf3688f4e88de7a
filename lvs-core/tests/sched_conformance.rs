//! One conformance suite run over every scheduler in the registry (STYLE point 10).
//!
//! Each property here holds for every IPVS scheduler, or is stated per scheduler where the
//! algorithm promises something specific (proportional shares).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use lvs_core::sched::pool::Pool;
use lvs_core::sched::{
    DestFlags, DestId, FlowKey, SchedConfig, SchedContext, SchedFlags, SchedKind,
};
use lvs_core::{Instant, Protocol};
use proptest::prelude::*;
use rand::{RngCore, SeedableRng};
use rand_pcg::Pcg32;

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100));

fn rs(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i + 1))
}

fn client(rng: &mut Pcg32) -> FlowKey {
    let saddr = IpAddr::V4(Ipv4Addr::from(rng.next_u32()));
    let sport = (rng.next_u32() % 64512 + 1024) as u16;
    FlowKey::new(Protocol::Tcp, saddr, sport, VIP, 80)
}

/// A pool of `weights.len()` destinations added in order, so the last weight is at the head.
fn pool_with(kind: SchedKind, weights: &[u32]) -> (Pool, Vec<DestId>) {
    let mut pool = Pool::new(kind, SchedFlags::empty(), &SchedConfig::default());
    let ids = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| pool.add(rs(i as u32), 80, w).expect("add"))
        .collect();
    (pool, ids)
}

fn pick(pool: &mut Pool, flow: &FlowKey, rng: &mut Pcg32, now: Instant) -> Option<DestId> {
    let mut ctx = SchedContext { now, rng };
    pool.schedule(flow, &mut ctx)
}

/// Binds a new connection to `id` as the director does: a new conn starts INACTIVE, and a TCP
/// conn becomes active at its first state change.
fn bind_active(pool: &mut Pool, id: DestId) {
    pool.update_counts(id, |d| d.inactconns += 1);
    pool.update_counts(id, |d| {
        d.inactconns -= 1;
        d.activeconns += 1;
    });
}

#[test]
fn registry_names_round_trip() {
    for kind in SchedKind::ALL {
        assert_eq!(SchedKind::from_name(kind.name()), Some(kind));
        assert_eq!(kind.name().parse::<SchedKind>(), Ok(kind));
        let built = kind.build(SchedFlags::empty(), &SchedConfig::default());
        assert_eq!(built.kind(), kind);
    }
    assert!(SchedKind::from_name("none").is_none());
    assert!("wlc ".parse::<SchedKind>().is_err());
}

#[test]
fn empty_service_gives_no_destination() {
    let mut rng = Pcg32::seed_from_u64(7);
    for kind in SchedKind::ALL {
        let (mut pool, _) = pool_with(kind, &[]);
        for _ in 0..10 {
            let flow = client(&mut rng);
            assert_eq!(
                pick(&mut pool, &flow, &mut rng, Instant::ZERO),
                None,
                "{kind}"
            );
        }
    }
}

#[test]
fn all_weights_zero_gives_no_destination() {
    let mut rng = Pcg32::seed_from_u64(8);
    for kind in SchedKind::ALL {
        let (mut pool, _) = pool_with(kind, &[0, 0, 0]);
        for _ in 0..50 {
            let flow = client(&mut rng);
            assert_eq!(
                pick(&mut pool, &flow, &mut rng, Instant::ZERO),
                None,
                "{kind}"
            );
        }
    }
}

#[test]
fn all_overloaded_gives_no_destination() {
    let mut rng = Pcg32::seed_from_u64(9);
    for kind in SchedKind::ALL {
        let (mut pool, ids) = pool_with(kind, &[1, 2, 3]);
        for id in ids {
            pool.update_counts(id, |d| d.flags.set(DestFlags::OVERLOAD, true));
        }
        for _ in 0..50 {
            let flow = client(&mut rng);
            assert_eq!(
                pick(&mut pool, &flow, &mut rng, Instant::ZERO),
                None,
                "{kind}"
            );
        }
    }
}

/// One random operation on a pool.
#[derive(Clone, Debug)]
enum Op {
    Schedule { seed: u32 },
    SetWeight { dest: usize, weight: u32 },
    Overload { dest: usize, on: bool },
    Bind { dest: usize },
    Unbind { dest: usize },
    Add { weight: u32 },
    Remove { dest: usize },
    Advance { secs: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u32>().prop_map(|seed| Op::Schedule { seed }),
        1 => (0usize..16, 0u32..5).prop_map(|(dest, weight)| Op::SetWeight { dest, weight }),
        1 => (0usize..16, any::<bool>()).prop_map(|(dest, on)| Op::Overload { dest, on }),
        2 => (0usize..16).prop_map(|dest| Op::Bind { dest }),
        1 => (0usize..16).prop_map(|dest| Op::Unbind { dest }),
        1 => (0u32..5).prop_map(|weight| Op::Add { weight }),
        1 => (0usize..16).prop_map(|dest| Op::Remove { dest }),
        1 => (0u32..4000).prop_map(|secs| Op::Advance { secs }),
    ]
}

/// Runs `ops` on a fresh pool and returns every decision (as destination addresses).
fn run(kind: SchedKind, weights: &[u32], ops: &[Op], seed: u64) -> Vec<Option<IpAddr>> {
    let (mut pool, _) = pool_with(kind, weights);
    let mut next_addr = weights.len() as u32;
    let mut rng = Pcg32::seed_from_u64(seed);
    let mut now = Instant::ZERO;
    let mut out = Vec::new();
    // lblc's cache may return a destination whose OVERLOAD flag was set after it was cached
    // (spec 1.7); remember which destination each daddr was last given.
    let mut cached: HashMap<IpAddr, IpAddr> = HashMap::new();
    for op in ops {
        let n = pool.dests().len();
        match *op {
            Op::Schedule { seed } => {
                let mut flow_rng = Pcg32::seed_from_u64(seed as u64);
                let mut flow = client(&mut flow_rng);
                // A few destination addresses so lblc/lblcr/dh see more than one key.
                flow.daddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + (seed % 4) as u8));
                // Bounded: a scheduler whose timer does not advance must not hang the test.
                for _ in 0..1000 {
                    if pool.poll_timeout().is_none_or(|t| t > now) {
                        break;
                    }
                    pool.handle_timeout(now);
                }
                let chosen = pick(&mut pool, &flow, &mut rng, now);
                if let Some(id) = chosen {
                    let d = pool
                        .get(id)
                        .expect("scheduler chose a linked destination")
                        .clone();
                    assert!(d.weight > 0, "{kind} chose weight 0: {d:?}");
                    let lblc_hit = matches!(kind, SchedKind::Lblc | SchedKind::Lblcr)
                        && cached.get(&flow.daddr) == Some(&d.addr);
                    assert!(
                        !d.is_overloaded() || lblc_hit,
                        "{kind} chose an OVERLOAD destination: {d:?}"
                    );
                    cached.insert(flow.daddr, d.addr);
                    bind_active(&mut pool, id);
                }
                out.push(chosen.map(|id| pool.get(id).unwrap().addr));
            }
            Op::SetWeight { dest, weight } if n > 0 => {
                let id = pool.dests()[dest % n].id;
                pool.set_weight(id, weight);
            }
            Op::Overload { dest, on } if n > 0 => {
                let id = pool.dests()[dest % n].id;
                pool.update_counts(id, |d| d.flags.set(DestFlags::OVERLOAD, on));
            }
            Op::Bind { dest } if n > 0 => {
                let id = pool.dests()[dest % n].id;
                bind_active(&mut pool, id);
            }
            Op::Unbind { dest } if n > 0 => {
                let id = pool.dests()[dest % n].id;
                pool.update_counts(id, |d| {
                    if d.activeconns > 0 {
                        d.activeconns -= 1
                    } else {
                        d.inactconns = d.inactconns.saturating_sub(1)
                    }
                });
            }
            Op::Add { weight } if n < 24 => {
                pool.add(rs(next_addr), 80, weight).expect("add");
                next_addr += 1;
            }
            Op::Remove { dest } if n > 0 => {
                let id = pool.dests()[dest % n].id;
                pool.remove(id).expect("linked");
            }
            Op::Advance { secs } => now += lvs_core::Duration::from_secs(secs as u64),
            _ => {}
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Weight-0 and OVERLOAD destinations are never chosen (lblc/lblcr cache hits excepted, as
    /// in the kernel), whatever the sequence of configuration and counter changes; and the
    /// same inputs with the same seed give the same decisions.
    #[test]
    fn eligibility_and_determinism(
        weights in prop::collection::vec(0u32..5, 0..12),
        ops in prop::collection::vec(op(), 1..120),
        seed in any::<u64>(),
    ) {
        for kind in SchedKind::ALL {
            let a = run(kind, &weights, &ops, seed);
            let b = run(kind, &weights, &ops, seed);
            prop_assert_eq!(a, b, "{} is not deterministic", kind);
        }
    }
}

fn counts_after(kind: SchedKind, weights: &[u32], picks: usize, hold: bool) -> Vec<u64> {
    let (mut pool, ids) = pool_with(kind, weights);
    let mut rng = Pcg32::seed_from_u64(42);
    let mut counts: HashMap<DestId, u64> = HashMap::new();
    for _ in 0..picks {
        let flow = client(&mut rng);
        if let Some(id) = pick(&mut pool, &flow, &mut rng, Instant::ZERO) {
            *counts.entry(id).or_default() += 1;
            if hold {
                bind_active(&mut pool, id);
            }
        }
    }
    ids.iter()
        .map(|id| counts.get(id).copied().unwrap_or(0))
        .collect()
}

#[test]
fn rr_gives_equal_shares_to_eligible_destinations() {
    let c = counts_after(SchedKind::Rr, &[1, 5, 0, 2], 3000, false);
    assert_eq!(c, vec![1000, 1000, 0, 1000]);
}

#[test]
fn wrr_gives_exact_weight_shares() {
    // sum of weights / gcd = (2+4+0+6)/2 = 6 picks per cycle; 600 cycles.
    let c = counts_after(SchedKind::Wrr, &[2, 4, 0, 6], 3600, false);
    assert_eq!(c, vec![600, 1200, 0, 1800]);
}

#[test]
fn least_connection_family_balances_held_connections() {
    let weights = [1, 2, 3, 4];
    // wlc: active counts converge to proportional to weight (within one connection).
    let c = counts_after(SchedKind::Wlc, &weights, 1000, true);
    for (i, &w) in weights.iter().enumerate() {
        let ideal = 1000.0 * w as f64 / 10.0;
        assert!((c[i] as f64 - ideal).abs() <= 1.0, "wlc {c:?}");
    }
    // lc ignores weight magnitude: equal shares.
    let c = counts_after(SchedKind::Lc, &weights, 1000, true);
    assert!(c.iter().all(|&x| x == 250), "lc {c:?}");
    // sed equalises (active + 1) / weight.
    let c = counts_after(SchedKind::Sed, &weights, 1000, true);
    for (i, &w) in weights.iter().enumerate() {
        let ideal = (1000.0 + 4.0) * w as f64 / 10.0 - 1.0;
        assert!((c[i] as f64 - ideal).abs() <= 1.0, "sed {c:?}");
    }
    // nq behaves like sed once nobody is idle.
    let c = counts_after(SchedKind::Nq, &weights, 1000, true);
    for (i, &w) in weights.iter().enumerate() {
        let ideal = (1000.0 + 4.0) * w as f64 / 10.0 - 1.0;
        assert!((c[i] as f64 - ideal).abs() <= 2.0, "nq {c:?}");
    }
}

#[test]
fn fo_and_ovf_prefer_the_highest_weight() {
    // fo: everything to the highest weight (the first added with weight 4 is at list end,
    // and there is only one).
    let c = counts_after(SchedKind::Fo, &[1, 2, 4, 3], 100, true);
    assert_eq!(c, vec![0, 0, 100, 0]);
    // ovf: the highest weight until its active connections exceed its weight, then the next.
    let c = counts_after(SchedKind::Ovf, &[1, 2, 4, 3], 14, true);
    // w4 takes 5 (active 0..=4 <= 4), w3 takes 4, w2 takes 3, w1 takes 2.
    assert_eq!(c, vec![2, 3, 5, 4]);
}

#[test]
fn hashing_schedulers_share_by_weight_over_many_clients() {
    let weights = [1, 2, 3, 4];
    let picks = 200_000;
    for kind in [SchedKind::Sh, SchedKind::Mh] {
        let c = counts_after(kind, &weights, picks, false);
        for (i, &w) in weights.iter().enumerate() {
            let share = c[i] as f64 / picks as f64;
            let ideal = w as f64 / 10.0;
            assert!((share - ideal).abs() < 0.02, "{kind} shares {c:?}");
        }
    }
}

#[test]
fn twos_draws_by_weight_with_the_kernel_bias() {
    // With no connections held, the overhead comparison never prefers the second choice, so
    // the first draw decides: the first eligible destination in list order gets
    // (w + 1) / (total + 1), the others w / (total + 1) (spec 1.14).
    let weights = [1, 2, 3, 4]; // list order is reversed: [4, 3, 2, 1]
    let picks = 200_000;
    let c = counts_after(SchedKind::Twos, &weights, picks, false);
    let expect = [1.0 / 11.0, 2.0 / 11.0, 3.0 / 11.0, 5.0 / 11.0];
    for i in 0..4 {
        let share = c[i] as f64 / picks as f64;
        assert!((share - expect[i]).abs() < 0.01, "twos shares {c:?}");
    }
}

#[test]
fn dh_ignores_weights_and_maps_each_address_to_one_destination() {
    let (mut pool, ids) = pool_with(SchedKind::Dh, &[1, 5, 9]);
    let mut rng = Pcg32::seed_from_u64(3);
    let mut seen: HashMap<IpAddr, DestId> = HashMap::new();
    let mut counts: HashMap<DestId, u64> = HashMap::new();
    for _ in 0..30_000 {
        let mut flow = client(&mut rng);
        flow.daddr = IpAddr::V4(Ipv4Addr::from(rng.next_u32() % 5000));
        let id = pick(&mut pool, &flow, &mut rng, Instant::ZERO).expect("dh has a destination");
        assert_eq!(
            *seen.entry(flow.daddr).or_insert(id),
            id,
            "dh must be a function of daddr"
        );
        *counts.entry(id).or_default() += 1;
    }
    for id in ids {
        let share = counts[&id] as f64 / 30_000.0;
        assert!((share - 1.0 / 3.0).abs() < 0.03, "dh shares {counts:?}");
    }
}
