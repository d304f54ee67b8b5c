//! The timeline trace: valid Chrome trace-event JSON with tracks, slices, flows and counters.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

fn trace_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("spindle-trace-{}-{name}.json", std::process::id()))
}

/// A small program: a named worker sleeps and is woken through a channel.
fn program(builder: spindle::RuntimeBuilder) {
    builder.build().unwrap().run(|| {
        let (tx, rx) = spindle::sync::channel::bounded::<u32>(0);
        let worker = spindle::Builder::new()
            .name("worker")
            .spawn(move || {
                spindle::sleep(Duration::from_millis(3));
                rx.recv().unwrap()
            })
            .unwrap();
        spindle::yield_now();
        tx.send(7).unwrap();
        assert_eq!(worker.join().unwrap(), 7);
    });
}

fn events(path: &PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let v: Value = serde_json::from_str(&text).expect("the trace is JSON");
    v.as_array().expect("an array of events").clone()
}

#[test]
fn the_trace_has_tracks_slices_flows_and_counters() {
    let path = trace_path("shape");
    program(spindle::Runtime::builder().virtual_time(true).seed(3).trace(&path));
    let evs = events(&path);
    std::fs::remove_file(&path).unwrap();
    let has = |f: &dyn Fn(&Value) -> bool| evs.iter().any(f);
    let name = |e: &Value| e["name"].as_str().unwrap_or("").to_owned();
    assert!(has(&|e| e["ph"] == "M" && e["args"]["name"] == "#1 worker"), "worker's track");
    assert!(has(&|e| e["ph"] == "M" && e["args"]["name"] == "#0 main"), "main's track");
    assert!(has(&|e| e["ph"] == "X" && name(e) == "run"), "run slices");
    assert!(has(&|e| e["ph"] == "X" && e["cat"] == "wait" && name(e) == "sleep"), "a wait slice");
    // Objects are named by per-runtime numbers, as in deadlock reports.
    let rendezvous = |e: &Value| {
        name(e) == "Sender::send (channel#1)" || name(e) == "Receiver::recv (channel#1)"
    };
    assert!(has(&|e| e["ph"] == "X" && e["cat"] == "wait" && rendezvous(e)), "the channel wait");
    let starts: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "s").collect();
    let ends: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "f").collect();
    assert!(!starts.is_empty() && !ends.is_empty(), "flow arrows");
    for f in &ends {
        assert!(starts.iter().any(|s| s["id"] == f["id"]), "every arrow has a start");
    }
    assert!(has(&|e| e["ph"] == "s" && name(e) == "timer"), "the sleep's wake comes from a timer");
    assert!(has(&|e| e["ph"] == "C" && e["args"]["live"].is_u64()), "counters");
    assert!(has(&|e| e["ph"] == "i" && name(e) == "spawn"));
    assert!(has(&|e| e["ph"] == "i" && name(e) == "finish"));
}

#[test]
fn a_seeded_virtual_time_program_writes_the_same_trace_byte_for_byte() {
    let (a, b) = (trace_path("a"), trace_path("b"));
    program(spindle::Runtime::builder().virtual_time(true).seed(11).trace(&a));
    program(spindle::Runtime::builder().virtual_time(true).seed(11).trace(&b));
    let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::remove_file(&a).unwrap();
    std::fs::remove_file(&b).unwrap();
    assert!(!ta.is_empty());
    let first_difference = ta.iter().zip(&tb).position(|(x, y)| x != y);
    assert!(
        ta == tb,
        "traces differ (lengths {} and {}, first at {first_difference:?})",
        ta.len(),
        tb.len()
    );
}

#[test]
fn trace_last_keeps_a_bounded_ring_of_events() {
    let path = trace_path("ring");
    spindle::Runtime::builder().virtual_time(true).trace_last(20, &path).build().unwrap().run(
        || {
            for _ in 0..200 {
                spindle::spawn(spindle::yield_now).join().unwrap();
            }
        },
    );
    let evs = events(&path);
    std::fs::remove_file(&path).unwrap();
    let (names, events): (Vec<&Value>, Vec<&Value>) = evs.iter().partition(|e| e["ph"] == "M");
    assert_eq!(events.len(), 20, "the last 20 events");
    assert!(events.iter().any(|e| e["name"] == "finish"));
    // Every track the kept events are on is still named, however long ago it was spawned, and
    // the names kept are bounded (the process, the scheduler, main, at most 20 finished
    // coroutines).
    for e in events.iter().filter(|e| !e["tid"].is_null()) {
        let named = names.iter().any(|n| n["tid"] == e["tid"]);
        assert!(named, "the track of {e} has its name");
    }
    assert!(names.len() <= 23, "{} names kept", names.len());
}

