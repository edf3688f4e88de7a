//! The spec's worked vectors (§1.15 R1–R3, W1–W6, L1–L4) for rr, wrr, lc, wlc, sed, nq, fo, ovf,
//! plus twos' draw and arithmetic, each through the registry-built scheduler and, for the
//! least-connection family, the reference scan too.

use core::net::{IpAddr, Ipv4Addr};

use lvs_core::protocol::Protocol;
use lvs_core::sched::{
    fo, lc, nq, ovf, sed, twos, wlc, wrr::Wrr, DestChange, DestFlags, DestId, DestInfo, FlowKey,
    SchedConfig, SchedContext, SchedFlags, SchedKind, Scheduler,
};
use lvs_core::time::Instant;
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// A reference scan of the least-connection family.
type Scan = fn(&[DestInfo]) -> Option<usize>;

/// A service's destination list driven the way ipvsadm drives the kernel.
struct Service {
    dests: Vec<DestInfo>,
    sched: Box<dyn Scheduler>,
    names: Vec<char>,
    rng: SmallRng,
}

impl Service {
    /// `ipvsadm -A -s kind` on an empty service.
    fn new(kind: SchedKind) -> Self {
        let mut sched = kind.build(SchedFlags::empty(), &SchedConfig::default());
        sched.update(&[], DestChange::Init);
        Service {
            dests: Vec::new(),
            sched,
            names: Vec::new(),
            rng: SmallRng::seed_from_u64(7),
        }
    }

    /// A service whose list already is `list` (named in list order) when `kind` is bound, as
    /// after `ipvsadm -E` switching the scheduler.
    fn bound(kind: SchedKind, list: &[(char, u32)]) -> Self {
        let mut svc = Service::new(kind);
        svc.names = list.iter().map(|&(n, _)| n).collect();
        svc.dests = list.iter().map(|&(n, w)| dest(n, w)).collect();
        svc.sched.update(&svc.dests, DestChange::Init);
        svc
    }

    /// `ipvsadm -a ... -w weight`: inserted at the head.
    fn add(&mut self, name: char, weight: u32) {
        self.dests.insert(0, dest(name, weight));
        self.names.insert(0, name);
        self.sched.update(&self.dests, DestChange::Added { pos: 0 });
    }

    fn pos(&self, name: char) -> usize {
        self.names
            .iter()
            .position(|&n| n == name)
            .expect("no such dest")
    }

    /// `ipvsadm -d`.
    fn remove(&mut self, name: char) {
        let pos = self.pos(name);
        let gone = self.dests.remove(pos);
        self.names.remove(pos);
        self.sched
            .update(&self.dests, DestChange::Removed { pos, id: gone.id });
    }

    /// `ipvsadm -e ... -w weight`.
    fn edit(&mut self, name: char, weight: u32) {
        let pos = self.pos(name);
        self.dests[pos].weight = weight;
        self.sched.update(&self.dests, DestChange::Edited { pos });
    }

    fn set_overload(&mut self, name: char, on: bool) {
        let pos = self.pos(name);
        self.dests[pos].flags.set(DestFlags::OVERLOAD, on);
        self.sched.counts_changed(&self.dests, pos);
    }

    fn set_counts(&mut self, name: char, active: u32, inact: u32) {
        let pos = self.pos(name);
        self.dests[pos].activeconns = active;
        self.dests[pos].inactconns = inact;
        self.sched.counts_changed(&self.dests, pos);
    }

    fn pick(&mut self) -> Option<char> {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let flow = FlowKey::new(Protocol::Tcp, ip, 40000, ip, 80);
        let mut ctx = SchedContext {
            now: Instant::ZERO,
            rng: &mut self.rng,
        };
        self.sched
            .schedule(&self.dests, &flow, &mut ctx)
            .map(|i| self.names[i])
    }

    fn picks(&mut self, n: usize) -> String {
        (0..n).map(|_| self.pick().map_or('-', |c| c)).collect()
    }
}

fn dest(name: char, weight: u32) -> DestInfo {
    let n = name as u32;
    DestInfo::new(
        DestId(n),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n as u8)),
        80,
        weight,
    )
}

