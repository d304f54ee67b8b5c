//! Core benchmarks: spindle against its floor and its baseline, measured in the same run.
//!
//! * `yield_round_trip/*`: one round trip A -> B -> A between two coroutines.
//!   - `spindle`: A calls `yield_now`; the scheduler resumes B, whose `yield_now` hands back, and
//!     the scheduler resumes A. That is two resume+suspend pairs plus the scheduler's work.
//!   - `raw_corosensei` (the floor): two corosensei coroutines that only `suspend`, resumed
//!     alternately by a plain loop: the same two resume+suspend pairs, no scheduler.
//!   - `*_nested_call`: the same, each switch made from inside a function that is not inlined.
//!     The return from it after a switch is mispredicted (the CPU's return predictor was
//!     filled on the other stack), which costs raw corosensei as much as spindle.
//!   - `threads_mutex_condvar`, `threads_mpsc`: two OS threads handing a token back and forth;
//!     one round trip is A -> B -> A. On two cores each hand-over wakes the other core.
//!   - `tokio_current_thread`: two tasks on tokio's current-thread runtime, each awaiting
//!     `tokio::task::yield_now()` in a loop.
//!   - `may_one_worker`: two coroutines of the `may` crate, configured with one worker thread
//!     (its default is one per CPU), each calling `may::coroutine::yield_now()` in a loop.
//! * `spawn_join/*`: spawn an empty coroutine and join it, against `std::thread::spawn` + `join`,
//!   a tokio task spawned and awaited from a task, and a `may` coroutine spawned and joined
//!   from a coroutine (each on its runtime's one thread).
//!
//! After the groups the ratios the issue sets targets for are printed, from the medians
//! criterion just measured (target: yield within 3x of raw corosensei; spawn+join at least 100x
//! faster than OS threads).
//!
//! Run with `cargo bench --bench core`.

use std::cell::Cell;
use std::hint::black_box;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult};
use criterion::{criterion_group, Criterion};

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .noise_threshold(0.05)
}

// ----- (a) yield round trip -------------------------------------------------------------------

/// Times `yield_now` on `rt` with one partner coroutine yielding back: each iteration is a full
/// A -> B -> A round trip.
fn yield_against_a_partner(rt: &spindle::Runtime, b: &mut criterion::Bencher<'_>) {
    round_trips(rt, b, spindle::yield_now);
}

/// Times `step` on `rt` against a partner coroutine taking the same steps; each step ends in a
/// yield, so each iteration is a full A -> B -> A round trip.
/// Generic, not a `fn()`, so that `step` is inlined: an indirect call per yield would make the
/// plain row measure a nested call instead.
fn round_trips(
    rt: &spindle::Runtime,
    b: &mut criterion::Bencher<'_>,
    step: impl Fn() + Copy + 'static,
) {
    rt.run(|| {
        let stop = Rc::new(Cell::new(false));
        let partner = {
            let stop = stop.clone();
            spindle::spawn(move || {
                let mut turns = 0u64;
                while !stop.get() {
                    step();
                    turns += 1;
                }
                turns
            })
        };
        // Let B reach its loop, so each measured step is a full A -> B -> A.
        spindle::yield_now();
        b.iter(step);
        stop.set(true);
        spindle::yield_now();
        black_box(partner.join().unwrap());
    })
}

/// `steps` steps of a dependent chain of additions that the optimiser cannot fold: work a
/// coroutine does between two switches.
#[inline(never)]
fn spin(steps: u32) {
    let mut x = 0u64;
    for i in 0..steps {
        x = black_box(x.wrapping_add(u64::from(i)));
    }
    black_box(x);
}

/// Work each side does between two switches in `busy_round_trip` (about 170 ns here): the
/// trace's writer thread, on the other core, keeps up with a switch this often when it writes
/// to `/dev/null` (to this VM's disk it does not: see the summary).
const BUSY_STEPS: u32 = 400;

/// [`yield_against_a_partner`] with both sides doing [`BUSY_STEPS`] of work before each yield.
fn busy_against_a_partner(rt: &spindle::Runtime, b: &mut criterion::Bencher<'_>) {
    round_trips(rt, b, || {
        spin(BUSY_STEPS);
        spindle::yield_now();
    });
}

