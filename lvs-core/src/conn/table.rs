//! The connection table: entries in one fixed-capacity slab, found by two keys through two
//! open-addressing indexes of slot numbers, expired by a timing wheel threaded through the
//! slab.
//!
//! # Layout (why an IPv4 flow costs about 60 bytes)
//! - **Slab**: one 46-byte `Entry` per flow (`repr(packed(2))`, addresses as `u32`, times
//!   as `u32` wheel ticks, links as `u32` slot numbers). Entries with any IPv6 address keep
//!   their three addresses in a side slab that grows on demand; marked flows (fwmark != 0)
//!   keep the mark in a side map. Both are bounded by the capacity.
//! - **Indexes**: `in_idx` keyed by (protocol, caddr, cport, vaddr, vport, kind) and `out_idx`
//!   keyed by the reply tuple, each holding only the slot number; hash and equality closures
//!   read the slab, so an entry is stored once and found by either key. Each index is one
//!   array of `u32` words (slot, distance from the home bucket, hash tag; linear probing,
//!   load at most 7/8, backward-shift deletion: see `conn::index`), so a hit costs one cache
//!   miss in the index and one in the slab. At 10 M flows each index has 2^24 buckets of 4
//!   bytes: about 13.4 bytes per flow for both.
//! - **Reply-source filter**: a small array (at most 4096 counters, 16 KiB, cache-resident)
//!   counting the out-indexed entries by a bucket of their reply-side source (protocol,
//!   address, port). The director tries every client packet as a reply first; the source of a
//!   client packet is a client, which is almost never a real server or a virtual service, so
//!   [`ConnTable::lookup_out`] answers "no" from the counter without hashing the key or
//!   touching the large out-index. A non-zero counter only means "look in the index".
//! - **Hash**: SipHash-1-3 keyed by the caller's 128-bit key over a canonical encoding of the
//!   key, so remote hosts cannot choose colliding tuples.
//! - **Timer**: a hashed timing wheel of `2^wheel_bits` buckets of `tick` each; entries are
//!   linked into buckets through `prev`/`next` in the entry (O(1) link and unlink). Re-arming
//!   to a *later* time only stores the new expiry (lazy): the entry is moved when its bucket
//!   comes up. Re-arming to an *earlier* time moves it at once. An expiry beyond the wheel's
//!   horizon is parked in the last bucket and moved again when reached.
//!
//! # What an entry holds (spec §2.1)
//! Protocol, client / virtual / real-server address and port (the families are implied: all
//! IPv4 in the entry, or any mix in the side slab), flags, state, expiry, fwmark, destination
//! id, control link, `in_pkts`. Two fields are not stored per connection:
//! - the **timeout**: after every packet the kernel sets `cp->timeout` from the protocol's
//!   table for the new state and re-arms with it, so it is a function of (protocol, state)
//!   through [`Timeouts`]; only templates keep their own (the persistence timeout, 60 s
//!   after a deferred expiry), in the field connections use for `in_pkts`. A timeout that
//!   comes from elsewhere (3 s at creation, a sync message) is applied when arming
//!   ([`NewConn::timeout`], [`ConnTable::set_timeout`]).
//! - **`n_control` of connections**: only templates control entries here (FTP helper control
//!   connections are out of scope), so a template keeps `n_control` where a connection keeps
//!   its `control` link.
//!
//! # Capacity
//! Fixed at construction. When full, [`ConnTable::insert`] evicts an embryonic TCP connection
//! (NONE, SYN_RECV or SYNACK, not a template) — the first found walking the wheel from the
//! next bucket due, so the one closest to expiry, examining at most
//! [`ConnTableConfig::evict_scan`] entries — and otherwise refuses the new entry. Every outcome
//! has a counter in [`ConnTableStats`]. IPVS itself has no limit; this bound is ours.

use core::net::{IpAddr, SocketAddr};

use hashbrown::HashMap;
use strength_reduce::StrengthReducedU64;

use crate::conn::accounting::DestDelta;
use crate::conn::index::SlotIndex;
use crate::conn::siphash::{HashKey, Sip13, SipStart};
use crate::conn::state::{
    tcp_next_state, ActiveStates, Direction, TcpState, TcpTable, TemplateState, Timeouts,
};
use crate::conn::{ConnFlags, FwdMethod};
use crate::protocol::Protocol;
use crate::sched::DestId;
use crate::time::{Duration, Instant};

/// "No slot".
const NIL: u32 = u32::MAX;
/// Tag in `prev` marking the first entry of a wheel bucket (the low bits are the bucket).
const HEAD: u32 = 0x8000_0000;
/// The largest capacity (slot numbers must stay below `HEAD`).
pub const MAX_CAPACITY: u32 = HEAD - 1;
/// The largest raw state an entry stores (4 bits: every TCP and SCTP state fits).
pub const MAX_STATE: u8 = 15;

// `Entry::bits` layout.
const B_PROTO: u16 = 0x0003;
const B_STATE_SHIFT: u16 = 2;
const B_STATE: u16 = 0x000f << B_STATE_SHIFT;
const B_OCCUPIED: u16 = 0x0040;
const B_WIDE: u16 = 0x0080;
const B_IN_IDX: u16 = 0x0100;
const B_OUT_IDX: u16 = 0x0200;
const B_FWMARK: u16 = 0x0400;

// Kinds of in-keys: a template never matches a connection lookup and vice versa, and a
// NO_CPORT connection only matches the cport-0 fallback lookup.
const KIND_CONN: u64 = 0;
const KIND_NO_CPORT: u64 = 1;
const KIND_TEMPLATE: u64 = 2;
const KIND_OUT: u64 = 3;

/// A `limit` for [`ConnTable::handle_timeout`] that keeps one call well under a millisecond
/// even when millions of entries are due at once: freeing an entry at 10 M flows costs a
/// cache miss in each index and in the slab, and 256 entries took a median 0.16 ms on a
/// loaded 2-core VM (`conn_expiry` bench).
pub const DEFAULT_EXPIRE_LIMIT: usize = 256;

/// Most counters of the reply-source filter (a power of two).
const OUT_FILTER_MAX: usize = 4096;

/// The reply-source filter's bucket of (protocol, source address, source port), for a filter
/// of `mask + 1` counters. Not keyed: a collision only sends a lookup on to the index.
#[inline]
fn out_filter_bucket(mask: usize, proto: Protocol, s: Ad, sport: u16) -> usize {
    let a = match s {
        Ad::V4(v) => v as u64,
        Ad::V6(v) => (v as u64) ^ ((v >> 64) as u64).rotate_left(29),
    };
    let x = (a << 16 | sport as u64) ^ (proto_bits(proto) as u64) << 62;
    // Fibonacci hashing: the high bits of the product.
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & mask
}

/// Slots of the deadline interval memo (`ConnTable::due_tick_interval`).
const DUE_SLOTS: usize = 16;

/// The slot of the deadline interval memo for deadlines `timeout` from now: bits of the
/// timeout that tell the default timeouts apart (a collision only costs a division).
#[inline(always)]
fn due_slot(timeout: Duration) -> usize {
    (timeout.as_nanos() >> 27) as usize % DUE_SLOTS
}

/// The template timeout after a deferred expiry (`n_control > 0`): 60 s.
const DEFERRED_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection or template in the table: its slot number.
///
/// Valid until the entry is removed; the slot is then reused by a later insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(u32);

impl ConnId {
    /// The slot number (0..capacity).
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// One slab entry. 46 bytes; see the module docs.
#[derive(Clone, Copy, Default)]
#[repr(C, packed(2))]
struct Entry {
    /// IPv4 client address, or the index into the wide-address slab.
    caddr: u32,
    vaddr: u32,
    daddr: u32,
    cport: u16,
    vport: u16,
    dport: u16,
    /// `ConnFlags` bits.
    flags: u16,
    /// Protocol, state and bookkeeping bits (`B_*`).
    bits: u16,
    /// Wheel tick at which the entry is due.
    expires: u32,
    /// `DestId`, or `NIL`.
    dest: u32,
    /// Connection: `in_pkts`. Template: its timeout in milliseconds.
    aux: u32,
    // The fields above are what a packet of an existing connection reads and writes (34
    // bytes); those below only change when the entry moves in the wheel or its template
    // is assured, so that half of the entries, those whose first 34 bytes fit in one cache
    // line, cost that packet one line.
    /// Wheel links (`HEAD | bucket` for the first entry); `next` also links free slots.
    prev: u32,
    next: u32,
    /// Connection: the controlling template's slot (or `NIL`). Template: `n_control`.
    link: u32,
}

const _: () = assert!(core::mem::size_of::<Entry>() == 46);

impl Entry {
    /// The source of this entry's replies (its reply key's source address and port), for an
    /// entry whose addresses are all IPv4 (not `B_WIDE`): the real server for NAT, else the
    /// virtual service.
    #[inline]
    fn reply_source_v4(&self) -> (u32, u16) {
        if self.cflags().fwd_method() == FwdMethod::Masq {
            (self.daddr, self.dport)
        } else {
            (self.vaddr, self.vport)
        }
    }
    fn occupied(&self) -> bool {
        self.bits & B_OCCUPIED != 0
    }
    fn protocol(&self) -> Protocol {
        match self.bits & B_PROTO {
            0 => Protocol::Ip,
            1 => Protocol::Tcp,
            2 => Protocol::Udp,
            _ => Protocol::Sctp,
        }
    }
    fn state(&self) -> u8 {
        ((self.bits & B_STATE) >> B_STATE_SHIFT) as u8
    }
    fn set_state(&mut self, s: u8) {
        self.bits = (self.bits & !B_STATE) | (((s as u16) << B_STATE_SHIFT) & B_STATE);
    }
    fn cflags(&self) -> ConnFlags {
        ConnFlags::from_bits(self.flags)
    }
    fn is_template(&self) -> bool {
        self.cflags().contains(ConnFlags::TEMPLATE)
    }
    fn dest(&self) -> Option<DestId> {
        let d = self.dest;
        (d != NIL).then_some(DestId(d))
    }
    /// Which kind of in-key the entry has, or `None` when no in-lookup can ever find it: a
    /// connection with client port 0 and no NO_CPORT (the kernel's lookup requires NO_CPORT
    /// exactly when the looked-up port is 0).
    fn in_kind(&self) -> Option<u64> {
        let f = self.cflags();
        if f.contains(ConnFlags::TEMPLATE) {
            Some(KIND_TEMPLATE)
        } else if f.contains(ConnFlags::NO_CPORT) {
            Some(KIND_NO_CPORT)
        } else if self.cport == 0 {
            None
        } else {
            Some(KIND_CONN)
        }
    }
}

const fn proto_bits(p: Protocol) -> u16 {
    match p {
        Protocol::Ip => 0,
        Protocol::Tcp => 1,
        Protocol::Udp => 2,
        Protocol::Sctp => 3,
    }
}

/// An address in hash-canonical form.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ad {
    V4(u32),
    V6(u128),
}

impl Ad {
    fn of(a: IpAddr) -> Ad {
        match a {
            IpAddr::V4(v) => Ad::V4(u32::from(v)),
            IpAddr::V6(v) => Ad::V6(u128::from(v)),
        }
    }
}

/// The index hash of a key: (protocol, kind, address and port of each side).
#[inline(always)]
fn hash_tuple(key: &SipStart, proto: Protocol, kind: u64, a: Ad, pa: u16, b: Ad, pb: u16) -> u64 {
    if let (Ad::V4(x), Ad::V4(y)) = (a, b) {
        return hash_v4(key, proto, kind, x, pa, y, pb);
    }
    hash_wide(key, proto, kind, a, pa, b, pb)
}

/// [`hash_tuple`] of a key with two IPv4 addresses.
#[inline(always)]
fn hash_v4(key: &SipStart, proto: Protocol, kind: u64, x: u32, pa: u16, y: u32, pb: u16) -> u64 {
    // Two IPv4 addresses, then 6 bytes of tail (protocol, kind, ports): a 14-byte message,
    // one compression fewer than two whole words. Its length (and the family bits of the
    // other encoding) keep it apart from the longer encoding of any key with IPv6. Inlined:
    // a handful of register operations, no call.
    let s = Sip13::start_word(key, (x as u64) << 32 | y as u64);
    s.finish_with_tail(
        proto.number() as u64 | kind << 8 | (pa as u64) << 16 | (pb as u64) << 32,
        6,
    )
}

/// [`hash_tuple`] of a key with an IPv6 address: whole words, family bits in the first.
#[inline(never)]
fn hash_wide(key: &SipStart, proto: Protocol, kind: u64, a: Ad, pa: u16, b: Ad, pb: u16) -> u64 {
    let fam = |x: Ad| matches!(x, Ad::V6(_)) as u64;
    let mut s = Sip13::start_word(
        key,
        proto.number() as u64
            | kind << 8
            | (pa as u64) << 16
            | (pb as u64) << 32
            | fam(a) << 48
            | fam(b) << 49,
    );
    for x in [a, b] {
        let v = match x {
            Ad::V4(v) => v as u128,
            Ad::V6(v) => v,
        };
        s.word(v as u64);
        s.word((v >> 64) as u64);
    }
    s.finish()
}

/// The client-side key of a connection (`ip_vs_conn_in_get`), or of a template
/// (`ip_vs_ct_in_get`: cport 0, caddr = the client's masked network, and for fwmark services
/// protocol [`Protocol::Ip`] with the fwmark as `vaddr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InKey {
    /// Protocol of the packet (or of the template).
    pub protocol: Protocol,
    /// Client address (packet source).
    pub caddr: IpAddr,
    /// Client port (packet source port).
    pub cport: u16,
    /// Virtual address (packet destination).
    pub vaddr: IpAddr,
    /// Virtual port (packet destination port).
    pub vport: u16,
}

impl InKey {
    /// The key of a client → virtual service packet.
    #[inline]
    pub fn of_flow(protocol: Protocol, client: SocketAddr, vip: SocketAddr) -> InKey {
        InKey {
            protocol,
            caddr: client.ip(),
            cport: client.port(),
            vaddr: vip.ip(),
            vport: vip.port(),
        }
    }

