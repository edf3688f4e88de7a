//! The simulator's behaviour: determinism, scenario errors, failures, health checking,
//! failover, backlog, arrival processes.
use lvs_sim::experiments;
use lvs_sim::model::Model;
use lvs_sim::results::Summary;
use lvs_sim::scenario::{Scenario, ScenarioError};

const BASE: &str = r#"
seed = 1
duration = 60.0
warmup = 5.0
replications = 3
rules = """
-A -t 192.0.2.10:80 -s wlc
-a -t 192.0.2.10:80 -r 10.0.0.1:80 -m -w 1
-a -t 192.0.2.10:80 -r 10.0.0.2:80 -m -w 2
"""
[[workload]]
service = "192.0.2.10:80"
arrival = { kind = "poisson", rate = 100.0 }
requests = { kind = "geometric", mean = 2.0 }
work = { kind = "exp", mean = 0.002 }
think = { kind = "exp", mean = 0.05 }
"#;

fn run(text: &str) -> Summary {
    let m = Model::from_toml(text, None).unwrap_or_else(|e| panic!("{e}"));
    experiments::run(&m, "t", None).unwrap()
}

fn json(s: &Summary) -> String {
    serde_json::to_string(s).unwrap() + &s.csv()
}

#[test]
fn byte_identical_whatever_the_thread_count() {
    let text = format!("{BASE}\n[server_defaults]\nmttf = 20.0\nmttr = 3.0\n");
    let m = Model::from_toml(&text, None).unwrap();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let kinds = [
        lvs_core::sched::SchedKind::Twos,
        lvs_core::sched::SchedKind::Lc,
    ];
    let a = one.install(|| experiments::compare(&m, &kinds, None).unwrap());
    let b = two.install(|| experiments::compare(&m, &kinds, None).unwrap());
    let (ja, jb): (String, String) = (a.iter().map(json).collect(), b.iter().map(json).collect());
    assert_eq!(ja, jb);
    // Replications differ from one another (independent streams).
    assert_ne!(
        serde_json::to_string(&a[0].runs[0].services).unwrap(),
        serde_json::to_string(&a[0].runs[1].services).unwrap()
    );
    // And another seed gives another result.
    let text2 = text.replace("seed = 1", "seed = 2");
    let c = run(&text2);
    assert_ne!(json(&c), json(&a[0]));
}

#[test]
fn errors_name_line_and_column() {
    let bad = BASE.replace("rate = 100.0", "rate = -3.0");
    let e = Model::from_toml(&bad, None).unwrap_err();
    let line = bad.lines().position(|l| l.contains("-3.0")).unwrap() + 1;
    match &e {
        ScenarioError::Invalid {
            line: l, column, ..
        } => {
            assert_eq!(*l, line, "{e}");
            assert_eq!(*column, 11, "{e}");
        }
        other => panic!("{other}"),
    }
    let bad = BASE.replace(
        "kind = \"exp\", mean = 0.002",
        "kind = \"exq\", mean = 0.002",
    );
    let e = Scenario::from_toml(&bad, None).unwrap_err();
    assert!(matches!(e, ScenarioError::Syntax { .. }), "{e}");
    assert!(e.to_string().contains("exq"), "{e}");
    let bad = BASE.replace("service = \"192.0.2.10:80\"", "service = \"192.0.2.11:80\"");
    let e = Model::from_toml(&bad, None).unwrap_err();
    assert!(
        e.to_string()
            .contains("no TCP virtual service 192.0.2.11:80"),
        "{e}"
    );
    let bad = format!("{BASE}\n[[server]]\naddr = \"10.9.9.9:80\"\nspeed = 2.0\n");
    let e = Model::from_toml(&bad, None).unwrap_err();
    assert!(e.to_string().contains("not a real server"), "{e}");
    let bad = BASE.replace("-s wlc", "-s nosuch");
    let e = Model::from_toml(&bad, None).unwrap_err();
    assert!(matches!(e, ScenarioError::Rules { .. }), "{e}");
    let bad = format!("{BASE}\n[failover]\nat = 10.0\nsync = 1\n");
    assert!(Model::from_toml(&bad, None).is_err());
    let bad = format!("{BASE}\nbogus = 1\n");
    assert!(Scenario::from_toml(&bad, None).is_err());
}

