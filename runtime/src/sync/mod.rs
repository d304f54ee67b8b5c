//! Coroutine-aware locks, queues and channels: what Python's `threading` and `queue` give
//! threads and what Go gives goroutines, for spindle's coroutines.
//!
//! | spindle | Python | Go / Rust |
//! |---|---|---|
//! | [`Mutex`] | `threading.Lock` | `std::sync::Mutex` |
//! | [`ReentrantMutex`] | `threading.RLock` | `std::sync::ReentrantLock` |
//! | [`RwLock`] | — | `std::sync::RwLock` |
//! | [`Condvar`] | `threading.Condition` | `std::sync::Condvar` |
//! | [`Semaphore`], [`BoundedSemaphore`] | `threading.Semaphore`, `BoundedSemaphore` | — |
//! | [`Barrier`] | `threading.Barrier` | `std::sync::Barrier` |
//! | [`Event`] | `threading.Event` | — |
//! | [`WaitGroup`] | — | Go's `sync.WaitGroup` |
//! | [`OnceCell`] | — | `std::sync::OnceLock` |
//! | [`channel`], [`select!`](crate::select) | — | Go's channels and `select`, crossbeam-channel |
//! | [`Queue`] | `queue.Queue`, `LifoQueue`, `PriorityQueue` | — |
//! | [`mpmc`] (thread-safe, `Send`) | `queue.Queue` between threads | `std::sync::mpsc`, crossbeam-channel |
//!
//! Waiting parks the coroutine ([`crate::park::park`]); it never blocks the thread. Every wait
//! has a timeout flavour, and every wait is cancellation-safe: a coroutine cancelled
//! ([`crate::JoinHandle::cancel`], an enclosing [`crate::time::timeout`]) or timed out while
//! waiting leaves no trace — it is removed from the wait queue, and the lock, permit or message
//! it did not get goes to the next waiter.
//!
//! ```
//! use std::rc::Rc;
//! use spindle_runtime::sync::{channel, Mutex};
//!
//! spindle_runtime::run(|| {
//!     let total = Rc::new(Mutex::new(0));
//!     let (tx, rx) = channel::bounded(4);
//!     let workers: Vec<_> = (0..3)
//!         .map(|_| {
//!             let (rx, total) = (rx.clone(), total.clone());
//!             spindle_runtime::spawn(move || {
//!                 for n in rx.iter() {
//!                     *total.lock() += n;
//!                 }
//!             })
//!         })
//!         .collect();
//!     for n in 1..=100 {
//!         tx.send(n).unwrap();
//!     }
//!     drop(tx); // receivers drain the channel, then see it disconnected
//!     for w in workers {
//!         w.join().unwrap();
//!     }
//!     assert_eq!(*total.lock(), 5050);
//! });
//! ```
//!
//! # Never block the thread
//!
//! All coroutines share one OS thread. A `std::sync::Mutex` (or `parking_lot`, or any lock
//! made for threads) held across a spindle yield point — `sleep`, `lock`, `recv`, a socket read,
//! `yield_now` — stalls every coroutine if another coroutine then tries to take it: the OS
//! thread blocks on the lock and the holder never runs again to release it, a deadlock the
//! runtime cannot even report. The same goes for `std::sync::mpsc::Receiver::recv`,
//! `std::thread::sleep`, `std::sync::Condvar::wait` and blocking file or socket calls: each
//! stops every coroutine until it returns. Use the types in this module instead, and move
//! unavoidable blocking calls to another thread.
//!
//! # Not `Send`
//!
//! These types are for coroutines of one runtime, on one thread: none is `Send` or `Sync`, so
//! the compiler keeps them on their thread (the one exception is [`mpmc`], made to cross threads). Share them between coroutines with `Rc`. None of
//! these compiles:
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<spindle_runtime::sync::Mutex<()>>();
//! ```
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<spindle_runtime::sync::MutexGuard<'static, ()>>();
//! ```
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<spindle_runtime::sync::channel::Sender<()>>();
//! ```
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<spindle_runtime::sync::channel::Receiver<()>>();
//! ```
//!
//! # Fairness
//!
//! [`Mutex`], [`ReentrantMutex`], [`Semaphore`] and [`RwLock`] hand a released lock or permit
//! directly to the longest waiter (FIFO handoff): it stays taken while the woken coroutine waits
//! for its turn to run, so a coroutine that calls `try_lock` meanwhile cannot barge in. A
//! [`channel`] hands a message sent to the longest coroutine parked in `recv` in the same way.
//! [`Queue`] wakes its waiters in FIFO order but does not reserve the item for the woken one:
//! a coroutine that is running when the item arrives may take it first, and the woken one
//! waits again (at the back). [`select!`](crate::select) chooses uniformly among its
//! ready arms, from the runtime's stream of choices (repeatable under a seed); `biased;` makes
//! it take the first ready arm written.

