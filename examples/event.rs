//! Event: workers wait for a start signal that main sets once everything is ready.
//!
//! `cargo run --example event`

use std::rc::Rc;
use std::time::Duration;

use spindle::sync::Event;

fn main() {
    spindle::run(|| {
        let start = Rc::new(Event::new());
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let start = start.clone();
                spindle::spawn(move || {
                    start.wait();
                    println!("worker {w} started");
                })
            })
            .collect();
        spindle::sleep(Duration::from_millis(10)); // get ready
        println!("ready: setting the event");
        start.set();
        workers.into_iter().for_each(|w| w.join().unwrap());
        let late = Event::new();
        println!(
            "waiting 20 ms for an event nobody sets: {}",
            late.wait_timeout(Duration::from_millis(20))
        );
    });
}
