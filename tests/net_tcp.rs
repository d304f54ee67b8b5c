//! TCP: many concurrent connections echo byte for byte, and std's TCP surface behaves as std's.

mod net_util;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use net_util::fd_limit::raise_fd_limit;
use net_util::{pattern, until_parked, Rng};
use spindle::net::{TcpListener, TcpStream};

/// Echoes until EOF, like the example server.
fn echo(mut conn: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => conn.write_all(&buf[..n]).unwrap(),
            Err(e) => panic!("server read: {e}"),
        }
    }
}

#[test]
fn a_thousand_concurrent_connections_echo_random_sized_messages_byte_for_byte() {
    const CONNECTIONS: usize = 1000;
    const MESSAGES: usize = 3;
    assert!(raise_fd_limit() >= 2 * CONNECTIONS as u64 + 64, "need ~2100 descriptors");
    let echoed = spindle::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spindle::Builder::new()
            .stack_size(32 << 10)
            .spawn(move || {
                let conns: Vec<_> = (0..CONNECTIONS)
                    .map(|_| {
                        let (conn, _) = listener.accept().unwrap();
                        spindle::Builder::new().stack_size(32 << 10).spawn(move || echo(conn))
                    })
                    .collect();
                for c in conns {
                    c.unwrap().join().unwrap();
                }
            })
            .unwrap();
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|i| {
                spindle::Builder::new()
                    .stack_size(32 << 10)
                    .spawn(move || {
                        let mut stream = TcpStream::connect(addr).unwrap();
                        let mut rng = Rng::new(i as u64);
                        let mut total = 0;
                        for m in 0..MESSAGES {
                            let sent = pattern(
                                (i * MESSAGES + m) as u64,
                                1 + rng.below(16 << 10) as usize,
                            );
                            stream.write_all(&sent).unwrap();
                            let mut back = vec![0; sent.len()];
                            stream.read_exact(&mut back).unwrap();
                            assert!(back == sent, "connection {i} message {m} differs");
                            total += sent.len();
                        }
                        stream.shutdown(Shutdown::Write).unwrap();
                        assert_eq!(stream.read(&mut [0; 1]).unwrap(), 0, "EOF after the echo");
                        total
                    })
                    .unwrap()
            })
            .collect();
        let total: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
        server.join().unwrap();
        total
    });
    // Messages are 1..=16 KiB: 3000 of them average ~8 KiB.
    assert!(echoed > 3000 * 4096, "echoed only {echoed} bytes");
}

#[test]
fn a_reader_and_a_writer_coroutine_share_one_stream() {
    spindle::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let (reader, writer) = (client.try_clone().unwrap(), client);
        // The reader parks first, then the writer writes on the same socket.
        let reading = spindle::spawn(move || {
            let mut got = Vec::new();
            (&reader).read_to_end(&mut got).unwrap();
            got
        });
        assert_eq!(until_parked(&reading), "TcpStream::read");
        let writing = spindle::spawn(move || {
            for i in 0..100u8 {
                (&writer).write_all(&[i; 100]).unwrap();
            }
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let server = spindle::spawn(move || echo(conn));
        writing.join().unwrap();
        let got = reading.join().unwrap();
        server.join().unwrap();
        let expected: Vec<u8> = (0..100u8).flat_map(|i| [i; 100]).collect();
        assert_eq!(got, expected);
    });
}

#[test]
fn accept_parks_until_a_client_connects_and_incoming_yields_connections() {
    spindle::run(|| {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let l = listener.clone();
        let accepting = spindle::spawn(move || {
            l.incoming().take(3).map(|s| s.unwrap().peer_addr().unwrap()).collect::<Vec<_>>()
        });
        assert_eq!(until_parked(&accepting), "TcpListener::accept");
        let clients: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let peers = accepting.join().unwrap();
        let locals: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        assert_eq!(peers, locals);
    });
}

#[test]
fn connecting_to_a_port_nobody_listens_on_is_refused() {
    spindle::run(|| {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        // The listener is dropped: the port is closed.
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let err = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn connect_timeout_connects_and_refuses_a_zero_timeout() {
    spindle::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        assert_eq!(stream.peer_addr().unwrap(), addr);
        let err = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn peek_leaves_the_data_for_read() {
    spindle::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        let peeking = spindle::spawn(move || {
            let mut buf = [0; 5];
            let n = conn.peek(&mut buf).unwrap();
            let mut all = [0; 5];
            conn.read_exact(&mut all).unwrap();
            (buf[..n].to_vec(), all)
        });
        assert_eq!(until_parked(&peeking), "TcpStream::peek");
        client.write_all(b"hello").unwrap();
        let (peeked, read) = peeking.join().unwrap();
        assert!(!peeked.is_empty() && b"hello".starts_with(&peeked));
        assert_eq!(&read, b"hello");
    });
}

#[test]
fn socket_options_read_back_what_was_set() {
    spindle::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_ttl(42).unwrap();
        assert_eq!(listener.ttl().unwrap(), 42);
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        stream.set_nodelay(true).unwrap();
        assert!(stream.nodelay().unwrap());
        stream.set_nodelay(false).unwrap();
        assert!(!stream.nodelay().unwrap());
        stream.set_ttl(7).unwrap();
        assert_eq!(stream.ttl().unwrap(), 7);
        stream.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        stream.set_write_timeout(Some(Duration::from_millis(6))).unwrap();
        let clone = stream.try_clone().unwrap();
        assert_eq!(clone.read_timeout().unwrap(), Some(Duration::from_millis(5)));
        assert_eq!(clone.write_timeout().unwrap(), Some(Duration::from_millis(6)));
        let err = stream.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(stream.take_error().unwrap().is_none());
    });
}

#[test]
#[should_panic(expected = "registered with another runtime")]
fn a_socket_used_in_another_runtime_is_refused_with_a_clear_panic() {
    let (listener, client) = spindle::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (listener, client)
    });
    spindle::run(move || {
        // Nothing to accept beyond `client`'s connection: the second accept would park.
        let _first = listener.accept().unwrap();
        let _ = listener.accept();
        drop(client);
    });
}

#[test]
#[should_panic(expected = "no spindle runtime is running on this thread")]
fn a_socket_used_after_its_runtime_returned_says_so() {
    let listener = spindle::run(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let _ = listener.accept(); // would wait, outside any runtime
}

#[test]
fn a_zero_length_read_or_write_returns_at_once_even_after_a_short_read() {
    spindle::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = spindle::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"0123456789").unwrap();
            c
        });
        let (mut server, _) = listener.accept().unwrap();
        let _client = client.join().unwrap();
        server.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < 10 {
            got += server.read(&mut buf[got..]).unwrap(); // short: the socket is now drained
        }
        assert_eq!(server.read(&mut []).unwrap(), 0, "std returns Ok(0) at once");
        assert_eq!(server.write(&[]).unwrap(), 0);
    });
}

#[test]
fn duration_max_timeouts_mean_no_timeout() {
    spindle::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = spindle::spawn(move || {
            let mut c = TcpStream::connect_timeout(&addr, Duration::MAX).unwrap();
            c.set_write_timeout(Some(Duration::MAX)).unwrap();
            c.write_all(b"ping").unwrap();
            c
        });
        let (mut server, _) = listener.accept().unwrap();
        server.set_read_timeout(Some(Duration::MAX)).unwrap();
        assert_eq!(server.read_timeout().unwrap(), Some(Duration::MAX));
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        drop(client.join().unwrap());
    });
}
