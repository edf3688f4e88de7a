//! Reassembly in front of the director: the kernel reassembles fragments before IPVS sees
//! them (spec 3.0: IPv4 in `ip_local_deliver` for packets to the virtual address and in
//! IPVS's own `ip_vs_gather_frags` for replies; IPv6 in `nf_defrag_ipv6`), so a capture
//! holding a fragmented datagram is replayed as the one datagram the director would have
//! handled.
//!
//! As `ip_frag_queue` / `ip_frag_reasm` (and their IPv6 twins) do it: fragments are queued
//! per (source, destination, identification, and for IPv4 protocol); an exact duplicate is
//! ignored; any other overlap, a second different end, or a datagram past 65535 bytes
//! discards the whole queue; a queue not completed within [`FRAG_TIMEOUT_NANOS`]
//! (`ipfrag_time`, 30 s) of its first fragment is discarded. IPv4: the reassembled header
//! is the first fragment's with the total length, no MF and no offset, DF only when the
//! largest fragment had it, and a new header checksum. IPv6: the first fragment's headers
//! without the Fragment header (the header before it names the next protocol), the new
//! payload length; an atomic fragment (offset 0, no M) goes on unchanged. Memory is bounded: at most [`MAX_QUEUES`] datagrams and [`MAX_BYTES`]
//! bytes wait at once; a fragment beyond that is discarded.
//!
//! ```
//! use lvs_pcap::defrag::{Defrag, Reassembly};
//! // 10.0.0.1 -> 10.0.0.2, UDP, id 7: 16 payload bytes in two fragments of 8.
//! let frag = |off: u16, mf: bool, body: &[u8]| {
//!     let mut p = vec![0x45, 0, 0, 0, 0, 7, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
//!     let total = (20 + body.len()) as u16;
//!     p[2..4].copy_from_slice(&total.to_be_bytes());
//!     let f = (off / 8) | if mf { 0x2000 } else { 0 };
//!     p[6..8].copy_from_slice(&f.to_be_bytes());
//!     p.extend_from_slice(body);
//!     p
//! };
//! let mut d = Defrag::new();
//! assert!(matches!(d.push(0, &frag(8, false, b"BBBBBBBB")), Reassembly::Held));
//! let Reassembly::Complete(p) = d.push(1, &frag(0, true, b"AAAAAAAA")) else { panic!() };
//! assert_eq!(&p[20..], b"AAAAAAAABBBBBBBB");
//! assert_eq!((u16::from_be_bytes([p[2], p[3]]), &p[6..8]), (36, &[0u8, 0][..]));
//! assert_eq!(d.pending(), 0);
//! ```

use hashbrown::HashMap;
use lvs_core::wire::checksum;

/// `ipfrag_time`: a datagram not completed this long after its first fragment is discarded.
pub const FRAG_TIMEOUT_NANOS: u64 = 30_000_000_000;
/// Most datagrams waiting for fragments at once.
pub const MAX_QUEUES: usize = 4096;
/// Most fragment bytes held at once (`ipfrag_high_thresh`, 4 MiB).
pub const MAX_BYTES: usize = 4 * 1024 * 1024;

/// What became of a fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembly {
    /// Queued: its datagram is not complete yet (or it repeated a fragment already held).
    Held,
    /// It completed its datagram: the whole IPv4 or IPv6 packet.
    Complete(Vec<u8>),
    /// It was discarded, with its datagram's queue when it had one; the reason, as a
    /// report counter name.
    Discarded(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    /// IPv4 addresses in the first 4 bytes.
    src: [u8; 16],
    dst: [u8; 16],
    v6: bool,
    /// IPv4 only (IPv6 queues are keyed by addresses and identification).
    protocol: u8,
    id: u32,
}

/// One fragment, parsed.
struct Fragment<'a> {
    key: Key,
    /// Bytes before the fragmentable part (IPv4 header; IPv6 header and the extension
    /// headers before the Fragment header).
    head: &'a [u8],
    /// IPv6: where in `head` the next-header byte that named the Fragment header is, and
    /// the protocol the Fragment header names.
    next_header: Option<(usize, u8)>,
    offset: usize,
    more: bool,
    df: bool,
    payload: &'a [u8],
}

