//! keepalived.conf read against keepalived's own code (keepalived/check/check_data.c,
//! `validate_check_config`, and the checkers in keepalived/check/check_*.c): the defaults and
//! corrections keepalived applies after reading a `virtual_server` block.

use lvs_core::keepalived::{parse, KeepalivedConfig, MemoryFiles};
use lvs_core::Duration;

fn read(conf: &str) -> KeepalivedConfig {
    parse(
        "/etc/keepalived/keepalived.conf",
        conf,
        &mut MemoryFiles::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// DNS_CHECK has no delay_before_retry of its own (`default_delay_before_retry = 0` in
/// check_dns.c): when nothing sets one, it is the checker's delay_loop, not 1 s.
#[test]
fn dns_check_retries_after_its_delay_loop_by_default() {
    let cfg = read(
        "virtual_server 192.0.2.53 53 {
    delay_loop 10
    lb_kind DR
    protocol UDP
    real_server 10.0.53.1 53 {
        DNS_CHECK {
            type A
            name www.example.com
        }
        TCP_CHECK {
        }
    }
    real_server 10.0.53.2 53 {
        delay_before_retry 3
        DNS_CHECK {
            name www.example.com
        }
    }
}
",
    );
    let rs = &cfg.services[0].real_servers;
    let dns = &rs[0].checkers[0];
    assert_eq!(
        (dns.retry, dns.delay_before_retry),
        (3, Duration::from_secs(10))
    );
    // Other checkers keep the 1 s default.
    assert_eq!(rs[0].checkers[1].delay_before_retry, Duration::from_secs(1));
    // A real server's delay_before_retry applies to its DNS_CHECK.
    assert_eq!(rs[1].checkers[0].delay_before_retry, Duration::from_secs(3));
    // The health monitor gets the same value.
    let specs = cfg.health_specs();
    assert_eq!(
        specs[0].servers[0].checkers[0].delay_before_retry,
        Duration::from_secs(10)
    );
}
