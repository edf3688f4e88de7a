//! Connection sync checked against the kernel's byte layouts and `ip_vs_sync.c` behaviour.
//!
//! Every datagram here is written out field by field from the kernel's structures
//! (`struct ip_vs_sync_mesg`, `struct ip_vs_sync_v4` / `ip_vs_sync_v6`, the option TLVs,
//! `struct ip_vs_sync_mesg_v0` / `ip_vs_sync_conn_v0`), never through the crate's encoder: a
//! master's output is compared with those bytes, and such bytes are fed to a backup.

mod director_support;

use core::net::IpAddr;

use director_support::{sa, t, udp};

use lvs_core::conn::HashKey;
use lvs_core::director::{
    Director, DirectorConfig, FlowPacket, PacketDir, SyncMasterConfig, SyncSkip,
};
use lvs_core::rules::{RuleSet, ServiceKey};
use lvs_core::{Instant, Protocol};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn director(rules: &str, key: u128) -> Director {
    let mut d = Director::new(DirectorConfig::new(4096, HashKey::from_u128(key)));
    d.apply_rules(Instant::ZERO, &RuleSet::from_text(rules).unwrap())
        .unwrap();
    d
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
    m.handle_flow(t(1), &udp("192.0.2.7:5000", "10.0.0.1:53", 60));
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
    match b.handle_flow(t(2), &udp("192.0.2.7:5001", "10.0.0.1:53", 60)) {
        lvs_core::director::FlowVerdict::Forward { dest, .. } => {
            assert_eq!(dest, sa("10.1.0.1:53"))
        }
        v => panic!("{v:?}"),
    }
}

// ---- what a master writes ------------------------------------------------------------------

const F_MASQ: u32 = 0x0000;
const TCP_ESTABLISHED: u16 = 1;
const TCP_CLOSE_WAIT: u16 = 7;
const TPL_NONE: u16 = 0;
const TPL_ASSURED: u16 = 1;

fn tcp(client: &str, vip: &str, flags: u8) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        src: sa(client),
        dst: sa(vip),
        fwmark: 0,
        tcp_flags: flags,
        len: 60,
        dir: PacketDir::FromClient,
    }
}

/// SYN, ACK, ACK: ESTABLISHED at the second packet, synced at the third (`sync_threshold` 3).
fn handshake(m: &mut Director, now: Instant, client: &str, vip: &str) {
    for f in [0x02, 0x10, 0x10] {
        m.handle_flow(now, &tcp(client, vip, f));
    }
}

/// A DR connection: one record, `IP_VS_CONN_F_DROUTE | NOOUTPUT` (active, HASHED never
/// sent), ESTABLISHED with its 900 s timeout; no datagram before the third packet.
#[test]
fn master_dr_connection_bytes() {
    let mut m = director(
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n",
        1,
    );
    m.set_sync_master(Some(SyncMasterConfig {
        syncid: 9,
        ..SyncMasterConfig::default()
    }));
    m.handle_flow(t(1), &tcp("192.0.2.7:40000", "10.0.0.1:80", 0x02));
    m.handle_flow(t(1), &tcp("192.0.2.7:40000", "10.0.0.1:80", 0x10));
    assert!(datagrams(&mut m, t(1)).is_empty());
    m.handle_flow(t(1), &tcp("192.0.2.7:40000", "10.0.0.1:80", 0x10));
    let rec = v1_record(
        6,
        F_DROUTE | F_NOOUTPUT,
        TCP_ESTABLISHED,
        (40000, 80, 80),
        0,
        900,
        (ip("192.0.2.7"), ip("10.0.0.1"), ip("10.1.0.1")),
        &[],
    );
    let want = v1_datagram(9, &[rec]);
    assert_eq!(&want[..8], &[0, 9, 0, 44, 1, 1, 0, 0]);
    assert_eq!(datagrams(&mut m, t(1)), vec![want]);
}

