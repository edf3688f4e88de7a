//! The one criterion harness; each module holds the groups of one dimension.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main};

mod rules;
mod sched;

criterion_group!(benches, sched::benches, rules::benches);
criterion_main!(benches);
