//! The one door to the runtime running on this thread.
//!
//! Public functions (`spawn`, `park`, `sleep`, a lock that must wait, ...) find their runtime
//! here: a thread-local pointer to its core, set while `Runtime::run` runs. Everything that
//! needs "the current runtime" goes through [`with_core`] or, when there must be one,
//! [`expect_core`], whose panic names the misused function and points at the caller's line
//! (`#[track_caller]`, carried through the public function). The only module that imports the
//! scheduler and is imported by it is this one; tokio's `runtime::context` plays the same part.

use std::cell::Cell;
use std::ptr;

use crate::overflow::Header;
use crate::scheduler::Core;

thread_local! {
    /// The core of the runtime running on this thread, null outside `Runtime::run`.
    static CURRENT: Cell<*const Core> = const { Cell::new(ptr::null()) };
    /// The next park sequence number not yet used by any runtime on this thread. Each runtime
    /// starts its `run` from here and leaves it past what it used, so that park sequences are
    /// unique per thread, not per runtime: a waker kept from one runtime can never match a park
    /// of another on the same thread (only one runs at a time, and wakers are not `Send`).
    static NEXT_SEQ: Cell<u64> = const { Cell::new(1) };
}

/// Calls `f` with the runtime running on this thread, or returns `None` if there is none.
/// Always inlined, so that `yield_now` and `park` inline through it down to the stack switch.
#[inline(always)]
pub(crate) fn with_core<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    let core = CURRENT.with(|c| c.get());
    if core.is_null() {
        return None;
    }
    // SAFETY: CURRENT is non-null only between `enter` and the drop of its guard, and the
    // caller of `enter` (`Core::run_main`) holds the core alive for that whole time; every
    // coroutine runs inside it.
    Some(f(unsafe { &*core }))
}

/// Calls `f` with the runtime running on this thread.
///
/// # Panics
/// With a message naming `what` ("spawn", "sleep", ...) when no runtime runs on this thread;
/// the panic points at the caller of the public function that called this, which must be
/// `#[track_caller]` too.
#[inline(always)]
#[track_caller]
pub(crate) fn expect_core<R>(what: &str, f: impl FnOnce(&Core) -> R) -> R {
    match with_core(f) {
        Some(r) => r,
        None => outside_runtime(what),
    }
}

/// The misuse panic of every public entry point called outside a runtime.
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn outside_runtime(what: &str) -> ! {
    panic!(
        "spindle: {what} must be called inside a spindle runtime, from a coroutine; \
         start one with spindle::run(|| ...)"
    )
}

/// Id of the coroutine running on this thread, `None` outside a coroutine.
#[inline]
pub(crate) fn current_id() -> Option<u64> {
    with_core(|core| core.current_id()).flatten()
}

/// Id of the running coroutine, for functions that must run inside one.
///
/// # Panics
/// Outside a coroutine of a running runtime, naming `what` and pointing at the caller.
#[track_caller]
pub(crate) fn expect_current_id(what: &str) -> u64 {
    match current_id() {
        Some(id) => id,
        None => outside_runtime(what),
    }
}

/// `yield_now` on the runtime running on this thread; returns false if there is none.
///
/// The same as `with_core(|core| core.yield_now())`, written out so that the whole yield,
/// down to the stack switch, inlines into the caller (see `Core::yield_now`).
#[inline(always)]
pub(crate) fn yield_current() -> bool {
    let core = CURRENT.with(|c| c.get());
    if core.is_null() {
        return false;
    }
    // SAFETY: as in `with_core`.
    unsafe { &*core }.yield_now();
    true
}

/// The time on the clock of the runtime running on this thread; outside one, the real clock.
#[inline]
pub(crate) fn now() -> std::time::Instant {
    with_core(|core| core.now()).unwrap_or_else(std::time::Instant::now)
}

/// How far ahead [`saturating_add`] puts a deadline it cannot represent: 30 years, which no
/// `Instant` arithmetic overflows and no program waits out.
const FAR_FUTURE: std::time::Duration = std::time::Duration::from_secs(86_400 * 365 * 30);

/// `at + timeout`, or 30 years after `at` when that does not fit (`Duration::MAX`): the one
/// saturating deadline of the workspace (see `time::deadline_after`).
pub(crate) fn saturating_add(
    at: std::time::Instant,
    timeout: std::time::Duration,
) -> std::time::Instant {
    at.checked_add(timeout).unwrap_or_else(|| at + FAR_FUTURE)
}

/// A number in `0..n` from the running runtime's stream of choices (repeatable under a seed);
/// outside a runtime, 0.
pub(crate) fn choose(n: usize) -> usize {
    with_core(|core| core.choose(n)).unwrap_or(0)
}

/// True while a runtime runs on this thread.
#[inline]
pub(crate) fn in_runtime() -> bool {
    !CURRENT.with(|c| c.get()).is_null()
}

/// The overflow header of the coroutine running on this thread, null if none runs. For the
/// overflow signal handler (installed with this function): it reads two plain cells, takes no
/// lock and allocates nothing.
pub(crate) fn running_header() -> *const Header {
    // `try_with`: in a signal handler during thread teardown the thread-local may be gone.
    let core = CURRENT.try_with(|c| c.get()).unwrap_or(ptr::null());
    if core.is_null() {
        return ptr::null();
    }
    // SAFETY: as in `with_core`.
    unsafe { (*core).running_header() }
}

/// Makes `core` the runtime of this thread until the guard is dropped (by return or unwind).
///
/// # Panics
/// If a runtime already runs on this thread.
pub(crate) fn enter(core: &Core) -> EnterGuard<'_> {
    if in_runtime() {
        panic!(
            "spindle: run called inside a running spindle runtime; \
             use spindle::spawn to start more coroutines instead"
        );
    }
    CURRENT.with(|c| c.set(core));
    core.raise_next_seq(NEXT_SEQ.with(Cell::get));
    EnterGuard(core)
}

/// Resets the thread's runtime when `run_main` exits, by return or by unwind, and hands the
/// park sequence on to the next runtime of the thread. Borrows the core, so the core outlives
/// the time it is reachable through [`with_core`].
pub(crate) struct EnterGuard<'a>(&'a Core);

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(ptr::null()));
        let used = self.0.next_seq_unused();
        NEXT_SEQ.with(|next| next.set(next.get().max(used)));
    }
}
