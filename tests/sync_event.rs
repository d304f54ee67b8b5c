//! Event: set/clear/is_set, wait and wait_timeout, waking every waiter.

use std::rc::Rc;
use std::time::Duration;

use spindle::sync::Event;
use spindle::{spawn, yield_now, JoinError, Runtime};

#[test]
fn set_wakes_every_waiter() {
    spindle::run(|| {
        let ev = Rc::new(Event::new());
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let ev = ev.clone();
                spawn(move || ev.wait())
            })
            .collect();
        yield_now();
        assert!(waiters.iter().all(|w| !w.is_finished()));
        ev.set();
        assert!(waiters.into_iter().all(|w| w.join().unwrap()));
    });
}

#[test]
fn wait_returns_at_once_while_set_and_parks_again_after_clear() {
    let rt = Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let ev = Event::new();
        assert!(!ev.is_set());
        ev.set();
        assert!(ev.is_set());
        assert!(ev.wait());
        assert!(ev.wait_timeout(Duration::ZERO));
        ev.clear();
        assert!(!ev.is_set());
        assert!(!ev.wait_timeout(Duration::from_millis(10)));
    });
}

#[test]
fn waiter_woken_by_set_returns_true_even_if_cleared_before_it_ran() {
    spindle::run(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let waiter = spawn(move || e.wait_timeout(Duration::from_secs(3600)));
        yield_now();
        ev.set();
        ev.clear();
        assert!(waiter.join().unwrap());
    });
}

#[test]
fn cancelled_waiter_unwinds() {
    spindle::run(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let waiter = spawn(move || e.wait());
        yield_now();
        waiter.cancel();
        assert!(matches!(waiter.join(), Err(JoinError::Cancelled)));
        ev.set();
    });
}