#[test]
fn r1_rr_round_in_list_order() {
    let mut svc = Service::new(SchedKind::Rr);
    for name in ['A', 'B', 'C'] {
        svc.add(name, 1);
    }
    assert_eq!(svc.picks(7), "CBACBAC");
}

#[test]
fn r2_rr_skips_quiesced() {
    let mut svc = Service::new(SchedKind::Rr);
    svc.add('A', 1);
    svc.add('B', 0);
    svc.add('C', 1);
    assert_eq!(svc.picks(5), "CACAC");
}

#[test]
fn r3_rr_delete_cursor_dest_moves_to_predecessor() {
    let mut svc = Service::new(SchedKind::Rr);
    for name in ['A', 'B', 'C'] {
        svc.add(name, 1);
    }
    assert_eq!(svc.pick(), Some('C'));
    svc.remove('C');
    assert_eq!(svc.picks(4), "BABA");

    let mut svc = Service::new(SchedKind::Rr);
    for name in ['A', 'B', 'C'] {
        svc.add(name, 1);
    }
    assert_eq!(svc.picks(2), "CB");
    svc.remove('B');
    assert_eq!(svc.picks(3), "ACA");
}

#[test]
fn rr_addition_at_head_keeps_cursor_on_its_dest() {
    let mut svc = Service::new(SchedKind::Rr);
    for name in ['A', 'B', 'C'] {
        svc.add(name, 1);
    }
    assert_eq!(svc.picks(2), "CB");
    // D goes to the head; the cursor still means B, so A is next, then the new head.
    svc.add('D', 1);
    assert_eq!(svc.picks(5), "ADCBA");
}

#[test]
fn rr_only_eligible_dest_is_repicked_and_none_when_all_out() {
    let mut svc = Service::new(SchedKind::Rr);
    svc.add('A', 1);
    svc.add('B', 1);
    assert_eq!(svc.pick(), Some('B'));
    svc.set_overload('A', true);
    assert_eq!(svc.picks(3), "BBB");
    svc.set_overload('B', true);
    assert_eq!(svc.pick(), None);
    svc.set_overload('A', false);
    assert_eq!(svc.pick(), Some('A'));
    let mut empty = Service::new(SchedKind::Rr);
    assert_eq!(empty.pick(), None);
}

#[test]
fn w1_wrr_fresh_state() {
    let mut svc = Service::bound(SchedKind::Wrr, &[('A', 4), ('B', 3), ('C', 2)]);
    assert_eq!(svc.picks(18), "AABABCABCAABABCABC");
}

#[test]
fn w2_wrr_configured_through_ipvsadm() {
    let mut sched = Wrr::new();
    let mut dests = Vec::new();
    sched.update(&dests, DestChange::Init);
    assert_eq!(sched.mark(), (None, 0, 0, 1));
    let mut marks = Vec::new();
    for (name, w) in [('A', 4), ('B', 3), ('C', 2)] {
        dests.insert(0, dest(name, w));
        sched.update(&dests, DestChange::Added { pos: 0 });
        marks.push(sched.mark());
    }
    // (cl, cw, mw, di) after adding A, B, C.
    assert_eq!(marks, [(None, 1, 1, 4), (None, 1, 4, 1), (None, 1, 4, 1)]);

    let mut svc = Service::new(SchedKind::Wrr);
    for (name, w) in [('A', 4), ('B', 3), ('C', 2)] {
        svc.add(name, w);
    }
    assert_eq!(svc.picks(18), "CBAABACBACBAABACBA");
}

#[test]
fn w3_wrr_weight_change_resets_cursor_keeps_level() {
    let mut svc = Service::bound(SchedKind::Wrr, &[('A', 4), ('B', 3), ('C', 2)]);
    assert_eq!(svc.picks(5), "AABAB");
    svc.edit('C', 0);
    assert_eq!(svc.picks(10), "ABABAABABA");
}

