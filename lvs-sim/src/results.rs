//! What a replication measured, and the summaries over replications (Student-t 95 %
//! confidence intervals).

use std::fmt::Write as _;

use serde::Serialize;

use crate::buckets::{self, Buckets};
use crate::model::Model;

/// Why a connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FailReason {
    /// Scheduled to a real server that was dead and not yet detected (or never checked).
    DeadServer = 0,
    /// The real server died while the connection was open.
    ServerFailure = 1,
    /// The director failed over and the backup did not know the connection.
    Failover = 2,
    /// The real server's backlog was full (RST).
    Refused = 3,
    /// No real server available (the director answered ICMP port unreachable).
    NoDestination = 4,
    /// The director dropped the SYN (connection table full).
    DirectorDrop = 5,
}

/// Number of [`FailReason`]s.
pub const REASONS: usize = 6;

impl FailReason {
    /// Every reason in counter order.
    pub const ALL: [FailReason; REASONS] = [
        FailReason::DeadServer,
        FailReason::ServerFailure,
        FailReason::Failover,
        FailReason::Refused,
        FailReason::NoDestination,
        FailReason::DirectorDrop,
    ];

    /// A short label (JSON keys, table columns).
    pub const fn label(self) -> &'static str {
        match self {
            FailReason::DeadServer => "dead_server",
            FailReason::ServerFailure => "server_failure",
            FailReason::Failover => "director_failover",
            FailReason::Refused => "refused_backlog",
            FailReason::NoDestination => "no_destination",
            FailReason::DirectorDrop => "director_drop",
        }
    }

    /// A sentence for people.
    pub const fn describe(self) -> &'static str {
        match self {
            FailReason::DeadServer => "sent to a dead server before detection",
            FailReason::ServerFailure => "broken by a server failure",
            FailReason::Failover => "broken by director failover",
            FailReason::Refused => "refused by backlog",
            FailReason::NoDestination => "no destination",
            FailReason::DirectorDrop => "dropped by the director (table full)",
        }
    }
}

/// Per service accumulators of a run.
#[derive(Debug)]
pub struct SvcAcc {
    /// Connections that arrived (after warm-up).
    pub attempted: u64,
    /// Connections that completed every request.
    pub completed: u64,
    /// Failed connections by reason.
    pub failed: [u64; REASONS],
    /// Response times (ns), in the buckets of an HdrHistogram (lowest value 1, 3 significant digits).
    pub(crate) rt: Buckets,
    /// Sum of response times (ns).
    pub sum: u128,
    /// Responses in the measured period to requests made during the warm-up (counted in
    /// the throughput, not in `rt`).
    pub early: u64,
}

impl SvcAcc {
    /// Empty.
    pub fn new() -> Self {
        SvcAcc {
            attempted: 0,
            completed: 0,
            failed: [0; REASONS],
            rt: Buckets::default(),
            sum: 0,
            early: 0,
        }
    }
    /// Records one response time.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.rt.add(buckets::index(ns.max(1)));
        self.sum += ns as u128;
    }
}

impl Default for SvcAcc {
    fn default() -> Self {
        Self::new()
    }
}

/// Per real server accumulators of a run.
#[derive(Debug)]
pub struct SrvAcc {
    /// Connections scheduled to it (after warm-up).
    pub connections: u64,
    /// Connections completed.
    pub completed: u64,
    /// Failed connections by reason.
    pub failed: [u64; REASONS],
    /// Response times (ns), in the buckets of an HdrHistogram (lowest value 1, 3 significant digits).
    pub(crate) rt: Buckets,
    /// Sum of response times.
    pub sum: u128,
    /// Responses in the measured period to requests made during the warm-up (counted in
    /// the throughput, not in `rt`).
    pub early: u64,
    /// ∫ busy workers dt (measured period).
    pub busy_area: f64,
    /// ∫ requests in system dt.
    pub n_area: f64,
    /// Seconds up.
    pub up_time: f64,
    /// ∫ busy over the current sample interval.
    pub iv_busy: f64,
    /// ∫ in system over the current sample interval.
    pub iv_n: f64,
}

impl SrvAcc {
    /// Empty.
    pub fn new() -> Self {
        SrvAcc {
            connections: 0,
            completed: 0,
            failed: [0; REASONS],
            rt: Buckets::default(),
            sum: 0,
            early: 0,
            busy_area: 0.0,
            n_area: 0.0,
            up_time: 0.0,
            iv_busy: 0.0,
            iv_n: 0.0,
        }
    }
    /// Records one response time.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.rt.add(buckets::index(ns.max(1)));
        self.sum += ns as u128;
    }
}

