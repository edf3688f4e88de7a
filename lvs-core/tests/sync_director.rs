//! Connection synchronisation through the director (spec §4.3, §4.4): a backup applying
//! datagrams (creation, update, replacement, INACTIVE accounting, templates, syncid,
//! malformed datagrams), a master emitting records as traffic changes its connections, and a
//! scripted failover through `handle_packet`.

use core::net::{IpAddr, SocketAddr};

use lvs_core::conn::{ConnFlags, FwdMethod, HashKey, OutKey};
use lvs_core::director::{
    Director, DirectorConfig, FlowPacket, FlowVerdict, PacketDir, PacketVerdict, SyncBackupConfig,
    SyncMasterConfig, SyncSkip,
};
use lvs_core::rules::{Command, DestConfig, Forward, RuleError, RuleSet, ServiceKey};
use lvs_core::sync::master::SyncSysctls;
use lvs_core::sync::role::{RoleEvent, RoleState};
use lvs_core::sync::{decode, PeName, SyncConn, SyncMessage, SyncReason, SyncVersion};
use lvs_core::{Duration, Instant, Protocol};

const DR2: &str = "-A -t 10.0.0.1:80 -s rr\n\
                   -a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n\
                   -a -t 10.0.0.1:80 -r 10.1.0.2:80 -g\n";

fn t(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn director(rules: &str, key: u128) -> Director {
    let mut d = Director::new(DirectorConfig::new(4096, HashKey::from_u128(key)));
    d.apply_rules(Instant::ZERO, &RuleSet::from_text(rules).unwrap())
        .unwrap();
    d
}

fn svc() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: ip("10.0.0.1"),
        port: 80,
    }
}

/// (activeconns, inactconns, persistconns) of a linked real server.
fn counts(d: &Director, rs: &str) -> (u32, u32, u32) {
    let i = d.dest_info(&svc(), sa(rs)).unwrap();
    (i.activeconns, i.inactconns, i.persistconns)
}

