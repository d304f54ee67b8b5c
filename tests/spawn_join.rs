//! Spawning coroutines, joining them, and what they can see of themselves.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use spindle::park::{self, Reason, Wake};
use spindle::{Builder, JoinError};

#[test]
fn run_returns_mains_value() {
    assert_eq!(spindle::run(|| 40 + 2), 42);
}

#[test]
fn main_may_borrow_from_the_caller() {
    let mut total = 0;
    let data = [1, 2, 3];
    spindle::run(|| total = data.iter().sum());
    assert_eq!(total, 6);
}

#[test]
fn join_returns_the_value() {
    let v = spindle::run(|| spindle::spawn(|| String::from("done")).join().unwrap());
    assert_eq!(v, "done");
}

#[test]
fn closures_need_not_be_send() {
    let n = spindle::run(|| {
        let shared = Rc::new(Cell::new(0));
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let shared = shared.clone();
                spindle::spawn(move || shared.set(shared.get() + i))
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        shared.get()
    });
    assert_eq!(n, 45);
}

#[test]
fn coroutines_start_in_spawn_order() {
    let log = spindle::run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = (0..5)
            .map(|i| {
                let log = log.clone();
                spindle::spawn(move || log.borrow_mut().push(i))
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        let v = log.borrow().clone();
        v
    });
    assert_eq!(log, [0, 1, 2, 3, 4]);
}

#[test]
fn yield_now_interleaves_round_robin() {
    let log = spindle::run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let log = log.clone();
                spindle::spawn(move || {
                    for i in 0..3 {
                        log.borrow_mut().push(format!("{name}{i}"));
                        spindle::yield_now();
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        let v = log.borrow().clone();
        v
    });
    assert_eq!(log, ["a0", "b0", "a1", "b1", "a2", "b2"]);
}

#[test]
fn yield_now_alone_returns() {
    spindle::run(|| {
        for _ in 0..1000 {
            spindle::yield_now();
        }
    });
}

#[test]
fn names_ids_and_current() {
    spindle::run(|| {
        let main = spindle::current();
        assert_eq!(main.name(), Some("main"));
        let h = Builder::new()
            .name("worker")
            .spawn(|| {
                let me = spindle::current();
                (me.id(), me.name().map(str::to_owned))
            })
            .unwrap();
        let handle_id = h.coroutine().id();
        assert_eq!(h.coroutine().name(), Some("worker"));
        assert_eq!(h.coroutine().to_string(), format!("#{handle_id} 'worker'"));
        let (seen_id, seen_name) = h.join().unwrap();
        assert_eq!(seen_id, handle_id);
        assert_ne!(seen_id, main.id());
        assert_eq!(seen_name.as_deref(), Some("worker"));
        let unnamed = spindle::spawn(|| spindle::current().name().map(str::to_owned));
        assert_eq!(unnamed.join().unwrap(), None);
    });
}

#[test]
fn coroutines_and_active_count_list_the_living() {
    spindle::run(|| {
        assert_eq!(spindle::active_count(), 1);
        let a =
            Builder::new().name("a").spawn(|| spindle::sleep(Duration::from_millis(5))).unwrap();
        let b =
            Builder::new().name("b").spawn(|| spindle::sleep(Duration::from_millis(5))).unwrap();
        assert_eq!(spindle::active_count(), 3);
        let mut names: Vec<_> =
            spindle::coroutines().iter().map(|c| c.name().unwrap().to_owned()).collect();
        names.sort();
        assert_eq!(names, ["a", "b", "main"]);
        spindle::yield_now(); // both start and park in sleep
        assert_eq!(a.coroutine().parked_on().map(|r| r.what), Some("sleep"));
        assert!(a.coroutine().is_alive());
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(spindle::active_count(), 1);
    });
}

#[test]
fn is_finished_tracks_completion() {
    spindle::run(|| {
        let h = spindle::spawn(|| 1);
        assert!(!h.is_finished());
        spindle::yield_now();
        assert!(h.is_finished());
        assert!(!h.coroutine().is_alive());
        assert_eq!(h.join().unwrap(), 1);
    });
}

#[test]
fn join_timeout_gives_up_then_joins_later() {
    util::run_virtual(|| {
        let mut h = spindle::spawn(|| {
            spindle::sleep(Duration::from_secs(10));
            5
        });
        assert!(matches!(h.join_timeout(Duration::from_secs(1)), Err(JoinError::TimedOut)));
        assert!(!h.is_finished());
        assert_eq!(h.join_timeout(Duration::from_secs(60)).unwrap(), 5);
    });
}

#[test]
fn spawned_coroutines_spawn_more() {
    let n = spindle::run(|| {
        fn tree(depth: u32) -> u32 {
            if depth == 0 {
                return 1;
            }
            let l = spindle::spawn(move || tree(depth - 1));
            let r = spindle::spawn(move || tree(depth - 1));
            l.join().unwrap() + r.join().unwrap()
        }
        tree(8)
    });
    assert_eq!(n, 256);
}

#[test]
fn builder_stack_size_gives_room_for_deep_frames() {
    let sum = spindle::run(|| {
        Builder::new()
            .stack_size(512 * 1024)
            .spawn(|| {
                let big = [1u8; 300 * 1024];
                std::hint::black_box(&big).iter().map(|&b| b as u64).sum::<u64>()
            })
            .unwrap()
            .join()
            .unwrap()
    });
    assert_eq!(sum, 300 * 1024);
}

#[test]
fn main_has_room_for_most_of_its_default_stack() {
    let sum = spindle::run(|| {
        let big = [1u8; spindle::DEFAULT_MAIN_STACK_SIZE * 3 / 4];
        std::hint::black_box(&big).iter().map(|&b| b as usize).sum::<usize>()
    });
    assert_eq!(sum, spindle::DEFAULT_MAIN_STACK_SIZE * 3 / 4);
}

#[test]
fn runtime_runs_several_mains_in_turn() {
    let rt = spindle::Runtime::new().unwrap();
    for i in 0..3 {
        assert_eq!(rt.run(|| spindle::spawn(move || i * 2).join().unwrap()), i * 2);
    }
}

#[test]
fn stale_wakers_are_harmless() {
    spindle::run(|| {
        let saved = Rc::new(Cell::new(None));
        let s = saved.clone();
        let h = spindle::spawn(move || park::park(Reason::new("test"), None, |w| s.set(Some(w))));
        spindle::yield_now();
        let w = saved.get().unwrap();
        assert!(w.is_waiting());
        assert!(w.wake());
        assert!(!w.wake(), "a second wake of the same park does nothing");
        assert_eq!(h.join().unwrap(), Wake::Notified);
        assert!(!w.wake(), "a waker of a finished coroutine does nothing");
        // The slot is reused by the next coroutine; the old waker must not wake it.
        let saved2 = Rc::new(Cell::new(None));
        let s2 = saved2.clone();
        let h2 = spindle::spawn(move || {
            park::park(
                Reason::new("test"),
                Some(spindle::time::now() + Duration::from_millis(5)),
                |w| s2.set(Some(w)),
            )
        });
        spindle::yield_now();
        assert!(!w.wake());
        assert_eq!(h2.join().unwrap(), Wake::TimedOut);
    });
}

#[test]
fn wake_during_registration_returns_at_once() {
    spindle::run(|| {
        let wake = park::park(Reason::new("self"), None, |w| assert!(w.wake()));
        assert_eq!(wake, Wake::Notified);
    });
}

#[test]
fn a_waker_in_two_queues_wakes_once() {
    spindle::run(|| {
        let queues = Rc::new(RefCell::new((park::WaitQueue::new(), park::WaitQueue::new())));
        let q = queues.clone();
        let h = spindle::spawn(move || {
            park::park(Reason::new("either"), None, |w| {
                let mut q = q.borrow_mut();
                q.0.push(w);
                q.1.push(w);
            })
        });
        spindle::yield_now();
        let mut q = queues.borrow_mut();
        assert!(q.1.wake_one().is_some());
        assert!(q.0.wake_one().is_none(), "the second registration went stale");
        drop(q);
        assert_eq!(h.join().unwrap(), Wake::Notified);
    });
}

#[test]
fn remote_waker_wakes_from_another_thread() {
    let v = spindle::run(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let w: spindle::park::RemoteWaker = rx.recv().unwrap();
            w.wake();
        });
        let wake =
            park::park(Reason::new("remote"), None, |w| tx.send(park::remote_waker(w)).unwrap());
        thread.join().unwrap();
        wake
    });
    assert_eq!(v, Wake::Notified);
}

