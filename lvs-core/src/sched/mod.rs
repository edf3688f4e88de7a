//! Schedulers: which real server a new connection goes to.
//!
//! One file per IPVS scheduler, all behind the [`Scheduler`] trait, built by name through
//! [`SchedKind`]. A scheduler sees the service's destinations as a slice of [`DestInfo`] **in
//! kernel list order** (a newly added destination is at the head, index 0), the [`FlowKey`] of
//! the packet being scheduled, and a [`SchedContext`] carrying `now` and injected randomness. It
//! answers with an index into that slice, or `None` for "no destination available".
//!
//! The owner of the destination list (a service in the director, or a test) keeps the scheduler
//! informed:
//! - [`Scheduler::update`] after the list itself changed (a destination added, removed, or its
//!   configuration edited), and once with [`DestChange::Init`] when the scheduler is bound;
//! - [`Scheduler::counts_changed`] after a destination's connection counters or its
//!   `OVERLOAD` flag changed, so that indexed schedulers (lc, wlc, sed, nq, fo, ovf, twos) keep
//!   their index current instead of scanning every destination per decision.
//!
//! Hash tables (sh, dh, mh) are rebuilt in `update`, never per decision, and no scheduler
//! allocates in [`Scheduler::schedule`] (lblc and lblcr insert into a cache that is bounded).

use core::fmt;
use core::net::IpAddr;

use rand_core::RngCore;

use crate::protocol::Protocol;
use crate::time::{Duration, Instant};

pub mod hash;
pub mod index;
pub mod pool;

pub mod dh;
pub mod fo;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod twos;
pub mod wlc;
pub mod wrr;

/// A stable identity for a real server, unique within its director for the server's lifetime.
///
/// List positions shift when servers are added or removed; caches that outlive one decision
/// (lblc, lblcr) remember a `DestId` instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestId(pub u32);

/// Destination flags (`IP_VS_DEST_F_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DestFlags(u8);

impl DestFlags {
    /// `IP_VS_DEST_F_AVAILABLE`: the destination is linked in its service.
    pub const AVAILABLE: DestFlags = DestFlags(0x1);
    /// `IP_VS_DEST_F_OVERLOAD`: the upper connection threshold was reached.
    pub const OVERLOAD: DestFlags = DestFlags(0x2);

    /// No flag set.
    pub const fn empty() -> Self {
        DestFlags(0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: DestFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets or clears the flags of `other`.
    pub fn set(&mut self, other: DestFlags, on: bool) {
        if on {
            self.0 |= other.0
        } else {
            self.0 &= !other.0
        }
    }
}

impl core::ops::BitOr for DestFlags {
    type Output = DestFlags;
    fn bitor(self, rhs: DestFlags) -> DestFlags {
        DestFlags(self.0 | rhs.0)
    }
}

/// What a scheduler sees of one real server: read-only live state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestInfo {
    /// Stable identity.
    pub id: DestId,
    /// Real server address.
    pub addr: IpAddr,
    /// Real server port (0 for port-0 / fwmark destinations that keep the client's port).
    pub port: u16,
    /// Current weight (0 = quiesced).
    pub weight: u32,
    /// The most recent non-zero weight (set on add even if 0; mh builds its table from it).
    pub last_weight: u32,
    /// Connections in an active state (`activeconns`).
    pub activeconns: u32,
    /// Connections in an inactive state (`inactconns`).
    pub inactconns: u32,
    /// Persistence templates bound to this destination (`persistconns`).
    pub persistconns: u32,
    /// AVAILABLE / OVERLOAD.
    pub flags: DestFlags,
}

impl DestInfo {
    /// A linked, unloaded destination with the given weight and no connections.
    pub fn new(id: DestId, addr: IpAddr, port: u16, weight: u32) -> Self {
        DestInfo {
            id,
            addr,
            port,
            weight,
            last_weight: weight,
            activeconns: 0,
            inactconns: 0,
            persistconns: 0,
            flags: DestFlags::AVAILABLE,
        }
    }

