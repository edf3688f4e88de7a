//! Fuzz target bodies. Each `fuzz_targets/<name>.rs` calls the function of the same name; the
//! seed corpus of every target also runs through it in `tests/corpus.rs` under `cargo test`.

pub mod conn_ops;
pub mod keepalived_parse;
pub mod rules_parse;
pub mod sched_ops;
pub mod wire_views;

pub use conn_ops::conn_ops;
pub use keepalived_parse::keepalived_parse;
pub use rules_parse::rules_parse;
pub use sched_ops::sched_ops;
pub use wire_views::wire_views;