impl Default for SrvAcc {
    fn default() -> Self {
        Self::new()
    }
}

/// One time-series sample of one service.
#[derive(Clone, Debug, Serialize)]
pub struct SvcSample {
    /// Responses per second in the interval.
    pub rate: f64,
    /// Response-time percentiles in the interval (ms; 0 without responses).
    pub p50: f64,
    /// 95th.
    pub p95: f64,
    /// 99th.
    pub p99: f64,
    /// Failed connections in the interval.
    pub failures: u64,
}

/// One time-series sample of one real server.
#[derive(Clone, Debug, Serialize)]
pub struct SrvSample {
    /// The director's active connection count.
    pub active: u32,
    /// The director's inactive connection count.
    pub inactive: u32,
    /// Mean requests in the server over the interval.
    pub in_system: f64,
    /// Mean utilisation over the interval.
    pub utilisation: f64,
    /// Up at the sample time.
    pub up: bool,
}

/// A time-series row.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// End of the interval (s).
    pub t: f64,
    /// Per service.
    pub services: Vec<SvcSample>,
    /// Per real server.
    pub servers: Vec<SrvSample>,
}

/// Time series of a run.
#[derive(Debug)]
pub struct Series {
    /// Response times of the current interval, by service.
    iv: Vec<Buckets>,
    fails: Vec<u64>,
    /// Rows.
    pub rows: Vec<Sample>,
}

impl Series {
    /// Empty series for `nsvc` services.
    pub fn new(nsvc: usize, _nsrv: usize) -> Self {
        Series {
            iv: (0..nsvc).map(|_| Buckets::default()).collect(),
            fails: vec![0; nsvc],
            rows: Vec::new(),
        }
    }
    /// A response of service `s`.
    #[inline]
    pub fn record(&mut self, s: usize, ns: u64) {
        self.record_index(s, buckets::index(ns.max(1)));
    }
    /// A response of service `s` in bucket `i` ([`buckets::index`]).
    #[inline]
    pub(crate) fn record_index(&mut self, s: usize, i: usize) {
        self.iv[s].add(i);
    }
    /// A failure of service `s`.
    pub fn fail(&mut self, s: usize) {
        self.fails[s] += 1;
    }
    /// Closes an interval.
    pub fn sample(&mut self, t: f64, dt: f64, srv: Vec<(u32, u32, f64, f64, bool)>) {
        let services = self
            .iv
            .iter_mut()
            .zip(self.fails.iter_mut())
            .map(|(h, f)| {
                let n = h.len();
                let [p50, p95, p99] = if n == 0 {
                    [0.0; 3]
                } else {
                    h.values_at_quantiles([0.5, 0.95, 0.99], n)
                        .map(|v| v as f64 / 1e6)
                };
                let s = SvcSample {
                    rate: n as f64 / dt,
                    p50,
                    p95,
                    p99,
                    failures: *f,
                };
                h.clear();
                *f = 0;
                s
            })
            .collect();
        let servers = srv
            .into_iter()
            .map(|(active, inactive, in_system, utilisation, up)| SrvSample {
                active,
                inactive,
                in_system,
                utilisation,
                up,
            })
            .collect();
        self.rows.push(Sample {
            t,
            services,
            servers,
        });
    }
}

/// Response-time statistics (milliseconds).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Responses.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// The statistics of the response times counted in `b` (the histogram's percentiles and
    /// maximum, read from its buckets), whose sum is `sum`.
    fn of(b: &Buckets, sum: u128) -> Latency {
        let n = b.len();
        if n == 0 {
            return Latency::default();
        }
        let [p50, p95, p99, p999] = b
            .values_at_quantiles([0.5, 0.95, 0.99, 0.999], n)
            .map(|v| v as f64 / 1e6);
        Latency {
            count: n,
            mean: sum as f64 / n as f64 / 1e6,
            p50,
            p95,
            p99,
            p999,
            max: b.max() as f64 / 1e6,
        }
    }
}

/// Failures by reason, in [`FailReason::ALL`] order.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Failures {
    /// See [`FailReason::DeadServer`].
    pub dead_server: u64,
    /// See [`FailReason::ServerFailure`].
    pub server_failure: u64,
    /// See [`FailReason::Failover`].
    pub director_failover: u64,
    /// See [`FailReason::Refused`].
    pub refused_backlog: u64,
    /// See [`FailReason::NoDestination`].
    pub no_destination: u64,
    /// See [`FailReason::DirectorDrop`].
    pub director_drop: u64,
}

