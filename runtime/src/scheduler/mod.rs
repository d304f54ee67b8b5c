//! The scheduler: the coroutines of one runtime and the loop that drives them.
//!
//! A folder of parts, each owning one thing:
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` (this) | [`Core`]'s fields; spawning (`spawn`, `insert`), finishing, teardown, the queries handles make |
//! | [`crate::task`] | the task record and its state machine (park sequence, parked, woke, timer, flags) |
//! | `run_queue.rs` | the table of records and the run queue; every raw pointer to a record; prefetch; the seeded pick |
//! | `park.rs` | park, wake, yield, cancel, timeout scopes: the transitions a running coroutine or a waker asks for |
//! | `drive.rs` | the loop: resuming, polling the reactor, idle waits, firing timers, remote wakes, the deadlock report |
//! | `clock.rs` | the real or virtual clock |
//! | `config.rs` | the settings the runtime was built with |
//!
//! The drivers it owns (reactor, timers, remote-wake queue, stack pool, blocking pool,
//! watchdog) import nothing of it: they hand back what woke (the reactor returns its wakers),
//! and the scheduler applies it. Public functions reach the running core through
//! [`crate::context`].
//!
//! # The loop
//!
//! ```text
//! loop:
//!     resume runnable coroutines in FIFO order (seeded order with RuntimeBuilder::seed);
//!         every EVENT_INTERVAL resumptions: poll the reactor with a zero timeout, fire due timers
//!     nothing runnable:
//!         everything finished              -> return
//!         fire due timers, apply remote wakes; if that made something runnable, go on
//!         nothing can ever wake anyone     -> deadlock report
//!         poll the reactor until the next timer is due (virtual time: jump to it)
//! ```
//!
//! # Fairness and ordering
//!
//! Without a seed, coroutines run in the order they became runnable: spawn, `yield_now` and every
//! wake append to the back of one queue. A coroutine keeps the thread until it parks or yields;
//! nothing preempts it. Timers fire in deadline order, ties in the order they were set. With a
//! seed, each step picks a runnable coroutine at random from a generator seeded with it, so a
//! run can explore other interleavings and repeat any of them exactly.
//!
//! # Shutdown
//!
//! When `main` and every non-daemon coroutine have finished, or `main` panicked, every coroutine
//! still alive is cancelled (its parks return `Cancelled`, it unwinds) and the loop runs until
//! the table is empty. A coroutine spawned during that teardown starts cancelled.

mod clock;
mod config;
mod drive;
mod names;
mod park;
mod run_queue;
mod stats;
mod trace;

pub(crate) use config::Config;
pub(crate) use park::{CancelUnwind, ElapsedUnwind};
pub use stats::{CoroutineStats, Stats};
pub(crate) use trace::TraceConfig;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;

use crate::overflow::Header;
use crate::reactor::driver::Reactor;
use crate::remote::{Job, RemoteShared, RemoteWaker};
use crate::rng::Rng;
use crate::stack::{Guards, Stack, StackPool};
use crate::task::{Coro, Task, TaskView, Yielder};
use crate::thread_pool::BlockingPool;
use crate::timer::Timers;
use crate::wake::{Reason, Waker};
use crate::watchdog::Watchdog;
use clock::Clock;
use run_queue::{Pct, RecordSlot, Runnable, Tasks};

/// `main_key` when no main coroutine exists.
const NO_TASK: usize = usize::MAX;

/// A check `run` makes when it ends (see `Core::check_at_end`).
pub(crate) type EndCheck = Box<dyn Fn(bool) -> bool>;

/// Mixed into the seed for the stream of choices, so that it differs from the pick stream.
const CHOICES_STREAM: u64 = 0x5e1e_c7a2_c401_ce5d;

/// Mixed into the seed for PCT's change points.
const PCT_STREAM: u64 = 0x9c7f_03a1_5eed_0b7e;

/// Rounds of dropping a finished coroutine's locals while their destructors make new ones.
const LOCAL_DROP_ROUNDS: usize = 8;

