//! End-to-end runs of `lvs-sim sched` on rules and traces. Every expected output is derived
//! by hand from the IPVS semantics (spec section in each test's comment), not recorded from a
//! run.

use lvs_sim::sched_cmd::{run_text, SchedError};

fn run(rules: &str, trace: &str) -> String {
    let mut out = Vec::new();
    if let Err(e) = run_text(rules, trace, &mut out) {
        panic!(
            "run failed: {}\noutput so far:\n{}",
            e.display_with("trace"),
            String::from_utf8_lossy(&out)
        );
    }
    String::from_utf8(out).unwrap()
}

fn run_err(rules: &str, trace: &str) -> (String, SchedError) {
    let mut out = Vec::new();
    let e = run_text(rules, trace, &mut out).unwrap_err();
    (String::from_utf8(out).unwrap(), e)
}

const RR3: &str = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m
-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m
-a -t 10.0.0.1:80 -r 10.1.0.3:80 -m
";

/// §0.2 + §1.1: the kernel list is .3 .2 .1 (a new real server goes to the head); rr starts at
/// the head and walks on. A real server added later goes to the head and is reached after the
/// wrap-around. A SYN of an existing flow goes to its server and does not move the cursor.
#[test]
fn rr_follows_kernel_list_order() {
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:80
syn 192.0.2.2:1000 10.0.0.1:80
syn 192.0.2.3:1000 10.0.0.1:80
syn 192.0.2.1:1000 10.0.0.1:80   # retransmitted SYN: the same connection
syn 192.0.2.4:1000 10.0.0.1:80
rule -a -t 10.0.0.1:80 -r 10.1.0.4:80 -m
syn 192.0.2.5:1000 10.0.0.1:80
syn 192.0.2.6:1000 10.0.0.1:80
syn 192.0.2.7:1000 10.0.0.1:80
syn 192.0.2.8:1000 10.0.0.1:80
syn 192.0.2.9:1000 10.0.0.1:81   # no service on port 81
";
    assert_eq!(
        run(RR3, trace),
        "\
192.0.2.1:1000 -> 10.1.0.3:80
192.0.2.2:1000 -> 10.1.0.2:80
192.0.2.3:1000 -> 10.1.0.1:80
192.0.2.1:1000 -> 10.1.0.3:80
192.0.2.4:1000 -> 10.1.0.3:80
192.0.2.5:1000 -> 10.1.0.2:80
192.0.2.6:1000 -> 10.1.0.1:80
192.0.2.7:1000 -> 10.1.0.4:80
192.0.2.8:1000 -> 10.1.0.3:80
192.0.2.9:1000 -> none
"
    );
}

/// §1.4 + §2.5: wlc with overhead = active * 256 + inactive; a SYN makes the connection
/// active (SYN_RECV). List order: .2 (w 2) then .1 (w 1).
/// 1: all 0 → .2 (first). 2: .2 has 256: 256*1 > 0*2 → .1.
/// 3: .2 256/w2 vs .1 256/w1: 256*1 > 256*2? no → .2. 4: .2 512 vs .1 256: 512 > 512? no → .2.
/// 5: .2 768 vs .1 256: 768 > 512 → .1.
#[test]
fn wlc_weighs_active_connections() {
    let rules = "\
-A -t 10.0.0.2:80 -s wlc
-a -t 10.0.0.2:80 -r 10.1.0.1:80 -m -w 1
-a -t 10.0.0.2:80 -r 10.1.0.2:80 -m -w 2
";
    let trace = "\
syn 192.0.2.1:1 10.0.0.2:80
syn 192.0.2.2:1 10.0.0.2:80
syn 192.0.2.3:1 10.0.0.2:80
syn 192.0.2.4:1 10.0.0.2:80
syn 192.0.2.5:1 10.0.0.2:80
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:1 -> 10.1.0.2:80
192.0.2.2:1 -> 10.1.0.1:80
192.0.2.3:1 -> 10.1.0.2:80
192.0.2.4:1 -> 10.1.0.2:80
192.0.2.5:1 -> 10.1.0.1:80
"
    );
}

/// §2.6: -p with -M 255.255.255.0: one template per client /24. The first client of
/// 198.51.100.0/24 is scheduled (rr: head .2), every later connection from that /24 reuses
/// the template; another /24 is scheduled afresh (rr moves on to .1).
#[test]
fn persistence_with_netmask_keeps_a_24_on_one_server() {
    let rules = "\
-A -t 10.0.0.3:443 -s rr -p 300 -M 255.255.255.0
-a -t 10.0.0.3:443 -r 10.1.0.1:443 -m
-a -t 10.0.0.3:443 -r 10.1.0.2:443 -m
";
    let trace = "\
syn 198.51.100.10:1000 10.0.0.3:443
syn 198.51.100.10:1001 10.0.0.3:443
syn 198.51.100.77:2000 10.0.0.3:443
syn 203.0.113.5:3000 10.0.0.3:443
syn 203.0.113.5:3001 10.0.0.3:443
at 100
syn 198.51.100.10:1002 10.0.0.3:443
";
    assert_eq!(
        run(rules, trace),
        "\
198.51.100.10:1000 -> 10.1.0.2:443
198.51.100.10:1001 -> 10.1.0.2:443
198.51.100.77:2000 -> 10.1.0.2:443
203.0.113.5:3000 -> 10.1.0.1:443
203.0.113.5:3001 -> 10.1.0.1:443
198.51.100.10:1002 -> 10.1.0.2:443
"
    );
}

