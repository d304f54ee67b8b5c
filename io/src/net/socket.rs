//! [`Socket`]: what the socket types of this module are built on, and the macros that write the
//! methods they have in common (`forward!`, `timeout_methods!`, `owned_io!`).
//!
//! A socket type is a public face over one `Socket`: the [`IoSource`] that registers the
//! socket with the reactor, so that its operations park the coroutine, and the read and write
//! [`Timeouts`] that bound those parks. The socket is mio's, except for
//! [`super::UnixDatagram`]'s: std's, since mio's lacks `connect_addr` and `send_to_addr`.
//! [`super::UdpSocket`] and [`super::UnixDatagram`] own their `Socket`; [`super::TcpStream`]
//! and [`super::UnixStream`] hold it in an `Rc`, so that `try_clone` hands out another handle
//! to the same socket with the same timeouts. The listeners have no timeouts and wrap an
//! `IoSource` directly.
//!
//! `Socket` adds no wait of its own: every operation goes through [`IoSource::wait`] or
//! [`IoSource::wait_stream`], and so through the reactor's one retry loop
//! (`spindle::reactor::Registration::io`). It only supplies the deadline.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};

use spindle_runtime::reactor::Direction;

use super::Timeouts;
use crate::IoSource;

/// A non-blocking socket registered with the reactor, with the timeouts that bound its waits.
pub(crate) struct Socket<T: AsRawFd> {
    /// The registration and the socket; every wait goes through it.
    source: IoSource<T>,
    /// Bounds on each read-side and write-side wait; `None` waits forever.
    timeouts: Timeouts,
}

impl<T: AsRawFd> Socket<T> {
    /// Registers `io` (non-blocking) with the current runtime's reactor, without timeouts.
    #[track_caller]
    pub(crate) fn new(io: T) -> io::Result<Socket<T>> {
        Ok(Socket { source: IoSource::new(io)?, timeouts: Timeouts::default() })
    }

    /// The registered source, for a wait with its own deadline (`connect`).
    pub(crate) fn source(&self) -> &IoSource<T> {
        &self.source
    }

    /// The socket.
    pub(crate) fn get_ref(&self) -> &T {
        self.source.get_ref()
    }

    /// The read and write timeouts.
    pub(crate) fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Runs `op` until it does not return `WouldBlock`, parking on readability in between; past
    /// the read timeout, counted from now, it fails with `io::ErrorKind::TimedOut`.
    #[inline]
    pub(crate) fn read_with<R>(
        &self,
        what: &'static str,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        self.source.wait(Direction::Read, what, self.timeouts.read_deadline(), op)
    }

    /// [`Socket::read_with`] for writing: parks on writability, bounded by the write timeout.
    #[inline]
    pub(crate) fn write_with<R>(
        &self,
        what: &'static str,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        self.source.wait(Direction::Write, what, self.timeouts.write_deadline(), op)
    }

    /// One `read` of a byte stream into `buf`, bounded by the read timeout; a short read marks
    /// the socket drained (see [`IoSource::wait_stream`]).
    #[inline]
    pub(crate) fn read_stream(&self, what: &'static str, buf: &mut [u8]) -> io::Result<usize>
    where
        for<'a> &'a T: Read,
    {
        let deadline = self.timeouts.read_deadline();
        let len = buf.len();
        self.source.wait_stream(Direction::Read, what, deadline, len, |mut io| io.read(buf))
    }

    /// One write of `len` bytes to a byte stream by `op`, which returns how many it wrote;
    /// bounded by the write timeout, and a short write marks the socket drained (see
    /// [`IoSource::wait_stream`]).
    #[inline]
    pub(crate) fn write_stream(
        &self,
        what: &'static str,
        len: usize,
        op: impl FnMut(&T) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let deadline = self.timeouts.write_deadline();
        self.source.wait_stream(Direction::Write, what, deadline, len, op)
    }

    /// Closes the socket for every handle: coroutines parked on it wake with
    /// `io::ErrorKind::NotConnected`, as does every later operation.
    pub(crate) fn close(&self) {
        self.source.close();
    }
}

impl<T: AsRawFd> AsRawFd for Socket<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.source.as_raw_fd()
    }
}

/// Whether a non-blocking `connect` has finished, for a wait on writability: the error it
/// failed with (`SO_ERROR`, as `take_error` returns it), `WouldBlock` while it is still in
/// progress (the socket has no peer yet, so `peer_addr` says `NotConnected`), `Ok` once
/// connected.
pub(crate) fn connect_finished<A>(
    error: io::Result<Option<io::Error>>,
    peer_addr: impl FnOnce() -> io::Result<A>,
) -> io::Result<()> {
    if let Some(e) = error? {
        return Err(e);
    }
    match peer_addr() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}

/// Writes methods that do nothing but call the method of the same name, with the same
/// arguments, on `$target`. Each keeps the doc comment and signature written at the call, so
/// rustdoc shows it on every socket type as that type's own method:
///
/// ```text
/// impl TcpStream {
///     forward! { self.socket.get_ref() =>
///         /// The local address.
///         pub fn local_addr(&self) -> io::Result<SocketAddr>;
///     }
/// }
/// ```
macro_rules! forward {
    ($target:expr => $(
        $(#[$attr:meta])*
        $vis:vis fn $name:ident(&$self:ident $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;
    )*) => {
        $(
            $(#[$attr])*
            $vis fn $name(&$self $(, $arg: $ty)*) -> $ret {
                $target.$name($($arg),*)
            }
        )*
    };
}
pub(crate) use forward;

/// Writes `std::net`'s four timeout methods for a socket type whose `socket` field is (or
/// dereferences to) a [`Socket`]. The setters take their doc comments from the call, since
/// what they bound differs by type; the getters' docs are the same everywhere:
///
/// ```text
/// timeout_methods! {
///     /// Bounds every later receive by `timeout` ...
///     fn set_read_timeout;
///     /// Bounds every later send by `timeout`.
///     fn set_write_timeout;
/// }
/// ```
macro_rules! timeout_methods {
    (
        $(#[$set_read:meta])* fn set_read_timeout;
        $(#[$set_write:meta])* fn set_write_timeout;
    ) => {
        $(#[$set_read])*
        pub fn set_read_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            self.socket.timeouts().set_read(timeout)
        }

        $(#[$set_write])*
        pub fn set_write_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            self.socket.timeouts().set_write(timeout)
        }

        /// The read timeout.
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.socket.timeouts().read())
        }

        /// The write timeout.
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.socket.timeouts().write())
        }
    };
}
pub(crate) use timeout_methods;

/// Implements `Read` and `Write` for an owned byte-stream handle `$stream` by doing what
/// `&$stream` does, as std's `TcpStream` does. `Read` and `Write` for `&$stream`, which make
/// the system calls, each type writes itself (TCP and Unix streams write differently).
macro_rules! owned_io {
    ($stream:ty) => {
        impl std::io::Read for $stream {
            #[inline]
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::io::Read::read(&mut &*self, buf)
            }
        }

        impl std::io::Write for $stream {
            #[inline]
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::io::Write::write(&mut &*self, buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                std::io::Write::write_vectored(&mut &*self, bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                std::io::Write::flush(&mut &*self)
            }
        }
    };
}
pub(crate) use owned_io;
