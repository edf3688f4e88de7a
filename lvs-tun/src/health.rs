//! Health checks performed for real (`--keepalived FILE`): keepalived.conf's `virtual_server`
//! blocks become the director's services and a [`HealthMonitor`] per service; this module runs
//! the probes the monitor asks for (TCP connect, HTTP GET with status codes and MD5 digest,
//! MISC_CHECK scripts) on short-lived threads and applies the rule changes it decides.
//!
//! Checkers that are not run here (SSL_GET, SMTP_CHECK, DNS_CHECK, BFD_CHECK) are left out
//! with a warning: a real server whose only checkers are left out counts as up, as a real
//! server without checkers does in keepalived.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use lvs_core::health::{
    Action, CheckSettings, FailureReason, HealthMonitor, Notification, ProbeOutcome, ProbeRequest,
    ServiceSpec,
};
use lvs_core::keepalived::health::{check_settings, service_specs};
use lvs_core::keepalived::model::{CheckerConfig, CheckerKind, UrlCheck};
use lvs_core::keepalived::KeepalivedConfig;
use lvs_core::rules::{Command, RuleSet};
use md5::{Digest, Md5};
use tracing::{info, warn};

use crate::daemon::Shared;

/// Largest HTTP response read by a check (bytes); a longer one fails the check.
pub const MAX_HTTP_RESPONSE: usize = 16 << 20;

/// How one checker probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// TCP connect.
    Tcp,
    /// HTTP GET of each URL.
    Http {
        /// The URLs, as the monitor numbers them.
        urls: Vec<UrlCheck>,
        /// Host header when a URL has none.
        virtualhost: Option<String>,
    },
    /// A script through `/bin/sh -c`.
    Misc {
        /// The command line.
        path: String,
        /// Whether the exit code sets the weight (`misc_dynamic`).
        dynamic: bool,
    },
}

/// Where and how one checker probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Connect address.
    pub addr: SocketAddr,
    /// The probe.
    pub probe: Probe,
}

/// What a keepalived configuration means for the runtime.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Services without real servers: the monitor adds those that are up.
    pub services: RuleSet,
    /// One monitor spec per service key.
    pub specs: Vec<ServiceSpec>,
    /// `targets[service][server][checker]`, parallel to `specs`.
    pub targets: Vec<Vec<Vec<Target>>>,
    /// Checkers left out, one message each.
    pub skipped: Vec<String>,
}

/// The probe of a checker lvs-tun runs (TCP_CHECK, HTTP_GET, MISC_CHECK) with its settings
/// as the monitor takes them ([`check_settings`]); `None` for the others.
fn checker(c: &CheckerConfig) -> Option<(CheckSettings, Target)> {
    let probe = match &c.kind {
        CheckerKind::Tcp => Probe::Tcp,
        CheckerKind::HttpGet { urls, virtualhost } => Probe::Http {
            urls: urls.clone(),
            virtualhost: virtualhost.clone(),
        },
        CheckerKind::Misc { path, dynamic, .. } => Probe::Misc {
            path: path.clone(),
            dynamic: *dynamic,
        },
        _ => return None,
    };
    Some((
        check_settings(c)?,
        Target {
            addr: SocketAddr::new(c.connect_ip, c.connect_port),
            probe,
        },
    ))
}