#[test]
fn w3_wrr_mark_after_edit() {
    let mut dests: Vec<DestInfo> = [('A', 4), ('B', 3), ('C', 2)]
        .map(|(n, w)| dest(n, w))
        .to_vec();
    let mut sched = Wrr::new();
    sched.update(&dests, DestChange::Init);
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let flow = FlowKey::new(Protocol::Tcp, ip, 1, ip, 80);
    let mut rng = SmallRng::seed_from_u64(1);
    let mut ctx = SchedContext {
        now: Instant::ZERO,
        rng: &mut rng,
    };
    for _ in 0..5 {
        sched.schedule(&dests, &flow, &mut ctx);
    }
    assert_eq!(sched.mark(), (Some(1), 2, 4, 1));
    dests[2].weight = 0;
    sched.update(&dests, DestChange::Edited { pos: 2 });
    assert_eq!(sched.mark(), (None, 2, 4, 1));
}

#[test]
fn w4_wrr_gcd_step() {
    let mut svc = Service::bound(SchedKind::Wrr, &[('A', 4), ('B', 2)]);
    assert_eq!(svc.picks(9), "AABAABAAB");
}

#[test]
fn wrr_gcd_rounding_on_update() {
    // [A(6), B(3)] bound: di 3, mw 4, cw 4. Adding C(9) keeps di 3, mw 7: cw 4 -> 4/3*3+1 = 4.
    let mut sched = Wrr::new();
    let mut dests = vec![dest('A', 6), dest('B', 3)];
    sched.update(&dests, DestChange::Init);
    assert_eq!(sched.mark(), (None, 4, 4, 3));
    dests.insert(0, dest('C', 9));
    sched.update(&dests, DestChange::Added { pos: 0 });
    assert_eq!(sched.mark(), (None, 4, 7, 3));
    // Editing C to 12: mw 10, cw 4 -> 4.
    dests[0].weight = 12;
    sched.update(&dests, DestChange::Edited { pos: 0 });
    assert_eq!(sched.mark(), (None, 4, 10, 3));
    // Removing everything but B(3): mw 1 < cw -> cw = mw.
    dests.remove(0);
    sched.update(
        &dests,
        DestChange::Removed {
            pos: 0,
            id: DestId('C' as u32),
        },
    );
    dests.remove(0);
    sched.update(
        &dests,
        DestChange::Removed {
            pos: 0,
            id: DestId('A' as u32),
        },
    );
    assert_eq!(sched.mark(), (None, 1, 1, 3));
}

#[test]
fn w5_wrr_overload() {
    let mut svc = Service::bound(SchedKind::Wrr, &[('A', 4), ('B', 3), ('C', 2)]);
    assert_eq!(svc.picks(3), "AAB");
    svc.set_overload('A', true);
    assert_eq!(svc.picks(8), "BCBCBBCB");
}

#[test]
fn w6_wrr_all_weights_zero() {
    let mut svc = Service::bound(SchedKind::Wrr, &[('A', 0), ('B', 0)]);
    assert_eq!(svc.picks(4), "----");
    let mut empty = Service::new(SchedKind::Wrr);
    assert_eq!(empty.picks(2), "--");
    // Everything overloaded: "all destinations are overloaded", from the head and mid-list.
    let mut svc = Service::bound(SchedKind::Wrr, &[('A', 2), ('B', 1)]);
    assert_eq!(svc.picks(1), "A");
    svc.set_overload('A', true);
    svc.set_overload('B', true);
    assert_eq!(svc.picks(3), "---");
    svc.set_overload('B', false);
    assert_eq!(svc.picks(3), "BBB");
}

/// [A(w1, act 1), B(w2, act 1, inact 10)]: spec vector L1.
fn l1() -> [(char, u32, u32, u32); 2] {
    [('A', 1, 1, 0), ('B', 2, 1, 10)]
}

fn state(kind: SchedKind, list: &[(char, u32, u32, u32)]) -> Service {
    let mut svc = Service::bound(
        kind,
        &list.iter().map(|&(n, w, _, _)| (n, w)).collect::<Vec<_>>(),
    );
    for &(n, _, act, inact) in list {
        svc.set_counts(n, act, inact);
    }
    svc
}

