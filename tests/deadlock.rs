//! Deadlock is an error, not a hang.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use spindle::park::{self, Reason, WaitQueue};
use spindle::Builder;

fn deadlock_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let payload = std::panic::catch_unwind(f).expect_err("run should have reported a deadlock");
    util::panic_message(&*payload)
}

#[test]
fn a_lone_parked_main_is_reported() {
    let msg = deadlock_message(|| {
        spindle::run(|| {
            park::park(Reason::new("Gate::wait"), None, |_| {});
        })
    });
    assert!(msg.starts_with("spindle: deadlock"), "{msg}");
    assert!(msg.contains("'main' parked on Gate::wait"), "{msg}");
}

#[test]
fn the_report_names_every_parked_coroutine_and_its_reason() {
    let msg = deadlock_message(|| {
        spindle::run(|| {
            let a = Builder::new()
                .name("left")
                .spawn(|| {
                    park::park(Reason::on("Fork::take", 1), None, |_| {});
                })
                .unwrap();
            let _b = Builder::new()
                .name("right")
                .spawn(|| {
                    park::park(Reason::on("Fork::take", 2), None, |_| {});
                })
                .unwrap();
            let id = a.coroutine().id();
            a.join().unwrap();
            let _ = id;
        })
    });
    assert!(msg.contains("'main' parked on JoinHandle::join (#1)"), "{msg}");
    assert!(msg.contains("'left' parked on Fork::take (1)"), "{msg}");
    assert!(msg.contains("'right' parked on Fork::take (2)"), "{msg}");
}

#[test]
fn a_lock_deadlock_names_the_locks_by_number_and_who_holds_them() {
    use spindle::sync::{Mutex, ReentrantMutex};
    let msg = deadlock_message(|| {
        spindle::run(|| {
            let accounts = Rc::new(Mutex::new(0));
            let ledger = Rc::new(ReentrantMutex::new(0));
            let (a, l) = (accounts.clone(), ledger.clone());
            let transfer = Builder::new()
                .name("transfer")
                .spawn(move || {
                    let _held = a.lock();
                    spindle::yield_now();
                    let _ = l.lock();
                })
                .unwrap();
            let (a, l) = (accounts.clone(), ledger.clone());
            let audit = Builder::new()
                .name("audit")
                .spawn(move || {
                    let _held = l.lock();
                    spindle::yield_now();
                    let _ = a.lock();
                })
                .unwrap();
            transfer.join().unwrap();
            audit.join().unwrap();
        })
    });
    // Numbered in the order they were first waited on; no addresses anywhere.
    assert!(
        msg.contains(
            "#1 'transfer' parked on ReentrantMutex::lock (ReentrantMutex#1) held by #2 'audit'"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("#2 'audit' parked on Mutex::lock (Mutex#2) held by #1 'transfer'"),
        "{msg}"
    );
    assert!(!msg.contains("0x"), "{msg}");
}

#[test]
fn a_lock_held_by_main_names_main() {
    use spindle::sync::Mutex;
    let msg = deadlock_message(|| {
        spindle::run(|| {
            let m = Rc::new(Mutex::new(()));
            let _held = m.lock();
            let m2 = m.clone();
            let waiter = spindle::spawn(move || drop(m2.lock()));
            waiter.join().unwrap();
        })
    });
    assert!(msg.contains("#1 parked on Mutex::lock (Mutex#1) held by #0 'main'"), "{msg}");
}

#[test]
fn a_labelled_object_is_reported_by_its_label() {
    use spindle::sync::channel;
    let msg = deadlock_message(|| {
        spindle::run(|| {
            let (_tx, rx) = channel::unbounded::<u8>();
            rx.label("jobs");
            let _ = rx.recv();
        })
    });
    assert!(msg.contains("'main' parked on Receiver::recv (jobs#1)"), "{msg}");
}

#[test]
fn a_lock_whose_waiters_left_names_no_holder() {
    use spindle::sync::Mutex;
    let msg = deadlock_message(|| {
        spindle::run(|| {
            let m = Rc::new(Mutex::new(()));
            let guard = m.lock();
            let m2 = m.clone();
            let waiter =
                spindle::spawn(move || m2.lock_timeout(Duration::from_millis(1)).is_none());
            assert!(waiter.join().unwrap(), "the waiter timed out");
            drop(guard);
            let _held = m.lock();
            park::park(Reason::new("Gate::wait"), None, |_| {});
        })
    });
    assert!(msg.contains("'main' parked on Gate::wait"), "{msg}");
    assert!(!msg.contains("held by"), "{msg}");
}

/// The `N` of "(stack: N of SIZE bytes used)" on the report's line for `who`.
fn stack_used_in_report(msg: &str, who: &str, size: usize) -> usize {
    let line = msg.lines().find(|l| l.contains(who)).unwrap_or_else(|| panic!("{who}: {msg}"));
    line.split("(stack: ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(&format!(" of {size} bytes used)")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stack use on {line:?}"))
}

