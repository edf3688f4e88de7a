//! mh: Maglev hashing (`ip_vs_mh.c`, since Linux 4.18; spec §1.11).
//!
//! A lookup table of M slots (M a prime of [`MH_PRIMES`], default 4093) maps the hash of the
//! client address (plus, with `mh-port`, the client port) to a destination. The table is
//! rebuilt on bind, add, delete and edit, exactly as the kernel populates it:
//!
//! - hash = `hsiphash` of the 4-byte value `offset + port + addr` (host order, addr IPv6-folded)
//!   with the fixed keys [`MH_HASH1`] and [`MH_HASH2`], as on a 64-bit little-endian kernel
//!   (SipHash-1-3; 32-bit and big-endian kernels build different tables);
//! - each destination's permutation starts at `hash1(port + addr) mod M` and advances by
//!   `hash2(port + addr) mod (M − 1) + 1`;
//! - weights are the destinations' **`last_weight`** (so quiescing to weight 0 keeps the table);
//!   `turns = (last_weight / gcd) >> rshift`, at least 1 when `last_weight ≠ 0`, where `rshift`
//!   keeps the largest `last_weight / gcd` within `IP_VS_MH_TAB_BITS` bits;
//! - population repeats rounds over the list in order, each destination with `turns ≥ 1` claiming
//!   `turns` slots in a row (its next free preferred slot each), until all M slots are taken.
//!
//! A decision is one hsiphash and one table read; unavailable = weight 0 or OVERLOAD. With
//! `mh-fallback` an unavailable destination triggers the kernel's genuine rehash: for
//! `offset = 0..M−1` the slot `hash1(((offset + ihash) mod M) + port + addr) mod M` is tried;
//! the first available destination wins, an empty slot ends the search.
//!
//! At most M destinations are accepted ([`Scheduler::max_dests`]).
//!
//! Mixed address families: the kernel folds a real server's address by the *service's* family.
//! For an IPv6 real server behind an IPv4 service (tunnel forwarding) it hashes only the first
//! 32-bit word of the address; here every address is folded by its own family (all four words
//! for IPv6), because the scheduler is not told the service's family. Same-family services,
//! and IPv4 real servers behind IPv6 services, hash exactly as the kernel does.

use core::net::IpAddr;

use super::hash::{addr_fold, hsiphash_u32, HsiphashKey};
use super::{DestChange, DestInfo, FlowKey, SchedContext, SchedFlags, SchedKind, Scheduler};

/// The table sizes the kernel allows (`primes[]` of `ip_vs_mh.c`), indexed by
/// `CONFIG_IP_VS_MH_TAB_INDEX − 8`.
pub const MH_PRIMES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];

/// The default table size (`CONFIG_IP_VS_MH_TAB_INDEX` = 12).
pub const MH_DEFAULT_TABLE_SIZE: u32 = 4093;

/// Index of [`MH_DEFAULT_TABLE_SIZE`] in [`MH_PRIMES`].
const MH_DEFAULT_INDEX: usize = 4;
const _: () = assert!(MH_PRIMES[MH_DEFAULT_INDEX] == MH_DEFAULT_TABLE_SIZE);

fn prime_index(m: u32) -> Option<usize> {
    MH_PRIMES.iter().position(|&p| p == m)
}

/// `hash1`: the key of the offsets and of the lookup (`{2654435761, 2654435761}`).
pub const MH_HASH1: HsiphashKey = HsiphashKey::new(2_654_435_761, 2_654_435_761);
/// `hash2`: the key of the skips (`{2654446892, 2654446892}`).
pub const MH_HASH2: HsiphashKey = HsiphashKey::new(2_654_446_892, 2_654_446_892);

/// Marks an empty slot.
const EMPTY: u32 = u32::MAX;

/// `ip_vs_mh_hashkey`: `hsiphash(offset + port + addr)` with the given key.
#[inline]
pub fn mh_hashkey(addr: IpAddr, port: u16, key: &HsiphashKey, offset: u32) -> u32 {
    let v = offset
        .wrapping_add(port as u32)
        .wrapping_add(addr_fold(addr));
    hsiphash_u32(v, key)
}

/// `a % d` for a fixed divisor without a division instruction (Lemire, Kaser & Kurz, "Faster
/// remainder by direct computation", 2019): exact for every 32-bit `a` and `d >= 2`. The lookup
/// takes a remainder by M on every decision; a hardware division would cost about as much as
/// the hash itself.
#[derive(Clone, Copy, Debug)]
struct FastMod {
    magic: u64,
    d: u32,
}

