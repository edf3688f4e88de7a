//! nq – never queue (`ip_vs_nq.c`, spec §1.6).
//!
//! Walking eligible destinations (weight > 0, not OVERLOAD) in list order, the first one with
//! no active connection is returned at once (inactive connections do not count). Without such
//! an idle destination nq behaves like sed: least `(activeconns + 1) / weight`, ties to the
//! earliest.
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::sched::{nq, DestId, DestInfo};
//!
//! // Spec vector L2: B is idle (activeconns 0) -> nq picks B.
//! let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! let mut a = DestInfo::new(DestId(1), ip, 80, 5);
//! a.activeconns = 3;
//! let mut b = DestInfo::new(DestId(2), ip, 81, 1);
//! b.inactconns = 50;
//! assert_eq!(nq::scan(&[a, b]), Some(1));
//! ```

use super::index::{indexed_scheduler, Rank, Tournament};
use super::sed::sed_overhead;
use super::wlc::Load;
use super::{DestInfo, SchedKind};

/// The kernel's nq loop, literally (the overhead is [`sed_overhead`], the kernel's `int`; the
/// products are 64-bit).
pub fn scan(dests: &[DestInfo]) -> Option<usize> {
    let mut least: Option<usize> = None;
    let mut loh = 0i32;
    for (i, dest) in dests.iter().enumerate() {
        if dest.is_overloaded() || dest.weight == 0 {
            continue;
        }
        let doh = sed_overhead(dest);
        // Return the server directly if it is idle.
        if dest.activeconns == 0 {
            return Some(i);
        }
        let replace = match least {
            None => true,
            Some(l) => {
                i64::from(loh) * i64::from(dest.weight)
                    > i64::from(doh) * i64::from(dests[l].weight)
            }
        };
        if replace {
            least = Some(i);
            loh = doh;
        }
    }
    least
}

/// nq's order: sed's load `(activeconns + 1) / weight`, except that an idle destination
/// (`activeconns == 0`) counts as load `0 / weight`. A busy destination's load is at least
/// `2 / weight`, so every idle destination beats every busy one and idle destinations tie among
/// themselves (the earliest wins): exactly the kernel's early return of the first idle one.
///
/// A busy destination whose `int` overhead wrapped to 0 or below (2^31 − 1 active
/// connections, beyond what the kernel's counters can reach) would not be beaten by an idle one
/// under that order; its key is [irregular](Rank::irregular) and the scan decides.
#[derive(Clone, Copy, Debug)]
pub struct NqRank;

impl Rank for NqRank {
    type Key = Load;
    const SKIP: Load = Load::SKIP;

    #[inline]
    fn key(dest: &DestInfo) -> Load {
        if dest.is_overloaded() || dest.weight == 0 {
            Load::SKIP
        } else if dest.activeconns == 0 {
            Load::new(0, dest.weight)
        } else {
            let oh = sed_overhead(dest);
            if oh > 0 {
                Load::new(oh, dest.weight)
            } else {
                Load::IRREGULAR
            }
        }
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

/// The nq scheduler: O(1) decisions from an index kept current in O(log n) per counter change.
#[derive(Debug)]
pub struct Nq {
    tree: Tournament<NqRank>,
}

indexed_scheduler!(Nq, NqRank, SchedKind::Nq, scan);
