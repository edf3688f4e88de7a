//! Scripted timelines for the health monitor: probe results at given times, and the rule
//! changes and notifications expected, with their times. Every rule change is applied to a
//! real `RuleSet` and must succeed.

use std::net::IpAddr;

use lvs_core::health::*;
use lvs_core::rules::{Command, DestConfig, RuleSet, ServiceKey};
use lvs_core::time::{Duration, Instant};

/// An RNG that always returns the same value (drives the warmup draw).
struct Fixed(u64);
impl rand_core::RngCore for Fixed {
    fn next_u32(&mut self) -> u32 {
        self.0 as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0
    }
    fn fill_bytes(&mut self, d: &mut [u8]) {
        d.fill(0)
    }
}

fn s(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn key() -> ServiceKey {
    ServiceKey::tcp("192.0.2.10".parse().unwrap(), 80)
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 1, 0, last])
}

fn dest(last: u8, weight: u32) -> DestConfig {
    DestConfig {
        weight,
        ..DestConfig::new(ip(last), 80)
    }
}

/// A checker with no warmup, so the first probe is at exactly 1 s.
fn check(kind: CheckKind, delay_loop: u64) -> CheckSettings {
    let mut c = CheckSettings::new(kind).with_delay_loop(Duration::from_secs(delay_loop));
    c.warmup = Duration::ZERO;
    c
}

/// What happened, compactly, for comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Add(u8, u32),
    Edit(u8, u32),
    Del(u8),
    Up(usize),
    Down(usize),
    QUp,
    QDown,
}

fn last_octet(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(v) => v.octets()[3],
        IpAddr::V6(v) => v.octets()[15],
    }
}

/// Probe answers: given the probe and the time it starts, `Some((latency, outcome))`, or
/// `None` for a probe that never answers.
type Responder<'a> = dyn FnMut(&ProbeRequest, Instant) -> Option<(Duration, ProbeOutcome)> + 'a;

struct Sim {
    mon: HealthMonitor,
    rules: RuleSet,
    now: Instant,
    pending: Vec<(Instant, ProbeId, ProbeOutcome)>,
    /// (time, event)
    log: Vec<(u64, Ev)>,
    /// (start time in ms, server index, checker index)
    probes: Vec<(u64, usize, usize)>,
}

impl Sim {
    fn new(spec: ServiceSpec, rng: &mut dyn rand_core::RngCore) -> Sim {
        let rules = RuleSet::from_text("-A -t 192.0.2.10:80 -s wlc\n").unwrap();
        let mon = HealthMonitor::new(Instant::ZERO, vec![spec], rng).unwrap();
        let mut sim = Sim {
            mon,
            rules,
            now: Instant::ZERO,
            pending: Vec::new(),
            log: Vec::new(),
            probes: Vec::new(),
        };
        sim.drain();
        sim
    }

    fn with(spec: ServiceSpec) -> Sim {
        Sim::new(spec, &mut Fixed(0))
    }

    fn drain(&mut self) {
        let t = self.now.as_nanos() / 1_000_000_000;
        while let Some(a) = self.mon.poll_action() {
            let ev = match &a {
                Action::Rule(cmd) => {
                    self.rules
                        .apply(cmd)
                        .unwrap_or_else(|e| panic!("{cmd:?} at {t}s: {e}"));
                    match cmd {
                        Command::AddDest(_, d) => Ev::Add(last_octet(d.addr), d.weight),
                        Command::EditDest(_, d) => Ev::Edit(last_octet(d.addr), d.weight),
                        Command::DeleteDest { addr, .. } => Ev::Del(last_octet(*addr)),
                        other => panic!("unexpected command {other:?}"),
                    }
                }
                Action::Notify(Notification::ServerUp { server, .. }) => Ev::Up(server.server),
                Action::Notify(Notification::ServerDown { server, .. }) => Ev::Down(server.server),
                Action::Notify(Notification::QuorumUp { .. }) => Ev::QUp,
                Action::Notify(Notification::QuorumDown { .. }) => Ev::QDown,
            };
            self.log.push((t, ev));
        }
    }

