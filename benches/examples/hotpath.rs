//! A driver for instruction counts of the hot paths under `valgrind --tool=callgrind`, where
//! criterion's own machinery (and the setup of every other group) would drown the numbers.
//!
//! ```sh
//! cargo build --release -p lvs-benches --example hotpath
//! valgrind --tool=callgrind --toggle-collect='*hotpath*measured*' \
//!     target/release/examples/hotpath packet 100000 100000
//! ```
//! Divide the instructions collected (`Ir` in the summary) by the iteration count. Modes:
//! - `packet N ITERS`: an existing NAT flow's ACK through `Director::handle_packet`, N flows.
//! - `reply N ITERS`: the real server's reply of such a flow (NAT, source rewritten).
//! - `ack N ITERS`: the same packet through the flow layer only (`handle_flow`).
//! - `syn N ITERS`: a new flow (SYN, wlc over 100 real servers, insert), N flows present.
//! - `pipe N ITERS` / `burst N ITERS`: the `packet` mode's packets through the pipelined
//!   driver loop of `benches/pipeline.rs` / through `Director::handle_burst`.
//! - `sched KIND ITERS`: one decision of scheduler KIND over 100 destinations.
//! - `xmit METHOD ITERS` / `xmit6 METHOD ITERS`: the `xmit/rewrite` bench's rewrite (nat, dr,
//!   ipip, gue, gre), restoring the bytes the previous rewrite changed each time as the bench
//!   does (`restore::window`); `XMIT_RESTORE64=1` restores the first 64 bytes instead (the
//!   bench's earlier shape).
//!
//! - `sim METHOD SCHED REPS`: REPS runs of the `sim_farm` bench's scenario (100 000
//!   connections, 8 real servers; METHOD `nat` or `dr`, SCHED `wlc` or `rr`), whole runs of
//!   `lvs_sim::engine::Engine` (scenario compiled outside the measured part).
//!
//! - `sync-create N REPS` / `sync-update N REPS`: a backup applying the v1 IPv4 datagrams of
//!   N records (the `sync/apply` bench's), into a fresh director (built outside the measured
//!   part) or again over the entries they created; REPS rounds. The records name the real
//!   servers' port 443 (bound entries); `SYNC_DPORT=8443` makes them unbound.
//!
//! Run without valgrind it prints the wall-clock time per iteration (noisy; for orientation).
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant as Clock;

use lvs_core::conn::HashKey;
use lvs_core::director::{Director, DirectorConfig, FlowPacket};
use lvs_core::rules::RuleSet;
use lvs_core::{Instant, Protocol};
use rand_pcg::Pcg32;

#[path = "../benches/pipeline.rs"]
mod pipeline;
#[path = "../benches/restore.rs"]
mod restore;
#[path = "../benches/sim_farm.rs"]
#[allow(dead_code)]
mod sim_farm;
#[path = "../benches/workload.rs"]
mod workload;
use workload::{client, pkt, vip};

fn rules(method: &str) -> RuleSet {
    let mut text = String::from("-A -t 198.51.100.1:443 -s wlc\n--set 2000000 0 0\n");
    for d in 0..100 {
        text.push_str(&format!(
            "-a -t 198.51.100.1:443 -r 10.200.{}.{}:443 -w {}{method}\n",
            d / 200,
            d % 200 + 1,
            1 + d % 3
        ));
    }
    RuleSet::from_text(&text).unwrap()
}

fn director(n: u64, extra: u64, method: &str) -> (Director, Instant) {
    let mut d = Director::new(DirectorConfig::new(
        (n + extra) as u32,
        HashKey::from_u128(0xbe7c),
    ));
    let now = Instant::from_secs(10);
    d.apply_rules(now, &rules(method)).unwrap();
    for i in 0..n {
        d.handle_flow(now, &pkt(i, 0x02));
        d.handle_flow(now, &pkt(i, 0x10));
    }
    (d, now)
}

