//! keepalived.conf read against keepalived's own code (keepalived/check/check_data.c,
//! `validate_check_config`, and the checkers in keepalived/check/check_*.c): the defaults and
//! corrections keepalived applies after reading a `virtual_server` block.

use lvs_core::keepalived::{parse, KeepalivedConfig, MemoryFiles};
use lvs_core::Duration;

fn read(conf: &str) -> KeepalivedConfig {
    parse(
        "/etc/keepalived/keepalived.conf",
        conf,
        &mut MemoryFiles::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// DNS_CHECK has no delay_before_retry of its own (`default_delay_before_retry = 0` in
/// check_dns.c): when nothing sets one, it is the checker's delay_loop, not 1 s.
#[test]
fn dns_check_retries_after_its_delay_loop_by_default() {
    let cfg = read(
        "virtual_server 192.0.2.53 53 {
    delay_loop 10
    lb_kind DR
    protocol UDP
    real_server 10.0.53.1 53 {
        DNS_CHECK {
            type A
            name www.example.com
        }
        TCP_CHECK {
        }
    }
    real_server 10.0.53.2 53 {
        delay_before_retry 3
        DNS_CHECK {
            name www.example.com
        }
    }
}
",
    );
    let rs = &cfg.services[0].real_servers;
    let dns = &rs[0].checkers[0];
    assert_eq!(
        (dns.retry, dns.delay_before_retry),
        (3, Duration::from_secs(10))
    );
    // Other checkers keep the 1 s default.
    assert_eq!(rs[0].checkers[1].delay_before_retry, Duration::from_secs(1));
    // A real server's delay_before_retry applies to its DNS_CHECK.
    assert_eq!(rs[1].checkers[0].delay_before_retry, Duration::from_secs(3));
    // The health monitor gets the same value.
    let specs = cfg.health_specs();
    assert_eq!(
        specs[0].servers[0].checkers[0].delay_before_retry,
        Duration::from_secs(10)
    );
}

/// keepalived lowers a quorum above the total configured weight of the real servers (not
/// above their number): "quorum … exceeds total weight of real servers", check_data.c.
#[test]
fn quorum_is_bounded_by_the_total_weight_not_the_server_count() {
    let conf = |quorum: u32| {
        format!(
            "virtual_server 192.0.2.80 80 {{
    protocol TCP
    lb_kind DR
    quorum {quorum}
    hysteresis 1
    sorry_server 10.0.80.99 80
    real_server 10.0.80.1 80 {{
        weight 2
        TCP_CHECK {{ connect_timeout 3 }}
    }}
    real_server 10.0.80.2 80 {{
        weight 2
        TCP_CHECK {{ connect_timeout 3 }}
    }}
}}
"
        )
    };
    // Two servers of weight 2: quorum 3 is reachable and stays.
    let cfg = read(&conf(3));
    let vs = &cfg.services[0];
    assert_eq!((vs.quorum, vs.hysteresis), (3, 1));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!(cfg.health_specs()[0].settings.quorum, 3);
    // 4 >= 3 + 1: quorum up at start, the sorry server is out.
    assert!(vs.initial_quorum_up);
    assert_eq!(
        cfg.rules.save(),
        "-A -t 192.0.2.80:80 -s wlc\n\
         -a -t 192.0.2.80:80 -r 10.0.80.1:80 -g -w 2\n\
         -a -t 192.0.2.80:80 -r 10.0.80.2:80 -g -w 2\n"
    );

    // Above the total weight: lowered to it, with keepalived's warning.
    let cfg = read(&conf(9));
    assert_eq!(cfg.services[0].quorum, 4);
    let w = &cfg.warnings[0];
    assert_eq!((w.line, w.column), (1, 1));
    assert_eq!(
        w.message,
        "quorum 9 exceeds total weight of real servers 4, reducing quorum to 4"
    );
}

/// Every real server at weight 0: the quorum falls to 0 (keepalived's `quorum - 1` for the
/// hysteresis would wrap; nothing panics and the hysteresis stays 0).
#[test]
fn quorum_of_weightless_servers() {
    let cfg = read(
        "virtual_server 192.0.2.80 80 {
    protocol TCP
    quorum 2
    hysteresis 1
    real_server 10.0.80.1 80 {
        weight 0
    }
}
",
    );
    let vs = &cfg.services[0];
    assert_eq!((vs.quorum, vs.hysteresis), (0, 0));
    assert_eq!(cfg.health_specs()[0].settings.quorum, 1);
}

