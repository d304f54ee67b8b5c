//! The echo benchmark: one load, four servers, one table.
//!
//! ```text
//! cargo bench --bench echo
//! SPINDLE_ECHO_ROUNDS=3 SPINDLE_ECHO_CONNS=50,2000 SPINDLE_ECHO_SERVERS=mio,spindle,tokio cargo bench --bench echo   # quick
//! ```
//!
//! Servers:
//!
//! * `mio`: a hand-written single-threaded mio event loop, the ceiling for one thread;
//! * `spindle`: the same code as `examples/echo_server.rs`, one coroutine per connection;
//! * `tokio`: tokio's current-thread runtime, one task per connection;
//! * `may`: the `may` crate's stackful coroutines, one per connection, with one worker thread
//!   (its default is one per CPU), so that it too serves from one core;
//! * `threads`: `std::net`, one OS thread per connection.
//!
//! # How it measures
//!
//! For each connection count, every server is started once, in a child process (this binary
//! re-executed with `SPINDLE_ECHO_SERVE` set) pinned to CPU 0, and gets a load generator of its
//! own, another child (`SPINDLE_ECHO_LOAD`) pinned to CPU 1: a hand-written single-threaded mio
//! client. Separate processes let 10,000 connections per server fit under a 20,000 descriptor
//! limit. Each load generator opens all its connections and checks one round trip on each,
//! then waits for orders. A round then runs the servers one after another, each for a short
//! window while the others sit idle with their connections open; the order rotates from round
//! to round. Because a server and its connections are set up once, rounds are cheap, and many
//! short interleaved rounds cancel the machine's slow swings in speed (on a shared 2-core
//! guest these move whole seconds by 20% and more) far better than a few long ones.
//!
//! The load: 64-byte messages, one in flight per connection, every echoed byte checked. On
//! `go` the generator starts a message on every connection, warms up for 0.3 s, counts round
//! trips over the window, then lets the messages in flight come back and starts no new ones.
//!
//! Reported per server: the median of the round trips per second; the ratios to the mio loop
//! and to tokio, each taken within a round (the servers ran a second apart) with the median
//! and range over rounds; the server's CPU time (user + system, from `/proc/<pid>/stat`) per
//! round trip, its median over rounds and its ratio to the mio loop's (again within rounds);
//! and the user-space part of it, pooled over all rounds. The kernel's TCP path is most of
//! every server's CPU time, the same work for all of them; the user-space part is what the
//! server's own code costs. The CPU figures come from the kernel's tick accounting (4 ms ticks
//! here), so the user-space part of one round is coarse; pooled over the rounds it is not.
//! When the load generator's core is saturated, req/s bounds the server from below and CPU
//! per round trip is the fairer figure.
//!
//! Environment: `SPINDLE_ECHO_SECS` (window, default 0.5), `SPINDLE_ECHO_ROUNDS` (default 21),
//! `SPINDLE_ECHO_CONNS` (default 50,2000,10000; counts above what the descriptor limit allows
//! are skipped), `SPINDLE_ECHO_SERVERS` (default mio,spindle,tokio,may,threads).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use mio::net::{TcpListener as MioListener, TcpStream as MioStream};
use mio::{Events, Interest, Poll, Token};

const MESSAGE: usize = 64;
const SERVE_ENV: &str = "SPINDLE_ECHO_SERVE";
const LOAD_ENV: &str = "SPINDLE_ECHO_LOAD";
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;
const WARM_UP: Duration = Duration::from_millis(300);
/// A load generator gives up when no echo arrives for this long.
const STALL: Duration = Duration::from_secs(10);

fn main() {
    if let Ok(kind) = std::env::var(SERVE_ENV) {
        pin_to(SERVER_CPU);
        raise_fd_limit();
        serve(&kind);
        return;
    }
    if let Ok(spec) = std::env::var(LOAD_ENV) {
        pin_to(CLIENT_CPU);
        raise_fd_limit();
        load_process(&spec);
        return;
    }
    compare();
}

// ----- the comparison -----------------------------------------------------------------------

/// One measured window of one server.
#[derive(Clone, Copy)]
struct Measurement {
    rate: f64,
    round_trips: f64,
    cpu: Duration,
    user: Duration,
}

