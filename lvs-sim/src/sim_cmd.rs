//! The simulator's subcommands: run, compare, sweep, plan, and the built-in scenario.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use lvs_core::sched::SchedKind;
use lvs_sim::experiments::{self, Progress};
use lvs_sim::model::Model;
use lvs_sim::report;
use lvs_sim::results::Summary;

/// Options shared by the simulator's commands.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Directory for the report files (summary, JSON, CSV time series, SVG charts).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Replications (overrides the scenario's `replications`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10000))]
    replications: Option<u32>,
    /// Seed (overrides the scenario's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads for the replications (default: one per core). The results do not
    /// depend on it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
}

/// `lvs-sim run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The scenario file (TOML; see lvs-sim/scenarios/).
    scenario: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// `lvs-sim compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The scenario file.
    scenario: PathBuf,
    /// Schedulers to compare, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "rr,wrr,lc,wlc,sed,nq,twos"
    )]
    schedulers: Vec<String>,
    #[command(flatten)]
    common: Common,
}

/// `lvs-sim sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The scenario file.
    scenario: PathBuf,
    /// Schedulers, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "rr,lc,wlc,twos")]
    schedulers: Vec<String>,
    /// Factors applied to every arrival rate, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.5,0.6,0.7,0.8,0.9,1.0,1.1"
    )]
    loads: Vec<f64>,
    #[command(flatten)]
    common: Common,
}

/// `lvs-sim plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The scenario file (each service's first real server is the template of the copies).
    scenario: PathBuf,
    /// The objective: p99 response time of the first service, in milliseconds.
    #[arg(long, value_name = "MS")]
    p99_ms: f64,
    /// Most servers to try.
    #[arg(long, default_value_t = 256)]
    max_servers: usize,
    /// Factor applied to every arrival rate first (the load to plan for).
    #[arg(long, default_value_t = 1.0)]
    load: f64,
    #[command(flatten)]
    common: Common,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("lvs-sim: {msg}");
    ExitCode::from(1)
}

fn load(path: &Path, c: &Common) -> Result<Model, ExitCode> {
    let mut m = Model::from_file(path).map_err(|e| {
        eprintln!("lvs-sim: {}: {e}", path.display());
        ExitCode::from(2)
    })?;
    apply_common(&mut m, c);
    Ok(m)
}

fn apply_common(m: &mut Model, c: &Common) {
    if let Some(r) = c.replications {
        m.scenario.replications = r;
    }
    if let Some(s) = c.seed {
        m.scenario.seed = s;
    }
    if let Some(t) = c.threads {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t as usize)
            .build_global();
    }
}

fn parse_scheds(v: &[String]) -> Result<Vec<SchedKind>, ExitCode> {
    v.iter()
        .map(|s| {
            SchedKind::from_name(s.trim()).ok_or_else(|| {
                eprintln!("lvs-sim: unknown scheduler {s:?}");
                ExitCode::from(2)
            })
        })
        .collect()
}

/// Runs `f` with a progress bar on stderr, shown only when stderr is a terminal and the work
/// takes more than a second.
fn with_progress<T: Send>(jobs: usize, f: impl FnOnce(&Progress) -> T + Send) -> T {
    let p = Progress::new(jobs);
    let tty = std::io::stderr().is_terminal();
    std::thread::scope(|s| {
        let h = s.spawn(|| f(&p));
        let start = Instant::now();
        let mut bar: Option<indicatif::ProgressBar> = None;
        while !h.is_finished() {
            std::thread::sleep(Duration::from_millis(50));
            if tty && bar.is_none() && start.elapsed() > Duration::from_secs(1) {
                let b = indicatif::ProgressBar::new(1000);
                if let Ok(st) = indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:40}] {percent}% simulated, eta {eta}",
                ) {
                    b.set_style(st.progress_chars("=> "));
                }
                bar = Some(b);
            }
            if let Some(b) = &bar {
                b.set_position((p.fraction() * 1000.0) as u64);
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        h.join().expect("simulation thread")
    })
}

fn write_file(dir: &Path, name: &str, text: &str) -> Result<(), ExitCode> {
    std::fs::write(dir.join(name), text).map_err(|e| {
        eprintln!("lvs-sim: {}: {e}", dir.join(name).display());
        ExitCode::from(1)
    })
}