/// Builds the plan of a parsed configuration.
pub fn plan(cfg: &KeepalivedConfig) -> Plan {
    let mut services = RuleSet::new();
    for (sc, _) in cfg.rules.services() {
        // Cannot fail: the keys come from a valid rule set.
        let _ = services.apply(&Command::AddService(sc.clone()));
    }
    let _ = services.apply(&Command::SetTimeouts(cfg.rules.timeouts()));
    let mut specs = Vec::new();
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    for vs in &cfg.services {
        // The monitor's specs as the library builds them (one per service key), with each
        // real server's checkers cut to those lvs-tun runs.
        for mut spec in service_specs(vs) {
            let mut st = Vec::new();
            for (server, rs) in spec.servers.iter_mut().zip(&vs.real_servers) {
                let mut checkers = Vec::new();
                let mut ct = Vec::new();
                for c in &rs.checkers {
                    match checker(c) {
                        Some((s, t)) => {
                            checkers.push(s);
                            ct.push(t);
                        }
                        None => skipped.push(format!(
                            "{}:{}: {} of real server {} is not run by lvs-tun",
                            vs.file,
                            rs.line,
                            c.kind.keyword(),
                            SocketAddr::new(rs.addr, rs.port)
                        )),
                    }
                }
                server.checkers = checkers;
                st.push(ct);
            }
            specs.push(spec);
            targets.push(st);
        }
    }
    Plan {
        services,
        specs,
        targets,
        skipped,
    }
}

/// Reads and parses keepalived.conf (includes from the file system, relative to it).
pub fn load(path: &Path) -> Result<KeepalivedConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut loader = |pattern: &str| -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        if pattern.contains(['*', '?', '[']) {
            // Directory glob on the last component only (`conf.d/*.conf`), sorted.
            let p = Path::new(pattern);
            let dir = p.parent().unwrap_or(Path::new("."));
            let pat = p.file_name().and_then(|s| s.to_str()).unwrap_or("");
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .map_err(|e| format!("{pattern}: {e}"))?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|f| {
                    f.file_name()
                        .and_then(|s| s.to_str())
                        .is_some_and(|n| lvs_core::keepalived::glob_match(pat, n))
                })
                .collect();
            names.sort();
            for n in names {
                let t = std::fs::read_to_string(&n).map_err(|e| format!("{}: {e}", n.display()))?;
                out.push((n.display().to_string(), t));
            }
        } else {
            let t = std::fs::read_to_string(pattern).map_err(|e| format!("{pattern}: {e}"))?;
            out.push((pattern.to_owned(), t));
        }
        Ok(out)
    };
    lvs_core::keepalived::parse_with(&path.display().to_string(), &text, &mut loader)
        .map_err(|e| e.to_string())
}

/// A small generator seeded from the kernel for the monitor's warmup draws.
struct Rng(u64);

impl rand_core::RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for c in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// Runs the monitor until the daemon stops.
pub fn run(shared: Arc<Shared>, plan: Plan, seed: u64) {
    for s in &plan.skipped {
        warn!("{s}");
    }
    let mut rng = Rng(seed);
    let mut mon = match HealthMonitor::new(shared.now(), plan.specs, &mut rng) {
        Ok(m) => m,
        Err(e) => {
            warn!("health checks not started: {e}");
            return;
        }
    };
    apply_actions(&mut mon, &shared);
    let (tx, rx) = mpsc::channel();
    while !shared.stopping() {
        let now = shared.now();
        mon.handle_timeout(now);
        while let Some(p) = mon.poll_probe(now) {
            let Some(t) = plan
                .targets
                .get(p.server.service)
                .and_then(|s| s.get(p.server.server))
                .and_then(|s| s.get(p.checker))
                .cloned()
            else {
                let _ =
                    mon.handle_probe_result(now, p.id, ProbeOutcome::Failure(FailureReason::Other));
                continue;
            };
            let timeout =
                StdDuration::from_nanos(p.deadline.saturating_duration_since(now).as_nanos())
                    .max(StdDuration::from_millis(1));
            let tx = tx.clone();
            let spawned = std::thread::Builder::new()
                .name("probe".into())
                .spawn(move || {
                    let _ = tx.send((p.id, run_probe(&t, &p, timeout)));
                });
            if spawned.is_err() {
                let _ =
                    mon.handle_probe_result(now, p.id, ProbeOutcome::Failure(FailureReason::Other));
            }
        }
        apply_actions(&mut mon, &shared);
        let wait = mon
            .poll_timeout()
            .map(|t| StdDuration::from_nanos(t.saturating_duration_since(now).as_nanos()))
            .unwrap_or(StdDuration::from_millis(250))
            .clamp(StdDuration::from_millis(1), StdDuration::from_millis(250));
        if let Ok((id, outcome)) = rx.recv_timeout(wait) {
            let _ = mon.handle_probe_result(shared.now(), id, outcome);
            while let Ok((id, outcome)) = rx.try_recv() {
                let _ = mon.handle_probe_result(shared.now(), id, outcome);
            }
        }
        apply_actions(&mut mon, &shared);
    }
}

