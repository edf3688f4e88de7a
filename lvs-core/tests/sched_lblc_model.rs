//! lblc and lblcr against direct transcriptions of `ip_vs_lblc.c` and `ip_vs_lblcr.c`: the
//! 1024-bucket table (`hash_32(ntohl(addr), 10)`, new entries at the bucket's head), its
//! `entries` counter exactly as the kernel keeps it, the per-minute timer armed when the
//! scheduler is bound (`counter`, `rover`, the full check every 30th tick, the over-full
//! reclaim), the replication sets (`set_min`, `set_max`, `lastmod`) and the kernel's `int`
//! arithmetic. Every decision, every cache entry and the timer must agree.

use core::net::{IpAddr, Ipv4Addr};

use lvs_core::protocol::Protocol;
use lvs_core::sched::lblc::Lblc;
use lvs_core::sched::lblcr::Lblcr;
use lvs_core::sched::{
    DestChange, DestFlags, DestId, DestInfo, FlowKey, SchedConfig, SchedContext, Scheduler,
};
use lvs_core::time::{Duration, Instant};
use proptest::prelude::*;
use rand_pcg::Pcg32;

// ----- shared kernel pieces ------------------------------------------------------------------

const TAB_BITS: u32 = 10;
const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: usize = TAB_SIZE - 1;
const MAX_SIZE: i32 = (TAB_SIZE * 16) as i32;
const CHECK_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
const COUNT_FOR_FULL_EXPIRATION: i32 = 30;

fn int(v: u32) -> i32 {
    v as i32
}

/// `ip_vs_lblc_hashkey`: `hash_32(ntohl(addr_fold), 10)`.
fn hashkey(addr: IpAddr) -> usize {
    let fold = match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let s = a.segments();
            let w = |i: usize| (u32::from(s[i]) << 16) | u32::from(s[i + 1]);
            w(0) ^ w(2) ^ w(4) ^ w(6)
        }
    };
    (fold.wrapping_mul(0x61C8_8647) >> (32 - TAB_BITS)) as usize
}

fn conn_overhead(d: &DestInfo) -> i32 {
    (int(d.activeconns) << 8).wrapping_add(int(d.inactconns))
}

/// `__ip_vs_lblc_schedule` / `__ip_vs_lblcr_schedule`.
fn k_wlc(dests: &[DestInfo]) -> Option<DestId> {
    let mut it = dests.iter();
    let mut least = loop {
        let d = it.next()?;
        if d.flags.contains(DestFlags::OVERLOAD) {
            continue;
        }
        if int(d.weight) > 0 {
            break d;
        }
    };
    let mut loh = conn_overhead(least);
    for d in it {
        if d.flags.contains(DestFlags::OVERLOAD) {
            continue;
        }
        let doh = conn_overhead(d);
        if (loh as i64) * (int(d.weight) as i64) > (doh as i64) * (int(least.weight) as i64) {
            least = d;
            loh = doh;
        }
    }
    Some(least.id)
}

/// `is_overloaded` of both files.
fn k_is_overloaded(dest: &DestInfo, dests: &[DestInfo]) -> bool {
    if int(dest.activeconns) > int(dest.weight) {
        for d in dests {
            if int(d.activeconns).wrapping_mul(2) < int(d.weight) {
                return true;
            }
        }
    }
    false
}

/// A linked destination by id (AVAILABLE), or a removed one (not AVAILABLE) as last seen.
fn find<'a>(
    id: DestId,
    dests: &'a [DestInfo],
    gone: &'a [DestInfo],
) -> Option<(&'a DestInfo, bool)> {
    if let Some(d) = dests.iter().find(|d| d.id == id) {
        return Some((d, true));
    }
    gone.iter().rev().find(|d| d.id == id).map(|d| (d, false))
}

/// The table, timer and counters of `struct ip_vs_lblc_table` / `ip_vs_lblcr_table`.
struct Table<E> {
    /// Each bucket's hlist, head first.
    bucket: Vec<Vec<E>>,
    entries: i32,
    rover: usize,
    counter: i32,
    timer: Instant,
    expiration: Duration,
}

