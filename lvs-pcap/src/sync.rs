//! Connection synchronisation in captures: the datagrams a sync master multicasts, written
//! as a capture (`lvs-pcap replay --sync-out`), and a backup director fed from such a
//! capture (`lvs-pcap sync`).
//!
//! # The frames ([`sync_frame`])
//! Each datagram (what [`Director::poll_sync`] returns) becomes one Ethernet frame to the
//! IPv4 multicast MAC 01:00:5e:00:00:51 of 224.0.0.81 (the kernel's
//! [`DEFAULT_GROUP_V4`]), from the director's MAC as learnt from the replayed capture (or
//! 00:00:00:00:00:00), IPv4 with TTL 1 (the kernel's sync socket sets a multicast TTL of 1),
//! no DF (the kernel turns path-MTU discovery off on that socket), an IP ID counting from 1,
//! UDP from port 8848 to 8848 ([`DEFAULT_PORT`]), both checksums valid. The source address is
//! the first IPv4 `--local` address, 0.0.0.0 without one. Wireshark's `ipvs` dissector
//! decodes UDP port 8848.
//!
//! # The backup ([`SyncReplay`])
//! A backup director built from the rules takes every UDP datagram to port 8848 of the
//! capture (any link type [`crate::link`] reads, multicast or not) through
//! [`Director::apply_sync`], with the capture's clock (nanoseconds since the first packet),
//! its timers running between datagrams as they would have. A datagram whose UDP checksum
//! does not verify is rejected (`udp_checksum`: the kernel's UDP layer drops it before the
//! sync thread sees it) unless checksums are not checked (offloaded captures).
//!
//! ```
//! use lvs_core::conn::HashKey;
//! use lvs_core::director::{Director, DirectorConfig, FlowPacket, PacketDir, SyncMasterConfig};
//! use lvs_core::rules::RuleSet;
//! use lvs_core::{Instant, Protocol};
//! use lvs_pcap::capture::{CaptureReader, CaptureWriter, LinkType};
//! use lvs_pcap::sync::{sync_frame, SyncOptions, SyncReplay};
//!
//! let rules = RuleSet::from_text("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n")
//!     .unwrap();
//! let mut master = Director::new(DirectorConfig::new(64, HashKey::from_u128(1)));
//! master.apply_rules(Instant::ZERO, &rules).unwrap();
//! master.set_sync_master(Some(SyncMasterConfig::default()));
//! let mut pkt = FlowPacket {
//!     protocol: Protocol::Tcp,
//!     src: "192.0.2.7:40000".parse().unwrap(),
//!     dst: "10.0.0.1:80".parse().unwrap(),
//!     fwmark: 0, tcp_flags: 0x02, len: 60, dir: PacketDir::FromClient,
//! };
//! let t = Instant::from_secs(1);
//! master.handle_flow(t, &pkt);
//! pkt.tcp_flags = 0x10;
//! master.handle_flow(t, &pkt);
//! master.handle_flow(t, &pkt);
//! master.flush_sync();
//! let payload = master.poll_sync(t).unwrap();
//!
//! // The datagram as a captured frame, then a backup fed from that capture.
//! let mut cap = Vec::new();
//! let mut w = CaptureWriter::new(&mut cap, LinkType::ETHERNET).unwrap();
//! w.write_packet(1_000_000_000, &sync_frame([0; 6], "10.0.0.2".parse().unwrap(), 1, &payload))
//!     .unwrap();
//! w.into_inner().unwrap();
//! let mut reader = CaptureReader::new(&cap[..]).unwrap();
//! let report = SyncReplay::run(&rules, SyncOptions::default(), &mut reader).unwrap();
//! assert_eq!((report.datagrams, report.applied, report.exit_status()), (1, 1, 0));
//! assert_eq!(
//!     report.table,
//!     "IPVS connection entries\n\
//!      pro expire state       source             virtual            destination\n\
//!      TCP 15:00  ESTABLISHED 192.0.2.7:40000    10.0.0.1:80        10.1.0.1:80\n",
//! );
//! ```

use core::net::Ipv4Addr;
use std::collections::BTreeMap;
use std::io::{self, Write};

use lvs_core::conn::HashKey;
use lvs_core::director::{Director, DirectorConfig, SyncBackupConfig, SyncSkip};
use lvs_core::rules::listing::{list_conns, ConnEntry};
use lvs_core::rules::{RuleError, RuleSet};
use lvs_core::sync::{SyncReason, DEFAULT_GROUP_V4, DEFAULT_PORT};
use lvs_core::time::Instant;
use lvs_core::wire::{checksum, classify, proto, Family};
use serde::Serialize;

