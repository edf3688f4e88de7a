//! The text [`KeepalivedConfig::describe`] prints.
//!
//! ```text
//! <ipvsadm -S -n output>
//! # virtual_server <name> (<file>:<line>)
//! #   services <key>[, <key>...]
//! #   quorum Q hysteresis H initial_quorum up|down delay_loop Ds alpha on|off omega on|off ha_suspend on|off method M
//! #   quorum_up <script>            (when set; same for quorum_down)
//! #   sorry_server <addr:port> method M inhibit on|off
//! #   real_server <addr:port> weight W method M uthreshold U lthreshold L inhibit_on_failure on|off alpha on|off initially up|down
//! #     notify_up <script>          (when set; same for notify_down)
//! #     <CHECKER> connect <addr:port> [bind <addr>[:port]] timeout Ts retry R delay_before_retry Ds delay_loop Ds warmup Ds alpha on|off [fwmark N] <kind settings>
//! #       url <path> status <codes|2xx> [digest <hex>] [virtualhost <host>]
//! ```
//! Every settings line starts with `#` so the whole text can still be fed to `ipvsadm -R`.

use core::fmt::Write as _;
use core::net::IpAddr;

use super::model::*;
use super::KeepalivedConfig;
use crate::rules::save::addr_port;
use crate::rules::{Forward, TunnelConfig, TunnelType};
use crate::time::Duration;

fn secs(d: Duration) -> String {
    let n = d.as_nanos();
    let (s, frac) = (n / 1_000_000_000, n % 1_000_000_000);
    if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:09}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    }
}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn method(f: Forward, t: TunnelConfig) -> String {
    match f {
        Forward::Masq => "NAT".into(),
        Forward::DirectRoute | Forward::Local => "DR".into(),
        Forward::Tunnel => match t.kind {
            TunnelType::Ipip => "TUN".into(),
            TunnelType::Gue => format!("TUN type gue port {} {}", t.port, csum(t)),
            TunnelType::Gre => format!("TUN type gre {}", csum(t)),
        },
    }
}

fn csum(t: TunnelConfig) -> &'static str {
    match t.csum {
        crate::rules::TunnelCsum::NoCsum => "nocsum",
        crate::rules::TunnelCsum::Csum => "csum",
        crate::rules::TunnelCsum::RemCsum => "remcsum",
    }
}

fn name(n: &VirtualServerName) -> String {
    match n {
        VirtualServerName::Addr { addr, port } => match addr {
            IpAddr::V4(a) => format!("{a} {port}"),
            IpAddr::V6(a) => format!("{a} {port}"),
        },
        VirtualServerName::Fwmark(m) => format!("fwmark {m}"),
        VirtualServerName::Group(g) => format!("group {g}"),
    }
}

pub(crate) fn describe(cfg: &KeepalivedConfig) -> String {
    let mut out = cfg.rules.save();
    for vs in &cfg.services {
        // Writing into a String cannot fail.
        let _ = writeln!(
            out,
            "# virtual_server {} ({}:{})",
            name(&vs.name),
            vs.file,
            vs.line
        );
        let keys: Vec<String> = vs.keys.iter().map(|k| k.to_string()).collect();
        let _ = writeln!(out, "#   services {}", keys.join(", "));
        let _ = writeln!(
            out,
            "#   quorum {} hysteresis {} initial_quorum {} delay_loop {} alpha {} omega {} ha_suspend {} method {}",
            vs.quorum,
            vs.hysteresis,
            if vs.initial_quorum_up { "up" } else { "down" },
            secs(vs.delay_loop),
            on(vs.alpha),
            on(vs.omega),
            on(vs.ha_suspend),
            method(vs.forward, TunnelConfig::default()),
        );
        if let Some(s) = &vs.quorum_up {
            let _ = writeln!(out, "#   quorum_up {s}");
        }
        if let Some(s) = &vs.quorum_down {
            let _ = writeln!(out, "#   quorum_down {s}");
        }
        if let Some(s) = &vs.sorry_server {
            let _ = writeln!(
                out,
                "#   sorry_server {} method {} inhibit {}",
                addr_port(s.addr, s.port),
                method(s.forward, s.tunnel),
                on(s.inhibit)
            );
        }
        for rs in &vs.real_servers {
            let _ = writeln!(
                out,
                "#   real_server {} weight {} method {} uthreshold {} lthreshold {} inhibit_on_failure {} alpha {} initially {}",
                addr_port(rs.addr, rs.port),
                rs.weight,
                method(rs.forward, rs.tunnel),
                rs.u_threshold,
                rs.l_threshold,
                on(rs.inhibit_on_failure),
                on(rs.alpha),
                if rs.initially_up { "up" } else { "down" },
            );
            if let Some(s) = &rs.notify_up {
                let _ = writeln!(out, "#     notify_up {s}");
            }
            if let Some(s) = &rs.notify_down {
                let _ = writeln!(out, "#     notify_down {s}");
            }
            for c in &rs.checkers {
                write_checker(&mut out, c);
            }
        }
    }
    out
}

fn write_checker(out: &mut String, c: &CheckerConfig) {
    let _ = write!(
        out,
        "#     {} connect {}",
        c.kind.keyword(),
        addr_port(c.connect_ip, c.connect_port)
    );
    match (c.bindto, c.bind_port) {
        (Some(a), Some(p)) => {
            let _ = write!(out, " bind {}", addr_port(a, p));
        }
        (Some(a), None) => {
            let _ = write!(out, " bind {a}");
        }
        (None, Some(p)) => {
            let _ = write!(out, " bind_port {p}");
        }
        (None, None) => {}
    }
    let _ = write!(
        out,
        " timeout {} retry {} delay_before_retry {} delay_loop {} warmup {} alpha {}",
        secs(c.connect_timeout),
        c.retry,
        secs(c.delay_before_retry),
        secs(c.delay_loop),
        secs(c.warmup),
        on(c.alpha)
    );
    if let Some(m) = c.fwmark {
        let _ = write!(out, " fwmark {m}");
    }
    let mut urls: &[UrlCheck] = &[];
    match &c.kind {
        CheckerKind::Tcp => {}
        CheckerKind::HttpGet {
            urls: u,
            virtualhost,
        }
        | CheckerKind::SslGet {
            urls: u,
            virtualhost,
        } => {
            if let Some(v) = virtualhost {
                let _ = write!(out, " virtualhost {v}");
            }
            urls = u;
        }
        CheckerKind::Misc {
            path,
            timeout,
            dynamic,
        } => {
            let _ = write!(
                out,
                " misc_timeout {} misc_dynamic {} misc_path {path}",
                secs(*timeout),
                on(*dynamic)
            );
        }
        CheckerKind::Smtp { helo_name } => {
            if let Some(h) = helo_name {
                let _ = write!(out, " helo_name {h}");
            }
        }
        CheckerKind::Dns { query_type, name } => {
            let _ = write!(out, " type {query_type} name {name}");
        }
        CheckerKind::Bfd { name } => {
            if let Some(n) = name {
                let _ = write!(out, " name {n}");
            }
        }
    }
    out.push('\n');
    for u in urls {
        let status = if u.status_codes.is_empty() {
            "2xx".to_string()
        } else {
            u.status_codes
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let _ = write!(out, "#       url {} status {status}", u.path);
        if let Some(d) = &u.digest {
            let _ = write!(out, " digest {d}");
        }
        if let Some(v) = &u.virtualhost {
            let _ = write!(out, " virtualhost {v}");
        }
        out.push('\n');
    }
}
