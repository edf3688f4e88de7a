//! Connection table: lookups by table size (hits, misses, reply direction), insert/remove
//! churn, expiry of 10 M flows with a bounded `handle_timeout`, and bytes per IPv4 flow.
//!
//! Keys are a pure function of an index, visited in a pseudo-random order (a multiplicative
//! permutation), so no key list is held in memory next to a 10 M-entry table.
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant as Clock;

use criterion::{BenchmarkId, Criterion, Throughput};
use lvs_core::conn::{
    ConnFlags, ConnId, ConnTable, ConnTableConfig, FwdMethod, HashKey, InKey, NewConn, OutKey,
};
use lvs_core::sched::DestId;
use lvs_core::{Duration, Instant, Protocol};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// Entries examined per `handle_timeout` call in these benches.
const EXPIRE_LIMIT: usize = lvs_core::conn::table::DEFAULT_EXPIRE_LIMIT;

fn caddr(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        0x0a00_0000u32.wrapping_add((i / 60_000) as u32),
    ))
}

fn cport(i: u64) -> u16 {
    1024 + (i % 60_000) as u16
}

fn key(i: u64) -> InKey {
    InKey {
        protocol: Protocol::Tcp,
        caddr: caddr(i),
        cport: cport(i),
        vaddr: IpAddr::V4(VIP),
        vport: 443,
    }
}

fn dest_of(i: u64) -> u32 {
    (i % 64) as u32
}

fn out_key(i: u64) -> OutKey {
    OutKey {
        protocol: Protocol::Tcp,
        saddr: IpAddr::V4(Ipv4Addr::new(10, 200, 0, dest_of(i) as u8)),
        sport: 8443,
        daddr: caddr(i),
        dport: cport(i),
    }
}

fn flow(i: u64, timeout: Duration) -> NewConn {
    let k = key(i);
    NewConn {
        protocol: k.protocol,
        caddr: k.caddr,
        cport: k.cport,
        vaddr: k.vaddr,
        vport: k.vport,
        daddr: IpAddr::V4(Ipv4Addr::new(10, 200, 0, dest_of(i) as u8)),
        dport: 8443,
        flags: ConnFlags::for_method(FwdMethod::Masq).with(ConnFlags::INACTIVE),
        fwmark: 0,
        dest: Some(DestId(dest_of(i))),
        control: None,
        timeout,
    }
}

fn build(n: u64, now: Instant, timeout: Duration) -> ConnTable {
    let mut t = ConnTable::new(ConnTableConfig::new(
        n as u32,
        HashKey::from_u128(0x5eed_0001_cafe),
    ));
    for i in 0..n {
        t.insert(now, flow(i, timeout)).expect("fits");
    }
    t
}

/// A pseudo-random walk over 0..n (a prime step is coprime to every n used here).
struct Walk {
    i: u64,
    n: u64,
}

impl Walk {
    fn next(&mut self) -> u64 {
        self.i = (self.i + 2_654_435_761) % self.n;
        self.i
    }
}

/// Builds (once, and only if a benchmark that needs it is selected) a table of `n` flows.
fn table_for(slot: &mut Option<ConnTable>, n: u64) -> &mut ConnTable {
    slot.get_or_insert_with(|| {
        let t0 = Clock::now();
        let table = build(n, Instant::from_secs(1), Duration::from_secs(900));
        println!("conn: built {n} flows in {:.2?}", t0.elapsed());
        println!(
            "conn: bytes per IPv4 flow at {n} flows: {:.2} (allocated_bytes; equal to the \
             counting-allocator measure of lvs-core/tests/conn_memory.rs)",
            table.allocated_bytes() as f64 / n as f64
        );
        table
    })
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("conn_lookup");
    g.throughput(Throughput::Elements(1));
    for n in [100_000u64, 1_000_000, 10_000_000] {
        let mut slot = None;
        let mut w = Walk { i: 0, n };
        g.bench_function(BenchmarkId::new("in_hit", n), |b| {
            let table = table_for(&mut slot, n);
            b.iter(|| {
                let id = table.lookup_in(&key(w.next()));
                debug_assert!(id.is_some());
                black_box(id)
            })
        });
        g.bench_function(BenchmarkId::new("in_miss", n), |b| {
            let table = table_for(&mut slot, n);
            b.iter(|| {
                // Same clients, a port never used: always a miss.
                let mut k = key(w.next());
                k.cport = 7;
                black_box(table.lookup_in(&k))
            })
        });
        g.bench_function(BenchmarkId::new("out_hit", n), |b| {
            let table = table_for(&mut slot, n);
            b.iter(|| black_box(table.lookup_out(&out_key(w.next()))))
        });
    }
    g.finish();
}

