//! The reactor's driver: one `mio::Poll` and the table of registered sources, with the
//! readiness and the waiters of each source's two directions.
//!
//! A leaf: it knows wakers only as data. [`Reactor::poll`] *returns* the wakers of the
//! coroutines whose sources became ready, and the scheduler wakes them (tokio's drivers hand
//! back a `WakeList` the same way), so the reactor never calls back into the scheduler. The
//! contract with I/O types is in the parent module's docs; [`super::Registration`] is the only
//! user of the table besides `poll`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use mio::{Events, Poll, Token};
use slab::Slab;

use crate::wake::Waker;

/// Coroutine resumptions between two zero-timeout polls of a busy runtime. A power of two, so
/// the scheduler tells when one is due from the run queue's own pop counter.
pub const EVENT_INTERVAL: usize = 64;

/// Token of the cross-thread waker; sources use their slab keys, which never reach it.
pub(crate) const REMOTE_TOKEN: Token = Token(usize::MAX);

/// A direction of readiness an operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Readable: data, a connection to accept, EOF, or an error.
    Read,
    /// Writable: buffer space, a finished connect, or an error.
    Write,
}

/// The coroutines parked on one direction of one source.
///
/// Almost every socket has at most one reader and one writer, so the first waiter lives in
/// `first`, inside the source's slab entry: parking and waking then touch no other memory.
/// Only a second concurrent waiter in the same direction goes to `more`, allocated on first use.
#[derive(Default)]
pub(super) struct Waiters {
    /// The longest-waiting coroutine, if any. Only live wakers are kept here: a waiter that
    /// times out or is cancelled removes itself, and a wake empties the slot.
    first: Option<Waker>,
    /// Later waiters, in arrival order (possibly stale: a wake skips those).
    /// Boxed so that the table entry stays one word for it (most sources never need it).
    #[allow(clippy::box_collection)]
    more: Option<Box<VecDeque<Waker>>>,
}

/// Where a parked coroutine's waker went, so a timed-out or cancelled waiter can remove it.
#[derive(Clone, Copy)]
pub(super) enum Parked {
    /// In `Waiters::first`, with this waker.
    First(Waker),
    /// In `Waiters::more`, with this waker.
    More(Waker),
}

impl Waiters {
    pub(super) fn push(&mut self, w: Waker) -> Parked {
        if self.first.is_none() {
            self.first = Some(w);
            Parked::First(w)
        } else {
            self.more.get_or_insert_with(Default::default).push_back(w);
            Parked::More(w)
        }
    }

    pub(super) fn remove(&mut self, parked: Parked) {
        match parked {
            Parked::First(w) => {
                if self.first == Some(w) {
                    self.first = None;
                }
            }
            Parked::More(w) => {
                if let Some(more) = &mut self.more {
                    more.retain(|queued| *queued != w);
                }
            }
        }
    }

    /// Moves every waker into `into` without waking any.
    /// True if a waiter is queued.
    fn is_some(&self) -> bool {
        self.first.is_some() || self.more.as_ref().is_some_and(|more| !more.is_empty())
    }

    pub(super) fn take_all(&mut self, into: &mut Vec<Waker>) {
        if let Some(w) = self.first.take() {
            into.push(w);
        }
        if let Some(more) = &mut self.more {
            into.extend(more.drain(..));
        }
    }
}

/// One direction of a registered source: its readiness and its waiters.
#[derive(Default)]
pub(super) struct Side {
    /// An event said ready (and no `WouldBlock` or short stream transfer since).
    pub(super) ready: bool,
    /// A stream transfer came back short and no event arrived since: the kernel's receive
    /// buffer is known to be empty, or its send buffer full (see [`Registration::io_stream`]).
    pub(super) drained: bool,
    /// An event reported this side closed (the peer's FIN, a hang-up) or an error. Never
    /// cleared: a short transfer then does not mean the next one would block (a read returns
    /// EOF at once).
    pub(super) closed: bool,
    /// Coroutines waiting in this direction (to read or accept; to write or for a connect).
    pub(super) waiters: Waiters,
}

impl Side {
    /// An event reported this side ready (`ready`) and/or closed (`closed`): wakes its waiters.
    fn on_event(&mut self, ready: bool, closed: bool, to_wake: &mut Vec<Waker>) {
        self.closed |= closed;
        if ready || closed {
            self.ready = true;
            self.drained = false;
            self.waiters.take_all(to_wake);
        }
    }
}

/// One registered source's two directions.
#[derive(Default)]
pub(super) struct Source {
    pub(super) read: Side,
    pub(super) write: Side,
}

impl Source {
    pub(super) fn side(&mut self, direction: Direction) -> &mut Side {
        match direction {
            Direction::Read => &mut self.read,
            Direction::Write => &mut self.write,
        }
    }
}

/// One runtime's poller and its table of sources, keyed by mio token.
pub(crate) struct Reactor {
    pub(super) poll: RefCell<Poll>,
    events: RefCell<Events>,
    pub(super) sources: RefCell<Slab<Source>>,
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poll: RefCell::new(Poll::new()?),
            events: RefCell::new(Events::with_capacity(1024)),
            sources: RefCell::new(Slab::new()),
        })
    }

    pub(crate) fn make_waker(&self) -> io::Result<mio::Waker> {
        mio::Waker::new(self.poll.borrow().registry(), REMOTE_TOKEN)
    }

    /// True if a coroutine is parked on some source: only then can a readiness event wake
    /// anyone (the deadlock check; a registered socket nobody waits on wakes nobody).
    pub(crate) fn has_waiters(&self) -> bool {
        self.sources
            .borrow()
            .iter()
            .any(|(_, s)| s.read.waiters.is_some() || s.write.waiters.is_some())
    }

    /// Number of registered sources.
    pub(crate) fn sources(&self) -> usize {
        self.sources.borrow().len()
    }

    /// Polls once and appends to `to_wake` the wakers of the coroutines whose sources became
    /// ready (the caller wakes them). Returns whether the cross-thread waker fired, and how many
    /// events the poll reported.
    pub(crate) fn poll(
        &self,
        timeout: Option<Duration>,
        to_wake: &mut Vec<Waker>,
    ) -> io::Result<(bool, usize)> {
        let mut events = self.events.borrow_mut();
        match self.poll.borrow_mut().poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok((false, 0)),
            Err(e) => return Err(e),
        }
        let mut remote = false;
        let mut sources = self.sources.borrow_mut();
        for event in events.iter() {
            if event.token() == REMOTE_TOKEN {
                remote = true;
                continue;
            }
            let Some(source) = sources.get_mut(event.token().0) else { continue };
            let failed = event.is_error();
            let read_closed = event.is_read_closed() || failed;
            source.read.on_event(event.is_readable(), read_closed, to_wake);
            let write_closed = event.is_write_closed() || failed;
            source.write.on_event(event.is_writable(), write_closed, to_wake);
        }
        Ok((remote, events.iter().count()))
    }
}
