//! Thread-safe channels: between runtimes on different threads, between coroutines and plain
//! threads, many producers and consumers, rendezvous, timeouts, disconnection, cancellation,
//! `select!`, and what the deadlock check makes of a coroutine waiting on another thread.
//!
//! Every assertion holds under every interleaving of the threads involved. Where a test needs
//! a coroutine or thread to be waiting first, it waits for something observable (a rendezvous
//! `try_send` succeeds only when a receiver waits; a rendezvous `len` counts waiting senders),
//! never for a guessed amount of time.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use spindle::sync::mpmc::{
    self, Receiver, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Sender, TryRecvError,
    TrySendError,
};
use spindle::{select, spawn, yield_now, JoinError};

/// Runs `main` in a runtime of its own on a new thread.
fn on_runtime<R: Send + 'static>(
    main: impl FnOnce() -> R + Send + 'static,
) -> thread::JoinHandle<R> {
    thread::spawn(move || spindle::run(main))
}

/// Sends `value` on a rendezvous channel as soon as a receiver waits for it (spinning on
/// `try_send`, which succeeds only then). Yields the coroutine when called from one.
fn send_when_received<T>(tx: &Sender<T>, mut value: T, in_coroutine: bool) {
    loop {
        match tx.try_send(value) {
            Ok(()) => return,
            Err(TrySendError::Full(v)) => value = v,
            Err(TrySendError::Disconnected(_)) => panic!("receiver gone"),
        }
        if in_coroutine {
            yield_now();
        } else {
            thread::yield_now();
        }
    }
}

/// Spins until `rx` counts `n` waiting senders (rendezvous channels count them in `len`).
fn until_senders_wait<T>(rx: &Receiver<T>, n: usize) {
    while rx.len() < n {
        thread::yield_now();
    }
}

#[test]
fn ends_are_send_sync_and_clone() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<Sender<u8>>();
    assert_send_sync_clone::<Receiver<u8>>();
    // Not `Sync` itself, yet the channel of it is, as with std's channels.
    assert_send_sync_clone::<Sender<std::cell::Cell<u8>>>();
    assert_send_sync_clone::<Receiver<std::cell::Cell<u8>>>();
}

#[test]
fn coroutines_on_two_runtimes_on_two_threads_ping_pong() {
    let (to_b, from_a) = mpmc::bounded::<u64>(1);
    let (to_a, from_b) = mpmc::bounded::<u64>(0);
    let b = on_runtime(move || {
        let mut n = 0;
        for v in from_a.iter() {
            to_a.send(v + 1).unwrap();
            n += 1;
        }
        n
    });
    let a = on_runtime(move || {
        // Two coroutines of this runtime use the same ends, one after the other.
        let to_b = Arc::new(to_b);
        let from_b = Arc::new(from_b);
        let (t, f) = (to_b.clone(), from_b.clone());
        let other = spawn(move || {
            for i in 0..200 {
                t.send(i * 2).unwrap();
                assert_eq!(f.recv(), Ok(i * 2 + 1));
            }
        });
        other.join().unwrap();
        for i in 0..200 {
            to_b.send(i).unwrap();
            assert_eq!(from_b.recv(), Ok(i + 1));
        }
    });
    a.join().unwrap();
    assert_eq!(b.join().unwrap(), 400, "b sees a's sender dropped only after every round");
}

#[test]
fn a_plain_thread_feeds_coroutines_in_order() {
    for cap in [None, Some(0), Some(1), Some(3)] {
        let (tx, rx) = match cap {
            Some(n) => mpmc::bounded(n),
            None => mpmc::unbounded(),
        };
        let feeder = thread::spawn(move || (0..300).for_each(|i| tx.send(i).unwrap()));
        let got = spindle::run(move || rx.iter().collect::<Vec<u32>>());
        feeder.join().unwrap();
        assert_eq!(got, (0..300).collect::<Vec<_>>(), "capacity {cap:?}");
    }
}

#[test]
fn a_coroutine_feeds_a_plain_thread_in_order() {
    for cap in [None, Some(0), Some(1), Some(3)] {
        let (tx, rx) = match cap {
            Some(n) => mpmc::bounded(n),
            None => mpmc::unbounded(),
        };
        let consumer = thread::spawn(move || rx.iter().collect::<Vec<u32>>());
        spindle::run(move || (0..300).for_each(|i| tx.send(i).unwrap()));
        assert_eq!(consumer.join().unwrap(), (0..300).collect::<Vec<_>>(), "capacity {cap:?}");
    }
}

