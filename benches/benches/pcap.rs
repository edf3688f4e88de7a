//! lvs-pcap replay end to end: read a capture, run every packet through the director,
//! validate and write the output capture; throughput in packets per second.

use criterion::{black_box, Criterion, Throughput};
use lvs_core::conn::HashKey;
use lvs_core::director::{Director, DirectorConfig, PacketVerdict};
use lvs_core::rules::RuleSet;
use lvs_core::Instant;
use lvs_pcap::capture::CaptureReader;
use lvs_pcap::replay::{run, ReplayOptions};
use lvs_pcap::synth;

const FLOWS: u32 = 10_000;
const PER_FLOW: u32 = 10;

pub fn benches(c: &mut Criterion) {
    let cap = synth::multi_flow_capture(FLOWS, PER_FLOW, 64);
    let rules = RuleSet::from_text(&synth::rules(4, "rr")).unwrap();
    let mut g = c.benchmark_group("pcap");
    g.throughput(Throughput::Elements(u64::from(FLOWS * PER_FLOW)));
    g.sample_size(10);
    let mut out = Vec::with_capacity(cap.len() + (1 << 20));
    g.bench_function("replay_nat_100k", |b| {
        b.iter(|| {
            out.clear();
            let mut reader = CaptureReader::new(&cap[..]).unwrap();
            let options = ReplayOptions {
                conn_capacity: 1 << 16,
                ..ReplayOptions::default()
            };
            let r = run(&rules, options, &mut reader, Some(&mut out)).unwrap();
            assert_eq!(r.failed, 0);
            black_box(r.packets_out)
        })
    });
    // The parts: reading alone, and reading + the director without validation or writing.
    g.bench_function("read_100k", |b| {
        b.iter(|| {
            let mut reader = CaptureReader::new(&cap[..]).unwrap();
            let mut n = 0u64;
            while let Some(p) = reader.next_packet().unwrap() {
                n += p.data.len() as u64;
            }
            black_box(n)
        })
    });
    g.bench_function("read_director_100k", |b| {
        let mut buf = vec![0u8; 64 + 65535];
        let mut icmp = [0u8; 1280];
        b.iter(|| {
            let mut d = Director::new(DirectorConfig::new(1 << 16, HashKey::from_u128(1)));
            d.apply_rules(Instant::ZERO, &rules).unwrap();
            let mut reader = CaptureReader::new(&cap[..]).unwrap();
            let mut fwd = 0u64;
            let mut t = 0;
            while let Some(p) = reader.next_packet().unwrap() {
                buf[64..64 + p.data.len()].copy_from_slice(p.data);
                t += 1000;
                let v = d.handle_packet(
                    Instant::from_nanos(t),
                    &mut buf[..64 + p.data.len()],
                    64,
                    &mut icmp,
                );
                fwd += u64::from(matches!(v, PacketVerdict::Forward { .. }));
            }
            assert_eq!(fwd, u64::from(FLOWS * PER_FLOW));
            black_box(fwd)
        })
    });
    g.finish();
}
