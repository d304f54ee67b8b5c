//! Channels: order, capacity, rendezvous, disconnection, timeouts and cancellation.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use spindle::sync::channel::{
    self, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use spindle::{spawn, yield_now, JoinError, Runtime};

mod util;

fn virtual_runtime() -> Runtime {
    Runtime::builder().virtual_time(true).build().unwrap()
}

#[test]
fn messages_arrive_in_order() {
    spindle::run(|| {
        let (tx, rx) = channel::unbounded();
        let producer = spawn(move || (0..100).for_each(|i| tx.send(i).unwrap()));
        assert_eq!(rx.iter().collect::<Vec<_>>(), (0..100).collect::<Vec<_>>());
        producer.join().unwrap();
    });
}

#[test]
fn bounded_send_parks_while_full() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        let log = Rc::new(RefCell::new(Vec::new()));
        let lg = log.clone();
        let sender = spawn(move || {
            tx.send(3).unwrap();
            lg.borrow_mut().push("sent 3");
        });
        yield_now();
        assert!(log.borrow().is_empty(), "send must park on a full channel");
        assert_eq!(rx.recv(), Ok(1));
        sender.join().unwrap();
        assert_eq!(*log.borrow(), ["sent 3"]);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [2, 3]);
    });
}

#[test]
fn rendezvous_send_completes_only_when_a_receiver_takes_the_value() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(0);
        assert!(
            matches!(tx.try_send("early"), Err(TrySendError::Full("early"))),
            "nobody receiving"
        );
        let log = Rc::new(RefCell::new(Vec::new()));
        let lg = log.clone();
        let sender = spawn(move || {
            tx.send("hello").unwrap();
            lg.borrow_mut().push("send returned");
        });
        yield_now();
        yield_now();
        assert!(log.borrow().is_empty(), "rendezvous send returned before any receive");
        assert_eq!(rx.recv(), Ok("hello"));
        sender.join().unwrap();
        assert_eq!(*log.borrow(), ["send returned"]);
    });
}

#[test]
fn rendezvous_try_send_succeeds_when_a_receiver_is_parked() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(0);
        let receiver = spawn(move || rx.recv().unwrap());
        yield_now(); // the receiver parks
        tx.try_send(5).unwrap();
        assert_eq!(receiver.join().unwrap(), 5);
    });
}

#[test]
fn senders_and_receivers_are_clone_and_each_message_goes_to_one_receiver() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(3);
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                spawn(move || rx.iter().collect::<Vec<u32>>())
            })
            .collect();
        drop(rx);
        let producers: Vec<_> = (0..3)
            .map(|p| {
                let tx = tx.clone();
                spawn(move || (0..100).for_each(|i| tx.send(p * 1000 + i).unwrap()))
            })
            .collect();
        drop(tx);
        for p in producers {
            p.join().unwrap();
        }
        let mut all: Vec<u32> = consumers.into_iter().flat_map(|c| c.join().unwrap()).collect();
        all.sort_unstable();
        let mut expected: Vec<u32> =
            (0..3).flat_map(|p| (0..100).map(move |i| p * 1000 + i)).collect();
        expected.sort_unstable();
        assert_eq!(all, expected);
    });
}

#[test]
fn dropping_all_senders_lets_receivers_drain_then_disconnects() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(4);
        let tx2 = tx.clone();
        tx.send(1).unwrap();
        tx2.send(2).unwrap();
        drop(tx);
        assert_eq!(rx.try_recv(), Ok(1));
        drop(tx2);
        assert!(rx.is_disconnected());
        assert_eq!(rx.recv(), Ok(2));
        assert_eq!(rx.recv(), Err(channel::RecvError));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn parked_receiver_wakes_with_disconnected_when_the_last_sender_drops() {
    spindle::run(|| {
        let (tx, rx) = channel::unbounded::<i32>();
        let receiver = spawn(move || rx.recv());
        yield_now();
        drop(tx);
        assert_eq!(receiver.join().unwrap(), Err(channel::RecvError));
    });
}

#[test]
fn send_gives_the_value_back_when_all_receivers_are_gone() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(1);
        drop(rx);
        assert_eq!(tx.send(String::from("kept")).map_err(|e| e.0), Err(String::from("kept")));
        assert!(matches!(tx.try_send(1u8.to_string()), Err(TrySendError::Disconnected(_))));
    });
}

