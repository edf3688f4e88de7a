//! rr – round robin (`ip_vs_rr.c`, spec §1.1).
//!
//! A cursor points at the destination chosen last, or at the list head before the first
//! decision. A decision walks from the destination after the cursor to the end of the list
//! and, unless the cursor is the head, wraps around once, up to and including the cursor's own
//! destination; the first eligible destination (weight > 0, not OVERLOAD) is chosen and the
//! cursor moves to it.
//!
//! The cursor follows its destination when positions shift: a destination added at or before
//! it (additions go to the head) moves it one place down, and deleting the cursor's own
//! destination moves the cursor to its predecessor (the head if it was first), so the round
//! continues with the destination that followed the deleted one.
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::protocol::Protocol;
//! use lvs_core::sched::{rr::Rr, DestChange, DestId, DestInfo, FlowKey, SchedContext, Scheduler};
//! use lvs_core::time::Instant;
//!
//! let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! // Spec vector R2: list [C, B(0), A] -> C A C A ...
//! let dests: Vec<DestInfo> =
//!     [1, 0, 1].iter().enumerate().map(|(i, &w)| DestInfo::new(DestId(i as u32), ip, 80, w)).collect();
//! let mut rr = Rr::new();
//! rr.update(&dests, DestChange::Init);
//! let flow = FlowKey::new(Protocol::Tcp, ip, 1, ip, 80);
//! # struct Zero;
//! # impl rand_core::RngCore for Zero {
//! #     fn next_u32(&mut self) -> u32 { 0 }
//! #     fn next_u64(&mut self) -> u64 { 0 }
//! #     fn fill_bytes(&mut self, b: &mut [u8]) { b.fill(0) }
//! # }
//! let mut zero = Zero;
//! let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut zero };
//! let picks: Vec<_> = (0..4).map(|_| rr.schedule(&dests, &flow, &mut ctx).unwrap()).collect();
//! assert_eq!(picks, [0, 2, 0, 2]);
//! ```

use super::{DestChange, DestInfo, FlowKey, SchedContext, SchedKind, Scheduler};

/// The rr scheduler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rr {
    /// `None` = the list head; `Some(pos)` = the destination chosen last.
    cursor: Option<usize>,
}

impl Rr {
    /// A scheduler with its cursor at the list head.
    pub fn new() -> Self {
        Rr { cursor: None }
    }

    /// The cursor: `None` for the list head, else the position of the destination chosen
    /// last.
    pub fn cursor(&self) -> Option<usize> {
        self.cursor
    }
}

impl Scheduler for Rr {
    fn kind(&self) -> SchedKind {
        SchedKind::Rr
    }

    fn update(&mut self, _dests: &[DestInfo], change: DestChange) {
        self.cursor = match (change, self.cursor) {
            (DestChange::Init, _) => None,
            // Insertion at or before the cursor shifts its destination one place down.
            (DestChange::Added { pos }, Some(c)) if pos <= c => Some(c + 1),
            // `ip_vs_rr_del_dest`: the cursor's own destination moves it to the predecessor.
            (DestChange::Removed { pos, .. }, Some(c)) if pos == c => c.checked_sub(1),
            (DestChange::Removed { pos, .. }, Some(c)) if pos < c => Some(c - 1),
            (_, cursor) => cursor,
        };
    }

    fn schedule(
        &mut self,
        dests: &[DestInfo],
        _flow: &FlowKey,
        _ctx: &mut SchedContext<'_>,
    ) -> Option<usize> {
        // A cursor beyond the list (the owner did not report a removal) counts as the head.
        let last = self.cursor.filter(|&c| c < dests.len());
        let start = last.map_or(0, |c| c + 1);
        // First pass: after the cursor to the end of the list.
        if let Some(i) = dests[start..].iter().position(DestInfo::is_eligible) {
            self.cursor = Some(start + i);
            return self.cursor;
        }
        // Second pass, only when the cursor is not the head: from the first destination up
        // to and including the cursor's own.
        let last = last?;
        let i = dests[..=last].iter().position(DestInfo::is_eligible)?;
        self.cursor = Some(i);
        self.cursor
    }
}
