//! The simulator against queueing theory. Every connection goes through the director, so
//! these also check that IPVS's decisions give the textbook systems they should.
//!
//! Tolerance: the replications' 95 % confidence half-width (Student t) times 2.5, plus a
//! small allowance for what the theory leaves out (a finite horizon after warm-up; a finite
//! number of servers for the mean-field power-of-two result), stated in each test.
mod support;

use lvs_sim::results::Est;
use support::{close, run};

fn farm(n: usize, sched: &str, extra: &str) -> String {
    let mut rules = format!("-A -t 192.0.2.10:80 -s {sched}\n");
    for i in 1..=n {
        rules += &format!(
            "-a -t 192.0.2.10:80 -r 10.0.{}.{}:80 -m\n",
            i / 250,
            i % 250
        );
    }
    format!("rules = \"\"\"\n{rules}\"\"\"\n{extra}")
}

/// sh with many random clients splits a Poisson stream at random: each server is M/M/1,
/// E[T] = 1 / (mu - lambda).
#[test]
fn sh_many_clients_is_mm1_per_server() {
    // 4 servers, mu = 100/s, lambda = 60/s each.
    let text = farm(
        4,
        "sh",
        r#"
seed = 7
duration = 210.0
warmup = 10.0
replications = 6
[[workload]]
service = "192.0.2.10:80"
arrival = { kind = "poisson", rate = 240.0 }
clients = { count = 1000000 }
work = { kind = "exp", mean = 0.01 }
"#,
    );
    let s = run(&text);
    // Random splitting by client hash: each server sees 1/4 of the clients, the rates differ
    // slightly by the hash; check each against its own measured rate.
    for srv in &s.servers {
        let lambda = srv.connections.mean / s.measured_secs;
        let theory = 1000.0 / (100.0 - lambda);
        close(&format!("{} mean", srv.server), srv.mean, theory, 0.04);
        close(
            &format!("{} utilisation", srv.server),
            srv.utilisation,
            lambda / 100.0,
            0.03,
        );
    }
}

/// rr gives each of k servers every k-th arrival of a Poisson stream: Erlang-k interarrivals,
/// so each server is E_k/M/1. GI/M/1: E[T] = 1 / (mu (1 - sigma)) with sigma the root in
/// (0,1) of sigma = A*(mu (1 - sigma)), A*(s) = (k lambda / (k lambda + s))^k.
#[test]
fn rr_gives_erlang_k_arrivals_per_server() {
    let k = 4.0f64;
    let (lambda, mu) = (70.0f64, 100.0f64);
    let mut sigma = 0.5f64;
    for _ in 0..10_000 {
        sigma = (k * lambda / (k * lambda + mu * (1.0 - sigma))).powf(k);
    }
    let theory = 1000.0 / (mu * (1.0 - sigma));
    let mm1 = 1000.0 / (mu - lambda);
    assert!(theory < 0.75 * mm1, "E4/M/1 is much better than M/M/1");
    let text = farm(
        4,
        "rr",
        r#"
seed = 11
duration = 130.0
warmup = 10.0
replications = 4
[[workload]]
service = "192.0.2.10:80"
arrival = { kind = "poisson", rate = 280.0 }
work = { kind = "exp", mean = 0.01 }
"#,
    );
    let s = run(&text);
    close("rr E_4/M/1 mean", s.services[0].mean, theory, 0.04);
}

