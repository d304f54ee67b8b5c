//! The trace's timestamps: read cheaply on the runtime's thread, turned into nanoseconds since
//! `run` began where the events are written.
//!
//! Under virtual time, and wherever no cheaper counter is known to be good, a stamp is the
//! runtime's clock in nanoseconds since `run` began (for a real clock, an `Instant::now()`:
//! 20-40 ns on a VM). Under real time on x86_64, when the kernel itself keeps time by the TSC
//! (its clocksource is `tsc`, which it only picks for a TSC that runs at a constant rate and
//! agrees across CPUs), a stamp is the TSC instead, about a third of the cost. TSC stamps carry
//! no unit of their own: the trace takes a [`Mark`] (a TSC reading and an `Instant` reading
//! side by side) when `run` begins and each time it hands a batch of events on, and an event
//! between two marks is placed on the line between them ([`Scale`]). Timestamps so stay on the
//! runtime's clock (as `time::now()` reads it), never go backwards, and cost one `Instant`
//! reading per batch.

use std::sync::OnceLock;
use std::time::Instant;

/// What a stamp counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ticks {
    /// Nanoseconds since `run` began, on the runtime's clock.
    Nanos,
    /// The CPU's time-stamp counter (x86_64 only).
    Tsc,
}

impl Ticks {
    /// The cheapest stamp that is right for a runtime whose clock is virtual or not.
    pub(super) fn for_clock(virtual_time: bool) -> Ticks {
        if !virtual_time && tsc_keeps_time() {
            Ticks::Tsc
        } else {
            Ticks::Nanos
        }
    }
}

/// True if the TSC can stand in for `Instant`: on x86_64, when the kernel's clocksource is
/// `tsc` (asked once per process).
fn tsc_keeps_time() -> bool {
    static KEEPS_TIME: OnceLock<bool> = OnceLock::new();
    *KEEPS_TIME.get_or_init(|| {
        cfg!(target_arch = "x86_64")
            && std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .is_ok_and(|source| source.trim() == "tsc")
    })
}

/// The time-stamp counter now; 0 where there is none (never used there: see
/// [`Ticks::for_clock`]).
#[inline(always)]
pub(super) fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` exists on every x86_64 CPU and only reads a counter into registers.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// Nanoseconds from `start` to `now`, saturating.
#[inline]
pub(super) fn nanos_since(start: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX)
}

/// A TSC reading and the nanoseconds since `run` began, taken together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mark {
    pub(super) tsc: u64,
    pub(super) ns: u64,
}

impl Mark {
    /// Now, for a run that began at `start`.
    pub(super) fn now(start: Instant) -> Mark {
        let tsc = tsc();
        Mark { tsc, ns: nanos_since(start, Instant::now()) }
    }
}

/// Turns the stamps of one stretch of events into nanoseconds since `run` began.
#[derive(Clone, Copy, Debug)]
pub(super) struct Scale {
    /// The stamp at the stretch's start, and its nanoseconds.
    from_tsc: u64,
    from_ns: u64,
    /// Nanoseconds per tick, in 32.32 fixed point (saturated: a TSC ticks far faster than once
    /// in 4 s), so that placing a stamp is one 64 x 64 -> 128-bit multiply.
    per_tick: u64,
    /// The nanoseconds at the stretch's end: no stamp of it is placed later.
    to_ns: u64,
}

impl Scale {
    /// Stamps that are nanoseconds already.
    pub(super) const NANOS: Scale =
        Scale { from_tsc: 0, from_ns: 0, per_tick: 1 << 32, to_ns: u64::MAX };

    /// For TSC stamps between the marks `from` and `to`.
    pub(super) fn between(from: Mark, to: Mark) -> Scale {
        let ticks = to.tsc.saturating_sub(from.tsc);
        let ns = to.ns.saturating_sub(from.ns);
        let per_tick = match u128::from(ticks) {
            0 => 0,
            ticks => {
                u64::try_from(((u128::from(ns) << 32) + ticks / 2) / ticks).unwrap_or(u64::MAX)
            }
        };
        Scale { from_tsc: from.tsc, from_ns: from.ns, per_tick, to_ns: to.ns.max(from.ns) }
    }

    /// The nanoseconds of stamp `t`.
    #[inline]
    pub(super) fn ns(&self, t: u64) -> u64 {
        // Rounded to the nearest nanosecond.
        let product = u128::from(t.saturating_sub(self.from_tsc)) * u128::from(self.per_tick);
        let after = (product + (1 << 31)) >> 32;
        let ns = u128::from(self.from_ns) + after;
        u64::try_from(ns).unwrap_or(u64::MAX).min(self.to_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanosecond_stamps_are_kept_as_they_are() {
        for t in [0, 1, 999, 12_345_678_901, u64::MAX] {
            assert_eq!(Scale::NANOS.ns(t), t);
        }
    }

    #[test]
    fn tsc_stamps_are_placed_on_the_line_between_two_marks_and_never_after_the_second() {
        let scale = Scale::between(Mark { tsc: 1_000, ns: 500 }, Mark { tsc: 4_000, ns: 1_500 });
        assert_eq!(scale.ns(1_000), 500);
        assert_eq!(scale.ns(2_500), 1_000);
        assert_eq!(scale.ns(4_000), 1_500);
        assert_eq!(scale.ns(1_001), 500, "rounded to the nearest nanosecond");
        assert_eq!(scale.ns(1_002), 501);
        assert_eq!(scale.ns(900), 500, "not before the first mark");
        assert_eq!(scale.ns(1_000_000), 1_500, "not after the second");
        let still = Scale::between(Mark { tsc: 7, ns: 3 }, Mark { tsc: 7, ns: 9 });
        assert_eq!(still.ns(7), 3);
    }
}
