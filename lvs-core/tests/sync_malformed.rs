//! Malformed and borderline datagrams: each is rejected as a whole with the kernel's reason
//! and the byte offset, or accepted with the records the kernel would skip reported.

use std::path::PathBuf;

use lvs_core::sync::{decode, decode_for_backup, SkipReason, SyncError, SyncReason, SyncVersion};

fn golden(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sync")
        .join(format!("{name}.bin"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn set_size(b: &mut [u8]) {
    let n = b.len() as u16;
    b[2..4].copy_from_slice(&n.to_be_bytes());
}

/// A 36-byte v1 IPv4 record with `options`, its length field set.
fn rec_v4(proto: u8, flags: u32, state: u16, options: &[u8]) -> Vec<u8> {
    let mut r = vec![0, proto];
    r.extend_from_slice(&((36 + options.len()) as u16).to_be_bytes());
    r.extend_from_slice(&flags.to_be_bytes());
    r.extend_from_slice(&state.to_be_bytes());
    r.extend_from_slice(&[0x9c, 0x41, 0, 80, 0, 80]); // ports
    r.extend_from_slice(&[0; 8]); // fwmark, timeout
    r.extend_from_slice(&[192, 0, 2, 1, 10, 0, 0, 1, 10, 0, 1, 1]);
    r.extend_from_slice(options);
    r
}

/// A v1 datagram of the given records (padded between them).
fn msg(records: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![0, 0, 0, 0, records.len() as u8, 1, 0, 0];
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            while m.len() % 4 != 0 {
                m.push(0);
            }
        }
        m.extend_from_slice(r);
    }
    set_size(&mut m);
    m
}

fn err(b: &[u8]) -> SyncError {
    match decode(b) {
        Err(e) => e,
        Ok(m) => panic!("accepted: {m:?}"),
    }
}

#[test]
fn header_too_short_and_size_mismatch() {
    for n in 0..4 {
        let e = err(&[0u8; 3][..n]);
        assert_eq!(e, SyncError::TooShort { len: n });
        assert_eq!((e.reason(), e.offset()), (SyncReason::TooShort, 0));
    }
    let g = golden("v1_ipv4");
    // One byte short, one byte long.
    let e = err(&g[..g.len() - 1]);
    assert_eq!(e, SyncError::SizeMismatch { size: 44, len: 43 });
    assert_eq!(e.offset(), 2);
    let mut long = g.clone();
    long.push(0);
    assert_eq!(err(&long), SyncError::SizeMismatch { size: 44, len: 45 });
    // The size field itself altered.
    let mut b = g.clone();
    b[3] = 45;
    assert_eq!(err(&b).reason(), SyncReason::SizeMismatch);
}

#[test]
fn size_is_checked_before_the_syncid_filter() {
    let g = golden("v1_ipv4");
    // Other syncid and well formed: ignored, not an error.
    assert_eq!(decode_for_backup(&g, 5), Ok(None));
    // Other syncid and a bad size: an error, as in the kernel.
    assert_eq!(
        decode_for_backup(&g[..40], 5).unwrap_err().reason(),
        SyncReason::SizeMismatch
    );
    // Other syncid and a bad record: ignored (records are not examined).
    let mut b = g.clone();
    b[8 + 2] = 0x10; // record version 1
    assert_eq!(decode_for_backup(&b, 5), Ok(None));
    assert_eq!(
        decode_for_backup(&b, 0).unwrap_err().reason(),
        SyncReason::RecordVersion
    );
}

#[test]
fn v1_record_count_beyond_the_data() {
    let mut g = golden("v1_ipv4");
    g[4] = 2; // two records announced, one present
    let e = err(&g);
    assert_eq!(
        e,
        SyncError::RecordTruncated {
            version: 1,
            index: 1,
            offset: 44,
            needed: 36,
            available: 0
        }
    );
    // A datagram with 20 bytes after the header: even an IPv6 record needs 36 to start.
    let mut b = vec![0, 0, 0, 28, 1, 1, 0, 0];
    b.extend_from_slice(&[1; 20]);
    assert_eq!(
        err(&b),
        SyncError::RecordTruncated {
            version: 1,
            index: 0,
            offset: 8,
            needed: 36,
            available: 20
        }
    );
}

#[test]
fn v1_record_length_inconsistent() {
    let g = golden("v1_ipv4");
    // Length beyond the datagram.
    let mut b = g.clone();
    b[8 + 3] = 37;
    let e = err(&b);
    assert_eq!(
        e,
        SyncError::RecordOverrun {
            index: 0,
            offset: 8,
            size: 37,
            available: 36
        }
    );
    // Length shorter than the fixed part.
    let mut b = g.clone();
    b[8 + 3] = 35;
    assert_eq!(
        err(&b),
        SyncError::RecordTooShort {
            index: 0,
            offset: 8,
            size: 35,
            min: 36
        }
    );
    // Length 0.
    let mut b = g.clone();
    b[8 + 3] = 0;
    assert_eq!(err(&b).reason(), SyncReason::RecordTooShort);
    // An IPv6 type on a record of 36..71 bytes.
    let mut b = g.clone();
    b[8] = 1;
    assert_eq!(
        err(&b),
        SyncError::RecordTooShort {
            index: 0,
            offset: 8,
            size: 36,
            min: 72
        }
    );
    // Overrun is checked before the version nibble, as in the kernel.
    let mut b = g.clone();
    b[8 + 2] = 0x10;
    b[8 + 3] = 200;
    assert_eq!(err(&b).reason(), SyncReason::RecordOverrun);
}

#[test]
fn v1_record_version_and_type() {
    let g = golden("v1_ipv4");
    let mut b = g.clone();
    b[8 + 2] = 0x30;
    let e = err(&b);
    assert_eq!(
        e,
        SyncError::RecordVersion {
            index: 0,
            offset: 8,
            version: 3
        }
    );
    assert_eq!(e.offset(), 8);
    for ty in [2u8, 4, 0x80, 0xfe] {
        let mut b = g.clone();
        b[8] = ty;
        assert_eq!(
            err(&b),
            SyncError::RecordType {
                index: 0,
                offset: 8,
                ty
            }
        );
    }
}

#[test]
fn a_bad_second_record_rejects_the_whole_datagram() {
    let mut g = golden("v1_multi");
    // Record 4 (index 4) starts at 8 + 3*36 + 44 = 160.
    assert_eq!(g[160 + 1], 132);
    g[160 + 2] = 0x10;
    let e = err(&g);
    assert_eq!(
        e,
        SyncError::RecordVersion {
            index: 4,
            offset: 160,
            version: 1
        }
    );
}

#[test]
fn option_errors() {
    // Option header truncated: one byte of options.
    let b = msg(&[rec_v4(6, 0, 1, &[0x41])]);
    assert_eq!(
        err(&b),
        SyncError::OptionTruncated {
            index: 0,
            offset: 44,
            end: 45
        }
    );
    // Option length 0.
    let b = msg(&[rec_v4(6, 0, 1, &[2, 0])]);
    assert_eq!(
        err(&b),
        SyncError::OptionLength {
            index: 0,
            offset: 44,
            ty: 2,
            len: 0,
            available: 0
        }
    );
    // Option data runs past the record.
    let b = msg(&[rec_v4(6, 0, 1, &[2, 5, 1, 2, 3])]);
    assert_eq!(
        err(&b),
        SyncError::OptionLength {
            index: 0,
            offset: 44,
            ty: 2,
            len: 5,
            available: 3
        }
    );
    // Sequence option of the wrong length (20), also with the optional bit (0x41).
    for ty in [1u8, 0x41] {
        let mut o = vec![ty, 20];
        o.extend_from_slice(&[0; 20]);
        let b = msg(&[rec_v4(6, 0x600, 1, &o)]);
        assert_eq!(
            err(&b),
            SyncError::SeqOptionLength {
                index: 0,
                offset: 44,
                len: 20
            }
        );
    }
    // Duplicate sequence option.
    let mut o = vec![1, 24];
    o.extend_from_slice(&[0; 24]);
    o.extend_from_slice(&o.clone());
    let b = msg(&[rec_v4(6, 0x600, 1, &o)]);
    assert_eq!(
        err(&b),
        SyncError::DuplicateOption {
            index: 0,
            offset: 44 + 26,
            ty: 1
        }
    );
    // Duplicate PE name, duplicate PE data.
    let b = msg(&[rec_v4(17, 0x1000, 0, &[3, 3, b's', b'i', b'p', 3, 1, b'x'])]);
    assert_eq!(
        err(&b),
        SyncError::DuplicateOption {
            index: 0,
            offset: 49,
            ty: 3
        }
    );
    let b = msg(&[rec_v4(17, 0x1000, 0, &[2, 1, 7, 2, 1, 8])]);
    assert_eq!(err(&b).reason(), SyncReason::DuplicateOption);
    // PE name of 17 bytes.
    let mut o = vec![3, 17];
    o.extend_from_slice(&[b'n'; 17]);
    let b = msg(&[rec_v4(17, 0x1000, 0, &o)]);
    let e = err(&b);
    assert_eq!(
        e,
        SyncError::PeNameTooLong {
            index: 0,
            offset: 44,
            len: 17
        }
    );
    assert_eq!(e.reason(), SyncReason::PeNameTooLong);
    assert!(e.to_string().contains("offset 44"), "{e}");
}

#[test]
fn records_the_kernel_skips_are_reported_not_applied() {
    let good = rec_v4(6, 0x83, 1, &[]);
    let cases: Vec<(Vec<u8>, SkipReason)> = vec![
        (
            rec_v4(47, 0, 0, &[]),
            SkipReason::UnsupportedProtocol { protocol: 47 },
        ),
        (
            rec_v4(0, 0, 0, &[]),
            SkipReason::UnsupportedProtocol { protocol: 0 },
        ),
        (
            rec_v4(6, 0, 11, &[]),
            SkipReason::InvalidState {
                protocol: 6,
                state: 11,
            },
        ),
        (
            rec_v4(17, 0, 1, &[]),
            SkipReason::InvalidState {
                protocol: 17,
                state: 1,
            },
        ),
        (
            rec_v4(132, 0, 14, &[]),
            SkipReason::InvalidState {
                protocol: 132,
                state: 14,
            },
        ),
        // Unknown mandatory option; the malformed option after it is not examined.
        (
            rec_v4(6, 0, 1, &[9, 1, 0, 2, 0]),
            SkipReason::UnknownMandatoryOption { ty: 9 },
        ),
        (
            rec_v4(17, 0x1000, 0, &[2, 2, 1, 2]),
            SkipReason::PeDataWithoutName,
        ),
    ];
    for (bad, reason) in cases {
        let b = msg(&[good.clone(), bad, good.clone()]);
        let m = decode(&b).unwrap_or_else(|e| panic!("{reason:?}: {e}"));
        assert_eq!(m.records.len(), 2, "{reason:?}");
        assert_eq!(m.skipped.len(), 1);
        assert_eq!(m.skipped[0].index, 1);
        assert_eq!(m.skipped[0].offset, 44);
        assert_eq!(m.skipped[0].reason, reason);
        assert!(!reason.reason().drops_datagram());
    }
}

#[test]
fn what_the_kernel_accepts_quietly() {
    // Templates: any protocol, any state.
    let b = msg(&[rec_v4(47, 0x1000, 9, &[])]);
    let m = decode(&b).unwrap();
    assert_eq!((m.records.len(), m.skipped.len()), (1, 0));
    // An unknown optional option is skipped; a PE name without data is kept.
    let b = msg(&[rec_v4(6, 0, 1, &[0x49, 2, 1, 2, 3, 3, b's', b'i', b'p'])]);
    let m = decode(&b).unwrap();
    assert_eq!(m.records.len(), 1);
    assert_eq!(m.records[0].pe_name.unwrap().as_bytes(), b"sip");
    assert_eq!(m.records[0].pe_data, None);
    // Non-zero padding between records and bytes after the last counted record.
    let mut b = msg(&[rec_v4(6, 0, 1, &[0x49, 1, 0]), rec_v4(6, 0, 1, &[])]);
    b[8 + 39] = 0xaa; // the padding byte after the 39-byte record
    b.extend_from_slice(&[0xee; 5]);
    set_size(&mut b);
    let m = decode(&b).unwrap();
    assert_eq!(m.records.len(), 2);
    // Flags above bit 15 are dropped.
    let b = msg(&[rec_v4(6, 0x0001_0083, 1, &[])]);
    assert_eq!(decode(&b).unwrap().records[0].flags.bits(), 0x83);
    // A type byte with bit 0 and other bits is IPv6.
    let mut r = rec_v4(6, 0, 1, &[]);
    r[0] = 3;
    r[3] = 72;
    r.resize(72, 0);
    let m = decode(&msg(&[r])).unwrap();
    assert!(m.records[0].is_ipv6());
}

#[test]
fn unknown_header_versions_read_as_empty_v0() {
    // reserved 0 (v0 count 0), version 2: the kernel parses it as v0 with no records.
    let mut g = golden("v1_ipv4");
    g[5] = 2;
    let m = decode(&g).unwrap();
    assert_eq!((m.version, m.records.len()), (SyncVersion::V0, 0));
    // Non-zero spare: likewise.
    let mut g = golden("v1_ipv4");
    g[7] = 1;
    assert_eq!(decode(&g).unwrap().version, SyncVersion::V0);
    // reserved non-zero: v0 with that many records, which are not there in v0 layout.
    let mut g = golden("v1_ipv4");
    g[0] = 2;
    let e = err(&g);
    assert_eq!(
        e,
        SyncError::RecordTruncated {
            version: 0,
            index: 1,
            offset: 28,
            needed: 24,
            available: 16
        }
    );
}

#[test]
fn v0_errors_and_skips() {
    let g = golden("v0_seq");
    // Count one more than present.
    let mut b = g.clone();
    b[0] = 3;
    assert_eq!(
        err(&b),
        SyncError::RecordTruncated {
            version: 0,
            index: 2,
            offset: 76,
            needed: 24,
            available: 0
        }
    );
    // The sequence block cut off: drop the second record and 1 byte of the first's block.
    let mut b = g[..4 + 47].to_vec();
    b[0] = 1;
    set_size(&mut b);
    assert_eq!(
        err(&b),
        SyncError::RecordTruncated {
            version: 0,
            index: 0,
            offset: 4,
            needed: 48,
            available: 47
        }
    );
    // An unknown protocol on the second record: skipped.
    let mut b = g.clone();
    b[4 + 48 + 1] = 99;
    let m = decode(&b).unwrap();
    assert_eq!(m.records.len(), 1);
    assert_eq!(
        m.skipped[0].reason,
        SkipReason::UnsupportedProtocol { protocol: 99 }
    );
    assert_eq!(m.skipped[0].offset, 52);
}

#[test]
fn reasons_have_distinct_indices_and_names() {
    let mut seen = std::collections::HashSet::new();
    for (i, r) in SyncReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert!(seen.insert(r.name()));
    }
    assert!(SyncReason::PeNameTooLong.drops_datagram());
    assert!(!SyncReason::SyncidIgnored.drops_datagram());
}

#[test]
fn missing_padding_puts_the_next_record_past_the_end() {
    // Even an optional option must not have length 0.
    let b = msg(&[rec_v4(6, 0, 1, &[0x49, 0])]);
    assert_eq!(err(&b).reason(), SyncReason::OptionLength);
    // One 39-byte record (a 3-byte optional option), count 2: the second record would start
    // at 8 + 40 = 48, one byte past the 47-byte datagram.
    let mut b = msg(&[rec_v4(6, 0, 1, &[0x49, 1, 0])]);
    b[4] = 2;
    assert_eq!(b.len(), 47);
    assert_eq!(
        err(&b),
        SyncError::RecordTruncated {
            version: 1,
            index: 1,
            offset: 48,
            needed: 36,
            available: 0
        }
    );
}
