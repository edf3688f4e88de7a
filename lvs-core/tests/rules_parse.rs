//! The ipvsadm rule language: accepted forms, defaults, and every refusal with its position.

use core::net::{IpAddr, Ipv4Addr};

use lvs_core::rules::{
    parse, parse_line, Command, DestConfig, Family, Forward, ParseErrorKind as K, PersistMask,
    Persistence, RuleSet, ServiceConfig, ServiceKey, Timeouts, TunnelConfig, TunnelCsum,
    TunnelType,
};
use lvs_core::sched::{SchedFlags, SchedKind};
use lvs_core::Protocol;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn one(line: &str) -> Command {
    parse_line(line)
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
        .expect("a command")
}

/// The error of a bad line: (column, kind).
fn bad(line: &str) -> (usize, K) {
    let e = parse_line(line).expect_err(line);
    assert_eq!(e.line, 1);
    (e.column, e.kind)
}

fn svc(line: &str) -> ServiceConfig {
    match one(line) {
        Command::AddService(c) | Command::EditService(c) => c,
        other => panic!("not a service command: {other:?}"),
    }
}

fn dest(line: &str) -> DestConfig {
    match one(line) {
        Command::AddDest(_, d) | Command::EditDest(_, d) => d,
        other => panic!("not a real-server command: {other:?}"),
    }
}

#[test]
fn service_defaults_are_ipvsadm_defaults() {
    let c = svc("-A -t 10.0.0.1:80");
    assert_eq!(c, ServiceConfig::new(ServiceKey::tcp(ip("10.0.0.1"), 80)));
    assert_eq!(c.scheduler, SchedKind::Wlc);
    // A bare -p is 360 s (the code's IPVS_SVC_PERSISTENT_TIMEOUT, not the man page's 300).
    let c = svc("-A -t 10.0.0.1:80 -p");
    assert_eq!(c.persistence, Some(Persistence::new(360, Family::V4)));
    let c = svc("-A -t 10.0.0.1:80 -p -s rr");
    assert_eq!(
        (c.persistence.unwrap().timeout_secs, c.scheduler),
        (360, SchedKind::Rr)
    );
    let c = svc("-A -t 10.0.0.1:80 -p 20 -s rr");
    assert_eq!(c.persistence.unwrap().timeout_secs, 20);
}

#[test]
fn real_server_defaults_and_forced_port() {
    let d = dest("-a -t 10.0.0.1:80 -r 10.1.0.1");
    assert_eq!(d, DestConfig::new(ip("10.1.0.1"), 80));
    assert_eq!((d.forward, d.weight), (Forward::DirectRoute, 1));
    // DR and TUN real servers of address services get the service port.
    assert_eq!(dest("-a -t 10.0.0.1:80 -r 10.1.0.1:8080").port, 80);
    assert_eq!(dest("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -i").port, 80);
    assert_eq!(dest("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m").port, 8080);
    // fwmark services keep the given port, or 0.
    assert_eq!(dest("-a -f 5 -r 10.1.0.1:8080 -g").port, 8080);
    assert_eq!(dest("-a -f 5 -r 10.1.0.1 -g").port, 0);
    // The port is copied from the service known *so far*, as ipvsadm does.
    assert_eq!(dest("-a -r 10.1.0.1 -m -t 10.0.0.1:80").port, 0);
}