fn apply_actions(mon: &mut HealthMonitor, shared: &Shared) {
    while let Some(a) = mon.poll_action() {
        match a {
            Action::Rule(cmd) => {
                let r = {
                    let mut d = shared.director();
                    let now = shared.now();
                    d.apply_command(now, &cmd)
                };
                match r {
                    Ok(()) => info!("health: rule change: {}", describe(&cmd)),
                    Err(e) => warn!("health: rule change {} refused: {e}", describe(&cmd)),
                }
            }
            Action::Notify(n) => {
                let (what, script) = match &n {
                    Notification::ServerUp {
                        service,
                        script,
                        server,
                    } => {
                        info!(service = %service, server = server.server, "real server up");
                        ("up", script)
                    }
                    Notification::ServerDown {
                        service,
                        script,
                        server,
                    } => {
                        info!(service = %service, server = server.server, "real server down");
                        ("down", script)
                    }
                    Notification::QuorumUp {
                        service, script, ..
                    } => {
                        info!(service = %service, "quorum up");
                        ("quorum up", script)
                    }
                    Notification::QuorumDown {
                        service, script, ..
                    } => {
                        info!(service = %service, "quorum down");
                        ("quorum down", script)
                    }
                };
                if let Some(s) = script {
                    notify(what, s);
                }
            }
        }
    }
}

/// Runs a notify script in the background (reaped by its own thread).
fn notify(what: &str, script: &str) {
    match std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .spawn()
    {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => warn!("notify script for {what} ({script}): {e}"),
    }
}

fn describe(cmd: &Command) -> String {
    match cmd {
        Command::AddDest(k, d) => format!(
            "-a {k} -r {} -w {}",
            SocketAddr::new(d.addr, d.port),
            d.weight
        ),
        Command::EditDest(k, d) => format!(
            "-e {k} -r {} -w {}",
            SocketAddr::new(d.addr, d.port),
            d.weight
        ),
        Command::DeleteDest {
            service,
            addr,
            port,
        } => {
            format!("-d {service} -r {}", SocketAddr::new(*addr, *port))
        }
        other => format!("{other:?}"),
    }
}

fn run_probe(t: &Target, p: &ProbeRequest, timeout: StdDuration) -> ProbeOutcome {
    let deadline = std::time::Instant::now() + timeout;
    match &t.probe {
        Probe::Tcp => match connect(t.addr, deadline) {
            Ok(_) => ProbeOutcome::Success,
            Err(o) => o,
        },
        Probe::Http { urls, virtualhost } => match urls.get(p.url) {
            Some(u) => http_get(t.addr, u, virtualhost.as_deref(), deadline),
            // An HTTP_GET without url blocks: keepalived treats the connect as the check.
            None => match connect(t.addr, deadline) {
                Ok(_) => ProbeOutcome::Success,
                Err(o) => o,
            },
        },
        Probe::Misc { path, dynamic } => misc(path, *dynamic, deadline),
    }
}

fn connect(addr: SocketAddr, deadline: std::time::Instant) -> Result<TcpStream, ProbeOutcome> {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() {
        return Err(ProbeOutcome::Timeout);
    }
    TcpStream::connect_timeout(&addr, left).map_err(|e| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => ProbeOutcome::Failure(FailureReason::Refused),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ProbeOutcome::Timeout,
        _ => ProbeOutcome::Failure(FailureReason::Unreachable),
    })
}

