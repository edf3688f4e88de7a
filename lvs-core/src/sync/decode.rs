//! Parsing received datagrams, with the checks of `ip_vs_process_message`,
//! `ip_vs_process_message_v0` and `ip_vs_proc_sync_conn`, in the kernel's order.
//!
//! Two tiers, as in the kernel:
//! - what makes the kernel drop the rest of the datagram is a [`SyncError`]; unlike the
//!   kernel (which has already applied the records before the bad one) the whole datagram is
//!   rejected, so a caller never sees half a message;
//! - what makes the kernel skip one record and go on (unsupported protocol, state out of
//!   range, unknown mandatory option, PE data without a name) lands in
//!   [`SyncMessage::skipped`] and the record is left out of [`SyncMessage::records`].
//!
//! Accepted like the kernel does, without a report: bytes after the last counted record,
//! non-zero padding between records, unknown options with the optional bit, a PE name
//! without PE data, template states ≥ 2, and record type bytes with bit 0 set and other bits
//! too (read as IPv6).
//!
//! Work and allocation are bounded by the datagram: at most 255 records, each option
//! advances by at least 3 bytes.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::{SkipReason, SkippedRecord, SyncError};
use super::{
    protocol_states, PeName, SeqData, SeqOptions, SyncConn, SyncMessage, SyncVersion,
    OPT_F_OPTIONAL, OPT_PE_DATA, OPT_PE_NAME, OPT_SEQ_DATA, PE_NAME_MAXLEN, SEQ_DATA_LEN,
    V0_HEADER_LEN, V0_RECORD_LEN, V1_HEADER_LEN, V1_V4_RECORD_LEN, V1_V6_RECORD_LEN,
};
use crate::conn::ConnFlags;

/// The header fields of a datagram that passed the length checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncHeader {
    /// The format, chosen as the kernel does: version 1 iff the datagram has the 8-byte
    /// header with reserved byte 0, version byte 1 and spare 0; anything else is read as
    /// version 0.
    pub version: SyncVersion,
    /// The master's syncid (offset 1 in both versions).
    pub syncid: u8,
    /// The record count (v1 offset 4, v0 offset 0).
    pub count: u8,
    /// The size field (offset 2), equal to the datagram length.
    pub size: u16,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn v4(b: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]))
}

fn v6(b: &[u8], at: usize) -> IpAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    IpAddr::V6(Ipv6Addr::from(a))
}

fn seq_be(b: &[u8], at: usize) -> SeqData {
    SeqData {
        init_seq: be32(b, at),
        delta: be32(b, at + 4),
        previous_delta: be32(b, at + 8),
    }
}

// Version 0 copies `struct ip_vs_seq` raw, in the sender's host byte order; x86 and arm64
// masters are little-endian, so that is how it is read (and written by the encoder).
fn seq_le(b: &[u8], at: usize) -> SeqData {
    let le = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    SeqData {
        init_seq: le(at),
        delta: le(at + 4),
        previous_delta: le(at + 8),
    }
}

/// Checks a datagram's length and size field and reads its header (`ip_vs_process_message`
/// up to the syncid test).
///
/// A datagram shorter than 8 bytes is read as version 0 (the kernel would read the version
/// byte past the datagram, from its stale receive buffer; there is nothing sane to emulate).
///
/// ```
/// use lvs_core::sync::{decode_header, SyncError, SyncVersion};
/// let h = decode_header(&[0, 9, 0, 8, 0, 1, 0, 0]).unwrap();
/// assert_eq!((h.version, h.syncid, h.count), (SyncVersion::V1, 9, 0));
/// assert_eq!(
///     decode_header(&[0, 9, 0, 9, 0, 1, 0, 0]),
///     Err(SyncError::SizeMismatch { size: 9, len: 8 })
/// );
/// ```
pub fn decode_header(bytes: &[u8]) -> Result<SyncHeader, SyncError> {
    if bytes.len() < V0_HEADER_LEN {
        return Err(SyncError::TooShort { len: bytes.len() });
    }
    let size = be16(bytes, 2);
    if usize::from(size) != bytes.len() {
        return Err(SyncError::SizeMismatch {
            size,
            len: bytes.len(),
        });
    }
    let v1 = bytes.len() >= V1_HEADER_LEN
        && bytes[5] == 1
        && bytes[0] == 0
        && bytes[6] == 0
        && bytes[7] == 0;
    Ok(if v1 {
        SyncHeader {
            version: SyncVersion::V1,
            syncid: bytes[1],
            count: bytes[4],
            size,
        }
    } else {
        SyncHeader {
            version: SyncVersion::V0,
            syncid: bytes[1],
            count: bytes[0],
            size,
        }
    })
}

