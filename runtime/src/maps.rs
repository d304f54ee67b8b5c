//! The process's memory mappings: counting them, Linux's limit on them, and the error a stack
//! gets when it would pass that limit.
//!
//! Linux allows a process `vm.max_map_count` mappings (65530 by default). On kernels without
//! guard regions (before 6.13), or with `RuntimeBuilder::guard_regions(false)`, a guarded stack
//! costs two of them, so about 32,700 stacks exhaust the limit. What happens at the limit must
//! not make things worse:
//!
//! * Everything here works without allocating and without a mapping of its own: the count
//!   streams `/proc/self/maps` through a caller's buffer with `open(2)` and `read(2)`; reading
//!   it into a `String` (4.5 MB at the limit) needs a fresh mapping from `malloc` and fails
//!   exactly when the answer matters.
//! * A stack pool that pays two mappings per stack keeps a [`MapBudget`]: it carves a stack only
//!   while [`HEADROOM`] mappings stay free for the rest of the program (the timer heap and the
//!   run queue growing, `malloc` serving large allocations, a thread starting), so the program
//!   goes on working after the error.
//! * The error itself is made in advance ([`MapLimit::error`]) and only filled in when handed
//!   out.
//!
//! A leaf: imports nothing of the runtime.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Mappings a pool that pays two per stack leaves free for the rest of the program.
pub(crate) const HEADROOM: usize = 1024;

/// Bytes of the scratch buffer a [`MapBudget`] streams `/proc/self/maps` through.
const SCAN_BUFFER: usize = 16 * 1024;

/// Within `NEAR * HEADROOM` of the limit, a [`MapBudget`] counts again every [`RESCAN_EVERY`]
/// admissions, to see mappings the rest of the program made meanwhile. (A scan near the limit
/// reads 4.5 MB from the kernel: a few milliseconds.)
const NEAR: usize = 2;
/// See [`NEAR`]: four chunks of guard-page stacks (`stack::CHUNK_STACKS`).
const RESCAN_EVERY: usize = 256;

/// Counts the lines of `/proc/self/maps` (one per mapping, plus `[vsyscall]` on x86_64),
/// reading it through `buf`; `None` if it cannot be read. Allocates nothing.
pub(crate) fn count_mappings(buf: &mut [u8]) -> Option<usize> {
    let mut lines = 0;
    read_file(c"/proc/self/maps", buf, |chunk| {
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
    })?;
    Some(lines)
}

/// `vm.max_map_count`, or `None` if it cannot be read. Allocates nothing.
pub(crate) fn max_map_count() -> Option<usize> {
    let mut buf = [0u8; 32];
    let mut value: Option<usize> = None;
    let mut done = false;
    read_file(c"/proc/sys/vm/max_map_count", &mut buf, |chunk| {
        for &b in chunk {
            match b {
                b'0'..=b'9' if !done => {
                    let digit = (b - b'0') as usize;
                    value = value.unwrap_or(0).checked_mul(10).and_then(|v| v.checked_add(digit));
                    if value.is_none() {
                        done = true; // absurdly large: treat as unknown
                    }
                }
                _ => done = true,
            }
        }
    })?;
    value
}

/// Opens `path`, hands each piece read into `buf` to `each`, closes it. `None` if it cannot be
/// opened or read.
fn read_file(path: &std::ffi::CStr, buf: &mut [u8], mut each: impl FnMut(&[u8])) -> Option<()> {
    // SAFETY: `path` is NUL-terminated; open has no other precondition.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let outcome = loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes; `fd` is open.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => break Some(()),
            n if n > 0 => each(&buf[..n as usize]),
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => break None,
        }
    };
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    outcome
}

