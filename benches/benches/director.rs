//! Director flow layer: a new TCP flow (SYN: lookup miss, service lookup, wlc over 100 real
//! servers, insert, state transition) with 1 M flows in the table, and a packet of an existing
//! flow (lookup hit, TCP transition, re-arm, statistics) at 100 k and 1 M flows; and the same
//! packet as bytes through `handle_packet` (classify, lookup, state, NAT rewrite in place).
//!
//! Flow keys are a pure function of an index visited in a multiplicative-permutation order.
//! The background flows are ESTABLISHED with a 23-day timeout (`--set`), so that between
//! measured batches the new flows (SYN_RECV, 60 s) can be expired by advancing time without
//! touching the background.
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant as Clock;

use criterion::{BenchmarkId, Criterion, Throughput};
use lvs_core::conn::HashKey;
use lvs_core::director::{Director, DirectorConfig, FlowVerdict, PacketVerdict};
use lvs_core::rules::RuleSet;

use crate::workload::{client, pkt, vip};
use lvs_core::{Duration, Instant};

fn rules() -> RuleSet {
    rules_with("")
}

/// The 100-server service, each real server added with the extra `ipvsadm` options `method`.
fn rules_with(method: &str) -> RuleSet {
    let mut text = String::from("-A -t 198.51.100.1:443 -s wlc\n--set 2000000 0 0\n");
    for d in 0..100 {
        text.push_str(&format!(
            "-a -t 198.51.100.1:443 -r 10.200.{}.{}:443 -w {}{method}\n",
            d / 200,
            d % 200 + 1,
            1 + d % 3
        ));
    }
    RuleSet::from_text(&text).unwrap()
}

/// A director holding `n` ESTABLISHED flows (indexes 0..n), with room for `extra` more.
fn director(n: u64, extra: u64) -> (Director, Instant) {
    director_with(n, extra, &rules())
}

/// [`director`] with the given rules.
fn director_with(n: u64, extra: u64, rules: &RuleSet) -> (Director, Instant) {
    let mut d = Director::new(DirectorConfig::new(
        (n + extra) as u32,
        HashKey::from_u128(0xbe7c),
    ));
    let now = Instant::from_secs(10);
    d.apply_rules(now, rules).unwrap();
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

/// Not measured: expires a batch's new SYN_RECV flows (60 s), keeping the `n` background
/// flows.
fn expire_new_flows(d: &mut Director, now: &mut Instant, n: u64) {
    *now += Duration::from_secs(61);
    while d.poll_timeout().is_some_and(|t| t <= *now) {
        d.handle_timeout(*now);
    }
    assert_eq!(d.table().len() as u64, n);
}

/// Up to this many new flows per measured batch; the rest of the capacity is headroom.
const BATCH_MAX: u64 = 400_000;

/// Times `syns(d, now, first, count)` handing the director `count` new flows (indexes from
/// `first`), in batches of at most [`BATCH_MAX`] between which the new flows expire unmeasured.
fn time_new_flows(
    d: &mut Director,
    now: &mut Instant,
    next: &mut u64,
    n: u64,
    iters: u64,
    mut syns: impl FnMut(&mut Director, Instant, u64, u64),
) -> std::time::Duration {
    let mut total = std::time::Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let batch = left.min(BATCH_MAX);
        let start = Clock::now();
        syns(d, *now, *next, batch);
        total += start.elapsed();
        *next += batch;
        expire_new_flows(d, now, n);
        left -= batch;
    }
    total
}

