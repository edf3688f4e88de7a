//! Prometheus text exposition on a loopback address (`--metrics ADDR`).
//!
//! Names follow node_exporter's ipvs collector where one exists: the totals
//! `node_ipvs_connections_total`, `node_ipvs_incoming_packets_total`,
//! `node_ipvs_outgoing_packets_total`, `node_ipvs_incoming_bytes_total`,
//! `node_ipvs_outgoing_bytes_total`, and per real server `node_ipvs_backend_connections_active`,
//! `node_ipvs_backend_connections_inactive` and `node_ipvs_backend_weight` with its labels
//! (`local_address`, `local_port`, `local_mark`, `proto`, `remote_address`, `remote_port`).
//! The collector has no per-service or per-backend traffic counters; those are
//! `lvs_tun_service_*` and `lvs_tun_backend_*`. Drops are `lvs_tun_drops_total{reason}`, queue
//! traffic `lvs_tun_queue_*{queue}`. With a role (`--role` / `--sync-dev`): `lvs_tun_role{role}`
//! and the `lvs_tun_sync_*` counters ([`render_sync`]).

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration as StdDuration;

use lvs_core::rules::listing::{Snapshot, Stats};
use lvs_core::rules::ServiceKey;
use tracing::warn;

use lvs_core::director::{SyncSkip, SyncStats};
use lvs_core::sync::role::Role;
use lvs_core::sync::SyncReason;

use crate::counters::{Drop, QueueStats};
use crate::daemon::Shared;
use crate::sync::{role_name, SyncCounters};

/// Binds the metrics listener. Refuses addresses that are not loopback: the counters name
/// the real servers.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "metrics listen on a loopback address only",
        ));
    }
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Answers scrapes until the daemon stops.
pub fn serve(listener: TcpListener, shared: &Shared) {
    while !shared.stopping() {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, shared) {
                    warn!("metrics request: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(StdDuration::from_millis(50));
            }
            Err(_) => std::thread::sleep(StdDuration::from_millis(50)),
        }
    }
}

