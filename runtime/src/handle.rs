//! A runtime's [`Handle`]: starting coroutines on it from any thread, and the
//! [`RemoteJoinHandle`] that joins them from any thread. The rules a handle follows are in
//! [`Handle`]'s docs.
//!
//! How it works: [`Handle::spawn`] boxes the closure into a job for the runtime's door
//! (`remote.rs`), which the scheduler runs between resumptions; the job spawns the coroutine
//! with an exit guard ([`HandOn`]) that moves its outcome, after its locals are dropped, from
//! its local join handle into a [`Slot`] shared with the `RemoteJoinHandle`. Whatever path a
//! request takes, a [`Delivery`] fills the slot exactly once.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::context;
use crate::coroutine::{spawn_raw, Builder, JoinError, JoinHandle};
use crate::panic::{report_unjoined, Panic};
use crate::park::{self, Reason, Wake};
use crate::remote::{Job, RemoteShared, RemoteWaker};
use crate::wake::Waker;

/// A `Send + Sync + Clone` handle to a runtime, for starting coroutines on it from any thread.
/// Made by [`handle`] inside a runtime or [`Runtime::handle`](crate::Runtime::handle).
///
/// A runtime and everything on it stay on its one thread; a `Handle` is the part that other
/// threads may keep. [`Handle::spawn`] queues a `Send` closure for the runtime's thread
/// (through the same door as a [`crate::park::RemoteWaker`]: a queue behind a mutex and a
/// `mio::Waker` that interrupts the runtime's poll), where it starts as a coroutine, and
/// returns a [`RemoteJoinHandle`] that any thread may join: a coroutine that joins parks, a
/// plain thread blocks.
///
/// ```
/// let rt = spindle_runtime::Runtime::new().unwrap();
/// let handle = rt.handle();
/// let feeder = std::thread::spawn(move || {
///     // From a plain thread: the closure runs as a coroutine of `rt`, on `rt`'s thread.
///     let job = handle.spawn(|| 6 * 7).unwrap();
///     job.join().unwrap() // blocks this thread
/// });
/// let got = rt.run(|| {
///     // main parks until the thread's answer is in (a blocking join belongs in `unblock`).
///     spindle_runtime::unblock(move || feeder.join().unwrap())
/// });
/// assert_eq!(got, 42);
/// ```
///
/// # The rules
///
/// * **A handle belongs to its [`Runtime`](crate::Runtime), not to one `run`.** A request made
///   while the runtime is not running waits for its next `run`. Once the runtime is dropped
///   (for [`crate::run`]: once it returns) `spawn` returns [`SpawnError`].
/// * **A handle does not keep `run` going.** `run` returns once `main` and every non-daemon
///   coroutine have finished, whether handles live or not. A coroutine a handle started is a
///   non-daemon (unless its [`Builder`] says otherwise), so `run` waits for it like for any other.
/// * **Nothing is lost silently.** A request that `spawn` accepted either runs, or its coroutine
///   starts cancelled and its join returns [`JoinError::Cancelled`]: when it arrives during the
///   runtime's teardown (after `main` and the non-daemons finished, or after
///   [`Handle::cancel_all`]), or the runtime is dropped before running it.
/// * **A live handle is not a deadlock.** While any handle of the runtime is alive, another
///   thread may still spawn a coroutine that wakes the parked ones, so the runtime does not
///   report a deadlock: it waits in its poll instead. Once the last handle is dropped it looks
///   again and reports one if nothing else can wake anybody. A handle the runtime's own
///   coroutines keep counts too, so drop the handles you are done with.
/// * **A live handle holds no virtual clock.** Under `RuntimeBuilder::virtual_time` it is no
///   work in flight (it may never spawn anything), so timers still jump; a request already
///   queued is applied before the clock moves. When another thread spawns, relative to
///   virtual time, is outside the determinism contract (see the crate docs).
/// * **In order.** Requests from one thread start in the order they were made; each coroutine
///   first runs when the scheduler next looks at its queue (between two resumptions, at most
///   64 resumptions apart, or at once when it is idle).
pub struct Handle {
    remote: Arc<RemoteShared>,
    /// Counted among the live handles (see the rules above); `run_sharded`'s own handles,
    /// kept only to cancel shards, are not, so that they hide no deadlock.
    counted: bool,
}

