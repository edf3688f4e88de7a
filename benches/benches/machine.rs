//! The machine's own floor under the director's lookups: one load that depends on the one
//! before, at a random cache line of a buffer as large as a connection table.
//!
//! A packet of an existing flow cannot start its rewrite before its entry is read, and at
//! 1M flows (about 60 MB of table and index: 59.4 bytes per flow measured at 10M, see
//! `lvs-core/tests/conn_memory.rs`) that read misses every cache and, with 4 KiB pages, the
//! TLB too. `machine/dependent_load/64MB` is what one such miss costs here; at `8MB` the
//! buffer is the size of a 100k-flow table. The chain is one random cycle through every
//! 64-byte line (Sattolo's algorithm), so the hardware prefetchers cannot guess the next
//! address and no line is visited twice before all have been.
//!
//! `machine/eight_chains/64MB` follows eight such chains at once (one iteration = one load
//! on each, eight independent misses in flight): what a batch of packets whose lookups
//! overlap can at best pay per miss, divided by eight.

use std::hint::black_box;

use criterion::Criterion;
use rand::{Rng, SeedableRng};

/// A buffer of `bytes` (a multiple of 64) whose lines form one random cycle: the first word
/// of each line holds the word index of the next line's first word.
fn cycle(bytes: usize) -> Vec<u64> {
    let lines = bytes / 64;
    let mut order: Vec<usize> = (0..lines).collect();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(64);
    // Sattolo: a uniformly random permutation with a single cycle.
    for i in (1..lines).rev() {
        let j = rng.random_range(0..i);
        order.swap(i, j);
    }
    let mut words = vec![0u64; bytes / 8];
    for (k, &line) in order.iter().enumerate() {
        let next = order[(k + 1) % lines];
        words[line * 8] = (next * 8) as u64;
    }
    words
}

pub fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("machine/dependent_load");
    for (name, bytes) in [("8MB", 8usize << 20), ("64MB", 64 << 20)] {
        let words = cycle(bytes);
        let mut at = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                at = black_box(words[at]) as usize;
            })
        });
        // The chain is a single cycle: following it for every line comes back to the start.
        let mut p = 0usize;
        for _ in 0..bytes / 64 {
            p = words[p] as usize;
        }
        assert_eq!(p, 0, "{name}: not one cycle");
    }
    g.finish();

    let bytes = 64usize << 20;
    let words = cycle(bytes);
    let lines = bytes / 64;
    // Eight starting points evenly spaced along the one cycle: the chains never meet.
    let mut starts = [0usize; 8];
    let mut p = 0usize;
    for k in 0..lines {
        if k % (lines / 8) == 0 && k / (lines / 8) < 8 {
            starts[k / (lines / 8)] = p;
        }
        p = words[p] as usize;
    }
    let mut at = starts;
    c.bench_function("machine/eight_chains/64MB", |b| {
        b.iter(|| {
            for a in &mut at {
                *a = words[*a] as usize;
            }
            black_box(&at);
        })
    });
}
