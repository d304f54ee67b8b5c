//! The thread that writes a streamed trace (`spindle-trace`): the runtime's thread hands it
//! batches of [`Record`]s, and it formats them as JSON and writes them to the file, so that the
//! runtime's thread pays neither for formatting nor for the copy into the kernel.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc;

use super::json::Json;
use super::record::Record;
use super::timebase::Scale;
use super::BATCH;

/// A full batch of events, and how to turn their stamps into time.
struct Batch {
    records: Vec<Record>,
    scale: Scale,
}

/// The runtime's end of the writer thread. Batches go round: full ones to the thread (at most
/// [`IN_FLIGHT`] queued; more waits), emptied ones back.
pub(super) struct Writer {
    full: mpsc::SyncSender<Batch>,
    empty: mpsc::Receiver<Vec<Record>>,
    thread: std::thread::JoinHandle<io::Result<()>>,
}

/// Full batches queued for the writer thread at most: what a streamed trace holds in memory is
/// bounded by `IN_FLIGHT + 2` batches of [`BATCH`] records and the JSON of one.
const IN_FLIGHT: usize = 4;

impl Writer {
    /// Starts the thread, which writes to `file` (the array's `[` is written already).
    pub(super) fn start(mut file: File) -> io::Result<Writer> {
        let (full, to_write) = mpsc::sync_channel::<Batch>(IN_FLIGHT);
        let (written, empty) = mpsc::sync_channel::<Vec<Record>>(IN_FLIGHT + 1);
        let thread = std::thread::Builder::new().name("spindle-trace".into()).spawn(move || {
            // A record's JSON takes about 80 bytes.
            let mut json = Json::new(BATCH * 128);
            for Batch { mut records, scale } in to_write {
                for record in &records {
                    json.event(record, &scale);
                }
                // On an error the thread returns, which drops `written` and `to_write`: the
                // runtime's next hand-over sees it and stops tracing.
                file.write_all(json.bytes())?;
                json.clear();
                records.clear();
                let _ = written.try_send(records);
            }
            file.write_all(b"\n]\n")?;
            file.flush()
        })?;
        Ok(Writer { full, empty, thread })
    }

    /// Hands `records`, whose stamps `scale` turns into time, over to be written and leaves an
    /// empty batch in its place; false if the writer has failed.
    pub(super) fn write(&self, records: &mut Vec<Record>, scale: Scale) -> bool {
        let spare = match self.empty.try_recv() {
            Ok(spare) => spare,
            Err(mpsc::TryRecvError::Empty) => Vec::with_capacity(BATCH),
            Err(mpsc::TryRecvError::Disconnected) => return false,
        };
        let records = std::mem::replace(records, spare);
        self.full.send(Batch { records, scale }).is_ok()
    }

    /// Writes the `last` records and the end of the array; waits for the thread to finish.
    pub(super) fn finish(self, last: Vec<Record>, scale: Scale) -> io::Result<()> {
        let _ = self.full.send(Batch { records: last, scale });
        drop(self.full);
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => Err(io::Error::other("the trace writer thread panicked")),
        }
    }
}
