//! The keepalived.conf corpus under `tests/data/keepalived/`: each configuration parsed to its
//! expected rules (as `ipvsadm -S -n` prints them), checker settings and warnings.

use std::path::Path;

use lvs_core::keepalived::{
    parse, CheckerKind, KeepalivedConfig, Level, MemoryFiles, VirtualServerName,
};
use lvs_core::rules::{Forward, RuleSet, TunnelCsum, TunnelType};

const ROOT: &str = "/etc/keepalived";

/// Every corpus file, under `/etc/keepalived/<relative path>`.
fn corpus() -> MemoryFiles {
    fn walk(dir: &Path, base: &Path, fs: &mut MemoryFiles) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, fs);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_str().unwrap().to_string();
                fs.insert(
                    format!("{ROOT}/{rel}"),
                    std::fs::read_to_string(&p).unwrap(),
                );
            }
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keepalived");
    let mut fs = MemoryFiles::new();
    walk(&dir, &dir, &mut fs);
    fs
}

fn load(name: &str) -> KeepalivedConfig {
    let mut fs = corpus();
    let path = format!("{ROOT}/{name}");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/keepalived")
            .join(name),
    )
    .unwrap();
    let cfg = parse(&path, &text, &mut fs).unwrap_or_else(|e| panic!("{name}: {e}"));
    // The saved rules read back to the same rules (the save format leaves out thresholds and
    // creation order, so compare saved texts).
    let saved = cfg.rules.save();
    assert_eq!(RuleSet::from_text(&saved).unwrap().save(), saved, "{name}");
    cfg
}

fn warnings(cfg: &KeepalivedConfig, level: Level) -> Vec<(usize, usize, String)> {
    cfg.warnings
        .iter()
        .filter(|w| w.level == level)
        .map(|w| (w.line, w.column, w.message.clone()))
        .collect()
}

fn secs(d: lvs_core::Duration) -> f64 {
    d.as_secs_f64()
}

#[test]
fn dr_basic_old_keywords() {
    let cfg = load("01_dr_basic.conf");
    assert_eq!(
        cfg.rules.save(),
        "-A -t 192.0.2.10:80 -s wlc\n\
         -a -t 192.0.2.10:80 -r 10.1.0.11:80 -g -w 3\n\
         -a -t 192.0.2.10:80 -r 10.1.0.12:80 -g -w 1\n"
    );
    let vs = &cfg.services[0];
    assert_eq!(vs.line, 21);
    assert_eq!(vs.forward, Forward::DirectRoute);
    assert_eq!(secs(vs.delay_loop), 6.0);
    let c0 = &vs.real_servers[0].checkers[0];
    assert_eq!(c0.kind, CheckerKind::Tcp);
    assert_eq!(
        (
            c0.retry,
            secs(c0.connect_timeout),
            secs(c0.delay_before_retry)
        ),
        (2, 3.0, 2.0)
    );
    // warmup defaults to the checker's delay_loop, itself from the virtual server
    assert_eq!((secs(c0.delay_loop), secs(c0.warmup)), (6.0, 6.0));
    let c1 = &vs.real_servers[1].checkers[0];
    assert_eq!(
        (c1.connect_port, c1.connect_ip.to_string().as_str()),
        (8080, "10.1.0.12")
    );
    assert_eq!(
        (
            c1.retry,
            secs(c1.connect_timeout),
            secs(c1.delay_before_retry)
        ),
        (1, 5.0, 1.0)
    );
    // other keepalived blocks are info notes, nothing is a warning
    assert!(warnings(&cfg, Level::Warning).is_empty());
    assert_eq!(
        warnings(&cfg, Level::Info)
            .iter()
            .map(|w| (w.0, w.1))
            .collect::<Vec<_>>(),
        [(4, 1), (11, 1)]
    );
}