#[test]
fn long_options_and_popt_forms() {
    let long = "ipvsadm --add-server --tcp-service 10.0.0.1:80 --real-server 10.1.0.1:81 \
                --masquerading --weight 7 --u-threshold 10 --l-threshold=5";
    let short = "-a -t10.0.0.1:80 -r 10.1.0.1:81 -mw7 -x 10 -y5";
    assert_eq!(one(long), one(short));
    let d = dest(short);
    assert_eq!(
        (d.port, d.forward, d.weight, d.u_threshold, d.l_threshold),
        (81, Forward::Masq, 7, 10, 5)
    );
    assert_eq!(
        one("--add-service --udp-service 10.0.0.1:53 --scheduler rr --persistent=30 --netmask 255.255.0.0"),
        one("-A -u 10.0.0.1:53 -s rr -p 30 -M 255.255.0.0"),
    );
    assert_eq!(
        one("-A --fwmark-service 3 --ipv6 --ops --sched-flags flag-3"),
        one("-A -f 3 -6 -o -b flag-3")
    );
    assert_eq!(
        one("--edit-service -t 1.2.3.4:1 --sort"),
        one("-E -t 1.2.3.4:1")
    );
    assert_eq!(
        one("-a -t 1.2.3.4:1 -r 5.6.7.8 --gatewaying"),
        one("-a -t 1.2.3.4:1 -r 5.6.7.8 -g")
    );
    assert_eq!(
        one("-a -t 1.2.3.4:1 -r 5.6.7.8 --ipip"),
        one("-a -t 1.2.3.4:1 -r 5.6.7.8 -i")
    );
    assert_eq!(
        one("--delete-server -t 1.2.3.4:1 -r 5.6.7.8"),
        one("-d -t 1.2.3.4:1 -r 5.6.7.8:1")
    );
    assert_eq!(
        one("--delete-service -t 1.2.3.4:1"),
        Command::DeleteService(ServiceKey::tcp(ip("1.2.3.4"), 1))
    );
    assert_eq!(one("--clear"), Command::Clear);
    assert_eq!(one("-C"), Command::Clear);
    assert_eq!(one("--zero"), Command::Zero(None));
    assert_eq!(
        one("-Z -u 1.2.3.4:1"),
        Command::Zero(Some(ServiceKey::udp(ip("1.2.3.4"), 1)))
    );
    assert_eq!(
        one("--set 100 0 20"),
        Command::SetTimeouts(Timeouts {
            tcp_secs: 100,
            tcpfin_secs: 0,
            udp_secs: 20
        })
    );
    // popt skips one `=` after a short option letter.
    assert_eq!(
        one("-a -t=1.2.3.4:1 -r=5.6.7.8 -mw=4"),
        one("-a -t 1.2.3.4:1 -r 5.6.7.8 -m -w 4")
    );
    assert_eq!(one("-A -f 1 -p=9"), one("-A -f 1 -p 9"));
    assert_eq!(
        bad("-a -f 1 -r 5.6.7.8 -w="),
        (
            23,
            K::BadNumber {
                what: "weight",
                min: 0,
                max: 65535,
                found: "".into()
            }
        )
    );
    assert_eq!(
        bad("-a -f 1 -r 5.6.7.8 -mx").1,
        K::MissingValue("u-threshold")
    );
    assert_eq!(bad("-a -f 1 -r 5.6.7.8 -mx").0, 22);
    // Options after `--` are arguments.
    assert_eq!(bad("-C -- -t").1, K::UnexpectedArgument("-t".into()));
}

#[test]
fn addresses_forms() {
    let k = |l: &str| match one(l) {
        Command::DeleteService(k) => k,
        o => panic!("{o:?}"),
    };
    assert_eq!(
        k("-D -t [2001:db8::1]:443"),
        ServiceKey::tcp(ip("2001:db8::1"), 443)
    );
    // A bare IPv6 address is accepted without a port (port 0).
    assert_eq!(
        k("-D -t 2001:db8::1"),
        ServiceKey::tcp(ip("2001:db8::1"), 0)
    );
    assert_eq!(k("-D -t 10.0.0.1"), ServiceKey::tcp(ip("10.0.0.1"), 0));
    assert_eq!(
        k("-D --sctp-service 10.0.0.1:0009"),
        ServiceKey::Addr {
            protocol: Protocol::Sctp,
            addr: ip("10.0.0.1"),
            port: 9
        }
    );
    assert_eq!(
        k("-D -f 4294967295 -6"),
        ServiceKey::Fwmark {
            mark: u32::MAX,
            family: Family::V6
        }
    );
    for bad_addr in [
        "www.example.com:80",
        "10.1:80",
        "010.0.0.1:80",
        "80",
        "[10.0.0.1]:80",
        "[::1]",
        "[::1]:",
        "10.0.0.1:http",
        "10.0.0.1:65536",
        "10.0.0.1:-1",
        "",
    ] {
        let line = format!("-D -t {bad_addr}");
        let (col, kind) = if bad_addr.is_empty() {
            bad("-D -t")
        } else {
            bad(&line)
        };
        if bad_addr.is_empty() {
            assert_eq!((col, kind), (4, K::MissingValue("tcp-service")));
        } else {
            assert_eq!(
                (col, kind),
                (7, K::BadAddress(bad_addr.into())),
                "{bad_addr}"
            );
        }
    }
}

