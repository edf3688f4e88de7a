//! What a backup does with a received record (spec §4.4, `ip_vs_proc_conn` and the sync
//! branch of `ip_vs_bind_dest`), as pure helpers; the director applies them to its table.
//!
//! # What the director does with each record of a decoded message
//! (After [`decode_for_backup`](super::decode_for_backup) accepted the datagram; records in
//! [`SyncMessage::skipped`](super::SyncMessage::skipped) are only counted.)
//!
//! 1. `flags = `[`received_flags`]`(version, rec)`.
//! 2. Not a template: look up a connection by (protocol, caddr, cport, vaddr, vport).
//!    If one exists, [`on_existing`] says:
//!    - [`Existing::Replace`]: expire the old one now (like `expire_now`) and go on as if
//!      there were none;
//!    - [`Existing::Ignore`]: stop here (a late expiry record of a replaced connection);
//!    - [`Existing::Update`]: go to 4.
//!
//!    A template is looked up as a template by the same tuple (a persistence engine may match
//!    on its data) and, when found, goes to 4.
//! 3. None: find the destination in the backup's own services (service by fwmark, else by
//!    protocol/vaddr/vport; dest by daddr:dport, or daddr with port 0 for non-NAT fwmark
//!    services) and create the entry with [`new_entry_flags`] of that dest (unbound if there
//!    is no such dest; the entry then keeps the received flags) and bind it, counting it by its
//!    INACTIVE bit. For a template with PE data, the data and the engine (by
//!    [`SyncConn::pe_name`](super::SyncConn::pe_name); the kernel skips the record when the
//!    engine is not loaded) go with the new template. Then 5.
//! 4. Existing entry: flags become [`updated_flags`]; if [`FlagUpdate::inactive_changed`]
//!    and the entry is a bound connection, move one count between the dest's `activeconns`
//!    and `inactconns`. If it is unbound, try to bind it now (as in 3). PE data of the record
//!    is dropped.
//! 5. Copy the sequence data if the record has it; `in_pkts` = `sync_threshold[0]`;
//!    `state` = the record's state, and the stamp's `old_state` too; timeout = [`timeout`];
//!    re-arm the expiry at `now + timeout`.

use super::{protocol_states, SyncConn, SyncVersion};
use crate::conn::state::Timeouts;
use crate::conn::ConnFlags;
use crate::protocol::Protocol;
use crate::time::Duration;

/// Flags a version 1 record may bring (`IP_VS_CONN_F_BACKUP_MASK`): forwarding method,
/// NOOUTPUT, INACTIVE, IN_SEQ, OUT_SEQ, NO_CPORT, TEMPLATE.
pub const BACKUP_MASK: ConnFlags = ConnFlags::from_bits(0x1f87);
/// Flags a record may change on an existing entry (`IP_VS_CONN_F_BACKUP_UPD_MASK`):
/// INACTIVE, IN_SEQ, OUT_SEQ.
pub const BACKUP_UPD_MASK: ConnFlags = ConnFlags::from_bits(0x0700);

/// Template timeout when the record carries none (version 0): `3*60*HZ`.
pub const TEMPLATE_TIMEOUT_V0: Duration = Duration::from_secs(180);

/// Whether a backup with syncid `backup` processes a datagram from `message` (0 accepts
/// all).
///
/// ```
/// use lvs_core::sync::backup::syncid_accepted;
/// assert!(syncid_accepted(0, 9));
/// assert!(syncid_accepted(9, 9));
/// assert!(!syncid_accepted(8, 9));
/// ```
pub const fn syncid_accepted(backup: u8, message: u8) -> bool {
    backup == 0 || backup == message
}

