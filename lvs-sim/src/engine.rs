//! The discrete-event engine: one replication of a [`Model`], every connection through
//! [`Director::handle_flow`].
//!
//! # A connection's life
//! 1. The client's SYN goes to the director. `Forward` names the real server; `NoDestination`
//!    / `NotOurs` fail the connection as "no destination", `Drop` as "dropped by the director".
//! 2. A dead real server never answers: the connection fails as "sent to a dead server" (the
//!    director's entry stays in SYN_RECV until it expires, as in the kernel). A server whose
//!    backlog is full answers RST: "refused by backlog". Otherwise it answers SYN-ACK, the
//!    client ACKs with its first request (ESTABLISHED).
//! 3. Each request waits for the server (FIFO over its workers, or processor sharing); the
//!    response goes back through the director when the forwarding method is NAT (with direct
//!    routing and tunnelling the director never sees replies, as in IPVS). After a think time
//!    the next request is an ACK from the client.
//! 4. After the last response: client FIN, server FIN (NAT), client ACK; the director's entry
//!    then goes through its TIME_WAIT / FIN timeouts by [`Director::poll_timeout`] and
//!    [`Director::handle_timeout`]. Active and inactive counts, and so lc, wlc, sed, nq, lblc
//!    and ovf, are the director's own.
//! 5. A server that dies breaks the connections it is serving ("broken by server failure");
//!    the client then aborts with RST. After a director failover without sync the backup
//!    director knows none of the connections: the next packet of each gets `NotOurs` and the
//!    connection breaks ("broken by director failover").
//! 6. With connection sync (`[failover] sync = true`) the active director runs as sync master
//!    ([`Director::set_sync_master`], the kernel's defaults: `sync_threshold` 3 50, version 1)
//!    and a backup director with the same rules ([`Director::set_sync_backup`]) applies every
//!    datagram the master emits, with zero network delay: the master's queue is drained by
//!    [`Director::poll_sync`] after each packet and at its timer deadlines (a partly filled
//!    datagram leaves when it is 2 s old, as in the kernel). Health-check rule changes go to
//!    both. At the failover the master stops (it fails: a datagram it had not sent yet is
//!    lost) and the backup takes the traffic. A connection the backup holds continues on the
//!    same real server; one it does not hold (a TCP connection is synced at its third
//!    client packet once ESTABLISHED, spec 4.3) breaks at its next packet as without sync,
//!    and so does one the backup would send to another real server (the new server does not
//!    know it).
//! 7. A packet that cannot change the director's state is counted but not handed over: a NAT
//!    server's SYN-ACK (SYN_RECV stays SYN_RECV) and a DR or TUN client's last ACK (FIN_WAIT
//!    stays FIN_WAIT), each at the same instant as the connection's previous packet, as
//!    lvs-core's transition function says at run time; never with connection sync (see
//!    `Engine::changes_state`). Nor is a NAT server's last response (an ACK that leaves
//!    ESTABLISHED as it is), when the client's FIN that follows it at the same instant
//!    re-arms the entry's timer to an earlier tick anyway (see
//!    `Engine::last_response_subsumed`).
//!
//! Zero network delay: packets of one step share a timestamp; events at equal times run in
//! the order they were scheduled (`(time, seq)` ordering), so runs are deterministic.

use std::cell::Cell;
use std::collections::{BinaryHeap, VecDeque};

use crate::buckets;
use crate::queue::EventQueue;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lvs_core::conn::state::{tcp_transition, TcpTable, TcpTransition};
use lvs_core::conn::{ConnFlags, ConnId, Direction, FwdMethod, HashKey, OutKey, TcpState};
use lvs_core::director::{
    Director, DirectorConfig, FlowHint, FlowPacket, FlowVerdict, PacketDir, SyncBackupConfig,
    SyncMasterConfig,
};
use lvs_core::health::{
    Action, CheckKind, CheckSettings, HealthMonitor, Notification, ProbeId, ProbeOutcome,
    ServerSettings, ServiceHealthSettings, ServiceSpec,
};
use lvs_core::rules::{Command, DestConfig, Forward, RuleSet};
use lvs_core::time::{Duration, Instant};
use lvs_core::Protocol;
use rand_core::SeedableRng;
use rand_pcg::Pcg64Mcg;

use crate::model::{exp, unit, ArrivalModel, Model, WorkloadModel};
use crate::results::{FailReason, RunResult, Series, SrvAcc, SvcAcc};
use crate::scenario::{Discipline, Requests};

const SIM_HASH_KEY: u128 = 0x6c76_732d_7369_6d20_6361_7061_6369_7479;
const NONE: u16 = u16::MAX;

/// Nanoseconds from seconds: `s * 1e9` rounded half away from zero, 0 for a negative time,
/// at most 2^63 (an infinite or NaN time too).
#[inline]
pub fn ns(s: f64) -> u64 {
    const CAP: u64 = 1 << 63;
    if s <= 0.0 {
        return 0;
    }
    let x = s * 1e9;
    if x >= CAP as f64 || x.is_nan() {
        return CAP;
    }
    // `f64::round` without its library call: the truncation is exact below 2^63 (at and
    // above 2^52 every double is an integer), so `x - whole` is the exact fraction. In
    // `i64` (`x` is in (0, 2^63)) the conversions are single instructions, where `u64`'s
    // take several.
    let whole = x as i64;
    (whole + (x - whole as f64 >= 0.5) as i64) as u64
}

/// Seconds from nanoseconds: `t as f64 / 1e9`, through `i64` below 2^63 (the same value,
/// in one instruction where `u64`'s conversion takes several).
#[inline(always)]
fn secs(t: u64) -> f64 {
    let x = if t < 1 << 63 {
        t as i64 as f64
    } else {
        t as f64
    };
    x / 1e9
}

/// SplitMix64 finaliser: independent seeds for the random streams.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random stream of one component of one replication.
pub fn stream(seed: u64, replication: u32, component: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(mix(mix(seed ^ mix(replication as u64)) ^ component))
}

// A 32-bit tag: the payload is then one aligned 16-byte value, which the event loop copies
// in one move.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
enum Ev {
    Arrival(u16),
    Think(u32),
    FifoDone { srv: u16, conn: u32, inc: u32 },
    PsDone { srv: u16, epoch: u32 },
    Fail { srv: u16, random: bool },
    Repair { srv: u16, random: bool },
    Speed { srv: u16, factor: f32 },
    Health,
    Probe(u32),
    Failover,
    Sample,
}

#[derive(Clone, Copy, Debug)]
struct Conn {
    client: SocketAddr,
    dest: SocketAddr,
    arrival: u64,
    req_start: u64,
    inc: u32,
    left: u32,
    svc: u16,
    srv: u16,
    work: f64,
    nat: bool,
    live: bool,
    /// A FIFO server's worker is serving its request.
    serving: bool,
    /// The director's entry for the connection, as its SYN's verdict named it.
    id: Option<ConnId>,
    /// [`Engine::epoch`] when the current request's ACK (at `req_start`) found `id`, or 0
    /// (see [`Engine::last_response_subsumed`]).
    acked: u64,
}

/// A packet of a connection in one direction, kept with its hint: the connection's later
/// packets that way differ from it only by their TCP flags.
#[derive(Clone, Copy)]
struct Wire {
    pkt: FlowPacket,
    hint: FlowHint,
}

/// An arrival drawn ahead of its time (see [`Engine::draw_ahead`]).
#[derive(Clone, Copy)]
struct Drawn {
    client: SocketAddr,
    /// The hint of its SYN.
    hint: FlowHint,
    /// The time (ns) of the arrival after it; `None` when the arrival process ends.
    next: Option<u64>,
}

/// Up to this many services, each service's next arrival waits in a lane of the event queue
/// rather than in its heap (see [`crate::queue`]): the lane with the earliest arrival is found
/// by a scan of the lanes at each arrival.
const ARRIVAL_LANES: usize = 8;

/// Slots of [`Engine::server_of`]'s memo.
const SRV_MEMO: usize = 64;

/// Arrivals drawn ahead at a time: their port slots and table buckets are read together, so
/// that the cache misses of a large client population and connection table overlap.
const DRAW_AHEAD: usize = 16;

struct Srv {
    /// The model's queue discipline, workers, backlog limit and speed of the server (copies
    /// kept with its state, which every request's steps read anyway).
    discipline: Discipline,
    workers: u32,
    backlog: u32,
    speed: f64,
    up: bool,
    inc: u32,
    factor: f64,
    busy: u32,
    queue: VecDeque<u32>,
    ps: BinaryHeap<core::cmp::Reverse<(u64, u32)>>,
    ps_v: f64,
    ps_last: u64,
    ps_epoch: u32,
    last: u64,
}

impl Srv {
    fn in_system(&self, d: Discipline) -> usize {
        match d {
            Discipline::Fifo => self.busy as usize + self.queue.len(),
            Discipline::Ps => self.ps.len(),
        }
    }
}

struct ArrState {
    // On/off: the current on period's end; schedule: the segment index.
    on_end: f64,
    seg: usize,
    trace_i: usize,
    /// Each client's next ephemeral port, less 1024 (zero-filled at start: a large
    /// population costs no work until it is used).
    next_port: Vec<u16>,
    /// Arrivals are drawn ahead ([`Engine::draw_ahead`]): only when nothing else draws from
    /// the service's arrival stream between two arrivals (a fixed number of requests per
    /// connection; the geometric count draws from it at each arrival).
    batch: bool,
    /// Drawn ahead: the pending arrival at `ahead_at`, those after it next. The arrival
    /// reads its entry in place (a hint is large to copy).
    ahead: Vec<Drawn>,
    /// The index in `ahead` of the pending arrival (`ahead.len()` when none is drawn).
    ahead_at: usize,
    /// The time (ns) of the first arrival not drawn ahead yet; `None` once the process ended.
    ahead_from: Option<u64>,
}

/// Progress reporting: called with the simulated fraction done, at most every 2^16 events.
pub type Progress<'a> = &'a (dyn Fn(f64) + Sync);

