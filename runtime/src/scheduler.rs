//! The scheduler: the table of coroutines, the run queue, and the loop that drives them.
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

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::marker::PhantomData;
use std::ptr;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::CoroutineResult;
use slab::Slab;

use crate::blocking::BlockingPool;
use crate::overflow::{self, Header};
use crate::park::{Reason, Wake, Waker};
use crate::reactor::{Reactor, EVENT_INTERVAL};
use crate::remote::{RemoteShared, RemoteWaker};
use crate::stack::{Stack, StackPool};
use crate::timer::Timers;
use crate::watchdog::{Watchdog, WatchdogConfig};

pub(crate) type Coro = corosensei::Coroutine<(), (), (), Stack>;
pub(crate) type Yielder = corosensei::Yielder<(), ()>;

/// `current` when the scheduler itself, not a coroutine, is running.
const NO_TASK: usize = usize::MAX;

thread_local! {
    /// The core of the runtime running on this thread, null outside `Runtime::run`.
    static CURRENT: Cell<*const Core> = const { Cell::new(ptr::null()) };
}

/// Calls `f` with the runtime running on this thread, or returns `None` if there is none.
/// Always inlined, so that `yield_now` and `park` inline through it (see `Core::yield_now`).
#[inline(always)]
pub(crate) fn with_core<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    let core = CURRENT.with(|c| c.get());
    if core.is_null() {
        return None;
    }
    // SAFETY: CURRENT is non-null only while `Core::run_main` runs on this thread, and that
    // function holds an `Rc<Core>` for its whole duration and resets CURRENT before returning or
    // unwinding (see `CurrentGuard`); every coroutine runs inside it.
    Some(f(unsafe { &*core }))
}

/// `yield_now` on the runtime running on this thread; returns false if there is none.
///
/// The same as `with_core(|core| core.yield_now())`, written out so that the whole yield,
/// down to the stack switch, inlines into the caller (see [`Core::yield_now`]).
#[inline(always)]
pub(crate) fn yield_current() -> bool {
    let core = CURRENT.with(|c| c.get());
    if core.is_null() {
        return false;
    }
    // SAFETY: as in `with_core`: CURRENT is non-null only while `Core::run_main` runs on this
    // thread and holds the core alive.
    unsafe { &*core }.yield_now();
    true
}

/// The payload a cancelled coroutine unwinds with.
pub(crate) struct CancelUnwind;

/// The payload a coroutine unwinds with when `time::timeout` scope `0` expired.
pub(crate) struct ElapsedUnwind(pub(crate) u64);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// In the run queue.
    Runnable,
    /// Resumed right now.
    Running,
    /// Suspended in `park`, waiting for a waker, its timer or cancellation.
    Parked,
}

/// An active `time::timeout` of a coroutine.
struct Scope {
    deadline: Instant,
    id: u64,
}

/// One coroutine's record in the table.
pub(crate) struct Task {
    /// The suspended coroutine; `None` while it runs (the scheduler holds it then).
    coroutine: Option<Coro>,
    /// Its yielder, on its own stack; null until its first resumption.
    yielder: *const Yielder,
    pub(crate) id: u64,
    pub(crate) name: Option<Rc<str>>,
    pub(crate) daemon: bool,
    state: State,
    /// Sequence number of the park in progress, 0 when not parked. A waker is live iff it
    /// carries this number: the generation that makes stale wakes harmless.
    park_seq: u64,
    /// Why the last park ended; set by the waker, read by `park` on resumption.
    woke: Option<Wake>,
    /// The park in progress has an entry in the timer heap.
    timer_armed: bool,
    /// Deadline the park's caller asked for (scope deadlines aside).
    op_deadline: Option<Instant>,
    /// Set by `cancel`: every park returns `Cancelled` from now on.
    cancel_requested: bool,
    /// What the coroutine waits on while parked.
    reason: Reason,
    /// Active `time::timeout` scopes, outermost first.
    scopes: Vec<Scope>,
    /// The scope whose deadline ended the last park, until its `timeout` call catches it.
    expired_scope: Option<u64>,
    /// The overflow header at the top of its stack (size, guard range, id, name).
    header: *const Header,
    /// Where the canary of an unguarded stack sits, checked at each switch out.
    canary: Option<usize>,
    /// `coroutine_local!` values, by key index; boxed so their addresses never move.
    locals: Vec<Option<Box<dyn Any>>>,
}

/// A copy of what a task record says about a coroutine, for handles and dumps.
pub(crate) struct TaskView {
    pub key: usize,
    pub id: u64,
    pub name: Option<Rc<str>>,
    pub daemon: bool,
}

