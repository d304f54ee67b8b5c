//! Running `wrk` (installing it when it is missing) and reading its report.

use std::process::Command;
use std::time::Duration;

/// What one wrk run measured.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    pub requests: f64,
    pub seconds: f64,
    /// wrk's latency percentiles; `None` for a pipelined run, whose histogram wrk fills
    /// wrongly (every response after a write's first is timed from that write, and its
    /// 75th-99th percentiles print as 0).
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Socket errors (connect, read, write, timeout) plus non-2xx answers.
    pub errors: u64,
    /// wrk's own CPU time (user + system) over the run: near `seconds`, wrk's one thread was
    /// saturated, and req/s is then bounded by the client rather than the server.
    pub client_cpu: Duration,
}

impl Report {
    pub fn rate(&self) -> f64 {
        self.requests / self.seconds.max(1e-9)
    }

    /// The share of one core wrk used over the run.
    pub fn client_busy(&self) -> f64 {
        self.client_cpu.as_secs_f64() / self.seconds.max(1e-9)
    }
}

/// CPU time (user + system) of this process's children that ended and were waited for.
fn children_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given, which points to one.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// True if `wrk` runs, after trying `apt-get install -y wrk` once if it did not.
pub fn ensure_installed() -> bool {
    let runs = || Command::new("wrk").arg("--version").output().is_ok();
    if runs() {
        return true;
    }
    println!("http: wrk is missing; trying `apt-get install -y wrk`");
    let _ = Command::new("apt-get").args(["install", "-y", "wrk"]).status();
    if !runs() {
        // Only an `apt-get update` away on a fresh Debian machine.
        let _ = Command::new("apt-get").arg("update").status();
        let _ = Command::new("apt-get").args(["install", "-y", "wrk"]).status();
    }
    runs()
}

/// True if `taskset` (util-linux) runs, to pin wrk.
pub fn taskset_available() -> bool {
    Command::new("taskset").arg("--version").output().is_ok()
}

/// wrk's script for pipelining: each write sends `depth` requests (the script's argument).
/// wrk then counts, and times, every response.
const PIPELINE_LUA: &str = r#"
init = function(args)
   local depth = tonumber(args[1]) or 1
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format()
   end
   req = table.concat(r)
end

request = function()
   return req
end
"#;

/// Where this run's pipelining script goes: the temporary directory, named by process.
fn pipeline_script_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("spindle-http-pipeline-{}.lua", std::process::id()))
}

/// Removes the pipelining script, if a pipelined run wrote it (a regular file of ours).
pub fn remove_pipeline_script() {
    let path = pipeline_script_path();
    if path.metadata().is_ok_and(|m| m.is_file()) {
        let _ = std::fs::remove_file(path);
    }
}

/// The pipelining script, written once into the temporary directory.
fn pipeline_script() -> Result<std::path::PathBuf, String> {
    let path = pipeline_script_path();
    if !path.exists() {
        std::fs::write(&path, PIPELINE_LUA)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(path)
}

/// Runs `wrk -t1 -c<conns> -d<secs>s --latency <url>`, on `cpu` if given (through taskset),
/// sending `depth` requests per write (TechEmpower's plaintext test pipelines 16) when `depth`
/// is over 1. wrk takes whole seconds only.
pub fn run(
    url: &str,
    conns: usize,
    secs: u64,
    cpu: Option<usize>,
    depth: usize,
) -> Result<Report, String> {
    let mut command = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string(), "wrk"]);
            c
        }
        None => Command::new("wrk"),
    };
    // wrk (exec'd by taskset) is the only child that ends during the run: the servers live on.
    command.args([
        "-t1",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "--latency",
        "--timeout",
        "5s",
    ]);
    if depth > 1 {
        command.arg("-s").arg(pipeline_script()?);
    }
    command.arg(url);
    if depth > 1 {
        command.args(["--", &depth.to_string()]);
    }
    let before = children_cpu();
    let output = command.output().map_err(|e| format!("cannot run wrk: {e}"))?;
    let client_cpu = children_cpu().saturating_sub(before);
    let text = String::from_utf8_lossy(&output.stdout);
    let report = parse(&text).ok_or_else(|| format!("cannot read wrk's report:\n{text}"))?;
    let (p50, p99) = if depth > 1 { (None, None) } else { (report.p50, report.p99) };
    Ok(Report { client_cpu, p50, p99, ..report })
}

/// Reads the lines of wrk's report this bench uses.
fn parse(text: &str) -> Option<Report> {
    let mut requests = None;
    let mut seconds = None;
    let (mut p50, mut p99) = (None, None);
    let mut errors = 0;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            // "228000 requests in 2.00s, 30.00MB read"
            [n, "requests", "in", secs, ..] => {
                requests = n.parse().ok();
                seconds = secs.trim_end_matches(',').trim_end_matches('s').parse().ok();
            }
            ["50%", value] => p50 = duration(value),
            ["99%", value] => p99 = duration(value),
            // "Socket errors: connect 0, read 0, write 0, timeout 0"
            ["Socket", "errors:", rest @ ..] => {
                errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
    let (requests, seconds) = (requests?, seconds?);
    Some(Report {
        requests,
        seconds,
        p50: Some(p50?),
        p99: Some(p99?),
        errors,
        client_cpu: Duration::ZERO,
    })
}

/// A wrk duration: "322.00us", "1.20ms", "2.01s", "1.5m".
fn duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let secs = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}
