//! The simulator's reports against closed-form queueing results, each formula written out here
//! (none of the simulator's code computes an expected value): M/M/1 (mean, percentiles of the
//! exponential response time, queue length), M/M/c (Erlang C), M/M/c/K and M/M/c/c (blocking,
//! Erlang B), M/G/1 FIFO (Pollaczek–Khinchine), Little's law, utilisation, and the
//! bookkeeping of arrivals into served, refused and failed connections.
//!
//! Tolerance: 2.5 × the replications' 95 % confidence half-width (Student t) plus a small
//! stated allowance (the histogram's percentiles are its buckets' highest values, up to
//! 0.1 % above the sample's; a finite horizon after warm-up).
mod support;

use lvs_sim::results::{t95, Est, FailReason, Summary};
use support::{close, run};

fn one_server(sched: &str, extra: &str) -> String {
    format!(
        "rules = \"\"\"\n-A -t 192.0.2.10:80 -s {sched}\n-a -t 192.0.2.10:80 -r 10.0.0.1:80 -m\n\"\"\"\n{extra}"
    )
}

/// Every measured arrival is served, failed (by a reason) or still open at the end; every
/// connection the director sent to a real server is that server's; the mean number in the
/// server is its throughput times its mean response time (Little).
fn check_bookkeeping(s: &Summary) {
    for r in &s.runs {
        let v = &r.services[0];
        let done = v.completed + v.failed.total();
        assert!(
            done <= v.connections && v.connections <= done + r.counters.in_flight_at_end,
            "rep {}: {} arrivals, {} completed, {} failed, {} open at the end",
            r.replication,
            v.connections,
            v.completed,
            v.failed.total(),
            r.counters.in_flight_at_end
        );
        let to_servers: u64 = r.servers.iter().map(|x| x.connections).sum();
        assert_eq!(
            to_servers,
            v.connections - v.failed.no_destination - v.failed.director_drop,
            "rep {}: connections by real server",
            r.replication
        );
        for x in &r.servers {
            assert!(
                x.completed + x.failed.total() <= x.connections,
                "rep {}: {}: {} connections, {} completed, {} failed",
                r.replication,
                x.server,
                x.connections,
                x.completed,
                x.failed.total()
            );
            // Little: L = X W (responses per second times seconds per response).
            let l = x.throughput * x.latency.mean / 1000.0;
            assert!(
                (x.mean_queue - l).abs() <= 0.02 * l + 1e-3,
                "rep {}: {}: mean in server {} vs X W {l}",
                r.replication,
                x.server,
                x.mean_queue
            );
        }
    }
}

/// M/M/1 FIFO, lambda = 70/s, mu = 100/s: the response time is exponential with rate
/// mu - lambda, so E[T] = 1/30 s, its q-quantile is -ln(1 - q)/(mu - lambda); utilisation
/// rho = 0.7, mean number in system rho/(1 - rho); throughput lambda.
#[test]
fn mm1_fifo_mean_percentiles_and_little() {
    let s = run(&one_server(
        "rr",
        r#"
seed = 21
duration = 410.0
warmup = 10.0
replications = 6
[[workload]]
service = "192.0.2.10:80"
arrival = { kind = "poisson", rate = 70.0 }
work = { kind = "exp", mean = 0.01 }
"#,
    ));
    let (lambda, mu) = (70.0f64, 100.0f64);
    let rho = lambda / mu;
    let v = &s.services[0];
    let ms = |x: f64| 1000.0 * x;
    close("M/M/1 mean (ms)", v.mean, ms(1.0 / (mu - lambda)), 0.03);
    for (what, e, q) in [
        ("p50", v.p50, 0.5),
        ("p95", v.p95, 0.95),
        ("p99", v.p99, 0.99),
    ] {
        let theory = ms(-(1.0f64 - q).ln() / (mu - lambda));
        close(&format!("M/M/1 {what} (ms)"), e, theory, 0.03);
    }
    close("M/M/1 throughput", v.throughput, lambda, 0.01);
    let srv = &s.servers[0];
    close("M/M/1 utilisation", srv.utilisation, rho, 0.01);
    close(
        "M/M/1 mean in system",
        srv.mean_queue,
        rho / (1.0 - rho),
        0.04,
    );
    check_bookkeeping(&s);
}