impl FastMod {
    const fn new(d: u32) -> Self {
        FastMod {
            magic: u64::MAX / d as u64 + 1,
            d,
        }
    }

    #[inline(always)]
    fn rem(self, a: u32) -> u32 {
        let low = self.magic.wrapping_mul(a as u64);
        ((low as u128 * self.d as u128) >> 64) as u32
    }
}

/// One destination's permutation (`struct ip_vs_mh_dest_setup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MhPermutation {
    /// First preferred slot: `hash1(port + addr) mod M`.
    pub offset: u32,
    /// Step between preferred slots: `hash2(port + addr) mod (M − 1) + 1`.
    pub skip: u32,
    /// Slots claimed per population round.
    pub turns: u32,
}

/// The Maglev-hashing scheduler.
///
/// ```
/// use lvs_core::sched::{mh::Mh, DestChange, DestId, DestInfo, FlowKey, SchedContext,
///                       SchedFlags, Scheduler};
/// use lvs_core::{Instant, Protocol};
/// let ip = |s: &str| s.parse().unwrap();
/// // R1, R2, R3 added in that order: list [R3, R2, R1] (spec vector M1).
/// let dests = vec![
///     DestInfo::new(DestId(3), ip("10.0.0.3"), 80, 1),
///     DestInfo::new(DestId(2), ip("10.0.0.2"), 80, 1),
///     DestInfo::new(DestId(1), ip("10.0.0.1"), 80, 1),
/// ];
/// let mut mh = Mh::new(SchedFlags::empty(), 4093);
/// mh.update(&dests, DestChange::Init);
/// let flow = FlowKey::new(Protocol::Tcp, ip("192.168.1.10"), 40000, ip("10.1.1.1"), 80);
/// let mut rng = rand_pcg::Pcg32::new(1, 1);
/// let mut ctx = SchedContext { now: Instant::ZERO, rng: &mut rng };
/// assert_eq!(mh.slot_of(ip("192.168.1.10"), 0), 3323);
/// assert_eq!(mh.schedule(&dests, &flow, &mut ctx), Some(2)); // R1
/// ```
#[derive(Clone, Debug)]
pub struct Mh {
    flags: SchedFlags,
    /// `0xFFFF` with `mh-port`, else 0: the mask of the client port in the hashed value.
    port_mask: u32,
    /// M.
    size: u32,
    /// `x % M`.
    modm: FastMod,
    /// `IP_VS_MH_TAB_BITS` = `CONFIG_IP_VS_MH_TAB_INDEX / 2` for this M.
    tab_bits: u32,
    /// Slot → list position, [`EMPTY`] when unpopulated.
    lookup: Vec<u32>,
    /// Whether each list position is usable (weight > 0, not OVERLOAD), kept current by
    /// [`Scheduler::update`] and [`Scheduler::counts_changed`]: a decision reads one byte
    /// instead of the destination's weight and flags (no multiply by the record size on the
    /// path from the hash to the answer).
    usable: Vec<bool>,
    /// Scratch for the rebuild (kept to avoid reallocating on every change): a bitmap of the
    /// slots already claimed (M/8 bytes, so it stays in L1 while the population probes it).
    taken: Vec<u64>,
    setup: Vec<MhSetup>,
    gcd: u32,
    rshift: u32,
}

#[derive(Clone, Copy, Debug)]
struct MhSetup {
    skip: u32,
    perm: u32,
    turns: u32,
}

impl Mh {
    /// An mh scheduler with the service's scheduler flags (`mh-fallback` = SCHED1, `mh-port` =
    /// SCHED2) and table size M.
    ///
    /// M must be one of [`MH_PRIMES`] (the kernel only builds with those); any other value falls
    /// back to the default 4093, because a non-prime M would break the permutations (a skip
    /// sharing a factor with M does not visit every slot) and the kernel cannot be configured
    /// with it. Use [`Mh::try_new`] to reject it instead.
    pub fn new(flags: SchedFlags, table_size: u32) -> Self {
        let index = prime_index(table_size).unwrap_or(MH_DEFAULT_INDEX);
        Self::with_index(flags, index)
    }

