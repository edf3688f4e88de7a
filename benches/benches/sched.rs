//! Scheduler decisions by scheduler and destination count.
use criterion::Criterion;

pub fn benches(_c: &mut Criterion) {}
