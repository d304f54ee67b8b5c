//! WaitGroup, OnceCell and ReentrantMutex (Python's RLock).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use spindle::sync::{OnceCell, ReentrantMutex, WaitGroup};
use spindle::{spawn, yield_now, JoinError, Runtime};

#[test]
fn wait_group_waits_for_every_done() {
    spindle::run(|| {
        let wg = Rc::new(WaitGroup::new());
        let finished = Rc::new(Cell::new(0));
        for i in 0..5 {
            wg.add(1);
            let (wg, finished) = (wg.clone(), finished.clone());
            spawn(move || {
                for _ in 0..i {
                    yield_now();
                }
                finished.set(finished.get() + 1);
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(finished.get(), 5);
        assert_eq!(wg.count(), 0);
    });
}

#[test]
fn wait_group_wait_timeout_and_too_many_done() {
    let rt = Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let wg = WaitGroup::new();
        assert!(wg.wait_timeout(Duration::ZERO));
        wg.add(1);
        assert!(!wg.wait_timeout(Duration::from_millis(5)));
        wg.done();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wg.done()));
        let msg = *r.unwrap_err().downcast::<&str>().unwrap();
        assert!(msg.contains("more times than"), "{msg}");
    });
}

#[test]
fn once_cell_runs_one_initializer_and_others_wait_for_it() {
    spindle::run(|| {
        let cell = Rc::new(OnceCell::new());
        let runs = Rc::new(Cell::new(0));
        let readers: Vec<_> = (0..4)
            .map(|i| {
                let (cell, runs) = (cell.clone(), runs.clone());
                spawn(move || {
                    *cell.get_or_init(|| {
                        runs.set(runs.get() + 1);
                        yield_now(); // the others ask meanwhile
                        i
                    })
                })
            })
            .collect();
        let values: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(values, [0, 0, 0, 0]);
        assert_eq!(runs.get(), 1);
        assert_eq!(cell.set(9), Err(9));
        assert_eq!(cell.get(), Some(&0));
    });
}

#[test]
fn once_cell_initializer_cancelled_lets_the_next_waiter_initialize() {
    spindle::run(|| {
        let cell = Rc::new(OnceCell::new());
        let c = cell.clone();
        let doomed = spawn(move || {
            *c.get_or_init(|| {
                spindle::sleep(Duration::from_secs(3600));
                1
            })
        });
        yield_now();
        let c = cell.clone();
        let next = spawn(move || *c.get_or_init(|| 2));
        yield_now();
        doomed.cancel();
        assert!(matches!(doomed.join(), Err(JoinError::Cancelled)));
        assert_eq!(next.join().unwrap(), 2);
    });
}

#[test]
#[should_panic(expected = "asked for its own cell")]
fn once_cell_reentrant_initialization_panics() {
    spindle::run(|| {
        let cell = OnceCell::new();
        cell.get_or_init(|| *cell.get_or_init(|| 1));
    });
}

#[test]
fn reentrant_mutex_can_be_relocked_by_its_holder_and_excludes_others() {
    spindle::run(|| {
        let lock = Rc::new(ReentrantMutex::new(RefCell::new(Vec::new())));
        let outer = lock.lock();
        let inner = lock.lock();
        inner.borrow_mut().push("main");
        let l = lock.clone();
        let other = spawn(move || {
            assert!(l.try_lock().is_none());
            l.lock().borrow_mut().push("other");
        });
        yield_now();
        drop(inner);
        yield_now();
        assert!(!other.is_finished(), "released only when the outer guard drops");
        drop(outer);
        other.join().unwrap();
        assert_eq!(*lock.lock().borrow(), ["main", "other"]);
        assert!(!lock.is_locked());
    });
}

#[test]
fn reentrant_mutex_hands_over_in_fifo_order_and_times_out() {
    let rt = Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let lock = Rc::new(ReentrantMutex::new(RefCell::new(Vec::new())));
        let held = lock.lock();
        let l = lock.clone();
        let impatient = spawn(move || l.lock_timeout(Duration::from_millis(5)).is_none());
        let waiters: Vec<_> = (0..3)
            .map(|i| {
                let l = lock.clone();
                spawn(move || l.lock().borrow_mut().push(i))
            })
            .collect();
        yield_now();
        spindle::sleep(Duration::from_millis(10));
        assert!(impatient.join().unwrap());
        drop(held);
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(*lock.lock().borrow(), [0, 1, 2]);
    });
}
