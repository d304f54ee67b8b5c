//! Where a trace's events go: the thread that streams them to the file, and the file a ring
//! of the last events is written to when `run` ends, with the track names it kept apart.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc;

use super::{EVENT_ROOM, FLUSH_AT};

/// The track names a ring keeps (see `Sink::Ring`). Bounded: live coroutines have a stack each,
/// and at most `keep` finished ones are remembered, as many as the ring can still name.
#[derive(Default)]
pub(super) struct Names {
    pub(super) live: BTreeMap<u64, Box<[u8]>>,
    pub(super) finished: VecDeque<Box<[u8]>>,
}

/// Writes the ring's events to `path` as a JSON array.
pub(super) fn write_ring(
    path: &std::path::Path,
    names: &Names,
    bytes: &VecDeque<u8>,
    lens: &VecDeque<usize>,
) -> io::Result<()> {
    let mut file = io::BufWriter::new(File::create(path)?);
    file.write_all(b"[\n")?;
    // Track names first (finished coroutines, then live ones by id), then the events.
    let mut first = true;
    for name in names.finished.iter().chain(names.live.values()) {
        if !std::mem::take(&mut first) {
            file.write_all(b",\n")?;
        }
        file.write_all(name)?;
    }
    let (mut a, mut b) = bytes.as_slices();
    for &len in lens.iter() {
        if !std::mem::take(&mut first) {
            file.write_all(b",\n")?;
        }
        // The event's bytes may wrap from the deque's first slice into its second.
        let here = len.min(a.len());
        file.write_all(&a[..here])?;
        file.write_all(&b[..len - here])?;
        a = &a[here..];
        b = &b[len - here..];
    }
    file.write_all(b"\n]\n")?;
    file.flush()
}

/// The thread that writes a streamed trace's full buffers to its file, so that the runtime's
/// thread pays for formatting events but not for the copy into the kernel. Buffers go round:
/// full ones to the thread (at most [`IN_FLIGHT`] queued; more waits), empty ones back.
pub(super) struct Writer {
    full: mpsc::SyncSender<Vec<u8>>,
    empty: mpsc::Receiver<Vec<u8>>,
    thread: std::thread::JoinHandle<io::Result<()>>,
}

/// Full buffers queued for the writer thread at most: what a trace holds in memory is bounded
/// by `(IN_FLIGHT + 2) * FLUSH_AT`.
const IN_FLIGHT: usize = 4;

impl Writer {
    pub(super) fn start(mut file: File) -> io::Result<Writer> {
        let (full, to_write) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (written, empty) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT + 1);
        let thread = std::thread::Builder::new().name("spindle-trace".into()).spawn(move || {
            for mut buf in to_write {
                // On an error the thread returns, which drops `written`: the runtime's next
                // hand-over sees it and stops tracing.
                file.write_all(&buf)?;
                buf.clear();
                let _ = written.try_send(buf);
            }
            file.write_all(b"\n]\n")?;
            file.flush()
        })?;
        Ok(Writer { full, empty, thread })
    }

    /// Hands `buf` over to be written and leaves an empty buffer in its place; false if the
    /// writer has failed.
    pub(super) fn write(&self, buf: &mut Vec<u8>) -> bool {
        let spare = match self.empty.try_recv() {
            Ok(spare) => spare,
            Err(mpsc::TryRecvError::Empty) => Vec::with_capacity(FLUSH_AT + EVENT_ROOM),
            Err(mpsc::TryRecvError::Disconnected) => return false,
        };
        self.full.send(std::mem::replace(buf, spare)).is_ok()
    }

    /// Writes `last` and the end of the array; waits for the thread to finish.
    pub(super) fn finish(self, last: Vec<u8>) -> io::Result<()> {
        let _ = self.full.send(last);
        drop(self.full);
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => Err(io::Error::other("the trace writer thread panicked")),
        }
    }
}
