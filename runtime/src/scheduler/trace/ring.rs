//! `trace_last(n, path)`: the last `n` events, kept as [`Record`]s and written as JSON when
//! `run` ends, with the names of the tracks they may be on.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use super::json::Json;
use super::record::Record;
use super::timebase::{Mark, Scale, Ticks};
use super::BATCH;

/// The last events of a `run`.
pub(super) struct Ring {
    events: VecDeque<Record>,
    keep: usize,
    /// Events pushed since `run` began, evicted ones too.
    pushed: u64,
    /// With TSC stamps: marks taken every [`BATCH`] events, each with the number of events
    /// pushed before it; the first is the last one taken before the oldest event kept.
    marks: VecDeque<(u64, Mark)>,
    /// Track names, kept apart so that the ring's turning does not lose them: of the live
    /// coroutines (and the scheduler), by id, and of the last `keep` that finished. Bounded:
    /// live coroutines have a stack each, and at most `keep` finished ones are remembered, as
    /// many as the ring can still name.
    live: BTreeMap<u64, Option<Box<str>>>,
    finished: VecDeque<(u64, Option<Box<str>>)>,
}

impl Ring {
    /// A ring of the last `keep` events, whose TSC stamps (if `ticks` says so) start at `mark`.
    pub(super) fn new(keep: usize, ticks: Ticks, mark: Mark) -> Ring {
        let marks = if ticks == Ticks::Tsc { VecDeque::from([(0, mark)]) } else { VecDeque::new() };
        let (live, finished) = (BTreeMap::new(), VecDeque::new());
        Ring { events: VecDeque::new(), keep: keep.max(1), pushed: 0, marks, live, finished }
    }

    /// Keeps `record`, forgetting the oldest event if the ring is full.
    #[inline]
    pub(super) fn push(&mut self, record: Record, start: Instant) {
        if self.events.len() == self.keep {
            self.events.pop_front();
        }
        self.events.push_back(record);
        self.pushed += 1;
        if !self.marks.is_empty() && self.pushed.is_multiple_of(BATCH as u64) {
            self.mark(start);
        }
    }

    /// Takes a mark; forgets the ones no event kept needs.
    #[cold]
    fn mark(&mut self, start: Instant) {
        self.marks.push_back((self.pushed, Mark::now(start)));
        let oldest = self.pushed - self.events.len() as u64;
        while self.marks.len() >= 2 && self.marks[1].0 <= oldest {
            self.marks.pop_front();
        }
    }

    /// Track `tid` is named `name`.
    pub(super) fn name(&mut self, tid: u64, name: Option<Box<str>>) {
        self.live.insert(tid, name);
    }

    /// Track `tid`'s coroutine finished: its name moves among the last finished.
    pub(super) fn finish(&mut self, tid: u64) {
        if let Some(name) = self.live.remove(&tid) {
            if self.finished.len() == self.keep {
                self.finished.pop_front();
            }
            self.finished.push_back((tid, name));
        }
    }

    /// Writes the track names (finished coroutines', then live ones' by id) and the events to
    /// `path` as a JSON array.
    pub(super) fn write(mut self, path: &Path, start: Instant) -> io::Result<()> {
        if !self.marks.is_empty() {
            self.marks.push_back((self.pushed, Mark::now(start)));
        }
        let mut file = io::BufWriter::new(File::create(path)?);
        file.write_all(super::json::HEADER)?;
        let mut json = Json::new(1 << 16);
        let live = self.live.iter().map(|(tid, name)| (*tid, name));
        for (tid, name) in self.finished.iter().map(|(tid, name)| (*tid, name)).chain(live) {
            json.name(tid, name.as_deref());
        }
        let oldest = self.pushed - self.events.len() as u64;
        let mut scale = None;
        for (at, record) in (oldest..).zip(&self.events) {
            // The stretch between the two marks around event `at`.
            while self.marks.len() >= 2 && self.marks[1].0 <= at {
                self.marks.pop_front();
                scale = None;
            }
            let scale =
                scale.get_or_insert_with(|| match (self.marks.front(), self.marks.get(1)) {
                    (Some(&(_, from)), Some(&(_, to))) => Scale::between(from, to),
                    _ => Scale::NANOS,
                });
            json.event(record, scale);
            if json.len() >= 1 << 16 {
                file.write_all(json.bytes())?;
                json.clear();
            }
        }
        file.write_all(json.bytes())?;
        file.write_all(b"\n]\n")?;
        file.flush()
    }
}