    /// Whether this is [`InKey::of_flow`] of the same packet (compared field by field,
    /// without building that key).
    ///
    /// ```
    /// use lvs_core::conn::InKey;
    /// use lvs_core::Protocol;
    /// let (c, v) = ("192.0.2.7:40000".parse().unwrap(), "10.0.0.1:80".parse().unwrap());
    /// assert!(InKey::of_flow(Protocol::Tcp, c, v).is_of_flow(Protocol::Tcp, c, v));
    /// assert!(!InKey::of_flow(Protocol::Tcp, c, v).is_of_flow(Protocol::Udp, c, v));
    /// ```
    #[inline]
    pub fn is_of_flow(&self, protocol: Protocol, client: SocketAddr, vip: SocketAddr) -> bool {
        // Addresses compared in place, family by family, rather than through the
        // `IpAddr`s the socket addresses would be converted to.
        let same = |a: &IpAddr, s: &SocketAddr| match (a, s) {
            (IpAddr::V4(a), SocketAddr::V4(s)) => a == s.ip(),
            (IpAddr::V6(a), SocketAddr::V6(s)) => a == s.ip(),
            _ => false,
        };
        self.protocol == protocol
            && self.cport == client.port()
            && self.vport == vip.port()
            && same(&self.caddr, &client)
            && same(&self.vaddr, &vip)
    }

    /// [`InKey::is_of_flow`] for a packet whose two addresses are IPv4 (client `c`, virtual
    /// address `v`, as integers).
    #[inline]
    pub(crate) fn is_of_v4_flow(
        &self,
        protocol: Protocol,
        c: u32,
        cport: u16,
        v: u32,
        vport: u16,
    ) -> bool {
        self.protocol == protocol
            && self.cport == cport
            && self.vport == vport
            && matches!(self.caddr, IpAddr::V4(a) if a.to_bits() == c)
            && matches!(self.vaddr, IpAddr::V4(a) if a.to_bits() == v)
    }
}

/// The key of a reply packet seen by the director (`ip_vs_conn_out_get`): its source is the
/// real server (`daddr:dport`) for NAT connections and the virtual address (`vaddr:vport`) for
/// every other method; its destination is the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutKey {
    /// Protocol of the packet.
    pub protocol: Protocol,
    /// Packet source address.
    pub saddr: IpAddr,
    /// Packet source port.
    pub sport: u16,
    /// Packet destination address (the client).
    pub daddr: IpAddr,
    /// Packet destination port (the client's port).
    pub dport: u16,
}

impl OutKey {
    /// The key of a packet from `src` to `dst` in the reply direction.
    #[inline]
    pub fn of_reply(protocol: Protocol, src: SocketAddr, dst: SocketAddr) -> OutKey {
        OutKey {
            protocol,
            saddr: src.ip(),
            sport: src.port(),
            daddr: dst.ip(),
            dport: dst.port(),
        }
    }
}

impl OutKey {
    /// The reply key of a connection of `protocol` between client `c` and virtual service
    /// `v`, forwarded to real server `d`: replies come from the real server for NAT (`masq`)
    /// and from the virtual service for every other method.
    pub(crate) fn of_conn(
        protocol: Protocol,
        masq: bool,
        c: (IpAddr, u16),
        v: (IpAddr, u16),
        d: (IpAddr, u16),
    ) -> OutKey {
        let (saddr, sport) = if masq { d } else { v };
        OutKey {
            protocol,
            saddr,
            sport,
            daddr: c.0,
            dport: c.1,
        }
    }
}

/// What the director passes to create an entry (`ip_vs_conn_new`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewConn {
    /// Protocol ([`Protocol::Ip`] for fwmark templates).
    pub protocol: Protocol,
    /// Client address (templates: the masked client network).
    pub caddr: IpAddr,
    /// Client port (templates: 0; NO_CPORT connections: 0).
    pub cport: u16,
    /// Virtual address (fwmark templates: the mark as an address).
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    pub daddr: IpAddr,
    /// Real server port.
    pub dport: u16,
    /// Flags: caller flags | the dest's conn flags (forwarding method, NOOUTPUT, INACTIVE), plus
    /// TEMPLATE for templates. HASHED is managed by the table; ONE_PACKET is refused.
    pub flags: ConnFlags,
    /// The packet's mark (`skb->mark`).
    pub fwmark: u32,
    /// The bound real server, if any (`None` for bypass conns).
    pub dest: Option<DestId>,
    /// The controlling template, if any.
    pub control: Option<ConnId>,
    /// Initial timeout: 3 s for connections (`ip_vs_conn_new`), the persistence timeout for
    /// templates, the synced timeout for sync-created entries. Clamped to 2^30 wheel ticks.
    pub timeout: Duration,
}

/// A new plain IPv4 connection for `ConnTable::insert_conn_v4`: every address IPv4
/// (as integers), a client port, no fwmark, no controlling template, and flags (the real
/// server's conn flags) without TEMPLATE, NO_CPORT or ONE_PACKET.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewConnV4 {
    pub(crate) protocol: Protocol,
    pub(crate) caddr: u32,
    pub(crate) cport: u16,
    pub(crate) vaddr: u32,
    pub(crate) vport: u16,
    pub(crate) daddr: u32,
    pub(crate) dport: u16,
    pub(crate) flags: ConnFlags,
    pub(crate) dest: DestId,
    /// Initial timeout, as [`NewConn::timeout`].
    pub(crate) timeout: Duration,
}

/// A decoded copy of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn {
    /// Its slot.
    pub id: ConnId,
    /// Protocol.
    pub protocol: Protocol,
    /// Client address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    pub daddr: IpAddr,
    /// Real server port.
    pub dport: u16,
    /// Flags (HASHED reflects whether the entry is still findable).
    pub flags: ConnFlags,
    /// Raw protocol state (see [`crate::conn::state::state_name`]).
    pub state: u8,
    /// The mark.
    pub fwmark: u32,
    /// The bound real server.
    pub dest: Option<DestId>,
    /// The controlling template.
    pub control: Option<ConnId>,
    /// How many connections this template controls (0 for connections).
    pub n_control: u32,
    /// Input packets counted with [`ConnTable::inc_in_pkts`] (0 for templates).
    pub in_pkts: u32,
    /// When the entry becomes due for expiry.
    pub expires: Instant,
    /// A template's own timeout (`None` for connections, whose timeout follows their state).
    pub template_timeout: Option<Duration>,
}

impl Conn {
    /// Whether this is a persistence template.
    pub fn is_template(&self) -> bool {
        self.flags.contains(ConnFlags::TEMPLATE)
    }

    /// The TCP state, for TCP connections.
    pub fn tcp_state(&self) -> Option<TcpState> {
        if self.protocol == Protocol::Tcp && !self.is_template() {
            TcpState::from_index(self.state)
        } else {
            None
        }
    }

    /// The state as `ipvsadm -Lnc` prints it.
    pub fn state_name(&self) -> &'static str {
        crate::conn::state::state_name(self.protocol, self.is_template(), self.state)
    }

    /// The forwarding method.
    pub fn fwd_method(&self) -> FwdMethod {
        self.flags.fwd_method()
    }

    /// The key this entry is found by with [`ConnTable::lookup_in`] /
    /// [`ConnTable::lookup_template`].
    pub fn in_key(&self) -> InKey {
        InKey {
            protocol: self.protocol,
            caddr: self.caddr,
            cport: self.cport,
            vaddr: self.vaddr,
            vport: self.vport,
        }
    }

    /// The reply key this entry is found by with [`ConnTable::lookup_out`].
    pub fn out_key(&self) -> OutKey {
        OutKey::of_conn(
            self.protocol,
            self.fwd_method() == FwdMethod::Masq,
            (self.caddr, self.cport),
            (self.vaddr, self.vport),
            (self.daddr, self.dport),
        )
    }
}

/// Why an entry left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpireReason {
    /// Its timer fired with nothing controlled by it.
    Timeout,
    /// Evicted by [`ConnTable::insert`] on a full table.
    Evicted,
    /// [`ConnTable::expire_now`].
    ExpiredNow,
}

/// An entry that left the table: unbind it from its destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired {
    /// The entry as it was.
    pub conn: Conn,
    /// The counter change for its destination (`ip_vs_unbind_dest`), by its flags at removal;
    /// apply with [`crate::conn::accounting::apply_unbind`].
    pub unbind: Option<(DestId, DestDelta)>,
    /// Why.
    pub reason: ExpireReason,
}

/// A successful insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// The new entry.
    pub id: ConnId,
    /// The counter change for its destination (`ip_vs_bind_dest`); apply with
    /// [`crate::conn::accounting::apply_bind`].
    pub bind: Option<(DestId, DestDelta)>,
    /// An embryonic entry evicted to make room: unbind it like an expired one.
    pub evicted: Option<Expired>,
}

/// Why [`ConnTable::insert`] refused an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// An entry with the same client-side key (and kind) exists.
    #[error("an entry with the same key exists (slot {})", .0.index())]
    Exists(ConnId),
    /// The table is full and no embryonic entry could be evicted.
    #[error("connection table full")]
    Full,
    /// ONE_PACKET connections are never hashed (spec §6.3).
    #[error("one-packet connections are not stored in the table")]
    OnePacket,
    /// NO_CPORT entries must be created with client port 0.
    #[error("NO_CPORT entry with non-zero client port {0}")]
    NoCportWithPort(u16),
    /// `control` is not a live template.
    #[error("control slot {0} is not a live template")]
    BadControl(u32),
}

/// The effect of one TCP segment ([`ConnTable::tcp_packet`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpUpdate {
    /// State before.
    pub old: TcpState,
    /// State after.
    pub new: TcpState,
    /// The activity change of the bound destination, if the state change flipped it; apply
    /// with [`crate::conn::accounting::apply_state_change`].
    pub delta: Option<(DestId, DestDelta)>,
    /// The controlling template, if this segment marked it ASSURED.
    pub assured: Option<ConnId>,
}

/// The fields of a live entry that its packets change, read together
/// ([`ConnTable::status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnStatus {
    /// The raw state ([`ConnTable::state`]).
    pub state: u8,
    /// The flags ([`ConnTable::flags`]).
    pub flags: ConnFlags,
    /// The bound destination ([`ConnTable::dest`]).
    pub dest: Option<DestId>,
    /// When the entry becomes due ([`ConnTable::expires`]).
    pub expires: Instant,
}

/// Counters, one per outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnTableStats {
    /// Entries inserted.
    pub inserted: u64,
    /// Inserts refused: key exists.
    pub exists: u64,
    /// Inserts refused: table full, nothing evictable.
    pub refused_full: u64,
    /// Embryonic entries evicted to make room.
    pub evicted: u64,
    /// Entries freed by their timer.
    pub expired: u64,
    /// Template expiries deferred by 60 s because they still control connections.
    pub deferred: u64,
    /// Entries removed by [`ConnTable::expire_now`].
    pub expired_now: u64,
    /// Entries unhashed (neutralised templates).
    pub unhashed: u64,
    /// Index rebuilds (always 0: the indexes delete by backward shift and never rebuild).
    pub index_rebuilds: u64,
}

/// Construction parameters.
#[derive(Clone, Debug)]
pub struct ConnTableConfig {
    /// Most entries (connections and templates) at once; at most [`MAX_CAPACITY`].
    pub capacity: u32,
    /// Secret key of the index hash (draw it from a CSPRNG in the driver).
    pub hash_key: HashKey,
    /// Timer resolution: an entry is due at the first tick boundary at or after its deadline
    /// (last packet + timeout), so it outlives its timeout by less than one tick, and not at
    /// all when the deadline falls on a tick (whole seconds, say). Default 125 ms.
    pub tick: Duration,
    /// log2 of the number of wheel buckets. Default 13 (8192 buckets: 1024 s at 125 ms ticks,
    /// longer than the default ESTABLISHED timeout).
    pub wheel_bits: u32,
    /// Protocol timeouts.
    pub timeouts: Timeouts,
    /// Which TCP states are active.
    pub active: ActiveStates,
    /// Most entries examined to find an embryonic one to evict when full. Default 64.
    pub evict_scan: u32,
    /// Start both indexes small and double them as entries are added, up to the size
    /// `capacity` needs, instead of allocating them for `capacity` at construction. For a
    /// driver whose capacity is only a loose upper bound (an offline capture replay sized
    /// from the file length): the indexes stay as small as the live entries, so lookups stay
    /// in the CPU caches. The price is an allocation and a rehash of the live entries at each
    /// doubling (amortised O(1) per insertion, but a latency spike on that one packet).
    /// Lookups give the same results either way. Default false: a data plane allocates
    /// everything at start.
    pub grow_indexes: bool,
}

impl ConnTableConfig {
    /// Defaults with the given capacity and hash key.
    pub fn new(capacity: u32, hash_key: HashKey) -> Self {
        ConnTableConfig {
            capacity,
            hash_key,
            tick: Duration::from_millis(125),
            wheel_bits: 13,
            timeouts: Timeouts::default(),
            active: ActiveStates::Current,
            evict_scan: 64,
            grow_indexes: false,
        }
    }
}

/// Entries and side tables (separate from the indexes so that index closures can borrow it).
struct Store {
    slab: Vec<Entry>,
    /// Addresses (c, v, d) of entries with any IPv6 address.
    wide: Vec<[IpAddr; 3]>,
    wide_free: Vec<u32>,
    /// fwmark of marked entries, by slot.
    fwmarks: HashMap<u32, u32>,
    key: HashKey,
    /// `key`'s hashing starting point, for every index hash.
    sip: SipStart,
}

impl Store {
    #[inline]
    fn e(&self, slot: u32) -> &Entry {
        &self.slab[slot as usize]
    }

