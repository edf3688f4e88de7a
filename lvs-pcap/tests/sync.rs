//! Sync master in a replay (`--sync-out`) and a backup fed from its capture (`lvs-pcap
//! sync`): the committed real capture through NAT rules, the backup's table against the
//! master's, the frames parsed and checksummed by etherparse, corrupted datagrams rejected.

use std::path::{Path, PathBuf};
use std::process::Command;

use etherparse::{NetHeaders, PacketHeaders, PayloadSlice, TransportHeader};
use lvs_core::director::SyncMasterConfig;
use lvs_core::rules::RuleSet;
use lvs_core::sync::master::SyncSysctls;
use lvs_core::Instant;
use lvs_pcap::capture::{CaptureReader, CaptureWriter, LinkType};
use lvs_pcap::replay::{Replay, ReplayOptions, Side};
use lvs_pcap::sync::{SyncOptions, SyncReplay, SYNC_MAC};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn rules() -> RuleSet {
    RuleSet::from_text(&std::fs::read_to_string(fixture("nat-v4.rules")).unwrap()).unwrap()
}

/// (protocol, client, virtual, real server, state) of every entry, sorted.
type Row = (String, String, String, String, String);

fn rows(entries: &[lvs_core::rules::listing::ConnEntry]) -> Vec<Row> {
    let mut v: Vec<Row> = entries
        .iter()
        .map(|e| {
            (
                e.protocol.name().to_string(),
                format!("{}:{}", e.caddr, e.cport),
                format!("{}:{}", e.vaddr, e.vport),
                format!("{}:{}", e.daddr, e.dport),
                e.state.clone(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Replays `real-v4.pcap` (client side, NAT) with a sync master of threshold `threshold`;
/// returns the master's table at the end and the sync capture.
fn master(threshold: u32) -> (Vec<Row>, Vec<u8>, u64) {
    let cap = std::fs::read(fixture("real-v4.pcap")).unwrap();
    let mut reader = CaptureReader::new(&cap[..]).unwrap();
    let options = ReplayOptions {
        side: Side::Client,
        locals: vec!["10.99.0.2".parse().unwrap()],
        ..ReplayOptions::default()
    };
    let cfg = SyncMasterConfig {
        sysctls: SyncSysctls {
            threshold,
            ..SyncSysctls::default()
        },
        ..SyncMasterConfig::default()
    };
    let mut sync = Vec::new();
    let mut replay =
        Replay::<Vec<u8>, &mut Vec<u8>>::with_sync(&rules(), options, None, Some((cfg, &mut sync)))
            .unwrap();
    while let Some(p) = reader.next_packet().unwrap() {
        replay.handle(&p).unwrap();
    }
    let table = rows(&replay.director().connections(Instant::ZERO));
    let report = replay.finish("pcap").unwrap();
    assert_eq!(report.failed, 0, "{}", report.summary());
    let n = report.sync_datagrams.unwrap();
    (table, sync, n)
}

fn backup(cap: &[u8]) -> lvs_pcap::sync::SyncReport {
    let mut reader = CaptureReader::new(cap).unwrap();
    SyncReplay::run(&rules(), SyncOptions::default(), &mut reader).unwrap()
}

/// Every frame of the sync capture, parsed by etherparse, with both checksums verified;
/// returns (timestamp, UDP payload).
fn frames(cap: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut reader = CaptureReader::new(cap).unwrap();
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet().unwrap() {
        assert_eq!(p.link, LinkType::ETHERNET);
        let h = PacketHeaders::from_ethernet_slice(p.data).unwrap();
        let eth = h.link.unwrap().ethernet2().unwrap();
        assert_eq!(eth.destination, SYNC_MAC);
        let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
            panic!("not IPv4")
        };
        assert_eq!(ip.source, [10, 99, 0, 2]);
        assert_eq!(ip.destination, [224, 0, 0, 81]);
        assert_eq!(ip.time_to_live, 1);
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        let Some(TransportHeader::Udp(udp)) = h.transport else {
            panic!("not UDP")
        };
        assert_eq!((udp.source_port, udp.destination_port), (8848, 8848));
        let PayloadSlice::Udp(payload) = h.payload else {
            panic!("no UDP payload")
        };
        assert_ne!(udp.checksum, 0);
        assert_eq!(udp.checksum, udp.calc_checksum_ipv4(&ip, payload).unwrap());
        assert_eq!(usize::from(udp.length), 8 + payload.len());
        out.push((p.ts_nanos, payload.to_vec()));
    }
    out
}

#[test]
fn backup_reproduces_the_masters_table() {
    let (master_table, sync, n) = master(1);
    assert!(n >= 1);
    let f = frames(&sync);
    assert_eq!(f.len() as u64, n);
    // Emitted within the capture's time span (the last packet is at 04:10:08.419987).
    let cap = std::fs::read(fixture("real-v4.pcap")).unwrap();
    let mut r = CaptureReader::new(&cap[..]).unwrap();
    let mut span = (u64::MAX, 0);
    while let Some(p) = r.next_packet().unwrap() {
        span = (span.0.min(p.ts_nanos), span.1.max(p.ts_nanos));
    }
    assert!(f.iter().all(|(ts, _)| (span.0..=span.1).contains(ts)));

    let report = backup(&sync);
    assert_eq!(report.exit_status(), 0, "{}", report.summary());
    assert_eq!((report.datagrams, report.applied), (n, n));
    let backup_table: Vec<Row> = report
        .connections
        .iter()
        .map(|c| {
            (
                c.protocol.clone(),
                c.client.clone(),
                c.virtual_service.clone(),
                c.destination.clone(),
                c.state.clone(),
            )
        })
        .collect();
    let mut backup_table = backup_table;
    backup_table.sort();
    // The synced connections: the HTTP one ended (TIME_WAIT) and the UDP one.
    assert!(backup_table
        .iter()
        .any(|r| r.0 == "TCP" && r.3 == "10.100.0.2:8080" && r.4 == "TIME_WAIT"));
    assert!(backup_table
        .iter()
        .any(|r| r.0 == "UDP" && r.3 == "10.100.0.1:5353"));
    // The kernel syncs a TCP connection only once established or closing (spec 4.3); the
    // refused connection to port 81 (a SYN answered by a RST: CLOSE from a reply, and sync
    // runs on client packets only) never was. Every other entry of
    // the master is on the backup, with the same real server and state.
    let unsynced: Vec<&Row> = master_table
        .iter()
        .filter(|r| !backup_table.contains(r))
        .collect();
    assert!(
        unsynced
            .iter()
            .all(|r| r.0 == "TCP" && r.2 == "10.99.0.10:81" && r.4 == "CLOSE"),
        "master {master_table:?}\nbackup {backup_table:?}"
    );
    assert!(backup_table.iter().all(|r| master_table.contains(r)));
    assert_eq!(backup_table.len() + unsynced.len(), master_table.len());
    // The listing is ipvsadm's.
    assert!(report.table.starts_with(
        "IPVS connection entries\npro expire state       source             virtual            destination\n"
    ));
    assert!(report.table.contains("TCP 02:00  TIME_WAIT   10.99.0.1:"));
}

#[test]
fn committed_sync_capture_is_what_a_replay_writes() {
    let (_, sync, _) = master(1);
    let committed = std::fs::read(fixture("sync-nat-v4.pcap")).unwrap();
    assert!(
        sync == committed,
        "regenerate with: lvs-pcap replay --side client --local 10.99.0.2 --rules \
         lvs-pcap/tests/fixtures/nat-v4.rules --in lvs-pcap/tests/fixtures/real-v4.pcap \
         --sync-threshold 1 --sync-out lvs-pcap/tests/fixtures/sync-nat-v4.pcap"
    );
    let r = backup(&committed);
    assert_eq!((r.applied, r.exit_status()), (1, 0));
    assert_eq!(r.connections.len(), 2);
}

#[test]
fn default_threshold_syncs_only_what_the_kernel_would() {
    // sync_threshold 3: the UDP flow of one datagram is never synced, the HTTP one is.
    let (_, sync, _) = master(3);
    let report = backup(&sync);
    assert_eq!(report.exit_status(), 0);
    assert_eq!(report.connections.len(), 1, "{}", report.table);
    assert_eq!(report.connections[0].destination, "10.100.0.2:8080");
}

/// Rewrites the capture's frames through `f` (on the UDP payload), fixing the UDP
/// checksum when `fix` (so only the sync layer sees the damage).
fn corrupt(cap: &[u8], f: impl Fn(&mut Vec<u8>), fix: bool) -> Vec<u8> {
    let mut reader = CaptureReader::new(cap).unwrap();
    let mut out = Vec::new();
    let mut w = CaptureWriter::new(&mut out, LinkType::ETHERNET).unwrap();
    while let Some(p) = reader.next_packet().unwrap() {
        let mut frame = p.data.to_vec();
        let mut payload = frame[42..].to_vec();
        f(&mut payload);
        frame.truncate(42);
        frame.extend_from_slice(&payload);
        if fix {
            let h = PacketHeaders::from_ethernet_slice(&frame).unwrap();
            let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
                panic!()
            };
            let Some(TransportHeader::Udp(udp)) = h.transport else {
                panic!()
            };
            let c = udp.calc_checksum_ipv4(&ip, &payload).unwrap();
            frame[40..42].copy_from_slice(&c.to_be_bytes());
        }
        w.write_packet(p.ts_nanos, &frame).unwrap();
    }
    w.into_inner().unwrap();
    out
}

#[test]
fn corrupted_datagrams_are_rejected() {
    let (_, sync, n) = master(1);
    // The v1 header's size field (bytes 2..4) no longer matches: the sync decoder refuses.
    let bad = corrupt(&sync, |p| p[3] ^= 0x01, true);
    let r = backup(&bad);
    assert_eq!(r.exit_status(), 1);
    assert_eq!(r.rejected.get("size_mismatch"), Some(&n), "{}", r.summary());
    assert!(r.connections.is_empty());
    // A flipped payload bit under the old checksum: the UDP layer drops it.
    let bad = corrupt(&sync, |p| p[20] ^= 0x10, false);
    let r = backup(&bad);
    assert_eq!(r.exit_status(), 1);
    assert_eq!(r.rejected.get("udp_checksum"), Some(&n), "{}", r.summary());
    // Unless checksums are not verified (then the decoder or the table decides).
    let mut reader = CaptureReader::new(&bad[..]).unwrap();
    let opts = SyncOptions {
        verify_checksums: false,
        ..SyncOptions::default()
    };
    let r = SyncReplay::run(&rules(), opts, &mut reader).unwrap();
    assert_eq!(r.rejected.get("udp_checksum"), None);
}

#[test]
fn other_syncid_is_ignored() {
    let (_, sync, n) = master(1);
    let mut reader = CaptureReader::new(&sync[..]).unwrap();
    let opts = SyncOptions {
        syncid: 7,
        ..SyncOptions::default()
    };
    let r = SyncReplay::run(&rules(), opts, &mut reader).unwrap();
    assert_eq!((r.other_syncid, r.applied, r.exit_status()), (n, 0, 0));
    assert!(r.connections.is_empty());
}

// ----- the binary -------------------------------------------------------------------------

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lvs-pcap"))
}

#[test]
fn cli_replay_sync_out_then_sync() {
    let dir = std::env::temp_dir().join(format!("lvs-pcap-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sync = dir.join("sync.pcap");
    let o = bin()
        .args(["replay", "--side", "client", "--local", "10.99.0.2"])
        .arg("--rules")
        .arg(fixture("nat-v4.rules"))
        .arg("--in")
        .arg(fixture("real-v4.pcap"))
        .arg("--sync-out")
        .arg(&sync)
        .args(["--sync-threshold", "1", "--sync-syncid", "5"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("sync datagrams written: 1"));
    let cap = std::fs::read(&sync).unwrap();
    assert_eq!(frames(&cap).len(), 1);

    let run = |extra: &[&str], input: &Path| {
        bin()
            .arg("sync")
            .arg("--rules")
            .arg(fixture("nat-v4.rules"))
            .arg("--in")
            .arg(input)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&[], &sync);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(table.starts_with("IPVS connection entries\n"), "{table}");
    assert!(table.contains("TIME_WAIT   10.99.0.1:"), "{table}");
    assert!(
        table.contains("10.99.0.10:53      10.100.0.1:5353"),
        "{table}"
    );
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("applied 1, rejected 0"), "{err}");

    // Another syncid than the master's 5: ignored.
    let o = run(&["--syncid", "4"], &sync);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8(o.stdout).unwrap().lines().count(), 2);

    // --at: 100 s after the first datagram the TIME_WAIT entry (120 s) has 20 s left and the
    // UDP one (300 s) 200.
    let o = run(&["--at", "100", "--json"], &sync);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let conns = v["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2);
    for c in conns {
        let e = c["expires_secs"].as_u64().unwrap();
        match c["protocol"].as_str().unwrap() {
            "TCP" => assert_eq!(e, 20),
            _ => assert_eq!(e, 200),
        }
    }

    // A corrupted datagram: exit 1, the reason on stderr.
    let bad = dir.join("bad.pcap");
    std::fs::write(&bad, corrupt(&cap, |p| p[3] ^= 1, true)).unwrap();
    let o = run(&[], &bad);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("size_mismatch 1"));

    // A truncated capture: exit 2 with the byte offset.
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &cap[..cap.len() - 5]).unwrap();
    let o = run(&[], &cut);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("byte offset 24"));

    // Rules that cannot be read, and a threshold the kernel's sysctl refuses: exit 2.
    let o = bin()
        .args(["sync", "--rules", "/nonexistent/rules", "--in"])
        .arg(&sync)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin()
        .arg("replay")
        .arg("--rules")
        .arg(fixture("nat-v4.rules"))
        .arg("--in")
        .arg(fixture("real-v4.pcap"))
        .arg("--sync-out")
        .arg(dir.join("x.pcap"))
        .args(["--sync-threshold", "50"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--sync-period"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An IPv4 TCP packet from 192.0.2.7:40000 to 10.99.0.10:80.
fn tcp(flags_syn: bool) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [10, 99, 0, 10], 64)
        .tcp(40000, 80, 1, 1024);
    let b = if flags_syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

#[test]
fn partly_filled_datagram_goes_out_at_its_deadline() {
    // SYN, ACK, ACK at 1 s (the third packet syncs the established connection), then nothing
    // to the director until 10 s: the datagram leaves at 3 s (2 s old), not at 10 s.
    let base = 1_700_000_000_000_000_000u64;
    let mut cap = Vec::new();
    let mut w = CaptureWriter::new(&mut cap, LinkType::RAW).unwrap();
    w.write_packet(base, &tcp(true)).unwrap();
    w.write_packet(base + 1_000, &tcp(false)).unwrap();
    w.write_packet(base + 2_000, &tcp(false)).unwrap();
    let later = etherparse::PacketBuilder::ipv4([192, 0, 2, 9], [192, 0, 2, 1], 64).udp(1, 2);
    let mut v = Vec::new();
    later.write(&mut v, b"x").unwrap();
    w.write_packet(base + 10_000_000_000, &v).unwrap();
    w.into_inner().unwrap();

    let mut reader = CaptureReader::new(&cap[..]).unwrap();
    let mut sync = Vec::new();
    let options = ReplayOptions {
        locals: vec!["10.99.0.2".parse().unwrap()],
        ..ReplayOptions::default()
    };
    let report = lvs_pcap::replay::run_with_sync(
        &rules(),
        options,
        &mut reader,
        None::<Vec<u8>>,
        Some((SyncMasterConfig::default(), &mut sync)),
    )
    .unwrap();
    assert_eq!(report.sync_datagrams, Some(1));
    let f = frames(&sync);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0, base + 2_000 + 2_000_000_000);
    let r = backup(&sync);
    assert_eq!(r.connections.len(), 1);
    assert_eq!(r.connections[0].state, "ESTABLISHED");
}
