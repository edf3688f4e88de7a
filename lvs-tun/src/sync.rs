//! Connection sync over UDP multicast and the director's role, driven by keepalived's notify
//! hooks (spec §4.1, [`lvs_core::sync::role`]).
//!
//! - The **role** ([`RoleControl`]) starts as `lvs-tun run --role master|backup` says and
//!   changes on `lvs-tun ctl --role master|backup|fault|stop` (what keepalived's
//!   `notify_master` / `notify_backup` / `notify_fault` / `notify_stop` run). Each change goes
//!   through [`RoleState`] and its [`RoleEffect`]s are carried out in order under the director
//!   lock: the sync master is started or stopped on the director, the receiver starts or stops
//!   applying datagrams, and forwarding is switched. While not master the workers forward
//!   nothing (every packet read is dropped under the reason `backup`, the kernel's
//!   `backup_only`): the virtual addresses belong to the other director.
//! - **Master**: the sender thread drains [`Director::poll_sync`] every [`SEND_TICK`] (the
//!   director closes a partly filled datagram 2 s after its first record, as the kernel does)
//!   and sends each datagram as one UDP payload to the group (224.0.0.81:8848, TTL 1) out of
//!   `--sync-dev`.
//! - **Backup**: the receiver thread reads datagrams on the group's port, joined on
//!   `--sync-dev`, and feeds each to [`Director::apply_sync`] under the director lock. Malformed
//!   ones are refused and counted by the director per reason; datagrams read while not backup
//!   are counted as ignored.

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use lvs_core::director::{Director, SyncMasterConfig};
use lvs_core::sync::role::{Role, RoleEffect, RoleEvent, RoleState};
use lvs_core::sync::{DEFAULT_GROUP_V4, DEFAULT_PORT};
use lvs_core::Instant;
use tracing::{info, warn};

use crate::daemon::Shared;

/// How often the sender drains the director's sync queue.
pub const SEND_TICK: StdDuration = StdDuration::from_millis(20);
/// Longest the receiver blocks before checking for shutdown.
const RECV_TIMEOUT: StdDuration = StdDuration::from_millis(250);
/// Largest datagram read (the largest `--sync-maxlen`).
const MAX_DATAGRAM: usize = 65_507;

/// Sync options of `lvs-tun run` (`--sync-dev`, `--sync-syncid`, `--sync-maxlen`, `--role`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOptions {
    /// The interface sync datagrams go out of and are received on (`--sync-dev`); none:
    /// role changes switch forwarding only, nothing is synced.
    pub dev: Option<String>,
    /// `--sync-syncid`: written by the master; a backup with a non-zero syncid accepts only
    /// its own.
    pub syncid: u8,
    /// `--sync-maxlen`: largest datagram the master sends (UDP payload).
    pub maxlen: usize,
    /// The multicast group and port (spec §4.1: 224.0.0.81:8848).
    pub group: SocketAddrV4,
    /// Multicast TTL (spec §4.1: 1, the sync stays on its segment).
    pub ttl: u32,
    /// The role at start.
    pub role: Role,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            dev: None,
            syncid: 0,
            maxlen: SyncMasterConfig::default().maxlen,
            group: SocketAddrV4::new(DEFAULT_GROUP_V4, DEFAULT_PORT),
            ttl: 1,
            role: Role::Backup,
        }
    }
}

/// Counters of the sync sockets (the director counts what it did with the datagrams).
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Datagrams sent to the group.
    pub sent: AtomicU64,
    /// Bytes sent (UDP payload).
    pub sent_bytes: AtomicU64,
    /// Datagrams the socket refused to send.
    pub send_errors: AtomicU64,
    /// Datagrams received on the group's port.
    pub received: AtomicU64,
    /// Of those, datagrams read while this director was not backup (not applied).
    pub ignored: AtomicU64,
}

/// The role and what it allows, shared by every thread.
#[derive(Debug)]
pub struct RoleControl {
    state: Mutex<RoleState>,
    forwarding: AtomicBool,
    applying: AtomicBool,
    master: SyncMasterConfig,
    /// Datagrams a master stepping down still had: sent by the sender thread.
    pending: Mutex<Vec<Vec<u8>>>,
    /// Socket counters.
    pub counters: SyncCounters,
}

/// A role word of `ctl --role`: `master`, `backup`, `fault`, `stop` (any case, so keepalived's
/// `MASTER` ... work too).
pub fn parse_role(word: &str) -> Option<RoleEvent> {
    RoleEvent::from_notify(&word.to_ascii_uppercase())
}

