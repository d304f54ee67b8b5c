//! [`Barrier`]: `n` coroutines wait for each other (Python's `threading.Barrier`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{deadline_after, Waiters};
use crate::park::{self, ObjectId, Wake};

/// Lets a fixed number of coroutines (`parties`) wait until all of them have arrived, then
/// releases them together; it then resets itself for the next round (a *generation*).
///
/// The last coroutine to arrive is the round's leader ([`BarrierWaitResult::is_leader`]).
/// Each coroutine of a round that passes gets its own [index](BarrierWaitResult::index),
/// `0..parties` in arrival order, the leader's being `parties - 1`.
///
/// # Breaking, as in Python
///
/// A [`Barrier::wait_timeout`] that times out *breaks* the barrier: every coroutine waiting
/// in that round, and every later `wait`, gets `Err(BrokenBarrier)` until [`Barrier::reset`].
/// [`Barrier::abort`] breaks it on purpose. A coroutine *cancelled* while waiting does not
/// break it: it withdraws, and the round waits for another arrival in its place; the
/// coroutines that arrived after it move up one index, so the round's indices stay
/// `0..parties`, each given once.
///
/// ```
/// use std::rc::Rc;
/// use spindle_runtime::sync::Barrier;
///
/// spindle_runtime::run(|| {
///     let barrier = Rc::new(Barrier::new(3));
///     let handles: Vec<_> = (0..3)
///         .map(|_| {
///             let b = barrier.clone();
///             spindle_runtime::spawn(move || b.wait().unwrap().is_leader())
///         })
///         .collect();
///     let leaders = handles.into_iter().map(|h| h.join().unwrap());
///     assert_eq!(leaders.filter(|&l| l).count(), 1);
/// });
/// ```
pub struct Barrier {
    /// How many coroutines each round waits for.
    parties: usize,
    /// Coroutines arrived (and parked) in the current round, not counting those that
    /// withdrew.
    arrived: Cell<usize>,
    /// Arrivals in the current round, counting those that withdrew: the next arrival's
    /// ticket. `arrived + round.withdrawn.len()`.
    tickets: Cell<usize>,
    /// The current round, shared with its waiters. Each round gets a fresh one, so a waiter
    /// reads its own round's outcome however late it runs.
    round: RefCell<Rc<Round>>,
    /// Set by a timeout or `abort`: waits fail at once until `reset`.
    broken: Cell<bool>,
    /// Coroutines parked in `wait`.
    waiters: Waiters,
    /// Its name in park reasons (`Barrier#3`).
    id: ObjectId,
}

/// One round of a [`Barrier`], as its waiters see it.
#[derive(Default)]
struct Round {
    /// `None` while the round fills, `Some(true)` once it passed, `Some(false)` if it was
    /// broken.
    outcome: Cell<Option<bool>>,
    /// The tickets of the coroutines that withdrew (cancelled while waiting), in the order
    /// they withdrew. Fixed once the round is decided: a waiter's index is its ticket less
    /// the withdrawn tickets below it.
    withdrawn: RefCell<Vec<usize>>,
}

impl Round {
    /// The index, in a round that passed, of the waiter that arrived with `ticket`: its
    /// place among those that stayed.
    fn index(&self, ticket: usize) -> usize {
        ticket - self.withdrawn.borrow().iter().filter(|&&t| t < ticket).count()
    }
}

/// What [`Barrier::wait`] returns to each coroutine of a round that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    leader: bool,
    index: usize,
}

impl BarrierWaitResult {
    /// True for exactly one coroutine per round: the last to arrive.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// Arrival order in the round, `0..parties` (Python's `wait()` return value).
    pub fn index(&self) -> usize {
        self.index
    }
}

/// The error of [`Barrier::wait`] on a broken barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokenBarrier;

impl fmt::Display for BrokenBarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the barrier is broken")
    }
}

impl std::error::Error for BrokenBarrier {}

