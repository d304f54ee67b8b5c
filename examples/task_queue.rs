//! A task queue with N workers, and `join` to wait until every task is done (Python's
//! `queue.Queue` with `task_done`/`join`).
//!
//! `cargo run --example task_queue`

use std::rc::Rc;
use std::time::Duration;

use spindle::sync::{Mutex, Queue};
use spindle::Builder;

const WORKERS: usize = 4;

fn main() {
    spindle::run(|| {
        let tasks: Rc<Queue<u64>> = Rc::new(Queue::fifo(0));
        let results = Rc::new(Mutex::new(Vec::new()));

        // Daemon workers, as in Python's example: they loop forever and are cancelled when
        // main is done with them.
        for w in 0..WORKERS {
            let (tasks, results) = (tasks.clone(), results.clone());
            Builder::new()
                .name(format!("worker {w}"))
                .daemon(true)
                .spawn(move || loop {
                    let n = tasks.get();
                    spindle::sleep(Duration::from_millis(n % 5)); // pretend to work
                    results.lock().push((n, n * n));
                    tasks.task_done().expect("one task_done per get");
                })
                .unwrap();
        }

        for n in 1..=20 {
            tasks.put(n);
        }
        tasks.join(); // parks until every task put so far is done
        let mut results = results.lock().clone();
        results.sort();
        let sum: u64 = results.iter().map(|&(_, sq)| sq).sum();
        println!("{} tasks done by {WORKERS} workers; sum of squares {sum}", results.len());
    });
}
