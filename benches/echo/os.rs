//! The machine: CPUs, pinning, the descriptor limit and a process's CPU time.

use std::io;
use std::time::Duration;

#[allow(dead_code)] // the bench only raises the limit
#[path = "../../tests/net_util/fd_limit.rs"]
mod fd_limit;
pub use fd_limit::raise_fd_limit;

/// Pins the calling thread (and threads it starts later) to `cpu`, if the machine has it.
pub fn pin_to(cpu: usize) {
    if cpu >= online_cpus() {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below the number of CPUs, within the set's capacity.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        eprintln!("echo: cannot pin to CPU {cpu}: {}", io::Error::last_os_error());
    }
}

/// CPUs online on the machine (not only those this process may use).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize
}

/// User and system CPU time all processes on the machine have used (`/proc/stat`: user, nice
/// and system; interrupts and time stolen by the hypervisor are not counted).
#[allow(dead_code)] // the http bench shares this file and does not read it
pub fn machine_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let total = stat.lines().next().unwrap_or("");
    let ticks: u64 =
        total.split_whitespace().skip(1).take(3).filter_map(|t| t.parse::<u64>().ok()).sum();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
}

/// User and system CPU time the process `pid` has used, all threads.
pub fn process_cpu(pid: u32) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime, the 14th and 15th fields of the line (11th and 12th after the name).
    let ticks = |i: usize| fields.get(i).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    let hz = clock_ticks_per_second();
    let secs = |t: u64| Duration::from_secs_f64(t as f64 / hz);
    (secs(ticks(11)), secs(ticks(12)))
}

/// The unit of the CPU times in `/proc`.
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}
