//! Resident memory per parked coroutine: spawns N coroutines that all park in `spindle::sleep`,
//! reads `VmRSS` from `/proc/self/status` before spawning and once every one is parked, and
//! prints the difference per coroutine. Target: at most 8 KiB each for 100k.
//!
//! Each row runs in a fresh runtime. The figure includes everything a parked coroutine costs:
//! the touched pages of its stack, its task record, its timer entry and its `JoinHandle`.
//!
//! Why two kinds of stack: a guarded stack (the default) costs two memory mappings, and Linux
//! allows `vm.max_map_count` of them per process (65530 by default), so guarded runs stop near
//! 32k coroutines. The 100k rows use `RuntimeBuilder::unguarded_stacks()`, which carves 64
//! stacks from each mapping (no guard page; a canary word is checked at each switch). The
//! coroutines here use a few hundred bytes of stack, which is the promise that builder asks for.
//!
//! Run with `cargo bench --bench rss` (also run by a plain `cargo bench`).

use std::time::Duration;

/// A `kB` field of `/proc/self/status`: `VmRSS` (resident pages) or `VmPTE` (page tables,
/// which `VmRSS` does not count).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status.lines().find(|l| l.starts_with(field)).expect("field in /proc/self/status");
    line.split_whitespace().nth(1).expect("value").parse().expect("a number of kB")
}

fn map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps").map(|s| s.lines().count()).unwrap_or(0)
}

struct Row {
    what: String,
    count: usize,
    stack: usize,
    guarded: bool,
}

/// What one row measured.
struct Measured {
    /// Growth of VmRSS while the coroutines are parked, KiB.
    rss: u64,
    /// Growth of VmPTE (page tables), KiB.
    pte: u64,
    /// Memory mappings of the process while they are parked.
    maps: usize,
}

/// Parks `count` coroutines in `sleep` and measures, or returns the error that stopped the
/// spawning.
fn measure(row: &Row) -> Result<Measured, String> {
    let mut builder = spindle::Runtime::builder().stack_size(row.stack);
    if !row.guarded {
        // SAFETY: every coroutine here only sleeps: it needs a few hundred bytes of its stack,
        // far less than the 16 KiB minimum it is given.
        builder = unsafe { builder.unguarded_stacks() };
    }
    let rt = builder.build().map_err(|e| e.to_string())?;
    rt.run(|| {
        let (rss_before, pte_before) = (status_kib("VmRSS:"), status_kib("VmPTE:"));
        let mut handles = Vec::with_capacity(row.count);
        for _ in 0..row.count {
            let h = spindle::Builder::new()
                .daemon(true)
                .spawn(|| spindle::sleep(Duration::from_secs(3600)))
                .map_err(|e| e.to_string())?;
            handles.push(h);
        }
        // Every spawned coroutine runs once and parks in `sleep` before main runs again.
        spindle::yield_now();
        let parked = handles.iter().filter(|h| h.coroutine().parked_on().is_some()).count();
        assert_eq!(parked, row.count, "every coroutine is parked when measured");
        let (rss_after, pte_after) = (status_kib("VmRSS:"), status_kib("VmPTE:"));
        let maps = map_count();
        // Cancel them all; `run` then returns once they have unwound.
        for h in &handles {
            h.cancel();
        }
        Ok(Measured {
            rss: rss_after.saturating_sub(rss_before),
            pte: pte_after.saturating_sub(pte_before),
            maps,
        })
    })
}

fn rows() -> Vec<Row> {
    let row = |what: &str, count, kib: usize, guarded| Row {
        what: what.to_string(),
        count,
        stack: kib << 10,
        guarded,
    };
    vec![
        row("guarded, 64 KiB (default)", 30_000, 64, true),
        row("guarded, 16 KiB", 30_000, 16, true),
        row("unguarded, 64 KiB (default)", 100_000, 64, false),
        row("unguarded, 32 KiB", 100_000, 32, false),
        row("unguarded, 16 KiB", 100_000, 16, false),
    ]
}

/// Measures one row in this process and prints its line.
fn run_row(row: &Row) {
    match measure(row) {
        Ok(m) => {
            let per = m.rss as f64 / row.count as f64;
            let pte_per = m.pte as f64 * 1024.0 / row.count as f64;
            let verdict = match (row.count >= 100_000, per <= 8.0) {
                (true, true) => " (meets <= 8 KiB)",
                (true, false) => " (MISSES <= 8 KiB)",
                (false, _) => "",
            };
            println!(
                "{:<28} {:>8} {:>9} KiB {:>10.2} KiB {:>11.0} B {:>8}{verdict}",
                row.what, row.count, m.rss, per, pte_per, m.maps
            );
        }
        Err(e) => println!("{:<28} {:>8} failed: {e}", row.what, row.count),
    }
}

fn main() {
    let rows = rows();
    // Each row runs in a child process of its own, so one row's freed heap and unmapped stacks
    // cannot flatter or burden the next one's figures.
    if let Ok(i) = std::env::var("SPINDLE_RSS_ROW") {
        let i: usize = i.parse().expect("row index");
        run_row(&rows[i]);
        return;
    }
    // `cargo bench` passes `--bench`; a further argument selects rows by substring.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!("RSS per parked coroutine (all parked in spindle::sleep); target <= 8 KiB at 100k");
    println!(
        "100k rows use unguarded stacks: a guarded stack costs 2 memory mappings and \
         vm.max_map_count is {}, so guarded runs stop near 32k coroutines",
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    );
    println!(
        "(RSS = VmRSS growth while all are parked; page tables, VmPTE, are not in VmRSS and are \
         shown apart; stacks below 16 KiB are rounded up to 16 KiB)"
    );
    println!(
        "{:<28} {:>8} {:>12} {:>14} {:>13} {:>8}",
        "stacks", "count", "RSS growth", "RSS/coroutine", "PTE/coroutine", "maps"
    );
    let exe = std::env::current_exe().expect("path of this bench binary");
    for (i, row) in rows.iter().enumerate() {
        if filter.as_ref().is_some_and(|f| !row.what.contains(f.as_str())) {
            continue;
        }
        let status = std::process::Command::new(&exe)
            .env("SPINDLE_RSS_ROW", i.to_string())
            .status()
            .expect("run a row in a child process");
        if !status.success() {
            println!("{:<28} {:>8} failed: child exited with {status}", row.what, row.count);
        }
    }
}
