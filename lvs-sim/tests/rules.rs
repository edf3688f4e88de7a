//! `lvs-sim rules --keepalived FILE`: the example, includes resolved relative to the file,
//! warnings and errors with their positions, exit statuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lvs_core::keepalived::{parse, MemoryFiles};
use lvs_core::rules::RuleSet;

fn rules(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lvs-sim"))
        .arg("rules")
        .arg("--keepalived")
        .arg(path)
        .output()
        .expect("lvs-sim runs")
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("lvs-sim-rules")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn example_prints_ipvsadm_rules_then_checkers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/keepalived.conf");
    let out = rules(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (rule_lines, comments): (Vec<&str>, Vec<&str>) =
        stdout.lines().partition(|l| !l.starts_with('#'));
    // The rules, exactly as ipvsadm -S -n: alpha servers of the DNS pool start absent.
    assert_eq!(
        rule_lines,
        vec![
            "-A -t 192.0.2.10:80 -s wlc -p 120",
            "-a -t 192.0.2.10:80 -r 10.1.0.11:80 -g -w 3",
            "-a -t 192.0.2.10:80 -r 10.1.0.12:80 -g -w 1",
            "-A -t 192.0.2.10:8080 -s wlc -p 120",
            "-a -t 192.0.2.10:8080 -r 10.1.0.11:8080 -g -w 3",
            "-a -t 192.0.2.10:8080 -r 10.1.0.12:8080 -g -w 1",
            "-A -u 192.0.2.53:53 -s rr",
        ]
    );
    // The whole output is still an ipvsadm -R input, and the same rules as the library's.
    let text = std::fs::read_to_string(&path).unwrap();
    let cfg = parse("k.conf", &text, &mut MemoryFiles::new()).unwrap();
    assert_eq!(RuleSet::from_text(&stdout).unwrap(), cfg.rules);
    // Then the checker settings per real server.
    assert!(comments.contains(
        &"#     TCP_CHECK connect 10.1.0.11:80 timeout 3s retry 2 delay_before_retry 2s delay_loop 5s warmup 5s alpha off"
    ), "{stdout}");
    assert!(comments
        .iter()
        .any(|l| l.starts_with("#     HTTP_GET connect 10.1.0.12:80 timeout 3s retry 4 ")));
    assert!(comments
        .iter()
        .any(|l| l.contains("MISC_CHECK") && l.contains("misc_dynamic on")));
    assert!(comments.contains(&"#   sorry_server 192.0.2.200:80 method DR inhibit off"));
    // Other keepalived blocks are noted on stderr with their position.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("keepalived.conf:2:1: note: 'global_defs'"),
        "{stderr}"
    );
}

#[test]
fn includes_relative_to_the_file_with_globs() {
    let dir = scratch_dir("includes");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(dir.join("keepalived.conf"), "include conf.d/*.conf\n").unwrap();
    std::fs::write(
        dir.join("conf.d/b.conf"),
        "virtual_server 10.0.0.2 443 {\n protocol TCP\n real_server 10.1.0.2 443 {\n TCP_CHECK {\n }\n }\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("conf.d/a.conf"),
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n real_server 10.1.0.1 80 {\n bogus_keyword 1\n }\n}\n",
    )
    .unwrap();
    std::fs::write(dir.join("conf.d/ignored.txt"), "garbage {").unwrap();
    let out = rules(&dir.join("keepalived.conf"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(
            "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1\n\
         -A -t 10.0.0.2:443 -s wlc\n-a -t 10.0.0.2:443 -r 10.1.0.2:443 -m -w 1\n"
        ),
        "{stdout}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("a.conf:5:2: warning:"), "{stderr}");
}

#[test]
fn structural_error_names_the_position() {
    let dir = scratch_dir("error");
    let path = dir.join("bad.conf");
    std::fs::write(
        &path,
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.1.0.x 80 {\n }\n}\n",
    )
    .unwrap();
    let out = rules(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("bad.conf:3:"), "{stderr}");
    assert!(out.stdout.is_empty());

    let missing = rules(&dir.join("missing.conf"));
    assert_eq!(missing.status.code(), Some(2));
}
