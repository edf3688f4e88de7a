//! Fuzz body for the sync protocol decoder.
//!
//! Invariants checked: `decode` never panics; an error names an offset inside the datagram
//! (or a record start at most 3 padding bytes past it);
//! every skipped record lies inside the datagram; when a datagram decodes, encoding its records
//! and decoding again gives the same records (a fixed point); re-encoding never grows the
//! datagram; and the batcher splits the same records into datagrams that decode back to them.

use lvs_core::sync::{decode, decode_for_backup, SyncBatcher, SyncVersion};
use lvs_core::Instant;

/// Decodes `data` as a received datagram and checks the invariants above.
pub fn sync_decode(data: &[u8]) {
    let first = decode(data);
    // The syncid filter never changes what a datagram decodes to.
    match decode_for_backup(data, 0) {
        Ok(Some(m)) => assert_eq!(Ok(&m), first.as_ref()),
        Ok(None) => panic!("syncid 0 accepts every datagram"),
        Err(e) => assert_eq!(Err(e), first.clone().map(|_| ())),
    }
    let m = match first {
        Ok(m) => m,
        Err(e) => {
            // A record start may lie up to 3 padding bytes past the end.
            assert!(e.offset() <= data.len() + 3, "{e}");
            assert!(e.reason().drops_datagram());
            return;
        }
    };
    for s in &m.skipped {
        assert!(s.offset < data.len());
        assert!(!s.reason.reason().drops_datagram());
    }
    let bytes = m.encode().expect("decoded records encode");
    assert!(bytes.len() <= data.len(), "re-encoding grew the datagram");
    let again = decode(&bytes).expect("encoded records decode");
    assert_eq!(again.records, m.records);
    assert_eq!(again.syncid, m.syncid);
    assert!(again.skipped.is_empty());
    assert_eq!(bytes, again.encode().expect("fixed point"));

    // Batched into small datagrams, the records come back in order.
    let maxlen = 64 + usize::from(data.first().copied().unwrap_or(0)) * 4;
    let mut b = SyncBatcher::new(m.version, m.syncid, maxlen);
    let mut back = Vec::new();
    let mut take = |d: &[u8]| {
        let got = decode(d).expect("batched datagram decodes");
        assert!(d.len() <= maxlen || got.records.len() == 1);
        back.extend(got.records);
    };
    for r in &m.records {
        b.push(Instant::ZERO, r, &mut take)
            .expect("decoded record encodes");
    }
    b.flush(&mut take);
    assert_eq!(back, m.records);
    if m.version == SyncVersion::V0 {
        assert!(m.records.iter().all(|r| !r.is_ipv6()));
    }
}
