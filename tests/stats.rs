//! Counting what the runtime did, when built with stats on.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use spindle::park::{self, Reason};

#[test]
fn stats_are_off_by_default() {
    assert!(spindle::run(spindle::stats).is_none());
    assert!(spindle::run(|| spindle::current().stats()).is_none());
}

#[test]
fn a_scripted_program_counts_exactly() {
    let rt = spindle::Runtime::builder().stats(true).virtual_time(true).build().unwrap();
    let (during, mine) = rt.run(|| {
        let slot: Rc<Cell<Option<park::Waker>>> = Rc::default();
        let theirs = slot.clone();
        // A coroutine that yields twice, sleeps 5 ms, then parks until main wakes it.
        let worker = spindle::Builder::new()
            .name("worker")
            .spawn(move || {
                spindle::yield_now();
                spindle::yield_now();
                spindle::sleep(Duration::from_millis(5));
                park::park(Reason::new("woken by main"), None, |w| theirs.set(Some(w)));
            })
            .unwrap();
        spindle::sleep(Duration::from_millis(10)); // the worker is parked by then
        assert_eq!(worker.coroutine().parked_on().map(|r| r.what), Some("woken by main"));
        let mine = worker.coroutine().stats().unwrap();
        assert!(slot.take().unwrap().wake());
        worker.join().unwrap();
        (spindle::stats().unwrap(), mine)
    });
    let after = rt.stats().unwrap();
    assert_eq!(during.spawned, 2, "main and the worker");
    assert_eq!(during.finished, 1, "the worker");
    assert_eq!(after.finished, 2);
    assert_eq!(after.peak_live, 2);
    assert_eq!(during.timers_fired, 2, "the worker's sleep and main's");
    let slept = mine.waiting.iter().find(|(w, _)| *w == "sleep").map(|(_, d)| *d);
    assert_eq!(slept, Some(Duration::from_millis(5)), "{mine:?}");
    assert_eq!(mine.resumptions, 4, "start, after two yields, after the sleep: {mine:?}");
    assert_eq!(mine.wakes, 1, "the timer's (the last park's wake comes after)");
    assert_eq!(during.wakes, 4, "two timers, main's wake of the worker, its join: {during:?}");
    assert_eq!(after.resumptions, during.resumptions, "main returned without another switch");
    assert!(during.parks >= 4, "{during:?}");
}
