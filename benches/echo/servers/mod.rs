//! The servers under test, each run in its own child process. Each binds 127.0.0.1:0, prints
//! its address on stdout for the parent, and echoes every connection until EOF.

mod may;
mod mio;
mod spindle;
mod threads;
mod tokio;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Runs server `kind` (the value of `SPINDLE_ECHO_SERVE`) until the parent kills it.
pub fn serve(kind: &str) {
    match kind {
        "spindle" => spindle::serve(),
        "threads" => threads::serve(),
        "mio" => mio::serve(),
        "tokio" => tokio::serve(),
        "may" => may::serve(),
        other => panic!("unknown server {other:?}"),
    }
}

/// Binds 127.0.0.1:0 with a backlog of 1024 and prints the address for the parent.
pub fn std_listener() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    // SAFETY: the listener's descriptor is open for the duration of the call.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), 1024) };
    assert_eq!(rc, 0, "listen: {}", io::Error::last_os_error());
    announce(listener.local_addr().expect("local_addr"));
    listener
}

/// Prints the server's address on stdout, where the parent waits for it.
pub fn announce(addr: SocketAddr) {
    let mut out = io::stdout();
    writeln!(out, "{addr}").and_then(|()| out.flush()).expect("tell the parent the address");
}

/// The connection loop of the spindle, may and thread servers (the same code on each kind of
/// socket): a 4 KiB buffer, read / write_all until EOF or an error.
pub fn echo_until_eof(mut conn: impl Read + Write) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}
