//! Behaviour of the connection table: keys, templates, accounting, expiry, capacity.

use std::net::IpAddr;

use lvs_core::conn::accounting::{
    apply_bind, apply_state_change, apply_unbind, DestDelta, Thresholds,
};
use lvs_core::conn::state::TemplateState;
use lvs_core::conn::{
    ActiveStates, ConnFlags, ConnId, ConnTable, ConnTableConfig, Direction, ExpireReason, Expired,
    FwdMethod, HashKey, InKey, InsertError, NewConn, TcpState, TcpTable,
};
use lvs_core::sched::{DestId, DestInfo};
use lvs_core::{Duration, Instant, Protocol};

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x11;
const RST: u8 = 0x04;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn table(cap: u32) -> ConnTable {
    ConnTable::new(ConnTableConfig::new(
        cap,
        HashKey::from_u128(0x0123_4567_89ab_cdef_1122_3344_5566_7788),
    ))
}

fn conn(
    proto: Protocol,
    c: &str,
    cport: u16,
    v: &str,
    vport: u16,
    method: FwdMethod,
    dest: u32,
) -> NewConn {
    NewConn {
        protocol: proto,
        caddr: ip(c),
        cport,
        vaddr: ip(v),
        vport,
        daddr: if ip(c).is_ipv4() {
            ip(&format!("10.1.0.{dest}"))
        } else {
            ip(&format!("fd00::{dest}"))
        },
        dport: 8080,
        flags: ConnFlags::for_method(method).with(ConnFlags::INACTIVE),
        fwmark: 0,
        dest: Some(DestId(dest)),
        control: None,
        timeout: Duration::from_secs(3),
    }
}

fn t(secs_f: f64) -> Instant {
    Instant::from_nanos((secs_f * 1e9) as u64)
}

fn drain(tab: &mut ConnTable, now: Instant) -> Vec<Expired> {
    let mut v = Vec::new();
    while tab.handle_timeout(now, 1000, |e| v.push(e)) {}
    v
}

#[test]
fn nat_and_dr_reply_keys() {
    let mut tab = table(16);
    let nat = tab
        .insert(
            t(1.0),
            conn(
                Protocol::Tcp,
                "192.0.2.1",
                1234,
                "198.51.100.1",
                80,
                FwdMethod::Masq,
                1,
            ),
        )
        .unwrap();
    let dr = tab
        .insert(
            t(1.0),
            conn(
                Protocol::Tcp,
                "192.0.2.2",
                1234,
                "198.51.100.1",
                80,
                FwdMethod::DirectRoute,
                2,
            ),
        )
        .unwrap();
    let n = tab.get(nat.id).unwrap();
    let d = tab.get(dr.id).unwrap();
    // NAT reply: real server -> client; DR reply: VIP -> client.
    assert_eq!(n.out_key().saddr, ip("10.1.0.1"));
    assert_eq!(n.out_key().sport, 8080);
    assert_eq!(d.out_key().saddr, ip("198.51.100.1"));
    assert_eq!(d.out_key().sport, 80);
    assert_eq!(tab.lookup_out(&n.out_key()), Some(nat.id));
    assert_eq!(tab.lookup_out(&d.out_key()), Some(dr.id));
    // A reply from the real server of the DR conn does not match it.
    let mut wrong = d.out_key();
    wrong.saddr = ip("10.1.0.2");
    wrong.sport = 8080;
    assert_eq!(tab.lookup_out(&wrong), None);
    assert_eq!(tab.lookup_in(&n.in_key()), Some(nat.id));
    assert_eq!(
        tab.lookup_in(&InKey {
            protocol: Protocol::Udp,
            ..n.in_key()
        }),
        None
    );
    assert_eq!(
        tab.lookup_template(&n.in_key()),
        None,
        "a conn is not a template"
    );
    assert!(n.flags.contains(ConnFlags::HASHED));
    assert_eq!(
        nat.bind,
        Some((
            DestId(1),
            DestDelta {
                active: 0,
                inactive: 1,
                persist: 0
            }
        ))
    );
    // Same key again.
    let again = tab.insert(
        t(1.0),
        conn(
            Protocol::Tcp,
            "192.0.2.1",
            1234,
            "198.51.100.1",
            80,
            FwdMethod::Masq,
            3,
        ),
    );
    assert_eq!(again, Err(InsertError::Exists(nat.id)));
    assert_eq!(tab.stats().exists, 1);
}

