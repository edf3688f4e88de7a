//! wrr against a direct transcription of `ip_vs_wrr.c` (kernels >= v3.10): the mark
//! `(cl, cw, mw, di)` with `cl` the list head or the destination chosen last, reset by every
//! add, delete and edit, and the scheduling loop with its `last`, `stop`, `last_pass` and
//! `restarted`. Random lists, weights (with and without common factors, some too large for a
//! precomputed cycle), OVERLOAD flags set and cleared between decisions without any update,
//! additions, removals, edits and rebinds; every decision and the mark must agree.

use core::net::{IpAddr, Ipv4Addr};

use lvs_core::protocol::Protocol;
use lvs_core::sched::wrr::{self, Wrr};
use lvs_core::sched::{DestChange, DestFlags, DestId, DestInfo, FlowKey, SchedContext, Scheduler};
use lvs_core::time::Instant;
use proptest::prelude::*;

/// `struct ip_vs_wrr_mark`, `cl` as `None` for the list head.
#[derive(Debug, Default)]
struct Model {
    cl: Option<usize>,
    cw: i64,
    mw: i64,
    di: i64,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Model {
    /// `ip_vs_wrr_gcd_weight`.
    fn gcd_weight(dests: &[DestInfo]) -> i64 {
        let mut g = 0;
        for dest in dests {
            let weight = i64::from(dest.weight);
            if weight > 0 {
                if g > 0 {
                    g = gcd(weight, g);
                } else {
                    g = weight;
                }
            }
        }
        if g != 0 {
            g
        } else {
            1
        }
    }

    /// `ip_vs_wrr_max_weight`.
    fn max_weight(dests: &[DestInfo]) -> i64 {
        let mut weight = 0;
        for dest in dests {
            let new_weight = i64::from(dest.weight);
            if new_weight > weight {
                weight = new_weight;
            }
        }
        weight
    }

    /// `ip_vs_wrr_init_svc`.
    fn init_svc(&mut self, dests: &[DestInfo]) {
        self.cl = None;
        self.di = Self::gcd_weight(dests);
        self.mw = Self::max_weight(dests) - (self.di - 1);
        self.cw = self.mw;
    }

    /// `ip_vs_wrr_dest_changed` (add_dest, del_dest and upd_dest).
    fn dest_changed(&mut self, dests: &[DestInfo]) {
        self.cl = None;
        self.di = Self::gcd_weight(dests);
        self.mw = Self::max_weight(dests) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// `ip_vs_wrr_schedule`. `dest` and `last` are list positions, `None` being the list head
    /// (`&svc->destinations`); `stop` is `NULL` until set.
    fn schedule(&mut self, dests: &[DestInfo]) -> Option<usize> {
        let mut dest: Option<usize> = self.cl;
        let mut stop: Option<Option<usize>> = None;
        let mut last_pass = false;
        let mut restarted = false;
        if self.mw == 0 {
            // err_noavail
            self.cl = dest;
            return None;
        }
        let last = dest;
        loop {
            // list_for_each_entry_continue_rcu(dest, &svc->destinations, n_list)
            let mut i = dest.map_or(0, |c| c + 1);
            while i < dests.len() {
                dest = Some(i);
                let d = &dests[i];
                if !d.flags.contains(DestFlags::OVERLOAD) && i64::from(d.weight) >= self.cw {
                    // found
                    self.cl = dest;
                    return dest;
                }
                if stop == Some(dest) {
                    // err_over
                    self.cl = dest;
                    return None;
                }
                i += 1;
            }
            // The iteration ends with `dest` on the list head.
            dest = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    // err_over
                    self.cl = dest;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = Some(last);
            }
        }
    }

    fn mark(&self) -> (Option<usize>, i64, i64, i64) {
        (self.cl, self.cw, self.mw, self.di)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Add(u32, bool),
    Remove(usize),
    Edit(usize, u32, bool),
    /// OVERLOAD set or cleared by connection accounting: no update.
    Overload(usize, bool),
    /// The scheduler bound again (`-E` switching the scheduler) to the current list.
    Rebind,
    Schedule(u8),
}

/// Weights sharing factors (so `di > 1` happens), zeros, and a few large ones: two of those
/// usually make a cycle longer than [`wrr::CYCLE_MAX`], so that every decision walks. (Not
/// larger: the kernel's walk descends one level per pass, and an OVERLOAD heavy destination
/// makes a decision cost up to `max weight` passes.)
fn weight() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => Just(0u32),
        6 => prop::sample::select(vec![1u32, 2, 3, 4, 6, 8, 9, 12, 16]),
        2 => 1u32..40,
        1 => prop::sample::select(vec![20_000u32, 30_000, 33_333, 40_000]),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (weight(), prop::bool::weighted(0.1)).prop_map(|(w, o)| Op::Add(w, o)),
        1 => any::<usize>().prop_map(Op::Remove),
        2 => (any::<usize>(), weight(), prop::bool::weighted(0.1))
            .prop_map(|(p, w, o)| Op::Edit(p, w, o)),
        2 => (any::<usize>(), prop::bool::weighted(0.4)).prop_map(|(p, o)| Op::Overload(p, o)),
        1 => Just(Op::Rebind),
        8 => (1u8..40).prop_map(Op::Schedule),
    ]
}