    /// `ip_vs_dest_conn_overhead`: `(activeconns << 8) + inactconns`, in the kernel's `int`.
    ///
    /// The counters are the kernel's `int`s and the result wraps as the kernel's does (it is
    /// built with `-fno-strict-overflow`): from 2^23 active connections the overhead is
    /// negative, and the schedulers that read it (lc as `unsigned int`, wlc, lblc, lblcr and
    /// twos as `int`) compare that value, not the true count.
    ///
    /// ```
    /// use lvs_core::sched::{DestId, DestInfo};
    /// let mut d = DestInfo::new(DestId(1), "10.0.0.1".parse().unwrap(), 80, 1);
    /// d.activeconns = 2;
    /// d.inactconns = 3;
    /// assert_eq!(d.overhead(), 515);
    /// d.activeconns = 1 << 23;
    /// assert_eq!(d.overhead(), i32::MIN + 3);
    /// ```
    #[inline]
    pub fn overhead(&self) -> i32 {
        (self.activeconns << 8).wrapping_add(self.inactconns) as i32
    }

    /// Whether the OVERLOAD flag is set.
    #[inline]
    pub fn is_overloaded(&self) -> bool {
        self.flags.contains(DestFlags::OVERLOAD)
    }

    /// Whether the destination is linked in its service (AVAILABLE).
    #[inline]
    pub fn is_available(&self) -> bool {
        self.flags.contains(DestFlags::AVAILABLE)
    }

    /// Eligible for a new connection in most schedulers: weight > 0 and not OVERLOAD.
    #[inline]
    pub fn is_eligible(&self) -> bool {
        self.weight > 0 && !self.is_overloaded()
    }
}

/// Scheduler flags of a service (`-b`): the raw `IP_VS_SVC_F_SCHED1/2/3` bits.
///
/// Their meaning depends on the scheduler: for sh and mh, SCHED1 is `*-fallback` and SCHED2 is
/// `*-port`; other schedulers ignore them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags(u8);

impl SchedFlags {
    /// `IP_VS_SVC_F_SCHED1` (0x08): sh-fallback / mh-fallback / flag-1.
    pub const SCHED1: SchedFlags = SchedFlags(0x08);
    /// `IP_VS_SVC_F_SCHED2` (0x10): sh-port / mh-port / flag-2.
    pub const SCHED2: SchedFlags = SchedFlags(0x10);
    /// `IP_VS_SVC_F_SCHED3` (0x20): flag-3.
    pub const SCHED3: SchedFlags = SchedFlags(0x20);

    /// No flag set.
    pub const fn empty() -> Self {
        SchedFlags(0)
    }

    /// Flags from the raw service-flag bits (only 0x08, 0x10 and 0x20 are kept).
    pub const fn from_bits_truncate(bits: u8) -> Self {
        SchedFlags(bits & 0x38)
    }

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: SchedFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// sh-fallback / mh-fallback.
    pub const fn fallback(self) -> bool {
        self.contains(Self::SCHED1)
    }

    /// sh-port / mh-port.
    pub const fn port(self) -> bool {
        self.contains(Self::SCHED2)
    }
}

impl core::ops::BitOr for SchedFlags {
    type Output = SchedFlags;
    fn bitor(self, rhs: SchedFlags) -> SchedFlags {
        SchedFlags(self.0 | rhs.0)
    }
}

/// The packet being scheduled, as the kernel's schedulers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Transport protocol of the packet.
    pub protocol: Protocol,
    /// Packet source address.
    pub saddr: IpAddr,
    /// Packet source port (0 for protocols without ports).
    pub sport: u16,
    /// Packet destination address.
    pub daddr: IpAddr,
    /// Packet destination port.
    pub dport: u16,
    /// The packet travels in reverse (`IP_VS_HDR_INVERSE`, e.g. an ICMP error scheduled with
    /// `schedule_icmp`): source-hashing schedulers then hash the destination side.
    pub inverse: bool,
}

impl FlowKey {
    /// A forward (client → virtual service) flow.
    pub fn new(protocol: Protocol, saddr: IpAddr, sport: u16, daddr: IpAddr, dport: u16) -> Self {
        FlowKey {
            protocol,
            saddr,
            sport,
            daddr,
            dport,
            inverse: false,
        }
    }

    /// The client address sh and mh hash: the source, or the destination for inverse packets.
    #[inline]
    pub fn client_addr(&self) -> IpAddr {
        if self.inverse {
            self.daddr
        } else {
            self.saddr
        }
    }

