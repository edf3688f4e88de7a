//! wrr – weighted round robin (`ip_vs_wrr.c`, kernels ≥ v3.10, spec §1.2).
//!
//! The state ("mark") is a cursor `cl` (the list head or the destination chosen last), the
//! current weight level `cw`, the top level `mw = max weight - (di - 1)` and the step
//! `di = gcd of the positive weights` (1 if none). A decision walks on from the cursor, taking
//! the first non-OVERLOAD destination with `weight >= cw`; at the end of the list the level
//! drops by `di` and the walk restarts at the first destination; below 1 the level wraps to
//! `mw`. With stable weights one cycle is `sum(weight) / di` picks, each destination getting
//! `weight / di` of them.
//!
//! Every add, delete or edit of a destination resets the cursor to the head and recomputes
//! `di` and `mw`; `cw` is kept (clamped to `mw`, reset to `mw` if 0, or rounded onto a level
//! `k * di + 1` when `di > 1`). So configuring a service with `ipvsadm -a` one destination at a
//! time usually leaves `cw` at a low level, not at `mw` (spec vector W2).
//!
//! With the weights fixed between two updates and no destination OVERLOAD, the walk is a pure
//! function of the mark, and every mark it can reach is a place in one *cycle*: the level blocks
//! `mw, mw - di, ..., 1`, each listing the destinations with `weight >= level` in list order.
//! [`Scheduler::update`] writes that cycle down (when it has at most [`CYCLE_MAX`] picks), and a
//! decision then reads the next position of the cycle and checks that its destination is not
//! OVERLOAD; any skipped destination was skipped for its weight alone, so this is the kernel's
//! choice. When the destination is OVERLOAD (or there is no cycle) the decision runs the
//! kernel's walk from the same mark and finds the walk's resulting mark in the cycle again.
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::protocol::Protocol;
//! use lvs_core::sched::{wrr::Wrr, DestChange, DestId, DestInfo, FlowKey, SchedContext, Scheduler};
//! use lvs_core::time::Instant;
//! # struct Zero;
//! # impl rand_core::RngCore for Zero {
//! #     fn next_u32(&mut self) -> u32 { 0 }
//! #     fn next_u64(&mut self) -> u64 { 0 }
//! #     fn fill_bytes(&mut self, b: &mut [u8]) { b.fill(0) }
//! # }
//!
//! // Spec vector W1: [A(4), B(3), C(2)] bound with cw = mw = 4.
//! let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! let dests: Vec<DestInfo> =
//!     [4, 3, 2].iter().enumerate().map(|(i, &w)| DestInfo::new(DestId(i as u32), ip, 80, w)).collect();
//! let mut wrr = Wrr::new();
//! wrr.update(&dests, DestChange::Init);
//! let flow = FlowKey::new(Protocol::Tcp, ip, 1, ip, 80);
//! let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut Zero };
//! let picks: String =
//!     (0..9).map(|_| ["A", "B", "C"][wrr.schedule(&dests, &flow, &mut ctx).unwrap()]).collect();
//! assert_eq!(picks, "AABABCABC");
//! ```

use super::{DestChange, DestInfo, FlowKey, SchedContext, SchedKind, Scheduler};

/// The most picks a precomputed cycle holds (`sum(weight) / di`): 32768 list positions,
/// 128 KiB. Services with a longer cycle (large weights with a small gcd) always walk.
pub const CYCLE_MAX: usize = 1 << 15;

/// `next` when the mark is held in `cl` and `cw` rather than as a place in the cycle.
const WALKING: usize = usize::MAX;

/// The wrr scheduler and its mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wrr {
    /// `None` = the list head; `Some(pos)` = the destination chosen last. Valid while `next`
    /// is [`WALKING`]; otherwise the mark is derived from `next` ([`Wrr::mark`]).
    cl: Option<usize>,
    /// Current weight level (valid like `cl`).
    cw: i64,
    /// Top level: max weight - (di - 1).
    mw: i64,
    /// Step between levels: gcd of the positive weights, or 1.
    di: i64,
    /// One cycle of picks under the weights of the last update and no OVERLOAD: for each level
    /// `mw, mw - di, ..., 1` (level `j` is `mw - j * di`), the positions with `weight >= level`
    /// in list order. Empty when no weight is positive or the cycle exceeds [`CYCLE_MAX`].
    cycle: Vec<u32>,
    /// Where level `j`'s block starts in `cycle`, then `cycle.len()`.
    level_start: Vec<u32>,
    /// The place in `cycle` of the next pick, or [`WALKING`].
    next: usize,
    /// With `next` in the cycle: the cursor is the list head (right after an update), and
    /// `next` is the start of the level `cw`'s block; otherwise the cursor is the destination
    /// one place before `next` (cyclically), at that place's level.
    fresh: bool,
}

