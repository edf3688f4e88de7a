//! Criterion benchmarks for lvs-rs live in `benches/lvs.rs` (one harness, groups by
//! dimension). Run them with `cargo bench -p lvs-benches`; medians are recorded in
//! `BENCHMARKS.md`.
