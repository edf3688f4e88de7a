//! Property: any RuleSet built through `apply` saves to text that parses back to the same
//! model (as sets: a restore re-adds in sorted order) and saves to the same bytes again.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_core::rules::{
    Command, DestConfig, Family, Forward, PersistMask, Persistence, RuleSet, ServiceConfig,
    ServiceKey, TunnelConfig, TunnelCsum, TunnelType,
};
use lvs_core::sched::{SchedFlags, SchedKind};
use lvs_core::Protocol;
use proptest::prelude::*;

fn v4() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (1u8..4).prop_map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))),
        (1u8..4).prop_map(|i| IpAddr::V4(Ipv4Addr::new(192, 168, 1, i))),
        (1u32..0xdfff_ffff).prop_map(|a| IpAddr::V4(Ipv4Addr::from(a | 0x0100_0000))),
    ]
}

fn v6() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (1u16..4).prop_map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))),
        (1u16..4).prop_map(|i| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0xffff, 0, i))),
        any::<u128>()
            .prop_map(|a| IpAddr::V6(Ipv6Addr::from((a & !(0xffu128 << 120)) | (0x20u128 << 120)))),
        (1u32..).prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
    ]
}

fn addr(family: Family) -> BoxedStrategy<IpAddr> {
    match family {
        Family::V4 => v4().boxed(),
        Family::V6 => v6().boxed(),
    }
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![Just(0u16), Just(80), Just(443), any::<u16>()]
}

fn key() -> impl Strategy<Value = ServiceKey> {
    let proto = prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::Sctp)
    ];
    let family = prop_oneof![Just(Family::V4), Just(Family::V6)];
    prop_oneof![
        3 => (proto, family.clone().prop_flat_map(addr), port())
            .prop_map(|(protocol, addr, port)| ServiceKey::Addr { protocol, addr, port }),
        1 => (prop_oneof![1u32..10, any::<u32>().prop_map(|m| m.max(1))], family)
            .prop_map(|(mark, family)| ServiceKey::Fwmark { mark, family }),
    ]
}

fn service() -> impl Strategy<Value = ServiceConfig> {
    (
        key(),
        0..SchedKind::ALL.len(),
        0u8..8,
        proptest::option::of((1..=Persistence::MAX_TIMEOUT_SECS, any::<u32>(), 1u8..=128)),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(key, sched, flags, persist, pe, ops)| {
            let scheduler = SchedKind::ALL[sched];
            let mut flags = SchedFlags::from_bits_truncate(flags << 3);
            if matches!(scheduler, SchedKind::Sh | SchedKind::Mh) {
                flags = SchedFlags::from_bits_truncate(flags.bits() & 0x18);
            }
            let mut persistence = persist.map(|(t, m4, m6)| Persistence {
                timeout_secs: t,
                mask: match key.family() {
                    Family::V4 => PersistMask::V4(Ipv4Addr::from(m4)),
                    Family::V6 => PersistMask::V6(m6),
                },
            });
            if key.port() == 0 && !key.is_fwmark() && persistence.is_none() {
                persistence = Some(Persistence::new(
                    Persistence::DEFAULT_TIMEOUT_SECS,
                    key.family(),
                ));
            }
            let one_packet = ops && (key.is_fwmark() || key.protocol() == Some(Protocol::Udp));
            ServiceConfig {
                key,
                scheduler,
                flags,
                persistence,
                pe: pe.then(|| "sip".to_string()),
                one_packet,
            }
        })
}

/// A real server for a service of family `family`, valid for `key`.
fn dest(key: ServiceKey) -> impl Strategy<Value = DestConfig> {
    let fam = key.family();
    let other = if fam == Family::V4 {
        Family::V6
    } else {
        Family::V4
    };
    (
        prop_oneof![4 => addr(fam), 1 => addr(other)],
        port(),
        0u8..3,
        prop_oneof![Just(0u32), Just(1), 0u32..=65535],
        0u8..3,
        1u16..,
        0u8..3,
    )
        .prop_map(move |(addr, port, fwd, weight, tun, tun_port, csum)| {
            let mut forward = [Forward::Masq, Forward::DirectRoute, Forward::Tunnel][fwd as usize];
            if Family::of(&addr) != key.family() {
                forward = Forward::Tunnel;
            }
            let port = if !key.is_fwmark() && forward != Forward::Masq {
                key.port()
            } else {
                port
            };
            let csum = [TunnelCsum::NoCsum, TunnelCsum::Csum, TunnelCsum::RemCsum][csum as usize];
            let tunnel = match (forward, tun) {
                (Forward::Tunnel, 1) => TunnelConfig {
                    kind: TunnelType::Gue,
                    port: tun_port,
                    csum,
                },
                (Forward::Tunnel, 2) => TunnelConfig {
                    kind: TunnelType::Gre,
                    port: 0,
                    // ipvsadm takes no --tun-remcsum with gre.
                    csum: if csum == TunnelCsum::RemCsum {
                        TunnelCsum::Csum
                    } else {
                        csum
                    },
                },
                _ => TunnelConfig::default(),
            };
            DestConfig {
                addr,
                port,
                forward,
                weight,
                u_threshold: 0,
                l_threshold: 0,
                tunnel,
            }
        })
}