impl Barrier {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `Barrier#3` (see [`ObjectId`](crate::park::ObjectId)).
    pub fn label(&self, label: &'static str) {
        self.id.label(label);
    }

    /// A barrier for `parties` coroutines.
    ///
    /// # Panics
    /// If `parties` is 0.
    pub fn new(parties: usize) -> Barrier {
        assert!(parties > 0, "Barrier::new: parties must be at least 1");
        Barrier {
            parties,
            arrived: Cell::new(0),
            tickets: Cell::new(0),
            round: RefCell::new(Rc::new(Round::default())),
            broken: Cell::new(false),
            waiters: Waiters::new(),
            id: ObjectId::new("Barrier"),
        }
    }

    /// Parks until `parties` coroutines have called `wait` in this round.
    #[track_caller]
    pub fn wait(&self) -> Result<BarrierWaitResult, BrokenBarrier> {
        self.wait_until(None)
    }

    /// Like [`Barrier::wait`]; if `timeout` passes first, breaks the barrier for everyone.
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, BrokenBarrier> {
        self.wait_until(Some(deadline_after(timeout)))
    }

    /// Breaks the barrier: waiters and later `wait`s get `Err(BrokenBarrier)` until `reset`.
    pub fn abort(&self) {
        self.broken.set(true);
        self.end_round(false);
    }

    /// Returns the barrier to its empty, unbroken state; coroutines waiting get
    /// `Err(BrokenBarrier)`.
    pub fn reset(&self) {
        if self.arrived.get() > 0 {
            self.end_round(false);
        }
        self.broken.set(false);
    }

    /// True once broken (by a timeout or `abort`) and not reset.
    pub fn is_broken(&self) -> bool {
        self.broken.get()
    }

    /// Coroutines waiting in the current round.
    pub fn n_waiting(&self) -> usize {
        self.arrived.get()
    }

    /// The number of coroutines each round waits for.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// Ends the current round with `passed`, wakes its waiters, starts a new one.
    fn end_round(&self, passed: bool) {
        let round = self.round.replace(Rc::new(Round::default()));
        round.outcome.set(Some(passed));
        self.arrived.set(0);
        self.tickets.set(0);
        self.waiters.wake_all();
    }

    #[track_caller]
    fn wait_until(&self, deadline: Option<Instant>) -> Result<BarrierWaitResult, BrokenBarrier> {
        if self.broken.get() {
            return Err(BrokenBarrier);
        }
        let ticket = self.tickets.get();
        if self.arrived.get() + 1 == self.parties {
            // The last arrival: everyone before it stayed or withdrew, so its index is
            // `parties - 1`.
            let index = self.round.borrow().index(ticket);
            debug_assert_eq!(index, self.parties - 1);
            self.end_round(true);
            return Ok(BarrierWaitResult { leader: true, index });
        }
        self.arrived.set(self.arrived.get() + 1);
        self.tickets.set(ticket + 1);
        let round = self.round.borrow().clone();
        loop {
            // A decided round wins over however the park ended: a waiter whose park timed out
            // or was cancelled, but whose round was decided before it ran, gets the round's
            // outcome (a cancellation then takes effect at its next park). Hence `park`.
            let wake = self.waiters.park(self.id.reason("Barrier::wait"), deadline, || {});
            match (wake, round.outcome.get()) {
                (_, Some(true)) => {
                    let index = round.index(ticket);
                    return Ok(BarrierWaitResult { leader: false, index });
                }
                (_, Some(false)) => return Err(BrokenBarrier),
                (Wake::Notified, None) => continue,
                (Wake::TimedOut, None) => {
                    self.abort();
                    return Err(BrokenBarrier);
                }
                // Withdraws: the round waits for another arrival in its place, and those who
                // came after it move up one index.
                (Wake::Cancelled, None) => {
                    self.arrived.set(self.arrived.get() - 1);
                    round.withdrawn.borrow_mut().push(ticket);
                    park::unwind()
                }
            }
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("waiting", &self.arrived.get())
            .field("broken", &self.broken.get())
            .finish()
    }
}
