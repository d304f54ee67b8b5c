//! Timers: a min-heap of `(deadline, order)` with lazy removal.
//!
//! * The earlier deadline fires first; equal deadlines fire in the order they were set (the
//!   `order` counter breaks ties).
//! * A timer is never removed when its coroutine wakes some other way. It becomes *stale*: when
//!   it reaches the top its park sequence no longer matches and it is dropped for the price of a
//!   comparison. Stale entries are counted, and when they outnumber live ones (and there are
//!   many) the heap is rebuilt without them, so a program that sets long timeouts and is always
//!   woken early keeps a heap the size of its live timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// One armed timer: when it is due, wake park `seq` of the coroutine in slot `key`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub deadline: Instant,
    /// Insertion counter: equal deadlines fire in the order they were set.
    pub order: u64,
    pub key: usize,
    pub seq: u64,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    next_order: u64,
    /// Entries in `heap` whose park already ended another way. `heap.len() - stale` are live.
    stale: usize,
}

/// Rebuild the heap when more than this many entries are stale and they are the majority.
const COMPACT_MIN: usize = 1024;

impl Timers {
    pub(crate) fn insert(&mut self, deadline: Instant, key: usize, seq: u64) {
        let order = self.next_order;
        self.next_order += 1;
        self.heap.push(Reverse(Entry { deadline, order, key, seq }));
    }

    /// Records that one armed timer's park ended without it; `is_live` tells, if the heap is
    /// rebuilt now, which entries still matter.
    pub(crate) fn mark_stale(&mut self, is_live: impl Fn(&Entry) -> bool) {
        self.stale += 1;
        if self.stale > COMPACT_MIN && self.stale * 2 > self.heap.len() {
            let entries = std::mem::take(&mut self.heap).into_vec();
            self.heap = entries.into_iter().filter(|Reverse(e)| is_live(e)).collect();
            self.stale = 0;
        }
    }

    /// Number of timers whose park is still in progress.
    pub(crate) fn live(&self) -> usize {
        self.heap.len() - self.stale
    }

    /// Earliest deadline in the heap (possibly stale: the caller pops those through `pop_due`).
    pub(crate) fn peek(&self) -> Option<Entry> {
        self.heap.peek().map(|Reverse(e)| *e)
    }

    /// Pops the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.deadline <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Accounts for a popped entry that turned out stale.
    pub(crate) fn popped_stale(&mut self) {
        self.stale = self.stale.saturating_sub(1);
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
