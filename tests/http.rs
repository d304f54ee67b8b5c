//! The HTTP example server (`examples/http_server`), driven over loopback by real clients:
//! the binary `cargo test` built, started per test with a port of its own.

#[allow(dead_code)] // only raise_fd_limit is needed here
#[path = "net_util/fd_limit.rs"]
mod fd_limit;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use fd_limit::raise_fd_limit;

/// A running `http_server` child, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<ChildStdout>,
    /// The server's messages, for the tests that read them (`start_reading_stderr`).
    stderr: Option<ChildStderr>,
}

impl Server {
    /// Starts the example on 127.0.0.1:0 with `args` and waits for the address it prints.
    fn start(args: &[&str]) -> Server {
        Server::start_with_stderr(args, Stdio::null())
    }

    /// [`Server::start`], keeping the server's stderr to read.
    fn start_reading_stderr(args: &[&str]) -> Server {
        Server::start_with_stderr(args, Stdio::piped())
    }

    fn start_with_stderr(args: &[&str], stderr: Stdio) -> Server {
        // target/<profile>/deps/http-<hash> -> target/<profile>/examples/http_server
        let mut path: PathBuf = std::env::current_exe().unwrap();
        path.pop();
        path.pop();
        path.push("examples/http_server");
        assert!(path.exists(), "{} is not built; run through `cargo test`", path.display());
        let mut child = Command::new(path)
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .strip_prefix("http_server listening on ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("the server said {line:?}"));
        Server { child, addr, stdout, stderr }
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Sends the server `signal`.
    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions; `pid` is our own live child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits (at most 5 s, polling) until connections are refused: every listener closed.
    fn wait_until_refused(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(self.addr).is_ok() {
            assert!(Instant::now() < deadline, "a listener is still open 5 s after the signal");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (at most 5 s) for the server to exit; returns its status and what it printed on
    /// stdout after the line that named its address.
    fn wait_for_exit(&mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        (status, rest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One response as the client read it.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A blocking client connection that reads responses one at a time.
struct Client {
    stream: TcpStream,
    /// Bytes read and not yet taken as a response.
    pending: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client { stream, pending: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn get(&mut self, target: &str) -> Response {
        self.send(format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.response()
    }

    /// One read; its bytes join the pending ones. Returns how many it brought.
    fn read_more(&mut self) -> usize {
        let mut buf = [0u8; 64 << 10];
        let n = self.stream.read(&mut buf).expect("read a response");
        self.pending.extend_from_slice(&buf[..n]);
        n
    }

    /// The next whole response: from the pending bytes if they hold one, else read for it.
    fn response(&mut self) -> Response {
        loop {
            if let Some(response) = self.take_response() {
                return response;
            }
            assert!(self.read_more() > 0, "EOF before a whole response: {:?}", self.pending);
        }
    }

    /// A whole response from the pending bytes, if they hold one.
    fn take_response(&mut self) -> Option<Response> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(&self.pending).expect("a well-formed response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => return None,
        };
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
            .collect();
        let status = parsed.code.unwrap();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        if self.pending.len() < head_len + len {
            return None;
        }
        let body = String::from_utf8_lossy(&self.pending[head_len..head_len + len]).into_owned();
        self.pending.drain(..head_len + len);
        Some(Response { status, headers, body })
    }

    /// True if the server closed the connection (EOF or reset) within `within`.
    fn closed_within(&mut self, within: Duration) -> bool {
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

#[test]
fn hello_world_has_the_techempower_headers_and_the_connection_stays_open() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    for _ in 0..3 {
        let r = client.get("/");
        assert_eq!((r.status, r.body.as_str()), (200, "Hello, World!"), "{r:?}");
        assert_eq!(r.header("content-length"), Some("13"));
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.header("server"), Some("spindle"));
        let date = r.header("date").expect("a Date header");
        let parsed = httpdate::parse_http_date(date).expect("an HTTP date");
        let off =
            parsed.duration_since(std::time::SystemTime::now()).unwrap_or_else(|e| e.duration());
        assert!(off < Duration::from_secs(3), "Date {date} is off by {off:?}");
        assert_eq!(r.header("connection"), None, "HTTP/1.1 keeps the connection");
    }
    assert!(!client.closed_within(Duration::from_millis(100)), "the connection stays open");
}

#[test]
fn the_routes_work_sleep_and_say_what_is_wrong() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let r = client.get("/work?us=50");
    assert_eq!((r.status, r.body.as_str()), (200, "worked 50 us\n"));
    let started = Instant::now();
    let r = client.get("/sleep?ms=30");
    assert_eq!((r.status, r.body.as_str()), (200, "slept 30 ms\n"));
    assert!(started.elapsed() >= Duration::from_millis(30));
    // Capped at 0.1 s of work.
    let r = client.get("/work?us=999999999");
    assert_eq!(r.body, "worked 100000 us\n");
    let r = client.get("/work?us=lots");
    assert_eq!(r.status, 400, "{r:?}");
    let r = client.get("/nowhere");
    assert_eq!(r.status, 404);
    client.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    // A HEAD response has the GET's Content-Length but no body: read the head alone.
    while !client.pending.windows(4).any(|w| w == b"\r\n\r\n") {
        client.read_more();
    }
    let head = String::from_utf8(std::mem::take(&mut client.pending)).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"), "{head:?}");
    assert!(head.contains("Content-Length: 13\r\n"), "{head:?}");
    // Still good for another request, which a stray body would have broken.
    assert_eq!(client.get("/").status, 200);
}

#[test]
fn sixteen_pipelined_requests_are_answered_in_order_in_one_write() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    // The last request sleeps: had the server written each answer as it was ready, the first
    // fifteen would arrive 50 ms before the last, and the first read would return them alone.
    let mut requests = String::new();
    for i in 1..=15 {
        requests += &format!("GET /work?us={i} HTTP/1.1\r\nHost: test\r\n\r\n");
    }
    requests += "GET /sleep?ms=50 HTTP/1.1\r\nHost: test\r\n\r\n";
    client.send(requests.as_bytes());
    let first_read = client.read_more();
    let mut bodies = Vec::new();
    while let Some(r) = client.take_response() {
        bodies.push(r.body);
    }
    assert_eq!(bodies.len(), 16, "the first read ({first_read} bytes) brought all 16 answers");
    let expected: Vec<String> =
        (1..=15).map(|i| format!("worked {i} us\n")).chain(["slept 50 ms\n".to_string()]).collect();
    assert_eq!(bodies, expected);
    assert_eq!(client.get("/").status, 200, "the connection is still usable");
}

#[test]
fn content_length_bodies_are_read_and_discarded() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    // A small body, in the same write as the next request.
    client.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhelloGET /work?us=1 HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(client.response().body, "Hello, World!");
    assert_eq!(client.response().body, "worked 1 us\n");
    // A body far larger than the read buffer, in pieces, then a pipelined request.
    let body = vec![b'x'; 300_000];
    client.send(
        format!("PUT /work?us=2 HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n", body.len())
            .as_bytes(),
    );
    for piece in body.chunks(70_000) {
        client.send(piece);
        std::thread::sleep(Duration::from_millis(5));
    }
    client.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(client.response().body, "worked 2 us\n");
    assert_eq!(client.response().body, "Hello, World!");
    // `Expect: 100-continue` gets its interim answer before the body is sent.
    client.send(
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    while !client.pending.windows(4).any(|w| w == b"\r\n\r\n") {
        client.read_more();
    }
    assert_eq!(std::mem::take(&mut client.pending), b"HTTP/1.1 100 Continue\r\n\r\n");
    client.send(b"abcd");
    assert_eq!(client.response().body, "Hello, World!");
}

#[test]
fn a_malformed_request_gets_400_and_the_connection_closes() {
    let server = Server::start(&[]);
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: test\r\nno colon here\r\n\r\n"[..],
        b"HELLO\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n", // HTTP/1.1 without Host
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    ] {
        let mut client = server.connect();
        // A request that was fine comes first: it is answered, and the bad one closes.
        client.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
        client.send(bad);
        assert_eq!(client.response().status, 200);
        let r = client.response();
        assert_eq!(r.status, 400, "{:?}: {r:?}", String::from_utf8_lossy(bad));
        assert_eq!(r.header("connection"), Some("close"));
        assert!(client.closed_within(Duration::from_secs(2)), "closed after the 400");
    }
    let mut client = server.connect();
    client.send(b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(client.response().status, 501);
    assert!(client.closed_within(Duration::from_secs(2)));
}

#[test]
fn a_request_head_over_8_kib_gets_431_and_the_connection_closes() {
    let server = Server::start(&[]);
    let head = |filler: usize| {
        format!("GET / HTTP/1.1\r\nHost: test\r\nX-Filler: {}\r\n\r\n", "a".repeat(filler))
    };
    // 8192 bytes exactly is accepted...
    let fits = head(8192 - head(0).len());
    assert_eq!(fits.len(), 8192);
    let mut client = server.connect();
    client.send(fits.as_bytes());
    assert_eq!(client.response().status, 200);
    // ...one more byte is not, whether it comes in one write or the head trickles in.
    client.send(head(8193 - head(0).len()).as_bytes());
    let r = client.response();
    assert_eq!((r.status, r.header("connection")), (431, Some("close")), "{r:?}");
    assert!(client.closed_within(Duration::from_secs(2)));
    let mut client = server.connect();
    let big = head(20_000);
    for piece in big.as_bytes().chunks(1000) {
        client.send(piece);
        if !client.pending.is_empty() {
            break;
        }
    }
    assert_eq!(client.response().status, 431);
    assert!(client.closed_within(Duration::from_secs(2)));
    // Too many headers is the same answer.
    let mut many = String::from("GET / HTTP/1.1\r\nHost: test\r\n");
    for i in 0..100 {
        many += &format!("X-{i}: 1\r\n");
    }
    let mut client = server.connect();
    client.send((many + "\r\n").as_bytes());
    assert_eq!(client.response().status, 431);
}

#[test]
fn clients_that_stall_are_dropped_after_the_read_timeout() {
    let server = Server::start(&["--read-timeout-ms", "200"]);
    // Idle between requests; silent from the start; half a head; a head trickled in a byte
    // every 50 ms (each read is quick, but the whole head is due within the timeout).
    let mut idle = server.connect();
    assert_eq!(idle.get("/").status, 200);
    let mut silent = server.connect();
    let mut half = server.connect();
    half.send(b"GET / HTTP/1.1\r\nHo");
    let started = Instant::now();
    for client in [&mut idle, &mut silent, &mut half] {
        assert!(client.closed_within(Duration::from_secs(3)), "dropped");
    }
    assert!(started.elapsed() >= Duration::from_millis(100), "not before the timeout");
    let mut trickle = server.connect();
    trickle.send(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ");
    let started = Instant::now();
    let mut dropped = false;
    for _ in 0..60 {
        // Writing to a connection the server has closed may still succeed once; reading
        // tells: `closed_within` doubles as the 50 ms pause between bytes.
        if trickle.stream.write_all(b"a").is_err()
            || trickle.closed_within(Duration::from_millis(50))
        {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "a client trickling its head is dropped while it still trickles");
    assert!(started.elapsed() < Duration::from_secs(2), "after {:?}", started.elapsed());
    // Others are served meanwhile and after.
    assert_eq!(server.connect().get("/").status, 200);
}

#[test]
fn a_thousand_concurrent_sleeps_are_all_answered() {
    const CLIENTS: usize = 1000;
    assert!(raise_fd_limit() >= 2 * CLIENTS as u64 + 64, "need ~2100 descriptors");
    // Raised before the server starts, so that it inherits the limit.
    let server = Server::start(&[]);
    let addr = server.addr;
    let started = Instant::now();
    let answered = spindle::run(move || {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                spindle::Builder::new()
                    .stack_size(32 << 10)
                    .spawn(move || {
                        let mut conn = spindle::net::TcpStream::connect(addr).unwrap();
                        conn.write_all(b"GET /sleep?ms=100 HTTP/1.1\r\nHost: test\r\n\r\n")
                            .unwrap();
                        let mut reply = Vec::new();
                        let mut buf = [0u8; 512];
                        while !reply.ends_with(b"slept 100 ms\n") {
                            match conn.read(&mut buf).unwrap() {
                                0 => break,
                                n => reply.extend_from_slice(&buf[..n]),
                            }
                        }
                        reply.starts_with(b"HTTP/1.1 200 OK\r\n")
                            && reply.ends_with(b"slept 100 ms\n")
                    })
                    .unwrap()
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).filter(|&ok| ok).count()
    });
    assert_eq!(answered, CLIENTS);
    // One after another they would take 100 s.
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[test]
fn sigterm_finishes_the_requests_in_flight_then_exits() {
    let mut server = Server::start(&[]);
    let mut idle = server.connect();
    assert_eq!(idle.get("/").status, 200);
    let mut busy = server.connect();
    // In flight for sure when the stop comes: the server answered `100 Continue`, so it is
    // reading this request's body.
    busy.send(
        b"POST /sleep?ms=300 HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\
          Expect: 100-continue\r\n\r\n",
    );
    while !busy.pending.windows(4).any(|w| w == b"\r\n\r\n") {
        busy.read_more();
    }
    assert_eq!(std::mem::take(&mut busy.pending), b"HTTP/1.1 100 Continue\r\n\r\n");
    server.signal(libc::SIGTERM);
    // The idle connection goes at once; new ones are refused once the listener has closed.
    assert!(idle.closed_within(Duration::from_secs(1)), "the idle connection is closed");
    server.wait_until_refused();
    // The request in flight is answered, and its connection closed after it.
    busy.send(b"abcd");
    let r = busy.response();
    assert_eq!((r.status, r.body.as_str()), (200, "slept 300 ms\n"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(busy.closed_within(Duration::from_secs(2)));
    let (status, rest) = server.wait_for_exit();
    assert!(status.success(), "{status:?}");
    assert_eq!(rest, "http_server stopped\n");
}

#[test]
fn two_shards_share_the_port_and_one_stop_ends_them_all() {
    let mut server = Server::start_reading_stderr(&["--shards", "2"]);
    // The kernel picks a shard's listener for each connection by a hash of its addresses and
    // ports: the odds that 64 connections all land on one of the two are 2^-63.
    let mut clients: Vec<Client> = (0..64).map(|_| server.connect()).collect();
    for client in &mut clients {
        let r = client.get("/");
        assert_eq!((r.status, r.body.as_str()), (200, "Hello, World!"), "{r:?}");
    }
    // Half of them are in the middle of a request when the stop comes: the server answered
    // `100 Continue`, so it is reading that request's body.
    let mut idle = clients.split_off(32);
    let mut busy = clients;
    for client in busy.iter_mut() {
        client.send(
            b"POST /work?us=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\
              Expect: 100-continue\r\n\r\n",
        );
        while !client.pending.windows(4).any(|w| w == b"\r\n\r\n") {
            client.read_more();
        }
        assert_eq!(std::mem::take(&mut client.pending), b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    server.signal(libc::SIGTERM);
    // Each shard closes its own listener when it hears the stop; connections are refused
    // once every shard has.
    server.wait_until_refused();
    for client in idle.iter_mut() {
        assert!(client.closed_within(Duration::from_secs(2)), "an idle connection is closed");
    }
    for mut client in busy {
        client.send(b"abcd");
        let r = client.response();
        assert_eq!((r.status, r.body.as_str()), (200, "worked 1 us\n"), "{r:?}");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(client.closed_within(Duration::from_secs(2)), "closed after its answer");
        // Dropped: the server, lingering until the client closes too, can let go.
    }
    let (status, rest) = server.wait_for_exit();
    assert!(status.success(), "{status:?}");
    assert_eq!(rest, "http_server stopped\n");
    // Each shard said it stopped, and each had connections of its own.
    let mut messages = String::new();
    server.stderr.take().unwrap().read_to_string(&mut messages).unwrap();
    for shard in 0..2 {
        let prefix = format!("http_server shard {shard} of 2: stopping after ");
        let line = messages.lines().find_map(|l| l.strip_prefix(&prefix));
        let accepted: u64 = line
            .and_then(|l| l.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no stop message from shard {shard} in {messages:?}"));
        assert!(accepted > 0, "shard {shard} accepted no connection: {messages:?}");
    }
}
