//! `ipvsadm -L -n` listings, from a plain [`Snapshot`] of configuration and counters.
//!
//! The director fills a [`Snapshot`] (services with their real servers in kernel list order,
//! connection counts, 64-bit statistics and rates); [`list`] prints it exactly as
//! `ipvsadm -L -n` does with `--stats`, `--rate`, `--thresholds`, `--persistent-conn` or
//! `--tun-info` (and `--exact`, `--nosort`), sorted as ipvsadm sorts (see
//! [`save`](super::save)). [`list_conns`] prints `ipvsadm -L -n -c` from connection entries.
//!
//! ```
//! use lvs_core::rules::listing::{list, ListOptions, Snapshot};
//! use lvs_core::rules::RuleSet;
//! let rules = RuleSet::from_text("-A -u 10.0.0.1:53 -s rr -o\n-a -u 10.0.0.1:53 -r 10.1.0.1\n").unwrap();
//! let mut snap = Snapshot::from_rules(&rules);
//! snap.services[0].dests[0].inactconns = 17;
//! assert_eq!(
//!     list(&snap, &ListOptions::default()),
//!     "IP Virtual Server version 1.2.1 (size=4096)\n\
//!      Prot LocalAddress:Port Scheduler Flags\n  \
//!      -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
//!      UDP  10.0.0.1:53 rr ops\n  \
//!      -> 10.1.0.1:53                  Route   1      0          17        \n",
//! );
//! ```

use core::fmt::Write as _;
use core::net::IpAddr;

use super::error::fmt_addr_port;
use super::model::{
    DestConfig, Family, Forward, PersistMask, ServiceConfig, ServiceKey, TunnelType,
};
use super::ruleset::RuleSet;
use super::save::{sched_flags_text, sort_dests_by, sort_services_by};
use crate::protocol::Protocol;

/// 64-bit traffic counters of a service or real server (`ip_vs_kstats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client → server.
    pub inpkts: u64,
    /// Packets server → client.
    pub outpkts: u64,
    /// Bytes client → server.
    pub inbytes: u64,
    /// Bytes server → client.
    pub outbytes: u64,
}

/// Estimated rates of a service or real server, as reported (per second).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second in.
    pub inpps: u64,
    /// Packets per second out.
    pub outpps: u64,
    /// Bytes per second in.
    pub inbps: u64,
    /// Bytes per second out.
    pub outbps: u64,
}

/// One real server as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestSnapshot {
    /// Its configuration.
    pub config: DestConfig,
    /// Connections in an active state.
    pub activeconns: u32,
    /// Connections in an inactive state.
    pub inactconns: u32,
    /// Persistence templates bound to it.
    pub persistconns: u32,
    /// Traffic counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
}

impl DestSnapshot {
    /// A real server with all counters at zero.
    pub fn new(config: DestConfig) -> Self {
        DestSnapshot {
            config,
            activeconns: 0,
            inactconns: 0,
            persistconns: 0,
            stats: Stats::default(),
            rates: Rates::default(),
        }
    }
}

/// One service as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSnapshot {
    /// Its configuration.
    pub config: ServiceConfig,
    /// Traffic counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
    /// Real servers in kernel list order.
    pub dests: Vec<DestSnapshot>,
}

/// Everything `ipvsadm -L` shows, as plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// IPVS version reported to user space (1.2.1).
    pub version: (u8, u8, u8),
    /// Connection table bucket count (`size=`, 4096 by default).
    pub conn_tab_size: u32,
    /// Services in the order the kernel returns them (shown as is with `--nosort`).
    pub services: Vec<ServiceSnapshot>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            version: (1, 2, 1),
            conn_tab_size: 4096,
            services: Vec::new(),
        }
    }
}

