//! twos – power of two random choices (`ip_vs_twos.c`, spec §1.14).
//!
//! `total` is the sum of the weights of eligible destinations (weight > 0, not OVERLOAD). Two
//! random numbers `r1`, `r2` are drawn in `[0, total]`; walking eligible destinations in list
//! order and subtracting each weight from both, choice 1 is the destination at which `r1`
//! first reaches `<= 0`, choice 2 likewise for `r2`. Choice 2 is returned if
//! `weight2 * overhead1 > weight1 * overhead2`, otherwise choice 1.
//!
//! # The draw
//! Exactly the kernel's: only when some destination is eligible, two 32-bit draws in this
//! order, `r1 = rng.next_u32() % (total + 1)` then `r2 = rng.next_u32() % (total + 1)`
//! (`prandom_u32() % total_weight` after `total_weight += 1`). With the same generator stream
//! [`scan`] and [`Twos`] therefore make the same choices.
//!
//! # Arithmetic
//! The final comparison is done as the kernel does it, in C `int` (32-bit, wrapping): the
//! overhead `(activeconns << 8) + inactconns` and both products wrap exactly like the kernel's
//! (built with `-fno-strict-overflow`), which is reachable in practice (weight 65535 and 33,000
//! active connections already overflow). The weight sum is kept in 64 bits; the kernel's `int`
//! sum agrees while `total + 1 <= i32::MAX`, beyond which the kernel's own result is
//! undefined.
//!
//! [`Twos`] finds both choices in O(log n) with a Fenwick tree of eligible weights
//! ([`WeightSums`]): the walk stops at the first position whose prefix sum reaches `max(r, 1)`
//! (for `r = 0` the first eligible destination, whose weight is at least 1).
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::sched::{twos, DestId, DestInfo};
//!
//! let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! let mut dests: Vec<DestInfo> = (0..3).map(|i| DestInfo::new(DestId(i), ip, 80, 2)).collect();
//! dests[0].activeconns = 5;
//! // total = 6; raw draws 0 and 5 give r1 = 0 (first dest) and r2 = 5 (third dest).
//! assert_eq!(twos::scan_with_draws(&dests, 0, 5), Some(2)); // the idle one wins
//! assert_eq!(twos::scan_with_draws(&dests, 5, 0), Some(2));
//! ```

use rand_core::RngCore;

use super::index::WeightSums;
use super::{DestChange, DestInfo, FlowKey, SchedContext, SchedKind, Scheduler};

/// The weight `dest` contributes to the draw: its weight if eligible, else 0.
#[inline]
fn eligible_weight(dest: &DestInfo) -> u64 {
    if !dest.is_overloaded() && dest.weight > 0 {
        u64::from(dest.weight)
    } else {
        0
    }
}

/// The kernel's final test `weight2 * overhead1 > weight1 * overhead2`, in wrapping `int`
/// (the overheads are [`DestInfo::overhead`], the kernel's `int`).
#[inline]
fn prefer_second(first: &DestInfo, second: &DestInfo) -> bool {
    let (w1, w2) = (first.weight as i32, second.weight as i32);
    w2.wrapping_mul(first.overhead()) > w1.wrapping_mul(second.overhead())
}

/// The kernel's twos loop, literally, with the two raw 32-bit draws given (they are reduced
/// modulo `total + 1` here, as in the kernel). `None` when no destination is eligible.
pub fn scan_with_draws(dests: &[DestInfo], raw1: u32, raw2: u32) -> Option<usize> {
    let total: u64 = dests.iter().map(eligible_weight).sum();
    if total == 0 {
        return None;
    }
    let modulus = total + 1;
    let mut r1 = (u64::from(raw1) % modulus) as i128;
    let mut r2 = (u64::from(raw2) % modulus) as i128;
    let mut choice1: Option<usize> = None;
    let mut choice2: Option<usize> = None;
    for (i, dest) in dests.iter().enumerate() {
        if dest.is_overloaded() || dest.weight == 0 {
            continue;
        }
        let weight = i128::from(dest.weight);
        r1 -= weight;
        r2 -= weight;
        if r1 <= 0 && choice1.is_none() {
            choice1 = Some(i);
        }
        if r2 <= 0 && choice2.is_none() {
            choice2 = Some(i);
        }
        if choice1.is_some() && choice2.is_some() {
            break;
        }
    }
    // r <= total, so both walks end on an eligible destination.
    let (c1, c2) = (choice1?, choice2?);
    if prefer_second(&dests[c1], &dests[c2]) {
        Some(c2)
    } else {
        Some(c1)
    }
}

