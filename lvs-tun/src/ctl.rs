//! `lvs-tun ctl`: ipvsadm's language over a Unix socket (mode 0600).
//!
//! Wire format, one request per connection: the number of arguments on a line, each
//! argument on its own line, then the body (the rules of `-R`) until the client shuts its
//! writing side. The answer: a status line (`ok` or `error`), then the text to print.
//!
//! Supported: `-L`/`-l` with `-n`, `--stats`, `--rate`, `--thresholds`, `--persistent-conn`,
//! `--tun-info`, `--exact`, `--nosort`, `-c`, `--timeout`, and an optional `-t`/`-u`/`--sctp-service`/`-f`
//! service; `-S` (`-n`); `-R` (atomic: the whole text applies or nothing does); and every
//! command line of the rule language: `-A -E -D -a -e -d -C -Z --set`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration as StdDuration;

use lvs_core::director::Director;
use lvs_core::rules::listing::{list, list_conns, ListFormat, ListOptions};
use lvs_core::rules::{parse_line, Command, ServiceKey};
use lvs_core::Instant;
use tracing::{info, warn};

use crate::daemon::Shared;

/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/lvs-tun.sock";
/// Largest request accepted (arguments and `-R` body).
pub const MAX_REQUEST: usize = 4 << 20;
/// Most arguments in one request.
pub const MAX_ARGS: usize = 64;

/// Binds the control socket (replacing a stale one) with mode 0600.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another daemon answers on this socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Answers requests until the daemon stops.
pub fn serve(listener: UnixListener, shared: &Shared) {
    while !shared.stopping() {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = serve_one(stream, shared) {
                    warn!("control request: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(StdDuration::from_millis(50));
            }
            Err(e) => {
                warn!("control socket: {e}");
                std::thread::sleep(StdDuration::from_millis(50));
            }
        }
    }
}

fn serve_one(stream: UnixStream, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(StdDuration::from_secs(5)))?;
    let (args, body) = read_request(&stream)?;
    let answer = if args.iter().any(|a| a == "--role") {
        crate::sync::ctl_role(shared, &args)
    } else {
        let mut d = shared.director();
        let now = shared.now();
        execute(&mut d, now, &args, &body)
    };
    let mut w = &stream;
    match answer {
        Ok(text) => {
            if changes_rules(&args) {
                info!("rule change: {}", args.join(" "));
            }
            write!(w, "ok\n{text}")
        }
        Err(text) => write!(w, "error\n{text}"),
    }
}

fn read_request(stream: &UnixStream) -> io::Result<(Vec<String>, String)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    let mut r = BufReader::new(stream.take(MAX_REQUEST as u64));
    let mut line = String::new();
    r.read_line(&mut line)?;
    let n: usize = line.trim().parse().map_err(|_| bad("argument count"))?;
    if n > MAX_ARGS {
        return Err(bad("too many arguments"));
    }
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line)?;
        args.push(line.trim_end_matches('\n').to_owned());
    }
    let mut body = String::new();
    r.read_to_string(&mut body)?;
    Ok((args, body))
}

fn changes_rules(args: &[String]) -> bool {
    !args.iter().any(|a| {
        matches!(
            a.as_str(),
            "-L" | "-l" | "--list" | "-S" | "--save" | "--role"
        )
    })
}

/// Sends one request; returns whether it succeeded and the text to print.
pub fn request(socket: &Path, args: &[String], body: &str) -> io::Result<(bool, String)> {
    let mut s = UnixStream::connect(socket)?;
    let mut req = format!("{}\n", args.len());
    for a in args {
        if a.contains('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an argument contains a newline",
            ));
        }
        req.push_str(a);
        req.push('\n');
    }
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    match answer.split_once('\n') {
        Some(("ok", rest)) => Ok((true, rest.to_owned())),
        Some(("error", rest)) => Ok((false, rest.to_owned())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "malformed answer from the daemon",
        )),
    }
}

