//! `ipvsadm -S -n` output: golden texts, sort order, byte-for-byte round trips.

use lvs_core::rules::{
    Command, DestConfig, Family, Forward, PersistMask, Persistence, RuleSet, ServiceConfig,
    ServiceKey, TunnelConfig, TunnelCsum, TunnelType,
};
use lvs_core::sched::{SchedFlags, SchedKind};

fn roundtrip(text: &str) {
    let rules = RuleSet::from_text(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rules.save(), text, "save of a saved text must reproduce it");
    let again = RuleSet::from_text(&rules.save()).unwrap();
    assert_eq!(again.save(), text);
}

/// The example of spec §5.1.
const SPEC_EXAMPLE: &str = "\
-A -t 192.168.10.100:80 -s wlc -p 300
-a -t 192.168.10.100:80 -r 10.0.0.1:80 -m -w 1
-a -t 192.168.10.100:80 -r 10.0.0.2:80 -m -w 0
-A -u 192.168.10.100:53 -s rr -o
-a -u 192.168.10.100:53 -r 10.0.0.3:53 -g -w 1
-A -f 7 -s sh -b sh-fallback,sh-port
-a -f 7 -r 10.0.0.4:0 -i -w 2 --tun-type ipip
";

#[test]
fn spec_example_round_trips() {
    roundtrip(SPEC_EXAMPLE);
    let rules = RuleSet::from_text(SPEC_EXAMPLE).unwrap();
    let key: ServiceKey = "-t 192.168.10.100:80".parse().unwrap();
    let (svc, dests) = rules.service(&key).unwrap();
    assert_eq!(svc.persistence, Some(Persistence::new(300, Family::V4)));
    // Restoring a sorted save adds in ascending order: the kernel list is descending.
    assert_eq!(dests[0].addr.to_string(), "10.0.0.2");
    assert_eq!(dests[1].addr.to_string(), "10.0.0.1");
}

#[test]
fn unsorted_input_is_saved_sorted() {
    let input = "\
-A -f 3 -s rr
-A -u 10.0.0.1:53 -s rr
-A -t 10.0.0.2:80 -s rr
-A -t 10.0.0.1:443 -s rr
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.9:8080 -m
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m
-a -t 10.0.0.1:80 -r 10.1.0.1:79 -m
-A -f 2 -6 -s rr
-A -f 2 -s rr
-A -t [2001:db8::1]:80 -s rr
-A --sctp-service 10.0.0.1:9 -s rr
";
    let expected = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:79 -m -w 1
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1
-a -t 10.0.0.1:80 -r 10.1.0.9:8080 -m -w 1
-A -t 10.0.0.1:443 -s rr
-A -t 10.0.0.2:80 -s rr
-A -u 10.0.0.1:53 -s rr
-A --sctp-service 10.0.0.1:9 -s rr
-A -t [2001:db8::1]:80 -s rr
-A -f 2 -s rr
-A -f 2 -6 -s rr
-A -f 3 -s rr
";
    let rules = RuleSet::from_text(input).unwrap();
    assert_eq!(rules.save(), expected);
    roundtrip(expected);
}

#[test]
fn addresses_far_apart_sort_as_ipvsadm_does() {
    // ipvsadm compares `ntohl(a) - ntohl(b)` as a C int: 10.0.0.1 - 192.168.1.1 wraps to a
    // positive number, so 192.168.1.1 is listed first.
    let input = "\
-A -t 10.0.0.1:80 -s rr
-A -t 192.168.1.1:80 -s rr
-a -t 192.168.1.1:80 -r 10.0.0.5:80 -m
-a -t 192.168.1.1:80 -r 192.168.7.7:80 -m
";
    let expected = "\
-A -t 192.168.1.1:80 -s rr
-a -t 192.168.1.1:80 -r 192.168.7.7:80 -m -w 1
-a -t 192.168.1.1:80 -r 10.0.0.5:80 -m -w 1
-A -t 10.0.0.1:80 -s rr
";
    assert_eq!(RuleSet::from_text(input).unwrap().save(), expected);
    roundtrip(expected);
}

#[test]
fn every_service_option_is_saved_in_ipvsadm_order() {
    let input = "\
-A -u 10.0.0.1:5060 -o -b flag-2,flag-1 --pe sip -M 255.255.255.0 -p 60 -s wrr
-A -t [2001:db8::5]:0 -s mh -b mh-port -p -M 64
-A -f 9 -6 -s sh -p 30
-A -f 10 -s lc -p 10 -M 255.255.255.255
-A -t 10.9.9.9:80 --pe sip
";
    let expected = "\
-A -t 10.9.9.9:80 -s wlc --pe sip
-A -u 10.0.0.1:5060 -s wrr -p 60 -M 255.255.255.0 --pe sip -o -b flag-1,flag-2
-A -t [2001:db8::5]:0 -s mh -p 360 -M 64 -b mh-port
-A -f 9 -6 -s sh -p 30
-A -f 10 -s lc -p 10
";
    assert_eq!(RuleSet::from_text(input).unwrap().save(), expected);
    roundtrip(expected);
}

