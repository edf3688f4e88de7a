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
use super::wlc::Load;
use super::{DestInfo, SchedKind};

/// `ip_vs_sed_dest_overhead`: `activeconns + 1` (computed without overflow).
#[inline]
pub fn sed_overhead(dest: &DestInfo) -> u64 {
    u64::from(dest.activeconns) + 1
}

/// The kernel's sed loop, literally (64-bit signed products in the kernel, exact 128-bit ones
/// here: identical for every weight the kernel accepts).
pub fn scan(dests: &[DestInfo]) -> Option<usize> {
    let mut iter = dests.iter().enumerate();
    let (mut least, mut loh) = loop {
        let (i, dest) = iter.next()?;
        if !dest.is_overloaded() && dest.weight > 0 {
            break (i, sed_overhead(dest));
        }
    };
    for (i, dest) in iter {
        if dest.is_overloaded() {
            continue;
        }
        let doh = sed_overhead(dest);
        if u128::from(loh) * u128::from(dest.weight)
            > u128::from(doh) * u128::from(dests[least].weight)
        {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// sed's order: smaller `(activeconns + 1) / weight` is better.
#[derive(Clone, Copy, Debug)]
pub struct SedRank;

impl Rank for SedRank {
    type Key = Load;
    const SKIP: Load = Load::SKIP;

    #[inline]
    fn key(dest: &DestInfo) -> Load {
        if !dest.is_overloaded() && dest.weight > 0 {
            Load::new(sed_overhead(dest), dest.weight)
        } else {
            Load::SKIP
        }
    }

    #[inline]
    fn better(a: &Load, b: &Load) -> bool {
        a.lighter_than(b)
    }
}

/// The sed scheduler: O(1) decisions from an index kept current in O(log n) per counter change.
#[derive(Debug)]
pub struct Sed {
    tree: Tournament<SedRank>,
}

indexed_scheduler!(Sed, SedRank, SchedKind::Sed, scan);
