//! Park, wake, yield and cancel: the transitions a running coroutine or a waker asks of the
//! scheduler (the states themselves are drawn in [`crate::task`]).
//!
//! * [`Core::park`] begins a park, lets the caller register its waker, then either finds the
//!   park already over (woken while registering, deadline passed) or commits it, arming the
//!   timer for the earliest of the caller's deadline and the coroutine's `time::timeout`
//!   scopes, and suspends.
//! * [`Core::wake`] ends a park that is still in progress; a stale waker does nothing.
//! * [`Core::yield_now`] suspends without parking: `resume` queues the coroutine again.
//! * [`Core::cancel`] marks a coroutine cancelled and wakes it if parked; from then on every
//!   park returns `Cancelled` and the coroutine unwinds with [`CancelUnwind`].

use std::any::Any;
use std::ptr;
use std::time::{Duration, Instant};

use super::Core;
use crate::context;
use crate::task::{Scope, Task, CANCELLED, SCOPED, UNWINDING};
use crate::wake::{Reason, Wake, Waker};

/// The payload a cancelled coroutine unwinds with. Its shield keeps the coroutine's parks
/// shielded while the unwind is in flight (see `task::UNWINDING`); dropping it, wherever the
/// unwind is caught, lowers the shield.
pub(crate) struct CancelUnwind {
    _shield: Shield,
}

/// The payload a coroutine unwinds with when `time::timeout` scope `scope` expired; shields its
/// parks while it lives, as [`CancelUnwind`] does.
pub(crate) struct ElapsedUnwind {
    pub(crate) scope: u64,
    _shield: Shield,
}

/// While it lives, the parks of the coroutine that raised it are shielded: they wait normally,
/// whatever cancellations and timeout scopes say, so that destructors may lock, sleep and yield.
pub(crate) struct Shield {
    /// The coroutine whose shield this is.
    coroutine: u64,
    /// Holds only while the thread unwinds (an unwind payload's), not always.
    unwind: bool,
}

impl Shield {
    /// Raises a shield for the running coroutine `task` (see `Task::raise_shield`).
    fn raise(task: &Task, unwind: bool) -> Shield {
        task.raise_shield(unwind);
        Shield { coroutine: task.id, unwind }
    }
}

impl Drop for Shield {
    /// Lowers the shield; nothing if its coroutine is not the running one (a payload dropped
    /// outside its runtime, after `run` returned).
    fn drop(&mut self) {
        context::with_core(|core| {
            core.tasks.with_current(|task| {
                if task.id == self.coroutine {
                    task.lower_shield(self.unwind);
                }
            })
        });
    }
}

impl Core {
    /// `park::park`. Always inlined down to the stack switch, like `yield_now` (see there): the
    /// steps before and after the switch are out of line, so what inlines is small.
    #[inline(always)]
    pub(crate) fn park(
        &self,
        reason: Reason,
        deadline: Option<Instant>,
        register: impl FnOnce(Waker),
    ) -> Wake {
        let deadline = deadline.map(|d| self.clock.tick(d));
        self.park_inner(reason, deadline, [0; 2], register, false, false)
    }

    /// A park with nothing to register that ends at tick `at` of the runtime's clock (see
    /// `clock`), or earlier if cancelled: `sleep`'s, which computes its deadline as a tick.
    #[inline(always)]
    pub(crate) fn park_until_tick(&self, reason: Reason, at: u64) -> Wake {
        self.park_inner(reason, Some(at), [0; 2], |_| {}, false, true)
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
        let deadline = deadline.map(|d| self.clock.tick(d));
        self.park_inner(reason, deadline, near, register, false, false)
    }

    /// A park that cancellation and timeout scopes cannot cut short: it starts even when the
    /// coroutine is cancelled and ignores scope deadlines (a `cancel` during it still wakes it
    /// with `Cancelled`, once). For waits that must finish for soundness: a scope that was
    /// interrupted waiting for the coroutines that borrow from it.
    pub(crate) fn park_shielded(&self, reason: Reason, register: impl FnOnce(Waker)) -> Wake {
        self.park_inner(reason, None, [0; 2], register, true, false)
    }