fn rec(client: &str, rs: &str, state: u16, flags: ConnFlags, timeout: u32) -> SyncConn {
    let c = sa(client);
    let r = sa(rs);
    SyncConn {
        protocol: 6,
        flags,
        state,
        cport: c.port(),
        vport: 80,
        dport: r.port(),
        fwmark: 0,
        timeout,
        caddr: c.ip(),
        vaddr: ip("10.0.0.1"),
        daddr: r.ip(),
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

fn dgram(version: SyncVersion, syncid: u8, recs: Vec<SyncConn>) -> Vec<u8> {
    SyncMessage::new(version, syncid, recs).encode().unwrap()
}

fn dr() -> ConnFlags {
    ConnFlags::for_method(FwdMethod::DirectRoute)
}

const ES: u16 = 1;
const FW: u16 = 4;

#[test]
fn creates_bound_active_connection_with_synced_timeout() {
    let mut b = director(DR2, 2);
    let r = rec("192.0.2.7:40000", "10.1.0.2:80", ES, dr(), 900);
    let a = b
        .apply_sync(t(10), &dgram(SyncVersion::V1, 0, vec![r]))
        .unwrap();
    assert_eq!((a.created, a.unbound, a.updated), (1, 0, 0));
    let c = b
        .conn(Protocol::Tcp, sa("192.0.2.7:40000"), sa("10.0.0.1:80"))
        .unwrap();
    assert_eq!(c.state, "ESTABLISHED");
    assert_eq!(c.dest, sa("10.1.0.2:80"));
    assert!(c.flags.contains(ConnFlags::SYNC));
    assert!(c.flags.contains(ConnFlags::NOOUTPUT));
    assert!(!c.flags.contains(ConnFlags::INACTIVE));
    assert_eq!(c.in_pkts, 3, "in_pkts = sync_threshold[0]");
    let left = c.expires.saturating_duration_since(t(10));
    assert!(left >= Duration::from_secs(900) && left < Duration::from_secs(901));
    // Counted as the master counts it: active.
    assert_eq!(counts(&b, "10.1.0.2:80"), (1, 0, 0));
    assert_eq!(counts(&b, "10.1.0.1:80"), (0, 0, 0));
    assert_eq!(b.sync_stats().created, 1);
}

#[test]
fn forwarding_method_comes_from_the_backup_real_server() {
    // The backup forwards to 10.1.0.1 by NAT; the master said DR.
    let mut b = director(
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m\n",
        2,
    );
    let r = rec("192.0.2.7:40000", "10.1.0.1:8080", ES, dr(), 900);
    b.apply_sync(t(1), &dgram(SyncVersion::V1, 0, vec![r]))
        .unwrap();
    let c = b
        .conn(Protocol::Tcp, sa("192.0.2.7:40000"), sa("10.0.0.1:80"))
        .unwrap();
    assert_eq!(c.flags.fwd_method(), FwdMethod::Masq);
    assert!(!c.flags.contains(ConnFlags::NOOUTPUT));
    // Replies of a NAT connection are found by their real-server source.
    let out = OutKey {
        protocol: Protocol::Tcp,
        saddr: ip("10.1.0.1"),
        sport: 8080,
        daddr: ip("192.0.2.7"),
        dport: 40000,
    };
    assert_eq!(b.table().lookup_out(&out), Some(c.id));
}

#[test]
fn inactive_flip_moves_one_count() {
    let mut b = director(DR2, 2);
    let r = rec("192.0.2.7:40000", "10.1.0.1:80", ES, dr(), 900);
    b.apply_sync(t(1), &dgram(SyncVersion::V1, 0, vec![r.clone()]))
        .unwrap();
    assert_eq!(counts(&b, "10.1.0.1:80"), (1, 0, 0));
    let mut fin = r.clone();
    fin.state = FW;
    fin.flags = dr().with(ConnFlags::INACTIVE);
    fin.timeout = 120;
    let a = b
        .apply_sync(t(2), &dgram(SyncVersion::V1, 0, vec![fin]))
        .unwrap();
    assert_eq!((a.created, a.updated), (0, 1));
    assert_eq!(counts(&b, "10.1.0.1:80"), (0, 1, 0));
    let c = b
        .conn(Protocol::Tcp, sa("192.0.2.7:40000"), sa("10.0.0.1:80"))
        .unwrap();
    assert_eq!(c.state, "FIN_WAIT");
    assert!(c.flags.contains(ConnFlags::INACTIVE));
    // Back to active (a SYN after FIN_WAIT on the master, say).
    b.apply_sync(t(3), &dgram(SyncVersion::V1, 0, vec![r]))
        .unwrap();
    assert_eq!(counts(&b, "10.1.0.1:80"), (1, 0, 0));
    assert_eq!(b.table().len(), 1);
}

#[test]
fn other_real_server_replaces_when_active_and_is_ignored_when_inactive() {
    let mut b = director(DR2, 2);
    let first = rec("192.0.2.7:40000", "10.1.0.1:80", ES, dr(), 900);
    b.apply_sync(t(1), &dgram(SyncVersion::V1, 0, vec![first.clone()]))
        .unwrap();
    let moved = rec("192.0.2.7:40000", "10.1.0.2:80", ES, dr(), 900);
    let a = b
        .apply_sync(t(2), &dgram(SyncVersion::V1, 0, vec![moved]))
        .unwrap();
    assert_eq!((a.replaced, a.created), (1, 1));
    assert_eq!(counts(&b, "10.1.0.1:80"), (0, 0, 0));
    assert_eq!(counts(&b, "10.1.0.2:80"), (1, 0, 0));
    // The late expiry message of the replaced connection.
    let mut late = first;
    late.flags = dr().with(ConnFlags::INACTIVE);
    late.state = 6;
    let a = b
        .apply_sync(t(3), &dgram(SyncVersion::V1, 0, vec![late]))
        .unwrap();
    assert_eq!((a.late_expiry_ignored, a.updated, a.created), (1, 0, 0));
    let c = b
        .conn(Protocol::Tcp, sa("192.0.2.7:40000"), sa("10.0.0.1:80"))
        .unwrap();
    assert_eq!((c.dest, c.state), (sa("10.1.0.2:80"), "ESTABLISHED"));
    assert_eq!(b.table().len(), 1);
    assert_eq!(b.sync_stats().replaced, 1);
    assert_eq!(b.sync_stats().late_expiry_ignored, 1);
}

#[test]
fn unknown_real_server_stays_unbound_until_configured() {
    let mut b = director(DR2, 2);
    let r = rec("192.0.2.9:41000", "10.9.9.9:80", ES, dr(), 900);
    let a = b
        .apply_sync(t(1), &dgram(SyncVersion::V1, 0, vec![r.clone()]))
        .unwrap();
    assert_eq!((a.created, a.unbound), (1, 1));
    let id = b
        .conn(Protocol::Tcp, sa("192.0.2.9:41000"), sa("10.0.0.1:80"))
        .unwrap()
        .id;
    let c = b.table().get(id).unwrap();
    assert_eq!(c.dest, None);
    assert_eq!(c.flags.fwd_method(), FwdMethod::DirectRoute);
    // Still forwarded, to the record's real server.
    let pkt = FlowPacket {
        protocol: Protocol::Tcp,
        src: sa("192.0.2.9:41000"),
        dst: sa("10.0.0.1:80"),
        fwmark: 0,
        tcp_flags: 0x10,
        len: 52,
        dir: PacketDir::FromClient,
    };
    match b.handle_flow(t(2), &pkt) {
        FlowVerdict::Forward { dest, new, .. } => {
            assert_eq!(dest, sa("10.9.9.9:80"));
            assert!(!new);
        }
        v => panic!("{v:?}"),
    }
    // The real server appears (NAT); the next record binds the entry.
    let rules = format!("{DR2}-a -t 10.0.0.1:80 -r 10.9.9.9:80 -m\n");
    b.apply_rules(t(3), &RuleSet::from_text(&rules).unwrap())
        .unwrap();
    let a = b
        .apply_sync(t(4), &dgram(SyncVersion::V1, 0, vec![r]))
        .unwrap();
    assert_eq!((a.updated, a.bound_late), (1, 1));
    assert_eq!(counts(&b, "10.9.9.9:80"), (1, 0, 0));
    let c = b.table().get(id).unwrap();
    assert!(c.dest.is_some());
    assert_eq!(c.flags.fwd_method(), FwdMethod::Masq);
    let out = OutKey {
        protocol: Protocol::Tcp,
        saddr: ip("10.9.9.9"),
        sport: 80,
        daddr: ip("192.0.2.9"),
        dport: 41000,
    };
    assert_eq!(b.table().lookup_out(&out), Some(id));
}

#[test]
fn syncid_filter() {
    let mut b = director(DR2, 2);
    b.set_sync_backup(SyncBackupConfig {
        syncid: 5,
        threshold: 3,
    });
    let r = rec("192.0.2.7:40000", "10.1.0.1:80", ES, dr(), 900);
    let a = b
        .apply_sync(t(1), &dgram(SyncVersion::V1, 4, vec![r.clone()]))
        .unwrap();
    assert!(a.ignored_syncid);
    assert!(b.table().is_empty());
    assert_eq!(b.sync_stats().rejected(SyncReason::SyncidIgnored), 1);
    let a = b
        .apply_sync(t(1), &dgram(SyncVersion::V1, 5, vec![r]))
        .unwrap();
    assert_eq!(a.created, 1);
}

#[test]
fn malformed_datagram_changes_nothing() {
    let mut b = director(DR2, 2);
    let good = rec("192.0.2.7:40000", "10.1.0.1:80", ES, dr(), 900);
    let other = rec("192.0.2.8:40000", "10.1.0.2:80", ES, dr(), 900);
    let mut bytes = dgram(SyncVersion::V1, 0, vec![good, other]);
    // Second record's version nibble.
    let second = 8 + 36;
    bytes[second + 2] |= 0x10;
    let before = b.connections(t(1));
    let e = b.apply_sync(t(1), &bytes).unwrap_err();
    assert_eq!(e.reason(), SyncReason::RecordVersion);
    assert_eq!(e.offset(), second);
    assert_eq!(b.connections(t(1)), before);
    assert!(b.table().is_empty());
    assert_eq!(counts(&b, "10.1.0.1:80"), (0, 0, 0));
    // Truncated and size-mismatched datagrams.
    assert!(b.apply_sync(t(1), &bytes[..3]).is_err());
    let mut short = bytes.clone();
    short.pop();
    assert!(b.apply_sync(t(1), &short).is_err());
    let s = b.sync_stats();
    assert_eq!(s.rejected(SyncReason::RecordVersion), 1);
    assert_eq!(s.rejected(SyncReason::TooShort), 1);
    assert_eq!(s.rejected(SyncReason::SizeMismatch), 1);
    assert_eq!((s.datagrams_received, s.datagrams_applied), (3, 0));
    assert!(b.table().is_empty());
}

#[test]
fn templates_synced_steer_new_connections_after_takeover() {
    let rules = "-A -t 10.0.0.1:80 -s rr -p 300\n\
                 -a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n\
                 -a -t 10.0.0.1:80 -r 10.1.0.2:80 -g\n";
    let mut b = director(rules, 2);
    // Two clients, each pinned by its template to the real server rr would not give it.
    let mut tpls = Vec::new();
    for (client, rs) in [
        ("192.0.2.1:0", "10.1.0.2:80"),
        ("192.0.2.2:0", "10.1.0.1:80"),
    ] {
        let mut tr = rec(client, rs, 1, dr().with(ConnFlags::TEMPLATE), 300);
        tr.protocol = 6;
        tpls.push(tr);
    }
    let a = b
        .apply_sync(t(1), &dgram(SyncVersion::V1, 0, tpls))
        .unwrap();
    assert_eq!(a.created, 2);
    assert_eq!(counts(&b, "10.1.0.1:80").2, 1);
    assert_eq!(counts(&b, "10.1.0.2:80").2, 1);
    for (client, rs) in [
        ("192.0.2.1:5000", "10.1.0.2:80"),
        ("192.0.2.2:5000", "10.1.0.1:80"),
    ] {
        let syn = FlowPacket {
            protocol: Protocol::Tcp,
            src: sa(client),
            dst: sa("10.0.0.1:80"),
            fwmark: 0,
            tcp_flags: 0x02,
            len: 60,
            dir: PacketDir::FromClient,
        };
        match b.handle_flow(t(2), &syn) {
            FlowVerdict::Forward { dest, new, .. } => {
                assert_eq!(dest, sa(rs), "{client}");
                assert!(new);
            }
            v => panic!("{v:?}"),
        }
    }
    // A second record refreshes the template (no replacement for templates).
    let mut again = rec(
        "192.0.2.1:0",
        "10.1.0.1:80",
        1,
        dr().with(ConnFlags::TEMPLATE),
        60,
    );
    again.protocol = 6;
    let a = b
        .apply_sync(t(3), &dgram(SyncVersion::V1, 0, vec![again]))
        .unwrap();
    assert_eq!((a.updated, a.replaced, a.created), (1, 0, 0));
}

#[test]
fn version0_uses_protocol_timeouts() {
    let mut b = director(DR2, 2);
    let mut r = rec("192.0.2.7:40000", "10.1.0.1:80", ES, dr(), 0);
    r.timeout = 0;
    let mut tpl = rec(
        "192.0.2.0:0",
        "10.1.0.1:80",
        0,
        dr().with(ConnFlags::TEMPLATE),
        0,
    );
    tpl.timeout = 0;
    let a = b
        .apply_sync(t(100), &dgram(SyncVersion::V0, 0, vec![r, tpl]))
        .unwrap();
    assert_eq!((a.version, a.created), (SyncVersion::V0, 2));
    let mut left: Vec<u64> = b
        .table()
        .iter()
        .map(|c| c.expires.saturating_duration_since(t(100)).as_secs())
        .collect();
    left.sort();
    assert_eq!(left, vec![180, 900]);
}

#[test]
fn records_the_table_cannot_hold_are_counted() {
    let mut b = director(DR2, 2);
    let mut ah = rec("192.0.2.7:0", "10.1.0.1:0", 0, dr(), 60);
    ah.protocol = 51;
    let mut sip = rec(
        "192.0.2.0:0",
        "10.1.0.1:80",
        0,
        dr().with(ConnFlags::TEMPLATE),
        60,
    );
    sip.protocol = 17;
    sip.pe_data = Some(b"call-id".to_vec());
    sip.pe_name = Some(PeName::new(b"sip").unwrap());
    let ok = rec("192.0.2.7:40000", "10.1.0.1:80", ES, dr(), 900);
    let a = b
        .apply_sync(t(1), &dgram(SyncVersion::V1, 0, vec![ah, sip, ok]))
        .unwrap();
    assert_eq!((a.skipped, a.created), (2, 1));
    let s = b.sync_stats();
    assert_eq!(s.skipped(SyncSkip::UnsupportedProtocol), 1);
    assert_eq!(s.skipped(SyncSkip::PersistenceEngine), 1);
}

// ----- master ---------------------------------------------------------------------------------

fn flow(client: &str, flags: u8) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        src: sa(client),
        dst: sa("10.0.0.1:80"),
        fwmark: 0,
        tcp_flags: flags,
        len: 60,
        dir: PacketDir::FromClient,
    }
}

