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
//!   Not guaranteed: that the receiver woken for a value is the one that takes it — a `select!`
//!   woken for it may choose another arm, and the value then goes to the next receiver.
//!
//! # Disconnection
//!
//! [`Sender`] and [`Receiver`] are both `Clone`. When the last `Sender` is dropped, receivers
//! still get every buffered message, then `Err` (`Disconnected`). When the last `Receiver` is
//! dropped, buffered messages are dropped and `send` returns the value in its error.
//!
//! # Order and fairness
//!
//! Messages come out in the order they went in. Parked receivers (and senders) are woken in
//! FIFO order, but a message is not reserved for the coroutine woken for it: one that runs
//! first may take it, and the woken one parks again at the back. No message is lost or
//! duplicated: a waiter that times out or is cancelled is simply not woken, and one that was
//! woken but then took nothing (a `select!` that chose another arm) passes the wakeup on.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{deadline_after, forget, wait, Waiters};
use crate::park::{self, Reason, Token, Wake, Waker};

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
        recv_waiters: Waiters::new(),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// A parked rendezvous sender whose value sits in the buffer until a receiver takes it.
#[derive(Clone, Copy, Debug)]
struct Offer {
    /// Identifies the sender's offer across its re-parks.
    id: u64,
    /// Wakes the sender's current park when its value is taken.
    waker: Waker,
}

struct Buffer<T> {
    /// Messages, oldest first. For a rendezvous channel: values offered by parked senders, or
    /// handed to a receiver that was woken for them.
    values: VecDeque<T>,
    /// Rendezvous only, parallel to `values`: the parked sender of each value (`None` for a
    /// value handed to an already woken receiver, whose sender is not waiting).
    offers: VecDeque<Option<Offer>>,
}

/// The state a channel's senders and receivers share.
struct Chan<T> {
    buffer: RefCell<Buffer<T>>,
    /// Next `Offer::id`.
    next_offer: Cell<u64>,
    /// `None`: unbounded; `Some(0)`: rendezvous; `Some(n)`: at most n buffered.
    cap: Option<usize>,
    /// Live `Sender`s; 0 means disconnected for receivers.
    senders: Cell<usize>,
    /// Live `Receiver`s; 0 means disconnected for senders.
    receivers: Cell<usize>,
    /// Senders parked for room (bounded), for a receiver (rendezvous `select!` send arms), or
    /// with an offer (rendezvous `send`); also woken all at once when receivers disconnect.
    send_waiters: Waiters,
    /// Receivers parked for a message; woken all at once when senders disconnect.
    recv_waiters: Waiters,
}

impl<T> Chan<T> {
    fn is_rendezvous(&self) -> bool {
        self.cap == Some(0)
    }

    fn len(&self) -> usize {
        self.buffer.borrow().values.len()
    }

    /// Appends a message and wakes a parked receiver for it.
    fn push(&self, value: T) {
        self.buffer.borrow_mut().values.push_back(value);
        self.recv_waiters.wake_one();
    }

    /// A rendezvous value for a receiver that was already woken for it.
    fn push_handed(&self, value: T) {
        let mut b = self.buffer.borrow_mut();
        b.values.push_back(value);
        b.offers.push_back(None);
    }

    fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        if self.receivers.get() == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        match self.cap {
            None => self.push(value),
            Some(0) => {
                if self.recv_waiters.wake_one().is_none() {
                    return Err(TrySendError::Full(value));
                }
                self.push_handed(value);
            }
            Some(cap) => {
                if self.len() >= cap {
                    return Err(TrySendError::Full(value));
                }
                self.push(value);
            }
        }
        Ok(())
    }

    #[track_caller]
    fn send(&self, mut value: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        if self.is_rendezvous() {
            return self.send_rendezvous(value, deadline);
        }
        loop {
            match self.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(v)) => {
                    return Err(SendTimeoutError::Disconnected(v))
                }
                Err(TrySendError::Full(v)) => value = v,
            }
            if !wait!(self.send_waiters, Reason::at("Sender::send", self), deadline) {
                return Err(SendTimeoutError::Timeout(value));
            }
        }
    }

    /// Sends on a rendezvous channel: hands the value to a parked receiver, or leaves it in
    /// the buffer as an offer and parks until a receiver takes it.
    #[track_caller]
    fn send_rendezvous(
        &self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        let value = match self.try_send(value) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(v)) => return Err(SendTimeoutError::Disconnected(v)),
            Err(TrySendError::Full(v)) => v,
        };
        let id = self.next_offer.get();
        self.next_offer.set(id + 1);
        let mut value = Some(value);
        // Its own park, not `Waiters`': the waker goes into the offer too, and the receiver
        // that takes the offer wakes it directly, so the sender leaves `send_waiters` however
        // the park ended; and a value already taken outranks a cancellation.
        loop {
            let mut token = None;
            let wake = park::park(Reason::at("Sender::send", self), deadline, |waker| {
                token = Some(self.send_waiters.push(waker));
                let offer = Offer { id, waker };
                let mut b = self.buffer.borrow_mut();
                match value.take() {
                    Some(v) => {
                        b.values.push_back(v);
                        b.offers.push_back(Some(offer));
                    }
                    // Parking again: the offer is in place, point it at this park.
                    None => {
                        if let Some(slot) =
                            b.offers.iter_mut().find(|o| o.is_some_and(|o| o.id == id))
                        {
                            *slot = Some(offer);
                        }
                    }
                }
            });
            forget(&self.send_waiters, token);
            let taken_back = {
                let mut b = self.buffer.borrow_mut();
                match b.offers.iter().position(|o| o.is_some_and(|o| o.id == id)) {
                    // A receiver took it: the send happened, whatever ended the park (a
                    // cancellation then takes effect at the coroutine's next park).
                    None => None,
                    Some(i) if wake != Wake::Notified || self.receivers.get() == 0 => {
                        b.offers.remove(i);
                        b.values.remove(i)
                    }
                    Some(_) => continue,
                }
            };
            let Some(v) = taken_back.or(value.take()) else { return Ok(()) };
            return match wake {
                Wake::Cancelled => {
                    drop(v);
                    park::unwind()
                }
                Wake::TimedOut if self.receivers.get() > 0 => Err(SendTimeoutError::Timeout(v)),
                _ => Err(SendTimeoutError::Disconnected(v)),
            };
        }
    }

    fn try_recv(&self) -> Result<T, TryRecvError> {
        let (value, offer) = {
            let mut b = self.buffer.borrow_mut();
            match b.values.pop_front() {
                Some(v) => {
                    let offer =
                        if self.cap == Some(0) { b.offers.pop_front().flatten() } else { None };
                    (v, offer)
                }
                None if self.senders.get() == 0 => return Err(TryRecvError::Disconnected),
                None => return Err(TryRecvError::Empty),
            }
        };
        match offer {
            // Rendezvous: the offering sender's `send` completes.
            Some(offer) => {
                offer.waker.wake();
            }
            // Bounded: room for a parked sender.
            None => {
                self.send_waiters.wake_one();
            }
        }
        Ok(value)
    }

    #[track_caller]
    fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        loop {
            match self.try_recv() {
                Ok(v) => return Ok(v),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            let reason = Reason::at("Receiver::recv", self);
            if !self.recv_waiters.wait_with(reason, deadline, || self.receiver_queued(), || {}) {
                return Err(RecvTimeoutError::Timeout);
            }
        }
    }

    /// Queues a parked receiver (of a `select!` recv arm).
    fn register_receiver(&self, waker: Waker) -> Token {
        let token = self.recv_waiters.push(waker);
        self.receiver_queued();
        token
    }

    /// A receiver has just been queued. On a rendezvous channel, wakes a parked `select!` send
    /// arm, which can now hand it a value.
    fn receiver_queued(&self) {
        if self.is_rendezvous() {
            self.send_waiters.wake_one();
        }
    }

    fn disconnect_receivers(&self) {
        if !self.is_rendezvous() {
            // Messages nobody can receive any more; dropped outside the borrow, since a
            // message's destructor may use the channel.
            let dropped = std::mem::take(&mut self.buffer.borrow_mut().values);
            drop(dropped);
        }
        self.send_waiters.wake_all();
    }
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
    /// Sends, parking while a bounded channel is full (or, for a rendezvous channel, until a
    /// receiver takes the value). Fails, giving the value back, when every receiver is gone.
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

    /// Messages buffered now.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// True if no message is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    #[doc(hidden)]
    pub fn __select_send(&self, value: T) -> Result<(), SendError<T>> {
        let chan = &self.chan;
        if chan.receivers.get() == 0 {
            return Err(SendError(value));
        }
        if chan.is_rendezvous() {
            // `select` woke a receiver for this value when it chose the arm.
            chan.push_handed(value);
            return Ok(());
        }
        match chan.try_send(value) {
            Ok(()) => Ok(()),
            // Only if the value expression parked and the room went meanwhile.
            Err(TrySendError::Full(v)) => self.send(v),
            Err(TrySendError::Disconnected(v)) => Err(SendError(v)),
        }
    }
}

