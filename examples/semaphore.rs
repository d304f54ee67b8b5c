//! Semaphore: at most 2 of 6 downloads run at once.
//!
//! `cargo run --example semaphore`

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use spindle::sync::Semaphore;

fn main() {
    spindle::run(|| {
        let slots = Rc::new(Semaphore::new(2));
        let running = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let downloads: Vec<_> = (1..=6)
            .map(|d| {
                let (slots, running, most) = (slots.clone(), running.clone(), most.clone());
                spindle::spawn(move || {
                    let _permit = slots.acquire(); // released when dropped
                    running.set(running.get() + 1);
                    most.set(most.get().max(running.get()));
                    println!("download {d} started ({} running)", running.get());
                    spindle::sleep(Duration::from_millis(5 * d));
                    running.set(running.get() - 1);
                })
            })
            .collect();
        downloads.into_iter().for_each(|d| d.join().unwrap());
        println!("at most {} downloads ran at once", most.get());
    });
}
