//! Barrier: rounds, one leader per round, breaking on timeout (as in Python), reset, and
//! cancellation that withdraws without breaking (and without reusing an index).

use std::rc::Rc;
use std::time::Duration;

use spindle::sync::{Barrier, BrokenBarrier};
use spindle::{spawn, time, yield_now, JoinError, Runtime};

#[test]
fn releases_everyone_together_with_exactly_one_leader_per_round() {
    spindle::run(|| {
        let barrier = Rc::new(Barrier::new(4));
        let parties: Vec<_> = (0..4)
            .map(|_| {
                let b = barrier.clone();
                spawn(move || {
                    (0..3).map(|_| b.wait().unwrap().is_leader() as u32).collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<Vec<u32>> = parties.into_iter().map(|p| p.join().unwrap()).collect();
        for round in 0..3 {
            assert_eq!(results.iter().map(|r| r[round]).sum::<u32>(), 1, "round {round}");
        }
    });
}

#[test]
fn nobody_passes_before_the_last_arrives() {
    spindle::run(|| {
        let barrier = Rc::new(Barrier::new(3));
        let b = barrier.clone();
        let first = spawn(move || b.wait().unwrap().index());
        let b = barrier.clone();
        let second = spawn(move || b.wait().unwrap().index());
        yield_now();
        assert_eq!(barrier.n_waiting(), 2);
        assert!(!first.is_finished() && !second.is_finished());
        let me = barrier.wait().unwrap();
        assert!(me.is_leader());
        assert_eq!(me.index(), 2);
        assert_eq!((first.join().unwrap(), second.join().unwrap()), (0, 1));
    });
}

#[test]
fn a_timeout_breaks_the_barrier_for_everyone_until_reset() {
    let rt = Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let barrier = Rc::new(Barrier::new(3));
        let b = barrier.clone();
        let patient = spawn(move || b.wait());
        yield_now();
        assert_eq!(barrier.wait_timeout(Duration::from_millis(10)), Err(BrokenBarrier));
        assert_eq!(patient.join().unwrap(), Err(BrokenBarrier));
        assert!(barrier.is_broken());
        assert_eq!(barrier.wait(), Err(BrokenBarrier));
        barrier.reset();
        assert!(!barrier.is_broken());
        let b = barrier.clone();
        let again = spawn(move || b.wait().is_ok());
        let b = barrier.clone();
        let again2 = spawn(move || b.wait().is_ok());
        assert!(barrier.wait().is_ok());
        assert!(again.join().unwrap() && again2.join().unwrap());
    });
}

#[test]
fn abort_and_reset_wake_waiters_with_broken() {
    spindle::run(|| {
        let barrier = Rc::new(Barrier::new(2));
        let b = barrier.clone();
        let w = spawn(move || b.wait());
        yield_now();
        barrier.reset();
        assert_eq!(w.join().unwrap(), Err(BrokenBarrier));
        assert!(!barrier.is_broken(), "reset leaves the barrier usable");
        barrier.abort();
        assert_eq!(barrier.wait(), Err(BrokenBarrier));
    });
}

#[test]
fn a_cancelled_waiter_withdraws_without_breaking_the_barrier() {
    spindle::run(|| {
        let barrier = Rc::new(Barrier::new(2));
        let b = barrier.clone();
        let cancelled = spawn(move || b.wait());
        yield_now();
        assert_eq!(barrier.n_waiting(), 1);
        cancelled.cancel();
        assert!(matches!(cancelled.join(), Err(JoinError::Cancelled)));
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.is_broken());
        let b = barrier.clone();
        let other = spawn(move || b.wait().is_ok());
        assert!(barrier.wait().is_ok());
        assert!(other.join().unwrap());
    });
}

#[test]
fn indices_are_0_to_parties_once_each_after_waiters_withdraw() {
    let rt = Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let barrier = Rc::new(Barrier::new(4));
        let wait = |b: &Rc<Barrier>| {
            let b = b.clone();
            spawn(move || b.wait().unwrap().index())
        };
        let cancelled = wait(&barrier);
        let first = wait(&barrier);
        let b = barrier.clone();
        // Withdraws when its `time::timeout` scope expires (a cancellation, not a timeout of
        // `wait_timeout`: the barrier stays whole).
        let timed_out = spawn(move || time::timeout(Duration::from_millis(5), || b.wait()));
        yield_now();
        assert_eq!(barrier.n_waiting(), 3);
        cancelled.cancel();
        assert!(matches!(cancelled.join(), Err(JoinError::Cancelled)));
        spindle::sleep(Duration::from_millis(10));
        assert!(timed_out.join().unwrap().is_err());
        assert_eq!(barrier.n_waiting(), 1);
        assert!(!barrier.is_broken());
        let second = wait(&barrier);
        let third = wait(&barrier);
        yield_now();
        let leader = barrier.wait().unwrap();
        assert!(leader.is_leader());
        let indices = [first.join().unwrap(), second.join().unwrap(), third.join().unwrap()];
        assert_eq!(
            (indices, leader.index()),
            ([0, 1, 2], 3),
            "arrival order among those who stayed"
        );
        // The next round numbers from 0 again.
        let next = wait(&barrier);
        let (n2, n3) = (wait(&barrier), wait(&barrier));
        yield_now();
        assert_eq!(barrier.wait().unwrap().index(), 3);
        assert_eq!([next.join().unwrap(), n2.join().unwrap(), n3.join().unwrap()], [0, 1, 2]);
    });
}
