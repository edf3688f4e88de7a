//! The health monitor: checker timing, server state, quorum and sorry server.

use core::net::IpAddr;
use std::collections::VecDeque;

use rand_core::RngCore;

use super::settings::{AdminState, CheckKind, CheckSettings, ServiceSpec};
use crate::rules::{Command, DestConfig, ServiceKey};
use crate::time::{Duration, Instant};

/// keepalived's `BOOTSTRAP_DELAY` (`TIMER_HZ`, one second): every checker's first probe
/// waits this long plus its random warmup share (`check_api.c`, `register_checkers_thread`).
const BOOTSTRAP_DELAY: Duration = Duration::from_secs(1);

/// keepalived's floor for a MISC_CHECK rescheduled in the past: one timer tick (1 µs,
/// `check_misc.c`, `misc_check_child_thread`).
const MIN_RESCHEDULE: Duration = Duration::from_nanos(1_000);

/// Identifies a real server: indexes into the [`ServiceSpec`] list and its `servers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId {
    /// Index of the service in the list given to [`HealthMonitor::new`].
    pub service: usize,
    /// Index of the real server in the service's `servers`.
    pub server: usize,
}

/// Identifies one probe in flight; results quote it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProbeId {
    server: ServerId,
    checker: usize,
    seq: u64,
}

impl ProbeId {
    /// The real server probed.
    pub fn server(&self) -> ServerId {
        self.server
    }

    /// The checker's index in the server's `checkers`.
    pub fn checker(&self) -> usize {
        self.checker
    }
}

/// A probe the driver should run now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeRequest {
    /// Quote it in [`HealthMonitor::handle_probe_result`].
    pub id: ProbeId,
    /// The real server probed.
    pub server: ServerId,
    /// The checker's index in the server's `checkers`.
    pub checker: usize,
    /// What kind of probe to run.
    pub kind: CheckKind,
    /// `HTTP_GET` / `SSL_GET`: the index of the `url` block to fetch (0 for other kinds).
    pub url: usize,
    /// The real server's address and port (the default `connect_ip` / `connect_port`).
    pub addr: IpAddr,
    /// The real server's port.
    pub port: u16,
    /// When the monitor gives up on it and counts a [`ProbeOutcome::Timeout`]
    /// (start + `connect_timeout`).
    pub deadline: Instant,
}

/// Why a probe failed (informational: every reason counts the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// Connection refused or reset.
    Refused,
    /// No route, host or network unreachable.
    Unreachable,
    /// A reply that does not satisfy the checker (HTTP status, digest, SMTP code, DNS
    /// answer…).
    BadResponse,
    /// The script was killed by a signal, or anything else.
    Other,
}

/// The result of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeOutcome {
    /// The check passed (for `MISC_CHECK`: the same as exit code 0).
    Success,
    /// The check failed.
    Failure(FailureReason),
    /// The driver's own timeout fired (counts as a failure).
    Timeout,
    /// A `MISC_CHECK` script exited with this code: 0 = success at the configured weight;
    /// with `misc_dynamic` 2..=255 = success with weight `code − 2`; anything else a
    /// failure. For other checkers 0 is a success and anything else a failure.
    ExitCode(u8),
}

/// Something the caller must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A rule change (`AddDest`, `EditDest`, `DeleteDest` only). Applied in order to the
    /// rules the monitor started from, each one succeeds.
    Rule(Command),
    /// A state change to report (and its script to run, if configured).
    Notify(Notification),
}

/// A state change, with the keepalived notify script configured for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// The real server's checkers all say up (or, on an alpha checker's first failure,
    /// keepalived's report of the current state).
    ServerUp {
        /// Which server.
        server: ServerId,
        /// Its service.
        service: ServiceKey,
        /// `notify_up`.
        script: Option<String>,
    },
    /// A checker of the real server says down.
    ServerDown {
        /// Which server.
        server: ServerId,
        /// Its service.
        service: ServiceKey,
        /// `notify_down`.
        script: Option<String>,
    },
    /// The service gained quorum.
    QuorumUp {
        /// Index of the service.
        index: usize,
        /// Its key.
        service: ServiceKey,
        /// `quorum_up`.
        script: Option<String>,
    },
    /// The service lost quorum.
    QuorumDown {
        /// Index of the service.
        index: usize,
        /// Its key.
        service: ServiceKey,
        /// `quorum_down`.
        script: Option<String>,
    },
}

