//! The final table: per server, medians over rounds and ratios taken within rounds.

use std::time::Duration;

use crate::rig::Measurement;
use crate::stats::{median, Ratios};

/// The target of tracker issue 13: two shards at least this many times one shard.
const TARGET: f64 = 1.7;
/// A window is quiet when the machine's other processes used less CPU than this over it, in
/// cores (a tenth of a core: tick accounting alone can be off by a few hundredths).
const QUIET: f64 = 0.1;

/// The CPU time the machine spent over the window on processes other than the server and its
/// load generator (other benches, compilers: this is a shared machine).
pub fn others(m: &Measurement) -> Duration {
    m.machine_cpu.saturating_sub(m.cpu + m.load_cpu)
}

/// Whether the others took less than `QUIET` cores over the window.
fn quiet(m: &Measurement) -> bool {
    others(m).as_secs_f64() < QUIET * m.elapsed().as_secs_f64()
}

pub fn print_table(
    servers: &[String],
    runs: &[Vec<Option<Measurement>>],
    rounds: usize,
    work: Duration,
) {
    let by_kind = |kind: &str| servers.iter().position(|s| s == kind).map(|i| &runs[i]);
    let spindle_1 = by_kind("spindle-1");
    println!();
    println!(
        "| server | msgs/s | lowest-highest round | vs spindle 1 shard | 2 threads vs 1 | server \
         CPU (cores) | load generator CPU (cores) | server CPU per msg | of which user space | \
         load generator CPU per msg | other processes (cores) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, run) in servers.iter().zip(runs) {
        let done: Vec<Measurement> = run.iter().flatten().copied().collect();
        let rates: Vec<f64> = done.iter().map(|m| m.rate).collect();
        let lowest = rates.iter().copied().reduce(f64::min);
        let highest = rates.iter().copied().reduce(f64::max);
        let cores = |cpu: fn(&Measurement) -> Duration| {
            median(
                done.iter()
                    .map(|m| cpu(m).as_secs_f64() / m.elapsed().as_secs_f64().max(1e-9))
                    .collect(),
            )
        };
        let pooled = Pooled::of(&done);
        let sibling = one_thread_sibling(kind).and_then(|k| by_kind(&k));
        let ratio = |base: Option<&Vec<Option<Measurement>>>| {
            let base = base.filter(|b| !std::ptr::eq(*b, run))?;
            Ratios::of(rate_ratios(run, base)).map(|r| r.to_string())
        };
        let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} us"));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            label(kind),
            median(rates).map_or("failed".into(), |r| format!("{r:.0}")),
            lowest.zip(highest).map_or("-".into(), |(l, h)| format!("{l:.0}-{h:.0}")),
            ratio(spindle_1).unwrap_or("-".into()),
            ratio(sibling).unwrap_or("-".into()),
            cores(|m| m.cpu).map_or("-".into(), |c| format!("{c:.2}")),
            cores(|m| m.load_cpu).map_or("-".into(), |c| format!("{c:.2}")),
            us(median(done.iter().map(Measurement::cpu_per_rt_us).collect())),
            us(pooled.as_ref().map(|p| p.user_us)),
            us(pooled.as_ref().map(|p| p.load_us)),
            cores(others).map_or("-".into(), |c| format!("{c:.2}")),
        );
    }
    println!(
        "\nmsgs/s and CPU: medians of {rounds} rounds. Ratios: the median of the ratios taken \
         within each round (lowest-highest round). User space: pooled over the rounds. The \
         handler's work: {:.1} us per message.",
        work.as_secs_f64() * 1e6
    );
    let (Some(one), Some(two)) = (spindle_1, by_kind("spindle-2")) else { return };
    if let Some(r) = Ratios::of(rate_ratios(two, one)) {
        let verdict = if r.median >= TARGET { "met" } else { "NOT met" };
        println!("spindle 2 shards / 1 shard: {r}; target at least {TARGET}x: {verdict}");
    }
    let both_quiet: Vec<f64> = one
        .iter()
        .zip(two)
        .filter_map(|(a, b)| Some((a.as_ref()?, b.as_ref()?)))
        .filter(|(a, b)| quiet(a) && quiet(b))
        .map(|(a, b)| b.rate / a.rate)
        .collect();
    let n = both_quiet.len();
    match Ratios::of(both_quiet) {
        Some(r) => println!(
            "  in the {n} rounds where other processes took under {QUIET} cores in both windows: {r}"
        ),
        None => println!("  no round had both windows quiet (other processes under {QUIET} cores)"),
    }
    // What two cores can give at most, the load generator's share of them included: one shard
    // can have a core to itself (its load fits on the other), two shards share both with it.
    let measured = |run: &Vec<Option<Measurement>>| {
        Pooled::of(&run.iter().flatten().copied().collect::<Vec<_>>())
    };
    if let (Some(one), Some(two)) = (measured(one), measured(two)) {
        println!(
            "ceiling from these CPU costs: 1 shard 1 core / {:.1} us = {:.0} msgs/s; 2 shards 2 \
             cores / ({:.1} + {:.1}) us = {:.0} msgs/s: at most {:.2}x",
            one.server_us,
            1e6 / one.server_us,
            two.server_us,
            two.load_us,
            2e6 / (two.server_us + two.load_us),
            2.0 * one.server_us / (two.server_us + two.load_us)
        );
    }
}

/// CPU per message, pooled over the rounds: total CPU over total messages.
struct Pooled {
    /// The server's, user + system.
    server_us: f64,
    /// Its user-space part.
    user_us: f64,
    /// The load generator's, user + system.
    load_us: f64,
}

impl Pooled {
    fn of(done: &[Measurement]) -> Option<Pooled> {
        let messages: f64 = done.iter().map(|m| m.round_trips).sum();
        let per_message = |cpu: fn(&Measurement) -> Duration| {
            done.iter().map(|m| cpu(m).as_secs_f64()).sum::<f64>() * 1e6 / messages
        };
        (messages > 0.0).then(|| Pooled {
            server_us: per_message(|m| m.cpu),
            user_us: per_message(|m| m.user),
            load_us: per_message(|m| m.load_cpu),
        })
    }
}

/// The rate of `run` over that of `base`, in each round in which both were measured.
fn rate_ratios(run: &[Option<Measurement>], base: &[Option<Measurement>]) -> Vec<f64> {
    base.iter().zip(run).filter_map(|(b, m)| Some(m.as_ref()?.rate / b.as_ref()?.rate)).collect()
}

/// For a server with more than one thread, the same server with one (`spindle-pinned-2` ->
/// `spindle-1`).
fn one_thread_sibling(kind: &str) -> Option<String> {
    let (name, threads) = kind.rsplit_once('-')?;
    if threads == "1" {
        return None;
    }
    Some(format!("{}-1", name.strip_suffix("-pinned").unwrap_or(name)))
}

/// The name of a server kind in the table.
fn label(kind: &str) -> String {
    let Some((name, threads)) = kind.rsplit_once('-') else { return kind.into() };
    let plural = if threads == "1" { "" } else { "s" };
    match name {
        "spindle" => format!("**spindle, {threads} shard{plural}**"),
        "spindle-pinned" => format!("spindle, {threads} shard{plural} pinned to cores"),
        "tokio" => format!("tokio multi-thread, {threads} worker{plural}"),
        "may" => format!("may, {threads} worker{plural}"),
        _ => kind.into(),
    }
}