#[test]
fn ipv6_mixed_and_fwmark_entries() {
    let mut tab = table(16);
    let mut c6 = conn(
        Protocol::Udp,
        "2001:db8::7",
        5353,
        "2001:db8::1",
        53,
        FwdMethod::Masq,
        4,
    );
    c6.fwmark = 77;
    let a = tab.insert(t(0.0), c6).unwrap();
    // IPv4 client, IPv6 tunnel endpoint.
    let mut mixed = conn(
        Protocol::Tcp,
        "192.0.2.9",
        999,
        "198.51.100.9",
        443,
        FwdMethod::Tunnel,
        5,
    );
    mixed.daddr = ip("fd00::5");
    let b = tab.insert(t(0.0), mixed).unwrap();
    let ga = tab.get(a.id).unwrap();
    assert_eq!(
        (ga.caddr, ga.vaddr, ga.daddr, ga.fwmark),
        (ip("2001:db8::7"), ip("2001:db8::1"), ip("fd00::4"), 77)
    );
    assert_eq!(tab.lookup_in(&ga.in_key()), Some(a.id));
    assert_eq!(tab.lookup_out(&ga.out_key()), Some(a.id));
    let gb = tab.get(b.id).unwrap();
    assert_eq!(gb.daddr, ip("fd00::5"));
    assert_eq!(tab.lookup_in(&gb.in_key()), Some(b.id));
    assert_eq!(tab.lookup_out(&gb.out_key()), Some(b.id));
    // Slots and side storage are reused after expiry.
    assert_eq!(drain(&mut tab, t(400.0)).len(), 2);
    let c = tab
        .insert(
            t(400.0),
            conn(
                Protocol::Udp,
                "2001:db8::8",
                1,
                "2001:db8::1",
                53,
                FwdMethod::Masq,
                4,
            ),
        )
        .unwrap();
    let gc = tab.get(c.id).unwrap();
    assert_eq!(gc.fwmark, 0);
    assert_eq!(gc.caddr, ip("2001:db8::8"));
}

#[test]
fn tcp_accounting_current_and_legacy() {
    for active in [ActiveStates::Current, ActiveStates::LegacyEstablishedOnly] {
        let mut cfg = ConnTableConfig::new(8, HashKey::from_u128(9));
        cfg.active = active;
        let mut tab = ConnTable::new(cfg);
        let mut d = DestInfo::new(DestId(1), ip("10.1.0.1"), 8080, 1);
        let th = Thresholds::default();
        let ins = tab
            .insert(
                t(0.0),
                conn(
                    Protocol::Tcp,
                    "192.0.2.1",
                    1,
                    "198.51.100.1",
                    80,
                    FwdMethod::Masq,
                    1,
                ),
            )
            .unwrap();
        apply_bind(&mut d, ins.bind.unwrap().1, &th);
        assert_eq!((d.activeconns, d.inactconns), (0, 1));
        let mut step = |tab: &mut ConnTable, dir, f, want: TcpState| {
            let u = tab
                .tcp_packet(ins.id, t(1.0), dir, f, TcpTable::Normal)
                .unwrap();
            assert_eq!(u.new, want);
            if let Some((id, delta)) = u.delta {
                assert_eq!(id, DestId(1));
                apply_state_change(&mut d, delta);
            }
            (d.activeconns, d.inactconns)
        };
        let after_syn = step(&mut tab, Direction::Input, SYN, TcpState::SynRecv);
        assert_eq!(
            after_syn,
            if active == ActiveStates::Current {
                (1, 0)
            } else {
                (0, 1)
            }
        );
        assert_eq!(
            step(&mut tab, Direction::Input, ACK, TcpState::Established),
            (1, 0)
        );
        assert_eq!(
            step(&mut tab, Direction::Input, FIN, TcpState::CloseWait),
            (0, 1)
        );
        let ex = tab.expire_now(ins.id, t(2.0)).unwrap();
        assert_eq!(ex.reason, ExpireReason::ExpiredNow);
        apply_unbind(&mut d, ex.unbind.unwrap().1, &th);
        assert_eq!((d.activeconns, d.inactconns), (0, 0));
        assert!(!tab.contains(ins.id));
    }
}

