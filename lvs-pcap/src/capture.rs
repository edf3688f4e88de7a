//! Capture files: a streaming reader of pcap and pcapng, and a pcap writer.
//!
//! The reader is our own rather than a general-purpose crate because a corrupt or truncated
//! capture must be reported with the **byte offset** of the record that broke, after every
//! packet before it was handed out; it also bounds every allocation (a record longer than
//! [`MAX_RECORD_LEN`] or a pcapng block longer than [`MAX_BLOCK_LEN`] is an error, as in
//! libpcap) and never panics on any input (fuzzed by `lvs-fuzz`'s `pcap_read`).
//!
//! - pcap: the four magics (microsecond and nanosecond timestamps, either byte order); the
//!   link type of the file header applies to every record.
//! - pcapng: any number of sections (each with its byte order), Interface Description Blocks
//!   with `if_tsresol` and `if_tsoffset`, Enhanced, Simple and (obsolete) Packet Blocks; every
//!   other block is skipped.
//!
//! ```
//! use lvs_pcap::capture::{CaptureReader, CaptureWriter, LinkType};
//! let mut file = Vec::new();
//! let mut w = CaptureWriter::new(&mut file, LinkType::RAW).unwrap();
//! w.write_packet(1_500_000_123, &[0x45, 0, 0, 20]).unwrap();
//! w.into_inner().unwrap();
//! let mut r = CaptureReader::new(&file[..]).unwrap();
//! let p = r.next_packet().unwrap().unwrap();
//! assert_eq!((p.ts_nanos, p.link, p.data), (1_500_000_123, LinkType::RAW, &[0x45, 0, 0, 20][..]));
//! assert_eq!(p.offset, 24);
//! assert!(r.next_packet().unwrap().is_none());
//! ```

use std::io::{self, Read, Write};

/// Largest packet record accepted (libpcap's `MAXIMUM_SNAPLEN`, 256 KiB).
pub const MAX_RECORD_LEN: usize = 262_144;
/// Largest pcapng block accepted (libpcap's limit, 16 MiB).
pub const MAX_BLOCK_LEN: usize = 16 * 1024 * 1024;
/// Bytes asked of the source per read.
const READ_CHUNK: usize = 1 << 18;
/// Most interfaces one pcapng section may describe (a bound on the reader's memory).
pub const MAX_INTERFACES: usize = 4096;

/// A link-layer header type (`LINKTYPE_*`, tcpdump.org).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u16);

impl LinkType {
    /// BSD loopback (0): not supported (skipped and counted).
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II, optionally 802.1Q / 802.1ad tagged (1).
    pub const ETHERNET: LinkType = LinkType(1);
    /// `DLT_RAW` on most systems (12): raw IP.
    pub const RAW_12: LinkType = LinkType(12);
    /// `DLT_RAW` on OpenBSD (14): raw IP.
    pub const RAW_14: LinkType = LinkType(14);
    /// Raw IPv4 or IPv6, by the version nibble (101).
    pub const RAW: LinkType = LinkType(101);
    /// Linux cooked capture v1 (113).
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4 only (228).
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6 only (229).
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2 (276).
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// A short name for reports (`ethernet`, `raw`, `linux_sll`, ... or `linktype_N`).
    pub fn name(self) -> String {
        match self {
            LinkType::NULL => "null".into(),
            LinkType::ETHERNET => "ethernet".into(),
            LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 => "raw".into(),
            LinkType::IPV4 => "ipv4".into(),
            LinkType::IPV6 => "ipv6".into(),
            LinkType::LINUX_SLL => "linux_sll".into(),
            LinkType::LINUX_SLL2 => "linux_sll2".into(),
            LinkType(n) => format!("linktype_{n}"),
        }
    }
}

/// The container format of a capture file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap.
    Pcap,
    /// pcapng.
    PcapNg,
}

impl Format {
    /// `pcap` or `pcapng`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::PcapNg => "pcapng",
        }
    }
}

