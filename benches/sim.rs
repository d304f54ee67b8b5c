//! Simulated time: coroutines doing exponential sleeps under virtual time, against a bare
//! `BinaryHeap` event loop over the same events and tokio's paused clock, in one run.
//!
//! ```text
//! cargo bench --bench sim                              # 2 M events per row
//! SPINDLE_SIM_EVENTS=10000000 cargo bench --bench sim  # the issue's 10 M
//! ```
//!
//! Each row runs `coroutines` tasks that each sleep `events / coroutines` times, every sleep
//! drawn from an exponential distribution of mean 1 ms (splitmix64, seeded per task, the same
//! draws in every row). Reported: CPU time per event (user + system of this process, so the
//! figure is what the simulation costs whatever else the machine does), and the ratio to the
//! bare heap. spindle and the bare heap fire the same events in the same order; tokio's timer
//! wheel has 1 ms granularity, so it orders them differently.

#[path = "../runtime/src/rng.rs"]
#[allow(dead_code, unused_imports)]
mod rng;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rng::Rng;

/// The `k`-th sleep of task `task`: exponential with a mean of 1 ms, in nanoseconds.
fn draw(rng: &mut Rng) -> u64 {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64; // uniform in [0, 1)
    (-(1.0 - u).ln() * 1e6) as u64 + 1
}

/// CPU time (user + system) this process has used.
fn cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn measure(f: impl FnOnce() -> u64) -> (Duration, u64) {
    let start = cpu();
    let fired = f();
    (cpu() - start, fired)
}

fn spindle_sim(tasks: u64, each: u64) -> u64 {
    let rt = spindle::Runtime::builder()
        .virtual_time(true)
        .stack_size(spindle::MIN_STACK_SIZE)
        .build()
        .unwrap();
    rt.run(|| {
        let fired = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let hs: Vec<_> = (0..tasks)
            .map(|t| {
                let fired = fired.clone();
                spindle::spawn(move || {
                    let mut rng = Rng::new(t);
                    for _ in 0..each {
                        spindle::sleep(Duration::from_nanos(draw(&mut rng)));
                        fired.set(fired.get() + 1);
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        fired.get()
    })
}

fn heap_sim(tasks: u64, each: u64) -> u64 {
    let mut rngs: Vec<Rng> = (0..tasks).map(Rng::new).collect();
    let mut left = vec![each; tasks as usize];
    let mut heap = BinaryHeap::new();
    let mut order = 0u64;
    for t in 0..tasks {
        heap.push(Reverse((draw(&mut rngs[t as usize]), order, t)));
        order += 1;
    }
    let mut fired = 0;
    while let Some(Reverse((at, _, t))) = heap.pop() {
        fired += 1;
        let i = t as usize;
        left[i] -= 1;
        if left[i] > 0 {
            heap.push(Reverse((at + draw(&mut rngs[i]), order, t)));
            order += 1;
        }
    }
    fired
}

fn tokio_sim(tasks: u64, each: u64) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let fired = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let hs: Vec<_> = (0..tasks)
                    .map(|t| {
                        let fired = fired.clone();
                        tokio::task::spawn_local(async move {
                            let mut rng = Rng::new(t);
                            for _ in 0..each {
                                tokio::time::sleep(Duration::from_nanos(draw(&mut rng))).await;
                                fired.set(fired.get() + 1);
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            })
            .await;
        fired.get()
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks what benches there are
    }
    let events: u64 =
        std::env::var("SPINDLE_SIM_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000_000);
    println!("simulated time: exponential sleeps (mean 1 ms), {events} events per row, CPU time per event");
    println!("| coroutines | spindle | bare heap | tokio (paused clock) | spindle / heap | tokio / spindle |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for tasks in [100u64, 10_000, 100_000] {
        let each = (events / tasks).max(1);
        let total = tasks * each;
        let per = |(cpu, fired): (Duration, u64)| {
            assert_eq!(fired, total, "every event fired");
            cpu.as_nanos() as f64 / total as f64
        };
        let s = per(measure(|| spindle_sim(tasks, each)));
        let h = per(measure(|| heap_sim(tasks, each)));
        let t = per(measure(|| tokio_sim(tasks, each)));
        println!("| {tasks} | {s:.0} ns | {h:.0} ns | {t:.0} ns | {:.1}x | {:.2}x |", s / h, t / s);
    }
}
