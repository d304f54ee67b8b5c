//! `threads`: `std::net`, one OS thread per connection, with the example's own parser,
//! routes and response writer, so that it differs from spindle's server only in how it waits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::RwLock;
use std::time::Duration;

use super::std_listener;
use crate::server::request::{self, Parsed};
use crate::server::response::{self, DATE_LEN};

/// The `Date` header, refreshed once a second by a thread of its own.
static DATE: RwLock<[u8; DATE_LEN]> = RwLock::new([b' '; DATE_LEN]);

pub fn serve() {
    std::thread::spawn(|| loop {
        let now = httpdate::fmt_http_date(std::time::SystemTime::now());
        if let Ok(date) = <[u8; DATE_LEN]>::try_from(now.as_bytes()) {
            *DATE.write().unwrap_or_else(|e| e.into_inner()) = date;
        }
        std::thread::sleep(Duration::from_millis(250));
    });
    let listener = std_listener();
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let _ = conn.set_nodelay(true);
        let spawned =
            std::thread::Builder::new().stack_size(64 << 10).spawn(move || serve_one(conn));
        if spawned.is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Keep-alive and pipelining as spindle's server does them; bodies and timeouts left out (the
/// bench sends neither).
fn serve_one(mut conn: TcpStream) {
    let mut buf = vec![0u8; 2 * request::MAX_HEAD];
    let (mut start, mut end) = (0, 0);
    let mut out = Vec::with_capacity(4096);
    loop {
        let date = *DATE.read().unwrap_or_else(|e| e.into_inner());
        loop {
            let request = match request::parse(&buf[start..end]) {
                Parsed::Request(request) => request,
                Parsed::Partial => break,
                Parsed::Invalid(_) => return,
            };
            start += request.head_len;
            let reply = request.route.run();
            let close = !request.keep_alive;
            response::write(&mut out, reply.status, reply.body.as_bytes(), &date, close, false);
            if close {
                let _ = conn.write_all(&out);
                return;
            }
        }
        if !out.is_empty() {
            if conn.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        buf.copy_within(start..end, 0);
        (start, end) = (0, end - start);
        if end == buf.len() {
            return; // a head too long
        }
        match conn.read(&mut buf[end..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
    }
}