mod barrier;
pub mod channel;
mod condvar;
mod event;
pub mod mpmc;
mod mutex;
mod once_cell;
pub mod queue;
mod reentrant;
mod rwlock;
#[doc(hidden)]
pub mod select;
mod semaphore;
mod wait_group;

pub use barrier::{Barrier, BarrierWaitResult, BrokenBarrier};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use event::Event;
pub use mutex::{Mutex, MutexGuard};
pub use once_cell::OnceCell;
pub use queue::Queue;
pub use reentrant::{ReentrantMutex, ReentrantMutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{BoundedSemaphore, OverRelease, Semaphore, SemaphoreGuard};
pub use wait_group::WaitGroup;

use std::cell::{Cell, RefCell};
use std::time::Instant;

use crate::park::{self, Reason, Token, WaitQueue, Wake, Waker};
pub(crate) use crate::time::deadline_after;

/// Parks in a [`Waiters`] queue until woken (`true`) or until the deadline passed (`false`,
/// having left the queue); when cancelled, leaves the queue and unwinds. `wait!(waiters,
/// reason, deadline)` is [`Waiters::wait_with`] without hooks: see there for what `true` and
/// `false` promise.
///
/// A macro, not a method, so that every call site gets its own instantiation of the park,
/// which then inlines into the caller and the coroutine resumes in the caller's own frame (see
/// `Core::yield_now` on what an out-of-line switch costs in mispredicted returns). A method
/// would be one instantiation shared by all its callers, which the compiler keeps out of line.
macro_rules! wait {
    ($waiters:expr, $reason:expr, $deadline:expr $(,)?) => {
        $waiters.wait_with($reason, $deadline, || {}, || {})
    };
}
pub(crate) use wait;

/// A [`WaitQueue`] with its length mirrored in a `Cell`, so that the uncontended paths (unlock
/// with nobody waiting, send with no receiver parked) cost one `Cell` read and never borrow the
/// queue.
///
/// It is also where every primitive of this module (and [`crate::pool`]) parks, through
/// [`wait!`] or [`Waiters::wait_with`]: the one copy of "queue the waker, park, leave the queue
/// on a timeout, unwind on a cancellation". [`Waiters::park`] leaves the unwind to the caller,
/// for the one primitive whose outcome can outrank a cancellation.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    /// The parked coroutines, FIFO; may hold stale entries until a wake skips them.
    queue: RefCell<WaitQueue>,
    /// `queue.len()`, refreshed after every change.
    len: Cell<usize>,
}

impl Waiters {
    pub(crate) const fn new() -> Waiters {
        Waiters { queue: RefCell::new(WaitQueue::new()), len: Cell::new(0) }
    }

