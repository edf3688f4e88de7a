//! [`Director::handle_packet`]: the flow layer over real bytes, rewritten by
//! [`crate::xmit::transmit`] (NAT, DR, TUN, related ICMP errors, the errors we send).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Director, DropReason, FlowHint, FlowPacket, FlowVerdict, HintKind, PacketDir};
use crate::conn::{ConnId, InKey, OutKey};
use crate::protocol::Protocol;
use crate::rules::{Forward, TunnelConfig, TunnelType};
use crate::sched::DestId;
use crate::time::Instant;
use crate::wire::{classify, icmpv4, proto, Classified, Family, QuotedPacket};
use crate::xmit::{self, transmit, Direction, Mapping, Verdict};

/// Routing facts the packet path needs that are not per connection (part of
/// [`super::DirectorConfig`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketConfig {
    /// The director's IPv4 address: source of IPv4 tunnel outer headers and of the IPv4 ICMP
    /// errors it builds about forwarded replies (errors about a client's packet come from
    /// the virtual address it was sent to).
    pub local_v4: Ipv4Addr,
    /// The director's IPv6 address (IPv6 tunnel outer headers, ICMPv6 errors about replies).
    pub local_v6: Ipv6Addr,
    /// MTU of the routes packets leave by, one value for every destination; 0 (the default)
    /// skips the MTU check (spec 3.1 step 4).
    pub route_mtu: u32,
    /// Sysctl `pmtu_disc` (default true).
    pub pmtu_disc: bool,
    /// The first IPv4 identification the director uses for headers it creates; each
    /// transmitted packet takes the next value (wrapping).
    pub first_ip_id: u16,
}

impl Default for PacketConfig {
    fn default() -> Self {
        PacketConfig {
            local_v4: Ipv4Addr::UNSPECIFIED,
            local_v6: Ipv6Addr::UNSPECIFIED,
            route_mtu: 0,
            pmtu_disc: true,
            first_ip_id: 0,
        }
    }
}

/// What to do with a packet given to [`Director::handle_packet`]. Ranges index the caller's
/// `buf` (forward, local) or `out` (reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketVerdict {
    /// Send the IP packet `buf[start..start + len]` towards `next_hop`: the real server (NAT
    /// inbound, DR, TUN: the outer header starts at `start`) or the client (NAT replies and
    /// NAT-translated ICMP errors from the real-server side, `reply` set).
    Forward {
        /// The connection (`None` for one-packet scheduling).
        conn: Option<ConnId>,
        /// Forwarding method.
        method: Forward,
        /// Next hop: real server, or client for replies. DR: the address whose MAC the frame
        /// gets ([`xmit::set_ethernet_addrs`]).
        next_hop: IpAddr,
        /// Start of the packet in `buf`.
        start: usize,
        /// Its length.
        len: usize,
        /// Whether this packet created the connection.
        new: bool,
        /// Whether it travels towards the client (a NAT reply).
        reply: bool,
    },
    /// Local-node real server (spec 3.5): deliver `buf[start..start + len]` to the local stack.
    Local {
        /// The connection.
        conn: Option<ConnId>,
        /// Start of the packet in `buf`.
        start: usize,
        /// Its length.
        len: usize,
    },
    /// Drop the packet and send the ICMP error built in `out[start..start + len]` (port
    /// unreachable for no destination, Time Exceeded, Fragmentation Needed / Packet Too Big).
    Reply {
        /// Why the packet was not forwarded.
        reason: xmit::DropReason,
        /// Start of the error in `out`.
        start: usize,
        /// Its length.
        len: usize,
    },
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
    /// The bytes are not a valid IP packet (Linux would have dropped it before IPVS); offsets
    /// count from `buf[headroom]`.
    Malformed(crate::wire::Error),
    /// The rewrite refused it ([`xmit::transmit`]'s reason), no error to send.
    Xmit(xmit::DropReason),
}

/// The flow-layer description of a classified TCP/UDP/SCTP packet.
fn flow_packet(c: &Classified, protocol: Protocol, fwmark: u32) -> FlowPacket {
    FlowPacket {
        protocol,
        src: SocketAddr::new(c.src, c.src_port),
        dst: SocketAddr::new(c.dst, c.dst_port),
        fwmark,
        tcp_flags: c.tcp_flags,
        // L3 length, as the kernel's byte counters (skb->len at the IP layer).
        len: c.total_len.min(u32::MAX as usize) as u32,
        dir: PacketDir::FromServer,
    }
}

/// The quoted header of a related ICMP error: protocol and the two endpoints as quoted.
struct Quote {
    protocol: Protocol,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
}

/// Reads the quoted header of the ICMP error classified as `c` (spec 3.7: a TCP, UDP or SCTP
/// header of the packet's family with its ports, not a later fragment). `None`: not related.
fn quote(buf: &[u8], headroom: usize, c: &Classified) -> Option<Quote> {
    let msg = icmp_message(buf, headroom, c)?;
    // ICMPv4 and ICMPv6 errors both quote after an 8-byte header.
    let q = QuotedPacket::new_checked(msg.get(icmpv4::HEADER_LEN..)?).ok()?;
    if q.is_ipv6() != (c.family == Family::V6) || q.is_later_fragment() {
        return None;
    }
    Some(Quote {
        protocol: balanced_protocol(q.protocol())?,
        src: (q.src_addr(), q.src_port()),
        dst: (q.dst_addr(), q.dst_port()),
    })
}

/// The ICMP message (header and body) of the packet classified as `c`.
fn icmp_message<'b>(buf: &'b [u8], headroom: usize, c: &Classified) -> Option<&'b [u8]> {
    let l4 = headroom.checked_add(c.l4_offset)?;
    let end = headroom
        .checked_add(c.l3_offset)?
        .checked_add(c.total_len)?;
    buf.get(l4..end)
}

