//! Virtual time jumps only when nothing outside the runtime can still make progress.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use spindle::net::{TcpListener, TcpStream};
use spindle::time::{now, sleep, timeout};

fn virtual_runtime() -> spindle::Runtime {
    spindle::Runtime::builder().virtual_time(true).build().unwrap()
}

#[test]
fn an_unblock_job_takes_no_virtual_time_and_beats_a_long_timeout() {
    let (result, elapsed) = virtual_runtime().run(|| {
        let start = now();
        let result = timeout(Duration::from_secs(3600), || {
            spindle::unblock(|| {
                std::thread::sleep(Duration::from_millis(20)); // real work, outside the runtime
                7
            })
        });
        (result, now() - start)
    });
    assert_eq!(result, Ok(7));
    assert_eq!(elapsed, Duration::ZERO, "the clock waited for the job");
}

#[test]
fn an_unblock_job_finishes_before_a_later_longer_sleep() {
    let order = virtual_runtime().run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let job = {
            let log = log.clone();
            spindle::spawn(move || {
                spindle::unblock(|| std::thread::sleep(Duration::from_millis(30)));
                log.borrow_mut().push("job");
            })
        };
        let sleeper = {
            let log = log.clone();
            spindle::spawn(move || {
                sleep(Duration::from_secs(10));
                log.borrow_mut().push("sleep");
            })
        };
        job.join().unwrap();
        sleeper.join().unwrap();
        let v = log.borrow().clone();
        v
    });
    assert_eq!(order, ["job", "sleep"]);
}

#[test]
fn a_peer_thread_answering_in_20_ms_beats_a_one_hour_read_timeout() {
    let got = virtual_runtime().run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            s.write_all(b"late").unwrap();
            s
        });
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(3600))).unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).unwrap();
        drop(peer.join().unwrap());
        buf
    });
    assert_eq!(&got, b"late");
}

#[test]
fn a_quiet_socket_does_not_stop_virtual_time_for_good() {
    let elapsed = spindle::Runtime::builder()
        .virtual_time(true)
        .virtual_io_grace(Duration::from_millis(5))
        .build()
        .unwrap()
        .run(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            // Parked on a socket nobody will ever write to.
            let _idle = spindle::Builder::new()
                .daemon(true)
                .spawn(move || drop(listener.accept()))
                .unwrap();
            let start = now();
            sleep(Duration::from_secs(60));
            now() - start
        });
    assert_eq!(elapsed, Duration::from_secs(60));
}

#[test]
fn a_connection_in_the_same_runtime_is_unaffected() {
    // Both ends in the runtime: the reads are ready at once, the grace never waits.
    virtual_runtime().run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = spindle::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"ping").unwrap();
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf).unwrap();
            buf
        });
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
        assert_eq!(&client.join().unwrap(), b"ping");
    });
}