fn dest(id: u32, weight: u32, overloaded: bool) -> DestInfo {
    let mut d = DestInfo::new(DestId(id), IpAddr::V4(Ipv4Addr::from(id)), 80, weight);
    d.flags.set(DestFlags::OVERLOAD, overloaded);
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn wrr_matches_the_kernel_mark(
        initial in prop::collection::vec((weight(), prop::bool::weighted(0.1)), 0..8),
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let flow = FlowKey::new(Protocol::Tcp, ip, 1, ip, 80);
        let mut rng = rand_pcg::Pcg32::new(1, 1);
        let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut rng };
        let mut dests: Vec<DestInfo> = Vec::new();
        let mut next_id = 0;
        for &(w, o) in &initial {
            dests.push(dest(next_id, w, o));
            next_id += 1;
        }
        let (mut wrr, mut model) = (Wrr::new(), Model::default());
        wrr.update(&dests, DestChange::Init);
        model.init_svc(&dests);
        prop_assert_eq!(wrr.mark(), model.mark());
        for op in ops {
            match op {
                Op::Add(w, o) => {
                    dests.insert(0, dest(next_id, w, o));
                    next_id += 1;
                    wrr.update(&dests, DestChange::Added { pos: 0 });
                    model.dest_changed(&dests);
                }
                Op::Remove(p) if !dests.is_empty() => {
                    let pos = p % dests.len();
                    let id = dests.remove(pos).id;
                    wrr.update(&dests, DestChange::Removed { pos, id });
                    model.dest_changed(&dests);
                }
                Op::Edit(p, w, o) if !dests.is_empty() => {
                    let pos = p % dests.len();
                    dests[pos].weight = w;
                    dests[pos].flags.set(DestFlags::OVERLOAD, o);
                    wrr.update(&dests, DestChange::Edited { pos });
                    model.dest_changed(&dests);
                }
                Op::Overload(p, o) if !dests.is_empty() => {
                    let pos = p % dests.len();
                    dests[pos].flags.set(DestFlags::OVERLOAD, o);
                    wrr.counts_changed(&dests, pos);
                }
                Op::Rebind => {
                    wrr = Wrr::new();
                    wrr.update(&dests, DestChange::Init);
                    model.init_svc(&dests);
                }
                Op::Schedule(k) => {
                    for _ in 0..k {
                        prop_assert_eq!(wrr.schedule(&dests, &flow, &mut ctx), model.schedule(&dests));
                        prop_assert_eq!(wrr.mark(), model.mark());
                    }
                }
                _ => {}
            }
            prop_assert_eq!(wrr.mark(), model.mark());
        }
    }
}

/// Runs wrr and the model side by side over `weights` for `steps` decisions, with `before`
/// changing the destinations (and telling wrr, as the owner would) ahead of each decision;
/// every decision and mark must agree. Returns the cycle length wrr precomputed.
fn run_against_model(
    weights: &[u32],
    steps: usize,
    mut before: impl FnMut(usize, &mut [DestInfo], &mut Wrr),
) -> usize {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let flow = FlowKey::new(Protocol::Tcp, ip, 1, ip, 80);
    let mut rng = rand_pcg::Pcg32::new(1, 1);
    let mut ctx = SchedContext {
        now: Instant::ZERO,
        rng: &mut rng,
    };
    let mut dests: Vec<DestInfo> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| dest(i as u32, w, false))
        .collect();
    let (mut wrr, mut model) = (Wrr::new(), Model::default());
    wrr.update(&dests, DestChange::Init);
    model.init_svc(&dests);
    let cycle = wrr.cycle_len();
    for step in 0..steps {
        before(step, &mut dests, &mut wrr);
        assert_eq!(
            wrr.schedule(&dests, &flow, &mut ctx),
            model.schedule(&dests),
            "step {step}"
        );
        assert_eq!(wrr.mark(), model.mark(), "step {step}");
    }
    cycle
}

/// A long run over one list: several full cycles, OVERLOAD toggled mid-cycle on a few
/// destinations, then cleared; the decisions and marks stay the kernel's throughout.
#[test]
fn wrr_long_run_with_overload_toggles() {
    let weights = [5u32, 10, 0, 3, 7, 10, 1, 2, 9, 4, 6, 8];
    let cycle = run_against_model(&weights, 2000, |step, dests, wrr| {
        if step % 37 == 5 {
            let pos = (step * 7) % dests.len();
            let on = !dests[pos].is_overloaded();
            dests[pos].flags.set(DestFlags::OVERLOAD, on);
            wrr.counts_changed(dests, pos);
        }
        if step == 1500 {
            for pos in 0..dests.len() {
                dests[pos].flags.set(DestFlags::OVERLOAD, false);
                wrr.counts_changed(dests, pos);
            }
        }
    });
    assert!(cycle > 0);
}

/// Weights whose cycle is longer than [`wrr::CYCLE_MAX`]: no cycle, every decision walks, and
/// still the kernel's choices.
#[test]
fn wrr_without_a_cycle_walks() {
    let cycle = run_against_model(&[40_000, 3, 0, 2, 65_535], 3000, |step, dests, _| {
        if step == 1000 {
            dests[1].flags.set(DestFlags::OVERLOAD, true);
        }
    });
    assert_eq!(cycle, 0, "105537 picks > {}", wrr::CYCLE_MAX);
}
