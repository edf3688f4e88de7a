//! `lvs-tun`: the live runtime of lvs-core. It moves packets between a tun device (L3: NAT and
//! TUN methods) or a tap device (L2: DR) and [`lvs_core::director::Director`], and holds no
//! balancing policy of its own.
//!
//! - [`daemon`]: `lvs-tun run`, one worker thread per device queue around one shared director,
//!   the timer, signals (SIGHUP reload, SIGTERM stop), the control socket and metrics.
//! - [`decap`]: `lvs-tun decap`, the real-server side of the TUN method for machines without
//!   ipip, gre or fou in their kernel.
//! - [`health`]: keepalived.conf's health checks run for real (TCP, HTTP GET, MISC_CHECK).
//! - [`ctl`]: the ipvsadm language over a Unix socket (`lvs-tun ctl`).
//! - [`metrics`]: Prometheus text named after node_exporter's ipvs collector.
//! - [`neigh`]: the ARP / neighbour discovery the DR path needs on a tap device.
//! - [`sync`]: connection sync over UDP multicast and the master / backup role driven by
//!   keepalived's notify hooks (`lvs-tun ctl --role`).
//! - [`counters`]: drop reasons and per-queue counters.
//! - [`hugepages`]: the global allocator that backs the connection table with transparent
//!   huge pages (the crate's only `unsafe`).

pub mod counters;
pub mod ctl;
pub mod daemon;
pub mod decap;
pub mod health;
#[allow(unsafe_code)]
pub mod hugepages;
pub mod metrics;
pub mod neigh;
pub mod sync;
