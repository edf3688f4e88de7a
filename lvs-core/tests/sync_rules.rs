//! The master's "what to send and when" (spec §4.3) and the backup's per-record decisions
//! (spec §4.4), including a master connection driven through the real table and applied on
//! a backup.

use std::net::IpAddr;

use lvs_core::conn::state::{Direction, TcpState, TcpTable, Timeouts};
use lvs_core::conn::{ConnFlags, ConnTable, ConnTableConfig, FwdMethod, HashKey, NewConn};
use lvs_core::sched::DestId;
use lvs_core::sync::backup::{
    new_entry_flags, on_existing, received_flags, timeout, updated_flags, Existing, BACKUP_MASK,
    BACKUP_UPD_MASK,
};
use lvs_core::sync::master::{
    controller_pkts, decide, packet_pkts, sync_needed, SyncCandidate, SyncStamp, SyncSysctls,
};
use lvs_core::sync::{decode_for_backup, SyncBatcher, SyncConn, SyncVersion, DEFAULT_MAXLEN_V4};
use lvs_core::{Duration, Instant, Protocol};

fn cand(protocol: u8, flags: ConnFlags, state: u16, pkts: u32) -> SyncCandidate {
    SyncCandidate {
        protocol,
        flags,
        state,
        ipv6: false,
        in_persistence: false,
        timeout: Duration::from_secs(900),
        pkts,
    }
}

/// Runs `pkts` = 1..=n for a connection that stays in `state`, returning the packets at which
/// it was synced.
fn synced_at(s: &SyncSysctls, protocol: u8, flags: ConnFlags, state: u16, n: u32) -> Vec<u32> {
    let mut stamp = SyncStamp::new(Instant::ZERO);
    let mut out = Vec::new();
    for pkts in 1..=n {
        let now = Instant::from_millis(u64::from(pkts));
        let d = decide(s, &cand(protocol, flags, state, pkts), stamp, now);
        stamp = d.stamp;
        if d.send {
            out.push(pkts);
        }
    }
    out
}

#[test]
fn threshold_and_period() {
    let s = SyncSysctls::default();
    // TCP ESTABLISHED and UDP: packet 3, then every 50.
    assert_eq!(
        synced_at(&s, 6, ConnFlags::empty(), 1, 160),
        [3, 53, 103, 153]
    );
    assert_eq!(
        synced_at(&s, 17, ConnFlags::empty(), 0, 160),
        [3, 53, 103, 153]
    );
    // Templates are not rate limited while period > 0.
    assert_eq!(
        synced_at(&s, 17, ConnFlags::TEMPLATE, 0, 5),
        [1, 2, 3, 4, 5]
    );
    // Period 0: once, at the threshold, templates too.
    let once = SyncSysctls { period: 0, ..s };
    assert_eq!(synced_at(&once, 6, ConnFlags::empty(), 1, 200), [3]);
    assert_eq!(synced_at(&once, 17, ConnFlags::TEMPLATE, 0, 200), [3]);
    // Another threshold.
    let t = SyncSysctls {
        threshold: 0,
        period: 10,
        ..s
    };
    assert_eq!(synced_at(&t, 17, ConnFlags::empty(), 0, 35), [10, 20, 30]);
}

#[test]
fn tcp_states_that_sync_and_forced_changes() {
    let s = SyncSysctls::default();
    for st in TcpState::ALL {
        let syncs = !synced_at(&s, 6, ConnFlags::empty(), st as u16, 60).is_empty();
        let expected = matches!(
            st,
            TcpState::Established
                | TcpState::FinWait
                | TcpState::TimeWait
                | TcpState::Close
                | TcpState::CloseWait
        );
        assert_eq!(syncs, expected, "{st:?}");
    }
    // A change to FIN_WAIT is sent at once, whatever pkts is; the next packet in the same
    // state is not.
    let mut stamp = SyncStamp {
        old_state: 1,
        endtime: Instant::ZERO,
        retries: 0,
    };
    let now = Instant::from_secs(5);
    let (send, st) = sync_needed(&s, &cand(6, ConnFlags::empty(), 4, 17), stamp, now);
    assert!(send);
    assert_eq!(st.old_state, 4);
    stamp = st;
    assert!(!sync_needed(&s, &cand(6, ConnFlags::empty(), 4, 18), stamp, now).0);
    // A change to ESTABLISHED is not forced: it waits for the packet rule, and old_state
    // stays until then.
    let fresh = SyncStamp::new(Instant::ZERO);
    let (send, st) = sync_needed(&s, &cand(6, ConnFlags::empty(), 1, 2), fresh, now);
    assert!(!send);
    assert_eq!(st, fresh);
    // SCTP: CLOSED (13) forced, COOKIE_ECHOED (7) never.
    assert!(sync_needed(&s, &cand(132, ConnFlags::empty(), 13, 9), fresh, now).0);
    assert_eq!(
        synced_at(&s, 132, ConnFlags::empty(), 7, 60),
        Vec::<u32>::new()
    );
    assert_eq!(synced_at(&s, 132, ConnFlags::empty(), 8, 60), [3, 53]);
}

