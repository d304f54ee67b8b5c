//! How a waiter waits and how it is woken: a coroutine parks (its coroutine only, through
//! [`park::park`], woken by a [`RemoteWaker`] from any thread), a plain thread blocks
//! (`std::thread::park`, woken by `Thread::unpark`). Which one is decided per call: inside a
//! coroutine of a running runtime it parks, anywhere else it blocks.

use std::sync::{Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use super::state::{Outcome, State, Waiter};
use crate::context;
use crate::park::{self, Reason, RemoteWaker, Wake};

/// How to wake one waiter. `Send`: it is delivered by whichever thread resolves the waiter.
pub(super) enum Wakeup {
    /// A parked coroutine, on any runtime. Holding it keeps that coroutine counted as
    /// "something another thread may wake" by its runtime's deadlock check.
    Coroutine(RemoteWaker),
    /// A blocked thread.
    Thread(Thread),
}

impl Wakeup {
    /// Wakes the waiter. Called after the channel's lock is released: a `RemoteWaker` takes its
    /// runtime's lock and writes to its eventfd.
    pub(super) fn deliver(self) {
        match self {
            Wakeup::Coroutine(waker) => waker.wake(),
            Wakeup::Thread(thread) => thread.unpark(),
        }
    }
}

/// Delivers a wakeup an operation returned, if any.
#[inline]
pub(super) fn deliver(wakeup: Option<Wakeup>) {
    if let Some(w) = wakeup {
        w.deliver();
    }
}

/// How a wait ended, before the waiter looks at its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// Somebody resolved the waiter (its outcome is no longer `Waiting`).
    Resolved,
    /// The deadline passed first. Somebody may still have resolved it meanwhile.
    TimedOut,
    /// The coroutine was cancelled (or an enclosing `time::timeout` expired) first. Somebody
    /// may still have resolved it meanwhile.
    Cancelled,
}

/// Locks a channel's state; a panic while it was held (only an allocation failure can panic
/// there) does not make the channel unusable.
pub(super) fn lock<T>(state: &Mutex<State<T>>) -> MutexGuard<'_, State<T>> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// True if the caller is a coroutine, which parks; false for a plain thread, which blocks.
#[inline]
pub(super) fn in_coroutine() -> bool {
    context::current_id().is_some()
}

/// The deadline `timeout` from now on the clock the caller waits by: its runtime's (which may
/// be virtual) for a coroutine, the real one for a thread.
pub(super) fn deadline(timeout: Option<Duration>, coroutine: bool) -> Option<Instant> {
    let timeout = timeout?;
    Some(if coroutine {
        crate::time::deadline_after(timeout)
    } else {
        context::saturating_add(Instant::now(), timeout)
    })
}

/// Queues `waiter` on the channel whose state `guard` holds locked, unlocks, and waits until
/// somebody resolves it, `deadline` passes or (a coroutine) it is cancelled. Returns the state
/// locked again, the waiter's key (it is still in the slab, and still queued unless resolved)
/// and how the wait ended. The check before waiting and the queueing happen under the same
/// lock, so no wakeup can fall between them.
///
/// A coroutine already cancelled when it comes here is not queued: the lock is released, the
/// waiter (and a sender's value in it) dropped, and the coroutine unwinds from here.
#[track_caller]
pub(super) fn wait<'a, T>(
    state: &'a Mutex<State<T>>,
    guard: MutexGuard<'a, State<T>>,
    waiter: Waiter<T>,
    reason: Reason,
    deadline: Option<Instant>,
    coroutine: bool,
) -> (MutexGuard<'a, State<T>>, usize, Ended) {
    if coroutine {
        park_coroutine(state, guard, waiter, reason, deadline)
    } else {
        block_thread(state, guard, waiter, deadline)
    }
}

#[track_caller]
fn park_coroutine<'a, T>(
    state: &'a Mutex<State<T>>,
    guard: MutexGuard<'a, State<T>>,
    waiter: Waiter<T>,
    reason: Reason,
    deadline: Option<Instant>,
) -> (MutexGuard<'a, State<T>>, usize, Ended) {
    let mut guard = Some(guard);
    let mut waiter = Some(waiter);
    let mut key = None;
    loop {
        let mut stale = None;
        let wake = park::park(reason, deadline, |w| {
            let mut st = guard.take().unwrap_or_else(|| lock(state));
            let wakeup = Wakeup::Coroutine(park::remote_waker(w));
            match key {
                None => {
                    let mut fresh = waiter.take().expect("the waiter is queued once");
                    fresh.wakeup = Some(wakeup);
                    key = Some(st.enqueue(fresh));
                }
                // Parking again while still queued: point the waiter at this park.
                Some(k) => stale = st.waiters[k].wakeup.replace(wakeup),
            }
        });
        drop(stale); // the previous park's waker, out of the lock
                     // Still locked if `register` did not run (the coroutine was already cancelled).
        let st = guard.take().unwrap_or_else(|| lock(state));
        let Some(k) = key else {
            drop(st);
            drop(waiter);
            park::unwind();
        };
        let ended = match wake {
            Wake::Notified if st.waiters[k].outcome == Outcome::Waiting => {
                // Only a resolver wakes this park, so this does not happen; were it to, the
                // waiter is still queued and parks again.
                guard = Some(st);
                continue;
            }
            Wake::Notified => Ended::Resolved,
            Wake::TimedOut => Ended::TimedOut,
            _ => Ended::Cancelled,
        };
        return (st, k, ended);
    }
}

fn block_thread<'a, T>(
    state: &'a Mutex<State<T>>,
    mut st: MutexGuard<'a, State<T>>,
    mut waiter: Waiter<T>,
    deadline: Option<Instant>,
) -> (MutexGuard<'a, State<T>>, usize, Ended) {
    waiter.wakeup = Some(Wakeup::Thread(thread::current()));
    let key = st.enqueue(waiter);
    loop {
        // `park` may return spuriously (and an `unpark` meant for an earlier wait of this
        // thread may arrive late): the outcome under the lock is what counts.
        if st.waiters[key].outcome != Outcome::Waiting {
            return (st, key, Ended::Resolved);
        }
        let now = Instant::now();
        let left = match deadline {
            Some(d) if now >= d => return (st, key, Ended::TimedOut),
            Some(d) => Some(d - now),
            None => None,
        };
        drop(st);
        match left {
            Some(left) => thread::park_timeout(left),
            None => thread::park(),
        }
        st = lock(state);
    }
}
