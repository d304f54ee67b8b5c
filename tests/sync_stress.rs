//! Seeded randomised stress: 1000 coroutines, ~100k operations over mutexes and channels
//! (every capacity, select!, timeouts, cancellations), with exact counts and sums: nothing
//! lost, nothing duplicated. The runtime's seed randomises the interleaving; a run with a
//! given seed repeats exactly.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use spindle::select;
use spindle::sync::channel::{self, Receiver, RecvTimeoutError, Sender};
use spindle::sync::Mutex;
use spindle::{spawn, yield_now, Runtime};

#[path = "../runtime/src/rng.rs"]
mod rng;
use rng::Rng;

const PRODUCERS: u64 = 500;
const CONSUMERS: u64 = 500;
const OPS_PER_PRODUCER: u64 = 120;
const CHANNELS: usize = 8;
const MUTEXES: usize = 4;

struct Totals {
    /// How many times each message id was received.
    seen: RefCell<Vec<u8>>,
    received: Cell<u64>,
    received_sum: Cell<u64>,
    sent: Cell<u64>,
    sent_sum: Cell<u64>,
    added: Cell<u64>,
    operations: Cell<u64>,
}

fn stress(seed: u64) {
    let rt = Runtime::builder().seed(seed).virtual_time(true).build().unwrap();
    rt.run(|| {
        let totals = Rc::new(Totals {
            seen: RefCell::new(vec![0; (PRODUCERS * OPS_PER_PRODUCER) as usize]),
            received: Cell::new(0),
            received_sum: Cell::new(0),
            sent: Cell::new(0),
            sent_sum: Cell::new(0),
            added: Cell::new(0),
            operations: Cell::new(0),
        });
        let mutexes: Rc<Vec<Mutex<u64>>> = Rc::new((0..MUTEXES).map(|_| Mutex::new(0)).collect());
        let (senders, receivers): (Vec<Sender<u64>>, Vec<Receiver<u64>>) = (0..CHANNELS)
            .map(|c| match c % 4 {
                0 => channel::bounded(0),
                1 => channel::bounded(1),
                2 => channel::bounded(4),
                _ => channel::unbounded(),
            })
            .unzip();

        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (senders, mutexes, totals) = (senders.clone(), mutexes.clone(), totals.clone());
                spawn(move || {
                    let mut rng = Rng::new(seed ^ (p + 1).wrapping_mul(0x1234_5678_9abc_def1));
                    for k in 0..OPS_PER_PRODUCER {
                        let id = p * OPS_PER_PRODUCER + k;
                        totals.operations.set(totals.operations.get() + 1);
                        match rng.below(10) {
                            0..=4 => {
                                let c = rng.below(CHANNELS as u64) as usize;
                                senders[c].send(id).unwrap();
                            }
                            5 => {
                                let (a, b) = (
                                    rng.below(CHANNELS as u64) as usize,
                                    rng.below(CHANNELS as u64) as usize,
                                );
                                select! {
                                    send(senders[a], id) -> r => r.unwrap(),
                                    send(senders[b], id) -> r => r.unwrap(),
                                }
                            }
                            6 => {
                                let c = rng.below(CHANNELS as u64) as usize;
                                let mut v = id;
                                loop {
                                    match senders[c].send_timeout(v, Duration::from_micros(50)) {
                                        Ok(()) => break,
                                        Err(e) => v = e.into_inner(),
                                    }
                                }
                            }
                            _ => {
                                // Not a message: a read-modify-write under a lock, held across
                                // a yield half of the time. The id is "sent" to the mutexes.
                                let m = &mutexes[rng.below(MUTEXES as u64) as usize];
                                let mut g = match m.lock_timeout(Duration::from_micros(20)) {
                                    Some(g) => g,
                                    None => m.lock(),
                                };
                                let before = *g;
                                if rng.below(2) == 0 {
                                    yield_now();
                                }
                                *g = before + id;
                                totals.added.set(totals.added.get() + id);
                                continue;
                            }
                        }
                        totals.sent.set(totals.sent.get() + 1);
                        totals.sent_sum.set(totals.sent_sum.get() + id);
                    }
                })
            })
            .collect();
        drop(senders);

        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|i| {
                let c = i as usize % CHANNELS;
                let rx = receivers[c].clone();
                let other = receivers[(c + 1) % CHANNELS].clone();
                let totals = totals.clone();
                spawn(move || {
                    let record = |v: u64| {
                        totals.operations.set(totals.operations.get() + 1);
                        totals.seen.borrow_mut()[v as usize] += 1;
                        totals.received.set(totals.received.get() + 1);
                        totals.received_sum.set(totals.received_sum.get() + v);
                    };
                    let mut rng = Rng::new(seed.wrapping_mul(31) ^ i);
                    loop {
                        match rng.below(3) {
                            0 => match rx.recv() {
                                Ok(v) => record(v),
                                Err(_) => return,
                            },
                            1 => match rx.recv_timeout(Duration::from_micros(30)) {
                                Ok(v) => record(v),
                                Err(RecvTimeoutError::Timeout) => {}
                                Err(RecvTimeoutError::Disconnected) => return,
                            },
                            _ => {
                                let done = select! {
                                    recv(rx) -> m => m.map(record).is_err(),
                                    recv(other) -> m => { if let Ok(v) = m { record(v) } false }
                                };
                                if done {
                                    return;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        drop(receivers);

        // Cancel one consumer in ten partway through; what it received is already recorded.
        for _ in 0..50 {
            yield_now();
        }
        for (i, c) in consumers.iter().enumerate() {
            if i % 10 == 3 {
                c.cancel();
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        for c in consumers {
            let _ = c.join();
        }

        let expected_total: u64 = (0..PRODUCERS * OPS_PER_PRODUCER).sum();
        assert_eq!(totals.received.get(), totals.sent.get(), "messages lost or duplicated");
        assert_eq!(totals.received_sum.get(), totals.sent_sum.get());
        assert!(totals.seen.borrow().iter().all(|&n| n <= 1), "a message was received twice");
        let in_mutexes: u64 = mutexes.iter().map(|m| *m.lock()).sum();
        assert_eq!(in_mutexes, totals.added.get(), "a locked update was lost");
        assert_eq!(totals.sent_sum.get() + totals.added.get(), expected_total);
        assert!(totals.operations.get() >= 100_000, "only {} operations", totals.operations.get());
        assert!(mutexes.iter().all(|m| !m.is_locked()));
    });
}

#[test]
fn seeded_stress_over_mutexes_and_channels_loses_and_duplicates_nothing_seed_1() {
    stress(1);
}

#[test]
fn seeded_stress_over_mutexes_and_channels_loses_and_duplicates_nothing_seed_2() {
    stress(0xdead_beef);
}

/// Rendezvous channels only, with senders parked in `select!` send arms whose values take a
/// while to make (the expression yields), met by every way of receiving: `recv`,
/// `recv_timeout`, `try_recv` (which takes such a sender's value), and `select!` with and
/// without a `default` arm. Nothing lost or duplicated, and nobody left parked.
fn rendezvous_stress(seed: u64) {
    const SENDERS: u64 = 60;
    const RECEIVERS: u64 = 60;
    const PER_SENDER: u64 = 150;
    const LINES: usize = 4;
    let rt = Runtime::builder().seed(seed).virtual_time(true).build().unwrap();
    rt.run(|| {
        let seen = Rc::new(RefCell::new(vec![0u8; (SENDERS * PER_SENDER) as usize]));
        let (senders, receivers): (Vec<Sender<u64>>, Vec<Receiver<u64>>) =
            (0..LINES).map(|_| channel::bounded(0)).unzip();
        let senders = Rc::new(senders);
        let producers: Vec<_> = (0..SENDERS)
            .map(|p| {
                let senders = senders.clone();
                spawn(move || {
                    let mut rng = Rng::new(seed ^ (p + 1).wrapping_mul(0x9e37_79b9));
                    for k in 0..PER_SENDER {
                        let id = p * PER_SENDER + k;
                        let (a, b) =
                            (rng.below(LINES as u64) as usize, rng.below(LINES as u64) as usize);
                        let slow = rng.below(2) == 0;
                        match rng.below(3) {
                            0 => senders[a].send(id).unwrap(),
                            1 => {
                                let mut v = id;
                                while let Err(e) =
                                    senders[a].send_timeout(v, Duration::from_micros(40))
                                {
                                    v = e.into_inner();
                                }
                            }
                            _ => select! {
                                send(senders[a], { if slow { yield_now() } id }) -> r => r.unwrap(),
                                send(senders[b], { if slow { yield_now() } id }) -> r => r.unwrap(),
                            },
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..RECEIVERS)
            .map(|i| {
                let c = i as usize % LINES;
                let (rx, other) = (receivers[c].clone(), receivers[(c + 1) % LINES].clone());
                let seen = seen.clone();
                spawn(move || {
                    let record = |v: u64| seen.borrow_mut()[v as usize] += 1;
                    let mut rng = Rng::new(seed.wrapping_mul(17) ^ i);
                    loop {
                        let got = match rng.below(5) {
                            0 => rx.recv().ok(),
                            1 => match rx.recv_timeout(Duration::from_micros(30)) {
                                Err(RecvTimeoutError::Disconnected) => None,
                                r => Some(r.ok()).map(|v| v.unwrap_or(u64::MAX)),
                            },
                            2 => match rx.try_recv() {
                                Err(channel::TryRecvError::Disconnected) => None,
                                Err(channel::TryRecvError::Empty) => {
                                    yield_now();
                                    Some(u64::MAX)
                                }
                                Ok(v) => Some(v),
                            },
                            3 => select! {
                                recv(rx) -> m => m.ok(),
                                recv(other) -> m => Some(m.unwrap_or(u64::MAX)),
                                default => { yield_now(); Some(u64::MAX) }
                            },
                            _ => select! {
                                recv(rx) -> m => m.ok(),
                                recv(other) -> m => Some(m.unwrap_or(u64::MAX)),
                            },
                        };
                        match got {
                            None => return, // its own line is disconnected and drained
                            Some(u64::MAX) => {}
                            Some(v) => record(v),
                        }
                    }
                })
            })
            .collect();
        drop(receivers);
        for p in producers {
            p.join().unwrap();
        }
        drop(senders);
        for c in consumers {
            c.join().unwrap();
        }
        let seen = seen.borrow();
        assert!(seen.iter().all(|&n| n == 1), "a message was lost or received twice");
    });
}

#[test]
fn seeded_stress_over_rendezvous_channels_and_select_senders_loses_nothing_seed_1() {
    rendezvous_stress(1);
}

#[test]
fn seeded_stress_over_rendezvous_channels_and_select_senders_loses_nothing_seed_2() {
    rendezvous_stress(0x5eed);
}

/// Senders and receivers of every kind of channel under random schedules: handoffs to parked
/// receivers, senders woken for room, receivers that give up, all interleaved. Every message
/// arrives exactly once, and nobody is left parked (a stranded waiter is a deadlock report).
#[test]
fn random_schedules_over_handoffs_lose_duplicate_and_strand_nothing() {
    for cap in [Some(0), Some(1), Some(3), None] {
        spindle::check::random(60, move || {
            let (tx, rx) = match cap {
                Some(n) => channel::bounded::<u32>(n),
                None => channel::unbounded(),
            };
            let senders: Vec<_> = (0..4u32)
                .map(|s| {
                    let tx = tx.clone();
                    spindle::spawn(move || {
                        for n in 0..20 {
                            if n % 3 == 0 {
                                spindle::yield_now();
                            }
                            tx.send(s * 100 + n).unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            let receivers: Vec<_> = (0..3)
                .map(|r| {
                    let rx = rx.clone();
                    spindle::spawn(move || {
                        let mut got = Vec::new();
                        // The pollers give up in the end, so that a waiter stranded by a bug
                        // shows as a deadlock report (or a missing message), not as a hang.
                        let mut polls = 0;
                        loop {
                            polls += 1;
                            if polls > 10_000 {
                                return got;
                            }
                            let next = match r {
                                0 => rx.recv().ok(),
                                1 => match rx.recv_timeout(Duration::from_micros(50)) {
                                    Err(RecvTimeoutError::Timeout) => continue,
                                    other => other.ok(),
                                },
                                _ => match rx.try_recv() {
                                    Err(channel::TryRecvError::Empty) => {
                                        spindle::yield_now();
                                        continue;
                                    }
                                    other => other.ok(),
                                },
                            };
                            match next {
                                Some(v) => got.push(v),
                                None => return got,
                            }
                        }
                    })
                })
                .collect();
            drop(rx);
            senders.into_iter().for_each(|s| s.join().unwrap());
            let mut all: Vec<u32> = receivers.into_iter().flat_map(|r| r.join().unwrap()).collect();
            all.sort_unstable();
            let want: Vec<u32> = (0..4).flat_map(|s| (0..20).map(move |n| s * 100 + n)).collect();
            assert_eq!(all, want, "cap {cap:?}");
        });
    }
}
