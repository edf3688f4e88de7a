//! Per-destination connection accounting (spec §2.5) and the OVERLOAD threshold rules
//! (spec §1.0), as explicit deltas and pure functions.
//!
//! The connection table reports *what happened* to a connection (bound, changed activity,
//! unbound) as a [`DestDelta`] for its [`DestId`]; the director owns the destinations, applies
//! the delta with [`apply_bind`] / [`apply_state_change`] / [`apply_unbind`] (which also
//! evaluate the thresholds the way the kernel does at that moment), and, when those return
//! `true`, calls `Scheduler::counts_changed` for that destination.
//!
//! ```
//! use lvs_core::conn::accounting::{apply_bind, apply_unbind, DestDelta, Thresholds};
//! use lvs_core::conn::ConnFlags;
//! use lvs_core::sched::{DestId, DestInfo};
//! let mut d = DestInfo::new(DestId(1), "10.0.0.1".parse().unwrap(), 80, 1);
//! let th = Thresholds { upper: 2, lower: 0 };
//! let flags = ConnFlags::INACTIVE; // every new conn starts inactive
//! apply_bind(&mut d, DestDelta::bind(flags), &th);
//! assert!(!d.is_overloaded());
//! apply_bind(&mut d, DestDelta::bind(flags), &th);
//! assert!(d.is_overloaded()); // total 2 >= upper 2
//! apply_unbind(&mut d, DestDelta::unbind(flags), &th);
//! assert!(!d.is_overloaded()); // 1 * 4 < 2 * 3
//! ```

use crate::conn::ConnFlags;
use crate::sched::{DestFlags, DestInfo};

#[allow(unused_imports)] // used by the docs
use crate::sched::DestId;

/// A change to a destination's connection counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DestDelta {
    /// Change of `activeconns`.
    pub active: i32,
    /// Change of `inactconns`.
    pub inactive: i32,
    /// Change of `persistconns`.
    pub persist: i32,
}

impl DestDelta {
    /// No change.
    pub const ZERO: DestDelta = DestDelta {
        active: 0,
        inactive: 0,
        persist: 0,
    };

    /// Binding an entry with `flags` (`ip_vs_bind_dest`): a template counts in persistconns,
    /// a connection in inactconns if INACTIVE is set (always, for new conns: the dest's
    /// conn_flags carry INACTIVE), else activeconns.
    pub const fn bind(flags: ConnFlags) -> DestDelta {
        if flags.contains(ConnFlags::TEMPLATE) {
            DestDelta {
                active: 0,
                inactive: 0,
                persist: 1,
            }
        } else if flags.contains(ConnFlags::INACTIVE) {
            DestDelta {
                active: 0,
                inactive: 1,
                persist: 0,
            }
        } else {
            DestDelta {
                active: 1,
                inactive: 0,
                persist: 0,
            }
        }
    }

    /// Unbinding an entry with `flags` (`ip_vs_unbind_dest`): the opposite of
    /// [`DestDelta::bind`], by the flags the entry has *now*.
    pub const fn unbind(flags: ConnFlags) -> DestDelta {
        let b = Self::bind(flags);
        DestDelta {
            active: -b.active,
            inactive: -b.inactive,
            persist: -b.persist,
        }
    }

    /// A TCP state change that makes an inactive conn active (`to_active`) or an active conn
    /// inactive. Only call this when the activity really flips.
    pub const fn activity(to_active: bool) -> DestDelta {
        if to_active {
            DestDelta {
                active: 1,
                inactive: -1,
                persist: 0,
            }
        } else {
            DestDelta {
                active: -1,
                inactive: 1,
                persist: 0,
            }
        }
    }

    /// Whether the delta changes nothing.
    pub const fn is_zero(&self) -> bool {
        self.active == 0 && self.inactive == 0 && self.persist == 0
    }

    /// The sum of two deltas.
    pub const fn plus(self, o: DestDelta) -> DestDelta {
        DestDelta {
            active: self.active + o.active,
            inactive: self.inactive + o.inactive,
            persist: self.persist + o.persist,
        }
    }
}

/// Upper and lower connection thresholds of a destination (`-x`, `-y`; 0 = unset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Thresholds {
    /// `u_threshold`.
    pub upper: u32,
    /// `l_threshold`.
    pub lower: u32,
}

/// `activeconns + inactconns` (templates not included), as the kernel's
/// `ip_vs_dest_totalconns`: an `int` sum, here as the unsigned value the threshold tests
/// compare (`int` against the `__u32` thresholds converts to `unsigned int`), wrapping.
pub const fn total_conns(active: u32, inactive: u32) -> u32 {
    active.wrapping_add(inactive)
}

