//! wlc – weighted least connection (`ip_vs_wlc.c`, spec §1.4), ipvsadm's default scheduler.
//!
//! The first eligible destination (weight > 0, not OVERLOAD) is the initial best; each later
//! non-OVERLOAD destination replaces it when `overhead(best) * weight(dest) > overhead(dest) *
//! weight(best)`. Ties keep the earlier destination, so the answer is the first destination with
//! the least `overhead / weight`. A weight-0 destination cannot win that comparison unless its
//! `int` overhead wrapped negative (2^23 active connections), which the kernel lets happen; the
//! index then defers to [`scan`].
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::sched::{wlc, DestId, DestInfo};
//!
//! // Spec vector L1: 256 * 2 > 266 * 1 -> wlc picks B.
//! let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! let mut a = DestInfo::new(DestId(1), ip, 80, 1);
//! a.activeconns = 1;
//! let mut b = DestInfo::new(DestId(2), ip, 81, 2);
//! b.activeconns = 1;
//! b.inactconns = 10;
//! assert_eq!(wlc::scan(&[a, b]), Some(1));
//! ```

use super::index::{indexed_scheduler, Rank, Tournament};
use super::{DestInfo, SchedKind};

/// The kernel's wlc loop, literally.
///
/// The overhead is the kernel's `int` ([`DestInfo::overhead`], negative once it wrapped) and
/// the products are the kernel's `(__s64)loh * weight`, which cannot overflow. So a
/// destination with 2^23 or more active connections looks lightly loaded, and a later weight-0
/// destination in that state even wins the comparison (`0 > negative * weight`), as in the
/// kernel.
#[inline(never)]
pub fn scan(dests: &[DestInfo]) -> Option<usize> {
    weighted_scan(dests, DestInfo::overhead)
}

/// The loop shared by wlc and sed (`ip_vs_wlc_schedule` / `ip_vs_sed_schedule`): the first
/// non-OVERLOAD destination with weight > 0 is the initial best, then every later non-OVERLOAD
/// destination replaces the best if `loh * weight(dest) > doh * weight(best)` in 64 bits.
pub(crate) fn weighted_scan(dests: &[DestInfo], overhead: fn(&DestInfo) -> i32) -> Option<usize> {
    let first = dests
        .iter()
        .position(|d| !d.is_overloaded() && d.weight > 0)?;
    // The best's overhead and weight are carried along, widened once, rather than read back
    // through its index; the rest is walked by position (a plain counted loop).
    let (mut least, mut loh, mut lw) = (
        first,
        i64::from(overhead(&dests[first])),
        i64::from(dests[first].weight),
    );
    for (i, dest) in dests.iter().enumerate().skip(first + 1) {
        // An OVERLOAD destination is skipped; its products are computed all the same (they
        // cannot overflow), which keeps the loop free of a second branch.
        let (doh, dw) = (i64::from(overhead(dest)), i64::from(dest.weight));
        if !dest.is_overloaded() && loh * dw > doh * lw {
            least = i;
            loh = doh;
            lw = dw;
        }
    }
    Some(least)
}

/// A weighted load `overhead / weight` compared by cross multiplication, shared by wlc, sed and
/// nq (which differ only in how the overhead is counted). The overhead is the kernel's `int`;
/// the products are 64-bit, as the kernel's `(__s64)` casts make them, and cannot overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// The connection overhead (the kernel's `int`).
    overhead: i32,
    /// The weight, > 0 for an eligible destination.
    weight: u32,
}

impl Load {
    /// The load of a skipped destination: weight 0 is an infinite load, worse than every
    /// load with a positive weight (cross multiplication: `1 * w > o * 0` for any `w > 0`)
    /// and never lighter than anything (`o * 0 > 1 * w` is false).
    pub const SKIP: Load = Load::new(1, 0);

    /// The key of a destination the kernel's scan treats in a way no order can express (see
    /// [`Rank::irregular`]): it compares exactly like [`Load::SKIP`] (weight 0, positive
    /// overhead) but is a different value.
    pub const IRREGULAR: Load = Load::new(2, 0);

    /// The load `overhead / weight`.
    #[inline]
    pub const fn new(overhead: i32, weight: u32) -> Self {
        Load { overhead, weight }
    }

    /// The connection overhead (wlc: `(active << 8) + inactive`; sed, nq: `active + 1`).
    #[inline]
    pub const fn overhead(&self) -> i32 {
        self.overhead
    }

    /// The weight.
    #[inline]
    pub const fn weight(&self) -> u32 {
        self.weight
    }

    /// Whether `self` is strictly less loaded than `other`: the kernel's
    /// `overhead(other) * weight(self) > overhead(self) * weight(other)`.
    ///
    /// ```
    /// use lvs_core::sched::wlc::Load;
    /// assert!(Load::new(2, 2).lighter_than(&Load::new(2, 1)));
    /// assert!(!Load::new(4, 2).lighter_than(&Load::new(2, 1))); // equal loads
    /// assert!(Load::new(7, 1).lighter_than(&Load::SKIP));
    /// assert!(!Load::SKIP.lighter_than(&Load::SKIP));
    /// assert!(Load::new(i32::MIN, 1).lighter_than(&Load::new(0, 1))); // a wrapped overhead
    /// ```
    #[inline]
    pub fn lighter_than(&self, other: &Load) -> bool {
        i64::from(other.overhead) * i64::from(self.weight)
            > i64::from(self.overhead) * i64::from(other.weight)
    }
}

/// The key of a destination under wlc's or sed's loop with the given overhead: its load if it
/// can be the initial best (not OVERLOAD, weight > 0); [`Load::IRREGULAR`] for a weight-0
/// destination with a negative overhead (it would win any later comparison, but only after
/// the first eligible destination); otherwise [`Load::SKIP`].
#[inline]
pub(crate) fn weighted_key(dest: &DestInfo, overhead: i32) -> Load {
    if dest.is_overloaded() {
        Load::SKIP
    } else if dest.weight > 0 {
        Load::new(overhead, dest.weight)
    } else if overhead < 0 {
        Load::IRREGULAR
    } else {
        Load::SKIP
    }
}

/// wlc's order: smaller `overhead / weight` is better.
#[derive(Clone, Copy, Debug)]
pub struct WlcRank;

impl Rank for WlcRank {
    type Key = Load;
    const SKIP: Load = Load::SKIP;

    #[inline]
    fn key(dest: &DestInfo) -> Load {
        weighted_key(dest, dest.overhead())
    }

    #[inline]
    fn better(a: &Load, b: &Load) -> bool {
        a.lighter_than(b)
    }

    #[inline]
    fn irregular(key: &Load) -> bool {
        *key == Load::IRREGULAR
    }

    const MAY_BE_IRREGULAR: bool = true;
}

/// The wlc scheduler: O(1) decisions from an index kept current in O(log n) per counter change.
#[derive(Debug)]
pub struct Wlc {
    tree: Tournament<WlcRank>,
}

indexed_scheduler!(Wlc, WlcRank, SchedKind::Wlc, scan);