/// Why a capture could not be read further. Every variant names the byte offset (from the
/// start of the file) of the record or block that broke.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Reading the file failed.
    #[error("byte offset {offset}: read error: {source}")]
    Io {
        /// Offset the read was at.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// The file does not start with a pcap or pcapng magic number.
    #[error("byte offset 0: not a pcap or pcapng file (magic {found:#010x})")]
    BadMagic {
        /// The first four bytes, big-endian.
        found: u32,
    },
    /// The file ends inside a header, record or block.
    #[error("byte offset {offset}: truncated {what}: {needed} bytes needed, {available} left in the file")]
    Truncated {
        /// Start of the header, record or block.
        offset: u64,
        /// What was being read (`pcap file header`, `pcap record`, `pcapng block`, ...).
        what: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// Bytes the file still had.
        available: u64,
    },
    /// A record or block announces a length beyond the reader's bound.
    #[error("byte offset {offset}: {what} length {len} exceeds the limit {limit}")]
    TooLong {
        /// Start of the record or block.
        offset: u64,
        /// What it is.
        what: &'static str,
        /// The announced length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A structural field is invalid (bad pcapng block length, unknown byte-order magic,
    /// unsupported version, captured length above the original length, ...).
    #[error("byte offset {offset}: corrupt {what}: {detail}")]
    Corrupt {
        /// Start of the header, record or block.
        offset: u64,
        /// What it is.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

impl ReadError {
    /// The byte offset the error names.
    pub fn offset(&self) -> u64 {
        match self {
            ReadError::BadMagic { .. } => 0,
            ReadError::Io { offset, .. }
            | ReadError::Truncated { offset, .. }
            | ReadError::TooLong { offset, .. }
            | ReadError::Corrupt { offset, .. } => *offset,
        }
    }
}

/// One packet of a capture; `data` borrows the reader's buffer until the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Timestamp in nanoseconds since the Unix epoch (pcapng `if_tsoffset` applied).
    pub ts_nanos: u64,
    /// Link type of the packet's interface.
    pub link: LinkType,
    /// The captured bytes (at most the snapshot length).
    pub data: &'a [u8],
    /// The packet's length on the wire (`orig_len`).
    pub orig_len: u32,
    /// Byte offset of the record (pcap) or block (pcapng) in the file.
    pub offset: u64,
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    /// Timestamp unit: `(true, k)` 10^-k s, `(false, k)` 2^-k s.
    resol: (bool, u8),
    offset_secs: i64,
}

/// A streaming reader of pcap and pcapng over any [`Read`].
#[derive(Debug)]
pub struct CaptureReader<R> {
    src: R,
    buf: Vec<u8>,
    /// End of the valid bytes in `buf`.
    end: usize,
    /// Consumed bytes at the front of `buf`.
    start: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    format: Format,
    big_endian: bool,
    /// pcap: nanosecond timestamps.
    nanos: bool,
    /// pcap: the file's link type.
    link: LinkType,
    interfaces: Vec<Interface>,
    /// Set after an error: the reader stops.
    failed: bool,
}

fn u16_at(b: &[u8], at: usize, be: bool) -> u16 {
    let x = [b[at], b[at + 1]];
    if be {
        u16::from_be_bytes(x)
    } else {
        u16::from_le_bytes(x)
    }
}

fn u32_at(b: &[u8], at: usize, be: bool) -> u32 {
    let x = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if be {
        u32::from_be_bytes(x)
    } else {
        u32::from_le_bytes(x)
    }
}

/// Nanoseconds of `t` units of `resol`, saturating.
fn to_nanos(t: u64, resol: (bool, u8)) -> u64 {
    match resol {
        (true, k) if k <= 9 => t.saturating_mul(10u64.pow(u32::from(9 - k))),
        (true, k) => {
            // 10^k for k > 19 overflows u64: such units are below a nanosecond anyway.
            10u64.checked_pow(u32::from(k - 9)).map_or(0, |d| t / d)
        }
        (false, k) => {
            let ns = (u128::from(t) * 1_000_000_000) >> k.min(127);
            u64::try_from(ns).unwrap_or(u64::MAX)
        }
    }
}

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;

impl<R: Read> CaptureReader<R> {
    /// Reads the file header (pcap) or the first Section Header Block (pcapng).
    pub fn new(src: R) -> Result<Self, ReadError> {
        let mut r = CaptureReader {
            src,
            buf: Vec::new(),
            end: 0,
            start: 0,
            base: 0,
            eof: false,
            format: Format::Pcap,
            big_endian: false,
            nanos: false,
            link: LinkType::ETHERNET,
            interfaces: Vec::new(),
            failed: false,
        };
        let avail = r.fill(4)?;
        if avail < 4 {
            return Err(ReadError::Truncated {
                offset: 0,
                what: "file header",
                needed: 4,
                available: avail as u64,
            });
        }
        let magic = u32_at(&r.buf, 0, true);
        match magic {
            PCAP_MAGIC_US | PCAP_MAGIC_NS => r.pcap_header(true, magic == PCAP_MAGIC_NS)?,
            m if m.swap_bytes() == PCAP_MAGIC_US || m.swap_bytes() == PCAP_MAGIC_NS => {
                r.pcap_header(false, m.swap_bytes() == PCAP_MAGIC_NS)?
            }
            PCAPNG_SHB => {
                r.format = Format::PcapNg;
                // The first block must be a section header: read it now so a bad one is an
                // error of `new`.
                r.section_header()?;
            }
            found => return Err(ReadError::BadMagic { found }),
        }
        Ok(r)
    }

    /// The container format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The file's link type (pcap), or the first interface's (pcapng; Ethernet if none yet).
    pub fn link_type(&self) -> LinkType {
        match self.format {
            Format::Pcap => self.link,
            Format::PcapNg => self
                .interfaces
                .first()
                .map_or(LinkType::ETHERNET, |i| i.link),
        }
    }

    /// File offset of the next unread byte.
    pub fn position(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Makes at least `n` bytes available from `start` unless the file ends; returns how many
    /// are available. The buffer only grows (zeroed once), so refills copy no more than the
    /// unread tail and zero nothing.
    fn fill(&mut self, n: usize) -> Result<usize, ReadError> {
        if self.end - self.start >= n || self.eof {
            return Ok(self.end - self.start);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        // Grow geometrically from 4 KiB (small inputs stay small) up to the read chunk.
        let want = n.max((self.buf.len() * 2).clamp(4096, READ_CHUNK));
        if self.buf.len() < want {
            let mut grown = vec![0u8; want];
            grown[..self.end].copy_from_slice(&self.buf[..self.end]);
            self.buf = grown;
        }
        while self.end < n && !self.eof {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ReadError::Io {
                        offset: self.base + self.end as u64,
                        source,
                    });
                }
            }
        }
        Ok(self.end)
    }

    /// Ensures `n` bytes at the current position, or a `Truncated` error about `what`.
    fn need(&mut self, n: usize, what: &'static str) -> Result<(), ReadError> {
        let avail = self.fill(n)?;
        if avail < n {
            return Err(ReadError::Truncated {
                offset: self.position(),
                what,
                needed: n as u64,
                available: avail as u64,
            });
        }
        Ok(())
    }

    fn pcap_header(&mut self, be: bool, nanos: bool) -> Result<(), ReadError> {
        self.need(24, "pcap file header")?;
        let h = &self.buf[self.start..self.start + 24];
        let major = u16_at(h, 4, be);
        if major != 2 {
            return Err(ReadError::Corrupt {
                offset: 0,
                what: "pcap file header",
                detail: format!("unsupported version {major}.{}", u16_at(h, 6, be)),
            });
        }
        // The upper bits of the link-type field carry FCS information (pcap-linktype(7)).
        let network = u32_at(h, 20, be) & 0x03ff_ffff;
        self.link = LinkType(u16::try_from(network).unwrap_or(u16::MAX));
        self.big_endian = be;
        self.nanos = nanos;
        self.format = Format::Pcap;
        self.start += 24;
        Ok(())
    }

    /// Reads a Section Header Block at the current position.
    fn section_header(&mut self) -> Result<(), ReadError> {
        let offset = self.position();
        self.need(12, "pcapng section header")?;
        let s = self.start;
        let be = match u32_at(&self.buf, s + 8, true) {
            PCAPNG_BOM => true,
            m if m.swap_bytes() == PCAPNG_BOM => false,
            m => {
                return Err(ReadError::Corrupt {
                    offset,
                    what: "pcapng section header",
                    detail: format!("byte-order magic {m:#010x}"),
                })
            }
        };
        self.big_endian = be;
        let body = self.block(offset, "pcapng section header")?;
        let major = u16_at(&self.buf, body.0 + 4, be);
        if body.1 < 16 || major != 1 {
            return Err(ReadError::Corrupt {
                offset,
                what: "pcapng section header",
                detail: format!("unsupported version {major}"),
            });
        }
        self.interfaces.clear();
        Ok(())
    }

    /// Validates the block at the current position (type and length words, trailing length)
    /// and consumes it; returns the start in `buf` and the length of its body (after the
    /// type and length words, before the trailing length).
    fn block(&mut self, offset: u64, what: &'static str) -> Result<(usize, usize), ReadError> {
        self.need(8, what)?;
        let len = u32_at(&self.buf, self.start + 4, self.big_endian) as usize;
        if len < 12 || len % 4 != 0 {
            return Err(ReadError::Corrupt {
                offset,
                what,
                detail: format!("block length {len} (must be >= 12 and a multiple of 4)"),
            });
        }
        if len > MAX_BLOCK_LEN {
            return Err(ReadError::TooLong {
                offset,
                what,
                len: len as u64,
                limit: MAX_BLOCK_LEN as u64,
            });
        }
        self.need(len, what)?;
        let s = self.start;
        let trailer = u32_at(&self.buf, s + len - 4, self.big_endian) as usize;
        if trailer != len {
            return Err(ReadError::Corrupt {
                offset,
                what,
                detail: format!("trailing block length {trailer} differs from {len}"),
            });
        }
        self.start += len;
        Ok((s + 8, len - 12))
    }

    /// The next packet, `Ok(None)` at the end of the file. After an error the reader is done
    /// (every later call returns `Ok(None)`).
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
        if self.failed {
            return Ok(None);
        }
        let r = match self.format {
            Format::Pcap => self.next_pcap(),
            Format::PcapNg => self.next_pcapng(),
        };
        match r {
            Ok(Some((ts_nanos, link, range, orig_len, offset))) => Ok(Some(Packet {
                ts_nanos,
                link,
                data: &self.buf[range],
                orig_len,
                offset,
            })),
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn next_pcap(
        &mut self,
    ) -> Result<Option<(u64, LinkType, std::ops::Range<usize>, u32, u64)>, ReadError> {
        let offset = self.position();
        // The buffer usually holds the whole record: refill only when it does not.
        if self.end - self.start < 16 {
            if self.fill(16)? == 0 {
                return Ok(None);
            }
            self.need(16, "pcap record header")?;
        }
        let be = self.big_endian;
        let s = self.start;
        let h = &self.buf[s..s + 16];
        let secs = u64::from(u32_at(h, 0, be));
        let frac = u64::from(u32_at(h, 4, be));
        let incl = u32_at(h, 8, be) as usize;
        let orig = u32_at(h, 12, be);
        if incl > MAX_RECORD_LEN {
            return Err(ReadError::TooLong {
                offset,
                what: "pcap record",
                len: incl as u64,
                limit: MAX_RECORD_LEN as u64,
            });
        }
        if self.end - self.start < 16 + incl && self.fill(16 + incl)? < 16 + incl {
            let available = (self.end - self.start) as u64;
            return Err(ReadError::Truncated {
                offset,
                what: "pcap record",
                needed: 16 + incl as u64,
                available,
            });
        }
        let s = self.start;
        self.start += 16 + incl;
        let unit = if self.nanos { 1 } else { 1000 };
        let ts = secs
            .saturating_mul(1_000_000_000)
            .saturating_add(frac.saturating_mul(unit));
        Ok(Some((ts, self.link, s + 16..s + 16 + incl, orig, offset)))
    }

    #[allow(clippy::type_complexity)]
    fn next_pcapng(
        &mut self,
    ) -> Result<Option<(u64, LinkType, std::ops::Range<usize>, u32, u64)>, ReadError> {
        loop {
            let offset = self.position();
            if self.fill(8)? == 0 {
                return Ok(None);
            }
            self.need(8, "pcapng block header")?;
            let kind = u32_at(&self.buf, self.start, self.big_endian);
            if kind == PCAPNG_SHB {
                self.section_header()?;
                continue;
            }
            let (b, len) = self.block(offset, "pcapng block")?;
            let be = self.big_endian;
            match kind {
                // Interface Description Block.
                1 => {
                    if len < 8 {
                        return Err(corrupt(offset, "interface description", "body < 8 bytes"));
                    }
                    if self.interfaces.len() >= MAX_INTERFACES {
                        return Err(ReadError::TooLong {
                            offset,
                            what: "interface list",
                            len: self.interfaces.len() as u64 + 1,
                            limit: MAX_INTERFACES as u64,
                        });
                    }
                    let mut iface = Interface {
                        link: LinkType(u16_at(&self.buf, b, be)),
                        snaplen: u32_at(&self.buf, b + 4, be),
                        resol: (true, 6),
                        offset_secs: 0,
                    };
                    // Options: code, length, value padded to 4; bounded by the block.
                    let opts = &self.buf[b + 8..b + len];
                    let mut at = 0;
                    while at + 4 <= opts.len() {
                        let code = u16_at(opts, at, be);
                        let olen = usize::from(u16_at(opts, at + 2, be));
                        let v = at + 4;
                        if code == 0 || v + olen > opts.len() {
                            break;
                        }
                        match (code, olen) {
                            (9, 1) => {
                                let r = opts[v];
                                iface.resol = (r & 0x80 == 0, r & 0x7f);
                            }
                            (14, 8) => {
                                let hi = u32_at(opts, v, be);
                                let lo = u32_at(opts, v + 4, be);
                                let raw = if be {
                                    (u64::from(hi) << 32) | u64::from(lo)
                                } else {
                                    (u64::from(lo) << 32) | u64::from(hi)
                                };
                                iface.offset_secs = raw as i64;
                            }
                            _ => {}
                        }
                        at = v + olen.div_ceil(4) * 4;
                    }
                    self.interfaces.push(iface);
                }
                // Enhanced Packet Block, obsolete Packet Block.
                6 | 2 => {
                    let what = if kind == 6 {
                        "enhanced packet block"
                    } else {
                        "packet block"
                    };
                    if len < 20 {
                        return Err(corrupt(offset, what, "body < 20 bytes"));
                    }
                    let id = if kind == 6 {
                        u32_at(&self.buf, b, be) as usize
                    } else {
                        usize::from(u16_at(&self.buf, b, be))
                    };
                    let hi = u64::from(u32_at(&self.buf, b + 4, be));
                    let lo = u64::from(u32_at(&self.buf, b + 8, be));
                    let cap = u32_at(&self.buf, b + 12, be) as usize;
                    let orig = u32_at(&self.buf, b + 16, be);
                    let Some(iface) = self.interfaces.get(id).copied() else {
                        return Err(ReadError::Corrupt {
                            offset,
                            what,
                            detail: format!("interface {id} was not described"),
                        });
                    };
                    if cap > len - 20 {
                        return Err(ReadError::Corrupt {
                            offset,
                            what,
                            detail: format!(
                                "captured length {cap} exceeds the block's {} data bytes",
                                len - 20
                            ),
                        });
                    }
                    let ts = to_nanos((hi << 32) | lo, iface.resol);
                    let ts = apply_offset(ts, iface.offset_secs);
                    let d = b + 20;
                    return Ok(Some((ts, iface.link, d..d + cap, orig, offset)));
                }
                // Simple Packet Block: interface 0, no timestamp.
                3 => {
                    if len < 4 {
                        return Err(corrupt(offset, "simple packet block", "body < 4 bytes"));
                    }
                    let Some(iface) = self.interfaces.first().copied() else {
                        return Err(corrupt(
                            offset,
                            "simple packet block",
                            "no interface was described",
                        ));
                    };
                    let orig = u32_at(&self.buf, b, be);
                    let mut cap = (orig as usize).min(len - 4);
                    if iface.snaplen != 0 {
                        cap = cap.min(iface.snaplen as usize);
                    }
                    let d = b + 4;
                    return Ok(Some((0, iface.link, d..d + cap, orig, offset)));
                }
                _ => {}
            }
        }
    }
}

fn corrupt(offset: u64, what: &'static str, detail: &str) -> ReadError {
    ReadError::Corrupt {
        offset,
        what,
        detail: detail.into(),
    }
}

fn apply_offset(ts: u64, secs: i64) -> u64 {
    let d = secs.unsigned_abs().saturating_mul(1_000_000_000);
    if secs >= 0 {
        ts.saturating_add(d)
    } else {
        ts.saturating_sub(d)
    }
}

/// A pcap writer with nanosecond timestamps (magic `0xa1b23c4d`, little-endian), so the
/// input's timestamps are kept exactly; Wireshark and tcpdump read it.
#[derive(Debug)]
pub struct CaptureWriter<W: Write> {
    out: W,
    link: LinkType,
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the file header for `link` (snapshot length 262144).
    pub fn new(mut out: W, link: LinkType) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&PCAP_MAGIC_NS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&(MAX_RECORD_LEN as u32).to_le_bytes());
        h[20..24].copy_from_slice(&u32::from(link.0).to_le_bytes());
        out.write_all(&h)?;
        Ok(CaptureWriter { out, link })
    }

    /// The link type of every record.
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Writes one record (`data` whole: captured length = original length).
    pub fn write_packet(&mut self, ts_nanos: u64, data: &[u8]) -> io::Result<()> {
        self.write_parts(ts_nanos, &[data])
    }

    /// Writes one record: `head` (a link header, at most 32 bytes) and `buf[at..]`. The record
    /// header and `head` are written into `buf[..at]` when they fit there (overwriting it),
    /// so the record goes out in one write; the bytes written are those of
    /// [`CaptureWriter::write_parts`] with `[head, &buf[at..]]`.
    pub fn write_framed(
        &mut self,
        ts_nanos: u64,
        head: &[u8],
        buf: &mut [u8],
        at: usize,
    ) -> io::Result<()> {
        let front = 16 + head.len();
        let len = buf.len() - at + head.len();
        match (at.checked_sub(front), u32::try_from(len)) {
            (Some(from), Ok(len)) if head.len() <= 32 => {
                let secs = u32::try_from(ts_nanos / 1_000_000_000).unwrap_or(u32::MAX);
                let h = &mut buf[from..at];
                h[0..4].copy_from_slice(&secs.to_le_bytes());
                h[4..8].copy_from_slice(&((ts_nanos % 1_000_000_000) as u32).to_le_bytes());
                h[8..12].copy_from_slice(&len.to_le_bytes());
                h[12..16].copy_from_slice(&len.to_le_bytes());
                h[16..].copy_from_slice(head);
                self.out.write_all(&buf[from..])
            }
            _ if head.is_empty() => self.write_parts(ts_nanos, &[&buf[at..]]),
            _ => self.write_parts(ts_nanos, &[head, &buf[at..]]),
        }
    }

    /// Writes one record made of several slices (a link header and the IP packet).
    pub fn write_parts(&mut self, ts_nanos: u64, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too long"))?;
        let secs = u32::try_from(ts_nanos / 1_000_000_000).unwrap_or(u32::MAX);
        // The record header and a short first part (a link header) go out in one write.
        let mut h = [0u8; 16 + 32];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&((ts_nanos % 1_000_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        let mut rest = parts;
        let mut n = 16;
        if let [first, tail @ ..] = parts {
            if first.len() <= 32 && !tail.is_empty() {
                h[16..16 + first.len()].copy_from_slice(first);
                n += first.len();
                rest = tail;
            }
        }
        self.out.write_all(&h[..n])?;
        for p in rest {
            self.out.write_all(p)?;
        }
        Ok(())
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap(records: &[(u32, u32, &[u8])], be: bool, nanos: bool) -> Vec<u8> {
        let magic = if nanos { PCAP_MAGIC_NS } else { PCAP_MAGIC_US };
        let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut f = Vec::new();
        f.extend(w32(magic));
        f.extend(w16(2));
        f.extend(w16(4));
        f.extend(w32(0));
        f.extend(w32(0));
        f.extend(w32(65535));
        f.extend(w32(101));
        for (s, frac, d) in records {
            f.extend(w32(*s));
            f.extend(w32(*frac));
            f.extend(w32(d.len() as u32));
            f.extend(w32(d.len() as u32));
            f.extend(*d);
        }
        f
    }

    #[test]
    fn pcap_all_magics() {
        for be in [false, true] {
            for nanos in [false, true] {
                let f = pcap(&[(10, 5, b"abcd"), (11, 0, b"xy")], be, nanos);
                let mut r = CaptureReader::new(&f[..]).unwrap();
                assert_eq!(r.link_type(), LinkType::RAW);
                let p = r.next_packet().unwrap().unwrap();
                let unit = if nanos { 1 } else { 1000 };
                assert_eq!(p.ts_nanos, 10_000_000_000 + 5 * unit);
                assert_eq!(p.data, b"abcd");
                assert_eq!(p.offset, 24);
                let p = r.next_packet().unwrap().unwrap();
                assert_eq!((p.data, p.offset), (&b"xy"[..], 24 + 20));
                assert!(r.next_packet().unwrap().is_none());
            }
        }
    }

    #[test]
    fn truncated_record_names_its_offset_after_earlier_packets() {
        let f = pcap(&[(1, 0, b"abcd"), (2, 0, b"efgh")], false, false);
        let cut = &f[..f.len() - 2];
        let mut r = CaptureReader::new(cut).unwrap();
        assert_eq!(r.next_packet().unwrap().unwrap().data, b"abcd");
        let e = r.next_packet().unwrap_err();
        assert_eq!(e.offset(), 44);
        assert!(e.to_string().contains("byte offset 44"), "{e}");
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn oversized_record_is_refused() {
        let mut f = pcap(&[(1, 0, b"abcd")], false, false);
        f[24 + 8..24 + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let mut r = CaptureReader::new(&f[..]).unwrap();
        assert!(matches!(
            r.next_packet(),
            Err(ReadError::TooLong { offset: 24, .. })
        ));
    }

    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = (body.len() + 12) as u32;
        let mut b = kind.to_le_bytes().to_vec();
        b.extend(len.to_le_bytes());
        b.extend(body);
        b.extend(len.to_le_bytes());
        b
    }

    fn pcapng_file() -> Vec<u8> {
        let mut shb = PCAPNG_BOM.to_le_bytes().to_vec();
        shb.extend(1u16.to_le_bytes());
        shb.extend(0u16.to_le_bytes());
        shb.extend((-1i64).to_le_bytes());
        let mut f = block(PCAPNG_SHB, &shb);
        // Interface 0: raw IP, nanosecond resolution.
        let mut idb = 101u16.to_le_bytes().to_vec();
        idb.extend(0u16.to_le_bytes());
        idb.extend(0u32.to_le_bytes());
        idb.extend(9u16.to_le_bytes());
        idb.extend(1u16.to_le_bytes());
        idb.extend([9, 0, 0, 0]);
        idb.extend([0, 0, 0, 0]);
        f.extend(block(1, &idb));
        // An unknown block is skipped.
        f.extend(block(0x0bad, b"skip"));
        let ts: u64 = 3_000_000_007;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend(((ts >> 32) as u32).to_le_bytes());
        epb.extend((ts as u32).to_le_bytes());
        epb.extend(3u32.to_le_bytes());
        epb.extend(3u32.to_le_bytes());
        epb.extend(b"abc");
        f.extend(block(6, &epb));
        let mut spb = 2u32.to_le_bytes().to_vec();
        spb.extend(b"zz");
        f.extend(block(3, &spb));
        f
    }

    #[test]
    fn pcapng_blocks() {
        let f = pcapng_file();
        let mut r = CaptureReader::new(&f[..]).unwrap();
        assert_eq!(r.format(), Format::PcapNg);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(
            (p.ts_nanos, p.data, p.link),
            (3_000_000_007, &b"abc"[..], LinkType::RAW)
        );
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.data, b"zz");
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn pcapng_bad_trailer_and_unknown_interface() {
        let mut f = pcapng_file();
        let n = f.len();
        // Corrupt the simple packet block's trailing length.
        f[n - 1] = 0x7f;
        let mut r = CaptureReader::new(&f[..]).unwrap();
        assert!(r.next_packet().unwrap().is_some());
        let e = r.next_packet().unwrap_err();
        assert!(matches!(e, ReadError::Corrupt { .. }), "{e}");
        assert_eq!(e.offset(), (n - 20) as u64);
    }

    /// A source that returns one byte per read (and an interruption now and then).
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.1 += 1;
            if self.1 % 7 == 0 {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "again"));
            }
            match (self.0.first(), out.first_mut()) {
                (Some(&b), Some(o)) => {
                    *o = b;
                    self.0 = &self.0[1..];
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn short_reads_give_the_same_packets() {
        let big = vec![0x5a; 70_000];
        let f = pcap(&[(1, 0, b"abcd"), (2, 0, &big), (3, 0, b"z")], false, true);
        for ng in [false, true] {
            let file = if ng { pcapng_file() } else { f.clone() };
            let mut a = CaptureReader::new(&file[..]).unwrap();
            let mut b = CaptureReader::new(Trickle(&file, 0)).unwrap();
            loop {
                let pa = a
                    .next_packet()
                    .unwrap()
                    .map(|p| (p.ts_nanos, p.data.to_vec(), p.offset));
                let pb = b
                    .next_packet()
                    .unwrap()
                    .map(|p| (p.ts_nanos, p.data.to_vec(), p.offset));
                assert_eq!(pa, pb);
                if pa.is_none() {
                    break;
                }
            }
        }
    }

    #[test]
    fn timestamp_units() {
        assert_eq!(to_nanos(5, (true, 6)), 5000);
        assert_eq!(to_nanos(5, (true, 12)), 0);
        assert_eq!(to_nanos(5000, (true, 12)), 5);
        assert_eq!(to_nanos(1 << 10, (false, 10)), 1_000_000_000);
        assert_eq!(to_nanos(u64::MAX, (true, 0)), u64::MAX);
        assert_eq!(to_nanos(7, (true, 127)), 0);
    }

    #[test]
    fn writer_round_trip() {
        let mut f = Vec::new();
        let mut w = CaptureWriter::new(&mut f, LinkType::ETHERNET).unwrap();
        w.write_parts(7_000_000_001, &[b"ab", b"cd"]).unwrap();
        w.into_inner().unwrap();
        let mut r = CaptureReader::new(&f[..]).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(
            (p.ts_nanos, p.data, p.link),
            (7_000_000_001, &b"abcd"[..], LinkType::ETHERNET)
        );
    }
}