/// One replication.
pub struct Engine<'m> {
    m: &'m Model,
    rep: u32,
    now: u64,
    end: u64,
    warm: u64,
    queue: EventQueue<Ev>,
    director: Director,
    dcfg: DirectorConfig,
    /// With connection sync: the backup director, fed by the master's datagrams until the
    /// failover.
    backup: Option<Director>,
    health: Option<HealthMonitor>,
    health_wake: u64,
    /// The director has no timer due before this time (ns): [`Engine::run_director_timers`]
    /// asks it only from then on. 0 when unknown.
    timer_floor: u64,
    /// The shortest delay (ns) of a timer that a packet can arm (see
    /// [`Engine::flow_timer_min`]); 0 when the floor is not kept (sync).
    flow_timer_min: u64,
    scratch: Vec<u32>,
    health_addrs: Vec<Vec<SocketAddr>>,
    probes: Vec<ProbeId>,
    probe_free: Vec<u32>,
    conns: Vec<Conn>,
    /// Each connection slot's client packet and its hint (apart from `conns`, which they
    /// would make several times larger to copy).
    client_wire: Vec<Wire>,
    /// NAT connections' server packets and their hints, by slot (only a NAT connection's
    /// slot is written).
    server_wire: Vec<Wire>,
    free: Vec<u32>,
    srv: Vec<Srv>,
    srv_index: hashbrown::HashMap<SocketAddr, u16>,
    /// Addresses and what [`Engine::server_by_addr`] answered for them, by a hash of the
    /// address (see [`Engine::server_of`]): a SYN's real server without the hash map's
    /// lookup.
    srv_memo: [(SocketAddr, u16); SRV_MEMO],
    arr: Vec<ArrState>,
    rng_arr: Vec<Pcg64Mcg>,
    rng_work: Vec<Pcg64Mcg>,
    rng_fault: Vec<Pcg64Mcg>,
    svc_acc: Vec<SvcAcc>,
    srv_acc: Vec<SrvAcc>,
    series: Series,
    sample_every: u64,
    log: Vec<(f64, String)>,
    events: u64,
    packets: u64,
    conns_total: u64,
    in_flight: u64,
    peak_in_flight: u64,
    /// One service's clients, none of whose ports was used a second time (see
    /// [`Engine::clients_unique`]).
    unique: bool,
    /// lvs-core's TCP transitions of the packets the engine may leave out, one memo per
    /// kind of packet (see [`Engine::changes_state`], [`Engine::last_response_subsumed`]).
    memo: Memos,
    /// Whether packets that change nothing the simulation reads are left out (always, but
    /// in the test that checks they change nothing).
    skip_noops: bool,
    /// `skip_noops`, without a sync master or backup (see [`Engine::director_changed`]).
    leave_out: bool,
    /// The director's TCP transition table (its sysctls do not change during a run).
    tcp_table: TcpTable,
    /// Counts the changes to the director other than packets and timers (see
    /// [`Engine::director_changed`]); starts at 1.
    epoch: u64,
    /// The director's connection table's tick (ns) and its longest timeout, as its
    /// [`ConnTable::due`](lvs_core::conn::ConnTable::due) arms them (see [`TableTimes`]).
    times: TableTimes,
}

/// How the director's connection table arms a timer ([`ConnTable::due`](lvs_core::conn::ConnTable::due)):
/// the first tick boundary at or after `now + timeout`, the timeout clamped to `max`
/// ([`ConnTable::tick`](lvs_core::conn::ConnTable::tick),
/// [`ConnTable::max_timeout`](lvs_core::conn::ConnTable::max_timeout)). [`TableTimes::fin_first`] compares two such
/// deadlines by additions on this, without computing either (see
/// [`Engine::last_response_subsumed`]).
#[derive(Clone, Copy, Debug, Default)]
struct TableTimes {
    /// The tick (ns); 0 while unknown.
    tick: u64,
    /// The longest timeout (ns) that is not clamped.
    max: u64,
}

impl TableTimes {
    /// The tick and clamp of `table`.
    fn of(table: &lvs_core::conn::ConnTable) -> TableTimes {
        TableTimes {
            tick: table.tick().as_nanos(),
            max: table.max_timeout().as_nanos(),
        }
    }

    /// Whether `due(now, fin) < due(now, other)` and `due(now, fin) < expires`, `due` being
    /// the table's deadline of a timer armed at `now` (see [`TableTimes`]); `None` when the
    /// additions leave `u64` or the first comparison needs the deadlines themselves (the
    /// timeouts less than a tick apart). `expires` is a deadline as the table reads it back
    /// (a tick boundary).
    ///
    /// With `x = now + fin` and `y = now + other` (the timeouts clamped), the deadlines are
    /// the first tick boundaries at or after `x` and `y`: the first is earlier exactly when a
    /// boundary lies in `[x, y)`, which holds when `y - x` is at least a tick and fails when
    /// it is not positive; and it is earlier than the boundary `expires` exactly when
    /// `x + tick <= expires`.
    #[inline(always)]
    fn fin_first(self, now: u64, fin: Duration, other: Duration, expires: u64) -> Option<bool> {
        let (a, b) = (fin.as_nanos().min(self.max), other.as_nanos().min(self.max));
        if self.tick == 0 {
            return None;
        }
        let before_other = if b <= a {
            false
        } else if b - a >= self.tick {
            true
        } else {
            return None;
        };
        // No deadline saturates: both are below `now + max(a, b) + tick`.
        now.checked_add(a.max(b))?.checked_add(self.tick)?;
        Some(before_other && now + a + self.tick <= expires)
    }
}

/// The last TCP transition of one kind of segment (direction and flags) computed for one
/// (table, state, NOOUTPUT): a connection's packets of one kind mostly meet the same state.
struct TransitionMemo {
    /// The key, packed (see [`TransitionMemo::get`]); `u32::MAX` while empty.
    key: Cell<u32>,
    t: Cell<TcpTransition>,
}

impl Default for TransitionMemo {
    fn default() -> Self {
        TransitionMemo {
            key: Cell::new(u32::MAX),
            t: Cell::new(TcpTransition {
                state: TcpState::None,
                used: Direction::Input,
                clear_nooutput: false,
            }),
        }
    }
}

impl TransitionMemo {
    /// `tcp_transition(table, state, nooutput, dir, flags)`, from the memo when it holds that
    /// key (the transition is a function of its arguments alone); `dir` and `flags` are
    /// the same at every call on one memo.
    #[inline(always)]
    fn get(
        &self,
        table: TcpTable,
        state: TcpState,
        nooutput: bool,
        dir: Direction,
        flags: u8,
    ) -> TcpTransition {
        let key = (table == TcpTable::Secure) as u32 | (nooutput as u32) << 1 | (state as u32) << 2;
        if self.key.get() == key {
            return self.t.get();
        }
        let t = tcp_transition(table, state, nooutput, dir, flags);
        self.key.set(key);
        self.t.set(t);
        t
    }
}

/// The engine's [`TransitionMemo`]s, one per call site's kind of segment.
#[derive(Default)]
struct Memos {
    /// A NAT server's SYN-ACK.
    synack: TransitionMemo,
    /// A client's last ACK.
    last_ack: TransitionMemo,
    /// A NAT server's response (ACK).
    response: TransitionMemo,
    /// A client's FIN.
    fin: TransitionMemo,
}

/// The time (ns) of a Poisson arrival after one at `from` (seconds), with mean gap `mean`
/// (seconds); `None` when not finite.
#[inline(always)]
fn poisson_next(rng: &mut Pcg64Mcg, mean: f64, from: f64) -> Option<u64> {
    let t = from + exp(rng, mean);
    t.is_finite().then(|| ns(t))
}

/// A client drawn from a service's population: its address and port slot.
#[inline(always)]
fn population_client(w: &WorkloadModel, rng: &mut Pcg64Mcg) -> (IpAddr, usize) {
    let i = Engine::client_index(w, unit(rng));
    let ip = Ipv4Addr::from(w.clients.base.to_bits().wrapping_add(i as u32));
    (IpAddr::V4(ip), i)
}

/// The next ephemeral port of a client whose port slot is `p` (1024..=65535 in turn);
/// `unique` becomes false when a port is used again.
#[inline(always)]
fn take_port_of(p: &mut u16, unique: &mut bool) -> u16 {
    let port = *p + 1024;
    if port == u16::MAX {
        *p = 0;
        *unique = false;
    } else {
        *p += 1;
    }
    port
}

fn tcp(flags: u8, dir: PacketDir, src: SocketAddr, dst: SocketAddr) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        src,
        dst,
        fwmark: 0,
        tcp_flags: flags,
        len: 52,
        dir,
    }
}
const SYN: u8 = 0x02;

/// The hint of a client's SYN to `vip` ([`Director::flow_hint`]), from the addresses alone
/// when both are IPv4 ([`Director::flow_hint_v4`]: no packet to build).
#[inline(always)]
fn syn_hint(director: &Director, client: SocketAddr, vip: SocketAddr) -> FlowHint {
    match (client, vip) {
        (SocketAddr::V4(c), SocketAddr::V4(v)) => director.flow_hint_v4(Protocol::Tcp, SYN, c, v),
        _ => director.flow_hint(&tcp(SYN, PacketDir::FromClient, client, vip)),
    }
}
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

