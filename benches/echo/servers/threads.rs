//! `threads`: `std::net`, one OS thread per connection.

use std::time::Duration;

use super::{echo_until_eof, std_listener};

pub fn serve() {
    let listener = std_listener();
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let _ = conn.set_nodelay(true);
        let spawned =
            std::thread::Builder::new().stack_size(64 << 10).spawn(move || echo_until_eof(conn));
        if spawned.is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
