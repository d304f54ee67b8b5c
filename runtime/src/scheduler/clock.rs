//! The clock every deadline is read against: the real one, or a virtual one that stands still
//! while coroutines run and jumps to the next timer when the scheduler would otherwise wait.
//!
//! Inside the scheduler a deadline is a *tick*: nanoseconds since the clock was made (`base`),
//! a `u64`, so that arming, ordering and firing timers is integer arithmetic. `Instant`s are
//! converted at the edges (`park` with a deadline, `sleep_until`, the real clock's reading),
//! exactly both ways: an `Instant` counts whole nanoseconds on every platform std supports.
//! Ticks saturate: an instant before `base` is tick 0 (no deadline armed is that early: a
//! deadline that has passed ends its park before it is armed), one more than 584 years after
//! it is `u64::MAX`.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// One runtime's clock.
pub(crate) struct Clock {
    /// Tick 0: the real time when the clock was made.
    base: Instant,
    kind: Kind,
}

enum Kind {
    /// `Instant::now()`.
    Real,
    /// Advances only when the scheduler is idle (see `drive::idle_wait`), to the next timer:
    /// its reading is `tick`. `instant` is the `Instant` of tick `instant_tick`, made when
    /// `now` was last asked after a jump: a simulation jumps far more often than it reads the
    /// clock as an `Instant`.
    Virtual { tick: Cell<u64>, instant: Cell<Instant>, instant_tick: Cell<u64> },
}

impl Clock {
    /// A clock for a runtime built with `virtual_time(virtual_time)`; a virtual one starts at
    /// the real time of the call.
    pub(crate) fn new(virtual_time: bool) -> Clock {
        let base = Instant::now();
        let kind = if virtual_time {
            Kind::Virtual {
                tick: Cell::new(0),
                instant: Cell::new(base),
                instant_tick: Cell::new(0),
            }
        } else {
            Kind::Real
        };
        Clock { base, kind }
    }

    /// The time now on this clock.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match &self.kind {
            Kind::Real => Instant::now(),
            Kind::Virtual { tick, instant, instant_tick } => {
                if instant_tick.get() != tick.get() {
                    instant.set(self.instant(tick.get()));
                    instant_tick.set(tick.get());
                }
                instant.get()
            }
        }
    }

    /// The time now on this clock, as a tick.
    #[inline]
    pub(crate) fn now_tick(&self) -> u64 {
        match &self.kind {
            Kind::Real => self.tick(Instant::now()),
            Kind::Virtual { tick, .. } => tick.get(),
        }
    }

    /// The tick `timeout` from now, saturating as `context::saturating_add` does (a timeout
    /// too large to add is 30 years).
    #[inline]
    pub(crate) fn tick_after(&self, timeout: Duration) -> u64 {
        // Below 2^32 s (136 years) no instant overflows and the nanoseconds fit a u64: the sum
        // of ticks is the tick of the sum.
        if timeout.as_secs() < 1 << 32 {
            let nanos = timeout.as_secs() * 1_000_000_000 + u64::from(timeout.subsec_nanos());
            self.now_tick().saturating_add(nanos)
        } else {
            self.tick(crate::context::saturating_add(self.now(), timeout))
        }
    }

    /// The tick of `instant` (see the module docs).
    #[inline]
    pub(crate) fn tick(&self, instant: Instant) -> u64 {
        let since = instant.saturating_duration_since(self.base);
        since
            .as_secs()
            .checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(u64::from(since.subsec_nanos())))
            .unwrap_or(u64::MAX)
    }

    /// The instant of tick `tick`: the one it was made from, exactly (below 584 years). No
    /// tick overflows an `Instant`: 584 years past a clock reading.
    pub(crate) fn instant(&self, tick: u64) -> Instant {
        self.base + Duration::from_nanos(tick)
    }

    /// True for a virtual clock.
    pub(crate) fn is_virtual(&self) -> bool {
        matches!(self.kind, Kind::Virtual { .. })
    }

    /// Moves a virtual clock forward to tick `to` (never back); a real clock ignores it.
    pub(crate) fn advance_to(&self, to: u64) {
        if let Kind::Virtual { tick, .. } = &self.kind {
            if to > tick.get() {
                tick.set(to);
            }
        }
    }
}