    /// Every park, its deadline a tick: a short sequence, always inlined, around the stack
    /// switch. `arm_inline` (a constant at each call site): a park with a deadline of its own
    /// arms its timer here rather than in `park_commit_slow` when it is outside any timeout
    /// scope (`sleep`'s: one call site, and a simulation's every event).
    #[inline(always)]
    fn park_inner(
        &self,
        reason: Reason,
        deadline: Option<u64>,
        near: [usize; 2],
        register: impl FnOnce(Waker),
        shielded: bool,
        arm_inline: bool,
    ) -> Wake {
        self.with_running(
            reason.what,
            #[inline(always)]
            |task| {
                let seq = self.next_seq();
                let flags = task.flags();
                // A coroutine that is unwinding parks shielded: its destructors wait normally.
                let shielded = shielded || (flags & UNWINDING != 0 && task.is_shielded());
                if flags & CANCELLED != 0 && !shielded {
                    return Wake::Cancelled;
                }
                task.begin_park(seq, reason, deadline);
                register(Waker::new(task.key, seq));
                let scoped = flags & SCOPED != 0 && !shielded;
                if let (true, Some(at), false, false) =
                    (arm_inline, deadline, scoped, task.woken_early())
                {
                    if at <= self.clock.now_tick() {
                        task.abandon_park();
                        return Wake::TimedOut; // its own deadline passed: no scope to blame
                    }
                    self.timers.borrow_mut().insert(at, task.key, seq);
                    task.arm_timer();
                    task.commit_park();
                } else if task.woken_early() || deadline.is_some() || scoped {
                    if let Some(wake) = self.park_commit_slow(task, seq, deadline, scoped) {
                        return wake;
                    }
                } else {
                    task.commit_park();
                }
                let marker = 0u8;
                task.sp_hint.set(ptr::addr_of!(marker) as usize);
                task.near_hint.set(near);
                suspend(task);
                task.end_park()
            },
        )
    }