#[test]
fn the_director_counts_drive_wlc() {
    // wlc with weights 1 and 2 and identical servers: the heavier one gets about twice the
    // connections (the director's active counts decide).
    let s = run(BASE);
    let c1 = s
        .servers
        .iter()
        .find(|x| x.server == "10.0.0.1:80")
        .unwrap();
    let c2 = s
        .servers
        .iter()
        .find(|x| x.server == "10.0.0.2:80")
        .unwrap();
    let ratio = c2.connections.mean / c1.connections.mean;
    assert!(ratio > 1.3 && ratio < 3.0, "{ratio}");
    let v = &s.services[0];
    assert_eq!(v.failed.iter().map(|(_, e)| e.mean).sum::<f64>(), 0.0);
    assert!(v.availability.mean == 1.0);
    // ~100 conn/s x 55 s measured.
    assert!(
        (v.connections.mean - 5500.0).abs() < 400.0,
        "{:?}",
        v.connections
    );
}

#[test]
fn dead_server_until_health_check_detects_it() {
    // 10.0.0.2 dies at 20 s. Without health checks rr sends it every other connection, and
    // they all fail; with a 2 s delay_loop the director stops within a few seconds.
    let fail = "\n[[server]]\naddr = \"10.0.0.2:80\"\nfailures = [{ at = 20.0 }]\n";
    let base = BASE.replace("-s wlc", "-s rr");
    let no_check = run(&format!("{base}{fail}"));
    let checked = run(&format!(
        "{base}{fail}\n[health]\ndelay_loop = 2.0\nconnect_timeout = 1.0\nretry = 0\nwarmup = 0.0\n"
    ));
    let dead = |s: &Summary| s.services[0].failed[0].1.mean;
    assert_eq!(s_label(&no_check), "dead_server");
    // Unchecked: from 20 s to 60 s, half of 100/s.
    assert!(
        (dead(&no_check) - 2000.0).abs() < 200.0,
        "{}",
        dead(&no_check)
    );
    // Checked: detection within delay_loop + connect_timeout (3 s) at most ~2/3 of 100/s.
    assert!(
        dead(&checked) > 0.0 && dead(&checked) < 250.0,
        "{}",
        dead(&checked)
    );
    let run0 = &checked.runs[0];
    assert!(
        run0.log
            .iter()
            .any(|e| e.what.contains("health: 10.0.0.2:80 down") && e.t > 20.0 && e.t < 24.0),
        "{:?}",
        run0.log
    );
    // Connections being served at 20 s break.
    assert!(checked.services[0].failed[1].1.mean > 0.0);
}

fn s_label(s: &Summary) -> &str {
    &s.services[0].failed[0].0
}

#[test]
fn failover_without_sync_breaks_established_connections() {
    // Long connections (think time 1 s, 5 requests): at the failover many are established.
    let text = BASE
        .replace(
            "requests = { kind = \"geometric\", mean = 2.0 }",
            "requests = { kind = \"fixed\", n = 5 }",
        )
        .replace(
            "think = { kind = \"exp\", mean = 0.05 }",
            "think = { kind = \"deterministic\", value = 1.0 }",
        );
    let s = run(&format!("{text}\n[failover]\nat = 30.0\n"));
    let broken = s.services[0].failed[2].1.mean;
    assert_eq!(s.services[0].failed[2].0, "director_failover");
    // About rate x connection lifetime (4 s) = 400 are open at 30 s.
    assert!(broken > 250.0 && broken < 550.0, "{broken}");
    assert!(s.runs[0].log.iter().any(|e| e.what.contains("failover")));
    // New connections after the failover are fine: completed ~ total - broken.
    let v = &s.services[0];
    assert!(v.connections.mean - v.failed.iter().map(|(_, e)| e.mean).sum::<f64>() > 4500.0);
}

/// `(held, open, moved)` from the failover's log line.
fn failover_counts(s: &Summary, run: usize) -> (u64, u64, u64) {
    let e = s.runs[run]
        .log
        .iter()
        .find(|e| e.what.starts_with("director failover (sync)"))
        .expect("failover with sync logged");
    let nums: Vec<u64> = e
        .what
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    (nums[0], nums[1], nums[2])
}

