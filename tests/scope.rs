//! Scoped coroutines borrow from the caller's stack.

mod util;

use std::cell::Cell;
use std::time::Duration;

#[test]
fn scoped_coroutines_borrow_and_mutate_locals() {
    let mut counts = vec![0u32; 4];
    let label = String::from("item");
    spindle::run(|| {
        spindle::scope(|s| {
            for (i, c) in counts.iter_mut().enumerate() {
                let label = &label;
                s.spawn(move || {
                    for _ in 0..=i {
                        spindle::yield_now();
                        *c += 1;
                    }
                    assert_eq!(label, "item");
                });
            }
        });
    });
    assert_eq!(counts, [1, 2, 3, 4]);
}

#[test]
fn scope_returns_only_after_all_finished() {
    util::run_virtual(|| {
        let finished = Cell::new(0);
        let start = spindle::time::now();
        spindle::scope(|s| {
            for ms in [30, 10, 20] {
                let finished = &finished;
                s.spawn(move || {
                    spindle::sleep(Duration::from_millis(ms));
                    finished.set(finished.get() + 1);
                });
            }
        });
        assert_eq!(finished.get(), 3);
        assert_eq!(spindle::time::now() - start, Duration::from_millis(30));
    });
}

#[test]
fn handles_join_with_values() {
    let data = [3, 4, 5];
    let sum = spindle::run(|| {
        spindle::scope(|s| {
            let hs: Vec<_> = data.iter().map(|x| s.spawn(move || x * x)).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
        })
    });
    assert_eq!(sum, 50);
}

#[test]
fn a_leaked_handle_is_still_waited_for() {
    util::run_virtual(|| {
        let done = Cell::new(false);
        spindle::scope(|s| {
            let h = s.spawn(|| {
                spindle::sleep(Duration::from_secs(1));
                done.set(true);
            });
            std::mem::forget(h);
        });
        assert!(done.get());
    });
}

#[test]
fn a_timeout_around_a_scope_cancels_the_children_and_waits_for_them() {
    let drops = util::Drops::default();
    util::run_virtual(|| {
        let unwound = Cell::new(0);
        let r = spindle::time::timeout(Duration::from_secs(1), || {
            spindle::scope(|s| {
                for _ in 0..3 {
                    let g = drops.guard();
                    let unwound = &unwound;
                    s.spawn(move || {
                        let _g = g;
                        struct Count<'a>(&'a Cell<u32>);
                        impl Drop for Count<'_> {
                            fn drop(&mut self) {
                                self.0.set(self.0.get() + 1);
                            }
                        }
                        let _c = Count(unwound);
                        spindle::sleep(Duration::from_secs(3600));
                    });
                }
            })
        });
        assert!(r.is_err());
        assert_eq!(unwound.get(), 3, "children unwound before the scope returned");
    });
    assert_eq!(drops.count(), 3);
}

#[test]
fn a_panic_in_the_scope_closure_waits_then_propagates() {
    let finished = std::rc::Rc::new(Cell::new(false));
    let f2 = finished.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        util::run_virtual(move || {
            spindle::scope(|s| {
                let f3 = f2.clone();
                s.spawn(move || {
                    spindle::sleep(Duration::from_secs(1));
                    f3.set(true);
                });
                panic!("scope body failed");
            })
        })
    }));
    assert_eq!(util::panic_message(&*r.unwrap_err()), "scope body failed");
    assert!(finished.get(), "the child ran to completion first");
}