impl Failures {
    fn of(f: &[u64; REASONS]) -> Failures {
        Failures {
            dead_server: f[0],
            server_failure: f[1],
            director_failover: f[2],
            refused_backlog: f[3],
            no_destination: f[4],
            director_drop: f[5],
        }
    }
    /// All reasons.
    pub fn total(&self) -> u64 {
        self.as_array().iter().sum()
    }
    /// In [`FailReason::ALL`] order.
    pub fn as_array(&self) -> [u64; REASONS] {
        [
            self.dead_server,
            self.server_failure,
            self.director_failover,
            self.refused_backlog,
            self.no_destination,
            self.director_drop,
        ]
    }
}

/// A virtual service's results.
#[derive(Clone, Debug, Serialize)]
pub struct SvcResult {
    /// `vip:port`.
    pub service: String,
    /// Its scheduler.
    pub scheduler: String,
    /// Connections that arrived.
    pub connections: u64,
    /// Connections that completed.
    pub completed: u64,
    /// Failed connections by reason.
    pub failed: Failures,
    /// Responses per second in the measured period (requests made in the warm-up
    /// included).
    pub throughput: f64,
    /// Response times.
    pub latency: Latency,
    /// Completed / (completed + failed).
    pub availability: f64,
}

/// A real server's results.
#[derive(Clone, Debug, Serialize)]
pub struct SrvResult {
    /// `rip:port`.
    pub server: String,
    /// Connections the director sent to it.
    pub connections: u64,
    /// Connections completed.
    pub completed: u64,
    /// Failed connections by reason.
    pub failed: Failures,
    /// Responses per second in the measured period (requests made in the warm-up
    /// included).
    pub throughput: f64,
    /// Response times.
    pub latency: Latency,
    /// Busy workers / workers, time average.
    pub utilisation: f64,
    /// Requests in the server (waiting and in service), time average.
    pub mean_queue: f64,
    /// Fraction of the time it was up.
    pub availability: f64,
}

/// Engine counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Counters {
    /// Events processed.
    pub events: u64,
    /// Packets of the connections' TCP exchanges through the director (including the few
    /// that cannot change its state and are not handed over: see [`crate::engine`]).
    pub packets: u64,
    /// Connections simulated (warm-up included).
    pub connections: u64,
    /// Connections still open at the end.
    pub in_flight_at_end: u64,
    /// Most connections open at once.
    pub peak_in_flight: u64,
    /// Entries in the director's table at the end.
    pub director_table_at_end: u64,
}

/// An event of the run (failures, repairs, health decisions, failover).
#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    /// Time (s).
    pub t: f64,
    /// What happened.
    pub what: String,
}

/// One replication's results.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// Replication index.
    pub replication: u32,
    /// Seconds measured (duration − warm-up).
    pub measured_secs: f64,
    /// Per virtual service (workload order).
    pub services: Vec<SvcResult>,
    /// Per real server.
    pub servers: Vec<SrvResult>,
    /// Engine counters.
    pub counters: Counters,
    /// Events.
    pub log: Vec<LogEntry>,
    /// Time series.
    #[serde(skip)]
    pub series: Vec<Sample>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn finish(
    m: &Model,
    rep: u32,
    measured: f64,
    svc: Vec<SvcAcc>,
    srv: Vec<SrvAcc>,
    series: Series,
    log: Vec<(f64, String)>,
    counters: Counters,
) -> RunResult {
    let services = svc
        .iter()
        .zip(&m.workloads)
        .map(|(a, w)| {
            let sched = m
                .rules
                .service(&w.key)
                .map_or("?".into(), |(c, _)| c.scheduler.name().to_string());
            let nf: u64 = a.failed.iter().sum();
            SvcResult {
                service: w.vip.to_string(),
                scheduler: sched,
                connections: a.attempted,
                completed: a.completed,
                failed: Failures::of(&a.failed),
                throughput: (a.rt.len() + a.early) as f64 / measured,
                latency: Latency::of(&a.rt, a.sum),
                availability: if a.completed + nf == 0 {
                    1.0
                } else {
                    a.completed as f64 / (a.completed + nf) as f64
                },
            }
        })
        .collect();
    let servers = srv
        .iter()
        .zip(&m.servers)
        .map(|(a, s)| SrvResult {
            server: s.addr.to_string(),
            connections: a.connections,
            completed: a.completed,
            failed: Failures::of(&a.failed),
            throughput: (a.rt.len() + a.early) as f64 / measured,
            latency: Latency::of(&a.rt, a.sum),
            utilisation: a.busy_area / (measured * s.workers as f64),
            mean_queue: a.n_area / measured,
            availability: a.up_time / measured,
        })
        .collect();
    RunResult {
        replication: rep,
        measured_secs: measured,
        services,
        servers,
        counters,
        log: log
            .into_iter()
            .map(|(t, what)| LogEntry { t, what })
            .collect(),
        series: series.rows,
    }
}

