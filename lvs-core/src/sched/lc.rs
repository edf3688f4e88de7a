//! lc – least connection (`ip_vs_lc.c`, spec §1.3).
//!
//! Among eligible destinations (weight > 0, not OVERLOAD) the one with the smallest
//! connection overhead `activeconns * 256 + inactconns` wins; weight magnitude is ignored and
//! ties go to the earliest destination in list order (the kernel's comparison is a strict `<`).
//!
//! [`scan`] is the kernel's loop, kept as the reference; [`Lc`] answers the same question from a
//! [`Tournament`] kept current by `update` and `counts_changed`.
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::sched::{lc, DestChange, DestId, DestInfo};
//!
//! // Spec vector L1: overhead A = 256, B = 266 -> lc picks A.
//! let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! let mut a = DestInfo::new(DestId(1), ip, 80, 1);
//! a.activeconns = 1;
//! let mut b = DestInfo::new(DestId(2), ip, 81, 2);
//! b.activeconns = 1;
//! b.inactconns = 10;
//! assert_eq!(lc::scan(&[a, b]), Some(0));
//! ```

use super::index::{indexed_scheduler, Rank, Tournament};
use super::{DestInfo, SchedKind};

/// The kernel's lc loop, literally: the first eligible destination with the smallest
/// overhead, or `None`.
///
/// As in the kernel, the `int` overhead ([`DestInfo::overhead`]) is compared as an
/// `unsigned int` (`unsigned int loh, doh`): an overhead that wrapped past 2^32 (2^24 active
/// connections) looks small again.
pub fn scan(dests: &[DestInfo]) -> Option<usize> {
    let mut least: Option<usize> = None;
    let mut loh = 0u32;
    for (i, dest) in dests.iter().enumerate() {
        if dest.is_overloaded() || dest.weight == 0 {
            continue;
        }
        let doh = dest.overhead() as u32;
        if least.is_none() || doh < loh {
            least = Some(i);
            loh = doh;
        }
    }
    least
}

/// lc's order: smaller overhead is better.
#[derive(Clone, Copy, Debug)]
pub struct LcRank;

impl Rank for LcRank {
    type Key = u64;

    /// No overhead reaches it (overheads are `unsigned int`s).
    const SKIP: u64 = u64::MAX;

    #[inline]
    fn key(dest: &DestInfo) -> u64 {
        if !dest.is_overloaded() && dest.weight != 0 {
            u64::from(dest.overhead() as u32)
        } else {
            Self::SKIP
        }
    }

    #[inline]
    fn better(a: &u64, b: &u64) -> bool {
        a < b
    }
}

/// The lc scheduler: O(1) decisions from an index kept current in O(log n) per counter change.
#[derive(Debug)]
pub struct Lc {
    tree: Tournament<LcRank>,
}

indexed_scheduler!(Lc, LcRank, SchedKind::Lc, scan);