fn multiplier(n: u64) -> u64 {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut a = 2_654_435_761 % n;
    while gcd(a, n) != 1 {
        a += 1;
    }
    a
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for ch in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([ch[0], *ch.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// A 40-byte IPv4 TCP ACK of flow `i` to the VIP with valid checksums.
fn ack_bytes(i: u64, b: &mut [u8]) {
    let (src, dst) = (client(i), vip());
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        unreachable!()
    };
    b.fill(0);
    b[..10].copy_from_slice(&[0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6]);
    b[12..16].copy_from_slice(&s.octets());
    b[16..20].copy_from_slice(&d.octets());
    let ipsum = !(sum16(&b[..20], 0) as u16);
    b[10..12].copy_from_slice(&ipsum.to_be_bytes());
    b[20..22].copy_from_slice(&src.port().to_be_bytes());
    b[22..24].copy_from_slice(&dst.port().to_be_bytes());
    b[24..28].copy_from_slice(&1000u32.to_be_bytes());
    b[28..32].copy_from_slice(&1u32.to_be_bytes());
    b[32] = 0x50;
    b[33] = 0x10;
    b[34..36].copy_from_slice(&64240u16.to_be_bytes());
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&s.octets());
    pseudo[4..8].copy_from_slice(&d.octets());
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&20u16.to_be_bytes());
    let tcpsum = !(sum16(&b[20..40], sum16(&pseudo, 0)) as u16);
    b[36..38].copy_from_slice(&tcpsum.to_be_bytes());
}

#[inline(never)]
fn measured_packet(d: &mut Director, now: Instant, bufs: &mut [u8], out: &mut [u8]) {
    for p in bufs.chunks_exact_mut(40) {
        black_box(d.handle_packet(now, p, 0, out));
    }
}

/// `bufs` as a software-pipelined driver hands them over (the `pipelined` bench's loop).
#[inline(never)]
fn measured_pipelined(d: &mut Director, now: Instant, bufs: &mut [u8], out: &mut [u8]) {
    pipeline::handle_pipelined(d, now, bufs, out);
}

/// `bufs` through `Director::handle_burst` (the `burst` bench's loop).
#[inline(never)]
fn measured_burst(d: &mut Director, now: Instant, bufs: &mut [u8], out: &mut [u8]) {
    pipeline::handle_burst(d, now, bufs, out);
}

#[inline(never)]
fn measured_flow(d: &mut Director, now: Instant, pkts: &[FlowPacket]) {
    for p in pkts {
        black_box(d.handle_flow(now, p));
    }
}

#[inline(never)]
fn measured_sched(
    s: &mut dyn lvs_core::sched::Scheduler,
    dests: &[lvs_core::sched::DestInfo],
    flows: &[lvs_core::sched::FlowKey],
    iters: u64,
) {
    let mut rng = Pcg32::new(1, 1);
    let mut ctx = lvs_core::sched::SchedContext {
        now: Instant::ZERO,
        rng: &mut rng,
    };
    for k in 0..iters as usize {
        black_box(s.schedule(black_box(dests), &flows[k & 1023], &mut ctx));
    }
}

fn sched(kind: &str, iters: u64) {
    use lvs_core::sched::{
        DestChange, DestId, DestInfo, FlowKey, SchedConfig, SchedFlags, SchedKind,
    };
    let k = SchedKind::from_name(kind).expect("scheduler name");
    let dests: Vec<DestInfo> = (0..100u32)
        .map(|i| {
            let a = IpAddr::from((0x0A00_0000u32 + i).to_be_bytes());
            DestInfo::new(DestId(i), a, 80, 1 + i % 4)
        })
        .collect();
    let flows: Vec<FlowKey> = (0..1024u32)
        .map(|i| {
            let c = IpAddr::from((0xC000_0000u32 ^ i.wrapping_mul(0x9E37_79B9)).to_be_bytes());
            let v = IpAddr::from((0xCB00_7100u32 + (i & 0xFF)).to_be_bytes());
            FlowKey::new(Protocol::Tcp, c, 1024 + i as u16, v, 80)
        })
        .collect();
    let mut s = k.build(SchedFlags::SCHED2, &SchedConfig::default());
    s.update(&dests, DestChange::Init);
    let t = Clock::now();
    measured_sched(&mut *s, &dests, &flows, iters);
    println!(
        "sched {kind}: {:.1} ns/iter",
        t.elapsed().as_nanos() as f64 / iters as f64
    );
}

#[inline(never)]
fn measured_xmit<const N: usize>(
    buf: &mut [u8],
    at: usize,
    saved: &[u8; N],
    c: &lvs_core::wire::Classified,
    m: &lvs_core::xmit::Mapping,
    out: &mut [u8],
    iters: u64,
) {
    use lvs_core::xmit::{transmit, Direction};
    for _ in 0..iters {
        buf[at..at + N].copy_from_slice(saved);
        let v = transmit(
            black_box(&mut *buf),
            64,
            black_box(c),
            m,
            Direction::In,
            out,
        );
        black_box(&v);
    }
}