impl Default for Wrr {
    fn default() -> Self {
        Self::new()
    }
}

/// `ip_vs_wrr_gcd_weight`: the gcd of all positive weights, 1 if there is none.
fn gcd_weight(dests: &[DestInfo]) -> i64 {
    fn gcd(mut a: u64, mut b: u64) -> u64 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
    let g = dests
        .iter()
        .filter(|d| d.weight > 0)
        .fold(0u64, |g, d| gcd(u64::from(d.weight), g));
    if g == 0 {
        1
    } else {
        g as i64
    }
}

/// `ip_vs_wrr_max_weight`: the largest weight, 0 for none.
fn max_weight(dests: &[DestInfo]) -> i64 {
    dests.iter().map(|d| i64::from(d.weight)).max().unwrap_or(0)
}

impl Wrr {
    /// An unbound scheduler (all-zero mark: no destination until `update`).
    pub fn new() -> Self {
        Wrr {
            cl: None,
            cw: 0,
            mw: 0,
            di: 1,
            cycle: Vec::new(),
            level_start: Vec::new(),
            next: WALKING,
            fresh: false,
        }
    }

    /// The mark as `(cl, cw, mw, di)`: cursor (`None` = list head), current level, top level
    /// and step.
    pub fn mark(&self) -> (Option<usize>, i64, i64, i64) {
        let (cl, cw) = self.cursor_and_level();
        (cl, cw, self.mw, self.di)
    }

    /// The length of the precomputed cycle (0: every decision walks).
    pub fn cycle_len(&self) -> usize {
        self.cycle.len()
    }

    /// `(cl, cw)`, from the cycle place when decisions follow the cycle.
    fn cursor_and_level(&self) -> (Option<usize>, i64) {
        if self.next == WALKING {
            return (self.cl, self.cw);
        }
        if self.fresh {
            return (None, self.level_at(self.next));
        }
        let prev = self.next.checked_sub(1).unwrap_or(self.cycle.len() - 1);
        (Some(self.cycle[prev] as usize), self.level_at(prev))
    }

    /// The level of the block holding cycle place `k`.
    fn level_at(&self, k: usize) -> i64 {
        // Blocks are non-empty: block j holds place k iff level_start[j] <= k < level_start[j+1].
        let j = self.level_start[1..].partition_point(|&s| s as usize <= k);
        self.mw - j as i64 * self.di
    }

    /// Stores the mark in `cl` and `cw` and stops following the cycle.
    fn hold_mark(&mut self) {
        (self.cl, self.cw) = self.cursor_and_level();
        self.next = WALKING;
    }

    /// Finds the mark `(cl, cw)` in the cycle, so that decisions follow it again; leaves `next`
    /// at [`WALKING`] for a mark that is no place of the cycle.
    fn follow_cycle(&mut self) {
        self.next = WALKING;
        let (cw, mw, di) = (self.cw, self.mw, self.di);
        if self.cycle.is_empty() || cw < 1 || cw > mw || (mw - cw) % di != 0 {
            return;
        }
        let j = ((mw - cw) / di) as usize;
        let (start, end) = (
            self.level_start[j] as usize,
            self.level_start[j + 1] as usize,
        );
        match self.cl {
            // From the head at level cw: the first destination with weight >= cw.
            None => {
                self.next = start;
                self.fresh = true;
            }
            // After the destination `c` at level cw: the next one in its block, else the
            // first of the next level's block, else (past level 1) the cycle's start.
            Some(c) => {
                let Ok(c) = u32::try_from(c) else { return };
                if let Ok(r) = self.cycle[start..end].binary_search(&c) {
                    let k = start + r + 1;
                    self.next = if k == self.cycle.len() { 0 } else { k };
                    self.fresh = false;
                }
            }
        }
    }

