//! Cancellation wakes a parked coroutine and unwinds it.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use spindle::park::{self, Reason, Wake};
use spindle::JoinError;

#[test]
fn cancelling_a_parked_coroutine_unwinds_it() {
    let drops = util::Drops::default();
    let d = drops.clone();
    spindle::run(move || {
        let h = spindle::spawn(move || {
            let _g = d.guard();
            spindle::sleep(Duration::from_secs(3600));
            unreachable!("a cancelled sleep does not return");
        });
        spindle::yield_now();
        h.cancel();
        assert!(matches!(h.join(), Err(JoinError::Cancelled)));
    });
    assert_eq!(drops.count(), 1);
}

#[test]
fn cancelling_a_finished_coroutine_is_a_no_op() {
    let v = spindle::run(|| {
        let h = spindle::spawn(|| 9);
        spindle::yield_now();
        assert!(h.is_finished());
        h.cancel();
        h.join()
    });
    assert_eq!(v.unwrap(), 9);
}

#[test]
fn a_coroutine_cancelled_before_it_ran_never_runs() {
    let ran = Rc::new(Cell::new(false));
    let captured = Rc::new(());
    let (r, c) = (ran.clone(), captured.clone());
    let result = spindle::run(move || {
        let h = spindle::spawn(move || {
            let _keep = c;
            r.set(true);
        });
        h.cancel();
        h.join()
    });
    assert!(matches!(result, Err(JoinError::Cancelled)));
    assert!(!ran.get());
    assert_eq!(Rc::strong_count(&captured), 1, "its closure was dropped");
}

#[test]
fn a_busy_coroutine_is_cancelled_at_its_next_yield() {
    let count = spindle::run(|| {
        let n = Rc::new(Cell::new(0u32));
        let m = n.clone();
        let h = spindle::spawn(move || loop {
            m.set(m.get() + 1);
            spindle::yield_now();
        });
        spindle::yield_now(); // it runs once and yields
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        n.get()
    });
    assert_eq!(count, 1);
}

#[test]
fn every_park_after_cancel_returns_cancelled() {
    let wakes = spindle::run(|| {
        let log = Rc::new(std::cell::RefCell::new(Vec::new()));
        let l = log.clone();
        let h = spindle::spawn(move || {
            // Swallow the first cancellation (as careless code might) and park again.
            let first = park::park(Reason::new("first"), None, |_| {});
            l.borrow_mut().push(first);
            let second = park::park(Reason::new("second"), None, |_| {});
            l.borrow_mut().push(second);
        });
        spindle::yield_now();
        h.cancel();
        // The coroutine returns normally since it never unwound: join gives its value.
        assert!(h.join().is_ok());
        let v = log.borrow().clone();
        v
    });
    assert_eq!(wakes, [Wake::Cancelled, Wake::Cancelled]);
}

#[test]
fn catching_the_unwind_only_postpones_it() {
    let result = spindle::run(|| {
        let h = spindle::spawn(|| {
            let caught = std::panic::catch_unwind(|| spindle::sleep(Duration::from_secs(60)));
            assert!(caught.is_err());
            spindle::sleep(Duration::from_secs(60)); // unwinds again
            7
        });
        spindle::yield_now();
        h.cancel();
        h.join()
    });
    assert!(matches!(result, Err(JoinError::Cancelled)));
}

#[test]
fn a_joiner_wakes_when_its_target_is_cancelled() {
    spindle::run(|| {
        let target = Rc::new(spindle::spawn(|| spindle::sleep(Duration::from_secs(60))));
        let t = target.clone();
        let canceller = spindle::spawn(move || t.cancel());
        canceller.join().unwrap();
        let target = Rc::try_unwrap(target).unwrap();
        assert!(target.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn a_cancelled_sleepers_timer_is_not_waited_for() {
    // With virtual time the clock jumps to the next live timer. If the cancelled sleeper's
    // hour-long timer still counted, the 1 ms sleep below would see the clock jump an hour.
    util::run_virtual(|| {
        let start = spindle::time::now();
        let h = spindle::spawn(|| spindle::sleep(Duration::from_secs(3600)));
        spindle::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        spindle::sleep(Duration::from_millis(1));
        assert_eq!(spindle::time::now() - start, Duration::from_millis(1));
    });
}

#[test]
fn cancel_reaches_a_coroutine_waiting_on_join() {
    // Virtual time: `inner`, detached when `outer` unwinds, still sleeps its minute, instantly.
    util::run_virtual(|| {
        let inner = spindle::spawn(|| spindle::sleep(Duration::from_secs(60)));
        let outer = spindle::spawn(move || {
            let _ = inner.join();
            unreachable!()
        });
        spindle::yield_now();
        outer.cancel();
        assert!(outer.join().unwrap_err().is_cancelled());
        assert_eq!(spindle::active_count(), 2, "inner lives on, detached");
    });
}
