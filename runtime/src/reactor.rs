//! The reactor: one `mio::Poll` per runtime, and the table of registered I/O sources.
//!
//! # Contract with I/O types
//!
//! A socket is registered once, edge-triggered, for both directions ([`Registration::new`]).
//! Every operation goes through [`Registration::io`], which tries the system call first and
//! parks only when it returns `WouldBlock`:
//!
//! 1. run the operation; anything but `WouldBlock` is returned as is;
//! 2. on `WouldBlock`, clear the direction's readiness and park on it;
//! 3. when the scheduler's poll reports the source ready in that direction (or in error or
//!    hang-up, which count as both), every coroutine parked on it is woken and retries.
//!
//! Events are only handled by the scheduler while no coroutine runs, so between a `WouldBlock`
//! and the park no edge can be missed: an edge that arrives later is reported by a later poll.
//! A wake can be spurious (an edge reported for data an earlier operation already consumed):
//! the retry then hits `WouldBlock` again and parks again, costing one system call.
//!
//! Each direction keeps its first waiter inline in the source's table entry and queues further
//! ones, so the usual case (one reader, one writer per socket) parks and wakes without touching
//! any other memory and a socket allocates nothing after registration. Several waiters in one
//! direction are all woken on readiness and retry in run-queue order.
//!
//! # Closing
//!
//! [`Registration::close`] wakes every waiter with `NotConnected`; dropping a registration does
//! the same and removes the entry. Owners must [`Registration::deregister`] the mio source before
//! its descriptor is closed (`spindle_io::IoSource` does so in its `Drop`).
//!
//! # When the scheduler polls
//!
//! * With nothing runnable: it blocks in `poll` until the next timer is due (or indefinitely).
//! * Under load: after every [`EVENT_INTERVAL`] coroutine resumptions, with a zero timeout, so a
//!   busy run queue never starves readiness, and never when no source is registered, so pure
//!   compute and channel workloads make no system calls.

use std::cell::{Cell, RefCell};
use std::io;
use std::ptr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::park::{self, Reason, WaitQueue, Wake};
use crate::scheduler::{with_core, Core};

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
struct Waiters {
    /// The longest-waiting coroutine, if any. Only live wakers are kept here: a waiter that
    /// times out or is cancelled removes itself, and a wake empties the slot.
    first: Option<park::Waker>,
    /// Later waiters, in arrival order.
    more: Option<Box<WaitQueue>>,
}

/// Where a parked coroutine's waker went, so a timed-out or cancelled waiter can remove it.
#[derive(Clone, Copy)]
enum Parked {
    /// In `Waiters::first`, with this waker.
    First(park::Waker),
    /// In `Waiters::more`.
    More(park::Token),
}

impl Waiters {
    fn push(&mut self, w: park::Waker) -> Parked {
        if self.first.is_none() {
            self.first = Some(w);
            Parked::First(w)
        } else {
            Parked::More(self.more.get_or_insert_with(Default::default).push(w))
        }
    }

    fn remove(&mut self, parked: Parked) {
        match parked {
            Parked::First(w) => {
                if self.first == Some(w) {
                    self.first = None;
                }
            }
            Parked::More(token) => {
                if let Some(more) = &mut self.more {
                    more.remove(token);
                }
            }
        }
    }

    /// Moves every waker into `into` without waking any.
    fn take_all(&mut self, into: &mut Vec<park::Waker>) {
        if let Some(w) = self.first.take() {
            into.push(w);
        }
        if let Some(more) = &mut self.more {
            more.take_all(into);
        }
    }
}

/// One direction of a registered source: its readiness and its waiters.
#[derive(Default)]
struct Side {
    /// An event said ready (and no `WouldBlock` or short stream transfer since).
    ready: bool,
    /// A stream transfer came back short and no event arrived since: the kernel's receive
    /// buffer is known to be empty, or its send buffer full (see [`Registration::io_stream`]).
    drained: bool,
    /// An event reported this side closed (the peer's FIN, a hang-up) or an error. Never
    /// cleared: a short transfer then does not mean the next one would block (a read returns
    /// EOF at once).
    closed: bool,
    /// Coroutines waiting in this direction (to read or accept; to write or for a connect).
    waiters: Waiters,
}

