//! lblcr: locality-based least connection with replication (`ip_vs_lblcr.c`, spec §1.8).
//!
//! Like [lblc](super::lblc), keyed by the packet's destination address, but each entry holds a
//! **set** of destinations (newest first) and the set's `lastmod`:
//!
//! 1. on a hit (`lastuse = now`), `set_min` picks the weighted-least-connection member among
//!    those that are AVAILABLE, have weight > 0 and are not OVERLOAD;
//! 2. if the set has more than one member and `now > lastmod + lblcr_expiration`, `set_max`
//!    (the member with the highest weighted overhead among weight > 0 members, ties → first) is
//!    erased (`lastmod = now`) — at most one per decision, and possibly the member step 1 chose,
//!    which is still returned by this decision, as in the kernel;
//! 3. the step-1 member is returned unless there is none or it is lblc-overloaded
//!    ([`lblc_overloaded`]);
//! 4. otherwise the weighted-least-connection rule picks over the service and the choice joins
//!    the set (at the head, unless already a member; `lastmod = now`).
//!
//! A miss picks with weighted least connection and creates a one-member set.
//!
//! Garbage collection, the timer and the cache bound are those of lblc (see the
//! [lblc module docs](super::lblc)), with `lblcr_expiration`.
//!
//! # Removed destinations
//! Sets remember [`DestId`]s. A member that left the service stays in its set, as the kernel's
//! set keeps its reference to the destination in the trash: it counts towards the set size, is
//! never chosen by `set_min` (not AVAILABLE), and `set_max` still sees it with its weight and
//! its live overhead, as the kernel sees the destination in the trash: the snapshot taken at
//! removal is kept current by [`Scheduler::removed_counts_changed`], which the owner calls as
//! the removed destination's connections expire (an owner that does not keeps the values of
//! the removal). If the destination comes back with the same id, it is a live member again,
//! as a destination restored from the trash is in the kernel.
//!
//! # Bound
//! Besides the entry cap of lblc, all sets together hold at most [`LBLCR_MEMBER_BUDGET`]
//! members; past it an insertion is refused and counted, which is what the kernel does when it
//! cannot allocate a set element (the chosen destination is still returned).

use core::net::IpAddr;

use hashbrown::HashMap;

use super::lblc::{lblc_overloaded, wlc_pick, CacheEntry, IdMap, LocalityCache, LocalityStats};
use super::{
    DestChange, DestId, DestInfo, FlowKey, SchedConfig, SchedContext, SchedKind, Scheduler,
};
use crate::time::Instant;

/// The most set members all lblcr entries may hold together (4 per entry at the entry cap).
pub const LBLCR_MEMBER_BUDGET: usize = 4 * super::lblc::LOCALITY_HARD_CAP;

/// One lblcr cache entry (`struct ip_vs_lblcr_entry` with its `ip_vs_dest_set`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LblcrEntry {
    /// Members, head (newest) first.
    set: Vec<DestId>,
    lastmod: Instant,
    lastuse: Instant,
}

impl CacheEntry for LblcrEntry {
    fn lastuse(&self) -> Instant {
        self.lastuse
    }
}

/// What `set_max` knows about a member that left the service: weight and overhead at removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Departed {
    weight: u32,
    overhead: i32,
}