impl Measurement {
    fn cpu_per_rt_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.round_trips.max(1.0)
    }
}

fn compare() {
    let secs: f64 = env_or("SPINDLE_ECHO_SECS", "0.5").parse().expect("SPINDLE_ECHO_SECS: seconds");
    let rounds: usize =
        env_or("SPINDLE_ECHO_ROUNDS", "21").parse().expect("SPINDLE_ECHO_ROUNDS: a count");
    let counts: Vec<usize> = env_or("SPINDLE_ECHO_CONNS", "50,2000,10000")
        .split(',')
        .map(|c| c.trim().parse().expect("SPINDLE_ECHO_CONNS: counts"))
        .collect();
    let servers: Vec<String> = env_or("SPINDLE_ECHO_SERVERS", "mio,spindle,tokio,may,threads")
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let window = Duration::from_secs_f64(secs);
    pin_to(CLIENT_CPU);
    let limit = raise_fd_limit();
    println!(
        "echo: {MESSAGE}-byte messages, one in flight per connection, {rounds} rounds of {secs} s \
         per server, order rotating; servers on CPU {SERVER_CPU}, a load generator each on CPU \
         {CLIENT_CPU} ({} CPUs); descriptor limit {limit}",
        online_cpus()
    );

    let mut table = Vec::new();
    for &conns in &counts {
        if conns as u64 + 64 > limit {
            println!("{conns} connections: skipped, the descriptor limit is {limit}");
            continue;
        }
        // Every server with its connections open, for all the rounds of this count.
        let mut rigs: Vec<Option<Rig>> = servers
            .iter()
            .map(|kind| {
                let started = Instant::now();
                match Rig::start(kind, conns) {
                    Ok(rig) => {
                        println!(
                            "{kind:>8} {conns:>6} conns: connected and checked in {:.1} s",
                            started.elapsed().as_secs_f64()
                        );
                        Some(rig)
                    }
                    Err(e) => {
                        println!("{kind:>8} {conns:>6} conns: failed to start: {e}");
                        None
                    }
                }
            })
            .collect();
        // runs[server][round], `None` where that server had failed.
        let mut runs: Vec<Vec<Option<Measurement>>> = vec![Vec::new(); servers.len()];
        for round in 0..rounds {
            let mut measured = vec![None; servers.len()];
            for k in 0..servers.len() {
                let i = (round + k) % servers.len();
                let Some(rig) = &mut rigs[i] else { continue };
                match rig.measure(window) {
                    Ok(m) => {
                        println!(
                            "round {:>2}: {:>8} {conns:>6} conns: {:>9.0} req/s, {:>5.2} us server \
                             CPU per round trip",
                            round + 1,
                            servers[i],
                            m.rate,
                            m.cpu_per_rt_us()
                        );
                        measured[i] = Some(m);
                    }
                    Err(e) => {
                        println!(
                            "round {:>2}: {:>8} {conns:>6} conns: failed: {e}",
                            round + 1,
                            servers[i]
                        );
                        rigs[i] = None;
                    }
                }
            }
            for (run, m) in runs.iter_mut().zip(measured) {
                run.push(m);
            }
        }
        drop(rigs);
        let by_name = |name: &str| servers.iter().position(|s| s == name).map(|i| &runs[i]);
        for (server, run) in servers.iter().zip(&runs) {
            table.push(Row::of(conns, server, run, by_name("mio"), by_name("tokio")));
        }
    }
    print_table(&table, rounds);
}

/// One line of the final table.
struct Row {
    conns: usize,
    server: String,
    rate: Option<f64>,
    vs_mio: Option<Ratios>,
    vs_tokio: Option<Ratios>,
    cpu_per_rt_us: Option<f64>,
    cpu_vs_mio: Option<Ratios>,
    user_per_rt_us: Option<f64>,
}