/// The protocols whose quoted ports IPVS reads: TCP, UDP and SCTP.
fn balanced_protocol(number: u8) -> Option<Protocol> {
    match Protocol::from_number(number) {
        Some(p @ (Protocol::Tcp | Protocol::Udp | Protocol::Sctp)) => Some(p),
        _ => None,
    }
}

/// The protocol of a classified packet that has a connection-table key: balanced by IPVS,
/// with its transport header, and not a later fragment.
fn keyed_protocol(c: &Classified) -> Option<Protocol> {
    balanced_protocol(c.protocol).filter(|_| c.l4_present && !c.is_later_fragment())
}

/// What the packet path knows of a packet's key beforehand (for this director's table).
#[derive(Clone, Copy)]
enum Known<'a> {
    /// Nothing: the lookup hashes the key.
    Nothing,
    /// A caller's hint, used when it holds this packet's key.
    Hint(&'a HintKind),
    /// The in-index hash of this packet's key (an IPv4 packet with a client port; see
    /// [`Director::in_hash_v4_of`]).
    InHash(u64),
}

/// The packets of a burst [`Director::handle_burst`] reads ahead together: their buckets,
/// then their entries, then each packet handled.
const BURST_GROUP: usize = 16;

/// The key fields [`Director::handle_burst`] reads ahead from an IPv4 packet's bytes.
#[derive(Clone, Copy)]
struct PeekedKey {
    protocol: u8,
    src: u32,
    dst: u32,
    src_port: u16,
    dst_port: u16,
}

impl PeekedKey {
    /// Whether `c` is the classification of a packet with this key.
    #[inline(always)]
    fn describes(&self, c: &Classified) -> bool {
        matches!((c.src, c.dst), (IpAddr::V4(s), IpAddr::V4(d))
            if s.to_bits() == self.src && d.to_bits() == self.dst)
            && c.protocol == self.protocol
            && c.src_port == self.src_port
            && c.dst_port == self.dst_port
    }
}

impl Director {
    /// Handles one IP packet with firewall mark 0; see [`Director::handle_packet_marked`].
    ///
    /// ```
    /// use lvs_core::director::{Director, DirectorConfig, PacketVerdict};
    /// use lvs_core::conn::HashKey;
    /// use lvs_core::rules::RuleSet;
    /// use lvs_core::wire::classify;
    /// use lvs_core::Instant;
    /// # let pkt = {
    /// #     let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [10, 0, 0, 1], 64).udp(5353, 53);
    /// #     let mut v = Vec::new();
    /// #     b.write(&mut v, b"query").unwrap();
    /// #     v
    /// # };
    /// let mut d = Director::new(DirectorConfig::new(64, HashKey::from_u128(1)));
    /// d.apply_rules(Instant::ZERO, &lvs_core::rules::RuleSet::from_text(
    ///     "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.1:5300 -m\n").unwrap()).unwrap();
    /// let mut buf = vec![0u8; 64 + pkt.len()];
    /// buf[64..].copy_from_slice(&pkt);
    /// let mut out = [0u8; 576];
    /// let v = d.handle_packet(Instant::from_secs(1), &mut buf, 64, &mut out);
    /// let PacketVerdict::Forward { start, len, new: true, .. } = v else { panic!("{v:?}") };
    /// let c = classify(&buf[start..start + len]).unwrap();
    /// assert_eq!((c.dst.to_string(), c.dst_port, c.ttl), ("10.1.0.1".to_string(), 5300, 63));
    /// ```
    pub fn handle_packet(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        headroom: usize,
        out: &mut [u8],
    ) -> PacketVerdict {
        self.handle_packet_marked(now, buf, headroom, out, 0)
    }

    /// Handles one IP packet carrying firewall mark `fwmark`. The packet starts at
    /// `buf[headroom]`; the bytes before it are free space for tunnel headers (the
    /// [`xmit`] buffer convention). `out` receives an ICMP error we build (576 bytes hold any
    /// IPv4 one, 1280 any IPv6 one). The rewrite is in place and allocates nothing.
    ///
    /// Order, as the kernel's hooks: classify; ICMP errors go to the related-error path
    /// (spec 3.7); TCP/UDP/SCTP try the reply direction first (a packet matching a
    /// connection's reply key is a reply), then the client direction (lookup, scheduling,
    /// state, in-statistics: the flow layer); then [`xmit::transmit`] with the connection's
    /// [`Mapping`]. No destination gives a port unreachable ([`xmit::port_unreachable`]);
    /// TTL expiry and MTU give their errors as [`PacketVerdict::Reply`] after the connection
    /// state was updated (the kernel's transmitters check them). Non-first fragments are not
    /// ours (IPVS sees reassembled packets, spec 3.0).
    #[inline(always)]
    pub fn handle_packet_marked(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        headroom: usize,
        out: &mut [u8],
        fwmark: u32,
    ) -> PacketVerdict {
        let now = self.clamp(now);
        let Some(pkt) = buf.get(headroom..) else {
            return PacketVerdict::Drop(PacketDrop::Xmit(xmit::DropReason::Malformed));
        };
        // Borrowed where `classify` left it: moving the summary out of the `Result` costs
        // a copy of every field on each packet.
        let c = classify(pkt);
        let c = match &c {
            Ok(c) => c,
            Err(e) => return PacketVerdict::Drop(PacketDrop::Malformed(*e)),
        };
        self.handle_parsed(now, buf, headroom, c, out, fwmark, Known::Nothing)
    }

