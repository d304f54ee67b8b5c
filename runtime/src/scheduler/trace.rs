//! The timeline trace (`RuntimeBuilder::trace`): a Chrome trace-event JSON file that
//! ui.perfetto.dev and chrome://tracing open.
//!
//! * one track per coroutine, named `#id name`, and one for the scheduler (timers, sockets,
//!   other threads: what wakes a coroutine when no coroutine runs);
//! * a slice for each run of a coroutine, and one for each wait between runs, named by its park
//!   reason (`runnable` for a wait in the run queue);
//! * a flow arrow from whatever woke a coroutine (the coroutine that called `wake`, or the
//!   scheduler's track for a timer, a socket, another thread, a cancellation) to its next run;
//! * instants for spawn, finish, panic, cancel and timeout (a `time::timeout` expiring); counters of runnable and live coroutines, written at a run
//!   when either changed since the last one written (a counter track is a step function, so
//!   nothing is lost).
//!
//! Timestamps are the runtime's clock in microseconds since `run` began, to the nanosecond
//! (`12.345`): virtual under virtual time, so a seeded virtual-time program writes the same file
//! byte for byte every time (its slices then have zero length; their order is the schedule).
//! The file is written as events happen, one file per `run`; with `trace_last(n, path)` only the
//! last `n` events are kept in memory and written when `run` ends, for long-running servers.
//!
//! # Implementation notes
//!
//! A switch writes two or three events, so each costs what formatting them costs: events are
//! written straight into a byte buffer, integers by hand, and a coroutine's open run, wait and
//! flow live in a `Vec` indexed by its slot in the table, so no event allocates or hashes. A
//! switch reads the clock once: a run that follows the previous one with nothing in between
//! but the scheduler's pick starts at the instant the previous one ended. A streamed trace hands
//! each 64 KiB of events to a thread of its own (`spindle-trace`) that writes them to the file,
//! keeping the copy into the kernel off the runtime's thread; it holds at most a few buffers,
//! and the runtime waits for it when it falls behind. The ring keeps its events' bytes in one
//! deque.
//!
//! Off by default at no cost: like the counters, the hooks sit on the drive loop's checked
//! path; `cargo bench --bench core` measures the cost per switch with a trace on.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use super::Core;
use crate::task::Task;
use digits::push_int;
use output::{write_ring, Names, Writer};

mod digits;
mod output;
use crate::wake::{Reason, Subject};

/// Where the trace goes, as the builder was told.
#[derive(Clone, Debug)]
pub(crate) struct TraceConfig {
    pub path: PathBuf,
    /// Keep only the last this many events (written when `run` ends); `None` streams all.
    pub last: Option<usize>,
}

/// Track of the scheduler: the origin of wakes that no coroutine made.
const SCHEDULER_TRACK: u64 = u64::MAX;

/// A streamed trace hands its buffer to the file once it holds this many bytes.
const FLUSH_AT: usize = 64 << 10;

/// Bytes an event takes at most, unless it carries a long name.
const EVENT_ROOM: usize = 256;

/// The trace of one `run`.
pub(crate) struct Tracer {
    config: TraceConfig,
    state: RefCell<State>,
    /// What wakes coroutines when no coroutine runs (set by the drive loop before it fires
    /// timers, polls or applies remote wakes).
    waking_from: Cell<&'static str>,
}

/// Everything a hook touches, behind one borrow.
struct State {
    /// `None` before `begin`, after `end`, and after a failed write.
    sink: Option<Sink>,
    /// Bytes of events not yet handed on: for a stream, everything since the last write to the
    /// file; for a ring, the event being written.
    buf: Vec<u8>,
    /// When `run` began, on the runtime's clock.
    start: Option<Instant>,
    /// By slot in the table: the open run, wait and flow of the coroutine living there.
    open: Vec<Open>,
    /// The id of the next flow arrow; never 0.
    next_flow: u64,
    /// The counters last written: (runnable, live).
    counters: Option<(usize, usize)>,
    /// When the last run ended, until the scheduler does anything but pick the next coroutine
    /// (a poll, timers, remote wakes, a finish): the next run then starts at that instant, and
    /// a switch reads the clock once, not twice.
    handoff: Option<u64>,
}

