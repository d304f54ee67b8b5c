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
//!
//! # Parts
//!
//! `driver.rs` is the poller and the table of sources (a leaf: it returns the wakers it
//! collected and the scheduler wakes them); this file is [`Registration`], the I/O types' side.

pub(crate) mod driver;

pub use driver::{Direction, EVENT_INTERVAL};

use std::cell::Cell;
use std::io;
use std::ptr;
use std::rc::Rc;
use std::time::Instant;

use mio::{Interest, Token};

use crate::context;
use crate::park::{self, Reason, Wake};
use driver::{Reactor, Side, Source};

/// A source registered with the current runtime's reactor. Dropping it removes the table entry
/// (and wakes anyone still parked on it with an error); deregister the mio source first with
/// [`Registration::deregister`].
pub struct Registration {
    /// The reactor of the runtime it was registered with.
    reactor: Rc<Reactor>,
    /// That runtime's id: an operation from another runtime is refused.
    runtime_id: u64,
    /// The source's key in the reactor's table (and its mio token).
    key: usize,
    /// Shown in park reasons (a file descriptor), so dumps tell sockets apart.
    id: u64,
    /// Set by [`Registration::close`]: waiters wake and get an error, new operations too. Kept
    /// here rather than in the table so the fast path of `io` reads no shared state.
    closed: Cell<bool>,
}

impl Registration {
    /// The park reason of an operation `what` on this source: `(fd 12)`.
    fn reason(&self, what: &'static str) -> Reason {
        match i32::try_from(self.id) {
            Ok(fd) => Reason::fd(what, fd),
            Err(_) => Reason::on(what, self.id),
        }
    }

    /// Registers `source` edge-triggered for reading and writing with the current runtime.
    /// `id` (usually the file descriptor) identifies it in park reasons.
    ///
    /// # Panics
    /// Outside a running spindle runtime.
    #[track_caller]
    pub fn new<S>(source: &mut S, id: u64) -> io::Result<Registration>
    where
        S: mio::event::Source + ?Sized,
    {
        Self::with_interest(source, Interest::READABLE | Interest::WRITABLE, id)
    }

    /// Like [`Registration::new`] with the given interest.
    #[track_caller]
    pub fn with_interest<S>(source: &mut S, interest: Interest, id: u64) -> io::Result<Registration>
    where
        S: mio::event::Source + ?Sized,
    {
        let (reactor, runtime_id) = context::expect_core("registering an I/O source", |core| {
            (core.reactor().clone(), core.runtime_id)
        });
        let key = reactor.sources.borrow_mut().insert(Source::default());
        let registered = reactor.poll.borrow().registry().register(source, Token(key), interest);
        if let Err(e) = registered {
            reactor.sources.borrow_mut().remove(key);
            return Err(e);
        }
        Ok(Registration { reactor, runtime_id, key, id, closed: Cell::new(false) })
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
        // A zero-length transfer moves nothing and waits for nothing (std returns `Ok(0)` at
        // once): it runs once, whatever the socket's state, a `WouldBlock` counts as 0 bytes,
        // and it never marks the socket drained.
        if len == 0 && !self.closed.get() {
            let mut op = op;
            return match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                result => result,
            };
        }
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
        let mut sources = self.reactor.sources.borrow_mut();
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
        match context::with_core(|core| core.runtime_id) {
            Some(id) if id == self.runtime_id => {}
            Some(_) => panic!(
                "spindle: {what} on an I/O source registered with another runtime; a socket \
                 belongs to the runtime that created it"
            ),
            None => panic!(
                "spindle: {what} would wait, but no spindle runtime is running on this thread \
                 (the socket's runtime has returned from run); a socket can only wait inside \
                 the runtime that created it"
            ),
        }
        let mut token = None;
        // The retry touches this registration (and the socket state next to it) and the
        // source's reactor entry first. (The entry's address is only a prefetch hint: should
        // the table grow meanwhile, prefetching the old address is harmless.)
        let entry = {
            let sources = self.reactor.sources.borrow();
            ptr::addr_of!(sources[self.key]) as usize
        };
        let near = [self as *const Registration as usize, entry];
        let wake = park::park_near(self.reason(what), deadline, near, |w| {
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
            let mut sources = self.reactor.sources.borrow_mut();
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
        self.reactor.poll.borrow().registry().deregister(source)
    }

    /// Changes the interest `source` is registered with.
    pub fn reregister<S>(&self, source: &mut S, interest: Interest) -> io::Result<()>
    where
        S: mio::event::Source + ?Sized,
    {
        self.reactor.poll.borrow().registry().reregister(source, Token(self.key), interest)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.close();
        self.reactor.sources.borrow_mut().remove(self.key);
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
