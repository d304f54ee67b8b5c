//! Channels between coroutines (Go's channels, crossbeam-channel's API): multi-producer,
//! multi-consumer, bounded, unbounded or rendezvous, with [`select!`](crate::select).
//!
//! ```
//! use spindle_runtime::sync::channel;
//!
//! spindle_runtime::run(|| {
//!     let (tx, rx) = channel::bounded(1);
//!     let producer = spindle_runtime::spawn(move || {
//!         for i in 0..5 {
//!             tx.send(i).unwrap(); // parks while the one slot is full
//!         }
//!     }); // tx dropped: the channel disconnects once drained
//!     assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
//!     producer.join().unwrap();
//! });
//! ```
//!
//! # Capacity
//!
//! * [`bounded(n)`](bounded): `send` parks while `n` messages are buffered.
//! * [`unbounded()`](unbounded): `send` never parks.
//! * `bounded(0)`, a *rendezvous*: no buffer of its own. If a receiver is parked in `recv`,
//!   `send` hands it the value and returns at once (the woken receiver takes it when it runs);
//!   otherwise the sender parks, its value on offer, until a receiver takes it. `try_send`
//!   succeeds only if a receiver is parked (in `recv` or in a `select!` with a `recv` arm).
//!   A receiver parked in `recv` is handed the value (see "Order and fairness"); a `select!`
//!   woken for it may choose another arm, and the value then goes to the next receiver.
//!   Its `len()` is always 0, as crossbeam-channel's: a value on offer is still its sender's,
//!   and a value handed to a woken receiver is already that receiver's.
//! * A sender parked in a [`select!`](crate::select) send arm has no value yet (its
//!   expression is evaluated only once the arm is chosen). A parked receiver wakes it; and
//!   [`Receiver::try_recv`] or a `select!` with a `default` arm, which do not wait for a
//!   sender that is not there, wake it and wait for it to choose, taking the value it then
//!   makes, as they would take a value on offer.
//!
//! # Disconnection
//!
//! [`Sender`] and [`Receiver`] are both `Clone`. When the last `Sender` is dropped, receivers
//! still get every buffered message, then `Err` (`Disconnected`). When the last `Receiver` is
//! dropped, buffered messages are dropped and `send` returns the value in its error.
//!
//! Messages are dropped one by one, after parked senders are woken: a destructor that panics
//! does not keep the others from being dropped. Its panic goes on once all are dropped; but
//! if the thread is unwinding already (the last `Receiver` dropped by a coroutine's panic,
//! where a second panic leaving a destructor would abort the process), it ends there, the
//! panic hook having reported it. (crossbeam-channel stops at the panicking message and leaks
//! the ones after it.)
//!
//! # Order and fairness
//!
//! Messages come out in the order they went in. A send to a channel with a coroutine parked in
//! [`Receiver::recv`] (or `recv_timeout`, `iter`) *hands* the message to the longest parked
//! one: it is that receiver's when it runs, and a coroutine that runs first (`try_recv`,
//! another `recv`) cannot take it — as [`Mutex`](super::Mutex) hands a released lock to its
//! longest waiter. So parked consumers share a producer's messages in turn, with no yield
//! between sends. A receiver handed a message gets it even if its deadline passes or it is
//! cancelled before it runs (the cancellation takes effect at its next park).
//!
//! A `select!` parked with a recv arm is told about a message, not handed it (it may choose
//! another arm): it takes the message if it is still there when it runs, and one that took
//! nothing passes the wakeup on. Parked `recv`s are served before parked `select!`s. Parked
//! senders of a full bounded channel are woken in FIFO order when room is made, and the room
//! is not reserved for them: a sender that runs first may take it, and the woken one parks
//! again at the back. No message is lost or duplicated: a waiter that times out or is
//! cancelled before it was woken is simply skipped.

mod chan;
mod error;
mod takers;

pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use super::{deadline_after, Waiters};
use crate::park::{ObjectId, Reason, Token, Waker};
use chan::{Buffer, Chan};
use takers::Takers;