#[test]
fn dr_nooutput_and_flags() {
    let mut tab = table(8);
    let ins = tab
        .insert(
            t(0.0),
            conn(
                Protocol::Tcp,
                "192.0.2.1",
                1,
                "198.51.100.1",
                80,
                FwdMethod::DirectRoute,
                1,
            ),
        )
        .unwrap();
    tab.tcp_packet(ins.id, t(0.0), Direction::Input, SYN, TcpTable::Normal);
    tab.tcp_packet(ins.id, t(0.0), Direction::Input, ACK, TcpTable::Normal);
    let u = tab
        .tcp_packet(ins.id, t(0.0), Direction::Input, FIN, TcpTable::Normal)
        .unwrap();
    assert_eq!(u.new, TcpState::FinWait, "INPUT_ONLY table");
    assert!(tab.flags(ins.id).unwrap().contains(ConnFlags::NOOUTPUT));
    tab.tcp_packet(ins.id, t(0.0), Direction::Output, ACK, TcpTable::Normal);
    assert!(!tab.flags(ins.id).unwrap().contains(ConnFlags::NOOUTPUT));
    assert_eq!(tab.get(ins.id).unwrap().state_name(), "FIN_WAIT");
    // Not a TCP conn: no TCP update.
    let u = tab
        .insert(
            t(0.0),
            conn(
                Protocol::Udp,
                "192.0.2.1",
                1,
                "198.51.100.1",
                53,
                FwdMethod::Masq,
                1,
            ),
        )
        .unwrap();
    assert_eq!(
        tab.tcp_packet(u.id, t(0.0), Direction::Input, SYN, TcpTable::Normal),
        None
    );
}

#[test]
fn expiry_follows_state_timeouts_within_one_tick() {
    let mut tab = table(8);
    let tick = 0.125;
    let ins = tab
        .insert(
            t(10.0),
            conn(
                Protocol::Tcp,
                "192.0.2.1",
                1,
                "198.51.100.1",
                80,
                FwdMethod::Masq,
                1,
            ),
        )
        .unwrap();
    // Initial 3 s.
    assert!(drain(&mut tab, t(12.99)).is_empty());
    tab.tcp_packet(ins.id, t(12.99), Direction::Input, SYN, TcpTable::Normal); // SYN_RECV 60 s
    assert!(drain(&mut tab, t(72.98)).is_empty());
    tab.tcp_packet(ins.id, t(72.98), Direction::Input, ACK, TcpTable::Normal); // ESTABLISHED 900 s
    assert!(
        drain(&mut tab, t(972.97)).is_empty(),
        "ESTABLISHED lasts 900 s past the horizon"
    );
    tab.tcp_packet(ins.id, t(972.97), Direction::Input, RST, TcpTable::Normal); // CLOSE 10 s
    let exp = tab.expires(ins.id).unwrap();
    assert!(exp > t(982.97) && exp <= t(982.97 + tick), "{exp}");
    assert!(drain(&mut tab, t(982.96)).is_empty());
    let gone = drain(&mut tab, t(982.97 + tick));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].conn.tcp_state(), Some(TcpState::Close));
    assert_eq!(tab.poll_timeout(), None);
    assert!(tab.is_empty());
}

#[test]
fn poll_timeout_is_never_late() {
    let mut tab = table(64);
    let mut now = t(5.0);
    for i in 0..40u16 {
        let mut c = conn(
            Protocol::Udp,
            "192.0.2.1",
            1000 + i,
            "198.51.100.1",
            53,
            FwdMethod::Masq,
            1,
        );
        c.timeout = Duration::from_millis(700 * (i as u64 % 7 + 1));
        tab.insert(now, c).unwrap();
    }
    let mut seen = 0;
    while let Some(at) = tab.poll_timeout() {
        assert!(at >= now || seen == 0 || at <= now, "monotone enough");
        now = now.max(at);
        let mut got = Vec::new();
        while tab.handle_timeout(now, 3, |e| got.push(e)) {}
        for e in &got {
            // Expired at or after its deadline, and not more than one tick after.
            assert!(e.conn.expires <= now);
        }
        seen += got.len();
        if got.is_empty() {
            now += Duration::from_millis(1);
        }
    }
    assert_eq!(seen, 40);
}

