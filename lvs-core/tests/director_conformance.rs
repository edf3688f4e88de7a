//! Conformance tests of the director against the traces of the spec (§2.6–§2.8, §6.1–§6.5).
// Sysctls are set one field at a time below, next to the trace that needs them.
#![allow(clippy::field_reassign_with_default)]

use core::net::SocketAddr;

use lvs_core::conn::HashKey;
use lvs_core::director::{
    Director, DirectorConfig, DropReason, FlowPacket, FlowVerdict, PacketDir, Sysctls,
};
use lvs_core::rules::listing::{list, list_conns, ListFormat, ListOptions};
use lvs_core::rules::{Command, DestConfig, Forward, RuleSet};
use lvs_core::{Duration, Instant, Protocol};

mod director_support;
use director_support::*;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;
const SYNACK: u8 = 0x12;
const FINACK: u8 = 0x11;

fn tcp(src: &str, dst: &str, flags: u8) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        src: sa(src),
        dst: sa(dst),
        fwmark: 0,
        tcp_flags: flags,
        len: 60,
        dir: PacketDir::FromClient,
    }
}

fn reply(src: &str, dst: &str, flags: u8) -> FlowPacket {
    FlowPacket {
        dir: PacketDir::FromServer,
        ..tcp(src, dst, flags)
    }
}

fn udp(src: &str, dst: &str) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Udp,
        tcp_flags: 0,
        len: 100,
        ..tcp(src, dst, 0)
    }
}

fn is_new(v: FlowVerdict) -> bool {
    match v {
        FlowVerdict::Forward { new, .. } => new,
        other => panic!("expected Forward, got {other:?}"),
    }
}

#[test]
fn nat_tcp_lifecycle_and_reply_rewrite() {
    let mut d = director("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m\n");
    let c = "192.0.2.7:40000";
    let v = "10.0.0.1:80";
    assert_eq!(
        dest_of(d.handle_flow(t(1), &tcp(c, v, SYN))),
        sa("10.1.0.1:8080")
    );
    let info = d.conn(Protocol::Tcp, sa(c), sa(v)).unwrap();
    assert_eq!(info.state, "SYN_RECV");
    assert_eq!(info.method, Forward::Masq);
    // Due at the first 125 ms tick at or after now + timeout: exactly then for whole seconds.
    assert_eq!(info.expires, t(1) + Duration::from_secs(60));
    // SYN+ACK from the real server: a reply with the VIP as source.
    assert_eq!(
        d.handle_flow(t(1), &reply("10.1.0.1:8080", c, SYNACK)),
        FlowVerdict::Reply { src: sa(v) }
    );
    d.handle_flow(t(2), &tcp(c, v, ACK));
    assert_eq!(
        d.conn(Protocol::Tcp, sa(c), sa(v)).unwrap().state,
        "ESTABLISHED"
    );
    let di = d
        .dest_info(&key("-t 10.0.0.1:80"), sa("10.1.0.1:8080"))
        .unwrap();
    assert_eq!((di.activeconns, di.inactconns), (1, 0));
    // client closes first: FIN(in) ES→CW; FIN(out) CW→TW.
    d.handle_flow(t(3), &tcp(c, v, FINACK));
    assert_eq!(
        d.conn(Protocol::Tcp, sa(c), sa(v)).unwrap().state,
        "CLOSE_WAIT"
    );
    d.handle_flow(t(3), &reply("10.1.0.1:8080", c, FINACK));
    let info = d.conn(Protocol::Tcp, sa(c), sa(v)).unwrap();
    assert_eq!(info.state, "TIME_WAIT");
    assert_eq!(info.expires, t(3) + Duration::from_secs(120));
    let di = d
        .dest_info(&key("-t 10.0.0.1:80"), sa("10.1.0.1:8080"))
        .unwrap();
    assert_eq!((di.activeconns, di.inactconns), (0, 1));
    // Stats: 3 in, 2 out.
    let st = d.stats();
    assert_eq!((st.conns, st.inpkts, st.outpkts), (1, 3, 2));
    assert_eq!((st.inbytes, st.outbytes), (180, 120));
    // Expiry 120 s after the last packet: alive just before, gone at the deadline.
    run_timers(&mut d, t(3) + Duration::from_millis(119_999));
    assert!(d.conn(Protocol::Tcp, sa(c), sa(v)).is_some());
    run_timers(&mut d, t(3) + Duration::from_secs(120));
    assert!(d.conn(Protocol::Tcp, sa(c), sa(v)).is_none());
    let di = d
        .dest_info(&key("-t 10.0.0.1:80"), sa("10.1.0.1:8080"))
        .unwrap();
    assert_eq!((di.activeconns, di.inactconns), (0, 0));
}

#[test]
fn dr_input_only_trace() {
    let mut d = director("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n");
    let (c, v) = ("192.0.2.7:40000", "10.0.0.1:80");
    let states: Vec<&str> = [SYN, ACK, FINACK, ACK, RST]
        .iter()
        .map(|&f| {
            d.handle_flow(t(1), &tcp(c, v, f));
            d.conn(Protocol::Tcp, sa(c), sa(v)).unwrap().state
        })
        .collect();
    assert_eq!(
        states,
        ["SYN_RECV", "ESTABLISHED", "FIN_WAIT", "FIN_WAIT", "CLOSE"]
    );
    assert_eq!(
        d.conn(Protocol::Tcp, sa(c), sa(v)).unwrap().method,
        Forward::DirectRoute
    );
}

#[test]
fn when_to_schedule() {
    let mut d =
        director("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1:80\n-A -u 10.0.0.1:53\n");
    let (c, v) = ("192.0.2.7:40000", "10.0.0.1:80");
    // A stray ACK or a SYN+RST is not ours.
    assert_eq!(d.handle_flow(t(1), &tcp(c, v, ACK)), FlowVerdict::NotOurs);
    assert_eq!(
        d.handle_flow(t(1), &tcp(c, v, SYN | RST)),
        FlowVerdict::NotOurs
    );
    // No service.
    assert_eq!(
        d.handle_flow(t(1), &tcp(c, "10.0.0.1:81", SYN)),
        FlowVerdict::NotOurs
    );
    // A service with no real server: ICMP port unreachable, also for UDP.
    assert_eq!(
        d.handle_flow(t(1), &udp(c, "10.0.0.1:53")),
        FlowVerdict::NoDestination
    );
    // SYN+ACK may create a connection (active FTP).
    assert!(is_new(d.handle_flow(t(1), &tcp(c, v, SYNACK))));
    // sloppy_tcp: a mid-stream ACK picks the flow up as ESTABLISHED.
    let mut s = Sysctls::default();
    s.sloppy_tcp = true;
    d.set_sysctls(s);
    assert!(is_new(d.handle_flow(t(2), &tcp("192.0.2.8:1", v, ACK))));
    assert_eq!(
        d.conn(Protocol::Tcp, sa("192.0.2.8:1"), sa(v))
            .unwrap()
            .state,
        "ESTABLISHED"
    );
    assert_eq!(
        d.handle_flow(t(2), &tcp("192.0.2.8:2", v, RST)),
        FlowVerdict::NotOurs
    );
    assert_eq!(d.flow_counters().no_destination, 1);
    assert_eq!(d.flow_counters().not_ours, 4);
}

