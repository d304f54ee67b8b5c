//! Wakes from other threads: a queue behind a mutex and a `mio::Waker` that interrupts the
//! runtime's poll. The only path by which another thread reaches a spindle runtime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The runtime's end: pending wakes and the count of wakers still out in the world.
pub(crate) struct RemoteShared {
    /// `(slot, park sequence)` of wakes waiting for the scheduler to apply them.
    queue: Mutex<Vec<(usize, u64)>>,
    /// Interrupts the scheduler's `poll` when it is blocked.
    waker: mio::Waker,
    /// RemoteWakers created and not yet dropped (a cheap count for the busy loop's checks).
    outstanding: AtomicUsize,
    /// The parks those wakers are for, `(slot, park sequence) -> how many`: a waker whose park
    /// already ended (a stale one, kept or leaked) cannot wake anyone, so the deadlock check
    /// counts only the wakers of parks still in progress.
    parks: Mutex<HashMap<(usize, u64), usize>>,
}

impl RemoteShared {
    pub(crate) fn new(waker: mio::Waker) -> RemoteShared {
        RemoteShared {
            queue: Mutex::new(Vec::new()),
            waker,
            outstanding: AtomicUsize::new(0),
            parks: Mutex::new(HashMap::new()),
        }
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

    /// Moves the queued wakes into `into` (swapping buffers, so the lock is held briefly).
    pub(crate) fn drain(&self, into: &mut Vec<(usize, u64)>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *queue, into);
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.queue.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
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
            let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.push((self.key, self.seq));
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
        // If the wake fails the runtime is gone; nothing to do then.
        let _ = self.shared.waker.wake();
    }
}