/// One runtime's state: its coroutines, their run queue, its clock and its drivers.
pub(crate) struct Core {
    /// Distinguishes runtimes, so a handle from one cannot touch a coroutine of another.
    pub(crate) runtime_id: u64,
    pub(crate) config: Config,
    /// The records of the coroutines alive, the run queue, the running one.
    tasks: Tasks,
    /// Slot of the main coroutine, [`NO_TASK`] when none runs.
    main_key: Cell<usize>,
    main_done: Cell<bool>,
    main_panicked: Cell<bool>,
    /// Set once shutdown began: everything alive has been cancelled.
    tearing_down: Cell<bool>,
    /// Non-daemon coroutines alive, main excluded.
    non_daemon: Cell<usize>,
    timers: RefCell<Timers>,
    clock: Clock,
    /// Shared with every `Registration`, which reaches its table entry through it.
    reactor: Rc<Reactor>,
    /// Wakers the last poll collected, kept to reuse the allocation.
    wake_buffer: Cell<Vec<Waker>>,
    stacks: RefCell<StackPool>,
    /// The door from other threads: remote wakes, and the jobs of `Handle`s.
    remote: Arc<RemoteShared>,
    /// Buffers `drive::apply_remote` drains the door into, kept to reuse their allocations.
    remote_buffer: RefCell<Vec<(usize, u64)>>,
    remote_jobs: RefCell<Vec<Job>>,
    next_id: Cell<u64>,
    /// The next park's sequence number (and timeout scope id); never 0. Unique per thread:
    /// raised to the thread's floor whenever `run` starts (see `context::enter`).
    next_seq: Cell<u64>,
    /// Threads for `unblock`, started on first use.
    blocking: std::cell::OnceCell<Arc<BlockingPool>>,
    /// Checks to make when `run` ends, each `f(report) -> still pending`: panics of coroutines
    /// whose handles were not joined nor dropped (forgotten ones never drop).
    end_checks: RefCell<Vec<EndCheck>>,
    /// Random choices the runtime makes for its primitives (which ready `select!` arm wins),
    /// drawn from the runtime's seed, or a fixed one, so that a seeded run repeats them.
    choices: Cell<Rng>,
    /// Reports coroutines that hold the thread too long, when configured.
    watchdog: Option<Watchdog>,
    /// Counting, when built with `stats(true)`.
    counting: Option<stats::Counting>,
    /// The timeline trace, when built with `trace(path)`.
    tracer: Option<trace::Tracer>,
    /// A watchdog is set, stacks are unguarded or stats are on: `resume` has work around each
    /// switch.
    switch_hooks: bool,
    /// Numbers of waited-on objects and holders of waited-for locks.
    names: names::Names,
}

static RUNTIME_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Drop for Core {
    fn drop(&mut self) {
        // The runtime has finished: `Handle::spawn` fails from now on, and the jobs still
        // queued are dropped unrun (a spawn request's joiner sees `JoinError::Cancelled`).
        drop(self.remote.close());
        // Records still in the table (only if the loop itself panicked) are leaked with their
        // stacks: their coroutines never run again, and the pool unmaps the memory.
        if let Some(pool) = self.blocking.get() {
            pool.shutdown();
        }
    }
}