#[test]
fn the_report_shows_how_much_stack_each_coroutine_used() {
    let msg = deadlock_message(|| {
        spindle::run(|| {
            let _deep = Builder::new()
                .name("deep")
                .spawn(|| {
                    let mut frame = [7u8; 40 * 1024];
                    std::hint::black_box(&mut frame);
                    park::park(Reason::new("Deep::wait"), None, |_| {});
                })
                .unwrap();
            park::park(Reason::new("Gate::wait"), None, |_| {});
        })
    });
    let main = stack_used_in_report(&msg, "'main' parked on Gate::wait", 1 << 20);
    let deep = stack_used_in_report(&msg, "'deep' parked on Deep::wait", 64 * 1024);
    assert!((4096..64 * 1024).contains(&main), "{msg}");
    assert!((40 * 1024..=64 * 1024).contains(&deep), "{msg}");
}

#[test]
fn parked_coroutines_are_unwound_before_the_report() {
    let drops = util::Drops::default();
    let d = drops.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        spindle::run(move || {
            let d2 = d.clone();
            let h = spindle::spawn(move || {
                let _g = d2.guard();
                park::park(Reason::new("never"), None, |_| {});
            });
            let _g = d.guard();
            h.join().unwrap();
        })
    }));
    assert!(result.is_err());
    assert_eq!(drops.count(), 2, "main and the worker both unwound");
}

#[test]
fn a_pending_timer_is_not_a_deadlock() {
    util::run_virtual(|| {
        let queue = Rc::new(RefCell::new(WaitQueue::new()));
        let q = queue.clone();
        spindle::spawn(move || {
            spindle::sleep(Duration::from_secs(1));
            q.borrow_mut().wake_all();
        });
        park::park(Reason::new("until the timer"), None, |w| {
            queue.borrow_mut().push(w);
        });
    });
}

#[test]
fn an_outstanding_remote_waker_is_not_a_deadlock() {
    spindle::run(|| {
        let (tx, rx) = std::sync::mpsc::channel::<spindle::park::RemoteWaker>();
        let t = std::thread::spawn(move || rx.recv().unwrap().wake());
        park::park(Reason::new("other thread"), None, |w| {
            tx.send(park::remote_waker(w)).unwrap();
        });
        t.join().unwrap();
    });
}

#[test]
fn a_dropped_remote_waker_turns_into_a_deadlock_report() {
    let msg = deadlock_message(|| {
        spindle::run(|| {
            let (tx, rx) = std::sync::mpsc::channel::<spindle::park::RemoteWaker>();
            let t = std::thread::spawn(move || drop(rx.recv().unwrap()));
            park::park(Reason::new("a waker that is dropped"), None, |w| {
                tx.send(park::remote_waker(w)).unwrap();
            });
            t.join().unwrap();
        })
    });
    assert!(msg.contains("a waker that is dropped"), "{msg}");
}

#[test]
fn only_daemons_parked_after_main_is_not_a_deadlock() {
    spindle::run(|| {
        Builder::new()
            .daemon(true)
            .spawn(|| {
                park::park(Reason::new("forever"), None, |_| {});
            })
            .unwrap();
        spindle::yield_now();
    });
}

#[test]
fn an_idle_listener_does_not_hide_a_deadlock() {
    let msg = deadlock_message(|| {
        spindle::run(|| {
            // Registered with the reactor, but nobody is parked on it: it can wake nobody.
            let _listener = spindle::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let _udp = spindle::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let (_tx, rx) = spindle::sync::channel::bounded::<u8>(1);
            let _ = rx.recv(); // nobody will ever send
        })
    });
    assert!(msg.contains("Receiver::recv"), "{msg}");
}

#[test]
fn a_coroutine_parked_on_a_socket_is_not_a_deadlock() {
    spindle::run(|| {
        let listener = spindle::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let t = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
        let (_stream, _) = listener.accept().unwrap(); // parked until the thread connects
        t.join().unwrap();
    });
}

#[test]
fn a_leaked_stale_remote_waker_does_not_hide_a_deadlock() {
    let msg = deadlock_message(|| {
        // Real time: under virtual time a remote waker of a park in progress holds the clock
        // (the work it stands for takes no virtual time), so this park would never time out.
        spindle::run(|| {
            let deadline = spindle::time::now() + std::time::Duration::from_millis(1);
            // The park times out, so its remote waker (leaked, never dropped) is stale.
            let wake = park::park(Reason::new("once"), Some(deadline), |w| {
                std::mem::forget(park::remote_waker(w));
            });
            assert_eq!(wake, park::Wake::TimedOut);
            park::park(Reason::new("for ever"), None, |_| {});
        })
    });
    assert!(msg.contains("for ever"), "{msg}");
}
