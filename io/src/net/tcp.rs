//! TCP: [`TcpListener`] and [`TcpStream`].

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use spindle_runtime::reactor::Direction;

use super::socket::{connect_finished, forward, owned_io, timeout_methods, Socket};
use super::{check_timeout, cvt, deadline_after, no_addresses, relisten};
use crate::IoSource;

/// A TCP socket server, listening for connections; `accept` parks the coroutine until a
/// connection arrives.
///
/// ```
/// use spindle_io::net::{TcpListener, TcpStream};
///
/// spindle_runtime::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let client = spindle_runtime::spawn(move || TcpStream::connect(addr).unwrap());
///     let (_conn, peer) = listener.accept().unwrap();
///     assert_eq!(peer, client.join().unwrap().local_addr().unwrap());
/// });
/// ```
///
/// Errors of `accept` such as `EMFILE` (too many open files) are returned, not retried: the
/// caller decides how to back off. The pending connection stays queued, and the next `accept`
/// tries again.
pub struct TcpListener {
    source: IoSource<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (the first address that works) and listens with a backlog of
    /// [`super::LISTEN_BACKLOG`].
    #[track_caller]
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let std = std::net::TcpListener::bind(addr)?;
        relisten(std.as_raw_fd())?;
        TcpListener::from_std(std)
    }

    /// Binds to `addr` (the first address that works) with `SO_REUSEPORT` set, and listens
    /// with a backlog of [`super::LISTEN_BACKLOG`]: several listeners, one per shard (each on
    /// its own runtime and thread, see `spindle::run_sharded`), can then bind the same address
    /// and port, and the kernel spreads incoming connections over them (by a hash of each
    /// connection's addresses, so one connection always reaches the same listener).
    ///
    /// ```
    /// use spindle_io::net::TcpListener;
    ///
    /// spindle_runtime::run(|| {
    ///     let first = TcpListener::bind_reuseport("127.0.0.1:0").unwrap();
    ///     let addr = first.local_addr().unwrap();
    ///     // A second listener on the very same port (another shard would bind it so).
    ///     let second = TcpListener::bind_reuseport(addr).unwrap();
    ///     assert_eq!(second.local_addr().unwrap(), addr);
    /// });
    /// ```
    ///
    /// Every listener of the group must set the option (and, on Linux, belong to the same
    /// user): a plain [`TcpListener::bind`] on the port fails with `AddrInUse`, as does this
    /// on a port a plain listener holds. Port 0 picks a fresh port for each call; bind the
    /// first listener, then the others to its `local_addr`. Like [`TcpListener::bind`], it
    /// sets `SO_REUSEADDR` too (std does, on Unix).
    #[track_caller]
    pub fn bind_reuseport<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        // A loop rather than `each_addr`: a closure would lose the caller's location.
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match reuseport_listener(a) {
                Ok(std) => return TcpListener::from_std(std),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    /// Takes a std listener (switched to non-blocking mode here) into the runtime.
    #[track_caller]
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener { source: IoSource::new(mio::net::TcpListener::from_std(listener))? })
    }

    /// Waits for a connection and returns it with the peer's address.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) =
            self.source.wait(Direction::Read, "TcpListener::accept", None, |l| l.accept())?;
        Ok((TcpStream::new(stream)?, addr))
    }

    /// An endless iterator of `accept` results (never `None`).
    ///
    /// ```
    /// use spindle_io::net::{TcpListener, TcpStream};
    ///
    /// spindle_runtime::run(|| {
    ///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = listener.local_addr().unwrap();
    ///     let clients = spindle_runtime::spawn(move || {
    ///         (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect::<Vec<_>>()
    ///     });
    ///     let accepted: Vec<TcpStream> =
    ///         listener.incoming().take(2).map(|conn| conn.unwrap()).collect();
    ///     assert_eq!(accepted.len(), 2);
    ///     clients.join().unwrap();
    /// });
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    forward! { self.source.get_ref() =>
        /// The address this listener is bound to.
        pub fn local_addr(&self) -> io::Result<SocketAddr>;

        /// Sets the IP time-to-live of the socket.
        pub fn set_ttl(&self, ttl: u32) -> io::Result<()>;

        /// The IP time-to-live of the socket.
        pub fn ttl(&self) -> io::Result<u32>;

        /// Takes the pending socket error (`SO_ERROR`), if any.
        pub fn take_error(&self) -> io::Result<Option<io::Error>>;
    }

    /// Stops accepting for every handle: coroutines parked in `accept` wake with
    /// `io::ErrorKind::NotConnected`, as does every later `accept`. The socket is closed when
    /// the listener is dropped.
    pub fn close(&self) {
        self.source.close();
    }
}

