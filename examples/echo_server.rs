//! An echo server: one coroutine per connection, each a plain `read` / `write_all` loop.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000 --shards 2
//! ```
//!
//! With `--shards N` it runs N copies of the same server, one runtime per OS thread
//! (`spindle::run_sharded`), each with a listener of its own bound to the one address with
//! `TcpListener::bind_reuseport`; the kernel spreads the connections over them. Shard 0 binds
//! first (so that port 0 picks one port for all) and the others bind to its address.
//!
//! Each connection gets a coroutine with a 32 KiB stack and a 4 KiB buffer on it, so 10,000
//! connections take about 10,000 * 8 KiB of touched memory. When `accept` fails because the
//! process is out of file descriptors (EMFILE/ENFILE) the server says so, sleeps 50 ms (its
//! connections go on being served meanwhile) and accepts again.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use spindle::net::{TcpListener, TcpStream};

/// Stack of each connection's coroutine.
const CONNECTION_STACK: usize = 32 << 10;
/// Bytes read and echoed at a time, per connection.
const BUFFER: usize = 4096;

fn main() {
    let mut addr = String::from("127.0.0.1:7000");
    let mut shards = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().expect("--addr needs a value, e.g. 127.0.0.1:7000"),
            "--shards" => {
                let n = args.next().expect("--shards needs a count, e.g. 2");
                shards = n.parse().ok().filter(|&n: &usize| n > 0).expect("--shards: a count >= 1");
            }
            "-h" | "--help" => {
                println!(
                    "usage: echo_server [--addr HOST:PORT] [--shards N]   \
                     (default 127.0.0.1:7000, 1 shard)"
                );
                return;
            }
            other => panic!("unknown argument {other:?}; try --help"),
        }
    }
    if shards == 1 {
        spindle::run(|| {
            let listener = TcpListener::bind(&addr)?;
            println!("echo_server listening on {}", listener.local_addr()?);
            serve(listener)
        })
        .unwrap_or_else(|e| fail(e));
    } else {
        let bound = Arc::new(Bound::default());
        spindle::run_sharded(shards, |shard| serve_shard(shard, shards, &addr, &bound));
    }
}

fn fail(e: io::Error) -> ! {
    eprintln!("echo_server: {e}");
    std::process::exit(1);
}

/// The address the shards listen on (shard 0's) and how many listen on it.
#[derive(Default)]
struct Bound {
    state: Mutex<(Option<SocketAddr>, usize)>,
    changed: Condvar,
}

impl Bound {
    /// Records that one more shard listens on `addr`.
    fn publish(&self, addr: SocketAddr) {
        let mut state = self.state.lock().unwrap();
        *state = (Some(addr), state.1 + 1);
        self.changed.notify_all();
    }

    /// Waits until at least `shards` shards listen; returns their address. Blocks its thread,
    /// so a coroutine calls it inside `spindle::unblock`.
    fn wait(&self, shards: usize) -> SocketAddr {
        let state = self.changed.wait_while(self.state.lock().unwrap(), |s| s.1 < shards).unwrap();
        state.0.expect("shard 0 bound first")
    }
}

/// One shard: shard 0 binds `addr`, the others bind to the address it got; shard 0 says where
/// the server listens once every shard does.
fn serve_shard(shard: usize, shards: usize, addr: &str, bound: &Arc<Bound>) {
    let listener = if shard == 0 {
        TcpListener::bind_reuseport(addr)
    } else {
        let b = bound.clone();
        let at = spindle::unblock(move || b.wait(1));
        TcpListener::bind_reuseport(at)
    };
    let listener = listener.unwrap_or_else(|e| fail(e));
    let local = listener.local_addr().unwrap_or_else(|e| fail(e));
    bound.publish(local);
    if shard == 0 {
        let b = bound.clone();
        spindle::unblock(move || b.wait(shards));
        println!("echo_server listening on {local} with {shards} shards");
    }
    serve(listener).unwrap_or_else(|e| fail(e));
}

fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((conn, _peer)) => {
                spindle::Builder::new().stack_size(CONNECTION_STACK).spawn(move || echo(conn))?;
            }
            Err(e) if is_out_of_descriptors(&e) => {
                eprintln!("echo_server: accept: {e}; backing off for 50 ms");
                spindle::sleep(Duration::from_millis(50));
            }
            Err(e) => eprintln!("echo_server: accept: {e}"),
        }
    }
}

/// Echoes until the peer closes; a reset or other error just ends this connection.
fn echo(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = [0u8; BUFFER];
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

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}
