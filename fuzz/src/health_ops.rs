//! `health_ops`: an arbitrary health-check configuration driven by arbitrary probe results,
//! latencies, lost probes, operator changes and a shutdown. Checks after every step that each
//! rule command applies to a real `RuleSet`, that the rules equal the monitor's view of every
//! server, that time always moves forward, and that a shutdown empties the service.

use std::net::IpAddr;

use lvs_core::health::{
    Action, AdminState, CheckKind, CheckSettings, FailureReason, HealthMonitor, ProbeId,
    ProbeOutcome, ServerId, ServerSettings, ServiceHealthSettings, ServiceSpec,
};
use lvs_core::rules::{DestConfig, RuleSet, ServiceKey};
use lvs_core::{Duration, Instant};
use rand::SeedableRng;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
}

fn dest(i: u8, weight: u32) -> DestConfig {
    DestConfig {
        weight,
        ..DestConfig::new(IpAddr::from([10, 1, 0, i]), 80)
    }
}

fn spec(b: &mut Bytes<'_>, key: ServiceKey) -> ServiceSpec {
    let n = 1 + b.next() % 4;
    let mut servers = Vec::new();
    for i in 0..n {
        let flags = b.next();
        let mut checkers = Vec::new();
        for _ in 0..(flags % 3) {
            let k = b.next();
            let kind = [
                CheckKind::Tcp,
                CheckKind::Http,
                CheckKind::Misc,
                CheckKind::Dns,
                CheckKind::Smtp,
            ][usize::from(k % 5)];
            let mut c = CheckSettings::new(kind)
                .with_delay_loop(Duration::from_millis(500 + u64::from(b.next()) * 40));
            c.retry = u32::from(k / 5 % 3);
            c.alpha = k & 0x40 != 0;
            c.dynamic_weight = k & 0x80 != 0;
            c.delay_before_retry = Duration::from_millis(u64::from(b.next()) * 10);
            c.connect_timeout = Duration::from_millis(100 + u64::from(b.next()) * 20);
            c.warmup = Duration::from_millis(u64::from(b.next()) * 10);
            c.urls = 1 + usize::from(b.next() % 3);
            checkers.push(c);
        }
        servers.push(ServerSettings {
            dest: dest(i + 1, u32::from(flags >> 4)),
            inhibit_on_failure: flags & 0x08 != 0,
            notify_up: None,
            notify_down: None,
            checkers,
            admin: [
                AdminState::Online,
                AdminState::Draining,
                AdminState::Offline,
            ][usize::from((flags >> 2) % 3)],
        });
    }
    let q = b.next();
    ServiceSpec {
        key,
        settings: ServiceHealthSettings {
            quorum: 1 + u32::from(q % 6),
            hysteresis: u32::from(q / 6 % 3),
            sorry_server: (q & 0x40 != 0).then(|| dest(200, u32::from(q >> 4 & 3))),
            sorry_server_inhibit: q & 0x80 != 0,
            ..ServiceHealthSettings::default()
        },
        servers,
    }
}

fn check(mon: &HealthMonitor, rules: &RuleSet, key: &ServiceKey) {
    let dests = rules.service(key).expect("service kept").1;
    let mut count = 0;
    for ri in 0..mon.server_count(0) {
        let st = mon
            .server_status(ServerId {
                service: 0,
                server: ri,
            })
            .expect("server");
        let found = dests
            .iter()
            .find(|d| d.addr == dest(ri as u8 + 1, 0).addr)
            .map(|d| d.weight);
        assert_eq!(found, st.installed_weight, "server {ri}");
        count += usize::from(found.is_some());
    }
    let sorry = dests
        .iter()
        .find(|d| d.addr == dest(200, 0).addr)
        .map(|d| d.weight);
    assert_eq!(sorry, mon.sorry_installed_weight(0));
    assert_eq!(dests.len(), count + usize::from(sorry.is_some()));
}

fn drain(mon: &mut HealthMonitor, rules: &mut RuleSet, key: &ServiceKey) {
    while let Some(a) = mon.poll_action() {
        if let Action::Rule(cmd) = a {
            if let Err(e) = rules.apply(&cmd) {
                panic!("{cmd:?}: {e}");
            }
        }
    }
    check(mon, rules, key);
}

fn outcome(b: u8) -> ProbeOutcome {
    match b % 6 {
        0 | 1 => ProbeOutcome::Success,
        2 => ProbeOutcome::Failure(FailureReason::Refused),
        3 => ProbeOutcome::Timeout,
        _ => ProbeOutcome::ExitCode(b / 6),
    }
}

/// The fuzz body.
pub fn health_ops(data: &[u8]) {
    let mut b = Bytes(data);
    let key = ServiceKey::tcp(IpAddr::from([192, 0, 2, 10]), 80);
    let spec = spec(&mut b, key);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(u64::from(b.next()));
    let mut mon = match HealthMonitor::new(Instant::ZERO, vec![spec], &mut rng) {
        Ok(m) => m,
        Err(_) => return,
    };
    let mut rules = RuleSet::from_text("-A -t 192.0.2.10:80\n").expect("service");
    drain(&mut mon, &mut rules, &key);

    let mut now = Instant::ZERO;
    let mut in_flight: Vec<ProbeId> = Vec::new();
    // At most one operation per remaining byte: bounded by the input length.
    while !b.0.is_empty() {
        let op = b.next();
        match op % 8 {
            // Advance to the next timer (or by a byte's worth of milliseconds).
            0..=2 => {
                let step = Instant::from_nanos(now.as_nanos() + u64::from(b.next()) * 10_000_000);
                now = mon.poll_timeout().map_or(step, |t| t.min(step).max(now));
                mon.handle_timeout(now);
                drain(&mut mon, &mut rules, &key);
                while let Some(p) = mon.poll_probe(now) {
                    assert!(p.deadline > now);
                    in_flight.push(p.id);
                }
                if let Some(t) = mon.poll_timeout() {
                    assert!(t > now, "timer in the past");
                }
            }
            // Answer an in-flight probe (possibly one already timed out: refused).
            3..=5 => {
                if !in_flight.is_empty() {
                    let i = usize::from(b.next()) % in_flight.len();
                    let id = in_flight.swap_remove(i);
                    let _ = mon.handle_probe_result(now, id, outcome(b.next()));
                    drain(&mut mon, &mut rules, &key);
                }
            }
            // Operator change.
            6 => {
                let x = b.next();
                let id = ServerId {
                    service: 0,
                    server: usize::from(x % 5),
                };
                let st = [
                    AdminState::Online,
                    AdminState::Draining,
                    AdminState::Offline,
                ][usize::from(x / 5 % 3)];
                let known = id.server < mon.server_count(0);
                assert_eq!(mon.set_admin_state(id, st).is_ok(), known);
                drain(&mut mon, &mut rules, &key);
            }
            _ => {
                if op == 0xff {
                    mon.handle_shutdown();
                    drain(&mut mon, &mut rules, &key);
                    assert!(rules.service(&key).expect("service").1.is_empty());
                    assert!(mon.poll_probe(now).is_none());
                    return;
                }
            }
        }
    }
}