/// §2.6 template lifetime: -p 60. Each connection is established and reset at once
/// (SR → ES → CLOSE: 10 s; a RST in SYN_RECV would keep SYN_RECV, §2.4). At 30 s a
/// second connection uses the template and re-arms it to 90 s; at 89 s a third one re-arms it
/// to 149 s; at 160 s the template (no connection left since 99 s) has expired, so the client
/// is scheduled again (rr: .1 after .2).
#[test]
fn persistence_template_expires() {
    let rules = "\
-A -t 10.0.0.3:22 -s rr -p 60
-a -t 10.0.0.3:22 -r 10.1.0.1:22 -m
-a -t 10.0.0.3:22 -r 10.1.0.2:22 -m
";
    let trace = "\
syn 198.51.100.10:1000 10.0.0.3:22
ack 198.51.100.10:1000 10.0.0.3:22
rst 198.51.100.10:1000 10.0.0.3:22
at 30
syn 198.51.100.10:1001 10.0.0.3:22
ack 198.51.100.10:1001 10.0.0.3:22
rst 198.51.100.10:1001 10.0.0.3:22
at 89
syn 198.51.100.10:1002 10.0.0.3:22
ack 198.51.100.10:1002 10.0.0.3:22
rst 198.51.100.10:1002 10.0.0.3:22
at 160
syn 198.51.100.10:1003 10.0.0.3:22
";
    assert_eq!(
        run(rules, trace),
        "\
198.51.100.10:1000 -> 10.1.0.2:22
198.51.100.10:1001 -> 10.1.0.2:22
198.51.100.10:1002 -> 10.1.0.2:22
198.51.100.10:1003 -> 10.1.0.1:22
"
    );
}

/// §2.6 steps 2 and 4: a port-0 persistent service has one template per client for every
/// port; its real servers have port 0, so each connection keeps the port the client asked
/// for.
#[test]
fn port_zero_service_keeps_the_destination_port() {
    let rules = "\
-A -t 10.0.0.4:0 -s rr -p 600
-a -t 10.0.0.4:0 -r 10.1.0.1 -g
-a -t 10.0.0.4:0 -r 10.1.0.2 -g
";
    let trace = "\
syn 192.0.2.1:5555 10.0.0.4:8080
syn 192.0.2.1:5556 10.0.0.4:22
syn 192.0.2.2:6000 10.0.0.4:443
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:5555 -> 10.1.0.2:8080
192.0.2.1:5556 -> 10.1.0.2:22
192.0.2.2:6000 -> 10.1.0.1:443
"
    );
}

/// §2.2 service lookup (fwmark first) and `ip_vs_schedule`'s port choice: a real server with a
/// port gets that port, one with port 0 keeps the packet's. A mark without a service falls
/// back to the address lookup (none here); no mark at all finds no address service either.
#[test]
fn fwmark_service() {
    let rules = "\
-A -f 7 -s rr
-a -f 7 -r 10.1.0.1 -g
-a -f 7 -r 10.1.0.2:8080 -m
";
    let trace = "\
tcp-fwmark 7 192.0.2.1:1000 10.0.0.5:80
tcp-fwmark 7 192.0.2.2:1000 10.0.0.5:443
tcp-fwmark 0x7 192.0.2.3:1000 10.0.0.5:80
tcp-fwmark 8 192.0.2.4:1000 10.0.0.5:80
syn 192.0.2.5:1000 10.0.0.5:80
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:1000 -> 10.1.0.2:8080
192.0.2.2:1000 -> 10.1.0.1:443
192.0.2.3:1000 -> 10.1.0.2:8080
192.0.2.4:1000 -> none
192.0.2.5:1000 -> none
"
    );
}

const RR2: &str = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m
-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m
";

/// §2.7: weight 0 quiesces a real server: its existing connections go on (a SYN of an
/// established flow still goes there), new ones go elsewhere.
#[test]
fn quiesce_keeps_existing_flows() {
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:80
reply-syn 192.0.2.1:1000 10.0.0.1:80
ack 192.0.2.1:1000 10.0.0.1:80
syn 192.0.2.2:1000 10.0.0.1:80
rule -e -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 0
ack 192.0.2.1:1000 10.0.0.1:80
syn 192.0.2.1:1000 10.0.0.1:80
syn 192.0.2.3:1000 10.0.0.1:80
syn 192.0.2.4:1000 10.0.0.1:80
rule -e -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 0
syn 192.0.2.5:1000 10.0.0.1:80
";
    assert_eq!(
        run(RR2, trace),
        "\
192.0.2.1:1000 -> 10.1.0.2:80
192.0.2.2:1000 -> 10.1.0.1:80
192.0.2.1:1000 -> 10.1.0.2:80
192.0.2.3:1000 -> 10.1.0.1:80
192.0.2.4:1000 -> 10.1.0.1:80
192.0.2.5:1000 -> none
"
    );
}

/// §2.7: after `-d` the packets of the deleted server's connections are dropped
/// (expire_nodest_conn = 0), new flows go to the others; after `-D` nothing matches any more
/// (new flow: none) and the old flows' packets are dropped.
#[test]
fn delete_then_syn() {
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:80
syn 192.0.2.2:1000 10.0.0.1:80
rule -d -t 10.0.0.1:80 -r 10.1.0.2:80
syn 192.0.2.1:1000 10.0.0.1:80
syn 192.0.2.3:1000 10.0.0.1:80
rule -D -t 10.0.0.1:80
syn 192.0.2.4:1000 10.0.0.1:80
syn 192.0.2.2:1000 10.0.0.1:80
";
    assert_eq!(
        run(RR2, trace),
        "\
192.0.2.1:1000 -> 10.1.0.2:80
192.0.2.2:1000 -> 10.1.0.1:80
192.0.2.1:1000 -> drop
192.0.2.3:1000 -> 10.1.0.1:80
192.0.2.4:1000 -> none
192.0.2.2:1000 -> drop
"
    );
}

