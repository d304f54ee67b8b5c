//! spindle's core: stackful coroutines scheduled on one OS thread.
//!
//! A *coroutine* here is a function running on its own small stack. It looks like a thread —
//! it calls `sleep`, `lock`, `recv`, `read` and those calls appear to block — but when it must
//! wait it *parks*: it records what it waits on, hands a waker to whatever will end the wait,
//! and switches back to the scheduler, which runs another coroutine. Switching costs a few
//! nanoseconds and an idle coroutine costs a page or two of memory, so a program can keep
//! hundreds of thousands of them.
//!
//! ```
//! use std::time::Duration;
//! use spindle_runtime::{run, spawn, time::sleep};
//!
//! let order = run(|| {
//!     let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
//!     let handles: Vec<_> = [30, 10, 20]
//!         .into_iter()
//!         .map(|ms| {
//!             let log = log.clone();
//!             spawn(move || {
//!                 sleep(Duration::from_millis(ms));
//!                 log.borrow_mut().push(ms);
//!             })
//!         })
//!         .collect();
//!     for h in handles {
//!         h.join().unwrap();
//!     }
//!     let v = log.borrow().clone();
//!     v
//! });
//! assert_eq!(order, [10, 20, 30]);
//! ```
//!
//! # One thread
//!
//! Everything runs on the thread that called [`run`]. A call that blocks the OS thread
//! (`std::thread::sleep`, a `std::sync::Mutex` held across a park, blocking file I/O) stalls
//! every coroutine until it returns.
//!
//! # More than one thread
//!
//! **A coroutine never migrates.** It is started, resumed and finished on its runtime's thread
//! and no other, so a `thread_local!` read inside a coroutine is always that thread's, and a
//! library that keeps state in thread-locals stays sound. That is also why most of spindle is
//! not `Send`, and the compiler keeps it on its thread:
//!
//! * not `Send`: [`Runtime`], [`JoinHandle`], [`Coroutine`], [`park::Waker`], the locks and
//!   channels of [`sync`] (plain cells inside, no atomics: an uncontended lock costs no atomic
//!   instruction), and spindle's sockets (each is registered with its runtime's reactor);
//! * `Send`: what crosses through one of the doors below: the closure given to [`unblock`] or
//!   [`Handle::spawn`], a [`park::RemoteWaker`], a [`Handle`] (`Sync` and `Clone` too), a
//!   [`RemoteJoinHandle`] (when its value is), [`JoinError`] and [`Panic`], a [`RuntimeBuilder`].
//!
//! The doors between threads are few and named. Through each, a coroutine that must wait
//! parks (its coroutine only), and a plain thread that must wait blocks.
//!
//! | door | what crosses | who waits, and how |
//! |---|---|---|
//! | [`unblock`] | a blocking closure, to a pool thread; its value, back | the calling coroutine parks |
//! | [`park::remote_waker`] | the end of one park, from any thread | the parked coroutine |
//! | [`sync::mpmc`] channels | values; `Sender`/`Receiver` are `Send + Sync + Clone` and live in any runtime or none | a receiving (or, bounded, sending) coroutine parks, a thread blocks |
//! | [`Handle`] | a `Send` closure, started as a coroutine of that runtime, from any thread | [`RemoteJoinHandle::join`] parks a coroutine, blocks a thread |
//! | [`run_sharded`], [`Shards`] | nothing: one runtime per thread (per core), the same `main` on each; a listening port shared with `TcpListener::bind_reuseport` | the caller of `run_sharded`, until every shard returns |
//!
//! A [`park::RemoteWaker`] (and with it an `mpmc` channel, which wakes a parked coroutine
//! through one) and a [`Handle`] reach a runtime through one door per runtime, a queue behind
//! a mutex and a `mio::Waker` that interrupts its poll; the scheduler applies what was queued
//! between two resumptions. How a live `Handle` counts for deadlock
//! detection, for when `run` returns and for virtual time is in [`Handle`]'s docs:
//! in short, it holds off a deadlock report, but neither keeps `run` going nor holds a
//! virtual clock, and a request it made is either run or answered `JoinError::Cancelled`.
//!
//! ```
//! // Two runtimes, two threads; each shard spawns and joins as any spindle program does.
//! let sums = spindle_runtime::run_sharded(2, |shard| {
//!     let parts: Vec<_> = (0..4).map(|i| spindle_runtime::spawn(move || shard * 10 + i)).collect();
//!     parts.into_iter().map(|p| p.join().unwrap()).sum::<usize>()
//! });
//! assert_eq!(sums, [6, 46]);
//! ```
//!
//! # Parking
//!
//! Every blocking operation is built on [`park::park`]: park with a [`park::Reason`] and an
//! optional deadline, and learn whether it was woken, timed out or cancelled. See [`park`].
//!
//! # Panics and cancellation
//!
//! A panic ends only its coroutine; [`JoinHandle::join`] returns it as
//! [`JoinError::Panicked`], and one nobody joins is printed on stderr with the coroutine's name.
//! [`JoinHandle::cancel`] wakes a parked coroutine with `Cancelled`; it unwinds, running its
//! destructors. A deadlock (coroutines parked, nothing able to wake them) makes [`run`] panic
//! with a report of who waits on what.
//!
//! # Destructors may wait
//!
//! Once a coroutine unwinds from a cancellation or an expired [`time::timeout`], its parks are
//! *shielded* until the unwind is caught: a destructor that locks a contended
//! [`sync::Mutex`], sleeps, yields, receives or touches a [`coroutine_local!`] whose
//! initializer parks waits normally, as gevent lets cleanup block. (Cutting it short would
//! need a second unwind inside a destructor that is already unwinding, which aborts the
//! process.) A second [`JoinHandle::cancel`], the runtime's teardown of daemons and timeout
//! scopes do not interrupt a shielded park; its own deadline (`lock_timeout`, `sleep`) still
//! ends it, and a destructor that waits for something that never comes is reported as a
//! deadlock like any other wait. The locals of a finished coroutine are dropped shielded too,
//! on its own stack. Code that catches the unwind (`catch_unwind`) ends the shield: its next
//! park sees the cancellation again.
//!
//! One consequence of coroutines sharing a thread: while one coroutine waits inside a
//! destructor during its unwind, `std::thread::panicking()` reads `true` in every coroutine of
//! the thread, since Rust counts panics per thread.
//!
//! # Timers
//!
//! Deadlines are read against one clock per runtime ([`time::now`]), real or virtual. Earlier
//! deadlines fire first; equal deadlines fire in the order they were set. A timer fires no
//! earlier than its deadline and, on the real clock, as soon after as the loop gets to it: a
//! coroutine that computes without parking delays every timer (nothing preempts it).
//!
//! # Experiments: the determinism contract
//!
//! With [`RuntimeBuilder::seed`] and [`RuntimeBuilder::virtual_time`], a program whose only
//! inputs are spindle's own primitives (coroutines, sleeps and timeouts, locks, channels,
//! `select!`, coroutine-locals) runs the same way every time: the same order of coroutines, the
//! same [`time::now`] readings, the same values out of every channel. Every `u64` seed is its
//! own schedule. [`check`] builds on it: it runs a test under many seeds (uniform picks, or
//! PCT's priorities) and replays a failing one from its seed alone.
//!
//! What breaks the contract, and how to keep it:
//!
//! * **Real sockets**: the kernel splits and times reads as it likes. Keep both ends in the
//!   runtime and the bytes stay the same, but how many arrive per read may not; for a
//!   repeatable experiment, model the network with channels.
//! * **`unblock` and other threads**: their work takes no virtual time (the clock waits for
//!   it), but when it finishes relative to the coroutines is up to the OS. Keep them out of a
//!   run that must repeat, or join them at once.
//! * **`std::time::Instant::now()` and `SystemTime`**: real clocks. Read [`time::now`], and take
//!   deadlines from it (`sleep_until(time::now() + d)`).
//! * **`HashMap`'s random state** and any other randomness: iterate a `BTreeMap`, or build the
//!   hasher with a fixed seed; draw random numbers from a generator seeded by your run's seed.
//!
//! Park reasons, deadlock reports and traces name the objects coroutines wait on by small
//! per-runtime numbers given in the order they are first waited on (`Mutex::lock (Mutex#3)`,
//! `Receiver::recv (channel#7)`, or a label: [`park::ObjectId`]), never by address, so they
//! repeat too.
//!
//! # Many coroutines
//!
//! Stacks are 64 KiB by default ([`RuntimeBuilder::stack_size`], [`Builder::stack_size`]; at
//! most [`MAX_STACK_SIZE`], a larger size is an `InvalidInput` error), mapped once and pooled,
//! and only touched pages use memory: a coroutine parked after a shallow call chain costs about
//! 4.4 KiB in all (the top page of its stack, which holds its record, the page tables for it, its
//! timer entry and its handle). [`Coroutine::stack_used`] tells how deep a coroutine's stack
//! went, so that sizes can come from data (the `echo_server` example prints its connections'
//! with `--stack-report`).
//!
//! Every stack has a guard page below it, so an overflow is reported with the coroutine's name,
//! its stack size and how much it used, rather than left to corrupt memory. How many coroutines
//! can be alive at once depends on the kernel, because Linux allows a process
//! `vm.max_map_count` memory mappings (65530 by default):
//!
//! * **Linux 6.13 and later**: the guard is a *guard region* (`madvise(MADV_GUARD_INSTALL)`), a
//!   mark in the page tables that costs no mapping, and stacks are carved from large chunks, so
//!   a million guarded coroutines take a few dozen mappings. Memory is the limit (about 4.4 GiB
//!   for a million parked ones).
//! * **Older kernels**, or [`RuntimeBuilder::guard_regions`]`(false)`: the guard is a `PROT_NONE`
//!   page, and a stack then costs two mappings, so about 32,000 coroutines can be alive at once.
//!   The spawn past that fails with an [`std::io::ErrorKind::OutOfMemory`] error from
//!   [`Builder::spawn`] ([`spawn`] panics with it) that names `vm.max_map_count` and the ways past
//!   it. spindle stops 1024 mappings short of the limit, so the program goes on working after
//!   the error: its coroutines keep running, and spawning works again once some have finished.
//!   To go further, raise the limit (as root: `sysctl vm.max_map_count=1048576`), or build the
//!   runtime with the `unsafe` [`RuntimeBuilder::unguarded_stacks`], which carves 64 stacks from
//!   each mapping without guard pages between them: a canary checked at every switch reports an
//!   overflow after the fact, and a fault below the stack is reported as a probable overflow,
//!   but the neighbouring stack may be overwritten first.
//!
//! The kernel is asked once per process whether it has guard regions;
//! [`Runtime::uses_guard_regions`] tells what a runtime got.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

