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

// ----- destructors that park while their coroutine unwinds ----------------------------------

/// Pushes `tag` into a log behind a spindle `Mutex` when dropped: `pool.lock().push(conn)`.
struct LockOnDrop(Rc<spindle::sync::Mutex<Vec<&'static str>>>, &'static str);

impl Drop for LockOnDrop {
    fn drop(&mut self) {
        self.0.lock().push(self.1);
    }
}

/// Sleeps (virtual time) and yields when dropped, then records that it finished.
struct SleepOnDrop(Rc<Cell<u32>>);

impl Drop for SleepOnDrop {
    fn drop(&mut self) {
        spindle::sleep(Duration::from_millis(10));
        spindle::yield_now();
        self.0.set(self.0.get() + 1);
    }
}

fn virtual_runtime() -> spindle::Runtime {
    spindle::Runtime::builder().virtual_time(true).build().unwrap()
}

#[test]
fn a_destructor_may_lock_a_contended_mutex_while_its_coroutine_is_cancelled() {
    let log = virtual_runtime().run(|| {
        let log = Rc::new(spindle::sync::Mutex::new(Vec::new()));
        let holder = {
            let log = log.clone();
            spindle::spawn(move || {
                let mut held = log.lock();
                spindle::sleep(Duration::from_millis(50));
                held.push("holder");
            })
        };
        spindle::yield_now(); // the holder takes the lock and sleeps
        let victim = {
            let log = log.clone();
            spindle::spawn(move || {
                let _guard = LockOnDrop(log, "victim's destructor");
                spindle::sleep(Duration::from_secs(3600));
            })
        };
        spindle::yield_now(); // the victim sleeps
        victim.cancel();
        victim.cancel(); // a second cancel while its destructor waits changes nothing
        assert!(matches!(victim.join(), Err(JoinError::Cancelled)));
        holder.join().unwrap();
        let v = log.lock().clone();
        v
    });
    assert_eq!(log, ["holder", "victim's destructor"]);
}

#[test]
fn a_destructor_may_sleep_and_yield_when_a_timeout_unwinds_its_coroutine() {
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    let (result, slept) = virtual_runtime().run(move || {
        let start = spindle::time::now();
        let result = spindle::time::timeout(Duration::from_millis(5), || {
            let _guard = SleepOnDrop(d);
            spindle::sleep(Duration::from_secs(3600));
        });
        (result, spindle::time::now() - start)
    });
    assert!(result.is_err(), "the timeout expired");
    assert_eq!(done.get(), 1, "the destructor ran to its end");
    assert_eq!(slept, Duration::from_millis(15), "5 ms to the timeout, then 10 ms of cleanup");
}

#[test]
fn a_destructor_may_sleep_when_a_cancellation_unwinds_its_coroutine() {
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    virtual_runtime().run(move || {
        let h = spindle::spawn(move || {
            let _guard = SleepOnDrop(d);
            spindle::sleep(Duration::from_secs(3600));
        });
        spindle::yield_now();
        h.cancel();
        assert!(matches!(h.join(), Err(JoinError::Cancelled)));
    });
    assert_eq!(done.get(), 1);
}

#[test]
fn daemon_teardown_lets_destructors_finish_their_waits() {
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    virtual_runtime().run(move || {
        for _ in 0..3 {
            let d = d.clone();
            spindle::Builder::new()
                .daemon(true)
                .spawn(move || {
                    let _guard = SleepOnDrop(d);
                    spindle::sleep(Duration::from_secs(3600));
                })
                .unwrap();
        }
        spindle::yield_now(); // the daemons sleep; main returns and they are cancelled
    });
    assert_eq!(done.get(), 3, "every daemon's destructor finished before run returned");
}

spindle::coroutine_local! {
    /// Made on first use by a coroutine that must wait for it (the init parks).
    static SLOW_LOCAL: u32 = {
        spindle::sleep(Duration::from_millis(1));
        7
    };
}

struct TouchLocalOnDrop(Rc<Cell<u32>>);

impl Drop for TouchLocalOnDrop {
    fn drop(&mut self) {
        self.0.set(SLOW_LOCAL.with(|v| *v));
    }
}

#[test]
fn a_destructor_may_touch_a_coroutine_local_whose_init_parks_while_cancelled() {
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    virtual_runtime().run(move || {
        let h = spindle::spawn(move || {
            let _guard = TouchLocalOnDrop(s);
            spindle::sleep(Duration::from_secs(3600));
        });
        spindle::yield_now();
        h.cancel();
        assert!(matches!(h.join(), Err(JoinError::Cancelled)));
    });
    assert_eq!(seen.get(), 7);
}

#[test]
fn a_caught_cancellation_does_not_shield_later_parks() {
    // The payload is kept alive on purpose: the next park must still see the cancellation.
    let result = virtual_runtime().run(|| {
        let h = spindle::spawn(|| {
            let caught = std::panic::catch_unwind(|| spindle::sleep(Duration::from_secs(60)));
            spindle::sleep(Duration::from_secs(60)); // unwinds again, caught kept or not
            caught.is_err()
        });
        spindle::yield_now();
        h.cancel();
        h.join()
    });
    assert!(matches!(result, Err(JoinError::Cancelled)));
}