/// A NAT connection to another port: MASQ (0) without NOOUTPUT, dport the real server's.
/// The client's FIN takes it to CLOSE_WAIT (the INPUT table; FIN_WAIT is the INPUT-ONLY
/// table's, for DR and TUN), a forced state change sent at once with INACTIVE and 60 s.
#[test]
fn master_nat_connection_and_forced_close_wait() {
    let mut m = director(
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m\n",
        1,
    );
    m.set_sync_master(Some(SyncMasterConfig::default()));
    handshake(&mut m, t(1), "192.0.2.7:40000", "10.0.0.1:80");
    let addrs = (ip("192.0.2.7"), ip("10.0.0.1"), ip("10.1.0.1"));
    let est = v1_record(
        6,
        F_MASQ,
        TCP_ESTABLISHED,
        (40000, 80, 8080),
        0,
        900,
        addrs,
        &[],
    );
    assert_eq!(datagrams(&mut m, t(1)), vec![v1_datagram(0, &[est])]);
    m.handle_flow(t(2), &tcp("192.0.2.7:40000", "10.0.0.1:80", 0x11));
    let fin = v1_record(
        6,
        F_MASQ | F_INACTIVE,
        TCP_CLOSE_WAIT,
        (40000, 80, 8080),
        0,
        60,
        addrs,
        &[],
    );
    assert_eq!(datagrams(&mut m, t(2)), vec![v1_datagram(0, &[fin])]);
}

/// A persistent service: the template is considered after every packet of its connection
/// and, not being rate limited, sent each time (packets 1 and 2, before its connection is
/// ever sent); at packet 3 the connection, then its template. One datagram of four
/// records, as the kernel packs them. The template is NONE at the first packet and ASSURED
/// once its connection reached ESTABLISHED (`ip_vs_control_assure_ct`).
#[test]
fn master_persistent_template_before_and_after_its_connection() {
    let mut m = director(
        "-A -t 10.0.0.1:80 -s rr -p 300\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n",
        1,
    );
    m.set_sync_master(Some(SyncMasterConfig::default()));
    handshake(&mut m, t(1), "192.0.2.7:40000", "10.0.0.1:80");
    let addrs = (ip("192.0.2.7"), ip("10.0.0.1"), ip("10.1.0.1"));
    let tpl = |state| {
        v1_record(
            6,
            F_TEMPLATE | F_INACTIVE | F_NOOUTPUT | F_DROUTE,
            state,
            (0, 80, 80),
            0,
            300,
            addrs,
            &[],
        )
    };
    let conn = v1_record(
        6,
        F_NOOUTPUT | F_DROUTE,
        TCP_ESTABLISHED,
        (40000, 80, 80),
        0,
        900,
        addrs,
        &[],
    );
    let want = v1_datagram(
        0,
        &[tpl(TPL_NONE), tpl(TPL_ASSURED), conn, tpl(TPL_ASSURED)],
    );
    assert_eq!(want.len(), 8 + 4 * 36);
    assert_eq!(datagrams(&mut m, t(1)), vec![want]);
}

/// IPv6: `struct ip_vs_sync_v6`, type 1, 72 bytes, the addresses as 16 bytes each.
#[test]
fn master_ipv6_connection_bytes() {
    let mut m = director(
        "-A -t [2001:db8::1]:443 -s rr\n-a -t [2001:db8::1]:443 -r [fd00::11]:443 -g\n",
        1,
    );
    m.set_sync_master(Some(SyncMasterConfig::default()));
    handshake(&mut m, t(1), "[2001:db8:c::7]:40000", "[2001:db8::1]:443");
    let rec = v1_record(
        6,
        F_DROUTE | F_NOOUTPUT,
        TCP_ESTABLISHED,
        (40000, 443, 443),
        0,
        900,
        (ip("2001:db8:c::7"), ip("2001:db8::1"), ip("fd00::11")),
        &[],
    );
    assert_eq!(rec.len(), 72);
    assert_eq!(rec[0], 1);
    assert_eq!(datagrams(&mut m, t(1)), vec![v1_datagram(0, &[rec])]);
}

