//! unblock: blocking work on a thread pool while coroutines go on.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn returns_the_value() {
    let v = spindle::run(|| spindle::unblock(|| (1..=100u64).sum::<u64>()));
    assert_eq!(v, 5050);
}

#[test]
fn runs_on_another_thread() {
    let (here, there) = spindle::run(|| {
        (std::thread::current().id(), spindle::unblock(|| std::thread::current().id()))
    });
    assert_ne!(here, there);
}

#[test]
fn a_panic_comes_back_to_the_caller() {
    let r = spindle::run(|| {
        spindle::spawn(|| spindle::unblock(|| -> u32 { panic!("in the pool") })).join()
    });
    let panic = r.unwrap_err().into_panic().unwrap();
    assert_eq!(panic.message(), Some("in the pool"));
}

#[test]
fn other_coroutines_run_while_it_blocks() {
    // The blocking job waits on a std channel that a coroutine feeds: if unblock blocked the
    // runtime thread, the coroutine could never send and this would deadlock.
    let got = spindle::run(|| {
        let (tx, rx) = mpsc::channel::<u32>();
        let job = spindle::spawn(move || spindle::unblock(move || rx.recv().unwrap() * 2));
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let feeder = spindle::spawn(move || {
            r.set(true);
            tx.send(21).unwrap();
        });
        feeder.join().unwrap();
        assert!(ran.get());
        job.join().unwrap()
    });
    assert_eq!(got, 42);
}

#[test]
fn many_calls_finish_with_a_small_pool() {
    let rt = spindle::Runtime::builder().blocking_threads(2).build().unwrap();
    let total = rt.run(|| {
        let hs: Vec<_> =
            (0..50u64).map(|i| spindle::spawn(move || spindle::unblock(move || i))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(total, (0..50).sum());
}

#[test]
fn an_in_flight_call_is_not_a_deadlock() {
    spindle::run(|| {
        spindle::unblock(|| std::thread::sleep(Duration::from_millis(20)));
    });
}

#[test]
fn a_cancelled_caller_unwinds_and_the_job_still_finishes() {
    let (done_tx, done_rx) = mpsc::channel();
    let drops = util::Drops::default();
    let d = drops.clone();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    spindle::run(move || {
        let h = spindle::spawn(move || {
            let _g = d.guard();
            spindle::unblock(move || {
                gate_rx.recv().unwrap();
                done_tx.send("finished").unwrap();
            });
        });
        spindle::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        gate_tx.send(()).unwrap();
    });
    assert_eq!(drops.count(), 1);
    assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)), Ok("finished"));
}

#[test]
fn idle_threads_exit() {
    if util::is_child("idle") {
        let threads = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter(|t| {
                    // A thread may exit between the listing and this read: it no longer counts.
                    let comm = t.as_ref().unwrap().path().join("comm");
                    std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == "spindle-unblock")
                })
                .count()
        };
        let rt = spindle::Runtime::builder()
            .blocking_keep_alive(Duration::from_millis(10))
            .build()
            .unwrap();
        rt.run(|| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    spindle::spawn(|| {
                        spindle::unblock(|| std::thread::sleep(Duration::from_millis(20)))
                    })
                })
                .collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
        });
        let busy = threads();
        // Wait (bounded) for the keep-alive to pass; exits are observed, not assumed.
        let mut idle = busy;
        for _ in 0..500 {
            idle = threads();
            if idle == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("BUSY={busy} IDLE={idle}");
        return;
    }
    let out = util::run_child("idle_threads_exit", "idle");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let line = stdout.lines().find_map(|l| l.split("BUSY=").nth(1)).expect(&stdout);
    let (busy, idle) = line.split_once(" IDLE=").unwrap();
    assert!(busy.parse::<usize>().unwrap() >= 1, "{stdout}");
    assert_eq!(idle.trim().parse::<usize>().unwrap(), 0, "{stdout}");
}

/// The address space this process has mapped, from /proc/self/status (`VmSize`).
fn mapped_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn unblock_with_no_thread_to_run_on_fails_clearly_and_never_runs_inline() {
    const TEST: &str = "unblock_with_no_thread_to_run_on_fails_clearly_and_never_runs_inline";
    const SCENARIO: &str = "unblock-no-thread";
    if !util::is_child(SCENARIO) {
        let out = util::run_child(TEST, SCENARIO);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("job ran: false"), "{stdout}");
        assert!(stdout.contains("could not start a thread for its blocking pool"), "{stdout}");
        assert!(stdout.contains("after the limit: 42"), "the runtime goes on: {stdout}");
        return;
    }
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = ran.clone();
    spindle::run(move || {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the struct we pass.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) }, 0);
        let saved = limit;
        // Room for small allocations, none for a new thread's 2 MiB stack.
        limit.rlim_cur = mapped_bytes() + (1 << 20);
        // SAFETY: lowering the soft limit below the hard one is always allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            spindle::unblock(move || r.store(true, std::sync::atomic::Ordering::SeqCst))
        }));
        // SAFETY: restores the soft limit we lowered; it stays below the unchanged hard one.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &saved) }, 0);
        let message = util::panic_message(&*result.expect_err("unblock must fail"));
        println!("{message}");
        println!("after the limit: {}", spindle::unblock(|| 42));
    });
    println!("job ran: {}", ran.load(std::sync::atomic::Ordering::SeqCst));
}