/// The kernel's twos decision with draws from `rng` (see [the draw](self#the-draw)): no draw
/// when no destination is eligible, else `r1` then `r2`.
pub fn scan(dests: &[DestInfo], rng: &mut dyn RngCore) -> Option<usize> {
    if !dests.iter().any(|d| eligible_weight(d) > 0) {
        return None;
    }
    let raw1 = rng.next_u32();
    let raw2 = rng.next_u32();
    scan_with_draws(dests, raw1, raw2)
}

/// The twos scheduler: two O(log n) weighted picks from a Fenwick tree of eligible weights.
#[derive(Debug, Default)]
pub struct Twos {
    sums: WeightSums,
}

impl Twos {
    /// A scheduler with an empty index; bind it with `update(dests, DestChange::Init)`.
    pub fn new() -> Self {
        Twos {
            sums: WeightSums::new(),
        }
    }

    fn rebuild(&mut self, dests: &[DestInfo]) {
        self.sums.rebuild(dests.iter().map(eligible_weight));
    }
}

impl Scheduler for Twos {
    fn kind(&self) -> SchedKind {
        SchedKind::Twos
    }

    fn update(&mut self, dests: &[DestInfo], change: DestChange) {
        match change {
            DestChange::Edited { pos } if dests.len() == self.sums.len() && pos < dests.len() => {
                self.sums.set(pos, eligible_weight(&dests[pos]))
            }
            _ => self.rebuild(dests),
        }
    }

    fn counts_changed(&mut self, dests: &[DestInfo], pos: usize) {
        // Only OVERLOAD changes what a destination weighs in the draw.
        if let Some(dest) = dests.get(pos) {
            self.sums.set(pos, eligible_weight(dest));
        }
    }

    fn schedule(
        &mut self,
        dests: &[DestInfo],
        _flow: &FlowKey,
        ctx: &mut SchedContext<'_>,
    ) -> Option<usize> {
        if dests.len() != self.sums.len() {
            // Not told about a list change: answer like the kernel rather than from stale sums.
            return scan(dests, ctx.rng);
        }
        let total = self.sums.total();
        if total == 0 {
            return None;
        }
        let raw1 = ctx.rng.next_u32();
        let raw2 = ctx.rng.next_u32();
        let (r1, r2) = match u32::try_from(total + 1) {
            // The common case: a 32-bit remainder, as the kernel computes it.
            Ok(modulus) => (u64::from(raw1 % modulus), u64::from(raw2 % modulus)),
            // A 32-bit draw is already below a larger modulus.
            Err(_) => (u64::from(raw1), u64::from(raw2)),
        };
        // r = 0 stops at the first eligible destination, as r = 1 does.
        let Some((c1, c2)) = self.sums.find_pair(r1.max(1), r2.max(1)) else {
            return scan_with_draws(dests, raw1, raw2);
        };
        if eligible_weight(&dests[c1]) == 0 || eligible_weight(&dests[c2]) == 0 {
            // A destination became ineligible without `counts_changed`: the sums are stale.
            return scan_with_draws(dests, raw1, raw2);
        }
        if prefer_second(&dests[c1], &dests[c2]) {
            Some(c2)
        } else {
            Some(c1)
        }
    }
}
