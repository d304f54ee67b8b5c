//! Stack overflow is reported with the coroutine's name and size; the map limit is an error.

mod util;

use std::os::unix::process::ExitStatusExt;

use spindle::Builder;

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + frame[7]
}

#[test]
fn overflow_prints_the_name_and_size_and_aborts() {
    if util::is_child("overflow") {
        spindle::run(|| {
            let h = Builder::new()
                .name("deep-recursion")
                .stack_size(64 * 1024)
                .spawn(|| recurse(0))
                .unwrap();
            let _ = h.join();
        });
        unreachable!("the overflow aborts the process");
    }
    let out = util::run_child("overflow_prints_the_name_and_size_and_aborts", "overflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "status {:?}; stderr: {stderr}",
        out.status
    );
    assert!(
        stderr.contains("coroutine #1 'deep-recursion' overflowed its stack (65536 bytes)"),
        "stderr: {stderr}"
    );
}

#[test]
fn a_fault_that_is_not_an_overflow_is_not_misreported() {
    if util::is_child("segv") {
        spindle::run(|| {
            spindle::spawn(|| {
                // SAFETY: none; this deliberately faults to check the report is not misleading.
                unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
            })
            .join()
            .ok();
        });
        unreachable!();
    }
    let out = util::run_child("a_fault_that_is_not_an_overflow_is_not_misreported", "segv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "stderr: {stderr}");
    assert!(!stderr.contains("overflowed"), "stderr: {stderr}");
}

#[test]
fn past_the_map_limit_spawn_returns_an_error_that_says_so() {
    if util::is_child("maps") {
        let (count, message) = spindle::run(|| {
            let mut handles = Vec::new();
            loop {
                match Builder::new().stack_size(spindle::MIN_STACK_SIZE).spawn(spindle::yield_now) {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        // spawn (not Builder::spawn) panics with the same message.
                        let p = std::panic::catch_unwind(|| spindle::spawn(|| ()));
                        let p = util::panic_message(&*p.unwrap_err());
                        assert!(p.contains("vm.max_map_count"), "{p}");
                        let n = handles.len();
                        for h in handles {
                            h.join().unwrap();
                        }
                        return (n, e.to_string());
                    }
                }
            }
        });
        println!("COUNT={count}");
        println!("MESSAGE={message}");
        return;
    }
    let out = util::run_child("past_the_map_limit_spawn_returns_an_error_that_says_so", "maps");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let limit: usize =
        std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
    let count: usize = stdout
        .lines()
        .find_map(|l| l.split("COUNT=").nth(1))
        .unwrap_or_else(|| panic!("child printed no count; stdout: {stdout}\nstderr: {stderr}"))
        .parse()
        .unwrap();
    assert!(count > limit / 2 - 2000 && count < limit / 2, "count {count} for limit {limit}");
    assert!(stdout.contains("vm.max_map_count"), "{stdout}");
    assert!(stdout.contains("unguarded_stacks"), "the message says how to go further: {stdout}");
}

#[test]
fn unguarded_stacks_go_past_the_map_limit() {
    if util::is_child("unguarded") {
        // SAFETY: these coroutines only sleep; none comes near its 16 KiB stack.
        let rt = unsafe {
            spindle::Runtime::builder().stack_size(spindle::MIN_STACK_SIZE).unguarded_stacks()
        }
        .build()
        .unwrap();
        let n = rt.run(|| {
            let hs: Vec<_> = (0..40_000)
                .map(|_| spindle::spawn(|| spindle::sleep(std::time::Duration::from_millis(1))))
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
