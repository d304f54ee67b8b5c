//! Coroutines: spawning, naming, joining and cancelling them.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use crate::context::{self, with_core};
use crate::panic::{report_unjoined, unjoined_report, Panic};
use crate::park::{self, Reason, Wake, Waker};
use crate::scheduler::{CancelUnwind, Core};
use crate::task::Yielder;

/// A coroutine's identity: its id (unique within its runtime, main is the first) and name.
/// Cheap to clone. Display shows `#id 'name'`.
#[derive(Clone)]
pub struct Coroutine {
    id: u64,
    name: Option<Rc<str>>,
    key: usize,
    runtime_id: u64,
}

impl Coroutine {
    /// Id, unique within the runtime for its whole life. The main coroutine has the smallest.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Name given with [`Builder::name`]; `"main"` for the main coroutine.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// True until the coroutine has finished (false outside its runtime).
    pub fn is_alive(&self) -> bool {
        with_core(|core| core.runtime_id == self.runtime_id && core.is_alive(self.key, self.id))
            .unwrap_or(false)
    }

    /// Its slot in the runtime's table (with the id, what names it to the scheduler).
    pub(crate) fn key(&self) -> usize {
        self.key
    }

    /// Cancels the coroutine, as [`JoinHandle::cancel`] does (for scopes and pools, which
    /// hold the identity but not the handle).
    pub(crate) fn cancel_inner(&self) {
        with_core(|core| {
            if core.runtime_id == self.runtime_id {
                core.cancel(self.key, self.id);
            }
        });
    }

    /// Its counters while it lives, `None` after it finished or unless the runtime was built
    /// with [`crate::RuntimeBuilder::stats`].
    pub fn stats(&self) -> Option<crate::CoroutineStats> {
        with_core(|core| {
            if core.runtime_id == self.runtime_id {
                core.coroutine_stats(self.key, self.id)
            } else {
                None
            }
        })
        .flatten()
    }

    /// How deep its stack has been used, in bytes: the high-water mark, from the top of the
    /// stack down to the lowest page the kernel reports resident (`mincore`), so whole pages,
    /// at least one (its record lives in the top one). 0 once it has finished or outside its
    /// runtime.
    ///
    /// A stack reused from the pool whose pages were still resident reports the deepest of the
    /// coroutines that ran on it, if that is deeper: for one coroutine an upper bound, and over
    /// all of a program's coroutines exactly the deepest any of them went, which is what
    /// [`Builder::stack_size`] should cover. Pages swapped out are not counted. One system call;
    /// not for hot paths.
    ///
    /// ```
    /// let used = spindle_runtime::run(|| {
    ///     let h = spindle_runtime::spawn(|| {
    ///         let buf = std::hint::black_box([1u8; 20_000]);
    ///         let _ = std::hint::black_box(&buf);
    ///         spindle_runtime::current().stack_used()
    ///     });
    ///     h.join().unwrap()
    /// });
    /// assert!(used > 20_000 && used <= spindle_runtime::DEFAULT_STACK_SIZE, "{used}");
    /// ```
    pub fn stack_used(&self) -> usize {
        with_core(|core| {
            if core.runtime_id == self.runtime_id {
                core.stack_used(self.key, self.id)
            } else {
                None
            }
        })
        .flatten()
        .unwrap_or(0)
    }

    /// What it is parked on right now, or `None` if it is running, runnable or finished.
    pub fn parked_on(&self) -> Option<Reason> {
        with_core(|core| {
            if core.runtime_id == self.runtime_id {
                core.parked_on(self.key, self.id)
            } else {
                None
            }
        })
        .flatten()
    }
}

impl PartialEq for Coroutine {
    fn eq(&self, other: &Coroutine) -> bool {
        self.id == other.id && self.runtime_id == other.runtime_id
    }
}

impl Eq for Coroutine {}

impl fmt::Debug for Coroutine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coroutine").field("id", &self.id).field("name", &self.name).finish()
    }
}

impl fmt::Display for Coroutine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " '{name}'")?;
        }
        Ok(())
    }
}

/// Why [`JoinHandle::join`] did not return the coroutine's value.
///
/// More reasons may be added: a `match` outside this crate needs a `_` arm, or use
/// [`JoinError::is_panic`], [`JoinError::is_cancelled`] and [`JoinError::into_panic`].
#[derive(Debug)]
#[non_exhaustive]
pub enum JoinError {
    /// The coroutine panicked. [`Panic`] holds the payload, message and location.
    Panicked(Panic),
    /// The coroutine was cancelled before it finished.
    Cancelled,
    /// [`JoinHandle::join_timeout`] gave up waiting; the coroutine still runs and the handle
    /// can be joined again.
    TimedOut,
}

