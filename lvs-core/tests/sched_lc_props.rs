//! Property tests: every indexed scheduler of the least-connection family returns exactly what
//! the kernel's scan returns on the same state, through random operation sequences; wrr gives
//! each destination exactly `weight / gcd` picks per cycle; rr follows its destination through
//! list changes.

use core::net::{IpAddr, Ipv4Addr};

use lvs_core::protocol::Protocol;
use lvs_core::sched::{
    fo, lc, nq, ovf, sed, twos, wlc, DestChange, DestFlags, DestId, DestInfo, FlowKey, SchedConfig,
    SchedContext, SchedFlags, SchedKind, Scheduler,
};
use lvs_core::time::Instant;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_pcg::Pcg32;

/// A reference scan.
type Scan = fn(&[DestInfo]) -> Option<usize>;

/// The six tournament-indexed schedulers and their reference scans.
const TREE_KINDS: [(SchedKind, Scan); 6] = [
    (SchedKind::Lc, lc::scan),
    (SchedKind::Wlc, wlc::scan),
    (SchedKind::Sed, sed::scan),
    (SchedKind::Nq, nq::scan),
    (SchedKind::Fo, fo::scan),
    (SchedKind::Ovf, ovf::scan),
];

fn flow() -> FlowKey {
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    FlowKey::new(Protocol::Tcp, ip, 40000, ip, 80)
}

/// Weights with many ties and zeros, some large ones.
fn weight() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => Just(0u32),
        8 => 1u32..5,
        2 => 1u32..=65535,
        1 => Just(i32::MAX as u32),
        1 => any::<u32>(),
    ]
}

/// Counters: mostly small (ties), sometimes huge (overflow paths).
fn counter() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 0u32..4, 2 => 0u32..100_000, 1 => any::<u32>()]
}

#[derive(Clone, Debug)]
struct Spec {
    weight: u32,
    active: u32,
    inact: u32,
    overload: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (weight(), counter(), counter(), prop::bool::weighted(0.2)).prop_map(
        |(weight, active, inact, overload)| Spec {
            weight,
            active,
            inact,
            overload,
        },
    )
}

#[derive(Clone, Debug)]
enum Op {
    /// New counters for dest `idx % len`.
    Counts { idx: usize, active: u32, inact: u32 },
    /// Set or clear OVERLOAD.
    Overload { idx: usize, on: bool },
    /// `ipvsadm -e` with a new weight.
    Edit { idx: usize, weight: u32 },
    /// `ipvsadm -a`: insert at the head.
    Add(Spec),
    /// `ipvsadm -d`.
    Remove { idx: usize },
    /// Schedule, bind the new connection to the choice of scheduler `which`, report it.
    Bind { which: usize },
    /// A connection of dest `idx` ends or goes inactive.
    Unbind { idx: usize, to_inactive: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<usize>(), counter(), counter())
            .prop_map(|(idx, active, inact)| Op::Counts { idx, active, inact }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(idx, on)| Op::Overload { idx, on }),
        2 => (any::<usize>(), weight()).prop_map(|(idx, weight)| Op::Edit { idx, weight }),
        2 => spec().prop_map(Op::Add),
        1 => any::<usize>().prop_map(|idx| Op::Remove { idx }),
        4 => any::<usize>().prop_map(|which| Op::Bind { which }),
        2 => (any::<usize>(), any::<bool>())
            .prop_map(|(idx, to_inactive)| Op::Unbind { idx, to_inactive }),
    ]
}

struct World {
    dests: Vec<DestInfo>,
    next_id: u32,
    tree: Vec<Box<dyn Scheduler>>,
    twos: Box<dyn Scheduler>,
    twos_rng: Pcg32,
    scan_rng: Pcg32,
}

impl World {
    fn new(specs: &[Spec], seed: u64) -> Self {
        let mut world = World {
            dests: Vec::new(),
            next_id: 0,
            tree: TREE_KINDS
                .iter()
                .map(|(k, _)| k.build(SchedFlags::empty(), &SchedConfig::default()))
                .collect(),
            twos: SchedKind::Twos.build(SchedFlags::empty(), &SchedConfig::default()),
            twos_rng: Pcg32::seed_from_u64(seed),
            scan_rng: Pcg32::seed_from_u64(seed),
        };
        for s in specs {
            let d = world.make(s);
            world.dests.push(d);
        }
        // Bound to an already populated list (as after `ipvsadm -E`).
        world.each(|s, d| s.update(d, DestChange::Init));
        world
    }

