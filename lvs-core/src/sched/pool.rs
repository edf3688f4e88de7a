//! A scheduler bound to a destination list, kept consistent with it.
//!
//! IPVS keeps each service's real servers in a list where a newly added server goes to the
//! head, and notifies the scheduler of every change. [`Pool`] does both: it owns the
//! [`DestInfo`] list in kernel order and the scheduler, and routes every change through
//! [`Scheduler::update`] or [`Scheduler::counts_changed`], so the two cannot drift apart. The
//! director holds one pool per virtual service; tests and the simulator can use it directly.

use core::net::IpAddr;

use hashbrown::HashMap;

use super::{
    DestChange, DestFlags, DestId, DestInfo, FlowKey, SchedConfig, SchedContext, SchedFlags,
    SchedKind, Scheduler,
};
use crate::time::Instant;

/// A [`Pool`]'s dense position table entry for an identity that is not linked.
const NO_POS: u32 = u32::MAX;

/// Why a destination could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// A destination with that address and port is already in the list (`EEXIST`).
    #[error("destination already exists")]
    Exists,
    /// The scheduler cannot take more destinations (mh: its table size; `EINVAL`).
    #[error("scheduler {0} cannot take more destinations")]
    Full(SchedKind),
}

/// A destination list in kernel order plus the scheduler bound to it.
///
/// ```
/// use lvs_core::sched::{pool::Pool, FlowKey, SchedConfig, SchedContext, SchedFlags, SchedKind};
/// use lvs_core::{Instant, Protocol};
/// use rand::{rngs::SmallRng, SeedableRng};
///
/// let mut pool = Pool::new(SchedKind::Rr, SchedFlags::empty(), &SchedConfig::default());
/// let a = pool.add("10.0.0.1".parse().unwrap(), 80, 1).unwrap();
/// let b = pool.add("10.0.0.2".parse().unwrap(), 80, 1).unwrap();
/// let flow = FlowKey::new(Protocol::Tcp, "192.0.2.1".parse().unwrap(), 40000,
///                         "192.0.2.100".parse().unwrap(), 80);
/// let mut rng = SmallRng::seed_from_u64(1);
/// let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut rng };
/// // b was added last, so it is at the head of the list and rr picks it first.
/// assert_eq!(pool.schedule(&flow, &mut ctx), Some(b));
/// assert_eq!(pool.schedule(&flow, &mut ctx), Some(a));
/// ```
#[derive(Debug)]
pub struct Pool {
    dests: Vec<DestInfo>,
    /// The list position of each linked identity, when `dense` is empty.
    positions: HashMap<DestId, usize>,
    /// The positions as a table indexed by `DestId`, when the linked identities are dense
    /// enough for it (the director's are: it reuses freed identities); `NO_POS` marks an
    /// identity that is not linked. Empty otherwise, and `positions` holds them instead.
    dense: Vec<u32>,
    sched: Box<dyn Scheduler>,
    /// [`Scheduler::watches_counts`] for the current list, asked again whenever the list or
    /// the scheduler changes: counter changes skip the scheduler's call when it is `false`.
    watched: bool,
    flags: SchedFlags,
    config: SchedConfig,
    next_id: u32,
}

impl Pool {
    /// An empty list bound to a new scheduler of `kind`.
    pub fn new(kind: SchedKind, flags: SchedFlags, config: &SchedConfig) -> Self {
        let mut sched = kind.build(flags, config);
        sched.update(&[], DestChange::Init);
        Pool {
            dests: Vec::new(),
            positions: HashMap::new(),
            dense: Vec::new(),
            watched: sched.watches_counts(0),
            sched,
            flags,
            config: *config,
            next_id: 0,
        }
    }

    /// The destinations in kernel list order (index 0 is the head).
    pub fn dests(&self) -> &[DestInfo] {
        &self.dests
    }

    /// The scheduler's algorithm.
    pub fn kind(&self) -> SchedKind {
        self.sched.kind()
    }

    /// The scheduler flags the pool was built with.
    pub fn flags(&self) -> SchedFlags {
        self.flags
    }

