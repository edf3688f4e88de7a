//! `lvs-pcap`: replay captures through lvs-rs's director and validate every output packet.
//! See `lvs-pcap replay --help`.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use lvs_core::director::SyncMasterConfig;
use lvs_core::rules::{RuleSet, RulesError};
use lvs_pcap::capture::CaptureReader;
use lvs_pcap::replay::{self, ReplayOptions, RunError, Side};
use lvs_pcap::sync::{SyncOptions, SyncReplay};

/// Replays packet captures through lvs-rs's director and proves every rewritten packet.
#[derive(Parser, Debug)]
#[command(name = "lvs-pcap", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SideArg {
    /// The capture holds what arrived at the director (client -> VIP, NAT replies).
    Director,
    /// The capture was taken at the clients (client <-> VIP).
    Client,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay a capture through the director, write what it sends, validate every packet.
    ///
    /// Exit status: 0 every output packet passed, 1 some validation failed (each failure names
    /// the input packet number and what differed), 2 the input could not be used (rules,
    /// neighbour file, or a truncated / corrupt capture: reported with its byte offset after
    /// every packet before it was processed and written).
    #[command(after_long_help = AFTER_HELP)]
    Replay {
        /// Rules in the ipvsadm language (what `ipvsadm -S -n` prints).
        #[arg(long, value_name = "RULES")]
        rules: PathBuf,
        /// The capture (pcap or pcapng; Ethernet with VLAN tags, Linux cooked SLL / SLL2, raw
        /// IP; other link types are counted and skipped).
        #[arg(long = "in", value_name = "CAPTURE")]
        input: PathBuf,
        /// Write what the director sends (to real servers, to clients, and the ICMP errors it
        /// builds) as pcap with the input's timestamps.
        #[arg(long, value_name = "OUT.pcap")]
        out: Option<PathBuf>,
        /// Where the capture was taken.
        #[arg(long, value_enum, default_value = "director")]
        side: SideArg,
        /// The director's own address (IPv4 and/or IPv6): source of tunnel outer headers and
        /// of the ICMP errors it builds about replies.
        #[arg(long, value_name = "ADDR")]
        local: Vec<IpAddr>,
        /// Neighbour table for direct routing: lines `<ip> <mac>`.
        #[arg(long, value_name = "FILE")]
        neigh: Option<PathBuf>,
        /// Print the report as JSON instead of the human summary.
        #[arg(long)]
        json: bool,
        /// Room in the connection table (connections and templates at once). Default: as
        /// many entries as the capture could create (two per 44 bytes of file) plus 1024, at
        /// most 1048576; a full table drops new flows (`table_full` in the report).
        #[arg(long, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=(1 << 24)))]
        conn_capacity: Option<u32>,
        /// Run the director as sync master too and write every datagram it multicasts as
        /// UDP 8848 -> 224.0.0.81:8848 (TTL 1, Ethernet to 01:00:5e:00:00:51) from the
        /// first IPv4 --local address (0.0.0.0 without one), stamped with the capture time
        /// it was sent at. Wireshark decodes it as `ipvs`; `lvs-pcap sync` applies it.
        #[arg(long, value_name = "SYNC.pcap")]
        sync_out: Option<PathBuf>,
        /// The master's --syncid written into every datagram.
        #[arg(long, value_name = "N", default_value_t = 0, requires = "sync_out")]
        sync_syncid: u8,
        /// The master's --sync-maxlen: largest datagram payload.
        #[arg(long, value_name = "N", default_value_t = 1472, requires = "sync_out",
              value_parser = clap::value_parser!(u16).range(1..=65507))]
        sync_maxlen: u16,
        /// The master's sync_threshold sysctl: a connection is synced at this many packets
        /// from the client (and every --sync-period packets after); 1 syncs every new
        /// connection at its first packet.
        #[arg(long, value_name = "N", default_value_t = 3, requires = "sync_out",
              value_parser = clap::value_parser!(u32).range(1..))]
        sync_threshold: u32,
        /// The second value of sync_threshold (re-sync period in packets, 0 = once); must
        /// be above --sync-threshold unless 0, as the kernel requires.
        #[arg(long, value_name = "N", default_value_t = 50, requires = "sync_out")]
        sync_period: u32,
    },
    /// Apply the IPVS sync datagrams of a capture to a backup director and list its table.
    ///
    /// Every UDP datagram to port 8848 (any address, any supported link type) is applied
    /// with the capture's clock (seconds since its first packet); the table is printed as
    /// `ipvsadm -L -n -c` does, expire times relative to the last datagram (or --at), then a
    /// summary on stderr. Exit status: 0 every datagram applied (or ignored for another
    /// syncid), 1 some datagram rejected (malformed, or a UDP checksum that does not
    /// verify), 2 the input could not be used (rules, or a truncated / corrupt capture,
    /// reported with its byte offset after every datagram before it was applied).
    Sync {
        /// Rules in the ipvsadm language: the backup's services and real servers.
        #[arg(long, value_name = "RULES")]
        rules: PathBuf,
        /// The capture holding the sync datagrams.
        #[arg(long = "in", value_name = "SYNC.pcap")]
        input: PathBuf,
        /// The backup's --syncid: 0 takes every syncid, others only their own.
        #[arg(long, value_name = "N", default_value_t = 0)]
        syncid: u8,
        /// List the table at this capture time (seconds since the first packet; datagrams
        /// after it are not applied).
        #[arg(long, value_name = "SECONDS")]
        at: Option<f64>,
        /// Print the table and the summary as JSON on stdout instead.
        #[arg(long)]
        json: bool,
        /// Do not verify UDP checksums (a capture taken on the master with checksum
        /// offload has unfinished ones).
        #[arg(long)]
        no_verify_checksums: bool,
    },
}

