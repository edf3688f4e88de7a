//! [`Director::handle_packet`]: the flow layer over real bytes, with the NAT rewrite.

use core::net::SocketAddr;

use super::{Director, DropReason, FlowPacket, FlowVerdict, PacketDir};
use crate::conn::ConnId;
use crate::protocol::Protocol;
use crate::rules::Forward;
use crate::time::Instant;
use crate::wire::{classify, Classified};
use crate::xmit::{nat_in, nat_out, NatError, NatVerdict};

/// What to do with a packet given to [`Director::handle_packet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketVerdict {
    /// Send to a real server. For [`Forward::Masq`] the buffer was rewritten in place
    /// (destination = `dest`, TTL decremented, checksums updated); for the other methods the
    /// bytes are unchanged and the caller encapsulates (TUN) or routes to `dest`'s link
    /// address (DR).
    Forward {
        /// The connection (`None` for one-packet scheduling).
        conn: Option<ConnId>,
        /// Real server address and port.
        dest: SocketAddr,
        /// Forwarding method.
        method: Forward,
        /// Whether this packet created the connection.
        new: bool,
    },
    /// A NAT reply, rewritten in place (source = virtual address and port, TTL decremented):
    /// send it to the client.
    Reply,
    /// Drop and send ICMP port unreachable (type 3 code 3; ICMPv6 type 1 code 4) to the
    /// packet's source (spec §6.1). The buffer is unchanged.
    Unreachable,
    /// TTL / hop limit was <= 1: drop and send ICMP Time Exceeded to the packet's source. The
    /// connection state was updated first, as in the kernel (its transmitter checks the TTL).
    TimeExceeded,
    /// Not for IPVS: hand it to the local stack unchanged.
    NotOurs,
    /// Drop silently.
    Drop(PacketDrop),
}

/// Why [`Director::handle_packet`] dropped a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketDrop {
    /// The flow layer's decision.
    Flow(DropReason),
    /// The bytes are not a valid IP packet (Linux would have dropped it before IPVS).
    Malformed(crate::wire::Error),
    /// The NAT rewrite could not be applied.
    Nat(NatError),
}

impl Director {
    /// Handles one IP packet in `buf` (IPv4 or IPv6 from byte 0) with mark 0; see
    /// [`Director::handle_packet_marked`].
    pub fn handle_packet(&mut self, now: Instant, buf: &mut [u8]) -> PacketVerdict {
        self.handle_packet_marked(now, buf, 0)
    }

    /// Handles one IP packet carrying firewall mark `fwmark`.
    ///
    /// As the kernel's hooks do, the reply direction is tried first (a packet matching a
    /// connection's reply key is a reply), then the client direction. Only TCP, UDP and SCTP
    /// are handled: ICMP errors related to connections are not relayed yet (they are
    /// [`PacketVerdict::NotOurs`]), and so are non-first fragments (IPVS sees reassembled
    /// packets, spec §3.0). Only NAT rewrites bytes here.
    ///
    /// ```
    /// use lvs_core::director::{Director, DirectorConfig, PacketVerdict};
    /// use lvs_core::conn::HashKey;
    /// use lvs_core::rules::RuleSet;
    /// use lvs_core::wire::classify;
    /// use lvs_core::Instant;
    /// # let mut pkt = {
    /// #     let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [10, 0, 0, 1], 64).udp(5353, 53);
    /// #     let mut v = Vec::new();
    /// #     b.write(&mut v, b"query").unwrap();
    /// #     v
    /// # };
    /// let mut d = Director::new(DirectorConfig::new(64, HashKey::from_u128(1)));
    /// d.apply_rules(Instant::ZERO, &RuleSet::from_text(
    ///     "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.1:5300 -m\n").unwrap()).unwrap();
    /// let v = d.handle_packet(Instant::from_secs(1), &mut pkt);
    /// assert!(matches!(v, PacketVerdict::Forward { new: true, .. }));
    /// let c = classify(&pkt).unwrap();
    /// assert_eq!((c.dst.to_string(), c.dst_port, c.ttl), ("10.1.0.1".to_string(), 5300, 63));
    /// ```
    pub fn handle_packet_marked(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        fwmark: u32,
    ) -> PacketVerdict {
        let now = self.clamp(now);
        let c = match classify(buf) {
            Ok(c) => c,
            Err(e) => return PacketVerdict::Drop(PacketDrop::Malformed(e)),
        };
        let protocol = match Protocol::from_number(c.protocol) {
            Some(p @ (Protocol::Tcp | Protocol::Udp | Protocol::Sctp)) => p,
            _ => return PacketVerdict::NotOurs,
        };
        if !c.l4_present || c.is_later_fragment() {
            return PacketVerdict::NotOurs;
        }
        let mut pkt = FlowPacket {
            protocol,
            src: SocketAddr::new(c.src, c.src_port),
            dst: SocketAddr::new(c.dst, c.dst_port),
            fwmark,
            tcp_flags: c.tcp_flags,
            len: c.total_len.min(u32::MAX as usize) as u32,
            dir: PacketDir::FromServer,
        };
        let out = self.flow_out(now, &pkt);
        let v = if out == FlowVerdict::NotOurs {
            pkt.dir = PacketDir::FromClient;
            self.flow_in(now, &pkt)
        } else {
            out
        };
        self.count_verdict(&v);
        self.rewrite(buf, &c, v)
    }

    fn rewrite(&mut self, buf: &mut [u8], c: &Classified, v: FlowVerdict) -> PacketVerdict {
        let done = |r: Result<NatVerdict, NatError>, ok: PacketVerdict| match r {
            Ok(NatVerdict::Forward) => ok,
            Ok(NatVerdict::TimeExceeded) => PacketVerdict::TimeExceeded,
            Err(e) => PacketVerdict::Drop(PacketDrop::Nat(e)),
        };
        match v {
            FlowVerdict::Forward {
                conn,
                dest,
                method,
                new,
            } => {
                let ok = PacketVerdict::Forward {
                    conn,
                    dest,
                    method,
                    new,
                };
                if method == Forward::Masq {
                    done(nat_in(buf, c, dest.ip(), dest.port()), ok)
                } else {
                    ok
                }
            }
            FlowVerdict::Reply { src } => {
                if src.ip() == c.src && src.port() == c.src_port {
                    // A non-NAT connection's reply already comes from the virtual address.
                    PacketVerdict::Reply
                } else {
                    done(nat_out(buf, c, src.ip(), src.port()), PacketVerdict::Reply)
                }
            }
            FlowVerdict::NoDestination => PacketVerdict::Unreachable,
            FlowVerdict::NotOurs => PacketVerdict::NotOurs,
            FlowVerdict::Drop(r) => PacketVerdict::Drop(PacketDrop::Flow(r)),
        }
    }
}
