//! Counting, when the runtime was built with `RuntimeBuilder::stats(true)`: what the runtime
//! did (resumptions, parks, wakes, polls, timers, coroutines) and, per coroutine, how long it
//! ran and what it waited on.
//!
//! Off by default, at no cost: the counting hooks sit on the drive loop's checked path (the
//! one a watchdog or a seed also selects) and behind one `Option` test on the wake path. On,
//! each switch reads the real clock twice (on resuming and on suspending; with the real clock,
//! one reading serves running and waiting time both) and updates an entry in a `Vec` indexed by
//! the coroutine's slot in the table; `cargo bench --bench core` measures it (the
//! `spindle_with_stats` row of the yield round trip).
//!
//! Running time is real time (the virtual clock stands still while a coroutine runs); waiting
//! time is on the runtime's clock, virtual when virtual.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::Core;
use crate::task::Task;

/// Counters of one runtime, from [`crate::stats`] or [`crate::Runtime::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Coroutines resumed by the scheduler (each run of a coroutine counts once).
    pub resumptions: u64,
    /// Parks that suspended (a park that ended while registering does not count).
    pub parks: u64,
    /// Parks ended by a waker, a timer or a cancellation.
    pub wakes: u64,
    /// Polls of the reactor (busy and idle).
    pub polls: u64,
    /// Readiness events the reactor reported.
    pub events: u64,
    /// Timers that fired (woke their coroutine).
    pub timers_fired: u64,
    /// Timer entries dropped because their park had ended some other way.
    pub timers_stale: u64,
    /// Coroutines spawned, main included.
    pub spawned: u64,
    /// Coroutines finished.
    pub finished: u64,
    /// Most coroutines alive at once.
    pub peak_live: u64,
    /// Longest the run queue has been.
    pub longest_run_queue: u64,
    /// Real time the scheduler spent waiting in the reactor with nothing to run.
    pub idle: Duration,
}

/// Counters of one coroutine, from [`crate::Coroutine::stats`] while it lives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoroutineStats {
    /// Times it was resumed.
    pub resumptions: u64,
    /// Real time it ran, all resumptions together.
    pub running: Duration,
    /// Its longest single run.
    pub longest_run: Duration,
    /// Time it spent parked, by what it waited on (the reason's `what`), on the runtime's clock.
    pub waiting: Vec<(&'static str, Duration)>,
    /// Parks of it that a waker, timer or cancellation ended.
    pub wakes: u64,
}

/// The counting state of a runtime built with stats on.
pub(crate) struct Counting {
    runtime: RefCell<Stats>,
    /// By slot in the table, while a coroutine lives there: its counters, with the start of
    /// its current run or park. A slot the scheduler has not resumed since it was spawned into
    /// holds `None` or a finished coroutine's entry (told apart by the id).
    coroutines: RefCell<Vec<Option<PerCoroutine>>>,
    /// The runtime's clock is the real one: a switch reads it once for both running and waiting
    /// time.
    real_clock: bool,
}

struct PerCoroutine {
    id: u64,
    stats: CoroutineStats,
    /// When its current run began (real clock).
    run_started: Option<Instant>,
    /// When its current park began (runtime clock), and on what.
    parked_since: Option<(Instant, &'static str)>,
}

impl Counting {
    pub(crate) fn new(real_clock: bool) -> Counting {
        Counting { runtime: RefCell::default(), coroutines: RefCell::default(), real_clock }
    }

    fn with(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.runtime.borrow_mut());
    }
}

impl Core {
    /// Counts with `f` if stats are on.
    #[inline]
    pub(super) fn count(&self, f: impl FnOnce(&mut Stats)) {
        if let Some(c) = &self.counting {
            c.with(f);
        }
    }

    /// The runtime's counters, `None` unless built with `RuntimeBuilder::stats(true)`.
    pub(crate) fn stats(&self) -> Option<Stats> {
        self.counting.as_ref().map(|c| c.runtime.borrow().clone())
    }