/// A persistent fwmark service: the connection carries the mark; its template is
/// `<IPPROTO_IP, caddr, 0, fwmark as address, 0, daddr, 0>` with the mark too.
#[test]
fn master_fwmark_connection_and_template_bytes() {
    let mut m = director("-A -f 7 -s rr -p 120\n-a -f 7 -r 10.1.0.1 -g\n", 1);
    m.set_sync_master(Some(SyncMasterConfig::default()));
    for f in [0x02, 0x10, 0x10] {
        let mut p = tcp("192.0.2.7:40000", "10.0.0.1:443", f);
        p.fwmark = 7;
        m.handle_flow(t(1), &p);
    }
    let tpl = |state| {
        v1_record(
            0,
            F_TEMPLATE | F_INACTIVE | F_NOOUTPUT | F_DROUTE,
            state,
            (0, 0, 0),
            7,
            120,
            (ip("192.0.2.7"), ip("0.0.0.7"), ip("10.1.0.1")),
            &[],
        )
    };
    let conn = v1_record(
        6,
        F_NOOUTPUT | F_DROUTE,
        TCP_ESTABLISHED,
        (40000, 443, 443),
        7,
        900,
        (ip("192.0.2.7"), ip("10.0.0.1"), ip("10.1.0.1")),
        &[],
    );
    let got = datagrams(&mut m, t(1));
    let want = v1_datagram(
        0,
        &[tpl(TPL_NONE), tpl(TPL_ASSURED), conn, tpl(TPL_ASSURED)],
    );
    assert_eq!(got, vec![want]);

    // A backup with the same rules binds both to its real server (service by mark; real
    // server by address with port 0, as the service is not NAT).
    let mut b = director("-A -f 7 -s rr -p 120\n-a -f 7 -r 10.1.0.1 -g\n", 2);
    let a = b.apply_sync(t(1), &got[0]).unwrap();
    assert_eq!(
        (a.created, a.updated, a.unbound, a.skipped),
        (2, 2, 0, 0),
        "{a:?}"
    );
    let svc = ServiceKey::Fwmark {
        mark: 7,
        family: lvs_core::rules::Family::V4,
    };
    let i = b.dest_info(&svc, sa("10.1.0.1:0")).unwrap();
    assert_eq!((i.activeconns, i.inactconns, i.persistconns), (1, 0, 1));
}

/// Version 0 (`sync_version` 0): `struct ip_vs_sync_mesg_v0` (count, syncid, size) and
/// 24-byte `struct ip_vs_sync_conn_v0` records with 16-bit flags and no timeout.
#[test]
fn master_version0_bytes() {
    let mut m = director(
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n",
        1,
    );
    let mut cfg = SyncMasterConfig {
        syncid: 3,
        ..SyncMasterConfig::default()
    };
    cfg.sysctls.version = lvs_core::sync::SyncVersion::V0;
    m.set_sync_master(Some(cfg));
    handshake(&mut m, t(1), "192.0.2.7:40000", "10.0.0.1:80");
    let mut want = vec![1, 3, 0, 28]; // nr_conns, syncid, size
    want.extend_from_slice(&[0, 6]); // reserved, protocol
    for p in [40000u16, 80, 80] {
        be16(&mut want, p);
    }
    for a in ["192.0.2.7", "10.0.0.1", "10.1.0.1"] {
        want.extend(octets(ip(a)));
    }
    be16(&mut want, (F_DROUTE | F_NOOUTPUT) as u16);
    be16(&mut want, TCP_ESTABLISHED);
    assert_eq!(datagrams(&mut m, t(1)), vec![want]);
}

// ---- what a backup does with a kernel's datagram -------------------------------------------

/// A type-length-value option.
fn opt(ty: u8, data: &[u8]) -> Vec<u8> {
    let mut o = vec![ty, data.len() as u8];
    o.extend_from_slice(data);
    o
}

const BACKUP_RULES: &str = "-A -t 10.0.0.1:80 -s rr\n\
                            -a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n\
                            -A -t 10.0.0.2:21 -s rr\n\
                            -a -t 10.0.0.2:21 -r 10.1.0.2:21 -m\n\
                            -A -u 10.0.0.1:53 -s rr\n\
                            -a -u 10.0.0.1:53 -r 10.1.0.3:5353 -m\n\
                            -A -t [2001:db8::1]:443 -s rr\n\
                            -a -t [2001:db8::1]:443 -r [fd00::11]:443 -g\n";

fn tcp_svc(vip: &str) -> ServiceKey {
    let v = sa(vip);
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: v.ip(),
        port: v.port(),
    }
}