#[test]
fn nat_http_get() {
    let cfg = load("02_nat_http.conf");
    assert_eq!(
        cfg.rules.save(),
        "-A -t 198.51.100.1:8080 -s rr\n\
         -a -t 198.51.100.1:8080 -r 172.16.0.1:80 -m -w 5\n\
         -a -t 198.51.100.1:8080 -r 172.16.0.2:80 -m -w 0\n"
    );
    let rs = &cfg.services[0].real_servers;
    assert!(
        rs[0].inhibit_on_failure,
        "inherited from the virtual server"
    );
    assert!(
        !rs[1].inhibit_on_failure,
        "`inhibit_on_failure off` on the real server wins"
    );
    let c = &rs[0].checkers[0];
    let CheckerKind::HttpGet { urls, virtualhost } = &c.kind else {
        panic!("{:?}", c.kind)
    };
    assert_eq!(virtualhost.as_deref(), Some("www.example.com"));
    // the url without a path is dropped, as keepalived drops it
    assert_eq!(urls.len(), 2);
    assert_eq!(
        (urls[0].path.as_str(), urls[0].status_codes.as_slice()),
        ("/health", &[(200, 200)][..])
    );
    assert_eq!(
        urls[1].digest.as_deref(),
        Some("9b3a0c85a887a256d6939da88aabd8cd")
    );
    assert!(urls[1].status_codes.is_empty());
    // nb_get_retry (old name) wins over the virtual server's retry 4; 1.5 s parsed exactly
    assert_eq!(
        (
            c.retry,
            c.delay_before_retry.as_millis(),
            secs(c.connect_timeout)
        ),
        (3, 1500, 2.0)
    );
    let c = &rs[1].checkers[0];
    assert_eq!(c.retry, 4, "virtual server retry reaches the checker");
    let CheckerKind::HttpGet { urls, .. } = &c.kind else {
        panic!()
    };
    assert_eq!(urls[0].status_codes, [(200, 299), (301, 301)]);
    assert_eq!(
        warnings(&cfg, Level::Warning),
        [(
            20,
            13,
            "HTTP/SSL_GET checker url has no path - ignoring".to_string()
        )]
    );
}

#[test]
fn tunnels() {
    let cfg = load("03_tunnels.conf");
    assert_eq!(
        cfg.rules.save(),
        "-A -t 203.0.113.5:443 -s wrr\n\
         -a -t 203.0.113.5:443 -r 10.2.0.1:443 -i -w 2 --tun-type ipip\n\
         -a -t 203.0.113.5:443 -r 10.2.0.2:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum\n\
         -a -t 203.0.113.5:443 -r 10.2.0.3:443 -i -w 1 --tun-type gre --tun-nocsum\n\
         -a -t 203.0.113.5:443 -r [2001:db8:2::4]:443 -i -w 1 --tun-type gre --tun-csum\n"
    );
    let rs = &cfg.services[0].real_servers;
    assert_eq!(rs[1].tunnel.kind, TunnelType::Gue);
    assert_eq!(
        (rs[1].tunnel.port, rs[1].tunnel.csum),
        (6080, TunnelCsum::Csum)
    );
    assert!(rs[2].checkers.is_empty());
    assert!(cfg.warnings.is_empty());
}

#[test]
fn persistence_and_engine() {
    let cfg = load("04_persistence.conf");
    assert_eq!(
        cfg.rules.save(),
        "-A -t 192.0.2.20:443 -s lc -p 360 -M 255.255.255.0\n\
         -a -t 192.0.2.20:443 -r 10.3.0.1:443 -g -w 1\n\
         -a -t 192.0.2.20:443 -r 10.3.0.2:443 -g -w 1\n\
         -A -u 192.0.2.21:5060 -s rr -p 900 --pe sip\n\
         -a -u 192.0.2.21:5060 -r 10.3.1.1:5060 -m -w 1\n"
    );
    let c = &cfg.services[1].real_servers[0].checkers[0];
    let CheckerKind::Misc {
        path,
        timeout,
        dynamic,
    } = &c.kind
    else {
        panic!()
    };
    assert_eq!(path, "/usr/local/bin/check_sip 10.3.1.1");
    assert_eq!((secs(*timeout), *dynamic), (60.0, false));
    assert_eq!(c.retry, 0, "MISC_CHECK's default retry is 0");
}

