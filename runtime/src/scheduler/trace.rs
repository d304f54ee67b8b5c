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
//! A switch records two or three events, so each costs what recording it costs. The runtime's
//! thread formats nothing: an event is a fixed-size [`Record`] (numbers, `&'static str`s, a
//! park reason) pushed into a reusable buffer, and a coroutine's open run, wait and flow live in
//! a `Vec` indexed by its slot in the table, so no event allocates or hashes (a track's name,
//! written once at spawn, carries an owned copy of the coroutine's name). A switch reads the
//! clock once: a run that follows the previous one with nothing in between but the scheduler's
//! pick starts at the instant the previous one ended; and under real time on x86_64 the reading
//! is the TSC, not `Instant::now()` (see `timebase.rs`). A streamed trace hands each batch of
//! [`BATCH`] records to a thread of its own (`spindle-trace`) that formats them as JSON (by
//! hand, integers too) and writes them to the file; at most a few batches are in flight, and the
//! runtime waits for the thread when it falls behind (a loop that does nothing but switch makes
//! events faster than one thread formats and the kernel takes them, and so runs at their pace).
//! A ring keeps its records and formats them when `run` ends.
//!
//! Off by default at no cost: like the counters, the hooks sit on the drive loop's checked
//! path; `cargo bench --bench core` measures the cost per switch with a trace on.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use super::Core;
use crate::task::Task;
use output::Writer;
use record::Record;
use ring::Ring;
use timebase::{nanos_since, Mark, Scale, Ticks};

mod digits;
mod json;
mod output;
mod record;
mod ring;
mod timebase;

/// Where the trace goes, as the builder was told.
#[derive(Clone, Debug)]
pub(crate) struct TraceConfig {
    pub path: PathBuf,
    /// Keep only the last this many events (written when `run` ends); `None` streams all.
    pub last: Option<usize>,
}

/// Track of the scheduler: the origin of wakes that no coroutine made.
const SCHEDULER_TRACK: u64 = u64::MAX;

/// A streamed trace hands its events to the writer thread this many at a time (a power of
/// two: a ring takes a TSC mark every this many events).
const BATCH: usize = 2048;

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
    /// What the stamps of this run count.
    ticks: Ticks,
    /// When `run` began, on the runtime's clock.
    start: Instant,
    /// With TSC stamps, the last stamp taken (a stamp is never earlier than the one before),
    /// and the mark the events not yet handed on are placed after.
    last_tsc: u64,
    mark: Mark,
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
    /// Start of its current run (a stamp).
    run_since: Option<u64>,
    /// Start of its current wait (a stamp), and its park reason (`None`: waiting in the run
    /// queue).
    wait_since: Option<(u64, Option<crate::wake::Reason>)>,
    /// A flow to end at its next run.
    flow: Option<u64>,
}

enum Sink {
    /// Events go to the writer thread a batch at a time.
    Stream { writer: Writer, records: Vec<Record> },
    /// The last events, written when `run` ends.
    Ring(Ring),
}

impl Tracer {
    pub(crate) fn new(config: TraceConfig) -> Tracer {
        let now = Instant::now();
        Tracer {
            config,
            state: RefCell::new(State {
                sink: None,
                ticks: Ticks::Nanos,
                start: now,
                last_tsc: 0,
                mark: Mark { tsc: 0, ns: 0 },
                open: Vec::new(),
                next_flow: 1,
                counters: None,
                handoff: None,
            }),
            waking_from: Cell::new("scheduler"),
        }
    }

    /// Opens the file for a `run` starting at `now` on a clock that is virtual or not.
    pub(crate) fn begin(&self, now: Instant, virtual_time: bool) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        s.ticks = Ticks::for_clock(virtual_time);
        s.start = now;
        s.mark = Mark::now(now);
        s.last_tsc = s.mark.tsc;
        s.open.clear();
        s.counters = None;
        s.handoff = None;
        s.sink = Some(match self.config.last {
            Some(keep) => Sink::Ring(Ring::new(keep, s.ticks, s.mark)),
            None => {
                let mut file = File::create(&self.config.path)?;
                file.write_all(json::HEADER)?;
                Sink::Stream { writer: Writer::start(file)?, records: Vec::with_capacity(BATCH) }
            }
        });
        s.name(SCHEDULER_TRACK, None);
        Ok(())
    }

    /// Closes the file at the end of a `run`.
    pub(crate) fn end(&self) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        let scale = s.scale();
        match s.sink.take() {
            Some(Sink::Ring(ring)) => ring.write(&self.config.path, s.start),
            Some(Sink::Stream { writer, records }) => writer.finish(records, scale),
            None => Ok(()),
        }
    }

    /// Sets what wakes coroutines when none runs, until set again.
    pub(crate) fn waking_from(&self, what: &'static str) {
        self.waking_from.set(what);
        // The scheduler polls, fires timers or applies remote wakes: time passes.
        self.state.borrow_mut().handoff = None;
    }
}

