//! Helpers shared by the `net_*` tests: deterministic data, descriptor limits, child processes.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use spindle::JoinHandle;

/// The runtime's deterministic generator (splitmix64), so failures repeat.
#[path = "../../runtime/src/rng.rs"]
mod rng;
pub use rng::Rng;

pub mod fd_limit;

/// `len` bytes that depend on `seed` and on their position.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// Lets other coroutines run until `handle`'s coroutine is parked; panics if it never parks.
pub fn until_parked<T>(handle: &JoinHandle<T>) -> &'static str {
    for _ in 0..1000 {
        if let Some(reason) = handle.coroutine().parked_on() {
            return reason.what;
        }
        spindle::yield_now();
    }
    panic!("the coroutine never parked");
}

/// The environment variable that tells a re-executed test binary to play the child's part.
pub const CHILD_ENV: &str = "SPINDLE_NET_TEST_CHILD";

/// True in the child started by [`run_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs test `name` of this test binary again in a child process (where `is_child()` holds),
/// kills it after `limit`, and returns its exit status and output.
pub fn run_child(name: &str, limit: Duration) -> (ExitStatus, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-execute the test binary");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child process of {name} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut output = String::new();
    child.stdout.take().unwrap().read_to_string(&mut output).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut output).unwrap();
    (status, output)
}