fn churn(c: &mut Criterion) {
    let mut g = c.benchmark_group("conn_churn");
    g.throughput(Throughput::Elements(1));
    let n = 1_000_000u64;
    let now = Instant::from_secs(1);
    let mut state: Option<(ConnTable, std::collections::VecDeque<ConnId>, u64)> = None;
    g.bench_function(BenchmarkId::new("expire_now_insert", n), |b| {
        let (table, ring, next) = state.get_or_insert_with(|| {
            let table = build(n, now, Duration::from_secs(900));
            let ring = (0..n).map(|i| table.lookup_in(&key(i)).unwrap()).collect();
            (table, ring, n)
        });
        b.iter(|| {
            let old = ring.pop_front().unwrap();
            black_box(table.expire_now(old, now));
            let ins = table
                .insert(now, flow(*next, Duration::from_secs(900)))
                .unwrap();
            *next += 1;
            ring.push_back(ins.id);
        })
    });
    g.finish();
}

/// Involuntary context switches of this thread so far (Linux), to tell a slow call from a
/// preempted one on a shared machine.
fn preemptions() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Expires 10 M flows that are all due in the same tick (the worst case for one call), with
/// bounded calls; prints the median, tail and longest single call, over all calls and over
/// the calls that were not preempted.
fn drain_report(n: u64) {
    let start = Instant::from_secs(1);
    let timeout = Duration::from_secs(60);
    let mut table = build(n, start, timeout);
    let now = start + timeout + Duration::from_secs(1);
    let mut times = Vec::new();
    let mut clean = Vec::new();
    let mut freed = 0u64;
    loop {
        let p0 = preemptions();
        let t0 = Clock::now();
        let more = table.handle_timeout(now, EXPIRE_LIMIT, |e| {
            freed += 1;
            black_box(e);
        });
        let dt = t0.elapsed();
        times.push(dt);
        if p0.is_some() && preemptions() == p0 {
            clean.push(dt);
        }
        if !more {
            break;
        }
    }
    assert_eq!(freed, n);
    for (what, v) in [
        ("all calls", &mut times),
        ("calls not preempted", &mut clean),
    ] {
        if v.is_empty() {
            continue;
        }
        v.sort();
        let pct = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
        println!(
            "conn: handle_timeout over {n} due flows, limit {EXPIRE_LIMIT}, {what}: {} calls, \
             median {:.1?}, p99 {:.1?}, p99.9 {:.1?}, longest {:.1?}",
            v.len(),
            pct(0.5),
            pct(0.99),
            pct(0.999),
            v[v.len() - 1]
        );
    }
}

fn expiry(c: &mut Criterion) {
    let n = 10_000_000u64;
    let timeout = Duration::from_secs(60);
    let mut g = c.benchmark_group("conn_expiry");
    g.throughput(Throughput::Elements(EXPIRE_LIMIT as u64));
    g.sample_size(30);
    let mut state: Option<(ConnTable, Instant)> = None;
    g.bench_function(
        BenchmarkId::new("handle_timeout_10M_due", EXPIRE_LIMIT),
        |b| {
            let (table, now) = state.get_or_insert_with(|| {
                drain_report(n);
                (
                    ConnTable::new(ConnTableConfig::new(n as u32, HashKey::from_u128(7))),
                    Instant::ZERO,
                )
            });
            // One bounded call on a table where millions are due; refilled outside the timing.
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    if table.is_empty() {
                        let base = *now + Duration::from_secs(1);
                        for i in 0..n {
                            table.insert(base, flow(i, timeout)).unwrap();
                        }
                        *now = base + timeout + Duration::from_secs(1);
                    }
                    let t0 = Clock::now();
                    table.handle_timeout(*now, EXPIRE_LIMIT, |e| {
                        black_box(e);
                    });
                    total += t0.elapsed();
                }
                total
            })
        },
    );
    g.finish();
}

pub fn benches(c: &mut Criterion) {
    lookups(c);
    churn(c);
    expiry(c);
}