impl Row {
    fn of(
        conns: usize,
        server: &str,
        run: &[Option<Measurement>],
        mio: Option<&Vec<Option<Measurement>>>,
        tokio: Option<&Vec<Option<Measurement>>>,
    ) -> Row {
        let done: Vec<Measurement> = run.iter().flatten().copied().collect();
        // `f` of this server over `f` of `base`, within each round in which both were measured.
        let ratios = |base: Option<&Vec<Option<Measurement>>>, f: fn(&Measurement) -> f64| {
            let base = base?;
            Ratios::of(
                base.iter()
                    .zip(run)
                    .filter_map(|(b, m)| Some(f(m.as_ref()?) / f(b.as_ref()?)))
                    .collect(),
            )
        };
        let rate = |m: &Measurement| m.rate;
        let round_trips: f64 = done.iter().map(|m| m.round_trips).sum();
        let user: f64 = done.iter().map(|m| m.user.as_secs_f64()).sum();
        Row {
            conns,
            server: server.to_string(),
            rate: middle(done.iter().map(rate).collect()),
            vs_mio: if server == "mio" { None } else { ratios(mio, rate) },
            vs_tokio: if server == "tokio" { None } else { ratios(tokio, rate) },
            cpu_per_rt_us: middle(done.iter().map(Measurement::cpu_per_rt_us).collect()),
            cpu_vs_mio: if server == "mio" {
                None
            } else {
                ratios(mio, Measurement::cpu_per_rt_us)
            },
            user_per_rt_us: (round_trips > 0.0).then(|| user * 1e6 / round_trips),
        }
    }
}

fn print_table(rows: &[Row], rounds: usize) {
    println!();
    println!(
        "| connections | server | round trips/s | vs mio loop | vs tokio | server CPU per round \
         trip | of which user space | CPU vs mio loop |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let ratio = |r: &Option<Ratios>| match r {
            Some(r) => format!("{:.2}x ({:.2}-{:.2})", r.median, r.min, r.max),
            None => "-".into(),
        };
        let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} us"));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.conns,
            row.server,
            row.rate.map_or("failed".into(), |r| format!("{r:.0}")),
            ratio(&row.vs_mio),
            ratio(&row.vs_tokio),
            us(row.cpu_per_rt_us),
            us(row.user_per_rt_us),
            ratio(&row.cpu_vs_mio),
        );
    }
    println!(
        "\nround trips/s and CPU per round trip: medians of {rounds} rounds. Ratios: the median \
         of the ratios taken within each round (lowest-highest round). User space: pooled over \
         the rounds."
    );
}

/// Median, lowest and highest of a server's per-round ratios to a baseline.
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

/// A server process and the load generator process that drives it.
struct Rig {
    /// Held to be killed when the rig drops, after the load generator quit (in `drop`).
    _server: Server,
    load: Child,
    orders: ChildStdin,
    reports: BufReader<ChildStdout>,
}