#[test]
fn a_thread_blocked_in_recv_is_woken_by_a_coroutine() {
    let (tx, rx) = mpmc::bounded::<&str>(0);
    let waiting = thread::spawn(move || rx.recv());
    // `try_send` on a rendezvous channel succeeds only once the thread waits in `recv`.
    spindle::run(move || send_when_received(&tx, "hi", true));
    assert_eq!(waiting.join().unwrap(), Ok("hi"));
}

#[test]
fn many_producers_and_consumers_receive_every_value_exactly_once() {
    const PER_PRODUCER: u64 = 400;
    for cap in [None, Some(0), Some(1), Some(8)] {
        let (tx, rx) = match cap {
            Some(n) => mpmc::bounded::<u64>(n),
            None => mpmc::unbounded(),
        };
        let mut producers = Vec::new();
        for p in 0..3u64 {
            let tx = tx.clone();
            producers.push(thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    tx.send(p * PER_PRODUCER + i).unwrap();
                }
            }));
        }
        // The fourth producer: two coroutines of a runtime.
        let runtime_tx = tx.clone();
        producers.push(on_runtime(move || {
            let workers: Vec<_> = (0..2u64)
                .map(|c| {
                    let tx = runtime_tx.clone();
                    spawn(move || {
                        for i in (c..PER_PRODUCER).step_by(2) {
                            tx.send(3 * PER_PRODUCER + i).unwrap();
                        }
                    })
                })
                .collect();
            workers.into_iter().for_each(|w| w.join().unwrap());
        }));
        drop(tx);
        // Consumers: three coroutines on each of two runtimes, and a plain thread.
        let mut consumers = Vec::new();
        for _ in 0..2 {
            let rx = rx.clone();
            consumers.push(on_runtime(move || {
                let workers: Vec<_> = (0..3)
                    .map(|_| {
                        let rx = rx.clone();
                        spawn(move || rx.iter().collect::<Vec<_>>())
                    })
                    .collect();
                workers.into_iter().flat_map(|w| w.join().unwrap()).collect::<Vec<_>>()
            }));
        }
        consumers.push(thread::spawn(move || rx.iter().collect::<Vec<_>>()));
        producers.into_iter().for_each(|p| p.join().unwrap());
        let mut all: Vec<u64> = consumers.into_iter().flat_map(|c| c.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..4 * PER_PRODUCER).collect::<Vec<_>>(), "capacity {cap:?}");
    }
}

#[test]
fn a_message_sent_to_a_parked_receiver_is_handed_to_it() {
    spindle::run(|| {
        let (tx, rx) = mpmc::unbounded();
        let rx2 = rx.clone();
        let parked = spawn(move || rx2.recv());
        yield_now(); // it parks
        tx.send(1).unwrap();
        // The woken receiver has not run yet, but the message is already its own.
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        assert!(rx.is_empty());
        assert_eq!(parked.join().unwrap(), Ok(1));
    });
}

#[test]
fn rendezvous_send_waits_until_a_receiver_takes_the_value() {
    let (tx, rx) = mpmc::bounded::<u32>(0);
    assert_eq!(rx.capacity(), Some(0));
    assert!(matches!(tx.try_send(1), Err(TrySendError::Full(1))), "nobody receiving");
    assert!(matches!(
        tx.send_timeout(2, Duration::from_millis(5)),
        Err(SendTimeoutError::Timeout(2))
    ));
    let returned = Arc::new(AtomicBool::new(false));
    let r = returned.clone();
    let sender = thread::spawn(move || {
        tx.send(3).unwrap();
        r.store(true, Ordering::SeqCst);
    });
    until_senders_wait(&rx, 1);
    assert!(!returned.load(Ordering::SeqCst), "send returned before any receive");
    let got = spindle::run(move || rx.recv());
    assert_eq!(got, Ok(3));
    sender.join().unwrap();
    assert!(returned.load(Ordering::SeqCst));
}

#[test]
fn rendezvous_receiver_takes_from_a_waiting_sender_of_another_runtime() {
    let (tx, rx) = mpmc::bounded::<u32>(0);
    let rx2 = rx.clone();
    let sender = on_runtime(move || tx.send(9));
    until_senders_wait(&rx, 1);
    assert_eq!(spindle::run(move || rx2.recv()), Ok(9));
    assert_eq!(sender.join().unwrap(), Ok(()));
}