#[test]
fn failover_with_sync_keeps_established_connections() {
    // The same long connections as without sync, through NAT (every reply through the director)
    // and through DR: synced connections (third client packet, ESTABLISHED) continue on the
    // backup director.
    let long = BASE
        .replace(
            "requests = { kind = \"geometric\", mean = 2.0 }",
            "requests = { kind = \"fixed\", n = 5 }",
        )
        .replace(
            "think = { kind = \"exp\", mean = 0.05 }",
            "think = { kind = \"deterministic\", value = 1.0 }",
        );
    for text in [long.clone(), long.replace(" -m ", " -g ")] {
        let without = run(&format!("{text}\n[failover]\nat = 30.0\n"));
        let with = run(&format!("{text}\n[failover]\nat = 30.0\nsync = true\n"));
        assert_eq!(with.services[0].failed[2].0, "director_failover");
        let broken_without = without.services[0].failed[2].1.mean;
        let broken_with = with.services[0].failed[2].1.mean;
        assert!(broken_without > 250.0, "{broken_without}");
        // Only connections younger than their third client packet (the second request, 1 s
        // after the first) are unknown to the backup: about rate x 1 s of the ~400 open.
        assert!(
            broken_with < broken_without * 0.4,
            "{broken_with} vs {broken_without}"
        );
        for r in 0..with.runs.len() {
            let (held, open, moved) = failover_counts(&with, r);
            // The backup holds most open connections, each on the master's real server.
            assert!(held * 2 > open && held <= open, "{held} of {open}");
            assert_eq!(moved, 0);
            // Every open connection the backup does not hold breaks, none it holds does.
            let broken = with.runs[r].services[0].failed.director_failover;
            assert!(broken <= open - held, "{broken} > {open} - {held}");
            assert!(broken * 2 >= open - held, "{broken} vs {open} - {held}");
        }
        let v = &with.services[0];
        let failed: f64 = v.failed.iter().map(|(_, e)| e.mean).sum();
        assert!(v.connections.mean - failed > 5000.0, "{failed}");
        // Deterministic: the same scenario gives the same bytes.
        let again = run(&format!("{text}\n[failover]\nat = 30.0\nsync = true\n"));
        assert_eq!(json(&with), json(&again));
    }
}

#[test]
fn backlog_full_refuses() {
    // One slow server, overloaded, backlog 5: refusals, and the queue stays bounded.
    let text = r#"
duration = 30.0
replications = 2
rules = """
-A -t 192.0.2.10:80 -s rr
-a -t 192.0.2.10:80 -r 10.0.0.1:80 -g
"""
[[workload]]
service = "192.0.2.10:80"
arrival = { kind = "constant", rate = 150.0 }
work = { kind = "deterministic", value = 0.01 }
[server_defaults]
backlog = 5
"#;
    let s = run(text);
    let refused = s.services[0].failed[3].1.mean;
    assert!(refused > 1000.0, "{refused}");
    assert!(s.servers[0].mean_queue.mean <= 6.0 + 1e-9);
    assert!(s.servers[0].utilisation.mean > 0.95);
}

#[test]
fn arrival_processes_have_their_rates() {
    for (arr, rate) in [
        (r#"{ kind = "constant", rate = 50.0 }"#, 50.0),
        (
            r#"{ kind = "onoff", rate = 100.0, on = 1.0, off = 1.0 }"#,
            50.0,
        ),
        (
            r#"{ kind = "schedule", points = [[0.0, 20.0], [27.5, 80.0]] }"#,
            50.0,
        ),
    ] {
        let text = BASE.replace(r#"{ kind = "poisson", rate = 100.0 }"#, arr);
        let s = run(&text);
        let measured = s.services[0].connections.mean / s.measured_secs;
        // onoff varies by period draws; the others are close.
        assert!((measured - rate).abs() < 0.2 * rate, "{arr}: {measured}");
    }
}

#[test]
fn trace_and_empirical_files() {
    let dir = std::env::temp_dir().join(format!("lvs-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut trace = String::from("time,client\n");
    for i in 0..500 {
        trace += &format!("{},198.51.100.{}\n", i as f64 * 0.1, i % 200 + 1);
    }
    std::fs::write(dir.join("arrivals.csv"), trace).unwrap();
    std::fs::write(dir.join("work.txt"), "# seconds\n0.001\n0.002\n0.003\n").unwrap();
    let text = BASE
        .replace(
            r#"{ kind = "poisson", rate = 100.0 }"#,
            r#"{ kind = "trace", file = "arrivals.csv" }"#,
        )
        .replace(
            r#"{ kind = "exp", mean = 0.002 }"#,
            r#"{ kind = "empirical", file = "work.txt" }"#,
        );
    let path = dir.join("s.toml");
    std::fs::write(&path, &text).unwrap();
    let m = Model::from_file(&path).unwrap();
    let s = experiments::run(&m, "t", None).unwrap();
    // 500 arrivals at 0..50 s, 450 after the 5 s warm-up.
    assert_eq!(s.services[0].connections.mean, 450.0);
    assert!(s.services[0].mean.mean < 4.0);
    std::fs::write(
        dir.join("arrivals.csv"),
        "0.5,198.51.100.1\n0.4,198.51.100.2\n",
    )
    .unwrap();
    let e = Model::from_file(&path).unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn example_scenarios_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    for p in names {
        Model::from_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        n += 1;
    }
    assert!(n >= 1);
}
