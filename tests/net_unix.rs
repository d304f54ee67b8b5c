//! Unix sockets, stream and datagram, and descriptors brought in through `IoSource`, park like
//! TCP and UDP sockets do.

mod net_util;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use net_util::{pattern, until_parked};
use spindle::net::{UnixDatagram, UnixListener, UnixStream};
use spindle::IoSource;

/// A fresh directory for one test's socket file, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("spindle-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_hundred_unix_clients_are_echoed_byte_for_byte() {
    const CLIENTS: usize = 100;
    let dir = TempDir::new("unix-echo");
    let path = dir.0.join("echo.sock");
    spindle::run(|| {
        let listener = UnixListener::bind(&path).unwrap();
        let server = spindle::spawn(move || {
            let conns: Vec<_> = listener
                .incoming()
                .take(CLIENTS)
                .map(|conn| {
                    let mut conn = conn.unwrap();
                    spindle::spawn(move || {
                        let mut buf = [0; 1024];
                        loop {
                            match conn.read(&mut buf).unwrap() {
                                0 => return,
                                n => conn.write_all(&buf[..n]).unwrap(),
                            }
                        }
                    })
                })
                .collect();
            for c in conns {
                c.join().unwrap();
            }
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let path = path.clone();
                spindle::spawn(move || {
                    let mut stream = UnixStream::connect(&path).unwrap();
                    let sent = pattern(i as u64, 1 + i * 97);
                    stream.write_all(&sent).unwrap();
                    stream.shutdown(Shutdown::Write).unwrap();
                    let mut back = Vec::new();
                    stream.read_to_end(&mut back).unwrap();
                    assert!(back == sent, "client {i} got different bytes back");
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        server.join().unwrap();
    });
}

#[test]
fn a_pair_splits_into_a_reader_and_a_writer() {
    spindle::run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let reader = a.try_clone().unwrap();
        let reading = spindle::spawn(move || {
            let mut buf = [0; 3];
            (&reader).read_exact(&mut buf).unwrap();
            buf
        });
        assert_eq!(until_parked(&reading), "UnixStream::read");
        (&b).write_all(b"abc").unwrap();
        assert_eq!(&reading.join().unwrap(), b"abc");
        // The other handle of `a` still writes.
        (&a).write_all(b"xyz").unwrap();
        let mut buf = [0; 3];
        (&b).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"xyz");
    });
}

#[test]
fn local_and_peer_addresses_name_the_socket_file() {
    let dir = TempDir::new("unix-addr");
    let path = dir.0.join("addr.sock");
    spindle::run(|| {
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(listener.local_addr().unwrap().as_pathname(), Some(path.as_path()));
        let client = UnixStream::connect(&path).unwrap();
        let (conn, _) = listener.accept().unwrap();
        assert_eq!(client.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
        assert_eq!(conn.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    });
}

#[test]
fn a_datagram_pair_carries_whole_datagrams_both_ways() {
    spindle::run(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(b"ab").unwrap();
        a.send(b"cde").unwrap();
        let mut buf = [0; 16];
        // One datagram per receive, however much room the buffer has.
        assert_eq!(b.recv(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ab");
        assert_eq!(b.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"cde");
        // A datagram longer than the buffer is cut short; the rest of it is gone.
        b.send(b"truncated").unwrap();
        b.send(b"next").unwrap();
        assert_eq!(a.recv(&mut buf[..5]).unwrap(), 5);
        assert_eq!(&buf[..5], b"trunc");
        assert_eq!(a.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"next");
        assert!(a.peer_addr().unwrap().is_unnamed());
    });
}

#[test]
fn bound_datagram_sockets_address_each_other_by_path() {
    let dir = TempDir::new("unix-dgram-bind");
    let (server_path, client_path) = (dir.0.join("server.sock"), dir.0.join("client.sock"));
    spindle::run(|| {
        let server = UnixDatagram::bind(&server_path).unwrap();
        let client = UnixDatagram::bind(&client_path).unwrap();
        assert_eq!(server.local_addr().unwrap().as_pathname(), Some(server_path.as_path()));
        let err = UnixDatagram::bind(&server_path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");

        assert_eq!(client.send_to(b"ping", &server_path).unwrap(), 4);
        let mut buf = [0; 16];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.as_pathname()), (&b"ping"[..], Some(client_path.as_path())));
        server.send_to_addr(b"pong", &from).unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.as_pathname()), (&b"pong"[..], Some(server_path.as_path())));

        // An unbound socket's datagrams come from an unnamed address.
        let anonymous = UnixDatagram::unbound().unwrap();
        anonymous.send_to(b"who", &server_path).unwrap();
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"who");
        assert!(from.is_unnamed());

        // Connected, it sends and receives without naming the peer.
        anonymous.connect(&server_path).unwrap();
        assert_eq!(anonymous.peer_addr().unwrap().as_pathname(), Some(server_path.as_path()));
        anonymous.send(b"again").unwrap();
        assert_eq!(server.recv(&mut buf).unwrap(), 5);
    });
    drop(dir);
}

