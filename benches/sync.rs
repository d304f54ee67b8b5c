//! spindle's locks and channels against OS threads with std's, in the same run.
//!
//! * `ping_pong`: one round trip (send, then receive the echo) between two coroutines over two
//!   `spindle::sync::channel::bounded(1)` channels, vs two threads over `std::sync::mpsc`.
//! * `mutex_handoff/{4,100}`: N workers each take a mutex 200 times, yielding while they hold
//!   it (so every unlock hands it to a waiter); spindle coroutines with `spindle::sync::Mutex`
//!   vs OS threads with `std::sync::Mutex` and `std::thread::yield_now`. One element = one
//!   lock; spawning and joining the workers is included on both sides.
//! * `uncontended_lock`: lock + unlock with nobody else around, vs `std::sync::Mutex`.
//!
//! Run: `cargo bench --bench sync`.

use std::hint::black_box;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use spindle::sync::{channel, Mutex};
use spindle::Runtime;

fn runtime() -> Runtime {
    Runtime::builder().main_stack_size(8 << 20).build().unwrap()
}

fn ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("ping_pong");
    group.throughput(Throughput::Elements(1));
    runtime().run(|| {
        let (to_echo, echo_in) = channel::bounded::<u64>(1);
        let (echo_out, from_echo) = channel::bounded::<u64>(1);
        let echo = spindle::spawn(move || {
            for v in echo_in.iter() {
                echo_out.send(v).unwrap();
            }
        });
        group.bench_function("spindle_coroutines", |b| {
            b.iter(|| {
                to_echo.send(black_box(1)).unwrap();
                from_echo.recv().unwrap()
            })
        });
        drop(to_echo);
        echo.join().unwrap();
    });
    {
        let (to_echo, echo_in) = mpsc::channel::<u64>();
        let (echo_out, from_echo) = mpsc::channel::<u64>();
        let echo = std::thread::spawn(move || {
            for v in echo_in.iter() {
                echo_out.send(v).unwrap();
            }
        });
        group.bench_function("std_mpsc_threads", |b| {
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

const LOCKS_PER_WORKER: u64 = 200;

fn mutex_handoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("mutex_handoff");
    for workers in [4u64, 100] {
        group.throughput(Throughput::Elements(workers * LOCKS_PER_WORKER));
        runtime().run(|| {
            group.bench_function(BenchmarkId::new("spindle_coroutines", workers), |b| {
                b.iter(|| {
                    let lock = Rc::new(Mutex::new(0u64));
                    let handles: Vec<_> = (0..workers)
                        .map(|_| {
                            let lock = lock.clone();
                            spindle::spawn(move || {
                                for _ in 0..LOCKS_PER_WORKER {
                                    let mut g = lock.lock();
                                    spindle::yield_now();
                                    *g += 1;
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.join().unwrap();
                    }
                    assert_eq!(*lock.lock(), workers * LOCKS_PER_WORKER);
                })
            });
        });
        group.bench_function(BenchmarkId::new("std_threads", workers), |b| {
            b.iter(|| {
                let lock = Arc::new(std::sync::Mutex::new(0u64));
                let handles: Vec<_> = (0..workers)
                    .map(|_| {
                        let lock = lock.clone();
                        std::thread::spawn(move || {
                            for _ in 0..LOCKS_PER_WORKER {
                                let mut g = lock.lock().unwrap();
                                std::thread::yield_now();
                                *g += 1;
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().unwrap();
                }
                assert_eq!(*lock.lock().unwrap(), workers * LOCKS_PER_WORKER);
            })
        });
    }
    group.finish();
}

fn uncontended_lock(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended_lock");
    runtime().run(|| {
        let lock = Mutex::new(0u64);
        group.bench_function("spindle_mutex", |b| {
            b.iter(|| {
                *black_box(&lock).lock() += 1;
            })
        });
    });
    let lock = std::sync::Mutex::new(0u64);
    group.bench_function("std_mutex", |b| {
        b.iter(|| {
            *black_box(&lock).lock().unwrap() += 1;
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = ping_pong, mutex_handoff, uncontended_lock
}
criterion_main!(benches);