#[test]
fn l1_lc_wlc_sed() {
    for (kind, scan, want) in [
        (
            SchedKind::Lc,
            lc::scan as fn(&[DestInfo]) -> Option<usize>,
            'A',
        ),
        (SchedKind::Wlc, wlc::scan, 'B'),
        (SchedKind::Sed, sed::scan, 'B'),
    ] {
        let mut svc = state(kind, &l1());
        assert_eq!(svc.pick(), Some(want), "{kind}");
        assert_eq!(
            scan(&svc.dests).map(|i| svc.names[i]),
            Some(want),
            "{kind} scan"
        );
    }
}

#[test]
fn l1_all_counters_zero() {
    // lc and wlc: the first eligible dest; sed: the highest weight, ties to the earliest.
    let list = [
        ('A', 0, 0, 0),
        ('B', 1, 0, 0),
        ('C', 3, 0, 0),
        ('D', 3, 0, 0),
    ];
    assert_eq!(state(SchedKind::Lc, &list).pick(), Some('B'));
    assert_eq!(state(SchedKind::Wlc, &list).pick(), Some('B'));
    assert_eq!(state(SchedKind::Sed, &list).pick(), Some('C'));
}

#[test]
fn l2_nq_prefers_idle() {
    let list = [('A', 5, 3, 0), ('B', 1, 0, 50)];
    let mut svc = state(SchedKind::Nq, &list);
    assert_eq!(svc.pick(), Some('B'));
    assert_eq!(nq::scan(&svc.dests), Some(1));
    // No idle dest: sed's choice (A: 4/5 < B: 2/1).
    svc.set_counts('B', 1, 50);
    assert_eq!(svc.pick(), Some('A'));
    // An idle dest behind a better sed score still wins, the earliest idle first.
    let list = [('A', 100, 1, 0), ('B', 1, 0, 0), ('C', 1, 0, 0)];
    assert_eq!(state(SchedKind::Nq, &list).pick(), Some('B'));
}

#[test]
fn l3_fo_highest_weight_first() {
    let mut svc = Service::bound(SchedKind::Fo, &[('A', 2), ('B', 5), ('C', 5)]);
    assert_eq!(svc.pick(), Some('B'));
    assert_eq!(fo::scan(&svc.dests), Some(1));
    svc.set_overload('B', true);
    assert_eq!(svc.pick(), Some('C'));
    svc.edit('A', 9);
    assert_eq!(svc.pick(), Some('A'));
    let zeros = Service::bound(SchedKind::Fo, &[('A', 0)]).pick();
    assert_eq!(zeros, None);
}

#[test]
fn l4_ovf_overflow_on_active_above_weight() {
    let list = [('A', 3, 3, 0), ('B', 2, 0, 0)];
    let mut svc = state(SchedKind::Ovf, &list);
    assert_eq!(svc.pick(), Some('A'));
    svc.set_counts('A', 4, 0);
    assert_eq!(svc.pick(), Some('B'));
    assert_eq!(ovf::scan(&svc.dests), Some(1));
    svc.set_counts('B', 3, 0);
    assert_eq!(svc.pick(), None);
}

#[test]
fn lc_family_no_destination() {
    for kind in [
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Twos,
    ] {
        let mut empty = Service::new(kind);
        assert_eq!(empty.pick(), None, "{kind} empty");
        let mut svc = Service::bound(kind, &[('A', 0), ('B', 1)]);
        svc.set_overload('B', true);
        assert_eq!(svc.pick(), None, "{kind} quiesced + overloaded");
        svc.set_overload('B', false);
        assert_eq!(svc.pick(), Some('B'), "{kind} recovered");
    }
}

#[test]
fn registry_builds_each_kind() {
    for kind in [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Fo,
        SchedKind::Ovf,
        SchedKind::Twos,
    ] {
        assert_eq!(
            kind.build(SchedFlags::empty(), &SchedConfig::default())
                .kind(),
            kind
        );
    }
}