    /// Runs the event loop until `end` (inclusive).
    fn run(&mut self, end: Instant, respond: &mut Responder<'_>) {
        loop {
            // Deliver results due now, then deadlines, then start due probes.
            let now = self.now;
            let mut i = 0;
            while i < self.pending.len() {
                if self.pending[i].0 <= now {
                    let (_, id, out) = self.pending.remove(i);
                    // A late result (after the monitor's own timeout) is refused.
                    let _ = self.mon.handle_probe_result(now, id, out);
                    self.drain();
                } else {
                    i += 1;
                }
            }
            self.mon.handle_timeout(now);
            self.drain();
            while let Some(p) = self.mon.poll_probe(now) {
                self.probes
                    .push((now.as_nanos() / 1_000_000, p.server.server, p.checker));
                if let Some((lat, out)) = respond(&p, now) {
                    if lat == Duration::ZERO {
                        self.mon.handle_probe_result(now, p.id, out).unwrap();
                        self.drain();
                    } else {
                        self.pending.push((now + lat, p.id, out));
                    }
                }
            }
            let next = [
                self.mon.poll_timeout(),
                self.pending.iter().map(|p| p.0).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => {
                    assert!(t >= self.now, "time went backwards");
                    self.now = t;
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
    }

    fn dest_weight(&self, last: u8) -> Option<u32> {
        self.rules
            .service(&key())
            .unwrap()
            .1
            .iter()
            .find(|d| d.addr == ip(last))
            .map(|d| d.weight)
    }

    fn events_after(&self, t: u64) -> Vec<(u64, Ev)> {
        self.log.iter().filter(|e| e.0 > t).cloned().collect()
    }

    fn probe_times(&self, server: usize) -> Vec<u64> {
        self.probes
            .iter()
            .filter(|p| p.1 == server)
            .map(|p| p.0 / 1000)
            .collect()
    }
}

fn spec(servers: Vec<ServerSettings>, settings: ServiceHealthSettings) -> ServiceSpec {
    ServiceSpec {
        key: key(),
        settings,
        servers,
    }
}

fn fail() -> ProbeOutcome {
    ProbeOutcome::Failure(FailureReason::Refused)
}

/// Instant answers: success except in the given half-open second ranges.
fn failing_during(
    ranges: Vec<(usize, u64, u64)>,
) -> impl FnMut(&ProbeRequest, Instant) -> Option<(Duration, ProbeOutcome)> {
    move |p, now| {
        let t = now.as_secs();
        let bad = ranges
            .iter()
            .any(|&(srv, a, b)| srv == p.server.server && t >= a && t < b);
        Some((
            Duration::ZERO,
            if bad { fail() } else { ProbeOutcome::Success },
        ))
    }
}

#[test]
fn retry_and_delay_before_retry_count_failures() {
    let mut c = check(CheckKind::Tcp, 10);
    c.retry = 2;
    c.delay_before_retry = Duration::from_secs(2);
    let rs = ServerSettings::new(dest(1, 3), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    assert_eq!(sim.log, vec![(0, Ev::Add(1, 3)), (0, Ev::QUp)]);

    // Fails from 20 s to 50 s.
    sim.run(s(80), &mut failing_during(vec![(0, 20, 50)]));
    // 1, 11 ok; 21 fail (retry 1 at 23, retry 2 at 25 → down on the 3rd failure);
    // down: paced by delay_loop (35, 45 fail); 55 succeeds → up at once.
    assert_eq!(
        sim.probe_times(0),
        vec![1, 11, 21, 23, 25, 35, 45, 55, 65, 75]
    );
    assert_eq!(
        sim.events_after(0),
        vec![
            (25, Ev::Del(1)),
            (25, Ev::Down(0)),
            (25, Ev::QDown),
            (55, Ev::Add(1, 3)),
            (55, Ev::Up(0)),
            (55, Ev::QUp),
        ]
    );
    assert_eq!(sim.dest_weight(1), Some(3));
}

#[test]
fn a_success_between_failures_resets_the_retry_count() {
    let mut c = check(CheckKind::Http, 10);
    c.retry = 1;
    c.delay_before_retry = Duration::from_secs(3);
    let rs = ServerSettings::new(dest(1, 1), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    // fail at 11, ok at 14 (the retry), fail at 24, ok at 27: never two in a row.
    let mut n = 0;
    sim.run(s(38), &mut |_, _| {
        n += 1;
        Some((
            Duration::ZERO,
            if n % 2 == 0 {
                fail()
            } else {
                ProbeOutcome::Success
            },
        ))
    });
    assert_eq!(sim.probe_times(0), vec![1, 11, 14, 24, 27, 37]);
    assert!(sim.events_after(0).is_empty(), "{:?}", sim.log);
}

#[test]
fn retry_zero_goes_down_on_the_first_failure() {
    let mut c = check(CheckKind::Tcp, 5);
    c.retry = 0;
    let rs = ServerSettings::new(dest(1, 1), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    sim.run(s(12), &mut failing_during(vec![(0, 6, 100)]));
    assert_eq!(sim.probe_times(0), vec![1, 6, 11]);
    assert_eq!(sim.events_after(0)[0], (6, Ev::Del(1)));
}

#[test]
fn alpha_starts_down_until_the_first_success() {
    let mut c = check(CheckKind::Tcp, 10);
    c.alpha = true;
    let rs = ServerSettings::new(dest(1, 2), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    // Nothing added at start, no quorum (and no notification without a sorry server).
    assert!(sim.log.is_empty());
    assert_eq!(sim.mon.quorum_up(0), Some(false));
    sim.run(s(5), &mut failing_during(vec![]));
    assert_eq!(
        sim.log,
        vec![(1, Ev::Add(1, 2)), (1, Ev::Up(0)), (1, Ev::QUp)]
    );
}

#[test]
fn alpha_first_failure_reports_down_without_rule_change() {
    let mut c = check(CheckKind::Tcp, 10);
    c.alpha = true;
    c.retry = 0;
    let rs = ServerSettings::new(dest(1, 2), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    sim.run(s(15), &mut failing_during(vec![(0, 0, 5)]));
    // 1 s: keepalived reports the (unchanged) down state of an alpha checker's first run;
    // 11 s: the first success adds it.
    assert_eq!(
        sim.log,
        vec![
            (1, Ev::Down(0)),
            (11, Ev::Add(1, 2)),
            (11, Ev::Up(0)),
            (11, Ev::QUp)
        ]
    );
}

/// An alpha checker reports the server down after its first failure ("For alpha mode, log
/// failure after one failure", `validate_check_config` starts it with its retries used up),
/// then stays quiet until it succeeds.
#[test]
fn alpha_with_retries_reports_down_once_then_waits_for_success() {
    let mut c = check(CheckKind::Tcp, 10);
    c.alpha = true;
    c.retry = 2;
    let rs = ServerSettings::new(dest(1, 2), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    sim.run(s(25), &mut failing_during(vec![(0, 0, 15)]));
    // A down checker does not retry: failures at 1 and 11 keep the delay_loop pace.
    assert_eq!(sim.probe_times(0), vec![1, 11, 21]);
    assert_eq!(
        sim.log,
        vec![
            (1, Ev::Down(0)),
            (21, Ev::Add(1, 2)),
            (21, Ev::Up(0)),
            (21, Ev::QUp)
        ]
    );
}

#[test]
fn warmup_delays_the_first_probe_by_a_random_share() {
    let mut c = CheckSettings::new(CheckKind::Tcp).with_delay_loop(Duration::from_secs(10));
    assert_eq!(c.warmup, Duration::from_secs(10));
    let rs0 = ServerSettings::new(dest(1, 1), c);
    c.warmup = Duration::from_secs(4);
    let rs1 = ServerSettings::new(dest(2, 1), c);
    // The draw is reduced modulo warmup + 1 ns: 7.5 s for the first, 3.5 s − 1 ns for the
    // second.
    let draw = 7_500_000_000u64;
    let mut sim = Sim::new(
        spec(vec![rs0, rs1], ServiceHealthSettings::default()),
        &mut Fixed(draw),
    );
    let second = 1_000_000_000 + draw % 4_000_000_001;
    assert_eq!(second, 4_499_999_999);
    assert_eq!(sim.mon.poll_timeout(), Some(Instant::from_nanos(second)));
    sim.run(s(20), &mut failing_during(vec![]));
    // (start in ms, truncated; server)
    let starts: Vec<_> = sim.probes.iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(
        starts,
        vec![(4_499, 1), (8_500, 0), (14_499, 1), (18_500, 0)]
    );
}

#[test]
fn inhibit_on_failure_sets_weight_zero_instead_of_removing() {
    let mut c = check(CheckKind::Tcp, 10);
    c.retry = 0;
    let mut rs = ServerSettings::new(dest(1, 5), c);
    rs.inhibit_on_failure = true;
    let rs2 = ServerSettings::new(dest(2, 1), c);
    let mut sim = Sim::with(spec(vec![rs, rs2], ServiceHealthSettings::default()));
    sim.run(s(40), &mut failing_during(vec![(0, 10, 30), (1, 10, 30)]));
    assert_eq!(
        sim.events_after(0),
        vec![
            (11, Ev::Edit(1, 0)),
            (11, Ev::Down(0)),
            (11, Ev::Del(2)),
            (11, Ev::Down(1)),
            (11, Ev::QDown),
            (31, Ev::Edit(1, 5)),
            (31, Ev::Up(0)),
            (31, Ev::QUp),
            (31, Ev::Add(2, 1)),
            (31, Ev::Up(1)),
        ]
    );
}

#[test]
fn alpha_with_inhibit_is_present_at_weight_zero_from_the_start() {
    let mut c = check(CheckKind::Tcp, 10);
    c.alpha = true;
    let mut rs = ServerSettings::new(dest(1, 4), c);
    rs.inhibit_on_failure = true;
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    assert_eq!(sim.log, vec![(0, Ev::Add(1, 0))]);
    sim.run(s(2), &mut failing_during(vec![]));
    assert_eq!(sim.events_after(0)[0], (1, Ev::Edit(1, 4)));
}

#[test]
fn a_server_is_up_only_when_all_its_checkers_are() {
    let mut a = check(CheckKind::Tcp, 10);
    a.retry = 0;
    let mut b = check(CheckKind::Http, 10);
    b.retry = 0;
    let mut rs = ServerSettings::new(dest(1, 1), a);
    rs.checkers.push(b);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    // checker 0 (TCP) fails 10..40, checker 1 (HTTP) fails 20..60.
    sim.run(s(75), &mut |p, now| {
        let t = now.as_secs();
        let bad = if p.checker == 0 {
            (10..40).contains(&t)
        } else {
            (20..60).contains(&t)
        };
        Some((
            Duration::ZERO,
            if bad { fail() } else { ProbeOutcome::Success },
        ))
    });
    // Down at 11 (checker 0); checker 1 failing at 21 changes nothing; checker 0 back at 41
    // is not enough; checker 1's failed URL answers at 61 and its clean pass at 71 brings
    // the server up.
    assert_eq!(
        sim.events_after(0),
        vec![
            (11, Ev::Del(1)),
            (11, Ev::Down(0)),
            (11, Ev::QDown),
            (71, Ev::Add(1, 1)),
            (71, Ev::Up(0)),
            (71, Ev::QUp),
        ]
    );
}

#[test]
fn misc_dynamic_exit_codes_set_the_weight() {
    let mut c = check(CheckKind::Misc, 10);
    c.dynamic_weight = true;
    assert_eq!(c.retry, 0);
    let rs = ServerSettings::new(dest(1, 3), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    let codes = [0u8, 7, 7, 1, 1, 12, 2, 0];
    let mut i = 0;
    sim.run(s(80), &mut |_, _| {
        let code = codes[i.min(codes.len() - 1)];
        i += 1;
        Some((Duration::ZERO, ProbeOutcome::ExitCode(code)))
    });
    assert_eq!(
        sim.events_after(0),
        vec![
            // 11: exit 7 → weight 5; 21: 7 again, no change; 31: exit 1 → down.
            (11, Ev::Edit(1, 5)),
            (31, Ev::Del(1)),
            (31, Ev::Down(0)),
            (31, Ev::QDown),
            // 51: exit 12 → up at weight 10.
            (51, Ev::Add(1, 10)),
            (51, Ev::Up(0)),
            (51, Ev::QUp),
            // 61: exit 2 → up at weight 0, which loses quorum.
            (61, Ev::Edit(1, 0)),
            (61, Ev::QDown),
            // 71: exit 0 → back to the configured weight.
            (71, Ev::Edit(1, 3)),
            (71, Ev::QUp),
        ]
    );
    let st = sim
        .mon
        .server_status(ServerId {
            service: 0,
            server: 0,
        })
        .unwrap();
    assert_eq!((st.alive, st.effective_weight), (true, 3));
}

#[test]
fn misc_without_dynamic_treats_nonzero_exits_as_failure() {
    let c = check(CheckKind::Misc, 10);
    let rs = ServerSettings::new(dest(1, 3), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    sim.run(s(12), &mut |_, now| {
        let code = if now.as_secs() >= 10 { 5 } else { 0 };
        Some((Duration::ZERO, ProbeOutcome::ExitCode(code)))
    });
    assert_eq!(sim.events_after(0)[0], (11, Ev::Del(1)));
}

#[test]
fn misc_runs_are_timed_from_their_start() {
    let mut c = check(CheckKind::Misc, 10);
    c.retry = 1;
    c.delay_before_retry = Duration::from_secs(2);
    let rs = ServerSettings::new(dest(1, 1), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    // Each run takes 3 s; the second fails. The retry is due 2 s after the failed run
    // *started*, which is already past when it ends: it starts 1 µs after the result.
    let mut n = 0;
    sim.run(s(30), &mut |_, _| {
        n += 1;
        let out = if n == 2 {
            ProbeOutcome::ExitCode(1)
        } else {
            ProbeOutcome::ExitCode(0)
        };
        Some((Duration::from_secs(3), out))
    });
    let starts: Vec<u64> = sim.probes.iter().map(|p| p.0).collect();
    assert_eq!(starts, vec![1_000, 11_000, 14_000, 24_000]);
    assert!(sim.events_after(0).is_empty());
}

#[test]
fn probe_timeouts_count_as_failures_and_late_results_are_refused() {
    let mut c = check(CheckKind::Tcp, 10);
    c.connect_timeout = Duration::from_secs(3);
    c.retry = 1;
    c.delay_before_retry = Duration::from_secs(2);
    let rs = ServerSettings::new(dest(1, 1), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    // The first probe answers, later ones never do.
    let mut first = true;
    sim.run(s(30), &mut |p, now| {
        assert_eq!(p.deadline, now + Duration::from_secs(3));
        if std::mem::take(&mut first) {
            Some((Duration::ZERO, ProbeOutcome::Success))
        } else {
            None
        }
    });
    // 11 s → times out at 14, retry at 16 → times out at 19: down.
    assert_eq!(sim.probe_times(0), vec![1, 11, 16, 29]);
    assert_eq!(sim.events_after(0)[0], (19, Ev::Del(1)));

    // A result arriving after the monitor timed the probe out is refused.
    // (The probe started at 29 s times out at 32 s; the next is due at 42 s.)
    let mut mon = sim.mon;
    mon.handle_timeout(s(32));
    assert_eq!(mon.poll_timeout(), Some(s(42)));
    let p = mon.poll_probe(s(42)).unwrap();
    assert_eq!(mon.poll_timeout(), Some(s(45)));
    mon.handle_timeout(s(45));
    assert_eq!(
        mon.handle_probe_result(s(46), p.id, ProbeOutcome::Success),
        Err(HealthError::UnknownProbe(p.id))
    );
    // A stale id is refused too, even with another probe of the checker in flight.
    let q = mon.poll_probe(s(55)).unwrap();
    assert!(mon
        .handle_probe_result(s(55), p.id, ProbeOutcome::Success)
        .is_err());
    assert!(mon
        .handle_probe_result(s(55), q.id, ProbeOutcome::Success)
        .is_ok());
    assert_eq!(
        mon.poll_action(),
        Some(Action::Rule(Command::AddDest(key(), dest(1, 1))))
    );
}

fn three_servers(quorum: u32, hysteresis: u32, sorry: bool, inhibit: bool) -> ServiceSpec {
    let mut c = check(CheckKind::Tcp, 10);
    c.retry = 0;
    let servers = (1..=3)
        .map(|i| ServerSettings::new(dest(i, 1), c))
        .collect();
    spec(
        servers,
        ServiceHealthSettings {
            quorum,
            hysteresis,
            sorry_server: sorry.then(|| dest(200, 7)),
            sorry_server_inhibit: inhibit,
            ..ServiceHealthSettings::default()
        },
    )
}

#[test]
fn quorum_hysteresis_thresholds() {
    // quorum 2, hysteresis 1: lost below 1 (or at 0), regained at 3.
    let mut sim = Sim::with(three_servers(2, 1, false, false));
    assert_eq!(sim.mon.quorum_up(0), Some(true));
    // server 0 down at 11, server 1 down at 21, server 2 down at 31; back 41, 51, 61.
    sim.run(
        s(70),
        &mut failing_during(vec![(0, 10, 40), (1, 20, 50), (2, 30, 60)]),
    );
    let q: Vec<_> = sim
        .log
        .iter()
        .filter(|e| matches!(e.1, Ev::QUp | Ev::QDown))
        .cloned()
        .collect();
    assert_eq!(q, vec![(0, Ev::QUp), (31, Ev::QDown), (61, Ev::QUp)]);
}

#[test]
fn quorum_loss_swaps_the_live_servers_for_the_sorry_server() {
    // quorum 3: one server down loses quorum; keepalived (ipwrapper.c,
    // update_quorum_state → perform_quorum_state) takes the live servers out and adds the
    // sorry server; regaining quorum removes the sorry server and adds them back.
    let mut sim = Sim::with(three_servers(3, 0, true, false));
    assert_eq!(
        sim.log,
        vec![
            (0, Ev::Add(1, 1)),
            (0, Ev::Add(2, 1)),
            (0, Ev::Add(3, 1)),
            (0, Ev::QUp)
        ]
    );
    sim.run(s(30), &mut failing_during(vec![(1, 10, 20)]));
    assert_eq!(
        sim.events_after(0),
        vec![
            (11, Ev::Del(2)),
            (11, Ev::Down(1)),
            (11, Ev::Del(1)),
            (11, Ev::Del(3)),
            (11, Ev::Add(200, 7)),
            (11, Ev::QDown),
            (21, Ev::Up(1)),
            (21, Ev::Del(200)),
            (21, Ev::Add(1, 1)),
            (21, Ev::Add(2, 1)),
            (21, Ev::Add(3, 1)),
            (21, Ev::QUp),
        ]
    );
}

#[test]
fn starting_without_quorum_installs_the_sorry_server() {
    let mut c = check(CheckKind::Tcp, 10);
    c.alpha = true;
    let servers = vec![
        ServerSettings::new(dest(1, 1), check(CheckKind::Tcp, 10)),
        ServerSettings::new(dest(2, 1), c),
    ];
    let settings = ServiceHealthSettings {
        quorum: 2,
        sorry_server: Some(dest(200, 1)),
        ..ServiceHealthSettings::default()
    };
    let mut sim = Sim::with(spec(servers, settings));
    // As keepalived's init: server 1 (no alpha) is added, then quorum (2) is not met, so it
    // is taken out again and the sorry server goes in.
    assert_eq!(
        sim.log,
        vec![
            (0, Ev::Add(1, 1)),
            (0, Ev::Del(1)),
            (0, Ev::Add(200, 1)),
            (0, Ev::QDown)
        ]
    );
    sim.run(s(2), &mut failing_during(vec![]));
    assert_eq!(
        sim.events_after(0),
        vec![
            (1, Ev::Up(1)),
            (1, Ev::Del(200)),
            (1, Ev::Add(1, 1)),
            (1, Ev::Add(2, 1)),
            (1, Ev::QUp)
        ]
    );
}

#[test]
fn sorry_server_inhibit_toggles_its_weight() {
    let mut sim = Sim::with(three_servers(2, 0, true, true));
    // Present at weight 0 from the start.
    assert_eq!(sim.log.last(), Some(&(0, Ev::Add(200, 0))));
    assert_eq!(sim.dest_weight(200), Some(0));
    sim.run(s(30), &mut failing_during(vec![(0, 10, 20), (1, 10, 20)]));
    assert_eq!(
        sim.events_after(0),
        vec![
            (11, Ev::Del(1)),
            (11, Ev::Down(0)),
            (11, Ev::Del(2)),
            (11, Ev::Down(1)),
            (11, Ev::Del(3)),
            (11, Ev::Edit(200, 7)),
            (11, Ev::QDown),
            // Server 0 back: live weight 2 (servers 0 and 2) reaches quorum 2.
            (21, Ev::Up(0)),
            (21, Ev::Edit(200, 0)),
            (21, Ev::Add(1, 1)),
            (21, Ev::Add(3, 1)),
            (21, Ev::QUp),
            (21, Ev::Add(2, 1)),
            (21, Ev::Up(1)),
        ]
    );
    assert_eq!(sim.dest_weight(200), Some(0));
}

#[test]
fn inhibited_servers_are_zeroed_not_removed_while_the_sorry_server_serves() {
    let mut spec = three_servers(3, 0, true, false);
    for rs in &mut spec.servers {
        rs.inhibit_on_failure = true;
    }
    let mut sim = Sim::with(spec);
    sim.run(s(30), &mut failing_during(vec![(0, 10, 20)]));
    assert_eq!(
        sim.events_after(0),
        vec![
            (11, Ev::Edit(1, 0)),
            (11, Ev::Down(0)),
            (11, Ev::Edit(2, 0)),
            (11, Ev::Edit(3, 0)),
            (11, Ev::Add(200, 7)),
            (11, Ev::QDown),
            (21, Ev::Up(0)),
            (21, Ev::Del(200)),
            (21, Ev::Edit(1, 1)),
            (21, Ev::Edit(2, 1)),
            (21, Ev::Edit(3, 1)),
            (21, Ev::QUp),
        ]
    );
}

#[test]
fn drain_offline_online_transitions() {
    let mut c = check(CheckKind::Tcp, 10);
    c.retry = 0;
    let rs = ServerSettings::new(dest(1, 4), c);
    let rs2 = ServerSettings::new(dest(2, 1), c);
    let mut sim = Sim::with(spec(vec![rs, rs2], ServiceHealthSettings::default()));
    let id = ServerId {
        service: 0,
        server: 0,
    };
    let mut script = failing_during(vec![(0, 20, 40), (0, 60, 80)]);

    // Draining keeps the rule at weight 0.
    sim.mon.set_admin_state(id, AdminState::Draining).unwrap();
    sim.drain();
    assert_eq!(sim.dest_weight(1), Some(0));
    // The checker marks it down while draining: removed; up again: back at weight 0.
    sim.run(s(35), &mut script);
    assert_eq!(sim.dest_weight(1), None);
    sim.run(s(45), &mut script);
    assert_eq!(sim.dest_weight(1), Some(0));
    // Online again: its weight.
    sim.mon.set_admin_state(id, AdminState::Online).unwrap();
    sim.drain();
    assert_eq!(sim.dest_weight(1), Some(4));

    // Offline: removed; checker down and up while offline changes no rule.
    sim.mon.set_admin_state(id, AdminState::Offline).unwrap();
    sim.drain();
    assert_eq!(sim.dest_weight(1), None);
    sim.run(s(65), &mut script);
    let st = sim.mon.server_status(id).unwrap();
    assert!(!st.alive);
    // Online while the checker says down: stays out.
    sim.mon.set_admin_state(id, AdminState::Online).unwrap();
    sim.drain();
    assert_eq!(sim.dest_weight(1), None);
    // The checker recovers: added.
    sim.run(s(85), &mut script);
    assert_eq!(sim.dest_weight(1), Some(4));

    let rules: Vec<_> = sim
        .log
        .iter()
        .filter(|e| matches!(e.1, Ev::Add(1, _) | Ev::Edit(1, _) | Ev::Del(1)))
        .cloned()
        .collect();
    assert_eq!(
        rules,
        vec![
            (0, Ev::Add(1, 4)),
            (0, Ev::Edit(1, 0)),
            (21, Ev::Del(1)),
            (41, Ev::Add(1, 0)),
            (45, Ev::Edit(1, 4)),
            (45, Ev::Del(1)),
            (81, Ev::Add(1, 4)),
        ]
    );
}

#[test]
fn operator_states_change_the_quorum_weight() {
    // quorum 5 with weights 4 + 1: draining the 4 loses quorum, online regains it.
    let c = check(CheckKind::Tcp, 10);
    let servers = vec![
        ServerSettings::new(dest(1, 4), c),
        ServerSettings::new(dest(2, 1), c),
    ];
    let settings = ServiceHealthSettings {
        quorum: 5,
        sorry_server: Some(dest(200, 1)),
        ..ServiceHealthSettings::default()
    };
    let mut sim = Sim::with(spec(servers, settings));
    let id = ServerId {
        service: 0,
        server: 0,
    };
    sim.log.clear();
    sim.mon.set_admin_state(id, AdminState::Draining).unwrap();
    sim.drain();
    // The draining server keeps weight 0 (its flows) while the sorry server serves.
    assert_eq!(
        sim.log,
        vec![
            (0, Ev::Edit(1, 0)),
            (0, Ev::Del(2)),
            (0, Ev::Add(200, 1)),
            (0, Ev::QDown)
        ]
    );
    sim.log.clear();
    sim.mon.set_admin_state(id, AdminState::Online).unwrap();
    sim.drain();
    assert_eq!(
        sim.log,
        vec![
            (0, Ev::Del(200)),
            (0, Ev::Edit(1, 4)),
            (0, Ev::Add(2, 1)),
            (0, Ev::QUp)
        ]
    );
}

#[test]
fn notifications_carry_the_configured_scripts() {
    let mut c = check(CheckKind::Tcp, 10);
    c.retry = 0;
    let mut rs = ServerSettings::new(dest(1, 1), c);
    rs.notify_up = Some("/bin/up".into());
    rs.notify_down = Some("/bin/down".into());
    let settings = ServiceHealthSettings {
        quorum_up: Some("/bin/qup".into()),
        quorum_down: Some("/bin/qdown".into()),
        ..ServiceHealthSettings::default()
    };
    let mut mon =
        HealthMonitor::new(Instant::ZERO, vec![spec(vec![rs], settings)], &mut Fixed(0)).unwrap();
    let _ = std::iter::from_fn(|| mon.poll_action()).count();
    let p = mon.poll_probe(s(1)).unwrap();
    mon.handle_probe_result(s(1), p.id, fail()).unwrap();
    let got: Vec<_> = std::iter::from_fn(|| mon.poll_action()).collect();
    let id = ServerId {
        service: 0,
        server: 0,
    };
    assert_eq!(
        got[1..],
        [
            Action::Notify(Notification::ServerDown {
                server: id,
                service: key(),
                script: Some("/bin/down".into())
            }),
            Action::Notify(Notification::QuorumDown {
                index: 0,
                service: key(),
                script: Some("/bin/qdown".into())
            }),
        ]
    );
}

#[test]
fn shutdown_removes_everything_and_notifies_with_omega() {
    for omega in [false, true] {
        let mut spec = three_servers(1, 0, true, true);
        spec.servers[0].inhibit_on_failure = true;
        spec.settings.omega = omega;
        let mut sim = Sim::with(spec);
        sim.log.clear();
        sim.mon.handle_shutdown();
        sim.drain();
        let mut want = vec![(0, Ev::Del(200)), (0, Ev::Del(1))];
        if omega {
            want.push((0, Ev::Down(0)));
        }
        want.push((0, Ev::Del(2)));
        if omega {
            want.push((0, Ev::Down(1)));
        }
        want.push((0, Ev::Del(3)));
        if omega {
            want.extend([(0, Ev::Down(2)), (0, Ev::QDown)]);
        }
        assert_eq!(sim.log, want);
        assert!(sim.rules.service(&key()).unwrap().1.is_empty());
        assert_eq!(sim.mon.poll_timeout(), None);
        assert!(sim.mon.poll_probe(s(100)).is_none());
    }
}

#[test]
fn configuration_errors() {
    let c = check(CheckKind::Tcp, 10);
    let bad_quorum = spec(
        vec![],
        ServiceHealthSettings {
            quorum: 0,
            ..ServiceHealthSettings::default()
        },
    );
    assert_eq!(
        HealthMonitor::new(Instant::ZERO, vec![bad_quorum], &mut Fixed(0)).unwrap_err(),
        HealthError::ZeroQuorum { service: 0 }
    );
    let dup = spec(
        vec![
            ServerSettings::new(dest(1, 1), c),
            ServerSettings::new(dest(1, 2), c),
        ],
        ServiceHealthSettings::default(),
    );
    assert!(matches!(
        HealthMonitor::new(Instant::ZERO, vec![dup], &mut Fixed(0)),
        Err(HealthError::DuplicateDest { port: 80, .. })
    ));
    let sorry_dup = spec(
        vec![ServerSettings::new(dest(1, 1), c)],
        ServiceHealthSettings {
            sorry_server: Some(dest(1, 1)),
            ..ServiceHealthSettings::default()
        },
    );
    assert!(HealthMonitor::new(Instant::ZERO, vec![sorry_dup], &mut Fixed(0)).is_err());
    let mut z = c;
    z.delay_loop = Duration::ZERO;
    let zero = spec(
        vec![ServerSettings::new(dest(1, 1), z)],
        ServiceHealthSettings::default(),
    );
    let err = HealthMonitor::new(Instant::ZERO, vec![zero], &mut Fixed(0)).unwrap_err();
    assert!(err.to_string().contains("delay_loop"), "{err}");

    let mut mon = HealthMonitor::new(
        Instant::ZERO,
        vec![spec(
            vec![ServerSettings::new(dest(1, 1), c)],
            ServiceHealthSettings::default(),
        )],
        &mut Fixed(0),
    )
    .unwrap();
    let nope = ServerId {
        service: 0,
        server: 1,
    };
    assert_eq!(
        mon.set_admin_state(nope, AdminState::Offline),
        Err(HealthError::UnknownServer(nope))
    );
    assert!(mon.server_status(nope).is_err());
}

#[test]
fn server_without_checkers_is_always_up() {
    let mut rs = ServerSettings::new(dest(1, 2), check(CheckKind::Tcp, 10));
    rs.checkers.clear();
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    assert_eq!(sim.log, vec![(0, Ev::Add(1, 2)), (0, Ev::QUp)]);
    assert_eq!(sim.mon.poll_timeout(), None);
    assert!(sim.mon.poll_probe(s(100)).is_none());
}

#[test]
fn http_fetches_urls_in_turn_and_recovers_after_a_clean_pass() {
    let mut c = check(CheckKind::Http, 10);
    c.urls = 2;
    c.retry = 1;
    c.delay_before_retry = Duration::from_secs(2);
    let rs = ServerSettings::new(dest(1, 1), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    let mut urls = Vec::new();
    // URL 1 fails from 20 s to 60 s.
    sim.run(s(100), &mut |p, now| {
        urls.push((now.as_secs(), p.url));
        let bad = p.url == 1 && (20..60).contains(&now.as_secs());
        Some((
            Duration::ZERO,
            if bad { fail() } else { ProbeOutcome::Success },
        ))
    });
    assert_eq!(
        urls,
        vec![
            (1, 0),
            (11, 1),
            (21, 0),
            // URL 1 fails, is retried 2 s later, fails again: down.
            (31, 1),
            (33, 1),
            // While failed: paced at max(delay_before_retry, delay_loop), same URL.
            (43, 1),
            (53, 1),
            // It answers at 63: every URL again from the first; up after URL 1 at 83.
            (63, 1),
            (73, 0),
            (83, 1),
            (93, 0),
        ]
    );
    assert_eq!(
        sim.events_after(0),
        vec![
            (33, Ev::Del(1)),
            (33, Ev::Down(0)),
            (33, Ev::QDown),
            (83, Ev::Add(1, 1)),
            (83, Ev::Up(0)),
            (83, Ev::QUp),
        ]
    );
}

#[test]
fn checker_kind_defaults() {
    assert_eq!(CheckSettings::new(CheckKind::Dns).retry, 3);
    assert_eq!(CheckSettings::new(CheckKind::Smtp).retry, 1);
    let m = CheckSettings::new(CheckKind::Misc).with_delay_loop(Duration::from_secs(7));
    assert_eq!(
        (m.retry, m.connect_timeout, m.warmup),
        (0, Duration::from_secs(7), Duration::from_secs(7))
    );
    let t = CheckSettings::new(CheckKind::Tcp).with_delay_loop(Duration::from_secs(7));
    assert_eq!(t.connect_timeout, Duration::from_secs(5));
    assert!(!t.alpha && !t.dynamic_weight && t.urls == 1);
}

#[test]
fn smtp_retries_every_cycle_even_while_down() {
    let mut c = check(CheckKind::Smtp, 10);
    c.retry = 1;
    c.delay_before_retry = Duration::from_secs(2);
    let rs = ServerSettings::new(dest(1, 1), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    sim.run(s(60), &mut failing_during(vec![(0, 20, 50)]));
    assert_eq!(sim.probe_times(0), vec![1, 11, 21, 23, 33, 35, 45, 47, 57]);
    assert_eq!(
        sim.events_after(0),
        vec![
            (23, Ev::Del(1)),
            (23, Ev::Down(0)),
            (23, Ev::QDown),
            (57, Ev::Add(1, 1)),
            (57, Ev::Up(0)),
            (57, Ev::QUp),
        ]
    );
}

#[test]
fn dns_retries_default_to_delay_loop_spacing() {
    let c = check(CheckKind::Dns, 10);
    assert_eq!(
        (c.retry, c.delay_before_retry),
        (3, Duration::from_secs(10))
    );
    let rs = ServerSettings::new(dest(1, 1), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    sim.run(s(65), &mut failing_during(vec![(0, 20, 100)]));
    // Down on the 4th consecutive failure.
    assert_eq!(sim.probe_times(0), vec![1, 11, 21, 31, 41, 51, 61]);
    assert_eq!(sim.events_after(0)[0], (51, Ev::Del(1)));
}

/// No alpha checker retries before its first result, DNS_CHECK included (its `dns_final`
/// would, but every checker starts with its retries used up); each reports the server down
/// once.
#[test]
fn alpha_checkers_do_not_retry_before_their_first_result() {
    for kind in [CheckKind::Dns, CheckKind::Tcp, CheckKind::Misc] {
        let mut c = check(kind, 10);
        c.alpha = true;
        c.retry = 1;
        c.delay_before_retry = Duration::from_secs(2);
        let rs = ServerSettings::new(dest(1, 1), c);
        let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
        sim.run(s(14), &mut failing_during(vec![(0, 0, 100)]));
        assert_eq!(sim.probe_times(0), vec![1, 11], "{kind:?}");
        assert_eq!(sim.log, vec![(1, Ev::Down(0))], "{kind:?}");
    }
}

/// keepalived starts every non-alpha checker with its retries used up ("For non alpha mode,
/// one failure is enough initially", `validate_check_config` in check_data.c): a real server
/// failing from the start leaves on its first probe. SMTP_CHECK resets its count at the
/// start of each cycle, so it still retries.
#[test]
fn a_failing_first_probe_is_not_retried() {
    for (kind, probes, gone) in [
        (CheckKind::Tcp, vec![1, 11, 21], Some(1)),
        (CheckKind::Http, vec![1, 11, 21], Some(1)),
        (CheckKind::Dns, vec![1, 11, 21], Some(1)),
        (CheckKind::Misc, vec![1, 11, 21], Some(1)),
        (CheckKind::Smtp, vec![1, 3, 5, 15, 17, 19], Some(5)),
    ] {
        let mut c = check(kind, 10);
        c.retry = 2;
        c.delay_before_retry = Duration::from_secs(2);
        let rs = ServerSettings::new(dest(1, 1), c);
        let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
        sim.run(s(22), &mut failing_during(vec![(0, 0, 100)]));
        assert_eq!(sim.probe_times(0), probes, "{kind:?}");
        let del = sim.log.iter().find(|e| e.1 == Ev::Del(1)).map(|e| e.0);
        assert_eq!(del, gone, "{kind:?}: {:?}", sim.log);
    }
    // Once a probe has succeeded, failures are retried as usual.
    let mut c = check(CheckKind::Tcp, 10);
    c.retry = 2;
    c.delay_before_retry = Duration::from_secs(2);
    let rs = ServerSettings::new(dest(1, 1), c);
    let mut sim = Sim::with(spec(vec![rs], ServiceHealthSettings::default()));
    sim.run(s(22), &mut failing_during(vec![(0, 5, 100)]));
    assert_eq!(sim.probe_times(0), vec![1, 11, 13, 15]);
    assert_eq!(
        sim.log.iter().find(|e| e.1 == Ev::Del(1)).map(|e| e.0),
        Some(15)
    );
}