/// [`measured_xmit`] with the `N` bytes at `at` of `before` as the restore; checks afterwards
/// that one more restore and rewrite gives the bytes of the first rewrite (`first`).
fn run_xmit<const N: usize>(
    buf: &mut [u8],
    at: usize,
    before: &[u8],
    first: &[u8],
    c: &lvs_core::wire::Classified,
    m: &lvs_core::xmit::Mapping,
    iters: u64,
) {
    let saved: [u8; N] = before[at..at + N].try_into().unwrap();
    let mut out = [0u8; 1280];
    measured_xmit(buf, at, &saved, c, m, &mut out, iters);
    buf[at..at + N].copy_from_slice(&saved);
    lvs_core::xmit::transmit(buf, 64, c, m, lvs_core::xmit::Direction::In, &mut out);
    assert!(
        buf == first,
        "the rewrite after the loop differs from the first"
    );
}

/// The `xmit/rewrite` bench's packet and mapping: a TCP ACK with 512 bytes of payload.
fn xmit(name: &str, v6: bool, iters: u64) {
    use lvs_core::rules::{Forward, TunnelConfig, TunnelCsum, TunnelType};
    use std::net::Ipv6Addr;
    let (fwd, kind) = match name {
        "nat" => (Forward::Masq, TunnelType::Ipip),
        "dr" => (Forward::DirectRoute, TunnelType::Ipip),
        "ipip" => (Forward::Tunnel, TunnelType::Ipip),
        "gue" => (Forward::Tunnel, TunnelType::Gue),
        "gre" => (Forward::Tunnel, TunnelType::Gre),
        _ => panic!("method nat|dr|ipip|gue|gre"),
    };
    let b = if v6 {
        etherparse::PacketBuilder::ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
            [0x20, 1, 0xd, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            64,
        )
    } else {
        etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [203, 0, 113, 1], 64)
    };
    let b = b.tcp(40000, 80, 1, 1024).ack(7);
    let mut pkt = Vec::new();
    b.write(&mut pkt, &[0x5a; 512]).unwrap();
    let (c, v, r): (IpAddr, IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1).into(),
        )
    } else {
        (
            Ipv4Addr::new(192, 0, 2, 7).into(),
            Ipv4Addr::new(203, 0, 113, 1).into(),
            Ipv4Addr::new(10, 1, 1, 1).into(),
        )
    };
    let dport = if fwd == Forward::Masq { 8080 } else { 80 };
    let m = lvs_core::xmit::Mapping {
        forward: fwd,
        tunnel: TunnelConfig {
            kind,
            port: 6080,
            csum: TunnelCsum::NoCsum,
        },
        local_v4: Ipv4Addr::new(198, 51, 100, 254),
        local_v6: Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 0xfe),
        route_mtu: 1500,
        ip_id: 0x4242,
        ..lvs_core::xmit::Mapping::new((c, 40000), (v, 80), (r, dport))
    };
    let mut buf = vec![0u8; 64 + pkt.len()];
    buf[64..].copy_from_slice(&pkt);
    let cl = lvs_core::wire::classify(&buf[64..]).unwrap();
    let before = buf.clone();
    let mut out = [0u8; 1280];
    lvs_core::xmit::transmit(
        &mut buf,
        64,
        &cl,
        &m,
        lvs_core::xmit::Direction::In,
        &mut out,
    );
    let first = buf.clone();
    let (at, n) = if std::env::var_os("XMIT_RESTORE64").is_some() {
        (64, 64)
    } else {
        restore::window(&before, &first, 64).expect("the rewrite changes bytes")
    };
    let t = Clock::now();
    restore::with_window!(n, run_xmit(&mut buf, at, &before, &first, &cl, &m, iters));
    println!(
        "xmit {name} v6={v6}: {:.1} ns/iter",
        t.elapsed().as_nanos() as f64 / iters as f64
    );
}

