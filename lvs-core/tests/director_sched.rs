//! How the director binds, re-binds and feeds its schedulers (spec §1.0, §1.7, §1.8, §2.7):
//! the locality caches' references to deleted real servers, the timer armed when the scheduler
//! is bound, and editing a service without changing its scheduler.

use lvs_core::conn::HashKey;
use lvs_core::director::{Director, DirectorConfig, FlowPacket, FlowVerdict, PacketDir};
use lvs_core::rules::{Command, DestConfig, RuleSet};
use lvs_core::sched::{SchedFlags, SchedKind};
use lvs_core::{Duration, Instant, Protocol};

mod director_support;
use director_support::*;

/// A UDP datagram from `src` to `dst` carrying firewall mark `fwmark`.
fn udp(src: &str, dst: &str, fwmark: u32) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Udp,
        src: sa(src),
        dst: sa(dst),
        fwmark,
        tcp_flags: 0,
        len: 100,
        dir: PacketDir::FromClient,
    }
}

/// Runs the timers minute by minute up to `to`, as a driver polling on time would.
fn run_until(d: &mut Director, from: u64, to: u64) {
    let mut s = from;
    while s <= to {
        run_timers(d, t(s));
        s += 1;
    }
}

/// An lblc entry (an lblcr set member) holds a reference to its real server
/// (`ip_vs_dest_hold`), so a deleted server it names stays in the trash, revivable, until the
/// entry goes; it is not freed after 120 idle seconds, and its identity is not handed to a new
/// server that the stale entry would then send traffic to.
#[test]
fn locality_caches_keep_a_deleted_dest_in_the_trash() {
    for sched in ["lblc", "lblcr"] {
        cache_keeps_a_deleted_dest(sched);
    }
}

fn cache_keeps_a_deleted_dest(sched: &str) {
    let mut d = director(&format!(
        "-A -f 1 -s {sched}\n-a -f 1 -r 10.1.0.1:0 -m\n-a -f 1 -r 10.1.0.2:0 -m\n"
    ));
    let svc = key("-f 1");
    let x = "198.51.100.1:53";
    // List [B = 10.1.0.2, A = 10.1.0.1]: no entry for x, wlc picks B.
    assert_eq!(
        dest_of(d.handle_flow(t(1), &udp("192.0.2.7:1000", x, 1))).ip(),
        sa("10.1.0.2:0").ip()
    );
    d.apply_command(
        t(2),
        &Command::DeleteDest {
            service: svc,
            addr: "10.1.0.2".parse().unwrap(),
            port: 0,
        },
    )
    .unwrap();
    // The datagram's connection expires at 301; the trash would free an unreferenced B two
    // minutes after it became idle.
    run_until(&mut d, 2, 700);
    assert_eq!(d.trash_len(), 1, "{sched}: the cache still refers to B");
    // A new server C; a datagram for another address makes C busier than A.
    d.apply_command(
        t(700),
        &Command::AddDest(svc, DestConfig::new("10.1.0.3".parse().unwrap(), 0)),
    )
    .unwrap();
    assert_eq!(
        dest_of(d.handle_flow(t(701), &udp("192.0.2.8:1000", "198.51.100.2:53", 1))).ip(),
        sa("10.1.0.3:0").ip()
    );
    // x's entry names B, which is not AVAILABLE: rescheduled with wlc over [C (1 conn), A].
    assert_eq!(
        dest_of(d.handle_flow(t(702), &udp("192.0.2.9:1000", x, 1))).ip(),
        sa("10.1.0.1:0").ip(),
        "{sched}"
    );
}