#[test]
fn templates_control_and_deferral() {
    let mut tab = table(16);
    let mut d = DestInfo::new(DestId(1), ip("10.1.0.1"), 8080, 1);
    let th = Thresholds::default();
    let key = InKey {
        protocol: Protocol::Tcp,
        caddr: ip("192.0.2.0"),
        cport: 0,
        vaddr: ip("198.51.100.1"),
        vport: 80,
    };
    let mut tpl = conn(
        Protocol::Tcp,
        "192.0.2.0",
        0,
        "198.51.100.1",
        80,
        FwdMethod::Masq,
        1,
    );
    tpl.flags = tpl.flags.with(ConnFlags::TEMPLATE);
    tpl.timeout = Duration::from_secs(360);
    let ti = tab.insert(t(0.0), tpl).unwrap();
    apply_bind(&mut d, ti.bind.unwrap().1, &th);
    assert_eq!(d.persistconns, 1);
    assert_eq!(tab.lookup_template(&key), Some(ti.id));
    assert_eq!(
        tab.lookup_in(&key),
        None,
        "a template never matches a conn lookup"
    );
    let mut c = conn(
        Protocol::Tcp,
        "192.0.2.0",
        4000,
        "198.51.100.1",
        80,
        FwdMethod::Masq,
        1,
    );
    c.control = Some(ti.id);
    let ci = tab.insert(t(0.0), c).unwrap();
    tab.touch(ti.id, t(0.0));
    let g = tab.get(ti.id).unwrap();
    assert_eq!((g.n_control, g.state_name()), (1, "NONE"));
    assert_eq!(tab.get(ci.id).unwrap().control, Some(ti.id));
    tab.tcp_packet(ci.id, t(1.0), Direction::Input, SYN, TcpTable::Normal);
    let u = tab
        .tcp_packet(ci.id, t(1.0), Direction::Input, ACK, TcpTable::Normal)
        .unwrap();
    assert_eq!(u.assured, Some(ti.id));
    assert_eq!(tab.state(ti.id), Some(TemplateState::Assured as u8));
    // Keep the conn alive past the template's 360 s: the template is deferred by 60 s.
    let mut now = 1.0;
    while now < 500.0 {
        now += 100.0;
        tab.tcp_packet(ci.id, t(now), Direction::Input, ACK, TcpTable::Normal);
        assert!(drain(&mut tab, t(now)).is_empty());
    }
    assert!(tab.stats().deferred >= 1);
    assert_eq!(
        tab.get(ti.id).unwrap().template_timeout,
        Some(Duration::from_secs(60))
    );
    // expire_now on a controlling template defers too.
    assert_eq!(tab.expire_now(ti.id, t(now)), None);
    // Close the conn; it expires after 10 s, then the template within 60 s after that.
    tab.tcp_packet(ci.id, t(now), Direction::Input, RST, TcpTable::Normal);
    let gone = drain(&mut tab, t(now + 10.2));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].conn.id, ci.id);
    assert_eq!(tab.get(ti.id).unwrap().n_control, 0);
    let gone = drain(&mut tab, t(now + 60.2));
    assert_eq!(gone.len(), 1);
    assert!(gone[0].conn.is_template());
    apply_unbind(&mut d, gone[0].unbind.unwrap().1, &th);
    assert_eq!(d.persistconns, 0);
    assert!(tab.is_empty());
}

#[test]
fn udp_reply_assures_template_and_unhash_neutralises() {
    let mut tab = table(16);
    let mut tpl = conn(
        Protocol::Udp,
        "192.0.2.0",
        0,
        "198.51.100.1",
        53,
        FwdMethod::Masq,
        1,
    );
    tpl.flags = tpl.flags.with(ConnFlags::TEMPLATE);
    tpl.timeout = Duration::from_secs(30);
    let ti = tab.insert(t(0.0), tpl).unwrap();
    let mut c = conn(
        Protocol::Udp,
        "192.0.2.0",
        5000,
        "198.51.100.1",
        53,
        FwdMethod::Masq,
        1,
    );
    c.control = Some(ti.id);
    let ci = tab.insert(t(0.0), c).unwrap();
    assert_eq!(tab.udp_packet(ci.id, t(0.1), Direction::Input), None);
    assert_eq!(
        tab.udp_packet(ci.id, t(0.2), Direction::Output),
        Some(ti.id)
    );
    assert_eq!(
        tab.udp_packet(ci.id, t(0.3), Direction::Output),
        None,
        "already assured"
    );
    let key = tab.get(ti.id).unwrap().in_key();
    let armed = tab.expires(ti.id);
    assert!(tab.unhash(ti.id));
    assert_eq!(tab.lookup_template(&key), None);
    assert!(!tab.get(ti.id).unwrap().flags.contains(ConnFlags::HASHED));
    // The kernel's neutral ports (spec §2.6), kept until it expires; the timer is unchanged.
    let n = tab.get(ti.id).unwrap();
    assert_eq!((n.cport, n.vport, n.dport), (0, 0xffff, 0xffff));
    assert_eq!(Some(n.expires), armed);
    assert!(!tab.unhash(ti.id), "already neutralised");
    // A new template with the same key can be created while the old one waits to expire.
    let mut tpl2 = conn(
        Protocol::Udp,
        "192.0.2.0",
        0,
        "198.51.100.1",
        53,
        FwdMethod::Masq,
        2,
    );
    tpl2.flags = tpl2.flags.with(ConnFlags::TEMPLATE);
    let t2 = tab.insert(t(0.3), tpl2).unwrap();
    assert_eq!(tab.lookup_template(&key), Some(t2.id));
    // Everything eventually expires: conn (300 s), then the old template.
    let gone = drain(&mut tab, t(400.0));
    assert_eq!(gone.len(), 3);
    assert!(tab.is_empty());
}