/// What an HTTP response means for a URL check.
pub fn judge_http(response: &[u8], url: &UrlCheck) -> ProbeOutcome {
    let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return ProbeOutcome::Failure(FailureReason::BadResponse);
    };
    let head = String::from_utf8_lossy(&response[..head_end]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok());
    let Some(status) = status else {
        return ProbeOutcome::Failure(FailureReason::BadResponse);
    };
    let ok = if url.status_codes.is_empty() {
        (200..=299).contains(&status)
    } else {
        url.status_codes
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&status))
    };
    if !ok {
        return ProbeOutcome::Failure(FailureReason::BadResponse);
    }
    if let Some(want) = &url.digest {
        let body = &response[head_end + 4..];
        let got: String = Md5::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !got.eq_ignore_ascii_case(want) {
            return ProbeOutcome::Failure(FailureReason::BadResponse);
        }
    }
    ProbeOutcome::Success
}

fn http_get(
    addr: SocketAddr,
    url: &UrlCheck,
    vhost: Option<&str>,
    deadline: std::time::Instant,
) -> ProbeOutcome {
    let mut s = match connect(addr, deadline) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let host = url
        .virtualhost
        .clone()
        .or(vhost.map(str::to_owned))
        .unwrap_or_else(|| match addr.ip() {
            IpAddr::V6(a) => format!("[{a}]"),
            IpAddr::V4(a) => a.to_string(),
        });
    // As keepalived's HTTP checker sends it.
    let req = format!(
        "GET {} HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        url.path
    );
    let left = |d: std::time::Instant| d.saturating_duration_since(std::time::Instant::now());
    let _ = s.set_write_timeout(Some(left(deadline).max(StdDuration::from_millis(1))));
    if s.write_all(req.as_bytes()).is_err() {
        return ProbeOutcome::Failure(FailureReason::Other);
    }
    let mut resp = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let l = left(deadline);
        if l.is_zero() {
            return ProbeOutcome::Timeout;
        }
        let _ = s.set_read_timeout(Some(l));
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if resp.len() + n > MAX_HTTP_RESPONSE {
                    return ProbeOutcome::Failure(FailureReason::BadResponse);
                }
                resp.extend_from_slice(&chunk[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return ProbeOutcome::Timeout
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return ProbeOutcome::Failure(FailureReason::Other),
        }
    }
    judge_http(&resp, url)
}