trait Entry {
    fn addr(&self) -> IpAddr;
    fn lastuse(&self) -> Instant;
}

impl<E: Entry> Table<E> {
    /// `init_service`: the timer is armed at bind time.
    fn new(now: Instant, expiration: Duration) -> Self {
        Table {
            bucket: (0..TAB_SIZE).map(|_| Vec::new()).collect(),
            entries: 0,
            rover: 0,
            counter: 1,
            timer: now + CHECK_EXPIRE_INTERVAL,
            expiration,
        }
    }

    fn get(&mut self, addr: IpAddr) -> Option<&mut E> {
        self.bucket[hashkey(addr)]
            .iter_mut()
            .find(|e| e.addr() == addr)
    }

    /// `ip_vs_lblc_hash`: at the head of its bucket, `entries++`.
    fn hash(&mut self, e: E) {
        self.bucket[hashkey(e.addr())].insert(0, e);
        self.entries += 1;
    }

    /// `ip_vs_lblc_del` (no change to `entries`).
    fn del(&mut self, addr: IpAddr) {
        let b = &mut self.bucket[hashkey(addr)];
        let i = b.iter().position(|e| e.addr() == addr).unwrap();
        b.remove(i);
    }

    /// `ip_vs_lblc_check_expire` with `now` = the timer's due time, then `mod_timer`.
    fn check_expire(&mut self, now: Instant) {
        if self.counter % COUNT_FOR_FULL_EXPIRATION == 0 {
            // ip_vs_lblc_full_check
            let mut j = self.rover;
            for _ in 0..TAB_SIZE {
                j = (j + 1) & TAB_MASK;
                let before = self.bucket[j].len();
                let exp = self.expiration;
                self.bucket[j].retain(|e| now < e.lastuse() + exp);
                self.entries -= (before - self.bucket[j].len()) as i32;
            }
            self.rover = j;
            self.counter = 1;
        } else if self.entries <= MAX_SIZE {
            self.counter += 1;
        } else {
            let mut goal = (self.entries - MAX_SIZE) * 4 / 3;
            if goal > MAX_SIZE / 2 {
                goal = MAX_SIZE / 2;
            }
            let mut j = self.rover;
            for _ in 0..TAB_SIZE {
                j = (j + 1) & TAB_MASK;
                let before = self.bucket[j].len();
                self.bucket[j].retain(|e| now < e.lastuse() + ENTRY_TIMEOUT);
                let n = (before - self.bucket[j].len()) as i32;
                self.entries -= n;
                goal -= n;
                if goal <= 0 {
                    break;
                }
            }
            self.rover = j;
        }
        self.timer = now + CHECK_EXPIRE_INTERVAL;
    }

    fn len(&self) -> usize {
        self.bucket.iter().map(Vec::len).sum()
    }
}

// ----- lblc ----------------------------------------------------------------------------------

struct LblcEntry {
    addr: IpAddr,
    dest: DestId,
    lastuse: Instant,
}

impl Entry for LblcEntry {
    fn addr(&self) -> IpAddr {
        self.addr
    }
    fn lastuse(&self) -> Instant {
        self.lastuse
    }
}

/// `ip_vs_lblc_schedule`.
fn k_lblc(
    tbl: &mut Table<LblcEntry>,
    dests: &[DestInfo],
    gone: &[DestInfo],
    daddr: IpAddr,
    now: Instant,
) -> Option<DestId> {
    if let Some(en) = tbl.get(daddr) {
        en.lastuse = now;
        if let Some((dest, true)) = find(en.dest, dests, gone) {
            if int(dest.weight) > 0 && !k_is_overloaded(dest, dests) {
                return Some(dest.id);
            }
        }
    }
    let dest = k_wlc(dests)?;
    // ip_vs_lblc_new
    if let Some(en) = tbl.get(daddr) {
        if en.dest == dest {
            return Some(dest);
        }
        tbl.del(daddr);
    }
    tbl.hash(LblcEntry {
        addr: daddr,
        dest,
        lastuse: now,
    });
    Some(dest)
}