/// The lower-case name of a role.
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Master => "master",
        Role::Backup => "backup",
        Role::Fault => "fault",
        Role::Stopped => "stop",
    }
}

impl RoleControl {
    /// A director in `start` role; `sync` when a sync device is configured (the sync daemons
    /// are then managed). The director must be passed so a master starts its sync master.
    pub fn new(d: &mut Director, sync: bool, master: SyncMasterConfig, start: Role) -> Self {
        let rc = RoleControl {
            state: Mutex::new(RoleState::new(sync)),
            forwarding: AtomicBool::new(false),
            applying: AtomicBool::new(sync),
            master,
            pending: Mutex::new(Vec::new()),
            counters: SyncCounters::default(),
        };
        let ev = match start {
            Role::Master => Some(RoleEvent::BecomeMaster),
            Role::Backup => None,
            Role::Fault => Some(RoleEvent::Fault),
            Role::Stopped => Some(RoleEvent::Stop),
        };
        if let Some(ev) = ev {
            rc.handle(d, Instant::ZERO, ev);
        }
        rc
    }

    /// Whether the workers forward (master).
    pub fn forwards(&self) -> bool {
        self.forwarding.load(Relaxed)
    }

    /// Whether received datagrams are applied (backup or fault with sync configured). Read
    /// with the director lock held: role changes happen under it.
    pub fn applies(&self) -> bool {
        self.applying.load(Relaxed)
    }

    /// Takes the datagrams left by a master that stepped down.
    pub fn take_pending(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).role()
    }

    /// Role changes so far.
    pub fn transitions(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .transitions()
    }

    /// Takes a notification with the director lock held (`d`) at `now`: carries out the
    /// effects in order and returns them (empty when the role does not change).
    pub fn handle(&self, d: &mut Director, now: Instant, ev: RoleEvent) -> Vec<RoleEffect> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let fx = st.handle(ev);
        for e in &fx {
            match *e {
                RoleEffect::Forward(on) => self.forwarding.store(on, Relaxed),
                RoleEffect::StartSyncBackup => self.applying.store(true, Relaxed),
                RoleEffect::StopSyncBackup => self.applying.store(false, Relaxed),
                // A master stepping down still sends what it has batched (the last records
                // are the ones the new master needs most): the datagrams are taken out before
                // the director's master stops and discards its queue, and the sender thread
                // sends them. (The kernel's master thread also sends its queue before it
                // exits when stopped by `ipvsadm --stop-daemon`.)
                RoleEffect::StopSyncMaster => {
                    d.flush_sync();
                    let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                    while let Some(dg) = d.poll_sync(now) {
                        p.push(dg);
                    }
                }
                RoleEffect::StartSyncMaster => {}
            }
            d.apply_role_effect(*e, self.master);
        }
        fx
    }
}

/// `ctl --role WORD` on the running daemon: the answer text, or an error message.
pub fn ctl_role(shared: &Shared, args: &[String]) -> Result<String, String> {
    let Some(rc) = shared.role.as_ref() else {
        return Err("no role here: start the daemon with --role master|backup (and --sync-dev IFNAME to sync connections)\n".into());
    };
    let i = args.iter().position(|a| a == "--role").unwrap_or(0);
    let Some(word) = args.get(i + 1) else {
        return Err("--role needs master, backup, fault or stop\n".into());
    };
    let Some(ev) = parse_role(word) else {
        return Err(format!(
            "--role {word}: expected master, backup, fault or stop\n"
        ));
    };
    let (from, fx) = {
        let mut d = shared.director();
        let now = shared.now();
        let from = rc.role();
        let fx = rc.handle(&mut d, now, ev);
        (from, fx)
    };
    let to = rc.role();
    if fx.is_empty() && from == to {
        return Ok(format!("role {} (unchanged)\n", role_name(to)));
    }
    info!(
        from = role_name(from),
        to = role_name(to),
        forwarding = rc.forwards(),
        effects = ?fx,
        "role change"
    );
    Ok(format!("role {} -> {}\n", role_name(from), role_name(to)))
}

/// The sync sockets, opened at start (before privileges are dropped).
#[derive(Debug)]
pub struct SyncSockets {
    /// Sends to the group out of the sync device.
    pub tx: UdpSocket,
    /// Receives on the group's port, joined on the sync device.
    pub rx: UdpSocket,
    /// The group and port.
    pub group: SocketAddrV4,
}

fn os_err(what: &str, e: nix::Error) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

