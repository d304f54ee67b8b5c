//! Helpers shared by the core tests.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Env var that tells a re-executed test binary which child scenario to run.
const CHILD_VAR: &str = "SPINDLE_TEST_CHILD";

/// True inside a child started by [`run_child`] for `scenario`.
pub fn is_child(scenario: &str) -> bool {
    std::env::var(CHILD_VAR).as_deref() == Ok(scenario)
}

/// Re-runs this test binary with only `test` selected and `scenario` set, and returns its
/// output. The test checks `is_child(scenario)` first and, in the child, does the dangerous
/// thing (overflow a stack, exhaust mappings) where it cannot take the test harness down.
pub fn run_child(test: &str, scenario: &str) -> Output {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, scenario)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("spawn the child test process")
}

/// A drop flag: counts how many times values made by `guard()` were dropped.
#[derive(Clone, Default)]
pub struct Drops(std::rc::Rc<std::cell::Cell<usize>>);

pub struct Guard(Drops);

impl Drops {
    pub fn guard(&self) -> Guard {
        Guard(self.clone())
    }
    pub fn count(&self) -> usize {
        self.0.get()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        (self.0).0.set((self.0).0.get() + 1);
    }
}

/// Runs `f` on a runtime with virtual time, so timers fire instantly and in order.
pub fn run_virtual<T>(f: impl FnOnce() -> T) -> T {
    spindle::Runtime::builder().virtual_time(true).build().unwrap().run(f)
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".into()
    }
}