#[test]
fn persistence_with_netmask() {
    let mut d = director(
        "-A -t 10.0.0.1:443 -s rr -p 300 -M 255.255.255.0\n\
         -a -t 10.0.0.1:443 -r 10.1.0.1:443 -m\n\
         -a -t 10.0.0.1:443 -r 10.1.0.2:443 -m\n",
    );
    let v = "10.0.0.1:443";
    // rr starts at the head (the last added).
    let first = dest_of(d.handle_flow(t(1), &tcp("192.0.2.7:1000", v, SYN)));
    assert_eq!(first, sa("10.1.0.2:443"));
    // Same /24, other host and port: same real server through the template.
    for (i, c) in ["192.0.2.7:1001", "192.0.2.200:5000", "192.0.2.1:9"]
        .iter()
        .enumerate()
    {
        let got = dest_of(d.handle_flow(t(2 + i as u64), &tcp(c, v, SYN)));
        assert_eq!(got, first, "client {c}");
    }
    // Another /24: the scheduler runs again (rr moves on).
    assert_eq!(
        dest_of(d.handle_flow(t(10), &tcp("198.51.100.1:1000", v, SYN))),
        sa("10.1.0.1:443")
    );
    // Templates: masked client, cport 0; conns stats count real conns only.
    let conns = d.connections(t(10));
    let tpl: Vec<_> = conns.iter().filter(|e| e.cport == 0).collect();
    assert_eq!(tpl.len(), 2);
    assert!(tpl.iter().any(
        |e| e.caddr == "192.0.2.0".parse::<core::net::IpAddr>().unwrap()
            && e.vport == 443
            && e.dport == 443
            && e.state == "NONE"
    ));
    let tp = tpl
        .iter()
        .find(|e| e.caddr.to_string() == "192.0.2.0")
        .unwrap();
    // Re-armed by the last conn that used it (t = 4) with the 300 s timeout.
    assert_eq!(tp.expires_secs, 300 - 6);
    assert_eq!(d.stats().conns, 5);
    let di = d
        .dest_info(&key("-t 10.0.0.1:443"), sa("10.1.0.2:443"))
        .unwrap();
    assert_eq!((di.persistconns, di.activeconns), (1, 4));
    // Listing shows it.
    let text = list(
        &d.snapshot(t(10)),
        &ListOptions {
            format: ListFormat::PersistentConn,
            ..ListOptions::default()
        },
    );
    assert!(text.contains("persistent 300 mask 255.255.255.0"), "{text}");
    // ACK on an established conn marks its template ASSURED.
    d.handle_flow(t(11), &tcp("192.0.2.7:1000", v, ACK));
    let conns = d.connections(t(11));
    assert!(conns
        .iter()
        .any(|e| e.caddr.to_string() == "192.0.2.0" && e.state == "ASSURED"));
}

#[test]
fn template_outlives_conns_by_60s_deferral() {
    let mut d = director("-A -u 10.0.0.1:53 -s rr -p 10\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n");
    d.handle_flow(t(0), &udp("192.0.2.7:1000", "10.0.0.1:53"));
    // Template due at 10 s, but the UDP conn (300 s) still references it → deferred by 60 s.
    run_timers(&mut d, t(11));
    assert_eq!(d.table().len(), 2);
    run_timers(&mut d, t(71));
    assert_eq!(d.table().len(), 2, "re-armed with 60 s again");
    run_timers(&mut d, t(301));
    assert_eq!(d.table().len(), 1, "the conn expired at 300 s");
    run_timers(&mut d, t(400));
    assert_eq!(d.table().len(), 0);
    let di = d
        .dest_info(&key("-u 10.0.0.1:53"), sa("10.1.0.1:53"))
        .unwrap();
    assert_eq!((di.persistconns, di.inactconns), (0, 0));
}

#[test]
fn port_zero_service_keeps_client_port() {
    let mut d = director(
        "-A -t 10.0.0.1:0 -s rr -p 60\n\
         -a -t 10.0.0.1:0 -r 10.1.0.1:0 -g\n\
         -a -t 10.0.0.1:0 -r 10.1.0.2:0 -g\n",
    );
    let a = dest_of(d.handle_flow(t(1), &tcp("192.0.2.7:1000", "10.0.0.1:443", SYN)));
    assert_eq!(
        a,
        sa("10.1.0.2:443"),
        "the connection keeps the client's port"
    );
    // Another port from the same client shares the template (vport 0).
    let b = dest_of(d.handle_flow(t(2), &tcp("192.0.2.7:1001", "10.0.0.1:22", SYN)));
    assert_eq!(b, sa("10.1.0.2:22"));
    let tpl: Vec<_> = d
        .connections(t(2))
        .into_iter()
        .filter(|e| e.cport == 0)
        .collect();
    assert_eq!(tpl.len(), 1);
    assert_eq!(
        (tpl[0].vport, tpl[0].dport, tpl[0].protocol),
        (0, 0, Protocol::Tcp)
    );
    // A UDP packet does not match a TCP service.
    assert_eq!(
        d.handle_flow(t(3), &udp("192.0.2.7:1000", "10.0.0.1:443")),
        FlowVerdict::NotOurs
    );
}

#[test]
fn exact_service_wins_over_port_zero_and_fwmark_wins_over_both() {
    let mut d = director(
        "-A -t 10.0.0.1:0 -s rr -p\n-a -t 10.0.0.1:0 -r 10.1.0.1:0\n\
         -A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.2.0.1:80\n\
         -A -f 7 -s rr\n-a -f 7 -r 10.3.0.1:0 -m\n",
    );
    assert_eq!(
        dest_of(d.handle_flow(t(1), &tcp("192.0.2.7:1000", "10.0.0.1:80", SYN))),
        sa("10.2.0.1:80")
    );
    assert_eq!(
        dest_of(d.handle_flow(t(1), &tcp("192.0.2.7:1001", "10.0.0.1:81", SYN))),
        sa("10.1.0.1:81")
    );
    let mut p = tcp("192.0.2.7:1002", "10.0.0.1:80", SYN);
    p.fwmark = 7;
    assert_eq!(dest_of(d.handle_flow(t(1), &p)), sa("10.3.0.1:80"));
    // A mark with no service falls through to the address lookup.
    p.fwmark = 8;
    p.src = sa("192.0.2.7:1003");
    assert_eq!(dest_of(d.handle_flow(t(1), &p)), sa("10.2.0.1:80"));
}

#[test]
fn fwmark_persistence_uses_protocol_ip_templates() {
    let mut d =
        director("-A -f 7 -s rr -p 100\n-a -f 7 -r 10.3.0.1:0 -m\n-a -f 7 -r 10.3.0.2:0 -m\n");
    let mut p = tcp("192.0.2.7:1000", "10.0.0.1:80", SYN);
    p.fwmark = 7;
    let a = dest_of(d.handle_flow(t(1), &p));
    // The same client on another VIP, port and protocol: same real server.
    let mut q = udp("192.0.2.7:5353", "10.0.0.2:53");
    q.fwmark = 7;
    let b = dest_of(d.handle_flow(t(2), &q));
    assert_eq!(a.ip(), b.ip());
    assert_eq!((a.port(), b.port()), (80, 53));
    let conns = d.connections(t(2));
    let tpl: Vec<_> = conns
        .iter()
        .filter(|e| e.protocol == Protocol::Ip)
        .collect();
    assert_eq!(tpl.len(), 1);
    assert_eq!(tpl[0].vaddr.to_string(), "0.0.0.7");
    assert_eq!((tpl[0].vport, tpl[0].cport, tpl[0].dport), (0, 0, 0));
    let text = list_conns(&conns, false);
    assert!(
        text.contains("IP  01:40  NONE        192.0.2.7:0        0.0.0.7:0          10.3.0."),
        "{text}"
    );
}