/// A server child process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Rig {
    /// Starts server `kind`, then its load generator, which opens `conns` connections and
    /// checks a round trip on each before this returns.
    fn start(kind: &str, conns: usize) -> Result<Rig, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut server = Server(
            Command::new(&exe)
                .env(SERVE_ENV, kind)
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start the server: {e}"))?,
        );
        let addr = server_address(&mut server.0)?;
        let mut load = Command::new(&exe)
            .env(LOAD_ENV, format!("{addr} {conns} {}", server.0.id()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the load generator: {e}"))?;
        let orders = load.stdin.take().expect("piped");
        let reports = BufReader::new(load.stdout.take().expect("piped"));
        let mut rig = Rig { _server: server, load, orders, reports };
        let words = rig.report()?;
        if words == ["ready"] {
            Ok(rig)
        } else {
            Err(format!("the load generator said: {}", words.join(" ")))
        }
    }

    /// Has the load generator run one window; returns what it measured.
    fn measure(&mut self, window: Duration) -> Result<Measurement, String> {
        writeln!(self.orders, "go {}", window.as_secs_f64()).map_err(|e| e.to_string())?;
        let words = self.report()?;
        let numbers: Vec<f64> = words.iter().skip(1).filter_map(|w| w.parse().ok()).collect();
        match (words.first().map(String::as_str), numbers.as_slice()) {
            (Some("done"), &[round_trips, elapsed, user, system]) => Ok(Measurement {
                rate: round_trips / elapsed,
                round_trips,
                cpu: Duration::from_secs_f64(user + system),
                user: Duration::from_secs_f64(user),
            }),
            _ => Err(words.join(" ")),
        }
    }

    /// The load generator's next line, split into words.
    fn report(&mut self) -> Result<Vec<String>, String> {
        let mut line = String::new();
        match self.reports.read_line(&mut line) {
            Ok(0) => Err("the load generator exited".into()),
            Ok(_) => Ok(line.split_whitespace().map(str::to_string).collect()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = writeln!(self.orders, "quit");
        let _ = self.load.wait();
        // `_server` is killed as the fields drop, after this.
    }
}

/// Reads the address the server child prints when it listens.
fn server_address(server: &mut Child) -> Result<SocketAddr, String> {
    let stdout = server.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
    line.trim().parse().map_err(|_| format!("the server printed {line:?}, not an address"))
}

/// User and system CPU time the process `pid` has used, all threads.
fn process_cpu(pid: u32) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime, the 14th and 15th fields of the line (11th and 12th after the name).
    let ticks = |i: usize| fields.get(i).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let secs = |t: u64| Duration::from_secs_f64(t as f64 / hz);
    (secs(ticks(11)), secs(ticks(12)))
}

// ----- the load generator ---------------------------------------------------------------

/// The load generator process: `spec` is "ADDRESS CONNECTIONS SERVER_PID". Answers `ready`
/// once every connection has echoed once, then `done ROUND_TRIPS SECONDS USER SYSTEM` for each
/// `go WINDOW` order (the server's CPU seconds over the window), until `quit` or end of input.
/// A failure is reported as `error ...` and ends the process.
fn load_process(spec: &str) {
    let parsed = (|| {
        let mut words = spec.split_whitespace();
        let addr: SocketAddr = words.next()?.parse().ok()?;
        let conns: usize = words.next()?.parse().ok()?;
        let pid: u32 = words.next()?.parse().ok()?;
        Some((addr, conns, pid))
    })();
    let Some((addr, conns, pid)) = parsed else {
        println!("error bad {LOAD_ENV}: {spec:?}");
        return;
    };
    let mut load = match Load::connect(addr, conns).and_then(|mut load| {
        load.run(None, || (Duration::ZERO, Duration::ZERO))?;
        Ok(load)
    }) {
        Ok(load) => load,
        Err(e) => {
            println!("error {e}");
            return;
        }
    };
    println!("ready");
    for order in io::stdin().lines() {
        let Ok(order) = order else { return };
        let window = match order.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["go", secs] => match secs.parse::<f64>() {
                Ok(secs) => Duration::from_secs_f64(secs),
                Err(_) => {
                    println!("error bad order {order:?}");
                    return;
                }
            },
            _ => return,
        };
        match load.run(Some(window), || process_cpu(pid)) {
            Ok(w) => println!(
                "done {} {} {} {}",
                w.round_trips,
                w.elapsed.as_secs_f64(),
                w.user.as_secs_f64(),
                w.system.as_secs_f64()
            ),
            Err(e) => {
                println!("error {e}");
                return;
            }
        }
    }
}

/// One client connection: at most one message in flight.
struct Client {
    stream: MioStream,
    /// Sequence number of the current message; byte `i` is `seed + seq + i`.
    seq: u64,
    seed: u64,
    /// A message was sent (or is being sent) and its echo has not fully come back.
    in_flight: bool,
    written: usize,
    received: usize,
    echoed: [u8; MESSAGE],
}

impl Client {
    fn byte(&self, i: usize) -> u8 {
        self.seed.wrapping_add(self.seq).wrapping_add(i as u64) as u8
    }