impl State {
    /// A stamp of now: `now` is the runtime's clock.
    #[inline(always)]
    fn stamp(&mut self, now: impl FnOnce() -> Instant) -> u64 {
        match self.ticks {
            Ticks::Tsc => {
                let t = timebase::tsc().max(self.last_tsc);
                self.last_tsc = t;
                t
            }
            Ticks::Nanos => nanos_since(self.start, now()),
        }
    }

    /// How to turn the stamps of the events not yet handed on into time; takes a mark.
    fn scale(&mut self) -> Scale {
        match self.ticks {
            Ticks::Nanos => Scale::NANOS,
            Ticks::Tsc => {
                let mark = Mark::now(self.start);
                let mark = Mark { tsc: mark.tsc.max(self.last_tsc), ..mark };
                let scale = Scale::between(self.mark, mark);
                (self.mark, self.last_tsc) = (mark, mark.tsc);
                scale
            }
        }
    }

    /// The open slices of the coroutine in slot `key`.
    #[inline]
    fn open(&mut self, key: usize) -> &mut Open {
        if key >= self.open.len() {
            self.open.resize(key + 1, Open::default());
        }
        &mut self.open[key]
    }

    /// Records an event: into the batch, handed on when full, or into the ring. Inlined, so
    /// that the record is built where it is stored.
    #[inline(always)]
    fn push(&mut self, record: Record) {
        match &mut self.sink {
            Some(Sink::Stream { records, .. }) => {
                records.push(record);
                if records.len() >= BATCH {
                    self.hand_on();
                }
            }
            Some(Sink::Ring(ring)) => ring.push(record, self.start),
            None => {}
        }
    }

    /// Hands the full batch to the writer thread.
    #[cold]
    fn hand_on(&mut self) {
        let scale = self.scale();
        let Some(Sink::Stream { writer, records }) = &mut self.sink else { return };
        if !writer.write(records, scale) {
            // A failed write ends the trace, not the program (`end` reports it).
            if let Some(Sink::Stream { writer, .. }) = self.sink.take() {
                let _ = writer.finish(Vec::new(), Scale::NANOS);
            }
        }
    }

    /// Track `tid` is named `name` (`#tid name`; the scheduler's is its own).
    fn name(&mut self, tid: u64, name: Option<Box<str>>) {
        match &mut self.sink {
            Some(Sink::Ring(ring)) => ring.name(tid, name),
            _ => self.push(Record::Name { tid, name }),
        }
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
        let at = s.stamp(|| self.now());
        s.name(id, name.map(Box::from));
        s.push(Record::Instant { name: "spawn", at, tid: id });
        *s.open(key) = Open { wait_since: Some((at, None)), ..Open::default() };
    }

    /// A coroutine is about to run.
    #[cold]
    pub(super) fn trace_resume(&self, task: &Task) {
        let Some(mut s) = self.trace_state() else { return };
        let at = match s.handoff.take() {
            Some(at) => at,
            None => s.stamp(|| self.now()),
        };
        let tid = task.id;
        let open = s.open(task.key);
        open.run_since = Some(at);
        let (wait, flow) = (open.wait_since.take(), open.flow.take());
        if let Some((since, reason)) = wait {
            s.push(Record::Wait { since, to: at, tid, reason });
        }
        if let Some(flow) = flow {
            s.push(Record::Resumed { flow, at, tid });
        }
        let counters = (self.tasks.queued(), self.tasks.len());
        if s.counters != Some(counters) {
            s.counters = Some(counters);
            let (runnable, live) = (counters.0 as u64, counters.1 as u64);
            s.push(Record::Counters { at, runnable, live });
        }
    }

    /// A coroutine gave the thread back; `parked` if it waits now.
    #[cold]
    pub(super) fn trace_suspend(&self, task: &Task, parked: bool) {
        let Some(mut s) = self.trace_state() else { return };
        let at = s.stamp(|| self.now());
        s.handoff = Some(at);
        let open = s.open(task.key);
        let run_since = open.run_since.take();
        open.wait_since = Some((at, parked.then(|| task.reason())));
        if let Some(since) = run_since {
            s.push(Record::Run { since, to: at, tid: task.id });
        }
    }

    /// `task`'s park was ended: an arrow from who woke it.
    #[cold]
    pub(super) fn trace_wake(&self, task: &Task) {
        let Some(mut s) = self.trace_state() else { return };
        let at = s.stamp(|| self.now());
        let tid = self.current_id().unwrap_or(SCHEDULER_TRACK);
        let flow = s.next_flow;
        s.next_flow += 1;
        let name = if tid == SCHEDULER_TRACK {
            self.tracer.as_ref().map_or("scheduler", |t| t.waking_from.get())
        } else {
            "wake"
        };
        s.push(Record::Woke { name, flow, at, tid });
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
        let at = s.stamp(|| self.now());
        s.push(Record::Instant { name, at, tid: id });
    }

    /// `task`'s coroutine finished.
    pub(super) fn trace_finish(&self, task: &Task) {
        let Some(mut s) = self.trace_state() else { return };
        let at = s.stamp(|| self.now());
        s.push(Record::Instant { name: "finish", at, tid: task.id });
        if let Some(Sink::Ring(ring)) = &mut s.sink {
            ring.finish(task.id);
        }
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