fn parse_v4(ip: &[u8]) -> Option<Fragment<'_>> {
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if ihl < 20 || ip.len() < ihl {
        return None;
    }
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    let mut src = [0; 16];
    let mut dst = [0; 16];
    src[..4].copy_from_slice(&ip[12..16]);
    dst[..4].copy_from_slice(&ip[16..20]);
    Some(Fragment {
        key: Key {
            src,
            dst,
            v6: false,
            protocol: ip[9],
            id: u32::from(u16::from_be_bytes([ip[4], ip[5]])),
        },
        head: &ip[..ihl],
        next_header: None,
        offset: usize::from(frag & 0x1fff) * 8,
        more: frag & 0x2000 != 0,
        df: frag & 0x4000 != 0,
        payload: &ip[ihl..],
    })
}

fn parse_v6(ip: &[u8]) -> Option<Fragment<'_>> {
    // Walk hop-by-hop, routing and destination options headers to the Fragment header.
    let mut nh_at = 6;
    let mut at = 40;
    loop {
        match *ip.get(nh_at)? {
            44 => break,
            0 | 43 | 60 => {
                let len = (usize::from(*ip.get(at + 1)?) + 1) * 8;
                nh_at = at;
                at += len;
            }
            _ => return None,
        }
    }
    let f = ip.get(at..at + 8)?;
    let off = u16::from_be_bytes([f[2], f[3]]);
    Some(Fragment {
        key: Key {
            src: ip.get(8..24)?.try_into().ok()?,
            dst: ip.get(24..40)?.try_into().ok()?,
            v6: true,
            protocol: 0,
            id: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
        },
        head: &ip[..at],
        next_header: Some((nh_at, f[0])),
        offset: usize::from(off >> 3) * 8,
        more: off & 1 != 0,
        df: false,
        payload: &ip[at + 8..],
    })
}

#[derive(Debug, Default)]
struct Queue {
    /// Capture time of the first fragment.
    since: u64,
    /// The first fragment's unfragmentable part, once it arrived.
    header: Option<Vec<u8>>,
    /// IPv6: the next-header byte to point past the Fragment header (see [`Fragment`]).
    next_header: Option<(usize, u8)>,
    /// `(offset, payload)`, in arrival order; never overlapping.
    parts: Vec<(usize, Vec<u8>)>,
    /// Payload length, once the last fragment arrived.
    end: Option<usize>,
    /// Payload bytes held.
    held: usize,
    /// Largest fragment seen, and largest with DF.
    max_size: usize,
    max_df_size: usize,
}

/// IPv4 and IPv6 fragment queues (see the module documentation).
#[derive(Debug, Default)]
pub struct Defrag {
    queues: HashMap<Key, Queue>,
    bytes: usize,
}

impl Defrag {
    /// No datagram pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Datagrams still waiting for fragments.
    pub fn pending(&self) -> usize {
        self.queues.len()
    }

