//! Trace events as Chrome trace-event JSON, written by hand into a byte buffer (integers too:
//! `digits.rs`), off the runtime's thread: by the writer thread for a streamed trace, at the end
//! of `run` for a ring.
//!
//! The buffer is a zeroed `Vec` that only grows, written through a cursor: each event first
//! makes room for its longest possible text, and then every piece is a copy into the slice at
//! the cursor, with no capacity check of its own (a `Vec::extend_from_slice` per piece was
//! about a fifth of the writer thread's instructions).

use super::digits::write_int;
use super::record::Record;
use super::timebase::Scale;
use super::SCHEDULER_TRACK;
use crate::wake::{Reason, Subject};

/// The start of every trace file: the array's `[` and a first event, which names the process
/// (`spindle`), so that every event written after it begins with the `,\n` between two.
pub(super) const HEADER: &[u8] =
    b"[\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"args\":{\"name\":\"spindle\"}}";

/// Events written so far, each after a `,\n` (the file's [`HEADER`] and `]` are not theirs).
pub(super) struct Json {
    /// Zeroed bytes; the first `len` are the events.
    buf: Vec<u8>,
    len: usize,
}

/// The most an event takes apart from its strings: its fixed text (under 100 bytes) and at
/// most five numbers of at most 24 bytes each (`18446744073709551.615`).
const FIXED: usize = 256;

/// An escaped string takes at most this many bytes per byte of it (`\u001f`).
const ESCAPED: usize = 6;

impl Json {
    pub(super) fn new(capacity: usize) -> Json {
        Json { buf: vec![0; capacity.max(FIXED)], len: 0 }
    }

    /// The events written since the last `clear`.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Forgets the events written (once they are in the file).
    pub(super) fn clear(&mut self) {
        self.len = 0;
    }

    /// Makes room for `bytes` more.
    #[inline(always)]
    fn room(&mut self, bytes: usize) {
        if self.buf.len() - self.len < bytes {
            self.grow(bytes);
        }
    }

    #[cold]
    fn grow(&mut self, bytes: usize) {
        let want = self.len.saturating_add(bytes).max(self.buf.len().saturating_mul(2));
        self.buf.resize(want, 0);
    }