/// Two-sided 95 % Student-t quantile for `df` degrees of freedom.
pub fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => T[df - 1],
        _ => {
            // Beyond the table, the Cornish-Fisher expansion of the t quantile in 1/df about
            // the normal one (Abramowitz & Stegun 26.7.5), within 1e-6 of it from df = 30 on:
            // a step table's values at 60 or 120 would undercut the quantile between (a CI
            // narrower than 95 %).
            const Z: f64 = 1.959_963_984_540_054;
            let z2 = Z * Z;
            let g1 = (z2 + 1.0) * Z / 4.0;
            let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * Z / 96.0;
            let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * Z / 384.0;
            let g4 =
                ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * Z / 92160.0;
            let v = df as f64;
            Z + (g1 + (g2 + (g3 + g4 / v) / v) / v) / v
        }
    }
}

/// A mean over replications with the half-width of its 95 % confidence interval.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Est {
    /// Mean.
    pub mean: f64,
    /// Half-width of the 95 % CI (Student t; infinite with one replication... reported as 0).
    pub ci95: f64,
}

impl Est {
    /// The estimate of the values.
    pub fn of(v: &[f64]) -> Est {
        let n = v.len();
        if n == 0 {
            return Est::default();
        }
        let mean = v.iter().sum::<f64>() / n as f64;
        if n < 2 {
            return Est { mean, ci95: 0.0 };
        }
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
        Est {
            mean,
            ci95: t95(n - 1) * (var / n as f64).sqrt(),
        }
    }

    /// `mean ± ci` with `d` decimals.
    pub fn fmt(&self, d: usize) -> String {
        if self.ci95 > 0.0 {
            format!("{:.d$}±{:.d$}", self.mean, self.ci95)
        } else {
            format!("{:.d$}", self.mean)
        }
    }
}

/// A service summarised over replications.
#[derive(Clone, Debug, Serialize)]
pub struct SvcSummary {
    /// `vip:port`.
    pub service: String,
    /// Scheduler.
    pub scheduler: String,
    /// Connections per replication.
    pub connections: Est,
    /// Responses per second.
    pub throughput: Est,
    /// Mean response time (ms).
    pub mean: Est,
    /// Median (ms).
    pub p50: Est,
    /// 95th (ms).
    pub p95: Est,
    /// 99th (ms).
    pub p99: Est,
    /// 99.9th (ms).
    pub p999: Est,
    /// Failed connections per replication, by reason.
    pub failed: Vec<(String, Est)>,
    /// Completed / (completed + failed).
    pub availability: Est,
}

/// A real server summarised over replications.
#[derive(Clone, Debug, Serialize)]
pub struct SrvSummary {
    /// `rip:port`.
    pub server: String,
    /// Connections per replication.
    pub connections: Est,
    /// Responses per second.
    pub throughput: Est,
    /// Mean response time (ms).
    pub mean: Est,
    /// 99th (ms).
    pub p99: Est,
    /// Utilisation.
    pub utilisation: Est,
    /// Mean requests in the server.
    pub mean_queue: Est,
    /// Failed connections per replication.
    pub failed: Est,
    /// Fraction of time up.
    pub availability: Est,
}

/// Results of a scenario under one scheduler configuration, over its replications.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// A label (the scheduler for `compare`).
    pub label: String,
    /// Replications.
    pub replications: usize,
    /// Seconds measured per replication.
    pub measured_secs: f64,
    /// Per service.
    pub services: Vec<SvcSummary>,
    /// Per real server.
    pub servers: Vec<SrvSummary>,
    /// Each replication.
    pub runs: Vec<RunResult>,
}

