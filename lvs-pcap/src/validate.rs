//! Checks of every packet the director outputs, against the packet it came from.
//!
//! The approach for rewrites: copy the output, put back the fields the forwarding method is
//! allowed to change (NAT: one address and one port; every method: TTL / hop limit, which
//! must be exactly one less), then compare with the input byte for byte, skipping only the
//! checksum fields (which are verified on their own). So anything else that changed (payload,
//! sequence numbers, flags, options, IP identification, ...) is found and named.
//!
//! Checksums: the IPv4 header checksum must verify; TCP, UDP, ICMP and ICMPv6 checksums must
//! verify, or, when the *input's* checksum already did not (a capture taken where the sender's
//! checksum offload leaves partial sums), must be off by exactly the same amount: an
//! incremental update (RFC 1624) preserves the error, so the rewrite is still proven correct.

use core::net::IpAddr;
use core::ops::Range;

use lvs_core::rules::{TunnelConfig, TunnelType};
use lvs_core::wire::{checksum, classify, proto, Classified, Family, Ipv4Packet, QuotedPacket};
use lvs_core::xmit::{self, decapsulate};

/// Why an output packet failed validation (a counter key in the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailReason {
    /// The output does not parse as an IP packet.
    Unparseable,
    /// The IPv4 header checksum does not verify.
    Ipv4Checksum,
    /// The TCP / UDP / ICMP / ICMPv6 checksum does not verify (nor preserves the input's
    /// offload error).
    L4Checksum,
    /// TTL / hop limit not decremented by exactly one.
    Ttl,
    /// Addresses or ports are not the ones the forwarding method must write.
    Rewrite,
    /// Something that must not change changed (payload, sequence numbers, flags, ...).
    Changed,
    /// The tunnel's outer headers are wrong.
    Tunnel,
    /// A flow went to another real server during its life.
    FlowMoved,
    /// A reply or ICMP error was translated for another flow than the one it belongs to.
    FlowMismatch,
    /// An ICMP error the director built is wrong (type, code, addresses, quote).
    IcmpGenerated,
    /// `--side client`: the reply the director produced differs from the captured one.
    ClientMismatch,
    /// A direct-routing frame has no neighbour entry for its real server.
    NoNeighbour,
    /// DR lint: a real server answers ARP / neighbour discovery for a virtual address.
    DrArpVip,
}

impl FailReason {
    /// A stable `snake_case` name.
    pub const fn name(self) -> &'static str {
        match self {
            FailReason::Unparseable => "unparseable",
            FailReason::Ipv4Checksum => "ipv4_header_checksum",
            FailReason::L4Checksum => "l4_checksum",
            FailReason::Ttl => "ttl",
            FailReason::Rewrite => "rewrite",
            FailReason::Changed => "changed",
            FailReason::Tunnel => "tunnel",
            FailReason::FlowMoved => "flow_moved",
            FailReason::FlowMismatch => "flow_mismatch",
            FailReason::IcmpGenerated => "icmp_generated",
            FailReason::ClientMismatch => "client_mismatch",
            FailReason::NoNeighbour => "no_neighbour",
            FailReason::DrArpVip => "dr_arp_vip",
        }
    }
}

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The kind.
    pub reason: FailReason,
    /// What differed, in words.
    pub detail: String,
}

impl Failure {
    /// A failure of `reason` with `detail`.
    pub fn new(reason: FailReason, detail: impl Into<String>) -> Failure {
        Failure {
            reason,
            detail: detail.into(),
        }
    }
}

/// A connection's identity from the client's side: protocol, client, virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    /// IP protocol.
    pub protocol: u8,
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Virtual address and port.
    pub vip: (IpAddr, u16),
}

impl std::hash::Hash for FlowKey {
    /// Two word writes for an IPv4 flow (the replay looks a flow up for every packet; hashing
    /// the fields one by one, or as bytes, costs several hasher rounds). Equal keys write equal
    /// words; the family bits keep an IPv4 address apart from the IPv6 one with the same
    /// value.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let fam = |a: &IpAddr| u64::from(a.is_ipv6());
        let head = u64::from(self.protocol)
            | u64::from(self.client.1) << 8
            | u64::from(self.vip.1) << 24
            | fam(&self.client.0) << 40
            | fam(&self.vip.0) << 41;
        state.write_u64(head);
        match (self.client.0, self.vip.0) {
            (IpAddr::V4(c), IpAddr::V4(v)) => {
                state.write_u64(u64::from(u32::from(c)) << 32 | u64::from(u32::from(v)))
            }
            (c, v) => {
                for a in [c, v] {
                    let x = match a {
                        IpAddr::V4(a) => u128::from(u32::from(a)),
                        IpAddr::V6(a) => u128::from(a),
                    };
                    state.write_u128(x);
                }
            }
        }
    }
}

