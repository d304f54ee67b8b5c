//! The watchdog: names a coroutine that keeps the thread too long without parking or yielding.
//!
//! Nothing preempts a coroutine, so one that calls `std::thread::sleep`, locks a contended
//! `std::sync::Mutex`, does blocking file I/O or computes for a long time stalls every other
//! coroutine. With `RuntimeBuilder::watchdog(threshold)` a helper thread checks, several times
//! per threshold, whether the scheduler has switched since it last looked; when the same
//! coroutine has run for longer than `threshold` it reports it (once per run of that
//! coroutine):
//!
//! ```text
//! spindle: watchdog: coroutine #7 has run for 250 ms without parking or yielding; a blocking call stalls every coroutine (use spindle::unblock for blocking work)
//! ```
//!
//! (with its name, `#7 'parser'`, when it has one) and when that coroutine finally gives the
//! thread back, the scheduler adds how long it held the thread. The cost when enabled is two
//! relaxed atomic stores per switch, and for a named coroutine one map insert at spawn and one
//! removal at its end; when disabled, nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A report handed to the watchdog's handler: first from the watchdog thread while the
/// coroutine still holds the thread (`ended == false`), then once more from the scheduler when
/// it gives the thread back (`ended == true`). Both carry its name, if it has one.
///
/// Only the runtime creates reports, and fields may be added: read the fields, but do not build
/// or destructure a `Stall` without `..`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Stall {
    /// Id of the coroutine holding the thread.
    pub coroutine_id: u64,
    /// Its name ([`crate::Builder::name`]), if it has one.
    pub name: Option<String>,
    /// How long it had run without parking or yielding: at least this long when first
    /// reported; exactly this long in the closing report.
    pub running_for: Duration,
    /// False while it still runs, true in the closing report.
    pub ended: bool,
}

/// `running` value while the scheduler itself (not a coroutine) runs or waits.
const IDLE: u64 = u64::MAX;

/// What the scheduler publishes and the watchdog thread reads.
struct Shared {
    /// Id of the coroutine running now, or `IDLE`.
    running: AtomicU64,
    /// Number of resumptions so far; a change means the thread was given back.
    switches: AtomicU64,
    /// Switch number of the last run the watchdog reported (0: none). A switch number names
    /// one run of one coroutine, so a report that lands just as that run ends cannot be
    /// mistaken for one about a later run.
    reported: AtomicU64,
    /// Names of the named coroutines alive, by id: published at spawn, so that the watchdog
    /// thread can name a coroutine that never gives the thread back.
    names: Mutex<HashMap<u64, String>>,
    /// Set to stop the thread; paired with `wake` so it stops at once.
    stop: Mutex<bool>,
    wake: Condvar,
}

pub(crate) type Handler = Arc<dyn Fn(&Stall) + Send + Sync>;

pub(crate) struct Watchdog {
    shared: Arc<Shared>,
    handler: Handler,
    /// Switch counter as the scheduler knows it (no atomic read needed on its side).
    switches: std::cell::Cell<u64>,
    /// When the current resumption started, for the closing line of a report.
    started: std::cell::Cell<Option<Instant>>,
}

/// The handler used unless the builder sets one: a line on stderr.
pub(crate) fn print_stall(stall: &Stall) {
    let name = stall.name.as_deref().map(|n| format!(" '{n}'")).unwrap_or_default();
    if stall.ended {
        eprintln!(
            "spindle: watchdog: coroutine #{}{name} gave the thread back after {} ms",
            stall.coroutine_id,
            stall.running_for.as_millis()
        );
    } else {
        eprintln!(
            "spindle: watchdog: coroutine #{}{name} has run for {} ms without parking or \
             yielding; a blocking call stalls every coroutine (use spindle::unblock for blocking \
             work)",
            stall.coroutine_id,
            stall.running_for.as_millis()
        );
    }
}

