//! The servers under test, each run in a child process of its own: the bench binary started
//! again with `SPINDLE_HTTP_SERVE=<kind>`. Each listens on 127.0.0.1, prints its address on
//! stdout for the parent, and serves `/` ("Hello, World!") and `/work?us=N` (N µs of CPU
//! work, the example's own `Route` code) until it is killed.

mod hyper;
mod may;
mod spindle;
mod threads;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use crate::os::pin_to;

/// A server the bench can run.
pub struct Kind {
    /// What `SPINDLE_HTTP_SERVE` and `SPINDLE_HTTP_SERVERS` call it.
    pub name: &'static str,
    /// How the table names it.
    pub label: &'static str,
    /// True when it runs on one thread (or its threads share one core): pinned to CPU 0, away
    /// from wrk. Servers with two workers (or shards) get both CPUs and share one with wrk.
    pub one_core: bool,
    serve: fn(),
}

/// Every server, in the table's order.
pub const KINDS: &[Kind] = &[
    Kind { name: "spindle", label: "spindle (1 shard)", one_core: true, serve: spindle::serve },
    Kind {
        name: "spindle2",
        label: "spindle, 2 shards",
        one_core: false,
        serve: spindle::serve_2_shards,
    },
    Kind { name: "may1", label: "may_minihttp, 1 worker", one_core: true, serve: may::serve_1 },
    Kind { name: "may2", label: "may_minihttp, 2 workers", one_core: false, serve: may::serve_2 },
    Kind {
        name: "hyper-ct",
        label: "tokio + hyper, current-thread",
        one_core: true,
        serve: hyper::serve_current_thread,
    },
    Kind {
        name: "hyper-mt2",
        label: "tokio + hyper, 2 workers",
        one_core: false,
        serve: hyper::serve_multi_thread,
    },
    Kind { name: "threads", label: "thread per connection", one_core: true, serve: threads::serve },
];

/// The server called `name`.
pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// Runs server `name` in this (child) process until it is killed.
pub fn serve(name: &str) {
    let kind = kind(name).unwrap_or_else(|| panic!("unknown server {name:?}"));
    if kind.one_core {
        pin_to(crate::SERVER_CPU);
    }
    (kind.serve)()
}

/// Binds 127.0.0.1:0 with a backlog of 1024 (as spindle and may listen; std's is 128) and
/// prints the address for the parent.
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