/// A datagram as a kernel master writes it, with what a kernel receiver quietly accepts:
/// flag bits it masks off (NFCT, bit 16, is sent by a kernel using conntrack), a record
/// with sequence data (62 bytes, so 2 bytes of padding before the next), an unknown
/// optional option, and one record of each kind a kernel backup skips without dropping
/// the datagram.
#[test]
fn backup_applies_a_kernel_datagram() {
    const F_SYNC: u32 = 0x0020;
    const F_HASHED: u32 = 0x0040;
    const F_OUT_SEQ: u32 = 0x0200;
    const F_IN_SEQ: u32 = 0x0400;
    const F_NFCT: u32 = 0x0001_0000;
    let v4 = |c: &str, v: &str, d: &str| (ip(c), ip(v), ip(d));
    let mut seq = Vec::new();
    for x in [0x1000_0000u32, 7, 0, 0x8000_0001, 0xffff_fff9, 3] {
        be32(&mut seq, x);
    }
    let records = [
        // 0: DR, active, with bits the backup masks (IP_VS_CONN_F_BACKUP_MASK).
        v1_record(
            6,
            F_NFCT | F_HASHED | F_SYNC | F_NOOUTPUT | F_DROUTE,
            TCP_ESTABLISHED,
            (40000, 80, 80),
            0,
            777,
            v4("192.0.2.7", "10.0.0.1", "10.1.0.1"),
            &[],
        ),
        // 1: NAT FTP control connection with sequence data.
        v1_record(
            6,
            F_IN_SEQ | F_OUT_SEQ,
            TCP_ESTABLISHED,
            (40001, 21, 21),
            0,
            900,
            v4("192.0.2.7", "10.0.0.2", "10.1.0.2"),
            &opt(1, &seq),
        ),
        // 2: UDP with an unknown optional option (0x40 | 9) and no timeout: the backup uses
        // the protocol's (300 s).
        v1_record(
            17,
            F_INACTIVE,
            0,
            (5000, 53, 5353),
            0,
            0,
            v4("192.0.2.8", "10.0.0.1", "10.1.0.3"),
            &opt(0x49, &[1, 2, 3]),
        ),
        // 3: an unknown mandatory option: skipped, the datagram goes on.
        v1_record(
            6,
            F_NOOUTPUT | F_DROUTE,
            TCP_ESTABLISHED,
            (40002, 80, 80),
            0,
            900,
            v4("192.0.2.7", "10.0.0.1", "10.1.0.1"),
            &opt(9, &[0]),
        ),
        // 4: a state out of TCP's range: skipped.
        v1_record(
            6,
            F_NOOUTPUT | F_DROUTE,
            11,
            (40003, 80, 80),
            0,
            900,
            v4("192.0.2.7", "10.0.0.1", "10.1.0.1"),
            &[],
        ),
        // 5: IPv6.
        v1_record(
            6,
            F_NOOUTPUT | F_DROUTE,
            TCP_ESTABLISHED,
            (40000, 443, 443),
            0,
            900,
            (ip("2001:db8:c::7"), ip("2001:db8::1"), ip("fd00::11")),
            &[],
        ),
    ];
    assert_eq!(records[1].len(), 62);
    let g = v1_datagram(5, &records);
    // The padding: record 2 starts at 8 + 36 + 64.
    assert_eq!(&g[8 + 36 + 62..8 + 36 + 64], &[0, 0]);
    assert_eq!(g[8 + 36 + 64 + 1], 17);

    let mut b = director(BACKUP_RULES, 2);
    let a = b.apply_sync(t(10), &g).unwrap();
    assert_eq!((a.syncid, a.created, a.unbound), (5, 4, 0), "{a:?}");
    assert_eq!((a.decoder_skipped, a.skipped), (2, 0), "{a:?}");

    let c = b
        .conn(Protocol::Tcp, sa("192.0.2.7:40000"), sa("10.0.0.1:80"))
        .unwrap();
    assert_eq!(
        (c.state, c.dest, c.in_pkts),
        ("ESTABLISHED", sa("10.1.0.1:80"), 3)
    );
    assert_eq!(c.expires, t(10 + 777));
    assert!(c.flags.contains(lvs_core::conn::ConnFlags::SYNC));
    assert_eq!(
        c.flags.bits() & !0x0040, // whatever the table keeps in HASHED
        (F_SYNC | F_NOOUTPUT | F_DROUTE) as u16
    );
    let i = b
        .dest_info(&tcp_svc("10.0.0.1:80"), sa("10.1.0.1:80"))
        .unwrap();
    assert_eq!((i.activeconns, i.inactconns), (1, 0));

    let ftp = b
        .conn(Protocol::Tcp, sa("192.0.2.7:40001"), sa("10.0.0.2:21"))
        .unwrap();
    assert_eq!(ftp.dest, sa("10.1.0.2:21"));
    assert_eq!(ftp.flags.bits() & 0x0600, (F_IN_SEQ | F_OUT_SEQ) as u16);

    let u = b
        .conn(Protocol::Udp, sa("192.0.2.8:5000"), sa("10.0.0.1:53"))
        .unwrap();
    assert_eq!((u.dest, u.expires), (sa("10.1.0.3:5353"), t(10 + 300)));
    assert!(u.flags.contains(lvs_core::conn::ConnFlags::INACTIVE));

    let six = b
        .conn(
            Protocol::Tcp,
            sa("[2001:db8:c::7]:40000"),
            sa("[2001:db8::1]:443"),
        )
        .unwrap();
    assert_eq!(six.dest, sa("[fd00::11]:443"));
    assert!(b
        .conn(Protocol::Tcp, sa("192.0.2.7:40002"), sa("10.0.0.1:80"))
        .is_none());
}

