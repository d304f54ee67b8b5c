//! The task record: one coroutine's state, where it lives, and its state machine.
//!
//! # States of one coroutine
//!
//! ```text
//!                     spawn / yield
//!          ┌───────────────────────────────────────────┐
//!          ▼                                           │
//!     ┌──────────┐   resume    ┌─────────┐  begin_park ┌─────────────┐  commit  ┌────────┐
//!     │ Runnable │ ──────────► │ Running │ ──────────► │ Registering │ ───────► │ Parked │
//!     └──────────┘             └─────────┘             └─────────────┘          └────────┘
//!          ▲                     ▲    ▲  early wake or      │                       │
//!          │                     │    └─ deadline passed ───┘                       │
//!          │                     └── end_park (on resumption)                       │
//!          └───────────────────────────── wake (waker, timer, cancel) ◄─────────────┘
//! ```
//!
//! Four cells carry the state of the park in progress, and the transitions below are the only
//! code that writes them:
//!
//! | state | `park_seq` | `parked` | `woke` | in run queue |
//! |---|---|---|---|---|
//! | Running (or Runnable after a yield) | 0 | false | `None` | runnable only |
//! | Registering: inside `park`, before the switch | `seq` | false | `None` | no |
//! | woken while Registering | 0 | false | `Some` | no |
//! | Parked | `seq` | true | `None` | no |
//! | Runnable after a wake | 0 | false | `Some` | yes |
//!
//! `timer_armed` is true only while Parked with a deadline among the timers; `flags` holds
//! [`CANCELLED`] (sticky), [`SCOPED`] (inside a `time::timeout`) and [`UNWINDING`] (its
//! cancellation or timeout unwind is in flight: parks are shielded). A [`Waker`](crate::wake::Waker)
//! is live while it carries the current nonzero `park_seq`, which is what makes a stale wake
//! harmless: `wake` runs only for a live one, and ends the park by zeroing the sequence.
//!
//! # Where it lives, and the rules for touching it
//!
//! The record sits in the top [`RECORD_SLOT`] bytes of the coroutine's own stack, above the part
//! the coroutine runs on (see `stack::Stack::record_slot`). It therefore never moves while the
//! coroutine lives, shares its page with the coroutine's outermost frames, and costs no
//! allocation. The scheduler's table maps slots to these records; the run queue holds pointers
//! to them (both in `scheduler::run_queue`, which hands out records only inside closures, so
//! no reference outlives the access).
//!
//! Every field that changes after spawn is a `Cell` (or a `RefCell` for the cold, non-`Copy`
//! ones), so only shared references to a record ever exist, any number at once, from the
//! coroutine itself and from the scheduler. The one exception is `coroutine`, behind an
//! `UnsafeCell`: only the scheduler's `resume` touches it, while nothing else can run. A record
//! is freed in one place, the scheduler's `finish`, right after its coroutine returned.
//!
//! `repr(C)` keeps the fields in the order written: what every switch, park and wake touches
//! comes first, in the record's first two cache lines.

use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::ptr;
use std::rc::Rc;

use crate::overflow::Header;
use crate::stack::{Stack, RECORD_SLOT};
use crate::wake::{Reason, Wake};

/// A coroutine as corosensei runs it: no input, no yield value, on one of our stacks.
pub(crate) type Coro = corosensei::Coroutine<(), (), (), Stack>;
/// The handle a coroutine suspends through.
pub(crate) type Yielder = corosensei::Yielder<(), ()>;

/// `Task::flags`: `cancel` was called; every park returns `Cancelled` from now on.
pub(crate) const CANCELLED: u8 = 1;
/// `Task::flags`: the coroutine is inside at least one `time::timeout` scope.
pub(crate) const SCOPED: u8 = 2;
/// `Task::flags`: a shield may be up (see [`Task::is_shielded`]): the coroutine is unwinding
/// from a cancellation or an expired timeout, or dropping its locals at its end. Its parks are
/// shielded meanwhile: destructors that lock, sleep or yield wait normally instead of being
/// cut short, which would need a second unwind inside a destructor that is already unwinding,
/// and abort the process.
pub(crate) const UNWINDING: u8 = 4;

/// An active `time::timeout` of a coroutine.
pub(crate) struct Scope {
    /// As a tick of the runtime's clock (see `scheduler::clock`).
    pub deadline: u64,
    pub id: u64,
}

