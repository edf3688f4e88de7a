//! What a master sends, and when (spec §4.3): `ip_vs_sync_conn_needed`, the `in_pkts`
//! arithmetic and the walk to the controlling connection, as pure functions.
//!
//! # What the director does (sync master running)
//! Per connection it keeps a [`SyncStamp`] (the kernel's `old_state` and `sync_endtime`),
//! created with [`SyncStamp::new`] when the entry is created.
//!
//! 1. For every packet processed in the **incoming** direction (after the state transition
//!    and transmit), compute `pkts` with [`packet_pkts`] (this is where `in_pkts` is
//!    incremented; one-packet connections use the threshold and are not incremented).
//! 2. Call [`decide`] with the connection's [`SyncCandidate`] and stamp; store the returned
//!    stamp; when `send`, push [`SyncConn::from_conn`](super::SyncConn::from_conn) into the
//!    thread's [`SyncBatcher`](super::SyncBatcher) (thread: hash of the connection mod
//!    `sync_ports`).
//! 3. When `controller` is true and the connection has a controller (template or FTP control
//!    connection), repeat step 2 for the controller with `pkts` from [`controller_pkts`]
//!    (and so on up the chain).
//! 4. When a template's deferred expiry fires (it still controls connections), its timeout
//!    becomes 60 s and it goes through step 2 with `pkts` = the threshold
//!    ([`SyncSysctls::threshold`]).
//!
//! Without a running master nothing is synced, but a one-packet connection's packet still
//! increments its controller's `in_pkts` (`ip_vs_in`).

use super::SyncVersion;
use crate::conn::ConnFlags;
use crate::time::{Duration, Instant};

/// The master's sync sysctls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncSysctls {
    /// `sync_version` (default 1).
    pub version: SyncVersion,
    /// `sync_threshold[0]`: the packet count at which a connection is synced (default 3).
    pub threshold: u32,
    /// `sync_threshold[1]` ("sync_period"): re-sync every this many packets (default 50);
    /// 0 syncs once.
    pub period: u32,
    /// `sync_refresh_period` (default 0 = off).
    pub refresh_period: Duration,
    /// `sync_retries`, 0..=3 (default 0).
    pub retries: u8,
    /// `sync_persist_mode`: connections controlled by a template are not synced.
    pub persist_mode: bool,
}

impl Default for SyncSysctls {
    fn default() -> Self {
        SyncSysctls {
            version: SyncVersion::V1,
            threshold: 3,
            period: 50,
            refresh_period: Duration::ZERO,
            retries: 0,
            persist_mode: false,
        }
    }
}

/// Per-connection sync bookkeeping (`cp->old_state`, `cp->sync_endtime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncStamp {
    /// The state at the last sync (0 for a new connection).
    pub old_state: u16,
    /// `now + timeout` at the last sync: when the backups expect the connection to expire.
    pub endtime: Instant,
    /// Refresh retries done for that end time (the kernel keeps them in its 2 low bits).
    pub retries: u8,
}

impl SyncStamp {
    /// The stamp of an entry created at `now` (`ip_vs_conn_new`). A backup entry updated by
    /// sync keeps its end time and takes the received state as `old_state`.
    pub const fn new(now: Instant) -> SyncStamp {
        SyncStamp {
            old_state: 0,
            endtime: now,
            retries: 0,
        }
    }
}

/// The connection facts the decision needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncCandidate {
    /// IP protocol number.
    pub protocol: u8,
    /// Flags (`TEMPLATE`, `ONE_PACKET` matter).
    pub flags: ConnFlags,
    /// Current raw state.
    pub state: u16,
    /// Whether the client side is IPv6 (version 0 cannot carry it).
    pub ipv6: bool,
    /// Whether a persistence template is somewhere up its `control` chain (`in_persistence`).
    pub in_persistence: bool,
    /// The connection's current timeout.
    pub timeout: Duration,
    /// The packet count from [`packet_pkts`] / [`controller_pkts`] / the threshold.
    pub pkts: u32,
}

/// The outcome of [`decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncDecision {
    /// Send a record for this connection now.
    pub send: bool,
    /// Then consider the controlling connection, if there is one.
    pub controller: bool,
    /// The connection's stamp from now on.
    pub stamp: SyncStamp,
}

