//! keepalived.conf errors: each names file, line and column; syntax corner cases.

use lvs_core::keepalived::{parse, ErrorKind, KeepalivedError, Level, MemoryFiles};
use lvs_core::rules::{Inexpressible, RuleError};

fn err(text: &str) -> KeepalivedError {
    parse("k.conf", text, &mut MemoryFiles::new()).unwrap_err()
}

fn at(e: &KeepalivedError) -> (&str, usize, usize) {
    (e.file.as_str(), e.line, e.column)
}

const VS_HEAD: &str = "virtual_server 10.0.0.1 80 {\n    protocol TCP\n    lvs_method DR\n";

#[test]
fn unbalanced_close() {
    let e = err("virtual_server 10.0.0.1 80 {\n  real_server 10.1.0.1 80 { }\n}\n  }\n");
    assert_eq!(at(&e), ("k.conf", 4, 3));
    assert_eq!(e.kind, ErrorKind::UnexpectedClose);
}

#[test]
fn unclosed_block_points_at_its_brace() {
    let e = err("virtual_server 10.0.0.1 80 {\n  real_server 10.1.0.1 80 {\n    weight 2\n}\n");
    assert_eq!(at(&e), ("k.conf", 1, 28));
    assert_eq!(
        e.kind,
        ErrorKind::UnclosedBlock {
            keyword: "virtual_server".into()
        }
    );
    assert!(e.to_string().starts_with("k.conf:1:28: "));
}

#[test]
fn bad_virtual_server_address() {
    let e = err("\n\nvirtual_server 10.0.0.300 80 {\n}\n");
    assert_eq!(at(&e), ("k.conf", 3, 16));
    assert!(matches!(&e.kind, ErrorKind::BadValue { keyword, found, .. }
        if keyword == "virtual_server" && found == "10.0.0.300"));
    let e = err("virtual_server 10.0.0.1 http {\n}\n");
    assert_eq!(at(&e), ("k.conf", 1, 25));
}

#[test]
fn missing_values() {
    let e = err("virtual_server\n");
    assert_eq!(at(&e), ("k.conf", 1, 1));
    assert!(matches!(e.kind, ErrorKind::MissingValue { .. }));
    let e = err(&format!("{VS_HEAD}    lvs_sched\n}}\n"));
    assert_eq!(at(&e), ("k.conf", 4, 5));
    assert!(matches!(&e.kind, ErrorKind::MissingValue { keyword, .. } if keyword == "lvs_sched"));
    let e = err("virtual_server 10.0.0.1 80\n");
    assert_eq!(
        e.kind,
        ErrorKind::ExpectedBlock {
            keyword: "virtual_server".into()
        }
    );
}

#[test]
fn bad_values_are_errors() {
    let cases: [(&str, usize); 7] = [
        ("        weight 70000\n", 16),
        ("        weight -1\n", 16),
        ("        lvs_method ROUTE\n", 20),
        ("        uthreshold lots\n", 20),
        ("        lvs_method TUN type gre remcsum\n", 20),
        ("        lvs_method TUN type gue\n", 20),
        ("        delay_loop 0\n", 20),
    ];
    for (line, col) in cases {
        let text = format!("{VS_HEAD}    real_server 10.1.0.1 80 {{\n{line}    }}\n}}\n");
        let e = err(&text);
        assert_eq!(at(&e), ("k.conf", 5, col), "{line:?}: {e}");
        assert!(
            matches!(e.kind, ErrorKind::BadValue { .. }),
            "{line:?}: {e}"
        );
    }
    let e = err(&format!("{VS_HEAD}    lvs_sched twos\n}}\n"));
    assert_eq!(at(&e), ("k.conf", 4, 15));
}

#[test]
fn unterminated_quote() {
    let e = err(&format!("{VS_HEAD}    quorum_up \"/bin/up arg\n}}\n"));
    assert_eq!(at(&e), ("k.conf", 4, 15));
    assert_eq!(e.kind, ErrorKind::UnterminatedQuote);
}