/// Decodes a datagram of either version. See the [module docs](self) for what is an error
/// and what is a skipped record.
///
/// ```
/// use lvs_core::sync::{decode, SyncError, SyncVersion};
/// // An empty version 1 message from syncid 3.
/// let m = decode(&[0, 3, 0, 8, 0, 1, 0, 0]).unwrap();
/// assert_eq!((m.version, m.syncid, m.records.len()), (SyncVersion::V1, 3, 0));
/// // One record announced, none present.
/// let e = decode(&[0, 3, 0, 8, 1, 1, 0, 0]).unwrap_err();
/// assert_eq!(e.offset(), 8);
/// assert!(matches!(e, SyncError::RecordTruncated { needed: 36, available: 0, .. }));
/// ```
pub fn decode(bytes: &[u8]) -> Result<SyncMessage, SyncError> {
    let header = decode_header(bytes)?;
    decode_body(bytes, header)
}

/// What a backup with syncid `backup_syncid` does with a datagram: `Ok(None)` when it is
/// ignored for its syncid (a backup syncid of 0 accepts every syncid). The length checks come
/// first, as in the kernel, so a malformed datagram is an error whatever its syncid; the
/// records of an ignored datagram are not examined.
///
/// ```
/// use lvs_core::sync::decode_for_backup;
/// let bytes = [0, 3, 0, 8, 0, 1, 0, 0];
/// assert!(decode_for_backup(&bytes, 3).unwrap().is_some());
/// assert!(decode_for_backup(&bytes, 0).unwrap().is_some());
/// assert!(decode_for_backup(&bytes, 4).unwrap().is_none());
/// ```
pub fn decode_for_backup(
    bytes: &[u8],
    backup_syncid: u8,
) -> Result<Option<SyncMessage>, SyncError> {
    let header = decode_header(bytes)?;
    if !super::backup::syncid_accepted(backup_syncid, header.syncid) {
        return Ok(None);
    }
    decode_body(bytes, header).map(Some)
}

fn decode_body(bytes: &[u8], header: SyncHeader) -> Result<SyncMessage, SyncError> {
    let mut msg = SyncMessage {
        version: header.version,
        syncid: header.syncid,
        // The count comes from the wire: reserve no more than the bytes can hold.
        records: Vec::with_capacity(usize::from(header.count).min(bytes.len() / V0_RECORD_LEN)),
        skipped: Vec::new(),
    };
    match header.version {
        SyncVersion::V1 => decode_v1(bytes, header.count, &mut msg)?,
        SyncVersion::V0 => decode_v0(bytes, header.count, &mut msg)?,
    }
    Ok(msg)
}

/// The kernel's per-record acceptance test after the options (`ip_vs_proc_sync_conn`,
/// `ip_vs_process_message_v0`): protocol and state of non-templates.
fn check_proto_state(flags: u32, protocol: u8, state: u16) -> Option<SkipReason> {
    if flags & u32::from(ConnFlags::TEMPLATE.bits()) != 0 {
        // Template states >= IP_VS_CTPL_S_LAST are only logged by the kernel.
        return None;
    }
    match protocol_states(protocol) {
        None => Some(SkipReason::UnsupportedProtocol { protocol }),
        Some(n) if state >= n => Some(SkipReason::InvalidState { protocol, state }),
        Some(_) => None,
    }
}

fn decode_v1(bytes: &[u8], count: u8, msg: &mut SyncMessage) -> Result<(), SyncError> {
    let len = bytes.len();
    let records = &mut msg.records;
    let skipped = &mut msg.skipped;
    let mut next = V1_HEADER_LEN;
    for index in 0..count {
        let p = next;
        // The kernel reads the 36-byte IPv4 fixed part before looking at the length.
        if p + V1_V4_RECORD_LEN > len {
            return Err(SyncError::RecordTruncated {
                version: 1,
                index,
                offset: p,
                needed: V1_V4_RECORD_LEN,
                available: len.saturating_sub(p),
            });
        }
        let ver_size = be16(bytes, p + 2);
        let size = ver_size & 0x0fff;
        let end = p + usize::from(size);
        if end > len {
            return Err(SyncError::RecordOverrun {
                index,
                offset: p,
                size,
                available: len - p,
            });
        }
        if ver_size >> 12 != 0 {
            return Err(SyncError::RecordVersion {
                index,
                offset: p,
                version: (ver_size >> 12) as u8,
            });
        }
        match decode_v1_record(bytes, index, p, end)? {
            Ok(rec) => records.push(rec.build(bytes)),
            Err(reason) => skipped.push(SkippedRecord {
                index,
                offset: p,
                reason,
            }),
        }
        // Records are 32-bit aligned: the next starts at the rounded-up length.
        next = p + ((usize::from(size) + 3) & !3);
    }
    Ok(())
}

