//! Typed zero-copy views over packet bytes, and checksums.
//!
//! # Views
//! Every protocol has a `Packet<T>` (Ethernet: `Frame<T>`) wrapping a buffer `T: AsRef<[u8]>`
//! (read) or `T: AsRef<[u8]> + AsMut<[u8]>` (write), in the style of smoltcp's `wire`:
//!
//! - `new_checked(buffer)` validates once: the buffer is long enough for the fixed header, the
//!   header-length fields point inside the buffer, the version fields are right. On failure it
//!   returns an [`Error`] naming the layer, what was required, what was found and the byte offset
//!   (relative to the start of the view; [`Error::add_offset`] rebases it).
//! - `new_unchecked(buffer)` skips validation (for buffers the caller is filling in itself).
//! - Getters (`ttl()`, `src_port()`, ...) read fixed offsets; `set_*` setters write them.
//! - `verify_checksum` / `fill_checksum` where the protocol has one.
//! - Field offsets live in one private `field` module per protocol.
//!
//! # Panic contract
//! After `new_checked` succeeded no method panics, whatever the bytes are and whatever values
//! the setters write afterwards: variable-length areas (options, payload) are computed from the
//! header fields and clamped to the buffer. `new_unchecked` views panic on a buffer shorter than
//! the fixed header (a programmer error; the constructors say so).
//!
//! # Which view for which bytes
//! - [`EthernetFrame`]: an Ethernet II frame, optionally with one 802.1Q tag.
//! - [`Ipv4Packet`] / [`Ipv6Packet`]: an IP packet from its first byte;
//!   [`Ipv6Packet::transport`] walks the IPv6 extension headers (bounded) to the transport
//!   header and reports a Fragment header.
//! - [`TcpPacket`], [`UdpPacket`], [`Icmpv4Packet`], [`Icmpv6Packet`]: the L4 segment, which must
//!   be exactly the IP payload (the IP length fields decide where it ends; TCP has no length of
//!   its own, and checksums cover the whole segment).
//! - Tunnels ([`gre`], [`gue`], [`ipip`]): [`GrePacket`] is the GRE header plus the inner
//!   packet (IP payload of protocol 47); [`GuePacket`] is the GUE header plus the inner packet
//!   (UDP payload); IPIP has no header of its own (IP protocol 4 or 41), see [`ipip`].
//! - [`QuotedPacket`]: the *lax* view of the packet quoted inside an ICMP error. Only the IP
//!   header and the first 8 bytes of the L4 header are guaranteed there, and the quoted length
//!   fields describe the original packet, not what was quoted.
//!
//! # Classification
//! [`classify`] (and [`classify_ethernet`]) is the per-packet entry point of the director: one
//! pass over an IP packet that returns a small `Copy` [`Classified`] summary (addresses, ports,
//! offsets, fragment and ICMP-error information) or an [`Error`] whose [`Error::reason`] is a
//! `Copy` [`Reason`] usable as a counter index.
//!
//! # Checksums
//! [`checksum`] holds the one's-complement arithmetic as small composable functions (sum over
//! data, combine, fold, the IPv4/IPv6 pseudo-headers) and the RFC 1624 incremental update for
//! 16-, 32- and 128-bit field changes that the NAT rewrite uses.
//!
//! ```
//! use lvs_core::wire::{classify, Ipv4Packet, TcpPacket};
//! # let bytes = {
//! #     let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [192, 0, 2, 1], 64)
//! #         .tcp(40000, 80, 1, 1024).syn();
//! #     let mut v = Vec::new();
//! #     b.write(&mut v, &[]).unwrap();
//! #     v
//! # };
//! let c = classify(&bytes).unwrap();
//! assert_eq!((c.src_port, c.dst_port), (40000, 80));
//! let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
//! assert!(ip.verify_checksum());
//! let tcp = TcpPacket::new_checked(&bytes[c.l4_range()]).unwrap();
//! assert!(tcp.verify_checksum(&c.src, &c.dst));
//! assert!(tcp.syn());
//! ```