/// A persistence-engine name without engine data: the kernel's
/// `ip_vs_conn_fill_param_sync` looks an engine up only for PE data, so the record is applied
/// as if it had no option.
#[test]
fn backup_applies_a_record_naming_an_engine_without_data() {
    let r = v1_record(
        17,
        F_INACTIVE,
        0,
        (5060, 53, 5353),
        0,
        120,
        (ip("192.0.2.9"), ip("10.0.0.1"), ip("10.1.0.3")),
        &opt(3, b"sip"),
    );
    let mut b = director(BACKUP_RULES, 2);
    let a = b.apply_sync(t(1), &v1_datagram(0, &[r])).unwrap();
    assert_eq!((a.created, a.skipped), (1, 0), "{a:?}");
    let u = b
        .conn(Protocol::Udp, sa("192.0.2.9:5060"), sa("10.0.0.1:53"))
        .unwrap();
    assert_eq!((u.dest, u.expires), (sa("10.1.0.3:5353"), t(121)));
}

/// A synced template starts, like every synced entry, with `in_pkts = sync_threshold[0]`
/// (`ip_vs_proc_conn`), and each record sets it there again. With `sync_period` 0 (sync once,
/// when `pkts == sync_threshold`) a backup that took over therefore never sends that
/// template again: its connections' packets count it from 4 on. Their own connection is
/// sent once, at its third packet.
#[test]
fn synced_template_counts_packets_from_the_threshold() {
    let rules = "-A -t 10.0.0.1:80 -s rr -p 300\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n";
    let addrs = (ip("192.0.2.7"), ip("10.0.0.1"), ip("10.1.0.1"));
    let tpl = v1_record(
        6,
        F_TEMPLATE | F_INACTIVE | F_NOOUTPUT | F_DROUTE,
        TPL_ASSURED,
        (0, 80, 80),
        0,
        300,
        addrs,
        &[],
    );
    for records in [1, 2] {
        let mut b = director(rules, 2);
        for _ in 0..records {
            b.apply_sync(t(1), &v1_datagram(0, core::slice::from_ref(&tpl)))
                .unwrap();
        }
        // Takeover, with sync_threshold "3 0".
        let mut cfg = SyncMasterConfig::default();
        cfg.sysctls.period = 0;
        b.set_sync_master(Some(cfg));
        handshake(&mut b, t(2), "192.0.2.7:40000", "10.0.0.1:80");
        let conn = v1_record(
            6,
            F_NOOUTPUT | F_DROUTE,
            TCP_ESTABLISHED,
            (40000, 80, 80),
            0,
            900,
            addrs,
            &[],
        );
        assert_eq!(
            datagrams(&mut b, t(2)),
            vec![v1_datagram(0, &[conn])],
            "after {records} record(s)"
        );
    }
}

