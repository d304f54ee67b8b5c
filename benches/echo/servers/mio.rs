//! `mio`: a hand-written single-threaded mio event loop, the ceiling for one thread.

use std::io::{self, Read, Write};

use mio::net::{TcpListener as MioListener, TcpStream as MioStream};
use mio::{Events, Interest, Poll, Token};

use super::std_listener;

/// A server connection of the hand-written loop: bytes read but not yet echoed.
struct Echo {
    stream: MioStream,
    buf: Box<[u8; 4096]>,
    start: usize,
    end: usize,
}

impl Echo {
    /// Echoes until the socket would block; returns false when the connection is over.
    fn drive(&mut self) -> bool {
        loop {
            while self.start < self.end {
                match self.stream.write(&self.buf[self.start..self.end]) {
                    Ok(n) => self.start += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
            match self.stream.read(&mut self.buf[..]) {
                Ok(0) => return false,
                Ok(n) => (self.start, self.end) = (0, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }
}

pub fn serve() {
    const LISTENER: Token = Token(usize::MAX);
    let std = std_listener();
    std.set_nonblocking(true).expect("nonblocking");
    let mut listener = MioListener::from_std(std);
    let mut poll = Poll::new().expect("poll");
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE).expect("register");
    let mut conns: slab::Slab<Echo> = slab::Slab::new();
    let mut events = Events::with_capacity(1024);
    loop {
        poll.poll(&mut events, None).expect("poll");
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            poll.registry()
                                .register(
                                    &mut stream,
                                    Token(entry.key()),
                                    Interest::READABLE | Interest::WRITABLE,
                                )
                                .expect("register");
                            entry.insert(Echo {
                                stream,
                                buf: Box::new([0; 4096]),
                                start: 0,
                                end: 0,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let key = event.token().0;
            let alive = conns.get_mut(key).is_some_and(|c| c.drive());
            if !alive && conns.contains(key) {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
    }
}
