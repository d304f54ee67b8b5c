//! Timers: a min-heap of `(deadline, park sequence)` with lazy removal.
//!
//! * The earlier deadline fires first; equal deadlines fire in the order they were set (the
//!   park sequence number breaks ties).
//! * A timer is never removed when its coroutine wakes some other way. It becomes *stale*: when
//!   it reaches the top its park sequence no longer matches and it is dropped for the price of a
//!   comparison. Stale entries are counted, and when they outnumber live ones (and there are
//!   many) the heap is rebuilt without them, so a program that sets long timeouts and is always
//!   woken early keeps a heap the size of its live timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// One armed timer: when it is due, wake park `seq` of the coroutine in slot `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub deadline: Instant,
    pub key: usize,
    pub seq: u64,
}

/// An entry as the heap keeps it: 32 bytes rather than 40 (two to a cache line), since every
/// pop walks the heap from top to bottom and, with many timers, each level it visits is a
/// cache miss. The park sequence number doubles as the insertion order, since a park arms its
/// timer as it begins, in sequence order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    deadline: Instant,
    seq: u64,
    key: u32,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Slot>>,
    /// Entries in `heap` whose park already ended another way. `heap.len() - stale` are live.
    stale: usize,
}

/// Rebuild the heap when more than this many entries are stale and they are the majority.
const COMPACT_MIN: usize = 1024;

impl Timers {
    /// Arms a timer. `seq` must grow from one insert to the next: ties fire in that order.
    pub(crate) fn insert(&mut self, deadline: Instant, key: usize, seq: u64) {
        // Slab keys index live records, each on a stack of its own: far below 2^32.
        debug_assert!(key <= u32::MAX as usize);
        self.heap.push(Reverse(Slot { deadline, seq, key: key as u32 }));
    }

    fn entry(&self, slot: Slot) -> Entry {
        Entry { deadline: slot.deadline, key: slot.key as usize, seq: slot.seq }
    }

    /// Records that one armed timer's park ended without it; `is_live` tells, if the heap is
    /// rebuilt now, which entries still matter.
    pub(crate) fn mark_stale(&mut self, is_live: impl Fn(&Entry) -> bool) {
        self.stale += 1;
        if self.stale > COMPACT_MIN && self.stale * 2 > self.heap.len() {
            let slots = std::mem::take(&mut self.heap).into_vec();
            let live = slots.into_iter().filter(|&Reverse(s)| is_live(&self.entry(s)));
            self.heap = live.collect();
            self.stale = 0;
        }
    }

    /// Number of timers whose park is still in progress.
    pub(crate) fn live(&self) -> usize {
        self.heap.len() - self.stale
    }

    /// The slots of the entries that fire next: the earliest, then the two that may come
    /// after it (its children in the heap). For prefetching; may include stale entries.
    pub(crate) fn upcoming(&self) -> impl Iterator<Item = usize> + '_ {
        self.heap.as_slice().iter().take(3).map(|Reverse(s)| s.key as usize)
    }

    /// Earliest deadline in the heap (possibly stale: the caller pops those through `pop_due`).
    pub(crate) fn peek(&self) -> Option<Entry> {
        self.heap.peek().map(|&Reverse(s)| self.entry(s))
    }

    /// Pops the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        let due = self.entry(self.heap.peek()?.0);
        if due.deadline > now {
            return None;
        }
        self.heap.pop();
        Some(due)
    }

    /// Accounts for a popped entry that turned out stale.
    pub(crate) fn popped_stale(&mut self) {
        self.stale = self.stale.saturating_sub(1);
    }

    /// Entries in the heap, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earlier_first_then_insertion_order() {
        let mut t = Timers::default();
        let base = Instant::now();
        t.insert(base + Duration::from_millis(5), 1, 1);
        t.insert(base + Duration::from_millis(1), 2, 2);
        t.insert(base + Duration::from_millis(5), 3, 3);
        t.insert(base + Duration::from_millis(1), 4, 4);
        let now = base + Duration::from_secs(1);
        let order: Vec<usize> = std::iter::from_fn(|| t.pop_due(now)).map(|e| e.key).collect();
        assert_eq!(order, vec![2, 4, 1, 3]);
    }

    #[test]
    fn stale_majority_is_compacted() {
        let mut t = Timers::default();
        let base = Instant::now();
        for i in 0..3000 {
            t.insert(base, i, i as u64);
        }
        // The 1501st stale mark tips the balance (1501 > 1024 and 1501 * 2 > 3000).
        for _ in 0..1500 {
            t.mark_stale(|e| e.key >= 1501);
        }
        assert_eq!(t.heap.len(), 3000);
        t.mark_stale(|e| e.key >= 1501);
        assert_eq!(t.heap.len(), 1499);
        assert_eq!(t.live(), 1499);
    }
}