/// `Handle::spawn` failed: the runtime has finished (it was dropped) and runs nothing more.
/// The closure was dropped unrun.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpawnError;

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the runtime has finished; it starts no more coroutines")
    }
}

impl std::error::Error for SpawnError {}

/// A [`Handle`] to the runtime running on this thread.
///
/// # Panics
/// Outside a running spindle runtime.
#[track_caller]
pub fn handle() -> Handle {
    context::expect_core("handle", |core| Handle::new(core.remote().clone()))
}

impl Handle {
    /// A counted handle on `remote`.
    pub(crate) fn new(remote: Arc<RemoteShared>) -> Handle {
        remote.handle_made();
        Handle { remote, counted: true }
    }

    /// A handle on `remote` that does not count as live for deadlock detection (see
    /// `counted`).
    pub(crate) fn uncounted(remote: Arc<RemoteShared>) -> Handle {
        Handle { remote, counted: false }
    }

    /// Starts `f` as a coroutine of the handle's runtime, on that runtime's thread, with
    /// default settings; callable from any thread, a coroutine of any runtime included.
    ///
    /// # Errors
    /// [`SpawnError`] once the runtime has been dropped; `f` is dropped unrun. (A stack that
    /// cannot be mapped is only known on the runtime's thread, where [`crate::spawn`] would
    /// panic: the join returns that panic, [`JoinError::Panicked`] with the message
    /// `spindle: spawn failed: ...`, and `f` is dropped unrun.)
    pub fn spawn<F, T>(&self, f: F) -> Result<RemoteJoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_with(Builder::new(), f)
    }

    /// `Builder::spawn_on`.
    fn spawn_with<F, T>(&self, builder: Builder, f: F) -> Result<RemoteJoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = Arc::new(Slot::new(self.remote.runtime_id(), &builder));
        let delivery = Delivery { slot: Some(slot.clone()) };
        let job: Job = Box::new(move || start(builder, f, delivery));
        // A refused job is dropped here, its delivery telling a slot nobody holds.
        self.remote.submit(job).map_err(|_| SpawnError)?;
        Ok(RemoteJoinHandle { slot, remote: self.remote.clone() })
    }

    /// Cancels every coroutine of the runtime, `main` included, as when `main` panics: each
    /// unwinds at its next park or yield, and every coroutine started from then until `run`
    /// ends starts cancelled. Returns at once. If the runtime is not running, its next `run`
    /// starts this way; if it was dropped, this does nothing.
    ///
    /// `main` then ends cancelled: [`Runtime::run`](crate::Runtime::run) panics saying so
    /// (`run_sharded` counts such a shard as cancelled, not failed).
    pub fn cancel_all(&self) {
        let _ = self.remote.submit(Box::new(|| {
            context::with_core(|core| core.shut_down());
        }));
    }
}

impl Clone for Handle {
    fn clone(&self) -> Handle {
        if self.counted {
            Handle::new(self.remote.clone())
        } else {
            Handle::uncounted(self.remote.clone())
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.counted {
            self.remote.handle_dropped();
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("runtime", &self.remote.runtime_id()).finish()
    }
}

impl Builder {
    /// Spawns `f` with these settings on the runtime of `handle`, from any thread; see
    /// [`Handle::spawn`]. (A coroutine a handle starts has no spawner to inherit daemon status
    /// from: it is a non-daemon unless [`Builder::daemon`] says otherwise.)
    ///
    /// # Errors
    /// As [`Handle::spawn`].
    pub fn spawn_on<F, T>(self, handle: &Handle, f: F) -> Result<RemoteJoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        handle.spawn_with(self, f)
    }
}

// ----- the join slot ------------------------------------------------------------------------

/// What a handle-spawned coroutine and its [`RemoteJoinHandle`] share, across threads.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
    /// Signalled when the outcome arrives, for plain threads blocked in `join`.
    done: Condvar,
    /// The runtime the coroutine runs on (a joiner parked there is woken directly).
    runtime_id: u64,
}

