//! # lvs-sim
//!
//! Drivers of [`lvs_core`]'s director that answer "what would IPVS do?" without a kernel.
//!
//! - [`trace`]: the trace language of `lvs-sim sched` (one event per line, strict, errors
//!   with line and column).
//! - [`rules_cmd`]: `lvs-sim rules --keepalived FILE`: a keepalived configuration as
//!   `ipvsadm -S -n` rules plus its checker settings.
//! - [`sched_cmd`]: the runner of `lvs-sim sched`: applies the rules, plays the trace through
//!   the director on the trace's own clock and prints what IPVS would do.
//! - The capacity-planning simulator: [`scenario`] (TOML files), [`model`] (a scenario ready
//!   to run), [`engine`] (one replication, every connection through the director's flow
//!   layer), [`results`] (measurements and confidence intervals), [`experiments`]
//!   (replications in parallel, compare, sweep, plan), [`report`] (SVG charts) and
//!   [`builtin`] (the scenario `lvs-sim` runs with no arguments).
//!
//! The binary `lvs-sim` is a thin command line over these; everything it does can be run on
//! strings from a test or a fuzz target.
//!
//! ## Contracts
//! - **Deterministic**: the same rules and trace give the same output, byte for byte (the
//!   director's hash key is fixed, and time is the trace's clock).
//! - **Text from files never panics** and never makes work without bound: a malformed line is
//!   a typed error naming its line and column; timers run at most a bounded number of steps
//!   per event.
#![forbid(unsafe_code)]

mod buckets;
pub mod builtin;
pub mod engine;
pub mod experiments;
pub mod model;
pub mod queue;
pub mod report;
pub mod results;
pub mod rules_cmd;
pub mod scenario;
pub mod sched_cmd;
pub mod trace;

/// The trace language, as `lvs-sim sched --help` prints it.
pub const TRACE_HELP: &str = "\
TRACE is a text file, one event per line; `#` starts a comment, blank lines are skipped.
Addresses are numeric: a.b.c.d:port or [ipv6]:port (the port always given).

  at <seconds>                        move the clock to this time (absolute; never backwards;
                                      up to 9 decimals). The clock starts at 0.
  syn <client>:<port> <vip>:<port>    a TCP SYN from a client; prints the real server it goes to
  ack|fin|rst <client> <vip>          a client -> director packet of that flow (state machine)
  reply-syn|reply-ack|reply-fin|reply-rst <client> <vip>
                                      the flow's real server answers the client (sent from the
                                      connection's rip:rport, so only NAT connections see it;
                                      no connection: nothing happens)
  udp <client> <vip>                  a UDP datagram; prints the real server it goes to
  tcp-fwmark <mark> <client> <vip>    a SYN carrying that firewall mark (decimal or 0x hex);
                                      prints the real server it goes to
  rule <ipvsadm arguments>            apply one rule line now (e.g. rule -e -t 10.0.0.1:80
                                      -r 10.1.0.2:80 -m -w 0)
  list [--stats|--rate|--thresholds|--persistent-conn|--tun-info] [--exact] [--nosort]
  list -c [--persistent-conn]         print what `ipvsadm -L -n ...` would print
  save                                print the rules as `ipvsadm -S -n` would

Every syn, udp and tcp-fwmark line prints exactly one line:
  <client-ip>:<port> -> <rip>:<rport>   where the packet goes (an existing flow's real server or
                                        a newly scheduled one; port-0 and fwmark real servers
                                        keep the packet's destination port)
  <client-ip>:<port> -> none            no service matches, or the scheduler found no real server
  <client-ip>:<port> -> drop            IPVS drops it (its connection's real server was
                                        deleted, or the connection table is full)
Other packet lines print nothing. Before each event the director's timers run up to the
event's time, each at its own deadline.

A malformed trace line is refused before anything runs (exit status 2, with file, line and
column). A `rule` line the kernel refuses stops the run there, as `ipvsadm -R` stops at the
first failing line: the error goes to stderr and the exit status is 1.";