use crate::capture::{CaptureReader, CaptureWriter, LinkType};
use crate::link::{self, Decoded, Mac};

/// The Ethernet address of 224.0.0.81 (RFC 1112: 01:00:5e and the low 23 bits).
pub const SYNC_MAC: Mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x51];

/// Ethernet (14) + IPv4 (20) + UDP (8) bytes in front of a sync payload.
pub const FRAME_OVERHEAD: usize = 42;

/// The Ethernet frame carrying one sync datagram `payload` from `src` (see the module docs).
/// A payload longer than 65507 bytes (more than IPv4 can carry; a master's `maxlen` is at
/// most that) is cut there.
pub fn sync_frame(src_mac: Mac, src: Ipv4Addr, ip_id: u16, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(65_507)];
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + total);
    f.extend_from_slice(&SYNC_MAC);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let dst = DEFAULT_GROUP_V4;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    // Flags / fragment offset 0: no DF (the kernel's sync socket has PMTU discovery off).
    ip[8] = 1; // TTL 1: the kernel's IP_MULTICAST_TTL for the sync socket.
    ip[9] = proto::UDP;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let h = !checksum::data(&ip);
    ip[10..12].copy_from_slice(&h.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut udp = [0u8; 8];
    udp[0..2].copy_from_slice(&DEFAULT_PORT.to_be_bytes());
    udp[2..4].copy_from_slice(&DEFAULT_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let sum = checksum::combine(&[
        checksum::pseudo_header_v4(&src, &dst, proto::UDP, udp_len as u32),
        checksum::data(&udp),
        checksum::data(payload),
    ]);
    // An all-zero UDP checksum means "none" in IPv4: a computed 0 is sent as 0xffff.
    let c = checksum::udp_nonzero(!sum);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&udp);
    f.extend_from_slice(payload);
    f
}

/// Writes sync datagrams as an Ethernet capture (`--sync-out`).
pub struct SyncCapture<W: Write> {
    writer: CaptureWriter<W>,
    src: Ipv4Addr,
    next_id: u16,
    /// Datagrams written.
    pub datagrams: u64,
}

impl<W: Write> SyncCapture<W> {
    /// A capture (pcap, Ethernet) on `w` whose frames come from `src`.
    pub fn new(w: W, src: Ipv4Addr) -> io::Result<Self> {
        Ok(SyncCapture {
            writer: CaptureWriter::new(w, LinkType::ETHERNET)?,
            src,
            next_id: 1,
            datagrams: 0,
        })
    }

    /// Writes one datagram emitted at `ts_nanos` (Unix time) from `src_mac`.
    pub fn write(&mut self, ts_nanos: u64, src_mac: Mac, payload: &[u8]) -> io::Result<()> {
        let f = sync_frame(src_mac, self.src, self.next_id, payload);
        self.next_id = self.next_id.wrapping_add(1);
        self.datagrams += 1;
        self.writer.write_packet(ts_nanos, &f)
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(self) -> io::Result<W> {
        let mut w = self.writer.into_inner()?;
        w.flush()?;
        Ok(w)
    }
}

/// Settings of `lvs-pcap sync`.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// The backup's `--syncid` (0: every syncid).
    pub syncid: u8,
    /// List the table at this capture time (since the first packet) instead of at the last
    /// datagram; datagrams after it are not applied.
    pub at: Option<Instant>,
    /// Reject datagrams whose UDP checksum does not verify.
    pub verify_checksums: bool,
    /// Connection table capacity.
    pub conn_capacity: u32,
    /// Most timer steps before one datagram.
    pub max_timer_steps: u32,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            syncid: 0,
            at: None,
            verify_checksums: true,
            conn_capacity: 1 << 20,
            max_timer_steps: 1 << 16,
        }
    }
}

/// One connection of the backup's table, for `--json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JsonConn {
    /// `TCP`, `UDP`, `SCTP` or `IP`.
    pub protocol: String,
    /// Client `addr:port`.
    pub client: String,
    /// Virtual `addr:port`.
    pub virtual_service: String,
    /// Real server `addr:port`.
    pub destination: String,
    /// State name as ipvsadm prints it.
    pub state: String,
    /// Seconds until expiry.
    pub expires_secs: u32,
}