fn service_with_dests() -> impl Strategy<Value = (ServiceConfig, Vec<DestConfig>)> {
    service().prop_flat_map(|s| {
        let k = s.key;
        (Just(s), proptest::collection::vec(dest(k), 0..6))
    })
}

/// The model as sets: services sorted by their saved key text, real servers by address.
fn as_sets(r: &RuleSet) -> Vec<(ServiceConfig, Vec<DestConfig>)> {
    let mut v: Vec<_> = r
        .services()
        .map(|(s, d)| {
            let mut d = d.to_vec();
            d.sort_by_key(|d| (d.addr, d.port));
            (s.clone(), d)
        })
        .collect();
    v.sort_by_key(|(s, _)| s.key.to_string());
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn save_parse_save_is_identity(services in proptest::collection::vec(service_with_dests(), 0..6)) {
        let mut rules = RuleSet::new();
        for (svc, dests) in &services {
            if rules.apply(&Command::AddService(svc.clone())).is_err() {
                continue; // duplicate key
            }
            for d in dests {
                let _ = rules.apply(&Command::AddDest(svc.key, *d)); // duplicates refused
            }
        }
        let text = rules.save();
        let parsed = RuleSet::from_text(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(as_sets(&parsed), as_sets(&rules));
        prop_assert_eq!(parsed.save(), text.clone());
        let lines = text.lines().count();
        let expected: usize = rules.services().map(|(_, d)| 1 + d.len()).sum();
        prop_assert_eq!(lines, expected);
        // Restoring a sorted save lists real servers in reverse saved order.
        for (svc, dests) in parsed.services() {
            let saved: Vec<String> = text
                .lines()
                .filter(|l| l.starts_with(&format!("-a {} -r ", svc.key)))
                .map(|l| l.to_string())
                .collect();
            prop_assert_eq!(saved.len(), dests.len());
            let reversed: Vec<String> = dests
                .iter()
                .rev()
                .map(|d| lvs_core::rules::save::addr_port(d.addr, d.port))
                .collect();
            for (line, want) in saved.iter().zip(&reversed) {
                prop_assert_eq!(line.split(' ').nth(if svc.key.to_string().ends_with("-6") { 5 } else { 4 }), Some(want.as_str()));
            }
        }
    }

    #[test]
    fn arbitrary_edits_keep_the_set_savable(
        services in proptest::collection::vec(service_with_dests(), 1..4),
        edits in proptest::collection::vec((0usize..8, 0usize..8, any::<bool>()), 0..12),
    ) {
        let mut rules = RuleSet::new();
        for (svc, dests) in &services {
            let _ = rules.apply(&Command::AddService(svc.clone()));
            for d in dests {
                let _ = rules.apply(&Command::AddDest(svc.key, *d));
            }
        }
        for (si, di, delete) in edits {
            let Some((svc, dests)) = rules.services().nth(si % rules.len().max(1)) else { break };
            let key = svc.key;
            let Some(d) = dests.get(di % dests.len().max(1)).copied() else { continue };
            let cmd = if delete {
                Command::DeleteDest { service: key, addr: d.addr, port: d.port }
            } else {
                Command::EditDest(key, DestConfig { weight: (d.weight + 1) % 65536, ..d })
            };
            let before = rules.service(&key).unwrap().1.len();
            rules.apply(&cmd).unwrap();
            let after = rules.service(&key).unwrap().1.len();
            prop_assert_eq!(after + usize::from(delete), before);
        }
        let text = rules.save();
        let parsed = RuleSet::from_text(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(as_sets(&parsed), as_sets(&rules));
        prop_assert_eq!(parsed.save(), text);
    }
}