/// The kernel arms the lblc / lblcr timer when the scheduler is bound to the service
/// (`init_service`: now + 60 s), so its ticks, and the full expiration check every 30th of
/// them, run on that grid whenever the first packet arrives.
#[test]
fn locality_timer_runs_from_when_the_scheduler_is_bound() {
    let mut cfg = DirectorConfig::new(4096, HashKey::from_u128(0xfeed));
    cfg.sched.lblc_expiration = Duration::from_secs(60);
    let mut d = Director::new(cfg);
    // Created at 0. List [B, A]; B is OVERLOAD while it has a connection (-x 1).
    d.apply_rules(
        Instant::ZERO,
        &RuleSet::from_text(
            "-A -f 1 -s lblc\n-a -f 1 -r 10.1.0.1:0 -m\n-a -f 1 -r 10.1.0.2:0 -m -x 1\n",
        )
        .unwrap(),
    )
    .unwrap();
    let x = "198.51.100.1:53";
    // The first event at 30: x is cached to B, whose connection is kept alive below.
    run_timers(&mut d, t(30));
    assert_eq!(
        dest_of(d.handle_flow(t(30), &udp("192.0.2.7:1000", x, 1))).ip(),
        sa("10.1.0.2:0").ip()
    );
    for s in 31..=1801 {
        run_timers(&mut d, t(s));
        if s % 200 == 30 {
            assert_eq!(
                dest_of(d.handle_flow(t(s), &udp("192.0.2.7:1000", x, 1))).ip(),
                sa("10.1.0.2:0").ip()
            );
        }
    }
    // The 30th tick (1800) was a full check: x, idle since 30, expired (lblc_expiration 60),
    // so a new client is scheduled afresh and wlc skips the OVERLOAD B. With ticks counted from
    // the first event (30) the full check would come at 1830 and the cached B (whose OVERLOAD
    // flag a cache hit does not test) would still be used.
    assert_eq!(
        dest_of(d.handle_flow(t(1801), &udp("192.0.2.8:1000", x, 1))).ip(),
        sa("10.1.0.1:0").ip()
    );
}

/// Binding another scheduler with `-E` arms its timer at that moment too.
#[test]
fn locality_timer_of_a_scheduler_bound_by_edit() {
    let mut cfg = DirectorConfig::new(4096, HashKey::from_u128(0xfeed));
    cfg.sysctls.run_estimation = false;
    let mut d = Director::new(cfg);
    d.apply_rules(
        Instant::ZERO,
        &RuleSet::from_text("-A -f 1 -s rr\n-a -f 1 -r 10.1.0.1:0 -m\n").unwrap(),
    )
    .unwrap();
    assert_eq!(d.poll_timeout(), None);
    let mut svc = d.rules().service(&key("-f 1")).unwrap().0.clone();
    svc.scheduler = SchedKind::Lblcr;
    d.apply_command(t(100), &Command::EditService(svc)).unwrap();
    assert_eq!(d.poll_timeout(), Some(t(160)));
}

/// `ip_vs_edit_service` rebinds only when the scheduler changes; `-b` flags are read from the
/// service at each decision. Editing only the flags keeps the scheduler's state (here rr's
/// cursor).
#[test]
fn editing_only_the_flags_keeps_the_scheduler_state() {
    let mut d = director(
        "-A -u 10.0.0.1:53 -s rr\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n\
         -a -u 10.0.0.1:53 -r 10.1.0.2:53\n-a -u 10.0.0.1:53 -r 10.1.0.3:53\n",
    );
    let vip = "10.0.0.1:53";
    let pick = |d: &mut Director, s: u64, port: u16| {
        dest_of(d.handle_flow(t(s), &udp(&format!("192.0.2.7:{port}"), vip, 0))).ip()
    };
    // List [C, B, A]: C, B, then ...
    assert_eq!(pick(&mut d, 1, 1000), sa("10.1.0.3:0").ip());
    assert_eq!(pick(&mut d, 1, 1001), sa("10.1.0.2:0").ip());
    let mut svc = d.rules().service(&key("-u 10.0.0.1:53")).unwrap().0.clone();
    svc.flags = SchedFlags::SCHED1; // -b flag-1
    d.apply_command(t(2), &Command::EditService(svc)).unwrap();
    // ... A: the cursor stayed on B.
    assert_eq!(pick(&mut d, 3, 1002), sa("10.1.0.1:0").ip());
}