/// A version 1 record that passed every check, by its place in the datagram.
#[derive(Clone, Copy)]
struct V1Record {
    /// Start offset; the 36-byte IPv4 fixed part is in the datagram.
    p: usize,
    /// IPv6 addresses (the 72-byte fixed part).
    v6: bool,
    seq: Option<SeqOptions>,
    /// Offset and length of the options' bodies.
    pe_data: Option<(usize, usize)>,
    pe_name: Option<(usize, usize)>,
}

impl V1Record {
    /// The record's [`SyncConn`]; `bytes` is the datagram it was checked in.
    #[inline(always)]
    fn build(self, bytes: &[u8]) -> SyncConn {
        let p = self.p;
        // The fields every record has, read from one fixed-size view (the checks made sure
        // that the fixed part is inside the datagram).
        let r = match bytes
            .get(p..)
            .and_then(<[u8]>::first_chunk::<V1_V4_RECORD_LEN>)
        {
            Some(r) => *r,
            None => [0; V1_V4_RECORD_LEN],
        };
        let be16 = |i: usize| u16::from_be_bytes([r[i], r[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
        let (caddr, vaddr, daddr) = if self.v6 {
            (v6(bytes, p + 24), v6(bytes, p + 40), v6(bytes, p + 56))
        } else {
            let a = |i: usize| IpAddr::V4(Ipv4Addr::new(r[i], r[i + 1], r[i + 2], r[i + 3]));
            (a(24), a(28), a(32))
        };
        let body = |o: Option<(usize, usize)>| o.and_then(|(at, n)| bytes.get(at..at + n));
        SyncConn {
            protocol: r[1],
            // Only bits 0..15 are connection flags that travel; the kernel masks the rest, and
            // HASHED (never sent by a kernel) is cleared by every receiver.
            flags: ConnFlags::from_bits(be32(4) as u16).without(ConnFlags::HASHED),
            state: be16(8),
            cport: be16(10),
            vport: be16(12),
            dport: be16(14),
            fwmark: be32(16),
            timeout: be32(20),
            caddr,
            vaddr,
            daddr,
            seq: self.seq,
            pe_data: body(self.pe_data).map(<[u8]>::to_vec),
            // 1..=16 bytes by the checks.
            pe_name: body(self.pe_name).and_then(PeName::new),
        }
    }
}

/// One v1 record in `bytes[p..end]`: `Err` drops the datagram, `Ok(Err)` skips the record.
#[inline(always)]
fn decode_v1_record(
    bytes: &[u8],
    index: u8,
    p: usize,
    end: usize,
) -> Result<Result<V1Record, SkipReason>, SyncError> {
    let ty = bytes[p];
    // `type & STYPE_F_INET6` is tested first, so any type with bit 0 is IPv6.
    let fixed = if ty & 1 != 0 {
        V1_V6_RECORD_LEN
    } else if ty == 0 {
        V1_V4_RECORD_LEN
    } else {
        return Err(SyncError::RecordType {
            index,
            offset: p,
            ty,
        });
    };
    if p + fixed > end {
        return Err(SyncError::RecordTooShort {
            index,
            offset: p,
            size: (end - p) as u16,
            min: fixed,
        });
    }

    let mut seq = None;
    let mut pe_data: Option<(usize, usize)> = None;
    let mut pe_name: Option<(usize, usize)> = None;
    let mut q = p + fixed;
    while q < end {
        if q + 2 > end {
            return Err(SyncError::OptionTruncated {
                index,
                offset: q,
                end,
            });
        }
        let ptype = bytes[q];
        let plen = bytes[q + 1];
        let data = q + 2;
        if plen == 0 || data + usize::from(plen) > end {
            return Err(SyncError::OptionLength {
                index,
                offset: q,
                ty: ptype,
                len: plen,
                available: end - data,
            });
        }
        let body = &bytes[data..data + usize::from(plen)];
        // The optional bit is masked off before the type is matched, so 0x41 is sequence
        // data too.
        match ptype & !OPT_F_OPTIONAL {
            OPT_SEQ_DATA => {
                if usize::from(plen) != SEQ_DATA_LEN {
                    return Err(SyncError::SeqOptionLength {
                        index,
                        offset: q,
                        len: plen,
                    });
                }
                if seq.is_some() {
                    return Err(SyncError::DuplicateOption {
                        index,
                        offset: q,
                        ty: ptype,
                    });
                }
                seq = Some(SeqOptions {
                    in_seq: seq_be(body, 0),
                    out_seq: seq_be(body, 12),
                });
            }
            OPT_PE_DATA => {
                // A one-byte length never exceeds IP_VS_PEDATA_MAXLEN (255).
                if pe_data.is_some() {
                    return Err(SyncError::DuplicateOption {
                        index,
                        offset: q,
                        ty: ptype,
                    });
                }
                pe_data = Some((data, body.len()));
            }
            OPT_PE_NAME => {
                if usize::from(plen) > PE_NAME_MAXLEN {
                    return Err(SyncError::PeNameTooLong {
                        index,
                        offset: q,
                        len: plen,
                    });
                }
                if pe_name.is_some() {
                    return Err(SyncError::DuplicateOption {
                        index,
                        offset: q,
                        ty: ptype,
                    });
                }
                pe_name = Some((data, body.len()));
            }
            _ => {
                if ptype & OPT_F_OPTIONAL == 0 {
                    // The kernel leaves the record here: later options are not examined.
                    return Ok(Err(SkipReason::UnknownMandatoryOption { ty: ptype }));
                }
            }
        }
        q = data + usize::from(plen);
    }

    let flags = be32(bytes, p + 4);
    let state = be16(bytes, p + 8);
    let protocol = bytes[p + 1];
    if let Some(skip) = check_proto_state(flags, protocol, state) {
        return Ok(Err(skip));
    }
    if pe_data.is_some() && pe_name.is_none() {
        return Ok(Err(SkipReason::PeDataWithoutName));
    }
    Ok(Ok(V1Record {
        p,
        v6: fixed == V1_V6_RECORD_LEN,
        seq,
        pe_data,
        pe_name,
    }))
}

fn decode_v0(bytes: &[u8], count: u8, msg: &mut SyncMessage) -> Result<(), SyncError> {
    let len = bytes.len();
    let mut p = V0_HEADER_LEN;
    for index in 0..count {
        if p + V0_RECORD_LEN > len {
            return Err(SyncError::RecordTruncated {
                version: 0,
                index,
                offset: p,
                needed: V0_RECORD_LEN,
                available: len.saturating_sub(p),
            });
        }
        let flags = be16(bytes, p + 20);
        let has_seq = flags & (ConnFlags::IN_SEQ.bits() | ConnFlags::OUT_SEQ.bits()) != 0;
        let rec_len = if has_seq {
            V0_RECORD_LEN + SEQ_DATA_LEN
        } else {
            V0_RECORD_LEN
        };
        if p + rec_len > len {
            return Err(SyncError::RecordTruncated {
                version: 0,
                index,
                offset: p,
                needed: rec_len,
                available: len - p,
            });
        }
        let protocol = bytes[p + 1];
        let state = be16(bytes, p + 22);
        match check_proto_state(u32::from(flags), protocol, state) {
            Some(reason) => msg.skipped.push(SkippedRecord {
                index,
                offset: p,
                reason,
            }),
            None => msg.records.push(SyncConn {
                protocol,
                flags: ConnFlags::from_bits(flags).without(ConnFlags::HASHED),
                state,
                cport: be16(bytes, p + 2),
                vport: be16(bytes, p + 4),
                dport: be16(bytes, p + 6),
                fwmark: 0,
                timeout: 0,
                caddr: v4(bytes, p + 8),
                vaddr: v4(bytes, p + 12),
                daddr: v4(bytes, p + 16),
                seq: has_seq.then(|| SeqOptions {
                    in_seq: seq_le(bytes, p + V0_RECORD_LEN),
                    out_seq: seq_le(bytes, p + V0_RECORD_LEN + 12),
                }),
                pe_data: None,
                pe_name: None,
            }),
        }
        p += rec_len;
    }
    Ok(())
}
