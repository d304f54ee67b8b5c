//! select!: picks fairly among ready arms (or in written order when `biased;`), parks until
//! one is ready, honours default and timeout arms, and leaves no registration or lost wakeup
//! behind.

use std::time::Duration;

use spindle::select;
use spindle::sync::channel::{self, RecvError};
use spindle::{spawn, yield_now, JoinError, Runtime};

fn virtual_runtime() -> Runtime {
    Runtime::builder().virtual_time(true).build().unwrap()
}

#[test]
fn biased_select_takes_the_first_ready_arm_in_written_order() {
    spindle::run(|| {
        let (tx1, rx1) = channel::unbounded();
        let (tx2, rx2) = channel::unbounded();
        tx1.send(1).unwrap();
        tx2.send(2).unwrap();
        let picked = select! {
            biased;
            recv(rx2) -> m => m.unwrap(),
            recv(rx1) -> m => m.unwrap(),
        };
        assert_eq!(picked, 2);
        let picked = select! {
            biased;
            recv(rx1) -> m => m.unwrap(),
            recv(rx2) -> m => m.unwrap(),
        };
        assert_eq!(picked, 1);
    });
}

const ROUNDS: usize = 10_000;

/// Which arm each of `ROUNDS` selects over always-ready arms chose; `ready[i]` says whether
/// arm `i` is ready (an unbounded channel with a message for every round) or never (empty).
fn choices(biased: bool, ready: [bool; 3]) -> Vec<usize> {
    let lines: Vec<_> = ready
        .iter()
        .map(|&ready| {
            let (tx, rx) = channel::unbounded();
            if ready {
                (0..ROUNDS).for_each(|_| tx.send(()).unwrap());
            }
            (tx, rx)
        })
        .collect();
    let [a, b, c] = [&lines[0].1, &lines[1].1, &lines[2].1];
    (0..ROUNDS)
        .map(|_| {
            if biased {
                select! {
                    biased;
                    recv(a) -> _ => 0,
                    recv(b) -> _ => 1,
                    recv(c) -> _ => 2,
                }
            } else {
                select! {
                    recv(a) -> _ => 0,
                    recv(b) -> _ => 1,
                    recv(c) -> _ => 2,
                }
            }
        })
        .collect()
}

fn hits(choices: &[usize]) -> [usize; 3] {
    let mut hits = [0; 3];
    choices.iter().for_each(|&c| hits[c] += 1);
    hits
}

#[test]
fn select_gives_each_ready_arm_a_fair_share() {
    spindle::run(|| {
        // crossbeam-channel's fairness test: two always-ready arms.
        let [a, b, _] = hits(&choices(false, [true, true, false]));
        assert!(a >= ROUNDS / 2 / 2 && b >= ROUNDS / 2 / 2, "hits {a} and {b}");
        // Uniform among the ready ones, wherever the arm that is not ready stands (a rotation
        // from a random start would give the arm after it twice the share).
        let [a, _, c] = hits(&choices(false, [true, false, true]));
        let share = ROUNDS / 2;
        assert!(a.abs_diff(share) < share / 10 && c.abs_diff(share) < share / 10, "{a}, {c}");
    });
}

#[test]
fn biased_select_starves_later_arms_as_written() {
    spindle::run(|| {
        assert_eq!(hits(&choices(true, [true, true, false])), [ROUNDS, 0, 0]);
        assert_eq!(hits(&choices(true, [false, true, true])), [0, ROUNDS, 0]);
    });
}

#[test]
fn a_seeded_runtime_repeats_its_select_choices() {
    let run = |seed| {
        let rt = Runtime::builder().seed(seed).build().unwrap();
        rt.run(|| choices(false, [true, true, true])[..256].to_vec())
    };
    assert_eq!(run(7), run(7), "the same seed, the same choices");
    assert_ne!(run(7), run(8), "the choices come from the seed");
}

