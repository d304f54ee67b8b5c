//! The load generator child: its side of the protocol with the parent, and a hand-written
//! single-threaded mio client that keeps one checked 64-byte message in flight per connection.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};

use crate::os::{machine_cpu, process_cpu};
use crate::rig::LOAD_ENV;

/// Bytes per message.
pub const MESSAGE: usize = 64;
/// How long the load runs before a window opens.
const WARM_UP: Duration = Duration::from_millis(300);
/// A load generator gives up when no echo arrives for this long.
const STALL: Duration = Duration::from_secs(10);

/// The load generator process: `spec` is "ADDRESS CONNECTIONS SERVER_PID". Answers `ready`
/// once every connection has echoed once, then `done ROUND_TRIPS SECONDS USER SYSTEM LOAD
/// MACHINE` for each `go WINDOW` order (CPU seconds over the window: the server's user and
/// system time, this load generator's own user + system, and the user + system time of every
/// process on the machine), until `quit` or end of input.
/// A failure is reported as `error ...` and ends the process.
pub fn load_process(spec: &str) {
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
                "done {} {} {} {} {} {}",
                w.round_trips,
                w.elapsed.as_secs_f64(),
                w.user.as_secs_f64(),
                w.system.as_secs_f64(),
                w.load.as_secs_f64(),
                w.machine.as_secs_f64()
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
    /// This load generator's own CPU time (user + system) over the window.
    load: Duration,
    /// The user + system time of the whole machine over the window, all processes.
    machine: Duration,
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
        // (time, completed, CPU clocks) at the start of the window, then the result.
        let mut window_start: Option<(Instant, u64, Clocks)> = None;
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
                None if now - began >= WARM_UP => {
                    window_start = Some((now, completed, Clocks::read(&cpu)))
                }
                Some((t0, n0, ref start)) if sending && now - t0 >= window => {
                    let end = Clocks::read(&cpu);
                    result = Some(Window {
                        round_trips: completed - n0,
                        elapsed: now - t0,
                        user: end.server.0.saturating_sub(start.server.0),
                        system: end.server.1.saturating_sub(start.server.1),
                        load: end.own.saturating_sub(start.own),
                        machine: end.machine.saturating_sub(start.machine),
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
            load: Duration::ZERO,
            machine: Duration::ZERO,
        }))
    }
}

/// The CPU clocks read at each end of a window.
struct Clocks {
    /// The server's user and system time.
    server: (Duration, Duration),
    /// This process's user + system time.
    own: Duration,
    /// The machine's user + system time, all processes.
    machine: Duration,
}

impl Clocks {
    fn read(server: impl Fn() -> (Duration, Duration)) -> Clocks {
        let (user, system) = process_cpu(std::process::id());
        Clocks { server: server(), own: user + system, machine: machine_cpu() }
    }
}
