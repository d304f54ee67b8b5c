//! The state one channel's senders and receivers share, and the operations on it that the
//! public [`Sender`](super::Sender) and [`Receiver`](super::Receiver) wrap: the buffer, the
//! rendezvous offers, and the two wait queues.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::mem::take;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Instant;

use super::takers::{Takers, Ticket};
use super::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use crate::park::{self, ObjectId, Reason, Token, Wake, Waker};
use crate::sync::{forget, wait, Waiters};

/// A parked rendezvous sender whose value sits in the buffer until a receiver takes it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Offer {
    /// Identifies the sender's offer across its re-parks.
    pub(super) id: u64,
    /// Wakes the sender's current park when its value is taken.
    pub(super) waker: Waker,
}

pub(super) struct Buffer<T> {
    /// Messages, oldest first. For a rendezvous channel: values offered by parked senders, or
    /// handed to a receiver that was woken for them.
    pub(super) values: VecDeque<T>,
    /// Rendezvous only, parallel to `values`: the parked sender of each value (`None` for a
    /// value handed to an already woken receiver, whose sender is not waiting).
    pub(super) offers: VecDeque<Option<Offer>>,
}

/// The state a channel's senders and receivers share.
pub(super) struct Chan<T> {
    pub(super) buffer: RefCell<Buffer<T>>,
    /// Next `Offer::id`.
    pub(super) next_offer: Cell<u64>,
    /// `None`: unbounded; `Some(0)`: rendezvous; `Some(n)`: at most n buffered.
    pub(super) cap: Option<usize>,
    /// Live `Sender`s; 0 means disconnected for receivers.
    pub(super) senders: Cell<usize>,
    /// Live `Receiver`s; 0 means disconnected for senders.
    pub(super) receivers: Cell<usize>,
    /// Senders parked for room (bounded), for a receiver (rendezvous `select!` send arms), or
    /// with an offer (rendezvous `send`); also woken all at once when receivers disconnect.
    pub(super) send_waiters: Waiters,
    /// Its name in park reasons (`channel#3`).
    pub(super) id: ObjectId,
    /// Receivers parked in `recv` (and `recv_timeout`, `iter`), and the messages handed to
    /// them: a send hands the longest waiting one its message, reserved for that receiver,
    /// which takes it when it runs. A handed message is not in `buffer`, so neither `try_recv`
    /// nor `len` sees it. Woken all at once when senders disconnect.
    pub(super) takers: Takers<T>,
    /// `select!`s parked with a recv arm: told a message is there, not handed it (a select
    /// may choose another arm). Woken all at once when senders disconnect.
    pub(super) recv_waiters: Waiters,
    /// Rendezvous only: receivers that may not wait for a sender (`try_recv`, a `select!`
    /// with a `default` arm) but found one parked in a `select!` send arm, whose value is made
    /// only once the arm is chosen. Each woke such a sender and parks here until a sender
    /// hands it a value; a sender serves these before `recv_waiters`.
    pub(super) claimants: Waiters,
    /// Rendezvous only: the wakers of the `select!` senders that claimants woke and that have
    /// not yet looked (see `take_claim`). A select woken through one of these must choose its
    /// send arm on this channel, so that the claimant is not left waiting.
    pub(super) claimed: RefCell<Vec<Waker>>,
    /// Rendezvous only: `select!` send arms that were chosen (and woke a receiver for their
    /// value, see `commit_handoff`) but have not yet handed the value over, because its
    /// expression is still being evaluated.
    pub(super) promised: Cell<usize>,
    /// Rendezvous only, at most `promised`: receivers that looked at the channel and found it
    /// empty while a promised value was still being made. Each may have been the receiver
    /// woken for it, now parked again (or gone): that many late values are delivered like a
    /// plain `send` (waking a parked receiver) instead of being left for a woken one.
    pub(super) missed: Cell<usize>,
}

impl<T> Chan<T> {
    pub(super) fn is_rendezvous(&self) -> bool {
        self.cap == Some(0)
    }

    /// Values in the buffer: messages, and on a rendezvous channel the values of parked
    /// senders and values handed to woken receivers.
    pub(super) fn buffered(&self) -> usize {
        self.buffer.borrow().values.len()
    }

