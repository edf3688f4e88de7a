//! Parse errors of the packet views, and the `Copy` reason enum used as a counter index.

use core::fmt;

/// The protocol layer an [`Error`] was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Ethernet II header.
    Ethernet,
    /// 802.1Q VLAN tag.
    Vlan,
    /// An IP packet before its version is known (empty buffer, unknown version).
    Ip,
    /// IPv4 header (including options).
    Ipv4,
    /// IPv6 fixed header.
    Ipv6,
    /// An IPv6 extension header.
    Ipv6Ext,
    /// TCP header.
    Tcp,
    /// UDP header.
    Udp,
    /// SCTP common header.
    Sctp,
    /// ICMP (v4) header.
    Icmpv4,
    /// ICMPv6 header.
    Icmpv6,
    /// GRE header.
    Gre,
    /// GUE header.
    Gue,
    /// The IP header quoted inside an ICMP error.
    QuotedIp,
    /// The first 8 bytes of the L4 header quoted inside an ICMP error.
    QuotedL4,
}

impl Layer {
    /// A short human-readable name.
    pub const fn name(self) -> &'static str {
        match self {
            Layer::Ethernet => "Ethernet",
            Layer::Vlan => "802.1Q tag",
            Layer::Ip => "IP",
            Layer::Ipv4 => "IPv4",
            Layer::Ipv6 => "IPv6",
            Layer::Ipv6Ext => "IPv6 extension header",
            Layer::Tcp => "TCP",
            Layer::Udp => "UDP",
            Layer::Sctp => "SCTP",
            Layer::Icmpv4 => "ICMP",
            Layer::Icmpv6 => "ICMPv6",
            Layer::Gre => "GRE",
            Layer::Gue => "GUE",
            Layer::QuotedIp => "quoted IP header",
            Layer::QuotedL4 => "quoted L4 header",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the length that turned out too short came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LenSource {
    /// The length of the buffer itself.
    Slice,
    /// The IPv4 header's IHL field (header length in 32-bit words).
    Ipv4HeaderLen,
    /// The IPv4 header's total length field.
    Ipv4TotalLen,
    /// The IPv6 header's payload length field.
    Ipv6PayloadLen,
    /// The length field of an IPv6 extension header.
    Ipv6ExtLen,
    /// The TCP data offset field.
    TcpDataOffset,
    /// The UDP length field.
    UdpLength,
    /// The GRE flags (checksum, key and sequence bits add optional fields).
    GreFlags,
    /// The GUE Hlen field.
    GueHlen,
}

impl LenSource {
    /// A short human-readable name.
    pub const fn name(self) -> &'static str {
        match self {
            LenSource::Slice => "buffer length",
            LenSource::Ipv4HeaderLen => "IPv4 header length field",
            LenSource::Ipv4TotalLen => "IPv4 total length field",
            LenSource::Ipv6PayloadLen => "IPv6 payload length field",
            LenSource::Ipv6ExtLen => "IPv6 extension header length field",
            LenSource::TcpDataOffset => "TCP data offset field",
            LenSource::UdpLength => "UDP length field",
            LenSource::GreFlags => "GRE flags",
            LenSource::GueHlen => "GUE Hlen field",
        }
    }
}

impl fmt::Display for LenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The header field an [`Error::Invalid`] refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// The IP (or GRE / GUE) version.
    Version,
    /// A header-length field (IPv4 IHL, TCP data offset) below its minimum.
    HeaderLen,
    /// The IPv4 total length (smaller than the header).
    TotalLen,
    /// The UDP length (smaller than the UDP header).
    UdpLength,
    /// The Ethernet type: not IPv4 or IPv6.
    EtherType,
    /// GRE flags that are not supported (the routing bit, as Linux `gre_parse_header`).
    GreFlags,
}

impl Field {
    /// A short human-readable name.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Version => "version",
            Field::HeaderLen => "header length",
            Field::TotalLen => "total length",
            Field::UdpLength => "UDP length",
            Field::EtherType => "Ethernet type",
            Field::GreFlags => "GRE flags",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes could not be parsed: precise (layer, byte offset, what was required and found).
///
/// Offsets are relative to the start of the view that reported the error; [`classify`] and
/// the other multi-layer parsers rebase them to the start of the buffer they were given.
///
/// ```
/// use lvs_core::wire::{Error, Ipv4Packet, Layer, LenSource, Reason};
/// let err = Ipv4Packet::new_checked(&[0x45u8; 12][..]).unwrap_err();
/// assert_eq!(
///     err,
///     Error::Truncated { layer: Layer::Ipv4, offset: 0, required: 20, found: 12, len_source: LenSource::Slice }
/// );
/// assert_eq!(err.reason(), Reason::Truncated);
/// assert_eq!(err.to_string(), "IPv4 at byte 0: 20 bytes required, 12 found (per the buffer length)");
/// ```
///
/// [`classify`]: super::classify
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// Fewer bytes are available than the layer requires.
    #[error(
        "{layer} at byte {offset}: {required} bytes required, {found} found (per the {len_source})"
    )]
    Truncated {
        /// The layer being parsed.
        layer: Layer,
        /// Byte offset of the start of that layer.
        offset: usize,
        /// Bytes the layer needs from its start.
        required: usize,
        /// Bytes available from its start.
        found: usize,
        /// What limited the available bytes.
        len_source: LenSource,
    },
    /// A header field holds a value the layer cannot accept.
    #[error("{layer} at byte {offset}: invalid {field} {found}")]
    Invalid {
        /// The layer being parsed.
        layer: Layer,
        /// Byte offset of the start of that layer.
        offset: usize,
        /// The offending field.
        field: Field,
        /// The value found in it.
        found: u32,
    },
    /// The IPv6 extension-header chain is longer than the walk's bound.
    #[error("IPv6 extension header at byte {offset}: more than {limit} extension headers (next header {next_header})")]
    TooManyExtensionHeaders {
        /// Byte offset of the header that would have exceeded the bound.
        offset: usize,
        /// The bound ([`ipv6::MAX_EXTENSION_HEADERS`](super::ipv6::MAX_EXTENSION_HEADERS)).
        limit: usize,
        /// Its type (the previous header's next-header value).
        next_header: u8,
    },
    /// A checksum did not verify.
    #[error("{layer} at byte {offset}: bad checksum")]
    Checksum {
        /// The layer whose checksum failed.
        layer: Layer,
        /// Byte offset of the start of that layer.
        offset: usize,
    },
}

