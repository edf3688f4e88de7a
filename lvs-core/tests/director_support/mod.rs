//! Helpers shared by the director's integration tests: addresses, times, a director from rule
//! text, and the timer driver.
// Each test crate uses its own subset.
#![allow(dead_code)]

use core::net::SocketAddr;

use lvs_core::conn::HashKey;
use lvs_core::director::{
    Director, DirectorConfig, FlowPacket, FlowVerdict, PacketDir, PacketVerdict, Sysctls,
};
use lvs_core::rules::{RuleSet, ServiceKey};
use lvs_core::{Instant, Protocol};

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

/// A UDP datagram of `len` bytes from `client` to `vip`.
pub fn udp(client: &str, vip: &str, len: u32) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Udp,
        src: sa(client),
        dst: sa(vip),
        fwmark: 0,
        tcp_flags: 0,
        len,
        dir: PacketDir::FromClient,
    }
}

pub fn key(s: &str) -> ServiceKey {
    s.parse().unwrap()
}

/// A director (4096 entries) with these sysctls and the rules of `rules`, applied at time 0.
pub fn director_with(rules: &str, sysctls: Sysctls) -> Director {
    let mut cfg = DirectorConfig::new(4096, HashKey::from_u128(0xfeed));
    cfg.sysctls = sysctls;
    let mut d = Director::new(cfg);
    d.apply_rules(Instant::ZERO, &RuleSet::from_text(rules).unwrap())
        .unwrap();
    d
}

/// [`director_with`] the default sysctls.
pub fn director(rules: &str) -> Director {
    director_with(rules, Sysctls::default())
}

/// Where a forwarded packet goes (panics on any other verdict).
pub fn dest_of(v: FlowVerdict) -> SocketAddr {
    match v {
        FlowVerdict::Forward { dest, .. } => dest,
        other => panic!("expected Forward, got {other:?}"),
    }
}

/// Runs every timer due at `now` (a driver that is late runs them all at once).
pub fn run_timers(d: &mut Director, now: Instant) {
    let mut guard = 0;
    while d.poll_timeout().is_some_and(|t| t <= now) {
        d.handle_timeout(now);
        guard += 1;
        assert!(guard < 100_000, "timers never settle");
    }
}

/// The bytes a verdict names: the forwarded packet in `buf`, or the ICMP error built in `out`.
pub fn named_bytes(v: PacketVerdict, buf: &[u8], out: &[u8]) -> Vec<u8> {
    match v {
        PacketVerdict::Forward { start, len, .. } | PacketVerdict::Local { start, len, .. } => {
            buf[start..start + len].to_vec()
        }
        PacketVerdict::Reply { start, len, .. } => out[start..start + len].to_vec(),
        _ => Vec::new(),
    }
}