/// The watchdog's settings, as the runtime builder keeps them.
#[derive(Clone)]
pub(crate) struct WatchdogConfig {
    pub threshold: Duration,
    pub handler: Handler,
}

impl std::fmt::Debug for WatchdogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchdogConfig").field("threshold", &self.threshold).finish()
    }
}

impl Watchdog {
    /// Starts the watchdog thread.
    pub(crate) fn start(config: &WatchdogConfig) -> std::io::Result<Watchdog> {
        let (threshold, handler) = (config.threshold, config.handler.clone());
        let shared = Arc::new(Shared {
            running: AtomicU64::new(IDLE),
            switches: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            names: Mutex::new(HashMap::new()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let theirs = shared.clone();
        let their_handler = handler.clone();
        thread::Builder::new()
            .name("spindle-watch".into())
            .spawn(move || watch(&theirs, threshold, &*their_handler))?;
        Ok(Watchdog {
            shared,
            handler,
            switches: std::cell::Cell::new(0),
            started: std::cell::Cell::new(None),
        })
    }

    /// Coroutine `id`, named `name`, was spawned.
    pub(crate) fn named(&self, id: u64, name: &str) {
        self.shared.names().insert(id, name.to_owned());
    }

    /// Coroutine `id`, which had a name, finished.
    pub(crate) fn forget(&self, id: u64) {
        self.shared.names().remove(&id);
    }

    /// The scheduler is about to resume coroutine `id`.
    #[inline]
    pub(crate) fn enter(&self, id: u64) {
        let n = self.switches.get() + 1;
        self.switches.set(n);
        self.shared.switches.store(n, Ordering::Relaxed);
        self.shared.running.store(id, Ordering::Relaxed);
        self.started.set(Some(Instant::now()));
    }

    /// The coroutine that was resumed gave the thread back. If the watchdog reported it during
    /// this run, hands the closing report (with `name`) to the handler.
    #[inline]
    pub(crate) fn leave(&self, id: u64, name: impl FnOnce() -> Option<String>) {
        self.shared.running.store(IDLE, Ordering::Relaxed);
        if self.shared.reported.load(Ordering::Relaxed) != self.switches.get() {
            return;
        }
        let running_for = self.started.get().map(|t| t.elapsed()).unwrap_or_default();
        let stall = Stall { coroutine_id: id, name: name(), running_for, ended: true };
        // A panicking handler must not unwind through the scheduler.
        let handled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.handler)(&stall)));
        if handled.is_err() {
            eprintln!("spindle: watchdog: the report handler panicked");
        }
    }
}

impl Shared {
    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<u64, String>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
    }
}

fn watch(shared: &Shared, threshold: Duration, handler: &(dyn Fn(&Stall) + Send + Sync)) {
    let tick = (threshold / 4).max(Duration::from_millis(1));
    // (switch count, running id, when first seen) of the run being timed.
    let mut seen: Option<(u64, u64, Instant)> = None;
    loop {
        {
            let stop = shared.stop.lock().unwrap_or_else(|e| e.into_inner());
            if *stop {
                return;
            }
            let (stop, _) = shared.wake.wait_timeout(stop, tick).unwrap_or_else(|e| e.into_inner());
            if *stop {
                return;
            }
        } // The handler runs without the lock, so a slow handler never delays shutdown.
        let switches = shared.switches.load(Ordering::Relaxed);
        let running = shared.running.load(Ordering::Relaxed);
        if running == IDLE {
            seen = None;
            continue;
        }
        match seen {
            Some((s, id, since)) if s == switches && id == running => {
                let running_for = since.elapsed();
                if running_for >= threshold && shared.reported.load(Ordering::Relaxed) != switches {
                    shared.reported.store(switches, Ordering::Relaxed);
                    let name = shared.names().get(&running).cloned();
                    handler(&Stall { coroutine_id: running, name, running_for, ended: false });
                }
            }
            _ => seen = Some((switches, running, Instant::now())),
        }
    }
}
