//! Timers: order, staleness, virtual time, and timeouts around blocking code.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use spindle::park::{self, Reason, Wake};
use spindle::time::{now, sleep, sleep_until, timeout};

fn wake_order(deadlines_ms: &[u64], virtual_time: bool) -> Vec<usize> {
    let rt = spindle::Runtime::builder().virtual_time(virtual_time).build().unwrap();
    rt.run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let start = now();
        let hs: Vec<_> = deadlines_ms
            .iter()
            .enumerate()
            .map(|(i, &ms)| {
                let log = log.clone();
                spindle::spawn(move || {
                    sleep_until(start + Duration::from_millis(ms));
                    log.borrow_mut().push(i);
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        let v = log.borrow().clone();
        v
    })
}

#[test]
fn earlier_deadlines_wake_first() {
    assert_eq!(wake_order(&[30, 10, 20, 5], true), [3, 1, 2, 0]);
    assert_eq!(wake_order(&[12, 4, 8], false), [1, 2, 0]);
}

#[test]
fn equal_deadlines_wake_in_the_order_they_were_set() {
    assert_eq!(wake_order(&[7, 7, 7, 7, 7], true), [0, 1, 2, 3, 4]);
    assert_eq!(wake_order(&[9, 3, 9, 3], true), [1, 3, 0, 2]);
}

#[test]
fn sleep_never_returns_early() {
    spindle::run(|| {
        let start = Instant::now();
        sleep(Duration::from_millis(15));
        assert!(start.elapsed() >= Duration::from_millis(15));
    });
}

#[test]
fn a_past_deadline_returns_at_once() {
    util::run_virtual(|| {
        let t = now();
        sleep_until(t - Duration::from_secs(1));
        sleep(Duration::ZERO);
        assert_eq!(now(), t);
    });
}

#[test]
fn virtual_time_jumps_exactly() {
    util::run_virtual(|| {
        let start = now();
        sleep(Duration::from_secs(3600));
        assert_eq!(now() - start, Duration::from_secs(3600));
        let h = spindle::spawn(|| sleep(Duration::from_secs(10)));
        sleep(Duration::from_secs(4));
        assert_eq!(now() - start, Duration::from_secs(3604));
        h.join().unwrap();
        assert_eq!(now() - start, Duration::from_secs(3610));
    });
}

#[test]
fn a_park_deadline_times_out_unless_woken_first() {
    util::run_virtual(|| {
        let deadline = now() + Duration::from_secs(1);
        assert_eq!(park::park(Reason::new("nobody"), Some(deadline), |_| {}), Wake::TimedOut);
        assert_eq!(now(), deadline);

        let saved = Rc::new(std::cell::Cell::new(None));
        let s = saved.clone();
        let h = spindle::spawn(move || {
            park::park(Reason::new("somebody"), Some(now() + Duration::from_secs(5)), |w| {
                s.set(Some(w))
            })
        });
        spindle::yield_now();
        saved.get().unwrap().wake();
        assert_eq!(h.join().unwrap(), Wake::Notified);
        assert_eq!(now(), deadline, "woken early: the clock did not move to its deadline");
    });
}

#[test]
fn many_stale_timers_do_not_pile_up() {
    // 5000 parks with an hour-long deadline, each woken at once: their timers go stale. The
    // run must still end promptly and the clock must not jump to any of them.
    util::run_virtual(|| {
        let start = now();
        for _ in 0..5000 {
            let w =
                park::park(Reason::new("short"), Some(now() + Duration::from_secs(3600)), |w| {
                    w.wake();
                });
            assert_eq!(w, Wake::Notified);
        }
        sleep(Duration::from_millis(1));
        assert_eq!(now() - start, Duration::from_millis(1));
    });
}

#[test]
fn timeout_unwinds_the_closure_and_runs_destructors() {
    let drops = util::Drops::default();
    let d = drops.clone();
    util::run_virtual(move || {
        let r = timeout(Duration::from_millis(50), || {
            let _g = d.guard();
            sleep(Duration::from_secs(60));
            unreachable!();
        });
        assert_eq!(r.unwrap_err().to_string(), "deadline has elapsed");
    });
    assert_eq!(drops.count(), 1);
}

#[test]
fn timeout_returns_the_value_when_in_time() {
    util::run_virtual(|| {
        assert_eq!(
            timeout(Duration::from_secs(1), || {
                sleep(Duration::from_millis(10));
                3
            }),
            Ok(3)
        );
        // The expired-nothing scope leaves no trace: a later long sleep is not interrupted.
        sleep(Duration::from_secs(5));
    });
}

#[test]
fn nested_timeouts_inner_fires_without_tripping_the_outer() {
    util::run_virtual(|| {
        let start = now();
        let outer = timeout(Duration::from_secs(10), || {
            let inner = timeout(Duration::from_secs(1), || sleep(Duration::from_secs(60)));
            assert!(inner.is_err());
            assert_eq!(now() - start, Duration::from_secs(1));
            sleep(Duration::from_secs(2));
            "outer finished"
        });
        assert_eq!(outer, Ok("outer finished"));
        assert_eq!(now() - start, Duration::from_secs(3));
    });
}

#[test]
fn nested_timeouts_outer_fires_through_the_inner() {
    util::run_virtual(|| {
        let start = now();
        let reached = Rc::new(std::cell::Cell::new(false));
        let r = reached.clone();
        let outer = timeout(Duration::from_secs(1), || {
            let inner = timeout(Duration::from_secs(10), || sleep(Duration::from_secs(60)));
            r.set(true); // never reached: the outer expiry unwinds through the inner call
            inner
        });
        assert!(outer.is_err());
        assert!(!reached.get());
        assert_eq!(now() - start, Duration::from_secs(1));
    });
}

#[test]
fn timeout_interrupts_a_yielding_loop() {
    util::run_virtual(|| {
        let helper = spindle::spawn(|| sleep(Duration::from_secs(1)));
        let mut spins = 0u64;
        let r = timeout(Duration::from_millis(500), || loop {
            spins += 1;
            spindle::yield_now();
            if spins > 10 {
                sleep(Duration::from_millis(100));
            }
        });
        assert!(r.is_err());
        helper.join().unwrap();
    });
}

#[test]
fn timer_calls_its_function_after_the_delay() {
    util::run_virtual(|| {
        let start = now();
        let at = Rc::new(std::cell::Cell::new(None));
        let a = at.clone();
        let t = spindle::time::Timer::after(Duration::from_secs(2), move || a.set(Some(now())));
        assert!(t.join().unwrap());
        assert_eq!(at.get(), Some(start + Duration::from_secs(2)));
    });
}

#[test]
fn a_cancelled_timer_never_calls_its_function() {
    util::run_virtual(|| {
        let called = Rc::new(std::cell::Cell::new(false));
        let c = called.clone();
        let t = spindle::time::Timer::after(Duration::from_secs(2), move || c.set(true));
        sleep(Duration::from_secs(1));
        assert!(t.cancel());
        assert!(!t.join().unwrap());
        sleep(Duration::from_secs(5));
        assert!(!called.get());
    });
}

#[test]
fn cancelling_a_due_timer_that_has_not_run_yet_still_stops_it() {
    util::run_virtual(|| {
        let called = Rc::new(std::cell::Cell::new(false));
        let c = called.clone();
        let t = spindle::time::Timer::after(Duration::from_secs(1), move || c.set(true));
        // Sleep to exactly the timer's deadline: both wake in the same step, we run first.
        sleep(Duration::from_secs(1));
        let stopped = t.cancel();
        let ran = t.join().unwrap();
        // Whatever the interleaving, cancel's answer and the effect agree.
        assert_eq!(stopped, !called.get());
        assert_eq!(ran, called.get());
    });
}

#[test]
fn duration_max_saturates_instead_of_panicking() {
    let rt = spindle::Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        // A sleep of Duration::MAX is cut short by a timeout, not by an overflow panic.
        assert!(timeout(Duration::from_millis(1), || sleep(Duration::MAX)).is_err());
        assert_eq!(timeout(Duration::MAX, || 5), Ok(5));
        assert_eq!(timeout(Duration::MAX, || timeout(Duration::MAX, || 6)), Ok(Ok(6)));
        let mut h = spindle::spawn(|| {
            sleep(Duration::from_millis(3));
            7
        });
        assert_eq!(h.join_timeout(Duration::MAX).unwrap(), 7);
        let far = spindle::time::deadline_after(Duration::MAX);
        assert!(far > now() + Duration::from_secs(86_400 * 365 * 29), "about 30 years ahead");
        // The parked sleeper is woken by its timeout scope in virtual time: nothing waits 30 y.
        let start = now();
        assert!(timeout(Duration::from_secs(2), || sleep(Duration::MAX)).is_err());
        assert_eq!(now() - start, Duration::from_secs(2));
    });
}
