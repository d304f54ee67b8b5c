//! Stack overflow is reported with the coroutine's name, size and stack used, on guard regions
//! and on guard pages alike, and as a probable overflow on unguarded stacks; the map limit of
//! guard pages is a clean error the program survives; guard regions keep 100,000 coroutines in
//! a handful of mappings.

mod util;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use spindle::{Builder, Runtime, RuntimeBuilder};

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + frame[7]
}

/// Uses about `levels` KiB of stack, then returns.
#[inline(never)]
fn dig(levels: u32) -> u64 {
    let frame = std::hint::black_box([levels as u64; 128]);
    if levels == 0 {
        return frame[1];
    }
    dig(levels - 1) + frame[3]
}

/// True on Linux 6.13 and later, which has guard regions (`MADV_GUARD_INSTALL`).
fn kernel_has_guard_regions() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().unwrap().parse().unwrap();
    let minor: u32 = parts.next().unwrap().parse().unwrap();
    (major, minor) >= (6, 13)
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().count()
}

/// In a child: overflows a 64 KiB stack named 'deep-recursion' on a runtime from `builder`.
fn overflow_in_child(builder: RuntimeBuilder) -> ! {
    let rt = builder.build().unwrap();
    eprintln!("REGIONS={}", rt.uses_guard_regions());
    rt.run(|| {
        let h = Builder::new()
            .name("deep-recursion")
            .stack_size(64 * 1024)
            .spawn(|| recurse(0))
            .unwrap();
        let _ = h.join();
    });
    unreachable!("the overflow aborts the process");
}

/// The child aborted with the overflow report; returns its stderr.
fn assert_overflow_report(test: &str, scenario: &str) -> String {
    let out = util::run_child(test, scenario);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "status {:?}; {stderr}", out.status);
    let report = "coroutine #1 'deep-recursion' overflowed its stack (65536 bytes, ";
    let used: usize = stderr
        .split(report)
        .nth(1)
        .and_then(|rest| rest.split(" used)").next())
        .unwrap_or_else(|| panic!("no report in stderr: {stderr}"))
        .parse()
        .unwrap();
    // Stack probes touch every page on the way down: all of it shows as used.
    assert!(used > 60 * 1024 && used <= 65536, "{used}: {stderr}");
    stderr
}

#[test]
fn an_overflow_into_a_guard_region_is_reported_with_name_size_and_use() {
    const TEST: &str = "an_overflow_into_a_guard_region_is_reported_with_name_size_and_use";
    if util::is_child("regions") {
        overflow_in_child(Runtime::builder());
    }
    let stderr = assert_overflow_report(TEST, "regions");
    let regions = format!("REGIONS={}", kernel_has_guard_regions());
    assert!(stderr.contains(&regions), "guard regions where the kernel has them: {stderr}");
}

#[test]
fn an_overflow_into_a_guard_page_is_reported_the_same_way() {
    const TEST: &str = "an_overflow_into_a_guard_page_is_reported_the_same_way";
    if util::is_child("pages") {
        overflow_in_child(Runtime::builder().guard_regions(false));
    }
    let stderr = assert_overflow_report(TEST, "pages");
    assert!(stderr.contains("REGIONS=false"), "{stderr}");
}

#[test]
fn a_fault_that_is_not_an_overflow_is_not_misreported() {
    const TEST: &str = "a_fault_that_is_not_an_overflow_is_not_misreported";
    for scenario in ["segv", "segv-unguarded"] {
        if util::is_child(scenario) {
            let builder = Runtime::builder();
            let builder = if scenario == "segv" {
                builder
            } else {
                // SAFETY: no coroutine here comes near its stack's end.
                unsafe { builder.unguarded_stacks() }
            };
            builder.build().unwrap().run(|| {
                spindle::spawn(|| {
                    // SAFETY: none; this deliberately faults to check the report is not misleading.
                    unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
                })
                .join()
                .ok();
            });
            unreachable!();
        }
    }
    for scenario in ["segv", "segv-unguarded"] {
        let out = util::run_child(TEST, scenario);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{scenario}: {stderr}");
        assert!(!stderr.contains("overflowed"), "{scenario}: {stderr}");
    }
}