/// Keeps a pool that pays two mappings per stack [`HEADROOM`] mappings short of
/// `vm.max_map_count`, without counting the process's mappings at every stack.
///
/// `estimate` is an upper bound on the process's mappings as long as only the pool makes them:
/// the count of the last scan plus everything [`MapBudget::admit`] let through since. When it
/// reaches the threshold `/proc/self/maps` is scanned again; the scan either finds room (the
/// rest of the program unmapped something) or refuses. Near the threshold it is also scanned
/// every [`RESCAN_EVERY`] admissions, since the rest of the program may have made mappings the
/// estimate does not know of. Mappings made by others after the last scan can still take the
/// headroom (or all of it: then the pool's own `mprotect` fails with ENOMEM, and the error is
/// the same, made in advance, but nothing is left to spare).
pub(crate) struct MapBudget {
    /// `vm.max_map_count`; 0 when unknown, and then nothing is refused.
    limit: usize,
    /// Upper bound on the process's mappings (see above).
    estimate: usize,
    /// Admissions since the last scan.
    since_scan: usize,
    /// Scratch buffer of the scans, allocated once with the budget.
    buf: Box<[u8]>,
}

/// The budget said no: the process has `maps` mappings and Linux allows `limit`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refused {
    pub maps: usize,
    pub limit: usize,
}

impl MapBudget {
    /// Reads the limit and counts the mappings the process has now.
    pub(crate) fn new() -> MapBudget {
        let mut buf = vec![0u8; SCAN_BUFFER].into_boxed_slice();
        let limit = max_map_count().unwrap_or(0);
        let estimate = count_mappings(&mut buf).unwrap_or(0);
        MapBudget { limit, estimate, since_scan: 0, buf }
    }

    /// A budget with `limit` in place of `vm.max_map_count`, for tests.
    #[cfg(test)]
    pub(crate) fn with_limit(limit: usize) -> MapBudget {
        MapBudget { limit, ..MapBudget::new() }
    }

    /// Before making up to `n` new mappings: `Ok` if they leave [`HEADROOM`] free (and counts
    /// them in), else what the process has and may have.
    pub(crate) fn admit(&mut self, n: usize) -> Result<(), Refused> {
        if self.limit == 0 {
            return Ok(());
        }
        let limit = self.limit;
        let fits = |maps: usize| maps.saturating_add(n).saturating_add(HEADROOM) <= limit;
        let near = self.estimate.saturating_add(NEAR * HEADROOM) >= limit;
        if !fits(self.estimate) || (near && self.since_scan >= RESCAN_EVERY) {
            let Some(maps) = count_mappings(&mut self.buf) else {
                self.limit = 0; // cannot count any more: stop refusing
                return Ok(());
            };
            self.estimate = maps;
            self.since_scan = 0;
            if !fits(maps) {
                return Err(Refused { maps, limit });
            }
        }
        self.estimate = self.estimate.saturating_add(n);
        self.since_scan += 1;
        Ok(())
    }

    /// The `maps` and `limit` to report when mapping failed with ENOMEM anyway (something
    /// else in the process made mappings), counted through the budget's buffer.
    pub(crate) fn recount(&mut self) -> Option<Refused> {
        let maps = count_mappings(&mut self.buf)?;
        self.estimate = maps;
        (self.limit != 0).then_some(Refused { maps, limit: self.limit })
    }
}

/// The error of a spawn whose stack would pass `vm.max_map_count`. Built in advance, boxed
/// inside an [`io::Error`] with [`MapLimit::error`], and filled in with [`MapLimit::fill`]
/// when handed out, so that hitting the limit allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct MapLimit {
    /// Mappings the process had.
    maps: AtomicUsize,
    /// `vm.max_map_count`.
    limit: AtomicUsize,
    /// Mappings each guarded stack costs in the pool that failed: 2 (guard pages) or 0
    /// (guard regions: something else in the process made the mappings).
    per_stack: AtomicUsize,
}

impl MapLimit {
    /// A blank error, to be filled in with [`MapLimit::fill`] when the limit is hit.
    pub(crate) fn error() -> io::Error {
        io::Error::new(io::ErrorKind::OutOfMemory, MapLimit::default())
    }

    /// Fills in `error` (made by [`MapLimit::error`]) and returns it.
    pub(crate) fn fill(error: io::Error, refused: Refused, per_stack: usize) -> io::Error {
        if let Some(limit) = error.get_ref().and_then(|e| e.downcast_ref::<MapLimit>()) {
            limit.maps.store(refused.maps, Ordering::Relaxed);
            limit.limit.store(refused.limit, Ordering::Relaxed);
            limit.per_stack.store(per_stack, Ordering::Relaxed);
        }
        error
    }
}

