//! The determinism contract: seed + virtual time, spindle's primitives only, same run every time.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use spindle::sync::{channel, Condvar, Mutex};
use spindle::time::{now, sleep, timeout};

/// A program of 50 coroutines using channels, a lock, a condition variable, `select!` and
/// timeouts; returns everything it observed, with the virtual time of each observation.
fn program(seed: u64) -> Vec<String> {
    let rt = spindle::Runtime::builder().seed(seed).virtual_time(true).build().unwrap();
    rt.run(|| {
        let start = now();
        let log = Rc::new(RefCell::new(Vec::new()));
        let (tx, rx) = channel::bounded::<u64>(3);
        let shared = Rc::new((Mutex::new(0u64), Condvar::new()));
        let mut hs = Vec::new();
        for i in 0..50u64 {
            let (tx, rx, log, shared) = (tx.clone(), rx.clone(), log.clone(), shared.clone());
            hs.push(spindle::spawn(move || {
                let stamp = |what: String| {
                    let at = (now() - start).as_micros();
                    log.borrow_mut().push(format!("{at} #{i} {what}"));
                };
                if i % 2 == 0 {
                    sleep(Duration::from_micros(i * 7 % 13));
                    tx.send(i).unwrap();
                    stamp(format!("sent {i}"));
                } else {
                    let got = spindle::select! {
                        recv(rx) -> m => format!("got {:?}", m.ok()),
                        default(Duration::from_micros(i * 3)) => "timed out".to_owned(),
                    };
                    stamp(got);
                }
                let (lock, cond) = &*shared;
                let mut n = lock.lock();
                *n += 1;
                cond.notify_all();
                let waited = timeout(Duration::from_micros(50), move || {
                    while *n < 50 {
                        n = cond.wait(n);
                    }
                    *n
                });
                stamp(format!("waited {waited:?}"));
            }));
        }
        drop(tx);
        for h in hs {
            h.join().unwrap();
        }
        while let Ok(m) = rx.try_recv() {
            log.borrow_mut().push(format!("left {m}"));
        }
        let v = log.borrow().clone();
        v
    })
}

#[test]
fn a_seeded_virtual_time_program_repeats_exactly() {
    for seed in [0, 1, 0xdead_beef] {
        let first = program(seed);
        assert_eq!(first.len(), 100 + first.iter().filter(|l| l.starts_with("left")).count());
        for _ in 0..3 {
            assert_eq!(program(seed), first, "seed {seed} ran differently");
        }
    }
    assert_ne!(program(1), program(2), "different seeds explore different schedules");
}
