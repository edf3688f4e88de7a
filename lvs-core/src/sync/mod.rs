//! The IPVS connection synchronisation protocol (spec §4): the datagrams a master director
//! multicasts so that backups hold the same connections, and the pure decisions on both sides.
//!
//! Independent of the connection table: this module turns records into bytes and back, and
//! answers "sync this connection now?" (master) and "what flags / timeout / action for this
//! record?" (backup). The director owns the table and applies the answers.
//!
//! - [`SyncConn`] / [`SyncMessage`]: the protocol-neutral record and a decoded datagram.
//! - [`decode()`] / [`decode_for_backup`]: strict parsing of version 1 and version 0
//!   datagrams, accepting what `ip_vs_process_message` accepts.
//! - [`SyncBatcher`] / [`SyncMessage::encode`]: datagrams of at most `sync_maxlen` bytes,
//!   header fields exactly as the kernel writes them.
//! - [`master`]: `ip_vs_sync_conn_needed` and the `in_pkts` arithmetic (spec §4.3).
//! - [`backup`]: syncid filter, received flags, timeout, replaced-connection decision
//!   (spec §4.4).
//! - [`role`]: the master / backup role driven by a VRRP daemon's notify hooks.
//!
//! The director applies these: [`Director::apply_sync`](crate::director::Director::apply_sync)
//! on a backup, [`Director::set_sync_master`](crate::director::Director::set_sync_master) and
//! [`Director::poll_sync`](crate::director::Director::poll_sync) on a master (see
//! [`crate::director::sync`]).
//!
//! # Where this differs from the kernel, and why
//! - A datagram the kernel drops part-way (bad length, bad option, …) is rejected as a whole:
//!   the kernel has already applied the records before the bad one; here the caller never
//!   sees half a message and counts one [`SyncReason`].
//! - The batcher closes a datagram at 255 records; the kernel's one-byte count would wrap (with
//!   `sync_maxlen` above about 9 KB) and backups would lose records.
//! - Version 0 sequence data is in the sender's host byte order; it is read and written as
//!   little-endian (x86, arm64).
//! - Datagrams of 4 to 7 bytes are read as version 0 (the kernel reads the version byte past
//!   the datagram).
//! - The persistence engine named in a record is not looked up here (the kernel skips the
//!   record when the engine is not loaded): that is the director's table of engines.
//! - IPv6 records are always understood (kernels built without `CONFIG_IP_VS_IPV6` skip them).
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::conn::{ConnFlags, FwdMethod};
//! use lvs_core::sync::{decode, SyncConn, SyncMessage, SyncVersion};
//!
//! let rec = SyncConn {
//!     protocol: 6,
//!     flags: ConnFlags::for_method(FwdMethod::DirectRoute),
//!     state: 1, // ESTABLISHED
//!     cport: 40000,
//!     vport: 80,
//!     dport: 80,
//!     fwmark: 0,
//!     timeout: 900,
//!     caddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
//!     vaddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 80)),
//!     daddr: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
//!     seq: None,
//!     pe_data: None,
//!     pe_name: None,
//! };
//! let msg = SyncMessage::new(SyncVersion::V1, 7, vec![rec]);
//! let bytes = msg.encode().unwrap();
//! assert_eq!(bytes.len(), 8 + 36);
//! assert_eq!(&bytes[..8], &[0, 7, 0, 44, 1, 1, 0, 0]);
//! assert_eq!(decode(&bytes).unwrap(), msg);
//! ```

pub mod backup;
pub mod decode;
pub mod encode;
mod error;
pub mod master;
pub mod role;

pub use decode::{decode, decode_for_backup, decode_header, SyncHeader};
pub use encode::{encode_record, record_len, SyncBatcher};
pub use error::{EncodeError, SkipReason, SkippedRecord, SyncError, SyncReason};

use core::fmt;
use core::net::{IpAddr, Ipv4Addr};

use crate::conn::{Conn, ConnFlags};

