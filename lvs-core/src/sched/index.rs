//! Ordered indexes over destinations for the least-connection family.
//!
//! The kernel's lc, wlc, sed, nq, fo and ovf walk the whole destination list on every new
//! connection and keep the first destination that is *strictly* better than the best so far.
//! With a comparison that is a total preorder, such a scan returns the **first minimum in list
//! order**. A tournament tree over list positions reproduces exactly that answer: every internal
//! node holds the better of its two children, and on a tie the left child, which covers the
//! lower list positions, wins. The root then holds the kernel's answer, so a decision is O(1);
//! a changed destination costs O(log n) comparisons on its path to the root, and a change to
//! the list itself (positions shift) rebuilds the tree in O(n).
//!
//! twos instead needs the destination at which a running subtraction of weights reaches zero:
//! [`WeightSums`] answers that with a Fenwick tree over list positions in O(log n).
//!
//! Both structures are plain data driven by the owning scheduler through
//! [`Scheduler::update`](super::Scheduler::update) and
//! [`Scheduler::counts_changed`](super::Scheduler::counts_changed); they never allocate after a
//! rebuild and never read a destination other than the one they are told about.

use core::fmt;
use core::marker::PhantomData;

use super::DestInfo;

/// A scheduler's ordering of destinations: how the kernel's scan compares two of them.
///
/// Implementations must make [`Rank::better`] a strict weak order on keys (irreflexive and
/// transitive, with "neither is better" an equivalence), so that "the first minimum in list
/// order" is well defined and the tree finds the same one as the scan. [`Rank::SKIP`], the key
/// of a destination the scheduler skips, must be worse than every other key.
pub trait Rank {
    /// What the comparison needs to know about one destination, copied out of [`DestInfo`].
    type Key: Copy + PartialEq + fmt::Debug;

    /// The key of every destination the scheduler would skip (not eligible); never
    /// [`better`](Rank::better) than any key, and every other key is better than it.
    const SKIP: Self::Key;

    /// The key of `dest`: [`Rank::SKIP`] when the scheduler would skip it.
    fn key(dest: &DestInfo) -> Self::Key;

    /// Whether `a` is strictly better than `b`, i.e. the kernel's scan would replace a current
    /// best with key `b` by a later destination with key `a`.
    fn better(a: &Self::Key, b: &Self::Key) -> bool;

    /// Whether `key` marks a destination whose effect on the kernel's scan no key order can
    /// express, because it depends on where the destination stands in the list (wlc: a
    /// quiesced destination whose `int` overhead wrapped negative wins the comparison, but only
    /// after the first eligible destination). Such a key must compare like [`Rank::SKIP`];
    /// while any leaf holds one, [`Tournament::needs_scan`] is true and the owner answers with
    /// the scan. None by default.
    #[inline]
    fn irregular(key: &Self::Key) -> bool {
        let _ = key;
        false
    }

    /// Whether [`Rank::irregular`] can ever be true (lets the tree skip the bookkeeping).
    const MAY_BE_IRREGULAR: bool = false;
}

