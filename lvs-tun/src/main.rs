//! `lvs-tun`: a Linux Virtual Server director on a tun/tap device. See `lvs-tun --help`.

use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lvs_core::sync::role::Role;
use lvs_tun::ctl::{self, DEFAULT_SOCKET};
use lvs_tun::daemon::{self, RunConfig};
use lvs_tun::decap::{self, DecapConfig};
use lvs_tun::hugepages::HugePageAlloc;
use lvs_tun::sync::SyncOptions;

/// The system allocator, with huge-page advice for the connection table's large arrays.
#[global_allocator]
static ALLOC: HugePageAlloc = HugePageAlloc::new(true);

fn parse_start_role(s: &str) -> Result<Role, String> {
    match s {
        "master" => Ok(Role::Master),
        "backup" => Ok(Role::Backup),
        _ => Err(format!("{s:?}: the start role is master or backup")),
    }
}

/// Linux Virtual Server without the IPVS module: balances traffic read from a tun or tap
/// device with lvs-core and writes it back, operated like ipvsadm.
#[derive(Parser, Debug)]
#[command(name = "lvs-tun", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the director on a device: tun (NAT and TUN methods) or tap (DR).
    Run {
        /// Rules in the ipvsadm language (what `ipvsadm -S -n` prints); SIGHUP re-reads it.
        #[arg(long, value_name = "RULES", required_unless_present = "keepalived")]
        rules: Option<PathBuf>,
        /// keepalived.conf: services, real servers and their health checks, run for real.
        #[arg(long, value_name = "FILE", conflicts_with = "rules")]
        keepalived: Option<PathBuf>,
        /// Device name (created if missing, removed at exit unless persistent).
        #[arg(long, value_name = "NAME")]
        dev: String,
        /// A tap device (Ethernet frames, for direct routing) instead of tun.
        #[arg(long)]
        tap: bool,
        /// Device queues, one worker thread each.
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=64))]
        queues: u16,
        /// The director's address (tunnel source, ICMP error source); once per family.
        #[arg(long = "local", value_name = "ADDR")]
        locals: Vec<IpAddr>,
        /// This runtime's MAC on a tap device (the next hop the kernel routes the VIP to).
        #[arg(long, value_name = "MAC", default_value = "02:1b:5f:00:00:01",
              value_parser = daemon::parse_mac)]
        mac: [u8; 6],
        /// Control socket for `lvs-tun ctl` (mode 0600).
        #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Serve Prometheus metrics on this loopback address (e.g. 127.0.0.1:9101).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
        /// Connection table capacity (connections and templates).
        #[arg(long, value_name = "N", default_value_t = 1 << 20,
              value_parser = clap::value_parser!(u32).range(1..=(1 << 24)))]
        conn_capacity: u32,
        /// Do not ask the kernel to back the connection table with transparent huge pages
        /// (`madvise(MADV_HUGEPAGE)` on large allocations; see `lvs_tun::hugepages`).
        #[arg(long)]
        no_huge_pages: bool,
        /// Benchmark ceiling: write every packet back unchanged, no director.
        #[arg(long, hide = true)]
        raw: bool,
        /// Run as this user once the device and sockets are open (nothing later needs root;
        /// the rules file must stay readable to it for SIGHUP).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Microseconds a worker keeps reading without sleeping once its queue is empty
        /// (lower latency, more CPU; 0 sleeps at once).
        #[arg(long, value_name = "US", default_value_t = 0,
              value_parser = clap::value_parser!(u64).range(0..=10_000))]
        busy_poll_us: u64,
        /// Role at start when a VRRP daemon (keepalived) decides which director is active:
        /// master forwards, backup forwards nothing; `lvs-tun ctl --role` changes it.
        /// Implied `backup` with --sync-dev.
        #[arg(long, value_name = "ROLE", value_parser = parse_start_role)]
        role: Option<Role>,
        /// Sync connections over UDP multicast (224.0.0.81:8848, TTL 1) on this interface:
        /// sent as master, applied as backup.
        #[arg(long, value_name = "IFNAME")]
        sync_dev: Option<String>,
        /// Sync id written as master; as backup a non-zero id accepts only its own.
        #[arg(long, value_name = "N", default_value_t = 0)]
        sync_syncid: u8,
        /// Largest sync datagram (UDP payload) the master sends.
        #[arg(long, value_name = "BYTES", default_value_t = 1472,
              value_parser = clap::value_parser!(u16).range(1..=65_507))]
        sync_maxlen: u16,
    },
    /// Real-server side of the TUN method: decapsulate IPIP / GUE / GRE to this server.
    Decap {
        /// Device name.
        #[arg(long, value_name = "NAME")]
        dev: String,
        /// This server's tunnel address(es): outer destinations accepted.
        #[arg(long = "local", value_name = "ADDR", required = true)]
        locals: Vec<IpAddr>,
        /// GUE's UDP port (as `--tun-port` on the director).
        #[arg(long, value_name = "PORT", default_value_t = 6080)]
        gue_port: u16,
    },
    /// Talk to the running daemon in ipvsadm's language (`-L -n`, `-a ...`, `-R` < rules).
    Ctl {
        /// The daemon's control socket.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// ipvsadm arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
}

fn init_logs() {
    let filter = std::env::var("LVS_TUN_LOG").unwrap_or_else(|_| "info".into());
    let level = match filter.as_str() {
        "trace" => tracing::Level::TRACE,
        "debug" => tracing::Level::DEBUG,
        "warn" => tracing::Level::WARN,
        "error" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run {
            rules,
            keepalived,
            dev,
            tap,
            queues,
            locals,
            mac,
            socket,
            metrics,
            conn_capacity,
            no_huge_pages,
            raw,
            busy_poll_us,
            user,
            role,
            sync_dev,
            sync_syncid,
            sync_maxlen,
        } => {
            init_logs();
            ALLOC.set_advise(!no_huge_pages);
            let sync = (role.is_some() || sync_dev.is_some()).then(|| SyncOptions {
                dev: sync_dev,
                syncid: sync_syncid,
                maxlen: usize::from(sync_maxlen),
                role: role.unwrap_or(Role::Backup),
                ..SyncOptions::default()
            });
            daemon::run(RunConfig {
                rules,
                keepalived,
                dev,
                tap,
                queues: usize::from(queues),
                locals,
                mac,
                socket: Some(socket),
                metrics,
                conn_capacity,
                raw,
                busy_poll: std::time::Duration::from_micros(busy_poll_us),
                user,
                sync,
            })
        }
        Cmd::Decap {
            dev,
            locals,
            gue_port,
        } => {
            init_logs();
            decap::run(DecapConfig {
                dev,
                locals,
                gue_port,
            })
        }
        Cmd::Ctl { socket, args } => {
            let mut body = String::new();
            if ctl::wants_stdin(&args) {
                if let Err(e) = std::io::stdin()
                    .take(ctl::MAX_REQUEST as u64)
                    .read_to_string(&mut body)
                {
                    eprintln!("lvs-tun ctl: standard input: {e}");
                    return ExitCode::from(2);
                }
            }
            return match ctl::request(&socket, &args, &body) {
                Ok((true, text)) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Ok((false, text)) => {
                    eprint!("{text}");
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("lvs-tun ctl: {}: {e}", socket.display());
                    ExitCode::from(2)
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lvs-tun: {e}");
            ExitCode::from(1)
        }
    }
}