#[test]
fn recv_timeout_times_out_on_an_empty_channel_in_a_coroutine_and_a_thread() {
    let (tx, rx) = mpmc::unbounded::<u8>();
    let rx2 = rx.clone();
    let in_thread = thread::spawn(move || rx2.recv_timeout(Duration::from_millis(5)));
    let in_coroutine = spindle::run(move || rx.recv_timeout(Duration::from_millis(5)));
    assert_eq!(in_coroutine, Err(RecvTimeoutError::Timeout));
    assert_eq!(in_thread.join().unwrap(), Err(RecvTimeoutError::Timeout));
    drop(tx);
}

#[test]
fn send_timeout_on_a_full_channel_gives_the_value_back_in_a_coroutine_and_a_thread() {
    let (tx, rx) = mpmc::bounded::<u8>(1);
    tx.try_send(0).unwrap();
    let tx2 = tx.clone();
    let in_thread = thread::spawn(move || tx2.send_timeout(1, Duration::from_millis(5)));
    let tx3 = tx.clone();
    let in_coroutine = spindle::run(move || tx3.send_timeout(2, Duration::from_millis(5)));
    assert!(matches!(in_coroutine, Err(SendTimeoutError::Timeout(2))));
    assert!(matches!(in_thread.join().unwrap(), Err(SendTimeoutError::Timeout(1))));
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0], "timed-out senders left nothing behind");
}

#[test]
fn timeouts_leave_the_channel_working() {
    spindle::run(|| {
        let (tx, rx) = mpmc::bounded::<u32>(1);
        for _ in 0..3 {
            assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvTimeoutError::Timeout));
        }
        tx.send(1).unwrap();
        assert!(matches!(
            tx.send_timeout(2, Duration::from_millis(1)),
            Err(SendTimeoutError::Timeout(2))
        ));
        let feeder = thread::spawn(move || {
            for i in 2..50 {
                tx.send(i).unwrap();
            }
        });
        assert_eq!(rx.iter().collect::<Vec<_>>(), (1..50).collect::<Vec<_>>());
        feeder.join().unwrap();
    });
}

#[test]
fn a_receiver_sees_disconnection_after_draining_what_was_sent() {
    let (tx, rx) = mpmc::bounded::<u32>(2);
    let rx2 = rx.clone();
    let producer = thread::spawn(move || {
        for i in 0..5 {
            tx.send(i).unwrap();
        }
    });
    let got = spindle::run(move || {
        let mut got = Vec::new();
        while let Ok(v) = rx.recv() {
            got.push(v);
        }
        assert_eq!(rx.recv(), Err(RecvError));
        assert!(rx.is_disconnected());
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Err(RecvTimeoutError::Disconnected));
        got
    });
    producer.join().unwrap();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert_eq!(rx2.recv(), Err(RecvError), "a thread sees it too");
}

#[test]
fn dropping_the_last_receiver_gives_waiting_senders_their_values_back() {
    let (tx, rx) = mpmc::bounded::<String>(0);
    let tx2 = tx.clone();
    let in_thread = thread::spawn(move || tx2.send("from a thread".to_string()));
    let tx3 = tx.clone();
    let in_coroutine = on_runtime(move || tx3.send("from a coroutine".to_string()));
    until_senders_wait(&rx, 2);
    drop(rx);
    assert_eq!(in_thread.join().unwrap(), Err(SendError("from a thread".to_string())));
    assert_eq!(in_coroutine.join().unwrap(), Err(SendError("from a coroutine".to_string())));
    assert!(tx.is_disconnected());
    assert!(matches!(tx.try_send("late".into()), Err(TrySendError::Disconnected(_))));
}

#[test]
fn dropping_the_last_receiver_drops_buffered_messages() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpmc::unbounded();
    for _ in 0..3 {
        tx.send(Counted(drops.clone())).unwrap();
    }
    thread::spawn(move || drop(rx)).join().unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    assert_eq!(tx.len(), 0);
}

#[test]
fn a_receiver_cancelled_while_handed_a_message_gives_it_back() {
    spindle::run(|| {
        let (tx, rx) = mpmc::unbounded();
        let rx2 = rx.clone();
        let first = spawn(move || rx2.recv());
        yield_now(); // `first` parks
        tx.send("job").unwrap(); // handed to `first`, whose wake is still on its way
        first.cancel(); // lands first: `first` wakes cancelled, holding the message
        assert!(matches!(first.join(), Err(JoinError::Cancelled)));
        assert_eq!(rx.try_recv(), Ok("job"), "given back to the channel");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "and not duplicated");
    });
}

