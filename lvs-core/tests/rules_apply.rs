//! RuleSet semantics: kernel list order, the kernel's errors with their errno, atomic apply.

use core::net::IpAddr;

use lvs_core::rules::{
    Command, DestConfig, Family, Forward, Inexpressible, PersistMask, Persistence, RuleError,
    RuleSet, RulesError, ServiceConfig, ServiceKey, Timeouts, TunnelConfig, TunnelCsum, TunnelType,
};
use lvs_core::sched::{SchedFlags, SchedKind};
use lvs_core::Protocol;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vip() -> ServiceKey {
    ServiceKey::tcp(ip("10.0.0.1"), 80)
}

fn with_service() -> RuleSet {
    let mut r = RuleSet::new();
    r.apply(&Command::AddService(ServiceConfig::new(vip())))
        .unwrap();
    r
}

fn masq(addr: &str, port: u16) -> DestConfig {
    let mut d = DestConfig::new(ip(addr), port);
    d.forward = Forward::Masq;
    d
}

fn order(r: &RuleSet, key: &ServiceKey) -> Vec<String> {
    r.service(key)
        .unwrap()
        .1
        .iter()
        .map(|d| format!("{}:{}", d.addr, d.port))
        .collect()
}

fn err(r: &mut RuleSet, cmd: Command) -> (RuleError, i32) {
    let before = r.clone();
    let e = r.apply(&cmd).expect_err("must be refused");
    assert_eq!(*r, before, "a refused command changes nothing");
    let errno = e.errno();
    (e, errno)
}

#[test]
fn new_dests_go_to_the_head_and_edits_keep_position() {
    let mut r = with_service();
    for a in ["10.1.0.1", "10.1.0.2", "10.1.0.3"] {
        r.apply(&Command::AddDest(vip(), masq(a, 80))).unwrap();
    }
    assert_eq!(
        order(&r, &vip()),
        ["10.1.0.3:80", "10.1.0.2:80", "10.1.0.1:80"]
    );
    let mut edited = masq("10.1.0.2", 80);
    edited.weight = 5;
    r.apply(&Command::EditDest(vip(), edited)).unwrap();
    assert_eq!(
        order(&r, &vip()),
        ["10.1.0.3:80", "10.1.0.2:80", "10.1.0.1:80"]
    );
    assert_eq!(r.service(&vip()).unwrap().1[1].weight, 5);
    // Deleted and re-added: back at the head.
    r.apply(&Command::DeleteDest {
        service: vip(),
        addr: ip("10.1.0.1"),
        port: 80,
    })
    .unwrap();
    r.apply(&Command::AddDest(vip(), masq("10.1.0.1", 80)))
        .unwrap();
    assert_eq!(
        order(&r, &vip()),
        ["10.1.0.1:80", "10.1.0.3:80", "10.1.0.2:80"]
    );
    // Same address, another port: another real server.
    r.apply(&Command::AddDest(vip(), masq("10.1.0.1", 81)))
        .unwrap();
    assert_eq!(order(&r, &vip())[0], "10.1.0.1:81");
}

#[test]
fn text_order_becomes_kernel_order() {
    let r = RuleSet::from_text(
        "-A -f 1 -s rr\n-a -f 1 -r 10.0.0.3\n-a -f 1 -r 10.0.0.1\n-a -f 1 -r 10.0.0.2\n",
    )
    .unwrap();
    assert_eq!(
        order(&r, &ServiceKey::fwmark(1)),
        ["10.0.0.2:0", "10.0.0.1:0", "10.0.0.3:0"]
    );
}

#[test]
fn services_keep_creation_order() {
    let r = RuleSet::from_text(
        "-A -f 9\n-A -t 10.0.0.1:80\n-A -f 2\n-D -t 10.0.0.1:80\n-A -u 10.0.0.1:53\n",
    )
    .unwrap();
    let keys: Vec<String> = r.services().map(|(s, _)| s.key.to_string()).collect();
    assert_eq!(keys, ["-f 9", "-f 2", "-u 10.0.0.1:53"]);
    assert!(r.service(&ServiceKey::fwmark(2)).is_some());
    assert_eq!(r.len(), 3);
}

