//! The handler's work: a deterministic CPU loop, the same function in every server, and its
//! calibration to a target time per message.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use crate::os::pin_to;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The work on one message: `rounds` rounds of FNV-1a over 64 bytes, each round's result
/// passed through `black_box` so that no round can be folded away or skipped. `seed` (a byte
/// of the message) makes the result depend on the input; the cost does not.
pub fn work(seed: u8, rounds: u32) -> u64 {
    let mut hash = FNV_OFFSET ^ u64::from(seed);
    for _ in 0..rounds {
        for byte in 0..64u64 {
            hash = (hash ^ byte).wrapping_mul(FNV_PRIME);
        }
        hash = black_box(hash);
    }
    hash
}

/// What calibration found.
pub struct Calibration {
    /// Rounds of `work` per message.
    pub rounds: u32,
    /// The median time of one message's work, on one thread with the other core idle.
    pub alone: Duration,
    /// The same while a second thread on the other core runs it too (the slower thread's
    /// median).
    pub both_cores: Duration,
}

/// Finds the rounds for `target` per message: times 1000 rounds 31 times and takes the
/// median, then checks the result alone and on both cores at once (a 2-vCPU guest whose
/// vCPUs share one physical core would show it there).
pub fn calibrate(target: Duration) -> Calibration {
    const PROBE: u32 = 1000;
    let per_round = median((0..31).map(|_| time(PROBE) / PROBE).collect());
    let rounds = (target.as_secs_f64() / per_round.as_secs_f64().max(1e-12)).round();
    let rounds = rounds.clamp(1.0, f64::from(u32::MAX)) as u32;
    let alone = median((0..201).map(|_| time(rounds)).collect());
    let both_cores = thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|cpu| {
                scope.spawn(move || {
                    pin_to(cpu);
                    median((0..1001).map(|_| time(rounds)).collect())
                })
            })
            .collect();
        let times: Vec<Duration> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        median(times)
    });
    Calibration { rounds, alone, both_cores }
}

/// The time of one message's worth of `rounds` rounds.
fn time(rounds: u32) -> Duration {
    let started = Instant::now();
    black_box(work(black_box(7), rounds));
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