// ----- lblcr ---------------------------------------------------------------------------------

struct LblcrEntry {
    addr: IpAddr,
    /// The set's list, head first.
    set: Vec<DestId>,
    lastmod: Instant,
    lastuse: Instant,
}

impl Entry for LblcrEntry {
    fn addr(&self) -> IpAddr {
        self.addr
    }
    fn lastuse(&self) -> Instant {
        self.lastuse
    }
}

/// `ip_vs_dest_set_min`.
fn k_set_min(set: &[DestId], dests: &[DestInfo], gone: &[DestInfo]) -> Option<DestId> {
    let mut it = set.iter().filter_map(|&id| find(id, dests, gone));
    let (mut least, _) = loop {
        let (d, avail) = it.next()?;
        if d.flags.contains(DestFlags::OVERLOAD) {
            continue;
        }
        if int(d.weight) > 0 && avail {
            break (d, avail);
        }
    };
    let mut loh = conn_overhead(least);
    for (d, avail) in it {
        if d.flags.contains(DestFlags::OVERLOAD) {
            continue;
        }
        let doh = conn_overhead(d);
        if (loh as i64) * (int(d.weight) as i64) > (doh as i64) * (int(least.weight) as i64)
            && avail
        {
            least = d;
            loh = doh;
        }
    }
    Some(least.id)
}

/// `ip_vs_dest_set_max`.
fn k_set_max(set: &[DestId], dests: &[DestInfo], gone: &[DestInfo]) -> Option<DestId> {
    let mut it = set.iter().filter_map(|&id| find(id, dests, gone));
    let mut most = loop {
        let (d, _) = it.next()?;
        if int(d.weight) > 0 {
            break d;
        }
    };
    let mut moh = conn_overhead(most);
    for (d, _) in it {
        let doh = conn_overhead(d);
        if (moh as i64) * (int(d.weight) as i64) < (doh as i64) * (int(most.weight) as i64)
            && int(d.weight) > 0
        {
            most = d;
            moh = doh;
        }
    }
    Some(most.id)
}

/// `ip_vs_lblcr_schedule`.
fn k_lblcr(
    tbl: &mut Table<LblcrEntry>,
    dests: &[DestInfo],
    gone: &[DestInfo],
    daddr: IpAddr,
    now: Instant,
) -> Option<DestId> {
    let exp = tbl.expiration;
    if let Some(en) = tbl.get(daddr) {
        en.lastuse = now;
        let dest = k_set_min(&en.set, dests, gone);
        if en.set.len() > 1 && now > en.lastmod + exp {
            if let Some(m) = k_set_max(&en.set, dests, gone) {
                // ip_vs_dest_set_erase
                if let Some(i) = en.set.iter().position(|&x| x == m) {
                    en.set.remove(i);
                    en.lastmod = now;
                }
            }
        }
        if let Some(id) = dest {
            let (d, _) = find(id, dests, gone).unwrap();
            if !k_is_overloaded(d, dests) {
                return Some(id);
            }
        }
        let dest = k_wlc(dests)?;
        // ip_vs_dest_set_insert(check = true)
        if !en.set.contains(&dest) {
            en.set.insert(0, dest);
            en.lastmod = now;
        }
        return Some(dest);
    }
    let dest = k_wlc(dests)?;
    tbl.hash(LblcrEntry {
        addr: daddr,
        set: vec![dest],
        lastmod: now,
        lastuse: now,
    });
    Some(dest)
}

// ----- driving -------------------------------------------------------------------------------

fn daddr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xC633_6400 + i))
}

fn flow(daddr: IpAddr) -> FlowKey {
    FlowKey::new(
        Protocol::Tcp,
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        4000,
        daddr,
        3128,
    )
}

fn config(exp: u64) -> SchedConfig {
    SchedConfig {
        lblc_expiration: Duration::from_secs(exp),
        lblcr_expiration: Duration::from_secs(exp),
        ..Default::default()
    }
}

