//! Helpers shared by the simulator's tests against queueing theory (`queueing.rs`,
//! `theory.rs`): a scenario run, and the comparison of an estimate with its theory.
// Each test crate uses its own subset.
#![allow(dead_code)]

use lvs_sim::experiments;
use lvs_sim::model::Model;
use lvs_sim::results::{Est, Summary};

/// Runs the scenario `text` (TOML) with every replication.
pub fn run(text: &str) -> Summary {
    let m = Model::from_toml(text, None).unwrap_or_else(|e| panic!("{e}\n{text}"));
    experiments::run(&m, "test", None).unwrap()
}

/// Asserts that the estimate `e` is within 2.5 times its 95 % confidence half-width, plus
/// `allowance` times the theory, of `theory`, and that its interval is informative (narrower
/// than 15 % of the theory), or the comparison proves nothing.
pub fn close(what: &str, e: Est, theory: f64, allowance: f64) {
    let tol = 2.5 * e.ci95 + allowance * theory;
    println!(
        "{what}: simulated {:.5} ± {:.5}, theory {theory:.5}",
        e.mean, e.ci95
    );
    assert!(
        (e.mean - theory).abs() <= tol,
        "{what}: simulated {} ± {} vs theory {theory} (tolerance {tol})",
        e.mean,
        e.ci95
    );
    assert!(e.ci95 < 0.15 * theory, "{what}: CI too wide: {e:?}");
}
