//! Schedule exploration: run a concurrent test under many interleavings, find the one that
//! breaks it, and replay that one exactly.
//!
//! Every iteration runs `body` as the main coroutine of a fresh runtime built with
//! `seed(s).virtual_time(true)`: the seed fixes every scheduling choice, and virtual time makes
//! sleeps and timeouts take no real time. A panic in `body` (a failed assertion, a panic that a
//! join passed on) or a deadlock report ends the search, and the panic that carries on names
//! the strategy, the seed, and the one line that replays it:
//!
//! ```text
//! spindle::check: pct (depth 2) failed at iteration 13 (seed 13); replay it with
//! spindle::check::replay_pct(13, 2, 57, body), or run the search again with SPINDLE_SEED=13:
//! assertion `left == right` failed ...
//! ```
//!
//! With `SPINDLE_SEED=<seed>` in the environment, [`random`] and [`pct`] run just that seed.
//!
//! # The failing run's trace
//!
//! With `SPINDLE_TRACE_DIR=<dir>` in the environment, a search that fails runs the failing seed
//! once more with a timeline trace on (see [`crate::RuntimeBuilder::trace`]) and writes it to
//! `<dir>/spindle-check-<strategy>-seed-<seed>.json` (the directory is created if need be); the
//! failure says where ([`Failure::trace`], and a line of its report). Open the file at
//! ui.perfetto.dev to see which coroutine ran when, what each waited on and who woke it. The
//! rerun is the same run: a seed and virtual time fix every choice, and tracing changes none.
//! [`Failure::write_trace`] does the same for one failure, to a path of your choice.
//!
//! # Strategies
//!
//! * [`random`]: each step runs a runnable coroutine chosen uniformly. Finds shallow races fast.
//! * [`pct`]: probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010). Each
//!   coroutine gets a random priority, the highest-priority runnable one always runs, and at
//!   `depth - 1` random steps the running one drops below all others. A bug that needs `d`
//!   ordering constraints to show up is found with probability at least `1 / (n k^(d-1))` per
//!   iteration, for `n` coroutines and `k` steps, where a uniform pick may need exponentially
//!   many. The step count `k` is measured by one random run of `body` first.
//!
//! # What a search can explore
//!
//! Only spindle's own scheduling choices: which runnable coroutine runs next (and which ready
//! arm a `select!` takes). Work outside the runtime (real sockets, `unblock`, other threads)
//! is not under its control; see the determinism contract in the crate docs.
//!
//! ```
//! use std::{cell::Cell, rc::Rc};
//!
//! // A check-then-act race across a yield: two coroutines may both see the slot free.
//! let found = spindle_runtime::check::search(spindle_runtime::check::Strategy::Random, 0, 1000, || {
//!     let taken = Rc::new(Cell::new(0));
//!     let hs: Vec<_> = (0..2)
//!         .map(|_| {
//!             let taken = taken.clone();
//!             spindle_runtime::spawn(move || {
//!                 if taken.get() == 0 {
//!                     spindle_runtime::yield_now(); // the window
//!                     taken.set(taken.get() + 1);
//!                 }
//!             })
//!         })
//!         .collect();
//!     hs.into_iter().for_each(|h| h.join().unwrap());
//!     assert_eq!(taken.get(), 1, "the slot was taken twice");
//! });
//! let failure = found.unwrap_err();
//! assert!(failure.message.contains("taken twice"));
//! ```

use std::fmt;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::runtime::Runtime;

/// How a search picks the next coroutine at each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Uniformly among the runnable coroutines.
    Random,
    /// PCT with this depth (see the module docs); depth 1 is one random priority order.
    Pct {
        /// Bug depth to aim for: `depth - 1` priority change points per run.
        depth: usize,
    },
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Random => f.write_str("random"),
            Strategy::Pct { depth } => write!(f, "pct (depth {depth})"),
        }
    }
}

/// The iteration that failed, and how to replay it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Failure {
    /// The strategy of the failing run (`Random` when PCT's first, step-counting run failed).
    pub strategy: Strategy,
    /// Iterations run, the failing one included.
    pub iterations: u64,
    /// The failing run's seed.
    pub seed: u64,
    /// For PCT, the step count the change points were drawn from (replay needs it).
    pub steps: usize,
    /// The panic's message (or the deadlock report).
    pub message: String,
    /// Where the failing run's trace was written, when `SPINDLE_TRACE_DIR` asked for one.
    pub trace: Option<PathBuf>,
}

