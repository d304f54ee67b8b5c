//! An HTTP/1.1 server on `spindle::net`, one coroutine per connection: the code of
//! `examples/http_server`, kept apart from its `main` so that the HTTP bench and tests compile
//! the very same server (`#[path = ".../http_server/server/mod.rs"] mod server;`).
//!
//! [`serve`] runs one server on the current runtime. [`shards::run`] runs one runtime per
//! core and calls it once on each, each with its own listener (bound with `SO_REUSEPORT`) and
//! its own [`stop::StopSignal`]; nothing here is shared between runtimes.
//!
//! * `shards.rs`: one runtime per core, all listening on one port;
//! * `connection.rs`: a connection's loop (keep-alive, pipelining, bodies, timeouts);
//! * `request.rs`: the request head, parsed by `httparse`;
//! * `routes.rs`: `/`, `/work?us=N`, `/sleep?ms=N`;
//! * `response.rs`: responses and the cached `Date` header;
//! * `timeouts.rs`: the read and write timeouts, kept by one sweep rather than a timer per read;
//! * `stop.rs`: SIGINT and SIGTERM through a self-pipe.
//!
//! `request`, `response` and `routes` are public for the HTTP bench, whose thread-per-connection
//! baseline parses and answers with the same code (so that it differs only in how it waits),
//! and whose other baselines do the same work per route.
//!
//! # Stopping
//!
//! When the stop signal arrives the server stops accepting (the listener closes; connections
//! still in its backlog are refused), closes every connection that is idle (waiting for the
//! first byte of its next request), and lets every other finish the request it is reading or
//! answering; that response carries `Connection: close`, and then the connection closes too.
//! `serve` returns once it stopped accepting; the runtime's `run` returns when the last
//! connection's coroutine has finished.

mod connection;
pub mod request;
pub mod response;
pub mod routes;
pub mod shards;
pub mod stop;
mod timeouts;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use slab::Slab;
use spindle::net::{TcpListener, TcpStream};

pub use stop::StopSignal;

/// Stack of each connection's coroutine: the default 64 KiB (the read buffer is on the heap;
/// a debug build's frames need more than the 32 KiB the echo server gets by with).
const CONNECTION_STACK: usize = 64 << 10;

/// A server's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a request head may take to arrive (from when the server began waiting for it,
    /// so it also bounds an idle keep-alive connection), and how long any one read of a body
    /// or write of responses may wait. A wait ends after it, never before, and at most a
    /// quarter of it (at most 1 s) later: see `timeouts.rs`.
    pub read_timeout: Duration,
    /// What the server calls itself in its messages on stderr: `http_server`, or with
    /// several shards `http_server shard 1 of 2`.
    pub name: String,
}

impl Default for Config {
    fn default() -> Config {
        Config { read_timeout: Duration::from_secs(10), name: "http_server".into() }
    }
}

/// What one runtime's server shares between its coroutines.
struct Server {
    config: Config,
    /// The `Date` header, refreshed once a second by a daemon coroutine.
    date: Rc<response::Date>,
    /// The timeout in ticks and the tick now, advanced by the sweep that enforces it.
    timeouts: timeouts::Timeouts,
    /// Set once when the stop signal arrives; read by each connection between requests.
    stopping: Cell<bool>,
    /// Connections accepted so far (said when the server stops).
    accepted: Cell<u64>,
    /// Every open connection, so that a stop can close the idle ones.
    connections: RefCell<Slab<Rc<Connection>>>,
}

/// An open connection, as the server's table sees it.
struct Connection {
    /// A handle to the connection's socket (shared with its coroutine, not a `dup`).
    stream: TcpStream,
    /// True while the coroutine waits for the first byte of a request: a stop may close it.
    idle: Cell<bool>,
    /// The tick at which the wait on the client now in progress began (for a request head,
    /// a piece of body, or room to write); `None` while the server is not waiting on the
    /// client. The sweep closes the connection once it has lasted past the timeout.
    waiting_since: Cell<Option<u64>>,
}

/// Serves HTTP on `listener`, one coroutine per connection, until `stop` fires; then stops
/// as the module docs say. Call it inside a spindle runtime.
pub fn serve(listener: TcpListener, config: Config, stop: StopSignal) -> io::Result<()> {
    let date = Rc::new(response::Date::new());
    let server = Rc::new(Server {
        timeouts: timeouts::Timeouts::new(config.read_timeout),
        config,
        date: date.clone(),
        stopping: Cell::new(false),
        accepted: Cell::new(0),
        connections: RefCell::new(Slab::new()),
    });
    spindle::Builder::new()
        .name("http date clock")
        .daemon(true)
        .spawn(move || response::keep_fresh(date))?;
    {
        let server = server.clone();
        spindle::Builder::new()
            .name("http timeout sweep")
            .daemon(true)
            .spawn(move || timeouts::sweep(server))?;
    }
    let listener = Rc::new(listener);
    {
        let (server, listener) = (server.clone(), listener.clone());
        spindle::Builder::new().name("http stop watcher").daemon(true).spawn(move || match stop
            .wait()
        {
            Ok(()) => begin_stop(&server, &listener),
            Err(e) => eprintln!("{}: cannot wait for stop signals: {e}", server.config.name),
        })?;
    }
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => open(&server, stream),
            Err(_) if server.stopping.get() => return Ok(()),
            Err(e) if is_out_of_descriptors(&e) => {
                eprintln!("{}: accept: {e}; backing off for 50 ms", server.config.name);
                spindle::sleep(Duration::from_millis(50));
            }
            Err(e) => eprintln!("{}: accept: {e}", server.config.name),
        }
    }
}

/// Enters `stream` in the table and starts its coroutine, which takes it out when it ends.
fn open(server: &Rc<Server>, stream: TcpStream) {
    server.accepted.set(server.accepted.get() + 1);
    let conn =
        Rc::new(Connection { stream, idle: Cell::new(false), waiting_since: Cell::new(None) });
    let key = server.connections.borrow_mut().insert(conn.clone());
    let entry = Entry { server: server.clone(), key };
    let spawned = spindle::Builder::new()
        .stack_size(CONNECTION_STACK)
        .spawn(move || connection::serve(&entry.server, &conn));
    if let Err(e) = spawned {
        // The closure, and with it the entry, was dropped: the connection closes.
        eprintln!("{}: cannot start a coroutine for a connection: {e}", server.config.name);
    }
}

/// A connection's place in the table, given up when its coroutine ends (or unwinds).
struct Entry {
    server: Rc<Server>,
    key: usize,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.server.connections.borrow_mut().remove(self.key);
    }
}

/// What the stop signal starts: no more connections, and the idle ones closed now.
fn begin_stop(server: &Server, listener: &TcpListener) {
    server.stopping.set(true);
    listener.close();
    let connections = server.connections.borrow();
    let mut idle = 0;
    for (_, conn) in connections.iter().filter(|(_, c)| c.idle.get()) {
        conn.stream.close();
        idle += 1;
    }
    eprintln!(
        "{}: stopping after {} connections: closed {idle} idle, finishing {} more",
        server.config.name,
        server.accepted.get(),
        connections.len() - idle
    );
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}
