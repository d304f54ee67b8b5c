//! Schedule exploration finds planted bugs, and replays them.

#[path = "../examples/race_hunt/bugs.rs"]
mod bugs;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use bugs::{check_then_act, lost_wakeup, ordering_of_depth_two};
use spindle::check::{self, Strategy};

#[test]
fn random_finds_a_check_then_act_race_and_replay_reproduces_it() {
    let failure = check::search(Strategy::Random, 0, 200, check_then_act).unwrap_err();
    assert!(failure.message.contains("taken twice"), "{}", failure.message);
    assert!(failure.to_string().contains(&failure.replay_line()));
    let again = std::panic::catch_unwind(|| check::replay(failure.seed, check_then_act));
    assert!(again.is_err(), "the replay fails the same way");
}

#[test]
fn pct_finds_a_check_then_act_race() {
    // Depth 2: the other coroutine must run between the check and the act, one priority
    // change inside the first. Search bases whose step-counting random run passes, so that
    // PCT itself finds it.
    let failure = (0..20)
        .map(|base| check::search(Strategy::Pct { depth: 2 }, base * 1000, 200, check_then_act))
        .find_map(|r| r.err().filter(|f| f.strategy != Strategy::Random))
        .expect("pct finds the race");
    assert!(failure.message.contains("taken twice"));
    let steps = failure.steps;
    let again =
        std::panic::catch_unwind(|| check::replay_pct(failure.seed, 2, steps, check_then_act));
    assert!(again.is_err(), "the replay fails the same way");
}

#[test]
fn a_lost_wakeup_is_found_as_a_deadlock() {
    for strategy in [Strategy::Random, Strategy::Pct { depth: 2 }] {
        let failure = check::search(strategy, 0, 500, lost_wakeup).unwrap_err();
        assert!(failure.message.contains("deadlock"), "{strategy}: {}", failure.message);
        assert!(failure.message.contains("hand-made condvar"), "{}", failure.message);
    }
}

#[test]
fn pct_finds_an_ordering_bug_of_depth_two() {
    let failure =
        check::search(Strategy::Pct { depth: 2 }, 0, 2000, ordering_of_depth_two).unwrap_err();
    assert!(failure.message.contains("b saw a set"), "{}", failure.message);
}

#[test]
fn a_correct_program_passes_every_iteration() {
    check::random(100, || {
        let m = Rc::new(spindle::sync::Mutex::new(0));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let m = m.clone();
                spindle::spawn(move || {
                    let mut g = m.lock();
                    spindle::yield_now();
                    *g += 1;
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(*m.lock(), 3);
    });
}

/// The order in which 6 coroutines of 4 steps each interleave under `seed`.
fn schedule(seed: u64) -> Vec<u8> {
    let rt = spindle::Runtime::builder().seed(seed).virtual_time(true).build().unwrap();
    rt.run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let hs: Vec<_> = (0..6u8)
            .map(|i| {
                let log = log.clone();
                spindle::spawn(move || {
                    for _ in 0..4 {
                        log.borrow_mut().push(i);
                        spindle::yield_now();
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        let v = log.borrow().clone();
        v
    })
}

#[test]
fn a_hundred_seeds_give_at_least_95_distinct_schedules_and_each_repeats() {
    let schedules: HashSet<Vec<u8>> = (0..100).map(schedule).collect();
    assert!(schedules.len() >= 95, "only {} distinct schedules", schedules.len());
    assert_eq!(schedule(42), schedule(42));
}