/// A listening socket on `addr` with `SO_REUSEADDR` and `SO_REUSEPORT` set.
fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2) takes no pointers; the result is checked.
    let fd = cvt(unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` is a socket just made and owned by nobody else; from here `OwnedFd` closes
    // it on every path, the error paths included.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_flag(&fd, libc::SO_REUSEADDR)?;
    set_flag(&fd, libc::SO_REUSEPORT)?;
    let raw = fd.as_raw_fd();
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            let len = std::mem::size_of_val(&sin) as libc::socklen_t;
            // SAFETY: `sin` is a valid `sockaddr_in` of `len` bytes that outlives the call.
            cvt(unsafe { libc::bind(raw, (&sin as *const libc::sockaddr_in).cast(), len) })?;
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            let len = std::mem::size_of_val(&sin6) as libc::socklen_t;
            // SAFETY: `sin6` is a valid `sockaddr_in6` of `len` bytes that outlives the call.
            cvt(unsafe { libc::bind(raw, (&sin6 as *const libc::sockaddr_in6).cast(), len) })?;
        }
    }
    // SAFETY: `raw` is the bound socket `fd` owns, alive for the call.
    cvt(unsafe { libc::listen(raw, super::LISTEN_BACKLOG) })?;
    Ok(std::net::TcpListener::from(fd))
}

/// Sets the `SOL_SOCKET` boolean option `option` on `fd`.
fn set_flag(fd: &OwnedFd, option: libc::c_int) -> io::Result<()> {
    let on: libc::c_int = 1;
    let len = std::mem::size_of_val(&on) as libc::socklen_t;
    // SAFETY: `on` is a live `c_int` of `len` bytes, as a boolean socket option expects; `fd`
    // is an open socket for the duration of the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&on as *const libc::c_int).cast(),
            len,
        )
    })?;
    Ok(())
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.source.as_raw_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener").field("fd", &self.as_raw_fd()).finish()
    }
}

/// The iterator of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection. [`Read`] and [`Write`] park the coroutine while the socket is not ready.
///
/// Both traits are implemented for `&TcpStream` too, and [`TcpStream::try_clone`] hands out
/// another handle to the same socket, so one coroutine can read while another writes:
///
/// ```
/// use std::io::{Read, Write};
/// use spindle_io::net::{TcpListener, TcpStream};
///
/// spindle_runtime::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
///     let (conn, _) = listener.accept().unwrap();
///     let mut writer = conn.try_clone().unwrap();
///     let echo = spindle_runtime::spawn(move || {
///         // Reader coroutine: copies until EOF into the writer handle.
///         let mut reader = &conn;
///         std::io::copy(&mut reader, &mut writer).unwrap()
///     });
///     client.write_all(b"split").unwrap();
///     let mut buf = [0; 5];
///     client.read_exact(&mut buf).unwrap();
///     client.shutdown(std::net::Shutdown::Write).unwrap();
///     assert_eq!(&buf, b"split");
///     assert_eq!(echo.join().unwrap(), 5);
/// });
/// ```
#[derive(Clone)]
pub struct TcpStream {
    /// The socket every handle of this connection shares.
    socket: Rc<Socket<mio::net::TcpStream>>,
}

impl TcpStream {
    #[track_caller]
    fn new(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream { socket: Rc::new(Socket::new(stream)?) })
    }

    /// Connects to `addr`, trying each resolved address in turn; parks until the connection
    /// is established or refused.
    #[track_caller]
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        // A loop rather than `each_addr`: a closure would lose the caller's location.
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match Self::connect_until(a, None) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    /// Connects to `addr`, failing with `io::ErrorKind::TimedOut` after `timeout`.
    #[track_caller]
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        check_timeout(Some(timeout))?;
        Self::connect_until(*addr, Some(deadline_after(timeout)))
    }

    #[track_caller]
    fn connect_until(addr: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let stream = TcpStream::new(mio::net::TcpStream::connect(addr)?)?;
        stream.socket.source().wait(Direction::Write, "TcpStream::connect", deadline, |s| {
            connect_finished(s.take_error(), || s.peer_addr())
        })?;
        Ok(stream)
    }

    /// Takes a connected std stream (switched to non-blocking mode here) into the runtime.
    #[track_caller]
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::new(mio::net::TcpStream::from_std(stream))
    }

    /// Another handle to the same socket (not a `dup`: same descriptor, same timeouts), for
    /// giving a reader and a writer coroutine one handle each. Never fails; `io::Result` keeps
    /// std's signature.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(self.clone())
    }

    /// Reads without removing the data from the queue; parks like `read`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read_with("TcpStream::peek", |s| s.peek(buf))
    }

    forward! { self.socket.get_ref() =>
        /// Shuts down the read half, the write half or both (the peer reads EOF after a write
        /// shutdown). Does not wake coroutines parked on this socket; see [`TcpStream::close`].
        pub fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    }

    /// Closes the connection for every handle: coroutines parked on it wake with
    /// `io::ErrorKind::NotConnected`, every later operation fails the same way, and the peer
    /// reads EOF. The descriptor is released when the last handle is dropped.
    pub fn close(&self) {
        self.socket.close();
        let _ = self.socket.get_ref().shutdown(Shutdown::Both);
    }

    forward! { self.socket.get_ref() =>
        /// The remote address.
        pub fn peer_addr(&self) -> io::Result<SocketAddr>;

        /// The local address.
        pub fn local_addr(&self) -> io::Result<SocketAddr>;

        /// Sets `TCP_NODELAY` (disables Nagle's algorithm when `true`).
        pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()>;

        /// Whether `TCP_NODELAY` is set.
        pub fn nodelay(&self) -> io::Result<bool>;

        /// Sets the IP time-to-live.
        pub fn set_ttl(&self, ttl: u32) -> io::Result<()>;

        /// The IP time-to-live.
        pub fn ttl(&self) -> io::Result<u32>;
    }

    timeout_methods! {
        /// Bounds every later read-side wait (`read`, `peek`) by `timeout`; `None` waits forever.
        /// An expired wait returns `io::ErrorKind::TimedOut` and leaves the socket usable. Shared
        /// by every handle. A zero duration is refused with `InvalidInput`, as in std.
        fn set_read_timeout;

        /// Bounds every later write-side wait by `timeout`, like [`TcpStream::set_read_timeout`].
        fn set_write_timeout;
    }

    forward! { self.socket.get_ref() =>
        /// Takes the pending socket error (`SO_ERROR`), if any.
        pub fn take_error(&self) -> io::Result<Option<io::Error>>;
    }
}

impl Read for &TcpStream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read_stream("TcpStream::read", buf)
    }
}

impl Write for &TcpStream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write_stream("TcpStream::write", buf.len(), |mut s| s.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.socket.write_stream("TcpStream::write", len, |mut s| s.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

owned_io!(TcpStream);

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpStream");
        if let Ok(addr) = self.local_addr() {
            d.field("local", &addr);
        }
        if let Ok(addr) = self.peer_addr() {
            d.field("peer", &addr);
        }
        d.field("fd", &self.as_raw_fd()).finish()
    }
}
