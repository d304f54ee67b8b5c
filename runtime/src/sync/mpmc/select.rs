//! [`select!`](crate::select) `recv` arms on a thread-safe [`Receiver`], through the
//! [`SelectArm`] trait that `sync::channel` arms implement too.
//!
//! The single-thread arms check in `try_begin` and complete in `__select_recv`, which is safe
//! because nothing else runs on the thread in between. Here another thread may, so `try_begin`
//! *takes* the message and reserves it for the selecting coroutine ([`Agent`]), and
//! `__select_recv` returns the reservation: an arm chosen is a message received.
//!
//! Registering queues a [`Kind::Select`] waiter with a `RemoteWaker` for the select's park. A
//! sender that buffers a message tells one such waiter to look again (it hands it nothing, the
//! select may choose another arm). A select that was told but then took nothing from this
//! channel passes the word on when it unregisters, so a message is never left with nobody
//! told of it.

use std::thread;

use super::state::{Agent, Kind, Outcome, Waiter};
use super::wait::{deliver, Wakeup};
use super::{Receiver, RecvError, TryRecvError};
use crate::context;
use crate::park::{self, Token, Waker};
use crate::sync::select::SelectArm;

/// The token of a registration that queued nothing: the arm was ready, so it woke the park at
/// once and the select looks again.
const NOT_QUEUED: u64 = u64::MAX;

/// The selecting thread and coroutine: see [`Agent`].
fn agent() -> Agent {
    (thread::current().id(), context::current_id())
}

impl<T> Receiver<T> {
    #[doc(hidden)]
    pub fn __select_arm(&self) -> &dyn SelectArm {
        self
    }

    #[doc(hidden)]
    #[track_caller]
    pub fn __select_recv(&self) -> Result<T, RecvError> {
        let me = agent();
        let mut st = self.chan.lock();
        if let Some(i) = st.reserved.iter().position(|(a, _)| *a == me) {
            let (_, value) = st.reserved.swap_remove(i);
            return Ok(value);
        }
        // Chosen without a reservation: the channel was disconnected and drained.
        let disconnected = st.senders == 0 && st.buffer.is_empty() && st.sendq.is_empty();
        drop(st);
        if disconnected {
            Err(RecvError)
        } else {
            self.recv()
        }
    }
}

impl<T> SelectArm for Receiver<T> {
    fn try_begin(&self) -> bool {
        let mut st = self.chan.lock();
        match st.try_recv(self.chan.cap) {
            Ok((value, wakeup)) => {
                let me = agent();
                debug_assert!(st.reserved.iter().all(|(a, _)| *a != me), "one reservation");
                st.reserved.push((me, value));
                drop(st);
                deliver(wakeup);
                true
            }
            Err(TryRecvError::Disconnected) => true,
            Err(TryRecvError::Empty) => false,
        }
    }

    fn maybe_ready(&self) -> bool {
        self.chan.lock().recv_ready()
    }

    fn register(&self, waker: Waker) -> Token {
        let mut st = self.chan.lock();
        // Something arrived since `try_begin` looked: end the park at once.
        if st.recv_ready() {
            drop(st);
            waker.wake();
            return Token::from_raw(NOT_QUEUED);
        }
        let mut waiter = Waiter::new(Kind::Select, None);
        waiter.wakeup = Some(Wakeup::Coroutine(park::remote_waker(waker)));
        Token::from_raw(st.enqueue(waiter) as u64)
    }

    fn unregister(&self, token: Token) {
        if token.raw() == NOT_QUEUED {
            return;
        }
        let key = token.raw() as usize;
        let mut st = self.chan.lock();
        let waiter = st.waiters.remove(key);
        let wakeup = match waiter.outcome {
            Outcome::Waiting => {
                st.dequeue(key, Kind::Select);
                None
            }
            // Told to look again, for a message this select may not take (it chooses another
            // arm, timed out or is cancelled): tell the next select while there is one to take.
            _ if !st.buffer.is_empty() || !st.sendq.is_empty() => st.notify_select(),
            _ => None,
        };
        drop(st);
        drop(waiter); // its RemoteWaker, if unused, out of the lock
        deliver(wakeup);
    }

    /// Nothing to do: a wakeup this arm consumed was passed on by `unregister` already.
    fn pass_on(&self) {}

    fn is_send(&self) -> bool {
        false
    }

    /// Claims are for send arms, which thread-safe channels do not have in `select!`.
    fn take_claim(&self, _waker: Waker) -> bool {
        false
    }

    /// No sender of a thread-safe channel parks in a select send arm, so none hands a value
    /// over this way: a parked plain sender is already seen by `try_begin`.
    fn try_claim(&self) -> bool {
        false
    }
}