#[test]
fn a_message_given_back_by_a_cancelled_receiver_goes_to_the_next_one_first() {
    spindle::run(|| {
        let (tx, rx) = mpmc::unbounded();
        let (rx1, rx2) = (rx.clone(), rx.clone());
        let first = spawn(move || rx1.recv());
        let second = spawn(move || rx2.recv());
        yield_now(); // both park, `first` ahead
        tx.send(1).unwrap(); // handed to `first`
        first.cancel();
        tx.send(2).unwrap(); // handed to `second`, before `first` runs to give 1 back
        assert!(matches!(first.join(), Err(JoinError::Cancelled)));
        // So 1 went back to the front of the buffer, for whoever receives next.
        assert_eq!(second.join().unwrap(), Ok(2));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1]);
    });
    spindle::run(|| {
        let (tx, rx) = mpmc::unbounded();
        let (rx1, rx2) = (rx.clone(), rx.clone());
        let first = spawn(move || rx1.recv());
        let second = spawn(move || rx2.recv());
        yield_now();
        tx.send(1).unwrap();
        first.cancel();
        assert!(matches!(first.join(), Err(JoinError::Cancelled)));
        // `second` was still waiting when `first` gave 1 back: it gets it directly.
        assert_eq!(second.join().unwrap(), Ok(1));
        assert!(rx.is_empty());
    });
}

