//! The flow layer: [`Director::handle_flow`] (spec §2.2, §2.6–§2.8, §6.1–§6.3, §6.5).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use super::{
    forward_of, DeltaKind, Director, DropReason, FlowHint, FlowPacket, FlowVerdict, HintKind,
    PacketDir,
};
use crate::conn::state::TcpInput;
use crate::conn::table::NewConnV4;
use crate::conn::{
    ConnFlags, ConnId, DestDelta, Direction, InKey, InsertError, NewConn, OutKey, TcpState,
};
use crate::protocol::Protocol;
use crate::rules::{Family, PersistMask, ServiceKey};
use crate::sched::{DestId, FlowKey, SchedContext};
use crate::time::{Duration, Instant};

/// `IP_VS_CONN_F_*` for a fresh connection's initial timeout (`ip_vs_conn_new`: 3 s).
const NEW_CONN_TIMEOUT: Duration = Duration::from_secs(3);
/// `FTPPORT`.
const FTP_PORT: u16 = 21;
/// `FTPDATA`.
const FTP_DATA_PORT: u16 = 20;
/// `ip_unprivileged_port_start` default.
const UNPRIVILEGED_PORT_START: u16 = 1024;

/// Where a scheduled packet goes.
struct Scheduled {
    conn: Option<ConnId>,
    /// The persistence template the connection uses.
    template: Option<ConnId>,
    dest: DestId,
    daddr: IpAddr,
    dport: u16,
}

/// The hashes a client packet's missed lookup leaves for the insert of the connection
/// scheduled for it (see `Director::new_conn`).
#[derive(Clone, Copy)]
struct MissHashes {
    /// The hash of the packet's in-key, which the lookup found in no entry; `None` if the
    /// lookup computed none.
    key: Option<u64>,
    /// The hash of the reply key of every method but NAT, [`insert_out_key`], if known.
    out: Option<u64>,
}

/// Where [`Director::existing_in_v4`] sends an existing connection's client packet.
pub(super) struct ExistingIn {
    /// The connection.
    pub(super) id: ConnId,
    /// Its real server.
    pub(super) dest: Option<DestId>,
    /// The real server's address and port.
    pub(super) real: SocketAddr,
    /// The connection's forwarding method.
    pub(super) method: crate::conn::FwdMethod,
}

/// The reply key of the entry a connection scheduled for the client packet `pkt` would get,
/// for every method but NAT (whose real server is not known yet): the key whose hash
/// `read_ahead_insert` reads ahead and `flow_hint` carries.
#[inline]
fn insert_out_key(pkt: &FlowPacket) -> OutKey {
    let v = (pkt.dst.ip(), pkt.dst.port());
    OutKey::of_conn(pkt.protocol, false, (pkt.src.ip(), pkt.src.port()), v, v)
}

/// Whether `key` is `OutKey::of_reply(pkt.protocol, pkt.src, pkt.dst)`, compared field by
/// field (the packet's key is not built for it).
#[inline]
fn is_reply_key_of(key: &OutKey, pkt: &FlowPacket) -> bool {
    // Addresses compared in place, family by family, rather than through the `IpAddr`s the
    // socket addresses would be converted to.
    let same = |a: &IpAddr, s: &SocketAddr| match (a, s) {
        (IpAddr::V4(a), SocketAddr::V4(s)) => a == s.ip(),
        (IpAddr::V6(a), SocketAddr::V6(s)) => a == s.ip(),
        _ => false,
    };
    key.sport == pkt.src.port()
        && key.dport == pkt.dst.port()
        && key.protocol == pkt.protocol
        && same(&key.saddr, &pkt.src)
        && same(&key.daddr, &pkt.dst)
}

/// The client network of a persistence template: `caddr` masked (`-M`).
fn mask_addr(addr: IpAddr, mask: &PersistMask) -> IpAddr {
    match (addr, mask) {
        (IpAddr::V4(a), PersistMask::V4(m)) => {
            IpAddr::V4(Ipv4Addr::from(a.to_bits() & m.to_bits()))
        }
        (IpAddr::V6(a), PersistMask::V6(plen)) => {
            let plen = (*plen).min(128) as u32;
            let m = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - plen)
            };
            IpAddr::V6(Ipv6Addr::from(a.to_bits() & m))
        }
        // A mask of the other family cannot be configured (RuleSet refuses it).
        (a, _) => a,
    }
}

/// A fwmark as the "virtual address" of a fwmark template: `{ .ip = htonl(fwmark) }`, i.e. the
/// first four bytes of the address.
fn fwmark_addr(mark: u32, family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(mark)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from((mark as u128) << 96)),
    }
}

impl Director {
    /// Handles one packet of a flow: finds its connection or schedules a new one, runs the
    /// protocol state machine in the packet's direction, counts statistics, and says what to
    /// do with it. See [`FlowVerdict`] and the module docs.
    pub fn handle_flow(&mut self, now: Instant, pkt: &FlowPacket) -> FlowVerdict {
        let now = self.clamp(now);
        let v = match pkt.dir {
            PacketDir::FromClient => self.flow_in(now, pkt),
            PacketDir::FromServer => self.flow_out(now, pkt),
        };
        self.count_verdict(&v);
        v
    }

    /// The hashes of `pkt`'s flow key in its direction (see [`FlowHint`]); changes nothing.
    /// For a client packet that may open a connection (a TCP SYN; any UDP or SCTP packet) the
    /// hint also holds the reply key's hash that the connection's insert would use (unless
    /// every real server uses NAT: that key is then never an entry's).
    pub fn flow_hint(&self, pkt: &FlowPacket) -> FlowHint {
        let kind = if pkt.protocol == Protocol::Ip {
            HintKind::None
        } else {
            match pkt.dir {
                PacketDir::FromClient => match (&pkt.src, &pkt.dst) {
                    // IPv4: the same hint as `flow_hint_v4`'s, by the same code.
                    (SocketAddr::V4(c), SocketAddr::V4(v)) => {
                        self.in_hint_v4(pkt.protocol, pkt.tcp_flags, *c, *v)
                    }
                    _ => {
                        let key = InKey::of_flow(pkt.protocol, pkt.src, pkt.dst);
                        // The reply key read ahead is never a NAT entry's.
                        let may_schedule = self.reply_from_vip && self.may_schedule(pkt);
                        HintKind::In {
                            key,
                            hash: self.table.in_hash(&key),
                            out: may_schedule.then(|| self.table.out_hash(&insert_out_key(pkt))),
                        }
                    }
                },
                PacketDir::FromServer => {
                    let key = OutKey::of_reply(pkt.protocol, pkt.src, pkt.dst);
                    let hash = match (&pkt.src, &pkt.dst) {
                        (SocketAddr::V4(s), SocketAddr::V4(d)) => self.table.reply_hash_v4(
                            pkt.protocol,
                            s.ip().to_bits(),
                            s.port(),
                            d.ip().to_bits(),
                            d.port(),
                        ),
                        _ => self.table.out_hash(&key),
                    };
                    HintKind::Out { key, hash }
                }
            }
        };
        FlowHint {
            table: self.table.hash_key(),
            kind,
        }
    }

