//! Memory and mappings per parked coroutine, and how fast they spawn: spawns N coroutines that
//! all park in `spindle::sleep`, reads `VmRSS` and `VmPTE` from `/proc/self/status` before
//! spawning and once every one is parked, and prints per coroutine the growth of both
//! together (target: at most 4.5 KiB), the lines of `/proc/self/maps` while they are parked,
//! and spawns per second (from the first spawn until the last coroutine has parked).
//!
//! Each row runs in a child process of its own and in a fresh runtime. The figure includes
//! everything a parked coroutine costs: the touched pages of its stack (its task record sits
//! in the top one), the page tables for them, its timer entry and its `JoinHandle`.
//!
//! The rows with default settings (guarded 64 KiB stacks, no sysctl, no `unsafe`) go to a
//! million coroutines: on Linux 6.13+ a guard page is a guard region (`MADV_GUARD_INSTALL`),
//! which costs no memory mapping. The `guard pages` rows force the fallback older kernels get
//! (`RuntimeBuilder::guard_regions(false)`: a `PROT_NONE` page under each stack, two mappings
//! per stack), whose 100k row stops at `vm.max_map_count` with the error it prints; the
//! `unguarded` row is the `unsafe` way past that limit, for comparison.
//!
//! Run with `cargo bench --bench rss` (also run by a plain `cargo bench`); a further argument
//! selects rows by substring, e.g. `cargo bench --bench rss -- default`.

use std::time::{Duration, Instant};

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

/// How a row's stacks are guarded.
#[derive(Clone, Copy, PartialEq)]
enum Guard {
    /// Default settings: guard regions where the kernel has them.
    Default,
    /// `guard_regions(false)`: a `PROT_NONE` page per stack.
    Pages,
    /// `unsafe unguarded_stacks()`.
    Unguarded,
}

struct Row {
    what: &'static str,
    count: usize,
    stack: usize,
    guard: Guard,
}

/// What one row measured.
struct Measured {
    /// Growth of VmRSS while the coroutines are parked, KiB.
    rss: u64,
    /// Growth of VmPTE (page tables), KiB.
    pte: u64,
    /// Memory mappings of the process while they are parked.
    maps: usize,
    /// From the first spawn until every coroutine has parked.
    elapsed: Duration,
    /// The runtime used guard regions.
    regions: bool,
}

/// Parks `count` coroutines in `sleep`, measures, prints the row and exits the process (the
/// coroutines are left parked: a million cancellations would take longer than the
/// measurement).
fn run_row(row: &Row) -> ! {
    let mut builder = spindle::Runtime::builder().stack_size(row.stack);
    match row.guard {
        Guard::Default => {}
        Guard::Pages => builder = builder.guard_regions(false),
        // SAFETY: every coroutine here only sleeps: it needs a few hundred bytes of its stack,
        // far less than the 16 KiB minimum it is given.
        Guard::Unguarded => builder = unsafe { builder.unguarded_stacks() },
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => print_row(row, Err(e.to_string())),
    };
    let regions = rt.uses_guard_regions();
    rt.run(|| {
        let (rss_before, pte_before) = (status_kib("VmRSS:"), status_kib("VmPTE:"));
        let mut handles = Vec::with_capacity(row.count);
        let start = Instant::now();
        for _ in 0..row.count {
            match spindle::Builder::new()
                .daemon(true)
                .spawn(|| spindle::sleep(Duration::from_secs(3600)))
            {
                Ok(h) => handles.push(h),
                Err(e) => print_row(row, Err(format!("spawn {}: {e}", handles.len() + 1))),
            }
        }
        // Every spawned coroutine runs once and parks in `sleep` before main runs again.
        spindle::yield_now();
        let elapsed = start.elapsed();
        let parked = handles.iter().filter(|h| h.coroutine().parked_on().is_some()).count();
        assert_eq!(parked, row.count, "every coroutine is parked when measured");
        let (rss_after, pte_after) = (status_kib("VmRSS:"), status_kib("VmPTE:"));
        print_row(
            row,
            Ok(Measured {
                rss: rss_after.saturating_sub(rss_before),
                pte: pte_after.saturating_sub(pte_before),
                maps: map_count(),
                elapsed,
                regions,
            }),
        )
    })
}

fn rows() -> Vec<Row> {
    let row = |what, count, kib: usize, guard| Row { what, count, stack: kib << 10, guard };
    vec![
        row("default: guarded, 64 KiB", 10_000, 64, Guard::Default),
        row("default: guarded, 64 KiB", 100_000, 64, Guard::Default),
        row("default: guarded, 64 KiB", 1_000_000, 64, Guard::Default),
        row("guarded, 16 KiB", 100_000, 16, Guard::Default),
        row("guard pages, 64 KiB", 10_000, 64, Guard::Pages),
        row("guard pages, 64 KiB", 30_000, 64, Guard::Pages),
        row("guard pages, 64 KiB", 100_000, 64, Guard::Pages),
        row("unguarded, 64 KiB", 100_000, 64, Guard::Unguarded),
    ]
}

/// Prints the line of `row` and exits.
fn print_row(row: &Row, measured: Result<Measured, String>) -> ! {
    match measured {
        Ok(m) => {
            let per = (m.rss + m.pte) as f64 / row.count as f64;
            let pte_per = m.pte as f64 * 1024.0 / row.count as f64;
            let spawns = row.count as f64 / m.elapsed.as_secs_f64();
            let guards = match (row.guard, m.regions) {
                (Guard::Unguarded, _) => "none",
                (_, true) => "regions",
                (_, false) => "pages",
            };
            let verdict = if per <= 4.5 { "meets <= 4.5 KiB" } else { "MISSES <= 4.5 KiB" };
            println!(
                "{:<26} {:>9} {:>8} {:>10.2} KiB {:>7.0} B {:>8} {:>9.0}k/s  {verdict}",
                row.what,
                row.count,
                guards,
                per,
                pte_per,
                m.maps,
                spawns / 1000.0
            );
        }
        Err(e) => println!("{:<26} {:>9} failed: {e}", row.what, row.count),
    }
    std::process::exit(0);
}

fn main() {
    let rows = rows();
    // Each row runs in a child process of its own, so one row's freed heap and unmapped stacks
    // cannot flatter or burden the next one's figures.
    if let Ok(i) = std::env::var("SPINDLE_RSS_ROW") {
        let i: usize = i.parse().expect("row index");
        run_row(&rows[i]);
    }
    // `cargo bench` passes `--bench`; a further argument selects rows by substring.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    println!(
        "Memory per parked coroutine (all parked in spindle::sleep); target <= 4.5 KiB with page \
         tables; kernel {}, vm.max_map_count {max_map_count}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    );
    println!(
        "(per coroutine = (VmRSS + VmPTE growth) / count; maps = lines of /proc/self/maps while \
         all are parked; spawns/s = count / time from the first spawn until all have parked)"
    );
    println!(
        "{:<26} {:>9} {:>8} {:>14} {:>9} {:>8} {:>11}",
        "stacks", "count", "guards", "per coroutine", "of it PTE", "maps", "spawns/s"
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
            println!("{:<26} {:>9} failed: child exited with {status}", row.what, row.count);
        }
    }
}