/// Default multicast group, 224.0.0.81 (`IP_VS_SYNC_GROUP`).
pub const DEFAULT_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// Default UDP port, 8848 (`IP_VS_SYNC_PORT`); thread `i` of `sync_ports` uses port + `i`.
pub const DEFAULT_PORT: u16 = 8848;
/// Default `sync_maxlen` of a master on IPv4 transport: 1500 − 20 − 8.
pub const DEFAULT_MAXLEN_V4: usize = 1472;
/// Default `sync_maxlen` of a master on IPv6 transport: 1500 − 40 − 8.
pub const DEFAULT_MAXLEN_V6: usize = 1452;
/// Version 1 message header length.
pub const V1_HEADER_LEN: usize = 8;
/// Version 0 message header length.
pub const V0_HEADER_LEN: usize = 4;
/// Fixed part of a version 1 IPv4 record (`struct ip_vs_sync_v4`).
pub const V1_V4_RECORD_LEN: usize = 36;
/// Fixed part of a version 1 IPv6 record (`struct ip_vs_sync_v6`).
pub const V1_V6_RECORD_LEN: usize = 72;
/// A version 0 record without sequence data (`SIMPLE_CONN_SIZE`).
pub const V0_RECORD_LEN: usize = 24;
/// The sequence data block (`struct ip_vs_sync_conn_options`): two `ip_vs_seq` of 12 bytes.
pub const SEQ_DATA_LEN: usize = 24;
/// Longest persistence-engine name (`IP_VS_PENAME_MAXLEN`).
pub const PE_NAME_MAXLEN: usize = 16;
/// Longest persistence-engine data (`IP_VS_PEDATA_MAXLEN`).
pub const PE_DATA_MAXLEN: usize = 255;
/// Most records one datagram can count (the header's count is one byte).
pub const MAX_RECORDS: usize = 255;

/// Option type: sequence data (`IPVS_OPT_SEQ_DATA`).
pub const OPT_SEQ_DATA: u8 = 1;
/// Option type: persistence-engine data (`IPVS_OPT_PE_DATA`).
pub const OPT_PE_DATA: u8 = 2;
/// Option type: persistence-engine name (`IPVS_OPT_PE_NAME`).
pub const OPT_PE_NAME: u8 = 3;
/// Option type bit marking an option a receiver may skip when it does not know it
/// (`IPVS_OPT_F_PARAM`, `1 << (7 - 1)`).
pub const OPT_F_OPTIONAL: u8 = 0x40;

/// The protocol version of a datagram (sysctl `sync_version`, default 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SyncVersion {
    /// The legacy format: 4-byte header, 24-byte IPv4-only records, no timeout or fwmark.
    V0,
    /// The current format: 8-byte header, IPv4 and IPv6 records with options.
    #[default]
    V1,
}

/// One direction's TCP sequence adjustment (`struct ip_vs_seq`), used by NAT application
/// helpers (FTP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqData {
    /// Add `delta` from this sequence number on.
    pub init_seq: u32,
    /// Delta in the sequence numbers after `init_seq`.
    pub delta: u32,
    /// Delta in the sequence numbers before `init_seq`.
    pub previous_delta: u32,
}

/// The sequence data option: incoming then outgoing adjustment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqOptions {
    /// Incoming direction (`in_seq`).
    pub in_seq: SeqData,
    /// Outgoing direction (`out_seq`).
    pub out_seq: SeqData,
}

/// A persistence-engine name, 1 to [`PE_NAME_MAXLEN`] bytes (for example `sip`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeName {
    len: u8,
    bytes: [u8; PE_NAME_MAXLEN],
}