#[test]
fn capacity_evicts_embryonic_else_refuses() {
    let mut tab = table(4);
    let mut ids = Vec::new();
    for i in 0..4u16 {
        ids.push(
            tab.insert(
                t(0.0),
                conn(
                    Protocol::Tcp,
                    "192.0.2.1",
                    100 + i,
                    "198.51.100.1",
                    80,
                    FwdMethod::Masq,
                    1,
                ),
            )
            .unwrap()
            .id,
        );
    }
    // Establish all but #2; #2 stays in SYN_RECV.
    for (i, id) in ids.iter().enumerate() {
        tab.tcp_packet(*id, t(0.5), Direction::Input, SYN, TcpTable::Normal);
        if i != 2 {
            tab.tcp_packet(*id, t(0.5), Direction::Input, ACK, TcpTable::Normal);
        }
    }
    let ins = tab
        .insert(
            t(1.0),
            conn(
                Protocol::Tcp,
                "192.0.2.1",
                200,
                "198.51.100.1",
                80,
                FwdMethod::Masq,
                1,
            ),
        )
        .unwrap();
    let ev = ins.evicted.expect("an embryonic conn is evicted");
    assert_eq!(ev.reason, ExpireReason::Evicted);
    assert_eq!(ev.conn.cport, 102);
    assert_eq!(
        ev.unbind,
        Some((
            DestId(1),
            DestDelta {
                active: -1,
                inactive: 0,
                persist: 0
            }
        ))
    );
    assert_eq!(tab.len(), 4);
    // The newcomer is in state NONE: embryonic too, so it can be evicted next.
    tab.tcp_packet(ins.id, t(1.0), Direction::Input, SYN, TcpTable::Normal);
    tab.tcp_packet(ins.id, t(1.0), Direction::Input, ACK, TcpTable::Normal);
    let full = tab.insert(
        t(1.0),
        conn(
            Protocol::Tcp,
            "192.0.2.1",
            201,
            "198.51.100.1",
            80,
            FwdMethod::Masq,
            1,
        ),
    );
    assert_eq!(full, Err(InsertError::Full));
    let s = tab.stats();
    assert_eq!((s.inserted, s.evicted, s.refused_full), (5, 1, 1));
    assert_eq!(tab.len(), 4);
}

