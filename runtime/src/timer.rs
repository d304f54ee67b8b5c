//! Timers: a wheel of time slots in front of a small heap, with lazy removal.
//!
//! * The earlier deadline fires first; equal deadlines fire in the order they were set (the
//!   park sequence number breaks ties). The order is exact, whatever the slots' width: the
//!   slots only decide *when* an entry enters the heap, the heap decides the order.
//! * A timer is never removed when its coroutine wakes some other way. It becomes *stale*: when
//!   it reaches the top its park sequence no longer matches and it is dropped for the price of a
//!   comparison. Stale entries are counted, and when they outnumber live ones (and there are
//!   many) every entry is filtered, so a program that sets long timeouts and is always woken
//!   early keeps as many entries as it has live timers.
//!
//! # Ticks
//!
//! An entry keeps its deadline as a tick (nanoseconds since the runtime's clock was made, see
//! `scheduler::clock`), a `u64` rather than an `Instant`, so that finding its slot is a shift
//! and comparing two is one instruction.
//!
//! # Where an entry waits
//!
//! Time is cut into slots of [`SLOT_SHIFT`] bits of nanoseconds (16 µs) from the runtime's
//! start. Every entry is in exactly one of three places, by the slot its deadline falls in:
//!
//! | slot of the deadline | kept in | order kept |
//! |---|---|---|
//! | `current` or earlier | `run`, sorted, and `late`, a binary heap | exact |
//! | the next [`SLOTS`] - 1 after `current` | `wheel`, one unordered list per slot | by slot |
//! | later | `far`, a binary heap | exact |
//!
//! Every entry of `run` and `late` is due before every entry elsewhere, so the earlier of
//! their two firsts is the earliest timer. When both run empty, `current` moves on to the next
//! slot that holds entries (in the wheel or at the top of `far`), the entries of `far` that the
//! wheel now spans move into it, and that slot's list, sorted, becomes the new `run`; entries
//! armed for the current slot after that (a sleep shorter than a slot) go to `late`. Arming a
//! timer is thus mostly an append to one slot's list, and firing one a pop from the end of a
//! sorted list of one slot's entries rather than from a heap of them all: with 100,000 timers
//! armed, such a heap spans megabytes and each pop waits for memory at every level it walks
//! down, while one slot's entries fit the core's own cache. And since `run` is in firing
//! order, the scheduler can see which coroutines the next few timers wake ([`Timers::upcoming`])
//! and ask for their memory ahead.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One armed timer: at tick `at` (see the module docs), wake park `seq` of the coroutine in
/// slot `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub at: u64,
    pub key: usize,
    pub seq: u64,
}

/// An entry as the timers keep it: 24 bytes rather than 40. The park sequence number doubles
/// as the insertion order, since a park arms its timer as it begins, in sequence order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    at: u64,
    seq: u64,
    key: u32,
}

/// A min-heap of entries.
type Heap = BinaryHeap<Reverse<Slot>>;

/// A slot of time is `2^SLOT_SHIFT` ns (16.4 µs) wide.
const SLOT_SHIFT: u32 = 14;

/// Slots the wheel spans from the current one on (4096 x 16.4 µs = 67 ms).
const SLOTS: usize = 4096;

/// Words of the wheel's occupancy bitmap.
const WORDS: usize = SLOTS / 64;

/// Filter out stale entries when more than this many are stale and they are the majority.
const COMPACT_MIN: usize = 1024;

pub(crate) struct Timers {
    /// The slot `run` and `late` cover, with all earlier ones.
    current: u64,
    /// The entries of slot `current` (and earlier) as it became current, sorted latest first:
    /// the earliest is last.
    run: Vec<Slot>,
    /// The entries armed for slot `current` or earlier after it became current: a heap.
    late: Heap,
    /// The entries of slots `current + 1 .. current + SLOTS`, slot `i`'s at `i % SLOTS`, in no
    /// order. Empty until the first entry goes there (a runtime that arms no timers pays
    /// nothing for it).
    wheel: Vec<Vec<Slot>>,
    /// Bit `i % 64` of word `i / 64` is set when `wheel[i]` holds entries; made with the
    /// wheel.
    occupied: Vec<u64>,
    /// Entries in `wheel`.
    in_wheel: usize,
    /// The entries of slots `current + SLOTS` and later.
    far: Heap,
    /// Entries in all three, stale ones included.
    len: usize,
    /// Entries whose park already ended another way. `len - stale` are live.
    stale: usize,
    /// How many of the last entries of `run` (the next to fire) [`Timers::hand_out_next`] has
    /// handed out.
    handed_out: usize,
}

