//! Faults and bad peers: each gets a clear `io::Error` and stalls nobody else.

mod net_util;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use net_util::{is_child, run_child, until_parked};
use spindle::net::{TcpListener, TcpStream, UnixStream};

fn connected() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// Makes `close` send a reset instead of a FIN (SO_LINGER with a zero timeout).
fn reset_on_close(stream: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: `linger` is a valid `struct linger` of the size passed; the descriptor is open.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", io::Error::last_os_error());
}

#[test]
fn a_reset_peer_makes_the_parked_read_fail_with_connection_reset() {
    spindle::run(|| {
        let (client, mut server) = connected();
        let reading = spindle::spawn(move || server.read(&mut [0; 16]));
        assert_eq!(until_parked(&reading), "TcpStream::read");
        reset_on_close(&client);
        drop(client);
        let err = reading.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    });
}

#[test]
fn half_close_reads_as_eof_and_the_other_direction_still_works() {
    spindle::run(|| {
        let (mut client, mut server) = connected();
        client.write_all(b"last words").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"last words");
        assert_eq!(server.read(&mut [0; 4]).unwrap(), 0, "EOF again");
        server.write_all(b"reply").unwrap();
        let mut reply = [0; 5];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"reply");
    });
}

/// Writes until the write fails; returns the error.
fn write_until_error(mut stream: impl Write) -> io::Error {
    for _ in 0..1000 {
        if let Err(e) = stream.write_all(&[7; 1024]) {
            return e;
        }
        spindle::yield_now(); // lets the reactor see the reset
    }
    panic!("writing to a closed peer kept succeeding");
}

#[test]
fn writing_to_a_closed_peer_is_an_error_not_a_sigpipe_death() {
    if !is_child() {
        let (status, output) = run_child(
            "writing_to_a_closed_peer_is_an_error_not_a_sigpipe_death",
            Duration::from_secs(20),
        );
        assert!(status.success(), "child failed ({status}):\n{output}");
        assert!(output.contains("tcp: BrokenPipe") || output.contains("tcp: ConnectionReset"));
        assert!(output.contains("unix: BrokenPipe"), "{output}");
        return;
    }
    // The test harness ignores SIGPIPE; a user's program may not. Restore the default action,
    // which kills the process, and check that no write raises it.
    // SAFETY: setting a signal's disposition to its default is always sound.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    spindle::run(|| {
        let (client, server) = connected();
        drop(server);
        println!("tcp: {:?}", write_until_error(&client).kind());
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        println!("unix: {:?}", write_until_error(&a).kind());
    });
}

#[test]
fn a_peer_that_sends_nothing_holds_only_its_own_coroutine() {
    spindle::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let serve = |mut conn: TcpStream| {
            spindle::spawn(move || {
                let mut buf = [0; 64];
                let mut echoed = 0;
                loop {
                    match conn.read(&mut buf).unwrap() {
                        0 => return echoed,
                        n => conn.write_all(&buf[..n]).unwrap(),
                    }
                    echoed += 1;
                }
            })
        };
        let stalled_client = TcpStream::connect(addr).unwrap();
        let stalled = serve(listener.accept().unwrap().0);
        assert_eq!(until_parked(&stalled), "TcpStream::read");
        let mut busy_client = TcpStream::connect(addr).unwrap();
        let busy = serve(listener.accept().unwrap().0);
        for i in 0..1000u32 {
            busy_client.write_all(&i.to_le_bytes()).unwrap();
            let mut back = [0; 4];
            busy_client.read_exact(&mut back).unwrap();
            assert_eq!(u32::from_le_bytes(back), i);
        }
        drop(busy_client);
        assert_eq!(busy.join().unwrap(), 1000);
        // Still waiting on its silent peer, and released when that peer hangs up.
        assert_eq!(stalled.coroutine().parked_on().map(|r| r.what), Some("TcpStream::read"));
        // The socket is named by its descriptor (the server side's, not the client's).
        let reason = stalled.coroutine().parked_on().unwrap().to_string();
        let fd: i32 = reason
            .strip_prefix("TcpStream::read (fd ")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{reason}"));
        assert!(fd > 2 && fd != stalled_client.as_raw_fd(), "{reason}");
        drop(stalled_client);
        assert_eq!(stalled.join().unwrap(), 0);
    });
}

#[test]
fn a_read_timeout_expires_and_leaves_the_socket_usable() {
    let rt = spindle::Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let (mut client, mut server) = connected();
        server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = spindle::time::now();
        let err = server.read(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(spindle::time::now() - started, Duration::from_secs(10));
        client.write_all(b"after").unwrap();
        let mut buf = [0; 5];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"after");
        server.write_all(b"still").unwrap();
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"still");
    });
}

#[test]
fn a_write_timeout_expires_when_the_peer_never_reads() {
    let rt = spindle::Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let (client, _server) = connected();
        client.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let chunk = vec![1u8; 1 << 20];
        let err = loop {
            if let Err(e) = (&client).write(&chunk) {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    });
}

