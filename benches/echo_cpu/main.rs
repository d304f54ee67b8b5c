//! The CPU-heavy echo benchmark: echo with about 20 µs of handler work per message, on one
//! and two threads, with the load generator on the same two cores.
//!
//! ```text
//! cargo bench --bench echo_cpu
//! SPINDLE_ECHO_CPU_ROUNDS=3 SPINDLE_ECHO_CPU_SERVERS=spindle-1,spindle-2 cargo bench --bench echo_cpu   # quick
//! ```
//!
//! Servers (`SPINDLE_ECHO_CPU_SERVERS`, default all but `spindle-pinned-2`):
//!
//! * `spindle-1`, `spindle-2`: `spindle::Shards` with 1 and 2 shards, each shard a runtime on
//!   its own thread with a listener of its own on the one port (`bind_reuseport`), one
//!   coroutine per connection; `spindle-pinned-2` is the same with each shard pinned to a core;
//! * `tokio-1`, `tokio-2`: tokio's multi-thread runtime with 1 and 2 worker threads, one task
//!   per connection;
//! * `may-1`, `may-2`: the `may` crate with 1 and 2 worker threads (its pinning of workers to
//!   cores turned off), one coroutine per connection.
//!
//! Every server runs the same handler: read, then for every 64-byte message the read
//! completed run `work::work` (FNV-1a rounds, calibrated at start to `SPINDLE_ECHO_CPU_WORK_US`
//! µs, default 20, on this machine; the calibration is printed), then write the bytes back.
//! The work runs on the thread that serves the connection, as a handler that does not hand
//! it to a pool would.
//!
//! # How it measures
//!
//! With the rig of the echo bench (`benches/echo/rig.rs`, `load.rs`): each server in a child
//! process of its own with a load generator of its own (the same single-threaded mio client:
//! 64-byte messages, one in flight per connection, every byte checked), all started once with
//! their connections open; then rounds, in each of which every server in turn runs a 0.3 s
//! warm-up and a timed window while the others sit idle, the order rotating. Unlike the echo
//! bench nothing is pinned: the server's threads and the load generator share both cores and
//! the kernel places them, so a server with two threads competes with its own load for the
//! second core. The table says how much of the two cores each took.
//!
//! Environment: `SPINDLE_ECHO_CPU_SECS` (window, default 0.5), `SPINDLE_ECHO_CPU_ROUNDS`
//! (default 15), `SPINDLE_ECHO_CPU_CONNS` (default 150), `SPINDLE_ECHO_CPU_WORK_US` (default
//! 20), `SPINDLE_ECHO_CPU_SERVERS`.

#[path = "../echo/load.rs"]
mod load;
#[path = "../echo/os.rs"]
mod os;
#[path = "../echo/rig.rs"]
mod rig;
mod servers;
#[path = "../echo/stats.rs"]
mod stats;
mod table;
mod work;

use std::time::{Duration, Instant};

use os::{online_cpus, raise_fd_limit};
use rig::{Measurement, Rig, LOAD_ENV, SERVE_ENV};

const SERVERS: &str = "spindle-1,spindle-2,tokio-1,tokio-2,may-1,may-2";

fn main() {
    if let Ok(spec) = std::env::var(SERVE_ENV) {
        raise_fd_limit();
        servers::serve(&spec);
        return;
    }
    if let Ok(spec) = std::env::var(LOAD_ENV) {
        raise_fd_limit();
        load::load_process(&spec);
        return;
    }
    compare();
}

fn compare() {
    let secs: f64 = env_or("SPINDLE_ECHO_CPU_SECS", "0.5").parse().expect("SPINDLE_ECHO_CPU_SECS");
    let rounds: usize =
        env_or("SPINDLE_ECHO_CPU_ROUNDS", "15").parse().expect("SPINDLE_ECHO_CPU_ROUNDS: a count");
    let conns: usize =
        env_or("SPINDLE_ECHO_CPU_CONNS", "150").parse().expect("SPINDLE_ECHO_CPU_CONNS: a count");
    let work_us: f64 =
        env_or("SPINDLE_ECHO_CPU_WORK_US", "20").parse().expect("SPINDLE_ECHO_CPU_WORK_US: µs");
    let servers: Vec<String> = env_or("SPINDLE_ECHO_CPU_SERVERS", SERVERS)
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let window = Duration::from_secs_f64(secs);
    raise_fd_limit();

    let calibration = work::calibrate(Duration::from_secs_f64(work_us * 1e-6));
    println!(
        "echo_cpu: work per message = {} rounds of FNV-1a over 64 bytes: {:.1} us alone, {:.1} us \
         on each of two threads at once",
        calibration.rounds,
        calibration.alone.as_secs_f64() * 1e6,
        calibration.both_cores.as_secs_f64() * 1e6
    );
    println!(
        "echo_cpu: {conns} connections, {}-byte messages, one in flight per connection, {rounds} \
         rounds of {secs} s per server, order rotating; servers and their load generators share \
         all {} CPUs, unpinned",
        load::MESSAGE,
        online_cpus()
    );

    let mut rigs: Vec<Option<Rig>> = servers
        .iter()
        .map(|kind| {
            let started = Instant::now();
            match Rig::start(&format!("{kind} {}", calibration.rounds), conns) {
                Ok(rig) => {
                    println!(
                        "{kind:>16}: connected and checked in {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    Some(rig)
                }
                Err(e) => {
                    println!("{kind:>16}: failed to start: {e}");
                    None
                }
            }
        })
        .collect();
    // runs[server][round], `None` where that server had failed.
    let mut runs: Vec<Vec<Option<Measurement>>> = vec![Vec::new(); servers.len()];
    for round in 0..rounds {
        let mut measured = vec![None; servers.len()];
        for k in 0..servers.len() {
            let i = (round + k) % servers.len();
            let Some(rig) = &mut rigs[i] else { continue };
            match rig.measure(window) {
                Ok(m) => {
                    let secs = m.elapsed().as_secs_f64();
                    println!(
                        "round {:>2}: {:>16}: {:>7.0} msgs/s, server {:.2} cores, load generator \
                         {:.2} cores, other processes {:.2} cores",
                        round + 1,
                        servers[i],
                        m.rate,
                        m.cpu.as_secs_f64() / secs,
                        m.load_cpu.as_secs_f64() / secs,
                        table::others(&m).as_secs_f64() / secs
                    );
                    measured[i] = Some(m);
                }
                Err(e) => {
                    println!("round {:>2}: {:>16}: failed: {e}", round + 1, servers[i]);
                    rigs[i] = None;
                }
            }
        }
        for (run, m) in runs.iter_mut().zip(measured) {
            run.push(m);
        }
    }
    drop(rigs);
    table::print_table(&servers, &runs, rounds, calibration.alone);
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}