/// One coroutine's open slices, reset when its slot is spawned into or freed.
#[derive(Clone, Copy, Default)]
struct Open {
    /// Start of its current run (ns since `run` began).
    run_since: Option<u64>,
    /// Start of its current wait (ns), and its park reason (`None`: waiting in the run queue).
    wait_since: Option<(u64, Option<Reason>)>,
    /// A flow to end at its next run.
    flow: Option<u64>,
}

enum Sink {
    /// Events go to the file as they happen, `,\n` between them, through a [`Writer`].
    Stream { writer: Writer, first: bool },
    /// The last `keep` events: their bytes back to back, and each one's length; and the
    /// track names (metadata events, kept apart so that the ring's turning does not lose
    /// them): of the live coroutines, by id, and of the last `keep` that finished.
    Ring { bytes: VecDeque<u8>, lens: VecDeque<usize>, keep: usize, names: Names },
}

impl Tracer {
    pub(crate) fn new(config: TraceConfig) -> Tracer {
        Tracer {
            config,
            state: RefCell::new(State {
                sink: None,
                buf: Vec::new(),
                start: None,
                open: Vec::new(),
                next_flow: 1,
                counters: None,
                handoff: None,
            }),
            waking_from: Cell::new("scheduler"),
        }
    }

    /// Opens the file for a `run` starting at `now`.
    pub(crate) fn begin(&self, now: Instant) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        s.start = Some(now);
        s.open.clear();
        s.counters = None;
        s.handoff = None;
        s.buf.clear();
        s.sink = Some(match self.config.last {
            Some(keep) => {
                let (bytes, lens, names) = (VecDeque::new(), VecDeque::new(), Names::default());
                Sink::Ring { bytes, lens, keep: keep.max(1), names }
            }
            None => {
                let mut file = File::create(&self.config.path)?;
                file.write_all(b"[\n")?;
                s.buf.reserve(FLUSH_AT + EVENT_ROOM);
                Sink::Stream { writer: Writer::start(file)?, first: true }
            }
        });
        s.open_event();
        s.raw(br#"{"name":"thread_name","ph":"M","pid":1,"tid":"#);
        s.int(SCHEDULER_TRACK);
        s.raw(br#","args":{"name":"scheduler"}}"#);
        s.close_name(SCHEDULER_TRACK);
        Ok(())
    }

    /// Closes the file at the end of a `run`.
    pub(crate) fn end(&self) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        let buf = std::mem::take(&mut s.buf);
        let result = match s.sink.take() {
            Some(Sink::Ring { bytes, lens, names, .. }) => {
                let written = write_ring(&self.config.path, &names, &bytes, &lens);
                s.buf = buf;
                written
            }
            Some(Sink::Stream { writer, .. }) => writer.finish(buf),
            None => Ok(()),
        };
        s.buf.clear();
        result
    }

    /// Sets what wakes coroutines when none runs, until set again.
    pub(crate) fn waking_from(&self, what: &'static str) {
        self.waking_from.set(what);
        // The scheduler polls, fires timers or applies remote wakes: time passes.
        self.state.borrow_mut().handoff = None;
    }
}