#[test]
fn netmask_follows_the_family_known_so_far() {
    let m = |l: &str| svc(l).persistence.unwrap().mask;
    assert_eq!(
        m("-A -t 10.0.0.1:80 -p -M 255.255.255.0"),
        PersistMask::V4(Ipv4Addr::new(255, 255, 255, 0))
    );
    assert_eq!(m("-A -t [::1]:80 -p -M 64"), PersistMask::V6(64));
    assert_eq!(m("-A -f 1 -6 -p -M 48"), PersistMask::V6(48));
    // -6 resets the mask to 128, as ipvsadm does.
    assert_eq!(m("-A -f 1 -M 255.0.0.0 -6 -p"), PersistMask::V6(128));
    // Non-contiguous IPv4 masks are the kernel's business: accepted.
    assert_eq!(
        m("-A -f 1 -p -M 0.255.0.255"),
        PersistMask::V4(Ipv4Addr::new(0, 255, 0, 255))
    );
    assert_eq!(
        bad("-A -t [::1]:80 -p -M 129"),
        (
            22,
            K::BadNumber {
                what: "IPv6 netmask prefix length",
                min: 1,
                max: 128,
                found: "129".into()
            }
        )
    );
    assert_eq!(bad("-A -t [::1]:80 -p -M 0").0, 22);
    assert_eq!(
        bad("-A -t 1.2.3.4:80 -p -M 24"),
        (24, K::BadNetmask("24".into()))
    );
    // -M without -p is accepted and forgotten (the kernel ignores it).
    assert_eq!(svc("-A -t 1.2.3.4:80 -M 255.0.0.0").persistence, None);
}

#[test]
fn sched_flags() {
    assert_eq!(
        svc("-A -f 1 -s sh -b sh-fallback,sh-port").flags,
        SchedFlags::SCHED1 | SchedFlags::SCHED2
    );
    assert_eq!(svc("-A -f 1 -b sh-port -s sh").flags, SchedFlags::SCHED2);
    assert_eq!(
        svc("-A -f 1 -s mh -b mh-fallback").flags,
        SchedFlags::SCHED1
    );
    assert_eq!(
        svc("-A -f 1 -b flag-1,,flag-3").flags,
        SchedFlags::SCHED1 | SchedFlags::SCHED3
    );
    assert_eq!(
        bad("-A -f 1 -b sh-port"),
        (12, K::IncompatibleSchedFlag("sh-port".into()))
    );
    assert_eq!(
        bad("-A -f 1 -s sh -b sh-port,mh-port"),
        (26, K::IncompatibleSchedFlag("mh-port".into()))
    );
    assert_eq!(
        bad("-A -f 1 -b flag-4"),
        (12, K::BadSchedFlag("flag-4".into()))
    );
    assert_eq!(bad("-A -f 1 -b ,"), (12, K::BadSchedFlag(",".into())));
    // An empty list sets no flag (ipvsadm skips parse_sched_flags for an empty argument),
    // but the option still counts as given.
    assert_eq!(svc("-A -f 1 -s sh -b=").flags, SchedFlags::empty());
    assert_eq!(
        svc("-A -f 1 --sched-flags= -s mh").flags,
        SchedFlags::empty()
    );
    assert_eq!(
        bad("-A -f 1 -b= -b flag-1"),
        (13, K::DuplicateOption("sched-flags"))
    );
    assert_eq!(
        bad("-a -f 1 -r 10.0.0.1 -b="),
        (
            21,
            K::IllegalOption {
                option: "sched-flags",
                command: "add-server"
            }
        )
    );
}

