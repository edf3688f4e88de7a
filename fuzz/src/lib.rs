//! Fuzz target bodies. Each `fuzz_targets/<name>.rs` calls the function of the same name; the
//! seed corpus of every target also runs through it in `tests/corpus.rs` under `cargo test`.

/// Placeholder body.
pub fn sched_ops(data: &[u8]) {
    let _ = data.len();
}

pub mod rules_parse;
pub use rules_parse::rules_parse;
pub mod wire_views;
pub use wire_views::wire_views;
pub mod xmit_rewrite;
pub use xmit_rewrite::xmit_rewrite;
