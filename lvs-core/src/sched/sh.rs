//! sh: source hashing (`ip_vs_sh.c`, spec §1.10).
//!
//! A 256-bucket table maps the hash of the client address (plus, with `sh-port`, the client
//! port) to a destination. The table is re-laid on bind, add, delete and edit: the walker deals
//! each destination `weight` consecutive buckets (at least one, so a weight-0 destination still
//! owns one bucket per cycle) in list order, cycling until all 256 buckets are dealt.
//!
//! A destination is unavailable when its weight is 0 or it is OVERLOAD (the current kernel does
//! not test AVAILABLE here). Without `sh-fallback` an unavailable or empty bucket means no
//! destination. With `sh-fallback` the kernel probes `offset = 0..255` at bucket
//! `((offset + ihash) mod 256 + ihash) & 255`: it reuses the bucket hash with an offset, so the
//! probe walk starts at `2 * ihash`, not at `ihash + 1` (a kernel quirk kept on purpose). The
//! first available destination wins; an empty bucket ends the search.
//!
//! sh is modular, not consistent: removing one of `n` equal-weight destinations re-deals every
//! bucket, so most clients move (see the `sched_hash` tests for what it does exactly).

use core::net::IpAddr;

use super::dh::EMPTY;
use super::hash::{addr_fold, bucket};
use super::{
    DestChange, DestInfo, FlowKey, HashVariant, SchedContext, SchedFlags, SchedKind, Scheduler,
};

/// `IP_VS_SH_TAB_BITS` (`CONFIG_IP_VS_SH_TAB_BITS`, default 8).
pub const SH_TAB_BITS: u32 = 8;
/// `IP_VS_SH_TAB_SIZE`: 256 buckets.
pub const SH_TAB_SIZE: usize = 1 << SH_TAB_BITS;
const SH_TAB_MASK: u32 = SH_TAB_SIZE as u32 - 1;

/// The source-hashing scheduler.
///
/// ```
/// use lvs_core::sched::{sh::Sh, DestChange, DestId, DestInfo, FlowKey, HashVariant,
///                       SchedContext, SchedFlags, Scheduler};
/// use lvs_core::{Instant, Protocol};
/// let ip = |s: &str| s.parse().unwrap();
/// let dests = vec![
///     DestInfo::new(DestId(3), ip("10.0.0.3"), 80, 1), // C
///     DestInfo::new(DestId(2), ip("10.0.0.2"), 80, 1), // B
///     DestInfo::new(DestId(1), ip("10.0.0.1"), 80, 1), // A
/// ];
/// let mut sh = Sh::new(SchedFlags::empty(), HashVariant::Current);
/// sh.update(&dests, DestChange::Init);
/// // Client 192.168.1.10 → bucket 248 → A (spec vector H2).
/// let flow = FlowKey::new(Protocol::Tcp, ip("192.168.1.10"), 40000, ip("10.1.1.1"), 80);
/// let mut rng = rand_pcg::Pcg32::new(1, 1);
/// let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut rng };
/// assert_eq!(sh.schedule(&dests, &flow, &mut ctx), Some(2));
/// ```
#[derive(Clone, Debug)]
pub struct Sh {
    flags: SchedFlags,
    hash: HashVariant,
    /// Bucket → list position, [`EMPTY`] when the list is empty.
    table: [u32; SH_TAB_SIZE],
}

impl Sh {
    /// An sh scheduler with the service's scheduler flags (`sh-fallback` = SCHED1, `sh-port` =
    /// SCHED2) and bucket hash generation. Bind it with `update(dests, DestChange::Init)`.
    pub fn new(flags: SchedFlags, hash: HashVariant) -> Self {
        Sh {
            flags,
            hash,
            table: [EMPTY; SH_TAB_SIZE],
        }
    }

    /// The list position each bucket maps to (`None` for an empty bucket).
    pub fn buckets(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        self.table
            .iter()
            .map(|&p| (p != EMPTY).then_some(p as usize))
    }

    /// `ip_vs_sh_hashkey(addr, port, 0)`: the primary bucket of a client address and port
    /// (pass port 0 unless `sh-port` is set).
    #[inline]
    pub fn bucket_of(&self, addr: IpAddr, port: u16) -> usize {
        // (port + addr) wraps in 32 bits in both generations.
        let key = (port as u32).wrapping_add(addr_fold(addr));
        bucket(self.hash, key, SH_TAB_BITS) as usize
    }

    /// `ip_vs_sh_reassign`.
    fn reassign(&mut self, dests: &[DestInfo]) {
        if dests.is_empty() {
            self.table = [EMPTY; SH_TAB_SIZE];
            return;
        }
        let mut p = 0usize;
        let mut d_count: u64 = 0;
        for slot in self.table.iter_mut() {
            *slot = p as u32;
            // Don't move to the next dest until it got `weight` buckets; the count is
            // compared after the increment, so weight 0 still gets one bucket.
            d_count += 1;
            if d_count >= dests[p].weight as u64 {
                p += 1;
                if p == dests.len() {
                    p = 0;
                }
                d_count = 0;
            }
        }
    }

    #[inline]
    fn usable(d: &DestInfo) -> bool {
        // `is_unavailable`: weight <= 0 or OVERLOAD.
        d.weight > 0 && !d.is_overloaded()
    }
}

impl Scheduler for Sh {
    fn kind(&self) -> SchedKind {
        SchedKind::Sh
    }

    fn set_flags(&mut self, flags: SchedFlags) {
        self.flags = flags;
    }

    fn update(&mut self, dests: &[DestInfo], _change: DestChange) {
        // sh re-lays its table on init, add, delete and edit alike.
        self.reassign(dests);
    }

    fn schedule(
        &mut self,
        dests: &[DestInfo],
        flow: &FlowKey,
        _ctx: &mut SchedContext<'_>,
    ) -> Option<usize> {
        let port = if self.flags.port() {
            flow.client_port()
        } else {
            0
        };
        let ihash = self.bucket_of(flow.client_addr(), port) as u32;
        let pos = self.table[ihash as usize];
        let d = dests.get(pos as usize)?;
        if Self::usable(d) {
            return Some(pos as usize);
        }
        if !self.flags.fallback() {
            return None;
        }
        // ip_vs_sh_get_fallback: roffset = (offset + ihash) % 256, then the bucket hash is
        // recomputed with that offset added: (roffset + ihash) & 255.
        for offset in 0..SH_TAB_SIZE as u32 {
            let roffset = (offset + ihash) & SH_TAB_MASK;
            let b = (roffset + ihash) & SH_TAB_MASK;
            let pos = self.table[b as usize];
            let d = dests.get(pos as usize)?;
            if Self::usable(d) {
                return Some(pos as usize);
            }
        }
        None
    }
}
