//! Fuzz target bodies. Each `fuzz_targets/<name>.rs` calls the function of the same name; the
//! seed corpus of every target also runs through it in `tests/corpus.rs` under `cargo test`.

pub mod conn_ops;
pub mod director_ops;
pub mod health_ops;
pub mod keepalived_parse;
pub mod pcap_read;
pub mod rules_parse;
pub mod sched_ops;
pub mod sim_scenario;
pub mod sim_trace;
pub mod sync_apply;
pub mod sync_decode;
pub mod wire_views;
pub mod xmit_rewrite;

pub use conn_ops::conn_ops;
pub use director_ops::director_ops;
pub use health_ops::health_ops;
pub use keepalived_parse::keepalived_parse;
pub use pcap_read::pcap_read;
pub use rules_parse::rules_parse;
pub use sched_ops::sched_ops;
pub use sim_scenario::sim_scenario;
pub use sim_trace::sim_trace;
pub use sync_apply::sync_apply;
pub use sync_decode::sync_decode;
pub use wire_views::wire_views;
pub use xmit_rewrite::xmit_rewrite;
