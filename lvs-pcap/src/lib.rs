//! # lvs-pcap
//!
//! Replays packet captures through [`lvs_core`]'s director and proves every packet it
//! outputs: what exactly lvs-rs would send to each real server and back to each client, with
//! every checksum verified, every field that must not change compared byte for byte, and
//! every flow kept on one real server for its life.
//!
//! - [`capture`]: a streaming pcap / pcapng reader whose errors name the byte offset, and a
//!   pcap writer (nanosecond timestamps).
//! - [`defrag`]: reassembly in front of the director (IPVS sees whole datagrams).
//! - [`link`]: link layers (Ethernet with VLAN tags, Linux cooked SLL / SLL2, raw IP).
//! - [`neigh`]: the `--neigh` file (`<ip> <mac>` lines) for direct-routing frames.
//! - [`validate`]: the per-packet checks.
//! - [`synth`]: synthetic multi-flow captures for benchmarks.
//! - [`replay`]: the engine behind `lvs-pcap replay`, and its [`replay::Report`].
//! - [`sync`]: the sync master's datagrams as a capture (`replay --sync-out`) and a backup
//!   director fed from such a capture (`lvs-pcap sync`).
//!
//! The binary `lvs-pcap` is a thin command line over these.
//!
//! ## Contracts
//! - **Deterministic**: the director's hash key is fixed and its clock is the capture's, so
//!   one capture and one rule set always give the same output and report.
//! - **Captures never panic** and never make unbounded work or allocations: records and
//!   blocks are bounded ([`capture::MAX_RECORD_LEN`], [`capture::MAX_BLOCK_LEN`]), timers run
//!   a bounded number of steps per packet.
//!
//! ```
//! use lvs_core::rules::RuleSet;
//! use lvs_pcap::capture::{CaptureReader, CaptureWriter, LinkType};
//! use lvs_pcap::replay::{run, ReplayOptions};
//! # let syn = {
//! #     let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [10, 0, 0, 1], 64)
//! #         .tcp(40000, 80, 1, 1024).syn();
//! #     let mut v = Vec::new();
//! #     b.write(&mut v, &[]).unwrap();
//! #     v
//! # };
//! // A capture with one SYN to the virtual service.
//! let mut cap = Vec::new();
//! let mut w = CaptureWriter::new(&mut cap, LinkType::RAW).unwrap();
//! w.write_packet(1_000_000_000, &syn).unwrap();
//! w.into_inner().unwrap();
//! let rules = RuleSet::from_text("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m\n").unwrap();
//! let mut reader = CaptureReader::new(&cap[..]).unwrap();
//! let mut out = Vec::new();
//! let report = run(&rules, ReplayOptions::default(), &mut reader, Some(&mut out)).unwrap();
//! assert_eq!((report.packets_in, report.packets_out, report.passed, report.failed), (1, 1, 1, 0));
//! assert_eq!(report.flows_per_real_server["10.1.0.1:8080"], 1);
//! assert_eq!(report.exit_status(), 0);
//! ```
#![forbid(unsafe_code)]

pub mod capture;
pub mod defrag;
pub mod link;
pub mod neigh;
pub mod replay;
pub mod sync;
pub mod synth;
pub mod validate;
