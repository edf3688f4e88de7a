//! The built-in scenario of `lvs-sim` with no arguments (the file
//! `lvs-sim/scenarios/web-farm.toml`, compiled in).

use lvs_core::sched::SchedKind;

/// The scenario text.
pub const WEB_FARM: &str = include_str!("../scenarios/web-farm.toml");

/// The schedulers it is compared under.
pub const SCHEDULERS: [SchedKind; 6] = [
    SchedKind::Rr,
    SchedKind::Wrr,
    SchedKind::Lc,
    SchedKind::Wlc,
    SchedKind::Sed,
    SchedKind::Twos,
];
