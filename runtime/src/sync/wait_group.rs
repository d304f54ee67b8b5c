//! [`WaitGroup`]: wait for a number of tasks to finish (Go's `sync.WaitGroup`).

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::{deadline_after, wait, Waiters};
use crate::park::ObjectId;

/// A counter of unfinished tasks: `add` before starting them, `done` as each finishes, and
/// `wait` parks until the count is zero.
///
/// ```
/// use std::rc::Rc;
/// use spindle_runtime::sync::WaitGroup;
///
/// spindle_runtime::run(|| {
///     let wg = Rc::new(WaitGroup::new());
///     for _ in 0..3 {
///         wg.add(1);
///         let wg = wg.clone();
///         spindle_runtime::spawn(move || wg.done());
///     }
///     wg.wait();
///     assert_eq!(wg.count(), 0);
/// });
/// ```
#[derive(Debug)]
pub struct WaitGroup {
    /// Tasks added and not yet done.
    count: Cell<usize>,
    /// Coroutines parked in `wait`; all woken when `count` reaches zero.
    waiters: Waiters,
    /// Its name in park reasons (`WaitGroup#3`).
    id: ObjectId,
}

impl WaitGroup {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `WaitGroup#3` (see [`ObjectId`](crate::park::ObjectId)).
    pub fn label(&self, label: &'static str) {
        self.id.label(label);
    }

    /// A wait group with nothing to wait for.
    pub const fn new() -> WaitGroup {
        WaitGroup { count: Cell::new(0), waiters: Waiters::new(), id: ObjectId::new("WaitGroup") }
    }

    /// Adds `n` tasks.
    pub fn add(&self, n: usize) {
        self.count.set(self.count.get().checked_add(n).expect("WaitGroup count overflowed"));
    }

    /// Marks one task done; wakes every waiter when it was the last.
    ///
    /// # Panics
    /// If called more times than tasks were added.
    pub fn done(&self) {
        let n = self.count.get();
        assert!(n > 0, "WaitGroup::done called more times than tasks were added");
        self.count.set(n - 1);
        if n == 1 {
            self.waiters.wake_all();
        }
    }

    /// Tasks not yet done.
    pub fn count(&self) -> usize {
        self.count.get()
    }

    /// Parks until the count is zero.
    #[track_caller]
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Like [`WaitGroup::wait`], giving up after `timeout`: returns whether the count reached 0.
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Some(deadline_after(timeout)))
    }

    #[track_caller]
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        if self.count.get() == 0 {
            return true;
        }
        // Notified: the count reached zero (it may have grown again since: that is a new
        // round). Timed out: it may still have reached zero meanwhile.
        wait!(self.waiters, self.id.reason("WaitGroup::wait"), deadline) || self.count.get() == 0
    }
}

impl Default for WaitGroup {
    fn default() -> WaitGroup {
        WaitGroup::new()
    }
}
