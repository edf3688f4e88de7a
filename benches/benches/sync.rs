//! Sync protocol: encoding records into datagrams with the batcher and decoding datagrams,
//! per record (IPv4 plain, IPv6 with sequence data), for version 1 at the default
//! `sync_maxlen` (1472) and version 0; a backup director applying datagrams (new entries and
//! updates of existing ones); a master director generating records from its traffic.
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use lvs_core::conn::{ConnFlags, FwdMethod, HashKey};
use lvs_core::director::{Director, DirectorConfig, FlowPacket, PacketDir, SyncMasterConfig};
use lvs_core::rules::RuleSet;
use lvs_core::sync::master::SyncSysctls;
use lvs_core::sync::{
    decode, SeqData, SeqOptions, SyncBatcher, SyncConn, SyncVersion, DEFAULT_MAXLEN_V4,
};
use lvs_core::Instant;
use lvs_core::Protocol;

/// Records per measured batch.
const N: usize = 4096;

fn records(v6: bool) -> Vec<SyncConn> {
    records_from(v6, 0, N as u32)
}

/// `n` records numbered from `first` (distinct clients for distinct numbers below 2^24).
fn records_from(v6: bool, first: u32, n: u32) -> Vec<SyncConn> {
    (first..first + n)
        .map(|i| {
            let (caddr, vaddr, daddr) = if v6 {
                (
                    IpAddr::V6(Ipv6Addr::new(
                        0x2001,
                        0xdb8,
                        0,
                        0,
                        0,
                        0,
                        (i >> 16) as u16,
                        i as u16,
                    )),
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 0x50)),
                    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, (i % 64) as u16)),
                )
            } else {
                (
                    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
                    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
                    IpAddr::V4(Ipv4Addr::new(10, 200, 0, (i % 64) as u8)),
                )
            };
            let seq = v6.then_some(SeqOptions {
                in_seq: SeqData {
                    init_seq: i,
                    delta: 7,
                    previous_delta: 0,
                },
                out_seq: SeqData::default(),
            });
            let mut flags = ConnFlags::for_method(if v6 {
                FwdMethod::Masq
            } else {
                FwdMethod::DirectRoute
            });
            if v6 {
                flags = flags.with(ConnFlags::IN_SEQ);
            }
            SyncConn {
                protocol: 6,
                flags,
                state: 1,
                cport: 1024 + (i % 60_000) as u16,
                vport: 443,
                // A DR connection's real-server port is the service's (ipvsadm forces it for
                // -g), so a DR master syncs port 443; the NAT records use another port.
                dport: if v6 { 8443 } else { 443 },
                fwmark: 0,
                timeout: 900,
                caddr,
                vaddr,
                daddr,
                seq,
                pe_data: None,
                pe_name: None,
            }
        })
        .collect()
}

fn encode_all(version: SyncVersion, recs: &[SyncConn], out: &mut Vec<u8>) -> usize {
    let mut b = SyncBatcher::new(version, 1, DEFAULT_MAXLEN_V4);
    let mut n = 0;
    for r in recs {
        b.push(Instant::ZERO, r, |d| {
            n += 1;
            out.extend_from_slice(d);
        })
        .unwrap();
    }
    b.flush(|d| {
        n += 1;
        out.extend_from_slice(d);
    });
    n
}

/// The datagrams of `recs`, each as its own buffer.
fn datagrams(version: SyncVersion, recs: &[SyncConn]) -> Vec<Vec<u8>> {
    let mut b = SyncBatcher::new(version, 1, DEFAULT_MAXLEN_V4);
    let mut out = Vec::new();
    for r in recs {
        b.push(Instant::ZERO, r, |d| out.push(d.to_vec())).unwrap();
    }
    b.flush(|d| out.push(d.to_vec()));
    out
}

