//! `spindle`: the same code as `examples/echo_server.rs`, one coroutine per connection.

use std::time::Duration;

use super::{announce, echo_until_eof};

/// Serves on a spindle runtime, on this thread.
pub fn serve() {
    spindle::run(spindle_server)
}

/// Written as `examples/echo_server.rs` is: one coroutine per connection, read / write_all.
fn spindle_server() {
    let listener = spindle::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    announce(listener.local_addr().expect("local_addr"));
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                let _ = conn.set_nodelay(true);
                spindle::Builder::new()
                    .stack_size(32 << 10)
                    .spawn(move || echo_until_eof(conn))
                    .expect("spawn");
            }
            Err(_) => spindle::sleep(Duration::from_millis(50)),
        }
    }
}
