//! Why a datagram or a record was refused, and why an encode failed.

/// Every outcome a receiver counts, as a `Copy` index into a counter array.
///
/// The first group drops the whole datagram ([`SyncError`]), the second skips one record
/// ([`SkipReason`]), [`SyncReason::SyncidIgnored`] is a datagram for another syncid.
///
/// ```
/// use lvs_core::sync::{decode, SyncReason};
/// let mut counters = [0u64; SyncReason::COUNT];
/// if let Err(e) = decode(&[0, 0, 0]) {
///     counters[e.reason().index()] += 1;
/// }
/// assert_eq!(counters[SyncReason::TooShort.index()], 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncReason {
    /// Datagram shorter than 4 bytes.
    TooShort,
    /// Header size field differs from the datagram length.
    SizeMismatch,
    /// A record's fixed part (or v0 sequence block) runs past the datagram.
    RecordTruncated,
    /// A v1 record's length runs past the datagram.
    RecordOverrun,
    /// A v1 record's version nibble is not 0.
    RecordVersion,
    /// A v1 record's type is neither IPv4 nor IPv6.
    RecordType,
    /// A v1 record's length is shorter than its fixed part.
    RecordTooShort,
    /// An option header runs past the record.
    OptionTruncated,
    /// An option length is 0 or runs past the record.
    OptionLength,
    /// The sequence option is not 24 bytes.
    SeqOptionLength,
    /// An option appears twice in one record.
    DuplicateOption,
    /// The persistence-engine name is longer than 16 bytes.
    PeNameTooLong,
    /// Record skipped: an unknown option without the optional bit.
    UnknownMandatoryOption,
    /// Record skipped: protocol without an IPVS handler (non-templates).
    UnsupportedProtocol,
    /// Record skipped: state out of the protocol's range (non-templates).
    InvalidState,
    /// Record skipped: persistence-engine data without an engine name.
    PeDataWithoutName,
    /// Datagram ignored: its syncid is not the backup's.
    SyncidIgnored,
}

impl SyncReason {
    /// Number of reasons (length of a counter array).
    pub const COUNT: usize = 17;

    /// Every reason, in index order.
    pub const ALL: [SyncReason; SyncReason::COUNT] = [
        SyncReason::TooShort,
        SyncReason::SizeMismatch,
        SyncReason::RecordTruncated,
        SyncReason::RecordOverrun,
        SyncReason::RecordVersion,
        SyncReason::RecordType,
        SyncReason::RecordTooShort,
        SyncReason::OptionTruncated,
        SyncReason::OptionLength,
        SyncReason::SeqOptionLength,
        SyncReason::DuplicateOption,
        SyncReason::PeNameTooLong,
        SyncReason::UnknownMandatoryOption,
        SyncReason::UnsupportedProtocol,
        SyncReason::InvalidState,
        SyncReason::PeDataWithoutName,
        SyncReason::SyncidIgnored,
    ];

    /// The counter index (0..[`SyncReason::COUNT`]).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether the kernel drops the whole datagram for this reason.
    pub const fn drops_datagram(self) -> bool {
        self.index() <= SyncReason::PeNameTooLong.index()
    }

    /// A short snake_case name for counters.
    pub const fn name(self) -> &'static str {
        match self {
            SyncReason::TooShort => "too_short",
            SyncReason::SizeMismatch => "size_mismatch",
            SyncReason::RecordTruncated => "record_truncated",
            SyncReason::RecordOverrun => "record_overrun",
            SyncReason::RecordVersion => "record_version",
            SyncReason::RecordType => "record_type",
            SyncReason::RecordTooShort => "record_too_short",
            SyncReason::OptionTruncated => "option_truncated",
            SyncReason::OptionLength => "option_length",
            SyncReason::SeqOptionLength => "seq_option_length",
            SyncReason::DuplicateOption => "duplicate_option",
            SyncReason::PeNameTooLong => "pe_name_too_long",
            SyncReason::UnknownMandatoryOption => "unknown_mandatory_option",
            SyncReason::UnsupportedProtocol => "unsupported_protocol",
            SyncReason::InvalidState => "invalid_state",
            SyncReason::PeDataWithoutName => "pe_data_without_name",
            SyncReason::SyncidIgnored => "syncid_ignored",
        }
    }
}