fn drain(d: &mut Director, now: Instant) -> Vec<SyncConn> {
    d.flush_sync();
    let mut out = Vec::new();
    while let Some(g) = d.poll_sync(now) {
        assert!(g.len() <= d.sync_master().unwrap().maxlen);
        out.extend(decode(&g).unwrap().records);
    }
    out
}

#[test]
fn master_syncs_at_threshold_period_and_state_changes() {
    let mut m = director(DR2, 1);
    m.set_sync_master(Some(SyncMasterConfig::default()));
    let c = "192.0.2.7:40000";
    m.handle_flow(t(1), &flow(c, 0x02)); // SYN: SYN_RECV, not synced
    m.handle_flow(t(1), &flow(c, 0x10)); // 2: ESTABLISHED, not forced
    assert!(drain(&mut m, t(1)).is_empty());
    m.handle_flow(t(1), &flow(c, 0x10)); // 3: threshold
    let r = drain(&mut m, t(1));
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].state, r[0].timeout, r[0].cport), (ES, 900, 40000));
    let mc = m.conn(Protocol::Tcp, sa(c), sa("10.0.0.1:80")).unwrap();
    assert_eq!(SocketAddr::new(r[0].daddr, r[0].dport), mc.dest);
    assert!(!r[0].flags.contains(ConnFlags::INACTIVE));
    for _ in 4..53 {
        m.handle_flow(t(2), &flow(c, 0x10));
    }
    assert!(drain(&mut m, t(2)).is_empty());
    m.handle_flow(t(2), &flow(c, 0x10)); // 53
    assert_eq!(drain(&mut m, t(2)).len(), 1);
    m.handle_flow(t(3), &flow(c, 0x11)); // FIN: FIN_WAIT, forced at once
    let r = drain(&mut m, t(3));
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].state, r[0].timeout), (FW, 120));
    assert!(r[0].flags.contains(ConnFlags::INACTIVE));
    let s = m.sync_stats();
    assert_eq!(s.records_sent, 3);
    assert_eq!(s.datagrams_sent, 3);
}