    /// Stores the addresses of an entry with any IPv6 address in the side slab; returns
    /// their index there (out of line: the IPv4 entry is the one inlined in the insert).
    #[inline(never)]
    fn add_wide(&mut self, w: [IpAddr; 3]) -> u32 {
        match self.wide_free.pop() {
            Some(i) => {
                self.wide[i as usize] = w;
                i
            }
            None => {
                self.wide.push(w);
                (self.wide.len() - 1) as u32
            }
        }
    }

    /// Records the fwmark of a marked entry (out of line, as [`Store::add_wide`]).
    #[inline(never)]
    fn add_fwmark(&mut self, slot: u32, mark: u32) {
        self.fwmarks.insert(slot, mark);
    }

    #[inline]
    fn addrs(&self, slot: u32) -> (Ad, Ad, Ad) {
        let e = self.e(slot);
        if e.bits & B_WIDE == 0 {
            (Ad::V4(e.caddr), Ad::V4(e.vaddr), Ad::V4(e.daddr))
        } else {
            let w = &self.wide[e.caddr as usize];
            (Ad::of(w[0]), Ad::of(w[1]), Ad::of(w[2]))
        }
    }

    fn ip_addrs(&self, slot: u32) -> [IpAddr; 3] {
        let e = self.e(slot);
        if e.bits & B_WIDE == 0 {
            [
                IpAddr::V4(e.caddr.into()),
                IpAddr::V4(e.vaddr.into()),
                IpAddr::V4(e.daddr.into()),
            ]
        } else {
            self.wide[e.caddr as usize]
        }
    }

    #[inline]
    fn in_hash(&self, slot: u32) -> u64 {
        let e = self.e(slot);
        let kind = e.in_kind().unwrap_or(KIND_CONN);
        if e.bits & B_WIDE == 0 {
            return hash_v4(
                &self.sip,
                e.protocol(),
                kind,
                e.caddr,
                e.cport,
                e.vaddr,
                e.vport,
            );
        }
        let (c, v, _) = self.addrs(slot);
        hash_tuple(&self.sip, e.protocol(), kind, c, e.cport, v, e.vport)
    }

    /// The reply-side source of an entry: real server for NAT, virtual address otherwise.
    #[inline]
    fn out_src(&self, slot: u32) -> (Ad, u16) {
        let e = self.e(slot);
        let (_, v, d) = self.addrs(slot);
        if e.cflags().fwd_method() == FwdMethod::Masq {
            (d, e.dport)
        } else {
            (v, e.vport)
        }
    }

    #[inline]
    fn out_hash(&self, slot: u32) -> u64 {
        let e = self.e(slot);
        if e.bits & B_WIDE == 0 {
            // An IPv4 entry's reply key straight from the entry.
            let (s, sp) = e.reply_source_v4();
            return hash_v4(&self.sip, e.protocol(), KIND_OUT, s, sp, e.caddr, e.cport);
        }
        let (c, _, _) = self.addrs(slot);
        let (s, sp) = self.out_src(slot);
        hash_tuple(&self.sip, e.protocol(), KIND_OUT, s, sp, c, e.cport)
    }

    #[inline]
    fn in_eq(&self, slot: u32, kind: u64, k: &InKey, c: Ad, v: Ad) -> bool {
        self.in_eq_fields(slot, kind, k.protocol, k.cport, k.vport, c, v)
    }

    /// [`Store::in_eq`] with the key's fields.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn in_eq_fields(
        &self,
        slot: u32,
        kind: u64,
        protocol: Protocol,
        cport: u16,
        vport: u16,
        c: Ad,
        v: Ad,
    ) -> bool {
        let e = self.e(slot);
        if e.cport != cport || e.vport != vport || e.protocol() != protocol {
            return false;
        }
        if e.in_kind() != Some(kind) {
            return false;
        }
        let (ec, ev, _) = self.addrs(slot);
        ec == c && ev == v
    }

    #[inline]
    fn out_eq(&self, slot: u32, k: &OutKey, s: Ad, d: Ad) -> bool {
        let e = self.e(slot);
        if e.cport != k.dport || e.protocol() != k.protocol {
            return false;
        }
        let (es, esp) = self.out_src(slot);
        let (ec, _, _) = self.addrs(slot);
        esp == k.sport && es == s && ec == d
    }
}

/// An IPv4 reply key and its out-index hash (see `ConnTable::last_out`).
#[derive(Clone, Copy)]
struct LastOut {
    /// The protocol, as [`proto_bits`].
    bits: u16,
    s: u32,
    sport: u16,
    d: u32,
    dport: u16,
    hash: u64,
}

/// The connection table. See the module docs for the layout and [`crate::conn`] for the
/// calling contract.
///
/// ```
/// use lvs_core::conn::{ConnFlags, ConnTable, ConnTableConfig, FwdMethod, HashKey, InKey, NewConn};
/// use lvs_core::sched::DestId;
/// use lvs_core::{Duration, Instant, Protocol};
///
/// let mut t = ConnTable::new(ConnTableConfig::new(1024, HashKey::from_u128(0x1234)));
/// let now = Instant::from_secs(1);
/// let key = InKey {
///     protocol: Protocol::Tcp,
///     caddr: "192.0.2.7".parse().unwrap(),
///     cport: 40000,
///     vaddr: "198.51.100.1".parse().unwrap(),
///     vport: 80,
/// };
/// let ins = t
///     .insert(now, NewConn {
///         protocol: key.protocol,
///         caddr: key.caddr,
///         cport: key.cport,
///         vaddr: key.vaddr,
///         vport: key.vport,
///         daddr: "10.0.0.2".parse().unwrap(),
///         dport: 8080,
///         flags: ConnFlags::for_method(FwdMethod::Masq).with(ConnFlags::INACTIVE),
///         fwmark: 0,
///         dest: Some(DestId(2)),
///         control: None,
///         timeout: Duration::from_secs(3),
///     })
///     .unwrap();
/// assert_eq!(t.lookup_in(&key), Some(ins.id));
/// let reply = t.get(ins.id).unwrap().out_key();
/// assert_eq!(t.lookup_out(&reply), Some(ins.id));
///
/// // Nothing is due before 3 s have passed; then the entry expires.
/// let mut gone = Vec::new();
/// assert!(!t.handle_timeout(now + Duration::from_millis(2900), 100, |e| gone.push(e)));
/// assert!(gone.is_empty());
/// t.handle_timeout(now + Duration::from_millis(3200), 100, |e| gone.push(e));
/// assert_eq!(gone.len(), 1);
/// assert_eq!(t.lookup_in(&key), None);
/// ```
pub struct ConnTable {
    store: Store,
    in_idx: SlotIndex,
    out_idx: SlotIndex,
    /// Reply-source filter: out-indexed entries per [`out_filter_bucket`].
    out_filter: Vec<u32>,
    capacity: u32,
    len: u32,
    free_head: u32,
    no_cport: u32,
    // Wheel.
    heads: Vec<u32>,
    occupied: Vec<u64>,
    wheel_mask: u64,
    wheel_size: u64,
    cursor: u64,
    tick_ns: u64,
    /// `tick_ns` as a divisor by multiplication: the due tick of every packet's re-arm
    /// divides by it, and a 64-bit `div` is the slowest instruction of that path.
    tick_div: StrengthReducedU64,
    /// The longest timeout a due tick is computed with: 2^30 ticks (see `due_tick`).
    max_timeout: Duration,
    /// The last `due_tick` computed: (deadline in ns, its tick). Packets handled at one
    /// `now` (a driver's batch) mostly re-arm with one timeout, and the division it saves
    /// is the slowest instruction of an existing flow's packet.
    due_memo: (u64, u64),
    /// Per slot of timeouts (see `due_tick_interval`): the start (exclusive) of a tick
    /// interval of deadlines and its tick boundary, `((q - 1) * tick, q)`.
    due_ticks: [(u64, u64); DUE_SLOTS],
    // Policy.
    timeouts: Timeouts,
    active: ActiveStates,
    evict_scan: u32,
    stats: ConnTableStats,
    /// Templates whose expiry was deferred, while a sync master wants them
    /// ([`ConnTable::set_deferred_log`]).
    deferred_log: Option<Vec<ConnId>>,
    /// The reply key and out-index hash of the last IPv4 NAT entry put in the out index: a
    /// NAT connection's reply key is known only once it is inserted, and the hint for its
    /// real server's packets ([`ConnTable::reply_hash_v4`]) then takes the hash from here
    /// instead of computing it again.
    last_out: Option<LastOut>,
}