fn run_order(seed: Option<u64>) -> Vec<u32> {
    let mut b = spindle::Runtime::builder();
    if let Some(s) = seed {
        b = b.seed(s);
    }
    b.build().unwrap().run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let hs: Vec<_> = (0..20)
            .map(|i| {
                let log = log.clone();
                spindle::spawn(move || {
                    for _ in 0..3 {
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
fn a_seed_gives_a_reproducible_shuffled_order() {
    let fifo = run_order(None);
    assert_eq!(&fifo[..20], (0..20).collect::<Vec<_>>().as_slice());
    let a = run_order(Some(7));
    assert_eq!(a, run_order(Some(7)), "same seed, same order");
    assert_ne!(a, fifo, "a seeded run is not FIFO");
    assert_ne!(a, run_order(Some(8)), "another seed, another order");
    let mut sorted = a.clone();
    sorted.sort();
    let mut expect = fifo.clone();
    expect.sort();
    assert_eq!(sorted, expect, "every step still ran exactly once");
}

#[test]
fn every_seed_is_its_own_schedule() {
    // Seeds that differ in their lowest bit (once folded together by `seed | 1`), and 0.
    let orders: Vec<Vec<u32>> = (0..8).map(|s| run_order(Some(s))).collect();
    for (i, a) in orders.iter().enumerate() {
        for b in &orders[i + 1..] {
            assert_ne!(a, b, "two seeds in 0..8 gave the same schedule");
        }
    }
}

#[test]
fn a_waker_kept_from_an_earlier_runtime_wakes_nothing_in_a_later_one() {
    // Both runtimes run the same program, so without per-thread sequences the later park has
    // the same slot and sequence as the earlier one, and the stale waker would end it.
    let kept: Rc<Cell<Option<park::Waker>>> = Rc::new(Cell::new(None));
    let first = spindle::Runtime::builder().virtual_time(true).build().unwrap();
    let k = kept.clone();
    let wake = first.run(move || {
        let deadline = spindle::time::now() + Duration::from_millis(5);
        park::park(Reason::new("first"), Some(deadline), |w| k.set(Some(w)))
    });
    assert_eq!(wake, Wake::TimedOut);
    let second = spindle::Runtime::builder().virtual_time(true).build().unwrap();
    let k = kept.clone();
    let (woke, wake) = second.run(move || {
        let stale = k.get().expect("kept");
        let mut woke = None;
        let deadline = spindle::time::now() + Duration::from_millis(5);
        let wake = park::park(Reason::new("second"), Some(deadline), |_| woke = Some(stale.wake()));
        (woke, wake)
    });
    assert_eq!(woke, Some(false), "the stale waker reports it woke nothing");
    assert_eq!(wake, Wake::TimedOut, "the later park ran to its deadline");
}
