//! Worker pools: a bound on concurrent coroutines.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use spindle::pool::Pool;

#[test]
fn never_more_than_size_at_once() {
    let peak = util::run_virtual(|| {
        let pool = Pool::new(4);
        let running = Rc::new(Cell::new(0));
        let peak = Rc::new(Cell::new(0));
        let hs: Vec<_> = (0..40u64)
            .map(|i| {
                let (running, peak) = (running.clone(), peak.clone());
                pool.spawn(move || {
                    running.set(running.get() + 1);
                    peak.set(peak.get().max(running.get()));
                    spindle::sleep(Duration::from_millis(1 + i % 7));
                    running.set(running.get() - 1);
                })
            })
            .collect();
        assert!(pool.active() <= 4);
        hs.into_iter().for_each(|h| h.join().unwrap());
        peak.get()
    });
    assert_eq!(peak, 4);
}

#[test]
fn spawn_waits_while_full() {
    util::run_virtual(|| {
        let pool = Pool::new(1);
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let _first = pool.spawn(move || {
            spindle::sleep(Duration::from_secs(1));
            l.borrow_mut().push("first done");
        });
        assert_eq!(pool.free(), 0);
        let start = spindle::time::now();
        let l = log.clone();
        let second = pool.spawn(move || l.borrow_mut().push("second ran"));
        assert_eq!(spindle::time::now() - start, Duration::from_secs(1), "spawn waited");
        second.join().unwrap();
        assert_eq!(*log.borrow(), ["first done", "second ran"]);
    });
}

#[test]
fn try_spawn_gives_the_closure_back_when_full() {
    spindle::run(|| {
        let pool = Pool::new(1);
        let busy = pool.spawn(spindle::yield_now);
        let refused = pool.try_spawn(|| 5);
        let f = refused.expect_err("the pool is full");
        assert_eq!(f(), 5);
        busy.join().unwrap();
        assert_eq!(pool.try_spawn(|| 6).ok().unwrap().join().unwrap(), 6);
    });
}

#[test]
fn map_keeps_input_order() {
    let out = util::run_virtual(|| {
        let pool = Pool::new(3);
        pool.map(0..12u64, |n| {
            spindle::sleep(Duration::from_millis(12 - n)); // later items finish first
            n * 10
        })
        .map(Result::unwrap)
        .collect::<Vec<_>>()
    });
    assert_eq!(out, (0..12).map(|n| n * 10).collect::<Vec<_>>());
}

#[test]
fn map_reports_a_panic_for_its_item_only() {
    let out = spindle::run(|| {
        Pool::new(2)
            .map([1, 2, 3], |n| if n == 2 { panic!("two") } else { n })
            .map(|r| r.map_err(|e| e.into_panic().unwrap().message().unwrap().to_owned()))
            .collect::<Vec<_>>()
    });
    assert_eq!(out, [Ok(1), Err("two".to_owned()), Ok(3)]);
}

#[test]
fn join_waits_for_everything() {
    let done = util::run_virtual(|| {
        let pool = Pool::new(2);
        let done = Rc::new(Cell::new(0));
        for i in 0..6 {
            let d = done.clone();
            drop(pool.spawn(move || {
                spindle::sleep(Duration::from_millis(i));
                d.set(d.get() + 1);
            }));
        }
        pool.join();
        assert_eq!(pool.active(), 0);
        done.get()
    });
    assert_eq!(done, 6);
}

#[test]
fn a_panicking_or_cancelled_worker_frees_its_slot() {
    spindle::run(|| {
        let pool = Pool::new(1);
        assert!(pool.spawn(|| -> () { panic!("x") }).join().is_err());
        assert_eq!(pool.free(), 1);
        let h = pool.spawn(|| spindle::sleep(Duration::from_secs(60)));
        spindle::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        assert_eq!(pool.free(), 1);
    });
}