impl core::fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConnTable")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl ConnTable {
    /// A table with room for `config.capacity` entries. The slab and both indexes are
    /// allocated here, once (the indexes start small with [`ConnTableConfig::grow_indexes`]).
    ///
    /// # Panics
    /// If the capacity is 0 or above [`MAX_CAPACITY`], the tick is zero, or `wheel_bits` is
    /// not in 1..=24.
    pub fn new(config: ConnTableConfig) -> Self {
        assert!(
            config.capacity > 0 && config.capacity <= MAX_CAPACITY,
            "capacity out of range"
        );
        assert!(config.tick.as_nanos() > 0, "tick must be positive");
        assert!(
            (1..=24).contains(&config.wheel_bits),
            "wheel_bits must be in 1..=24"
        );
        let cap = config.capacity as usize;
        let wheel_size = 1u64 << config.wheel_bits;
        let new_index = if config.grow_indexes {
            SlotIndex::growing
        } else {
            SlotIndex::new
        };
        ConnTable {
            store: Store {
                slab: Vec::with_capacity(cap),
                wide: Vec::new(),
                wide_free: Vec::new(),
                fwmarks: HashMap::new(),
                key: config.hash_key,
                sip: config.hash_key.sip_start(),
            },
            in_idx: new_index(config.capacity),
            out_idx: new_index(config.capacity),
            out_filter: vec![0; cap.next_power_of_two().clamp(64, OUT_FILTER_MAX)],
            capacity: config.capacity,
            len: 0,
            free_head: NIL,
            no_cport: 0,
            heads: vec![NIL; wheel_size as usize],
            occupied: vec![0; (wheel_size as usize).div_ceil(64)],
            wheel_mask: wheel_size - 1,
            wheel_size,
            cursor: 0,
            tick_ns: config.tick.as_nanos(),
            tick_div: StrengthReducedU64::new(config.tick.as_nanos()),
            max_timeout: Duration::from_nanos(config.tick.as_nanos().saturating_mul(1 << 30)),
            due_memo: (0, 0),
            // Deadlines in `(0, tick]` have tick boundary 1.
            due_ticks: [(0, 1); DUE_SLOTS],
            timeouts: config.timeouts,
            active: config.active,
            evict_scan: config.evict_scan,
            stats: ConnTableStats::default(),
            deferred_log: None,
            last_out: None,
        }
    }

    /// Entries in the table (including unhashed templates waiting to expire).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The capacity fixed at construction.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The timer wheel's tick ([`ConnTableConfig::tick`]): every deadline [`ConnTable::due`]
    /// gives is the first multiple of it at or after `now + timeout`.
    pub fn tick(&self) -> Duration {
        Duration::from_nanos(self.tick_ns)
    }

    /// The longest timeout the table arms a timer with, 2^30 ticks: [`ConnTable::due`] (and
    /// every re-arm) takes a longer one as this.
    pub fn max_timeout(&self) -> Duration {
        self.max_timeout
    }

    /// The outcome counters.
    pub fn stats(&self) -> &ConnTableStats {
        &self.stats
    }

    /// The protocol timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Mutable protocol timeouts (`ipvsadm --set`). Like the kernel, existing entries pick the
    /// new values up at their next packet.
    pub fn timeouts_mut(&mut self) -> &mut Timeouts {
        &mut self.timeouts
    }

    /// Which TCP states count as active.
    pub fn active_states(&self) -> ActiveStates {
        self.active
    }

    /// Whether any NO_CPORT connection exists (the in-lookup then tries the cport-0 fallback).
    pub fn has_no_cport(&self) -> bool {
        self.no_cport > 0
    }

    /// Bytes held by the table's allocations (slab, indexes, side tables, wheel), from their
    /// capacities. Benches cross-check it with a counting allocator.
    pub fn allocated_bytes(&self) -> usize {
        self.store.slab.capacity() * core::mem::size_of::<Entry>()
            + self.in_idx.allocation_size()
            + self.out_idx.allocation_size()
            + self.store.wide.capacity() * core::mem::size_of::<[IpAddr; 3]>()
            + self.store.wide_free.capacity() * 4
            + self.store.fwmarks.allocation_size()
            + self.heads.capacity() * 4
            + self.occupied.capacity() * 8
            + self.out_filter.capacity() * 4
    }

    // ---- time ----------------------------------------------------------------------------

    fn tick_of(&self, t: Instant) -> u64 {
        t.as_nanos() / self.tick_div
    }

    /// `ns.div_ceil(tick_ns)`, by multiplication.
    #[inline(always)]
    fn ticks_ceil(&self, ns: u64) -> u64 {
        let (q, r) = StrengthReducedU64::div_rem(ns, self.tick_div);
        q + u64::from(r != 0)
    }

    /// The tick at which an entry re-armed at `now` with `timeout` becomes due: the first tick
    /// boundary at or after `now + timeout` (less than one tick later), so that a
    /// `handle_timeout` at exactly the deadline expires the entry, as the kernel's timer is due
    /// once `jiffies >= expires`.
    /// Timeouts are clamped to 2^30 ticks (about 4 years at the default tick) so that the
    /// 32-bit tick stored in an entry always reads back unambiguously.
    fn due_tick(&self, now: Instant, timeout: Duration) -> u64 {
        self.ticks_ceil((now + timeout.min(self.max_timeout)).as_nanos())
    }

    /// [`ConnTable::due_tick`] through the one-entry memo (`due_memo`), then the tick
    /// intervals of recent deadlines (`due_ticks`).
    #[inline]
    fn due_tick_memo(&mut self, now: Instant, timeout: Duration) -> u64 {
        let at = (now + timeout.min(self.max_timeout)).as_nanos();
        if at != self.due_memo.0 {
            self.due_memo = (at, self.due_tick_interval(at, timeout));
        }
        self.due_memo.1
    }

    /// `ticks_ceil(at)` for a deadline `at` = now + `timeout`, through the interval memo of
    /// that timeout's slot: a table whose packets come at many instants (a simulation, a
    /// replay) re-arms each state's connections to deadlines that advance by less than a
    /// tick from one packet to the next, and the deadlines of one timeout share a slot.
    #[inline]
    fn due_tick_interval(&mut self, at: u64, timeout: Duration) -> u64 {
        let i = due_slot(timeout);
        let (lo, q) = self.due_ticks[i];
        // `(lo, lo + tick]` is the interval of instants whose tick boundary is `q`.
        if at > lo && at - lo <= self.tick_ns {
            return q;
        }
        let q = self.ticks_ceil(at);
        if q > 0 {
            self.due_ticks[i] = ((q - 1) * self.tick_ns, q);
        }
        q
    }

    /// Full tick of a stored (truncated) tick, relative to the cursor.
    #[inline]
    fn full_tick(&self, t: u32) -> u64 {
        let d = t.wrapping_sub(self.cursor as u32) as i32 as i64;
        (self.cursor as i64 + d).max(0) as u64
    }

    #[inline]
    fn instant_of_tick(&self, t: u64) -> Instant {
        Instant::from_nanos(t.saturating_mul(self.tick_ns))
    }

    // ---- wheel ---------------------------------------------------------------------------

    fn bucket_set(&mut self, b: u64, on: bool) {
        let (w, bit) = ((b >> 6) as usize, 1u64 << (b & 63));
        if on {
            self.occupied[w] |= bit;
        } else {
            self.occupied[w] &= !bit;
        }
    }

    /// Links `slot` into the bucket for tick `due` (clamped into the wheel's window).
    fn link(&mut self, slot: u32, due: u64) {
        self.link_inline(slot, due);
    }

    /// [`ConnTable::link`], inlined where a new connection's insert calls it.
    #[inline(always)]
    fn link_inline(&mut self, slot: u32, due: u64) {
        let pos = due.clamp(self.cursor, self.cursor + self.wheel_size - 1);
        let b = pos & self.wheel_mask;
        let old = self.heads[b as usize];
        {
            let e = &mut self.store.slab[slot as usize];
            e.prev = HEAD | b as u32;
            e.next = old;
        }
        if old != NIL {
            self.store.slab[old as usize].prev = slot;
        }
        self.heads[b as usize] = slot;
        self.bucket_set(b, true);
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let e = &self.store.slab[slot as usize];
            (e.prev, e.next)
        };
        if prev & HEAD != 0 {
            let b = (prev & !HEAD) as u64;
            self.heads[b as usize] = next;
            if next == NIL {
                self.bucket_set(b, false);
            }
        } else {
            self.store.slab[prev as usize].next = next;
        }
        if next != NIL {
            self.store.slab[next as usize].prev = prev;
        }
        let e = &mut self.store.slab[slot as usize];
        e.prev = NIL;
        e.next = NIL;
    }

    /// The first occupied bucket's tick in `[from, to]` (`to - from < wheel_size`).
    fn next_occupied(&self, from: u64, to: u64) -> Option<u64> {
        if to < from {
            return None;
        }
        let mut t = from;
        while t <= to {
            let b = t & self.wheel_mask;
            let w = self.occupied[(b >> 6) as usize] >> (b & 63);
            if w != 0 {
                let found = t + w.trailing_zeros() as u64;
                return (found <= to).then_some(found);
            }
            // Skip to the next word boundary.
            t += 64 - (b & 63);
        }
        None
    }

    /// Re-arms `slot` to be due at `now + timeout`: later → store only (lazy), earlier → move.
    #[inline]
    fn rearm(&mut self, slot: u32, now: Instant, timeout: Duration) {
        let due = self.due_tick_memo(now, timeout);
        let old = self.full_tick(self.store.e(slot).expires);
        self.store.slab[slot as usize].expires = due as u32;
        if due < old {
            self.unlink(slot);
            self.link(slot, due);
        }
    }

    /// When [`ConnTable::handle_timeout`] has work: the start of the earliest non-empty wheel
    /// bucket (possibly in the past). `None` when the table is empty.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        self.next_occupied(self.cursor, self.cursor + self.wheel_size - 1)
            .map(|t| self.instant_of_tick(t))
    }

    /// Expires what is due at `now`, handing each freed entry to `on_expired`, and examining at
    /// most `limit` entries (so one call stays short on a huge table). Returns `true` when
    /// more work is already due (call again).
    ///
    /// A due template that still controls connections is not freed: its timeout becomes 60 s
    /// and it is re-armed for 60 s after the expiry (not after `now`, spec §2.3, §2.6). A connection freed here leaves its template
    /// (`n_control` decremented).
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        limit: usize,
        mut on_expired: impl FnMut(Expired),
    ) -> bool {
        let now_tick = self.tick_of(now);
        let mut work = 0usize;
        loop {
            if self.len == 0 {
                self.cursor = self.cursor.max(now_tick + 1);
                return false;
            }
            if self.cursor > now_tick {
                return false;
            }
            let upto = now_tick.min(self.cursor + self.wheel_size - 1);
            let Some(t) = self.next_occupied(self.cursor, upto) else {
                // Every entry lies within the window, so an empty window means all of them
                // are after `upto`.
                self.cursor = upto + 1;
                continue;
            };
            self.cursor = t;
            let b = (t & self.wheel_mask) as usize;
            while self.heads[b] != NIL {
                if work >= limit {
                    return true;
                }
                work += 1;
                let slot = self.heads[b];
                self.unlink(slot);
                let e = *self.store.e(slot);
                let due = self.full_tick(e.expires);
                if due > now_tick {
                    // Lazily extended, or parked beyond the horizon: move it forward.
                    self.link(slot, due);
                    continue;
                }
                if e.is_template() && e.link > 0 {
                    // Still controls connections: expire later (`expire_later`), 60 s after
                    // the timer fired, i.e. after the expiry itself (at most one tick before
                    // `due`, the first tick boundary at or after it), not after this call: a
                    // late call and the tick rounding must not push the template's life on by
                    // a little more at each deferral. The new due tick is after the one being
                    // processed, so a late call still meets it (and the connections due
                    // before it) in time order.
                    self.store.slab[slot as usize].aux = duration_ms(DEFERRED_TIMEOUT);
                    let fired = self.instant_of_tick(due);
                    let due = self.due_tick(fired, DEFERRED_TIMEOUT);
                    self.store.slab[slot as usize].expires = due as u32;
                    self.link(slot, due);
                    self.stats.deferred += 1;
                    if let Some(log) = self.deferred_log.as_mut() {
                        log.push(ConnId(slot));
                    }
                    continue;
                }
                let ex = self.free(slot, ExpireReason::Timeout);
                self.stats.expired += 1;
                on_expired(ex);
            }
            self.cursor = t + 1;
        }
    }

    // ---- insert / remove -----------------------------------------------------------------

    /// Creates an entry (`ip_vs_conn_new` + hashing), armed to expire at
    /// `now + new.timeout`. On a full table an embryonic connection may be evicted (see the
    /// module docs); it is returned in [`Inserted::evicted`].
    pub fn insert(&mut self, now: Instant, new: NewConn) -> Result<Inserted, InsertError> {
        self.insert_hashed(now, new, None, None)
    }

    /// [`ConnTable::insert`] with the in-key hash of a connection key already computed by
    /// [`ConnTable::lookup_in_hashed`]: `known` is `(key, hash)`, used only when `key` is the
    /// new entry's in-key and the entry is a plain connection (`KIND_CONN`).
    pub(crate) fn insert_hashed(
        &mut self,
        now: Instant,
        new: NewConn,
        known: Option<(InKey, u64)>,
        known_out: Option<(OutKey, u64)>,
    ) -> Result<Inserted, InsertError> {
        let mut evicted = None;
        let (id, bind) = self.insert_lean(now, &new, known, known_out, &mut evicted)?;
        Ok(Inserted { id, bind, evicted })
    }

    /// [`ConnTable::insert_hashed`] returning the new entry and its bind delta, with an
    /// evicted entry (rare) written to `evicted`: an [`Inserted`] carries a whole decoded
    /// [`Expired`] that a new flow's packet would otherwise copy on every insert.
    pub(crate) fn insert_lean(
        &mut self,
        now: Instant,
        new: &NewConn,
        known: Option<(InKey, u64)>,
        known_out: Option<(OutKey, u64)>,
        evicted: &mut Option<Expired>,
    ) -> Result<(ConnId, Option<(DestId, DestDelta)>), InsertError> {
        let flags = new.flags.without(ConnFlags::HASHED);
        if flags.contains(ConnFlags::ONE_PACKET) {
            return Err(InsertError::OnePacket);
        }
        let is_tpl = flags.contains(ConnFlags::TEMPLATE);
        if flags.contains(ConnFlags::NO_CPORT) && !is_tpl && new.cport != 0 {
            return Err(InsertError::NoCportWithPort(new.cport));
        }
        if let Some(c) = new.control {
            if !self.is_live_template(c.0) || is_tpl {
                return Err(InsertError::BadControl(c.0));
            }
        }
        let kind = if is_tpl {
            Some(KIND_TEMPLATE)
        } else if flags.contains(ConnFlags::NO_CPORT) {
            Some(KIND_NO_CPORT)
        } else if new.cport == 0 {
            None
        } else {
            Some(KIND_CONN)
        };
        // The in-key's hash, computed once for the existence check and the index insert.
        // The new entry's key is compared and probed field by field from `new` (building an
        // InKey of it would copy both addresses for nothing).
        let mut in_hash = None;
        if let Some(kind) = kind {
            let (c, v) = (Ad::of(new.caddr), Ad::of(new.vaddr));
            let hash_key = || {
                hash_tuple(
                    &self.store.sip,
                    new.protocol,
                    kind,
                    c,
                    new.cport,
                    v,
                    new.vport,
                )
            };
            let h = match known {
                Some((k, h))
                    if kind == KIND_CONN
                        && k.protocol == new.protocol
                        && k.cport == new.cport
                        && k.vport == new.vport
                        && k.caddr == new.caddr
                        && k.vaddr == new.vaddr =>
                {
                    h
                }
                _ => hash_key(),
            };
            debug_assert_eq!(h, hash_key());
            in_hash = Some(h);
            if let Some(id) = self.in_idx.find(h, |s| {
                self.store
                    .in_eq_fields(s, kind, new.protocol, new.cport, new.vport, c, v)
            }) {
                self.stats.exists += 1;
                return Err(InsertError::Exists(ConnId(id)));
            }
        }
        if self.len == 0 {
            // An empty wheel can start at the present: no hopping from the clock's origin.
            self.cursor = self.cursor.max(self.tick_of(now));
        }
        if self.len >= self.capacity {
            self.make_room(new.control, evicted)?;
        }

        let slot = self.alloc_slot();
        let mut e = Entry {
            cport: new.cport,
            vport: new.vport,
            dport: new.dport,
            flags: flags.with(ConnFlags::HASHED).bits(),
            bits: B_OCCUPIED | proto_bits(new.protocol),
            prev: NIL,
            next: NIL,
            dest: new.dest.map_or(NIL, |d| d.0),
            link: if is_tpl {
                0
            } else {
                new.control.map_or(NIL, |c| c.0)
            },
            aux: if is_tpl { duration_ms(new.timeout) } else { 0 },
            ..Entry::default()
        };
        match (new.caddr, new.vaddr, new.daddr) {
            (IpAddr::V4(c), IpAddr::V4(v), IpAddr::V4(d)) => {
                e.caddr = c.into();
                e.vaddr = v.into();
                e.daddr = d.into();
            }
            (c, v, d) => {
                e.bits |= B_WIDE;
                e.caddr = self.store.add_wide([c, v, d]);
            }
        }
        if new.fwmark != 0 {
            e.bits |= B_FWMARK;
            self.store.add_fwmark(slot, new.fwmark);
        }
        if kind.is_some() {
            e.bits |= B_IN_IDX;
        }
        e.bits |= B_OUT_IDX;
        let due = self.due_tick(now, new.timeout);
        e.expires = due as u32;
        self.store.slab[slot as usize] = e;
        // The caller's reply-key hash, if it is this entry's reply key.
        let out_hash = known_out.and_then(|(k, h)| {
            // `k == OutKey::of_conn(..)` of the new entry, field by field.
            let (saddr, sport) = if flags.fwd_method() == FwdMethod::Masq {
                (new.daddr, new.dport)
            } else {
                (new.vaddr, new.vport)
            };
            let own = k.protocol == new.protocol
                && k.sport == sport
                && k.dport == new.cport
                && k.saddr == saddr
                && k.daddr == new.caddr;
            own.then_some(h)
        });
        let out_hash = if e.bits & B_WIDE == 0 && flags.fwd_method() == FwdMethod::Masq {
            let h = out_hash.unwrap_or_else(|| self.store.out_hash(slot));
            self.last_out = Some(LastOut {
                bits: e.bits & B_PROTO,
                s: e.daddr,
                sport: e.dport,
                d: e.caddr,
                dport: e.cport,
                hash: h,
            });
            Some(h)
        } else {
            out_hash
        };
        self.index(slot, in_hash, out_hash);
        self.link(slot, due);
        if let Some(c) = new.control {
            let t = &mut self.store.slab[c.0 as usize];
            t.link = t.link.saturating_add(1);
        }
        if flags.contains(ConnFlags::NO_CPORT) && !is_tpl {
            self.no_cport += 1;
        }
        self.len += 1;
        self.stats.inserted += 1;
        Ok((ConnId(slot), new.dest.map(|d| (d, DestDelta::bind(flags)))))
    }

    /// [`ConnTable::insert_lean`] for the director's common new connection ([`NewConnV4`]),
    /// whose in-key the caller has just looked up and found absent (nothing has inserted it
    /// since), with `in_hash` the hash that lookup computed: no existence probe, no key to
    /// compare with a hint's, no address to convert, and the reply key hashed from the
    /// fields at hand. `known_out` is the hash of the reply key of every method but NAT,
    /// `(vaddr, vport) -> (caddr, cport)`, when the caller has it. The same entry, index
    /// entries, counters and errors as `insert_lean` with the equivalent [`NewConn`];
    /// returns the entry (its bind delta is `DestDelta::bind(new.flags)`).
    #[inline]
    pub(crate) fn insert_conn_v4(
        &mut self,
        now: Instant,
        new: &NewConnV4,
        in_hash: u64,
        known_out: Option<u64>,
        evicted: &mut Option<Expired>,
    ) -> Result<ConnId, InsertError> {
        let flags = new.flags.without(ConnFlags::HASHED);
        debug_assert!(
            new.cport != 0
                && flags.bits()
                    & (ConnFlags::TEMPLATE.bits()
                        | ConnFlags::NO_CPORT.bits()
                        | ConnFlags::ONE_PACKET.bits())
                    == 0,
            "not a plain connection"
        );
        let (p, c, cport, v, vport) = (new.protocol, new.caddr, new.cport, new.vaddr, new.vport);
        debug_assert_eq!(
            in_hash,
            hash_v4(&self.store.sip, p, KIND_CONN, c, cport, v, vport)
        );
        debug_assert!(
            self.in_idx
                .find(in_hash, |s| self.store.in_eq_fields(
                    s,
                    KIND_CONN,
                    p,
                    cport,
                    vport,
                    Ad::V4(c),
                    Ad::V4(v)
                ))
                .is_none(),
            "the new connection's key is in the table"
        );
        if self.len == 0 {
            // An empty wheel can start at the present: no hopping from the clock's origin.
            self.cursor = self.cursor.max(self.tick_of(now));
        }
        if self.len >= self.capacity {
            self.make_room(None, evicted)?;
        }
        let slot = self.alloc_slot();
        // The reply key: from the real server for NAT, else from the virtual service.
        let masq = flags.fwd_method() == FwdMethod::Masq;
        let (s, sport) = if masq {
            (new.daddr, new.dport)
        } else {
            (v, vport)
        };
        let hash_out = || hash_v4(&self.store.sip, p, KIND_OUT, s, sport, c, cport);
        let out_hash = match known_out {
            Some(h) if !masq => h,
            _ => hash_out(),
        };
        debug_assert_eq!(out_hash, hash_out());
        let due = self.due_tick(now, new.timeout);
        let bits = B_OCCUPIED | proto_bits(p) | B_IN_IDX | B_OUT_IDX;
        self.store.slab[slot as usize] = Entry {
            caddr: c,
            vaddr: v,
            daddr: new.daddr,
            cport,
            vport,
            dport: new.dport,
            flags: flags.with(ConnFlags::HASHED).bits(),
            bits,
            expires: due as u32,
            dest: new.dest.0,
            aux: 0,
            prev: NIL,
            next: NIL,
            link: NIL,
        };
        if masq {
            self.last_out = Some(LastOut {
                bits: bits & B_PROTO,
                s,
                sport,
                d: c,
                dport: cport,
                hash: out_hash,
            });
        }
        let store = &self.store;
        self.in_idx.insert(in_hash, slot, |s| store.in_hash(s));
        self.out_idx.insert(out_hash, slot, |s| store.out_hash(s));
        let b = out_filter_bucket(self.out_filter.len() - 1, p, Ad::V4(s), sport);
        self.out_filter[b] += 1;
        self.link_inline(slot, due);
        self.len += 1;
        self.stats.inserted += 1;
        Ok(ConnId(slot))
    }

    /// A slot for a new entry: the head of the free list, or a fresh one at the slab's end.
    #[inline(always)]
    fn alloc_slot(&mut self) -> u32 {
        if self.free_head != NIL {
            let s = self.free_head;
            self.free_head = self.store.e(s).next;
            s
        } else {
            let s = self.store.slab.len() as u32;
            self.store.slab.push(Entry::default());
            s
        }
    }

    /// For an insert into a full table: evicts an embryonic connection into `evicted`, or
    /// refuses the insert (out of line: a full table is the exception).
    #[cold]
    #[inline(never)]
    fn make_room(
        &mut self,
        keep: Option<ConnId>,
        evicted: &mut Option<Expired>,
    ) -> Result<(), InsertError> {
        match self.find_evictable(keep) {
            Some(victim) => {
                *evicted = Some(self.free(victim, ExpireReason::Evicted));
                self.stats.evicted += 1;
                Ok(())
            }
            None => {
                self.stats.refused_full += 1;
                Err(InsertError::Full)
            }
        }
    }

    fn is_live_template(&self, slot: u32) -> bool {
        self.store
            .slab
            .get(slot as usize)
            .is_some_and(|e| e.occupied() && e.is_template())
    }

    /// Inserts `slot` into the indexes its bits name; `in_hash` is its in-key hash when the
    /// caller has it already.
    /// `out_hash` likewise for its out-key.
    fn index(&mut self, slot: u32, in_hash: Option<u64>, out_hash: Option<u64>) {
        let store = &self.store;
        let bits = store.e(slot).bits;
        if bits & B_IN_IDX != 0 {
            debug_assert!(in_hash.is_none_or(|h| h == store.in_hash(slot)));
            let h = in_hash.unwrap_or_else(|| store.in_hash(slot));
            self.in_idx.insert(h, slot, |s| store.in_hash(s));
        }
        if bits & B_OUT_IDX != 0 {
            debug_assert!(out_hash.is_none_or(|h| h == store.out_hash(slot)));
            let h = out_hash.unwrap_or_else(|| store.out_hash(slot));
            self.out_idx.insert(h, slot, |s| store.out_hash(s));
            let b = self.out_filter_slot(slot);
            self.out_filter[b] += 1;
        }
    }

    /// The reply-source filter counter of an entry's out-key.
    #[inline]
    fn out_filter_slot(&self, slot: u32) -> usize {
        let e = self.store.e(slot);
        // An IPv4 entry's reply source straight from the entry (no side-slab addresses).
        let (s, sp) = if e.bits & B_WIDE == 0 {
            let (s, sp) = e.reply_source_v4();
            (Ad::V4(s), sp)
        } else {
            self.store.out_src(slot)
        };
        out_filter_bucket(self.out_filter.len() - 1, e.protocol(), s, sp)
    }

    fn unindex(&mut self, slot: u32) {
        let bits = self.store.e(slot).bits;
        if bits & B_IN_IDX != 0 {
            let h = self.store.in_hash(slot);
            let store = &self.store;
            if !self.in_idx.remove(h, slot, |s| store.in_hash(s)) {
                debug_assert!(false, "entry missing from the in-index");
            }
        }
        if bits & B_OUT_IDX != 0 {
            let h = self.store.out_hash(slot);
            let store = &self.store;
            if self.out_idx.remove(h, slot, |s| store.out_hash(s)) {
                let b = self.out_filter_slot(slot);
                debug_assert!(self.out_filter[b] > 0, "reply-source filter out of step");
                self.out_filter[b] = self.out_filter[b].saturating_sub(1);
            } else {
                debug_assert!(false, "entry missing from the out-index");
            }
        }
        let e = &mut self.store.slab[slot as usize];
        e.bits &= !(B_IN_IDX | B_OUT_IDX);
        e.flags &= !ConnFlags::HASHED.bits();
    }

    /// Removes an occupied slot (already unlinked from the wheel or not): unhash, leave the
    /// template, release side storage, put the slot on the free list.
    fn free(&mut self, slot: u32, reason: ExpireReason) -> Expired {
        let conn = self.decode(slot);
        let e = *self.store.e(slot);
        if e.prev != NIL {
            self.unlink(slot);
        }
        self.unindex(slot);
        if !e.is_template() && e.link != NIL {
            let t = &mut self.store.slab[e.link as usize];
            debug_assert!(t.occupied() && t.is_template() && t.link > 0);
            t.link = t.link.saturating_sub(1);
        }
        if e.cflags().contains(ConnFlags::NO_CPORT) && !e.is_template() {
            self.no_cport -= 1;
        }
        if e.bits & B_FWMARK != 0 {
            self.store.fwmarks.remove(&slot);
        }
        if e.bits & B_WIDE != 0 {
            self.store.wide_free.push(e.caddr);
        }
        let s = &mut self.store.slab[slot as usize];
        *s = Entry {
            next: self.free_head,
            prev: NIL,
            ..Entry::default()
        };
        self.free_head = slot;
        self.len -= 1;
        let flags = conn.flags;
        Expired {
            conn,
            unbind: conn.dest.map(|d| (d, DestDelta::unbind(flags))),
            reason,
        }
    }

    /// Walks the wheel from the next bucket due, looking for an embryonic TCP connection.
    fn find_evictable(&self, keep: Option<ConnId>) -> Option<u32> {
        let mut budget = self.evict_scan;
        let end = self.cursor + self.wheel_size - 1;
        let mut t = self.cursor;
        while budget > 0 {
            let found = self.next_occupied(t, end)?;
            let mut s = self.heads[(found & self.wheel_mask) as usize];
            while s != NIL && budget > 0 {
                budget -= 1;
                let e = self.store.e(s);
                let embryonic = e.protocol() == Protocol::Tcp
                    && !e.is_template()
                    && TcpState::from_index(e.state()).is_some_and(TcpState::is_embryonic);
                if embryonic && Some(ConnId(s)) != keep {
                    return Some(s);
                }
                s = e.next;
            }
            t = found + 1;
        }
        None
    }

    /// "Expire now" (`ip_vs_conn_expire_now` followed by the timer): frees the entry and
    /// returns it, or — for a template that still controls connections — re-arms it with 60 s
    /// and returns `None`, as the kernel's timer function does. `None` also for a dead id.
    pub fn expire_now(&mut self, id: ConnId, now: Instant) -> Option<Expired> {
        if !self.contains(id) {
            return None;
        }
        let e = *self.store.e(id.0);
        if e.is_template() && e.link > 0 {
            self.store.slab[id.0 as usize].aux = duration_ms(DEFERRED_TIMEOUT);
            self.set_due(id.0, now, DEFERRED_TIMEOUT);
            self.stats.deferred += 1;
            if let Some(log) = self.deferred_log.as_mut() {
                log.push(id);
            }
            return None;
        }
        self.stats.expired_now += 1;
        Some(self.free(id.0, ExpireReason::ExpiredNow))
    }

    /// Re-arms exactly at `now + timeout` (moving the entry whichever way).
    fn set_due(&mut self, slot: u32, now: Instant, timeout: Duration) {
        let due = self.due_tick(now, timeout);
        self.store.slab[slot as usize].expires = due as u32;
        self.unlink(slot);
        self.link(slot, due);
    }

    /// Removes the entry from both indexes and leaves it to expire (its timer unchanged): how
    /// the kernel neutralises a template whose destination became invalid
    /// (`ip_vs_check_template`, spec §2.6). A template also gets the kernel's neutral ports,
    /// client port 0 and virtual and real-server port 0xffff, which it keeps (and is listed
    /// and synced with) until it expires; the kernel hashes it back with them, where no
    /// lookup of a live template finds it, so here it simply stays out of the indexes.
    /// Returns whether it was hashed.
    pub fn unhash(&mut self, id: ConnId) -> bool {
        if !self.contains(id) {
            return false;
        }
        let hashed = self.store.e(id.0).bits & (B_IN_IDX | B_OUT_IDX) != 0;
        if hashed {
            self.unindex(id.0);
            self.stats.unhashed += 1;
            let e = &mut self.store.slab[id.0 as usize];
            if e.is_template() {
                e.cport = 0;
                e.vport = 0xffff;
                e.dport = 0xffff;
            }
        }
        hashed
    }

    /// Sets the client port of a NO_CPORT connection and rehashes it
    /// (`ip_vs_conn_fill_cport`). Fails with `Exists` (and changes nothing) if a connection
    /// with the completed key exists.
    pub fn fill_cport(&mut self, id: ConnId, cport: u16) -> Result<(), InsertError> {
        if !self.contains(id) {
            return Ok(());
        }
        let e = *self.store.e(id.0);
        if !e.cflags().contains(ConnFlags::NO_CPORT) || e.is_template() {
            return Ok(());
        }
        let c = self.decode(id.0);
        let key = InKey {
            cport,
            ..c.in_key()
        };
        if cport != 0 {
            if let Some(other) = self.find_in(KIND_CONN, &key) {
                return Err(InsertError::Exists(other));
            }
        }
        let was_hashed = e.bits & (B_IN_IDX | B_OUT_IDX) != 0;
        if was_hashed {
            self.unindex(id.0);
        }
        {
            let s = &mut self.store.slab[id.0 as usize];
            s.cport = cport;
            s.flags &= !ConnFlags::NO_CPORT.bits();
            if was_hashed {
                s.flags |= ConnFlags::HASHED.bits();
                s.bits |= B_OUT_IDX;
                if cport != 0 {
                    s.bits |= B_IN_IDX;
                }
            }
        }
        self.no_cport -= 1;
        if was_hashed {
            self.index(id.0, None, None);
        }
        Ok(())
    }

    // ---- lookups -------------------------------------------------------------------------

    fn find_in(&self, kind: u64, k: &InKey) -> Option<ConnId> {
        let (c, v) = (Ad::of(k.caddr), Ad::of(k.vaddr));
        let h = hash_tuple(&self.store.sip, k.protocol, kind, c, k.cport, v, k.vport);
        self.in_idx
            .find(h, |s| self.store.in_eq(s, kind, k, c, v))
            .map(ConnId)
    }

    /// The connection a client → VIP packet belongs to (`ip_vs_conn_in_get`): an exact match
    /// (a looked-up port of 0 matches only NO_CPORT entries, as in the kernel), then, while
    /// NO_CPORT connections exist, the same key with client port 0. Templates never match.
    pub fn lookup_in(&self, k: &InKey) -> Option<ConnId> {
        self.lookup_in_hashed(k).0
    }

    /// [`ConnTable::lookup_in`], also returning the hash of the exact-key probe when one was
    /// made (client port not 0), for [`ConnTable::insert_hashed`] after a miss.
    #[inline]
    pub(crate) fn lookup_in_hashed(&self, k: &InKey) -> (Option<ConnId>, Option<u64>) {
        self.lookup_in_prehashed(k, None)
    }

    /// The hash of `k`'s exact-key probe as [`ConnTable::lookup_in_hashed`] computes it
    /// (`None` for client port 0), for [`ConnTable::lookup_in_prehashed`] and
    /// [`ConnTable::prefetch`].
    #[inline]
    pub(crate) fn in_hash(&self, k: &InKey) -> Option<u64> {
        (k.cport != 0).then(|| {
            hash_tuple(
                &self.store.sip,
                k.protocol,
                KIND_CONN,
                Ad::of(k.caddr),
                k.cport,
                Ad::of(k.vaddr),
                k.vport,
            )
        })
    }

    /// [`ConnTable::in_hash`] of a key with two IPv4 addresses (as integers) and a client
    /// port that is not 0.
    #[inline]
    pub(crate) fn in_hash_v4(
        &self,
        protocol: Protocol,
        c: u32,
        cport: u16,
        v: u32,
        vport: u16,
    ) -> u64 {
        debug_assert!(cport != 0);
        hash_v4(&self.store.sip, protocol, KIND_CONN, c, cport, v, vport)
    }

    /// [`ConnTable::out_hash`] of a reply tuple with two IPv4 addresses (as integers).
    #[inline]
    pub(crate) fn out_hash_v4(
        &self,
        protocol: Protocol,
        s: u32,
        sport: u16,
        d: u32,
        dport: u16,
    ) -> u64 {
        hash_v4(&self.store.sip, protocol, KIND_OUT, s, sport, d, dport)
    }

    /// [`ConnTable::out_hash_v4`] for a real server's packet: the reply key of the IPv4 NAT
    /// entry last put in the out index (a new connection's, whose server answers next) takes
    /// the hash its insert computed.
    #[inline]
    pub(crate) fn reply_hash_v4(
        &self,
        protocol: Protocol,
        s: u32,
        sport: u16,
        d: u32,
        dport: u16,
    ) -> u64 {
        if let Some(l) = &self.last_out {
            // The hash is a function of the key alone (the table's hash key never changes).
            if l.d == d
                && l.s == s
                && l.dport == dport
                && l.sport == sport
                && l.bits == proto_bits(protocol)
            {
                debug_assert_eq!(l.hash, self.out_hash_v4(protocol, s, sport, d, dport));
                return l.hash;
            }
        }
        self.out_hash_v4(protocol, s, sport, d, dport)
    }

    /// The entry in slot `id`, if live.
    #[inline(always)]
    fn live(&self, id: ConnId) -> Option<&Entry> {
        self.store.slab.get(id.0 as usize).filter(|e| e.occupied())
    }

    /// A live entry's reply key and its out-index hash: what [`ConnTable::out_hash`] of
    /// the key gives (for an IPv4 entry through [`ConnTable::reply_hash_v4`], so the entry
    /// last put in the out index takes the hash its insert computed).
    #[inline]
    pub(crate) fn reply_key(&self, id: ConnId) -> Option<(OutKey, u64)> {
        let e = self.live(id)?;
        let protocol = e.protocol();
        if e.bits & B_WIDE == 0 {
            let (s, sport) = e.reply_source_v4();
            let hash = self.reply_hash_v4(protocol, s, sport, e.caddr, e.cport);
            let key = OutKey {
                protocol,
                saddr: IpAddr::V4(s.into()),
                sport,
                daddr: IpAddr::V4(e.caddr.into()),
                dport: e.cport,
            };
            return Some((key, hash));
        }
        let [c, v, d] = self.store.ip_addrs(id.0);
        let masq = e.cflags().fwd_method() == FwdMethod::Masq;
        let key = OutKey::of_conn(protocol, masq, (c, e.cport), (v, e.vport), (d, e.dport));
        Some((key, self.store.out_hash(id.0)))
    }

    /// The out-index hash of a connection whose reply tuple is `k`, for
    /// [`ConnTable::prefetch`] and the insert.
    #[inline]
    pub(crate) fn out_hash(&self, k: &OutKey) -> u64 {
        hash_tuple(
            &self.store.sip,
            k.protocol,
            KIND_OUT,
            Ad::of(k.saddr),
            k.sport,
            Ad::of(k.daddr),
            k.dport,
        )
    }

    /// The slot the next insert will use, read into the CPU caches (see
    /// [`ConnTable::prefetch`]).
    #[inline]
    pub(crate) fn prefetch_free_slot(&self) {
        let next = if self.free_head != NIL {
            self.free_head as usize
        } else {
            self.store.slab.len()
        };
        // `black_box` keeps the otherwise unused load (a slot beyond the slab's length is
        // not read: it is written, not read, by the insert).
        core::hint::black_box(self.store.slab.get(next).map(|e| e.bits));
    }

    /// The hash key of the table's hashes.
    pub(crate) fn hash_key(&self) -> HashKey {
        self.store.key
    }

    /// Reads into the CPU caches the buckets that a lookup or insert with these in-index and
    /// out-index hashes starts from. A caller with a batch of keys computes every hash
    /// first and then touches them all in one short loop, so that the cache misses of the
    /// batch are in flight together instead of one after another.
    #[inline]
    pub(crate) fn prefetch(&self, in_hash: Option<u64>, out_hash: Option<u64>) {
        if let Some(h) = in_hash {
            self.in_idx.touch(h);
        }
        if let Some(h) = out_hash {
            self.out_idx.touch(h);
        }
    }

    /// Reads into the CPU caches the slab entries that a lookup with these hashes would
    /// compare first: the first entries of the home buckets whose hash tag matches (the
    /// entry itself, almost always). The second stage of a batched read-ahead: when the
    /// buckets were read by [`ConnTable::prefetch`] a little earlier, this costs no wait on
    /// the index, and the entries' cache misses overlap in turn. Changes nothing.
    #[inline]
    pub(crate) fn prefetch_entries(&self, in_hash: Option<u64>, out_hash: Option<u64>) {
        let first = |idx: &SlotIndex, h: u64| idx.find(h, |_| true);
        let slots = [
            in_hash.and_then(|h| first(&self.in_idx, h)),
            out_hash.and_then(|h| first(&self.out_idx, h)),
        ];
        for s in slots.into_iter().flatten() {
            // The entry's first byte and, through the next entry's, its 46th: the lines
            // that hold what a packet reads (the first 34 bytes), wherever they fall.
            for e in self
                .store
                .slab
                .get(s as usize..)
                .unwrap_or_default()
                .iter()
                .take(2)
            {
                super::prefetch::prefetch(e);
            }
        }
    }

    /// [`ConnTable::lookup_in_hashed`] with the exact-key hash already computed (`known`, from
    /// [`ConnTable::in_hash`] for the same key), or computed here when `None`.
    #[inline]
    pub(crate) fn lookup_in_prehashed(
        &self,
        k: &InKey,
        known: Option<u64>,
    ) -> (Option<ConnId>, Option<u64>) {
        let mut hash = None;
        if k.cport != 0 {
            let (c, v) = (Ad::of(k.caddr), Ad::of(k.vaddr));
            let hash_key = || {
                hash_tuple(
                    &self.store.sip,
                    k.protocol,
                    KIND_CONN,
                    c,
                    k.cport,
                    v,
                    k.vport,
                )
            };
            let h = known.unwrap_or_else(hash_key);
            debug_assert_eq!(h, hash_key());
            hash = Some(h);
            if let Some(s) = self
                .in_idx
                .find(h, |s| self.store.in_eq(s, KIND_CONN, k, c, v))
            {
                return (Some(ConnId(s)), hash);
            }
        }
        if self.no_cport > 0 || k.cport == 0 {
            return (self.find_in(KIND_NO_CPORT, &InKey { cport: 0, ..*k }), hash);
        }
        (None, hash)
    }

    /// [`ConnTable::lookup_in_prehashed`] for a key whose two addresses are IPv4 (client
    /// `c`, virtual address `v`, as integers): the same answer and hash, without converting
    /// addresses back and forth between their general and hash forms on the per-packet path.
    #[inline]
    pub(crate) fn lookup_in_v4(
        &self,
        protocol: Protocol,
        c: u32,
        cport: u16,
        v: u32,
        vport: u16,
        known: Option<u64>,
    ) -> (Option<ConnId>, Option<u64>) {
        self.lookup_in_v4_at::<0>(protocol, c, cport, v, vport, known)
    }

    /// [`ConnTable::lookup_in_v4`], one copy per `SITE`: a caller on another hot path
    /// than the flow layer's takes its own copy, so that each copy has a single caller and
    /// is inlined there (the compiler keeps a function with two callers of this size out
    /// of line).
    #[inline]
    pub(crate) fn lookup_in_v4_at<const SITE: u8>(
        &self,
        protocol: Protocol,
        c: u32,
        cport: u16,
        v: u32,
        vport: u16,
        known: Option<u64>,
    ) -> (Option<ConnId>, Option<u64>) {
        let key = || InKey {
            protocol,
            caddr: IpAddr::V4(c.into()),
            cport,
            vaddr: IpAddr::V4(v.into()),
            vport,
        };
        if cport == 0 {
            return self.lookup_in_prehashed(&key(), known);
        }
        let hash_key = || hash_v4(&self.store.sip, protocol, KIND_CONN, c, cport, v, vport);
        let h = known.unwrap_or_else(hash_key);
        debug_assert_eq!(h, hash_key());
        let found = self.in_idx.find(h, |s| {
            let e = self.store.e(s);
            if e.cport != cport
                || e.vport != vport
                || e.protocol() != protocol
                || e.in_kind() != Some(KIND_CONN)
            {
                return false;
            }
            if e.bits & B_WIDE == 0 {
                e.caddr == c && e.vaddr == v
            } else {
                // A mixed-family entry (IPv6 real server) keeps IPv4 client and virtual
                // addresses in the side slab.
                let (ec, ev, _) = self.store.addrs(s);
                ec == Ad::V4(c) && ev == Ad::V4(v)
            }
        });
        if let Some(s) = found {
            return (Some(ConnId(s)), Some(h));
        }
        if self.no_cport > 0 {
            return (
                self.find_in(KIND_NO_CPORT, &InKey { cport: 0, ..key() }),
                Some(h),
            );
        }
        (None, Some(h))
    }

    /// The persistence template with this key (`ip_vs_ct_in_get`). Neutralised templates
    /// ([`ConnTable::unhash`]) never match.
    pub fn lookup_template(&self, k: &InKey) -> Option<ConnId> {
        self.find_in(KIND_TEMPLATE, k)
    }

    /// The connection a reply packet belongs to (`ip_vs_conn_out_get`). If several entries
    /// match (possible only for client port 0) which one is returned is unspecified, as the
    /// kernel's answer depends on hash-chain order.
    #[inline]
    pub fn lookup_out(&self, k: &OutKey) -> Option<ConnId> {
        let s = Ad::of(k.saddr);
        // No out-indexed entry has this source: a miss without touching the index.
        let b = out_filter_bucket(self.out_filter.len() - 1, k.protocol, s, k.sport);
        if self.out_filter[b] == 0 {
            return None;
        }
        self.lookup_out_past_filter(k, None)
    }

    /// Whether a reply packet of `protocol` from `src` may belong to an entry: `false` is
    /// certain ([`ConnTable::lookup_out`] would miss), `true` means "look it up". The
    /// reply-source filter alone (see the module docs): cheaper than building the key.
    #[inline(always)]
    pub(crate) fn may_be_reply_source(&self, protocol: Protocol, src: SocketAddr) -> bool {
        let b = out_filter_bucket(
            self.out_filter.len() - 1,
            protocol,
            Ad::of(src.ip()),
            src.port(),
        );
        self.out_filter[b] != 0
    }

    /// [`ConnTable::lookup_out`] for a packet whose source passed
    /// [`ConnTable::may_be_reply_source`] (the filter is not asked again), with `known` the
    /// out-index hash of `k` when the caller has it ([`ConnTable::out_hash`]).
    #[inline]
    pub(crate) fn lookup_out_past_filter(&self, k: &OutKey, known: Option<u64>) -> Option<ConnId> {
        // An IPv4 key straight to its own lookup, a small function: the general one's
        // frame, sized for IPv6 keys and their hashing, costs more than its probe.
        if let (IpAddr::V4(sa), IpAddr::V4(da)) = (k.saddr, k.daddr) {
            return self.lookup_out_v4(k, sa.to_bits(), da.to_bits(), known);
        }
        self.lookup_out_indexed(k, Ad::of(k.saddr), known)
    }

    /// [`ConnTable::lookup_out`] past its source filter (`s` is `k.saddr`; `known` as for
    /// [`ConnTable::lookup_out_past_filter`]): out of line, so that the filter's miss, the
    /// common case for a client's packet, stays a few instructions where it is inlined.
    #[inline(never)]
    fn lookup_out_indexed(&self, k: &OutKey, s: Ad, known: Option<u64>) -> Option<ConnId> {
        if let (Ad::V4(sa), IpAddr::V4(da)) = (s, k.daddr) {
            return self.lookup_out_v4(k, sa, da.to_bits(), known);
        }
        let d = Ad::of(k.daddr);
        let hash_key = || {
            hash_tuple(
                &self.store.sip,
                k.protocol,
                KIND_OUT,
                s,
                k.sport,
                d,
                k.dport,
            )
        };
        let h = known.unwrap_or_else(hash_key);
        debug_assert_eq!(h, hash_key());
        self.out_idx
            .find(h, |x| self.store.out_eq(x, k, s, d))
            .map(ConnId)
    }

    /// [`ConnTable::lookup_out_indexed`] for a key whose two addresses are IPv4 (source `s`,
    /// destination `d`, as integers): the same hash and match, an IPv4 entry's reply source
    /// read straight from the entry. Out of line (see `lookup_out_past_filter`).
    #[inline(never)]
    fn lookup_out_v4(&self, k: &OutKey, s: u32, d: u32, known: Option<u64>) -> Option<ConnId> {
        let hash_key = || {
            hash_v4(
                &self.store.sip,
                k.protocol,
                KIND_OUT,
                s,
                k.sport,
                d,
                k.dport,
            )
        };
        let h = known.unwrap_or_else(hash_key);
        debug_assert_eq!(h, hash_key());
        self.out_idx
            .find(h, |x| {
                let e = self.store.e(x);
                if e.cport != k.dport || e.protocol() != k.protocol {
                    return false;
                }
                if e.bits & B_WIDE != 0 {
                    return self.store.out_eq(x, k, Ad::V4(s), Ad::V4(d));
                }
                let (es, esp) = e.reply_source_v4();
                esp == k.sport && es == s && e.caddr == d
            })
            .map(ConnId)
    }

    // ---- reading -------------------------------------------------------------------------

    /// Whether `id` names a live entry.
    pub fn contains(&self, id: ConnId) -> bool {
        self.store
            .slab
            .get(id.0 as usize)
            .is_some_and(Entry::occupied)
    }

    fn decode(&self, slot: u32) -> Conn {
        let e = *self.store.e(slot);
        let [caddr, vaddr, daddr] = self.store.ip_addrs(slot);
        let tpl = e.is_template();
        let fwmark = if e.bits & B_FWMARK != 0 {
            self.store.fwmarks.get(&slot).copied().unwrap_or(0)
        } else {
            0
        };
        Conn {
            id: ConnId(slot),
            protocol: e.protocol(),
            caddr,
            cport: e.cport,
            vaddr,
            vport: e.vport,
            daddr,
            dport: e.dport,
            flags: e.cflags(),
            state: e.state(),
            fwmark,
            dest: e.dest(),
            control: if tpl || e.link == NIL {
                None
            } else {
                Some(ConnId(e.link))
            },
            n_control: if tpl { e.link } else { 0 },
            in_pkts: if tpl { 0 } else { e.aux },
            expires: self.instant_of_tick(self.full_tick(e.expires)),
            template_timeout: tpl.then(|| Duration::from_millis(e.aux as u64)),
        }
    }

    /// A copy of the entry.
    pub fn get(&self, id: ConnId) -> Option<Conn> {
        self.contains(id).then(|| self.decode(id.0))
    }

    /// A live entry's virtual address and port (the source of a NAT reply after the rewrite).
    #[inline]
    pub(crate) fn virtual_addr(&self, id: ConnId) -> Option<(IpAddr, u16)> {
        let e = self.live(id)?;
        let vaddr = if e.bits & B_WIDE == 0 {
            IpAddr::V4(e.vaddr.into())
        } else {
            self.store.wide[e.caddr as usize][1]
        };
        Some((vaddr, e.vport))
    }

    /// The raw state.
    pub fn state(&self, id: ConnId) -> Option<u8> {
        self.contains(id).then(|| self.store.e(id.0).state())
    }

    /// The flags.
    pub fn flags(&self, id: ConnId) -> Option<ConnFlags> {
        self.contains(id).then(|| self.store.e(id.0).cflags())
    }

    /// The bound destination.
    pub fn dest(&self, id: ConnId) -> Option<DestId> {
        if self.contains(id) {
            self.store.e(id.0).dest()
        } else {
            None
        }
    }

    /// A live entry's state, flags, destination and due time in one read: what
    /// [`ConnTable::state`], [`ConnTable::flags`], [`ConnTable::dest`] and
    /// [`ConnTable::expires`] return, with one check of the slot.
    ///
    /// ```
    /// use lvs_core::conn::{ConnFlags, ConnTable, ConnTableConfig, HashKey, NewConn};
    /// use lvs_core::{Duration, Instant, Protocol};
    ///
    /// let mut t = ConnTable::new(ConnTableConfig::new(16, HashKey::from_u128(1)));
    /// let id = t
    ///     .insert(Instant::ZERO, NewConn {
    ///         protocol: Protocol::Tcp,
    ///         caddr: "192.0.2.1".parse().unwrap(),
    ///         cport: 40000,
    ///         vaddr: "192.0.2.100".parse().unwrap(),
    ///         vport: 80,
    ///         daddr: "10.0.0.1".parse().unwrap(),
    ///         dport: 80,
    ///         flags: ConnFlags::empty(),
    ///         fwmark: 0,
    ///         dest: None,
    ///         control: None,
    ///         timeout: Duration::from_secs(60),
    ///     })
    ///     .unwrap()
    ///     .id;
    /// let s = t.status(id).unwrap();
    /// assert_eq!(Some(s.state), t.state(id));
    /// assert_eq!(Some(s.flags), t.flags(id));
    /// assert_eq!(s.dest, t.dest(id));
    /// assert_eq!(Some(s.expires), t.expires(id));
    /// ```
    #[inline]
    pub fn status(&self, id: ConnId) -> Option<ConnStatus> {
        let e = self.live(id)?;
        Some(ConnStatus {
            state: e.state(),
            flags: e.cflags(),
            dest: e.dest(),
            expires: self.instant_of_tick(self.full_tick(e.expires)),
        })
    }

    /// When the entry becomes due.
    pub fn expires(&self, id: ConnId) -> Option<Instant> {
        self.contains(id)
            .then(|| self.instant_of_tick(self.full_tick(self.store.e(id.0).expires)))
    }

    /// When an entry re-armed at `now` with `timeout` becomes due, as this table arms it: the
    /// first tick boundary at or after `now + timeout`, the timeout clamped to 2^30 ticks.
    /// [`ConnTable::expires`] reads such an instant back, so comparing the two tells whether
    /// a re-arm would move an entry earlier.
    pub fn due(&self, now: Instant, timeout: Duration) -> Instant {
        // The re-arms' memos answer for a deadline they cover (read only).
        let at = (now + timeout.min(self.max_timeout)).as_nanos();
        let (lo, q) = self.due_ticks[due_slot(timeout)];
        let t = if at == self.due_memo.0 {
            self.due_memo.1
        } else if at > lo && at - lo <= self.tick_ns {
            q
        } else {
            self.ticks_ceil(at)
        };
        self.instant_of_tick(t)
    }

    /// Every live entry, in slot order (O(capacity); for listings and tests).
    pub fn iter(&self) -> impl Iterator<Item = Conn> + '_ {
        (0..self.store.slab.len() as u32)
            .filter(|&s| self.store.e(s).occupied())
            .map(|s| self.decode(s))
    }

    // ---- per-packet updates --------------------------------------------------------------

    /// Counts one input packet (`in_pkts`, used by sync thresholds and drop_entry) and returns
    /// the new count (wrapping, like the kernel's `atomic_t`). Templates count nothing.
    pub fn inc_in_pkts(&mut self, id: ConnId) -> u32 {
        if !self.contains(id) {
            return 0;
        }
        let e = &mut self.store.slab[id.0 as usize];
        if e.is_template() {
            return 0;
        }
        e.aux = e.aux.wrapping_add(1);
        e.aux
    }

    /// [`ConnTable::inc_in_pkts`] then [`ConnTable::target`], in one look at the entry: the
    /// new `in_pkts` (0 for a template, which counts nothing) and where the packet goes.
    /// `None` for a dead id.
    #[inline(always)]
    pub(crate) fn in_packet(&mut self, id: ConnId) -> Option<(u32, IpAddr, u16, FwdMethod)> {
        let e = self
            .store
            .slab
            .get_mut(id.0 as usize)
            .filter(|e| e.occupied())?;
        let pkts = if e.is_template() {
            0
        } else {
            e.aux = e.aux.wrapping_add(1);
            e.aux
        };
        let daddr = if e.bits & B_WIDE == 0 {
            IpAddr::V4(e.daddr.into())
        } else {
            self.store.wide[e.caddr as usize][2]
        };
        Some((pkts, daddr, e.dport, e.cflags().fwd_method()))
    }

    /// Re-arms the entry's expiry to `now + timeout` for its current state (templates: their
    /// own timeout): what `ip_vs_conn_put` does after every packet, and what
    /// `ip_vs_sched_persist` does to the template a new connection links to.
    pub fn touch(&mut self, id: ConnId, now: Instant) {
        if !self.contains(id) {
            return;
        }
        let e = *self.store.e(id.0);
        let timeout = if e.is_template() {
            Duration::from_millis(e.aux as u64)
        } else {
            self.timeouts.for_state(e.protocol(), e.state())
        };
        self.rearm(id.0, now, timeout);
    }

    /// Re-arms the entry to exactly `now + timeout` (sync updates carry their own timeout). For
    /// a template this also becomes its timeout.
    pub fn set_timeout(&mut self, id: ConnId, now: Instant, timeout: Duration) {
        if !self.contains(id) {
            return;
        }
        if self.store.e(id.0).is_template() {
            self.store.slab[id.0 as usize].aux = duration_ms(timeout);
        }
        self.set_due(id.0, now, timeout);
    }

    /// Marks the controlling template ASSURED (`ip_vs_control_assure_ct`); returns it if it
    /// changed.
    fn assure_control(&mut self, slot: u32) -> Option<ConnId> {
        let e = *self.store.e(slot);
        if e.is_template() || e.link == NIL {
            return None;
        }
        let t = &mut self.store.slab[e.link as usize];
        if t.occupied() && t.is_template() && t.state() == TemplateState::None as u8 {
            t.set_state(TemplateState::Assured as u8);
            return Some(ConnId(e.link));
        }
        None
    }

    /// One TCP segment on a TCP connection (`set_tcp_state` then `ip_vs_conn_put`): `dir` is
    /// [`Direction::Input`] or [`Direction::Output`]; `tcp_flags` is the TCP header's flags
    /// byte; `table` says whether secure_tcp is engaged. Updates NOOUTPUT, the state and the
    /// INACTIVE flag, marks the template ASSURED on a change to ESTABLISHED, and re-arms the
    /// expiry with the new state's timeout. `None` for a dead id or a non-TCP entry.
    #[inline]
    pub fn tcp_packet(
        &mut self,
        id: ConnId,
        now: Instant,
        dir: Direction,
        tcp_flags: u8,
        table: TcpTable,
    ) -> Option<TcpUpdate> {
        // Only the fields the segment needs: a whole-entry copy reads the wheel links too,
        // which may sit on the entry's second cache line.
        let e = self.live(id)?;
        let mut flags = e.cflags();
        if e.protocol() != Protocol::Tcp || flags.contains(ConnFlags::TEMPLATE) {
            return None;
        }
        let (raw, dest) = (e.state(), e.dest());
        // `tcp_transition`, in one load.
        let nooutput = flags.contains(ConnFlags::NOOUTPUT);
        let new = tcp_next_state(table, raw, nooutput, dir, tcp_flags);
        // The state the transition read: a raw state beyond the TCP states is CLOSE.
        let old_index = if raw <= TcpState::SynAck as u8 {
            raw
        } else {
            TcpState::Close as u8
        };
        let old = TcpState::from_index(old_index).unwrap_or(TcpState::Close);
        // An OUTPUT packet on a NOOUTPUT connection clears the flag.
        if nooutput && dir == Direction::Output {
            flags.set(ConnFlags::NOOUTPUT, false);
        }
        let mut delta = None;
        let mut assured = None;
        if new as u8 != old_index {
            if let Some(d) = dest {
                let inactive = flags.contains(ConnFlags::INACTIVE);
                let active_now = self.active.is_active(new);
                if !inactive && !active_now {
                    flags.set(ConnFlags::INACTIVE, true);
                    delta = Some((d, DestDelta::activity(false)));
                } else if inactive && active_now {
                    flags.set(ConnFlags::INACTIVE, false);
                    delta = Some((d, DestDelta::activity(true)));
                }
            }
            if new == TcpState::Established {
                assured = self.assure_control(id.0);
            }
        }
        {
            let s = &mut self.store.slab[id.0 as usize];
            s.flags = flags.bits();
            s.set_state(new as u8);
        }
        let timeout = self.timeouts.tcp(new);
        self.rearm(id.0, now, timeout);
        Some(TcpUpdate {
            old,
            new,
            delta,
            assured,
        })
    }

    /// One UDP datagram on a UDP connection (`udp_state_transition` then `ip_vs_conn_put`):
    /// an OUTPUT datagram marks the template ASSURED; the expiry is re-armed with the UDP
    /// timeout. UDP connections never change activity. Returns the template if it was
    /// marked ASSURED. Does nothing to entries that are not UDP connections.
    pub fn udp_packet(&mut self, id: ConnId, now: Instant, dir: Direction) -> Option<ConnId> {
        if !self.contains(id) {
            return None;
        }
        let e = self.store.e(id.0);
        if e.is_template() || e.protocol() != Protocol::Udp {
            return None;
        }
        let assured = if dir == Direction::Output {
            self.assure_control(id.0)
        } else {
            None
        };
        let timeout = self.timeouts.udp();
        self.rearm(id.0, now, timeout);
        assured
    }

    // ---- connection synchronisation (spec §4) -------------------------------------------

    /// Starts (`true`) or stops recording the templates whose expiry is deferred because they
    /// still control connections (by [`ConnTable::handle_timeout`] or
    /// [`ConnTable::expire_now`]). A sync master sends such a template again (spec §4.3);
    /// collect them with [`ConnTable::take_deferred`] after each of those calls.
    pub fn set_deferred_log(&mut self, on: bool) {
        self.deferred_log = on.then(Vec::new);
    }

    /// Moves the templates deferred since the last call (see
    /// [`ConnTable::set_deferred_log`]) to `out`, oldest first.
    pub fn take_deferred(&mut self, out: &mut Vec<ConnId>) {
        if let Some(log) = self.deferred_log.as_mut() {
            out.append(log);
        }
    }

    /// Applies a sync record to an existing entry (the end of `ip_vs_proc_conn`): the
    /// INACTIVE, IN_SEQ and OUT_SEQ bits come from `flags` (the other bits stay), the raw
    /// state becomes `state`, a connection's `in_pkts` becomes `in_pkts`, and with
    /// `Some(timeout)` the entry is re-armed to exactly `now + timeout` (which also becomes a
    /// template's timeout; `None` leaves the expiry, for an entry just inserted with it).
    ///
    /// Destination counters are not touched: when INACTIVE flips on a bound connection the
    /// caller moves one count with [`DestDelta::activity`]. Returns `false` (and changes
    /// nothing) for a dead id or a state above [`MAX_STATE`].
    pub fn sync_update(
        &mut self,
        id: ConnId,
        now: Instant,
        flags: ConnFlags,
        state: u16,
        in_pkts: u32,
        timeout: Option<Duration>,
    ) -> bool {
        if !self.contains(id) || state > u16::from(MAX_STATE) {
            return false;
        }
        const UPD: u16 = 0x0700; // IP_VS_CONN_F_BACKUP_UPD_MASK
        {
            let e = &mut self.store.slab[id.0 as usize];
            e.flags = (e.flags & !UPD) | (flags.bits() & UPD);
            e.set_state(state as u8);
            if !e.is_template() {
                e.aux = in_pkts;
            }
        }
        if let Some(t) = timeout {
            self.set_timeout(id, now, t);
        }
        true
    }

    /// Binds an unbound entry to `dest` (`ip_vs_try_bind_dest` on a sync-created entry) with
    /// `flags`, which replace the entry's flags except HASHED, TEMPLATE and NO_CPORT (those
    /// stay; ONE_PACKET is never set on a stored entry). A change between NAT and another
    /// forwarding method moves the entry in the reply index. Returns the counter change to
    /// apply with [`crate::conn::accounting::apply_bind`]; `None` (nothing changed) for a dead
    /// id or an entry that already has a destination.
    pub fn bind_dest(
        &mut self,
        id: ConnId,
        dest: DestId,
        flags: ConnFlags,
    ) -> Option<(DestId, DestDelta)> {
        if !self.contains(id) || self.store.e(id.0).dest().is_some() {
            return None;
        }
        const KEEP: u16 = 0x0040 | 0x1000 | 0x0800; // HASHED, TEMPLATE, NO_CPORT
        let e = *self.store.e(id.0);
        let new_flags = (e.flags & KEEP) | (flags.bits() & !KEEP & !ConnFlags::ONE_PACKET.bits());
        let was_masq = e.cflags().fwd_method() == FwdMethod::Masq;
        let is_masq = ConnFlags::from_bits(new_flags).fwd_method() == FwdMethod::Masq;
        let reindex = was_masq != is_masq && e.bits & B_OUT_IDX != 0;
        if reindex {
            let h = self.store.out_hash(id.0);
            let store = &self.store;
            if self.out_idx.remove(h, id.0, |s| store.out_hash(s)) {
                let b = self.out_filter_slot(id.0);
                self.out_filter[b] = self.out_filter[b].saturating_sub(1);
            }
        }
        {
            let s = &mut self.store.slab[id.0 as usize];
            s.flags = new_flags;
            s.dest = dest.0;
        }
        if reindex {
            let h = self.store.out_hash(id.0);
            let store = &self.store;
            self.out_idx.insert(h, id.0, |s| store.out_hash(s));
            let b = self.out_filter_slot(id.0);
            self.out_filter[b] += 1;
        }
        Some((dest, DestDelta::bind(ConnFlags::from_bits(new_flags))))
    }
}