/// What `lvs-pcap sync` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncReport {
    /// Packets read from the capture.
    pub packets: u64,
    /// UDP datagrams to port 8848 found.
    pub datagrams: u64,
    /// Of those, applied (records taken).
    pub applied: u64,
    /// Of those, ignored because of another syncid.
    pub other_syncid: u64,
    /// Of those, rejected whole, per reason ([`SyncReason::name`], or `udp_checksum`).
    pub rejected: BTreeMap<String, u64>,
    /// Records skipped, per reason (decoder reasons and [`SyncSkip`] reasons).
    pub records_skipped: BTreeMap<String, u64>,
    /// Entries created, updated, created unbound.
    pub created: u64,
    /// Entries updated.
    pub updated: u64,
    /// Entries created without a real server.
    pub unbound: u64,
    /// Packets that were not sync datagrams (or not used), per reason.
    pub packets_skipped: BTreeMap<String, u64>,
    /// Capture time (seconds since the first packet) the table is listed at.
    pub listed_at_secs: f64,
    /// The table as `ipvsadm -L -n -c` prints it.
    #[serde(skip)]
    pub table: String,
    /// The table's entries.
    pub connections: Vec<JsonConn>,
    /// The read error that ended the input early, if any (byte offset and message).
    pub input_error: Option<crate::replay::InputError>,
}

impl SyncReport {
    /// Rejected datagrams.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// 2 if the capture could not be read to its end, else 1 if a datagram was rejected,
    /// else 0.
    pub fn exit_status(&self) -> u8 {
        if self.input_error.is_some() {
            2
        } else if self.rejected_total() > 0 {
            1
        } else {
            0
        }
    }

    /// The summary for stderr.
    pub fn summary(&self) -> String {
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
        let mut s = format!(
            "sync datagrams: {} of {} packets; applied {}, rejected {}, other syncid {}\n\
             rejected: {}\n\
             records: created {} (unbound {}), updated {}; skipped: {}\n\
             packets skipped: {}\n",
            self.datagrams,
            self.packets,
            self.applied,
            self.rejected_total(),
            self.other_syncid,
            list(&self.rejected),
            self.created,
            self.unbound,
            self.updated,
            list(&self.records_skipped),
            list(&self.packets_skipped),
        );
        if let Some(e) = &self.input_error {
            s += &format!("input error: {}\n", e.message);
        }
        s
    }

    /// The report (with the table's entries) as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// A backup director fed from a capture.
pub struct SyncReplay {
    director: Director,
    options: SyncOptions,
    first_ts: Option<u64>,
    now: Instant,
    report: SyncReport,
}

fn bump(m: &mut BTreeMap<String, u64>, k: &str, n: u64) {
    if n > 0 {
        *m.entry(k.to_string()).or_insert(0) += n;
    }
}

impl SyncReplay {
    /// A backup director with `rules` applied at time 0.
    pub fn new(rules: &RuleSet, options: SyncOptions) -> Result<Self, RuleError> {
        let config = DirectorConfig::new(
            options.conn_capacity,
            HashKey::from_u128(0x6c76_732d_7063_6170_2073_796e_6320_6275),
        );
        let mut director = Director::new(config);
        director.apply_rules(Instant::ZERO, rules)?;
        director.set_sync_backup(SyncBackupConfig {
            syncid: options.syncid,
            ..SyncBackupConfig::default()
        });
        Ok(SyncReplay {
            director,
            options,
            first_ts: None,
            now: Instant::ZERO,
            report: SyncReport::default(),
        })
    }

    /// The backup director.
    pub fn director(&self) -> &Director {
        &self.director
    }

    fn run_timers(&mut self, now: Instant) {
        let mut steps = 0;
        while let Some(deadline) = self.director.poll_timeout() {
            if deadline > now || steps >= self.options.max_timer_steps {
                break;
            }
            let at = deadline.max(self.now);
            self.director.handle_timeout(at);
            self.now = at;
            steps += 1;
        }
        let mut calls = 0u64;
        let bound = u64::from(self.options.conn_capacity) + 2;
        while calls < bound && self.director.poll_timeout().is_some_and(|d| d <= now) {
            if !self.director.handle_timeout(now) {
                break;
            }
            calls += 1;
        }
        self.now = self.now.max(now);
    }

    fn skip(&mut self, why: &str) {
        bump(&mut self.report.packets_skipped, why, 1);
    }