impl Side {
    /// An event reported this side ready (`ready`) and/or closed (`closed`): wakes its waiters.
    fn on_event(&mut self, ready: bool, closed: bool, to_wake: &mut Vec<park::Waker>) {
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
struct Source {
    read: Side,
    write: Side,
}

impl Source {
    fn side(&mut self, direction: Direction) -> &mut Side {
        match direction {
            Direction::Read => &mut self.read,
            Direction::Write => &mut self.write,
        }
    }
}

pub(crate) struct Reactor {
    poll: RefCell<Poll>,
    events: RefCell<Events>,
    sources: RefCell<Slab<Source>>,
    /// Wakers collected during one poll, kept to reuse its allocation.
    wake_buffer: Cell<Vec<park::Waker>>,
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poll: RefCell::new(Poll::new()?),
            events: RefCell::new(Events::with_capacity(1024)),
            sources: RefCell::new(Slab::new()),
            wake_buffer: Cell::new(Vec::new()),
        })
    }

    pub(crate) fn make_waker(&self) -> io::Result<mio::Waker> {
        mio::Waker::new(self.poll.borrow().registry(), REMOTE_TOKEN)
    }

    /// Number of registered sources.
    pub(crate) fn sources(&self) -> usize {
        self.sources.borrow().len()
    }

    /// Polls once and wakes the coroutines whose sources became ready. Returns whether the
    /// cross-thread waker fired.
    pub(crate) fn poll(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let mut events = self.events.borrow_mut();
        match self.poll.borrow_mut().poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(e),
        }
        let mut remote = false;
        let mut to_wake = self.wake_buffer.take();
        {
            let mut sources = self.sources.borrow_mut();
            for event in events.iter() {
                if event.token() == REMOTE_TOKEN {
                    remote = true;
                    continue;
                }
                let Some(source) = sources.get_mut(event.token().0) else { continue };
                let failed = event.is_error();
                let read_closed = event.is_read_closed() || failed;
                source.read.on_event(event.is_readable(), read_closed, &mut to_wake);
                let write_closed = event.is_write_closed() || failed;
                source.write.on_event(event.is_writable(), write_closed, &mut to_wake);
            }
        }
        park::Waker::wake_all(&mut to_wake);
        self.wake_buffer.set(to_wake);
        Ok(remote)
    }
}

/// A source registered with the current runtime's reactor. Dropping it removes the table entry
/// (and wakes anyone still parked on it with an error); deregister the mio source first with
/// [`Registration::deregister`].
pub struct Registration {
    core: Rc<Core>,
    /// The source's key in the reactor's table (and its mio token).
    key: usize,
    /// Shown in park reasons (a file descriptor), so dumps tell sockets apart.
    id: u64,
    /// Set by [`Registration::close`]: waiters wake and get an error, new operations too. Kept
    /// here rather than in the table so the fast path of `io` reads no shared state.
    closed: Cell<bool>,
}

impl Registration {
    /// Registers `source` edge-triggered for reading and writing with the current runtime.
    /// `id` (usually the file descriptor) identifies it in park reasons.
    ///
    /// # Panics
    /// Outside a running spindle runtime.
    pub fn new<S>(source: &mut S, id: u64) -> io::Result<Registration>
    where
        S: mio::event::Source + ?Sized,
    {
        Self::with_interest(source, Interest::READABLE | Interest::WRITABLE, id)
    }

    /// Like [`Registration::new`] with the given interest.
    pub fn with_interest<S>(source: &mut S, interest: Interest, id: u64) -> io::Result<Registration>
    where
        S: mio::event::Source + ?Sized,
    {
        let core = with_core(|core| core.rc())
            .unwrap_or_else(|| panic!("{}", Core::outside_message("registering an I/O source")));
        let key = core.reactor().sources.borrow_mut().insert(Source::default());
        let registered =
            core.reactor().poll.borrow().registry().register(source, Token(key), interest);
        if let Err(e) = registered {
            core.reactor().sources.borrow_mut().remove(key);
            return Err(e);
        }
        Ok(Registration { core, key, id, closed: Cell::new(false) })
    }

