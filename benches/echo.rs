//! The echo benchmark: one load, four servers, one table.
//!
//! ```text
//! cargo bench --bench echo
//! SPINDLE_ECHO_SECS=1 SPINDLE_ECHO_ROUNDS=1 SPINDLE_ECHO_CONNS=50,2000 cargo bench --bench echo   # quick
//! ```
//!
//! Each server runs in a child process (this binary re-executed with `SPINDLE_ECHO_SERVE` set)
//! pinned to CPU 0; the load generator, a hand-written single-threaded mio client, runs in this
//! process pinned to CPU 1. Separate processes let 10,000 connections fit under a 20,000
//! descriptor limit on both sides. Servers:
//!
//! * `mio`: a hand-written single-threaded mio event loop, the ceiling for one thread;
//! * `spindle`: the same code as `examples/echo_server.rs`, one coroutine per connection;
//! * `tokio`: tokio's current-thread runtime, one task per connection;
//! * `threads`: `std::net`, one OS thread per connection.
//!
//! The load: 64-byte messages, one in flight per connection, every echoed byte checked. Every
//! connection is opened and completes a checked round trip, then a warm-up of 0.5 s, before the
//! timed window (`SPINDLE_ECHO_SECS`, default 2 s). Each count runs `SPINDLE_ECHO_ROUNDS`
//! (default 5) rounds, each round every server once. Reported: the median of the round trips
//! per second; the ratio to the mio loop, taken within each round (the two servers ran seconds
//! apart, so a slow drift in the machine's load cancels) with its median and range over the
//! rounds; and the server's CPU time (user + system, from `/proc/<pid>/stat`) per round trip.
//! When the load generator's core is saturated (50 connections), req/s bounds the server from
//! below and CPU per round trip is the fairer figure.
//!
//! Environment: `SPINDLE_ECHO_SECS` (default 2), `SPINDLE_ECHO_ROUNDS` (default 5),
//! `SPINDLE_ECHO_CONNS` (default 50,2000,10000;
//! counts above what the descriptor limit allows are skipped), `SPINDLE_ECHO_SERVERS` (default
//! mio,spindle,tokio,threads).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mio::net::{TcpListener as MioListener, TcpStream as MioStream};
use mio::{Events, Interest, Poll, Token};

const MESSAGE: usize = 64;
const SERVE_ENV: &str = "SPINDLE_ECHO_SERVE";
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;
const WARM_UP: Duration = Duration::from_millis(500);

