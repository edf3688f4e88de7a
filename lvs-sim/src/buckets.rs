//! Response-time counts in the buckets of an HdrHistogram of response times in ns (lowest value
//! 1, 3 significant digits: `new_hist` in the tests), kept as a plain array and read directly: a run's
//! percentiles and maximum per service and real server, and a time-series interval's.
//!
//! One response goes to three counts (its service, its real server and the service's
//! time-series interval). `Histogram::record` finds the bucket, checks the range and updates
//! the total, minimum and maximum each time; here the bucket is found once and each record is
//! one increment. The percentiles and maximum read from the counts are the histogram's: the
//! highest value equivalent to the bucket where the running count reaches the quantile's
//! rank, and to the largest bucket counted (the tests compare them with a histogram that
//! records every value, and with one that gets the counts by `record_n`).

#[cfg(test)]
use hdrhistogram::Histogram;

/// log2 of half the sub-buckets per bucket: 3 significant digits need 2 000 sub-buckets,
/// rounded up to 2^11.
const HALF_MAG: u32 = 10;
/// Values below this lie in bucket 0 (unit resolution).
const SUB_MASK: u64 = (1 << (HALF_MAG + 1)) - 1;
/// `64 - unit magnitude (0) - sub-bucket count magnitude (11)`.
const LZ_BASE: u32 = 64 - (HALF_MAG + 1);

/// The counts index of `v` (at least 1) in the histograms' layout.
#[inline]
pub(crate) fn index(v: u64) -> usize {
    let bucket = LZ_BASE - (v | SUB_MASK).leading_zeros();
    let sub = (v >> bucket) as usize;
    ((bucket as usize + 1) << HALF_MAG) + sub - (1 << HALF_MAG)
}

/// The lowest value counted at `i`.
#[inline]
pub(crate) fn value(i: usize) -> u64 {
    let half = 1usize << HALF_MAG;
    let (bucket, sub) = match (i >> HALF_MAG).checked_sub(1) {
        Some(b) => (b, (i & (half - 1)) + half),
        None => (0, i & (half - 1)),
    };
    (sub as u64) << bucket
}

/// The highest value counted at `i`.
#[inline]
fn highest(i: usize) -> u64 {
    let bucket = (i >> HALF_MAG).saturating_sub(1);
    value(i) + ((1u64 << bucket) - 1)
}

/// log2 of the indices per block of [`Buckets::blocks`].
const BLOCK_SHIFT: u32 = 6;

/// Counts by bucket index.
#[derive(Debug, Default)]
pub(crate) struct Buckets {
    counts: Vec<u64>,
    /// The sums of `counts` by blocks of `1 << BLOCK_SHIFT` indices: a percentile is found by
    /// a scan of the blocks, then of one block's counts, rather than of every count up to it
    /// (a few thousand buckets hold a run's response times).
    blocks: Vec<u64>,
}

impl Buckets {
    /// One more at index `i` (from [`index`]).
    #[inline]
    pub(crate) fn add(&mut self, i: usize) {
        match self.counts.get_mut(i) {
            Some(c) => {
                *c += 1;
                self.blocks[i >> BLOCK_SHIFT] += 1;
            }
            None => self.grow(i),
        }
    }

    #[cold]
    fn grow(&mut self, i: usize) {
        // Up to the end of `i`'s bucket, as the histogram itself grows (a whole number of
        // blocks: a bucket holds 2^HALF_MAG indices).
        let end = (i | ((1 << HALF_MAG) - 1)) + 1;
        self.counts.resize(end, 0);
        self.blocks.resize(end >> BLOCK_SHIFT, 0);
        self.counts[i] += 1;
        self.blocks[i >> BLOCK_SHIFT] += 1;
    }

    /// How many were counted.
    pub(crate) fn len(&self) -> u64 {
        self.blocks.iter().sum()
    }

    /// `Histogram::value_at_quantile` of each of `qs` (ascending, each in (0, 1]) for the
    /// histogram these counts would make, for `len` counts (at least one): the highest value
    /// equivalent to the first bucket where the running count reaches `ceil(q * len)`.
    pub(crate) fn values_at_quantiles<const N: usize>(&self, qs: [f64; N], len: u64) -> [u64; N] {
        debug_assert!(
            qs.windows(2).all(|w| w[0] <= w[1]),
            "quantiles in ascending order"
        );
        let mut out = [0; N];
        // Counted before block `b`.
        let (mut b, mut before) = (0, 0u64);
        for (k, q) in qs.into_iter().enumerate() {
            let target = ((q.min(1.0) * len as f64).ceil() as u64).max(1);
            while b < self.blocks.len() && before + self.blocks[b] < target {
                before += self.blocks[b];
                b += 1;
            }
            let Some(block) = self.counts.chunks(1 << BLOCK_SHIFT).nth(b) else {
                break; // more than were counted
            };
            let mut run = before;
            for (j, &c) in block.iter().enumerate() {
                run += c;
                if run >= target {
                    out[k] = highest((b << BLOCK_SHIFT) + j);
                    break;
                }
            }
        }
        out
    }

