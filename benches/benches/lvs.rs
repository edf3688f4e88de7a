//! The one criterion harness; each module holds the groups of one dimension.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main};

mod sched;
mod wire;

criterion_group!(benches, sched::benches, wire::benches);
criterion_main!(benches);
