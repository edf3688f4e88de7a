//! lblc: locality-based least connection (`ip_vs_lblc.c`, spec §1.7).
//!
//! A cache maps the packet's **destination** address to the destination last chosen for it.
//! A hit is reused while its destination is still in the service (AVAILABLE), has weight > 0
//! and is not overloaded in the lblc sense ([`lblc_overloaded`]; the OVERLOAD *flag* is not
//! checked on a hit, as in the kernel). Otherwise the weighted-least-connection rule picks over
//! the whole service and the entry is (re)written.
//!
//! # Cache, time and garbage collection
//! Entries remember a [`DestId`] (list positions shift), mapped back to a position through a
//! small map rebuilt in [`Scheduler::update`]; an id no longer in the list is not AVAILABLE.
//! `lastuse` is set from `ctx.now` on every lookup. A timer ticks every 60 s
//! ([`Scheduler::poll_timeout`] / [`Scheduler::handle_timeout`]):
//! every 30th tick is a full check that deletes entries idle for at least the expiration
//! (`lblc_expiration`, default 24 h); otherwise, when the table's `entries` counter is above
//! [`LOCALITY_MAX_SIZE`] (16384), up to `(entries − 16384) * 4/3` (at most 8192) entries
//! idle for 6 minutes are reclaimed, bucket by bucket from a rotating rover over the kernel's 1024
//! buckets, exactly as `ip_vs_lblc_check_expire` does. While over-full the tick does not count
//! towards the full check.
//!
//! `entries` is kept as the kernel keeps it, which is not always the number of cached
//! addresses: when lblc replaces an entry (its destination became unusable and another was
//! chosen), the kernel deletes the old entry without decrementing `entries` and counts the new
//! one, so every replacement leaves the counter one higher for the life of the service. After
//! 16384 replacements the table counts as over-full for good: no more full checks, and entries
//! idle for 6 minutes are reclaimed every minute. (lblcr never replaces entries.)
//!
//! The timer is armed the first time the scheduler learns the time: at the first
//! `handle_timeout` (before that, `poll_timeout` asks to be run at once) or the first decision,
//! whichever comes first. The kernel arms it when the scheduler is bound to the service, so an
//! owner should call `handle_timeout(now)` right after binding, as the director does. Each due
//! `handle_timeout` runs one tick and re-arms 60 s after the `now` it was given (the kernel's
//! `mod_timer(jiffies + 60 s)`), so a driver that calls late runs one tick, not the missed ones.
//!
//! # Bound (a documented deviation)
//! The kernel's 16384 is a soft bound, enforced only by the per-minute reclaim, so between ticks
//! its cache can grow without limit. Here the cache also has a hard cap of
//! [`LOCALITY_HARD_CAP`] = 2 × 16384 entries: at the cap, a decision for a new address still
//! returns the chosen destination but does not cache it. That is the path the kernel itself
//! takes when it cannot allocate an entry ("if we fail to create a cache entry, we'll just use
//! the valid dest"), and each refusal is counted ([`LocalityStats::refused`]).

use core::net::IpAddr;

use hashbrown::HashMap;

use super::hash::{addr_fold, bucket};
use super::{
    DestChange, DestId, DestInfo, FlowKey, HashVariant, SchedConfig, SchedContext, SchedKind,
    Scheduler,
};
use crate::time::{Duration, Instant};

/// `CHECK_EXPIRE_INTERVAL`: the garbage-collection tick.
pub const CHECK_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
/// `ENTRY_TIMEOUT`: idle time after which an over-full cache may reclaim an entry.
pub const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// `COUNT_FOR_FULL_EXPIRATION`: every 30th tick is a full expiration check.
pub const COUNT_FOR_FULL_EXPIRATION: u32 = 30;
/// `IP_VS_LBLC_TAB_BITS` / `IP_VS_LBLCR_TAB_BITS` (default 10).
pub const LOCALITY_TAB_BITS: u32 = 10;
/// Buckets of the kernel's cache table (1024).
pub const LOCALITY_TAB_SIZE: usize = 1 << LOCALITY_TAB_BITS;
/// `max_size` = 1024 × 16: above this the per-tick reclaim runs.
pub const LOCALITY_MAX_SIZE: usize = LOCALITY_TAB_SIZE * 16;
/// The hard cap on cached addresses (2 × `max_size`), see the module docs.
pub const LOCALITY_HARD_CAP: usize = 2 * LOCALITY_MAX_SIZE;