/// `ip_vs_find_dest`: the service by mark, else by protocol / address / port, else the
/// port-0 service; the real server by address and port (port 0 first for a non-NAT fwmark
/// service), then with the other port; a quiesced real server (weight 0) is found like any.
#[test]
fn backup_finds_real_servers_as_ip_vs_find_dest_does() {
    let rules = "-A -t 10.0.0.1:80 -s rr\n\
                 -a -t 10.0.0.1:80 -r 10.1.0.1:80 -g -w 0\n\
                 -A -t 10.0.0.3:0 -s rr -p 60\n\
                 -a -t 10.0.0.3:0 -r 10.1.0.4 -g\n\
                 -A -f 9 -s rr\n\
                 -a -f 9 -r 10.1.0.5:8443 -m\n";
    let mut b = director(rules, 2);
    let recs = [
        // The quiesced real server.
        v1_record(
            6,
            F_NOOUTPUT | F_DROUTE,
            TCP_ESTABLISHED,
            (40000, 80, 80),
            0,
            900,
            (ip("192.0.2.7"), ip("10.0.0.1"), ip("10.1.0.1")),
            &[],
        ),
        // The port-0 service: its real server has port 0, the connection the client's port.
        v1_record(
            6,
            F_NOOUTPUT | F_DROUTE,
            TCP_ESTABLISHED,
            (40001, 443, 443),
            0,
            900,
            (ip("192.0.2.7"), ip("10.0.0.3"), ip("10.1.0.4")),
            &[],
        ),
        // A NAT fwmark service: the real server by its own port.
        v1_record(
            6,
            F_MASQ,
            TCP_ESTABLISHED,
            (40002, 443, 8443),
            9,
            900,
            (ip("192.0.2.7"), ip("10.0.0.9"), ip("10.1.0.5")),
            &[],
        ),
    ];
    let a = b.apply_sync(t(1), &v1_datagram(0, &recs)).unwrap();
    assert_eq!((a.created, a.unbound), (3, 0), "{a:?}");
    let active = |svc: &ServiceKey, rs: &str| b.dest_info(svc, sa(rs)).unwrap().activeconns;
    assert_eq!(active(&tcp_svc("10.0.0.1:80"), "10.1.0.1:80"), 1);
    assert_eq!(active(&tcp_svc("10.0.0.3:0"), "10.1.0.4:0"), 1);
    let fw = ServiceKey::Fwmark {
        mark: 9,
        family: lvs_core::rules::Family::V4,
    };
    assert_eq!(active(&fw, "10.1.0.5:8443"), 1);
}

/// The timeout field is 32 bits of seconds; a 64-bit kernel takes any value as it is
/// (`MAX_SCHEDULE_TIMEOUT / HZ` is far above it). The backup takes it too, within its
/// table's bound on timers (`ConnTable::max_timeout`, about 4 years).
#[test]
fn backup_takes_the_largest_timeout() {
    let r = v1_record(
        17,
        F_INACTIVE,
        0,
        (5000, 53, 5353),
        0,
        u32::MAX,
        (ip("192.0.2.8"), ip("10.0.0.1"), ip("10.1.0.3")),
        &[],
    );
    let mut b = director(BACKUP_RULES, 2);
    b.apply_sync(t(1), &v1_datagram(0, &[r])).unwrap();
    let u = b
        .conn(Protocol::Udp, sa("192.0.2.8:5000"), sa("10.0.0.1:53"))
        .unwrap();
    let max = b.table().max_timeout();
    assert!(max < lvs_core::Duration::from_secs(u64::from(u32::MAX)));
    assert_eq!(u.expires, t(1) + max);
    // Still there a year later.
    b.handle_timeout(t(365 * 86400));
    assert!(b
        .conn(Protocol::Udp, sa("192.0.2.8:5000"), sa("10.0.0.1:53"))
        .is_some());
}