/// A channel buffering at most `cap` messages; `bounded(0)` is a rendezvous channel.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    make(Some(cap))
}

/// A channel whose `send` never parks.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    make(None)
}

fn make<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Rc::new(Chan {
        buffer: RefCell::new(Buffer { values: VecDeque::new(), offers: VecDeque::new() }),
        next_offer: Cell::new(0),
        cap,
        senders: Cell::new(1),
        receivers: Cell::new(1),
        send_waiters: Waiters::new(),
        id: ObjectId::new("channel"),
        takers: Takers::new(),
        recv_waiters: Waiters::new(),
        claimants: Waiters::new(),
        claimed: RefCell::new(Vec::new()),
        promised: Cell::new(0),
        missed: Cell::new(0),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The sending half of a channel. Clone it for more producers.
///
/// ```
/// use std::time::Duration;
/// use spindle_runtime::sync::channel::{self, SendTimeoutError, TrySendError};
///
/// spindle_runtime::run(|| {
///     let (tx, rx) = channel::bounded(1);
///     tx.try_send(1).unwrap();
///     assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
///     let late = tx.send_timeout(3, Duration::from_millis(1));
///     assert!(matches!(late, Err(SendTimeoutError::Timeout(3))));
///     drop(rx);
///     assert_eq!(tx.send(4).unwrap_err().into_inner(), 4); // nobody to receive it
/// });
/// ```
pub struct Sender<T> {
    chan: Rc<Chan<T>>,
}

/// The receiving half of a channel. Clone it for more consumers; each message goes to one.
///
/// ```
/// use std::time::Duration;
/// use spindle_runtime::sync::channel::{self, RecvTimeoutError, TryRecvError};
///
/// spindle_runtime::run(|| {
///     let (tx, rx) = channel::unbounded();
///     assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
///     assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvTimeoutError::Timeout));
///     tx.send("a").unwrap();
///     tx.send("b").unwrap();
///     drop(tx);
///     assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["a", "b"]);
///     assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
/// });
/// ```
pub struct Receiver<T> {
    chan: Rc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `channel#3` (see [`ObjectId`]).
    pub fn label(&self, label: &'static str) {
        self.chan.id.label(label);
    }

    /// Sends, parking while a bounded channel is full (or, for a rendezvous channel, until a
    /// receiver takes the value). Fails, giving the value back, when every receiver is gone.
    #[inline]
    #[track_caller]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan.send(value, None).map_err(|e| SendError(e.into_inner()))
    }

    /// Sends if that needs no waiting.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(value)
    }

    /// Like [`Sender::send`], giving up after `timeout`.
    #[track_caller]
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(value, Some(deadline_after(timeout)))
    }

    /// Messages buffered now; always 0 on a rendezvous channel, which has no buffer.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// True if no message is buffered (always, on a rendezvous channel).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if the buffer is at capacity: never for an unbounded channel, always for a
    /// rendezvous one (as crossbeam-channel's), which has no room of its own even when a
    /// receiver waits for a `send`.
    pub fn is_full(&self) -> bool {
        self.chan.is_full()
    }

    /// The capacity: `None` for unbounded, `Some(0)` for rendezvous.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.cap
    }

    /// True once every receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        self.chan.receivers.get() == 0
    }

    #[doc(hidden)]
    pub fn __select_arm(&self) -> &dyn super::select::SelectArm {
        self
    }

    /// The chosen send arm of a `select!`, before its value expression is evaluated (nothing
    /// has run since the choice). Its guard withdraws what the choice promised if the
    /// expression unwinds.
    #[doc(hidden)]
    pub fn __select_send_arm(&self) -> SelectSend<'_, T> {
        let chan = &self.chan;
        // Chosen on a rendezvous channel with receivers: the choice woke one for the value.
        let promised = chan.is_rendezvous() && chan.receivers.get() > 0;
        SelectSend { tx: self, promised }
    }
}

/// A `select!` send arm that was chosen and whose value is being evaluated. Implementation
/// detail of the macro.
#[doc(hidden)]
pub struct SelectSend<'a, T> {
    tx: &'a Sender<T>,
    /// Rendezvous: the choice woke a receiver for the value (counted in `Chan::promised`),
    /// and the value has not been handed over yet.
    promised: bool,
}