impl Timers {
    /// No timers; slot 0 begins at tick 0.
    pub(crate) fn new() -> Timers {
        Timers {
            current: 0,
            run: Vec::new(),
            late: Heap::new(),
            wheel: Vec::new(),
            occupied: Vec::new(),
            in_wheel: 0,
            far: Heap::new(),
            len: 0,
            stale: 0,
            handed_out: 0,
        }
    }

    /// Arms a timer. `seq` must grow from one insert to the next: ties fire in that order.
    #[inline]
    pub(crate) fn insert(&mut self, at: u64, key: usize, seq: u64) {
        // Slab keys index live records, each on a stack of its own: far below 2^32.
        debug_assert!(key <= u32::MAX as usize);
        self.len += 1;
        self.place(Slot { at, seq, key: key as u32 });
    }

    /// Puts `slot` where its deadline's slot says (see the module docs).
    #[inline(always)]
    fn place(&mut self, slot: Slot) {
        let index = slot.at >> SLOT_SHIFT;
        if index <= self.current {
            self.late.push(Reverse(slot));
        } else if index - self.current < SLOTS as u64 {
            if self.wheel.is_empty() {
                self.wheel = (0..SLOTS).map(|_| Vec::new()).collect();
                self.occupied = vec![0; WORDS];
            }
            let at = (index % SLOTS as u64) as usize;
            self.wheel[at].push(slot);
            self.occupied[at / 64] |= 1 << (at % 64);
            self.in_wheel += 1;
        } else {
            self.far.push(Reverse(slot));
        }
    }

    /// Makes `run` or `late` hold the earliest entry, if there is any: while both are empty,
    /// moves `current` on to the next slot that holds entries.
    #[inline]
    fn refill(&mut self) {
        while self.run.is_empty() && self.late.is_empty() && self.len > 0 {
            self.advance();
        }
    }