    fn make(&mut self, s: &Spec) -> DestInfo {
        let id = self.next_id;
        self.next_id += 1;
        let mut d = DestInfo::new(DestId(id), IpAddr::V4(Ipv4Addr::from(id)), 80, s.weight);
        d.activeconns = s.active;
        d.inactconns = s.inact;
        d.flags.set(DestFlags::OVERLOAD, s.overload);
        d
    }

    fn each(&mut self, mut f: impl FnMut(&mut dyn Scheduler, &[DestInfo])) {
        for s in self.tree.iter_mut() {
            f(s.as_mut(), &self.dests);
        }
        f(self.twos.as_mut(), &self.dests);
    }

    fn counts_changed(&mut self, pos: usize) {
        self.each(|s, d| s.counts_changed(d, pos));
    }

    /// Every indexed scheduler against its scan; returns the tree schedulers' choices.
    fn check(&mut self) -> Result<Vec<Option<usize>>, TestCaseError> {
        let flow = flow();
        let mut choices = Vec::new();
        for (sched, (kind, scan)) in self.tree.iter_mut().zip(TREE_KINDS) {
            let mut rng = Pcg32::seed_from_u64(0);
            let mut ctx = SchedContext {
                now: Instant::ZERO,
                rng: &mut rng,
            };
            let got = sched.schedule(&self.dests, &flow, &mut ctx);
            let want = scan(&self.dests);
            prop_assert_eq!(got, want, "{} on {:?}", kind, self.dests);
            if let Some(i) = got {
                // Eligible, except that wlc and sed, like the kernel, let a later weight-0
                // destination win when its `int` overhead wrapped negative.
                let d = &self.dests[i];
                let wrapped = match kind {
                    SchedKind::Wlc => d.overhead() < 0,
                    SchedKind::Sed => sed::sed_overhead(d) < 0,
                    _ => false,
                };
                prop_assert!(d.is_eligible() || (wrapped && !d.is_overloaded()));
            }
            choices.push(got);
        }
        let mut ctx = SchedContext {
            now: Instant::ZERO,
            rng: &mut self.twos_rng,
        };
        let got = self.twos.schedule(&self.dests, &flow, &mut ctx);
        let want = twos::scan(&self.dests, &mut self.scan_rng);
        prop_assert_eq!(got, want, "twos on {:?}", self.dests);
        choices.push(got);
        Ok(choices)
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let len = self.dests.len();
        match *op {
            Op::Add(ref s) => {
                let d = self.make(s);
                self.dests.insert(0, d);
                self.each(|s, d| s.update(d, DestChange::Added { pos: 0 }));
            }
            _ if len == 0 => {}
            Op::Counts { idx, active, inact } => {
                let pos = idx % len;
                self.dests[pos].activeconns = active;
                self.dests[pos].inactconns = inact;
                self.counts_changed(pos);
            }
            Op::Overload { idx, on } => {
                let pos = idx % len;
                self.dests[pos].flags.set(DestFlags::OVERLOAD, on);
                self.counts_changed(pos);
            }
            Op::Edit { idx, weight } => {
                let pos = idx % len;
                self.dests[pos].weight = weight;
                if weight > 0 {
                    self.dests[pos].last_weight = weight;
                }
                self.each(|s, d| s.update(d, DestChange::Edited { pos }));
            }
            Op::Remove { idx } => {
                let pos = idx % len;
                let gone = self.dests.remove(pos);
                self.each(|s, d| s.update(d, DestChange::Removed { pos, id: gone.id }));
            }
            Op::Bind { which } => {
                let choices = self.check()?;
                if let Some(pos) = choices[which % choices.len()] {
                    let d = &mut self.dests[pos];
                    d.activeconns = d.activeconns.wrapping_add(1);
                    self.counts_changed(pos);
                }
            }
            Op::Unbind { idx, to_inactive } => {
                let pos = idx % len;
                let d = &mut self.dests[pos];
                if d.activeconns > 0 {
                    d.activeconns -= 1;
                    if to_inactive {
                        d.inactconns = d.inactconns.wrapping_add(1);
                    }
                } else if d.inactconns > 0 {
                    d.inactconns -= 1;
                }
                self.counts_changed(pos);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn indexed_equals_scan(
        specs in prop::collection::vec(spec(), 0..64),
        ops in prop::collection::vec(op(), 0..80),
        seed in any::<u64>(),
    ) {
        let mut world = World::new(&specs, seed);
        world.check()?;
        for op in &ops {
            world.apply(op)?;
            world.check()?;
        }
    }

    #[test]
    fn indexed_equals_scan_built_by_adds(
        specs in prop::collection::vec(spec(), 0..64),
        seed in any::<u64>(),
    ) {
        // Bound to an empty service, then populated one `ipvsadm -a` at a time.
        let mut world = World::new(&[], seed);
        for s in &specs {
            world.apply(&Op::Add(s.clone()))?;
            world.check()?;
        }
    }

    #[test]
    fn wrr_cycle_gives_weight_over_gcd_picks(
        weights in prop::collection::vec(0u32..13, 1..10),
        edits in prop::collection::vec((any::<usize>(), 0u32..13), 0..3),
        skip in 0usize..60,
    ) {
        // Configured like ipvsadm: bound empty, then one add at a time, then some edits.
        let mut sched = SchedKind::Wrr.build(SchedFlags::empty(), &SchedConfig::default());
        let mut dests: Vec<DestInfo> = Vec::new();
        sched.update(&dests, DestChange::Init);
        for (i, &w) in weights.iter().enumerate() {
            dests.insert(0, DestInfo::new(DestId(i as u32), IpAddr::V4(Ipv4Addr::LOCALHOST), 80, w));
            sched.update(&dests, DestChange::Added { pos: 0 });
        }
        for &(idx, w) in &edits {
            let pos = idx % dests.len();
            dests[pos].weight = w;
            sched.update(&dests, DestChange::Edited { pos });
        }
        let flow = flow();
        let mut rng = Pcg32::seed_from_u64(0);
        let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut rng };
        let g = dests.iter().map(|d| d.weight).filter(|&w| w > 0).fold(0, gcd);
        if g == 0 {
            prop_assert_eq!(sched.schedule(&dests, &flow, &mut ctx), None);
            return Ok(());
        }
        for _ in 0..skip {
            prop_assert!(sched.schedule(&dests, &flow, &mut ctx).is_some());
        }
        let cycle: u32 = dests.iter().map(|d| d.weight / g).sum();
        let mut counts = vec![0u32; dests.len()];
        for _ in 0..cycle {
            let i = sched.schedule(&dests, &flow, &mut ctx);
            prop_assert!(i.is_some());
            counts[i.unwrap()] += 1;
        }
        let want: Vec<u32> = dests.iter().map(|d| d.weight / g).collect();
        prop_assert_eq!(counts, want);
    }

    #[test]
    fn rr_follows_its_dest_through_list_changes(
        initial in prop::collection::vec(prop::bool::weighted(0.8), 0..12),
        ops in prop::collection::vec((0u8..4, any::<usize>(), prop::bool::weighted(0.8)), 0..60),
    ) {
        // Model: the cursor is a DestId (or the head); positions are recomputed every time.
        let mut sched = SchedKind::Rr.build(SchedFlags::empty(), &SchedConfig::default());
        let mut dests: Vec<DestInfo> = Vec::new();
        let mut next = 0u32;
        let mut mk = |on: bool| {
            next += 1;
            DestInfo::new(DestId(next), IpAddr::V4(Ipv4Addr::LOCALHOST), 80, u32::from(on))
        };
        for &on in &initial {
            dests.push(mk(on));
        }
        sched.update(&dests, DestChange::Init);
        let mut cursor: Option<DestId> = None;
        let flow = flow();
        let mut rng = Pcg32::seed_from_u64(0);
        for &(kind, idx, on) in &ops {
            match kind {
                0 => {
                    dests.insert(0, mk(on));
                    sched.update(&dests, DestChange::Added { pos: 0 });
                }
                1 if !dests.is_empty() => {
                    let pos = idx % dests.len();
                    let gone = dests.remove(pos);
                    if cursor == Some(gone.id) {
                        cursor = pos.checked_sub(1).map(|p| dests[p].id);
                    }
                    sched.update(&dests, DestChange::Removed { pos, id: gone.id });
                }
                2 if !dests.is_empty() => {
                    let pos = idx % dests.len();
                    dests[pos].flags.set(DestFlags::OVERLOAD, !on);
                    sched.counts_changed(&dests, pos);
                }
                _ => {
                    let n = dests.len();
                    let start = cursor.and_then(|id| dests.iter().position(|d| d.id == id));
                    let order: Vec<usize> = match start {
                        None => (0..n).collect(),
                        Some(c) => (c + 1..n).chain(0..=c).collect(),
                    };
                    let want = order.into_iter().find(|&i| dests[i].is_eligible());
                    let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut rng };
                    let got = sched.schedule(&dests, &flow, &mut ctx);
                    prop_assert_eq!(got, want);
                    if let Some(i) = got {
                        cursor = Some(dests[i].id);
                    }
                }
            }
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