#[test]
fn rule_model_refusals_point_at_the_block() {
    // the same service twice
    let one = "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.1.0.1 80\n}\n";
    let e = err(&format!("{one}{one}"));
    assert_eq!(at(&e), ("k.conf", 5, 1));
    assert!(matches!(
        e.kind,
        ErrorKind::Rule(RuleError::ServiceExists(_))
    ));
    // lower threshold above upper: the kernel's ERANGE, at the real server
    let e = err(&format!(
        "{VS_HEAD}    real_server 10.1.0.1 80 {{\n      uthreshold 5\n      lthreshold 9\n    }}\n}}\n"
    ));
    assert_eq!(at(&e), ("k.conf", 4, 5));
    assert_eq!(
        e.kind,
        ErrorKind::Rule(RuleError::ThresholdRange { lower: 9, upper: 5 })
    );
    // DR to another port than the service's cannot be written as ipvsadm rules (keepalived
    // resets the port of a plain virtual server's real server, but leaves a group's as
    // written)
    let e = err("virtual_server_group web {\n  10.0.0.1 80\n}\n\
         virtual_server group web {\n    protocol TCP\n    lvs_method DR\n\
         real_server 10.1.0.1 8080\n}\n");
    assert_eq!(at(&e), ("k.conf", 7, 1));
    assert_eq!(
        e.kind,
        ErrorKind::Rule(RuleError::Inexpressible(Inexpressible::DestPort))
    );
    // only the sip persistence engine exists
    let e = err(&format!(
        "{VS_HEAD}    persistence_engine xyz\n    real_server 10.1.0.1 80\n}}\n"
    ));
    assert_eq!(at(&e), ("k.conf", 1, 1));
    assert_eq!(e.kind, ErrorKind::Rule(RuleError::UnknownPe("xyz".into())));
}

#[test]
fn unknown_group() {
    let e = err("virtual_server group nope {\n  real_server 10.1.0.1 80\n}\n");
    assert_eq!(at(&e), ("k.conf", 1, 1));
    assert_eq!(e.kind, ErrorKind::UnknownGroup("nope".into()));
}

#[test]
fn block_without_keyword_and_nesting_bound() {
    let e = err("virtual_server 10.0.0.1 80 {\n\n  {\n}\n");
    assert_eq!(at(&e), ("k.conf", 3, 3));
    assert_eq!(e.kind, ErrorKind::BlockWithoutKeyword);
    let deep = "a {\n".repeat(40) + &"}\n".repeat(40);
    let e = err(&deep);
    assert_eq!(
        e.kind,
        ErrorKind::TooDeep {
            limit: lvs_core::keepalived::MAX_NESTING
        }
    );
    assert_eq!(at(&e), ("k.conf", 33, 3));
}

#[test]
fn include_errors_name_the_file_and_pattern() {
    let mut fs = MemoryFiles::new();
    fs.insert(
        "/etc/k/sub/bad.conf",
        "virtual_server 10.0.0.1 80 {\n  lvs_sched nope\n}\n",
    );
    fs.insert("/etc/k/loop.conf", "include loop.conf\n");
    let e = parse("/etc/k/main.conf", "\ninclude sub/bad.conf\n", &mut fs).unwrap_err();
    assert_eq!(at(&e), ("/etc/k/sub/bad.conf", 2, 13));
    let e = parse("/etc/k/main.conf", "# x\n  include missing.conf\n", &mut fs).unwrap_err();
    assert_eq!(at(&e), ("/etc/k/main.conf", 2, 11));
    assert!(
        matches!(&e.kind, ErrorKind::IncludeFailed { pattern, .. } if pattern == "/etc/k/missing.conf")
    );
    let e = parse("/etc/k/main.conf", "include loop.conf\n", &mut fs).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::IncludeDepth {
            limit: lvs_core::keepalived::MAX_INCLUDE_DEPTH
        }
    );
    assert_eq!(at(&e), ("/etc/k/loop.conf", 1, 1));
    let e = parse("/etc/k/main.conf", "include\n", &mut fs).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::MissingValue { .. }));
}

