//! Schedule exploration finds planted bugs, and replays them.

#[path = "../examples/race_hunt/bugs.rs"]
mod bugs;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use bugs::{check_then_act, lost_wakeup, ordering_of_depth_two};
use spindle::check::{self, Strategy};

#[test]
fn random_finds_a_check_then_act_race_and_replay_reproduces_it() {
    let failure = check::search(Strategy::Random, 0, 200, check_then_act).unwrap_err();
    assert!(failure.message.contains("taken twice"), "{}", failure.message);
    assert!(failure.to_string().contains(&failure.replay_line()));
    let again = std::panic::catch_unwind(|| check::replay(failure.seed, check_then_act));
    assert!(again.is_err(), "the replay fails the same way");
}

#[test]
fn pct_finds_a_check_then_act_race() {
    // Depth 2: the other coroutine must run between the check and the act, one priority
    // change inside the first. Search bases whose step-counting random run passes, so that
    // PCT itself finds it.
    let failure = (0..20)
        .map(|base| check::search(Strategy::Pct { depth: 2 }, base * 1000, 200, check_then_act))
        .find_map(|r| r.err().filter(|f| f.strategy != Strategy::Random))
        .expect("pct finds the race");
    assert!(failure.message.contains("taken twice"));
    let steps = failure.steps;
    let again =
        std::panic::catch_unwind(|| check::replay_pct(failure.seed, 2, steps, check_then_act));
    assert!(again.is_err(), "the replay fails the same way");
}

#[test]
fn a_lost_wakeup_is_found_as_a_deadlock() {
    for strategy in [Strategy::Random, Strategy::Pct { depth: 2 }] {
        let failure = check::search(strategy, 0, 500, lost_wakeup).unwrap_err();
        assert!(failure.message.contains("deadlock"), "{strategy}: {}", failure.message);
        assert!(failure.message.contains("hand-made condvar"), "{}", failure.message);
    }
}

#[test]
fn pct_finds_an_ordering_bug_of_depth_two() {
    let failure =
        check::search(Strategy::Pct { depth: 2 }, 0, 2000, ordering_of_depth_two).unwrap_err();
    assert!(failure.message.contains("b saw a set"), "{}", failure.message);
}

#[test]
fn a_correct_program_passes_every_iteration() {
    check::random(100, || {
        let m = Rc::new(spindle::sync::Mutex::new(0));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let m = m.clone();
                spindle::spawn(move || {
                    let mut g = m.lock();
                    spindle::yield_now();
                    *g += 1;
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(*m.lock(), 3);
    });
}

/// The order in which 6 coroutines of 4 steps each interleave under `seed`.
fn schedule(seed: u64) -> Vec<u8> {
    let rt = spindle::Runtime::builder().seed(seed).virtual_time(true).build().unwrap();
    rt.run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let hs: Vec<_> = (0..6u8)
            .map(|i| {
                let log = log.clone();
                spindle::spawn(move || {
                    for _ in 0..4 {
                        log.borrow_mut().push(i);
                        spindle::yield_now();
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        let v = log.borrow().clone();
        v
    })
}

#[test]
fn a_hundred_seeds_give_at_least_95_distinct_schedules_and_each_repeats() {
    let schedules: HashSet<Vec<u8>> = (0..100).map(schedule).collect();
    assert!(schedules.len() >= 95, "only {} distinct schedules", schedules.len());
    assert_eq!(schedule(42), schedule(42));
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("spindle-check-{}-{name}", std::process::id()))
}

#[test]
fn a_failure_writes_its_runs_trace_the_same_each_time() {
    let failure = check::search(Strategy::Random, 0, 200, check_then_act).unwrap_err();
    let (a, b) = (temp_path("a.json"), temp_path("b.json"));
    failure.write_trace(&a, check_then_act).unwrap();
    failure.write_trace(&b, check_then_act).unwrap();
    let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::remove_file(&a).unwrap();
    std::fs::remove_file(&b).unwrap();
    assert!(ta == tb, "the failing run, traced twice, is the same run");
    let trace: serde_json::Value = serde_json::from_slice(&ta).expect("the trace is JSON");
    let events = trace.as_array().unwrap();
    assert!(events.iter().any(|e| e["ph"] == "X" && e["name"] == "run"));
    // Main and the two racing coroutines each have a track.
    let tracks =
        events.iter().filter(|e| e["name"] == "thread_name" && e["tid"] != u64::MAX).count();
    assert_eq!(tracks, 3, "{events:?}");
}

#[test]
fn write_trace_says_when_the_rerun_passes() {
    // A failure whose seed does not fail: the body it is given is not the one that failed.
    let failure = check::search(Strategy::Random, 0, 200, check_then_act).unwrap_err();
    let path = temp_path("passes.json");
    let err = failure.write_trace(&path, || {}).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(err.to_string().contains("passed when run again"), "{err}");
}

/// Run by `spindle_trace_dir_writes_the_failing_runs_trace` in a child process, with
/// `SPINDLE_TRACE_DIR` set (setting it here would reach every test of this binary).
#[test]
#[ignore = "run by spindle_trace_dir_writes_the_failing_runs_trace"]
fn search_under_spindle_trace_dir() {
    let failure = check::search(Strategy::Pct { depth: 2 }, 0, 500, lost_wakeup).unwrap_err();
    let trace = failure.trace.clone().expect("SPINDLE_TRACE_DIR is set: the trace was written");
    assert!(failure.to_string().contains(&format!("trace is in {}", trace.display())));
    let text = std::fs::read_to_string(&trace).unwrap();
    let events: serde_json::Value = serde_json::from_str(&text).expect("the trace is JSON");
    // The deadlock's waits are in it, named by what they waited on.
    let waits = events.as_array().unwrap().iter().filter(|e| e["cat"] == "wait").count();
    assert!(waits > 0);
    println!("wrote {}", trace.display());
}

#[test]
fn spindle_trace_dir_writes_the_failing_runs_trace() {
    let dir = temp_path("dir");
    let _ = std::fs::remove_dir_all(&dir);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "search_under_spindle_trace_dir", "--ignored", "--nocapture"])
        .env("SPINDLE_TRACE_DIR", &dir)
        .env_remove("SPINDLE_SEED")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 passed"), "the child ran the test: {stdout}");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].to_str().unwrap();
    assert!(name.starts_with("spindle-check-") && name.ends_with(".json"), "{name}");
}