    /// Like [`Mh::new`], but an M outside [`MH_PRIMES`] is an error.
    ///
    /// ```
    /// use lvs_core::sched::{mh::Mh, SchedFlags};
    /// assert!(Mh::try_new(SchedFlags::empty(), 65521).is_ok());
    /// assert!(Mh::try_new(SchedFlags::empty(), 4096).is_err());
    /// ```
    pub fn try_new(flags: SchedFlags, table_size: u32) -> Result<Self, InvalidMhTableSize> {
        let index = prime_index(table_size).ok_or(InvalidMhTableSize(table_size))?;
        Ok(Self::with_index(flags, index))
    }

    /// `index` into [`MH_PRIMES`] (in range).
    fn with_index(flags: SchedFlags, index: usize) -> Self {
        let table_size = MH_PRIMES[index];
        // CONFIG_IP_VS_MH_TAB_INDEX = index + 8; IP_VS_MH_TAB_BITS = that / 2.
        let tab_bits = (index as u32 + 8) / 2;
        Mh {
            flags,
            port_mask: if flags.port() { 0xffff } else { 0 },
            size: table_size,
            modm: FastMod::new(table_size),
            tab_bits,
            lookup: vec![EMPTY; table_size as usize],
            usable: Vec::new(),
            taken: Vec::new(),
            setup: Vec::new(),
            gcd: 0,
            rshift: 0,
        }
    }

    /// The table size M.
    pub fn table_size(&self) -> u32 {
        self.size
    }

    /// The gcd of the positive `last_weight`s at the last rebuild (0: none).
    pub fn gcd(&self) -> u32 {
        self.gcd
    }

    /// The weight shift at the last rebuild.
    pub fn rshift(&self) -> u32 {
        self.rshift
    }

    /// The list position in each slot (`None`: empty table).
    pub fn slots(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        self.lookup
            .iter()
            .map(|&p| (p != EMPTY).then_some(p as usize))
    }

    /// The primary slot of a client address and port (pass port 0 unless `mh-port` is set).
    #[inline]
    pub fn slot_of(&self, addr: IpAddr, port: u16) -> u32 {
        self.modm.rem(mh_hashkey(addr, port, &MH_HASH1, 0))
    }

    /// The permutation of one destination (its offset and skip depend only on its address and
    /// port; its turns on the current weights, see [`Mh::permutations`]).
    pub fn permutation_of(&self, addr: IpAddr, port: u16) -> (u32, u32) {
        let offset = mh_hashkey(addr, port, &MH_HASH1, 0) % self.size;
        let skip = mh_hashkey(addr, port, &MH_HASH2, 0) % (self.size - 1) + 1;
        (offset, skip)
    }

    /// The permutations of `dests` (list order) as the last rebuild computed them.
    pub fn permutations(&self, dests: &[DestInfo]) -> Vec<MhPermutation> {
        let (gcd, rshift) = (self.gcd, self.rshift);
        dests
            .iter()
            .map(|d| {
                let (offset, skip) = self.permutation_of(d.addr, d.port);
                MhPermutation {
                    offset,
                    skip,
                    turns: turns(d.last_weight, gcd, rshift),
                }
            })
            .collect()
    }

    fn reset(&mut self) {
        self.lookup.fill(EMPTY);
    }

