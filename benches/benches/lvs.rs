//! The one criterion harness; each module holds the groups of one dimension.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main};

mod sched;
mod sched_hash;

criterion_group!(benches, sched::benches, sched_hash::benches);
criterion_main!(benches);
