//! Hunting races with `spindle::check`: three planted bugs, searched by random schedules and
//! by PCT over 20 search seeds each; then the race PCT found is replayed from its seed alone.
//!
//! ```text
//! cargo run --release --example race_hunt            # 20 search seeds, up to 2000 iterations
//! cargo run --release --example race_hunt -- --quick # 3 seeds, up to 500 (what the tests run)
//! cargo run --release --example race_hunt -- --trace race.json  # also write the race's trace
//! ```
//!
//! The trace is the failing run's timeline: open it in ui.perfetto.dev to see the two
//! coroutines take turns across the yield where the race is.

mod bugs;

use spindle::check::{self, Strategy};

/// Iterations each strategy needed to find `bug`, over `bases` search seeds.
fn hunt(bug: fn(), strategy: Strategy, bases: u64, cap: u64) -> Vec<Option<u64>> {
    (0..bases)
        .map(|b| check::search(strategy, b * 1_000_000, cap, bug).err().map(|f| f.iterations))
        .collect()
}

fn summary(found: &[Option<u64>]) -> String {
    let mut n: Vec<u64> = found.iter().flatten().copied().collect();
    n.sort_unstable();
    if n.is_empty() {
        return format!("not found in {} searches", found.len());
    }
    format!(
        "found in {}/{} searches; iterations: median {}, range {}-{}",
        n.len(),
        found.len(),
        n[n.len() / 2],
        n[0],
        n[n.len() - 1]
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let trace = args.iter().position(|a| a == "--trace").and_then(|i| args.get(i + 1));
    let (bases, cap) = if quick { (3, 500) } else { (20, 2000) };
    // The failing runs' panics are expected: keep them off the terminal.
    std::panic::set_hook(Box::new(|_| {}));
    let bugs: [(&str, fn()); 3] = [
        ("check-then-act race", bugs::check_then_act),
        ("lost wake-up", bugs::lost_wakeup),
        ("ordering bug of depth 2", bugs::ordering_of_depth_two),
    ];
    for (name, bug) in bugs {
        for strategy in [Strategy::Random, Strategy::Pct { depth: 2 }] {
            println!(
                "{name:<24} {:<16} {}",
                strategy.to_string(),
                summary(&hunt(bug, strategy, bases, cap))
            );
        }
    }
    // Replay: the seed alone brings the failing schedule back.
    let failure = check::search(Strategy::Pct { depth: 2 }, 7, cap, bugs::check_then_act)
        .expect_err("pct finds the race");
    println!("found: {}", failure.message);
    println!("replay: {}", failure.replay_line());
    let replayed = std::panic::catch_unwind(|| match failure.strategy {
        Strategy::Random => check::replay(failure.seed, bugs::check_then_act),
        _ => check::replay_pct(failure.seed, 2, failure.steps, bugs::check_then_act),
    });
    println!("the replay fails the same way: {}", replayed.is_err());
    if let Some(path) = trace {
        match failure.write_trace(path, bugs::check_then_act) {
            Ok(()) => println!("trace of the failing run: {path}"),
            Err(e) => println!("no trace: {e}"),
        }
    }
}
