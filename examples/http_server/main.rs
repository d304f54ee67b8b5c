//! An HTTP/1.1 server on spindle: one coroutine per connection, requests parsed by `httparse`.
//!
//! ```text
//! cargo run --release --example http_server -- --addr 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/                # Hello, World! (TechEmpower plaintext)
//! curl -i 'http://127.0.0.1:8080/work?us=20'    # 20 us of CPU work
//! curl -i 'http://127.0.0.1:8080/sleep?ms=100'  # parks the connection's coroutine 100 ms
//! ```
//!
//! Keep-alive and pipelining (the answers to requests that arrived together leave in one
//! `write`), `Content-Length` bodies read and discarded, `400` and close on a malformed
//! request, `431` and close on a head over 8 KiB, clients dropped after `--read-timeout-ms`
//! without a whole head, and a graceful stop on SIGINT or SIGTERM: the server stops
//! accepting, finishes the requests in flight, then exits (a second signal exits at once).
//!
//! Flags: `--addr HOST:PORT` (default 127.0.0.1:8080; port 0 picks one, and the line printed
//! on start names it), `--read-timeout-ms N` (default 10000), `--shards N` (default 1): N
//! runtimes on N threads, each a whole server with its own listener on the one port
//! (`SO_REUSEPORT`, the kernel spreads the connections), all stopped by the one signal
//! (`server/shards.rs`).

#![warn(clippy::undocumented_unsafe_blocks)]

mod server;

use std::time::Duration;

use spindle::net::TcpListener;

fn main() {
    let mut addr = String::from("127.0.0.1:8080");
    let mut config = server::Config::default();
    let mut shards = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| {
            args.next().unwrap_or_else(|| usage_error(&format!("{arg} needs a value: {what}")))
        };
        match arg.as_str() {
            "--addr" => addr = value("HOST:PORT, e.g. 127.0.0.1:8080"),
            "--read-timeout-ms" => {
                let ms = value("milliseconds").parse().unwrap_or_else(|_| {
                    usage_error("--read-timeout-ms needs a whole number of milliseconds")
                });
                if ms == 0 {
                    usage_error("--read-timeout-ms must be at least 1");
                }
                config.read_timeout = Duration::from_millis(ms);
            }
            "--shards" => {
                shards =
                    value("a count").parse().ok().filter(|&n: &usize| n > 0).unwrap_or_else(|| {
                        usage_error("--shards needs a whole number of shards, at least 1")
                    });
            }
            "-h" | "--help" => {
                println!(
                    "usage: http_server [--addr HOST:PORT] [--read-timeout-ms N] [--shards N]\n\
                     (defaults: 127.0.0.1:8080, 10000 ms, 1 shard)"
                );
                return;
            }
            other => usage_error(&format!("unknown argument {other:?}")),
        }
    }
    let mut stops = match server::stop::on_signals(shards) {
        Ok(signals) => signals,
        Err(e) => fail(&format!("cannot install the SIGINT/SIGTERM handler: {e}")),
    };
    let served = if shards == 1 {
        let stop = stops.remove(0);
        spindle::run(move || {
            let listener = TcpListener::bind(&addr)?;
            println!("http_server listening on {}", listener.local_addr()?);
            server::serve(listener, config, stop)
        })
    } else {
        server::shards::run(&addr, &config, stops, |at| {
            println!("http_server listening on {at}");
            eprintln!("http_server: {shards} shards, one runtime each");
        })
    };
    match served {
        Ok(()) => println!("http_server stopped"),
        Err(e) => fail(&e.to_string()),
    }
}

fn usage_error(message: &str) -> ! {
    eprintln!("http_server: {message}; try --help");
    std::process::exit(2);
}

fn fail(message: &str) -> ! {
    eprintln!("http_server: {message}");
    std::process::exit(1);
}