//!
//! # Recipes for the rewrite layer (`xmit`)
//! - **Slicing**: [`Classified::ip_range`] is the IP packet, [`Classified::l4_range`] the L4
//!   segment the L4 views want (their checksums cover exactly that range). After a successful
//!   `classify`, `new_unchecked` over those ranges cannot panic (classify made the same checks
//!   as `new_checked`), except for UDP in a fragment (its length field overshoots).
//! - **NAT** (spec 3.2): change addresses and ports with the setters and patch checksums with
//!   [`checksum::update_u32`] (IPv4 address), [`checksum::update_u128`] (IPv6 address) and
//!   [`checksum::update_u16`] (port). An address feeds both the IPv4 header checksum and the
//!   L4 pseudo-header; IPv6 has no header checksum. UDP: a checksum of 0 (IPv4 only) means
//!   none, so compute it in full with [`UdpPacket::fill_checksum`]; otherwise update it and
//!   pass the result through [`checksum::udp_nonzero`]. TCP results are used as they are.
//! - **TTL** (spec 3.1): TTL shares a 16-bit word with the protocol:
//!   `update_u16(check, u16::from_be_bytes([ttl, proto]), u16::from_be_bytes([ttl - 1, proto]))`.
//!   [`Classified::ttl`] has the value to test (`<= 1`: Time Exceeded instead of forwarding).
//! - **ICMP errors** (spec 3.7): [`Icmpv4Packet::quoted_mut`] / [`Icmpv6Packet::quoted_mut`]
//!   give the quoted packet; set its ports with [`QuotedPacket::set_src_port`] /
//!   [`set_dst_port`](QuotedPacket::set_dst_port), its addresses through
//!   [`QuotedPacket::ipv4_mut`] / [`ipv6_mut`](QuotedPacket::ipv6_mut) (then the quoted IPv4
//!   header's `fill_checksum`), and finish with the ICMP message's `fill_checksum` (IPVS
//!   recomputes it in full and leaves the quoted L4 checksum alone).
//! - **Encapsulation** (spec 3.4): write an outer header with `Ipv4Packet::new_unchecked` /
//!   `Ipv6Packet::new_unchecked` and the setters (then `fill_checksum` for IPv4); the protocol is
//!   [`ipip::protocol_for`] for IPIP, [`proto::UDP`] for GUE ([`GuePacket::init`] after an
//!   8-byte UDP header) and [`proto::GRE`] for GRE ([`GrePacket::init`], then
//!   [`GrePacket::fill_checksum`] once the inner packet is in place).
//! - **Errors and counters**: [`Error::reason`] maps any parse error to a [`Reason`] counter.
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use lvs_core::wire::{checksum, classify, Ipv4Packet, TcpPacket};
//! # let mut pkt = {
//! #     let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 7], [10, 0, 0, 80], 64)
//! #         .tcp(40000, 80, 1, 1024).syn();
//! #     let mut v = Vec::new();
//! #     b.write(&mut v, b"hello").unwrap();
//! #     v
//! # };
//! // DNAT VIP:80 -> RIP:8080 with incremental checksums and the TTL decrement.
//! let c = classify(&pkt).unwrap();
//! let rip = Ipv4Addr::new(10, 1, 1, 1);
//! let mut ip = Ipv4Packet::new_unchecked(&mut pkt[c.ip_range()]);
//! let vip = ip.dst_addr();
//! let (ttl, proto) = (ip.ttl(), ip.protocol());
//! ip.set_dst_addr(rip);
//! ip.set_ttl(ttl - 1);
//! let check = checksum::update_u32(ip.checksum(), vip.into(), rip.into());
//! let check = checksum::update_u16(
//!     check,
//!     u16::from_be_bytes([ttl, proto]),
//!     u16::from_be_bytes([ttl - 1, proto]),
//! );
//! ip.set_checksum(check);
//! assert!(ip.verify_checksum());
//!
//! let mut tcp = TcpPacket::new_unchecked(&mut pkt[c.l4_range()]);
//! let check = checksum::update_u32(tcp.checksum(), vip.into(), rip.into());
//! tcp.set_checksum(checksum::update_u16(check, tcp.dst_port(), 8080));
//! tcp.set_dst_port(8080);
//! assert!(tcp.verify_checksum(&c.src, &IpAddr::V4(rip)));
//! ```

