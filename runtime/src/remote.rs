//! Wakes from other threads: a queue behind a mutex and a `mio::Waker` that interrupts the
//! runtime's poll. The only path by which another thread reaches a spindle runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The runtime's end: pending wakes and the count of wakers still out in the world.
pub(crate) struct RemoteShared {
    /// `(slot, park sequence)` of wakes waiting for the scheduler to apply them.
    queue: Mutex<Vec<(usize, u64)>>,
    /// Interrupts the scheduler's `poll` when it is blocked.
    waker: mio::Waker,
    /// RemoteWakers created and neither woken nor dropped: while non-zero, a parked coroutine
    /// may still be woken from outside, so the scheduler must not call it a deadlock.
    outstanding: AtomicUsize,
}

impl RemoteShared {
    pub(crate) fn new(waker: mio::Waker) -> RemoteShared {
        RemoteShared { queue: Mutex::new(Vec::new()), waker, outstanding: AtomicUsize::new(0) }
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
        self.shared.outstanding.fetch_sub(1, Ordering::AcqRel);
        // If the wake fails the runtime is gone; nothing to do then.
        let _ = self.shared.waker.wake();
    }
}
