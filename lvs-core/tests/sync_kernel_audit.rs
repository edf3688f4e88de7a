//! Connection sync checked against the kernel's byte layouts and `ip_vs_sync.c` behaviour.
//!
//! Every datagram here is written out field by field from the kernel's structures
//! (`struct ip_vs_sync_mesg`, `struct ip_vs_sync_v4` / `ip_vs_sync_v6`, the option TLVs,
//! `struct ip_vs_sync_mesg_v0` / `ip_vs_sync_conn_v0`), never through the crate's encoder: a
//! master's output is compared with those bytes, and such bytes are fed to a backup.

use core::net::{IpAddr, SocketAddr};

use lvs_core::conn::HashKey;
use lvs_core::director::{
    Director, DirectorConfig, FlowPacket, PacketDir, SyncMasterConfig, SyncSkip,
};
use lvs_core::rules::{RuleSet, ServiceKey};
use lvs_core::{Instant, Protocol};

fn t(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn director(rules: &str, key: u128) -> Director {
    let mut d = Director::new(DirectorConfig::new(4096, HashKey::from_u128(key)));
    d.apply_rules(Instant::ZERO, &RuleSet::from_text(rules).unwrap())
        .unwrap();
    d
}

fn udp(client: &str, vip: &str) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Udp,
        src: sa(client),
        dst: sa(vip),
        fwmark: 0,
        tcp_flags: 0,
        len: 60,
        dir: PacketDir::FromClient,
    }
}

/// Every datagram the master has, oldest first.
fn datagrams(m: &mut Director, now: Instant) -> Vec<Vec<u8>> {
    m.flush_sync();
    let mut out = Vec::new();
    while let Some(g) = m.poll_sync(now) {
        out.push(g);
    }
    out
}

// ---- the kernel's layouts, by hand ----------------------------------------------------------

fn be16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn be32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// One `struct ip_vs_sync_v4` / `ip_vs_sync_v6` record, then `options` (TLVs).
#[allow(clippy::too_many_arguments)]
fn v1_record(
    protocol: u8,
    flags: u32,
    state: u16,
    (cport, vport, dport): (u16, u16, u16),
    fwmark: u32,
    timeout: u32,
    (caddr, vaddr, daddr): (IpAddr, IpAddr, IpAddr),
    options: &[u8],
) -> Vec<u8> {
    let v6 = caddr.is_ipv6();
    let fixed = if v6 { 72 } else { 36 };
    let mut r = vec![u8::from(v6), protocol]; // type: STYPE_F_INET6; protocol
    be16(&mut r, (fixed + options.len()) as u16); // ver_size: version 0 in the top nibble
    be32(&mut r, flags);
    be16(&mut r, state);
    be16(&mut r, cport);
    be16(&mut r, vport);
    be16(&mut r, dport);
    be32(&mut r, fwmark);
    be32(&mut r, timeout);
    r.extend(octets(caddr));
    r.extend(octets(vaddr));
    r.extend(octets(daddr));
    assert_eq!(r.len(), fixed);
    r.extend_from_slice(options);
    r
}

/// `struct ip_vs_sync_mesg` then the records, each starting 4-byte aligned (zero padding
/// between records, none after the last: `size` counts no trailing pad).
fn v1_datagram(syncid: u8, records: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![0, syncid, 0, 0, records.len() as u8, 1, 0, 0];
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            m.resize(m.len().next_multiple_of(4), 0);
        }
        m.extend_from_slice(r);
    }
    let size = m.len() as u16;
    m[2..4].copy_from_slice(&size.to_be_bytes());
    m
}

// IP_VS_CONN_F_* (include/uapi/linux/ip_vs.h).
const F_DROUTE: u32 = 0x0003;
const F_NOOUTPUT: u32 = 0x0080;
const F_INACTIVE: u32 = 0x0100;
const F_TEMPLATE: u32 = 0x1000;

// ---- persistence templates of one-packet services -----------------------------------------

/// A persistent one-packet UDP service: the master never syncs the one-packet connections,
/// only their template (`ip_vs_sync_conn`: `goto control`). The kernel's backup creates that
/// template: its real server's `conn_flags` never hold ONE_PACKET (that bit comes from the
/// service's flag when a packet is scheduled, `ip_vs_schedule` / `ip_vs_sched_persist`), so
/// `ip_vs_bind_dest` adds none, and after a takeover the client keeps its real server.
#[test]
fn one_packet_service_templates_are_created_on_the_backup() {
    let rules = "-A -u 10.0.0.1:53 -s rr -p 300 -o\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -g\n";
    let mut m = director(rules, 1);
    m.set_sync_master(Some(SyncMasterConfig::default()));
    m.handle_flow(t(1), &udp("192.0.2.7:5000", "10.0.0.1:53"));
    let g = datagrams(&mut m, t(1));
    // One template record: UDP, TEMPLATE | DROUTE | NOOUTPUT | INACTIVE, state NONE, cport 0,
    // the persistence timeout.
    let tpl = v1_record(
        17,
        F_TEMPLATE | F_INACTIVE | F_NOOUTPUT | F_DROUTE,
        0,
        (0, 53, 53),
        0,
        300,
        (ip("192.0.2.7"), ip("10.0.0.1"), ip("10.1.0.1")),
        &[],
    );
    assert_eq!(g, vec![v1_datagram(0, core::slice::from_ref(&tpl))]);

    // The backup has a second real server, which rr picks first without the template.
    let backup_rules = "-A -u 10.0.0.1:53 -s rr -p 300 -o\n\
                        -a -u 10.0.0.1:53 -r 10.1.0.1:53 -g\n\
                        -a -u 10.0.0.1:53 -r 10.1.0.2:53 -g\n";
    let mut b = director(backup_rules, 2);
    let a = b.apply_sync(t(1), &v1_datagram(0, &[tpl])).unwrap();
    assert_eq!((a.created, a.skipped), (1, 0), "{a:?}");
    assert_eq!(b.sync_stats().skipped(SyncSkip::OnePacket), 0);
    let svc = ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: ip("10.0.0.1"),
        port: 53,
    };
    let persist = |d: &Director, rs: &str| d.dest_info(&svc, sa(rs)).unwrap().persistconns;
    assert_eq!(
        (persist(&b, "10.1.0.1:53"), persist(&b, "10.1.0.2:53")),
        (1, 0)
    );
    // After the takeover the client's next datagram goes where the master sent it.
    match b.handle_flow(t(2), &udp("192.0.2.7:5001", "10.0.0.1:53")) {
        lvs_core::director::FlowVerdict::Forward { dest, .. } => {
            assert_eq!(dest, sa("10.1.0.1:53"))
        }
        v => panic!("{v:?}"),
    }
}
