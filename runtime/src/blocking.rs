//! The blocking pool: where work that would block the thread goes.
//!
//! [`unblock`] sends a closure to a small pool of OS threads and parks the calling coroutine
//! until it is done; other coroutines run meanwhile. Use it for blocking system calls (file
//! I/O, DNS lookups through libc), for libraries that block, and for long computations.
//!
//! The pool belongs to the runtime. It starts no thread until the first call, grows on demand
//! up to `RuntimeBuilder::blocking_threads` (default 16), queues work beyond that, and a
//! thread idle for `RuntimeBuilder::blocking_keep_alive` (default 10 s) exits. Dropping the
//! runtime lets idle threads exit at once.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::context;
use crate::park::{self, Reason, Wake};

/// What a job leaves for the parked coroutine.
type Slot<T> = Arc<Mutex<Option<thread::Result<T>>>>;

/// Runs `f` on the runtime's blocking pool and parks the current coroutine until it returns;
/// returns its value. If `f` panics, the panic carries on in the calling coroutine.
///
/// ```
/// let len = spindle_runtime::run(|| {
///     spindle_runtime::unblock(|| std::fs::read_to_string("Cargo.toml").map(|s| s.len()))
/// });
/// assert!(len.unwrap() > 0);
/// ```
///
/// While `f` runs the coroutine counts as waiting on something that will wake it, so it is not
/// reported as deadlocked. If the coroutine is cancelled meanwhile it unwinds at once; `f`
/// cannot be stopped and runs to its end on its thread, and its result is dropped there.
///
/// # Panics
/// Outside a coroutine of a running spindle runtime, and when the pool has no thread and can
/// start none (the process is at its thread or memory limit): then `f` does not run, and the
/// message says so. (It is never run on the runtime's own thread, which would block every
/// coroutine.)
#[track_caller]
pub fn unblock<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let pool = context::expect_core("unblock", |core| core.blocking_pool());
    let slot: Slot<T> = Arc::new(Mutex::new(None));
    let mut refused = None;
    let wake = park::park(Reason::new("unblock"), None, |w| {
        let waker = park::remote_waker(w);
        let theirs = slot.clone();
        let submitted = pool.submit(Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(f));
            *theirs.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            waker.wake();
        }));
        if let Err(e) = submitted {
            refused = Some(e);
            w.wake(); // ends this park at once: nothing will run the job
        }
    });
    if let Some(e) = refused {
        panic!(
            "spindle: unblock could not start a thread for its blocking pool ({e}); the job did \
             not run. The process is at its thread or memory limit: lower \
             RuntimeBuilder::blocking_threads or raise the limit (ulimit -u, RLIMIT_AS)"
        );
    }
    if wake == Wake::Cancelled {
        park::unwind();
    }
    // Only the job holds this park's waker, and it wakes after filling the slot.
    let result = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    match result.expect("the blocking job filled its slot before waking") {
        Ok(value) => value,
        Err(payload) => resume_unwind(payload),
    }
}