/// A datagram the kernel's backup drops (`ip_vs_process_message` returns, or
/// `ip_vs_proc_sync_conn` fails with a negative code). Offsets are from the start of the
/// datagram (the UDP payload); `index` is the record number from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Fewer than the 4 bytes every header has.
    #[error("sync header at offset 0: datagram of {len} bytes is shorter than 4")]
    TooShort {
        /// Datagram length.
        len: usize,
    },
    /// The header's size field (offset 2) is not the datagram length.
    #[error("sync header at offset 2: size field {size} but the datagram has {len} bytes")]
    SizeMismatch {
        /// The size field.
        size: u16,
        /// Datagram length.
        len: usize,
    },
    /// The fixed part of a record (36 bytes in v1, 24 in v0, 48 in v0 with sequence data)
    /// does not fit in what is left of the datagram. In v1 the record start (after the
    /// previous record's padding) may be up to 3 bytes past the end of the datagram.
    #[error(
        "sync v{version} record {index} at offset {offset}: needs {needed} bytes, {available} left"
    )]
    RecordTruncated {
        /// 0 or 1.
        version: u8,
        /// Record number.
        index: u8,
        /// Record start.
        offset: usize,
        /// Bytes the record needs.
        needed: usize,
        /// Bytes left in the datagram from `offset`.
        available: usize,
    },
    /// A v1 record's length (low 12 bits at record offset 2) runs past the datagram.
    #[error(
        "sync v1 record {index} at offset {offset}: length {size} but only {available} bytes left"
    )]
    RecordOverrun {
        /// Record number.
        index: u8,
        /// Record start.
        offset: usize,
        /// Record length from the header.
        size: u16,
        /// Bytes left in the datagram from `offset`.
        available: usize,
    },
    /// A v1 record's version nibble (top 4 bits at record offset 2) is not 0.
    #[error("sync v1 record {index} at offset {offset}: record version {version}, expected 0")]
    RecordVersion {
        /// Record number.
        index: u8,
        /// Record start (the nibble is at `offset + 2`).
        offset: usize,
        /// The nibble.
        version: u8,
    },
    /// A v1 record's type byte is not 0 (IPv4) and lacks bit 0 (IPv6).
    #[error("sync v1 record {index} at offset {offset}: unknown record type {ty:#04x}")]
    RecordType {
        /// Record number.
        index: u8,
        /// Record start (the type byte).
        offset: usize,
        /// The type byte.
        ty: u8,
    },
    /// A v1 record's length is shorter than its fixed part (36 IPv4, 72 IPv6).
    #[error("sync v1 record {index} at offset {offset}: length {size} is shorter than the {min}-byte fixed part")]
    RecordTooShort {
        /// Record number.
        index: u8,
        /// Record start.
        offset: usize,
        /// Record length.
        size: u16,
        /// Fixed part length.
        min: usize,
    },
    /// Fewer than 2 bytes left in the record for an option's type and length.
    #[error(
        "sync v1 record {index}: option header at offset {offset} runs past the record end {end}"
    )]
    OptionTruncated {
        /// Record number.
        index: u8,
        /// Option start.
        offset: usize,
        /// Record end.
        end: usize,
    },
    /// An option's length is 0 or its data runs past the record.
    #[error("sync v1 record {index}: option type {ty} at offset {offset} has length {len}, {available} bytes left in the record (must be 1..={available})")]
    OptionLength {
        /// Record number.
        index: u8,
        /// Option start.
        offset: usize,
        /// Option type.
        ty: u8,
        /// Option length.
        len: u8,
        /// Record bytes left after the option header.
        available: usize,
    },
    /// The sequence option's length is not 24.
    #[error(
        "sync v1 record {index}: sequence option at offset {offset} has length {len}, expected 24"
    )]
    SeqOptionLength {
        /// Record number.
        index: u8,
        /// Option start.
        offset: usize,
        /// Option length.
        len: u8,
    },
    /// The same option (sequence, PE data or PE name) twice in one record.
    #[error("sync v1 record {index}: option type {ty} at offset {offset} appears a second time")]
    DuplicateOption {
        /// Record number.
        index: u8,
        /// Option start of the second occurrence.
        offset: usize,
        /// Option type.
        ty: u8,
    },
    /// The persistence-engine name option is longer than 16 bytes.
    #[error(
        "sync v1 record {index}: PE name option at offset {offset} has length {len}, at most 16"
    )]
    PeNameTooLong {
        /// Record number.
        index: u8,
        /// Option start.
        offset: usize,
        /// Option length.
        len: u8,
    },
}