impl Core {
    pub(crate) fn new(config: Config) -> io::Result<Rc<Core>> {
        let reactor = Rc::new(Reactor::new()?);
        let runtime_id = RUNTIME_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let remote = Arc::new(RemoteShared::new(reactor.make_waker()?, runtime_id));
        let watchdog = config.watchdog.as_ref().map(Watchdog::start).transpose()?;
        let guarded = config.guarded;
        let counting = config.stats.then(|| stats::Counting::new(!config.virtual_time));
        let tracer = config.trace.clone().map(trace::Tracer::new);
        let choices = Rng::new(config.seed.unwrap_or(0) ^ CHOICES_STREAM);
        let tasks = Tasks::new(config.seed);
        let clock = Clock::new(config.virtual_time);
        let timers = Timers::new();
        if let (Some(seed), Some((depth, steps))) = (config.seed, config.pct) {
            tasks.set_pct(Pct::new(depth, steps, &mut Rng::new(seed ^ PCT_STREAM)));
        }
        Ok(Rc::new(Core {
            runtime_id,
            stacks: RefCell::new(StackPool::new(
                Guards::choose(config.guarded, config.guard_regions),
                config.pool_limit,
            )),
            clock,
            tasks,
            config,
            main_key: Cell::new(NO_TASK),
            main_done: Cell::new(false),
            main_panicked: Cell::new(false),
            tearing_down: Cell::new(false),
            non_daemon: Cell::new(0),
            timers: RefCell::new(timers),
            reactor,
            wake_buffer: Cell::new(Vec::new()),
            remote,
            remote_buffer: RefCell::new(Vec::new()),
            remote_jobs: RefCell::new(Vec::new()),
            next_id: Cell::new(0),
            next_seq: Cell::new(1),
            blocking: std::cell::OnceCell::new(),
            end_checks: RefCell::new(Vec::new()),
            // A stream of its own, so that choices do not shift the seeded schedule's picks.
            choices: Cell::new(choices),
            switch_hooks: watchdog.is_some() || !guarded || counting.is_some() || tracer.is_some(),
            counting,
            tracer,
            watchdog,
            names: names::Names::default(),
        }))
    }

    /// The reactor, for registering I/O sources.
    pub(crate) fn reactor(&self) -> &Rc<Reactor> {
        &self.reactor
    }

    /// The runtime's time: real, or virtual when built with `virtual_time(true)`.
    #[inline]
    pub(crate) fn now(&self) -> std::time::Instant {
        self.clock.now()
    }

    /// The tick (see `clock`) `timeout` from now, saturating as `time::deadline_after` does.
    #[inline]
    pub(crate) fn tick_after(&self, timeout: std::time::Duration) -> u64 {
        self.clock.tick_after(timeout)
    }

    /// The tick of `instant` on the runtime's clock.
    #[inline]
    pub(crate) fn tick(&self, instant: std::time::Instant) -> u64 {
        self.clock.tick(instant)
    }

    /// Makes the next sequence number at least `floor`.
    pub(crate) fn raise_next_seq(&self, floor: u64) {
        self.next_seq.set(self.next_seq.get().max(floor));
    }

    /// The first sequence number this runtime has not used.
    pub(crate) fn next_seq_unused(&self) -> u64 {
        self.next_seq.get()
    }