/// The destination list plus removed destinations, and the clock.
struct World {
    dests: Vec<DestInfo>,
    gone: Vec<DestInfo>,
    next_id: u32,
    now: Instant,
}

impl World {
    fn new(weights: &[u32]) -> Self {
        let mut w = World {
            dests: Vec::new(),
            gone: Vec::new(),
            next_id: 0,
            now: Instant::ZERO,
        };
        for &wt in weights {
            let d = w.make(wt);
            w.dests.insert(0, d);
        }
        w
    }

    fn make(&mut self, weight: u32) -> DestInfo {
        self.next_id += 1;
        DestInfo::new(
            DestId(self.next_id),
            IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + self.next_id)),
            3128,
            weight,
        )
    }
}

#[derive(Clone, Debug)]
enum Op {
    Schedule(u32),
    Counts(usize, u32, u32),
    Weight(usize, u32),
    Overload(usize, bool),
    Add(u32),
    Remove(usize),
    Advance(u64),
    /// Advance by the expiration plus -1, 0 or +1 seconds (boundaries of `lastmod`).
    AdvanceExp(i8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u32..10).prop_map(Op::Schedule),
        3 => (any::<usize>(), 0u32..6, 0u32..4).prop_map(|(i, a, n)| Op::Counts(i, a, n)),
        1 => (any::<usize>(), prop_oneof![Just(0u32), 1u32..5]).prop_map(|(i, w)| Op::Weight(i, w)),
        1 => (any::<usize>(), prop::bool::weighted(0.3)).prop_map(|(i, o)| Op::Overload(i, o)),
        1 => (0u32..4).prop_map(Op::Add),
        1 => any::<usize>().prop_map(Op::Remove),
        3 => prop_oneof![
            1u64..30,
            30u64..400,
            400u64..4000,
            // Whole minutes: decisions land on tick times, so boundaries are hit exactly.
            (1u64..40).prop_map(|m| m * 60),
        ]
        .prop_map(Op::Advance),
        1 => (-1i8..=1).prop_map(Op::AdvanceExp),
    ]
}

/// Applies a list operation to the world and tells the scheduler.
fn apply_list_op(w: &mut World, s: &mut dyn Scheduler, op: &Op) {
    let len = w.dests.len();
    match *op {
        Op::Add(wt) => {
            let d = w.make(wt);
            w.dests.insert(0, d);
            s.update(&w.dests, DestChange::Added { pos: 0 });
        }
        _ if len == 0 => {}
        Op::Counts(i, a, n) => {
            let pos = i % len;
            w.dests[pos].activeconns = a;
            w.dests[pos].inactconns = n;
            s.counts_changed(&w.dests, pos);
        }
        Op::Weight(i, wt) => {
            let pos = i % len;
            w.dests[pos].weight = wt;
            s.update(&w.dests, DestChange::Edited { pos });
        }
        Op::Overload(i, o) => {
            let pos = i % len;
            w.dests[pos].flags.set(DestFlags::OVERLOAD, o);
            s.counts_changed(&w.dests, pos);
        }
        Op::Remove(i) => {
            let pos = i % len;
            let mut d = w.dests.remove(pos);
            d.flags.set(DestFlags::AVAILABLE, false);
            let id = d.id;
            w.gone.push(d);
            s.update(&w.dests, DestChange::Removed { pos, id });
        }
        Op::Schedule(_) | Op::Advance(_) | Op::AdvanceExp(_) => unreachable!(),
    }
}

fn decide(s: &mut dyn Scheduler, w: &World, daddr: IpAddr) -> Option<DestId> {
    let mut rng = Pcg32::new(1, 1);
    let mut ctx = SchedContext {
        now: w.now,
        rng: &mut rng,
    };
    s.schedule(&w.dests, &flow(daddr), &mut ctx)
        .map(|p| w.dests[p].id)
}

