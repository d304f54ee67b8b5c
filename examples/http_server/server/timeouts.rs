//! The read and write timeouts, kept by one sweep per server rather than a timer per read.
//!
//! A connection that waits on its client (for a request head, a piece of body, or for room to
//! write its responses) notes the current *tick* in [`super::Connection::waiting_since`], and
//! clears it when the wait is over. A daemon coroutine, [`sweep`], advances the tick every
//! [`Timeouts::tick`] and closes every connection whose wait has lasted more than the timeout;
//! its coroutine wakes from the read or write with `NotConnected` and ends, as it would have
//! on a `TimedOut`.
//!
//! So the request path reads no clock and arms no timer: noting a wait is one store. A timer
//! per read cost a clock read for the deadline, another in the park that arms it, a push onto
//! the runtime's timer heap and, when the read was answered in time (nearly always), a stale
//! entry for the heap to drop later. In a perf profile of `/` under wrk that was about 4% of
//! the server's CPU time (3.3% reading the clock), a quarter of what it spent outside the kernel.
//!
//! The price is precision: a wait ends *after* the timeout, never before, and at most one
//! tick later. The tick is a quarter of the timeout, at most one second (a 10 s timeout drops
//! a silent client between 10 and 11 s; 200 ms, between 200 and 250 ms). A sweep that runs
//! late (the runtime was busy) only makes the waits it ends longer, because the tick counts
//! sweeps, not time. Each sweep visits every open connection: 10,000 connections once a second.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use super::Server;

/// Longest tick.
const MAX_TICK: Duration = Duration::from_secs(1);

/// The timeout in ticks, and the tick now.
pub struct Timeouts {
    /// Time between sweeps: a quarter of the timeout, between 1 ms and [`MAX_TICK`].
    tick: Duration,
    /// Whole ticks a wait may last: the timeout divided by the tick, rounded up.
    allowed: u64,
    /// Sweeps so far.
    now: Cell<u64>,
}

impl Timeouts {
    /// Timeouts of `timeout` each.
    pub fn new(timeout: Duration) -> Timeouts {
        let tick = (timeout / 4).clamp(Duration::from_millis(1), MAX_TICK);
        let allowed = timeout.as_nanos().div_ceil(tick.as_nanos());
        Timeouts { tick, allowed: u64::try_from(allowed).unwrap_or(u64::MAX), now: Cell::new(0) }
    }

    /// The tick now: what a connection notes when it begins to wait.
    pub fn now(&self) -> u64 {
        self.now.get()
    }

    /// Whether a wait that began at tick `since` has lasted longer than the timeout. It began
    /// at or after sweep `since`, and more than `allowed` sweeps have come since, each at
    /// least a tick after the one before.
    fn expired(&self, since: u64) -> bool {
        self.now.get() - since > self.allowed
    }
}

/// Advances the tick and closes the connections that waited too long, for ever (run it in a
/// daemon coroutine).
pub fn sweep(server: Rc<Server>) {
    let timeouts = &server.timeouts;
    loop {
        spindle::sleep(timeouts.tick);
        timeouts.now.set(timeouts.now.get() + 1);
        for (_, conn) in server.connections.borrow().iter() {
            if conn.waiting_since.get().is_some_and(|since| timeouts.expired(since)) {
                conn.waiting_since.set(None);
                conn.stream.close();
            }
        }
    }
}
