//! The director: the object a proxy, the simulator or a trace tool embeds.
//!
//! A [`Director`] holds the virtual services (each a [`ServiceConfig`] with a
//! [`Pool`] of real servers bound to its scheduler), the connection
//! table, the statistics and rate estimators, and the sysctls. It is sans-IO: every call takes
//! `now`, nothing reads a clock.
//!
//! # Calling contract
//!
//! - **Control** at any time: [`Director::apply_command`] (one `ipvsadm` command, with the
//!   kernel's errors; on error nothing changed) and [`Director::apply_rules`] (a whole rule set,
//!   atomically, reporting a [`RulesDiff`]). [`Director::rules`] is what `ipvsadm -S` saves.
//! - **Flows**: [`Director::handle_flow`] for each packet, described without bytes
//!   ([`FlowPacket`]). It may create, re-arm or remove connections, change destination counters
//!   (and OVERLOAD), and count statistics; it never changes the rules.
//! - **Packets**: [`Director::handle_packet`] for each IP packet as bytes (with free headroom in
//!   front for tunnel headers and an output buffer for ICMP errors we build): the flow layer,
//!   then the rewrite in place by [`crate::xmit::transmit`] with the connection's
//!   [`crate::xmit::Mapping`], plus related ICMP errors (spec 3.7). The routing facts it needs
//!   (local addresses, route MTU, `pmtu_disc`) are [`DirectorConfig::packet`]; the IPv4
//!   identification counter belongs to the director. A caller uses either `handle_flow` or
//!   `handle_packet` for a given packet, never both.
//! - **Timers**: after any call, [`Director::poll_timeout`] says when [`Director::handle_timeout`]
//!   wants to run (connection expiry, the 2 s rate estimator tick, lblc/lblcr cache expiry, the
//!   60 s trash timer). Each `handle_timeout` call does bounded work; call it again while
//!   `poll_timeout() <= now`.
//! - **Hints** (optional): a driver that knows a flow's packets before they happen (a
//!   simulator) takes the flow's [`FlowHint`] once ([`Director::flow_hint`]), reads its
//!   table buckets into the caches ahead of time ([`Director::prefetch`], several at once so
//!   that the cache misses overlap), and hands each packet of the flow over with it
//!   ([`Director::handle_flow_hinted`]), which then does not hash the key again. Verdicts,
//!   counters and state are the same as with `handle_flow`.
//! - **Time** never goes backwards: an earlier `now` than one already seen is a caller bug
//!   (debug assertion) and is clamped to the latest time seen in release builds.
//! - **Observation**: [`Director::snapshot`] (for [`crate::rules::listing::list`]),
//!   [`Director::connections`] (for `ipvsadm -L -n -c`), [`Director::conn`], [`Director::stats`],
//!   [`Director::flow_counters`].
//!
//! ```
//! use lvs_core::director::{Director, DirectorConfig, FlowPacket, FlowVerdict, PacketDir};
//! use lvs_core::conn::HashKey;
//! use lvs_core::rules::RuleSet;
//! use lvs_core::{Instant, Protocol};
//!
//! let mut d = Director::new(DirectorConfig::new(1024, HashKey::from_u128(7)));
//! let rules = RuleSet::from_text("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m\n").unwrap();
//! d.apply_rules(Instant::ZERO, &rules).unwrap();
//! let syn = FlowPacket {
//!     protocol: Protocol::Tcp,
//!     src: "192.0.2.7:40000".parse().unwrap(),
//!     dst: "10.0.0.1:80".parse().unwrap(),
//!     fwmark: 0,
//!     tcp_flags: 0x02,
//!     len: 60,
//!     dir: PacketDir::FromClient,
//! };
//! match d.handle_flow(Instant::from_secs(1), &syn) {
//!     FlowVerdict::Forward { dest, new, .. } => {
//!         assert_eq!(dest, "10.1.0.1:8080".parse().unwrap());
//!         assert!(new);
//!     }
//!     v => panic!("{v:?}"),
//! }
//! let info = d.conn(Protocol::Tcp, syn.src, syn.dst).unwrap();
//! assert_eq!(info.state, "SYN_RECV");
//! ```
//!
//! # Deliberate differences from IPVS (documented where they apply)
//! - `cache_bypass` is not supported: with no destination the verdict is always
//!   [`FlowVerdict::NoDestination`].
//! - The drop_entry / drop_packet defences and memory pressure are not modelled; `secure_tcp`
//!   only selects the TCP state table (values 2 and 3 engage it).
//! - SCTP has no state machine here; any SCTP packet may create a connection (as with
//!   `sloppy_sctp`).
//! - `schedule_icmp` is not supported: an ICMP error that matches no connection is never
//!   scheduled ([`PacketVerdict::NotOurs`]). The tunnel special case of spec 3.7 (an error
//!   about one of the director's own tunnel packets, answered with a new error to the client)
//!   is not implemented either: such errors are not ours.
//! - Related ICMP errors count in the byte statistics as the kernel does, but not in
//!   [`FlowCounters`] (which count the flow layer's verdicts).
//! - Deleting a real server with `expire_nodest_conn = 1` expires its connections at once
//!   (the kernel does it from a work queue shortly after).

mod flow;
mod packet;
pub mod stats;
pub mod sync;

use core::net::{IpAddr, SocketAddr};

use hashbrown::HashMap;
use rand_core::RngCore;

use crate::conn::accounting::{apply_bind, apply_edit, apply_state_change, apply_unbind};
use crate::conn::{
    ActiveStates, ConnFlags, ConnId, ConnTable, ConnTableConfig, DestDelta, Expired, FwdMethod,
    HashKey, InKey, OutKey, TcpTable, Thresholds,
};
use crate::protocol::Protocol;
use crate::rules::listing::{ConnEntry, DestSnapshot, ServiceSnapshot, Snapshot, Stats};
use crate::rules::{
    Command, DestConfig, Family, Forward, RuleError, RuleSet, ServiceConfig, ServiceKey,
};
use crate::sched::pool::{Pool, PoolError};
use crate::sched::{DestId, DestInfo, SchedConfig, SchedKind};
use crate::time::{Duration, Instant};

pub use packet::{PacketConfig, PacketDrop, PacketVerdict};
pub use stats::{Estimator, StatsCell};
pub use sync::{SyncApplied, SyncBackupConfig, SyncMasterConfig, SyncSkip, SyncStats};