#[test]
fn twos_walk_biases_first_eligible_dest() {
    // Draws r in 0..=total, both equal: the choice is the walk's stop for r. The first
    // eligible dest stops r = 0 too, so it gets w + 1 of the total + 1 values.
    let mut dests: Vec<DestInfo> = [0, 3, 0, 2, 5]
        .iter()
        .enumerate()
        .map(|(i, &w)| DestInfo::new(DestId(i as u32), IpAddr::V4(Ipv4Addr::LOCALHOST), 80, w))
        .collect();
    dests[4].flags.set(DestFlags::OVERLOAD, false);
    let total = 10u32;
    let mut counts = [0u32; 5];
    for r in 0..=total {
        counts[twos::scan_with_draws(&dests, r, r).unwrap()] += 1;
    }
    assert_eq!(counts, [0, 4, 0, 2, 5]);
    // Raw draws are reduced modulo total + 1.
    assert_eq!(twos::scan_with_draws(&dests, 11 + 4, 11 + 4), Some(3));
}

#[test]
fn twos_returns_less_loaded_of_the_two() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut dests = vec![
        DestInfo::new(DestId(0), ip, 80, 1),
        DestInfo::new(DestId(1), ip, 80, 2),
    ];
    dests[0].activeconns = 1; // overhead 256 / weight 1
    dests[1].activeconns = 2; // overhead 512 / weight 2: equal load -> choice 1 kept
    assert_eq!(twos::scan_with_draws(&dests, 0, 3), Some(0));
    assert_eq!(twos::scan_with_draws(&dests, 3, 0), Some(1));
    dests[1].inactconns = 1; // now heavier
    assert_eq!(twos::scan_with_draws(&dests, 3, 0), Some(0));
}

#[test]
fn twos_compares_in_wrapping_int_like_the_kernel() {
    // choice 1: weight 1, 32768 active -> overhead 2^23; choice 2: weight 256, idle.
    // Exact arithmetic would prefer the idle choice 2 (256 * 2^23 > 0), but the kernel's int
    // product 256 * 2^23 = 2^31 wraps to i32::MIN, so it keeps choice 1.
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut dests = vec![
        DestInfo::new(DestId(0), ip, 80, 1),
        DestInfo::new(DestId(1), ip, 80, 256),
    ];
    dests[0].activeconns = 32768;
    assert_eq!(twos::scan_with_draws(&dests, 0, 257), Some(0));
    // One connection fewer and the product fits: the idle dest wins.
    dests[0].activeconns = 32767;
    assert_eq!(twos::scan_with_draws(&dests, 0, 257), Some(1));

    // The indexed scheduler agrees when fed the same draws.
    let mut sched = SchedKind::Twos.build(SchedFlags::empty(), &SchedConfig::default());
    dests[0].activeconns = 32768;
    sched.update(&dests, DestChange::Init);
    let mut fixed = Fixed(vec![257, 0]);
    let flow = FlowKey::new(Protocol::Tcp, ip, 1, ip, 80);
    let mut ctx = SchedContext {
        now: Instant::ZERO,
        rng: &mut fixed,
    };
    assert_eq!(sched.schedule(&dests, &flow, &mut ctx), Some(0));
}

/// Yields the given 32-bit values (popped from the back), then zeros.
struct Fixed(Vec<u32>);

impl rand::RngCore for Fixed {
    fn next_u32(&mut self) -> u32 {
        self.0.pop().unwrap_or(0)
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.next_u32())
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        dst.fill(0)
    }
}

#[test]
fn twos_draws_nothing_without_eligible_dest() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let dests = vec![DestInfo::new(DestId(0), ip, 80, 0)];
    let mut fixed = Fixed(vec![9, 8]);
    assert_eq!(twos::scan(&dests, &mut fixed), None);
    assert_eq!(fixed.0, [9, 8]);
    let mut sched = SchedKind::Twos.build(SchedFlags::empty(), &SchedConfig::default());
    sched.update(&dests, DestChange::Init);
    let flow = FlowKey::new(Protocol::Tcp, ip, 1, ip, 80);
    let mut ctx = SchedContext {
        now: Instant::ZERO,
        rng: &mut fixed,
    };
    assert_eq!(sched.schedule(&dests, &flow, &mut ctx), None);
    assert_eq!(fixed.0, [9, 8]);
}

