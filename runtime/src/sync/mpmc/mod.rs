//! Thread-safe channels: multi-producer, multi-consumer, bounded, unbounded or rendezvous,
//! whose ends may live in any thread and any runtime, or in none.
//!
//! [`Sender`] and [`Receiver`] are `Send + Sync + Clone` (for `T: Send`). A coroutine that must
//! wait parks — its coroutine only; the others of its runtime go on — and a plain OS thread
//! that must wait blocks. So one channel can feed work from a GUI thread, a tokio service or a
//! worker thread into a runtime, carry results back, or connect the runtimes of several
//! threads.
//!
//! ```
//! use spindle_runtime::sync::mpmc;
//!
//! let (jobs, inbox) = mpmc::bounded::<u64>(16);
//! let (results, outbox) = mpmc::unbounded::<u64>();
//! // A plain thread feeds the runtime...
//! let feeder = std::thread::spawn(move || {
//!     for n in 1..=100 {
//!         jobs.send(n).unwrap(); // blocks this thread while 16 are queued
//!     }
//! }); // `jobs` dropped: the channel disconnects once drained
//! // ...whose coroutines do the work and send results back.
//! spindle_runtime::run(move || {
//!     let workers: Vec<_> = (0..4)
//!         .map(|_| {
//!             let (inbox, results) = (inbox.clone(), results.clone());
//!             spindle_runtime::spawn(move || {
//!                 for n in inbox.iter() {
//!                     results.send(n * n).unwrap(); // parks only this coroutine, if at all
//!                 }
//!             })
//!         })
//!         .collect();
//!     workers.into_iter().for_each(|w| w.join().unwrap());
//! });
//! feeder.join().unwrap();
//! assert_eq!(outbox.try_iter().sum::<u64>(), (1..=100).map(|n| n * n).sum());
//! ```
//!
//! A channel of a type that may not cross threads does not cross either:
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<spindle_runtime::sync::mpmc::Sender<std::rc::Rc<()>>>();
//! ```
//!
//! # Why `mpmc`, next to [`channel`](super::channel)
//!
//! [`sync::channel`](super::channel) is for the coroutines of one runtime: `!Send`, no lock,
//! no atomic, the cheapest way for coroutines of one thread to talk. These channels pay for a
//! mutex and cross-thread wakeups to go anywhere, so they are a separate type with a name that
//! says what differs, as Rust's std names its thread channels (`std::sync::mpsc`, and
//! `std::sync::mpmc` on nightly). The API is the same: the same method names, the same error
//! types (re-exported here) and the same disconnection rules, so code moves between the two by
//! changing the module path.
//!
//! # Capacity
//!
//! * [`bounded(n)`](bounded): `send` waits while `n` messages are buffered.
//! * [`unbounded()`](unbounded): `send` never waits.
//! * `bounded(0)`, a *rendezvous*: no buffer. `send` waits until a receiver takes the value
//!   (one already waiting in `recv` takes it at once); `try_send` succeeds only if a receiver
//!   is waiting. A `select!` waiting with a `recv` arm counts as a waiting receiver: the value
//!   is offered to it and the send returns; if the select completes another arm instead, the
//!   value stays in the channel for the next receiver.
//!
//! # Direct handoff
//!
//! A send to a waiting receiver hands it the message: the receiver's `recv` returns that
//! message when it runs, and no other receiver (a running coroutine, another thread's
//! `try_recv`) can take it first. Likewise a receive that frees room in a bounded channel moves
//! the longest waiting sender's value into it, and that sender's `send` is complete when it
//! wakes. Waiting receivers and senders are served oldest first; receivers waiting in `recv`
//! (or `recv_timeout`, `iter`) before `select!`s waiting with a `recv` arm, since a select may
//! not take what it is offered.
//!
//! # Disconnection
//!
//! When the last `Sender` is dropped, receivers still get every buffered message, then `Err`
//! (`Disconnected`); waiting receivers wake to see it. When the last `Receiver` is dropped,
//! buffered messages are dropped, `send` returns the value in its error, and waiting senders
//! wake with their values in the error.
//!
//! # Timeouts and cancellation
//!
//! Nothing is lost or duplicated. A coroutine's deadline is on its runtime's clock
//! ([`crate::time::now`], which may be virtual); a thread's is on the real one. A sender that
//! times out or is cancelled before a receiver took its value gets it back (in the error, or
//! dropped as its coroutine unwinds); once a receiver took it, the send has happened and
//! returns `Ok` (a cancellation then takes effect at the coroutine's next park). A receiver
//! whose deadline passes just as it is handed a message returns the message. A receiver
//! *cancelled* while a message was being handed to it does not keep it: the message goes to
//! the next waiting receiver, or back to the front of the buffer, and the coroutine unwinds.
//! (A bounded channel may then hold one message more than its capacity until it is received.)
//!
//! # `select!`
//!
//! A [`Receiver`] works in [`select!`](crate::select) `recv` arms, beside `sync::channel`
//! arms and a `default`/timeout arm, in a coroutine. A `send` arm on an `mpmc::Sender` is not
//! supported (it does not compile): `select!` evaluates a send arm's value only after it chose
//! the arm, and completes the send in a separate step, with arbitrary code between. Inside one
//! thread nothing can fill the channel in that gap, but another thread can, so the chosen send
//! could then have to wait, which a select must never do; holding a reservation across user
//! code (which may park, panic or be cancelled) is what the select machinery has no place for.
//! Use [`Sender::try_send`] in a loop with the other arms, or [`Sender::send_timeout`]. A recv
//! arm has no such gap: choosing it takes the message (reserved for this select), so a recv arm
//! chosen is a message received. A `select!` waits only in a coroutine (a thread may use one
//! with a `default` arm, which never waits).
//!
//! ```compile_fail,E0599
//! spindle_runtime::run(|| {
//!     let (tx, _rx) = spindle_runtime::sync::mpmc::unbounded::<u8>();
//!     spindle_runtime::select! { send(tx, 1) -> _ => {} }
//! });
//! ```
//!
//! # Deadlock detection
//!
//! A coroutine waiting on one of these channels holds a [`RemoteWaker`](crate::park::RemoteWaker)
//! for its park, so its runtime counts it as something another thread may still wake, and does
//! not report it as deadlocked while it waits. The flip side: coroutines of one runtime that
//! wait on each other only through an `mpmc` channel, with nothing else alive, hang instead of
//! being reported — the runtime cannot know that no other thread holds an end. Use
//! `sync::channel` between coroutines of one runtime. Dropping the last end on either side
//! always wakes the other side with `Disconnected`.
//!
//! # Costs
//!
//! Every operation takes the channel's mutex once (a waiter that waits takes it again when it
//! wakes). A parked coroutine is woken through its runtime's remote-wake queue and eventfd, a
//! thread through `unpark`: the wake of a waiter on another thread costs a system call or two,
//! and a coroutine woken from its own runtime's thread costs the same (it cannot tell). Within
//! one runtime, `sync::channel` is several times cheaper.