/// The protocol of a [`Slot`], under its mutex.
struct SlotState<T> {
    /// The outcome, once the coroutine finished and until the handle takes it.
    outcome: Option<Result<T, JoinError>>,
    /// Set when the outcome arrived (even after it was taken).
    finished: bool,
    /// `(slot, id)` of the coroutine once the runtime started it, for cancelling it.
    started: Option<(usize, u64)>,
    /// The coroutine's name, from its builder, for the unjoined-panic report.
    name: Option<String>,
    /// `RemoteJoinHandle::cancel` was called: a request not yet started never starts, a
    /// started coroutine is cancelled.
    cancel: bool,
    /// The handle was dropped: nobody will join, so a panic is reported when it arrives.
    detached: bool,
    /// Coroutines parked in `join`, each under a token of this slot (for removing it after a
    /// timeout or cancellation).
    joiners: Vec<(u64, Joiner)>,
    next_token: u64,
}

/// A coroutine parked in `RemoteJoinHandle::join`.
enum Joiner {
    /// On the coroutine's own runtime: a plain waker, woken by the finishing coroutine on that
    /// thread (and not counted as work from outside, so a true deadlock is still reported).
    Local { key: usize, seq: u64 },
    /// On another runtime: through that runtime's door.
    Remote(RemoteWaker),
}

impl<T> Slot<T> {
    fn new(runtime_id: u64, builder: &Builder) -> Slot<T> {
        Slot {
            state: Mutex::new(SlotState {
                outcome: None,
                finished: false,
                started: None,
                name: builder.name_ref().map(str::to_owned),
                cancel: false,
                detached: false,
                joiners: Vec::new(),
                next_token: 0,
            }),
            done: Condvar::new(),
            runtime_id,
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores the outcome (or reports a panic nobody will join) and wakes every joiner.
    fn finish(&self, outcome: Result<T, JoinError>) {
        let (joiners, unjoined) = {
            let mut state = self.lock();
            debug_assert!(!state.finished, "a slot's outcome arrives once");
            state.finished = true;
            let unjoined = match outcome {
                Err(JoinError::Panicked(panic)) if state.detached => {
                    Some((describe(state.started, state.name.as_deref()), panic))
                }
                outcome => {
                    state.outcome = Some(outcome);
                    None
                }
            };
            (std::mem::take(&mut state.joiners), unjoined)
        };
        self.done.notify_all();
        for (_, joiner) in joiners {
            match joiner {
                Joiner::Local { key, seq } => {
                    context::with_core(|core| {
                        if core.runtime_id == self.runtime_id {
                            core.wake(Waker::new(key, seq), Wake::Notified);
                        }
                    });
                }
                Joiner::Remote(waker) => waker.wake(),
            }
        }
        if let Some((coroutine, panic)) = unjoined {
            report_unjoined(&coroutine, &panic);
        }
    }
}

/// `#id 'name'` of a handle-spawned coroutine, as the other reports name coroutines.
fn describe(started: Option<(usize, u64)>, name: Option<&str>) -> String {
    let mut out = match started {
        Some((_, id)) => format!("#{id}"),
        None => String::from("(not started)"),
    };
    if let Some(name) = name {
        out.push_str(&format!(" '{name}'"));
    }
    out
}

/// The obligation to fill a slot: dropped without [`Delivery::deliver`] (a request dropped
/// unrun, a coroutine cancelled before it ran) it delivers `JoinError::Cancelled`.
struct Delivery<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> Delivery<T> {
    fn deliver(mut self, outcome: Result<T, JoinError>) {
        if let Some(slot) = self.slot.take() {
            slot.finish(outcome);
        }
    }
}

impl<T> Drop for Delivery<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.finish(Err(JoinError::Cancelled));
        }
    }
}

/// What a request's job and its coroutine share on the runtime's thread: the delivery, and the
/// coroutine's local join handle once spawned.
struct Pending<T> {
    delivery: Option<Delivery<T>>,
    local: Option<JoinHandle<T>>,
}

/// Dropped as the very last act of a handle-spawned coroutine (after its locals, like any
/// coroutine's outcome): hands the outcome from its local join handle to the slot.
struct HandOn<T>(Rc<RefCell<Pending<T>>>);

impl<T> Drop for HandOn<T> {
    fn drop(&mut self) {
        let mut pending = self.0.borrow_mut();
        // No local handle: the spawn itself failed, and `start` delivers that error.
        let Some(local) = pending.local.take() else { return };
        let outcome = local.take_outcome().unwrap_or(Err(JoinError::Cancelled));
        if let Some(delivery) = pending.delivery.take() {
            delivery.deliver(outcome);
        }
    }
}