/// §2.4 + §2.8: a NAT connection closed by the client runs SR → SR → ES → CW → TW; a new SYN
/// on the TIME_WAIT tuple (conn_reuse_mode 1, no template) expires the old entry and is
/// scheduled afresh (rr moves on to .1). An ESTABLISHED one is not rescheduled.
#[test]
fn conn_reuse_after_time_wait() {
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:80
reply-syn 192.0.2.1:1000 10.0.0.1:80
ack 192.0.2.1:1000 10.0.0.1:80
syn 192.0.2.1:1000 10.0.0.1:80
fin 192.0.2.1:1000 10.0.0.1:80
reply-fin 192.0.2.1:1000 10.0.0.1:80
ack 192.0.2.1:1000 10.0.0.1:80
syn 192.0.2.1:1000 10.0.0.1:80
syn 192.0.2.1:1000 10.0.0.1:80
";
    assert_eq!(
        run(RR2, trace),
        "\
192.0.2.1:1000 -> 10.1.0.2:80
192.0.2.1:1000 -> 10.1.0.2:80
192.0.2.1:1000 -> 10.1.0.1:80
192.0.2.1:1000 -> 10.1.0.1:80
"
    );
}

/// §2.8: the same close on a persistent service: the connection has a controller (the
/// template), so it is not rescheduled and the SYN goes to the old server.
#[test]
fn persistent_conn_is_not_reused_rescheduled() {
    let rules = "\
-A -t 10.0.0.3:443 -s rr -p 300
-a -t 10.0.0.3:443 -r 10.1.0.1:443 -m
-a -t 10.0.0.3:443 -r 10.1.0.2:443 -m
";
    let trace = "\
syn 192.0.2.1:1000 10.0.0.3:443
reply-syn 192.0.2.1:1000 10.0.0.3:443
ack 192.0.2.1:1000 10.0.0.3:443
fin 192.0.2.1:1000 10.0.0.3:443
reply-fin 192.0.2.1:1000 10.0.0.3:443
syn 192.0.2.1:1000 10.0.0.3:443
syn 192.0.2.2:1000 10.0.0.3:443
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:1000 -> 10.1.0.2:443
192.0.2.1:1000 -> 10.1.0.2:443
192.0.2.2:1000 -> 10.1.0.1:443
"
    );
}

/// §2.3 + §2.4: a connection lives timeout(state) after its last packet. SYN only: SYN_RECV,
/// 60 s. At 59 s a retransmitted SYN finds it (and re-arms it to 119 s); at 120 s it is gone
/// and the SYN is scheduled afresh. The timers run on the trace clock.
#[test]
fn timeouts_expire_on_the_trace_clock() {
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:80
at 59
syn 192.0.2.1:1000 10.0.0.1:80
at 120
syn 192.0.2.1:1000 10.0.0.1:80
at 120.5
syn 192.0.2.2:1000 10.0.0.1:80
";
    assert_eq!(
        run(RR2, trace),
        "\
192.0.2.1:1000 -> 10.1.0.2:80
192.0.2.1:1000 -> 10.1.0.2:80
192.0.2.1:1000 -> 10.1.0.1:80
192.0.2.2:1000 -> 10.1.0.2:80
"
    );
}

/// §2.4 + §6.2: every UDP datagram without a connection creates one (rr); later datagrams of
/// the flow follow it until 300 s after the last one. A UDP datagram to a TCP service finds no
/// service.
#[test]
fn udp_flows() {
    let rules = "\
-A -u 10.0.0.6:53 -s rr
-a -u 10.0.0.6:53 -r 10.1.0.1:53 -m
-a -u 10.0.0.6:53 -r 10.1.0.2:53 -m
-A -t 10.0.0.6:80 -s rr
-a -t 10.0.0.6:80 -r 10.1.0.1:80 -m
";
    let trace = "\
udp 192.0.2.1:5353 10.0.0.6:53
udp 192.0.2.1:5353 10.0.0.6:53
udp 192.0.2.2:5353 10.0.0.6:53
udp 192.0.2.3:5353 10.0.0.6:53
udp 192.0.2.1:5354 10.0.0.6:80
at 299
udp 192.0.2.1:5353 10.0.0.6:53
at 599.5
udp 192.0.2.1:5353 10.0.0.6:53
udp 192.0.2.2:5353 10.0.0.6:53
";
    // At 599.5 s: 192.0.2.1's flow was refreshed at 299 s (alive until 599 s: gone), so it
    // is scheduled again (rr after .2 → .1); 192.0.2.2's expired at 300 s → .2.
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:5353 -> 10.1.0.2:53
192.0.2.1:5353 -> 10.1.0.2:53
192.0.2.2:5353 -> 10.1.0.1:53
192.0.2.3:5353 -> 10.1.0.2:53
192.0.2.1:5354 -> none
192.0.2.1:5353 -> 10.1.0.2:53
192.0.2.1:5353 -> 10.1.0.1:53
192.0.2.2:5353 -> 10.1.0.2:53
"
    );
}

/// IPv6 clients print in brackets.
#[test]
fn ipv6_flows() {
    let rules = "\
-A -t [2001:db8::1]:80 -s rr
-a -t [2001:db8::1]:80 -r [2001:db8:1::1]:8080 -m
";
    let trace =
        "syn [2001:db8:2::7]:40000 [2001:db8::1]:80\nsyn [2001:db8:2::7]:40001 [2001:db8::2]:80\n";
    assert_eq!(
        run(rules, trace),
        "[2001:db8:2::7]:40000 -> [2001:db8:1::1]:8080\n[2001:db8:2::7]:40001 -> none\n"
    );
}