    /// `ip_vs_mh_dest_changed`: gcd, shift, permutations, population.
    fn rebuild(&mut self, dests: &[DestInfo]) {
        // The kernel refuses (EINVAL) more than M destinations before touching the table; the
        // director is expected to enforce `max_dests`. Should it not, an empty table (every
        // lookup → no destination) is used rather than stale positions.
        if dests.len() > self.size as usize {
            self.gcd = 0;
            self.rshift = 0;
            self.reset();
            return;
        }
        self.gcd = gcd_weight(dests);
        self.rshift = shift_weight(dests, self.gcd, self.tab_bits);
        if self.gcd < 1 {
            self.reset();
            return;
        }
        let m = self.size;
        self.setup.clear();
        for d in dests {
            let (offset, skip) = self.permutation_of(d.addr, d.port);
            self.setup.push(MhSetup {
                skip,
                perm: offset,
                turns: turns(d.last_weight, self.gcd, self.rshift),
            });
        }
        self.taken.clear();
        self.taken.resize((m as usize).div_ceil(64), 0);
        // Plain slices and a local cursor, so the probe loop keeps everything in registers.
        let taken: &mut [u64] = &mut self.taken;
        let lookup: &mut [u32] = &mut self.lookup;
        let setup: &mut [MhSetup] = &mut self.setup;

        // ip_vs_mh_populate: rounds over the list until all M slots are filled. gcd ≥ 1 means
        // some destination has turns ≥ 1, so every round fills at least one slot.
        let mut n: u32 = 0;
        'fill: loop {
            let mut i = 0;
            let mut dt_count = 0;
            while i < setup.len() {
                let ds = &mut setup[i];
                if ds.turns < 1 {
                    i += 1;
                    continue;
                }
                // Advance to the destination's next preferred slot that is still free.
                let (skip, mut c) = (ds.skip, ds.perm);
                loop {
                    let (word, bit) = ((c >> 6) as usize, 1u64 << (c & 63));
                    if taken[word] & bit == 0 {
                        taken[word] |= bit;
                        break;
                    }
                    c += skip;
                    if c >= m {
                        c -= m;
                    }
                }
                ds.perm = c;
                lookup[c as usize] = i as u32;
                n += 1;
                if n == m {
                    break 'fill;
                }
                dt_count += 1;
                if dt_count >= ds.turns {
                    dt_count = 0;
                    i += 1;
                }
            }
        }
    }

    /// `port + addr` of the client: its address folded to 32 bits, plus its port with
    /// `mh-port` (0 without, and for protocols without ports). The same value as
    /// `client_port() + addr_fold(client_addr())`, written as one selection of the flow's side
    /// so that a forward IPv4 flow costs a few loads.
    #[inline(always)]
    fn client_base(&self, flow: &FlowKey) -> u32 {
        let (addr, port) = if flow.inverse {
            (&flow.daddr, flow.dport)
        } else {
            (&flow.saddr, flow.sport)
        };
        let mask = if flow.protocol.has_ports() {
            self.port_mask
        } else {
            0
        };
        let folded = match addr {
            IpAddr::V4(a) => u32::from(*a),
            IpAddr::V6(_) => addr_fold(*addr),
        };
        folded.wrapping_add(u32::from(port) & mask)
    }

    #[inline]
    fn usable(d: &DestInfo) -> bool {
        // `is_unavailable`: weight <= 0 or OVERLOAD.
        d.weight > 0 && !d.is_overloaded()
    }

    /// `ip_vs_mh_get_fallback`: a genuine rehash with the offset folded into the hashed value,
    /// `base` being `port + addr`, `ihash` the client's primary slot and `len` the length of
    /// the destination list. Out of line and cold:
    /// it runs only when the primary destination is unavailable, and keeping its loop out of
    /// [`Scheduler::schedule`] spares every decision the loop's register saves.
    #[cold]
    #[inline(never)]
    fn fallback(&self, len: usize, base: u32, ihash: u32) -> Option<usize> {
        for offset in 0..self.size {
            // (offset + ihash) % M; both are below M, so one conditional subtraction.
            let mut roffset = offset + ihash;
            if roffset >= self.size {
                roffset -= self.size;
            }
            let v = roffset.wrapping_add(base);
            let slot = self.modm.rem(hsiphash_u32(v, &MH_HASH1));
            let pos = *self.lookup.get(slot as usize)? as usize;
            if pos >= len {
                return None;
            }
            if *self.usable.get(pos)? {
                return Some(pos);
            }
        }
        None
    }
}

/// The table size is not one of the kernel's primes ([`MH_PRIMES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("mh table size {0} is not one of 251 509 1021 2039 4093 8191 16381 32749 65521 131071")]
pub struct InvalidMhTableSize(pub u32);

