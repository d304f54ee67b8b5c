//! [`Semaphore`] and [`BoundedSemaphore`]: counted permits (Python's `threading.Semaphore`).

use std::cell::Cell;
use std::fmt;
use std::time::{Duration, Instant};

use super::{deadline_after, wait, Waiters};
use crate::park::ObjectId;

/// A set of permits; `acquire` parks while none is free.
///
/// `acquire` returns a [`SemaphoreGuard`] that gives the permit back when dropped, so a
/// coroutine that panics or is cancelled does not leak it.
///
/// # No `release`: hold the guard
///
/// Python's `s.acquire(); ...; s.release()` does not compile here, on purpose: the guard of
/// `s.acquire();` is dropped at the end of that statement, so the section would run without
/// the permit, and a `release` after it would add a second one. Hold the guard for the
/// section instead (`let _permit = s.acquire();`). For a permit that outlives its scope
/// (taken by one coroutine, given back by another), [`SemaphoreGuard::forget`] it and give it
/// back with [`Semaphore::add_permits`]`(1)`, which is also how a semaphore grows (Python's
/// `release(n)`, a `Semaphore::new(0)` used as a signal).
///
/// ```compile_fail,E0599
/// spindle_runtime::run(|| {
///     let s = spindle_runtime::sync::Semaphore::new(1);
///     s.acquire(); // the guard, and with it the permit, is gone at the `;`
///     s.release(); // no such method
/// });
/// ```
///
/// # Fairness
///
/// A released permit goes straight to the longest waiter (FIFO handoff); `try_acquire` cannot
/// take it from under the woken coroutine.
///
/// ```
/// use std::rc::Rc;
/// use std::cell::Cell;
/// use spindle_runtime::sync::Semaphore;
///
/// spindle_runtime::run(|| {
///     let sem = Rc::new(Semaphore::new(2));
///     let (inside, most) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
///     let workers: Vec<_> = (0..6)
///         .map(|_| {
///             let (sem, inside, most) = (sem.clone(), inside.clone(), most.clone());
///             spindle_runtime::spawn(move || {
///                 let _permit = sem.acquire();
///                 inside.set(inside.get() + 1);
///                 most.set(most.get().max(inside.get()));
///                 spindle_runtime::yield_now();
///                 inside.set(inside.get() - 1);
///             })
///         })
///         .collect();
///     for w in workers {
///         w.join().unwrap();
///     }
///     assert_eq!(most.get(), 2);
/// });
/// ```
#[derive(Debug)]
pub struct Semaphore {
    /// Free permits. Stays 0 while coroutines wait: a release with a live waiter hands the
    /// permit over instead of incrementing this.
    permits: Cell<usize>,
    /// Coroutines parked in `acquire`, longest first.
    waiters: Waiters,
    /// Its name in park reasons (`Semaphore#3`).
    id: ObjectId,
}

/// A permit of a [`Semaphore`] or [`BoundedSemaphore`]; dropping it gives the permit back.
#[must_use = "the permit is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
    /// The bounded semaphore to tell when the permit is forgotten.
    bounded: Option<&'a BoundedSemaphore>,
}

impl Semaphore {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `Semaphore#3` (see [`ObjectId`](crate::park::ObjectId)).
    pub fn label(&self, label: &'static str) {
        self.id.label(label);
    }