    /// [`Director::flow_hint`] of a client's IPv4 packet ([`PacketDir::FromClient`]), from
    /// its protocol, TCP flags (0 for other protocols), client and virtual addresses and
    /// ports, without a [`FlowPacket`] to build: the same hint, for a driver that makes
    /// many (a simulator drawing its arrivals ahead). Changes nothing.
    ///
    /// ```
    /// use core::net::SocketAddrV4;
    /// use lvs_core::conn::HashKey;
    /// use lvs_core::director::{Director, DirectorConfig, FlowPacket, PacketDir};
    /// use lvs_core::Protocol;
    ///
    /// let d = Director::new(DirectorConfig::new(1024, HashKey::from_u128(7)));
    /// let (client, vip): (SocketAddrV4, SocketAddrV4) =
    ///     ("192.0.2.7:40000".parse().unwrap(), "10.0.0.1:80".parse().unwrap());
    /// let syn = FlowPacket {
    ///     protocol: Protocol::Tcp,
    ///     src: client.into(),
    ///     dst: vip.into(),
    ///     fwmark: 0,
    ///     tcp_flags: 0x02,
    ///     len: 60,
    ///     dir: PacketDir::FromClient,
    /// };
    /// assert_eq!(
    ///     format!("{:?}", d.flow_hint_v4(Protocol::Tcp, 0x02, client, vip)),
    ///     format!("{:?}", d.flow_hint(&syn)),
    /// );
    /// ```
    #[inline]
    pub fn flow_hint_v4(
        &self,
        protocol: Protocol,
        tcp_flags: u8,
        client: SocketAddrV4,
        vip: SocketAddrV4,
    ) -> FlowHint {
        let kind = if protocol == Protocol::Ip {
            HintKind::None
        } else {
            self.in_hint_v4(protocol, tcp_flags, client, vip)
        };
        FlowHint {
            table: self.table.hash_key(),
            kind,
        }
    }

    /// The hint kind of a client's IPv4 packet (not [`Protocol::Ip`]), for
    /// [`Director::flow_hint`] and [`Director::flow_hint_v4`]: the in-key, both hashes
    /// straight from the addresses (the reply key of `insert_out_key` is (vip, client)).
    #[inline(always)]
    fn in_hint_v4(
        &self,
        protocol: Protocol,
        tcp_flags: u8,
        client: SocketAddrV4,
        vip: SocketAddrV4,
    ) -> HintKind {
        let (c, cport, v, vport) = (
            client.ip().to_bits(),
            client.port(),
            vip.ip().to_bits(),
            vip.port(),
        );
        // The reply key read ahead is never a NAT entry's.
        let may_schedule = self.reply_from_vip && self.may_schedule_flags(protocol, tcp_flags);
        HintKind::In {
            key: InKey {
                protocol,
                caddr: IpAddr::V4(*client.ip()),
                cport,
                vaddr: IpAddr::V4(*vip.ip()),
                vport,
            },
            hash: (cport != 0).then(|| self.table.in_hash_v4(protocol, c, cport, v, vport)),
            out: may_schedule.then(|| self.table.out_hash_v4(protocol, v, vport, c, cport)),
        }
    }

    /// The hint of the packets that connection `id`'s real server (NAT) or virtual service
    /// (the other methods) sends to its client: the [`FlowHint`] that [`Director::flow_hint`]
    /// returns for a [`PacketDir::FromServer`] packet with the entry's reply key, read from
    /// the entry, whose key's hash the insert just computed for a new IPv4 NAT connection.
    /// `None` if `id` is not a live entry. Changes nothing.
    ///
    /// ```
    /// use lvs_core::conn::HashKey;
    /// use lvs_core::director::{Director, DirectorConfig, FlowPacket, FlowVerdict, PacketDir};
    /// use lvs_core::rules::RuleSet;
    /// use lvs_core::{Instant, Protocol};
    ///
    /// let mut d = Director::new(DirectorConfig::new(1024, HashKey::from_u128(7)));
    /// let rules = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m\n";
    /// d.apply_rules(Instant::ZERO, &RuleSet::from_text(rules).unwrap()).unwrap();
    /// let (client, vip) = ("192.0.2.7:40000".parse().unwrap(), "10.0.0.1:80".parse().unwrap());
    /// let packet = |dir, src, dst, tcp_flags| FlowPacket {
    ///     protocol: Protocol::Tcp,
    ///     src,
    ///     dst,
    ///     fwmark: 0,
    ///     tcp_flags,
    ///     len: 60,
    ///     dir,
    /// };
    /// let syn = packet(PacketDir::FromClient, client, vip, 0x02);
    /// let FlowVerdict::Forward { dest, conn: Some(id), .. } = d.handle_flow(Instant::ZERO, &syn)
    /// else {
    ///     panic!("not forwarded");
    /// };
    /// let syn_ack = packet(PacketDir::FromServer, dest, client, 0x12);
    /// let hint = d.reply_hint(id).unwrap();
    /// assert_eq!(
    ///     d.handle_flow_hinted(Instant::ZERO, &syn_ack, &hint),
    ///     FlowVerdict::Reply { src: vip },
    /// );
    /// ```
    #[inline]
    pub fn reply_hint(&self, id: ConnId) -> Option<FlowHint> {
        let (key, hash) = self.table.reply_key(id)?;
        Some(FlowHint {
            table: self.table.hash_key(),
            kind: HintKind::Out { key, hash },
        })
    }

