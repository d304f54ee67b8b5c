//! Queue: Python's queue.Queue / LifoQueue / PriorityQueue with maxsize, timeouts, nowait
//! variants and task_done/join.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use spindle::sync::queue::{Empty, Full, TaskDoneError};
use spindle::sync::Queue;
use spindle::{spawn, yield_now, JoinError, Runtime};

fn virtual_runtime() -> Runtime {
    Runtime::builder().virtual_time(true).build().unwrap()
}

#[test]
fn fifo_lifo_and_priority_orders() {
    spindle::run(|| {
        let fifo = Queue::fifo(0);
        let lifo = Queue::lifo(0);
        let prio = Queue::priority(0);
        for x in [3, 1, 2] {
            fifo.put(x);
            lifo.put(x);
            prio.put(x);
        }
        let drain = |q: &Queue<i32>| std::iter::from_fn(|| q.get_nowait().ok()).collect::<Vec<_>>();
        assert_eq!(drain(&fifo), [3, 1, 2]);
        assert_eq!(drain(&lifo), [2, 1, 3]);
        assert_eq!(drain(&prio), [1, 2, 3]);
    });
}

#[test]
fn priority_queue_keeps_equal_priorities_in_put_order() {
    spindle::run(|| {
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
        struct Job(u8, #[allow(dead_code)] Skip);
        #[derive(Debug)]
        struct Skip(&'static str);
        impl PartialEq for Skip {
            fn eq(&self, _: &Skip) -> bool {
                true
            }
        }
        impl Eq for Skip {}
        impl PartialOrd for Skip {
            fn partial_cmp(&self, o: &Skip) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Skip {
            fn cmp(&self, _: &Skip) -> std::cmp::Ordering {
                std::cmp::Ordering::Equal
            }
        }
        let q = Queue::priority(0);
        for (p, name) in [(2, "a"), (1, "b"), (2, "c"), (1, "d")] {
            q.put(Job(p, Skip(name)));
        }
        let names: Vec<_> = std::iter::from_fn(|| q.get_nowait().ok()).map(|j| j.1 .0).collect();
        assert_eq!(names, ["b", "d", "a", "c"]);
    });
}

#[test]
fn maxsize_bounds_put_and_zero_means_unbounded() {
    spindle::run(|| {
        let q = Rc::new(Queue::fifo(2));
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        assert!(q.full());
        assert_eq!(q.put_nowait(3), Err(Full(3)));
        let q2 = q.clone();
        let putter = spawn(move || q2.put(3));
        yield_now();
        assert!(!putter.is_finished(), "put must park on a full queue");
        assert_eq!(q.get(), 1);
        putter.join().unwrap();
        assert_eq!((q.qsize(), q.maxsize()), (2, 2));

        let unbounded = Queue::lifo(0);
        for i in 0..1000 {
            unbounded.put_nowait(i).unwrap();
        }
        assert!(!unbounded.full());
        assert_eq!(unbounded.qsize(), 1000);
    });
}

#[test]
fn get_parks_until_an_item_is_put() {
    spindle::run(|| {
        let q = Rc::new(Queue::fifo(0));
        let q2 = q.clone();
        let getter = spawn(move || q2.get());
        yield_now();
        assert!(!getter.is_finished());
        q.put("item");
        assert_eq!(getter.join().unwrap(), "item");
        assert!(q.empty());
    });
}

#[test]
fn timeouts_and_nowait_report_empty_and_full() {
    virtual_runtime().run(|| {
        let q = Queue::fifo(1);
        assert_eq!(q.get_nowait(), Err(Empty));
        assert_eq!(q.get_timeout(Duration::from_millis(10)), Err(Empty));
        q.put_timeout(1, Duration::from_millis(10)).unwrap();
        assert_eq!(q.put_timeout(2, Duration::from_millis(10)), Err(Full(2)));
        assert_eq!(q.get_timeout(Duration::from_millis(10)), Ok(1));
    });
}

#[test]
fn join_waits_for_task_done_of_every_item() {
    spindle::run(|| {
        let q = Rc::new(Queue::fifo(0));
        let log = Rc::new(RefCell::new(Vec::new()));
        for i in 0..3 {
            q.put(i);
        }
        let (q2, lg) = (q.clone(), log.clone());
        let worker = spawn(move || {
            for _ in 0..3 {
                let item = q2.get();
                yield_now();
                lg.borrow_mut().push(item);
                q2.task_done().unwrap();
            }
        });
        q.join();
        assert_eq!(*log.borrow(), [0, 1, 2], "join returned before every task_done");
        assert_eq!(q.unfinished_tasks(), 0);
        worker.join().unwrap();
    });
}

#[test]
fn too_many_task_done_calls_are_an_error() {
    spindle::run(|| {
        let q = Queue::fifo(0);
        q.put(1);
        assert_eq!(q.get(), 1);
        assert_eq!(q.task_done(), Ok(()));
        assert_eq!(q.task_done(), Err(TaskDoneError));
        assert_eq!(TaskDoneError.to_string(), "task_done() called too many times");
        assert!(q.join_timeout(Duration::ZERO));
    });
}

#[test]
fn cancelled_getter_does_not_swallow_an_item() {
    spindle::run(|| {
        let q = Rc::new(Queue::fifo(0));
        let q2 = q.clone();
        let cancelled = spawn(move || q2.get());
        let q2 = q.clone();
        let patient = spawn(move || q2.get());
        yield_now();
        cancelled.cancel();
        q.put(5);
        assert!(matches!(cancelled.join(), Err(JoinError::Cancelled)));
        assert_eq!(patient.join().unwrap(), 5);
    });
}
