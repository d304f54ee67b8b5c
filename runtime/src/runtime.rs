//! The runtime: building one and running `main` on it.

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::handle::Handle;
use crate::watchdog::{Stall, WatchdogConfig};

use crate::scheduler::{Config, Core, TraceConfig};
use crate::stack::{
    usable_size, Guards, DEFAULT_MAIN_STACK_SIZE, DEFAULT_POOL_LIMIT, DEFAULT_STACK_SIZE,
};

/// A spindle runtime: a scheduler, a reactor, timers and a stack pool, for one OS thread.
///
/// Most programs call [`run`]; build one explicitly to change settings or to run several
/// `main`s in turn on the same pools (benchmarks do).
///
/// ```
/// let rt = spindle_runtime::Runtime::builder().stack_size(32 * 1024).build().unwrap();
/// assert_eq!(rt.run(|| 6 * 7), 42);
/// assert_eq!(rt.run(|| "again"), "again");
/// ```
pub struct Runtime {
    core: Rc<Core>,
}

impl Runtime {
    /// A runtime with default settings.
    pub fn new() -> io::Result<Runtime> {
        Runtime::builder().build()
    }

    /// Settings for a new runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// Runs `main` as the main coroutine, and with it every coroutine it spawns, on this
    /// thread. Returns `main`'s value once `main` and every non-daemon coroutine have finished;
    /// daemon coroutines still alive then are cancelled (unwound) first.
    ///
    /// `main` may borrow from the caller: it always finishes before `run` returns.
    ///
    /// # Panics
    /// * If `main` panics: every other coroutine is cancelled, then the panic carries on here.
    /// * On deadlock: when coroutines are parked and nothing (timer, socket, blocking call,
    ///   remote waker) can ever wake one, every coroutine is cancelled and `run` panics with a
    ///   report naming each parked coroutine and what it waits on.
    /// * If called from inside a running spindle runtime.
    pub fn run<T>(&self, main: impl FnOnce() -> T) -> T {
        self.core.run_main(main)
    }

    /// The runtime's counters (after `run`, or from another coroutine's point of view), `None`
    /// unless built with [`RuntimeBuilder::stats`].
    pub fn stats(&self) -> Option<crate::Stats> {
        self.core.stats()
    }

    /// A [`Handle`] to this runtime, for starting coroutines on it from other threads; it
    /// may be made before `run` (a request then waits for the next `run`).
    pub fn handle(&self) -> Handle {
        Handle::new(self.core.remote().clone())
    }

    /// A handle that hides no deadlock (for `run_sharded`, which keeps one per shard only to
    /// cancel it).
    pub(crate) fn uncounted_handle(&self) -> Handle {
        Handle::uncounted(self.core.remote().clone())
    }

    /// `run`, returning `main`'s outcome as `catch_unwind` would (for `run_sharded`): a
    /// panic's payload, or the cancellation's when `main` was cancelled.
    pub(crate) fn run_outcome<T>(&self, main: impl FnOnce() -> T) -> std::thread::Result<T> {
        self.core.run_main_outcome(main)
    }

    /// Scheduling steps a seeded runtime has taken (for `check::pct`'s estimate).
    pub(crate) fn seeded_steps(&self) -> usize {
        self.core.seeded_steps()
    }

    /// True if this runtime's stacks are guarded by guard regions (`MADV_GUARD_INSTALL`,
    /// Linux 6.13+), which cost no memory mapping; false if by `PROT_NONE` pages (two
    /// mappings per stack: an older kernel, or [`RuntimeBuilder::guard_regions`]`(false)`) or
    /// not at all ([`RuntimeBuilder::unguarded_stacks`]). See the crate docs, "Many
    /// coroutines".
    pub fn uses_guard_regions(&self) -> bool {
        self.core.stack_guards() == Guards::Regions
    }
}

/// Settings for a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    config: Config,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder::new()
    }
}

impl RuntimeBuilder {
    /// Default settings: 64 KiB guarded stacks, 1 MiB for main, FIFO order, real time.
    pub fn new() -> RuntimeBuilder {
        RuntimeBuilder {
            config: Config {
                stack_size: DEFAULT_STACK_SIZE,
                main_stack_size: DEFAULT_MAIN_STACK_SIZE,
                seed: None,
                pct: None,
                virtual_time: false,
                virtual_io_grace: Duration::from_millis(100),
                guarded: true,
                guard_regions: true,
                pool_limit: DEFAULT_POOL_LIMIT,
                blocking_threads: 16,
                blocking_keep_alive: Duration::from_secs(10),
                watchdog: None,
                stats: false,
                trace: None,
            },
        }
    }