#[test]
fn indexed_schedulers_fall_back_to_the_scan_when_not_told() {
    // Contract breaches by the owner (no `counts_changed`, no `update`) still give the kernel's
    // answer instead of a stale or out-of-range position.
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let flow = FlowKey::new(Protocol::Tcp, ip, 1, ip, 80);
    let scans: [(SchedKind, Option<Scan>); 7] = [
        (SchedKind::Lc, Some(lc::scan)),
        (SchedKind::Wlc, Some(wlc::scan)),
        (SchedKind::Sed, Some(sed::scan)),
        (SchedKind::Nq, Some(nq::scan)),
        (SchedKind::Fo, Some(fo::scan)),
        (SchedKind::Ovf, Some(ovf::scan)),
        (SchedKind::Twos, None),
    ];
    for (kind, scan) in scans {
        let mut dests: Vec<DestInfo> = (0..4)
            .map(|i| DestInfo::new(DestId(i), ip, 80, 4 - i))
            .collect();
        let mut sched = kind.build(SchedFlags::empty(), &SchedConfig::default());
        sched.update(&dests, DestChange::Init);
        let mut rng = SmallRng::seed_from_u64(3);
        let mut ctx = SchedContext {
            now: Instant::ZERO,
            rng: &mut rng,
        };
        // Everything overloaded behind the scheduler's back.
        for d in &mut dests {
            d.flags.set(DestFlags::OVERLOAD, true);
        }
        assert_eq!(
            sched.schedule(&dests, &flow, &mut ctx),
            None,
            "{kind} stale overload"
        );
        // A dest appended without `update`.
        dests
            .iter_mut()
            .for_each(|d| d.flags.set(DestFlags::OVERLOAD, false));
        dests.push(DestInfo::new(DestId(9), ip, 80, 100));
        let got = sched.schedule(&dests, &flow, &mut ctx);
        assert!(
            got.is_some_and(|i| i < dests.len()),
            "{kind} stale length: {got:?}"
        );
        if let Some(scan) = scan {
            assert_eq!(got, scan(&dests), "{kind} stale length");
        }
    }
}

#[test]
fn wrr_bounded_lowest_level_pass_and_cursor_after_failure() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let flow = FlowKey::new(Protocol::Tcp, ip, 1, ip, 80);
    let mut rng = SmallRng::seed_from_u64(1);
    let mut ctx = SchedContext {
        now: Instant::ZERO,
        rng: &mut rng,
    };
    let mut dests: Vec<DestInfo> = [('A', 2), ('B', 2), ('C', 1)]
        .map(|(n, w)| dest(n, w))
        .to_vec();
    let mut sched = Wrr::new();
    sched.update(&dests, DestChange::Init);
    let picks: Vec<_> = (0..5)
        .map(|_| sched.schedule(&dests, &flow, &mut ctx))
        .collect();
    assert_eq!(picks, [Some(0), Some(1), Some(0), Some(1), Some(2)]);
    assert_eq!(sched.mark(), (Some(2), 1, 2, 1));

    // All overloaded, starting mid-list (after C): the walk restarts at level mw, descends to
    // the lowest level and then stops after re-examining C; the cursor rests on C.
    for d in &mut dests {
        d.flags.set(DestFlags::OVERLOAD, true);
    }
    assert_eq!(sched.schedule(&dests, &flow, &mut ctx), None);
    assert_eq!(sched.mark(), (Some(2), 1, 2, 1));

    // Only C back: the bounded pass may still choose the starting dest itself.
    dests[2].flags.set(DestFlags::OVERLOAD, false);
    assert_eq!(sched.schedule(&dests, &flow, &mut ctx), Some(2));
    assert_eq!(sched.mark(), (Some(2), 1, 2, 1));

    // Starting from the head, failure leaves the cursor at the head with cw back at mw.
    dests[2].flags.set(DestFlags::OVERLOAD, true);
    sched.update(&dests, DestChange::Edited { pos: 2 });
    assert_eq!(sched.mark(), (None, 1, 2, 1));
    assert_eq!(sched.schedule(&dests, &flow, &mut ctx), None);
    assert_eq!(sched.mark(), (None, 2, 2, 1));
}