impl JoinError {
    /// True for [`JoinError::Panicked`].
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }

    /// True for [`JoinError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }

    /// The panic, if the coroutine panicked.
    pub fn into_panic(self) -> Option<Panic> {
        match self {
            JoinError::Panicked(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(p) => write!(f, "coroutine {p}"),
            JoinError::Cancelled => f.write_str("coroutine was cancelled"),
            JoinError::TimedOut => f.write_str("timed out waiting for the coroutine to finish"),
        }
    }
}

impl std::error::Error for JoinError {}

/// What a coroutine and its handle share.
struct JoinShared<T> {
    /// The outcome, once the coroutine finished and until the handle takes it.
    outcome: Cell<Option<Result<T, JoinError>>>,
    /// Set when the coroutine finished (even after the outcome was taken).
    finished: Cell<bool>,
    /// The coroutine parked in `join`, if any.
    waiter: Cell<Option<Waker>>,
    /// Set while its panic waits in `outcome` for the handle: the handle clears it when it takes
    /// the outcome (join) or reports the panic (drop); if it is still set when `run` ends (the
    /// handle was forgotten, or outlived the runtime), the runtime reports the panic then, and
    /// clears it so that nobody reports it twice.
    unjoined: Rc<Cell<bool>>,
    coroutine: Coroutine,
}

/// Owned permission to join a coroutine: wait for it, take its value, or cancel it.
///
/// Dropping the handle detaches the coroutine: it runs on, and if it panics the panic is
/// reported on stderr since nobody can join it any more. Not `Send`: handles stay on the
/// runtime's thread.
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<spindle_runtime::JoinHandle<()>>();
/// ```
pub struct JoinHandle<T> {
    shared: Rc<JoinShared<T>>,
}

impl<T> JoinHandle<T> {
    /// Waits for the coroutine to finish and returns its value, or how it failed.
    ///
    /// # Panics
    /// If called outside the runtime while the coroutine has not finished, if a coroutine joins
    /// itself, or if [`JoinHandle::join_timeout`] already took the outcome.
    #[track_caller]
    pub fn join(mut self) -> Result<T, JoinError> {
        self.wait(None)
    }

    /// Like [`JoinHandle::join`] but gives up after `timeout` with [`JoinError::TimedOut`],
    /// leaving the handle usable. (Takes `&mut self` rather than `self` for that reason.)
    #[track_caller]
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<T, JoinError> {
        let deadline = context::saturating_add(context::now(), timeout);
        self.wait(Some(deadline))
    }

    #[track_caller]
    fn wait(&mut self, deadline: Option<std::time::Instant>) -> Result<T, JoinError> {
        let shared = &self.shared;
        loop {
            if let Some(outcome) = shared.outcome.take() {
                shared.unjoined.set(false);
                return outcome;
            }
            if shared.finished.get() {
                panic!(
                    "spindle: JoinHandle joined again after join_timeout already took its outcome"
                );
            }
            let me = context::current_id();
            if me == Some(shared.coroutine.id) {
                panic!("spindle: coroutine {} tried to join itself", shared.coroutine);
            }
            let reason = Reason::coroutine("JoinHandle::join", shared.coroutine.id);
            match park::park(reason, deadline, |w| shared.waiter.set(Some(w))) {
                Wake::Notified => continue,
                Wake::TimedOut => {
                    shared.waiter.set(None);
                    return Err(JoinError::TimedOut);
                }
                Wake::Cancelled => {
                    shared.waiter.set(None);
                    park::unwind();
                }
            }
        }
    }

    /// True once the coroutine has finished (returned, panicked or been cancelled).
    pub fn is_finished(&self) -> bool {
        self.shared.finished.get()
    }

    /// Asks the coroutine to stop: if parked it wakes with `Cancelled` and unwinds, running its
    /// destructors; if runnable it unwinds at its next park or yield; if it never ran it never
    /// will. Returns at once; `join` afterwards returns `Err(JoinError::Cancelled)` unless it
    /// finished first. Cancelling a finished coroutine does nothing.
    #[track_caller]
    pub fn cancel(&self) {
        if self.shared.finished.get() {
            return;
        }
        let c = &self.shared.coroutine;
        context::expect_core("JoinHandle::cancel", |core| {
            if core.runtime_id == c.runtime_id {
                core.cancel(c.key, c.id);
            }
        });
    }