fn write_reports(dir: &Path, sums: &[Summary]) -> Result<(), ExitCode> {
    std::fs::create_dir_all(dir).map_err(|e| {
        eprintln!("lvs-sim: {}: {e}", dir.display());
        ExitCode::from(1)
    })?;
    let text: String = sums.iter().map(|s| s.table() + "\n").collect();
    write_file(dir, "summary.txt", &text)?;
    let json = serde_json::to_string_pretty(sums).unwrap_or_default();
    write_file(dir, "results.json", &(json + "\n"))?;
    for s in sums {
        write_file(dir, &format!("timeseries-{}.csv", s.label), &s.csv())?;
        match report::run_svg(s) {
            Ok(svg) => write_file(dir, &format!("report-{}.svg", s.label), &svg)?,
            Err(e) => eprintln!("lvs-sim: {e}"),
        }
    }
    Ok(())
}

fn print(sums: &[Summary], c: &Common) {
    if c.json {
        println!("{}", serde_json::to_string_pretty(sums).unwrap_or_default());
    } else {
        for s in sums {
            println!("{}", s.table());
        }
    }
}

/// `lvs-sim` with no arguments.
pub fn builtin() -> ExitCode {
    let mut m = match Model::from_toml(lvs_sim::builtin::WEB_FARM, None) {
        Ok(m) => m,
        Err(e) => return fail(format!("built-in scenario: {e}")),
    };
    apply_common(
        &mut m,
        &Common {
            json: false,
            out: None,
            replications: None,
            seed: None,
            threads: None,
        },
    );
    let scheds = lvs_sim::builtin::SCHEDULERS;
    eprintln!(
        "lvs-sim: built-in scenario {:?}: {} servers, offered load {:.2}, server 10.0.0.3 down \
         from 100 s to 160 s; comparing {} schedulers, {} replications each",
        m.name,
        m.servers.len(),
        m.offered_load(),
        scheds.len(),
        m.scenario.replications
    );
    let jobs = scheds.len() * m.scenario.replications as usize;
    let sums = match with_progress(jobs, |p| experiments::compare(&m, &scheds, Some(p))) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    println!("{}", compare_table(&sums));
    let dir = PathBuf::from("lvs-sim-report");
    if let Err(c) = write_reports(&dir, &sums) {
        return c;
    }
    let _ = write_file(&dir, "scenario.toml", lvs_sim::builtin::WEB_FARM);
    let abs = std::fs::canonicalize(&dir).unwrap_or(dir);
    println!(
        "Report written to {}/ (summary.txt, results.json, timeseries-<scheduler>.csv, \
         report-<scheduler>.svg, scenario.toml).",
        abs.display()
    );
    println!("Run your own: lvs-sim run lvs-sim/scenarios/web-farm.toml (see lvs-sim --help).");
    ExitCode::SUCCESS
}

/// One line per scheduler: the first service's figures.
pub fn compare_table(sums: &[Summary]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    if let Some(s) = sums.first() {
        let _ = writeln!(
            o,
            "{} ({} replications, {:.0} s measured each; ms; ± = 95 % CI)",
            s.scenario, s.replications, s.measured_secs
        );
    }
    let _ = writeln!(
        o,
        "{:<6} {:>12} {:>12} {:>12} {:>13} {:>13} {:>11} {:>10}",
        "sched", "mean", "p50", "p95", "p99", "p99.9", "failed", "avail"
    );
    for s in sums {
        let Some(v) = s.services.first() else {
            continue;
        };
        let failed: f64 = v.failed.iter().map(|(_, e)| e.mean).sum();
        let _ = writeln!(
            o,
            "{:<6} {:>12} {:>12} {:>12} {:>13} {:>13} {:>11.1} {:>10.5}",
            s.label,
            v.mean.fmt(1),
            v.p50.fmt(1),
            v.p95.fmt(1),
            v.p99.fmt(1),
            v.p999.fmt(1),
            failed,
            v.availability.mean
        );
    }
    o
}

/// `lvs-sim run`.
pub fn run(a: RunArgs) -> ExitCode {
    let m = match load(&a.scenario, &a.common) {
        Ok(m) => m,
        Err(c) => return c,
    };
    let label = m
        .schedulers()
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join("+");
    let jobs = m.scenario.replications as usize;
    let s = match with_progress(jobs, |p| experiments::run(&m, &label, Some(p))) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let sums = [s];
    print(&sums, &a.common);
    if let Some(dir) = &a.common.out {
        if let Err(c) = write_reports(dir, &sums) {
            return c;
        }
        eprintln!("lvs-sim: report written to {}/", dir.display());
    }
    ExitCode::SUCCESS
}