#[test]
fn quiesce_keeps_existing_and_persistent_clients() {
    let rules = "-A -t 10.0.0.1:80 -s rr -p 100\n\
                 -a -t 10.0.0.1:80 -r 10.1.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.2:80\n";
    for expire_quiescent in [false, true] {
        let mut s = Sysctls::default();
        s.expire_quiescent_template = expire_quiescent;
        let mut d = director_with(rules, s);
        let v = "10.0.0.1:80";
        let first = dest_of(d.handle_flow(t(1), &tcp("192.0.2.7:1000", v, SYN)));
        assert_eq!(first, sa("10.1.0.2:80"));
        let mut e = DestConfig::new("10.1.0.2".parse().unwrap(), 80);
        e.weight = 0;
        d.apply_command(t(2), &Command::EditDest(key("-t 10.0.0.1:80"), e))
            .unwrap();
        // Existing connection keeps flowing.
        assert_eq!(
            d.handle_flow(t(3), &tcp("192.0.2.7:1000", v, ACK)),
            FlowVerdict::Forward {
                conn: d
                    .conn(Protocol::Tcp, sa("192.0.2.7:1000"), sa(v))
                    .map(|c| c.id),
                dest: first,
                method: Forward::DirectRoute,
                new: false
            }
        );
        // A new connection of the same client follows the template unless
        // expire_quiescent_template.
        let second = dest_of(d.handle_flow(t(4), &tcp("192.0.2.7:1001", v, SYN)));
        if expire_quiescent {
            assert_eq!(second, sa("10.1.0.1:80"));
        } else {
            assert_eq!(second, first);
        }
        // A new client never goes to the quiesced server.
        assert_eq!(
            dest_of(d.handle_flow(t(5), &tcp("198.51.100.1:1000", v, SYN))),
            sa("10.1.0.1:80")
        );
    }
}

#[test]
fn delete_drops_or_expires_and_revives_from_trash() {
    let rules = "-A -u 10.0.0.1:53 -s rr\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.2:53\n";
    let svc = key("-u 10.0.0.1:53");
    let del = Command::DeleteDest {
        service: svc,
        addr: "10.1.0.2".parse().unwrap(),
        port: 53,
    };
    // expire_nodest_conn = 0: dropped until the conn times out.
    let mut d = director(rules);
    let c = "192.0.2.7:1000";
    assert_eq!(
        dest_of(d.handle_flow(t(1), &udp(c, "10.0.0.1:53"))),
        sa("10.1.0.2:53")
    );
    d.apply_command(t(2), &del).unwrap();
    assert_eq!(d.trash_len(), 1);
    assert_eq!(
        d.handle_flow(t(3), &udp(c, "10.0.0.1:53")),
        FlowVerdict::Drop(DropReason::DestUnavailable)
    );
    assert_eq!(d.flow_counters().drops(DropReason::DestUnavailable), 1);
    // Not counted: the dest is not AVAILABLE.
    assert_eq!(d.stats().inpkts, 1);
    let tr = d.trashed_dest_info(&svc, sa("10.1.0.2:53")).unwrap();
    assert_eq!(tr.inactconns, 1);
    // Re-adding revives it with counters and stats.
    d.apply_command(
        t(4),
        &Command::AddDest(svc, DestConfig::new("10.1.0.2".parse().unwrap(), 53)),
    )
    .unwrap();
    assert_eq!(d.trash_len(), 0);
    let di = d.dest_info(&svc, sa("10.1.0.2:53")).unwrap();
    assert_eq!(di.inactconns, 1);
    assert_eq!(
        d.dest_stats(&svc, sa("10.1.0.2:53")).unwrap().read().conns,
        1
    );
    // and the old conn works again
    assert_eq!(
        dest_of(d.handle_flow(t(5), &udp(c, "10.0.0.1:53"))),
        sa("10.1.0.2:53")
    );

    // expire_nodest_conn = 1: deleting flushes the conn; the next datagram is rescheduled.
    let mut s = Sysctls::default();
    s.expire_nodest_conn = true;
    let mut d = director_with(rules, s);
    assert_eq!(
        dest_of(d.handle_flow(t(1), &udp(c, "10.0.0.1:53"))),
        sa("10.1.0.2:53")
    );
    d.apply_command(t(2), &del).unwrap();
    assert_eq!(d.table().len(), 0);
    let v = d.handle_flow(t(3), &udp(c, "10.0.0.1:53"));
    assert_eq!(dest_of(v), sa("10.1.0.1:53"));
    assert!(is_new(v));
    // The trashed dest has no references: freed by the trash timer after 60 + 120 s.
    assert_eq!(d.trash_len(), 1);
    run_timers(&mut d, t(100));
    assert_eq!(d.trash_len(), 1);
    run_timers(&mut d, t(200));
    assert_eq!(d.trash_len(), 0);
}

#[test]
fn expire_nodest_conn_on_packet_of_deleted_dest() {
    // Without the flush (the conn is created after the delete would have flushed): a TCP
    // conn of a trashed dest with expire_nodest_conn is expired on its next packet; a non-SYN
    // is then not schedulable and goes to the local stack.
    let rules = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.2:80\n";
    let mut d = director(rules);
    let (c, v) = ("192.0.2.7:1000", "10.0.0.1:80");
    d.handle_flow(t(1), &tcp(c, v, SYN));
    d.apply_command(
        t(2),
        &Command::DeleteDest {
            service: key("-t 10.0.0.1:80"),
            addr: "10.1.0.2".parse().unwrap(),
            port: 80,
        },
    )
    .unwrap();
    let mut s = Sysctls::default();
    s.expire_nodest_conn = true;
    d.set_sysctls(s);
    assert_eq!(d.handle_flow(t(3), &tcp(c, v, ACK)), FlowVerdict::NotOurs);
    assert!(d.conn(Protocol::Tcp, sa(c), sa(v)).is_none());
    let tr = d
        .trashed_dest_info(&key("-t 10.0.0.1:80"), sa("10.1.0.2:80"))
        .unwrap();
    assert_eq!((tr.activeconns, tr.inactconns), (0, 0));
    assert_eq!(d.flow_counters().rescheduled, 1);
}

