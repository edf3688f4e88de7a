//! keepalived.conf → health monitor settings, on a realistic configuration (the example that
//! `lvs-sim rules --keepalived` ships): every setting of the cascade lands in the monitor's
//! input, and the monitor built from it starts with the rules the configuration describes.

use lvs_core::health::{Action, CheckKind, HealthMonitor};
use lvs_core::keepalived::{parse, MemoryFiles};
use lvs_core::rules::{Command, Forward, RuleSet, ServiceKey};
use lvs_core::{Duration, Instant, Protocol};

const CONF: &str = include_str!("../../lvs-sim/examples/keepalived.conf");

struct Zero;
impl rand_core::RngCore for Zero {
    fn next_u32(&mut self) -> u32 {
        0
    }
    fn next_u64(&mut self) -> u64 {
        0
    }
    fn fill_bytes(&mut self, d: &mut [u8]) {
        d.fill(0)
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn realistic_configuration_maps_every_setting() {
    let cfg = parse(
        "/etc/keepalived/keepalived.conf",
        CONF,
        &mut MemoryFiles::new(),
    )
    .unwrap();
    let specs = cfg.health_specs();
    // The group makes two services; the DNS block one.
    assert_eq!(specs.len(), 3);
    let web80 = &specs[0];
    let web8080 = &specs[1];
    let dns = &specs[2];
    assert_eq!(
        web80.key,
        ServiceKey::tcp("192.0.2.10".parse().unwrap(), 80)
    );
    assert_eq!(web8080.key.port(), 8080);
    assert_eq!(dns.key.protocol(), Some(Protocol::Udp));

    // Quorum, hysteresis, scripts, sorry server.
    let s = &web80.settings;
    assert_eq!((s.quorum, s.hysteresis), (2, 1));
    assert_eq!(
        s.quorum_up.as_deref(),
        Some("/usr/local/bin/page quorum up")
    );
    assert_eq!(
        s.quorum_down.as_deref(),
        Some("/usr/local/bin/page quorum down")
    );
    let sorry = s.sorry_server.unwrap();
    assert_eq!(
        (sorry.addr.to_string(), sorry.port),
        ("192.0.2.200".into(), 80)
    );
    assert_eq!((sorry.weight, sorry.forward), (1, Forward::DirectRoute));
    assert!(!s.sorry_server_inhibit);

    // Real servers without a port take each service's port.
    let ports: Vec<u16> = web8080.servers.iter().map(|r| r.dest.port).collect();
    assert_eq!(ports, vec![8080, 8080]);
    assert_eq!(
        web8080.settings.sorry_server.unwrap().port,
        80,
        "port written"
    );

    // TCP_CHECK: its own timeout/retry/delay, the virtual server's delay_loop and warmup.
    let rs = &web80.servers[0];
    assert_eq!((rs.dest.weight, rs.inhibit_on_failure), (3, true));
    let tcp = rs.checkers[0];
    assert_eq!(tcp.kind, CheckKind::Tcp);
    assert_eq!(tcp.connect_timeout, secs(3));
    assert_eq!((tcp.retry, tcp.delay_before_retry), (2, secs(2)));
    assert_eq!((tcp.delay_loop, tcp.warmup), (secs(5), secs(5)));
    assert!(!tcp.alpha);

    // HTTP_GET: nb_get_retry is retry; two URLs; warmup given.
    let http = web80.servers[1].checkers[0];
    assert_eq!(http.kind, CheckKind::Http);
    assert_eq!((http.retry, http.urls, http.warmup), (4, 2, secs(2)));
    assert_eq!(http.delay_before_retry, secs(1));
    assert!(!web80.servers[1].inhibit_on_failure);

    // MISC_CHECK dynamic with its timeout; alpha from the virtual server.
    for rs in &dns.servers {
        let m = rs.checkers[0];
        assert_eq!(m.kind, CheckKind::Misc);
        assert!(m.dynamic_weight && m.alpha);
        assert_eq!(
            (m.connect_timeout, m.retry, m.delay_loop),
            (secs(4), 0, secs(10))
        );
        assert_eq!(rs.dest.forward, Forward::Masq);
    }
    assert_eq!(dns.servers[1].dest.port, 5353);
}

/// The monitor built from the specs installs, from the bare services, the same initial real
/// servers as the configuration's rule set (alpha servers absent, the others in).
#[test]
fn monitor_starts_with_the_configured_rules() {
    let cfg = parse("keepalived.conf", CONF, &mut MemoryFiles::new()).unwrap();
    let mut rules = RuleSet::new();
    for (svc, _) in cfg.rules.services() {
        rules.apply(&Command::AddService(svc.clone())).unwrap();
    }
    let mut mon = HealthMonitor::new(Instant::ZERO, cfg.health_specs(), &mut Zero).unwrap();
    while let Some(a) = mon.poll_action() {
        if let Action::Rule(cmd) = a {
            rules.apply(&cmd).unwrap();
        }
    }
    let sorted = |t: String| {
        let mut v: Vec<String> = t.lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(rules.save()), sorted(cfg.rules.save()));

    // Warmup drew 0: every checker's first probe after keepalived's 1 s bootstrap delay.
    assert_eq!(mon.poll_timeout(), Some(Instant::from_secs(1)));
}