impl SyncError {
    /// The counter this error goes to.
    pub const fn reason(&self) -> SyncReason {
        match self {
            SyncError::TooShort { .. } => SyncReason::TooShort,
            SyncError::SizeMismatch { .. } => SyncReason::SizeMismatch,
            SyncError::RecordTruncated { .. } => SyncReason::RecordTruncated,
            SyncError::RecordOverrun { .. } => SyncReason::RecordOverrun,
            SyncError::RecordVersion { .. } => SyncReason::RecordVersion,
            SyncError::RecordType { .. } => SyncReason::RecordType,
            SyncError::RecordTooShort { .. } => SyncReason::RecordTooShort,
            SyncError::OptionTruncated { .. } => SyncReason::OptionTruncated,
            SyncError::OptionLength { .. } => SyncReason::OptionLength,
            SyncError::SeqOptionLength { .. } => SyncReason::SeqOptionLength,
            SyncError::DuplicateOption { .. } => SyncReason::DuplicateOption,
            SyncError::PeNameTooLong { .. } => SyncReason::PeNameTooLong,
        }
    }

    /// The byte offset in the datagram where the problem is.
    pub const fn offset(&self) -> usize {
        match *self {
            SyncError::TooShort { .. } => 0,
            SyncError::SizeMismatch { .. } => 2,
            SyncError::RecordTruncated { offset, .. }
            | SyncError::RecordOverrun { offset, .. }
            | SyncError::RecordVersion { offset, .. }
            | SyncError::RecordType { offset, .. }
            | SyncError::RecordTooShort { offset, .. }
            | SyncError::OptionTruncated { offset, .. }
            | SyncError::OptionLength { offset, .. }
            | SyncError::SeqOptionLength { offset, .. }
            | SyncError::DuplicateOption { offset, .. }
            | SyncError::PeNameTooLong { offset, .. } => offset,
        }
    }
}

/// Why the kernel's backup skips one record and goes on with the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// An option type it does not know, without [`OPT_F_OPTIONAL`](super::OPT_F_OPTIONAL)
    /// (options after it are not examined).
    UnknownMandatoryOption {
        /// The option type byte.
        ty: u8,
    },
    /// A connection (not a template) of a protocol IPVS does not handle.
    UnsupportedProtocol {
        /// The protocol number.
        protocol: u8,
    },
    /// A connection's state is not below the protocol's number of states.
    InvalidState {
        /// The protocol number.
        protocol: u8,
        /// The state.
        state: u16,
    },
    /// Persistence-engine data without a persistence-engine name.
    PeDataWithoutName,
}

impl SkipReason {
    /// The counter this skip goes to.
    pub const fn reason(&self) -> SyncReason {
        match self {
            SkipReason::UnknownMandatoryOption { .. } => SyncReason::UnknownMandatoryOption,
            SkipReason::UnsupportedProtocol { .. } => SyncReason::UnsupportedProtocol,
            SkipReason::InvalidState { .. } => SyncReason::InvalidState,
            SkipReason::PeDataWithoutName => SyncReason::PeDataWithoutName,
        }
    }
}

/// A record of an accepted datagram that the kernel's backup would not apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SkippedRecord {
    /// Record number in the datagram.
    pub index: u8,
    /// Record start offset.
    pub offset: usize,
    /// Why.
    pub reason: SkipReason,
}

/// A record or message that cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// caddr, vaddr and daddr are not all IPv4 or all IPv6.
    #[error("sync record: caddr, vaddr and daddr are of different address families")]
    MixedFamily,
    /// Version 0 carries only IPv4 records.
    #[error("sync v0 cannot carry an IPv6 record")]
    Ipv6InV0,
    /// PE data must be 1 to 255 bytes (its option length is one non-zero byte).
    #[error("sync record: PE data of {len} bytes, must be 1..=255")]
    PeDataLength {
        /// The length given.
        len: usize,
    },
    /// [`SyncMessage::encode`](super::SyncMessage::encode): more than 255 records.
    #[error("sync message: {count} records, at most 255 fit in one datagram")]
    TooManyRecords {
        /// Records given.
        count: usize,
    },
    /// [`SyncMessage::encode`](super::SyncMessage::encode): more than 65535 bytes.
    #[error("sync message: {size} bytes, at most 65535 fit the size field")]
    TooLarge {
        /// Bytes needed.
        size: usize,
    },
}
