//! [`IoSource`]: any file descriptor that `mio` can poll, made to park the coroutine.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Instant;

use spindle_runtime::reactor::{Direction, Registration};

/// An I/O object registered with the runtime's reactor, so that operations on it park the
/// calling coroutine instead of blocking the thread.
///
/// This is the wrapper the socket types of [`crate::net`] are built on, and the way to bring
/// your own file descriptor types (pipes, eventfds, a mio type spindle does not wrap): put the
/// object, already in non-blocking mode, in an `IoSource` and run its operations through
/// [`IoSource::read_with`] / [`IoSource::write_with`]. Each tries the operation first and parks
/// only when it returns `WouldBlock`, until the reactor reports the descriptor ready again.
///
/// `&IoSource<T>` implements [`Read`] and [`Write`] whenever `&T` does, as mio's sockets do.
///
/// ```
/// use std::io::{Read, Write};
/// use spindle_io::IoSource;
///
/// spindle_runtime::run(|| {
///     let (a, b) = mio::net::UnixStream::pair().unwrap();
///     let (a, b) = (IoSource::new(a).unwrap(), IoSource::new(b).unwrap());
///     let reader = spindle_runtime::spawn(move || {
///         let mut buf = [0; 5];
///         (&b).read_exact(&mut buf).unwrap(); // parks until the writer below has written
///         buf
///     });
///     (&a).write_all(b"hello").unwrap();
///     assert_eq!(&reader.join().unwrap(), b"hello");
/// });
/// ```
///
/// # What is not guaranteed
///
/// The object must be in non-blocking mode: a blocking descriptor blocks the whole thread.
/// Dropping an `IoSource` deregisters the descriptor before closing it; a descriptor that is
/// `dup`ed elsewhere may still be reported ready, and that is harmless. Registration is
/// edge-triggered: an operation run outside `read_with`/`write_with` that drains the descriptor
/// is fine (the next one tries the syscall first), but polling readiness yourself is not
/// supported.
pub struct IoSource<T: AsRawFd + mio::event::Source> {
    /// This object's entry in the reactor: readiness and the reader and writer wait queues.
    registration: Registration,
    /// The object; deregistered in `Drop` before it is dropped (closing the descriptor).
    io: T,
}

impl<T: AsRawFd + mio::event::Source> IoSource<T> {
    /// Registers `io` (which must be non-blocking) with the current runtime's reactor.
    ///
    /// # Panics
    /// Outside a running spindle runtime.
    #[track_caller]
    pub fn new(mut io: T) -> io::Result<IoSource<T>> {
        let fd = io.as_raw_fd();
        let registration = Registration::new(&mut io, fd as u64)?;
        Ok(IoSource { registration, io })
    }

    /// The wrapped object.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The wrapped object, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Runs `op` until it does anything but return `WouldBlock`, parking on readability in
    /// between.
    pub fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.wait(Direction::Read, "IoSource::read_with", None, op)
    }

    /// Runs `op` until it does anything but return `WouldBlock`, parking on writability in
    /// between.
    pub fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.wait(Direction::Write, "IoSource::write_with", None, op)
    }

    /// The general form of `read_with`/`write_with`: `what` names the operation in park
    /// reasons (deadlock reports and dumps); past `deadline` the operation fails with
    /// `io::ErrorKind::TimedOut`, leaving the object usable.
    pub fn wait<R>(
        &self,
        direction: Direction,
        what: &'static str,
        deadline: Option<Instant>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        self.registration.io(direction, what, deadline, || op(&self.io))
    }

    /// [`IoSource::wait`] for one read or write of `len` bytes on a byte stream, where `op`
    /// returns how many bytes it moved: after a short transfer the next one in that direction
    /// parks for readiness at once, skipping the system call that would return `WouldBlock`
    /// (see `spindle::reactor::Registration::io_stream`). Not for datagram sockets.
    pub fn wait_stream(
        &self,
        direction: Direction,
        what: &'static str,
        deadline: Option<Instant>,
        len: usize,
        mut op: impl FnMut(&T) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.registration.io_stream(direction, what, deadline, len, || op(&self.io))
    }

    /// Closes the object for everyone sharing it: coroutines parked on it wake with
    /// `io::ErrorKind::NotConnected`, and so does every later operation. The descriptor itself
    /// is closed when the `IoSource` is dropped.
    pub fn close(&self) {
        self.registration.close();
    }

    /// True once [`IoSource::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.registration.is_closed()
    }
}

impl<T: AsRawFd + mio::event::Source> Drop for IoSource<T> {
    fn drop(&mut self) {
        // Deregister while the descriptor is still open; the fields drop afterwards (the
        // registration wakes any waiter with an error, then `io` closes the descriptor).
        let _ = self.registration.deregister(&mut self.io);
    }
}

impl<T> Read for &IoSource<T>
where
    T: AsRawFd + mio::event::Source,
    for<'a> &'a T: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(|mut io| io.read(buf))
    }
}

impl<T> Write for &IoSource<T>
where
    T: AsRawFd + mio::event::Source,
    for<'a> &'a T: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(|mut io| io.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_with(|mut io| io.flush())
    }
}

impl<T: AsRawFd + mio::event::Source> AsRawFd for IoSource<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl<T: AsRawFd + AsFd + mio::event::Source> AsFd for IoSource<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

impl<T: AsRawFd + mio::event::Source + fmt::Debug> fmt::Debug for IoSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoSource").field("io", &self.io).finish()
    }
}