    /// The counters of coroutine `id` in slot `key`, while it lives.
    pub(crate) fn coroutine_stats(&self, key: usize, id: u64) -> Option<CoroutineStats> {
        let counting = self.counting.as_ref()?;
        if !self.is_alive(key, id) {
            return None;
        }
        let coroutines = counting.coroutines.borrow();
        match coroutines.get(key) {
            Some(Some(c)) if c.id == id => Some(c.stats.clone()),
            // Alive but not resumed yet.
            _ => Some(CoroutineStats::default()),
        }
    }

    /// A coroutine is about to be resumed.
    #[cold]
    pub(super) fn count_resume(&self, t: &Task) {
        let Some(c) = &self.counting else { return };
        let now = self.now();
        let queued = self.tasks.queued() as u64 + 1;
        c.with(|s| {
            s.resumptions += 1;
            s.longest_run_queue = s.longest_run_queue.max(queued);
        });
        let mut coroutines = c.coroutines.borrow_mut();
        if t.key >= coroutines.len() {
            coroutines.resize_with(t.key + 1, || None);
        }
        let slot = &mut coroutines[t.key];
        let entry = match slot {
            Some(entry) if entry.id == t.id => entry,
            _ => slot.insert(PerCoroutine {
                id: t.id,
                stats: CoroutineStats::default(),
                run_started: None,
                parked_since: None,
            }),
        };
        entry.stats.resumptions += 1;
        entry.run_started = Some(if c.real_clock { now } else { Instant::now() });
        if let Some((since, what)) = entry.parked_since.take() {
            add_wait(&mut entry.stats.waiting, what, now.saturating_duration_since(since));
        }
    }

    /// A coroutine gave the thread back; `parked` if it suspended in a park.
    #[cold]
    pub(super) fn count_suspend(&self, t: &Task, parked: bool) {
        let Some(c) = &self.counting else { return };
        if parked {
            c.with(|s| s.parks += 1);
        }
        let mut coroutines = c.coroutines.borrow_mut();
        let Some(Some(entry)) = coroutines.get_mut(t.key) else { return };
        let mut real_now = None;
        if let Some(start) = entry.run_started.take() {
            let now = Instant::now();
            real_now = Some(now);
            let ran = now.saturating_duration_since(start);
            entry.stats.running += ran;
            entry.stats.longest_run = entry.stats.longest_run.max(ran);
        }
        if parked {
            let now = match real_now {
                Some(now) if c.real_clock => now,
                _ => self.now(),
            };
            entry.parked_since = Some((now, t.reason().what));
        }
    }

    /// A park of `t`'s coroutine was ended by a waker, a timer or a cancellation.
    #[cold]
    pub(super) fn count_wake(&self, t: &Task) {
        let Some(c) = &self.counting else { return };
        c.with(|s| s.wakes += 1);
        if let Some(Some(entry)) = c.coroutines.borrow_mut().get_mut(t.key) {
            if entry.id == t.id {
                entry.stats.wakes += 1;
            }
        }
    }

    /// A coroutine was spawned; `live` coroutines are alive now.
    pub(super) fn count_spawn(&self, live: usize) {
        self.count(|s| {
            s.spawned += 1;
            s.peak_live = s.peak_live.max(live as u64);
        });
    }

    /// `t`'s coroutine finished.
    pub(super) fn count_finish(&self, t: &Task) {
        let Some(c) = &self.counting else { return };
        c.with(|s| s.finished += 1);
        if let Some(slot) = c.coroutines.borrow_mut().get_mut(t.key) {
            *slot = None;
        }
    }
}

/// Adds `d` to the wait of `what`.
fn add_wait(waiting: &mut Vec<(&'static str, Duration)>, what: &'static str, d: Duration) {
    match waiting.iter_mut().find(|(w, _)| *w == what) {
        Some((_, total)) => *total += d,
        None => waiting.push((what, d)),
    }
}
