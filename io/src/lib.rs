//! spindle's sockets: TCP, UDP and Unix sockets that park the calling coroutine, not the
//! thread, when an operation would block.
//!
//! Every socket here is registered once with the runtime's reactor (one `mio::Poll` per
//! runtime), edge-triggered, for both directions. An operation first tries the system call; only
//! when it returns `WouldBlock` does the coroutine park until the reactor reports the socket
//! ready, and then it retries. A socket that is ready therefore costs exactly the system call.
//!
//! * [`net`]: [`net::TcpListener`], [`net::TcpStream`], [`net::UdpSocket`],
//!   [`net::UnixListener`], [`net::UnixStream`], [`net::UnixDatagram`], with `std::net`'s
//!   method names.
//! * [`IoSource`]: the wrapper they are built on, for bringing your own descriptors (a pipe
//!   from `std::io::pipe`, any `OwnedFd`) without depending on mio.
//!
//! All of them must be created and used inside a spindle runtime (`spindle::run`); they are not
//! `Send`. See [`net`] for how they differ from `std::net`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod net;
mod source;

pub use source::IoSource;