/// `save` prints `ipvsadm -S -n`: services sorted, real servers sorted by address, weights
/// always written, the rules as changed by the trace.
#[test]
fn save_output() {
    let trace = "\
save
rule -a -t 10.0.0.1:80 -r 10.1.0.0:80 -m -w 5
rule -e -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 0
rule -d -t 10.0.0.1:80 -r 10.1.0.2:80
rule -A -u 10.0.0.1:53 -s sh -b sh-port
save
";
    assert_eq!(
        run(RR3, trace),
        "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1
-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1
-a -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 1
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.0:80 -m -w 5
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1
-a -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 0
-A -u 10.0.0.1:53 -s sh -b sh-port
"
    );
}

/// `list` prints `ipvsadm -L -n`: a SYN makes a connection active (SYN_RECV), an ACK keeps it
/// active (ESTABLISHED), a RST makes it inactive (CLOSE). `--stats` counts connections,
/// packets and bytes in (40-byte segments).
#[test]
fn list_output() {
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:80
syn 192.0.2.2:1000 10.0.0.1:80
ack 192.0.2.2:1000 10.0.0.1:80
rst 192.0.2.2:1000 10.0.0.1:80
list
list --stats --exact
";
    assert_eq!(
        run(RR2, trace),
        "\
192.0.2.1:1000 -> 10.1.0.2:80
192.0.2.2:1000 -> 10.1.0.1:80
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 rr
  -> 10.1.0.1:80                  Masq    1      0          1         
  -> 10.1.0.2:80                  Masq    1      1          0         
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.1:80                         2        4        0      160        0
  -> 10.1.0.1:80                         1        3        0      120        0
  -> 10.1.0.2:80                         1        1        0       40        0
"
    );
}

/// `list -c` prints the connection entries with their state and time left.
#[test]
fn list_connections() {
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:80
at 15
list -c
";
    assert_eq!(
        run(RR2, trace),
        "\
192.0.2.1:1000 -> 10.1.0.2:80
IPVS connection entries
pro expire state       source             virtual            destination
TCP 00:45  SYN_RECV    192.0.2.1:1000     10.0.0.1:80        10.1.0.2:80
"
    );
}

/// A rule the kernel refuses stops the run at that line, like `ipvsadm -R`: what came before
/// was printed, nothing after runs.
#[test]
fn refused_rule_stops_the_run() {
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:80
  rule -a -t 10.0.0.1:80 -r 10.1.0.1:80 -m
syn 192.0.2.2:1000 10.0.0.1:80
";
    let (out, e) = run_err(RR2, trace);
    assert_eq!(out, "192.0.2.1:1000 -> 10.1.0.2:80\n");
    assert_eq!(e.exit_status(), 1);
    assert!(
        matches!(
            e,
            SchedError::RuleRefused {
                line: 2,
                column: 8,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.display_with("t.trace").to_string(),
        "t.trace:2:8: rule refused: real server 10.1.0.1:80 already exists in service -t 10.0.0.1:80 (errno 17)"
    );
}

/// A malformed trace runs nothing (even its good first lines) and says where.
#[test]
fn malformed_trace_runs_nothing() {
    let (out, e) = run_err(
        RR2,
        "syn 192.0.2.1:1000 10.0.0.1:80\nsyn 192.0.2.1 10.0.0.1:80\n",
    );
    assert_eq!(out, "");
    assert_eq!(e.exit_status(), 2);
    assert_eq!(
        e.display_with("t.trace").to_string(),
        "t.trace:2:5: expected the client address as a.b.c.d:port or [ipv6]:port, found \"192.0.2.1\""
    );
    let (_, e) = run_err("-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n", "");
    assert_eq!(e.exit_status(), 2);
    assert!(e
        .display_with("r.rules")
        .to_string()
        .starts_with("r.rules:2:1: refused: service -t 10.0.0.1:80 already exists"));
}

/// A reply for which no connection exists is ignored; replies change the state of NAT
/// connections (checked through the TIME_WAIT reuse above) and print nothing.
#[test]
fn reply_without_connection_is_a_no_op() {
    let trace = "\
reply-syn 192.0.2.1:1000 10.0.0.1:80
reply-rst 192.0.2.1:1000 10.0.0.1:80
syn 192.0.2.1:1000 10.0.0.1:80
reply-ack 192.0.2.9:1000 10.0.0.1:80
";
    assert_eq!(run(RR2, trace), "192.0.2.1:1000 -> 10.1.0.2:80\n");
}

/// A large jump of the clock is bounded work and still expires everything.
#[test]
fn large_clock_jump() {
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:80
at 18000000000
syn 192.0.2.1:1000 10.0.0.1:80
";
    assert_eq!(
        run(RR2, trace),
        "192.0.2.1:1000 -> 10.1.0.2:80\n192.0.2.1:1000 -> 10.1.0.1:80\n"
    );
}

/// §2.4 INPUT_ONLY + §2.8: with direct routing the real server answers the client itself, so
/// a `reply-syn` never reaches IPVS (no effect); the client's FIN takes ESTABLISHED to
/// FIN_WAIT (the NAT table would give CLOSE_WAIT). With conn_reuse_mode 1 a SYN in FIN_WAIT is
/// not rescheduled (only mode 2 or 3 does that); in CLOSE it is.
#[test]
fn direct_routing_uses_the_input_only_table() {
    let rules = "\
-A -t 10.0.0.7:80 -s rr
-a -t 10.0.0.7:80 -r 10.1.0.1:80 -g
-a -t 10.0.0.7:80 -r 10.1.0.2:80 -g
";
    let trace = "\
syn 192.0.2.1:1000 10.0.0.7:80
reply-syn 192.0.2.1:1000 10.0.0.7:80
ack 192.0.2.1:1000 10.0.0.7:80
fin 192.0.2.1:1000 10.0.0.7:80
list -c
syn 192.0.2.1:1000 10.0.0.7:80
ack 192.0.2.1:1000 10.0.0.7:80
rst 192.0.2.1:1000 10.0.0.7:80
syn 192.0.2.1:1000 10.0.0.7:80
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:1000 -> 10.1.0.2:80
IPVS connection entries
pro expire state       source             virtual            destination
TCP 02:00  FIN_WAIT    192.0.2.1:1000     10.0.0.7:80        10.1.0.2:80
192.0.2.1:1000 -> 10.1.0.2:80
192.0.2.1:1000 -> 10.1.0.1:80
"
    );
}

/// One-packet scheduling (§6.3): every UDP datagram is scheduled on its own and no
/// connection is kept, so rr alternates even for one client port, and `list -c` is empty.
#[test]
fn one_packet_scheduling() {
    let rules = "\
-A -u 10.0.0.8:53 -s rr -o
-a -u 10.0.0.8:53 -r 10.1.0.1:53 -m
-a -u 10.0.0.8:53 -r 10.1.0.2:53 -m
";
    let trace = "\
udp 192.0.2.1:5000 10.0.0.8:53
udp 192.0.2.1:5000 10.0.0.8:53
udp 192.0.2.1:5000 10.0.0.8:53
list -c
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:5000 -> 10.1.0.2:53
192.0.2.1:5000 -> 10.1.0.1:53
192.0.2.1:5000 -> 10.1.0.2:53
IPVS connection entries
pro expire state       source             virtual            destination
"
    );
}

