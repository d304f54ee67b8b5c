//! # spindle
//!
//! Green threads for Rust: stackful coroutines scheduled in user space on one OS thread. Code
//! inside a coroutine looks blocking — `stream.read(&mut buf)`, `mutex.lock()`, `rx.recv()`,
//! `sleep(d)` — and spindle parks that coroutine and runs another until the socket is ready,
//! the lock is free, the message has arrived or the timer has fired.
//!
//! ```
//! use std::time::Duration;
//!
//! let total = spindle::run(|| {
//!     let workers: Vec<_> = (1..=4)
//!         .map(|i| {
//!             spindle::spawn(move || {
//!                 spindle::sleep(Duration::from_millis(i));
//!                 i * 100
//!             })
//!         })
//!         .collect();
//!     workers.into_iter().map(|w| w.join().unwrap()).sum::<u64>()
//! });
//! assert_eq!(total, 1000);
//! ```
//!
//! This crate re-exports the parts: [`spindle_runtime`] (coroutines, scheduler, park/wake,
//! timers) and [`spindle_io`] (sockets). See the crate docs of `spindle_runtime` for how
//! coroutines park, what is and is not guaranteed about order and timers, and how many
//! coroutines fit at once (a million guarded ones on Linux 6.13+; about 32,000 on older
//! kernels, and what to do there).

pub use spindle_runtime::{
    active_count, coroutine_local, coroutines, current, handle, park, pool, reactor, run,
    run_sharded, scope, sleep, sleep_until, spawn, time, unblock, yield_now, Builder, Coroutine,
    Handle, JoinError, JoinHandle, LocalKey, Panic, RemoteJoinHandle, Runtime, RuntimeBuilder,
    Scope, ScopedJoinHandle, Shards, SpawnError, Stall, DEFAULT_MAIN_STACK_SIZE,
    DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE,
};
pub use spindle_runtime::{check, select, sync};
pub use spindle_runtime::{stats, CoroutineStats, Stats};

/// Sockets that park the coroutine, not the thread: `spindle::net::TcpStream` and friends.
pub use spindle_io::net;
pub use spindle_io::IoSource;