/// What a trace costs a program that does some work between switches: there the writer thread
/// keeps up, and the runtime's thread pays only for recording the events.
fn busy_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("busy_round_trip");
    let rt = spindle::Runtime::new().unwrap();
    group.bench_function("spindle", |b| busy_against_a_partner(&rt, b));
    let traced = spindle::Runtime::builder().trace("/dev/null").build().unwrap();
    group.bench_function("spindle_with_trace_to_dev_null", |b| busy_against_a_partner(&traced, b));
    group.finish();
}

fn yield_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("yield_round_trip");

    let rt = spindle::Runtime::new().unwrap();
    group.bench_function("spindle", |b| yield_against_a_partner(&rt, b));

    // The same with a timeline trace streamed to a file: what tracing costs per round trip.
    let trace_file =
        std::env::temp_dir().join(format!("spindle-core-bench-{}.json", std::process::id()));
    let traced = spindle::Runtime::builder().trace(&trace_file).build().unwrap();
    group.bench_function("spindle_with_trace", |b| yield_against_a_partner(&traced, b));
    let _ = std::fs::remove_file(&trace_file);
    // The same to /dev/null: the runtime's and the writer thread's own cost, without the disk's
    // (this VM's ext4 takes 216-244 MB/s from `dd`, about 150 bytes a switch here).
    let to_null = spindle::Runtime::builder().trace("/dev/null").build().unwrap();
    group
        .bench_function("spindle_with_trace_to_dev_null", |b| yield_against_a_partner(&to_null, b));

    // The same with `RuntimeBuilder::stats(true)`: what counting costs per round trip.
    let counted = spindle::Runtime::builder().stats(true).build().unwrap();
    group.bench_function("spindle_with_stats", |b| yield_against_a_partner(&counted, b));

    // The same, with each yield inside a function that is not inlined: the coroutine then
    // returns from that function between two switches, which the CPU's return predictor gets
    // wrong (it was filled on the scheduler's stack). Real code that yields or parks deep in a
    // call chain pays this; the plain `spindle` row is the best case of a loop that yields.
    group.bench_function("spindle_nested_call", |b| {
        rt.run(|| {
            let stop = Rc::new(Cell::new(false));
            let partner = {
                let stop = stop.clone();
                spindle::spawn(move || {
                    while !stop.get() {
                        yield_in_a_call();
                    }
                })
            };
            yield_in_a_call();
            b.iter(yield_in_a_call);
            stop.set(true);
            yield_in_a_call();
            partner.join().unwrap();
        })
    });

    group.bench_function("raw_corosensei", |b| {
        let mut a: Coroutine<(), (), ()> = Coroutine::new(|y, ()| loop {
            y.suspend(());
        });
        let mut bb: Coroutine<(), (), ()> = Coroutine::new(|y, ()| loop {
            y.suspend(());
        });
        b.iter(|| {
            // Two resume+suspend pairs per round trip, as spindle's scheduler does.
            let CoroutineResult::Yield(()) = a.resume(()) else { unreachable!() };
            let CoroutineResult::Yield(()) = bb.resume(()) else { unreachable!() };
        });
        // Never-finished coroutines are unwound by their Drop.
    });

    // The floor for the nested row: the same two coroutines, each suspending from inside a
    // function that is not inlined.
    group.bench_function("raw_corosensei_nested_call", |b| {
        let mut a: Coroutine<(), (), ()> = Coroutine::new(|y, ()| loop {
            suspend_in_a_call(y);
        });
        let mut bb: Coroutine<(), (), ()> = Coroutine::new(|y, ()| loop {
            suspend_in_a_call(y);
        });
        b.iter(|| {
            let CoroutineResult::Yield(()) = a.resume(()) else { unreachable!() };
            let CoroutineResult::Yield(()) = bb.resume(()) else { unreachable!() };
        });
    });

    let tokio_rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    group.bench_function("tokio_current_thread", |b| {
        b.iter_custom(|iters| tokio_yields(&tokio_rt, iters));
    });
    group.bench_function("may_one_worker", |b| {
        b.iter_custom(may_yields);
    });

    group.bench_function("threads_mutex_condvar", |b| {
        b.iter_custom(threads_condvar);
    });
    group.bench_function("threads_mpsc", |b| {
        b.iter_custom(threads_mpsc);
    });
    group.finish();
}