    /// The list position of a destination, if it is linked.
    #[inline(always)]
    pub fn position(&self, id: DestId) -> Option<usize> {
        if !self.dense.is_empty() {
            return match self.dense.get(id.0 as usize) {
                Some(&p) if p != NO_POS => Some(p as usize),
                _ => None,
            };
        }
        self.positions.get(&id).copied()
    }

    /// The destination with that identity, if it is linked.
    #[inline]
    pub fn get(&self, id: DestId) -> Option<&DestInfo> {
        self.position(id).map(|p| &self.dests[p])
    }

    /// The identity of the destination with that address and port, if it is linked.
    pub fn find(&self, addr: IpAddr, port: u16) -> Option<DestId> {
        self.dests
            .iter()
            .find(|d| d.addr == addr && d.port == port)
            .map(|d| d.id)
    }

    /// Adds a destination at the head of the list, as `ipvsadm -a` does, with a fresh identity.
    pub fn add(&mut self, addr: IpAddr, port: u16, weight: u32) -> Result<DestId, PoolError> {
        let id = DestId(self.next_id);
        self.insert(DestInfo::new(id, addr, port, weight))?;
        self.next_id += 1;
        Ok(id)
    }

    /// Inserts a destination built by the caller (for example one revived from the trash with
    /// its counters and its old identity) at the head of the list.
    pub fn insert(&mut self, mut dest: DestInfo) -> Result<(), PoolError> {
        if self.find(dest.addr, dest.port).is_some() || self.position(dest.id).is_some() {
            return Err(PoolError::Exists);
        }
        if self.dests.len() >= self.sched.max_dests() {
            return Err(PoolError::Full(self.sched.kind()));
        }
        self.next_id = self.next_id.max(dest.id.0.saturating_add(1));
        dest.flags.set(DestFlags::AVAILABLE, true);
        self.dests.insert(0, dest);
        self.reindex();
        self.sched.update(&self.dests, DestChange::Added { pos: 0 });
        self.watched = self.sched.watches_counts(self.dests.len());
        Ok(())
    }

    /// Unlinks a destination and returns it (AVAILABLE cleared), or `None` if it is not linked.
    pub fn remove(&mut self, id: DestId) -> Option<DestInfo> {
        let pos = self.position(id)?;
        let mut dest = self.dests.remove(pos);
        dest.flags.set(DestFlags::AVAILABLE, false);
        self.reindex();
        self.sched
            .update(&self.dests, DestChange::Removed { pos, id });
        self.watched = self.sched.watches_counts(self.dests.len());
        Some(dest)
    }

    /// Sets a destination's weight (an edit). `last_weight` follows the kernel: it keeps the
    /// most recent non-zero weight. Returns `false` if the destination is not linked.
    pub fn set_weight(&mut self, id: DestId, weight: u32) -> bool {
        self.edit(id, |d| {
            d.weight = weight;
            if weight != 0 {
                d.last_weight = weight;
            }
        })
    }

    /// Edits a destination's configuration and notifies the scheduler as an edit (`upd_dest`).
    /// Returns `false` if the destination is not linked.
    pub fn edit(&mut self, id: DestId, f: impl FnOnce(&mut DestInfo)) -> bool {
        let Some(pos) = self.position(id) else {
            return false;
        };
        f(&mut self.dests[pos]);
        self.dests[pos].flags.set(DestFlags::AVAILABLE, true);
        self.sched.update(&self.dests, DestChange::Edited { pos });
        self.watched = self.sched.watches_counts(self.dests.len());
        true
    }

    /// Changes a destination's live state (connection counters, OVERLOAD) and tells the
    /// scheduler. Returns the value `f` returned, or `None` if the destination is not linked.
    #[inline(always)]
    pub fn update_counts<R>(
        &mut self,
        id: DestId,
        f: impl FnOnce(&mut DestInfo) -> R,
    ) -> Option<R> {
        let pos = self.position(id)?;
        let r = f(&mut self.dests[pos]);
        if self.watched {
            self.sched.counts_changed(&self.dests, pos);
        }
        Some(r)
    }