impl Failure {
    /// Runs the failing seed again, as the search ran it, with a timeline trace written to
    /// `path` (Chrome trace-event JSON; see [`crate::RuntimeBuilder::trace`]). `body` is the
    /// body the search ran. An error if the file cannot be written, or if the rerun did not
    /// fail (then `body` depends on something outside the runtime, and the trace shows a run
    /// that passed).
    ///
    /// ```
    /// use spindle_runtime::check::{search, Strategy};
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// // A check-then-act race across a yield.
    /// let body = || {
    ///     let taken = Rc::new(Cell::new(false));
    ///     let hs: Vec<_> = (0..2)
    ///         .map(|_| {
    ///             let taken = taken.clone();
    ///             spindle_runtime::spawn(move || {
    ///                 if !taken.get() {
    ///                     spindle_runtime::yield_now();
    ///                     assert!(!taken.replace(true), "the slot was taken twice");
    ///                 }
    ///             })
    ///         })
    ///         .collect();
    ///     hs.into_iter().for_each(|h| h.join().unwrap());
    /// };
    /// let failure = search(Strategy::Random, 0, 1000, body).unwrap_err();
    /// let path = std::env::temp_dir().join(format!("check-doc-{}.json", std::process::id()));
    /// failure.write_trace(&path, body).unwrap();
    /// let trace = std::fs::read_to_string(&path).unwrap();
    /// assert!(trace.contains(r#""name":"run""#));
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn write_trace(&self, path: impl AsRef<Path>, body: impl FnOnce()) -> io::Result<()> {
        let path = path.as_ref();
        // Fail here, with the error, rather than inside the run.
        std::fs::File::create(path)?;
        let pct = match self.strategy {
            Strategy::Random => None,
            Strategy::Pct { depth } => Some((depth, self.steps)),
        };
        match run_once(self.seed, pct, Some(path), body) {
            Err(_) => Ok(()),
            Ok(_) => Err(io::Error::other(format!(
                "spindle::check: seed {} passed when run again with a trace, so its trace at {} \
                 shows a passing run: the body depends on something outside the runtime",
                self.seed,
                path.display()
            ))),
        }
    }

