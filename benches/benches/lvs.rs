//! The one criterion harness; each module holds the groups of one dimension.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main};

mod conn;
mod keepalived;
mod rules;
mod sched_hash;
mod sched_lc;
mod wire;

criterion_group!(
    benches,
    sched_lc::benches,
    sched_hash::benches,
    rules::benches,
    wire::benches,
    conn::benches,
    keepalived::benches
);
criterion_main!(benches);