impl Error {
    /// The same error with its byte offset moved `by` bytes further (the view started there).
    pub const fn add_offset(self, by: usize) -> Error {
        match self {
            Error::Truncated {
                layer,
                offset,
                required,
                found,
                len_source,
            } => Error::Truncated {
                layer,
                offset: offset + by,
                required,
                found,
                len_source,
            },
            Error::Invalid {
                layer,
                offset,
                field,
                found,
            } => Error::Invalid {
                layer,
                offset: offset + by,
                field,
                found,
            },
            Error::TooManyExtensionHeaders {
                offset,
                limit,
                next_header,
            } => Error::TooManyExtensionHeaders {
                offset: offset + by,
                limit,
                next_header,
            },
            Error::Checksum { layer, offset } => Error::Checksum {
                layer,
                offset: offset + by,
            },
        }
    }

    /// The layer the error was found in.
    pub const fn layer(&self) -> Layer {
        match *self {
            Error::Truncated { layer, .. }
            | Error::Invalid { layer, .. }
            | Error::Checksum { layer, .. } => layer,
            Error::TooManyExtensionHeaders { .. } => Layer::Ipv6Ext,
        }
    }

    /// Byte offset of the start of the layer the error was found in.
    pub const fn offset(&self) -> usize {
        match *self {
            Error::Truncated { offset, .. }
            | Error::Invalid { offset, .. }
            | Error::Checksum { offset, .. }
            | Error::TooManyExtensionHeaders { offset, .. } => offset,
        }
    }

    /// The coarse, `Copy` reason for drop counters.
    pub const fn reason(&self) -> Reason {
        match *self {
            Error::Truncated { .. } => Reason::Truncated,
            Error::Invalid { field, .. } => match field {
                Field::Version => Reason::BadVersion,
                Field::HeaderLen => Reason::BadHeaderLen,
                Field::TotalLen | Field::UdpLength => Reason::BadLength,
                Field::EtherType => Reason::NotIp,
                Field::GreFlags => Reason::Unsupported,
            },
            Error::TooManyExtensionHeaders { .. } => Reason::ExtensionHeaders,
            Error::Checksum { .. } => Reason::BadChecksum,
        }
    }
}

/// Why a packet could not be parsed, coarse and `Copy`: the data-path drop reason, usable as
/// an index into a counter array (`[u64; Reason::COUNT]`).
///
/// ```
/// use lvs_core::wire::Reason;
/// let mut counters = [0u64; Reason::COUNT];
/// counters[Reason::BadChecksum.index()] += 1;
/// assert_eq!(Reason::ALL[Reason::BadChecksum.index()], Reason::BadChecksum);
/// assert_eq!(Reason::BadChecksum.name(), "bad_checksum");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Reason {
    /// Some layer needs more bytes than there are.
    Truncated,
    /// Wrong IP version (or tunnel version).
    BadVersion,
    /// A header length field is below its minimum.
    BadHeaderLen,
    /// A length field is inconsistent (IPv4 total length below the header, UDP length below 8).
    BadLength,
    /// A checksum did not verify.
    BadChecksum,
    /// The IPv6 extension-header chain is longer than the bound.
    ExtensionHeaders,
    /// An Ethernet frame that carries neither IPv4 nor IPv6.
    NotIp,
    /// A feature the views do not handle (GRE routing, GUE control messages).
    Unsupported,
}

impl Reason {
    /// Number of reasons (the length of a counter array).
    pub const COUNT: usize = 8;

    /// Every reason, in [`index`](Reason::index) order.
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::Truncated,
        Reason::BadVersion,
        Reason::BadHeaderLen,
        Reason::BadLength,
        Reason::BadChecksum,
        Reason::ExtensionHeaders,
        Reason::NotIp,
        Reason::Unsupported,
    ];

    /// The counter index, `0..COUNT`.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A stable `snake_case` name for statistics output.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::Truncated => "truncated",
            Reason::BadVersion => "bad_version",
            Reason::BadHeaderLen => "bad_header_len",
            Reason::BadLength => "bad_length",
            Reason::BadChecksum => "bad_checksum",
            Reason::ExtensionHeaders => "extension_headers",
            Reason::NotIp => "not_ip",
            Reason::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_indices_are_dense_and_match_all() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn add_offset_moves_every_variant() {
        let errs = [
            Error::Truncated {
                layer: Layer::Tcp,
                offset: 1,
                required: 20,
                found: 3,
                len_source: LenSource::Slice,
            },
            Error::Invalid {
                layer: Layer::Ipv4,
                offset: 1,
                field: Field::Version,
                found: 6,
            },
            Error::TooManyExtensionHeaders {
                offset: 1,
                limit: 8,
                next_header: 0,
            },
            Error::Checksum {
                layer: Layer::Udp,
                offset: 1,
            },
        ];
        for e in errs {
            let moved = e.add_offset(33);
            assert_eq!(moved.offset(), 34);
            assert_eq!(moved.layer(), e.layer());
            assert_eq!(moved.reason(), e.reason());
        }
    }
}