#[test]
fn no_cport_and_port_zero() {
    let mut tab = table(8);
    let mut nc = conn(
        Protocol::Tcp,
        "192.0.2.1",
        0,
        "198.51.100.1",
        20,
        FwdMethod::Masq,
        1,
    );
    nc.flags = nc.flags.with(ConnFlags::NO_CPORT);
    let a = tab.insert(t(0.0), nc).unwrap();
    assert!(tab.has_no_cport());
    let probe = InKey {
        protocol: Protocol::Tcp,
        caddr: ip("192.0.2.1"),
        cport: 3333,
        vaddr: ip("198.51.100.1"),
        vport: 20,
    };
    assert_eq!(tab.lookup_in(&probe), Some(a.id), "cport-0 fallback");
    tab.fill_cport(a.id, 3333).unwrap();
    assert!(!tab.has_no_cport());
    assert_eq!(tab.lookup_in(&probe), Some(a.id));
    assert_eq!(
        tab.lookup_in(&InKey {
            cport: 3334,
            ..probe
        }),
        None
    );
    let g = tab.get(a.id).unwrap();
    assert_eq!(tab.lookup_out(&g.out_key()), Some(a.id));
    // A plain conn with client port 0 is never found by the in-lookup (kernel rule), only by
    // the reply lookup; a second one with the same key is allowed.
    let z1 = tab
        .insert(
            t(0.0),
            conn(
                Protocol::Udp,
                "192.0.2.2",
                0,
                "198.51.100.1",
                53,
                FwdMethod::Masq,
                1,
            ),
        )
        .unwrap();
    let z2 = tab
        .insert(
            t(0.0),
            conn(
                Protocol::Udp,
                "192.0.2.2",
                0,
                "198.51.100.1",
                53,
                FwdMethod::Masq,
                1,
            ),
        )
        .unwrap();
    let k = tab.get(z1.id).unwrap().in_key();
    assert_eq!(tab.lookup_in(&k), None);
    let found = tab.lookup_out(&tab.get(z1.id).unwrap().out_key()).unwrap();
    assert!(found == z1.id || found == z2.id);
    let mut bad = conn(
        Protocol::Tcp,
        "192.0.2.1",
        5,
        "198.51.100.1",
        20,
        FwdMethod::Masq,
        1,
    );
    bad.flags = bad.flags.with(ConnFlags::NO_CPORT);
    assert_eq!(
        tab.insert(t(0.0), bad),
        Err(InsertError::NoCportWithPort(5))
    );
    let mut ops = conn(
        Protocol::Udp,
        "192.0.2.1",
        5,
        "198.51.100.1",
        20,
        FwdMethod::Masq,
        1,
    );
    ops.flags = ops.flags.with(ConnFlags::ONE_PACKET);
    assert_eq!(tab.insert(t(0.0), ops), Err(InsertError::OnePacket));
    let mut ctl = conn(
        Protocol::Udp,
        "192.0.2.1",
        6,
        "198.51.100.1",
        20,
        FwdMethod::Masq,
        1,
    );
    ctl.control = Some(z1.id);
    assert_eq!(
        tab.insert(t(0.0), ctl),
        Err(InsertError::BadControl(z1.id.index()))
    );
}

#[test]
fn handle_timeout_is_bounded() {
    let n = 5000u32;
    let mut tab = table(n);
    for i in 0..n {
        let c = conn(
            Protocol::Udp,
            &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
            7,
            "198.51.100.1",
            53,
            FwdMethod::DirectRoute,
            1,
        );
        tab.insert(t(0.0), c).unwrap();
    }
    let mut calls = 0;
    let mut total = 0;
    loop {
        let mut got = 0;
        let more = tab.handle_timeout(t(4.0), 64, |_| got += 1);
        assert!(got <= 64);
        total += got;
        calls += 1;
        if !more {
            break;
        }
    }
    assert_eq!(total, n as usize);
    assert!(calls >= (n as usize).div_ceil(64));
    assert!(tab.is_empty());
    let _ = ConnId::index;
}

#[test]
fn churn_at_full_capacity_never_grows_memory() {
    let cap = 1000u32;
    let mut tab = table(cap);
    let mut ids = std::collections::VecDeque::new();
    let addr = |i: u32| format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    for i in 0..cap {
        ids.push_back(
            tab.insert(
                t(0.0),
                conn(
                    Protocol::Udp,
                    &addr(i),
                    9,
                    "198.51.100.1",
                    53,
                    FwdMethod::Masq,
                    1,
                ),
            )
            .unwrap()
            .id,
        );
    }
    let bytes = tab.allocated_bytes();
    for i in cap..cap * 50 {
        let old = ids.pop_front().unwrap();
        assert!(tab.expire_now(old, t(0.0)).is_some());
        ids.push_back(
            tab.insert(
                t(0.0),
                conn(
                    Protocol::Udp,
                    &addr(i),
                    9,
                    "198.51.100.1",
                    53,
                    FwdMethod::Masq,
                    1,
                ),
            )
            .unwrap()
            .id,
        );
    }
    assert_eq!(tab.len(), cap as usize);
    assert_eq!(
        tab.allocated_bytes(),
        bytes,
        "no allocation growth under churn"
    );
    for id in &ids {
        let c = tab.get(*id).unwrap();
        assert_eq!(tab.lookup_in(&c.in_key()), Some(*id));
    }
}