#[test]
fn a_runaway_overflow_of_an_unguarded_stack_is_reported_as_probable() {
    const TEST: &str = "a_runaway_overflow_of_an_unguarded_stack_is_reported_as_probable";
    if util::is_child("runaway") {
        // SAFETY: none kept; this deliberately overflows to check the report.
        let rt = unsafe { Runtime::builder().unguarded_stacks() }.build().unwrap();
        rt.run(|| {
            let h =
                Builder::new().name("runaway").stack_size(16 * 1024).spawn(|| recurse(0)).unwrap();
            let _ = h.join();
        });
        unreachable!("the overflow aborts the process");
    }
    let out = util::run_child(TEST, "runaway");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{stderr}");
    assert!(
        stderr.contains(
            "coroutine #1 'runaway' probably overflowed its unguarded stack (16384 bytes, "
        ),
        "{stderr}"
    );
}

#[test]
fn an_unguarded_overflow_that_returns_is_caught_by_its_canary() {
    const TEST: &str = "an_unguarded_overflow_that_returns_is_caught_by_its_canary";
    if util::is_child("canary") {
        // SAFETY: none kept; this deliberately overflows to check the report.
        let rt = unsafe { Runtime::builder().unguarded_stacks() }.build().unwrap();
        rt.run(|| {
            let h = Builder::new()
                .name("digger")
                .stack_size(16 * 1024)
                .spawn(|| {
                    // About 24 KiB: through its canary into the free stack below, and back.
                    std::hint::black_box(dig(24));
                    spindle::yield_now();
                })
                .unwrap();
            let _ = h.join();
        });
        unreachable!("the canary check aborts the process");
    }
    let out = util::run_child(TEST, "canary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{stderr}");
    assert!(
        stderr.contains("coroutine #1 'digger' overflowed its unguarded stack (16384 bytes, "),
        "{stderr}"
    );
}

/// Makes about `count` memory mappings of this process's own: a read-only mapping of `count`
/// pages with every other page made inaccessible (each `mprotect` splits off two more).
/// Never unmapped (the child exits).
fn consume_mappings(count: usize) {
    let page = 4096;
    // SAFETY: a fresh anonymous mapping, used by nothing but this function.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            (count + 1) * page,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(addr, libc::MAP_FAILED);
    for i in 0..count / 2 {
        // SAFETY: a page of the mapping just made.
        let rc = unsafe {
            libc::mprotect(addr.cast::<u8>().add((2 * i + 1) * page).cast(), page, libc::PROT_NONE)
        };
        assert_eq!(rc, 0, "mapping {i} of {count}");
    }
}

#[test]
fn past_the_map_limit_guard_pages_are_a_clean_error_and_the_runtime_goes_on() {
    const TEST: &str = "past_the_map_limit_guard_pages_are_a_clean_error_and_the_runtime_goes_on";
    /// Mappings the child leaves itself before spawning, and makes behind the pool's back
    /// after its first stacks.
    const ROOM: usize = 6000;
    const BEHIND: usize = 1000;
    if util::is_child("maps") {
        let limit: usize =
            std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
        consume_mappings(limit - mappings() - ROOM);
        let rt = Runtime::builder().guard_regions(false).stack_size(16 * 1024).build().unwrap();
        let before = mappings();
        let (count, message, at_error, joined) = rt.run(|| {
            let mut handles = Vec::with_capacity(ROOM);
            let error = loop {
                if handles.len() == 100 {
                    consume_mappings(BEHIND);
                }
                // Sleepers: once the spawning stops they all arm a timer, so the timer heap
                // grows right after the error.
                match Builder::new().spawn(|| spindle::sleep(Duration::from_millis(20))) {
                    Ok(h) => handles.push(h),
                    Err(e) => break e,
                }
            };
            let at_error = mappings();
            assert_eq!(error.kind(), std::io::ErrorKind::OutOfMemory);
            // spawn (not Builder::spawn) panics with the same message.
            let p = std::panic::catch_unwind(|| spindle::spawn(|| ()));
            let p = util::panic_message(&*p.unwrap_err());
            assert!(p.contains("vm.max_map_count"), "{p}");
            // The program goes on: every sleeper parks (the timer heap grows), a large
            // allocation still gets its mapping, all of them finish, and spawning works again.
            let n = handles.len();
            spindle::yield_now();
            let big = vec![1u8; 8 << 20]; // a mapping of its own, from malloc
            assert_eq!((big[0], big[big.len() - 1]), (1, 1));
            let joined = handles.into_iter().filter_map(|h| h.join().ok()).count();
            let again: Vec<_> = (0..1000).map(|_| spindle::spawn(spindle::yield_now)).collect();
            again.into_iter().for_each(|h| h.join().unwrap());
            (n, error.to_string(), at_error, joined)
        });
        println!("LIMIT={limit} BEFORE={before} AT_ERROR={at_error} COUNT={count} JOINED={joined}");
        println!("MESSAGE={message}");
        return;
    }
    let out = util::run_child(TEST, "maps");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let field = |name: &str| -> usize {
        stdout
            .split(name)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                panic!("child printed no {name}; stdout: {stdout}\nstderr: {stderr}")
            })
    };
    let (limit, before, at_error) = (field("LIMIT="), field("BEFORE="), field("AT_ERROR="));
    let count = field("COUNT=");
    // Two mappings per stack, and the runtime leaves some to the rest of the program, also
    // when part of its room was taken behind its back.
    let free = limit - at_error;
    assert!((100..2000).contains(&free), "{free} mappings left free at the error: {stdout}");
    let expected = (limit - before - BEHIND - free) / 2;
    assert!(count.abs_diff(expected) < 100, "count {count}, expected about {expected}: {stdout}");
    assert_eq!(field("JOINED="), count, "every coroutine spawned before the error finished");
    assert!(stdout.contains("vm.max_map_count"), "{stdout}");
    assert!(stdout.contains("sysctl"), "the message says how to raise it: {stdout}");
    assert!(stdout.contains("6.13"), "... or which kernel has guard regions: {stdout}");
    assert!(stdout.contains("unguarded_stacks"), "... or how to do without: {stdout}");
}

