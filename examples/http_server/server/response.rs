//! Writing responses: the status line, the headers every response carries, and the cached
//! `Date` header.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The statuses this server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    /// The request head is over [`super::request::MAX_HEAD`] bytes or has too many headers.
    HeaderFieldsTooLarge,
    /// A `Transfer-Encoding` this server does not read (it reads `Content-Length` bodies only).
    NotImplemented,
}

impl Status {
    fn line(self) -> &'static [u8] {
        match self {
            Status::Ok => b"HTTP/1.1 200 OK\r\n",
            Status::BadRequest => b"HTTP/1.1 400 Bad Request\r\n",
            Status::NotFound => b"HTTP/1.1 404 Not Found\r\n",
            Status::HeaderFieldsTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            Status::NotImplemented => b"HTTP/1.1 501 Not Implemented\r\n",
        }
    }
}

/// The interim response a client that sent `Expect: 100-continue` waits for before its body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends a whole response to `out`: status line, `Server`, `Content-Type`, `Content-Length`,
/// `Date`, `Connection: close` if `close`, then `body` unless `head_only` (a `HEAD` request).
pub fn write(
    out: &mut Vec<u8>,
    status: Status,
    body: &[u8],
    date: &[u8; DATE_LEN],
    close: bool,
    head_only: bool,
) {
    out.extend_from_slice(status.line());
    out.extend_from_slice(b"Server: spindle\r\nContent-Type: text/plain\r\nContent-Length: ");
    push_decimal(out, body.len() as u64);
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date);
    if close {
        out.extend_from_slice(b"\r\nConnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// Appends `n` in decimal, without the formatting machinery.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) is always 29 bytes.
pub const DATE_LEN: usize = 29;

/// The `Date` header's value, formatted once a second by [`keep_fresh`] rather than once a
/// request.
pub struct Date {
    /// The current value; replaced whole by `refresh`.
    value: Cell<[u8; DATE_LEN]>,
}

impl Date {
    /// A date set to now.
    pub fn new() -> Date {
        let date = Date { value: Cell::new([b' '; DATE_LEN]) };
        date.refresh();
        date
    }

    /// The value to send.
    pub fn get(&self) -> [u8; DATE_LEN] {
        self.value.get()
    }

    /// Formats the time now (by `httpdate`, which hyper and may_minihttp use too).
    pub fn refresh(&self) {
        let text = httpdate::fmt_http_date(SystemTime::now());
        if let Ok(value) = <[u8; DATE_LEN]>::try_from(text.as_bytes()) {
            self.value.set(value);
        }
    }
}

/// Refreshes `date` at every whole second, for ever (run it in a daemon coroutine).
pub fn keep_fresh(date: Rc<Date>) {
    loop {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let to_next_second =
            Duration::from_secs(1) - Duration::from_nanos(since_epoch.subsec_nanos().into());
        spindle::sleep(to_next_second);
        date.refresh();
    }
}