#[test]
fn parks_until_an_arm_is_ready() {
    spindle::run(|| {
        let (tx1, rx1) = channel::unbounded::<i32>();
        let (tx2, rx2) = channel::unbounded::<&str>();
        let selector = spawn(move || {
            select! {
                recv(rx1) -> m => format!("one {m:?}"),
                recv(rx2) -> m => format!("two {m:?}"),
            }
        });
        yield_now();
        assert!(!selector.is_finished());
        tx2.send("hi").unwrap();
        assert_eq!(selector.join().unwrap(), "two Ok(\"hi\")");
        drop(tx1);
    });
}

#[test]
fn send_arm_completes_when_there_is_room_and_its_value_is_evaluated_only_if_chosen() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(1);
        let (_otx, orx) = channel::bounded::<i32>(1);
        let mut evaluated = 0;
        let r = select! {
            recv(orx) -> _ => "recv",
            send(tx, { evaluated += 1; 10 }) -> res => { res.unwrap(); "send" }
        };
        assert_eq!((r, evaluated), ("send", 1));
        // Full now: only the default arm is ready, and the value is not evaluated.
        let r = select! {
            send(tx, { evaluated += 1; 11 }) -> _ => "send",
            default => "default",
        };
        assert_eq!((r, evaluated), ("default", 1));
        assert_eq!(rx.recv(), Ok(10));
    });
}

#[test]
fn send_arm_on_a_rendezvous_channel_waits_for_a_receiver() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(0);
        let selector = spawn(move || {
            select! {
                send(tx, "handed") -> res => res.is_ok(),
            }
        });
        yield_now();
        assert!(!selector.is_finished());
        assert_eq!(rx.recv(), Ok("handed"));
        assert!(selector.join().unwrap());
    });
}

#[test]
fn disconnected_channels_are_ready_with_an_error() {
    spindle::run(|| {
        let (tx, rx) = channel::unbounded::<i32>();
        drop(tx);
        let r = select! {
            recv(rx) -> m => m,
        };
        assert_eq!(r, Err(RecvError));
        let (tx, rx) = channel::bounded::<i32>(0);
        drop(rx);
        let r = select! {
            send(tx, 5) -> res => res.map_err(|e| e.into_inner()),
        };
        assert_eq!(r, Err(5));
    });
}

#[test]
fn default_runs_when_nothing_is_ready() {
    spindle::run(|| {
        let (_tx, rx) = channel::unbounded::<i32>();
        let r = select! {
            recv(rx) -> _ => 1,
            default => 2,
        };
        assert_eq!(r, 2);
    });
}

#[test]
fn timeout_arm_runs_after_the_timeout_and_leaves_no_registration() {
    virtual_runtime().run(|| {
        let (tx, rx) = channel::unbounded::<i32>();
        let start = spindle::time::now();
        let r = select! {
            recv(rx) -> _ => "message",
            default(Duration::from_millis(30)) => "timeout",
        };
        assert_eq!(r, "timeout");
        assert_eq!(spindle::time::now() - start, Duration::from_millis(30));
        let r = select! {
            recv(rx) -> _ => "message",
            timeout(Duration::from_millis(5)) => "timeout",
        };
        assert_eq!(r, "timeout");
        // A plain receiver parked afterwards gets the next message: the select's stale
        // registrations are gone and do not absorb the wakeup.
        let r = rx.clone();
        let receiver = spawn(move || r.recv());
        yield_now();
        tx.send(3).unwrap();
        assert_eq!(receiver.join().unwrap(), Ok(3));
    });
}

#[test]
fn select_woken_for_one_channel_that_takes_another_passes_the_wakeup_on() {
    spindle::run(|| {
        let (tx_a, rx_a) = channel::unbounded();
        let (tx_b, rx_b) = channel::unbounded();
        let (ra, rb) = (rx_a.clone(), rx_b.clone());
        // The select prefers B; a plain receiver waits on A behind it.
        let selector = spawn(move || {
            select! {
                biased;
                recv(rb) -> m => ("b", m.unwrap()),
                recv(ra) -> m => ("a", m.unwrap()),
            }
        });
        let ra = rx_a.clone();
        let plain = spawn(move || ra.recv().unwrap());
        yield_now(); // both park; A's queue: [selector, plain]
        tx_a.send(1).unwrap(); // wakes the selector (first in A's queue)
        tx_b.send(2).unwrap(); // the selector is already woken: nobody else waits on B
                               // The selector takes B (first arm) and must pass A's wakeup on to `plain`.
        assert_eq!(selector.join().unwrap(), ("b", 2));
        assert_eq!(plain.join().unwrap(), 1);
    });
}

