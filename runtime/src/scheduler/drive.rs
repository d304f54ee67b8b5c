//! The loop that drives a runtime: resume what is runnable, poll the reactor, fire timers,
//! apply wakes from other threads, wait when idle, and report a deadlock when nothing can ever
//! wake anyone.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io;
use std::time::{Duration, Instant};

use corosensei::CoroutineResult;

use super::run_queue::Runnable;
use super::{Core, NO_TASK};
use crate::context;
use crate::task::{Task, Yielder};
use crate::timer::Entry;
use crate::wake::{Subject, Wake, Waker};

impl Core {
    /// Runs `main` as the main coroutine and everything it spawns; returns main's value, or
    /// carries its panic on.
    ///
    /// # Panics
    /// Also when main was cancelled (`Handle::cancel_all`), saying so.
    pub(crate) fn run_main<T>(&self, main: impl FnOnce() -> T) -> T {
        match self.run_main_outcome(main) {
            Ok(value) => value,
            Err(payload) if payload.is::<super::CancelUnwind>() => {
                drop(payload);
                panic!(
                    "spindle: main was cancelled before it returned (Handle::cancel_all), \
                     so run has no value to return"
                )
            }
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// `run_main`, returning main's outcome as `catch_unwind` would: a panic's payload, or
    /// the cancellation's (`CancelUnwind`) when main was cancelled. A deadlock still panics.
    pub(crate) fn run_main_outcome<T>(&self, main: impl FnOnce() -> T) -> std::thread::Result<T> {
        let _entered = context::enter(self);
        if let Some(tracer) = &self.tracer {
            if let Err(e) = tracer.begin(self.now(), self.clock.is_virtual()) {
                panic!("spindle: cannot write the trace file: {e}");
            }
        }
        crate::overflow::install(context::running_header, crate::stack::touched_depth);
        self.main_done.set(false);
        self.main_panicked.set(false);
        self.tearing_down.set(false);

        let outcome: Cell<Option<std::thread::Result<T>>> = Cell::new(None);
        let body = |yielder: &Yielder, ()| {
            self.started(yielder);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(main));
            self.drop_locals();
            self.set_main_panicked(result.is_err());
            outcome.set(Some(result));
        };
        // SAFETY: `body` borrows `outcome`, `main` and `self`, all of which outlive this call. The
        // loop below returns only once the table is empty, i.e. the main coroutine finished; on a
        // deadlock every coroutine is cancelled and driven to completion before we panic.
        let key = unsafe { self.spawn_main(body) }
            .unwrap_or_else(|e| panic!("spindle: cannot start the main coroutine: {e}"));
        self.main_key.set(key);
        // Requests a `Handle` queued while the runtime was not running start now, behind main.
        self.apply_remote();

        if let Err(report) = self.drive() {
            self.tearing_down.set(true);
            self.cancel_all();
            // Cancelled coroutines cannot park, so this finishes.
            let _ = self.drive();
            if let Some(tracer) = &self.tracer {
                let _ = tracer.end();
            }
            panic!("{report}");
        }
        self.main_key.set(NO_TASK);
        self.run_end_checks();
        if let Some(tracer) = &self.tracer {
            if let Err(e) = tracer.end() {
                eprintln!("spindle: writing the trace file failed: {e}");
            }
        }
        outcome.take().expect("main finished, so it left an outcome")
    }

    /// Runs until every coroutine has finished; `Err` carries a deadlock report.
    ///
    /// The loop is compiled twice: `drive_loop::<false>` for the common runtime (FIFO order, no
    /// watchdog, guarded stacks), whose resume path has no test for either, and
    /// `drive_loop::<true>` for a seeded schedule or switch hooks. Which one runs is fixed when
    /// the runtime is built.
    fn drive(&self) -> Result<(), String> {
        if self.tasks.is_seeded() || self.switch_hooks {
            self.drive_loop::<true>()
        } else {
            self.drive_loop::<false>()
        }
    }

    /// `drive` with the seeded pick and the switch hooks compiled in (`CHECKED`) or out.
    #[inline(never)]
    fn drive_loop<const CHECKED: bool>(&self) -> Result<(), String> {
        loop {
            while let Some((task, poll_due)) = self.tasks.next_runnable::<CHECKED>() {
                self.resume::<CHECKED>(task);
                if poll_due {
                    self.poll_busy()?;
                }
            }
            if self.tasks.len() == 0 {
                // A job queued before the end still runs now: a spawn request starts (cancelled,
                // as everything spawned during teardown) and its joiner learns so.
                if self.apply_remote() == 0 {
                    return Ok(());
                }
                continue;
            }
            // Under virtual time, with nothing outside the runtime that could wake anyone, the
            // loop below would find no timer due (none is armed for now or earlier: a past
            // deadline ends its park at once, and a jump fires all it reaches), no remote work,
            // and jump to the next live timer: do just that.
            if self.clock.is_virtual() && self.only_timers_can_wake() && self.jump_to_timers() > 0 {
                continue;
            }
            if self.fire_due_timers() > 0 || self.apply_remote() > 0 {
                continue;
            }
            // Only what can still end a park counts: a live timer, a coroutine parked on a
            // socket (an idle listener wakes nobody), a wake or job queued, a remote waker of a
            // park in progress (a stale or leaked one wakes nobody), or a live `Handle` (another
            // thread may still spawn a coroutine that wakes somebody; see `crate::handle`).
            // The remote waker is asked about before the queue: `RemoteWaker::wake` queues its
            // wake and only then leaves the outstanding ones, so a wake from another thread
            // between the two checks is seen by the second.
            let can_wake = self.timers.borrow().live() > 0
                || self.reactor.has_waiters()
                || self.remote_work_in_flight()
                || self.remote.handles() > 0;
            if !can_wake {
                return Err(self.deadlock_report());
            }
            self.idle_wait()?;
        }
    }

    /// Polls the reactor once and wakes what it reported ready; applies remote wakes and jobs
    /// if the cross-thread waker fired.
    fn poll_reactor(&self, timeout: Option<Duration>) -> Result<(), String> {
        self.trace_waking_from("socket");
        let mut woken = self.wake_buffer.take();
        let started =
            (self.counting.is_some() && timeout != Some(Duration::ZERO)).then(Instant::now);
        let polled = self.reactor.poll(timeout, &mut woken).map_err(poll_failed);
        let remote = polled.as_ref().map(|&(remote, _)| remote).map_err(Clone::clone);
        if let Ok((_, events)) = polled {
            self.count(|s| {
                s.polls += 1;
                s.events += events as u64;
                s.idle += started.map(|t| t.elapsed()).unwrap_or_default();
            });
        }
        self.wake_all(&woken);
        woken.clear();
        self.wake_buffer.set(woken);
        if remote? {
            self.apply_remote();
        }
        Ok(())
    }

    /// Zero-timeout poll between resumptions, so readiness, timers and wakes from other
    /// threads (queued, their wakers already gone) are never starved.
    fn poll_busy(&self) -> Result<(), String> {
        if self.reactor.sources() > 0 || self.remote.outstanding() > 0 {
            self.poll_reactor(Some(Duration::ZERO))?;
        }
        // Wakes and jobs queued by other threads need no poll to be seen: the queue's flag
        // says so (and the poll above may have consumed the waker's event already).
        if self.remote.has_pending() {
            self.apply_remote();
        }
        self.fire_due_timers();
        Ok(())
    }

    /// Nothing is runnable: wait in the reactor until the next timer (or jump to it).
    fn idle_wait(&self) -> Result<(), String> {
        let next = self.next_deadline();
        let external = self.reactor.sources() > 0 || self.remote.outstanding() > 0;
        if !self.clock.is_virtual() {
            let timeout =
                next.map(|d| self.clock.instant(d).saturating_duration_since(Instant::now()));
            self.poll_reactor(timeout)?;
        } else {
            // Virtual time jumps only when nothing outside the runtime can still make progress
            // (see `RuntimeBuilder::virtual_time`).
            if self.remote_work_in_flight() {
                // An `unblock` job or another thread may still wake a coroutine: the clock waits
                // for it, so that work takes no virtual time.
                self.poll_reactor(None)?;
                return Ok(());
            }
            // Set when this call already waited for the outside as long as it takes.
            let mut waited = false;
            if external {
                // A coroutine parked on a socket gets its peer the grace before the clock jumps
                // (or all the time it needs, when no timer could fire instead). Events that
                // wake nobody (a new socket's first writable edge) do not end the grace.
                let grace = if !self.reactor.has_waiters() {
                    Some(Duration::ZERO)
                } else if next.is_some() {
                    Some(self.config.virtual_io_grace)
                } else {
                    None
                };
                waited = grace.is_none();
                let until = grace.and_then(|g| Instant::now().checked_add(g));
                loop {
                    let timeout = until.map(|u| u.saturating_duration_since(Instant::now()));
                    self.poll_reactor(timeout)?;
                    if self.tasks.has_runnable() || self.remote_work_in_flight() {
                        return Ok(());
                    }
                    if until.is_none_or(|u| Instant::now() >= u) {
                        break;
                    }
                }
            }
            match next {
                Some(d) => self.clock.advance_to(d),
                // No timer to jump to, and nothing in flight: only a live `Handle` can still
                // wake anyone (the drive loop checked that something can). Wait for its
                // thread, as long as it takes; the last handle's drop interrupts this too.
                None if !waited => {
                    self.poll_reactor(None)?;
                    return Ok(());
                }
                None => {}
            }
        }
        self.fire_due_timers();
        Ok(())
    }

    /// No socket is registered, no remote waker is out and no remote wake or job is queued:
    /// only a timer (or a live `Handle`'s thread) can still wake a coroutine.
    #[inline]
    fn only_timers_can_wake(&self) -> bool {
        self.reactor.sources() == 0 && self.remote.outstanding() == 0 && !self.remote.has_pending()
    }

    /// Virtual time, nothing runnable and [`Core::only_timers_can_wake`]: moves the clock to
    /// the next live timer and fires every timer due then; returns how many woke a coroutine
    /// (0 when no live timer is armed).
    fn jump_to_timers(&self) -> usize {
        // The stale entries ahead of it are dropped on the way, uncounted, as `next_deadline`
        // drops them.
        loop {
            let Some(e) = self.timers.borrow_mut().pop_due(u64::MAX) else { return 0 };
            let woke = self.tasks.with_task(e.key, |task| {
                if !task.timer_is_live(e.seq) {
                    return false;
                }
                self.clock.advance_to(e.at);
                self.trace_waking_from("timer");
                self.fire_live_timer(task, e);
                true
            });
            if woke == Some(true) {
                return self.fire_timers_until(e.at, 1);
            }
            self.timers.borrow_mut().popped_stale();
        }
    }

    /// Something outside the runtime may still wake a coroutine: a remote wake or job is
    /// queued, or a remote waker (an `unblock` job, another thread) is out for a park still in
    /// progress. A live `Handle` alone is not work in flight (it holds no virtual clock).
    fn remote_work_in_flight(&self) -> bool {
        // The wakers first: a wake that lands between the two checks moves from the wakers
        // to the queue, and is then seen by the second.
        self.remote.may_wake(|key, seq| self.is_waiting(Waker::new(key, seq)))
            || self.remote.has_pending()
    }

    /// Earliest live deadline (a tick), dropping stale heap tops on the way.
    fn next_deadline(&self) -> Option<u64> {
        let mut timers = self.timers.borrow_mut();
        while let Some(e) = timers.peek() {
            if self.timer_is_live(e.key, e.seq) {
                return Some(e.at);
            }
            timers.pop_due(e.at);
            timers.popped_stale();
        }
        None
    }

    /// Wakes the coroutines whose timers are due; returns how many.
    fn fire_due_timers(&self) -> usize {
        if self.timers.borrow().is_empty() {
            return 0;
        }
        self.trace_waking_from("timer");
        let now = self.clock.now_tick();
        self.fire_timers_until(now, 0)
    }

    /// Wakes the coroutines whose timers are due at tick `now`, after the caller fired
    /// `fired` already; returns how many were fired in all.
    #[inline(always)]
    fn fire_timers_until(&self, now: u64, mut fired: usize) -> usize {
        loop {
            let Some(entry) = self.timers.borrow_mut().pop_due(now) else { break };
            fired += usize::from(self.fire_timer(entry));
        }
        // With many timers, the coroutines they wake have gone cold since they last ran; with
        // a few, all of them are still cached and the prefetches would only cost instructions.
        let mut timers = self.timers.borrow_mut();
        if fired > 0 && timers.len() >= PREFETCH_MIN_TIMERS {
            if let Some(next) = timers.upcoming().next() {
                self.tasks.prefetch_frames(next);
            }
            self.tasks.prefetch_records(timers.hand_out_next(PREFETCH_BATCH));
        }
        fired
    }

    /// Wakes the coroutine of `entry`, a timer popped because it is due, if its park is still
    /// the one the timer was set for; returns whether it woke it (else the entry was stale).
    #[inline]
    fn fire_timer(&self, entry: Entry) -> bool {
        let woke = self.tasks.with_task(entry.key, |task| {
            let live = task.timer_is_live(entry.seq);
            if live {
                self.fire_live_timer(task, entry);
            }
            live
        });
        if woke != Some(true) {
            self.timers.borrow_mut().popped_stale();
            self.count(|s| s.timers_stale += 1);
        }
        woke == Some(true)
    }

    /// Wakes `task`, whose park `entry` is the live timer of, popped because it is due.
    #[inline(always)]
    fn fire_live_timer(&self, task: &Task, entry: Entry) {
        task.fire_timer();
        let outcome = task.timer_outcome(entry.at);
        self.wake_task(task, outcome);
        self.count(|s| s.timers_fired += 1);
    }

    /// Applies the wakes other threads queued and runs their jobs (a `Handle`'s spawns and
    /// cancellations), in the order each kind was queued; returns how many wakes woke a
    /// coroutine plus how many jobs ran.
    fn apply_remote(&self) -> usize {
        if !self.remote.has_pending() {
            return 0;
        }
        let mut wakes = self.remote_buffer.take();
        let mut jobs = self.remote_jobs.take();
        self.remote.drain(&mut wakes, &mut jobs);
        self.trace_waking_from("another thread");
        let mut done = jobs.len();
        for (key, seq) in wakes.drain(..) {
            done += self.wake(Waker::new(key, seq), Wake::Notified) as usize;
        }
        for job in jobs.drain(..) {
            job();
        }
        self.remote_buffer.replace(wakes);
        self.remote_jobs.replace(jobs);
        done
    }

    /// Resumes the coroutine of `task` until it parks, yields or finishes. `CHECKED`: switch
    /// hooks may be on (see [`Core::drive`]).
    #[inline]
    fn resume<const CHECKED: bool>(&self, runnable: Runnable) {
        let t = runnable.task();
        self.tasks.set_current(Some(&runnable));
        if CHECKED && self.switch_hooks {
            self.before_switch(t);
        }
        // SAFETY: only `resume` touches `coroutine`, and it does not run again before this
        // returns (the coroutine cannot resume itself: it runs on the stack being resumed).
        let result = unsafe { (*t.coroutine.get()).resume(()) };
        self.tasks.set_current(None);
        if CHECKED && self.switch_hooks {
            self.after_switch(t);
        }
        match result {
            CoroutineResult::Return(()) => self.finish(runnable),
            // Suspended without parking: a yield, to the back of the queue. The scheduler
            // queues it rather than `yield_now`, which then has nothing to do but switch.
            CoroutineResult::Yield(()) if !t.is_parked() => self.tasks.push_runnable(t),
            CoroutineResult::Yield(()) => {}
        }
    }

    #[inline(never)]
    fn before_switch(&self, t: &Task) {
        if let Some(w) = &self.watchdog {
            w.enter(t.id);
        }
        // The checks inline, the work out of line: most checked switches count nothing.
        if self.counting.is_some() {
            self.count_resume(t);
        }
        if self.tracer.is_some() {
            self.trace_resume(t);
        }
    }

    /// Tells the watchdog the coroutine gave the thread back; checks an unguarded stack.
    #[inline(never)]
    fn after_switch(&self, t: &Task) {
        if self.counting.is_some() {
            self.count_suspend(t, t.is_parked());
        }
        if self.tracer.is_some() {
            self.trace_suspend(t, t.is_parked());
        }
        if let Some(w) = &self.watchdog {
            w.leave(t.id, || t.name.as_deref().map(str::to_owned));
        }
        if let Some(canary) = t.canary {
            check_canary(canary, t);
        }
    }

    fn deadlock_report(&self) -> String {
        let mut report = String::from(
            "spindle: deadlock: every coroutine is parked and nothing can wake one \
             (no timer pending, no coroutine parked on a socket, no blocking call or remote waker \
             in flight, no Handle alive)",
        );
        let mut parked = Vec::new();
        self.tasks.for_each_task(|t| {
            let name = t.name.as_deref().map(|n| format!(" '{n}'")).unwrap_or_default();
            parked.push((t.id, name, t.reason(), t.stack_used(), t.header.stack_size));
        });
        for (id, name, reason, used, size) in &parked {
            let _ = write!(report, "\n  coroutine #{id}{name} parked on {reason}");
            // A lock names its holder (`Mutex#3 held by #5 'transfer'`) where it knows it.
            if let Some(Subject::Object { id: object, .. }) = reason.on {
                if let Some(holder) = self.holder(object) {
                    let holder_name = parked.iter().find(|p| p.0 == holder).map_or("", |p| &p.1);
                    let _ = write!(report, " held by #{holder}{holder_name}");
                }
            }
            let _ = write!(report, " (stack: {used} of {size} bytes used)");
        }
        report
    }
}

/// Timers armed from which `fire_due_timers` prefetches the next ones' coroutines: about the
/// number of coroutines whose records and top frames (a few cache lines each, on pages of
/// their own) stay in the caches and the TLB between their turns.
const PREFETCH_MIN_TIMERS: usize = 256;

/// `fire_due_timers` asks for the records of the coroutines the next timers wake this many at
/// a time, up to twice as many timers ahead (and for the frames of the next one's, whose record
/// is cached by then). Each record sits on its coroutine's own stack page, which with thousands
/// of coroutines has left the TLB: asked for one at a time, each prefetch waited for its page
/// walk as a load would; asked for together, the walks overlap.
const PREFETCH_BATCH: usize = 32;

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
            "spindle: coroutine #{}{} overflowed its unguarded stack ({} bytes, {} used) and may \
             have corrupted another; give it more with Builder::stack_size",
            task.id,
            name,
            task.header.stack_size,
            task.stack_used()
        );
        std::process::abort();
    }
}