    /// Writes down the cycle of the current weights (after `di` and `mw` are set).
    fn build_cycle(&mut self, dests: &[DestInfo]) {
        self.cycle.clear();
        self.level_start.clear();
        if self.mw < 1 {
            return;
        }
        let (mw, di) = (self.mw, self.di);
        // Picks per cycle: a destination is in every block whose level is <= its weight.
        let mut total: u64 = 0;
        for d in dests {
            let w = i64::from(d.weight);
            if w >= 1 {
                total += (w.min(mw) - 1) as u64 / di as u64 + 1;
            }
        }
        if total > CYCLE_MAX as u64 {
            return;
        }
        // The positive weights, largest first: a block differs from the one above it only if
        // some weight lies in [level, level + di), so most blocks are copies.
        let mut weights: Vec<i64> = dests
            .iter()
            .map(|d| i64::from(d.weight))
            .filter(|&w| w >= 1)
            .collect();
        weights.sort_unstable_by(|a, b| b.cmp(a));
        let mut above = 0; // how many weights are >= the current level
        let mut level = mw;
        while level >= 1 {
            let start = self.cycle.len();
            self.level_start.push(start as u32);
            let mut now = above;
            while now < weights.len() && weights[now] >= level {
                now += 1;
            }
            if now == above && start > 0 {
                let prev = self.level_start[self.level_start.len() - 2] as usize;
                self.cycle.extend_from_within(prev..start);
            } else {
                self.cycle.extend(
                    dests
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| i64::from(d.weight) >= level)
                        .map(|(i, _)| i as u32),
                );
            }
            above = now;
            level -= di;
        }
        self.level_start.push(self.cycle.len() as u32);
        debug_assert_eq!(self.cycle.len() as u64, total);
    }

    /// `ip_vs_wrr_init_svc`.
    fn init(&mut self, dests: &[DestInfo]) {
        self.cl = None;
        self.di = gcd_weight(dests);
        self.mw = max_weight(dests) - (self.di - 1);
        self.cw = self.mw;
    }

    /// `ip_vs_wrr_dest_changed` (add, delete and edit alike).
    fn dest_changed(&mut self, dests: &[DestInfo]) {
        self.cl = None;
        self.di = gcd_weight(dests);
        self.mw = max_weight(dests) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            // Back onto a level of the new step: levels are k * di + 1.
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// The kernel's walk from the mark, for a cycle place whose destination is OVERLOAD (or
    /// with no cycle); then back onto the cycle.
    #[inline(never)]
    fn schedule_walk(&mut self, dests: &[DestInfo]) -> Option<usize> {
        self.hold_mark();
        let chosen = self.walk(dests);
        self.follow_cycle();
        chosen
    }

    /// `ip_vs_wrr_schedule` on `cl` and `cw`.
    fn walk(&mut self, dests: &[DestInfo]) -> Option<usize> {
        // A cursor beyond the list (the owner did not report a removal) counts as the head.
        let last = self.cl.filter(|&c| c < dests.len());
        if self.mw == 0 {
            // err_noavail: the cursor stays where it was.
            self.cl = last;
            return None;
        }
        // `stop`: in the bounded lowest-level pass after a restart, the walk ends after
        // examining the destination the call started from.
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        let mut from = last.map_or(0, |c| c + 1);
        loop {
            for (i, dest) in dests.iter().enumerate().skip(from) {
                if !dest.is_overloaded() && i64::from(dest.weight) >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    // err_over from inside the walk: the cursor rests on `stop`.
                    self.cl = Some(i);
                    return None;
                }
            }
            from = 0;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Stop if the lowest level was already tried from the first destination:
                // either a full lowest-level pass happened in this call, or the call started
                // at the head (its only traversal covered every destination).
                if last_pass || last.is_none() {
                    // err_over at the end of the list: the cursor rests on the head.
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The first traversal was for the lowest level but only after `last`; now do
                // the same up to and including `last`.
                stop = last;
            }
        }
    }
}

impl Scheduler for Wrr {
    fn kind(&self) -> SchedKind {
        SchedKind::Wrr
    }

    fn update(&mut self, dests: &[DestInfo], change: DestChange) {
        self.hold_mark();
        match change {
            DestChange::Init => self.init(dests),
            DestChange::Added { .. } | DestChange::Removed { .. } | DestChange::Edited { .. } => {
                self.dest_changed(dests)
            }
        }
        self.build_cycle(dests);
        self.follow_cycle();
    }

    #[inline]
    fn schedule(
        &mut self,
        dests: &[DestInfo],
        _flow: &FlowKey,
        _ctx: &mut SchedContext<'_>,
    ) -> Option<usize> {
        // The cycle's next place is the kernel's choice unless its destination is OVERLOAD.
        if let Some(&pos) = self.cycle.get(self.next) {
            if let Some(d) = dests.get(pos as usize) {
                if !d.is_overloaded() {
                    let k = self.next + 1;
                    self.next = if k == self.cycle.len() { 0 } else { k };
                    self.fresh = false;
                    return Some(pos as usize);
                }
            }
        }
        self.schedule_walk(dests)
    }
}