/// An `Advance` or `AdvanceExp` step: the clock moves on, and at each of the model's timer
/// deadlines on the way the scheduler must want to run then, and both run their timers.
fn advance<E: Entry>(
    w: &mut World,
    s: &mut dyn Scheduler,
    k: &mut Table<E>,
    exp: u64,
    op: &Op,
) -> Result<(), TestCaseError> {
    let secs = match *op {
        Op::AdvanceExp(d) => (exp as i64 + i64::from(d)) as u64,
        Op::Advance(secs) => secs,
        _ => 0,
    };
    let to = w.now + Duration::from_secs(secs);
    while k.timer <= to {
        prop_assert_eq!(s.poll_timeout(), Some(k.timer));
        let t = k.timer;
        k.check_expire(t);
        s.handle_timeout(t);
    }
    w.now = to;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn lblc_matches_the_kernel(
        weights in prop::collection::vec(0u32..4, 0..6),
        exp in prop_oneof![Just(24 * 3600u64), 60u64..3000, (1u64..50).prop_map(|m| m * 60)],
        ops in prop::collection::vec(op(), 0..120),
    ) {
        let mut w = World::new(&weights);
        let mut s = Lblc::new(&config(exp));
        s.update(&w.dests, DestChange::Init);
        // The kernel arms the timer when the scheduler is bound.
        s.handle_timeout(w.now);
        let mut k = Table::<LblcEntry>::new(w.now, Duration::from_secs(exp));
        for op in &ops {
            match *op {
                Op::Schedule(a) => {
                    let got = decide(&mut s, &w, daddr(a));
                    let want = k_lblc(&mut k, &w.dests, &w.gone, daddr(a), w.now);
                    prop_assert_eq!(got, want);
                }
                Op::Advance(_) | Op::AdvanceExp(_) => advance(&mut w, &mut s, &mut k, exp, op)?,
                _ => apply_list_op(&mut w, &mut s, op),
            }
            prop_assert_eq!(s.poll_timeout(), Some(k.timer));
            prop_assert_eq!(s.cache_len(), k.len());
            for a in 0..10 {
                let want = k.get(daddr(a)).map(|e| (e.dest, e.lastuse));
                prop_assert_eq!(s.cached(daddr(a)), want, "entry {}", a);
            }
        }
    }

    #[test]
    fn lblcr_matches_the_kernel(
        weights in prop::collection::vec(0u32..4, 0..6),
        exp in prop_oneof![Just(24 * 3600u64), 30u64..3000, (1u64..50).prop_map(|m| m * 60)],
        ops in prop::collection::vec(op(), 0..120),
    ) {
        let mut w = World::new(&weights);
        let mut s = Lblcr::new(&config(exp));
        s.update(&w.dests, DestChange::Init);
        s.handle_timeout(w.now);
        let mut k = Table::<LblcrEntry>::new(w.now, Duration::from_secs(exp));
        for op in &ops {
            match *op {
                Op::Schedule(a) => {
                    let got = decide(&mut s, &w, daddr(a));
                    let want = k_lblcr(&mut k, &w.dests, &w.gone, daddr(a), w.now);
                    prop_assert_eq!(got, want);
                }
                Op::Advance(_) | Op::AdvanceExp(_) => advance(&mut w, &mut s, &mut k, exp, op)?,
                _ => apply_list_op(&mut w, &mut s, op),
            }
            prop_assert_eq!(s.poll_timeout(), Some(k.timer));
            prop_assert_eq!(s.cache_len(), k.len());
            for a in 0..10 {
                let want = k.get(daddr(a)).map(|e| (e.set.clone(), e.lastuse, e.lastmod));
                let got = s
                    .cached_set(daddr(a))
                    .map(|set| {
                        let (u, m) = s.cached_times(daddr(a)).unwrap();
                        (set, u, m)
                    });
                prop_assert_eq!(got, want, "entry {}", a);
            }
        }
    }
}