#[test]
fn cancelled_select_leaves_no_trace() {
    spindle::run(|| {
        let (tx, rx) = channel::unbounded::<i32>();
        let r = rx.clone();
        let selector = spawn(move || {
            select! {
                recv(r) -> m => m,
            }
        });
        let r = rx.clone();
        let plain = spawn(move || r.recv());
        yield_now();
        selector.cancel();
        tx.send(4).unwrap();
        assert!(matches!(selector.join(), Err(JoinError::Cancelled)));
        assert_eq!(plain.join().unwrap(), Ok(4));
    });
}

#[test]
fn select_in_a_loop_drains_several_channels() {
    spindle::run(|| {
        let (tx1, rx1) = channel::bounded(2);
        let (tx2, rx2) = channel::bounded(2);
        let p1 = spawn(move || (0..50).for_each(|i| tx1.send(i).unwrap()));
        let p2 = spawn(move || (100..150).for_each(|i| tx2.send(i).unwrap()));
        let (mut got, mut open) = (Vec::new(), 2);
        while open > 0 {
            select! {
                recv(rx1) -> m => match m { Ok(v) => got.push(v), Err(_) => open -= 1 },
                recv(rx2) -> m => match m { Ok(v) => got.push(v), Err(_) => open -= 1 },
            }
            if open < 2 {
                // A disconnected channel is always ready: finish the other one plainly.
                got.extend(rx1.iter());
                got.extend(rx2.iter());
                break;
            }
        }
        p1.join().unwrap();
        p2.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, (0..50).chain(100..150).collect::<Vec<_>>());
    });
}

#[test]
fn arms_accept_blocks_expressions_and_optional_commas() {
    let rt = Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let (tx, rx) = channel::unbounded::<i32>();
        tx.send(1).unwrap();
        let a = select! {
            recv(rx) -> m => { m.unwrap() }
            default => 0
        };
        let b = select! {
            recv(rx) -> m => m.unwrap(),
            default => { -1 },
        };
        let c = select! {
            default(Duration::from_millis(1)) => 5
        };
        let d = select! {
            send(tx, 9) -> r => { r.unwrap(); 9 },
            recv(rx) -> _ => 0,
        };
        assert_eq!((a, b, c, d), (1, -1, 5, 9));
        assert_eq!(rx.try_recv(), Ok(9));
    });
}

#[test]
fn rendezvous_send_arm_whose_value_parks_still_reaches_the_receiver_woken_for_it() {
    virtual_runtime().run(|| {
        let (tx, rx) = channel::bounded(0);
        let mut receiver = spawn(move || rx.recv());
        yield_now(); // parks: the send arm is ready
        let sent = select! {
            // The receiver, woken when the arm is chosen, finds nothing yet and parks again.
            send(tx, { spindle::sleep(Duration::from_millis(1)); 5 }) -> res => res,
        };
        assert!(sent.is_ok());
        assert_eq!(receiver.join_timeout(Duration::from_secs(1)).ok(), Some(Ok(5)));
    });
}

