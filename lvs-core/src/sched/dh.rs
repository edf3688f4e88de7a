//! dh: destination hashing (`ip_vs_dh.c`, spec §1.9).
//!
//! A 256-bucket table maps the hash of the packet's destination address to a destination.
//! Buckets are dealt round-robin over the destination list (bucket `i` → `list[i mod n]`),
//! weights ignored, on bind, add and delete; an edit does not re-lay the table (the kernel's dh
//! has no `upd_dest` callback). A decision is one hash and one table read: the bucket's
//! destination if it is AVAILABLE, has weight > 0 and is not OVERLOAD, else no destination
//! (dh has no fallback).

use super::hash::{addr_fold, bucket};
use super::{DestChange, DestInfo, FlowKey, HashVariant, SchedContext, SchedKind, Scheduler};

/// `IP_VS_DH_TAB_BITS` (`CONFIG_IP_VS_DH_TAB_BITS`, default 8).
pub const DH_TAB_BITS: u32 = 8;
/// `IP_VS_DH_TAB_SIZE`: 256 buckets.
pub const DH_TAB_SIZE: usize = 1 << DH_TAB_BITS;

/// Marks an empty bucket in a position table.
pub(crate) const EMPTY: u32 = u32::MAX;

/// The destination-hashing scheduler.
///
/// ```
/// use lvs_core::sched::{dh::Dh, DestChange, DestId, DestInfo, FlowKey, HashVariant,
///                       SchedContext, Scheduler};
/// use lvs_core::{Instant, Protocol};
/// let ip = |s: &str| s.parse().unwrap();
/// // ipvsadm -a A, B, C gives list order [C, B, A].
/// let dests = vec![
///     DestInfo::new(DestId(3), ip("10.0.0.3"), 80, 1),
///     DestInfo::new(DestId(2), ip("10.0.0.2"), 80, 1),
///     DestInfo::new(DestId(1), ip("10.0.0.1"), 80, 1),
/// ];
/// let mut dh = Dh::new(HashVariant::Current);
/// dh.update(&dests, DestChange::Init);
/// // Destination 192.168.1.10 hashes to bucket 248; 248 mod 3 = 2 → A (spec vector H3).
/// let flow = FlowKey::new(Protocol::Tcp, ip("1.2.3.4"), 1000, ip("192.168.1.10"), 80);
/// let mut rng = rand_pcg::Pcg32::new(1, 1);
/// let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut rng };
/// assert_eq!(dh.schedule(&dests, &flow, &mut ctx), Some(2));
/// ```
#[derive(Clone, Debug)]
pub struct Dh {
    hash: HashVariant,
    /// Bucket → list position, [`EMPTY`] when the list is empty.
    table: [u32; DH_TAB_SIZE],
}

impl Dh {
    /// A dh scheduler using the given bucket hash generation. Bind it with
    /// `update(dests, DestChange::Init)`.
    pub fn new(hash: HashVariant) -> Self {
        Dh {
            hash,
            table: [EMPTY; DH_TAB_SIZE],
        }
    }

    /// The list position each bucket maps to (`None` for an empty bucket).
    pub fn buckets(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        self.table
            .iter()
            .map(|&p| (p != EMPTY).then_some(p as usize))
    }

    /// The bucket of a destination address.
    #[inline]
    pub fn bucket_of(&self, daddr: core::net::IpAddr) -> usize {
        bucket(self.hash, addr_fold(daddr), DH_TAB_BITS) as usize
    }

    /// `ip_vs_dh_reassign`: bucket `i` gets list position `i mod n`.
    fn reassign(&mut self, n: usize) {
        for (i, slot) in self.table.iter_mut().enumerate() {
            *slot = if n == 0 { EMPTY } else { (i % n) as u32 };
        }
    }
}

impl Scheduler for Dh {
    fn kind(&self) -> SchedKind {
        SchedKind::Dh
    }

    fn update(&mut self, dests: &[DestInfo], change: DestChange) {
        match change {
            DestChange::Init | DestChange::Added { .. } | DestChange::Removed { .. } => {
                self.reassign(dests.len())
            }
            // dh ignores weights and has no upd_dest callback: the table stays as it was
            // (positions do not move on an edit, so it stays valid).
            DestChange::Edited { .. } => {}
        }
    }

    fn schedule(
        &mut self,
        dests: &[DestInfo],
        flow: &FlowKey,
        _ctx: &mut SchedContext<'_>,
    ) -> Option<usize> {
        let pos = self.table[self.bucket_of(flow.daddr)];
        let d = dests.get(pos as usize)?;
        (d.is_available() && d.weight > 0 && !d.is_overloaded()).then_some(pos as usize)
    }
}