#[test]
fn service_errors() {
    let mut r = with_service();
    let (e, errno) = err(&mut r, Command::AddService(ServiceConfig::new(vip())));
    assert_eq!((e, errno), (RuleError::ServiceExists(vip()), 17));
    let other = ServiceKey::tcp(ip("10.0.0.2"), 80);
    for cmd in [
        Command::EditService(ServiceConfig::new(other)),
        Command::DeleteService(other),
        Command::AddDest(other, DestConfig::new(ip("10.1.0.1"), 80)),
        Command::EditDest(other, DestConfig::new(ip("10.1.0.1"), 80)),
        Command::DeleteDest {
            service: other,
            addr: ip("10.1.0.1"),
            port: 80,
        },
        Command::Zero(Some(other)),
    ] {
        assert_eq!(err(&mut r, cmd), (RuleError::NoSuchService(other), 3));
    }
    r.apply(&Command::Zero(None)).unwrap();
    r.apply(&Command::Zero(Some(vip()))).unwrap();

    let mut cfg = ServiceConfig::new(vip());
    cfg.pe = Some("ftp".into());
    assert_eq!(
        err(&mut r, Command::EditService(cfg)),
        (RuleError::UnknownPe("ftp".into()), 2)
    );

    let v6 = ServiceKey::tcp(ip("2001:db8::1"), 80);
    let mut cfg = ServiceConfig::new(v6);
    cfg.persistence = Some(Persistence {
        timeout_secs: 10,
        mask: PersistMask::V6(129),
    });
    assert_eq!(
        err(&mut r, Command::AddService(cfg.clone())),
        (RuleError::BadNetmask(129), 22)
    );
    cfg.persistence = Some(Persistence {
        timeout_secs: 10,
        mask: PersistMask::V6(0),
    });
    assert_eq!(err(&mut r, Command::AddService(cfg)).1, 22);

    let bad_proto = ServiceKey::Addr {
        protocol: Protocol::Ip,
        addr: ip("10.0.0.3"),
        port: 1,
    };
    assert_eq!(
        err(&mut r, Command::AddService(ServiceConfig::new(bad_proto))),
        (RuleError::BadProtocol, 14)
    );
}

#[test]
fn inexpressible_services_are_refused() {
    let mut r = RuleSet::new();
    let mut check = |cfg: ServiceConfig, why: Inexpressible| {
        let (e, errno) = err(&mut r, Command::AddService(cfg));
        assert_eq!((e, errno), (RuleError::Inexpressible(why), 22));
    };
    check(
        ServiceConfig::new(ServiceKey::tcp(ip("10.0.0.1"), 0)),
        Inexpressible::ZeroPortNotPersistent,
    );
    let mut c = ServiceConfig::new(vip());
    c.one_packet = true;
    check(c, Inexpressible::OpsNotUdp);
    let mut c = ServiceConfig::new(vip());
    c.persistence = Some(Persistence::new(0, Family::V4));
    check(c.clone(), Inexpressible::PersistTimeout);
    c.persistence = Some(Persistence::new(
        Persistence::MAX_TIMEOUT_SECS + 1,
        Family::V4,
    ));
    check(c.clone(), Inexpressible::PersistTimeout);
    c.persistence = Some(Persistence::new(10, Family::V6));
    check(c, Inexpressible::MaskFamily);
    let mut c = ServiceConfig::new(ServiceKey::fwmark(3));
    c.scheduler = SchedKind::Sh;
    c.flags = SchedFlags::SCHED3;
    check(c, Inexpressible::SchedFlags);
    check(
        ServiceConfig::new(ServiceKey::fwmark(0)),
        Inexpressible::ZeroFwmark,
    );
    // What is allowed.
    let mut c = ServiceConfig::new(ServiceKey::udp(ip("10.0.0.1"), 0));
    c.one_packet = true;
    c.persistence = Some(Persistence::new(1, Family::V4));
    r.apply(&Command::AddService(c)).unwrap();
    let mut c = ServiceConfig::new(ServiceKey::fwmark(3));
    c.scheduler = SchedKind::Rr;
    c.flags = SchedFlags::SCHED3;
    r.apply(&Command::AddService(c)).unwrap();
}

