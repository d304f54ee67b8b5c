//! The protocol of a thread-safe channel: the state behind its one mutex, and the operations on
//! it. Nothing here locks, parks, blocks or wakes: each operation runs with the lock held and
//! *returns* the [`Wakeup`]s to deliver, which the caller delivers after unlocking (the way the
//! reactor returns its wakers), so the lock is never held across a syscall or a user destructor.
//!
//! # Waiters
//!
//! A coroutine or thread that must wait puts a [`Waiter`] into the slab `waiters` and its key
//! into one of three FIFO queues:
//!
//! * `recvq`: receivers in `recv`. A sender *hands* its value to the longest waiting one: it
//!   stores the value in the waiter's `value`, marks it [`Outcome::Done`] and wakes it. The
//!   woken receiver owns that value; nobody can take it from it.
//! * `sendq`: senders in `send`, each with its value in `value`. A receiver takes the value of
//!   the longest waiting one (rendezvous), or, on a bounded channel, takes the oldest buffered
//!   message and moves that sender's value into the freed slot; either way the sender's send is
//!   complete ([`Outcome::Done`]) when it wakes.
//! * `selectq`: `select!` recv arms. They are woken ([`Outcome::Notified`]) but handed
//!   nothing, since a select may complete another arm; the message stays in `buffer` for
//!   whoever takes it first.
//!
//! # Invariants
//!
//! * A key is in a queue exactly while its waiter's outcome is [`Outcome::Waiting`]. Whoever
//!   resolves a waiter (a counterpart, a disconnect) pops it from its queue in the same step;
//!   a waiter that gives up (timeout, cancellation) removes itself from its queue.
//! * A waiter stays in the slab until the coroutine or thread that waits collects it, however
//!   its wait ended. So a resolved waiter's value is never dropped by anyone but its owner, and
//!   a key stays valid for its owner as long as it needs it.
//! * Plain receivers wait only while there is nothing to take: `recvq` non-empty implies
//!   `buffer` and `sendq` empty. (A receiver takes before it waits; a sender hands to a waiting
//!   receiver before it buffers or waits.) So handing to `recvq` never overtakes a buffered
//!   message, and messages come out in the order they went in.

use std::collections::VecDeque;
use std::thread::ThreadId;

use slab::Slab;

use super::wait::Wakeup;
use crate::sync::channel::{TryRecvError, TrySendError};

/// What a [`Waiter`] waits to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// `recv`: waits to be handed a message.
    Recv,
    /// `send`: waits, its value in `Waiter::value`, for a receiver or for room.
    Send,
    /// A `select!` recv arm: waits to be told there may be a message.
    Select,
}

/// How a wait was resolved by someone else. Set once, by whoever pops the waiter from its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Still queued: nobody resolved it.
    Waiting,
    /// The operation completed: a receiver's `value` holds its message; a sender's value was
    /// taken.
    Done,
    /// The other side disconnected: a receiver gets nothing; a sender's `value` is still there,
    /// to be given back.
    Disconnected,
    /// A `select!` arm was told to look again.
    Notified,
}

/// One waiting operation: a coroutine parked or a thread blocked on this channel.
pub(super) struct Waiter<T> {
    /// Which queue it is (or was) in.
    pub(super) kind: Kind,
    /// A sender's value until a receiver takes it; the message handed to a receiver.
    pub(super) value: Option<T>,
    /// How the wait was resolved, or `Waiting`.
    pub(super) outcome: Outcome,
    /// How to wake the waiter: taken by whoever resolves it, and delivered after unlocking.
    /// While a coroutine waits this is its park's `RemoteWaker`, which also tells its runtime
    /// that another thread may still wake it (so it is not reported as deadlocked).
    pub(super) wakeup: Option<Wakeup>,
}

impl<T> Waiter<T> {
    pub(super) fn new(kind: Kind, value: Option<T>) -> Waiter<T> {
        Waiter { kind, value, outcome: Outcome::Waiting, wakeup: None }
    }
}

/// Who runs a `select!`: a thread, and the coroutine on it if any. Between a select arm's
/// `try_begin` (which takes the message) and its `__select_recv` (which returns it) the same
/// agent runs without interruption, so this names the reservation.
pub(super) type Agent = (ThreadId, Option<u64>);

/// Everything the channel's handles share, behind its mutex.
pub(super) struct State<T> {
    /// Buffered messages, oldest first. On a rendezvous channel only values handed to a
    /// `select!` (which may not take them) or given back by a cancelled receiver.
    pub(super) buffer: VecDeque<T>,
    /// Live `Sender`s; 0 means disconnected for receivers.
    pub(super) senders: usize,
    /// Live `Receiver`s; 0 means disconnected for senders.
    pub(super) receivers: usize,
    /// Every waiter, by key, until its owner collects it.
    pub(super) waiters: Slab<Waiter<T>>,
    /// Keys of waiting receivers, oldest first.
    pub(super) recvq: VecDeque<usize>,
    /// Keys of waiting senders, oldest first.
    pub(super) sendq: VecDeque<usize>,
    /// Keys of waiting `select!` recv arms, oldest first.
    pub(super) selectq: VecDeque<usize>,
    /// Messages a `select!` arm took in `try_begin`, until its `__select_recv` returns them.
    pub(super) reserved: Vec<(Agent, T)>,
}

impl<T> State<T> {
    pub(super) fn new() -> State<T> {
        State {
            buffer: VecDeque::new(),
            senders: 1,
            receivers: 1,
            waiters: Slab::new(),
            recvq: VecDeque::new(),
            sendq: VecDeque::new(),
            selectq: VecDeque::new(),
            reserved: Vec::new(),
        }
    }