    /// `run` and `late` are empty: moves `current` to the next slot with entries, moves the
    /// entries of `far` the wheel now spans into it, and makes the slot's list, sorted, the new
    /// `run`.
    #[cold]
    #[inline(never)]
    fn advance(&mut self) {
        let in_wheel = self.next_occupied();
        let in_far = self.far.peek().map(|&Reverse(s)| s.at >> SLOT_SHIFT);
        let next = match (in_wheel, in_far) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).expect("len > 0, and run and late are empty"),
        };
        self.current = next;
        if in_wheel == Some(next) {
            let at = (next % SLOTS as u64) as usize;
            // The emptied run's allocation becomes the slot's next list.
            std::mem::swap(&mut self.run, &mut self.wheel[at]);
            self.in_wheel -= self.run.len();
            self.occupied[at / 64] &= !(1 << (at % 64));
        }
        if !self.far.is_empty() {
            self.take_from_far();
        }
        if self.run.len() > 1 {
            sort_latest_first(&mut self.run);
        }
        self.handed_out = 0;
    }

    /// Moves the entries of `far` that the wheel spans from `current` on into it (those of
    /// slot `current` into `run`).
    #[inline(never)]
    fn take_from_far(&mut self) {
        while let Some(&Reverse(s)) = self.far.peek() {
            let index = s.at >> SLOT_SHIFT;
            if index - self.current >= SLOTS as u64 {
                break;
            }
            self.far.pop();
            if index <= self.current {
                self.run.push(s);
            } else {
                self.place(s);
            }
        }
    }

    /// The earliest entry (of `run` and `late`, which `refill` filled), and whether it is
    /// `run`'s.
    #[inline]
    fn first(&self) -> Option<(Slot, bool)> {
        if self.late.is_empty() {
            return self.run.last().map(|&r| (r, true));
        }
        match (self.run.last(), self.late.peek()) {
            (Some(&r), Some(&Reverse(l))) if l < r => Some((l, false)),
            (Some(&r), _) => Some((r, true)),
            (None, l) => l.map(|&Reverse(l)| (l, false)),
        }
    }

    /// The first slot after `current` whose list in the wheel holds entries.
    fn next_occupied(&self) -> Option<u64> {
        if self.in_wheel == 0 {
            return None;
        }
        let start = ((self.current + 1) % SLOTS as u64) as usize;
        let (word, bit) = (start / 64, start % 64);
        // From `start` round the wheel: the rest of its word, the other words, then the part
        // of its word before it.
        for step in 0..=WORDS {
            let w = (word + step) % WORDS;
            let bits = match step {
                0 => self.occupied[w] & (!0u64 << bit),
                WORDS => self.occupied[w] & !(!0u64 << bit),
                _ => self.occupied[w],
            };
            if bits != 0 {
                let at = w * 64 + bits.trailing_zeros() as usize;
                let ahead = (at + SLOTS - start) % SLOTS;
                return Some(self.current + 1 + ahead as u64);
            }
        }
        unreachable!("in_wheel > 0, so some slot is occupied")
    }

    /// Records that one armed timer's park ended without it; `is_live` tells, if stale entries
    /// are filtered out now, which entries still matter.
    pub(crate) fn mark_stale(&mut self, is_live: impl Fn(&Entry) -> bool) {
        self.stale += 1;
        if self.stale > COMPACT_MIN && self.stale * 2 > self.len {
            let keep = |s: &Slot| is_live(&entry(*s));
            let late = std::mem::take(&mut self.late).into_iter().filter(|Reverse(s)| keep(s));
            let far = std::mem::take(&mut self.far).into_iter().filter(|Reverse(s)| keep(s));
            let (late, far): (Heap, Heap) = (late.collect(), far.collect());
            self.run.retain(keep);
            let mut wheel = std::mem::take(&mut self.wheel);
            self.in_wheel = 0;
            for (at, list) in wheel.iter_mut().enumerate() {
                list.retain(keep);
                self.in_wheel += list.len();
                if list.is_empty() {
                    self.occupied[at / 64] &= !(1 << (at % 64));
                }
            }
            (self.late, self.far, self.wheel) = (late, far, wheel);
            self.len = self.run.len() + self.late.len() + self.in_wheel + self.far.len();
            self.stale = 0;
        }
    }

    /// Number of timers whose park is still in progress.
    pub(crate) fn live(&self) -> usize {
        self.len - self.stale
    }

    /// The slot keys of the entries of the current slot that fire next, in the order they
    /// fire (those armed since it became current aside). For prefetching; may include stale
    /// entries.
    pub(crate) fn upcoming(&self) -> impl Iterator<Item = usize> + '_ {
        self.run.iter().rev().map(|s| s.key as usize)
    }

    /// For prefetching in batches: when no more than `batch` of the entries that fire next
    /// were handed out yet, the slot keys of the following ones, up to `2 * batch` ahead, in
    /// firing order (those armed since the slot became current aside); else nothing. Each
    /// entry is handed out once.
    pub(crate) fn hand_out_next(&mut self, batch: usize) -> impl Iterator<Item = usize> + '_ {
        let (len, from) = (self.run.len(), self.handed_out);
        if from <= batch {
            self.handed_out = (2 * batch).min(len);
        }
        let to = self.handed_out.max(from);
        self.run[len - to..len - from.min(to)].iter().rev().map(|s| s.key as usize)
    }

    /// Earliest deadline armed (possibly stale: the caller pops those through `pop_due`).
    #[inline]
    pub(crate) fn peek(&mut self) -> Option<Entry> {
        // Mostly the end of `run`, with nothing armed for the current slot since.
        if let (true, Some(&s)) = (self.late.is_empty(), self.run.last()) {
            return Some(entry(s));
        }
        self.peek_slow()
    }

    #[inline(never)]
    fn peek_slow(&mut self) -> Option<Entry> {
        self.refill();
        self.first().map(|(s, _)| entry(s))
    }

    /// Pops the earliest entry if it is due at tick `now` (`u64::MAX`: whenever it is due).
    #[inline]
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<Entry> {
        // Mostly the end of `run`, with nothing armed for the current slot since.
        if let (true, Some(&s)) = (self.late.is_empty(), self.run.last()) {
            if s.at > now {
                return None;
            }
            self.run.pop();
            self.handed_out = self.handed_out.saturating_sub(1);
            self.len -= 1;
            return Some(entry(s));
        }
        self.pop_due_slow(now)
    }

    #[inline(never)]
    fn pop_due_slow(&mut self, now: u64) -> Option<Entry> {
        self.refill();
        let (due, in_run) = self.first()?;
        if due.at > now {
            return None;
        }
        if in_run {
            self.run.pop();
            self.handed_out = self.handed_out.saturating_sub(1);
        } else {
            self.late.pop();
        }
        self.len -= 1;
        Some(entry(due))
    }

    /// Accounts for a popped entry that turned out stale.
    pub(crate) fn popped_stale(&mut self) {
        self.stale = self.stale.saturating_sub(1);
    }

    /// Entries armed, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Sorts one slot's entries latest first. A slot mostly holds a few entries (a hundred