/// The `sync/apply` bench's datagrams: N DR records to 198.51.100.1:443 over 64 real servers
/// with port `dport`.
fn sync_datagrams(n: u32, dport: u16) -> Vec<Vec<u8>> {
    use lvs_core::conn::{ConnFlags, FwdMethod};
    use lvs_core::sync::{SyncBatcher, SyncConn, SyncVersion, DEFAULT_MAXLEN_V4};
    let mut b = SyncBatcher::new(SyncVersion::V1, 1, DEFAULT_MAXLEN_V4);
    let mut out = Vec::new();
    for i in 0..n {
        let r = SyncConn {
            protocol: 6,
            flags: ConnFlags::for_method(FwdMethod::DirectRoute),
            state: 1,
            cport: 1024 + (i % 60_000) as u16,
            vport: 443,
            dport,
            fwmark: 0,
            timeout: 900,
            caddr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            vaddr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
            daddr: IpAddr::V4(Ipv4Addr::new(10, 200, 0, (i % 64) as u8)),
            seq: None,
            pe_data: None,
            pe_name: None,
        };
        b.push(Instant::ZERO, &r, |d| out.push(d.to_vec())).unwrap();
    }
    b.flush(|d| out.push(d.to_vec()));
    out
}

fn sync_director(n: u32) -> Director {
    let mut t = String::from("-A -t 198.51.100.1:443 -s rr\n");
    for i in 0..64 {
        t.push_str(&format!("-a -t 198.51.100.1:443 -r 10.200.0.{i} -g\n"));
    }
    let mut d = Director::new(DirectorConfig::new(2 * n, HashKey::from_u128(0xbe)));
    d.apply_rules(Instant::ZERO, &RuleSet::from_text(&t).unwrap())
        .unwrap();
    d
}

#[inline(never)]
fn measured_sim(m: &lvs_sim::model::Model) -> u64 {
    let r = lvs_sim::engine::Engine::new(m, 0).run(None).unwrap();
    r.counters.connections
}