/// The locality-based least-connection scheduler with replication.
///
/// ```
/// use lvs_core::sched::{lblcr::Lblcr, DestChange, DestId, DestInfo, FlowKey, SchedConfig,
///                       SchedContext, Scheduler};
/// use lvs_core::{Instant, Protocol};
/// let ip = |s: &str| s.parse().unwrap();
/// let mut dests = vec![
///     DestInfo::new(DestId(2), ip("10.0.0.2"), 3128, 1),
///     DestInfo::new(DestId(1), ip("10.0.0.1"), 3128, 1),
/// ];
/// let mut lblcr = Lblcr::new(&SchedConfig::default());
/// lblcr.update(&dests, DestChange::Init);
/// let mut rng = rand_pcg::Pcg32::new(1, 1);
/// let mut ctx = SchedContext { now: Instant::from_secs(1), rng: &mut rng };
/// let daddr = ip("198.51.100.1");
/// let flow = FlowKey::new(Protocol::Tcp, ip("192.0.2.7"), 5555, daddr, 80);
/// assert_eq!(lblcr.schedule(&dests, &flow, &mut ctx), Some(0));
/// // The member is lblc-overloaded (2 active > weight 1, and the other dest is idle):
/// // the other dest is picked and joins the set.
/// dests[0].activeconns = 2;
/// assert_eq!(lblcr.schedule(&dests, &flow, &mut ctx), Some(1));
/// assert_eq!(lblcr.cached_set(daddr), Some(vec![DestId(1), DestId(2)]));
/// ```
#[derive(Clone, Debug)]
pub struct Lblcr {
    cache: LocalityCache<LblcrEntry>,
    ids: IdMap,
    /// Weight and overhead per list position, refreshed in `update` and `counts_changed`, so
    /// that a removed destination's last values are known.
    known: Vec<(DestId, Departed)>,
    departed: HashMap<DestId, Departed>,
    members: usize,
}

impl Lblcr {
    /// An lblcr scheduler with the configured bucket hash and `lblcr_expiration`.
    pub fn new(config: &SchedConfig) -> Self {
        Lblcr {
            cache: LocalityCache::new(config.hash, config.lblcr_expiration),
            ids: IdMap::default(),
            known: Vec::new(),
            departed: HashMap::new(),
            members: 0,
        }
    }

    /// Cached destination addresses.
    pub fn cache_len(&self) -> usize {
        self.cache.map.len()
    }

    /// The set cached for a packet destination address, newest member first.
    pub fn cached_set(&self, daddr: IpAddr) -> Option<Vec<DestId>> {
        self.cache.map.get(&daddr).map(|e| e.set.clone())
    }

    /// `(lastuse, lastmod)` of the entry for a packet destination address.
    pub fn cached_times(&self, daddr: IpAddr) -> Option<(Instant, Instant)> {
        self.cache.map.get(&daddr).map(|e| (e.lastuse, e.lastmod))
    }

    /// The cache's counters.
    pub fn stats(&self) -> LocalityStats {
        self.cache.stats
    }

    fn snapshot(d: &DestInfo) -> (DestId, Departed) {
        (
            d.id,
            Departed {
                weight: d.weight,
                overhead: d.overhead(),
            },
        )
    }

    /// Drops departed snapshots no set refers to any more, and recounts members.
    fn prune(&mut self) {
        let mut members = 0;
        let mut referenced = HashMap::new();
        for e in self.cache.map.values() {
            members += e.set.len();
            if !self.departed.is_empty() {
                for id in &e.set {
                    if self.departed.contains_key(id) {
                        referenced.insert(*id, ());
                    }
                }
            }
        }
        self.members = members;
        self.departed.retain(|id, _| referenced.contains_key(id));
    }
}

/// `ip_vs_dest_set_min`: index into `dests` of the weighted-least-connection member (the
/// kernel's `int` overhead, 64-bit products).
fn set_min(set: &[DestId], dests: &[DestInfo], ids: &IdMap) -> Option<usize> {
    let mut least: Option<(usize, i64, i64)> = None;
    for &id in set {
        // A member that left the service is not AVAILABLE: never chosen.
        let Some(pos) = ids.get(id, dests) else {
            continue;
        };
        let d = &dests[pos];
        if d.is_overloaded() || !d.is_available() {
            continue;
        }
        let (doh, dw) = (i64::from(d.overhead()), i64::from(d.weight));
        match least {
            None => {
                if d.weight > 0 {
                    least = Some((pos, doh, dw));
                }
            }
            Some((_, loh, lw)) => {
                if loh * dw > doh * lw {
                    least = Some((pos, doh, dw));
                }
            }
        }
    }
    least.map(|(p, _, _)| p)
}