#[test]
fn partial_datagram_waits_two_seconds() {
    let mut m = director(DR2, 1);
    m.set_sync_master(Some(SyncMasterConfig::default()));
    for f in [0x02, 0x10, 0x10] {
        m.handle_flow(t(10), &flow("192.0.2.7:40000", f));
    }
    assert_eq!(m.poll_sync(t(11)), None);
    assert!(m.poll_timeout().unwrap() <= t(12));
    m.handle_timeout(t(12));
    let g = m.poll_sync(t(12)).unwrap();
    assert_eq!(decode(&g).unwrap().records.len(), 1);
    assert_eq!(m.poll_sync(t(12)), None);
}

#[test]
fn full_datagrams_respect_maxlen() {
    let mut m = director(DR2, 1);
    m.set_sync_master(Some(SyncMasterConfig {
        maxlen: 8 + 3 * 36,
        ..SyncMasterConfig::default()
    }));
    for i in 0..10u16 {
        let c = format!("192.0.2.7:{}", 40000 + i);
        for f in [0x02, 0x10, 0x10] {
            m.handle_flow(t(1), &flow(&c, f));
        }
    }
    assert_eq!(m.sync_queue_len(), 3, "three full datagrams queued at once");
    let recs = drain(&mut m, t(1));
    assert_eq!(recs.len(), 10);
}

