//! Unix datagram sockets: [`UnixDatagram`].

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;

use super::socket::{forward, timeout_methods, Socket};

/// A Unix datagram socket; `recv`/`recv_from` park the coroutine until a datagram arrives,
/// `send`/`send_to` until the socket (or, once connected, the peer) has room for one.
///
/// Datagrams keep their boundaries: each `recv` returns one whole datagram, truncated to the
/// buffer, and a zero-length datagram is received as `Ok(0)` (it says nothing about the
/// datagrams after it; there is no end of file).
///
/// ```
/// use spindle_io::net::UnixDatagram;
///
/// spindle_runtime::run(|| {
///     let (a, b) = UnixDatagram::pair().unwrap();
///     let receiver = spindle_runtime::spawn(move || {
///         let mut buf = [0; 16];
///         let n = b.recv(&mut buf).unwrap(); // parks until `a` sends
///         buf[..n].to_vec()
///     });
///     a.send(b"datagram").unwrap();
///     assert_eq!(receiver.join().unwrap(), b"datagram");
/// });
/// ```
///
/// Bound to a path, sockets address each other by it:
///
/// ```
/// use spindle_io::net::UnixDatagram;
///
/// let dir = std::env::temp_dir().join(format!("spindle-doc-dgram-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let (server_path, client_path) = (dir.join("server"), dir.join("client"));
/// spindle_runtime::run(|| {
///     let server = UnixDatagram::bind(&server_path).unwrap();
///     let client = UnixDatagram::bind(&client_path).unwrap();
///     client.send_to(b"ping", &server_path).unwrap();
///     let mut buf = [0; 16];
///     let (n, from) = server.recv_from(&mut buf).unwrap();
///     assert_eq!(&buf[..n], b"ping");
///     server.send_to(b"pong", from.as_pathname().unwrap()).unwrap();
///     assert_eq!(client.recv(&mut buf).unwrap(), 4);
/// });
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
///
/// # What is not guaranteed
///
/// A datagram for a socket whose receive queue is full waits, and how depends on whether the
/// sender is connected. A connected socket's `send` parks until the peer has read enough to
/// make room. An unconnected `send_to` parks until this socket is reported writable, and Linux
/// reports that after every failed attempt: it retries once per scheduler poll until the
/// receiver makes room, costing CPU meanwhile (other coroutines still run). `connect` to a
/// receiver that can fall behind, or bound the wait with a write timeout.
pub struct UnixDatagram {
    /// The registered socket and its timeouts.
    socket: Socket<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    /// Binds to `path`, which must not exist (remove the file when done).
    #[track_caller]
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::bind(path)?)
    }

    /// Binds to `address` (a path, or on Linux an abstract name).
    #[track_caller]
    pub fn bind_addr(address: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::bind_addr(address)?)
    }

    /// A socket bound to no address: it can `send_to` and `connect`, and its datagrams arrive
    /// from an unnamed address nobody can reply to.
    #[track_caller]
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// Two unnamed sockets connected to each other.
    #[track_caller]
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Takes a std socket (switched to non-blocking mode here) into the runtime.
    #[track_caller]
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(true)?;
        Ok(UnixDatagram { socket: Socket::new(socket)? })
    }

    /// Sets the default destination of `send` and the only source `recv` accepts. Never
    /// parks: a datagram socket connects at once or fails.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.socket.get_ref().connect(path)
    }

    forward! { self.socket.get_ref() =>
        /// `connect` to an address (a path, or on Linux an abstract name).
        pub fn connect_addr(&self, address: &SocketAddr) -> io::Result<()>;
    }

    /// Sends `buf` as one datagram to the socket bound to `path`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.socket.write_with("UnixDatagram::send_to", |s| s.send_to(buf, path))
    }

    /// Sends `buf` as one datagram to `address`.
    pub fn send_to_addr(&self, buf: &[u8], address: &SocketAddr) -> io::Result<usize> {
        self.socket.write_with("UnixDatagram::send_to_addr", |s| s.send_to_addr(buf, address))
    }

    /// Receives one datagram; returns its length (truncated to `buf`) and its sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.read_with("UnixDatagram::recv_from", |s| s.recv_from(buf))
    }

    /// Sends `buf` as one datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write_with("UnixDatagram::send", |s| s.send(buf))
    }

    /// Receives one datagram (from the connected peer, once connected); returns its length,
    /// truncated to `buf`.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read_with("UnixDatagram::recv", |s| s.recv(buf))
    }

    /// Like `recv`, leaving the datagram queued: the next `recv` or `peek` returns it again.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read_with("UnixDatagram::peek", |s| peek(s.as_raw_fd(), buf))
    }

    forward! { self.socket.get_ref() =>
        /// The address this socket is bound to (unnamed if it is not).
        pub fn local_addr(&self) -> io::Result<SocketAddr>;

        /// The connected peer's address.
        pub fn peer_addr(&self) -> io::Result<SocketAddr>;
    }

    timeout_methods! {
        /// Bounds every later receive by `timeout` (`io::ErrorKind::TimedOut` when it expires; the
        /// socket stays usable). `None` waits forever; zero is refused with `InvalidInput`.
        fn set_read_timeout;

        /// Bounds every later send by `timeout`.
        fn set_write_timeout;
    }

    forward! { self.socket.get_ref() =>
        /// Takes the pending socket error (`SO_ERROR`), if any.
        pub fn take_error(&self) -> io::Result<Option<io::Error>>;

        /// Shuts down sending (`Write`: this socket's later sends fail with `BrokenPipe`, never
        /// SIGPIPE), receiving (`Read`: sends to this socket fail so) or both. A datagram
        /// socket has no end of file: a receive still waits for a datagram, and `close` is
        /// what wakes a parked receiver.
        pub fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    }

    /// Closes the socket for every user: coroutines parked on it wake with
    /// `io::ErrorKind::NotConnected`, as does every later operation. The descriptor is closed
    /// when the socket is dropped.
    pub fn close(&self) {
        self.socket.close();
    }
}

/// `recv(2)` with `MSG_PEEK` (std's `UnixDatagram::peek` is not stable).
fn peek(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call;
    // `fd` is an open socket owned by the caller.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.get_ref().as_fd()
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixDatagram");
        if let Ok(addr) = self.local_addr() {
            d.field("local", &addr);
        }
        d.field("fd", &self.as_raw_fd()).finish()
    }
}
