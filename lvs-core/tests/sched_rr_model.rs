//! rr against a direct transcription of `ip_vs_rr.c`: a cursor that is the list head or the
//! destination chosen last, moved as `ip_vs_rr_del_dest` moves it. Random lists, weights,
//! OVERLOAD flags, additions, removals and edits; every decision and the cursor must agree.

use core::net::{IpAddr, Ipv4Addr};

use lvs_core::protocol::Protocol;
use lvs_core::sched::rr::Rr;
use lvs_core::sched::{DestChange, DestFlags, DestId, DestInfo, FlowKey, SchedContext, Scheduler};
use lvs_core::time::Instant;
use proptest::prelude::*;

/// The kernel's rr, cursor as `Option<last chosen>` (None = the list head).
#[derive(Default)]
struct Model {
    cursor: Option<usize>,
}

impl Model {
    fn update(&mut self, change: DestChange) {
        self.cursor = match (change, self.cursor) {
            (DestChange::Init, _) => None,
            (DestChange::Added { pos }, Some(c)) if pos <= c => Some(c + 1),
            (DestChange::Removed { pos, .. }, Some(c)) if pos == c => c.checked_sub(1),
            (DestChange::Removed { pos, .. }, Some(c)) if pos < c => Some(c - 1),
            (_, cursor) => cursor,
        };
    }

    fn schedule(&mut self, dests: &[DestInfo]) -> Option<usize> {
        let last = self.cursor.filter(|&c| c < dests.len());
        let n = dests.len();
        let start = last.map_or(0, |c| c + 1);
        // From the one after the cursor to the end, then (unless at the head) from the head
        // up to and including the cursor.
        let order = (start..n).chain(if last.is_some() { 0..start } else { 0..0 });
        for i in order {
            if dests[i].weight > 0 && !dests[i].flags.contains(DestFlags::OVERLOAD) {
                self.cursor = Some(i);
                return Some(i);
            }
        }
        None
    }
}

#[derive(Clone, Debug)]
enum Op {
    Add(u32, bool),
    Remove(usize),
    Edit(usize, u32, bool),
    Schedule,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..3, any::<bool>()).prop_map(|(w, o)| Op::Add(w, o)),
        any::<usize>().prop_map(Op::Remove),
        (any::<usize>(), 0u32..3, any::<bool>()).prop_map(|(p, w, o)| Op::Edit(p, w, o)),
        Just(Op::Schedule),
        Just(Op::Schedule),
        Just(Op::Schedule),
    ]
}

fn dest(id: u32, weight: u32, overloaded: bool) -> DestInfo {
    let mut d = DestInfo::new(DestId(id), IpAddr::V4(Ipv4Addr::from(id)), 80, weight);
    if overloaded {
        d.flags.set(DestFlags::OVERLOAD, true);
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rr_matches_the_kernel_cursor(ops in proptest::collection::vec(op(), 0..80)) {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let flow = FlowKey::new(Protocol::Tcp, ip, 1, ip, 80);
        let mut rng = rand_pcg::Pcg32::new(1, 1);
        let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut rng };
        let (mut rr, mut model) = (Rr::new(), Model::default());
        let mut dests: Vec<DestInfo> = Vec::new();
        rr.update(&dests, DestChange::Init);
        model.update(DestChange::Init);
        let mut next_id = 0;
        for op in ops {
            match op {
                Op::Add(w, o) => {
                    dests.insert(0, dest(next_id, w, o));
                    next_id += 1;
                    rr.update(&dests, DestChange::Added { pos: 0 });
                    model.update(DestChange::Added { pos: 0 });
                }
                Op::Remove(p) if !dests.is_empty() => {
                    let pos = p % dests.len();
                    let id = dests.remove(pos).id;
                    rr.update(&dests, DestChange::Removed { pos, id });
                    model.update(DestChange::Removed { pos, id });
                }
                Op::Edit(p, w, o) if !dests.is_empty() => {
                    let pos = p % dests.len();
                    let id = dests[pos].id.0;
                    dests[pos] = dest(id, w, o);
                    rr.update(&dests, DestChange::Edited { pos });
                    model.update(DestChange::Edited { pos });
                }
                Op::Schedule => {
                    prop_assert_eq!(rr.schedule(&dests, &flow, &mut ctx), model.schedule(&dests));
                }
                _ => {}
            }
            prop_assert_eq!(rr.cursor(), model.cursor);
        }
    }
}
