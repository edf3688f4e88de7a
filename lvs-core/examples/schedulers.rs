//! What would IPVS decide? Loads a rule set (a built-in web farm, or the `ipvsadm -S -n` file
//! given as the first argument) and shows, for every virtual service, what each of the fourteen
//! schedulers decides for a sample of clients, and how 10,000 connections spread over the real
//! servers when each connection stays open while the next 40 arrive.
//!
//! Run: `cargo run --release -p lvs-core --example schedulers [RULES]`

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;

use lvs_core::rules::{RuleSet, ServiceConfig, ServiceKey};
use lvs_core::sched::pool::Pool;
use lvs_core::sched::{DestId, FlowKey, SchedConfig, SchedContext, SchedFlags, SchedKind};
use lvs_core::{Instant, Protocol};
use rand::{RngCore, SeedableRng};
use rand_pcg::Pcg64;

const BUILTIN_RULES: &str = "\
# A web farm: four real servers of different capacity behind one VIP (NAT),
# and a DNS service spread by source hash over two servers (DR).
-A -t 192.0.2.10:80 -s wlc
-a -t 192.0.2.10:80 -r 10.0.0.1:8080 -m -w 1
-a -t 192.0.2.10:80 -r 10.0.0.2:8080 -m -w 2
-a -t 192.0.2.10:80 -r 10.0.0.3:8080 -m -w 3
-a -t 192.0.2.10:80 -r 10.0.0.4:8080 -m -w 4
-A -u 192.0.2.10:53 -s sh -b sh-port
-a -u 192.0.2.10:53 -r 10.0.1.1:53 -g -w 1
-a -u 192.0.2.10:53 -r 10.0.1.2:53 -g -w 1
";

/// Sample clients shown one by one.
const SAMPLE: usize = 12;
/// Connections in the share run, and how many later arrivals each one stays open for.
const CONNS: usize = 10_000;
const HOLD: usize = 40;

fn main() -> ExitCode {
    let (source, text) = match std::env::args().nth(1) {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => (path, text),
            Err(e) => {
                eprintln!("error: cannot read {path}: {e}");
                return ExitCode::from(2);
            }
        },
        None => ("built-in rule set".to_string(), BUILTIN_RULES.to_string()),
    };
    let rules = match RuleSet::from_text(&text) {
        Ok(rules) => rules,
        Err(e) => {
            eprintln!("error: {source}: {e}");
            return ExitCode::from(2);
        }
    };
    println!("Rules ({source}), as `ipvsadm -S -n` prints them:\n");
    for line in rules.save().lines() {
        println!("    {line}");
    }
    for (service, dests) in rules.services() {
        println!();
        show_service(
            service,
            dests.iter().map(|d| (d.addr, d.port, d.weight)).collect(),
        );
    }
    ExitCode::SUCCESS
}

fn show_service(service: &ServiceConfig, dests: Vec<(IpAddr, u16, u32)>) {
    // Label real servers A, B, C... in address order, as `ipvsadm -L -n` sorts them.
    let mut sorted = dests.clone();
    sorted.sort();
    let labels: BTreeMap<(IpAddr, u16), char> = sorted
        .iter()
        .zip('A'..='Z')
        .map(|(d, l)| ((d.0, d.1), l))
        .collect();
    println!(
        "Service {} (configured scheduler: {})",
        service.key, service.scheduler
    );
    for (addr, port, weight) in &sorted {
        println!(
            "    {}  {}  weight {weight}",
            labels[&(*addr, *port)],
            fmt_addr(*addr, *port)
        );
    }
    println!(
        "\n    {:<6} {:<width$}   share of {CONNS} connections (each open while {HOLD} more arrive)",
        "sched",
        format!("first {SAMPLE} clients"),
        width = SAMPLE * 2
    );
    for kind in SchedKind::ALL {
        // The service's own scheduler keeps its flags (-b); the others run without.
        let flags = if kind == service.scheduler {
            service.flags
        } else {
            SchedFlags::empty()
        };
        let mut pool = Pool::new(kind, flags, &SchedConfig::default());
        // The rule set lists destinations in kernel order (head first); adding puts each new
        // one at the head, so add them tail first to reproduce that order.
        for &(addr, port, weight) in dests.iter().rev() {
            pool.add(addr, port, weight)
                .expect("rule set destinations are unique");
        }
        let label = |pool: &Pool, id: Option<DestId>| match id.and_then(|id| pool.get(id)) {
            Some(d) => labels[&(d.addr, d.port)],
            None => '-',
        };
        let mut rng = Pcg64::seed_from_u64(1);
        let mut clients = Pcg64::seed_from_u64(2);
        let mut open: std::collections::VecDeque<DestId> = Default::default();
        let mut picks = String::new();
        let tcp = service.key.protocol() != Some(Protocol::Udp);
        let mut shares: BTreeMap<char, usize> = BTreeMap::new();
        for i in 0..CONNS {
            let flow = client(&service.key, &mut clients);
            let mut ctx = SchedContext {
                now: Instant::from_secs(i as u64 / 100),
                rng: &mut rng,
            };
            let chosen = pool.schedule(&flow, &mut ctx);
            let l = label(&pool, chosen);
            if i < SAMPLE {
                picks.push(l);
                picks.push(' ');
            }
            *shares.entry(l).or_default() += 1;
            if let Some(id) = chosen {
                // A new TCP connection starts inactive and turns active with its first packet;
                // UDP connections stay inactive for life (spec 2.5), which matters to ovf.
                pool.update_counts(id, |d| {
                    if tcp {
                        d.activeconns += 1
                    } else {
                        d.inactconns += 1
                    }
                });
                open.push_back(id);
            }
            if open.len() > HOLD {
                let id = open.pop_front().expect("non-empty");
                pool.update_counts(id, |d| {
                    if tcp {
                        d.activeconns -= 1
                    } else {
                        d.inactconns -= 1
                    }
                });
            }
        }
        let shares: Vec<String> = shares
            .iter()
            .map(|(l, n)| format!("{l} {:>5.1}%", 100.0 * *n as f64 / CONNS as f64))
            .collect();
        let mark = if kind == service.scheduler { "*" } else { " " };
        println!(
            "  {mark} {:<6} {:<width$}   {}",
            kind.name(),
            picks,
            shares.join("  "),
            width = SAMPLE * 2
        );
    }
    println!("\n    (* = the service's scheduler; '-' = no destination: the client gets ICMP port unreachable)");
}

/// A client of the service: random addresses in 198.51.100.0/24 (or 2001:db8:c::/64) and
/// random ephemeral ports, so that source hashing has something to hash.
fn client(key: &ServiceKey, rng: &mut Pcg64) -> FlowKey {
    let (protocol, vaddr, vport) = match *key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => (protocol, addr, port),
        ServiceKey::Fwmark { .. } => (Protocol::Tcp, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)), 80),
    };
    let saddr = match vaddr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(
            198,
            51,
            100,
            (rng.next_u32() % 254 + 1) as u8,
        )),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xc,
            0,
            0,
            0,
            0,
            rng.next_u32() as u16,
        )),
    };
    let sport = (rng.next_u32() % 28232 + 32768) as u16;
    FlowKey::new(protocol, saddr, sport, vaddr, vport)
}

fn fmt_addr(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}