#[test]
fn real_server_lines_tunnels_and_families() {
    // Mixed families make ipvs_cmp_dests intransitive (an IPv4 operand compares the first
    // word only). From the canonical numeric order 10.0.0.7, 10.0.0.8, ::10.0.0.9,
    // 2001:db8:1::a, glibc's merge sort gives the order below (worked by hand).
    let input = "\
-A -t [2001:db8::1]:443 -s rr
-a -t [2001:db8::1]:443 -r [2001:db8:1::a]:443 -g -w 5
-a -t [2001:db8::1]:443 -r 10.0.0.7 -i --tun-type gue --tun-port 6080 --tun-remcsum -w 7
-a -t [2001:db8::1]:443 -r 10.0.0.8 -i --tun-type gre --tun-csum
-a -t [2001:db8::1]:443 -r [::10.0.0.9]:443 -m -w 0
-A -f 1 -s wlc
-a -f 1 -r 10.2.0.1:8080 -m -x 100 -y 50
-a -f 1 -r 10.2.0.2 -i --tun-type gue --tun-port 5555
";
    let expected = "\
-A -t [2001:db8::1]:443 -s rr
-a -t [2001:db8::1]:443 -r [::10.0.0.9]:443 -m -w 0
-a -t [2001:db8::1]:443 -r 10.0.0.7:443 -i -w 7 --tun-type gue --tun-port 6080 --tun-remcsum
-a -t [2001:db8::1]:443 -r 10.0.0.8:443 -i -w 1 --tun-type gre --tun-csum
-a -t [2001:db8::1]:443 -r [2001:db8:1::a]:443 -g -w 5
-A -f 1 -s wlc
-a -f 1 -r 10.2.0.1:8080 -m -w 1
-a -f 1 -r 10.2.0.2:0 -i -w 1 --tun-type gue --tun-port 5555 --tun-nocsum
";
    let rules = RuleSet::from_text(input).unwrap();
    assert_eq!(rules.save(), expected);
    // Thresholds are kept in the model even though -S does not print them.
    let (_, dests) = rules.service(&ServiceKey::fwmark(1)).unwrap();
    let d = dests.iter().find(|d| d.port == 8080).unwrap();
    assert_eq!((d.u_threshold, d.l_threshold), (100, 50));
}

#[test]
fn mixed_family_dests_compare_by_first_operand_family() {
    // ipvs_cmp_dests looks at the first operand's family only: an IPv4 operand compares the
    // first 32-bit word of both (for 2001:db8:: that is 0x20010db8).
    let input = "\
-A -t [2001:db8::1]:80 -s rr
-a -t [2001:db8::1]:80 -r 32.1.13.183 -i
-a -t [2001:db8::1]:80 -r [2001:db8::9]:80 -g
-a -t [2001:db8::1]:80 -r 32.1.13.185 -i
";
    let text = RuleSet::from_text(input).unwrap().save();
    let order: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(' ').nth(4).unwrap())
        .collect();
    assert_eq!(
        order,
        ["32.1.13.183:80", "[2001:db8::9]:80", "32.1.13.185:80"]
    );
    roundtrip(&text);
}

#[test]
fn local_node_is_saved_as_gatewaying() {
    let key = ServiceKey::tcp("10.0.0.1".parse().unwrap(), 80);
    let mut rules = RuleSet::new();
    rules
        .apply(&Command::AddService(ServiceConfig::new(key)))
        .unwrap();
    let mut d = DestConfig::new("127.0.0.1".parse().unwrap(), 80);
    d.forward = Forward::Local;
    rules.apply(&Command::AddDest(key, d)).unwrap();
    assert_eq!(
        rules.save(),
        "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 127.0.0.1:80 -g -w 1\n"
    );
}

#[test]
fn programmatic_model_saves_like_parsed_text() {
    let key = ServiceKey::Fwmark {
        mark: 77,
        family: Family::V6,
    };
    let mut rules = RuleSet::new();
    let mut svc = ServiceConfig::new(key);
    svc.scheduler = SchedKind::Sh;
    svc.flags = SchedFlags::SCHED2;
    svc.persistence = Some(Persistence {
        timeout_secs: 100,
        mask: PersistMask::V6(48),
    });
    rules.apply(&Command::AddService(svc)).unwrap();
    let mut d = DestConfig::new("2001:db8::2".parse().unwrap(), 0);
    d.forward = Forward::Tunnel;
    d.tunnel = TunnelConfig {
        kind: TunnelType::Gre,
        port: 0,
        csum: TunnelCsum::Csum,
    };
    d.weight = 65535;
    rules.apply(&Command::AddDest(key, d)).unwrap();
    let text = rules.save();
    assert_eq!(
        text,
        "-A -f 77 -6 -s sh -p 100 -M 48 -b sh-port\n\
         -a -f 77 -6 -r [2001:db8::2]:0 -i -w 65535 --tun-type gre --tun-csum\n"
    );
    let parsed = RuleSet::from_text(&text).unwrap();
    assert_eq!(parsed, rules);
}

#[test]
fn empty_rule_set_saves_nothing() {
    assert_eq!(RuleSet::new().save(), "");
    assert_eq!(
        RuleSet::from_text("# only a comment\n\n   \n")
            .unwrap()
            .save(),
        ""
    );
}

#[test]
fn large_fwmark_is_saved_unsigned() {
    roundtrip("-A -f 4294967295 -s rr\n");
}