/// OVERLOAD after a bind, given the total after the counters were incremented: set when
/// `upper != 0 && total >= upper`, otherwise unchanged.
pub const fn overload_after_bind(overloaded: bool, total: u32, th: &Thresholds) -> bool {
    overloaded || (th.upper != 0 && total >= th.upper)
}

/// OVERLOAD after an unbind, given the total after the counters were decremented: with a lower
/// threshold, cleared when `total < lower`; else with an upper threshold, cleared when
/// `total * 4 < upper * 3`; else cleared unconditionally.
///
/// As in the kernel, `total * 4 < upper * 3` is computed in unsigned 32-bit arithmetic, so
/// both products wrap (`upper * 3` does from `upper` = 1,431,655,766 on, a threshold ipvsadm
/// accepts).
pub const fn overload_after_unbind(overloaded: bool, total: u32, th: &Thresholds) -> bool {
    if th.lower != 0 {
        overloaded && total >= th.lower
    } else if th.upper != 0 {
        overloaded && total.wrapping_mul(4) >= th.upper.wrapping_mul(3)
    } else {
        false
    }
}

/// OVERLOAD after editing a destination (`__ip_vs_update_dest`): cleared if the new upper
/// threshold is 0 or larger than the old one, otherwise unchanged.
pub const fn overload_after_edit(overloaded: bool, old_upper: u32, new_upper: u32) -> bool {
    overloaded && !(new_upper == 0 || new_upper > old_upper)
}

#[inline(always)]
fn add(counter: &mut u32, d: i32) {
    // Deltas come from the table's own bookkeeping; a negative result would be a caller bug
    // (applying an unbind twice). Saturate rather than wrap so one bug cannot poison the
    // schedulers' arithmetic, and flag it in debug builds.
    let v = *counter as i64 + d as i64;
    debug_assert!(v >= 0, "destination counter would go negative");
    *counter = v.clamp(0, u32::MAX as i64) as u32;
}

#[inline(always)]
fn apply_counts(dest: &mut DestInfo, d: DestDelta) {
    add(&mut dest.activeconns, d.active);
    add(&mut dest.inactconns, d.inactive);
    add(&mut dest.persistconns, d.persist);
}

fn set_overload(dest: &mut DestInfo, on: bool) -> bool {
    let was = dest.is_overloaded();
    dest.flags.set(DestFlags::OVERLOAD, on);
    was != on
}

/// Applies a bind delta and evaluates the upper threshold. Returns whether the scheduler must
/// be told (`counts_changed`): always `true` for a non-zero delta.
pub fn apply_bind(dest: &mut DestInfo, d: DestDelta, th: &Thresholds) -> bool {
    apply_counts(dest, d);
    let total = total_conns(dest.activeconns, dest.inactconns);
    let on = overload_after_bind(dest.is_overloaded(), total, th);
    set_overload(dest, on);
    !d.is_zero()
}

/// Applies an activity change (no threshold evaluation: the kernel re-evaluates OVERLOAD only
/// on bind, unbind and edit). Returns whether the scheduler must be told.
#[inline(always)]
pub fn apply_state_change(dest: &mut DestInfo, d: DestDelta) -> bool {
    apply_counts(dest, d);
    !d.is_zero()
}

/// Applies an unbind delta and evaluates the lower / 3/4 rule. Returns whether the scheduler
/// must be told.
pub fn apply_unbind(dest: &mut DestInfo, d: DestDelta, th: &Thresholds) -> bool {
    apply_counts(dest, d);
    let total = total_conns(dest.activeconns, dest.inactconns);
    let on = overload_after_unbind(dest.is_overloaded(), total, th);
    let flag_changed = set_overload(dest, on);
    !d.is_zero() || flag_changed
}