/// keepalived resets the port of a DR / TUN real server (or sorry server) that differs from
/// the virtual port, and clears it for a fwmark virtual server, with a warning
/// (`validate_check_config`); the checkers keep probing the port as written. NAT real
/// servers keep their own port.
#[test]
fn direct_routing_ports_are_corrected_as_keepalived_does() {
    let cfg = read(
        "! web farm, direct routing
virtual_server 192.0.2.80 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind DR
    protocol TCP
    sorry_server 10.0.80.99 8080
    real_server 10.0.80.1 8080 {
        weight 3
        TCP_CHECK {
            connect_timeout 3
        }
    }
    real_server 10.0.80.2 8081 {
        lvs_method NAT
        TCP_CHECK {
        }
    }
}

virtual_server fwmark 7 {
    lvs_method TUN
    real_server 10.0.70.1 443 {
        HTTP_GET {
            url {
                path /healthz
                status_code 200
            }
        }
    }
}
",
    );
    assert_eq!(
        cfg.rules.save(),
        "-A -t 192.0.2.80:80 -s wrr\n\
         -a -t 192.0.2.80:80 -r 10.0.80.1:80 -g -w 3\n\
         -a -t 192.0.2.80:80 -r 10.0.80.2:8081 -m -w 1\n\
         -A -f 7 -s wlc\n\
         -a -f 7 -r 10.0.70.1:0 -i -w 1 --tun-type ipip\n"
    );
    let web = &cfg.services[0];
    assert_eq!(web.real_servers[0].port, 80);
    assert_eq!(web.real_servers[0].checkers[0].connect_port, 8080);
    assert_eq!(web.real_servers[1].port, 8081);
    assert_eq!(web.sorry_server.as_ref().unwrap().port, 80);
    let tun = &cfg.services[1];
    assert_eq!(tun.real_servers[0].port, 0);
    assert_eq!(tun.real_servers[0].checkers[0].connect_port, 443);
    let w: Vec<(usize, usize, &str)> = cfg
        .warnings
        .iter()
        .map(|w| (w.line, w.column, w.message.as_str()))
        .collect();
    assert_eq!(
        w,
        [
            (
                8,
                5,
                "virtual server port 80 and real server 10.0.80.1 port 8080 don't match - resetting"
            ),
            (
                7,
                5,
                "virtual server and sorry server ports don't match - resetting"
            ),
            (
                23,
                5,
                "fwmark virtual server: real server 10.0.70.1 has port 443 specified - clearing"
            ),
        ]
    );
    // The health monitor manages the rules as installed, and probes the written ports.
    let specs = cfg.health_specs();
    let web = specs
        .iter()
        .find(|s| s.key.port() == 80 && !s.key.is_fwmark())
        .unwrap();
    assert_eq!(web.servers[0].dest.port, 80);
    assert_eq!(web.settings.sorry_server.unwrap().port, 80);
}

/// `ha_suspend` needs a virtual address: keepalived clears it on a fwmark virtual server
/// (or a group with fwmarks) with a warning.
#[test]
fn ha_suspend_is_cleared_for_fwmark_services() {
    let cfg = read(
        "virtual_server_group mixed {
    192.0.2.1 80
    fwmark 9
}
virtual_server group mixed {
    ha_suspend
    protocol TCP
    lb_kind DR
    real_server 10.0.9.1 80 {
    }
}
virtual_server fwmark 10 {
    ha_suspend
    real_server 10.0.10.1 0 {
    }
}
virtual_server 192.0.2.2 80 {
    ha_suspend
    protocol TCP
    real_server 10.0.2.1 80 {
    }
}
",
    );
    let suspended: Vec<bool> = cfg.services.iter().map(|v| v.ha_suspend).collect();
    assert_eq!(suspended, [false, false, true]);
    let w: Vec<(usize, &str)> = cfg
        .warnings
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(
        w,
        [
            (
                5,
                "cannot use ha_suspend with fwmarks - clearing ha_suspend"
            ),
            (
                12,
                "cannot use ha_suspend with fwmarks - clearing ha_suspend"
            ),
        ]
    );
}

