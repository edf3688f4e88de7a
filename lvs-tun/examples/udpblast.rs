//! Small-UDP load generator for `scripts/bench-lvs-tun.sh`: `udpblast ADDR THREADS SECONDS
//! [PAYLOAD]` sends PAYLOAD-byte datagrams (default 18: 64-byte frames) to ADDR as fast as it
//! can from THREADS sockets (one flow each) for SECONDS, then prints the packets sent.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: udpblast ADDR THREADS SECONDS [PAYLOAD]");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[1].parse().expect("ADDR");
    let threads: usize = args[2].parse().expect("THREADS");
    let secs: u64 = args[3].parse().expect("SECONDS");
    let payload: usize = args.get(4).map_or(18, |p| p.parse().expect("PAYLOAD"));
    let end = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let bind = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = UdpSocket::bind(bind).expect("bind");
                s.connect(addr).expect("connect");
                let buf = vec![0x5au8; payload];
                let mut sent = 0u64;
                while Instant::now() < end {
                    for _ in 0..256 {
                        if s.send(&buf).is_ok() {
                            sent += 1;
                        }
                    }
                }
                sent
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    println!("{total}");
}
