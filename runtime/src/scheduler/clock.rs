//! The clock every deadline is read against: the real one, or a virtual one that stands still
//! while coroutines run and jumps to the next timer when the scheduler would otherwise wait.

use std::cell::Cell;
use std::time::Instant;

/// One runtime's clock.
pub(crate) enum Clock {
    /// `Instant::now()`.
    Real,
    /// Advances only when the scheduler is idle (see `drive::idle_wait`), to the next timer.
    Virtual(Cell<Instant>),
}

impl Clock {
    /// A clock for a runtime built with `virtual_time(virtual_time)`; a virtual one starts at
    /// the real time of the call.
    pub(crate) fn new(virtual_time: bool) -> Clock {
        if virtual_time {
            Clock::Virtual(Cell::new(Instant::now()))
        } else {
            Clock::Real
        }
    }

    /// The time now on this clock.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match self {
            Clock::Real => Instant::now(),
            Clock::Virtual(now) => now.get(),
        }
    }

    /// True for a virtual clock.
    pub(crate) fn is_virtual(&self) -> bool {
        matches!(self, Clock::Virtual(_))
    }

    /// Moves a virtual clock forward to `to` (never back); a real clock ignores it.
    pub(crate) fn advance_to(&self, to: Instant) {
        if let Clock::Virtual(now) = self {
            if to > now.get() {
                now.set(to);
            }
        }
    }
}