/// The first IPv4 address of `dev`.
fn dev_addr(dev: &str) -> io::Result<Ipv4Addr> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| os_err("getifaddrs", e))?;
    for a in addrs {
        if a.interface_name != dev {
            continue;
        }
        if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
            return Ok(sin.ip());
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("{dev} has no IPv4 address"),
    ))
}

/// Opens the sender (TTL, no loopback, out of `dev`) and the receiver (port, group joined on
/// `dev`).
pub fn open(dev: &str, group: SocketAddrV4, ttl: u32) -> io::Result<SyncSockets> {
    use nix::sys::socket::{setsockopt, sockopt, IpMembershipRequest};
    let addr = dev_addr(dev)?;
    let name = OsString::from(dev);
    let tx = UdpSocket::bind(SocketAddrV4::new(addr, 0))?;
    setsockopt(&tx.as_fd(), sockopt::BindToDevice, &name)
        .map_err(|e| os_err("SO_BINDTODEVICE", e))?;
    tx.set_multicast_ttl_v4(ttl)?;
    tx.set_multicast_loop_v4(false)?;
    // socket(2) then SO_REUSEADDR before bind is not in std; one receiver per host needs none.
    let rx = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, group.port()))?;
    setsockopt(&rx.as_fd(), sockopt::BindToDevice, &name)
        .map_err(|e| os_err("SO_BINDTODEVICE", e))?;
    setsockopt(
        &rx.as_fd(),
        sockopt::IpAddMembership,
        &IpMembershipRequest::new(*group.ip(), Some(addr)),
    )
    .map_err(|e| os_err("IP_ADD_MEMBERSHIP", e))?;
    rx.set_read_timeout(Some(RECV_TIMEOUT))?;
    Ok(SyncSockets { tx, rx, group })
}

/// The sender thread: drains the director's sync queue every [`SEND_TICK`].
pub fn send_loop(shared: &Shared, tx: &UdpSocket, group: SocketAddrV4) {
    let Some(rc) = shared.role.as_ref() else {
        return;
    };
    let mut batch = Vec::new();
    while !shared.stopping() {
        {
            let mut d = shared.director();
            let now = shared.now();
            // Bounded: the queue holds at most `sync_qlen_max` datagrams.
            while let Some(p) = d.poll_sync(now) {
                batch.push(p);
            }
        }
        batch.extend(rc.take_pending());
        for p in batch.drain(..) {
            match tx.send_to(&p, SocketAddr::V4(group)) {
                Ok(_) => {
                    rc.counters.sent.fetch_add(1, Relaxed);
                    rc.counters.sent_bytes.fetch_add(p.len() as u64, Relaxed);
                }
                Err(e) => {
                    if rc.counters.send_errors.fetch_add(1, Relaxed) == 0 {
                        warn!("sync send: {e}");
                    }
                }
            }
        }
        std::thread::sleep(SEND_TICK);
    }
}

/// Hands one received datagram to the director if this director applies sync now; returns
/// whether it was applied (errors are counted by the director).
pub fn receive(shared: &Shared, rc: &RoleControl, datagram: &[u8]) -> bool {
    rc.counters.received.fetch_add(1, Relaxed);
    let mut d = shared.director();
    if !rc.applies() {
        rc.counters.ignored.fetch_add(1, Relaxed);
        return false;
    }
    let now = shared.now();
    d.apply_sync(now, datagram).is_ok()
}

