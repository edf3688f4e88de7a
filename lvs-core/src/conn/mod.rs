//! The flow layer's building blocks: connection entries, their protocol states and timeouts,
//! the connection table with its expiry wheel, and per-destination accounting.
//!
//! Independent of packets: the director (written on top of this module) parses packets, finds
//! the service, runs the scheduler and rewrites bytes; this module keeps the flows.
//!
//! - [`state`]: TCP states and the normal / secure transition tables (spec §2.4, §6.4), the
//!   UDP and template states, [`state::Timeouts`] with `ipvsadm --set` semantics.
//! - [`table`]: [`ConnTable`], a fixed-capacity table found by the client-side key and by the
//!   reply key, with a timing wheel for expiry (spec §2.2, §2.3, §2.6).
//! - [`accounting`]: what binding, state changes and unbinding do to a destination's
//!   `activeconns` / `inactconns` / `persistconns`, and the OVERLOAD threshold rules
//!   (spec §1.0, §2.5).
//!
//! # Calling contract for the director
//!
//! The director owns the destinations ([`crate::sched::DestInfo`] plus thresholds) and the
//! schedulers; the table owns the entries. Every change to a destination's counters is
//! returned by the table as a `(DestId, DestDelta)` that the director applies with the
//! [`accounting`] functions, calling `Scheduler::counts_changed` when they return `true`.
//!
//! Per packet (time `now`, never decreasing):
//! 1. **Look up**: client → VIP packets with [`ConnTable::lookup_in`]; replies seen by the
//!    director (NAT) with [`ConnTable::lookup_out`].
//! 2. **Miss → schedule** (spec §6.2). For a persistent service first
//!    [`ConnTable::lookup_template`]; if the template's destination is no longer valid, call
//!    [`ConnTable::unhash`] on it (it is left to expire, as the kernel neutralises it) and
//!    create a new one. Templates and connections are created with [`ConnTable::insert`]
//!    (flags = the dest's conn flags, which include `INACTIVE`, plus `TEMPLATE` for templates;
//!    initial timeout: 3 s for connections, the persistence timeout for templates). Apply the
//!    returned bind delta with [`accounting::apply_bind`]; if the insert evicted an entry,
//!    treat it exactly like an expired one (step 4). After linking a connection to a
//!    template (`control`), re-arm the template with [`ConnTable::touch`] as
//!    `ip_vs_sched_persist` does. One-packet (OPS) connections are never inserted: bind,
//!    forward, unbind.
//! 3. **Hit → state**: TCP packets go through [`ConnTable::tcp_packet`], UDP datagrams through
//!    [`ConnTable::udp_packet`], other protocols through [`ConnTable::touch`]; each runs the
//!    protocol's transition, re-arms the expiry to `now + timeout(new state)` and returns the
//!    activity delta to apply with [`accounting::apply_state_change`]. Count input packets
//!    with [`ConnTable::inc_in_pkts`]. For conn reuse / expire_nodest_conn (spec §2.7, §2.8)
//!    call [`ConnTable::expire_now`] and schedule the packet as new.
//! 4. **Timers**: call [`ConnTable::handle_timeout`] when [`ConnTable::poll_timeout`] says so;
//!    it removes at most `limit` entries per call, hands each to the callback (apply its unbind
//!    delta with [`accounting::apply_unbind`]) and returns `true` while more work is due.
//!    Templates that still control connections are not freed but re-armed with 60 s.
//!
//! A [`ConnId`] is valid until its entry is removed (expired, evicted, or `expire_now`); the
//! slot is then reused. Do not keep ids across calls that can remove entries without checking
//! [`ConnTable::contains`] against the key you expect.

pub mod accounting;
mod index;
mod prefetch;
mod siphash;
pub mod state;
pub mod table;

pub use accounting::{DestDelta, Thresholds};
pub use siphash::HashKey;
pub use state::{ActiveStates, Direction, TcpInput, TcpState, TcpTable, TemplateState, Timeouts};
pub use table::{
    Conn, ConnId, ConnStatus, ConnTable, ConnTableConfig, ConnTableStats, ExpireReason, Expired,
    InKey, InsertError, Inserted, NewConn, OutKey, TcpUpdate,
};

use core::fmt;

/// How a connection's packets reach the real server (`IP_VS_CONN_F_FWD_MASK` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum FwdMethod {
    /// NAT / masquerading (`-m`, 0).
    Masq = 0,
    /// The director itself (1).
    LocalNode = 1,
    /// IP tunnelling (`-i`, 2).
    Tunnel = 2,
    /// Direct routing (`-g`, 3).
    DirectRoute = 3,
    /// Cache bypass (4).
    Bypass = 4,
}