/// A real server as the monitor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerStatus {
    /// All its checkers say up.
    pub alive: bool,
    /// The operator state.
    pub admin: AdminState,
    /// The weight keepalived would use when it is in the pool: the configured weight, or
    /// the last `misc_dynamic` weight.
    pub effective_weight: u32,
    /// Its rule as emitted so far: `None` = not in the service, `Some(w)` = in it at `w`.
    pub installed_weight: Option<u32>,
}

/// Errors of the health monitor.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// A service's `quorum` is 0 (keepalived requires at least 1).
    #[error("service #{service}: quorum must be at least 1")]
    ZeroQuorum {
        /// Index of the service.
        service: usize,
    },
    /// A checker's `delay_loop` is zero (it would probe without pause).
    #[error("service #{}, server #{}, checker #{checker}: delay_loop must not be zero", server.service, server.server)]
    ZeroDelayLoop {
        /// The server.
        server: ServerId,
        /// The checker's index.
        checker: usize,
    },
    /// Two real servers of a service (or a real server and the sorry server) share an
    /// address and port.
    #[error("service #{service}: real server {addr} port {port} given twice")]
    DuplicateDest {
        /// Index of the service.
        service: usize,
        /// The address.
        addr: IpAddr,
        /// The port.
        port: u16,
    },
    /// No such service or real server.
    #[error("no real server #{} in service #{}", .0.server, .0.service)]
    UnknownServer(ServerId),
    /// The probe is not in flight: unknown, already answered or already timed out.
    #[error("probe {0:?} is not in flight")]
    UnknownProbe(ProbeId),
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    seq: u64,
    started: Instant,
    deadline: Instant,
}

#[derive(Clone, Debug)]
struct Checker {
    settings: CheckSettings,
    /// keepalived `checker->is_up`.
    is_up: bool,
    /// keepalived `checker->has_run`.
    has_run: bool,
    /// keepalived `checker->retry_it`: failures absorbed so far.
    retry_it: u32,
    /// When the next probe is due (meaningless while one is in flight).
    next: Instant,
    in_flight: Option<InFlight>,
    /// `misck_checker->last_exit_code`: the weight is only updated when the code changes.
    last_exit_code: Option<u8>,
    /// HTTP `url_it`: the URL the next probe fetches.
    url_it: usize,
    /// HTTP `failed_url`: a URL failed past its retries; recovery needs it to succeed and
    /// then a whole clean pass.
    failed_url: Option<usize>,
}

#[derive(Clone, Debug)]
struct Server {
    dest: DestConfig,
    inhibit: bool,
    notify_up: Option<String>,
    notify_down: Option<String>,
    checkers: Vec<Checker>,
    /// keepalived `num_failed_checkers`.
    failed: usize,
    /// keepalived `rs->alive`.
    alive: bool,
    admin: AdminState,
    effective_weight: u32,
    installed: Option<u32>,
}

#[derive(Clone, Debug)]
struct Service {
    key: ServiceKey,
    quorum: u32,
    hysteresis: u32,
    sorry: Option<DestConfig>,
    sorry_inhibit: bool,
    quorum_up_script: Option<String>,
    quorum_down_script: Option<String>,
    omega: bool,
    servers: Vec<Server>,
    quorum_up: bool,
    /// keepalived `ISALIVE(vs->s_svr)`: the sorry server is serving.
    sorry_active: bool,
    sorry_installed: Option<u32>,
}

/// Health checking of the real servers of one or more virtual services (see the
/// [module docs](super) for the calling sequence).
///
/// # What a real server's rule is
/// "up" = all its checkers say up; "sorry" = its service lost quorum and has a sorry server
/// serving; "inh" = `inhibit_on_failure`.
///
/// | operator  | checkers | sorry | rule                         | counts for quorum |
/// |-----------|----------|-------|------------------------------|-------------------|
/// | Online    | up       | no    | present, effective weight    | effective weight  |
/// | Online    | up       | yes   | inh ? weight 0 : absent      | effective weight  |
/// | Online    | down     | –     | inh ? weight 0 : absent      | 0                 |
/// | Draining  | up       | –     | present, weight 0            | 0                 |
/// | Draining  | down     | –     | inh ? weight 0 : absent      | 0                 |
/// | Offline   | –        | –     | absent                       | 0                 |
///
/// A draining server keeps weight 0 even while the sorry server serves: weight 0 takes no
/// new flows anyway, and draining promises to keep the existing ones. Offline and draining
/// servers keep being probed and still report up/down notifications.
///
/// # Determinism and memory
/// Every output is a function of the settings, the injected warmup randomness (drawn once,
/// in [`new`](Self::new)) and the inputs. State is per server and per checker; the action
/// queue holds what the inputs since the last drain produced, so drain it after each call.
#[derive(Clone, Debug)]
pub struct HealthMonitor {
    services: Vec<Service>,
    actions: VecDeque<Action>,
    next_seq: u64,
    shut_down: bool,
}

