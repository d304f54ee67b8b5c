//! The bench's table: per route, connection count and server, medians over rounds, and ratios
//! to three baselines taken within each round.

use std::time::Duration;

use crate::stats::{median, Ratios};
use crate::wrk::Report;

/// One wrk run of one server, with the server's CPU time over it.
#[derive(Clone, Copy)]
pub struct Measurement {
    pub report: Report,
    /// User + system time of the server process during the run.
    pub cpu: Duration,
}

impl Measurement {
    pub fn cpu_per_request_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.report.requests.max(1.0)
    }

    /// The server's CPU time over the run's length, in cores: below 1 for a one-core server,
    /// it waited for the client part of the time.
    pub fn server_busy(&self) -> f64 {
        self.cpu.as_secs_f64() / self.report.seconds.max(1e-9)
    }
}

/// One line of the table.
pub struct Row {
    pub route: String,
    pub conns: usize,
    pub label: &'static str,
    pub pinning: &'static str,
    pub rate: Option<f64>,
    /// Ratios of req/s to each of [`BASELINES`], within rounds.
    vs: Vec<Option<Ratios>>,
    p50: Option<f64>,
    p99: Option<f64>,
    cpu_per_request_us: Option<f64>,
    /// The server's CPU in cores, and wrk's share of its core.
    server_busy: Option<f64>,
    client_busy: Option<f64>,
    errors: u64,
}

impl Row {
    /// The row of one server from its runs (one per round, `None` where a run failed), with
    /// ratios to the runs of the baselines in the same rounds.
    /// `baselines` are the runs of each of [`BASELINES`] (`None`: not in this run).
    pub fn of(
        route: &str,
        conns: usize,
        label: &'static str,
        pinning: &'static str,
        runs: &[Option<Measurement>],
        baselines: &[Option<&[Option<Measurement>]>],
    ) -> Row {
        let done: Vec<&Measurement> = runs.iter().flatten().collect();
        let ratios = |base: Option<&[Option<Measurement>]>| {
            let base = base?;
            let within: Vec<f64> = base
                .iter()
                .zip(runs)
                .filter_map(|(b, m)| Some(m.as_ref()?.report.rate() / b.as_ref()?.report.rate()))
                .collect();
            Ratios::of(within)
        };
        Row {
            route: route.to_string(),
            conns,
            label,
            pinning,
            rate: median(done.iter().map(|m| m.report.rate()).collect()),
            vs: baselines.iter().map(|&base| ratios(base)).collect(),
            p50: median(
                done.iter().filter_map(|m| Some(m.report.p50?.as_secs_f64() * 1e3)).collect(),
            ),
            p99: median(
                done.iter().filter_map(|m| Some(m.report.p99?.as_secs_f64() * 1e3)).collect(),
            ),
            cpu_per_request_us: median(done.iter().map(|m| m.cpu_per_request_us()).collect()),
            server_busy: median(done.iter().map(|m| m.server_busy()).collect()),
            client_busy: median(done.iter().map(|m| m.report.client_busy()).collect()),
            errors: done.iter().map(|m| m.report.errors).sum(),
        }
    }
}

pub fn print(rows: &[Row], rounds: usize) {
    println!();
    let vs: String = BASELINES.iter().map(|(_, label)| format!(" vs {label} |")).collect();
    let rest = " p50 | p99 | server CPU per request | server busy | wrk busy | errors |";
    println!("| route | conns | server | cores | req/s |{vs}{rest}");
    let vs_align = "---:|".repeat(BASELINES.len());
    println!("|---|---:|---|---|---:|{vs_align}---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let ratio = |r: &Option<Ratios>| r.as_ref().map_or("-".into(), Ratios::to_string);
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} ms"));
        let vs: String = row.vs.iter().map(|r| format!(" {} |", ratio(r))).collect();
        println!(
            "| `{}` | {} | {} | {} | {} |{vs} {} | {} | {} | {} | {} | {} |",
            row.route,
            row.conns,
            row.label,
            row.pinning,
            row.rate.map_or("failed".into(), |r| format!("{r:.0}")),
            ms(row.p50),
            ms(row.p99),
            row.cpu_per_request_us.map_or("-".into(), |v| format!("{v:.2} µs")),
            row.server_busy.map_or("-".into(), |v| format!("{v:.2}")),
            row.client_busy.map_or("-".into(), |v| format!("{:.0}%", v * 100.0)),
            row.errors,
        );
    }
    println!(
        "\nreq/s, latency and CPU: medians of {rounds} rounds. Ratios: the median of the ratios \
         of req/s taken within each round (lowest-highest round). CPU: user + system time of \
         the server process over the run, per request answered. server busy: that CPU time over \
         the run's length, in cores. wrk busy: wrk's CPU time over the run's length (100%: \
         its one thread was the limit, not the server). Latency: none for pipelined runs, \
         whose histogram wrk gets wrong."
    );
}

/// The servers every row is compared with (name, as the table heads the column): the two
/// single-core baselines of the targets, and spindle's own one shard (for the 2 shards'
/// scaling).
pub const BASELINES: &[(&str, &str)] = &[
    ("may1", "may_minihttp 1 worker"),
    ("hyper-ct", "hyper current-thread"),
    ("spindle", "spindle 1 shard"),
];