    /// Messages the channel holds, as `len()` reports them: a rendezvous channel holds none
    /// (a value in its buffer is still its sender's, or already its receiver's).
    pub(super) fn len(&self) -> usize {
        if self.is_rendezvous() {
            0
        } else {
            self.buffered()
        }
    }

    /// `is_full()` as the halves report it.
    pub(super) fn is_full(&self) -> bool {
        self.cap.is_some_and(|cap| self.buffered() >= cap)
    }

    /// Hands a message to the longest parked `recv`, or else appends it to the buffer and
    /// tells a parked `select!` about it.
    ///
    /// A sender woken because a receive made room (in `send`'s loop) may hand its message
    /// over instead of taking the room: then the room is still there, and it passes the
    /// wakeup on to the next parked sender, or that one would wait beside a free slot.
    #[inline]
    pub(super) fn push(&self, value: T) {
        match self.hand(value) {
            Ok(()) => {
                if !self.send_waiters.is_empty() && !self.is_full() {
                    self.send_waiters.wake_one();
                }
            }
            Err(value) => {
                self.buffer.borrow_mut().values.push_back(value);
                self.recv_waiters.wake_one();
            }
        }
    }

    /// Wakes the longest parked `recv` and reserves `value` for it; gives the value back if no
    /// `recv` is parked.
    #[inline]
    fn hand(&self, value: T) -> Result<(), T> {
        self.takers.hand(value)
    }

    /// Rendezvous: wakes a receiver that will take a value pushed for it, a claimant first;
    /// false if none is parked.
    #[inline]
    pub(super) fn wake_receiver(&self) -> bool {
        self.claimants.wake_one().is_some()
            || self.takers.wake_one()
            || self.recv_waiters.wake_one().is_some()
    }

    /// True if a receiver of any kind is parked: a rendezvous value has somewhere to go.
    pub(super) fn has_parked_receiver(&self) -> bool {
        !self.claimants.is_empty() || !self.takers.is_empty() || !self.recv_waiters.is_empty()
    }

    /// Rendezvous, nothing to receive: if a sender waits in a `select!` send arm (its value is
    /// made only once the arm is chosen), wakes it and parks until a sender chooses to hand it
    /// a value (`commit_handoff` wakes claimants first) or every sender is gone. True if there
    /// is then something to receive: a value (unless the chosen arm's value expression parked
    /// or unwound), or the disconnection.
    ///
    /// For `try_recv` and a `select!` with a `default` arm, which may not park waiting for a
    /// sender that is not there, but here wait for one that is and must run to send. A
    /// cancellation does not unwind here: the claim returns, and the coroutine unwinds at its
    /// next park.
    #[track_caller]
    pub(super) fn claim(&self, reason: Reason) -> bool {
        if !self.is_rendezvous() {
            return false;
        }
        // Something came meanwhile (a `select!` that claimed on another arm first parked).
        if self.buffered() > 0 || self.senders.get() == 0 {
            return true;
        }
        if self.send_waiters.is_empty() {
            return false;
        }
        // Outside a coroutine (a destructor run by the scheduler) there is no parking.
        if crate::context::current_id().is_none() {
            return false;
        }
        // With nothing in the buffer, a live waiter in `send_waiters` is a `select!` send arm:
        // a plain `send` parks with its value in the buffer.
        let Some(sender) = self.send_waiters.wake_one() else { return false };
        let wake = self.claimants.park(reason, None, || self.claimed.borrow_mut().push(sender));
        if wake != Wake::Notified {
            // No value came for it; the sender, if it has not looked yet, need not serve it.
            self.forget_claim(sender);
        }
        self.buffered() > 0 || self.senders.get() == 0
    }