impl Snapshot {
    /// The services and real servers of a rule set (creation and list order), with every
    /// counter at zero.
    pub fn from_rules(rules: &RuleSet) -> Self {
        let services = rules
            .services()
            .map(|(cfg, dests)| ServiceSnapshot {
                config: cfg.clone(),
                stats: Stats::default(),
                rates: Rates::default(),
                dests: dests.iter().copied().map(DestSnapshot::new).collect(),
            })
            .collect();
        Snapshot {
            services,
            ..Snapshot::default()
        }
    }
}

/// Which columns `ipvsadm -L -n` shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListFormat {
    /// Forward, Weight, ActiveConn, InActConn.
    #[default]
    Plain,
    /// `--stats`: Conns, InPkts, OutPkts, InBytes, OutBytes.
    Stats,
    /// `--rate`: CPS, InPPS, OutPPS, InBPS, OutBPS.
    Rate,
    /// `--thresholds`: Uthreshold, Lthreshold, ActiveConn, InActConn.
    Thresholds,
    /// `--persistent-conn`: Weight, PersistConn, ActiveConn, InActConn.
    PersistentConn,
    /// `--tun-info`: Forward, TunnelInfo, Weight, ActiveConn, InActConn.
    TunInfo,
}

/// Options of [`list`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// The columns.
    pub format: ListFormat,
    /// `--exact`: full numbers instead of K/M/G/T in `--stats` and `--rate`.
    pub exact: bool,
    /// `--nosort`: services and real servers in kernel order.
    pub nosort: bool,
}

/// Prints the listing of `ipvsadm -L -n` with `opts`.
pub fn list(snap: &Snapshot, opts: &ListOptions) -> String {
    let mut out = String::new();
    let (a, b, c) = snap.version;
    let _ = writeln!(
        out,
        "IP Virtual Server version {a}.{b}.{c} (size={})",
        snap.conn_tab_size
    );
    out.push_str(&title(opts.format));
    let mut services: Vec<&ServiceSnapshot> = snap.services.iter().collect();
    if !opts.nosort {
        sort_services_by(&mut services, |s| &s.config.key);
    }
    for svc in services {
        write_service(&mut out, svc, opts);
    }
    out
}