#[test]
fn tunnel_options() {
    let t = |l: &str| dest(l).tunnel;
    assert_eq!(t("-a -f 1 -r 10.0.0.1 -i"), TunnelConfig::default());
    assert_eq!(
        t("-a -f 1 -r 10.0.0.1 -i --tun-type ipip"),
        TunnelConfig::default()
    );
    assert_eq!(
        t("-a -f 1 -r 10.0.0.1 -i --tun-type gue --tun-port 9 --tun-csum"),
        TunnelConfig {
            kind: TunnelType::Gue,
            port: 9,
            csum: TunnelCsum::Csum
        }
    );
    assert_eq!(
        t("-a -f 1 -r 10.0.0.1 -i --tun-type gre --tun-csum"),
        TunnelConfig {
            kind: TunnelType::Gre,
            port: 0,
            csum: TunnelCsum::Csum
        }
    );
    assert_eq!(
        t("-a -f 1 -r 10.0.0.1 -i --tun-type gre"),
        TunnelConfig {
            kind: TunnelType::Gre,
            port: 0,
            csum: TunnelCsum::NoCsum
        }
    );
    // ipvsadm's tunnel_types_v_options row for gre is `x 1 1 x`: no remote checksum.
    assert_eq!(
        bad("-a -f 1 -r 10.0.0.1 -i --tun-type gre --tun-remcsum"),
        (
            39,
            K::IllegalTunnelOption {
                option: "tun-remcsum",
                tunnel: "gre"
            }
        )
    );
    assert_eq!(
        bad("-a -f 1 -r 10.0.0.1 -i --tun-remcsum --tun-type=gre"),
        (
            24,
            K::IllegalTunnelOption {
                option: "tun-remcsum",
                tunnel: "gre"
            }
        )
    );
    assert_eq!(
        bad("-a -f 1 -r 10.0.0.1 -i --tun-type gue"),
        (24, K::MissingTunPort)
    );
    assert_eq!(
        bad("-a -f 1 -r 10.0.0.1 -i --tun-type vxlan"),
        (35, K::BadTunnelType("vxlan".into()))
    );
    assert_eq!(
        bad("-a -f 1 -r 10.0.0.1 -i --tun-port 5"),
        (
            24,
            K::IllegalTunnelOption {
                option: "tun-port",
                tunnel: "ipip"
            }
        )
    );
    assert_eq!(
        bad("-a -f 1 -r 10.0.0.1 -i --tun-csum"),
        (
            24,
            K::IllegalTunnelOption {
                option: "tun-csum",
                tunnel: "ipip"
            }
        )
    );
    assert_eq!(
        bad("-a -f 1 -r 10.0.0.1 -i --tun-type gre --tun-port 5"),
        (
            39,
            K::IllegalTunnelOption {
                option: "tun-port",
                tunnel: "gre"
            }
        )
    );
    assert_eq!(
        bad("-a -f 1 -r 10.0.0.1 -i --tun-type gre --tun-csum --tun-nocsum"),
        (39, K::ConflictingCsum("tun-csum"))
    );
    assert_eq!(
        bad("-a -f 1 -r 10.0.0.1 -m --tun-type gre"),
        (24, K::TunnelOptionsWithoutTunnel)
    );
    assert_eq!(
        bad("-a -f 1 -r 10.0.0.1 -i --tun-type gue --tun-port 0").0,
        50
    );
}