fn main() {
    if let Ok(kind) = std::env::var(SERVE_ENV) {
        pin_to(SERVER_CPU);
        raise_fd_limit();
        serve(&kind);
        return;
    }
    let secs: f64 = env_or("SPINDLE_ECHO_SECS", "2").parse().expect("SPINDLE_ECHO_SECS: seconds");
    let rounds: usize =
        env_or("SPINDLE_ECHO_ROUNDS", "5").parse().expect("SPINDLE_ECHO_ROUNDS: a count");
    let counts: Vec<usize> = env_or("SPINDLE_ECHO_CONNS", "50,2000,10000")
        .split(',')
        .map(|c| c.trim().parse().expect("SPINDLE_ECHO_CONNS: counts"))
        .collect();
    let servers: Vec<String> = env_or("SPINDLE_ECHO_SERVERS", "mio,spindle,tokio,threads")
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    pin_to(CLIENT_CPU);
    let limit = raise_fd_limit();
    let cpus = online_cpus();
    println!(
        "echo: {MESSAGE}-byte messages, one in flight per connection, {rounds} rounds of {secs} s \
         per server; \
         server on CPU {SERVER_CPU}, load generator on CPU {CLIENT_CPU} ({cpus} CPUs); \
         descriptor limit {limit}"
    );

    let mut rows = Vec::new();
    for &conns in &counts {
        if conns as u64 + 64 > limit {
            println!("{conns} connections: skipped, the descriptor limit is {limit}");
            continue;
        }
        // Rounds interleave the servers, so a burst of load from elsewhere on the machine
        // hits all of them; the table shows medians over the rounds.
        // One entry per round for each server, `None` where that run failed.
        let mut runs: Vec<Vec<Option<Measurement>>> = servers.iter().map(|_| Vec::new()).collect();
        for round in 1..=rounds {
            for (server, runs) in servers.iter().zip(&mut runs) {
                match measure(server, conns, Duration::from_secs_f64(secs)) {
                    Ok(m) => {
                        println!(
                            "round {round}: {server:>8} {conns:>6} conns: {:>9.0} req/s, \
                             {:>5.2} us server CPU per round trip",
                            m.rate, m.cpu_per_rt_us
                        );
                        runs.push(Some(m));
                    }
                    Err(e) => {
                        println!("round {round}: {server:>8} {conns:>6} conns: failed: {e}");
                        runs.push(None);
                    }
                }
            }
        }
        let mio_runs = servers.iter().position(|s| s == "mio").map(|i| runs[i].clone());
        for (server, runs) in servers.iter().zip(&runs) {
            let done: Vec<Measurement> = runs.iter().flatten().copied().collect();
            let Some(m) = median(&done) else { continue };
            // The ratio to the mio loop within each round (the two ran seconds apart, so a
            // slow drift of the machine's load cancels out), then the median over rounds.
            let ratios: Vec<f64> = mio_runs
                .iter()
                .flat_map(|mio| mio.iter().zip(runs))
                .filter_map(|(mio, run)| Some(run.as_ref()?.rate / mio.as_ref()?.rate))
                .collect();
            rows.push((conns, server.clone(), m, Ratios::of(ratios)));
        }
    }
    println!();
    println!(
        "| connections | server | round trips/s (median of {rounds}) | vs mio loop (median of \
         per-round ratios) | per-round range | server CPU per round trip | CPU vs mio loop |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let mut mio_cpu = None;
    for (conns, server, m, ratios) in rows {
        if server == "mio" {
            mio_cpu = Some(m.cpu_per_rt_us);
        }
        let (ratio, range) = match ratios {
            Some(r) => (format!("{:.2}x", r.median), format!("{:.2}-{:.2}x", r.min, r.max)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {conns} | {server} | {:.0} | {ratio} | {range} | {:.2} us | {} |",
            m.rate,
            m.cpu_per_rt_us,
            mio_cpu.map(|c| format!("{:.2}x", m.cpu_per_rt_us / c)).unwrap_or_else(|| "-".into()),
        );
    }
}

/// Median, lowest and highest of a server's per-round ratios to the mio loop.
struct Ratios {
    median: f64,
    min: f64,
    max: f64,
}

impl Ratios {
    fn of(ratios: Vec<f64>) -> Option<Ratios> {
        let min = ratios.iter().copied().reduce(f64::min)?;
        let max = ratios.iter().copied().reduce(f64::max)?;
        Some(Ratios { median: middle(ratios)?, min, max })
    }
}

/// Median rate and median CPU per round trip of several runs (each median on its own).
fn median(runs: &[Measurement]) -> Option<Measurement> {
    Some(Measurement {
        rate: middle(runs.iter().map(|m| m.rate).collect())?,
        cpu_per_rt_us: middle(runs.iter().map(|m| m.cpu_per_rt_us).collect())?,
    })
}

/// The median of `v`, `None` if it is empty.
fn middle(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[derive(Clone, Copy)]
struct Measurement {
    rate: f64,
    cpu_per_rt_us: f64,
}

/// Starts server `kind` in a child process, runs the load against it, stops it.
fn measure(kind: &str, conns: usize, window: Duration) -> Result<Measurement, String> {
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .env(SERVE_ENV, kind)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let result = ServerProcess::address(&mut child).and_then(|addr| {
        let pid = child.id();
        load(addr, conns, window, || server_cpu(pid))
    });
    let _ = child.kill();
    let _ = child.wait();
    result
}

struct ServerProcess;

impl ServerProcess {
    /// Reads the `listening on` line the child prints.
    fn address(child: &mut Child) -> Result<SocketAddr, String> {
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
        line.trim().parse().map_err(|_| format!("the server printed {line:?}, not an address"))
    }
}

/// CPU time (user + system) the process `pid` has used, all threads.
fn server_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11..13).map_or(0, |f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(ticks as f64 / hz as f64)
}

// ----- the load generator ---------------------------------------------------------------

/// One client connection: one message in flight.
struct Client {
    stream: MioStream,
    /// Sequence number of the message in flight; byte `i` is `seed + seq + i`.
    seq: u64,
    seed: u64,
    written: usize,
    received: usize,
    echoed: [u8; MESSAGE],
}

impl Client {
    fn byte(&self, i: usize) -> u8 {
        self.seed.wrapping_add(self.seq).wrapping_add(i as u64) as u8
    }

    /// Writes what is left of the message in flight.
    fn send(&mut self) -> io::Result<()> {
        let mut out = [0u8; MESSAGE];
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.byte(i);
        }
        while self.written < MESSAGE {
            match self.stream.write(&out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what has arrived; returns how many full echoes were completed and checked.
    fn receive(&mut self) -> io::Result<u64> {
        let mut done = 0;
        loop {
            match self.stream.read(&mut self.echoed[self.received..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed")),
                Ok(n) => self.received += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(done),
                Err(e) => return Err(e),
            }
            if self.received == MESSAGE {
                if (0..MESSAGE).any(|i| self.echoed[i] != self.byte(i)) {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "echo differs"));
                }
                done += 1;
                self.seq += 1;
                self.received = 0;
                self.written = 0;
                self.send()?;
            }
        }
    }
}

fn load(
    addr: SocketAddr,
    conns: usize,
    window: Duration,
    cpu: impl Fn() -> Duration,
) -> Result<Measurement, String> {
    let fail = |what: &str, e: io::Error| format!("{what}: {e}");
    let mut poll = Poll::new().map_err(|e| fail("poll", e))?;
    let mut clients = Vec::with_capacity(conns);
    for i in 0..conns {
        let std = std::net::TcpStream::connect(addr).map_err(|e| fail("connect", e))?;
        std.set_nodelay(true).map_err(|e| fail("nodelay", e))?;
        std.set_nonblocking(true).map_err(|e| fail("nonblocking", e))?;
        let mut stream = MioStream::from_std(std);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| fail("register", e))?;
        clients.push(Client {
            stream,
            seq: 0,
            seed: i as u64 * 7,
            written: 0,
            received: 0,
            echoed: [0; MESSAGE],
        });
    }
    for c in &mut clients {
        c.send().map_err(|e| fail("send", e))?;
    }
    let mut events = Events::with_capacity(4096);
    let mut completed: u64 = 0;
    let mut checked_once = 0usize;
    let began = Instant::now();
    // (time, completed, server CPU) at the start of the timed window.
    let mut window_start: Option<(Instant, u64, Duration)> = None;
    let mut last_progress = Instant::now();
    loop {
        poll.poll(&mut events, Some(Duration::from_millis(100))).map_err(|e| fail("poll", e))?;
        for event in events.iter() {
            let c = &mut clients[event.token().0];
            if event.is_writable() && c.written < MESSAGE {
                c.send().map_err(|e| fail("send", e))?;
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                let first = c.seq == 0;
                let n = c.receive().map_err(|e| fail("receive", e))?;
                if first && n > 0 {
                    checked_once += 1;
                }
                completed += n;
                if n > 0 {
                    last_progress = Instant::now();
                }
            }
        }
        let now = Instant::now();
        if now - last_progress > Duration::from_secs(10) {
            return Err(format!("no echo for 10 s ({checked_once}/{conns} connections answered)"));
        }
        match window_start {
            None if checked_once == conns && now - began >= WARM_UP => {
                window_start = Some((now, completed, cpu()));
            }
            Some((t0, n0, cpu0)) if now - t0 >= window => {
                let elapsed = (now - t0).as_secs_f64();
                let round_trips = (completed - n0) as f64;
                let server = (cpu() - cpu0).as_secs_f64();
                return Ok(Measurement {
                    rate: round_trips / elapsed,
                    cpu_per_rt_us: server * 1e6 / round_trips.max(1.0),
                });
            }
            _ => {}
        }
    }
}

// ----- the servers ----------------------------------------------------------------------

fn serve(kind: &str) {
    match kind {
        "spindle" => spindle::run(spindle_server),
        "threads" => thread_server(),
        "mio" => mio_server(),
        "tokio" => tokio_server(),
        other => panic!("unknown server {other:?}"),
    }
}

/// Binds 127.0.0.1:0 with a backlog of 1024 and prints the address for the parent.
fn std_listener() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    // SAFETY: the listener's descriptor is open for the duration of the call.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), 1024) };
    assert_eq!(rc, 0, "listen: {}", io::Error::last_os_error());
    announce(listener.local_addr().expect("local_addr"));
    listener
}

fn announce(addr: SocketAddr) {
    let mut out = io::stdout();
    writeln!(out, "{addr}").and_then(|()| out.flush()).expect("tell the parent the address");
}

/// The connection loop of the spindle and thread servers (the same code on either kind of
/// socket): a 4 KiB buffer, read / write_all until EOF or an error.
fn echo_until_eof(mut conn: impl Read + Write) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Written as `examples/echo_server.rs` is: one coroutine per connection, read / write_all.
fn spindle_server() {
    let listener = spindle::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    announce(listener.local_addr().expect("local_addr"));
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                let _ = conn.set_nodelay(true);
                spindle::Builder::new()
                    .stack_size(32 << 10)
                    .spawn(move || echo_until_eof(conn))
                    .expect("spawn");
            }
            Err(_) => spindle::sleep(Duration::from_millis(50)),
        }
    }
}