/// One coroutine's record; see the module docs for its states and the rules for touching it.
///
/// It is never dropped as a whole: [`Task::take_stack`] takes it apart, so a field added here
/// that needs dropping must be dropped there too.
#[repr(C)]
pub(crate) struct Task {
    // ----- hot: every switch, park and wake -----
    /// Sequence number of the park in progress, 0 when not parked. A waker is live iff it
    /// carries this number: the generation that makes stale wakes harmless.
    park_seq: Cell<u64>,
    /// Its yielder, on its own stack; null until its first resumption.
    pub yielder: Cell<*const Yielder>,
    /// Its slot in the table.
    pub key: usize,
    /// About where its stack pointer was when it last switched out: the frames it touches
    /// first when resumed are around here (see `run_queue::prefetch_ahead`).
    pub sp_hint: Cell<usize>,
    /// Other memory its last park said it touches first when woken (a socket's state and its
    /// reactor entry), 0 if none.
    pub near_hint: Cell<[usize; 2]>,
    /// Why the last park ended; set by `wake`, taken by `end_park` on resumption.
    woke: Cell<Option<Wake>>,
    /// Parked: suspended in `park` (committed: past `register`), waiting for a waker, its timer
    /// or cancellation. A woken task leaves this state as it enters the run queue.
    parked: Cell<bool>,
    /// `CANCELLED | SCOPED | UNWINDING`: zero means a yield or park has nothing to check.
    flags: Cell<u8>,
    /// The park in progress has an entry among the timers.
    timer_armed: Cell<bool>,
    /// The suspended coroutine; see the rules above.
    pub coroutine: UnsafeCell<Coro>,
    /// What the coroutine waits on while parked.
    reason: Cell<Reason>,
    /// Deadline the park's caller asked for (scope deadlines aside), as a tick of the
    /// runtime's clock.
    op_deadline: Cell<Option<u64>>,
    // ----- cold -----
    /// What the overflow handler reports (size, guard range, id, name); see
    /// `context::running_header`.
    pub header: Header,
    pub id: u64,
    pub name: Option<Rc<str>>,
    pub daemon: bool,
    /// Active `time::timeout` scopes, outermost first.
    pub scopes: RefCell<Vec<Scope>>,
    /// The scope whose deadline ended the last park, until its `timeout` call catches it.
    pub expired_scope: Cell<Option<u64>>,
    /// Where the canary of an unguarded stack sits, checked at each switch out.
    pub canary: Option<usize>,
    /// `coroutine_local!` values, by key index; boxed so their addresses never move.
    pub locals: RefCell<Vec<Option<Box<dyn Any>>>>,
    /// Live shields that hold whatever happens (the end-of-life drop of locals and captures).
    shields: Cell<u32>,
    /// Live unwind payloads (cancellation, expired timeout): they shield while the thread is
    /// unwinding, so a payload that user code caught and kept shields nothing.
    unwinds: Cell<u32>,
}

const _: () = assert!(
    std::mem::size_of::<Task>() <= RECORD_SLOT,
    "the task record must fit the slot every stack keeps for it (stack::RECORD_SLOT)"
);
const _: () = assert!(std::mem::align_of::<Task>() <= 16, "stack tops are 16-byte aligned");

/// What [`Task::wake`] found, for the scheduler to act on.
pub(crate) struct Woken {
    /// The task was Parked: it must go to the run queue now.
    pub was_parked: bool,
    /// Its timer entry no longer matters (count it stale in the heap).
    pub timer_went_stale: bool,
}