/// Join-the-shortest-queue, simulated independently here (no director): N exponential
/// servers, Poisson arrivals, each job to a shortest queue (ties at random). Returns the mean
/// response time in ms over `reps` replications.
fn jsq(n: usize, lambda: f64, mu: f64, jobs: usize, reps: u64) -> Est {
    let mut means = Vec::new();
    for r in 0..reps {
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (r + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
        let mut u = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        // Queues hold the arrival times of their jobs; next completion time per server.
        let mut q: Vec<std::collections::VecDeque<f64>> = vec![Default::default(); n];
        let mut done = vec![f64::INFINITY; n];
        let mut t_arr = -u().ln() / lambda;
        let (mut sum, mut count, mut arrivals) = (0.0, 0u64, 0usize);
        let warm = jobs / 10;
        while arrivals < jobs {
            let (i, &tc) = done
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .unwrap();
            if t_arr <= tc {
                let min = q.iter().map(|x| x.len()).min().unwrap();
                let ties: Vec<usize> = (0..n).filter(|&j| q[j].len() == min).collect();
                let j = ties[((u() * ties.len() as f64) as usize).min(ties.len() - 1)];
                if q[j].is_empty() {
                    done[j] = t_arr - u().ln() / mu;
                }
                q[j].push_back(t_arr);
                arrivals += 1;
                t_arr += -u().ln() / lambda;
            } else {
                let a = q[i].pop_front().unwrap();
                if arrivals > warm {
                    sum += tc - a;
                    count += 1;
                }
                done[i] = if q[i].is_empty() {
                    f64::INFINITY
                } else {
                    tc - u().ln() / mu
                };
            }
        }
        means.push(sum / count as f64 * 1000.0);
    }
    Est::of(&means)
}

/// lc with zero network delay: a connection is active exactly while its request is at the
/// server, so lc joins the shortest queue (inactive TIME_WAIT counts only break ties, which
/// does not matter for identical servers).
#[test]
fn lc_is_join_the_shortest_queue() {
    let text = farm(
        4,
        "lc",
        r#"
seed = 3
duration = 130.0
warmup = 10.0
replications = 4
[[workload]]
service = "192.0.2.10:80"
arrival = { kind = "poisson", rate = 340.0 }
work = { kind = "exp", mean = 0.01 }
"#,
    );
    let s = run(&text);
    let j = jsq(4, 340.0, 100.0, 200_000, 4);
    let e = s.services[0].mean;
    let tol = 2.5 * (e.ci95 + j.ci95) + 0.03 * j.mean;
    assert!(
        (e.mean - j.mean).abs() <= tol,
        "lc {e:?} vs JSQ {j:?} (tolerance {tol})"
    );
    // And much better than random splitting at this load (M/M/1 at rho 0.85: 66.7 ms).
    assert!(e.mean < 0.6 * 1000.0 / (100.0 - 85.0), "{e:?}");
}

/// twos: Mitzenmacher's fixed point for two random choices, P(queue >= i) = rho^(2^i - 1),
/// so E[T] = (1/lambda) * sum_i rho^(2^i - 1) (Little). Exact as N -> infinity; with 32
/// servers the allowance is 6 %.
#[test]
fn twos_matches_power_of_two_fixed_point() {
    let (rho, mu, n) = (0.8f64, 100.0f64, 32usize);
    let lambda = rho * mu;
    let mut sum = 0.0;
    for i in 1..20 {
        sum += rho.powi((1i32 << i) - 1);
    }
    let theory = sum / lambda * 1000.0;
    let text = farm(
        n,
        "twos",
        &format!(
            r#"
seed = 5
duration = 45.0
warmup = 5.0
replications = 4
[[workload]]
service = "192.0.2.10:80"
arrival = {{ kind = "poisson", rate = {} }}
work = {{ kind = "exp", mean = 0.01 }}
"#,
            lambda * n as f64
        ),
    );
    let s = run(&text);
    close("twos mean", s.services[0].mean, theory, 0.06);
}

/// Processor sharing is insensitive to the work distribution: M/G/1-PS has
/// E[T] = E[S] / (1 - rho) for exponential, deterministic and lognormal work alike.
#[test]
fn processor_sharing_is_insensitive() {
    let theory = 10.0 / (1.0 - 0.7);
    for work in [
        r#"{ kind = "exp", mean = 0.01 }"#,
        r#"{ kind = "deterministic", value = 0.01 }"#,
        r#"{ kind = "lognormal", mean = 0.01, cv = 2.0 }"#,
    ] {
        let text = farm(
            1,
            "rr",
            &format!(
                r#"
seed = 9
duration = 210.0
warmup = 10.0
replications = 5
[[workload]]
service = "192.0.2.10:80"
arrival = {{ kind = "poisson", rate = 70.0 }}
work = {work}
[server_defaults]
discipline = "ps"
"#
            ),
        );
        let s = run(&text);
        close(&format!("PS {work}"), s.services[0].mean, theory, 0.05);
    }
}

/// A server failing and repaired with exponential times is up MTTF / (MTTF + MTTR) of the
/// time.
#[test]
fn availability_is_mttf_over_mttf_plus_mttr() {
    let text = farm(
        1,
        "rr",
        r#"
seed = 13
duration = 20000.0
replications = 6
[[workload]]
service = "192.0.2.10:80"
arrival = { kind = "poisson", rate = 0.5 }
work = { kind = "exp", mean = 0.01 }
[server_defaults]
mttf = 50.0
mttr = 10.0
"#,
    );
    let s = run(&text);
    close("availability", s.servers[0].availability, 50.0 / 60.0, 0.01);
}