fn sim(method: &str, sched: &str, reps: u64) {
    let flag = match method {
        "nat" => "-m",
        "dr" => "-g",
        _ => panic!("method nat|dr"),
    };
    let m = sim_farm::scenario(flag, sched);
    let mut times = Vec::new();
    let mut conns = 0;
    for _ in 0..reps {
        let t = Clock::now();
        conns = black_box(measured_sim(&m));
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    println!(
        "sim {method} {sched}: {conns} connections, median of {reps} runs {:.1} ms ({:.2} M conn/s)",
        med * 1e3,
        conns as f64 / med / 1e6
    );
}

#[inline(never)]
fn measured_sync(d: &mut Director, now: Instant, dgs: &[Vec<u8>]) {
    for dg in dgs {
        black_box(d.apply_sync(now, black_box(dg)).unwrap());
    }
}

fn sync(update: bool, n: u32, reps: u64) {
    // ipvsadm gives a -g real server the service's port: records naming port 8443 find no
    // real server and create unbound entries (`SYNC_DPORT=8443`).
    let dport = std::env::var("SYNC_DPORT").map_or(443, |p| p.parse().unwrap());
    let dgs = sync_datagrams(n, dport);
    let mut total = 0u128;
    let mut keep = Vec::new();
    let drop_old = std::env::var_os("SYNC_DROP").is_some();
    let mut d = sync_director(n);
    if update {
        // Not under `measured_*`: callgrind collects only the rounds.
        for dg in &dgs {
            d.apply_sync(Instant::from_secs(1), dg).unwrap();
        }
    }
    // SYNC_RECYCLE: every round's director held the entries before and let them expire, so
    // the creations reuse warm slots (a backup in its steady state).
    let recycle = std::env::var_os("SYNC_RECYCLE").is_some();
    let fresh = || {
        let mut d = sync_director(n);
        if recycle {
            for dg in &dgs {
                d.apply_sync(Instant::from_secs(1), dg).unwrap();
            }
            while d.handle_timeout(Instant::from_secs(1000)) {}
            assert_eq!(d.table().len(), 0);
        }
        d
    };
    let now = Instant::from_secs(if recycle { 2000 } else { 1 });
    for _ in 0..reps {
        if !update {
            // Kept (not dropped) unless SYNC_DROP is set: criterion's batched bench drops each
            // director after its round, so the allocator hands the next one warm memory.
            let old = std::mem::replace(&mut d, fresh());
            if !drop_old {
                keep.push(old);
            }
        }
        let t = Clock::now();
        measured_sync(&mut d, now, &dgs);
        total += t.elapsed().as_nanos();
        assert_eq!(d.table().len(), n as usize);
    }
    println!(
        "sync update={update} n={n}: {:.1} ns/record",
        total as f64 / (reps as f64 * f64::from(n))
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("packet", String::as_str);
    if mode == "sim" {
        sim(
            args.get(2).map_or("dr", String::as_str),
            args.get(3).map_or("wlc", String::as_str),
            args.get(4).map_or(1, |s| s.parse().unwrap()),
        );
        return;
    }
    let n: u64 = args.get(2).map_or(100_000, |s| s.parse().unwrap_or(0));
    let iters: u64 = args.get(3).map_or(100_000, |s| s.parse().unwrap());
    let reps: usize = args.get(4).map_or(1, |s| s.parse().unwrap());
    let start;
    match mode {
        "packet" => {
            let (mut d, now) = director(n, 0, " -m");
            let a = multiplier(n);
            let mut bufs = vec![0u8; iters as usize * 40];
            let mut out = [0u8; 576];
            let mut times = Vec::new();
            for r in 0..reps as u64 {
                for (k, p) in bufs.chunks_exact_mut(40).enumerate() {
                    ack_bytes((r * iters + k as u64) % n * a % n, p);
                }
                let t = Clock::now();
                measured_packet(&mut d, now, &mut bufs, &mut out);
                times.push(t.elapsed().as_nanos() as f64 / iters as f64);
                assert_eq!(bufs[16], 10, "rewritten");
            }
            times.sort_by(f64::total_cmp);
            println!(
                "packet n={n}: median of {reps} reps {:.1} ns/iter",
                times[reps / 2]
            );
            start = Clock::now();
        }
        "pipe" | "burst" => {
            let (mut d, now) = director(n, 0, " -m");
            let a = multiplier(n);
            let mut bufs = vec![0u8; iters as usize * 40];
            let mut out = [0u8; 576];
            for (k, p) in bufs.chunks_exact_mut(40).enumerate() {
                ack_bytes(k as u64 % n * a % n, p);
            }
            start = Clock::now();
            if mode == "pipe" {
                measured_pipelined(&mut d, now, &mut bufs, &mut out);
            } else {
                measured_burst(&mut d, now, &mut bufs, &mut out);
            }
            assert_eq!(bufs[16], 10, "rewritten");
        }
        "reply" => {
            let (mut d, now) = director(n, 0, " -m");
            let a = multiplier(n);
            let mut bufs = vec![0u8; iters as usize * 40];
            let mut out = [0u8; 576];
            let IpAddr::V4(v) = vip().ip() else {
                unreachable!()
            };
            let mut times = Vec::new();
            for r in 0..reps as u64 {
                for (k, p) in bufs.chunks_exact_mut(40).enumerate() {
                    // The client's ACK as the real server received it, turned round: the
                    // addresses and ports swapped (the checksums stay valid).
                    ack_bytes((r * iters + k as u64) % n * a % n, p);
                    d.handle_packet(now, p, 0, &mut out);
                    let (s, t) = p.split_at_mut(16);
                    s[12..16].swap_with_slice(&mut t[..4]);
                    let (s, t) = p.split_at_mut(22);
                    s[20..22].swap_with_slice(&mut t[..2]);
                }
                let t = Clock::now();
                measured_packet(&mut d, now, &mut bufs, &mut out);
                times.push(t.elapsed().as_nanos() as f64 / iters as f64);
                assert_eq!(bufs[12..16], v.octets(), "rewritten");
            }
            times.sort_by(f64::total_cmp);
            println!(
                "reply n={n}: median of {reps} reps {:.1} ns/iter",
                times[reps / 2]
            );
            start = Clock::now();
        }
        "ack" | "syn" => {
            let syn = mode == "syn";
            let (mut d, now) = director(n, if syn { iters } else { 0 }, "");
            let a = multiplier(n);
            let pkts: Vec<FlowPacket> = (0..iters)
                .map(|k| {
                    if syn {
                        pkt(n + k, 0x02)
                    } else {
                        pkt(k % n * a % n, 0x10)
                    }
                })
                .collect();
            start = Clock::now();
            measured_flow(&mut d, now, &pkts);
        }
        "xmit" | "xmit6" => {
            xmit(
                args.get(2).map_or("nat", String::as_str),
                mode == "xmit6",
                iters,
            );
            return;
        }
        "sync-create" | "sync-update" => {
            sync(mode == "sync-update", n as u32, iters);
            return;
        }
        "sched" => {
            sched(args.get(2).map_or("rr", String::as_str), iters);
            return;
        }
        m => panic!("unknown mode {m}"),
    }
    let el = start.elapsed();
    println!(
        "{mode} n={n} iters={iters}: {:.1} ns/iter",
        el.as_nanos() as f64 / iters as f64
    );
}