#[test]
fn persist_mode_and_one_packet() {
    let s = SyncSysctls {
        persist_mode: true,
        ..SyncSysctls::default()
    };
    let mut c = cand(6, ConnFlags::empty(), 1, 3);
    c.in_persistence = true;
    let d = decide(&s, &c, SyncStamp::new(Instant::ZERO), Instant::ZERO);
    assert!(!d.send);
    assert!(d.controller); // v1: the template is still considered
    c.in_persistence = false;
    assert!(decide(&s, &c, SyncStamp::new(Instant::ZERO), Instant::ZERO).send);
    // Templates are synced whatever persist_mode says.
    let mut t = cand(6, ConnFlags::TEMPLATE, 0, 3);
    t.in_persistence = true;
    assert!(decide(&s, &t, SyncStamp::new(Instant::ZERO), Instant::ZERO).send);

    // OPS: never sent; v1 goes on to the controller, v0 does not.
    let ops = cand(17, ConnFlags::ONE_PACKET, 0, 3);
    let d1 = decide(
        &SyncSysctls::default(),
        &ops,
        SyncStamp::new(Instant::ZERO),
        Instant::ZERO,
    );
    assert!(!d1.send && d1.controller);
    let v0 = SyncSysctls {
        version: SyncVersion::V0,
        ..SyncSysctls::default()
    };
    let d0 = decide(&v0, &ops, SyncStamp::new(Instant::ZERO), Instant::ZERO);
    assert!(!d0.send && !d0.controller);
    // v0: IPv6 ignored; controller only after a send.
    let mut six = cand(6, ConnFlags::empty(), 1, 3);
    six.ipv6 = true;
    assert!(!decide(&v0, &six, SyncStamp::new(Instant::ZERO), Instant::ZERO).send);
    let not_yet = decide(
        &v0,
        &cand(6, ConnFlags::empty(), 1, 4),
        SyncStamp::new(Instant::ZERO),
        Instant::ZERO,
    );
    assert!(!not_yet.send && !not_yet.controller);
    let sent = decide(
        &v0,
        &cand(6, ConnFlags::empty(), 1, 3),
        SyncStamp::new(Instant::ZERO),
        Instant::ZERO,
    );
    assert!(sent.send && sent.controller);
    let v1_not_yet = decide(
        &SyncSysctls::default(),
        &cand(6, ConnFlags::empty(), 1, 4),
        SyncStamp::new(Instant::ZERO),
        Instant::ZERO,
    );
    assert!(!v1_not_yet.send && v1_not_yet.controller);
}

#[test]
fn refresh_period_and_retries() {
    let s = SyncSysctls {
        refresh_period: Duration::from_secs(120),
        ..SyncSysctls::default()
    };
    let c = |pkts| cand(6, ConnFlags::empty(), 1, pkts);
    let t = Instant::from_secs;
    let stamp = SyncStamp {
        old_state: 1,
        endtime: t(900), // synced at t = 0 with timeout 900
        retries: 0,
    };
    // At t = 1 the end time moved by 1 s < min(120, max(450, 10)): suppressed.
    assert!(!sync_needed(&s, &c(53), stamp, t(1)).0);
    // At t = 130 it moved by 130 s: sent.
    let (send, st) = sync_needed(&s, &c(103), stamp, t(130));
    assert!(send);
    assert_eq!((st.endtime, st.retries), (t(1030), 0));

    // One retry allowed, not before refresh / 8 = 15 s after the last sync.
    let r = SyncSysctls { retries: 1, ..s };
    assert!(!sync_needed(&r, &c(53), stamp, t(14)).0);
    let (send, st) = sync_needed(&r, &c(53), stamp, t(20));
    assert!(send);
    assert_eq!((st.endtime, st.retries), (t(920), 1));
    // The retry budget is spent.
    assert!(!sync_needed(&r, &c(103), st, t(40)).0);

    // Short timeouts: min_diff = max(timeout / 2, 10 s) = 10 s.
    let mut short = c(53);
    short.timeout = Duration::from_secs(8);
    let st0 = SyncStamp {
        old_state: 1,
        endtime: t(108),
        retries: 0,
    };
    assert!(!sync_needed(&s, &short, st0, t(109)).0); // moved 9 s
    assert!(sync_needed(&s, &short, st0, t(110)).0); // moved 10 s

    // With a refresh period and period 0, every packet past the refresh test is sent.
    let p0 = SyncSysctls { period: 0, ..s };
    assert!(sync_needed(&p0, &c(77), stamp, t(200)).0);
}

