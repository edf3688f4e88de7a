//! fo – weighted failover (`ip_vs_fo.c`, spec §1.12).
//!
//! The non-OVERLOAD destination with the highest weight, strictly greater than the running
//! maximum that starts at 0 (so weight 0 never wins); ties go to the earliest in list order.
//! Connection counters play no part, but the OVERLOAD flag does, so `counts_changed` still
//! matters.
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::sched::{fo, DestId, DestInfo};
//!
//! // Spec vector L3: [A(2), B(5), C(5)] -> B.
//! let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! let dests: Vec<DestInfo> =
//!     [2, 5, 5].iter().enumerate().map(|(i, &w)| DestInfo::new(DestId(i as u32), ip, 80, w)).collect();
//! assert_eq!(fo::scan(&dests), Some(1));
//! ```

use super::index::{indexed_scheduler, Rank, Tournament};
use super::{DestInfo, SchedKind};

/// The kernel's fo loop, literally.
pub fn scan(dests: &[DestInfo]) -> Option<usize> {
    let mut hweight: Option<usize> = None;
    let mut hw = 0u32;
    for (i, dest) in dests.iter().enumerate() {
        if !dest.is_overloaded() && dest.weight > hw {
            hweight = Some(i);
            hw = dest.weight;
        }
    }
    hweight
}

/// fo's order: higher weight is better.
#[derive(Clone, Copy, Debug)]
pub struct FoRank;

impl Rank for FoRank {
    type Key = u32;

    /// Eligible destinations have a positive weight.
    const SKIP: u32 = 0;

    #[inline]
    fn key(dest: &DestInfo) -> u32 {
        if dest.is_overloaded() {
            Self::SKIP
        } else {
            dest.weight
        }
    }

    #[inline]
    fn better(a: &u32, b: &u32) -> bool {
        a > b
    }
}

/// The fo scheduler: O(1) decisions from an index kept current in O(log n) per change.
#[derive(Debug)]
pub struct Fo {
    tree: Tournament<FoRank>,
}

indexed_scheduler!(Fo, FoRank, SchedKind::Fo, scan);
