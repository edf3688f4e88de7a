//! Fuzz body of `keepalived_parse`: arbitrary bytes as the main keepalived.conf, with includes
//! answered from a fixed in-memory file set (a valid service file, a glob directory, a file
//! that includes itself).
//!
//! Invariants: reading never panics and stays bounded (the include loop stops at the depth
//! bound); a configuration that reads saves rules that restore to the same text; every service
//! key in the settings exists in the rules; every real server in the rules belongs to a
//! setting; `describe` starts with the saved rules and is itself a valid ipvsadm rule file.

use lvs_core::keepalived::{parse, MemoryFiles};
use lvs_core::rules::RuleSet;

fn files() -> MemoryFiles {
    let mut fs = MemoryFiles::new();
    fs.insert(
        "/etc/keepalived/conf.d/a.conf",
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lvs_method DR\n real_server 10.1.0.1 80 {\n  TCP_CHECK { connect_timeout 3 }\n }\n}\n",
    );
    fs.insert(
        "/etc/keepalived/conf.d/b.conf",
        "real_server 10.1.0.2 80 {\n weight 2\n HTTP_GET { url { path / } }\n}\n",
    );
    fs.insert("/etc/keepalived/loop.conf", "include loop.conf\n");
    fs.insert("/etc/keepalived/open.inc", "virtual_server fwmark 3 {\n");
    fs
}

/// Reads `data` (lossily decoded as UTF-8) as `/etc/keepalived/keepalived.conf`.
pub fn keepalived_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut fs = files();
    let Ok(cfg) = parse("/etc/keepalived/keepalived.conf", &text, &mut fs) else {
        return;
    };
    let saved = cfg.rules.save();
    let again = match RuleSet::from_text(&saved) {
        Ok(r) => r,
        Err(e) => panic!("saved rules do not restore: {e}\n{saved}"),
    };
    assert_eq!(again.save(), saved);
    let mut dests = 0;
    for vs in &cfg.services {
        assert!(!vs.keys.is_empty());
        assert!(!vs.real_servers.is_empty());
        assert!(vs.hysteresis < vs.quorum.max(1));
        for key in &vs.keys {
            let (_, d) = cfg
                .rules
                .service(key)
                .expect("settings key missing from the rules");
            dests += d.len();
        }
        for rs in &vs.real_servers {
            for c in &rs.checkers {
                assert!(c.connect_timeout.as_nanos() > 0 && c.delay_loop.as_nanos() > 0);
            }
        }
    }
    let total: usize = cfg.rules.services().map(|(_, d)| d.len()).sum();
    assert_eq!(dests, total);
    assert_eq!(
        cfg.rules.len(),
        cfg.services.iter().map(|v| v.keys.len()).sum::<usize>()
    );
    let text = cfg.describe();
    assert!(text.starts_with(&saved));
    assert_eq!(RuleSet::from_text(&text).map(|r| r.save()), Ok(saved));
}