#[test]
fn command_and_option_refusals_with_positions() {
    assert_eq!(
        bad("-t 1.2.3.4:80 -A"),
        (1, K::ExpectedCommand("-t".into()))
    );
    assert_eq!(bad("1.2.3.4"), (1, K::MissingCommand));
    assert_eq!(bad("-L -n"), (1, K::UnsupportedCommand("-L".into())));
    assert_eq!(bad("--save"), (1, K::UnsupportedCommand("--save".into())));
    assert_eq!(
        bad("--start-daemon master"),
        (1, K::UnsupportedCommand("--start-daemon".into()))
    );
    assert_eq!(
        bad("-A -D -t 1.2.3.4:80"),
        (4, K::MultipleCommands("-D".into()))
    );
    assert_eq!(
        bad("-AD -t 1.2.3.4:80"),
        (3, K::MultipleCommands("-D".into()))
    );
    assert_eq!(
        bad("-A -t 1.2.3.4:80 -q"),
        (18, K::UnknownOption("-q".into()))
    );
    assert_eq!(
        bad("-A -t 1.2.3.4:80 --frobnicate"),
        (18, K::UnknownOption("--frobnicate".into()))
    );
    assert_eq!(
        bad("-A -t 1.2.3.4:80 -s"),
        (18, K::MissingValue("scheduler"))
    );
    assert_eq!(
        bad("-A -t 1.2.3.4:80 --ops=1"),
        (18, K::UnwantedValue("ops"))
    );
    assert_eq!(
        bad("-A -t 1.2.3.4:80 -u 1.2.3.4:81"),
        (18, K::DuplicateOption("service-address"))
    );
    assert_eq!(
        bad("-a -t 1.2.3.4:80 -r 5.6.7.8 -m -g"),
        (32, K::DuplicateOption("forwarding-method"))
    );
    assert_eq!(
        bad("-A -t 1.2.3.4:80 -r 5.6.7.8"),
        (
            18,
            K::IllegalOption {
                option: "real-server",
                command: "add-service"
            }
        )
    );
    assert_eq!(
        bad("-A -t 1.2.3.4:80 -n"),
        (
            18,
            K::IllegalOption {
                option: "numeric",
                command: "add-service"
            }
        )
    );
    assert_eq!(
        bad("-A -s rr"),
        (
            1,
            K::MissingOption {
                option: "service-address",
                command: "add-service"
            }
        )
    );
    assert_eq!(
        bad("-a -t 1.2.3.4:80"),
        (
            1,
            K::MissingOption {
                option: "real-server",
                command: "add-server"
            }
        )
    );
    assert_eq!(
        bad("-d -t 1.2.3.4:80 -r 5.6.7.8 -w 3"),
        (
            29,
            K::IllegalOption {
                option: "weight",
                command: "delete-server"
            }
        )
    );
    assert_eq!(
        bad("-C -t 1.2.3.4:80"),
        (
            4,
            K::IllegalOption {
                option: "service-address",
                command: "flush"
            }
        )
    );
    assert_eq!(
        bad("-Z -t 1.2.3.4:80 -s rr"),
        (
            18,
            K::IllegalOption {
                option: "scheduler",
                command: "zero"
            }
        )
    );
    assert_eq!(
        bad("-A -t 1.2.3.4:80 extra"),
        (18, K::UnexpectedArgument("extra".into()))
    );
    assert_eq!(bad("--set 1 2"), (1, K::SetNeedsThree));
    assert_eq!(
        bad("--set 1 2 3 4"),
        (13, K::UnexpectedArgument("4".into()))
    );
    assert_eq!(bad("--set 1 2 2678401").0, 11);
    assert_eq!(bad("-A -t 1.2.3.4:80 -6"), (18, K::Ipv6BeforeFwmark));
    assert_eq!(bad("-A -6 -f 1"), (4, K::Ipv6BeforeFwmark));
}

#[test]
fn value_ranges() {
    let num = |l: &str| match bad(l).1 {
        K::BadNumber { what, min, max, .. } => (what, min, max),
        k => panic!("{l}: {k:?}"),
    };
    assert_eq!(num("-a -f 1 -r 1.1.1.1 -w 65536"), ("weight", 0, 65535));
    assert_eq!(num("-a -f 1 -r 1.1.1.1 -w -1"), ("weight", 0, 65535));
    assert_eq!(num("-a -f 1 -r 1.1.1.1 -w +1"), ("weight", 0, 65535));
    assert_eq!(
        num("-a -f 1 -r 1.1.1.1 -x 2147483648"),
        ("upper threshold", 0, 2147483647)
    );
    assert_eq!(
        num("-a -f 1 -r 1.1.1.1 -y 99999999999999999999999"),
        ("lower threshold", 0, 2147483647)
    );
    assert_eq!(num("-A -f 0"), ("fwmark", 1, 4294967295));
    assert_eq!(num("-A -f 4294967296"), ("fwmark", 1, 4294967295));
    assert_eq!(num("-A -f 1 -p 0"), ("persistence timeout", 1, 2678400));
    assert_eq!(
        num("-A -f 1 -p 2678401"),
        ("persistence timeout", 1, 2678400)
    );
    assert_eq!(
        num("-A -f 1 --persistent="),
        ("persistence timeout", 1, 2678400)
    );
    assert_eq!(
        svc("-A -f 1 -p 2678400").persistence.unwrap().timeout_secs,
        2678400
    );
    assert_eq!(
        bad("-A -f 1 -s WLC"),
        (12, K::UnknownScheduler("WLC".into()))
    );
    assert_eq!(bad("-A -f 1 -s none").1, K::UnknownScheduler("none".into()));
    assert_eq!(
        bad("-A -f 1 --pe abcdefghijklmnop"),
        (14, K::BadPeName("abcdefghijklmnop".into()))
    );
    assert_eq!(svc("-A -f 1 --pe sip").pe.as_deref(), Some("sip"));
}

