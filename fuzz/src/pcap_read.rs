//! `pcap_read`: arbitrary bytes as a capture file, read by `lvs-pcap`'s reader and replayed
//! through a small director (NAT, DR and GUE tunnel services over the fixtures' addresses).
//!
//! Invariants: nothing panics; packets come out in file order at increasing offsets inside
//! the file, each no longer than the record bound; an error names an offset inside the file
//! (or its end) past every packet handed out; the replay reads exactly the same packets and
//! writes a valid pcap with one record per output; and the validator finds nothing wrong
//! with what the director wrote (the lint about ARP is the capture's business, not a fault).
//! The client-side replay runs a sync master (`--sync-out`): its capture reads back with one
//! frame per datagram and a backup applies every one of them; and the input itself goes
//! through `lvs-pcap sync` (its UDP 8848 datagrams to a backup), which must account for
//! every datagram it found.

use lvs_core::director::SyncMasterConfig;
use lvs_core::rules::RuleSet;
use lvs_core::sync::master::SyncSysctls;
use lvs_pcap::capture::{CaptureReader, MAX_RECORD_LEN};
use lvs_pcap::replay::{run_with_sync, ReplayOptions, Side};
use lvs_pcap::sync::{SyncOptions, SyncReplay};

const RULES: &str = "-A -t 10.99.0.10:80 -s rr\n-a -t 10.99.0.10:80 -r 10.100.0.1:8080 -m\n\
-a -t 10.99.0.10:80 -r 10.100.0.2:8080 -m\n-A -u 10.99.0.10:53 -s rr\n\
-a -u 10.99.0.10:53 -r 10.99.0.21:53 -g\n-A -t [fd99::10]:80 -s rr\n\
-a -t [fd99::10]:80 -r [fd00:100::1]:80 -i --tun-type gue --tun-port 6080 --tun-csum\n\
-A -t 10.99.0.10:81 -s rr\n-a -t 10.99.0.10:81 -r 10.100.0.3:81 -m -w 0\n";

/// Reads and replays `data` as a capture, checking the invariants above.
pub fn pcap_read(data: &[u8]) {
    let mut packets = 0u64;
    let mut last = None;
    match CaptureReader::new(data) {
        Err(e) => assert!(e.offset() <= data.len() as u64, "{e}"),
        Ok(mut r) => loop {
            match r.next_packet() {
                Ok(Some(p)) => {
                    assert!(p.offset < data.len() as u64);
                    assert!(last.is_none_or(|l| p.offset > l));
                    assert!(p.data.len() <= MAX_RECORD_LEN);
                    last = Some(p.offset);
                    packets += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(e.offset() <= data.len() as u64, "{e}");
                    assert!(last.is_none_or(|l| e.offset() > l), "{e}");
                    assert!(r.next_packet().unwrap().is_none());
                    break;
                }
            }
        },
    }
    let rules = RuleSet::from_text(RULES).expect("fixed rules parse");
    let Ok(mut reader) = CaptureReader::new(data) else {
        return;
    };
    for side in [Side::Director, Side::Client] {
        let Ok(mut reader2) = CaptureReader::new(data) else {
            return;
        };
        let reader = if side == Side::Director {
            &mut reader
        } else {
            &mut reader2
        };
        let options = ReplayOptions {
            side,
            locals: vec!["10.99.0.2".parse().unwrap(), "fd99::2".parse().unwrap()],
            neigh: [("10.99.0.21".parse().unwrap(), [2, 0, 0, 0x99, 0, 0x21])].into(),
            conn_capacity: 64,
            // Fuzzed timestamps jump by years; a few steps keep an execution short (the
            // rest of the timers then run at the packet's time, bounded by the table).
            max_timer_steps: 16,
            ..ReplayOptions::default()
        };
        let mut out = Vec::new();
        let mut sync_out = Vec::new();
        let sync = (side == Side::Client).then(|| {
            let cfg = SyncMasterConfig {
                sysctls: SyncSysctls {
                    threshold: 1,
                    ..SyncSysctls::default()
                },
                ..SyncMasterConfig::default()
            };
            (cfg, &mut sync_out)
        });
        let report =
            run_with_sync(&rules, options, reader, Some(&mut out), sync).expect("replay runs");
        assert_eq!(report.packets_in, packets);
        let lint = report
            .failures_by_reason
            .get("dr_arp_vip")
            .copied()
            .unwrap_or(0);
        assert_eq!(report.failed, lint, "{}", report.summary());
        let mut check = CaptureReader::new(&out[..]).expect("output is a capture");
        let mut n = 0;
        while check.next_packet().expect("output reads back").is_some() {
            n += 1;
        }
        assert_eq!(n, report.packets_out);
        if let Some(written) = report.sync_datagrams {
            let mut r = CaptureReader::new(&sync_out[..]).expect("sync output is a capture");
            let b = SyncReplay::run(&rules, sync_options(), &mut r).expect("rules apply");
            assert_eq!(
                (b.datagrams, b.applied),
                (written, written),
                "{}",
                b.summary()
            );
            assert!(b.input_error.is_none());
        }
    }
    if let Ok(mut r) = CaptureReader::new(data) {
        let b = SyncReplay::run(&rules, sync_options(), &mut r).expect("rules apply");
        assert_eq!(b.packets, packets);
        assert_eq!(
            b.applied + b.other_syncid + b.rejected_total(),
            b.datagrams,
            "{}",
            b.summary()
        );
    }
}

fn sync_options() -> SyncOptions {
    SyncOptions {
        conn_capacity: 64,
        max_timer_steps: 16,
        ..SyncOptions::default()
    }
}
