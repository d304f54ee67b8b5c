//! The servers under test, each in its own child process, none pinned (but for
//! `spindle-pinned-N`): spindle on N shards,
//! tokio's multi-thread runtime with N workers, may with N workers. Each binds 127.0.0.1:0,
//! prints its address on stdout for the parent, and echoes every connection until EOF, doing
//! `work::work` once for every 64-byte message before echoing it.

use std::cell::Cell;
use std::hint::black_box;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::load::MESSAGE;
use crate::work::work;

/// Stack of each spindle connection coroutine (as in `examples/echo_server.rs`).
const CONNECTION_STACK: usize = 32 << 10;

/// Runs the server `spec` names ("KIND ROUNDS", the value of `SPINDLE_ECHO_SERVE`) until the
/// parent kills it. Kinds: `spindle-N`, `spindle-pinned-N` (each shard pinned to a core),
/// `tokio-N`, `may-N`.
pub fn serve(spec: &str) {
    let (kind, rounds) = spec.split_once(' ').expect("SPINDLE_ECHO_SERVE: KIND ROUNDS");
    let rounds: u32 = rounds.parse().expect("SPINDLE_ECHO_SERVE: rounds");
    let (name, threads) = kind.rsplit_once('-').expect("a kind is NAME-THREADS");
    let threads: usize = threads.parse().expect("a kind is NAME-THREADS");
    match name {
        "spindle" => spindle_server(threads, false, rounds),
        "spindle-pinned" => spindle_server(threads, true, rounds),
        "tokio" => tokio_server(threads, rounds),
        "may" => may_server(threads, rounds),
        other => panic!("unknown server {other:?}"),
    }
}

/// Prints the server's address on stdout, where the parent waits for it.
fn announce(addr: SocketAddr) {
    let mut out = io::stdout();
    writeln!(out, "{addr}").and_then(|()| out.flush()).expect("tell the parent the address");
}

/// Counts whole 64-byte messages in a byte stream that carries one at a time.
#[derive(Default)]
struct Messages {
    /// Bytes of the current message received so far.
    partial: usize,
}

impl Messages {
    /// `n` more bytes arrived: how many messages they completed.
    fn completed(&mut self, n: usize) -> usize {
        self.partial += n;
        let whole = self.partial / MESSAGE;
        self.partial %= MESSAGE;
        whole
    }
}

/// The connection loop of the spindle and may servers: read, do the work of every message the
/// read completed, write the bytes back; until EOF or an error.
fn echo_working(mut conn: impl Read + Write, rounds: u32) {
    let mut buf = [0u8; 4096];
    let mut messages = Messages::default();
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for _ in 0..messages.completed(n) {
            black_box(work(buf[0], rounds));
        }
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// spindle: `Shards` of `shards` runtimes, each accepting on its own listener bound to one
/// port with `bind_reuseport`, one coroutine per connection. Shard 0 binds first and hands
/// the address to the others over an `mpmc` channel; once all listen it announces it. Each
/// shard says on stderr how many connections it got, once that count has settled.
fn spindle_server(shards: usize, pinned: bool, rounds: u32) {
    use spindle::net::TcpListener;
    use spindle::sync::mpmc;

    let (address_tx, address_rx) = mpmc::unbounded::<SocketAddr>();
    let (bound_tx, bound_rx) = mpmc::unbounded::<()>();
    let runtime = spindle::RuntimeBuilder::new().stack_size(CONNECTION_STACK);
    let sharded = spindle::Shards::new(shards).runtime(runtime).pin_to_cores(pinned);
    let served = sharded.run(|shard| {
        let listener = if shard == 0 {
            let listener = TcpListener::bind_reuseport("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            for _ in 1..shards {
                address_tx.send(addr).expect("the other shards wait for the address");
            }
            for _ in 1..shards {
                bound_rx.recv().expect("every shard binds");
            }
            announce(addr);
            listener
        } else {
            let addr = address_rx.recv().expect("shard 0 binds first");
            let listener = TcpListener::bind_reuseport(addr).expect("bind to shard 0's port");
            bound_tx.send(()).expect("shard 0 waits for the others");
            listener
        };
        let accepted = Rc::new(Cell::new(0usize));
        if shards > 1 {
            let accepted = accepted.clone();
            spindle::Builder::new()
                .daemon(true)
                .spawn(move || report_when_settled(shard, &accepted))
                .expect("spawn");
        }
        loop {
            match listener.accept() {
                Ok((conn, _)) => {
                    accepted.set(accepted.get() + 1);
                    let _ = conn.set_nodelay(true);
                    spindle::spawn(move || echo_working(conn, rounds));
                }
                Err(_) => spindle::sleep(Duration::from_millis(50)),
            }
        }
    });
    served.expect("start the shards");
}

/// Prints `accepted` on stderr whenever it has changed and then stayed the same for a second.
fn report_when_settled(shard: usize, accepted: &Cell<usize>) {
    let (mut seen, mut reported) = (0, 0);
    loop {
        spindle::sleep(Duration::from_secs(1));
        let now = accepted.get();
        if now == seen && now != reported {
            eprintln!("  spindle shard {shard}: {now} connections");
            reported = now;
        }
        seen = now;
    }
}

/// tokio: the multi-thread runtime with `workers` workers, one task per connection. The work
/// runs inside the task, as a CPU-heavy handler written without `spawn_blocking` would.
fn tokio_server(workers: usize, rounds: u32) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_io()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        announce(listener.local_addr().expect("local_addr"));
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let _ = conn.set_nodelay(true);
                let mut buf = [0u8; 4096];
                let mut messages = Messages::default();
                loop {
                    let n = match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    for _ in 0..messages.completed(n) {
                        black_box(work(buf[0], rounds));
                    }
                    if conn.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// may: `workers` worker threads (not pinned, as the others are not; may pins by default),
/// one coroutine per connection, the same `echo_working` loop.
fn may_server(workers: usize, rounds: u32) {
    may::config().set_workers(workers);
    may::config().set_worker_pin(false);
    let listener = may::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    announce(listener.local_addr().expect("local_addr"));
    let acceptor = may::go!(move || loop {
        match listener.accept() {
            Ok((conn, _)) => {
                let _ = conn.set_nodelay(true);
                may::go!(move || echo_working(conn, rounds));
            }
            Err(_) => may::coroutine::sleep(Duration::from_millis(50)),
        }
    });
    let _ = acceptor.join();
}
