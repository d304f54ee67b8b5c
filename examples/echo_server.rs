//! An echo server: one coroutine per connection, each a plain `read` / `write_all` loop.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000
//! cargo run --release --example echo_server -- --stack-report     # Ctrl-C prints the report
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000 --shards 2
//! ```
//!
//! Each connection gets a coroutine with a 32 KiB stack and a 4 KiB buffer on it, so 10,000
//! connections take about 10,000 * 8 KiB of touched memory. When `accept` fails because the
//! process is out of file descriptors (EMFILE/ENFILE) the server says so, sleeps 50 ms (its
//! connections go on being served meanwhile) and accepts again.
//!
//! With `--stack-report` the server prints, when it exits (Ctrl-C, SIGTERM, or after
//! `--connections N` connections have closed), how deep each connection's coroutine used its
//! stack ([`spindle::Coroutine::stack_used`]): the data to choose `CONNECTION_STACK` from.
//!
//! With `--shards N` it runs N copies of the same server, one runtime per OS thread
//! (`spindle::run_sharded`), each with a listener of its own bound to the one address with
//! `TcpListener::bind_reuseport`; the kernel spreads the connections over them. Shard 0 binds
//! first (so that port 0 picks one port for all), the others bind to its address, and once
//! all listen shard 0 prints `echo_server listening on ADDR with N shards`. (`--stack-report`
//! and `--connections` are for one shard.)

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use spindle::net::{TcpListener, TcpStream};

/// Stack of each connection's coroutine.
const CONNECTION_STACK: usize = 32 << 10;
/// Bytes read and echoed at a time, per connection.
const BUFFER: usize = 4096;
/// Name of the connections' coroutines (in reports, and to find them for the stack report).
const CONNECTION: &str = "conn";

const USAGE: &str =
    "usage: echo_server [--addr HOST:PORT] [--shards N] [--stack-report] [--connections N]
  --addr HOST:PORT  where to listen (default 127.0.0.1:7000)
  --shards N        N runtimes on N threads, sharing the port through SO_REUSEPORT (default 1)
  --stack-report    on exit (Ctrl-C, SIGTERM or --connections), print how deep the
                    connections' coroutines used their stacks
  --connections N   exit once N connections have closed";

struct Options {
    addr: String,
    shards: usize,
    stack_report: bool,
    connections: Option<usize>,
}