#[test]
fn parked_senders_get_their_values_back_when_receivers_drop() {
    spindle::run(|| {
        // A full bounded channel and a rendezvous one.
        let (tx, rx) = channel::bounded(1);
        tx.send(0).unwrap();
        let blocked = spawn(move || tx.send(1));
        let (ztx, zrx) = channel::bounded(0);
        let offered = spawn(move || ztx.send(2));
        yield_now();
        drop(rx);
        drop(zrx);
        assert!(matches!(blocked.join().unwrap(), Err(SendError(1))));
        assert!(matches!(offered.join().unwrap(), Err(SendError(2))));
    });
}

#[test]
fn recv_timeout_and_send_timeout_give_up() {
    virtual_runtime().run(|| {
        let (tx, rx) = channel::bounded(1);
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Err(RecvTimeoutError::Timeout));
        tx.send(1).unwrap();
        assert!(matches!(
            tx.send_timeout(2, Duration::from_millis(10)),
            Err(SendTimeoutError::Timeout(2))
        ));
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Ok(1));
        let (ztx, _zrx) = channel::bounded(0);
        assert!(matches!(
            ztx.send_timeout(3, Duration::from_millis(10)),
            Err(SendTimeoutError::Timeout(3))
        ));
        assert!(_zrx.is_empty(), "a timed-out rendezvous offer leaves nothing behind");
    });
}

#[test]
fn timed_out_receiver_does_not_swallow_the_next_message() {
    virtual_runtime().run(|| {
        let (tx, rx) = channel::unbounded();
        let r = rx.clone();
        let impatient = spawn(move || r.recv_timeout(Duration::from_millis(5)));
        let r = rx.clone();
        let patient = spawn(move || r.recv());
        yield_now();
        spindle::sleep(Duration::from_millis(10));
        assert_eq!(impatient.join().unwrap(), Err(RecvTimeoutError::Timeout));
        tx.send(42).unwrap();
        assert_eq!(patient.join().unwrap(), Ok(42));
    });
}

#[test]
fn cancelled_receiver_does_not_swallow_the_next_message() {
    spindle::run(|| {
        let (tx, rx) = channel::unbounded();
        let r = rx.clone();
        let cancelled = spawn(move || r.recv());
        let r = rx.clone();
        let patient = spawn(move || r.recv());
        yield_now();
        cancelled.cancel();
        tx.send(7).unwrap();
        assert!(matches!(cancelled.join(), Err(JoinError::Cancelled)));
        assert_eq!(patient.join().unwrap(), Ok(7));
    });
}

#[test]
fn cancelled_rendezvous_sender_takes_its_offer_back() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(0);
        let t = tx.clone();
        let cancelled = spawn(move || t.send("withdrawn"));
        let t = tx.clone();
        let patient = spawn(move || t.send("delivered"));
        yield_now();
        cancelled.cancel();
        yield_now();
        assert!(matches!(cancelled.join(), Err(JoinError::Cancelled)));
        assert_eq!(rx.recv(), Ok("delivered"));
        patient.join().unwrap().unwrap();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn rendezvous_sender_whose_value_was_taken_reports_success_even_if_cancelled_after() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(0);
        let log = Rc::new(RefCell::new(Vec::new()));
        let lg = log.clone();
        let sender = spawn(move || {
            let r = tx.send(1);
            lg.borrow_mut().push(r.is_ok());
            spindle::sleep(Duration::from_secs(3600)); // the cancellation lands here
        });
        yield_now(); // the sender parks with its offer
        assert_eq!(rx.recv(), Ok(1)); // takes the value and wakes the sender
        sender.cancel();
        assert!(matches!(sender.join(), Err(JoinError::Cancelled)));
        assert_eq!(*log.borrow(), [true]);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn rendezvous_sender_timing_out_after_its_value_was_taken_reports_success() {
    virtual_runtime().run(|| {
        let (tx, rx) = channel::bounded(0);
        // Both deadlines fall at the same instant; timers set earlier fire (and their
        // coroutines run) first. So: the sender's park times out, then `late` takes the value
        // before the sender resumes.
        let r = rx.clone();
        let late = spawn(move || {
            spindle::sleep(Duration::from_millis(10));
            r.try_recv()
        });
        let sender = spawn(move || tx.send_timeout(9, Duration::from_millis(10)));
        assert_eq!(late.join().unwrap(), Ok(9));
        assert!(sender.join().unwrap().is_ok(), "the value was delivered: that is a success");
    });
}