#[test]
fn rendezvous_send_arm_whose_woken_receiver_left_meanwhile_goes_to_the_next_one() {
    virtual_runtime().run(|| {
        let (tx, rx) = channel::bounded(0);
        let (other_tx, other_rx) = channel::unbounded();
        let r = rx.clone();
        // Woken by the send arm's choice, it finds `rx` empty and takes `other` instead.
        let leaver = spawn(move || {
            select! {
                recv(r) -> m => ("rx", m.unwrap()),
                recv(other_rx) -> m => ("other", m.unwrap()),
            }
        });
        yield_now();
        let t = tx.clone(); // `tx` stays: a disconnection would wake `next` on its own
        let selector = spawn(move || {
            select! {
                send(t, { spindle::sleep(Duration::from_millis(1)); 5 }) -> res => res.is_ok(),
            }
        });
        yield_now(); // the arm is chosen, the leaver woken; the value is still being made
        other_tx.send(1).unwrap();
        let r = rx.clone();
        let mut next = spawn(move || r.recv());
        assert_eq!(leaver.join().unwrap(), ("other", 1));
        assert_eq!(next.join_timeout(Duration::from_secs(1)).ok(), Some(Ok(5)));
        assert!(selector.join().unwrap());
    });
}

#[test]
fn rendezvous_send_arm_whose_value_expression_unwinds_leaves_nothing_promised() {
    virtual_runtime().run(|| {
        let (tx, rx) = channel::bounded::<i32>(0);
        let r = rx.clone();
        let mut receiver = spawn(move || r.recv());
        yield_now();
        let t = tx.clone();
        let selector = spawn(move || {
            select! {
                send(t, { spindle::sleep(Duration::from_secs(60)); 5 }) -> res => res.is_ok(),
            }
        });
        yield_now(); // the arm is chosen; the receiver, woken, parks again
        selector.cancel();
        assert!(matches!(selector.join(), Err(JoinError::Cancelled)));
        // The receiver waits on; the next value reaches it directly.
        assert!(matches!(
            receiver.join_timeout(Duration::from_millis(1)),
            Err(JoinError::TimedOut)
        ));
        tx.try_send(6).unwrap();
        assert_eq!(receiver.join().unwrap(), Ok(6));
    });
}

/// Runs `f` on a runtime with virtual time in a thread of its own, and fails if it has not
/// finished within `limit` of real time (a select that spins never gives the thread back).
fn finishes_within<T: Send + 'static>(limit: Duration, f: fn() -> T) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(virtual_runtime().run(f));
    });
    result.recv_timeout(limit).expect("the runtime did not finish: a select! spins")
}

#[test]
fn send_and_recv_arms_on_one_rendezvous_channel_wait_for_the_timeout_without_spinning() {
    let waited = finishes_within(Duration::from_secs(10), || {
        let (tx, rx) = channel::bounded::<i32>(0);
        let start = spindle::time::now();
        // Registering the recv arm must not wake the select's own send arm.
        let r = select! {
            send(tx, 1) -> _ => "send",
            recv(rx) -> _ => "recv",
            default(Duration::from_millis(500)) => "timeout",
        };
        assert_eq!(r, "timeout");
        spindle::time::now() - start
    });
    assert_eq!(waited, Duration::from_millis(500));
}

#[test]
fn a_select_with_a_default_arm_takes_the_value_of_a_sender_parked_in_a_select_send_arm() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded(0);
        let (_other_tx, other_rx) = channel::unbounded::<i32>();
        let selector = spawn(move || {
            select! {
                send(tx, 7) -> res => res.is_ok(),
                recv(other_rx) -> _ => false,
            }
        });
        yield_now();
        let got = select! {
            recv(rx) -> v => v,
            default => Err(RecvError),
        };
        assert_eq!(got, Ok(7));
        assert!(selector.join().unwrap());
        let got = select! {
            recv(rx) -> v => v,
            default => Err(RecvError),
        };
        assert_eq!(got, Err(RecvError), "the sender is gone: disconnected");
    });
}

/// A value expression that unwinds.
fn no_value() -> i32 {
    panic!("the value expression unwinds")
}