#[test]
fn conn_reuse_mode() {
    let rules = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m\n";
    let (c, v) = ("192.0.2.7:1000", "10.0.0.1:80");
    for mode in [0u8, 1] {
        let mut s = Sysctls::default();
        s.conn_reuse_mode = mode;
        let mut d = director_with(rules, s);
        let first = dest_of(d.handle_flow(t(1), &tcp(c, v, SYN)));
        let rs = format!("{first}");
        d.handle_flow(t(1), &reply(&rs, c, SYNACK));
        d.handle_flow(t(1), &tcp(c, v, ACK));
        d.handle_flow(t(2), &tcp(c, v, FINACK));
        d.handle_flow(t(2), &reply(&rs, c, FINACK));
        assert_eq!(
            d.conn(Protocol::Tcp, sa(c), sa(v)).unwrap().state,
            "TIME_WAIT"
        );
        let again = d.handle_flow(t(3), &tcp(c, v, SYN));
        if mode == 0 {
            assert!(!is_new(again));
            assert_eq!(dest_of(again), first);
            assert_eq!(
                d.conn(Protocol::Tcp, sa(c), sa(v)).unwrap().state,
                "SYN_RECV"
            );
        } else {
            assert!(is_new(again));
            assert_ne!(dest_of(again), first, "rr moved on");
            assert_eq!(d.flow_counters().rescheduled, 1);
        }
        assert_eq!(d.table().len(), 1);
    }
    // Mode 2 also reuses FIN_WAIT conns of DR real servers (NOOUTPUT).
    let dr = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.2:80\n";
    for mode in [1u8, 2] {
        let mut s = Sysctls::default();
        s.conn_reuse_mode = mode;
        let mut d = director_with(dr, s);
        d.handle_flow(t(1), &tcp(c, v, SYN));
        d.handle_flow(t(1), &tcp(c, v, ACK));
        d.handle_flow(t(2), &tcp(c, v, FINACK));
        assert_eq!(
            d.conn(Protocol::Tcp, sa(c), sa(v)).unwrap().state,
            "FIN_WAIT"
        );
        assert_eq!(is_new(d.handle_flow(t(3), &tcp(c, v, SYN))), mode == 2);
    }
}

#[test]
fn expire_nodest_conn_reschedules_syn_on_quiesced_dest() {
    let rules = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.2:80\n";
    let mut s = Sysctls::default();
    s.expire_nodest_conn = true;
    let mut d = director_with(rules, s);
    let (c, v) = ("192.0.2.7:1000", "10.0.0.1:80");
    assert_eq!(
        dest_of(d.handle_flow(t(1), &tcp(c, v, SYN))),
        sa("10.1.0.2:80")
    );
    d.handle_flow(t(1), &tcp(c, v, ACK));
    let mut e = DestConfig::new("10.1.0.2".parse().unwrap(), 80);
    e.weight = 0;
    d.apply_command(t(2), &Command::EditDest(key("-t 10.0.0.1:80"), e))
        .unwrap();
    // ACK keeps going to the quiesced server; a SYN is rescheduled.
    assert_eq!(
        dest_of(d.handle_flow(t(3), &tcp(c, v, ACK))),
        sa("10.1.0.2:80")
    );
    let v2 = d.handle_flow(t(4), &tcp(c, v, SYN));
    assert!(is_new(v2));
    assert_eq!(dest_of(v2), sa("10.1.0.1:80"));
}

#[test]
fn one_packet_scheduling_counts_per_datagram() {
    let mut d = director(
        "-A -u 10.0.0.1:53 -s rr -o\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.2:53\n",
    );
    let got: Vec<SocketAddr> = (0..4)
        .map(|i| {
            let v = d.handle_flow(t(1 + i), &udp("192.0.2.7:1000", "10.0.0.1:53"));
            assert!(matches!(
                v,
                FlowVerdict::Forward {
                    conn: None,
                    new: true,
                    ..
                }
            ));
            dest_of(v)
        })
        .collect();
    assert_eq!(got[0], got[2]);
    assert_eq!(got[1], got[3]);
    assert_ne!(got[0], got[1]);
    assert_eq!(d.table().len(), 0, "never inserted");
    let svc = key("-u 10.0.0.1:53");
    assert_eq!(d.service_stats(&svc).unwrap().read().conns, 4);
    assert_eq!(d.service_stats(&svc).unwrap().read().inpkts, 4);
    for a in ["10.1.0.1:53", "10.1.0.2:53"] {
        let di = d.dest_info(&svc, sa(a)).unwrap();
        assert_eq!(di.inactconns, 0);
        assert_eq!(d.dest_stats(&svc, sa(a)).unwrap().read().conns, 2);
    }
    // With persistence, the template is kept and the conns still are not.
    let mut d = director("-A -u 10.0.0.1:53 -s rr -o -p 30\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.2:53\n");
    let a = dest_of(d.handle_flow(t(1), &udp("192.0.2.7:1000", "10.0.0.1:53")));
    let b = dest_of(d.handle_flow(t(2), &udp("192.0.2.7:1001", "10.0.0.1:53")));
    assert_eq!(a, b);
    assert_eq!(d.table().len(), 1);
    assert_eq!(d.connections(t(2))[0].expires_secs, 30, "re-armed at t = 2");
}

#[test]
fn thresholds_set_and_clear_overload() {
    let mut d = director(
        "-A -t 10.0.0.1:80 -s fo\n-a -t 10.0.0.1:80 -r 10.1.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -w 100\n",
    );
    // fo sends everything to the heaviest server that is not OVERLOADed; give it -x 4.
    let svc = key("-t 10.0.0.1:80");
    let mut e = DestConfig::new("10.1.0.2".parse().unwrap(), 80);
    e.weight = 100;
    e.u_threshold = 4;
    d.apply_command(t(0), &Command::EditDest(svc, e)).unwrap();
    for i in 0..4 {
        let v = d.handle_flow(
            t(1),
            &tcp(&format!("192.0.2.7:{}", 1000 + i), "10.0.0.1:80", SYN),
        );
        assert_eq!(dest_of(v), sa("10.1.0.2:80"), "conn {i}");
    }
    assert!(d
        .dest_info(&svc, sa("10.1.0.2:80"))
        .unwrap()
        .is_overloaded());
    // Overloaded: the next one goes to the small server.
    let v = d.handle_flow(t(1), &tcp("192.0.2.7:2000", "10.0.0.1:80", SYN));
    assert_eq!(dest_of(v), sa("10.1.0.1:80"));
    // RST the first connections: they stay counted until they expire (CLOSE, 10 s).
    for i in 0..2 {
        let c = format!("192.0.2.7:{}", 1000 + i);
        d.handle_flow(t(2), &tcp(&c, "10.0.0.1:80", ACK));
        d.handle_flow(t(2), &tcp(&c, "10.0.0.1:80", RST));
    }
    run_timers(&mut d, t(13));
    // total 2: 2 * 4 < 4 * 3 → cleared.
    let di = d.dest_info(&svc, sa("10.1.0.2:80")).unwrap();
    assert_eq!(di.activeconns + di.inactconns, 2);
    assert!(!di.is_overloaded());
    // Edit rule: raising the threshold clears OVERLOAD.
    for i in 0..2 {
        d.handle_flow(
            t(14),
            &tcp(&format!("192.0.2.8:{}", 1000 + i), "10.0.0.1:80", SYN),
        );
    }
    assert!(d
        .dest_info(&svc, sa("10.1.0.2:80"))
        .unwrap()
        .is_overloaded());
    e.u_threshold = 10;
    d.apply_command(t(15), &Command::EditDest(svc, e)).unwrap();
    assert!(!d
        .dest_info(&svc, sa("10.1.0.2:80"))
        .unwrap()
        .is_overloaded());
}