#[test]
fn a_receiver_whose_deadline_passes_as_it_is_handed_a_message_returns_it() {
    spindle::run(|| {
        let (tx, rx) = mpmc::unbounded();
        let rx2 = rx.clone();
        let waiting = spawn(move || rx2.recv_timeout(Duration::from_millis(5)));
        yield_now(); // it parks
        tx.send(5).unwrap();
        // Block the runtime's thread past the deadline, so the timer and the wake race.
        thread::sleep(Duration::from_millis(10));
        assert_eq!(waiting.join().unwrap(), Ok(5));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn a_cancelled_waiting_receiver_leaves_nothing_behind() {
    spindle::run(|| {
        let (tx, rx) = mpmc::bounded(1);
        let rx2 = rx.clone();
        let waiting = spawn(move || rx2.recv());
        yield_now();
        waiting.cancel();
        assert!(matches!(waiting.join(), Err(JoinError::Cancelled)));
        // The next message is not handed to the gone receiver.
        tx.send(1).unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        // An enclosing time::timeout cancels the wait the same way.
        let r = spindle::time::timeout(Duration::from_millis(2), || rx.recv());
        assert!(r.is_err());
        tx.send(2).unwrap();
        assert_eq!(rx.recv(), Ok(2));
    });
}

#[test]
fn a_cancelled_waiting_sender_takes_its_value_with_it() {
    spindle::run(|| {
        let (tx, rx) = mpmc::bounded(1);
        tx.send(1).unwrap();
        let tx2 = tx.clone();
        let waiting = spawn(move || tx2.send(2));
        yield_now(); // parks: full
        waiting.cancel();
        assert!(matches!(waiting.join(), Err(JoinError::Cancelled)));
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "the cancelled send did not happen");
        tx.send(3).unwrap();
        assert_eq!(rx.try_recv(), Ok(3));
    });
}

#[test]
fn a_sender_whose_value_was_taken_before_its_cancellation_landed_has_sent() {
    spindle::run(|| {
        let (tx, rx) = mpmc::bounded(0);
        let sent = std::rc::Rc::new(std::cell::Cell::new(None));
        let s = sent.clone();
        let waiting = spawn(move || {
            s.set(Some(tx.send(7).is_ok()));
            yield_now(); // where the cancellation lands
            unreachable!("cancelled");
        });
        yield_now(); // parks with its value on offer
        assert_eq!(rx.try_recv(), Ok(7)); // taken: the send happened
        waiting.cancel(); // lands before the wake the receive sent
        assert!(matches!(waiting.join(), Err(JoinError::Cancelled)));
        assert_eq!(sent.get(), Some(true), "send returned Ok, then the coroutine unwound");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn select_receives_from_another_thread() {
    let (tx, rx) = mpmc::unbounded::<u32>();
    let feeder = thread::spawn(move || (0..100).for_each(|i| tx.send(i).unwrap()));
    let got = spindle::run(move || {
        let (_local_tx, local_rx) = spindle::sync::channel::unbounded::<u32>();
        let mut got = Vec::new();
        loop {
            select! {
                recv(local_rx) -> _ => unreachable!("nobody sends locally"),
                recv(rx) -> msg => match msg {
                    Ok(v) => got.push(v),
                    Err(RecvError) => break,
                },
            }
        }
        got
    });
    feeder.join().unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

#[test]
fn select_with_an_mpmc_arm_times_out_and_sees_disconnection() {
    spindle::run(|| {
        let (tx, rx) = mpmc::unbounded::<u32>();
        let timed_out = select! {
            recv(rx) -> _ => false,
            default(Duration::from_millis(2)) => true,
        };
        assert!(timed_out);
        let not_ready = select! {
            recv(rx) -> _ => false,
            default => true,
        };
        assert!(not_ready);
        tx.send(4).unwrap();
        let got = select! { recv(rx) -> msg => msg, default => Err(RecvError) };
        assert_eq!(got, Ok(4));
        drop(tx);
        let got = select! { recv(rx) -> msg => msg };
        assert_eq!(got, Err(RecvError));
    });
}

#[test]
fn selects_and_plain_receivers_on_several_runtimes_lose_nothing() {
    const N: u64 = 600;
    let (tx_a, rx_a) = mpmc::bounded::<u64>(2);
    let (tx_b, rx_b) = mpmc::bounded::<u64>(0);
    let feeders = [(tx_a, 0), (tx_b, N)].map(|(tx, base)| {
        thread::spawn(move || (base..base + N).for_each(|i| tx.send(i).unwrap()))
    });
    let mut consumers = Vec::new();
    for _ in 0..2 {
        let (rx_a, rx_b) = (rx_a.clone(), rx_b.clone());
        consumers.push(on_runtime(move || {
            let selecting: Vec<_> = (0..3)
                .map(|_| {
                    let (rx_a, rx_b) = (rx_a.clone(), rx_b.clone());
                    spawn(move || {
                        let mut got = Vec::new();
                        // Until one disconnects (a disconnected arm is always ready, and
                        // the first ready arm wins), then the other alone.
                        let rest = loop {
                            select! {
                                recv(rx_a) -> m => match m {
                                    Ok(v) => got.push(v),
                                    Err(_) => break rx_b,
                                },
                                recv(rx_b) -> m => match m {
                                    Ok(v) => got.push(v),
                                    Err(_) => break rx_a,
                                },
                            }
                        };
                        got.extend(rest.iter());
                        got
                    })
                })
                .collect();
            let plain = spawn(move || rx_b.iter().collect::<Vec<_>>());
            let mut got: Vec<u64> = selecting.into_iter().flat_map(|s| s.join().unwrap()).collect();
            got.extend(plain.join().unwrap());
            got
        }));
    }
    drop((rx_a, rx_b));
    feeders.into_iter().for_each(|f| f.join().unwrap());
    let all: Vec<u64> = consumers.into_iter().flat_map(|c| c.join().unwrap()).collect();
    assert_eq!(all.len() as u64, 2 * N, "nothing duplicated");
    assert_eq!(all.into_iter().collect::<HashSet<_>>().len() as u64, 2 * N, "nothing lost");
}

#[test]
fn a_coroutine_waiting_on_a_live_sender_in_another_thread_is_not_a_deadlock() {
    let (tx, rx) = mpmc::bounded::<u32>(0);
    // The thread sends only once the coroutine waits: by then its runtime had nothing to run,
    // no timer and no socket, and must not have reported a deadlock.
    let other = thread::spawn(move || send_when_received(&tx, 1, false));
    assert_eq!(spindle::run(move || rx.recv()), Ok(1));
    other.join().unwrap();
}

#[test]
fn a_coroutine_waiting_on_a_sender_dropped_in_another_thread_wakes_disconnected() {
    let (tx, rx) = mpmc::bounded::<u32>(0);
    let probe = tx.clone();
    let other = thread::spawn(move || {
        send_when_received(&probe, 1, false);
        drop(probe);
        drop(tx);
    });
    let got = spindle::run(move || (rx.recv(), rx.recv()));
    other.join().unwrap();
    assert_eq!(got, (Ok(1), Err(RecvError)));
}

#[test]
fn a_coroutine_woken_from_another_thread_runs_while_another_yields_in_a_loop() {
    spindle::run(|| {
        let (tx, rx) = mpmc::unbounded::<u8>();
        let done = std::rc::Rc::new(std::cell::Cell::new(false));
        let d = done.clone();
        let waiting = spawn(move || {
            rx.recv().unwrap();
            d.set(true);
        });
        yield_now(); // it parks
                     // Its wake is queued for this runtime, and its RemoteWaker is gone, before we yield.
        thread::spawn(move || tx.send(1).unwrap()).join().unwrap();
        let mut yields = 0;
        while !done.get() {
            yield_now();
            yields += 1;
            assert!(yields < 1_000_000, "the woken coroutine never got its turn");
        }
        waiting.join().unwrap();
    });
}
