//! Property tests: random records → batched encode → decode reproduces them exactly, every
//! datagram fits `sync_maxlen`; arbitrary bytes never panic the decoder and a decoded message
//! is a fixed point of encode → decode.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_core::conn::ConnFlags;
use lvs_core::sync::{
    decode, protocol_states, record_len, PeName, SeqData, SeqOptions, SyncBatcher, SyncConn,
    SyncMessage, SyncVersion, DEFAULT_MAXLEN_V4,
};
use lvs_core::Instant;
use proptest::prelude::*;

fn seq_data() -> impl Strategy<Value = SeqData> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| SeqData {
        init_seq: a,
        delta: b,
        previous_delta: c,
    })
}

fn seq_opts() -> impl Strategy<Value = SeqOptions> {
    (seq_data(), seq_data()).prop_map(|(in_seq, out_seq)| SeqOptions { in_seq, out_seq })
}

/// Protocol and state a backup applies: a known protocol with a state in range, or a template
/// with anything.
fn proto_state_flags() -> impl Strategy<Value = (u8, u16, u16)> {
    let flags =
        any::<u16>().prop_map(|f| f & !ConnFlags::HASHED.bits() & !ConnFlags::TEMPLATE.bits());
    prop_oneof![
        (
            prop::sample::select(vec![6u8, 17, 132, 50, 51]),
            any::<u16>(),
            flags.clone()
        )
            .prop_map(|(p, s, f)| {
                let n = protocol_states(p).unwrap();
                (p, s % n, f)
            }),
        (any::<u8>(), any::<u16>(), flags).prop_map(|(p, s, f)| (
            p,
            s,
            f | ConnFlags::TEMPLATE.bits()
        )),
    ]
}

fn addrs(v6: bool) -> impl Strategy<Value = [IpAddr; 3]> {
    if v6 {
        prop::array::uniform3(any::<[u8; 16]>())
            .prop_map(|a| a.map(|x| IpAddr::V6(Ipv6Addr::from(x))))
            .boxed()
    } else {
        prop::array::uniform3(any::<[u8; 4]>())
            .prop_map(|a| a.map(|x| IpAddr::V4(Ipv4Addr::from(x))))
            .boxed()
    }
}

fn v1_record() -> impl Strategy<Value = SyncConn> {
    (
        proto_state_flags(),
        any::<[u16; 3]>(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>().prop_flat_map(addrs),
        prop::option::of(seq_opts()),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..=255)),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..=16)),
    )
        .prop_map(
            |((protocol, state, flags), ports, fwmark, timeout, a, seq, pe_data, name)| {
                // PE data without a name is skipped by a backup: give it one.
                let name = match (&pe_data, name) {
                    (Some(_), None) => Some(b"sip".to_vec()),
                    (_, n) => n,
                };
                SyncConn {
                    protocol,
                    flags: ConnFlags::from_bits(flags),
                    state,
                    cport: ports[0],
                    vport: ports[1],
                    dport: ports[2],
                    fwmark,
                    timeout,
                    caddr: a[0],
                    vaddr: a[1],
                    daddr: a[2],
                    seq,
                    pe_data,
                    pe_name: name.and_then(|n| PeName::new(&n)),
                }
            },
        )
}

/// What version 0 can carry: IPv4, no fwmark, timeout or PE data, the sequence block exactly
/// when IN_SEQ / OUT_SEQ is set.
fn v0_record() -> impl Strategy<Value = SyncConn> {
    (v1_record(), addrs(false), seq_opts()).prop_map(|(mut r, a, s)| {
        [r.caddr, r.vaddr, r.daddr] = a;
        r.fwmark = 0;
        r.timeout = 0;
        r.pe_data = None;
        r.pe_name = None;
        let seq_bits = ConnFlags::IN_SEQ.bits() | ConnFlags::OUT_SEQ.bits();
        r.seq = (r.flags.bits() & seq_bits != 0).then_some(s);
        r
    })
}

fn batch(version: SyncVersion, maxlen: usize, records: &[SyncConn]) -> Vec<Vec<u8>> {
    let mut b = SyncBatcher::new(version, 9, maxlen);
    let mut out = Vec::new();
    for r in records {
        b.push(Instant::ZERO, r, |d| out.push(d.to_vec())).unwrap();
    }
    b.flush(|d| out.push(d.to_vec()));
    out
}