    /// [`Director::handle_packet_marked`] for a packet the caller has classified already:
    /// `c` must be what [`classify`] returns for `buf[headroom..]` (debug builds check it).
    /// For drivers that parse every packet before giving it to the director (to filter or
    /// dispatch it, as a capture replay does), so that it is not parsed twice; the verdict
    /// is the one `handle_packet_marked` gives. A `c` that does not describe the packet is a
    /// caller bug, asserted in debug builds; in release builds the packet path re-validates
    /// the structure of the header it rewrites against `c` (as [`transmit`] does for any
    /// summary: the `summary_of_another_packet` property test) and accesses `buf` only
    /// through checked ranges, so the verdict may be wrong (a drop, "not ours", or a flow of
    /// the wrong key) but nothing outside the packet changes.
    pub fn handle_classified(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        headroom: usize,
        c: &Classified,
        out: &mut [u8],
        fwmark: u32,
    ) -> PacketVerdict {
        let now = self.clamp(now);
        debug_assert_describes(buf, headroom, c);
        self.handle_parsed(now, buf, headroom, c, out, fwmark, Known::Nothing)
    }

    /// The [`FlowHint`] of a packet classified as `c` carrying mark `fwmark`, for
    /// [`Director::handle_classified_hinted`]: the hint of its flow as a client's packet
    /// (the direction the packet path looks up after the reply direction's source filter),
    /// without what only a connection's first packet uses ([`FlowHint::without_insert`]).
    /// A packet the flow layer never sees (ICMP, a later fragment, another protocol) gets a
    /// hint that names no key. Changes nothing. (The mark does not enter the hint: it
    /// matters only to the scheduling of a new connection, which the hint does not cover.)
    ///
    /// A driver with a batch of packets classifies them, takes their hints, calls
    /// [`Director::prefetch`] then [`Director::prefetch_conn`] for the whole batch, and then
    /// hands each packet over with its hint, so that the batch's cache misses overlap.
    ///
    /// ```
    /// use lvs_core::director::{Director, DirectorConfig};
    /// use lvs_core::conn::HashKey;
    /// use lvs_core::wire::classify;
    /// use lvs_core::Instant;
    /// # let pkt = {
    /// #     let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [10, 0, 0, 1], 64).udp(5353, 53);
    /// #     let mut v = Vec::new();
    /// #     b.write(&mut v, b"query").unwrap();
    /// #     v
    /// # };
    /// let rules = lvs_core::rules::RuleSet::from_text(
    ///     "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.1:5300 -m\n").unwrap();
    /// let [mut d, mut twin] = [0, 1].map(|_| {
    ///     let mut d = Director::new(DirectorConfig::new(64, HashKey::from_u128(1)));
    ///     d.apply_rules(Instant::ZERO, &rules).unwrap();
    ///     d
    /// });
    /// let mut out = [0u8; 576];
    /// for _ in 0..2 {
    ///     let (mut a, mut b) = (pkt.clone(), pkt.clone());
    ///     let c = classify(&a).unwrap();
    ///     let hint = d.packet_hint(&c, 0);
    ///     d.prefetch(&hint);
    ///     d.prefetch_conn(&hint);
    ///     let v = d.handle_classified_hinted(Instant::from_secs(1), &mut a, 0, &c, &mut out, 0, &hint);
    ///     // The verdict and bytes of the plain path.
    ///     assert_eq!(v, twin.handle_packet(Instant::from_secs(1), &mut b, 0, &mut out));
    ///     assert_eq!(a, b);
    /// }
    /// ```
    pub fn packet_hint(&self, c: &Classified, _fwmark: u32) -> FlowHint {
        // What `flow_hint(..).without_insert()` gives: no key for a packet without one, else
        // the client direction's key and its hash only (the hash of the reply key an insert
        // would use is not computed to be dropped).
        let Some(protocol) = keyed_protocol(c) else {
            return FlowHint {
                table: self.table.hash_key(),
                kind: HintKind::None,
            };
        };
        let (src, dst) = (
            SocketAddr::new(c.src, c.src_port),
            SocketAddr::new(c.dst, c.dst_port),
        );
        let key = InKey::of_flow(protocol, src, dst);
        let hash = match (c.src, c.dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => self.in_hash_v4_of(c, protocol),
            _ => self.table.in_hash(&key),
        };
        FlowHint {
            table: self.table.hash_key(),
            kind: HintKind::In {
                key,
                hash,
                out: None,
            },
        }
    }