fn thread_server() {
    let listener = std_listener();
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let _ = conn.set_nodelay(true);
        let spawned =
            std::thread::Builder::new().stack_size(64 << 10).spawn(move || echo_until_eof(conn));
        if spawned.is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn tokio_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_io().build().expect("tokio runtime");
    let std = std_listener();
    std.set_nonblocking(true).expect("nonblocking");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(std).expect("tokio listener");
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let _ = conn.set_nodelay(true);
                let mut buf = [0u8; 4096];
                loop {
                    let n = match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if conn.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// A server connection of the hand-written loop: bytes read but not yet echoed.
struct Echo {
    stream: MioStream,
    buf: Box<[u8; 4096]>,
    start: usize,
    end: usize,
}

impl Echo {
    /// Echoes until the socket would block; returns false when the connection is over.
    fn drive(&mut self) -> bool {
        loop {
            while self.start < self.end {
                match self.stream.write(&self.buf[self.start..self.end]) {
                    Ok(n) => self.start += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
            match self.stream.read(&mut self.buf[..]) {
                Ok(0) => return false,
                Ok(n) => (self.start, self.end) = (0, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }
}

fn mio_server() {
    const LISTENER: Token = Token(usize::MAX);
    let std = std_listener();
    std.set_nonblocking(true).expect("nonblocking");
    let mut listener = MioListener::from_std(std);
    let mut poll = Poll::new().expect("poll");
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE).expect("register");
    let mut conns: slab::Slab<Echo> = slab::Slab::new();
    let mut events = Events::with_capacity(1024);
    loop {
        poll.poll(&mut events, None).expect("poll");
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            poll.registry()
                                .register(
                                    &mut stream,
                                    Token(entry.key()),
                                    Interest::READABLE | Interest::WRITABLE,
                                )
                                .expect("register");
                            entry.insert(Echo {
                                stream,
                                buf: Box::new([0; 4096]),
                                start: 0,
                                end: 0,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let key = event.token().0;
            let alive = conns.get_mut(key).is_some_and(|c| c.drive());
            if !alive && conns.contains(key) {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
    }
}

// ----- the machine ------------------------------------------------------------------------

/// Pins the calling thread (and threads it starts later) to `cpu`, if the machine has it.
fn pin_to(cpu: usize) {
    if cpu >= online_cpus() {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below the number of CPUs, within the set's capacity.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        eprintln!("echo: cannot pin to CPU {cpu}: {}", io::Error::last_os_error());
    }
}

/// CPUs online on the machine (not only those this process may use).
fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize
}

/// Raises the soft descriptor limit to the hard one; returns the new soft limit.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid rlimit to write into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit; raising the soft limit to the hard one is allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        // SAFETY: as above.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    }
    limit.rlim_cur
}
