//! Director flow layer: a new TCP flow (SYN: lookup miss, service lookup, wlc over 100 real
//! servers, insert, state transition) with 1 M flows in the table, and a packet of an existing
//! flow (lookup hit, TCP transition, re-arm, statistics) at 100 k and 1 M flows.
//!
//! Flow keys are a pure function of an index visited in a multiplicative-permutation order.
//! The background flows are ESTABLISHED with a 23-day timeout (`--set`), so that between
//! measured batches the new flows (SYN_RECV, 60 s) can be expired by advancing time without
//! touching the background.
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant as Clock;

use criterion::{BenchmarkId, Criterion, Throughput};
use lvs_core::conn::HashKey;
use lvs_core::director::{Director, DirectorConfig, FlowPacket, FlowVerdict, PacketDir};
use lvs_core::rules::RuleSet;
use lvs_core::{Duration, Instant, Protocol};

fn vip() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 443)
}

fn client(i: u64) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(
            0x0a00_0000u32.wrapping_add((i / 60_000) as u32),
        )),
        1024 + (i % 60_000) as u16,
    )
}

fn pkt(i: u64, flags: u8) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        src: client(i),
        dst: vip(),
        fwmark: 0,
        tcp_flags: flags,
        len: 60,
        dir: PacketDir::FromClient,
    }
}

fn rules() -> RuleSet {
    let mut text = String::from("-A -t 198.51.100.1:443 -s wlc\n--set 2000000 0 0\n");
    for d in 0..100 {
        text.push_str(&format!(
            "-a -t 198.51.100.1:443 -r 10.200.{}.{}:443 -w {}\n",
            d / 200,
            d % 200 + 1,
            1 + d % 3
        ));
    }
    RuleSet::from_text(&text).unwrap()
}

/// A director holding `n` ESTABLISHED flows (indexes 0..n), with room for `extra` more.
fn director(n: u64, extra: u64) -> (Director, Instant) {
    let mut d = Director::new(DirectorConfig::new(
        (n + extra) as u32,
        HashKey::from_u128(0xbe7c),
    ));
    let now = Instant::from_secs(10);
    d.apply_rules(now, &rules()).unwrap();
    for i in 0..n {
        d.handle_flow(now, &pkt(i, 0x02));
        d.handle_flow(now, &pkt(i, 0x10));
    }
    assert_eq!(d.table().len() as u64, n);
    (d, now)
}

/// The multiplier of a permutation of 0..n (n > 1): i -> i * a mod n with a coprime to n.
fn multiplier(n: u64) -> u64 {
    let mut a = 2_654_435_761 % n;
    while gcd(a, n) != 1 {
        a += 1;
    }
    a
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn new_flow(c: &mut Criterion) {
    let mut g = c.benchmark_group("director/new_flow_syn_wlc100");
    g.throughput(Throughput::Elements(1));
    let n = 1_000_000u64;
    // Up to this many new flows per measured batch; the rest of the capacity is headroom.
    const BATCH_MAX: u64 = 400_000;
    let (mut d, mut now) = director(n, BATCH_MAX);
    let mut next = n;
    g.bench_function(BenchmarkId::from_parameter("1M"), |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(BATCH_MAX);
                let start = Clock::now();
                for k in 0..batch {
                    let v = d.handle_flow(now, &pkt(next + k, 0x02));
                    debug_assert!(matches!(v, FlowVerdict::Forward { new: true, .. }));
                    black_box(v);
                }
                total += start.elapsed();
                next += batch;
                // Not measured: expire the new SYN_RECV flows (60 s), keep the background.
                now += Duration::from_secs(61);
                while d.poll_timeout().is_some_and(|t| t <= now) {
                    d.handle_timeout(now);
                }
                assert_eq!(d.table().len() as u64, n);
                left -= batch;
            }
            total
        })
    });
    g.finish();
}

fn existing_flow(c: &mut Criterion) {
    let mut g = c.benchmark_group("director/existing_flow_ack");
    g.throughput(Throughput::Elements(1));
    for (n, name) in [(100_000u64, "100k"), (1_000_000, "1M")] {
        let (mut d, now) = director(n, 0);
        let a = multiplier(n);
        let mut i = 0u64;
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let v = d.handle_flow(now, &pkt(i * a % n, 0x10));
                i = if i + 1 == n { 0 } else { i + 1 };
                black_box(v)
            })
        });
    }
    g.finish();
}

pub fn benches(c: &mut Criterion) {
    new_flow(c);
    existing_flow(c);
}
