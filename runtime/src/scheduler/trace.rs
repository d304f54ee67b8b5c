//! The timeline trace (`RuntimeBuilder::trace`): a Chrome trace-event JSON file that
//! ui.perfetto.dev and chrome://tracing open.
//!
//! * one track per coroutine, named `#id name`, and one for the scheduler (timers, sockets,
//!   other threads: what wakes a coroutine when no coroutine runs);
//! * a slice for each run of a coroutine, and one for each wait between runs, named by its park
//!   reason;
//! * a flow arrow from whatever woke a coroutine (the coroutine that called `wake`, or the
//!   scheduler's track for a timer, a socket, another thread, a cancellation) to its next run;
//! * instants for spawn and finish; counters of runnable and live coroutines at each run.
//!
//! Timestamps are the runtime's clock in microseconds since `run` began: virtual under virtual
//! time, so a seeded virtual-time program writes the same file byte for byte every time (its
//! slices then have zero length; their order is the schedule). The file is written as events
//! happen, through a buffered writer, one file per `run`; with `trace_last(n, path)` only the
//! last `n` events are kept in memory and written when `run` ends, for long-running servers.
//!
//! Off by default at no cost: like the counters, the hooks sit on the drive loop's checked
//! path; `cargo bench --bench core` measures the cost per switch with a trace on.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use super::Core;
use crate::task::Task;

/// Where the trace goes, as the builder was told.
#[derive(Clone, Debug)]
pub(crate) struct TraceConfig {
    pub path: PathBuf,
    /// Keep only the last this many events (written when `run` ends); `None` streams all.
    pub last: Option<usize>,
}

/// Track of the scheduler: the origin of wakes that no coroutine made.
const SCHEDULER_TRACK: u64 = u64::MAX;

/// The trace of one `run`.
pub(crate) struct Tracer {
    config: TraceConfig,
    out: RefCell<Option<Sink>>,
    /// When `run` began, on the runtime's clock.
    start: Cell<Option<Instant>>,
    /// Per coroutine: when its current run or wait began, and the flow that will end at its
    /// next run.
    open: RefCell<HashMap<u64, Open>>,
    next_flow: Cell<u64>,
    /// What wakes coroutines when no coroutine runs (set by the drive loop before it fires
    /// timers, polls or applies remote wakes).
    waking_from: Cell<&'static str>,
}

#[derive(Default)]
struct Open {
    /// Start of its current run (us).
    run_since: Option<f64>,
    /// Start of its current wait (us), and its reason.
    wait_since: Option<(f64, String)>,
    /// A flow to end at its next run.
    flow: Option<u64>,
}

enum Sink {
    Stream { file: BufWriter<File>, first: bool },
    Ring { events: VecDeque<String>, keep: usize },
}

impl Tracer {
    pub(crate) fn new(config: TraceConfig) -> Tracer {
        Tracer {
            config,
            out: RefCell::new(None),
            start: Cell::new(None),
            open: RefCell::new(HashMap::new()),
            next_flow: Cell::new(1),
            waking_from: Cell::new("scheduler"),
        }
    }

    /// Opens the file for a `run` starting at `now`.
    pub(crate) fn begin(&self, now: Instant) -> io::Result<()> {
        self.start.set(Some(now));
        self.open.borrow_mut().clear();
        let sink = match self.config.last {
            Some(keep) => Sink::Ring { events: VecDeque::new(), keep: keep.max(1) },
            None => {
                let mut file = BufWriter::new(File::create(&self.config.path)?);
                file.write_all(b"[\n")?;
                Sink::Stream { file, first: true }
            }
        };
        *self.out.borrow_mut() = Some(sink);
        self.event(format!(
            r#"{{"name":"thread_name","ph":"M","pid":1,"tid":{SCHEDULER_TRACK},"args":{{"name":"scheduler"}}}}"#
        ));
        Ok(())
    }

    /// Closes the file at the end of a `run`.
    pub(crate) fn end(&self) -> io::Result<()> {
        match self.out.borrow_mut().take() {
            Some(Sink::Stream { mut file, .. }) => {
                file.write_all(b"\n]\n")?;
                file.flush()
            }
            Some(Sink::Ring { events, .. }) => {
                let mut file = BufWriter::new(File::create(&self.config.path)?);
                file.write_all(b"[\n")?;
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        file.write_all(b",\n")?;
                    }
                    file.write_all(e.as_bytes())?;
                }
                file.write_all(b"\n]\n")?;
                file.flush()
            }
            None => Ok(()),
        }
    }

    /// Microseconds since the run began.
    fn us(&self, now: Instant) -> f64 {
        let start = self.start.get().unwrap_or(now);
        now.saturating_duration_since(start).as_nanos() as f64 / 1000.0
    }

    fn event(&self, e: String) {
        let mut out = self.out.borrow_mut();
        match out.as_mut() {
            Some(Sink::Stream { file, first }) => {
                // A failed write ends the trace, not the program.
                let sep: &[u8] = if *first { b"" } else { b",\n" };
                *first = false;
                if file.write_all(sep).and_then(|()| file.write_all(e.as_bytes())).is_err() {
                    *out = None;
                }
            }
            Some(Sink::Ring { events, keep }) => {
                if events.len() == *keep {
                    events.pop_front();
                }
                events.push_back(e);
            }
            None => {}
        }
    }

    /// Sets what wakes coroutines when none runs, until set again.
    pub(crate) fn waking_from(&self, what: &'static str) {
        self.waking_from.set(what);
    }
}

