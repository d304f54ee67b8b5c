//! Trace events as Chrome trace-event JSON, written by hand into a byte buffer (integers too:
//! `digits.rs`), off the runtime's thread: by the writer thread for a streamed trace, at the end
//! of `run` for a ring.

use super::digits::push_int;
use super::record::Record;
use super::timebase::Scale;
use super::SCHEDULER_TRACK;
use crate::wake::{Reason, Subject};

/// Events written so far, `,\n` between them (the file's `[` and `]` are not theirs).
pub(super) struct Json {
    pub(super) buf: Vec<u8>,
    /// No event is written yet: the next needs no `,\n` before it.
    first: bool,
}

impl Json {
    pub(super) fn new(capacity: usize) -> Json {
        Json { buf: Vec::with_capacity(capacity), first: true }
    }

    /// Writes `record`, its stamps turned into time by `scale`.
    pub(super) fn event(&mut self, record: &Record, scale: &Scale) {
        match *record {
            Record::Name { tid, ref name } => self.name(tid, name.as_deref()),
            Record::Run { since, to, tid } => {
                let (since, to) = (scale.ns(since), scale.ns(to));
                self.slice(|j| j.raw(b"run"), b"", since, to, tid);
            }
            Record::Wait { since, to, tid, reason } => {
                let (since, to) = (scale.ns(since), scale.ns(to));
                self.slice(|j| j.reason(reason), b"wait", since, to, tid);
            }
            Record::Woke { name, flow, at, tid } => {
                self.open();
                self.raw(br#"{"name":""#);
                self.escaped(name);
                self.raw(br#"","cat":"wake","ph":"s""#);
                self.flow_rest(flow, scale.ns(at), tid);
            }
            Record::Resumed { flow, at, tid } => {
                self.open();
                self.raw(br#"{"name":"wake","cat":"wake","ph":"f","bp":"e""#);
                self.flow_rest(flow, scale.ns(at), tid);
            }
            Record::Counters { at, runnable, live } => {
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
                self.open();
                self.raw(br#"{"name":""#);
                self.raw(name.as_bytes());
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
        if !std::mem::take(&mut self.first) {
            self.raw(b",\n");
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

    /// A slice (`ph` X) on track `tid` from `since` to `to` (ns); `cat` empty for none.
    #[inline(always)]
    fn slice(&mut self, name: impl FnOnce(&mut Self), cat: &[u8], since: u64, to: u64, tid: u64) {
        self.open();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn us(ns: u64) -> String {
        let mut json = Json::new(0);
        json.us(ns);
        String::from_utf8(json.buf).unwrap()
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