/// A tournament (winner) tree over list positions, ordered by the [`Rank`] `R`.
///
/// A heap-ordered array of nodes (root 1, children `2i` and `2i + 1`, leaf of list position
/// `pos` at `size + pos`, `size` the list length rounded up to a power of two, padding leaves
/// holding [`Rank::SKIP`]); every node holds the winner of its subtree, its list position and a
/// copy of its key, so replaying a path reads one sibling node per level. The root holds the
/// first best destination in list order.
///
/// ```
/// use core::net::{IpAddr, Ipv4Addr};
/// use lvs_core::sched::index::{Rank, Tournament};
/// use lvs_core::sched::{DestId, DestInfo};
///
/// /// Fewest active connections, ties to the earlier destination.
/// struct FewestActive;
/// impl Rank for FewestActive {
///     type Key = u64;
///     const SKIP: u64 = u64::MAX;
///     fn key(d: &DestInfo) -> u64 {
///         if d.is_eligible() { u64::from(d.activeconns) } else { u64::MAX }
///     }
///     fn better(a: &u64, b: &u64) -> bool {
///         a < b
///     }
/// }
///
/// let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
/// let mut dests: Vec<DestInfo> = (0..5).map(|i| DestInfo::new(DestId(i), ip, 80, 1)).collect();
/// for (d, active) in dests.iter_mut().zip([3, 1, 4, 1, 5]) {
///     d.activeconns = active;
/// }
/// let mut tree = Tournament::<FewestActive>::new();
/// tree.rebuild(&dests);
/// assert_eq!(tree.winner(), Some(1)); // the first of the two with 1
/// dests[1].activeconns = 2;
/// tree.refresh(&dests, 1);
/// assert_eq!(tree.winner(), Some(3));
/// dests.iter_mut().for_each(|d| d.weight = 0);
/// tree.rebuild(&dests);
/// assert_eq!(tree.winner(), None);
/// ```
pub struct Tournament<R: Rank> {
    len: usize,
    /// Leaves holding an [irregular](Rank::irregular) key.
    irregular: usize,
    /// Leaves: `len` rounded up to a power of two (at least 1).
    size: usize,
    /// `2 * size` nodes; `nodes[0]` is unused.
    nodes: Vec<Node<R::Key>>,
    _rank: PhantomData<fn() -> R>,
}

/// One node of a [`Tournament`]: the winner of a subtree, its list position and its key.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Node<K> {
    key: K,
    pos: u32,
}

impl<R: Rank> fmt::Debug for Tournament<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tournament")
            .field("len", &self.len)
            .field("winner", &self.winner())
            .finish_non_exhaustive()
    }
}

impl<R: Rank> Default for Tournament<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Rank> Tournament<R> {
    /// An empty tree (no destinations).
    pub fn new() -> Self {
        let skip = Node {
            key: R::SKIP,
            pos: 0,
        };
        Tournament {
            len: 0,
            irregular: 0,
            size: 1,
            nodes: vec![skip; 2],
            _rank: PhantomData,
        }
    }

    /// How many destinations the tree was last built for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree was built for an empty list.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether some destination holds an [irregular](Rank::irregular) key, so that
    /// [`Tournament::winner`] may differ from the kernel's scan.
    #[inline]
    pub fn needs_scan(&self) -> bool {
        R::MAY_BE_IRREGULAR && self.irregular != 0
    }

    /// The better of two nodes, `left` covering lower list positions; on a tie `left` wins,
    /// which is what the kernel's strict `>` / `<` comparisons do.
    #[inline]
    fn play(left: Node<R::Key>, right: Node<R::Key>) -> Node<R::Key> {
        if R::better(&right.key, &left.key) {
            right
        } else {
            left
        }
    }

    /// Rebuilds the whole tree from `dests` in O(n). Reuses the allocation when it is large
    /// enough.
    ///
    /// # Panics
    /// If `dests` has more than `u32::MAX` destinations (positions are stored in 32 bits).
    pub fn rebuild(&mut self, dests: &[DestInfo]) {
        assert!(
            dests.len() <= u32::MAX as usize,
            "too many destinations for the index"
        );
        let size = dests.len().max(1).next_power_of_two();
        self.len = dests.len();
        self.size = size;
        self.nodes.clear();
        self.nodes.resize(
            size,
            Node {
                key: R::SKIP,
                pos: 0,
            },
        );
        self.nodes
            .extend(dests.iter().enumerate().map(|(pos, d)| Node {
                key: R::key(d),
                pos: pos as u32,
            }));
        self.nodes.extend((dests.len()..size).map(|pos| Node {
            key: R::SKIP,
            pos: pos as u32,
        }));
        self.irregular = if R::MAY_BE_IRREGULAR {
            self.nodes[size..]
                .iter()
                .filter(|n| R::irregular(&n.key))
                .count()
        } else {
            0
        };
        for node in (1..size).rev() {
            self.nodes[node] = Self::play(self.nodes[2 * node], self.nodes[2 * node + 1]);
        }
    }