    /// [`Pool::update_counts`] without telling the scheduler: the caller must call
    /// [`Pool::counts_changed`] for `id` before the next scheduling decision.
    #[inline(always)]
    pub fn update_counts_quietly<R>(
        &mut self,
        id: DestId,
        f: impl FnOnce(&mut DestInfo) -> R,
    ) -> Option<R> {
        let pos = self.position(id)?;
        Some(f(&mut self.dests[pos]))
    }

    /// Tells the scheduler that `id`'s live state changed (after
    /// [`Pool::update_counts_quietly`]); nothing if it is not linked.
    #[inline]
    pub fn counts_changed(&mut self, id: DestId) {
        if !self.watched {
            return;
        }
        if let Some(pos) = self.position(id) {
            self.sched.counts_changed(&self.dests, pos);
        }
    }

    /// Whether the scheduler wants to hear of counter changes ([`Scheduler::watches_counts`]
    /// for the current list): when it does not, [`Pool::update_counts_quietly`] needs no
    /// [`Pool::counts_changed`] after it.
    #[inline]
    pub fn counts_watched(&self) -> bool {
        self.watched
    }

    /// Replaces the scheduler (as `ipvsadm -E` with another `-s` does) and binds it to the
    /// current list.
    pub fn set_scheduler(&mut self, kind: SchedKind, flags: SchedFlags) {
        self.sched = kind.build(flags, &self.config);
        self.flags = flags;
        self.sched.update(&self.dests, DestChange::Init);
        self.watched = self.sched.watches_counts(self.dests.len());
    }

    /// Changes the scheduler flags (`ipvsadm -E` with another `-b` but the same `-s`) without
    /// rebinding: the scheduler keeps its state, as in the kernel ([`Scheduler::set_flags`]).
    pub fn set_flags(&mut self, flags: SchedFlags) {
        self.flags = flags;
        self.sched.set_flags(flags);
        self.watched = self.sched.watches_counts(self.dests.len());
    }

    /// Chooses a destination for a new connection.
    #[inline]
    pub fn schedule(&mut self, flow: &FlowKey, ctx: &mut SchedContext<'_>) -> Option<DestId> {
        let pos = self.sched.schedule(&self.dests, flow, ctx)?;
        debug_assert!(
            pos < self.dests.len(),
            "scheduler returned an out-of-range position"
        );
        self.dests.get(pos).map(|d| d.id)
    }

    /// Whether the scheduler still refers to a destination that left the list
    /// ([`Scheduler::holds`]): its owner must keep it (in the trash) meanwhile.
    pub fn holds(&self, id: DestId) -> bool {
        self.sched.holds(id)
    }

    /// Tells the scheduler that the counters of a destination that left the list (one of this
    /// pool's, now in its owner's trash) changed ([`Scheduler::removed_counts_changed`]).
    pub fn removed_counts_changed(&mut self, dest: &DestInfo) {
        self.sched.removed_counts_changed(dest);
    }

    /// When the scheduler's own timers (lblc / lblcr cache expiry) want to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sched.poll_timeout()
    }

    /// Runs the scheduler's timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.sched.handle_timeout(now)
    }

    fn reindex(&mut self) {
        // A table indexed by identity when it stays small (a few entries per destination),
        // else the map; only one of the two is kept, and an empty table means "use the map".
        self.positions.clear();
        self.dense.clear();
        let max_id = self.dests.iter().map(|d| d.id.0 as usize).max();
        match max_id {
            Some(max_id)
                if max_id < 4 * self.dests.len() + 64 && self.dests.len() < NO_POS as usize =>
            {
                self.dense.resize(max_id + 1, NO_POS);
                for (pos, d) in self.dests.iter().enumerate() {
                    self.dense[d.id.0 as usize] = pos as u32;
                }
            }
            _ => {
                for (pos, d) in self.dests.iter().enumerate() {
                    self.positions.insert(d.id, pos);
                }
            }
        }
    }
}
