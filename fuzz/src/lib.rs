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

/// The one's-complement sum of the whole IP payload of the packet `c` describes in `pkt`,
/// with its pseudo-header and the payload's length (0xffff = verifies): the kernel's full
/// checksum computation for a UDP datagram that had none, which covers the IP payload
/// (`skb->len - udphoff`), whatever the UDP length field says.
pub(crate) fn whole_payload_sum(pkt: &[u8], c: &lvs_core::wire::Classified) -> Option<u16> {
    use lvs_core::wire::checksum;
    let seg = pkt.get(c.l4_range())?;
    let len = u32::try_from(seg.len()).ok()?;
    let pseudo = checksum::pseudo_header(&c.src, &c.dst, c.protocol, len);
    Some(checksum::combine(&[pseudo, checksum::data(seg)]))
}