/// What the cache did, counted since the scheduler was bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalityStats {
    /// Decisions that reused a cached destination.
    pub hits: u64,
    /// Decisions that ran the weighted-least-connection rule (no entry, or an unusable one).
    pub reschedules: u64,
    /// Addresses not cached because the hard cap was reached (lblcr: also set insertions
    /// refused because the member budget was used up).
    pub refused: u64,
    /// Entries deleted by a full expiration check.
    pub expired: u64,
    /// Entries deleted by the over-full reclaim.
    pub reclaimed: u64,
}

/// An entry of a locality cache: it knows when it was last used.
pub(crate) trait CacheEntry {
    fn lastuse(&self) -> Instant;
}

/// The table and timer shared by lblc and lblcr (`struct ip_vs_lblc_table`).
#[derive(Clone, Debug)]
pub(crate) struct LocalityCache<E> {
    pub(crate) map: HashMap<IpAddr, E>,
    /// The kernel's `tbl->entries`: incremented for every entry hashed in, decremented for
    /// every entry the timer deletes. lblc's replacement of an entry deletes the old one
    /// without decrementing it (`ip_vs_lblc_new` → `ip_vs_lblc_del`), so it can exceed the
    /// number of entries; the tick's over-full test reads this counter, as the kernel's does.
    entries: u64,
    hash: HashVariant,
    pub(crate) expiration: Duration,
    counter: u32,
    rover: u32,
    next_tick: Option<Instant>,
    pub(crate) stats: LocalityStats,
}

impl<E: CacheEntry> LocalityCache<E> {
    pub(crate) fn new(hash: HashVariant, expiration: Duration) -> Self {
        LocalityCache {
            map: HashMap::new(),
            entries: 0,
            hash,
            expiration,
            counter: 1,
            rover: 0,
            next_tick: None,
            stats: LocalityStats::default(),
        }
    }

    /// `init_service`: an empty table, counter 1, rover 0, timer not yet armed.
    pub(crate) fn reset(&mut self) {
        self.map.clear();
        self.entries = 0;
        self.counter = 1;
        self.rover = 0;
        self.next_tick = None;
        self.stats = LocalityStats::default();
    }

    /// The kernel's bucket of a cached address (only the over-full reclaim observes it).
    pub(crate) fn bucket_of(&self, addr: IpAddr) -> usize {
        bucket(self.hash, addr_fold(addr), LOCALITY_TAB_BITS) as usize
    }

    /// Whether a new address may be cached now.
    pub(crate) fn has_room(&self) -> bool {
        self.map.len() < LOCALITY_HARD_CAP
    }

    /// Counts an entry hashed into the table (`ip_vs_lblc_hash` / `ip_vs_lblcr_hash`):
    /// a new one, or (lblc) the fresh entry that replaces an old one.
    pub(crate) fn count_hashed(&mut self) {
        self.entries += 1;
    }

    /// Arms the timer the first time the time is known.
    pub(crate) fn arm(&mut self, now: Instant) {
        if self.next_tick.is_none() {
            self.next_tick = Some(now + CHECK_EXPIRE_INTERVAL);
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_tick.unwrap_or(Instant::ZERO))
    }

