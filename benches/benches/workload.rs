//! The director workload shared by the `director` bench group and `examples/hotpath.rs`:
//! TCP flows from distinct clients to one virtual service.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lvs_core::director::{FlowPacket, PacketDir};
use lvs_core::Protocol;

/// The virtual service, 198.51.100.1:443.
pub fn vip() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 443)
}

/// Client `i`: 60,000 ports per address from 10.0.0.0 on.
pub fn client(i: u64) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(
            0x0a00_0000u32.wrapping_add((i / 60_000) as u32),
        )),
        1024 + (i % 60_000) as u16,
    )
}

/// Packet `i` of the workload: client `i` to the VIP with TCP `flags`.
pub fn pkt(i: u64, flags: u8) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        src: client(i),
        dst: vip(),
        fwmark: 0,
        tcp_flags: flags,
        len: 60,
        dir: PacketDir::FromClient,
    }
}