#[test]
fn a_claimed_select_whose_value_expression_unwinds_leaves_try_recv_empty_handed() {
    spindle::run(|| {
        let (tx, rx) = channel::bounded::<i32>(0);
        let t = tx.clone();
        let selector = spawn(move || {
            select! {
                send(t, no_value()) -> res => res.is_ok(),
            }
        });
        yield_now();
        assert_eq!(rx.try_recv(), Err(spindle::sync::channel::TryRecvError::Empty));
        assert!(matches!(selector.join(), Err(JoinError::Panicked(_))));
        drop(tx);
        assert_eq!(rx.try_recv(), Err(spindle::sync::channel::TryRecvError::Disconnected));
    });
}

#[test]
fn arms_accept_crossbeams_grammar_default_without_timeout_and_trailing_commas() {
    virtual_runtime().run(|| {
        let (tx, rx) = channel::unbounded::<i32>();
        // `default()` is `default`: no timeout, never parks.
        let a = select! {
            recv(rx) -> _ => 1,
            default() => 2,
        };
        let start = spindle::time::now();
        let b = select! {
            recv(rx,) -> _ => 1,
            default(Duration::from_millis(3),) => 3,
        };
        assert_eq!(spindle::time::now() - start, Duration::from_millis(3));
        let c = select! {
            send(tx, 4,) -> r => { r.unwrap(); 4 },
        };
        let d = select! {
            biased;
            recv(rx,) -> m => m.unwrap(),
            default() => { 0 },
        };
        assert_eq!((a, b, c, d), (2, 3, 4, 4));
    });
}

#[test]
fn a_select_of_more_than_sixteen_arms_parks_and_wakes_like_a_small_one() {
    spindle::run(|| {
        let lines: Vec<_> = (0..17).map(|_| channel::unbounded::<usize>()).collect();
        let r: Vec<_> = lines.iter().map(|(_, rx)| rx.clone()).collect();
        let selector = spawn(move || {
            select! {
                recv(r[0]) -> m => m, recv(r[1]) -> m => m, recv(r[2]) -> m => m,
                recv(r[3]) -> m => m, recv(r[4]) -> m => m, recv(r[5]) -> m => m,
                recv(r[6]) -> m => m, recv(r[7]) -> m => m, recv(r[8]) -> m => m,
                recv(r[9]) -> m => m, recv(r[10]) -> m => m, recv(r[11]) -> m => m,
                recv(r[12]) -> m => m, recv(r[13]) -> m => m, recv(r[14]) -> m => m,
                recv(r[15]) -> m => m, recv(r[16]) -> m => m,
            }
        });
        yield_now();
        assert!(!selector.is_finished());
        lines[16].0.send(16).unwrap();
        assert_eq!(selector.join().unwrap(), Ok(16));
        // Its registrations are gone: a plain receiver gets the next message.
        let rx = lines[3].1.clone();
        let plain = spawn(move || rx.recv());
        yield_now();
        lines[3].0.send(3).unwrap();
        assert_eq!(plain.join().unwrap(), Ok(3));
    });
}

#[test]
fn a_select_with_a_default_arm_takes_a_value_that_came_while_it_claimed_another_arm() {
    virtual_runtime().run(|| {
        let (ta, ra) = channel::bounded(0);
        let (tb, rb) = channel::bounded(0);
        // Parks in a send arm; once chosen (claimed), its value takes a while to make.
        let slow = spawn(move || {
            select! {
                send(ta, { spindle::sleep(Duration::from_millis(1)); 1 }) -> res => res.is_ok(),
            }
        });
        yield_now();
        let r = ra.clone();
        let mut selector = spawn(move || {
            select! {
                biased;
                recv(r) -> m => m.map(|v| ("a", v)),
                recv(rb) -> m => m.map(|v| ("b", v)),
                default => Err(RecvError),
            }
        });
        // Runs while the select above waits for `slow` to choose, and offers on `b`.
        let plain = spawn(move || tb.send(2));
        assert_eq!(selector.join_timeout(Duration::from_secs(1)).ok(), Some(Ok(("b", 2))));
        plain.join().unwrap().unwrap();
        // `slow`'s value, made late, waits for a receiver like a plain send.
        assert_eq!(ra.recv(), Ok(1));
        assert!(slow.join().unwrap());
    });
}
