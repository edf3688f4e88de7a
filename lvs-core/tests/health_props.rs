//! Property tests for the health monitor: random configurations, random probe results and
//! latencies (including probes that never answer) and random operator changes.
//!
//! - every rule command applies to a real `RuleSet` (never adds an existing dest, never
//!   edits or deletes a missing one), and the rules always match the monitor's view and the
//!   truth table of `HealthMonitor`;
//! - the quorum state respects the hysteresis bounds;
//! - time always moves forward (no probe or deadline left in the past);
//! - once every probe succeeds, every server is up again at its configured weight.

use std::net::IpAddr;

use lvs_core::health::*;
use lvs_core::rules::{Command, DestConfig, RuleSet, ServiceKey};
use lvs_core::time::{Duration, Instant};
use proptest::prelude::*;
use rand::SeedableRng;

#[derive(Clone, Debug)]
struct CheckGen {
    kind: CheckKind,
    retry: u32,
    alpha: bool,
    dynamic: bool,
    delay_loop_s: u64,
    dbr_ms: u64,
    timeout_s: u64,
    warmup_s: u64,
    urls: usize,
}

#[derive(Clone, Debug)]
struct ServerGen {
    weight: u32,
    inhibit: bool,
    admin: AdminState,
    checks: Vec<CheckGen>,
}

#[derive(Clone, Debug)]
struct ServiceGen {
    quorum: u32,
    hysteresis: u32,
    sorry: Option<u32>,
    sorry_inhibit: bool,
    servers: Vec<ServerGen>,
}

fn admin() -> impl Strategy<Value = AdminState> {
    prop_oneof![
        4 => Just(AdminState::Online),
        1 => Just(AdminState::Draining),
        1 => Just(AdminState::Offline),
    ]
}

fn check_gen() -> impl Strategy<Value = CheckGen> {
    (
        prop_oneof![
            Just(CheckKind::Tcp),
            Just(CheckKind::Http),
            Just(CheckKind::Misc),
            Just(CheckKind::Smtp),
            Just(CheckKind::Dns),
        ],
        0u32..3,
        any::<bool>(),
        any::<bool>(),
        1u64..8,
        0u64..3000,
        1u64..6,
        (0u64..5, 1usize..4),
    )
        .prop_map(
            |(kind, retry, alpha, dynamic, delay_loop_s, dbr_ms, timeout_s, (warmup_s, urls))| {
                CheckGen {
                    kind,
                    retry,
                    alpha,
                    dynamic,
                    delay_loop_s,
                    dbr_ms,
                    timeout_s,
                    warmup_s,
                    urls,
                }
            },
        )
}

fn server_gen() -> impl Strategy<Value = ServerGen> {
    (
        0u32..6,
        any::<bool>(),
        admin(),
        prop::collection::vec(check_gen(), 0..3),
    )
        .prop_map(|(weight, inhibit, admin, checks)| ServerGen {
            weight,
            inhibit,
            admin,
            checks,
        })
}

fn service_gen() -> impl Strategy<Value = ServiceGen> {
    (
        1u32..6,
        0u32..3,
        prop::option::of(0u32..4),
        any::<bool>(),
        prop::collection::vec(server_gen(), 1..5),
    )
        .prop_map(
            |(quorum, hysteresis, sorry, sorry_inhibit, servers)| ServiceGen {
                quorum,
                hysteresis,
                sorry,
                sorry_inhibit,
                servers,
            },
        )
}

fn key(si: usize) -> ServiceKey {
    ServiceKey::tcp(IpAddr::from([192, 0, 2, 10 + si as u8]), 80)
}

fn dest(ri: usize, weight: u32) -> DestConfig {
    DestConfig {
        weight,
        ..DestConfig::new(IpAddr::from([10, 1, 0, 1 + ri as u8]), 80)
    }
}

fn sorry_dest(weight: u32) -> DestConfig {
    DestConfig {
        weight,
        ..DestConfig::new(IpAddr::from([10, 9, 9, 9]), 80)
    }
}

