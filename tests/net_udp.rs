//! UDP: datagrams arrive whole with their sender; receives park; timeouts leave the socket usable.

mod net_util;

use std::io;
use std::rc::Rc;
use std::time::Duration;

use net_util::{pattern, until_parked};
use spindle::net::UdpSocket;

#[test]
fn recv_from_parks_until_a_datagram_arrives_and_names_its_sender() {
    spindle::run(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b_addr = b.local_addr().unwrap();
        let receiving = spindle::spawn(move || {
            let mut buf = [0; 2048];
            let (n, from) = b.recv_from(&mut buf).unwrap();
            (buf[..n].to_vec(), from)
        });
        assert_eq!(until_parked(&receiving), "UdpSocket::recv_from");
        let sent = pattern(1, 1500);
        assert_eq!(a.send_to(&sent, b_addr).unwrap(), 1500);
        let (got, from) = receiving.join().unwrap();
        assert_eq!(got, sent);
        assert_eq!(from, a.local_addr().unwrap());
    });
}

#[test]
fn connected_sockets_send_and_recv_only_with_their_peer() {
    spindle::run(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
        // The kernel drops the stranger's datagram for the connected `b`.
        stranger.send_to(b"stranger", b.local_addr().unwrap()).unwrap();
        a.send(b"from a").unwrap();
        let mut buf = [0; 32];
        let n = b.peek(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from a");
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from a");
        b.send(b"from b").unwrap();
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from b");
    });
}

#[test]
fn fifty_senders_each_deliver_all_their_datagrams() {
    const SENDERS: usize = 50;
    const EACH: usize = 10;
    // UDP drops what the receive buffer cannot hold, and how often the receiver runs depends on
    // the scheduler's poll cadence: a window of datagrams in flight keeps the test about
    // delivery, not about buffer sizes.
    const WINDOW: usize = 32;
    spindle::run(|| {
        let server = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = server.local_addr().unwrap();
        let s = server.clone();
        let window = Rc::new(spindle::sync::Semaphore::new(WINDOW));
        let w = window.clone();
        let receiving = spindle::spawn(move || {
            let mut counts = vec![0usize; SENDERS];
            let mut buf = [0; 64];
            for _ in 0..SENDERS * EACH {
                let (n, _) = s.recv_from(&mut buf).unwrap();
                w.add_permits(1);
                assert_eq!(n, 9);
                let sender = u64::from_le_bytes(buf[..8].try_into().unwrap()) as usize;
                assert_eq!(buf[8], sender as u8, "datagram of sender {sender} corrupted");
                counts[sender] += 1;
            }
            counts
        });
        let senders: Vec<_> = (0..SENDERS)
            .map(|i| {
                let window = window.clone();
                spindle::spawn(move || {
                    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                    let mut msg = (i as u64).to_le_bytes().to_vec();
                    msg.push(i as u8);
                    for _ in 0..EACH {
                        window.acquire().forget(); // given back by the receiver
                        socket.send_to(&msg, addr).unwrap();
                        spindle::yield_now();
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        assert_eq!(receiving.join().unwrap(), vec![EACH; SENDERS]);
    });
}

#[test]
fn a_receive_timeout_expires_and_leaves_the_socket_usable() {
    let rt = spindle::Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let started = spindle::time::now();
        let err = b.recv_from(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(spindle::time::now() - started, Duration::from_secs(30));
        a.send_to(b"late", b.local_addr().unwrap()).unwrap();
        let mut buf = [0; 8];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"late"[..], a.local_addr().unwrap()));
    });
}

#[test]
fn closing_a_socket_wakes_its_receiver_with_an_error() {
    spindle::run(|| {
        let socket = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let s = socket.clone();
        let receiving = spindle::spawn(move || s.recv_from(&mut [0; 8]).map(|(n, _)| n));
        assert_eq!(until_parked(&receiving), "UdpSocket::recv_from");
        socket.close();
        let err = receiving.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    });
}
