//! [`RwLock`]: many readers or one writer, with neither side starving.

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::{deadline_after, Waiters};
use crate::park::{ObjectId, Reason};

/// A reader-writer lock: any number of readers, or one writer.
///
/// # Policy: phase-fair, no starvation
///
/// * A reader gets in at once only if no writer holds the lock **and no writer waits**. Once
///   a writer waits, new readers queue behind it, so a stream of readers cannot starve it.
/// * When the last reader leaves, the lock is handed to the longest-waiting writer.
/// * When a writer unlocks, every reader waiting at that moment is let in as one batch; if
///   none waits, the lock goes to the next writer. So a stream of writers cannot starve
///   readers either: they get in after at most one writer.
///
/// Handoffs reserve the lock for the woken coroutines, as [`super::Mutex`] does. A waiter that
/// times out or is cancelled leaves without trace; when the last waiting writer leaves that way,
/// the readers queued behind it are let in.
///
/// # Not guaranteed
///
/// Taking a read lock again while holding one deadlocks if a writer started waiting in
/// between (the second read queues behind the writer, which waits for the first read).
///
/// ```
/// use spindle_runtime::sync::RwLock;
///
/// spindle_runtime::run(|| {
///     let lock = RwLock::new(vec![1, 2]);
///     {
///         let a = lock.read();
///         let b = lock.read(); // many readers at once
///         assert_eq!(a.len() + b.len(), 4);
///     }
///     lock.write().push(3);
///     assert_eq!(*lock.read(), [1, 2, 3]);
/// });
/// ```
pub struct RwLock<T: ?Sized> {
    /// Readers holding the lock, including readers handed it that have not run yet.
    readers: Cell<usize>,
    /// A writer holds the lock (or it was handed to a woken writer that has not run yet).
    writer: Cell<bool>,
    /// Readers parked and not yet handed the lock. Decremented by the hand-off, or by the
    /// reader itself when it times out or is cancelled.
    readers_waiting: Cell<usize>,
    /// Writers parked and not yet handed the lock; same protocol as `readers_waiting`.
    writers_waiting: Cell<usize>,
    /// Parked readers.
    read_waiters: Waiters,
    /// Its name in park reasons (`RwLock#3`).
    id: ObjectId,
    /// Parked writers, longest first.
    write_waiters: Waiters,
    value: UnsafeCell<T>,
}

/// Shared access to an [`RwLock`]'s data.
#[must_use = "the read lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