/// `iters` round trips between two tasks that yield, timed inside the measuring task once its
/// partner has reached its loop.
fn tokio_yields(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async move {
        tokio::spawn(async move {
            let partner = tokio::spawn(async move {
                for _ in 0..=iters {
                    tokio::task::yield_now().await;
                }
            });
            tokio::task::yield_now().await;
            let start = Instant::now();
            for _ in 0..iters {
                tokio::task::yield_now().await;
            }
            let elapsed = start.elapsed();
            partner.await.unwrap();
            elapsed
        })
        .await
        .unwrap()
    })
}

/// The same with two `may` coroutines (one worker thread: see `main`).
fn may_yields(iters: u64) -> Duration {
    may::go!(move || {
        let partner = may::go!(move || {
            for _ in 0..=iters {
                may::coroutine::yield_now();
            }
        });
        may::coroutine::yield_now();
        let start = Instant::now();
        for _ in 0..iters {
            may::coroutine::yield_now();
        }
        let elapsed = start.elapsed();
        partner.join().unwrap();
        elapsed
    })
    .join()
    .unwrap()
}

#[inline(never)]
fn suspend_in_a_call(y: &corosensei::Yielder<(), ()>) {
    y.suspend(());
}

#[inline(never)]
fn yield_in_a_call() {
    spindle::yield_now();
}

// ----- park/wake round trip --------------------------------------------------------------------

/// A -> B -> A where each side wakes the other's waker and parks (what a channel or lock
/// hand-over does underneath), against the same raw corosensei floor.
fn park_wake_round_trip(c: &mut Criterion) {
    use spindle::park::{self, Reason, Wake, Waker};

    /// Wakes whoever parked in `slot` last, then parks and leaves its own waker there. Not
    /// inlined, as a channel's or lock's wait is not: compare with the nested-call floor.
    #[inline(never)]
    fn hand_over(mine: &Cell<Option<Waker>>, theirs: &Cell<Option<Waker>>) {
        if let Some(w) = theirs.take() {
            w.wake();
        }
        match park::park(Reason::new("bench hand-over"), None, |w| mine.set(Some(w))) {
            Wake::Notified => {}
            // No deadline, so this is a cancellation (or a reason added later).
            _ => park::unwind(),
        }
    }

    let mut group = c.benchmark_group("park_wake_round_trip");
    let rt = spindle::Runtime::new().unwrap();
    group.bench_function("spindle", |b| {
        rt.run(|| {
            let a_slot = Rc::new(Cell::new(None));
            let b_slot = Rc::new(Cell::new(None));
            let stop = Rc::new(Cell::new(false));
            let partner = {
                let (a_slot, b_slot, stop) = (a_slot.clone(), b_slot.clone(), stop.clone());
                spindle::spawn(move || {
                    while !stop.get() {
                        hand_over(&b_slot, &a_slot);
                    }
                    if let Some(w) = a_slot.take() {
                        w.wake();
                    }
                })
            };
            // B runs first and parks, leaving its waker; from then on each iteration is one
            // full A -> B -> A hand-over.
            spindle::yield_now();
            b.iter(|| hand_over(&a_slot, &b_slot));
            stop.set(true);
            if let Some(w) = b_slot.take() {
                w.wake();
            }
            partner.join().unwrap();
        })
    });
    group.finish();
}

/// `iters` round trips of a token between this thread and a partner over Mutex + Condvar.
fn threads_condvar(iters: u64) -> Duration {
    // The token says whose turn it is: false = partner's, true = ours.
    let shared = Arc::new((Mutex::new((false, false)), Condvar::new()));
    let theirs = shared.clone();
    let partner = thread::spawn(move || {
        let (lock, cv) = &*theirs;
        let mut state = lock.lock().unwrap();
        loop {
            while state.0 && !state.1 {
                state = cv.wait(state).unwrap();
            }
            if state.1 {
                return;
            }
            state.0 = true;
            cv.notify_one();
        }
    });
    let (lock, cv) = &*shared;
    let start = Instant::now();
    for _ in 0..iters {
        let mut state = lock.lock().unwrap();
        state.0 = false;
        cv.notify_one();
        while !state.0 {
            state = cv.wait(state).unwrap();
        }
    }
    let elapsed = start.elapsed();
    lock.lock().unwrap().1 = true;
    cv.notify_one();
    partner.join().unwrap();
    elapsed
}

