//! The engine's event queue: a 4-ary min-heap on `(time, sequence number)`, plus lanes.
//!
//! Events at equal times come out in the order they were pushed (the sequence number breaks
//! ties), exactly as with a binary heap on the same key: the order depends only on the keys,
//! which are unique, not on the heap's layout. A 4-ary heap is half as deep as a binary one,
//! and its four children share a cache line or two, so a pop compares more but moves less.
//!
//! While it holds few events (at most 32), the heap's array is kept sorted instead, least
//! key last: a pop is the array's last entry and a push an insertion near the end, cheaper
//! than the heap's sifts at that size. Past 32 entries the array, reversed, is a heap (an
//! ascending array is one); below 16 the heap is sorted again. The order of the events is the
//! keys' either way.
//!
//! A source that never has more than one event queued (a service's next arrival) can queue
//! it in a lane of its own instead of the heap: it gets its key from the same sequence, and
//! [`EventQueue::pop`] takes the least key of the heap's top and the lanes', so the order is
//! the same, without a heap push and pop per event.

/// One queued item: its key `(t, seq)` and its payload.
#[derive(Clone, Copy, Debug)]
struct Entry<E> {
    t: u64,
    seq: u64,
    ev: E,
}

impl<E> Entry<E> {
    /// Whether `self` comes out before `o`.
    #[inline(always)]
    fn before(&self, o: &Self) -> bool {
        // One wide comparison instead of two with a branch between them.
        (((self.t as u128) << 64) | self.seq as u128) < (((o.t as u128) << 64) | o.seq as u128)
    }
}

/// Up to this many events in the heap's array, it is kept sorted (see the module docs).
const SMALL: usize = 32;

/// A min-queue of events by `(time, push order)`.
#[derive(Clone, Debug)]
pub struct EventQueue<E> {
    /// Sorted by descending key when `sorted`, else a 4-ary min-heap.
    heap: Vec<Entry<E>>,
    sorted: bool,
    /// One event at most per lane.
    lanes: Vec<Option<Entry<E>>>,
    /// The lane with the least key, if any lane holds an event.
    first_lane: Option<usize>,
    seq: u64,
}

impl<E: Copy> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Copy> EventQueue<E> {
    /// An empty queue, without lanes.
    pub fn new() -> Self {
        Self::with_lanes(0)
    }

    /// An empty queue with `n` lanes (see the module docs).
    pub fn with_lanes(n: usize) -> Self {
        EventQueue {
            heap: Vec::new(),
            sorted: true,
            lanes: vec![None; n],
            first_lane: None,
            seq: 0,
        }
    }

    /// Number of queued events.
    pub fn len(&self) -> usize {
        self.heap.len() + self.lanes.iter().flatten().count()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.first_lane.is_none()
    }

    fn entry(&mut self, t: u64, ev: E) -> Entry<E> {
        self.seq += 1;
        Entry {
            t,
            seq: self.seq,
            ev,
        }
    }

    /// Queues `ev` at time `t`, after every event already queued at `t`.
    #[inline(always)]
    pub fn push(&mut self, t: u64, ev: E) {
        let e = self.entry(t, ev);
        if self.sorted {
            if self.heap.len() < SMALL {
                // After every entry of a later time, before those of this time or earlier
                // (`e` has the largest sequence number yet).
                // An insertion with a hole, from the end: the few entries moved are copied
                // in place rather than by a call to `memmove`.
                // On a slice of its own, whose length the loop does not read again: each
                // step's index is then known to be in bounds.
                self.heap.push(e);
                let heap = self.heap.as_mut_slice();
                let mut i = heap.len() - 1;
                while i > 0 {
                    let prev = heap[i - 1];
                    if prev.t > t {
                        break;
                    }
                    heap[i] = prev;
                    i -= 1;
                }
                heap[i] = e;
                return;
            }
            self.make_heap();
        }
        let mut i = self.heap.len();
        self.heap.push(e);
        // Sift up with a hole. `e` has the largest sequence number yet, so it comes before
        // another entry exactly when its time is earlier.
        while i > 0 {
            let p = (i - 1) / 4;
            if t < self.heap[p].t {
                self.heap[i] = self.heap[p];
                i = p;
            } else {
                break;
            }
        }
        self.heap[i] = e;
    }

    /// Queues `ev` at time `t` in lane `lane`, after every event already queued at `t`, as
    /// [`EventQueue::push`] would.
    ///
    /// # Panics
    /// If the lane does not exist or already holds an event.
    #[inline]
    pub fn push_lane(&mut self, lane: usize, t: u64, ev: E) {
        let e = self.entry(t, ev);
        assert!(
            self.lanes[lane].is_none(),
            "lane {lane} already holds an event"
        );
        self.lanes[lane] = Some(e);
        // The new key is the largest of its time: first only if strictly earlier.
        let first = match self.first_lane {
            Some(f) => self.lanes[f].is_some_and(|x| t < x.t),
            None => true,
        };
        if first {
            self.first_lane = Some(lane);
        }
    }

    /// The sorted array, ascending, as a heap.
    #[cold]
    #[inline(never)]
    fn make_heap(&mut self) {
        self.heap.reverse();
        self.sorted = false;
    }

    /// The heap, sorted (descending).
    #[cold]
    #[inline(never)]
    fn make_sorted(&mut self) {
        self.heap
            .sort_unstable_by_key(|e| core::cmp::Reverse((e.t, e.seq)));
        self.sorted = true;
    }

    /// The least entry of the heap's array.
    #[inline(always)]
    fn least(&self) -> Option<&Entry<E>> {
        if self.sorted {
            self.heap.last()
        } else {
            self.heap.first()
        }
    }

