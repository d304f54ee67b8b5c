//! Daemon semantics, as in Python's threading.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use spindle::Builder;

#[test]
fn run_waits_for_non_daemon_coroutines_after_main_returns() {
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    util::run_virtual(move || {
        for i in 1..=3 {
            let d = d.clone();
            spindle::spawn(move || {
                spindle::sleep(Duration::from_secs(i));
                d.set(d.get() + 1);
            });
        }
    });
    assert_eq!(done.get(), 3);
}

#[test]
fn daemons_still_alive_at_the_end_are_cancelled() {
    let drops = util::Drops::default();
    let finished = Rc::new(Cell::new(false));
    let (d, f) = (drops.clone(), finished.clone());
    let value = spindle::run(move || {
        Builder::new()
            .daemon(true)
            .spawn(move || {
                let _g = d.guard();
                spindle::sleep(Duration::from_secs(3600));
                f.set(true);
            })
            .unwrap();
        spindle::yield_now();
        "main done"
    });
    assert_eq!(value, "main done");
    assert_eq!(drops.count(), 1, "the daemon was unwound");
    assert!(!finished.get());
}

#[test]
fn daemon_status_is_inherited() {
    let drops = util::Drops::default();
    let d = drops.clone();
    spindle::run(move || {
        Builder::new()
            .daemon(true)
            .spawn(move || {
                let child = spindle::spawn(move || {
                    let _g = d.guard();
                    spindle::sleep(Duration::from_secs(3600));
                });
                drop(child);
                spindle::sleep(Duration::from_secs(3600));
            })
            .unwrap();
        spindle::yield_now();
        spindle::yield_now();
    });
    assert_eq!(drops.count(), 1, "the daemon's child is a daemon too, so it was cancelled");
}

#[test]
fn a_non_daemon_child_of_a_daemon_keeps_run_going() {
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    util::run_virtual(move || {
        Builder::new()
            .daemon(true)
            .spawn(move || {
                Builder::new()
                    .daemon(false)
                    .spawn(move || {
                        spindle::sleep(Duration::from_secs(5));
                        d.set(true);
                    })
                    .unwrap();
                spindle::sleep(Duration::from_secs(3600));
            })
            .unwrap();
        spindle::yield_now();
    });
    assert!(done.get());
}

#[test]
fn a_daemon_spawning_during_teardown_starts_cancelled() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    spindle::run(move || {
        Builder::new()
            .daemon(true)
            .spawn(move || {
                struct SpawnOnDrop(Rc<Cell<bool>>);
                impl Drop for SpawnOnDrop {
                    fn drop(&mut self) {
                        let r = self.0.clone();
                        let _ = spindle::spawn(move || r.set(true));
                    }
                }
                let _s = SpawnOnDrop(r);
                spindle::sleep(Duration::from_secs(3600));
            })
            .unwrap();
        spindle::yield_now();
    });
    assert!(!ran.get(), "a coroutine spawned during teardown never runs");
}
