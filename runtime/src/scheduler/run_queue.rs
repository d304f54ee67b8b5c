//! The table of coroutines and the run queue: every raw pointer to a task record lives here.
//!
//! Task records sit at the top of their coroutines' stacks (see [`crate::task`]); the table
//! maps slots to them and the run queue holds pointers to the runnable ones. Outside this file
//! nobody holds such a pointer: a record is reached inside a closure ([`Tasks::with_task`],
//! [`Tasks::with_current`]), so no reference to it can outlive the access, or as the
//! [`Runnable`] the scheduler resumes, which [`Tasks::remove`] consumes when the coroutine has
//! finished.
//!
//! # Why the accesses are sound
//!
//! * The table and the queue sit in `UnsafeCell`s. Each method below borrows one of them for
//!   its own body only and calls nothing that could reach them again, except the closures of
//!   `with_task`, `with_current` and `for_each_task`, which get a record, never the table.
//! * A pointer in the table is a live record until `remove` takes it out, and `remove` runs
//!   only in the scheduler, on a finished coroutine's `Runnable`, while no closure above runs.
//! * A record is in the run queue from a wake (or a yield, or its spawn) until it is popped to
//!   be resumed, so never after it finished.
//!
//! # Order
//!
//! Unseeded, the queue is FIFO. Seeded, each pick takes a queued coroutine at random from a
//! generator seeded with the runtime's seed, so one seed is one interleaving, repeatable. With
//! PCT ([`Pct`], for `check::pct`), each pick takes the runnable coroutine of highest priority.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::HashMap;
use std::ptr::{self, NonNull};

use slab::Slab;

use crate::reactor::driver::EVENT_INTERVAL;
use crate::ring::Ring;
use crate::rng::Rng;
use crate::stack::Stack;
use crate::task::Task;

/// Run-queue length from which `prefetch_ahead` works: below it, the records and frames of
/// the queued coroutines are still in cache when they run.
const PREFETCH_MIN_QUEUE: usize = 16;

/// A runnable coroutine the scheduler popped to resume. Not `Copy`: the one handle that may
/// resume its coroutine and, once that returned, free its record.
pub(crate) struct Runnable(NonNull<Task>);

impl Runnable {
    /// The record, for the duration of the borrow of this handle.
    #[inline(always)]
    pub(crate) fn task(&self) -> &Task {
        // SAFETY: a `Runnable` is made only from a pointer popped from the run queue, which
        // holds live records; the record stays live until `Tasks::remove` consumes this handle.
        unsafe { self.0.as_ref() }
    }
}

/// Where a new coroutine's record goes: the record slot at the top of its stack.
pub(crate) struct RecordSlot(NonNull<Task>);

impl RecordSlot {
    /// # Safety
    /// `at` must be the record slot of a stack now owned by the coroutine whose record will be
    /// written there (`stack::Stack::record_slot`): `RECORD_SLOT` writable bytes, 16-byte
    /// aligned, used by nothing else while the coroutine lives.
    pub(crate) unsafe fn new(at: *mut u8) -> RecordSlot {
        RecordSlot(NonNull::new(at.cast()).expect("a stack's record slot is never null"))
    }
}

/// The table, the run queue, the running coroutine and the seeded pick.
pub(crate) struct Tasks {
    /// Slot -> record of every coroutine alive.
    table: UnsafeCell<Slab<NonNull<Task>>>,
    /// Records of the runnable coroutines, in the order they became runnable.
    queue: UnsafeCell<Ring<NonNull<Task>>>,
    /// Record of the running coroutine, null while the scheduler itself runs.
    current: Cell<*const Task>,
    /// The seeded pick's generator; `None` for FIFO order.
    rng: Cell<Option<Rng>>,
    /// Coroutines picked at random so far (seeded runs), for the poll cadence; the step count
    /// of PCT.
    seeded_picks: Cell<usize>,
    /// Probabilistic concurrency testing's priorities, when the runtime runs under it.
    pct: RefCell<Option<Pct>>,
}

/// PCT (Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS 2010): every coroutine gets a random
/// priority, at least `depth`, when first seen runnable; each step runs the runnable one of
/// highest priority; at `depth - 1` steps chosen at random in `1..=steps` the coroutine about
/// to run drops to priority `j` (the j-th change point), below every initial one. A bug of
/// depth `d` (that needs `d` ordering constraints to show) is then found with probability at
/// least `1 / (n * k^(d-1))` per run, for `n` coroutines and `k` steps.
pub(crate) struct Pct {
    /// Priority by coroutine id.
    priorities: HashMap<u64, u64>,
    /// The steps at which the running coroutine's priority drops: `(step, new priority)`.
    change_points: Vec<(usize, u64)>,
    depth: u64,
}