    /// Starts the next message.
    fn start(&mut self) -> io::Result<()> {
        self.in_flight = true;
        self.written = 0;
        self.received = 0;
        self.send()
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

    /// Reads what has arrived of the echo; returns true when it is complete and checked. It
    /// stops reading there: with one message in flight nothing more can be queued, and the
    /// next echo raises a new (edge-triggered) event.
    fn receive(&mut self) -> io::Result<bool> {
        while self.in_flight {
            match self.stream.read(&mut self.echoed[self.received..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed")),
                Ok(n) => self.received += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
            if self.received == MESSAGE {
                if (0..MESSAGE).any(|i| self.echoed[i] != self.byte(i)) {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "echo differs"));
                }
                self.seq += 1;
                self.in_flight = false;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// What one window measured.
struct Window {
    round_trips: u64,
    elapsed: Duration,
    user: Duration,
    system: Duration,
}

/// All connections of one load generator and their poll.
struct Load {
    poll: Poll,
    events: Events,
    clients: Vec<Client>,
}

impl Load {
    fn connect(addr: SocketAddr, conns: usize) -> io::Result<Load> {
        let poll = Poll::new()?;
        let mut clients = Vec::with_capacity(conns);
        for i in 0..conns {
            let std = std::net::TcpStream::connect(addr)?;
            std.set_nodelay(true)?;
            std.set_nonblocking(true)?;
            let mut stream = MioStream::from_std(std);
            poll.registry().register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            clients.push(Client {
                stream,
                seq: 0,
                seed: i as u64 * 7,
                in_flight: false,
                written: 0,
                received: 0,
                echoed: [0; MESSAGE],
            });
        }
        Ok(Load { poll, events: Events::with_capacity(4096), clients })
    }

    /// Starts a message on every connection and keeps one in flight on each: with a window,
    /// through the warm-up and the window, counting the round trips of the window and `cpu` at
    /// its ends; without, only one each (a check that every connection echoes). Then waits
    /// for the messages in flight and starts no new ones, so the server is idle on return.
    fn run(
        &mut self,
        window: Option<Duration>,
        cpu: impl Fn() -> (Duration, Duration),
    ) -> io::Result<Window> {
        for c in &mut self.clients {
            c.start()?;
        }
        let mut in_flight = self.clients.len();
        let mut completed: u64 = 0;
        let began = Instant::now();
        let mut last_progress = began;
        // (time, completed, server CPU) at the start of the window, then the result.
        let mut window_start: Option<(Instant, u64, (Duration, Duration))> = None;
        let mut result: Option<Window> = None;
        let mut sending = window.is_some();
        while in_flight > 0 {
            self.poll.poll(&mut self.events, Some(Duration::from_millis(50)))?;
            for event in self.events.iter() {
                let c = &mut self.clients[event.token().0];
                if event.is_writable() && c.in_flight && c.written < MESSAGE {
                    c.send()?;
                }
                if (event.is_readable() || event.is_read_closed() || event.is_error())
                    && c.receive()?
                {
                    completed += 1;
                    last_progress = Instant::now();
                    if sending {
                        c.start()?;
                    } else {
                        in_flight -= 1;
                    }
                }
            }
            let now = Instant::now();
            if now - last_progress > STALL {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no echo for {STALL:?} ({in_flight} messages in flight)"),
                ));
            }
            let Some(window) = window else { continue };
            match window_start {
                None if now - began >= WARM_UP => window_start = Some((now, completed, cpu())),
                Some((t0, n0, (user0, system0))) if sending && now - t0 >= window => {
                    let (user, system) = cpu();
                    result = Some(Window {
                        round_trips: completed - n0,
                        elapsed: now - t0,
                        user: user.saturating_sub(user0),
                        system: system.saturating_sub(system0),
                    });
                    sending = false;
                }
                _ => {}
            }
        }
        Ok(result.unwrap_or(Window {
            round_trips: completed,
            elapsed: began.elapsed(),
            user: Duration::ZERO,
            system: Duration::ZERO,
        }))
    }
}

// ----- the servers ----------------------------------------------------------------------

fn serve(kind: &str) {
    match kind {
        "spindle" => spindle::run(spindle_server),
        "threads" => thread_server(),
        "mio" => mio_server(),
        "tokio" => tokio_server(),
        "may" => may_server(),
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

/// The connection loop of the spindle, may and thread servers (the same code on each kind of
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

/// `may`'s coroutines with one worker thread: the same `echo_until_eof` loop on its sockets.
/// (`may::net::TcpListener::bind` listens with a backlog of 1024, as the others do.)
fn may_server() {
    may::config().set_workers(1);
    let listener = may::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    announce(listener.local_addr().expect("local_addr"));
    let acceptor = may::go!(move || loop {
        match listener.accept() {
            Ok((conn, _)) => {
                let _ = conn.set_nodelay(true);
                may::go!(move || echo_until_eof(conn));
            }
            Err(_) => may::coroutine::sleep(Duration::from_millis(50)),
        }
    });
    let _ = acceptor.join();
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