    /// Runs the tick if due; returns whether it ran.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> bool {
        match self.next_tick {
            None => {
                self.arm(now);
                false
            }
            Some(t) if now < t => false,
            Some(_) => {
                self.tick(now);
                // mod_timer(jiffies + CHECK_EXPIRE_INTERVAL): relative to when it ran.
                self.next_tick = Some(now + CHECK_EXPIRE_INTERVAL);
                true
            }
        }
    }

    /// `ip_vs_lblc_check_expire` / `ip_vs_lblcr_check_expire`, minus re-arming.
    fn tick(&mut self, now: Instant) {
        if self.counter % COUNT_FOR_FULL_EXPIRATION == 0 {
            // Full check: every entry with now >= lastuse + expiration goes. It walks all
            // 1024 buckets from rover + 1, so the rover ends where it started.
            let exp = self.expiration;
            let before = self.map.len();
            self.map.retain(|_, e| now < e.lastuse() + exp);
            let deleted = (before - self.map.len()) as u64;
            self.entries = self.entries.saturating_sub(deleted);
            self.stats.expired += deleted;
            self.counter = 1;
            return;
        }
        // The kernel's counter, not the number of entries (see `entries`).
        let entries = self.entries;
        if entries <= LOCALITY_MAX_SIZE as u64 {
            self.counter += 1;
            return;
        }
        // Over-full: goal = (entries − max_size) * 4/3, capped at max_size / 2.
        let max = LOCALITY_MAX_SIZE as u64;
        let mut goal = ((entries - max) * 4 / 3).min(max / 2) as i64;
        // The kernel deletes every entry idle >= ENTRY_TIMEOUT in each bucket it visits (from
        // rover + 1 on) and stops after the bucket that brings goal to <= 0. Which entries go
        // depends only on the set of visited buckets, so count per bucket first, then delete.
        let idle = |e: &E| now >= e.lastuse() + ENTRY_TIMEOUT;
        let mut per_bucket = [0u32; LOCALITY_TAB_SIZE];
        for (addr, e) in self.map.iter() {
            if idle(e) {
                per_bucket[self.bucket_of(*addr)] += 1;
            }
        }
        let mask = LOCALITY_TAB_SIZE as u32 - 1;
        let mut visited = [false; LOCALITY_TAB_SIZE];
        let mut j = self.rover;
        for _ in 0..LOCALITY_TAB_SIZE {
            j = (j + 1) & mask;
            visited[j as usize] = true;
            goal -= per_bucket[j as usize] as i64;
            if goal <= 0 {
                break;
            }
        }
        self.rover = j;
        let (hash, before) = (self.hash, self.map.len());
        self.map.retain(|addr, e| {
            let b = bucket(hash, addr_fold(*addr), LOCALITY_TAB_BITS) as usize;
            !(visited[b] && idle(e))
        });
        let deleted = (before - self.map.len()) as u64;
        self.entries = self.entries.saturating_sub(deleted);
        self.stats.reclaimed += deleted;
    }

    #[cfg(test)]
    pub(crate) fn rover(&self) -> u32 {
        self.rover
    }
}

/// Position lookup for remembered [`DestId`]s, rebuilt in `update`.
#[derive(Clone, Debug, Default)]
pub(crate) struct IdMap {
    pos: HashMap<DestId, u32>,
}

impl IdMap {
    pub(crate) fn rebuild(&mut self, dests: &[DestInfo]) {
        self.pos.clear();
        for (i, d) in dests.iter().enumerate() {
            self.pos.insert(d.id, i as u32);
        }
    }

    /// The current position of `id`, if it is still in the list (checked against `dests`, so a
    /// caller that skipped an `update` gets "not available" rather than a wrong destination).
    #[inline]
    pub(crate) fn get(&self, id: DestId, dests: &[DestInfo]) -> Option<usize> {
        let p = *self.pos.get(&id)? as usize;
        (dests.get(p)?.id == id).then_some(p)
    }
}

/// The weighted-least-connection rule lblc and lblcr fall back to (`__ip_vs_lblc_schedule`):
/// the initial best is the first non-OVERLOAD destination with weight > 0; a later
/// non-OVERLOAD destination `d` replaces the best `b` when
/// `overhead(b) * weight(d) > overhead(d) * weight(b)` (strict, so ties keep the earlier one).
///
/// This is wlc's loop ([`wlc::scan`](super::wlc::scan)), with the kernel's `int` overhead and
/// 64-bit products.
///
/// ```
/// use lvs_core::sched::{lblc::wlc_pick, DestId, DestInfo};
/// let ip = "10.0.0.1".parse().unwrap();
/// let mut a = DestInfo::new(DestId(1), ip, 80, 1);
/// a.activeconns = 1; // overhead 256
/// let mut b = DestInfo::new(DestId(2), ip, 80, 2);
/// b.activeconns = 1;
/// b.inactconns = 10; // overhead 266
/// assert_eq!(wlc_pick(&[a, b]), Some(1)); // 256 * 2 > 266 * 1 (spec vector L1)
/// ```
pub fn wlc_pick(dests: &[DestInfo]) -> Option<usize> {
    super::wlc::scan(dests)
}

/// lblc's "overloaded" (`is_overloaded` of `ip_vs_lblc.c`, distinct from the OVERLOAD flag):
/// `dests[pos]` has more active connections than its weight **and** some destination of the
/// service (any flags or weight) has `activeconns * 2 < weight`. Both tests compare the
/// kernel's `int`s (`activeconns * 2` wraps).
///
/// ```
/// use lvs_core::sched::{lblc::lblc_overloaded, DestId, DestInfo};
/// let ip = "10.0.0.1".parse().unwrap();
/// let mut a = DestInfo::new(DestId(1), ip, 80, 2);
/// a.activeconns = 3;
/// let mut b = DestInfo::new(DestId(2), ip, 80, 4);
/// b.activeconns = 1;
/// assert!(lblc_overloaded(&[a.clone(), b.clone()], 0)); // spec vector L5
/// b.activeconns = 2; // 4 < 4 is false: nobody is less loaded
/// assert!(!lblc_overloaded(&[a, b], 0));
/// ```
///
/// # Panics
/// If `pos` is out of range (a programmer error).
pub fn lblc_overloaded(dests: &[DestInfo], pos: usize) -> bool {
    let d = &dests[pos];
    i64::from(d.activeconns as i32) > i64::from(d.weight)
        && dests
            .iter()
            .any(|x| i64::from((x.activeconns as i32).wrapping_mul(2)) < i64::from(x.weight))
}

