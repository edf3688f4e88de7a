//! lc, wlc, sed, nq, fo, ovf and twos against direct transcriptions of `ip_vs_lc.c`,
//! `ip_vs_wlc.c`, `ip_vs_sed.c`, `ip_vs_nq.c`, `ip_vs_fo.c`, `ip_vs_ovf.c` and `ip_vs_twos.c`
//! (with the same random draws), in the kernel's integer types:
//! counters and weights are C `int`s (`atomic_read`), the connection overhead
//! `(activeconns << 8) + inactconns` is an `int` that wraps (the kernel is built with
//! `-fno-strict-overflow`), lc compares it as `unsigned int`, and the weighted schedulers
//! multiply it by the weight after a cast to `__s64`.
//!
//! Both the registry-built (indexed) scheduler and the module's reference scan must give the
//! model's answer on every decision, through random states that include counters past the
//! point where the `int` overhead wraps (2^23 active connections).

use core::net::{IpAddr, Ipv4Addr};

use lvs_core::protocol::Protocol;
use lvs_core::sched::{
    fo, lc, nq, ovf, sed, wlc, DestChange, DestFlags, DestId, DestInfo, FlowKey, SchedConfig,
    SchedContext, SchedFlags, SchedKind, Scheduler,
};
use lvs_core::time::Instant;
use proptest::prelude::*;
use rand_core::RngCore;
use rand_pcg::Pcg32;

// ----- the kernel, transcribed -----------------------------------------------------------------

/// `atomic_read` of a counter or weight: the kernel's `int`.
fn int(v: u32) -> i32 {
    v as i32
}

fn overloaded(d: &DestInfo) -> bool {
    d.flags.contains(DestFlags::OVERLOAD)
}

/// `ip_vs_dest_conn_overhead`: `(activeconns << 8) + inactconns` in `int`.
fn conn_overhead(d: &DestInfo) -> i32 {
    (int(d.activeconns) << 8).wrapping_add(int(d.inactconns))
}

/// `ip_vs_sed_dest_overhead` / `ip_vs_nq_dest_overhead`: `activeconns + 1` in `int`.
fn active_plus_one(d: &DestInfo) -> i32 {
    int(d.activeconns).wrapping_add(1)
}

fn k_lc(dests: &[DestInfo]) -> Option<usize> {
    let mut least = None;
    let mut loh = 0u32; // unsigned int loh, doh
    for (i, dest) in dests.iter().enumerate() {
        if overloaded(dest) || int(dest.weight) == 0 {
            continue;
        }
        let doh = conn_overhead(dest) as u32;
        if least.is_none() || doh < loh {
            least = Some(i);
            loh = doh;
        }
    }
    least
}

