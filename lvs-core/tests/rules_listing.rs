//! `ipvsadm -L -n` listings: exact text derived from ipvsadm's printf formats (spec §5.1).

use lvs_core::rules::listing::{
    list, list_conns, ConnEntry, ListFormat, ListOptions, Rates, Snapshot, Stats,
};
use lvs_core::rules::RuleSet;
use lvs_core::Protocol;

/// The rules behind the listing example of spec §5.1.
const SPEC_RULES: &str = "\
-A -t 192.168.10.100:80 -s wlc -p 300
-a -t 192.168.10.100:80 -r 10.0.0.2:80 -m -w 0
-a -t 192.168.10.100:80 -r 10.0.0.1:80 -m -w 1
-A -u 192.168.10.100:53 -s rr -o
-a -u 192.168.10.100:53 -r 10.0.0.3:53 -g -w 1
-A -f 7 -s sh -b sh-fallback,sh-port
-a -f 7 -r 10.0.0.4:0 -i -w 2 --tun-type ipip
";

fn spec_snapshot() -> Snapshot {
    let rules = RuleSet::from_text(SPEC_RULES).unwrap();
    let mut snap = Snapshot::from_rules(&rules);
    // Kernel list order: 10.0.0.1 (added last) first.
    let counts = [[(12, 3), (4, 40)], [(0, 17), (0, 0)], [(1, 0), (0, 0)]];
    for (svc, c) in snap.services.iter_mut().zip(counts) {
        for (d, (a, i)) in svc.dests.iter_mut().zip(c) {
            d.activeconns = a;
            d.inactconns = i;
        }
    }
    snap
}

fn opts(format: ListFormat) -> ListOptions {
    ListOptions {
        format,
        ..ListOptions::default()
    }
}

#[test]
fn plain_listing_matches_spec_example() {
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.10.100:80 wlc persistent 300
  -> 10.0.0.1:80                  Masq    1      12         3         
  -> 10.0.0.2:80                  Masq    0      4          40        
UDP  192.168.10.100:53 rr ops
  -> 10.0.0.3:53                  Route   1      0          17        
FWM  7 sh (sh-fallback,sh-port)
  -> 10.0.0.4:0                   Tunnel  2      1          0         
";
    assert_eq!(list(&spec_snapshot(), &ListOptions::default()), expected);
}

#[test]
fn stats_listing_matches_spec_example() {
    let mut snap = spec_snapshot();
    snap.services.truncate(1);
    let svc = &mut snap.services[0];
    svc.stats = Stats {
        conns: 1532,
        inpkts: 98234,
        outpkts: 87110,
        inbytes: 6203355,
        outbytes: 123456789,
    };
    svc.dests.truncate(1);
    svc.dests[0].stats = Stats {
        conns: 800,
        inpkts: 50000,
        outpkts: 44000,
        inbytes: 3100000,
        outbytes: 61000000,
    };
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.168.10.100:80                1532    98234    87110  6203355  123456K
  -> 10.0.0.1:80                       800    50000    44000  3100000 61000000
";
    assert_eq!(list(&snap, &opts(ListFormat::Stats)), expected);
    // --exact: full numbers, at least 9 wide, one space before longer ones.
    let expected_exact = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.168.10.100:80                1532    98234    87110  6203355 123456789
  -> 10.0.0.1:80                       800    50000    44000  3100000 61000000
";
    let o = ListOptions {
        format: ListFormat::Stats,
        exact: true,
        nosort: false,
    };
    assert_eq!(list(&snap, &o), expected_exact);
}

#[test]
fn large_number_suffixes() {
    let mut snap = Snapshot::from_rules(&RuleSet::from_text("-A -f 1\n").unwrap());
    snap.services[0].stats = Stats {
        conns: 99_999_999,
        inpkts: 999_999_999,
        outpkts: 99_999_999_999,
        inbytes: 99_999_999_999_999,
        outbytes: u64::MAX,
    };
    let text = list(&snap, &opts(ListFormat::Stats));
    let row = text.lines().nth(3).unwrap();
    // u64::MAX / 10^12 has 8 digits: the field touches the previous one, as in C.
    assert_eq!(
        row,
        "FWM  1                            99999999  999999K   99999M   99999G18446744T"
    );
}

#[test]
fn rate_listing() {
    let mut snap = spec_snapshot();
    snap.services.truncate(2);
    snap.services[1].rates = Rates {
        cps: 12,
        inpps: 340,
        outpps: 0,
        inbps: 25600,
        outbps: 123_456_789_012,
    };
    snap.services[1].dests[0].rates = Rates {
        cps: 12,
        inpps: 340,
        outpps: 0,
        inbps: 25600,
        outbps: 1_000_000_000,
    };
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  192.168.10.100:80                   0        0        0        0        0
  -> 10.0.0.1:80                         0        0        0        0        0
  -> 10.0.0.2:80                         0        0        0        0        0
UDP  192.168.10.100:53                  12      340        0    25600     123G
  -> 10.0.0.3:53                        12      340        0    25600    1000M
";
    assert_eq!(list(&snap, &opts(ListFormat::Rate)), expected);
}

