//! Barrier: runners meet at the end of every lap; one of them, the leader, announces it.
//!
//! `cargo run --example barrier`

use std::rc::Rc;
use std::time::Duration;

use spindle::sync::Barrier;

fn main() {
    spindle::run(|| {
        let runners = 3;
        let lap_end = Rc::new(Barrier::new(runners));
        let handles: Vec<_> = (0..runners)
            .map(|r| {
                let lap_end = lap_end.clone();
                spindle::spawn(move || {
                    for lap in 1..=3 {
                        spindle::sleep(Duration::from_millis(1 + (r as u64 * 7 + lap) % 4));
                        if lap_end.wait().expect("nobody breaks the barrier").is_leader() {
                            println!("lap {lap}: all {runners} runners in");
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
    });
}
