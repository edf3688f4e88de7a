//! Connection synchronisation on the director (spec §4): the backup applying datagrams to
//! its connection table, and the master turning its traffic into datagrams.
//!
//! # Backup: [`Director::apply_sync`]
//! One received datagram (the UDP payload) at a time. It is decoded whole first
//! ([`crate::sync::decode_for_backup`]): a malformed datagram is refused with its
//! [`SyncError`], counted under its [`SyncReason`], and changes nothing. A datagram for
//! another syncid ([`SyncBackupConfig::syncid`]) is counted and ignored. Each record then goes
//! through `ip_vs_proc_conn` (spec §4.4):
//! - a connection already in the table with another real server is expired and created
//!   again when the record is active, and the record is ignored when it is INACTIVE (the late
//!   expiry message of a connection that was already replaced);
//! - an existing entry takes the record's INACTIVE / IN_SEQ / OUT_SEQ bits, moving one count
//!   between its real server's `activeconns` and `inactconns` when INACTIVE flips, and is
//!   bound to a real server if it had none;
//! - a new entry finds its real server in the backup's own services (service by fwmark, by
//!   protocol / address / port, the FTP and port-0 fallbacks; real server by address and
//!   port, by address with port 0 for non-NAT fwmark services) and takes the forwarding
//!   method from it, the INACTIVE bit from the record; without such a real server it is
//!   created **unbound** (as the kernel does: it is still forwarded, to the record's address);
//! - then the state, `in_pkts = sync_threshold[0]` and the timeout (the record's, or the
//!   protocol's timeout of the state for version 0; templates 180 s) are set and the expiry
//!   re-armed.
//!
//! Templates are matched as templates and never replaced. Synced entries are normal entries:
//! when the virtual address moves to this director, packets find them and go to the same
//! real servers ([`crate::sync::role`]).
//!
//! Records the table cannot hold are counted per [`SyncSkip`] and skipped.
//!
//! # Master: [`Director::set_sync_master`] and [`Director::poll_sync`]
//! While a master runs, every packet in the client → server direction counts `in_pkts` and
//! asks `ip_vs_sync_conn` (spec §4.3, [`crate::sync::master::decide`]) whether to send the
//! connection and then its template; a template whose expiry is deferred because it still
//! controls connections is sent again with its 60 s timeout. Records go through a
//! [`SyncBatcher`] into datagrams of at most `sync_maxlen` bytes, in the kernel's order (the
//! connection, then its controlling template). A full datagram is queued at once; a partly
//! filled one when it is 2 s old ([`Director::poll_timeout`] includes that deadline) or on
//! [`Director::flush_sync`]. The driver drains the queue with [`Director::poll_sync`] and
//! sends each datagram as one UDP payload to 224.0.0.81:8848 (TTL 1).
//!
//! Without a master the packet path pays one branch. Once a master has run or a record was
//! applied, the director keeps 16 bytes of sync bookkeeping per table slot in use (the
//! kernel's `old_state`, `sync_endtime` and a template's `in_pkts`), so that a backup that
//! takes over continues from the synced values.
//!
//! # For a replay tool
//! A master director replaying a capture through [`Director::handle_packet`] (or
//! [`Director::handle_flow`]) with a sync master running yields, from
//! [`Director::poll_sync`], exactly the UDP payloads the kernel would multicast (call
//! [`Director::handle_timeout`] as the capture's clock advances, and
//! [`Director::flush_sync`] at the end); each goes to 224.0.0.81:8848 ([`crate::sync::DEFAULT_GROUP_V4`],
//! [`crate::sync::DEFAULT_PORT`]). A backup director built from the same rules applies such payloads with
//! [`Director::apply_sync`] and lists its table as `ipvsadm -L -n -c` does with
//! [`list_conns`](crate::rules::listing::list_conns)`(&backup.connections(now), false)`:
//!
//! ```
//! use lvs_core::conn::HashKey;
//! use lvs_core::director::{Director, DirectorConfig, PacketVerdict, SyncMasterConfig};
//! use lvs_core::rules::{listing::list_conns, RuleSet};
//! use lvs_core::Instant;
//!
//! let rules = RuleSet::from_text("-A -u 10.0.0.1:53 -s rr\n-a -u 10.0.0.1:53 -r 10.1.0.1:53 -g\n")
//!     .unwrap();
//! let mut master = Director::new(DirectorConfig::new(64, HashKey::from_u128(1)));
//! master.apply_rules(Instant::ZERO, &rules).unwrap();
//! master.set_sync_master(Some(SyncMasterConfig::default()));
//! let t = Instant::from_secs(5);
//! for _ in 0..3 {
//!     // Three datagrams from 192.0.2.7:5000: the third is synced (sync_threshold 3).
//!     let mut buf = vec![0u8; 64];
//!     etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [10, 0, 0, 1], 64)
//!         .udp(5000, 53)
//!         .write(&mut buf, b"query")
//!         .unwrap();
//!     let mut out = [0u8; 576];
//!     let v = master.handle_packet(t, &mut buf, 64, &mut out);
//!     assert!(matches!(v, PacketVerdict::Forward { .. }));
//! }
//! master.flush_sync();
//! let payload = master.poll_sync(t).unwrap(); // UDP payload to 224.0.0.81:8848
//!
//! let mut backup = Director::new(DirectorConfig::new(64, HashKey::from_u128(2)));
//! backup.apply_rules(Instant::ZERO, &rules).unwrap();
//! backup.apply_sync(t, &payload).unwrap();
//! assert_eq!(
//!     list_conns(&backup.connections(t), false),
//!     "IPVS connection entries\n\
//!      pro expire state       source             virtual            destination\n\
//!      UDP 05:00  UDP         192.0.2.7:5000     10.0.0.1:53        10.1.0.1:53\n",
//! );
//! ```
//!
//! ```
//! use lvs_core::conn::HashKey;
//! use lvs_core::director::{Director, DirectorConfig, FlowPacket, PacketDir, SyncMasterConfig};
//! use lvs_core::rules::RuleSet;
//! use lvs_core::{Instant, Protocol};
//!
//! let rules = RuleSet::from_text("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g\n")
//!     .unwrap();
//! let mut master = Director::new(DirectorConfig::new(1024, HashKey::from_u128(1)));
//! let mut backup = Director::new(DirectorConfig::new(1024, HashKey::from_u128(2)));
//! master.apply_rules(Instant::ZERO, &rules).unwrap();
//! backup.apply_rules(Instant::ZERO, &rules).unwrap();
//! master.set_sync_master(Some(SyncMasterConfig::default()));
//!
//! let mut pkt = FlowPacket {
//!     protocol: Protocol::Tcp,
//!     src: "192.0.2.7:40000".parse().unwrap(),
//!     dst: "10.0.0.1:80".parse().unwrap(),
//!     fwmark: 0, tcp_flags: 0x02, len: 60, dir: PacketDir::FromClient,
//! };
//! let t = Instant::from_secs(1);
//! master.handle_flow(t, &pkt); // SYN
//! pkt.tcp_flags = 0x10;
//! master.handle_flow(t, &pkt); // ACK: ESTABLISHED
//! master.handle_flow(t, &pkt); // third packet: synced
//! master.flush_sync();
//! let datagram = master.poll_sync(t).unwrap();
//!
//! let applied = backup.apply_sync(t, &datagram).unwrap();
//! assert_eq!(applied.created, 1);
//! let c = backup.conn(Protocol::Tcp, pkt.src, pkt.dst).unwrap();
//! assert_eq!((c.state, c.dest), ("ESTABLISHED", "10.1.0.1:80".parse().unwrap()));
//! ```

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::collections::VecDeque;