/// Desired rule for a real server, per the table on [`HealthMonitor`].
fn desired_weight(s: &Server, sorry_active: bool) -> Option<u32> {
    let down = if s.inhibit { Some(0) } else { None };
    match s.admin {
        AdminState::Offline => None,
        AdminState::Draining if s.alive => Some(0),
        AdminState::Draining => down,
        AdminState::Online if s.alive && !sorry_active => Some(s.effective_weight),
        AdminState::Online => down,
    }
}

fn rule_change(
    key: ServiceKey,
    dest: &DestConfig,
    installed: Option<u32>,
    desired: Option<u32>,
) -> Option<Command> {
    match (installed, desired) {
        (None, Some(w)) => Some(Command::AddDest(key, DestConfig { weight: w, ..*dest })),
        (Some(a), Some(b)) if a != b => {
            Some(Command::EditDest(key, DestConfig { weight: b, ..*dest }))
        }
        (Some(_), None) => Some(Command::DeleteDest {
            service: key,
            addr: dest.addr,
            port: dest.port,
        }),
        _ => None,
    }
}

impl HealthMonitor {
    /// Builds the monitor at `now` and queues the initial rule commands, as keepalived's
    /// `init_service_vs` does: every real server whose checkers start up (no `alpha`) is
    /// added, inhibited ones are added at weight 0 otherwise; then the quorum is evaluated
    /// from "down" (gaining it reports quorum up; not reaching it with a sorry server takes
    /// the live servers out again, adds the sorry server and reports quorum down); finally an
    /// inhibited sorry server not yet present is added at weight 0.
    ///
    /// Each checker's first probe is due at `now` + 1 s + a random share of its `warmup`
    /// drawn from `rng` (uniform in `0..=warmup`).
    pub fn new(
        now: Instant,
        specs: Vec<ServiceSpec>,
        rng: &mut dyn RngCore,
    ) -> Result<Self, HealthError> {
        let mut services = Vec::with_capacity(specs.len());
        for (si, spec) in specs.into_iter().enumerate() {
            if spec.settings.quorum == 0 {
                return Err(HealthError::ZeroQuorum { service: si });
            }
            let mut seen: Vec<(IpAddr, u16)> = Vec::new();
            let mut servers = Vec::with_capacity(spec.servers.len());
            for (ri, rs) in spec.servers.into_iter().enumerate() {
                let id = (rs.dest.addr, rs.dest.port);
                if seen.contains(&id) {
                    return Err(HealthError::DuplicateDest {
                        service: si,
                        addr: id.0,
                        port: id.1,
                    });
                }
                seen.push(id);
                let mut checkers = Vec::with_capacity(rs.checkers.len());
                for (ci, c) in rs.checkers.into_iter().enumerate() {
                    if c.delay_loop == Duration::ZERO {
                        return Err(HealthError::ZeroDelayLoop {
                            server: ServerId {
                                service: si,
                                server: ri,
                            },
                            checker: ci,
                        });
                    }
                    let w = c.warmup.as_nanos();
                    let share = if w == 0 {
                        0
                    } else {
                        rng.next_u64() % w.saturating_add(1)
                    };
                    checkers.push(Checker {
                        settings: c,
                        // check_data.c: in alpha mode a checker that has not run counts as
                        // failed.
                        is_up: !c.alpha,
                        has_run: false,
                        // validate_check_config (check_data.c): "For non alpha mode, one
                        // failure is enough initially. For alpha mode, log failure after one
                        // failure": every checker starts with its retries used up, so its
                        // first result decides (a checker that starts up goes down, an alpha
                        // one reports it is still down). SMTP resets the count at the start of
                        // every cycle (smtp_start_check_thread), the first one included.
                        retry_it: if c.kind == CheckKind::Smtp {
                            0
                        } else {
                            c.retry
                        },
                        next: now + BOOTSTRAP_DELAY + Duration::from_nanos(share),
                        in_flight: None,
                        last_exit_code: None,
                        url_it: 0,
                        failed_url: None,
                    });
                }
                let failed = checkers.iter().filter(|c| !c.is_up).count();
                servers.push(Server {
                    dest: rs.dest,
                    inhibit: rs.inhibit_on_failure,
                    notify_up: rs.notify_up,
                    notify_down: rs.notify_down,
                    checkers,
                    failed,
                    alive: false,
                    admin: rs.admin,
                    effective_weight: rs.dest.weight,
                    installed: None,
                });
            }
            if let Some(s) = &spec.settings.sorry_server {
                if seen.contains(&(s.addr, s.port)) {
                    // keepalived tolerates a sorry server that duplicates a real server
                    // (`s_svr_duplicates_rs`); two owners of one rule would break the
                    // "every command applies" contract, so it is refused here.
                    return Err(HealthError::DuplicateDest {
                        service: si,
                        addr: s.addr,
                        port: s.port,
                    });
                }
            }
            services.push(Service {
                key: spec.key,
                quorum: spec.settings.quorum,
                hysteresis: spec.settings.hysteresis,
                sorry: spec.settings.sorry_server,
                sorry_inhibit: spec.settings.sorry_server_inhibit,
                quorum_up_script: spec.settings.quorum_up,
                quorum_down_script: spec.settings.quorum_down,
                omega: spec.settings.omega,
                servers,
                quorum_up: false,
                sorry_active: false,
                sorry_installed: None,
            });
        }
        let mut mon = HealthMonitor {
            services,
            actions: VecDeque::new(),
            next_seq: 0,
            shut_down: false,
        };
        for si in 0..mon.services.len() {
            // init_service_rs: servers with no failed checker are alive and added; an
            // inhibited server is added (at weight 0 while failed). No notifications
            // (keepalived's `rs_init_notifies` is off by default).
            for ri in 0..mon.services[si].servers.len() {
                let s = &mut mon.services[si].servers[ri];
                s.alive = s.failed == 0;
                mon.sync_server(si, ri);
            }
            mon.update_quorum(si, true);
            // init_service_vs: an inhibited sorry server is present at weight 0 from the
            // start.
            mon.sync_sorry(si);
        }
        Ok(mon)
    }