#[test]
fn dest_errors() {
    let mut r = with_service();
    r.apply(&Command::AddDest(vip(), masq("10.1.0.1", 80)))
        .unwrap();
    let (e, errno) = err(&mut r, Command::AddDest(vip(), masq("10.1.0.1", 80)));
    assert_eq!(errno, 17);
    assert_eq!(
        e,
        RuleError::DestExists {
            service: vip(),
            addr: ip("10.1.0.1"),
            port: 80
        }
    );
    assert_eq!(
        e.to_string(),
        "real server 10.1.0.1:80 already exists in service -t 10.0.0.1:80"
    );
    let (e, errno) = err(&mut r, Command::EditDest(vip(), masq("10.1.0.1", 81)));
    assert_eq!(
        (e, errno),
        (
            RuleError::NoSuchDest {
                service: vip(),
                addr: ip("10.1.0.1"),
                port: 81
            },
            2
        )
    );
    let cmd = Command::DeleteDest {
        service: vip(),
        addr: ip("10.1.0.9"),
        port: 80,
    };
    assert_eq!(err(&mut r, cmd).1, 2);

    let mut d = masq("10.1.0.2", 80);
    d.weight = 65536;
    assert_eq!(
        err(&mut r, Command::AddDest(vip(), d)),
        (RuleError::WeightRange(65536), 34)
    );
    let mut d = masq("10.1.0.2", 80);
    d.l_threshold = 10;
    d.u_threshold = 5;
    assert_eq!(
        err(&mut r, Command::AddDest(vip(), d)),
        (
            RuleError::ThresholdRange {
                lower: 10,
                upper: 5
            },
            34
        )
    );
    // The kernel compares even when the upper threshold is unset.
    d.u_threshold = 0;
    assert_eq!(
        err(
            &mut r,
            Command::EditDest(vip(), masq("10.1.0.1", 80).with_l(1))
        )
        .1,
        34
    );
    d.u_threshold = 10;
    r.apply(&Command::AddDest(vip(), d)).unwrap();

    let mut d = DestConfig::new(ip("10.1.0.3"), 80);
    d.forward = Forward::Tunnel;
    d.tunnel = TunnelConfig {
        kind: TunnelType::Gue,
        port: 0,
        csum: TunnelCsum::NoCsum,
    };
    assert_eq!(
        err(&mut r, Command::AddDest(vip(), d)),
        (RuleError::GueWithoutPort, 22)
    );
    d.tunnel.port = 6080;
    r.apply(&Command::AddDest(vip(), d)).unwrap();

    for bad in [
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "224.0.0.1",
        "239.1.1.1",
    ] {
        let (e, errno) = err(&mut r, Command::AddDest(vip(), masq(bad, 80)));
        assert_eq!(
            (e, errno),
            (RuleError::BadDestAddress(ip(bad)), 22),
            "{bad}"
        );
    }
    let v6 = ServiceKey::tcp(ip("2001:db8::1"), 80);
    r.apply(&Command::AddService(ServiceConfig::new(v6)))
        .unwrap();
    for bad in ["::", "ff02::1", "fe80::1", "::ffff:10.1.0.1"] {
        let d = DestConfig {
            forward: Forward::Masq,
            ..DestConfig::new(ip(bad), 80)
        };
        assert_eq!(err(&mut r, Command::AddDest(v6, d)).1, 22, "{bad}");
    }
    for good in ["::1", "::10.1.0.1", "fec0::1", "fd00::1", "100::1"] {
        let d = DestConfig {
            forward: Forward::Masq,
            ..DestConfig::new(ip(good), 80)
        };
        r.apply(&Command::AddDest(v6, d)).unwrap();
    }
    // Mixed families: only tunnelling.
    let (e, errno) = err(&mut r, Command::AddDest(v6, masq("10.1.0.1", 80)));
    assert_eq!((e, errno), (RuleError::MixedFamily(ip("10.1.0.1")), 22));
    let tun = DestConfig {
        forward: Forward::Tunnel,
        ..DestConfig::new(ip("10.1.0.1"), 80)
    };
    r.apply(&Command::AddDest(v6, tun)).unwrap();
}

trait WithL {
    fn with_l(self, l: u32) -> Self;
}

impl WithL for DestConfig {
    fn with_l(mut self, l: u32) -> Self {
        self.l_threshold = l;
        self
    }
}