/// The job of a spawn request, on the runtime's thread: starts `f`, or delivers why not.
fn start<F, T>(builder: Builder, f: F, delivery: Delivery<T>)
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let slot = delivery.slot.clone().expect("a fresh delivery holds its slot");
    if slot.lock().cancel {
        return delivery.deliver(Err(JoinError::Cancelled));
    }
    let pending = Rc::new(RefCell::new(Pending { delivery: Some(delivery), local: None }));
    let hand_on = HandOn(pending.clone());
    // SAFETY: `f`, `T` and `hand_on` are 'static: the coroutine borrows nothing.
    let spawned = context::with_core(|core| unsafe { spawn_raw(core, builder, f, hand_on) });
    match spawned {
        Some(Ok(local)) => {
            let coroutine = local.coroutine();
            let (key, id) = (coroutine.key(), coroutine.id());
            pending.borrow_mut().local = Some(local);
            let cancel = {
                let mut state = slot.lock();
                state.started = Some((key, id));
                state.cancel
            };
            if cancel {
                context::with_core(|core| core.cancel(key, id));
            }
        }
        Some(Err(e)) => {
            let delivery = pending.borrow_mut().delivery.take();
            if let Some(delivery) = delivery {
                let panic = Panic::from_message(format!("spindle: spawn failed: {e}"));
                delivery.deliver(Err(JoinError::Panicked(panic)));
            }
        }
        // Jobs run only inside their runtime; dropping `pending` delivers `Cancelled`.
        None => {}
    }
}

// ----- the join handle ----------------------------------------------------------------------

/// Permission to join a coroutine started through a [`Handle`], from any thread: `Send`
/// (and `Sync`) when its value is.
///
/// [`join`](RemoteJoinHandle::join) parks when called from a coroutine (of any runtime) and
/// blocks the thread when called from a plain thread. Dropping the handle detaches the
/// coroutine; a panic nobody joins is reported on stderr, as with [`JoinHandle`].
pub struct RemoteJoinHandle<T> {
    slot: Arc<Slot<T>>,
    /// The door to the coroutine's runtime, for `cancel`.
    remote: Arc<RemoteShared>,
}

impl<T> RemoteJoinHandle<T> {
    /// Waits for the coroutine to finish and returns its value, or how it failed: parks a
    /// coroutine, blocks a plain thread.
    ///
    /// # Panics
    /// If [`RemoteJoinHandle::join_timeout`] already took the outcome, or if the wait could
    /// never end: the coroutine's runtime belongs to this thread and is not the one running
    /// (it cannot run while this thread waits).
    #[track_caller]
    pub fn join(mut self) -> Result<T, JoinError> {
        self.wait(None)
    }

    /// Like [`RemoteJoinHandle::join`] but gives up after `timeout` (on the runtime's clock in
    /// a coroutine, the real clock on a plain thread) with [`JoinError::TimedOut`], leaving the
    /// handle usable.
    #[track_caller]
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<T, JoinError> {
        let deadline = context::saturating_add(context::now(), timeout);
        self.wait(Some(deadline))
    }

    /// True once the coroutine has finished (returned, panicked, was cancelled, or will never
    /// start).
    pub fn is_finished(&self) -> bool {
        self.slot.lock().finished
    }

    /// Asks the coroutine to stop, from any thread, as [`JoinHandle::cancel`] does: a request
    /// not yet started never starts; a running coroutine unwinds at its next park or yield.
    /// Returns at once; `join` afterwards returns `Err(JoinError::Cancelled)` unless it
    /// finished first.
    pub fn cancel(&self) {
        let started = {
            let mut state = self.slot.lock();
            if state.finished {
                return;
            }
            state.cancel = true;
            state.started
        };
        // Not started yet: the request sees the flag when it is applied.
        let Some((key, id)) = started else { return };
        let here = context::with_core(|core| {
            if core.runtime_id == self.slot.runtime_id {
                core.cancel(key, id);
                true
            } else {
                false
            }
        });
        if here != Some(true) {
            // A gone runtime has no coroutine to cancel.
            let _ = self.remote.submit(Box::new(move || {
                context::with_core(|core| core.cancel(key, id));
            }));
        }
    }

    #[track_caller]
    fn wait(&mut self, deadline: Option<Instant>) -> Result<T, JoinError> {
        if context::current_id().is_some() {
            self.park_until(deadline)
        } else {
            self.block_until(deadline)
        }
    }

