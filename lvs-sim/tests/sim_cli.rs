//! The simulator's commands through the `lvs-sim` binary.

use std::path::Path;
use std::process::Command;

const SCENARIO: &str = r#"
duration = 20.0
warmup = 2.0
replications = 2
rules = """
-A -t 192.0.2.10:80 -s wlc
-a -t 192.0.2.10:80 -r 10.0.0.1:80 -m
-a -t 192.0.2.10:80 -r 10.0.0.2:80 -m
"""
[[workload]]
service = "192.0.2.10:80"
arrival = { kind = "poisson", rate = 50.0 }
work = { kind = "exp", mean = 0.01 }
[[server]]
addr = "10.0.0.2:80"
failures = [{ at = 8.0, repair = 12.0 }]
"#;

fn dir(name: &str) -> std::path::PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("lvs-sim-sim-cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lvs-sim"))
}

#[test]
fn run_writes_table_json_and_report() {
    let d = dir("run");
    let f = d.join("s.toml");
    std::fs::write(&f, SCENARIO).unwrap();
    let out = bin()
        .arg("run")
        .arg(&f)
        .arg("--out")
        .arg(d.join("r"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("192.0.2.10:80") && text.contains("p99.9"),
        "{text}"
    );
    assert!(
        text.contains("sent to a dead server before detection"),
        "{text}"
    );
    for f in [
        "summary.txt",
        "results.json",
        "timeseries-wlc.csv",
        "report-wlc.svg",
    ] {
        let p = d.join("r").join(f);
        assert!(
            std::fs::metadata(&p).unwrap().len() > 100,
            "{}",
            p.display()
        );
    }
    let svg = std::fs::read_to_string(d.join("r").join("report-wlc.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("utilisation per real server"));
    // --json is JSON, the same twice.
    let j1 = bin().arg("run").arg(&f).arg("--json").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&j1.stdout).unwrap();
    assert_eq!(v[0]["replications"], 2);
    let j3 = bin()
        .arg("run")
        .arg(&f)
        .arg("--json")
        .arg("--threads")
        .arg("1")
        .output()
        .unwrap();
    assert_eq!(j1.stdout, j3.stdout);
}

#[test]
fn errors_name_file_line_and_column() {
    let d = dir("err");
    let f = d.join("bad.toml");
    std::fs::write(&f, SCENARIO.replace("rate = 50.0", "rate = 0.0")).unwrap();
    let out = bin().arg("run").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("bad.toml: line 12, column 11: rate must be > 0"),
        "{err}"
    );
}

#[test]
fn compare_and_sweep() {
    let d = dir("cmp");
    let f = d.join("s.toml");
    std::fs::write(&f, SCENARIO.replace("duration = 20.0", "duration = 8.0")).unwrap();
    let out = bin()
        .arg("compare")
        .arg(&f)
        .args(["--schedulers", "rr,lc"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("rr ")) && text.lines().any(|l| l.starts_with("lc "))
    );
    let out = bin()
        .arg("sweep")
        .arg(&f)
        .args([
            "--schedulers",
            "rr,twos",
            "--loads",
            "0.5,1.0",
            "--replications",
            "1",
            "--out",
        ])
        .arg(d.join("sw"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(d.join("sw").join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(std::fs::read_to_string(d.join("sw").join("sweep.svg"))
        .unwrap()
        .contains("twos"));
}

#[test]
fn plan_finds_the_fewest_servers() {
    // 150/s of 10 ms work: at least 2 servers; p99 <= 60 ms needs a few more.
    let d = dir("plan");
    let f = d.join("s.toml");
    let text = SCENARIO.replace("rate = 50.0", "rate = 150.0").replace(
        "[[server]]\naddr = \"10.0.0.2:80\"\nfailures = [{ at = 8.0, repair = 12.0 }]\n",
        "",
    );
    std::fs::write(&f, text).unwrap();
    let out = bin()
        .arg("plan")
        .arg(&f)
        .args(["--p99-ms", "60", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = v["servers"].as_u64().unwrap();
    assert!((3..=8).contains(&n), "{v}");
    // One fewer does not meet the objective.
    let tried = v["tried"].as_array().unwrap();
    let below = tried.iter().find(|t| t[0].as_u64() == Some(n - 1)).unwrap();
    assert!(below[1]["mean"]
        .as_f64()
        .is_none_or(|m| m + below[1]["ci95"].as_f64().unwrap() > 60.0));
}
