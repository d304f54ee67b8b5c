//! [`ReentrantMutex`]: a lock its holder may take again (Python's `threading.RLock`).

use std::cell::Cell;
use std::fmt;
use std::ops::Deref;
use std::time::{Duration, Instant};

use super::{deadline_after, tell_holder, Waiters, NO_HOLDER};
use crate::context;
use crate::park::ObjectId;

/// A mutex the coroutine holding it may lock again; it is released when every guard is gone.
///
/// Guards give shared access only (`&T`), because two guards of one coroutine can coexist:
/// put a `Cell` or `RefCell` inside for mutation. Released with waiters, it is handed to the
/// longest waiter (FIFO), as [`super::Mutex`] is.
///
/// ```
/// use std::cell::Cell;
/// use spindle_runtime::sync::ReentrantMutex;
///
/// spindle_runtime::run(|| {
///     let lock = ReentrantMutex::new(Cell::new(0));
///     let outer = lock.lock();
///     let inner = lock.lock(); // the same coroutine: no deadlock
///     inner.set(inner.get() + 1);
///     drop(inner);
///     drop(outer);
///     assert_eq!(lock.lock().get(), 1);
/// });
/// ```
pub struct ReentrantMutex<T: ?Sized> {
    /// Id of the owning coroutine (or of the waiter it was handed to); `None` when free.
    owner: Cell<Option<u64>>,
    /// Guards the owner holds; the lock is released when it drops to zero.
    depth: Cell<usize>,
    /// Coroutines parked in `lock`, longest waiter first.
    waiters: Waiters,
    /// Its name in park reasons (`ReentrantMutex#3`).
    id: ObjectId,
    value: T,
}

/// Shared access to a [`ReentrantMutex`]'s data; the last guard of the owner releases it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ReentrantMutexGuard<'a, T: ?Sized> {
    lock: &'a ReentrantMutex<T>,
}

impl<T> ReentrantMutex<T> {
    /// An unlocked reentrant mutex holding `value`.
    pub const fn new(value: T) -> ReentrantMutex<T> {
        ReentrantMutex {
            owner: Cell::new(None),
            depth: Cell::new(0),
            waiters: Waiters::new(),
            id: ObjectId::new("ReentrantMutex"),
            value,
        }
    }

    /// Consumes the lock and returns the data.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: ?Sized> ReentrantMutex<T> {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `ReentrantMutex#3` (see [`ObjectId`](crate::park::ObjectId)).
    pub fn label(&self, label: &'static str) {
        self.id.label(label);
    }

    /// Locks, parking until the lock is free, unless this coroutine holds it already.
    ///
    /// # Panics
    /// Outside a coroutine of a running runtime (the owner is a coroutine).
    #[track_caller]
    pub fn lock(&self) -> ReentrantMutexGuard<'_, T> {
        self.lock_until(None).expect("a lock without deadline does not time out")
    }

    /// Locks if it is free or already held by this coroutine.
    pub fn try_lock(&self) -> Option<ReentrantMutexGuard<'_, T>> {
        let me = context::expect_current_id("ReentrantMutex::try_lock");
        self.try_enter(me)
    }

    /// Like [`ReentrantMutex::lock`], giving up after `timeout`.
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> Option<ReentrantMutexGuard<'_, T>> {
        self.lock_until(Some(deadline_after(timeout)))
    }

    /// True while some coroutine holds the lock (or it was handed to a waiter).
    pub fn is_locked(&self) -> bool {
        self.owner.get().is_some()
    }

    fn try_enter(&self, me: u64) -> Option<ReentrantMutexGuard<'_, T>> {
        match self.owner.get() {
            None => self.owner.set(Some(me)),
            Some(owner) if owner == me => {}
            Some(_) => return None,
        }
        self.depth.set(self.depth.get() + 1);
        Some(ReentrantMutexGuard { lock: self })
    }

    #[track_caller]
    fn lock_until(&self, deadline: Option<Instant>) -> Option<ReentrantMutexGuard<'_, T>> {
        let me = context::expect_current_id("ReentrantMutex::lock");
        if let Some(guard) = self.try_enter(me) {
            return Some(guard);
        }
        let object = self.id.number();
        let reason = self.id.reason_numbered("ReentrantMutex::lock", object);
        // Keeps the holder a deadlock report names (see `tell_holder`).
        let tell = || tell_holder(object, self.owner.get().unwrap_or(NO_HOLDER), &self.waiters);
        let queued = || {
            if self.waiters.len() == 1 {
                tell();
            }
        };
        // Handed over by `release`, which set `owner` to us and `depth` to 0.
        if !self.waiters.wait_with(reason, deadline, queued, tell) {
            return None;
        }
        tell();
        self.depth.set(1);
        Some(ReentrantMutexGuard { lock: self })
    }

    fn release(&self) {
        let depth = self.depth.get() - 1;
        self.depth.set(depth);
        if depth > 0 {
            return;
        }
        let next = self.waiters.wake_one().and_then(|w| w.coroutine_id());
        self.owner.set(next);
    }
}

impl<T: ?Sized> Deref for ReentrantMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.lock.value
    }
}

impl<T: ?Sized> Drop for ReentrantMutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.release();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ReentrantMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReentrantMutex")
            .field("owner", &self.owner.get())
            .field("depth", &self.depth.get())
            .field("data", &&self.value)
            .finish()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ReentrantMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for ReentrantMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