impl Pct {
    /// PCT of `depth` for a program of about `steps` steps, its random choices from `rng`.
    pub(crate) fn new(depth: usize, steps: usize, rng: &mut Rng) -> Pct {
        let depth = depth.max(1) as u64;
        let change_points =
            (1..depth).map(|j| (1 + rng.below(steps.max(1) as u64) as usize, j)).collect();
        Pct { priorities: HashMap::new(), change_points, depth }
    }
}

impl Tasks {
    /// An empty table; without a seed the run queue is FIFO. Every `u64` seed, 0 included, is
    /// its own stream of picks.
    pub(crate) fn new(seed: Option<u64>) -> Tasks {
        Tasks {
            table: UnsafeCell::new(Slab::new()),
            queue: UnsafeCell::new(Ring::new(NonNull::dangling())),
            current: Cell::new(ptr::null()),
            rng: Cell::new(seed.map(Rng::new)),
            seeded_picks: Cell::new(0),
            pct: RefCell::new(None),
        }
    }

    /// Runs the schedule under PCT from now on (the runtime must be seeded).
    pub(crate) fn set_pct(&self, pct: Pct) {
        *self.pct.borrow_mut() = Some(pct);
    }

    /// Scheduling steps taken so far in a seeded run.
    pub(crate) fn seeded_steps(&self) -> usize {
        self.seeded_picks.get()
    }

    /// True when picks are seeded rather than FIFO.
    #[inline]
    pub(crate) fn is_seeded(&self) -> bool {
        self.rng.get().is_some()
    }

    // ----- the table ----------------------------------------------------------------------

    /// Runs `f` on the record in slot `key`, if a coroutine lives there.
    #[inline(always)]
    pub(crate) fn with_task<R>(&self, key: usize, f: impl FnOnce(&Task) -> R) -> Option<R> {
        // SAFETY: see the module docs: the table borrow ends before `f` runs, and the record
        // stays live while `f` runs, since `remove` cannot run meanwhile.
        let task = unsafe { (*self.table.get()).get(key).copied() }?;
        // SAFETY: as just said.
        Some(f(unsafe { task.as_ref() }))
    }

    /// Runs `f` on every record alive, in slot order. `f` may wake, cancel or spawn coroutines;
    /// one spawned meanwhile is not visited.
    pub(crate) fn for_each_task(&self, mut f: impl FnMut(&Task)) {
        // SAFETY: as in `with_task`; the pointers are copied out before any `f` runs.
        let tasks: Vec<NonNull<Task>> =
            unsafe { (*self.table.get()).iter().map(|(_, t)| *t) }.collect();
        for task in tasks {
            // SAFETY: no record is removed while we iterate (see the module docs).
            f(unsafe { task.as_ref() });
        }
    }

