//! `lvs-tun run`: the device, the workers, the timer, signals, control socket and metrics.
//!
//! ## One director behind a lock, one worker per queue
//! All queues share one [`Director`] behind a mutex rather than one director per queue:
//! - the kernel's multi-queue tun hashes each flow onto one queue (flows stay on a queue), but
//!   a NAT reply comes from the real server with a different 4-tuple hash than the client's
//!   packets, so it can land on another queue. A per-queue shard would not find the
//!   connection; a shared table does.
//! - schedulers (rr, wlc, ...) must see every connection of a service to balance as IPVS does;
//!   shards would each run their own round robin.
//! - the control socket, health checks, listings and metrics act on one state.
//!
//! The lock is held for one `handle_packet` call (a few hundred nanoseconds); the device
//! reads and writes, the expensive part, run outside it and in parallel.
//!
//! Time: `now` is read while the lock is held, so the director never sees time going
//! backwards across workers.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration as StdDuration;

use lvs_core::conn::HashKey;
use lvs_core::director::{Director, DirectorConfig, PacketConfig, PacketVerdict};
use lvs_core::rules::RuleSet;
use lvs_core::wire::ethertype;
use lvs_core::Instant;
use tracing::{info, warn};
use tun_rs::{DeviceBuilder, InterruptEvent, Layer, SyncDevice};

use crate::counters::{Drop, Drops, QueueStats};
use crate::neigh::{self, Neighbours};

/// Free bytes in front of each packet for tunnel headers (IPv6 + UDP + GUE + room) and, on a
/// tap, the Ethernet header.
pub const HEADROOM: usize = 128;
/// Largest packet read from the device.
pub const MAX_PACKET: usize = 65_535 + 18;
/// Room for an ICMP error the director builds (any IPv6 one fits in 1280 bytes).
const REPLY_ROOM: usize = 1280;
/// Longest a worker blocks in a read before checking for shutdown.
const READ_TIMEOUT: StdDuration = StdDuration::from_millis(250);

/// Errors of `lvs-tun run` at start-up.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The rules file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The rules file does not parse or the kernel would refuse it (line and column).
    #[error("{path}: {message}")]
    Rules {
        /// The file.
        path: PathBuf,
        /// The error naming line and column.
        message: String,
    },
    /// Opening or configuring the device failed.
    #[error("device {dev}: {source}")]
    Device {
        /// Device name.
        dev: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The options contradict each other.
    #[error("{0}")]
    Config(String),
    /// keepalived.conf does not parse (file, line and column).
    #[error("{0}")]
    Keepalived(String),
    /// Something else at start-up (socket, metrics listener, threads, signals).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: io::Error,
    },
}

/// Options of `lvs-tun run`.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The rules file (ipvsadm `-S -n` / `-R` language), re-read on SIGHUP.
    pub rules: Option<PathBuf>,
    /// keepalived.conf: services, real servers and health checks (instead of `rules`).
    pub keepalived: Option<PathBuf>,
    /// Device name.
    pub dev: String,
    /// Tap (L2, DR) instead of tun (L3).
    pub tap: bool,
    /// Number of device queues (and workers).
    pub queues: usize,
    /// The director's own addresses (tunnel sources, ICMP error sources).
    pub locals: Vec<IpAddr>,
    /// The runtime's MAC on a tap device.
    pub mac: [u8; 6],
    /// Control socket path.
    pub socket: Option<PathBuf>,
    /// Metrics listen address (loopback).
    pub metrics: Option<SocketAddr>,
    /// Connection table capacity.
    pub conn_capacity: u32,
    /// Forward every packet back unchanged without the director (the raw ceiling, for
    /// benchmarks).
    pub raw: bool,
    /// Switch to this user (and its group, no supplementary groups) once the device, the
    /// sockets and the signal handlers are set up: nothing after start-up needs root.
    pub user: Option<String>,
    /// How long a worker keeps reading without sleeping once its queue is empty (0: sleep at
    /// once). Lowers latency at the cost of CPU.
    pub busy_poll: StdDuration,
    /// Role management and connection sync (`--role`, `--sync-dev`); none: a standalone
    /// director that always forwards.
    pub sync: Option<crate::sync::SyncOptions>,
}