/// What a validated output says about its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effect {
    /// The flow.
    pub flow: FlowKey,
    /// Its real server (address and port).
    pub dest: (IpAddr, u16),
    /// Whether the input's L4 checksum was already wrong (and the error was preserved).
    pub offload: bool,
}

/// The change a forwarding method makes besides TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// NAT inbound: destination (and for ICMP errors the quoted source) becomes the real
    /// server's address and port.
    NatIn(IpAddr, u16),
    /// NAT reply: source (and for ICMP errors the quoted destination) becomes the virtual
    /// address and port.
    NatOut(IpAddr, u16),
    /// NAT inbound to the real server at this address, on the port the output carries (it
    /// is then checked against the rules and the flow's other packets by the caller).
    NatInAnyPort(IpAddr),
    /// NAT reply, from the address and port the output carries (checked by the caller
    /// against the flow's books).
    NatOutAsWritten,
    /// DR, TUN (inner packet): nothing but TTL.
    None,
}

/// The one's-complement sum over an L4 segment and its pseudo-header (0xffff = verifies);
/// `None` where no checksum can be checked (fragments, IPv4 UDP without checksum, other
/// protocols).
pub fn l4_sum(ip: &[u8], c: &Classified) -> Option<u16> {
    if c.is_fragment || !c.l4_present {
        return None;
    }
    let seg = ip.get(c.l4_range())?;
    match (c.family, c.protocol) {
        (Family::V4, proto::UDP) if seg.get(6..8) == Some(&[0, 0]) => None,
        (_, proto::TCP | proto::UDP) | (Family::V6, proto::ICMPV6) => {
            Some(checksum::segment(&c.src, &c.dst, c.protocol, seg))
        }
        (Family::V4, proto::ICMP) => Some(checksum::data(seg)),
        _ => None,
    }
}

/// Offset of the L4 checksum field within the L4 header.
fn l4_checksum_at(protocol: u8) -> Option<usize> {
    match protocol {
        proto::TCP => Some(16),
        proto::UDP => Some(6),
        proto::ICMP | proto::ICMPV6 => Some(2),
        _ => None,
    }
}

fn l4_name(family: Family, protocol: u8) -> &'static str {
    match (family, protocol) {
        (_, proto::TCP) => "TCP",
        (_, proto::UDP) => "UDP",
        (Family::V4, proto::ICMP) => "ICMP",
        (Family::V6, proto::ICMPV6) => "ICMPv6",
        _ => "L4",
    }
}

/// Address fields of an IP header: (source, destination) ranges.
fn addr_ranges(family: Family) -> (Range<usize>, Range<usize>) {
    match family {
        Family::V4 => (12..16, 16..20),
        Family::V6 => (8..24, 24..40),
    }
}

fn ttl_at(family: Family) -> usize {
    match family {
        Family::V4 => 8,
        Family::V6 => 7,
    }
}

fn put_addr(b: &mut [u8], r: Range<usize>, a: IpAddr) {
    match a {
        IpAddr::V4(a) if r.len() == 4 => b[r].copy_from_slice(&a.octets()),
        IpAddr::V6(a) if r.len() == 16 => b[r].copy_from_slice(&a.octets()),
        _ => {}
    }
}