fn new_flow(c: &mut Criterion) {
    let mut g = c.benchmark_group("director/new_flow_syn_wlc100");
    g.throughput(Throughput::Elements(1));
    let n = 1_000_000u64;
    let (mut d, mut now) = director(n, BATCH_MAX);
    let mut next = n;
    g.bench_function(BenchmarkId::from_parameter("1M"), |b| {
        b.iter_custom(|iters| {
            time_new_flows(
                &mut d,
                &mut now,
                &mut next,
                n,
                iters,
                |d, now, first, count| {
                    for k in 0..count {
                        let v = d.handle_flow(now, &pkt(first + k, 0x02));
                        debug_assert!(matches!(v, FlowVerdict::Forward { new: true, .. }));
                        black_box(v);
                    }
                },
            )
        })
    });
    // The same SYNs as a driver with packet batches (recvmmsg, a tun/tap queue, a capture)
    // handles them: for each group of 16, the flows' hints (hashes) first, their table
    // buckets and free slots read together, then each SYN with its hint. Same work per flow;
    // the cache misses of a group overlap instead of following each other.
    const GROUP: u64 = 16;
    g.bench_function(BenchmarkId::new("batched16", "1M"), |b| {
        b.iter_custom(|iters| {
            time_new_flows(
                &mut d,
                &mut now,
                &mut next,
                n,
                iters,
                |d, now, first, count| {
                    let mut k = 0;
                    while k < count {
                        let m = GROUP.min(count - k);
                        let pkts: [_; GROUP as usize] =
                            core::array::from_fn(|j| pkt(first + k + (j as u64).min(m - 1), 0x02));
                        let hints = pkts.map(|p| d.flow_hint(&p));
                        for h in &hints[..m as usize] {
                            d.prefetch(h);
                        }
                        for (p, h) in pkts.iter().zip(&hints).take(m as usize) {
                            let v = d.handle_flow_hinted(now, p, h);
                            debug_assert!(matches!(v, FlowVerdict::Forward { new: true, .. }));
                            black_box(v);
                        }
                        k += m;
                    }
                },
            )
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
    // The same ACKs as a batching driver hands them over, in groups of 16: every hint first,
    // then the buckets of the group read together (`prefetch`), and with `_conn` the entries
    // they name read together too (`prefetch_conn`), then each packet with its hint. Per
    // packet (the group's time / 16).
    const GROUP: u64 = 16;
    let n = 1_000_000u64;
    let (mut d, now) = director(n, 0);
    let a = multiplier(n);
    for (name, entries) in [("batched16", false), ("batched16_conn", true)] {
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new(name, "1M"), |b| {
            b.iter_custom(|iters| {
                let groups = iters.div_ceil(GROUP);
                let t = std::time::Instant::now();
                for _ in 0..groups {
                    let pkts: [_; GROUP as usize] =
                        core::array::from_fn(|j| pkt((i + j as u64) % n * a % n, 0x10));
                    i = (i + GROUP) % n;
                    let hints = pkts.map(|p| d.flow_hint(&p).without_insert());
                    for h in &hints {
                        d.prefetch(h);
                    }
                    if entries {
                        for h in &hints {
                            d.prefetch_conn(h);
                        }
                    }
                    for (p, h) in pkts.iter().zip(&hints) {
                        black_box(d.handle_flow_hinted(now, p, h));
                    }
                }
                t.elapsed().mul_f64(iters as f64 / (groups * GROUP) as f64)
            })
        });
    }
    g.finish();
}

/// One's-complement sum of `data` (RFC 1071), folded, not inverted.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for ch in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([ch[0], *ch.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Bytes of a 40-byte TCP ACK (IPv4, TTL 64, DF) of flow `i` to the VIP, valid checksums,
/// written at `buf[..40]`.
fn ack_bytes(i: u64, buf: &mut [u8]) {
    let (src, dst) = (client(i), vip());
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        unreachable!()
    };
    let b = &mut buf[..40];
    b.fill(0);
    b[..10].copy_from_slice(&[0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6]);
    b[12..16].copy_from_slice(&s.octets());
    b[16..20].copy_from_slice(&d.octets());
    let ipsum = !(sum16(&b[..20], 0) as u16);
    b[10..12].copy_from_slice(&ipsum.to_be_bytes());
    b[20..22].copy_from_slice(&src.port().to_be_bytes());
    b[22..24].copy_from_slice(&dst.port().to_be_bytes());
    b[24..28].copy_from_slice(&1000u32.to_be_bytes());
    b[28..32].copy_from_slice(&1u32.to_be_bytes());
    b[32] = 0x50;
    b[33] = 0x10;
    b[34..36].copy_from_slice(&64240u16.to_be_bytes());
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&s.octets());
    pseudo[4..8].copy_from_slice(&d.octets());
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&20u16.to_be_bytes());
    let tcpsum = !(sum16(&b[20..40], sum16(&pseudo, 0)) as u16);
    b[36..38].copy_from_slice(&tcpsum.to_be_bytes());
}

/// Existing-flow packets are built outside the timed loop in batches of this many.
const BATCH: u64 = 8192;

/// Hands a batch of 40-byte packets (`bufs`) to the director, timed.
type HandleBatch = fn(&mut Director, Instant, &mut [u8], &mut [u8]);

/// One at a time through `handle_packet`.
fn one_at_a_time(d: &mut Director, now: Instant, bufs: &mut [u8], out: &mut [u8]) {
    for p in bufs.chunks_exact_mut(40) {
        let v = d.handle_packet(now, p, 0, out);
        debug_assert!(matches!(v, PacketVerdict::Forward { new: false, .. }));
        black_box(v);
    }
}

/// Packets handled by [`batched16_conn`] together.
const GROUP: usize = 16;