#[test]
fn service_and_server_consistency_refusals() {
    assert_eq!(bad("-A -t 1.2.3.4 -s rr"), (4, K::ZeroPortNotPersistent));
    assert_eq!(bad("-E -t 1.2.3.4:0"), (4, K::ZeroPortNotPersistent));
    assert!(parse_line("-A -t 1.2.3.4 -p").is_ok());
    assert!(parse_line("-A -f 1").is_ok());
    assert_eq!(bad("-A -t 1.2.3.4:80 -o"), (18, K::OpsNotUdp));
    assert_eq!(bad("-A --sctp-service 1.2.3.4:80 -o").1, K::OpsNotUdp);
    assert!(parse_line("-A -u 1.2.3.4:80 -o").is_ok());
    assert!(parse_line("-A -f 1 -o").is_ok());
    assert_eq!(bad("-a -t 1.2.3.4:80 -r [::1]:80 -m"), (18, K::MixedFamily));
    assert_eq!(bad("-a -f 1 -6 -r 1.2.3.4 -g"), (12, K::MixedFamily));
    assert!(parse_line("-a -f 1 -6 -r 1.2.3.4 -i").is_ok());
    // -d does not check families (nor force ports).
    assert!(parse_line("-d -f 1 -6 -r 1.2.3.4").is_ok());
}

#[test]
fn comments_blank_lines_and_line_numbers() {
    let text = "# header\n\nipvsadm -A -t 1.2.3.4:80 # trailing\n   \t\n-a -t 1.2.3.4:80 -r 5.6.7.8#x\r\n-C\n";
    let cmds = parse(text).unwrap();
    let lines: Vec<usize> = cmds.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [3, 5, 6]);
    assert!(matches!(cmds[1].1, Command::AddDest(_, d) if d.addr == ip("5.6.7.8")));
    let e = parse("-C\n\n-A -t 1.2.3.4:80 -w 5\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 18));
    assert_eq!(
        e.to_string(),
        "line 3, column 18: option 'weight' is not allowed with the 'add-service' command"
    );
    // Columns count characters, not bytes.
    let e = parse_line("\u{e9}\u{e9} -C").unwrap_err();
    assert_eq!(e.column, 1);
    let e = parse_line("-C \u{e9}\u{e9} x").unwrap_err();
    assert_eq!(
        (e.column, e.kind),
        (4, K::UnexpectedArgument("\u{e9}\u{e9}".into()))
    );
    let e = parse_line("-A -t 1.2.3.4:80\t\u{e9} -q").unwrap_err();
    assert_eq!(e.column, 20);
}

#[test]
fn error_text_is_bounded() {
    let long = "x".repeat(10_000);
    let e = parse_line(&format!("-A -t {long}:80")).unwrap_err();
    assert!(e.to_string().len() < 300, "{}", e.to_string().len());
}

#[test]
fn edit_replaces_the_whole_configuration() {
    let mut rules = RuleSet::from_text(
        "-A -t 1.2.3.4:80 -s sh -b sh-port -p 100 --pe sip\n\
         -a -t 1.2.3.4:80 -r 5.6.7.8 -w 9 -x 10 -y 3\n",
    )
    .unwrap();
    rules
        .apply_text("-E -t 1.2.3.4:80\n-e -t 1.2.3.4:80 -r 5.6.7.8\n")
        .unwrap();
    let key = ServiceKey::tcp(ip("1.2.3.4"), 80);
    let (cfg, dests) = rules.service(&key).unwrap();
    assert_eq!(*cfg, ServiceConfig::new(key));
    assert_eq!(dests, [DestConfig::new(ip("5.6.7.8"), 80)]);
}

#[test]
fn service_key_from_str_and_display_agree() {
    for s in [
        "-t 1.2.3.4:80",
        "-u [2001:db8::1]:53",
        "--sctp-service 1.2.3.4:0",
        "-f 7",
        "-f 7 -6",
        "-t [::ffff:1.2.3.4]:1",
    ] {
        let k: ServiceKey = s.parse().unwrap();
        assert_eq!(k.to_string(), s);
    }
    let e = "-t 1.2.3.4:99999".parse::<ServiceKey>().unwrap_err();
    assert_eq!(e.column, 4);
    assert!("-t 1.2.3.4:80 -s rr".parse::<ServiceKey>().is_err());
}