/// Names the field at byte `off` of the IP packet classified as `c`.
pub fn field_name(c: &Classified, off: usize) -> String {
    let l4 = c.l4_offset - c.l3_offset;
    let payload = c.payload_offset - c.l3_offset;
    let ip_name = match c.family {
        Family::V4 => match off {
            0 => "version/header length",
            1 => "TOS",
            2..=3 => "total length",
            4..=5 => "identification",
            6..=7 => "flags/fragment offset",
            8 => "TTL",
            9 => "protocol",
            10..=11 => "header checksum",
            12..=15 => "source address",
            16..=19 => "destination address",
            _ => "options",
        },
        Family::V6 => match off {
            0..=3 => "version/traffic class/flow label",
            4..=5 => "payload length",
            6 => "next header",
            7 => "hop limit",
            8..=23 => "source address",
            24..=39 => "destination address",
            _ => "extension headers",
        },
    };
    let fam = if c.family == Family::V4 {
        "IPv4"
    } else {
        "IPv6"
    };
    if off < l4 {
        return format!("{fam} {ip_name} (byte {off})");
    }
    let name = l4_name(c.family, c.protocol);
    if off >= payload {
        return format!("{name} payload byte {}", off - payload);
    }
    let o = off - l4;
    let f = match (c.protocol, o) {
        (proto::TCP | proto::UDP, 0..=1) => "source port",
        (proto::TCP | proto::UDP, 2..=3) => "destination port",
        (proto::TCP, 4..=7) => "sequence number",
        (proto::TCP, 8..=11) => "acknowledgment number",
        (proto::TCP, 12) => "data offset",
        (proto::TCP, 13) => "flags",
        (proto::TCP, 14..=15) => "window",
        (proto::TCP, 16..=17) => "checksum",
        (proto::TCP, 18..=19) => "urgent pointer",
        (proto::TCP, _) => "options",
        (proto::UDP, 4..=5) => "length",
        (proto::UDP, _) => "checksum",
        (_, 0) => "type",
        (_, 1) => "code",
        (_, 2..=3) => "checksum",
        _ => "header",
    };
    format!("{name} {f} (byte {off})")
}

/// The quoted packet of an ICMP error at `ip` (classified `c`): its start in `ip` and view.
fn quoted<'a>(ip: &'a [u8], c: &Classified) -> Option<(usize, QuotedPacket<&'a [u8]>)> {
    let at = c.l4_offset - c.l3_offset + 8;
    let q = QuotedPacket::new_checked(ip.get(at..c.total_len)?).ok()?;
    Some((at, q))
}

fn is_icmp(c: &Classified) -> bool {
    matches!(
        (c.family, c.protocol),
        (Family::V4, proto::ICMP) | (Family::V6, proto::ICMPV6)
    )
}

/// Validates packets; holds scratch space so the per-packet path does not allocate.
#[derive(Debug, Default)]
pub struct Validator {
    scratch: Vec<u8>,
}

impl Validator {
    /// A validator.
    pub fn new() -> Self {
        Validator::default()
    }