/// What every thread shares.
pub struct Shared {
    director: Mutex<Director>,
    clock: std::time::Instant,
    /// Drop counters.
    pub drops: Drops,
    /// Per-queue counters.
    pub queues: Vec<QueueStats>,
    /// Learned MACs (tap).
    pub neigh: Neighbours,
    stop: AtomicBool,
    event: InterruptEvent,
    /// The rules file, re-read on SIGHUP (none with keepalived.conf).
    pub rules_path: Option<PathBuf>,
    /// Whether the device is a tap.
    pub tap: bool,
    /// The role (master / backup ...) when the daemon runs with `--role` or `--sync-dev`.
    pub role: Option<crate::sync::RoleControl>,
}

impl Shared {
    /// Locks the director (a poisoned lock is taken over: the director's state is valid
    /// between calls).
    pub fn director(&self) -> MutexGuard<'_, Director> {
        self.director.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current time on the director's clock (call with the lock held if it is passed
    /// to the director).
    pub fn now(&self) -> Instant {
        let ns = self
            .clock
            .elapsed()
            .as_nanos()
            .min(u128::from(u64::MAX / 2)) as u64;
        // Start at 1 s: some expiries are computed backwards from `now`.
        Instant::from_nanos(ns + 1_000_000_000)
    }

    /// Asks every thread to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.event.trigger();
    }

    /// Whether the workers forward: always for a standalone director, only as master when a
    /// role is managed.
    pub fn forwards(&self) -> bool {
        self.role.as_ref().is_none_or(|r| r.forwards())
    }

    /// Whether a stop was asked.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Re-reads the rules file and applies it atomically; logs one line per change.
    pub fn reload(&self) -> Result<(), RunError> {
        let Some(path) = &self.rules_path else {
            return Err(RunError::Config(
                "no rules file to reload (keepalived.conf is read at start only)".into(),
            ));
        };
        let rules = load_rules(path)?;
        let mut d = self.director();
        let now = self.now();
        let diff = d.apply_rules(now, &rules).map_err(|e| RunError::Rules {
            path: path.clone(),
            message: e.to_string(),
        })?;
        drop(d);
        info!(
            services_added = diff.services_added.len(),
            services_removed = diff.services_removed.len(),
            services_edited = diff.services_edited.len(),
            "rules reloaded from {}",
            path.display()
        );
        Ok(())
    }
}