impl Task {
    /// A new record, Runnable, with no park in progress; cancelled from the start when
    /// `cancelled` (a spawn during teardown).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key: usize,
        id: u64,
        coroutine: Coro,
        header: Header,
        name: Option<Rc<str>>,
        daemon: bool,
        canary: Option<usize>,
        cancelled: bool,
    ) -> Task {
        Task {
            park_seq: Cell::new(0),
            yielder: Cell::new(std::ptr::null()),
            key,
            sp_hint: Cell::new(0),
            near_hint: Cell::new([0; 2]),
            woke: Cell::new(None),
            parked: Cell::new(false),
            flags: Cell::new(if cancelled { CANCELLED } else { 0 }),
            timer_armed: Cell::new(false),
            coroutine: UnsafeCell::new(coroutine),
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
            shields: Cell::new(0),
            unwinds: Cell::new(0),
        }
    }

    /// Takes a finished coroutine's record apart where it lies: moves out its stack (the one
    /// the record sits on; read the record's other fields first), drops the name and the scope
    /// list in place, and leaks any `coroutine_local!`
    /// values that destructors made after its last round of dropping them (dropped here, on the
    /// scheduler's stack, one that parks or asks for its coroutine would fail). Reading only
    /// these fields, rather than the whole record, saves copying its 384 bytes.
    ///
    /// # Safety
    /// `this` is a live record whose coroutine has returned; it is not used again after this.
    #[inline(always)]
    pub(crate) unsafe fn take_stack(this: *mut Task) -> Stack {
        // SAFETY: the caller's contract; each field is read or dropped exactly once, and the
        // fields not mentioned (`Cell`s of `Copy` data, the header, the canary) need no drop.
        unsafe {
            // The stack is taken out of the coroutine where it lies: moving the coroutine
            // first cost two store-forwarding stalls per finish (copies of mixed widths).
            let stack = ptr::read((*this).coroutine.get()).into_stack();
            ptr::drop_in_place(ptr::addr_of_mut!((*this).name));
            ptr::drop_in_place(ptr::addr_of_mut!((*this).scopes));
            std::mem::forget(ptr::read(ptr::addr_of!((*this).locals)));
            stack
        }
    }

    // ----- reading the state -----------------------------------------------------------

    /// `CANCELLED | SCOPED`; zero when a yield or park has nothing to check.
    #[inline(always)]
    pub(crate) fn flags(&self) -> u8 {
        self.flags.get()
    }

    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.flags.get() & CANCELLED != 0
    }

    /// Its parks are shielded now: a shield that always holds is up, or an unwind payload is
    /// alive and the thread is unwinding (its destructors run). Cold: only asked when
    /// [`UNWINDING`] is set.
    #[cold]
    pub(crate) fn is_shielded(&self) -> bool {
        self.flags.get() & UNWINDING != 0
            && (self.shields.get() > 0 || (self.unwinds.get() > 0 && std::thread::panicking()))
    }

    /// Running: a shield was raised, one that always holds (`unwind == false`: its locals or
    /// captures are about to drop) or one that holds while the thread unwinds (an unwind payload
    /// was made). Parks are shielded until it is lowered.
    pub(crate) fn raise_shield(&self, unwind: bool) {
        let count = if unwind { &self.unwinds } else { &self.shields };
        count.set(count.get() + 1);
        self.flags.set(self.flags.get() | UNWINDING);
    }

    /// A shield was lowered (an unwind payload dropped: the unwind was caught, by the
    /// coroutine's body, by `time::timeout` or by user code).
    pub(crate) fn lower_shield(&self, unwind: bool) {
        let count = if unwind { &self.unwinds } else { &self.shields };
        debug_assert!(count.get() > 0, "a shield is lowered once, after it was raised");
        count.set(count.get().saturating_sub(1));
        if self.shields.get() == 0 && self.unwinds.get() == 0 {
            self.flags.set(self.flags.get() & !UNWINDING);
        }
    }

    /// True while `waker_seq` names the park in progress (a live waker).
    #[inline(always)]
    pub(crate) fn is_waiting_for(&self, waker_seq: u64) -> bool {
        waker_seq != 0 && self.park_seq.get() == waker_seq
    }

    /// True while the park `seq` still has its entry among the timers.
    #[inline]
    pub(crate) fn timer_is_live(&self, seq: u64) -> bool {
        self.park_seq.get() == seq && self.timer_armed.get()
    }

    /// Parked (committed), waiting for a waker, its timer or cancellation.
    #[inline]
    pub(crate) fn is_parked(&self) -> bool {
        self.parked.get()
    }

    /// What it waits on while parked, [`Reason::RUNNING`] otherwise.
    pub(crate) fn reason(&self) -> Reason {
        self.reason.get()
    }

    // ----- transitions -----------------------------------------------------------------

    /// Running -> Registering: park `seq` begins, waiting on `reason` until `deadline`.
    #[inline(always)]
    pub(crate) fn begin_park(&self, seq: u64, reason: Reason, deadline: Option<u64>) {
        debug_assert!(seq != 0, "park sequence 0 means 'not parked'");
        debug_assert!(
            self.park_seq.get() == 0 && !self.parked.get() && !self.timer_armed.get(),
            "a park begins only from Running"
        );
        self.park_seq.set(seq);
        self.woke.set(None);
        self.op_deadline.set(deadline);
        self.reason.set(reason);
    }

    /// True if a waker ended the park while it was still Registering.
    #[inline(always)]
    pub(crate) fn woken_early(&self) -> bool {
        self.woke.get().is_some()
    }

    /// Registering -> Running, for a park a waker ended while registering: its outcome.
    #[inline]
    pub(crate) fn take_early_wake(&self) -> Option<Wake> {
        let wake = self.woke.take()?;
        debug_assert!(self.park_seq.get() == 0 && !self.parked.get());
        self.reason.set(Reason::RUNNING);
        Some(wake)
    }

    /// Registering -> Running, for a park whose deadline had passed before it suspended.
    #[inline]
    pub(crate) fn abandon_park(&self) {
        debug_assert!(self.park_seq.get() != 0 && !self.parked.get() && !self.timer_armed.get());
        self.park_seq.set(0);
        self.reason.set(Reason::RUNNING);
    }

    /// Registering: its deadline went into the timers.
    #[inline]
    pub(crate) fn arm_timer(&self) {
        debug_assert!(self.park_seq.get() != 0 && !self.parked.get() && !self.timer_armed.get());
        self.timer_armed.set(true);
    }

    /// Registering -> Parked: about to suspend; only a wake resumes it now.
    #[inline(always)]
    pub(crate) fn commit_park(&self) {
        debug_assert!(
            self.park_seq.get() != 0 && self.woke.get().is_none() && !self.parked.get(),
            "only a park still registering, and not yet woken, commits"
        );
        self.parked.set(true);
    }

    /// Ends the park in progress (Registering or Parked) with `reason`. The caller checked it
    /// is in progress ([`Task::is_waiting_for`]); a Parked task must then go to the run queue.
    #[inline]
    pub(crate) fn wake(&self, reason: Wake) -> Woken {
        debug_assert!(self.park_seq.get() != 0, "only a park in progress can be woken");
        debug_assert!(self.woke.get().is_none(), "a park is woken once");
        self.park_seq.set(0);
        self.woke.set(Some(reason));
        Woken {
            timer_went_stale: self.timer_armed.replace(false),
            was_parked: self.parked.replace(false),
        }
    }

    /// Parked: its timer fired (and left the heap); the caller then wakes it.
    #[inline]
    pub(crate) fn fire_timer(&self) {
        debug_assert!(self.timer_armed.get() && self.parked.get());
        self.timer_armed.set(false);
    }

    /// Resumed after a park: back to Running; why the park ended.
    #[inline(always)]
    pub(crate) fn end_park(&self) -> Wake {
        debug_assert!(self.park_seq.get() == 0 && !self.parked.get() && !self.timer_armed.get());
        self.reason.set(Reason::RUNNING);
        self.woke.take().expect("a parked coroutine is only resumed after a wake")
    }

    /// Sets [`CANCELLED`], for good. Returns whether the park in progress must be woken with
    /// `Cancelled` now: it is Parked (a Registering one sees the flag when it commits), and not
    /// shielded by an unwind in flight ([`UNWINDING`]).
    pub(crate) fn mark_cancelled(&self) -> bool {
        self.flags.set(self.flags.get() | CANCELLED);
        self.parked.get() && self.park_seq.get() != 0 && !self.is_shielded()
    }

    /// How deep its stack has been used, in bytes (see `stack::touched_depth`).
    pub(crate) fn stack_used(&self) -> usize {
        crate::stack::touched_depth(self.header.base, self.header.stack_size)
    }

    /// Sets or clears [`SCOPED`] from the scope list.
    pub(crate) fn update_scoped(&self) {
        let scoped = if self.scopes.borrow().is_empty() { 0 } else { SCOPED };
        self.flags.set(self.flags.get() & !SCOPED | scoped);
    }

    /// A yield or park of a cancelled coroutine found a timeout scope due: the caller's own
    /// deadline no longer counts.
    pub(crate) fn clear_op_deadline(&self) {
        self.op_deadline.set(None);
    }

    /// The earliest deadline of its timeout scopes (a tick), if any.
    pub(crate) fn scope_deadline(&self) -> Option<u64> {
        self.scopes.borrow().iter().map(|s| s.deadline).min()
    }

    /// What a park returns whose timer fired at tick `at`: `TimedOut` when outside any
    /// timeout scope (the timer was the caller's own deadline: only a running coroutine opens
    /// or closes its scopes, so they are those it parked with), else as
    /// [`Task::deadline_outcome`] says. Outside a scope it reads nothing but the flags, in the
    /// record's first cache line, the one the timers prefetch.
    #[inline]
    pub(crate) fn timer_outcome(&self, at: u64) -> Wake {
        if self.flags.get() & SCOPED == 0 {
            debug_assert!(self.op_deadline.get().is_some(), "an unscoped timer is its own");
            return Wake::TimedOut;
        }
        self.deadline_outcome(at)
    }

    /// What a park whose effective deadline `at` passed returns: `TimedOut` if the caller's own
    /// deadline is due, else `Cancelled` with the earliest-expiring timeout scope recorded.
    pub(crate) fn deadline_outcome(&self, at: u64) -> Wake {
        if self.op_deadline.get().is_some_and(|d| d <= at) {
            return Wake::TimedOut;
        }
        let scopes = self.scopes.borrow();
        let mut expired: Option<&Scope> = None;
        for s in scopes.iter() {
            if expired.is_none_or(|e| s.deadline < e.deadline) {
                expired = Some(s);
            }
        }
        self.expired_scope.set(expired.map(|s| s.id));
        Wake::Cancelled
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
    pub(crate) fn of(t: &Task) -> TaskView {
        TaskView { key: t.key, id: t.id, name: t.name.clone(), daemon: t.daemon }
    }
}
