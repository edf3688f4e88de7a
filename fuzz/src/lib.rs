//! Fuzz target bodies. Each `fuzz_targets/<name>.rs` calls the function of the same name; the
//! seed corpus of every target also runs through it in `tests/corpus.rs` under `cargo test`.

/// Placeholder body.
pub fn sched_ops(data: &[u8]) {
    let _ = data.len();
}

pub mod conn_ops;
pub use conn_ops::conn_ops;