fn build(services: &[ServiceGen]) -> Vec<ServiceSpec> {
    services
        .iter()
        .enumerate()
        .map(|(si, g)| ServiceSpec {
            key: key(si),
            settings: ServiceHealthSettings {
                quorum: g.quorum,
                hysteresis: g.hysteresis,
                sorry_server: g.sorry.map(sorry_dest),
                sorry_server_inhibit: g.sorry_inhibit,
                ..ServiceHealthSettings::default()
            },
            servers: g
                .servers
                .iter()
                .enumerate()
                .map(|(ri, r)| ServerSettings {
                    dest: dest(ri, r.weight),
                    inhibit_on_failure: r.inhibit,
                    notify_up: None,
                    notify_down: None,
                    admin: r.admin,
                    checkers: r
                        .checks
                        .iter()
                        .map(|c| {
                            let mut s = CheckSettings::new(c.kind)
                                .with_delay_loop(Duration::from_secs(c.delay_loop_s));
                            s.retry = c.retry;
                            s.alpha = c.alpha;
                            s.dynamic_weight = c.dynamic;
                            s.delay_before_retry = Duration::from_millis(c.dbr_ms);
                            s.connect_timeout = Duration::from_secs(c.timeout_s);
                            s.warmup = Duration::from_secs(c.warmup_s);
                            s.urls = c.urls;
                            s
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

struct World {
    mon: HealthMonitor,
    rules: RuleSet,
    gens: Vec<ServiceGen>,
    pending: Vec<(Instant, ProbeId, ProbeOutcome)>,
}

impl World {
    fn drain(&mut self) -> Result<(), TestCaseError> {
        while let Some(a) = self.mon.poll_action() {
            if let Action::Rule(cmd) = &a {
                prop_assert!(
                    matches!(
                        cmd,
                        Command::AddDest(..) | Command::EditDest(..) | Command::DeleteDest { .. }
                    ),
                    "unexpected {cmd:?}"
                );
                if let Err(e) = self.rules.apply(cmd) {
                    return Err(TestCaseError::fail(format!("{cmd:?}: {e}")));
                }
            }
        }
        Ok(())
    }

    /// Rules = monitor view = truth table; quorum within the hysteresis bounds.
    fn check(&self) -> Result<(), TestCaseError> {
        for (si, g) in self.gens.iter().enumerate() {
            let dests = self.rules.service(&key(si)).unwrap().1;
            let up = self.mon.quorum_up(si).unwrap();
            let sorry_active = g.sorry.is_some() && !up;
            let mut live = 0u64;
            for (ri, r) in g.servers.iter().enumerate() {
                let st = self
                    .mon
                    .server_status(ServerId {
                        service: si,
                        server: ri,
                    })
                    .unwrap();
                let in_rules = dests
                    .iter()
                    .find(|d| d.addr == dest(ri, 0).addr)
                    .map(|d| d.weight);
                prop_assert_eq!(in_rules, st.installed_weight);
                let down = if r.inhibit { Some(0) } else { None };
                let want = match st.admin {
                    AdminState::Offline => None,
                    AdminState::Draining if st.alive => Some(0),
                    AdminState::Draining => down,
                    AdminState::Online if st.alive && !sorry_active => Some(st.effective_weight),
                    AdminState::Online => down,
                };
                prop_assert_eq!(st.installed_weight, want, "service {} server {}", si, ri);
                if st.alive && st.admin == AdminState::Online {
                    live += u64::from(st.effective_weight);
                }
            }
            let sorry_rule = dests
                .iter()
                .find(|d| d.addr == sorry_dest(0).addr)
                .map(|d| d.weight);
            prop_assert_eq!(sorry_rule, self.mon.sorry_installed_weight(si));
            let want_sorry = match g.sorry {
                None => None,
                Some(w) if sorry_active => Some(w),
                Some(_) if g.sorry_inhibit => Some(0),
                Some(_) => None,
            };
            prop_assert_eq!(sorry_rule, want_sorry);
            // Nothing else in the service.
            prop_assert_eq!(
                dests.len(),
                installed_count(&self.mon, si, g) + usize::from(sorry_rule.is_some())
            );
            let (q, h) = (i64::from(g.quorum), i64::from(g.hysteresis));
            let live = live as i64;
            if up {
                prop_assert!(live > 0 && live >= q - h, "up with live {}", live);
            } else {
                prop_assert!(live < q + h, "down with live {}", live);
            }
        }
        Ok(())
    }

    /// One step of the event loop at `now`; returns the next event time.
    fn step(
        &mut self,
        now: Instant,
        outcome: &mut dyn FnMut(&ProbeRequest) -> Option<(Duration, ProbeOutcome)>,
    ) -> Result<Option<Instant>, TestCaseError> {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].0 <= now {
                let (_, id, out) = self.pending.remove(i);
                let _ = self.mon.handle_probe_result(now, id, out);
                self.drain()?;
                self.check()?;
            } else {
                i += 1;
            }
        }
        self.mon.handle_timeout(now);
        self.drain()?;
        self.check()?;
        while let Some(p) = self.mon.poll_probe(now) {
            prop_assert_eq!(p.deadline > now, true);
            if let Some((lat, out)) = outcome(&p) {
                if lat == Duration::ZERO {
                    self.mon.handle_probe_result(now, p.id, out).unwrap();
                    self.drain()?;
                    self.check()?;
                } else {
                    self.pending.push((now + lat, p.id, out));
                }
            }
        }
        let t = self.mon.poll_timeout();
        if let Some(t) = t {
            prop_assert!(t > now, "timer {:?} not after {:?}", t, now);
        }
        Ok([t, self.pending.iter().map(|p| p.0).min()]
            .into_iter()
            .flatten()
            .min())
    }
}

/// Servers with a rule.
fn installed_count(mon: &HealthMonitor, si: usize, g: &ServiceGen) -> usize {
    (0..g.servers.len())
        .filter(|&ri| {
            mon.server_status(ServerId {
                service: si,
                server: ri,
            })
            .unwrap()
            .installed_weight
            .is_some()
        })
        .count()
}

fn outcome_of(b: u8) -> ProbeOutcome {
    match b % 8 {
        0..=2 => ProbeOutcome::Success,
        3 => ProbeOutcome::Failure(FailureReason::Refused),
        4 => ProbeOutcome::Timeout,
        5 => ProbeOutcome::ExitCode(1),
        6 => ProbeOutcome::ExitCode(b / 8 % 12),
        _ => ProbeOutcome::ExitCode(0),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn rule_changes_keep_the_rule_set_consistent(
        gens in prop::collection::vec(service_gen(), 1..3),
        results in prop::collection::vec((any::<u8>(), 0u8..8), 1..200),
        admin_ops in prop::collection::vec((0u64..120_000, 0usize..2, 0usize..4, admin()), 0..12),
        seed in any::<u64>(),
    ) {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let mon = HealthMonitor::new(Instant::ZERO, build(&gens), &mut rng).unwrap();
        let mut text = String::new();
        for si in 0..gens.len() {
            text.push_str(&format!("-A {} -s wlc\n", key(si)));
        }
        let mut w = World { mon, rules: RuleSet::from_text(&text).unwrap(), gens: gens.clone(), pending: Vec::new() };
        w.drain()?;
        w.check()?;

        // Phase 1: random results, latencies, lost probes and operator changes.
        let mut admin_ops = admin_ops;
        admin_ops.sort_by_key(|o| o.0);
        let mut ops = admin_ops.into_iter().peekable();
        let mut k = 0usize;
        let mut now = Instant::ZERO;
        let end = Instant::from_secs(120);
        let mut steps = 0;
        loop {
            steps += 1;
            prop_assert!(steps < 100_000, "no progress");
            while let Some(&(t, si, ri, st)) = ops.peek() {
                if Instant::from_millis(t) > now { break; }
                ops.next();
                let id = ServerId { service: si, server: ri };
                if si < gens.len() && ri < gens[si].servers.len() {
                    w.mon.set_admin_state(id, st).unwrap();
                    w.drain()?;
                    w.check()?;
                } else {
                    prop_assert_eq!(w.mon.set_admin_state(id, st), Err(HealthError::UnknownServer(id)));
                }
            }
            let mut answer = |_: &ProbeRequest| {
                let (b, lat) = results[k % results.len()];
                k += 1;
                match lat {
                    0..=4 => Some((Duration::ZERO, outcome_of(b))),
                    5 | 6 => Some((Duration::from_millis(u64::from(b) * 20), outcome_of(b))),
                    _ => None,
                }
            };
            let next = w.step(now, &mut answer)?;
            let next_op = ops.peek().map(|o| Instant::from_millis(o.0));
            match [next, next_op].into_iter().flatten().min() {
                Some(t) if t <= end => now = t,
                _ => break,
            }
        }

        // Phase 2: everyone online, every probe succeeds at once.
        now = end;
        for (si, g) in gens.iter().enumerate() {
            for ri in 0..g.servers.len() {
                w.mon.set_admin_state(ServerId { service: si, server: ri }, AdminState::Online).unwrap();
                w.drain()?;
                w.check()?;
            }
        }
        // Long enough for lost probes to time out (≤ 5.1 s), then for an HTTP checker with a
        // failed URL to see it answer and make a clean pass over up to 3 URLs (4 probes at
        // most delay_loop ≤ 7 s apart), or any other checker to run once.
        let end2 = end + Duration::from_secs(40);
        loop {
            steps += 1;
            prop_assert!(steps < 200_000, "no progress");
            let next = w.step(now, &mut |_| Some((Duration::ZERO, ProbeOutcome::Success)))?;
            match next {
                Some(t) if t <= end2 => now = t,
                _ => break,
            }
        }
        for (si, g) in gens.iter().enumerate() {
            let mut total = 0u64;
            for (ri, r) in g.servers.iter().enumerate() {
                let st = w.mon.server_status(ServerId { service: si, server: ri }).unwrap();
                prop_assert!(st.alive, "service {} server {} still down", si, ri);
                prop_assert_eq!(st.effective_weight, r.weight);
                total += u64::from(r.weight);
            }
            if total >= u64::from(g.quorum + g.hysteresis) {
                prop_assert_eq!(w.mon.quorum_up(si), Some(true));
            }
        }
    }
}
