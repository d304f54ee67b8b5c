//! The door from other threads: wakes and jobs queued behind a mutex, and a `mio::Waker` that
//! interrupts the runtime's poll. The only path by which another thread reaches a spindle
//! runtime: [`RemoteWaker`] (the end of one park), and [`crate::Handle`], whose spawn requests
//! and cancellations travel as [`Job`]s.
//!
//! A leaf: a job is an opaque closure, and the scheduler runs what it drains (on its own thread,
//! with itself current, between resumptions). Nothing here calls back into it.
//!
//! # What counts
//!
//! The scheduler asks this queue three things, each a cheap atomic read first:
//!
//! * `has_pending`: a wake or a job is queued (work in flight: it holds a virtual clock, and
//!   `yield_now` does not skip its switch);
//! * `may_wake`: a [`RemoteWaker`] is out for a park still in progress (work in flight too);
//! * `handles`: live [`crate::Handle`]s. One may still spawn a coroutine that wakes somebody,
//!   so while one lives the runtime does not report a deadlock; but it is no work in flight:
//!   it does not hold a virtual clock, and it does not keep `run` going.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Work another thread asks the runtime to do on its own thread: start a coroutine, cancel
/// one. Run between resumptions with the runtime current, or dropped unrun if the runtime is
/// dropped first (so a job's destructor must say "never ran" to whoever waits for it).
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// What other threads have queued for the runtime.
#[derive(Default)]
struct Inbox {
    /// `(slot, park sequence)` of wakes waiting for the scheduler to apply them.
    wakes: Vec<(usize, u64)>,
    /// Jobs in the order they were queued.
    jobs: Vec<Job>,
    /// Set when the runtime is dropped: no job is accepted any more.
    closed: bool,
}

/// The runtime's end: pending wakes and jobs, and the counts of wakers and handles still out in
/// the world.
pub(crate) struct RemoteShared {
    inbox: Mutex<Inbox>,
    /// True while `inbox` holds a wake or a job (kept under the inbox lock, read without it).
    queued: AtomicBool,
    /// Interrupts the scheduler's `poll` when it is blocked.
    waker: mio::Waker,
    /// RemoteWakers created and not yet dropped (a cheap count for the busy loop's checks).
    outstanding: AtomicUsize,
    /// The parks those wakers are for, `(slot, park sequence) -> how many`: a waker whose park
    /// already ended (a stale one, kept or leaked) cannot wake anyone, so the deadlock check
    /// counts only the wakers of parks still in progress.
    parks: Mutex<HashMap<(usize, u64), usize>>,
    /// Live `Handle`s (clones included).
    handles: AtomicUsize,
    /// The thread that owns the runtime (a runtime is not `Send`: the one that built it).
    owner: std::thread::ThreadId,
    /// The runtime's id (`Core::runtime_id`).
    runtime_id: u64,
}

impl RemoteShared {
    pub(crate) fn new(waker: mio::Waker, runtime_id: u64) -> RemoteShared {
        RemoteShared {
            inbox: Mutex::new(Inbox::default()),
            queued: AtomicBool::new(false),
            waker,
            outstanding: AtomicUsize::new(0),
            parks: Mutex::new(HashMap::new()),
            handles: AtomicUsize::new(0),
            owner: std::thread::current().id(),
            runtime_id,
        }
    }

    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Interrupts the runtime's poll. If the runtime is gone the wake fails; nothing to do then.
    fn interrupt(&self) {
        let _ = self.waker.wake();
    }

