//! The tutorial programs run and say what they should. `cargo test` builds the examples; these
//! tests run the binaries it built.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> Command {
    // target/<profile>/deps/examples-<hash> -> target/<profile>/examples/<name>
    let mut path: PathBuf = std::env::current_exe().unwrap();
    path.pop();
    path.pop();
    path.push("examples");
    path.push(name);
    assert!(path.exists(), "{} is not built; run through `cargo test`", path.display());
    Command::new(path)
}

fn run_ok(name: &str, args: &[&str]) -> (String, String) {
    let out = example(name).args(args).env("RUST_BACKTRACE", "0").output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{name} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    (stdout, stderr)
}

#[test]
fn panic_capture_prints_message_and_location() {
    let (stdout, _) = run_ok("panic_capture", &[]);
    assert!(stdout.contains("parse 8080: port 8080"), "{stdout}");
    assert!(
        stdout.contains("parse http: panicked: a port is a number from 0 to 65535"),
        "{stdout}"
    );
    assert!(stdout.contains("  at examples/panic_capture.rs:"), "{stdout}");
    assert!(stdout.contains("parse 443: port 443"), "{stdout}");
    assert!(stdout.ends_with("main goes on\n"), "{stdout}");
}

#[test]
fn timer_fires_unless_cancelled() {
    let (stdout, _) = run_ok("timer", &[]);
    assert!(stdout.contains("alarm cancelled before it fired: true"), "{stdout}");
    assert!(stdout.contains("reminder fired after"), "{stdout}");
    assert!(stdout.contains("reminder ran: true"), "{stdout}");
    assert!(stdout.contains("alarm ran: false"), "{stdout}");
    assert!(!stdout.contains("never printed"), "{stdout}");
}

#[test]
fn producer_consumer_loses_and_duplicates_nothing() {
    let (stdout, _) = run_ok("producer_consumer", &[]);
    assert!(
        stdout.contains("consumed 3000 of 3000 items, sum 4498500 (expected 4498500)"),
        "{stdout}"
    );
    for i in 0..2 {
        let took = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("consumer {i} took ")))
            .unwrap_or_else(|| panic!("{stdout}"));
        let n: u64 = took.trim_end_matches(" items").parse().unwrap();
        // Without a yield between items: only the handoff to a parked consumer gives the
        // second one any (it took 0 of 3000 before sends handed items over).
        assert!(n >= 300, "both consumers work: {stdout}");
    }
}