    /// The client port sh-port and mh-port hash: the source port (destination port for inverse
    /// packets), 0 for protocols without ports.
    #[inline]
    pub fn client_port(&self) -> u16 {
        if !self.protocol.has_ports() {
            0
        } else if self.inverse {
            self.dport
        } else {
            self.sport
        }
    }
}

/// What a scheduler may use besides destination state and the flow: time and randomness.
pub struct SchedContext<'a> {
    /// The current time (lblc and lblcr cache ages).
    pub now: Instant,
    /// Injected randomness (twos). Deterministic for a seeded generator.
    pub rng: &'a mut dyn RngCore,
}

impl fmt::Debug for SchedContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedContext")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// A change to a service's destination list, reported to [`Scheduler::update`].
///
/// Positions refer to the list as it is *after* the change, except `Removed::pos`, which is
/// where the removed destination was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestChange {
    /// The scheduler was just bound to the service (`init_service`); the list may be non-empty
    /// (e.g. `-E` switching the scheduler of a populated service).
    Init,
    /// A destination was inserted at `pos` (always 0, the head, when added through the control
    /// plane).
    Added {
        /// Where it was inserted.
        pos: usize,
    },
    /// The destination `id` was unlinked from position `pos`.
    Removed {
        /// Where it was.
        pos: usize,
        /// Who it was.
        id: DestId,
    },
    /// The destination at `pos` was edited (weight, thresholds, forwarding).
    Edited {
        /// Which one.
        pos: usize,
    },
}

/// One IPVS scheduling algorithm.
pub trait Scheduler: fmt::Debug + Send {
    /// Which algorithm this is.
    fn kind(&self) -> SchedKind;

    /// The destination list changed (or the scheduler was bound: [`DestChange::Init`]).
    /// `dests` is the whole list after the change, in kernel list order.
    fn update(&mut self, dests: &[DestInfo], change: DestChange);

    /// The counters or the OVERLOAD flag of `dests[pos]` changed. The owner of the list calls
    /// it after every such change, before the next decision ([`Pool`](pool::Pool) does):
    /// schedulers that keep an ordered index refresh it here, mh its record of usable
    /// destinations; the default does nothing.
    fn counts_changed(&mut self, dests: &[DestInfo], pos: usize) {
        let _ = (dests, pos);
    }

    /// Whether [`Scheduler::counts_changed`] can do anything while the scheduler is bound to a
    /// list of `len` destinations (as its last [`Scheduler::update`] gave it). An owner may
    /// skip the calls when it cannot: [`Pool`](pool::Pool) asks once per change of the list
    /// or of the scheduler, not per counter change. `true` by default; the least-connection
    /// family scans short lists and keeps no index for them.
    fn watches_counts(&self, len: usize) -> bool {
        let _ = len;
        true
    }

    /// Chooses a destination for a new connection: an index into `dests`, or `None` when IPVS
    /// would find no destination.
    fn schedule(
        &mut self,
        dests: &[DestInfo],
        flow: &FlowKey,
        ctx: &mut SchedContext<'_>,
    ) -> Option<usize>;

    /// The counters of `dest`, which left the list (deleted, in the trash), changed. The
    /// kernel's lblcr reads such a destination's live counters when it is still a set member
    /// (`set_max`); the default ignores them.
    fn removed_counts_changed(&mut self, dest: &DestInfo) {
        let _ = dest;
    }

    /// The service's scheduler flags (`-b`) changed without a change of scheduler. The kernel
    /// reads them from the service at each decision and does not rebind the scheduler
    /// (`ip_vs_edit_service` rebinds only when the scheduler itself changes), so the
    /// scheduler's state is kept. Schedulers that read flags (sh, mh) take the new ones; the
    /// default ignores them.
    fn set_flags(&mut self, flags: SchedFlags) {
        let _ = flags;
    }

    /// The most destinations this scheduler accepts in one service (mh: its table size).
    fn max_dests(&self) -> usize {
        usize::MAX
    }

    /// Whether the scheduler still refers to the destination `id` after it left the list (an
    /// lblc entry or an lblcr set member naming it). In the kernel such a reference is a
    /// reference count on the destination, which keeps it in the trash (revivable, its
    /// identity not reused) until the cache lets go. None by default.
    fn holds(&self, id: DestId) -> bool {
        let _ = id;
        false
    }

