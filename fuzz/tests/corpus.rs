//! Runs every fuzz target's seed corpus (`fuzz/corpus/<target>/*`) through its body, so the
//! seeds are regression tests under plain `cargo test`.

use std::path::Path;

fn run_corpus(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()))
        .map(|e| e.expect("readable corpus entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let data = std::fs::read(&path).expect("readable corpus file");
        body(&data);
        n += 1;
    }
    assert!(n > 0, "target {target} has an empty seed corpus");
}

macro_rules! corpus_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_corpus(stringify!($name), lvs_fuzz::$name);
            }
        )*
    };
}

corpus_tests!(
    conn_ops,
    director_ops,
    health_ops,
    keepalived_parse,
    pcap_read,
    rules_parse,
    sched_ops,
    sim_scenario,
    sim_trace,
    sync_apply,
    sync_decode,
    wire_views,
    xmit_rewrite,
);