pub fn benches(c: &mut Criterion) {
    let cases = [
        ("v1_ipv4", SyncVersion::V1, false),
        ("v1_ipv6_seq", SyncVersion::V1, true),
        ("v0_ipv4", SyncVersion::V0, false),
    ];
    let mut g = c.benchmark_group("sync/encode");
    g.throughput(Throughput::Elements(N as u64));
    for (name, version, v6) in cases {
        let recs = records(v6);
        // The batcher's buffer is reused; the sink copies into one reused Vec, as a sender
        // handing datagrams to a socket would.
        let mut sink = Vec::with_capacity(N * 120);
        g.bench_with_input(BenchmarkId::from_parameter(name), &recs, |b, recs| {
            b.iter(|| {
                sink.clear();
                black_box(encode_all(version, black_box(recs), &mut sink))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("sync/decode");
    g.throughput(Throughput::Elements(N as u64));
    for (name, version, v6) in cases {
        let dgs = datagrams(version, &records(v6));
        g.bench_with_input(BenchmarkId::from_parameter(name), &dgs, |b, dgs| {
            b.iter(|| {
                let mut n = 0;
                for d in dgs {
                    n += decode(black_box(d)).unwrap().records.len();
                }
                assert_eq!(n, N);
                n
            })
        });
    }
    g.finish();

    apply_benches(c);
    master_benches(c);
}

/// The backup's rules for [`records`]`(false)`: 198.51.100.1:443 with the 64 real servers
/// 10.200.0.0..63, DR (ipvsadm gives them the service port, 443, so the records find them).
fn backup_rules() -> RuleSet {
    let mut t = String::from("-A -t 198.51.100.1:443 -s rr\n");
    for i in 0..64 {
        t.push_str(&format!("-a -t 198.51.100.1:443 -r 10.200.0.{i} -g\n"));
    }
    RuleSet::from_text(&t).unwrap()
}

fn director(capacity: u32) -> Director {
    let mut d = Director::new(DirectorConfig::new(capacity, HashKey::from_u128(0xbe)));
    d.apply_rules(Instant::ZERO, &backup_rules()).unwrap();
    d
}

/// A backup applying datagrams: `create` into an empty table (a fresh director per batch,
/// built outside the measurement), `create_recycled` into a table whose entries all expired
/// (built and emptied outside the measurement), `update` of entries the same datagrams
/// created before. Every entry is bound to its real server (checked: a record naming a real server the
/// backup does not have creates an unbound entry, which is a different path).
fn apply_benches(c: &mut Criterion) {
    let dgs = datagrams(SyncVersion::V1, &records(false));
    let mut g = c.benchmark_group("sync/apply");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("v1_ipv4_create", |b| {
        b.iter_batched_ref(
            || director(2 * N as u32),
            |d| {
                let mut bound = 0;
                for dg in &dgs {
                    let a = d.apply_sync(Instant::from_secs(1), black_box(dg)).unwrap();
                    bound += a.created - a.unbound;
                }
                assert_eq!((d.table().len(), bound as usize), (N, N));
            },
            BatchSize::LargeInput,
        )
    });
    let mut d = director(2 * N as u32);
    for dg in &dgs {
        d.apply_sync(Instant::from_secs(1), dg).unwrap();
    }
    assert_eq!(d.sync_stats().unbound, 0);
    g.bench_function("v1_ipv4_update", |b| {
        b.iter(|| {
            let mut n = 0;
            for dg in &dgs {
                n += d
                    .apply_sync(Instant::from_secs(1), black_box(dg))
                    .unwrap()
                    .updated;
            }
            assert_eq!(n as usize, N);
        })
    });
    // The same 4096 creations into a table whose slots held entries before and expired (a
    // backup in its steady state reuses freed slots; `create` fills a fresh table).
    g.bench_function("v1_ipv4_create_recycled", |b| {
        b.iter_batched_ref(
            || {
                let mut d = director(2 * N as u32);
                for dg in &dgs {
                    d.apply_sync(Instant::from_secs(1), dg).unwrap();
                }
                // The records' timeout is 900 s.
                while d.handle_timeout(Instant::from_secs(1000)) {}
                assert_eq!(d.table().len(), 0);
                d
            },
            |d| {
                let mut bound = 0;
                for dg in &dgs {
                    let a = d
                        .apply_sync(Instant::from_secs(2000), black_box(dg))
                        .unwrap();
                    bound += a.created - a.unbound;
                }
                assert_eq!((d.table().len(), bound as usize), (N, N));
            },
            BatchSize::LargeInput,
        )
    });
    // Creations into a large table: capacity 2^20 with 600,000 entries already in it (a backup
    // of a busy master), each measured batch adding 4096 more clients; the table is rebuilt
    // (outside the measurement) after 32 batches, so it holds 600,000..731,072 entries.
    const PREFILL: u32 = 600_000;
    const SETS: u32 = 32;
    let prefill = datagrams(SyncVersion::V1, &records_from(false, 0, PREFILL));
    let sets: Vec<Vec<Vec<u8>>> = (0..SETS)
        .map(|k| {
            datagrams(
                SyncVersion::V1,
                &records_from(false, PREFILL + k * N as u32, N as u32),
            )
        })
        .collect();
    let big = || {
        let mut d = director(1 << 20);
        for dg in &prefill {
            d.apply_sync(Instant::from_secs(1), dg).unwrap();
        }
        assert_eq!(d.table().len(), PREFILL as usize);
        d
    };
    g.bench_function("v1_ipv4_create_into_600k", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut d = big();
            let mut k = 0;
            for _ in 0..iters {
                if k == sets.len() {
                    d = big();
                    k = 0;
                }
                let t = std::time::Instant::now();
                let mut bound = 0;
                for dg in &sets[k] {
                    let a = d.apply_sync(Instant::from_secs(1), black_box(dg)).unwrap();
                    bound += a.created - a.unbound;
                }
                total += t.elapsed();
                assert_eq!(bound as usize, N);
                k += 1;
            }
            total
        })
    });
    g.finish();
}

/// A master's packet path on established DR connections: `off` without a sync master,
/// `every_packet` with `sync_threshold = 0 1` so that every packet makes a record (batched,
/// queued and drained as the driver would). The difference is the cost of record generation.
fn master_benches(c: &mut Criterion) {
    let pkts: Vec<FlowPacket> = (0..N as u32)
        .map(|i| FlowPacket {
            protocol: Protocol::Tcp,
            src: std::net::SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
                1024 + (i % 60_000) as u16,
            ),
            dst: "198.51.100.1:443".parse().unwrap(),
            fwmark: 0,
            tcp_flags: 0x10,
            len: 60,
            dir: PacketDir::FromClient,
        })
        .collect();
    let established = |sync: bool| {
        let mut d = director(2 * N as u32);
        for p in &pkts {
            d.handle_flow(
                Instant::from_secs(1),
                &FlowPacket {
                    tcp_flags: 0x02,
                    ..*p
                },
            );
            d.handle_flow(Instant::from_secs(1), p);
        }
        if sync {
            d.set_sync_master(Some(SyncMasterConfig {
                sysctls: SyncSysctls {
                    threshold: 0,
                    period: 1,
                    ..SyncSysctls::default()
                },
                ..SyncMasterConfig::default()
            }));
        }
        d
    };
    let mut g = c.benchmark_group("sync/master");
    g.throughput(Throughput::Elements(N as u64));
    for (name, sync) in [("off", false), ("every_packet", true)] {
        let mut d = established(sync);
        // Set only when the bench ran (a filter may skip it).
        let mut ran = false;
        g.bench_function(name, |b| {
            ran = true;
            b.iter(|| {
                let now = Instant::from_secs(2);
                for p in &pkts {
                    black_box(d.handle_flow(now, black_box(p)));
                }
                d.flush_sync();
                let mut bytes = 0;
                while let Some(dg) = d.poll_sync(now) {
                    bytes += dg.len();
                }
                bytes
            })
        });
        if sync && ran {
            assert_eq!(d.sync_stats().datagrams_dropped, 0);
            assert!(d.sync_stats().records_sent >= N as u64);
        }
    }
    g.finish();
}