    /// Discards the datagrams whose first fragment came more than [`FRAG_TIMEOUT_NANOS`]
    /// before `now` (capture time in nanoseconds); returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let before = self.queues.len();
        let mut freed = 0;
        self.queues.retain(|_, q| {
            let keep = now.saturating_sub(q.since) <= FRAG_TIMEOUT_NANOS;
            if !keep {
                freed += q.held;
            }
            keep
        });
        self.bytes -= freed;
        before - self.queues.len()
    }

    /// Adds one fragment (`ip`: the IPv4 or IPv6 packet cut to its total length, already
    /// classified as a fragment) seen at capture time `now`.
    pub fn push(&mut self, now: u64, ip: &[u8]) -> Reassembly {
        let parsed = match ip.first().map(|b| b >> 4) {
            Some(4) => parse_v4(ip),
            Some(6) => parse_v6(ip),
            _ => None,
        };
        let Some(Fragment {
            key,
            head,
            next_header,
            offset,
            more,
            df,
            payload,
        }) = parsed
        else {
            return Reassembly::Discarded("fragment_malformed");
        };
        if key.v6 && offset == 0 && !more {
            // An atomic fragment (RFC 6946): no reassembly, the packet goes on as it is.
            return Reassembly::Complete(ip.to_vec());
        }
        let end = offset + payload.len();
        // The kernel refuses a datagram that would exceed the largest IP packet (IPv6: its
        // payload length), and a fragment but the last that is not a multiple of 8 bytes
        // cannot be followed.
        let limit = if key.v6 { 65_535 + 40 } else { 65_535 };
        if head.len() + end > limit || (more && payload.len() % 8 != 0) || payload.is_empty() {
            self.discard(&key);
            return Reassembly::Discarded("fragment_malformed");
        }
        // Past the byte bound the fragment goes, with its datagram's queue if it has one;
        // a new datagram needs a free queue too.
        if self.bytes + payload.len() > MAX_BYTES
            || (self.queues.len() >= MAX_QUEUES && !self.queues.contains_key(&key))
        {
            self.discard(&key);
            return Reassembly::Discarded("fragment_table_full");
        }
        let q = self.queues.entry(key).or_insert_with(|| Queue {
            since: now,
            ..Queue::default()
        });
        let bad_end = match q.end {
            Some(e) => end > e || (!more && end != e),
            None => !more && q.parts.iter().any(|(o, p)| o + p.len() > end),
        };
        if bad_end {
            self.discard(&key);
            return Reassembly::Discarded("fragment_overlap");
        }
        let mut overlap = false;
        for (o, p) in &q.parts {
            if *o == offset && p.len() == payload.len() {
                // An exact repeat (a retransmitted fragment): ignored, the queue kept.
                return Reassembly::Held;
            }
            overlap |= offset < o + p.len() && *o < end;
        }
        if overlap {
            self.discard(&key);
            return Reassembly::Discarded("fragment_overlap");
        }
        if offset == 0 {
            q.header = Some(head.to_vec());
            q.next_header = next_header;
        }
        if !more {
            q.end = Some(end);
        }
        q.parts.push((offset, payload.to_vec()));
        q.held += payload.len();
        q.max_size = q.max_size.max(ip.len());
        if df {
            q.max_df_size = q.max_df_size.max(ip.len());
        }
        self.bytes += payload.len();
        // Parts never overlap, so the datagram is whole when they add up to its end.
        match (q.end, &q.header) {
            (Some(e), Some(_)) if q.held == e => {}
            _ => return Reassembly::Held,
        }
        let Some(mut q) = self.queues.remove(&key) else {
            return Reassembly::Held;
        };
        self.bytes -= q.held;
        let mut p = q.header.take().unwrap_or_default();
        let hl = p.len();
        p.resize(hl + q.held, 0);
        for (o, part) in &q.parts {
            p[hl + o..hl + o + part.len()].copy_from_slice(part);
        }
        if let Some((at, nh)) = q.next_header {
            // IPv6: the Fragment header goes; its predecessor names what followed it.
            p[at] = nh;
            let len = (p.len() - 40) as u16;
            p[4..6].copy_from_slice(&len.to_be_bytes());
        } else {
            let total = p.len() as u16;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            // `ip_frag_reasm`: DF only when the largest fragment carried it.
            let flags: u16 = if q.max_df_size == q.max_size {
                0x4000
            } else {
                0
            };
            p[6..8].copy_from_slice(&flags.to_be_bytes());
            p[10..12].copy_from_slice(&[0, 0]);
            let sum = !checksum::data(&p[..hl]);
            p[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        Reassembly::Complete(p)
    }

    fn discard(&mut self, key: &Key) {
        if let Some(q) = self.queues.remove(key) {
            self.bytes -= q.held;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 fragment of datagram `id` (UDP, 10.0.0.1 -> 10.0.0.2).
    fn frag(id: u16, off: usize, more: bool, df: bool, body: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        let f = (off / 8) as u16 | if more { 0x2000 } else { 0 } | if df { 0x4000 } else { 0 };
        p[6..8].copy_from_slice(&f.to_be_bytes());
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn any_order_with_a_duplicate() {
        let mut d = Defrag::new();
        assert_eq!(
            d.push(0, &frag(1, 16, false, false, b"cc")),
            Reassembly::Held
        );
        assert_eq!(
            d.push(1, &frag(1, 8, true, false, &[b'b'; 8])),
            Reassembly::Held
        );
        assert_eq!(
            d.push(2, &frag(1, 8, true, false, &[b'b'; 8])),
            Reassembly::Held
        );
        let Reassembly::Complete(p) = d.push(3, &frag(1, 0, true, false, &[b'a'; 8])) else {
            panic!()
        };
        assert_eq!(&p[20..], b"aaaaaaaabbbbbbbbcc");
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 38);
        assert_eq!(!checksum::data(&p[..20]), 0);
        assert_eq!((d.pending(), d.bytes), (0, 0));
    }

    #[test]
    fn overlap_and_bad_end_discard_the_datagram() {
        let mut d = Defrag::new();
        assert_eq!(
            d.push(0, &frag(2, 0, true, false, &[1; 16])),
            Reassembly::Held
        );
        assert_eq!(
            d.push(1, &frag(2, 8, false, false, &[2; 16])),
            Reassembly::Discarded("fragment_overlap")
        );
        assert_eq!((d.pending(), d.bytes), (0, 0));
        assert_eq!(
            d.push(2, &frag(3, 16, false, false, &[1; 4])),
            Reassembly::Held
        );
        assert_eq!(
            d.push(3, &frag(3, 8, false, false, &[1; 4])),
            Reassembly::Discarded("fragment_overlap")
        );
        assert_eq!(
            d.push(4, &frag(4, 0, true, false, &[1; 5])),
            Reassembly::Discarded("fragment_malformed")
        );
        assert_eq!((d.pending(), d.bytes), (0, 0));
    }

    /// An IPv6 fragment of datagram `id` (fd00::1 -> fd00::2) behind a destination options
    /// header, of a UDP datagram.
    fn frag6(id: u32, off: usize, more: bool, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 60, 64];
        p.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        // Destination options (8 bytes: PadN), then the Fragment header naming UDP.
        p.extend([44, 0, 1, 4, 0, 0, 0, 0]);
        p.extend([17, 0]);
        p.extend((((off / 8) as u16) << 3 | u16::from(more)).to_be_bytes());
        p.extend(id.to_be_bytes());
        p.extend_from_slice(body);
        let plen = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        p
    }

    #[test]
    fn ipv6_drops_the_fragment_header() {
        let mut d = Defrag::new();
        assert_eq!(d.push(0, &frag6(9, 8, false, b"tail")), Reassembly::Held);
        // Same addresses and identification in IPv4 form do not mix with it.
        assert_eq!(
            d.push(0, &frag(9, 0, true, false, &[0; 8])),
            Reassembly::Held
        );
        let Reassembly::Complete(p) = d.push(1, &frag6(9, 0, true, b"headhead")) else {
            panic!()
        };
        // Payload length 8 (options) + 12; the options header now names UDP.
        assert_eq!((&p[4..6], p[6], p[40]), (&[0u8, 20][..], 60, 17));
        assert_eq!(&p[48..], b"headheadtail");
        assert_eq!(d.pending(), 1);
        // An atomic fragment goes on as it is.
        let atomic = frag6(10, 0, false, b"whole");
        assert_eq!(d.push(2, &atomic), Reassembly::Complete(atomic.clone()));
    }

    #[test]
    fn df_only_when_the_largest_fragment_had_it_and_timeout() {
        let mut d = Defrag::new();
        assert_eq!(
            d.push(0, &frag(5, 0, true, true, &[0; 8])),
            Reassembly::Held
        );
        let Reassembly::Complete(p) = d.push(0, &frag(5, 8, false, false, &[0; 2])) else {
            panic!()
        };
        assert_eq!(&p[6..8], &[0x40, 0]);
        assert_eq!(
            d.push(0, &frag(6, 0, true, false, &[0; 8])),
            Reassembly::Held
        );
        assert_eq!(d.expire(FRAG_TIMEOUT_NANOS), 0);
        assert_eq!(d.expire(FRAG_TIMEOUT_NANOS + 1), 1);
        assert_eq!((d.pending(), d.bytes), (0, 0));
    }
}
