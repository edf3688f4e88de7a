//! Statistics and the rate estimator through the director (spec §6.5, §2.7), with every
//! expected value worked out by hand from the kernel's arithmetic (`ip_vs_est.c`).

use lvs_core::director::Director;
use lvs_core::rules::{Command, DestConfig};
use lvs_core::Instant;

mod director_support;
use director_support::*;

fn ms(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

/// Runs each timer due up to `now` at its own deadline (as kernel timers fire).
fn advance(d: &mut Director, now: Instant) {
    while let Some(due) = d.poll_timeout().filter(|&due| due <= now) {
        d.handle_timeout(due);
    }
}

/// A real server deleted and re-added keeps its estimator as the kernel keeps it: its
/// estimator is only taken off the 2 s list while it is in the trash (`ip_vs_stop_estimator`)
/// and put back on revival (`ip_vs_start_estimator`), which touches neither the averages nor
/// the last sampled counters. So the first sample after the revival takes in the traffic
/// counted between the last sample before the delete and the delete.
#[test]
fn revived_real_server_keeps_its_last_sample() {
    let mut d = director("-A -u 10.0.0.1:53 -s rr\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n");
    let svc = key("-u 10.0.0.1:53");
    let rs = sa("10.1.0.1:53");
    // 100 bytes at 0.5 s, sampled at 2 s: inbps avg = (100 << 4) >> 2 = 400.
    advance(&mut d, ms(500));
    dest_of(d.handle_flow(ms(500), &udp("192.0.2.7:1000", "10.0.0.1:53", 100)));
    advance(&mut d, ms(2500));
    assert_eq!(d.dest_stats(&svc, rs).unwrap().estimator().inbps, 400);
    // 100 more bytes at 2.5 s, not sampled before the delete at 3 s.
    dest_of(d.handle_flow(ms(2500), &udp("192.0.2.7:1000", "10.0.0.1:53", 100)));
    advance(&mut d, ms(3000));
    let del = Command::DeleteDest {
        service: svc,
        addr: rs.ip(),
        port: 53,
    };
    d.apply_command(ms(3000), &del).unwrap();
    // In the trash at 4 s: not sampled. Revived at 5 s.
    advance(&mut d, ms(5000));
    d.apply_command(
        ms(5000),
        &Command::AddDest(svc, DestConfig::new(rs.ip(), 53)),
    )
    .unwrap();
    // The sample at 6 s: rate = (200 - 100) << 4 = 1600, avg = 400 + (1600 - 400) >> 2 = 700,
    // reported (700 + 15) >> 5 = 22 B/s. (Restarting the samples at the revival would give
    // rate 0, avg 300, 9 B/s.)
    advance(&mut d, ms(6000));
    let st = d.dest_stats(&svc, rs).unwrap();
    assert_eq!(st.read().inbytes, 200);
    assert_eq!(st.estimator().inbps, 700);
    assert_eq!(st.rates().inbps, 22);
    // inpkts: 1 << 9 = 512 at 2 s (avg 128), then 1 << 9 again: 128 + (512 - 128) >> 2 = 224.
    assert_eq!(st.estimator().inpps, 224);
}

/// `-Z` with a service of no address and port 0 (`-t 0.0.0.0:0`, `-u [::]:0`) zeroes every
/// counter, as no service at all does: ipvsadm sends the zero command without a service
/// then, and the kernel zeroes everything. Any other service that does not exist is
/// "No such service".
#[test]
fn zero_with_the_wildcard_service_zeroes_everything() {
    let mut d = director(
        "-A -u 10.0.0.1:53 -s rr\n-a -u 10.0.0.1:53 -r 10.1.0.1:53\n\
         -A -u 10.0.0.2:53 -s rr\n-a -u 10.0.0.2:53 -r 10.1.0.2:53\n",
    );
    let zero = |line: &str| match lvs_core::rules::parse_line(line).unwrap() {
        Some(c) => c,
        None => panic!("{line}: no command"),
    };
    for (k, wildcard) in [(0, "-Z -t 0.0.0.0:0"), (1, "-Z -u [::]:0")] {
        let at = |millis: u64| ms(k * 1000 + millis);
        for (i, vip) in ["10.0.0.1:53", "10.0.0.2:53"].into_iter().enumerate() {
            let client = format!("192.0.2.7:{}", 1000 + i);
            dest_of(d.handle_flow(at(100), &udp(&client, vip, 100)));
        }
        assert_eq!(d.total_stats().read().inpkts, 2);
        let err = d.apply_command(at(200), &zero("-Z -u 10.0.0.9:53"));
        assert!(err.is_err(), "{err:?}");
        assert_eq!(
            d.total_stats().read().inpkts,
            2,
            "a failed -Z changes nothing"
        );
        d.apply_command(at(200), &zero(wildcard)).unwrap();
        assert_eq!(d.total_stats().read().inpkts, 0, "{wildcard}");
        for (svc, rs) in [
            ("-u 10.0.0.1:53", "10.1.0.1:53"),
            ("-u 10.0.0.2:53", "10.1.0.2:53"),
        ] {
            assert_eq!(d.service_stats(&key(svc)).unwrap().read().inpkts, 0);
            assert_eq!(d.dest_stats(&key(svc), sa(rs)).unwrap().read().inbytes, 0);
        }
    }
}
