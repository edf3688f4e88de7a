//! The engine's event queue: a 4-ary min-heap on `(time, sequence number)`.
//!
//! Events at equal times come out in the order they were pushed (the sequence number breaks
//! ties), exactly as with a binary heap on the same key: the order depends only on the keys,
//! which are unique, not on the heap's layout. A 4-ary heap is half as deep as a binary one,
//! and its four children share a cache line or two, so a pop compares more but moves less.

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
        (self.t, self.seq) < (o.t, o.seq)
    }
}

/// A min-queue of events by `(time, push order)`.
#[derive(Clone, Debug)]
pub struct EventQueue<E> {
    heap: Vec<Entry<E>>,
    seq: u64,
}

impl<E: Copy> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Copy> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        EventQueue {
            heap: Vec::new(),
            seq: 0,
        }
    }

    /// Number of queued events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Queues `ev` at time `t`, after every event already queued at `t`.
    #[inline]
    pub fn push(&mut self, t: u64, ev: E) {
        self.seq += 1;
        let e = Entry {
            t,
            seq: self.seq,
            ev,
        };
        let mut i = self.heap.len();
        self.heap.push(e);
        // Sift up with a hole.
        while i > 0 {
            let p = (i - 1) / 4;
            if e.before(&self.heap[p]) {
                self.heap[i] = self.heap[p];
                i = p;
            } else {
                break;
            }
        }
        self.heap[i] = e;
    }

    /// The time of the earliest event.
    #[inline]
    pub fn peek_time(&self) -> Option<u64> {
        self.heap.first().map(|e| e.t)
    }

    /// Removes the earliest event: its time and payload.
    #[inline]
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let last = self.heap.pop()?;
        let n = self.heap.len();
        if n == 0 {
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
        Some((top.t, top.ev))
    }
}

#[cfg(test)]
mod tests {
    use super::EventQueue;

    /// Same order as sorting by (time, push order), on many random interleavings.
    #[test]
    fn order_is_time_then_push_order() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
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
}
