//! Condvar: wait/notify with a Mutex, wait_while, timeouts, and cancellation that loses no
//! notification.

use std::rc::Rc;
use std::time::Duration;

use spindle::sync::{Condvar, Mutex};
use spindle::{spawn, yield_now, JoinError, Runtime};

#[test]
fn notify_one_wakes_waiters_in_fifo_order() {
    spindle::run(|| {
        let pair = Rc::new((Mutex::new(Vec::new()), Condvar::new()));
        let waiters: Vec<_> = (0..3)
            .map(|i| {
                let p = pair.clone();
                spawn(move || {
                    let g = p.0.lock();
                    let mut g = p.1.wait(g);
                    g.push(i);
                })
            })
            .collect();
        yield_now();
        for _ in 0..3 {
            pair.1.notify_one();
            yield_now();
        }
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(*pair.0.lock(), [0, 1, 2]);
    });
}

#[test]
fn notify_all_wakes_everyone_and_wait_while_rechecks_the_condition() {
    spindle::run(|| {
        let pair = Rc::new((Mutex::new(0), Condvar::new()));
        let waiters: Vec<_> = (1..=4)
            .map(|target| {
                let p = pair.clone();
                spawn(move || *p.1.wait_while(p.0.lock(), |n| *n < target))
            })
            .collect();
        for _ in 0..4 {
            yield_now();
            *pair.0.lock() += 1;
            pair.1.notify_all();
        }
        let seen: Vec<i32> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        assert!(seen.iter().zip(1..).all(|(&s, t)| s >= t), "{seen:?}");
    });
}

#[test]
fn wait_holds_no_lock_while_parked() {
    spindle::run(|| {
        let pair = Rc::new((Mutex::new(false), Condvar::new()));
        let p = pair.clone();
        let waiter = spawn(move || {
            let g = p.1.wait_while(p.0.lock(), |ready| !*ready);
            *g
        });
        yield_now();
        assert!(pair.0.try_lock().is_some(), "the waiter must release the mutex while it waits");
        *pair.0.lock() = true;
        pair.1.notify_one();
        assert!(waiter.join().unwrap());
    });
}

#[test]
fn wait_timeout_reports_timeout_and_relocks() {
    let rt = Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let m = Mutex::new(1);
        let cv = Condvar::new();
        let (g, r) = cv.wait_timeout(m.lock(), Duration::from_millis(10));
        assert!(r.timed_out());
        assert_eq!(*g, 1);
        assert!(m.is_locked());
        drop(g);
        let (g, r) = cv.wait_timeout_while(m.lock(), Duration::from_millis(10), |n| *n == 1);
        assert!(r.timed_out());
        drop(g);
    });
}

#[test]
fn notified_waiter_cancelled_while_relocking_passes_the_notification_on() {
    spindle::run(|| {
        let pair = Rc::new((Mutex::new(0), Condvar::new()));
        let p = pair.clone();
        let first = spawn(move || {
            let g = p.1.wait(p.0.lock());
            drop(g);
        });
        let p = pair.clone();
        let second = spawn(move || {
            let mut g = p.1.wait(p.0.lock());
            *g += 1;
        });
        yield_now(); // both wait on the condvar
        let held = pair.0.lock();
        pair.1.notify_one(); // wakes `first`, which then parks to relock
        yield_now();
        first.cancel(); // cancelled while relocking: the notification goes to `second`
        drop(held);
        assert!(matches!(first.join(), Err(JoinError::Cancelled)));
        second.join().unwrap();
        assert_eq!(*pair.0.lock(), 1);
    });
}

#[test]
fn cancelled_waiter_leaves_the_queue_and_the_mutex_free() {
    spindle::run(|| {
        let pair = Rc::new((Mutex::new(()), Condvar::new()));
        let p = pair.clone();
        let waiter = spawn(move || drop(p.1.wait(p.0.lock())));
        yield_now();
        waiter.cancel();
        assert!(matches!(waiter.join(), Err(JoinError::Cancelled)));
        assert!(!pair.0.is_locked());
    });
}