    /// Re-reads `dests[pos]` and replays its path to the root: O(log n) comparisons, fewer
    /// when a subtree's winner does not change.
    ///
    /// A `pos` outside the list the tree was built for is ignored (the owner must rebuild
    /// after the list changes).
    pub fn refresh(&mut self, dests: &[DestInfo], pos: usize) {
        if pos >= self.len {
            return;
        }
        let Some(dest) = dests.get(pos) else {
            return;
        };
        let key = R::key(dest);
        let nodes = self.nodes.as_mut_slice();
        let mut node = self.size + pos;
        let Some(leaf) = nodes.get_mut(node) else {
            return;
        };
        if leaf.key == key {
            // The key the tree holds (a counter the order does not read changed): every copy
            // of it up the path is current already.
            return;
        }
        if R::MAY_BE_IRREGULAR {
            if R::irregular(&leaf.key) {
                self.irregular -= 1;
            }
            if R::irregular(&key) {
                self.irregular += 1;
            }
        }
        let mut cur = Node {
            key,
            pos: pos as u32,
        };
        *leaf = cur;
        // Node numbers below the node count, a power of two (`2 * size`), are their own
        // value masked with it: indexed that way, the path needs no bounds check.
        debug_assert!(nodes.len().is_power_of_two());
        let mask = nodes.len().wrapping_sub(1);
        // Carry the winner of the subtree we come from up the path; only the sibling has to
        // be read at each level.
        while node > 1 {
            let sib = nodes[(node ^ 1) & mask];
            // `play` with `cur` on its side: a left `cur` keeps a tie, a right one must be
            // strictly better. One comparison, one conditional move of the winner.
            let sib_wins = if node & 1 == 0 {
                R::better(&sib.key, &cur.key)
            } else {
                !R::better(&cur.key, &sib.key)
            };
            if sib_wins {
                cur = sib;
            }
            node /= 2;
            let parent = &mut nodes[node & mask];
            if *parent == cur {
                // Same winner with the same key (the refreshed leaf's key changed, so not
                // it): nothing above can change either.
                break;
            }
            *parent = cur;
        }
    }

    /// The list position of the first best eligible destination, or `None` if no destination
    /// is eligible.
    #[inline]
    pub fn winner(&self) -> Option<usize> {
        let root = &self.nodes[1];
        (root.key != R::SKIP).then_some(root.pos as usize)
    }

    /// The key stored for `pos` (as last read), or `None` outside the list.
    #[inline]
    pub fn key(&self, pos: usize) -> Option<R::Key> {
        (pos < self.len).then(|| self.nodes[self.size + pos].key)
    }
}

/// Prefix sums of per-position weights (a Fenwick tree), for twos.
///
/// [`WeightSums::find`] returns the first position at which the running sum of weights reaches
/// a target: exactly the destination at which the kernel's `r -= weight; if r <= 0` walk
/// stops.
///
/// ```
/// use lvs_core::sched::index::WeightSums;
/// let mut sums = WeightSums::new();
/// sums.rebuild([3, 0, 2, 5].into_iter());
/// assert_eq!(sums.total(), 10);
/// assert_eq!(sums.find(1), Some(0));
/// assert_eq!(sums.find(3), Some(0));
/// assert_eq!(sums.find(4), Some(2)); // position 1 weighs nothing
/// assert_eq!(sums.find(10), Some(3));
/// assert_eq!(sums.find(11), None);
/// sums.set(0, 0);
/// assert_eq!(sums.find(1), Some(2));
/// ```
#[derive(Clone, Debug, Default)]
pub struct WeightSums {
    /// The weight at each position.
    weights: Vec<u64>,
    /// Fenwick tree, 1-based: `tree[i]` sums `weights[i - lowbit(i) .. i]`.
    tree: Vec<u64>,
    total: u64,
    /// Highest power of two not above `weights.len()` (0 when empty).
    top: usize,
}

impl WeightSums {
    /// No positions.
    pub fn new() -> Self {
        WeightSums {
            weights: Vec::new(),
            tree: vec![0],
            total: 0,
            top: 0,
        }
    }

