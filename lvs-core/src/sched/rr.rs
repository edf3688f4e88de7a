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
    /// One past the cursor: 0 = the list head; `pos + 1` = the destination at `pos` was
    /// chosen last. Kept as the position the next walk starts from, so a decision reads one
    /// word and writes one word.
    next: usize,
}

impl Rr {
    /// A scheduler with its cursor at the list head.
    pub fn new() -> Self {
        Rr { next: 0 }
    }

    /// The cursor: `None` for the list head, else the position of the destination chosen
    /// last.
    pub fn cursor(&self) -> Option<usize> {
        self.next.checked_sub(1)
    }
}

impl Scheduler for Rr {
    fn kind(&self) -> SchedKind {
        SchedKind::Rr
    }

    fn update(&mut self, _dests: &[DestInfo], change: DestChange) {
        self.next = match change {
            DestChange::Init => 0,
            // Insertion at or before the cursor shifts its destination one place down.
            DestChange::Added { pos } if self.next > 0 && pos < self.next => self.next + 1,
            // `ip_vs_rr_del_dest`: deleting the cursor's own destination moves the cursor to
            // its predecessor (the head if it was first); deleting one before it shifts it up.
            // Both are one place back in `next` terms.
            DestChange::Removed { pos, .. } if pos < self.next => self.next - 1,
            _ => self.next,
        };
    }

    fn schedule(
        &mut self,
        dests: &[DestInfo],
        _flow: &FlowKey,
        _ctx: &mut SchedContext<'_>,
    ) -> Option<usize> {
        // A cursor beyond the list (the owner did not report a removal) counts as the head.
        let start = if self.next > dests.len() {
            0
        } else {
            self.next
        };
        if let Some(i) = dests[start..].iter().position(DestInfo::is_eligible) {
            self.next = start + i + 1;
            return Some(start + i);
        }
        if start == 0 {
            return None;
        }
        // Wrap around once, up to and including the cursor's own destination.
        let i = dests[..start].iter().position(DestInfo::is_eligible)?;
        self.next = i + 1;
        Some(i)
    }
}