/// `ip_vs_dest_set_max`: index into the **set** of the weighted-most-loaded member with
/// weight > 0 (no OVERLOAD or AVAILABLE test, as in the kernel).
fn set_max(
    set: &[DestId],
    dests: &[DestInfo],
    ids: &IdMap,
    departed: &HashMap<DestId, Departed>,
) -> Option<usize> {
    let mut most: Option<(usize, i64, i64)> = None;
    for (i, &id) in set.iter().enumerate() {
        let (w, oh) = match ids.get(id, dests) {
            Some(pos) => (dests[pos].weight, dests[pos].overhead()),
            None => match departed.get(&id) {
                Some(d) => (d.weight, d.overhead),
                // Unknown: treated as weight 0, never the most loaded.
                None => (0, 0),
            },
        };
        if w == 0 {
            continue;
        }
        let (doh, dw) = (i64::from(oh), i64::from(w));
        match most {
            None => most = Some((i, doh, dw)),
            Some((_, moh, mw)) => {
                // moh/mw < doh/dw
                if moh * dw < doh * mw {
                    most = Some((i, doh, dw));
                }
            }
        }
    }
    most.map(|(i, _, _)| i)
}

impl Scheduler for Lblcr {
    fn kind(&self) -> SchedKind {
        SchedKind::Lblcr
    }

    fn update(&mut self, dests: &[DestInfo], change: DestChange) {
        match change {
            DestChange::Init => {
                self.cache.reset();
                self.departed.clear();
                self.members = 0;
            }
            DestChange::Removed { pos, id } => {
                let snap = self
                    .known
                    .get(pos)
                    .filter(|(kid, _)| *kid == id)
                    .or_else(|| self.known.iter().find(|(kid, _)| *kid == id))
                    .map(|(_, d)| *d);
                // Only remember it if some set refers to it; bounded by the member budget.
                if let Some(snap) = snap {
                    let referenced = self.cache.map.values().any(|e| e.set.contains(&id));
                    if referenced {
                        self.departed.insert(id, snap);
                    }
                }
            }
            DestChange::Added { .. } | DestChange::Edited { .. } => {}
        }
        self.ids.rebuild(dests);
        self.known.clear();
        self.known.extend(dests.iter().map(Self::snapshot));
        // A destination back in the list (same id) is live again.
        if !self.departed.is_empty() {
            for d in dests {
                self.departed.remove(&d.id);
            }
        }
    }

    fn counts_changed(&mut self, dests: &[DestInfo], pos: usize) {
        if let (Some(k), Some(d)) = (self.known.get_mut(pos), dests.get(pos)) {
            *k = Self::snapshot(d);
        }
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
        let expiration = self.cache.expiration;
        if let Some(en) = self.cache.map.get_mut(&key) {
            en.lastuse = now;
            let dest = set_min(&en.set, dests, &self.ids);
            // More than one member and the set unchanged for longer than the expiration:
            // drop the most loaded member.
            if en.set.len() > 1 && now > en.lastmod + expiration {
                if let Some(i) = set_max(&en.set, dests, &self.ids, &self.departed) {
                    en.set.remove(i);
                    en.lastmod = now;
                    self.members -= 1;
                }
            }
            if let Some(pos) = dest {
                if !lblc_overloaded(dests, pos) {
                    self.cache.stats.hits += 1;
                    return Some(pos);
                }
            }
            self.cache.stats.reschedules += 1;
            let pos = wlc_pick(dests)?;
            let id = dests[pos].id;
            if !en.set.contains(&id) {
                if self.members < LBLCR_MEMBER_BUDGET {
                    en.set.insert(0, id);
                    en.lastmod = now;
                    self.members += 1;
                } else {
                    self.cache.stats.refused += 1;
                }
            }
            return Some(pos);
        }
        self.cache.stats.reschedules += 1;
        let pos = wlc_pick(dests)?;
        if self.cache.has_room() && self.members < LBLCR_MEMBER_BUDGET {
            let entry = LblcrEntry {
                set: vec![dests[pos].id],
                lastmod: now,
                lastuse: now,
            };
            self.cache.map.insert(key, entry);
            self.cache.count_hashed();
            self.members += 1;
        } else {
            self.cache.stats.refused += 1;
        }
        Some(pos)
    }

