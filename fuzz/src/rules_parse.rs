//! Fuzz body of `rules_parse`: arbitrary bytes as an ipvsadm rule text.
//!
//! Invariants: parsing never panics; a text that applies cleanly saves to a text that applies
//! cleanly again and saves to the same bytes (saving is a fixed point of restoring).

use lvs_core::rules::{parse_line, RuleSet};

/// Parses `data` (lossily decoded as UTF-8) as rules and checks the save fixed point.
pub fn rules_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        let _ = parse_line(line);
    }
    if let Ok(rules) = RuleSet::from_text(&text) {
        let saved = rules.save();
        let again = match RuleSet::from_text(&saved) {
            Ok(r) => r,
            Err(e) => panic!("saved rules do not restore: {e}\n{saved}"),
        };
        assert_eq!(again.save(), saved, "save is not a fixed point");
        let mut copy = again.clone();
        // A text with a bad last line changes nothing.
        assert!(copy.apply_text(&format!("{saved}-A -t bad\n")).is_err());
        assert_eq!(copy, again);
    }
}
