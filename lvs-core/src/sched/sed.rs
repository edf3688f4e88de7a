//! sed – shortest expected delay (`ip_vs_sed.c`, spec §1.5).
//!
//! wlc with the overhead counted as `activeconns + 1` (the connection being scheduled
//! included, inactive connections ignored): the first eligible destination with the least
//! `(activeconns + 1) / weight` wins.
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::sched::{sed, DestId, DestInfo};
//!
//! // Spec vector L1: A 2/1, B 2/2 -> sed picks B.
//! let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! let mut a = DestInfo::new(DestId(1), ip, 80, 1);
//! a.activeconns = 1;
//! let mut b = DestInfo::new(DestId(2), ip, 81, 2);
//! b.activeconns = 1;
//! b.inactconns = 10;
//! assert_eq!(sed::scan(&[a, b]), Some(1));
//! ```

use super::index::{indexed_scheduler, Rank, Tournament};
use super::wlc::{weighted_key, weighted_scan, Load};
use super::{DestInfo, SchedKind};

/// `ip_vs_sed_dest_overhead`: `activeconns + 1` in the kernel's `int` (wrapping).
#[inline]
pub fn sed_overhead(dest: &DestInfo) -> i32 {
    (dest.activeconns as i32).wrapping_add(1)
}

/// The kernel's sed loop, literally: wlc's loop with [`sed_overhead`] (64-bit products of the
/// `int` overhead and the weight, as the kernel's `(__s64)` casts make them).
pub fn scan(dests: &[DestInfo]) -> Option<usize> {
    weighted_scan(dests, sed_overhead)
}

/// sed's order: smaller `(activeconns + 1) / weight` is better.
#[derive(Clone, Copy, Debug)]
pub struct SedRank;

impl Rank for SedRank {
    type Key = Load;
    const SKIP: Load = Load::SKIP;

    #[inline]
    fn key(dest: &DestInfo) -> Load {
        weighted_key(dest, sed_overhead(dest))
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

/// The sed scheduler: O(1) decisions from an index kept current in O(log n) per counter change.
#[derive(Debug)]
pub struct Sed {
    tree: Tournament<SedRank>,
}

indexed_scheduler!(Sed, SedRank, SchedKind::Sed, scan);