    /// A fresh park sequence number (also used for timeout scope ids).
    #[inline(always)]
    fn next_seq(&self) -> u64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        seq
    }

    // ----- queries ------------------------------------------------------------------------

    /// The running coroutine, `None` while the scheduler itself runs.
    pub(crate) fn current_coroutine(&self) -> Option<TaskView> {
        self.tasks.with_current(TaskView::of)
    }

    /// Id of the running coroutine.
    #[inline]
    pub(crate) fn current_id(&self) -> Option<u64> {
        self.tasks.with_current(|t| t.id)
    }

    /// True while a coroutine other than main runs (for the panic hook).
    pub(crate) fn in_spawned_coroutine(&self) -> bool {
        self.tasks.with_current(|t| t.key != self.main_key.get()).unwrap_or(false)
    }

    /// The running coroutine's overflow header, null if none runs (see
    /// `context::running_header`).
    pub(crate) fn running_header(&self) -> *const Header {
        let task = self.tasks.current_ptr();
        if task.is_null() {
            return ptr::null();
        }
        // SAFETY: a non-null `current` is the live record of the running coroutine; only the
        // field's address is taken.
        unsafe { ptr::addr_of!((*task).header) }
    }

    /// `(key, id, name, daemon)` of every coroutine alive.
    pub(crate) fn snapshot(&self) -> Vec<TaskView> {
        let mut views = Vec::with_capacity(self.tasks.len());
        self.tasks.for_each_task(|t| views.push(TaskView::of(t)));
        views
    }

    /// Scheduling steps taken so far in a seeded run.
    pub(crate) fn seeded_steps(&self) -> usize {
        self.tasks.seeded_steps()
    }

    /// Number of coroutines alive, main included.
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Id of the coroutine in slot `key`.
    pub(crate) fn task_id(&self, key: usize) -> Option<u64> {
        self.tasks.with_task(key, |t| t.id)
    }

    /// What the coroutine in `key` (with `id`) is parked on, `None` if it is not parked.
    pub(crate) fn parked_on(&self, key: usize, id: u64) -> Option<Reason> {
        self.tasks.with_task(key, |t| (t.id == id && t.is_parked()).then(|| t.reason())).flatten()
    }

    /// How deep the stack of the coroutine in `key` (with `id`) has been used, in bytes (see
    /// `stack::touched_depth`); `None` if it has finished.
    pub(crate) fn stack_used(&self, key: usize, id: u64) -> Option<usize> {
        self.tasks.with_task(key, |t| (t.id == id).then(|| t.stack_used())).flatten()
    }

    /// How this runtime's stacks are guarded.
    pub(crate) fn stack_guards(&self) -> Guards {
        self.stacks.borrow().guards()
    }

    pub(crate) fn is_alive(&self, key: usize, id: u64) -> bool {
        self.tasks.with_task(key, |t| t.id == id).unwrap_or(false)
    }

    // ----- spawning and finishing -----------------------------------------------------------

    /// Puts a new coroutine with `body` in the table and the run queue. `'static` bodies only:
    /// see [`Core::spawn_main`] for the borrowing one.
    /// `make_body` learns the slot and id the coroutine will have before it builds the body.
    ///
    /// # Safety
    /// Whatever `F` borrows must outlive the coroutine: the caller guarantees the coroutine
    /// finishes before the borrowed data goes away (trivially true for `F: 'static`).
    pub(crate) unsafe fn spawn<F>(
        &self,
        name: Option<Rc<str>>,
        stack_size: usize,
        daemon: bool,
        make_body: impl FnOnce(usize, u64) -> F,
    ) -> io::Result<(usize, u64)>
    where
        F: FnOnce(&Yielder, ()),
    {
        let stack = self.stacks.borrow_mut().take(stack_size)?;
        let key = self.tasks.vacant_key();
        let id = self.next_id.get();
        let body = make_body(key, id);
        // SAFETY: forwarded to our caller, see above. The scheduler never leaks a coroutine:
        // `run_main` returns only once the table is empty.
        let assigned = self.insert(stack, name, daemon, |stack| unsafe {
            Coro::with_stack_unchecked(stack, body)
        });
        debug_assert_eq!(assigned, (key, id));
        Ok(assigned)
    }

    /// Like `spawn`, for the main closure, which may borrow from `run`'s caller.
    ///
    /// # Safety
    /// The caller must drive the coroutine to completion (or unwind it) before anything `body`
    /// borrows goes away, and never leak it.
    unsafe fn spawn_main<F>(&self, body: F) -> io::Result<usize>
    where
        F: FnOnce(&Yielder, ()),
    {
        let stack = self.stacks.borrow_mut().take(self.config.main_stack_size)?;
        // SAFETY: forwarded to our caller, see above.
        let (key, _) = self.insert(stack, Some(Rc::from("main")), false, |stack| unsafe {
            Coro::with_stack_unchecked(stack, body)
        });
        // main is not counted among the non-daemons: it is waited for separately.
        self.non_daemon.set(self.non_daemon.get() - 1);
        Ok(key)
    }

    /// Writes the record of a new coroutine at the top of `stack`, the coroutine made by `make`
    /// from the stack inside it, and puts it in the table and the run queue.
    fn insert(
        &self,
        stack: Stack,
        name: Option<Rc<str>>,
        daemon: bool,
        make: impl FnOnce(Stack) -> Coro,
    ) -> (usize, u64) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        // SAFETY: the record slot of `stack`, which the new coroutine owns from here on.
        let slot = unsafe { RecordSlot::new(stack.record_slot()) };
        let (lo, hi) = stack.overflow_range();
        let header = Header {
            lo,
            hi,
            base: stack.base(),
            stack_size: stack.size(),
            guarded: stack.is_guarded(),
            id,
            name: name.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
            name_len: name.as_ref().map_or(0, |n| n.len()),
        };
        let canary = (!stack.is_guarded()).then_some(stack.bottom());
        let cancelled = self.tearing_down.get();
        let name_for_watchdog = if self.watchdog.is_some() { name.clone() } else { None };
        let name_for_trace = if self.tracer.is_some() { name.clone() } else { None };
        let key = self.tasks.insert(slot, |key| {
            Task::new(key, id, make(stack), header, name, daemon, canary, cancelled)
        });
        if !daemon {
            self.non_daemon.set(self.non_daemon.get() + 1);
        }
        if let (Some(watchdog), Some(name)) = (&self.watchdog, &name_for_watchdog) {
            watchdog.named(id, name);
        }
        if self.counting.is_some() {
            self.count_spawn(self.tasks.len());
        }
        if self.tracer.is_some() {
            self.trace_spawn(key, id, name_for_trace.as_deref());
        }
        (key, id)
    }

    /// Called by a coroutine body first thing: records its yielder. Returns whether the
    /// coroutine was cancelled before it ever ran (then the body must not run user code).
    pub(crate) fn started(&self, yielder: &Yielder) -> bool {
        self.with_running("coroutine start", |task| {
            task.yielder.set(yielder);
            task.is_cancelled()
        })
    }

    /// Marks that main finished, and how.
    pub(crate) fn set_main_panicked(&self, panicked: bool) {
        self.main_panicked.set(panicked);
    }

    /// Frees a finished coroutine's slot, record and stack; starts shutdown when it is time.
    #[inline(never)]
    fn finish(&self, finished: Runnable) {
        let (key, daemon) = (finished.task().key, finished.task().daemon);
        if self.counting.is_some() {
            self.count_finish(finished.task());
        }
        if self.tracer.is_some() {
            self.trace_finish(finished.task());
        }
        if let Some(watchdog) = &self.watchdog {
            if finished.task().name.is_some() {
                watchdog.forget(finished.task().id);
            }
        }
        let stack = self.tasks.remove(finished);
        self.stacks.borrow_mut().release(stack);
        if key == self.main_key.get() {
            self.main_done.set(true);
        } else if !daemon {
            self.non_daemon.set(self.non_daemon.get() - 1);
        }
        let done = self.main_done.get() && (self.non_daemon.get() == 0 || self.main_panicked.get());
        if done && !self.tearing_down.get() {
            self.tearing_down.set(true);
            self.cancel_all();
        }
    }

    /// Teardown: cancels every coroutine alive.
    fn cancel_all(&self) {
        self.trace_waking_from("teardown");
        self.tasks.for_each_task(|task| self.cancel_task(task));
    }

    /// `Handle::cancel_all`: tears the runtime down now, as when `main` panics. Every coroutine
    /// alive, main included, is cancelled, and every one spawned from now until `run` ends
    /// starts cancelled.
    pub(crate) fn shut_down(&self) {
        self.tearing_down.set(true);
        self.cancel_all();
    }

    // ----- what the running coroutine keeps -------------------------------------------------

    /// Runs `f` on the running coroutine's record.
    ///
    /// # Panics
    /// When the scheduler itself runs (no coroutine does), naming `what`.
    #[inline(always)]
    fn with_running<R>(&self, what: &str, f: impl FnOnce(&Task) -> R) -> R {
        match self.tasks.with_current(f) {
            Some(r) => r,
            None => not_in_coroutine(what),
        }
    }

    /// The running coroutine's value for `coroutine_local!` key `index`, made with `init` on
    /// first use. The pointer stays valid until the coroutine's locals are taken at its end.
    pub(crate) fn local<T: 'static>(&self, index: usize, init: fn() -> T) -> *const T {
        self.with_running("coroutine_local access", |task| {
            if let Some(Some(value)) = task.locals.borrow().get(index) {
                return value.downcast_ref::<T>().expect("one type per local key") as *const T;
            }
            // `init` may use the runtime (and other locals), so no borrow is held while it runs.
            let value: Box<dyn Any> = Box::new(init());
            let mut locals = task.locals.borrow_mut();
            if locals.len() <= index {
                locals.resize_with(index + 1, || None);
            }
            let slot = locals[index].get_or_insert(value);
            slot.downcast_ref::<T>().expect("one type per local key") as *const T
        })
    }

    /// Drops the running coroutine's `coroutine_local!` values, on its own stack, as its last
    /// act: each on its own (a panic in one is contained and the rest still drop), with its
    /// parks shielded (a destructor that locks or sleeps waits normally, even in a cancelled
    /// coroutine), and again while destructors made new ones, up to [`LOCAL_DROP_ROUNDS`]
    /// rounds. What is left after that is leaked, as std leaks thread-locals made during a
    /// thread's teardown, rather than dropped on the scheduler's stack.
    #[inline]
    pub(crate) fn drop_locals(&self) {
        // Most coroutines make none: then there is nothing to shield.
        if self.tasks.with_current(|task| task.locals.borrow().is_empty()).unwrap_or(true) {
            return;
        }
        self.drop_locals_slow();
    }

    #[cold]
    #[inline(never)]
    fn drop_locals_slow(&self) {
        let _shield = self.shield_current();
        for _ in 0..LOCAL_DROP_ROUNDS {
            let locals = self.take_locals();
            if locals.is_empty() {
                return;
            }
            for value in locals.into_iter().flatten() {
                let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
            }
        }
    }

    /// Takes the running coroutine's locals, so its body can drop them on its own stack.
    fn take_locals(&self) -> Vec<Option<Box<dyn Any>>> {
        self.tasks
            .with_current(|task| std::mem::take(&mut *task.locals.borrow_mut()))
            .unwrap_or_default()
    }

    /// Makes `check(true)` when `run` ends; `check(false)` says whether it is still needed,
    /// so that the list is pruned as it grows.
    pub(crate) fn check_at_end(&self, check: EndCheck) {
        let mut checks = self.end_checks.borrow_mut();
        if checks.len() >= 64 && checks.len().is_power_of_two() {
            checks.retain(|c| c(false));
        }
        checks.push(check);
    }

    /// Runs the checks registered with `check_at_end`.
    pub(super) fn run_end_checks(&self) {
        let checks = std::mem::take(&mut *self.end_checks.borrow_mut());
        for check in checks {
            check(true);
        }
    }

    /// A number in `0..n` from the runtime's stream of choices (see `choices`); 0 when `n` is
    /// 0 or 1.
    pub(crate) fn choose(&self, n: usize) -> usize {
        if n < 2 {
            return 0;
        }
        let mut rng = self.choices.get();
        let pick = rng.below(n as u64) as usize;
        self.choices.set(rng);
        pick
    }

    /// The runtime's blocking pool, created on first use.
    pub(crate) fn blocking_pool(&self) -> Arc<BlockingPool> {
        self.blocking
            .get_or_init(|| {
                BlockingPool::new(self.config.blocking_threads, self.config.blocking_keep_alive)
            })
            .clone()
    }

    pub(crate) fn remote_waker(&self, waker: Waker) -> RemoteWaker {
        RemoteWaker::new(self.remote.clone(), waker.key, waker.seq)
    }

    /// The door other threads reach this runtime through (what a `Handle` holds).
    pub(crate) fn remote(&self) -> &Arc<RemoteShared> {
        &self.remote
    }
}

#[cold]
#[inline(never)]
fn not_in_coroutine(what: &str) -> ! {
    panic!("spindle: {what} must be called from a coroutine, not from runtime internals");
}