/// `lvs-sim compare`.
pub fn compare(a: CompareArgs) -> ExitCode {
    let m = match load(&a.scenario, &a.common) {
        Ok(m) => m,
        Err(c) => return c,
    };
    let scheds = match parse_scheds(&a.schedulers) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let jobs = scheds.len() * m.scenario.replications as usize;
    let sums = match with_progress(jobs, |p| experiments::compare(&m, &scheds, Some(p))) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if a.common.json {
        print(&sums, &a.common);
    } else {
        println!("{}", compare_table(&sums));
        for s in &sums {
            println!("{}", s.table());
        }
    }
    if let Some(dir) = &a.common.out {
        if let Err(c) = write_reports(dir, &sums) {
            return c;
        }
        eprintln!("lvs-sim: report written to {}/", dir.display());
    }
    ExitCode::SUCCESS
}

/// `lvs-sim sweep`.
pub fn sweep(a: SweepArgs) -> ExitCode {
    let m = match load(&a.scenario, &a.common) {
        Ok(m) => m,
        Err(c) => return c,
    };
    let scheds = match parse_scheds(&a.schedulers) {
        Ok(s) => s,
        Err(c) => return c,
    };
    if a.loads.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
        return fail("--loads: factors must be > 0");
    }
    let jobs = scheds.len() * a.loads.len() * m.scenario.replications as usize;
    let pts = match with_progress(jobs, |p| experiments::sweep(&m, &scheds, &a.loads, Some(p))) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if a.common.json {
        println!("{}", serde_json::to_string_pretty(&pts).unwrap_or_default());
    } else {
        println!(
            "{:<6} {:>7} {:>8} {:>14} {:>14} {:>10}",
            "sched", "factor", "load", "p99 (ms)", "mean (ms)", "failed"
        );
        for p in &pts {
            println!(
                "{:<6} {:>7.2} {:>8.3} {:>14} {:>14} {:>10.5}",
                p.scheduler,
                p.factor,
                p.offered_load,
                p.p99.fmt(2),
                p.mean.fmt(2),
                p.failed.mean
            );
        }
    }
    let dir = a
        .common
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("lvs-sim-report"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(format!("{}: {e}", dir.display()));
    }
    let mut csv = String::from("scheduler,factor,offered_load,p99_ms,p99_ci95,mean_ms,failed\n");
    for p in &pts {
        csv += &format!(
            "{},{},{},{},{},{},{}\n",
            p.scheduler,
            p.factor,
            p.offered_load,
            p.p99.mean,
            p.p99.ci95,
            p.mean.mean,
            p.failed.mean
        );
    }
    if let Err(c) = write_file(&dir, "sweep.csv", &csv) {
        return c;
    }
    match report::sweep_svg(&m.name, &pts) {
        Ok(svg) => {
            if let Err(c) = write_file(&dir, "sweep.svg", &svg) {
                return c;
            }
        }
        Err(e) => return fail(e),
    }
    eprintln!(
        "lvs-sim: sweep written to {}/sweep.svg and sweep.csv",
        dir.display()
    );
    ExitCode::SUCCESS
}

/// `lvs-sim plan`.
pub fn plan(a: PlanArgs) -> ExitCode {
    let m = match load(&a.scenario, &a.common) {
        Ok(m) => m,
        Err(c) => return c,
    };
    if !(a.p99_ms.is_finite() && a.p99_ms > 0.0 && a.load.is_finite() && a.load > 0.0) {
        return fail("--p99-ms and --load must be > 0");
    }
    let m = m.with_load_factor(a.load);
    let max = a.max_servers.clamp(1, 4096);
    let plan = match with_progress(1, |_| experiments::plan(&m, a.p99_ms, max)) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if a.common.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    println!("servers  p99 (ms, mean ± 95 % CI)");
    for (n, e) in &plan.tried {
        println!("{n:>7}  {}", e.fmt(2));
    }
    match plan.servers {
        Some(n) => println!(
            "fewest servers meeting p99 <= {} ms (upper CI bound): {n}",
            a.p99_ms
        ),
        None => println!("no count up to {max} meets p99 <= {} ms", a.p99_ms),
    }
    ExitCode::SUCCESS
}
