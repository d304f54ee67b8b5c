//! Reading a request head with `httparse`, and what the connection loop needs from it.

use std::mem::MaybeUninit;

use super::response::Status;
use super::routes::Route;

/// The longest request head (request line and headers, up to the blank line) accepted; a
/// longer one gets `431 Request Header Fields Too Large` and the connection closes.
pub const MAX_HEAD: usize = 8 << 10;

/// Headers parsed per request at most; more is answered like a head too long (431).
const MAX_HEADERS: usize = 64;

/// What the front of the buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request head.
    Request(Request),
    /// The start of one: read more (it is under [`MAX_HEAD`] so far).
    Partial,
    /// Not HTTP this server will read: answer with this status and close.
    Invalid(Status),
}

/// A parsed request head, owning nothing of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// Bytes of the head, the blank line included: the body (or the next request) starts here.
    pub head_len: usize,
    pub route: Route,
    /// `HEAD`: answer with the headers alone.
    pub head_only: bool,
    /// Whether the client keeps the connection: HTTP/1.1 unless `Connection: close`, HTTP/1.0
    /// only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The `Content-Length` of the body that follows the head, read and discarded; 0 if none.
    pub body_len: u64,
    /// `Expect: 100-continue`: the client waits for `100 Continue` before sending its body.
    pub expects_continue: bool,
}

/// Parses the request head at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parsed {
    // Left uninitialised: httparse writes the ones it fills in (a wrk request has one), so
    // zeroing all 64 (2 KiB) on every request would be work for nothing.
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(bytes, &mut headers) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Invalid(Status::HeaderFieldsTooLarge)
        }
        Ok(httparse::Status::Partial) if bytes.len() < MAX_HEAD => return Parsed::Partial,
        Ok(httparse::Status::Partial) => return Parsed::Invalid(Status::HeaderFieldsTooLarge),
        Err(_) => return Parsed::Invalid(Status::BadRequest),
    };
    // A complete parse fills these in.
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Parsed::Invalid(Status::BadRequest);
    };
    let mut keep_alive = version == 1;
    let mut body_len = None;
    let mut expects_continue = false;
    let mut has_host = false;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            // Two different lengths are how requests get smuggled past proxies: refuse them.
            match (content_length(header.value), body_len) {
                (Some(n), None) => body_len = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Parsed::Invalid(Status::BadRequest),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Invalid(Status::NotImplemented);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expects_continue = header.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("host") {
            has_host = true;
        }
    }
    // RFC 9112, 3.2: a server must answer an HTTP/1.1 request without Host with 400.
    if version == 1 && !has_host {
        return Parsed::Invalid(Status::BadRequest);
    }
    Parsed::Request(Request {
        head_len,
        route: Route::of(target),
        head_only: method == "HEAD",
        keep_alive,
        body_len: body_len.unwrap_or(0),
        expects_continue,
    })
}

/// A `Content-Length` value: one or more ASCII digits that fit a u64.
fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