    /// True if some outstanding waker is for a park that `in_progress` says has not ended:
    /// another thread may still wake a coroutine.
    pub(crate) fn may_wake(&self, in_progress: impl Fn(usize, u64) -> bool) -> bool {
        if self.outstanding() == 0 {
            return false;
        }
        let parks = self.parks.lock().unwrap_or_else(|e| e.into_inner());
        parks.keys().any(|&(key, seq)| in_progress(key, seq))
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Live `Handle`s.
    pub(crate) fn handles(&self) -> usize {
        self.handles.load(Ordering::Acquire)
    }

    /// The thread that owns the runtime.
    pub(crate) fn owner(&self) -> std::thread::ThreadId {
        self.owner
    }

    /// The id of the runtime this queue belongs to.
    pub(crate) fn runtime_id(&self) -> u64 {
        self.runtime_id
    }

    /// Moves the queued wakes into `wakes` and the queued jobs into `jobs` (swapping buffers,
    /// so the lock is held briefly).
    pub(crate) fn drain(&self, wakes: &mut Vec<(usize, u64)>, jobs: &mut Vec<Job>) {
        if !self.has_pending() {
            return;
        }
        let mut inbox = self.inbox();
        std::mem::swap(&mut inbox.wakes, wakes);
        std::mem::swap(&mut inbox.jobs, jobs);
        self.queued.store(false, Ordering::Release);
    }

    /// True while a wake or a job is queued. One atomic load.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.queued.load(Ordering::Acquire)
    }

    /// Queues `job` for the runtime's thread and interrupts its poll; gives it back if the
    /// runtime is gone (closed).
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        {
            let mut inbox = self.inbox();
            if inbox.closed {
                return Err(job);
            }
            inbox.jobs.push(job);
            self.queued.store(true, Ordering::Release);
        }
        self.interrupt();
        Ok(())
    }

    /// The runtime is being dropped: refuses every later job and returns those still queued,
    /// for the caller to drop (outside the lock: a job's destructor tells its waiter it never
    /// ran).
    pub(crate) fn close(&self) -> Vec<Job> {
        let mut inbox = self.inbox();
        inbox.closed = true;
        inbox.wakes.clear();
        self.queued.store(false, Ordering::Release);
        std::mem::take(&mut inbox.jobs)
    }

    /// Counts a new `Handle`.
    pub(crate) fn handle_made(&self) {
        self.handles.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a `Handle` gone; the last one interrupts the poll, so that a runtime that waited
    /// only because a handle might still spawn looks again (and may report a deadlock).
    pub(crate) fn handle_dropped(&self) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.interrupt();
        }
    }
}

/// A [`Waker`](crate::park::Waker) that may be sent to and woken from any thread. Made by
/// [`crate::park::remote_waker`]. Waking it, or dropping it unwoken, interrupts the runtime's
/// poll so that it notices.
pub struct RemoteWaker {
    shared: Arc<RemoteShared>,
    key: usize,
    seq: u64,
}

impl RemoteWaker {
    /// A waker for park `seq` of the coroutine in slot `key`.
    pub(crate) fn new(shared: Arc<RemoteShared>, key: usize, seq: u64) -> RemoteWaker {
        *shared.parks.lock().unwrap_or_else(|e| e.into_inner()).entry((key, seq)).or_insert(0) += 1;
        shared.outstanding.fetch_add(1, Ordering::AcqRel);
        RemoteWaker { shared, key, seq }
    }

    /// Wakes the park this waker was made for with `Wake::Notified`, from any thread.
    pub fn wake(self) {
        {
            let mut inbox = self.shared.inbox();
            if !inbox.closed {
                inbox.wakes.push((self.key, self.seq));
                self.shared.queued.store(true, Ordering::Release);
            }
        }
        // Drop decrements `outstanding` and interrupts the poll.
    }
}

impl Drop for RemoteWaker {
    fn drop(&mut self) {
        {
            let mut parks = self.shared.parks.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = parks.get_mut(&(self.key, self.seq)) {
                *count -= 1;
                if *count == 0 {
                    parks.remove(&(self.key, self.seq));
                }
            }
        }
        self.shared.outstanding.fetch_sub(1, Ordering::AcqRel);
        self.shared.interrupt();
    }
}

impl std::fmt::Debug for RemoteWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWaker").field("key", &self.key).field("seq", &self.seq).finish()
    }
}