    /// The in-index hash of the key of an IPv4 packet classified as `c` (`protocol` its
    /// balanced protocol), when it has a client port: what its lookup computes. `None` for
    /// any other packet.
    #[inline(always)]
    fn in_hash_v4_of(&self, c: &Classified, protocol: Protocol) -> Option<u64> {
        match (c.src, c.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) if c.src_port != 0 => Some(self.table.in_hash_v4(
                protocol,
                s.to_bits(),
                c.src_port,
                d.to_bits(),
                c.dst_port,
            )),
            _ => None,
        }
    }

    /// Handles a burst of IP packets with firewall mark 0, in order, each as
    /// [`Director::handle_packet`] handles it: the same verdicts, counters, state and bytes.
    /// `on_verdict` gets each packet's index in the burst, its buffer (rewritten) and its
    /// verdict, and `out`, which holds the ICMP error of a [`PacketVerdict::Reply`] until
    /// the next packet is handled. Every packet starts at `headroom` in its buffer.
    ///
    /// The burst is read ahead in groups of 16 packets, as a driver that receives packets in
    /// bursts (DPDK, AF_XDP, `recvmmsg`, a capture file) would do it by hand with
    /// [`Director::packet_hint`], [`Director::prefetch`], [`Director::prefetch_conn`] and
    /// [`Director::handle_classified_hinted`], without a hint's copies: for each packet of a
    /// group the key of a plain IPv4 packet is read from its bytes and hashed and its index
    /// bucket read into the CPU caches, then the connection entries those buckets name,
    /// then each packet is classified and handled with its hash, so that the cache misses of
    /// a table larger than the caches overlap instead of stalling each packet twice. The
    /// key read ahead and its hash depend only on the packet's bytes and the table's hash
    /// key, so handling a packet in between changes nothing they computed; the hash is used
    /// only when the classification finds that key. At most 16 packets are held at once:
    /// the packets may come from an iterator of any length.
    ///
    /// ```
    /// use lvs_core::director::{Director, DirectorConfig, PacketVerdict};
    /// use lvs_core::conn::HashKey;
    /// use lvs_core::wire::classify;
    /// use lvs_core::Instant;
    /// # let pkt = |sport: u16| {
    /// #     let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [10, 0, 0, 1], 64).udp(sport, 53);
    /// #     let mut v = Vec::new();
    /// #     b.write(&mut v, b"query").unwrap();
    /// #     v
    /// # };
    /// let mut d = Director::new(DirectorConfig::new(64, HashKey::from_u128(1)));
    /// d.apply_rules(Instant::ZERO, &lvs_core::rules::RuleSet::from_text(
    ///     "-A -u 10.0.0.1:53\n-a -u 10.0.0.1:53 -r 10.1.0.1:5300 -m\n").unwrap()).unwrap();
    /// let mut burst: Vec<Vec<u8>> = (5000..5040).map(pkt).collect();
    /// let mut out = [0u8; 576];
    /// let mut forwarded = 0;
    /// d.handle_burst(Instant::from_secs(1), burst.iter_mut().map(|b| &mut b[..]), 0, &mut out,
    ///     |i, buf, v, _out| {
    ///         let PacketVerdict::Forward { start, len, .. } = v else { panic!("{i}: {v:?}") };
    ///         let c = classify(&buf[start..start + len]).unwrap();
    ///         assert_eq!((c.src_port, c.dst_port), (5000 + i as u16, 5300));
    ///         forwarded += 1;
    ///     });
    /// assert_eq!(forwarded, 40);
    /// ```
    pub fn handle_burst<'a>(
        &mut self,
        now: Instant,
        packets: impl IntoIterator<Item = &'a mut [u8]>,
        headroom: usize,
        out: &mut [u8],
        mut on_verdict: impl FnMut(usize, &mut [u8], PacketVerdict, &[u8]),
    ) {
        let now = self.clamp(now);
        let mut packets = packets.into_iter().peekable();
        let mut bufs: [Option<&'a mut [u8]>; BURST_GROUP] = [const { None }; BURST_GROUP];
        let mut peeked = [None; BURST_GROUP];
        let mut done = 0usize;
        while packets.peek().is_some() {
            // A group: every packet's key peeked, hashed and its bucket read ahead, then every
            // entry those buckets name, then each packet classified and handled, with the
            // hash when the classification finds the peeked key.
            let mut n = 0;
            for (slot, buf) in bufs.iter_mut().zip(packets.by_ref().take(BURST_GROUP)) {
                peeked[n] = buf.get(headroom..).and_then(|p| self.peek_v4(p));
                if let Some((_, h)) = peeked[n] {
                    self.table.prefetch(Some(h), None);
                }
                *slot = Some(buf);
                n += 1;
            }
            for (_, h) in peeked[..n].iter().flatten() {
                self.table.prefetch_entries(Some(*h), None);
            }
            for k in 0..n {
                let Some(buf) = bufs[k].take() else {
                    break;
                };
                let v = match buf.get(headroom..) {
                    None => PacketVerdict::Drop(PacketDrop::Xmit(xmit::DropReason::Malformed)),
                    Some(pkt) => {
                        let c = classify(pkt);
                        match &c {
                            Err(e) => PacketVerdict::Drop(PacketDrop::Malformed(*e)),
                            Ok(c) => {
                                let known = match peeked[k] {
                                    Some((key, h)) if key.describes(c) => Known::InHash(h),
                                    _ => Known::Nothing,
                                };
                                self.handle_parsed(now, buf, headroom, c, out, 0, known)
                            }
                        }
                    }
                };
                on_verdict(done, buf, v, out);
                done += 1;
            }
        }
    }

    /// The key and in-index hash of an IPv4 packet of a balanced protocol with a plain
    /// header (no options, not a fragment) and a client port, read from its first bytes
    /// without classifying it (see [`Director::handle_burst`]). `None` for any other packet.
    /// Changes nothing.
    #[inline(always)]
    fn peek_v4(&self, pkt: &[u8]) -> Option<(PeekedKey, u64)> {
        let h: &[u8; 24] = pkt.first_chunk()?;
        if h[0] != 0x45 || u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
            return None;
        }
        let protocol = balanced_protocol(h[9])?;
        let key = PeekedKey {
            protocol: h[9],
            src: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
            dst: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
            src_port: u16::from_be_bytes([h[20], h[21]]),
            dst_port: u16::from_be_bytes([h[22], h[23]]),
        };
        if key.src_port == 0 {
            return None;
        }
        let hash = self
            .table
            .in_hash_v4(protocol, key.src, key.src_port, key.dst, key.dst_port);
        Some((key, hash))
    }

    /// [`Director::handle_classified`] with the packet's hint (from
    /// [`Director::packet_hint`]): the same verdict, counters and state, without hashing the
    /// flow's key again when the hint is this packet's and this director's (any other hint
    /// is ignored).
    #[allow(clippy::too_many_arguments)]
    pub fn handle_classified_hinted(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        headroom: usize,
        c: &Classified,
        out: &mut [u8],
        fwmark: u32,
        hint: &FlowHint,
    ) -> PacketVerdict {
        let now = self.clamp(now);
        debug_assert_describes(buf, headroom, c);
        let known = if hint.table == self.table.hash_key() {
            Known::Hint(&hint.kind)
        } else {
            Known::Nothing
        };
        self.handle_parsed(now, buf, headroom, c, out, fwmark, known)
    }

    /// The packet path after classification (`now` already clamped; `known` what is known
    /// of the packet's key, for this table).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn handle_parsed(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        headroom: usize,
        c: &Classified,
        out: &mut [u8],
        fwmark: u32,
        known: Known<'_>,
    ) -> PacketVerdict {
        if matches!(
            (c.family, c.protocol),
            (Family::V4, proto::ICMP) | (Family::V6, proto::ICMPV6)
        ) {
            if !c.icmp_error || !c.l4_present {
                // Echo and the rest: the director's own business (spec 3.7).
                return PacketVerdict::NotOurs;
            }
            // The calls off the common path take a copy of the summary (`&{ *c }`), so that
            // its fields need not be stored to memory for the common path's sake.
            return self.related_icmp(buf, headroom, &{ *c }, out);
        }
        let Some(protocol) = keyed_protocol(c) else {
            return PacketVerdict::NotOurs;
        };
        // An IPv4 packet of an existing connection, in the common case: looked up and
        // forwarded from the classified fields, without the flow layer's `FlowPacket`.
        // The table's reply-source filter, asked once for both directions below.
        let reply_source = self
            .table
            .may_be_reply_source(protocol, SocketAddr::new(c.src, c.src_port));
        let in_hint;
        // The hint of a packet whose in-index hash is known: its key and that hash.
        let hashed = |hash| HintKind::In {
            key: InKey::of_flow(
                protocol,
                SocketAddr::new(c.src, c.src_port),
                SocketAddr::new(c.dst, c.dst_port),
            ),
            hash: Some(hash),
            out: None,
        };
        let hint = match (&c.src, &c.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) if !reply_source => {
                // With a hint, only when it holds this packet's key and its hash; the plain
                // path's lookup (no hash known) is a copy of its own.
                let (s4, d4) = (src.to_bits(), dst.to_bits());
                let r = match known {
                    Known::Nothing => self
                        .existing_v4::<1>(now, buf, headroom, c, out, protocol, *src, *dst, None),
                    Known::Hint(HintKind::In {
                        key, hash: Some(h), ..
                    }) if key.is_of_v4_flow(protocol, s4, c.src_port, d4, c.dst_port) => {
                        let known = Some(*h);
                        self.existing_v4::<2>(
                            now, buf, headroom, c, out, protocol, *src, *dst, known,
                        )
                    }
                    Known::Hint(_) => Err(None),
                    Known::InHash(h) => self.existing_v4::<2>(
                        now,
                        buf,
                        headroom,
                        c,
                        out,
                        protocol,
                        *src,
                        *dst,
                        Some(h),
                    ),
                };
                match (r, known) {
                    (Ok(v), _) => return v,
                    // Not the common case, nothing changed: the general path decides, with
                    // the caller's hint or the lookup's hash.
                    (Err(_), Known::Hint(hint)) => Some(hint),
                    (Err(Some(hash)), _) | (Err(None), Known::InHash(hash)) => {
                        in_hint = hashed(hash);
                        Some(&in_hint)
                    }
                    (Err(None), _) => None,
                }
            }
            _ => match known {
                Known::Nothing => None,
                Known::Hint(hint) => Some(hint),
                Known::InHash(hash) => {
                    in_hint = hashed(hash);
                    Some(&in_hint)
                }
            },
        };
        let mut fp = flow_packet(c, protocol, fwmark);
        let (v, conn) = self.flow_out_conn_filtered(now, &fp, hint, reply_source);
        if v != FlowVerdict::NotOurs {
            self.count_verdict(&v);
            return match (v, conn) {
                (FlowVerdict::Reply { src }, Some(id)) => {
                    // Only the method: the entry's flags, not its whole target.
                    let forward = self
                        .table
                        .flags(id)
                        .map_or(Forward::Masq, |f| super::forward_of(f.fwd_method()));
                    // NAT in the common case: as the client direction's fast path.
                    let route_mtu = self.packet.route_mtu;
                    if let Some((start, len)) =
                        xmit::try_fast_out(buf, headroom, c, forward, src, route_mtu)
                    {
                        self.ip_id = self.ip_id.wrapping_add(1);
                        return PacketVerdict::Forward {
                            conn: Some(id),
                            method: forward,
                            next_hop: c.dst,
                            start,
                            len,
                            new: false,
                            reply: true,
                        };
                    }
                    let m = self.mapping(
                        (c.dst, c.dst_port),
                        (src.ip(), src.port()),
                        (c.src, c.src_port),
                        forward,
                        TunnelConfig::default(),
                    );
                    let v = transmit(buf, headroom, &{ *c }, &m, Direction::Out, out);
                    self.verdict(v, Some(id), false, true)
                }
                (FlowVerdict::NoDestination, _) => {
                    self.unreachable(buf, headroom, &{ *c }, out, Direction::Out)
                }
                (FlowVerdict::Drop(r), _) => PacketVerdict::Drop(PacketDrop::Flow(r)),
                _ => PacketVerdict::NotOurs,
            };
        }
        fp.dir = PacketDir::FromClient;
        let (v, dest) = self.flow_in_dest(now, &fp, hint);
        self.count_verdict(&v);
        match v {
            FlowVerdict::Forward {
                conn,
                dest: real,
                method,
                new,
            } => self.forward_in(buf, headroom, c, out, conn, dest, real, method, new),
            FlowVerdict::NoDestination => {
                self.unreachable(buf, headroom, &{ *c }, out, Direction::In)
            }
            FlowVerdict::Drop(r) => PacketVerdict::Drop(PacketDrop::Flow(r)),
            FlowVerdict::Reply { .. } | FlowVerdict::NotOurs => PacketVerdict::NotOurs,
        }
    }

    /// The client direction of [`Director::handle_parsed`] for an IPv4 packet (`src` and
    /// `dst` its addresses, `protocol` balanced, not a later fragment) of an existing
    /// connection, with the hash of its key when a hint gave it (`known`; `SITE` separates
    /// the lookup's copies): what the flow layer and the rewrite do for it, when nothing but
    /// the connection's own state update is involved (no reply-direction candidate: the
    /// caller asked the table's filter; no `nat_icmp_send`, no sync master, no SYN, an
    /// available real server).
    /// `Err`: not that case, nothing changed, with the in-index hash of the packet's key
    /// when the lookup computed it.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn existing_v4<const SITE: u8>(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        headroom: usize,
        c: &Classified,
        out: &mut [u8],
        protocol: Protocol,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        known: Option<u64>,
    ) -> Result<PacketVerdict, Option<u64>> {
        // The reply direction first, as `flow_out_conn`: with the table's source filter
        // saying no (the caller checked) and `nat_icmp_send` off, it is not ours there and
        // changes nothing.
        if self.sysctls.nat_icmp_send || self.sync_master.is_some() {
            return Err(None);
        }
        // `ip_vs_in`'s new-connection packet (on an existing entry or not): the flow layer
        // decides, with one lookup of its own.
        if protocol == Protocol::Tcp && c.tcp_flags & crate::conn::state::TcpInput::SYN != 0 {
            return Err(None);
        }
        let Some(e) = self.existing_in_v4::<SITE>(
            now,
            protocol,
            (src.to_bits(), c.src_port, dst.to_bits(), c.dst_port),
            c.tcp_flags,
            c.total_len.min(u32::MAX as usize) as u32,
            known,
        )?
        else {
            self.count_verdict(&FlowVerdict::NotOurs);
            return Ok(PacketVerdict::NotOurs);
        };
        self.counters.forwarded += 1;
        let method = super::forward_of(e.method);
        Ok(self.forward_in(
            buf,
            headroom,
            c,
            out,
            Some(e.id),
            e.dest,
            e.real,
            method,
            false,
        ))
    }

    /// A client's packet the flow layer forwards to `real` (of destination `dest`) by
    /// `method`: rewritten and its verdict.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn forward_in(
        &mut self,
        buf: &mut [u8],
        headroom: usize,
        c: &Classified,
        out: &mut [u8],
        conn: Option<ConnId>,
        dest: Option<DestId>,
        real: SocketAddr,
        method: Forward,
        new: bool,
    ) -> PacketVerdict {
        // NAT and DR in the common case: rewritten from the real server alone, with the
        // verdict `transmit` would give (and the IPv4 identification a mapping would have
        // taken).
        let route_mtu = self.packet.route_mtu;
        if let Some((start, len)) = xmit::try_fast_in(buf, headroom, c, method, real, route_mtu) {
            self.ip_id = self.ip_id.wrapping_add(1);
            return PacketVerdict::Forward {
                conn,
                method,
                next_hop: real.ip(),
                start,
                len,
                new,
                reply: false,
            };
        }
        let tunnel = self.dest_tunnel(dest);
        let m = self.mapping(
            (c.src, c.src_port),
            (c.dst, c.dst_port),
            (real.ip(), real.port()),
            method,
            tunnel,
        );
        let v = transmit(buf, headroom, &{ *c }, &m, Direction::In, out);
        self.verdict(v, conn, new, false)
    }

    /// Spec 3.7: an ICMP error quoting a packet of a connection. Tried as an error from the
    /// real-server side about a client → real-server packet first (`ip_vs_out_icmp`), then as
    /// an error from the client side about a virtual → client packet (`ip_vs_in_icmp`).
    /// Neither: not ours (`schedule_icmp` is not supported: such errors never schedule).
    fn related_icmp(
        &mut self,
        buf: &mut [u8],
        headroom: usize,
        c: &Classified,
        out: &mut [u8],
    ) -> PacketVerdict {
        if let Some(v) = self.tunnel_icmp(buf, headroom, c, out) {
            return v;
        }
        let Some(q) = quote(buf, headroom, c) else {
            return PacketVerdict::NotOurs;
        };
        let len = c.total_len.min(u32::MAX as usize) as u32;
        // Outgoing: quoted = client → RIP:dport; the reversed out key (source RIP:dport).
        let out_key = OutKey {
            protocol: q.protocol,
            saddr: q.dst.0,
            sport: q.dst.1,
            daddr: q.src.0,
            dport: q.src.1,
        };
        if let Some(id) = self.table.lookup_out(&out_key) {
            let Some(cn) = self.table.get(id) else {
                return PacketVerdict::NotOurs;
            };
            let forward = super::forward_of(cn.fwd_method());
            let m = self.mapping(
                (cn.caddr, cn.cport),
                (cn.vaddr, cn.vport),
                (cn.daddr, cn.dport),
                forward,
                TunnelConfig::default(),
            );
            if forward != Forward::Masq {
                // `handle_response_icmp`: checksum verified, out-stats counted, forwarded
                // unchanged (by the stack: not ours to rewrite).
                if !icmp_checksum_ok(buf, headroom, c) {
                    return PacketVerdict::Drop(PacketDrop::Xmit(xmit::DropReason::IcmpChecksum));
                }
                if let Some(d) = cn.dest {
                    self.count_out(d, len);
                }
                return PacketVerdict::NotOurs;
            }
            let v = transmit(buf, headroom, c, &m, Direction::Out, out);
            if let (Verdict::Forward { .. }, Some(d)) = (v, cn.dest) {
                self.count_out(d, len);
            }
            return self.verdict(v, Some(id), false, true);
        }
        // Incoming: quoted = VIP:vport → client; the reversed in key (client → VIP:vport).
        let in_key = InKey {
            protocol: q.protocol,
            caddr: q.dst.0,
            cport: q.dst.1,
            vaddr: q.src.0,
            vport: q.src.1,
        };
        let Some(id) = self.table.lookup_in(&in_key) else {
            return PacketVerdict::NotOurs;
        };
        let Some(cn) = self.table.get(id) else {
            return PacketVerdict::NotOurs;
        };
        let tunnel = self.dest_tunnel(cn.dest);
        let m = self.mapping(
            (cn.caddr, cn.cport),
            (cn.vaddr, cn.vport),
            (cn.daddr, cn.dport),
            super::forward_of(cn.fwd_method()),
            tunnel,
        );
        let v = transmit(buf, headroom, c, &m, Direction::In, out);
        // `ip_vs_in_icmp` counts in-stats once the checksum verified, before transmitting.
        let counted = !matches!(
            v,
            Verdict::Drop(xmit::DropReason::IcmpChecksum | xmit::DropReason::Malformed)
                | Verdict::NotOurs
        );
        if let (true, Some(d)) = (counted, cn.dest) {
            self.count_in(d, len);
        }
        self.verdict(v, Some(id), false, false)
    }

    /// Spec 3.7, the tunnel special case (IPv4, `ip_vs_in_icmp`): an ICMP error addressed to
    /// the director (LOCAL_IN: its destination is [`PacketConfig::local_v4`]) that quotes one
    /// of its own tunnel packets (protocol 4 to an ipip real server; UDP to a GUE real server's
    /// port with a version-0 data header carrying IPv4; GRE with no flags but C carrying IPv4,
    /// to a GRE real server). The quoted inner packet is the client's request, found in the
    /// forward direction. The error is consumed (out-statistics counted) and a new error of
    /// the same type and code goes to the client, from the virtual address (the kernel's
    /// `icmp_send` answers from the quoted packet's destination, which is local), quoting the
    /// client's packet. Fragmentation Needed is only answered when the client's packet had
    /// DF, with `mtu - 20` (when above 88) where `mtu` is the route MTU after the PMTU update.
    /// `None`: not this case, the normal related-error path decides.
    fn tunnel_icmp(
        &mut self,
        buf: &[u8],
        headroom: usize,
        c: &Classified,
        out: &mut [u8],
    ) -> Option<PacketVerdict> {
        let local = self.packet.local_v4;
        if c.family != Family::V4 || local.is_unspecified() || c.dst != IpAddr::V4(local) {
            return None;
        }
        let msg = icmp_message(buf, headroom, c)?;
        // The quoted outer header: the director's tunnel packet.
        let outer = QuotedPacket::new_checked(msg.get(icmpv4::HEADER_LEN..)?).ok()?;
        let (oproto, IpAddr::V4(odst)) = (outer.protocol(), outer.dst_addr()) else {
            return None;
        };
        if !matches!(oproto, 4 | proto::UDP | proto::GRE) {
            return None;
        }
        if outer.is_later_fragment() {
            // A later fragment has no tunnel header to read.
            return Some(PacketVerdict::NotOurs);
        }
        let after = outer.l4();
        let (kind, port, inner_at) = match oproto {
            4 => (TunnelType::Ipip, 0, 0),
            proto::UDP => {
                // `ipvs_udp_decap`: a GUE real server at this port, GUE version 0, a data
                // message carrying IPv4.
                let udp = after.get(..8)?;
                let dport = u16::from_be_bytes([udp[2], udp[3]]);
                let gue = after.get(8..12)?;
                let (ver, control, hlen) = (gue[0] >> 6, gue[0] & 0x20 != 0, gue[0] & 0x1f);
                if ver != 0 || control || gue[1] != 4 {
                    return None;
                }
                (TunnelType::Gue, dport, 12 + usize::from(hlen) * 4)
            }
            _ => {
                // `ipvs_gre_decap`: version 0, no flag but C, protocol IPv4.
                let gre = after.get(..4)?;
                let flags = u16::from_be_bytes([gre[0], gre[1]]);
                if flags & !0x8000 != 0 || u16::from_be_bytes([gre[2], gre[3]]) != 0x0800 {
                    return None;
                }
                (TunnelType::Gre, 0, if flags != 0 { 8 } else { 4 })
            }
        };
        // `ip_vs_find_tunnel`: a tunnelling real server at the quoted destination whose
        // encapsulation (and GUE port) the quoted packet used.
        let known = self.dests.iter().flatten().any(|d| {
            d.config.addr == IpAddr::V4(odst)
                && d.config.forward == Forward::Tunnel
                && d.config.tunnel.kind == kind
                && (kind != TunnelType::Gue || d.config.tunnel.port == port)
        });
        if !known {
            return None;
        }
        // The client's request as the tunnel packet carried it.
        let inner = after.get(inner_at..)?;
        let q = QuotedPacket::new_checked(inner).ok()?;
        if q.is_ipv6() || q.is_later_fragment() {
            return Some(PacketVerdict::NotOurs);
        }
        let Some(protocol) = balanced_protocol(q.protocol()) else {
            return Some(PacketVerdict::NotOurs);
        };
        let (IpAddr::V4(isrc), IpAddr::V4(idst)) = (q.src_addr(), q.dst_addr()) else {
            return None;
        };
        let client_df = q.ipv4().is_some_and(|h| h.dont_frag());
        let key = InKey {
            protocol,
            caddr: IpAddr::V4(isrc),
            cport: q.src_port(),
            vaddr: IpAddr::V4(idst),
            vport: q.dst_port(),
        };
        // Not found: passed on (`schedule_icmp` is not supported).
        let id = self.table.lookup_in(&key)?;
        let dest = self.table.get(id)?.dest;
        if !icmp_checksum_ok(buf, headroom, c) {
            return Some(PacketVerdict::Drop(PacketDrop::Xmit(
                xmit::DropReason::IcmpChecksum,
            )));
        }
        let consumed = PacketVerdict::Drop(PacketDrop::Xmit(xmit::DropReason::TunnelError));
        let mut rest = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
        if c.icmp_type == icmpv4::types::DEST_UNREACH && c.icmp_code == icmpv4::codes::FRAG_NEEDED {
            if !client_df {
                // The client does not use PMTU discovery: nothing to tell it.
                return Some(consumed);
            }
            let reported = u32::from(u16::from_be_bytes([msg[6], msg[7]]));
            // `ipv4_update_pmtu` then `dst_mtu` of the real server's route: the reported MTU
            // lowers the route's (never below `ip_rt_min_pmtu` 552); with no route MTU
            // configured, the reported one.
            let mut mtu = match self.packet.route_mtu {
                0 => reported,
                r if reported < 552 => r.min(552),
                r => r.min(reported),
            };
            // The kernel subtracts an IPv4 header whatever the encapsulation.
            if mtu > 68 + 20 {
                mtu -= 20;
            }
            rest = mtu.min(u32::from(u16::MAX));
        }
        let ip_id = self.ip_id;
        self.ip_id = self.ip_id.wrapping_add(1);
        // As every IPv4 error we build: no larger than the route MTU when it is below 576.
        let Ok(n) = xmit::icmp::build_relayed_v4(
            xmit::icmp::v4_error_room(out, self.packet.route_mtu),
            inner,
            idst,
            isrc,
            c.icmp_type,
            c.icmp_code,
            rest,
            ip_id,
        ) else {
            return Some(PacketVerdict::Drop(PacketDrop::Xmit(
                xmit::DropReason::ReplyBuffer,
            )));
        };
        // "ICMP can be shorter but anyways, account it": out-stats with the inner length.
        if let Some(d) = dest {
            self.count_out(d, inner.len().min(u32::MAX as usize) as u32);
        }
        Some(PacketVerdict::Reply {
            reason: xmit::DropReason::TunnelError,
            start: 0,
            len: n,
        })
    }

    /// Port unreachable for a packet with no destination (spec 6.1, `dir` [`Direction::In`]:
    /// from the virtual address it was sent to) or, `dir` [`Direction::Out`], for a real
    /// server's packet matching no connection with `nat_icmp_send` (spec 3.2: forwarded, not
    /// local, so from the director's own address).
    fn unreachable(
        &mut self,
        buf: &[u8],
        headroom: usize,
        c: &Classified,
        out: &mut [u8],
        dir: Direction,
    ) -> PacketVerdict {
        let m = self.mapping(
            (c.src, c.src_port),
            (c.dst, c.dst_port),
            (c.dst, c.dst_port),
            Forward::Masq,
            TunnelConfig::default(),
        );
        let v = xmit::icmp::port_unreachable_for(buf, headroom, c, &m, dir, out);
        self.verdict(v, None, false, false)
    }

    /// The tunnel configuration of a real server (default when unknown).
    fn dest_tunnel(&self, dest: Option<DestId>) -> TunnelConfig {
        dest.and_then(|d| self.dests.get(d.0 as usize))
            .and_then(|d| d.as_ref())
            .map_or(TunnelConfig::default(), |d| d.config.tunnel)
    }

    /// A [`Mapping`] with the director's routing facts and the next IPv4 identification.
    fn mapping(
        &mut self,
        client: (IpAddr, u16),
        virt: (IpAddr, u16),
        real: (IpAddr, u16),
        forward: Forward,
        tunnel: TunnelConfig,
    ) -> Mapping {
        let ip_id = self.ip_id;
        self.ip_id = self.ip_id.wrapping_add(1);
        Mapping {
            forward,
            tunnel,
            local_v4: self.packet.local_v4,
            local_v6: self.packet.local_v6,
            route_mtu: self.packet.route_mtu,
            pmtu_disc: self.packet.pmtu_disc,
            ip_id,
            ..Mapping::new(client, virt, real)
        }
    }

    /// The packet verdict of a transmit verdict.
    #[inline(always)]
    fn verdict(&self, v: Verdict, conn: Option<ConnId>, new: bool, reply: bool) -> PacketVerdict {
        match v {
            Verdict::Forward {
                method,
                next_hop,
                start,
                len,
            } => PacketVerdict::Forward {
                conn,
                method,
                next_hop,
                start,
                len,
                new,
                reply,
            },
            Verdict::Local { start, len } => PacketVerdict::Local { conn, start, len },
            Verdict::Reply { reason, start, len } => PacketVerdict::Reply { reason, start, len },
            Verdict::Drop(r) => PacketVerdict::Drop(PacketDrop::Xmit(r)),
            Verdict::NotOurs => PacketVerdict::NotOurs,
        }
    }
}

/// Whether the ICMP error classified as `c` has a valid checksum.
fn icmp_checksum_ok(buf: &[u8], headroom: usize, c: &Classified) -> bool {
    let Some(msg) = icmp_message(buf, headroom, c) else {
        return false;
    };
    match c.family {
        Family::V4 => {
            crate::wire::Icmpv4Packet::new_checked(msg).is_ok_and(|p| p.verify_checksum())
        }
        Family::V6 => crate::wire::Icmpv6Packet::new_checked(msg)
            .is_ok_and(|p| p.verify_checksum(&c.src, &c.dst)),
    }
}

/// Debug builds: asserts that `c` is what [`classify`] returns for `buf[headroom..]` (the
/// contract of the entry points that take a caller's classification).
#[inline(always)]
fn debug_assert_describes(buf: &[u8], headroom: usize, c: &Classified) {
    debug_assert_eq!(
        buf.get(headroom..).and_then(|p| classify(p).ok()).as_ref(),
        Some(c),
        "the classification does not describe the packet"
    );
}
