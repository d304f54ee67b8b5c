//! Unix domain sockets: [`UnixListener`] and [`UnixStream`].

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use spindle_runtime::reactor::Direction;

use super::relisten;
use super::socket::{connect_finished, forward, owned_io, timeout_methods, Socket};
use crate::IoSource;

/// A Unix domain socket server; `accept` parks the coroutine until a connection arrives.
///
/// ```
/// use std::io::{Read, Write};
/// use spindle_io::net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("spindle-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("sock");
/// let _ = std::fs::remove_file(&path);
/// spindle_runtime::run(|| {
///     let listener = UnixListener::bind(&path).unwrap();
///     let p = path.clone();
///     let client = spindle_runtime::spawn(move || {
///         let mut s = UnixStream::connect(&p).unwrap();
///         s.write_all(b"hi").unwrap();
///     });
///     let (mut conn, _) = listener.accept().unwrap();
///     let mut buf = [0; 2];
///     conn.read_exact(&mut buf).unwrap();
///     assert_eq!(&buf, b"hi");
///     client.join().unwrap();
/// });
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct UnixListener {
    source: IoSource<mio::net::UnixListener>,
}

impl UnixListener {
    /// Binds to `path` (which must not exist) and listens with a backlog of
    /// [`super::LISTEN_BACKLOG`].
    #[track_caller]
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let std = std::os::unix::net::UnixListener::bind(path)?;
        relisten(std.as_raw_fd())?;
        UnixListener::from_std(std)
    }

    /// Takes a std listener (switched to non-blocking mode here) into the runtime.
    #[track_caller]
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener { source: IoSource::new(mio::net::UnixListener::from_std(listener))? })
    }

    /// Waits for a connection and returns it with the peer's address.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) =
            self.source.wait(Direction::Read, "UnixListener::accept", None, |l| l.accept())?;
        Ok((UnixStream::new(stream)?, addr))
    }

    /// An endless iterator of `accept` results (never `None`).
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    forward! { self.source.get_ref() =>
        /// The address this listener is bound to.
        pub fn local_addr(&self) -> io::Result<SocketAddr>;

        /// Takes the pending socket error (`SO_ERROR`), if any.
        pub fn take_error(&self) -> io::Result<Option<io::Error>>;
    }

    /// Stops accepting: coroutines parked in `accept` wake with `io::ErrorKind::NotConnected`,
    /// as does every later `accept`.
    pub fn close(&self) {
        self.source.close();
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.source.as_raw_fd()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener").field("fd", &self.as_raw_fd()).finish()
    }
}

/// The iterator of [`UnixListener::incoming`].
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A Unix stream connection, with the same handle semantics as
/// [`TcpStream`](super::TcpStream): `Read`/`Write` for `&UnixStream`, `try_clone` shares.
///
/// ```
/// use std::io::{Read, Write};
/// use spindle_io::net::UnixStream;
///
/// spindle_runtime::run(|| {
///     let (mut a, mut b) = UnixStream::pair().unwrap();
///     a.write_all(b"pair").unwrap();
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf).unwrap();
///     assert_eq!(&buf, b"pair");
/// });
/// ```
#[derive(Clone)]
pub struct UnixStream {
    /// The socket every handle of this connection shares.
    socket: Rc<Socket<mio::net::UnixStream>>,
}

impl UnixStream {
    #[track_caller]
    fn new(stream: mio::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream { socket: Rc::new(Socket::new(stream)?) })
    }

    /// Connects to the socket at `path`; parks until the connection is established.
    #[track_caller]
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let stream = UnixStream::new(mio::net::UnixStream::connect(path)?)?;
        stream.socket.source().wait(Direction::Write, "UnixStream::connect", None, |s| {
            connect_finished(s.take_error(), || s.peer_addr())
        })?;
        Ok(stream)
    }

    /// Two connected sockets.
    #[track_caller]
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::new(a)?, UnixStream::new(b)?))
    }

    /// Takes a connected std stream (switched to non-blocking mode here) into the runtime.
    #[track_caller]
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        UnixStream::new(mio::net::UnixStream::from_std(stream))
    }

    /// Another handle to the same socket (same descriptor, same timeouts).
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(self.clone())
    }

    forward! { self.socket.get_ref() =>
        /// Shuts down the read half, the write half or both.
        pub fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    }

    /// Closes the connection for every handle: parked coroutines wake with
    /// `io::ErrorKind::NotConnected`, later operations fail the same way, the peer reads EOF.
    pub fn close(&self) {
        self.socket.close();
        let _ = self.socket.get_ref().shutdown(Shutdown::Both);
    }

    forward! { self.socket.get_ref() =>
        /// The local address.
        pub fn local_addr(&self) -> io::Result<SocketAddr>;

        /// The remote address.
        pub fn peer_addr(&self) -> io::Result<SocketAddr>;
    }

    timeout_methods! {
        /// Bounds every later read by `timeout`, as [`super::TcpStream::set_read_timeout`].
        fn set_read_timeout;

        /// Bounds every later write by `timeout`.
        fn set_write_timeout;
    }

    forward! { self.socket.get_ref() =>
        /// Takes the pending socket error (`SO_ERROR`), if any.
        pub fn take_error(&self) -> io::Result<Option<io::Error>>;
    }
}

/// `send(2)` with `MSG_NOSIGNAL`: a write to a closed peer is `EPIPE`, never SIGPIPE (std's
/// Unix stream writes with `write(2)`, which raises it).
fn send_nosignal(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes for the duration of the call; `fd` is an
    // open socket owned by the caller.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read_stream("UnixStream::read", buf)
    }
}

impl Write for &UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket
            .write_stream("UnixStream::write", buf.len(), |s| send_nosignal(s.as_raw_fd(), buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

owned_io!(UnixStream);

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream").field("fd", &self.as_raw_fd()).finish()
    }
}