// Leaves: they import nothing of the runtime above them.
mod maps;
mod overflow;
mod remote;
mod ring;
mod rng;
mod stack;
mod thread_pool;
mod timer;
mod wake;
mod watchdog;
// The task record and its state machine; the scheduler; the one door to it.
mod context;
mod scheduler;
mod task;
// The public API, built on `context` and `park`.
mod blocking;
pub mod check;
mod coroutine;
mod handle;
mod local;
mod object;
mod panic;
pub mod park;
pub mod pool;
pub mod reactor;
mod runtime;
mod scope;
mod shard;
pub mod sync;
pub mod time;

pub use blocking::unblock;
pub use coroutine::{
    active_count, coroutines, current, spawn, yield_now, Builder, Coroutine, JoinError, JoinHandle,
};
pub use handle::{handle, Handle, RemoteJoinHandle, SpawnError};
pub use local::LocalKey;
pub use panic::Panic;
pub use runtime::{run, stats, Runtime, RuntimeBuilder};
pub use scheduler::{CoroutineStats, Stats};
pub use scope::{scope, Scope, ScopedJoinHandle};
pub use shard::{run_sharded, Shards};
pub use stack::{DEFAULT_MAIN_STACK_SIZE, DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
pub use time::{sleep, sleep_until};
pub use watchdog::Stall;
