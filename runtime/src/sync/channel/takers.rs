//! The receivers parked in `recv` and the messages handed to them: a send hands its message
//! to the longest parked one, which takes it when it runs.
//!
//! Most channels have one receiver parked at a time (a consumer loop, a reply channel), so the
//! longest parked receiver lives in a slot of its own, `lone`, with its handed message beside
//! it: a send to it and the receive after it touch two `Cell`s, and no queue. Receivers that
//! park while `lone` is taken queue behind it, with their handed messages in a second queue.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::mem::take;

use crate::park::{Token, Waker};
use crate::sync::Waiters;

/// What `lone` holds.
#[derive(Clone, Copy)]
enum Lone {
    Free,
    /// A receiver parked (or whose park ended: a send skips it, its `forget` frees the slot).
    Parked(Waker),
    /// A receiver woken with a message, in `lone_value`, that it has not taken yet.
    Handed(Waker),
}

/// Where a parked receiver waits, for [`Takers::forget`].
#[derive(Clone, Copy)]
pub(super) enum Ticket {
    Lone,
    Queued(Token),
}

pub(super) struct Takers<T> {
    /// The longest parked receiver, whenever it parked while nobody else was queued: every
    /// receiver parked in `queue` parked after it.
    lone: Cell<Lone>,
    /// The message handed to `lone`'s receiver (`Some` exactly when `lone` is `Handed`).
    lone_value: Cell<Option<T>>,
    /// Receivers that parked while `lone` was taken or others were queued, FIFO.
    queue: Waiters,
    /// Messages handed to receivers woken from `queue`, each with the waker of the park it
    /// ended, in the order they were woken.
    handed: RefCell<VecDeque<(Waker, T)>>,
}

impl<T> Takers<T> {
    pub(super) fn new() -> Takers<T> {
        Takers {
            lone: Cell::new(Lone::Free),
            lone_value: Cell::new(None),
            queue: Waiters::new(),
            handed: RefCell::new(VecDeque::new()),
        }
    }

    /// True if no receiver is parked (a parked one may be stale: its park ended and it has
    /// not run yet to leave).
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        !matches!(self.lone.get(), Lone::Parked(_)) && self.queue.is_empty()
    }

    /// Registers the receiver parking with `waker`.
    #[inline]
    pub(super) fn push(&self, waker: Waker) -> Ticket {
        if matches!(self.lone.get(), Lone::Free) && self.queue.is_empty() {
            self.lone.set(Lone::Parked(waker));
            Ticket::Lone
        } else {
            Ticket::Queued(self.queue.push(waker))
        }
    }

    /// Wakes the longest parked receiver and reserves `value` for it; gives the value back if
    /// none is parked.
    #[inline]
    pub(super) fn hand(&self, value: T) -> Result<(), T> {
        if let Lone::Parked(waker) = self.lone.get() {
            if waker.wake() {
                self.lone.set(Lone::Handed(waker));
                self.lone_value.set(Some(value));
                return Ok(());
            }
            self.lone.set(Lone::Free);
        }
        self.hand_queued(value)
    }

    #[inline(never)]
    fn hand_queued(&self, value: T) -> Result<(), T> {
        match self.queue.wake_one() {
            Some(waker) => {
                self.handed.borrow_mut().push_back((waker, value));
                Ok(())
            }
            None => Err(value),
        }
    }

    /// The message handed to the park that `waker` woke, if a send handed it one (rather than
    /// a disconnection or a rendezvous promise waking it).
    #[inline]
    pub(super) fn take(&self, waker: Waker) -> Option<T> {
        if matches!(self.lone.get(), Lone::Handed(w) if w == waker) {
            self.lone.set(Lone::Free);
            return self.lone_value.take();
        }
        self.take_queued(waker)
    }

    #[inline(never)]
    fn take_queued(&self, waker: Waker) -> Option<T> {
        let mut handed = self.handed.borrow_mut();
        // The receivers run in the order they were woken, so this is nearly always the first.
        if handed.front().is_some_and(|&(w, _)| w == waker) {
            return handed.pop_front().map(|(_, v)| v);
        }
        let i = handed.iter().position(|&(w, _)| w == waker)?;
        handed.remove(i).map(|(_, v)| v)
    }

    /// A receiver leaves after its park ended without a message (a timeout or cancellation).
    pub(super) fn forget(&self, ticket: Ticket, waker: Waker) {
        match ticket {
            Ticket::Lone => {
                if matches!(self.lone.get(), Lone::Parked(w) if w == waker) {
                    self.lone.set(Lone::Free);
                }
            }
            Ticket::Queued(token) => {
                self.queue.remove(token);
            }
        }
    }

    /// Wakes the longest parked receiver without handing it anything (a rendezvous promise:
    /// it takes the value from the buffer); false if none is parked.
    pub(super) fn wake_one(&self) -> bool {
        if let Lone::Parked(waker) = self.lone.get() {
            self.lone.set(Lone::Free);
            if waker.wake() {
                return true;
            }
        }
        self.queue.wake_one().is_some()
    }

    /// Wakes every parked receiver (the senders are gone).
    pub(super) fn wake_all(&self) {
        if let Lone::Parked(waker) = self.lone.get() {
            self.lone.set(Lone::Free);
            waker.wake();
        }
        self.queue.wake_all();
    }

    /// The messages handed to receivers that never took them (the runtime ended while they
    /// were parked), oldest first.
    pub(super) fn take_all(&mut self) -> impl Iterator<Item = T> {
        let lone = self.lone_value.get_mut().take();
        lone.into_iter().chain(take(self.handed.get_mut()).into_iter().map(|(_, v)| v))
    }
}
