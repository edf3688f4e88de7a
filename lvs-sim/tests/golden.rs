//! Golden outputs: every scenario shipped in `lvs-sim/scenarios/` run through the `lvs-sim`
//! binary (`run SCENARIO --json --threads 1`) must print exactly the JSON stored in
//! `tests/golden/<name>.json`. The simulator is deterministic (same scenario and seed, same
//! bytes), so any difference is a change in what the simulation computes: a scheduling
//! decision, a timer, a random draw, a statistic. A deliberate change regenerates the files
//! with `LVS_UPDATE_GOLDEN=1 cargo test -p lvs-sim --test golden` and shows up in review as
//! the diff of the JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_scenario_prints_its_golden_json() {
    let update = std::env::var_os("LVS_UPDATE_GOLDEN").is_some();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut differ = Vec::new();
    let list = scenarios();
    assert!(list.len() >= 6, "scenarios: {list:?}");
    for s in &list {
        let out = Command::new(env!("CARGO_BIN_EXE_lvs-sim"))
            .args(["run", "--json", "--threads", "1"])
            .arg(s)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            s.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let name = s.file_stem().unwrap().to_string_lossy().into_owned();
        let file = golden.join(format!("{name}.json"));
        if update {
            std::fs::write(&file, &out.stdout).unwrap();
            continue;
        }
        let want = std::fs::read(&file)
            .unwrap_or_else(|e| panic!("{}: {e} (LVS_UPDATE_GOLDEN=1 writes it)", file.display()));
        if want != out.stdout {
            // The first differing line, to say where.
            let (w, g) = (
                String::from_utf8_lossy(&want),
                String::from_utf8_lossy(&out.stdout),
            );
            let at = w
                .lines()
                .zip(g.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(w.lines().count().min(g.lines().count()));
            differ.push(format!("{name}: first difference at line {}", at + 1));
        }
    }
    assert!(
        differ.is_empty(),
        "golden outputs differ:\n{}",
        differ.join("\n")
    );
}