    /// Reads into the CPU caches the connection-table buckets that a packet with this hint
    /// looks up first (and, for a hint that may open a connection, the reply-key bucket and
    /// the free slot its insert would use). Changes nothing. Prefetching the hints of several
    /// upcoming packets in one go lets their cache misses overlap.
    #[inline]
    pub fn prefetch(&self, hint: &FlowHint) {
        if hint.table != self.table.hash_key() {
            return;
        }
        match hint.kind {
            HintKind::None => {}
            HintKind::In { hash, out, .. } => {
                self.table.prefetch(hash, out);
                if out.is_some() {
                    self.table.prefetch_free_slot();
                }
            }
            HintKind::Out { hash, .. } => self.table.prefetch(None, Some(hash)),
        }
    }

    /// The second stage of [`Director::prefetch`]: reads into the CPU caches the connection
    /// entry that the bucket read by `prefetch` names (for a flow with an entry: the one its
    /// packet will use). Changes nothing. Call it for a batch of hints after `prefetch` for
    /// the same batch: the buckets have arrived by then, and the entries' cache misses
    /// overlap in turn, where a lone lookup takes one miss after the other (bucket, then
    /// entry).
    ///
    /// ```
    /// # use lvs_core::director::{Director, DirectorConfig, FlowPacket, FlowVerdict, PacketDir};
    /// # use lvs_core::conn::HashKey;
    /// # use lvs_core::{Instant, Protocol};
    /// let mut d = Director::new(DirectorConfig::new(64, HashKey::from_u128(7)));
    /// d.apply_rules(Instant::ZERO, &lvs_core::rules::RuleSet::from_text(
    ///     "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n").unwrap()).unwrap();
    /// let pkt = |flags| FlowPacket {
    ///     protocol: Protocol::Tcp,
    ///     src: "192.0.2.7:40000".parse().unwrap(),
    ///     dst: "10.0.0.1:80".parse().unwrap(),
    ///     fwmark: 0,
    ///     tcp_flags: flags,
    ///     len: 60,
    ///     dir: PacketDir::FromClient,
    /// };
    /// d.handle_flow(Instant::ZERO, &pkt(0x02));
    /// let ack = pkt(0x10);
    /// let hint = d.flow_hint(&ack).without_insert();
    /// d.prefetch(&hint);
    /// d.prefetch_conn(&hint);
    /// let v = d.handle_flow_hinted(Instant::ZERO, &ack, &hint);
    /// assert!(matches!(v, FlowVerdict::Forward { new: false, .. }));
    /// ```
    #[inline]
    pub fn prefetch_conn(&self, hint: &FlowHint) {
        if hint.table != self.table.hash_key() {
            return;
        }
        match hint.kind {
            HintKind::None => {}
            HintKind::In { hash, .. } => self.table.prefetch_entries(hash, None),
            HintKind::Out { hash, .. } => self.table.prefetch_entries(None, Some(hash)),
        }
    }

    /// [`Director::handle_flow`] with the packet's [`FlowHint`]: the same verdicts, counters
    /// and state, without hashing the key again when the hint is for this packet's key and
    /// this director's table (any other hint is ignored).
    pub fn handle_flow_hinted(
        &mut self,
        now: Instant,
        pkt: &FlowPacket,
        hint: &FlowHint,
    ) -> FlowVerdict {
        let hint = (hint.table == self.table.hash_key()).then_some(&hint.kind);
        let now = self.clamp(now);
        // A client's IPv4 packet of an existing connection, in the common case, with the
        // hash of its key from the hint: decided by `existing_in_v4` alone (a SYN may open
        // a connection: the general path, which looks up once).
        if let (
            PacketDir::FromClient,
            Some(HintKind::In {
                key, hash: Some(h), ..
            }),
            SocketAddr::V4(c),
            SocketAddr::V4(v),
        ) = (pkt.dir, hint, &pkt.src, &pkt.dst)
        {
            let (ca, cport, va, vport) = (c.ip().to_bits(), c.port(), v.ip().to_bits(), v.port());
            if pkt.protocol != Protocol::Ip
                && !(pkt.protocol == Protocol::Tcp && pkt.tcp_flags & TcpInput::SYN != 0)
                && self.sync_master.is_none()
                && key.is_of_v4_flow(pkt.protocol, ca, cport, va, vport)
            {
                let r = self.existing_in_v4::<3>(
                    now,
                    pkt.protocol,
                    (ca, cport, va, vport),
                    pkt.tcp_flags,
                    pkt.len,
                    Some(*h),
                );
                if let Ok(e) = r {
                    let v = match e {
                        Some(e) => FlowVerdict::Forward {
                            conn: Some(e.id),
                            dest: e.real,
                            method: forward_of(e.method),
                            new: false,
                        },
                        None => FlowVerdict::NotOurs,
                    };
                    self.count_verdict(&v);
                    return v;
                }
            }
        }
        let v = match pkt.dir {
            PacketDir::FromClient => self.flow_in_dest(now, pkt, hint).0,
            PacketDir::FromServer => self.flow_out_conn(now, pkt, hint).0,
        };
        self.count_verdict(&v);
        v
    }

    /// A client's IPv4 packet (`protocol` balanced; `(client, cport, vaddr, vport)` its
    /// addresses as integers and ports, with the hash of that key when known: `known`;
    /// `SITE` separates the lookup's copies) of an existing connection, in the common case:
    /// no SYN (the caller checks, before the lookup: a SYN may open a connection, and the
    /// general path then looks its key up once), no sync master (the caller checks),
    /// an available real server. Counts the packet in, runs the state machine and re-arms,
    /// counts `in_pkts`: what [`Director::flow_in_dest`] does for it, and where the packet
    /// goes (`None`: the entry vanished, not ours; never after a live lookup).
    /// `Err`: not that case, nothing changed, with the in-index hash of the packet's key
    /// when the lookup computed it.
    #[inline(always)]
    pub(super) fn existing_in_v4<const SITE: u8>(
        &mut self,
        now: Instant,
        protocol: Protocol,
        (c, cport, v, vport): (u32, u16, u32, u16),
        tcp_flags: u8,
        len: u32,
        known: Option<u64>,
    ) -> Result<Option<ExistingIn>, Option<u64>> {
        let (found, hash) = self
            .table
            .lookup_in_v4_at::<SITE>(protocol, c, cport, v, vport, known);
        let Some(id) = found else {
            return Err(hash);
        };
        let dest = self.table.dest(id);
        if let Some(d) = dest {
            // Available: counted in, in the same look at the real server.
            if !self.count_in_available(d, len) {
                return Err(hash);
            }
        }
        self.set_state_of(now, id, protocol, tcp_flags, Direction::Input);
        Ok(self
            .table
            .in_packet(id)
            .map(|(_, daddr, dport, method)| ExistingIn {
                id,
                dest,
                real: SocketAddr::new(daddr, dport),
                method,
            }))
    }