impl State {
    /// Nanoseconds since the run began.
    #[inline]
    fn ns(&self, now: Instant) -> u64 {
        let start = self.start.unwrap_or(now);
        u64::try_from(now.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The open slices of the coroutine in slot `key`.
    #[inline]
    fn open(&mut self, key: usize) -> &mut Open {
        if key >= self.open.len() {
            self.open.resize(key + 1, Open::default());
        }
        &mut self.open[key]
    }

    /// Starts an event.
    #[inline(always)]
    fn open_event(&mut self) {
        // Room for a whole event of the usual kind, so that its pieces need not grow the buffer.
        self.buf.reserve(EVENT_ROOM);
        if let Some(Sink::Stream { first, .. }) = &mut self.sink {
            if !std::mem::take(first) {
                self.buf.extend_from_slice(b",\n");
            }
        }
    }

    /// Ends a track-name event of track `tid`: as any event to a file; a ring keeps it apart.
    fn close_name(&mut self, tid: u64) {
        match &mut self.sink {
            Some(Sink::Ring { names, .. }) => {
                names.live.insert(tid, self.buf.as_slice().into());
                self.buf.clear();
            }
            _ => self.close_event(),
        }
    }

    /// Track `tid`'s coroutine finished: a ring remembers its name among the last finished.
    fn finish_name(&mut self, tid: u64) {
        if let Some(Sink::Ring { names, keep, .. }) = &mut self.sink {
            if let Some(name) = names.live.remove(&tid) {
                if names.finished.len() == *keep {
                    names.finished.pop_front();
                }
                names.finished.push_back(name);
            }
        }
    }

    /// Ends an event: hands the buffer to the file when it is full, or the event to the ring.
    #[inline]
    fn close_event(&mut self) {
        match &mut self.sink {
            Some(Sink::Stream { writer, .. }) => {
                if self.buf.len() >= FLUSH_AT && !writer.write(&mut self.buf) {
                    // A failed write ends the trace, not the program (`end` reports it).
                    if let Some(Sink::Stream { writer, .. }) = self.sink.take() {
                        let _ = writer.finish(Vec::new());
                    }
                }
            }
            Some(Sink::Ring { bytes, lens, keep, .. }) => {
                if lens.len() == *keep {
                    let oldest = lens.pop_front().unwrap_or(0);
                    bytes.drain(..oldest);
                }
                bytes.extend(self.buf.iter());
                lens.push_back(self.buf.len());
                self.buf.clear();
            }
            None => self.buf.clear(),
        }
    }

    #[inline(always)]
    fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// `n` in decimal.
    #[inline(always)]
    fn int(&mut self, n: u64) {
        push_int(&mut self.buf, n);
    }

    /// `ns` nanoseconds as microseconds: `12`, `12.5`, `12.345`.
    #[inline(always)]
    fn us(&mut self, ns: u64) {
        push_int(&mut self.buf, ns / 1000);
        let frac = (ns % 1000) as u32;
        if frac != 0 {
            let digits = [
                b'.',
                b'0' + (frac / 100) as u8,
                b'0' + (frac / 10 % 10) as u8,
                b'0' + (frac % 10) as u8,
            ];
            let len = if !frac.is_multiple_of(10) {
                4
            } else if !frac.is_multiple_of(100) {
                3
            } else {
                2
            };
            let at = self.buf.len();
            self.buf.extend_from_slice(&digits);
            self.buf.truncate(at + len);
        }
    }

    /// `s` as the body of a JSON string.
    fn escaped(&mut self, s: &str) {
        if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            self.buf.extend_from_slice(s.as_bytes());
            return;
        }
        for b in s.bytes() {
            match b {
                b'"' => self.raw(b"\\\""),
                b'\\' => self.raw(b"\\\\"),
                b if b < 0x20 => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.raw(b"\\u00");
                    self.buf.push(HEX[usize::from(b >> 4)]);
                    self.buf.push(HEX[usize::from(b & 0xf)]);
                }
                b => self.buf.push(b),
            }
        }
    }