/// The flags a received record starts with on the backup.
///
/// - Version 1: the record's flags masked to [`BACKUP_MASK`], plus SYNC.
/// - Version 0: the record's 16 bits plus SYNC, without HASHED (no mask: `ONE_PACKET` and
///   unused bits come through, as in `ip_vs_process_message_v0`).
///
/// ```
/// use lvs_core::conn::ConnFlags;
/// use lvs_core::sync::backup::received_flags;
/// use lvs_core::sync::SyncVersion;
/// # use core::net::Ipv4Addr;
/// # let a = Ipv4Addr::LOCALHOST.into();
/// # let mut rec = lvs_core::sync::SyncConn { protocol: 6, flags: ConnFlags::empty(),
/// #   state: 1, cport: 1, vport: 1, dport: 1, fwmark: 0, timeout: 0, caddr: a, vaddr: a,
/// #   daddr: a, seq: None, pe_data: None, pe_name: None };
/// rec.flags = ConnFlags::from_bits(0x2143); // ONE_PACKET INACTIVE HASHED LOCALNODE|TUNNEL
/// assert_eq!(received_flags(SyncVersion::V1, &rec).bits(), 0x0123);
/// assert_eq!(received_flags(SyncVersion::V0, &rec).bits(), 0x2123);
/// ```
pub fn received_flags(version: SyncVersion, rec: &SyncConn) -> ConnFlags {
    match version {
        SyncVersion::V1 => {
            ConnFlags::from_bits(rec.flags.bits() & BACKUP_MASK.bits()).with(ConnFlags::SYNC)
        }
        SyncVersion::V0 => rec.flags.with(ConnFlags::SYNC).without(ConnFlags::HASHED),
    }
}

/// What to do when a (non-template) connection with the record's key already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Existing {
    /// Same destination: update it (flags by [`updated_flags`], then state, timeout, …).
    Update,
    /// Different destination and the record is active: expire the existing entry now and
    /// create one from the record.
    Replace,
    /// Different destination and the record is INACTIVE: the expiry message of a connection
    /// that was already replaced; ignore the record.
    Ignore,
}

/// [`Existing`] for an existing connection to `existing_daddr:existing_dport` and a record
/// whose [`received_flags`] are `flags`. Templates are never replaced this way.
///
/// ```
/// use core::net::IpAddr;
/// use lvs_core::conn::ConnFlags;
/// use lvs_core::sync::backup::{on_existing, Existing};
/// let a: IpAddr = [10, 0, 0, 1].into();
/// let b: IpAddr = [10, 0, 0, 2].into();
/// assert_eq!(on_existing(a, 80, a, 80, ConnFlags::INACTIVE), Existing::Update);
/// assert_eq!(on_existing(a, 80, b, 80, ConnFlags::empty()), Existing::Replace);
/// assert_eq!(on_existing(a, 80, b, 80, ConnFlags::INACTIVE), Existing::Ignore);
/// ```
pub fn on_existing(
    existing_daddr: core::net::IpAddr,
    existing_dport: u16,
    rec_daddr: core::net::IpAddr,
    rec_dport: u16,
    flags: ConnFlags,
) -> Existing {
    if existing_dport == rec_dport && existing_daddr == rec_daddr {
        Existing::Update
    } else if flags.contains(ConnFlags::INACTIVE) {
        Existing::Ignore
    } else {
        Existing::Replace
    }
}

/// The result of [`updated_flags`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlagUpdate {
    /// The entry's new flags.
    pub flags: ConnFlags,
    /// `Some(now_inactive)` when INACTIVE changed on a connection (not a template): move one
    /// count from `activeconns` to `inactconns` (`true`) or back (`false`), if the entry is
    /// bound to a dest.
    pub inactive_changed: Option<bool>,
}

/// Flags of an existing entry updated by a record with [`received_flags`] `received`: only
/// INACTIVE, IN_SEQ and OUT_SEQ come from the record, the rest stay.
///
/// ```
/// use lvs_core::conn::ConnFlags;
/// use lvs_core::sync::backup::updated_flags;
/// let old = ConnFlags::from_bits(0x00a3); // DROUTE NOOUTPUT SYNC, active
/// let u = updated_flags(old, ConnFlags::from_bits(0x0120)); // MASQ INACTIVE SYNC
/// assert_eq!(u.flags.bits(), 0x01a3);
/// assert_eq!(u.inactive_changed, Some(true));
/// ```
pub fn updated_flags(existing: ConnFlags, received: ConnFlags) -> FlagUpdate {
    let changed = (existing.bits() ^ received.bits()) & ConnFlags::INACTIVE.bits() != 0;
    let inactive_changed = (changed && !received.contains(ConnFlags::TEMPLATE))
        .then_some(received.contains(ConnFlags::INACTIVE));
    let flags =
        (received.bits() & BACKUP_UPD_MASK.bits()) | (existing.bits() & !BACKUP_UPD_MASK.bits());
    FlagUpdate {
        flags: ConnFlags::from_bits(flags),
        inactive_changed,
    }
}