/// Reads and parses a rules file.
pub fn load_rules(path: &Path) -> Result<RuleSet, RunError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunError::Read {
        path: path.to_owned(),
        source,
    })?;
    RuleSet::from_text(&text).map_err(|e| RunError::Rules {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// 16 bytes from the kernel's CSPRNG (the connection table's hash key, the scheduler seed).
fn random_u128() -> u128 {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = io::Read::read_exact(&mut f, &mut b);
    }
    u128::from_le_bytes(b)
}

/// The packet configuration from `--local` addresses (the first of each family).
pub fn packet_config(locals: &[IpAddr]) -> PacketConfig {
    let mut p = PacketConfig::default();
    if let Some(v4) = locals.iter().find_map(|a| match a {
        IpAddr::V4(v) => Some(*v),
        _ => None,
    }) {
        p.local_v4 = v4;
    }
    if let Some(v6) = locals.iter().find_map(|a| match a {
        IpAddr::V6(v) => Some(*v),
        _ => None,
    }) {
        p.local_v6 = v6;
    }
    p
}

/// Opens the device with `queues` queues.
pub fn open_device(dev: &str, tap: bool, queues: usize) -> Result<Vec<SyncDevice>, RunError> {
    let err = |source| RunError::Device {
        dev: dev.to_owned(),
        source,
    };
    let mut b = DeviceBuilder::new()
        .name(dev)
        .layer(if tap { Layer::L2 } else { Layer::L3 });
    if queues > 1 {
        b = b.multi_queue(true);
    }
    let first = b.build_sync().map_err(err)?;
    let mut devs = Vec::with_capacity(queues);
    for _ in 1..queues {
        devs.push(first.try_clone().map_err(err)?);
    }
    devs.insert(0, first);
    for d in &devs {
        d.set_nonblocking(true).map_err(err)?;
    }
    Ok(devs)
}

/// Runs the daemon until SIGTERM / SIGINT (or [`Shared::stop`]).
pub fn run(cfg: RunConfig) -> Result<(), RunError> {
    let (rules, plan) = match (&cfg.rules, &cfg.keepalived) {
        (Some(p), None) => (load_rules(p)?, None),
        (None, Some(k)) => {
            let kc = crate::health::load(k).map_err(RunError::Keepalived)?;
            for w in &kc.warnings {
                warn!("{}:{}:{}: {}", w.file, w.line, w.column, w.message);
            }
            let plan = crate::health::plan(&kc);
            (plan.services.clone(), Some(plan))
        }
        _ => {
            return Err(RunError::Config(
                "give exactly one of --rules and --keepalived".into(),
            ))
        }
    };
    let rules_label = cfg
        .rules
        .clone()
        .or(cfg.keepalived.clone())
        .unwrap_or_default();
    let mut dc = DirectorConfig::new(cfg.conn_capacity, HashKey::from_u128(random_u128()));
    dc.packet = packet_config(&cfg.locals);
    dc.rng_seed = random_u128() as u64;
    let mut director = Director::new(dc);
    director
        .apply_rules(Instant::from_secs(1), &rules)
        .map_err(|e| RunError::Rules {
            path: rules_label.clone(),
            message: e.to_string(),
        })?;
    let (role, sockets) = match &cfg.sync {
        None => (None, None),
        Some(o) => {
            let mc = lvs_core::director::SyncMasterConfig {
                syncid: o.syncid,
                maxlen: o.maxlen.clamp(1, 65_507),
                ..Default::default()
            };
            director.set_sync_backup(lvs_core::director::SyncBackupConfig {
                syncid: o.syncid,
                ..Default::default()
            });
            let sockets = match &o.dev {
                Some(dev) => {
                    Some(
                        crate::sync::open(dev, o.group, o.ttl).map_err(|source| RunError::Io {
                            what: format!("sync sockets on {dev} ({})", o.group),
                            source,
                        })?,
                    )
                }
                None => None,
            };
            let rc = crate::sync::RoleControl::new(&mut director, o.dev.is_some(), mc, o.role);
            info!(
                role = crate::sync::role_name(o.role),
                sync_dev = o.dev.as_deref().unwrap_or("-"),
                syncid = o.syncid,
                "role at start"
            );
            (Some(rc), sockets)
        }
    };
    let devs = open_device(&cfg.dev, cfg.tap, cfg.queues.max(1))?;
    let event = InterruptEvent::new().map_err(|source| RunError::Io {
        what: "interrupt event".into(),
        source,
    })?;
    let shared = Arc::new(Shared {
        director: Mutex::new(director),
        clock: std::time::Instant::now(),
        drops: Drops::default(),
        queues: (0..devs.len()).map(|_| QueueStats::default()).collect(),
        neigh: Neighbours::default(),
        stop: AtomicBool::new(false),
        event,
        rules_path: cfg.rules.clone(),
        tap: cfg.tap,
        role,
    });
    info!(
        dev = %cfg.dev,
        tap = cfg.tap,
        queues = devs.len(),
        services = rules.len(),
        "lvs-tun running"
    );

    let mut threads = Vec::new();
    let spawn_err = |source| RunError::Io {
        what: "thread".into(),
        source,
    };
    if let Some(path) = &cfg.socket {
        let listener = crate::ctl::bind(path).map_err(|source| RunError::Io {
            what: format!("control socket {}", path.display()),
            source,
        })?;
        let s = shared.clone();
        threads.push(
            thread::Builder::new()
                .name("ctl".into())
                .spawn(move || crate::ctl::serve(listener, &s))
                .map_err(spawn_err)?,
        );
    }
    if let Some(addr) = cfg.metrics {
        let listener = crate::metrics::bind(addr).map_err(|source| RunError::Io {
            what: format!("metrics {addr}"),
            source,
        })?;
        let s = shared.clone();
        threads.push(
            thread::Builder::new()
                .name("metrics".into())
                .spawn(move || crate::metrics::serve(listener, &s))
                .map_err(spawn_err)?,
        );
    }
    let devs: Vec<Arc<SyncDevice>> = devs.into_iter().map(Arc::new).collect();
    {
        let s = shared.clone();
        // On a tap the timer also resolves the real servers' MACs ahead of traffic.
        let resolver = cfg.tap.then(|| (devs[0].clone(), cfg.mac));
        threads.push(
            thread::Builder::new()
                .name("timer".into())
                .spawn(move || timer(&s, resolver))
                .map_err(spawn_err)?,
        );
    }
    if let Some(plan) = plan {
        let s = shared.clone();
        let seed = random_u128() as u64;
        threads.push(
            thread::Builder::new()
                .name("health".into())
                .spawn(move || crate::health::run(s, plan, seed))
                .map_err(spawn_err)?,
        );
    }
    if let Some(sk) = sockets {
        let crate::sync::SyncSockets { tx, rx, group } = sk;
        let s = shared.clone();
        threads.push(
            thread::Builder::new()
                .name("sync-send".into())
                .spawn(move || crate::sync::send_loop(&s, &tx, group))
                .map_err(spawn_err)?,
        );
        let s = shared.clone();
        threads.push(
            thread::Builder::new()
                .name("sync-recv".into())
                .spawn(move || crate::sync::recv_loop(&s, &rx))
                .map_err(spawn_err)?,
        );
    }
    let signals = spawn_signals(shared.clone())?;
    if let Some(user) = &cfg.user {
        drop_privileges(user)?;
        info!(user = %user, "privileges dropped");
    }
    for (i, dev) in devs.into_iter().enumerate() {
        let s = shared.clone();
        let cfg = cfg.clone();
        threads.push(
            thread::Builder::new()
                .name(format!("queue{i}"))
                .spawn(move || worker(i, &dev, &s, &cfg))
                .map_err(spawn_err)?,
        );
    }
    for t in threads {
        let _ = t.join();
    }
    signals.close();
    if let Some(path) = &cfg.socket {
        let _ = std::fs::remove_file(path);
    }
    info!("lvs-tun stopped");
    Ok(())
}

/// Becomes `name`: no supplementary groups, its primary group, its uid.
fn drop_privileges(name: &str) -> Result<(), RunError> {
    use nix::unistd::{setgid, setgroups, setuid, User};
    let err = |e: nix::Error| RunError::Io {
        what: format!("switching to user {name}"),
        source: io::Error::from(e),
    };
    let user = User::from_name(name)
        .map_err(err)?
        .ok_or_else(|| RunError::Config(format!("no user named {name}")))?;
    setgroups(&[]).map_err(err)?;
    setgid(user.gid).map_err(err)?;
    setuid(user.uid).map_err(err)?;
    Ok(())
}

fn spawn_signals(shared: Arc<Shared>) -> Result<signal_hook::iterator::Handle, RunError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM]).map_err(|source| {
            RunError::Io {
                what: "signals".into(),
                source,
            }
        })?;
    let handle = signals.handle();
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    match shared.reload() {
                        Ok(()) => {}
                        Err(e) => warn!("reload refused, rules unchanged: {e}"),
                    }
                } else {
                    info!(signal = sig, "stopping");
                    shared.stop();
                }
            }
        })
        .map_err(|source| RunError::Io {
            what: "thread".into(),
            source,
        })?;
    Ok(handle)
}

