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

/// The wrr scheduler and its mark.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wrr {
    /// `None` = the list head; `Some(pos)` = the destination chosen last.
    cl: Option<usize>,
    /// Current weight level.
    cw: i64,
    /// Top level: max weight - (di - 1).
    mw: i64,
    /// Step between levels: gcd of the positive weights, or 1.
    di: i64,
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
        }
    }

    /// The mark as `(cl, cw, mw, di)`: cursor (`None` = list head), current level, top level
    /// and step.
    pub fn mark(&self) -> (Option<usize>, i64, i64, i64) {
        (self.cl, self.cw, self.mw, self.di)
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
}

impl Scheduler for Wrr {
    fn kind(&self) -> SchedKind {
        SchedKind::Wrr
    }

    fn update(&mut self, dests: &[DestInfo], change: DestChange) {
        match change {
            DestChange::Init => self.init(dests),
            DestChange::Added { .. } | DestChange::Removed { .. } | DestChange::Edited { .. } => {
                self.dest_changed(dests)
            }
        }
    }

    fn schedule(
        &mut self,
        dests: &[DestInfo],
        _flow: &FlowKey,
        _ctx: &mut SchedContext<'_>,
    ) -> Option<usize> {
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