/// One lblc cache entry: the destination and when the address was last looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LblcEntry {
    dest: DestId,
    lastuse: Instant,
}

impl CacheEntry for LblcEntry {
    fn lastuse(&self) -> Instant {
        self.lastuse
    }
}

/// The locality-based least-connection scheduler.
///
/// ```
/// use lvs_core::sched::{lblc::Lblc, DestChange, DestId, DestInfo, FlowKey, SchedConfig,
///                       SchedContext, Scheduler};
/// use lvs_core::{Instant, Protocol};
/// let ip = |s: &str| s.parse().unwrap();
/// let mut dests = vec![
///     DestInfo::new(DestId(2), ip("10.0.0.2"), 3128, 1),
///     DestInfo::new(DestId(1), ip("10.0.0.1"), 3128, 1),
/// ];
/// let mut lblc = Lblc::new(&SchedConfig::default());
/// lblc.update(&dests, DestChange::Init);
/// let mut rng = rand_pcg::Pcg32::new(1, 1);
/// let mut ctx = SchedContext { now: Instant::from_secs(1), rng: &mut rng };
/// let flow = FlowKey::new(Protocol::Tcp, ip("192.0.2.7"), 5555, ip("198.51.100.1"), 80);
/// assert_eq!(lblc.schedule(&dests, &flow, &mut ctx), Some(0));
/// // The first dest gets busier, but the cached choice sticks for that destination address.
/// dests[0].activeconns = 1;
/// assert_eq!(lblc.schedule(&dests, &flow, &mut ctx), Some(0));
/// assert_eq!(lblc.cache_len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct Lblc {
    cache: LocalityCache<LblcEntry>,
    ids: IdMap,
}

impl Lblc {
    /// An lblc scheduler with the configured bucket hash and `lblc_expiration`.
    pub fn new(config: &SchedConfig) -> Self {
        Lblc {
            cache: LocalityCache::new(config.hash, config.lblc_expiration),
            ids: IdMap::default(),
        }
    }

    /// Cached destination addresses.
    pub fn cache_len(&self) -> usize {
        self.cache.map.len()
    }

    /// The destination cached for a packet destination address and when it was last used.
    pub fn cached(&self, daddr: IpAddr) -> Option<(DestId, Instant)> {
        self.cache.map.get(&daddr).map(|e| (e.dest, e.lastuse))
    }

    /// The cache's counters.
    pub fn stats(&self) -> LocalityStats {
        self.cache.stats
    }
}

impl Scheduler for Lblc {
    fn kind(&self) -> SchedKind {
        SchedKind::Lblc
    }

    fn update(&mut self, dests: &[DestInfo], change: DestChange) {
        if change == DestChange::Init {
            self.cache.reset();
        }
        // lblc has no dest callbacks in the kernel; entries keep pointing at their dest, and a
        // removed one stops being AVAILABLE. Only the id → position map follows the list.
        self.ids.rebuild(dests);
    }

    fn schedule(
        &mut self,
        dests: &[DestInfo],
        flow: &FlowKey,
        ctx: &mut SchedContext<'_>,
    ) -> Option<usize> {
        let now = ctx.now;
        self.cache.arm(now);
        let key = flow.daddr;
        if let Some(en) = self.cache.map.get_mut(&key) {
            en.lastuse = now;
            if let Some(pos) = self.ids.get(en.dest, dests) {
                let d = &dests[pos];
                // AVAILABLE, weight > 0, not lblc-overloaded; the OVERLOAD flag is not checked.
                if d.is_available() && d.weight > 0 && !lblc_overloaded(dests, pos) {
                    self.cache.stats.hits += 1;
                    return Some(pos);
                }
            }
        }
        self.cache.stats.reschedules += 1;
        let pos = wlc_pick(dests)?;
        let id = dests[pos].id;
        // ip_vs_lblc_new: keep an entry that already names this dest, else replace it (a fresh
        // entry, lastuse = now; the kernel counts it in `entries` without uncounting the old
        // one), else create one.
        match self.cache.map.get_mut(&key) {
            Some(en) => {
                if en.dest != id {
                    *en = LblcEntry {
                        dest: id,
                        lastuse: now,
                    };
                    self.cache.count_hashed();
                }
            }
            None => {
                if self.cache.has_room() {
                    self.cache.map.insert(
                        key,
                        LblcEntry {
                            dest: id,
                            lastuse: now,
                        },
                    );
                    self.cache.count_hashed();
                } else {
                    self.cache.stats.refused += 1;
                }
            }
        }
        Some(pos)
    }

