//! A panic stays inside its coroutine.

mod util;

use std::cell::Cell;
use std::rc::Rc;

use spindle::{Builder, JoinError};

#[test]
fn join_returns_the_panic_with_message_and_location() {
    let err = spindle::run(|| spindle::spawn(|| -> u32 { panic!("bad input {}", 7) }).join());
    let panic = match err {
        Err(JoinError::Panicked(p)) => p,
        other => panic!("expected a panic, got {other:?}"),
    };
    assert_eq!(panic.message(), Some("bad input 7"));
    let location = panic.location().expect("the hook recorded a location");
    assert!(location.starts_with("tests/panic.rs:"), "location was {location}");
    assert_eq!(util::panic_message(&*panic.into_payload()), "bad input 7");
}

#[test]
fn non_string_payloads_come_back_intact() {
    let err = spindle::run(|| spindle::spawn(|| std::panic::panic_any(42u32)).join());
    let panic = err.unwrap_err().into_panic().unwrap();
    assert_eq!(panic.message(), None);
    assert_eq!(panic.payload().downcast_ref::<u32>(), Some(&42));
}

#[test]
fn others_go_on_after_a_panic() {
    let (a, b, c) = spindle::run(|| {
        let a = spindle::spawn(|| {
            spindle::yield_now();
            1
        });
        let b = spindle::spawn(|| -> i32 { panic!("only me") });
        let c = spindle::spawn(|| {
            spindle::yield_now();
            spindle::yield_now();
            3
        });
        (a.join().ok(), b.join().is_err(), c.join().ok())
    });
    assert_eq!((a, b, c), (Some(1), true, Some(3)));
}

#[test]
fn a_panic_unwinds_its_stack() {
    let drops = util::Drops::default();
    let d = drops.clone();
    spindle::run(move || {
        let h = spindle::spawn(move || {
            let _g = d.guard();
            spindle::yield_now();
            panic!("after a yield");
        });
        assert!(h.join().unwrap_err().is_panic());
    });
    assert_eq!(drops.count(), 1);
}

#[test]
fn a_panic_in_main_propagates_from_run_and_cancels_the_rest() {
    let drops = util::Drops::default();
    let d = drops.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        spindle::run(move || {
            let d2 = d.clone();
            let _worker = spindle::spawn(move || {
                let _g = d2.guard();
                spindle::sleep(std::time::Duration::from_secs(3600));
            });
            spindle::yield_now();
            panic!("main failed");
        })
    }));
    let payload = result.unwrap_err();
    assert_eq!(util::panic_message(&*payload), "main failed");
    assert_eq!(drops.count(), 1, "the sleeping worker was cancelled and unwound");
}

#[test]
fn runtime_is_usable_after_main_panicked() {
    let rt = spindle::Runtime::new().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.run(|| panic!("once"))));
    assert!(r.is_err());
    assert_eq!(rt.run(|| spindle::spawn(|| 5).join().unwrap()), 5);
}

#[test]
fn unjoined_panic_is_reported_with_the_coroutine_name() {
    if util::is_child("unjoined") {
        spindle::run(|| {
            let seen = Rc::new(Cell::new(false));
            let s = seen.clone();
            // Detached at once: nobody can join it.
            drop(
                Builder::new()
                    .name("reporter")
                    .spawn(|| -> () { panic!("lost in the void") })
                    .unwrap(),
            );
            // Kept but dropped unjoined after it finished.
            let h = Builder::new().name("kept").spawn(|| -> () { panic!("never joined") }).unwrap();
            // Forgotten: it never drops, so the runtime reports it when run ends.
            let f = Builder::new().name("forgotten").spawn(|| -> () { panic!("leaked") }).unwrap();
            // Joined: must not be reported.
            let j = Builder::new().name("joined").spawn(|| -> () { panic!("handled") }).unwrap();
            spindle::yield_now();
            drop(h);
            std::mem::forget(f);
            assert!(j.join().is_err());
            s.set(true);
            assert!(seen.get());
        });
        return;
    }
    let out = util::run_child("unjoined_panic_is_reported_with_the_coroutine_name", "unjoined");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stderr}");
    assert!(stderr.contains("'reporter' panicked at tests/panic.rs:"), "stderr: {stderr}");
    assert!(stderr.contains("lost in the void"), "stderr: {stderr}");
    assert!(stderr.contains("'kept' panicked at"), "stderr: {stderr}");
    assert!(stderr.contains("never joined"), "stderr: {stderr}");
    assert!(stderr.contains("'forgotten' panicked at"), "stderr: {stderr}");
    assert_eq!(stderr.matches("leaked").count(), 1, "reported once: {stderr}");
    assert_eq!(stderr.matches("never joined").count(), 1, "reported once: {stderr}");
    assert!(!stderr.contains("handled"), "a joined panic must not be reported: {stderr}");
    assert!(!stderr.contains("thread '"), "the default hook must stay quiet: {stderr}");
}

/// Run by `a_panic_with_rust_backtrace_on_the_smallest_stack_is_reported_not_fatal` in a
/// child process with `RUST_BACKTRACE=1` (the setting is read once per process).
#[test]
#[ignore = "run by a_panic_with_rust_backtrace_on_the_smallest_stack_is_reported_not_fatal"]
fn panics_on_the_smallest_stacks() {
    spindle::run(|| {
        // One joined, one not (its report is printed, with the backtrace symbolized).
        let joined = Builder::new().stack_size(spindle::MIN_STACK_SIZE).spawn(|| panic!("joined"));
        let dropped =
            Builder::new().stack_size(spindle::MIN_STACK_SIZE).spawn(|| panic!("dropped"));
        drop(dropped.unwrap());
        match joined.unwrap().join() {
            Err(JoinError::Panicked(p)) => {
                assert_eq!(p.message(), Some("joined"));
                assert!(p.backtrace().is_some(), "RUST_BACKTRACE=1 captures a backtrace");
            }
            other => panic!("expected the panic, got {other:?}"),
        }
        spindle::yield_now();
    });
}

#[test]
fn a_panic_with_rust_backtrace_on_the_smallest_stack_is_reported_not_fatal() {
    // Capturing and, above all, symbolizing a backtrace needs far more stack than 16 KiB: done
    // on a coroutine's own stack, it overflowed and aborted the process.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "panics_on_the_smallest_stacks", "--ignored", "--nocapture"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the child ran the test: {stdout}");
    assert!(!stderr.contains("overflowed its stack"), "{stderr}");
    assert!(stderr.contains("coroutine #2 panicked"), "the dropped one is reported: {stderr}");
    assert!(stderr.contains("stack backtrace:"), "with its backtrace: {stderr}");
}
