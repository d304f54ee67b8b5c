//! The trace's events as the runtime's thread records them: fixed-size values, pushed into a
//! reusable buffer and written out as JSON elsewhere (`json.rs`). Every field is a number, a
//! `&'static str` or an owned string, so a batch of them can move to the writer thread.

use crate::wake::Reason;

/// One trace event. Times are stamps (see `timebase.rs`), turned into nanoseconds when the
/// event is written.
pub(super) enum Record {
    /// The name of track `tid` (`ph` M): `#id name` for a coroutine, or the scheduler's.
    Name { tid: u64, name: Option<Box<str>> },
    /// A run of the coroutine on track `tid` (`ph` X).
    Run { since: u64, to: u64, tid: u64 },
    /// A wait between two runs (`ph` X, `cat` wait), named by its park reason; `None`: waiting
    /// in the run queue.
    Wait { since: u64, to: u64, tid: u64, reason: Option<Reason> },
    /// The start of flow arrow `flow` on track `tid` (`ph` s), named by what woke.
    Woke { name: &'static str, flow: u64, at: u64, tid: u64 },
    /// The end of flow arrow `flow` at the next run of the coroutine on track `tid` (`ph` f).
    Resumed { flow: u64, at: u64, tid: u64 },
    /// The counters of runnable and live coroutines (`ph` C).
    Counters { at: u64, runnable: u64, live: u64 },
    /// An instant on track `tid` (`ph` i): `spawn`, `finish`, `panic`, `cancel`, `timeout`.
    Instant { name: &'static str, at: u64, tid: u64 },
}

// A record is one cache line at most: a switch stores one or two.
const _: () = assert!(std::mem::size_of::<Record>() <= 64);