/// In groups of `GROUP` (`bufs` holds whole groups): each packet classified and its hint
/// taken, the group's table buckets then the entries they name read together (`prefetch`,
/// `prefetch_conn`), then each packet with its summary and hint
/// (`handle_classified_hinted`).
fn batched16_conn(d: &mut Director, now: Instant, bufs: &mut [u8], out: &mut [u8]) {
    for group in bufs.chunks_exact_mut(40 * GROUP) {
        let cs: [_; GROUP] = core::array::from_fn(|j| {
            lvs_core::wire::classify(&group[j * 40..j * 40 + 40]).unwrap()
        });
        let hints = cs.map(|c| d.packet_hint(&c, 0));
        for h in &hints {
            d.prefetch(h);
        }
        for h in &hints {
            d.prefetch_conn(h);
        }
        for ((p, c), h) in group.chunks_exact_mut(40).zip(&cs).zip(&hints) {
            let v = d.handle_classified_hinted(now, p, 0, c, out, 0, h);
            debug_assert!(matches!(v, PacketVerdict::Forward { new: false, .. }));
            black_box(v);
        }
    }
}

/// Existing-flow NAT packets over `n` flows, handed over by `handle` in batches of whole
/// `group`s (the last batch may add up to `group - 1` packets, whose share of the time is
/// not counted), built outside the timed part.
fn existing_flow_packets(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    n: u64,
    group: u64,
    handle: HandleBatch,
) {
    existing_flow_packets_on(g, id, n, group, handle, false);
}

/// [`existing_flow_packets`], with the director's large allocations advised to huge pages
/// (`huge`: lvs-tun's allocator, as `lvs-tun run` makes them) or not.
fn existing_flow_packets_on(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    n: u64,
    group: u64,
    handle: HandleBatch,
    huge: bool,
) {
    crate::ALLOC.set_advise(huge);
    let (mut d, now) = director_with(n, 0, &rules_with(" -m"));
    crate::ALLOC.set_advise(false);
    let a = multiplier(n);
    let mut i = 0u64;
    let mut bufs = vec![0u8; BATCH as usize * 40];
    let mut out = [0u8; 576];
    // Filtered out (criterion never calls the routine): nothing to check afterwards.
    let mut ran = false;
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            ran = true;
            let mut total = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(BATCH).next_multiple_of(group);
                for (k, p) in bufs.chunks_exact_mut(40).take(batch as usize).enumerate() {
                    ack_bytes((i + k as u64) % n * a % n, p);
                }
                let start = Clock::now();
                handle(&mut d, now, &mut bufs[..batch as usize * 40], &mut out);
                total += start
                    .elapsed()
                    .mul_f64(left.min(batch) as f64 / batch as f64);
                i = (i + batch) % n;
                left -= left.min(batch);
            }
            total
        })
    });
    // The rewrite really happened: the first packet now goes to a real server.
    if ran {
        assert_eq!(bufs[16], 10, "destination rewritten to 10.200.x.y");
        assert_eq!(bufs[8], 63, "TTL decremented");
    }
}

fn existing_flow_packet(c: &mut Criterion) {
    let mut g = c.benchmark_group("director/existing_flow_packet_nat");
    g.throughput(Throughput::Elements(1));
    for (n, name) in [(100_000u64, "100k"), (1_000_000, "1M")] {
        existing_flow_packets(
            &mut g,
            BenchmarkId::from_parameter(name),
            n,
            1,
            one_at_a_time,
        );
    }
    // The same packets as a batching driver hands them over, in groups of 16
    // (`batched16_conn`). Classification is in the timed part.
    existing_flow_packets(
        &mut g,
        BenchmarkId::new("batched16_conn", "1M"),
        1_000_000,
        GROUP as u64,
        batched16_conn,
    );
    // The same packets as a driver that software-pipelines its receive queue hands them
    // over (`pipeline::handle_pipelined`): no group boundaries, so the memory latency of a
    // packet's two dependent reads overlaps the work on the packets before it.
    // Classification and hashing are in the timed part.
    for (n, name) in [(100_000u64, "100k"), (1_000_000, "1M")] {
        let id = BenchmarkId::new("pipelined", name);
        existing_flow_packets(&mut g, id, n, 1, crate::pipeline::handle_pipelined);
    }
    // The same read-ahead inside the library: the packets handed over as one burst
    // (`Director::handle_burst`). Classification and hashing are in the timed part.
    for (n, name) in [(100_000u64, "100k"), (1_000_000, "1M")] {
        let id = BenchmarkId::new("burst", name);
        existing_flow_packets(&mut g, id, n, 1, crate::pipeline::handle_burst);
    }
    // The director's table on transparent huge pages (as `lvs-tun run` allocates it), one
    // at a time and as bursts: no page-table walk per lookup.
    for (n, name) in [(100_000u64, "100k"), (1_000_000, "1M")] {
        let id = BenchmarkId::new("huge", name);
        existing_flow_packets_on(&mut g, id, n, 1, one_at_a_time, true);
        let id = BenchmarkId::new("burst_huge", name);
        existing_flow_packets_on(&mut g, id, n, 1, crate::pipeline::handle_burst, true);
    }
    g.finish();
}

pub fn benches(c: &mut Criterion) {
    new_flow(c);
    existing_flow(c);
    existing_flow_packet(c);
}
