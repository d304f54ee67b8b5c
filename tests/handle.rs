//! A runtime's Handle: other threads start coroutines on it and join them.

mod util;

use std::cell::{Cell, RefCell};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use spindle::park::{self, Reason, Waker};
use spindle::{Handle, JoinError, RemoteJoinHandle, Runtime};

fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
fn assert_send<T: Send>() {}

#[test]
fn handles_and_their_join_handles_cross_threads() {
    assert_send_sync_clone::<Handle>();
    assert_send::<RemoteJoinHandle<String>>();
}

#[test]
fn a_plain_thread_spawns_and_joins() {
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    let feeder = thread::spawn(move || {
        let jobs: Vec<_> = (0..10u64)
            .map(|i| handle.spawn(move || (i * i, thread::current().id())).unwrap())
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect::<Vec<_>>()
    });
    let runtime_thread = thread::current().id();
    let results = rt.run(|| spindle::unblock(move || feeder.join().unwrap()));
    let squares: Vec<u64> = results.iter().map(|(v, _)| *v).collect();
    assert_eq!(squares, (0..10).map(|i| i * i).collect::<Vec<_>>());
    assert!(results.iter().all(|(_, t)| *t == runtime_thread), "ran on the runtime's thread");
}

#[test]
fn a_coroutine_of_the_same_runtime_joins() {
    let got = spindle::run(|| {
        let handle = spindle::handle();
        let job = handle.spawn(|| {
            spindle::sleep(Duration::from_millis(1));
            "done"
        });
        job.unwrap().join().unwrap()
    });
    assert_eq!(got, "done");
}

#[test]
fn a_coroutine_of_another_runtime_joins() {
    let (handle_tx, handle_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        spindle::run(move || {
            handle_tx.send(spindle::handle()).unwrap();
            // Stays alive until told; the wait is a blocking call, so it goes to the pool.
            spindle::unblock(move || stop_rx.recv().unwrap());
            thread::current().id()
        })
    });
    let handle: Handle = handle_rx.recv().unwrap();
    let ran_on = spindle::run(move || {
        // This main parks (it does not block its thread) while the other runtime works.
        let job = handle.spawn(|| thread::current().id()).unwrap();
        job.join().unwrap()
    });
    stop_tx.send(()).unwrap();
    let server_thread = server.join().unwrap();
    assert_eq!(ran_on, server_thread);
}

#[test]
fn spawn_after_the_runtime_finished_is_an_error() {
    let handle = spindle::run(spindle::handle);
    assert!(handle.spawn(|| 1).is_err());
    let err = handle.spawn(|| 1).unwrap_err();
    assert!(err.to_string().contains("the runtime has finished"), "{err}");
}

#[test]
fn a_request_waits_for_the_next_run() {
    let rt = Runtime::new().unwrap();
    let job = rt.handle().spawn(|| 5).unwrap();
    assert!(!job.is_finished());
    rt.run(|| ());
    assert!(job.is_finished());
    assert_eq!(job.join().unwrap(), 5);
}

#[test]
fn a_request_the_runtime_never_ran_is_cancelled_not_lost() {
    let rt = Runtime::new().unwrap();
    let job = rt.handle().spawn(|| 5).unwrap();
    drop(rt);
    assert!(matches!(job.join(), Err(JoinError::Cancelled)));
}

#[test]
fn a_coroutine_spawned_through_a_handle_keeps_run_going() {
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let feeder = thread::spawn(move || {
        go_rx.recv().unwrap();
        handle
            .spawn(|| {
                spindle::sleep(Duration::from_millis(5));
                7
            })
            .unwrap()
    });
    // main asks for the spawn and waits only until it is queued; then it returns, and `run`
    // still waits for the coroutine (a non-daemon), which therefore finishes.
    let job = rt.run(move || {
        go_tx.send(()).unwrap();
        spindle::unblock(move || feeder.join().unwrap())
    });
    assert_eq!(job.join().unwrap(), 7);
}

thread_local! {
    /// Where the coroutines waiting at the gate leave their wakers, for a job spawned through a
    /// Handle to wake them.
    static GATE: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
    static OPENED: Cell<bool> = const { Cell::new(false) };
}

/// Parks the calling coroutine on this thread's gate until a job opens it.
fn wait_at_gate() {
    while !OPENED.with(Cell::get) {
        let wake = park::park(Reason::new("gate"), None, |w| GATE.with(|g| g.borrow_mut().push(w)));
        if wake == park::Wake::Cancelled {
            park::unwind();
        }
    }
}

/// Opens this thread's gate: every coroutine waiting there goes on.
fn open_gate() {
    OPENED.with(|o| o.set(true));
    for w in GATE.with(|g| std::mem::take(&mut *g.borrow_mut())) {
        w.wake();
    }
}

#[test]
fn a_handle_on_another_thread_is_not_a_deadlock() {
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    let (parked_tx, parked_rx) = mpsc::channel::<()>();
    let opener = thread::spawn(move || {
        // main says it parks (and then parks without giving the thread up in between):
        // only this thread, through its handle, can let it go on.
        parked_rx.recv().unwrap();
        handle.spawn(open_gate).unwrap().join().unwrap();
    });
    rt.run(|| {
        parked_tx.send(()).unwrap();
        wait_at_gate();
    });
    opener.join().unwrap();
}