impl<T> SelectSend<'_, T> {
    #[doc(hidden)]
    #[track_caller]
    pub fn send(mut self, value: T) -> Result<(), SendError<T>> {
        let chan = &self.tx.chan;
        if std::mem::take(&mut self.promised) {
            return chan.complete_handoff(value).map_err(|e| SendError(e.into_inner()));
        }
        if chan.is_rendezvous() {
            // Chosen because every receiver was gone.
            return Err(SendError(value));
        }
        match chan.try_send(value) {
            Ok(()) => Ok(()),
            // Only if the value expression parked and the room went meanwhile.
            Err(TrySendError::Full(v)) => self.tx.send(v),
            Err(TrySendError::Disconnected(v)) => Err(SendError(v)),
        }
    }
}

impl<T> Drop for SelectSend<'_, T> {
    fn drop(&mut self) {
        if self.promised {
            self.tx.chan.withdraw_handoff();
        }
    }
}

impl<T> Receiver<T> {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `channel#3` (see [`ObjectId`]).
    pub fn label(&self, label: &'static str) {
        self.chan.id.label(label);
    }

    /// Receives, parking until a message arrives. `Err` once every sender is gone and the
    /// buffer is drained.
    #[inline]
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv(None).map_err(|_| RecvError)
    }

    /// Receives if a message is there now.
    ///
    /// On a rendezvous channel a parked sender counts as a message there, whether it parked in
    /// [`Sender::send`] or in a [`select!`](crate::select) send arm. The latter's value is made
    /// only once its arm is chosen, so `try_recv` then wakes it and parks until it has run and
    /// chosen (as crossbeam-channel's waits for the paired thread): a value expression that
    /// completes without parking hands its value to this `try_recv`; one that parks or unwinds
    /// leaves it `Empty` (the value, once made, goes as a plain `send` would). It never
    /// unwinds itself: a cancellation during that wait takes effect at the coroutine's next
    /// park.
    #[track_caller]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let chan = &*self.chan;
        // Only a rendezvous channel with a parked sender may need a claim: every other
        // `try_recv` is the plain one, returned as it is.
        if chan.is_rendezvous() && !chan.send_waiters.is_empty() {
            return self.try_recv_claiming();
        }
        chan.try_recv()
    }

    /// `try_recv` on a rendezvous channel with parked senders: takes a plain sender's offer,
    /// or claims a `select!` sender's value (see `Chan::claim`).
    #[track_caller]
    #[inline(never)]
    fn try_recv_claiming(&self) -> Result<T, TryRecvError> {
        match self.chan.try_recv() {
            Err(TryRecvError::Empty)
                if self.chan.claim(self.chan.id.reason("Receiver::try_recv")) =>
            {
                self.chan.try_recv()
            }
            received => received,
        }
    }

    /// Like [`Receiver::recv`], giving up after `timeout`.
    #[track_caller]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan.recv(Some(deadline_after(timeout)))
    }

    /// Receives until every sender is gone and the buffer is drained.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// Receives what is there now, without parking.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Messages buffered now; always 0 on a rendezvous channel, which has no buffer.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// True if no message is buffered (always, on a rendezvous channel).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if the buffer is at capacity: never for an unbounded channel, always for a
    /// rendezvous one (as crossbeam-channel's), which has no room of its own even when a
    /// receiver waits for a `send`.
    pub fn is_full(&self) -> bool {
        self.chan.is_full()
    }

    /// The capacity: `None` for unbounded, `Some(0)` for rendezvous.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.cap
    }

    /// True once every sender is gone (messages may still be buffered).
    pub fn is_disconnected(&self) -> bool {
        self.chan.senders.get() == 0
    }

    #[doc(hidden)]
    pub fn __select_arm(&self) -> &dyn super::select::SelectArm {
        self
    }

    #[doc(hidden)]
    pub fn __select_recv(&self) -> Result<T, RecvError> {
        match self.chan.try_recv() {
            Ok(v) => Ok(v),
            Err(TryRecvError::Disconnected) => Err(RecvError),
            // Only if something ran between the choice and now.
            Err(TryRecvError::Empty) => self.recv(),
        }
    }
}