/// `list --persistent-conn`: templates count in PersistConn, not in the connection columns
/// (§2.5). Two clients, rr: 192.0.2.1 → .2 (twice, one template), 192.0.2.2 → .1.
#[test]
fn list_persistent_conn() {
    let rules = "\
-A -t 10.0.0.3:443 -s rr -p 300
-a -t 10.0.0.3:443 -r 10.1.0.1:443 -m
-a -t 10.0.0.3:443 -r 10.1.0.2:443 -m
";
    let trace = "\
syn 192.0.2.1:1000 10.0.0.3:443
syn 192.0.2.2:1000 10.0.0.3:443
syn 192.0.2.1:1001 10.0.0.3:443
list --persistent-conn
";
    let expected = [
        "192.0.2.1:1000 -> 10.1.0.2:443",
        "192.0.2.2:1000 -> 10.1.0.1:443",
        "192.0.2.1:1001 -> 10.1.0.2:443",
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ",
        "  -> RemoteAddress:Port",
        "TCP  10.0.0.3:443 rr persistent 300",
        "  -> 10.1.0.1:443                 1         1           1          0         ",
        "  -> 10.1.0.2:443                 1         1           2          0         ",
        "",
    ]
    .join("\n");
    assert_eq!(run(rules, trace), expected);
}

/// Timers fire at their own deadlines, not at the next event (§2.6): a template whose
/// connection is still alive when its 60 s run out is re-armed for 60 s from then (60 s →
/// 120 s), so at 100 s it has 20 s left. The established connection (900 s) has 800 s left,
/// and its reaching ESTABLISHED marked the template ASSURED (§2.4).
#[test]
fn template_rearmed_at_its_own_deadline() {
    let rules = "\
-A -t 10.0.0.3:443 -s rr -p 60
-a -t 10.0.0.3:443 -r 10.1.0.1:443 -m
";
    let trace = "\
syn 192.0.2.1:1000 10.0.0.3:443
ack 192.0.2.1:1000 10.0.0.3:443
at 100
list -c
";
    let out = run(rules, trace);
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    // Entries come in table order; compare them as a set.
    lines[3..].sort_unstable();
    assert_eq!(
        lines,
        [
            "192.0.2.1:1000 -> 10.1.0.1:443",
            "IPVS connection entries",
            "pro expire state       source             virtual            destination",
            "TCP 00:20  ASSURED     192.0.2.1:0        10.0.0.3:443       10.1.0.1:443",
            "TCP 13:20  ESTABLISHED 192.0.2.1:1000     10.0.0.3:443       10.1.0.1:443",
        ]
    );
}

/// §2.2 + §6.1 + §6.2: a non-persistent FTP service (port 21) is also found for TCP port 20
/// and unprivileged ports of its address, but only packets to port 21 are scheduled. Any
/// other port is left with `ip_vs_leave` (`ip_vs_schedule` sets `ignored` to 0 before the
/// port test), whose FTP rule passes the packet to the local stack: no real server gets it,
/// so `none`, and it is not a silent drop. A privileged port other than 20 finds no service
/// (`none`); a packet from source port 20 is never scheduled (`none`), even to port 21.
#[test]
fn ftp_service_leaves_other_ports_to_the_local_stack() {
    let rules = "\
-A -t 10.0.0.1:21 -s rr
-a -t 10.0.0.1:21 -r 10.1.0.1:21 -m
";
    let trace = "\
syn 192.0.2.1:3000 10.0.0.1:21
syn 192.0.2.1:3001 10.0.0.1:2000
syn 192.0.2.1:3002 10.0.0.1:20
syn 192.0.2.1:3003 10.0.0.1:1023
syn 192.0.2.1:20 10.0.0.1:21
list -c
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:3000 -> 10.1.0.1:21
192.0.2.1:3001 -> none
192.0.2.1:3002 -> none
192.0.2.1:3003 -> none
192.0.2.1:20 -> none
IPVS connection entries
pro expire state       source             virtual            destination
TCP 01:00  SYN_RECV    192.0.2.1:3000     10.0.0.1:21        10.1.0.1:21
"
    );
}

