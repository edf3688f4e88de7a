//! Replications in parallel (rayon), and the experiments built on them: compare schedulers,
//! sweep the offered load, plan the number of servers.
//!
//! Each replication has its own random streams derived from the scenario's seed and its index,
//! and results are gathered in replication order, so the output is the same byte for byte
//! whatever the number of threads.

use std::sync::atomic::{AtomicU64, Ordering};

use lvs_core::rules::{Command, DestConfig, RuleSet};
use lvs_core::sched::SchedKind;
use rayon::prelude::*;
use serde::Serialize;

use crate::engine::Engine;
use crate::model::Model;
use crate::results::{Est, RunResult, Summary};

/// Progress of a batch of replications: the sum of each replication's fraction done, in
/// millionths (for a progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    done: Vec<AtomicU64>,
}

impl Progress {
    /// Room for `n` replications.
    pub fn new(n: usize) -> Self {
        Progress {
            done: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    /// Fraction done over all replications.
    pub fn fraction(&self) -> f64 {
        if self.done.is_empty() {
            return 1.0;
        }
        self.done
            .iter()
            .map(|a| a.load(Ordering::Relaxed) as f64 / 1e6)
            .sum::<f64>()
            / self.done.len() as f64
    }
}

/// Runs `reps` replications of `m` in parallel and returns them in order.
pub fn replicate(
    m: &Model,
    reps: u32,
    progress: Option<&Progress>,
) -> Result<Vec<RunResult>, String> {
    (0..reps)
        .into_par_iter()
        .map(|r| {
            let cb = progress.and_then(|p| p.done.get(r as usize)).map(|a| {
                move |f: f64| a.store((f.clamp(0.0, 1.0) * 1e6) as u64, Ordering::Relaxed)
            });
            let res = match &cb {
                Some(cb) => Engine::new(m, r).run(Some(cb)),
                None => Engine::new(m, r).run(None),
            };
            if let Some(a) = progress.and_then(|p| p.done.get(r as usize)) {
                a.store(1_000_000, Ordering::Relaxed);
            }
            res
        })
        .collect()
}

/// Runs the scenario's replications and summarises them.
pub fn run(m: &Model, label: &str, progress: Option<&Progress>) -> Result<Summary, String> {
    let runs = replicate(m, m.scenario.replications, progress)?;
    Ok(Summary::of(&m.name, label, runs))
}

/// The scenario under each scheduler (every service's scheduler replaced).
pub fn compare(
    m: &Model,
    scheds: &[SchedKind],
    progress: Option<&Progress>,
) -> Result<Vec<Summary>, String> {
    let models: Vec<Model> = scheds.iter().map(|k| m.with_scheduler(*k)).collect();
    let reps = m.scenario.replications;
    // One flat parallel batch: scheduler-major, replication-minor.
    let jobs: Vec<(usize, u32)> = (0..models.len())
        .flat_map(|i| (0..reps).map(move |r| (i, r)))
        .collect();
    let out: Vec<Result<RunResult, String>> = jobs
        .par_iter()
        .enumerate()
        .map(|(j, &(i, r))| {
            let slot = progress.and_then(|p| p.done.get(j));
            let cb = slot.map(|a| {
                move |f: f64| a.store((f.clamp(0.0, 1.0) * 1e6) as u64, Ordering::Relaxed)
            });
            let res = match &cb {
                Some(cb) => Engine::new(&models[i], r).run(Some(cb)),
                None => Engine::new(&models[i], r).run(None),
            };
            if let Some(a) = slot {
                a.store(1_000_000, Ordering::Relaxed);
            }
            res
        })
        .collect();
    let mut it = out.into_iter();
    let mut sums = Vec::new();
    for (i, k) in scheds.iter().enumerate() {
        let runs: Result<Vec<_>, _> = (&mut it).take(reps as usize).collect();
        sums.push(Summary::of(&models[i].name, k.name(), runs?));
    }
    Ok(sums)
}

/// One point of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint {
    /// Scheduler.
    pub scheduler: String,
    /// Load factor applied to every arrival rate.
    pub factor: f64,
    /// Offered load (work arriving / capacity).
    pub offered_load: f64,
    /// p99 of the first service (ms).
    pub p99: Est,
    /// Mean response time (ms).
    pub mean: Est,
    /// Failed fraction of connections.
    pub failed: Est,
}

/// p99 against offered load for each scheduler: every arrival rate is multiplied by each
/// factor in turn.
pub fn sweep(
    m: &Model,
    scheds: &[SchedKind],
    factors: &[f64],
    progress: Option<&Progress>,
) -> Result<Vec<SweepPoint>, String> {
    let mut pts = Vec::new();
    let mut cases = Vec::new();
    for k in scheds {
        for f in factors {
            cases.push((*k, *f));
        }
    }
    let models: Vec<Model> = cases
        .iter()
        .map(|(k, f)| m.with_scheduler(*k).with_load_factor(*f))
        .collect();
    let reps = m.scenario.replications;
    let jobs: Vec<(usize, u32)> = (0..models.len())
        .flat_map(|i| (0..reps).map(move |r| (i, r)))
        .collect();
    let out: Vec<Result<RunResult, String>> = jobs
        .par_iter()
        .enumerate()
        .map(|(j, &(i, r))| {
            let res = Engine::new(&models[i], r).run(None);
            if let Some(a) = progress.and_then(|p| p.done.get(j)) {
                a.store(1_000_000, Ordering::Relaxed);
            }
            res
        })
        .collect();
    let mut it = out.into_iter();
    for (i, (k, f)) in cases.iter().enumerate() {
        let runs: Vec<RunResult> = (&mut it).take(reps as usize).collect::<Result<_, _>>()?;
        let e = |g: &dyn Fn(&RunResult) -> f64| Est::of(&runs.iter().map(g).collect::<Vec<_>>());
        pts.push(SweepPoint {
            scheduler: k.name().to_string(),
            factor: *f,
            offered_load: models[i].offered_load(),
            p99: e(&|r| r.services[0].latency.p99),
            mean: e(&|r| r.services[0].latency.mean),
            failed: e(&|r| {
                let s = &r.services[0];
                s.failed.total() as f64 / s.connections.max(1) as f64
            }),
        });
    }
    Ok(pts)
}

/// The answer of [`plan`].
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The objective: p99 at most this (ms).
    pub p99_target_ms: f64,
    /// Servers tried and what they gave (p99 upper CI bound, ms).
    pub tried: Vec<(usize, Est)>,
    /// The fewest servers meeting the objective (its p99's upper 95 % bound under the
    /// target), if any tried did.
    pub servers: Option<usize>,
}

