//! The connection table's indexes: open addressing with linear probing over one array of
//! `u32` words, each holding a slab slot number plus, in the bits the capacity leaves free,
//! the entry's distance from its home bucket and a few bits of its hash (a tag).
//!
//! Why not `hashbrown::HashTable<u32>`: its control bytes and its buckets live in two
//! separate arrays, so a lookup in a table larger than the caches misses twice before it
//! reaches the slab entry (control group, then bucket). Here the word that says "maybe" is
//! the word that names the slot: one miss in the index, then the entry. The array is also
//! smaller (4 bytes per bucket instead of 5).
//!
//! - **Sizing**: the bucket count is the power of two above `capacity * 8 / 7` (hashbrown's
//!   own bound), so the load never exceeds 7/8 and a probe always ends at an empty word.
//! - **Word**: `slot | (dist + 1) << slot_bits | tag << (slot_bits + dist_bits)`, with
//!   `slot_bits` the bits of `capacity`. `dist + 1` (up to 6 bits, at least 1: the capacity
//!   leaves at least one bit) saturates: a saturated distance is recomputed from the entry's
//!   hash when needed. The distance field of an entry is never 0, so no word of an entry is
//!   [`EMPTY`] (0), and an empty index is all zeros, which the allocator hands out without
//!   writing it (`calloc`, fresh pages): a table built for millions of flows does not fill
//!   tens of megabytes before its first packet, and its pages are committed as entries
//!   reach them.
//! - **Lookup**: from the home bucket (the hash's top bits) to the first empty word; only
//!   words whose tag equals the hash's low bits are compared with the slab entry.
//! - **Removal**: backward shift (Knuth's algorithm R), so there are no tombstones and the
//!   index never degrades or needs rebuilding under churn.
//! - **Growth** (optional, [`SlotIndex::growing`]): the index starts small and doubles, up to
//!   the size the capacity needs, when an insertion would take the load above 7/8; the
//!   entries are re-inserted cluster by cluster, from an empty bucket on, so entries of one
//!   home bucket keep their order (a lookup finds the same first match as before). A driver
//!   whose capacity is only a loose upper bound then keeps an index as small as its live
//!   entries, and lookups stay in the CPU caches.

/// An unused bucket (see the module docs: no entry's word is 0).
const EMPTY: u32 = 0;
/// Most bits spent on the distance from the home bucket.
const MAX_DIST_BITS: u32 = 6;
/// Buckets of a growing index at first (64 KiB): small next to the CPU's L2 cache, so an
/// index of few entries costs no more cache than a smaller one (a lookup touches one line
/// either way), and a replay of thousands of flows does not re-hash every entry four times
/// on the way up from 4 KiB (2.7% of the instructions of `lvs-pcap replay` on 10,000
/// flows).
const INITIAL_GROWING: usize = 16384;

/// One index of slab slots by a 64-bit hash. The caller supplies equality (and, for removal,
/// the hash of a stored slot) from the slab.
#[derive(Clone)]
pub(crate) struct SlotIndex {
    buckets: Vec<u32>,
    /// The bucket count `capacity` needs: the size of a fixed index, the most a growing one
    /// reaches.
    full: usize,
    /// `64 - log2(buckets.len())`: the home bucket is `hash >> shift`.
    shift: u32,
    mask: usize,
    slot_bits: u32,
    slot_mask: u32,
    dist_max: u32,
    tag_shift: u32,
    tag_mask: u32,
    len: usize,
}

impl SlotIndex {
    /// An index for up to `capacity` slots numbered `0..capacity` (`capacity` >= 1), all
    /// its buckets allocated at once.
    pub(crate) fn new(capacity: u32) -> Self {
        let full = Self::buckets_for(capacity.max(1));
        Self::with_buckets(capacity, full, full)
    }

    /// As [`SlotIndex::new`], but starting with few buckets and doubling as slots are added
    /// (see the module docs).
    pub(crate) fn growing(capacity: u32) -> Self {
        let full = Self::buckets_for(capacity.max(1));
        Self::with_buckets(capacity, full.min(INITIAL_GROWING), full)
    }