const AFTER_HELP: &str = "\
The director's clock is the capture's: timers (connection expiry, the rate estimator) fire
between packets as they would have. IPv4 and IPv6 fragments are reassembled first, as the
kernel does before IPVS: the director handles the whole datagram. Checks on every output packet: it parses; IPv4 header,
TCP, UDP, ICMP and ICMPv6 checksums verify (or keep the input's offload error exactly);
nothing changes but what the forwarding method changes (NAT: one address and port; DR: TTL
only, the frame goes to the real server's MAC from --neigh; TUN: the inner packet is the
input with TTL - 1 and the outer header is the rule's tunnel type); every flow stays on one
real server; ICMP errors are translated for the flow they quote. DR lint: a real server
answering ARP for a virtual address is a failure.

The output capture is Ethernet when the rules have a direct-routing real server (the
director's MAC is learnt from the capture), raw IP otherwise.";

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("lvs-pcap: {msg}");
    ExitCode::from(2)
}

fn read_text(path: &Path) -> Result<String, ExitCode> {
    std::fs::read_to_string(path).map_err(|e| fail(format_args!("{}: {e}", path.display())))
}

fn rules_error(path: &Path, e: &RulesError) -> String {
    let file = path.display();
    match e {
        RulesError::Parse(p) => format!("{file}:{}:{}: {}", p.line, p.column, p.kind),
        RulesError::Apply {
            line,
            column,
            source,
        } => {
            format!(
                "{file}:{line}:{column}: refused: {source} (errno {})",
                source.errno()
            )
        }
    }
}

fn load_rules(path: &Path) -> Result<RuleSet, ExitCode> {
    let text = read_text(path)?;
    RuleSet::from_text(&text).map_err(|e| fail(rules_error(path, &e)))
}

fn sync_main(
    rules: &Path,
    input: &Path,
    syncid: u8,
    at: Option<f64>,
    json: bool,
    verify_checksums: bool,
) -> ExitCode {
    let ruleset = match load_rules(rules) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let at = match at {
        Some(s) if s.is_finite() && (0.0..=1e9).contains(&s) => {
            Some(lvs_core::time::Instant::from_nanos((s * 1e9) as u64))
        }
        Some(s) => return fail(format_args!("--at {s}: seconds from 0 to 1e9")),
        None => None,
    };
    let file = match File::open(input) {
        Ok(f) => f,
        Err(e) => return fail(format_args!("{}: {e}", input.display())),
    };
    let file_len = file.metadata().map_or(u64::MAX, |m| m.len());
    // The reader buffers itself.
    let mut reader = match CaptureReader::new(file) {
        Ok(r) => r,
        Err(e) => return fail(format_args!("{}: {e}", input.display())),
    };
    let options = SyncOptions {
        syncid,
        at,
        verify_checksums,
        // A sync record is at least 24 bytes of a datagram of at least 42 more.
        conn_capacity: (file_len / 24 + 1024).min(1 << 20) as u32,
        ..SyncOptions::default()
    };
    let report = match SyncReplay::run(&ruleset, options, &mut reader) {
        Ok(r) => r,
        Err(e) => {
            return fail(format_args!(
                "{}: rules refused by the director: {e} (errno {})",
                rules.display(),
                e.errno()
            ))
        }
    };
    let stdout = std::io::stdout();
    let mut so = stdout.lock();
    let text = if json {
        report.to_json() + "\n"
    } else {
        report.table.clone()
    };
    let _ = so.write_all(text.as_bytes());
    let _ = so.flush();
    eprint!("{}", report.summary());
    if let Some(e) = &report.input_error {
        eprintln!("lvs-pcap: {}: {}", input.display(), e.message);
    }
    ExitCode::from(report.exit_status())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Sync {
            rules,
            input,
            syncid,
            at,
            json,
            no_verify_checksums,
        } => sync_main(&rules, &input, syncid, at, json, !no_verify_checksums),
        Cmd::Replay {
            rules,
            input,
            out,
            side,
            local,
            neigh,
            json,
            conn_capacity,
            sync_out,
            sync_syncid,
            sync_maxlen,
            sync_threshold,
            sync_period,
        } => {
            if sync_period != 0 && sync_threshold >= sync_period {
                return fail(format_args!(
                    "--sync-threshold {sync_threshold} must be below --sync-period {sync_period} (or the period 0), as the kernel's sync_threshold sysctl requires"
                ));
            }
            let text = match read_text(&rules) {
                Ok(t) => t,
                Err(c) => return c,
            };
            let ruleset = match RuleSet::from_text(&text) {
                Ok(r) => r,
                Err(e) => return fail(rules_error(&rules, &e)),
            };
            let neigh_table = match &neigh {
                Some(p) => {
                    let t = match read_text(p) {
                        Ok(t) => t,
                        Err(c) => return c,
                    };
                    match lvs_pcap::neigh::parse(&t) {
                        Ok(n) => n,
                        Err(e) => {
                            return fail(format_args!(
                                "{}:{}:{}: {}",
                                p.display(),
                                e.line,
                                e.column,
                                e.kind
                            ))
                        }
                    }
                }
                None => Default::default(),
            };
            let file = match File::open(&input) {
                Ok(f) => f,
                Err(e) => return fail(format_args!("{}: {e}", input.display())),
            };
            // A true upper bound on the entries the capture can create, so that the replay
            // never refuses a flow the kernel (which has no limit) would accept: only a
            // packet with ports creates entries, at most two (a persistence template and its
            // connection); its record takes at least 44 bytes (16 of pcap record header, no
            // link header, 20 of IPv4 header, 8 of UDP header or of a first fragment; TCP,
            // SCTP, IPv6 and pcapng blocks take more). The bound costs nothing when far
            // above the flows: the director's indexes grow with the live entries, and the
            // slab is reserved, not touched.
            let file_len = file.metadata().map_or(u64::MAX, |m| m.len());
            let conn_capacity =
                conn_capacity.unwrap_or_else(|| (file_len / 44 * 2 + 1024).min(1 << 20) as u32);
            // The reader buffers itself (256 KiB reads): no BufReader, whose buffer would be
            // one more copy of every byte.
            let mut reader = match CaptureReader::new(file) {
                Ok(r) => r,
                Err(e) => return fail(format_args!("{}: {e}", input.display())),
            };
            let output = match &out {
                Some(p) => match File::create(p) {
                    // 64 KiB: few enough write calls, and a buffer that stays in the CPU
                    // caches next to the connection table and the flow books.
                    Ok(f) => Some(BufWriter::with_capacity(1 << 16, f)),
                    Err(e) => return fail(format_args!("{}: {e}", p.display())),
                },
                None => None,
            };
            let options = ReplayOptions {
                side: match side {
                    SideArg::Director => Side::Director,
                    SideArg::Client => Side::Client,
                },
                locals: local,
                neigh: neigh_table,
                conn_capacity,
                ..ReplayOptions::default()
            };
            let sync = match &sync_out {
                Some(p) => match File::create(p) {
                    Ok(f) => Some((
                        SyncMasterConfig {
                            syncid: sync_syncid,
                            maxlen: usize::from(sync_maxlen),
                            sysctls: lvs_core::sync::master::SyncSysctls {
                                threshold: sync_threshold,
                                period: sync_period,
                                ..Default::default()
                            },
                            ..SyncMasterConfig::default()
                        },
                        BufWriter::with_capacity(1 << 16, f),
                    )),
                    Err(e) => return fail(format_args!("{}: {e}", p.display())),
                },
                None => None,
            };
            let report = match replay::run_with_sync(&ruleset, options, &mut reader, output, sync) {
                Ok(r) => r,
                Err(RunError::Setup(e)) => return fail(e),
                Err(e @ RunError::Output(_)) => return fail(e),
            };
            let stdout = std::io::stdout();
            let mut so = stdout.lock();
            let text = if json {
                report.to_json() + "\n"
            } else {
                report.summary()
            };
            let _ = so.write_all(text.as_bytes());
            let _ = so.flush();
            if let Some(e) = &report.input_error {
                eprintln!("lvs-pcap: {}: {}", input.display(), e.message);
            }
            ExitCode::from(report.exit_status())
        }
    }
}