#[test]
fn rate_estimator_through_the_director() {
    let mut d = director("-A -u 10.0.0.1:53 -s rr -o\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n");
    // 100 datagrams (one-packet conns) per second, evenly, for 8 s.
    let mut cps = Vec::new();
    let mut now = Instant::ZERO;
    for i in 0..800u64 {
        now = Instant::from_millis(10 * (i + 1) - 5);
        run_timers(&mut d, now);
        d.handle_flow(now, &udp("192.0.2.7:1000", "10.0.0.1:53"));
        if (i + 1) % 200 == 0 {
            run_timers(&mut d, Instant::from_secs((i + 1) / 100));
            let snap = d.snapshot(now);
            cps.push(snap.services[0].rates.cps);
        }
    }
    let _ = now;
    assert_eq!(cps, [25, 44, 58, 68]);
    assert_eq!(d.total_stats().rates().cps, 68);
    // -Z resets the estimator and the counters.
    d.apply_command(t(8), &Command::Zero(None)).unwrap();
    let snap = d.snapshot(t(8));
    assert_eq!(snap.services[0].rates.cps, 0);
    assert_eq!(snap.services[0].stats.conns, 0);
    assert_eq!(snap.services[0].dests[0].stats.inpkts, 0);
}

#[test]
fn errors_are_the_rule_sets() {
    let mut d = director("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1:80\n");
    let mut mirror = d.rules().clone();
    let cmds = [
        Command::AddService(lvs_core::rules::ServiceConfig::new(key("-t 10.0.0.1:80"))),
        Command::DeleteService(key("-t 10.0.0.9:80")),
        Command::AddDest(
            key("-t 10.0.0.1:80"),
            DestConfig::new("10.1.0.1".parse().unwrap(), 80),
        ),
        Command::DeleteDest {
            service: key("-t 10.0.0.1:80"),
            addr: "10.1.0.9".parse().unwrap(),
            port: 80,
        },
        Command::Zero(Some(key("-u 10.0.0.1:80"))),
    ];
    for c in &cmds {
        let a = d.apply_command(t(1), c).unwrap_err();
        let b = mirror.apply(c).unwrap_err();
        assert_eq!(a, b);
        assert_eq!(a.errno(), b.errno());
    }
    assert_eq!(d.rules(), &mirror);
}

#[test]
fn apply_rules_diff_keeps_unchanged_state() {
    let mut d = director(
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m\n\
         -A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n",
    );
    let v = "10.0.0.1:80";
    let a = dest_of(d.handle_flow(t(1), &tcp("192.0.2.7:1000", v, SYN)));
    assert_eq!(a, sa("10.1.0.2:80"));
    // New rules: 10.1.0.1 edited (weight 5), 10.1.0.3 added, UDP service removed, SCTP added.
    let new = RuleSet::from_text(
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 5\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m\n\
         -a -t 10.0.0.1:80 -r 10.1.0.3:80 -m\n-A --sctp-service 10.0.0.1:9 -s rr\n",
    )
    .unwrap();
    let diff = d.apply_rules(t(2), &new).unwrap();
    assert_eq!(diff.services_removed, [key("-u 10.0.0.1:53")]);
    assert_eq!(diff.services_added, [key("--sctp-service 10.0.0.1:9")]);
    assert!(diff.services_edited.is_empty());
    assert_eq!(
        diff.dests_added,
        [(key("-t 10.0.0.1:80"), sa("10.1.0.3:80"))]
    );
    assert_eq!(
        diff.dests_edited,
        [(key("-t 10.0.0.1:80"), sa("10.1.0.1:80"))]
    );
    assert!(!diff.timeouts_changed);
    // Connection and counters survived; the rr position too (next is 10.1.0.1 after
    // 10.1.0.2 in the old order, but the new head 10.1.0.3 was inserted: rr continues from
    // its position in the list).
    assert_eq!(
        d.dest_info(&key("-t 10.0.0.1:80"), sa("10.1.0.2:80"))
            .unwrap()
            .activeconns,
        1
    );
    assert!(!is_new(d.handle_flow(t(3), &tcp("192.0.2.7:1000", v, ACK))));
    // Applying the same rules again is a no-op.
    assert!(d.apply_rules(t(4), &new).unwrap().is_empty());
    assert_eq!(d.rules().save(), {
        let mut r = RuleSet::new();
        r.apply_text(&d.rules().save()).unwrap();
        r.save()
    });
    // A bad rule set changes nothing.
    let before = d.rules().clone();
    let mut bad = new.clone();
    bad.apply_text("-A -t 10.0.0.2:80 -s mh\n").unwrap();
    for i in 0..5000u32 {
        let ip = format!("10.{}.{}.{}", 100 + i / 62500, (i / 250) % 250, i % 250 + 1);
        let _ = bad.apply(&Command::AddDest(
            key("-t 10.0.0.2:80"),
            DestConfig::new(ip.parse().unwrap(), 80),
        ));
    }
    assert_eq!(
        d.apply_rules(t(5), &bad).unwrap_err(),
        lvs_core::rules::RuleError::SchedulerFull(lvs_core::sched::SchedKind::Mh)
    );
    assert_eq!(d.rules(), &before);
}

#[test]
fn edit_service_rebinds_scheduler() {
    let mut d = director(
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.2:80\n",
    );
    let v = "10.0.0.1:80";
    for i in 0..3 {
        d.handle_flow(t(1), &tcp(&format!("192.0.2.7:{}", 1000 + i), v, SYN));
    }
    // 10.1.0.2 has 2 active, 10.1.0.1 has 1. Switch to lc: the least loaded wins every time
    // until they are level.
    let mut cfg = d.rules().service(&key("-t 10.0.0.1:80")).unwrap().0.clone();
    cfg.scheduler = lvs_core::sched::SchedKind::Lc;
    d.apply_command(t(2), &Command::EditService(cfg)).unwrap();
    assert_eq!(
        dest_of(d.handle_flow(t(3), &tcp("192.0.2.7:2000", v, SYN))),
        sa("10.1.0.1:80")
    );
    let text = list(&d.snapshot(t(3)), &ListOptions::default());
    assert!(text.contains("TCP  10.0.0.1:80 lc"), "{text}");
    assert!(
        text.contains("-> 10.1.0.1:80                  Route   1      2          0"),
        "{text}"
    );
}

#[test]
fn non_persistent_port_mismatch_leaves_and_ftp_leave() {
    let mut d = director("-A -t 10.0.0.1:21 -s rr\n-a -t 10.0.0.1:21 -r 10.1.0.1:21 -m\n");
    // FTP service, data port: the FTP service is found, the port differs, so it is not
    // scheduled; `ip_vs_schedule` leaves it to `ip_vs_leave` (`ignored` 0), whose FTP rule
    // passes it to the local stack (spec §6.1 step 2), with or without a real server.
    assert_eq!(
        d.handle_flow(t(1), &tcp("192.0.2.7:1000", "10.0.0.1:2000", SYN)),
        FlowVerdict::NotOurs
    );
    assert_eq!(
        d.handle_flow(t(1), &tcp("192.0.2.7:1001", "10.0.0.1:20", SYN)),
        FlowVerdict::NotOurs
    );
    assert_eq!(d.table().len(), 0);
    d.apply_command(
        t(1),
        &Command::DeleteDest {
            service: key("-t 10.0.0.1:21"),
            addr: "10.1.0.1".parse().unwrap(),
            port: 21,
        },
    )
    .unwrap();
    assert_eq!(
        d.handle_flow(t(1), &tcp("192.0.2.7:1000", "10.0.0.1:2000", SYN)),
        FlowVerdict::NotOurs
    );
    // Privileged non-FTP port: not ours.
    assert_eq!(
        d.handle_flow(t(1), &tcp("192.0.2.7:1000", "10.0.0.1:25", SYN)),
        FlowVerdict::NotOurs
    );
    // FTP port itself, no real server: ICMP.
    assert_eq!(
        d.handle_flow(t(1), &tcp("192.0.2.7:1000", "10.0.0.1:21", SYN)),
        FlowVerdict::NoDestination
    );
}