const TCP: u8 = 6;
const SCTP: u8 = 132;
const TCP_ESTABLISHED: u16 = 1;
// ESTABLISHED, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT.
const TCP_SYNCED: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7);
const SCTP_ESTABLISHED: u16 = 8;
// ESTABLISHED, SHUTDOWN_SENT, SHUTDOWN_RECEIVED, SHUTDOWN_ACK_SENT, CLOSED.
const SCTP_SYNCED: u32 = (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 13);

fn state_in(set: u32, state: u16) -> bool {
    state < 32 && set & (1 << state) != 0
}

/// `ip_vs_sync_conn_needed`: whether the connection is synced now, and its new stamp.
///
/// - Templates: no state rule, no packet rule when `period > 0`.
/// - `persist_mode` and controlled by a template: never.
/// - TCP: only in ESTABLISHED, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT; a change of state
///   since the last sync to anything but ESTABLISHED is sent at once. SCTP likewise with
///   ESTABLISHED, SHUTDOWN_SENT, SHUTDOWN_RECEIVED, SHUTDOWN_ACK_SENT, CLOSED. Other
///   protocols: no state rule.
/// - `refresh_period > 0`: skip when the expected end time moved by less than
///   `min(refresh_period, max(timeout / 2, 10 s))`, unless a retry is allowed (at most
///   `retries`, not before `refresh_period / 8` after the last sync).
/// - `period > 0`: non-templates only when `pkts % period == threshold`; `period == 0` and
///   no refresh: only when `pkts == threshold`.
///
/// The kernel rounds end times to 4 jiffies to keep the retry count in the low bits; here the
/// end time is exact and the count separate.
///
/// ```
/// use lvs_core::conn::ConnFlags;
/// use lvs_core::sync::master::{sync_needed, SyncCandidate, SyncStamp, SyncSysctls};
/// use lvs_core::{Duration, Instant};
/// let s = SyncSysctls::default();
/// let now = Instant::from_secs(100);
/// let mut c = SyncCandidate {
///     protocol: 17, flags: ConnFlags::empty(), state: 0, ipv6: false,
///     in_persistence: false, timeout: Duration::from_secs(300), pkts: 3,
/// };
/// let stamp = SyncStamp::new(Instant::ZERO);
/// assert!(sync_needed(&s, &c, stamp, now).0); // packet 3
/// c.pkts = 4;
/// assert!(!sync_needed(&s, &c, stamp, now).0);
/// c.pkts = 53;
/// assert!(sync_needed(&s, &c, stamp, now).0); // 53 % 50 == 3
/// ```
pub fn sync_needed(
    sysctls: &SyncSysctls,
    c: &SyncCandidate,
    stamp: SyncStamp,
    now: Instant,
) -> (bool, SyncStamp) {
    let template = c.flags.contains(ConnFlags::TEMPLATE);
    let endtime = now + c.timeout;
    let set = |retries: u8| SyncStamp {
        old_state: c.state,
        endtime,
        retries,
    };
    if !template {
        if sysctls.persist_mode && c.in_persistence {
            return (false, stamp);
        }
        let (synced, established) = match c.protocol {
            TCP => (TCP_SYNCED, TCP_ESTABLISHED),
            SCTP => (SCTP_SYNCED, SCTP_ESTABLISHED),
            _ => (u32::MAX, u16::MAX),
        };
        if c.protocol == TCP || c.protocol == SCTP {
            if !state_in(synced, c.state) {
                return (false, stamp);
            }
            let force = c.state != stamp.old_state;
            if force && c.state != established {
                return (true, set(0));
            }
        }
    }

    let mut retries = 0;
    let refresh = sysctls.refresh_period.as_nanos();
    if refresh > 0 {
        let diff = i128::from(endtime.as_nanos()) - i128::from(stamp.endtime.as_nanos());
        let min_diff = (c.timeout.as_nanos() / 2).max(Duration::from_secs(10).as_nanos());
        if diff.unsigned_abs() < u128::from(refresh.min(min_diff)) {
            if stamp.retries >= sysctls.retries {
                return (false, stamp);
            }
            // Not before refresh_period / 8 after the last sync (end time − timeout).
            let retry_at = i128::from(stamp.endtime.as_nanos()) - i128::from(c.timeout.as_nanos())
                + i128::from(refresh / 8);
            if i128::from(now.as_nanos()) < retry_at {
                return (false, stamp);
            }
            retries = (stamp.retries + 1).min(3);
        }
    }

    // `pkts` is the kernel's signed `int` (atomic_t): past 2^31 packets the remainder is
    // negative and never matches, exactly as there.
    let pkts = c.pkts as i32;
    let threshold = sysctls.threshold as i32;
    let period = sysctls.period as i32;
    if period > 0 {
        if !template && pkts % period != threshold {
            return (false, stamp);
        }
    } else if refresh == 0 && pkts != threshold {
        return (false, stamp);
    }
    (true, set(retries))
}