/// `iters` round trips of a token between this thread and a partner over two mpsc channels.
fn threads_mpsc(iters: u64) -> Duration {
    let (to_partner, partner_rx) = mpsc::channel::<u64>();
    let (to_us, our_rx) = mpsc::channel::<u64>();
    let partner = thread::spawn(move || {
        while let Ok(token) = partner_rx.recv() {
            if to_us.send(token).is_err() {
                return;
            }
        }
    });
    let start = Instant::now();
    for i in 0..iters {
        to_partner.send(i).unwrap();
        black_box(our_rx.recv().unwrap());
    }
    let elapsed = start.elapsed();
    drop(to_partner);
    partner.join().unwrap();
    elapsed
}

// ----- (b) spawn + join -----------------------------------------------------------------------

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join");
    let rt = spindle::Runtime::new().unwrap();
    group.bench_function("spindle", |b| {
        rt.run(|| {
            b.iter(|| spindle::spawn(|| black_box(())).join().unwrap());
        })
    });
    group.bench_function("std_thread", |b| {
        b.iter(|| thread::spawn(|| black_box(())).join().unwrap());
    });
    let tokio_rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    group.bench_function("tokio_current_thread", |b| {
        b.iter_custom(|iters| {
            tokio_rt.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        tokio::spawn(async { black_box(()) }).await.unwrap();
                    }
                    start.elapsed()
                })
                .await
                .unwrap()
            })
        });
    });
    group.bench_function("may_one_worker", |b| {
        b.iter_custom(|iters| {
            may::go!(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    may::go!(|| black_box(())).join().unwrap();
                }
                start.elapsed()
            })
            .join()
            .unwrap()
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = yield_round_trip, busy_round_trip, park_wake_round_trip, spawn_join
}

// ----- ratios ---------------------------------------------------------------------------------

/// Median (ns) of `group/bench` from criterion's estimates of the run that just finished.
fn median_ns(group: &str, bench: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = dir.join("criterion").join(group).join(bench).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    // {"mean":{...},"median":{"confidence_interval":{...},"point_estimate":123.4,...
    let median = &text[text.find("\"median\"")?..];
    let at = median.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let rest = &median[at..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

fn report_ratios() {
    let spindle_yield = median_ns("yield_round_trip", "spindle");
    let counted_yield = median_ns("yield_round_trip", "spindle_with_stats");
    let traced_yield = median_ns("yield_round_trip", "spindle_with_trace");
    let null_yield = median_ns("yield_round_trip", "spindle_with_trace_to_dev_null");
    let plain_busy = median_ns("busy_round_trip", "spindle");
    let traced_busy = median_ns("busy_round_trip", "spindle_with_trace_to_dev_null");
    let raw = median_ns("yield_round_trip", "raw_corosensei");
    let condvar = median_ns("yield_round_trip", "threads_mutex_condvar");
    let mpsc = median_ns("yield_round_trip", "threads_mpsc");
    let nested = median_ns("yield_round_trip", "spindle_nested_call");
    let raw_nested = median_ns("yield_round_trip", "raw_corosensei_nested_call");
    let park_wake = median_ns("park_wake_round_trip", "spindle");
    let tokio_yield = median_ns("yield_round_trip", "tokio_current_thread");
    let may_yield = median_ns("yield_round_trip", "may_one_worker");
    let spindle_spawn = median_ns("spawn_join", "spindle");
    let thread_spawn = median_ns("spawn_join", "std_thread");
    let tokio_spawn = median_ns("spawn_join", "tokio_current_thread");
    let may_spawn = median_ns("spawn_join", "may_one_worker");

    println!("\nspindle core benchmarks: medians of this run, ratios against the baselines");
    let show = |what: &str, v: Option<f64>| match v {
        Some(ns) => println!("  {what:<46} {ns:>12.1} ns"),
        None => println!("  {what:<46} {:>12}", "(not run)"),
    };
    show("yield round trip, spindle", spindle_yield);
    show("yield round trip, spindle with stats(true)", counted_yield);
    show("yield round trip, spindle with trace(path)", traced_yield);
    show("yield round trip, spindle with trace(/dev/null)", null_yield);
    show("yield round trip, raw corosensei (floor)", raw);
    show("round trip with work, spindle", plain_busy);
    show("round trip with work, spindle, trace to /dev/null", traced_busy);
    show("yield round trip, spindle, nested call", nested);
    show("yield round trip, raw corosensei, nested call", raw_nested);
    show("yield round trip, tokio current-thread", tokio_yield);
    show("yield round trip, may (one worker)", may_yield);
    show("park/wake round trip, spindle", park_wake);
    show("token round trip, threads Mutex+Condvar", condvar);
    show("token round trip, threads mpsc", mpsc);
    show("spawn+join, spindle", spindle_spawn);
    show("spawn+join, std::thread", thread_spawn);
    show("spawn+join, tokio current-thread", tokio_spawn);
    show("spawn+join, may (one worker)", may_spawn);
    if let (Some(s), Some(r)) = (spindle_yield, raw) {
        let ratio = s / r;
        let verdict = if ratio <= 3.0 { "meets" } else { "MISSES" };
        println!("  yield: spindle / raw corosensei = {ratio:.2}x ({verdict} target <= 3x)");
    }
    if let (Some(s), Some(r)) = (nested, raw_nested) {
        println!("  yield in a nested call: spindle / raw corosensei nested = {:.2}x", s / r);
    }
    if let (Some(c), Some(s)) = (counted_yield, spindle_yield) {
        // A round trip is two switches.
        println!("  stats(true) costs {:.1} ns per switch", (c - s) / 2.0);
    }
    if let (Some(t), Some(s)) = (null_yield, spindle_yield) {
        let per_switch = (t - s) / 2.0;
        let verdict = if per_switch <= 50.0 { "meets" } else { "MISSES" };
        println!(
            "  trace(path) costs {per_switch:.1} ns per switch in a loop that only yields, \
             traced to /dev/null ({verdict} target <= 50 ns): recording, formatting and \
             writing ~150 bytes of JSON a switch, at the writer thread's pace"
        );
    }
    if let (Some(t), Some(s)) = (traced_yield, spindle_yield) {
        println!(
            "  the same to a file in the temporary directory: {:.1} ns per switch (the pace \
             at which this machine's disk takes the bytes)",
            (t - s) / 2.0
        );
    }
    if let (Some(t), Some(s)) = (traced_busy, plain_busy) {
        println!(
            "  with work between switches, where the writer keeps up: {:.1} ns per switch \
             (what the runtime's thread pays)",
            (t - s) / 2.0
        );
    }
    if let (Some(s), Some(r)) = (park_wake, raw) {
        println!("  park/wake: spindle / raw corosensei = {:.2}x", s / r);
    }
    if let (Some(s), Some(r)) = (park_wake, raw_nested) {
        // `hand_over` is a function of its own, so the nested floor is the like-for-like one.
        println!("  park/wake: spindle / raw corosensei nested = {:.2}x", s / r);
    }
    for (name, other) in [("tokio current-thread", tokio_yield), ("may", may_yield)] {
        if let (Some(s), Some(o)) = (spindle_yield, other) {
            println!("  yield: {name} / spindle = {:.1}x", o / s);
        }
    }
    if let (Some(s), Some(t)) = (spindle_yield, condvar) {
        println!("  yield: threads Mutex+Condvar / spindle = {:.0}x", t / s);
    }
    if let (Some(s), Some(t)) = (spindle_yield, mpsc) {
        println!("  yield: threads mpsc / spindle = {:.0}x", t / s);
    }
    if let (Some(s), Some(t)) = (spindle_spawn, thread_spawn) {
        let ratio = t / s;
        let verdict = if ratio >= 100.0 { "meets" } else { "MISSES" };
        println!("  spawn+join: std::thread / spindle = {ratio:.0}x ({verdict} target >= 100x)");
    }
    for (name, other) in [("tokio current-thread", tokio_spawn), ("may", may_spawn)] {
        if let (Some(s), Some(o)) = (spindle_spawn, other) {
            println!("  spawn+join: {name} / spindle = {:.1}x", o / s);
        }
    }
}

fn main() {
    // Before anything starts may's scheduler: one worker, as spindle and tokio's current-thread
    // runtime have one thread.
    may::config().set_workers(1);
    benches();
    Criterion::default().configure_from_args().final_summary();
    report_ratios();
}
