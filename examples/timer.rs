//! Python's `threading.Timer`: call a function later unless cancelled first.
//!
//! `cargo run --example timer`

use std::time::Duration;

use spindle::time::Timer;

fn main() {
    spindle::run(|| {
        let start = spindle::time::now();
        let reminder = Timer::after(Duration::from_millis(50), move || {
            println!("reminder fired after {} ms", start.elapsed().as_millis() / 10 * 10);
        });
        let alarm = Timer::after(Duration::from_secs(60), || println!("alarm (never printed)"));

        println!("alarm cancelled before it fired: {}", alarm.cancel());
        println!("reminder ran: {}", reminder.join().unwrap());
        println!("alarm ran: {}", alarm.join().unwrap());
    });
}
