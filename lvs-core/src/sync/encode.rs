//! Writing records and datagrams as `ip_vs_sync_conn` / `ip_vs_sync_conn_v0` do.
//!
//! Version 1 header: reserved 0, syncid, size, count, version 1, spare 0. Records are padded
//! with zero bytes to a 4-byte boundary *before* the next record (so the last record is not
//! padded and the size field excludes its padding). Record `ver_size` = record length with
//! version nibble 0; flags with `HASHED` cleared; options in the kernel's order: sequence data
//! (type 1, length 24), PE data (type 2), PE name (type 3).
//!
//! Version 0 header: count, syncid, size. Records of 24 bytes, followed by the 24-byte
//! sequence block exactly when the flags have `IN_SEQ` or `OUT_SEQ` (zeros if
//! [`SyncConn::seq`] is `None`); no padding, no fwmark, timeout or PE data (they are not
//! written, as the kernel does not), IPv4 only.

use core::net::IpAddr;

use super::error::EncodeError;
use super::{
    SeqData, SyncConn, SyncMessage, SyncVersion, MAX_RECORDS, OPT_PE_DATA, OPT_PE_NAME,
    OPT_SEQ_DATA, PE_DATA_MAXLEN, SEQ_DATA_LEN, V0_HEADER_LEN, V0_RECORD_LEN, V1_HEADER_LEN,
    V1_V4_RECORD_LEN, V1_V6_RECORD_LEN,
};
use crate::conn::ConnFlags;
use crate::time::{Duration, Instant};

const SEQ_MASK: u16 = ConnFlags::IN_SEQ.bits() | ConnFlags::OUT_SEQ.bits();

