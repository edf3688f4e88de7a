//! From a keepalived configuration to the health monitor's input: one
//! [`crate::health::ServiceSpec`] per IPVS service, so that the simulator and the
//! live runtime build the same [`HealthMonitor`](crate::health::HealthMonitor).
//!
//! The cascade (virtual_server → real_server → checker) was resolved by the parser; this only
//! translates:
//!
//! | keepalived | health monitor |
//! |---|---|
//! | `delay_loop`, `connect_timeout`, `retry` / `nb_get_retry`, `delay_before_retry`, `warmup`, `alpha` (resolved per checker) | [`CheckSettings`] fields of the same names |
//! | `MISC_CHECK` `misc_timeout` / `misc_dynamic` | `connect_timeout` / `dynamic_weight` |
//! | `HTTP_GET` / `SSL_GET` `url` blocks | `urls` (their number, at least 1) |
//! | `real_server` weight, method, tunnel, `uthreshold`, `lthreshold` | [`ServerSettings::dest`] (the configured weight) |
//! | `inhibit_on_failure`, `notify_up`, `notify_down` | [`ServerSettings`] fields |
//! | `quorum`, `hysteresis`, `quorum_up`, `quorum_down`, `omega` | [`ServiceHealthSettings`] |
//! | `sorry_server` (weight 1), `sorry_server_inhibit` | `sorry_server`, `sorry_server_inhibit` |
//!
//! A `virtual_server group` gives one spec per service of the group; a real server or sorry
//! server written without a port takes each service's port, as in the rule set.
//!
//! Not carried over (the monitor does not model them): `BFD_CHECK` checkers (a real server
//! with only those has no checker and is always up), `ha_suspend`, and a sorry server that is
//! also one of the real servers (keepalived shares the rule; the monitor refuses duplicates,
//! so such a sorry server is left out).

use super::model::{CheckerConfig, CheckerKind, RealServerSettings, VirtualServerSettings};
use super::KeepalivedConfig;
use crate::health::{CheckKind, CheckSettings, ServerSettings, ServiceHealthSettings, ServiceSpec};
use crate::rules::{DestConfig, ServiceKey};

/// The checker settings of one resolved keepalived checker; `None` for `BFD_CHECK`.
pub fn check_settings(c: &CheckerConfig) -> Option<CheckSettings> {
    let (kind, urls, timeout, dynamic) = match &c.kind {
        CheckerKind::Tcp => (CheckKind::Tcp, 1, c.connect_timeout, false),
        CheckerKind::HttpGet { urls, .. } => {
            (CheckKind::Http, urls.len(), c.connect_timeout, false)
        }
        CheckerKind::SslGet { urls, .. } => (CheckKind::Ssl, urls.len(), c.connect_timeout, false),
        CheckerKind::Misc {
            timeout, dynamic, ..
        } => (CheckKind::Misc, 1, *timeout, *dynamic),
        CheckerKind::Smtp { .. } => (CheckKind::Smtp, 1, c.connect_timeout, false),
        CheckerKind::Dns { .. } => (CheckKind::Dns, 1, c.connect_timeout, false),
        CheckerKind::Bfd { .. } => return None,
    };
    Some(CheckSettings {
        kind,
        delay_loop: c.delay_loop,
        connect_timeout: timeout,
        retry: c.retry,
        delay_before_retry: c.delay_before_retry,
        alpha: c.alpha,
        warmup: c.warmup,
        dynamic_weight: dynamic,
        urls: urls.max(1),
    })
}

fn port_for(key: &ServiceKey, port: u16, given: bool) -> u16 {
    if given {
        port
    } else {
        key.port()
    }
}

fn server(key: &ServiceKey, rs: &RealServerSettings) -> ServerSettings {
    ServerSettings {
        dest: DestConfig {
            addr: rs.addr,
            port: port_for(key, rs.port, rs.port_given),
            forward: rs.forward,
            weight: rs.weight,
            u_threshold: rs.u_threshold,
            l_threshold: rs.l_threshold,
            tunnel: rs.tunnel,
        },
        inhibit_on_failure: rs.inhibit_on_failure,
        notify_up: rs.notify_up.clone(),
        notify_down: rs.notify_down.clone(),
        checkers: rs.checkers.iter().filter_map(check_settings).collect(),
        admin: Default::default(),
    }
}

/// The specs of one `virtual_server` block: one per service it creates.
pub fn service_specs(vs: &VirtualServerSettings) -> Vec<ServiceSpec> {
    vs.keys
        .iter()
        .map(|key| {
            let servers: Vec<ServerSettings> =
                vs.real_servers.iter().map(|rs| server(key, rs)).collect();
            let sorry = vs.sorry_server.as_ref().and_then(|s| {
                let port = port_for(key, s.port, s.port_given);
                let dup = servers
                    .iter()
                    .any(|r| r.dest.addr == s.addr && r.dest.port == port);
                (!dup).then_some(DestConfig {
                    addr: s.addr,
                    port,
                    forward: s.forward,
                    weight: 1,
                    u_threshold: 0,
                    l_threshold: 0,
                    tunnel: s.tunnel,
                })
            });
            ServiceSpec {
                key: *key,
                settings: ServiceHealthSettings {
                    quorum: vs.quorum.max(1),
                    hysteresis: vs.hysteresis,
                    sorry_server_inhibit: sorry.is_some()
                        && vs.sorry_server.as_ref().is_some_and(|s| s.inhibit),
                    sorry_server: sorry,
                    quorum_up: vs.quorum_up.clone(),
                    quorum_down: vs.quorum_down.clone(),
                    omega: vs.omega,
                },
                servers,
            }
        })
        .collect()
}

impl KeepalivedConfig {
    /// The health monitor's input for the whole configuration, services in rule order (see
    /// [`crate::keepalived`]'s `health` section for the mapping). Pass it to
    /// [`HealthMonitor::new`](crate::health::HealthMonitor::new); the services must exist in
    /// the rules its commands are applied to (start from [`KeepalivedConfig::rules`]).
    ///
    /// ```
    /// use lvs_core::health::CheckKind;
    /// use lvs_core::keepalived::{parse, MemoryFiles};
    /// let conf = "virtual_server 192.0.2.10 80 {\n protocol TCP\n delay_loop 5\n quorum 2\n\
    ///     real_server 10.0.0.2 80 {\n MISC_CHECK {\n misc_path /bin/check\n misc_dynamic\n retry 2\n }\n }\n}\n";
    /// let specs = parse("k.conf", conf, &mut MemoryFiles::new()).unwrap().health_specs();
    /// assert_eq!(specs[0].settings.quorum, 1); // keepalived lowers it to the total weight
    /// let c = specs[0].servers[0].checkers[0];
    /// assert_eq!((c.kind, c.retry, c.dynamic_weight), (CheckKind::Misc, 2, true));
    /// assert_eq!(c.delay_loop.as_secs(), 5);
    /// ```
    pub fn health_specs(&self) -> Vec<ServiceSpec> {
        self.services.iter().flat_map(service_specs).collect()
    }
}
