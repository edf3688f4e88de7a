//! `lvs-pcap replay`: a capture through [`Director::handle_packet`], the output capture, and
//! the validation of every output packet.
//!
//! Per input packet, in capture order:
//! 1. The director's clock becomes the capture's (nanoseconds since the first packet; a
//!    timestamp earlier than one already seen is held at the latest, and counted); the
//!    director's timers run up to it, each at its own deadline, so connections expire
//!    between packets as they would have.
//! 2. The link layer is read ([`crate::link`]). Frames not addressed to the director are
//!    skipped, as IPVS ignores them (spec 3.0: `pkt_type != PACKET_HOST`): Ethernet group
//!    addresses, SLL packet types other than "host", and with `--side director` on Ethernet,
//!    frames whose destination MAC is not one of the director's (learnt from frames sent to a
//!    virtual address, and from NAT real servers' replies, which go to the director as
//!    their gateway: a two-armed director has a MAC on each side; never from a frame the
//!    director sent). ARP and IPv6 neighbour advertisements feed the DR lint.
//! 3. Fragments are held until their datagram is whole ([`crate::defrag`]: the kernel
//!    reassembles before IPVS, spec 3.0). The IP packet is copied behind [`HEADROOM`] free
//!    bytes and given to the director.
//! 4. Each output (forwarded packet, or an ICMP error the director built) is validated
//!    ([`crate::validate`]) and written to the output capture with the input's timestamp.
//!
//! `--side client` (NAT): a captured virtual-address → client packet is turned back into
//! the real server's reply (source RIP:rport from the connection table, TTL one higher,
//! checksums updated incrementally), run through the director's reply path, and the result
//! must equal the captured packet byte for byte, TTL and IPv4 header checksum aside.
//!
//! Output link type: Ethernet when the rules have a direct-routing real server (DR frames
//! need their MACs: destination from `--neigh`, source the director's MAC as learnt from
//! the capture, 00:00:00:00:00:00 when the capture has no Ethernet header), raw IP
//! (LINKTYPE_RAW) otherwise. In an Ethernet output, other packets get the next hop's MAC
//! from `--neigh` when listed, else 00:00:00:00:00:00.
//!
//! Firewall-mark services never match: captures carry no marks.
//!
//! With a sync master ([`Replay::with_sync`], `--sync-out`), the datagrams the director
//! queues are written after each packet and at each timer deadline (the 2 s batch age), with
//! that capture time, and what is still batched at the end (see [`crate::sync`]).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::BTreeMap;
use std::io::{self, Write};

use hashbrown::{HashMap, HashTable};
use lvs_core::conn::{ConnId, HashKey};
use lvs_core::director::{
    Director, DirectorConfig, PacketConfig, PacketDrop, PacketVerdict, SyncMasterConfig,
};
use lvs_core::rules::{Forward, RuleError, RuleSet, ServiceKey, TunnelConfig};
use lvs_core::time::Instant;
use lvs_core::wire::{checksum, classify, proto, Classified, Family};
use lvs_core::Protocol;
use serde::Serialize;

use crate::capture::{CaptureWriter, LinkType, Packet};
use crate::defrag::{Defrag, Reassembly};
use crate::link::{self, fmt_mac, Decoded, Mac};
use crate::neigh::NeighTable;
use crate::sync::SyncCapture;
use crate::validate::{Change, Effect, FailReason, Failure, FlowKey, Validator};

/// Free bytes in front of each packet for tunnel headers (IPv6 + UDP + GUE is 52).
pub const HEADROOM: usize = 64;
/// Largest IP packet.
const MAX_IP: usize = 65_535;
/// Most MACs learnt as the director's (one per NIC it receives on).
const MAX_DIRECTOR_MACS: usize = 16;
/// Output buffer for the ICMP errors the director builds (1280 holds any of them).
const REPLY_BUF: usize = 1280;

/// Which end of the connection the capture was taken at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// What arrived at the director (client → VIP, and NAT real servers' replies).
    Director,
    /// What the clients saw (client ↔ VIP).
    Client,
}

/// Settings of a replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Where the capture was taken.
    pub side: Side,
    /// The director's own addresses (`--local`): tunnel outer sources and the source of ICMP
    /// errors about replies.
    pub locals: Vec<IpAddr>,
    /// The neighbour table (`--neigh`).
    pub neigh: NeighTable,
    /// Connection table capacity.
    pub conn_capacity: u32,
    /// Most failures listed one by one in the report (all are counted).
    pub max_listed_failures: usize,
    /// Most timer steps before one packet (a bound on the work of a long capture gap).
    pub max_timer_steps: u32,
    /// Fault injection for tests of the validator: called with the input packet number and
    /// each forwarded packet (the IP packet as the director wrote it, outer header first)
    /// before it is validated and written. `None` in normal runs.
    pub tamper: Option<fn(u64, &mut [u8])>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            side: Side::Director,
            locals: Vec::new(),
            neigh: NeighTable::new(),
            conn_capacity: 1 << 20,
            max_listed_failures: 1000,
            max_timer_steps: 1 << 16,
            tamper: None,
        }
    }
}

/// Why a replay cannot start (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The director refused the rules.
    #[error("rules refused by the director: {0} (errno {errno})", errno = .0.errno())]
    Rules(RuleError),
    /// A direct-routing real server has no `--neigh` entry.
    #[error("direct-routing real server {0} has no MAC: add `{0} <mac>` to the --neigh file")]
    MissingNeighbour(IpAddr),
    /// Two `--local` addresses of one family.
    #[error("two --local addresses of the same family: {0} and {1}")]
    DuplicateLocal(IpAddr, IpAddr),
    /// A tunnelling real server needs the director's address of its family.
    #[error("tunnelling real server {0} needs the director's {1} address: give --local")]
    MissingLocal(IpAddr, &'static str),
    /// Writing the output capture's header failed.
    #[error("writing the output capture: {0}")]
    Io(#[from] io::Error),
}

/// One failed packet, as listed in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListedFailure {
    /// Input packet number (1-based, as Wireshark numbers them).
    pub packet: u64,
    /// Output packet number (1-based), when the failure is about an output packet.
    pub output: Option<u64>,
    /// Failure kind ([`FailReason::name`]).
    pub reason: &'static str,
    /// What differed.
    pub detail: String,
}

/// The capture read error that ended the input early.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InputError {
    /// Byte offset in the capture.
    pub offset: u64,
    /// The message.
    pub message: String,
}

/// What the director decided, counted over input packets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdicts {
    /// Forwarded to a real server.
    pub forwarded: u64,
    /// NAT replies and translated ICMP errors sent to clients.
    pub replies: u64,
    /// Dropped with an ICMP error built by the director.
    pub icmp_generated: u64,
    /// Delivered to the director's own stack as a local real server.
    pub local: u64,
    /// Not IPVS's: passed to the director's own stack unchanged.
    pub not_ours: u64,
    /// Dropped silently.
    pub dropped: u64,
}

