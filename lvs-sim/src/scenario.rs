//! Scenario files of the capacity-planning simulator (TOML).
//!
//! A scenario says what traffic reaches which virtual services, what the real servers behind
//! them can do, how they fail, how keepalived checks them and when the director fails over.
//! The rules are ipvsadm's language (`ipvsadm -S -n`), inline or in a file. Times are seconds
//! (floating point), rates are per second, work is seconds of service at speed 1.
//!
//! Every example file under `lvs-sim/scenarios/` is commented field by field; the reference
//! is the type documentation below. Unknown fields are errors (a typo never goes unnoticed),
//! and every error names the line and column of the offending value.
//!
//! ```
//! use lvs_sim::scenario::Scenario;
//! let s = Scenario::from_toml(r#"
//! duration = 60.0
//! rules = """
//! -A -t 192.0.2.10:80 -s lc
//! -a -t 192.0.2.10:80 -r 10.0.0.1:80 -m
//! """
//! [[workload]]
//! service = "192.0.2.10:80"
//! arrival = { kind = "poisson", rate = 50.0 }
//! work = { kind = "exp", mean = 0.01 }
//! "#, None).unwrap();
//! assert_eq!(s.workload.len(), 1);
//! let err = Scenario::from_toml("duration = \"long\"\n", None).unwrap_err();
//! assert!(err.to_string().starts_with("line 1, column 12:"), "{err}");
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The text is not valid TOML, or a value has the wrong type or an unknown field.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A value is well-formed but not acceptable (a negative rate, an unknown service...).
    #[error("line {line}, column {column}: {message}")]
    Invalid {
        /// 1-based line (0 when the value has no place in the file, e.g. a missing field).
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The rules (inline or from `rules_file`) do not parse or are refused.
    #[error("rules{where_}: {message}")]
    Rules {
        /// ` (file X)` or empty for inline rules.
        where_: String,
        /// The rules parser's message with its line and column.
        message: String,
    },
    /// A file the scenario names could not be read, or one of its lines is malformed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong (with the line for malformed content).
        message: String,
    },
    /// A feature the simulator cannot run yet.
    #[error("line {line}, column {column}: unsupported: {message}")]
    Unsupported {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is not supported, and why.
        message: String,
    },
}

fn one() -> u32 {
    1
}
fn default_seed() -> u64 {
    1
}

/// A whole scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A name for reports.
    #[serde(default)]
    pub name: Option<String>,
    /// Seed of every random stream (default 1). Same seed, same output, byte for byte.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulated seconds, warm-up included.
    pub duration: Spanned<f64>,
    /// Seconds at the start that are simulated but not measured (default 0).
    #[serde(default)]
    pub warmup: Option<Spanned<f64>>,
    /// Independent replications (default 1); run in parallel, results reported with
    /// Student-t 95 % confidence intervals.
    #[serde(default = "one")]
    pub replications: u32,
    /// The rules, in ipvsadm's language (`ipvsadm -S -n`).
    #[serde(default)]
    pub rules: Option<Spanned<String>>,
    /// A file holding the rules (relative to the scenario file).
    #[serde(default)]
    pub rules_file: Option<Spanned<String>>,
    /// Director settings.
    #[serde(default)]
    pub director: DirectorSpec,
    /// Traffic, one entry per virtual service.
    #[serde(default)]
    pub workload: Vec<Workload>,
    /// Settings of every real server that has no `[[server]]` entry of its own.
    #[serde(default)]
    pub server_defaults: ServerParams,
    /// Per real server settings, matched by address and port.
    #[serde(default)]
    pub server: Vec<ServerEntry>,
    /// keepalived health checking (absent: no checking, the rules never change).
    #[serde(default)]
    pub health: Option<HealthSpec>,
    /// A director failover.
    #[serde(default)]
    pub failover: Option<FailoverSpec>,
    /// Output settings.
    #[serde(default)]
    pub output: OutputSpec,
}