impl TaskView {
    fn of(key: usize, t: &Task) -> TaskView {
        TaskView { key, id: t.id, name: t.name.clone(), daemon: t.daemon }
    }
}

/// Settings fixed when the runtime is built.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub stack_size: usize,
    pub main_stack_size: usize,
    pub seed: Option<u64>,
    pub virtual_time: bool,
    pub guarded: bool,
    pub pool_limit: usize,
    pub blocking_threads: usize,
    pub blocking_keep_alive: Duration,
    pub watchdog: Option<WatchdogConfig>,
}

/// The clock every deadline is read against.
enum Clock {
    Real,
    /// Advances only when the scheduler is idle and jumps to the next timer.
    Virtual(Cell<Instant>),
}

pub(crate) struct Core {
    this: Weak<Core>,
    /// Distinguishes runtimes, so a handle from one cannot touch a coroutine of another.
    pub(crate) runtime_id: u64,
    pub(crate) config: Config,
    tasks: RefCell<Slab<Task>>,
    run_queue: RefCell<VecDeque<usize>>,
    /// Slot of the running coroutine, `NO_TASK` when the scheduler runs.
    current: Cell<usize>,
    /// Yielder of the running coroutine.
    current_yielder: Cell<*const Yielder>,
    main_key: Cell<usize>,
    main_done: Cell<bool>,
    main_panicked: Cell<bool>,
    /// Set once shutdown began: everything alive has been cancelled.
    tearing_down: Cell<bool>,
    /// Non-daemon coroutines alive, main excluded.
    non_daemon: Cell<usize>,
    timers: RefCell<Timers>,
    clock: Clock,
    reactor: Reactor,
    stacks: RefCell<StackPool>,
    remote: Arc<RemoteShared>,
    remote_buffer: RefCell<Vec<(usize, u64)>>,
    next_id: Cell<u64>,
    next_seq: Cell<u64>,
    /// xorshift state when seeded.
    rng: Cell<u64>,
    /// Threads for `unblock`, started on first use.
    blocking: std::cell::OnceCell<Arc<BlockingPool>>,
    /// Reports coroutines that hold the thread too long, when configured.
    watchdog: Option<Watchdog>,
}

static RUNTIME_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Drop for Core {
    fn drop(&mut self) {
        if let Some(pool) = self.blocking.get() {
            pool.shutdown();
        }
    }
}

/// Resets CURRENT when `run_main` exits, by return or by unwind.
struct CurrentGuard;

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(ptr::null()));
    }
}

impl Core {
    pub(crate) fn new(config: Config) -> io::Result<Rc<Core>> {
        let reactor = Reactor::new()?;
        let remote = Arc::new(RemoteShared::new(reactor.make_waker()?));
        let clock = if config.virtual_time {
            Clock::Virtual(Cell::new(Instant::now()))
        } else {
            Clock::Real
        };
        let seed = config.seed.map(|s| s | 1).unwrap_or(0);
        crate::panic::install_hook();
        let watchdog = config.watchdog.as_ref().map(Watchdog::start).transpose()?;
        Ok(Rc::new_cyclic(|this| Core {
            this: this.clone(),
            runtime_id: RUNTIME_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            stacks: RefCell::new(StackPool::new(config.guarded, config.pool_limit)),
            config,
            tasks: RefCell::new(Slab::new()),
            run_queue: RefCell::new(VecDeque::new()),
            current: Cell::new(NO_TASK),
            current_yielder: Cell::new(ptr::null()),
            main_key: Cell::new(NO_TASK),
            main_done: Cell::new(false),
            main_panicked: Cell::new(false),
            tearing_down: Cell::new(false),
            non_daemon: Cell::new(0),
            timers: RefCell::new(Timers::default()),
            clock,
            reactor,
            remote,
            remote_buffer: RefCell::new(Vec::new()),
            next_id: Cell::new(0),
            next_seq: Cell::new(1),
            rng: Cell::new(seed),
            blocking: std::cell::OnceCell::new(),
            watchdog,
        }))
    }

    pub(crate) fn rc(&self) -> Rc<Core> {
        self.this.upgrade().expect("the runtime core is alive while in use")
    }

    pub(crate) fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    pub(crate) fn outside_message(what: &str) -> String {
        format!(
            "spindle: {what} must be called inside a spindle runtime, from a coroutine; \
             start one with spindle::run(|| ...)"
        )
    }

