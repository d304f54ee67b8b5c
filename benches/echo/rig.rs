//! The parent's side of a measurement: a server child and its load generator child, started
//! from this same binary, and the line protocol that gives the load generator its orders.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Set in a child that is to serve: names the server (see `servers::serve`).
pub const SERVE_ENV: &str = "SPINDLE_ECHO_SERVE";
/// Set in a child that is to generate load: "ADDRESS CONNECTIONS SERVER_PID".
pub const LOAD_ENV: &str = "SPINDLE_ECHO_LOAD";

/// One measured window of one server.
#[derive(Clone, Copy)]
pub struct Measurement {
    pub rate: f64,
    pub round_trips: f64,
    /// The server's CPU time over the window, user + system, all its threads.
    pub cpu: Duration,
    /// The user-space part of `cpu`.
    pub user: Duration,
    /// The load generator's own CPU time over the window, user + system.
    #[allow(dead_code)] // read by the echo_cpu bench, whose load generator shares the cores
    pub load_cpu: Duration,
    /// The machine's user + system time over the window, every process (this run's and others').
    #[allow(dead_code)] // read by the echo_cpu bench
    pub machine_cpu: Duration,
}

impl Measurement {
    pub fn cpu_per_rt_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.round_trips.max(1.0)
    }

    /// The length of the window.
    #[allow(dead_code)] // used by the echo_cpu bench
    pub fn elapsed(&self) -> Duration {
        Duration::from_secs_f64(self.round_trips / self.rate.max(f64::MIN_POSITIVE))
    }
}

/// A server process and the load generator process that drives it.
pub struct Rig {
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
    pub fn start(kind: &str, conns: usize) -> Result<Rig, String> {
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
    pub fn measure(&mut self, window: Duration) -> Result<Measurement, String> {
        writeln!(self.orders, "go {}", window.as_secs_f64()).map_err(|e| e.to_string())?;
        let words = self.report()?;
        let numbers: Vec<f64> = words.iter().skip(1).filter_map(|w| w.parse().ok()).collect();
        match (words.first().map(String::as_str), numbers.as_slice()) {
            (Some("done"), &[round_trips, elapsed, user, system, load, machine]) => {
                Ok(Measurement {
                    rate: round_trips / elapsed,
                    round_trips,
                    cpu: Duration::from_secs_f64(user + system),
                    user: Duration::from_secs_f64(user),
                    load_cpu: Duration::from_secs_f64(load),
                    machine_cpu: Duration::from_secs_f64(machine),
                })
            }
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