/// How often the real servers' MACs are asked for again on a tap (missing ones every tick).
const RESOLVE_REFRESH: StdDuration = StdDuration::from_secs(30);

/// Asks for the MAC of every real server: the missing ones, or all with `all`.
fn resolve(shared: &Shared, dev: &SyncDevice, mac: [u8; 6], all: bool) {
    let addrs: Vec<IpAddr> = {
        let d = shared.director();
        d.rules()
            .services()
            .flat_map(|(_, dests)| dests.iter().map(|x| x.addr))
            .collect()
    };
    for a in addrs {
        if all || shared.neigh.get(a).is_none() {
            let _ = dev.send(&neigh::request(a, mac));
        }
    }
}

/// Calls `handle_timeout` at the director's `poll_timeout` deadlines; on a tap, also keeps
/// the real servers' MACs resolved.
fn timer(shared: &Shared, resolver: Option<(Arc<SyncDevice>, [u8; 6])>) {
    let mut last_resolve: Option<std::time::Instant> = None;
    let mut last_refresh = std::time::Instant::now();
    while !shared.stopping() {
        if let Some((dev, mac)) = &resolver {
            if last_resolve.is_none_or(|t| t.elapsed() >= StdDuration::from_millis(500)) {
                let all = last_refresh.elapsed() >= RESOLVE_REFRESH;
                if all {
                    last_refresh = std::time::Instant::now();
                }
                resolve(shared, dev, *mac, all);
                last_resolve = Some(std::time::Instant::now());
            }
        }
        let wait = {
            let mut d = shared.director();
            let now = shared.now();
            let mut rounds = 0;
            while d.poll_timeout().is_some_and(|t| t <= now) && rounds < 64 {
                if !d.handle_timeout(now) {
                    break;
                }
                rounds += 1;
            }
            match d.poll_timeout() {
                Some(t) if t > now => StdDuration::from_nanos((t - now).as_nanos()),
                Some(_) => StdDuration::from_millis(1),
                None => READ_TIMEOUT,
            }
        };
        thread::sleep(wait.clamp(StdDuration::from_millis(1), READ_TIMEOUT));
    }
}

