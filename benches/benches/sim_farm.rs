//! The capacity simulator's engine: simulated connections per second of wall time on one
//! core, the director's `handle_flow` in the loop (SYN, requests, FIN, TIME_WAIT expiry).
//!
//! 8 real servers under wlc, one request per connection, Poisson arrivals at 50 000/s for
//! 2 simulated seconds (100 000 connections per iteration), utilisation about 0.6.
//! `nat`: server replies go through the director too (7 packets per connection); `dr`:
//! direct routing, the director sees only the client's packets (4 per connection).
use std::hint::black_box;

use criterion::{Criterion, Throughput};
use lvs_sim::engine::Engine;
use lvs_sim::model::Model;

/// The bench's scenario: `method` is `-m` (NAT) or `-g` (DR), `sched` the scheduler's name.
pub fn scenario(method: &str, sched: &str) -> Model {
    let mut rules = format!("-A -t 192.0.2.10:80 -s {sched}\n");
    for i in 1..=8 {
        rules += &format!("-a -t 192.0.2.10:80 -r 10.0.0.{i}:80 {method}\n");
    }
    let text = format!(
        r#"
duration = 2.0
rules = """
{rules}"""
[director]
conn_capacity = 262144
[[workload]]
service = "192.0.2.10:80"
arrival = {{ kind = "poisson", rate = 50000.0 }}
clients = {{ count = 1000000 }}
work = {{ kind = "exp", mean = 0.0001 }}
[output]
sample_interval = 0.1
"#
    );
    Model::from_toml(&text, None).unwrap()
}

pub fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim_farm");
    g.sample_size(10);
    for (name, method, sched) in [
        ("wlc_nat_100k_conns", "-m", "wlc"),
        ("wlc_dr_100k_conns", "-g", "wlc"),
        ("rr_dr_100k_conns", "-g", "rr"),
    ] {
        let m = scenario(method, sched);
        let conns = Engine::new(&m, 0).run(None).unwrap().counters.connections;
        g.throughput(Throughput::Elements(conns));
        g.bench_function(name, |b| {
            b.iter(|| black_box(Engine::new(&m, 0).run(None).unwrap().counters.packets))
        });
    }
    g.finish();
}
