//! The threads behind `unblock`: a small pool that runs boxed jobs and knows nothing of the
//! runtime (a job wakes its coroutine itself, through a `RemoteWaker`).
//!
//! It starts no thread until the first job, grows on demand up to its cap, queues work beyond
//! that, and a thread idle for the keep-alive exits. [`BlockingPool::shutdown`] (when the
//! runtime is dropped) lets idle threads exit at once.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Work for a pool thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

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
    ///
    /// # Errors
    /// When no thread runs and none can be started (`EAGAIN`: the process is at its thread or
    /// memory limit): the job is dropped unrun and the error says why. While one thread runs, a
    /// job that could not get a thread of its own waits for it instead.
    pub(crate) fn submit(self: &Arc<Self>, job: Job) -> std::io::Result<()> {
        let mut state = self.lock();
        state.queue.push_back(job);
        if state.idle > 0 {
            self.work.notify_one();
            return Ok(());
        }
        if state.threads < self.max_threads {
            state.threads += 1;
            drop(state);
            let pool = self.clone();
            let spawned =
                thread::Builder::new().name("spindle-unblock".into()).spawn(move || pool.worker());
            if let Err(e) = spawned {
                // Could not start a thread: the queued job waits for an existing one. With none
                // at all it would wait forever: take it back and say so. (Running it here, on
                // the runtime's thread, would block every coroutine without a word.)
                let mut state = self.lock();
                state.threads -= 1;
                if state.threads == 0 {
                    let job = state.queue.pop_back();
                    drop(state);
                    drop(job);
                    return Err(e);
                }
            }
        }
        Ok(())
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