    #[inline(always)]
    pub(super) fn count_verdict(&mut self, v: &FlowVerdict) {
        match *v {
            FlowVerdict::Forward { .. } => self.counters.forwarded += 1,
            FlowVerdict::Reply { .. } => self.counters.replies += 1,
            FlowVerdict::NoDestination => self.counters.no_destination += 1,
            FlowVerdict::NotOurs => self.counters.not_ours += 1,
            FlowVerdict::Drop(r) => self.counters.dropped[r.index()] += 1,
        }
    }

    pub(super) fn flow_in(&mut self, now: Instant, pkt: &FlowPacket) -> FlowVerdict {
        self.flow_in_dest(now, pkt, None).0
    }

    /// [`Director::flow_in`], also naming the real server the packet goes to (for the packet
    /// path's tunnel configuration, one-packet scheduling included); `hint` as for
    /// [`Director::handle_flow_hinted`] (this table's).
    pub(super) fn flow_in_dest(
        &mut self,
        now: Instant,
        pkt: &FlowPacket,
        hint: Option<&HintKind>,
    ) -> (FlowVerdict, Option<DestId>) {
        debug_assert!(
            !self.defer_refresh && self.pending_refresh.is_none() && self.pending_bind.is_none()
        );
        let r = self.flow_in_dest_deferred(now, pkt, hint);
        if self.defer_refresh {
            self.end_deferral();
        }
        r
    }

    /// [`Director::flow_in_dest`], which may leave the counter changes that follow a scheduling
    /// decision pending for `end_deferral`.
    #[inline(always)]
    fn flow_in_dest_deferred(
        &mut self,
        now: Instant,
        pkt: &FlowPacket,
        hint: Option<&HintKind>,
    ) -> (FlowVerdict, Option<DestId>) {
        if pkt.protocol == Protocol::Ip {
            // No IPVS protocol module: not ours.
            return (FlowVerdict::NotOurs, None);
        }
        // The hint's hashes (`known`, `known_out`), when they are this packet's key's. The
        // key itself is built only where it is needed (an IPv6 lookup, a miss): an existing
        // IPv4 flow's packet never copies its addresses into one, and compares the hint's
        // key with its addresses as integers.
        let (mut cp, hash, known_out) = match (&pkt.src, &pkt.dst) {
            (SocketAddr::V4(c), SocketAddr::V4(v)) => {
                let (ca, cport, va, vport) =
                    (c.ip().to_bits(), c.port(), v.ip().to_bits(), v.port());
                let (known, known_out) = match hint {
                    Some(HintKind::In { key: k, hash, out })
                        if k.is_of_v4_flow(pkt.protocol, ca, cport, va, vport) =>
                    {
                        (*hash, *out)
                    }
                    _ => (None, None),
                };
                let (cp, hash) = self
                    .table
                    .lookup_in_v4(pkt.protocol, ca, cport, va, vport, known);
                (cp, hash, known_out)
            }
            _ => {
                let (known, known_out) = match hint {
                    Some(HintKind::In { key: k, hash, out })
                        if k.is_of_flow(pkt.protocol, pkt.src, pkt.dst) =>
                    {
                        (*hash, *out)
                    }
                    _ => (None, None),
                };
                let (cp, hash) = self
                    .table
                    .lookup_in_prehashed(&InKey::of_flow(pkt.protocol, pkt.src, pkt.dst), known);
                (cp, hash, known_out)
            }
        };
        // `ip_vs_in`: a new-connection packet (TCP SYN) on an existing entry. `is_new_conn`
        // tests `th->syn` alone: a SYN+RST counts too (and is then not scheduled).
        if let Some(id) = cp {
            if pkt.protocol == Protocol::Tcp && pkt.tcp_flags & TcpInput::SYN != 0 {
                if let Some(c) = self.table.get(id) {
                    let weight0 = c.dest.is_some_and(|d| self.dest_weight(d) == 0);
                    let resched = if self.sysctls.expire_nodest_conn && weight0 {
                        true
                    } else {
                        self.sysctls.conn_reuse_mode != 0
                            && c.control.is_none()
                            && match c.tcp_state() {
                                Some(TcpState::TimeWait | TcpState::Close) => true,
                                Some(TcpState::FinWait) => {
                                    self.sysctls.conn_reuse_mode & 2 != 0
                                        && c.flags.contains(ConnFlags::NOOUTPUT)
                                }
                                _ => false,
                            }
                    };
                    if resched {
                        // No conntrack here, so never the "old conntrack → drop" case. A conn
                        // that controls others is not expired (it keeps its entry).
                        if c.n_control == 0 {
                            self.expire_conn(now, id);
                        }
                        self.counters.rescheduled += 1;
                        cp = None;
                    }
                }
            }
        }
        // Check the server status.
        let mut dest = None;
        if let Some(id) = cp {
            dest = self.table.dest(id);
            if let Some(d) = dest {
                if !self.dest_available(d) {
                    if self.sysctls.expire_nodest_conn {
                        self.expire_conn(now, id);
                        self.counters.rescheduled += 1;
                        cp = None;
                    } else {
                        return (FlowVerdict::Drop(DropReason::DestUnavailable), None);
                    }
                }
            }
        }
        let (id, new) = match cp {
            Some(id) => (id, false),
            None => {
                // The lookup's hash serves the insert of the connection scheduled here (same
                // key), which also relies on the key being in no entry: an entry the lookup
                // found and gave up was expired above (a connection controls no other here,
                // so `n_control` is 0). `insert_conn_v4` asserts it in debug builds.
                match self.schedule(now, pkt, hash, known_out) {
                    Ok(s) => match s.conn {
                        Some(id) => {
                            // The new entry's real server (not read back from it).
                            dest = Some(s.dest);
                            (id, true)
                        }
                        None => {
                            // One-packet scheduling: count, forward, unbind (spec §6.3).
                            self.count_in(s.dest, pkt.len);
                            let flags = self.dest_flags(s.dest);
                            self.apply_delta(s.dest, DeltaKind::Unbind, DestDelta::unbind(flags));
                            let v = FlowVerdict::Forward {
                                conn: None,
                                dest: SocketAddr::new(s.daddr, s.dport),
                                method: forward_of(flags.fwd_method()),
                                new: true,
                            };
                            if self.sync_master.is_some() {
                                // v1 syncs the template of a one-packet connection (spec §4.3).
                                self.sync_ops_template(now, s.template);
                            }
                            return (v, Some(s.dest));
                        }
                    },
                    Err(v) => return (v, None),
                }
            }
        };
        if let Some(d) = dest {
            self.count_in(d, pkt.len);
        }
        self.set_state(now, id, pkt, Direction::Input);
        // `in_pkts` and the target in one look at the entry (the sync master's look that
        // comes between them changes neither).
        let Some((pkts, daddr, dport, method)) = self.table.in_packet(id) else {
            return (FlowVerdict::NotOurs, None);
        };
        if self.sync_master.is_some() {
            if let Some(c) = self.table.get(id) {
                self.sync_after_packet(now, &c, pkts);
            }
        }
        let v = FlowVerdict::Forward {
            conn: Some(id),
            dest: SocketAddr::new(daddr, dport),
            method: forward_of(method),
            new,
        };
        (v, dest)
    }