#[test]
fn a_datagram_recv_parks_until_a_peer_thread_sends() {
    let (ours, theirs) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let (go, start) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        start.recv().unwrap();
        theirs.send(b"from another thread").unwrap();
    });
    let got = spindle::run(move || {
        let ours = UnixDatagram::from_std(ours).unwrap();
        let receiving = spindle::spawn(move || {
            let mut buf = [0; 64];
            let n = ours.recv(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        assert_eq!(until_parked(&receiving), "UnixDatagram::recv");
        go.send(()).unwrap();
        // Nothing is runnable now: the scheduler waits in the reactor for the peer's datagram.
        receiving.join().unwrap()
    });
    peer.join().unwrap();
    assert_eq!(got, b"from another thread");
}

#[test]
fn a_datagram_receive_timeout_expires_and_leaves_the_socket_usable() {
    let rt = spindle::Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        assert_eq!(b.read_timeout().unwrap(), Some(Duration::from_secs(30)));
        let started = spindle::time::now();
        let err = b.recv(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(spindle::time::now() - started, Duration::from_secs(30));
        a.send(b"late").unwrap();
        let mut buf = [0; 8];
        assert_eq!(b.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"late");
        let err = b.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn a_zero_length_datagram_is_received_as_zero_and_the_next_one_follows() {
    spindle::run(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(a.send(b"").unwrap(), 0);
        a.send(b"after").unwrap();
        a.send(b"last").unwrap();
        // The scheduler polls while this sleeps and takes in the readiness the sends raised;
        // no new event comes for datagrams already queued.
        spindle::sleep(Duration::from_millis(1));
        let mut buf = [0; 16];
        assert_eq!(b.recv(&mut buf).unwrap(), 0);
        assert_eq!(b.recv(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"after");
        // A stream read would have marked the socket drained after that short read and
        // parked here until the timeout.
        assert_eq!(b.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"last");
        // An empty buffer waits for a datagram too, and takes (and discards) all of it.
        let b = Rc::new(b);
        let receiver = b.clone();
        let receiving = spindle::spawn(move || receiver.recv(&mut []));
        assert_eq!(until_parked(&receiving), "UnixDatagram::recv");
        a.send(b"dropped").unwrap();
        a.send(b"kept").unwrap();
        assert_eq!(receiving.join().unwrap().unwrap(), 0);
        assert_eq!(b.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"kept");
    });
}

#[test]
fn a_datagram_peek_leaves_it_queued() {
    spindle::run(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        let b = Rc::new(b);
        let peeker = b.clone();
        let peeking = spindle::spawn(move || {
            let mut buf = [0; 16];
            let n = peeker.peek(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        assert_eq!(until_parked(&peeking), "UnixDatagram::peek");
        a.send(b"look").unwrap();
        assert_eq!(peeking.join().unwrap(), b"look");
        let mut buf = [0; 16];
        assert_eq!(b.peek(&mut buf).unwrap(), 4);
        assert_eq!(b.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"look");
    });
}

#[test]
fn a_connected_datagram_sender_parks_while_the_receiver_is_full_and_loses_nothing() {
    const DATAGRAMS: usize = 2000; // far more than a receive queue holds
    let dir = TempDir::new("unix-dgram-full");
    let path = dir.0.join("server.sock");
    spindle::run(|| {
        let server = UnixDatagram::bind(&path).unwrap();
        let client = UnixDatagram::unbound().unwrap();
        client.connect(&path).unwrap();
        let sending = spindle::spawn(move || {
            for i in 0..DATAGRAMS {
                client.send(&pattern(i as u64, 1 + i % 300)).unwrap();
            }
        });
        assert_eq!(until_parked(&sending), "UnixDatagram::send");
        let mut buf = [0; 512];
        for i in 0..DATAGRAMS {
            let n = server.recv(&mut buf).unwrap();
            assert!(buf[..n] == pattern(i as u64, 1 + i % 300), "datagram {i} differs");
        }
        sending.join().unwrap();
    });
    drop(dir);
}

#[test]
fn a_shut_down_datagram_socket_refuses_sends_with_broken_pipe() {
    spindle::run(|| {
        let mut buf = [0; 8];
        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(b"before").unwrap();
        a.shutdown(Shutdown::Write).unwrap();
        assert_eq!(a.send(b"after").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(b.recv(&mut buf).unwrap(), 6, "what was sent before is delivered");
        // A socket that stops receiving makes sends to it fail the same way, one way only.
        let (c, d) = UnixDatagram::pair().unwrap();
        d.shutdown(Shutdown::Read).unwrap();
        assert_eq!(c.send(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        d.send(b"back").unwrap();
        assert_eq!(c.recv(&mut buf).unwrap(), 4);
        assert!(c.take_error().unwrap().is_none());
    });
}

#[test]
fn closing_a_datagram_socket_wakes_its_receiver_with_an_error() {
    spindle::run(|| {
        let (_a, b) = UnixDatagram::pair().unwrap();
        let b = Rc::new(b);
        let receiver = b.clone();
        let receiving = spindle::spawn(move || receiver.recv_from(&mut [0; 8]).map(|(n, _)| n));
        assert_eq!(until_parked(&receiving), "UnixDatagram::recv_from");
        b.close();
        let err = receiving.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    });
}

#[test]
fn a_pipe_brought_in_with_io_source_parks_its_reader() {
    spindle::run(|| {
        let (sender, receiver) = mio::unix::pipe::new().unwrap();
        let (sender, receiver) = (IoSource::new(sender).unwrap(), IoSource::new(receiver).unwrap());
        let reading = spindle::spawn(move || {
            let mut got = Vec::new();
            (&receiver).read_to_end(&mut got).unwrap();
            got
        });
        assert_eq!(until_parked(&reading), "IoSource::read_with");
        let sent = pattern(9, 200_000); // more than a pipe buffer: the writer parks too
        (&sender).write_all(&sent).unwrap();
        drop(sender);
        assert!(reading.join().unwrap() == sent);
    });
}

/// True if the open file behind `fd` is in non-blocking mode.
fn is_nonblocking(fd: &impl std::os::fd::AsRawFd) -> bool {
    // SAFETY: `F_GETFL` on a descriptor the caller keeps open reads its flags, nothing else.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert_ne!(flags, -1, "{}", std::io::Error::last_os_error());
    flags & libc::O_NONBLOCK != 0
}

#[test]
fn a_std_pipe_taken_in_with_from_fd_is_made_non_blocking_and_parks_its_reader() {
    spindle::run(|| {
        let (reader, writer) = std::io::pipe().unwrap();
        assert!(!is_nonblocking(&reader));
        let (reader, writer) =
            (IoSource::from_fd(reader).unwrap(), IoSource::from_fd(writer).unwrap());
        assert!(is_nonblocking(&reader) && is_nonblocking(&writer));
        let reading = spindle::spawn(move || {
            let mut got = Vec::new();
            (&reader).read_to_end(&mut got).unwrap();
            got
        });
        assert_eq!(until_parked(&reading), "IoSource::read_with");
        let sent = pattern(10, 200_000); // more than a pipe buffer: the writer parks too
        (&writer).write_all(&sent).unwrap();
        drop(writer); // closes the write end: the reader sees EOF
        assert!(reading.join().unwrap() == sent);
    });
}

#[test]
fn an_owned_fd_taken_in_with_from_fd_is_closed_when_the_source_drops() {
    spindle::run(|| {
        let (reader, writer) = std::io::pipe().unwrap();
        let writer = std::os::fd::OwnedFd::from(writer);
        let writer = IoSource::from_fd(std::fs::File::from(writer)).unwrap();
        let reader = IoSource::from_fd(reader).unwrap();
        (&writer).write_all(b"last words").unwrap();
        drop(writer);
        // EOF comes only once the write end is closed; a leaked descriptor would park for ever.
        let got = spindle::time::timeout(Duration::from_secs(10), || {
            let mut got = Vec::new();
            (&reader).read_to_end(&mut got).unwrap();
            got
        });
        assert_eq!(got.expect("the write end was closed"), b"last words");
    });
}

#[test]
fn a_regular_file_cannot_be_polled_and_from_fd_says_so() {
    spindle::run(|| {
        let file = std::fs::File::open(file!()).unwrap();
        let err = IoSource::from_fd(file).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    });
}