    /// Validates `out` (an IP packet: the NAT result, or the DR / TUN inner packet) against
    /// `input` (classified as `ic`). `next_hop` is the verdict's (the real server for DR/TUN).
    pub fn check_rewrite(
        &mut self,
        input: &[u8],
        ic: &Classified,
        out: &[u8],
        change: Change,
        next_hop: IpAddr,
    ) -> Result<Effect, Failure> {
        let oc = check_parse(out)?;
        if oc.family != ic.family {
            return Err(Failure::new(FailReason::Rewrite, "address family changed"));
        }
        if oc.total_len != ic.total_len {
            return Err(Failure::new(
                FailReason::Changed,
                format!("IP length {} became {}", ic.total_len, oc.total_len),
            ));
        }
        if u16::from(oc.ttl) + 1 != u16::from(ic.ttl) {
            return Err(Failure::new(
                FailReason::Ttl,
                format!(
                    "TTL {} became {}, expected {}",
                    ic.ttl,
                    oc.ttl,
                    ic.ttl.wrapping_sub(1)
                ),
            ));
        }
        let offload = check_l4_sum(input, ic, out, &oc)?;
        let qport = |src: bool| -> u16 {
            quoted(&out[oc.ip_range()], &oc).map_or(0, |(_, q)| {
                if src {
                    q.src_port()
                } else {
                    q.dst_port()
                }
            })
        };
        let change = match change {
            Change::NatInAnyPort(a) if oc.icmp_error => Change::NatIn(a, qport(true)),
            Change::NatInAnyPort(a) => Change::NatIn(a, oc.dst_port),
            Change::NatOutAsWritten if oc.icmp_error => Change::NatOut(oc.src, qport(false)),
            Change::NatOutAsWritten => Change::NatOut(oc.src, oc.src_port),
            c => c,
        };
        let inp = &input[ic.ip_range()];
        let out = &out[oc.ip_range()];
        let icmp = is_icmp(ic) && ic.icmp_error;
        // The scratch copy with allowed changes put back.
        self.scratch.clear();
        self.scratch.extend_from_slice(out);
        let s = &mut self.scratch;
        let fam = ic.family;
        let (src_r, dst_r) = addr_ranges(fam);
        s[ttl_at(fam)] = ic.ttl;
        let l4 = ic.l4_offset - ic.l3_offset;
        let mut ignore = Ranges::default();
        if fam == Family::V4 {
            ignore.push(10..12);
        }
        if let Some(at) = l4_checksum_at(ic.protocol) {
            ignore.push(l4 + at..l4 + at + 2);
        }
        let effect;
        if icmp {
            let (Some((qa, qi)), Some((_, qo))) = (quoted(inp, ic), quoted(out, &oc)) else {
                return Err(Failure::new(
                    FailReason::Unparseable,
                    "ICMP error without a quoted header",
                ));
            };
            let qfam = if qi.is_ipv6() { Family::V6 } else { Family::V4 };
            let (qsrc, qdst) = addr_ranges(qfam);
            let ql4 = qa + qi.l4_offset();
            if qfam == Family::V4 {
                ignore.push(qa + 10..qa + 12);
            }
            let key_in = (
                qi.protocol(),
                (qi.src_addr(), qi.src_port()),
                (qi.dst_addr(), qi.dst_port()),
            );
            match change {
                Change::NatIn(addr, port) => {
                    // Quoted: VIP:vport -> client, becomes RIP:rport -> client.
                    if oc.dst != addr || qo.src_addr() != addr || qo.src_port() != port {
                        return Err(Failure::new(
                            FailReason::Rewrite,
                            format!(
                                "ICMP error to {} quoting {}:{}, expected both {addr}:{port}",
                                oc.dst,
                                qo.src_addr(),
                                qo.src_port()
                            ),
                        ));
                    }
                    put_addr(s, dst_r.clone(), ic.dst);
                    put_addr(s, qa + qsrc.start..qa + qsrc.end, qi.src_addr());
                    s[ql4..ql4 + 2].copy_from_slice(&qi.src_port().to_be_bytes());
                    effect = (
                        FlowKey {
                            protocol: key_in.0,
                            client: key_in.2,
                            vip: key_in.1,
                        },
                        (addr, port),
                    );
                }
                Change::NatOut(addr, port) => {
                    // Quoted: client -> RIP:rport, becomes client -> VIP:vport.
                    if oc.src != addr || qo.dst_addr() != addr || qo.dst_port() != port {
                        return Err(Failure::new(
                            FailReason::Rewrite,
                            format!(
                                "ICMP error from {} quoting {}:{}, expected both {addr}:{port}",
                                oc.src,
                                qo.dst_addr(),
                                qo.dst_port()
                            ),
                        ));
                    }
                    put_addr(s, src_r.clone(), ic.src);
                    put_addr(s, qa + qdst.start..qa + qdst.end, qi.dst_addr());
                    s[ql4 + 2..ql4 + 4].copy_from_slice(&qi.dst_port().to_be_bytes());
                    effect = (
                        FlowKey {
                            protocol: key_in.0,
                            client: key_in.1,
                            vip: (addr, port),
                        },
                        key_in.2,
                    );
                }
                Change::None | Change::NatInAnyPort(_) | Change::NatOutAsWritten => {
                    effect = (
                        FlowKey {
                            protocol: key_in.0,
                            client: key_in.2,
                            vip: key_in.1,
                        },
                        (next_hop, key_in.1 .1),
                    );
                }
            }
        } else {
            match change {
                Change::NatIn(addr, port) => {
                    if oc.dst != addr || oc.dst_port != port {
                        return Err(Failure::new(
                            FailReason::Rewrite,
                            format!("sent to {}:{}, expected {addr}:{port}", oc.dst, oc.dst_port),
                        ));
                    }
                    put_addr(s, dst_r.clone(), ic.dst);
                    s[l4 + 2..l4 + 4].copy_from_slice(&ic.dst_port.to_be_bytes());
                    effect = (
                        FlowKey {
                            protocol: ic.protocol,
                            client: (ic.src, ic.src_port),
                            vip: (ic.dst, ic.dst_port),
                        },
                        (addr, port),
                    );
                }
                Change::NatOut(addr, port) => {
                    if oc.src != addr || oc.src_port != port {
                        return Err(Failure::new(
                            FailReason::Rewrite,
                            format!(
                                "sent from {}:{}, expected {addr}:{port}",
                                oc.src, oc.src_port
                            ),
                        ));
                    }
                    put_addr(s, src_r.clone(), ic.src);
                    s[l4..l4 + 2].copy_from_slice(&ic.src_port.to_be_bytes());
                    effect = (
                        FlowKey {
                            protocol: ic.protocol,
                            client: (ic.dst, ic.dst_port),
                            vip: (addr, port),
                        },
                        (ic.src, ic.src_port),
                    );
                }
                Change::None | Change::NatInAnyPort(_) | Change::NatOutAsWritten => {
                    effect = (
                        FlowKey {
                            protocol: ic.protocol,
                            client: (ic.src, ic.src_port),
                            vip: (ic.dst, ic.dst_port),
                        },
                        (next_hop, ic.dst_port),
                    );
                }
            }
        }
        // The ignored fields (checksums, verified on their own) take the input's bytes, so one
        // slice comparison decides; only a difference is located and named.
        for r in ignore.as_slice() {
            if let (Some(d), Some(src)) = (self.scratch.get_mut(r.clone()), inp.get(r.clone())) {
                d.copy_from_slice(src);
            }
        }
        if inp != &self.scratch[..] {
            if let Some(off) = first_difference(inp, &self.scratch, ignore.as_slice()) {
                return Err(Failure::new(
                    FailReason::Changed,
                    format!(
                        "{} changed: {:#04x} became {:#04x}",
                        field_name(ic, off),
                        inp[off],
                        out.get(off).copied().unwrap_or(0)
                    ),
                ));
            }
        }
        Ok(Effect {
            flow: effect.0,
            dest: effect.1,
            offload,
        })
    }