    /// Number of coroutines alive.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        // SAFETY: as in `with_task`.
        unsafe { (*self.table.get()).len() }
    }

    /// The slot the next `insert` will use.
    pub(crate) fn vacant_key(&self) -> usize {
        // SAFETY: as in `with_task`.
        unsafe { (*self.table.get()).vacant_key() }
    }

    /// Writes the record `make(slot)` into `slot`, puts it in the table and at the back of the
    /// run queue; returns its slot.
    #[inline(always)]
    pub(crate) fn insert(&self, slot: RecordSlot, make: impl FnOnce(usize) -> Task) -> usize {
        let key = self.vacant_key();
        let task = make(key);
        debug_assert_eq!(task.key, key);
        // SAFETY: `RecordSlot::new`'s contract: the slot is ours to write, and the record stays
        // there until `remove` reads it back out.
        unsafe { slot.0.as_ptr().write(task) };
        // SAFETY: as in `with_task`; `make` has already run.
        let inserted = unsafe { (*self.table.get()).insert(slot.0) };
        debug_assert_eq!(inserted, key);
        self.push(slot.0);
        key
    }

    /// Takes a finished coroutine's record out of the table and apart (see
    /// [`Task::take_stack`]); returns its stack. Read what else is needed of the record first.
    #[inline(always)]
    pub(crate) fn remove(&self, finished: Runnable) -> Stack {
        // SAFETY: the handle's coroutine has returned, so nothing refers to the record any more:
        // it is not in the run queue (it was running), and wakers and timers name it by slot and
        // sequence, which the table no longer maps to it after this. It is taken apart exactly
        // once, here, and its stack is only given back after (by the caller, with the coroutine).
        let key = finished.task().key;
        // SAFETY: as in `with_task`.
        unsafe { (*self.table.get()).remove(key) };
        // SAFETY: as said above.
        unsafe { Task::take_stack(finished.0.as_ptr()) }
    }

    /// Asks the CPU for the stack frames the coroutine in slot `key` touches first when it
    /// resumes (the [`FRAME_LINES_ABOVE`] lines from where it last switched out on, and the
    /// [`FRAME_LINES_BELOW`] lines under that): for the coroutine the next timer wakes, whose
    /// record an earlier [`Tasks::prefetch_records`] asked for (so its stack page is in the TLB
    /// again).
    pub(crate) fn prefetch_frames(&self, key: usize) {
        // SAFETY: as in `with_task`; only the pointer and one `Cell` of a record are read.
        let table = unsafe { &*self.table.get() };
        if let Some(task) = table.get(key) {
            // SAFETY: records in the table are live (see the module docs).
            let sp = unsafe { task.as_ref() }.sp_hint.get();
            let mut line = sp.wrapping_sub(FRAME_LINES_BELOW * 64);
            for _ in 0..FRAME_LINES_BELOW + FRAME_LINES_ABOVE {
                prefetch(line);
                line = line.wrapping_add(64);
            }
        }
    }

    /// Asks the CPU for the records of `keys`, all at once: before waking them as a batch, or
    /// for the coroutines the next timers wake.
    pub(crate) fn prefetch_records(&self, keys: impl Iterator<Item = usize>) {
        // SAFETY: as in `with_task`; only the pointers are read.
        let table = unsafe { &*self.table.get() };
        for key in keys {
            if let Some(task) = table.get(key) {
                let record = task.as_ptr() as usize;
                for line in 0..RECORD_LINES {
                    prefetch(record + line * 64);
                }
            }
        }
    }

    // ----- the running coroutine ----------------------------------------------------------

    /// Runs `f` on the running coroutine's record; `None` while the scheduler itself runs.
    ///
    /// Called from the running coroutine, `f` may suspend it (park, yield): the record lives
    /// until that coroutine finishes, i.e. longer than any call it makes.
    #[inline(always)]
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(&Task) -> R) -> Option<R> {
        let task = self.current.get();
        if task.is_null() {
            return None;
        }
        // SAFETY: `current` is the record of the coroutine running now (set by `set_current`
        // around its resumption), live until it finishes, and the caller is that coroutine.
        Some(f(unsafe { &*task }))
    }

    /// The running coroutine's record pointer, null if none runs: for the overflow handler,
    /// which only reads its header.
    #[inline]
    pub(crate) fn current_ptr(&self) -> *const Task {
        self.current.get()
    }

    /// Marks `task` as running (`Some`) or the scheduler as running (`None`).
    #[inline(always)]
    pub(crate) fn set_current(&self, task: Option<&Runnable>) {
        self.current.set(task.map_or(ptr::null(), |t| t.0.as_ptr()));
    }

    // ----- the run queue ------------------------------------------------------------------

    /// Appends `task` to the run queue.
    #[inline(always)]
    pub(crate) fn push_runnable(&self, task: &Task) {
        self.push(NonNull::from(task));
    }

    #[inline(always)]
    fn push(&self, task: NonNull<Task>) {
        // SAFETY: see the module docs: the queue is borrowed for this call only.
        unsafe { (*self.queue.get()).push_back(task) }
    }

    /// Coroutines waiting to run.
    pub(crate) fn queued(&self) -> usize {
        // SAFETY: as in `push`.
        unsafe { (*self.queue.get()).len() }
    }

    /// True if a coroutine is waiting to run.
    #[inline(always)]
    pub(crate) fn has_runnable(&self) -> bool {
        // SAFETY: as in `push`.
        unsafe { !(*self.queue.get()).is_empty() }
    }

    /// Chooses the next coroutine to resume; the flag says a zero-timeout poll is due after it
    /// (every [`EVENT_INTERVAL`] resumptions). `SEEDED`: the pick may be seeded.
    #[inline(always)]
    pub(crate) fn next_runnable<const SEEDED: bool>(&self) -> Option<(Runnable, bool)> {
        if SEEDED && self.is_seeded() {
            return self.next_seeded();
        }
        // SAFETY: as in `push`.
        let queue = unsafe { &mut *self.queue.get() };
        let (task, pops) = queue.pop_front_counted()?;
        if queue.len() >= PREFETCH_MIN_QUEUE {
            prefetch_ahead(queue);
        }
        Some((Runnable(task), pops.is_multiple_of(EVENT_INTERVAL)))
    }

    /// `next_runnable` with a seed: a random pick from the queue.
    #[cold]
    #[inline(never)]
    fn next_seeded(&self) -> Option<(Runnable, bool)> {
        // SAFETY: as in `push`.
        let queue = unsafe { &mut *self.queue.get() };
        let picks = self.seeded_picks.get().wrapping_add(1);
        self.seeded_picks.set(picks);
        let task = match self.rng.get() {
            Some(mut rng) if self.pct.borrow().is_some() && !queue.is_empty() => {
                let pick = self.pct_pick(queue, picks, &mut rng);
                self.rng.set(Some(rng));
                queue.swap_remove(pick)
            }
            Some(mut rng) if queue.len() >= 2 => {
                let pick = rng.below(queue.len() as u64) as usize;
                self.rng.set(Some(rng));
                queue.swap_remove(pick)
            }
            _ => queue.pop_front()?,
        };
        Some((Runnable(task), picks.is_multiple_of(EVENT_INTERVAL)))
    }

    /// PCT's pick at step `step`: the position in `queue` (not empty) of the coroutine of
    /// highest priority, after applying this step's change point, if any.
    fn pct_pick(&self, queue: &Ring<NonNull<Task>>, step: usize, rng: &mut Rng) -> usize {
        let mut pct = self.pct.borrow_mut();
        let pct = pct.as_mut().expect("checked by the caller");
        let depth = pct.depth;
        let id_at = |i: usize| {
            let task = queue.get(i).expect("i < len");
            // SAFETY: records in the run queue are live (see the module docs).
            unsafe { task.as_ref() }.id
        };
        let mut best = |pct: &mut Pct| {
            let mut best = (0, 0);
            for i in 0..queue.len() {
                let prio = *pct.priorities.entry(id_at(i)).or_insert_with(|| {
                    depth + rng.below(u64::MAX - depth) // distinct with high probability
                });
                if i == 0 || prio > best.1 {
                    best = (i, prio);
                }
            }
            best.0
        };
        let pick = best(pct);
        if let Some(&(_, low)) = pct.change_points.iter().find(|(at, _)| *at == step) {
            pct.priorities.insert(id_at(pick), low);
            return best(pct);
        }
        pick
    }
}