fn check_roundtrip(version: SyncVersion, maxlen: usize, records: &[SyncConn]) {
    let hlen = if version == SyncVersion::V1 { 8 } else { 4 };
    let datagrams = batch(version, maxlen, records);
    let mut back = Vec::new();
    for d in &datagrams {
        let m = decode(d).unwrap();
        assert_eq!(m.version, version);
        assert_eq!(m.syncid, 9);
        assert!(m.skipped.is_empty());
        assert!(!m.records.is_empty() && m.records.len() <= 255);
        // At most maxlen, unless one record alone is longer (the kernel sends it anyway).
        let single_oversized =
            m.records.len() == 1 && hlen + record_len(version, &m.records[0]).unwrap() > maxlen;
        assert!(
            d.len() <= maxlen || single_oversized,
            "datagram of {} > {maxlen}",
            d.len()
        );
        back.extend(m.records);
    }
    assert_eq!(back, records);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn v1_batches_round_trip(
        records in prop::collection::vec(v1_record(), 0..80),
        maxlen in prop_oneof![Just(DEFAULT_MAXLEN_V4), 1usize..2000, 2000usize..70000],
    ) {
        check_roundtrip(SyncVersion::V1, maxlen, &records);
    }

    #[test]
    fn v0_batches_round_trip(
        records in prop::collection::vec(v0_record(), 0..80),
        maxlen in prop_oneof![Just(DEFAULT_MAXLEN_V4), 1usize..2000],
    ) {
        check_roundtrip(SyncVersion::V0, maxlen, &records);
    }

    #[test]
    fn one_datagram_round_trips(records in prop::collection::vec(v1_record(), 0..40)) {
        let m = SyncMessage::new(SyncVersion::V1, 200, records);
        let bytes = m.encode().unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), m);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_decode_is_a_fixed_point(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        v1 in any::<bool>(),
        count in 0u8..8,
    ) {
        let mut b = bytes;
        // Steer half the inputs into a well-formed header so the record parser is reached.
        if b.len() >= 8 {
            let n = b.len() as u16;
            b[2..4].copy_from_slice(&n.to_be_bytes());
            if v1 {
                b[0] = 0;
                b[4] = count;
                b[5] = 1;
                b[6] = 0;
                b[7] = 0;
            } else {
                b[0] = count;
            }
        }
        if let Ok(m) = decode(&b) {
            let again = decode(&m.encode().unwrap()).unwrap();
            prop_assert_eq!(&again.records, &m.records);
            prop_assert_eq!(again.syncid, m.syncid);
        }
    }
}

#[test]
fn max_records_per_datagram_is_255() {
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let r = SyncConn {
        protocol: 6,
        flags: ConnFlags::empty(),
        state: 1,
        cport: 1,
        vport: 2,
        dport: 3,
        fwmark: 0,
        timeout: 0,
        caddr: a,
        vaddr: a,
        daddr: a,
        seq: None,
        pe_data: None,
        pe_name: None,
    };
    let records = vec![r; 600];
    let d = batch(SyncVersion::V1, 65507, &records);
    assert_eq!(d.len(), 3);
    assert_eq!(d[0][4], 255);
    assert_eq!(d[0].len(), 8 + 255 * 36);
    assert_eq!(d[2][4], 90);
    // A single datagram of 256 records cannot be written.
    assert!(
        SyncMessage::new(SyncVersion::V1, 0, records[..256].to_vec())
            .encode()
            .is_err()
    );
}

#[test]
fn batcher_flushes_after_two_seconds_and_reuses_its_buffer() {
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let r = SyncConn {
        protocol: 17,
        flags: ConnFlags::empty(),
        state: 0,
        cport: 1,
        vport: 2,
        dport: 3,
        fwmark: 0,
        timeout: 300,
        caddr: a,
        vaddr: a,
        daddr: a,
        seq: None,
        pe_data: None,
        pe_name: None,
    };
    let mut b = SyncBatcher::new(SyncVersion::V1, 0, DEFAULT_MAXLEN_V4);
    assert_eq!(b.flush_deadline(), None);
    b.push(Instant::from_secs(10), &r, |_| {
        panic!("nothing to send yet")
    })
    .unwrap();
    b.push(Instant::from_millis(11_500), &r, |_| panic!("fits"))
        .unwrap();
    assert_eq!(b.flush_deadline(), Some(Instant::from_secs(12)));
    let mut sent = 0;
    assert!(!b.flush_if_due(Instant::from_millis(11_999), |_| sent += 1));
    assert!(b.flush_if_due(Instant::from_secs(12), |d| {
        sent += 1;
        assert_eq!(d.len(), 8 + 36 + 36);
    }));
    assert_eq!(sent, 1);
    assert_eq!(b.pending_records(), 0);
    assert!(!b.flush(|_| panic!("empty")));
}

#[test]
fn encode_errors() {
    use lvs_core::sync::EncodeError;
    let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let mut r = SyncConn {
        protocol: 17,
        flags: ConnFlags::empty(),
        state: 0,
        cport: 1,
        vport: 2,
        dport: 3,
        fwmark: 0,
        timeout: 300,
        caddr: v4,
        vaddr: v6,
        daddr: v4,
        seq: None,
        pe_data: None,
        pe_name: None,
    };
    assert_eq!(
        record_len(SyncVersion::V1, &r),
        Err(EncodeError::MixedFamily)
    );
    r.vaddr = v4;
    r.pe_data = Some(vec![]);
    assert_eq!(
        record_len(SyncVersion::V1, &r),
        Err(EncodeError::PeDataLength { len: 0 })
    );
    r.pe_data = Some(vec![0; 256]);
    assert_eq!(
        record_len(SyncVersion::V1, &r),
        Err(EncodeError::PeDataLength { len: 256 })
    );
    // v0 does not carry PE data: ignored, as by the kernel.
    assert_eq!(record_len(SyncVersion::V0, &r), Ok(24));
    r.pe_data = None;
    [r.caddr, r.vaddr, r.daddr] = [v6; 3];
    assert_eq!(record_len(SyncVersion::V0, &r), Err(EncodeError::Ipv6InV0));
    let mut b = SyncBatcher::new(SyncVersion::V0, 0, DEFAULT_MAXLEN_V4);
    assert!(b.push(Instant::ZERO, &r, |_| {}).is_err());
    assert_eq!(b.pending_records(), 0);
}