#[test]
fn persistent_connection_then_its_template() {
    let rules = "-A -t 10.0.0.1:80 -s rr -p 300\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n";
    let mut m = director(rules, 1);
    m.set_sync_master(Some(SyncMasterConfig::default()));
    for f in [0x02, 0x10, 0x10] {
        m.handle_flow(t(1), &flow("192.0.2.7:40000", f));
    }
    let r = drain(&mut m, t(1));
    // Templates are not rate limited: one per packet; the connection at its third packet,
    // before its template (`ip_vs_sync_conn` walks up the control chain).
    let kinds: Vec<bool> = r.iter().map(SyncConn::is_template).collect();
    assert_eq!(kinds, vec![true, true, false, true]);
    assert_eq!(r[0].timeout, 300);
    assert_eq!((r[0].cport, r[0].vport), (0, 80));

    // The backup gets both and counts them.
    let mut b = director(rules, 2);
    let mut g = SyncMessage::new(SyncVersion::V1, 0, r).encode().unwrap();
    b.apply_sync(t(1), &g).unwrap();
    assert_eq!(b.table().len(), 2);
    let i = b
        .dest_info(&svc(), sa("10.1.0.1:80"))
        .map(|i| (i.activeconns, i.persistconns))
        .unwrap();
    assert_eq!(i, (1, 1));
    g.clear();
}

