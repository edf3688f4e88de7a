//! The rule language: parse + apply and save, by rule-set size.
use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use lvs_core::rules::RuleSet;

/// `services` TCP services with `dests` masquerading real servers each.
fn rule_text(services: usize, dests: usize) -> String {
    let mut t = String::new();
    for s in 0..services {
        let vip = format!("10.{}.{}.1:80", s / 256, s % 256);
        let _ = writeln!(t, "-A -t {vip} -s wlc -p 300");
        for d in 0..dests {
            let _ = writeln!(
                t,
                "-a -t {vip} -r 172.16.{}.{}:8080 -m -w {}",
                d / 256,
                d % 256 + 1,
                d % 7
            );
        }
    }
    t
}

pub fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("rules");
    for (services, dests) in [(10, 10), (100, 10), (1000, 4)] {
        let text = rule_text(services, dests);
        let lines = services * (dests + 1);
        g.throughput(Throughput::Elements(lines as u64));
        let id = format!("{services}x{dests}");
        g.bench_with_input(BenchmarkId::new("from_text", &id), &text, |b, t| {
            b.iter(|| RuleSet::from_text(black_box(t)).unwrap())
        });
        let rules = RuleSet::from_text(&text).unwrap();
        g.bench_with_input(BenchmarkId::new("save", &id), &rules, |b, r| {
            b.iter(|| black_box(r).save())
        });
    }
    g.finish();
}