#[test]
fn len_capacity_and_iterators() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(5);
        assert_eq!((tx.capacity(), rx.capacity()), (Some(5), Some(5)));
        assert_eq!(channel::unbounded::<()>().0.capacity(), None);
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        assert_eq!((tx.len(), rx.len()), (3, 3));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
        assert!(rx.is_empty());
        tx.send(3).unwrap();
        drop(tx);
        assert_eq!(rx.into_iter().collect::<Vec<_>>(), [3]);
    });
}

#[test]
fn a_rendezvous_channel_never_reports_a_message_in_it() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(0);
        let r = rx.clone();
        let receiver = spawn(move || r.recv());
        yield_now();
        tx.try_send(1).unwrap(); // handed to the parked receiver, which has not run yet
        assert_eq!((tx.len(), rx.len(), tx.capacity()), (0, 0, Some(0)));
        assert!(tx.is_empty() && rx.is_empty());
        assert_eq!(receiver.join().unwrap(), Ok(1));
        let t = tx.clone();
        let sender = spawn(move || t.send(2)); // parks with its value on offer
        yield_now();
        assert_eq!((tx.len(), rx.len()), (0, 0));
        assert_eq!(rx.try_recv(), Ok(2));
        sender.join().unwrap().unwrap();
    });
}

#[test]
fn try_recv_takes_the_value_of_a_sender_parked_in_a_select_send_arm() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(0);
        let t = tx.clone();
        let evaluated = Rc::new(RefCell::new(0));
        let e = evaluated.clone();
        let selector = spawn(move || {
            spindle::select! {
                send(t, { *e.borrow_mut() += 1; 7 }) -> res => res.is_ok(),
            }
        });
        yield_now(); // parks: nobody receives yet, and its value is not made
        assert_eq!(*evaluated.borrow(), 0);
        assert_eq!(rx.try_recv(), Ok(7), "as from a sender parked in plain send");
        assert!(selector.join().unwrap());
        assert_eq!(*evaluated.borrow(), 1);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "nobody sends now");
    });
}

#[test]
fn is_full_says_whether_the_buffer_is_at_capacity() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(2);
        assert!(!tx.is_full() && !rx.is_full());
        tx.send(1).unwrap();
        assert!(!tx.is_full());
        tx.send(2).unwrap();
        assert!(tx.is_full() && rx.is_full());
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        rx.recv().unwrap();
        assert!(!rx.is_full());
        let (utx, urx) = channel::unbounded();
        (0..1000).for_each(|i| utx.send(i).unwrap());
        assert!(!utx.is_full() && !urx.is_full());
        // A rendezvous channel has no room of its own, as in crossbeam-channel.
        let (ztx, zrx) = channel::bounded::<i32>(0);
        assert!(ztx.is_full() && zrx.is_full());
    });
}

#[test]
fn both_halves_are_unwind_safe_and_survive_a_caught_panic() {
    fn assert_unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    assert_unwind_safe::<channel::Sender<String>>();
    assert_unwind_safe::<channel::Receiver<String>>();
    spindle::run(|| {
        let (tx, rx) = channel::bounded(1);
        // Borrowed into catch_unwind without AssertUnwindSafe.
        let caught = std::panic::catch_unwind(|| {
            tx.send(1).unwrap();
            assert_eq!(rx.recv(), Ok(1));
            tx.send(2).unwrap();
            panic!("after a send");
        });
        assert!(caught.is_err());
        assert_eq!(rx.try_recv(), Ok(2));
        tx.send(3).unwrap();
        assert_eq!(rx.recv(), Ok(3));
    });
}

/// A message whose destructor counts itself and, if `panics`, then panics.
struct Noisy {
    drops: Rc<std::cell::Cell<usize>>,
    panics: bool,
}

impl Drop for Noisy {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
        if self.panics {
            panic!("a message's destructor panics");
        }
    }
}

/// A full bounded channel of five messages, two of whose destructors panic, and a sender
/// parked for room with a sixth.
fn noisy_channel(
    drops: &Rc<std::cell::Cell<usize>>,
) -> (channel::Receiver<Noisy>, spindle::JoinHandle<bool>) {
    let (tx, rx) = channel::bounded(5);
    for i in 0..5 {
        tx.send(Noisy { drops: drops.clone(), panics: i % 2 == 1 }).unwrap();
    }
    let d = drops.clone();
    let parked = spawn(move || {
        let back = tx.send(Noisy { drops: d, panics: false }).unwrap_err().into_inner();
        drop(back);
        true
    });
    yield_now();
    (rx, parked)
}