fn main() {
    let mut options = Options {
        addr: "127.0.0.1:7000".into(),
        shards: 1,
        stack_report: false,
        connections: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => {
                options.addr = args.next().expect("--addr needs a value, e.g. 127.0.0.1:7000")
            }
            "--shards" => {
                let n = args.next().and_then(|n| n.parse().ok()).filter(|&n: &usize| n > 0);
                options.shards = n.expect("--shards needs a count >= 1");
            }
            "--stack-report" => options.stack_report = true,
            "--connections" => {
                let n = args.next().and_then(|n| n.parse().ok());
                options.connections = Some(n.expect("--connections needs a number"));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => panic!("unknown argument {other:?}; try --help"),
        }
    }
    if options.shards > 1 {
        if options.stack_report || options.connections.is_some() {
            panic!("--stack-report and --connections are for one shard; drop --shards");
        }
        let bound = Arc::new(Bound::default());
        spindle::run_sharded(options.shards, |shard| serve_shard(shard, &options, &bound));
        return;
    }
    // Before the runtime starts any thread, so that every thread inherits the mask and the
    // signals wait for the one thread that asks for them (see `exit_on_signal`).
    let signals = options.stack_report.then(block_exit_signals);
    spindle::run(|| {
        let listener = TcpListener::bind(&options.addr)?;
        println!("echo_server listening on {}", listener.local_addr()?);
        serve(listener, &options, signals)
    })
    .unwrap_or_else(|e| fail(e));
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

/// One shard: shard 0 binds the address, the others bind to the address it got; shard 0 says
/// where the server listens once every shard does.
fn serve_shard(shard: usize, options: &Options, bound: &Arc<Bound>) {
    let listener = if shard == 0 {
        TcpListener::bind_reuseport(&options.addr)
    } else {
        let b = bound.clone();
        let at = spindle::unblock(move || b.wait(1));
        TcpListener::bind_reuseport(at)
    };
    let listener = listener.unwrap_or_else(|e| fail(e));
    let local = listener.local_addr().unwrap_or_else(|e| fail(e));
    bound.publish(local);
    if shard == 0 {
        let (b, shards) = (bound.clone(), options.shards);
        spindle::unblock(move || b.wait(shards));
        println!("echo_server listening on {local} with {shards} shards");
    }
    serve(listener, options, None).unwrap_or_else(|e| fail(e));
}

fn serve(
    listener: TcpListener,
    options: &Options,
    signals: Option<libc::sigset_t>,
) -> io::Result<()> {
    // The stack high-water marks of the connections that have closed.
    let marks: Rc<RefCell<Vec<usize>>> = Rc::default();
    if let Some(signals) = signals {
        let marks = marks.clone();
        spindle::Builder::new().daemon(true).spawn(move || exit_on_signal(signals, &marks))?;
    }
    let mut accepted = 0;
    while options.connections.is_none_or(|n| accepted < n) {
        match listener.accept() {
            Ok((conn, _peer)) => {
                accepted += 1;
                let marks = options.stack_report.then(|| marks.clone());
                spindle::Builder::new().name(CONNECTION).stack_size(CONNECTION_STACK).spawn(
                    move || {
                        echo(conn);
                        if let Some(marks) = marks {
                            marks.borrow_mut().push(spindle::current().stack_used());
                        }
                    },
                )?;
            }
            Err(e) if is_out_of_descriptors(&e) => {
                eprintln!("echo_server: accept: {e}; backing off for 50 ms");
                spindle::sleep(Duration::from_millis(50));
            }
            Err(e) => eprintln!("echo_server: accept: {e}"),
        }
    }
    // `--connections N`: wait for the last of them, then report.
    while spindle::coroutines().iter().any(|c| c.name() == Some(CONNECTION)) {
        spindle::sleep(Duration::from_millis(10));
    }
    if options.stack_report {
        print_stack_report(&marks.borrow());
    }
    Ok(())
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

/// Prints the high-water marks of the connections that closed (`finished`) and of those still
/// open, as a table of how many coroutines reached each depth.
fn print_stack_report(finished: &[usize]) {
    let open = spindle::coroutines();
    let open = open.iter().filter(|c| c.name() == Some(CONNECTION)).map(|c| c.stack_used());
    let marks: Vec<usize> = finished.iter().copied().chain(open).collect();
    let Some(&max) = marks.iter().max() else {
        println!("stack report: no connections");
        return;
    };
    let mut by_depth: BTreeMap<usize, usize> = BTreeMap::new();
    for &mark in &marks {
        *by_depth.entry(mark).or_default() += 1;
    }
    println!(
        "stack report: {} connection coroutines on {CONNECTION_STACK}-byte stacks; deepest {max} \
         bytes ({}% of the stack)",
        marks.len(),
        max * 100 / CONNECTION_STACK
    );
    println!("  {:>12}  {:>11}", "stack used", "coroutines");
    for (depth, count) in by_depth {
        println!("  {depth:>12}  {count:>11}");
    }
}

/// Blocks SIGINT and SIGTERM for this thread and the threads it will start; returns the set.
fn block_exit_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset fill in the set on this stack; pthread_sigmask only
    // changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits (on a blocking-pool thread) for one of `signals`, then prints the stack report and
/// exits.
fn exit_on_signal(signals: libc::sigset_t, marks: &RefCell<Vec<usize>>) {
    let signal = spindle::unblock(move || {
        let mut signal = 0;
        // SAFETY: `signals` is a valid set, blocked in every thread of the process (see main).
        unsafe { libc::sigwait(&signals, &mut signal) };
        signal
    });
    eprintln!("echo_server: signal {signal}, exiting");
    print_stack_report(&marks.borrow());
    std::process::exit(0);
}