    /// Validates the outer headers of a tunnel packet `out` sent to `rip` with one of
    /// `configs` (the real server's tunnel settings) from `local` (the director's address of
    /// the outer family, if known); returns the inner packet's range in `out`.
    pub fn check_tunnel(
        &self,
        out: &[u8],
        rip: IpAddr,
        configs: &[TunnelConfig],
        local: Option<IpAddr>,
    ) -> Result<Range<usize>, Failure> {
        let mut last = None;
        for cfg in configs {
            let d = match decapsulate(out, cfg.port) {
                Ok(d) => d,
                Err(e) => {
                    last = Some(Failure::new(
                        FailReason::Tunnel,
                        format!("does not decapsulate: {e}"),
                    ));
                    continue;
                }
            };
            if d.kind != cfg.kind {
                last = Some(Failure::new(
                    FailReason::Tunnel,
                    format!(
                        "{:?} tunnel, the real server expects {:?}",
                        d.kind, cfg.kind
                    ),
                ));
                continue;
            }
            if cfg.kind == TunnelType::Gue && gue_csum_missing(out, cfg) {
                return Err(Failure::new(
                    FailReason::Tunnel,
                    "GUE UDP checksum missing (--tun-csum)",
                ));
            }
            if d.outer_dst != rip {
                return Err(Failure::new(
                    FailReason::Tunnel,
                    format!(
                        "outer destination {}, expected the real server {rip}",
                        d.outer_dst
                    ),
                ));
            }
            match local {
                Some(l) if d.outer_src != l => {
                    return Err(Failure::new(
                        FailReason::Tunnel,
                        format!("outer source {}, expected the director's {l}", d.outer_src),
                    ))
                }
                None if d.outer_src.is_unspecified() => {
                    return Err(Failure::new(
                        FailReason::Tunnel,
                        format!(
                            "outer source {} (give the director's address with --local)",
                            d.outer_src
                        ),
                    ))
                }
                _ => {}
            }
            let outer_ttl = out.get(ttl_at(if rip.is_ipv4() {
                Family::V4
            } else {
                Family::V6
            }));
            let inner_ttl = out.get(
                d.inner.start
                    + if out.get(d.inner.start).map(|b| b >> 4) == Some(6) {
                        7
                    } else {
                        8
                    },
            );
            if outer_ttl != inner_ttl {
                return Err(Failure::new(
                    FailReason::Tunnel,
                    format!("outer TTL {outer_ttl:?} differs from the inner {inner_ttl:?}"),
                ));
            }
            return Ok(d.inner);
        }
        Err(last.unwrap_or_else(|| {
            Failure::new(FailReason::Tunnel, "the real server has no tunnel settings")
        }))
    }