    pub(super) fn flow_out(&mut self, now: Instant, pkt: &FlowPacket) -> FlowVerdict {
        self.flow_out_conn(now, pkt, None).0
    }

    /// [`Director::flow_out`], also naming the connection a reply belongs to.
    #[inline(always)]
    pub(super) fn flow_out_conn(
        &mut self,
        now: Instant,
        pkt: &FlowPacket,
        hint: Option<&HintKind>,
    ) -> (FlowVerdict, Option<ConnId>) {
        if pkt.protocol == Protocol::Ip {
            return (FlowVerdict::NotOurs, None);
        }
        // A hint that holds this packet's reply key: its lookup, with the hint's hash, gives
        // the answer the table's source filter would give first (a miss, when no entry has
        // that source), without the filter.
        if let Some(HintKind::Out { key, hash }) = hint {
            if is_reply_key_of(key, pkt) {
                let found = self.table.lookup_out_past_filter(key, Some(*hash));
                return self.flow_out_looked_up(now, pkt, found);
            }
        }
        // The table's source filter first: for a client's packet (almost every packet
        // tried here) the answer, without building the key.
        let reply_source = self.table.may_be_reply_source(pkt.protocol, pkt.src);
        self.flow_out_conn_filtered(now, pkt, hint, reply_source)
    }

    /// [`Director::flow_out_conn`] for a packet of a balanced protocol whose source the
    /// table's reply-source filter was asked about already (`reply_source`, its answer).
    #[inline(always)]
    pub(super) fn flow_out_conn_filtered(
        &mut self,
        now: Instant,
        pkt: &FlowPacket,
        hint: Option<&HintKind>,
        reply_source: bool,
    ) -> (FlowVerdict, Option<ConnId>) {
        debug_assert_ne!(pkt.protocol, Protocol::Ip);
        let found = if reply_source {
            match hint {
                // The hint's key is this packet's: its hash serves, and the packet's key is
                // not built.
                Some(HintKind::Out { key, hash }) if is_reply_key_of(key, pkt) => {
                    self.table.lookup_out_past_filter(key, Some(*hash))
                }
                _ => self.table.lookup_out_past_filter(
                    &OutKey::of_reply(pkt.protocol, pkt.src, pkt.dst),
                    None,
                ),
            }
        } else {
            None
        };
        self.flow_out_looked_up(now, pkt, found)
    }

    /// [`Director::flow_out_conn`] after the lookup of the packet's reply key (`found`).
    #[inline(always)]
    fn flow_out_looked_up(
        &mut self,
        now: Instant,
        pkt: &FlowPacket,
        found: Option<ConnId>,
    ) -> (FlowVerdict, Option<ConnId>) {
        let Some(id) = found else {
            // `ip_vs_out`: with nat_icmp_send, a packet from a NAT real server that matches no
            // connection gets ICMP port unreachable (not for TCP RST) and is dropped.
            if self.sysctls.nat_icmp_send
                && !(pkt.protocol == Protocol::Tcp && pkt.tcp_flags & TcpInput::RST != 0)
                && self.is_nat_real_server(pkt.protocol, pkt.src)
            {
                return (FlowVerdict::NoDestination, None);
            }
            return (FlowVerdict::NotOurs, None);
        };
        self.flow_out_found(now, pkt, id)
    }

    /// [`Director::flow_out_conn`] for a packet of connection `id`: out of line, so that the
    /// common miss (a client's packet: the table's source filter answers) stays short where
    /// it is inlined.
    #[inline(never)]
    fn flow_out_found(
        &mut self,
        now: Instant,
        pkt: &FlowPacket,
        id: ConnId,
    ) -> (FlowVerdict, Option<ConnId>) {
        if let Some(d) = self.table.dest(id) {
            self.count_out(d, pkt.len);
        }
        self.set_state(now, id, pkt, Direction::Output);
        match self.table.virtual_addr(id) {
            Some((vaddr, vport)) => (
                FlowVerdict::Reply {
                    src: SocketAddr::new(vaddr, vport),
                },
                Some(id),
            ),
            None => (FlowVerdict::NotOurs, None),
        }
    }

    /// `ip_vs_set_state` + `ip_vs_conn_put`: the protocol's transition and the re-arm.
    #[inline(always)]
    fn set_state(&mut self, now: Instant, id: ConnId, pkt: &FlowPacket, dir: Direction) {
        self.set_state_of(now, id, pkt.protocol, pkt.tcp_flags, dir);
    }

    /// [`Director::set_state`] for a packet of `protocol` with TCP flags `tcp_flags` (the
    /// packet path's existing flows, which build no [`FlowPacket`]).
    #[inline(never)]
    pub(super) fn set_state_of(
        &mut self,
        now: Instant,
        id: ConnId,
        protocol: Protocol,
        tcp_flags: u8,
        dir: Direction,
    ) {
        match protocol {
            Protocol::Tcp => {
                let table = self.sysctls.tcp_table();
                if let Some(u) = self.table.tcp_packet(id, now, dir, tcp_flags, table) {
                    if let Some((d, delta)) = u.delta {
                        self.apply_delta(d, DeltaKind::State, delta);
                    }
                }
            }
            Protocol::Udp => {
                self.table.udp_packet(id, now, dir);
            }
            _ => self.table.touch(id, now),
        }
    }

