//! sh and dh against direct transcriptions of `ip_vs_sh.c` and `ip_vs_dh.c`: the 256-bucket
//! tables dealt by `ip_vs_sh_reassign` / `ip_vs_dh_reassign` on bind, add, delete (and, for sh
//! only, edit), `ip_vs_sh_hashkey` with its offset and the client port of `sh-port`
//! (`ip_vs_sh_get_port`: TCP, UDP and SCTP only, the destination port for inverse packets),
//! `ip_vs_sh_get_fallback`'s probe, and dh's single lookup. Random lists, weights, OVERLOAD
//! flags, flags, families and flows; every decision must agree.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_core::protocol::Protocol;
use lvs_core::sched::{
    DestChange, DestFlags, DestId, DestInfo, FlowKey, SchedConfig, SchedContext, SchedFlags,
    SchedKind,
};
use lvs_core::time::Instant;
use proptest::prelude::*;
use rand_pcg::Pcg32;

const TAB_SIZE: usize = 256;
const TAB_MASK: u32 = 255;

/// `ntohl(addr_fold)`.
fn fold(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            (0..4)
                .map(|i| u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]))
                .fold(0, |x, w| x ^ w)
        }
    }
}

/// `hash_32(val, 8)`.
fn hash_32_8(val: u32) -> u32 {
    val.wrapping_mul(0x61C8_8647) >> 24
}

/// The dealt table: bucket → list position (`None`: empty).
type Table = [Option<usize>; TAB_SIZE];

/// `ip_vs_sh_reassign`.
fn sh_reassign(dests: &[DestInfo]) -> Table {
    let mut t = [None; TAB_SIZE];
    if dests.is_empty() {
        return t;
    }
    let mut p = 0usize;
    let mut d_count: i32 = 0;
    for slot in t.iter_mut() {
        *slot = Some(p);
        d_count += 1;
        if d_count >= dests[p].weight as i32 {
            p = (p + 1) % dests.len();
            d_count = 0;
        }
    }
    t
}

/// `ip_vs_dh_reassign`.
fn dh_reassign(dests: &[DestInfo]) -> Table {
    let mut t = [None; TAB_SIZE];
    if !dests.is_empty() {
        for (i, slot) in t.iter_mut().enumerate() {
            *slot = Some(i % dests.len());
        }
    }
    t
}

/// `ip_vs_sh_hashkey(af, addr, port, offset)`.
fn sh_hashkey(addr: IpAddr, port: u16, offset: u32) -> u32 {
    (offset.wrapping_add(hash_32_8(u32::from(port).wrapping_add(fold(addr))))) & TAB_MASK
}

fn is_unavailable(d: &DestInfo) -> bool {
    d.weight as i32 <= 0 || d.flags.contains(DestFlags::OVERLOAD)
}

/// `ip_vs_sh_schedule`.
fn k_sh(t: &Table, flags: SchedFlags, dests: &[DestInfo], f: &FlowKey) -> Option<usize> {
    let addr = if f.inverse { f.daddr } else { f.saddr };
    let port = if flags.contains(SchedFlags::SCHED2) {
        match f.protocol {
            Protocol::Tcp | Protocol::Udp | Protocol::Sctp => {
                if f.inverse {
                    f.dport
                } else {
                    f.sport
                }
            }
            _ => 0,
        }
    } else {
        0
    };
    let ihash = sh_hashkey(addr, port, 0);
    let first = t[ihash as usize]?;
    if flags.contains(SchedFlags::SCHED1) {
        // ip_vs_sh_get_fallback
        if !is_unavailable(&dests[first]) {
            return Some(first);
        }
        for offset in 0..TAB_SIZE as u32 {
            let roffset = (offset + ihash) % TAB_SIZE as u32;
            let hash = sh_hashkey(addr, port, roffset);
            let d = t[hash as usize]?;
            if !is_unavailable(&dests[d]) {
                return Some(d);
            }
        }
        None
    } else {
        (!is_unavailable(&dests[first])).then_some(first)
    }
}

/// `ip_vs_dh_schedule`.
fn k_dh(t: &Table, dests: &[DestInfo], f: &FlowKey) -> Option<usize> {
    let d = t[hash_32_8(fold(f.daddr)) as usize]?;
    let dest = &dests[d];
    (dest.flags.contains(DestFlags::AVAILABLE)
        && dest.weight as i32 > 0
        && !dest.flags.contains(DestFlags::OVERLOAD))
    .then_some(d)
}

