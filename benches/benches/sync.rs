//! Sync protocol: encoding records into datagrams with the batcher and decoding datagrams,
//! per record (IPv4 plain, IPv6 with sequence data), for version 1 at the default
//! `sync_maxlen` (1472) and version 0.
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{BenchmarkId, Criterion, Throughput};
use lvs_core::conn::{ConnFlags, FwdMethod};
use lvs_core::sync::{
    decode, SeqData, SeqOptions, SyncBatcher, SyncConn, SyncVersion, DEFAULT_MAXLEN_V4,
};
use lvs_core::Instant;

/// Records per measured batch.
const N: usize = 4096;

fn records(v6: bool) -> Vec<SyncConn> {
    (0..N as u32)
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
                dport: 8443,
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
}