/// Erlang C: with offered load a = lambda/mu on c servers (rho = a/c < 1), the probability
/// of waiting is C = (a^c/c! / (1 - rho)) / (sum_{k<c} a^k/k! + a^c/c! / (1 - rho)), the mean
/// wait C/(c mu - lambda), the mean response that plus 1/mu.
fn erlang_c_response(c: u32, lambda: f64, mu: f64) -> f64 {
    let a = lambda / mu;
    let rho = a / c as f64;
    let mut term = 1.0;
    let mut sum = 0.0;
    for k in 0..c {
        sum += term;
        term *= a / (k + 1) as f64;
    }
    let top = term / (1.0 - rho);
    let pw = top / (sum + top);
    pw / (c as f64 * mu - lambda) + 1.0 / mu
}

/// M/M/4 FIFO (one real server with 4 workers), rho = 0.8: Erlang C.
#[test]
fn mmc_fifo_is_erlang_c() {
    let s = run(&one_server(
        "rr",
        r#"
seed = 22
duration = 210.0
warmup = 10.0
replications = 6
[[workload]]
service = "192.0.2.10:80"
arrival = { kind = "poisson", rate = 320.0 }
work = { kind = "exp", mean = 0.01 }
[server_defaults]
workers = 4
"#,
    ));
    let t = erlang_c_response(4, 320.0, 100.0);
    assert!((t - 0.017455).abs() < 1e-5, "{t}");
    close("M/M/4 mean (ms)", s.services[0].mean, 1000.0 * t, 0.03);
    close("M/M/4 utilisation", s.servers[0].utilisation, 0.8, 0.01);
    close(
        "M/M/4 mean in system",
        s.servers[0].mean_queue,
        320.0 * t,
        0.04,
    );
    check_bookkeeping(&s);
}

/// M/M/c/K blocking: p_n proportional to a^n/n! for n <= c and a^c/c! rho^(n-c) for
/// c < n <= K; an arrival (Poisson: it sees the time average) is refused with probability
/// p_K. K = c is Erlang B.
fn mmck_blocking(c: u32, k: u32, lambda: f64, mu: f64) -> f64 {
    let a = lambda / mu;
    let rho = a / c as f64;
    let mut p = Vec::new();
    let mut term = 1.0;
    for n in 0..=k {
        p.push(term);
        term *= if n < c { a / (n + 1) as f64 } else { rho };
    }
    p[k as usize] / p.iter().sum::<f64>()
}

/// A real server's backlog limit makes it M/M/c/K with K = workers + backlog: the refused
/// fraction of arrivals is p_K; backlog 0 is the loss system M/M/c/c (Erlang B).
#[test]
fn backlog_gives_mmck_blocking_and_erlang_b() {
    for (workers, backlog, lambda) in [(4u32, 0u32, 400.0f64), (2, 3, 200.0), (1, 1, 80.0)] {
        let theory = mmck_blocking(workers, workers + backlog, lambda, 100.0);
        let s = run(&one_server(
            "rr",
            &format!(
                r#"
seed = 23
duration = 110.0
warmup = 10.0
replications = 6
[[workload]]
service = "192.0.2.10:80"
arrival = {{ kind = "poisson", rate = {lambda} }}
work = {{ kind = "exp", mean = 0.01 }}
[server_defaults]
workers = {workers}
backlog = {backlog}
"#
            ),
        ));
        let blocked = Est::of(
            &s.runs
                .iter()
                .map(|r| {
                    let v = &r.services[0];
                    v.failed.as_array()[FailReason::Refused as usize] as f64 / v.connections as f64
                })
                .collect::<Vec<_>>(),
        );
        close(
            &format!("M/M/{workers}/{} blocking", workers + backlog),
            blocked,
            theory,
            0.02,
        );
        check_bookkeeping(&s);
    }
    // The textbook values.
    assert!((mmck_blocking(4, 4, 400.0, 100.0) - 32.0 / 103.0).abs() < 1e-12);
    assert!((mmck_blocking(2, 5, 200.0, 100.0) - 2.0 / 11.0).abs() < 1e-12);
}