/// §2.7: packets of a deleted server's connection are dropped (`__ip_vs_conn_put`, no
/// `ip_vs_conn_put`), so they neither run the state machine nor re-arm the timer nor count:
/// the ESTABLISHED entry (ACK at 0 s) still expires at 900 s. A NAT reply still goes through
/// `ip_vs_out` (state machine OUTPUT fin: ES -> FIN_WAIT, 120 s, re-armed) but is not
/// counted either (the real server is not AVAILABLE). The client's FIN in between was
/// dropped, so the reply FIN finds ESTABLISHED.
#[test]
fn deleted_server_packets_neither_rearm_nor_count() {
    let rules = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m
-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m
";
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:80
ack 192.0.2.1:1000 10.0.0.1:80
at 10
rule -d -t 10.0.0.1:80 -r 10.1.0.2:80
at 20
ack 192.0.2.1:1000 10.0.0.1:80
list -c
fin 192.0.2.1:1000 10.0.0.1:80
reply-fin 192.0.2.1:1000 10.0.0.1:80
list -c
list --stats
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:1000 -> 10.1.0.2:80
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:40  ESTABLISHED 192.0.2.1:1000     10.0.0.1:80        10.1.0.2:80
IPVS connection entries
pro expire state       source             virtual            destination
TCP 02:00  FIN_WAIT    192.0.2.1:1000     10.0.0.1:80        10.1.0.2:80
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.1:80                         1        2        0       80        0
  -> 10.1.0.1:80                         0        0        0        0        0
"
    );
}

/// §2.7 trash: the trash timer runs 60 s after the first real server went to the trash and
/// then every 60 s; a trashed server with no reference left gets its idle start at the
/// first run that finds it so, and is freed at the first run 120 s or more after that.
/// Deleted at 10 s with one connection (SYN_RECV, gone at 60 s): runs at 70 (idle start),
/// 130, 190 (freed). Re-added at 189 s it is revived with its statistics (1 conn, 1 packet);
/// at 191 s it is a new real server with none.
#[test]
fn trashed_server_revived_until_freed() {
    let trace = |at: u32| {
        format!(
            "\
syn 192.0.2.1:1000 10.0.0.1:80
at 10
rule -d -t 10.0.0.1:80 -r 10.1.0.2:80
at {at}
rule -a -t 10.0.0.1:80 -r 10.1.0.2:80 -m
list --stats
"
        )
    };
    let head = "\
192.0.2.1:1000 -> 10.1.0.2:80
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.1:80                         1        1        0       40        0
  -> 10.1.0.1:80                         0        0        0        0        0
";
    assert_eq!(
        run(RR2, &trace(189)),
        format!("{head}  -> 10.1.0.2:80                         1        1        0       40        0\n")
    );
    assert_eq!(
        run(RR2, &trace(191)),
        format!("{head}  -> 10.1.0.2:80                         0        0        0        0        0\n")
    );
}

/// §1.0 thresholds through `-e`: OVERLOAD is set when a bind brings activeconns + inactconns
/// to u_threshold, and an edit clears it only when the new u_threshold is 0 or larger than
/// the old one (an equal or lower one leaves it; the edit never sets it). One real server,
/// -x 1: conn 1 overloads it (2, 3: none); -x 2 clears, conn 4 makes 2 (overloaded, 5:
/// none); -x 0 clears (6 goes); -x 1 (larger than 0) clears again, conn 7 goes and
/// overloads (total 4 >= 1); an edit of the weight with the same -x 1 leaves it (8: none).
#[test]
fn threshold_edits_clear_overload_only_when_raised() {
    let rules = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -x 1
";
    let trace = "\
syn 192.0.2.1:1 10.0.0.1:80
syn 192.0.2.1:2 10.0.0.1:80
rule -e -t 10.0.0.1:80 -r 10.1.0.1:80 -m -x 1
syn 192.0.2.1:3 10.0.0.1:80
rule -e -t 10.0.0.1:80 -r 10.1.0.1:80 -m -x 2
syn 192.0.2.1:4 10.0.0.1:80
syn 192.0.2.1:5 10.0.0.1:80
rule -e -t 10.0.0.1:80 -r 10.1.0.1:80 -m -x 0
syn 192.0.2.1:6 10.0.0.1:80
rule -e -t 10.0.0.1:80 -r 10.1.0.1:80 -m -x 1
syn 192.0.2.1:7 10.0.0.1:80
rule -e -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 2 -x 1
syn 192.0.2.1:8 10.0.0.1:80
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:1 -> 10.1.0.1:80
192.0.2.1:2 -> none
192.0.2.1:3 -> none
192.0.2.1:4 -> 10.1.0.1:80
192.0.2.1:5 -> none
192.0.2.1:6 -> 10.1.0.1:80
192.0.2.1:7 -> 10.1.0.1:80
192.0.2.1:8 -> none
"
    );
}