#[test]
fn nat_icmp_send_for_unknown_replies() {
    let mut s = Sysctls::default();
    s.nat_icmp_send = true;
    let mut d = director_with(
        "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m\n",
        s,
    );
    assert_eq!(
        d.handle_flow(t(1), &reply("10.1.0.1:8080", "192.0.2.7:1000", ACK)),
        FlowVerdict::NoDestination
    );
    assert_eq!(
        d.handle_flow(t(1), &reply("10.1.0.1:8080", "192.0.2.7:1000", RST)),
        FlowVerdict::NotOurs
    );
    assert_eq!(
        d.handle_flow(t(1), &reply("10.1.0.9:8080", "192.0.2.7:1000", ACK)),
        FlowVerdict::NotOurs
    );
}

#[test]
fn listing_counts_and_connection_list() {
    let mut d = director("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n");
    d.handle_flow(t(1), &tcp("192.0.2.7:1000", "10.0.0.1:80", SYN));
    d.handle_flow(t(1), &tcp("192.0.2.7:1001", "10.0.0.1:80", SYN));
    d.handle_flow(t(1), &tcp("192.0.2.7:1001", "10.0.0.1:80", ACK));
    // SYN_RECV + RST stays SYN_RECV (the table); ESTABLISHED + RST → CLOSE.
    d.handle_flow(t(1), &tcp("192.0.2.7:1001", "10.0.0.1:80", RST));
    let text = list(&d.snapshot(t(1)), &ListOptions::default());
    assert!(
        text.contains("-> 10.1.0.1:80                  Masq    1      1          1"),
        "{text}"
    );
    let stats = list(
        &d.snapshot(t(1)),
        &ListOptions {
            format: ListFormat::Stats,
            ..ListOptions::default()
        },
    );
    assert!(
        stats.contains(
            "  -> 10.1.0.1:80                         2        4        0      240        0"
        ),
        "{stats}"
    );
    let conns = list_conns(&d.connections(t(1)), false);
    assert!(
        conns.contains("TCP 01:00  SYN_RECV    192.0.2.7:1000     10.0.0.1:80        10.1.0.1:80"),
        "{conns}"
    );
    assert!(
        conns.contains("TCP 00:10  CLOSE       192.0.2.7:1001"),
        "{conns}"
    );
}

#[test]
fn table_full_drops_new_flows() {
    let mut cfg = DirectorConfig::new(2, HashKey::from_u128(1));
    cfg.sysctls = Sysctls::default();
    let mut d = Director::new(cfg);
    d.apply_rules(
        Instant::ZERO,
        &RuleSet::from_text("-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n").unwrap(),
    )
    .unwrap();
    for i in 0..2 {
        assert!(is_new(d.handle_flow(
            t(1),
            &udp(&format!("192.0.2.7:{}", 1000 + i), "10.0.0.1:53")
        )));
    }
    assert_eq!(
        d.handle_flow(t(1), &udp("192.0.2.7:2000", "10.0.0.1:53")),
        FlowVerdict::Drop(DropReason::TableFull)
    );
    assert_eq!(d.stats().conns, 2);
}

mod packets {
    use super::*;
    use lvs_core::director::{PacketDrop, PacketVerdict};
    use lvs_core::wire::classify;

    fn tcp_bytes(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        syn: bool,
        ack: bool,
        ttl: u8,
    ) -> Vec<u8> {
        let mut b = etherparse::PacketBuilder::ipv4(src, dst, ttl).tcp(sport, dport, 1000, 64240);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(1);
        }
        let mut v = Vec::new();
        b.write(&mut v, b"hello").unwrap();
        v
    }

    /// Runs `pkt` through the director with 64 bytes of headroom; returns the verdict and the
    /// bytes it names (the forwarded packet, or the ICMP error built).
    fn run(d: &mut Director, now: Instant, pkt: &mut Vec<u8>) -> (PacketVerdict, Vec<u8>) {
        let mut buf = vec![0u8; 64];
        buf.extend_from_slice(pkt);
        let mut out = [0u8; 1280];
        let v = d.handle_packet(now, &mut buf, 64, &mut out);
        let bytes = named_bytes(v, &buf, &out);
        *pkt = buf[64..].to_vec();
        (v, bytes)
    }

    #[test]
    fn nat_round_trip_in_place() {
        let mut d = director("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m\n");
        let mut syn = tcp_bytes([192, 0, 2, 7], 40000, [10, 0, 0, 1], 80, true, false, 64);
        let (v, _) = run(&mut d, t(1), &mut syn);
        assert!(
            matches!(
                v,
                PacketVerdict::Forward {
                    new: true,
                    method: Forward::Masq,
                    reply: false,
                    ..
                }
            ),
            "{v:?}"
        );
        let c = classify(&syn).unwrap();
        assert_eq!(
            (c.dst, c.dst_port, c.ttl),
            ("10.1.0.1".parse().unwrap(), 8080, 63)
        );
        assert_eq!((c.src, c.src_port), ("192.0.2.7".parse().unwrap(), 40000));
        // The real server answers: rewritten to come from the VIP.
        let mut synack = tcp_bytes([10, 1, 0, 1], 8080, [192, 0, 2, 7], 40000, true, true, 64);
        let (v, _) = run(&mut d, t(1), &mut synack);
        assert!(
            matches!(v, PacketVerdict::Forward { reply: true, .. }),
            "{v:?}"
        );
        let c = classify(&synack).unwrap();
        assert_eq!(
            (c.src, c.src_port, c.ttl),
            ("10.0.0.1".parse().unwrap(), 80, 63)
        );
        // checksums are valid after the rewrite
        let parsed = etherparse::SlicedPacket::from_ip(&synack).unwrap();
        let Some(etherparse::TransportSlice::Tcp(tcp)) = parsed.transport else {
            panic!()
        };
        let ip = match parsed.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => ip,
            _ => panic!(),
        };
        let expect = tcp
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
            .unwrap();
        assert_eq!(tcp.checksum(), expect);
        assert_eq!(
            d.conn(Protocol::Tcp, sa("192.0.2.7:40000"), sa("10.0.0.1:80"))
                .unwrap()
                .state,
            "SYN_RECV"
        );
        // TTL 1: state updated, Time Exceeded, bytes unchanged.
        let mut ack = tcp_bytes([192, 0, 2, 7], 40000, [10, 0, 0, 1], 80, false, true, 1);
        let before = ack.clone();
        let (v, _) = run(&mut d, t(2), &mut ack);
        assert!(
            matches!(
                v,
                PacketVerdict::Reply {
                    reason: lvs_core::xmit::DropReason::TtlExpired,
                    ..
                }
            ),
            "{v:?}"
        );
        assert_eq!(ack, before);
        assert_eq!(
            d.conn(Protocol::Tcp, sa("192.0.2.7:40000"), sa("10.0.0.1:80"))
                .unwrap()
                .state,
            "ESTABLISHED"
        );
        // Garbage and strangers.
        let mut junk = vec![0x45u8, 0, 0];
        assert!(matches!(
            run(&mut d, t(2), &mut junk).0,
            PacketVerdict::Drop(PacketDrop::Malformed(_))
        ));
        let mut other = tcp_bytes([192, 0, 2, 7], 40001, [10, 0, 0, 2], 80, true, false, 64);
        assert_eq!(run(&mut d, t(2), &mut other).0, PacketVerdict::NotOurs);
        let mut empty = tcp_bytes([192, 0, 2, 7], 40001, [10, 0, 0, 1], 80, false, true, 64);
        assert_eq!(run(&mut d, t(2), &mut empty).0, PacketVerdict::NotOurs);
    }

    #[test]
    fn dr_is_not_rewritten_and_no_destination_is_unreachable() {
        let mut d = director(
            "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80\n-A -t 10.0.0.1:81\n",
        );
        let mut syn = tcp_bytes([192, 0, 2, 7], 40000, [10, 0, 0, 1], 80, true, false, 64);
        let before = syn.clone();
        let (v, fwd) = run(&mut d, t(1), &mut syn);
        assert!(matches!(
            v,
            PacketVerdict::Forward {
                method: Forward::DirectRoute,
                ..
            }
        ));
        // Only the TTL (and the IPv4 header checksum) changed.
        assert_eq!(fwd[8], before[8] - 1);
        assert_eq!(fwd[12..], before[12..]);
        let mut syn81 = tcp_bytes([192, 0, 2, 7], 40000, [10, 0, 0, 1], 81, true, false, 64);
        assert!(matches!(
            run(&mut d, t(1), &mut syn81).0,
            PacketVerdict::Reply {
                reason: lvs_core::xmit::DropReason::NoDestination,
                ..
            }
        ));
    }
}

