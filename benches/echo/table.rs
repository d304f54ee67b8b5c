//! The final table: per server and connection count, medians over rounds and ratios taken
//! within rounds.

use crate::rig::Measurement;
use crate::stats::{median, Ratios};

/// One line of the final table.
pub struct Row {
    conns: usize,
    server: String,
    rate: Option<f64>,
    vs_mio: Option<Ratios>,
    vs_tokio: Option<Ratios>,
    cpu_per_rt_us: Option<f64>,
    cpu_vs_mio: Option<Ratios>,
    user_per_rt_us: Option<f64>,
}

impl Row {
    pub fn of(
        conns: usize,
        server: &str,
        run: &[Option<Measurement>],
        mio: Option<&Vec<Option<Measurement>>>,
        tokio: Option<&Vec<Option<Measurement>>>,
    ) -> Row {
        let done: Vec<Measurement> = run.iter().flatten().copied().collect();
        // `f` of this server over `f` of `base`, within each round in which both were measured.
        let ratios = |base: Option<&Vec<Option<Measurement>>>, f: fn(&Measurement) -> f64| {
            let base = base?;
            Ratios::of(
                base.iter()
                    .zip(run)
                    .filter_map(|(b, m)| Some(f(m.as_ref()?) / f(b.as_ref()?)))
                    .collect(),
            )
        };
        let rate = |m: &Measurement| m.rate;
        let round_trips: f64 = done.iter().map(|m| m.round_trips).sum();
        let user: f64 = done.iter().map(|m| m.user.as_secs_f64()).sum();
        Row {
            conns,
            server: server.to_string(),
            rate: median(done.iter().map(rate).collect()),
            vs_mio: if server == "mio" { None } else { ratios(mio, rate) },
            vs_tokio: if server == "tokio" { None } else { ratios(tokio, rate) },
            cpu_per_rt_us: median(done.iter().map(Measurement::cpu_per_rt_us).collect()),
            cpu_vs_mio: if server == "mio" {
                None
            } else {
                ratios(mio, Measurement::cpu_per_rt_us)
            },
            user_per_rt_us: (round_trips > 0.0).then(|| user * 1e6 / round_trips),
        }
    }
}

pub fn print_table(rows: &[Row], rounds: usize) {
    println!();
    println!(
        "| connections | server | round trips/s | vs mio loop | vs tokio | server CPU per round \
         trip | of which user space | CPU vs mio loop |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let ratio = |r: &Option<Ratios>| r.as_ref().map_or("-".into(), Ratios::to_string);
        let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} us"));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.conns,
            row.server,
            row.rate.map_or("failed".into(), |r| format!("{r:.0}")),
            ratio(&row.vs_mio),
            ratio(&row.vs_tokio),
            us(row.cpu_per_rt_us),
            us(row.user_per_rt_us),
            ratio(&row.cpu_vs_mio),
        );
    }
    println!(
        "\nround trips/s and CPU per round trip: medians of {rounds} rounds. Ratios: the median \
         of the ratios taken within each round (lowest-highest round). User space: pooled over \
         the rounds."
    );
}
