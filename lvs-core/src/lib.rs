//! # lvs-core
//!
//! Linux Virtual Server (IPVS) as a pure, sans-IO Rust library.
//!
//! ## Layers
//! - [`time`]: the crate's own `Instant` / `Duration`; the caller passes `now` everywhere.
//! - [`rules`]: services, real servers and the `ipvsadm` rule language (`-R` / `-S` format).
//! - [`health`]: keepalived-style health checking, quorum and sorry server, as rule commands.
//! - [`keepalived`]: keepalived.conf `virtual_server` blocks read into the rule model plus
//!   health-check settings.
//! - [`conn`]: connection table, TCP/UDP states and timeouts, expiry, per-dest accounting.
//! - [`sched`]: the fourteen IPVS schedulers behind one trait and a registry by name.
//! - [`wire`]: typed zero-copy views over packet bytes and checksum helpers.
//! - [`xmit`]: in-place packet rewrite for the forwarding methods (NAT, DR, TUN), related ICMP
//!   errors and the ICMP errors the director builds.
//! - [`director`]: the facade a proxy embeds: control plane, flow layer (`handle_flow`), packet
//!   layer (`handle_packet`), timers, stats and listings.
//! - [`sync`]: the connection synchronisation protocol (master / backup datagrams).
//!
//! ## Contracts
//! - **No I/O, no clock, no threads, no global state**, and no `unsafe`.
//! - **Determinism**: every decision is a function of the configuration, the inputs so far,
//!   `now`, and injected randomness. The same inputs give the same outputs.
//! - **Panics**: bytes from the network and text from files never cause a panic; they produce
//!   typed errors or drop reasons. Methods document a `# Panics` section only for programmer
//!   errors (for example an out-of-range index into a list the caller owns).
#![forbid(unsafe_code)]

pub mod conn;
pub mod director;
pub mod health;
pub mod keepalived;
pub mod protocol;
pub mod rules;
pub mod sched;
pub mod sync;
pub mod time;
pub mod wire;
pub mod xmit;

pub use protocol::Protocol;
pub use time::{Duration, Instant};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
