//! The settings a runtime is built with (`RuntimeBuilder` fills them in).

use std::time::Duration;

use crate::watchdog::WatchdogConfig;

/// Settings fixed when the runtime is built.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Usable stack size of a spawned coroutine unless its `Builder` says otherwise.
    pub stack_size: usize,
    /// Usable stack size of the main coroutine.
    pub main_stack_size: usize,
    /// Seed of the random run-queue pick; `None` runs coroutines in FIFO order.
    pub seed: Option<u64>,
    /// `(depth, steps)`: pick by PCT priorities instead of uniformly (needs a seed).
    pub pct: Option<(usize, usize)>,
    /// Time advances only when the scheduler is idle, jumping to the next timer.
    pub virtual_time: bool,
    /// Under virtual time, the real time the clock waits for socket events before a jump while a
    /// coroutine is parked on a socket.
    pub virtual_io_grace: Duration,
    /// Stacks have guard pages (false only through `unsafe unguarded_stacks`).
    pub guarded: bool,
    /// Guard pages are guard regions (`MADV_GUARD_INSTALL`) where the kernel has them;
    /// false forces `PROT_NONE` pages (`RuntimeBuilder::guard_regions`).
    pub guard_regions: bool,
    /// Free stacks of one size kept resident in the pool.
    pub pool_limit: usize,
    /// Most threads the blocking pool starts.
    pub blocking_threads: usize,
    /// How long an idle blocking-pool thread waits before it exits.
    pub blocking_keep_alive: Duration,
    /// Count what the runtime does (`RuntimeBuilder::stats`).
    pub stats: bool,
    /// Write a timeline trace (`RuntimeBuilder::trace`).
    pub trace: Option<super::trace::TraceConfig>,
    /// Reports coroutines that hold the thread too long, when set.
    pub watchdog: Option<WatchdogConfig>,
}