/// §2.6 step 4 and `ip_vs_schedule`: where the packet goes. A persistent port-0 service and
/// a persistent fwmark service (service port 0) keep the packet's port even when the real
/// server has one (the packet's port is not the service port); a non-persistent fwmark
/// service uses the real server's port when it has one. A persistent FTP service (port 21)
/// shares one template (vport 0, dport 0) between the control connection, which goes to
/// the real server's port, and data connections to unprivileged ports (and port 20), which
/// keep theirs. rr picks the head (the server added last) first.
#[test]
fn persistent_port_zero_fwmark_and_ftp_destination_ports() {
    let rules = "\
-A -t 10.0.0.1:0 -s rr -p 100
-a -t 10.0.0.1:0 -r 10.1.0.1:0 -m
-a -t 10.0.0.1:0 -r 10.1.0.2:8080 -m
-A -f 7 -s rr -p 200
-a -f 7 -r 10.2.0.1:0 -m
-a -f 7 -r 10.2.0.2:9000 -m
-A -f 8 -s rr
-a -f 8 -r 10.3.0.1:0 -m
-a -f 8 -r 10.3.0.2:9000 -m
-A -t 10.0.0.5:21 -s rr -p 100
-a -t 10.0.0.5:21 -r 10.4.0.1:2121 -m
-a -t 10.0.0.5:21 -r 10.4.0.2:2121 -m
";
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:443
syn 192.0.2.1:1001 10.0.0.1:22
syn 192.0.2.2:1000 10.0.0.1:443
tcp-fwmark 7 192.0.2.1:2000 10.9.0.1:443
tcp-fwmark 7 192.0.2.1:2001 10.9.0.1:80
tcp-fwmark 7 192.0.2.3:2001 10.9.0.1:80
tcp-fwmark 8 192.0.2.1:3000 10.9.0.1:443
tcp-fwmark 8 192.0.2.1:3001 10.9.0.1:443
syn 192.0.2.1:4000 10.0.0.5:21
syn 192.0.2.1:4001 10.0.0.5:5000
syn 192.0.2.1:4002 10.0.0.5:20
syn 192.0.2.2:4001 10.0.0.5:5000
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:1000 -> 10.1.0.2:443
192.0.2.1:1001 -> 10.1.0.2:22
192.0.2.2:1000 -> 10.1.0.1:443
192.0.2.1:2000 -> 10.2.0.2:443
192.0.2.1:2001 -> 10.2.0.2:80
192.0.2.3:2001 -> 10.2.0.1:80
192.0.2.1:3000 -> 10.3.0.2:9000
192.0.2.1:3001 -> 10.3.0.1:443
192.0.2.1:4000 -> 10.4.0.2:2121
192.0.2.1:4001 -> 10.4.0.2:5000
192.0.2.1:4002 -> 10.4.0.2:20
192.0.2.2:4001 -> 10.4.0.1:5000
"
    );
}

/// §2.4 `--set`: the new ESTABLISHED and UDP timeouts apply from each connection's next
/// packet (an entry keeps the expiry it was armed with until then), and tcpfin changes only
/// FIN_WAIT (TIME_WAIT stays 120 s).
#[test]
fn set_timeouts_apply_from_the_next_packet() {
    let rules = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m
-A -u 10.0.0.1:53 -s rr
-a -u 10.0.0.1:53 -r 10.1.0.1:53 -m
";
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:80
ack 192.0.2.1:1000 10.0.0.1:80
udp 192.0.2.1:1000 10.0.0.1:53
rule --set 100 50 30
list -c
at 1
ack 192.0.2.1:1000 10.0.0.1:80
udp 192.0.2.1:1000 10.0.0.1:53
list -c
reply-fin 192.0.2.1:1000 10.0.0.1:80
list -c
fin 192.0.2.1:1000 10.0.0.1:80
list -c
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:1000 -> 10.1.0.1:8080
192.0.2.1:1000 -> 10.1.0.1:53
IPVS connection entries
pro expire state       source             virtual            destination
TCP 15:00  ESTABLISHED 192.0.2.1:1000     10.0.0.1:80        10.1.0.1:8080
UDP 05:00  UDP         192.0.2.1:1000     10.0.0.1:53        10.1.0.1:53
192.0.2.1:1000 -> 10.1.0.1:53
IPVS connection entries
pro expire state       source             virtual            destination
TCP 01:40  ESTABLISHED 192.0.2.1:1000     10.0.0.1:80        10.1.0.1:8080
UDP 00:30  UDP         192.0.2.1:1000     10.0.0.1:53        10.1.0.1:53
IPVS connection entries
pro expire state       source             virtual            destination
TCP 00:50  FIN_WAIT    192.0.2.1:1000     10.0.0.1:80        10.1.0.1:8080
UDP 00:30  UDP         192.0.2.1:1000     10.0.0.1:53        10.1.0.1:53
IPVS connection entries
pro expire state       source             virtual            destination
TCP 02:00  TIME_WAIT   192.0.2.1:1000     10.0.0.1:80        10.1.0.1:8080
UDP 00:30  UDP         192.0.2.1:1000     10.0.0.1:53        10.1.0.1:53
"
    );
}

/// §2.7 trash revival across a re-created service. A real server deleted with its service
/// (`-D`) stays in the trash bound to the old service object (`dest->svc`, released only
/// when the real server is freed). Re-created service, same real server re-added within the
/// trash period: `ip_vs_trash_get_dest` revives it (matching the service by protocol,
/// address and port), so its connection counters come back (ActiveConn 1), but
/// `__ip_vs_update_dest` finds another service object and zeroes its statistics
/// (`ip_vs_zero_stats`): Conns, packets and bytes read 0 until new traffic. Its connection
/// works again (the ACK is counted).
#[test]
fn revival_into_a_recreated_service_zeroes_the_statistics() {
    let rules = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m
";
    let trace = "\
syn 192.0.2.1:1000 10.0.0.1:80
ack 192.0.2.1:1000 10.0.0.1:80
at 10
rule -D -t 10.0.0.1:80
at 20
rule -A -t 10.0.0.1:80 -s rr
rule -a -t 10.0.0.1:80 -r 10.1.0.1:80 -m
list
list --stats
ack 192.0.2.1:1000 10.0.0.1:80
list --stats
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:1000 -> 10.1.0.1:80
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 rr
  -> 10.1.0.1:80                  Masq    1      1          0         
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.1:80                         0        0        0        0        0
  -> 10.1.0.1:80                         0        0        0        0        0
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.1:80                         0        1        0       40        0
  -> 10.1.0.1:80                         0        1        0       40        0
"
    );
}

// ---- listings and statistics (spec 5.1, 2.6, 6.5): every expected output worked out by hand
// from ipvsadm's printf formats and the kernel's estimator arithmetic (`ip_vs_est.c`).