/// The receiver thread.
pub fn recv_loop(shared: &Shared, rx: &UdpSocket) {
    let Some(rc) = shared.role.as_ref() else {
        return;
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !shared.stopping() {
        match rx.recv_from(&mut buf) {
            Ok((n, _)) => {
                receive(shared, rc, &buf[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                warn!("sync receive: {e}");
                std::thread::sleep(StdDuration::from_millis(100));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_core::conn::HashKey;
    use lvs_core::director::{DirectorConfig, FlowPacket, PacketDir};
    use lvs_core::rules::RuleSet;
    use lvs_core::Protocol;

    const RULES: &str = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m\n";

    fn director(seed: u128) -> Director {
        let mut d = Director::new(DirectorConfig::new(1024, HashKey::from_u128(seed)));
        d.apply_rules(Instant::ZERO, &RuleSet::from_text(RULES).unwrap())
            .unwrap();
        d
    }

    #[test]
    fn role_words() {
        assert_eq!(parse_role("master"), Some(RoleEvent::BecomeMaster));
        assert_eq!(parse_role("BACKUP"), Some(RoleEvent::BecomeBackup));
        assert_eq!(parse_role("Fault"), Some(RoleEvent::Fault));
        assert_eq!(parse_role("stop"), Some(RoleEvent::Stop));
        assert_eq!(parse_role("primary"), None);
        for r in [Role::Master, Role::Backup, Role::Fault, Role::Stopped] {
            let ev = parse_role(role_name(r)).unwrap();
            let mut s = RoleState::new(true);
            s.handle(if r == Role::Master {
                RoleEvent::BecomeBackup
            } else {
                RoleEvent::BecomeMaster
            });
            s.handle(ev);
            assert_eq!(s.role(), r);
        }
    }

    #[test]
    fn start_roles_set_forwarding_and_the_sync_master() {
        let mut d = director(1);
        let m = RoleControl::new(&mut d, true, SyncMasterConfig::default(), Role::Master);
        assert!(m.forwards() && !m.applies());
        assert!(d.sync_master().is_some());
        let mut d = director(2);
        let b = RoleControl::new(&mut d, true, SyncMasterConfig::default(), Role::Backup);
        assert!(!b.forwards() && b.applies());
        assert!(d.sync_master().is_none());
        // Without a sync device: forwarding follows the role, nothing is applied.
        let mut d = director(3);
        let n = RoleControl::new(&mut d, false, SyncMasterConfig::default(), Role::Master);
        assert!(n.forwards() && !n.applies() && d.sync_master().is_none());
    }

    /// A master's packets become datagrams; the backup applies them; then the roles swap and
    /// the old master learns the new master's connections.
    #[test]
    fn master_to_backup_and_switch() {
        let (mut dm, mut db) = (director(1), director(2));
        let cfg = SyncMasterConfig::default();
        let m = RoleControl::new(&mut dm, true, cfg, Role::Master);
        let b = RoleControl::new(&mut db, true, cfg, Role::Backup);
        let mut pkt = FlowPacket {
            protocol: Protocol::Tcp,
            src: "192.0.2.7:40000".parse().unwrap(),
            dst: "10.0.0.1:80".parse().unwrap(),
            fwmark: 0,
            tcp_flags: 0x02,
            len: 60,
            dir: PacketDir::FromClient,
        };
        let t = Instant::from_secs(1);
        dm.handle_flow(t, &pkt);
        pkt.tcp_flags = 0x10;
        dm.handle_flow(t, &pkt);
        dm.handle_flow(t, &pkt);
        let dest = dm.conn(Protocol::Tcp, pkt.src, pkt.dst).unwrap().dest;
        // The record waits in a partly filled datagram (2 s): nothing to send yet.
        assert!(dm.poll_sync(t).is_none());
        // Stepping down keeps it for the sender instead of discarding it with the master.
        let fx = m.handle(&mut dm, t, RoleEvent::BecomeBackup);
        assert_eq!(
            fx,
            vec![
                RoleEffect::Forward(false),
                RoleEffect::StopSyncMaster,
                RoleEffect::StartSyncBackup
            ]
        );
        assert!(!m.forwards() && m.applies() && dm.sync_master().is_none());
        let pending = m.take_pending();
        assert_eq!(pending.len(), 1);
        assert!(m.take_pending().is_empty());
        assert!(b.applies());
        db.apply_sync(t, &pending[0]).unwrap();
        let c = db.conn(Protocol::Tcp, pkt.src, pkt.dst).unwrap();
        assert_eq!((c.state, c.dest), ("ESTABLISHED", dest));
        // The backup takes over: it forwards and runs the sync master; the synced entry
        // sends the next packets to the same real server.
        let fx = b.handle(&mut db, t, RoleEvent::BecomeMaster);
        assert_eq!(fx.last(), Some(&RoleEffect::Forward(true)));
        assert!(b.forwards() && !b.applies() && db.sync_master().is_some());
        db.handle_flow(t, &pkt);
        assert_eq!(db.conn(Protocol::Tcp, pkt.src, pkt.dst).unwrap().dest, dest);
        assert_eq!((m.transitions(), b.transitions()), (2, 1));
        assert_eq!((m.role(), b.role()), (Role::Backup, Role::Master));
        // The same notification twice changes nothing.
        assert!(b.handle(&mut db, t, RoleEvent::BecomeMaster).is_empty());
        // Fault keeps applying, stop does not.
        m.handle(&mut dm, t, RoleEvent::Fault);
        assert!(m.applies() && !m.forwards());
        m.handle(&mut dm, t, RoleEvent::Stop);
        assert!(!m.applies() && !m.forwards());
    }
}