/// The sysctls (`/proc/sys/net/ipv4/vs/*`) that change the director's decisions, with the
/// kernel's defaults (spec §6.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sysctls {
    /// `expire_nodest_conn` (default off): a packet of a connection whose real server was
    /// deleted expires it and is treated as new, instead of being dropped; a SYN on a
    /// connection to a weight-0 real server is rescheduled.
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template` (default off): persistence templates of weight-0 real
    /// servers are invalid.
    pub expire_quiescent_template: bool,
    /// `conn_reuse_mode` (default 1): 0 never reschedules a SYN that matches a connection;
    /// non-zero reschedules it on TIME_WAIT / CLOSE connections without a controller; bit 2
    /// also on FIN_WAIT connections with NOOUTPUT (DR / TUN).
    pub conn_reuse_mode: u8,
    /// `sloppy_tcp` (default off): any non-RST TCP segment may create a connection.
    pub sloppy_tcp: bool,
    /// `secure_tcp` 0..=3 (default 0). Only the TCP state table is modelled: 2 (automatic,
    /// engaged) and 3 (always) use the secure table; 0 and 1 the normal one. Without a memory
    /// model the value does not flip by itself.
    pub secure_tcp: u8,
    /// `schedule_icmp` (default off): ICMP errors may create connections. Only meaningful to
    /// packet handling; the flow layer has no ICMP packets.
    pub schedule_icmp: bool,
    /// `nat_icmp_send` (default off): a packet from a NAT real server's address and port that
    /// matches no connection gets an ICMP port unreachable (except TCP RST) and is dropped.
    pub nat_icmp_send: bool,
    /// `cache_bypass` (default off). **Not supported**: kept so configurations round-trip; a
    /// service without a usable destination always answers [`FlowVerdict::NoDestination`].
    pub cache_bypass: bool,
    /// `run_estimation` (default on): the 2 s rate estimator runs.
    pub run_estimation: bool,
    /// Count only ESTABLISHED as active, as 3.x / 4.x kernels did (default off). Read once by
    /// [`Director::new`] (the connection table is built with it).
    pub legacy_active_states: bool,
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls {
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: 1,
            sloppy_tcp: false,
            secure_tcp: 0,
            schedule_icmp: false,
            nat_icmp_send: false,
            cache_bypass: false,
            run_estimation: true,
            legacy_active_states: false,
        }
    }
}

impl Sysctls {
    /// The TCP state table `secure_tcp` selects.
    pub fn tcp_table(&self) -> TcpTable {
        if self.secure_tcp >= 2 {
            TcpTable::Secure
        } else {
            TcpTable::Normal
        }
    }
}

/// Construction parameters of a [`Director`].
#[derive(Clone, Debug)]
pub struct DirectorConfig {
    /// Most connections and templates at once (the table is allocated once; its indexes may
    /// grow up to this size instead, see `grow_conn_indexes`).
    pub conn_capacity: u32,
    /// Secret key of the connection table's hash (draw it from a CSPRNG in the driver).
    pub hash_key: HashKey,
    /// Sysctls.
    pub sysctls: Sysctls,
    /// Scheduler settings (hash generation, mh table size, lblc expiration).
    pub sched: SchedConfig,
    /// Seed of the randomness given to schedulers (twos). Same seed, same decisions.
    pub rng_seed: u64,
    /// Most connections expired by one [`Director::handle_timeout`] call.
    pub expire_limit: usize,
    /// Routing facts of the packet path ([`Director::handle_packet`]): local addresses, route
    /// MTU, `pmtu_disc`, the first IPv4 identification.
    pub packet: PacketConfig,
    /// Grow the connection table's indexes with the live entries instead of allocating them
    /// for `conn_capacity` at once ([`ConnTableConfig::grow_indexes`]): for offline drivers
    /// whose capacity is a loose upper bound. Default false.
    pub grow_conn_indexes: bool,
}

impl DirectorConfig {
    /// Defaults with the given capacity and hash key.
    pub fn new(conn_capacity: u32, hash_key: HashKey) -> Self {
        DirectorConfig {
            conn_capacity,
            hash_key,
            sysctls: Sysctls::default(),
            sched: SchedConfig::default(),
            rng_seed: 0x5eed,
            expire_limit: crate::conn::table::DEFAULT_EXPIRE_LIMIT,
            packet: PacketConfig::default(),
            grow_conn_indexes: false,
        }
    }
}

/// Which way a packet travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketDir {
    /// Client → virtual service (or to a connection's virtual address).
    FromClient,
    /// Real server → client, seen by the director (NAT replies).
    FromServer,
}

/// A packet described without bytes: what the flow layer needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowPacket {
    /// Transport protocol.
    pub protocol: Protocol,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// The packet's firewall mark (0 = none).
    pub fwmark: u32,
    /// The raw TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10); ignored for UDP.
    pub tcp_flags: u8,
    /// L3 length (IP header and payload), counted in the byte statistics.
    pub len: u32,
    /// Direction.
    pub dir: PacketDir,
}

/// Why the director dropped a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The connection's real server was deleted and `expire_nodest_conn` is off.
    DestUnavailable,
    /// A non-persistent, non-fwmark service got a packet for another port. Never produced
    /// now: `ip_vs_schedule` leaves such a packet to `ip_vs_leave` (an FTP service passes it
    /// to the local stack, [`FlowVerdict::NotOurs`]; a port-0 service, which the rules
    /// refuse without persistence, would answer [`FlowVerdict::NoDestination`]). Kept so the
    /// counter indexes of [`DropReason::ALL`] stay as they were.
    PortMismatch,
    /// The connection (or template) could not be created: the table is full.
    TableFull,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 3] = [
        DropReason::DestUnavailable,
        DropReason::PortMismatch,
        DropReason::TableFull,
    ];

    const fn index(self) -> usize {
        self as usize
    }
}

/// What to do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowVerdict {
    /// Forward to a real server.
    Forward {
        /// The connection (`None` for one-packet scheduling: nothing was kept).
        conn: Option<ConnId>,
        /// Where the packet goes: the real server's address and the connection's destination
        /// port (for port-0 and fwmark services the client's original port, unless the real
        /// server has a port and the packet's port is the service port).
        dest: SocketAddr,
        /// How.
        method: Forward,
        /// Whether the connection was created by this packet.
        new: bool,
    },
    /// A reply of a known connection: rewrite its source to `src` (the virtual address and
    /// port) and send it to the client.
    Reply {
        /// The new source address and port.
        src: SocketAddr,
    },
    /// Drop the packet and send ICMP port unreachable to its source: a service matched but no
    /// real server is available (spec §6.1), or with `nat_icmp_send` an unknown packet from a
    /// NAT real server.
    NoDestination,
    /// Not for IPVS: pass it to the local stack (no service, or not a packet that creates a
    /// connection).
    NotOurs,
    /// Drop it silently.
    Drop(DropReason),
}

/// A connection as tools see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The entry.
    pub id: ConnId,
    /// State name as `ipvsadm -L -n -c` prints it.
    pub state: &'static str,
    /// Real server address and the connection's destination port.
    pub dest: SocketAddr,
    /// Forwarding method.
    pub method: Forward,
    /// When it expires if no packet comes.
    pub expires: Instant,
    /// Whether a persistence template controls it.
    pub controlled: bool,
    /// Input packets counted.
    pub in_pkts: u32,
    /// Raw flags.
    pub flags: ConnFlags,
}

/// Outcome counters of the flow layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// Packets forwarded to a real server.
    pub forwarded: u64,
    /// Replies rewritten.
    pub replies: u64,
    /// Connections created by scheduling (one-packet ones included).
    pub scheduled: u64,
    /// [`FlowVerdict::NoDestination`] answers.
    pub no_destination: u64,
    /// [`FlowVerdict::NotOurs`] answers.
    pub not_ours: u64,
    /// Drops, by [`DropReason`] (index as in [`DropReason::ALL`]).
    pub dropped: [u64; 3],
    /// Connections expired by conn_reuse_mode or expire_nodest_conn.
    pub rescheduled: u64,
}

impl FlowCounters {
    /// Drops for one reason.
    pub fn drops(&self, r: DropReason) -> u64 {
        self.dropped[r.index()]
    }
}

/// What [`Director::apply_rules`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesDiff {
    /// Services created.
    pub services_added: Vec<ServiceKey>,
    /// Services deleted (their real servers went to the trash).
    pub services_removed: Vec<ServiceKey>,
    /// Services whose configuration changed (`-E`).
    pub services_edited: Vec<ServiceKey>,
    /// Real servers added (or revived from the trash).
    pub dests_added: Vec<(ServiceKey, SocketAddr)>,
    /// Real servers deleted from services that stay.
    pub dests_removed: Vec<(ServiceKey, SocketAddr)>,
    /// Real servers whose configuration changed (`-e`).
    pub dests_edited: Vec<(ServiceKey, SocketAddr)>,
    /// Whether `--set` timeouts changed.
    pub timeouts_changed: bool,
}

impl RulesDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == RulesDiff::default()
    }
}

/// The trash period (`IP_VS_DEST_TRASH_PERIOD`, 120 s): a deleted real server with no
/// references is freed after being idle this long; the trash timer runs every half period.
const TRASH_PERIOD: Duration = Duration::from_secs(120);
/// The trash timer's period (`IP_VS_DEST_TRASH_PERIOD >> 1`).
const TRASH_TIMER: Duration = Duration::from_secs(60);
/// Up to this many services a scan of `svc_list` beats hashing the key.
const FEW_SERVICES: usize = 8;

/// One virtual service.
#[derive(Debug)]
struct Service {
    config: ServiceConfig,
    pool: Pool,
    stats: StatsCell,
}

/// A real server in the trash (deleted, still referenced or not yet reaped).
#[derive(Clone, Debug)]
struct Trashed {
    info: DestInfo,
    idle_start: Option<Instant>,
    /// Its service was deleted since: the kernel's `dest->svc` still names the old service
    /// object, so a revival binds it to a new one and zeroes its statistics.
    orphaned: bool,
}

/// One real server, linked in a service or in the trash.
#[derive(Clone, Debug)]
struct Dest {
    /// Slot of its service while linked.
    svc: u32,
    /// Its service's key (trash revival matches on it).
    service: ServiceKey,
    config: DestConfig,
    /// `dest->conn_flags`: forwarding method, NOOUTPUT, INACTIVE.
    conn_flags: ConnFlags,
    thresholds: Thresholds,
    stats: StatsCell,
    trash: Option<Trashed>,
}

/// A tiny deterministic generator (SplitMix64) for the schedulers' randomness.
#[derive(Clone, Debug)]
struct SplitMix(u64);

impl RngCore for SplitMix {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// The director. See the [module docs](self) for the calling contract.
#[derive(Debug)]
pub struct Director {
    rules: RuleSet,
    sysctls: Sysctls,
    sched_config: SchedConfig,
    services: Vec<Option<Service>>,
    svc_free: Vec<u32>,
    svc_index: HashMap<ServiceKey, u32>,
    /// The entries of `svc_index`, in no particular order: `find_service` scans them while
    /// there are few (cheaper than hashing the key).
    svc_list: Vec<(ServiceKey, u32)>,
    /// Number of TCP services on port 21 (`ftpsvc_counter`).
    ftp_services: u32,
    dests: Vec<Option<Dest>>,
    dest_free: Vec<u32>,
    trash: Vec<DestId>,
    trash_timer: Option<Instant>,
    table: ConnTable,
    total: StatsCell,
    est_next: Option<Instant>,
    counters: FlowCounters,
    rng: SplitMix,
    expire_limit: usize,
    last_now: Instant,
    scratch: Vec<Expired>,
    /// A real server went to the trash since the last expire_nodest_conn flush.
    flush_pending: bool,
    /// Set from a new connection's creation to the end of its packet: counter changes update the
    /// real servers at once but reach their schedulers once, at the end
    /// ([`Director::end_deferral`]). A new TCP connection is bound active and then turned
    /// inactive by its SYN (spec 2.5): two changes, one index refresh.
    defer_refresh: bool,
    /// The real server whose scheduler has not yet seen its counters (with `defer_refresh`).
    pending_refresh: Option<DestId>,
    /// A new connection's bind delta (with `defer_refresh`), held back until its packet's
    /// state change, so that the real server's counters take both in one update (nothing
    /// reads them in between); applied alone by the next other change or the end of the
    /// deferral.
    pending_bind: Option<(DestId, DestDelta)>,
    /// Routing facts of the packet path.
    packet: PacketConfig,
    /// The next IPv4 identification for headers the director creates (tunnel outer headers,
    /// ICMP errors); owned here, no global state.
    ip_id: u16,
    /// The sync master, when running (`None`: the packet path pays one branch).
    sync_master: Option<Box<sync::MasterState>>,
    /// The backup side's settings (syncid filter, `sync_threshold`).
    sync_backup: SyncBackupConfig,
    /// Sync counters, both sides.
    sync_stats: SyncStats,
    /// Per-slot sync bookkeeping, once a master ran or a record was applied.
    sync_slots: Vec<sync::MasterSlot>,
    /// Real servers by (service slot, address, port) for applying sync records; rebuilt
    /// after any rule change.
    sync_dests: Option<sync::DestIndex>,
    /// A real server with another forwarding method than NAT was configured (it stays set):
    /// a new connection's reply key may then be the one `read_ahead_insert` reads ahead.
    /// While every real server uses NAT that key is never an entry's, and its hash is not
    /// computed.
    reply_from_vip: bool,
}

/// The connection-table hashes of a flow's key in one direction, computed once by
/// [`Director::flow_hint`] and handed back with each packet of the flow to
/// [`Director::handle_flow_hinted`] (which then skips hashing), or to [`Director::prefetch`].
///
/// A hint carries the key it was computed for and the table's hash key: a packet with
/// another key, or a director with another hash key, ignores it (and hashes as usual), so a
/// stale or mismatched hint costs time, never a wrong answer.
#[derive(Clone, Copy, Debug)]
pub struct FlowHint {
    table: HashKey,
    kind: HintKind,
}

impl FlowHint {
    /// The hint without what only the packet that opens a connection uses (the reply key of
    /// the entry it would create): for the flow's later packets, so that
    /// [`Director::prefetch`] reads only the bucket their lookup uses.
    pub fn without_insert(self) -> FlowHint {
        match self.kind {
            HintKind::In { key, hash, .. } => FlowHint {
                table: self.table,
                kind: HintKind::In {
                    key,
                    hash,
                    out: None,
                },
            },
            _ => self,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum HintKind {
    /// No connection-table key (`Protocol::Ip`).
    None,
    /// A client → director packet: its in-key, the exact-key hash (`None` for client port 0)
    /// and, for a packet that may open a connection while some real server does not use NAT,
    /// the out-index hash of the reply key of the entry it would create for every method but
    /// NAT (see `read_ahead_insert`; that key follows from the in-key, so the hint does not
    /// carry it).
    In {
        key: InKey,
        hash: Option<u64>,
        out: Option<u64>,
    },
    /// A server → client packet: its reply key and out-index hash.
    Out { key: OutKey, hash: u64 },
}

fn fwd_method(f: Forward) -> FwdMethod {
    FwdMethod::from_bits(f.conn_flags() as u16)
}

fn forward_of(m: FwdMethod) -> Forward {
    match m {
        FwdMethod::Masq => Forward::Masq,
        FwdMethod::LocalNode => Forward::Local,
        FwdMethod::Tunnel => Forward::Tunnel,
        // Bypass connections are never created (cache_bypass is not supported).
        FwdMethod::DirectRoute | FwdMethod::Bypass => Forward::DirectRoute,
    }
}

fn dest_conn_flags(cfg: &DestConfig) -> ConnFlags {
    // `__ip_vs_update_dest`: conn_flags = fwd method | INACTIVE (NOOUTPUT for non-NAT methods
    // is added at bind time in the kernel; the table wants it in the flags given).
    ConnFlags::for_method(fwd_method(cfg.forward)).with(ConnFlags::INACTIVE)
}

fn thresholds(cfg: &DestConfig) -> Thresholds {
    Thresholds {
        upper: cfg.u_threshold,
        lower: cfg.l_threshold,
    }
}

/// Applies a counter change of `kind` to a real server's live state.
#[inline(always)]
fn apply_kind(info: &mut DestInfo, kind: DeltaKind, delta: DestDelta, th: &Thresholds) -> bool {
    match kind {
        DeltaKind::Bind => apply_bind(info, delta, th),
        DeltaKind::State => apply_state_change(info, delta),
        DeltaKind::Unbind => apply_unbind(info, delta, th),
        DeltaKind::BindThenState(bind) => {
            apply_bind(info, bind, th);
            apply_state_change(info, delta)
        }
    }
}

/// Which kind of counter change a delta is.
#[derive(Clone, Copy)]
enum DeltaKind {
    Bind,
    State,
    Unbind,
    /// A new connection's bind (the delta carried here), then its first packet's state change
    /// (the delta passed with it): one update of the real server, as the two in a row.
    BindThenState(DestDelta),
}

impl Director {
    /// A director with no services.
    ///
    /// # Panics
    /// If `conn_capacity` is 0 or above [`crate::conn::table::MAX_CAPACITY`].
    pub fn new(config: DirectorConfig) -> Self {
        let mut tc = ConnTableConfig::new(config.conn_capacity, config.hash_key);
        tc.grow_indexes = config.grow_conn_indexes;
        tc.active = if config.sysctls.legacy_active_states {
            ActiveStates::LegacyEstablishedOnly
        } else {
            ActiveStates::Current
        };
        Director {
            rules: RuleSet::new(),
            sysctls: config.sysctls,
            sched_config: config.sched,
            services: Vec::new(),
            svc_free: Vec::new(),
            svc_index: HashMap::new(),
            svc_list: Vec::new(),
            ftp_services: 0,
            dests: Vec::new(),
            dest_free: Vec::new(),
            trash: Vec::new(),
            trash_timer: None,
            table: ConnTable::new(tc),
            total: StatsCell::default(),
            est_next: None,
            counters: FlowCounters::default(),
            rng: SplitMix(config.rng_seed),
            expire_limit: config.expire_limit.max(1),
            last_now: Instant::ZERO,
            scratch: Vec::new(),
            flush_pending: false,
            defer_refresh: false,
            pending_refresh: None,
            pending_bind: None,
            packet: config.packet,
            ip_id: config.packet.first_ip_id,
            sync_master: None,
            sync_backup: SyncBackupConfig::default(),
            sync_stats: SyncStats::default(),
            sync_slots: Vec::new(),
            sync_dests: None,
            reply_from_vip: false,
        }
    }

    /// The rules in force (what `ipvsadm -S -n` saves: `rules().save()`).
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The sysctls.
    pub fn sysctls(&self) -> &Sysctls {
        &self.sysctls
    }

    /// Changes sysctls (takes effect at the next packet; `legacy_active_states` is only read
    /// at construction).
    pub fn set_sysctls(&mut self, s: Sysctls) {
        self.sysctls = s;
    }

    /// Whether real server `id` is linked in its service (AVAILABLE, not in the trash): a
    /// client's packet on a connection bound to a real server that is not is dropped, or
    /// with `expire_nodest_conn` its connection expired, before any state change.
    pub fn dest_available(&self, id: DestId) -> bool {
        matches!(self.dests.get(id.0 as usize), Some(Some(d)) if d.trash.is_none())
    }

    /// The connection table (read-only: lookups, listing, outcome counters).
    pub fn table(&self) -> &ConnTable {
        &self.table
    }

    /// Flow-layer outcome counters.
    pub fn flow_counters(&self) -> &FlowCounters {
        &self.counters
    }

    /// The director-wide traffic counters (since the last `-Z` of everything).
    pub fn stats(&self) -> Stats {
        self.total.read()
    }

    /// The director-wide counters with their estimator.
    pub fn total_stats(&self) -> &StatsCell {
        &self.total
    }

    /// Real servers in the trash.
    pub fn trash_len(&self) -> usize {
        self.trash.len()
    }

    fn clamp(&mut self, now: Instant) -> Instant {
        debug_assert!(now >= self.last_now, "time went backwards");
        let now = now.max(self.last_now);
        self.last_now = now;
        now
    }

    // ----- control plane -------------------------------------------------------------------

    /// Applies one `ipvsadm` command with the kernel's checks and errors (those of
    /// [`RuleSet::apply`], plus [`RuleError::SchedulerFull`] when an mh service has no room and
    /// [`RuleError::SyncMixedFamily`] for a real server of the other address family while the
    /// sync master runs). On error nothing changed.
    pub fn apply_command(&mut self, now: Instant, cmd: &Command) -> Result<(), RuleError> {
        let now = self.clamp(now);
        self.check_sync_family(&self.rules, cmd)?;
        let edited = match cmd {
            Command::EditService(cfg) => self.rules.service(&cfg.key).map(|(c, _)| c.clone()),
            _ => None,
        };
        self.rules.apply(cmd)?;
        match cmd {
            // The mh table bounds the number of real servers (`EINVAL` from the scheduler);
            // checked after the rule checks so that their errors come first. The new real
            // server is at the head, so deleting it restores the list.
            Command::AddDest(key, d) => {
                if let Err(e) = self.check_capacity(key, &self.rules) {
                    let _ = self.rules.apply(&Command::DeleteDest {
                        service: *key,
                        addr: d.addr,
                        port: d.port,
                    });
                    return Err(e);
                }
            }
            // `-E -s mh` binds mh to the real servers already there (`ip_vs_bind_scheduler`
            // fails with `EINVAL` when they do not fit). The kernel has by then unbound the
            // old scheduler; here the service keeps its previous configuration.
            Command::EditService(cfg) => {
                if let Err(e) = self.check_capacity(&cfg.key, &self.rules) {
                    if let Some(old) = edited {
                        let _ = self.rules.apply(&Command::EditService(old));
                    }
                    return Err(e);
                }
            }
            _ => {}
        }
        self.exec(now, cmd);
        self.flush_nodest(now);
        Ok(())
    }

    /// `ip_vs_genl_set_cmd`: while a sync daemon runs, adding or editing a real server of the
    /// other address family than its service fails with `EINVAL`, after the service lookup
    /// and before the kernel's other real-server checks. (Only the master is a running state
    /// here; a backup is whatever calls [`Director::apply_sync`].)
    fn check_sync_family(&self, rules: &RuleSet, cmd: &Command) -> Result<(), RuleError> {
        if self.sync_master.is_none() {
            return Ok(());
        }
        if let Command::AddDest(key, d) | Command::EditDest(key, d) = cmd {
            if Family::of(&d.addr) != key.family() {
                rules.precheck_dest(key, d)?;
                return Err(RuleError::SyncMixedFamily(d.addr));
            }
        }
        Ok(())
    }

    fn check_capacity(&self, key: &ServiceKey, rules: &RuleSet) -> Result<(), RuleError> {
        if let Some((cfg, dests)) = rules.service(key) {
            if cfg.scheduler == SchedKind::Mh
                && dests.len() > self.sched_config.mh_table_size as usize
            {
                return Err(RuleError::SchedulerFull(cfg.scheduler));
            }
        }
        Ok(())
    }

    /// Replaces the whole rule set atomically: services and real servers the diff leaves
    /// unchanged keep their scheduler state, counters and connections. Services are deleted,
    /// edited and added, then real servers per service are deleted, edited and added (new ones
    /// in reverse list order, so they end up at the head in `rules`' order). Kept services keep
    /// their creation position. On error (a command the kernel would refuse) nothing changed.
    pub fn apply_rules(&mut self, now: Instant, rules: &RuleSet) -> Result<RulesDiff, RuleError> {
        let now = self.clamp(now);
        let mut diff = RulesDiff::default();
        let mut cmds = Vec::new();
        let old = &self.rules;
        for (cfg, _) in old.services() {
            if rules.service(&cfg.key).is_none() {
                cmds.push(Command::DeleteService(cfg.key));
                diff.services_removed.push(cfg.key);
            }
        }
        for (cfg, dests) in rules.services() {
            match old.service(&cfg.key) {
                Some((ocfg, odests)) => {
                    if ocfg != cfg {
                        cmds.push(Command::EditService(cfg.clone()));
                        diff.services_edited.push(cfg.key);
                    }
                    for od in odests {
                        if !dests.iter().any(|d| d.addr == od.addr && d.port == od.port) {
                            cmds.push(Command::DeleteDest {
                                service: cfg.key,
                                addr: od.addr,
                                port: od.port,
                            });
                            diff.dests_removed
                                .push((cfg.key, SocketAddr::new(od.addr, od.port)));
                        }
                    }
                    for d in dests {
                        if let Some(od) = odests
                            .iter()
                            .find(|od| od.addr == d.addr && od.port == d.port)
                        {
                            if od != d {
                                cmds.push(Command::EditDest(cfg.key, *d));
                                diff.dests_edited
                                    .push((cfg.key, SocketAddr::new(d.addr, d.port)));
                            }
                        }
                    }
                    for d in dests.iter().rev() {
                        if !odests
                            .iter()
                            .any(|od| od.addr == d.addr && od.port == d.port)
                        {
                            cmds.push(Command::AddDest(cfg.key, *d));
                            diff.dests_added
                                .push((cfg.key, SocketAddr::new(d.addr, d.port)));
                        }
                    }
                }
                None => {
                    cmds.push(Command::AddService(cfg.clone()));
                    diff.services_added.push(cfg.key);
                    for d in dests.iter().rev() {
                        cmds.push(Command::AddDest(cfg.key, *d));
                        diff.dests_added
                            .push((cfg.key, SocketAddr::new(d.addr, d.port)));
                    }
                }
            }
        }
        if rules.timeouts() != old.timeouts() {
            cmds.push(Command::SetTimeouts(rules.timeouts()));
            diff.timeouts_changed = true;
        }
        // Validate everything on a copy first: all or nothing.
        let mut probe = self.rules.clone();
        for c in &cmds {
            self.check_sync_family(&probe, c)?;
            probe.apply(c)?;
        }
        for (cfg, _) in rules.services() {
            self.check_capacity(&cfg.key, &probe)?;
        }
        for c in &cmds {
            self.exec(now, c);
        }
        self.flush_nodest(now);
        self.rules = probe;
        Ok(diff)
    }

    /// Carries out a command the rule mirror accepted.
    fn exec(&mut self, now: Instant, cmd: &Command) {
        self.sync_dests = None;
        match cmd {
            Command::AddService(cfg) => self.add_service(now, cfg),
            Command::EditService(cfg) => {
                if let Some(s) = self.service_mut(&cfg.key) {
                    // `ip_vs_edit_service` rebinds only on a scheduler change; new -b flags
                    // alone keep the scheduler and its state.
                    if s.pool.kind() != cfg.scheduler {
                        s.pool.set_scheduler(cfg.scheduler, cfg.flags);
                        // `init_service` arms the lblc / lblcr timer now.
                        s.pool.handle_timeout(now);
                    } else if s.pool.flags() != cfg.flags {
                        s.pool.set_flags(cfg.flags);
                    }
                    s.config = cfg.clone();
                }
            }
            Command::DeleteService(key) => self.delete_service(now, key),
            Command::AddDest(key, d) => self.add_dest(now, key, d),
            Command::EditDest(key, d) => self.edit_dest(key, d),
            Command::DeleteDest {
                service,
                addr,
                port,
            } => {
                if let Some(id) = self.find_dest(service, *addr, *port) {
                    self.trash_dest(now, id);
                }
            }
            Command::Clear => {
                // In slot order (deterministic), not hash order.
                let keys: Vec<ServiceKey> = self
                    .services
                    .iter()
                    .flatten()
                    .map(|s| s.config.key)
                    .collect();
                for k in keys {
                    self.delete_service(now, &k);
                }
            }
            Command::SetTimeouts(t) => {
                let _ = self.table.timeouts_mut().apply_set(
                    t.tcp_secs as u64,
                    t.tcpfin_secs as u64,
                    t.udp_secs as u64,
                    crate::conn::Timeouts::IPVSADM_MAX_SECS,
                );
            }
            Command::Zero(key) if key.is_none_or(|k| k.zeroes_all()) => {
                self.total.zero();
                for s in self.services.iter_mut().flatten() {
                    s.stats.zero();
                }
                for d in self.dests.iter_mut().flatten() {
                    if d.trash.is_none() {
                        d.stats.zero();
                    }
                }
            }
            Command::Zero(key) => {
                if let Some(i) = key.and_then(|k| self.service_index(&k)) {
                    if let Some(s) = self.services[i as usize].as_mut() {
                        s.stats.zero();
                        let ids: Vec<DestId> = s.pool.dests().iter().map(|d| d.id).collect();
                        for id in ids {
                            if let Some(Some(d)) = self.dests.get_mut(id.0 as usize) {
                                d.stats.zero();
                            }
                        }
                    }
                }
            }
        }
    }

    fn service_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        let i = self.service_index(key)?;
        self.services[i as usize].as_mut()
    }

    fn add_service(&mut self, now: Instant, cfg: &ServiceConfig) {
        let mut svc = Service {
            config: cfg.clone(),
            pool: Pool::new(cfg.scheduler, cfg.flags, &self.sched_config),
            stats: StatsCell::default(),
        };
        // `init_service` arms the lblc / lblcr timer when the scheduler is bound (the first
        // `handle_timeout` of a scheduler arms it), not at the first packet.
        svc.pool.handle_timeout(now);
        let i = match self.svc_free.pop() {
            Some(i) => {
                self.services[i as usize] = Some(svc);
                i
            }
            None => {
                self.services.push(Some(svc));
                (self.services.len() - 1) as u32
            }
        };
        if self.svc_index.insert(cfg.key, i).is_some() {
            self.svc_list.retain(|(k, _)| *k != cfg.key);
        }
        self.svc_list.push((cfg.key, i));
        if is_ftp(&cfg.key) {
            self.ftp_services += 1;
        }
        // The estimator starts with the first service.
        if self.est_next.is_none() {
            self.est_next = Some(now + stats::ESTIMATOR_PERIOD);
        }
    }

    fn delete_service(&mut self, now: Instant, key: &ServiceKey) {
        let Some(i) = self.svc_index.remove(key) else {
            return;
        };
        self.svc_list.retain(|(k, _)| k != key);
        let ids: Vec<DestId> = self.services[i as usize]
            .as_ref()
            .map(|s| s.pool.dests().iter().map(|d| d.id).collect())
            .unwrap_or_default();
        for id in ids {
            self.trash_dest(now, id);
        }
        // Every real server of this service in the trash (just now or before) keeps naming
        // the deleted service object.
        for id in &self.trash {
            if let Some(d) = self.dests[id.0 as usize].as_mut() {
                if d.service == *key {
                    if let Some(t) = d.trash.as_mut() {
                        t.orphaned = true;
                    }
                }
            }
        }
        self.services[i as usize] = None;
        self.svc_free.push(i);
        if is_ftp(key) {
            self.ftp_services -= 1;
        }
    }

    fn find_dest(&self, key: &ServiceKey, addr: IpAddr, port: u16) -> Option<DestId> {
        let i = self.service_index(key)?;
        self.services[i as usize].as_ref()?.pool.find(addr, port)
    }

    fn add_dest(&mut self, now: Instant, key: &ServiceKey, cfg: &DestConfig) {
        let Some(svc) = self.service_index(key) else {
            return;
        };
        self.reply_from_vip |= cfg.forward != Forward::Masq;
        // `ip_vs_trash_get_dest`: the same address and port of the same service revives the
        // old object with its counters and statistics; `__ip_vs_update_dest` zeroes the
        // statistics when the service object is another one (the service was re-created).
        let revived = self.trash.iter().position(|id| {
            self.dests[id.0 as usize].as_ref().is_some_and(|d| {
                d.service == *key && d.config.addr == cfg.addr && d.config.port == cfg.port
            })
        });
        let info = match revived {
            Some(pos) => {
                let id = self.trash.swap_remove(pos);
                let d = self.dests[id.0 as usize].as_mut().expect("trashed dest");
                let trashed = d.trash.take().expect("in trash");
                let mut info = trashed.info;
                let old_th = d.thresholds;
                d.svc = svc;
                d.config = *cfg;
                d.conn_flags = dest_conn_flags(cfg);
                d.thresholds = thresholds(cfg);
                // Its estimator goes back on the 2 s list as it was (`ip_vs_start_estimator`
                // touches neither the averages nor the last sample): the next sample takes in
                // what was counted between the last one and the delete. Revived into a service
                // created again (another service object), its statistics start from zero
                // (`__ip_vs_update_dest` zeroes them when the service changed).
                if trashed.orphaned {
                    d.stats.zero();
                }
                info.weight = cfg.weight;
                if cfg.weight != 0 {
                    info.last_weight = cfg.weight;
                }
                apply_edit(&mut info, &old_th, &d.thresholds);
                info
            }
            None => {
                let dest = Dest {
                    svc,
                    service: *key,
                    config: *cfg,
                    conn_flags: dest_conn_flags(cfg),
                    thresholds: thresholds(cfg),
                    stats: StatsCell::default(),
                    trash: None,
                };
                let id = match self.dest_free.pop() {
                    Some(i) => {
                        self.dests[i as usize] = Some(dest);
                        i
                    }
                    None => {
                        self.dests.push(Some(dest));
                        (self.dests.len() - 1) as u32
                    }
                };
                DestInfo::new(DestId(id), cfg.addr, cfg.port, cfg.weight)
            }
        };
        let id = info.id;
        if let Some(s) = self.services[svc as usize].as_mut() {
            if let Err(PoolError::Full(_) | PoolError::Exists) = s.pool.insert(info.clone()) {
                // Checked before (mirror and capacity); keep the object consistent anyway.
                self.put_in_trash(now, id, info);
            }
        }
        if self.trash.is_empty() {
            self.trash_timer = None;
        }
    }

    fn edit_dest(&mut self, key: &ServiceKey, cfg: &DestConfig) {
        let Some(id) = self.find_dest(key, cfg.addr, cfg.port) else {
            return;
        };
        self.reply_from_vip |= cfg.forward != Forward::Masq;
        let d = self.dests[id.0 as usize].as_mut().expect("linked dest");
        let old_th = d.thresholds;
        d.config = *cfg;
        d.conn_flags = dest_conn_flags(cfg);
        d.thresholds = thresholds(cfg);
        let new_th = d.thresholds;
        let svc = d.svc;
        if let Some(s) = self.services[svc as usize].as_mut() {
            s.pool.edit(id, |info| {
                info.weight = cfg.weight;
                if cfg.weight != 0 {
                    info.last_weight = cfg.weight;
                }
                apply_edit(info, &old_th, &new_th);
            });
        }
    }

    /// Unlinks a real server from its service and puts it in the trash.
    fn trash_dest(&mut self, now: Instant, id: DestId) {
        let Some(svc) = self.dests[id.0 as usize].as_ref().map(|d| d.svc) else {
            return;
        };
        let Some(info) = self.services[svc as usize]
            .as_mut()
            .and_then(|s| s.pool.remove(id))
        else {
            return;
        };
        self.put_in_trash(now, id, info);
    }

    fn put_in_trash(&mut self, now: Instant, id: DestId, info: DestInfo) {
        if let Some(d) = self.dests[id.0 as usize].as_mut() {
            d.trash = Some(Trashed {
                info,
                idle_start: None,
                orphaned: false,
            });
            if self.trash.is_empty() || self.trash_timer.is_none() {
                self.trash_timer = Some(now + TRASH_TIMER);
            }
            self.trash.push(id);
            // The kernel queues the flush when a real server is deleted with the sysctl on.
            self.flush_pending |= self.sysctls.expire_nodest_conn;
        }
    }

    /// With `expire_nodest_conn`, recent kernels delete every connection of unavailable real
    /// servers (and then-unused templates) from a work queue (`ip_vs_expire_nodest_conn_flush`).
    /// Done here at once: an O(table) walk, on the control path only.
    fn flush_nodest(&mut self, now: Instant) {
        if !self.flush_pending {
            return;
        }
        self.flush_pending = false;
        let victims: Vec<(ConnId, bool)> = self
            .table
            .iter()
            .filter(|c| c.n_control == 0)
            .filter(|c| c.dest.is_some_and(|d| !self.dest_available(d)))
            .map(|c| (c.id, c.is_template()))
            .collect();
        // Connections first, so that their templates are free of them.
        for (id, _) in victims.iter().filter(|v| !v.1) {
            self.expire_conn(now, *id);
        }
        for (id, _) in victims.iter().filter(|v| v.1) {
            self.expire_conn(now, *id);
        }
        let templates: Vec<ConnId> = self
            .table
            .iter()
            .filter(|c| c.is_template() && c.n_control == 0)
            .filter(|c| c.dest.is_some_and(|d| !self.dest_available(d)))
            .map(|c| c.id)
            .collect();
        for id in templates {
            self.expire_conn(now, id);
        }
    }

    /// `ip_vs_conn_expire_now` and the unbind that follows.
    fn expire_conn(&mut self, now: Instant, id: ConnId) {
        if let Some(e) = self.table.expire_now(id, now) {
            self.on_expired(&e);
        }
        if self.sync_master.is_some() {
            self.sync_deferred(now);
        }
    }

    fn on_expired(&mut self, e: &Expired) {
        if let Some((d, delta)) = e.unbind {
            self.apply_delta(d, DeltaKind::Unbind, delta);
        }
    }

    /// The index of the service with that key: `svc_index`, or a scan of `svc_list` while it
    /// is short.
    #[inline]
    pub(super) fn service_index(&self, key: &ServiceKey) -> Option<u32> {
        debug_assert_eq!(self.svc_list.len(), self.svc_index.len());
        if self.svc_list.len() <= FEW_SERVICES {
            self.svc_list
                .iter()
                .find(|(k, _)| k == key)
                .map(|&(_, i)| i)
        } else {
            self.service_index_hashed(key)
        }
    }

    /// [`Director::service_index`] of `ServiceKey::Addr { protocol, addr, port }`, the scan
    /// comparing the fields in place (a packet's service lookups, which build no key unless
    /// the list is long).
    #[inline]
    pub(super) fn addr_service_index(
        &self,
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    ) -> Option<u32> {
        debug_assert_eq!(self.svc_list.len(), self.svc_index.len());
        if self.svc_list.len() <= FEW_SERVICES {
            self.svc_list
                .iter()
                .find(|(k, _)| {
                    matches!(*k, ServiceKey::Addr { protocol: p, addr: a, port: pt }
                        if pt == port && p == protocol && a == addr)
                })
                .map(|&(_, i)| i)
        } else {
            self.service_index_hashed(&ServiceKey::Addr {
                protocol,
                addr,
                port,
            })
        }
    }

    /// [`Director::service_index`] through `svc_index` (out of line: the scan of a short
    /// list is what a packet's lookup inlines).
    #[inline(never)]
    fn service_index_hashed(&self, key: &ServiceKey) -> Option<u32> {
        self.svc_index.get(key).copied()
    }

    /// Applies a counter change to a real server, linked (through its pool, so that indexed
    /// schedulers stay current) or in the trash.
    #[inline]
    fn apply_delta(&mut self, id: DestId, kind: DeltaKind, delta: DestDelta) {
        // An existing connection's state change, the common case, on a path of its own: a
        // few additions, where the general path's closure over every kind is a call.
        if let DeltaKind::State = kind {
            match (self.pending_bind, self.defer_refresh) {
                (None, false) => return self.apply_state_delta(id, delta),
                // A new connection's first packet: its bind, held back, then its state
                // change, likewise on a path of its own.
                (Some((b, bind)), true) if b == id => {
                    self.pending_bind = None;
                    return self.apply_bind_then_state(id, bind, delta);
                }
                _ => {}
            }
        }
        self.apply_delta_general(id, kind, delta);
    }

    /// [`Director::apply_delta`] of a new connection's bind (`bind`, pending, taken by the
    /// caller) then its first state change, during the deferral its scheduling started.
    #[inline(never)]
    fn apply_bind_then_state(&mut self, id: DestId, bind: DestDelta, delta: DestDelta) {
        let Some(Some(d)) = self.dests.get(id.0 as usize) else {
            return;
        };
        if d.trash.is_some() {
            self.apply_delta_trashed(id, DeltaKind::BindThenState(bind), delta);
            return;
        }
        let (th, svc) = (d.thresholds, d.svc);
        self.update_deferred(id, svc, |info| {
            apply_kind(info, DeltaKind::BindThenState(bind), delta, &th)
        });
    }

    /// A counter change `f` to linked real server `id` of service `svc` during a deferral:
    /// its scheduler is shown the counters when the deferral ends (`pending_refresh`).
    #[inline(always)]
    fn update_deferred(&mut self, id: DestId, svc: u32, f: impl FnOnce(&mut DestInfo) -> bool) {
        if self.pending_refresh.is_some_and(|p| p != id) {
            self.refresh_pending();
        }
        if let Some(Some(s)) = self.services.get_mut(svc as usize) {
            s.pool.update_counts_quietly(id, f);
            // A scheduler that does not watch counters has nothing to be shown.
            if s.pool.counts_watched() {
                self.pending_refresh = Some(id);
            }
        }
    }

    /// [`Director::apply_delta`] of a state change with no bind pending and no deferral.
    #[inline(never)]
    fn apply_state_delta(&mut self, id: DestId, delta: DestDelta) {
        let Some(Some(d)) = self.dests.get(id.0 as usize) else {
            return;
        };
        if d.trash.is_some() {
            self.apply_delta_trashed(id, DeltaKind::State, delta);
            return;
        }
        if let Some(Some(s)) = self.services.get_mut(d.svc as usize) {
            s.pool
                .update_counts(id, |info| apply_state_change(info, delta));
        }
    }

    /// [`Director::apply_delta`] in general.
    #[inline(never)]
    fn apply_delta_general(&mut self, id: DestId, mut kind: DeltaKind, delta: DestDelta) {
        if let Some((b, bind)) = self.pending_bind.take() {
            if b == id && matches!(kind, DeltaKind::State) {
                kind = DeltaKind::BindThenState(bind);
            } else {
                self.apply_delta(b, DeltaKind::Bind, bind);
            }
        }
        let Some(Some(d)) = self.dests.get_mut(id.0 as usize) else {
            return;
        };
        if d.trash.is_some() {
            self.apply_delta_trashed(id, kind, delta);
            return;
        }
        let th = d.thresholds;
        let svc = d.svc;
        let f = |info: &mut DestInfo| apply_kind(info, kind, delta, &th);
        if !self.defer_refresh {
            if let Some(Some(s)) = self.services.get_mut(svc as usize) {
                s.pool.update_counts(id, f);
            }
            return;
        }
        self.update_deferred(id, svc, f);
    }

    /// [`Director::apply_delta`] for a real server in the trash (out of line: rare).
    #[cold]
    #[inline(never)]
    fn apply_delta_trashed(&mut self, id: DestId, kind: DeltaKind, delta: DestDelta) {
        let Some(Some(d)) = self.dests.get_mut(id.0 as usize) else {
            return;
        };
        let th = d.thresholds;
        let Some(t) = d.trash.as_mut() else {
            return;
        };
        apply_kind(&mut t.info, kind, delta, &th);
        // lblcr's set_max reads a deleted member's live counters.
        let (service, info) = (d.service, t.info.clone());
        if let Some(s) = self
            .service_index(&service)
            .and_then(|i| self.services[i as usize].as_mut())
        {
            s.pool.removed_counts_changed(&info);
        }
    }

    /// Shows the pending real server's counters to its scheduler.
    fn refresh_pending(&mut self) {
        let Some(id) = self.pending_refresh.take() else {
            return;
        };
        let Some(Some(d)) = self.dests.get(id.0 as usize) else {
            return;
        };
        if let Some(Some(s)) = self.services.get_mut(d.svc as usize) {
            s.pool.counts_changed(id);
        }
    }

    /// Ends the deferral a scheduling decision started (see `defer_refresh`).
    #[inline]
    pub(super) fn end_deferral(&mut self) {
        if let Some((b, bind)) = self.pending_bind.take() {
            self.apply_delta(b, DeltaKind::Bind, bind);
        }
        self.defer_refresh = false;
        self.refresh_pending();
    }

    // ----- timers --------------------------------------------------------------------------

    /// When [`Director::handle_timeout`] has work: the earliest of the connection table's next
    /// expiry, the rate estimator's tick, the schedulers' timers and the trash timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.table.poll_timeout();
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.sysctls.run_estimation {
            min(self.est_next);
        }
        min(self.trash_timer);
        if let Some(m) = &self.sync_master {
            min(m.flush_deadline());
        }
        for s in self.services.iter().flatten() {
            min(s.pool.poll_timeout());
        }
        t
    }

    /// Runs what is due at `now`, with bounded work: at most `expire_limit` connections, one
    /// estimator tick, the due scheduler timers and one trash pass. Returns whether more work
    /// is already due (call again).
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        let now = self.clamp(now);
        let mut buf = core::mem::take(&mut self.scratch);
        let more = self
            .table
            .handle_timeout(now, self.expire_limit, |e| buf.push(e));
        for e in buf.drain(..) {
            self.on_expired(&e);
        }
        self.scratch = buf;
        if self.sync_master.is_some() {
            self.sync_deferred(now);
            self.sync_flush_due(now);
        }
        if let Some(t) = self.est_next {
            if t <= now {
                if self.sysctls.run_estimation {
                    self.estimate();
                }
                // Ticks stay on the 2 s grid; a late call samples once.
                let mut next = t + stats::ESTIMATOR_PERIOD;
                if next <= now {
                    let behind = (now - t).as_nanos() / stats::ESTIMATOR_PERIOD.as_nanos();
                    next = t + Duration::from_nanos(behind * stats::ESTIMATOR_PERIOD.as_nanos());
                    if next <= now {
                        next += stats::ESTIMATOR_PERIOD;
                    }
                }
                self.est_next = Some(next);
            }
        }
        for s in self.services.iter_mut().flatten() {
            if s.pool.poll_timeout().is_some_and(|t| t <= now) {
                s.pool.handle_timeout(now);
            }
        }
        if let Some(t) = self.trash_timer.filter(|&t| t <= now) {
            // A periodic timer: run it as of its due time, so late calls do not shift it.
            self.reap_trash(t);
        }
        more || self.poll_timeout().is_some_and(|t| t <= now)
    }

    fn estimate(&mut self) {
        self.total.tick();
        for s in self.services.iter_mut().flatten() {
            s.stats.tick();
        }
        for d in self.dests.iter_mut().flatten() {
            if d.trash.is_none() {
                d.stats.tick();
            }
        }
    }

    /// `ip_vs_dest_trash_expire`: frees trashed real servers that no entry references and that
    /// have been idle for the trash period; runs every half period while the trash is not empty.
    /// Entries are connections, templates and the lblc / lblcr caches of the server's service
    /// ([`Pool::holds`]), which in the kernel hold a reference to it as well.
    fn reap_trash(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.trash.len() {
            let id = self.trash[i];
            let Some(d) = self.dests[id.0 as usize].as_ref() else {
                self.trash.swap_remove(i);
                continue;
            };
            let t = d.trash.as_ref().expect("trashed dest");
            let refs =
                t.info.activeconns as u64 + t.info.inactconns as u64 + t.info.persistconns as u64;
            // The cache scan (`Pool::holds`, linear in the lblc / lblcr cache) only for a
            // server no connection references.
            let held = refs > 0
                || self
                    .service_index(&d.service)
                    .and_then(|s| self.services[s as usize].as_ref())
                    .is_some_and(|s| s.pool.holds(id));
            if held {
                i += 1;
                continue;
            }
            let slot = &mut self.dests[id.0 as usize];
            let t = slot
                .as_mut()
                .and_then(|d| d.trash.as_mut())
                .expect("trashed dest");
            match t.idle_start {
                Some(s) if now >= s + TRASH_PERIOD => {
                    *slot = None;
                    self.dest_free.push(id.0);
                    self.trash.swap_remove(i);
                }
                Some(_) => i += 1,
                None => {
                    t.idle_start = Some(now);
                    i += 1;
                }
            }
        }
        self.trash_timer = if self.trash.is_empty() {
            None
        } else {
            Some(now + TRASH_TIMER)
        };
    }

    // ----- observation ---------------------------------------------------------------------

    /// Everything `ipvsadm -L -n` shows (`--stats`, `--rate`, `--thresholds`, ...): services in
    /// creation order with their real servers in kernel list order. `conn_tab_size` is the
    /// kernel's default bucket count (4096); this table has no buckets to report.
    pub fn snapshot(&self, _now: Instant) -> Snapshot {
        let mut snap = Snapshot::default();
        for (cfg, dcfgs) in self.rules.services() {
            let Some(i) = self.service_index(&cfg.key) else {
                continue;
            };
            let Some(s) = self.services[i as usize].as_ref() else {
                continue;
            };
            let mut dests = Vec::with_capacity(dcfgs.len());
            for dc in dcfgs {
                let mut ds = DestSnapshot::new(*dc);
                if let Some(id) = s.pool.find(dc.addr, dc.port) {
                    if let Some(info) = s.pool.get(id) {
                        ds.activeconns = info.activeconns;
                        ds.inactconns = info.inactconns;
                        ds.persistconns = info.persistconns;
                    }
                    if let Some(Some(d)) = self.dests.get(id.0 as usize) {
                        ds.stats = d.stats.read();
                        ds.rates = d.stats.rates();
                    }
                }
                dests.push(ds);
            }
            snap.services.push(ServiceSnapshot {
                config: cfg.clone(),
                stats: s.stats.read(),
                rates: s.stats.rates(),
                dests,
            });
        }
        snap
    }

    /// The live state of one real server: counters and flags, if it is linked.
    pub fn dest_info(&self, key: &ServiceKey, addr: SocketAddr) -> Option<DestInfo> {
        let i = self.service_index(key)?;
        let s = self.services[i as usize].as_ref()?;
        let id = s.pool.find(addr.ip(), addr.port())?;
        s.pool.get(id).cloned()
    }

    /// Every real server object, linked or in the trash: its service, configuration, live
    /// counters (with its identity, as connections name it) and whether it is trashed.
    pub fn all_dests(&self) -> Vec<(ServiceKey, DestConfig, DestInfo, bool)> {
        let mut out = Vec::new();
        for d in self.dests.iter().flatten() {
            match &d.trash {
                Some(t) => out.push((d.service, d.config, t.info.clone(), true)),
                None => {
                    if let Some(info) = self.services[d.svc as usize].as_ref().and_then(|s| {
                        s.pool
                            .find(d.config.addr, d.config.port)
                            .and_then(|id| s.pool.get(id))
                    }) {
                        out.push((d.service, d.config, info.clone(), false));
                    }
                }
            }
        }
        out
    }

    /// A trashed real server's counters (for tests and tools), if that service key and
    /// address are in the trash.
    pub fn trashed_dest_info(&self, key: &ServiceKey, addr: SocketAddr) -> Option<DestInfo> {
        self.trash.iter().find_map(|id| {
            let d = self.dests[id.0 as usize].as_ref()?;
            (d.service == *key && d.config.addr == addr.ip() && d.config.port == addr.port())
                .then(|| d.trash.as_ref().map(|t| t.info.clone()))
                .flatten()
        })
    }

    /// The traffic counters of one linked real server since its last zeroing.
    pub fn dest_stats(&self, key: &ServiceKey, addr: SocketAddr) -> Option<&StatsCell> {
        let i = self.service_index(key)?;
        let s = self.services[i as usize].as_ref()?;
        let id = s.pool.find(addr.ip(), addr.port())?;
        self.dests[id.0 as usize].as_ref().map(|d| &d.stats)
    }

    /// The traffic counters of one service.
    pub fn service_stats(&self, key: &ServiceKey) -> Option<&StatsCell> {
        let i = self.service_index(key)?;
        self.services[i as usize].as_ref().map(|s| &s.stats)
    }

    /// Every connection and template as `ipvsadm -L -n -c` lists them (table slot order; the
    /// kernel's order is its hash order, which is not reproducible either).
    pub fn connections(&self, now: Instant) -> Vec<ConnEntry> {
        self.table
            .iter()
            .map(|c| ConnEntry {
                protocol: c.protocol,
                caddr: c.caddr,
                cport: c.cport,
                vaddr: c.vaddr,
                vport: c.vport,
                daddr: c.daddr,
                dport: c.dport,
                state: c.state_name().into(),
                expires_secs: (c.expires.saturating_duration_since(now).as_secs())
                    .min(u32::MAX as u64) as u32,
                pe: None,
            })
            .collect()
    }

    /// The connection of a client → virtual service flow, for tools.
    pub fn conn(
        &self,
        protocol: Protocol,
        client: SocketAddr,
        vip: SocketAddr,
    ) -> Option<ConnInfo> {
        let key = crate::conn::InKey::of_flow(protocol, client, vip);
        let id = self.table.lookup_in(&key)?;
        let c = self.table.get(id)?;
        Some(ConnInfo {
            id,
            state: c.state_name(),
            dest: SocketAddr::new(c.daddr, c.dport),
            method: forward_of(c.fwd_method()),
            expires: c.expires,
            controlled: c.control.is_some(),
            in_pkts: c.in_pkts,
            flags: c.flags,
        })
    }
}

fn is_ftp(key: &ServiceKey) -> bool {
    matches!(
        key,
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            port: 21,
            ..
        }
    )
}