/// M/G/1 FIFO: Pollaczek–Khinchine, E[T] = E[S] + lambda E[S^2] / (2 (1 - rho)), with
/// deterministic work (E[S^2] = d^2), uniform on [0, 2m] (E[S^2] = 4m^2/3) and Pareto with
/// alpha = 4 (finite variance: E[S^2] = alpha xm^2/(alpha - 2), xm = m (alpha - 1)/alpha).
#[test]
fn mg1_fifo_is_pollaczek_khinchine() {
    let (lambda, m) = (75.0f64, 0.01f64);
    let alpha = 4.0f64;
    let xm = m * (alpha - 1.0) / alpha;
    for (work, es2) in [
        (
            r#"{ kind = "deterministic", value = 0.01 }"#.to_string(),
            m * m,
        ),
        (
            r#"{ kind = "uniform", min = 0.0, max = 0.02 }"#.to_string(),
            4.0 * m * m / 3.0,
        ),
        (
            format!(r#"{{ kind = "pareto", mean = {m}, alpha = {alpha} }}"#),
            alpha * xm * xm / (alpha - 2.0),
        ),
    ] {
        let s = run(&one_server(
            "rr",
            &format!(
                r#"
seed = 24
duration = 210.0
warmup = 10.0
replications = 6
[[workload]]
service = "192.0.2.10:80"
arrival = {{ kind = "poisson", rate = {lambda} }}
work = {work}
"#
            ),
        ));
        let rho = lambda * m;
        let theory = 1000.0 * (m + lambda * es2 / (2.0 * (1.0 - rho)));
        close(
            &format!("M/G/1 {work} mean (ms)"),
            s.services[0].mean,
            theory,
            0.03,
        );
        close(
            &format!("M/G/1 {work} utilisation"),
            s.servers[0].utilisation,
            rho,
            0.01,
        );
        check_bookkeeping(&s);
    }
}

/// rr ignores speeds: two servers of speeds 1 and 3 (mu = 100 and 300) at 60 % of the total
/// capacity (lambda = 240) each get 120/s, which overloads the slow one (it serves at most
/// mu = 100/s, fully busy) while the fast one is at 120/300; wrr with weights 1:3 gives each
/// the same 60 % (the slow one sees every fourth arrival).
#[test]
fn rr_overloads_the_slow_server_wrr_does_not() {
    let rules = |sched: &str| {
        format!(
            r#"rules = """
-A -t 192.0.2.10:80 -s {sched}
-a -t 192.0.2.10:80 -r 10.0.0.1:80 -m -w 1
-a -t 192.0.2.10:80 -r 10.0.0.2:80 -m -w 3
"""
seed = 25
duration = 110.0
warmup = 10.0
replications = 4
[[workload]]
service = "192.0.2.10:80"
arrival = {{ kind = "poisson", rate = 240.0 }}
work = {{ kind = "exp", mean = 0.01 }}
[[server]]
addr = "10.0.0.2:80"
speed = 3.0
"#
        )
    };
    let rr = run(&rules("rr"));
    close(
        "rr slow server utilisation",
        rr.servers[0].utilisation,
        1.0,
        0.01,
    );
    close(
        "rr slow server throughput",
        rr.servers[0].throughput,
        100.0,
        0.03,
    );
    close(
        "rr fast server utilisation",
        rr.servers[1].utilisation,
        0.4,
        0.02,
    );
    let wrr = run(&rules("wrr"));
    for srv in &wrr.servers {
        close(
            &format!("wrr {} utilisation", srv.server),
            srv.utilisation,
            0.6,
            0.02,
        );
    }
    check_bookkeeping(&wrr);
}

/// Warm-up: a server overloaded from the start (lambda = 150/s, mu = 100/s) holds a backlog
/// at the end of the warm-up; the measured period excludes the warm-up's response times but
/// not its work: the server is busy all the time and completes mu = 100 responses per second
/// (utilisation law X = U mu), whichever request they answer.
#[test]
fn throughput_of_a_saturated_server_after_warmup() {
    let s = run(&one_server(
        "rr",
        r#"
seed = 27
duration = 60.0
warmup = 30.0
replications = 4
[[workload]]
service = "192.0.2.10:80"
arrival = { kind = "poisson", rate = 150.0 }
work = { kind = "exp", mean = 0.01 }
"#,
    ));
    close(
        "saturated utilisation",
        s.servers[0].utilisation,
        1.0,
        0.001,
    );
    close("saturated throughput", s.servers[0].throughput, 100.0, 0.02);
    close(
        "saturated service throughput",
        s.services[0].throughput,
        100.0,
        0.02,
    );
}

/// The time series covers the whole run: during the warm-up its response rate is the
/// arrival rate (M/M/1 at rho 0.5: lambda = 50 responses/s) as its utilisation is rho,
/// while the run's statistics exclude the warm-up.
#[test]
fn time_series_shows_the_warmup() {
    let s = run(&one_server(
        "rr",
        r#"
seed = 28
duration = 40.0
warmup = 20.0
replications = 2
[[workload]]
service = "192.0.2.10:80"
arrival = { kind = "poisson", rate = 50.0 }
work = { kind = "exp", mean = 0.01 }
[output]
sample_interval = 4.0
"#,
    ));
    for r in &s.runs {
        for row in r.series.iter().filter(|row| row.t <= 20.0) {
            let (rate, p50) = (row.services[0].rate, row.services[0].p50);
            let util = row.servers[0].utilisation;
            assert!((rate - 50.0).abs() < 15.0, "t {}: rate {rate}", row.t);
            assert!(
                p50 > 0.0 && (util - 0.5).abs() < 0.2,
                "t {}: {p50} {util}",
                row.t
            );
        }
    }
}

/// Servers failing (MTTF/MTTR) with no health checks: connections sent to a dead server are
/// that server's, and every arrival is accounted for.
#[test]
fn failed_connections_are_counted_once_by_server() {
    let s = run(r#"rules = """
-A -t 192.0.2.10:80 -s rr
-a -t 192.0.2.10:80 -r 10.0.0.1:80 -m
-a -t 192.0.2.10:80 -r 10.0.0.2:80 -m
"""
seed = 26
duration = 210.0
warmup = 10.0
replications = 3
[[workload]]
service = "192.0.2.10:80"
arrival = { kind = "poisson", rate = 50.0 }
requests = { kind = "geometric", mean = 3.0 }
think = { kind = "exp", mean = 0.1 }
work = { kind = "exp", mean = 0.01 }
[server_defaults]
mttf = 20.0
mttr = 5.0
backlog = 2
"#);
    let dead: u64 = s
        .runs
        .iter()
        .map(|r| r.services[0].failed.dead_server)
        .sum();
    assert!(dead > 100, "{dead}");
    check_bookkeeping(&s);
}

/// The 95 % two-sided Student-t quantiles, from the tables (df 1..=30 exact, then the values
/// at 40, 60, 120 and the normal limit must not be undercut: a smaller quantile would make
/// the interval narrower than 95 %).
#[test]
fn t_quantiles() {
    for (df, t) in [
        (1, 12.706),
        (2, 4.303),
        (5, 2.571),
        (10, 2.228),
        (30, 2.042),
        (31, 2.040),
        (35, 2.030),
        (40, 2.021),
        (50, 2.009),
        (60, 2.000),
        (80, 1.990),
        (100, 1.984),
        (120, 1.980),
        (1000, 1.962),
    ] {
        let got = t95(df);
        assert!((got - t).abs() <= 1.5e-3, "df {df}: {got} vs {t}");
    }
    assert!(t95(100_000) >= 1.95996);
}
