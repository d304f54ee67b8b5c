//! Coroutine-local storage: each coroutine sees its own value.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

spindle::coroutine_local! {
    static COUNTER: Cell<u32> = Cell::new(0);
    static NAME: RefCell<String> = RefCell::new(String::from("unset"));
}

#[test]
fn each_coroutine_sees_its_own_value() {
    let seen = spindle::run(|| {
        let hs: Vec<_> = (1..=5u32)
            .map(|i| {
                spindle::spawn(move || {
                    for _ in 0..i {
                        COUNTER.with(|c| c.set(c.get() + 1));
                        spindle::yield_now();
                    }
                    COUNTER.with(|c| c.get())
                })
            })
            .collect();
        COUNTER.with(|c| c.set(100));
        let v: Vec<u32> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        (v, COUNTER.with(|c| c.get()))
    });
    assert_eq!(seen, (vec![1, 2, 3, 4, 5], 100));
}

#[test]
fn values_start_from_the_initialiser_in_every_coroutine() {
    spindle::run(|| {
        NAME.with(|n| *n.borrow_mut() = "main".into());
        let other = spindle::spawn(|| NAME.with(|n| n.borrow().clone())).join().unwrap();
        assert_eq!(other, "unset");
        assert_eq!(NAME.with(|n| n.borrow().clone()), "main");
    });
}

struct Noisy(Rc<Cell<u32>>);
impl Drop for Noisy {
    fn drop(&mut self) {
        // Runs on the coroutine's own stack: it may still use the runtime.
        spindle::yield_now();
        self.0.set(self.0.get() + 1);
    }
}

spindle::coroutine_local! {
    static DROPPED: RefCell<Option<Noisy>> = RefCell::new(None);
}

#[test]
fn values_are_dropped_when_their_coroutine_ends() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    spindle::run(move || {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let d = d.clone();
                spindle::spawn(move || DROPPED.with(|slot| *slot.borrow_mut() = Some(Noisy(d))))
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(d.get(), 3);
    });
    assert_eq!(drops.get(), 3);
}

#[test]
fn access_outside_a_coroutine_panics_clearly() {
    let r = std::panic::catch_unwind(|| COUNTER.with(|c| c.get()));
    let payload = r.unwrap_err();
    let msg = payload.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("coroutine_local access must be called inside a spindle runtime"),
        "{msg}"
    );
}

thread_local! {
    /// Ids of the coroutines in which `Second` values were dropped.
    static SECOND_DROPPED_IN: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

struct MakesAnother;

impl Drop for MakesAnother {
    fn drop(&mut self) {
        SECOND.with(|_| ()); // a local made by another local's destructor
    }
}

struct Second;

impl Drop for Second {
    fn drop(&mut self) {
        // Needs to run in its coroutine: `current` panics on the scheduler's stack.
        let id = spindle::current().id();
        SECOND_DROPPED_IN.with(|v| v.borrow_mut().push(id));
    }
}

spindle::coroutine_local! {
    static FIRST: MakesAnother = MakesAnother;
    static SECOND: Second = Second;
}

#[test]
fn a_local_made_by_another_locals_destructor_is_dropped_in_its_coroutine() {
    let id = spindle::run(|| {
        let h = spindle::spawn(|| {
            FIRST.with(|_| ());
            spindle::current().id()
        });
        h.join().unwrap()
    });
    SECOND_DROPPED_IN.with(|v| assert_eq!(*v.borrow(), [id]));
}