    /// Rebuilds from one weight per position, in O(n).
    pub fn rebuild(&mut self, weights: impl Iterator<Item = u64>) {
        self.weights.clear();
        self.weights.extend(weights);
        let n = self.weights.len();
        self.tree.clear();
        self.tree.push(0);
        self.tree.extend_from_slice(&self.weights);
        for i in 1..=n {
            let j = i + (i & i.wrapping_neg());
            if j <= n {
                self.tree[j] += self.tree[i];
            }
        }
        self.total = self.weights.iter().sum();
        self.top = if n == 0 {
            0
        } else {
            1 << (usize::BITS - 1 - n.leading_zeros())
        };
    }

    /// The number of positions.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether there are no positions.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// The weight at `pos` (0 outside the range).
    pub fn get(&self, pos: usize) -> u64 {
        self.weights.get(pos).copied().unwrap_or(0)
    }

    /// Sets the weight at `pos` in O(log n). Out-of-range positions are ignored.
    pub fn set(&mut self, pos: usize, weight: u64) {
        let Some(old) = self.weights.get_mut(pos) else {
            return;
        };
        if *old == weight {
            return;
        }
        let (add, delta) = if weight > *old {
            (true, weight - *old)
        } else {
            (false, *old - weight)
        };
        *old = weight;
        let mut i = pos + 1;
        while i < self.tree.len() {
            if add {
                self.tree[i] += delta;
            } else {
                self.tree[i] -= delta;
            }
            i += i & i.wrapping_neg();
        }
        if add {
            self.total += delta;
        } else {
            self.total -= delta;
        }
    }

    /// The sum of all weights.
    #[inline]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The first position whose inclusive prefix sum is at least `target`, for `target >= 1`;
    /// `None` when `target` is 0 or exceeds the total. O(log n).
    #[inline]
    pub fn find(&self, target: u64) -> Option<usize> {
        if target == 0 || target > self.total {
            return None;
        }
        let n = self.weights.len();
        let mut pos = 0usize; // 1-based index of the last position whose prefix is < target
        let mut rem = target;
        let mut step = self.top;
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] < rem {
                pos = next;
                rem -= self.tree[next];
            }
            step >>= 1;
        }
        // The answer is 1-based `pos + 1`, i.e. 0-based `pos`.
        Some(pos)
    }

    /// [`WeightSums::find`] for two targets at once (both in `1..=total`), walking the two
    /// searches in lock step so that their memory accesses overlap.
    #[inline]
    pub fn find_pair(&self, a: u64, b: u64) -> Option<(usize, usize)> {
        if a == 0 || b == 0 || a > self.total || b > self.total {
            return None;
        }
        let n = self.weights.len();
        let (mut pa, mut pb) = (0usize, 0usize);
        let (mut ra, mut rb) = (a, b);
        let mut step = self.top;
        while step > 0 {
            let (na, nb) = (pa + step, pb + step);
            if na <= n && self.tree[na] < ra {
                pa = na;
                ra -= self.tree[na];
            }
            if nb <= n && self.tree[nb] < rb {
                pb = nb;
                rb -= self.tree[nb];
            }
            step >>= 1;
        }
        Some((pa, pb))
    }
}

/// Lists of at most this many destinations are scanned when scheduling, the way the kernel
/// does, and their [`Tournament`] is not refreshed on counter changes: a connection changes
/// its real server's counters at least twice (bind, state changes, unbind) and is scheduled
/// once, and for a short list one scan costs fewer instructions than those refreshes (wlc,
/// 8 real servers: about 160 instructions per refresh).
pub(crate) const SCAN_MAX: usize = 12;

