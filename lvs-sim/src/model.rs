//! A [`Scenario`] compiled for the engine: rules parsed, files read, servers resolved,
//! distributions ready to sample.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use lvs_core::rules::{Command, RuleSet, ServiceKey};
use lvs_core::sched::SchedKind;

use crate::scenario::{
    line_col, parse_addr, read_named_file, Arrival, Clients, Discipline, Dist, Requests, Scenario,
    ScenarioError, ServerParams, Slowdown,
};

/// A distribution ready to sample (see [`Sampler::sample`]).
#[derive(Clone, Debug)]
pub enum Sampler {
    /// A constant.
    Const(f64),
    /// Exponential with this mean.
    Exp(f64),
    /// Lognormal: `exp(mu + sigma * N(0,1))`.
    LogNormal {
        /// Location.
        mu: f64,
        /// Scale.
        sigma: f64,
    },
    /// Pareto: `xm / U^(1/alpha)`.
    Pareto {
        /// Scale (the minimum).
        xm: f64,
        /// `1 / alpha`.
        inv_alpha: f64,
    },
    /// Uniform on `[lo, lo + width]`.
    Uniform {
        /// Lower bound.
        lo: f64,
        /// Width.
        width: f64,
    },
    /// A uniform pick among values.
    Empirical(Vec<f64>),
}