use super::{DeltaKind, Director, FlowPacket, PacketDir};
use crate::conn::table::MAX_STATE;
use crate::conn::{ConnFlags, ConnId, DestDelta, FwdMethod, InKey, InsertError, NewConn, OutKey};
use crate::protocol::Protocol;
use crate::sched::DestId;
use crate::sync::backup::{self, Existing};
use crate::sync::master::{controller_pkts, decide, SyncCandidate, SyncStamp, SyncSysctls};
use crate::sync::role::RoleEffect;
use crate::sync::{
    decode_for_backup, SyncBatcher, SyncConn, SyncError, SyncReason, SyncVersion, DEFAULT_MAXLEN_V4,
};
use crate::time::{Duration, Instant};

/// A backup's settings (`ipvsadm --start-daemon backup`, sysctl `sync_threshold`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncBackupConfig {
    /// `--syncid`: 0 accepts datagrams of every syncid, others only their own.
    pub syncid: u8,
    /// `sync_threshold[0]` of this host (default 3): the `in_pkts` a synced entry starts
    /// with, so that after a takeover the master rules resume where the old master was.
    pub threshold: u32,
}

impl Default for SyncBackupConfig {
    fn default() -> Self {
        SyncBackupConfig {
            syncid: 0,
            threshold: SyncSysctls::default().threshold,
        }
    }
}

/// A master's settings (`ipvsadm --start-daemon master` and the sync sysctls).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncMasterConfig {
    /// `--syncid` written into every datagram.
    pub syncid: u8,
    /// `--sync-maxlen`: largest datagram (UDP payload); default 1472, clamped to 1..=65507.
    pub maxlen: usize,
    /// `sync_version`, `sync_threshold`, `sync_refresh_period`, `sync_retries`,
    /// `sync_persist_mode`.
    pub sysctls: SyncSysctls,
    /// `sync_qlen_max`: most datagrams waiting for [`Director::poll_sync`]; further full
    /// datagrams are dropped and counted (the kernel drops excess buffers the same way).
    pub qlen_max: usize,
}

impl Default for SyncMasterConfig {
    fn default() -> Self {
        SyncMasterConfig {
            syncid: 0,
            maxlen: DEFAULT_MAXLEN_V4,
            sysctls: SyncSysctls::default(),
            qlen_max: 4096,
        }
    }
}