/// A park reason as the trace names it: what, and which object (`Mutex#3`, `fd 12`, `#5`):
/// objects are named by per-runtime numbers, never by addresses, which would differ from run
/// to run.
fn reason_name(reason: crate::wake::Reason) -> String {
    escape(&reason.to_string())
}

/// `s` as a JSON string body.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

impl Core {
    /// A coroutine was spawned.
    pub(super) fn trace_spawn(&self, id: u64, name: Option<&str>) {
        let Some(t) = &self.tracer else { return };
        let ts = t.us(self.now());
        let label = match name {
            Some(n) => format!("#{id} {}", escape(n)),
            None => format!("#{id}"),
        };
        t.event(format!(
            r#"{{"name":"thread_name","ph":"M","pid":1,"tid":{id},"args":{{"name":"{label}"}}}}"#
        ));
        t.event(format!(r#"{{"name":"spawn","ph":"i","s":"t","ts":{ts},"pid":1,"tid":{id}}}"#));
        t.open
            .borrow_mut()
            .insert(id, Open { wait_since: Some((ts, "runnable".into())), ..Open::default() });
    }

    /// A coroutine is about to run.
    #[cold]
    pub(super) fn trace_resume(&self, task: &Task) {
        let Some(t) = &self.tracer else { return };
        let ts = t.us(self.now());
        let id = task.id;
        let mut open = t.open.borrow_mut();
        let o = open.entry(id).or_default();
        if let Some((since, reason)) = o.wait_since.take() {
            let dur = ts - since;
            t.event(format!(
                r#"{{"name":"{reason}","cat":"wait","ph":"X","ts":{since},"dur":{dur},"pid":1,"tid":{id}}}"#
            ));
        }
        if let Some(flow) = o.flow.take() {
            t.event(format!(
                r#"{{"name":"wake","cat":"wake","ph":"f","bp":"e","id":{flow},"ts":{ts},"pid":1,"tid":{id}}}"#
            ));
        }
        o.run_since = Some(ts);
        drop(open);
        let (runnable, live) = (self.tasks.queued(), self.tasks.len());
        t.event(format!(
            r#"{{"name":"coroutines","ph":"C","ts":{ts},"pid":1,"args":{{"runnable":{runnable},"live":{live}}}}}"#
        ));
    }

    /// A coroutine gave the thread back; `parked` if it waits now.
    #[cold]
    pub(super) fn trace_suspend(&self, task: &Task, parked: bool) {
        let Some(t) = &self.tracer else { return };
        let ts = t.us(self.now());
        let id = task.id;
        let mut open = t.open.borrow_mut();
        let o = open.entry(id).or_default();
        if let Some(since) = o.run_since.take() {
            let dur = ts - since;
            t.event(format!(
                r#"{{"name":"run","ph":"X","ts":{since},"dur":{dur},"pid":1,"tid":{id}}}"#
            ));
        }
        let reason = if parked { reason_name(task.reason()) } else { "runnable".into() };
        o.wait_since = Some((ts, reason));
    }

    /// Coroutine `id`'s park was ended: an arrow from who woke it.
    #[cold]
    pub(super) fn trace_wake(&self, id: u64) {
        let Some(t) = &self.tracer else { return };
        let ts = t.us(self.now());
        let from = self.current_id().unwrap_or(SCHEDULER_TRACK);
        let flow = t.next_flow.get();
        t.next_flow.set(flow + 1);
        let name = if from == SCHEDULER_TRACK { t.waking_from.get() } else { "wake" };
        t.event(format!(
            r#"{{"name":"{name}","cat":"wake","ph":"s","id":{flow},"ts":{ts},"pid":1,"tid":{from}}}"#
        ));
        t.open.borrow_mut().entry(id).or_default().flow = Some(flow);
    }

    /// Coroutine `id` finished.
    pub(super) fn trace_finish(&self, id: u64) {
        let Some(t) = &self.tracer else { return };
        let ts = t.us(self.now());
        t.event(format!(r#"{{"name":"finish","ph":"i","s":"t","ts":{ts},"pid":1,"tid":{id}}}"#));
        t.open.borrow_mut().remove(&id);
    }

    /// Tells the trace what wakes coroutines from here on (no coroutine runs).
    #[inline]
    pub(super) fn trace_waking_from(&self, what: &'static str) {
        if let Some(t) = &self.tracer {
            t.waking_from(what);
        }
    }
}
