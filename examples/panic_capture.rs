//! Capturing a panic from a coroutine and printing its message and location.
//!
//! `cargo run --example panic_capture`
//!
//! A panic ends only the coroutine it happens in. `join` hands it back as
//! `JoinError::Panicked`, with the message and the source location; the program goes on.
//! A panic nobody joins is printed on stderr with the coroutine's name instead.

use spindle::{Builder, JoinError};

fn parse_port(text: &str) -> u16 {
    text.parse().expect("a port is a number from 0 to 65535")
}

fn main() {
    spindle::run(|| {
        let inputs = ["8080", "http", "443"];
        let workers: Vec<_> = inputs
            .iter()
            .map(|&text| {
                Builder::new()
                    .name(format!("parse {text}"))
                    .spawn(move || parse_port(text))
                    .unwrap()
            })
            .collect();

        for worker in workers {
            let name = worker.coroutine().name().unwrap_or("?").to_owned();
            match worker.join() {
                Ok(port) => println!("{name}: port {port}"),
                Err(JoinError::Panicked(panic)) => {
                    println!("{name}: panicked: {}", panic.message().unwrap_or("(no message)"));
                    println!("  at {}", panic.location().unwrap_or("(unknown location)"));
                }
                Err(other) => println!("{name}: {other}"),
            }
        }
        println!("main goes on");
    });
}