/// `ip_vs_sync_conn` (version 1) or `ip_vs_sync_conn_v0` for one connection: whether to send
/// it, whether to go on to its controller, and its new stamp.
///
/// - Version 1: one-packet connections are not sent but their controller is considered; the
///   controller is considered whether or not the connection was sent.
/// - Version 0: IPv6 and one-packet connections are ignored, and the controller is considered
///   only after the connection was sent (the spec's wording, which is the v0 rule).
///
/// ```
/// use lvs_core::conn::ConnFlags;
/// use lvs_core::sync::master::{decide, SyncCandidate, SyncStamp, SyncSysctls};
/// use lvs_core::{Duration, Instant};
/// let s = SyncSysctls::default();
/// let ops = SyncCandidate {
///     protocol: 17, flags: ConnFlags::ONE_PACKET, state: 0, ipv6: false,
///     in_persistence: true, timeout: Duration::ZERO, pkts: 3,
/// };
/// let d = decide(&s, &ops, SyncStamp::new(Instant::ZERO), Instant::ZERO);
/// assert!(!d.send && d.controller); // only the template is synced
/// ```
pub fn decide(
    sysctls: &SyncSysctls,
    c: &SyncCandidate,
    stamp: SyncStamp,
    now: Instant,
) -> SyncDecision {
    let ops = c.flags.contains(ConnFlags::ONE_PACKET);
    match sysctls.version {
        SyncVersion::V1 => {
            if ops {
                return SyncDecision {
                    send: false,
                    controller: true,
                    stamp,
                };
            }
            let (send, stamp) = sync_needed(sysctls, c, stamp, now);
            SyncDecision {
                send,
                controller: true,
                stamp,
            }
        }
        SyncVersion::V0 => {
            if c.ipv6 || ops {
                return SyncDecision {
                    send: false,
                    controller: false,
                    stamp,
                };
            }
            let (send, stamp) = sync_needed(sysctls, c, stamp, now);
            SyncDecision {
                send,
                controller: send,
                stamp,
            }
        }
    }
}

/// `pkts` for a packet in the incoming direction, and the connection's new `in_pkts`
/// (`ip_vs_in`): one-packet connections report the threshold and are not counted; others
/// count the packet (wrapping like the kernel's 32-bit counter).
///
/// ```
/// use lvs_core::conn::ConnFlags;
/// use lvs_core::sync::master::packet_pkts;
/// assert_eq!(packet_pkts(ConnFlags::empty(), 2, 3), (3, 3));
/// assert_eq!(packet_pkts(ConnFlags::ONE_PACKET, 0, 3), (3, 0));
/// ```
pub const fn packet_pkts(flags: ConnFlags, in_pkts: u32, threshold: u32) -> (u32, u32) {
    if flags.contains(ConnFlags::ONE_PACKET) {
        (threshold, in_pkts)
    } else {
        let n = in_pkts.wrapping_add(1);
        (n, n)
    }
}

/// `pkts` for the controller of a connection just considered, and the controller's new
/// `in_pkts`: a template counts one more packet (`atomic_inc_return(&ct->in_pkts)`), any other
/// controller (an FTP control connection) uses the threshold and keeps its count.
///
/// ```
/// use lvs_core::conn::ConnFlags;
/// use lvs_core::sync::master::controller_pkts;
/// assert_eq!(controller_pkts(ConnFlags::TEMPLATE, 7, 3), (8, 8));
/// assert_eq!(controller_pkts(ConnFlags::empty(), 7, 3), (3, 7));
/// ```
pub const fn controller_pkts(
    controller_flags: ConnFlags,
    in_pkts: u32,
    threshold: u32,
) -> (u32, u32) {
    if controller_flags.contains(ConnFlags::TEMPLATE) {
        let n = in_pkts.wrapping_add(1);
        (n, n)
    } else {
        (threshold, in_pkts)
    }
}