/// keepalived 2.x's reader (`decomment` and `read_line` in lib/parser.c): a line whose last
/// character is `\` goes on on the next line, and `\#` / `\!` are literal characters rather
/// than comment starts. Words keep the line and column they were written at.
#[test]
fn backslash_continues_a_line_and_escapes_comment_characters() {
    let cfg = read(
        "virtual_server 192.0.2.80 80 {
    protocol TCP
    real_server 10.0.80.1 80 {
        MISC_CHECK {
            misc_path /usr/local/bin/check_web \\
                --host 10.0.80.1 --port 80   # probe the page
            misc_timeout 5
        }
    }
    real_server 10.0.80.2 80 {
        MISC_CHECK {
            misc_path /usr/local/bin/check --tag a\\#b\\!c --dir C:\\\\
        }
    }
}
",
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let path = |i: usize| match &cfg.services[0].real_servers[i].checkers[0].kind {
        lvs_core::keepalived::CheckerKind::Misc { path, timeout, .. } => (path.clone(), *timeout),
        k => panic!("{k:?}"),
    };
    assert_eq!(
        path(0),
        (
            "/usr/local/bin/check_web --host 10.0.80.1 --port 80".to_string(),
            Duration::from_secs(5)
        )
    );
    // `\\` at the end is a pair, not a continuation.
    assert_eq!(path(1).0, "/usr/local/bin/check --tag a#b!c --dir C:\\\\");

    // An error on a continued line points at that line.
    let e = parse(
        "k.conf",
        "virtual_server 192.0.2.80 80 {\n  real_server 10.0.80.1 80 {\n    weight \\\n      heavy\n  }\n}\n",
        &mut MemoryFiles::new(),
    )
    .unwrap_err();
    assert_eq!((e.file.as_str(), e.line, e.column), ("k.conf", 4, 7));
}

/// A sorry server of the other address family is skipped with keepalived's warning
/// (`vs_end_handler`), so neither the initial rules nor the health monitor ever add it to
/// the service (a tunnelled one may differ, as for real servers).
#[test]
fn sorry_server_of_another_family_is_skipped() {
    let conf = |alpha: &str, method: &str| {
        format!(
            "virtual_server 192.0.2.80 80 {{
    protocol TCP
    lb_kind DR
    {alpha}
    sorry_server 2001:db8::99 80
    sorry_server_lvs_method {method}
    real_server 10.0.80.1 80 {{
        TCP_CHECK {{
        }}
    }}
}}
"
        )
    };
    for alpha in ["alpha", ""] {
        let cfg = read(&conf(alpha, "DR"));
        let vs = &cfg.services[0];
        assert!(vs.sorry_server.is_none(), "{alpha:?}");
        assert_eq!(
            cfg.rules.save(),
            if alpha.is_empty() {
                "-A -t 192.0.2.80:80 -s wlc\n-a -t 192.0.2.80:80 -r 10.0.80.1:80 -g -w 1\n"
            } else {
                "-A -t 192.0.2.80:80 -s wlc\n"
            }
        );
        assert!(cfg.health_specs()[0].settings.sorry_server.is_none());
        let w = &cfg.warnings[0];
        assert_eq!(
            (w.line, w.column, w.message.as_str()),
            (
                5,
                5,
                "Address family of virtual server and sorry server 2001:db8::99 don't match - skipping sorry server"
            )
        );
    }
    // Tunnelled: kept.
    let cfg = read(&conf("", "TUN"));
    assert!(cfg.services[0].sorry_server.is_some());
}

/// A whole configuration in the style of keepalived's doc/samples (global settings, VRRP,
/// an HTTP farm with digests, an SSL farm, a fwmark service, an included file): the IPVS
/// rules and settings, and every error naming the file, line and column of the cause.
#[test]
fn sample_style_configuration() {
    let main = "! Configuration File for keepalived

global_defs {
   notification_email {
     sysadmin@example.com
   }
   notification_email_from lb1@example.com
   smtp_server 192.0.2.25
   smtp_connect_timeout 30
   router_id LVS_DEVEL
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        192.0.2.10
        192.0.2.11
    }
}

virtual_server 192.0.2.10 80 {
    delay_loop 6
    lb_algo rr
    lb_kind NAT
    persistence_timeout 50
    protocol TCP

    sorry_server 192.168.200.200 1358

    real_server 192.168.200.2 1358 {
        weight 1
        HTTP_GET {
            url {
              path /testurl/test.jsp
              digest 640205b7b0fc66c1ea91c463fac6334d
            }
            url {
              path /testurl2/test.jsp
              digest 640205b7b0fc66c1ea91c463fac6334d
            }
            connect_timeout 3
            retry 3
            delay_before_retry 3
        }
    }

    real_server 192.168.200.3 1358 {
        weight 1
        HTTP_GET {
            url {
              path /testurl/test.jsp
              status_code 200
            }
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 2
        }
    }
}

