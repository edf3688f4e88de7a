//! The one criterion harness; each module holds the groups of one dimension.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main};

mod conn;
mod sched;

criterion_group!(benches, sched::benches, conn::benches);
criterion_main!(benches);
