//! `lvs-sim`: what would IPVS do? See `lvs-sim --help`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use lvs_sim::sched_cmd::{self, SchedError, SchedOptions};

mod sim_cmd;

/// Largest `--conn-capacity`: the table is allocated up front (about 4 million entries).
const MAX_CONN_CAPACITY: i64 = 1 << 22;

/// What would Linux IPVS do? Runs lvs-core's director on rules and a trace of flows, or
/// simulates a server farm behind it for capacity planning.
///
/// With no command, runs the built-in scenario (a heterogeneous web farm with one server
/// failing and returning) under several schedulers and writes its report to
/// ./lvs-sim-report/.
#[derive(Parser, Debug)]
#[command(name = "lvs-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Schedule a trace of flows: prints the real server of every new flow, listings and saves.
    #[command(after_long_help = lvs_sim::TRACE_HELP)]
    Sched {
        /// Rules in the ipvsadm language (the lines `ipvsadm -S -n` prints, `-R` reads).
        #[arg(long, value_name = "RULES")]
        rules: PathBuf,
        /// The trace of events (see `lvs-sim sched --help`).
        #[arg(long, value_name = "TRACE")]
        trace: PathBuf,
        /// Room in the connection table (connections and templates at once). The kernel has
        /// no such limit: when the table is full a new flow evicts a half-open connection, or
        /// else prints `drop`.
        #[arg(long, value_name = "N", default_value_t = SchedOptions::default().conn_capacity,
              value_parser = clap::value_parser!(u32).range(1..=MAX_CONN_CAPACITY))]
        conn_capacity: u32,
    },
    /// Print a keepalived configuration as `ipvsadm -S -n` rules, then its checker settings.
    Rules {
        /// keepalived.conf (its includes are read relative to it).
        #[arg(long, value_name = "FILE")]
        keepalived: PathBuf,
    },
    /// Simulate a scenario file (TOML) and print its summary.
    Run(sim_cmd::RunArgs),
    /// Simulate a scenario under several schedulers side by side.
    Compare(sim_cmd::CompareArgs),
    /// p99 response time against offered load, per scheduler (SVG plot).
    Sweep(sim_cmd::SweepArgs),
    /// The fewest real servers meeting a p99 objective at the scenario's load.
    Plan(sim_cmd::PlanArgs),
}

fn read(path: &Path) -> Result<String, ExitCode> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("lvs-sim: {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return sim_cmd::builtin();
    };
    match command {
        Cmd::Rules { keepalived } => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            match lvs_sim::rules_cmd::run_file(&keepalived, &mut out, &mut err) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("lvs-sim: {e}");
                    ExitCode::from(e.exit_status())
                }
            }
        }
        Cmd::Run(a) => sim_cmd::run(a),
        Cmd::Compare(a) => sim_cmd::compare(a),
        Cmd::Sweep(a) => sim_cmd::sweep(a),
        Cmd::Plan(a) => sim_cmd::plan(a),
        Cmd::Sched {
            rules,
            trace,
            conn_capacity,
        } => {
            let (rules_text, trace_text) = match (read(&rules), read(&trace)) {
                (Ok(r), Ok(t)) => (r, t),
                (Err(code), _) | (_, Err(code)) => return code,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let options = SchedOptions {
                conn_capacity,
                ..SchedOptions::default()
            };
            let result = sched_cmd::run_text_with(&rules_text, &trace_text, options, &mut out);
            // A closed pipe is not worth a second error message.
            let _ = out.flush();
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let file = match &e {
                        SchedError::Rules(_) | SchedError::Director(_) => &rules,
                        _ => &trace,
                    };
                    eprintln!("lvs-sim: {}", e.display_with(&file.display().to_string()));
                    ExitCode::from(e.exit_status())
                }
            }
        }
    }
}