virtual_server 192.0.2.11 443 {
    delay_loop 20
    lb_algo wlc
    lb_kind DR
    protocol TCP
    persistence_timeout
    ha_suspend

    real_server 192.168.201.100 443 {
        weight 3
        inhibit_on_failure
        SSL_GET {
            url {
              path /
              digest ec90a42b99ea9a2f5ecbe213ac9eba03
            }
            connect_timeout 3
        }
    }
}

include conf.d/*.conf
";
    let mut fs = MemoryFiles::new();
    fs.insert(
        "/etc/keepalived/conf.d/mail.conf",
        "# fwmark service for SMTP and submission
virtual_server fwmark 25 {
    delay_loop 30
    lvs_sched sh
    sh-port
    lvs_method DR
    quorum 2
    hysteresis 1
    quorum_up \"/usr/local/bin/notify quorum up\"
    quorum_down \"/usr/local/bin/notify quorum down\"
    real_server 192.168.202.1 {
        TCP_CHECK {
            connect_port 25
        }
        MISC_CHECK {
            misc_path \"/usr/local/bin/mailq_ok 192.168.202.1\"
            misc_timeout 10
            misc_dynamic
        }
    }
    real_server 192.168.202.2 {
        TCP_CHECK {
            connect_port 25
        }
    }
}
",
    );
    let cfg = parse("/etc/keepalived/keepalived.conf", main, &mut fs).unwrap();
    assert_eq!(
        cfg.rules.save(),
        "-A -t 192.0.2.10:80 -s rr -p 50\n\
         -a -t 192.0.2.10:80 -r 192.168.200.2:1358 -m -w 1\n\
         -a -t 192.0.2.10:80 -r 192.168.200.3:1358 -m -w 1\n\
         -A -t 192.0.2.11:443 -s wlc -p 360\n\
         -a -t 192.0.2.11:443 -r 192.168.201.100:443 -g -w 3\n\
         -A -f 25 -s sh -b sh-port\n\
         -a -f 25 -r 192.168.202.1:0 -g -w 1\n\
         -a -f 25 -r 192.168.202.2:0 -g -w 1\n"
    );
    assert_eq!(
        cfg.files,
        [
            "/etc/keepalived/keepalived.conf",
            "/etc/keepalived/conf.d/mail.conf"
        ]
    );
    let http = &cfg.services[0];
    let c = &http.real_servers[1].checkers[0];
    assert_eq!(
        (
            c.retry,
            c.delay_before_retry,
            c.connect_timeout,
            c.delay_loop
        ),
        (
            3,
            Duration::from_secs(2),
            Duration::from_secs(3),
            Duration::from_secs(6)
        )
    );
    assert_eq!(http.sorry_server.as_ref().unwrap().port, 1358);
    let ssl = &cfg.services[1];
    assert!(ssl.ha_suspend && ssl.real_servers[0].inhibit_on_failure);
    let mail = &cfg.services[2];
    assert_eq!((mail.quorum, mail.hysteresis), (2, 1));
    assert_eq!(
        mail.quorum_down.as_deref(),
        Some("/usr/local/bin/notify quorum down")
    );
    assert_eq!(mail.real_servers[0].checkers[0].connect_port, 25);
    // Only the VRRP / global blocks are noted, as not LVS configuration.
    assert!(cfg
        .warnings
        .iter()
        .all(|w| w.level == lvs_core::keepalived::Level::Info));

    // Errors name the file, line and column, in the main file and in an included one.
    let bad_main = main.replace("lb_kind DR", "lb_kind DSR");
    let e = parse("/etc/keepalived/keepalived.conf", &bad_main, &mut fs).unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.line, e.column),
        ("/etc/keepalived/keepalived.conf", 72, 13)
    );
    fs.insert(
        "/etc/keepalived/conf.d/zz.conf",
        "virtual_server 192.0.2.12 53 {\n    protocol UDP\n    real_server 192.168.203.1 53 {\n        DNS_CHECK {\n            retry three\n        }\n    }\n}\n",
    );
    let e = parse("/etc/keepalived/keepalived.conf", main, &mut fs).unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.line, e.column),
        ("/etc/keepalived/conf.d/zz.conf", 5, 19)
    );
    fs.insert(
        "/etc/keepalived/conf.d/zz.conf",
        "virtual_server 192.0.2.12 53 {\n",
    );
    let e = parse("/etc/keepalived/keepalived.conf", main, &mut fs).unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.line, e.column),
        ("/etc/keepalived/conf.d/zz.conf", 1, 30)
    );
}