impl<T> super::select::SelectArm for Receiver<T> {
    fn try_begin(&self) -> bool {
        let ready = self.maybe_ready();
        if !ready && self.chan.is_rendezvous() {
            self.chan.looked_empty();
        }
        ready
    }

    fn maybe_ready(&self) -> bool {
        self.chan.buffered() > 0 || self.chan.senders.get() == 0
    }

    fn register(&self, waker: Waker) -> Token {
        self.chan.register_receiver(waker)
    }

    fn is_send(&self) -> bool {
        false
    }

    fn unregister(&self, token: Token) {
        self.chan.recv_waiters.remove(token);
    }

    fn pass_on(&self) {
        self.chan.wake_receiver();
    }

    fn take_claim(&self, _waker: Waker) -> bool {
        false
    }

    fn try_claim(&self) -> bool {
        self.chan.claim(Reason::new("select!"))
    }
}

impl<T> super::select::SelectArm for Sender<T> {
    fn try_begin(&self) -> bool {
        let chan = &self.chan;
        chan.receivers.get() == 0
            || match chan.cap {
                None => true,
                // Commits: the woken receiver will find the value `SelectSend::send` pushes.
                Some(0) => chan.commit_handoff(),
                Some(cap) => chan.buffered() < cap,
            }
    }

    fn maybe_ready(&self) -> bool {
        let chan = &self.chan;
        chan.receivers.get() == 0
            || match chan.cap {
                None => true,
                Some(0) => chan.has_parked_receiver(),
                Some(cap) => chan.buffered() < cap,
            }
    }

    fn register(&self, waker: Waker) -> Token {
        self.chan.send_waiters.push(waker)
    }

    fn is_send(&self) -> bool {
        true
    }

    fn unregister(&self, token: Token) {
        self.chan.send_waiters.remove(token);
    }

    fn pass_on(&self) {
        self.chan.send_waiters.wake_one();
    }

    fn take_claim(&self, waker: Waker) -> bool {
        self.chan.is_rendezvous() && self.chan.forget_claim(waker)
    }

    fn try_claim(&self) -> bool {
        false
    }
}

// Unwind safety, as crossbeam-channel's halves: every operation finishes its change to the
// shared state (and lets go of its `RefCell` borrows) before it runs code that may panic or
// unwind (a message's destructor, a park that unwinds on cancellation, a `select!` arm's value
// expression, whose promise a guard withdraws), so a panic caught with `catch_unwind` never
// leaves a channel half-updated for the code that goes on using it.
impl<T> UnwindSafe for Sender<T> {}
impl<T> RefUnwindSafe for Sender<T> {}
impl<T> UnwindSafe for Receiver<T> {}
impl<T> RefUnwindSafe for Receiver<T> {}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.chan.senders.set(self.chan.senders.get() + 1);
        Sender { chan: self.chan.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let n = self.chan.senders.get() - 1;
        self.chan.senders.set(n);
        if n == 0 {
            self.chan.takers.wake_all();
            self.chan.recv_waiters.wake_all();
            self.chan.claimants.wake_all();
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.chan.receivers.set(self.chan.receivers.get() + 1);
        Receiver { chan: self.chan.clone() }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let n = self.chan.receivers.get() - 1;
        self.chan.receivers.set(n);
        if n == 0 {
            self.chan.disconnect_receivers();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("len", &self.len()).field("cap", &self.chan.cap).finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").field("len", &self.len()).field("cap", &self.chan.cap).finish()
    }
}

/// Blocking iterator over a [`Receiver`]: ends when the channel is disconnected and drained.
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    #[inline]
    #[track_caller]
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Non-blocking iterator over a [`Receiver`]: ends when the buffer is empty.
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    #[track_caller]
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// Owning blocking iterator over a [`Receiver`].
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    #[inline]
    #[track_caller]
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}