/// Implements [`Scheduler`](super::Scheduler) for a struct holding `tree: Tournament<$rank>`,
/// with `$scan` as the fallback for a tree that does not match the list it is given, and the
/// answer for a list of at most [`SCAN_MAX`] destinations.
macro_rules! indexed_scheduler {
    ($ty:ident, $rank:ty, $kind:expr, $scan:path) => {
        impl $ty {
            /// A scheduler with an empty index; bind it with `update(dests, DestChange::Init)`.
            pub fn new() -> Self {
                $ty {
                    tree: $crate::sched::index::Tournament::new(),
                }
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $crate::sched::Scheduler for $ty {
            fn kind(&self) -> $crate::sched::SchedKind {
                $kind
            }

            fn update(
                &mut self,
                dests: &[$crate::sched::DestInfo],
                change: $crate::sched::DestChange,
            ) {
                match change {
                    // An edit changes one key and shifts nothing: replay one path.
                    $crate::sched::DestChange::Edited { pos } if dests.len() == self.tree.len() => {
                        self.tree.refresh(dests, pos)
                    }
                    // Additions and removals shift every later position: rebuild.
                    _ => self.tree.rebuild(dests),
                }
            }

            fn counts_changed(&mut self, dests: &[$crate::sched::DestInfo], pos: usize) {
                // A short list is scanned when scheduling (see `schedule`): its tree is
                // not kept current.
                if dests.len() > $crate::sched::index::SCAN_MAX {
                    self.tree.refresh(dests, pos);
                }
            }

            fn watches_counts(&self, len: usize) -> bool {
                // See `counts_changed`.
                len > $crate::sched::index::SCAN_MAX
            }

            fn schedule(
                &mut self,
                dests: &[$crate::sched::DestInfo],
                _flow: &$crate::sched::FlowKey,
                _ctx: &mut $crate::sched::SchedContext<'_>,
            ) -> Option<usize> {
                if dests.len() <= $crate::sched::index::SCAN_MAX
                    || dests.len() != self.tree.len()
                    || self.tree.needs_scan()
                {
                    // A short list (its tree is not kept current: the scan costs less than
                    // the refreshes of the counter changes a connection makes), the owner
                    // changed the list without telling us, or a destination's state is one
                    // the order cannot place: answer like the kernel (a scan) rather than
                    // with a stale or wrong position.
                    return $scan(dests);
                }
                let pos = self.tree.winner()?;
                // Re-check the winner against live state; a winner that became ineligible
                // without `counts_changed` means the index is stale, so scan.
                if <$rank as $crate::sched::index::Rank>::key(&dests[pos])
                    == <$rank as $crate::sched::index::Rank>::SKIP
                {
                    return $scan(dests);
                }
                Some(pos)
            }
        }
    };
}

pub(crate) use indexed_scheduler;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_sums_match_linear_prefix_search() {
        let weights: Vec<u64> = vec![0, 4, 0, 0, 1, 7, 2, 0, 3, 3, 0, 9, 1];
        let mut sums = WeightSums::new();
        sums.rebuild(weights.iter().copied());
        let total: u64 = weights.iter().sum();
        assert_eq!(sums.total(), total);
        for target in 0..=total + 1 {
            let mut acc = 0;
            let expected = if target == 0 {
                None
            } else {
                weights.iter().position(|w| {
                    acc += w;
                    acc >= target
                })
            };
            assert_eq!(sums.find(target), expected, "target {target}");
        }
    }

    #[test]
    fn weight_sums_set_keeps_total_and_search() {
        let mut sums = WeightSums::new();
        sums.rebuild([1u64, 1, 1].into_iter());
        sums.set(1, 5);
        assert_eq!(sums.total(), 7);
        assert_eq!(sums.find(2), Some(1));
        assert_eq!(sums.find(7), Some(2));
        assert_eq!(sums.find_pair(2, 7), Some((1, 2)));
        assert_eq!(sums.find_pair(7, 1), Some((2, 0)));
        sums.set(1, 0);
        assert_eq!(sums.total(), 2);
        assert_eq!(sums.find(2), Some(2));
        assert_eq!(sums.find_pair(1, 2), Some((0, 2)));
        assert_eq!(sums.find_pair(0, 2), None);
        assert_eq!(sums.find_pair(1, 3), None);
        sums.set(9, 3); // ignored
        assert_eq!(sums.total(), 2);
        let mut empty = WeightSums::new();
        empty.rebuild(core::iter::empty());
        assert_eq!(empty.find(1), None);
    }
}
