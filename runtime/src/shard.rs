//! One runtime per core: [`Shards`] and [`run_sharded`] (what users read is in their docs).
//!
//! A start line ([`Start`]) makes either every shard run `main` or none; the shards' ends come
//! back over a channel in the order they happen, so the first panic cancels the others at
//! once (through uncounted [`Handle`]s), and the values are put back in shard order.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Condvar, Mutex, MutexGuard};
use std::thread;

use crate::handle::Handle;
use crate::panic::payload_str;
use crate::runtime::{Runtime, RuntimeBuilder};
use crate::scheduler::CancelUnwind;

/// Settings for running one runtime per shard (per core): how many, whether each is pinned to
/// a core, and the settings of their runtimes. [`run_sharded`] is the short form.
///
/// ```
/// let rt = spindle_runtime::Runtime::builder().stack_size(32 << 10);
/// let shards = spindle_runtime::Shards::new(2).runtime(rt).pin_to_cores(true);
/// let ids = shards.run(|shard| shard + 100).unwrap();
/// assert_eq!(ids, [100, 101]);
/// ```
///
/// A builder of its own rather than a [`RuntimeBuilder`] setting, because these are settings
/// of a group of threads, not of one runtime (and each runtime is built on its own thread, so
/// what is shared is the builder, which is `Clone`).
///
/// # When a shard fails
///
/// A panic in one shard (its `main` panicked, or its runtime reported a deadlock) cancels every
/// other shard, through the same door as [`crate::Handle::cancel_all`]: their coroutines unwind
/// at their next park. Once every shard has ended, `run` panics with a message that names the
/// shard that failed first and carries its message, `spindle: shard 1 of 4 panicked: ...`.
/// (The shard's own panic has already been printed by the panic hook, on the thread named
/// `spindle-shard-1`.) The shards' handles kept for this do not count as live handles, so they
/// hide no deadlock in a shard.
#[derive(Debug, Clone)]
pub struct Shards {
    count: usize,
    runtime: RuntimeBuilder,
    pin: bool,
}

impl Shards {
    /// `count` shards with default runtimes, not pinned.
    ///
    /// # Panics
    /// If `count` is 0.
    #[track_caller]
    pub fn new(count: usize) -> Shards {
        if count == 0 {
            panic!("spindle: Shards::new needs at least one shard");
        }
        Shards { count, runtime: RuntimeBuilder::new(), pin: false }
    }

    /// The settings every shard's runtime is built with.
    pub fn runtime(mut self, builder: RuntimeBuilder) -> Shards {
        self.runtime = builder;
        self
    }

    /// With `true`, shard `i` runs pinned to one CPU: the `i`-th of the CPUs this thread may
    /// run on (`sched_getaffinity`), round robin when there are more shards than CPUs.
    /// Default `false`: the kernel places the threads.
    pub fn pin_to_cores(mut self, pin: bool) -> Shards {
        self.pin = pin;
        self
    }