    /// Validates an ICMP error the director built (`out`) for `input` (dropped for `reason`);
    /// `local` is the director's address of the family, if known (the source of errors about
    /// forwarded replies; errors about packets sent to the director come from their
    /// destination).
    pub fn check_generated(
        &self,
        input: &[u8],
        ic: &Classified,
        out: &[u8],
        reason: xmit::DropReason,
        local: Option<IpAddr>,
    ) -> Result<(), Failure> {
        let oc = check_parse(out)?;
        if !is_icmp(&oc) || !oc.icmp_error {
            return Err(Failure::new(FailReason::IcmpGenerated, "not an ICMP error"));
        }
        if let Some(s) = l4_sum(out, &oc) {
            if s != 0xffff {
                return Err(Failure::new(
                    FailReason::L4Checksum,
                    format!(
                        "{} checksum does not verify",
                        l4_name(oc.family, oc.protocol)
                    ),
                ));
            }
        }
        use xmit::DropReason as D;
        if reason == D::TunnelError {
            return check_tunnel_error(input, ic, out, &oc);
        }
        let want = match (oc.family, reason) {
            (Family::V4, D::TtlExpired) => (11, 0),
            (Family::V4, D::TooBig) => (3, 4),
            (Family::V4, D::NoDestination) => (3, 3),
            (Family::V6, D::TtlExpired) => (3, 0),
            (Family::V6, D::TooBig) => (2, 0),
            (Family::V6, D::NoDestination) => (1, 4),
            _ => (oc.icmp_type, oc.icmp_code),
        };
        if (oc.icmp_type, oc.icmp_code) != want {
            return Err(Failure::new(
                FailReason::IcmpGenerated,
                format!(
                    "type {} code {} for {}, expected type {} code {}",
                    oc.icmp_type,
                    oc.icmp_code,
                    reason.name(),
                    want.0,
                    want.1
                ),
            ));
        }
        if oc.dst != ic.src {
            return Err(Failure::new(
                FailReason::IcmpGenerated,
                format!("sent to {}, not to the packet's source {}", oc.dst, ic.src),
            ));
        }
        // About a packet addressed to the director (client → virtual address) the error
        // comes from that address, as the kernel's `icmp_send` answers from a local
        // destination; about a forwarded reply, from the director's own address.
        match local {
            _ if oc.src == ic.dst => {}
            Some(l) if oc.src != l => {
                return Err(Failure::new(
                    FailReason::IcmpGenerated,
                    format!(
                        "sent from {}, neither the packet's destination {} nor the director's {l}",
                        oc.src, ic.dst
                    ),
                ))
            }
            None if oc.src.is_unspecified() => {
                return Err(Failure::new(
                    FailReason::IcmpGenerated,
                    format!(
                        "sent from {} (give the director's address with --local)",
                        oc.src
                    ),
                ))
            }
            _ => {}
        }
        let q = &out[oc.l4_offset + 8..oc.total_len];
        let inp = &input[ic.ip_range()];
        if q.is_empty() || q.len() > inp.len() {
            return Err(Failure::new(
                FailReason::IcmpGenerated,
                format!("quotes {} bytes of a {}-byte packet", q.len(), inp.len()),
            ));
        }
        // The quote is the packet's beginning; the TTL may already be decremented (the kernel
        // quotes what it was about to send), so TTL and the header checksum are not compared.
        let mut ignore = Ranges::default();
        ignore.push(ttl_at(ic.family)..ttl_at(ic.family) + 1);
        if ic.family == Family::V4 {
            ignore.push(10..12);
        }
        if let Some(off) = first_difference(&inp[..q.len()], q, ignore.as_slice()) {
            return Err(Failure::new(
                FailReason::IcmpGenerated,
                format!("quoted packet differs at {}", field_name(ic, off)),
            ));
        }
        Ok(())
    }
}

