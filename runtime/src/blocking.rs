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

use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use crate::park::{self, Reason, Wake};
use crate::scheduler::{with_core, Core};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// State shared by the runtime and its pool threads.
struct State {
    queue: VecDeque<Job>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for work.
    idle: usize,
    /// Set when the runtime is dropped: idle threads exit instead of waiting.
    shutdown: bool,
}

pub(crate) struct BlockingPool {
    state: Mutex<State>,
    work: Condvar,
    max_threads: usize,
    keep_alive: Duration,
}

impl BlockingPool {
    pub(crate) fn new(max_threads: usize, keep_alive: Duration) -> Arc<BlockingPool> {
        Arc::new(BlockingPool {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                shutdown: false,
            }),
            work: Condvar::new(),
            max_threads: max_threads.max(1),
            keep_alive,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`, starting a thread if none is idle and the cap allows.
    fn submit(self: &Arc<Self>, job: Job) {
        let mut state = self.lock();
        state.queue.push_back(job);
        if state.idle > 0 {
            self.work.notify_one();
            return;
        }
        if state.threads < self.max_threads {
            state.threads += 1;
            drop(state);
            let pool = self.clone();
            let spawned =
                thread::Builder::new().name("spindle-unblock".into()).spawn(move || pool.worker());
            if spawned.is_err() {
                // Could not start a thread: the queued job waits for an existing one. With none
                // at all it would wait forever, so run nothing silently: count the thread back.
                let mut state = self.lock();
                state.threads -= 1;
                if state.threads == 0 {
                    let job = state.queue.pop_back();
                    drop(state);
                    if let Some(job) = job {
                        job(); // Runs inline: blocks this thread, but loses nothing.
                    }
                }
            }
        }
    }

    fn worker(&self) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job();
                state = self.lock();
                continue;
            }
            if state.shutdown {
                break;
            }
            state.idle += 1;
            let (next, timeout) =
                self.work.wait_timeout(state, self.keep_alive).unwrap_or_else(|e| e.into_inner());
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.queue.is_empty() {
                break;
            }
        }
        state.threads -= 1;
    }

    pub(crate) fn shutdown(&self) {
        self.lock().shutdown = true;
        self.work.notify_all();
    }
}

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
/// Outside a coroutine of a running spindle runtime.
pub fn unblock<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let pool = with_core(|core| core.blocking_pool())
        .unwrap_or_else(|| panic!("{}", Core::outside_message("unblock")));
    let slot: Slot<T> = Arc::new(Mutex::new(None));
    let wake = park::park(Reason::new("unblock"), None, |w| {
        let waker = park::remote_waker(w);
        let theirs = slot.clone();
        pool.submit(Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(f));
            *theirs.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            waker.wake();
        }));
    });
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