    /// Starts one OS thread per shard (named `spindle-shard-<i>`), builds a runtime on each,
    /// runs `main(i)` as its main coroutine and returns the shards' values in shard order,
    /// once every shard's `run` has returned. `main` may borrow from the caller.
    ///
    /// # Errors
    /// When a shard's thread cannot be started, its runtime cannot be built or its thread
    /// cannot be pinned; then no shard runs `main`.
    ///
    /// # Panics
    /// When a shard panics: the others are cancelled first, and the message names the shard
    /// (see [When a shard fails](Shards#when-a-shard-fails)). Also when a shard's `main` was
    /// cancelled by a [`crate::Handle::cancel_all`] of the program's own.
    #[track_caller]
    pub fn run<T, F>(self, main: F) -> io::Result<Vec<T>>
    where
        F: Fn(usize) -> T + Sync,
        T: Send,
    {
        let count = self.count;
        let cpus = if self.pin { Some(allowed_cpus()?) } else { None };
        let start = Start::new(count);
        let (ended_tx, ended_rx) = mpsc::channel();
        let (results, panicked, cancelled) = thread::scope(|scope| {
            for index in 0..count {
                let builder = self.runtime.clone();
                let cpu = cpus.as_ref().map(|cpus| cpus[index % cpus.len()]);
                let (start, main, ended_tx) = (&start, &main, ended_tx.clone());
                let spawned = thread::Builder::new()
                    .name(format!("spindle-shard-{index}"))
                    .spawn_scoped(scope, move || {
                        let runtime =
                            cpu.map_or(Ok(()), pin_this_thread).and_then(|()| builder.build());
                        let runtime = match runtime {
                            Ok(runtime) => {
                                if !start.ready(index, Ok(runtime.uncounted_handle())) {
                                    return;
                                }
                                runtime
                            }
                            Err(e) => {
                                start.ready(index, Err(e));
                                return;
                            }
                        };
                        let ended = run_shard(&runtime, || main(index));
                        let _ = ended_tx.send((index, ended));
                    });
                if let Err(e) = spawned {
                    start.abort(e);
                    break;
                }
            }
            drop(ended_tx);
            let handles = match start.decide() {
                Ok(handles) => handles,
                Err(e) => return (Err(e), None, None),
            };
            let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
            // The first shard that panicked, and the first one cancelled by someone else.
            let mut panicked = None;
            let mut cancelled = None;
            for (index, ended) in ended_rx {
                match ended {
                    Ended::Returned(value) => results[index] = Some(value),
                    Ended::Panicked(payload) if panicked.is_none() => {
                        for (other, handle) in handles.iter().enumerate() {
                            if other != index {
                                handle.cancel_all();
                            }
                        }
                        panicked = Some((index, payload));
                    }
                    Ended::Panicked(_) => {}
                    Ended::Cancelled => {
                        cancelled.get_or_insert(index);
                    }
                }
            }
            (Ok(results), panicked, cancelled)
        });
        let results = results?;
        if let Some((index, payload)) = panicked {
            let message = payload_str(&*payload).unwrap_or("Box<dyn Any>");
            let others = if count > 1 { "\n(the other shards were cancelled)" } else { "" };
            panic!("spindle: shard {index} of {count} panicked: {message}{others}");
        }
        if let Some(index) = cancelled {
            panic!(
                "spindle: shard {index} of {count} was cancelled before main returned \
                 (Handle::cancel_all), so it has no value to return"
            );
        }
        Ok(results.into_iter().map(|value| value.expect("every shard returned")).collect())
    }
}

/// Runs `main(i)` on `shards` runtimes with default settings, one OS thread each, and returns
/// their values in shard order; see [`Shards`] for the settings and [`Shards::run`] for the
/// details.
///
/// A spindle runtime uses one thread, so a server that outgrows a core runs several: one OS
/// thread per shard, each with a runtime of its own built from one [`RuntimeBuilder`], each
/// running the same `main` with its shard index. Nothing moves between shards — a coroutine,
/// a socket, a lock stays where it was made — so each shard is a plain single-threaded spindle
/// program, and what shards share goes through the doors between threads (a
/// [`crate::Handle`], `spindle::sync::mpmc` channels, a listening port bound with
/// `TcpListener::bind_reuseport`, which the kernel balances connections over).
///
/// ```
/// let squares = spindle_runtime::run_sharded(3, |shard| {
///     // A runtime of its own: spawn, park and join as in any spindle program.
///     spindle_runtime::spawn(move || shard * shard).join().unwrap()
/// });
/// assert_eq!(squares, [0, 1, 4]);
/// ```
///
/// # Panics
/// When a shard panics (the others are cancelled first; the message names the shard), when
/// `shards` is 0, or when a thread or runtime cannot be started.
#[track_caller]
pub fn run_sharded<T, F>(shards: usize, main: F) -> Vec<T>
where
    F: Fn(usize) -> T + Sync,
    T: Send,
{
    Shards::new(shards)
        .run(main)
        .unwrap_or_else(|e| panic!("spindle: cannot start {shards} shards: {e}"))
}

