//! The echo benchmark: one load, five servers, one table.
//!
//! ```text
//! cargo bench --bench echo
//! SPINDLE_ECHO_ROUNDS=3 SPINDLE_ECHO_CONNS=50,2000 SPINDLE_ECHO_SERVERS=mio,spindle,tokio cargo bench --bench echo   # quick
//! ```
//!
//! Servers:
//!
//! * `mio`: a hand-written single-threaded mio event loop, the ceiling for one thread;
//! * `spindle`: the same code as `examples/echo_server.rs`, one coroutine per connection;
//! * `tokio`: tokio's current-thread runtime, one task per connection;
//! * `may`: the `may` crate's stackful coroutines, one per connection, with one worker thread
//!   (its default is one per CPU), so that it too serves from one core;
//! * `threads`: `std::net`, one OS thread per connection.
//!
//! # How it measures
//!
//! For each connection count, every server is started once, in a child process (this binary
//! re-executed with `SPINDLE_ECHO_SERVE` set) pinned to CPU 0, and gets a load generator of its
//! own, another child (`SPINDLE_ECHO_LOAD`) pinned to CPU 1: a hand-written single-threaded mio
//! client. Separate processes let 10,000 connections per server fit under a 20,000 descriptor
//! limit. Each load generator opens all its connections and checks one round trip on each,
//! then waits for orders. A round then runs the servers one after another, each for a short
//! window while the others sit idle with their connections open; the order rotates from round
//! to round. Because a server and its connections are set up once, rounds are cheap, and many
//! short interleaved rounds cancel the machine's slow swings in speed (on a shared 2-core
//! guest these move whole seconds by 20% and more) far better than a few long ones.
//!
//! The load: 64-byte messages, one in flight per connection, every echoed byte checked. On
//! `go` the generator starts a message on every connection, warms up for 0.3 s, counts round
//! trips over the window, then lets the messages in flight come back and starts no new ones.
//!
//! Reported per server: the median of the round trips per second; the ratios to the mio loop
//! and to tokio, each taken within a round (the servers ran a second apart) with the median
//! and range over rounds; the server's CPU time (user + system, from `/proc/<pid>/stat`) per
//! round trip, its median over rounds and its ratio to the mio loop's (again within rounds);
//! and the user-space part of it, pooled over all rounds. The kernel's TCP path is most of
//! every server's CPU time, the same work for all of them; the user-space part is what the
//! server's own code costs. The CPU figures come from the kernel's tick accounting (4 ms ticks
//! here), so the user-space part of one round is coarse; pooled over the rounds it is not.
//! When the load generator's core is saturated, req/s bounds the server from below and CPU
//! per round trip is the fairer figure.
//!
//! Environment: `SPINDLE_ECHO_SECS` (window, default 0.5), `SPINDLE_ECHO_ROUNDS` (default 21),
//! `SPINDLE_ECHO_CONNS` (default 50,2000,10000; counts above what the descriptor limit allows
//! are skipped), `SPINDLE_ECHO_SERVERS` (default mio,spindle,tokio,may,threads).

mod load;
mod os;
mod rig;
mod servers;
mod stats;
mod table;

use std::time::{Duration, Instant};

use load::MESSAGE;
use os::{online_cpus, pin_to, raise_fd_limit};
use rig::{Measurement, Rig, LOAD_ENV, SERVE_ENV};
use table::{print_table, Row};

const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;

fn main() {
    if let Ok(kind) = std::env::var(SERVE_ENV) {
        pin_to(SERVER_CPU);
        raise_fd_limit();
        servers::serve(&kind);
        return;
    }
    if let Ok(spec) = std::env::var(LOAD_ENV) {
        pin_to(CLIENT_CPU);
        raise_fd_limit();
        load::load_process(&spec);
        return;
    }
    compare();
}

fn compare() {
    let secs: f64 = env_or("SPINDLE_ECHO_SECS", "0.5").parse().expect("SPINDLE_ECHO_SECS: seconds");
    let rounds: usize =
        env_or("SPINDLE_ECHO_ROUNDS", "21").parse().expect("SPINDLE_ECHO_ROUNDS: a count");
    let counts: Vec<usize> = env_or("SPINDLE_ECHO_CONNS", "50,2000,10000")
        .split(',')
        .map(|c| c.trim().parse().expect("SPINDLE_ECHO_CONNS: counts"))
        .collect();
    let servers: Vec<String> = env_or("SPINDLE_ECHO_SERVERS", "mio,spindle,tokio,may,threads")
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let window = Duration::from_secs_f64(secs);
    pin_to(CLIENT_CPU);
    let limit = raise_fd_limit();
    println!(
        "echo: {MESSAGE}-byte messages, one in flight per connection, {rounds} rounds of {secs} s \
         per server, order rotating; servers on CPU {SERVER_CPU}, a load generator each on CPU \
         {CLIENT_CPU} ({} CPUs); descriptor limit {limit}",
        online_cpus()
    );

    let mut table = Vec::new();
    for &conns in &counts {
        if conns as u64 + 64 > limit {
            println!("{conns} connections: skipped, the descriptor limit is {limit}");
            continue;
        }
        // Every server with its connections open, for all the rounds of this count.
        let mut rigs: Vec<Option<Rig>> = servers
            .iter()
            .map(|kind| {
                let started = Instant::now();
                match Rig::start(kind, conns) {
                    Ok(rig) => {
                        println!(
                            "{kind:>8} {conns:>6} conns: connected and checked in {:.1} s",
                            started.elapsed().as_secs_f64()
                        );
                        Some(rig)
                    }
                    Err(e) => {
                        println!("{kind:>8} {conns:>6} conns: failed to start: {e}");
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
                        println!(
                            "round {:>2}: {:>8} {conns:>6} conns: {:>9.0} req/s, {:>5.2} us server \
                             CPU per round trip",
                            round + 1,
                            servers[i],
                            m.rate,
                            m.cpu_per_rt_us()
                        );
                        measured[i] = Some(m);
                    }
                    Err(e) => {
                        println!(
                            "round {:>2}: {:>8} {conns:>6} conns: failed: {e}",
                            round + 1,
                            servers[i]
                        );
                        rigs[i] = None;
                    }
                }
            }
            for (run, m) in runs.iter_mut().zip(measured) {
                run.push(m);
            }
        }
        drop(rigs);
        let by_name = |name: &str| servers.iter().position(|s| s == name).map(|i| &runs[i]);
        for (server, run) in servers.iter().zip(&runs) {
            table.push(Row::of(conns, server, run, by_name("mio"), by_name("tokio")));
        }
    }
    print_table(&table, rounds);
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}
