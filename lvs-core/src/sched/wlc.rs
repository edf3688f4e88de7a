//! wlc – weighted least connection (`ip_vs_wlc.c`, spec §1.4), ipvsadm's default scheduler.
//!
//! The first eligible destination (weight > 0, not OVERLOAD) is the initial best; each later
//! non-OVERLOAD destination replaces it when `overhead(best) * weight(dest) > overhead(dest) *
//! weight(best)`. A weight-0 destination can never win that comparison, and ties keep the
//! earlier destination, so the answer is the first destination with the least
//! `overhead / weight`.
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
/// The kernel multiplies in signed 64 bits (`(__s64)loh * weight`); we multiply in 128 bits so
/// that no `u32` input can overflow. Results agree for every state the kernel can hold (its
/// weights are at most `i32::MAX`, and its `int` overhead is exact below 2^31).
pub fn scan(dests: &[DestInfo]) -> Option<usize> {
    let mut iter = dests.iter().enumerate();
    let (mut least, mut loh) = loop {
        let (i, dest) = iter.next()?;
        if !dest.is_overloaded() && dest.weight > 0 {
            break (i, dest.overhead());
        }
    };
    for (i, dest) in iter {
        if dest.is_overloaded() {
            continue;
        }
        let doh = dest.overhead();
        if u128::from(loh) * u128::from(dest.weight)
            > u128::from(doh) * u128::from(dests[least].weight)
        {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// A weighted load `overhead / weight` compared by cross multiplication, shared by wlc, sed and
/// nq (which differ only in how the overhead is counted).
///
/// Stored as three 32-bit words (12 bytes, 4-byte aligned) so that a tournament node with its
/// list position fits in 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// The connection overhead, low and high 32 bits.
    overhead: [u32; 2],
    /// The weight, > 0 for an eligible destination.
    weight: u32,
}

impl Load {
    /// The load of a skipped destination: weight 0 is an infinite load, worse than every
    /// load with a positive weight (cross multiplication: `1 * w > o * 0` for any `w > 0`)
    /// and never lighter than anything (`o * 0 > 1 * w` is false).
    pub const SKIP: Load = Load::new(1, 0);

    /// The load `overhead / weight`.
    #[inline]
    pub const fn new(overhead: u64, weight: u32) -> Self {
        Load {
            overhead: [overhead as u32, (overhead >> 32) as u32],
            weight,
        }
    }

    /// The connection overhead (wlc: `active * 256 + inactive`; sed, nq: `active + 1`).
    #[inline]
    pub const fn overhead(&self) -> u64 {
        (self.overhead[0] as u64) | ((self.overhead[1] as u64) << 32)
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
    /// ```
    #[inline]
    pub fn lighter_than(&self, other: &Load) -> bool {
        u128::from(other.overhead()) * u128::from(self.weight)
            > u128::from(self.overhead()) * u128::from(other.weight)
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
        // Weight 0 is skipped: it can never win the kernel's comparison either.
        if !dest.is_overloaded() && dest.weight > 0 {
            Load::new(dest.overhead(), dest.weight)
        } else {
            Load::SKIP
        }
    }

    #[inline]
    fn better(a: &Load, b: &Load) -> bool {
        a.lighter_than(b)
    }
}

/// The wlc scheduler: O(1) decisions from an index kept current in O(log n) per counter change.
#[derive(Debug)]
pub struct Wlc {
    tree: Tournament<WlcRank>,
}

indexed_scheduler!(Wlc, WlcRank, SchedKind::Wlc, scan);
