//! Crossing threads: `spindle::sync::mpmc` against `std::sync::mpsc` and crossbeam-channel.
//!
//! * `cross_thread_ping_pong`: one round trip (send, then receive the echo) between two
//!   threads, over two `bounded(1)` channels (std: `mpsc::sync_channel(1)`):
//!   - `spindle_two_runtimes`: a coroutine on a runtime here, the echo a coroutine on a
//!     runtime of another thread;
//!   - `spindle_coroutine_to_thread`: a coroutine here, the echo a plain thread;
//!   - `spindle_mpmc_two_threads`: two plain threads over `mpmc` (the blocking path only);
//!   - `std_mpsc_two_threads`, `crossbeam_two_threads`: the baselines, two plain threads.
//!
//!   Target (issue 13): the spindle rows no slower than `std_mpsc_two_threads`.
//! * `feed_20000_jobs`: a plain thread sends 20,000 boxed jobs (`FnOnce() -> u64 + Send`) into
//!   a runtime on another thread through `mpmc::bounded(1024)`, where coroutines run them, and
//!   waits until the last has run; one element = one job. `spindle_1_coroutine` and
//!   `spindle_4_coroutines` consume in one or four coroutines; `std_mpsc_thread` is the same
//!   with a plain consumer thread and `mpsc::sync_channel(1024)`. Target (issue 13): at most
//!   3 µs per job.
//!
//! Both sides of each row run on their own threads, so on a machine with fewer than two free
//! cores the numbers are mostly the OS scheduler's wakeup latency. Run:
//! `cargo bench --bench threads`.

use std::hint::black_box;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use spindle::sync::mpmc;
use spindle::Runtime;

fn runtime() -> Runtime {
    Runtime::builder().main_stack_size(8 << 20).build().unwrap()
}

/// An echo on a runtime of its own thread: what it receives on `rx` it sends back on `tx`.
fn echo_on_runtime(rx: mpmc::Receiver<u64>, tx: mpmc::Sender<u64>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        Runtime::builder().build().unwrap().run(move || {
            for v in rx.iter() {
                tx.send(v).unwrap();
            }
        })
    })
}

fn cross_thread_ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("cross_thread_ping_pong");
    group.throughput(Throughput::Elements(1));

    for echo_in_runtime in [true, false] {
        let (to_echo, echo_in) = mpmc::bounded::<u64>(1);
        let (echo_out, from_echo) = mpmc::bounded::<u64>(1);
        let (name, echo) = if echo_in_runtime {
            ("spindle_two_runtimes", echo_on_runtime(echo_in, echo_out))
        } else {
            let echo = thread::spawn(move || {
                for v in echo_in.iter() {
                    echo_out.send(v).unwrap();
                }
            });
            ("spindle_coroutine_to_thread", echo)
        };
        runtime().run(|| {
            group.bench_function(name, |b| {
                b.iter(|| {
                    to_echo.send(black_box(1)).unwrap();
                    from_echo.recv().unwrap()
                })
            });
        });
        drop(to_echo);
        echo.join().unwrap();
    }

    {
        let (to_echo, echo_in) = mpmc::bounded::<u64>(1);
        let (echo_out, from_echo) = mpmc::bounded::<u64>(1);
        let echo = thread::spawn(move || {
            for v in echo_in.iter() {
                echo_out.send(v).unwrap();
            }
        });
        group.bench_function("spindle_mpmc_two_threads", |b| {
            b.iter(|| {
                to_echo.send(black_box(1)).unwrap();
                from_echo.recv().unwrap()
            })
        });
        drop(to_echo);
        echo.join().unwrap();
    }

    {
        let (to_echo, echo_in) = mpsc::sync_channel::<u64>(1);
        let (echo_out, from_echo) = mpsc::sync_channel::<u64>(1);
        let echo = thread::spawn(move || {
            for v in echo_in.iter() {
                echo_out.send(v).unwrap();
            }
        });
        group.bench_function("std_mpsc_two_threads", |b| {
            b.iter(|| {
                to_echo.send(black_box(1)).unwrap();
                from_echo.recv().unwrap()
            })
        });
        drop(to_echo);
        echo.join().unwrap();
    }

    {
        let (to_echo, echo_in) = crossbeam_channel::bounded::<u64>(1);
        let (echo_out, from_echo) = crossbeam_channel::bounded::<u64>(1);
        let echo = thread::spawn(move || {
            for v in echo_in.iter() {
                echo_out.send(v).unwrap();
            }
        });
        group.bench_function("crossbeam_two_threads", |b| {
            b.iter(|| {
                to_echo.send(black_box(1)).unwrap();
                from_echo.recv().unwrap()
            })
        });
        drop(to_echo);
        echo.join().unwrap();
    }
    group.finish();
}