#[test]
fn closing_a_stream_wakes_the_coroutines_parked_on_it_with_an_error() {
    spindle::run(|| {
        let (client, _server) = connected();
        let reader = client.try_clone().unwrap();
        let reading = spindle::spawn(move || (&reader).read(&mut [0; 8]));
        assert_eq!(until_parked(&reading), "TcpStream::read");
        client.close();
        let err = reading.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        let err = (&client).write(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected, "later operations fail too");
    });
}

#[test]
fn closing_a_listener_wakes_its_acceptor_with_an_error() {
    spindle::run(|| {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let l = listener.clone();
        let accepting = spindle::spawn(move || l.accept().map(|_| ()));
        assert_eq!(until_parked(&accepting), "TcpListener::accept");
        listener.close();
        let err = accepting.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    });
}

#[test]
fn accept_out_of_descriptors_returns_emfile_and_recovers_when_some_are_freed() {
    if !is_child() {
        let (status, output) = run_child(
            "accept_out_of_descriptors_returns_emfile_and_recovers_when_some_are_freed",
            Duration::from_secs(20),
        );
        assert!(status.success(), "child failed ({status}):\n{output}");
        assert!(output.contains("accept failed with EMFILE"), "{output}");
        return;
    }
    spindle::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Connected by the kernel, waiting in the backlog.
        let _client = std::net::TcpStream::connect(addr).unwrap();
        net_util::fd_limit::set_soft_fd_limit(256).unwrap();
        let mut hogs = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => hogs.push(f),
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
                Err(e) => panic!("unexpected error filling the descriptor table: {e}"),
            }
        }
        let err = listener.accept().map(|_| ()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
        println!("accept failed with EMFILE");
        // Again: no spin, no hang, the same answer.
        let err = listener.accept().map(|_| ()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE));
        hogs.truncate(hogs.len() - 8);
        let (conn, peer) = listener.accept().unwrap();
        assert_eq!(conn.peer_addr().unwrap(), peer);
    });
}

// A read that comes back short marks the socket drained, so the next read parks without a
// system call until an event arrives. The peer's FIN or reset may already have been reported
// (by the very event that woke the reader) when the short read happens: then no further event
// comes, and the next read must run and see EOF or the error instead of parking for good. The
// read timeout turns such a hang into a failure.

/// Parks `reader` on a 1-byte read, then lets `peer` act, so that the wake comes from one
/// poll that saw both the data and what `peer` did after writing it.
fn read_after_peer(peer: impl FnOnce(TcpStream) + 'static) -> (Vec<u8>, io::Result<usize>) {
    let (reader, writer) = connected();
    reader.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let reading = spindle::spawn(move || {
        let mut first = [0u8; 1];
        assert_eq!((&reader).read(&mut first).unwrap(), 1);
        let mut rest = [0u8; 4096];
        let n = (&reader).read(&mut rest).unwrap(); // short: the rest of the message
        let mut got = first.to_vec();
        got.extend_from_slice(&rest[..n]);
        (got, (&reader).read(&mut rest))
    });
    assert_eq!(until_parked(&reading), "TcpStream::read");
    peer(writer);
    reading.join().unwrap()
}

#[test]
fn eof_reported_with_the_data_is_read_after_a_short_read() {
    spindle::run(|| {
        let (got, last) = read_after_peer(|mut writer| {
            writer.write_all(b"hello, world").unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        assert_eq!(got, b"hello, world");
        assert_eq!(last.unwrap(), 0, "EOF after the data");
    });
}

#[test]
fn a_reset_reported_with_the_data_is_read_after_a_short_read() {
    spindle::run(|| {
        let (got, last) = read_after_peer(|mut writer| {
            reset_on_close(&writer);
            writer.write_all(b"hello, world").unwrap();
            drop(writer);
        });
        // Linux may discard unread data on reset; whatever arrived is a prefix.
        assert!(b"hello, world".starts_with(&got), "{got:?}");
        let err = last.expect_err("the reset is an error");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    });
}

#[test]
fn a_short_write_parks_until_the_peer_drains_and_every_byte_arrives() {
    spindle::run(|| {
        let (client, server) = connected();
        let data = net_util::pattern(7, 8 << 20);
        let expected = data.clone();
        // 8 MiB is far more than the socket buffers hold: writes come back short and the
        // writer parks on them until the reader frees space.
        let writing = spindle::spawn(move || {
            let mut client = client;
            client.write_all(&data).unwrap();
            client.shutdown(Shutdown::Write).unwrap();
        });
        let reading = spindle::spawn(move || {
            let mut got = Vec::new();
            (&server).read_to_end(&mut got).unwrap();
            got
        });
        writing.join().unwrap();
        assert!(reading.join().unwrap() == expected, "the stream arrived intact");
    });
}