/// A uniform double in `[0, 1)` from 53 random bits.
#[inline]
pub fn unit(rng: &mut impl rand_core::RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform double in `(0, 1]`.
#[inline]
pub fn unit_open0(rng: &mut impl rand_core::RngCore) -> f64 {
    1.0 - unit(rng)
}

/// Exponential with the given mean.
#[inline]
pub fn exp(rng: &mut impl rand_core::RngCore, mean: f64) -> f64 {
    -mean * unit_open0(rng).ln()
}

impl Sampler {
    /// Compiles a distribution (empirical files are read relative to `base`).
    pub fn new(d: &Dist, base: Option<&Path>) -> Result<Sampler, ScenarioError> {
        Ok(match d {
            Dist::Deterministic { value } => Sampler::Const(*value),
            Dist::Exp { mean } => Sampler::Exp(*mean),
            Dist::Lognormal { mean, cv } => {
                let s2 = (1.0 + cv * cv).ln();
                Sampler::LogNormal {
                    mu: mean.ln() - s2 / 2.0,
                    sigma: s2.sqrt(),
                }
            }
            Dist::Pareto { mean, alpha } => Sampler::Pareto {
                xm: mean * (alpha - 1.0) / alpha,
                inv_alpha: 1.0 / alpha,
            },
            Dist::Uniform { min, max } => Sampler::Uniform {
                lo: *min,
                width: max - min,
            },
            Dist::Empirical { values, file } => match file {
                None => Sampler::Empirical(values.clone()),
                Some(f) => {
                    let (path, text) = read_named_file(base, f)?;
                    let mut v = Vec::new();
                    for (i, line) in text.lines().enumerate() {
                        let l = line.split('#').next().unwrap_or("").trim();
                        if l.is_empty() {
                            continue;
                        }
                        match l.parse::<f64>() {
                            Ok(x) if x.is_finite() && x >= 0.0 => v.push(x),
                            _ => {
                                return Err(ScenarioError::File {
                                    path: path.display().to_string(),
                                    message: format!(
                                        "line {}: expected a number >= 0, found {l:?}",
                                        i + 1
                                    ),
                                })
                            }
                        }
                    }
                    if v.is_empty() {
                        return Err(ScenarioError::File {
                            path: path.display().to_string(),
                            message: "no values".into(),
                        });
                    }
                    Sampler::Empirical(v)
                }
            },
        })
    }

    /// Draws one value.
    #[inline(always)]
    pub fn sample(&self, rng: &mut impl rand_core::RngCore) -> f64 {
        match self {
            Sampler::Const(v) => *v,
            Sampler::Exp(m) => exp(rng, *m),
            _ => self.sample_other(rng),
        }
    }

    /// [`Sampler::sample`] of the distributions other than constants and exponentials, out
    /// of line (the simulator's per-request steps inline the two it mostly meets).
    #[inline(never)]
    fn sample_other(&self, rng: &mut impl rand_core::RngCore) -> f64 {
        match self {
            Sampler::Const(v) => *v,
            Sampler::Exp(m) => exp(rng, *m),
            Sampler::LogNormal { mu, sigma } => {
                // Box-Muller, one normal per call.
                let u1 = unit_open0(rng);
                let u2 = unit(rng);
                let z = (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos();
                (mu + sigma * z).exp()
            }
            Sampler::Pareto { xm, inv_alpha } => xm / unit_open0(rng).powf(*inv_alpha),
            Sampler::Uniform { lo, width } => lo + width * unit(rng),
            Sampler::Empirical(v) => v[(unit(rng) * v.len() as f64) as usize % v.len()],
        }
    }

    /// The mean.
    pub fn mean(&self) -> f64 {
        match self {
            Sampler::Const(v) => *v,
            Sampler::Exp(m) => *m,
            Sampler::LogNormal { mu, sigma } => (mu + sigma * sigma / 2.0).exp(),
            Sampler::Pareto { xm, inv_alpha } => xm / (1.0 - inv_alpha),
            Sampler::Uniform { lo, width } => lo + width / 2.0,
            Sampler::Empirical(v) => v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

/// A compiled arrival process.
#[derive(Clone, Debug)]
pub enum ArrivalModel {
    /// Poisson.
    Poisson(f64),
    /// Constant spacing (seconds).
    Constant(f64),
    /// On/off bursts.
    OnOff {
        /// Rate while on.
        rate: f64,
        /// Mean on period.
        on: f64,
        /// Mean off period.
        off: f64,
    },
    /// Piecewise-constant Poisson rate: `(start, rate)`.
    Schedule(Vec<(f64, f64)>),
    /// Times and client addresses.
    Trace(Vec<(f64, IpAddr)>),
}

impl ArrivalModel {
    /// The long-run arrival rate (for reports and sweeps).
    pub fn mean_rate(&self, duration: f64) -> f64 {
        match self {
            ArrivalModel::Poisson(r) => *r,
            ArrivalModel::Constant(gap) => 1.0 / gap,
            ArrivalModel::OnOff { rate, on, off } => rate * on / (on + off),
            ArrivalModel::Schedule(p) => {
                let mut total = 0.0;
                for (i, (t, r)) in p.iter().enumerate() {
                    let end = p.get(i + 1).map_or(duration, |n| n.0).min(duration);
                    if end > *t {
                        total += r * (end - t);
                    }
                }
                total / duration
            }
            ArrivalModel::Trace(v) => v.len() as f64 / duration,
        }
    }

    /// The same process with every rate multiplied by `f` (trace times divided by `f`).
    pub fn scaled(&self, f: f64) -> ArrivalModel {
        match self {
            ArrivalModel::Poisson(r) => ArrivalModel::Poisson(r * f),
            ArrivalModel::Constant(g) => ArrivalModel::Constant(g / f),
            ArrivalModel::OnOff { rate, on, off } => ArrivalModel::OnOff {
                rate: rate * f,
                on: *on,
                off: *off,
            },
            ArrivalModel::Schedule(p) => {
                ArrivalModel::Schedule(p.iter().map(|(t, r)| (*t, r * f)).collect())
            }
            ArrivalModel::Trace(v) => {
                ArrivalModel::Trace(v.iter().map(|(t, a)| (t / f, *a)).collect())
            }
        }
    }
}

/// A compiled workload.
#[derive(Clone, Debug)]
pub struct WorkloadModel {
    /// The virtual service's address.
    pub vip: SocketAddr,
    /// Its key in the rules.
    pub key: ServiceKey,
    /// Arrivals.
    pub arrival: ArrivalModel,
    /// Clients.
    pub clients: Clients,
    /// Cumulative Zipf weights (empty for uniform).
    pub client_cdf: Vec<f64>,
    /// Requests per connection.
    pub requests: Requests,
    /// Work per request.
    pub work: Sampler,
    /// Think time between requests.
    pub think: Option<Sampler>,
}

/// A compiled real server (one per distinct `rip:port` over all services, sorry servers
/// included).
#[derive(Clone, Debug)]
pub struct ServerModel {
    /// Address and port as in the rules.
    pub addr: SocketAddr,
    /// Work per second per worker.
    pub speed: f64,
    /// Workers.
    pub workers: u32,
    /// Discipline.
    pub discipline: Discipline,
    /// Most waiting requests (`u32::MAX`: unlimited).
    pub backlog: u32,
    /// MTTF and MTTR.
    pub mttf_mttr: Option<(f64, f64)>,
    /// Scheduled failures `(at, repair)`.
    pub failures: Vec<(f64, Option<f64>)>,
    /// Slowdowns.
    pub slowdowns: Vec<Slowdown>,
}

/// A scenario ready to run.
#[derive(Clone, Debug)]
pub struct Model {
    /// Name for reports.
    pub name: String,
    /// The scenario as parsed.
    pub scenario: Scenario,
    /// The rules.
    pub rules: RuleSet,
    /// Workloads in file order.
    pub workloads: Vec<WorkloadModel>,
    /// Servers in order of first appearance in the rules (then sorry servers).
    pub servers: Vec<ServerModel>,
    /// The sorry server's address, if any.
    pub sorry: Option<SocketAddr>,
}

fn merge(a: &ServerParams, d: &ServerParams, addr: SocketAddr) -> ServerModel {
    let failures = a
        .failures
        .clone()
        .or_else(|| d.failures.clone())
        .unwrap_or_default();
    ServerModel {
        addr,
        speed: a.speed.or(d.speed).unwrap_or(1.0),
        workers: a.workers.or(d.workers).unwrap_or(1),
        discipline: a.discipline.or(d.discipline).unwrap_or_default(),
        backlog: a.backlog.or(d.backlog).unwrap_or(u32::MAX),
        mttf_mttr: match (a.mttf.or(d.mttf), a.mttr.or(d.mttr)) {
            (Some(f), Some(r)) => Some((f, r)),
            _ => None,
        },
        failures: failures.iter().map(|f| (f.at, f.repair)).collect(),
        slowdowns: a
            .slowdowns
            .clone()
            .or_else(|| d.slowdowns.clone())
            .unwrap_or_default(),
    }
}

impl Model {
    /// Compiles a scenario; `text` is its TOML (for error places), `base` the directory its
    /// file names are relative to.
    pub fn build(s: Scenario, text: &str, base: Option<&Path>) -> Result<Model, ScenarioError> {
        let (rules_text, where_) = match (&s.rules, &s.rules_file) {
            (Some(r), _) => (r.get_ref().clone(), String::new()),
            (None, Some(f)) => {
                let (p, t) = read_named_file(base, f.get_ref())?;
                (t, format!(" ({})", p.display()))
            }
            (None, None) => unreachable!("checked by Scenario::check"),
        };
        let rules = RuleSet::from_text(&rules_text).map_err(|e| ScenarioError::Rules {
            where_: where_.clone(),
            message: e.to_string(),
        })?;
        let invalid = |sp: core::ops::Range<usize>, m: String| {
            let (line, column) = line_col(text, sp.start);
            ScenarioError::Invalid {
                line,
                column,
                message: m,
            }
        };
        let mut servers: Vec<ServerModel> = Vec::new();
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for (_, dests) in rules.services() {
            // The kernel's list has the last added first; report in the order of the file.
            for d in dests.iter().rev() {
                let a = SocketAddr::new(d.addr, d.port);
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
        }
        let sorry = match s.health.as_ref().and_then(|h| h.sorry_server.as_ref()) {
            Some(sp) => {
                let a = parse_addr(sp.get_ref()).ok_or_else(|| {
                    invalid(sp.span(), format!("not an ip:port: {:?}", sp.get_ref()))
                })?;
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
                Some(a)
            }
            None => None,
        };
        for e in &s.server {
            let a = parse_addr(e.addr.get_ref()).ok_or_else(|| {
                invalid(
                    e.addr.span(),
                    format!("not an ip:port: {:?}", e.addr.get_ref()),
                )
            })?;
            if !addrs.contains(&a) {
                return Err(invalid(
                    e.addr.span(),
                    format!("{a} is not a real server of the rules"),
                ));
            }
        }
        for a in addrs {
            let own = s
                .server
                .iter()
                .find(|e| parse_addr(e.addr.get_ref()) == Some(a))
                .map(|e| e.params.clone())
                .unwrap_or_default();
            servers.push(merge(&own, &s.server_defaults, a));
        }
        if servers.len() > u16::MAX as usize - 1 {
            return Err(ScenarioError::Invalid {
                line: 0,
                column: 0,
                message: "more than 65534 real servers".into(),
            });
        }
        let mut workloads = Vec::new();
        for w in &s.workload {
            let vip = parse_addr(w.service.get_ref()).ok_or_else(|| {
                invalid(
                    w.service.span(),
                    format!("not an ip:port: {:?}", w.service.get_ref()),
                )
            })?;
            let key = ServiceKey::tcp(vip.ip(), vip.port());
            if rules.service(&key).is_none() {
                return Err(invalid(
                    w.service.span(),
                    format!("no TCP virtual service {vip} in the rules"),
                ));
            }
            let arrival = match w.arrival.get_ref() {
                Arrival::Poisson { rate } => ArrivalModel::Poisson(*rate),
                Arrival::Constant { rate } => ArrivalModel::Constant(1.0 / rate),
                Arrival::Onoff { rate, on, off } => ArrivalModel::OnOff {
                    rate: *rate,
                    on: *on,
                    off: *off,
                },
                Arrival::Schedule { points } => {
                    ArrivalModel::Schedule(points.iter().map(|p| (p[0], p[1])).collect())
                }
                Arrival::Trace { file } => ArrivalModel::Trace(read_trace(base, file)?),
            };
            let client_cdf = if w.clients.zipf > 0.0 {
                let mut acc = 0.0;
                let mut v = Vec::with_capacity(w.clients.count as usize);
                for i in 0..w.clients.count {
                    acc += 1.0 / ((i + 1) as f64).powf(w.clients.zipf);
                    v.push(acc);
                }
                for x in &mut v {
                    *x /= acc;
                }
                v
            } else {
                Vec::new()
            };
            workloads.push(WorkloadModel {
                vip,
                key,
                arrival,
                clients: w.clients.clone(),
                client_cdf,
                requests: w.requests.clone(),
                work: Sampler::new(w.work.get_ref(), base)?,
                think: match &w.think {
                    Some(t) => Some(Sampler::new(t.get_ref(), base)?),
                    None => None,
                },
            });
        }
        Ok(Model {
            name: s.name.clone().unwrap_or_else(|| "scenario".into()),
            scenario: s,
            rules,
            workloads,
            servers,
            sorry,
        })
    }

    /// Parses and compiles scenario text.
    pub fn from_toml(text: &str, base: Option<&Path>) -> Result<Model, ScenarioError> {
        let s = Scenario::from_toml(text, base)?;
        Model::build(s, text, base)
    }

    /// Reads, parses and compiles a scenario file.
    pub fn from_file(path: &Path) -> Result<Model, ScenarioError> {
        let (_, text) = read_named_file(None, &path.display().to_string())?;
        let mut m = Model::from_toml(&text, path.parent())?;
        if m.scenario.name.is_none() {
            m.name = path
                .file_stem()
                .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
        }
        Ok(m)
    }

    /// The same model with every service's scheduler replaced by `kind` (`ipvsadm -E ... -s`).
    pub fn with_scheduler(&self, kind: SchedKind) -> Model {
        let mut m = self.clone();
        let cfgs: Vec<_> = m.rules.services().map(|(c, _)| c.clone()).collect();
        for mut c in cfgs {
            c.scheduler = kind;
            // Editing an existing service with a valid scheduler cannot fail.
            let _ = m.rules.apply(&Command::EditService(c));
        }
        m
    }

    /// The schedulers the rules use, in service order, without repeats.
    pub fn schedulers(&self) -> Vec<SchedKind> {
        let mut v = Vec::new();
        for (c, _) in self.rules.services() {
            if !v.contains(&c.scheduler) {
                v.push(c.scheduler);
            }
        }
        v
    }

    /// The same model with every arrival rate multiplied by `f`.
    pub fn with_load_factor(&self, f: f64) -> Model {
        let mut m = self.clone();
        for w in &mut m.workloads {
            w.arrival = w.arrival.scaled(f);
        }
        m
    }

    /// Offered load: work arriving per second over capacity (sum of speed × workers of the
    /// servers in the rules).
    pub fn offered_load(&self) -> f64 {
        let d = *self.scenario.duration.get_ref();
        let work: f64 = self
            .workloads
            .iter()
            .map(|w| {
                let reqs = match w.requests {
                    Requests::Fixed { n } => n as f64,
                    Requests::Geometric { mean } => mean,
                };
                w.arrival.mean_rate(d) * reqs * w.work.mean()
            })
            .sum();
        let cap: f64 = self
            .servers
            .iter()
            .filter(|s| Some(s.addr) != self.sorry)
            .map(|s| s.speed * s.workers as f64)
            .sum();
        work / cap
    }
}

fn read_trace(base: Option<&Path>, file: &str) -> Result<Vec<(f64, IpAddr)>, ScenarioError> {
    let (path, text) = read_named_file(base, file)?;
    let err = |line: usize, m: String| ScenarioError::File {
        path: path.display().to_string(),
        message: format!("line {line}: {m}"),
    };
    let mut v = Vec::new();
    let mut last = 0.0;
    for (i, line) in text.lines().enumerate() {
        let l = line.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        let mut parts = l.split(',');
        let t = parts.next().unwrap_or("").trim();
        let c = parts.next().unwrap_or("").trim();
        let Ok(t) = t.parse::<f64>() else {
            if v.is_empty() && i == 0 {
                continue; // a header line
            }
            return Err(err(
                i + 1,
                format!("expected a time in seconds, found {t:?}"),
            ));
        };
        if !(t.is_finite() && t >= last) {
            return Err(err(
                i + 1,
                format!("times must not decrease ({t} after {last})"),
            ));
        }
        let ip = crate::scenario::parse_ip(c)
            .ok_or_else(|| err(i + 1, format!("expected a client IP address, found {c:?}")))?;
        if parts.next().is_some() {
            return Err(err(i + 1, "expected two fields: time,client_ip".into()));
        }
        last = t;
        v.push((t, ip));
    }
    Ok(v)
}
