//! Mutex: mutual exclusion, FIFO handoff, timeouts and cancellation leave no stuck lock.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use spindle::sync::Mutex;
use spindle::{spawn, yield_now, JoinError, Runtime};

fn virtual_runtime() -> Runtime {
    Runtime::builder().virtual_time(true).build().unwrap()
}

#[test]
fn released_lock_goes_to_the_longest_waiter_and_cannot_be_barged() {
    spindle::run(|| {
        let lock = Rc::new(Mutex::new(Vec::new()));
        let guard = lock.lock();
        let waiters: Vec<_> = (0..5)
            .map(|i| {
                let lock = lock.clone();
                spawn(move || lock.lock().push(i))
            })
            .collect();
        yield_now(); // all five park on the lock, in spawn order
        assert!(lock.try_lock().is_none());
        drop(guard);
        // Handed to waiter 0, which has not run yet: still locked for everyone else.
        assert!(lock.is_locked());
        assert!(lock.try_lock().is_none());
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(*lock.lock(), [0, 1, 2, 3, 4]);
        assert!(!lock.is_locked());
    });
}

#[test]
fn guard_gives_exclusive_access_across_yields() {
    spindle::run(|| {
        let lock = Rc::new(Mutex::new(0u64));
        let inside = Rc::new(std::cell::Cell::new(0));
        let workers: Vec<_> = (0..20)
            .map(|_| {
                let (lock, inside) = (lock.clone(), inside.clone());
                spawn(move || {
                    for _ in 0..10 {
                        let mut g = lock.lock();
                        inside.set(inside.get() + 1);
                        assert_eq!(inside.get(), 1, "two coroutines inside the lock");
                        yield_now();
                        *g += 1;
                        inside.set(inside.get() - 1);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(*lock.lock(), 200);
    });
}

#[test]
fn lock_timeout_gives_up_and_the_next_waiter_gets_the_lock() {
    virtual_runtime().run(|| {
        let lock = Rc::new(Mutex::new(0));
        let guard = lock.lock();
        let l = lock.clone();
        let impatient = spawn(move || l.lock_timeout(Duration::from_millis(10)).is_none());
        let l = lock.clone();
        let patient = spawn(move || {
            *l.lock() += 1;
        });
        yield_now();
        spindle::sleep(Duration::from_millis(50));
        assert!(impatient.join().unwrap(), "lock_timeout should time out");
        drop(guard);
        patient.join().unwrap();
        assert_eq!(*lock.lock(), 1);
        assert!(lock.lock_timeout(Duration::from_millis(1)).is_some());
    });
}

#[test]
fn cancelled_waiter_is_skipped_by_unlock() {
    spindle::run(|| {
        let lock = Rc::new(Mutex::new(Vec::new()));
        let guard = lock.lock();
        let l = lock.clone();
        let first = spawn(move || l.lock().push("first"));
        let l = lock.clone();
        let second = spawn(move || l.lock().push("second"));
        yield_now();
        first.cancel();
        drop(guard);
        assert!(matches!(first.join(), Err(JoinError::Cancelled)));
        second.join().unwrap();
        assert_eq!(*lock.lock(), ["second"]);
    });
}

#[test]
fn waiter_handed_the_lock_then_cancelled_owns_it_and_releases_it_when_it_unwinds() {
    spindle::run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let lock = Rc::new(Mutex::new(()));
        let guard = lock.lock();
        let (l, lg) = (lock.clone(), log.clone());
        let first = spawn(move || {
            let _g = l.lock();
            lg.borrow_mut().push("first got the lock");
            spindle::sleep(Duration::from_secs(3600)); // unwinds here: cancelled
            lg.borrow_mut().push("unreachable");
        });
        let (l, lg) = (lock.clone(), log.clone());
        let second = spawn(move || {
            let _g = l.lock();
            lg.borrow_mut().push("second got the lock");
        });
        yield_now();
        drop(guard); // handed to `first`, which has not run yet
        first.cancel(); // too late to take the lock back: the wake came first
        assert!(matches!(first.join(), Err(JoinError::Cancelled)));
        second.join().unwrap();
        assert_eq!(*log.borrow(), ["first got the lock", "second got the lock"]);
        assert!(!lock.is_locked());
    });
}

#[test]
fn enclosing_timeout_unwinds_a_waiting_lock_without_trace() {
    virtual_runtime().run(|| {
        let lock = Rc::new(Mutex::new(0));
        let guard = lock.lock();
        let r = spindle::time::timeout(Duration::from_millis(5), || *lock.lock() += 1);
        assert!(r.is_err());
        drop(guard);
        assert!(!lock.is_locked());
        *lock.lock() += 10;
        assert_eq!(*lock.lock(), 10);
    });
}

#[test]
fn panicking_holder_releases_the_lock() {
    spindle::run(|| {
        let lock = Rc::new(Mutex::new(1));
        let l = lock.clone();
        let h = spawn(move || {
            let _g = l.lock();
            panic!("boom");
        });
        assert!(h.join().unwrap_err().is_panic());
        assert_eq!(*lock.try_lock().expect("released by the unwind"), 1);
    });
}

#[test]
fn guards_print_the_data_as_std_guards_do() {
    spindle::run(|| {
        let m = spindle::sync::Mutex::new(7);
        assert_eq!(format!("{} {:?}", m.lock(), m.lock_timeout(Duration::ZERO)), "7 None");
        let r = spindle::sync::RwLock::new("text");
        assert_eq!(format!("{} {:?}", r.read(), r.read()), "text \"text\"");
        assert_eq!(format!("{}", r.write()), "text");
        let re = spindle::sync::ReentrantMutex::new(1.5);
        let outer = re.lock();
        assert_eq!(format!("{} {:?}", outer, re.lock()), "1.5 1.5");
    });
}
