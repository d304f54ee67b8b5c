//! One server per core: [`run`] starts one spindle runtime per shard (`spindle::Shards`), each
//! with a listener of its own on the one address (`TcpListener::bind_reuseport`: the kernel
//! spreads the connections over them) and a stop signal of its own, and runs
//! [`super::serve`] on each.
//!
//! The shards start together or not at all. Shard 0 binds first (so that port 0 picks one
//! port for all), the others bind to the address it got, and no shard accepts before every
//! one listens; when one cannot bind, every shard returns that error. Nothing else is shared:
//! each shard has its own `Date` clock, table of connections and stop watcher. The signal
//! handler writes to every shard's stop pipe, so one SIGINT or SIGTERM stops all of them, each
//! finishing its own requests in flight; [`run`] returns when the last shard has.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use spindle::net::TcpListener;

use super::{serve, Config, StopSignal};

/// Serves HTTP on `addr` with one shard per element of `stops` (one runtime and OS thread
/// each, not pinned), until a stop signal; calls `listening` once with the address, when every
/// shard listens. Returns the first shard's error (in shard order), if any.
pub fn run(
    addr: &str,
    config: &Config,
    stops: Vec<StopSignal>,
    listening: impl FnOnce(SocketAddr) + Send,
) -> io::Result<()> {
    let shards = stops.len();
    let stops: Mutex<Vec<Option<StopSignal>>> = Mutex::new(stops.into_iter().map(Some).collect());
    let listening = Mutex::new(Some(listening));
    let group = Arc::new(Group::default());
    let ended = spindle::run_sharded(shards, |shard| {
        let stop = lock(&stops)[shard].take().expect("each shard takes its own stop signal");
        let listener = join(&group, shard, shards, addr)?;
        if shard == 0 {
            if let Some(listening) = lock(&listening).take() {
                listening(listener.local_addr()?);
            }
        }
        let config =
            Config { name: format!("{} shard {shard} of {shards}", config.name), ..config.clone() };
        serve(listener, config, stop)
    });
    ended.into_iter().collect()
}

/// Binds shard `shard`'s listener and waits until all `shards` listen (or one failed).
fn join(group: &Arc<Group>, shard: usize, shards: usize, addr: &str) -> io::Result<TcpListener> {
    let bound = if shard == 0 {
        TcpListener::bind_reuseport(addr)
    } else {
        let group = group.clone();
        spindle::unblock(move || group.wait(1)).and_then(TcpListener::bind_reuseport)
    };
    group.report(bound.as_ref().map_err(copy_error).and_then(|l| l.local_addr()));
    let bound = bound?;
    let group = group.clone();
    spindle::unblock(move || group.wait(shards))?;
    Ok(bound)
}

/// The shards' start line: the address shard 0 got, how many listen, and the first failure.
#[derive(Default)]
struct Group {
    state: Mutex<GroupState>,
    changed: Condvar,
}

#[derive(Default)]
struct GroupState {
    /// Shard 0's address, once it is bound.
    addr: Option<SocketAddr>,
    /// Shards that listen.
    listening: usize,
    /// The first shard that could not bind: its error, copied for every shard to return.
    failed: Option<(io::ErrorKind, String)>,
}

impl Group {
    /// One shard bound its listener at this address, or could not.
    fn report(&self, bound: io::Result<SocketAddr>) {
        let mut state = lock(&self.state);
        match bound {
            Ok(addr) => {
                state.addr.get_or_insert(addr);
                state.listening += 1;
            }
            Err(e) => {
                state.failed.get_or_insert((e.kind(), e.to_string()));
            }
        }
        self.changed.notify_all();
    }

    /// Waits until `shards` shards listen, and returns shard 0's address; or a shard's
    /// failure. Blocks its thread: a coroutine calls it inside `spindle::unblock`.
    fn wait(&self, shards: usize) -> io::Result<SocketAddr> {
        let mut state = lock(&self.state);
        loop {
            if let Some((kind, message)) = &state.failed {
                return Err(io::Error::new(*kind, format!("a shard cannot listen: {message}")));
            }
            if state.listening >= shards {
                return Ok(state.addr.expect("shard 0 listens first"));
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn copy_error(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