/// §2.7 + §6.5: a real server deleted and re-added comes back with its counters and its
/// estimator as they were (the kernel only takes the estimator off the 2 s list while the
/// server is in the trash). Datagrams are 28 bytes; the estimator samples at 2, 4, 6 s.
///
/// - 2 s: one datagram since 0: inbps avg = (28 << 4) >> 2 = 112 (service and server).
/// - 2.5 s: a second datagram, counted (the server is available); deleted at 3 s.
/// - 4 s: the service samples it: 112 + ((28 << 4) - 112) >> 2 = 196; the server is in the
///   trash and is not sampled. Revived at 5 s.
/// - 6 s: the service: 196 + (0 - 196) >> 2 = 147, shown (147 + 15) >> 5 = 5 B/s; the
///   server's first sample since 2 s takes in the second datagram: 196, shown 6 B/s.
///   Packets and connections: averages of at most 224 (×2^10), shown 0.
#[test]
fn revived_real_server_rate() {
    let rules = "-A -u 10.0.0.1:53 -s rr\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -m\n";
    let trace = "\
at 0.5
udp 192.0.2.1:1000 10.0.0.1:53
at 2.5
udp 192.0.2.1:1000 10.0.0.1:53
at 3
rule -d -u 10.0.0.1:53 -r 10.1.0.1:53
at 5
rule -a -u 10.0.0.1:53 -r 10.1.0.1:53 -m
at 6
list --rate
list --stats
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:1000 -> 10.1.0.1:53
192.0.2.1:1000 -> 10.1.0.1:53
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
UDP  10.0.0.1:53                         0        0        0        5        0
  -> 10.1.0.1:53                         0        0        0        6        0
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
UDP  10.0.0.1:53                         1        2        0       56        0
  -> 10.1.0.1:53                         1        2        0       56        0
"
    );
}

/// `ipvsadm -Z <service>` (`ip_vs_zero_service`): that service and its real servers restart
/// their counters and rates; the other services keep theirs. One 28-byte datagram each at
/// 1 s, sampled at 2 s: inbps avg (28 << 4) >> 2 = 112, shown (112 + 15) >> 5 = 3.
#[test]
fn zeroing_one_service() {
    let rules = "\
-A -u 10.0.0.1:53 -s rr
-a -u 10.0.0.1:53 -r 10.1.0.1:53 -m
-A -u 10.0.0.2:53 -s rr
-a -u 10.0.0.2:53 -r 10.1.0.2:53 -m
";
    let trace = "\
at 1
udp 192.0.2.1:1000 10.0.0.1:53
udp 192.0.2.1:1000 10.0.0.2:53
at 3
rule -Z -u 10.0.0.1:53
list --stats
list --rate
";
    assert_eq!(
        run(rules, trace),
        "\
192.0.2.1:1000 -> 10.1.0.1:53
192.0.2.1:1000 -> 10.1.0.2:53
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
UDP  10.0.0.1:53                         0        0        0        0        0
  -> 10.1.0.1:53                         0        0        0        0        0
UDP  10.0.0.2:53                         1        1        0       28        0
  -> 10.1.0.2:53                         1        1        0       28        0
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
UDP  10.0.0.1:53                         0        0        0        0        0
  -> 10.1.0.1:53                         0        0        0        0        0
UDP  10.0.0.2:53                         0        0        0        3        0
  -> 10.1.0.2:53                         0        0        0        3        0
"
    );
}

/// `ipvsadm -L -n -c` (§5.1) with the templates of §2.6: an FTP service's template has
/// virtual and real port 0 and turns ASSURED when its connection reaches ESTABLISHED; a
/// fwmark template has protocol `IP` and the mark as its virtual address (`[0:5::]` for
/// mark 5 over IPv6) with the client masked to the /64; a UDP template keeps the ports and
/// its connection shows the state `UDP`. Expiry is the whole seconds left, `mm:ss`. The
/// kernel lists in hash order, so rows are compared as a set.
#[test]
fn connection_listing_with_templates() {
    let rules = "\
-A -t 10.0.0.1:21 -s rr -p 100
-a -t 10.0.0.1:21 -r 10.1.0.1:21 -m
-A -f 5 -6 -s rr -p 100 -M 64
-a -f 5 -6 -r [2001:db8::1]:0 -m
-A -u 10.0.0.3:53 -s rr -p 30
-a -u 10.0.0.3:53 -r 10.1.0.3:5353 -m
";
    let trace = "\
at 0.5
syn 1.1.1.1:1000 10.0.0.1:21
reply-syn 1.1.1.1:1000 10.0.0.1:21
ack 1.1.1.1:1000 10.0.0.1:21
tcp-fwmark 5 [2001:db8:9::1]:4000 [2001:db8::9]:443
udp 1.1.1.1:1002 10.0.0.3:53
at 10.5
list -c
";
    let out = run(rules, trace);
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "1.1.1.1:1000 -> 10.1.0.1:21",
            "[2001:db8:9::1]:4000 -> [2001:db8::1]:443",
            "1.1.1.1:1002 -> 10.1.0.3:5353",
            "IPVS connection entries",
            "pro expire state       source             virtual            destination",
        ]
    );
    let rows = &mut lines[5..];
    rows.sort_unstable();
    let mut expected = [
        "TCP 01:30  ASSURED     1.1.1.1:0          10.0.0.1:0         10.1.0.1:0",
        "TCP 14:50  ESTABLISHED 1.1.1.1:1000       10.0.0.1:21        10.1.0.1:21",
        "IP  01:30  NONE        [2001:db8:9::]:0   [0:5::]:0          [2001:db8::1]:0",
        "TCP 00:50  SYN_RECV    [2001:db8:9::1]:4000 [2001:db8::9]:443  [2001:db8::1]:443",
        "UDP 00:20  NONE        1.1.1.1:0          10.0.0.3:53        10.1.0.3:5353",
        "UDP 04:50  UDP         1.1.1.1:1002       10.0.0.3:53        10.1.0.3:5353",
    ];
    expected.sort_unstable();
    assert_eq!(rows, expected);
}