    /// Default stack size of spawned coroutines, in bytes (rounded up to pages, at least
    /// 16 KiB). Default 64 KiB. More than [`crate::MAX_STACK_SIZE`] (1 GiB) makes
    /// [`RuntimeBuilder::build`] fail with [`io::ErrorKind::InvalidInput`].
    ///
    /// Only the pages a coroutine touches cost memory; [`crate::Coroutine::stack_used`] tells
    /// how deep a coroutine went, to size this from data.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.config.stack_size = bytes;
        self
    }

    /// Stack size of the main coroutine. Default 1 MiB; at most [`crate::MAX_STACK_SIZE`], as
    /// for [`RuntimeBuilder::stack_size`].
    pub fn main_stack_size(mut self, bytes: usize) -> Self {
        self.config.main_stack_size = bytes;
        self
    }

    /// Runs coroutines in a random order drawn from `seed` instead of FIFO: each scheduling
    /// step picks any runnable coroutine. The same seed and the same program give the same
    /// order, so an interleaving that breaks something can be replayed. Every `u64` is its own
    /// schedule (0 included): the picks come from a splitmix64 stream started at `seed`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// With `true`, time is virtual: it starts at the real time of `build` and stands still
    /// while coroutines run; when nothing is runnable and nothing outside the runtime can still
    /// make progress, it jumps to the next timer. `sleep(Duration::from_secs(3600))` then
    /// returns at once, in order with every other timer. Read it with `time::now()`;
    /// `std::time::Instant::now()` still reads the real clock.
    ///
    /// Work outside the runtime holds the clock (Go's `testing/synctest` calls a runtime with
    /// none "durably blocked"):
    ///
    /// * while an `unblock` job runs, or another thread holds a `RemoteWaker` for a park still
    ///   in progress, the clock does not move at all: that work takes no virtual time, so
    ///   `timeout(1h, || unblock(|| 20 ms of work))` returns `Ok` and the job ends before any
    ///   later sleep;
    /// * while a coroutine waits on a socket, the clock waits for readiness up to
    ///   [`RuntimeBuilder::virtual_io_grace`] of real time (default 100 ms) before each jump, so
    ///   a peer that answers within it beats any timeout, and a socket that stays quiet (an idle
    ///   listener, a connection nobody writes to) cannot stop virtual time for good.
    pub fn virtual_time(mut self, on: bool) -> Self {
        self.config.virtual_time = on;
        self
    }

    /// Counts what the runtime does: [`crate::stats`] and [`crate::Coroutine::stats`] (see
    /// [`Stats`](crate::Stats)). Off by default, at no cost; on, each switch reads the real clock
    /// twice and updates a table (`cargo bench --bench core` measures it: the
    /// `spindle_with_stats` row).
    pub fn stats(mut self, on: bool) -> Self {
        self.config.stats = on;
        self
    }

    /// Writes a timeline of every `run` to `path`: a Chrome trace-event JSON file that
    /// ui.perfetto.dev and chrome://tracing open, with a track per coroutine, a slice per run and
    /// per wait (named by what it waited on), an arrow from whatever woke it, and counters of
    /// runnable and live coroutines. Timestamps are on the runtime's clock, so a seeded,
    /// virtual-time program writes the same file every time. Off by default, at no cost; on,
    /// a thread of its own (`spindle-trace`) formats the events and writes them to the file while
    /// `run` goes on, and `cargo bench --bench core` measures the cost per switch (the
    /// `spindle_with_trace*` rows: about 35-40 ns a switch on a 2-core VM, where a loop that
    /// only yields outpaces the writer; to a slow disk the disk sets the pace). The file starts
    /// with a `process_name` event naming the process `spindle`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("spindle-doc-{}.json", std::process::id()));
    /// let rt = spindle_runtime::Runtime::builder().trace(&path).build().unwrap();
    /// rt.run(|| spindle_runtime::spawn(|| spindle_runtime::yield_now()).join().unwrap());
    /// let trace = std::fs::read_to_string(&path).unwrap();
    /// assert!(trace.contains(r#""name":"run""#));
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn trace(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config.trace = Some(TraceConfig { path: path.into(), last: None });
        self
    }

    /// Like [`RuntimeBuilder::trace`], keeping only the last `events` events in memory and
    /// writing them when `run` ends: a bounded trace for a long-running server.
    pub fn trace_last(mut self, events: usize, path: impl Into<std::path::PathBuf>) -> Self {
        self.config.trace = Some(TraceConfig { path: path.into(), last: Some(events) });
        self
    }

    /// Under virtual time: how long, in real time, the clock waits for a socket event before it
    /// jumps while a coroutine is parked on a socket (see [`RuntimeBuilder::virtual_time`]).
    /// Default 100 ms. A longer grace lets slower peers answer before a virtual timeout; zero
    /// jumps at once, as if no socket could answer.
    pub fn virtual_io_grace(mut self, grace: Duration) -> Self {
        self.config.virtual_io_grace = grace;
        self
    }

    /// How many free stacks of one size the pool keeps for reuse. Default 1024.
    pub fn pooled_stacks(mut self, count: usize) -> Self {
        self.config.pool_limit = count;
        self
    }

    /// Whether guard pages may be guard regions (`madvise(MADV_GUARD_INSTALL)`, Linux 6.13+),
    /// which cost no memory mapping. Default `true`: used where the kernel has them (asked
    /// once per process). With `false`, every guarded stack gets a `PROT_NONE` page, as on
    /// older kernels: two mappings per stack, so `vm.max_map_count` caps the live coroutines
    /// near 32k (see the crate docs, "Many coroutines"). For tests and comparisons;
    /// [`Runtime::uses_guard_regions`] tells which a runtime got.
    pub fn guard_regions(mut self, on: bool) -> Self {
        self.config.guard_regions = on;
        self
    }

    /// Gives coroutines stacks without guard pages, carved 64 to a mapping, so that on kernels
    /// without guard regions (before Linux 6.13) the number of live coroutines is no longer
    /// capped by `vm.max_map_count` (~32k with `PROT_NONE` guard pages). Where the kernel has
    /// guard regions, guarded stacks have no such cap and this buys nothing.
    ///
    /// # Safety
    /// Without a guard page nothing stops a coroutine that overflows its stack from writing
    /// over another's: a canary checked at every switch reports most overflows and aborts, but
    /// only after the fact, and a fault while a coroutine's stack pointer is below its stack is
    /// reported as its probable overflow. The caller promises that no coroutine of this
    /// runtime needs more stack than it was given.
    pub unsafe fn unguarded_stacks(mut self) -> Self {
        self.config.guarded = false;
        self
    }

    /// Most OS threads [`crate::unblock`] runs work on at once; more work queues. Default 16.
    pub fn blocking_threads(mut self, threads: usize) -> Self {
        self.config.blocking_threads = threads;
        self
    }

    /// How long an idle blocking-pool thread waits for work before it exits. Default 10 s.
    pub fn blocking_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.config.blocking_keep_alive = keep_alive;
        self
    }

    /// Starts a watchdog thread that reports any coroutine holding the thread for longer than
    /// `threshold` without parking or yielding (a blocking call, a long computation): on
    /// stderr, or to [`RuntimeBuilder::watchdog_handler`]. Costs two relaxed atomic stores per
    /// switch; off by default.
    pub fn watchdog(mut self, threshold: Duration) -> Self {
        let handler = match self.config.watchdog.take() {
            Some(w) => w.handler,
            None => Arc::new(crate::watchdog::print_stall),
        };
        self.config.watchdog = Some(WatchdogConfig { threshold, handler });
        self
    }

    /// Where watchdog reports go instead of stderr; enables the watchdog (1 s threshold unless
    /// [`RuntimeBuilder::watchdog`] sets one). Called from the watchdog thread while the
    /// coroutine still runs, and from the runtime's thread when it gives the thread back.
    pub fn watchdog_handler(mut self, handler: impl Fn(&Stall) + Send + Sync + 'static) -> Self {
        let threshold =
            self.config.watchdog.as_ref().map_or(Duration::from_secs(1), |w| w.threshold);
        self.config.watchdog = Some(WatchdogConfig { threshold, handler: Arc::new(handler) });
        self
    }

    /// Seeded order by PCT of `depth` for a program of about `steps` steps (see `check::pct`).
    pub(crate) fn pct(mut self, depth: usize, steps: usize) -> Self {
        self.config.pct = Some((depth, steps));
        self
    }

    /// Builds the runtime: creates its `mio::Poll` and cross-thread waker.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] if a stack size is larger than
    /// [`crate::MAX_STACK_SIZE`]; what the system says if the poller cannot be made.
    pub fn build(self) -> io::Result<Runtime> {
        usable_size(self.config.stack_size)?;
        usable_size(self.config.main_stack_size)?;
        crate::panic::install_hook();
        Ok(Runtime { core: Core::new(self.config)? })
    }
}

/// Runs `main` on a new default runtime on this thread; see [`Runtime::run`].
///
/// ```
/// let answer = spindle_runtime::run(|| {
///     let h = spindle_runtime::spawn(|| 21);
///     h.join().unwrap() * 2
/// });
/// assert_eq!(answer, 42);
/// ```
pub fn run<T>(main: impl FnOnce() -> T) -> T {
    let runtime = Runtime::new().unwrap_or_else(|e| panic!("spindle: cannot build a runtime: {e}"));
    runtime.run(main)
}

/// The counters of the runtime running on this thread, `None` unless it was built with
/// [`RuntimeBuilder::stats`].
///
/// ```
/// let rt = spindle_runtime::Runtime::builder().stats(true).build().unwrap();
/// let stats = rt.run(|| {
///     spindle_runtime::spawn(|| spindle_runtime::yield_now()).join().unwrap();
///     spindle_runtime::stats().unwrap()
/// });
/// assert_eq!(stats.spawned, 2); // main and one more
/// ```
///
/// # Panics
/// Outside a running spindle runtime.
#[track_caller]
pub fn stats() -> Option<crate::Stats> {
    crate::context::expect_core("stats", |core| core.stats())
}