#[test]
fn includes_resolve_dot_dot_and_absolute_paths() {
    let mut fs = MemoryFiles::new();
    fs.insert(
        "/etc/k/common/vs.conf",
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n include ../rs/*.conf\n}\n",
    );
    fs.insert("/etc/k/rs/1.conf", "real_server 10.1.0.1 80\n");
    fs.insert("/etc/k/rs/2.conf", "real_server 10.1.0.2 80\n");
    fs.insert("/etc/k/rs/skip.txt", "real_server 10.1.0.3 80\n");
    let cfg = parse(
        "/etc/k/main.conf",
        "include /etc/k/common/vs.conf\n",
        &mut fs,
    )
    .unwrap();
    assert_eq!(
        cfg.rules.save(),
        "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1\n"
    );
    assert_eq!(cfg.files.len(), 4);
}

#[test]
fn syntax_corners() {
    // `{` on the next line, a brace against a word, a `#` inside quotes, `!` comments after
    // values, extra values warned about
    let text = "virtual_server 10.0.0.1 80\n{\n  protocol TCP ! comment\n  lvs_method DR\n  \
                quorum_up \"/bin/notify #1\" arg\n  real_server 10.1.0.1 80{\n    weight 4 9\n  }\n}\n";
    let cfg = parse("k.conf", text, &mut MemoryFiles::new()).unwrap();
    assert_eq!(
        cfg.rules.save(),
        "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g -w 4\n"
    );
    assert_eq!(
        cfg.services[0].quorum_up.as_deref(),
        Some("/bin/notify #1 arg")
    );
    let w: Vec<_> = cfg
        .warnings
        .iter()
        .filter(|w| w.level == Level::Warning)
        .collect();
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].line, w[0].column), (7, 14));
    assert!(w[0]
        .to_string()
        .starts_with("k.conf:7:14: warning: 'weight' takes 1 value"));
}

#[test]
fn family_mismatch_skips_real_server_and_empty_vs_is_ignored() {
    let text = "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 2001:db8::1 80\n}\n\
                virtual_server 10.0.0.2 80 {\n protocol TCP\n real_server 10.1.0.1 80\n}\n";
    let cfg = parse("k.conf", text, &mut MemoryFiles::new()).unwrap();
    assert_eq!(cfg.services.len(), 1);
    assert_eq!(
        cfg.rules.save(),
        "-A -t 10.0.0.2:80 -s wlc\n-a -t 10.0.0.2:80 -r 10.1.0.1:80 -m -w 1\n"
    );
    let lines: Vec<usize> = cfg.warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines, [3, 1]);
}

#[test]
fn quorum_and_hysteresis_are_clamped_like_keepalived() {
    let text = "virtual_server 10.0.0.1 80 {\n protocol TCP\n quorum 5\n hysteresis 9\n \
                real_server 10.1.0.1 80\n real_server 10.1.0.2 80\n}\n";
    let cfg = parse("k.conf", text, &mut MemoryFiles::new()).unwrap();
    assert_eq!((cfg.services[0].quorum, cfg.services[0].hysteresis), (2, 1));
    assert_eq!(cfg.warnings.len(), 2);
}

#[test]
fn glob_patterns() {
    use lvs_core::keepalived::glob_match as m;
    assert!(m("/etc/k/*.conf", "/etc/k/a.conf"));
    assert!(
        !m("/etc/k/*.conf", "/etc/k/sub/a.conf"),
        "* stays within one path segment"
    );
    assert!(!m("/etc/k/*.conf", "/etc/k/a.conf.bak"));
    assert!(m("/etc/k/?.conf", "/etc/k/b.conf"));
    assert!(!m("/etc/k/?.conf", "/etc/k/bb.conf"));
    assert!(m("/etc/k/[ab]*.conf", "/etc/k/b1.conf"));
    assert!(!m("/etc/k/[!ab]*.conf", "/etc/k/b1.conf"));
    assert!(m("/etc/k/[0-9].conf", "/etc/k/7.conf"));
    assert!(
        m("/etc/k/[x.conf", "/etc/k/[x.conf"),
        "an unclosed class is literal"
    );
    assert!(m("*", "name") && !m("", "name") && m("", ""));
    // backtracking stays cheap on adversarial patterns
    let p = "*a".repeat(20) + "b";
    assert!(!m(&p, &"a".repeat(2000)));
}

#[test]
fn size_bounds_are_errors() {
    use lvs_core::keepalived::{MAX_GROUP_SERVICES, MAX_REAL_SERVERS};
    let mut text = String::from("virtual_server 10.0.0.1 80 {\n protocol TCP\n");
    for i in 0..=MAX_REAL_SERVERS {
        text += &format!(" real_server 10.{}.{}.1 80\n", i / 256, i % 256);
    }
    text += "}\n";
    let e = err(&text);
    assert!(matches!(e.kind, ErrorKind::TooMany { limit, .. } if limit == MAX_REAL_SERVERS));
    assert_eq!(e.line, 3 + MAX_REAL_SERVERS);
    // a group expanding to more services than allowed
    let mut text = String::from("virtual_server_group g {\n");
    for i in 0..=(MAX_GROUP_SERVICES / 256) {
        text += &format!(" 10.0.{i}.0-255 80\n");
    }
    text += "}\n";
    let e = err(&text);
    assert!(matches!(e.kind, ErrorKind::BadValue { .. }), "{e}");
    assert_eq!(e.line, 2 + MAX_GROUP_SERVICES / 256);
    // an oversized file
    let big = "#".repeat(lvs_core::keepalived::MAX_FILE_BYTES + 1);
    assert!(matches!(err(&big).kind, ErrorKind::TooLarge { .. }));
}

#[test]
fn closure_loader_sees_resolved_patterns() {
    use lvs_core::keepalived::parse_with;
    let mut asked = Vec::new();
    let mut loader = |p: &str| -> Result<Vec<(String, String)>, String> {
        asked.push(p.to_string());
        match p {
            "/srv/conf/../rs.d/*.inc" | "/srv/rs.d/*.inc" => Ok(vec![(
                "/srv/rs.d/a.inc".to_string(),
                "real_server 10.1.0.1 80\n".to_string(),
            )]),
            _ => Err("permission denied".to_string()),
        }
    };
    let text = "virtual_server 10.0.0.1 80 {\n protocol TCP\n include ../rs.d/*.inc\n}\n";
    let cfg = parse_with("/srv/conf/main.conf", text, &mut loader).unwrap();
    assert_eq!(cfg.rules.save().lines().count(), 2);
    let e = parse_with("/srv/conf/main.conf", "include secret.conf\n", &mut loader).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::IncludeFailed {
            pattern: "/srv/conf/secret.conf".into(),
            reason: "permission denied".into()
        }
    );
    assert_eq!(asked, ["/srv/rs.d/*.inc", "/srv/conf/secret.conf"]);
}

#[test]
fn initial_quorum_uses_quorum_plus_hysteresis_and_inhibited_sorry_server() {
    let conf = |alpha: &str, inhibit: &str| {
        format!(
            "virtual_server 10.0.0.1 80 {{\n protocol TCP\n lvs_method DR\n quorum 2\n hysteresis 1\n \
             sorry_server 10.9.9.9 80\n {inhibit}\n \
             real_server 10.1.0.1 80 {{ weight 2\n TCP_CHECK }}\n \
             real_server 10.1.0.2 80 {{ weight 1\n TCP_CHECK {{ {alpha} }} }}\n}}\n"
        )
    };
    // live weight 3 >= 2 + 1: quorum up, the plain sorry server is absent
    let cfg = parse("k.conf", &conf("", ""), &mut MemoryFiles::new()).unwrap();
    assert!(cfg.services[0].initial_quorum_up);
    assert_eq!(
        cfg.rules.save(),
        "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g -w 2\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -g -w 1\n"
    );
    // with sorry_server_inhibit it is there with weight 0
    let cfg = parse(
        "k.conf",
        &conf("", "sorry_server_inhibit"),
        &mut MemoryFiles::new(),
    )
    .unwrap();
    assert!(cfg.rules.save().contains("-r 10.9.9.9:80 -g -w 0\n"));
    // one checker in alpha: live weight 2 < 3, quorum down although 2 >= quorum
    let cfg = parse("k.conf", &conf("alpha", ""), &mut MemoryFiles::new()).unwrap();
    assert!(!cfg.services[0].initial_quorum_up);
    assert_eq!(
        cfg.rules.save(),
        "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.9.9.9:80 -g -w 1\n"
    );
}
