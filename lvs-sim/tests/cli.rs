//! The `lvs-sim` binary: exit statuses, error messages naming the file, and the help.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lvs-sim"))
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn sched(rules: &Path, trace: &Path) -> Output {
    bin()
        .arg("sched")
        .arg("--rules")
        .arg(rules)
        .arg("--trace")
        .arg(trace)
        .output()
        .expect("lvs-sim runs")
}

/// A scratch file under the target directory, unique per test.
fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lvs-sim-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn example_runs_and_matches_the_library() {
    let rules = examples().join("web.rules");
    let trace = examples().join("web.trace");
    let out = sched(&rules, &trace);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    // rr: the head of the kernel list is the server added last.
    assert!(
        stdout.starts_with(
            "203.0.113.7:40001 -> 10.0.0.3:8080\n203.0.113.8:40002 -> 10.0.0.2:8080\n"
        ),
        "{stdout}"
    );
    let mut lib = Vec::new();
    lvs_sim::sched_cmd::run_text(
        &std::fs::read_to_string(&rules).unwrap(),
        &std::fs::read_to_string(&trace).unwrap(),
        &mut lib,
    )
    .unwrap();
    assert_eq!(stdout.as_bytes(), lib.as_slice());
}

#[test]
fn malformed_trace_names_file_line_and_column() {
    let rules = examples().join("web.rules");
    let trace = scratch("bad.trace", "at 1\nsyn 203.0.113.7:1 192.0.2.10:80 extra\n");
    let out = sched(&rules, &trace);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "lvs-sim: {}:2:33: unexpected extra field \"extra\"\n",
            trace.display()
        )
    );
}

#[test]
fn malformed_rules_name_the_rules_file() {
    let rules = scratch("bad.rules", "-A -t 10.0.0.1:80 -s nosuch\n");
    let trace = scratch("empty.trace", "");
    let out = sched(&rules, &trace);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "lvs-sim: {}:1:22: unknown scheduler",
            rules.display()
        )),
        "{stderr}"
    );
}

#[test]
fn refused_rule_stops_with_status_1() {
    let rules = examples().join("web.rules");
    let trace = scratch(
        "refused.trace",
        "syn 203.0.113.7:1 192.0.2.10:80\nrule -d -t 192.0.2.10:80 -r 10.9.9.9:8080\nsyn 203.0.113.7:2 192.0.2.10:80\n",
    );
    let out = sched(&rules, &trace);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "203.0.113.7:1 -> 10.0.0.3:8080\n"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "lvs-sim: {}:2:6: rule refused: no real server 10.9.9.9:8080",
            trace.display()
        )),
        "{stderr}"
    );
}

#[test]
fn missing_file_and_usage_errors() {
    let out = sched(
        Path::new("/nonexistent/rules"),
        &examples().join("web.trace"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .starts_with("lvs-sim: /nonexistent/rules: "));
    let out = bin().args(["sched", "--rules", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("--trace"));
    let out = bin().arg("nosuch").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_documents_the_trace_language() {
    let out = bin().args(["sched", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "--rules",
        "--trace",
        "reply-fin",
        "tcp-fwmark",
        "-> none",
        "list -c",
        "save",
    ] {
        assert!(help.contains(word), "{word} missing from\n{help}");
    }
    let out = bin().arg("--help").output().unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("sched"));
}

/// With room for one entry, an established connection cannot be evicted (only embryonic ones
/// can), so a second flow is dropped while the first goes on.
#[test]
fn full_table_drops_new_flows() {
    let rules = examples().join("web.rules");
    let trace = scratch(
        "full.trace",
        "syn 203.0.113.7:1 192.0.2.10:80\nack 203.0.113.7:1 192.0.2.10:80\nsyn 203.0.113.7:2 192.0.2.10:80\nsyn 203.0.113.7:1 192.0.2.10:80\n",
    );
    let out = bin()
        .arg("sched")
        .arg("--rules")
        .arg(&rules)
        .arg("--trace")
        .arg(&trace)
        .args(["--conn-capacity", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "203.0.113.7:1 -> 10.0.0.3:8080\n203.0.113.7:2 -> drop\n203.0.113.7:1 -> 10.0.0.3:8080\n"
    );
    let out = bin()
        .args([
            "sched",
            "--rules",
            "r",
            "--trace",
            "t",
            "--conn-capacity",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