#[test]
fn a_hundred_thousand_guarded_coroutines_live_at_once_in_a_few_mappings() {
    const TEST: &str = "a_hundred_thousand_guarded_coroutines_live_at_once_in_a_few_mappings";
    const COUNT: usize = 100_000;
    if util::is_child("many") {
        let rt = Runtime::builder().stack_size(16 * 1024).build().unwrap();
        let regions = rt.uses_guard_regions();
        let before = mappings();
        rt.run(|| {
            let go = std::rc::Rc::new(spindle::sync::Event::new());
            let handles: Vec<_> = (0..COUNT)
                .map(|_| {
                    let go = go.clone();
                    spindle::spawn(move || go.wait())
                })
                .collect();
            spindle::yield_now(); // every one of them is parked now
            let parked = handles.iter().filter(|h| h.coroutine().parked_on().is_some()).count();
            let alive = spindle::active_count();
            let new = mappings().saturating_sub(before);
            println!("REGIONS={regions} ALIVE={alive} PARKED={parked} NEW_MAPPINGS={new}");
            // Waking and finishing 100k coroutines would double the test's time and show
            // nothing more: the child exits with them parked.
            std::process::exit(0);
        });
        unreachable!("the child exits from inside the runtime");
    }
    let out = util::run_child(TEST, "many");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !kernel_has_guard_regions() {
        // Before Linux 6.13 guard pages cost two mappings each: 100k do not fit, and the
        // spawn that finds no room panics with the map-limit message.
        assert!(stderr.contains("vm.max_map_count"), "stdout: {stdout}\nstderr: {stderr}");
        return;
    }
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let alive = format!("REGIONS=true ALIVE={} PARKED={COUNT}", COUNT + 1);
    assert!(stdout.contains(&alive), "{stdout}");
    let new: usize = stdout
        .split("NEW_MAPPINGS=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(new < 200, "{new} new mappings for {COUNT} guarded stacks");
}

#[test]
fn unguarded_stacks_go_past_the_map_limit() {
    if util::is_child("unguarded") {
        // SAFETY: these coroutines only sleep; none comes near its 16 KiB stack.
        let rt =
            unsafe { Runtime::builder().stack_size(16 * 1024).unguarded_stacks() }.build().unwrap();
        let n = rt.run(|| {
            let hs: Vec<_> = (0..40_000)
                .map(|_| spindle::spawn(|| spindle::sleep(Duration::from_millis(1))))
                .collect();
            hs.into_iter().map(|h| h.join().is_ok() as usize).sum::<usize>()
        });
        println!("JOINED={n}");
        return;
    }
    let out = util::run_child("unguarded_stacks_go_past_the_map_limit", "unguarded");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("JOINED=40000"), "{stdout}");
}
