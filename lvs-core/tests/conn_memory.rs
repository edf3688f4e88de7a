//! Memory per IPv4 flow, measured with a counting global allocator (every byte the table
//! allocates: slab, both indexes, side tables, wheel), and cross-checked against
//! `ConnTable::allocated_bytes`.
//!
//! The 10 M-flow measurement is `#[ignore]`d (it needs a release build):
//! `cargo test --release -p lvs-core --test conn_memory -- --ignored --nocapture`.

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr};

use lvs_core::conn::{ConnFlags, ConnTable, ConnTableConfig, FwdMethod, HashKey, NewConn};
use lvs_core::sched::DestId;
use lvs_core::{Duration, Instant, Protocol};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

// A counting allocator from a crate, so this file needs no `unsafe` of its own.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn flow(i: u32) -> NewConn {
    // Distinct clients (address, port) to one VIP, NAT to 16 real servers.
    let caddr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i >> 4)));
    NewConn {
        protocol: Protocol::Tcp,
        caddr,
        cport: 1024 + (i & 15) as u16,
        vaddr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
        vport: 443,
        daddr: IpAddr::V4(Ipv4Addr::new(10, 200, 0, (i % 16) as u8)),
        dport: 8443,
        flags: ConnFlags::for_method(FwdMethod::Masq).with(ConnFlags::INACTIVE),
        fwmark: 0,
        dest: Some(DestId(i % 16)),
        control: None,
        timeout: Duration::from_secs(900),
    }
}

/// Builds a table of `n` flows (capacity `n`) and returns (measured bytes, reported bytes).
fn measure(n: u32) -> (usize, usize) {
    let region = Region::new(GLOBAL);
    let mut t = ConnTable::new(ConnTableConfig::new(n, HashKey::from_u128(0xfeed_beef)));
    let now = Instant::from_secs(1);
    for i in 0..n {
        t.insert(now, flow(i)).unwrap();
    }
    assert_eq!(t.len(), n as usize);
    let c = region.change();
    // Live bytes now owned by the table (stats_alloc already books realloc growth and
    // shrinkage in these two).
    let measured = c.bytes_allocated - c.bytes_deallocated;
    (measured, t.allocated_bytes())
}

#[test]
fn bytes_per_ipv4_flow_200k() {
    let n = 200_000;
    let (measured, reported) = measure(n);
    let per = measured as f64 / n as f64;
    println!("{n} flows: {measured} bytes measured, {reported} reported, {per:.2} bytes/flow");
    // The harness may allocate a little on other threads meanwhile.
    assert!(
        measured.abs_diff(reported) < 64 * 1024,
        "{measured} vs {reported}"
    );
    assert!(per <= 64.0, "{per} bytes per flow");
}

#[test]
#[ignore = "10 M flows: run in release"]
fn bytes_per_ipv4_flow_10m() {
    let n = 10_000_000;
    let (measured, reported) = measure(n);
    let per = measured as f64 / n as f64;
    println!("{n} flows: {measured} bytes measured, {reported} reported, {per:.2} bytes/flow");
    assert!(
        measured.abs_diff(reported) < 64 * 1024,
        "{measured} vs {reported}"
    );
    assert!(per <= 64.0, "{per} bytes per flow");
}