/// Spec 3.7 tunnel special case: the error the director sends the client about an error it
/// received for one of its own tunnel packets. Same type and code as the input; it quotes the
/// client's packet as the input quoted it inside the tunnel packet, and goes from that
/// packet's destination (the virtual address) to its source (the client).
fn check_tunnel_error(
    input: &[u8],
    ic: &Classified,
    out: &[u8],
    oc: &Classified,
) -> Result<(), Failure> {
    let fail = |m: String| Err(Failure::new(FailReason::IcmpGenerated, m));
    if oc.family != Family::V4 || ic.family != Family::V4 {
        return fail("a tunnel error relay that is not IPv4".into());
    }
    if (oc.icmp_type, oc.icmp_code) != (ic.icmp_type, ic.icmp_code) {
        return fail(format!(
            "type {} code {} relayed as type {} code {}",
            ic.icmp_type, ic.icmp_code, oc.icmp_type, oc.icmp_code
        ));
    }
    let q = &out[(oc.l4_offset + 8).min(oc.total_len)..oc.total_len];
    if q.len() < 28 {
        return fail(format!(
            "quotes {} bytes, not an IPv4 header and ports",
            q.len()
        ));
    }
    let inp = &input[ic.ip_range()];
    if !inp.windows(q.len()).any(|w| w == q) {
        return fail("the quoted client packet is not the one the received error quoted".into());
    }
    let (qs, qd) = (
        IpAddr::from([q[12], q[13], q[14], q[15]]),
        IpAddr::from([q[16], q[17], q[18], q[19]]),
    );
    if (oc.src, oc.dst) != (qd, qs) {
        return fail(format!(
            "sent {} -> {}, expected {qd} -> {qs} (the quoted packet reversed)",
            oc.src, oc.dst
        ));
    }
    Ok(())
}

/// Up to four byte ranges, without allocating.
#[derive(Clone, Debug, Default)]
struct Ranges {
    r: [Range<usize>; 4],
    n: usize,
}

impl Ranges {
    fn push(&mut self, r: Range<usize>) {
        if let Some(slot) = self.r.get_mut(self.n) {
            *slot = r;
            self.n += 1;
        }
    }

    fn as_slice(&self) -> &[Range<usize>] {
        &self.r[..self.n]
    }
}

/// Whether a GUE packet configured with a checksum carries none.
fn gue_csum_missing(out: &[u8], cfg: &TunnelConfig) -> bool {
    use lvs_core::rules::TunnelCsum;
    if cfg.csum == TunnelCsum::NoCsum {
        return false;
    }
    let at = match out.first().map(|b| b >> 4) {
        Some(6) => 40,
        _ => usize::from(out.first().map_or(0, |b| b & 0x0f)) * 4,
    };
    out.get(at + 6..at + 8) == Some(&[0, 0])
}

/// Parses an output IP packet, naming a bad IPv4 header checksum precisely.
fn check_parse(out: &[u8]) -> Result<Classified, Failure> {
    // `classify` verifies the IPv4 header checksum itself, so a packet it accepts passes
    // both checks below; only a packet it refuses is examined again to name the failure.
    if let Ok(c) = classify(out) {
        return Ok(c);
    }
    if out.first().map(|b| b >> 4) == Some(4) {
        if let Ok(p) = Ipv4Packet::new_checked(out) {
            if !p.verify_checksum() {
                return Err(Failure::new(
                    FailReason::Ipv4Checksum,
                    "IPv4 header checksum does not verify",
                ));
            }
        }
    }
    classify(out).map_err(|e| Failure::new(FailReason::Unparseable, format!("does not parse: {e}")))
}

/// The L4 checksum rule; returns whether the input's was already wrong (offload).
fn check_l4_sum(
    input: &[u8],
    ic: &Classified,
    out: &[u8],
    oc: &Classified,
) -> Result<bool, Failure> {
    let Some(so) = l4_sum(out, oc) else {
        return Ok(false);
    };
    if so == 0xffff {
        // An incremental update preserves the sum, so a verifying output came from a
        // verifying input (or from a full recomputation, which owes the input nothing).
        return Ok(false);
    }
    match l4_sum(input, ic) {
        Some(si) if si == so => Ok(true),
        _ => Err(Failure::new(
            FailReason::L4Checksum,
            format!(
                "{} checksum does not verify",
                l4_name(oc.family, oc.protocol)
            ),
        )),
    }
}

