//! End-to-end `lvs-sim sched` runs of the listings and statistics (spec §5.1, §2.6, §6.5).
//! Every expected output is worked out by hand from ipvsadm's printf formats and the
//! kernel's estimator arithmetic (`ip_vs_est.c`), not recorded from a run.

use lvs_sim::sched_cmd::run_text;

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
