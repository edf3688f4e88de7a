//! rr and wrr decisions, and the least-connection family (lc, wlc, sed, nq, fo, ovf, twos):
//! the kernel's O(n) scan next to the indexed scheduler, by destination count.
//!
//! Names: `sched_lc/<kind>/<variant>/<dests>` with variant `scan` (the reference loop),
//! `indexed` (one decision from the index), `bind` (a decision plus the `counts_changed` that
//! follows binding the new connection to the chosen destination: the honest per-connection
//! cost).
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BenchmarkId, Criterion};
use lvs_core::protocol::Protocol;
use lvs_core::sched::{
    fo, lc, nq, ovf, sed, twos, wlc, DestChange, DestId, DestInfo, FlowKey, SchedConfig,
    SchedContext, SchedFlags, SchedKind,
};
use lvs_core::time::Instant;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg32;

/// A reference scan of the least-connection family.
type Scan = fn(&[DestInfo]) -> Option<usize>;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// A busy service: weights 1..=10, 0..200 active and 0..2000 inactive connections per dest.
fn realistic(n: usize, seed: u64) -> Vec<DestInfo> {
    let mut rng = Pcg32::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32));
            let mut d = DestInfo::new(DestId(i as u32), ip, 80, rng.random_range(1..=10));
            d.activeconns = rng.random_range(0..200);
            d.inactconns = rng.random_range(0..2000);
            d
        })
        .collect()
}

fn flow() -> FlowKey {
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    FlowKey::new(Protocol::Tcp, ip, 40000, ip, 80)
}

fn build(kind: SchedKind, dests: &[DestInfo]) -> Box<dyn lvs_core::sched::Scheduler> {
    let mut s = kind.build(SchedFlags::empty(), &SchedConfig::default());
    s.update(dests, DestChange::Init);
    s
}

pub fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("sched_lc");
    let flow = flow();

    for kind in [SchedKind::Rr, SchedKind::Wrr] {
        let dests = realistic(100, 1);
        let mut s = build(kind, &dests);
        let mut rng = Pcg32::seed_from_u64(2);
        g.bench_function(BenchmarkId::new(format!("{kind}/indexed"), 100), |b| {
            let mut ctx = SchedContext {
                now: Instant::ZERO,
                rng: &mut rng,
            };
            // `iter` passes the returned decision through `black_box` itself. A second
            // `black_box` here spilled the 16-byte `Option<usize>` as two 8-byte stores that
            // `iter` then reloaded as one 16-byte load: a failed store-to-load forward, about
            // 7 ns per iteration on its own, which is more than an rr decision costs.
            b.iter(|| s.schedule(black_box(&dests), &flow, &mut ctx))
        });
    }

    let scans: [(SchedKind, Scan); 6] = [
        (SchedKind::Lc, lc::scan),
        (SchedKind::Wlc, wlc::scan),
        (SchedKind::Sed, sed::scan),
        (SchedKind::Nq, nq::scan),
        (SchedKind::Fo, fo::scan),
        (SchedKind::Ovf, ovf::scan),
    ];
    for n in SIZES {
        for (kind, scan) in scans {
            let dests = realistic(n, n as u64);
            g.bench_function(BenchmarkId::new(format!("{kind}/scan"), n), |b| {
                b.iter(|| black_box(scan(black_box(&dests))))
            });
            let mut s = build(kind, &dests);
            let mut rng = Pcg32::seed_from_u64(3);
            g.bench_function(BenchmarkId::new(format!("{kind}/indexed"), n), |b| {
                let mut ctx = SchedContext {
                    now: Instant::ZERO,
                    rng: &mut rng,
                };
                b.iter(|| s.schedule(black_box(&dests), &flow, &mut ctx))
            });
            bind(&mut g, kind, n, &flow);
        }

        let dests = realistic(n, n as u64);
        let mut rng = Pcg32::seed_from_u64(4);
        g.bench_function(BenchmarkId::new("twos/scan", n), |b| {
            b.iter(|| black_box(twos::scan(black_box(&dests), &mut rng)))
        });
        let mut s = build(SchedKind::Twos, &dests);
        let mut rng = Pcg32::seed_from_u64(4);
        g.bench_function(BenchmarkId::new("twos/indexed", n), |b| {
            let mut ctx = SchedContext {
                now: Instant::ZERO,
                rng: &mut rng,
            };
            b.iter(|| s.schedule(black_box(&dests), &flow, &mut ctx))
        });
        bind(&mut g, SchedKind::Twos, n, &flow);
    }
    g.finish();
}

/// A decision, then the new connection counted on the chosen dest and reported.
fn bind(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    kind: SchedKind,
    n: usize,
    flow: &FlowKey,
) {
    let mut dests = realistic(n, n as u64);
    let mut s = build(kind, &dests);
    let mut rng = Pcg32::seed_from_u64(5);
    g.bench_function(BenchmarkId::new(format!("{kind}/bind"), n), |b| {
        let mut ctx = SchedContext {
            now: Instant::ZERO,
            rng: &mut rng,
        };
        b.iter(|| {
            let chosen = s.schedule(&dests, flow, &mut ctx);
            if let Some(i) = chosen {
                dests[i].activeconns += 1;
                s.counts_changed(&dests, i);
            }
            black_box(chosen)
        })
    });
}