mod chan;
mod select;
mod state;
mod wait;

pub use crate::sync::channel::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chan::Chan;

/// A channel buffering at most `cap` messages; `bounded(0)` is a rendezvous channel.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    make(Some(cap))
}

/// A channel whose `send` never waits.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    make(None)
}

fn make<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(cap));
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The sending half of a thread-safe channel. Clone it for more producers, in any thread.
///
/// ```
/// use std::time::Duration;
/// use spindle_runtime::sync::mpmc::{self, SendTimeoutError, TrySendError};
///
/// let (tx, rx) = mpmc::bounded(1);
/// tx.try_send(1).unwrap();
/// assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
/// let late = tx.send_timeout(3, Duration::from_millis(1)); // a plain thread: blocks 1 ms
/// assert!(matches!(late, Err(SendTimeoutError::Timeout(3))));
/// drop(rx);
/// assert_eq!(tx.send(4).unwrap_err().into_inner(), 4); // nobody to receive it
/// ```
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of a thread-safe channel. Clone it for more consumers, in any thread;
/// each message goes to one.
///
/// ```
/// use std::time::Duration;
/// use spindle_runtime::sync::mpmc::{self, RecvTimeoutError, TryRecvError};
///
/// let (tx, rx) = mpmc::unbounded();
/// std::thread::spawn(move || {
///     tx.send("a").unwrap();
///     tx.send("b").unwrap();
/// });
/// spindle_runtime::run(move || {
///     assert_eq!(rx.iter().collect::<Vec<_>>(), ["a", "b"]); // parks until the thread is done
///     assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
///     assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvTimeoutError::Disconnected));
/// });
/// ```
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends, waiting while a bounded channel is full (or, for a rendezvous channel, until a
    /// receiver takes the value): a coroutine parks, a thread blocks. Fails, giving the value
    /// back, when every receiver is gone.
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
        self.chan.send(value, Some(timeout))
    }

    /// Messages buffered now (for a rendezvous channel: values of waiting senders).
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
        self.chan.lock().receivers == 0
    }
}

impl<T> Receiver<T> {
    /// Receives, waiting until a message arrives: a coroutine parks, a thread blocks. `Err`
    /// once every sender is gone and the buffer is drained.
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
        self.chan.recv(Some(timeout))
    }

    /// Receives until every sender is gone and the buffer is drained.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// Receives what is there now, without waiting.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Messages buffered now (for a rendezvous channel: values of waiting senders).
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
        self.chan.lock().senders == 0
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.chan.add_sender();
        Sender { chan: self.chan.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.chan.add_receiver();
        Receiver { chan: self.chan.clone() }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.drop_receiver();
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