fn addr(v6: bool, x: u32) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            (x >> 16) as u16,
            0,
            x as u16,
            0,
            0,
            (x ^ 0x5a5a) as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::from(x))
    }
}

#[derive(Clone, Debug)]
enum Op {
    Add(u32, bool),
    Remove(usize),
    Edit(usize, u32),
    Overload(usize, bool),
    Flow {
        proto: u8,
        v6: bool,
        saddr: u32,
        sport: u16,
        daddr: u32,
        dport: u16,
        inverse: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u32..6, prop::bool::weighted(0.2)).prop_map(|(w, o)| Op::Add(w, o)),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => (any::<usize>(), prop_oneof![0u32..6, 250u32..300]).prop_map(|(i, w)| Op::Edit(i, w)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, o)| Op::Overload(i, o)),
        8 => (0u8..4, prop::bool::weighted(0.2), any::<u32>(), any::<u16>(), any::<u32>(),
              any::<u16>(), prop::bool::weighted(0.2))
            .prop_map(|(proto, v6, saddr, sport, daddr, dport, inverse)| Op::Flow {
                proto, v6, saddr, sport, daddr, dport, inverse,
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sh_and_dh_match_the_kernel(
        flag_bits in 0u8..4,
        initial in prop::collection::vec(0u32..6, 0..8),
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let flags = SchedFlags::from_bits_truncate(flag_bits << 3);
        let cfg = SchedConfig::default();
        let mut sh = SchedKind::Sh.build(flags, &cfg);
        let mut dh = SchedKind::Dh.build(flags, &cfg);
        let mut next = 0u32;
        let mut mk = |w: u32, o: bool| {
            next += 1;
            let mut d = DestInfo::new(DestId(next), IpAddr::V4(Ipv4Addr::from(next)), 80, w);
            d.flags.set(DestFlags::OVERLOAD, o);
            d
        };
        let mut dests: Vec<DestInfo> = initial.iter().map(|&w| mk(w, false)).collect();
        sh.update(&dests, DestChange::Init);
        dh.update(&dests, DestChange::Init);
        let (mut sh_t, mut dh_t) = (sh_reassign(&dests), dh_reassign(&dests));
        let mut rng = Pcg32::new(1, 1);
        for op in ops {
            let len = dests.len();
            match op {
                Op::Add(w, o) => {
                    dests.insert(0, mk(w, o));
                    sh.update(&dests, DestChange::Added { pos: 0 });
                    dh.update(&dests, DestChange::Added { pos: 0 });
                    sh_t = sh_reassign(&dests);
                    dh_t = dh_reassign(&dests);
                }
                Op::Flow { proto, v6, saddr, sport, daddr, dport, inverse } => {
                    let protocol = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp, Protocol::Ip]
                        [proto as usize];
                    let mut f = FlowKey::new(
                        protocol,
                        addr(v6, saddr),
                        if protocol.has_ports() { sport } else { 0 },
                        addr(v6, daddr),
                        if protocol.has_ports() { dport } else { 0 },
                    );
                    f.inverse = inverse;
                    let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut rng };
                    prop_assert_eq!(sh.schedule(&dests, &f, &mut ctx), k_sh(&sh_t, flags, &dests, &f));
                    prop_assert_eq!(dh.schedule(&dests, &f, &mut ctx), k_dh(&dh_t, &dests, &f));
                }
                _ if len == 0 => {}
                Op::Remove(i) => {
                    let pos = i % len;
                    let id = dests.remove(pos).id;
                    sh.update(&dests, DestChange::Removed { pos, id });
                    dh.update(&dests, DestChange::Removed { pos, id });
                    sh_t = sh_reassign(&dests);
                    dh_t = dh_reassign(&dests);
                }
                Op::Edit(i, w) => {
                    let pos = i % len;
                    dests[pos].weight = w;
                    sh.update(&dests, DestChange::Edited { pos });
                    dh.update(&dests, DestChange::Edited { pos });
                    // sh has upd_dest; dh does not.
                    sh_t = sh_reassign(&dests);
                }
                Op::Overload(i, o) => {
                    let pos = i % len;
                    dests[pos].flags.set(DestFlags::OVERLOAD, o);
                    sh.counts_changed(&dests, pos);
                    dh.counts_changed(&dests, pos);
                }
            }
        }
    }
}