    /// `Histogram::max` of the histogram these counts would make: the highest value
    /// equivalent to the largest one counted (0 without counts).
    pub(crate) fn max(&self) -> u64 {
        let Some(b) = self.blocks.iter().rposition(|&c| c != 0) else {
            return 0;
        };
        let block = &self.counts[b << BLOCK_SHIFT..(b + 1) << BLOCK_SHIFT];
        block
            .iter()
            .rposition(|&c| c != 0)
            .map_or(0, |j| highest((b << BLOCK_SHIFT) + j))
    }

    /// Empties the counts.
    pub(crate) fn clear(&mut self) {
        // Only the blocks that counted something: a time-series interval's responses lie in
        // a few of the thousands of counts the run's range spans.
        for (b, sum) in self.blocks.iter_mut().enumerate() {
            if *sum != 0 {
                *sum = 0;
                self.counts[b << BLOCK_SHIFT..(b + 1) << BLOCK_SHIFT].fill(0);
            }
        }
    }

    /// Adds the counts to `h` (one `record_n` per non-empty bucket) and empties them.
    #[cfg(test)]
    pub(crate) fn drain_into(&mut self, h: &mut Histogram<u64>) {
        for (i, c) in self.counts.iter_mut().enumerate() {
            if *c != 0 {
                let _ = h.record_n(value(i), *c);
                *c = 0;
            }
        }
        self.blocks.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::{index, value, Buckets};
    use hdrhistogram::Histogram;

    /// The histogram whose buckets these are: response times in ns, lowest value 1, 3
    /// significant digits, growing as needed.
    pub(super) fn new_hist() -> Histogram<u64> {
        let mut h = Histogram::new(3).expect("3 significant digits");
        h.auto(true);
        h
    }

    fn values() -> Vec<u64> {
        let mut v: Vec<u64> = (1..5000).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Spread over every magnitude up to 2^60.
            v.push((x >> (4 + x % 60)).max(1));
        }
        for s in 0..60 {
            v.extend([(1u64 << s), (1u64 << s) + 1, (2u64 << s) - 1]);
        }
        v
    }

    /// The bucket of a value is the histogram's: `value(index(v))` is its lowest equivalent,
    /// and the next bucket starts at the next index.
    #[test]
    fn same_buckets_as_the_histogram() {
        let h = new_hist();
        for v in values() {
            let i = index(v);
            assert_eq!(value(i), h.lowest_equivalent(v), "v={v}");
            assert_eq!(index(h.next_non_equivalent(v)), i + 1, "v={v}");
        }
    }

    /// Counting then draining gives the histogram of recording each value.
    #[test]
    fn drained_histogram_reads_the_same() {
        let vs = values();
        for chunk in [&vs[..3000], &vs[4000..4100], &vs[..]] {
            let mut want = new_hist();
            let mut b = Buckets::default();
            for &v in chunk {
                want.record(v).unwrap();
                b.add(index(v));
            }
            let mut got = new_hist();
            let mut copy = Buckets {
                counts: b.counts.clone(),
                blocks: b.blocks.clone(),
            };
            copy.drain_into(&mut got);
            assert_eq!(got.len(), want.len());
            assert_eq!(got.max(), want.max());
            for q in [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
                assert_eq!(got.value_at_quantile(q), want.value_at_quantile(q));
            }
            assert!(got.iter_recorded().eq(want.iter_recorded()));
            assert_eq!(b.len(), want.len());
            for q in [1e-9, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
                assert_eq!(
                    b.values_at_quantiles([q], b.len()),
                    [want.value_at_quantile(q)]
                );
            }
            let qs = [1e-9, 0.1, 0.5, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0];
            assert_eq!(
                b.values_at_quantiles(qs, b.len()),
                qs.map(|q| want.value_at_quantile(q))
            );
            assert_eq!(b.max(), want.max());
            // Emptied.
            let mut again = new_hist();
            copy.drain_into(&mut again);
            assert!(again.is_empty());
            b.clear();
            assert_eq!(b.len(), 0);
        }
    }
}
