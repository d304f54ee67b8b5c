//! A load generator for an echo server, itself on spindle: one coroutine per connection, each
//! keeping one message in flight and checking every echoed byte.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000 &
//! cargo run --release --example echo_client -- --addr 127.0.0.1:7000 \
//!     --connections 50 --size 64 --duration 5
//! ```
//!
//! Prints round trips per second and the median (p50) and 99th-percentile latency of one
//! round trip. All connections are opened before the clock starts. The client uses a core of its
//! own: on a machine with few cores it competes with the server, and the figures then bound the
//! server's speed from below (pin them apart with `taskset -c 0` / `taskset -c 1`).

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use spindle::net::TcpStream;

struct Options {
    addr: String,
    connections: usize,
    size: usize,
    duration: Duration,
}

fn main() {
    let options = parse_args();
    let report = spindle::run(|| load(&options)).unwrap_or_else(|e| {
        eprintln!("echo_client: {e}");
        std::process::exit(1);
    });
    println!("{report}");
}

fn parse_args() -> Options {
    let mut o = Options {
        addr: "127.0.0.1:7000".into(),
        connections: 50,
        size: 64,
        duration: Duration::from_secs(5),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => o.addr = value(),
            "--connections" | "-c" => o.connections = value().parse().expect("a count"),
            "--size" | "-s" => o.size = value().parse().expect("a size in bytes"),
            "--duration" | "-d" => {
                o.duration = Duration::from_secs_f64(value().parse().expect("seconds"))
            }
            "-h" | "--help" => {
                println!(
                    "usage: echo_client [--addr HOST:PORT] [--connections N] [--size BYTES] \
                     [--duration SECONDS]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?}; try --help"),
        }
    }
    assert!(o.size > 0 && o.connections > 0, "--size and --connections must be positive");
    o
}

fn load(o: &Options) -> io::Result<String> {
    let mut streams = Vec::with_capacity(o.connections);
    for _ in 0..o.connections {
        let stream = TcpStream::connect(o.addr.as_str())?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    // Every connection echoes once before the clock starts.
    let start = Instant::now() + Duration::from_millis(1);
    let end = start + o.duration;
    let workers: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, stream)| {
            let size = o.size;
            spindle::Builder::new()
                .stack_size(32 << 10)
                .spawn(move || connection(i, stream, size, start, end))
                .expect("spawn a connection coroutine")
        })
        .collect();
    let mut latencies: Vec<u32> = Vec::new();
    for w in workers {
        latencies.extend(w.join().expect("a connection coroutine panicked")?);
    }
    latencies.sort_unstable();
    let seconds = o.duration.as_secs_f64();
    let percentile = |p: f64| {
        let at = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(at).copied().unwrap_or(0)
    };
    Ok(format!(
        "{} connections, {}-byte messages, {:.1} s: {:.0} req/s, p50 {} us, p99 {} us",
        o.connections,
        o.size,
        seconds,
        latencies.len() as f64 / seconds,
        percentile(0.50),
        percentile(0.99),
    ))
}

/// One connection's loop; returns the latency in microseconds of each timed round trip.
fn connection(
    id: usize,
    mut stream: TcpStream,
    size: usize,
    start: Instant,
    end: Instant,
) -> io::Result<Vec<u32>> {
    let mut out = vec![0u8; size];
    let mut back = vec![0u8; size];
    let mut latencies = Vec::new();
    for round in 0u64.. {
        let began = Instant::now();
        if began >= end {
            break;
        }
        let seed = (id as u64).wrapping_mul(31).wrapping_add(round);
        for (i, b) in out.iter_mut().enumerate() {
            *b = seed.wrapping_add(i as u64) as u8;
        }
        stream.write_all(&out)?;
        stream.read_exact(&mut back)?;
        if back != out {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("connection {id}: round {round} echoed different bytes"),
            ));
        }
        if began >= start {
            latencies.push(began.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
    }
    Ok(latencies)
}