/// Checks the record and returns whether it is IPv6.
fn check(version: SyncVersion, rec: &SyncConn) -> Result<bool, EncodeError> {
    let v6 = match (rec.caddr, rec.vaddr, rec.daddr) {
        (IpAddr::V4(_), IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => return Err(EncodeError::MixedFamily),
    };
    match version {
        SyncVersion::V0 if v6 => Err(EncodeError::Ipv6InV0),
        SyncVersion::V0 => Ok(false),
        SyncVersion::V1 => {
            if let Some(d) = &rec.pe_data {
                if d.is_empty() || d.len() > PE_DATA_MAXLEN {
                    return Err(EncodeError::PeDataLength { len: d.len() });
                }
            }
            Ok(v6)
        }
    }
}

fn len_checked(version: SyncVersion, rec: &SyncConn, v6: bool) -> usize {
    match version {
        SyncVersion::V0 => {
            if rec.flags.bits() & SEQ_MASK != 0 {
                V0_RECORD_LEN + SEQ_DATA_LEN
            } else {
                V0_RECORD_LEN
            }
        }
        SyncVersion::V1 => {
            let mut len = if v6 {
                V1_V6_RECORD_LEN
            } else {
                V1_V4_RECORD_LEN
            };
            if rec.seq.is_some() {
                len += 2 + SEQ_DATA_LEN;
            }
            if let Some(d) = &rec.pe_data {
                len += 2 + d.len();
            }
            if let Some(n) = &rec.pe_name {
                len += 2 + n.as_bytes().len();
            }
            len
        }
    }
}

/// The encoded length of one record (without padding).
///
/// ```
/// use core::net::Ipv6Addr;
/// use lvs_core::conn::ConnFlags;
/// use lvs_core::sync::{record_len, PeName, SyncConn, SyncVersion};
/// let a = Ipv6Addr::LOCALHOST.into();
/// let rec = SyncConn {
///     protocol: 17, flags: ConnFlags::empty(), state: 0, cport: 5060, vport: 5060,
///     dport: 5060, fwmark: 0, timeout: 300, caddr: a, vaddr: a, daddr: a, seq: None,
///     pe_data: Some(b"call-id".to_vec()), pe_name: PeName::new(b"sip"),
/// };
/// assert_eq!(record_len(SyncVersion::V1, &rec), Ok(72 + 2 + 7 + 2 + 3));
/// ```
pub fn record_len(version: SyncVersion, rec: &SyncConn) -> Result<usize, EncodeError> {
    let v6 = check(version, rec)?;
    Ok(len_checked(version, rec, v6))
}

fn put16(out: &mut [u8], at: usize, v: u16) {
    out[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put_addr(out: &mut [u8], at: usize, a: IpAddr) -> usize {
    match a {
        IpAddr::V4(a) => {
            out[at..at + 4].copy_from_slice(&a.octets());
            at + 4
        }
        IpAddr::V6(a) => {
            out[at..at + 16].copy_from_slice(&a.octets());
            at + 16
        }
    }
}

fn put_seq(out: &mut [u8], at: usize, s: &SeqData, le: bool) {
    let f = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    out[at..at + 4].copy_from_slice(&f(s.init_seq));
    out[at + 4..at + 8].copy_from_slice(&f(s.delta));
    out[at + 8..at + 12].copy_from_slice(&f(s.previous_delta));
}

/// Writes `rec` at the start of `out` (which must hold [`record_len`] bytes); returns the
/// length written.
///
/// # Panics
/// If `out` is shorter than the record (a programmer error: size it with [`record_len`]).
pub fn encode_record(
    version: SyncVersion,
    rec: &SyncConn,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let v6 = check(version, rec)?;
    let len = len_checked(version, rec, v6);
    write_checked(version, rec, v6, &mut out[..len]);
    Ok(len)
}

/// Writes a record already checked with [`check`] into `out`, which is exactly its length.
fn write_checked(version: SyncVersion, rec: &SyncConn, v6: bool, out: &mut [u8]) {
    let len = out.len();
    let flags = rec.flags.without(ConnFlags::HASHED).bits();
    match version {
        SyncVersion::V1 => {
            out[0] = u8::from(v6);
            out[1] = rec.protocol;
            // Version nibble 0; the length always fits 12 bits (at most 373).
            put16(out, 2, len as u16 & 0x0fff);
            put32(out, 4, u32::from(flags));
            put16(out, 8, rec.state);
            put16(out, 10, rec.cport);
            put16(out, 12, rec.vport);
            put16(out, 14, rec.dport);
            put32(out, 16, rec.fwmark);
            put32(out, 20, rec.timeout);
            let mut p = put_addr(out, 24, rec.caddr);
            p = put_addr(out, p, rec.vaddr);
            p = put_addr(out, p, rec.daddr);
            if let Some(s) = &rec.seq {
                out[p] = OPT_SEQ_DATA;
                out[p + 1] = SEQ_DATA_LEN as u8;
                put_seq(out, p + 2, &s.in_seq, false);
                put_seq(out, p + 14, &s.out_seq, false);
                p += 2 + SEQ_DATA_LEN;
            }
            if let Some(d) = &rec.pe_data {
                out[p] = OPT_PE_DATA;
                out[p + 1] = d.len() as u8;
                out[p + 2..p + 2 + d.len()].copy_from_slice(d);
                p += 2 + d.len();
            }
            if let Some(n) = &rec.pe_name {
                let n = n.as_bytes();
                out[p] = OPT_PE_NAME;
                out[p + 1] = n.len() as u8;
                out[p + 2..p + 2 + n.len()].copy_from_slice(n);
                p += 2 + n.len();
            }
            debug_assert_eq!(p, len);
        }
        SyncVersion::V0 => {
            out[0] = 0;
            out[1] = rec.protocol;
            put16(out, 2, rec.cport);
            put16(out, 4, rec.vport);
            put16(out, 6, rec.dport);
            put_addr(out, 8, rec.caddr);
            put_addr(out, 12, rec.vaddr);
            put_addr(out, 16, rec.daddr);
            put16(out, 20, flags);
            put16(out, 22, rec.state);
            if len > V0_RECORD_LEN {
                let s = rec.seq.unwrap_or_default();
                put_seq(out, V0_RECORD_LEN, &s.in_seq, true);
                put_seq(out, V0_RECORD_LEN + 12, &s.out_seq, true);
            }
        }
    }
}

const fn header_len(version: SyncVersion) -> usize {
    match version {
        SyncVersion::V0 => V0_HEADER_LEN,
        SyncVersion::V1 => V1_HEADER_LEN,
    }
}

fn write_header(out: &mut [u8], version: SyncVersion, syncid: u8, count: u8, size: u16) {
    match version {
        SyncVersion::V1 => {
            out[0] = 0; // reserved: where v0 had the count, so v0 receivers see no records
            out[1] = syncid;
            put16(out, 2, size);
            out[4] = count;
            out[5] = 1; // SYNC_PROTO_VER
            out[6] = 0; // spare
            out[7] = 0;
        }
        SyncVersion::V0 => {
            out[0] = count;
            out[1] = syncid;
            put16(out, 2, size);
        }
    }
}

impl SyncMessage {
    /// All records in one datagram, whatever their number of bytes up to the 65535 the size
    /// field can say (the fuzz and golden tests use it; a master uses [`SyncBatcher`]).
    /// [`SyncMessage::skipped`] is not written.
    ///
    /// ```
    /// use lvs_core::sync::{SyncMessage, SyncVersion};
    /// let bytes = SyncMessage::new(SyncVersion::V0, 5, vec![]).encode().unwrap();
    /// assert_eq!(bytes, [0, 5, 0, 4]);
    /// ```
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Like [`SyncMessage::encode`], into `out` (cleared first; reuse it to avoid allocating).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.clear();
        if self.records.len() > MAX_RECORDS {
            return Err(EncodeError::TooManyRecords {
                count: self.records.len(),
            });
        }
        let hlen = header_len(self.version);
        let mut size = hlen;
        for (i, rec) in self.records.iter().enumerate() {
            if i > 0 && self.version == SyncVersion::V1 {
                size = (size + 3) & !3;
            }
            size += record_len(self.version, rec)?;
        }
        if size > usize::from(u16::MAX) {
            return Err(EncodeError::TooLarge { size });
        }
        out.resize(size, 0);
        write_header(
            out,
            self.version,
            self.syncid,
            self.records.len() as u8,
            size as u16,
        );
        let mut p = hlen;
        for (i, rec) in self.records.iter().enumerate() {
            if i > 0 && self.version == SyncVersion::V1 {
                p = (p + 3) & !3;
            }
            p += encode_record(self.version, rec, &mut out[p..])?;
        }
        debug_assert_eq!(p, size);
        Ok(())
    }
}

/// The master's per-thread sync buffer (`ms->sync_buff`): packs records into datagrams of at
/// most `sync_maxlen` bytes, as `ip_vs_sync_conn` does.
///
/// A record goes into the current datagram if it fits (with the padding before it); otherwise
/// the current datagram is handed to `emit` and a new one started. A record longer than
/// `sync_maxlen` on its own gets a datagram of its own that is longer than `sync_maxlen`,
/// as in the kernel (possible only with a configured `sync_maxlen` below ~380 bytes).
/// Unlike the kernel, whose one-byte count wraps past 255 records (with a `sync_maxlen`
/// above about 9 KB), a datagram is also closed at 255 records so no record is lost.
///
/// No allocation after construction: records are written into one reusable buffer.
///
/// ```
/// use core::net::Ipv4Addr;
/// use lvs_core::conn::ConnFlags;
/// use lvs_core::sync::{decode, SyncBatcher, SyncConn, SyncVersion, DEFAULT_MAXLEN_V4};
/// use lvs_core::Instant;
///
/// let a = Ipv4Addr::new(10, 0, 0, 1).into();
/// let rec = SyncConn {
///     protocol: 6, flags: ConnFlags::INACTIVE, state: 6, cport: 1, vport: 80, dport: 80,
///     fwmark: 0, timeout: 10, caddr: a, vaddr: a, daddr: a, seq: None, pe_data: None,
///     pe_name: None,
/// };
/// let mut b = SyncBatcher::new(SyncVersion::V1, 0, DEFAULT_MAXLEN_V4);
/// let mut sent = Vec::new();
/// for _ in 0..100 {
///     b.push(Instant::ZERO, &rec, |d| sent.push(d.to_vec())).unwrap();
/// }
/// b.flush(|d| sent.push(d.to_vec()));
/// // (1472 - 8) / 36 = 40 records per datagram.
/// assert_eq!(sent.len(), 3);
/// assert_eq!(decode(&sent[0]).unwrap().records.len(), 40);
/// assert!(sent.iter().all(|d| d.len() <= DEFAULT_MAXLEN_V4));
/// ```
#[derive(Clone, Debug)]
pub struct SyncBatcher {
    version: SyncVersion,
    syncid: u8,
    maxlen: usize,
    buf: Vec<u8>,
    count: u8,
    first_use: Option<Instant>,
}

impl SyncBatcher {
    /// How long a partly filled datagram may wait (`IPVS_SYNC_FLUSH_TIME`, 2 s).
    pub const FLUSH_TIME: Duration = Duration::from_secs(2);

    /// Largest record: IPv6 with sequence data, 255 bytes of PE data and a 16-byte name.
    const MAX_RECORD: usize = V1_V6_RECORD_LEN + 2 + SEQ_DATA_LEN + 2 + PE_DATA_MAXLEN + 2 + 16;

    /// A batcher writing `version` datagrams for `syncid`; `sync_maxlen` is clamped as the
    /// kernel clamps a master's configured value, to 1..=65507 (65535 − IPv4 and UDP
    /// headers).
    pub fn new(version: SyncVersion, syncid: u8, sync_maxlen: usize) -> SyncBatcher {
        let maxlen = sync_maxlen.clamp(1, 65535 - 28);
        SyncBatcher {
            version,
            syncid,
            maxlen,
            buf: Vec::with_capacity(maxlen.max(Self::MAX_RECORD + V1_HEADER_LEN) + 3),
            count: 0,
            first_use: None,
        }
    }

    /// The effective `sync_maxlen`.
    pub fn maxlen(&self) -> usize {
        self.maxlen
    }

    /// Records in the current datagram.
    pub fn pending_records(&self) -> usize {
        usize::from(self.count)
    }

    /// The current datagram's bytes (empty when no record is pending).
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Appends `rec` (at time `now`); when it does not fit, the current datagram is first
    /// passed to `emit`. On error nothing changes.
    pub fn push(
        &mut self,
        now: Instant,
        rec: &SyncConn,
        emit: impl FnOnce(&[u8]),
    ) -> Result<(), EncodeError> {
        let v6 = check(self.version, rec)?;
        let len = len_checked(self.version, rec, v6);
        let hlen = header_len(self.version);
        if self.count > 0 {
            let pad = self.pad();
            if self.buf.len() + pad + len > self.maxlen || usize::from(self.count) == MAX_RECORDS {
                emit(&self.buf);
                self.reset();
            }
        }
        if self.count == 0 {
            self.buf.clear();
            self.buf.resize(hlen, 0);
            self.first_use = Some(now);
        }
        let start = self.buf.len() + self.pad();
        self.buf.resize(start + len, 0);
        write_checked(self.version, rec, v6, &mut self.buf[start..]);
        self.count += 1;
        let size = self.buf.len() as u16;
        write_header(&mut self.buf, self.version, self.syncid, self.count, size);
        Ok(())
    }

    fn pad(&self) -> usize {
        match self.version {
            SyncVersion::V1 => (4 - (self.buf.len() & 3)) & 3,
            SyncVersion::V0 => 0,
        }
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.count = 0;
        self.first_use = None;
    }

    /// When the pending datagram must be sent at the latest (first record + 2 s), if any.
    pub fn flush_deadline(&self) -> Option<Instant> {
        self.first_use.map(|t| t + Self::FLUSH_TIME)
    }

    /// Passes the pending datagram, if it has records, to `emit` and starts afresh. Returns
    /// whether a datagram was emitted.
    pub fn flush(&mut self, emit: impl FnOnce(&[u8])) -> bool {
        if self.count == 0 {
            return false;
        }
        emit(&self.buf);
        self.reset();
        true
    }

    /// [`SyncBatcher::flush`] if the pending datagram is at least 2 s old at `now`
    /// (the master thread's `get_curr_sync_buff(.., IPVS_SYNC_FLUSH_TIME)`).
    pub fn flush_if_due(&mut self, now: Instant, emit: impl FnOnce(&[u8])) -> bool {
        match self.flush_deadline() {
            Some(t) if now >= t => self.flush(emit),
            _ => false,
        }
    }
}
