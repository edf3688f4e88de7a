//! Bytes from the device never panic the parts of the runtime that read them.

use std::net::IpAddr;

use lvs_tun::counters::Drop;
use lvs_tun::decap::{decide, Outcome};
use lvs_tun::health::judge_http;
use lvs_tun::neigh::{request, Neighbours, MAX_ENTRIES};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn neighbour_learning_takes_any_frame(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
        let n = Neighbours::default();
        n.learn_from_frame(&frame);
        prop_assert!(n.len() <= 1);
    }

    #[test]
    fn decap_takes_any_packet(pkt in proptest::collection::vec(any::<u8>(), 0..200), v6 in any::<bool>()) {
        let mut pkt = pkt;
        if let Some(b) = pkt.first_mut() {
            *b = if v6 { 0x60 } else { 0x45 };
        }
        let me: Vec<IpAddr> = vec!["10.0.2.11".parse().unwrap()];
        match decide(&pkt, &me, 6080) {
            Outcome::Deliver(r) => prop_assert!(r.end <= pkt.len()),
            Outcome::Drop(d) => prop_assert!(matches!(d, Drop::Malformed | Drop::NotTunnel)),
        }
    }

    #[test]
    fn http_judgement_takes_any_response(resp in proptest::collection::vec(any::<u8>(), 0..300)) {
        let url = lvs_core::keepalived::model::UrlCheck {
            path: "/".into(),
            digest: Some("00".into()),
            status_codes: vec![(200, 299)],
            virtualhost: None,
        };
        let _ = judge_http(&resp, &url);
    }
}

#[test]
fn learning_is_bounded() {
    let n = Neighbours::default();
    for i in 0..(MAX_ENTRIES as u32 + 100) {
        let ip = IpAddr::V4((0x0a00_0000 + i).into());
        let mut f = request(ip, [2, 0, 0, 0, 0, 1]);
        // Make it a reply from that address.
        f[21] = 2;
        f[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[28..32].copy_from_slice(&match ip {
            IpAddr::V4(v) => v.octets(),
            IpAddr::V6(_) => unreachable!(),
        });
        n.learn_from_frame(&f);
    }
    assert_eq!(n.len(), MAX_ENTRIES);
}