    /// The coroutine this handle joins.
    pub fn coroutine(&self) -> &Coroutine {
        &self.shared.coroutine
    }

    /// The outcome, if the coroutine finished and nobody took it yet, without waiting (what a
    /// `RemoteJoinHandle`'s coroutine hands on when it ends).
    pub(crate) fn take_outcome(&self) -> Option<Result<T, JoinError>> {
        let outcome = self.shared.outcome.take();
        if outcome.is_some() {
            self.shared.unjoined.set(false);
        }
        outcome
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(Err(JoinError::Panicked(panic))) = self.shared.outcome.take() {
            if self.shared.unjoined.replace(false) {
                report_unjoined(&self.shared.coroutine, &panic);
            }
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("coroutine", &self.shared.coroutine)
            .field("finished", &self.shared.finished.get())
            .finish()
    }
}

/// Configures a coroutine before spawning it (std's `thread::Builder`, Python's `Thread(...)`).
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
    daemon: Option<bool>,
}

impl Builder {
    /// Default settings: unnamed, the runtime's stack size, daemon status of the spawner.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the coroutine (shown in panics, overflow and deadlock reports).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// The name given with [`Builder::name`], if any.
    pub(crate) fn name_ref(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Usable stack size in bytes, rounded up to whole pages, at least 16 KiB
    /// ([`crate::MIN_STACK_SIZE`]), at most [`crate::MAX_STACK_SIZE`] (1 GiB): a larger one
    /// makes [`Builder::spawn`] fail with [`io::ErrorKind::InvalidInput`].
    /// [`Coroutine::stack_used`] tells how much a coroutine used.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// A daemon coroutine does not keep `run` going: when `main` and every non-daemon
    /// coroutine have finished, daemons still alive are cancelled. By default a coroutine
    /// inherits the status of the coroutine that spawns it (main is not a daemon), as
    /// Python threads do.
    pub fn daemon(mut self, daemon: bool) -> Builder {
        self.daemon = Some(daemon);
        self
    }

    /// Spawns `f` as a new coroutine; it first runs when the spawner next parks or yields.
    ///
    /// # Errors
    /// * [`io::ErrorKind::InvalidInput`] if the stack size is larger than
    ///   [`crate::MAX_STACK_SIZE`].
    /// * When no stack can be mapped. On kernels without guard regions (before Linux 6.13), or
    ///   with `RuntimeBuilder::guard_regions(false)`, a guarded stack costs two memory mappings
    ///   and past ~32k live coroutines the error ([`io::ErrorKind::OutOfMemory`]) names
    ///   `vm.max_map_count` and the ways past it (see the crate docs, "Many coroutines"). The
    ///   runtime leaves mappings to spare for the rest of the program, so it goes on working
    ///   after this error.
    ///
    /// # Panics
    /// Outside a running spindle runtime.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        context::expect_core("spawn", |core| spawn_in(core, self, f))
    }
}

fn spawn_in<F, T>(core: &Core, builder: Builder, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    // SAFETY: `f` and `T` are 'static, so the coroutine borrows nothing that could go away.
    unsafe { spawn_raw(core, builder, f, ()) }
}