impl FwdMethod {
    /// The method encoded in the low three flag bits (5..7 are not used by the kernel and read
    /// as `Bypass`).
    pub const fn from_bits(bits: u16) -> FwdMethod {
        match bits & 0x7 {
            0 => FwdMethod::Masq,
            1 => FwdMethod::LocalNode,
            2 => FwdMethod::Tunnel,
            3 => FwdMethod::DirectRoute,
            _ => FwdMethod::Bypass,
        }
    }
}

/// Connection flags (`IP_VS_CONN_F_*`, the 16 bits that are synced).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ConnFlags(u16);

impl ConnFlags {
    /// Mask of the forwarding method bits.
    pub const FWD_MASK: ConnFlags = ConnFlags(0x0007);
    /// Created by the sync daemon.
    pub const SYNC: ConnFlags = ConnFlags(0x0020);
    /// In the connection table (managed by [`ConnTable`]).
    pub const HASHED: ConnFlags = ConnFlags(0x0040);
    /// The director does not see replies (every non-NAT method).
    pub const NOOUTPUT: ConnFlags = ConnFlags(0x0080);
    /// Counted in `inactconns`.
    pub const INACTIVE: ConnFlags = ConnFlags(0x0100);
    /// Output sequence adjustment (NAT application helpers).
    pub const OUT_SEQ: ConnFlags = ConnFlags(0x0200);
    /// Input sequence adjustment.
    pub const IN_SEQ: ConnFlags = ConnFlags(0x0400);
    /// Client port not known yet.
    pub const NO_CPORT: ConnFlags = ConnFlags(0x0800);
    /// A persistence template, not a connection.
    pub const TEMPLATE: ConnFlags = ConnFlags(0x1000);
    /// One-packet scheduling: never hashed.
    pub const ONE_PACKET: ConnFlags = ConnFlags(0x2000);

    /// No flag.
    pub const fn empty() -> Self {
        ConnFlags(0)
    }

    /// Flags from raw bits.
    pub const fn from_bits(bits: u16) -> Self {
        ConnFlags(bits)
    }

    /// Flags of a fresh entry forwarded with `method` (NOOUTPUT for every non-NAT method).
    ///
    /// ```
    /// use lvs_core::conn::{ConnFlags, FwdMethod};
    /// let f = ConnFlags::for_method(FwdMethod::DirectRoute);
    /// assert!(f.contains(ConnFlags::NOOUTPUT));
    /// assert_eq!(f.fwd_method(), FwdMethod::DirectRoute);
    /// assert!(!ConnFlags::for_method(FwdMethod::Masq).contains(ConnFlags::NOOUTPUT));
    /// ```
    pub const fn for_method(method: FwdMethod) -> Self {
        let m = method as u16;
        if m == FwdMethod::Masq as u16 {
            ConnFlags(m)
        } else {
            ConnFlags(m | Self::NOOUTPUT.0)
        }
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// The forwarding method.
    pub const fn fwd_method(self) -> FwdMethod {
        FwdMethod::from_bits(self.0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: ConnFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets or clears the flags of `other`.
    pub fn set(&mut self, other: ConnFlags, on: bool) {
        if on {
            self.0 |= other.0
        } else {
            self.0 &= !other.0
        }
    }

    /// `self` with the flags of `other` added.
    pub const fn with(self, other: ConnFlags) -> Self {
        ConnFlags(self.0 | other.0)
    }

    /// `self` with the flags of `other` removed.
    pub const fn without(self, other: ConnFlags) -> Self {
        ConnFlags(self.0 & !other.0)
    }
}

impl core::ops::BitOr for ConnFlags {
    type Output = ConnFlags;
    fn bitor(self, rhs: ConnFlags) -> ConnFlags {
        ConnFlags(self.0 | rhs.0)
    }
}

impl fmt::Debug for ConnFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnFlags({:#06x} {:?}", self.0, self.fwd_method())?;
        for (flag, name) in [
            (Self::SYNC, "SYNC"),
            (Self::HASHED, "HASHED"),
            (Self::NOOUTPUT, "NOOUTPUT"),
            (Self::INACTIVE, "INACTIVE"),
            (Self::OUT_SEQ, "OUT_SEQ"),
            (Self::IN_SEQ, "IN_SEQ"),
            (Self::NO_CPORT, "NO_CPORT"),
            (Self::TEMPLATE, "TEMPLATE"),
            (Self::ONE_PACKET, "ONE_PACKET"),
        ] {
            if self.contains(flag) {
                write!(f, " {name}")?;
            }
        }
        f.write_str(")")
    }
}