/// The kernel's `ip_vs_lblc_new` replaces an entry by deleting it without decrementing
/// `entries` and hashing a new one, which increments it: every replacement leaves the counter
/// one higher. After 16384 replacements of one address the table counts as over-full, the
/// per-minute tick stops counting towards the full check and reclaims entries idle for six
/// minutes instead.
#[test]
fn lblc_replacements_inflate_the_entry_count_like_the_kernels() {
    let cfg = config(24 * 3600);
    let mut w = World::new(&[1, 1]); // list [B, A]
    let mut s = Lblc::new(&cfg);
    s.update(&w.dests, DestChange::Init);
    s.handle_timeout(w.now);
    let mut k = Table::<LblcEntry>::new(w.now, Duration::from_secs(24 * 3600));
    let x = daddr(1);
    // Alternately quiesce one of the two so that the cached choice is unusable and replaced.
    for i in 0..=MAX_SIZE as usize {
        let (off, on) = if i % 2 == 0 { (1, 0) } else { (0, 1) };
        w.dests[off].weight = 0;
        s.update(&w.dests, DestChange::Edited { pos: off });
        w.dests[on].weight = 1;
        s.update(&w.dests, DestChange::Edited { pos: on });
        let got = decide(&mut s, &w, x);
        assert_eq!(got, k_lblc(&mut k, &w.dests, &w.gone, x, w.now));
    }
    assert_eq!(k.len(), 1);
    assert_eq!(k.entries, MAX_SIZE + 1);
    // Both usable again; B (position 0, cached) gets a connection, so wlc would now pick A
    // while B stays usable (1 active is not more than its weight).
    assert_eq!(k.get(x).map(|e| e.dest), Some(w.dests[0].id));
    w.dests[1].weight = 1;
    s.update(&w.dests, DestChange::Edited { pos: 1 });
    w.dests[0].activeconns = 1;
    s.counts_changed(&w.dests, 0);
    // Seven ticks: at 420 s the entry has been idle for more than six minutes and the
    // kernel's over-full reclaim deletes it.
    while k.timer <= Instant::from_secs(420) {
        let t = k.timer;
        k.check_expire(t);
        s.handle_timeout(t);
    }
    w.now = Instant::from_secs(420);
    assert_eq!(k.len(), 0);
    assert_eq!(s.cache_len(), 0, "the over-full reclaim must have run");
    let got = decide(&mut s, &w, x);
    let want = k_lblc(&mut k, &w.dests, &w.gone, x, w.now);
    assert_eq!(want, Some(w.dests[1].id));
    assert_eq!(got, want);
}

/// Over-full reclaim through the model: 16384 + 700 addresses, all idle for six minutes, then
/// the reclaim deletes whole buckets from `rover + 1` until the goal is met.
#[test]
fn lblcr_overfull_reclaim_matches_the_kernel() {
    let cfg = config(24 * 3600);
    let w = World::new(&[1, 2, 3]);
    let mut s = Lblcr::new(&cfg);
    s.update(&w.dests, DestChange::Init);
    s.handle_timeout(w.now);
    let mut k = Table::<LblcrEntry>::new(w.now, Duration::from_secs(24 * 3600));
    let n = MAX_SIZE as u32 + 700;
    let addr = |i: u32| {
        IpAddr::V4(Ipv4Addr::from(
            0x0B00_0000u32.wrapping_add(i.wrapping_mul(2654435761)),
        ))
    };
    for i in 0..n {
        let got = decide(&mut s, &w, addr(i));
        assert_eq!(got, k_lblcr(&mut k, &w.dests, &w.gone, addr(i), w.now));
    }
    let mut ticks = 0;
    while k.timer <= Instant::from_secs(3 * 3600) {
        let t = k.timer;
        k.check_expire(t);
        s.handle_timeout(t);
        ticks += 1;
        assert_eq!(s.cache_len(), k.len(), "tick {ticks}");
    }
    for i in 0..n {
        let want = k.get(addr(i)).map(|e| e.set.clone());
        assert_eq!(s.cached_set(addr(i)), want);
    }
    assert!(k.len() < n as usize);
}