fn duration_ms(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A xorshift64 generator: the tests' deterministic source of arbitrary values.
    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// A plain IPv4 connection put in by `insert_conn_v4`, with the hash of the lookup that
    /// missed it, leaves the table as `insert_lean` with the same connection does: the same
    /// slots, entries, deadlines, lookups from both sides, evictions, expiries and counters,
    /// over TCP, UDP and SCTP, NAT, tunnel and direct routing, keys that repeat (found, so not
    /// inserted), a full table and the timer wheel.
    #[test]
    fn insert_conn_v4_matches_insert_lean() {
        let mut rnd = xorshift(0x51f1_5e3d_7a2b_c4e9);
        let cfg = ConnTableConfig::new(48, HashKey::from_u128(0x0123_4567_89ab_cdef));
        let (mut a, mut b) = (ConnTable::new(cfg.clone()), ConnTable::new(cfg));
        let mut now = 0u64;
        let mut inserted = 0;
        for _ in 0..20_000 {
            now += rnd() % 400_000_000;
            let t = Instant::from_nanos(now);
            let r = rnd();
            let protocol = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][(r % 3) as usize];
            let method =
                [FwdMethod::Masq, FwdMethod::Tunnel, FwdMethod::DirectRoute][(r >> 2) as usize % 3];
            let mut flags = ConnFlags::from_bits(method as u16);
            if (r >> 4) & 1 == 1 {
                flags = flags.with(ConnFlags::INACTIVE);
            }
            // Few clients, ports, services and servers: keys and reply keys repeat.
            let c = 0x0a00_0000 | ((r >> 8) as u32 % 6);
            let cport = 1 + (r >> 12) as u16 % 5;
            let v = 0xc000_0200 | ((r >> 16) as u32 % 2);
            let vport = [80, 443][(r >> 20) as usize % 2];
            let d = 0x0a01_0000 | ((r >> 24) as u32 % 3);
            let dport = [80, 8080][(r >> 28) as usize % 2];
            let dest = DestId((r >> 32) as u32 % 3);
            let timeout =
                Duration::from_millis([500, 3_000, 60_000, 120_000][(r >> 36) as usize % 4]);
            let (found, hash) = a.lookup_in_v4(protocol, c, cport, v, vport, None);
            let key = InKey {
                protocol,
                caddr: IpAddr::V4(c.into()),
                cport,
                vaddr: IpAddr::V4(v.into()),
                vport,
            };
            assert_eq!(b.lookup_in(&key), found);
            if found.is_none() {
                let (mut ea, mut eb) = (None, None);
                let ra = a.insert_conn_v4(
                    t,
                    &NewConnV4 {
                        protocol,
                        caddr: c,
                        cport,
                        vaddr: v,
                        vport,
                        daddr: d,
                        dport,
                        flags,
                        dest,
                        timeout,
                    },
                    hash.unwrap(),
                    None,
                    &mut ea,
                );
                let new = NewConn {
                    protocol,
                    caddr: IpAddr::V4(c.into()),
                    cport,
                    vaddr: IpAddr::V4(v.into()),
                    vport,
                    daddr: IpAddr::V4(d.into()),
                    dport,
                    flags,
                    fwmark: 0,
                    dest: Some(dest),
                    control: None,
                    timeout,
                };
                let rb = b.insert_lean(t, &new, None, None, &mut eb);
                assert_eq!(ra, rb.map(|(id, _)| id));
                assert_eq!(ea, eb);
                if let Ok(id) = ra {
                    inserted += 1;
                    assert_eq!(a.get(id), b.get(id));
                    // Another entry may have the same reply key (a client port to two
                    // virtual services on one real server): then either is an answer.
                    let out = a.get(id).unwrap().out_key();
                    let found = a.lookup_out(&out);
                    assert_eq!(found, b.lookup_out(&out));
                    assert_eq!(a.get(found.unwrap()).unwrap().out_key(), out);
                }
            }
            if (r >> 40) & 3 == 0 {
                let (mut xa, mut xb) = (Vec::new(), Vec::new());
                let limit = 1 + (r >> 42) as usize % 8;
                let more_a = a.handle_timeout(t, limit, |e| xa.push(e));
                let more_b = b.handle_timeout(t, limit, |e| xb.push(e));
                assert_eq!((more_a, &xa), (more_b, &xb));
            }
            assert_eq!(a.stats(), b.stats());
            assert_eq!(a.poll_timeout(), b.poll_timeout());
        }
        assert!(inserted > 1_000, "{inserted}");
        assert!(
            a.stats().evicted > 0 && a.stats().expired > 0,
            "{:?}",
            a.stats()
        );
        let (ea, eb): (Vec<Conn>, Vec<Conn>) = (a.iter().collect(), b.iter().collect());
        assert_eq!(ea, eb);
        for e in &ea {
            let id = a.lookup_out(&e.out_key());
            assert_eq!(id, b.lookup_out(&e.out_key()));
            assert!(id.is_some());
        }
    }

    /// The tick arithmetic by multiplication gives what division gives, for ticks of every
    /// kind (1 ns, powers of two, the default 125 ms, odd and huge ones) and times up to the
    /// largest.
    #[test]
    fn ticks_by_multiplication_match_division() {
        let mut rnd = xorshift(0x9e37_79b9_7f4a_7c15);
        let ticks = [
            1,
            2,
            3,
            7,
            1 << 20,
            125_000_000,
            999_999_937,
            u64::MAX / 3,
            u64::MAX,
        ];
        for tick in ticks {
            let mut c = ConnTableConfig::new(8, HashKey::from_u128(7));
            c.tick = Duration::from_nanos(tick);
            let t = ConnTable::new(c);
            let edges = [
                0,
                1,
                tick - 1,
                tick,
                tick.wrapping_add(1),
                u64::MAX - 1,
                u64::MAX,
            ];
            for ns in edges
                .into_iter()
                .chain((0..2000).map(|_| rnd() >> (rnd() % 64)))
            {
                assert_eq!(t.ticks_ceil(ns), ns.div_ceil(tick), "{ns} / {tick}");
                assert_eq!(
                    t.tick_of(Instant::from_nanos(ns)),
                    ns / tick,
                    "{ns} / {tick}"
                );
            }
        }
    }

    /// The deadline memos (the last deadline, the tick interval per timeout slot) give the
    /// tick a division gives, for re-arms and for `due`, over instants that advance by
    /// less than a tick, jump, and repeat, with timeouts that share slots.
    #[test]
    fn due_tick_memos_match_division() {
        let mut rnd = xorshift(0x2545_f491_4f6c_dd1d);
        for tick in [1, 7, 125_000_000, 999_999_937] {
            let mut c = ConnTableConfig::new(8, HashKey::from_u128(7));
            c.tick = Duration::from_nanos(tick);
            let mut t = ConnTable::new(c);
            let timeouts = [0, 1, 3_000, 60_000, 120_000, 900_000, 30_000, 4_294_967]
                .map(Duration::from_millis);
            let mut now = 0u64;
            for _ in 0..20_000 {
                now += match rnd() % 8 {
                    0 => rnd() % (1 << 40),
                    1 => 0,
                    _ => rnd() % (tick / 3 + 1),
                };
                let timeout = timeouts[(rnd() % timeouts.len() as u64) as usize];
                let (n, want) = (
                    Instant::from_nanos(now),
                    t.due_tick(Instant::from_nanos(now), timeout),
                );
                assert_eq!(
                    t.due(n, timeout),
                    t.instant_of_tick(want),
                    "{now} + {timeout:?}"
                );
                assert_eq!(t.due_tick_memo(n, timeout), want, "{now} + {timeout:?}");
            }
        }
        // A deadline on the boundary that starts an interval is the tick before it: 60 s
        // and 30 s share a slot.
        let mut t = ConnTable::new(ConnTableConfig::new(8, HashKey::from_u128(7)));
        let tick = t.tick_ns;
        assert_eq!(t.due_tick_memo(Instant::ZERO, Duration::from_secs(60)), 480);
        let n = Instant::from_nanos(30_000_000_000 - tick);
        assert_eq!(t.due(n, Duration::from_secs(30)), t.instant_of_tick(479));
        assert_eq!(t.due_tick_memo(n, Duration::from_secs(30)), 479);
    }

    /// The reply-source filter never hides an entry and returns to all zeros when the table
    /// empties, through inserts, `fill_cport` rehashes, unhashing and expiry.
    #[test]
    fn out_filter_tracks_the_out_index() {
        let mut t = ConnTable::new(ConnTableConfig::new(300, HashKey::from_u128(7)));
        let now = Instant::from_secs(1);
        let mut ids = Vec::new();
        for i in 0..300u32 {
            let method =
                [FwdMethod::Masq, FwdMethod::DirectRoute, FwdMethod::Tunnel][i as usize % 3];
            let v6 = i % 7 == 0;
            let addr = |x: u32| -> IpAddr {
                if v6 {
                    IpAddr::V6(((0x2001_0db8u128 << 96) | x as u128).into())
                } else {
                    IpAddr::V4(x.into())
                }
            };
            let no_cport = i % 11 == 0;
            let mut flags = ConnFlags::for_method(method);
            if no_cport {
                flags = flags.with(ConnFlags::NO_CPORT);
            }
            let ins = t
                .insert(
                    now,
                    NewConn {
                        protocol: if i % 2 == 0 {
                            Protocol::Tcp
                        } else {
                            Protocol::Udp
                        },
                        caddr: addr(0x0a00_0000 + i),
                        cport: if no_cport { 0 } else { 1000 + i as u16 },
                        vaddr: addr(0xc000_0200 + i % 5),
                        vport: 80 + (i % 3) as u16,
                        daddr: addr(0x0a01_0000 + i % 13),
                        dport: 8080,
                        flags,
                        fwmark: 0,
                        dest: None,
                        control: None,
                        timeout: Duration::from_secs(1 + (i % 4) as u64),
                    },
                )
                .unwrap();
            ids.push(ins.id);
        }
        let check = |t: &ConnTable| {
            for c in t.iter() {
                if c.flags.contains(ConnFlags::HASHED) {
                    assert!(t.lookup_out(&c.out_key()).is_some(), "{c:?}");
                }
            }
            let indexed = t.out_idx.len() as u32;
            assert_eq!(t.out_filter.iter().sum::<u32>(), indexed);
        };
        check(&t);
        for (k, &id) in ids.iter().enumerate() {
            if k % 11 == 0 {
                t.fill_cport(id, 5000 + k as u16).unwrap();
            } else if k % 17 == 0 {
                t.unhash(id);
            }
        }
        check(&t);
        t.handle_timeout(now + Duration::from_millis(2500), usize::MAX, |_| {});
        check(&t);
        t.handle_timeout(now + Duration::from_secs(10), usize::MAX, |_| {});
        assert!(t.is_empty());
        assert!(t.out_filter.iter().all(|&n| n == 0));
    }
}
