//! The HTTP benchmark: wrk against spindle's HTTP server and its baselines, in one run.
//!
//! ```text
//! cargo bench --bench http                     # 7 servers, 3 routes, 2 counts, 3 rounds: ~6 min
//! SPINDLE_HTTP_SERVERS=spindle,hyper-ct SPINDLE_HTTP_ROUNDS=1 cargo bench --bench http  # quick
//! ```
//!
//! Servers (`SPINDLE_HTTP_SERVERS`, names in brackets):
//!
//! * spindle's server: the code of `examples/http_server` itself, one runtime (`spindle`) and
//!   one runtime per core with 2 shards (`spindle2`, as `http_server --shards 2`);
//! * `may_minihttp` on the `may` crate's coroutines with 1 worker (`may1`) and 2 (`may2`);
//! * tokio + hyper 1, current-thread (`hyper-ct`) and multi-thread with 2 workers
//!   (`hyper-mt2`);
//! * a thread per connection on `std::net` (`threads`), with the example's parser and routes.
//!
//! Each server runs in a child process of its own (this binary again, with
//! `SPINDLE_HTTP_SERVE` set), started once for the whole run. Routes `/` (TechEmpower's
//! plaintext "Hello, World!"), `/@16` and `/work?us=20` (20 µs of CPU per request, the same spin in
//! every server), at 50 and 1,000 connections (`SPINDLE_HTTP_ROUTES`, `SPINDLE_HTTP_CONNS`).
//! `/@16` is `/` with 16 requests pipelined per write, as TechEmpower's plaintext test sends
//! them (a wrk script): there wrk's one thread does a sixteenth of the system calls per request
//! and the server, not the client, is the limit. Each measurement is one
//! `wrk -t1 -cN -dSs --latency` run (`SPINDLE_HTTP_SECS`, whole seconds, default 2); in each
//! of `SPINDLE_HTTP_ROUNDS` rounds (default 3) every server gets one run per route and count,
//! the order rotating from round to round, after a 1 s warm-up run of each server per route
//! and count.
//!
//! Pinning, on a machine with two CPUs or more: servers that run on one thread (spindle's 1 shard,
//! may_minihttp with 1 worker, hyper current-thread, and the thread-per-connection server,
//! all of whose threads are pinned together) are pinned to CPU 0 with `sched_setaffinity`;
//! wrk runs on CPU 1 (`taskset -c 1`). The two-worker servers (and spindle's 2 shards, not
//! pinned per shard) get both CPUs and so share one with wrk. On one CPU nothing is pinned.
//! The output says which applied.
//!
//! Reported: requests per second, wrk's p50 and p99 latency, the server process's CPU time
//! (user + system, from `/proc/<pid>/stat`) per request, errors (socket errors and non-2xx
//! answers), all as medians over rounds, and the ratio of req/s to may_minihttp with one
//! worker, to hyper current-thread and to spindle's 1 shard, taken within each round. When
//! wrk's core is saturated (it is one thread) req/s bounds a fast server from below and CPU
//! per request is the fairer figure. It writes an SVG of req/s per server to
//! `target/http_bench.svg` (`SPINDLE_HTTP_SVG` to change).
//!
//! Needs `wrk`: when it is missing the bench runs `apt-get install -y wrk`; if that fails it
//! says how to install it and exits successfully (CI only builds the benches).

#[path = "../echo/os.rs"]
mod os;
mod plot;
#[allow(dead_code)] // the bench uses the server's parts, not all of its surface
#[path = "../../examples/http_server/server/mod.rs"]
mod server;
mod servers;
#[path = "../echo/stats.rs"]
mod stats;
mod table;
mod wrk;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use os::{online_cpus, process_cpu, raise_fd_limit};
use table::{Measurement, Row};

/// Where single-threaded servers run.
pub const SERVER_CPU: usize = 0;
/// Where wrk runs.
const WRK_CPU: usize = 1;
/// Set in a child that is to serve: the server's name (see `servers::KINDS`).
const SERVE_ENV: &str = "SPINDLE_HTTP_SERVE";