/// Applies the edit rule for a threshold change. Returns whether OVERLOAD changed.
pub fn apply_edit(dest: &mut DestInfo, old: &Thresholds, new: &Thresholds) -> bool {
    let on = overload_after_edit(dest.is_overloaded(), old.upper, new.upper);
    set_overload(dest, on)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::DestId;

    fn dest() -> DestInfo {
        DestInfo::new(DestId(7), "10.1.1.1".parse().unwrap(), 80, 1)
    }

    #[test]
    fn bind_deltas() {
        assert_eq!(DestDelta::bind(ConnFlags::INACTIVE).inactive, 1);
        assert_eq!(DestDelta::bind(ConnFlags::empty()).active, 1);
        assert_eq!(
            DestDelta::bind(ConnFlags::TEMPLATE | ConnFlags::INACTIVE).persist,
            1
        );
        assert_eq!(DestDelta::unbind(ConnFlags::TEMPLATE).persist, -1);
        assert_eq!(
            DestDelta::bind(ConnFlags::INACTIVE)
                .plus(DestDelta::activity(true))
                .active,
            1
        );
        assert!(DestDelta::bind(ConnFlags::INACTIVE)
            .plus(DestDelta::activity(true))
            .plus(DestDelta::unbind(ConnFlags::empty()))
            .is_zero());
    }

    #[test]
    fn thresholds_upper_and_three_quarters() {
        let th = Thresholds { upper: 8, lower: 0 };
        let mut d = dest();
        for i in 1..=8u32 {
            apply_bind(&mut d, DestDelta::bind(ConnFlags::INACTIVE), &th);
            assert_eq!(d.is_overloaded(), i >= 8, "after {i} binds");
        }
        // Templates do not count in the total.
        apply_bind(&mut d, DestDelta::bind(ConnFlags::TEMPLATE), &th);
        assert_eq!(d.persistconns, 1);
        // Clear when total*4 < 24, i.e. total <= 5.
        for total in (0..8u32).rev() {
            apply_unbind(&mut d, DestDelta::unbind(ConnFlags::INACTIVE), &th);
            assert_eq!(d.is_overloaded(), total >= 6, "total {total}");
            if !d.is_overloaded() {
                break;
            }
        }
    }

    #[test]
    fn thresholds_lower() {
        let th = Thresholds { upper: 4, lower: 2 };
        let mut d = dest();
        for _ in 0..4 {
            apply_bind(&mut d, DestDelta::bind(ConnFlags::INACTIVE), &th);
        }
        assert!(d.is_overloaded());
        apply_unbind(&mut d, DestDelta::unbind(ConnFlags::INACTIVE), &th); // 3
        assert!(d.is_overloaded());
        apply_unbind(&mut d, DestDelta::unbind(ConnFlags::INACTIVE), &th); // 2
        assert!(d.is_overloaded());
        apply_unbind(&mut d, DestDelta::unbind(ConnFlags::INACTIVE), &th); // 1 < 2
        assert!(!d.is_overloaded());
    }

    #[test]
    fn no_threshold_unbind_clears() {
        let mut d = dest();
        d.flags.set(DestFlags::OVERLOAD, true);
        apply_bind(
            &mut d,
            DestDelta::bind(ConnFlags::INACTIVE),
            &Thresholds::default(),
        );
        assert!(d.is_overloaded(), "bind never clears");
        assert!(apply_unbind(
            &mut d,
            DestDelta::unbind(ConnFlags::INACTIVE),
            &Thresholds::default()
        ));
        assert!(!d.is_overloaded());
    }

    #[test]
    fn state_change_does_not_touch_overload() {
        let th = Thresholds { upper: 1, lower: 0 };
        let mut d = dest();
        apply_bind(&mut d, DestDelta::bind(ConnFlags::INACTIVE), &th);
        assert!(d.is_overloaded());
        apply_state_change(&mut d, DestDelta::activity(true));
        assert_eq!((d.activeconns, d.inactconns), (1, 0));
        assert!(d.is_overloaded());
    }

    #[test]
    fn thresholds_compare_in_the_kernels_unsigned_arithmetic() {
        // `ip_vs_dest_totalconns(dest) * 4 < dest->u_threshold * 3` is unsigned 32-bit: with
        // u_threshold 2e9 the right side wraps to 1_705_032_704, so 1e9 connections (4e9 on
        // the left) keep OVERLOAD set.
        let th = Thresholds {
            upper: 2_000_000_000,
            lower: 0,
        };
        let mut d = dest();
        d.activeconns = 1_000_000_000;
        d.inactconns = 1;
        d.flags.set(DestFlags::OVERLOAD, true);
        apply_unbind(&mut d, DestDelta::unbind(ConnFlags::INACTIVE), &th);
        assert!(d.is_overloaded());
        // 400M: 1.6e9 < 1_705_032_704 clears it.
        d.activeconns = 400_000_000;
        d.inactconns = 1;
        apply_unbind(&mut d, DestDelta::unbind(ConnFlags::INACTIVE), &th);
        assert!(!d.is_overloaded());
    }

    #[test]
    fn edit_rule() {
        assert!(!overload_after_edit(true, 10, 0));
        assert!(!overload_after_edit(true, 10, 11));
        assert!(overload_after_edit(true, 10, 10));
        assert!(overload_after_edit(true, 10, 5));
        assert!(!overload_after_edit(false, 10, 5));
        let mut d = dest();
        d.flags.set(DestFlags::OVERLOAD, true);
        assert!(apply_edit(
            &mut d,
            &Thresholds { upper: 5, lower: 0 },
            &Thresholds::default()
        ));
        assert!(!d.is_overloaded());
    }
}
