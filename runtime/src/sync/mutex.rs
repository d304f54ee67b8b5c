//! [`Mutex`]: mutual exclusion with FIFO handoff (Python's `threading.Lock`).

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::{deadline_after, tell_holder, Waiters, NO_HOLDER};
use crate::context;
use crate::park::ObjectId;

/// A lock for data shared by coroutines. `lock` parks the coroutine while another holds it.
///
/// Use it instead of `std::sync::Mutex` whenever a lock may be held across a yield point
/// (`sleep`, `recv`, a socket read, another `lock`): a std mutex would block the one OS thread
/// every coroutine runs on, and the holder could never run again to release it.
///
/// # Fairness
///
/// Unlocking with coroutines waiting hands the lock to the one that has waited longest: the
/// mutex stays locked, owned by the woken coroutine, until it runs and later unlocks. A
/// [`Mutex::try_lock`] in between fails, so waiters are served in arrival order and nobody
/// barges ahead of them. A waiter that times out or is cancelled leaves the queue and is never
/// handed the lock.
///
/// # Not guaranteed
///
/// No poisoning: a coroutine that panics (or is cancelled) while holding the guard unlocks on
/// the way out, and the data is whatever it left. Locking a mutex the coroutine already holds
/// parks it forever (a deadlock, which `run` reports); use [`super::ReentrantMutex`] for that.
///
/// ```
/// use std::rc::Rc;
/// use spindle_runtime::sync::Mutex;
///
/// spindle_runtime::run(|| {
///     let count = Rc::new(Mutex::new(0));
///     let handles: Vec<_> = (0..10)
///         .map(|_| {
///             let count = count.clone();
///             spindle_runtime::spawn(move || {
///                 let mut n = count.lock();
///                 spindle_runtime::yield_now(); // others run; the lock stays held
///                 *n += 1;
///             })
///         })
///         .collect();
///     for h in handles {
///         h.join().unwrap();
///     }
///     assert_eq!(*count.lock(), 10);
/// });
/// ```
pub struct Mutex<T: ?Sized> {
    /// True while a guard exists, or while the lock has been handed to a woken waiter that has
    /// not run yet. Unlocking with live waiters leaves it true (the handoff).
    locked: Cell<bool>,
    /// Id of the coroutine that took the lock last ([`NO_HOLDER`] outside one), for deadlock
    /// reports: `Mutex#3 held by #5`. Meaningful while `locked`.
    holder: Cell<u64>,
    /// Coroutines parked in `lock`, longest waiter first.
    waiters: Waiters,
    id: ObjectId,
    value: UnsafeCell<T>,
}

/// Holds a [`Mutex`] locked; unlocks (or hands the lock on) when dropped.
#[must_use = "the mutex unlocks as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    pub(crate) mutex: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            locked: Cell::new(false),
            holder: Cell::new(NO_HOLDER),
            waiters: Waiters::new(),
            id: ObjectId::new("Mutex"),
            value: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the data.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `Mutex#3` (see [`ObjectId`](crate::park::ObjectId)).
    pub fn label(&self, label: &'static str) {
        self.id.label(label);
    }

    /// Locks, parking the coroutine until the lock is free and its turn has come.
    ///
    /// # Panics
    /// When it must wait outside a coroutine of a running runtime.
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if !self.locked.get() {
            self.take();
            return MutexGuard { mutex: self };
        }
        self.lock_slow(None).expect("a lock without deadline does not time out");
        MutexGuard { mutex: self }
    }

    /// Locks if the mutex is free right now (and was not just handed to a waiter).
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        if self.locked.get() {
            return None;
        }
        self.take();
        Some(MutexGuard { mutex: self })
    }

    /// Like [`Mutex::lock`], but gives up after `timeout` and returns `None`.
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> Option<MutexGuard<'_, T>> {
        if let Some(guard) = self.try_lock() {
            return Some(guard);
        }
        self.lock_slow(Some(deadline_after(timeout))).map(|()| MutexGuard { mutex: self })
    }

    /// True while the mutex is held (or handed to a waiter that has not run yet).
    pub fn is_locked(&self) -> bool {
        self.locked.get()
    }

    /// Mutable access without locking: the borrow checker proves nobody else holds it.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// Parks until the lock is handed over (`Some`) or `deadline` passes (`None`). Unwinds
    /// when cancelled, having left the queue.
    #[cold]
    #[track_caller]
    pub(crate) fn lock_slow(&self, deadline: Option<Instant>) -> Option<()> {
        if !self.locked.get() {
            self.take();
            return Some(());
        }
        let object = self.id.number();
        let reason = self.id.reason_numbered("Mutex::lock", object);
        let tell = || tell_holder(object, self.holder.get(), &self.waiters);
        // The first waiter names the holder; later ones find it named (see `tell_holder`).
        let queued = || {
            if self.waiters.len() == 1 {
                tell();
            }
        };
        // `unlock` hands ownership over to the woken waiter: `locked` stays true.
        let handed = self.waiters.wait_with(reason, deadline, queued, tell);
        if handed {
            self.take();
            tell();
        }
        handed.then_some(())
    }

    /// Marks the lock taken by the running coroutine.
    #[inline]
    fn take(&self) {
        self.locked.set(true);
        self.holder.set(context::current_id().unwrap_or(NO_HOLDER));
    }

    /// Unlocks, or hands the lock to the longest live waiter.
    #[inline]
    pub(crate) fn unlock(&self) {
        if self.waiters.is_empty() || self.waiters.wake_one().is_none() {
            self.locked.set(false);
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard holds.
    pub(crate) fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while `locked` is true and was set for it: no other
        // guard, hence no other reference to the value, exists.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