/// How one shard's `run` ended.
enum Ended<T> {
    Returned(T),
    /// `main` panicked, or `run` did (a deadlock report).
    Panicked(Box<dyn std::any::Any + Send>),
    /// `main` was cancelled (another shard failed, or `Handle::cancel_all`).
    Cancelled,
}

fn run_shard<T>(runtime: &Runtime, main: impl FnOnce() -> T) -> Ended<T> {
    match catch_unwind(AssertUnwindSafe(|| runtime.run_outcome(main))) {
        Ok(Ok(value)) => Ended::Returned(value),
        Ok(Err(payload)) if payload.is::<CancelUnwind>() => Ended::Cancelled,
        Ok(Err(payload)) | Err(payload) => Ended::Panicked(payload),
    }
}

/// The start line: every shard reports its runtime ready (or why not) and waits for the
/// caller's go, so that either every shard runs `main` or none does.
struct Start {
    state: Mutex<StartState>,
    changed: Condvar,
}

struct StartState {
    /// Each shard's handle once its runtime is built (uncounted: it hides no deadlock).
    handles: Vec<Option<Handle>>,
    /// Shards that reported, with a runtime or an error.
    reported: usize,
    /// The first error: a thread that did not start, a runtime not built, a pin refused.
    error: Option<io::Error>,
    /// `Some(go)` once the caller decided.
    go: Option<bool>,
}

impl Start {
    fn new(count: usize) -> Start {
        Start {
            state: Mutex::new(StartState {
                handles: (0..count).map(|_| None).collect(),
                reported: 0,
                error: None,
                go: None,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StartState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shard `index` reports; waits for the decision and returns whether to run `main`.
    fn ready(&self, index: usize, runtime: io::Result<Handle>) -> bool {
        let mut state = self.lock();
        match runtime {
            Ok(handle) => state.handles[index] = Some(handle),
            Err(e) => {
                state.error.get_or_insert(e);
            }
        }
        state.reported += 1;
        self.changed.notify_all();
        while state.go.is_none() {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.go == Some(true)
    }

    /// A shard's thread could not be started: no shard runs.
    fn abort(&self, e: io::Error) {
        let mut state = self.lock();
        state.error.get_or_insert(e);
        state.go = Some(false);
        self.changed.notify_all();
    }

    /// Waits for every shard to report (unless aborted) and decides: the shards' handles in
    /// shard order, or the first error.
    fn decide(&self) -> io::Result<Vec<Handle>> {
        let mut state = self.lock();
        while state.go.is_none() && state.reported < state.handles.len() {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        let go = state.error.is_none();
        state.go = Some(go);
        self.changed.notify_all();
        match state.error.take() {
            Some(e) => Err(e),
            None => Ok(state.handles.iter_mut().map(|h| h.take().expect("reported")).collect()),
        }
    }
}

/// The CPUs the calling thread may run on, in increasing order.
fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: `cpu_set_t` is a plain bit array, for which all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live, writable `cpu_set_t` of the size passed; pid 0 is this thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let setsize = libc::CPU_SETSIZE as usize;
    // SAFETY: every `cpu` is below CPU_SETSIZE, the number of bits in `set`.
    let cpus: Vec<usize> =
        (0..setsize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect();
    if cpus.is_empty() {
        return Err(io::Error::other("sched_getaffinity returned no CPU"));
    }
    Ok(cpus)
}

/// Pins the calling thread to `cpu`.
fn pin_this_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: as in `allowed_cpus`: all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` came from `allowed_cpus`, so it is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a live `cpu_set_t` of the size passed; pid 0 is the calling thread, and
    // changing its own affinity affects no memory of this process.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