/// wlc and sed: the same loop with a different overhead.
fn k_weighted(dests: &[DestInfo], overhead: fn(&DestInfo) -> i32) -> Option<usize> {
    let mut it = dests.iter().enumerate();
    let (mut least, mut loh) = loop {
        let (i, dest) = it.next()?;
        if !overloaded(dest) && int(dest.weight) > 0 {
            break (i, overhead(dest));
        }
    };
    for (i, dest) in it {
        if overloaded(dest) {
            continue;
        }
        let doh = overhead(dest);
        if (loh as i64) * (int(dest.weight) as i64)
            > (doh as i64) * (int(dests[least].weight) as i64)
        {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

fn k_wlc(dests: &[DestInfo]) -> Option<usize> {
    k_weighted(dests, conn_overhead)
}

fn k_sed(dests: &[DestInfo]) -> Option<usize> {
    k_weighted(dests, active_plus_one)
}

fn k_nq(dests: &[DestInfo]) -> Option<usize> {
    let mut least: Option<usize> = None;
    let mut loh = 0i32;
    for (i, dest) in dests.iter().enumerate() {
        if overloaded(dest) || int(dest.weight) == 0 {
            continue;
        }
        let doh = active_plus_one(dest);
        if int(dest.activeconns) == 0 {
            return Some(i);
        }
        if least.is_none()
            || (loh as i64) * (int(dest.weight) as i64)
                > (doh as i64) * (int(dests[least.unwrap()].weight) as i64)
        {
            least = Some(i);
            loh = doh;
        }
    }
    least
}

fn k_fo(dests: &[DestInfo]) -> Option<usize> {
    let mut hweight = None;
    let mut hw = 0i32;
    for (i, dest) in dests.iter().enumerate() {
        if !overloaded(dest) && int(dest.weight) > hw {
            hweight = Some(i);
            hw = int(dest.weight);
        }
    }
    hweight
}

fn k_ovf(dests: &[DestInfo]) -> Option<usize> {
    let mut h: Option<usize> = None;
    for (i, dest) in dests.iter().enumerate() {
        let w = int(dest.weight);
        if overloaded(dest) || int(dest.activeconns) > w || w == 0 {
            continue;
        }
        if h.is_none() || w > int(dests[h.unwrap()].weight) {
            h = Some(i);
        }
    }
    h
}

/// `ip_vs_twos_schedule` with the two `get_random_u32()` values given.
fn k_twos(dests: &[DestInfo], raw1: u32, raw2: u32) -> Option<usize> {
    let (mut choice1, mut choice2): (Option<usize>, Option<usize>) = (None, None);
    let (mut weight1, mut weight2, mut overhead1, mut overhead2) = (-1i32, -1i32, 0i32, 0i32);
    let mut total_weight = 0i32;
    for (i, dest) in dests.iter().enumerate() {
        if !overloaded(dest) {
            let weight = int(dest.weight);
            if weight > 0 {
                total_weight += weight;
                choice1 = Some(i);
            }
        }
    }
    choice1?;
    total_weight += 1;
    let mut rweight1 = (raw1 % total_weight as u32) as i32;
    let mut rweight2 = (raw2 % total_weight as u32) as i32;
    for (i, dest) in dests.iter().enumerate() {
        if overloaded(dest) {
            continue;
        }
        let weight = int(dest.weight);
        if weight <= 0 {
            continue;
        }
        rweight1 -= weight;
        rweight2 -= weight;
        if rweight1 <= 0 && weight1 == -1 {
            choice1 = Some(i);
            weight1 = weight;
            overhead1 = conn_overhead(dest);
        }
        if rweight2 <= 0 && weight2 == -1 {
            choice2 = Some(i);
            weight2 = weight;
            overhead2 = conn_overhead(dest);
        }
        if weight1 != -1 && weight2 != -1 {
            break;
        }
    }
    if choice2.is_some() && weight2.wrapping_mul(overhead1) > weight1.wrapping_mul(overhead2) {
        choice1 = choice2;
    }
    choice1
}

type Scan = fn(&[DestInfo]) -> Option<usize>;

/// (scheduler, the module's reference scan, the kernel transcription).
const KINDS: [(SchedKind, Scan, Scan); 6] = [
    (SchedKind::Lc, lc::scan, k_lc),
    (SchedKind::Wlc, wlc::scan, k_wlc),
    (SchedKind::Sed, sed::scan, k_sed),
    (SchedKind::Nq, nq::scan, k_nq),
    (SchedKind::Fo, fo::scan, k_fo),
    (SchedKind::Ovf, ovf::scan, k_ovf),
];

// ----- driving both --------------------------------------------------------------------------

fn flow() -> FlowKey {
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    FlowKey::new(Protocol::Tcp, ip, 40000, ip, 80)
}

fn dest(id: u32, weight: u32, active: u32, inact: u32, overload: bool) -> DestInfo {
    let mut d = DestInfo::new(DestId(id), IpAddr::V4(Ipv4Addr::from(id)), 80, weight);
    d.activeconns = active;
    d.inactconns = inact;
    d.flags.set(DestFlags::OVERLOAD, overload);
    d
}

/// Every scheduler (indexed and scan) against the kernel on `dests`, bound fresh.
fn check_fresh(dests: &[DestInfo]) -> Result<(), TestCaseError> {
    for (kind, scan, model) in KINDS {
        let mut s = kind.build(SchedFlags::empty(), &SchedConfig::default());
        s.update(dests, DestChange::Init);
        let mut rng = Pcg32::new(1, 1);
        let mut ctx = SchedContext {
            now: Instant::ZERO,
            rng: &mut rng,
        };
        let want = model(dests);
        prop_assert_eq!(scan(dests), want, "{} scan on {:?}", kind, dests);
        prop_assert_eq!(
            s.schedule(dests, &flow(), &mut ctx),
            want,
            "{} on {:?}",
            kind,
            dests
        );
    }
    Ok(())
}

#[test]
fn wlc_overhead_wraps_negative_at_2_pow_23_active() {
    // A: 2^23 active → overhead 2^31, an int that wraps to i32::MIN: the kernel's wlc sees
    // the busiest server as the least loaded one.
    let dests = [dest(1, 1, 1 << 23, 0, false), dest(2, 1, 0, 0, false)];
    assert_eq!(k_wlc(&dests), Some(0));
    check_fresh(&dests).unwrap();
}

#[test]
fn wlc_quiesced_dest_with_wrapped_overhead_wins_after_the_first_eligible() {
    // A weight-0 dest can win wlc's comparison when its int overhead is negative
    // (0 > negative * weight), but only after the first eligible dest was found.
    let b = dest(2, 0, 1 << 23, 0, false);
    let dests = [dest(1, 1, 0, 0, false), b.clone()];
    assert_eq!(k_wlc(&dests), Some(1));
    check_fresh(&dests).unwrap();
    let dests = [b, dest(1, 1, 0, 0, false)];
    assert_eq!(k_wlc(&dests), Some(1));
    check_fresh(&dests).unwrap();
}

#[test]
fn lc_compares_the_wrapped_overhead_unsigned() {
    // 2^24 active → overhead 2^32 → 0 as unsigned int: lc prefers it to 5 inactive conns.
    let dests = [dest(1, 1, 0, 5, false), dest(2, 1, 1 << 24, 0, false)];
    assert_eq!(k_lc(&dests), Some(1));
    check_fresh(&dests).unwrap();
}

/// Counters around the points where the kernel's `int` arithmetic wraps.
fn counter() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => 0u32..4,
        2 => 0u32..100_000,
        2 => (1u32 << 23) - 2..(1u32 << 23) + 2,
        1 => (1u32 << 24) - 2..(1u32 << 24) + 2,
        1 => (i32::MAX as u32) - 1..(i32::MAX as u32) + 2,
        1 => any::<u32>(),
    ]
}

/// Weights the kernel accepts (a non-negative `int`), with ties and zeros.
fn weight() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(0u32), 6 => 1u32..5, 2 => 1u32..=65535, 1 => Just(i32::MAX as u32)]
}

