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