#[test]
fn deferred_template_is_sent_with_sixty_seconds() {
    let rules = "-A -t 10.0.0.1:80 -s rr -p 10\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n";
    let mut m = director(rules, 1);
    m.set_sync_master(Some(SyncMasterConfig::default()));
    for f in [0x02, 0x10, 0x10] {
        m.handle_flow(t(1), &flow("192.0.2.7:40000", f));
    }
    drain(&mut m, t(1));
    // The template's 10 s run out while the ESTABLISHED connection still uses it.
    let mut now = t(12);
    while m.handle_timeout(now) {}
    now += Duration::from_secs(1);
    m.handle_timeout(now);
    let r = drain(&mut m, now);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].is_template());
    assert_eq!(r[0].timeout, 60);
}

#[test]
fn stopping_the_master_discards_and_costs_nothing() {
    let mut m = director(DR2, 1);
    m.set_sync_master(Some(SyncMasterConfig::default()));
    for f in [0x02, 0x10, 0x10] {
        m.handle_flow(t(1), &flow("192.0.2.7:40000", f));
    }
    m.set_sync_master(None);
    assert_eq!(m.poll_sync(t(5)), None);
    for _ in 0..60 {
        m.handle_flow(t(2), &flow("192.0.2.7:40000", 0x10));
    }
    assert_eq!(m.poll_sync(t(5)), None);
}

#[test]
fn version0_master() {
    let mut m = director(DR2, 1);
    m.set_sync_master(Some(SyncMasterConfig {
        sysctls: SyncSysctls {
            version: SyncVersion::V0,
            ..SyncSysctls::default()
        },
        ..SyncMasterConfig::default()
    }));
    for f in [0x02, 0x10, 0x10] {
        m.handle_flow(t(1), &flow("192.0.2.7:40000", f));
    }
    m.flush_sync();
    let g = m.poll_sync(t(1)).unwrap();
    let msg = decode(&g).unwrap();
    assert_eq!(msg.version, SyncVersion::V0);
    assert_eq!(msg.records.len(), 1);
    let mut b = director(DR2, 2);
    b.apply_sync(t(1), &g).unwrap();
    let c = b
        .conn(Protocol::Tcp, sa("192.0.2.7:40000"), sa("10.0.0.1:80"))
        .unwrap();
    assert_eq!(c.state, "ESTABLISHED");
}

// ----- failover through the packet path --------------------------------------------------------

const HEADROOM: usize = 64;

fn tcp_packet(client: SocketAddr, flags: u8) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (client.ip(), ip("10.0.0.1")) else {
        unreachable!()
    };
    let b = etherparse::PacketBuilder::ipv4(s.octets(), d.octets(), 64);
    let mut tcp = b.tcp(client.port(), 80, 1000, 64240);
    if flags & 0x02 != 0 {
        tcp = tcp.syn();
    }
    if flags & 0x10 != 0 {
        tcp = tcp.ack(1);
    }
    if flags & 0x01 != 0 {
        tcp = tcp.fin();
    }
    let mut v = vec![0u8; HEADROOM];
    tcp.write(&mut v, b"data").unwrap();
    v
}

/// (next hop, new) of a forwarded packet.
fn send(d: &mut Director, now: Instant, client: SocketAddr, flags: u8) -> (IpAddr, bool) {
    let mut buf = tcp_packet(client, flags);
    let mut out = [0u8; 576];
    match d.handle_packet(now, &mut buf, HEADROOM, &mut out) {
        PacketVerdict::Forward { next_hop, new, .. } => (next_hop, new),
        v => panic!("{v:?}"),
    }
}