impl PeName {
    /// The name from its bytes; `None` when empty or longer than 16 bytes.
    ///
    /// ```
    /// use lvs_core::sync::PeName;
    /// assert_eq!(PeName::new(b"sip").unwrap().as_bytes(), b"sip");
    /// assert!(PeName::new(b"").is_none());
    /// assert!(PeName::new(&[b'x'; 17]).is_none());
    /// ```
    pub fn new(name: &[u8]) -> Option<PeName> {
        if name.is_empty() || name.len() > PE_NAME_MAXLEN {
            return None;
        }
        let mut bytes = [0; PE_NAME_MAXLEN];
        bytes[..name.len()].copy_from_slice(name);
        Some(PeName {
            len: name.len() as u8,
            bytes,
        })
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for PeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeName({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// One synchronised connection or template, as carried by either protocol version.
///
/// Ports are host-order numbers; they are written big-endian. The record's type (IPv4 or
/// IPv6) is the family of the three addresses, which must agree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SyncConn {
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP, 50/51 ESP/AH, 0 for fwmark templates).
    pub protocol: u8,
    /// Connection flags. `HASHED` is cleared by the encoder (as the kernel sends it) and by the
    /// decoder (as every kernel receiver drops it); version 1 carries 32 bits on the wire of
    /// which only the low 16 are kept.
    pub flags: ConnFlags,
    /// Raw protocol state (TCP: `TcpState` index; templates: NONE 0 / ASSURED 1).
    pub state: u16,
    /// Client port.
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Real-server port.
    pub dport: u16,
    /// Firewall mark (version 1 only; 0 in version 0).
    pub fwmark: u32,
    /// The connection's current timeout in whole seconds (version 1 only). 0 means "not
    /// sent": the backup then uses the protocol timeout of the state (templates: 180 s).
    pub timeout: u32,
    /// Client address.
    pub caddr: IpAddr,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Real-server address.
    pub daddr: IpAddr,
    /// Sequence adjustment (connections with `IN_SEQ` / `OUT_SEQ`).
    pub seq: Option<SeqOptions>,
    /// Persistence-engine data, 1 to 255 bytes (version 1 only).
    pub pe_data: Option<Vec<u8>>,
    /// Persistence-engine name (version 1 only).
    pub pe_name: Option<PeName>,
}

impl SyncConn {
    /// Whether this is an IPv6 record (type bit 0).
    pub fn is_ipv6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    /// Whether the record describes a persistence template.
    pub fn is_template(&self) -> bool {
        self.flags.contains(ConnFlags::TEMPLATE)
    }

    /// The record a master sends for a table entry, as `ip_vs_sync_conn` fills it: every
    /// field of `conn`, with `timeout_secs` = the entry's current timeout in seconds
    /// (its template timeout, or the timeout of its state; 60 for a deferred expiry). The
    /// table keeps no sequence or persistence-engine data: set [`SyncConn::seq`] when the
    /// connection has `IN_SEQ`/`OUT_SEQ` (the kernel sends the option exactly then).
    pub fn from_conn(conn: &Conn, timeout_secs: u32) -> SyncConn {
        SyncConn {
            protocol: conn.protocol.number(),
            flags: conn.flags.without(ConnFlags::HASHED),
            state: u16::from(conn.state),
            cport: conn.cport,
            vport: conn.vport,
            dport: conn.dport,
            fwmark: conn.fwmark,
            timeout: timeout_secs,
            caddr: conn.caddr,
            vaddr: conn.vaddr,
            daddr: conn.daddr,
            seq: None,
            pe_data: None,
            pe_name: None,
        }
    }
}

/// A decoded datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncMessage {
    /// The format it was written in.
    pub version: SyncVersion,
    /// The master's syncid.
    pub syncid: u8,
    /// The records a kernel backup would apply, in datagram order.
    pub records: Vec<SyncConn>,
    /// Records a kernel backup skips without dropping the datagram (unknown protocol, invalid
    /// state, unknown mandatory option, PE data without a name), in datagram order. Empty
    /// after encoding.
    pub skipped: Vec<SkippedRecord>,
}

impl SyncMessage {
    /// A message of `records`, nothing skipped.
    pub fn new(version: SyncVersion, syncid: u8, records: Vec<SyncConn>) -> SyncMessage {
        SyncMessage {
            version,
            syncid,
            records,
            skipped: Vec::new(),
        }
    }
}

/// Number of states of a protocol the kernel's backup knows (`pp->num_states`), `None` for a
/// protocol without an IPVS handler (records of it are skipped unless they are templates).
///
/// AH and ESP count as known, as in kernels built with `CONFIG_IP_VS_PROTO_AH_ESP` (the
/// usual distribution configuration).
///
/// ```
/// use lvs_core::sync::protocol_states;
/// assert_eq!(protocol_states(6), Some(11));
/// assert_eq!(protocol_states(17), Some(1));
/// assert_eq!(protocol_states(132), Some(14));
/// assert_eq!(protocol_states(0), None);
/// ```
pub const fn protocol_states(protocol: u8) -> Option<u16> {
    match protocol {
        6 => Some(11),   // IP_VS_TCP_S_LAST
        17 => Some(1),   // IP_VS_UDP_S_LAST
        132 => Some(14), // IP_VS_SCTP_S_LAST
        50 | 51 => Some(1),
        _ => None,
    }
}