/// Director settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectorSpec {
    /// Room in the connection table (connections and templates; default 4 194 304).
    pub conn_capacity: u32,
    /// `expire_nodest_conn` sysctl (default off, as the kernel).
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template` sysctl (default off).
    pub expire_quiescent_template: bool,
    /// `conn_reuse_mode` sysctl (default 1).
    pub conn_reuse_mode: u8,
}

impl Default for DirectorSpec {
    fn default() -> Self {
        DirectorSpec {
            conn_capacity: 1 << 22,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: 1,
        }
    }
}

/// Traffic to one virtual service.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The virtual service, `vip:port` (TCP).
    pub service: Spanned<String>,
    /// How connections arrive.
    pub arrival: Spanned<Arrival>,
    /// Who the clients are (default: 65 536 clients from 198.18.0.0, uniform).
    #[serde(default)]
    pub clients: Clients,
    /// Requests per connection (default 1).
    #[serde(default)]
    pub requests: Requests,
    /// Work per request, seconds at speed 1.
    pub work: Spanned<Dist>,
    /// Client think time between two requests of a connection (default none).
    #[serde(default)]
    pub think: Option<Spanned<Dist>>,
}

/// An arrival process of connections.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Arrival {
    /// Poisson arrivals at `rate` per second.
    Poisson {
        /// Connections per second.
        rate: f64,
    },
    /// One arrival every `1/rate` seconds.
    Constant {
        /// Connections per second.
        rate: f64,
    },
    /// Bursts: Poisson at `rate` during "on" periods, nothing during "off" periods; both
    /// period lengths are exponential with the given means (a two-state MMPP).
    Onoff {
        /// Connections per second while on.
        rate: f64,
        /// Mean length of an on period (s).
        on: f64,
        /// Mean length of an off period (s).
        off: f64,
    },
    /// Poisson with a rate that changes over time: `points = [[t, rate], ...]`, each rate
    /// holding from its time to the next point (times increasing, the first at 0).
    Schedule {
        /// `[time, rate]` pairs.
        points: Vec<[f64; 2]>,
    },
    /// Arrival times and client addresses from a CSV file: `time,client_ip` per line (a
    /// header line and `#` comments allowed; times non-decreasing).
    Trace {
        /// The file, relative to the scenario.
        file: String,
    },
}

/// The client population of a workload.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Clients {
    /// How many distinct client addresses (1 ..= 16 777 216).
    pub count: u32,
    /// The first address (IPv4); client i is this plus i.
    pub base: Ipv4Addr,
    /// Zipf exponent of how often each client connects (0 = uniform).
    pub zipf: f64,
}

impl Default for Clients {
    fn default() -> Self {
        Clients {
            count: 65_536,
            base: Ipv4Addr::new(198, 18, 0, 0),
            zipf: 0.0,
        }
    }
}

/// Requests per connection.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Requests {
    /// Exactly `n` (at least 1).
    Fixed {
        /// Requests.
        n: u32,
    },
    /// Geometric on 1, 2, ... with this mean (at least 1).
    Geometric {
        /// Mean requests.
        mean: f64,
    },
}

impl Default for Requests {
    fn default() -> Self {
        Requests::Fixed { n: 1 }
    }
}

/// A distribution of a positive quantity (seconds).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Dist {
    /// Always `value`.
    Deterministic {
        /// The value.
        value: f64,
    },
    /// Exponential with this mean.
    Exp {
        /// Mean.
        mean: f64,
    },
    /// Lognormal with this mean and coefficient of variation.
    Lognormal {
        /// Mean.
        mean: f64,
        /// Standard deviation / mean.
        cv: f64,
    },
    /// Pareto with this mean and shape `alpha` (> 1).
    Pareto {
        /// Mean.
        mean: f64,
        /// Shape (tail index).
        alpha: f64,
    },
    /// Uniform on `[min, max]`.
    Uniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// Each value equally likely: inline `values`, or a `file` with one value per line.
    Empirical {
        /// Inline values.
        #[serde(default)]
        values: Vec<f64>,
        /// A file of values (relative to the scenario).
        #[serde(default)]
        file: Option<String>,
    },
}

impl Dist {
    /// The mean of the distribution.
    pub fn mean(&self) -> f64 {
        match self {
            Dist::Deterministic { value } => *value,
            Dist::Exp { mean } | Dist::Lognormal { mean, .. } | Dist::Pareto { mean, .. } => *mean,
            Dist::Uniform { min, max } => (min + max) / 2.0,
            Dist::Empirical { values, .. } => {
                values.iter().sum::<f64>() / values.len().max(1) as f64
            }
        }
    }
}

/// Queue discipline of a real server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Discipline {
    /// First come first served over `workers` workers.
    #[default]
    Fifo,
    /// Processor sharing: the capacity of `workers` workers shared equally.
    Ps,
}