#[test]
fn fwmark_and_groups() {
    let cfg = load("05_fwmark_group.conf");
    assert_eq!(
        cfg.rules.save(),
        "-A -t 192.0.2.30:80 -s sed\n\
         -a -t 192.0.2.30:80 -r 10.4.0.1:80 -g -w 1\n\
         -A -t 192.0.2.31:80 -s sed\n\
         -a -t 192.0.2.31:80 -r 10.4.0.1:80 -g -w 1\n\
         -A -t 192.0.2.32:80 -s sed\n\
         -a -t 192.0.2.32:80 -r 10.4.0.1:80 -g -w 1\n\
         -A -t 192.0.2.40:443 -s sed\n\
         -a -t 192.0.2.40:443 -r 10.4.0.1:443 -g -w 1\n\
         -A -f 7 -6 -s nq -p 60\n\
         -a -f 7 -6 -r [2001:db8:4::1]:0 -g -w 2\n\
         -A -f 10 -s sed\n\
         -a -f 10 -r 10.4.0.1:0 -g -w 1\n"
    );
    assert_eq!(cfg.services[0].name, VirtualServerName::Group("web".into()));
    assert_eq!(cfg.services[0].keys.len(), 5);
    assert_eq!(cfg.services[1].name, VirtualServerName::Fwmark(7));
    assert_eq!(
        secs(cfg.services[0].real_servers[0].checkers[0].delay_loop),
        15.0
    );
}

#[test]
fn ipv6_ssl_get() {
    let cfg = load("06_ipv6.conf");
    assert_eq!(
        cfg.rules.save(),
        "-A -t [2001:db8::10]:443 -s wlc -p 300 -M 64\n\
         -a -t [2001:db8::10]:443 -r [2001:db8:1::1]:8443 -m -w 10\n\
         -a -t [2001:db8::10]:443 -r [2001:db8:1::2]:8443 -m -w 10\n"
    );
    let c = &cfg.services[0].real_servers[0].checkers[0];
    assert!(
        matches!(&c.kind, CheckerKind::SslGet { urls, .. } if urls[0].status_codes == [(204, 204)])
    );
    assert_eq!(
        c.bindto.map(|a| a.to_string()).as_deref(),
        Some("2001:db8::fe")
    );
    assert_eq!(secs(c.connect_timeout), 4.0);
}

#[test]
fn sorry_server_alpha_quorum() {
    let cfg = load("07_sorry_server.conf");
    // alpha: 10.5.0.1 starts failed and is absent, 10.5.0.2 (inhibit_on_failure) is there
    // with weight 0, 10.5.0.3 (alpha off) is up; live weight 1 < quorum 2 + hysteresis 1 →
    // quorum down: the sorry server is in and the live 10.5.0.3 is taken out of the pool.
    assert_eq!(
        cfg.rules.save(),
        "-A -t 192.0.2.50:80 -s rr\n\
         -a -t 192.0.2.50:80 -r 192.0.2.200:80 -m -w 1\n\
         -a -t 192.0.2.50:80 -r 10.5.0.2:80 -g -w 0\n"
    );
    let vs = &cfg.services[0];
    assert!(!vs.initial_quorum_up);
    assert_eq!(
        (vs.quorum, vs.hysteresis, vs.alpha, vs.omega),
        (2, 1, true, true)
    );
    assert_eq!(
        vs.quorum_up.as_deref(),
        Some("/usr/local/bin/notify quorum up")
    );
    assert_eq!(
        vs.quorum_down.as_deref(),
        Some("/usr/local/bin/notify quorum down")
    );
    let s = vs.sorry_server.as_ref().unwrap();
    assert_eq!((s.forward, s.inhibit, s.port), (Forward::Masq, true, 80));
    let up: Vec<bool> = vs.real_servers.iter().map(|r| r.initially_up).collect();
    assert_eq!(up, [false, false, true]);
    assert_eq!(
        vs.real_servers[0].notify_down.as_deref(),
        Some("/usr/local/bin/notify rs down")
    );
    assert!(vs.real_servers[0].checkers[0].alpha);
    assert!(!vs.real_servers[2].checkers[0].alpha);
}