    /// The line that replays this failure.
    pub fn replay_line(&self) -> String {
        match self.strategy {
            Strategy::Random => format!("spindle::check::replay({}, body)", self.seed),
            Strategy::Pct { depth } => {
                format!("spindle::check::replay_pct({}, {depth}, {}, body)", self.seed, self.steps)
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spindle::check: {} failed at iteration {} (seed {}); replay it with {}, or run the \
             search again with SPINDLE_SEED={}:\n{}",
            self.strategy,
            self.iterations,
            self.seed,
            self.replay_line(),
            self.seed,
            self.message
        )?;
        if let Some(trace) = &self.trace {
            write!(f, "\nspindle::check: the failing run's trace is in {}", trace.display())?;
        }
        Ok(())
    }
}

/// Runs `body` under `iterations` random schedules (seeds 0, 1, 2, ...); panics with the
/// failing seed and its replay line at the first failure.
#[track_caller]
pub fn random(iterations: u64, body: impl Fn()) {
    fail_on(search(Strategy::Random, 0, iterations, body));
}

/// Runs `body` under `iterations` PCT schedules of `depth`; panics with the failing seed and
/// its replay line at the first failure.
#[track_caller]
pub fn pct(iterations: u64, depth: usize, body: impl Fn()) {
    fail_on(search(Strategy::Pct { depth }, 0, iterations, body));
}

/// Runs `body` once under the random schedule of `seed`, as [`random`] ran it; a failure
/// carries on as the original panic.
pub fn replay(seed: u64, body: impl FnOnce()) {
    if let Err((_, payload)) = run_once(seed, None, None, body) {
        resume_unwind(payload);
    }
}

/// Runs `body` once under the PCT schedule of `seed`, `depth` and `steps`, as [`pct`] ran it.
pub fn replay_pct(seed: u64, depth: usize, steps: usize, body: impl FnOnce()) {
    if let Err((_, payload)) = run_once(seed, Some((depth, steps)), None, body) {
        resume_unwind(payload);
    }
}

/// The search behind [`random`] and [`pct`]: seeds `base`, `base + 1`, ... up to `iterations`
/// of them; returns the first failure. With `SPINDLE_SEED` set, runs just that seed; with
/// `SPINDLE_TRACE_DIR` set, writes the failing run's trace there (see the module docs).
pub fn search(
    strategy: Strategy,
    base: u64,
    iterations: u64,
    body: impl Fn(),
) -> Result<(), Failure> {
    let mut result = search_untraced(strategy, base, iterations, &body);
    if let (Err(failure), Some(dir)) = (&mut result, std::env::var_os("SPINDLE_TRACE_DIR")) {
        let dir = PathBuf::from(dir);
        let name = match failure.strategy {
            Strategy::Random => format!("spindle-check-random-seed-{}.json", failure.seed),
            Strategy::Pct { depth } => {
                format!("spindle-check-pct{depth}-seed-{}.json", failure.seed)
            }
        };
        let path = dir.join(name);
        match std::fs::create_dir_all(&dir).and_then(|()| failure.write_trace(&path, &body)) {
            Ok(()) => failure.trace = Some(path),
            Err(e) => eprintln!("spindle::check: writing the failing run's trace failed: {e}"),
        }
    }
    result
}

fn search_untraced(
    strategy: Strategy,
    base: u64,
    iterations: u64,
    body: impl Fn(),
) -> Result<(), Failure> {
    let only = std::env::var("SPINDLE_SEED").ok().and_then(|s| parse_seed(&s));
    let steps = match strategy {
        Strategy::Random => 0,
        // One random run tells how many steps the program takes: PCT draws its change points
        // from that range.
        Strategy::Pct { .. } => match run_once(base ^ STEP_PROBE, None, None, &body) {
            Ok(steps) => steps,
            // The probe itself failed: that was a random schedule, and replays as one.
            Err((message, _)) => {
                let seed = base ^ STEP_PROBE;
                return Err(Failure {
                    strategy: Strategy::Random,
                    iterations: 1,
                    seed,
                    steps: 0,
                    message,
                    trace: None,
                });
            }
        },
    };
    let pct = match strategy {
        Strategy::Random => None,
        Strategy::Pct { depth } => Some((depth, steps)),
    };
    let seeds: Box<dyn Iterator<Item = u64>> = match only {
        Some(seed) => Box::new(std::iter::once(seed)),
        None => Box::new((0..iterations).map(|i| base.wrapping_add(i))),
    };
    for (i, seed) in seeds.enumerate() {
        if let Err((message, _)) = run_once(seed, pct, None, &body) {
            let iterations = i as u64 + 1;
            return Err(Failure { strategy, iterations, seed, steps, message, trace: None });
        }
    }
    Ok(())
}

/// Mixed into the base seed for the random run that measures PCT's step count.
const STEP_PROBE: u64 = 0x57e9_5c0f_7a11_e5ed;

/// One run of `body` in a fresh seeded, virtual-time runtime, traced to `trace` if given: its
/// step count, or the failure's message and payload.
fn run_once(
    seed: u64,
    pct: Option<(usize, usize)>,
    trace: Option<&Path>,
    body: impl FnOnce(),
) -> Result<usize, (String, Box<dyn std::any::Any + Send>)> {
    let mut builder = Runtime::builder().seed(seed).virtual_time(true);
    if let Some((depth, steps)) = pct {
        builder = builder.pct(depth, steps);
    }
    if let Some(path) = trace {
        builder = builder.trace(path);
    }
    let runtime = builder.build().map_err(|e| {
        (format!("spindle::check: cannot build a runtime: {e}"), Box::new(()) as Box<_>)
    })?;
    match catch_unwind(AssertUnwindSafe(|| runtime.run(body))) {
        Ok(()) => Ok(runtime.seeded_steps()),
        Err(payload) => Err((message_of(&*payload), payload)),
    }
}

/// The text of a panic payload.
fn message_of(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// A seed as decimal or `0x` hexadecimal.
fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

#[track_caller]
fn fail_on(result: Result<(), Failure>) {
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
