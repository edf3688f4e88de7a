//! ovf – weighted overflow (`ip_vs_ovf.c`, spec §1.13).
//!
//! Destinations that are OVERLOAD, have weight 0, or have more active connections than their
//! weight are skipped; among the rest the highest weight wins, ties to the earliest. Only
//! active connections count (UDP connections are always inactive, so ovf never overflows for
//! UDP).
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::sched::{ovf, DestId, DestInfo};
//!
//! // Spec vector L4: A(w3, act 3), B(w2) -> A; with A at 4 active -> B.
//! let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! let mut dests = vec![DestInfo::new(DestId(1), ip, 80, 3), DestInfo::new(DestId(2), ip, 81, 2)];
//! dests[0].activeconns = 3;
//! assert_eq!(ovf::scan(&dests), Some(0));
//! dests[0].activeconns = 4;
//! assert_eq!(ovf::scan(&dests), Some(1));
//! ```

use super::index::{indexed_scheduler, Rank, Tournament};
use super::{DestInfo, SchedKind};

/// Whether ovf may choose `dest`. `activeconns > weight` compares the kernel's `int`s.
#[inline]
fn usable(dest: &DestInfo) -> bool {
    !(dest.is_overloaded()
        || i64::from(dest.activeconns as i32) > i64::from(dest.weight)
        || dest.weight == 0)
}

/// The kernel's ovf loop, literally.
pub fn scan(dests: &[DestInfo]) -> Option<usize> {
    let mut h: Option<usize> = None;
    let mut hw = 0u32;
    for (i, dest) in dests.iter().enumerate() {
        let w = dest.weight;
        if !usable(dest) {
            continue;
        }
        if h.is_none() || w > hw {
            h = Some(i);
            hw = w;
        }
    }
    h
}

/// ovf's order: higher weight is better, among destinations not over their weight.
#[derive(Clone, Copy, Debug)]
pub struct OvfRank;

impl Rank for OvfRank {
    type Key = u32;

    /// Eligible destinations have a positive weight.
    const SKIP: u32 = 0;

    #[inline]
    fn key(dest: &DestInfo) -> u32 {
        if usable(dest) {
            dest.weight
        } else {
            Self::SKIP
        }
    }

    #[inline]
    fn better(a: &u32, b: &u32) -> bool {
        a > b
    }
}

/// The ovf scheduler: O(1) decisions from an index kept current in O(log n) per change.
#[derive(Debug)]
pub struct Ovf {
    tree: Tournament<OvfRank>,
}

indexed_scheduler!(Ovf, OvfRank, SchedKind::Ovf, scan);
