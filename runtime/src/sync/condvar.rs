//! [`Condvar`]: wait for a condition on data behind a [`Mutex`] (Python's `threading.Condition`).

use std::time::{Duration, Instant};

use super::{deadline_after, Mutex, MutexGuard, Waiters};
use crate::park::ObjectId;

/// A condition variable: coroutines wait on it, holding a [`Mutex`], until another notifies.
///
/// `wait` unlocks the mutex (handing it to the next waiter if any), parks, and locks it again
/// before returning. Notifications are not stored: `notify_one` with nobody waiting does
/// nothing. Always wait in a loop on the condition ([`Condvar::wait_while`] does it for you):
/// by the time a woken waiter holds the mutex again, another coroutine may have changed the
/// data.
///
/// # Cancellation and timeouts
///
/// A waiter cancelled while parked leaves the queue and unwinds without relocking (its guard
/// was moved into `wait`, so nothing is unlocked twice). A waiter that was notified but is
/// cancelled while it waits to relock passes the notification on to the next waiter, so a
/// `notify_one` is never lost. `wait_timeout` relocks before returning, however long that
/// takes: the timeout bounds the wait for a notification only.
///
/// ```
/// use std::rc::Rc;
/// use spindle_runtime::sync::{Condvar, Mutex};
///
/// spindle_runtime::run(|| {
///     let pair = Rc::new((Mutex::new(false), Condvar::new()));
///     let p = pair.clone();
///     spindle_runtime::spawn(move || {
///         *p.0.lock() = true;
///         p.1.notify_one();
///     });
///     let (ready, cv) = &*pair;
///     let guard = cv.wait_while(ready.lock(), |ready| !*ready);
///     assert!(*guard);
/// });
/// ```
#[derive(Debug)]
pub struct Condvar {
    /// Coroutines parked in `wait*`, notified in FIFO order.
    waiters: Waiters,
    /// Its name in park reasons (`Condvar#3`).
    id: ObjectId,
}

/// Whether a [`Condvar::wait_timeout`] returned because its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because the timeout passed, not because of a notification.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `Condvar#3` (see [`ObjectId`](crate::park::ObjectId)).
    pub fn label(&self, label: &'static str) {
        self.id.label(label);
    }

    /// A condition variable nobody waits on.
    pub const fn new() -> Condvar {
        Condvar { waiters: Waiters::new(), id: ObjectId::new("Condvar") }
    }

    /// Unlocks the guard's mutex, parks until notified, and locks it again.
    #[track_caller]
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.wait_until(guard, None).0
    }

    /// Waits until `condition` returns false, checking it under the lock before every wait.
    #[track_caller]
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        while condition(&mut *guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// Like [`Condvar::wait`], giving up on the notification after `timeout`.
    #[track_caller]
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        self.wait_until(guard, Some(deadline_after(timeout)))
    }

    /// Like [`Condvar::wait_while`], giving up after `timeout` in total; the result says
    /// whether the condition was still true when time ran out.
    #[track_caller]
    pub fn wait_timeout_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let deadline = deadline_after(timeout);
        while condition(&mut *guard) {
            let (g, result) = self.wait_until(guard, Some(deadline));
            guard = g;
            if result.timed_out() {
                let still = condition(&mut *guard);
                return (guard, WaitTimeoutResult(still));
            }
        }
        (guard, WaitTimeoutResult(false))
    }

    /// Wakes the longest waiter, if any.
    pub fn notify_one(&self) {
        self.waiters.wake_one();
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.waiters.wake_all();
    }

    #[track_caller]
    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let mutex: &'a Mutex<T> = guard.mutex();
        // Unlocks once queued, so a notify from the coroutine the lock is handed to cannot be
        // missed. Cancelled before parking, the closure is dropped unrun and the guard with it:
        // the mutex is unlocked either way before the unwind.
        let unlock = move || drop(guard);
        let timed_out =
            !self.waiters.wait_with(self.id.reason("Condvar::wait"), deadline, unlock, || {});
        // Relock. A cancellation here must not swallow the notification we consumed.
        let relock = PassOnNotification { condvar: self, notified: !timed_out };
        mutex.lock_slow(None).expect("a lock without deadline does not time out");
        std::mem::forget(relock);
        (MutexGuard { mutex }, WaitTimeoutResult(timed_out))
    }
}

/// Passes a consumed notification on if the relock after it unwinds (cancellation).
struct PassOnNotification<'a> {
    condvar: &'a Condvar,
    /// The wait ended by a notification (not a timeout).
    notified: bool,
}

impl Drop for PassOnNotification<'_> {
    fn drop(&mut self) {
        if self.notified {
            self.condvar.notify_one();
        }
    }
}

impl Default for Condvar {
    fn default() -> Condvar {
        Condvar::new()
    }
}