/// One queue's loop: read, decide, write; never stops on a bad packet.
fn worker(queue: usize, dev: &SyncDevice, shared: &Shared, cfg: &RunConfig) {
    let mut buf = vec![0u8; HEADROOM + MAX_PACKET];
    let mut out = vec![0u8; REPLY_ROOM];
    let stats = &shared.queues[queue];
    // On a tap the frame is read 14 bytes before HEADROOM so the IP packet starts there.
    let at = if cfg.tap { HEADROOM - 14 } else { HEADROOM };
    while !shared.stopping() {
        // Fast path: one plain read while packets are queued; poll (with the stop event and
        // a timeout) only when the queue is empty.
        let n = match dev
            .recv(&mut buf[at..])
            .or_else(|e| match e.kind() {
                io::ErrorKind::WouldBlock => busy_poll(dev, &mut buf[at..], cfg.busy_poll),
                _ => Err(e),
            })
            .or_else(|e| match e.kind() {
                io::ErrorKind::WouldBlock => {
                    dev.recv_intr_timeout(&mut buf[at..], &shared.event, Some(READ_TIMEOUT))
                }
                _ => Err(e),
            }) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::WouldBlock
                ) =>
            {
                continue
            }
            Err(e) => {
                stats.read_errors.fetch_add(1, Ordering::Relaxed);
                warn!(queue, "read: {e}");
                thread::sleep(StdDuration::from_millis(10));
                continue;
            }
        };
        stats.rx(n);
        if cfg.raw {
            send(dev, &buf[at..at + n], shared, stats);
            continue;
        }
        if cfg.tap {
            handle_frame(dev, &mut buf, n, &mut out, shared, stats, cfg.mac);
        } else {
            handle_ip(dev, &mut buf, n, &mut out, shared, stats);
        }
    }
}

/// Keeps reading without sleeping for up to `spin` after the queue ran empty: the next packet
/// of a request/response exchange often follows within microseconds, and a sleep in poll and
/// the wake-up cost more than that. `WouldBlock` when nothing came.
fn busy_poll(dev: &SyncDevice, buf: &mut [u8], spin: StdDuration) -> io::Result<usize> {
    if spin.is_zero() {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    let until = std::time::Instant::now() + spin;
    loop {
        match dev.recv(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() >= until {
                    return Err(e);
                }
                std::hint::spin_loop();
            }
            r => return r,
        }
    }
}

fn send(dev: &SyncDevice, bytes: &[u8], shared: &Shared, stats: &QueueStats) {
    // A full device queue or a bad packet refused by the kernel costs this packet only.
    match dev.send(bytes) {
        Ok(_) => stats.tx(bytes.len()),
        Err(_) => shared.drops.add(Drop::WriteError),
    }
}

/// Runs the director on `buf[HEADROOM..HEADROOM + n]`.
fn decide(buf: &mut [u8], n: usize, out: &mut [u8], shared: &Shared) -> PacketVerdict {
    let mut d = shared.director();
    let now = shared.now();
    d.handle_packet(now, &mut buf[..HEADROOM + n], HEADROOM, out)
}

/// What a worker does with one packet or frame read from the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write `buf[range]`.
    Send(std::ops::Range<usize>),
    /// Count the drop and write `out[range]`, the ICMP error built instead (tun).
    Reply(std::ops::Range<usize>, Drop),
    /// Write this frame (an ICMP error or a neighbour request on a tap) and count the drop.
    SendFrame(Vec<u8>, Drop),
    /// Nothing to write or count (ARP and neighbour discovery, learned from).
    Nothing,
    /// Count the drop.
    Drop(Drop),
}

/// The step for a verdict on a tun (the IP packet at `buf[HEADROOM..]`).
pub fn ip_step(v: PacketVerdict) -> Step {
    match v {
        PacketVerdict::Forward { start, len, .. } => Step::Send(start..start + len),
        PacketVerdict::Reply { reason, start, len } => {
            Step::Reply(start..start + len, Drop::Xmit(reason))
        }
        PacketVerdict::Local { .. } => Step::Drop(Drop::LocalNode),
        PacketVerdict::NotOurs => Step::Drop(Drop::NotOurs),
        PacketVerdict::Drop(r) => Step::Drop(r.into()),
    }
}

