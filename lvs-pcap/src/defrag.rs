//! IPv4 reassembly in front of the director: the kernel reassembles IPv4 fragments before
//! IPVS sees them (spec 3.0: `ip_local_deliver` for packets to the virtual address, IPVS's
//! own `ip_vs_gather_frags` for replies), so a capture holding a fragmented datagram is
//! replayed as the one datagram the director would have handled.
//!
//! As `ip_frag_queue` / `ip_frag_reasm` do it: fragments are queued per (source,
//! destination, protocol, identification); an exact duplicate is ignored; any other
//! overlap, a second different end, or a datagram past 65535 bytes discards the whole
//! queue; a queue not completed within [`FRAG_TIMEOUT_NANOS`] (`ipfrag_time`, 30 s) of its
//! first fragment is discarded. The reassembled header is the first fragment's with the
//! total length, no MF and no offset, DF only when the largest fragment had it, and a new
//! header checksum. Memory is bounded: at most [`MAX_QUEUES`] datagrams and [`MAX_BYTES`]
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
    /// It completed its datagram: the whole IPv4 packet.
    Complete(Vec<u8>),
    /// It was discarded, with its datagram's queue when it had one; the reason, as a
    /// report counter name.
    Discarded(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: [u8; 4],
    dst: [u8; 4],
    protocol: u8,
    id: u16,
}

#[derive(Debug, Default)]
struct Queue {
    /// Capture time of the first fragment.
    since: u64,
    /// The first fragment's header, once it arrived.
    header: Option<Vec<u8>>,
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

/// IPv4 fragment queues (see the module documentation).
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

    /// Adds one IPv4 fragment (`ip`: the packet cut to its total length, already classified
    /// as a fragment, so its header is whole) seen at capture time `now`.
    pub fn push(&mut self, now: u64, ip: &[u8]) -> Reassembly {
        let Some(&[vihl, _, _, _, _, _, f0, f1, _, protocol]) = ip.first_chunk::<10>() else {
            return Reassembly::Discarded("fragment_malformed");
        };
        let ihl = usize::from(vihl & 0x0f) * 4;
        if ihl < 20 || ip.len() < ihl {
            return Reassembly::Discarded("fragment_malformed");
        }
        let frag = u16::from_be_bytes([f0, f1]);
        let offset = usize::from(frag & 0x1fff) * 8;
        let more = frag & 0x2000 != 0;
        let df = frag & 0x4000 != 0;
        let payload = &ip[ihl..];
        let end = offset + payload.len();
        let key = Key {
            src: [ip[12], ip[13], ip[14], ip[15]],
            dst: [ip[16], ip[17], ip[18], ip[19]],
            protocol,
            id: u16::from_be_bytes([ip[4], ip[5]]),
        };
        // The kernel refuses a datagram that would exceed the largest IP packet, and a
        // fragment but the last that is not a multiple of 8 bytes cannot be followed.
        if ihl + end > 65_535 || (more && payload.len() % 8 != 0) || payload.is_empty() {
            self.discard(&key);
            return Reassembly::Discarded("fragment_malformed");
        }
        if !self.queues.contains_key(&key)
            && (self.queues.len() >= MAX_QUEUES || self.bytes + payload.len() > MAX_BYTES)
        {
            return Reassembly::Discarded("fragment_table_full");
        }
        if self.bytes + payload.len() > MAX_BYTES {
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
            q.header = Some(ip[..ihl].to_vec());
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