    /// Sends without waiting: hands `value` to the longest waiting receiver, else buffers it if
    /// there is room (telling a waiting `select!`). On a rendezvous channel (`cap == Some(0)`)
    /// "room" is a waiting `select!`, to which the value is offered through the buffer.
    pub(super) fn try_send(
        &mut self,
        value: T,
        cap: Option<usize>,
    ) -> Result<Option<Wakeup>, TrySendError<T>> {
        if self.receivers == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        if let Some(key) = self.recvq.pop_front() {
            return Ok(self.resolve(key, Outcome::Done, Some(value)));
        }
        let room = match cap {
            None => true,
            Some(0) => !self.selectq.is_empty(),
            Some(cap) => self.buffer.len() < cap,
        };
        if !room {
            return Err(TrySendError::Full(value));
        }
        self.buffer.push_back(value);
        Ok(self.notify_select())
    }

    /// Receives without waiting: the oldest buffered message (moving the longest waiting
    /// sender's value into the room that frees), else the value of the longest waiting sender.
    pub(super) fn try_recv(
        &mut self,
        cap: Option<usize>,
    ) -> Result<(T, Option<Wakeup>), TryRecvError> {
        if let Some(value) = self.buffer.pop_front() {
            let has_room = matches!(cap, Some(cap) if cap > 0 && self.buffer.len() < cap);
            let wakeup = match self.sendq.front() {
                Some(&key) if has_room => {
                    self.sendq.pop_front();
                    let moved = self.waiters[key].value.take().expect("a waiting sender's value");
                    self.buffer.push_back(moved);
                    self.resolve(key, Outcome::Done, None)
                }
                _ => None,
            };
            return Ok((value, wakeup));
        }
        if let Some(key) = self.sendq.pop_front() {
            let value = self.waiters[key].value.take().expect("a waiting sender's value");
            return Ok((value, self.resolve(key, Outcome::Done, None)));
        }
        if self.senders == 0 {
            Err(TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// True if a receive would not wait: a message to take, or every sender gone.
    pub(super) fn recv_ready(&self) -> bool {
        !self.buffer.is_empty() || !self.sendq.is_empty() || self.senders == 0
    }

    /// A message that was handed to a receiver which then could not take it (it was cancelled
    /// first): hands it to the next waiting receiver, or puts it back at the front of the
    /// buffer, where it is the next message out. A bounded channel may then hold one more
    /// message than its capacity until it is received; senders still wait for room.
    pub(super) fn give_back(&mut self, value: T) -> Option<Wakeup> {
        if let Some(key) = self.recvq.pop_front() {
            return self.resolve(key, Outcome::Done, Some(value));
        }
        self.buffer.push_front(value);
        self.notify_select()
    }

    /// Tells the longest waiting `select!` arm to look again.
    pub(super) fn notify_select(&mut self) -> Option<Wakeup> {
        let key = self.selectq.pop_front()?;
        self.resolve(key, Outcome::Notified, None)
    }

    /// The last sender is gone: every waiting receiver and `select!` wakes to see it.
    pub(super) fn disconnect_senders(&mut self) -> Vec<Wakeup> {
        let mut wakeups = Vec::new();
        while let Some(key) = self.recvq.pop_front() {
            wakeups.extend(self.resolve(key, Outcome::Disconnected, None));
        }
        while let Some(key) = self.selectq.pop_front() {
            wakeups.extend(self.resolve(key, Outcome::Notified, None));
        }
        wakeups
    }

    /// The last receiver is gone: every waiting sender wakes to take its value back, and the
    /// buffered messages, which nobody can receive any more, are returned to be dropped after
    /// unlocking (a message's destructor may use the channel).
    pub(super) fn disconnect_receivers(&mut self) -> (VecDeque<T>, Vec<Wakeup>) {
        let mut wakeups = Vec::new();
        while let Some(key) = self.sendq.pop_front() {
            wakeups.extend(self.resolve(key, Outcome::Disconnected, None));
        }
        (std::mem::take(&mut self.buffer), wakeups)
    }

    /// Removes waiter `key` of `kind` from its queue, if it is still there (it gave up).
    pub(super) fn dequeue(&mut self, key: usize, kind: Kind) {
        let queue = match kind {
            Kind::Recv => &mut self.recvq,
            Kind::Send => &mut self.sendq,
            Kind::Select => &mut self.selectq,
        };
        if let Some(i) = queue.iter().position(|&k| k == key) {
            queue.remove(i);
        }
    }

    /// Queues a new waiter; returns its key.
    pub(super) fn enqueue(&mut self, waiter: Waiter<T>) -> usize {
        let kind = waiter.kind;
        let key = self.waiters.insert(waiter);
        match kind {
            Kind::Recv => self.recvq.push_back(key),
            Kind::Send => self.sendq.push_back(key),
            Kind::Select => self.selectq.push_back(key),
        }
        key
    }

    /// Resolves waiter `key`, already popped from its queue, with `outcome` (and a receiver's
    /// message); returns how to wake it.
    fn resolve(&mut self, key: usize, outcome: Outcome, value: Option<T>) -> Option<Wakeup> {
        let waiter = &mut self.waiters[key];
        debug_assert_eq!(waiter.outcome, Outcome::Waiting, "a waiter is resolved once");
        waiter.outcome = outcome;
        if value.is_some() {
            debug_assert!(waiter.value.is_none(), "a waiting receiver holds nothing");
            waiter.value = value;
        }
        waiter.wakeup.take()
    }
}