/// Exclusive access to an [`RwLock`]'s data.
#[must_use = "the write lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            readers: Cell::new(0),
            writer: Cell::new(false),
            readers_waiting: Cell::new(0),
            writers_waiting: Cell::new(0),
            read_waiters: Waiters::new(),
            id: ObjectId::new("RwLock"),
            write_waiters: Waiters::new(),
            value: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns the data.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `RwLock#3` (see [`ObjectId`](crate::park::ObjectId)).
    pub fn label(&self, label: &'static str) {
        self.id.label(label);
    }

    /// Takes a shared lock, parking while a writer holds or waits for the lock.
    #[track_caller]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.read_until(None).expect("a lock without deadline does not time out")
    }

    /// Takes a shared lock if that needs no waiting.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        if self.writer.get() || self.writers_waiting.get() > 0 {
            return None;
        }
        self.readers.set(self.readers.get() + 1);
        Some(RwLockReadGuard { lock: self })
    }

    /// Like [`RwLock::read`], giving up after `timeout`.
    #[track_caller]
    pub fn read_timeout(&self, timeout: Duration) -> Option<RwLockReadGuard<'_, T>> {
        self.read_until(Some(deadline_after(timeout)))
    }

    /// Takes the exclusive lock, parking while anyone holds it or earlier writers wait.
    #[track_caller]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.write_until(None).expect("a lock without deadline does not time out")
    }

    /// Takes the exclusive lock if that needs no waiting.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        if self.writer.get()
            || self.readers.get() > 0
            || self.writers_waiting.get() > 0
            || self.readers_waiting.get() > 0
        {
            return None;
        }
        self.writer.set(true);
        Some(RwLockWriteGuard { lock: self })
    }

    /// Like [`RwLock::write`], giving up after `timeout`.
    #[track_caller]
    pub fn write_timeout(&self, timeout: Duration) -> Option<RwLockWriteGuard<'_, T>> {
        self.write_until(Some(deadline_after(timeout)))
    }

    /// Mutable access without locking: the borrow checker proves nobody else holds it.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    #[track_caller]
    fn read_until(&self, deadline: Option<Instant>) -> Option<RwLockReadGuard<'_, T>> {
        if let Some(guard) = self.try_read() {
            return Some(guard);
        }
        let reason = self.id.reason("RwLock::read");
        // Let in by `admit_readers`, which counted us in `readers`.
        self.wait_turn(&self.read_waiters, &self.readers_waiting, reason, deadline)
            .then(|| RwLockReadGuard { lock: self })
    }

    fn write_until(&self, deadline: Option<Instant>) -> Option<RwLockWriteGuard<'_, T>> {
        if let Some(guard) = self.try_write() {
            return Some(guard);
        }
        let reason = self.id.reason("RwLock::write");
        // Handed over by `hand_to_writer`, which set `writer`.
        self.wait_turn(&self.write_waiters, &self.writers_waiting, reason, deadline)
            .then(|| RwLockWriteGuard { lock: self })
    }

    /// Parks in `queue`, counted in `waiting` once queued, until handed the lock: `true`. A
    /// waiter that times out (`false`) or is cancelled (unwinds) uncounts itself if it was
    /// counted, then `dispatch`es.
    #[track_caller]
    fn wait_turn(
        &self,
        queue: &Waiters,
        waiting: &Cell<usize>,
        reason: Reason,
        deadline: Option<Instant>,
    ) -> bool {
        // Not counted if cancelled before it could park (`count` is then dropped unrun).
        let counted = Cell::new(false);
        let count = || {
            waiting.set(waiting.get() + 1);
            counted.set(true);
        };
        let withdraw = || {
            if counted.get() {
                waiting.set(waiting.get() - 1);
            }
            self.dispatch();
        };
        queue.wait_with(reason, deadline, count, withdraw)
    }

    /// After a waiter left by timeout or cancellation: gives the lock to whoever was queued
    /// only because of it. (Its count may have kept others out: readers queue behind a
    /// waiting writer, writers behind waiting readers.)
    fn dispatch(&self) {
        if self.writer.get() {
            return;
        }
        if self.readers.get() == 0 && self.hand_to_writer() {
            return;
        }
        if self.readers_waiting.get() > 0
            && (self.writers_waiting.get() == 0 || self.readers.get() == 0)
        {
            self.admit_readers();
        }
    }

    /// Lets in every reader waiting now; returns how many.
    fn admit_readers(&self) -> usize {
        let n = self.read_waiters.wake_all();
        self.readers.set(self.readers.get() + n);
        self.readers_waiting.set(self.readers_waiting.get() - n);
        n
    }

    /// Hands the (free) lock to the longest live waiting writer; false if there is none.
    fn hand_to_writer(&self) -> bool {
        if self.write_waiters.wake_one().is_some() {
            self.writer.set(true);
            self.writers_waiting.set(self.writers_waiting.get() - 1);
            true
        } else {
            false
        }
    }

    fn read_unlock(&self) {
        let readers = self.readers.get() - 1;
        self.readers.set(readers);
        if readers == 0 && !self.hand_to_writer() && self.readers_waiting.get() > 0 {
            self.admit_readers();
        }
    }

    fn write_unlock(&self) {
        self.writer.set(false);
        if self.readers_waiting.get() > 0 && self.admit_readers() > 0 {
            return;
        }
        self.hand_to_writer();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: while a read guard exists `readers > 0`, so `writer` is false and no write
        // guard (the only source of `&mut T`) exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.read_unlock();
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: while the write guard exists `writer` is true and `readers` is 0: it is the
        // only access to the value.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.write_unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