    /// A semaphore with `permits` free permits.
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            permits: Cell::new(permits),
            waiters: Waiters::new(),
            id: ObjectId::new("Semaphore"),
        }
    }

    /// Takes a permit, parking until one is free and this coroutine's turn has come.
    #[track_caller]
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        self.take(None).expect("an acquire without deadline does not time out");
        SemaphoreGuard { sem: self, bounded: None }
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.try_take().then(|| SemaphoreGuard { sem: self, bounded: None })
    }

    /// Like [`Semaphore::acquire`], giving up after `timeout`.
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        self.take(Some(deadline_after(timeout)))?;
        Some(SemaphoreGuard { sem: self, bounded: None })
    }

    /// Adds `n` permits, handing each to the longest waiter while any waits (Python's
    /// `release(n)`, tokio's `add_permits`): to give back permits whose guards were
    /// [forgotten](SemaphoreGuard::forget), or to grow the semaphore.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use spindle_runtime::sync::Semaphore;
    ///
    /// spindle_runtime::run(|| {
    ///     let ready = Rc::new(Semaphore::new(0)); // a signal
    ///     let r = ready.clone();
    ///     let waiter = spindle_runtime::spawn(move || r.acquire().forget());
    ///     ready.add_permits(1);
    ///     waiter.join().unwrap();
    ///     assert_eq!(ready.available_permits(), 0);
    /// });
    /// ```
    ///
    /// # Panics
    /// If the free permits would exceed `usize::MAX`.
    #[track_caller]
    pub fn add_permits(&self, n: usize) {
        let mut left = n;
        while left > 0 && self.waiters.wake_one().is_some() {
            left -= 1;
        }
        let permits = self.permits.get().checked_add(left);
        self.permits.set(permits.expect("Semaphore::add_permits: more than usize::MAX permits"));
    }

    /// Gives one permit back: to the longest waiter if any.
    fn give_back(&self) {
        if self.waiters.wake_one().is_none() {
            self.permits.set(self.permits.get() + 1);
        }
    }

    /// Permits free right now.
    pub fn available_permits(&self) -> usize {
        self.permits.get()
    }

    fn try_take(&self) -> bool {
        let p = self.permits.get();
        if p == 0 {
            return false;
        }
        self.permits.set(p - 1);
        true
    }

    #[track_caller]
    fn take(&self, deadline: Option<Instant>) -> Option<()> {
        if self.try_take() {
            return Some(());
        }
        // Handed a permit by `release`, or not (timed out: `release` skipped our ended park).
        wait!(self.waiters, self.id.reason("Semaphore::acquire"), deadline).then_some(())
    }
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit taken after the guard is gone; give it back with
    /// [`Semaphore::add_permits`] (or [`BoundedSemaphore::release`]).
    pub fn forget(self) {
        if let Some(b) = self.bounded {
            b.forgotten.set(b.forgotten.get() + 1);
        }
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        self.sem.give_back();
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

/// A [`Semaphore`] that can never hold more permits than it started with (Python's
/// `threading.BoundedSemaphore`): a `release` with no permit out to give back is an error.
///
/// Permits taken with a guard come back when the guard drops; [`BoundedSemaphore::release`]
/// gives back a permit whose guard was [forgotten](SemaphoreGuard::forget), and fails with
/// [`OverRelease`] when there is none. So the Python sequence `b.acquire(); ...;
/// b.release()` compiles here (with two `must_use` warnings) but cannot add a permit: the
/// guard gave it back at the end of `b.acquire();`, and `release` returns `Err`. Hold the
/// guard for the section instead.
///
/// ```
/// use spindle_runtime::sync::BoundedSemaphore;
///
/// spindle_runtime::run(|| {
///     let sem = BoundedSemaphore::new(1);
///     sem.acquire().forget();
///     assert_eq!(sem.release(), Ok(()));
///     assert!(sem.release().is_err()); // one more than was taken
/// });
/// ```
#[derive(Debug)]
pub struct BoundedSemaphore {
    sem: Semaphore,
    /// The number of permits it started with.
    limit: usize,
    /// Permits taken whose guard was forgotten: what `release` may give back.
    forgotten: Cell<usize>,
}

/// The error of [`BoundedSemaphore::release`] when every permit is already back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverRelease {
    /// The semaphore's limit.
    pub limit: usize,
}

impl fmt::Display for OverRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BoundedSemaphore released too many times (limit {})", self.limit)
    }
}

impl std::error::Error for OverRelease {}

impl BoundedSemaphore {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `Semaphore#3` (see [`ObjectId`](crate::park::ObjectId)).
    pub fn label(&self, label: &'static str) {
        self.sem.id.label(label);
    }

    /// A bounded semaphore with `permits` permits, all free.
    pub const fn new(permits: usize) -> BoundedSemaphore {
        BoundedSemaphore { sem: Semaphore::new(permits), limit: permits, forgotten: Cell::new(0) }
    }

    /// Takes a permit, parking until one is free (FIFO).
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        let guard = self.sem.acquire();
        std::mem::forget(guard);
        SemaphoreGuard { sem: &self.sem, bounded: Some(self) }
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.sem.try_take().then(|| SemaphoreGuard { sem: &self.sem, bounded: Some(self) })
    }

    /// Like [`BoundedSemaphore::acquire`], giving up after `timeout`.
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        self.sem.take(Some(deadline_after(timeout)))?;
        Some(SemaphoreGuard { sem: &self.sem, bounded: Some(self) })
    }

    /// Gives back a permit whose guard was forgotten; `Err` if no such permit is out.
    pub fn release(&self) -> Result<(), OverRelease> {
        let f = self.forgotten.get();
        if f == 0 {
            return Err(OverRelease { limit: self.limit });
        }
        self.forgotten.set(f - 1);
        self.sem.give_back();
        Ok(())
    }

    /// Permits free right now.
    pub fn available_permits(&self) -> usize {
        self.sem.available_permits()
    }

    /// The number of permits it was made with.
    pub fn limit(&self) -> usize {
        self.limit
    }
}