impl Summary {
    /// Summarises replications (in replication order: the result does not depend on which
    /// thread ran which).
    pub fn of(scenario: &str, label: &str, runs: Vec<RunResult>) -> Summary {
        let first = &runs[0];
        let est = |f: &dyn Fn(&RunResult) -> f64| Est::of(&runs.iter().map(f).collect::<Vec<_>>());
        let services = (0..first.services.len())
            .map(|i| {
                let s = |r: &RunResult| r.services[i].clone();
                SvcSummary {
                    service: first.services[i].service.clone(),
                    scheduler: first.services[i].scheduler.clone(),
                    connections: est(&|r| s(r).connections as f64),
                    throughput: est(&|r| s(r).throughput),
                    mean: est(&|r| s(r).latency.mean),
                    p50: est(&|r| s(r).latency.p50),
                    p95: est(&|r| s(r).latency.p95),
                    p99: est(&|r| s(r).latency.p99),
                    p999: est(&|r| s(r).latency.p999),
                    failed: FailReason::ALL
                        .iter()
                        .map(|f| {
                            (
                                f.label().to_string(),
                                est(&|r| r.services[i].failed.as_array()[*f as usize] as f64),
                            )
                        })
                        .collect(),
                    availability: est(&|r| s(r).availability),
                }
            })
            .collect();
        let servers = (0..first.servers.len())
            .map(|i| {
                let s = |r: &RunResult| r.servers[i].clone();
                SrvSummary {
                    server: first.servers[i].server.clone(),
                    connections: est(&|r| s(r).connections as f64),
                    throughput: est(&|r| s(r).throughput),
                    mean: est(&|r| s(r).latency.mean),
                    p99: est(&|r| s(r).latency.p99),
                    utilisation: est(&|r| s(r).utilisation),
                    mean_queue: est(&|r| s(r).mean_queue),
                    failed: est(&|r| s(r).failed.total() as f64),
                    availability: est(&|r| s(r).availability),
                }
            })
            .collect();
        Summary {
            scenario: scenario.to_string(),
            label: label.to_string(),
            replications: runs.len(),
            measured_secs: first.measured_secs,
            services,
            servers,
            runs,
        }
    }

    /// The summary table for people.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "== {} [{}]: {} replication(s) of {:.0} s measured; times in ms, ± is the 95 % CI",
            self.scenario, self.label, self.replications, self.measured_secs
        );
        let _ = writeln!(
            o,
            "{:<22} {:>5} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}",
            "service", "sched", "conns", "resp/s", "mean", "p50", "p95", "p99", "p99.9", "avail"
        );
        for s in &self.services {
            let _ = writeln!(
                o,
                "{:<22} {:>5} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}",
                s.service,
                s.scheduler,
                s.connections.fmt(0),
                s.throughput.fmt(1),
                s.mean.fmt(2),
                s.p50.fmt(2),
                s.p95.fmt(2),
                s.p99.fmt(2),
                s.p999.fmt(2),
                format!("{:.5}", s.availability.mean),
            );
            for (label, e) in &s.failed {
                if e.mean > 0.0 {
                    let why = FailReason::ALL
                        .iter()
                        .find(|f| f.label() == label)
                        .map_or("", |f| f.describe());
                    let _ = writeln!(o, "    failed: {:>12}  {}", e.fmt(1), why);
                }
            }
        }
        let _ = writeln!(
            o,
            "{:<22} {:>12} {:>10} {:>10} {:>10} {:>11} {:>11} {:>10} {:>9}",
            "real server", "conns", "resp/s", "mean", "p99", "util", "queue", "failed", "up"
        );
        for s in &self.servers {
            let _ = writeln!(
                o,
                "{:<22} {:>12} {:>10} {:>10} {:>10} {:>11} {:>11} {:>10} {:>9}",
                s.server,
                s.connections.fmt(0),
                s.throughput.fmt(1),
                s.mean.fmt(2),
                s.p99.fmt(2),
                s.utilisation.fmt(3),
                s.mean_queue.fmt(2),
                s.failed.fmt(0),
                format!("{:.4}", s.availability.mean),
            );
        }
        o
    }

    /// The first replication's time series as CSV: one row per sample, columns per service
    /// and per real server.
    pub fn csv(&self) -> String {
        let r = &self.runs[0];
        let mut o = String::from("t");
        for s in &self.services {
            for c in ["rate", "p50_ms", "p95_ms", "p99_ms", "failures"] {
                let _ = write!(o, ",{}:{c}", s.service);
            }
        }
        for s in &self.servers {
            for c in ["active", "inactive", "in_system", "util", "up"] {
                let _ = write!(o, ",{}:{c}", s.server);
            }
        }
        o.push('\n');
        for row in &r.series {
            let _ = write!(o, "{}", row.t);
            for s in &row.services {
                let _ = write!(
                    o,
                    ",{:.3},{:.3},{:.3},{:.3},{}",
                    s.rate, s.p50, s.p95, s.p99, s.failures
                );
            }
            for s in &row.servers {
                let _ = write!(
                    o,
                    ",{},{},{:.3},{:.4},{}",
                    s.active, s.inactive, s.in_system, s.utilisation, s.up as u8
                );
            }
            o.push('\n');
        }
        o
    }
}
