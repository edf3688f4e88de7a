//! Synthetic captures for benchmarks and comparisons: many TCP flows from many clients to one
//! virtual service, interleaved as a busy director would see them.
//!
//! ```
//! use lvs_pcap::capture::CaptureReader;
//! let cap = lvs_pcap::synth::multi_flow_capture(10, 5, 64);
//! let mut r = CaptureReader::new(&cap[..]).unwrap();
//! let mut n = 0;
//! while let Some(p) = r.next_packet().unwrap() {
//!     assert!(lvs_core::wire::classify(p.data).is_ok());
//!     n += 1;
//! }
//! assert_eq!(n, 50);
//! ```

use core::net::{IpAddr, Ipv4Addr};

use lvs_core::wire::{checksum, proto};

use crate::capture::{CaptureWriter, LinkType};

/// The virtual service of [`multi_flow_capture`].
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 10);
/// Its port.
pub const VPORT: u16 = 80;

/// Rules for [`multi_flow_capture`]: the virtual service NAT-ed to `servers` real servers
/// (10.100.0.1.. port 8080) with `sched`.
pub fn rules(servers: u8, sched: &str) -> String {
    let mut s = format!("-A -t {VIP}:{VPORT} -s {sched}\n");
    for i in 1..=servers {
        s.push_str(&format!(
            "-a -t {VIP}:{VPORT} -r 10.100.0.{i}:8080 -m -w 1\n"
        ));
    }
    s
}

/// One IPv4 TCP segment with valid checksums.
pub fn tcp_segment(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let len = 40 + payload.len();
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = proto::TCP;
    p[12..16].copy_from_slice(&src.0.octets());
    p[16..20].copy_from_slice(&dst.0.octets());
    let h = !checksum::data(&p[..20]);
    p[10..12].copy_from_slice(&h.to_be_bytes());
    let t = &mut p[20..];
    t[0..2].copy_from_slice(&src.1.to_be_bytes());
    t[2..4].copy_from_slice(&dst.1.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&1u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    t[20..].copy_from_slice(payload);
    let pseudo = checksum::pseudo_header(
        &IpAddr::V4(src.0),
        &IpAddr::V4(dst.0),
        proto::TCP,
        (20 + payload.len()) as u32,
    );
    let c = !checksum::combine(&[pseudo, checksum::data(t)]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    p
}

/// A raw-IP pcap of `flows` TCP flows of `per_flow` client packets each (SYN, data with
/// `payload` bytes, ..., FIN), flows interleaved round-robin, one packet per microsecond.
/// Clients are 198.18.0.0/15 addresses with ports from 1024.
pub fn multi_flow_capture(flows: u32, per_flow: u32, payload: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity((flows * per_flow) as usize * (56 + payload));
    let mut w = CaptureWriter::new(&mut out, LinkType::RAW).expect("writing to memory");
    let body = vec![0x61u8; payload];
    let mut ts: u64 = 1_700_000_000_000_000_000;
    for k in 0..per_flow {
        for f in 0..flows {
            let client = Ipv4Addr::from(0xc612_0000u32 + (f / 50_000) * 256 + (f % 200) + 1);
            let cport = 1024 + (f % 50_000) as u16;
            let (flags, data): (u8, &[u8]) = match k {
                0 => (0x02, &[]),
                k if k + 1 == per_flow => (0x11, &[]),
                _ => (0x18, &body),
            };
            let seg = tcp_segment((client, cport), (VIP, VPORT), 1000 + k, flags, data);
            w.write_packet(ts, &seg).expect("writing to memory");
            ts += 1000;
        }
    }
    w.into_inner().expect("writing to memory");
    out
}