#[test]
fn messages_whose_destructors_panic_are_all_dropped_without_aborting() {
    if util::is_child("noisy") {
        spindle::run(|| {
            // The last receiver goes while its coroutine unwinds from a panic: a second panic
            // escaping a destructor then would abort the process.
            let drops = Rc::new(std::cell::Cell::new(0));
            let (rx, parked) = noisy_channel(&drops);
            let unwinding = spawn(move || {
                let _rx = rx;
                panic!("the coroutine panics");
            });
            match unwinding.join() {
                // The payload is the coroutine's own panic. (`Panic::message` shows the last
                // panic the hook saw in the coroutine: the destructor's.)
                Err(JoinError::Panicked(p)) => {
                    assert_eq!(util::panic_message(p.payload()), "the coroutine panics")
                }
                other => panic!("{:?}", other.map(|_| ())),
            }
            assert!(parked.join().unwrap(), "the parked sender got its value back");
            assert_eq!(drops.get(), 6, "every message dropped, none leaked");
            // Not unwinding: the first destructor's panic goes on, after all are dropped.
            let drops = Rc::new(std::cell::Cell::new(0));
            let (rx, parked) = noisy_channel(&drops);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(rx)));
            let payload = caught.expect_err("the destructor's panic propagates");
            assert_eq!(util::panic_message(&*payload), "a message's destructor panics");
            assert!(parked.join().unwrap());
            assert_eq!(drops.get(), 6);
        });
        println!("all dropped");
        return;
    }
    let out = util::run_child(
        "messages_whose_destructors_panic_are_all_dropped_without_aborting",
        "noisy",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed ({}): {stderr}", out.status);
    assert!(stdout.contains("all dropped"), "stdout: {stdout}");
}

// ----- direct handoff -------------------------------------------------------------------

#[test]
fn a_send_to_a_parked_receiver_is_that_receivers_even_if_another_runs_first() {
    for cap in [None, Some(4), Some(0)] {
        spindle::run(move || {
            let (tx, rx) = match cap {
                None => channel::unbounded(),
                Some(n) => channel::bounded(n),
            };
            let parked_rx = rx.clone();
            let parked = spawn(move || parked_rx.recv().unwrap());
            yield_now(); // it parks in recv
            tx.try_send(1).unwrap();
            // The running coroutine cannot take what was handed over.
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "cap {cap:?}");
            assert_eq!(rx.len(), 0, "a handed message is not in the buffer");
            if cap != Some(0) {
                tx.send(2).unwrap();
                assert_eq!(rx.try_recv(), Ok(2), "cap {cap:?}");
            }
            assert_eq!(parked.join().unwrap(), 1, "cap {cap:?}");
        });
    }
}

#[test]
fn parked_receivers_are_handed_messages_in_the_order_they_parked() {
    spindle::run(|| {
        let (tx, rx) = channel::unbounded();
        let got = Rc::new(RefCell::new(Vec::new()));
        let receivers: Vec<_> = (0..3)
            .map(|i| {
                let (rx, got) = (rx.clone(), got.clone());
                spawn(move || {
                    let v = rx.recv().unwrap();
                    got.borrow_mut().push((i, v));
                })
            })
            .collect();
        yield_now(); // all three park, 0 first
        for v in [10, 11, 12] {
            tx.send(v).unwrap();
        }
        for r in receivers {
            r.join().unwrap();
        }
        assert_eq!(*got.borrow(), [(0, 10), (1, 11), (2, 12)]);
    });
}

#[test]
fn a_receiver_cancelled_after_it_was_handed_a_message_still_gets_it() {
    spindle::run(|| {
        let (tx, rx) = channel::unbounded();
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        let receiver = spawn(move || {
            let v = rx.recv().unwrap();
            *g.borrow_mut() = Some(v);
            spindle::sleep(Duration::from_secs(3600)); // the cancellation lands here
        });
        yield_now();
        tx.send(7).unwrap();
        receiver.cancel(); // before it ran: the handoff came first
        assert!(matches!(receiver.join(), Err(JoinError::Cancelled)));
        assert_eq!(*got.borrow(), Some(7), "the handed message is not lost");
    });
}