const JOBS: u64 = 20_000;

type Job = Box<dyn FnOnce() -> u64 + Send>;

/// A job with a little work in it, so that it cannot be optimized away.
fn job(i: u64) -> Job {
    Box::new(move || black_box(i).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn feed_jobs(c: &mut Criterion) {
    let mut group = c.benchmark_group("feed_20000_jobs");
    group.throughput(Throughput::Elements(JOBS));
    group.sample_size(10);

    for consumers in [1usize, 4] {
        // The runtime lives across iterations: each iteration is one batch of JOBS, and the
        // runtime reports the batch's end on `done` (one message per batch).
        let (jobs, inbox) = mpmc::bounded::<Job>(1024);
        let (done_tx, done) = mpmc::bounded::<u64>(consumers);
        let (batch_tx, batch_rx) = mpmc::unbounded::<u64>();
        let runtime = thread::spawn(move || {
            Runtime::builder().build().unwrap().run(move || {
                let workers: Vec<_> = (0..consumers)
                    .map(|_| {
                        let (inbox, done_tx) = (inbox.clone(), done_tx.clone());
                        let batch_rx = batch_rx.clone();
                        spindle::spawn(move || {
                            // Each batch: run jobs until this worker's share is done.
                            while let Ok(share) = batch_rx.recv() {
                                let mut sum = 0u64;
                                for _ in 0..share {
                                    sum = sum.wrapping_add(inbox.recv().unwrap()());
                                }
                                done_tx.send(sum).unwrap();
                            }
                        })
                    })
                    .collect();
                workers.into_iter().for_each(|w| w.join().unwrap());
            })
        });
        let name = if consumers == 1 { "spindle_1_coroutine" } else { "spindle_4_coroutines" };
        let name = BenchmarkId::new(name, JOBS);
        group.bench_function(name, |b| {
            b.iter(|| {
                let share = JOBS / consumers as u64;
                for _ in 0..consumers {
                    batch_tx.send(share).unwrap();
                }
                for i in 0..share * consumers as u64 {
                    jobs.send(job(i)).unwrap();
                }
                (0..consumers).map(|_| done.recv().unwrap()).fold(0, u64::wrapping_add)
            })
        });
        drop((jobs, batch_tx));
        runtime.join().unwrap();
    }

    {
        let (jobs, inbox) = mpsc::sync_channel::<Job>(1024);
        let (done_tx, done) = mpsc::sync_channel::<u64>(1);
        let consumer = thread::spawn(move || loop {
            let mut sum = 0u64;
            for _ in 0..JOBS {
                match inbox.recv() {
                    Ok(job) => sum = sum.wrapping_add(job()),
                    Err(_) => return,
                }
            }
            done_tx.send(sum).unwrap();
        });
        group.bench_function(BenchmarkId::new("std_mpsc_thread", JOBS), |b| {
            b.iter(|| {
                for i in 0..JOBS {
                    jobs.send(job(i)).unwrap();
                }
                done.recv().unwrap()
            })
        });
        drop(jobs);
        consumer.join().unwrap();
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = cross_thread_ping_pong, feed_jobs
}
criterion_main!(benches);
