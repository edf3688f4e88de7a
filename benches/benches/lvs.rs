//! The one criterion harness; each module holds the groups of one dimension.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main};

mod conn;
mod director;
mod keepalived;
mod machine;
mod pcap;
mod pipeline;
mod restore;
mod rules;
mod sched_hash;
mod sched_lc;
mod sim;
mod sim_farm;
mod sync;
mod wire;
mod workload;
mod xmit;

/// The allocator lvs-tun runs with; off (4 KiB pages) except while a `_huge` bench builds its
/// director.
#[global_allocator]
pub static ALLOC: lvs_tun::hugepages::HugePageAlloc = lvs_tun::hugepages::HugePageAlloc::new(false);

criterion_group!(
    benches,
    sched_lc::benches,
    sched_hash::benches,
    rules::benches,
    wire::benches,
    conn::benches,
    director::benches,
    sim::benches,
    sim_farm::benches,
    xmit::benches,
    sync::benches,
    keepalived::benches,
    pcap::benches,
    machine::benches
);
criterion_main!(benches);
