//! Producers and consumers over a bounded queue.
//!
//! `cargo run --example producer_consumer`
//!
//! Producers park when the queue is full and consumers park when it is empty, so the bound
//! paces everyone: at most 4 items wait in the queue. Dropping the last sender closes the
//! channel; consumers drain what is left and stop.
//!
//! The consumers share the work with no yield between items: a send to a channel with a
//! consumer parked in `recv` hands the item to the longest parked one, so the consumer that
//! happens to run cannot take everything (before channels handed items over, it took all 3000
//! and the other none). The shares are not equal (here 2500 and 500): a running consumer
//! still takes what was buffered while the other waited for its turn to run. Real work that
//! parks (a socket write, a lock) evens them out.

use spindle::sync::channel;

const PRODUCERS: u64 = 3;
const ITEMS_EACH: u64 = 1000;
const CONSUMERS: usize = 2;

fn main() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded::<u64>(4);

        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let tx = tx.clone();
                spindle::spawn(move || {
                    for i in 0..ITEMS_EACH {
                        tx.send(p * ITEMS_EACH + i).expect("consumers are alive");
                    }
                })
            })
            .collect();
        drop(tx); // only the producers hold senders now

        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let rx = rx.clone();
                spindle::spawn(move || {
                    let (mut count, mut sum) = (0u64, 0u64);
                    for item in rx.iter() {
                        count += 1;
                        sum += item;
                    }
                    (count, sum)
                })
            })
            .collect();

        producers.into_iter().for_each(|p| p.join().unwrap());
        let (mut count, mut sum) = (0, 0);
        for (i, c) in consumers.into_iter().enumerate() {
            let (n, s) = c.join().unwrap();
            println!("consumer {i} took {n} items");
            count += n;
            sum += s;
        }
        let total = PRODUCERS * ITEMS_EACH;
        println!(
            "consumed {count} of {total} items, sum {sum} (expected {})",
            total * (total - 1) / 2
        );
    });
}
