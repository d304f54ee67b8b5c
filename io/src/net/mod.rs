//! Sockets with `std::net`'s method names whose blocking operations park the calling
//! coroutine, not the thread.
//!
//! Inside a spindle runtime, [`TcpStream::read`](std::io::Read::read) on a socket with nothing
//! to read registers the coroutine with the reactor and switches to another coroutine; when
//! the socket becomes readable the coroutine is resumed and the read retried. Code reads as if
//! it blocked:
//!
//! ```
//! use std::io::{Read, Write};
//! use spindle_io::net::{TcpListener, TcpStream};
//!
//! spindle_runtime::run(|| {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let server = spindle_runtime::spawn(move || {
//!         let (mut conn, _) = listener.accept().unwrap();
//!         let mut buf = [0; 64];
//!         let n = conn.read(&mut buf).unwrap();
//!         conn.write_all(&buf[..n]).unwrap();
//!     });
//!     let mut client = TcpStream::connect(addr).unwrap();
//!     client.write_all(b"ping").unwrap();
//!     let mut reply = [0; 4];
//!     client.read_exact(&mut reply).unwrap();
//!     assert_eq!(&reply, b"ping");
//!     server.join().unwrap();
//! });
//! ```
//!
//! # Differences from `std::net`
//!
//! * A read or write timeout that expires returns `io::ErrorKind::TimedOut` (std returns
//!   `WouldBlock` on Unix); the socket stays usable.
//! * `try_clone` shares the socket (same descriptor, same timeouts) instead of `dup`ing it, so
//!   a reader coroutine and a writer coroutine can each own a handle.
//! * `close` closes a socket for every handle at once: coroutines parked on it wake with
//!   `io::ErrorKind::NotConnected`.
//! * Listeners listen with a backlog of 1024 (std: 128), so a burst of connections is not left
//!   behind SYN retransmits.
//! * Name resolution (`ToSocketAddrs` with a host name) still blocks the thread; pass
//!   addresses, or resolve inside `spindle::unblock`.
//! * Writing to a socket whose peer has gone returns `BrokenPipe`; it never raises SIGPIPE.
//!
//! # Not `Send`
//!
//! A socket is registered with the reactor of the runtime that created it and is used on that
//! runtime's thread: none of these types is `Send`, so the compiler keeps them there. None of
//! these compiles:
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<spindle_io::net::TcpStream>();
//! ```
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<spindle_io::net::TcpListener>();
//! ```
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<spindle_io::net::UdpSocket>();
//! ```
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<spindle_io::net::UnixStream>();
//! ```
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<spindle_io::net::UnixListener>();
//! ```
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<spindle_io::net::UnixDatagram>();
//! ```
//!
//! # What is not guaranteed
//!
//! When several coroutines wait on the same socket in the same direction, all of them are woken
//! on readiness and retry in run-queue order; which one gets the data is not specified.

mod socket;
mod tcp;
mod udp;
mod unix;
mod unix_datagram;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixIncoming, UnixListener, UnixStream};
pub use unix_datagram::UnixDatagram;

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// The backlog listeners are created with.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Read and write timeouts of one socket, shared by all its handles.
#[derive(Default)]
pub(crate) struct Timeouts {
    /// Bound on each read-side wait (`set_read_timeout`); `None` waits forever.
    read: Cell<Option<Duration>>,
    /// Bound on each write-side wait (`set_write_timeout`); `None` waits forever.
    write: Cell<Option<Duration>>,
}

impl Timeouts {
    pub(crate) fn set_read(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.read.set(check_timeout(timeout)?);
        Ok(())
    }

    pub(crate) fn set_write(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.write.set(check_timeout(timeout)?);
        Ok(())
    }

    pub(crate) fn read(&self) -> Option<Duration> {
        self.read.get()
    }

    pub(crate) fn write(&self) -> Option<Duration> {
        self.write.get()
    }

    /// Deadline for a read starting now; reads the clock only when a timeout is set.
    #[inline]
    pub(crate) fn read_deadline(&self) -> Option<Instant> {
        self.read.get().map(deadline_after)
    }

    /// Deadline for a write starting now.
    #[inline]
    pub(crate) fn write_deadline(&self) -> Option<Instant> {
        self.write.get().map(deadline_after)
    }
}

/// The saturating deadline of the whole workspace: `Duration::MAX` is in effect "never".
pub(crate) use spindle_runtime::time::deadline_after;

/// std refuses a zero timeout with `InvalidInput`; so do we.
pub(crate) fn check_timeout(timeout: Option<Duration>) -> io::Result<Option<Duration>> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
    }
    Ok(timeout)
}

/// Raises a listening socket's backlog to [`LISTEN_BACKLOG`] (`listen` again on a listening
/// socket only changes the backlog).
pub(crate) fn relisten(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fd` is a listening socket owned by the caller for the duration of the call.
    cvt(unsafe { libc::listen(fd, LISTEN_BACKLOG) })?;
    Ok(())
}

/// The one place a libc call's `-1` becomes `io::Error::last_os_error()` (mio's `syscall!`).
pub(crate) fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The first error of trying each address in turn, or the first success.
pub(crate) fn each_addr<A, T>(
    addrs: impl Iterator<Item = A>,
    mut f: impl FnMut(A) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for addr in addrs {
        match f(addr) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(no_addresses))
}

/// std's error for an address that resolved to nothing.
pub(crate) fn no_addresses() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses")
}