/// Spawns `f`; `on_exit` is dropped as the very last thing the coroutine does (after its
/// outcome is delivered), even if it was cancelled before it ran.
///
/// # Safety
/// Everything `f`, `T` and `on_exit` borrow must stay valid until the coroutine has finished.
pub(crate) unsafe fn spawn_raw<F, T, X>(
    core: &Core,
    builder: Builder,
    f: F,
    on_exit: X,
) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T,
{
    let daemon =
        builder.daemon.unwrap_or_else(|| core.current_coroutine().is_some_and(|c| c.daemon));
    let name: Option<Rc<str>> = builder.name.map(Rc::from);
    let stack_size = builder.stack_size.unwrap_or(core.config.stack_size);
    let runtime_id = core.runtime_id;

    let mut handle = None;
    let make_body = |key, id| {
        let shared = Rc::new(JoinShared {
            outcome: Cell::new(None),
            finished: Cell::new(false),
            waiter: Cell::new(None),
            unjoined: Rc::new(Cell::new(false)),
            coroutine: Coroutine { id, name: name.clone(), key, runtime_id },
        });
        let theirs = shared.clone();
        handle = Some(JoinHandle { shared });
        move |yielder: &Yielder, ()| {
            let _on_exit = on_exit; // declared first, dropped last
            let cancelled_early = with_core(|core| core.started(yielder)).unwrap_or(true);
            let outcome = if cancelled_early {
                // Its captures' destructors run shielded, as a cancelled coroutine's do.
                let _shield = with_core(|core| core.shield_current());
                let _ = catch_unwind(AssertUnwindSafe(move || drop(f)));
                Err(JoinError::Cancelled)
            } else {
                match catch_unwind(AssertUnwindSafe(f)) {
                    Ok(value) => Ok(value),
                    Err(payload) if payload.is::<CancelUnwind>() => Err(JoinError::Cancelled),
                    Err(payload) => Err(JoinError::Panicked(Panic::new(payload, id))),
                }
            };
            // Locals are dropped here, on the coroutine's own stack, where they may still park.
            with_core(|core| core.drop_locals());
            deliver(theirs, outcome);
        }
    };
    // SAFETY: forwarded to our caller.
    unsafe { core.spawn(name.clone(), stack_size, daemon, make_body) }?;
    Ok(handle.expect("spawn called the body maker"))
}

/// Stores the outcome for the handle and wakes a joiner; reports a panic nobody can join.
fn deliver<T>(shared: Rc<JoinShared<T>>, outcome: Result<T, JoinError>) {
    shared.finished.set(true);
    if Rc::strong_count(&shared) == 1 {
        // The handle is gone: nobody will ever join.
        if let Err(JoinError::Panicked(panic)) = &outcome {
            report_unjoined(&shared.coroutine, panic);
        }
        return;
    }
    // A handle that is forgotten (`mem::forget`) never drops to report its panic: the runtime
    // reports it when `run` ends, unless the handle took it by then.
    if let Err(JoinError::Panicked(panic)) = &outcome {
        let text = unjoined_report(&shared.coroutine, panic);
        let unjoined = shared.unjoined.clone();
        unjoined.set(true);
        with_core(|core| {
            core.check_at_end(Box::new(move |report| {
                if report && unjoined.replace(false) {
                    eprintln!("{text}");
                }
                unjoined.get()
            }))
        });
    }
    shared.outcome.set(Some(outcome));
    if let Some(waiter) = shared.waiter.take() {
        waiter.wake();
    }
}

/// Spawns a coroutine with default settings.
///
/// ```
/// let sum = spindle_runtime::run(|| {
///     let handles: Vec<_> = (1..=3).map(|i| spindle_runtime::spawn(move || i * 10)).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
/// });
/// assert_eq!(sum, 60);
/// ```
///
/// # Panics
/// Outside a running spindle runtime, or when no stack can be mapped (see [`Builder::spawn`]
/// for the error-returning form).
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    match Builder::new().spawn(f) {
        Ok(handle) => handle,
        Err(e) => panic!("spindle: spawn failed: {e}"),
    }
}

/// The coroutine calling this.
///
/// # Panics
/// Outside a coroutine of a running spindle runtime.
#[track_caller]
pub fn current() -> Coroutine {
    let current = with_core(|core| {
        core.current_coroutine().map(|c| Coroutine {
            id: c.id,
            name: c.name,
            key: c.key,
            runtime_id: core.runtime_id,
        })
    });
    match current.flatten() {
        Some(c) => c,
        None => context::outside_runtime("current"),
    }
}

/// Every coroutine alive in this runtime, main included, in slot order (Python's
/// `threading.enumerate`).
#[track_caller]
pub fn coroutines() -> Vec<Coroutine> {
    context::expect_core("coroutines", |core| {
        core.snapshot()
            .into_iter()
            .map(|c| Coroutine { id: c.id, name: c.name, key: c.key, runtime_id: core.runtime_id })
            .collect()
    })
}

/// Number of coroutines alive, main included (Python's `threading.active_count`).
#[track_caller]
pub fn active_count() -> usize {
    context::expect_core("active_count", |core| core.task_count())
}

/// Lets every other runnable coroutine run once before this one goes on. When nothing else is
/// runnable it goes on at once (if sockets or timers are pending, the scheduler still takes its
/// look at them every 64 resumptions). A cancelled coroutine unwinds here.
#[inline]
#[track_caller]
pub fn yield_now() {
    if !context::yield_current() {
        context::outside_runtime("yield_now");
    }
}