/// Many coroutines yielding and parking: a trace of a few hundred kilobytes, handed to the file in
/// many buffers.
fn busy_program(builder: spindle::RuntimeBuilder) {
    builder.build().unwrap().run(|| {
        let (tx, rx) = spindle::sync::channel::bounded::<u32>(1);
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let tx = tx.clone();
                spindle::spawn(move || {
                    for n in 0..150 {
                        spindle::yield_now();
                        tx.send(i * 1000 + n).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let received = rx.iter().count();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(received, 1200);
    });
}

#[test]
fn a_long_trace_is_valid_json_and_the_same_byte_for_byte() {
    let (a, b) = (trace_path("long-a"), trace_path("long-b"));
    busy_program(spindle::Runtime::builder().virtual_time(true).seed(5).trace(&a));
    busy_program(spindle::Runtime::builder().virtual_time(true).seed(5).trace(&b));
    let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(ta.len() > 4 << 16, "several buffers' worth: {} bytes", ta.len());
    assert!(ta == tb, "traces differ (lengths {} and {})", ta.len(), tb.len());
    let evs = events(&a);
    std::fs::remove_file(&a).unwrap();
    std::fs::remove_file(&b).unwrap();
    let runs = evs.iter().filter(|e| e["ph"] == "X" && e["name"] == "run").count();
    assert!(runs >= 8 * 150, "a run slice per resumption at least: {runs}");
}

#[test]
fn counters_are_written_when_they_change() {
    let path = trace_path("counters");
    busy_program(spindle::Runtime::builder().virtual_time(true).seed(2).trace(&path));
    let evs = events(&path);
    std::fs::remove_file(&path).unwrap();
    let counters: Vec<(u64, u64)> = evs
        .iter()
        .filter(|e| e["ph"] == "C")
        .map(|e| (e["args"]["runnable"].as_u64().unwrap(), e["args"]["live"].as_u64().unwrap()))
        .collect();
    assert!(counters.len() > 2, "{counters:?}");
    assert!(counters.windows(2).all(|w| w[0] != w[1]), "no counter repeats the last one");
    assert!(counters.iter().any(|&(_, live)| live == 9), "main and 8 workers: {counters:?}");
}

#[test]
fn panics_cancellations_and_timeouts_are_instants_on_their_tracks() {
    let path = trace_path("instants");
    let builder = spindle::Runtime::builder().virtual_time(true).seed(3).trace(&path);
    builder.build().unwrap().run(|| {
        let panicker = spindle::spawn(|| panic!("planted"));
        let sleeper = spindle::spawn(|| spindle::sleep(std::time::Duration::from_secs(60)));
        let waiter = spindle::spawn(|| {
            spindle::time::timeout(std::time::Duration::from_millis(5), || {
                spindle::sleep(std::time::Duration::from_secs(60))
            })
        });
        spindle::yield_now();
        sleeper.cancel();
        assert!(panicker.join().is_err());
        assert!(sleeper.join().is_err());
        assert!(waiter.join().unwrap().is_err(), "the timeout expired");
    });
    let evs = events(&path);
    std::fs::remove_file(&path).unwrap();
    let instant_on = |name: &str, tid: u64| {
        evs.iter().any(|e| e["ph"] == "i" && e["name"] == name && e["tid"] == tid)
    };
    assert!(instant_on("panic", 1), "the panic, on #1's track");
    assert!(instant_on("cancel", 2), "the cancellation, on #2's track");
    assert!(instant_on("timeout", 3), "the timeout, on #3's track");
    assert!(!instant_on("panic", 2) && !instant_on("timeout", 1), "nowhere else");
}