    /// The next probe due at `now`, if any (earliest due first, ties in server order).
    /// Call until `None`. The probe counts as in flight from `now`.
    pub fn poll_probe(&mut self, now: Instant) -> Option<ProbeRequest> {
        if self.shut_down {
            return None;
        }
        let mut best: Option<(Instant, usize, usize, usize)> = None;
        for (si, svc) in self.services.iter().enumerate() {
            for (ri, s) in svc.servers.iter().enumerate() {
                for (ci, c) in s.checkers.iter().enumerate() {
                    if c.in_flight.is_none()
                        && c.next <= now
                        && best.is_none_or(|(t, ..)| c.next < t)
                    {
                        best = Some((c.next, si, ri, ci));
                    }
                }
            }
        }
        let (_, si, ri, ci) = best?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let s = &mut self.services[si].servers[ri];
        let (addr, port) = (s.dest.addr, s.dest.port);
        let c = &mut s.checkers[ci];
        let deadline = now + c.settings.connect_timeout;
        c.in_flight = Some(InFlight {
            seq,
            started: now,
            deadline,
        });
        let server = ServerId {
            service: si,
            server: ri,
        };
        Some(ProbeRequest {
            id: ProbeId {
                server,
                checker: ci,
                seq,
            },
            server,
            checker: ci,
            kind: c.settings.kind,
            url: c.url_it,
            addr,
            port,
            deadline,
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) or [`poll_probe`](Self::poll_probe)
    /// next has work: the earliest probe due or probe deadline. `None` after shutdown.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.shut_down {
            return None;
        }
        self.services
            .iter()
            .flat_map(|svc| svc.servers.iter())
            .flat_map(|s| s.checkers.iter())
            .map(|c| c.in_flight.map_or(c.next, |f| f.deadline))
            .min()
    }