/// What a real server can do and how it fails. Every field is optional; unset fields take
/// `[server_defaults]`, then the built-in defaults (speed 1, 1 worker, FIFO, no backlog
/// limit, no faults).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerParams {
    /// Work done per second per worker.
    pub speed: Option<f64>,
    /// Workers.
    pub workers: Option<u32>,
    /// FIFO or processor sharing.
    pub discipline: Option<Discipline>,
    /// Most requests waiting (not in service); a connection arriving when every worker is
    /// busy and that many wait is refused (RST). 0: refused only when every worker is busy.
    /// Absent: unlimited.
    pub backlog: Option<u32>,
    /// Mean time to failure (s), exponential.
    pub mttf: Option<f64>,
    /// Mean time to repair (s), exponential.
    pub mttr: Option<f64>,
    /// Failures at given times: `[{ at = 100.0, repair = 160.0 }]`.
    pub failures: Option<Vec<ScheduledFailure>>,
    /// Slowdowns: `[{ at = 10.0, until = 20.0, factor = 0.5 }]` (speed multiplied).
    pub slowdowns: Option<Vec<Slowdown>>,
}

/// A failure at a given time.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledFailure {
    /// When it dies (s).
    pub at: f64,
    /// When it comes back (s; absent: never).
    #[serde(default)]
    pub repair: Option<f64>,
}

/// A period of reduced (or increased) speed.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Slowdown {
    /// Start (s).
    pub at: f64,
    /// End (s).
    pub until: f64,
    /// Speed multiplier during the period (> 0).
    pub factor: f64,
}

/// One real server's settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// `rip:port` as in the rules.
    pub addr: Spanned<String>,
    /// Its parameters.
    #[serde(flatten)]
    pub params: ServerParams,
}

/// keepalived health checking (one TCP_CHECK per real server of every service).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSpec {
    /// `delay_loop` (s, default 60).
    pub delay_loop: f64,
    /// `connect_timeout` (s, default 5).
    pub connect_timeout: f64,
    /// `retry` (default 1).
    pub retry: u32,
    /// `delay_before_retry` (s, default 1).
    pub delay_before_retry: f64,
    /// `warmup` (s, default `delay_loop`).
    pub warmup: Option<f64>,
    /// `alpha`: servers start down until their first successful check.
    pub alpha: bool,
    /// `inhibit_on_failure`: a failed server is set to weight 0 instead of removed.
    pub inhibit_on_failure: bool,
    /// `quorum` (default 1).
    pub quorum: u32,
    /// `hysteresis` (default 0).
    pub hysteresis: u32,
    /// `sorry_server` (`ip:port`), added when the quorum is lost.
    pub sorry_server: Option<Spanned<String>>,
    /// Time a successful probe takes to answer (s, default 0.001).
    pub probe_time: f64,
}

impl Default for HealthSpec {
    fn default() -> Self {
        HealthSpec {
            delay_loop: 60.0,
            connect_timeout: 5.0,
            retry: 1,
            delay_before_retry: 1.0,
            warmup: None,
            alpha: false,
            inhibit_on_failure: false,
            quorum: 1,
            hysteresis: 0,
            sorry_server: None,
            probe_time: 0.001,
        }
    }
}

/// A director failover.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverSpec {
    /// When the backup takes over (s).
    pub at: f64,
    /// Whether connection sync (the IPVS sync daemon) ran before: `false` (the default) =
    /// the backup starts with an empty connection table, so every connection it does not know
    /// breaks; `true` = the active director ran as sync master and a backup director applied
    /// every datagram it sent (zero delay), so the connections already synced continue on
    /// their real servers through the backup.
    #[serde(default)]
    pub sync: Option<Spanned<bool>>,
}

/// Output settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSpec {
    /// Seconds between two time-series samples (default: duration / 100).
    pub sample_interval: Option<f64>,
}

/// Line and column (1-based) of byte offset `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..text.floor_char_boundary_compat(at)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, at: usize) -> usize;
}
impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut at: usize) -> usize {
        while at > 0 && !self.is_char_boundary(at) {
            at -= 1;
        }
        at
    }
}

/// A value's place in the text, for error messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Place {
    /// 1-based line (0: unknown).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// Most bytes read from a file a scenario names (trace, empirical values, rules).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Reads a file named by a scenario, bounded by [`MAX_FILE_BYTES`].
