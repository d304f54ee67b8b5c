//! Semaphore and BoundedSemaphore: permit counting, FIFO handoff, timeouts, cancellation and
//! over-release.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use spindle::sync::{BoundedSemaphore, OverRelease, Semaphore};
use spindle::{spawn, yield_now, JoinError, Runtime};

#[test]
fn permits_limit_concurrency_and_come_back_when_guards_drop() {
    spindle::run(|| {
        let sem = Semaphore::new(2);
        let a = sem.acquire();
        let b = sem.try_acquire().unwrap();
        assert!(sem.try_acquire().is_none());
        assert_eq!(sem.available_permits(), 0);
        drop(a);
        drop(b);
        assert_eq!(sem.available_permits(), 2);
    });
}

#[test]
fn released_permit_goes_to_the_longest_waiter() {
    spindle::run(|| {
        let sem = Rc::new(Semaphore::new(1));
        let order = Rc::new(RefCell::new(Vec::new()));
        let held = sem.acquire();
        let waiters: Vec<_> = (0..4)
            .map(|i| {
                let (sem, order) = (sem.clone(), order.clone());
                spawn(move || {
                    let _p = sem.acquire();
                    order.borrow_mut().push(i);
                    yield_now();
                })
            })
            .collect();
        yield_now();
        drop(held);
        assert!(sem.try_acquire().is_none(), "the permit was handed to waiter 0");
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(*order.borrow(), [0, 1, 2, 3]);
    });
}

#[test]
fn acquire_timeout_gives_up_and_a_cancelled_waiter_takes_nothing() {
    let rt = Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let sem = Rc::new(Semaphore::new(0));
        assert!(sem.acquire_timeout(Duration::from_millis(5)).is_none());
        let s = sem.clone();
        let cancelled = spawn(move || s.acquire().forget());
        let s = sem.clone();
        let patient = spawn(move || s.acquire().forget());
        yield_now();
        cancelled.cancel();
        sem.add_permits(1);
        assert!(matches!(cancelled.join(), Err(JoinError::Cancelled)));
        patient.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
    });
}

#[test]
fn add_permits_grows_the_semaphore_and_gives_back_forgotten_permits() {
    spindle::run(|| {
        let sem = Rc::new(Semaphore::new(0));
        sem.add_permits(2);
        assert_eq!(sem.available_permits(), 2);
        sem.acquire().forget();
        assert_eq!(sem.available_permits(), 1);
        sem.add_permits(1);
        assert_eq!(sem.available_permits(), 2);
        sem.add_permits(0);
        assert_eq!(sem.available_permits(), 2);
        // Handed to waiters first, longest first; the rest become free permits.
        let (a, b) = (sem.acquire(), sem.acquire());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let s = sem.clone();
                spawn(move || s.acquire().forget())
            })
            .collect();
        yield_now();
        sem.add_permits(3);
        assert_eq!(sem.available_permits(), 1, "two handed over, one free");
        waiters.into_iter().for_each(|w| w.join().unwrap());
        drop((a, b));
        assert_eq!(sem.available_permits(), 3);
    });
}

#[test]
fn bounded_semaphore_rejects_over_release() {
    spindle::run(|| {
        let sem = BoundedSemaphore::new(2);
        assert_eq!(sem.release(), Err(OverRelease { limit: 2 }));
        sem.acquire().forget();
        {
            let _guarded = sem.acquire();
            assert_eq!(sem.available_permits(), 0);
        }
        assert_eq!(sem.release(), Ok(()));
        assert_eq!(sem.release(), Err(OverRelease { limit: 2 }));
        assert_eq!(sem.available_permits(), 2);
        assert_eq!(sem.limit(), 2);
        assert!(OverRelease { limit: 2 }.to_string().contains("too many"));
    });
}