fn ethertype_of(ip: &[u8]) -> u16 {
    if ip.first().is_some_and(|b| b >> 4 == 6) {
        ethertype::IPV6
    } else {
        ethertype::IPV4
    }
}

/// The step for an Ethernet frame read from a tap into `buf[HEADROOM - 14..HEADROOM - 14 + n]`
/// (so the IP packet starts at `HEADROOM`). `decide` runs the director on the IP packet.
/// Forwarded packets get the next hop's MAC (learned in `neigh`; a request is sent instead
/// while it is unknown) and `mac` as source; NAT replies and ICMP errors go back to the
/// frame's sender (the router the client's packets came through).
pub fn frame_step(
    buf: &mut [u8],
    n: usize,
    out: &mut [u8],
    neigh: &Neighbours,
    mac: [u8; 6],
    decide: impl FnOnce(&mut [u8], usize, &mut [u8]) -> PacketVerdict,
) -> Step {
    let at = HEADROOM - 14;
    if n < 14 || buf.len() < at + n {
        return Step::Drop(Drop::Malformed);
    }
    let frame = &buf[at..at + n];
    if neigh.learn_from_frame(frame) {
        return Step::Nothing;
    }
    let et = u16::from_be_bytes([frame[12], frame[13]]);
    if et != ethertype::IPV4 && et != ethertype::IPV6 {
        return Step::Drop(Drop::NonIp);
    }
    let mut sender = [0u8; 6];
    sender.copy_from_slice(&frame[6..12]);
    match decide(buf, n - 14, out) {
        PacketVerdict::Forward {
            start,
            len,
            next_hop,
            reply,
            ..
        } => {
            let dst = if reply {
                Some(sender)
            } else {
                neigh.get(next_hop)
            };
            let Some(dst) = dst else {
                return Step::SendFrame(neigh::request(next_hop, mac), Drop::NeighMiss);
            };
            if start < 14 {
                return Step::Drop(Drop::Xmit(lvs_core::xmit::DropReason::NoRoom));
            }
            let f = start - 14;
            let et = ethertype_of(&buf[start..start + len]);
            buf[f..f + 6].copy_from_slice(&dst);
            buf[f + 6..f + 12].copy_from_slice(&mac);
            buf[f + 12..f + 14].copy_from_slice(&et.to_be_bytes());
            Step::Send(f..start + len)
        }
        PacketVerdict::Reply { reason, start, len } => {
            let Some(ip) = out.get(start..start + len) else {
                return Step::Drop(Drop::Xmit(reason));
            };
            let mut f = Vec::with_capacity(14 + len);
            f.extend_from_slice(&sender);
            f.extend_from_slice(&mac);
            f.extend_from_slice(&ethertype_of(ip).to_be_bytes());
            f.extend_from_slice(ip);
            Step::SendFrame(f, Drop::Xmit(reason))
        }
        v => match ip_step(v) {
            Step::Drop(d) => Step::Drop(d),
            _ => Step::Nothing,
        },
    }
}

fn apply_step(
    dev: &SyncDevice,
    step: Step,
    buf: &[u8],
    out: &[u8],
    shared: &Shared,
    stats: &QueueStats,
) {
    match step {
        Step::Send(r) => send(dev, &buf[r], shared, stats),
        Step::Reply(r, d) => {
            shared.drops.add(d);
            stats.icmp_errors.fetch_add(1, Ordering::Relaxed);
            send(dev, &out[r], shared, stats);
        }
        Step::SendFrame(f, d) => {
            shared.drops.add(d);
            if matches!(d, Drop::Xmit(_)) {
                stats.icmp_errors.fetch_add(1, Ordering::Relaxed);
            }
            send(dev, &f, shared, stats);
        }
        Step::Nothing => {}
        Step::Drop(d) => shared.drops.add(d),
    }
}

fn handle_ip(
    dev: &SyncDevice,
    buf: &mut [u8],
    n: usize,
    out: &mut [u8],
    shared: &Shared,
    stats: &QueueStats,
) {
    if !shared.forwards() {
        shared.drops.add(Drop::Backup);
        return;
    }
    let step = ip_step(decide(buf, n, out, shared));
    apply_step(dev, step, buf, out, shared, stats);
}