#[test]
fn far_clock_origin_does_not_hop() {
    // A driver clock that starts days after its origin: the first insert starts the wheel
    // there, so the first handle_timeout does not walk days of empty ticks entry by entry.
    let mut tab = table(4);
    let day = 86_400.0 * 3.0;
    let a = tab
        .insert(
            t(day),
            conn(
                Protocol::Tcp,
                "192.0.2.1",
                1,
                "198.51.100.1",
                80,
                FwdMethod::Masq,
                1,
            ),
        )
        .unwrap();
    let mut n = 0;
    assert!(!tab.handle_timeout(t(day + 2.0), 1, |_| n += 1));
    assert_eq!(n, 0);
    assert!(tab.contains(a.id));
    assert!(tab.poll_timeout().unwrap() <= t(day + 3.125));
    assert!(!tab.handle_timeout(t(day + 3.2), 1, |_| n += 1));
    assert_eq!(n, 1);
}

#[test]
fn huge_timeouts_are_clamped_not_wrapped() {
    let mut tab = table(4);
    let mut c = conn(
        Protocol::Udp,
        "192.0.2.1",
        1,
        "198.51.100.1",
        53,
        FwdMethod::Masq,
        1,
    );
    c.timeout = Duration::MAX;
    let a = tab.insert(t(5.0), c).unwrap();
    let exp = tab.expires(a.id).unwrap();
    assert!(exp > t(5.0 + 365.0 * 86_400.0), "{exp}");
    assert!(drain(&mut tab, t(5.0 + 30.0 * 86_400.0)).is_empty());
    assert!(tab.contains(a.id));
}

/// Indexes that grow with the entries (`grow_indexes`) find exactly what indexes allocated
/// for the capacity find, through growth, removals and re-insertions.
#[test]
fn growing_indexes_find_what_fixed_ones_find() {
    let key = HashKey::from_u128(0x0123_4567_89ab_cdef_1122_3344_5566_7788);
    let mut grow_cfg = ConnTableConfig::new(40_000, key);
    grow_cfg.grow_indexes = true;
    let mut grown = ConnTable::new(grow_cfg);
    let mut fixed = ConnTable::new(ConnTableConfig::new(40_000, key));
    let now = t(1.0);
    let new = |i: u32| {
        let c = if i % 5 == 0 {
            format!("2001:db8::{:x}", i)
        } else {
            format!("192.0.{}.{}", i / 250, i % 250 + 1)
        };
        let v = if i % 5 == 0 {
            "2001:db8:1::1"
        } else {
            "198.51.100.1"
        };
        let method = if i % 3 == 0 {
            FwdMethod::DirectRoute
        } else {
            FwdMethod::Masq
        };
        conn(
            Protocol::Tcp,
            &c,
            1024 + (i % 7) as u16,
            v,
            80,
            method,
            i % 4,
        )
    };
    let mut ids = Vec::new();
    for i in 0..30_000 {
        let a = grown.insert(now, new(i)).unwrap().id;
        let b = fixed.insert(now, new(i)).unwrap().id;
        assert_eq!(a, b);
        ids.push(a);
    }
    let check = |grown: &ConnTable, fixed: &ConnTable, ids: &[ConnId]| {
        for &id in ids {
            let Some(c) = fixed.get(id) else {
                assert!(grown.get(id).is_none());
                continue;
            };
            let ik = c.in_key();
            let ok = c.out_key();
            assert_eq!(grown.lookup_in(&ik), fixed.lookup_in(&ik));
            assert_eq!(grown.lookup_out(&ok), fixed.lookup_out(&ok));
            assert_eq!(fixed.lookup_in(&ik), Some(id));
        }
    };
    check(&grown, &fixed, &ids);
    for (k, &id) in ids.iter().enumerate() {
        if k % 3 != 1 {
            assert_eq!(
                grown.expire_now(id, now).is_some(),
                fixed.expire_now(id, now).is_some()
            );
        }
    }
    check(&grown, &fixed, &ids);
    for i in 30_000..36_000 {
        let a = grown.insert(now, new(i)).unwrap().id;
        let b = fixed.insert(now, new(i)).unwrap().id;
        assert_eq!(a, b);
        ids.push(a);
    }
    check(&grown, &fixed, &ids);
    assert!(grown.allocated_bytes() <= fixed.allocated_bytes());
}
