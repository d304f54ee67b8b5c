//! [`Event`]: a flag coroutines wait for (Python's `threading.Event`).

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::{deadline_after, wait, Waiters};
use crate::park::ObjectId;

/// A flag, initially clear. `wait` parks until it is set; `set` wakes every waiter.
///
/// A waiter woken by `set` returns `true` even if the flag was cleared again before it ran,
/// as in Python: it saw the event happen.
///
/// ```
/// use std::rc::Rc;
/// use spindle_runtime::sync::Event;
///
/// spindle_runtime::run(|| {
///     let ready = Rc::new(Event::new());
///     let r = ready.clone();
///     let waiter = spindle_runtime::spawn(move || r.wait());
///     ready.set();
///     assert!(waiter.join().unwrap());
///     assert!(ready.is_set());
/// });
/// ```
#[derive(Debug)]
pub struct Event {
    /// The flag.
    set: Cell<bool>,
    /// Coroutines parked in `wait`; all woken by `set`.
    waiters: Waiters,
    /// Its name in park reasons (`Event#3`).
    id: ObjectId,
}

impl Event {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `Event#3` (see [`ObjectId`](crate::park::ObjectId)).
    pub fn label(&self, label: &'static str) {
        self.id.label(label);
    }

    /// A clear event.
    pub const fn new() -> Event {
        Event { set: Cell::new(false), waiters: Waiters::new(), id: ObjectId::new("Event") }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.set.set(true);
        self.waiters.wake_all();
    }

    /// Clears the flag; later `wait`s park until the next `set`.
    pub fn clear(&self) {
        self.set.set(false);
    }

    /// True if the flag is set.
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Parks until the flag is set (returns at once if it is). Always returns `true`.
    #[track_caller]
    pub fn wait(&self) -> bool {
        self.wait_until(None)
    }

    /// Like [`Event::wait`], giving up after `timeout`: returns whether the event was set.
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Some(deadline_after(timeout)))
    }

    #[track_caller]
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        if self.set.get() {
            return true;
        }
        // Timed out: the flag may still have been set meanwhile.
        wait!(self.waiters, self.id.reason("Event::wait"), deadline) || self.set.get()
    }
}

impl Default for Event {
    fn default() -> Event {
        Event::new()
    }
}
