//! Fuzz body of `sim_scenario`: arbitrary bytes as an `lvs-sim` scenario file.
//!
//! Invariants: parsing never panics; an error's line and column point inside the text (or are
//! 0 for a missing field); a scenario that names no file is compiled too, and if it would
//! simulate only a few connections it is run (bounded: at most 200 arrivals expected, 60
//! simulated seconds, one replication), which never panics either.

use lvs_sim::model::Model;
use lvs_sim::scenario::{Scenario, ScenarioError};

/// Fuzz entry point.
pub fn sim_scenario(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count() + 1;
    let check = |e: &ScenarioError| match e {
        ScenarioError::Syntax { line, .. }
        | ScenarioError::Invalid { line, .. }
        | ScenarioError::Unsupported { line, .. } => assert!(*line <= lines, "{e}"),
        _ => {}
    };
    let s = match Scenario::from_toml(text, None) {
        Ok(s) => s,
        Err(e) => return check(&e),
    };
    // Never read files named by fuzz input.
    let names_files = text.contains("file");
    if names_files {
        return;
    }
    let mut m = match Model::build(s, text, None) {
        Ok(m) => m,
        Err(e) => return check(&e),
    };
    let d = *m.scenario.duration.get_ref();
    let expected: f64 = m.workloads.iter().map(|w| w.arrival.mean_rate(d) * d).sum();
    let small = d <= 60.0
        && expected <= 200.0
        && m.servers.len() <= 16
        && m.scenario.director.conn_capacity <= 1 << 16
        && m.scenario
            .health
            .as_ref()
            .is_none_or(|h| h.delay_loop >= 0.5);
    if small {
        m.scenario.replications = 1;
        let _ = lvs_sim::experiments::run(&m, "fuzz", None);
    }
}
