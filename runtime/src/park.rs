//! Park and wake: the one primitive every blocking operation is built on.
//!
//! A coroutine that must wait calls [`park`] with a [`Reason`] (what it waits on, shown in
//! deadlock reports and [`crate::coroutines`] dumps) and an optional deadline. Before it is
//! suspended, `park` hands a [`Waker`] to a registration closure, which stores it in exactly one
//! place: a [`WaitQueue`] of a lock or channel, a reactor source, a join slot. The coroutine then
//! sleeps until one of three things happens, and `park` returns which:
//!
//! * [`Wake::Notified`]: somebody called [`Waker::wake`];
//! * [`Wake::TimedOut`]: the deadline passed first;
//! * [`Wake::Cancelled`]: the coroutine was cancelled ([`crate::JoinHandle::cancel`], runtime
//!   shutdown, daemon teardown) or an enclosing [`crate::time::timeout`] expired. The caller
//!   removes its registration, restores its invariants and calls [`unwind`], which unwinds the
//!   coroutine's stack with the right payload.
//!
//! # Generations
//!
//! A [`Waker`] names a coroutine by its slot *and* by a sequence number unique to one park call.
//! Waking with a stale waker (the coroutine already woke, timed out, finished, or its slot was
//! reused) does nothing and returns `false`. So a wait queue may hold stale entries without
//! harm, and a timer that fires for a coroutine that already woke costs one comparison.
//!
//! # Naming what is waited on
//!
//! A [`Reason`] says which instance a coroutine waits on through a [`Subject`]: a file
//! descriptor (`TcpStream::read (fd 12)`), another coroutine (`JoinHandle::join (#5)`), or an
//! object with an [`ObjectId`] (`Mutex::lock (Mutex#3)`, or `accounts#3` once labelled). Objects
//! are numbered per runtime in the order they are first waited on, never by address, so reports
//! and traces of a seeded run read the same every time. A primitive of your own embeds an
//! `ObjectId` and parks with [`ObjectId::reason`].
//!
//! # Writing a primitive
//!
//! ```
//! use spindle_runtime::park::{self, Reason, Wake, WaitQueue};
//! use std::cell::{Cell, RefCell};
//!
//! /// A one-shot flag coroutines can wait for.
//! struct Flag { set: Cell<bool>, waiters: RefCell<WaitQueue> }
//!
//! impl Flag {
//!     fn wait(&self) {
//!         while !self.set.get() {
//!             let mut token = None;
//!             let wake = park::park(Reason::new("Flag::wait"), None, |w| {
//!                 token = Some(self.waiters.borrow_mut().push(w));
//!             });
//!             if let Wake::Cancelled = wake {
//!                 self.waiters.borrow_mut().remove(token.unwrap());
//!                 park::unwind();
//!             }
//!         }
//!     }
//!     fn set(&self) {
//!         self.set.set(true);
//!         self.waiters.borrow_mut().wake_all();
//!     }
//! }
//!
//! spindle_runtime::run(|| {
//!     let flag = std::rc::Rc::new(Flag { set: Cell::new(false), waiters: RefCell::new(WaitQueue::new()) });
//!     let f = flag.clone();
//!     let waiter = spindle_runtime::spawn(move || { f.wait(); 7 });
//!     flag.set();
//!     assert_eq!(waiter.join().unwrap(), 7);
//! });
//! ```

use std::collections::VecDeque;
use std::time::Instant;

pub use crate::object::ObjectId;
pub use crate::wake::{Reason, Subject, Wake, Waker};

use crate::context::{self, with_core};

impl Waker {
    /// Wakes the park this waker was made for with [`Wake::Notified`]. Returns `false`, doing
    /// nothing, when that park is over (stale waker) or when called outside the runtime.
    #[inline]
    pub fn wake(self) -> bool {
        with_core(|core| core.wake(self, Wake::Notified)).unwrap_or(false)
    }

    /// True while the park this waker was made for has not ended.
    pub fn is_waiting(self) -> bool {
        with_core(|core| core.is_waiting(self)).unwrap_or(false)
    }

    /// Id of the coroutine this waker wakes (as in [`crate::Coroutine::id`]).
    pub fn coroutine_id(self) -> Option<u64> {
        with_core(|core| core.task_id(self.key)).flatten()
    }
}

/// Parks the current coroutine until woken, timed out or cancelled; returns which.
///
/// `register` is called once, before the coroutine is suspended, with the waker for this park;
/// it must store it where the event that should wake the coroutine will find it. If the
/// coroutine has already been cancelled, `park` returns [`Wake::Cancelled`] without calling
/// `register`. A deadline that has already passed returns [`Wake::TimedOut`] after `register`
/// ran, without suspending.
///
/// Returns [`Wake::Cancelled`] also when an enclosing [`crate::time::timeout`] expires during
/// the wait. On `TimedOut` or `Cancelled` the caller must remove its registration (a stale
/// waker is harmless, but it occupies its queue).
///
/// # Panics
/// Outside a coroutine of a running spindle runtime.
#[inline(always)]
#[track_caller]
pub fn park(reason: Reason, deadline: Option<Instant>, register: impl FnOnce(Waker)) -> Wake {
    // The closures on the way down to the stack switch are forced inline: one shared by two
    // callers (two `recv`s on channels of one message type) could otherwise stay out of line,
    // and every resumption would pay a mispredicted return out of it (see `Core::yield_now`).
    match with_core(
        #[inline(always)]
        |core| core.park(reason, deadline, register),
    ) {
        Some(wake) => wake,
        None => context::outside_runtime(reason.what),
    }
}

