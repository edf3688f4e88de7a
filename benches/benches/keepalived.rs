//! keepalived.conf reading: parse + build the rule set and settings, by configuration size.
use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use lvs_core::keepalived::{parse, MemoryFiles};

/// `services` virtual servers with `dests` real servers each, every real server with a
/// TCP_CHECK.
fn conf(services: usize, dests: usize) -> String {
    let mut t = String::new();
    for s in 0..services {
        let _ = writeln!(
            t,
            "virtual_server 10.{}.{}.1 80 {{\n    delay_loop 5\n    lvs_sched wlc\n    lvs_method NAT\n    protocol TCP\n    persistence_timeout 300",
            s / 256,
            s % 256
        );
        for d in 0..dests {
            let _ = writeln!(
                t,
                "    real_server 172.16.{}.{} 8080 {{\n        weight {}\n        TCP_CHECK {{\n            connect_timeout 3\n        }}\n    }}",
                d / 256,
                d % 256 + 1,
                d % 7
            );
        }
        t.push_str("}\n");
    }
    t
}

pub fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("keepalived");
    for (services, dests) in [(10, 10), (100, 10), (1000, 4)] {
        let text = conf(services, dests);
        g.throughput(Throughput::Elements((services * (dests + 1)) as u64));
        let id = format!("{services}x{dests}");
        let mut fs = MemoryFiles::new();
        g.bench_with_input(BenchmarkId::new("parse", &id), &text, |b, t| {
            b.iter(|| parse("keepalived.conf", black_box(t), &mut fs).unwrap())
        });
    }
    g.finish();
}