#[test]
fn inexpressible_dests_are_refused() {
    let mut r = with_service();
    let inex = |why| (RuleError::Inexpressible(why), 22);
    // DR / local / tunnel on an address service must use the service port.
    for fwd in [Forward::DirectRoute, Forward::Local, Forward::Tunnel] {
        let d = DestConfig {
            forward: fwd,
            ..DestConfig::new(ip("10.1.0.1"), 8080)
        };
        assert_eq!(
            err(&mut r, Command::AddDest(vip(), d)),
            inex(Inexpressible::DestPort)
        );
    }
    let mut d = DestConfig::new(ip("10.1.0.1"), 80);
    d.tunnel.csum = TunnelCsum::Csum;
    assert_eq!(
        err(&mut r, Command::AddDest(vip(), d)),
        inex(Inexpressible::TunnelOptions)
    );
    d.forward = Forward::Tunnel;
    assert_eq!(
        err(&mut r, Command::AddDest(vip(), d)),
        inex(Inexpressible::TunnelOptions)
    );
    d.tunnel = TunnelConfig {
        kind: TunnelType::Gre,
        port: 1,
        csum: TunnelCsum::Csum,
    };
    assert_eq!(
        err(&mut r, Command::AddDest(vip(), d)),
        inex(Inexpressible::TunnelOptions)
    );
    d.tunnel.port = 0;
    // ipvsadm -S would print `--tun-type gre --tun-remcsum`, which ipvsadm -R refuses.
    d.tunnel.csum = TunnelCsum::RemCsum;
    assert_eq!(
        err(&mut r, Command::AddDest(vip(), d)),
        inex(Inexpressible::TunnelOptions)
    );
    d.tunnel.csum = TunnelCsum::Csum;
    r.apply(&Command::AddDest(vip(), d)).unwrap();
    let mut d = masq("10.1.0.5", 80);
    d.u_threshold = i32::MAX as u32 + 1;
    assert_eq!(
        err(&mut r, Command::AddDest(vip(), d)),
        inex(Inexpressible::Threshold)
    );
}

#[test]
fn timeouts_and_clear() {
    let mut r = with_service();
    assert_eq!(
        r.timeouts(),
        Timeouts {
            tcp_secs: 900,
            tcpfin_secs: 120,
            udp_secs: 300
        }
    );
    r.apply_text("--set 0 60 0\n").unwrap();
    assert_eq!(
        r.timeouts(),
        Timeouts {
            tcp_secs: 900,
            tcpfin_secs: 60,
            udp_secs: 300
        }
    );
    let t = Timeouts {
        tcp_secs: 1,
        tcpfin_secs: 0,
        udp_secs: 2678401,
    };
    assert_eq!(
        err(&mut r, Command::SetTimeouts(t)),
        (RuleError::BadTimeout(2678401), 22)
    );
    r.apply(&Command::Clear).unwrap();
    assert!(r.is_empty());
    assert_eq!(r.timeouts().tcpfin_secs, 60, "-C keeps the timeouts");
}

#[test]
fn apply_text_is_atomic_and_reports_positions() {
    let mut r = RuleSet::from_text("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1 -w 2\n")
        .unwrap();
    let before = r.clone();
    let saved = r.save();
    // Third line refused by the kernel: the first two must not stay applied.
    let text = "-a -t 10.0.0.1:80 -r 10.1.0.2\n-E -t 10.0.0.1:80 -s wlc\n  -a -t 10.0.0.1:80 -r 10.1.0.1\n";
    let e = r.apply_text(text).unwrap_err();
    assert_eq!((e.line(), e.column()), (3, 3));
    assert!(matches!(
        e,
        RulesError::Apply {
            source: RuleError::DestExists { .. },
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "line 3, column 3: real server 10.1.0.1:80 already exists in service -t 10.0.0.1:80"
    );
    assert_eq!(r, before);
    assert_eq!(r.save(), saved);
    // A parse error on a late line: nothing applied either.
    let e = r
        .apply_text("-C\n-A -t 10.0.0.9:80\n-A -t 10.0.0.9:81 -s foo\n")
        .unwrap_err();
    assert_eq!((e.line(), e.column()), (3, 22));
    assert!(matches!(e, RulesError::Parse(_)));
    assert_eq!(r, before);
    // Errors are reported in line order: a refused command before a later line that does
    // not parse, a line that does not parse before a later refused command.
    let e = r
        .apply_text("-A -t 10.0.0.1:80\n-A -t 10.0.0.9:81 -s foo\n")
        .unwrap_err();
    assert!(matches!(
        e,
        RulesError::Apply {
            line: 1,
            column: 1,
            source: RuleError::ServiceExists(_)
        }
    ));
    let e = r
        .apply_text("-A -t 10.0.0.9:81 -s foo\n-A -t 10.0.0.1:80\n")
        .unwrap_err();
    assert!(matches!(e, RulesError::Parse(ref p) if p.line == 1 && p.column == 22));
    assert_eq!(r, before);
    // And a good text applies all of it.
    r.apply_text("-C\n-A -t 10.0.0.9:80\n").unwrap();
    assert_eq!(r.save(), "-A -t 10.0.0.9:80 -s wlc\n");
}

#[test]
fn from_text_of_an_edit_of_a_missing_service_fails() {
    let e = RuleSet::from_text("\n-E -u 10.0.0.1:53\n").unwrap_err();
    assert_eq!((e.line(), e.column()), (2, 1));
    assert!(matches!(
        e,
        RulesError::Apply {
            source: RuleError::NoSuchService(_),
            ..
        }
    ));
}
