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
use std::cell::{Cell, RefCell, UnsafeCell};
use std::fmt::Write as _;
use std::io;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
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
use crate::ring::Ring;
use crate::stack::{Stack, StackPool};
use crate::timer::Timers;
use crate::watchdog::{Watchdog, WatchdogConfig};

pub(crate) type Coro = corosensei::Coroutine<(), (), (), Stack>;
pub(crate) type Yielder = corosensei::Yielder<(), ()>;

/// Run-queue length from which `Core::prefetch_ahead` works: below it, the records and frames
/// of the queued coroutines are still in cache when they run.
const PREFETCH_MIN_QUEUE: usize = 16;

/// `main_key` when no main coroutine exists.
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

/// The overflow header of the coroutine running on this thread, null if none runs. For the
/// overflow signal handler: it reads two plain cells, takes no lock and allocates nothing.
pub(crate) fn running_header() -> *const Header {
    let core = CURRENT.with(|c| c.get());
    if core.is_null() {
        return ptr::null();
    }
    // SAFETY: as in `with_core`. `current` is null or the record of the running coroutine,
    // which lives while it runs (see `Core::current_task`).
    unsafe {
        let task = (*core).current.get();
        if task.is_null() {
            ptr::null()
        } else {
            ptr::addr_of!((*task).header)
        }
    }
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

/// An active `time::timeout` of a coroutine.
struct Scope {
    deadline: Instant,
    id: u64,
}

/// `Task::flags`: `cancel` was called; every park returns `Cancelled` from now on.
const CANCELLED: u8 = 1;
/// `Task::flags`: the coroutine is inside at least one `time::timeout` scope.
const SCOPED: u8 = 2;

/// One coroutine's record.
///
/// # Where it lives, and the rules for touching it
///
/// The record sits in the top [`RECORD_SIZE`] bytes of the coroutine's own stack, above the
/// part the coroutine runs on (see `stack::Stack::record_slot`). It therefore never moves while
/// the coroutine lives, shares its page with the coroutine's outermost frames, and costs no
/// allocation. The table maps slots to these records; the run queue holds pointers to them.
///
/// Every field that changes after spawn is a `Cell` (or a `RefCell` for the cold, non-`Copy`
/// ones), so the scheduler only ever holds shared references to a record, any number at once,
/// from the coroutine itself and from the scheduler. The one exception is `coroutine`, behind an
/// `UnsafeCell`: only `Core::resume` touches it, while nothing else can run. A record is freed
/// in one place, `Core::finish`, which runs in the scheduler right after the coroutine returned;
/// no reference to a record is kept across a resume or a suspend, except the running
/// coroutine's reference to its own record, which lives as long as the coroutine.
///
/// `repr(C)` keeps the fields in the order written: what every switch, park and wake touches
/// comes first, in the record's first two cache lines.
#[repr(C)]
pub(crate) struct Task {
    // ----- hot: every switch, park and wake -----
    /// Sequence number of the park in progress, 0 when not parked. A waker is live iff it
    /// carries this number: the generation that makes stale wakes harmless.
    park_seq: Cell<u64>,
    /// Its yielder, on its own stack; null until its first resumption.
    yielder: Cell<*const Yielder>,
    /// Its slot in the table.
    key: usize,
    /// About where its stack pointer was when it last switched out: the frames it touches
    /// first when resumed are around here (see `Core::prefetch_ahead`).
    sp_hint: Cell<usize>,
    /// Other memory its last park said it touches first when woken (a socket's state and its
    /// reactor entry), 0 if none.
    near_hint: Cell<[usize; 2]>,
    /// Why the last park ended; set by the waker, read by `park` on resumption.
    woke: Cell<Option<Wake>>,
    /// Suspended in `park` (committed: past `register`), waiting for a waker, its timer or
    /// cancellation. A woken task leaves this state as it enters the run queue.
    parked: Cell<bool>,
    /// `CANCELLED | SCOPED`: zero means a yield or park has nothing to check.
    flags: Cell<u8>,
    /// The park in progress has an entry in the timer heap.
    timer_armed: Cell<bool>,
    /// The suspended coroutine; see the rules above.
    coroutine: UnsafeCell<Coro>,
    /// What the coroutine waits on while parked.
    reason: Cell<Reason>,
    /// Deadline the park's caller asked for (scope deadlines aside).
    op_deadline: Cell<Option<Instant>>,
    // ----- cold -----
    /// What the overflow handler reports (size, guard range, id, name); see `running_header`.
    header: Header,
    pub(crate) id: u64,
    pub(crate) name: Option<Rc<str>>,
    pub(crate) daemon: bool,
    /// Active `time::timeout` scopes, outermost first.
    scopes: RefCell<Vec<Scope>>,
    /// The scope whose deadline ended the last park, until its `timeout` call catches it.
    expired_scope: Cell<Option<u64>>,
    /// Where the canary of an unguarded stack sits, checked at each switch out.
    canary: Option<usize>,
    /// `coroutine_local!` values, by key index; boxed so their addresses never move.
    locals: RefCell<Vec<Option<Box<dyn Any>>>>,
}

/// Bytes kept at the top of every stack for its coroutine's [`Task`] record: its size rounded
/// up to whole cache lines, so that a page-aligned stack top puts the record's hot fields at
/// the start of a line.
pub(crate) const RECORD_SIZE: usize = std::mem::size_of::<Task>().next_multiple_of(64);
const _: () = assert!(std::mem::align_of::<Task>() <= 16, "stack tops are 16-byte aligned");

impl Task {
    fn is_cancelled(&self) -> bool {
        self.flags.get() & CANCELLED != 0
    }

    /// Sets or clears `SCOPED` from the scope list.
    fn update_scoped(&self) {
        let scoped = if self.scopes.borrow().is_empty() { 0 } else { SCOPED };
        self.flags.set(self.flags.get() & !SCOPED | scoped);
    }
}

/// A copy of what a task record says about a coroutine, for handles and dumps.
pub(crate) struct TaskView {
    pub key: usize,
    pub id: u64,
    pub name: Option<Rc<str>>,
    pub daemon: bool,
}

impl TaskView {
    fn of(t: &Task) -> TaskView {
        TaskView { key: t.key, id: t.id, name: t.name.clone(), daemon: t.daemon }
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
    /// Slot -> record of every coroutine alive. Touched only by `task`, `tasks`, `insert` and
    /// `finish`; the two that change it (`insert`, `finish`) call nothing that could reach the
    /// table while they hold it. Records are owned by their stacks (see [`Task`]).
    tasks: UnsafeCell<Slab<NonNull<Task>>>,
    /// Records of the runnable coroutines, in the order they became runnable. A record is in it
    /// from a wake or a yield until its next resumption, so never after `finish` freed it. Touched only by
    /// `push_runnable`, `next_runnable` and `has_runnable`, which call nothing.
    run_queue: UnsafeCell<Ring<NonNull<Task>>>,
    /// Record of the running coroutine, null when the scheduler runs.
    current: Cell<*const Task>,
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
    /// Coroutines picked at random so far (seeded runs), for the poll cadence.
    seeded_picks: Cell<usize>,
    /// Threads for `unblock`, started on first use.
    blocking: std::cell::OnceCell<Arc<BlockingPool>>,
    /// Reports coroutines that hold the thread too long, when configured.
    watchdog: Option<Watchdog>,
    /// A watchdog is set or stacks are unguarded: `resume` has work around each switch.
    switch_hooks: bool,
}

static RUNTIME_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Drop for Core {
    fn drop(&mut self) {
        // Records still in the table (only if the loop itself panicked) are leaked with their
        // stacks: their coroutines never run again, and the pool unmaps the memory.
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
        let guarded = config.guarded;
        Ok(Rc::new_cyclic(|this| Core {
            this: this.clone(),
            runtime_id: RUNTIME_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            stacks: RefCell::new(StackPool::new(config.guarded, config.pool_limit)),
            config,
            tasks: UnsafeCell::new(Slab::new()),
            run_queue: UnsafeCell::new(Ring::new(NonNull::dangling())),
            current: Cell::new(ptr::null()),
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
            seeded_picks: Cell::new(0),
            blocking: std::cell::OnceCell::new(),
            switch_hooks: watchdog.is_some() || !guarded,
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

    // ----- the table and the run queue ---------------------------------------------------

    /// The record in slot `key`, if a coroutine lives there. Do not keep it across a resume or
    /// a suspend (see [`Task`]).
    #[inline]
    fn task(&self, key: usize) -> Option<&Task> {
        // SAFETY: only `insert` and `finish` change the table, and neither runs while this
        // shared borrow lives (it ends before we return). A pointer in the table is a live
        // record until `finish` removes it.
        unsafe { (*self.tasks.get()).get(key).map(|t| t.as_ref()) }
    }

    /// Pointers to every record alive, in slot order.
    fn tasks(&self) -> Vec<NonNull<Task>> {
        // SAFETY: as in `task`.
        unsafe { (*self.tasks.get()).iter().map(|(_, t)| *t).collect() }
    }

    #[inline]
    fn push_runnable(&self, task: &Task) {
        // SAFETY: the queue is only touched by these three short functions, which call nothing
        // that could reach it again.
        unsafe { (*self.run_queue.get()).push_back(NonNull::from(task)) }
    }

    #[inline]
    fn has_runnable(&self) -> bool {
        // SAFETY: as in `push_runnable`.
        unsafe { !(*self.run_queue.get()).is_empty() }
    }

    /// Chooses the next coroutine to resume; the flag says a zero-timeout poll is due after it
    /// (every [`EVENT_INTERVAL`] resumptions).
    /// `CHECKED`: the runtime may be seeded (see [`Core::drive`]).
    #[inline]
    fn next_runnable<const CHECKED: bool>(&self) -> Option<(NonNull<Task>, bool)> {
        if CHECKED && self.rng.get() != 0 {
            return self.next_seeded();
        }
        // SAFETY: as in `push_runnable`.
        let queue = unsafe { &mut *self.run_queue.get() };
        let (task, pops) = queue.pop_front_counted()?;
        if queue.len() >= PREFETCH_MIN_QUEUE {
            Self::prefetch_ahead(queue);
        }
        Some((task, pops.is_multiple_of(EVENT_INTERVAL)))
    }

    /// `next_runnable` with a seed: a random pick from the queue.
    #[cold]
    #[inline(never)]
    fn next_seeded(&self) -> Option<(NonNull<Task>, bool)> {
        // SAFETY: as in `push_runnable`.
        let queue = unsafe { &mut *self.run_queue.get() };
        let task = if queue.len() < 2 {
            queue.pop_front()?
        } else {
            // xorshift64
            let mut x = self.rng.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rng.set(x);
            queue.swap_remove((x % queue.len() as u64) as usize)
        };
        let picks = self.seeded_picks.get().wrapping_add(1);
        self.seeded_picks.set(picks);
        Some((task, picks.is_multiple_of(EVENT_INTERVAL)))
    }

    /// Asks the CPU to start loading what the next two coroutines in the run queue will touch
    /// first: the record of the one after next, and the stack frames of the next (whose record
    /// the previous call asked for). With thousands of connections each coroutine's record and
    /// frames are cold by the time it runs again (the run queue is as long as the number of
    /// busy connections), and the loads overlap with the coroutine resumed now instead of
    /// stalling the switch. Only called when the queue is long (`PREFETCH_MIN_QUEUE`): in a
    /// short one all of it is still cached and the prefetches would only cost instructions.
    #[inline]
    fn prefetch_ahead(queue: &Ring<NonNull<Task>>) {
        if let Some(next) = queue.get(0) {
            // SAFETY: records in the run queue are live (see `run_queue`).
            let next = unsafe { next.as_ref() };
            let mut line = next.sp_hint.get().wrapping_sub(2 * 64);
            for _ in 0..8 {
                prefetch(line);
                line = line.wrapping_add(64);
            }
            for near in next.near_hint.get() {
                if near != 0 {
                    prefetch(near);
                    prefetch(near + 64);
                }
            }
        }
        if let Some(after) = queue.get(1) {
            let record = after.as_ptr() as usize;
            prefetch(record);
            prefetch(record + 64);
        }
    }

    /// The running coroutine's record; panics with a clear message in scheduler context.
    #[inline]
    fn current_task(&self, what: &str) -> &Task {
        let task = self.current.get();
        if task.is_null() {
            not_in_coroutine(what);
        }
        // SAFETY: `current` points at the record of the coroutine running now (set by `resume`),
        // which lives until that coroutine finishes, i.e. longer than any call it makes.
        unsafe { &*task }
    }

    // ----- coroutines -------------------------------------------------------------------

    pub(crate) fn current_coroutine(&self) -> Option<TaskView> {
        let task = self.current.get();
        // SAFETY: as in `current_task`.
        (!task.is_null()).then(|| TaskView::of(unsafe { &*task }))
    }

    /// True while a coroutine other than main runs (for the panic hook).
    pub(crate) fn in_spawned_coroutine(&self) -> bool {
        let task = self.current.get();
        // SAFETY: as in `current_task`.
        !task.is_null() && unsafe { (*task).key } != self.main_key.get()
    }

    /// Id of the running coroutine (for the panic hook).
    pub(crate) fn current_id_unchecked(&self) -> Option<u64> {
        let task = self.current.get();
        // SAFETY: as in `current_task`.
        (!task.is_null()).then(|| unsafe { (*task).id })
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
        // SAFETY: as in `task`.
        let key = unsafe { (*self.tasks.get()).vacant_key() };
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
        let slot = stack.record_slot().cast::<Task>();
        let (lo, hi) = stack.overflow_range();
        let header = Header {
            lo,
            hi,
            stack_size: stack.size(),
            id,
            name: name.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
            name_len: name.as_ref().map_or(0, |n| n.len()),
        };
        let canary = (!stack.is_guarded()).then_some(lo);
        // SAFETY: as in `task`; nothing below reaches the table.
        let tasks = unsafe { &mut *self.tasks.get() };
        let key = tasks.vacant_key();
        let task = Task {
            park_seq: Cell::new(0),
            yielder: Cell::new(ptr::null()),
            key,
            sp_hint: Cell::new(0),
            near_hint: Cell::new([0; 2]),
            woke: Cell::new(None),
            parked: Cell::new(false),
            flags: Cell::new(if self.tearing_down.get() { CANCELLED } else { 0 }),
            timer_armed: Cell::new(false),
            coroutine: UnsafeCell::new(make(stack)),
            reason: Cell::new(Reason::RUNNING),
            op_deadline: Cell::new(None),
            header,
            id,
            name,
            daemon,
            scopes: RefCell::new(Vec::new()),
            expired_scope: Cell::new(None),
            canary,
            locals: RefCell::new(Vec::new()),
        };
        // SAFETY: `slot` is the record slot at the top of the stack now owned by the coroutine:
        // RECORD_SIZE writable bytes above the part it runs on, 16-byte aligned, used by
        // nothing else. The record stays there until `finish` reads it back out.
        unsafe { slot.write(task) };
        // SAFETY: just written.
        let task = unsafe { NonNull::new_unchecked(slot) };
        tasks.insert(task);
        if !daemon {
            self.non_daemon.set(self.non_daemon.get() + 1);
        }
        // SAFETY: the record is live: just inserted.
        self.push_runnable(unsafe { task.as_ref() });
        (key, id)
    }

    /// Called by a coroutine body first thing: records its yielder. Returns whether the
    /// coroutine was cancelled before it ever ran (then the body must not run user code).
    pub(crate) fn started(&self, yielder: &Yielder) -> bool {
        let task = self.current_task("coroutine start");
        task.yielder.set(yielder);
        task.is_cancelled()
    }

    /// Suspends the running coroutine, whose record is `task`, back to the scheduler.
    #[inline(always)]
    fn suspend(task: &Task) {
        let yielder = task.yielder.get();
        // SAFETY: the yielder was recorded by `started`, first thing on the coroutine's stack,
        // and lives there, on the stack we are running on, as long as the coroutine.
        unsafe { (*yielder).suspend(()) }
    }

    /// Marks that main finished, and how.
    pub(crate) fn set_main_panicked(&self, panicked: bool) {
        self.main_panicked.set(panicked);
    }

    /// Does what `JoinHandle::cancel` asks: returns false if no such coroutine is alive.
    pub(crate) fn cancel(&self, key: usize, id: u64) -> bool {
        match self.task(key) {
            Some(task) if task.id == id => {
                task.flags.set(task.flags.get() | CANCELLED);
                if task.parked.get() && task.park_seq.get() != 0 {
                    self.wake_in(task, Wake::Cancelled);
                }
                true
            }
            _ => false,
        }
    }

    fn cancel_all(&self) {
        for task in self.tasks() {
            // SAFETY: the table was read just now and cancelling frees no record.
            let task = unsafe { task.as_ref() };
            self.cancel(task.key, task.id);
        }
    }

    /// `(key, id, name, daemon)` of every coroutine alive.
    pub(crate) fn snapshot(&self) -> Vec<TaskView> {
        // SAFETY: the table was read just now and nothing runs before we are done.
        self.tasks().into_iter().map(|t| TaskView::of(unsafe { t.as_ref() })).collect()
    }

    pub(crate) fn task_count(&self) -> usize {
        // SAFETY: as in `task`.
        unsafe { (*self.tasks.get()).len() }
    }

    pub(crate) fn task_id(&self, key: usize) -> Option<u64> {
        self.task(key).map(|t| t.id)
    }

    /// What the coroutine in `key` (with `id`) is parked on, `None` if it is not parked.
    pub(crate) fn parked_on(&self, key: usize, id: u64) -> Option<Reason> {
        let t = self.task(key).filter(|t| t.id == id)?;
        t.parked.get().then(|| t.reason.get())
    }

    pub(crate) fn is_alive(&self, key: usize, id: u64) -> bool {
        self.task(key).is_some_and(|t| t.id == id)
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
        self.park_inner(reason, deadline, [0; 2], register, false)
    }

    /// `park::park_near`: a park that names memory to prefetch before the coroutine resumes.
    #[inline(always)]
    pub(crate) fn park_near(
        &self,
        reason: Reason,
        deadline: Option<Instant>,
        near: [usize; 2],
        register: impl FnOnce(Waker),
    ) -> Wake {
        self.park_inner(reason, deadline, near, register, false)
    }

    /// A park that cancellation and timeout scopes cannot cut short: it starts even when the
    /// coroutine is cancelled and ignores scope deadlines (a `cancel` during it still wakes it
    /// with `Cancelled`, once). For waits that must finish for soundness: a scope that was
    /// interrupted waiting for the coroutines that borrow from it.
    pub(crate) fn park_shielded(&self, reason: Reason, register: impl FnOnce(Waker)) -> Wake {
        self.park_inner(reason, None, [0; 2], register, true)
    }

    /// Both parks: a short sequence, always inlined, around the stack switch.
    #[inline(always)]
    fn park_inner(
        &self,
        reason: Reason,
        deadline: Option<Instant>,
        near: [usize; 2],
        register: impl FnOnce(Waker),
        shielded: bool,
    ) -> Wake {
        let task = self.current_task(reason.what);
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let flags = task.flags.get();
        if flags & CANCELLED != 0 && !shielded {
            return Wake::Cancelled;
        }
        task.park_seq.set(seq);
        task.woke.set(None);
        task.op_deadline.set(deadline);
        task.reason.set(reason);
        register(Waker { key: task.key, seq, _not_send: PhantomData });
        if task.woke.get().is_some() || deadline.is_some() || (flags & SCOPED != 0 && !shielded) {
            if let Some(wake) = self.park_commit_slow(task, seq, deadline, shielded) {
                return wake;
            }
        } else {
            task.parked.set(true);
        }
        let marker = 0u8;
        task.sp_hint.set(ptr::addr_of!(marker) as usize);
        task.near_hint.set(near);
        Self::suspend(task);
        task.reason.set(Reason::RUNNING);
        task.woke.take().expect("a parked coroutine is only resumed after a wake")
    }

    /// The part of `park` after `register` when there is more to do than marking the task
    /// parked: `Some` if the park already ended (woken while registering, or the deadline
    /// passed); else arms the timer for the earliest of the caller's deadline and the
    /// coroutine's timeout scopes (none when `shielded`), and marks the task parked.
    #[inline(never)]
    fn park_commit_slow(
        &self,
        task: &Task,
        seq: u64,
        deadline: Option<Instant>,
        shielded: bool,
    ) -> Option<Wake> {
        if let Some(wake) = task.woke.take() {
            // Woken while registering.
            task.reason.set(Reason::RUNNING);
            return Some(wake);
        }
        let scope_deadline =
            if shielded { None } else { task.scopes.borrow().iter().map(|s| s.deadline).min() };
        let effective = match (deadline, scope_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = effective {
            let now = self.now();
            if at <= now {
                task.park_seq.set(0);
                task.reason.set(Reason::RUNNING);
                return Some(Self::deadline_outcome(task, at));
            }
            self.timers.borrow_mut().insert(at, task.key, seq);
            task.timer_armed.set(true);
        }
        task.parked.set(true);
        None
    }

    /// What a park whose effective deadline `at` passed returns: `TimedOut` if the caller's own
    /// deadline is due, else `Cancelled` with the earliest-expiring timeout scope recorded.
    fn deadline_outcome(task: &Task, at: Instant) -> Wake {
        if task.op_deadline.get().is_some_and(|d| d <= at) {
            return Wake::TimedOut;
        }
        let scopes = task.scopes.borrow();
        let mut expired: Option<&Scope> = None;
        for s in scopes.iter() {
            if expired.is_none_or(|e| s.deadline < e.deadline) {
                expired = Some(s);
            }
        }
        task.expired_scope.set(expired.map(|s| s.id));
        Wake::Cancelled
    }

    /// Ends park `waker.seq` of slot `waker.key` with `reason`, if it is still in progress.
    #[inline]
    pub(crate) fn wake(&self, waker: Waker, reason: Wake) -> bool {
        match self.task(waker.key) {
            Some(task) if task.park_seq.get() == waker.seq && waker.seq != 0 => {
                self.wake_in(task, reason);
                true
            }
            _ => false,
        }
    }

    /// `park::Waker::wake_all`: prefetches every record, then wakes each with `Notified`.
    pub(crate) fn wake_all(&self, wakers: &[Waker]) {
        if wakers.len() > 1 {
            // SAFETY: as in `task`; only the pointers are read here.
            let table = unsafe { &*self.tasks.get() };
            for w in wakers {
                if let Some(task) = table.get(w.key) {
                    prefetch(task.as_ptr() as usize);
                }
            }
        }
        for &w in wakers {
            self.wake(w, Wake::Notified);
        }
    }

    pub(crate) fn is_waiting(&self, waker: Waker) -> bool {
        self.task(waker.key).is_some_and(|t| t.park_seq.get() == waker.seq && waker.seq != 0)
    }

    #[inline]
    fn wake_in(&self, task: &Task, reason: Wake) {
        task.park_seq.set(0);
        task.woke.set(Some(reason));
        let timer_went_stale = task.timer_armed.replace(false);
        if task.parked.replace(false) {
            self.push_runnable(task);
        }
        if timer_went_stale {
            self.timers.borrow_mut().mark_stale(|e| self.timer_is_live(e.key, e.seq));
        }
    }

    /// Whether the timer set for park `seq` of slot `key` still matters.
    fn timer_is_live(&self, key: usize, seq: u64) -> bool {
        self.task(key).is_some_and(|t| t.park_seq.get() == seq && t.timer_armed.get())
    }

    /// `yield_now`: to the back of the run queue. The coroutine suspends without parking and
    /// `resume` queues it again. When nothing else is runnable and nothing is pending (no
    /// timer, socket or remote wake that a poll could deliver) it does not switch at all.
    ///
    /// Always inlined, down to the stack switch: a coroutine resumes at the instruction after
    /// its switch, and when that is in the caller's own frame (a loop that yields) no `ret`
    /// lies between one switch and the next, so the CPU's return-address predictions stay
    /// right. Out of line, each round trip paid two mispredicted returns per switch.
    #[inline(always)]
    pub(crate) fn yield_now(&self) {
        let task = self.current_task("yield_now");
        if task.flags.get() != 0 {
            self.check_interrupt_slow(task);
        }
        // Nothing else runnable and nothing that could make anything runnable: go on at once.
        if !self.has_runnable() && self.nothing_pending() {
            return;
        }
        // No `sp_hint` update: a coroutine that yields in a loop yields from about the same
        // place it parked last, and a yield must stay as short as it can be.
        Self::suspend(task);
        if task.flags.get() != 0 {
            self.check_interrupt_slow(task);
        }
    }

    /// No timer, socket or other thread could wake a coroutine: what `yield_now` checks, when
    /// the run queue is empty, before skipping the switch.
    #[inline(never)]
    fn nothing_pending(&self) -> bool {
        self.timers.borrow().is_empty()
            && self.reactor.sources() == 0
            && self.remote.outstanding() == 0
    }

    /// Unwinds if the running coroutine (`task`) was cancelled or one of its timeout scopes
    /// expired. Called when its flags are not zero.
    #[cold]
    #[inline(never)]
    fn check_interrupt_slow(&self, task: &Task) {
        let interrupted = if task.is_cancelled() {
            true
        } else {
            let now = self.now();
            let due =
                task.scopes.borrow().iter().map(|s| s.deadline).min().is_some_and(|d| d <= now);
            if due {
                task.op_deadline.set(None);
                Self::deadline_outcome(task, now);
            }
            due
        };
        if interrupted {
            crate::park::unwind();
        }
    }

    pub(crate) fn unwind_payload(&self) -> Box<dyn Any + Send> {
        let task = self.current_task("park::unwind");
        if task.is_cancelled() {
            Box::new(CancelUnwind)
        } else if let Some(id) = task.expired_scope.get() {
            Box::new(ElapsedUnwind(id))
        } else {
            panic!("spindle::park::unwind called, but the coroutine is neither cancelled nor timed out");
        }
    }

    /// The running coroutine's value for `coroutine_local!` key `index`, made with `init` on
    /// first use. The pointer stays valid until the coroutine's locals are taken at its end.
    pub(crate) fn local<T: 'static>(&self, index: usize, init: fn() -> T) -> *const T {
        let task = self.current_task("coroutine_local access");
        if let Some(Some(value)) = task.locals.borrow().get(index) {
            return value.downcast_ref::<T>().expect("one type per local key");
        }
        // `init` may use the runtime (and other locals), so no borrow is held while it runs.
        let value: Box<dyn Any> = Box::new(init());
        let mut locals = task.locals.borrow_mut();
        if locals.len() <= index {
            locals.resize_with(index + 1, || None);
        }
        let slot = locals[index].get_or_insert(value);
        slot.downcast_ref::<T>().expect("one type per local key")
    }

    /// Takes the running coroutine's locals, so its body can drop them on its own stack.
    pub(crate) fn take_locals(&self) -> Vec<Option<Box<dyn Any>>> {
        let task = self.current.get();
        if task.is_null() {
            return Vec::new();
        }
        // SAFETY: as in `current_task`.
        std::mem::take(&mut *unsafe { &*task }.locals.borrow_mut())
    }

    /// Opens a `time::timeout` scope for the running coroutine; returns its id.
    pub(crate) fn push_scope(&self, deadline: Instant) -> u64 {
        let task = self.current_task("time::timeout");
        let id = self.next_seq.get();
        self.next_seq.set(id + 1);
        task.scopes.borrow_mut().push(Scope { deadline, id });
        task.update_scoped();
        id
    }

    /// Closes scope `id`; returns whether it was the one that expired.
    pub(crate) fn pop_scope(&self, id: u64) -> bool {
        let task = self.current_task("time::timeout");
        task.scopes.borrow_mut().retain(|s| s.id != id);
        task.update_scoped();
        if task.expired_scope.get() == Some(id) {
            task.expired_scope.set(None);
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
    ///
    /// The loop is compiled twice: `drive_loop::<false>` for the common runtime (FIFO order, no
    /// watchdog, guarded stacks), whose resume path has no test for either, and
    /// `drive_loop::<true>` for a seeded schedule or switch hooks. Which one runs is fixed when
    /// the runtime is built.
    fn drive(&self) -> Result<(), String> {
        if self.rng.get() != 0 || self.switch_hooks {
            self.drive_loop::<true>()
        } else {
            self.drive_loop::<false>()
        }
    }

    /// `drive` with the seeded pick and the switch hooks compiled in (`CHECKED`) or out.
    #[inline(never)]
    fn drive_loop<const CHECKED: bool>(&self) -> Result<(), String> {
        loop {
            while let Some((task, poll_due)) = self.next_runnable::<CHECKED>() {
                self.resume::<CHECKED>(task);
                if poll_due {
                    self.poll_busy()?;
                }
            }
            if self.task_count() == 0 {
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
                    if self.has_runnable() {
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
        let mut timers = self.timers.borrow_mut();
        while let Some(e) = timers.peek() {
            if self.timer_is_live(e.key, e.seq) {
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
            match self.task(entry.key) {
                Some(task) if task.park_seq.get() == entry.seq && task.timer_armed.get() => {
                    task.timer_armed.set(false);
                    let outcome = Self::deadline_outcome(task, entry.deadline);
                    self.wake_in(task, outcome);
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

    /// Resumes the coroutine of `task` until it parks, yields or finishes. `CHECKED`: switch
    /// hooks may be on (see [`Core::drive`]).
    #[inline]
    fn resume<const CHECKED: bool>(&self, task: NonNull<Task>) {
        // SAFETY: the run queue holds only live records (see `run_queue`); this one stays live
        // until `finish` below.
        let t = unsafe { task.as_ref() };
        self.current.set(t);
        if CHECKED && self.switch_hooks {
            self.before_switch(t);
        }
        // SAFETY: only `resume` touches `coroutine`, and it does not run again before this
        // returns (the coroutine cannot resume itself: it runs on the stack being resumed).
        let result = unsafe { (*t.coroutine.get()).resume(()) };
        self.current.set(ptr::null());
        if CHECKED && self.switch_hooks {
            self.after_switch(t);
        }
        match result {
            CoroutineResult::Return(()) => self.finish(task),
            // Suspended without parking: a yield, to the back of the queue. The scheduler
            // queues it rather than `yield_now`, which then has nothing to do but switch.
            CoroutineResult::Yield(()) if !t.parked.get() => self.push_runnable(t),
            CoroutineResult::Yield(()) => {}
        }
    }

    #[inline(never)]
    fn before_switch(&self, t: &Task) {
        if let Some(w) = &self.watchdog {
            w.enter(t.id);
        }
    }

    /// Tells the watchdog the coroutine gave the thread back; checks an unguarded stack.
    #[inline(never)]
    fn after_switch(&self, t: &Task) {
        if let Some(w) = &self.watchdog {
            w.leave(t.id, || t.name.as_deref().map(str::to_owned));
        }
        if let Some(canary) = t.canary {
            check_canary(canary, t);
        }
    }

    /// Frees a finished coroutine's slot, record and stack; starts shutdown when it is time.
    #[inline(never)]
    fn finish(&self, task: NonNull<Task>) {
        // The record is live and its coroutine has returned, so nothing refers to it any more:
        // it is not in the run queue (it was running), and wakers and timers name it by slot
        // and sequence, which the table no longer maps to it after this. Reading it out moves
        // it off the stack it sits on, which goes back to the pool below.
        // SAFETY: as just said; the record is read out exactly once, here.
        let Task { key, coroutine, daemon, .. } = unsafe { task.as_ptr().read() };
        // SAFETY: as in `task`.
        unsafe { (*self.tasks.get()).remove(key) };
        self.stacks.borrow_mut().release(coroutine.into_inner().into_stack());
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

    fn deadlock_report(&self) -> String {
        let mut report = String::from(
            "spindle: deadlock: every coroutine is parked and nothing can wake one \
             (no timer pending, no socket registered, no blocking call or remote waker in flight)",
        );
        for t in self.tasks() {
            // SAFETY: the table was read just now; nothing runs while we write the report.
            let t = unsafe { t.as_ref() };
            let name = t.name.as_deref().map(|n| format!(" '{n}'")).unwrap_or_default();
            let _ = write!(report, "\n  coroutine #{}{} parked on {}", t.id, name, t.reason.get());
        }
        report
    }
}

/// A hint to the CPU to load the cache line at `addr`; any address is allowed (a prefetch
/// never faults) and it changes no program state.
#[inline(always)]
fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is part of SSE, which every x86_64 CPU has; it reads no memory
    // architecturally and cannot fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

#[cold]
#[inline(never)]
fn not_in_coroutine(what: &str) -> ! {
    panic!("spindle: {what} must be called from a coroutine, not from runtime internals");
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
            task.id, name, task.header.stack_size
        );
        std::process::abort();
    }
}