    /// The outcome if it is in, or a panic if it was taken; `None` while it is not in.
    #[track_caller]
    fn take(state: &mut SlotState<T>) -> Option<Result<T, JoinError>> {
        if let Some(outcome) = state.outcome.take() {
            return Some(outcome);
        }
        if state.finished {
            panic!(
                "spindle: RemoteJoinHandle joined again after join_timeout already took its \
                 outcome"
            );
        }
        None
    }

    /// Panics if waiting without a deadline could never end (see `join`).
    #[track_caller]
    fn check_can_wait(&self, deadline: Option<Instant>) {
        let running_here =
            context::with_core(|core| core.runtime_id == self.slot.runtime_id).unwrap_or(false);
        if deadline.is_none() && !running_here && std::thread::current().id() == self.remote.owner()
        {
            panic!(
                "spindle: RemoteJoinHandle::join would wait forever: the coroutine's runtime \
                 belongs to this thread and cannot run while it waits; join from another \
                 thread, from that runtime's coroutines, or with join_timeout"
            );
        }
    }

    /// `wait` from a coroutine: parks it.
    #[track_caller]
    fn park_until(&mut self, deadline: Option<Instant>) -> Result<T, JoinError> {
        let slot = &*self.slot;
        let local = context::with_core(|core| core.runtime_id == slot.runtime_id).unwrap_or(false);
        loop {
            let on = {
                let mut state = slot.lock();
                if let Some(outcome) = Self::take(&mut state) {
                    return outcome;
                }
                state.started.map(|(_, id)| id)
            };
            self.check_can_wait(deadline);
            let reason = match on {
                Some(id) => Reason::coroutine("RemoteJoinHandle::join", id),
                None => Reason::new("RemoteJoinHandle::join"),
            };
            let mut token = None;
            let wake = park::park(reason, deadline, |w| {
                let mut state = slot.lock();
                if state.finished {
                    drop(state);
                    w.wake(); // arrived meanwhile: this park ends at once
                    return;
                }
                let joiner = if local {
                    Joiner::Local { key: w.key, seq: w.seq }
                } else {
                    Joiner::Remote(park::remote_waker(w))
                };
                let t = state.next_token;
                state.next_token += 1;
                state.joiners.push((t, joiner));
                token = Some(t);
            });
            let remove = |token: Option<u64>| {
                let removed = token.and_then(|t| {
                    let mut state = slot.lock();
                    let i = state.joiners.iter().position(|(mine, _)| *mine == t)?;
                    Some(state.joiners.remove(i))
                });
                drop(removed); // a remote waker's drop takes its runtime's locks: not under ours
            };
            match wake {
                Wake::Notified => continue,
                Wake::TimedOut => {
                    remove(token);
                    // The outcome may have arrived just as the deadline passed.
                    if let Some(outcome) = slot.lock().outcome.take() {
                        return outcome;
                    }
                    return Err(JoinError::TimedOut);
                }
                _ => {
                    remove(token);
                    park::unwind();
                }
            }
        }
    }

    /// `wait` from a plain thread: blocks it.
    #[track_caller]
    fn block_until(&mut self, deadline: Option<Instant>) -> Result<T, JoinError> {
        let slot = &*self.slot;
        let mut state = slot.lock();
        loop {
            if let Some(outcome) = Self::take(&mut state) {
                return outcome;
            }
            self.check_can_wait(deadline);
            state = match deadline {
                None => slot.done.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(JoinError::TimedOut);
                    }
                    slot.done.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
    }
}

impl<T> Drop for RemoteJoinHandle<T> {
    fn drop(&mut self) {
        let unjoined = {
            let mut state = self.slot.lock();
            state.detached = true;
            match state.outcome.take() {
                Some(Err(JoinError::Panicked(panic))) => {
                    Some((describe(state.started, state.name.as_deref()), panic))
                }
                _ => None,
            }
        };
        if let Some((coroutine, panic)) = unjoined {
            report_unjoined(&coroutine, &panic);
        }
    }
}

impl<T> fmt::Debug for RemoteJoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.slot.lock();
        f.debug_struct("RemoteJoinHandle")
            .field("coroutine", &state.started.map(|(_, id)| id))
            .field("finished", &state.finished)
            .finish()
    }
}
