//! `may`: the `may` crate's stackful coroutines, one per connection, on one worker thread.

use std::time::Duration;

use super::{announce, echo_until_eof};

/// `may`'s coroutines with one worker thread: the same `echo_until_eof` loop on its sockets.
/// (`may::net::TcpListener::bind` listens with a backlog of 1024, as the others do.)
pub fn serve() {
    may::config().set_workers(1);
    let listener = may::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    announce(listener.local_addr().expect("local_addr"));
    let acceptor = may::go!(move || loop {
        match listener.accept() {
            Ok((conn, _)) => {
                let _ = conn.set_nodelay(true);
                may::go!(move || echo_until_eof(conn));
            }
            Err(_) => may::coroutine::sleep(Duration::from_millis(50)),
        }
    });
    let _ = acceptor.join();
}