/// The first offset where `a` and `b` differ outside `ignore` (a length difference counts at
/// the shorter length).
pub fn first_difference(a: &[u8], b: &[u8], ignore: &[Range<usize>]) -> Option<usize> {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i < n {
        // Fast path: equal 8-byte chunks.
        if i + 8 <= n && a[i..i + 8] == b[i..i + 8] {
            i += 8;
            continue;
        }
        if a[i] != b[i] && !ignore.iter().any(|r| r.contains(&i)) {
            return Some(i);
        }
        i += 1;
    }
    (a.len() != b.len()).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(src: [u8; 4], dst: [u8; 4], ttl: u8, payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ipv4(src, dst, ttl)
            .tcp(40000, 80, 7, 1024)
            .ack(9);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn dr_rewrite_passes_and_payload_change_is_named() {
        let input = tcp([1, 1, 1, 1], [10, 0, 0, 1], 64, b"hello");
        let ic = classify(&input).unwrap();
        let mut out = tcp([1, 1, 1, 1], [10, 0, 0, 1], 63, b"hello");
        let rip: IpAddr = "10.1.0.1".parse().unwrap();
        let mut v = Validator::new();
        let e = v
            .check_rewrite(&input, &ic, &out, Change::None, rip)
            .unwrap();
        assert_eq!(e.dest, (rip, 80));
        assert!(!e.offload);
        // A payload byte changed, checksum recomputed: named as payload.
        out[input.len() - 1] ^= 1;
        let oc = classify(&out).unwrap();
        let mut t = lvs_core::wire::TcpPacket::new_unchecked(&mut out[oc.l4_range()]);
        t.fill_checksum(&oc.src, &oc.dst);
        let f = v
            .check_rewrite(&input, &ic, &out, Change::None, rip)
            .unwrap_err();
        assert_eq!(f.reason, FailReason::Changed);
        assert!(f.detail.contains("TCP payload byte 4"), "{}", f.detail);
        // Without the checksum fix the checksum check fires first.
        out[input.len() - 1] ^= 1;
        let f = v
            .check_rewrite(&input, &ic, &out, Change::None, rip)
            .unwrap_err();
        assert_eq!(f.reason, FailReason::L4Checksum);
    }

    #[test]
    fn ttl_must_drop_by_one() {
        let input = tcp([1, 1, 1, 1], [10, 0, 0, 1], 64, b"x");
        let ic = classify(&input).unwrap();
        let mut v = Validator::new();
        let f = v
            .check_rewrite(
                &input,
                &ic,
                &input,
                Change::None,
                "10.1.0.1".parse().unwrap(),
            )
            .unwrap_err();
        assert_eq!(f.reason, FailReason::Ttl);
    }

    #[test]
    fn offload_error_must_be_preserved() {
        let mut input = tcp([1, 1, 1, 1], [10, 0, 0, 1], 64, b"abc");
        let ic = classify(&input).unwrap();
        // A partial checksum as offload leaves it.
        input[ic.l4_offset + 16] ^= 0x55;
        let mut out = tcp([1, 1, 1, 1], [10, 0, 0, 1], 63, b"abc");
        out[ic.l4_offset + 16] ^= 0x55;
        let mut v = Validator::new();
        let e = v
            .check_rewrite(&input, &ic, &out, Change::None, "10.1.0.1".parse().unwrap())
            .unwrap();
        assert!(e.offload);
        out[ic.l4_offset + 17] ^= 1;
        assert_eq!(
            v.check_rewrite(&input, &ic, &out, Change::None, "10.1.0.1".parse().unwrap())
                .unwrap_err()
                .reason,
            FailReason::L4Checksum
        );
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn first_difference_skips_ignored() {
        assert_eq!(first_difference(b"abcdefghij", b"abcdefghij", &[]), None);
        assert_eq!(first_difference(b"abcdefghij", b"abcdefghiX", &[]), Some(9));
        assert_eq!(
            first_difference(b"abcdefghij", b"abcdefghiX", &[9..10]),
            None
        );
        assert_eq!(first_difference(b"abc", b"abcd", &[]), Some(3));
    }
}