/// `park`, telling the scheduler where the data the coroutine touches first after waking
/// lives (`near`: up to two addresses, e.g. the socket it waits on and its reactor entry; 0
/// for none), so it can prefetch that before resuming it.
#[inline(always)]
#[track_caller]
pub(crate) fn park_near(
    reason: Reason,
    deadline: Option<Instant>,
    near: [usize; 2],
    register: impl FnOnce(Waker),
) -> Wake {
    match with_core(|core| core.park_near(reason, deadline, near, register)) {
        Some(wake) => wake,
        None => context::outside_runtime(reason.what),
    }
}

/// Unwinds the current coroutine after a park returned [`Wake::Cancelled`]: with the
/// cancellation payload (the join sees `JoinError::Cancelled`) or with the payload of the
/// `time::timeout` that expired. Destructors run on the way, releasing locks.
///
/// Code that catches unwinds (`catch_unwind`) must let these through, or the cancellation is
/// only postponed: every later park of a cancelled coroutine returns `Cancelled` at once.
#[track_caller]
pub fn unwind() -> ! {
    let Some(payload) = with_core(|core| core.unwind_payload()) else {
        panic!("spindle::park::unwind called outside a spindle coroutine");
    };
    std::panic::resume_unwind(payload)
}

/// Parks the current coroutine on its own (no waker registered anywhere) until tick `deadline`
/// of the runtime's clock (`Core::tick`, `Core::tick_after`), then returns. Unwinds when
/// cancelled.
#[track_caller]
pub(crate) fn park_until(reason: Reason, deadline: u64) {
    loop {
        let parked = with_core(
            #[inline(always)]
            |core| core.park_until_tick(reason, deadline),
        );
        let wake = match parked {
            Some(wake) => wake,
            None => context::outside_runtime(reason.what),
        };
        match wake {
            Wake::TimedOut => return,
            Wake::Cancelled => unwind(),
            Wake::Notified => continue,
        }
    }
}

/// Position of a waiter in a [`WaitQueue`], for removing it after a timeout or cancellation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token(u64);

impl Token {
    /// A token for a primitive that keeps its own registrations (the `select!` arms of
    /// `sync::mpmc`): `raw` is whatever names the registration there.
    pub(crate) const fn from_raw(raw: u64) -> Token {
        Token(raw)
    }

    /// What [`Token::from_raw`] was given.
    pub(crate) const fn raw(self) -> u64 {
        self.0
    }
}

/// A FIFO of parked coroutines: the building block of locks, channels and events.
///
/// Waiters are woken in the order they were pushed. A waiter that timed out or was cancelled
/// removes itself with [`WaitQueue::remove`]; entries whose park already ended are skipped
/// when waking, so a forgotten removal costs a slot, never a lost wakeup.
#[derive(Debug, Default)]
pub struct WaitQueue {
    waiters: VecDeque<Waker>,
}

impl WaitQueue {
    /// An empty queue. Allocates nothing until the first waiter arrives.
    pub const fn new() -> WaitQueue {
        WaitQueue { waiters: VecDeque::new() }
    }

    /// Appends a waiter; the token removes it again.
    pub fn push(&mut self, waker: Waker) -> Token {
        self.waiters.push_back(waker);
        Token(waker.seq)
    }

    /// Removes the waiter with this token; returns whether it was still queued.
    pub fn remove(&mut self, token: Token) -> bool {
        if let Some(i) = self.waiters.iter().position(|w| w.seq == token.0) {
            self.waiters.remove(i);
            true
        } else {
            false
        }
    }

    /// True if the waiter with this token is still queued (not yet woken).
    pub fn contains(&self, token: Token) -> bool {
        self.waiters.iter().any(|w| w.seq == token.0)
    }

    /// Wakes the longest-waiting coroutine whose park is still in progress. Returns its waker,
    /// or `None` if nobody was waiting.
    pub fn wake_one(&mut self) -> Option<Waker> {
        while let Some(w) = self.waiters.pop_front() {
            if w.wake() {
                return Some(w);
            }
        }
        None
    }

    /// Wakes every waiter; returns how many were woken.
    pub fn wake_all(&mut self) -> usize {
        let mut n = 0;
        while let Some(w) = self.waiters.pop_front() {
            n += w.wake() as usize;
        }
        n
    }

    /// Number of queued waiters (some may be stale until the next wake skips them).
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// True if nobody is queued.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

pub use crate::remote::RemoteWaker;

/// A [`RemoteWaker`] for `waker`: it can be sent to another thread and woken from there.
/// While it exists the runtime counts it as something that can still wake a coroutine, so a
/// coroutine waiting on it is not reported as deadlocked.
///
/// # Panics
/// Outside a running spindle runtime.
#[track_caller]
pub fn remote_waker(waker: Waker) -> RemoteWaker {
    context::expect_core("remote_waker", |core| core.remote_waker(waker))
}