/// The header accessors ICMPv4 and ICMPv6 share: both have the same 8-byte header layout
/// (type, code, checksum, 4 more bytes), so one definition serves both views. Expands inside
/// `impl<T: AsRef<[u8]>> Packet<T>` of a module with a `field` module and `need` in scope.
macro_rules! icmp_header_accessors {
    ($layer:expr) => {
        /// Wraps a buffer without checking it.
        ///
        /// # Panics
        /// Getters panic if the buffer is shorter than 8 bytes.
        pub const fn new_unchecked(buffer: T) -> Packet<T> {
            Packet { buffer }
        }

        /// Wraps a buffer after checking that the 8-byte header is present.
        pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
            need(
                $layer,
                field::HEADER_LEN,
                buffer.as_ref().len(),
                LenSource::Slice,
            )?;
            Ok(Packet { buffer })
        }

        /// Returns the underlying buffer.
        pub fn into_inner(self) -> T {
            self.buffer
        }

        /// Message type.
        #[inline]
        pub fn msg_type(&self) -> u8 {
            self.buffer.as_ref()[field::TYPE]
        }

        /// Message code.
        #[inline]
        pub fn code(&self) -> u8 {
            self.buffer.as_ref()[field::CODE]
        }

        /// Checksum field.
        #[inline]
        pub fn checksum(&self) -> u16 {
            get_u16(self.buffer.as_ref(), field::CHECKSUM)
        }

        /// The 4 bytes after the checksum, as one big-endian word.
        #[inline]
        pub fn rest_of_header(&self) -> u32 {
            get_u32(self.buffer.as_ref(), field::REST)
        }

        /// Echo identifier (echo request / reply).
        #[inline]
        pub fn echo_ident(&self) -> u16 {
            get_u16(self.buffer.as_ref(), field::IDENT)
        }

        /// Echo sequence number (echo request / reply).
        #[inline]
        pub fn echo_seq(&self) -> u16 {
            get_u16(self.buffer.as_ref(), field::SEQ)
        }
    };
}

pub mod checksum;
mod classify;
mod error;
pub mod ethernet;
pub mod gre;
pub mod gue;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipip;
pub mod ipv4;
pub mod ipv6;
pub mod quote;
pub mod tcp;
pub mod udp;

pub use classify::{classify, classify_ethernet, Classified, Family};
pub use error::{Error, Field, Layer, LenSource, Reason};
pub use ethernet::Frame as EthernetFrame;
pub use gre::Packet as GrePacket;
pub use gue::Packet as GuePacket;
pub use icmpv4::Packet as Icmpv4Packet;
pub use icmpv6::Packet as Icmpv6Packet;
pub use ipv4::Packet as Ipv4Packet;
pub use ipv6::Packet as Ipv6Packet;
pub use quote::Packet as QuotedPacket;
pub use tcp::Packet as TcpPacket;
pub use udp::Packet as UdpPacket;

/// IP protocol numbers used by the views (`IPPROTO_*`).
pub mod proto {
    /// IPv6 Hop-by-Hop Options (0).
    pub const HOPOPT: u8 = 0;
    /// ICMP for IPv4 (1).
    pub const ICMP: u8 = 1;
    /// IPv4 in IP (IPIP, 4).
    pub const IPIP: u8 = 4;
    /// TCP (6).
    pub const TCP: u8 = 6;
    /// UDP (17).
    pub const UDP: u8 = 17;
    /// IPv6 in IP (41).
    pub const IPV6: u8 = 41;
    /// IPv6 Routing header (43).
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 Fragment header (44).
    pub const IPV6_FRAG: u8 = 44;
    /// GRE (47).
    pub const GRE: u8 = 47;
    /// Encapsulating Security Payload (50): opaque, ends the extension-header walk.
    pub const ESP: u8 = 50;
    /// Authentication Header (51).
    pub const AH: u8 = 51;
    /// ICMPv6 (58).
    pub const ICMPV6: u8 = 58;
    /// IPv6 No Next Header (59).
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 Destination Options (60).
    pub const IPV6_OPTS: u8 = 60;
    /// SCTP (132).
    pub const SCTP: u8 = 132;
}

/// Ethernet types (`ETH_P_*`) used by the views.
pub mod ethertype {
    /// IPv4 (0x0800).
    pub const IPV4: u16 = 0x0800;
    /// ARP (0x0806).
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag (0x8100).
    pub const VLAN: u16 = 0x8100;
    /// IPv6 (0x86DD).
    pub const IPV6: u16 = 0x86DD;
}

/// Reads a big-endian `u16` at `off`; the caller has checked the length.
#[inline(always)]
fn get_u16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// Reads a big-endian `u32` at `off`; the caller has checked the length.
#[inline(always)]
fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Writes a big-endian `u16` at `off`; the caller has checked the length.
#[inline(always)]
fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian `u32` at `off`; the caller has checked the length.
#[inline(always)]
fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// `buf[start..end]` with both ends clamped to the buffer, so header fields changed by setters
/// can never make an accessor panic.
#[inline(always)]
fn clamped(buf: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(buf.len());
    &buf[start.min(end)..end]
}

/// Mutable [`clamped`].
#[inline(always)]
fn clamped_mut(buf: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(buf.len());
    &mut buf[start.min(end)..end]
}

/// Returns `Err(Truncated)` unless `buf_len >= required`.
#[inline(always)]
fn need(layer: Layer, required: usize, found: usize, len_source: LenSource) -> Result<(), Error> {
    if found < required {
        Err(Error::Truncated {
            layer,
            offset: 0,
            required,
            found,
            len_source,
        })
    } else {
        Ok(())
    }
}
