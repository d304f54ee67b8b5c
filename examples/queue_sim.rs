//! The task queue of the tutorial as an M/M/c queue, simulated in virtual time: customers
//! arrive at random (a Poisson process of rate λ), wait in a channel, and `c` server coroutines
//! take them first come, first served, each serving for an exponential time of rate μ. The
//! measured mean and 99th-percentile wait in the queue are printed next to what queueing theory
//! predicts (the Erlang C formula, Erlang 1917), for c = 1 to 4 servers.
//!
//! Sleeps take no real time (`virtual_time(true)`): hours of simulated queue run in a fraction
//! of a second, and with a seed (`--seed`) the run is the same every time, down to the trace file
//! (`--trace PATH` writes the run of the last row as Chrome trace-event JSON, for
//! ui.perfetto.dev; keep `--customers` small then, a customer costs about 1 KB of trace).
//!
//! ```text
//! cargo run --release --example queue_sim
//! cargo run --example queue_sim -- --workers 2 --customers 200 --trace /tmp/queue.json
//! ```
//!
//! Flags: `--arrival-rate λ` (per second, default 0.8), `--service-rate μ` (per second and
//! server, default 1), `--workers 1,2,3,4`, `--customers N` (per row, default 200000; the first
//! tenth, while the queue fills from empty, is not counted), `--seed S` (default 1).

use std::path::PathBuf;
use std::time::Duration;

use spindle::sync::channel;
use spindle::time;

struct Args {
    arrival_rate: f64,
    service_rate: f64,
    workers: Vec<usize>,
    customers: usize,
    seed: u64,
    trace: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        arrival_rate: 0.8,
        service_rate: 1.0,
        workers: vec![1, 2, 3, 4],
        customers: 200_000,
        seed: 1,
        trace: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--arrival-rate" => a.arrival_rate = v.parse().expect("--arrival-rate: a number"),
            "--service-rate" => a.service_rate = v.parse().expect("--service-rate: a number"),
            "--workers" => {
                a.workers = v.split(',').map(|w| w.parse().expect("--workers: 1,2,3")).collect()
            }
            "--customers" => a.customers = v.parse().expect("--customers: a count"),
            "--seed" => a.seed = v.parse().expect("--seed: a number"),
            "--trace" => a.trace = Some(PathBuf::from(v)),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(a.arrival_rate > 0.0 && a.service_rate > 0.0, "rates are positive");
    assert!(a.customers >= 10, "--customers: at least 10");
    a
}

/// splitmix64: a small, seeded generator, so that the example needs no crate for it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// An exponential time of `rate` per second.
    fn exponential(&mut self, rate: f64) -> Duration {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64; // in [0, 1)
        Duration::from_secs_f64(-(1.0 - u).ln() / rate)
    }
}

/// A customer: when it joined the queue, and how long its service will take.
struct Customer {
    arrived: std::time::Instant,
    service: Duration,
}

/// Runs the queue with `servers` servers until `customers` have been served; returns each
/// customer's wait in the queue, in seconds, in order of arrival.
fn simulate(args: &Args, servers: usize, trace: Option<&PathBuf>) -> Vec<f64> {
    let mut builder = spindle::Runtime::builder().seed(args.seed).virtual_time(true);
    if let Some(path) = trace {
        builder = builder.trace(path);
    }
    let (lambda, mu, customers) = (args.arrival_rate, args.service_rate, args.customers);
    let mut rng = Rng(args.seed);
    builder.build().unwrap().run(move || {
        let (queue, waiting) = channel::unbounded::<Customer>();
        let (served, waits) = channel::unbounded::<f64>();
        let servers: Vec<_> = (0..servers)
            .map(|s| {
                let (waiting, served) = (waiting.clone(), served.clone());
                spindle::Builder::new()
                    .name(format!("server {s}"))
                    .spawn(move || {
                        // First come, first served: the channel hands customers out in order.
                        for customer in waiting.iter() {
                            let wait = time::now() - customer.arrived;
                            served.send(wait.as_secs_f64()).unwrap();
                            spindle::sleep(customer.service);
                        }
                    })
                    .unwrap()
            })
            .collect();
        drop((waiting, served));
        let arrivals = spindle::Builder::new()
            .name("arrivals")
            .spawn(move || {
                for _ in 0..customers {
                    spindle::sleep(rng.exponential(lambda));
                    let service = rng.exponential(mu);
                    queue.send(Customer { arrived: time::now(), service }).unwrap();
                }
                // Dropping the sender ends the servers' loops once the queue is empty.
            })
            .unwrap();
        let waits: Vec<f64> = waits.iter().collect();
        arrivals.join().unwrap();
        servers.into_iter().for_each(|s| s.join().unwrap());
        waits
    })
}

/// The Erlang C prediction for `c` servers: the probability that a customer waits, and the
/// mean and 99th-percentile wait in the queue (seconds).
fn erlang_c(lambda: f64, mu: f64, c: usize) -> (f64, f64, f64) {
    let a = lambda / mu; // offered load, in servers
    assert!(a < c as f64, "λ/μ = {a} needs more than {c} servers to be stable");
    let mut term = 1.0; // a^k / k!
    let mut below = 0.0; // sum over k < c
    for k in 0..c {
        below += term;
        term *= a / (k + 1) as f64;
    }
    let queued = term * c as f64 / (c as f64 - a);
    let p_wait = queued / (below + queued);
    // The wait of a customer who waits is exponential of rate cμ - λ.
    let rate = c as f64 * mu - lambda;
    let p99 = if p_wait <= 0.01 { 0.0 } else { (p_wait / 0.01).ln() / rate };
    (p_wait, p_wait / rate, p99)
}

fn main() {
    let args = args();
    let counted = args.customers - args.customers / 10;
    println!(
        "M/M/c queue in virtual time: λ = {}/s, μ = {}/s per server, {} customers per row \
         ({} counted), seed {}",
        args.arrival_rate, args.service_rate, args.customers, counted, args.seed
    );
    let last = args.workers.len().saturating_sub(1);
    for (row, &c) in args.workers.iter().enumerate() {
        let trace = if row == last { args.trace.as_ref() } else { None };
        let started = std::time::Instant::now();
        let all = simulate(&args, c, trace);
        let elapsed = started.elapsed();
        let mut waits = all[args.customers / 10..].to_vec();
        let mean = waits.iter().sum::<f64>() / waits.len() as f64;
        let waited = waits.iter().filter(|&&w| w > 0.0).count() as f64 / waits.len() as f64;
        waits.sort_by(f64::total_cmp);
        let p99 = waits[(waits.len() * 99).div_ceil(100) - 1];
        let (p_wait, mean_c, p99_c) = erlang_c(args.arrival_rate, args.service_rate, c);
        println!(
            "c={c} load {:.3}: waited {:.3} (Erlang C {:.3}); mean wait {mean:.4} s \
             (Erlang C {mean_c:.4} s); p99 wait {p99:.3} s (Erlang C {p99_c:.3} s); \
             {:.0} ms real",
            args.arrival_rate / (c as f64 * args.service_rate),
            waited,
            p_wait,
            elapsed.as_secs_f64() * 1e3
        );
    }
    if let Some(path) = &args.trace {
        println!("trace of the c={} run written to {}", args.workers[last], path.display());
    }
}
