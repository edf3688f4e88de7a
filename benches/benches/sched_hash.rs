//! Hashing schedulers: one decision of dh, sh and mh with 100 destinations, and building the mh
//! table for 1,000 destinations at M = 65521.
use std::hint::black_box;
use std::net::IpAddr;

use criterion::Criterion;
use lvs_core::sched::hash::hsiphash_u32;
use lvs_core::sched::mh::MH_HASH1;
use lvs_core::sched::{
    dh::Dh, mh::Mh, sh::Sh, DestChange, DestId, DestInfo, FlowKey, HashVariant, SchedContext,
    SchedFlags, Scheduler,
};
use lvs_core::{Instant, Protocol};

fn dests(n: u32) -> Vec<DestInfo> {
    (0..n)
        .map(|i| {
            let a = IpAddr::from((0x0A00_0000u32 + i).to_be_bytes());
            DestInfo::new(DestId(i), a, 80, 1 + i % 4)
        })
        .collect()
}

/// 1024 client flows, cycled through so that every decision hashes a different key.
fn flows() -> Vec<FlowKey> {
    (0..1024u32)
        .map(|i| {
            let c = IpAddr::from((0xC000_0000u32 ^ i.wrapping_mul(0x9E37_79B9)).to_be_bytes());
            let v = IpAddr::from((0xCB00_7100u32 + (i & 0xFF)).to_be_bytes());
            FlowKey::new(Protocol::Tcp, c, 1024 + i as u16, v, 80)
        })
        .collect()
}

fn decision(c: &mut Criterion, name: &str, mut s: Box<dyn Scheduler>) {
    let d = dests(100);
    s.update(&d, DestChange::Init);
    let fl = flows();
    let mut rng = rand_pcg::Pcg32::new(1, 1);
    let mut i = 0usize;
    c.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let mut ctx = SchedContext {
                now: Instant::ZERO,
                rng: &mut rng,
            };
            // `iter` passes the returned decision through `black_box` itself; a second one
            // here spills it and costs a failed store-to-load forward per iteration (see
            // sched_lc.rs).
            s.schedule(black_box(&d), &fl[i], &mut ctx)
        })
    });
}

pub fn benches(c: &mut Criterion) {
    decision(
        c,
        "sched_hash/dh/100",
        Box::new(Dh::new(HashVariant::Current)),
    );
    decision(
        c,
        "sched_hash/sh/100",
        Box::new(Sh::new(SchedFlags::SCHED2, HashVariant::Current)),
    );
    decision(
        c,
        "sched_hash/mh/100",
        Box::new(Mh::new(SchedFlags::SCHED2, 4093)),
    );

    // The floor of an mh decision: the kernel-exact hash alone (SipHash-1-3, 4 rounds).
    let mut v = 0u32;
    c.bench_function("sched_hash/hsiphash_u32", |b| {
        b.iter(|| {
            v = v.wrapping_add(0x9E37_79B9);
            black_box(hsiphash_u32(black_box(v), &MH_HASH1))
        })
    });

    let d = dests(1000);
    let mut mh = Mh::new(SchedFlags::empty(), 65521);
    c.bench_function("sched_hash/mh_build/1000x65521", |b| {
        b.iter(|| mh.update(black_box(&d), DestChange::Init))
    });
}