/// Why a well-formed record was not applied (beyond the records the decoder already skips,
/// which are counted under their [`SyncReason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncSkip {
    /// The table stores TCP, UDP and SCTP connections and templates of those and of
    /// fwmark services (protocol 0); AH / ESP connections are not handled by this director.
    UnsupportedProtocol,
    /// A template state above 15 (the kernel only logs template states ≥ 2; the table
    /// stores 4 bits).
    StateTooLarge,
    /// The record carries persistence-engine data for a named engine: none is loaded here,
    /// and the kernel skips such records when the engine is not loaded.
    PersistenceEngine,
    /// The entry would be a one-packet connection (a version 0 record with ONE_PACKET, which
    /// version 0 does not mask): the kernel never hashes those, so no lookup could find it.
    OnePacket,
    /// A NO_CPORT connection with a client port (it could never be found).
    NoCportWithPort,
    /// The table is full and nothing could be evicted.
    TableFull,
}

impl SyncSkip {
    /// Number of reasons.
    pub const COUNT: usize = 6;

    /// Every reason, in index order.
    pub const ALL: [SyncSkip; SyncSkip::COUNT] = [
        SyncSkip::UnsupportedProtocol,
        SyncSkip::StateTooLarge,
        SyncSkip::PersistenceEngine,
        SyncSkip::OnePacket,
        SyncSkip::NoCportWithPort,
        SyncSkip::TableFull,
    ];

    /// The counter index.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short snake_case name for counters.
    pub const fn name(self) -> &'static str {
        match self {
            SyncSkip::UnsupportedProtocol => "unsupported_protocol",
            SyncSkip::StateTooLarge => "state_too_large",
            SyncSkip::PersistenceEngine => "persistence_engine",
            SyncSkip::OnePacket => "one_packet",
            SyncSkip::NoCportWithPort => "no_cport_with_port",
            SyncSkip::TableFull => "table_full",
        }
    }
}

/// What one [`Director::apply_sync`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncApplied {
    /// The datagram's format.
    pub version: SyncVersion,
    /// The datagram's syncid.
    pub syncid: u8,
    /// Whether it was ignored for its syncid (nothing else is then set).
    pub ignored_syncid: bool,
    /// Entries created.
    pub created: u32,
    /// Of those, entries left without a real server (none of this director's matches).
    pub unbound: u32,
    /// Existing entries updated.
    pub updated: u32,
    /// Of those, unbound entries bound to a real server now.
    pub bound_late: u32,
    /// Connections expired because the record names another real server (then created
    /// again).
    pub replaced: u32,
    /// INACTIVE records for a connection that has another real server, ignored.
    pub late_expiry_ignored: u32,
    /// Records the decoder skipped (counted per [`SyncReason`] in [`SyncStats`]).
    pub decoder_skipped: u32,
    /// Records skipped here (counted per [`SyncSkip`] in [`SyncStats`]).
    pub skipped: u32,
}

/// Sync counters of a director, both sides, since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Datagrams given to [`Director::apply_sync`].
    pub datagrams_received: u64,
    /// Of those, datagrams whose records were applied.
    pub datagrams_applied: u64,
    /// Refused datagrams and skipped records, per [`SyncReason`] (index
    /// [`SyncReason::index`]); [`SyncReason::SyncidIgnored`] counts datagrams of another
    /// syncid.
    pub rejected: [u64; SyncReason::COUNT],
    /// Records skipped by the director, per [`SyncSkip`].
    pub skipped: [u64; SyncSkip::COUNT],
    /// Entries created from records.
    pub created: u64,
    /// Of those, created without a real server.
    pub unbound: u64,
    /// Entries updated from records.
    pub updated: u64,
    /// Unbound entries bound by a later record.
    pub bound_late: u64,
    /// Connections replaced (another real server, active record).
    pub replaced: u64,
    /// Late expiry records ignored.
    pub late_expiry_ignored: u64,
    /// Records the master wrote.
    pub records_sent: u64,
    /// Datagrams the master queued for [`Director::poll_sync`].
    pub datagrams_sent: u64,
    /// Datagrams dropped because the queue held `qlen_max`.
    pub datagrams_dropped: u64,
    /// Records the master could not write (mixed address families, or IPv6 in version 0).
    pub encode_errors: u64,
}

impl SyncStats {
    /// Refused datagrams and skipped records for one reason.
    pub fn rejected(&self, r: SyncReason) -> u64 {
        self.rejected[r.index()]
    }

    /// Records skipped by the director for one reason.
    pub fn skipped(&self, r: SyncSkip) -> u64 {
        self.skipped[r.index()]
    }
}

/// Per-slot master bookkeeping: `old_state`, `sync_endtime` and a template's `in_pkts` (the
/// table keeps a connection's). Kept by the director once a master ran or a record was
/// applied, so that a backup taking over continues from the synced `old_state`, as the
/// kernel's `cp->old_state` does.
///
/// The [`SyncStamp`] is kept flat, so that a slot takes 16 bytes instead of 24.
#[derive(Clone, Copy, Debug)]
pub(super) struct MasterSlot {
    endtime: Instant,
    tpl_pkts: u32,
    old_state: u16,
    retries: u8,
}