    /// Writes `record`, its stamps turned into time by `scale`.
    pub(super) fn event(&mut self, record: &Record, scale: &Scale) {
        match *record {
            Record::Name { tid, ref name } => self.name(tid, name.as_deref()),
            Record::Run { since, to, tid } => {
                self.room(FIXED);
                let (since, to) = (scale.ns(since), scale.ns(to));
                self.run(since, to, tid);
            }
            Record::Wait { since, to, tid, reason } => {
                self.room(FIXED + reason_len(reason));
                let (since, to) = (scale.ns(since), scale.ns(to));
                self.wait(reason, since, to, tid);
            }
            Record::Woke { name, flow, at, tid } => {
                self.room(FIXED + ESCAPED * name.len());
                self.open();
                self.raw(br#"{"name":""#);
                self.escaped(name);
                self.raw(br#"","cat":"wake","ph":"s""#);
                self.flow_rest(flow, scale.ns(at), tid);
            }
            Record::Resumed { flow, at, tid } => {
                self.room(FIXED);
                self.open();
                self.raw(br#"{"name":"wake","cat":"wake","ph":"f","bp":"e""#);
                self.flow_rest(flow, scale.ns(at), tid);
            }
            Record::Counters { at, runnable, live } => {
                self.room(FIXED);
                self.open();
                self.raw(br#"{"name":"coroutines","ph":"C","ts":"#);
                self.us(scale.ns(at));
                self.raw(br#","pid":1,"args":{"runnable":"#);
                self.int(runnable);
                self.raw(br#","live":"#);
                self.int(live);
                self.raw(b"}}");
            }
            Record::Instant { name, at, tid } => {
                self.room(FIXED + ESCAPED * name.len());
                self.open();
                self.raw(br#"{"name":""#);
                self.escaped(name);
                self.raw(br#"","ph":"i","s":"t","ts":"#);
                self.us(scale.ns(at));
                self.raw(br#","pid":1,"tid":"#);
                self.int(tid);
                self.raw(b"}");
            }
        }
    }

    /// The name of track `tid` (a metadata event): `#tid name`, or the scheduler's.
    pub(super) fn name(&mut self, tid: u64, name: Option<&str>) {
        self.room(FIXED + ESCAPED * name.map_or(0, str::len));
        self.open();
        self.raw(br#"{"name":"thread_name","ph":"M","pid":1,"tid":"#);
        self.int(tid);
        if tid == SCHEDULER_TRACK {
            return self.raw(br#","args":{"name":"scheduler"}}"#);
        }
        self.raw(br##","args":{"name":"#"##);
        self.int(tid);
        if let Some(name) = name {
            self.raw(b" ");
            self.escaped(name);
        }
        self.raw(br#""}}"#);
    }

    /// Starts an event.
    #[inline(always)]
    fn open(&mut self) {
        self.raw(b",\n");
    }

    /// Copies `bytes` in; the event made room for them.
    #[inline(always)]
    fn raw(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }

    #[inline(always)]
    fn byte(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }

    /// `n` in decimal.
    #[inline(always)]
    fn int(&mut self, n: u64) {
        self.len += write_int(&mut self.buf[self.len..], n);
    }

    /// `ns` nanoseconds as microseconds: `12`, `12.5`, `12.345`.
    #[inline(always)]
    fn us(&mut self, ns: u64) {
        self.int(ns / 1000);
        // All four bytes are stored (there is room), and the cursor moves past those kept.
        let (digits, len) = FRACTIONS[(ns % 1000) as usize];
        self.buf[self.len..self.len + 4].copy_from_slice(&digits);
        self.len += usize::from(len);
    }

    /// `s` as the body of a JSON string.
    fn escaped(&mut self, s: &str) {
        if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            return self.raw(s.as_bytes());
        }
        for b in s.bytes() {
            match b {
                b'"' => self.raw(b"\\\""),
                b'\\' => self.raw(b"\\\\"),
                b if b < 0x20 => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.raw(b"\\u00");
                    self.byte(HEX[usize::from(b >> 4)]);
                    self.byte(HEX[usize::from(b & 0xf)]);
                }
                b => self.byte(b),
            }
        }
    }

    /// A park reason as the trace names it: what, and which object (`Mutex#3`, `fd 12`,
    /// `#5`): objects are named by per-runtime numbers, never by addresses, which would differ
    /// from run to run.
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

    /// A run (`ph` X, named `run`) on track `tid` from `since` to `to` (ns).
    #[inline(always)]
    fn run(&mut self, since: u64, to: u64, tid: u64) {
        self.raw(b",\n{\"name\":\"run\",\"ph\":\"X\",\"ts\":");
        self.slice_rest(since, to, tid);
    }

    /// A wait (`ph` X, `cat` wait) named by `reason` on track `tid` from `since` to `to` (ns).
    #[inline(always)]
    fn wait(&mut self, reason: Option<Reason>, since: u64, to: u64, tid: u64) {
        self.raw(b",\n{\"name\":\"");
        self.reason(reason);
        self.raw(br#"","cat":"wait","ph":"X","ts":"#);
        self.slice_rest(since, to, tid);
    }

    /// A slice's time, length and track, and its end.
    #[inline(always)]
    fn slice_rest(&mut self, since: u64, to: u64, tid: u64) {
        self.us(since);
        self.raw(br#","dur":"#);
        self.us(to.saturating_sub(since));
        self.raw(br#","pid":1,"tid":"#);
        self.int(tid);
        self.raw(b"}");
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
    }
}

/// The fraction of a microsecond, by nanoseconds 0 to 999, as a float prints it: nothing for 0,
/// then `.5`, `.25`, `.125`: the bytes and how many of them to keep.
const FRACTIONS: [([u8; 4], u8); 1000] = {
    let mut table = [([0u8; 4], 0u8); 1000];
    let mut ns = 1;
    while ns < 1000 {
        let digits =
            [b'.', b'0' + (ns / 100) as u8, b'0' + (ns / 10 % 10) as u8, b'0' + (ns % 10) as u8];
        let len = if ns % 10 != 0 {
            4
        } else if ns % 100 != 0 {
            3
        } else {
            2
        };
        table[ns] = (digits, len);
        ns += 1;
    }
    table
};

/// The most bytes `Json::reason` writes for `reason`, beyond [`FIXED`].
fn reason_len(reason: Option<Reason>) -> usize {
    let Some(reason) = reason else { return 0 };
    let on = match reason.on {
        Some(Subject::Object { name, .. }) => ESCAPED * name.len(),
        _ => 0,
    };
    ESCAPED * reason.what.len() + on
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(ns: u64) -> String {
        let mut json = Json::new(0);
        json.us(ns);
        String::from_utf8(json.bytes().to_vec()).unwrap()
    }

    #[test]
    fn an_event_with_long_strings_makes_room_for_itself() {
        let mut json = Json::new(0);
        let long: &'static str = Box::leak("\u{1}\"".repeat(300).into_boxed_str());
        let record = Record::Instant { name: long, at: 1, tid: 2 };
        json.event(&record, &Scale::NANOS);
        json.name(3, Some(long));
        let text = String::from_utf8(json.bytes().to_vec()).unwrap();
        let escaped = "\\u0001\\\"".repeat(300);
        assert!(text.starts_with(&format!(",\n{}", r#"{"name":""#)), "{text}");
        assert!(text.contains(&format!(r#"{{"name":"{escaped}","ph":"i""#)), "{text}");
        assert!(text.ends_with(&format!(r##""args":{{"name":"#3 {escaped}"}}}}"##)), "{text}");
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
