//! An echo server: one coroutine per connection, each a plain `read` / `write_all` loop.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000
//! ```
//!
//! Each connection gets a coroutine with a 32 KiB stack and a 4 KiB buffer on it, so 10,000
//! connections take about 10,000 * 8 KiB of touched memory. When `accept` fails because the
//! process is out of file descriptors (EMFILE/ENFILE) the server says so, sleeps 50 ms (its
//! connections go on being served meanwhile) and accepts again.

use std::io::{self, Read, Write};
use std::time::Duration;

use spindle::net::{TcpListener, TcpStream};

/// Stack of each connection's coroutine.
const CONNECTION_STACK: usize = 32 << 10;
/// Bytes read and echoed at a time, per connection.
const BUFFER: usize = 4096;

fn main() {
    let mut addr = String::from("127.0.0.1:7000");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().expect("--addr needs a value, e.g. 127.0.0.1:7000"),
            "-h" | "--help" => {
                println!("usage: echo_server [--addr HOST:PORT]   (default 127.0.0.1:7000)");
                return;
            }
            other => panic!("unknown argument {other:?}; try --help"),
        }
    }
    spindle::run(|| serve(&addr)).unwrap_or_else(|e| {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    });
}

fn serve(addr: &str) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    println!("echo_server listening on {}", listener.local_addr()?);
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