fn misc(path: &str, dynamic: bool, deadline: std::time::Instant) -> ProbeOutcome {
    let mut child = match std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(path)
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return ProbeOutcome::Failure(FailureReason::Other),
    };
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                let code = st.code().unwrap_or(1).clamp(0, 255) as u8;
                return if dynamic || code == 0 {
                    ProbeOutcome::ExitCode(code)
                } else {
                    ProbeOutcome::Failure(FailureReason::Other)
                };
            }
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return ProbeOutcome::Timeout;
            }
            Ok(None) => std::thread::sleep(StdDuration::from_millis(20)),
            Err(_) => return ProbeOutcome::Failure(FailureReason::Other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_core::health::CheckKind;
    use lvs_core::keepalived::{parse, MemoryFiles};

    const CONF: &str = "virtual_server 10.100.0.1 80 {
  delay_loop 2
  lb_algo rr
  lb_kind NAT
  protocol TCP
  real_server 10.0.1.11 80 {
    weight 2
    HTTP_GET {
      url { path /health status_code 200 digest 5d41402abc4b2a76b9719d911017c592 }
      connect_timeout 1
      retry 0
    }
  }
  real_server 10.0.1.12 80 {
    TCP_CHECK { connect_port 8080 }
  }
  real_server 10.0.1.13 80 {
    SSL_GET { url { path / } }
  }
}
";

    fn url(codes: Vec<(u16, u16)>, digest: Option<&str>) -> UrlCheck {
        UrlCheck {
            path: "/".into(),
            digest: digest.map(str::to_owned),
            status_codes: codes,
            virtualhost: None,
        }
    }

    #[test]
    fn plan_maps_services_servers_and_checkers() {
        let cfg = parse("k.conf", CONF, &mut MemoryFiles::new()).unwrap();
        let p = plan(&cfg);
        assert_eq!(p.specs.len(), 1);
        // Services only: the monitor adds the real servers.
        let (_, dests) = p.services.services().next().unwrap();
        assert!(dests.is_empty());
        let s = &p.specs[0];
        assert_eq!(s.servers.len(), 3);
        assert_eq!(s.servers[0].dest.weight, 2);
        assert_eq!(s.servers[0].checkers[0].kind, CheckKind::Http);
        assert_eq!(s.servers[0].checkers[0].retry, 0);
        assert_eq!(p.targets[0][1][0].addr, "10.0.1.12:8080".parse().unwrap());
        assert_eq!(p.targets[0][1][0].probe, Probe::Tcp);
        // SSL_GET is left out and reported.
        assert!(s.servers[2].checkers.is_empty());
        assert_eq!(p.skipped.len(), 1);
        assert!(p.skipped[0].contains("SSL_GET"), "{:?}", p.skipped);
    }

    /// The monitor built from the plan starts from the rules the configuration describes:
    /// a group's real servers written without a port take each service's port, a sorry
    /// server that is also a real server is left to the real server, and weights of 0
    /// (quorum 0 after keepalived's adjustment) still make a valid monitor.
    #[test]
    fn plan_monitor_reproduces_the_initial_rules() {
        let group = "virtual_server_group web {
  192.0.2.1 80
  192.0.2.1 8080
}
virtual_server group web {
  protocol TCP
  lb_kind NAT
  sorry_server 10.0.9.2
  real_server 10.0.9.1 {
    TCP_CHECK {
    }
  }
  real_server 10.0.9.2 {
    TCP_CHECK {
    }
  }
}
";
        let weightless = "virtual_server 192.0.2.2 80 {
  protocol TCP
  real_server 10.0.9.3 80 {
    weight 0
    TCP_CHECK {
    }
  }
}
";
        for conf in [group, weightless] {
            let cfg = parse("k.conf", conf, &mut MemoryFiles::new()).unwrap();
            let p = plan(&cfg);
            let mut mon =
                lvs_core::health::HealthMonitor::new(lvs_core::Instant::ZERO, p.specs, &mut Rng(1))
                    .unwrap();
            let mut rules = p.services;
            while let Some(a) = mon.poll_action() {
                if let lvs_core::health::Action::Rule(cmd) = a {
                    rules.apply(&cmd).unwrap();
                }
            }
            assert_eq!(rules.save(), cfg.rules.save());
        }
    }

    #[test]
    fn http_judgement_status_and_digest() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(judge_http(ok, &url(vec![], None)), ProbeOutcome::Success);
        assert_eq!(
            judge_http(ok, &url(vec![], Some("5D41402ABC4B2A76B9719D911017C592"))),
            ProbeOutcome::Success
        );
        assert_eq!(
            judge_http(ok, &url(vec![], Some("00000000000000000000000000000000"))),
            ProbeOutcome::Failure(FailureReason::BadResponse)
        );
        assert_eq!(
            judge_http(ok, &url(vec![(301, 302)], None)),
            ProbeOutcome::Failure(FailureReason::BadResponse)
        );
        let moved = b"HTTP/1.1 302 Found\r\n\r\n";
        assert_eq!(
            judge_http(moved, &url(vec![(301, 302)], None)),
            ProbeOutcome::Success
        );
        for bad in [
            &b""[..],
            b"HTTP/1.0\r\n\r\n",
            b"garbage",
            b"HTTP/1.0 abc\r\n\r\n",
        ] {
            assert_eq!(
                judge_http(bad, &url(vec![], None)),
                ProbeOutcome::Failure(FailureReason::BadResponse)
            );
        }
    }

    #[test]
    fn tcp_probe_against_a_real_listener_and_a_closed_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let dl = std::time::Instant::now() + StdDuration::from_secs(2);
        assert!(connect(addr, dl).is_ok());
        drop(l);
        assert_eq!(
            connect(addr, dl).unwrap_err(),
            ProbeOutcome::Failure(FailureReason::Refused)
        );
    }
}