#[test]
fn a_handed_message_comes_before_the_disconnection() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(2);
        let receiver = spawn(move || (rx.recv(), rx.recv()));
        yield_now();
        tx.send(5).unwrap();
        drop(tx);
        assert_eq!(receiver.join().unwrap(), (Ok(5), Err(channel::RecvError)));
    });
}

#[test]
fn a_receiver_timing_out_is_not_handed_anything() {
    virtual_runtime().run(|| {
        let (tx, rx) = channel::unbounded();
        let rx2 = rx.clone();
        let late = spawn(move || rx2.recv_timeout(Duration::from_millis(5)));
        assert_eq!(late.join().unwrap(), Err(RecvTimeoutError::Timeout));
        tx.send(3).unwrap(); // nobody is parked: it is buffered
        assert_eq!(rx.try_recv(), Ok(3));
    });
}

#[test]
fn a_sender_woken_for_room_that_hands_its_message_over_wakes_the_next_sender() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(1);
        tx.send(0).unwrap();
        let senders: Vec<_> = (1..=2)
            .map(|i| {
                let tx = tx.clone();
                spawn(move || tx.send(i).unwrap())
            })
            .collect();
        yield_now(); // both park: the buffer is full
        drop(tx);
        // Taking 0 wakes sender 1, which hands 1 to this parked `recv` rather than use the room;
        // sender 2 must still be woken for that room, or it waits beside it for ever.
        assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
        senders.into_iter().for_each(|s| s.join().unwrap());
    });
}

/// The first parked receiver waits in a slot of its own and later ones in a queue: whatever
/// mix of slot and queue the receivers are in, they are handed messages in the order they
/// parked, and one that timed out is skipped.
#[test]
fn receivers_parked_before_and_after_a_handoff_are_served_in_the_order_they_parked() {
    virtual_runtime().run(|| {
        let (tx, rx) = channel::unbounded();
        let got = Rc::new(RefCell::new(Vec::new()));
        let receiver = |name: &'static str, timeout: Option<Duration>| {
            let (rx, got) = (rx.clone(), got.clone());
            spawn(move || {
                let v = match timeout {
                    Some(t) => rx.recv_timeout(t).ok(),
                    None => rx.recv().ok(),
                };
                got.borrow_mut().push((name, v));
            })
        };
        let a = receiver("a", None);
        let b = receiver("b", None);
        yield_now(); // a parks first, then b
        tx.send(1).unwrap(); // handed to a, which has not run yet
        let c = receiver("c", None);
        let d = receiver("d", Some(Duration::from_millis(1)));
        yield_now(); // c and d park; a takes 1
        tx.send(2).unwrap(); // b
        a.join().unwrap();
        b.join().unwrap();
        d.join().unwrap(); // times out, never handed anything
        let e = receiver("e", None);
        yield_now(); // e parks behind c
        tx.send(3).unwrap(); // c
        tx.send(4).unwrap(); // e
        c.join().unwrap();
        e.join().unwrap();
        assert_eq!(
            *got.borrow(),
            [("a", Some(1)), ("b", Some(2)), ("d", None), ("c", Some(3)), ("e", Some(4))]
        );
        // The next receiver to park alone gets the next message.
        let f = receiver("f", None);
        yield_now();
        tx.send(5).unwrap();
        f.join().unwrap();
        assert_eq!(got.borrow().last(), Some(&("f", Some(5))));
    });
}

/// A receiver alone in the slot that timed out or was cancelled is not handed a message, and
/// the slot is free again for the next one.
#[test]
fn a_lone_receiver_that_left_frees_its_place_for_the_next() {
    virtual_runtime().run(|| {
        let (tx, rx) = channel::bounded(1);
        let rx2 = rx.clone();
        let timed_out = spawn(move || rx2.recv_timeout(Duration::from_millis(1)));
        assert_eq!(timed_out.join().unwrap(), Err(RecvTimeoutError::Timeout));
        let rx3 = rx.clone();
        let cancelled = spawn(move || rx3.recv());
        yield_now();
        cancelled.cancel();
        assert!(matches!(cancelled.join(), Err(JoinError::Cancelled)));
        let rx4 = rx.clone();
        let next = spawn(move || rx4.recv());
        yield_now();
        tx.send(9).unwrap();
        assert_eq!(next.join().unwrap(), Ok(9));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "nothing left behind");
    });
}