/// Whether `args` ask for `-R` (the client then sends its standard input).
pub fn wants_stdin(args: &[String]) -> bool {
    args.iter().any(|a| a == "-R" || a == "--restore")
}

/// The service named by `-t/-u/--sctp-service/-f` in `args`, through the rule parser.
fn service_filter(args: &[String]) -> Result<Option<ServiceKey>, String> {
    let Some(i) = args.iter().position(|a| {
        matches!(
            a.as_str(),
            "-t" | "-u"
                | "--sctp-service"
                | "-f"
                | "--tcp-service"
                | "--udp-service"
                | "--fwmark-service"
        )
    }) else {
        return Ok(None);
    };
    let Some(v) = args.get(i + 1) else {
        return Err(format!("{} needs a service", args[i]));
    };
    match parse_line(&format!("-D {} {v}", args[i])) {
        Ok(Some(Command::DeleteService(k))) => Ok(Some(k)),
        Ok(_) => Err("not a service".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Executes one ipvsadm request against `d`: the text to print, or an error message.
pub fn execute(
    d: &mut Director,
    now: Instant,
    args: &[String],
    body: &str,
) -> Result<String, String> {
    let has = |names: &[&str]| args.iter().any(|a| names.contains(&a.as_str()));
    if has(&["--role"]) {
        // Role changes act on the daemon (forwarding, sync threads), not on the director
        // alone: `serve_one` hands them to `crate::sync::ctl_role`.
        return Err("--role is handled by the running daemon\n".into());
    }
    if has(&["-L", "-l", "--list"]) {
        if has(&["--timeout"]) {
            let t = d.rules().timeouts();
            return Ok(format!(
                "Timeout (tcp tcpfin udp): {} {} {}\n",
                t.tcp_secs, t.tcpfin_secs, t.udp_secs
            ));
        }
        if has(&["-c", "--connection"]) {
            return Ok(list_conns(&d.connections(now), has(&["--persistent-conn"])));
        }
        let format = if has(&["--stats"]) {
            ListFormat::Stats
        } else if has(&["--rate"]) {
            ListFormat::Rate
        } else if has(&["--thresholds"]) {
            ListFormat::Thresholds
        } else if has(&["--persistent-conn"]) {
            ListFormat::PersistentConn
        } else if has(&["--tun-info"]) {
            ListFormat::TunInfo
        } else {
            ListFormat::Plain
        };
        let opts = ListOptions {
            format,
            exact: has(&["--exact"]),
            nosort: has(&["--nosort"]),
        };
        let mut snap = d.snapshot(now);
        if let Some(key) = service_filter(args)? {
            snap.services.retain(|s| s.config.key == key);
            if snap.services.is_empty() {
                return Err("No such service\n".into());
            }
        }
        return Ok(list(&snap, &opts));
    }
    if has(&["-S", "--save"]) {
        return Ok(d.rules().save());
    }
    if has(&["-R", "--restore"]) {
        let mut rules = d.rules().clone();
        rules.apply_text(body).map_err(|e| format!("{e}\n"))?;
        let diff = d.apply_rules(now, &rules).map_err(|e| format!("{e}\n"))?;
        // `-Z` lines in a restore zero counters as ipvsadm would; the rule set itself
        // carries no counters, so run them after the swap.
        if let Ok(cmds) = lvs_core::rules::parse(body) {
            for (_, c) in cmds {
                if matches!(c, Command::Zero(_)) {
                    let _ = d.apply_command(now, &c);
                }
            }
        }
        return Ok(format!(
            "services: {} added, {} removed, {} edited\n",
            diff.services_added.len(),
            diff.services_removed.len(),
            diff.services_edited.len()
        ));
    }
    let line = args.join(" ");
    match parse_line(&line) {
        Ok(Some(cmd)) => d
            .apply_command(now, &cmd)
            .map(|()| String::new())
            .map_err(|e| format!("{e}\n")),
        Ok(None) => Err("no command given\n".into()),
        Err(e) => Err(format!("{e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_core::conn::HashKey;
    use lvs_core::director::DirectorConfig;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn director() -> Director {
        Director::new(DirectorConfig::new(1024, HashKey::from_u128(7)))
    }

    #[test]
    fn commands_change_the_rules_and_listing_shows_them() {
        let mut d = director();
        let t = Instant::from_secs(1);
        execute(&mut d, t, &args("-A -t 10.100.0.1:80 -s rr"), "").unwrap();
        execute(
            &mut d,
            t,
            &args("-a -t 10.100.0.1:80 -r 10.0.1.11:80 -m -w 2"),
            "",
        )
        .unwrap();
        let l = execute(&mut d, t, &args("-L -n"), "").unwrap();
        assert!(l.contains("TCP  10.100.0.1:80 rr"), "{l}");
        assert!(l.contains("10.0.1.11:80"), "{l}");
        assert!(l.contains("Masq    2"), "{l}");
        execute(
            &mut d,
            t,
            &args("-e -t 10.100.0.1:80 -r 10.0.1.11:80 -m -w 0"),
            "",
        )
        .unwrap();
        let s = execute(&mut d, t, &args("-S -n"), "").unwrap();
        assert!(
            s.contains("-a -t 10.100.0.1:80 -r 10.0.1.11:80 -m -w 0"),
            "{s}"
        );
        // Errors are the kernel's.
        let e = execute(&mut d, t, &args("-A -t 10.100.0.1:80"), "").unwrap_err();
        assert!(e.to_lowercase().contains("exist"), "{e}");
        let e = execute(&mut d, t, &args("-L -n -t 10.9.9.9:1"), "").unwrap_err();
        assert!(e.contains("No such service"));
    }

    #[test]
    fn set_zero_and_timeout_listing() {
        let mut d = director();
        let t = Instant::from_secs(1);
        execute(&mut d, t, &args("--set 100 20 30"), "").unwrap();
        assert_eq!(
            execute(&mut d, t, &args("-L --timeout"), "").unwrap(),
            "Timeout (tcp tcpfin udp): 100 20 30\n"
        );
        // A 0 keeps the current value.
        execute(&mut d, t, &args("--set 0 50 0"), "").unwrap();
        assert_eq!(
            execute(&mut d, t, &args("-L --timeout"), "").unwrap(),
            "Timeout (tcp tcpfin udp): 100 50 30\n"
        );
        execute(&mut d, t, &args("-Z"), "").unwrap();
        assert!(execute(&mut d, t, &args("-Z -t 10.9.9.9:80"), "").is_err());
    }

    #[test]
    fn restore_is_atomic() {
        let mut d = director();
        let t = Instant::from_secs(1);
        execute(&mut d, t, &args("-A -u 10.100.0.1:53"), "").unwrap();
        let before = d.rules().save();
        // The second line is refused, so the first does not apply either.
        let e = execute(
            &mut d,
            t,
            &args("-R"),
            "-A -t 10.100.0.2:80\n-a -t 10.9.9.9:80 -r 10.0.0.1\n",
        )
        .unwrap_err();
        assert!(e.contains('2'), "names the line: {e}");
        assert_eq!(d.rules().save(), before);
        execute(&mut d, t, &args("-R"), "-C\n-A -t 10.100.0.2:80 -s rr\n").unwrap();
        let s = d.rules().save();
        assert!(
            s.contains("10.100.0.2:80") && !s.contains("10.100.0.1:53"),
            "{s}"
        );
    }

    #[test]
    fn role_needs_the_daemon_and_garbage_is_an_error() {
        let mut d = director();
        let t = Instant::from_secs(1);
        assert!(execute(&mut d, t, &args("--role master"), "").is_err());
        assert!(execute(&mut d, t, &args("-Q"), "").is_err());
        assert!(execute(&mut d, t, &[], "").is_err());
    }
}
