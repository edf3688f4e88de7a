//! Writes a synthetic multi-flow capture and its NAT rules, for benchmarks and comparisons:
//!
//! ```sh
//! cargo run --release -p lvs-pcap --example synth-capture -- OUT.pcap OUT.rules [FLOWS] [PACKETS_PER_FLOW]
//! ```
//!
//! Defaults: 10000 flows of 10 packets (100000 packets, 64-byte payloads), 4 real servers, rr.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: synth-capture OUT.pcap OUT.rules [FLOWS] [PACKETS_PER_FLOW]");
        std::process::exit(2);
    }
    let flows = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let per_flow = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let cap = lvs_pcap::synth::multi_flow_capture(flows, per_flow, 64);
    std::fs::write(&args[0], cap).expect("writing the capture");
    std::fs::write(&args[1], lvs_pcap::synth::rules(4, "rr")).expect("writing the rules");
}