pub fn read_named_file(
    base: Option<&Path>,
    name: &str,
) -> Result<(PathBuf, String), ScenarioError> {
    let path = match base {
        Some(b) => b.join(name),
        None => PathBuf::from(name),
    };
    let err = |m: String| ScenarioError::File {
        path: path.display().to_string(),
        message: m,
    };
    let meta = std::fs::metadata(&path).map_err(|e| err(e.to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(err(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    Ok((path, text))
}

impl Scenario {
    /// Parses a scenario. `base` is the directory relative file names are resolved against
    /// (the scenario file's directory); files are read later, by
    /// [`crate::model::Model::build`].
    pub fn from_toml(text: &str, base: Option<&Path>) -> Result<Scenario, ScenarioError> {
        let _ = base;
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |r| line_col(text, r.start));
            ScenarioError::Syntax {
                line,
                column,
                message: e.message().trim_end().to_string(),
            }
        })?;
        s.check(text)?;
        Ok(s)
    }

    /// Reads and parses a scenario file.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let (_, text) = read_named_file(None, &path.display().to_string())?;
        Scenario::from_toml(&text, path.parent())
    }

    /// Seconds of warm-up (0 when not given).
    pub fn warmup(&self) -> f64 {
        self.warmup.as_ref().map_or(0.0, |w| *w.get_ref())
    }

    /// The place of a spanned value.
    pub fn place<T>(text: &str, v: &Spanned<T>) -> Place {
        let (line, column) = line_col(text, v.span().start);
        Place { line, column }
    }

    fn check(&self, text: &str) -> Result<(), ScenarioError> {
        let invalid = |p: Place, m: String| ScenarioError::Invalid {
            line: p.line,
            column: p.column,
            message: m,
        };
        let pos = |v: f64| v.is_finite() && v > 0.0;
        let d = *self.duration.get_ref();
        if !pos(d) || d > 1e9 {
            return Err(invalid(
                Self::place(text, &self.duration),
                format!("duration must be a positive number of seconds (at most 1e9), not {d}"),
            ));
        }
        let w = self.warmup();
        if !(w.is_finite() && (0.0..d).contains(&w)) {
            return Err(invalid(
                self.warmup
                    .as_ref()
                    .map_or(Place::default(), |v| Self::place(text, v)),
                format!("warmup must be at least 0 and less than the duration, not {w}"),
            ));
        }
        if self.replications == 0 || self.replications > 10_000 {
            return Err(invalid(
                Place::default(),
                "replications must be 1 ..= 10000".into(),
            ));
        }
        if self.rules.is_some() == self.rules_file.is_some() {
            return Err(invalid(
                Place::default(),
                "give exactly one of `rules` (inline) and `rules_file`".into(),
            ));
        }
        if self.workload.is_empty() {
            return Err(invalid(
                Place::default(),
                "no [[workload]]: nothing would arrive".into(),
            ));
        }
        for w in &self.workload {
            check_arrival(w.arrival.get_ref())
                .map_err(|m| invalid(Self::place(text, &w.arrival), m))?;
            check_dist(w.work.get_ref()).map_err(|m| invalid(Self::place(text, &w.work), m))?;
            if let Some(t) = &w.think {
                check_dist(t.get_ref()).map_err(|m| invalid(Self::place(text, t), m))?;
            }
            let c = &w.clients;
            if c.count == 0 || c.count > 1 << 24 || !(c.zipf.is_finite() && c.zipf >= 0.0) {
                return Err(invalid(
                    Self::place(text, &w.service),
                    "clients: count must be 1 ..= 16777216 and zipf a number >= 0".into(),
                ));
            }
            match w.requests {
                Requests::Fixed { n: 0 } => {
                    return Err(invalid(
                        Self::place(text, &w.service),
                        "requests: n must be at least 1".into(),
                    ))
                }
                Requests::Geometric { mean } if !(mean.is_finite() && mean >= 1.0) => {
                    return Err(invalid(
                        Self::place(text, &w.service),
                        "requests: mean must be at least 1".into(),
                    ))
                }
                _ => {}
            }
        }
        let check_params = |p: &ServerParams, at: Place| -> Result<(), ScenarioError> {
            let bad = |m: &str| Err(invalid(at, m.to_string()));
            if p.speed.is_some_and(|s| !pos(s)) {
                return bad("speed must be > 0");
            }
            if p.workers.is_some_and(|w| w == 0 || w > 1 << 20) {
                return bad("workers must be 1 ..= 1048576");
            }
            if p.mttf.is_some_and(|s| !pos(s)) || p.mttr.is_some_and(|s| !pos(s)) {
                return bad("mttf and mttr must be > 0");
            }
            if p.mttf.is_some() != p.mttr.is_some() {
                return bad("give both mttf and mttr, or neither");
            }
            for f in p.failures.iter().flatten() {
                if !(f.at.is_finite() && f.at >= 0.0)
                    || f.repair.is_some_and(|r| !(r.is_finite() && r > f.at))
                {
                    return bad("failures: `at` must be >= 0 and `repair` after `at`");
                }
            }
            for s in p.slowdowns.iter().flatten() {
                if !(s.at.is_finite() && s.at >= 0.0 && s.until > s.at && pos(s.factor)) {
                    return bad("slowdowns: need 0 <= at < until and factor > 0");
                }
            }
            Ok(())
        };
        check_params(&self.server_defaults, Place::default())?;
        for s in &self.server {
            check_params(&s.params, Self::place(text, &s.addr))?;
        }
        if let Some(h) = &self.health {
            let ok = pos(h.delay_loop)
                && pos(h.connect_timeout)
                && h.delay_before_retry.is_finite()
                && h.delay_before_retry >= 0.0
                && h.warmup.is_none_or(|w| w.is_finite() && w >= 0.0)
                && h.probe_time.is_finite()
                && h.probe_time >= 0.0
                && h.quorum >= 1
                && h.retry <= 1000;
            if !ok {
                return Err(invalid(
                    Place::default(),
                    "health: delay_loop and connect_timeout must be > 0, delay_before_retry, \
                     warmup and probe_time >= 0, quorum >= 1, retry <= 1000"
                        .into(),
                ));
            }
        }
        if let Some(f) = &self.failover {
            if !(f.at.is_finite() && f.at >= 0.0) {
                return Err(invalid(
                    Place::default(),
                    "failover: at must be >= 0".into(),
                ));
            }
        }
        if let Some(i) = self.output.sample_interval {
            if !pos(i) || d / i > 100_000.0 {
                return Err(invalid(
                    Place::default(),
                    "output.sample_interval must be > 0 and give at most 100000 samples".into(),
                ));
            }
        }
        Ok(())
    }
}