fn answer(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(StdDuration::from_secs(2)))?;
    // Read the request head (bounded); any path answers with the metrics.
    let mut head = [0u8; 4096];
    let mut got = 0;
    while got < head.len() {
        let n = stream.read(&mut head[got..])?;
        if n == 0 {
            break;
        }
        got += n;
        if head[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let body = {
        let d = shared.director();
        let now = shared.now();
        let snap = d.snapshot(now);
        let total = d.total_stats().read();
        let sync = *d.sync_stats();
        drop(d);
        let mut body = render(&snap, &total, &shared.drops.snapshot(), &shared.queues);
        if let Some(rc) = &shared.role {
            render_sync(&mut body, rc.role(), rc.transitions(), &rc.counters, &sync);
        }
        body
    };
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Label values of a service as node_exporter writes them.
fn service_labels(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => format!(
            "local_address=\"{addr}\",local_port=\"{port}\",local_mark=\"\",proto=\"{}\"",
            protocol.name().to_uppercase()
        ),
        ServiceKey::Fwmark { mark, .. } => {
            format!("local_address=\"\",local_port=\"0\",local_mark=\"{mark}\",proto=\"FWM\"")
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders the exposition text.
pub fn render(
    snap: &Snapshot,
    total: &Stats,
    drops: &[(Drop, u64)],
    queues: &[QueueStats],
) -> String {
    let mut o = String::new();
    for (name, help, v) in [
        (
            "node_ipvs_connections_total",
            "The total number of connections made.",
            total.conns,
        ),
        (
            "node_ipvs_incoming_packets_total",
            "The total number of incoming packets.",
            total.inpkts,
        ),
        (
            "node_ipvs_outgoing_packets_total",
            "The total number of outgoing packets.",
            total.outpkts,
        ),
        (
            "node_ipvs_incoming_bytes_total",
            "The total amount of incoming data.",
            total.inbytes,
        ),
        (
            "node_ipvs_outgoing_bytes_total",
            "The total amount of outgoing data.",
            total.outbytes,
        ),
    ] {
        header(&mut o, name, "counter", help);
        let _ = writeln!(o, "{name} {v}");
    }
    type Pick = fn(&lvs_core::rules::listing::DestSnapshot) -> u64;
    let backend: [(&str, &str, &str, Pick); 8] = [
        (
            "node_ipvs_backend_connections_active",
            "gauge",
            "The current active connections by local and remote address.",
            |d| u64::from(d.activeconns),
        ),
        (
            "node_ipvs_backend_connections_inactive",
            "gauge",
            "The current inactive connections by local and remote address.",
            |d| u64::from(d.inactconns),
        ),
        (
            "node_ipvs_backend_weight",
            "gauge",
            "The current backend weight by local and remote address.",
            |d| u64::from(d.config.weight),
        ),
        (
            "lvs_tun_backend_connections_total",
            "counter",
            "Connections scheduled to the real server.",
            |d| d.stats.conns,
        ),
        (
            "lvs_tun_backend_incoming_packets_total",
            "counter",
            "Packets client to real server.",
            |d| d.stats.inpkts,
        ),
        (
            "lvs_tun_backend_outgoing_packets_total",
            "counter",
            "Packets real server to client.",
            |d| d.stats.outpkts,
        ),
        (
            "lvs_tun_backend_incoming_bytes_total",
            "counter",
            "Bytes client to real server.",
            |d| d.stats.inbytes,
        ),
        (
            "lvs_tun_backend_outgoing_bytes_total",
            "counter",
            "Bytes real server to client.",
            |d| d.stats.outbytes,
        ),
    ];
    for (name, kind, help, pick) in backend {
        header(&mut o, name, kind, help);
        for s in &snap.services {
            let sl = service_labels(&s.config.key);
            for d in &s.dests {
                let _ = writeln!(
                    o,
                    "{name}{{{sl},remote_address=\"{}\",remote_port=\"{}\"}} {}",
                    d.config.addr,
                    d.config.port,
                    pick(d)
                );
            }
        }
    }
    type SPick = fn(&Stats) -> u64;
    let service: [(&str, &str, SPick); 5] = [
        (
            "lvs_tun_service_connections_total",
            "Connections scheduled by the service.",
            |s| s.conns,
        ),
        (
            "lvs_tun_service_incoming_packets_total",
            "Packets client to service.",
            |s| s.inpkts,
        ),
        (
            "lvs_tun_service_outgoing_packets_total",
            "Packets service to client.",
            |s| s.outpkts,
        ),
        (
            "lvs_tun_service_incoming_bytes_total",
            "Bytes client to service.",
            |s| s.inbytes,
        ),
        (
            "lvs_tun_service_outgoing_bytes_total",
            "Bytes service to client.",
            |s| s.outbytes,
        ),
    ];
    for (name, help, pick) in service {
        header(&mut o, name, "counter", help);
        for s in &snap.services {
            let _ = writeln!(
                o,
                "{name}{{{}}} {}",
                service_labels(&s.config.key),
                pick(&s.stats)
            );
        }
    }
    header(
        &mut o,
        "lvs_tun_drops_total",
        "counter",
        "Packets read from the device and not forwarded, by reason.",
    );
    for (d, v) in drops {
        let _ = writeln!(o, "lvs_tun_drops_total{{reason=\"{}\"}} {v}", d.name());
    }
    type QPick = fn(&QueueStats) -> u64;
    let q: [(&str, &str, QPick); 6] = [
        (
            "lvs_tun_queue_rx_packets_total",
            "Packets read from the device queue.",
            |q| q.rx_packets.load(Relaxed),
        ),
        (
            "lvs_tun_queue_rx_bytes_total",
            "Bytes read from the device queue.",
            |q| q.rx_bytes.load(Relaxed),
        ),
        (
            "lvs_tun_queue_tx_packets_total",
            "Packets written to the device queue.",
            |q| q.tx_packets.load(Relaxed),
        ),
        (
            "lvs_tun_queue_tx_bytes_total",
            "Bytes written to the device queue.",
            |q| q.tx_bytes.load(Relaxed),
        ),
        (
            "lvs_tun_queue_icmp_errors_total",
            "ICMP errors built and sent instead of forwarding.",
            |q| q.icmp_errors.load(Relaxed),
        ),
        (
            "lvs_tun_queue_read_errors_total",
            "Failed reads from the device queue.",
            |q| q.read_errors.load(Relaxed),
        ),
    ];
    for (name, help, pick) in q {
        header(&mut o, name, "counter", help);
        for (i, qs) in queues.iter().enumerate() {
            let _ = writeln!(o, "{name}{{queue=\"{i}\"}} {}", pick(qs));
        }
    }
    o
}

/// Appends the role and sync families: `lvs_tun_role{role}` (1 for the current role),
/// `lvs_tun_role_changes_total`, the socket counters (`lvs_tun_sync_sent_datagrams_total`,
/// `lvs_tun_sync_received_datagrams_total`, ...) and what the director did with them
/// (`lvs_tun_sync_rejected_total{reason}`, `lvs_tun_sync_skipped_total{reason}`, ...).
pub fn render_sync(o: &mut String, role: Role, transitions: u64, c: &SyncCounters, st: &SyncStats) {
    header(
        o,
        "lvs_tun_role",
        "gauge",
        "1 for the director's current role (master, backup, fault, stop).",
    );
    for r in [Role::Master, Role::Backup, Role::Fault, Role::Stopped] {
        let _ = writeln!(
            o,
            "lvs_tun_role{{role=\"{}\"}} {}",
            role_name(r),
            u8::from(r == role)
        );
    }
    let plain: [(&str, &str, u64); 13] = [
        (
            "lvs_tun_role_changes_total",
            "Role changes (keepalived notifications that changed the role).",
            transitions,
        ),
        (
            "lvs_tun_sync_sent_datagrams_total",
            "Sync datagrams sent to the multicast group (master).",
            c.sent.load(Relaxed),
        ),
        (
            "lvs_tun_sync_sent_bytes_total",
            "Bytes of sync datagrams sent (UDP payload).",
            c.sent_bytes.load(Relaxed),
        ),
        (
            "lvs_tun_sync_send_errors_total",
            "Sync datagrams the socket refused to send.",
            c.send_errors.load(Relaxed),
        ),
        (
            "lvs_tun_sync_sent_records_total",
            "Connection records the sync master wrote.",
            st.records_sent,
        ),
        (
            "lvs_tun_sync_queue_dropped_datagrams_total",
            "Sync datagrams dropped because the send queue was full.",
            st.datagrams_dropped,
        ),
        (
            "lvs_tun_sync_encode_errors_total",
            "Records the sync master could not write.",
            st.encode_errors,
        ),
        (
            "lvs_tun_sync_received_datagrams_total",
            "Sync datagrams received on the group's port.",
            c.received.load(Relaxed),
        ),
        (
            "lvs_tun_sync_ignored_datagrams_total",
            "Sync datagrams received while not backup (not applied).",
            c.ignored.load(Relaxed),
        ),
        (
            "lvs_tun_sync_applied_datagrams_total",
            "Sync datagrams whose records were applied (backup).",
            st.datagrams_applied,
        ),
        (
            "lvs_tun_sync_created_conns_total",
            "Connection entries created from sync records.",
            st.created,
        ),
        (
            "lvs_tun_sync_updated_conns_total",
            "Connection entries updated from sync records.",
            st.updated,
        ),
        (
            "lvs_tun_sync_replaced_conns_total",
            "Connections replaced because a record named another real server.",
            st.replaced,
        ),
    ];
    for (name, help, v) in plain {
        header(o, name, "counter", help);
        let _ = writeln!(o, "{name} {v}");
    }
    header(
        o,
        "lvs_tun_sync_rejected_total",
        "counter",
        "Sync datagrams refused and records skipped by the decoder, by reason.",
    );
    for r in SyncReason::ALL {
        let _ = writeln!(
            o,
            "lvs_tun_sync_rejected_total{{reason=\"{}\"}} {}",
            r.name(),
            st.rejected(r)
        );
    }
    header(
        o,
        "lvs_tun_sync_skipped_total",
        "counter",
        "Well-formed sync records the director did not apply, by reason.",
    );
    for r in SyncSkip::ALL {
        let _ = writeln!(
            o,
            "lvs_tun_sync_skipped_total{{reason=\"{}\"}} {}",
            r.name(),
            st.skipped(r)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_core::rules::RuleSet;

    #[test]
    fn names_and_labels_as_node_exporter() {
        let rules = RuleSet::from_text(
            "-A -t 10.100.0.1:80 -s rr\n-a -t 10.100.0.1:80 -r 10.0.1.11:8080 -m -w 3\n-A -f 7\n-a -f 7 -r 10.0.1.12:0 -w 0\n",
        )
        .unwrap();
        let snap = Snapshot::from_rules(&rules);
        let total = Stats {
            conns: 5,
            inpkts: 9,
            ..Stats::default()
        };
        let q = [QueueStats::default()];
        q[0].rx(100);
        let text = render(&snap, &total, &[(Drop::Malformed, 4)], &q);
        assert!(text.contains("node_ipvs_connections_total 5\n"), "{text}");
        assert!(text.contains("node_ipvs_incoming_packets_total 9\n"));
        assert!(text.contains(
            "node_ipvs_backend_weight{local_address=\"10.100.0.1\",local_port=\"80\",local_mark=\"\",proto=\"TCP\",remote_address=\"10.0.1.11\",remote_port=\"8080\"} 3\n"
        ), "{text}");
        assert!(text.contains(
            "node_ipvs_backend_weight{local_address=\"\",local_port=\"0\",local_mark=\"7\",proto=\"FWM\",remote_address=\"10.0.1.12\",remote_port=\"0\"} 0\n"
        ), "{text}");
        assert!(text.contains("lvs_tun_drops_total{reason=\"malformed\"} 4\n"));
        assert!(text.contains("lvs_tun_queue_rx_bytes_total{queue=\"0\"} 100\n"));
        // Every sample line belongs to a declared family.
        let mut text = text;
        let c = SyncCounters::default();
        c.sent.fetch_add(7, Relaxed);
        let mut st = SyncStats::default();
        st.rejected[SyncReason::ALL[1].index()] = 2;
        st.skipped[SyncSkip::ALL[0].index()] = 5;
        render_sync(&mut text, Role::Backup, 3, &c, &st);
        assert!(text.contains("lvs_tun_role{role=\"backup\"} 1\n"), "{text}");
        assert!(text.contains("lvs_tun_role{role=\"master\"} 0\n"));
        assert!(text.contains("lvs_tun_role_changes_total 3\n"));
        assert!(text.contains("lvs_tun_sync_sent_datagrams_total 7\n"));
        assert!(text.contains(&format!(
            "lvs_tun_sync_rejected_total{{reason=\"{}\"}} 2\n",
            SyncReason::ALL[1].name()
        )));
        assert!(text.contains(&format!(
            "lvs_tun_sync_skipped_total{{reason=\"{}\"}} 5\n",
            SyncSkip::ALL[0].name()
        )));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{line}");
        }
    }
}