    /// The runtime's time: real, or virtual when built with `virtual_time(true)`.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match &self.clock {
            Clock::Real => Instant::now(),
            Clock::Virtual(now) => now.get(),
        }
    }

    // ----- coroutines -------------------------------------------------------------------

    /// Slot of the running coroutine; panics with a clear message in scheduler context.
    fn current_key(&self, what: &str) -> usize {
        let key = self.current.get();
        if key == NO_TASK {
            panic!("spindle: {what} must be called from a coroutine, not from runtime internals");
        }
        key
    }

    pub(crate) fn current_coroutine(&self) -> Option<TaskView> {
        let key = self.current.get();
        if key == NO_TASK {
            return None;
        }
        Some(TaskView::of(key, &self.tasks.borrow()[key]))
    }

    /// True while a coroutine other than main runs (for the panic hook; touches no RefCell).
    pub(crate) fn in_spawned_coroutine(&self) -> bool {
        let key = self.current.get();
        key != NO_TASK && key != self.main_key.get()
    }

    /// Id of the running coroutine without borrowing the table (for the panic hook).
    pub(crate) fn current_id_unchecked(&self) -> Option<u64> {
        let key = self.current.get();
        if key == NO_TASK {
            return None;
        }
        self.tasks.try_borrow().ok().and_then(|t| t.get(key).map(|t| t.id))
    }

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
        let info = StackInfo::of(&stack);
        let (key, id) = (self.tasks.borrow().vacant_key(), self.next_id.get());
        // SAFETY: forwarded to our caller, see above. The scheduler never leaks a coroutine:
        // `run_main` returns only once the table is empty.
        let coro = unsafe { Coro::with_stack_unchecked(stack, make_body(key, id)) };
        let assigned = self.insert(coro, info, name, daemon);
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
        let info = StackInfo::of(&stack);
        // SAFETY: forwarded to our caller, see above.
        let coro = unsafe { Coro::with_stack_unchecked(stack, body) };
        let (key, _) = self.insert(coro, info, Some(Rc::from("main")), false);
        // main is not counted among the non-daemons: it is waited for separately.
        self.non_daemon.set(self.non_daemon.get() - 1);
        Ok(key)
    }

    fn insert(
        &self,
        coro: Coro,
        info: StackInfo,
        name: Option<Rc<str>>,
        daemon: bool,
    ) -> (usize, u64) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (name_ptr, name_len) = match &name {
            Some(n) => (n.as_ptr(), n.len()),
            None => (ptr::null(), 0),
        };
        let header = info.header;
        // SAFETY: `header` is the header slot at the top of this coroutine's stack, above the
        // base it runs from, writable and used by nothing else; the name it points to is owned
        // by the task record inserted below, which lives as long as the coroutine.
        unsafe {
            header.write(Header {
                lo: info.overflow.0,
                hi: info.overflow.1,
                stack_size: info.size,
                id,
                name: name_ptr,
                name_len,
            })
        };
        let key = self.tasks.borrow_mut().insert(Task {
            coroutine: Some(coro),
            yielder: ptr::null(),
            id,
            name,
            daemon,
            state: State::Runnable,
            park_seq: 0,
            woke: None,
            timer_armed: false,
            op_deadline: None,
            cancel_requested: self.tearing_down.get(),
            reason: Reason::RUNNING,
            scopes: Vec::new(),
            expired_scope: None,
            header,
            canary: info.canary,
            locals: Vec::new(),
        });
        if !daemon {
            self.non_daemon.set(self.non_daemon.get() + 1);
        }
        self.run_queue.borrow_mut().push_back(key);
        (key, id)
    }

    /// Called by a coroutine body first thing: records its yielder. Returns whether the
    /// coroutine was cancelled before it ever ran (then the body must not run user code).
    pub(crate) fn started(&self, yielder: &Yielder) -> bool {
        let key = self.current.get();
        self.current_yielder.set(yielder);
        let mut tasks = self.tasks.borrow_mut();
        let task = &mut tasks[key];
        task.yielder = yielder;
        task.cancel_requested
    }

    /// Suspends the running coroutine back to the scheduler.
    #[inline(always)]
    fn suspend(&self) {
        let yielder = self.current_yielder.get();
        // SAFETY: `current_yielder` is the yielder of the coroutine running right now, set by
        // `started` or restored by `resume`; it lives on that coroutine's stack, which we are on.
        unsafe { (*yielder).suspend(()) }
    }

    /// Marks that main finished, and how.
    pub(crate) fn set_main_panicked(&self, panicked: bool) {
        self.main_panicked.set(panicked);
    }

    /// Does what `JoinHandle::cancel` asks: returns false if no such coroutine is alive.
    pub(crate) fn cancel(&self, key: usize, id: u64) -> bool {
        let mut tasks = self.tasks.borrow_mut();
        match tasks.get_mut(key) {
            Some(task) if task.id == id => {
                task.cancel_requested = true;
                if task.state == State::Parked && task.park_seq != 0 {
                    self.wake_in(&mut tasks, key, Wake::Cancelled);
                }
                true
            }
            _ => false,
        }
    }

    fn cancel_all(&self) {
        let keys: Vec<(usize, u64)> = self.tasks.borrow().iter().map(|(k, t)| (k, t.id)).collect();
        for (key, id) in keys {
            self.cancel(key, id);
        }
    }

    /// `(key, id, name, daemon, parked on)` of every coroutine alive.
    pub(crate) fn snapshot(&self) -> Vec<TaskView> {
        self.tasks.borrow().iter().map(|(key, t)| TaskView::of(key, t)).collect()
    }

    pub(crate) fn task_count(&self) -> usize {
        self.tasks.borrow().len()
    }

    pub(crate) fn task_id(&self, key: usize) -> Option<u64> {
        self.tasks.borrow().get(key).map(|t| t.id)
    }

    /// What the coroutine in `key` (with `id`) is parked on, `None` if it is not parked.
    pub(crate) fn parked_on(&self, key: usize, id: u64) -> Option<Reason> {
        let tasks = self.tasks.borrow();
        let t = tasks.get(key).filter(|t| t.id == id)?;
        (t.state == State::Parked).then_some(t.reason)
    }

    pub(crate) fn is_alive(&self, key: usize, id: u64) -> bool {
        self.tasks.borrow().get(key).is_some_and(|t| t.id == id)
    }

    // ----- park / wake ------------------------------------------------------------------

    /// `park::park`. Always inlined down to the stack switch, like `yield_now` (see there): the
    /// steps before and after the switch are out of line, so what inlines is small.
    #[inline(always)]
    pub(crate) fn park(
        &self,
        reason: Reason,
        deadline: Option<Instant>,
        register: impl FnOnce(Waker),
    ) -> Wake {
        self.park_inner(reason, deadline, register, false)
    }

    /// A park that cancellation and timeout scopes cannot cut short: it starts even when the
    /// coroutine is cancelled and ignores scope deadlines (a `cancel` during it still wakes it
    /// with `Cancelled`, once). For waits that must finish for soundness: a scope that was
    /// interrupted waiting for the coroutines that borrow from it.
    pub(crate) fn park_shielded(&self, reason: Reason, register: impl FnOnce(Waker)) -> Wake {
        self.park_inner(reason, None, register, true)
    }

    /// Both parks: a short sequence, always inlined, around the stack switch.
    #[inline(always)]
    fn park_inner(
        &self,
        reason: Reason,
        deadline: Option<Instant>,
        register: impl FnOnce(Waker),
        shielded: bool,
    ) -> Wake {
        let (key, seq, scope_deadline) = match self.park_begin(reason, deadline, shielded) {
            Ok(started) => started,
            Err(wake) => return wake,
        };
        register(Waker { key, seq, _not_send: PhantomData });
        if let Some(wake) = self.park_commit(key, seq, deadline, scope_deadline) {
            return wake;
        }
        self.suspend();
        self.park_end(key)
    }

    /// First step of `park`: records the park in progress; `Err` if the coroutine is cancelled
    /// (unless `shielded`). Returns the slot, the park's sequence number and the earliest
    /// timeout-scope deadline (none when `shielded`). Inlined too: `reason` is then written
    /// straight from constants (out of line, reading it back from the caller's frame stalled
    /// on store forwarding).
    #[inline(always)]
    fn park_begin(
        &self,
        reason: Reason,
        deadline: Option<Instant>,
        shielded: bool,
    ) -> Result<(usize, u64, Option<Instant>), Wake> {
        let key = self.current_key(reason.what);
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let mut tasks = self.tasks.borrow_mut();
        let task = &mut tasks[key];
        if task.cancel_requested && !shielded {
            return Err(Wake::Cancelled);
        }
        let scope_deadline = if shielded || task.scopes.is_empty() {
            None
        } else {
            earliest_scope_deadline(&task.scopes)
        };
        task.park_seq = seq;
        task.woke = None;
        task.op_deadline = deadline;
        task.reason = reason;
        Ok((key, seq, scope_deadline))
    }

    /// Second step of `park`, after `register`: `Some` if the park already ended (woken while
    /// registering, or the deadline passed); else arms the timer and marks the task parked.
    #[inline(never)]
    fn park_commit(
        &self,
        key: usize,
        seq: u64,
        deadline: Option<Instant>,
        scope_deadline: Option<Instant>,
    ) -> Option<Wake> {
        let mut tasks = self.tasks.borrow_mut();
        let task = &mut tasks[key];
        if let Some(wake) = task.woke.take() {
            // Woken while registering.
            task.reason = Reason::RUNNING;
            return Some(wake);
        }
        let effective = match (deadline, scope_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = effective {
            let now = self.now();
            if at <= now {
                task.park_seq = 0;
                task.reason = Reason::RUNNING;
                return Some(Self::deadline_outcome(task, at));
            }
            self.timers.borrow_mut().insert(at, key, seq);
            task.timer_armed = true;
        }
        task.state = State::Parked;
        None
    }

    /// Last step of `park`, once resumed: why it woke.
    #[inline(never)]
    fn park_end(&self, key: usize) -> Wake {
        let mut tasks = self.tasks.borrow_mut();
        let task = &mut tasks[key];
        task.reason = Reason::RUNNING;
        task.woke.take().expect("a parked coroutine is only resumed after a wake")
    }

    /// What a park whose effective deadline `at` passed returns: `TimedOut` if the caller's own
    /// deadline is due, else `Cancelled` with the earliest-expiring timeout scope recorded.
    fn deadline_outcome(task: &mut Task, at: Instant) -> Wake {
        if task.op_deadline.is_some_and(|d| d <= at) {
            return Wake::TimedOut;
        }
        let mut expired: Option<&Scope> = None;
        for s in &task.scopes {
            if expired.is_none_or(|e| s.deadline < e.deadline) {
                expired = Some(s);
            }
        }
        task.expired_scope = expired.map(|s| s.id);
        Wake::Cancelled
    }

    /// Ends park `waker.seq` of slot `waker.key` with `reason`, if it is still in progress.
    pub(crate) fn wake(&self, waker: Waker, reason: Wake) -> bool {
        let mut tasks = self.tasks.borrow_mut();
        match tasks.get(waker.key) {
            Some(task) if task.park_seq == waker.seq && waker.seq != 0 => {
                self.wake_in(&mut tasks, waker.key, reason);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn is_waiting(&self, waker: Waker) -> bool {
        self.tasks
            .borrow()
            .get(waker.key)
            .is_some_and(|t| t.park_seq == waker.seq && waker.seq != 0)
    }

    fn wake_in(&self, tasks: &mut Slab<Task>, key: usize, reason: Wake) {
        let task = &mut tasks[key];
        task.park_seq = 0;
        task.woke = Some(reason);
        let timer_went_stale = std::mem::replace(&mut task.timer_armed, false);
        if task.state == State::Parked {
            task.state = State::Runnable;
            self.run_queue.borrow_mut().push_back(key);
        }
        if timer_went_stale {
            self.timers.borrow_mut().mark_stale(|e| {
                tasks.get(e.key).is_some_and(|t| t.park_seq == e.seq && t.timer_armed)
            });
        }
    }

    /// `yield_now`: to the back of the run queue, unless nothing else could run.
    ///
    /// Always inlined, down to the stack switch: a coroutine resumes at the instruction after
    /// its switch, and when that is in the caller's own frame (a loop that yields) no `ret`
    /// lies between one switch and the next, so the CPU's return-address predictions stay
    /// right. Out of line, each round trip paid two mispredicted returns per switch.
    #[inline(always)]
    pub(crate) fn yield_now(&self) {
        let key = self.current_key("yield_now");
        // Whether anything else could run, asked before the interrupt check: that check reads
        // only the task and the clock, so the order makes no difference to either answer.
        let alone = self.run_queue.borrow().is_empty()
            && self.timers.borrow().is_empty()
            && self.reactor.sources() == 0
            && self.remote.outstanding() == 0;
        if alone {
            self.check_interrupt(key);
            return;
        }
        // check_interrupt and marking the task runnable, in one borrow of the table.
        let flagged = {
            let mut tasks = self.tasks.borrow_mut();
            let task = &mut tasks[key];
            let flagged = task.cancel_requested || !task.scopes.is_empty();
            if !flagged {
                task.state = State::Runnable;
            }
            flagged
        };
        if flagged {
            self.check_interrupt_slow(key);
            self.tasks.borrow_mut()[key].state = State::Runnable;
        }
        self.run_queue.borrow_mut().push_back(key);
        self.suspend();
        self.check_interrupt(key);
    }

    /// Unwinds if the running coroutine was cancelled or one of its timeout scopes expired.
    ///
    /// Inlined fast path: a coroutine that is not cancelled and has no timeout scope costs one
    /// shared borrow and two loads; the rest is out of line.
    #[inline]
    fn check_interrupt(&self, key: usize) {
        let maybe = {
            let tasks = self.tasks.borrow();
            let task = &tasks[key];
            task.cancel_requested || !task.scopes.is_empty()
        };
        if maybe {
            self.check_interrupt_slow(key);
        }
    }

    #[cold]
    #[inline(never)]
    fn check_interrupt_slow(&self, key: usize) {
        let interrupted = {
            let mut tasks = self.tasks.borrow_mut();
            let task = &mut tasks[key];
            if task.cancel_requested {
                true
            } else if !task.scopes.is_empty() {
                let now = self.now();
                let due = task.scopes.iter().map(|s| s.deadline).min().is_some_and(|d| d <= now);
                if due {
                    task.op_deadline = None;
                    Self::deadline_outcome(task, now);
                }
                due
            } else {
                false
            }
        };
        if interrupted {
            crate::park::unwind();
        }
    }

    pub(crate) fn unwind_payload(&self) -> Box<dyn Any + Send> {
        let key = self.current_key("park::unwind");
        let tasks = self.tasks.borrow();
        let task = &tasks[key];
        if task.cancel_requested {
            Box::new(CancelUnwind)
        } else if let Some(id) = task.expired_scope {
            Box::new(ElapsedUnwind(id))
        } else {
            drop(tasks);
            panic!("spindle::park::unwind called, but the coroutine is neither cancelled nor timed out");
        }
    }

    /// The running coroutine's value for `coroutine_local!` key `index`, made with `init` on
    /// first use. The pointer stays valid until the coroutine's locals are taken at its end.
    pub(crate) fn local<T: 'static>(&self, index: usize, init: fn() -> T) -> *const T {
        let key = self.current_key("coroutine_local access");
        if let Some(Some(value)) = self.tasks.borrow()[key].locals.get(index) {
            return value.downcast_ref::<T>().expect("one type per local key");
        }
        // `init` may use the runtime, so no borrow is held while it runs.
        let value: Box<dyn Any> = Box::new(init());
        let mut tasks = self.tasks.borrow_mut();
        let locals = &mut tasks[key].locals;
        if locals.len() <= index {
            locals.resize_with(index + 1, || None);
        }
        let slot = locals[index].get_or_insert(value);
        slot.downcast_ref::<T>().expect("one type per local key")
    }

    /// Takes the running coroutine's locals, so its body can drop them on its own stack.
    pub(crate) fn take_locals(&self) -> Vec<Option<Box<dyn Any>>> {
        let key = self.current.get();
        if key == NO_TASK {
            return Vec::new();
        }
        std::mem::take(&mut self.tasks.borrow_mut()[key].locals)
    }

    /// Opens a `time::timeout` scope for the running coroutine; returns its id.
    pub(crate) fn push_scope(&self, deadline: Instant) -> u64 {
        let key = self.current_key("time::timeout");
        let id = self.next_seq.get();
        self.next_seq.set(id + 1);
        self.tasks.borrow_mut()[key].scopes.push(Scope { deadline, id });
        id
    }

    /// Closes scope `id`; returns whether it was the one that expired.
    pub(crate) fn pop_scope(&self, id: u64) -> bool {
        let key = self.current_key("time::timeout");
        let mut tasks = self.tasks.borrow_mut();
        let task = &mut tasks[key];
        task.scopes.retain(|s| s.id != id);
        if task.expired_scope == Some(id) {
            task.expired_scope = None;
            true
        } else {
            false
        }
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
        RemoteWaker::new(self.remote.clone(), waker)
    }

    // ----- the loop ---------------------------------------------------------------------

    /// Runs `main` as the main coroutine and everything it spawns; returns main's value.
    pub(crate) fn run_main<T>(&self, main: impl FnOnce() -> T) -> T {
        if !CURRENT.with(|c| c.get()).is_null() {
            panic!(
                "spindle: run called inside a running spindle runtime; \
                 use spindle::spawn to start more coroutines instead"
            );
        }
        CURRENT.with(|c| c.set(self));
        let _guard = CurrentGuard;
        overflow::install();
        self.main_done.set(false);
        self.main_panicked.set(false);
        self.tearing_down.set(false);

        let outcome: Cell<Option<std::thread::Result<T>>> = Cell::new(None);
        let body = |yielder: &Yielder, ()| {
            self.started(yielder);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(main));
            let locals = self.take_locals();
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(locals)));
            self.set_main_panicked(result.is_err());
            outcome.set(Some(result));
        };
        // SAFETY: `body` borrows `outcome`, `main` and `self`, all of which outlive this call. The
        // loop below returns only once the table is empty, i.e. the main coroutine finished; on a
        // deadlock every coroutine is cancelled and driven to completion before we panic.
        let key = unsafe { self.spawn_main(body) }
            .unwrap_or_else(|e| panic!("spindle: cannot start the main coroutine: {e}"));
        self.main_key.set(key);

        if let Err(report) = self.drive() {
            self.tearing_down.set(true);
            self.cancel_all();
            // Cancelled coroutines cannot park, so this finishes.
            let _ = self.drive();
            panic!("{report}");
        }
        self.main_key.set(NO_TASK);
        match outcome.take().expect("main finished, so it left an outcome") {
            Ok(value) => value,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// Runs until every coroutine has finished; `Err` carries a deadlock report.
    fn drive(&self) -> Result<(), String> {
        let mut since_poll: u32 = 0;
        loop {
            while let Some(key) = self.next_runnable() {
                self.resume(key);
                since_poll += 1;
                if since_poll >= EVENT_INTERVAL {
                    since_poll = 0;
                    self.poll_busy()?;
                }
            }
            if self.tasks.borrow().is_empty() {
                return Ok(());
            }
            if self.fire_due_timers() > 0 || self.apply_remote_wakes() > 0 {
                continue;
            }
            let can_wake = self.timers.borrow().live() > 0
                || self.reactor.sources() > 0
                || self.remote.outstanding() > 0
                || self.remote.has_pending();
            if !can_wake {
                return Err(self.deadlock_report());
            }
            self.idle_wait()?;
        }
    }

    /// Chooses the next coroutine to resume.
    #[inline]
    fn next_runnable(&self) -> Option<usize> {
        let mut queue = self.run_queue.borrow_mut();
        let state = self.rng.get();
        if state == 0 || queue.len() < 2 {
            return queue.pop_front();
        }
        // xorshift64
        let mut x = state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        let i = (x % queue.len() as u64) as usize;
        queue.swap_remove_back(i)
    }

    /// Zero-timeout poll between resumptions, so readiness and timers are never starved.
    fn poll_busy(&self) -> Result<(), String> {
        if self.reactor.sources() > 0 || self.remote.outstanding() > 0 {
            let remote = self.reactor.poll(Some(Duration::ZERO)).map_err(poll_failed)?;
            if remote {
                self.apply_remote_wakes();
            }
        }
        self.fire_due_timers();
        Ok(())
    }

    /// Nothing is runnable: wait in the reactor until the next timer (or jump to it).
    fn idle_wait(&self) -> Result<(), String> {
        let next = self.next_deadline();
        let external = self.reactor.sources() > 0 || self.remote.outstanding() > 0;
        match &self.clock {
            Clock::Real => {
                let timeout = next.map(|d| d.saturating_duration_since(Instant::now()));
                if self.reactor.poll(timeout).map_err(poll_failed)? {
                    self.apply_remote_wakes();
                }
            }
            Clock::Virtual(now) => {
                if external {
                    // Real events first: only when none is ready does virtual time jump.
                    let timeout = if next.is_some() { Some(Duration::ZERO) } else { None };
                    if self.reactor.poll(timeout).map_err(poll_failed)? {
                        self.apply_remote_wakes();
                    }
                    if !self.run_queue.borrow().is_empty() {
                        return Ok(());
                    }
                }
                if let Some(d) = next {
                    if d > now.get() {
                        now.set(d);
                    }
                }
            }
        }
        self.fire_due_timers();
        Ok(())
    }

    /// Earliest live deadline, dropping stale heap tops on the way.
    fn next_deadline(&self) -> Option<Instant> {
        let tasks = self.tasks.borrow();
        let mut timers = self.timers.borrow_mut();
        while let Some(e) = timers.peek() {
            let live = tasks.get(e.key).is_some_and(|t| t.park_seq == e.seq && t.timer_armed);
            if live {
                return Some(e.deadline);
            }
            timers.pop_due(e.deadline);
            timers.popped_stale();
        }
        None
    }

    /// Wakes the coroutines whose timers are due; returns how many.
    fn fire_due_timers(&self) -> usize {
        if self.timers.borrow().is_empty() {
            return 0;
        }
        let now = self.now();
        let mut fired = 0;
        loop {
            let Some(entry) = self.timers.borrow_mut().pop_due(now) else { break };
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(entry.key) {
                Some(task) if task.park_seq == entry.seq && task.timer_armed => {
                    task.timer_armed = false;
                    let outcome = Self::deadline_outcome(task, entry.deadline);
                    self.wake_in(&mut tasks, entry.key, outcome);
                    fired += 1;
                }
                _ => self.timers.borrow_mut().popped_stale(),
            }
        }
        fired
    }

    fn apply_remote_wakes(&self) -> usize {
        let mut buffer = self.remote_buffer.take();
        self.remote.drain(&mut buffer);
        let mut woken = 0;
        for (key, seq) in buffer.drain(..) {
            woken += self.wake(Waker { key, seq, _not_send: PhantomData }, Wake::Notified) as usize;
        }
        self.remote_buffer.replace(buffer);
        woken
    }

    /// Resumes the coroutine in `key` until it parks, yields or finishes.
    fn resume(&self, key: usize) {
        let (mut coro, header, id) = {
            let mut tasks = self.tasks.borrow_mut();
            let task = &mut tasks[key];
            task.state = State::Running;
            self.current_yielder.set(task.yielder);
            let coro = task.coroutine.take().expect("a runnable coroutine is in the table");
            (coro, task.header, task.id)
        };
        self.current.set(key);
        if let Some(w) = &self.watchdog {
            w.enter(id);
        }
        overflow::set_running(header);
        let result = coro.resume(());
        overflow::set_running(ptr::null());
        if let Some(w) = &self.watchdog {
            w.leave(id, || {
                self.tasks.borrow().get(key).and_then(|t| t.name.as_deref().map(str::to_owned))
            });
        }
        self.current.set(NO_TASK);
        match result {
            CoroutineResult::Yield(()) => {
                let mut tasks = self.tasks.borrow_mut();
                let task = &mut tasks[key];
                if let Some(canary) = task.canary {
                    check_canary(canary, task);
                }
                task.coroutine = Some(coro);
            }
            CoroutineResult::Return(()) => self.finish(key, coro),
        }
    }

    /// Frees a finished coroutine's slot and stack; starts shutdown when it is time.
    fn finish(&self, key: usize, coro: Coro) {
        let task = self.tasks.borrow_mut().remove(key);
        if let Some(canary) = task.canary {
            check_canary(canary, &task);
        }
        self.stacks.borrow_mut().release(coro.into_stack());
        if key == self.main_key.get() {
            self.main_done.set(true);
        } else if !task.daemon {
            self.non_daemon.set(self.non_daemon.get() - 1);
        }
        let done = self.main_done.get() && (self.non_daemon.get() == 0 || self.main_panicked.get());
        if done && !self.tearing_down.get() {
            self.tearing_down.set(true);
            self.cancel_all();
        }
    }

    fn deadlock_report(&self) -> String {
        let mut report = String::from(
            "spindle: deadlock: every coroutine is parked and nothing can wake one \
             (no timer pending, no socket registered, no blocking call or remote waker in flight)",
        );
        let tasks = self.tasks.borrow();
        for (_, t) in tasks.iter() {
            let name = t.name.as_deref().map(|n| format!(" '{n}'")).unwrap_or_default();
            let _ = write!(report, "\n  coroutine #{}{} parked on {}", t.id, name, t.reason);
        }
        report
    }
}

#[cold]
#[inline(never)]
fn earliest_scope_deadline(scopes: &[Scope]) -> Option<Instant> {
    scopes.iter().map(|s| s.deadline).min()
}

fn poll_failed(e: io::Error) -> String {
    format!("spindle: polling the reactor failed: {e}")
}

/// Aborts with a report if an unguarded stack's canary was overwritten.
fn check_canary(at: usize, task: &Task) {
    // SAFETY: `at` is the lowest word of the task's unguarded stack, inside a pool chunk that
    // lives as long as the runtime; nothing else runs while we read it.
    let intact = unsafe { (at as *const u64).read_volatile() } == crate::stack::CANARY;
    if !intact {
        let name = task.name.as_deref().map(|n| format!(" '{n}'")).unwrap_or_default();
        eprintln!(
            "spindle: coroutine #{}{} overflowed its unguarded stack ({} bytes) and may have \
             corrupted another; give it more with Builder::stack_size",
            task.id,
            name,
            // SAFETY: the header on the task's stack was written at spawn and the stack is
            // still the task's (the check runs before it goes back to the pool).
            unsafe { (*task.header).stack_size }
        );
        std::process::abort();
    }
}

/// What the task record needs to know about its stack.
struct StackInfo {
    size: usize,
    overflow: (usize, usize),
    canary: Option<usize>,
    header: *mut Header,
}

impl StackInfo {
    fn of(stack: &Stack) -> StackInfo {
        let overflow = stack.overflow_range();
        StackInfo {
            size: stack.size(),
            overflow,
            canary: (!stack.is_guarded()).then_some(overflow.0),
            header: stack.header_slot(),
        }
    }
}