/// `ip_vs_mh_gcd_weight`: gcd of the positive `last_weight`s, 0 if none.
fn gcd_weight(dests: &[DestInfo]) -> u32 {
    let mut g = 0u32;
    for d in dests {
        let w = d.last_weight;
        if w > 0 {
            g = if g > 0 { gcd(w, g) } else { w };
        }
    }
    g
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `ip_vs_mh_shift_weight`: `max(fls(max_last_weight / gcd) − tab_bits, 0)`.
fn shift_weight(dests: &[DestInfo], gcd: u32, tab_bits: u32) -> u32 {
    if gcd < 1 {
        return 0;
    }
    let max = dests.iter().map(|d| d.last_weight).max().unwrap_or(0);
    let mw = max / gcd;
    let fls = 32 - mw.leading_zeros();
    fls.saturating_sub(tab_bits)
}

/// `((lw / gcd) >> rshift) ?: (lw != 0)`.
fn turns(last_weight: u32, gcd: u32, rshift: u32) -> u32 {
    if gcd == 0 {
        return 0;
    }
    let t = (last_weight / gcd) >> rshift;
    if t != 0 {
        t
    } else {
        (last_weight != 0) as u32
    }
}

impl Scheduler for Mh {
    fn kind(&self) -> SchedKind {
        SchedKind::Mh
    }

    fn set_flags(&mut self, flags: SchedFlags) {
        self.flags = flags;
        self.port_mask = if flags.port() { 0xffff } else { 0 };
    }

    fn update(&mut self, dests: &[DestInfo], _change: DestChange) {
        self.usable.clear();
        self.usable.extend(dests.iter().map(Self::usable));
        // mh rebuilds on init, add, delete and edit alike (an edit that only quiesces keeps
        // last_weight, so the table comes out the same).
        self.rebuild(dests);
    }

    fn counts_changed(&mut self, dests: &[DestInfo], pos: usize) {
        if let (Some(u), Some(d)) = (self.usable.get_mut(pos), dests.get(pos)) {
            *u = Self::usable(d);
        }
    }

    fn schedule(
        &mut self,
        dests: &[DestInfo],
        flow: &FlowKey,
        _ctx: &mut SchedContext<'_>,
    ) -> Option<usize> {
        // `port + addr`, the value every probe of this client hashes (plus its offset).
        let base = self.client_base(flow);
        let ihash = self.modm.rem(hsiphash_u32(base, &MH_HASH1));
        let pos = *self.lookup.get(ihash as usize)? as usize;
        if pos >= dests.len() {
            return None;
        }
        if *self.usable.get(pos)? {
            Some(pos)
        } else if self.flags.fallback() {
            self.fallback(dests.len(), base, ihash)
        } else {
            None
        }
    }

    fn max_dests(&self) -> usize {
        self.size as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_mod_is_exact() {
        let mut x = 0x1234_5678u32;
        for d in MH_PRIMES.into_iter().chain([2, 3, 4092, 65520, u32::MAX]) {
            let f = FastMod::new(d);
            for a in [
                0,
                1,
                d - 1,
                d,
                d.wrapping_add(1),
                u32::MAX,
                u32::MAX - 1,
                1 << 31,
            ] {
                assert_eq!(f.rem(a), a % d, "{a} % {d}");
            }
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                assert_eq!(f.rem(x), x % d, "{x} % {d}");
            }
        }
    }

    #[test]
    fn tab_bits_follow_the_config_index() {
        assert_eq!(Mh::new(SchedFlags::empty(), 4093).tab_bits, 6);
        assert_eq!(Mh::new(SchedFlags::empty(), 251).tab_bits, 4);
        assert_eq!(Mh::new(SchedFlags::empty(), 65521).tab_bits, 8);
        assert_eq!(Mh::new(SchedFlags::empty(), 131071).tab_bits, 8);
    }

    #[test]
    fn invalid_size_falls_back_to_default() {
        let mh = Mh::new(SchedFlags::empty(), 1000);
        assert_eq!(mh.table_size(), 4093);
        assert_eq!(mh.max_dests(), 4093);
        assert_eq!(
            Mh::try_new(SchedFlags::empty(), 0).unwrap_err(),
            InvalidMhTableSize(0)
        );
    }

    #[test]
    fn turns_and_shift() {
        assert_eq!(turns(0, 1, 0), 0);
        assert_eq!(turns(1, 0, 0), 0);
        assert_eq!(turns(3, 1, 2), 1); // 3 >> 2 = 0 → 1 because last_weight ≠ 0
        assert_eq!(turns(200, 2, 1), 50);
        assert_eq!(gcd(12, 18), 6);
        // max 65535 / gcd 1: fls = 16, bits 6 → shift 10.
        let d = |w| DestInfo::new(super::super::DestId(0), "1.1.1.1".parse().unwrap(), 0, w);
        assert_eq!(shift_weight(&[d(65535), d(1)], 1, 6), 10);
        assert_eq!(shift_weight(&[d(63), d(1)], 1, 6), 0);
        assert_eq!(shift_weight(&[d(64), d(1)], 1, 6), 1);
    }
}
