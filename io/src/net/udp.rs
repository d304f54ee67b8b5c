//! UDP: [`UdpSocket`].

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};

use super::each_addr;
use super::socket::{forward, timeout_methods, Socket};

/// A UDP socket; `recv_from`/`recv` park the coroutine until a datagram arrives, `send_to`/`send`
/// until there is buffer space.
///
/// ```
/// use spindle_io::net::UdpSocket;
///
/// spindle_runtime::run(|| {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b_addr = b.local_addr().unwrap();
///     let receiver = spindle_runtime::spawn(move || {
///         let mut buf = [0; 16];
///         let (n, from) = b.recv_from(&mut buf).unwrap();
///         (buf[..n].to_vec(), from)
///     });
///     a.send_to(b"datagram", b_addr).unwrap();
///     let (data, from) = receiver.join().unwrap();
///     assert_eq!((&data[..], from), (&b"datagram"[..], a.local_addr().unwrap()));
/// });
/// ```
pub struct UdpSocket {
    /// The registered socket and its timeouts.
    socket: Socket<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr` (the first address that works).
    #[track_caller]
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        UdpSocket::from_std(std::net::UdpSocket::bind(addr)?)
    }

    /// Takes a std socket (switched to non-blocking mode here) into the runtime.
    #[track_caller]
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket { socket: Socket::new(mio::net::UdpSocket::from_std(socket))? })
    }

    /// Sends `buf` as one datagram to `addr` (its first resolved address).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let target = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.socket.write_with("UdpSocket::send_to", |s| s.send_to(buf, target))
    }

    /// Receives one datagram; returns its length (truncated to `buf`) and its sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.read_with("UdpSocket::recv_from", |s| s.recv_from(buf))
    }

    /// Like `recv_from`, leaving the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.read_with("UdpSocket::peek_from", |s| s.peek_from(buf))
    }

    /// Sets the default destination of `send` and the only source `recv` accepts.
    #[track_caller]
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr.to_socket_addrs()?, |a| self.socket.get_ref().connect(a))
    }

    /// Sends `buf` to the connected address.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write_with("UdpSocket::send", |s| s.send(buf))
    }

    /// Receives one datagram from the connected address.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read_with("UdpSocket::recv", |s| s.recv(buf))
    }

    /// Like `recv`, leaving the datagram queued.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read_with("UdpSocket::peek", |s| s.peek(buf))
    }

    forward! { self.socket.get_ref() =>
        /// The local address.
        pub fn local_addr(&self) -> io::Result<SocketAddr>;

        /// The connected address.
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
        /// Sets `SO_BROADCAST`.
        pub fn set_broadcast(&self, on: bool) -> io::Result<()>;

        /// Whether `SO_BROADCAST` is set.
        pub fn broadcast(&self) -> io::Result<bool>;

        /// Sets the IP time-to-live.
        pub fn set_ttl(&self, ttl: u32) -> io::Result<()>;

        /// The IP time-to-live.
        pub fn ttl(&self) -> io::Result<u32>;

        /// Takes the pending socket error (`SO_ERROR`), if any.
        pub fn take_error(&self) -> io::Result<Option<io::Error>>;
    }

    /// Closes the socket for every user: coroutines parked on it wake with
    /// `io::ErrorKind::NotConnected`, as does every later operation. The descriptor is closed
    /// when the socket is dropped.
    pub fn close(&self) {
        self.socket.close();
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UdpSocket");
        if let Ok(addr) = self.local_addr() {
            d.field("local", &addr);
        }
        d.field("fd", &self.as_raw_fd()).finish()
    }
}