/// coroutines sleeping a millisecond put one or two in each), for which the library's sort
/// costs more in its dispatch than in comparisons: those are sorted by insertion here.
fn sort_latest_first(run: &mut [Slot]) {
    if run.len() > 16 {
        // By deadline, then sequence (unique, so the key never counts): one 128-bit
        // comparison rather than a chain of three.
        let order = |s: &Slot| Reverse(u128::from(s.at) << 64 | u128::from(s.seq));
        run.sort_unstable_by_key(order);
        return;
    }
    for i in 1..run.len() {
        let s = run[i];
        let mut j = i;
        while j > 0 && run[j - 1] < s {
            run[j] = run[j - 1];
            j -= 1;
        }
        run[j] = s;
    }
}

#[inline]
fn entry(slot: Slot) -> Entry {
    Entry { at: slot.at, key: slot.key as usize, seq: slot.seq }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn drain(t: &mut Timers, now: u64) -> Vec<usize> {
        std::iter::from_fn(|| t.pop_due(now)).map(|e| e.key).collect()
    }

    #[test]
    fn earlier_first_then_insertion_order() {
        let mut t = Timers::new();
        t.insert(5 * MS, 1, 1);
        t.insert(MS, 2, 2);
        t.insert(5 * MS, 3, 3);
        t.insert(MS, 4, 4);
        assert_eq!(drain(&mut t, 1000 * MS), vec![2, 4, 1, 3]);
        assert!(t.is_empty());
    }

    /// Deadlines in the current slot, in the wheel and beyond it, armed in any order and
    /// interleaved with pops, come out exactly as a single heap orders them.
    #[test]
    fn every_place_fires_in_exact_order() {
        let mut t = Timers::new();
        let mut reference = BinaryHeap::new();
        let mut rng = crate::rng::Rng::new(7);
        let mut now = 0;
        let mut fired = Vec::new();
        let mut expected = Vec::new();
        for seq in 1..20_000u64 {
            // Mostly within the wheel, some in the current slot, some far beyond it.
            let nanos = match rng.below(10) {
                0 => rng.below(1 << SLOT_SHIFT),
                1 => rng.below(10_000_000_000),
                _ => rng.below(5_000_000),
            };
            let at = now + nanos + 1;
            t.insert(at, seq as usize, seq);
            reference.push(Reverse((at, seq)));
            if rng.below(2) == 0 {
                let next = t.peek().expect("just armed one");
                assert_eq!(next.at, reference.peek().unwrap().0 .0);
                now = next.at;
                fired.extend(drain(&mut t, now));
                while reference.peek().is_some_and(|r| r.0 .0 <= now) {
                    expected.push(reference.pop().unwrap().0 .1 as usize);
                }
            }
        }
        fired.extend(drain(&mut t, u64::MAX));
        expected.extend(std::iter::from_fn(|| reference.pop()).map(|r| r.0 .1 as usize));
        assert_eq!(fired, expected);
        assert!(t.is_empty());
    }

    /// `hand_out_next` hands out every entry of the slot once, in firing order, and at most
    /// twice the batch ahead of the next one to fire.
    #[test]
    fn prefetch_keys_come_once_in_firing_order() {
        let mut t = Timers::new();
        // One slot's worth, armed latest first: the run sorts them.
        for i in 0..50u64 {
            t.insert(20_000 + 100 - i, i as usize, i + 1);
        }
        assert!(t.peek().is_some());
        let (mut handed, mut fired) = (Vec::new(), Vec::new());
        loop {
            handed.extend(t.hand_out_next(4));
            assert!(handed.len() <= fired.len() + 8);
            match t.pop_due(1000 * MS) {
                Some(e) => fired.push(e.key),
                None => break,
            }
        }
        assert_eq!(fired, (0..50).rev().collect::<Vec<_>>());
        assert_eq!(handed, fired);
    }

    #[test]
    fn stale_majority_is_filtered() {
        let mut t = Timers::new();
        for i in 0..3000 {
            // A third each in the current slot, the wheel and beyond it.
            let at = (i % 3) as u64 * 50 * MS;
            t.insert(at, i, i as u64);
        }
        // The 1501st stale mark tips the balance (1501 > 1024 and 1501 * 2 > 3000).
        for _ in 0..1500 {
            t.mark_stale(|e| e.key >= 1501);
        }
        assert_eq!(t.len(), 3000);
        t.mark_stale(|e| e.key >= 1501);
        assert_eq!(t.len(), 1499);
        assert_eq!(t.live(), 1499);
        let keys = drain(&mut t, 1000 * MS);
        assert_eq!(keys.len(), 1499);
        assert!(keys.iter().all(|&k| k >= 1501));
    }
}