    /// Handles one captured packet.
    pub fn handle(&mut self, pkt: &crate::capture::Packet<'_>) {
        self.report.packets += 1;
        let first = *self.first_ts.get_or_insert(pkt.ts_nanos);
        // Backwards timestamps are held at the latest time seen.
        let now = Instant::from_nanos(pkt.ts_nanos.saturating_sub(first)).max(self.now);
        let Decoded::Ip { offset, .. } = link::decode(pkt.link, pkt.data) else {
            self.skip("not_ip");
            return;
        };
        let ip = &pkt.data[offset..];
        let Ok(c) = classify(ip) else {
            self.skip("malformed_ip");
            return;
        };
        if c.protocol != proto::UDP || c.icmp_error || c.dst_port != DEFAULT_PORT {
            self.skip("not_sync_port");
            return;
        }
        if c.is_fragment {
            // The kernel would reassemble first; a capture seldom holds all fragments.
            self.skip("fragment");
            return;
        }
        if !c.l4_present || c.total_len > ip.len() {
            self.skip("truncated");
            return;
        }
        let ip = &ip[..c.total_len];
        let l4 = c.l4_offset;
        let udp_len = usize::from(u16::from_be_bytes([ip[l4 + 4], ip[l4 + 5]]));
        if udp_len < 8 || l4 + udp_len > ip.len() {
            self.skip("bad_udp_length");
            return;
        }
        if let Some(at) = self.options.at {
            if now > at {
                self.skip("after_at");
                return;
            }
        }
        self.report.datagrams += 1;
        let udp = &ip[l4..l4 + udp_len];
        let stored = u16::from_be_bytes([udp[6], udp[7]]);
        if self.options.verify_checksums && !(c.family == Family::V4 && stored == 0) {
            let sum = checksum::combine(&[
                checksum::pseudo_header(&c.src, &c.dst, proto::UDP, udp_len as u32),
                checksum::data(udp),
            ]);
            if sum != 0xffff {
                bump(&mut self.report.rejected, "udp_checksum", 1);
                return;
            }
        }
        self.run_timers(now);
        let payload = &udp[8..];
        match self.director.apply_sync(self.now, payload) {
            Ok(a) if a.ignored_syncid => self.report.other_syncid += 1,
            Ok(_) => self.report.applied += 1,
            Err(e) => bump(&mut self.report.rejected, e.reason().name(), 1),
        }
        self.report.listed_at_secs = self.now.as_nanos() as f64 / 1e9;
    }

    /// Lists the table (at `--at`, or the last datagram's time) and returns the report.
    pub fn finish(mut self) -> SyncReport {
        if let Some(at) = self.options.at {
            self.run_timers(at);
            self.report.listed_at_secs = at.as_nanos() as f64 / 1e9;
        }
        let entries: Vec<ConnEntry> = self.director.connections(self.now);
        let st = self.director.sync_stats();
        let r = &mut self.report;
        r.created = st.created;
        r.updated = st.updated;
        r.unbound = st.unbound;
        for reason in SyncReason::ALL {
            if !reason.drops_datagram() && reason != SyncReason::SyncidIgnored {
                bump(&mut r.records_skipped, reason.name(), st.rejected(reason));
            }
        }
        for s in SyncSkip::ALL {
            bump(&mut r.records_skipped, &skip_name(s), st.skipped(s));
        }
        r.table = list_conns(&entries, false);
        let sock = |a: core::net::IpAddr, p: u16| core::net::SocketAddr::new(a, p).to_string();
        r.connections = entries
            .iter()
            .map(|e| JsonConn {
                protocol: e.protocol.name().to_string(),
                client: sock(e.caddr, e.cport),
                virtual_service: sock(e.vaddr, e.vport),
                destination: sock(e.daddr, e.dport),
                state: e.state.clone(),
                expires_secs: e.expires_secs,
            })
            .collect();
        self.report
    }

    /// Feeds every packet of `reader` to a backup built from `rules`; a read error ends the
    /// input and is recorded with its byte offset.
    pub fn run<R: io::Read>(
        rules: &RuleSet,
        options: SyncOptions,
        reader: &mut CaptureReader<R>,
    ) -> Result<SyncReport, RuleError> {
        let mut s = SyncReplay::new(rules, options)?;
        loop {
            match reader.next_packet() {
                Ok(Some(p)) => s.handle(&p),
                Ok(None) => break,
                Err(e) => {
                    s.report.input_error = Some(crate::replay::InputError {
                        offset: e.offset(),
                        message: e.to_string(),
                    });
                    break;
                }
            }
        }
        Ok(s.finish())
    }
}

/// snake_case name of a [`SyncSkip`].
fn skip_name(s: SyncSkip) -> String {
    match s {
        SyncSkip::UnsupportedProtocol => "director_unsupported_protocol",
        SyncSkip::StateTooLarge => "state_too_large",
        SyncSkip::PersistenceEngine => "persistence_engine",
        SyncSkip::OnePacket => "one_packet",
        SyncSkip::NoCportWithPort => "no_cport_with_port",
        SyncSkip::TableFull => "table_full",
    }
    .to_string()
}