    /// Parks in this queue until a waker from it is woken: `true`. `false` when `deadline`
    /// passed first; the coroutine has then left the queue. When cancelled it leaves the queue
    /// and unwinds ([`park::unwind`]). Without a deadline it only returns `true`.
    ///
    /// `true` is a notification, not a promise: a primitive that does not reserve what it was
    /// woken for (a channel, a queue) checks again in a loop. A primitive that hands over
    /// ownership before waking (Mutex, Semaphore, RwLock) owns it on `true`: the wake is
    /// first-wins, so a `Notified` park owns the handoff even if a cancellation arrives after it
    /// (the coroutine then unwinds at its next park, releasing it); and on `false` the park had
    /// ended, so every releaser skipped it and nothing was handed over.
    ///
    /// The hooks, for a primitive with state to keep in step with the queue: `queued` runs
    /// right after the coroutine joined the queue, before it is suspended (when it was
    /// cancelled before parking, `queued` is dropped without running). `withdraw` runs when the
    /// wait ends without a notification, after the coroutine left the queue: on a timeout
    /// before `false` is returned, on a cancellation before the unwind. It restores what the
    /// waiter's presence changed (a count of waiters, a choice deferred because of it).
    ///
    /// Always inlined, as is `park`: with the closures of its call site, each caller gets its
    /// own copy of the park (see [`wait!`]).
    #[inline(always)]
    #[track_caller]
    pub(crate) fn wait_with(
        &self,
        reason: Reason,
        deadline: Option<Instant>,
        queued: impl FnOnce(),
        withdraw: impl FnOnce(),
    ) -> bool {
        match self.park(reason, deadline, queued) {
            Wake::Notified => true,
            Wake::TimedOut => {
                withdraw();
                false
            }
            Wake::Cancelled => {
                withdraw();
                park::unwind()
            }
        }
    }

    /// Parks in this queue once and says why the park ended; unless `Notified`, the coroutine
    /// has left the queue. `queued` as in [`Waiters::wait_with`]. On `Cancelled` the caller
    /// must call [`park::unwind`], or return without parking again (the coroutine then
    /// unwinds at its next park): this is for a primitive whose outcome, decided while the
    /// coroutine was parked, wins over a cancellation that came first (a barrier round that
    /// passed), and for `Receiver::try_recv`, which never unwinds. Everything else uses
    /// [`wait!`] or [`Waiters::wait_with`].
    #[inline(always)]
    #[track_caller]
    pub(crate) fn park(
        &self,
        reason: Reason,
        deadline: Option<Instant>,
        queued: impl FnOnce(),
    ) -> Wake {
        let mut token = None;
        let wake = park::park(reason, deadline, |w| {
            token = Some(self.push(w));
            queued();
        });
        if wake != Wake::Notified {
            forget(self, token);
        }
        wake
    }

    /// Entries queued, live or stale.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.get()
    }

    /// True if no entry (live or stale) is queued: nobody needs waking.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    pub(crate) fn push(&self, waker: Waker) -> Token {
        let mut q = self.queue.borrow_mut();
        let token = q.push(waker);
        self.len.set(q.len());
        token
    }

    /// Removes a registration after a timeout or cancellation (or a select that won elsewhere).
    pub(crate) fn remove(&self, token: Token) -> bool {
        if self.is_empty() {
            return false;
        }
        let mut q = self.queue.borrow_mut();
        let removed = q.remove(token);
        self.len.set(q.len());
        removed
    }

    /// Wakes the longest live waiter; `None` if there was none.
    #[inline]
    pub(crate) fn wake_one(&self) -> Option<Waker> {
        if self.is_empty() {
            return None;
        }
        let mut q = self.queue.borrow_mut();
        let woken = q.wake_one();
        self.len.set(q.len());
        woken
    }

    /// Wakes every live waiter; returns how many.
    pub(crate) fn wake_all(&self) -> usize {
        if self.is_empty() {
            return 0;
        }
        let mut q = self.queue.borrow_mut();
        let n = q.wake_all();
        self.len.set(q.len());
        n
    }
}

/// Tells the runtime who holds lock number `object` while coroutines wait for it (`waiters`
/// not empty), or that nobody waits any more: what a deadlock report shows as `Mutex#3 held by
/// #5`. A lock calls it when the first coroutine joins its queue, when one leaves it without
/// the lock, and when one is handed the lock; in between the holder cannot change without a
/// waiter being handed the lock.
#[inline]
pub(crate) fn tell_holder(object: u32, holder: u64, waiters: &Waiters) {
    crate::context::with_core(|core| match waiters.is_empty() || holder == NO_HOLDER {
        false => core.set_holder(object, holder),
        true => core.clear_holder(object),
    });
}

/// A lock's holder when it was taken outside any coroutine (a destructor the scheduler ran):
/// no coroutine to name.
pub(crate) const NO_HOLDER: u64 = u64::MAX;

/// Removes `token` (if park registered one) from `waiters`.
pub(crate) fn forget(waiters: &Waiters, token: Option<Token>) {
    if let Some(token) = token {
        waiters.remove(token);
    }
}
