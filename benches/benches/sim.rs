//! `lvs-sim sched`: parsing a trace, and running one through the director (events per second
//! of the whole driver: trace events, timers, flow layer, output formatting).
//!
//! The trace has 10 000 flows against a rr service with 8 NAT real servers, each flow a
//! `syn`, `reply-syn`, `ack`, `fin`, `reply-fin` (50 000 packet events) with the clock moving
//! 1 ms per flow, so timers run too.
use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput};
use lvs_core::rules::RuleSet;
use lvs_sim::sched_cmd::{self, SchedOptions};
use lvs_sim::trace;

const FLOWS: u32 = 10_000;

fn rules() -> RuleSet {
    let mut text = String::from("-A -t 192.0.2.10:80 -s rr\n");
    for d in 1..=8 {
        let _ = writeln!(text, "-a -t 192.0.2.10:80 -r 10.0.0.{d}:8080 -m");
    }
    RuleSet::from_text(&text).unwrap()
}

fn trace_text() -> String {
    let mut t = String::new();
    for i in 0..FLOWS {
        let client = format!("203.0.{}.{}:{}", i / 250 % 250, i % 250 + 1, 1024 + i);
        let _ = writeln!(t, "at {}.{:03}", i / 1000, i % 1000);
        for kw in ["syn", "reply-syn", "ack", "fin", "reply-fin"] {
            let _ = writeln!(t, "{kw} {client} 192.0.2.10:80");
        }
    }
    t
}

pub fn benches(c: &mut Criterion) {
    let text = trace_text();
    let events = trace::parse(&text).unwrap().events.len() as u64;
    let mut g = c.benchmark_group("sim");
    g.throughput(Throughput::Elements(events));
    g.bench_function("parse_trace_60k_lines", |b| {
        b.iter(|| black_box(trace::parse(black_box(&text)).unwrap()))
    });
    let rules = rules();
    let parsed = trace::parse(&text).unwrap();
    let mut out = Vec::with_capacity(1 << 20);
    g.bench_function("run_trace_10k_flows", |b| {
        b.iter(|| {
            out.clear();
            sched_cmd::run_with(&rules, &parsed, SchedOptions::default(), &mut out).unwrap();
            black_box(out.len())
        })
    });
    g.finish();
}
