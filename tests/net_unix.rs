//! Unix sockets, and descriptors brought in through `IoSource`, park like TCP sockets do.

mod net_util;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::time::Duration;

use net_util::{pattern, until_parked};
use spindle::net::{UnixListener, UnixStream};
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