    fn is_nat_real_server(&self, protocol: Protocol, src: SocketAddr) -> bool {
        self.services.iter().flatten().any(|s| {
            (s.config.key.is_fwmark() || s.config.key.protocol() == Some(protocol))
                && s.pool.dests().iter().any(|info| {
                    info.addr == src.ip()
                        && info.port == src.port()
                        && self.dests[info.id.0 as usize]
                            .as_ref()
                            .is_some_and(|d| d.config.forward == crate::rules::Forward::Masq)
                })
        })
    }

    /// `ip_vs_in_stats`: only while the real server is AVAILABLE.
    pub(super) fn count_in(&mut self, id: DestId, len: u32) {
        let Some(Some(d)) = self.dests.get_mut(id.0 as usize) else {
            return;
        };
        if d.trash.is_some() {
            return;
        }
        d.stats.inpkt(len);
        let svc = d.svc;
        if let Some(Some(s)) = self.services.get_mut(svc as usize) {
            s.stats.inpkt(len);
        }
        self.total.inpkt(len);
    }

    /// [`Director::dest_available`] and, when it is, [`Director::count_in`], with one look at
    /// the real server: whether it is available.
    #[inline(always)]
    fn count_in_available(&mut self, id: DestId, len: u32) -> bool {
        let Some(Some(d)) = self.dests.get_mut(id.0 as usize) else {
            return false;
        };
        if d.trash.is_some() {
            return false;
        }
        d.stats.inpkt(len);
        let svc = d.svc;
        if let Some(Some(s)) = self.services.get_mut(svc as usize) {
            s.stats.inpkt(len);
        }
        self.total.inpkt(len);
        true
    }

    /// `ip_vs_out_stats`.
    pub(super) fn count_out(&mut self, id: DestId, len: u32) {
        let Some(Some(d)) = self.dests.get_mut(id.0 as usize) else {
            return;
        };
        if d.trash.is_some() {
            return;
        }
        d.stats.outpkt(len);
        let svc = d.svc;
        if let Some(Some(s)) = self.services.get_mut(svc as usize) {
            s.stats.outpkt(len);
        }
        self.total.outpkt(len);
    }

    /// `ip_vs_conn_stats`: conns++ on the real server, its service and the total.
    #[inline]
    fn count_conn(&mut self, id: DestId, svc: u32) {
        if let Some(Some(d)) = self.dests.get_mut(id.0 as usize) {
            d.stats.conn();
        }
        if let Some(Some(s)) = self.services.get_mut(svc as usize) {
            s.stats.conn();
        }
        self.total.conn();
    }

    /// The configured weight of a real server (linked or trashed).
    fn dest_weight(&self, id: DestId) -> u32 {
        match self.dests.get(id.0 as usize) {
            Some(Some(d)) => d.config.weight,
            _ => 0,
        }
    }

    pub(super) fn dest_flags(&self, id: DestId) -> ConnFlags {
        match self.dests.get(id.0 as usize) {
            Some(Some(d)) => d.conn_flags,
            _ => ConnFlags::INACTIVE,
        }
    }

    /// `ip_vs_service_find`: fwmark (if the packet has a mark) → exact → FTP → port 0.
    pub(super) fn find_service(&self, pkt: &FlowPacket) -> Option<u32> {
        let family = Family::of(&pkt.dst.ip());
        if pkt.fwmark != 0 {
            if let Some(i) = self.service_index(&ServiceKey::Fwmark {
                mark: pkt.fwmark,
                family,
            }) {
                return Some(i);
            }
        }
        let vaddr = pkt.dst.ip();
        let exact = |port| self.addr_service_index(pkt.protocol, vaddr, port);
        if let Some(i) = exact(pkt.dst.port()) {
            return Some(i);
        }
        // Without a helper module the kernel still sends TCP port 20 and unprivileged ports
        // to an FTP service of the same address (`ftpsvc_counter`).
        let vport = pkt.dst.port();
        if self.ftp_services > 0
            && pkt.protocol == Protocol::Tcp
            && (vport == FTP_DATA_PORT || vport >= UNPRIVILEGED_PORT_START)
        {
            if let Some(i) = exact(FTP_PORT) {
                return Some(i);
            }
        }
        exact(0)
    }

    /// For a packet about to be scheduled: reads the out-index bucket and the slot its
    /// connection's insert will use, so that their cache misses overlap the scheduling
    /// instead of following it, and returns the reply key's hash for the insert. The reply
    /// key assumed is that of every method but NAT (the virtual service answers the client);
    /// for a NAT real server the insert hashes its own.
    ///
    /// With the packet's hint (`known`: the hash of that reply key) the buckets were read
    /// when the caller prefetched the hint, and the hash is the hint's.
    fn read_ahead_insert(&mut self, pkt: &FlowPacket, known: Option<u64>) -> Option<u64> {
        if known.is_some() {
            return known;
        }
        if !self.reply_from_vip {
            // Every real server uses NAT: the insert hashes the entry's own reply key. The
            // slot it will use is read ahead all the same.
            self.table.prefetch_free_slot();
            return None;
        }
        let h = match (&pkt.src, &pkt.dst) {
            // IPv4: hashed straight from the addresses, as `flow_hint` does.
            (SocketAddr::V4(c), SocketAddr::V4(v)) => self.table.out_hash_v4(
                pkt.protocol,
                v.ip().to_bits(),
                v.port(),
                c.ip().to_bits(),
                c.port(),
            ),
            _ => self.table.out_hash(&insert_out_key(pkt)),
        };
        self.table.prefetch(None, Some(h));
        self.table.prefetch_free_slot();
        Some(h)
    }

    /// When to schedule (spec §6.2), as far as the packet's own flags tell: not a TCP RST,
    /// and a TCP SYN unless `sloppy_tcp`; any other protocol.
    #[inline]
    fn may_schedule(&self, pkt: &FlowPacket) -> bool {
        self.may_schedule_flags(pkt.protocol, pkt.tcp_flags)
    }

