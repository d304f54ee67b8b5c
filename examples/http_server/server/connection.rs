//! One connection's coroutine: read, answer every whole request in the buffer, write all the
//! answers at once, and again, until the client or the server closes.
//!
//! Pipelining falls out of the loop: a read that brought several requests is answered by one
//! `write` of all their responses, in order. The request being read when the buffer runs out
//! is moved to the front and the next read appends to it.
//!
//! Time limits: the head of each request must arrive within the read timeout of the moment
//! the server began waiting for it (an idle keep-alive connection and a client trickling a
//! head byte by byte are both dropped then); each read of a body and each write of responses
//! waits at most the same timeout. The loop only notes when each wait begins and ends
//! ([`Connection::waiting_since`]); the server's sweep (`timeouts.rs`) closes the connection
//! when a wait lasts too long, and the read or write here then fails.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use spindle::net::TcpStream;

use super::request::{self, Parsed, MAX_HEAD};
use super::response::{self, Status, CONTINUE};
use super::{Connection, Server};

/// Bytes read at a time. Twice [`MAX_HEAD`], so that a partial head moved to the front always
/// leaves room to read the rest of it.
const READ_BUFFER: usize = 2 * MAX_HEAD;

/// After the server decides to close, how long it goes on reading (and dropping) what the
/// client still sends, so that the client reads the last response before the connection goes
/// (closing with unread data sends a reset, which can destroy it); and how much at most.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

/// Serves `conn` until either side closes it, a request is malformed, or a timeout expires.
pub fn serve(server: &Server, conn: &Connection) {
    let stream = &conn.stream;
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; READ_BUFFER].into_boxed_slice();
    // The unanswered bytes are buf[start..end].
    let (mut start, mut end) = (0, 0);
    let mut out = Vec::with_capacity(4096);
    // The tick at which the server began waiting for the head now being read.
    let mut head_since = None;
    loop {
        let mut close = false;
        while start < end && !close {
            let request = match request::parse(&buf[start..end]) {
                Parsed::Partial => break,
                Parsed::Invalid(status) => {
                    let why: &[u8] = match status {
                        Status::HeaderFieldsTooLarge => b"request head too large\n",
                        Status::NotImplemented => b"only Content-Length bodies are read\n",
                        _ => b"malformed request\n",
                    };
                    response::write(&mut out, status, why, &server.date.get(), true, false);
                    close = true;
                    break;
                }
                Parsed::Request(request) => request,
            };
            head_since = None;
            start += request.head_len;
            // The body: what the buffer holds of it is skipped, the rest read and dropped.
            let in_buffer = request.body_len.min((end - start) as u64) as usize;
            start += in_buffer;
            let unread = request.body_len - in_buffer as u64;
            if unread > 0 {
                if request.expects_continue {
                    out.extend_from_slice(CONTINUE);
                }
                // Whatever was answered so far goes first, and the client needs the
                // `100 Continue` before it sends the rest.
                if flush(server, conn, &mut out).is_err() {
                    return;
                }
                match discard(server, conn, &mut buf, unread) {
                    Ok(after) => (start, end) = (0, after),
                    Err(_) => return,
                }
            }
            let reply = request.route.run();
            close = !request.keep_alive || server.stopping.get();
            let body = reply.body.as_bytes();
            response::write(
                &mut out,
                reply.status,
                body,
                &server.date.get(),
                close,
                request.head_only,
            );
        }
        if flush(server, conn, &mut out).is_err() {
            return;
        }
        if close || server.stopping.get() {
            linger(stream, &mut buf);
            return;
        }
        // Room for the next read: the partial request, if any, moves to the front.
        buf.copy_within(start..end, 0);
        (start, end) = (0, end - start);
        let since = *head_since.get_or_insert_with(|| server.timeouts.now());
        // With nothing of a request read yet the connection is idle: a stop closes it.
        conn.idle.set(end == 0);
        conn.waiting_since.set(Some(since));
        let read = (&conn.stream).read(&mut buf[end..]);
        conn.waiting_since.set(None);
        conn.idle.set(false);
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
    }
}

/// Writes all of `out` in one `write` (unless the socket takes less), then empties it; all of
/// it within the timeout.
fn flush(server: &Server, conn: &Connection, out: &mut Vec<u8>) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    conn.waiting_since.set(Some(server.timeouts.now()));
    let written = (&conn.stream).write_all(out);
    conn.waiting_since.set(None);
    out.clear();
    written
}

/// One read that waits no later than `deadline`, on a timer of its own (for [`linger`], which
/// the sweep does not watch).
fn read_until(mut stream: &TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left))?;
    stream.read(buf)
}

/// Reads and drops `len` bytes of body, each read waiting at most the timeout; returns how
/// many bytes past the body the last read brought (the next request's), now at the front of
/// `buf`.
fn discard(server: &Server, conn: &Connection, buf: &mut [u8], len: u64) -> io::Result<usize> {
    let mut left = len;
    loop {
        conn.waiting_since.set(Some(server.timeouts.now()));
        let read = (&conn.stream).read(buf);
        conn.waiting_since.set(None);
        let n = read?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if n as u64 >= left {
            let body_end = left as usize;
            buf.copy_within(body_end..n, 0);
            return Ok(n - body_end);
        }
        left -= n as u64;
    }
}

/// Closes from the server's side without losing the last response: sends FIN, then reads
/// and drops what the client still sends until it closes too (or [`LINGER`] passes).
fn linger(stream: &TcpStream, buf: &mut [u8]) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut dropped = 0;
    while dropped < LINGER_BYTES {
        match read_until(stream, buf, deadline) {
            Ok(0) | Err(_) => return,
            Ok(n) => dropped += n,
        }
    }
}
