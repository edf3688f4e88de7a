//! Property: a random keepalived virtual_server configuration, written with random keyword
//! spellings (old/new names), brace placement and comments, reads to the same rules as the
//! equivalent ipvsadm rule text.

use lvs_core::keepalived::{parse, MemoryFiles};
use lvs_core::rules::RuleSet;
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Rs {
    last_octet: u8,
    port: u16,
    weight: Option<u16>,
}

#[derive(Clone, Debug)]
struct Vs {
    third_octet: u8,
    port: u16,
    udp: bool,
    sched: &'static str,
    method: &'static str,
    persistence: Option<Option<u32>>,
    rs: Vec<Rs>,
    old_names: bool,
    brace_next_line: bool,
    comment: Option<&'static str>,
}

fn vs_strategy() -> impl Strategy<Value = Vs> {
    (
        any::<u8>(),
        1u16..=65535,
        any::<bool>(),
        prop::sample::select(vec![
            "rr", "wrr", "lc", "wlc", "sed", "nq", "dh", "sh", "fo", "ovf",
        ]),
        prop::sample::select(vec!["NAT", "DR", "TUN"]),
        prop::option::of(prop::option::of(1u32..=86400)),
        prop::collection::btree_map(
            1u8..=254,
            (any::<u16>(), prop::option::of(0u16..=1000)),
            1..5,
        ),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["! note", "# note", "#", "!"])),
    )
        .prop_map(
            |(
                third_octet,
                port,
                udp,
                sched,
                method,
                persistence,
                rs,
                old_names,
                brace_next_line,
                comment,
            )| Vs {
                third_octet,
                port,
                udp,
                sched,
                method,
                persistence,
                rs: rs
                    .into_iter()
                    .map(|(last_octet, (p, weight))| Rs {
                        last_octet,
                        // ipvsadm forces the service port for DR and TUN
                        port: if method == "NAT" { p.max(1) } else { port },
                        weight,
                    })
                    .collect(),
                old_names,
                brace_next_line,
                comment,
            },
        )
}

fn keepalived_text(v: &[Vs]) -> String {
    let mut s = String::new();
    for (i, vs) in v.iter().enumerate() {
        let open = if vs.brace_next_line { "\n{" } else { " {" };
        let c = vs.comment.map(|c| format!(" {c}")).unwrap_or_default();
        s += &format!(
            "virtual_server 10.0.{}.{} {}{open}{c}\n",
            vs.third_octet,
            i + 1,
            vs.port
        );
        let (algo, kind) = if vs.old_names {
            ("lb_algo", "lb_kind")
        } else {
            ("lvs_sched", "lvs_method")
        };
        s += &format!("    {algo} {}{c}\n    {kind} {}\n", vs.sched, vs.method);
        s += &format!("    protocol {}\n", if vs.udp { "UDP" } else { "TCP" });
        match vs.persistence {
            None => {}
            Some(None) => s += "    persistence_timeout\n",
            Some(Some(t)) => s += &format!("    persistence_timeout {t}\n"),
        }
        for rs in &vs.rs {
            s += &format!(
                "    real_server 10.1.{}.{} {}{open}\n",
                i + 1,
                rs.last_octet,
                rs.port
            );
            if let Some(w) = rs.weight {
                s += &format!("        weight {w}{c}\n");
            }
            s += "        TCP_CHECK { connect_timeout 2 }\n    }\n";
        }
        s += "}\n";
    }
    s
}

fn ipvsadm_text(v: &[Vs]) -> String {
    let mut s = String::new();
    for (i, vs) in v.iter().enumerate() {
        let key = format!(
            "{} 10.0.{}.{}:{}",
            if vs.udp { "-u" } else { "-t" },
            vs.third_octet,
            i + 1,
            vs.port
        );
        s += &format!("-A {key} -s {}", vs.sched);
        match vs.persistence {
            None => {}
            Some(None) => s += " -p",
            Some(Some(t)) => s += &format!(" -p {t}"),
        }
        s += "\n";
        let m = match vs.method {
            "NAT" => "-m",
            "DR" => "-g",
            _ => "-i",
        };
        for rs in &vs.rs {
            s += &format!(
                "-a {key} -r 10.1.{}.{}:{} {m} -w {}\n",
                i + 1,
                rs.last_octet,
                rs.port,
                rs.weight.unwrap_or(1)
            );
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn keepalived_reads_like_ipvsadm(v in prop::collection::vec(vs_strategy(), 1..4)) {
        let text = keepalived_text(&v);
        let cfg = parse("k.conf", &text, &mut MemoryFiles::new())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let expected = RuleSet::from_text(&ipvsadm_text(&v)).unwrap();
        prop_assert_eq!(cfg.rules.save(), expected.save());
        prop_assert_eq!(cfg.services.len(), v.len());
        for (s, vs) in cfg.services.iter().zip(&v) {
            prop_assert_eq!(s.real_servers.len(), vs.rs.len());
            for c in s.real_servers.iter().flat_map(|r| &r.checkers) {
                prop_assert_eq!(c.connect_timeout.as_secs(), 2);
            }
        }
        prop_assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }
}