    /// The bucket count that keeps `n` slots at a load of at most 7/8.
    fn buckets_for(n: u32) -> usize {
        (n as usize)
            .saturating_mul(8)
            .div_ceil(7)
            .saturating_add(1)
            .next_power_of_two()
            .max(8)
    }

    fn with_buckets(capacity: u32, n: usize, full: usize) -> Self {
        let capacity = capacity.max(1);
        let slot_bits = 32 - capacity.leading_zeros();
        let dist_bits = MAX_DIST_BITS.min(32 - slot_bits);
        let tag_shift = slot_bits + dist_bits;
        let tag_bits = 32 - tag_shift;
        SlotIndex {
            buckets: vec![EMPTY; n],
            full,
            shift: 64 - n.trailing_zeros(),
            mask: n - 1,
            slot_bits,
            slot_mask: ((1u64 << slot_bits) - 1) as u32,
            dist_max: ((1u64 << dist_bits) - 1) as u32,
            tag_shift,
            tag_mask: ((1u64 << tag_bits) - 1) as u32,
            len: 0,
        }
    }

    /// Slots in the index.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes allocated.
    pub(crate) fn allocation_size(&self) -> usize {
        self.buckets.capacity() * core::mem::size_of::<u32>()
    }

    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        // `shift` < 64: the bucket count is at least 8.
        (hash >> self.shift) as usize
    }

    #[inline(always)]
    fn tag(&self, hash: u64) -> u32 {
        (hash as u32) & self.tag_mask
    }

    /// The word of `slot` at `dist1 - 1` buckets from its home: the distance field holds
    /// `dist1` (saturating at `dist_max`), never 0 (`dist1 >= 1`), so the word is never
    /// [`EMPTY`].
    #[inline(always)]
    fn word(&self, slot: u32, dist1: usize, tag: u32) -> u32 {
        debug_assert!(dist1 >= 1);
        let dist = (dist1 as u32).min(self.dist_max);
        slot | dist << self.slot_bits | tag.checked_shl(self.tag_shift).unwrap_or(0)
    }

    /// The slot a word names.
    #[inline(always)]
    fn slot_of_word(&self, w: u32) -> u32 {
        w & self.slot_mask
    }

    #[inline(always)]
    fn tag_of_word(&self, w: u32) -> u32 {
        // A 64-bit shift: `tag_shift` is at most 32 (then no bits are left for a tag, and
        // every tag is 0), so no test for a shift beyond the word is needed.
        debug_assert!(self.tag_shift <= 32);
        (u64::from(w) >> self.tag_shift) as u32
    }

    /// Prefetches the home bucket of `hash`, so that a lookup or insert soon after finds it
    /// in the CPU caches: callers with a batch of keys touch them all first, and the cache
    /// misses of the batch overlap instead of following one another.
    #[inline]
    pub(crate) fn touch(&self, hash: u64) {
        if let Some(b) = self.buckets.get(self.home(hash)) {
            super::prefetch::prefetch(b);
        }
    }

    /// The first slot with this hash for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = self.tag(hash);
        // Positions masked with the slice's own length (a power of two, not 0 inside the
        // loop): provably in bounds, so a probe costs no bounds check.
        let buckets = &self.buckets[..];
        let mask = buckets.len().wrapping_sub(1);
        let mut i = self.home(hash) & mask;
        // At most every bucket once; the load bound guarantees an empty one well before.
        for _ in 0..buckets.len() {
            let w = buckets[i];
            if w == EMPTY {
                return None;
            }
            if self.tag_of_word(w) == tag {
                let slot = self.slot_of_word(w);
                if eq(slot) {
                    return Some(slot);
                }
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Adds `slot` (not present) with `hash`; `hash_of` gives the hash of any stored slot
    /// (used only when a growing index doubles). The caller never adds more slots than the
    /// capacity the index was built for.
    #[inline]
    pub(crate) fn insert(&mut self, hash: u64, slot: u32, hash_of: impl Fn(u32) -> u64) {
        let n = self.buckets.len();
        if n < self.full && (self.len + 1) * 8 > n * 7 {
            self.grow(hash_of);
        }
        self.insert_word(hash, slot);
    }

    /// Doubles the bucket count and re-inserts every slot.
    #[cold]
    fn grow(&mut self, hash_of: impl Fn(u32) -> u64) {
        let n = self.buckets.len() * 2;
        let old = core::mem::replace(&mut self.buckets, vec![EMPTY; n]);
        self.shift = 64 - n.trailing_zeros();
        self.mask = n - 1;
        self.len = 0;
        // From an empty bucket on (the load bound leaves one), so that no cluster is split
        // by the end of the array: slots of one home bucket are re-inserted in their order.
        let start = old.iter().position(|&w| w == EMPTY).unwrap_or(0);
        let m = old.len();
        for k in 0..m {
            let w = old[(start + k) % m];
            if w != EMPTY {
                let s = self.slot_of_word(w);
                self.insert_word(hash_of(s), s);
            }
        }
    }

    #[inline]
    fn insert_word(&mut self, hash: u64, slot: u32) {
        debug_assert!(slot < self.slot_mask, "slot beyond the capacity");
        let tag = self.tag(hash);
        let home = self.home(hash);
        // The first empty bucket from home on, probed as `find` does (no bounds checks).
        let buckets = &self.buckets[..];
        let mask = buckets.len().wrapping_sub(1);
        let mut i = home & mask;
        for _ in 0..buckets.len() {
            if buckets[i] == EMPTY {
                // The distance plus one (a distance is below the bucket count - 1: no
                // cluster fills the index).
                let dist1 = (i + 1).wrapping_sub(home) & mask;
                let w = self.word(slot, dist1, tag);
                self.buckets[i] = w;
                self.len += 1;
                return;
            }
            i = (i + 1) & mask;
        }
        debug_assert!(false, "index full");
    }

    /// Removes `slot`, stored with `hash`; `hash_of` gives the hash of any stored slot (used
    /// only for entries whose distance saturated). Returns whether it was there.
    pub(crate) fn remove(&mut self, hash: u64, slot: u32, hash_of: impl Fn(u32) -> u64) -> bool {
        // Found as `find` probes (no bounds checks).
        let buckets = &self.buckets[..];
        let mask = buckets.len().wrapping_sub(1);
        let mut hole = self.home(hash) & mask;
        let mut found = false;
        for _ in 0..buckets.len() {
            let w = buckets[hole];
            if w == EMPTY {
                break;
            }
            if self.slot_of_word(w) == slot {
                found = true;
                break;
            }
            hole = (hole + 1) & mask;
        }
        if !found {
            return false;
        }
        // Backward shift: move every later entry of the cluster whose home is not in
        // (hole, j] into the hole.
        let mut j = hole;
        for _ in 0..self.buckets.len() {
            j = (j + 1) & self.mask;
            let w = self.buckets[j];
            if w == EMPTY {
                break;
            }
            let s = self.slot_of_word(w);
            let stored = (w >> self.slot_bits) & self.dist_max;
            let dist = if stored < self.dist_max {
                // The field holds the distance plus one.
                stored as usize - 1
            } else {
                j.wrapping_sub(self.home(hash_of(s))) & self.mask
            };
            let gap = j.wrapping_sub(hole) & self.mask;
            if gap <= dist {
                let tag = self.tag_of_word(w);
                self.buckets[hole] = self.word(s, dist - gap + 1, tag);
                hole = j;
            }
        }
        self.buckets[hole] = EMPTY;
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(x: u64) -> u64 {
        let x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        let x = (x ^ (x >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }

    /// Against a model, with hashes crowded into few home buckets (long clusters, saturated
    /// distances) and with a well-spread hash.
    #[test]
    fn matches_a_model_under_churn() {
        for (cap, crowd, grow) in [
            (100u32, true, false),
            (1000, false, false),
            (1000, true, false),
            (5, true, false),
            (3000, false, true),
            (3000, true, true),
            (5, true, true),
        ] {
            // A crowded hash keeps only a few distinct top bits.
            let hash = |s: u32| {
                let h = mix(s as u64);
                if crowd {
                    h & 0xe000_0000_0000_ffff
                } else {
                    h
                }
            };
            let mut idx = if grow {
                SlotIndex::growing(cap)
            } else {
                SlotIndex::new(cap)
            };
            let mut live = std::collections::BTreeSet::new();
            let mut rng = 12345u64;
            for step in 0..20_000u32 {
                rng = mix(rng.wrapping_add(step as u64));
                let s = (rng % cap as u64) as u32;
                if live.contains(&s) {
                    assert!(idx.remove(hash(s), s, hash));
                    live.remove(&s);
                } else {
                    idx.insert(hash(s), s, hash);
                    live.insert(s);
                }
                assert_eq!(idx.len(), live.len());
                if step % 97 == 0 {
                    for t in 0..cap {
                        let got = idx.find(hash(t), |x| x == t);
                        assert_eq!(got.is_some(), live.contains(&t), "cap {cap} slot {t}");
                    }
                }
            }
            for s in live.clone() {
                assert!(idx.remove(hash(s), s, hash));
                assert!(!idx.remove(hash(s), s, hash));
            }
            assert_eq!(idx.len(), 0);
            assert!(idx.buckets.iter().all(|&w| w == EMPTY));
        }
    }

    /// A growing index doubles up to the size of a fixed one, keeps every slot findable, and
    /// keeps slots of one hash in their order.
    #[test]
    fn grows_to_the_fixed_size() {
        let cap = 50_000u32;
        let hash = |s: u32| mix(s as u64 / 3);
        let mut idx = SlotIndex::growing(cap);
        assert_eq!(idx.buckets.len(), INITIAL_GROWING);
        for s in 0..cap {
            idx.insert(hash(s), s, hash);
            assert!(idx.len * 8 <= idx.buckets.len() * 7, "load above 7/8");
        }
        assert_eq!(idx.buckets.len(), SlotIndex::new(cap).buckets.len());
        for s in 0..cap {
            // Slots 3k, 3k+1, 3k+2 share a hash: the first inserted is found first.
            assert_eq!(
                idx.find(hash(s), |x| hash(x) == hash(s)),
                Some(s / 3 * 3),
                "slot {s}"
            );
            assert_eq!(idx.find(hash(s), |x| x == s), Some(s));
        }
    }

    /// Capacities that leave few or no bits for the tag (growing, so the buckets stay
    /// small): every slot is found by its hash and removed, and the tag a word gives back is
    /// the tag it was made with.
    #[test]
    fn finds_with_few_or_no_tag_bits() {
        for cap in [1u32 << 20, 1 << 25, (1 << 31) - 1] {
            let mut idx = SlotIndex::growing(cap);
            assert!(idx.tag_shift <= 32);
            let hash = |s: u32| mix(s as u64);
            for s in 0..1000 {
                idx.insert(hash(s), s, hash);
            }
            for &w in idx.buckets.iter().filter(|&&w| w != EMPTY) {
                let slot = idx.slot_of_word(w);
                assert_eq!(
                    idx.tag_of_word(w),
                    idx.tag(hash(slot)),
                    "cap {cap} word {w:#x}"
                );
            }
            for s in 0..2000 {
                let found = idx.find(hash(s), |x| hash(x) == hash(s));
                assert_eq!(found, (s < 1000).then_some(s), "cap {cap} slot {s}");
            }
            for s in 0..1000 {
                assert!(idx.remove(hash(s), s, hash), "cap {cap} slot {s}");
            }
            assert!(idx.buckets.iter().all(|&w| w == EMPTY));
        }
    }

    #[test]
    fn words_never_look_empty() {
        for cap in [1u32, 2, 3, 255, 256, 257, 1 << 16, (1 << 16) + 1] {
            let idx = SlotIndex::new(cap);
            // No slot, at the smallest distance and tag or the largest, makes an EMPTY word,
            // and every word names its slot.
            for slot in [0, cap / 2, cap - 1] {
                for (dist1, tag) in [(1, 0), (usize::MAX, idx.tag_mask)] {
                    let w = idx.word(slot, dist1, tag);
                    assert_ne!(w, EMPTY, "cap {cap} slot {slot}");
                    assert_eq!(idx.slot_of_word(w), slot, "cap {cap} slot {slot}");
                }
            }
            assert!(idx.buckets.len() * 7 > cap as usize * 8, "load above 7/8");
        }
    }
}