/// The validation report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Input capture format.
    pub format: String,
    /// Which side the capture was taken at.
    pub side: String,
    /// Packets read from the capture.
    pub packets_in: u64,
    /// Packets given to the director.
    pub packets_processed: u64,
    /// Packets written to the output capture.
    pub packets_out: u64,
    /// Output packets that passed every check.
    pub passed: u64,
    /// Output packets (and lint findings) that failed.
    pub failed: u64,
    /// Failures by kind.
    pub failures_by_reason: BTreeMap<String, u64>,
    /// The first failures, each naming the packet and what differed.
    pub failures: Vec<ListedFailure>,
    /// Input packets not given to the director, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// The director's verdicts.
    pub verdicts: Verdicts,
    /// Why packets were dropped or answered with an ICMP error.
    pub drop_reasons: BTreeMap<String, u64>,
    /// Flows (connection lives) per real server (`addr:port`).
    pub flows_per_real_server: BTreeMap<String, u64>,
    /// Flows that started a new life on another real server after their connection ended.
    pub rescheduled_flows: u64,
    /// Outputs whose L4 checksum was already wrong in the input (offload), error preserved.
    pub offload_checksums: u64,
    /// Timestamps earlier than a previous one (held at the latest).
    pub timestamps_backwards: u64,
    /// `--side client`: replies compared byte for byte with the capture.
    pub client_replies_compared: u64,
    /// `--side client`: of those, equal.
    pub client_replies_matched: u64,
    /// The read error that ended the input early, if any.
    pub input_error: Option<InputError>,
    /// With `--sync-out`: the sync datagrams written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_datagrams: Option<u64>,
}

impl Report {
    /// Exit status: 2 if the input could not be read to its end, else 1 if anything failed,
    /// else 0.
    pub fn exit_status(&self) -> u8 {
        if self.input_error.is_some() {
            2
        } else if self.failed > 0 {
            1
        } else {
            0
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "packets: {} in ({} {}, {} side), {} to the director, {} out; {} passed, {} failed",
            self.packets_in,
            self.format,
            if self.input_error.is_some() {
                "truncated"
            } else {
                "complete"
            },
            self.side,
            self.packets_processed,
            self.packets_out,
            self.passed,
            self.failed
        );
        let v = &self.verdicts;
        let _ = writeln!(
            s,
            "verdicts: forwarded {}, replies {}, icmp generated {}, local {}, not ours {}, dropped {}",
            v.forwarded, v.replies, v.icmp_generated, v.local, v.not_ours, v.dropped
        );
        let list = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let _ = writeln!(
            s,
            "flows per real server: {}",
            list(&self.flows_per_real_server)
        );
        if self.rescheduled_flows > 0 {
            let _ = writeln!(
                s,
                "flows rescheduled after their connection ended: {}",
                self.rescheduled_flows
            );
        }
        let _ = writeln!(s, "drop reasons: {}", list(&self.drop_reasons));
        let _ = writeln!(s, "skipped: {}", list(&self.skipped));
        if self.offload_checksums > 0 {
            let _ = writeln!(
                s,
                "checksums already wrong in the input (offload), error preserved: {}",
                self.offload_checksums
            );
        }
        if self.timestamps_backwards > 0 {
            let _ = writeln!(
                s,
                "timestamps going backwards (held): {}",
                self.timestamps_backwards
            );
        }
        if self.side == "client" {
            let _ = writeln!(
                s,
                "client replies compared: {}, equal: {}",
                self.client_replies_compared, self.client_replies_matched
            );
        }
        let _ = writeln!(s, "failures: {}", list(&self.failures_by_reason));
        for f in &self.failures {
            let out = f
                .output
                .map(|o| format!(" (output {o})"))
                .unwrap_or_default();
            let _ = writeln!(s, "  packet {}{out}: {}: {}", f.packet, f.reason, f.detail);
        }
        if (self.failures.len() as u64) < self.failed {
            let _ = writeln!(s, "  ... {} more", self.failed - self.failures.len() as u64);
        }
        if let Some(n) = self.sync_datagrams {
            let _ = writeln!(s, "sync datagrams written: {n}");
        }
        if let Some(e) = &self.input_error {
            let _ = writeln!(s, "input error: {}", e.message);
        }
        s
    }
}

/// The validator's flow books: each flow's real server for its current life, and the flows
/// started per real server. Looked up for every output packet, so kept small: an IPv4 flow is
/// one entry of [`V4Flows`] (its key and its real server's number into `dests` packed in two
/// words, and a slot number); other flows (IPv6, mixed families) are kept by their full key.
///
/// IPv4 flows are also found through the director's connection slot (`by_slot`): the slot of
/// a verdict holds the flow last seen on it, so the flow's next packet finds it there, at the
/// slot the director itself used, instead of hashing into `v4`: an array of the live slots,
/// which the director fills in its own order, misses the CPU caches far less than a hash
/// table of every flow ever seen (one miss per packet of a capture with many flows). The
/// slot is only where to look: the entry found there is used only if its key is the flow's,
/// and it always agrees with `v4` (see [`FlowBooks::cache`]), so a director that reported a
/// wrong slot only makes the lookup go to `v4`.
#[derive(Debug)]
struct FlowBooks {
    v4: V4Flows,
    /// By director slot: a copy of the key words of the `v4` entry whose `slot` is this one,
    /// or `[0, 0]` (a real server number of 0 in the second word: no entry).
    by_slot: Vec<[u64; 2]>,
    other: HashMap<FlowKey, u32>,
    /// Real servers (address, port) by number, with the flows started on each.
    dests: Vec<((IpAddr, u16), u64)>,
    dest_ids: HashMap<(IpAddr, u16), u32>,
}

/// The packed key of an all-IPv4 flow: addresses in the first word; protocol and ports in
/// the low 40 bits of the second.
fn packed_v4(f: &FlowKey) -> Option<[u64; 2]> {
    match (f.client.0, f.vip.0) {
        (IpAddr::V4(c), IpAddr::V4(v)) => Some([
            u64::from(u32::from(c)) << 32 | u64::from(u32::from(v)),
            u64::from(f.protocol) | u64::from(f.client.1) << 8 | u64::from(f.vip.1) << 24,
        ]),
        _ => None,
    }
}

/// An IPv4 flow of [`V4Flows`]: the key's two words with the real server's number + 1 in the
/// top 24 bits of the second, and the director slot where [`FlowBooks::by_slot`] has a copy
/// of them ([`NO_SLOT`]: none).
#[derive(Clone, Copy, Debug)]
struct V4Entry {
    words: [u64; 2],
    slot: u32,
}

/// No slot.
const NO_SLOT: u32 = u32::MAX;

/// IPv4 flows by packed key.
#[derive(Debug)]
struct V4Flows(HashTable<V4Entry>);

/// The bits of the second word that hold the real server's number + 1.
const V4_ID_SHIFT: u32 = 40;
/// The key bits of an entry's second word.
const V4_KEY_MASK: u64 = (1 << V4_ID_SHIFT) - 1;
/// The number an entry holds for a real server numbered this or higher: the flow is then in
/// `other` too, with its number (24 bits hold any number of real servers a rule set has in
/// practice; the rest stays correct).
/// The unit tests reach it with a few hundred real servers.
const V4_FAR: u32 = if cfg!(test) {
    300
} else {
    (1 << (64 - V4_ID_SHIFT)) - 2
};