#[test]
fn pkts_arithmetic() {
    assert_eq!(packet_pkts(ConnFlags::empty(), u32::MAX, 3), (0, 0));
    assert_eq!(controller_pkts(ConnFlags::TEMPLATE, 0, 3), (1, 1));
    // The kernel's signed counter: past 2^31 the remainder is negative and never matches.
    let s = SyncSysctls::default();
    let big = (1u32 << 31) + 3;
    assert!(
        !sync_needed(
            &s,
            &cand(17, ConnFlags::empty(), 0, big),
            SyncStamp::new(Instant::ZERO),
            Instant::ZERO
        )
        .0
    );
    let below = 2_000_000_003; // < 2^31, % 50 == 3
    assert!(
        sync_needed(
            &s,
            &cand(17, ConnFlags::empty(), 0, below),
            SyncStamp::new(Instant::ZERO),
            Instant::ZERO
        )
        .0
    );
}

#[test]
fn backup_flag_rules() {
    let a: IpAddr = [10, 0, 0, 1].into();
    let rec = |flags: u16| SyncConn {
        protocol: 6,
        flags: ConnFlags::from_bits(flags),
        state: 1,
        cport: 1,
        vport: 80,
        dport: 80,
        fwmark: 0,
        timeout: 0,
        caddr: a,
        vaddr: a,
        daddr: a,
        seq: None,
        pe_data: None,
        pe_name: None,
    };
    assert_eq!(
        BACKUP_MASK.bits(),
        0x0007 | 0x0080 | 0x0100 | 0x0600 | 0x0800 | 0x1000
    );
    assert_eq!(BACKUP_UPD_MASK.bits(), 0x0100 | 0x0600);
    assert_eq!(received_flags(SyncVersion::V1, &rec(0xffff)).bits(), 0x1fa7);
    assert_eq!(received_flags(SyncVersion::V0, &rec(0xffff)).bits(), 0xffbf);
    assert_eq!(received_flags(SyncVersion::V1, &rec(0)).bits(), 0x0020);

    // Existing with another destination port.
    assert_eq!(
        on_existing(a, 81, a, 80, ConnFlags::empty()),
        Existing::Replace
    );
    assert_eq!(
        on_existing(a, 81, a, 80, ConnFlags::INACTIVE),
        Existing::Ignore
    );

    // Update: only INACTIVE and the SEQ bits change; templates move no counters.
    let u = updated_flags(
        ConnFlags::from_bits(0x0123),
        ConnFlags::from_bits(0x0620 | 0x0003),
    );
    assert_eq!(u.flags.bits(), 0x0623);
    assert_eq!(u.inactive_changed, Some(false));
    let u = updated_flags(ConnFlags::from_bits(0x1000), ConnFlags::from_bits(0x1120));
    assert_eq!(u.flags.bits(), 0x1100);
    assert_eq!(u.inactive_changed, None);
    assert_eq!(
        updated_flags(ConnFlags::INACTIVE, ConnFlags::INACTIVE).inactive_changed,
        None
    );

    // New entry bound to a dest.
    let dest_udp_ops = ConnFlags::for_method(FwdMethod::Masq)
        .with(ConnFlags::INACTIVE)
        .with(ConnFlags::ONE_PACKET);
    let got = new_entry_flags(ConnFlags::from_bits(0x01a3), 17, Some(dest_udp_ops));
    assert_eq!(got.bits(), 0x2120); // MASQ from dest, INACTIVE from record, OPS kept for UDP
    let got = new_entry_flags(ConnFlags::from_bits(0x00a3), 6, Some(dest_udp_ops));
    assert_eq!(got.bits(), 0x0020); // TCP: OPS dropped, active as the record says
    let tpl = new_entry_flags(ConnFlags::from_bits(0x10a3), 6, Some(dest_udp_ops));
    assert_eq!(tpl.bits(), 0x1120); // template takes the dest's INACTIVE
    assert_eq!(
        new_entry_flags(ConnFlags::from_bits(0x01a3), 6, None).bits(),
        0x01a3
    );
}