/// `print_title`.
fn title(format: ListFormat) -> String {
    const PROT: &str = "Prot LocalAddress:Port";
    const REMOTE: &str = "  -> RemoteAddress:Port";
    match format {
        ListFormat::Stats => {
            let h = ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"];
            format!("{PROT:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REMOTE}\n", h[0], h[1], h[2], h[3], h[4])
        }
        ListFormat::Rate => {
            let h = ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"];
            format!("{PROT:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REMOTE}\n", h[0], h[1], h[2], h[3], h[4])
        }
        ListFormat::Thresholds => format!(
            "{PROT:<33} {:<10} {:<10} {:<10} {:<10}\n{REMOTE}\n",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        ListFormat::PersistentConn => format!(
            "{PROT:<33} {:<9} {:<11} {:<10} {:<10}\n{REMOTE}\n",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        ListFormat::TunInfo => format!(
            "{PROT} Scheduler Flags\n{REMOTE}           Forward TunnelInfo    Weight ActiveConn InActConn\n"
        ),
        ListFormat::Plain => {
            format!("{PROT} Scheduler Flags\n{REMOTE}           Forward Weight ActiveConn InActConn\n")
        }
    }
}

/// The service name column: `TCP  10.0.0.1:80`, `FWM  7`, `FWM  7 IPv6`.
fn service_name(key: &ServiceKey) -> String {
    match key {
        // ipvsadm prints the mark with %d.
        ServiceKey::Fwmark {
            mark,
            family: Family::V4,
        } => format!("FWM  {}", *mark as i32),
        ServiceKey::Fwmark {
            mark,
            family: Family::V6,
        } => format!("FWM  {} IPv6", *mark as i32),
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            let name = match protocol {
                Protocol::Tcp | Protocol::Udp | Protocol::Sctp => protocol.name(),
                Protocol::Ip => "?",
            };
            let mut s = format!("{name:<4} {}", fmt_addr_port(*addr, *port));
            if addr.is_ipv4() {
                // "svc_name[33] = '\0'"; never reached by numeric IPv4 names.
                s.truncate(33);
            }
            s
        }
    }
}

/// ipvsadm's `print_largenum`.
fn largenum(out: &mut String, n: u64, exact: bool) {
    let _ = if exact {
        let len = n.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        write!(out, "{n:>width$}")
    } else if n < 100_000_000 {
        write!(out, "{n:>9}")
    } else if n < 1_000_000_000 {
        write!(out, "{:>8}K", n / 1000)
    } else if n < 100_000_000_000 {
        write!(out, "{:>8}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        write!(out, "{:>8}G", n / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", n / 1_000_000_000_000)
    };
}

fn write_service(out: &mut String, svc: &ServiceSnapshot, opts: &ListOptions) {
    let cfg = &svc.config;
    let name = service_name(&cfg.key);
    match opts.format {
        ListFormat::Stats | ListFormat::Rate => {
            let _ = write!(out, "{name:<33}");
            let s = svc.stats;
            let r = svc.rates;
            let values = if opts.format == ListFormat::Stats {
                [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes]
            } else {
                [r.cps, r.inpps, r.outpps, r.inbps, r.outbps]
            };
            for v in values {
                largenum(out, v, opts.exact);
            }
        }
        _ => {
            let _ = write!(out, "{name} {}", cfg.scheduler.name());
            if !cfg.flags.is_empty() {
                let _ = write!(out, " ({})", sched_flags_text(cfg.scheduler, cfg.flags));
            }
            if let Some(p) = &cfg.persistence {
                let _ = write!(out, " persistent {}", p.timeout_secs);
                if !p.mask.is_default() {
                    let _ = match p.mask {
                        PersistMask::V4(m) => write!(out, " mask {m}"),
                        PersistMask::V6(plen) => write!(out, " mask {plen}"),
                    };
                }
                // ipvsadm prints the engine only for persistent services here.
                if let Some(pe) = &cfg.pe {
                    let _ = write!(out, " pe {pe}");
                }
            }
            if cfg.one_packet {
                out.push_str(" ops");
            }
        }
    }
    out.push('\n');
    let mut dests: Vec<&DestSnapshot> = svc.dests.iter().collect();
    if !opts.nosort {
        sort_dests_by(&mut dests, |d| (&d.config.addr, d.config.port));
    }
    for d in dests {
        write_dest(out, d, opts);
    }
}

/// `fwd_tun_info`: `ipip`, `gue:<port>:<-c|+c|r+c>`, `gre:<-c|+c|r+c>`; `n/a` otherwise.
fn tun_info(d: &DestConfig) -> String {
    if d.forward != Forward::Tunnel {
        return "n/a".to_string();
    }
    let t = d.tunnel;
    match t.kind {
        TunnelType::Ipip => "ipip".to_string(),
        TunnelType::Gue => format!("gue:{}:{}", t.port, t.csum.short()),
        TunnelType::Gre => format!("gre:{}", t.csum.short()),
    }
}

fn write_dest(out: &mut String, d: &DestSnapshot, opts: &ListOptions) {
    let c = &d.config;
    let mut name = fmt_addr_port(c.addr, c.port).to_string();
    if c.addr.is_ipv4() {
        // "dname[28] = '\0'"; never reached by numeric IPv4 names.
        name.truncate(28);
    }
    let fwd = c.forward.name();
    let (act, inact) = (d.activeconns, d.inactconns);
    let _ = match opts.format {
        ListFormat::Stats => {
            let _ = write!(out, "  -> {name:<28}");
            let s = d.stats;
            for v in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
                largenum(out, v, opts.exact);
            }
            writeln!(out)
        }
        ListFormat::Rate => {
            let r = d.rates;
            let _ = write!(
                out,
                "  -> {name:<28} {:>8} {:>8} {:>8}",
                r.cps, r.inpps, r.outpps
            );
            largenum(out, r.inbps, opts.exact);
            largenum(out, r.outbps, opts.exact);
            writeln!(out)
        }
        ListFormat::Thresholds => writeln!(
            out,
            "  -> {name:<28} {:<10} {:<10} {act:<10} {inact:<10}",
            c.u_threshold, c.l_threshold
        ),
        ListFormat::PersistentConn => writeln!(
            out,
            "  -> {name:<28} {:<9} {:<11} {act:<10} {inact:<10}",
            c.weight, d.persistconns
        ),
        ListFormat::TunInfo => writeln!(
            out,
            "  -> {name:<28} {fwd:<7} {:<13} {:<6} {act:<10} {inact:<10}",
            tun_info(c),
            c.weight
        ),
        ListFormat::Plain => {
            writeln!(
                out,
                "  -> {name:<28} {fwd:<7} {:<6} {act:<10} {inact:<10}",
                c.weight
            )
        }
    };
}