#[test]
fn thresholds_and_persistent_conn_listings() {
    let rules = RuleSet::from_text(
        "-A -t 10.0.0.1:443 -s lc -p 60 -M 255.255.255.0\n\
         -a -t 10.0.0.1:443 -r 10.1.0.1:443 -m -w 3 -x 1000 -y 800\n",
    )
    .unwrap();
    let mut snap = Snapshot::from_rules(&rules);
    let d = &mut snap.services[0].dests[0];
    d.activeconns = 7;
    d.inactconns = 2;
    d.persistconns = 5;
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  10.0.0.1:443 lc persistent 60 mask 255.255.255.0
  -> 10.1.0.1:443                 1000       800        7          2         
";
    assert_eq!(list(&snap, &opts(ListFormat::Thresholds)), expected);
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  10.0.0.1:443 lc persistent 60 mask 255.255.255.0
  -> 10.1.0.1:443                 3         5           7          2         
";
    assert_eq!(list(&snap, &opts(ListFormat::PersistentConn)), expected);
}

#[test]
fn tun_info_ipv6_and_nosort() {
    let rules = RuleSet::from_text(
        "-A -u [2001:db8::53]:53 -s mh -b mh-port -p 30 -M 64 --pe sip -o\n\
         -a -u [2001:db8::53]:53 -r [2001:db8:1::2]:53 -g\n\
         -a -u [2001:db8::53]:53 -r 10.9.0.2 -i --tun-type gre --tun-csum -w 4\n\
         -a -u [2001:db8::53]:53 -r 10.9.0.1 -i --tun-type gue --tun-port 6080 --tun-remcsum\n\
         -A -f 3 -6 -s rr\n\
         -a -f 3 -6 -r [2001:db8:1::3]:0 -m\n",
    )
    .unwrap();
    let snap = Snapshot::from_rules(&rules);
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
UDP  [2001:db8::53]:53 mh (mh-port) persistent 30 mask 64 pe sip ops
  -> 10.9.0.1:53                  Tunnel  gue:6080:r+c  1      0          0         
  -> 10.9.0.2:53                  Tunnel  gre:+c        4      0          0         
  -> [2001:db8:1::2]:53           Route   n/a           1      0          0         
FWM  3 IPv6 rr
  -> [2001:db8:1::3]:0            Masq    n/a           1      0          0         
";
    assert_eq!(list(&snap, &opts(ListFormat::TunInfo)), expected);
    // --nosort: kernel order (creation order, list order).
    let o = ListOptions {
        format: ListFormat::Plain,
        exact: false,
        nosort: true,
    };
    let text = list(&snap, &o);
    let names: Vec<&str> = text
        .lines()
        .skip(3)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "[2001:db8::53]:53",
            "10.9.0.1:53",
            "10.9.0.2:53",
            "[2001:db8:1::2]:53",
            "3",
            "[2001:db8:1::3]:0"
        ]
    );
}

#[test]
fn sorted_listing_uses_ipvsadm_order() {
    let rules = RuleSet::from_text(
        "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -m\n-a -t 10.0.0.1:80 -r 192.168.0.1 -m\n-A -t 192.168.0.9:80\n",
    )
    .unwrap();
    let text = list(&Snapshot::from_rules(&rules), &ListOptions::default());
    let names: Vec<&str> = text
        .lines()
        .skip(3)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "192.168.0.9:80",
            "10.0.0.1:80",
            "192.168.0.1:80",
            "10.1.0.1:80"
        ]
    );
}

#[test]
fn connection_listing() {
    let ip = |s: &str| s.parse().unwrap();
    let conn = ConnEntry {
        protocol: Protocol::Tcp,
        caddr: ip("203.0.113.9"),
        cport: 51234,
        vaddr: ip("192.168.10.100"),
        vport: 80,
        daddr: ip("10.0.0.1"),
        dport: 80,
        state: "ESTABLISHED".into(),
        expires_secs: 898,
        pe: None,
    };
    let template = ConnEntry {
        protocol: Protocol::Ip,
        caddr: ip("203.0.113.0"),
        cport: 0,
        vaddr: ip("0.0.0.7"),
        vport: 0,
        daddr: ip("10.0.0.4"),
        dport: 0,
        state: "NONE".into(),
        expires_secs: 6005,
        pe: None,
    };
    let sip = ConnEntry {
        protocol: Protocol::Udp,
        caddr: ip("2001:db8::99"),
        cport: 5060,
        vaddr: ip("2001:db8::53"),
        vport: 5060,
        daddr: ip("2001:db8:1::2"),
        dport: 5060,
        state: "UDP".into(),
        expires_secs: 59,
        pe: Some(("sip".into(), "a84b4c76e66710".into())),
    };
    let rows = [conn, template, sip];
    let expected = "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:58  ESTABLISHED 203.0.113.9:51234  192.168.10.100:80  10.0.0.1:80
IP  100:05 NONE        203.0.113.0:0      0.0.0.7:0          10.0.0.4:0
UDP 00:59  UDP         [2001:db8::99]:5060 [2001:db8::53]:5060 [2001:db8:1::2]:5060
";
    assert_eq!(list_conns(&rows, false), expected);
    let expected = "\
IPVS connection entries
pro expire state       source             virtual            destination        pe name          pe_data
TCP 14:58  ESTABLISHED 203.0.113.9:51234  192.168.10.100:80  10.0.0.1:80
IP  100:05 NONE        203.0.113.0:0      0.0.0.7:0          10.0.0.4:0
UDP 00:59  UDP         [2001:db8::99]:5060 [2001:db8::53]:5060 [2001:db8:1::2]:5060 sip                a84b4c76e66710
";
    assert_eq!(list_conns(&rows, true), expected);
}