    fn holds(&self, id: DestId) -> bool {
        self.cache.map.values().any(|e| e.dest == id)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.cache.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.cache.handle_timeout(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol;

    fn dest(id: u32, w: u32) -> DestInfo {
        DestInfo::new(DestId(id), IpAddr::from([10, 0, 0, id as u8]), 80, w)
    }

    fn flow(daddr: IpAddr) -> FlowKey {
        FlowKey::new(Protocol::Tcp, IpAddr::from([192, 0, 2, 1]), 1234, daddr, 80)
    }

    #[test]
    fn overfull_reclaim_follows_buckets_and_rover() {
        let dests = vec![dest(1, 1)];
        let mut s = Lblc::new(&SchedConfig::default());
        s.update(&dests, DestChange::Init);
        let mut rng = rand_pcg::Pcg32::new(1, 1);
        let t0 = Instant::from_secs(0);
        // 16384 + 300 entries, all used at t0.
        let n = LOCALITY_MAX_SIZE as u32 + 300;
        for i in 0..n {
            let mut ctx = SchedContext {
                now: t0,
                rng: &mut rng,
            };
            let a = IpAddr::from((0x0B00_0000u32 + i).to_be_bytes());
            assert_eq!(s.schedule(&dests, &flow(a), &mut ctx), Some(0));
        }
        assert_eq!(s.cache_len(), n as usize);
        // Tick at 60 s: nothing idle for 6 min yet, so the reclaim walks every bucket and
        // deletes nothing; the rover comes back where it was.
        assert_eq!(s.poll_timeout(), Some(t0 + CHECK_EXPIRE_INTERVAL));
        s.handle_timeout(Instant::from_secs(60));
        assert_eq!(s.cache_len(), n as usize);
        assert_eq!(s.cache.rover(), 0);
        // Ticks until 7 min: the first tick past 6 min idle reclaims goal = 300*4/3 = 400
        // entries or a little more (whole buckets), starting at bucket 1.
        let mut t = 60;
        while s.cache_len() == n as usize {
            t += 60;
            s.handle_timeout(Instant::from_secs(t));
        }
        assert_eq!(t, 360);
        let deleted = n as usize - s.cache_len();
        assert!(deleted >= 400, "{deleted}");
        // Exactly the entries in buckets 1..=rover went.
        let rover = s.cache.rover() as usize;
        let mut expect = 0;
        for i in 0..n {
            let a = IpAddr::from((0x0B00_0000u32 + i).to_be_bytes());
            let b = s.cache.bucket_of(a);
            let gone = (1..=rover).contains(&b);
            assert_eq!(s.cached(a).is_none(), gone, "bucket {b} rover {rover}");
            expect += gone as usize;
        }
        assert_eq!(deleted, expect);
        // And not more than one bucket beyond the goal: without the last bucket it was < 400.
        let last_bucket = (0..n)
            .map(|i| IpAddr::from((0x0B00_0000u32 + i).to_be_bytes()))
            .filter(|a| s.cache.bucket_of(*a) == rover)
            .count();
        assert!(deleted - last_bucket < 400);
        assert_eq!(s.stats().reclaimed, deleted as u64);
    }

    #[test]
    fn hard_cap_refuses_new_addresses() {
        let dests = vec![dest(1, 1)];
        let mut s = Lblc::new(&SchedConfig::default());
        s.update(&dests, DestChange::Init);
        let mut rng = rand_pcg::Pcg32::new(1, 1);
        for i in 0..(LOCALITY_HARD_CAP as u32 + 10) {
            let mut ctx = SchedContext {
                now: Instant::ZERO,
                rng: &mut rng,
            };
            let a = IpAddr::from((0x0C00_0000u32 + i).to_be_bytes());
            // Still scheduled, just not cached.
            assert_eq!(s.schedule(&dests, &flow(a), &mut ctx), Some(0));
        }
        assert_eq!(s.cache_len(), LOCALITY_HARD_CAP);
        assert_eq!(s.stats().refused, 10);
    }
}