#[test]
fn established_connections_survive_failover() {
    let cfg = SyncMasterConfig::default();
    let mut master = director(DR2, 1);
    let mut backup = director(DR2, 2);
    let mut roles = [RoleState::new(true), RoleState::new(true)];
    for fx in roles[0].handle(RoleEvent::BecomeMaster) {
        master.apply_role_effect(fx, cfg);
    }
    assert!(roles[0].forwards() && !roles[1].forwards());

    let clients: Vec<SocketAddr> = (0..20)
        .map(|i| SocketAddr::new(ip("192.0.2.50"), 30000 + i))
        .collect();
    let mut chosen = Vec::new();
    for (i, &c) in clients.iter().enumerate() {
        let now = t(1) + Duration::from_millis(i as u64);
        let (hop, new) = send(&mut master, now, c, 0x02);
        assert!(new);
        send(&mut master, now, c, 0x10);
        send(&mut master, now, c, 0x10);
        chosen.push(hop);
    }
    assert!(chosen.contains(&ip("10.1.0.1")) && chosen.contains(&ip("10.1.0.2")));
    // The datagrams go over the wire to the backup.
    master.flush_sync();
    let mut n = 0;
    while let Some(g) = master.poll_sync(t(2)) {
        backup.apply_sync(t(2), &g).unwrap();
        n += 1;
    }
    assert!(n >= 1);
    assert_eq!(backup.table().len(), clients.len());
    assert_eq!(
        backup.sync_stats().created,
        clients.len() as u64,
        "{:?}",
        backup.sync_stats()
    );

    // The master fails; the backup takes over.
    for fx in roles[1].handle(RoleEvent::BecomeMaster) {
        backup.apply_role_effect(fx, cfg);
    }
    assert!(roles[1].forwards());
    assert!(backup.sync_master().is_some());
    for (c, hop) in clients.iter().zip(&chosen) {
        let (h, new) = send(&mut backup, t(30), *c, 0x10);
        assert_eq!(h, *hop, "client {c}");
        assert!(!new, "client {c}: found, not scheduled again");
        let info = backup.conn(Protocol::Tcp, *c, sa("10.0.0.1:80")).unwrap();
        assert_eq!(info.state, "ESTABLISHED");
        // Re-armed by the packet with the state's timeout.
        assert_eq!(info.expires.saturating_duration_since(t(30)).as_secs(), 900);
    }
    // Accounting on the new master: every connection active on its real server.
    let (a1, _, _) = counts(&backup, "10.1.0.1:80");
    let (a2, _, _) = counts(&backup, "10.1.0.2:80");
    assert_eq!(a1 + a2, clients.len() as u32);
    // The new master's records continue from the synced in_pkts (3): packet 53 syncs.
    for _ in 0..49 {
        send(&mut backup, t(31), clients[0], 0x10);
    }
    assert_eq!(drain(&mut backup, t(31)).len(), 1);
}

#[test]
fn table_sync_api_bounds() {
    use lvs_core::conn::{ConnTable, ConnTableConfig, NewConn};
    use lvs_core::sched::DestId;
    let mut t = ConnTable::new(ConnTableConfig::new(8, HashKey::from_u128(3)));
    let ins = t
        .insert(
            Instant::ZERO,
            NewConn {
                protocol: Protocol::Tcp,
                caddr: ip("192.0.2.1"),
                cport: 1000,
                vaddr: ip("10.0.0.1"),
                vport: 80,
                daddr: ip("10.1.0.1"),
                dport: 80,
                flags: ConnFlags::for_method(FwdMethod::DirectRoute).with(ConnFlags::SYNC),
                fwmark: 0,
                dest: None,
                control: None,
                timeout: Duration::from_secs(900),
            },
        )
        .unwrap();
    assert!(ins.bind.is_none());
    let id = ins.id;
    // Only INACTIVE / IN_SEQ / OUT_SEQ change; state must fit.
    let f = ConnFlags::TEMPLATE
        .with(ConnFlags::INACTIVE)
        .with(ConnFlags::IN_SEQ);
    assert!(t.sync_update(id, t0(), f, 5, 3, Some(Duration::from_secs(120))));
    let c = t.get(id).unwrap();
    assert!(!c.is_template());
    assert!(c.flags.contains(ConnFlags::INACTIVE) && c.flags.contains(ConnFlags::IN_SEQ));
    assert_eq!((c.state, c.in_pkts), (5, 3));
    assert_eq!(c.expires.saturating_duration_since(t0()).as_secs(), 120);
    assert!(!t.sync_update(id, t0(), f, 16, 3, None));
    assert_eq!(t.get(id).unwrap().state, 5);
    // Late binding: once, counted by the flags given, moved in the reply index for NAT.
    let nat = ConnFlags::for_method(FwdMethod::Masq)
        .with(ConnFlags::INACTIVE)
        .with(ConnFlags::SYNC);
    let (d, delta) = t.bind_dest(id, DestId(4), nat).unwrap();
    assert_eq!((d, delta.inactive), (DestId(4), 1));
    assert!(t.bind_dest(id, DestId(5), nat).is_none());
    let c = t.get(id).unwrap();
    assert_eq!(t.lookup_out(&c.out_key()), Some(id));
    assert!(c.flags.contains(ConnFlags::SYNC) && c.flags.contains(ConnFlags::HASHED));
    t.expire_now(id, t0());
    assert!(!t.sync_update(id, t0(), f, 1, 3, None));
    assert!(t.bind_dest(id, DestId(4), nat).is_none());
}