impl<'m> Engine<'m> {
    /// An engine for replication `rep` of `m`.
    pub fn new(m: &'m Model, rep: u32) -> Engine<'m> {
        let s = &m.scenario;
        let seed = s.seed;
        let mut dcfg = DirectorConfig::new(
            s.director.conn_capacity.max(16),
            HashKey::from_u128(SIM_HASH_KEY),
        );
        dcfg.rng_seed = mix(seed ^ mix(rep as u64 + 0x5eed));
        dcfg.sysctls.expire_nodest_conn = s.director.expire_nodest_conn;
        dcfg.sysctls.expire_quiescent_template = s.director.expire_quiescent_template;
        dcfg.sysctls.conn_reuse_mode = s.director.conn_reuse_mode;
        let mut director = Director::new(dcfg.clone());
        let sync = s
            .failover
            .as_ref()
            .and_then(|f| f.sync.as_ref())
            .is_some_and(|v| *v.get_ref());
        let backup = sync.then(|| {
            director.set_sync_master(Some(SyncMasterConfig::default()));
            // Another machine: its own random choices (hash key and seed).
            let mut bcfg = dcfg.clone();
            bcfg.hash_key = HashKey::from_u128(!SIM_HASH_KEY);
            bcfg.rng_seed = mix(seed ^ mix(rep as u64 + 0xbac0));
            let mut b = Director::new(bcfg);
            b.set_sync_backup(SyncBackupConfig::default());
            b
        });
        let end = ns(*s.duration.get_ref());
        let warm = ns(s.warmup());
        let nsrv = m.servers.len();
        let nsvc = m.workloads.len();
        let sample_every = ns(s
            .output
            .sample_interval
            .unwrap_or(*s.duration.get_ref() / 100.0))
        .max(1);
        let srv_index = m
            .servers
            .iter()
            .enumerate()
            .map(|(i, sm)| (sm.addr, i as u16))
            .collect();
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        let memo_none = Self::server_in(&srv_index, unspecified);
        Engine {
            m,
            rep,
            now: 0,
            end,
            warm,
            queue: EventQueue::with_lanes(if nsvc <= ARRIVAL_LANES { nsvc } else { 0 }),
            director,
            dcfg,
            backup,
            health: None,
            health_wake: u64::MAX,
            timer_floor: 0,
            flow_timer_min: 0,
            scratch: Vec::new(),
            health_addrs: Vec::new(),
            probes: Vec::new(),
            probe_free: Vec::new(),
            conns: Vec::new(),
            client_wire: Vec::new(),
            server_wire: Vec::new(),
            free: Vec::new(),
            srv: m
                .servers
                .iter()
                .map(|sm| Srv {
                    discipline: sm.discipline,
                    workers: sm.workers,
                    backlog: sm.backlog,
                    speed: sm.speed,
                    up: true,
                    inc: 0,
                    factor: 1.0,
                    busy: 0,
                    queue: VecDeque::new(),
                    ps: BinaryHeap::new(),
                    ps_v: 0.0,
                    ps_last: 0,
                    ps_epoch: 0,
                    last: 0,
                })
                .collect(),
            srv_index,
            srv_memo: [(unspecified, memo_none); SRV_MEMO],
            arr: m
                .workloads
                .iter()
                .map(|w| ArrState {
                    on_end: 0.0,
                    seg: 0,
                    trace_i: 0,
                    next_port: vec![0; w.clients.count as usize],
                    batch: matches!(w.requests, Requests::Fixed { .. }),
                    ahead: Vec::with_capacity(DRAW_AHEAD),
                    ahead_at: 0,
                    ahead_from: None,
                })
                .collect(),
            rng_arr: (0..nsvc)
                .map(|i| stream(seed, rep, 0x1000 + i as u64))
                .collect(),
            rng_work: (0..nsvc)
                .map(|i| stream(seed, rep, 0x2000 + i as u64))
                .collect(),
            rng_fault: (0..nsrv)
                .map(|i| stream(seed, rep, 0x3000 + i as u64))
                .collect(),
            svc_acc: (0..nsvc).map(|_| SvcAcc::new()).collect(),
            srv_acc: (0..nsrv).map(|_| SrvAcc::new()).collect(),
            series: Series::new(nsvc, nsrv),
            sample_every,
            log: Vec::new(),
            events: 0,
            packets: 0,
            conns_total: 0,
            in_flight: 0,
            peak_in_flight: 0,
            unique: m.workloads.len() == 1,
            memo: Memos::default(),
            skip_noops: true,
            leave_out: false,
            tcp_table: TcpTable::Normal,
            epoch: 1,
            times: TableTimes::default(),
        }
    }

    #[inline]
    fn push(&mut self, t: u64, ev: Ev) {
        self.queue.push(t, ev);
    }

    /// Queues service `s`'s next arrival at `t` (in its lane when the services have lanes).
    #[inline(always)]
    fn push_arrival(&mut self, s: u16, t: u64) {
        if (s as usize) < self.m.workloads.len() && self.m.workloads.len() <= ARRIVAL_LANES {
            self.queue.push_lane(s as usize, t, Ev::Arrival(s));
        } else {
            self.queue.push(t, Ev::Arrival(s));
        }
    }

    fn t(&self) -> f64 {
        self.now as f64 / 1e9
    }

    fn apply_initial_rules(&mut self) -> Result<(), String> {
        let rules = &self.m.rules;
        let Some(h) = self.m.scenario.health.clone() else {
            if let Some(b) = self.backup.as_mut() {
                b.apply_rules(Instant::ZERO, rules)
                    .map_err(|e| format!("rules refused by the backup director: {e}"))?;
            }
            return self
                .director
                .apply_rules(Instant::ZERO, rules)
                .map(|_| ())
                .map_err(|e| format!("rules refused by the director: {e}"));
        };
        // With health checking the monitor owns the real servers: the director starts with
        // the services only and the monitor adds what it considers up.
        let mut base = RuleSet::new();
        let _ = base.apply(&Command::SetTimeouts(rules.timeouts()));
        let mut specs = Vec::new();
        let dl = Duration::from_nanos(ns(h.delay_loop));
        let mut check = CheckSettings::new(CheckKind::Tcp).with_delay_loop(dl);
        check.connect_timeout = Duration::from_nanos(ns(h.connect_timeout));
        check.retry = h.retry;
        check.delay_before_retry = Duration::from_nanos(ns(h.delay_before_retry));
        check.alpha = h.alpha;
        if let Some(w) = h.warmup {
            check.warmup = Duration::from_nanos(ns(w));
        }
        for (cfg, dests) in rules.services() {
            base.apply(&Command::AddService(cfg.clone()))
                .map_err(|e| e.to_string())?;
            let mut settings = ServiceHealthSettings {
                quorum: h.quorum,
                hysteresis: h.hysteresis,
                ..ServiceHealthSettings::default()
            };
            if let Some(sorry) = self.m.sorry {
                let mut d = DestConfig::new(sorry.ip(), sorry.port());
                d.forward = dests.first().map_or(Forward::Masq, |d| d.forward);
                settings.sorry_server = Some(d);
            }
            let servers = dests
                .iter()
                .map(|d| {
                    let mut s = ServerSettings::new(*d, check);
                    s.inhibit_on_failure = h.inhibit_on_failure;
                    s
                })
                .collect();
            self.health_addrs.push(
                dests
                    .iter()
                    .map(|d| SocketAddr::new(d.addr, d.port))
                    .collect(),
            );
            specs.push(ServiceSpec {
                key: cfg.key,
                settings,
                servers,
            });
        }
        self.director
            .apply_rules(Instant::ZERO, &base)
            .map_err(|e| format!("rules refused by the director: {e}"))?;
        if let Some(b) = self.backup.as_mut() {
            b.apply_rules(Instant::ZERO, &base)
                .map_err(|e| format!("rules refused by the backup director: {e}"))?;
        }
        let mut rng = stream(self.m.scenario.seed, self.rep, 0x4000);
        let mon = HealthMonitor::new(Instant::ZERO, specs, &mut rng)
            .map_err(|e| format!("health checking: {e}"))?;
        self.health = Some(mon);
        self.health_actions();
        self.health_reschedule();
        Ok(())
    }

    /// Runs the replication to the end.
    pub fn run(mut self, progress: Option<Progress<'_>>) -> Result<RunResult, String> {
        self.run_events(progress)?;
        Ok(self.finish())
    }

    /// [`Engine::run`] up to its results.
    fn run_events(&mut self, progress: Option<Progress<'_>>) -> Result<(), String> {
        self.start()?;
        self.event_loop(progress);
        self.now = self.end;
        for i in 0..self.srv.len() {
            self.accrue(i);
        }
        Ok(())
    }

    /// The rules, the first arrivals and the scheduled events: run once, out of the event
    /// loop's code.
    #[inline(never)]
    fn start(&mut self) -> Result<(), String> {
        self.apply_initial_rules()?;
        self.director_changed();
        for i in 0..self.m.workloads.len() {
            let t = self.next_arrival(i, 0.0);
            self.arr[i].ahead_from = t;
            if let Some(t) = t {
                self.push_arrival(i as u16, t);
            }
        }
        for i in 0..self.m.servers.len() {
            let sm = &self.m.servers[i];
            let i16 = i as u16;
            if let Some((mttf, _)) = sm.mttf_mttr {
                let t = exp(&mut self.rng_fault[i], mttf);
                self.push(
                    ns(t),
                    Ev::Fail {
                        srv: i16,
                        random: true,
                    },
                );
            }
            for (at, rep) in sm.failures.clone() {
                self.push(
                    ns(at),
                    Ev::Fail {
                        srv: i16,
                        random: false,
                    },
                );
                if let Some(r) = rep {
                    self.push(
                        ns(r),
                        Ev::Repair {
                            srv: i16,
                            random: false,
                        },
                    );
                }
            }
            for s in sm.slowdowns.clone() {
                self.push(
                    ns(s.at),
                    Ev::Speed {
                        srv: i16,
                        factor: s.factor as f32,
                    },
                );
                self.push(
                    ns(s.until),
                    Ev::Speed {
                        srv: i16,
                        factor: 1.0,
                    },
                );
            }
        }
        if let Some(f) = &self.m.scenario.failover {
            self.push(ns(f.at), Ev::Failover);
        }
        let every = self.sample_every;
        self.push(every, Ev::Sample);
        Ok(())
    }

    /// Runs the events up to the end of the run.
    ///
    /// Only what happens to every connection is inlined here (arrivals, FIFO completions,
    /// think times); the rest is called, so that the loop's code stays small: the hot code of
    /// the simulator and the director together is about the size of the level-1 instruction
    /// cache.
    fn event_loop(&mut self, progress: Option<Progress<'_>>) {
        while let Some((t, ev)) = self.queue.pop() {
            if t > self.end {
                break;
            }
            self.run_director_timers(t);
            self.now = t;
            // A timer that a packet of this event arms is due no earlier than `t +`
            // [`Engine::flow_timer_min`]: lowered once here rather than after each packet
            // (an event without packets only makes the next event ask the director).
            self.timer_floor = self.timer_floor.min(t + self.flow_timer_min);
            self.events += 1;
            if self.events & 0xffff == 0 {
                self.report_progress(progress);
            }
            match ev {
                Ev::Arrival(s) => self.arrival(s),
                Ev::Think(c) => self.next_request(c),
                Ev::FifoDone { srv, conn, inc } => self.fifo_done(srv, conn, inc),
                Ev::PsDone { srv, epoch } => self.ps_done(srv, epoch),
                _ => self.rare_event(ev),
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn report_progress(&self, progress: Option<Progress<'_>>) {
        if let Some(p) = progress {
            p(self.now as f64 / self.end as f64);
        }
    }

    /// The events that are not a step of a connection: faults, health checks, the failover
    /// and the time series' samples.
    #[cold]
    #[inline(never)]
    fn rare_event(&mut self, ev: Ev) {
        match ev {
            Ev::Fail { srv, random } => self.fail(srv, random),
            Ev::Repair { srv, random } => self.repair(srv, random),
            Ev::Speed { srv, factor } => self.set_speed(srv, factor as f64),
            Ev::Health => self.health_tick(),
            Ev::Probe(i) => self.probe_done(i),
            Ev::Failover => self.failover(),
            Ev::Sample => {
                self.sample();
                let t = self.now + self.sample_every;
                self.push(t, Ev::Sample);
            }
            Ev::Arrival(_) | Ev::Think(_) | Ev::FifoDone { .. } | Ev::PsDone { .. } => {
                unreachable!("a connection's event is handled in the loop")
            }
        }
    }

    /// Runs the director's timers due up to `t` (the next event's time).
    #[inline(always)]
    fn run_director_timers(&mut self, t: u64) {
        if t < self.timer_floor {
            debug_assert!(
                self.director
                    .poll_timeout()
                    .is_none_or(|d| d.as_nanos() > t),
                "a director timer is due before the engine's floor"
            );
            return;
        }
        self.run_director_timers_due(t);
    }

    /// [`Engine::run_director_timers`] once the floor is reached: asks the director.
    #[inline(never)]
    fn run_director_timers_due(&mut self, t: u64) {
        let mut guard = 0u32;
        let next = loop {
            let Some(d) = self.director.poll_timeout() else {
                break u64::MAX;
            };
            let d = d.as_nanos();
            if d > t {
                break d;
            }
            if guard > 1_000_000 {
                break 0;
            }
            let at = d.max(self.now);
            self.director.handle_timeout(Instant::from_nanos(at));
            guard += 1;
            // A partly filled sync datagram leaves at its 2 s deadline.
            self.sync_drain(at);
        };
        self.timer_floor = if self.flow_timer_min > 0 { next } else { 0 };
        self.backup_timers(t);
    }

    /// The shortest delay (ns) of a timer that a packet handled by the director can arm, so
    /// that after a packet at `now` nothing is due before `now +` it that was not due before:
    /// a connection or template is re-armed at `now +` a protocol timeout (the connection
    /// table's) or its persistence timeout (whole seconds, at least 1), and the fixed
    /// timers a packet may start (3 s for a new connection, the 2 s estimator, 60 s for the
    /// lblc/lblcr caches and deferred templates) are longer than 1 s. 0 (no floor kept) with
    /// a sync backup, whose own timers and datagrams follow every packet, and without the
    /// rate estimator, whose periodic `handle_timeout` keeps the timer wheel's cursor near the
    /// current time (an entry beyond the wheel's horizon waits at its last bucket).
    fn flow_timer_min(&self) -> u64 {
        if self.backup.is_some() || !self.director.sysctls().run_estimation {
            return 0;
        }
        let to = self.director.table().timeouts();
        let mut min = Duration::from_secs(1).min(to.udp()).min(to.sctp());
        for st in TcpState::ALL {
            min = min.min(to.tcp(st));
        }
        for (cfg, _) in self.director.rules().services() {
            if let Some(p) = &cfg.persistence {
                min = min.min(Duration::from_secs(p.timeout_secs as u64));
            }
        }
        min.as_nanos()
    }

    /// After a change to the director other than a packet (rules, a new director): its
    /// timers are asked again at the next event.
    fn director_changed(&mut self) {
        self.epoch += 1;
        self.leave_out =
            self.skip_noops && self.backup.is_none() && self.director.sync_master().is_none();
        self.tcp_table = self.director.sysctls().tcp_table();
        self.flow_timer_min = self.flow_timer_min();
        self.timer_floor = 0;
        let table = self.director.table();
        self.times = TableTimes::of(table);
    }

    /// The backup director's own expiries up to `t`.
    fn backup_timers(&mut self, t: u64) {
        let Some(b) = self.backup.as_mut() else {
            return;
        };
        let mut guard = 0u32;
        while let Some(d) = b.poll_timeout() {
            let d = d.as_nanos();
            if d > t || guard > 1_000_000 {
                break;
            }
            b.handle_timeout(Instant::from_nanos(d.max(self.now)));
            guard += 1;
        }
    }

    /// Delivers every datagram the sync master has queued to the backup at `at` (zero
    /// network delay, no loss).
    #[inline(never)]
    fn sync_drain(&mut self, at: u64) {
        if self.backup.is_none() || self.director.sync_queue_len() == 0 {
            return;
        }
        self.backup_timers(at);
        let now = Instant::from_nanos(at);
        let Some(b) = self.backup.as_mut() else {
            return;
        };
        while let Some(datagram) = self.director.poll_sync(now) {
            // A refused datagram changes nothing and is counted in the backup's sync_stats.
            let _ = b.apply_sync(now, &datagram);
        }
    }

    // ----- arrivals ------------------------------------------------------------------------

    /// Draws the time (ns) of the service's arrival after one at `from` (seconds); `None`
    /// when the process ends.
    // Always inlined, as the other per-connection steps that are (drawing a client, a
    // server's accrual, starting a request, a client packet): callgrind counts fewer
    // instructions per connection than with the calls (the `sim_farm` scenario).
    #[inline(always)]
    fn next_arrival(&mut self, si: usize, from: f64) -> Option<u64> {
        match &self.m.workloads[si].arrival {
            ArrivalModel::Poisson(r) => poisson_next(&mut self.rng_arr[si], 1.0 / r, from),
            _ => self.next_arrival_other(si, from),
        }
    }

    /// [`Engine::next_arrival`] of the processes other than Poisson (out of line: the
    /// Poisson case, inlined, is the one a connection's arrival mostly takes).
    #[inline(never)]
    fn next_arrival_other(&mut self, si: usize, from: f64) -> Option<u64> {
        let w = &self.m.workloads[si];
        let rng = &mut self.rng_arr[si];
        let st = &mut self.arr[si];
        let t = match &w.arrival {
            ArrivalModel::Poisson(r) => from + exp(rng, 1.0 / r),
            ArrivalModel::Constant(gap) => {
                if st.seg == 0 {
                    // A random phase, so that services do not arrive in lockstep.
                    st.seg = 1;
                    gap * unit(rng)
                } else {
                    from + gap
                }
            }
            ArrivalModel::OnOff { rate, on, off } => {
                if st.seg == 0 {
                    st.seg = 1;
                    st.on_end = exp(rng, *on);
                }
                let mut t = from + exp(rng, 1.0 / rate);
                while t > st.on_end {
                    let start = st.on_end + exp(rng, *off);
                    st.on_end = start + exp(rng, *on);
                    t = start + exp(rng, 1.0 / rate);
                }
                t
            }
            ArrivalModel::Schedule(p) => {
                let mut now = from;
                loop {
                    while st.seg + 1 < p.len() && p[st.seg + 1].0 <= now {
                        st.seg += 1;
                    }
                    let rate = p[st.seg].1;
                    let seg_end = p.get(st.seg + 1).map_or(f64::INFINITY, |n| n.0);
                    if rate <= 0.0 {
                        if seg_end.is_infinite() {
                            return None;
                        }
                        now = seg_end;
                        continue;
                    }
                    let t = now + exp(rng, 1.0 / rate);
                    if t <= seg_end {
                        break t;
                    }
                    now = seg_end;
                }
            }
            ArrivalModel::Trace(v) => match v.get(st.trace_i) {
                Some((t, _)) => *t,
                None => return None,
            },
        };
        t.is_finite().then(|| ns(t))
    }

    /// The index in the client population of a client drawn with `u` (uniform on [0, 1)).
    #[inline]
    fn client_index(w: &WorkloadModel, u: f64) -> usize {
        let n = w.clients.count as usize;
        if w.client_cdf.is_empty() {
            // `u * n` is in [0, n): its conversion to `i64` is the same number, in one
            // instruction where `usize`'s takes several.
            ((u * n as f64) as i64 as usize).min(n - 1)
        } else {
            w.client_cdf.partition_point(|&c| c < u).min(n - 1)
        }
    }

    /// The port slot of a trace's client address.
    #[inline]
    fn trace_index(ip: IpAddr, clients: usize) -> usize {
        match ip {
            IpAddr::V4(a) => a.to_bits() as usize % clients,
            IpAddr::V6(a) => (a.to_bits() as usize) % clients,
        }
    }

    /// Draws the next client of service `s`: its address and port slot.
    #[inline(always)]
    fn draw_client(&mut self, s: usize) -> (IpAddr, usize) {
        let m = self.m;
        let w = &m.workloads[s];
        match &w.arrival {
            ArrivalModel::Trace(v) => self.trace_client(s, v),
            _ => population_client(w, &mut self.rng_arr[s]),
        }
    }

    /// [`Engine::draw_client`] of a trace: its next client.
    #[inline(never)]
    fn trace_client(&mut self, s: usize, v: &[(f64, IpAddr)]) -> (IpAddr, usize) {
        let st = &mut self.arr[s];
        let ip = v[st.trace_i].1;
        st.trace_i += 1;
        (ip, Self::trace_index(ip, st.next_port.len()))
    }

    /// The client's next ephemeral port (1024..=65535 in turn per client).
    fn take_port(&mut self, s: usize, slot: usize) -> u16 {
        take_port_of(&mut self.arr[s].next_port[slot], &mut self.unique)
    }

    /// Whether no two connections so far have had the same client address and port: one
    /// service's clients, each of its ports used once (a client address has one port slot,
    /// see [`Engine::trace_index`] for a trace's). Then no two entries of the director share
    /// a reply key (the templates of persistence have client port 0).
    #[inline]
    fn clients_unique(&self) -> bool {
        self.unique
    }

    /// Draws the next [`DRAW_AHEAD`] arrivals of service `s` (fewer if its process ends),
    /// in the order and with the draws the arrivals themselves would make: each client, then
    /// the time of the arrival after it, from the time of its own. Then their clients' port
    /// slots are read in one go, and then their SYNs' table buckets, so that the cache misses
    /// of each group overlap instead of costing one arrival each.
    #[inline(never)]
    fn draw_ahead(&mut self, s: usize) {
        let mut slots = [(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0usize, None); DRAW_AHEAD];
        let mut n = 0;
        let mut from = self.arr[s].ahead_from;
        let m = self.m;
        let w = &m.workloads[s];
        match &w.arrival {
            // The loop below for the usual case, with its borrows and the rate's inverse
            // taken once: the same draws (`draw_client`, then `next_arrival`).
            ArrivalModel::Poisson(r) => {
                let mean = 1.0 / r;
                let rng = &mut self.rng_arr[s];
                while n < DRAW_AHEAD {
                    let Some(t) = from else {
                        break;
                    };
                    let (ip, slot) = population_client(w, rng);
                    from = poisson_next(rng, mean, secs(t));
                    slots[n] = (ip, slot, from);
                    n += 1;
                }
            }
            _ => {
                while n < DRAW_AHEAD {
                    let Some(t) = from else {
                        break;
                    };
                    let (ip, slot) = self.draw_client(s);
                    from = self.next_arrival(s, t as f64 / 1e9);
                    slots[n] = (ip, slot, from);
                    n += 1;
                }
            }
        }
        let Engine {
            arr,
            director,
            unique,
            ..
        } = self;
        let st = &mut arr[s];
        st.ahead_from = from;
        // A short loop of loads, so that all of them are in flight at once (folded into one
        // value that the optimiser must keep: none of them is left out).
        let mut touched = 0u16;
        for &(_, slot, _) in &slots[..n] {
            touched ^= st.next_port.get(slot).copied().unwrap_or(0);
        }
        core::hint::black_box(touched);
        st.ahead.clear();
        st.ahead_at = 0;
        let vip = w.vip;
        for &(ip, slot, next) in &slots[..n] {
            let port = take_port_of(&mut st.next_port[slot], unique);
            let client = SocketAddr::new(ip, port);
            let hint = syn_hint(director, client, vip);
            st.ahead.push(Drawn { client, hint, next });
        }
        for d in &st.ahead {
            director.prefetch(&d.hint);
        }
    }

    /// A slot for a connection: the last one freed (see [`Engine::release`]), or a new one. A connection that fails at its SYN gives it back at once
    /// ([`Engine::unalloc`]), so that the slots that connections get are the same as if
    /// only those that open took one.
    #[inline(always)]
    fn alloc(&mut self) -> u32 {
        match self.free.pop() {
            Some(i) => i,
            None => self.new_slot(),
        }
    }

    /// Gives back the slot that [`Engine::alloc`] took for a connection that did not open.
    #[cold]
    #[inline(never)]
    fn unalloc(&mut self, i: u32) {
        self.free.push(i);
    }

    /// A new connection slot (its fields are written when a connection takes it), with the
    /// TCP packets of its two directions.
    #[cold]
    #[inline(never)]
    fn new_slot(&mut self) -> u32 {
        let i = self.conns.len() as u32;
        // Any addresses: the connection that takes the slot writes its own.
        let client = SocketAddr::from(([0, 0, 0, 0], 0));
        // Any hint: it is written with the packet's addresses.
        let hint = self
            .director
            .flow_hint(&tcp(ACK, PacketDir::FromClient, client, client));
        self.conns.push(Conn {
            client,
            dest: client,
            arrival: 0,
            req_start: 0,
            inc: 0,
            left: 0,
            svc: 0,
            srv: 0,
            work: 0.0,
            nat: false,
            live: false,
            serving: false,
            id: None,
            acked: 0,
        });
        self.client_wire.push(Wire {
            pkt: tcp(ACK, PacketDir::FromClient, client, client),
            hint,
        });
        self.server_wire.push(Wire {
            pkt: tcp(ACK, PacketDir::FromServer, client, client),
            hint,
        });
        i
    }

    /// The server's SYN-ACK on NAT connection `c` (entry `id`, real server `dest`), whose hint
    /// is kept for the server's later packets.
    #[inline(always)]
    fn syn_ack(&mut self, c: u32, id: Option<ConnId>, dest: SocketAddr, client: SocketAddr) {
        let i = c as usize;
        // The packet's other fields are the same for every connection (see `new_slot`).
        let w = &mut self.server_wire[i];
        w.pkt.src = dest;
        w.pkt.dst = client;
        w.pkt.tcp_flags = SYN | ACK;
        // The entry's reply key is the packet's (`dest`, `client`): its hint comes from the
        // entry, with the hash its insert computed.
        w.hint = match id.and_then(|id| self.director.reply_hint(id)) {
            Some(h) => h,
            None => self.director.flow_hint(&w.pkt),
        };
        // The server's packets find their entry by its reply key, which another
        // connection may share (two services' clients with the same address and port on
        // one real server, or a client's port used again): only skip a SYN-ACK that would
        // reach this connection. The entry's reply key is `dest`, `client` (the verdict
        // names the entry's real server), so it is this connection's when no other
        // connection had this client address and port.
        let own = if id.is_some() && self.clients_unique() {
            debug_assert_eq!(
                self.director
                    .table()
                    .lookup_out(&OutKey::of_reply(Protocol::Tcp, dest, client)),
                id
            );
            true
        } else {
            self.director
                .table()
                .lookup_out(&OutKey::of_reply(Protocol::Tcp, dest, client))
                == id
        };
        if !own || self.changes_state(&self.memo.synack, id, Direction::Output, SYN | ACK) {
            self.packets += 1;
            let now = Instant::from_nanos(self.now);
            let w = &self.server_wire[i];
            self.director.handle_flow_hinted(now, &w.pkt, &w.hint);
            if self.backup.is_some() {
                self.sync_drain(self.now);
            }
        } else {
            self.packets += 1;
        }
    }

    fn release(&mut self, c: u32) {
        self.conns[c as usize].live = false;
        self.in_flight -= 1;
        self.free.push(c);
    }

    #[inline]
    fn flow(&mut self, pkt: FlowPacket) -> FlowVerdict {
        self.packets += 1;
        let v = self
            .director
            .handle_flow(Instant::from_nanos(self.now), &pkt);
        if self.backup.is_some() {
            self.sync_drain(self.now);
        }
        v
    }

    /// A packet of connection `c` from its client.
    #[inline(always)]
    fn client_packet(&mut self, c: u32, flags: u8) -> FlowVerdict {
        let w = &mut self.client_wire[c as usize];
        w.pkt.tcp_flags = flags;
        self.packets += 1;
        let now = Instant::from_nanos(self.now);
        let v = self.director.handle_flow_hinted(now, &w.pkt, &w.hint);
        if self.backup.is_some() {
            self.sync_drain(self.now);
        }
        v
    }

    /// A packet of NAT connection `c` from its real server.
    #[inline]
    fn server_packet(&mut self, c: u32, flags: u8) -> FlowVerdict {
        debug_assert!(self.conns[c as usize].nat);
        let w = &mut self.server_wire[c as usize];
        w.pkt.tcp_flags = flags;
        self.packets += 1;
        let now = Instant::from_nanos(self.now);
        let v = self.director.handle_flow_hinted(now, &w.pkt, &w.hint);
        if self.backup.is_some() {
            self.sync_drain(self.now);
        }
        v
    }

    /// Draws service `s`'s arrival now, when arrivals are not drawn ahead, and queues the
    /// next one.
    #[inline(never)]
    fn draw_one(&mut self, s: u16) {
        let si = s as usize;
        let vip = self.m.workloads[si].vip;
        let (ip, slot) = self.draw_client(si);
        let client = SocketAddr::new(ip, self.take_port(si, slot));
        let hint = syn_hint(&self.director, client, vip);
        self.director.prefetch(&hint);
        let st = &mut self.arr[si];
        st.ahead.clear();
        st.ahead.push(Drawn {
            client,
            hint,
            next: None,
        });
        st.ahead_at = 0;
        let from = self.t();
        if let Some(t) = self.next_arrival(si, from) {
            self.push_arrival(s, t);
        }
    }

    fn arrival(&mut self, s: u16) {
        let si = s as usize;
        let vip = self.m.workloads[si].vip;
        if self.arr[si].batch {
            let st = &self.arr[si];
            if st.ahead_at == st.ahead.len() {
                self.draw_ahead(si);
            }
            let st = &self.arr[si];
            if let Some(t) = st.ahead[st.ahead_at].next {
                self.push_arrival(s, t);
            }
        } else {
            self.draw_one(s);
        }
        // The connection's slot, whose client packet the SYN is: its later packets differ
        // from it only by their TCP flags, and keep its hint (the part that only a packet
        // opening a connection uses is the same for them: hashes of the same key).
        let c = self.alloc();
        // The arrival's client and hint, read in place (the fields apart, so that each is
        // indexed once).
        let Engine {
            arr, client_wire, ..
        } = self;
        let st = &mut arr[si];
        let at = st.ahead_at;
        st.ahead_at = at + 1;
        let drawn = &st.ahead[at];
        let client = drawn.client;
        let w = &mut client_wire[c as usize];
        w.pkt.src = client;
        w.pkt.dst = vip;
        w.pkt.tcp_flags = SYN;
        w.hint = drawn.hint;
        self.conns_total += 1;
        let measured = self.now >= self.warm;
        if measured {
            self.svc_acc[si].attempted += 1;
        }
        self.packets += 1;
        let v = self
            .director
            .handle_flow_hinted(Instant::from_nanos(self.now), &w.pkt, &w.hint);
        if self.backup.is_some() {
            self.sync_drain(self.now);
        }
        let (dest, nat, id) = match v {
            FlowVerdict::Forward {
                dest, method, conn, ..
            } => (dest, method == Forward::Masq, conn),
            FlowVerdict::NoDestination | FlowVerdict::NotOurs | FlowVerdict::Reply { .. } => {
                self.unalloc(c);
                self.count_fail(si, NONE, FailReason::NoDestination, measured);
                return;
            }
            FlowVerdict::Drop(_) => {
                self.unalloc(c);
                self.count_fail(si, NONE, FailReason::DirectorDrop, measured);
                return;
            }
        };
        let srv = self.server_of(dest);
        // Counted whether or not the server is up: its connections are then its completed,
        // failed (dead server included) and open ones.
        if measured && srv != NONE {
            self.srv_acc[srv as usize].connections += 1;
        }
        if srv == NONE || !self.srv[srv as usize].up {
            // Nobody answers the SYN; the director's entry expires by itself.
            self.unalloc(c);
            self.count_fail(si, srv, FailReason::DeadServer, measured);
            return;
        }
        let st = &self.srv[srv as usize];
        // Refused only when its request would have to wait and `backlog` already do: at most
        // `workers + backlog` in the server (M/M/c/K with K = c + backlog; backlog 0 is a
        // loss system, Erlang B).
        let in_system = st.in_system(st.discipline);
        if in_system >= (st.workers as usize).saturating_add(st.backlog as usize) {
            self.unalloc(c);
            self.refuse(si, srv, nat, dest, client, measured);
            return;
        }
        let inc = st.inc;
        let left = match self.m.workloads[si].requests {
            Requests::Fixed { n } => n,
            Requests::Geometric { mean } => {
                // Geometric on 1, 2, ...: P(N > k) = q^k with q = 1 - 1/mean.
                let q = 1.0 - 1.0 / mean;
                if q <= 0.0 {
                    1
                } else {
                    let u = crate::model::unit_open0(&mut self.rng_arr[si]);
                    (1.0 + (u.ln() / q.ln()).floor()).min(1e6) as u32
                }
            }
        };
        self.in_flight += 1;
        self.peak_in_flight = self.peak_in_flight.max(self.in_flight);
        self.conns[c as usize] = Conn {
            client,
            dest,
            arrival: self.now,
            req_start: self.now,
            inc,
            left,
            svc: s,
            srv,
            work: 0.0,
            nat,
            live: true,
            serving: false,
            id,
            acked: 0,
        };
        if nat {
            self.syn_ack(c, id, dest, client);
        }
        // The handshake's ACK carries the first request.
        self.send_request(c);
    }

    /// [`Engine::server_by_addr`], remembered: from `srv_memo` when it holds `dest`.
    #[inline(always)]
    fn server_of(&mut self, dest: SocketAddr) -> u16 {
        let k = match dest {
            SocketAddr::V4(a) => a.ip().to_bits() ^ a.port() as u32,
            SocketAddr::V6(a) => a.ip().to_bits() as u32 ^ a.port() as u32,
        };
        let (at, srv) = self.srv_memo[k as usize % SRV_MEMO];
        if at == dest {
            return srv;
        }
        self.server_memo_miss(k as usize % SRV_MEMO, dest)
    }

    /// [`Engine::server_of`] when the memo does not hold `dest`: the lookup, remembered in
    /// slot `i`.
    #[inline(never)]
    fn server_memo_miss(&mut self, i: usize, dest: SocketAddr) -> u16 {
        let srv = self.server_by_addr(dest);
        self.srv_memo[i] = (dest, srv);
        srv
    }

    /// The model's index of the real server at `dest`, or at its address with port 0 (a real
    /// server without a port); `NONE` if none.
    fn server_by_addr(&self, dest: SocketAddr) -> u16 {
        Self::server_in(&self.srv_index, dest)
    }

    /// [`Engine::server_by_addr`] in `index`.
    fn server_in(index: &hashbrown::HashMap<SocketAddr, u16>, dest: SocketAddr) -> u16 {
        index
            .get(&dest)
            .or_else(|| index.get(&SocketAddr::new(dest.ip(), 0)))
            .copied()
            .unwrap_or(NONE)
    }

    /// A connection refused by its server's full backlog: the server's RST (through the
    /// director with NAT).
    #[cold]
    #[inline(never)]
    fn refuse(
        &mut self,
        si: usize,
        srv: u16,
        nat: bool,
        dest: SocketAddr,
        client: SocketAddr,
        measured: bool,
    ) {
        if nat {
            self.flow(tcp(RST | ACK, PacketDir::FromServer, dest, client));
        }
        self.count_fail(si, srv, FailReason::Refused, measured);
    }

    /// The client sends the connection's next request (after think time).
    fn next_request(&mut self, c: u32) {
        if !self.conns[c as usize].live {
            return;
        }
        self.conns[c as usize].req_start = self.now;
        self.send_request(c);
    }

    fn send_request(&mut self, c: u32) {
        let v = self.client_packet(c, ACK);
        let epoch = self.epoch;
        // The fields read, not a copy of the whole connection.
        let cn = &mut self.conns[c as usize];
        let (srv, inc, svc) = (cn.srv, cn.inc, cn.svc);
        match v {
            // After a failover with sync, the backup's entry may name another real server
            // (a connection replaced meanwhile): that server answers RST, the connection breaks
            // as one the backup does not know.
            FlowVerdict::Forward { dest, conn, .. } if dest == cn.dest => {
                cn.acked = if conn == cn.id && conn.is_some() {
                    epoch
                } else {
                    0
                };
            }
            _ => {
                self.break_conn(c, FailReason::Failover);
                return;
            }
        }
        let st = &self.srv[srv as usize];
        if !st.up || st.inc != inc {
            self.break_conn(c, FailReason::ServerFailure);
            return;
        }
        let si = svc as usize;
        let work = self.m.workloads[si].work.sample(&mut self.rng_work[si]);
        self.enqueue(srv, c, work);
    }

    // ----- servers -------------------------------------------------------------------------

    /// Adds the time since the last change to the server's integrals.
    #[inline(always)]
    fn accrue(&mut self, i: usize) {
        let st = &mut self.srv[i];
        let now = self.now;
        if now <= st.last {
            return;
        }
        let n = st.in_system(st.discipline);
        let up = st.up;
        // Spans of the run (at most 1e9 s, so below 2^63 ns) and counts convert to `f64`
        // through `i64`, one instruction where `u64`'s conversion takes several; the values
        // are the same.
        let dt_all = (now - st.last) as i64 as f64 / 1e9;
        // The same as below for `st.last >= warm`, without a second division.
        let dt_meas = if st.last >= self.warm {
            dt_all
        } else if now > self.warm {
            (now - self.warm) as i64 as f64 / 1e9
        } else {
            0.0
        };
        st.last = now;
        let a = &mut self.srv_acc[i];
        if n == 0 {
            // Nothing in the server, nobody busy: every area but up time would add +0.0,
            // which leaves it as it is (the areas are never -0.0: they start at +0.0 and only
            // non-negative amounts are added).
            if up {
                a.up_time += dt_meas;
            }
            return;
        }
        let busy = match st.discipline {
            Discipline::Fifo => st.busy as f64,
            Discipline::Ps => (n as i64 as f64).min(st.workers as f64),
        };
        let n = n as i64 as f64;
        a.busy_area += busy * dt_meas;
        a.n_area += n * dt_meas;
        if up {
            a.up_time += dt_meas;
        }
        a.iv_busy += busy * dt_all;
        a.iv_n += n * dt_all;
    }

    fn enqueue(&mut self, srv: u16, c: u32, work: f64) {
        let i = srv as usize;
        self.accrue(i);
        let st = &mut self.srv[i];
        match st.discipline {
            Discipline::Fifo => {
                if st.busy < st.workers {
                    st.busy += 1;
                    self.start_fifo(srv, c, work);
                } else {
                    // The work is drawn when the request arrives and kept with the
                    // connection until a worker takes it.
                    st.queue.push_back(c);
                    self.conns[c as usize].work = work;
                }
            }
            Discipline::Ps => self.enqueue_ps(i, c, work),
        }
    }

    /// [`Engine::enqueue`] on a processor-sharing server.
    #[inline(never)]
    fn enqueue_ps(&mut self, i: usize, c: u32, work: f64) {
        self.ps_advance(i);
        let st = &mut self.srv[i];
        let tag = st.ps_v + work;
        st.ps.push(core::cmp::Reverse((tag.to_bits(), c)));
        self.ps_reschedule(i);
    }

    #[inline(always)]
    fn start_fifo(&mut self, srv: u16, c: u32, work: f64) {
        let i = srv as usize;
        let st = &self.srv[i];
        let speed = st.speed * st.factor;
        self.conns[c as usize].serving = true;
        let inc = self.srv[i].inc;
        let t = self.now + ns(work / speed);
        self.push(t, Ev::FifoDone { srv, conn: c, inc });
    }

    fn fifo_done(&mut self, srv: u16, c: u32, inc: u32) {
        let i = srv as usize;
        if self.srv[i].inc != inc {
            return; // the server died meanwhile; the connection was broken then
        }
        self.accrue(i);
        self.conns[c as usize].serving = false;
        let st = &mut self.srv[i];
        match st.queue.pop_front() {
            Some(next) => {
                let w = self.conns[next as usize].work;
                self.start_fifo(srv, next, w);
            }
            None => st.busy -= 1,
        }
        self.response(c);
    }

    fn ps_rate(&self, i: usize) -> f64 {
        let sm = &self.m.servers[i];
        let st = &self.srv[i];
        let n = st.ps.len().max(1) as f64;
        sm.speed * st.factor * (sm.workers as f64 / n).min(1.0)
    }

    fn ps_advance(&mut self, i: usize) {
        let r = self.ps_rate(i);
        let st = &mut self.srv[i];
        if !st.ps.is_empty() {
            st.ps_v += r * (self.now - st.ps_last) as f64 / 1e9;
        }
        st.ps_last = self.now;
    }

    fn ps_reschedule(&mut self, i: usize) {
        let r = self.ps_rate(i);
        let st = &mut self.srv[i];
        st.ps_epoch = st.ps_epoch.wrapping_add(1);
        if let Some(core::cmp::Reverse((tag, _))) = st.ps.peek() {
            let left = (f64::from_bits(*tag) - st.ps_v).max(0.0);
            let t = self.now + ns(left / r);
            let epoch = st.ps_epoch;
            self.push(
                t,
                Ev::PsDone {
                    srv: i as u16,
                    epoch,
                },
            );
        }
    }

    #[inline(never)]
    fn ps_done(&mut self, srv: u16, epoch: u32) {
        let i = srv as usize;
        if self.srv[i].ps_epoch != epoch {
            return;
        }
        self.accrue(i);
        self.ps_advance(i);
        let mut done = core::mem::take(&mut self.scratch);
        done.clear();
        {
            let st = &mut self.srv[i];
            // The head is done (the event was computed for it); others finishing within
            // rounding too.
            let v = st.ps_v;
            while let Some(core::cmp::Reverse((tag, c))) = st.ps.peek().copied() {
                if done.is_empty() || f64::from_bits(tag) <= v * (1.0 + 1e-12) + 1e-12 {
                    st.ps.pop();
                    st.ps_v = st.ps_v.max(f64::from_bits(tag));
                    done.push(c);
                } else {
                    break;
                }
            }
        }
        self.ps_reschedule(i);
        for &c in &done {
            self.response(c);
        }
        self.scratch = done;
    }

    fn set_speed(&mut self, srv: u16, factor: f64) {
        let i = srv as usize;
        self.accrue(i);
        if self.m.servers[i].discipline == Discipline::Ps {
            self.ps_advance(i);
            self.srv[i].factor = factor;
            self.ps_reschedule(i);
        } else {
            // FIFO: requests that start from now on run at the new speed.
            self.srv[i].factor = factor;
        }
        self.log.push((
            self.t(),
            format!("{} speed x{factor}", self.m.servers[i].addr),
        ));
    }

    fn fail(&mut self, srv: u16, random: bool) {
        let i = srv as usize;
        if !self.srv[i].up {
            return;
        }
        self.accrue(i);
        let st = &mut self.srv[i];
        st.up = false;
        st.inc = st.inc.wrapping_add(1);
        st.busy = 0;
        st.ps_epoch = st.ps_epoch.wrapping_add(1);
        let mut broken: Vec<u32> = st.queue.drain(..).collect();
        // The requests in service: found by a scan of the connections (a failure is rare; a
        // list per server would cost every request an insertion and a removal).
        for (c, cn) in self.conns.iter_mut().enumerate() {
            if cn.serving && cn.live && cn.srv == srv {
                cn.serving = false;
                broken.push(c as u32);
            }
        }
        let st = &mut self.srv[i];
        broken.extend(st.ps.drain().map(|core::cmp::Reverse((_, c))| c));
        // Deterministic order whatever the heap's layout.
        broken.sort_unstable();
        for c in broken {
            self.break_conn(c, FailReason::ServerFailure);
        }
        self.log
            .push((self.t(), format!("{} fails", self.m.servers[i].addr)));
        if random {
            if let Some((_, mttr)) = self.m.servers[i].mttf_mttr {
                let t = self.now + ns(exp(&mut self.rng_fault[i], mttr));
                self.push(t, Ev::Repair { srv, random: true });
            }
        }
    }

    fn repair(&mut self, srv: u16, random: bool) {
        let i = srv as usize;
        if self.srv[i].up {
            return;
        }
        self.accrue(i);
        let st = &mut self.srv[i];
        st.up = true;
        st.ps_v = 0.0;
        st.ps_last = self.now;
        self.log
            .push((self.t(), format!("{} repaired", self.m.servers[i].addr)));
        if random {
            if let Some((mttf, _)) = self.m.servers[i].mttf_mttr {
                let t = self.now + ns(exp(&mut self.rng_fault[i], mttf));
                self.push(t, Ev::Fail { srv, random: true });
            }
        }
    }

    // ----- completions and failures --------------------------------------------------------

    fn response(&mut self, c: u32) {
        // The fields read, not a copy of the whole connection.
        let cn = &self.conns[c as usize];
        if !cn.live {
            return;
        }
        let (nat, left, req_start, svc, srv, arrival) =
            (cn.nat, cn.left, cn.req_start, cn.svc, cn.srv, cn.arrival);
        if nat {
            if left == 1 && self.last_response_subsumed(&self.conns[c as usize]) {
                self.packets += 1;
            } else {
                let v = self.server_packet(c, ACK);
                if !matches!(v, FlowVerdict::Reply { .. }) {
                    // The director does not know the connection any more (failover).
                    self.break_conn(c, FailReason::Failover);
                    return;
                }
            }
        }
        if req_start >= self.warm {
            let rt = self.now - req_start;
            self.record(svc, srv, rt);
        } else {
            self.warmup_response(svc, srv, self.now - req_start);
        }
        let left = left - 1;
        self.conns[c as usize].left = left;
        if left > 0 {
            self.after_response(c, svc as usize);
            return;
        }
        // Close: client FIN, server FIN (NAT only), client ACK. The last ACK, at the same
        // instant and found by the same client key as the FIN, is handed over only if it can
        // change the state (it cannot in TIME_WAIT, where NAT's server FIN leaves the
        // connection, nor in FIN_WAIT on DR's INPUT_ONLY table).
        let fin = self.client_packet(c, FIN | ACK);
        if nat {
            self.server_packet(c, FIN | ACK);
        }
        let id = match fin {
            FlowVerdict::Forward { conn, .. } => conn,
            _ => None,
        };
        if self.changes_state(&self.memo.last_ack, id, Direction::Input, ACK) {
            self.client_packet(c, ACK);
        } else {
            self.packets += 1;
        }
        if arrival >= self.warm {
            self.svc_acc[svc as usize].completed += 1;
            self.srv_acc[srv as usize].completed += 1;
        }
        self.release(c);
    }

    /// A keep-alive connection's next request, after a response: now, or after a think time.
    #[inline(never)]
    fn after_response(&mut self, c: u32, si: usize) {
        match &self.m.workloads[si].think {
            Some(th) => {
                let d = th.sample(&mut self.rng_work[si]);
                let t = self.now + ns(d);
                self.push(t, Ev::Think(c));
            }
            None => {
                self.conns[c as usize].req_start = self.now;
                self.send_request(c);
            }
        }
    }

    /// Whether a packet of connection `id` seen in `dir` with TCP `flags`, at the same instant
    /// as the connection's previous packet (and which the director would find as `id`: the
    /// caller checks), can change anything the simulation reads. Such a
    /// packet is not handed to the director when it cannot (it is still counted in
    /// [`crate::results::Counters::packets`]): lvs-core's own transition function leaves the
    /// connection's state and NOOUTPUT flag as they are (a NAT server's SYN-ACK in SYN_RECV; a
    /// DR or TUN client's ACK after its FIN, in FIN_WAIT on the INPUT_ONLY table), and its
    /// timer would be re-armed with the same state's timeout at the same instant, which
    /// changes nothing. The packet would only count in the director's packet statistics and
    /// verdict counters, which the simulator does not read: active and inactive counts,
    /// timers and so every scheduling decision are the same. Always handed over with
    /// connection sync, whose thresholds count packets.
    fn changes_state(
        &self,
        memo: &TransitionMemo,
        id: Option<ConnId>,
        dir: Direction,
        flags: u8,
    ) -> bool {
        let Some(id) = id else {
            return true;
        };
        if !self.leave_out {
            return true;
        }
        // State and flags read together (one check that the entry is live).
        let Some(st) = self.director.table().status(id) else {
            return true;
        };
        let Some(state) = TcpState::from_index(st.state) else {
            return true;
        };
        let t = memo.get(
            self.tcp_table,
            state,
            st.flags.contains(ConnFlags::NOOUTPUT),
            dir,
            flags,
        );
        t.state != state || t.clear_nooutput
    }

    /// Whether the server's last response on NAT connection `cn` (an ACK, at the instant of
    /// the client's FIN that follows it with nothing in between) changes nothing that the
    /// client's FIN does not decide anyway, so that it need not be handed to the director
    /// (it is still counted in [`crate::results::Counters::packets`]).
    ///
    /// Handed over, the response would find the connection's entry (its own: the entry is
    /// live, has this connection's reply key, and no other connection has this client
    /// address and port), leave its state and NOOUTPUT flag as they are (lvs-core's
    /// transition function says so at run time: ESTABLISHED stays ESTABLISHED) and re-arm
    /// its timer with that state's timeout. The client's FIN then reaches the same entry
    /// (its real server is available, so the FIN is neither dropped nor rescheduled) and
    /// re-arms it again. When the FIN's due tick is earlier than both the response's and the
    /// entry's current one, the FIN moves the entry to its own bucket of the timer wheel
    /// either way, so the entry's deadline and place in the wheel are the same with or
    /// without the response. What is left of the response is the director's packet
    /// statistics and verdict counters, which the simulator does not read. Never with
    /// connection sync, whose thresholds count packets.
    fn last_response_subsumed(&self, cn: &Conn) -> bool {
        let Some(id) = cn.id else {
            return false;
        };
        if !self.leave_out || !self.clients_unique() {
            return false;
        }
        let table = self.director.table();
        // The entry's state, flags, real server and due time. Slot `id` still holds this
        // connection's entry when the request's ACK found it there, nothing but packets and
        // timers changed the director since (`epoch`: rules and failovers remove entries),
        // no other connection's packet has this client address and port (only a packet's own
        // entry is expired or replaced on the packet path), and no timer can have expired it
        // (a packet arms its entry for at least `flow_timer_min`, 0 when not kept): then its
        // fields are read one by one; otherwise the whole entry, whose addresses tell.
        let fast = cn.acked == self.epoch && self.now - cn.req_start < self.flow_timer_min;
        let (state, flags, dest, expires) = if fast {
            let Some(st) = table.status(id) else {
                return false;
            };
            let flags = st.flags;
            if flags.contains(ConnFlags::TEMPLATE) || flags.fwd_method() != FwdMethod::Masq {
                return false;
            }
            (st.state, flags, st.dest, st.expires)
        } else {
            let Some(e) = table.get(id) else {
                return false;
            };
            if e.protocol != Protocol::Tcp
                || e.is_template()
                || e.fwd_method() != FwdMethod::Masq
                || e.cport != cn.client.port()
                || e.caddr != cn.client.ip()
                || e.dport != cn.dest.port()
                || e.daddr != cn.dest.ip()
            {
                return false;
            }
            (e.state, e.flags, e.dest, e.expires)
        };
        debug_assert!(table.get(id).is_some_and(|e| e.protocol == Protocol::Tcp
            && e.cport == cn.client.port()
            && e.caddr == cn.client.ip()
            && e.dport == cn.dest.port()
            && e.daddr == cn.dest.ip()));
        debug_assert_eq!(
            table.lookup_out(&OutKey::of_reply(Protocol::Tcp, cn.dest, cn.client)),
            Some(id)
        );
        if !dest.is_some_and(|d| self.director.dest_available(d)) {
            return false;
        }
        let Some(state) = TcpState::from_index(state) else {
            return false;
        };
        let nooutput = flags.contains(ConnFlags::NOOUTPUT);
        let tcp = self.tcp_table;
        let ack = self
            .memo
            .response
            .get(tcp, state, nooutput, Direction::Output, ACK);
        if ack.state != state || ack.clear_nooutput {
            return false;
        }
        let fin_state = self
            .memo
            .fin
            .get(tcp, state, nooutput, Direction::Input, FIN | ACK)
            .state;
        // The deadlines as the table arms them (on its tick), compared without computing
        // them when the timeouts allow.
        let to = table.timeouts();
        let (fin, other) = (to.tcp(fin_state), to.tcp(state));
        let first = self
            .times
            .fin_first(self.now, fin, other, expires.as_nanos());
        debug_assert!(
            first.is_none_or(|f| f == Self::fin_first_due(table, self.now, fin, other, expires))
        );
        first.unwrap_or_else(|| Self::fin_first_due(table, self.now, fin, other, expires))
    }

    /// [`TableTimes::fin_first`] by the table's deadlines themselves.
    #[inline(never)]
    fn fin_first_due(
        table: &lvs_core::conn::ConnTable,
        now: u64,
        fin: Duration,
        other: Duration,
        expires: Instant,
    ) -> bool {
        let now = Instant::from_nanos(now);
        let fin_due = table.due(now, fin);
        fin_due < table.due(now, other) && fin_due < expires
    }

    #[cold]
    #[inline(never)]
    fn break_conn(&mut self, c: u32, reason: FailReason) {
        let cn = self.conns[c as usize];
        if !cn.live {
            return;
        }
        // The client aborts.
        self.client_packet(c, RST | ACK);
        self.count_fail(cn.svc as usize, cn.srv, reason, cn.arrival >= self.warm);
        self.release(c);
    }

    #[cold]
    #[inline(never)]
    fn count_fail(&mut self, svc: usize, srv: u16, r: FailReason, measured: bool) {
        self.series.fail(svc);
        if !measured {
            return;
        }
        self.svc_acc[svc].failed[r as usize] += 1;
        if srv != NONE {
            self.srv_acc[srv as usize].failed[r as usize] += 1;
        }
    }

    // ----- health checking -----------------------------------------------------------------

    fn health_actions(&mut self) {
        let Some(mon) = self.health.as_mut() else {
            return;
        };
        let mut acts = Vec::new();
        while let Some(a) = mon.poll_action() {
            acts.push(a);
        }
        let now = Instant::from_nanos(self.now);
        for a in acts {
            match a {
                Action::Rule(cmd) => {
                    if let Err(e) = self.director.apply_command(now, &cmd) {
                        self.log
                            .push((self.t(), format!("health rule refused: {e}")));
                    }
                    // keepalived runs on both nodes and checks the same servers.
                    if let Some(b) = self.backup.as_mut() {
                        if let Err(e) = b.apply_command(now, &cmd) {
                            self.log.push((
                                self.now as f64 / 1e9,
                                format!("health rule refused by the backup: {e}"),
                            ));
                        }
                    }
                    self.director_changed();
                }
                Action::Notify(n) => {
                    let msg = match n {
                        Notification::ServerUp { server, .. } => {
                            format!("health: {} up", self.health_addr(server))
                        }
                        Notification::ServerDown { server, .. } => {
                            format!("health: {} down", self.health_addr(server))
                        }
                        Notification::QuorumUp { .. } => "health: quorum up".to_string(),
                        Notification::QuorumDown { .. } => "health: quorum down".to_string(),
                    };
                    self.log.push((self.t(), msg));
                }
            }
        }
    }

    fn health_addr(&self, id: lvs_core::health::ServerId) -> String {
        self.health_addrs
            .get(id.service)
            .and_then(|v| v.get(id.server))
            .map_or_else(|| "?".to_string(), |a| a.to_string())
    }

    fn health_reschedule(&mut self) {
        let Some(mon) = self.health.as_ref() else {
            return;
        };
        if let Some(t) = mon.poll_timeout() {
            let t = t.as_nanos().max(self.now);
            if t < self.health_wake {
                self.health_wake = t;
                self.push(t, Ev::Health);
            }
        }
    }

    fn health_tick(&mut self) {
        if self.now >= self.health_wake {
            self.health_wake = u64::MAX;
        }
        let now = Instant::from_nanos(self.now);
        let probe_time = self
            .m
            .scenario
            .health
            .as_ref()
            .map_or(0.001, |h| h.probe_time);
        let Some(mon) = self.health.as_mut() else {
            return;
        };
        mon.handle_timeout(now);
        let mut started = Vec::new();
        while let Some(p) = mon.poll_probe(now) {
            started.push(p);
        }
        for p in started {
            let a = SocketAddr::new(p.addr, p.port);
            let up = self
                .srv_index
                .get(&a)
                .is_some_and(|&i| self.srv[i as usize].up);
            if up {
                // A live server answers the connect; a dead one never does (the monitor
                // fails the probe at its connect_timeout deadline).
                let idx = match self.probe_free.pop() {
                    Some(i) => {
                        self.probes[i as usize] = p.id;
                        i
                    }
                    None => {
                        self.probes.push(p.id);
                        (self.probes.len() - 1) as u32
                    }
                };
                let t = self.now + ns(probe_time);
                self.push(t, Ev::Probe(idx));
            }
        }
        self.health_actions();
        self.health_reschedule();
    }

    fn probe_done(&mut self, idx: u32) {
        let id = self.probes[idx as usize];
        self.probe_free.push(idx);
        let now = Instant::from_nanos(self.now);
        if let Some(mon) = self.health.as_mut() {
            // Already failed by its deadline: the monitor refuses the late result.
            let _ = mon.handle_probe_result(now, id, ProbeOutcome::Success);
        }
        self.health_actions();
        self.health_reschedule();
    }

    // ----- failover ------------------------------------------------------------------------

    fn failover(&mut self) {
        if let Some(b) = self.backup.take() {
            // The master fails: what it had not sent yet is lost; the backup has applied
            // every datagram sent before now (timers up to now have run).
            let (mut open, mut held, mut moved) = (0u64, 0u64, 0u64);
            for c in self.conns.iter().filter(|c| c.live) {
                open += 1;
                let vip = self.m.workloads[c.svc as usize].vip;
                match b.conn(Protocol::Tcp, c.client, vip) {
                    Some(i) if i.dest == c.dest => held += 1,
                    Some(_) => moved += 1,
                    None => {}
                }
            }
            let st = b.sync_stats();
            let msg = format!(
                "director failover (sync): the backup holds {held} of {open} open connections \
                 on their real server ({moved} on another; {} sync datagrams applied)",
                st.datagrams_applied
            );
            self.director = b;
            self.director_changed();
            self.log.push((self.t(), msg));
            return;
        }
        // The backup director has the same rules (keepalived on both nodes) and, without
        // sync, an empty connection table.
        let rules = self.director.rules().clone();
        let mut d = Director::new(self.dcfg.clone());
        let now = Instant::from_nanos(self.now);
        let _ = d.handle_timeout(now);
        if let Err(e) = d.apply_rules(now, &rules) {
            self.log
                .push((self.t(), format!("backup director refused the rules: {e}")));
        }
        self.director = d;
        self.director_changed();
        self.log
            .push((self.t(), "director failover (no sync)".into()));
    }

    // ----- sampling ------------------------------------------------------------------------

    /// A response time of service `svc` served by `srv`, for its histograms.
    #[inline]
    fn record(&mut self, svc: u16, srv: u16, rt: u64) {
        let i = buckets::index(rt.max(1));
        let a = &mut self.svc_acc[svc as usize];
        a.rt.add(i);
        a.sum += rt as u128;
        let a = &mut self.srv_acc[srv as usize];
        a.rt.add(i);
        a.sum += rt as u128;
        self.series.record_index(svc as usize, i);
    }

    /// A response to a request made during the warm-up: in the time series (which covers
    /// the whole run, as its utilisation and failures do), not in the run's response-time
    /// statistics (which exclude the warm-up); in the throughput when it comes after the
    /// warm-up.
    #[cold]
    #[inline(never)]
    fn warmup_response(&mut self, svc: u16, srv: u16, rt: u64) {
        self.series.record(svc as usize, rt);
        if self.now >= self.warm {
            self.svc_acc[svc as usize].early += 1;
            self.srv_acc[srv as usize].early += 1;
        }
    }

    fn sample(&mut self) {
        for i in 0..self.srv.len() {
            self.accrue(i);
        }
        let dt = self.sample_every as f64 / 1e9;
        let mut counts = Vec::with_capacity(self.srv.len());
        let all = self.director.all_dests();
        for (i, sm) in self.m.servers.iter().enumerate() {
            let (mut a, mut ina) = (0u32, 0u32);
            for (_, cfg, info, _) in &all {
                if cfg.addr == sm.addr.ip() && cfg.port == sm.addr.port() {
                    a += info.activeconns;
                    ina += info.inactconns;
                }
            }
            let acc = &mut self.srv_acc[i];
            counts.push((
                a,
                ina,
                acc.iv_n / dt,
                acc.iv_busy / (dt * sm.workers as f64),
                self.srv[i].up,
            ));
            acc.iv_n = 0.0;
            acc.iv_busy = 0.0;
        }
        self.series.sample(self.t(), dt, counts);
    }

    fn finish(self) -> RunResult {
        let measured = (self.end - self.warm) as f64 / 1e9;
        crate::results::finish(
            self.m,
            self.rep,
            measured,
            self.svc_acc,
            self.srv_acc,
            self.series,
            self.log,
            crate::results::Counters {
                events: self.events,
                packets: self.packets,
                connections: self.conns_total,
                in_flight_at_end: self.in_flight,
                peak_in_flight: self.peak_in_flight,
                director_table_at_end: self.director.table().len() as u64,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{ns, Engine};
    use crate::model::Model;

    /// A replication's results and its director's entries at the end, with or without the
    /// packets the engine leaves out.
    fn run_both(m: &Model) -> [String; 2] {
        [true, false].map(|skip| {
            let mut e = Engine::new(m, 0);
            e.skip_noops = skip;
            e.run_events(None).unwrap();
            // Every entry as it is, but for its count of client packets, which only sync
            // thresholds read (never skipped with sync).
            let conns: Vec<_> = e
                .director
                .table()
                .iter()
                .map(|c| lvs_core::conn::Conn { in_pkts: 0, ..c })
                .collect();
            let next = e.director.poll_timeout();
            let counts = e.director.all_dests();
            format!("{:?}\n{conns:?}\n{next:?}\n{counts:?}", e.finish())
        })
    }

    /// NAT farms whose connections cross every case of `last_response_subsumed` and
    /// `changes_state`: timeouts shorter and longer than the work (entries that expire in
    /// service, a FIN timeout above the ESTABLISHED one), keep-alive connections with think
    /// times, client ports used again, two services; and DR.
    #[test]
    fn packets_left_out_change_nothing() {
        let farm = |set: &str, method: &str, rate: f64, work: f64, extra: &str| {
            let mut rules =
                format!("{set}\n-A -t 192.0.2.10:80 -s wlc\n-A -t 192.0.2.11:80 -s rr\n");
            for i in 1..=4 {
                rules += &format!("-a -t 192.0.2.10:80 -r 10.0.0.{i}:80 {method}\n");
                rules += &format!("-a -t 192.0.2.11:80 -r 10.0.0.{i}:80 {method}\n");
            }
            let text = format!(
                r#"
duration = 30.0
rules = """
{rules}"""
[[workload]]
service = "192.0.2.10:80"
arrival = {{ kind = "poisson", rate = {rate} }}
work = {{ kind = "exp", mean = {work} }}
{extra}
[server_defaults]
workers = 2
backlog = 50
"#
            );
            Model::from_toml(&text, None).unwrap()
        };
        let many = "clients = { count = 100000 }";
        let keep_alive = "clients = { count = 100000 }
requests = { kind = \"geometric\", mean = 3.0 }
think = { kind = \"exp\", mean = 0.5 }";
        let two = r#"clients = { count = 100000 }
[[workload]]
service = "192.0.2.11:80"
arrival = { kind = "poisson", rate = 50.0 }
clients = { count = 3 }
work = { kind = "exp", mean = 0.01 }"#;
        // Rule changes (health checks remove and add a failing server, with and without
        // expire_nodest_conn) and a failover while connections are in service: the engine's
        // epoch changes under them.
        let changes = |nodest: bool| {
            format!(
                r#"clients = {{ count = 100000 }}
[director]
expire_nodest_conn = {nodest}
[[server]]
addr = "10.0.0.2:80"
failures = [{{ at = 6.0, repair = 12.0 }}, {{ at = 18.0 }}]
[[server]]
addr = "10.0.0.3:80"
failures = [{{ at = 9.5, repair = 9.9 }}]
[failover]
at = 15.0
sync = false
[health]
delay_loop = 1.0
connect_timeout = 0.5
retry = 0
delay_before_retry = 0.2
inhibit_on_failure = false
quorum = 1
hysteresis = 0
probe_time = 0.001"#
            )
        };
        for m in [
            farm("", "-m", 400.0, 0.004, many),
            farm("", "-m", 300.0, 0.05, &changes(false)),
            farm("--set 2 1 1", "-m", 40.0, 0.5, &changes(true)),
            farm("--set 2 1 1", "-m", 10.0, 1.0, many),
            farm("--set 1 3 1", "-m", 10.0, 1.0, many),
            // The FIN's state (CLOSE_WAIT, 60 s) is due before the response's (61 s) but,
            // for a response a second or more after its request, not before the entry.
            farm("--set 61 1 1", "-m", 10.0, 1.0, many),
            farm("--set 3 1 1", "-m", 40.0, 0.2, keep_alive),
            farm("", "-m", 400.0, 0.004, "clients = { count = 5 }"),
            farm("", "-g", 400.0, 0.004, many),
            farm("--set 2 1 1", "-m", 10.0, 1.0, two),
        ]
        .iter()
        .enumerate()
        {
            let [a, b] = run_both(m.1);
            let at = a.lines().zip(b.lines()).position(|(x, y)| x != y);
            assert!(a == b, "farm {}: outputs differ at line {at:?}", m.0);
        }
    }

    /// The original definition.
    fn ns_round(s: f64) -> u64 {
        if s <= 0.0 {
            0
        } else {
            (s * 1e9).round().min(u64::MAX as f64 / 2.0) as u64
        }
    }

    /// [`super::TableTimes::fin_first`], when it answers, answers as the table's deadlines
    /// do: ticks of 1 ns, 125 ms (the default) and 1 s, timeouts around each other and around
    /// the clamp, times around the end of `u64`.
    #[test]
    fn fin_first_compares_as_the_deadlines() {
        use lvs_core::conn::{ConnTable, ConnTableConfig, HashKey};
        use lvs_core::time::{Duration, Instant};
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut answered = 0;
        for tick in [1, 125_000_000, 1_000_000_000u64] {
            let mut cfg = ConnTableConfig::new(16, HashKey::from_u128(1));
            cfg.tick = Duration::from_nanos(tick);
            let table = ConnTable::new(cfg);
            let times = super::TableTimes::of(&table);
            assert_eq!(times.tick, tick);
            assert_eq!(times.max, tick << 30);
            let near = |r: u64, at: u64| at.saturating_add(r % (4 * tick)).saturating_sub(2 * tick);
            for _ in 0..200_000 {
                let pick = |r: u64| match r % 4 {
                    0 => r >> 2,
                    1 => near(r >> 2, times.max),
                    2 => (r >> 2) % (1000 * tick),
                    _ => near(r >> 2, u64::MAX),
                };
                let now = pick(rnd());
                let fin = pick(rnd());
                let other = match rnd() % 3 {
                    0 => pick(rnd()),
                    1 => near(rnd(), fin),
                    _ => fin.saturating_add(tick),
                };
                let expires = match rnd() % 2 {
                    0 => table.due(Instant::from_nanos(now), Duration::from_nanos(pick(rnd()))),
                    _ => Instant::from_nanos(near(rnd(), now.saturating_add(fin)) / tick * tick),
                };
                let (fin, other) = (Duration::from_nanos(fin), Duration::from_nanos(other));
                if let Some(first) = times.fin_first(now, fin, other, expires.as_nanos()) {
                    answered += 1;
                    assert_eq!(
                        first,
                        Engine::fin_first_due(&table, now, fin, other, expires),
                        "tick {tick} now {now} fin {fin:?} other {other:?} expires {expires:?}"
                    );
                }
            }
        }
        assert!(answered > 100_000, "{answered}");
    }

    #[test]
    fn ns_rounds_like_f64_round() {
        let mut v = vec![
            0.0,
            -0.0,
            -1.0,
            1e-9,
            0.5e-9,
            f64::from_bits(0.5f64.to_bits() - 1) * 1e-9,
            f64::from_bits(0.5f64.to_bits() - 1),
            1.5e-9,
            2.5e-9,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            1.0,
            9.223372036854775e9,
            9.223372036854776e9,
            9.3e9,
            1e300,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1_000_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(f64::from_bits(x));
            // Near halves of a nanosecond, over every magnitude.
            let k = (x >> 11) as f64 / (1u64 << (x % 53)) as f64;
            v.push((k + 0.5) / 1e9);
            v.push((k.floor() + 0.5) / 1e9);
        }
        for s in v {
            assert_eq!(ns(s), ns_round(s), "{s:e}");
        }
    }
}