/// One connection or template as `/proc/net/ip_vs_conn` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnEntry {
    /// Protocol (`IP` for fwmark persistence templates).
    pub protocol: Protocol,
    /// Client address.
    pub caddr: IpAddr,
    /// Client port (0 in templates).
    pub cport: u16,
    /// Virtual address (for fwmark templates, the mark as an address).
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    pub daddr: IpAddr,
    /// Real server port.
    pub dport: u16,
    /// Protocol state name (`ESTABLISHED`, `FIN_WAIT`, `NONE`, `ASSURED`, ...).
    pub state: String,
    /// Seconds until expiry.
    pub expires_secs: u32,
    /// Persistence engine name and data (`sip` Call-ID), when the entry has them.
    pub pe: Option<(String, String)>,
}

/// Prints `ipvsadm -L -n -c` (with `persistent_conn`: `-c --persistent-conn`, adding the
/// engine columns). Entries print in the order given, as ipvsadm prints the `/proc` order.
///
/// ```
/// use lvs_core::rules::listing::{list_conns, ConnEntry};
/// use lvs_core::Protocol;
/// let e = ConnEntry {
///     protocol: Protocol::Tcp,
///     caddr: "203.0.113.9".parse().unwrap(), cport: 51234,
///     vaddr: "192.168.10.100".parse().unwrap(), vport: 80,
///     daddr: "10.0.0.1".parse().unwrap(), dport: 80,
///     state: "ESTABLISHED".into(), expires_secs: 898, pe: None,
/// };
/// assert_eq!(
///     list_conns(&[e], false),
///     "IPVS connection entries\n\
///      pro expire state       source             virtual            destination\n\
///      TCP 14:58  ESTABLISHED 203.0.113.9:51234  192.168.10.100:80  10.0.0.1:80\n",
/// );
/// ```
pub fn list_conns(entries: &[ConnEntry], persistent_conn: bool) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let _ = if persistent_conn {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        )
    } else {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        )
    };
    for e in entries {
        let expire = format!("{:02}:{:02}", e.expires_secs / 60, e.expires_secs % 60);
        let c = fmt_addr_port(e.caddr, e.cport).to_string();
        let v = fmt_addr_port(e.vaddr, e.vport).to_string();
        let d = fmt_addr_port(e.daddr, e.dport).to_string();
        let proto = e.protocol.name();
        let _ = match (&e.pe, persistent_conn) {
            (Some((name, data)), true) => writeln!(
                out,
                "{proto:<3} {expire:<6} {:<11} {c:<18} {v:<18} {d:<16} {name:<18} {data}",
                e.state
            ),
            _ => writeln!(
                out,
                "{proto:<3} {expire:<6} {:<11} {c:<18} {v:<18} {d}",
                e.state
            ),
        };
    }
    out
}
