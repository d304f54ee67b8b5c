//! [`IoSource`]: any file descriptor, registered with the reactor, made to park the coroutine.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Instant;

use mio::unix::SourceFd;
use spindle_runtime::reactor::{Direction, Registration};

/// An I/O object registered with the runtime's reactor, so that operations on it park the
/// calling coroutine instead of blocking the thread.
///
/// This is the wrapper the socket types of [`crate::net`] are built on, and the way to bring
/// your own descriptors (pipes, FIFOs, ttys, eventfds, timerfds, a mio type spindle does not
/// wrap): any `T: AsRawFd` will do, and the reactor polls its descriptor. Put the object in an
/// `IoSource` and run its operations through [`IoSource::read_with`] /
/// [`IoSource::write_with`]. Each tries the operation first and parks only when it returns
/// `WouldBlock`, until the reactor reports the descriptor ready again.
///
/// [`IoSource::from_fd`] takes an object that owns its descriptor (an `OwnedFd`, a std
/// `PipeReader`, a `File` opened on a FIFO) and switches it to non-blocking mode;
/// [`IoSource::new`] takes any object whose descriptor is non-blocking already. Either way the
/// `IoSource` owns the object and drops it when dropped, which closes a descriptor the object
/// owns; the descriptor must stay open as long as the `IoSource` lives.
///
/// `&IoSource<T>` implements [`Read`] and [`Write`] whenever `&T` does, as std's pipes, `File`
/// and mio's sockets do. (To read and write a bare `OwnedFd` that way, wrap it as
/// `File::from(fd)`.)
///
/// ```
/// use std::io::{Read, Write};
/// use spindle_io::IoSource;
///
/// spindle_runtime::run(|| {
///     let (reader, writer) = std::io::pipe().unwrap();
///     // Blocking pipe ends become non-blocking ones, on the reactor.
///     let reader = IoSource::from_fd(reader).unwrap();
///     let writer = IoSource::from_fd(writer).unwrap();
///     let reading = spindle_runtime::spawn(move || {
///         let mut got = String::new();
///         (&reader).read_to_string(&mut got).unwrap(); // parks until the pipe has data, or EOF
///         got
///     });
///     (&writer).write_all(b"hello").unwrap();
///     drop(writer); // closes the write end: the reader sees EOF
///     assert_eq!(reading.join().unwrap(), "hello");
/// });
/// ```
///
/// # What is not guaranteed
///
/// The object must be in non-blocking mode: a blocking descriptor blocks the whole thread
/// (`from_fd` sees to it, `new` does not). Regular files and directories cannot be polled:
/// registering one fails with `PermissionDenied` (`EPERM`); read them inside
/// `spindle::unblock`. The descriptor is registered as `as_raw_fd` returns it at creation and
/// deregistered by the same call on drop, so `get_mut` must not swap in another one; a
/// `mio::event::Source` implementation of `T` is not consulted. Dropping an `IoSource`
/// deregisters the descriptor before closing it; a descriptor that is `dup`ed elsewhere may
/// still be reported ready, and that is harmless. Registration is edge-triggered: an
/// operation run outside `read_with`/`write_with` that drains the descriptor is fine (the next
/// one tries the syscall first), but polling readiness yourself is not supported.
pub struct IoSource<T: AsRawFd> {
    /// This object's entry in the reactor: readiness and the reader and writer wait queues.
    registration: Registration,
    /// The object; deregistered in `Drop` before it is dropped (closing the descriptor).
    io: T,
}

impl<T: AsRawFd> IoSource<T> {
    /// Registers `io`, which must be in non-blocking mode already, with the current runtime's
    /// reactor (edge-triggered, both directions).
    ///
    /// # Panics
    /// Outside a running spindle runtime.
    #[track_caller]
    pub fn new(io: T) -> io::Result<IoSource<T>> {
        let fd = io.as_raw_fd();
        let registration = Registration::new(&mut SourceFd(&fd), fd as u64)?;
        Ok(IoSource { registration, io })
    }

    /// Switches `io`'s descriptor to non-blocking mode and registers it with the current
    /// runtime's reactor; the `IoSource` owns `io` from now on and closes the descriptor when
    /// dropped.
    ///
    /// Non-blocking mode belongs to the open file, not to this descriptor: a `dup` of it, or
    /// another process sharing it (an inherited stdin), sees the change too.
    ///
    /// # Panics
    /// Outside a running spindle runtime.
    #[track_caller]
    pub fn from_fd(io: T) -> io::Result<IoSource<T>>
    where
        T: AsFd,
    {
        set_nonblocking(io.as_fd())?;
        IoSource::new(io)
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

impl<T: AsRawFd> Drop for IoSource<T> {
    fn drop(&mut self) {
        // Deregister while the descriptor is still open; the fields drop afterwards (the
        // registration wakes any waiter with an error, then `io` closes the descriptor).
        let _ = self.registration.deregister(&mut SourceFd(&self.io.as_raw_fd()));
    }
}

impl<T> Read for &IoSource<T>
where
    T: AsRawFd,
    for<'a> &'a T: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(|mut io| io.read(buf))
    }
}

impl<T> Write for &IoSource<T>
where
    T: AsRawFd,
    for<'a> &'a T: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(|mut io| io.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_with(|mut io| io.flush())
    }
}

impl<T: AsRawFd> AsRawFd for IoSource<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl<T: AsRawFd + AsFd + mio::event::Source> AsFd for IoSource<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

impl<T: AsRawFd + fmt::Debug> fmt::Debug for IoSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoSource").field("io", &self.io).finish()
    }
}

/// Sets `O_NONBLOCK` on the open file `fd` refers to (unless it is set already).
fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: `F_GETFL` reads the flags of `fd`, which is open for the duration of the call
    // (it is borrowed); it touches no memory of ours.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK != 0 {
        return Ok(());
    }
    // SAFETY: as above; `F_SETFL` with the flags just read plus `O_NONBLOCK` only changes the
    // file's mode.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