    /// [`Director::may_schedule`] of a packet's protocol and TCP flags.
    #[inline]
    fn may_schedule_flags(&self, protocol: Protocol, f: u8) -> bool {
        protocol != Protocol::Tcp
            || (f & TcpInput::RST == 0 && (f & TcpInput::SYN != 0 || self.sysctls.sloppy_tcp))
    }

    /// `conn_schedule` + `ip_vs_schedule` / `ip_vs_sched_persist` + `ip_vs_leave`, for a
    /// packet whose lookup missed: `known_key` the hash of its in-key that lookup computed,
    /// `known_out` the hint's hash of [`insert_out_key`] (see [`MissHashes`]).
    fn schedule(
        &mut self,
        now: Instant,
        pkt: &FlowPacket,
        known_key: Option<u64>,
        known_out: Option<u64>,
    ) -> Result<Scheduled, FlowVerdict> {
        // When to schedule (spec §6.2).
        if !self.may_schedule(pkt) {
            return Err(FlowVerdict::NotOurs);
        }
        let Some(svc) = self.find_service(pkt) else {
            return Err(FlowVerdict::NotOurs);
        };
        if pkt.src.port() == FTP_DATA_PORT {
            // `ip_vs_schedule`: "Not scheduling FTPDATA" (any protocol, `ignored = 1`: the
            // packet continues to the local stack), spec §6.2.
            return Err(FlowVerdict::NotOurs);
        }
        let miss = MissHashes {
            key: known_key,
            out: self.read_ahead_insert(pkt, known_out),
        };
        let s = self.services[svc as usize]
            .as_ref()
            .expect("indexed service");
        let key = s.config.key;
        let svc_port = key.port();
        let is_fwmark = key.is_fwmark();
        let persistence = s.config.persistence;
        let ops = s.config.one_packet && pkt.protocol == Protocol::Udp;
        let vport = pkt.dst.port();

        let Some(persist) = persistence else {
            if !is_fwmark && vport != svc_port {
                // `ip_vs_schedule` sets `ignored = 0` before this test: the packet is left
                // to `ip_vs_leave` (an FTP service's data ports go to the local stack).
                return Err(self.leave(svc_port, vport));
            }
            let Some(dest) = self.run_scheduler(now, svc, pkt) else {
                return Err(self.leave(svc_port, vport));
            };
            let (daddr, dport0, flags) = self.dest_target(dest);
            let dport = if dport0 != 0 { dport0 } else { vport };
            let conn = self.new_conn(now, pkt, dest, flags, daddr, dport, ops, None, miss)?;
            self.count_conn(dest, svc);
            return Ok(Scheduled {
                conn,
                template: None,
                dest,
                daddr,
                dport,
            });
        };

        self.schedule_persist(now, pkt, svc, persist, ops, miss)
    }

    /// `ip_vs_sched_persist` (the part of [`Director::schedule`] for a persistent service):
    /// out of line, so that the flow layer's common path stays short.
    #[inline(never)]
    fn schedule_persist(
        &mut self,
        now: Instant,
        pkt: &FlowPacket,
        svc: u32,
        persist: crate::rules::Persistence,
        ops: bool,
        miss: MissHashes,
    ) -> Result<Scheduled, FlowVerdict> {
        let key = self.services[svc as usize]
            .as_ref()
            .expect("indexed service")
            .config
            .key;
        let svc_port = key.port();
        let vport = pkt.dst.port();
        let snet = mask_addr(pkt.src.ip(), &persist.mask);
        let (tproto, tvaddr, tvport) = if vport == svc_port {
            // FTP: vport 0 so that data connections share the template.
            (
                pkt.protocol,
                pkt.dst.ip(),
                if svc_port != FTP_PORT { vport } else { 0 },
            )
        } else if let ServiceKey::Fwmark { mark, family } = key {
            (Protocol::Ip, fwmark_addr(mark, family), 0)
        } else {
            (pkt.protocol, pkt.dst.ip(), 0)
        };
        let tkey = InKey {
            protocol: tproto,
            caddr: snet,
            cport: 0,
            vaddr: tvaddr,
            vport: tvport,
        };
        let mut ct = self.table.lookup_template(&tkey);
        if let Some(t) = ct {
            // `ip_vs_check_template`.
            let valid = self.table.dest(t).is_some_and(|d| {
                self.dest_available(d)
                    && !(self.sysctls.expire_quiescent_template && self.dest_weight(d) == 0)
            });
            if !valid {
                self.table.unhash(t);
                ct = None;
            }
        }
        let (ct, dest) = match ct {
            Some(t) => match self.table.dest(t) {
                Some(d) => (t, d),
                None => return Err(FlowVerdict::NotOurs),
            },
            None => {
                let Some(dest) = self.run_scheduler(now, svc, pkt) else {
                    return Err(self.leave(svc_port, vport));
                };
                let (daddr, dport0) = self.dest_addr(dest);
                let tdport = if vport == svc_port && svc_port != FTP_PORT {
                    dport0
                } else {
                    0
                };
                let flags = self.dest_flags(dest).with(ConnFlags::TEMPLATE);
                let ins = self.table.insert(
                    now,
                    NewConn {
                        protocol: tproto,
                        caddr: snet,
                        cport: 0,
                        vaddr: tvaddr,
                        vport: tvport,
                        daddr,
                        dport: tdport,
                        flags,
                        fwmark: pkt.fwmark,
                        dest: Some(dest),
                        control: None,
                        timeout: Duration::from_secs(persist.timeout_secs as u64),
                    },
                );
                match ins {
                    Ok(ins) => {
                        self.after_insert(now, &ins);
                        (ins.id, dest)
                    }
                    Err(_) => return Err(FlowVerdict::Drop(DropReason::TableFull)),
                }
            }
        };
        let (daddr, dport0, flags) = self.dest_target(dest);
        let dport = if vport == svc_port && dport0 != 0 {
            dport0
        } else {
            vport
        };
        let conn = self.new_conn(now, pkt, dest, flags, daddr, dport, ops, Some(ct), miss)?;
        // `ip_vs_control_add` + `ip_vs_conn_put(ct)`: the template is re-armed.
        self.table.touch(ct, now);
        self.count_conn(dest, svc);
        Ok(Scheduled {
            conn,
            template: Some(ct),
            dest,
            daddr,
            dport,
        })
    }