impl fmt::Display for MapLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let maps = self.maps.load(Ordering::Relaxed);
        let limit = self.limit.load(Ordering::Relaxed);
        write!(
            f,
            "cannot map a coroutine stack: the process has {maps} memory mappings and Linux \
             allows vm.max_map_count = {limit}"
        )?;
        if self.per_stack.load(Ordering::Relaxed) > 0 {
            write!(
                f,
                "; here each guarded stack costs two (a PROT_NONE guard page and the stack: \
                 Linux before 6.13 has no guard regions, or RuntimeBuilder::guard_regions(false) \
                 turned them off), and spindle leaves {HEADROOM} of them to the rest of the \
                 program"
            )?;
        }
        f.write_str(
            ". Ways past it: raise the limit (as root: sysctl vm.max_map_count=1048576); run on \
             Linux 6.13 or later, where a guard page costs no mapping (MADV_GUARD_INSTALL); or \
             build the runtime with the unsafe RuntimeBuilder::unguarded_stacks()",
        )
    }
}

impl std::error::Error for MapLimit {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_mappings_through_a_small_buffer() {
        let mut small = [0u8; 64];
        let mut large = vec![0u8; 1 << 20];
        let a = count_mappings(&mut small).unwrap();
        let b = count_mappings(&mut large).unwrap();
        assert!(a > 5, "{a}");
        // Other test threads may map or unmap meanwhile: near enough.
        assert!(a.abs_diff(b) < 64, "{a} vs {b}");
    }

    #[test]
    fn reads_the_limit() {
        let expected: usize =
            std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
        assert_eq!(max_map_count(), Some(expected));
    }

    #[test]
    fn the_budget_refuses_short_of_the_limit() {
        let mut budget = MapBudget::new();
        let now = budget.estimate;
        // Other test threads may map and unmap meanwhile: the margins allow for that.
        budget.limit = now + HEADROOM + 200;
        assert!(budget.admit(6).is_ok());
        assert!(budget.admit(4).is_ok());
        assert_eq!(budget.estimate, now + 10, "counted in without a scan");
        let refused = budget.admit(1000).unwrap_err();
        assert_eq!(refused.limit, now + HEADROOM + 200);
        assert!(refused.maps.abs_diff(now) < 100, "a scan counted them: {refused:?}");
        // An estimate that says full is checked by a scan, which finds the room.
        budget.estimate = budget.limit;
        assert!(budget.admit(6).is_ok());
        assert!(budget.estimate < budget.limit - HEADROOM, "{}", budget.estimate);
    }

    #[test]
    fn near_the_limit_the_budget_counts_again_to_see_what_others_mapped() {
        let mut budget = MapBudget::new();
        let now = budget.estimate;
        budget.limit = now + HEADROOM + 300;
        // Near the limit, but lower than the process's count: as if the rest of the program
        // had made mappings since the last scan.
        let stale = budget.limit.saturating_sub(NEAR * HEADROOM);
        assert!(stale < now);
        budget.estimate = stale;
        budget.since_scan = RESCAN_EVERY - 1;
        budget.admit(1).unwrap();
        assert_eq!(budget.estimate, stale + 1, "not yet");
        budget.admit(1).unwrap();
        assert!(budget.estimate.abs_diff(now) < 100, "scanned: {} vs {now}", budget.estimate);
        assert_eq!(budget.since_scan, 1);
    }

    #[test]
    fn the_error_is_filled_in_and_names_the_ways_out() {
        let e = MapLimit::fill(MapLimit::error(), Refused { maps: 65000, limit: 65530 }, 2);
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
        let text = e.to_string();
        assert!(text.contains("65000 memory mappings"), "{text}");
        assert!(text.contains("vm.max_map_count = 65530"), "{text}");
        assert!(text.contains("sysctl vm.max_map_count"), "{text}");
        assert!(text.contains("unguarded_stacks"), "{text}");
        assert!(text.contains("6.13"), "{text}");
    }
}