fn main() {
    if let Ok(kind) = std::env::var(SERVE_ENV) {
        raise_fd_limit();
        servers::serve(&kind);
        return;
    }
    if !wrk::ensure_installed() {
        println!(
            "http: wrk is not installed and `apt-get install -y wrk` did not work. Install it \
             (Debian and Ubuntu: `sudo apt-get install wrk`; elsewhere build it from its \
             sources) and run `cargo bench --bench http` again. Nothing measured."
        );
        return;
    }
    compare();
}

/// A server child process, killed when dropped.
struct Server {
    kind: &'static servers::Kind,
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(kind: &'static servers::Kind) -> Result<Server, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .env(SERVE_ENV, kind.name)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", kind.name))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
        let addr = line.trim().parse().map_err(|_| format!("{} printed {line:?}", kind.name))?;
        Ok(Server { kind, child, addr })
    }

    /// One wrk run against `route` with `conns` connections, and the server's CPU over it.
    fn measure(
        &self,
        route: &str,
        conns: usize,
        secs: u64,
        wrk_cpu: Option<usize>,
    ) -> Result<Measurement, String> {
        let (path, depth) = split_depth(route)?;
        let url = format!("http://{}{path}", self.addr);
        let (user0, system0) = process_cpu(self.child.id());
        let report = wrk::run(&url, conns, secs, wrk_cpu, depth)?;
        let (user1, system1) = process_cpu(self.child.id());
        if report.requests == 0.0 {
            return Err(format!("no request answered in {secs} s"));
        }
        Ok(Measurement { report, cpu: (user1 + system1).saturating_sub(user0 + system0) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn compare() {
    // Whole seconds: wrk refuses a fraction (`-d0.5s` prints its usage and measures nothing).
    let secs: u64 = env_or("SPINDLE_HTTP_SECS", "2")
        .parse()
        .ok()
        .filter(|&s| s > 0)
        .expect("SPINDLE_HTTP_SECS: a whole number of seconds, at least 1");
    let rounds: usize = env_or("SPINDLE_HTTP_ROUNDS", "3").parse().expect("SPINDLE_HTTP_ROUNDS");
    let counts: Vec<usize> = list("SPINDLE_HTTP_CONNS", "50,1000")
        .iter()
        .map(|c| c.parse().expect("SPINDLE_HTTP_CONNS: counts"))
        .collect();
    let routes = list("SPINDLE_HTTP_ROUTES", "/,/@16,/work?us=20");
    let all: Vec<&str> = servers::KINDS.iter().map(|k| k.name).collect();
    let kinds: Vec<&'static servers::Kind> = list("SPINDLE_HTTP_SERVERS", &all.join(","))
        .iter()
        .map(|n| servers::kind(n).unwrap_or_else(|| panic!("unknown server {n:?}; try {all:?}")))
        .collect();
    let limit = raise_fd_limit();
    let cpus = online_cpus();
    let wrk_cpu = (cpus >= 2 && wrk::taskset_available()).then_some(WRK_CPU);
    match wrk_cpu {
        Some(cpu) => println!(
            "http: {cpus} CPUs; one-thread servers pinned to CPU {SERVER_CPU} \
             (sched_setaffinity), wrk -t1 pinned to CPU {cpu} (taskset -c {cpu}); two-worker \
             servers on both CPUs, sharing one with wrk"
        ),
        None => println!("http: {cpus} CPU(s) or no taskset: wrk is not pinned"),
    }
    println!(
        "http: {rounds} rounds of one {secs} s wrk run per server, route and count, order \
         rotating; descriptor limit {limit}"
    );

    let started: Vec<Option<Server>> = kinds
        .iter()
        .map(|&kind| match Server::start(kind) {
            Ok(server) => Some(server),
            Err(e) => {
                println!("{:>10}: failed to start: {e}", kind.name);
                None
            }
        })
        .collect();
    let mut rows = Vec::new();
    let mut groups = Vec::new();
    let mut bars: Vec<plot::Series> = kinds
        .iter()
        .map(|k| plot::Series { label: k.label.to_string(), values: Vec::new() })
        .collect();
    for route in &routes {
        for &conns in &counts {
            if conns as u64 + 64 > limit {
                println!("{conns} connections: skipped, the descriptor limit is {limit}");
                continue;
            }
            // Warm-up: connections (threads, coroutines, stacks), pages and caches.
            for server in started.iter().flatten() {
                if let Err(e) = server.measure(route, conns, 1, wrk_cpu) {
                    println!("{:>10}: warm-up: {e}", server.kind.name);
                }
            }
            // runs[server][round]
            let mut runs: Vec<Vec<Option<Measurement>>> = vec![Vec::new(); kinds.len()];
            for round in 0..rounds {
                for k in 0..kinds.len() {
                    let i = (round + k) % kinds.len();
                    let Some(server) = &started[i] else {
                        runs[i].push(None);
                        continue;
                    };
                    let m = server.measure(route, conns, secs, wrk_cpu);
                    match &m {
                        Ok(m) => println!(
                            "round {}: {:>10} {route:<13} {conns:>5} conns: {:>8.0} req/s, p50 \
                             {:>7} ms, p99 {:>7} ms, {:>5.2} µs CPU per request, {} errors",
                            round + 1,
                            server.kind.name,
                            m.report.rate(),
                            ms(m.report.p50),
                            ms(m.report.p99),
                            m.cpu_per_request_us(),
                            m.report.errors
                        ),
                        Err(e) => println!("round {}: {:>10}: {e}", round + 1, server.kind.name),
                    }
                    runs[i].push(m.ok());
                }
            }
            let by_name =
                |name: &str| kinds.iter().position(|k| k.name == name).map(|i| runs[i].as_slice());
            groups.push(format!("{route}, {conns} conns"));
            for (i, kind) in kinds.iter().enumerate() {
                let pinning = match (wrk_cpu, kind.one_core) {
                    (Some(_), true) => "1 (CPU 0)",
                    (Some(_), false) => "2 (with wrk)",
                    (None, _) => "unpinned",
                };
                let baselines: Vec<_> =
                    table::BASELINES.iter().map(|(name, _)| by_name(name)).collect();
                let row = Row::of(route, conns, kind.label, pinning, &runs[i], &baselines);
                bars[i].values.push(row.rate);
                rows.push(row);
            }
        }
    }
    drop(started);
    wrk::remove_pipeline_script();
    table::print(&rows, rounds);

    let svg = std::env::var_os("SPINDLE_HTTP_SVG").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or("target".into(), PathBuf::from);
        target.join("http_bench.svg")
    });
    let title = format!("HTTP/1.1, wrk -t1 against each server: req/s (median of {rounds} runs)");
    match plot::grouped_bars(&svg, &title, &groups, &bars) {
        Ok(()) => println!("plot: {}", svg.display()),
        Err(e) => println!("plot: cannot write {}: {e}", svg.display()),
    }
}

/// A latency in milliseconds, `-` where wrk's figure is not used.
fn ms(latency: Option<std::time::Duration>) -> String {
    latency.map_or("-".into(), |l| format!("{:.2}", l.as_secs_f64() * 1e3))
}

/// A route of `SPINDLE_HTTP_ROUTES` as a path and how many requests wrk pipelines per write:
/// `/work?us=20` is one at a time, `/@16` is `/` sixteen at a time.
fn split_depth(route: &str) -> Result<(&str, usize), String> {
    match route.rsplit_once('@') {
        None => Ok((route, 1)),
        Some((path, depth)) => match depth.parse() {
            Ok(depth @ 1..=1024) => Ok((path, depth)),
            _ => Err(format!("{route:?}: the pipelining depth after `@` is 1 to 1024")),
        },
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// A comma-separated list from the environment.
fn list(name: &str, default: &str) -> Vec<String> {
    env_or(name, default)
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