    /// Removes the claim on the `select!` sender `waker`; true if there was one. A select that
    /// was woken with `waker` calls it for each of its send arms on waking: true means it was
    /// woken by a claimant of this channel.
    pub(super) fn forget_claim(&self, waker: Waker) -> bool {
        let mut claimed = self.claimed.borrow_mut();
        match claimed.iter().position(|&w| w == waker) {
            Some(i) => {
                claimed.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// A `select!` send arm on a rendezvous channel is chosen: wakes a parked receiver that
    /// will take the value the arm's expression makes. False if no receiver is parked.
    pub(super) fn commit_handoff(&self) -> bool {
        if !self.wake_receiver() {
            return false;
        }
        self.promised.set(self.promised.get() + 1);
        true
    }

    /// Hands over the value of a `select!` send arm that `commit_handoff` chose. If nothing
    /// ran while the value was made, the receiver woken for it has not looked yet and takes it
    /// from the buffer. If the expression parked, that receiver may have found the channel
    /// empty and parked again (or left): then the value goes like a plain `send`, to a parked
    /// receiver or as an offer that waits for one, so that no receiver is left parked beside it.
    #[track_caller]
    pub(super) fn complete_handoff(&self, value: T) -> Result<(), SendTimeoutError<T>> {
        let missed = self.missed.get();
        self.promised.set(self.promised.get() - 1);
        if missed == 0 && self.receivers.get() > 0 {
            self.push_handed(value);
            return Ok(());
        }
        self.missed.set(missed.saturating_sub(1));
        self.send_rendezvous(value, None)
    }

    /// A promised value will not come: its `select!` arm unwound while making it. The
    /// receiver woken for it finds nothing and waits on.
    pub(super) fn withdraw_handoff(&self) {
        let promised = self.promised.get() - 1;
        self.promised.set(promised);
        self.missed.set(self.missed.get().min(promised));
    }

    /// A receiver found a rendezvous channel empty: if a promised value is still being made,
    /// the receiver woken for it may have been this one.
    #[inline]
    pub(super) fn looked_empty(&self) {
        let missed = self.missed.get();
        if missed < self.promised.get() {
            self.missed.set(missed + 1);
        }
    }

    /// A rendezvous value for a receiver that was already woken for it.
    pub(super) fn push_handed(&self, value: T) {
        let mut b = self.buffer.borrow_mut();
        b.values.push_back(value);
        b.offers.push_back(None);
    }

    pub(super) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        if self.receivers.get() == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        match self.cap {
            None => self.push(value),
            Some(0) => {
                // A claimant (a `try_recv` waiting for a `select!` sender) first, as
                // `wake_receiver`; then a parked `recv`, handed the value; then a `select!`,
                // which takes it from the buffer if it chooses this arm.
                if self.claimants.wake_one().is_some() {
                    self.push_handed(value);
                } else if let Err(value) = self.hand(value) {
                    if self.recv_waiters.wake_one().is_none() {
                        return Err(TrySendError::Full(value));
                    }
                    self.push_handed(value);
                }
            }
            Some(cap) => {
                if self.buffered() >= cap {
                    return Err(TrySendError::Full(value));
                }
                self.push(value);
            }
        }
        Ok(())
    }

    /// Sends, parking while a bounded channel is full (or, on a rendezvous channel, until a
    /// receiver takes the value).
    #[inline]
    #[track_caller]
    pub(super) fn send(
        &self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        // The common case, kept small enough to inline: a receiver is parked in `recv` (so a
        // `Receiver` is alive), and no claimant comes first (see `try_send`).
        if !self.takers.is_empty() && self.claimants.is_empty() {
            return match self.hand(value) {
                Ok(()) => Ok(()),
                Err(value) => self.send_slow(value, deadline),
            };
        }
        self.send_slow(value, deadline)
    }

    #[inline(never)]
    #[track_caller]
    fn send_slow(
        &self,
        mut value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
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
            if !wait!(self.send_waiters, self.id.reason("Sender::send"), deadline) {
                return Err(SendTimeoutError::Timeout(value));
            }
        }
    }

    /// Sends on a rendezvous channel: hands the value to a parked receiver, or leaves it in
    /// the buffer as an offer and parks until a receiver takes it.
    #[track_caller]
    pub(super) fn send_rendezvous(
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
            let wake = park::park(self.id.reason("Sender::send"), deadline, |waker| {
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

    pub(super) fn try_recv(&self) -> Result<T, TryRecvError> {
        let (value, offer) = {
            let mut b = self.buffer.borrow_mut();
            match b.values.pop_front() {
                Some(v) => {
                    let offer =
                        if self.cap == Some(0) { b.offers.pop_front().flatten() } else { None };
                    (v, offer)
                }
                None if self.senders.get() == 0 => return Err(TryRecvError::Disconnected),
                None => {
                    self.looked_empty();
                    return Err(TryRecvError::Empty);
                }
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

    /// True if `try_recv` would return `Empty` and change nothing: a buffered channel with an
    /// empty buffer and a sender left.
    #[inline(always)]
    fn plainly_empty(&self) -> bool {
        self.cap != Some(0) && self.senders.get() > 0 && self.buffer.borrow().values.is_empty()
    }

    /// Receives, parking until a message is handed over or arrives. Always inlined, as
    /// `wait!` is: the coroutine then parks in its caller's frame, and resuming it costs no
    /// mispredicted returns through this function (see `Core::yield_now`).
    #[inline(always)]
    #[track_caller]
    pub(super) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        loop {
            // What `try_recv` would find, without calling it when there is plainly nothing:
            // an empty buffer, a sender left, not a rendezvous (whose `try_recv` notes the look).
            if !self.plainly_empty() {
                match self.try_recv() {
                    Ok(v) => return Ok(v),
                    Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                    Err(TryRecvError::Empty) => {}
                }
            }
            // Its own park, not `Waiters`': the wake is matched with the message handed for it.
            let mut parked = None;
            let wake = park::park(self.id.reason("Receiver::recv"), deadline, |waker| {
                parked = Some((waker, self.takers.push(waker)));
                self.receiver_queued();
            });
            match (wake, parked) {
                // A handoff is first-wins like every wake: a `Notified` park owns its message
                // even if a cancellation or the deadline came right after (a cancellation
                // then takes effect at the coroutine's next park).
                (Wake::Notified, parked) => {
                    if let Some(v) = parked.and_then(|(waker, _)| self.takers.take(waker)) {
                        return Ok(v);
                    }
                    // Woken by a disconnection or a rendezvous promise: look again.
                }
                (Wake::TimedOut, parked) => {
                    self.forget_taker(parked);
                    return Err(RecvTimeoutError::Timeout);
                }
                (Wake::Cancelled, parked) => {
                    self.forget_taker(parked);
                    park::unwind()
                }
            }
        }
    }

    /// A `recv` whose park ended without a message leaves the takers.
    fn forget_taker(&self, parked: Option<(Waker, Ticket)>) {
        if let Some((waker, ticket)) = parked {
            self.takers.forget(ticket, waker);
        }
    }

    /// Queues a parked receiver (of a `select!` recv arm).
    pub(super) fn register_receiver(&self, waker: Waker) -> Token {
        let token = self.recv_waiters.push(waker);
        self.receiver_queued();
        token
    }

    /// A receiver has just been queued. On a rendezvous channel, wakes a parked `select!` send
    /// arm, which can now hand it a value.
    pub(super) fn receiver_queued(&self) {
        if self.is_rendezvous() {
            self.send_waiters.wake_one();
        }
    }

    pub(super) fn disconnect_receivers(&self) {
        // Messages nobody can receive any more (on a rendezvous channel the values are offers,
        // which their woken senders take back). Dropped last, outside the borrow, since a
        // message's destructor may use the channel or panic.
        let dropped = if self.is_rendezvous() {
            None
        } else {
            Some(take(&mut self.buffer.borrow_mut().values))
        };
        self.send_waiters.wake_all();
        if let Some(messages) = dropped {
            drop_messages(messages);
        }
    }
}

impl<T> Drop for Chan<T> {
    fn drop(&mut self) {
        // Handed messages outlive their receivers only when the runtime ended while those
        // were parked.
        let mut messages = take(&mut self.buffer.get_mut().values);
        messages.extend(self.takers.take_all());
        drop_messages(messages);
    }
}

/// Drops messages that nobody will receive, each on its own, so that a destructor that panics
/// neither keeps the others from being dropped nor aborts the process when the thread is
/// already unwinding (a coroutine's panic dropping the last `Receiver`: a second panic
/// escaping a destructor then would abort). The first such panic goes on unwinding once every
/// message is dropped, unless the thread is unwinding already: then it ends here, reported
/// already by the panic hook. (The thread may be unwinding in another coroutine, parked in a
/// destructor: `std::thread::panicking()` cannot tell, and ending the panic is the side that
/// cannot abort.)
fn drop_messages<T>(messages: VecDeque<T>) {
    if !std::mem::needs_drop::<T>() {
        return;
    }
    let mut first_panic = None;
    for message in messages {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(message))) {
            first_panic.get_or_insert(payload);
        }
    }
    if let Some(payload) = first_panic {
        if !std::thread::panicking() {
            resume_unwind(payload);
        }
    }
}