#[test]
fn backup_timeouts() {
    let mut t = Timeouts::default();
    t.set_udp(Duration::from_secs(77));
    assert_eq!(timeout(0, false, 6, 5, &t), Duration::from_secs(120));
    assert_eq!(timeout(0, false, 17, 0, &t), Duration::from_secs(77));
    assert_eq!(timeout(0, false, 132, 8, &t), t.sctp());
    assert_eq!(timeout(0, false, 50, 0, &t), Duration::from_secs(180));
    assert_eq!(timeout(0, true, 17, 0, &t), Duration::from_secs(180));
    assert_eq!(
        timeout(u32::MAX, true, 17, 0, &t),
        Duration::from_secs(u64::from(u32::MAX))
    );
}

/// A DR TCP connection on a master, driven through the real table: SYN, ACK, data, FIN;
/// what the master sends and what the backup makes of it.
#[test]
fn master_table_to_backup() {
    let mut tab = ConnTable::new(ConnTableConfig::new(
        64,
        HashKey::from_u128(0x1234_5678_9abc_def0_0fed_cba9_8765_4321),
    ));
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let t0 = Instant::from_secs(100);
    let id = tab
        .insert(
            t0,
            NewConn {
                protocol: Protocol::Tcp,
                caddr: ip("192.0.2.7"),
                cport: 41000,
                vaddr: ip("198.51.100.1"),
                vport: 80,
                daddr: ip("10.0.0.5"),
                dport: 80,
                flags: ConnFlags::for_method(FwdMethod::DirectRoute).with(ConnFlags::INACTIVE),
                fwmark: 0,
                dest: Some(DestId(0)),
                control: None,
                timeout: Duration::from_secs(3),
            },
        )
        .unwrap()
        .id;
    let sysctls = SyncSysctls::default();
    let mut stamp = SyncStamp::new(t0);
    let mut batcher = SyncBatcher::new(SyncVersion::V1, 3, DEFAULT_MAXLEN_V4);
    let mut sent = Vec::new();
    // SYN, ACK, data, data, FIN.
    let segs = [0x02u8, 0x10, 0x18, 0x18, 0x11];
    for (i, f) in segs.into_iter().enumerate() {
        let now = t0 + Duration::from_millis(10 * i as u64);
        tab.tcp_packet(id, now, Direction::Input, f, TcpTable::Normal)
            .unwrap();
        let in_pkts = tab.inc_in_pkts(id);
        let (pkts, _) = packet_pkts(ConnFlags::empty(), in_pkts - 1, sysctls.threshold);
        assert_eq!(pkts, in_pkts);
        let c = tab.get(id).unwrap();
        let to = tab.timeouts().tcp(c.tcp_state().unwrap());
        let d = decide(
            &sysctls,
            &SyncCandidate {
                protocol: 6,
                flags: c.flags,
                state: u16::from(c.state),
                ipv6: false,
                in_persistence: false,
                timeout: to,
                pkts,
            },
            stamp,
            now,
        );
        stamp = d.stamp;
        if d.send {
            let rec = SyncConn::from_conn(&c, to.as_secs() as u32);
            batcher.push(now, &rec, |b| sent.push(b.to_vec())).unwrap();
        }
    }
    batcher.flush(|b| sent.push(b.to_vec()));
    assert_eq!(sent.len(), 1);
    let m = decode_for_backup(&sent[0], 3).unwrap().unwrap();
    // Packet 3 (ESTABLISHED: the change at packet 2 is not forced, the threshold decides)
    // and the FIN (a change to FIN_WAIT, forced).
    let states: Vec<u16> = m.records.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [TcpState::Established as u16, TcpState::FinWait as u16]
    );
    let first = &m.records[0];
    assert!(!first.flags.contains(ConnFlags::INACTIVE));
    assert!(!first.flags.contains(ConnFlags::HASHED));
    assert_eq!(first.timeout, 900);
    assert_eq!(first.flags.fwd_method(), FwdMethod::DirectRoute);
    let last = m.records.last().unwrap();
    assert_eq!(
        last.state,
        tab.get(id).unwrap().state as u16,
        "the last change was synced"
    );
    // On the backup: flags and timeout.
    let f = received_flags(m.version, first);
    assert!(f.contains(ConnFlags::SYNC));
    assert_eq!(
        timeout(
            first.timeout,
            first.is_template(),
            first.protocol,
            first.state,
            tab.timeouts()
        ),
        Duration::from_secs(900)
    );
}