    /// Fails, as [`ProbeOutcome::Timeout`], every probe whose deadline is at or before
    /// `now`. (Probes that are merely due are handed out by [`poll_probe`](Self::poll_probe).)
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.shut_down {
            return;
        }
        for si in 0..self.services.len() {
            for ri in 0..self.services[si].servers.len() {
                for ci in 0..self.services[si].servers[ri].checkers.len() {
                    let c = &self.services[si].servers[ri].checkers[ci];
                    if let Some(f) = c.in_flight {
                        if f.deadline <= now {
                            self.complete(now, si, ri, ci, f, ProbeOutcome::Timeout);
                        }
                    }
                }
            }
        }
    }

    /// Feeds the result of a probe handed out by [`poll_probe`](Self::poll_probe).
    ///
    /// A result for a probe no longer in flight (already answered, or already failed by
    /// [`handle_timeout`](Self::handle_timeout)) is refused with
    /// [`HealthError::UnknownProbe`] and changes nothing.
    pub fn handle_probe_result(
        &mut self,
        now: Instant,
        id: ProbeId,
        outcome: ProbeOutcome,
    ) -> Result<(), HealthError> {
        let f = self
            .services
            .get(id.server.service)
            .and_then(|svc| svc.servers.get(id.server.server))
            .and_then(|s| s.checkers.get(id.checker))
            .and_then(|c| c.in_flight)
            .filter(|f| f.seq == id.seq && !self.shut_down)
            .ok_or(HealthError::UnknownProbe(id))?;
        self.complete(
            now,
            id.server.service,
            id.server.server,
            id.checker,
            f,
            outcome,
        );
        Ok(())
    }

    /// Sets a real server's operator state and queues the rule change it implies (table on
    /// [`HealthMonitor`]); the quorum is re-evaluated since the server's contribution
    /// changes.
    pub fn set_admin_state(&mut self, id: ServerId, state: AdminState) -> Result<(), HealthError> {
        let s = self
            .services
            .get_mut(id.service)
            .and_then(|svc| svc.servers.get_mut(id.server))
            .ok_or(HealthError::UnknownServer(id))?;
        if s.admin == state || self.shut_down {
            s.admin = state;
            return Ok(());
        }
        s.admin = state;
        // Quorum first: if it flips, the sorry-server swap re-syncs every server (this one
        // included) in keepalived's order; otherwise only this server's rule changes.
        self.update_quorum(id.service, false);
        self.sync_server(id.service, id.server);
        Ok(())
    }

    /// The next queued action, oldest first.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Stops checking and queues the removal of every rule the monitor installed, as
    /// keepalived's `clear_services` does on shutdown (inhibited servers are removed too).
    /// With `omega`, the server-down and quorum-down notifications are reported as well.
    pub fn handle_shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        for si in 0..self.services.len() {
            let svc = &mut self.services[si];
            let key = svc.key;
            if let (Some(d), Some(w)) = (svc.sorry, svc.sorry_installed.take()) {
                if let Some(cmd) = rule_change(key, &d, Some(w), None) {
                    self.actions.push_back(Action::Rule(cmd));
                }
            }
            svc.sorry_active = false;
            for ri in 0..svc.servers.len() {
                let s = &mut svc.servers[ri];
                for c in &mut s.checkers {
                    c.in_flight = None;
                }
                if let Some(cmd) = rule_change(key, &s.dest, s.installed.take(), None) {
                    self.actions.push_back(Action::Rule(cmd));
                }
                if s.alive {
                    s.alive = false;
                    if svc.omega {
                        self.actions
                            .push_back(Action::Notify(Notification::ServerDown {
                                server: ServerId {
                                    service: si,
                                    server: ri,
                                },
                                service: key,
                                script: s.notify_down.clone(),
                            }));
                    }
                }
            }
            svc.quorum_up = false;
            if svc.omega {
                self.actions
                    .push_back(Action::Notify(Notification::QuorumDown {
                        index: si,
                        service: key,
                        script: svc.quorum_down_script.clone(),
                    }));
            }
        }
    }

    /// A real server's state.
    pub fn server_status(&self, id: ServerId) -> Result<ServerStatus, HealthError> {
        let s = self
            .services
            .get(id.service)
            .and_then(|svc| svc.servers.get(id.server))
            .ok_or(HealthError::UnknownServer(id))?;
        Ok(ServerStatus {
            alive: s.alive,
            admin: s.admin,
            effective_weight: s.effective_weight,
            installed_weight: s.installed,
        })
    }

    /// Whether a service has quorum (`None` if there is no such service).
    pub fn quorum_up(&self, service: usize) -> Option<bool> {
        self.services.get(service).map(|s| s.quorum_up)
    }

    /// The sorry server's rule as emitted so far (`None` = absent or not configured).
    pub fn sorry_installed_weight(&self, service: usize) -> Option<u32> {
        self.services.get(service).and_then(|s| s.sorry_installed)
    }

    /// The number of services monitored.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// The number of real servers of a service (0 if there is no such service).
    pub fn server_count(&self, service: usize) -> usize {
        self.services.get(service).map_or(0, |s| s.servers.len())
    }

    // ---- internals -------------------------------------------------------------------

    /// A probe finished (result or timeout): keepalived's checker epilogue.
    fn complete(
        &mut self,
        now: Instant,
        si: usize,
        ri: usize,
        ci: usize,
        f: InFlight,
        outcome: ProbeOutcome,
    ) {
        let c = &mut self.services[si].servers[ri].checkers[ci];
        c.in_flight = None;
        let st = c.settings;
        let is_misc = st.kind == CheckKind::Misc;

        // Classify: success (with an optional new weight) or failure.
        let (success, new_weight, code) = match outcome {
            ProbeOutcome::Success => (true, None, Some(0)),
            ProbeOutcome::Failure(_) | ProbeOutcome::Timeout => (false, None, None),
            ProbeOutcome::ExitCode(0) => (true, None, Some(0)),
            ProbeOutcome::ExitCode(code) if is_misc && st.dynamic_weight && code >= 2 => {
                (true, Some(u32::from(code - 2)), Some(code))
            }
            ProbeOutcome::ExitCode(code) => (false, None, Some(code)),
        };

        match st.kind {
            CheckKind::Misc => self.misc_epilog(now, si, ri, ci, f, success, new_weight, code),
            CheckKind::Http | CheckKind::Ssl => self.http_epilog(now, si, ri, ci, success),
            CheckKind::Smtp => self.smtp_epilog(now, si, ri, ci, success),
            CheckKind::Tcp | CheckKind::Udp | CheckKind::Ping | CheckKind::Dns => {
                self.epilog(now, si, ri, ci, success)
            }
        }
    }

    /// The TCP / UDP / PING epilogue (`check_tcp.c`, `check_udp.c`, `check_ping.c`
    /// `*_epilog` in current keepalived): retries only while the checker is up; the next
    /// probe is timed from the result. `DNS_CHECK` (`check_dns.c`, `dns_final`) is the same:
    /// it would also retry before its first result, but every checker starts with its
    /// retries used up.
    fn epilog(&mut self, now: Instant, si: usize, ri: usize, ci: usize, success: bool) {
        let c = &mut self.services[si].servers[ri].checkers[ci];
        let st = c.settings;
        let mut delay = st.delay_loop;
        let mut transition = None;
        if success || ((c.is_up || !c.has_run) && c.retry_it >= st.retry) {
            c.retry_it = 0;
            if success && (!c.is_up || !c.has_run) {
                transition = Some(true);
            } else if !success && (c.is_up || !c.has_run) {
                transition = Some(false);
            }
        } else if c.is_up {
            delay = st.delay_before_retry;
            c.retry_it += 1;
        }
        // A down checker's failures change nothing and keep the delay_loop pace.
        c.next = now + delay;
        if let Some(up) = transition {
            self.update_checker_state(si, ri, ci, up);
        }
        self.services[si].servers[ri].checkers[ci].has_run = true;
    }

    /// The SMTP_CHECK epilogue (`check_smtp.c`, `smtp_final`): every cycle gets `retry`
    /// retries `delay_before_retry` apart, whether the checker is up or down; a cycle whose
    /// attempts all fail takes it down (if up) and the next cycle starts `delay_loop` later.
    /// A failing cycle does not mark the checker as run.
    fn smtp_epilog(&mut self, now: Instant, si: usize, ri: usize, ci: usize, success: bool) {
        let c = &mut self.services[si].servers[ri].checkers[ci];
        let st = c.settings;
        let mut transition = None;
        let delay;
        if success {
            c.retry_it = 0;
            if !c.is_up || !c.has_run {
                transition = Some(true);
            }
            delay = st.delay_loop;
        } else {
            c.retry_it = c.retry_it.saturating_add(1);
            if c.retry_it <= st.retry {
                delay = st.delay_before_retry;
            } else {
                if c.is_up || !c.has_run {
                    transition = Some(false);
                }
                // smtp_start_check_thread resets the count for the next cycle.
                c.retry_it = 0;
                delay = st.delay_loop;
            }
        }
        c.next = now + delay;
        if let Some(up) = transition {
            self.update_checker_state(si, ri, ci, up);
        }
        if success {
            self.services[si].servers[ri].checkers[ci].has_run = true;
        }
    }

    /// The HTTP_GET / SSL_GET epilogue (`check_http.c`, `epilog` and `timeout_epilog`):
    /// URLs are fetched one per probe; a failure while up (or on an alpha checker's first run) is retried
    /// on the same URL `delay_before_retry` later, and past `retry` retries the checker goes
    /// down and remembers the failed URL. While a URL is marked failed, probes are paced at
    /// `max(delay_before_retry, delay_loop)`; its success clears the mark and restarts from
    /// the first URL, and only a whole clean pass brings the checker up again.
    fn http_epilog(&mut self, now: Instant, si: usize, ri: usize, ci: usize, success: bool) {
        let c = &mut self.services[si].servers[ri].checkers[ci];
        let st = c.settings;
        let urls = st.urls.max(1);
        let mut transition = None;
        let delay;
        if success {
            // REGISTER_CHECKER_NEW
            let past_last = c.url_it + 1 >= urls;
            c.url_it = if past_last { 0 } else { c.url_it + 1 };
            c.retry_it = 0;
            if c.failed_url.is_some() {
                // The failed URL answers again: check every URL from the first.
                c.failed_url = None;
                c.url_it = 0;
            } else if past_last && (!c.is_up || !c.has_run) {
                transition = Some(true);
            }
            delay = st.delay_loop;
            if !c.has_run && transition.is_none() {
                // First run, more URLs to go: one failure is then enough.
                c.retry_it = st.retry;
            }
        } else {
            if c.is_up || !c.has_run {
                // REGISTER_CHECKER_RETRY (timeout_epilog marks the checker as run first).
                c.has_run = true;
                c.retry_it = c.retry_it.saturating_add(1);
                if c.retry_it > st.retry {
                    if c.is_up {
                        transition = Some(false);
                    }
                    c.failed_url = Some(c.url_it);
                }
            }
            // REGISTER_CHECKER_FAILED (already down) changes nothing but the pace.
            delay = if c.failed_url.is_some() {
                st.delay_before_retry.max(st.delay_loop)
            } else {
                st.delay_before_retry
            };
        }
        c.next = now + delay;
        if let Some(up) = transition {
            self.update_checker_state(si, ri, ci, up);
        }
        self.services[si].servers[ri].checkers[ci].has_run = true;
    }

    /// The MISC_CHECK epilogue (`check_misc.c`, `misc_check_child_thread`): the weight is
    /// updated before the state, only when the exit code changed; the next run is timed
    /// from the *start* of this one.
    #[allow(clippy::too_many_arguments)]
    fn misc_epilog(
        &mut self,
        now: Instant,
        si: usize,
        ri: usize,
        ci: usize,
        f: InFlight,
        success: bool,
        new_weight: Option<u32>,
        code: Option<u8>,
    ) {
        let iweight = self.services[si].servers[ri].dest.weight;
        let c = &mut self.services[si].servers[ri].checkers[ci];
        let st = c.settings;
        let mut transition = None;
        let mut weight_update = None;
        if success {
            // Exit 0 restores the configured weight; 2..=255 (misc_dynamic) sets code − 2.
            if code != c.last_exit_code {
                weight_update = Some(new_weight.unwrap_or(iweight));
                c.last_exit_code = code;
            }
            if !c.is_up || !c.has_run {
                transition = Some(true);
            }
            c.retry_it = 0;
        } else if c.is_up || !c.has_run {
            if c.retry_it < st.retry {
                c.retry_it += 1;
            } else {
                c.retry_it = 0;
                // keepalived records the exit status of a failed run (not of a signal).
                if code.is_some() {
                    c.last_exit_code = code;
                }
                transition = Some(false);
            }
        }
        let delay = if c.retry_it > 0 {
            st.delay_before_retry
        } else {
            st.delay_loop
        };
        let next = f.started + delay;
        c.next = if next > now {
            next
        } else {
            now + MIN_RESCHEDULE
        };
        if let Some(w) = weight_update {
            self.update_weight(si, ri, w);
        }
        if let Some(up) = transition {
            self.update_checker_state(si, ri, ci, up);
        }
        self.services[si].servers[ri].checkers[ci].has_run = true;
    }

    /// keepalived `update_svr_checker_state`.
    fn update_checker_state(&mut self, si: usize, ri: usize, ci: usize, up: bool) {
        let s = &mut self.services[si].servers[ri];
        let c = &mut s.checkers[ci];
        if c.is_up == up {
            // First run confirming the start state: an alpha checker (or a failure)
            // reports the server's current state.
            let first = !c.has_run;
            c.has_run = true;
            if first && (c.settings.alpha || !up) {
                self.notify_server(si, ri);
            }
            return;
        }
        c.has_run = true;
        c.is_up = up;
        if up {
            s.failed = s.failed.saturating_sub(1);
        } else {
            s.failed += 1;
        }
        let alive = s.failed == 0;
        if alive != s.alive {
            self.perform_server_state(si, ri, alive);
        }
    }

    /// keepalived `perform_svr_state`: rule change (unless the sorry server holds the
    /// pool), notification, quorum re-evaluation.
    fn perform_server_state(&mut self, si: usize, ri: usize, alive: bool) {
        self.services[si].servers[ri].alive = alive;
        self.sync_server(si, ri);
        self.notify_server(si, ri);
        self.update_quorum(si, false);
    }

    /// keepalived `update_svr_wgt(…, update_quorum = true)`.
    fn update_weight(&mut self, si: usize, ri: usize, weight: u32) {
        let s = &mut self.services[si].servers[ri];
        if s.effective_weight == weight {
            return;
        }
        s.effective_weight = weight;
        self.sync_server(si, ri);
        self.update_quorum(si, false);
    }

    fn notify_server(&mut self, si: usize, ri: usize) {
        let svc = &self.services[si];
        let s = &svc.servers[ri];
        let server = ServerId {
            service: si,
            server: ri,
        };
        let n = if s.alive {
            Notification::ServerUp {
                server,
                service: svc.key,
                script: s.notify_up.clone(),
            }
        } else {
            Notification::ServerDown {
                server,
                service: svc.key,
                script: s.notify_down.clone(),
            }
        };
        self.actions.push_back(Action::Notify(n));
    }

    /// keepalived `weigh_live_realservers`, restricted to online servers.
    fn live_weight(svc: &Service) -> u64 {
        svc.servers
            .iter()
            .filter(|s| s.alive && s.admin == AdminState::Online)
            .map(|s| u64::from(s.effective_weight))
            .sum()
    }

    /// keepalived `update_quorum_state` (`ipwrapper.c`).
    ///
    /// Current keepalived *does* take the live real servers out when quorum is lost and a
    /// sorry server takes over (`perform_quorum_state(vs, false)` before adding the sorry
    /// server), and puts them back (`perform_quorum_state(vs, true)`) after removing the
    /// sorry server when quorum returns. Here both follow from `sorry_active` in
    /// [`desired_weight`], synced in the same order (servers out, then sorry in; sorry
    /// out, then servers in).
    fn update_quorum(&mut self, si: usize, init: bool) {
        let svc = &self.services[si];
        let sum = Self::live_weight(svc) as i128;
        let hyst = i128::from(svc.hysteresis);
        let threshold = i128::from(svc.quorum) + if svc.quorum_up { -hyst } else { hyst };
        if !svc.quorum_up && sum >= threshold {
            let svc = &mut self.services[si];
            svc.quorum_up = true;
            if svc.sorry_active {
                svc.sorry_active = false;
                self.sync_sorry(si);
                self.sync_all_servers(si);
            }
            let svc = &self.services[si];
            self.actions
                .push_back(Action::Notify(Notification::QuorumUp {
                    index: si,
                    service: svc.key,
                    script: svc.quorum_up_script.clone(),
                }));
        } else if (svc.quorum_up && (sum == 0 || sum < threshold))
            || (init && !svc.quorum_up && svc.sorry.is_some() && !svc.sorry_active)
        {
            let svc = &mut self.services[si];
            svc.quorum_up = false;
            if svc.sorry.is_some() && !svc.sorry_active {
                svc.sorry_active = true;
                self.sync_all_servers(si);
                self.sync_sorry(si);
            }
            let svc = &self.services[si];
            self.actions
                .push_back(Action::Notify(Notification::QuorumDown {
                    index: si,
                    service: svc.key,
                    script: svc.quorum_down_script.clone(),
                }));
        }
    }

    fn sync_all_servers(&mut self, si: usize) {
        for ri in 0..self.services[si].servers.len() {
            self.sync_server(si, ri);
        }
    }

    fn sync_server(&mut self, si: usize, ri: usize) {
        if self.shut_down {
            return;
        }
        let svc = &mut self.services[si];
        let key = svc.key;
        let sorry_active = svc.sorry_active;
        let s = &mut svc.servers[ri];
        let desired = desired_weight(s, sorry_active);
        if let Some(cmd) = rule_change(key, &s.dest, s.installed, desired) {
            s.installed = desired;
            self.actions.push_back(Action::Rule(cmd));
        }
    }

    fn sync_sorry(&mut self, si: usize) {
        if self.shut_down {
            return;
        }
        let svc = &mut self.services[si];
        let Some(d) = svc.sorry else { return };
        let desired = if svc.sorry_active {
            Some(d.weight)
        } else if svc.sorry_inhibit {
            Some(0)
        } else {
            None
        };
        if let Some(cmd) = rule_change(svc.key, &d, svc.sorry_installed, desired) {
            svc.sorry_installed = desired;
            self.actions.push_back(Action::Rule(cmd));
        }
    }
}