#[derive(Clone, Debug)]
enum Op {
    Counts(usize, u32, u32),
    Overload(usize, bool),
    Edit(usize, u32),
    Add(u32, u32, u32, bool),
    Remove(usize),
    /// Schedule with every scheduler and bind an active conn to the choice of `which`.
    Bind(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<usize>(), counter(), counter()).prop_map(|(i, a, n)| Op::Counts(i, a, n)),
        1 => (any::<usize>(), prop::bool::weighted(0.3)).prop_map(|(i, o)| Op::Overload(i, o)),
        1 => (any::<usize>(), weight()).prop_map(|(i, w)| Op::Edit(i, w)),
        2 => (weight(), counter(), counter(), prop::bool::weighted(0.2))
            .prop_map(|(w, a, n, o)| Op::Add(w, a, n, o)),
        1 => any::<usize>().prop_map(Op::Remove),
        4 => any::<usize>().prop_map(Op::Bind),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn lc_family_matches_the_kernel(ops in prop::collection::vec(op(), 0..100)) {
        let mut dests: Vec<DestInfo> = Vec::new();
        let mut scheds: Vec<Box<dyn Scheduler>> = KINDS
            .iter()
            .map(|(k, _, _)| k.build(SchedFlags::empty(), &SchedConfig::default()))
            .chain([SchedKind::Twos.build(SchedFlags::empty(), &SchedConfig::default())])
            .collect();
        for s in scheds.iter_mut() {
            s.update(&dests, DestChange::Init);
        }
        let mut next_id = 0;
        let flow = flow();
        let mut rng = Pcg32::new(1, 1);
        for op in ops {
            let len = dests.len();
            match op {
                Op::Add(w, a, n, o) => {
                    dests.insert(0, dest(next_id, w, a, n, o));
                    next_id += 1;
                    scheds.iter_mut().for_each(|s| s.update(&dests, DestChange::Added { pos: 0 }));
                }
                _ if len == 0 => {}
                Op::Counts(i, a, n) => {
                    let pos = i % len;
                    dests[pos].activeconns = a;
                    dests[pos].inactconns = n;
                    scheds.iter_mut().for_each(|s| s.counts_changed(&dests, pos));
                }
                Op::Overload(i, o) => {
                    let pos = i % len;
                    dests[pos].flags.set(DestFlags::OVERLOAD, o);
                    scheds.iter_mut().for_each(|s| s.counts_changed(&dests, pos));
                }
                Op::Edit(i, w) => {
                    let pos = i % len;
                    dests[pos].weight = w;
                    scheds.iter_mut().for_each(|s| s.update(&dests, DestChange::Edited { pos }));
                }
                Op::Remove(i) => {
                    let pos = i % len;
                    let id = dests.remove(pos).id;
                    scheds
                        .iter_mut()
                        .for_each(|s| s.update(&dests, DestChange::Removed { pos, id }));
                }
                Op::Bind(which) => {
                    let mut choices = Vec::new();
                    for (s, (kind, scan, model)) in scheds.iter_mut().zip(KINDS) {
                        let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut rng };
                        let want = model(&dests);
                        prop_assert_eq!(scan(&dests), want, "{} scan on {:?}", kind, dests);
                        let got = s.schedule(&dests, &flow, &mut ctx);
                        prop_assert_eq!(got, want, "{} on {:?}", kind, dests);
                        choices.push(got);
                    }
                    // twos: the same two draws for the scheduler and the model (none without
                    // an eligible dest).
                    let mut draws = rng.clone();
                    let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut rng };
                    let got = scheds[KINDS.len()].schedule(&dests, &flow, &mut ctx);
                    let eligible = dests.iter().any(|d| !overloaded(d) && d.weight > 0);
                    let total: i64 = dests
                        .iter()
                        .filter(|d| !overloaded(d))
                        .map(|d| i64::from(d.weight))
                        .sum();
                    let want = if eligible {
                        let (r1, r2) = (draws.next_u32(), draws.next_u32());
                        // Past INT_MAX the kernel's int sum overflows (32768 weights of
                        // 65535); not compared.
                        (total < i64::from(i32::MAX)).then(|| k_twos(&dests, r1, r2))
                    } else {
                        Some(None)
                    };
                    if let Some(want) = want {
                        prop_assert_eq!(got, want, "twos on {:?}", dests);
                    }
                    prop_assert_eq!(rng.clone().next_u32(), draws.next_u32(), "twos draws");
                    choices.push(got);
                    if let Some(pos) = choices[which % choices.len()] {
                        dests[pos].activeconns = dests[pos].activeconns.wrapping_add(1);
                        scheds.iter_mut().for_each(|s| s.counts_changed(&dests, pos));
                    }
                }
            }
        }
    }
}
