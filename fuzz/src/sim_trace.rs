//! Fuzz body of `sim_trace`: arbitrary bytes as an `lvs-sim sched` trace against a fixed
//! small rule set (rr, wlc with persistence and a netmask, a port-0 service, a fwmark
//! service, a UDP one-packet service, IPv6).
//!
//! Invariants: parsing and running never panic; the work is bounded (small connection table,
//! few timer steps per event); every `syn`, `udp` and `tcp-fwmark` event prints exactly one
//! line, `<client> -> ...`; a parse error points inside the text.

use lvs_core::rules::RuleSet;
use lvs_sim::sched_cmd::{SchedOptions, SchedRunner};
use lvs_sim::trace::{self, fmt_socket_addr, EventKind};

/// The rule set every input runs against.
pub const SIM_TRACE_RULES: &str = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m
-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 2
-A -t 10.0.0.2:443 -s wlc -p 60 -M 255.255.255.0
-a -t 10.0.0.2:443 -r 10.1.0.1:443 -g
-a -t 10.0.0.2:443 -r 10.1.0.3:443 -g -x 2 -y 1
-A -t 10.0.0.3:0 -s sh -p 30
-a -t 10.0.0.3:0 -r 10.1.0.4 -g
-A -f 7 -s wrr
-a -f 7 -r 10.1.0.5:8080 -m -w 3
-a -f 7 -r 10.1.0.6 -g
-A -u 10.0.0.1:53 -s rr -o
-a -u 10.0.0.1:53 -r 10.1.0.1:53 -m
-A -t [2001:db8::1]:80 -s lc
-a -t [2001:db8::1]:80 -r [2001:db8:1::1]:80 -m
";

/// Runs `data` (lossily decoded as UTF-8) as a trace and checks the invariants.
pub fn sim_trace(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let trace = match trace::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(
                e.line >= 1 && e.line <= lines,
                "error line {} of {lines}",
                e.line
            );
            let width = text
                .split('\n')
                .nth(e.line - 1)
                .map_or(0, |l| l.chars().count());
            assert!(
                e.column >= 1 && e.column <= width + 1,
                "error column {} of {width}",
                e.column
            );
            return;
        }
    };
    let rules = RuleSet::from_text(SIM_TRACE_RULES).expect("fixed rules parse");
    let options = SchedOptions {
        conn_capacity: 1024,
        max_timer_steps: 64,
    };
    let mut runner = SchedRunner::new(&rules, options).expect("fixed rules apply");
    let mut out = Vec::new();
    for ev in &trace.events {
        out.clear();
        if runner.run_event(ev, &mut out).is_err() {
            // A refused rule stops the run, as ipvsadm -R stops.
            return;
        }
        let client = match &ev.kind {
            EventKind::Tcp {
                flag: trace::TcpFlag::Syn,
                reply: false,
                client,
                ..
            }
            | EventKind::Udp { client, .. }
            | EventKind::TcpFwmark { client, .. } => Some(client),
            _ => None,
        };
        let printed = String::from_utf8(out.clone()).expect("output is UTF-8");
        match client {
            Some(client) => {
                assert_eq!(printed.lines().count(), 1, "line {}: {printed:?}", ev.line);
                let prefix = format!("{} -> ", fmt_socket_addr(*client));
                assert!(
                    printed.starts_with(&prefix),
                    "line {}: {printed:?}",
                    ev.line
                );
            }
            None => {
                if matches!(
                    ev.kind,
                    EventKind::Tcp { .. } | EventKind::At(_) | EventKind::Rule { .. }
                ) {
                    assert!(printed.is_empty(), "line {}: {printed:?}", ev.line);
                }
            }
        }
    }
}