/// Lines below a coroutine's last `sp_hint` that `prefetch_frames` asks for too: the calls its
/// next park makes past that point (arming the timer) run there, and in a simulation at 10,000
/// coroutines their cache misses were a fifth of the time (perf), the stalls landing in
/// `Timers::insert`.
const FRAME_LINES_BELOW: usize = 4;

/// Lines of a record that `prefetch_records` asks for: what the wake reads and writes
/// (the first), what resuming the coroutine reads (its saved stack pointer, in the second)
/// and what its next park writes (the reason and the caller's deadline, into the third).
const RECORD_LINES: usize = 3;

/// Lines from `sp_hint`'s on up that `prefetch_frames` asks for: the frames of the park and
/// of its callers (`sleep`, the loop that sleeps), which the coroutine returns through first.
const FRAME_LINES_ABOVE: usize = 5;

/// Asks the CPU to start loading what the next two coroutines in the run queue will touch
/// first: the record of the one after next, and the stack frames of the next (whose record
/// the previous call asked for). With thousands of connections each coroutine's record and
/// frames are cold by the time it runs again (the run queue is as long as the number of busy
/// connections), and the loads overlap with the coroutine resumed now instead of stalling the
/// switch. Only called when the queue is long (`PREFETCH_MIN_QUEUE`): in a short one all of it
/// is still cached and the prefetches would only cost instructions.
#[inline]
fn prefetch_ahead(queue: &Ring<NonNull<Task>>) {
    if let Some(next) = queue.get(0) {
        // SAFETY: records in the run queue are live (see the module docs).
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