#[test]
fn every_checker_kind() {
    let cfg = load("08_checkers.conf");
    assert_eq!(
        cfg.rules.save(),
        "-A -t 192.0.2.60:25 -s wlc\n\
         -a -t 192.0.2.60:25 -r 10.6.0.1:25 -m -w 1\n\
         -a -t 192.0.2.60:25 -r 10.6.0.2:25 -m -w 1\n\
         -A -u 192.0.2.61:53 -s rr -o\n\
         -a -u 192.0.2.61:53 -r 10.6.1.1:53 -m -w 1\n\
         -a -u 192.0.2.61:53 -r 10.6.1.2:53 -m -w 1\n"
    );
    let smtp = &cfg.services[0].real_servers[0].checkers[0];
    assert_eq!(
        smtp.kind,
        CheckerKind::Smtp {
            helo_name: Some("lb.example.com".into())
        }
    );
    assert_eq!(secs(smtp.connect_timeout), 7.0);
    let misc = &cfg.services[0].real_servers[1].checkers[0];
    assert!(
        matches!(&misc.kind, CheckerKind::Misc { timeout, dynamic: true, .. } if secs(*timeout) == 8.0)
    );
    let dns = &cfg.services[1].real_servers[0].checkers[0];
    assert_eq!(
        dns.kind,
        CheckerKind::Dns {
            query_type: "SOA".into(),
            name: "example.com".into()
        }
    );
    assert_eq!(dns.retry, 3, "DNS_CHECK's default retry is 3");
    let rs = &cfg.services[1].real_servers[1];
    assert_eq!(
        rs.checkers[0].kind,
        CheckerKind::Bfd {
            name: Some("bfd_dns2".into())
        }
    );
    let tcp = &rs.checkers[1];
    assert_eq!(
        (tcp.fwmark, tcp.bind_port, tcp.alpha),
        (Some(5), Some(1053), false)
    );
    assert_eq!((secs(tcp.delay_loop), secs(tcp.warmup)), (20.0, 2.0));
}

#[test]
fn includes_with_globs_relative_to_the_including_file() {
    let cfg = load("09_include_main.conf");
    assert_eq!(
        cfg.rules.save(),
        "-A -t 192.0.2.70:80 -s rr\n\
         -a -t 192.0.2.70:80 -r 10.7.0.1:80 -g -w 1\n\
         -a -t 192.0.2.70:80 -r 10.7.0.2:80 -g -w 1\n\
         -A -u 192.0.2.71:53 -s rr\n\
         -a -u 192.0.2.71:53 -r 10.7.1.1:53 -m -w 1\n"
    );
    assert_eq!(
        cfg.files,
        [
            "/etc/keepalived/09_include_main.conf",
            "/etc/keepalived/conf.d/a-web.conf",
            "/etc/keepalived/conf.d/nested/web-servers.inc",
            "/etc/keepalived/conf.d/b-dns.conf",
        ]
    );
    assert_eq!(cfg.services[0].file, "/etc/keepalived/conf.d/a-web.conf");
    assert_eq!(cfg.services[1].line, 1);
    assert_eq!(
        warnings(&cfg, Level::Warning),
        [(
            6,
            9,
            "include \"/etc/keepalived/conf.d/none-*.conf\" matched no file".to_string()
        )]
    );
}

#[test]
fn scheduler_flags_ops_and_thresholds() {
    let cfg = load("10_sched_flags.conf");
    assert_eq!(
        cfg.rules.save(),
        "-A -t 192.0.2.80:80 -s sh -b sh-fallback,sh-port\n\
         -a -t 192.0.2.80:80 -r 10.8.0.1:80 -g -w 1\n\
         -A -t 192.0.2.81:80 -s mh -b mh-fallback\n\
         -a -t 192.0.2.81:80 -r 10.8.0.2:80 -g -w 1\n\
         -A -t 192.0.2.83:80 -s wrr\n\
         -a -t 192.0.2.83:80 -r 10.8.0.4:80 -g -w 1\n\
         -A -u 192.0.2.82:4500 -s rr -o -b flag-1,flag-3\n\
         -a -u 192.0.2.82:4500 -r 10.8.0.3:4500 -m -w 1\n"
    );
    let (_, dests) = cfg
        .rules
        .service(&"-u 192.0.2.82:4500".parse().unwrap())
        .unwrap();
    assert_eq!((dests[0].u_threshold, dests[0].l_threshold), (1000, 800));
    assert_eq!(
        warnings(&cfg, Level::Warning)
            .iter()
            .map(|w| (w.0, w.1))
            .collect::<Vec<_>>(),
        [(7, 5), (13, 5), (39, 5)]
    );
    assert!(cfg.warnings[1].message.contains("mh-port"));
    assert!(cfg.warnings[2].message.contains("requires UDP"));
}

