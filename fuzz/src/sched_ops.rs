//! `sched_ops`: arbitrary sequences of control-plane and counter operations on a scheduler
//! pool, checked against the kernel's reference scans and the eligibility rules.

use std::net::{IpAddr, Ipv4Addr};

use lvs_core::sched::pool::Pool;
use lvs_core::sched::{
    fo, lc, nq, ovf, sed, twos, wlc, DestFlags, FlowKey, SchedConfig, SchedContext, SchedFlags,
    SchedKind,
};
use lvs_core::{Duration, Instant, Protocol};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

/// At most this many operations per input, so one input runs in bounded time.
const MAX_OPS: usize = 512;
/// At most this many destinations, so the kernel scans stay cheap.
const MAX_DESTS: usize = 40;

/// Replays a tiny RNG stream: twos' indexed pick and its scan must see identical draws.
struct Replay {
    draws: [u32; 2],
    next: usize,
}

impl RngCore for Replay {
    fn next_u32(&mut self) -> u32 {
        let v = self.draws[self.next % 2];
        self.next += 1;
        v
    }
    fn next_u64(&mut self) -> u64 {
        self.next_u32() as u64
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        rand_core_fill(self, dst)
    }
}

fn rand_core_fill(rng: &mut Replay, dst: &mut [u8]) {
    for chunk in dst.chunks_mut(4) {
        let v = rng.next_u32().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// The fuzz body: byte 0 picks the scheduler and flags, then each 4-byte group is one
/// operation.
pub fn sched_ops(data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let kind = SchedKind::ALL[head as usize % SchedKind::ALL.len()];
    let flags = SchedFlags::from_bits_truncate(head & 0x38);
    let mut pool = Pool::new(kind, flags, &SchedConfig::default());
    let mut now = Instant::ZERO;
    let mut next_addr = 1u32;
    let mut seed_rng = SmallRng::seed_from_u64(u64::from(head));
    let mut last_pick: std::collections::HashMap<IpAddr, IpAddr> = Default::default();
    for op in rest.chunks_exact(4).take(MAX_OPS) {
        let n = pool.dests().len();
        let arg = u16::from_le_bytes([op[2], op[3]]);
        let target = if n == 0 {
            None
        } else {
            Some(pool.dests()[op[1] as usize % n].id)
        };
        match op[0] % 8 {
            0 if n < MAX_DESTS => {
                let addr = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + next_addr));
                next_addr += 1;
                pool.add(addr, 80, u32::from(arg % 8))
                    .expect("fresh address, under mh's M");
            }
            1 => {
                if let Some(id) = target {
                    let removed = pool.remove(id).expect("linked");
                    assert!(!removed.is_available());
                }
            }
            2 => {
                if let Some(id) = target {
                    pool.set_weight(id, u32::from(arg % 8));
                }
            }
            3 => {
                if let Some(id) = target {
                    pool.update_counts(id, |d| d.flags.set(DestFlags::OVERLOAD, arg & 1 == 1));
                }
            }
            4 => {
                if let Some(id) = target {
                    pool.update_counts(id, |d| {
                        d.activeconns = u32::from(arg >> 8);
                        d.inactconns = u32::from(arg & 0xff) * 3;
                    });
                }
            }
            5 => now += Duration::from_secs(u64::from(arg)),
            _ => {
                let flow = FlowKey::new(
                    Protocol::Tcp,
                    IpAddr::V4(Ipv4Addr::from(u32::from(arg) << 8 | u32::from(op[1]))),
                    arg,
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, op[1] % 4)),
                    80,
                );
                for _ in 0..64 {
                    if pool.poll_timeout().is_none_or(|t| t > now) {
                        break;
                    }
                    pool.handle_timeout(now);
                }
                let draws = [seed_rng.next_u32(), seed_rng.next_u32()];
                let mut rng = Replay { draws, next: 0 };
                let mut ctx = SchedContext { now, rng: &mut rng };
                let chosen = pool.schedule(&flow, &mut ctx);
                check(&pool, kind, chosen.and_then(|id| pool.position(id)), draws);
                if let Some(id) = chosen {
                    let d = pool
                        .get(id)
                        .expect("a scheduler returns linked destinations");
                    assert!(d.weight > 0, "{kind} chose weight 0");
                    let lblc_hit = matches!(kind, SchedKind::Lblc | SchedKind::Lblcr)
                        && last_pick.get(&flow.daddr) == Some(&d.addr);
                    assert!(!d.is_overloaded() || lblc_hit, "{kind} chose OVERLOAD");
                    last_pick.insert(flow.daddr, d.addr);
                }
            }
        }
    }
}

/// The indexed schedulers must pick exactly what the kernel's scan picks.
fn check(pool: &Pool, kind: SchedKind, got: Option<usize>, draws: [u32; 2]) {
    let dests = pool.dests();
    let want = match kind {
        SchedKind::Lc => lc::scan(dests),
        SchedKind::Wlc => wlc::scan(dests),
        SchedKind::Sed => sed::scan(dests),
        SchedKind::Nq => nq::scan(dests),
        SchedKind::Fo => fo::scan(dests),
        SchedKind::Ovf => ovf::scan(dests),
        SchedKind::Twos => twos::scan_with_draws(dests, draws[0], draws[1]),
        _ => return,
    };
    assert_eq!(
        got, want,
        "{kind}: index and kernel scan disagree on {dests:?}"
    );
}