/// New `-b` flags take effect at once on a scheduler that reads them (sh-fallback here).
#[test]
fn sh_takes_new_flags_without_rebinding() {
    // List [B, A(weight 0)]: buckets alternate B, A; client 10.0.0.1 hashes to bucket 39 (A).
    let mut d = director(
        "-A -u 10.0.0.1:53 -s sh\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -w 0\n\
         -a -u 10.0.0.1:53 -r 10.1.0.2:53\n",
    );
    let p = udp("10.0.0.1:1000", "10.0.0.1:53", 0);
    assert_eq!(d.handle_flow(t(1), &p), FlowVerdict::NoDestination);
    let mut svc = d.rules().service(&key("-u 10.0.0.1:53")).unwrap().0.clone();
    svc.flags = SchedFlags::SCHED1; // -b sh-fallback
    d.apply_command(t(2), &Command::EditService(svc)).unwrap();
    // The fallback probe starts at bucket 2 * 39 = 78, which is B's.
    assert_eq!(dest_of(d.handle_flow(t(3), &p)).ip(), sa("10.1.0.2:0").ip());
}

fn syn(src: &str, dst: &str, fwmark: u32) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        tcp_flags: 0x02,
        len: 60,
        ..udp(src, dst, fwmark)
    }
}

/// lblcr's `set_max` reads the live counters of a member that was deleted: the destination in
/// the trash keeps counting its connections down as they expire.
#[test]
fn lblcr_set_max_sees_a_deleted_members_live_counters() {
    let mut cfg = DirectorConfig::new(4096, HashKey::from_u128(0xfeed));
    cfg.sched.lblcr_expiration = Duration::from_secs(60);
    let mut d = Director::new(cfg);
    // List [B, C, A], weight 1 each.
    d.apply_rules(
        Instant::ZERO,
        &RuleSet::from_text(
            "-A -f 1 -s lblcr\n-a -f 1 -r 10.1.0.1:0 -m\n-a -f 1 -r 10.1.0.3:0 -m\n\
             -a -f 1 -r 10.1.0.2:0 -m\n",
        )
        .unwrap(),
    )
    .unwrap();
    let x = "198.51.100.1:80";
    let ip = |s: &str| sa(s).ip();
    let go = |d: &mut Director, s: u64, client: &str| {
        run_timers(d, t(s));
        dest_of(d.handle_flow(t(s), &syn(client, x, 1))).ip()
    };
    // x → {B}; B gets two active connections, is then lblc-overloaded and C joins: {C, B}.
    assert_eq!(go(&mut d, 1, "192.0.2.1:1000"), ip("10.1.0.2:0"));
    assert_eq!(go(&mut d, 2, "192.0.2.2:1000"), ip("10.1.0.2:0"));
    assert_eq!(go(&mut d, 3, "192.0.2.3:1000"), ip("10.1.0.3:0"));
    // B is deleted with its two connections; they (and C's) time out in SYN_RECV at ~63.
    d.apply_command(
        t(4),
        &Command::DeleteDest {
            service: key("-f 1"),
            addr: "10.1.0.2".parse().unwrap(),
            port: 0,
        },
    )
    .unwrap();
    // At 100 the set is older than lblcr_expiration: set_min gives C, and set_max removes the
    // most loaded member. B's live overhead is 0 like C's, so the first (C) goes: {B}.
    assert_eq!(go(&mut d, 100, "192.0.2.4:1000"), ip("10.1.0.3:0"));
    // {B}: B is not AVAILABLE, so wlc over [C (1 active), A] picks A. (Had B been judged by its
    // counters at deletion, B would have gone, leaving {C}, and C would be returned.)
    assert_eq!(go(&mut d, 101, "192.0.2.5:1000"), ip("10.1.0.1:0"));
}