const EMPTY_SLOT: MasterSlot = MasterSlot::fresh(Instant::ZERO);

/// The key a record's connection is found by from the client side.
fn record_in_key(protocol: Protocol, rec: &SyncConn) -> InKey {
    InKey {
        protocol,
        caddr: rec.caddr,
        cport: rec.cport,
        vaddr: rec.vaddr,
        vport: rec.vport,
    }
}

/// Records of a datagram whose in-key buckets are read together by [`Director::apply_sync`]
/// before they are applied (enough misses in flight to overlap, few enough to stay cached).
const PREHASH: usize = 16;

/// The running master: batcher, queue and per-slot stamps.
#[derive(Debug)]
pub(super) struct MasterState {
    cfg: SyncMasterConfig,
    batcher: SyncBatcher,
    queue: VecDeque<Vec<u8>>,
    deferred: Vec<ConnId>,
}

/// A service lookup of [`Director::apply_sync`] kept for the next record: (protocol,
/// vaddr, vport, fwmark) and the service found.
type SvcMemo = ((Protocol, IpAddr, u16, u32), Option<u32>);

/// The backup's real-server index: real servers by (service slot, address, port), for
/// applying records (pools search their lists linearly; a backup applies records for every
/// flow). Open addressing with linear probing over a power-of-two array at most half full,
/// with a multiplicative hash: the keys come from the rules (never from the network), so
/// there is no flooding to resist, and a probe ends at an empty bucket within a few steps.
#[derive(Clone, Debug)]
pub(super) struct DestIndex {
    buckets: Vec<Option<(DestKey, DestId)>>,
    shift: u32,
}

/// Service slot, real-server address and port, packed into two words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DestKey {
    /// The address (IPv4 as its 32 bits).
    addr: u128,
    /// Service slot (bits 0..32), port (32..48), IPv6 (bit 48).
    rest: u64,
}