#[test]
fn logger_rolls_files_by_time_and_keeps_every_line() {
    let dir = std::env::temp_dir().join(format!("spindle-logger-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (stdout, _) =
        run_ok("logger", &["--dir", dir.to_str().unwrap(), "--roll-ms", "20", "--lines", "40"]);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        name.trim_start_matches("app.").trim_end_matches(".log").parse::<u32>().unwrap()
    });
    // 20 lines per worker, 5 ms apart: about 100 ms of logging, rolled every 20 ms.
    assert!(files.len() >= 2, "expected several files, got {files:?}");
    let mut lines: Vec<String> = Vec::new();
    for f in &files {
        lines.extend(std::fs::read_to_string(f).unwrap().lines().map(str::to_owned));
    }
    assert_eq!(lines.len(), 40, "{lines:?}");
    for w in 0..2 {
        let mine: Vec<_> =
            lines.iter().filter(|l| l.starts_with(&format!("worker {w} "))).collect();
        let expect: Vec<_> = (0..20).map(|i| format!("worker {w} line {i}")).collect();
        assert_eq!(mine, expect.iter().collect::<Vec<_>>(), "each worker's lines, in order, once");
    }
    assert!(stdout.contains(&format!("logged 40 lines into {} files", files.len())), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn logger_names_a_single_file_in_the_singular() {
    let dir = std::env::temp_dir().join(format!("spindle-logger-one-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Ten lines, 5 ms apart, never reach a roll after 60 s: one file.
    let (stdout, _) =
        run_ok("logger", &["--dir", dir.to_str().unwrap(), "--roll-ms", "60000", "--lines", "10"]);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert!(stdout.contains("logged 10 lines into 1 file in "), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn task_queue_joins_all_tasks() {
    let (stdout, _) = run_ok("task_queue", &[]);
    assert_eq!(stdout.trim(), "20 tasks done by 4 workers; sum of squares 2870");
}

#[test]
fn barrier_has_one_leader_per_lap() {
    let (stdout, _) = run_ok("barrier", &[]);
    let laps: Vec<_> = stdout.lines().collect();
    assert_eq!(
        laps,
        ["lap 1: all 3 runners in", "lap 2: all 3 runners in", "lap 3: all 3 runners in"]
    );
}

#[test]
fn event_releases_the_waiters_only_once_set() {
    let (stdout, _) = run_ok("event", &[]);
    let ready = stdout.find("ready: setting the event").expect(&stdout);
    for w in 0..3 {
        let started = stdout.find(&format!("worker {w} started")).expect(&stdout);
        assert!(started > ready, "worker {w} started before the event: {stdout}");
    }
    assert!(stdout.contains("nobody sets: false"), "{stdout}");
}

#[test]
fn semaphore_bounds_concurrency() {
    let (stdout, _) = run_ok("semaphore", &[]);
    assert_eq!(stdout.lines().filter(|l| l.contains("started")).count(), 6, "{stdout}");
    assert!(stdout.contains("at most 2 downloads ran at once"), "{stdout}");
    assert!(!stdout.contains("(3 running)"), "{stdout}");
}

#[test]
fn crawler_times_out_slow_sites_and_bounds_the_pool() {
    let (stdout, _) = run_ok("crawler", &["--sites", "12", "--slow", "3", "--fetchers", "4"]);
    assert!(
        stdout.contains("fetched 9 pages, 3 timed out, 0 failed; at most 4 requests in flight"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().filter(|l| l.contains(": page of site ")).count(), 9, "{stdout}");
    let (stdout, _) = run_ok("crawler", &["--sites", "6", "--slow", "1", "--fetchers", "2"]);
    assert!(
        stdout.contains("fetched 5 pages, 1 timed out, 0 failed; at most 2 requests in flight"),
        "{stdout}"
    );
}

#[test]
fn race_hunt_finds_each_planted_bug_and_replays_one() {
    let trace = std::env::temp_dir().join(format!("race-hunt-{}.json", std::process::id()));
    let (stdout, _) = run_ok("race_hunt", &["--quick", "--trace", trace.to_str().unwrap()]);
    assert_eq!(stdout.matches("found in").count(), 6, "{stdout}");
    assert!(stdout.contains("taken twice"), "{stdout}");
    assert!(stdout.contains("the replay fails the same way: true"), "{stdout}");
    assert!(stdout.contains("trace of the failing run: "), "{stdout}");
    let text = std::fs::read_to_string(&trace).unwrap();
    std::fs::remove_file(&trace).unwrap();
    let events: serde_json::Value = serde_json::from_str(&text).expect("the trace is JSON");
    let panicked =
        events.as_array().unwrap().iter().any(|e| e["ph"] == "i" && e["name"] == "panic");
    assert!(panicked, "the failing run's trace shows its panic");
}

/// The number after `key` in `line` (`"mean wait 3.93 s"` -> 3.93 for `"mean wait "`).
fn number_after(line: &str, key: &str) -> f64 {
    let rest = line.split(key).nth(1).unwrap_or_else(|| panic!("no {key:?} in {line}"));
    let end = rest.find(|c: char| c != '.' && !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().unwrap_or_else(|_| panic!("no number after {key:?} in {line}"))
}

#[test]
fn queue_sim_measures_the_waits_erlang_c_predicts() {
    let (stdout, _) =
        run_ok("queue_sim", &["--workers", "1,2,3", "--customers", "40000", "--seed", "1"]);
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("c=")).collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for row in rows {
        // Over seeds 1 to 8 at this length, the mean wait was at most 13.5% off Erlang C and
        // the 99th percentile at most 14.2%; the fraction that waited at most 0.011.
        let (mean, mean_c) = (number_after(row, "mean wait "), number_after(row, "s (Erlang C "));
        assert!((mean / mean_c - 1.0).abs() < 0.15, "{row}");
        let p99_part = row.split("p99 wait ").nth(1).unwrap();
        let (p99, p99_c) = (number_after(row, "p99 wait "), number_after(p99_part, "(Erlang C "));
        assert!((p99 / p99_c - 1.0).abs() < 0.2, "{row}");
        let (waited, waited_c) = (number_after(row, "waited "), number_after(row, "(Erlang C "));
        assert!((waited - waited_c).abs() < 0.02, "{row}");
    }
}

#[test]
fn queue_sim_writes_the_same_trace_for_a_seed() {
    let (a, b) = (
        std::env::temp_dir().join(format!("spindle-queue-sim-{}-a.json", std::process::id())),
        std::env::temp_dir().join(format!("spindle-queue-sim-{}-b.json", std::process::id())),
    );
    for path in [&a, &b] {
        let args = ["--workers", "2", "--customers", "100", "--trace", path.to_str().unwrap()];
        let (stdout, _) = run_ok("queue_sim", &args);
        assert!(stdout.contains("trace of the c=2 run written to"), "{stdout}");
    }
    let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::remove_file(&a).unwrap();
    std::fs::remove_file(&b).unwrap();
    assert!(ta == tb, "same seed, same trace");
    let trace: serde_json::Value = serde_json::from_slice(&ta).expect("the trace is JSON");
    let tracks: Vec<&str> = trace
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "M")
        .filter_map(|e| e["args"]["name"].as_str())
        .collect();
    for name in ["server 0", "server 1", "arrivals"] {
        assert!(tracks.iter().any(|t| t.ends_with(name)), "{name}: {tracks:?}");
    }
}

/// Starts the echo server on a free port with `args`; returns it and its address.
fn start_echo_server(args: &[&str]) -> (std::process::Child, String, impl std::io::BufRead) {
    let (child, line, stdout) = start_echo_server_line(args);
    let addr = line.trim().strip_prefix("echo_server listening on ").expect(&line).to_string();
    (child, addr, stdout)
}

/// Starts the echo server on a free port with `args`; returns it and the first line it printed.
fn start_echo_server_line(args: &[&str]) -> (std::process::Child, String, impl std::io::BufRead) {
    use std::io::BufRead;
    let mut child = example("echo_server")
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    (child, line, stdout)
}

/// Connects to the echo server, checks one echo, and returns the connection.
fn echo_once(addr: &str, message: &[u8]) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(message).unwrap();
    let mut back = vec![0u8; message.len()];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(back, message);
    conn
}

/// The deepest high-water mark the stack report gives.
fn deepest(report: &str) -> usize {
    report
        .split("deepest ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stack report: {report}"))
}

#[test]
fn echo_server_reports_its_connections_stack_use_after_n_connections() {
    use std::io::Read;
    let (mut child, addr, mut stdout) =
        start_echo_server(&["--stack-report", "--connections", "3"]);
    for i in 0..3 {
        drop(echo_once(&addr, format!("hello {i}").as_bytes()));
    }
    let mut report = String::new();
    stdout.read_to_string(&mut report).unwrap();
    assert!(child.wait().unwrap().success(), "{report}");
    assert!(
        report.contains("stack report: 3 connection coroutines on 32768-byte stacks"),
        "{report}"
    );
    // The 4 KiB buffer lives on the stack: at least two pages, far from all of it.
    let deepest = deepest(&report);
    assert!((8192..32768).contains(&deepest), "{report}");
}

#[test]
fn echo_server_prints_the_stack_report_on_ctrl_c_with_open_connections() {
    use std::io::Read;
    let (mut child, addr, mut stdout) = start_echo_server(&["--stack-report"]);
    let open = echo_once(&addr, b"still here");
    drop(echo_once(&addr, b"gone"));
    // SAFETY: kill(2) on the child we started, which is still running.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let mut report = String::new();
    stdout.read_to_string(&mut report).unwrap();
    assert!(child.wait().unwrap().success(), "{report}");
    assert!(
        report.contains("stack report: 2 connection coroutines"),
        "one open, one closed: {report}"
    );
    assert!(deepest(&report) >= 8192, "{report}");
    drop(open);
}

#[test]
fn echo_server_echoes_on_two_shards() {
    let (mut child, line, _stdout) = start_echo_server_line(&["--shards", "2"]);
    let addr = line
        .strip_prefix("echo_server listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let result = std::panic::catch_unwind(|| {
        assert_eq!(line.trim_end(), format!("echo_server listening on {addr} with 2 shards"));
        for i in 0..16 {
            drop(echo_once(&addr, format!("hello {i}").as_bytes()));
        }
    });
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    if let Err(panic) = result {
        eprintln!("echo_server stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        std::panic::resume_unwind(panic);
    }
}