/// Whether entry words `e` are those of key `k`.
#[inline]
fn v4_is(e: &[u64; 2], k: &[u64; 2]) -> bool {
    e[0] == k[0] && e[1] & V4_KEY_MASK == k[1]
}

/// The real server number in entry words (`None` for the empty words).
#[inline]
fn v4_id(e: &[u64; 2]) -> Option<u32> {
    ((e[1] >> V4_ID_SHIFT) as u32).checked_sub(1)
}

impl V4Flows {
    fn with_capacity(n: usize) -> Self {
        V4Flows(HashTable::with_capacity(n))
    }

    /// Multiply-shift over both key words: every bit of the hash depends on every key bit.
    #[inline]
    fn hash(a: u64, b: u64) -> u64 {
        let h = (a ^ (b & V4_KEY_MASK).rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h ^ (h >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
    }

    #[cfg(test)]
    fn find(&self, k: &[u64; 2]) -> Option<&V4Entry> {
        self.0.find(Self::hash(k[0], k[1]), |e| v4_is(&e.words, k))
    }

    #[inline]
    fn find_mut(&mut self, k: &[u64; 2]) -> Option<&mut V4Entry> {
        self.0
            .find_mut(Self::hash(k[0], k[1]), |e| v4_is(&e.words, k))
    }

    /// The flow's entry, added (with no real server and no slot) if new.
    fn entry(&mut self, k: &[u64; 2]) -> &mut V4Entry {
        self.0
            .entry(
                Self::hash(k[0], k[1]),
                |e| v4_is(&e.words, k),
                |e| Self::hash(e.words[0], e.words[1]),
            )
            .or_insert(V4Entry {
                words: *k,
                slot: NO_SLOT,
            })
            .into_mut()
    }
}

impl FlowBooks {
    fn with_capacity(n: usize) -> Self {
        FlowBooks {
            v4: V4Flows::with_capacity(n),
            by_slot: Vec::new(),
            other: HashMap::new(),
            dests: Vec::new(),
            dest_ids: HashMap::new(),
        }
    }

    /// The number of the flow's real server.
    #[cfg(test)]
    fn get(&self, f: &FlowKey) -> Option<u32> {
        match packed_v4(f).map(|k| self.v4.find(&k).and_then(|e| v4_id(&e.words))) {
            Some(Some(V4_FAR)) | None => self.other.get(f).copied(),
            Some(id) => id,
        }
    }

    /// As [`FlowBooks::get`], for a packet the director handled with connection slot `slot`:
    /// looks at that slot first, and leaves the flow there for its next packet.
    #[inline]
    fn lookup(&mut self, f: &FlowKey, slot: Option<u32>) -> Option<u32> {
        let Some(k) = packed_v4(f) else {
            return self.other.get(f).copied();
        };
        if let Some(e) = slot.and_then(|s| self.by_slot.get(s as usize)) {
            if v4_is(e, &k) {
                if let Some(id) = v4_id(e) {
                    return Some(id);
                }
            }
        }
        self.lookup_v4(f, &k, slot)
    }

    /// [`FlowBooks::lookup`] of an IPv4 flow not at its slot.
    #[inline(never)]
    fn lookup_v4(&mut self, f: &FlowKey, k: &[u64; 2], slot: Option<u32>) -> Option<u32> {
        let e = self.v4.find_mut(k)?;
        match v4_id(&e.words)? {
            V4_FAR => self.other.get(f).copied(),
            id => {
                if let Some(s) = slot {
                    Self::cache(&mut self.by_slot, e, s);
                }
                Some(id)
            }
        }
    }

    /// Leaves `e` at slot `s` of `by_slot` (and only there): the copy at the entry's former
    /// slot is cleared if it is still this flow's. So a copy in `by_slot` always has the words
    /// of the `v4` entry that names its slot.
    fn cache(by_slot: &mut Vec<[u64; 2]>, e: &mut V4Entry, s: u32) {
        let key = [e.words[0], e.words[1] & V4_KEY_MASK];
        if e.slot != NO_SLOT && e.slot != s {
            if let Some(old) = by_slot.get_mut(e.slot as usize) {
                if v4_is(old, &key) {
                    *old = [0, 0];
                }
            }
        }
        let at = s as usize;
        if at >= by_slot.len() {
            by_slot.resize((at + 1).next_power_of_two().max(1024), [0, 0]);
        }
        by_slot[at] = e.words;
        e.slot = s;
    }

    fn dest(&self, id: u32) -> (IpAddr, u16) {
        self.dests[id as usize].0
    }

    /// Starts a life of flow `f` on `dest` (new, or after the previous life ended), for a
    /// packet the director handled with connection slot `slot`.
    fn start(&mut self, f: &FlowKey, dest: (IpAddr, u16), slot: Option<u32>) {
        let id = self.count(dest);
        let Some(k) = packed_v4(f) else {
            self.other.insert(*f, id);
            return;
        };
        let e = self.v4.entry(&k);
        e.words[1] = k[1] | u64::from(id.min(V4_FAR) + 1) << V4_ID_SHIFT;
        if id >= V4_FAR {
            self.other.insert(*f, id);
        }
        match slot {
            Some(s) if id < V4_FAR => Self::cache(&mut self.by_slot, e, s),
            // No copy may keep the former number.
            _ => {
                if let Some(old) = self.by_slot.get_mut(e.slot as usize) {
                    if v4_is(old, &k) {
                        *old = [0, 0];
                    }
                }
                e.slot = NO_SLOT;
            }
        }
    }

    /// Counts a flow started on `dest`; returns its number.
    fn count(&mut self, dest: (IpAddr, u16)) -> u32 {
        let id = match self.dest_ids.get(&dest) {
            Some(&id) => id,
            None => {
                let id = self.dests.len() as u32;
                self.dests.push((dest, 0));
                self.dest_ids.insert(dest, id);
                id
            }
        };
        self.dests[id as usize].1 += 1;
        id
    }

    /// Counts another flow started on real server number `id`.
    fn count_id(&mut self, id: u32) {
        self.dests[id as usize].1 += 1;
    }
}

/// The replay engine: one director, one output capture, the report, and optionally the
/// sync master's datagrams as a second capture (`S`, see [`crate::sync`]).
pub struct Replay<W: Write, S: Write = io::Sink> {
    director: Director,
    sync: Option<SyncCapture<S>>,
    options: ReplayOptions,
    local_v4: Option<IpAddr>,
    local_v6: Option<IpAddr>,
    /// Tunnel settings per tunnelling real server address.
    tunnels: HashMap<IpAddr, Vec<TunnelConfig>>,
    /// Virtual services by address (port 0 = any port), for `--side client` and the lint.
    vips: HashMap<(u8, IpAddr), Vec<u16>>,
    dr_vips: Vec<IpAddr>,
    /// Configured ports per real server address.
    rs_ports: HashMap<IpAddr, Vec<u16>>,
    rs_macs: Vec<Mac>,
    writer: Option<CaptureWriter<W>>,
    ethernet_out: bool,
    /// The director's MACs learnt from the capture (`--side director`), the first one the
    /// source of its Ethernet output.
    director_macs: Vec<Mac>,
    first_ts: Option<u64>,
    last_ts: u64,
    now: Instant,
    buf: Vec<u8>,
    out: Vec<u8>,
    validator: Validator,
    flows: FlowBooks,
    report: Report,
    linted: hashbrown::HashSet<(IpAddr, Mac)>,
    /// `--side client`: the real server's reply rebuilt from a captured packet.
    reply_ip: Vec<u8>,
    /// Fragments waiting for the rest of their datagram.
    defrag: Defrag,
}

/// The director's hash key: fixed, so replays are reproducible (a capture is replayed
/// offline; nobody can aim hash collisions at it).
const REPLAY_HASH_KEY: u128 = 0x6c76_732d_7063_6170_2072_6570_6c61_7921;

impl<W: Write> Replay<W> {
    /// A director with `rules` applied at time 0, writing to `output` (if any).
    pub fn new(
        rules: &RuleSet,
        options: ReplayOptions,
        output: Option<W>,
    ) -> Result<Self, SetupError> {
        Replay::with_sync(rules, options, output, None)
    }
}

impl<W: Write, S: Write> Replay<W, S> {
    /// As [`Replay::new`], and with `sync` the director also runs as sync master with
    /// that configuration: every datagram it emits is written to the sync capture at the
    /// capture time it was emitted (after each packet, at the 2 s batch deadline, and at
    /// the end), from the first IPv4 `--local` address (0.0.0.0 without one).
    pub fn with_sync(
        rules: &RuleSet,
        options: ReplayOptions,
        output: Option<W>,
        sync: Option<(SyncMasterConfig, S)>,
    ) -> Result<Self, SetupError> {
        let mut local_v4 = None;
        let mut local_v6 = None;
        for &l in &options.locals {
            let slot = if l.is_ipv4() {
                &mut local_v4
            } else {
                &mut local_v6
            };
            if let Some(old) = *slot {
                if old != l {
                    return Err(SetupError::DuplicateLocal(old, l));
                }
            }
            *slot = Some(l);
        }
        let mut tunnels: HashMap<IpAddr, Vec<TunnelConfig>> = HashMap::new();
        let mut vips: HashMap<(u8, IpAddr), Vec<u16>> = HashMap::new();
        let mut dr_vips = Vec::new();
        let mut rs_ports: HashMap<IpAddr, Vec<u16>> = HashMap::new();
        let mut rs_macs = Vec::new();
        let mut any_dr = false;
        for (svc, dests) in rules.services() {
            let vip = match svc.key {
                ServiceKey::Addr {
                    protocol,
                    addr,
                    port,
                } => {
                    vips.entry((protocol.number(), addr))
                        .or_default()
                        .push(port);
                    Some(addr)
                }
                ServiceKey::Fwmark { .. } => None,
            };
            for d in dests {
                rs_ports.entry(d.addr).or_default().push(d.port);
                match d.forward {
                    Forward::DirectRoute => {
                        any_dr = true;
                        let Some(m) = options.neigh.get(&d.addr) else {
                            return Err(SetupError::MissingNeighbour(d.addr));
                        };
                        rs_macs.push(*m);
                        if let Some(v) = vip {
                            dr_vips.push(v);
                        }
                    }
                    Forward::Tunnel => {
                        let (have, fam) = if d.addr.is_ipv4() {
                            (local_v4, "IPv4")
                        } else {
                            (local_v6, "IPv6")
                        };
                        if have.is_none() {
                            return Err(SetupError::MissingLocal(d.addr, fam));
                        }
                        let t = tunnels.entry(d.addr).or_default();
                        if !t.contains(&d.tunnel) {
                            t.push(d.tunnel);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut config =
            DirectorConfig::new(options.conn_capacity, HashKey::from_u128(REPLAY_HASH_KEY));
        // The capacity is an upper bound derived from the capture's length, far above the
        // connections most captures hold at once: indexes that grow with the live entries
        // stay in the CPU caches (an index sized for the bound is megabytes, and every
        // lookup then misses). Lookups, and so the replay, are the same either way.
        config.grow_conn_indexes = true;
        let flows_hint = options.conn_capacity.min(1 << 12) as usize;
        config.packet = PacketConfig {
            local_v4: match local_v4 {
                Some(IpAddr::V4(a)) => a,
                _ => Ipv4Addr::UNSPECIFIED,
            },
            local_v6: match local_v6 {
                Some(IpAddr::V6(a)) => a,
                _ => Ipv6Addr::UNSPECIFIED,
            },
            ..PacketConfig::default()
        };
        let mut director = Director::new(config);
        director
            .apply_rules(Instant::ZERO, rules)
            .map_err(SetupError::Rules)?;
        let sync = match sync {
            Some((cfg, w)) => {
                director.set_sync_master(Some(cfg));
                let src = match local_v4 {
                    Some(IpAddr::V4(a)) => a,
                    _ => Ipv4Addr::UNSPECIFIED,
                };
                Some(SyncCapture::new(w, src)?)
            }
            None => None,
        };
        let ethernet_out = any_dr;
        let link = if ethernet_out {
            LinkType::ETHERNET
        } else {
            LinkType::RAW
        };
        let writer = match output {
            Some(w) => Some(CaptureWriter::new(w, link)?),
            None => None,
        };
        let report = Report {
            side: match options.side {
                Side::Director => "director".into(),
                Side::Client => "client".into(),
            },
            ..Report::default()
        };
        Ok(Replay {
            director,
            sync,
            options,
            local_v4,
            local_v6,
            tunnels,
            vips,
            dr_vips,
            rs_ports,
            rs_macs,
            writer,
            ethernet_out,
            director_macs: Vec::new(),
            first_ts: None,
            last_ts: 0,
            now: Instant::ZERO,
            buf: vec![0u8; HEADROOM + MAX_IP],
            out: vec![0u8; REPLY_BUF],
            validator: Validator::new(),
            // Room for the flows of a typical capture up front: no rehashing while it grows.
            flows: FlowBooks::with_capacity(flows_hint),
            report,
            linted: hashbrown::HashSet::new(),
            reply_ip: Vec::new(),
            defrag: Defrag::new(),
        })
    }

    /// The director, for inspection.
    pub fn director(&self) -> &Director {
        &self.director
    }

    /// The output link type.
    pub fn output_link(&self) -> LinkType {
        if self.ethernet_out {
            LinkType::ETHERNET
        } else {
            LinkType::RAW
        }
    }

    fn local(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => self.local_v4,
            Family::V6 => self.local_v6,
        }
    }

    fn skip(&mut self, why: &str) {
        count(&mut self.report.skipped, why);
    }

    fn fail(&mut self, packet: u64, output: Option<u64>, f: Failure) {
        self.report.failed += 1;
        count(&mut self.report.failures_by_reason, f.reason.name());
        if self.report.failures.len() < self.options.max_listed_failures {
            self.report.failures.push(ListedFailure {
                packet,
                output,
                reason: f.reason.name(),
                detail: f.detail,
            });
        }
    }

    fn run_timers(&mut self, now: Instant) -> io::Result<()> {
        let mut steps = 0;
        // Whether the step bound stopped the stepping with work still due at `now`.
        let mut bounded = false;
        while let Some(deadline) = self.director.poll_timeout() {
            if deadline > now {
                break;
            }
            if steps >= self.options.max_timer_steps {
                bounded = true;
                break;
            }
            let at = deadline.max(self.now);
            self.director.handle_timeout(at);
            self.now = at;
            self.drain_sync(at)?;
            steps += 1;
        }
        // Otherwise nothing is due at `now` (the last poll said so and nothing ran since):
        // no second poll.
        if bounded {
            let mut calls = 0u64;
            let bound = u64::from(self.options.conn_capacity) + 2;
            while calls < bound && self.director.poll_timeout().is_some_and(|d| d <= now) {
                if !self.director.handle_timeout(now) {
                    break;
                }
                calls += 1;
            }
        }
        self.now = now;
        self.drain_sync(now)
    }

    /// The sync datagrams written so far (0 without a sync capture).
    pub fn sync_datagrams(&self) -> u64 {
        self.sync.as_ref().map_or(0, |s| s.datagrams)
    }

    /// Writes every datagram the sync master has queued, stamped with capture time `at`.
    #[inline(always)]
    fn drain_sync(&mut self, at: Instant) -> io::Result<()> {
        // Called twice per packet: without a sync capture, no call.
        if self.sync.is_none() {
            return Ok(());
        }
        self.drain_sync_queued(at)
    }

    #[inline(never)]
    fn drain_sync_queued(&mut self, at: Instant) -> io::Result<()> {
        let Some(s) = self.sync.as_mut() else {
            return Ok(());
        };
        let ts = self.first_ts.unwrap_or(0).saturating_add(at.as_nanos());
        let mac = self.director_macs.first().copied().unwrap_or([0; 6]);
        while let Some(d) = self.director.poll_sync(at) {
            s.write(ts, mac, &d)?;
        }
        Ok(())
    }

    /// Handles one captured packet.
    pub fn handle(&mut self, pkt: &Packet<'_>) -> io::Result<()> {
        self.report.packets_in += 1;
        let n = self.report.packets_in;
        let first = *self.first_ts.get_or_insert(pkt.ts_nanos);
        let mut ts = pkt.ts_nanos;
        if ts < self.last_ts {
            self.report.timestamps_backwards += 1;
            ts = self.last_ts;
        }
        self.last_ts = ts;
        let now = Instant::from_nanos(ts.saturating_sub(first));
        if now > self.now || n == 1 {
            self.run_timers(now)?;
        }
        let r = self.handle_at(pkt, n, ts, now);
        // The datagrams this packet made the sync master send, at the packet's time.
        self.drain_sync(self.now)?;
        r
    }

    fn handle_at(&mut self, pkt: &Packet<'_>, n: u64, ts: u64, now: Instant) -> io::Result<()> {
        let (offset, macs) = match link::decode(pkt.link, pkt.data) {
            Decoded::Ip {
                offset,
                to_host,
                macs,
            } => {
                // At the clients every direction is of interest; at the director only what
                // was addressed to it.
                if !to_host && self.options.side == Side::Director {
                    self.skip("not_to_host");
                    return Ok(());
                }
                (offset, macs)
            }
            Decoded::Arp(a) => {
                if a.op == 1 || a.op == 2 {
                    self.lint(n, IpAddr::V4(a.sender_ip), a.sender_mac);
                }
                self.skip("arp");
                return Ok(());
            }
            Decoded::OtherProtocol(_) => {
                self.skip("not_ip");
                return Ok(());
            }
            Decoded::UnsupportedLink => {
                let name = format!("link_{}", pkt.link.name());
                self.skip(&name);
                return Ok(());
            }
            Decoded::Truncated => {
                self.skip("truncated_link_header");
                return Ok(());
            }
        };
        let ip = &pkt.data[offset..];
        let ic = match classify(ip) {
            Ok(c) => c,
            Err(_) => {
                if (pkt.data.len() as u64) < u64::from(pkt.orig_len) {
                    self.skip("snaplen");
                    return Ok(());
                }
                // Malformed: the director drops it the same way; let it count there.
                self.report.packets_processed += 1;
                self.report.verdicts.dropped += 1;
                self.drop_reason("malformed");
                return Ok(());
            }
        };
        if let (Some((dst, src)), Side::Director) = (macs, self.options.side) {
            if !self.director_macs.contains(&dst) {
                // A frame to a virtual address, or a NAT real server's reply (the director
                // is its gateway), names one of the director's MACs: a two-armed director
                // (clients on one NIC, real servers on another) has two. Never from a frame
                // the director sent itself (a DR frame to a real server carries the VIP).
                let learn = !self.director_macs.contains(&src)
                    && (self.is_vip(&ic, false) || self.is_real_server_reply(&ic));
                if learn && self.director_macs.len() < MAX_DIRECTOR_MACS {
                    self.director_macs.push(dst);
                } else if !self.director_macs.is_empty() {
                    self.skip("not_to_director_mac");
                    return Ok(());
                }
            }
        }
        let ip = &ip[..ic.total_len];
        let src_mac = macs.map(|m| m.1);
        if ic.is_fragment {
            // The kernel reassembles before IPVS looks (spec 3.0): the director gets the
            // whole datagram when its last missing fragment arrives.
            let expired = self.defrag.expire(ts) as u64;
            if expired > 0 {
                *self
                    .report
                    .skipped
                    .entry("fragment_timeout".into())
                    .or_default() += expired;
            }
            let whole = match self.defrag.push(ts, ip) {
                Reassembly::Held => {
                    self.skip("fragment_held");
                    return Ok(());
                }
                Reassembly::Discarded(why) => {
                    self.skip(why);
                    return Ok(());
                }
                Reassembly::Complete(whole) => whole,
            };
            return match classify(&whole) {
                Ok(ic) => self.handle_ip(n, ts, now, &whole, &ic, src_mac),
                Err(_) => {
                    self.report.packets_processed += 1;
                    self.report.verdicts.dropped += 1;
                    self.drop_reason("malformed");
                    Ok(())
                }
            };
        }
        self.handle_ip(n, ts, now, ip, &ic, src_mac)
    }

    /// Hands one whole IP packet (input packet `n`) to the director, or on the client side
    /// a virtual address's packet to the reply comparison.
    fn handle_ip(
        &mut self,
        n: u64,
        ts: u64,
        now: Instant,
        ip: &[u8],
        ic: &Classified,
        src_mac: Option<Mac>,
    ) -> io::Result<()> {
        if self.options.side == Side::Client && self.is_vip(ic, true) {
            return self.client_reply(n, ts, ip, ic);
        }
        self.report.packets_processed += 1;
        self.buf[HEADROOM..HEADROOM + ip.len()].copy_from_slice(ip);
        // `ic` describes the copy too (offsets from the IP header; bytes past the IP length
        // play no part): the director does not parse the packet again.
        let v = self.director.handle_classified(
            now,
            &mut self.buf[..HEADROOM + ip.len()],
            HEADROOM,
            ic,
            &mut self.out,
            0,
        );
        self.on_verdict(n, ts, ip, ic, v, src_mac)
    }

    /// Whether `c` comes from a real server's configured address and port.
    fn is_real_server_reply(&self, c: &Classified) -> bool {
        !c.icmp_error
            && self
                .rs_ports
                .get(&c.src)
                .is_some_and(|ports| ports.iter().any(|&p| p == 0 || p == c.src_port))
    }

    /// Whether `c` is addressed to (`from` false) or sent from (`from` true) a virtual service.
    fn is_vip(&self, c: &Classified, from: bool) -> bool {
        let (addr, port) = if from {
            (c.src, c.src_port)
        } else {
            (c.dst, c.dst_port)
        };
        let protocol = if c.icmp_error {
            return false;
        } else {
            c.protocol
        };
        self.vips
            .get(&(protocol, addr))
            .is_some_and(|ports| ports.iter().any(|&p| p == 0 || p == port))
    }

    fn drop_reason(&mut self, name: &str) {
        count(&mut self.report.drop_reasons, name);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_verdict(
        &mut self,
        n: u64,
        ts: u64,
        ip: &[u8],
        ic: &Classified,
        v: PacketVerdict,
        src_mac: Option<Mac>,
    ) -> io::Result<()> {
        match v {
            PacketVerdict::Forward {
                method,
                next_hop,
                start,
                len,
                new,
                reply,
                conn,
            } => {
                if reply {
                    self.report.verdicts.replies += 1;
                } else {
                    self.report.verdicts.forwarded += 1;
                }
                let out_no = self.report.packets_out + 1;
                if let Some(t) = self.options.tamper {
                    t(n, &mut self.buf[start..start + len]);
                }
                let res =
                    self.check_forward(ip, ic, start, len, method, next_hop, new, reply, conn);
                let dst_mac = self.options.neigh.get(&next_hop).copied();
                if method == Forward::DirectRoute && dst_mac.is_none() {
                    self.fail(
                        n,
                        Some(out_no),
                        Failure::new(FailReason::NoNeighbour, format!("no MAC for {next_hop}")),
                    );
                }
                self.write(ts, start, len, false, dst_mac)?;
                match res {
                    Ok(()) => self.report.passed += 1,
                    Err(f) => self.fail(n, Some(out_no), f),
                }
            }
            PacketVerdict::Reply { reason, start, len } => {
                self.report.verdicts.icmp_generated += 1;
                self.drop_reason(reason.name());
                let out_no = self.report.packets_out + 1;
                let res = self.validator.check_generated(
                    ip,
                    ic,
                    &self.out[start..start + len],
                    reason,
                    self.local(ic.family),
                );
                self.write(ts, start, len, true, src_mac)?;
                match res {
                    Ok(()) => self.report.passed += 1,
                    Err(f) => self.fail(n, Some(out_no), f),
                }
            }
            PacketVerdict::Local { .. } => self.report.verdicts.local += 1,
            PacketVerdict::NotOurs => self.report.verdicts.not_ours += 1,
            PacketVerdict::Drop(d) => {
                self.report.verdicts.dropped += 1;
                let name = match d {
                    PacketDrop::Flow(r) => match r {
                        lvs_core::director::DropReason::DestUnavailable => "dest_unavailable",
                        lvs_core::director::DropReason::PortMismatch => "port_mismatch",
                        lvs_core::director::DropReason::TableFull => "table_full",
                    },
                    PacketDrop::Malformed(_) => "malformed",
                    PacketDrop::Xmit(r) => r.name(),
                };
                self.drop_reason(name);
            }
        }
        Ok(())
    }

    /// Validates a forwarded packet at `buf[start..start + len]` and keeps the flow books.
    #[allow(clippy::too_many_arguments)]
    fn check_forward(
        &mut self,
        ip: &[u8],
        ic: &Classified,
        start: usize,
        len: usize,
        method: Forward,
        next_hop: IpAddr,
        new: bool,
        reply: bool,
        conn: Option<ConnId>,
    ) -> Result<(), Failure> {
        let out = &self.buf[start..start + len];
        let inner = match method {
            Forward::Tunnel => {
                let configs = self.tunnels.get(&next_hop).map_or(&[][..], |v| &v[..]);
                let fam = if next_hop.is_ipv4() {
                    Family::V4
                } else {
                    Family::V6
                };
                let local = self.local(fam);
                let r = self.validator.check_tunnel(out, next_hop, configs, local)?;
                &out[r]
            }
            _ => out,
        };
        let change = match (method, reply) {
            // What NAT must have written: inbound, the real server (the next hop) on a port
            // checked against the rules and the flow books; replies, what the flow books say.
            (Forward::Masq, false) => Change::NatInAnyPort(next_hop),
            (Forward::Masq, true) => Change::NatOutAsWritten,
            _ => Change::None,
        };
        let e: Effect = self
            .validator
            .check_rewrite(ip, ic, inner, change, next_hop)?;
        if e.offload {
            self.report.offload_checksums += 1;
        }
        let slot = conn.map(ConnId::index);
        let known = self.flows.lookup(&e.flow, slot);
        if reply || ic.icmp_error {
            // Replies and ICMP errors belong to a flow already forwarded.
            return match known.map(|id| self.flows.dest(id)) {
                Some(d) if d == e.dest => Ok(()),
                Some(d) => Err(Failure::new(
                    FailReason::FlowMismatch,
                    format!(
                        "translated for {} which is on {}, but it came from / went to {}",
                        fmt_flow(&e.flow),
                        fmt_sock(d),
                        fmt_sock(e.dest)
                    ),
                )),
                None => Err(Failure::new(
                    FailReason::FlowMismatch,
                    format!(
                        "translated for {}, a flow never forwarded",
                        fmt_flow(&e.flow)
                    ),
                )),
            };
        }
        match known {
            Some(id) if self.flows.dest(id) == e.dest => {
                if new {
                    self.flows.count_id(id);
                }
                Ok(())
            }
            Some(_) if new => {
                check_configured(&self.rs_ports, &e)?;
                // The connection ended (expired, or reused for a new SYN): a new life.
                self.flows.start(&e.flow, e.dest, slot);
                self.report.rescheduled_flows += 1;
                Ok(())
            }
            Some(id) => {
                let was = self.flows.dest(id);
                Err(Failure::new(
                    FailReason::FlowMoved,
                    format!(
                        "{} moved from {} to {}",
                        fmt_flow(&e.flow),
                        fmt_sock(was),
                        fmt_sock(e.dest)
                    ),
                ))
            }
            None => {
                check_configured(&self.rs_ports, &e)?;
                self.flows.start(&e.flow, e.dest, slot);
                Ok(())
            }
        }
    }

    /// Writes `buf[start..start + len]` (or `out[...]` when `reply_buf`) to the output.
    fn write(
        &mut self,
        ts: u64,
        start: usize,
        len: usize,
        reply_buf: bool,
        dst_mac: Option<Mac>,
    ) -> io::Result<()> {
        self.report.packets_out += 1;
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        // The record header and link header go in front of the packet, in the room the
        // buffer has there (written over bytes already used).
        let buf = if reply_buf {
            &mut self.out[..start + len]
        } else {
            &mut self.buf[..start + len]
        };
        if self.ethernet_out {
            let h = link::ethernet_header(
                dst_mac.unwrap_or([0; 6]),
                self.director_macs.first().copied().unwrap_or([0; 6]),
                &buf[start..],
            );
            w.write_framed(ts, &h, buf, start)
        } else {
            w.write_framed(ts, &[], buf, start)
        }
    }

    /// `--side client`: a captured VIP → client packet.
    fn client_reply(&mut self, n: u64, ts: u64, ip: &[u8], ic: &Classified) -> io::Result<()> {
        let protocol = match ic.protocol {
            proto::TCP => Protocol::Tcp,
            proto::UDP => Protocol::Udp,
            _ => {
                self.skip("client_side_not_compared");
                return Ok(());
            }
        };
        let client = std::net::SocketAddr::new(ic.dst, ic.dst_port);
        let vip = std::net::SocketAddr::new(ic.src, ic.src_port);
        let Some(conn) = self.director.conn(protocol, client, vip) else {
            self.skip("client_side_no_connection");
            return Ok(());
        };
        if conn.method != Forward::Masq {
            // DR / TUN replies go from the real server to the client directly.
            self.skip("client_side_not_nat");
            return Ok(());
        }
        if ic.is_fragment || !ic.l4_present {
            self.skip("client_side_not_compared");
            return Ok(());
        }
        if ic.ttl == 0 {
            // No router forwards a packet to TTL 0: this one did not cross the director.
            self.skip("client_side_ttl_zero");
            return Ok(());
        }
        self.report.packets_processed += 1;
        // The real server's reply: source RIP:rport, TTL one higher (the director decrements).
        let b = &mut self.buf[HEADROOM..HEADROOM + ip.len()];
        b.copy_from_slice(ip);
        rewrite_source(b, ic, conn.dest.ip(), conn.dest.port());
        // A copy for the validation (the director rewrites `buf`), in a buffer kept between
        // packets.
        let mut reply_ip = core::mem::take(&mut self.reply_ip);
        reply_ip.clear();
        reply_ip.extend_from_slice(b);
        let now = self.now;
        let v = self.director.handle_packet(
            now,
            &mut self.buf[..HEADROOM + ip.len()],
            HEADROOM,
            &mut self.out,
        );
        let rc = classify(&reply_ip).ok();
        if let (
            PacketVerdict::Forward {
                start,
                len,
                reply: true,
                ..
            },
            Some(_),
        ) = (v, rc)
        {
            self.report.client_replies_compared += 1;
            let out = &self.buf[start..start + len];
            // TTL / hop limit, the IPv4 header checksum, and maybe the L4 checksum.
            let mut ignore = [0..0, 0..0, 0..0];
            let mut ignored = 1;
            if ic.family == Family::V4 {
                ignore[0] = 8..9;
                ignore[1] = 10..12;
                ignored = 2;
            } else {
                ignore[0] = 7..8;
            }
            // A captured checksum that does not verify (offload at the capture point) or an
            // IPv4 UDP datagram without one: the director's output checksum was verified on
            // its own (valid, or the input's error preserved); compare everything else.
            if crate::validate::l4_sum(ip, ic) != Some(0xffff) {
                let at = ic.l4_offset + if ic.protocol == proto::TCP { 16 } else { 6 };
                ignore[ignored] = at..at + 2;
                ignored += 1;
            }
            if let Some(off) = crate::validate::first_difference(ip, out, &ignore[..ignored]) {
                let out_no = self.report.packets_out + 1;
                self.fail(
                    n,
                    Some(out_no),
                    Failure::new(
                        FailReason::ClientMismatch,
                        format!(
                            "the director's reply differs from the capture at {}",
                            crate::validate::field_name(ic, off)
                        ),
                    ),
                );
            } else {
                self.report.client_replies_matched += 1;
            }
        } else if !matches!(v, PacketVerdict::Forward { .. }) {
            self.fail(
                n,
                None,
                Failure::new(
                    FailReason::ClientMismatch,
                    format!("the director did not send the reply back: {v:?}"),
                ),
            );
        }
        let ic2 = rc.unwrap_or(*ic);
        let r = self.on_verdict(n, ts, &reply_ip, &ic2, v, None);
        self.reply_ip = reply_ip;
        r
    }

    /// DR lint: an ARP / neighbour advertisement for a DR virtual address from a real
    /// server's MAC (or from another MAC than the director's, once that is known).
    fn lint(&mut self, n: u64, ip: IpAddr, mac: Mac) {
        if !self.dr_vips.contains(&ip) {
            return;
        }
        let from_rs = self.rs_macs.contains(&mac);
        let not_director = !self.director_macs.is_empty() && !self.director_macs.contains(&mac);
        if (from_rs || not_director) && self.linted.insert((ip, mac)) {
            let who = if from_rs {
                "a real server"
            } else {
                "a host other than the director"
            };
            self.fail(
                n,
                None,
                Failure::new(
                    FailReason::DrArpVip,
                    format!(
                        "{who} ({}) answers for the virtual address {ip}: direct routing breaks (suppress ARP for the VIP on real servers: arp_ignore=1, arp_announce=2)",
                        fmt_mac(&mac)
                    ),
                ),
            );
        }
    }

    /// Records a capture read error (everything before it was processed).
    pub fn input_error(&mut self, offset: u64, message: String) {
        self.report.input_error = Some(InputError { offset, message });
    }

    /// Flushes the output and returns the report.
    pub fn finish(mut self, format: &str) -> io::Result<Report> {
        if let Some(w) = self.writer.take() {
            w.into_inner()?.flush()?;
        }
        if self.sync.is_some() {
            // What is still batched goes out at the end of the capture.
            self.director.flush_sync();
            self.drain_sync(self.now)?;
        }
        if let Some(s) = self.sync.take() {
            self.report.sync_datagrams = Some(s.datagrams);
            s.finish()?;
        }
        let mut r = self.report;
        // Datagrams some of whose fragments the capture does not hold.
        let incomplete = self.defrag.pending() as u64;
        if incomplete > 0 {
            *r.skipped.entry("fragment_incomplete".into()).or_default() += incomplete;
        }
        r.format = format.to_string();
        r.flows_per_real_server = self
            .flows
            .dests
            .iter()
            .map(|(d, n)| (fmt_sock(*d), *n))
            .collect();
        Ok(r)
    }
}

/// Counts one more `key` in a report's counters; the key's `String` is made only the first
/// time (captures can skip or drop most of their packets for one reason).
fn count(counters: &mut BTreeMap<String, u64>, key: &str) {
    match counters.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counters.insert(key.to_string(), 1);
        }
    }
}

/// Whether the flow's real server is one the rules have (checked when a flow's life starts;
/// later packets must then go to the same place).
fn check_configured(rs_ports: &HashMap<IpAddr, Vec<u16>>, e: &Effect) -> Result<(), Failure> {
    let configured = rs_ports.get(&e.dest.0).is_some_and(|ports| {
        ports
            .iter()
            .any(|&p| p == e.dest.1 || p == 0 || e.dest.1 == e.flow.vip.1)
    });
    if configured {
        return Ok(());
    }
    Err(Failure::new(
        FailReason::Rewrite,
        format!(
            "{} sent to {}, not a real server of the rules",
            fmt_flow(&e.flow),
            fmt_sock(e.dest)
        ),
    ))
}

/// Rewrites the source of the IP packet `b` (classified `c`) to `addr:port` and raises its
/// TTL by one, with incremental checksum updates (so an offload error is preserved).
fn rewrite_source(b: &mut [u8], c: &Classified, addr: IpAddr, port: u16) {
    let l4 = c.l4_offset;
    let csum_at = match c.protocol {
        proto::TCP => Some(l4 + 16),
        proto::UDP if !(c.family == Family::V4 && b[l4 + 6..l4 + 8] == [0, 0]) => Some(l4 + 6),
        _ => None,
    };
    let get = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let mut l4sum = csum_at.map(|at| get(b, at));
    match (c.family, addr) {
        (Family::V4, IpAddr::V4(a)) => {
            let old = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
            let new = u32::from(a);
            b[12..16].copy_from_slice(&a.octets());
            let mut h = get(b, 10);
            h = checksum::update_u32(h, old, new);
            if b[8] < 255 {
                let w_old = u16::from_be_bytes([b[8], b[9]]);
                b[8] += 1;
                h = checksum::update_u16(h, w_old, u16::from_be_bytes([b[8], b[9]]));
            }
            b[10..12].copy_from_slice(&h.to_be_bytes());
            l4sum = l4sum.map(|s| checksum::update_u32(s, old, new));
        }
        (Family::V6, IpAddr::V6(a)) => {
            let old: [u8; 16] = b[8..24].try_into().unwrap_or([0; 16]);
            b[8..24].copy_from_slice(&a.octets());
            b[7] = b[7].saturating_add(1);
            l4sum = l4sum.map(|s| checksum::update_u128(s, &old, &a.octets()));
        }
        _ => return,
    }
    let old_port = get(b, l4);
    b[l4..l4 + 2].copy_from_slice(&port.to_be_bytes());
    if let (Some(at), Some(s)) = (csum_at, l4sum) {
        let mut s = checksum::update_u16(s, old_port, port);
        if c.protocol == proto::UDP {
            s = checksum::udp_nonzero(s);
        }
        b[at..at + 2].copy_from_slice(&s.to_be_bytes());
    }
}

fn fmt_sock((a, p): (IpAddr, u16)) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{p}"),
        IpAddr::V6(a) => format!("[{a}]:{p}"),
    }
}

fn fmt_flow(f: &FlowKey) -> String {
    let p = match f.protocol {
        proto::TCP => "TCP",
        proto::UDP => "UDP",
        proto::SCTP => "SCTP",
        _ => "IP",
    };
    format!("{p} {} -> {}", fmt_sock(f.client), fmt_sock(f.vip))
}

/// Everything a replay needs besides the capture: parses nothing, runs everything.
///
/// Reads every packet of `reader` through a [`Replay`]; a read error ends the input, is
/// recorded in the report with its byte offset, and everything before it was processed and
/// written.
pub fn run<R: io::Read, W: Write>(
    rules: &RuleSet,
    options: ReplayOptions,
    reader: &mut crate::capture::CaptureReader<R>,
    output: Option<W>,
) -> Result<Report, RunError> {
    run_with_sync::<R, W, io::Sink>(rules, options, reader, output, None)
}

/// [`run`] with the director running as sync master, its datagrams written to the second
/// capture (see [`Replay::with_sync`]).
pub fn run_with_sync<R: io::Read, W: Write, S: Write>(
    rules: &RuleSet,
    options: ReplayOptions,
    reader: &mut crate::capture::CaptureReader<R>,
    output: Option<W>,
    sync: Option<(SyncMasterConfig, S)>,
) -> Result<Report, RunError> {
    let mut replay = Replay::with_sync(rules, options, output, sync).map_err(RunError::Setup)?;
    loop {
        match reader.next_packet() {
            Ok(Some(p)) => replay.handle(&p).map_err(RunError::Output)?,
            Ok(None) => break,
            Err(e) => {
                replay.input_error(e.offset(), e.to_string());
                break;
            }
        }
    }
    replay
        .finish(reader.format().name())
        .map_err(RunError::Output)
}

/// Why [`run`] stopped without a report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The replay could not start.
    #[error("{0}")]
    Setup(SetupError),
    /// Writing the output capture failed.
    #[error("writing the output capture: {0}")]
    Output(io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(i: u32, v6: bool) -> FlowKey {
        let client = if v6 {
            IpAddr::V6(Ipv6Addr::from(u128::from(i) << 16 | 0x2001))
        } else {
            IpAddr::V4(Ipv4Addr::from(0xc000_0000 | (i / 7)))
        };
        FlowKey {
            protocol: if i % 2 == 0 { proto::TCP } else { proto::UDP },
            client: (client, 1024 + (i % 7) as u16),
            vip: (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + (i % 3) as u8)), 80),
        }
    }

    /// The flow books against a plain map: growth, lives restarted on another real server,
    /// IPv6 flows, real server numbers beyond what an IPv4 entry holds, and the slot copies
    /// (slots shared by many flows, looked up at the flow's slot, at other flows' slots and
    /// at none).
    #[test]
    fn flow_books_match_a_map() {
        let mut books = FlowBooks::with_capacity(4);
        let mut model = std::collections::HashMap::new();
        let dest = |d: u32| (IpAddr::V4(Ipv4Addr::from(0x0a64_0000 + d)), 8080);
        // The slot a flow was last handled on (none for some).
        let slot = |i: u32, round: u32| (i % 13 != 0).then_some((i * 7 + round) % 4099);
        let check = |books: &mut FlowBooks,
                     model: &std::collections::HashMap<FlowKey, (IpAddr, u16)>,
                     round: u32| {
            for i in 0..25_000u32 {
                let f = flow(i, i % 11 == 0);
                let want = model.get(&f).copied();
                assert_eq!(books.get(&f).map(|id| books.dest(id)), want);
                for s in [
                    slot(i, round),
                    slot(i, 0),
                    Some(i % 4099),
                    None,
                    slot(i, round),
                ] {
                    assert_eq!(books.lookup(&f, s).map(|id| books.dest(id)), want, "{i}");
                }
            }
        };
        for i in 0..20_000u32 {
            let f = flow(i, i % 11 == 0);
            books.start(&f, dest(i % 5), slot(i, 0));
            model.insert(f, dest(i % 5));
        }
        check(&mut books, &model, 0);
        // New lives of some flows, elsewhere (on another slot, or the same).
        for i in (0..20_000u32).step_by(3) {
            let f = flow(i, i % 11 == 0);
            books.start(&f, dest(7), slot(i, i % 2));
            model.insert(f, dest(7));
        }
        check(&mut books, &model, 1);
        // Numbers an entry cannot hold: kept aside, still found.
        for i in 0..1000u32 {
            let f = flow(i, false);
            books.start(&f, dest(1000 + i), slot(i, 2));
            model.insert(f, dest(1000 + i));
        }
        assert!(books.dests.len() > V4_FAR as usize);
        check(&mut books, &model, 2);
    }
}