impl DestKey {
    #[inline]
    fn new(svc: u32, addr: IpAddr, port: u16) -> DestKey {
        let (addr, v6) = match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 0),
            IpAddr::V6(a) => (u128::from(a), 1),
        };
        DestKey {
            addr,
            rest: u64::from(svc) | u64::from(port) << 32 | v6 << 48,
        }
    }

    #[inline]
    fn hash(&self) -> u64 {
        let x = (self.addr as u64) ^ ((self.addr >> 64) as u64).rotate_left(29) ^ self.rest << 7;
        (x ^ x >> 31).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

impl DestIndex {
    /// The real servers of every service.
    fn build(services: &[Option<super::Service>]) -> DestIndex {
        let n: usize = services
            .iter()
            .flatten()
            .map(|s| s.pool.dests().len())
            .sum();
        let size = (2 * n).next_power_of_two().max(8);
        let mut ix = DestIndex {
            buckets: vec![None; size],
            shift: 64 - size.trailing_zeros(),
        };
        for (i, s) in services.iter().enumerate() {
            if let Some(s) = s {
                for d in s.pool.dests() {
                    ix.insert(DestKey::new(i as u32, d.addr, d.port), d.id);
                }
            }
        }
        ix
    }

    fn insert(&mut self, k: DestKey, id: DestId) {
        let mask = self.buckets.len() - 1;
        let mut i = (k.hash() >> self.shift) as usize;
        // At most half full: an empty bucket or the key is found.
        for _ in 0..self.buckets.len() {
            match &mut self.buckets[i] {
                // A pool lists an address and port once (a duplicate is refused by the
                // rules); were there two, the later would win, as in a map.
                Some((key, v)) if *key == k => {
                    *v = id;
                    return;
                }
                Some(_) => i = (i + 1) & mask,
                b @ None => {
                    *b = Some((k, id));
                    return;
                }
            }
        }
    }

    /// The real server of service `svc` with this address and port.
    #[inline]
    fn get(&self, svc: u32, addr: IpAddr, port: u16) -> Option<DestId> {
        let k = DestKey::new(svc, addr, port);
        let mask = self.buckets.len() - 1;
        let mut i = (k.hash() >> self.shift) as usize;
        for _ in 0..self.buckets.len() {
            match self.buckets[i] {
                Some((key, id)) if key == k => return Some(id),
                Some(_) => i = (i + 1) & mask,
                None => return None,
            }
        }
        None
    }
}

/// The slot of `id`, grown on demand (bounded by the table's capacity).
pub(super) fn slot(slots: &mut Vec<MasterSlot>, id: ConnId) -> &mut MasterSlot {
    let i = id.index() as usize;
    if i >= slots.len() {
        slots.resize(i + 1, EMPTY_SLOT);
    }
    &mut slots[i]
}

impl MasterState {
    pub(super) fn flush_deadline(&self) -> Option<Instant> {
        self.batcher.flush_deadline()
    }

    fn enqueue(queue: &mut VecDeque<Vec<u8>>, max: usize, stats: &mut SyncStats, d: &[u8]) {
        if queue.len() >= max {
            stats.datagrams_dropped += 1;
        } else {
            queue.push_back(d.to_vec());
            stats.datagrams_sent += 1;
        }
    }

    fn push(&mut self, now: Instant, rec: &SyncConn, stats: &mut SyncStats) {
        let (queue, max) = (&mut self.queue, self.cfg.qlen_max);
        match self
            .batcher
            .push(now, rec, |d| Self::enqueue(queue, max, stats, d))
        {
            Ok(()) => stats.records_sent += 1,
            Err(_) => stats.encode_errors += 1,
        }
    }

    fn flush(&mut self, stats: &mut SyncStats) {
        let (queue, max) = (&mut self.queue, self.cfg.qlen_max);
        self.batcher.flush(|d| Self::enqueue(queue, max, stats, d));
    }
}

impl Director {
    // ----- backup ---------------------------------------------------------------------------

    /// The backup settings used by [`Director::apply_sync`].
    pub fn sync_backup(&self) -> SyncBackupConfig {
        self.sync_backup
    }

    /// Sets the backup settings (syncid filter, `sync_threshold[0]`).
    pub fn set_sync_backup(&mut self, cfg: SyncBackupConfig) {
        self.sync_backup = cfg;
    }

    /// Sync counters.
    pub fn sync_stats(&self) -> &SyncStats {
        &self.sync_stats
    }

    /// Applies one received sync datagram (spec §4.4; see the [module docs](self)). On error
    /// nothing changed; the error names the offset and is counted under its reason.
    pub fn apply_sync(&mut self, now: Instant, datagram: &[u8]) -> Result<SyncApplied, SyncError> {
        let now = self.clamp(now);
        self.sync_stats.datagrams_received += 1;
        let msg = match decode_for_backup(datagram, self.sync_backup.syncid) {
            Ok(Some(m)) => m,
            Ok(None) => {
                self.sync_stats.rejected[SyncReason::SyncidIgnored.index()] += 1;
                let h = crate::sync::decode_header(datagram)?;
                return Ok(SyncApplied {
                    version: h.version,
                    syncid: h.syncid,
                    ignored_syncid: true,
                    ..SyncApplied::default()
                });
            }
            Err(e) => {
                self.sync_stats.rejected[e.reason().index()] += 1;
                return Err(e);
            }
        };
        self.sync_stats.datagrams_applied += 1;
        let mut out = SyncApplied {
            version: msg.version,
            syncid: msg.syncid,
            ..SyncApplied::default()
        };
        for s in &msg.skipped {
            self.sync_stats.rejected[s.reason.reason().index()] += 1;
            out.decoder_skipped += 1;
        }
        // Records of one datagram mostly name one service: its lookup is kept for the next
        // record (services do not change while a datagram is applied).
        let mut svc_memo = None;
        // In groups: first every record's in-key hash, with the index bucket it starts from
        // read into the caches (on a large table each is a cache miss; read together, the
        // misses overlap), then the records in order, with their hashes.
        let mut hashes = [(None, None); PREHASH];
        for group in msg.records.chunks(PREHASH) {
            for (h, rec) in hashes.iter_mut().zip(group) {
                *h = match Protocol::from_number(rec.protocol) {
                    Some(protocol) => {
                        // The reply key of the entry the record would create, with the
                        // method it names (the insert checks it against the entry's own).
                        let out = OutKey::of_conn(
                            protocol,
                            backup::received_flags(msg.version, rec).fwd_method()
                                == FwdMethod::Masq,
                            (rec.caddr, rec.cport),
                            (rec.vaddr, rec.vport),
                            (rec.daddr, rec.dport),
                        );
                        (
                            self.table.in_hash(&record_in_key(protocol, rec)),
                            Some((out, self.table.out_hash(&out))),
                        )
                    }
                    None => (None, None),
                };
            }
            for &(i, o) in &hashes[..group.len()] {
                self.table.prefetch(i, o.map(|(_, h)| h));
            }
            for (rec, &h) in group.iter().zip(&hashes) {
                if let Err(skip) =
                    self.apply_record(now, msg.version, rec, h, &mut svc_memo, &mut out)
                {
                    self.sync_stats.skipped[skip.index()] += 1;
                    out.skipped += 1;
                }
            }
        }
        let st = &mut self.sync_stats;
        st.created += u64::from(out.created);
        st.unbound += u64::from(out.unbound);
        st.updated += u64::from(out.updated);
        st.bound_late += u64::from(out.bound_late);
        st.replaced += u64::from(out.replaced);
        st.late_expiry_ignored += u64::from(out.late_expiry_ignored);
        Ok(out)
    }

    /// `ip_vs_proc_conn` for one record.
    /// `hashes` are the record's in-key hash and a reply key with its hash (the table uses
    /// it if it is the new entry's), from the table's `in_hash` and `out_hash` (same table);
    /// `None` to compute them here.
    fn apply_record(
        &mut self,
        now: Instant,
        version: SyncVersion,
        rec: &SyncConn,
        (in_hash, out_hash): (Option<u64>, Option<(OutKey, u64)>),
        svc_memo: &mut Option<SvcMemo>,
        out: &mut SyncApplied,
    ) -> Result<(), SyncSkip> {
        let flags = backup::received_flags(version, rec);
        let template = flags.contains(ConnFlags::TEMPLATE);
        let protocol = match Protocol::from_number(rec.protocol) {
            Some(Protocol::Ip) if !template => return Err(SyncSkip::UnsupportedProtocol),
            Some(p) => p,
            None => return Err(SyncSkip::UnsupportedProtocol),
        };
        // Only PE data makes the kernel look the named engine up (and skip the record when
        // it is not loaded, as none is here); a name without data is ignored
        // (`ip_vs_conn_fill_param_sync`). The decoder already skipped data without a name.
        if rec.pe_data.is_some() {
            return Err(SyncSkip::PersistenceEngine);
        }
        if rec.state > u16::from(MAX_STATE) {
            return Err(SyncSkip::StateTooLarge);
        }
        let timeout = backup::timeout(
            rec.timeout,
            template,
            rec.protocol,
            rec.state,
            self.table.timeouts(),
        );
        let threshold = self.sync_backup.threshold;
        let key = record_in_key(protocol, rec);
        // The in-key's hash of a connection, computed once for the lookup and the insert.
        let (existing, hashed) = if template {
            (self.table.lookup_template(&key), None)
        } else {
            let (id, h) = self.table.lookup_in_prehashed(&key, in_hash);
            (id, h.map(|h| (key, h)))
        };
        let mut existing = existing.and_then(|id| self.table.get(id));
        if let (Some(c), false) = (existing, template) {
            match backup::on_existing(c.daddr, c.dport, rec.daddr, rec.dport, flags) {
                Existing::Update => {}
                Existing::Replace => {
                    self.expire_conn(now, c.id);
                    out.replaced += 1;
                    existing = None;
                }
                Existing::Ignore => {
                    out.late_expiry_ignored += 1;
                    return Ok(());
                }
            }
        }
        if let Some(c) = existing {
            let id = c.id;
            let u = backup::updated_flags(c.flags, flags);
            let mut new_flags = u.flags;
            match c.dest {
                Some(d) => {
                    if let Some(to_inactive) = u.inactive_changed {
                        self.apply_delta(d, DeltaKind::State, DestDelta::activity(!to_inactive));
                    }
                }
                None => {
                    // `ip_vs_try_bind_dest`.
                    if let Some((d, dflags)) = self.sync_find_dest(rec, protocol, flags, svc_memo) {
                        new_flags = backup::new_entry_flags(u.flags, rec.protocol, Some(dflags));
                        if let Some((d, delta)) = self.table.bind_dest(id, d, new_flags) {
                            self.apply_delta(d, DeltaKind::Bind, delta);
                            out.bound_late += 1;
                        }
                    }
                }
            }
            self.table
                .sync_update(id, now, new_flags, rec.state, threshold, Some(timeout));
            let s = slot(&mut self.sync_slots, id);
            s.old_state = rec.state;
            if template {
                // A template's `in_pkts` is kept here; the kernel sets it as a connection's.
                s.tpl_pkts = threshold;
            }
            out.updated += 1;
            return Ok(());
        }
        let dest = self.sync_find_dest(rec, protocol, flags, svc_memo);
        let new_flags = backup::new_entry_flags(flags, rec.protocol, dest.map(|d| d.1));
        if new_flags.contains(ConnFlags::ONE_PACKET) {
            return Err(SyncSkip::OnePacket);
        }
        if !template && new_flags.contains(ConnFlags::NO_CPORT) && rec.cport != 0 {
            return Err(SyncSkip::NoCportWithPort);
        }
        let ins = self.table.insert_hashed(
            now,
            NewConn {
                protocol,
                caddr: rec.caddr,
                cport: rec.cport,
                vaddr: rec.vaddr,
                vport: rec.vport,
                daddr: rec.daddr,
                dport: rec.dport,
                flags: new_flags,
                fwmark: rec.fwmark,
                dest: dest.map(|d| d.0),
                control: None,
                timeout,
            },
            hashed,
            out_hash,
        );
        let ins = match &ins {
            Ok(ins) => ins,
            Err(InsertError::NoCportWithPort(_)) => return Err(SyncSkip::NoCportWithPort),
            Err(InsertError::OnePacket) => return Err(SyncSkip::OnePacket),
            // `Exists` cannot happen after the lookup above; `BadControl` not without control.
            Err(_) => return Err(SyncSkip::TableFull),
        };
        self.after_insert(now, ins);
        // Armed with the timeout by the insert.
        self.table
            .sync_update(ins.id, now, new_flags, rec.state, threshold, None);
        // `ip_vs_conn_new` stamps `sync_endtime = jiffies` (also for a slot the bookkeeping
        // did not cover yet, which `after_insert` leaves alone without a master); the state
        // synced becomes `old_state`, and a template's `in_pkts` the threshold, as a
        // connection's (the table keeps those).
        *slot(&mut self.sync_slots, ins.id) = MasterSlot {
            old_state: rec.state,
            tpl_pkts: if template { threshold } else { 0 },
            ..MasterSlot::fresh(now)
        };
        out.created += 1;
        if dest.is_none() {
            out.unbound += 1;
        }
        Ok(())
    }

    /// `ip_vs_find_dest` for a record: the service as a packet to (vaddr, vport) with the
    /// record's mark would find it, then the real server by daddr and dport (port 0 first for
    /// non-NAT fwmark services), then with the other port. Returns it with its connection
    /// flags (`dest->conn_flags`: method, NOOUTPUT, INACTIVE).
    fn sync_find_dest(
        &mut self,
        rec: &SyncConn,
        protocol: Protocol,
        flags: ConnFlags,
        svc_memo: &mut Option<SvcMemo>,
    ) -> Option<(DestId, ConnFlags)> {
        let probe_key = (protocol, rec.vaddr, rec.vport, rec.fwmark);
        let svc = match *svc_memo {
            Some((k, svc)) if k == probe_key => svc,
            _ => {
                let any = match rec.caddr {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                };
                let probe = FlowPacket {
                    protocol,
                    src: SocketAddr::new(any, 0),
                    dst: SocketAddr::new(rec.vaddr, rec.vport),
                    fwmark: rec.fwmark,
                    tcp_flags: 0,
                    len: 0,
                    dir: PacketDir::FromClient,
                };
                let svc = self.find_service(&probe);
                *svc_memo = Some((probe_key, svc));
                svc
            }
        }?;
        let port = if rec.fwmark != 0 && flags.fwd_method() != FwdMethod::Masq {
            0
        } else {
            rec.dport
        };
        let index = self
            .sync_dests
            .get_or_insert_with(|| DestIndex::build(&self.services));
        let id = index
            .get(svc, rec.daddr, port)
            .or_else(|| index.get(svc, rec.daddr, port ^ rec.dport))?;
        // `dest->conn_flags` never holds ONE_PACKET: a `-o` service gives it to the
        // connections it schedules (`ip_vs_schedule`), so a synced template of such a
        // service is created like any other.
        Some((id, self.dest_flags(id)))
    }

    // ----- master ---------------------------------------------------------------------------

    /// Starts (`Some`) or stops (`None`) the sync master. Stopping discards datagrams not yet
    /// taken with [`Director::poll_sync`], as the kernel's master thread frees its queue when
    /// stopped; call [`Director::flush_sync`] and drain first to send them.
    pub fn set_sync_master(&mut self, cfg: Option<SyncMasterConfig>) {
        match cfg {
            Some(cfg) => {
                let batcher = SyncBatcher::new(cfg.sysctls.version, cfg.syncid, cfg.maxlen);
                self.sync_master = Some(Box::new(MasterState {
                    cfg,
                    batcher,
                    queue: VecDeque::new(),
                    deferred: Vec::new(),
                }));
                self.table.set_deferred_log(true);
            }
            None => {
                self.sync_master = None;
                self.table.set_deferred_log(false);
            }
        }
    }

    /// Carries out the director's part of a role change ([`crate::sync::role`]): starts the
    /// sync master with `master` or stops it. The other effects (sockets, forwarding) belong
    /// to the driver and change nothing here; synced entries need no conversion.
    pub fn apply_role_effect(&mut self, effect: RoleEffect, master: SyncMasterConfig) {
        match effect {
            RoleEffect::StartSyncMaster => self.set_sync_master(Some(master)),
            RoleEffect::StopSyncMaster => self.set_sync_master(None),
            RoleEffect::StartSyncBackup | RoleEffect::StopSyncBackup | RoleEffect::Forward(_) => {}
        }
    }

    /// The running master's settings.
    pub fn sync_master(&self) -> Option<&SyncMasterConfig> {
        self.sync_master.as_ref().map(|m| &m.cfg)
    }

    /// The next datagram to send, oldest first: queued full datagrams, then the partly filled
    /// one if it is 2 s old at `now`. `None` when there is nothing to send (or no master).
    pub fn poll_sync(&mut self, now: Instant) -> Option<Vec<u8>> {
        let m = self.sync_master.as_mut()?;
        if m.queue.is_empty() && m.flush_deadline().is_some_and(|t| now >= t) {
            m.flush(&mut self.sync_stats);
        }
        m.queue.pop_front()
    }

    /// Closes the partly filled datagram (if it has records) so that
    /// [`Director::poll_sync`] returns it.
    pub fn flush_sync(&mut self) {
        if let Some(m) = self.sync_master.as_mut() {
            m.flush(&mut self.sync_stats);
        }
    }

    /// Datagrams waiting for [`Director::poll_sync`].
    pub fn sync_queue_len(&self) -> usize {
        self.sync_master.as_ref().map_or(0, |m| m.queue.len())
    }

    pub(super) fn sync_flush_due(&mut self, now: Instant) {
        if let Some(m) = self.sync_master.as_mut() {
            if m.flush_deadline().is_some_and(|t| now >= t) {
                m.flush(&mut self.sync_stats);
            }
        }
    }

    /// The timeout a record carries for an entry: a template's own, else the protocol's
    /// timeout of the state (what `cp->timeout` is after the packet).
    fn current_timeout(&self, c: &crate::conn::Conn) -> Duration {
        match c.template_timeout {
            Some(t) => t,
            None => self.table.timeouts().for_state(c.protocol, c.state),
        }
    }

    /// `ip_vs_sync_conn` for the connection a client packet was just counted on.
    /// `c` is the entry as the packet left it.
    pub(super) fn sync_after_packet(&mut self, now: Instant, c: &crate::conn::Conn, pkts: u32) {
        let id = c.id;
        let timeout = self.current_timeout(c);
        let Some(m) = self.sync_master.as_mut() else {
            return;
        };
        let cand = SyncCandidate {
            protocol: c.protocol.number(),
            flags: c.flags,
            state: u16::from(c.state),
            ipv6: c.caddr.is_ipv6(),
            in_persistence: c.control.is_some(),
            timeout,
            pkts,
        };
        let sysctls = m.cfg.sysctls;
        let slot = slot(&mut self.sync_slots, id);
        let d = decide(&sysctls, &cand, slot.stamp(), now);
        slot.set_stamp(d.stamp);
        if d.send {
            m.push(
                now,
                &SyncConn::from_conn(c, secs(timeout)),
                &mut self.sync_stats,
            );
        }
        if d.controller {
            if let Some(t) = c.control {
                self.sync_controller(now, t);
            }
        }
    }

    /// The controlling template of a connection just considered: `pkts` is one more of its
    /// own packets.
    fn sync_controller(&mut self, now: Instant, t: ConnId) {
        let Some(m) = self.sync_master.as_mut() else {
            return;
        };
        let threshold = m.cfg.sysctls.threshold;
        let slot = slot(&mut self.sync_slots, t);
        let (pkts, n) = controller_pkts(ConnFlags::TEMPLATE, slot.tpl_pkts, threshold);
        slot.tpl_pkts = n;
        self.sync_template(now, t, pkts);
    }

    fn sync_template(&mut self, now: Instant, t: ConnId, pkts: u32) {
        let Some(c) = self.table.get(t) else {
            return;
        };
        let timeout = self.current_timeout(&c);
        let Some(m) = self.sync_master.as_mut() else {
            return;
        };
        let cand = SyncCandidate {
            protocol: c.protocol.number(),
            flags: c.flags,
            state: u16::from(c.state),
            ipv6: c.caddr.is_ipv6(),
            in_persistence: false,
            timeout,
            pkts,
        };
        let sysctls = m.cfg.sysctls;
        let slot = slot(&mut self.sync_slots, t);
        let d = decide(&sysctls, &cand, slot.stamp(), now);
        slot.set_stamp(d.stamp);
        if d.send {
            m.push(
                now,
                &SyncConn::from_conn(&c, secs(timeout)),
                &mut self.sync_stats,
            );
        }
    }

    /// A one-packet connection: never sent itself; version 1 considers its template.
    pub(super) fn sync_ops_template(&mut self, now: Instant, template: Option<ConnId>) {
        let Some(m) = self.sync_master.as_ref() else {
            return;
        };
        if m.cfg.sysctls.version == SyncVersion::V1 {
            if let Some(t) = template {
                self.sync_controller(now, t);
            }
        }
    }

    /// Templates whose expiry was deferred (timeout now 60 s) are sent with
    /// `pkts = sync_threshold[0]` (`ip_vs_conn_expire`).
    pub(super) fn sync_deferred(&mut self, now: Instant) {
        let Some(m) = self.sync_master.as_mut() else {
            return;
        };
        let mut ids = core::mem::take(&mut m.deferred);
        self.table.take_deferred(&mut ids);
        let threshold = m.cfg.sysctls.threshold;
        for &t in &ids {
            self.sync_template(now, t, threshold);
        }
        ids.clear();
        if let Some(m) = self.sync_master.as_mut() {
            m.deferred = ids;
        }
    }
}

/// Whole seconds, as `cp->timeout / HZ`.
fn secs(d: Duration) -> u32 {
    d.as_secs().min(u64::from(u32::MAX)) as u32
}

impl MasterSlot {
    /// The bookkeeping of an entry created at `now`.
    pub(super) const fn fresh(now: Instant) -> MasterSlot {
        let s = SyncStamp::new(now);
        MasterSlot {
            endtime: s.endtime,
            tpl_pkts: 0,
            old_state: s.old_state,
            retries: s.retries,
        }
    }

    fn stamp(&self) -> SyncStamp {
        SyncStamp {
            old_state: self.old_state,
            endtime: self.endtime,
            retries: self.retries,
        }
    }

    fn set_stamp(&mut self, s: SyncStamp) {
        (self.old_state, self.endtime, self.retries) = (s.old_state, s.endtime, s.retries);
    }
}

const _: () = assert!(core::mem::size_of::<MasterSlot>() == 16);