#[test]
fn handle_timeout_is_bounded() {
    let mut cfg = DirectorConfig::new(1024, HashKey::from_u128(3));
    cfg.expire_limit = 10;
    let mut d = Director::new(cfg);
    d.apply_rules(
        Instant::ZERO,
        &RuleSet::from_text("-A -u 10.0.0.1:53 -s rr\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n").unwrap(),
    )
    .unwrap();
    for i in 0..100 {
        d.handle_flow(
            t(1),
            &udp(&format!("192.0.2.7:{}", 1000 + i), "10.0.0.1:53"),
        );
    }
    assert_eq!(d.table().len(), 100);
    let now = t(1000);
    let mut calls = 0;
    while d.poll_timeout().is_some_and(|x| x <= now) {
        let before = d.table().len();
        d.handle_timeout(now);
        assert!(
            before - d.table().len() <= 10,
            "more than the limit in one call"
        );
        calls += 1;
    }
    assert!(calls >= 10);
    assert_eq!(d.table().len(), 0);
    assert_eq!(
        d.dest_info(&key("-u 10.0.0.1:53"), sa("10.1.0.1:53"))
            .unwrap()
            .inactconns,
        0
    );
}

#[test]
fn edit_service_in_a_rule_set_is_reported_and_keeps_connections() {
    let mut d = director("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n");
    d.handle_flow(t(1), &tcp("192.0.2.7:1000", "10.0.0.1:80", SYN));
    let new = RuleSet::from_text(
        "-A -t 10.0.0.1:80 -s wlc -p 60\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n--set 100 0 0\n",
    )
    .unwrap();
    let diff = d.apply_rules(t(2), &new).unwrap();
    assert_eq!(diff.services_edited, [key("-t 10.0.0.1:80")]);
    assert!(diff.timeouts_changed);
    assert!(diff.dests_added.is_empty() && diff.dests_removed.is_empty());
    assert_eq!(d.rules(), &new);
    assert!(!is_new(
        d.handle_flow(t(3), &tcp("192.0.2.7:1000", "10.0.0.1:80", ACK))
    ));
    // The new ESTABLISHED timeout (--set 100) applies from the next packet on.
    let info = d
        .conn(Protocol::Tcp, sa("192.0.2.7:1000"), sa("10.0.0.1:80"))
        .unwrap();
    assert_eq!(info.expires, t(103));
    // Now persistent: a new connection creates a template.
    d.handle_flow(t(4), &tcp("192.0.2.7:1001", "10.0.0.1:80", SYN));
    assert_eq!(
        d.connections(t(4)).iter().filter(|e| e.cport == 0).count(),
        1
    );
    // Clear empties the rules and trashes the real server; its conns drop their packets.
    d.apply_command(t(5), &Command::Clear).unwrap();
    assert!(d.rules().is_empty());
    assert_eq!(d.trash_len(), 1);
    assert_eq!(
        d.handle_flow(t(6), &tcp("192.0.2.7:1000", "10.0.0.1:80", ACK)),
        FlowVerdict::Drop(DropReason::DestUnavailable)
    );
}

#[test]
fn source_port_20_is_never_scheduled() {
    let mut d = director("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1:80\n-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n");
    assert_eq!(
        d.handle_flow(t(1), &tcp("192.0.2.7:20", "10.0.0.1:80", SYN)),
        FlowVerdict::NotOurs
    );
    assert_eq!(
        d.handle_flow(t(1), &udp("192.0.2.7:20", "10.0.0.1:53")),
        FlowVerdict::NotOurs
    );
    assert!(is_new(
        d.handle_flow(t(1), &udp("192.0.2.7:21", "10.0.0.1:53"))
    ));
}

/// Spec §2.6: an invalid template is neutralised — re-hashed with vport = dport = 0xffff and
/// cport 0 so that it never matches again — and left to expire on its old timer; `ipvsadm -Lnc`
/// lists it with those ports until then.
#[test]
fn invalid_template_is_neutralised_with_port_0xffff() {
    let mut s = Sysctls::default();
    s.expire_quiescent_template = true;
    let mut d = director_with(
        "-A -t 10.0.0.1:443 -s rr -p 100\n\
         -a -t 10.0.0.1:443 -r 10.1.0.1:8443 -m\n\
         -a -t 10.0.0.1:443 -r 10.1.0.2:8443 -m\n",
        s,
    );
    let v = "10.0.0.1:443";
    let first = dest_of(d.handle_flow(t(1), &tcp("192.0.2.7:1000", v, SYN)));
    assert_eq!(first, sa("10.1.0.2:8443"));
    let mut e = DestConfig::new("10.1.0.2".parse().unwrap(), 8443);
    e.weight = 0;
    e.forward = Forward::Masq;
    d.apply_command(t(2), &Command::EditDest(key("-t 10.0.0.1:443"), e))
        .unwrap();
    // The template of the quiesced server is invalid: a new one goes to the other server.
    let second = dest_of(d.handle_flow(t(3), &tcp("192.0.2.7:1001", v, SYN)));
    assert_eq!(second, sa("10.1.0.1:8443"));
    let mut tpl: Vec<_> = d
        .connections(t(3))
        .into_iter()
        .filter(|e| e.state == "NONE" || e.state == "ASSURED")
        .collect();
    tpl.sort_by_key(|e| e.vport);
    assert_eq!(tpl.len(), 2, "{tpl:?}");
    // The new template: the service port and the real server's port.
    assert_eq!((tpl[0].cport, tpl[0].vport, tpl[0].dport), (0, 443, 8443));
    assert_eq!(
        tpl[0].daddr,
        "10.1.0.1".parse::<core::net::IpAddr>().unwrap()
    );
    // The neutralised one: ports 0xffff, still on its old timer (armed at t = 1 for 100 s).
    assert_eq!(
        (tpl[1].cport, tpl[1].vport, tpl[1].dport),
        (0, 0xffff, 0xffff)
    );
    assert_eq!(
        tpl[1].daddr,
        "10.1.0.2".parse::<core::net::IpAddr>().unwrap()
    );
    assert_eq!(tpl[1].expires_secs, 98);
    let text = list_conns(&d.connections(t(3)), false);
    assert!(
        text.contains(
            "TCP 01:38  NONE        192.0.2.7:0        10.0.0.1:65535     10.1.0.2:65535"
        ),
        "{text}"
    );
}