#[test]
fn unknown_keywords_are_warnings_with_positions() {
    let cfg = load("11_unknown.conf");
    assert_eq!(
        cfg.rules.save(),
        "-A -t 192.0.2.90:80 -s rr\n-a -t 192.0.2.90:80 -r 10.9.0.1:80 -g -w 1\n"
    );
    let w = warnings(&cfg, Level::Warning);
    let at: Vec<(usize, usize)> = w.iter().map(|w| (w.0, w.1)).collect();
    assert_eq!(at, [(6, 1), (14, 5), (15, 5), (19, 9), (22, 13), (24, 9)]);
    assert!(w[0].2.contains("totally_unknown_block") && w[0].2.contains("block is skipped"));
    assert!(w[2].2.contains("fancy_block"));
    assert!(w[4].2.contains("unknown_checker_option") && w[4].2.contains("TCP_CHECK"));
    // the known checker's other settings still apply
    assert_eq!(
        secs(cfg.services[0].real_servers[0].checkers[0].connect_timeout),
        3.0
    );
    assert_eq!(cfg.services[0].real_servers[0].checkers.len(), 1);
    assert_eq!(warnings(&cfg, Level::Info).len(), 1);
}

#[test]
fn keepalived_defaults() {
    let cfg = load("12_defaults.conf");
    // no protocol → UDP, no method → NAT, no scheduler → wlc, port 0 → persistent 360 s
    assert_eq!(
        cfg.rules.save(),
        "-A -u 192.0.2.100:0 -s wlc -p 360\n\
         -a -u 192.0.2.100:0 -r 10.10.0.1:0 -m -w 1\n\
         -a -u 192.0.2.100:0 -r 10.10.0.2:0 -m -w 1\n\
         -A -u 192.0.2.101:80 -s wlc\n\
         -a -u 192.0.2.101:80 -r 10.10.1.1:80 -m -w 4\n\
         -a -u 192.0.2.101:80 -r 10.10.1.2:80 -m -w 2\n"
    );
    let vs = &cfg.services[1];
    let (a, b) = (
        &vs.real_servers[0].checkers[0],
        &vs.real_servers[1].checkers[0],
    );
    // connect_timeout and warmup from the virtual server, retry from the real server
    assert_eq!(
        (secs(a.connect_timeout), secs(a.warmup), a.retry),
        (9.0, 0.0, 7)
    );
    // delay_loop from the real server, retry 0 from the checker
    assert_eq!(
        (secs(b.delay_loop), b.retry, secs(b.warmup)),
        (12.0, 0, 0.0)
    );
    assert_eq!(
        warnings(&cfg, Level::Warning)
            .iter()
            .map(|w| (w.0, w.2.as_str()))
            .collect::<Vec<_>>(),
        [
            (2, "no protocol set - defaulting to UDP"),
            (
                2,
                "zero port only valid for persistent services - setting persistence_timeout 360"
            ),
            (14, "no protocol set - defaulting to UDP"),
        ]
    );
}

#[test]
fn describe_prints_rules_then_settings() {
    let cfg = load("07_sorry_server.conf");
    let text = cfg.describe();
    assert!(text.starts_with(&cfg.rules.save()));
    let rest = &text[cfg.rules.save().len()..];
    assert!(rest.lines().all(|l| l.starts_with('#')));
    assert!(rest.contains("#   sorry_server 192.0.2.200:80 method NAT inhibit on\n"));
    assert!(rest.contains(
        "#     TCP_CHECK connect 10.5.0.1:80 timeout 5s retry 1 delay_before_retry 1s delay_loop 5s warmup 5s alpha on\n"
    ));
    // the whole text is still a valid ipvsadm rule file
    assert_eq!(RuleSet::from_text(&text).unwrap().save(), cfg.rules.save());
}