/// Flags of a new entry created from a record with [`received_flags`] `received` and bound to
/// a dest whose conn flags are `dest_conn_flags` (the sync branch of `ip_vs_bind_dest`):
/// the forwarding method and NOOUTPUT come from the dest; a connection keeps the record's
/// INACTIVE bit (the dest's INACTIVE is not added), a template takes the dest's;
/// ONE_PACKET of the dest applies to UDP only. Unbound entries keep `received`.
///
/// ```
/// use lvs_core::conn::{ConnFlags, FwdMethod};
/// use lvs_core::sync::backup::new_entry_flags;
/// let dest = ConnFlags::for_method(FwdMethod::Tunnel).with(ConnFlags::INACTIVE);
/// let rec = ConnFlags::for_method(FwdMethod::DirectRoute).with(ConnFlags::SYNC);
/// let f = new_entry_flags(rec, 6, Some(dest));
/// assert_eq!(f.fwd_method(), FwdMethod::Tunnel);
/// assert!(!f.contains(ConnFlags::INACTIVE)); // active, as the master said
/// ```
pub fn new_entry_flags(
    received: ConnFlags,
    protocol: u8,
    dest_conn_flags: Option<ConnFlags>,
) -> ConnFlags {
    let Some(mut conn_flags) = dest_conn_flags else {
        return received;
    };
    if protocol != Protocol::Udp.number() {
        conn_flags = conn_flags.without(ConnFlags::ONE_PACKET);
    }
    let mut flags = received;
    if flags.contains(ConnFlags::SYNC) {
        if !flags.contains(ConnFlags::TEMPLATE) {
            conn_flags = conn_flags.without(ConnFlags::INACTIVE);
        }
        flags = flags.without(ConnFlags::FWD_MASK.with(ConnFlags::NOOUTPUT));
    }
    flags.with(conn_flags)
}

/// The timeout a backup gives the entry: the record's (v1, non-zero) in seconds; otherwise
/// the protocol timeout of the state for connections of TCP, UDP and SCTP, and 180 s for
/// templates and for protocols without a timeout table (AH, ESP).
///
/// The kernel caps the received value at `MAX_SCHEDULE_TIMEOUT / HZ`, which on 64-bit kernels
/// is above any 32-bit number of seconds, so no cap applies.
///
/// ```
/// use lvs_core::conn::state::Timeouts;
/// use lvs_core::sync::backup::timeout;
/// use lvs_core::Duration;
/// let t = Timeouts::default();
/// assert_eq!(timeout(0, false, 6, 1, &t), Duration::from_secs(900)); // v0, ESTABLISHED
/// assert_eq!(timeout(0, true, 6, 1, &t), Duration::from_secs(180)); // v0 template
/// assert_eq!(timeout(42, false, 6, 1, &t), Duration::from_secs(42));
/// ```
pub fn timeout(
    record_timeout_secs: u32,
    template: bool,
    protocol: u8,
    state: u16,
    timeouts: &Timeouts,
) -> Duration {
    if record_timeout_secs != 0 {
        return Duration::from_secs(u64::from(record_timeout_secs));
    }
    if template {
        return TEMPLATE_TIMEOUT_V0;
    }
    let proto = match Protocol::from_number(protocol) {
        Some(p @ (Protocol::Tcp | Protocol::Udp | Protocol::Sctp)) => p,
        _ => return TEMPLATE_TIMEOUT_V0,
    };
    // Decoded records have state < protocol_states(protocol) (at most 14); out-of-range
    // states from other callers fall back as `Timeouts::for_state` documents.
    let state = if protocol_states(protocol).is_some_and(|n| state < n) {
        state as u8
    } else {
        u8::MAX
    };
    timeouts.for_state(proto, state)
}
