//! The restore step shared by the `xmit/rewrite` bench and the `xmit` modes of the `hotpath`
//! example: the rewrite works in place, so each iteration first puts back the bytes the
//! previous one changed, and nothing else.

/// The bytes to put back before each rewrite: `at..at + n` of the buffer, `n` a power of two
/// (8 to 64) so that the restore is one fixed-size copy.
///
/// Found by diffing the buffer before and after one rewrite (`before`, `after`, equal
/// lengths) from `from` on (the packet; the headroom in front of it, where tunnel headers go,
/// is written and never read): the smallest range covering every changed byte, its start
/// moved down to a multiple of 8 from `from` and its length up to a power of two of at least
/// 8 (moved back where it would pass the end; the bytes this adds are unchanged ones, so
/// restoring them is harmless). The widening is there because the rewrite reads the headers
/// in aligned 8-byte words: a narrower restore store (the hop limit's single byte, the IPv4
/// TTL word's 4) that such a load overlaps in part cannot be forwarded to it, and every
/// iteration would pay a store-forwarding stall (about 6 ns for DR v4 on the reference
/// machine) that a packet arriving from the network never pays. `None` when nothing changed.
pub fn window(before: &[u8], after: &[u8], from: usize) -> Option<(usize, usize)> {
    assert_eq!(before.len(), after.len());
    let changed = |i: &usize| before[*i] != after[*i];
    let lo = (from..before.len()).find(changed)?;
    let hi = (from..before.len()).rev().find(changed)? + 1;
    let lo = from + ((lo - from) & !7);
    let n = (hi - lo).next_power_of_two().max(8);
    assert!(
        n <= 64,
        "the rewrite changed {lo}..{hi}: too wide for one restore"
    );
    let at = lo.min(before.len() - n);
    assert!(at >= from);
    Some((at, n))
}

/// Calls `$f::<N>($args)` for the window size `$n` (a power of two from 8 to 64), so that each
/// size gets a copy of constant length.
macro_rules! with_window {
    ($n:expr, $f:ident($($args:expr),* $(,)?)) => {
        match $n {
            8 => $f::<8>($($args),*),
            16 => $f::<16>($($args),*),
            32 => $f::<32>($($args),*),
            64 => $f::<64>($($args),*),
            n => unreachable!("window of {n} bytes"),
        }
    };
}
pub(crate) use with_window;