    fn run_scheduler(&mut self, now: Instant, svc: u32, pkt: &FlowPacket) -> Option<DestId> {
        let flow = FlowKey::new(
            pkt.protocol,
            pkt.src.ip(),
            pkt.src.port(),
            pkt.dst.ip(),
            pkt.dst.port(),
        );
        let s = self.services[svc as usize].as_mut()?;
        let mut ctx = SchedContext {
            now,
            rng: &mut self.rng,
        };
        s.pool.schedule(&flow, &mut ctx)
    }

    /// `ip_vs_leave` without cache_bypass: an FTP service accepts other ports; otherwise ICMP
    /// port unreachable.
    fn leave(&self, svc_port: u16, vport: u16) -> FlowVerdict {
        if svc_port == FTP_PORT && vport != FTP_PORT {
            FlowVerdict::NotOurs
        } else {
            FlowVerdict::NoDestination
        }
    }

    fn dest_addr(&self, id: DestId) -> (IpAddr, u16) {
        match self.dests.get(id.0 as usize) {
            Some(Some(d)) => (d.config.addr, d.config.port),
            _ => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        }
    }

    /// [`Director::dest_addr`] and [`Director::dest_flags`] in one look at the real server.
    #[inline]
    fn dest_target(&self, id: DestId) -> (IpAddr, u16, ConnFlags) {
        match self.dests.get(id.0 as usize) {
            Some(Some(d)) => (d.config.addr, d.config.port, d.conn_flags),
            _ => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, ConnFlags::INACTIVE),
        }
    }

    /// Applies the bind delta of an insert and treats an evicted entry as expired.
    pub(super) fn after_insert(&mut self, now: Instant, ins: &crate::conn::Inserted) {
        self.after_insert_parts(now, ins.id, ins.bind, ins.evicted.as_ref());
    }

    /// [`Director::after_insert`] for the parts of an insert (see `ConnTable::insert_lean`).
    #[inline]
    fn after_insert_parts(
        &mut self,
        now: Instant,
        id: ConnId,
        bind: Option<(DestId, DestDelta)>,
        evicted: Option<&crate::conn::Expired>,
    ) {
        // `ip_vs_conn_new`: `old_state` 0, `sync_endtime` now (only kept once sync is used).
        if self.sync_master.is_some() || (id.index() as usize) < self.sync_slots.len() {
            *super::sync::slot(&mut self.sync_slots, id) = super::sync::MasterSlot::fresh(now);
        }
        if let Some(e) = evicted {
            self.on_expired(e);
        }
        if let Some((d, delta)) = bind {
            self.apply_delta(d, DeltaKind::Bind, delta);
        }
    }

    /// `ip_vs_conn_new` for a connection: inserted, or for one-packet scheduling only bound
    /// (the caller unbinds after forwarding). `Ok(None)` for one-packet connections. `flags`:
    /// the real server's conn flags ([`Director::dest_flags`]); `miss`: the hashes the
    /// packet's missed lookup left (its in-key is in no entry).
    #[allow(clippy::too_many_arguments)]
    fn new_conn(
        &mut self,
        now: Instant,
        pkt: &FlowPacket,
        dest: DestId,
        flags: ConnFlags,
        daddr: IpAddr,
        dport: u16,
        ops: bool,
        control: Option<ConnId>,
        miss: MissHashes,
    ) -> Result<Option<ConnId>, FlowVerdict> {
        // The decision is made: the counter changes of the rest of this packet (bind, state
        // change, a one-packet unbind) reach the schedulers once, at its end (`end_deferral`).
        self.defer_refresh = true;
        debug_assert_eq!(flags, self.dest_flags(dest));
        if ops {
            self.apply_delta(dest, DeltaKind::Bind, DestDelta::bind(flags));
            self.counters.scheduled += 1;
            return Ok(None);
        }
        let mut evicted = None;
        // The common connection (IPv4, a client port, no mark, no template; a real server's
        // flags never hold TEMPLATE, NO_CPORT or ONE_PACKET) goes in by the table's short
        // path: its key's absence is known from the lookup, and its fields are integers.
        let plain =
            ConnFlags::TEMPLATE.bits() | ConnFlags::NO_CPORT.bits() | ConnFlags::ONE_PACKET.bits();
        let ins = match (miss.key, &pkt.src, &pkt.dst, daddr) {
            (Some(h), SocketAddr::V4(c), SocketAddr::V4(v), IpAddr::V4(d))
                if control.is_none()
                    && pkt.fwmark == 0
                    && c.port() != 0
                    && flags.bits() & plain == 0 =>
            {
                self.table
                    .insert_conn_v4(
                        now,
                        &NewConnV4 {
                            protocol: pkt.protocol,
                            caddr: c.ip().to_bits(),
                            cport: c.port(),
                            vaddr: v.ip().to_bits(),
                            vport: v.port(),
                            daddr: d.to_bits(),
                            dport,
                            flags,
                            dest,
                            timeout: NEW_CONN_TIMEOUT,
                        },
                        h,
                        miss.out,
                        &mut evicted,
                    )
                    .map(|id| (id, Some((dest, DestDelta::bind(flags)))))
            }
            _ => self.table.insert_lean(
                now,
                &NewConn {
                    protocol: pkt.protocol,
                    caddr: pkt.src.ip(),
                    cport: pkt.src.port(),
                    vaddr: pkt.dst.ip(),
                    vport: pkt.dst.port(),
                    daddr,
                    dport,
                    flags,
                    fwmark: pkt.fwmark,
                    dest: Some(dest),
                    control,
                    timeout: NEW_CONN_TIMEOUT,
                },
                // Used only if it is this connection's key (the table checks).
                miss.key
                    .map(|h| (InKey::of_flow(pkt.protocol, pkt.src, pkt.dst), h)),
                miss.out.map(|h| (insert_out_key(pkt), h)),
                &mut evicted,
            ),
        };
        match ins {
            Ok((id, bind)) => {
                // The bind waits for this packet's state change (see `pending_bind`).
                self.after_insert_parts(now, id, None, evicted.as_ref());
                self.pending_bind = bind;
                self.counters.scheduled += 1;
                Ok(Some(id))
            }
            Err(InsertError::Full) => Err(FlowVerdict::Drop(DropReason::TableFull)),
            // A conn with this key exists but could not be reused (it controls others): the
            // kernel would create a duplicate it can never find; we keep the old one.
            Err(_) => Err(FlowVerdict::Drop(DropReason::TableFull)),
        }
    }
}