    /// The part of `park` after `register` when there is more to do than marking the task
    /// parked: `Some` if the park already ended (woken while registering, or the deadline
    /// passed); else arms the timer for the earliest of the caller's deadline and, when
    /// `scoped` (inside a `time::timeout` and not shielded), the coroutine's timeout scopes, and
    /// commits the park.
    #[inline(never)]
    fn park_commit_slow(
        &self,
        task: &Task,
        seq: u64,
        deadline: Option<u64>,
        scoped: bool,
    ) -> Option<Wake> {
        if let Some(wake) = task.take_early_wake() {
            return Some(wake);
        }
        let scope_deadline = if scoped { task.scope_deadline() } else { None };
        let effective = match (deadline, scope_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = effective {
            if at <= self.clock.now_tick() {
                task.abandon_park();
                return Some(task.deadline_outcome(at));
            }
            self.timers.borrow_mut().insert(at, task.key, seq);
            task.arm_timer();
        }
        task.commit_park();
        None
    }

    /// Ends park `waker.seq` of slot `waker.key` with `reason`, if it is still in progress.
    #[inline]
    pub(crate) fn wake(&self, waker: Waker, reason: Wake) -> bool {
        self.tasks
            .with_task(waker.key, |task| {
                let live = task.is_waiting_for(waker.seq);
                if live {
                    self.wake_task(task, reason);
                }
                live
            })
            .unwrap_or(false)
    }

    /// Wakes every waker in `wakers` with `Notified`, after asking the CPU for all their
    /// records at once: a poll that readies many sockets then waits for memory once rather than
    /// once per coroutine.
    pub(crate) fn wake_all(&self, wakers: &[Waker]) {
        if wakers.len() > 1 {
            self.tasks.prefetch_records(wakers.iter().map(|w| w.key));
        }
        for &w in wakers {
            self.wake(w, Wake::Notified);
        }
    }

    /// True while the park `waker` was made for has not ended.
    pub(crate) fn is_waiting(&self, waker: Waker) -> bool {
        self.tasks.with_task(waker.key, |t| t.is_waiting_for(waker.seq)).unwrap_or(false)
    }

    /// Ends `task`'s park in progress with `reason`: queues it if it was parked, and counts
    /// its timer stale. Always inlined: what it does is a few stores, but out of line it
    /// saved and restored registers for them.
    #[inline(always)]
    pub(super) fn wake_task(&self, task: &Task, reason: Wake) {
        let woken = task.wake(reason);
        if self.counting.is_some() {
            self.count_wake(task);
        }
        if self.tracer.is_some() {
            self.trace_wake(task);
        }
        if woken.was_parked {
            self.tasks.push_runnable(task);
        }
        if woken.timer_went_stale {
            self.timer_went_stale();
        }
    }

    /// A timer's park ended another way: its entry is stale.
    #[inline(never)]
    fn timer_went_stale(&self) {
        self.timers.borrow_mut().mark_stale(|e| self.timer_is_live(e.key, e.seq));
    }

    /// Whether the timer set for park `seq` of slot `key` still matters.
    pub(super) fn timer_is_live(&self, key: usize, seq: u64) -> bool {
        self.tasks.with_task(key, |t| t.timer_is_live(seq)).unwrap_or(false)
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
        self.with_running("yield_now", |task| {
            if task.flags() != 0 {
                self.check_interrupt_slow(task);
            }
            // Nothing else runnable and nothing that could make anything runnable: go on.
            if !self.tasks.has_runnable() && self.nothing_pending() {
                return;
            }
            // No `sp_hint` update: a coroutine that yields in a loop yields from about the same
            // place it parked last, and a yield must stay as short as it can be.
            suspend(task);
            if task.flags() != 0 {
                self.check_interrupt_slow(task);
            }
        })
    }

    /// No timer, socket or other thread could wake a coroutine, and no job from another thread
    /// waits: what `yield_now` checks, when the run queue is empty, before skipping the switch.
    /// A wake another thread queued counts too: its waker is gone (not outstanding), but the
    /// coroutine it woke must get its turn.
    #[inline(never)]
    fn nothing_pending(&self) -> bool {
        self.timers.borrow().is_empty()
            && self.reactor.sources() == 0
            && self.remote.outstanding() == 0
            && !self.remote.has_pending()
    }

    /// Unwinds if the running coroutine (`task`) was cancelled or one of its timeout scopes
    /// expired. Called when its flags are not zero.
    #[cold]
    #[inline(never)]
    fn check_interrupt_slow(&self, task: &Task) {
        let interrupted = if task.is_shielded() {
            false // a destructor yielding during the unwind: it goes on
        } else if task.is_cancelled() {
            true
        } else {
            let now = self.clock.now_tick();
            let due = task.scope_deadline().is_some_and(|d| d <= now);
            if due {
                task.clear_op_deadline();
                task.deadline_outcome(now);
            }
            due
        };
        if interrupted {
            std::panic::resume_unwind(self.unwind_payload());
        }
    }

    /// What `park::unwind` unwinds the running coroutine with; its parks are shielded until
    /// the payload is dropped.
    pub(crate) fn unwind_payload(&self) -> Box<dyn Any + Send> {
        self.with_running("park::unwind", |task| -> Box<dyn Any + Send> {
            if task.is_cancelled() {
                Box::new(CancelUnwind { _shield: Shield::raise(task, true) })
            } else if let Some(scope) = task.expired_scope.get() {
                if self.tracer.is_some() {
                    self.trace_event("timeout", task.id);
                }
                Box::new(ElapsedUnwind { scope, _shield: Shield::raise(task, true) })
            } else {
                panic!(
                    "spindle::park::unwind called, but the coroutine is neither cancelled nor \
                     timed out"
                );
            }
        })
    }

    /// Does what `JoinHandle::cancel` asks: returns false if no such coroutine is alive.
    pub(crate) fn cancel(&self, key: usize, id: u64) -> bool {
        self.tasks
            .with_task(key, |task| {
                let alive = task.id == id;
                if alive {
                    self.cancel_task(task);
                }
                alive
            })
            .unwrap_or(false)
    }

    /// Cancels `task`: every park returns `Cancelled` from now on, and a parked one wakes.
    pub(super) fn cancel_task(&self, task: &Task) {
        if task.mark_cancelled() {
            if self.tracer.is_some() {
                self.trace_event("cancel", task.id);
            }
            self.wake_task(task, Wake::Cancelled);
        }
    }

    /// A shield for the running coroutine (see [`Shield`]).
    pub(crate) fn shield_current(&self) -> Shield {
        self.with_running("shield", |task| Shield::raise(task, false))
    }

    /// Opens a `time::timeout` scope for the running coroutine that expires `timeout` from
    /// now; returns its id.
    pub(crate) fn push_scope(&self, timeout: Duration) -> u64 {
        let deadline = self.clock.tick_after(timeout);
        self.with_running("time::timeout", |task| {
            let id = self.next_seq();
            task.scopes.borrow_mut().push(Scope { deadline, id });
            task.update_scoped();
            id
        })
    }

    /// Closes scope `id`; returns whether it was the one that expired.
    pub(crate) fn pop_scope(&self, id: u64) -> bool {
        self.with_running("time::timeout", |task| {
            task.scopes.borrow_mut().retain(|s| s.id != id);
            task.update_scoped();
            if task.expired_scope.get() == Some(id) {
                task.expired_scope.set(None);
                true
            } else {
                false
            }
        })
    }
}

impl Core {
    /// Runs `f` on the thread's own stack, the scheduler's, when a coroutine runs; else here.
    /// For backtraces of panics: symbolizing one (to print it) parses debug information with
    /// a deep stack of its own, more than a coroutine's stack has (with `RUST_BACKTRACE=1` the
    /// report of an unjoined panic overflowed a 64 KiB stack), and capturing one walks the
    /// unwind tables. A backtrace captured here still shows the coroutine's frames: the
    /// switch's unwind information leads from the scheduler's stack back to them.
    pub(crate) fn on_thread_stack<R>(&self, f: impl FnOnce() -> R + Send) -> R {
        let yielder = self.tasks.with_current(|task| task.yielder.get()).unwrap_or(ptr::null());
        if yielder.is_null() {
            return f();
        }
        // SAFETY: as in `suspend`: the yielder was recorded by `started`, first thing on the
        // running coroutine's stack, the stack we are on, and lives as long as the coroutine.
        unsafe { (*yielder).on_parent_stack(f) }
    }
}

/// Suspends the running coroutine, whose record is `task`, back to the scheduler.
#[inline(always)]
fn suspend(task: &Task) {
    let yielder = task.yielder.get();
    // SAFETY: the yielder was recorded by `started`, first thing on the coroutine's stack,
    // and lives there, on the stack we are running on, as long as the coroutine.
    unsafe { (*yielder).suspend(()) }
}