impl<T> Receiver<T> {
    /// Receives, parking until a message arrives. `Err` once every sender is gone and the
    /// buffer is drained.
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv(None).map_err(|_| RecvError)
    }

    /// Receives if a message is there now.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
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

    /// Messages buffered now.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// True if no message is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        self.chan.len() > 0 || self.chan.senders.get() == 0
    }

    fn maybe_ready(&self) -> bool {
        self.try_begin()
    }

    fn register(&self, waker: Waker) -> Token {
        self.chan.register_receiver(waker)
    }

    fn unregister(&self, token: Token) {
        self.chan.recv_waiters.remove(token);
    }

    fn pass_on(&self) {
        self.chan.recv_waiters.wake_one();
    }
}

impl<T> super::select::SelectArm for Sender<T> {
    fn try_begin(&self) -> bool {
        let chan = &self.chan;
        chan.receivers.get() == 0
            || match chan.cap {
                None => true,
                // Commits: the woken receiver will find the value `__select_send` pushes.
                Some(0) => chan.recv_waiters.wake_one().is_some(),
                Some(cap) => chan.len() < cap,
            }
    }

    fn maybe_ready(&self) -> bool {
        let chan = &self.chan;
        chan.receivers.get() == 0
            || match chan.cap {
                None => true,
                Some(0) => !chan.recv_waiters.is_empty(),
                Some(cap) => chan.len() < cap,
            }
    }

    fn register(&self, waker: Waker) -> Token {
        self.chan.send_waiters.push(waker)
    }

    fn unregister(&self, token: Token) {
        self.chan.send_waiters.remove(token);
    }

    fn pass_on(&self) {
        self.chan.send_waiters.wake_one();
    }
}

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
            self.chan.recv_waiters.wake_all();
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

// ----- errors -------------------------------------------------------------------------------

/// `send` failed because every receiver is gone; the value is inside.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why `try_send` failed; the value is inside.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// A bounded channel is full, or no receiver waits on a rendezvous channel.
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// Why `send_timeout` failed; the value is inside.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendTimeoutError<T> {
    /// The timeout passed first.
    Timeout(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// `recv` failed: every sender is gone and the channel is drained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvError;

/// Why `try_recv` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// No message right now.
    Empty,
    /// Every sender is gone and the channel is drained.
    Disconnected,
}

/// Why `recv_timeout` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// The timeout passed first.
    Timeout,
    /// Every sender is gone and the channel is drained.
    Disconnected,
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }

    /// True for `Full`.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// True for `Disconnected`.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Disconnected(v) => v,
        }
    }

    /// True for `Timeout`.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }

    /// True for `Disconnected`.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Disconnected(_))
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError { .. }")
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a channel whose receivers are all gone")
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Disconnected(_) => SendError(()).fmt(f),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out sending on a full channel"),
            SendTimeoutError::Disconnected(_) => SendError(()).fmt(f),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on an empty channel whose senders are all gone")
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => RecvError.fmt(f),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out receiving on an empty channel"),
            RecvTimeoutError::Disconnected => RecvError.fmt(f),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}
impl<T> std::error::Error for TrySendError<T> {}
impl<T> std::error::Error for SendTimeoutError<T> {}
impl std::error::Error for RecvError {}
impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvTimeoutError {}