    fn holds(&self, id: DestId) -> bool {
        self.cache.map.values().any(|e| e.set.contains(&id))
    }

    fn removed_counts_changed(&mut self, dest: &DestInfo) {
        if let Some(d) = self.departed.get_mut(&dest.id) {
            *d = Self::snapshot(dest).1;
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.cache.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.cache.handle_timeout(now) {
            self.prune();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol;
    use crate::time::Duration;

    fn dest(id: u32, w: u32) -> DestInfo {
        DestInfo::new(DestId(id), IpAddr::from([10, 0, 0, id as u8]), 80, w)
    }

    fn pick(s: &mut Lblcr, d: &[DestInfo], daddr: IpAddr, t: u64) -> Option<usize> {
        let mut rng = rand_pcg::Pcg32::new(1, 1);
        let mut ctx = SchedContext {
            now: Instant::from_secs(t),
            rng: &mut rng,
        };
        let f = FlowKey::new(Protocol::Tcp, IpAddr::from([192, 0, 2, 1]), 1, daddr, 80);
        s.schedule(d, &f, &mut ctx)
    }

    #[test]
    fn departed_snapshots_are_pruned_with_their_entries() {
        let cfg = SchedConfig {
            lblcr_expiration: Duration::from_secs(600),
            ..Default::default()
        };
        let mut s = Lblcr::new(&cfg);
        let mut d = vec![dest(1, 1), dest(2, 1)];
        s.update(&d, DestChange::Init);
        let a = IpAddr::from([198, 51, 100, 1]);
        assert_eq!(pick(&mut s, &d, a, 0), Some(0));
        d[0].activeconns = 2;
        s.counts_changed(&d, 0);
        assert_eq!(pick(&mut s, &d, a, 1), Some(1));
        assert_eq!(s.members, 2);
        // Remove dest 1 (position 0) while loaded: its snapshot keeps overhead 512.
        let gone = d.remove(0);
        s.update(
            &d,
            DestChange::Removed {
                pos: 0,
                id: gone.id,
            },
        );
        assert_eq!(
            s.departed.get(&DestId(1)),
            Some(&Departed {
                weight: 1,
                overhead: 512
            })
        );
        // A removed dest nobody refers to is not remembered.
        d.insert(0, dest(7, 1));
        s.update(&d, DestChange::Added { pos: 0 });
        let gone = d.remove(0);
        s.update(
            &d,
            DestChange::Removed {
                pos: 0,
                id: gone.id,
            },
        );
        assert!(!s.departed.contains_key(&DestId(7)));
        // Full check at the 30th tick (t = 1800) expires the entry; the snapshot goes with it.
        s.handle_timeout(Instant::ZERO);
        for t in (60..=1800).step_by(60) {
            s.handle_timeout(Instant::from_secs(t));
        }
        assert_eq!(s.cache_len(), 0);
        assert!(s.departed.is_empty());
        assert_eq!(s.members, 0);
    }

    #[test]
    fn readded_dest_is_live_again() {
        let mut s = Lblcr::new(&SchedConfig::default());
        let mut d = vec![dest(1, 1), dest(2, 1)];
        s.update(&d, DestChange::Init);
        let a = IpAddr::from([198, 51, 100, 2]);
        assert_eq!(pick(&mut s, &d, a, 0), Some(0));
        let gone = d.remove(0);
        s.update(
            &d,
            DestChange::Removed {
                pos: 0,
                id: gone.id,
            },
        );
        // Not available: rescheduled to dest 2, which joins the set.
        assert_eq!(pick(&mut s, &d, a, 1), Some(0));
        assert_eq!(s.cached_set(a), Some(vec![DestId(2), DestId(1)]));
        // Dest 1 comes back (same id, at the head): it is a live member again and, with
        // dest 2 busier, set_min picks it.
        d.insert(0, gone);
        s.update(&d, DestChange::Added { pos: 0 });
        assert!(s.departed.is_empty());
        d[1].inactconns = 5;
        assert_eq!(pick(&mut s, &d, a, 2), Some(0));
    }
}