/// Runs every timer at its own deadline, up to `until` (a driver following `poll_timeout`).
fn step_timers(d: &mut Director, until: Instant) {
    let mut guard = 0;
    while let Some(p) = d.poll_timeout().filter(|&p| p <= until) {
        d.handle_timeout(p);
        guard += 1;
        assert!(guard < 100_000, "timers never settle");
    }
}

/// Spec §2.3 / §2.6: a template whose timer fires while it still controls connections is
/// re-armed 60 s after that expiry — whenever the driver gets round to running the timers,
/// and without drifting from one deferral to the next.
#[test]
fn template_deferral_counts_from_its_expiry() {
    let rules = "-A -t 10.0.0.1:80 -s rr -p 10\n-a -t 10.0.0.1:80 -r 10.1.0.1:80\n";
    let (c, v) = ("192.0.2.7:1000", "10.0.0.1:80");
    // Template due at 10 s, deferred at 10, 70, ..., 850 (the conn is ESTABLISHED until
    // 900 s), freed when it fires at 910 s with nothing left to control.
    let open = |d: &mut Director| {
        d.handle_flow(t(0), &tcp(c, v, SYN));
        d.handle_flow(t(0), &tcp(c, v, ACK));
    };
    let template = |d: &Director, now: Instant| {
        d.connections(now)
            .into_iter()
            .find(|e| e.cport == 0)
            .map(|e| e.expires_secs)
    };

    // A driver running each timer at its deadline.
    let mut d = director(rules);
    open(&mut d);
    step_timers(&mut d, t(75));
    assert_eq!(template(&d, t(75)), Some(55), "deferred at 70 s to 130 s");
    step_timers(&mut d, t(855));
    assert_eq!(template(&d, t(855)), Some(55), "deferred at 850 s to 910 s");
    step_timers(&mut d, t(911));
    assert!(d.table().is_empty(), "{:?}", d.connections(t(911)));

    // A driver that runs the timers only now and then.
    let mut d = director(rules);
    open(&mut d);
    run_timers(&mut d, t(100));
    assert_eq!(template(&d, t(100)), Some(30), "deferred at 70 s to 130 s");
    run_timers(&mut d, t(911));
    assert!(d.table().is_empty(), "{:?}", d.connections(t(911)));
}

/// §2.8 + §6.2: `is_new_conn` tests the SYN bit alone (`th->syn`), so a SYN+RST segment on
/// a TIME_WAIT connection is a reuse candidate: the old entry is expired at once; the packet
/// then is not scheduled (`tcp_conn_schedule` wants `!th->rst`) and goes to the local stack.
#[test]
fn syn_with_rst_on_time_wait_expires_and_is_not_scheduled() {
    let rules = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m\n";
    let (c, v) = ("192.0.2.7:1000", "10.0.0.1:80");
    let mut d = director(rules);
    let first = dest_of(d.handle_flow(t(1), &tcp(c, v, SYN)));
    let rs = format!("{first}");
    d.handle_flow(t(1), &tcp(c, v, ACK));
    d.handle_flow(t(2), &tcp(c, v, FINACK));
    d.handle_flow(t(2), &reply(&rs, c, FINACK));
    assert_eq!(
        d.conn(Protocol::Tcp, sa(c), sa(v)).unwrap().state,
        "TIME_WAIT"
    );
    assert_eq!(
        d.handle_flow(t(3), &tcp(c, v, SYN | RST)),
        FlowVerdict::NotOurs
    );
    assert!(d.conn(Protocol::Tcp, sa(c), sa(v)).is_none());
    assert_eq!(d.flow_counters().rescheduled, 1);
    assert!(d.table().is_empty());
    // On an ESTABLISHED entry it is no reuse candidate: the state machine classifies it
    // "rst" (RST > SYN), ES -> CLOSE, and it goes to the entry's real server.
    let c2 = "192.0.2.7:1001";
    let second = dest_of(d.handle_flow(t(4), &tcp(c2, v, SYN)));
    d.handle_flow(t(4), &tcp(c2, v, ACK));
    let v2 = d.handle_flow(t(5), &tcp(c2, v, SYN | RST));
    assert!(!is_new(v2));
    assert_eq!(dest_of(v2), second);
    let info = d.conn(Protocol::Tcp, sa(c2), sa(v)).unwrap();
    assert_eq!((info.state, info.expires), ("CLOSE", t(15)));
}

/// `-E -s mh` on a service with more real servers than the mh table has slots fails with
/// EINVAL when the kernel binds the scheduler (`ip_vs_mh_reassign`); the service keeps
/// scheduling as before.
#[test]
fn edit_to_mh_with_more_real_servers_than_slots_is_refused() {
    let mut config = DirectorConfig::new(4096, HashKey::from_u128(7));
    config.sched.mh_table_size = 251;
    let mut d = Director::new(config);
    let mut rules = RuleSet::from_text("-A -t 10.0.0.1:80 -s rr\n").unwrap();
    for i in 0..252u32 {
        rules
            .apply(&Command::AddDest(
                key("-t 10.0.0.1:80"),
                DestConfig::new(
                    format!("10.1.{}.{}", i / 200, i % 200 + 1).parse().unwrap(),
                    80,
                ),
            ))
            .unwrap();
    }
    d.apply_rules(t(0), &rules).unwrap();
    let before = d.rules().clone();
    let mut cfg = before.service(&key("-t 10.0.0.1:80")).unwrap().0.clone();
    cfg.scheduler = lvs_core::sched::SchedKind::Mh;
    assert_eq!(
        d.apply_command(t(1), &Command::EditService(cfg))
            .unwrap_err(),
        lvs_core::rules::RuleError::SchedulerFull(lvs_core::sched::SchedKind::Mh)
    );
    assert_eq!(d.rules(), &before);
    let v = "10.0.0.1:80";
    assert!(is_new(d.handle_flow(t(2), &tcp("192.0.2.7:1000", v, SYN))));
    // With one real server fewer it fits.
    d.apply_command(
        t(3),
        &Command::DeleteDest {
            service: key("-t 10.0.0.1:80"),
            addr: "10.1.0.1".parse().unwrap(),
            port: 80,
        },
    )
    .unwrap();
    let mut cfg = before.service(&key("-t 10.0.0.1:80")).unwrap().0.clone();
    cfg.scheduler = lvs_core::sched::SchedKind::Mh;
    d.apply_command(t(4), &Command::EditService(cfg)).unwrap();
    assert!(is_new(d.handle_flow(t(5), &tcp("192.0.2.7:1001", v, SYN))));
}