fn t0() -> Instant {
    Instant::from_secs(1)
}

/// `ip_vs_genl_set_cmd`: while a sync daemon runs, adding or editing a real server of the
/// other address family fails with EINVAL (the sync protocol cannot carry such connections),
/// after ipvsadm's own checks and the service lookup; deleting one still works.
#[test]
fn mixed_family_real_servers_are_refused_while_sync_master_runs() {
    let tun6 = |a: &str| DestConfig {
        forward: Forward::Tunnel,
        ..DestConfig::new(ip(a), 80)
    };
    let mut m = director(DR2, 1);
    // Without a daemon, a tunnelling IPv6 real server of an IPv4 service is fine.
    m.apply_command(t(1), &Command::AddDest(svc(), tun6("2001:db8::5")))
        .unwrap();
    m.set_sync_master(Some(SyncMasterConfig::default()));
    let before = m.rules().clone();
    let e = m
        .apply_command(t(2), &Command::AddDest(svc(), tun6("2001:db8::6")))
        .unwrap_err();
    assert_eq!(
        (e.clone(), e.errno()),
        (RuleError::SyncMixedFamily(ip("2001:db8::6")), 22)
    );
    let mut heavier = tun6("2001:db8::5");
    heavier.weight = 3;
    assert_eq!(
        m.apply_command(t(2), &Command::EditDest(svc(), heavier))
            .unwrap_err(),
        RuleError::SyncMixedFamily(ip("2001:db8::5"))
    );
    // A missing service (ESRCH) and what ipvsadm refuses itself come first.
    let other = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: ip("10.0.0.2"),
        port: 80,
    };
    assert_eq!(
        m.apply_command(t(2), &Command::AddDest(other, tun6("2001:db8::6")))
            .unwrap_err(),
        RuleError::NoSuchService(other)
    );
    let mut heavy = tun6("2001:db8::6");
    heavy.weight = 70000;
    assert_eq!(
        m.apply_command(t(2), &Command::AddDest(svc(), heavy))
            .unwrap_err(),
        RuleError::WeightRange(70000)
    );
    // The same through a whole rule set swap: nothing changes.
    let mut next = before.clone();
    next.apply_text("-a -t 10.0.0.1:80 -r 10.1.0.3 -g\n-a -t 10.0.0.1:80 -r 2001:db8::7 -i\n")
        .unwrap();
    assert_eq!(
        m.apply_rules(t(2), &next).unwrap_err(),
        RuleError::SyncMixedFamily(ip("2001:db8::7"))
    );
    assert_eq!(m.rules(), &before);
    // Same-family real servers and deletions are not affected.
    for (_, cmd) in lvs_core::rules::parse(
        "-a -t 10.0.0.1:80 -r 10.1.0.3 -g\n-d -t 10.0.0.1:80 -r 2001:db8::5\n",
    )
    .unwrap()
    {
        m.apply_command(t(2), &cmd).unwrap();
    }
    assert_eq!(m.rules().service(&svc()).unwrap().1.len(), 3);
    // Once the master stops, the kernel takes them again.
    m.set_sync_master(None);
    m.apply_command(t(3), &Command::AddDest(svc(), tun6("2001:db8::6")))
        .unwrap();
}
