//! The loop of a driver that software-pipelines its receive queue (as DPDK or VPP graph
//! nodes do): the `director/existing_flow_packet_nat/pipelined` bench and hotpath's `pipe`
//! mode run the same code.
use std::hint::black_box;

use lvs_core::director::Director;
use lvs_core::Instant;

/// How many packets before it is handled a packet is classified and hinted, and its table
/// bucket prefetched.
const AHEAD: usize = 16;
/// How many packets before it is handled the entry its bucket names is prefetched.
const CONN_AHEAD: usize = 8;
/// The packets between classification and handling, in rings of this many.
const RING: usize = 32;

/// Handles the 40-byte packets in `bufs` (at least one) in order, each with its summary and
/// hint (`handle_classified_hinted`), reading ahead as described above: no group
/// boundaries, so the memory latency of a packet's two dependent reads (bucket, then entry)
/// overlaps the work on the packets before it.
#[inline(never)]
pub fn handle_pipelined(d: &mut Director, now: Instant, bufs: &mut [u8], out: &mut [u8]) {
    let n = bufs.len() / 40;
    let first = lvs_core::wire::classify(&bufs[..40]).unwrap();
    let mut cs = [first; RING];
    let mut hs = [d.packet_hint(&first, 0); RING];
    for k in 0..n + AHEAD {
        if k < n {
            let c = lvs_core::wire::classify(&bufs[k * 40..k * 40 + 40]).unwrap();
            let h = d.packet_hint(&c, 0);
            d.prefetch(&h);
            cs[k % RING] = c;
            hs[k % RING] = h;
        }
        if let Some(j) = k.checked_sub(AHEAD - CONN_AHEAD).filter(|&j| j < n) {
            d.prefetch_conn(&hs[j % RING]);
        }
        if let Some(j) = k.checked_sub(AHEAD) {
            let (c, h) = (&cs[j % RING], &hs[j % RING]);
            let p = &mut bufs[j * 40..j * 40 + 40];
            black_box(d.handle_classified_hinted(now, p, 0, c, out, 0, h));
        }
    }
}

/// Handles the 40-byte packets in `bufs` in order through [`Director::handle_burst`], which
/// reads ahead inside the library (in groups of 16).
#[inline(never)]
pub fn handle_burst(d: &mut Director, now: Instant, bufs: &mut [u8], out: &mut [u8]) {
    d.handle_burst(now, bufs.chunks_exact_mut(40), 0, out, |_, _, v, _| {
        black_box(v);
    });
}