    /// When [`Scheduler::handle_timeout`] wants to run next (lblc / lblcr garbage collection).
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Runs timers due at `now`.
    fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
    }
}

/// Which generation of the kernel's bucket hash dh, sh, lblc and lblcr use (spec §1.9, §7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HashVariant {
    /// `hash_32(x, bits)`: the high bits of `x * 0x61C88647` (current kernels).
    #[default]
    Current,
    /// `(x * 2654435761) & mask`: the low bits (3.x / 4.x era kernels).
    Legacy,
}

/// Settings that are sysctls or build options in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedConfig {
    /// Bucket hash of dh, sh, lblc, lblcr.
    pub hash: HashVariant,
    /// mh table size M; must be one of the kernel's primes (default 4093).
    pub mh_table_size: u32,
    /// `net.ipv4.vs.lblc_expiration` (default 24 h).
    pub lblc_expiration: Duration,
    /// `net.ipv4.vs.lblcr_expiration` (default 24 h).
    pub lblcr_expiration: Duration,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            hash: HashVariant::Current,
            mh_table_size: 4093,
            lblc_expiration: Duration::from_secs(24 * 60 * 60),
            lblcr_expiration: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// The registry: every IPVS scheduler by its ipvsadm name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SchedKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection (ipvsadm's default).
    Wlc,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Maglev hashing.
    Mh,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Power of two random choices.
    Twos,
}

impl SchedKind {
    /// Every scheduler, in the order ipvsadm's man page lists them.
    pub const ALL: [SchedKind; 14] = [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Lblc,
        SchedKind::Lblcr,
        SchedKind::Dh,
        SchedKind::Sh,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Mh,
        SchedKind::Fo,
        SchedKind::Ovf,
        SchedKind::Twos,
    ];

    /// The ipvsadm name (`-s NAME`).
    pub const fn name(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Lblc => "lblc",
            SchedKind::Lblcr => "lblcr",
            SchedKind::Dh => "dh",
            SchedKind::Sh => "sh",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Mh => "mh",
            SchedKind::Fo => "fo",
            SchedKind::Ovf => "ovf",
            SchedKind::Twos => "twos",
        }
    }

    /// The scheduler with that ipvsadm name.
    ///
    /// ```
    /// use lvs_core::sched::SchedKind;
    /// assert_eq!(SchedKind::from_name("wlc"), Some(SchedKind::Wlc));
    /// assert_eq!(SchedKind::from_name("WLC"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<SchedKind> {
        SchedKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Builds a fresh scheduler instance. Bind it with `update(dests, DestChange::Init)`.
    pub fn build(self, flags: SchedFlags, config: &SchedConfig) -> Box<dyn Scheduler> {
        match self {
            SchedKind::Rr => Box::new(rr::Rr::new()),
            SchedKind::Wrr => Box::new(wrr::Wrr::new()),
            SchedKind::Lc => Box::new(lc::Lc::new()),
            SchedKind::Wlc => Box::new(wlc::Wlc::new()),
            SchedKind::Lblc => Box::new(lblc::Lblc::new(config)),
            SchedKind::Lblcr => Box::new(lblcr::Lblcr::new(config)),
            SchedKind::Dh => Box::new(dh::Dh::new(config.hash)),
            SchedKind::Sh => Box::new(sh::Sh::new(flags, config.hash)),
            SchedKind::Sed => Box::new(sed::Sed::new()),
            SchedKind::Nq => Box::new(nq::Nq::new()),
            SchedKind::Mh => Box::new(mh::Mh::new(flags, config.mh_table_size)),
            SchedKind::Fo => Box::new(fo::Fo::new()),
            SchedKind::Ovf => Box::new(ovf::Ovf::new()),
            SchedKind::Twos => Box::new(twos::Twos::new()),
        }
    }
}

impl fmt::Display for SchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for SchedKind {
    type Err = UnknownScheduler;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SchedKind::from_name(s).ok_or(UnknownScheduler)
    }
}

/// The name is not one of the fourteen IPVS schedulers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheduler (expected one of rr wrr lc wlc lblc lblcr dh sh sed nq mh fo ovf twos)")]
pub struct UnknownScheduler;