/// One-packet connections are never sent. Version 1 goes on to their template
/// (`goto control`), version 0 returns before it (`ip_vs_sync_conn_v0`), so a version 0
/// master sends nothing at all for a one-packet service, persistent or not.
#[test]
fn one_packet_connections_are_never_sent() {
    for (rules, v1_records) in [
        (
            "-A -u 10.0.0.1:53 -s rr -o\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -g\n",
            0,
        ),
        (
            "-A -u 10.0.0.1:53 -s rr -p 300 -o\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -g\n",
            3,
        ),
    ] {
        for version in [
            lvs_core::sync::SyncVersion::V1,
            lvs_core::sync::SyncVersion::V0,
        ] {
            let mut m = director(rules, 1);
            let mut cfg = SyncMasterConfig::default();
            cfg.sysctls.version = version;
            m.set_sync_master(Some(cfg));
            for _ in 0..3 {
                m.handle_flow(t(1), &udp("192.0.2.7:5000", "10.0.0.1:53", 60));
            }
            let g = datagrams(&mut m, t(1));
            let records: usize = g.iter().map(|d| usize::from(d[4])).sum();
            let want = if version == lvs_core::sync::SyncVersion::V1 {
                v1_records
            } else {
                assert!(g.is_empty());
                0
            };
            assert_eq!(records, want, "{rules} {version:?}");
            // Every record is the template (type IPv4, UDP, TEMPLATE set).
            for d in &g {
                for r in d[8..].chunks(36) {
                    assert_eq!(&r[..2], &[0, 17]);
                    assert_eq!(
                        u32::from_be_bytes(r[4..8].try_into().unwrap()) & F_TEMPLATE,
                        F_TEMPLATE
                    );
                }
            }
        }
    }
}

/// A version 0 datagram (`struct ip_vs_sync_mesg_v0`, 24-byte `ip_vs_sync_conn_v0`
/// records): no timeout on the wire, so the backup uses the protocol's timeout of the state,
/// and 180 s for a template (`ip_vs_proc_conn`).
#[test]
fn backup_applies_a_version0_datagram() {
    let v0_record = |proto: u8, ports: [u16; 3], addrs: [&str; 3], flags: u32, state: u16| {
        let mut r = vec![0, proto];
        for p in ports {
            be16(&mut r, p);
        }
        for a in addrs {
            r.extend(octets(ip(a)));
        }
        be16(&mut r, flags as u16);
        be16(&mut r, state);
        assert_eq!(r.len(), 24);
        r
    };
    let addrs = ["192.0.2.7", "10.0.0.1", "10.1.0.1"];
    let mut g = vec![2, 0, 0, 0];
    g.extend(v0_record(
        6,
        [0, 80, 80],
        addrs,
        F_TEMPLATE | F_INACTIVE | F_NOOUTPUT | F_DROUTE,
        TPL_ASSURED,
    ));
    g.extend(v0_record(
        6,
        [40000, 80, 80],
        addrs,
        F_NOOUTPUT | F_DROUTE,
        TCP_ESTABLISHED,
    ));
    let size = g.len() as u16;
    g[2..4].copy_from_slice(&size.to_be_bytes());
    assert_eq!(size, 52);

    let mut b = director(
        "-A -t 10.0.0.1:80 -s rr -p 300\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n",
        2,
    );
    let a = b.apply_sync(t(5), &g).unwrap();
    assert_eq!(
        (a.version, a.created, a.unbound),
        (lvs_core::sync::SyncVersion::V0, 2, 0)
    );
    let c = b
        .conn(Protocol::Tcp, sa("192.0.2.7:40000"), sa("10.0.0.1:80"))
        .unwrap();
    assert_eq!((c.state, c.expires), ("ESTABLISHED", t(5 + 900)));
    let tpl = b
        .connections(t(5))
        .into_iter()
        .find(|e| e.cport == 0)
        .unwrap();
    assert_eq!((tpl.state.as_str(), tpl.expires_secs), ("ASSURED", 180));
    let i = b
        .dest_info(&tcp_svc("10.0.0.1:80"), sa("10.1.0.1:80"))
        .unwrap();
    assert_eq!((i.activeconns, i.inactconns, i.persistconns), (1, 0, 1));
}
