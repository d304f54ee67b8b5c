//! A crawler in miniature: a pool of fetchers with per-request timeouts, against many local
//! TCP servers (all on loopback).
//!
//! `cargo run --example crawler -- --sites 12 --slow 3 --fetchers 4 --timeout-ms 200`
//!
//! Each "site" is a coroutine serving one page over TCP after a delay; `--slow` of them take
//! far longer than the timeout. A `Pool` keeps at most `--fetchers` requests in flight, and
//! `time::timeout` gives each request a deadline that covers connect, write and read alike
//! (gevent's `Timeout`): a slow site costs its fetcher the timeout, never the whole crawl.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use spindle::net::{TcpListener, TcpStream};
use spindle::pool::Pool;
use spindle::time::timeout;

struct Args {
    sites: usize,
    slow: usize,
    fetchers: usize,
    timeout: Duration,
}

fn args() -> Args {
    let mut a = Args { sites: 12, slow: 3, fetchers: 4, timeout: Duration::from_millis(200) };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--sites" => a.sites = v.parse().expect("--sites"),
            "--slow" => a.slow = v.parse().expect("--slow"),
            "--fetchers" => a.fetchers = v.parse().expect("--fetchers"),
            "--timeout-ms" => a.timeout = Duration::from_millis(v.parse().expect("--timeout-ms")),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// Starts a site that answers every request with its page after `delay`.
fn start_site(n: usize, delay: Duration) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    spindle::Builder::new()
        .name(format!("site {n}"))
        .daemon(true) // sites serve until the crawl is over
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                spindle::spawn(move || {
                    let mut request = [0u8; 64];
                    let _ = conn.read(&mut request);
                    spindle::sleep(delay);
                    let _ = conn.write_all(format!("page of site {n}\n").as_bytes());
                });
            }
        })?;
    Ok(addr)
}

fn fetch(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(b"GET /\n")?;
    let mut page = String::new();
    stream.read_to_string(&mut page)?;
    Ok(page)
}

fn main() {
    let args = args();
    spindle::run(|| {
        // Every `stride`-th site, `--slow` of them, answers ten times slower than the timeout.
        let stride = (args.sites / args.slow.max(1)).max(1);
        let sites: Vec<SocketAddr> = (0..args.sites)
            .map(|n| {
                let slow = args.slow > 0 && n % stride == 0 && n / stride < args.slow;
                let delay =
                    if slow { args.timeout * 10 } else { Duration::from_millis(5 + n as u64 % 20) };
                start_site(n, delay).expect("bind a loopback port")
            })
            .collect();

        let started = Instant::now();
        let pool = Pool::new(args.fetchers);
        let in_flight = Rc::new(std::cell::Cell::new((0usize, 0usize))); // (now, most)
        let limit = args.timeout;
        let flight = in_flight.clone();
        let results: Vec<_> = pool
            .map(sites.clone(), move |addr| {
                let (now, most) = flight.get();
                flight.set((now + 1, most.max(now + 1)));
                let result = timeout(limit, || fetch(addr));
                let (now, most) = flight.get();
                flight.set((now - 1, most));
                result
            })
            .collect();

        let (mut ok, mut timed_out, mut failed) = (0, 0, 0);
        for (addr, result) in sites.iter().zip(results) {
            match result.expect("fetchers do not panic") {
                Ok(Ok(page)) => {
                    ok += 1;
                    println!("{addr}: {}", page.trim_end());
                }
                Ok(Err(e)) => {
                    failed += 1;
                    println!("{addr}: error: {e}");
                }
                Err(_elapsed) => {
                    timed_out += 1;
                    println!("{addr}: timed out after {} ms", limit.as_millis());
                }
            }
        }
        println!(
            "fetched {ok} pages, {timed_out} timed out, {failed} failed; at most {} requests in \
             flight; took {} ms",
            in_flight.get().1,
            started.elapsed().as_millis()
        );
    });
}
