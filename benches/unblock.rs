//! `unblock` round trip against doing the same work on a fresh OS thread.
//!
//! `cargo bench --bench unblock`
//!
//! The work is tiny (sum 100 numbers), so both rows measure the cost of getting it onto another
//! thread and the result back: `unblock` reuses its pool's threads and parks the coroutine;
//! the baseline spawns and joins a `std::thread` per call, which is what code without a pool
//! would do.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

fn work(n: u64) -> u64 {
    (0..black_box(n)).sum()
}

fn unblock_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("unblock round trip");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));

    let rt = spindle::Runtime::new().unwrap();
    group.bench_function("spindle::unblock", |b| {
        rt.run(|| b.iter(|| spindle::unblock(|| work(100))));
    });
    group.bench_function("std::thread::spawn + join", |b| {
        b.iter(|| std::thread::spawn(|| work(100)).join().unwrap());
    });
    group.finish();
}

criterion_group!(benches, unblock_round_trip);
criterion_main!(benches);