fn check_arrival(a: &Arrival) -> Result<(), String> {
    let rate_ok = |r: f64| r.is_finite() && r > 0.0 && r <= 1e9;
    match a {
        Arrival::Poisson { rate } | Arrival::Constant { rate } if !rate_ok(*rate) => {
            Err(format!("rate must be > 0 and at most 1e9, not {rate}"))
        }
        Arrival::Onoff { rate, on, off }
            if !(rate_ok(*rate)
                && on.is_finite()
                && *on > 0.0
                && off.is_finite()
                && *off > 0.0) =>
        {
            Err("onoff: rate, on and off must be > 0".into())
        }
        Arrival::Schedule { points } => {
            if points.is_empty() || points[0][0] != 0.0 {
                return Err("schedule: points must start at time 0".into());
            }
            for w in points.windows(2) {
                if w[1][0].partial_cmp(&w[0][0]) != Some(core::cmp::Ordering::Greater) {
                    return Err("schedule: times must increase".into());
                }
            }
            if points
                .iter()
                .any(|p| !(p[0].is_finite() && p[1].is_finite() && p[1] >= 0.0 && p[1] <= 1e9))
            {
                return Err("schedule: rates must be 0 ..= 1e9".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_dist(d: &Dist) -> Result<(), String> {
    let pos = |v: f64| v.is_finite() && v > 0.0;
    match d {
        Dist::Deterministic { value } if !(value.is_finite() && *value >= 0.0) => {
            Err("deterministic: value must be >= 0".into())
        }
        Dist::Exp { mean } if !pos(*mean) => Err("exp: mean must be > 0".into()),
        Dist::Lognormal { mean, cv } if !(pos(*mean) && cv.is_finite() && *cv >= 0.0) => {
            Err("lognormal: mean must be > 0 and cv >= 0".into())
        }
        Dist::Pareto { mean, alpha } if !(pos(*mean) && alpha.is_finite() && *alpha > 1.0) => {
            Err("pareto: mean must be > 0 and alpha > 1 (a finite mean)".into())
        }
        Dist::Uniform { min, max }
            if !(min.is_finite() && max.is_finite() && *min >= 0.0 && max >= min) =>
        {
            Err("uniform: need 0 <= min <= max".into())
        }
        Dist::Empirical { values, file } => {
            if values.is_empty() == file.is_none() {
                return Err("empirical: give exactly one of `values` and `file`".into());
            }
            if values.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err("empirical: values must be >= 0".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Parses `ip:port` of a scenario field.
pub fn parse_addr(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

/// Parses a client IP of a trace file.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}
