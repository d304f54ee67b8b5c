//! One channel's shared state behind its mutex, and the operations that may wait, which the
//! public [`Sender`](super::Sender) and [`Receiver`](super::Receiver) wrap. The protocol itself
//! (who hands what to whom) is in [`super::state`]; how a waiter waits is in [`super::wait`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::state::{Kind, Outcome, State, Waiter};
use super::wait::{self, deliver, Ended};
use crate::park::{self, Reason, Subject};
use crate::sync::channel::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};

/// The state a channel's senders and receivers share, in any number of threads and runtimes.
pub(super) struct Chan<T> {
    /// Buffer, counts of handles and waiters: see [`State`].
    pub(super) state: Mutex<State<T>>,
    /// `None`: unbounded; `Some(0)`: rendezvous; `Some(n)`: at most n buffered.
    pub(super) cap: Option<usize>,
    /// Its name in park reasons, `mpmc#4`: numbered per process when made, not per runtime
    /// as the single-thread primitives are ([`crate::park::ObjectId`]), since it belongs to
    /// no one runtime.
    number: u32,
}

/// The last `Chan::number` given.
static NUMBERS: AtomicU32 = AtomicU32::new(0);

impl<T> Chan<T> {
    pub(super) fn new(cap: Option<usize>) -> Chan<T> {
        let number = NUMBERS.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        Chan { state: Mutex::new(State::new()), cap, number }
    }

    fn reason(&self, what: &'static str) -> Reason {
        Reason { what, on: Some(Subject::Object { name: "mpmc", id: self.number }) }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State<T>> {
        wait::lock(&self.state)
    }

    /// Messages buffered now; on a rendezvous channel, the values of waiting senders too (as
    /// `sync::channel` counts its offers).
    pub(super) fn len(&self) -> usize {
        let st = self.lock();
        let offered = if self.cap == Some(0) { st.sendq.len() } else { 0 };
        st.buffer.len() + offered
    }

    pub(super) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let wakeup = self.lock().try_send(value, self.cap)?;
        deliver(wakeup);
        Ok(())
    }

    pub(super) fn try_recv(&self) -> Result<T, TryRecvError> {
        let (value, wakeup) = self.lock().try_recv(self.cap)?;
        deliver(wakeup);
        Ok(value)
    }

    /// Sends, waiting (up to `timeout`) while a bounded channel is full or, for a rendezvous
    /// channel, until a receiver takes the value.
    #[track_caller]
    pub(super) fn send(
        &self,
        value: T,
        timeout: Option<Duration>,
    ) -> Result<(), SendTimeoutError<T>> {
        let mut st = self.lock();
        let value = match st.try_send(value, self.cap) {
            Ok(wakeup) => {
                drop(st);
                deliver(wakeup);
                return Ok(());
            }
            Err(TrySendError::Disconnected(v)) => return Err(SendTimeoutError::Disconnected(v)),
            Err(TrySendError::Full(v)) => v,
        };
        let coroutine = wait::in_coroutine();
        let deadline = wait::deadline(timeout, coroutine);
        let reason = self.reason("mpmc::Sender::send");
        let waiter = Waiter::new(Kind::Send, Some(value));
        let (mut st, key, ended) = wait::wait(&self.state, st, waiter, reason, deadline, coroutine);
        let waiter = st.waiters.remove(key);
        if waiter.outcome == Outcome::Waiting {
            st.dequeue(key, Kind::Send);
        }
        drop(st);
        let value = waiter.value;
        match (waiter.outcome, ended) {
            // A receiver took the value: the send happened, whatever else ended the wait (a
            // cancellation then takes effect at the coroutine's next park).
            (Outcome::Done, _) => Ok(()),
            (_, Ended::Cancelled) => {
                drop(value);
                park::unwind()
            }
            (Outcome::Disconnected, _) => {
                Err(SendTimeoutError::Disconnected(value.expect("a sender keeps its value")))
            }
            _ => Err(SendTimeoutError::Timeout(value.expect("a sender keeps its value"))),
        }
    }

    /// Receives, waiting (up to `timeout`) until a message arrives or every sender is gone.
    #[track_caller]
    pub(super) fn recv(&self, timeout: Option<Duration>) -> Result<T, RecvTimeoutError> {
        let mut st = self.lock();
        match st.try_recv(self.cap) {
            Ok((value, wakeup)) => {
                drop(st);
                deliver(wakeup);
                return Ok(value);
            }
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        let coroutine = wait::in_coroutine();
        let deadline = wait::deadline(timeout, coroutine);
        let reason = self.reason("mpmc::Receiver::recv");
        let waiter = Waiter::new(Kind::Recv, None);
        let (mut st, key, ended) = wait::wait(&self.state, st, waiter, reason, deadline, coroutine);
        let waiter = st.waiters.remove(key);
        match (waiter.outcome, ended) {
            // Cancelled while a sender handed it a message: the message goes to the next
            // receiver (or back to the front of the buffer), not down with this coroutine.
            (Outcome::Done, Ended::Cancelled) => {
                let value = waiter.value.expect("a handed message");
                let wakeup = st.give_back(value);
                drop(st);
                deliver(wakeup);
                park::unwind()
            }
            // Handed a message, perhaps just as the deadline passed: it is this receiver's.
            (Outcome::Done, _) => {
                drop(st);
                Ok(waiter.value.expect("a handed message"))
            }
            (outcome, ended) => {
                if outcome == Outcome::Waiting {
                    st.dequeue(key, Kind::Recv);
                }
                drop(st);
                drop(waiter); // its RemoteWaker, out of the lock
                match (outcome, ended) {
                    (_, Ended::Cancelled) => park::unwind(),
                    (Outcome::Disconnected, _) => Err(RecvTimeoutError::Disconnected),
                    _ => Err(RecvTimeoutError::Timeout),
                }
            }
        }
    }

    /// One more sender.
    pub(super) fn add_sender(&self) {
        self.lock().senders += 1;
    }

    /// One more receiver.
    pub(super) fn add_receiver(&self) {
        self.lock().receivers += 1;
    }

    /// A sender is gone; the last one wakes every waiting receiver.
    pub(super) fn drop_sender(&self) {
        let mut st = self.lock();
        st.senders -= 1;
        if st.senders > 0 {
            return;
        }
        let wakeups = st.disconnect_senders();
        drop(st);
        wakeups.into_iter().for_each(wait::Wakeup::deliver);
    }

    /// A receiver is gone; the last one wakes every waiting sender and drops what is buffered.
    pub(super) fn drop_receiver(&self) {
        let mut st = self.lock();
        st.receivers -= 1;
        if st.receivers > 0 {
            return;
        }
        let (buffered, wakeups) = st.disconnect_receivers();
        drop(st);
        wakeups.into_iter().for_each(wait::Wakeup::deliver);
        drop(buffered);
    }
}
