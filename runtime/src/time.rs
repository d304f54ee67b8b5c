//! Time: the runtime's clock, sleeping, and timeouts around any blocking code.

use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use std::cell::Cell;
use std::rc::Rc;

use crate::context::{self, with_core};
use crate::coroutine::{Builder, JoinError, JoinHandle};
use crate::park::{park_until, Reason};
use crate::scheduler::ElapsedUnwind;

/// The runtime's current time: the real clock, or the virtual one when the runtime was built
/// with `virtual_time(true)`. Outside a runtime, the real clock.
///
/// Take every deadline you pass to spindle ([`sleep_until`], [`crate::park::park`]) from this
/// clock (`now() + d`, or [`deadline_after`]), never from `std::time::Instant::now()`: under
/// virtual time the two clocks drift apart. The virtual one stands still while coroutines run
/// and jumps ahead when they all wait, so a deadline read from the real clock can lie in the
/// virtual past (the wait returns at once) or far in its future (it waits too long).
///
/// ```
/// use std::time::Duration;
///
/// let rt = spindle_runtime::Runtime::builder().virtual_time(true).build().unwrap();
/// rt.run(|| {
///     let start = spindle_runtime::time::now();
///     spindle_runtime::sleep_until(start + Duration::from_secs(3600)); // no real hour passes
///     assert_eq!(spindle_runtime::time::now() - start, Duration::from_secs(3600));
/// });
/// ```
pub fn now() -> Instant {
    context::now()
}

/// The instant `timeout` from now on the runtime's clock ([`now`]), saturating: a timeout too
/// large to add (`Duration::MAX`) becomes a deadline 30 years away, in effect "never". Every
/// timeout in spindle (sleeps, `time::timeout`, joins, locks, channels, sockets) goes through
/// it, so none of them panics on overflow.
pub fn deadline_after(timeout: Duration) -> Instant {
    context::saturating_add(now(), timeout)
}

/// Parks the current coroutine for `duration`; other coroutines run meanwhile.
/// `Duration::MAX` sleeps in effect for ever (see [`deadline_after`]).
///
/// # Panics
/// Outside a coroutine of a running spindle runtime.
#[track_caller]
pub fn sleep(duration: Duration) {
    let deadline = context::expect_core("sleep", |core| core.tick_after(duration));
    park_until(Reason::new("sleep"), deadline);
}

/// Parks the current coroutine until `deadline` (by [`now`]); returns at once if it passed.
///
/// `deadline` is a `std::time::Instant`, but it is compared with the runtime's clock, which
/// under `virtual_time(true)` is not the real one: compute it from [`now`]
/// (`now() + duration`), not from `Instant::now()`, or a virtual-time run sleeps too short or
/// too long. [`sleep`] takes a duration and has no such trap.
///
/// # Panics
/// Outside a coroutine of a running spindle runtime.
#[track_caller]
pub fn sleep_until(deadline: Instant) {
    let deadline = context::expect_core("sleep_until", |core| core.tick(deadline));
    park_until(Reason::new("sleep"), deadline);
}

/// The error of [`timeout`]: the time ran out before the closure finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `f` in the current coroutine, and if `duration` passes while it is parked or when it
/// yields, unwinds it and returns `Err(Elapsed)` (gevent's `Timeout`).
///
/// Unwinding runs destructors, so locks and other guards taken inside are released. Timeouts
/// nest: an inner one expiring returns `Err` from the inner call only; an outer one expiring
/// unwinds through the inner call too. `f` is only interrupted where it parks or yields: a
/// computation that never does runs to its end, and the result is then `Ok`.
///
/// ```
/// use std::time::Duration;
/// use spindle_runtime::time::{sleep, timeout};
/// spindle_runtime::run(|| {
///     assert!(timeout(Duration::from_millis(5), || sleep(Duration::from_secs(60))).is_err());
///     assert_eq!(timeout(Duration::from_secs(60), || 7), Ok(7));
/// });
/// ```
///
/// # Panics
/// Outside a coroutine of a running spindle runtime.
#[track_caller]
pub fn timeout<T>(duration: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    let id = context::expect_core("time::timeout", |core| core.push_scope(duration));
    let result = catch_unwind(AssertUnwindSafe(f));
    let expired = with_core(|core| core.pop_scope(id)).unwrap_or(false);
    match result {
        Ok(value) => Ok(value),
        Err(payload) => match payload.downcast::<ElapsedUnwind>() {
            Ok(elapsed) if elapsed.scope == id && expired => Err(Elapsed(())),
            Ok(elapsed) => resume_unwind(elapsed),
            Err(other) => resume_unwind(other),
        },
    }
}

/// Calls a function after a delay unless cancelled first (Python's `threading.Timer`).
///
/// The function runs in a coroutine of its own, named `"timer"`, that sleeps until then.
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use spindle_runtime::time::Timer;
///
/// spindle_runtime::run(|| {
///     let rang = Rc::new(Cell::new(0));
///     let r = rang.clone();
///     let bell = Timer::after(Duration::from_millis(5), move || r.set(r.get() + 1));
///     let r = rang.clone();
///     let never = Timer::after(Duration::from_secs(60), move || r.set(r.get() + 10));
///     assert!(never.cancel());
///     bell.join().unwrap();
///     assert_eq!(rang.get(), 1);
/// });
/// ```
pub struct Timer {
    handle: JoinHandle<bool>,
    /// Set by `cancel` before the function started: the coroutine must not call it.
    cancelled: Rc<Cell<bool>>,
    /// Set just before the function is called.
    started: Rc<Cell<bool>>,
}

impl Timer {
    /// Starts a timer that calls `f` once `delay` has passed.
    ///
    /// # Panics
    /// Outside a running spindle runtime.
    #[track_caller]
    pub fn after(delay: Duration, f: impl FnOnce() + 'static) -> Timer {
        if !context::in_runtime() {
            context::outside_runtime("time::Timer::after");
        }
        let cancelled = Rc::new(Cell::new(false));
        let started = Rc::new(Cell::new(false));
        let (c, s) = (cancelled.clone(), started.clone());
        let handle = Builder::new()
            .name("timer")
            .spawn(move || {
                sleep(delay);
                if c.get() {
                    return false;
                }
                s.set(true);
                f();
                true
            })
            .unwrap_or_else(|e| panic!("spindle: Timer::after failed: {e}"));
        Timer { handle, cancelled, started }
    }

    /// Stops the timer if its function has not started; returns whether it was stopped.
    /// A function already running is left to finish (as in Python).
    pub fn cancel(&self) -> bool {
        if self.started.get() {
            return false;
        }
        self.cancelled.set(true);
        self.handle.cancel();
        true
    }

    /// True once the function has run or the timer was cancelled.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits until the timer fires and its function returns, or until it is cancelled.
    /// Returns `Ok(true)` if the function ran, `Ok(false)` if the timer was cancelled, and the
    /// function's panic if it panicked.
    pub fn join(self) -> Result<bool, JoinError> {
        match self.handle.join() {
            Err(JoinError::Cancelled) => Ok(false),
            other => other,
        }
    }
}