    /// The time of the earliest event.
    #[inline]
    pub fn peek_time(&self) -> Option<u64> {
        let heap = self.least().map(|e| e.t);
        let lane = self.first_lane.and_then(|f| self.lanes[f]).map(|e| e.t);
        match (heap, lane) {
            (Some(h), Some(l)) => Some(h.min(l)),
            (h, l) => h.or(l),
        }
    }

    /// Removes the earliest event: its time and payload.
    #[inline]
    pub fn pop(&mut self) -> Option<(u64, E)> {
        if let Some(f) = self.first_lane {
            let least = self.least();
            if self.lanes[f]
                .as_ref()
                .is_some_and(|l| least.is_none_or(|h| l.before(h)))
            {
                let l = self.lanes[f].take()?;
                // One lane (one service): it was the only one with an event.
                self.first_lane = if self.lanes.len() == 1 {
                    None
                } else {
                    self.find_first_lane()
                };
                return Some((l.t, l.ev));
            }
        }
        self.pop_heap()
    }

    #[cold]
    fn find_first_lane(&self) -> Option<usize> {
        let mut first: Option<(usize, Entry<E>)> = None;
        for (i, l) in self.lanes.iter().enumerate() {
            if let Some(e) = l {
                if first.is_none_or(|(_, f)| e.before(&f)) {
                    first = Some((i, *e));
                }
            }
        }
        first.map(|(i, _)| i)
    }

    #[inline]
    fn pop_heap(&mut self) -> Option<(u64, E)> {
        let last = self.heap.pop()?;
        if self.sorted {
            return Some((last.t, last.ev));
        }
        let n = self.heap.len();
        if n == 0 {
            self.sorted = true;
            return Some((last.t, last.ev));
        }
        let top = self.heap[0];
        // Sift `last` down from the root with a hole.
        let mut i = 0;
        loop {
            let c = 4 * i + 1;
            if c >= n {
                break;
            }
            let end = (c + 4).min(n);
            let mut m = c;
            for j in c + 1..end {
                if self.heap[j].before(&self.heap[m]) {
                    m = j;
                }
            }
            if self.heap[m].before(&last) {
                self.heap[i] = self.heap[m];
                i = m;
            } else {
                break;
            }
        }
        self.heap[i] = last;
        if n < SMALL / 2 {
            self.make_sorted();
        }
        Some((top.t, top.ev))
    }
}

#[cfg(test)]
mod tests {
    use super::EventQueue;

    /// A xorshift64 generator from a non-zero seed.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// Same order as sorting by (time, push order), on many random interleavings.
    #[test]
    fn order_is_time_then_push_order() {
        let mut rnd = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut q = EventQueue::new();
        let mut model: Vec<(u64, u64)> = Vec::new();
        let mut id = 0u64;
        for _ in 0..20_000 {
            if rnd() % 3 != 0 || model.is_empty() {
                let t = rnd() % 50;
                id += 1;
                q.push(t, id);
                model.push((t, id));
            } else {
                model.sort();
                let want = model.remove(0);
                assert_eq!(q.pop(), Some(want));
            }
            assert_eq!(q.len(), model.len());
        }
        model.sort();
        for want in model {
            assert_eq!(q.pop(), Some(want));
        }
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }

    /// Sizes that cross the sorted array's bound both ways, many times, with many equal
    /// times: the same order as sorting by (time, push order).
    #[test]
    fn order_across_the_sorted_bound() {
        let mut rnd = xorshift(0x5851_f42d_4c95_7f2d);
        let mut q = EventQueue::new();
        let mut model: Vec<(u64, u64)> = Vec::new();
        let mut id = 0u64;
        let mut now = 0u64;
        for _ in 0..400 {
            let target = (rnd() % (3 * super::SMALL as u64)) as usize;
            while model.len() != target {
                if model.len() < target {
                    // Never before the last time popped, as the engine pushes.
                    let t = now + rnd() % 20;
                    id += 1;
                    q.push(t, id);
                    model.push((t, id));
                } else {
                    model.sort();
                    let want = model.remove(0);
                    assert_eq!(q.peek_time(), Some(want.0));
                    assert_eq!(q.pop(), Some(want));
                    now = want.0;
                }
                assert_eq!(q.len(), model.len());
            }
        }
    }

    /// With lanes: the same order as with every event in the heap.
    #[test]
    fn lanes_keep_the_order() {
        let mut rnd = xorshift(0x2545_f491_4f6c_dd1d);
        const LANES: usize = 3;
        let mut q = EventQueue::with_lanes(LANES);
        // (time, id, lane): lane LANES for the heap.
        let mut model: Vec<(u64, u64, usize)> = Vec::new();
        let mut busy = [false; LANES];
        let mut id = 0u64;
        for _ in 0..50_000 {
            if rnd() % 3 != 0 || model.is_empty() {
                let t = rnd() % 40;
                let lane = (rnd() % (LANES as u64 + 1)) as usize;
                id += 1;
                if lane < LANES && !busy[lane] {
                    busy[lane] = true;
                    q.push_lane(lane, t, (id, lane));
                    model.push((t, id, lane));
                } else {
                    q.push(t, (id, LANES));
                    model.push((t, id, LANES));
                }
            } else {
                model.sort();
                let (t, id, lane) = model.remove(0);
                assert_eq!(q.peek_time(), Some(t));
                assert_eq!(q.pop(), Some((t, (id, lane))));
                if lane < LANES {
                    busy[lane] = false;
                }
            }
            assert_eq!(q.len(), model.len());
        }
        model.sort();
        for (t, id, lane) in model {
            assert_eq!(q.pop(), Some((t, (id, lane))));
        }
        assert!(q.is_empty());
    }
}