fn handle_frame(
    dev: &SyncDevice,
    buf: &mut [u8],
    n: usize,
    out: &mut [u8],
    shared: &Shared,
    stats: &QueueStats,
    mac: [u8; 6],
) {
    let step = if shared.forwards() {
        frame_step(buf, n, out, &shared.neigh, mac, |b, n, o| {
            decide(b, n, o, shared)
        })
    } else {
        // A standby still learns neighbours (ready to take over) but forwards nothing.
        match frame_step(buf, n, out, &shared.neigh, mac, |_, _, _| {
            PacketVerdict::NotOurs
        }) {
            Step::Drop(Drop::NotOurs) => Step::Drop(Drop::Backup),
            other => other,
        }
    };
    apply_step(dev, step, buf, out, shared, stats);
}

/// Parses a MAC written `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("{s:?}: a MAC has six colon-separated bytes"));
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        mac[i] =
            u8::from_str_radix(p, 16).map_err(|_| format!("{s:?}: byte {} is not hex", i + 1))?;
    }
    Ok(mac)
}

/// The unspecified addresses, for configurations without `--local`.
pub const UNSPECIFIED: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
];

#[cfg(test)]
mod tests {
    use super::*;

    use lvs_core::wire::classify;

    const MAC: [u8; 6] = [2, 0x1b, 0x5f, 0, 0, 1];
    const ROUTER: [u8; 6] = [2, 0, 0, 0, 0, 0xee];
    const RS_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];

    fn director(rules: &str) -> Director {
        let mut d = Director::new(DirectorConfig::new(1024, HashKey::from_u128(3)));
        d.apply_rules(Instant::from_secs(1), &RuleSet::from_text(rules).unwrap())
            .unwrap();
        d
    }

    fn syn(sport: u16) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 2], [10, 100, 0, 1], 64)
            .tcp(sport, 80, 1, 1024)
            .syn();
        let mut v = Vec::new();
        b.write(&mut v, b"").unwrap();
        v
    }

    /// `buf` with the frame read where a tap worker reads it.
    fn framed(ethertype: u16, payload: &[u8]) -> (Vec<u8>, usize) {
        let mut buf = vec![0u8; HEADROOM + 2048];
        let at = HEADROOM - 14;
        buf[at..at + 6].copy_from_slice(&MAC);
        buf[at + 6..at + 12].copy_from_slice(&ROUTER);
        buf[at + 12..at + 14].copy_from_slice(&ethertype.to_be_bytes());
        buf[HEADROOM..HEADROOM + payload.len()].copy_from_slice(payload);
        (buf, 14 + payload.len())
    }

    #[test]
    fn dr_frame_resolves_then_forwards_with_the_real_servers_mac() {
        let mut d = director("-A -t 10.100.0.1:80 -s rr\n-a -t 10.100.0.1:80 -r 10.0.1.11:80 -g\n");
        let neigh = Neighbours::default();
        let mut out = vec![0u8; REPLY_ROOM];
        let mut run = |buf: &mut Vec<u8>, n: usize, out: &mut Vec<u8>| {
            frame_step(buf, n, out, &neigh, MAC, |b, n, o| {
                d.handle_packet(Instant::from_secs(2), &mut b[..HEADROOM + n], HEADROOM, o)
            })
        };
        // Unknown MAC: an ARP probe for the real server goes out instead.
        let (mut buf, n) = framed(ethertype::IPV4, &syn(40000));
        let Step::SendFrame(req, Drop::NeighMiss) = run(&mut buf, n, &mut out) else {
            panic!("expected a neighbour request")
        };
        assert_eq!(&req[38..42], &[10, 0, 1, 11]);
        // The real server answers; the frame is learned from, nothing is forwarded.
        let mut reply = req.clone();
        reply[0..6].copy_from_slice(&MAC);
        reply[6..12].copy_from_slice(&RS_MAC);
        reply[21] = 2;
        reply[22..28].copy_from_slice(&RS_MAC);
        reply[28..32].copy_from_slice(&[10, 0, 1, 11]);
        let mut rbuf = vec![0u8; HEADROOM + 2048];
        rbuf[HEADROOM - 14..HEADROOM - 14 + reply.len()].copy_from_slice(&reply);
        assert_eq!(run(&mut rbuf, reply.len(), &mut out), Step::Nothing);
        // The client retransmits: now forwarded to the real server's MAC, IP unchanged but TTL.
        let (mut buf, n) = framed(ethertype::IPV4, &syn(40000));
        let Step::Send(r) = run(&mut buf, n, &mut out) else {
            panic!("expected a forward")
        };
        let frame = &buf[r];
        assert_eq!(&frame[0..6], &RS_MAC);
        assert_eq!(&frame[6..12], &MAC);
        let c = classify(&frame[14..]).unwrap();
        assert_eq!((c.dst.to_string(), c.ttl), ("10.100.0.1".to_string(), 63));
    }

    #[test]
    fn frames_that_are_not_ours() {
        let mut d = director("-A -t 10.100.0.1:80 -s rr\n-a -t 10.100.0.1:80 -r 10.0.1.11:80 -g\n");
        let neigh = Neighbours::default();
        let mut out = vec![0u8; REPLY_ROOM];
        let mut run = |buf: &mut Vec<u8>, n: usize| {
            frame_step(buf, n, &mut out, &neigh, MAC, |b, n, o| {
                d.handle_packet(Instant::from_secs(2), &mut b[..HEADROOM + n], HEADROOM, o)
            })
        };
        let (mut buf, n) = framed(0x88cc, &[0u8; 46]);
        assert_eq!(run(&mut buf, n), Step::Drop(Drop::NonIp));
        let (mut buf, n) = framed(ethertype::IPV4, &[0x45, 0, 0]);
        assert_eq!(run(&mut buf, n), Step::Drop(Drop::Malformed));
        // Another destination: not a router.
        let mut other = syn(40001);
        other[19] = 9;
        let (mut buf, n) = framed(ethertype::IPV4, &other);
        assert!(matches!(run(&mut buf, n), Step::Drop(_)));
        let (mut buf, _) = framed(ethertype::IPV4, &[]);
        assert_eq!(run(&mut buf, 5), Step::Drop(Drop::Malformed));
    }

    #[test]
    fn nat_packet_steps() {
        let mut d = director("-A -t 10.100.0.1:80 -s rr\n-a -t 10.100.0.1:80 -r 10.0.1.11:80 -m\n");
        let pkt = syn(40000);
        let mut buf = vec![0u8; HEADROOM + pkt.len()];
        buf[HEADROOM..].copy_from_slice(&pkt);
        let mut out = vec![0u8; REPLY_ROOM];
        let v = d.handle_packet(Instant::from_secs(2), &mut buf, HEADROOM, &mut out);
        let Step::Send(r) = ip_step(v) else {
            panic!("{v:?}")
        };
        let c = classify(&buf[r]).unwrap();
        assert_eq!(c.dst.to_string(), "10.0.1.11");
        // TTL 1: the director answers with Time Exceeded instead.
        let mut pkt = syn(40002);
        pkt[8] = 1;
        pkt[10] = 0;
        pkt[11] = 0;
        let sum = !lvs_core::wire::checksum::data(&pkt[..20]);
        pkt[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut buf = vec![0u8; HEADROOM + pkt.len()];
        buf[HEADROOM..].copy_from_slice(&pkt);
        let v = d.handle_packet(Instant::from_secs(2), &mut buf, HEADROOM, &mut out);
        let Step::Reply(r, Drop::Xmit(lvs_core::xmit::DropReason::TtlExpired)) = ip_step(v) else {
            panic!("{v:?}")
        };
        let c = classify(&out[r]).unwrap();
        assert_eq!((c.protocol, c.icmp_type), (1, 11));
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(parse_mac("02:1b:5f:00:00:01"), Ok([2, 0x1b, 0x5f, 0, 0, 1]));
        assert!(parse_mac("02:1b:5f:00:00").is_err());
        assert!(parse_mac("02:1b:5f:00:00:zz").is_err());
    }

    #[test]
    fn locals_fill_each_family_once() {
        let p = packet_config(&[
            "10.0.1.1".parse().unwrap(),
            "fd00::1".parse().unwrap(),
            "10.0.1.2".parse().unwrap(),
        ]);
        assert_eq!(p.local_v4, Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(p.local_v6, "fd00::1".parse::<Ipv6Addr>().unwrap());
        let p = packet_config(&UNSPECIFIED);
        assert_eq!(p.local_v4, Ipv4Addr::UNSPECIFIED);
    }
}
