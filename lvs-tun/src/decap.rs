//! `lvs-tun decap`: the real-server side of the TUN method (spec 3.4) for hosts whose kernel
//! lacks ipip, gre and fou. Packets routed into the tun device that are IPIP, GUE (UDP to the
//! configured port) or GRE, addressed to one of `--local`, have their outer headers removed;
//! the inner packet is written back into the device, so the local stack receives it as if it
//! had arrived on that interface. Everything else is dropped and counted.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use lvs_core::xmit::decapsulate;
use tracing::info;
use tun_rs::InterruptEvent;

use crate::counters::{Drop, Drops, QueueStats};
use crate::daemon::{open_device, RunError, MAX_PACKET};

/// Options of `lvs-tun decap`.
#[derive(Clone, Debug)]
pub struct DecapConfig {
    /// Device name.
    pub dev: String,
    /// The tunnel addresses of this server (outer destinations accepted).
    pub locals: Vec<IpAddr>,
    /// GUE's UDP port.
    pub gue_port: u16,
}

/// What one packet becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Write `buf[range]` (the inner packet) back.
    Deliver(std::ops::Range<usize>),
    /// Drop it, for this reason.
    Drop(Drop),
}

/// Decides about one packet read from the device.
pub fn decide(buf: &[u8], locals: &[IpAddr], gue_port: u16) -> Outcome {
    match decapsulate(buf, gue_port) {
        Ok(d) if locals.contains(&d.outer_dst) => Outcome::Deliver(d.inner),
        Ok(_) => Outcome::Drop(Drop::NotTunnel),
        Err(lvs_core::xmit::DecapError::Parse(_)) => Outcome::Drop(Drop::Malformed),
        Err(_) => Outcome::Drop(Drop::NotTunnel),
    }
}

/// Runs until SIGTERM / SIGINT.
pub fn run(cfg: DecapConfig) -> Result<(), RunError> {
    let devs = open_device(&cfg.dev, false, 1)?;
    let dev = &devs[0];
    let event = Arc::new(InterruptEvent::new().map_err(|source| RunError::Io {
        what: "interrupt event".into(),
        source,
    })?);
    let stop = Arc::new(AtomicBool::new(false));
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals =
            signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|source| {
                RunError::Io {
                    what: "signals".into(),
                    source,
                }
            })?;
        let (event, stop) = (event.clone(), stop.clone());
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                stop.store(true, Ordering::SeqCst);
                let _ = event.trigger();
            }
        });
    }
    info!(dev = %cfg.dev, locals = ?cfg.locals, gue_port = cfg.gue_port, "lvs-tun decap running");
    let drops = Drops::default();
    let stats = QueueStats::default();
    let mut buf = vec![0u8; MAX_PACKET];
    while !stop.load(Ordering::SeqCst) {
        let n = match dev.recv(&mut buf).or_else(|e| match e.kind() {
            io::ErrorKind::WouldBlock => {
                dev.recv_intr_timeout(&mut buf, &event, Some(StdDuration::from_millis(250)))
            }
            _ => Err(e),
        }) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::WouldBlock
                ) =>
            {
                continue
            }
            Err(_) => {
                stats.read_errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(StdDuration::from_millis(10));
                continue;
            }
        };
        stats.rx(n);
        match decide(&buf[..n], &cfg.locals, cfg.gue_port) {
            Outcome::Deliver(r) => match dev.send(&buf[r.clone()]) {
                Ok(_) => stats.tx(r.len()),
                Err(_) => drops.add(Drop::WriteError),
            },
            Outcome::Drop(d) => drops.add(d),
        }
    }
    info!(
        rx = stats.rx_packets.load(Ordering::Relaxed),
        delivered = stats.tx_packets.load(Ordering::Relaxed),
        malformed = drops.get(Drop::Malformed),
        not_tunnel = drops.get(Drop::NotTunnel),
        "lvs-tun decap stopped"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_core::rules::{Forward, TunnelConfig, TunnelType};
    use lvs_core::wire::classify;
    use lvs_core::xmit::{transmit, Direction, Mapping, Verdict};

    fn encapsulated(kind: TunnelType, port: u16) -> (Vec<u8>, Vec<u8>) {
        let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [10, 100, 0, 1], 64)
            .tcp(40000, 80, 1, 1024)
            .syn();
        let mut pkt = Vec::new();
        b.write(&mut pkt, b"hello").unwrap();
        let mut buf = vec![0u8; 64 + pkt.len()];
        buf[64..].copy_from_slice(&pkt);
        let c = classify(&buf[64..]).unwrap();
        let mut m = Mapping::new(
            (c.src, c.src_port),
            (c.dst, c.dst_port),
            ("10.0.1.111".parse().unwrap(), 80),
        );
        m.forward = Forward::Tunnel;
        m.tunnel = TunnelConfig {
            kind,
            port,
            ..TunnelConfig::default()
        };
        m.local_v4 = "10.0.1.1".parse().unwrap();
        let mut out = [0u8; 576];
        let v = transmit(&mut buf, 64, &c, &m, Direction::In, &mut out);
        let Verdict::Forward { start, len, .. } = v else {
            panic!("{v:?}")
        };
        (buf[start..start + len].to_vec(), pkt)
    }

    #[test]
    fn ipip_gue_gre_to_us_are_delivered_inner() {
        let me: Vec<IpAddr> = vec!["10.0.1.111".parse().unwrap()];
        for (kind, port) in [
            (TunnelType::Ipip, 0),
            (TunnelType::Gue, 6080),
            (TunnelType::Gre, 0),
        ] {
            let (outer, inner) = encapsulated(kind, port);
            let Outcome::Deliver(r) = decide(&outer, &me, 6080) else {
                panic!("{kind:?}")
            };
            let mut expect = inner.clone();
            // The tunnel transmitter decrements the inner TTL and fixes the checksum.
            let c = classify(&outer[r.clone()]).unwrap();
            assert_eq!(c.ttl, 63);
            expect[8] = 63;
            assert_eq!(outer[r.clone()][20..], expect[20..], "{kind:?}");
        }
    }

    #[test]
    fn others_are_dropped() {
        let me: Vec<IpAddr> = vec!["10.0.1.200".parse().unwrap()];
        let (outer, inner) = encapsulated(TunnelType::Ipip, 0);
        assert_eq!(decide(&outer, &me, 6080), Outcome::Drop(Drop::NotTunnel));
        let me: Vec<IpAddr> = vec!["10.0.1.111".parse().unwrap()];
        // A plain TCP packet is no tunnel; GUE to another port neither.
        assert!(matches!(decide(&inner, &me, 6080), Outcome::Drop(_)));
        let (gue, _) = encapsulated(TunnelType::Gue, 6080);
        assert!(matches!(decide(&gue, &me, 7777), Outcome::Drop(_)));
        for len in 0..outer.len() {
            assert!(matches!(decide(&outer[..len], &me, 6080), Outcome::Drop(_)));
        }
    }
}