    /// A park reason as the trace names it: what, and which object (`Mutex#3`, `fd 12`,
    /// `#5`): objects are named by per-runtime numbers, never by addresses, which would differ
    /// from run to run.
    #[inline]
    fn reason(&mut self, reason: Option<Reason>) {
        let Some(reason) = reason else { return self.raw(b"runnable") };
        self.escaped(reason.what);
        let Some(on) = reason.on else { return };
        self.raw(b" (");
        match on {
            Subject::Number(n) => self.int(n),
            Subject::Fd(fd) => {
                self.raw(b"fd ");
                self.int(u64::try_from(fd).unwrap_or(0));
            }
            Subject::Coroutine(id) => {
                self.raw(b"#");
                self.int(id);
            }
            Subject::Object { name, id } => {
                self.escaped(name);
                self.raw(b"#");
                self.int(u64::from(id));
            }
        }
        self.raw(b")");
    }

    /// A slice (`ph` X) on track `tid`; `cat` empty for none.
    #[inline(always)]
    fn slice(&mut self, name: impl FnOnce(&mut Self), cat: &[u8], since: u64, to: u64, tid: u64) {
        self.open_event();
        self.raw(br#"{"name":""#);
        name(self);
        if cat.is_empty() {
            self.raw(br#"","ph":"X","ts":"#);
        } else {
            self.raw(br#"","cat":""#);
            self.raw(cat);
            self.raw(br#"","ph":"X","ts":"#);
        }
        self.us(since);
        self.raw(br#","dur":"#);
        self.us(to.saturating_sub(since));
        self.raw(br#","pid":1,"tid":"#);
        self.int(tid);
        self.raw(b"}");
        self.close_event();
    }

    /// The rest of a flow event (`ph` s or f) whose opening fields are written: its id, time
    /// and track, and the event's end.
    fn flow_rest(&mut self, flow: u64, ts: u64, tid: u64) {
        self.raw(br#","id":"#);
        self.int(flow);
        self.raw(br#","ts":"#);
        self.us(ts);
        self.raw(br#","pid":1,"tid":"#);
        self.int(tid);
        self.raw(b"}");
        self.close_event();
    }

    /// An instant (`ph` i) on track `tid`.
    fn instant(&mut self, name: &[u8], ts: u64, tid: u64) {
        self.open_event();
        self.raw(br#"{"name":""#);
        self.raw(name);
        self.raw(br#"","ph":"i","s":"t","ts":"#);
        self.us(ts);
        self.raw(br#","pid":1,"tid":"#);
        self.int(tid);
        self.raw(b"}");
        self.close_event();
    }
}

impl Core {
    /// The trace's state, if a trace is being written.
    #[inline]
    fn trace_state(&self) -> Option<std::cell::RefMut<'_, State>> {
        let state = self.tracer.as_ref()?.state.borrow_mut();
        state.sink.is_some().then_some(state)
    }

    /// Coroutine `id` was spawned into slot `key`.
    pub(super) fn trace_spawn(&self, key: usize, id: u64, name: Option<&str>) {
        let Some(mut s) = self.trace_state() else { return };
        let ts = s.ns(self.now());
        s.open_event();
        s.raw(br#"{"name":"thread_name","ph":"M","pid":1,"tid":"#);
        s.int(id);
        s.raw(br##","args":{"name":"#"##);
        s.int(id);
        if let Some(name) = name {
            s.raw(b" ");
            s.escaped(name);
        }
        s.raw(br#""}}"#);
        s.close_name(id);
        s.instant(b"spawn", ts, id);
        *s.open(key) = Open { wait_since: Some((ts, None)), ..Open::default() };
    }

    /// A coroutine is about to run.
    #[cold]
    pub(super) fn trace_resume(&self, task: &Task) {
        let Some(mut s) = self.trace_state() else { return };
        let ts = match s.handoff.take() {
            Some(ts) => ts,
            None => s.ns(self.now()),
        };
        let id = task.id;
        let open = std::mem::take(s.open(task.key));
        if let Some((since, reason)) = open.wait_since {
            s.slice(|s| s.reason(reason), b"wait", since, ts, id);
        }
        if let Some(flow) = open.flow {
            s.open_event();
            s.raw(br#"{"name":"wake","cat":"wake","ph":"f","bp":"e""#);
            s.flow_rest(flow, ts, id);
        }
        s.open(task.key).run_since = Some(ts);
        let counters = (self.tasks.queued(), self.tasks.len());
        if s.counters != Some(counters) {
            s.counters = Some(counters);
            s.open_event();
            s.raw(br#"{"name":"coroutines","ph":"C","ts":"#);
            s.us(ts);
            s.raw(br#","pid":1,"args":{"runnable":"#);
            s.int(counters.0 as u64);
            s.raw(br#","live":"#);
            s.int(counters.1 as u64);
            s.raw(b"}}");
            s.close_event();
        }
    }

    /// A coroutine gave the thread back; `parked` if it waits now.
    #[cold]
    pub(super) fn trace_suspend(&self, task: &Task, parked: bool) {
        let Some(mut s) = self.trace_state() else { return };
        let ts = s.ns(self.now());
        s.handoff = Some(ts);
        let open = s.open(task.key);
        let run_since = open.run_since.take();
        open.wait_since = Some((ts, parked.then(|| task.reason())));
        if let Some(since) = run_since {
            s.slice(|s| s.raw(b"run"), b"", since, ts, task.id);
        }
    }

    /// `task`'s park was ended: an arrow from who woke it.
    #[cold]
    pub(super) fn trace_wake(&self, task: &Task) {
        let Some(mut s) = self.trace_state() else { return };
        let ts = s.ns(self.now());
        let from = self.current_id().unwrap_or(SCHEDULER_TRACK);
        let flow = s.next_flow;
        s.next_flow += 1;
        let name = if from == SCHEDULER_TRACK {
            self.tracer.as_ref().map_or("scheduler", |t| t.waking_from.get())
        } else {
            "wake"
        };
        s.open_event();
        s.raw(br#"{"name":""#);
        s.escaped(name);
        s.raw(br#"","cat":"wake","ph":"s""#);
        s.flow_rest(flow, ts, from);
        s.open(task.key).flow = Some(flow);
    }

    /// Something happened to coroutine `id`: `panic`, `cancel` or `timeout` (an instant on
    /// its track).
    #[cold]
    pub(crate) fn trace_event(&self, name: &'static str, id: u64) {
        // `try_`: the panic hook calls this, and the panic may come from the tracer itself.
        let Some(tracer) = &self.tracer else { return };
        let Ok(mut s) = tracer.state.try_borrow_mut() else { return };
        if s.sink.is_none() {
            return;
        }
        let ts = s.ns(self.now());
        s.instant(name.as_bytes(), ts, id);
    }

    /// `task`'s coroutine finished.
    pub(super) fn trace_finish(&self, task: &Task) {
        let Some(mut s) = self.trace_state() else { return };
        let ts = s.ns(self.now());
        s.instant(b"finish", ts, task.id);
        s.finish_name(task.id);
        *s.open(task.key) = Open::default();
        // Freeing its stack may take a while.
        s.handoff = None;
    }

    /// Tells the trace what wakes coroutines from here on (no coroutine runs).
    #[inline]
    pub(super) fn trace_waking_from(&self, what: &'static str) {
        if let Some(t) = &self.tracer {
            t.waking_from(what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(ns: u64) -> String {
        let mut s = State {
            sink: None,
            buf: Vec::new(),
            start: None,
            open: Vec::new(),
            next_flow: 1,
            counters: None,
            handoff: None,
        };
        s.us(ns);
        String::from_utf8(s.buf).unwrap()
    }

    #[test]
    fn microseconds_are_written_as_a_float_would_print_them() {
        for ns in [0, 1, 10, 100, 999, 1000, 1001, 1010, 1100, 12_345_678, 5_000_000_000] {
            if ns < 1 << 53 {
                assert_eq!(us(ns), (ns as f64 / 1000.0).to_string(), "{ns} ns");
            }
        }
    }
}