    /// Runs `op` until it does not return `WouldBlock`, parking on `direction` in between.
    ///
    /// With a deadline, a wait that outlasts it returns `io::ErrorKind::TimedOut`; the source
    /// stays registered and usable. A source closed with [`Registration::close`] while this
    /// waits makes it return `io::ErrorKind::NotConnected`. Cancellation unwinds.
    pub fn io<R>(
        &self,
        direction: Direction,
        what: &'static str,
        deadline: Option<Instant>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            if self.closed.get() {
                return Err(closed_error(what));
            }
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return result,
            }
            self.wait_ready(direction, what, deadline)?;
        }
    }

    /// [`Registration::io`] for one read or write on a byte stream (a TCP or Unix stream socket,
    /// a pipe) of `len` bytes, where `op` returns how many it moved.
    ///
    /// A stream transfer that moves fewer bytes than asked, but some, drained the kernel's
    /// receive buffer (read) or filled its send buffer (write). The source is then marked
    /// drained in that direction until the next readiness event for it, and the next operation
    /// in that direction parks at once instead of making the system call that would return
    /// `WouldBlock`. Edge-triggered readiness makes this safe: any data or buffer space that
    /// arrives after the short transfer raises a new event. A side an event reported closed
    /// (the peer's FIN, a hang-up, an error) is never marked drained: the next read must run
    /// and see EOF, and no further event would come. On an echo round trip this saves
    /// one `recv` of every three system calls. Do not use it for datagram sockets, where a
    /// short read says nothing about the next datagram.
    pub fn io_stream(
        &self,
        direction: Direction,
        what: &'static str,
        deadline: Option<Instant>,
        len: usize,
        op: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        // Drained: wait for the event that clears it (a close wakes us too, and `io` then
        // reports it).
        if !self.closed.get() && self.side(direction, |side| side.drained) {
            self.wait_ready(direction, what, deadline)?;
        }
        let n = self.io(direction, what, deadline, op)?;
        if n > 0 && n < len {
            // Unless an event already said this side is closed: then the next operation must
            // run (a read returns EOF at once) and no further event would wake a parked one.
            self.side(direction, |side| {
                if !side.closed {
                    side.ready = false;
                    side.drained = true;
                }
            });
        }
        Ok(n)
    }

    /// Runs `f` on this source's table entry for `direction`.
    fn side<R>(&self, direction: Direction, f: impl FnOnce(&mut Side) -> R) -> R {
        let mut sources = self.core.reactor().sources.borrow_mut();
        f(sources[self.key].side(direction))
    }

    /// Parks until the source is reported ready in `direction` (`Ok`: retry), the deadline
    /// passes (`TimedOut`) or the source is closed (`Ok`, and the retry loop reports it).
    /// Unwinds when cancelled.
    ///
    /// Kept out of line and free of `op`'s type, so the frames that stay on a parked
    /// coroutine's stack (and are touched again, cold, when it resumes) are small.
    #[inline(never)]
    fn wait_ready(
        &self,
        direction: Direction,
        what: &'static str,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        if with_core(|core| core.runtime_id) != Some(self.core.runtime_id) {
            panic!(
                "spindle: {what} on an I/O source registered with another runtime; a socket \
                 belongs to the runtime that created it"
            );
        }
        let mut token = None;
        // The retry touches this registration (and the socket state next to it) and the
        // source's reactor entry first. (The entry's address is only a prefetch hint: should
        // the table grow meanwhile, prefetching the old address is harmless.)
        let entry = {
            let sources = self.core.reactor().sources.borrow();
            ptr::addr_of!(sources[self.key]) as usize
        };
        let near = [self as *const Registration as usize, entry];
        let wake = park::park_near(Reason::on(what, self.id), deadline, near, |w| {
            token = Some(self.side(direction, |side| {
                side.ready = false;
                side.waiters.push(w)
            }));
        });
        match wake {
            Wake::Notified => Ok(()),
            Wake::TimedOut | Wake::Cancelled => {
                if let Some(token) = token {
                    self.side(direction, |side| side.waiters.remove(token));
                }
                if wake == Wake::Cancelled {
                    park::unwind();
                }
                Err(timed_out_error(what))
            }
        }
    }

    /// True if the last event said the source is ready in `direction` and no operation has
    /// hit `WouldBlock` (or, through [`Registration::io_stream`], come back short) since.
    pub fn is_ready(&self, direction: Direction) -> bool {
        self.side(direction, |side| side.ready)
    }

    /// Marks the source closed and wakes every coroutine parked on it; they, and every later
    /// operation through this registration, get `NotConnected`.
    pub fn close(&self) {
        self.closed.set(true);
        let mut to_wake = Vec::new();
        {
            let mut sources = self.core.reactor().sources.borrow_mut();
            let source = &mut sources[self.key];
            source.read.waiters.take_all(&mut to_wake);
            source.write.waiters.take_all(&mut to_wake);
        }
        for w in to_wake {
            w.wake();
        }
    }

    /// True once [`Registration::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Removes `source` from the poll set. Call before closing its file descriptor.
    pub fn deregister<S>(&self, source: &mut S) -> io::Result<()>
    where
        S: mio::event::Source + ?Sized,
    {
        self.core.reactor().poll.borrow().registry().deregister(source)
    }

    /// Changes the interest `source` is registered with.
    pub fn reregister<S>(&self, source: &mut S, interest: Interest) -> io::Result<()>
    where
        S: mio::event::Source + ?Sized,
    {
        self.core.reactor().poll.borrow().registry().reregister(source, Token(self.key), interest)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.close();
        self.core.reactor().sources.borrow_mut().remove(self.key);
    }
}

#[cold]
fn timed_out_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

#[cold]
fn closed_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, format!("{what}: the socket was closed"))
}