#[test]
fn a_true_deadlock_is_still_reported_once_the_handles_are_gone() {
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    let (parked_tx, parked_rx) = mpsc::channel::<()>();
    let dropper = thread::spawn(move || {
        parked_rx.recv().unwrap();
        drop(handle); // spawns nothing: nobody will ever open the gate
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.run(|| {
            parked_tx.send(()).unwrap();
            wait_at_gate();
        })
    }));
    dropper.join().unwrap();
    let msg = util::panic_message(&*result.expect_err("a deadlock is reported"));
    assert!(msg.starts_with("spindle: deadlock"), "{msg}");
    assert!(msg.contains("'main' parked on gate"), "{msg}");
}

#[test]
fn a_coroutine_joining_a_stuck_handle_coroutine_of_its_runtime_is_a_deadlock() {
    // The joiner parks on its own runtime: no other thread is involved, so this is reported.
    let result = std::panic::catch_unwind(|| {
        spindle::run(|| {
            let job = spindle::handle()
                .spawn(|| {
                    park::park(Reason::new("never"), None, |_| {});
                })
                .unwrap();
            job.join().unwrap();
        })
    });
    let msg = util::panic_message(&*result.expect_err("a deadlock is reported"));
    assert!(msg.contains("'main' parked on RemoteJoinHandle::join"), "{msg}");
    assert!(msg.contains("parked on never"), "{msg}");
}

#[test]
fn a_live_handle_does_not_hold_the_virtual_clock() {
    let slept = util::run_virtual(|| {
        let _handle = spindle::handle();
        let start = spindle::time::now();
        spindle::sleep(Duration::from_secs(3600));
        spindle::time::now() - start
    });
    assert_eq!(slept, Duration::from_secs(3600));
}

#[test]
fn join_timeout_on_a_plain_thread_gives_up_and_the_handle_stays_usable() {
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    let (parked_tx, parked_rx) = mpsc::channel::<()>();
    let joiner = thread::spawn(move || {
        parked_rx.recv().unwrap();
        // The job can only end once the gate opens, and nobody opens it yet.
        let mut job = handle.spawn(|| 3).unwrap();
        let gated = handle
            .spawn(|| {
                wait_at_gate();
                4
            })
            .unwrap();
        assert_eq!(job.join_timeout(Duration::from_secs(10)).unwrap(), 3);
        let mut gated = gated;
        assert!(matches!(gated.join_timeout(Duration::from_millis(1)), Err(JoinError::TimedOut)));
        assert!(!gated.is_finished());
        // Opens the gate for the job and for main, which waits there too.
        handle.spawn(open_gate).unwrap().join().unwrap();
        assert_eq!(gated.join().unwrap(), 4);
    });
    rt.run(|| {
        parked_tx.send(()).unwrap();
        wait_at_gate();
    });
    joiner.join().unwrap();
}

#[test]
fn cancel_from_another_thread_unwinds_the_coroutine() {
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let canceller = thread::spawn(move || {
        let job = handle
            .spawn(move || {
                started_tx.send(()).unwrap();
                spindle::sleep(Duration::from_secs(3600));
            })
            .unwrap();
        started_rx.recv().unwrap();
        job.cancel();
        matches!(job.join(), Err(JoinError::Cancelled))
    });
    let cancelled = rt.run(|| spindle::unblock(move || canceller.join().unwrap()));
    assert!(cancelled);
}

#[test]
fn a_request_cancelled_before_it_started_never_runs() {
    let rt = Runtime::new().unwrap();
    let job = rt.handle().spawn(|| panic!("must not run")).unwrap();
    job.cancel();
    rt.run(|| ());
    assert!(matches!(job.join(), Err(JoinError::Cancelled)));
}

#[test]
fn a_panic_reaches_the_joiner() {
    let rt = Runtime::new().unwrap();
    let job = rt.handle().spawn(|| -> u32 { panic!("remote boom") }).unwrap();
    rt.run(|| ());
    let err = job.join().unwrap_err();
    assert_eq!(err.into_panic().unwrap().message(), Some("remote boom"));
}

#[test]
fn cancel_all_unwinds_every_coroutine_and_run_says_so() {
    let drops = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    let (parked_tx, parked_rx) = mpsc::channel::<()>();
    let stopper = thread::spawn(move || {
        parked_rx.recv().unwrap();
        handle.cancel_all();
    });
    let d = drops.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.run(move || {
            let d2 = d.clone();
            let worker = spindle::spawn(move || {
                let _count = Count(d2);
                spindle::sleep(Duration::from_secs(3600));
            });
            let _count = Count(d);
            spindle::yield_now(); // the worker starts its sleep
            parked_tx.send(()).unwrap();
            let _ = worker.join();
            spindle::sleep(Duration::from_secs(3600));
        })
    }));
    stopper.join().unwrap();
    let msg = util::panic_message(&*result.expect_err("main was cancelled"));
    assert!(msg.contains("main was cancelled"), "{msg}");
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 2, "main and the worker unwound");
}

#[test]
fn joining_on_the_runtimes_own_thread_outside_run_is_refused() {
    let rt = Runtime::new().unwrap();
    let job = rt.handle().spawn(|| 1).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.join()));
    let msg = util::panic_message(&*result.expect_err("it would wait forever"));
    assert!(msg.contains("would wait forever"), "{msg}");
}

#[test]
fn builder_spawn_on_names_the_coroutine() {
    let rt = Runtime::new().unwrap();
    let job = spindle::Builder::new()
        .name("fed")
        .spawn_on(&rt.handle(), || spindle::current().name().map(str::to_owned))
        .unwrap();
    rt.run(|| ());
    assert_eq!(job.join().unwrap().as_deref(), Some("fed"));
}