/// The same model with `n` real servers in every service: the first real server of each
/// service is the template; copies get consecutive addresses after the last one.
pub fn with_servers(m: &Model, n: usize) -> Model {
    let mut out = m.clone();
    let mut rules = RuleSet::new();
    let _ = rules.apply(&Command::SetTimeouts(m.rules.timeouts()));
    let mut servers = Vec::new();
    for (cfg, dests) in m.rules.services() {
        let _ = rules.apply(&Command::AddService(cfg.clone()));
        let Some(t) = dests.last() else { continue };
        let tmpl = m
            .servers
            .iter()
            .find(|s| s.addr.ip() == t.addr && s.addr.port() == t.port)
            .cloned();
        for i in 0..n {
            let addr = match t.addr {
                std::net::IpAddr::V4(a) => std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                    a.to_bits().wrapping_add(i as u32),
                )),
                std::net::IpAddr::V6(a) => {
                    std::net::IpAddr::V6(std::net::Ipv6Addr::from(a.to_bits() + i as u128))
                }
            };
            let d = DestConfig { addr, ..*t };
            let _ = rules.apply(&Command::AddDest(cfg.key, d));
            if let Some(mut s) = tmpl.clone() {
                s.addr = std::net::SocketAddr::new(addr, t.port);
                if !servers
                    .iter()
                    .any(|x: &crate::model::ServerModel| x.addr == s.addr)
                {
                    servers.push(s);
                }
            }
        }
    }
    out.rules = rules;
    out.servers = servers;
    out
}

/// Finds the fewest real servers (copies of each service's first server) for which the first
/// service's p99 response time, upper 95 % bound over the replications, is at most
/// `p99_ms`, searching `1..=max`.
pub fn plan(m: &Model, p99_ms: f64, max: usize) -> Result<Plan, String> {
    let mut tried = Vec::new();
    let ok = |e: &Est| e.mean + e.ci95 <= p99_ms;
    let eval = |n: usize, tried: &mut Vec<(usize, Est)>| -> Result<Est, String> {
        if let Some((_, e)) = tried.iter().find(|(k, _)| *k == n) {
            return Ok(*e);
        }
        let mm = with_servers(m, n);
        let runs = replicate(&mm, m.scenario.replications, None)?;
        let v: Vec<f64> = runs
            .iter()
            .map(|r| {
                let s = &r.services[0];
                // A failed connection is worse than any latency target.
                if s.failed.total() * 1000 > s.connections {
                    f64::INFINITY
                } else {
                    s.latency.p99
                }
            })
            .collect();
        let e = if v.iter().any(|x| x.is_infinite()) {
            Est {
                mean: f64::INFINITY,
                ci95: 0.0,
            }
        } else {
            Est::of(&v)
        };
        tried.push((n, e));
        Ok(e)
    };
    // Exponential search for a feasible count, then bisection.
    let mut hi = 1;
    while hi <= max && !ok(&eval(hi, &mut tried)?) {
        hi *= 2;
    }
    if hi > max {
        if !ok(&eval(max, &mut tried)?) {
            tried.sort_by_key(|x| x.0);
            return Ok(Plan {
                p99_target_ms: p99_ms,
                tried,
                servers: None,
            });
        }
        hi = max;
    }
    let mut lo = hi / 2; // infeasible (or 0)
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if ok(&eval(mid, &mut tried)?) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    tried.sort_by_key(|x| x.0);
    Ok(Plan {
        p99_target_ms: p99_ms,
        tried,
        servers: Some(hi),
    })
}
