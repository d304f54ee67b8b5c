//! Three planted concurrency bugs, each a few lines of ordinary spindle code. Shared by
//! `examples/race_hunt` and `tests/check.rs`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use spindle::park::{self, Reason};

/// A check-then-act race across a yield: both coroutines may take the one slot.
pub fn check_then_act() {
    let taken = Rc::new(Cell::new(0));
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let taken = taken.clone();
            spindle::spawn(move || {
                if taken.get() == 0 {
                    spindle::yield_now();
                    taken.set(taken.get() + 1);
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(taken.get(), 1, "the slot was taken twice");
}

/// A hand-made condition variable that checks before it registers: a notify between the two
/// is lost, and the waiter parks for ever (a deadlock report).
pub fn lost_wakeup() {
    let ready = Rc::new(Cell::new(false));
    let waiters: Rc<RefCell<Vec<park::Waker>>> = Rc::default();
    let waiter = {
        let (ready, waiters) = (ready.clone(), waiters.clone());
        spindle::spawn(move || {
            if !ready.get() {
                spindle::yield_now(); // the window between the check and the registration
                park::park(Reason::new("hand-made condvar"), None, |w| {
                    waiters.borrow_mut().push(w)
                });
            }
        })
    };
    let notifier = {
        let (ready, waiters) = (ready.clone(), waiters.clone());
        spindle::spawn(move || {
            ready.set(true);
            for w in waiters.borrow_mut().drain(..) {
                w.wake();
            }
        })
    };
    notifier.join().unwrap();
    waiter.join().unwrap();
}

/// A bug of depth 2: it shows only if `a` is set before `b` looks, and `c` is set after.
/// Each coroutine does some steps first, so a uniform pick rarely lines them up.
pub fn ordering_of_depth_two() {
    let (a, c) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
    let steps = |n: usize| (0..n).for_each(|_| spindle::yield_now());
    let ha = {
        let a = a.clone();
        spindle::spawn(move || {
            steps(6);
            a.set(true);
        })
    };
    let hb = {
        let (a, c) = (a.clone(), c.clone());
        spindle::spawn(move || {
            steps(3);
            assert!(!a.get() || c.get(), "b saw a set and c not yet");
        })
    };
    let hc = {
        let c = c.clone();
        spindle::spawn(move || c.set(true))
    };
    for h in [ha, hb, hc] {
        h.join().unwrap();
    }
}
