//! Coroutine stacks: mapped once, pooled, reused.
//!
//! This file holds a [`Stack`], its sizes, how it is guarded and how much of it was used;
//! `pool.rs` the [`StackPool`] that carves stacks from chunks and keeps the free ones.
//!
//! Mapping a fresh stack costs ~4 µs (mmap + mprotect + munmap), about 300 times a context switch,
//! so finished coroutines hand their stack back to a [`StackPool`] and the next spawn of the same
//! size takes it from there: in the steady state a spawn makes no system call.
//!
//! Stacks are carved, on demand, from chunks of slots `[guard | stack]` reserved in one go, so
//! neighbouring coroutines' stacks are neighbours in memory and share page-table pages. (With a
//! mapping per stack, each resumption of one of thousands of coroutines walked its own
//! page-table page: the echo server at 2000 connections did 0.72x the requests of a
//! hand-written mio loop that way, 0.89x carved from chunks.) Three ways to guard them
//! ([`Guards`]), chosen when the pool is made:
//!
//! * **Guard regions** (the default where the kernel has them, Linux 6.13+): the chunk is one
//!   writable mapping and each slot's lowest page becomes a guard with
//!   `madvise(MADV_GUARD_INSTALL)`, which marks it in the page tables and makes no mapping of
//!   its own. A chunk therefore stays one mapping however many stacks it holds (the kernel even
//!   merges neighbouring chunks), chunks double in size up to 1 GiB of address space, and
//!   `vm.max_map_count` no longer limits the number of coroutines: a million fit. Whether the
//!   kernel has them is asked once per process ([`guard_regions_available`]).
//! * **Guard pages** (the fallback: older kernels, or `RuntimeBuilder::guard_regions(false)`):
//!   the chunk is reserved `PROT_NONE` and each slot's usable part is made writable with
//!   `mprotect`, so each stack splits its chunk into two kernel mappings. Linux allows
//!   `vm.max_map_count` (65530 by default) per process: the pool keeps a
//!   [`MapBudget`](crate::maps::MapBudget) and stops carving
//!   [`HEADROOM`](crate::maps::HEADROOM) mappings short of the limit, with an error that says so
//!   (made in advance, see [`crate::maps`]), so the program goes on working after it.
//! * **Unguarded** (opt-in, `unsafe`, see `RuntimeBuilder::unguarded_stacks`): stacks back to
//!   back, 64 to a chunk, with one `PROT_NONE` page under the whole chunk (two mappings per 64
//!   stacks). There is no guard between stacks: an overflow runs into the neighbour below. A
//!   canary word at the bottom of each stack is checked whenever its coroutine switches out,
//!   which catches most overflows after the fact, and a runaway one ends at the chunk's guard,
//!   where the overflow handler names the running coroutine as the probable culprit (see
//!   [`Stack::overflow_range`]). Neither stops the neighbour's memory from being overwritten
//!   first, which is why the caller must promise there are no overflows.
//!
//! Either guard faults like the other: touching it raises SIGSEGV with the address inside it,
//! which [`crate::overflow`] turns into a report naming the coroutine.
//!
//! # Stack usage
//!
//! [`touched_depth`] asks the kernel (`mincore`) which pages of a stack are resident: the
//! lowest one is as deep as the stack was ever used, since it was mapped or last given back
//! (`MADV_DONTNEED`). A stack reused from the pool with its pages still resident shows the
//! deepest of the coroutines that ran on it: an upper bound for the current one, and over all
//! coroutines exactly the deepest any of them went.

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use corosensei::stack::StackPointer;

mod pool;

pub(crate) use pool::StackPool;

/// Default usable size of a coroutine's stack: 64 KiB.
///
/// Only touched pages cost memory: a coroutine that parks after a shallow call chain holds one
/// 4 KiB page (its record and its frames), so a million parked coroutines take about 4.3 GiB of
/// RSS whatever this size is. 64 KiB leaves room for formatting, panics with messages and
/// moderately deep calls.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

/// Smallest stack we hand out, guard excluded.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Largest stack size spindle maps: 1 GiB (256 MiB on 32-bit targets), Go's limit for a
/// goroutine's stack. A larger `stack_size` is an [`io::ErrorKind::InvalidInput`] error.
#[cfg(target_pointer_width = "64")]
pub const MAX_STACK_SIZE: usize = 1 << 30;
/// Largest stack size spindle maps: 1 GiB (256 MiB on 32-bit targets), Go's limit for a
/// goroutine's stack. A larger `stack_size` is an [`io::ErrorKind::InvalidInput`] error.
#[cfg(not(target_pointer_width = "64"))]
pub const MAX_STACK_SIZE: usize = 1 << 28;

/// Default size of the main coroutine's stack (the closure given to `run`): 1 MiB.
pub const DEFAULT_MAIN_STACK_SIZE: usize = 1024 * 1024;

/// Free guarded stacks of one size whose memory stays resident for reuse; the memory of any
/// more is given back to the kernel on release (`MADV_DONTNEED`), their address space kept.
pub const DEFAULT_POOL_LIMIT: usize = 1024;

/// `madvise` advice that installs guard regions (Linux 6.13, `MADV_GUARD_INSTALL`); the `libc`
/// crate may not have it yet.
pub(super) const MADV_GUARD_INSTALL: libc::c_int = 102;

/// How far below a page boundary an unguarded stack's base sits (see `StackPool::carve_unguarded`); keeps
/// the base 16-byte aligned.
pub(super) const CANARY_SHIFT: usize = 16;

/// Bytes at the top of every stack kept for the coroutine's record (`task::Task`, which
/// holds the overflow header; it checks at compile time that it fits); the coroutine runs
/// below them. A multiple of 64, so the base the coroutine starts from stays aligned and the
/// record starts a cache line.
pub(crate) const RECORD_SLOT: usize = 384;
const _: () = assert!(RECORD_SLOT.is_multiple_of(64));

/// Written at the lowest word of every unguarded stack; checked when its coroutine switches out.
pub(crate) const CANARY: u64 = 0x5350_494e_444c_4521; // "SPINDLE!"

/// The system's page size, asked once per process: every spawn needs it several times
/// (rounding the size, finding the overflow range), and `sysconf` is a libc call each time.
#[inline]
pub(crate) fn page_size() -> usize {
    /// 0 until first asked.
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf with a valid name has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let page = if page > 0 { page as usize } else { 4096 };
            PAGE.store(page, Ordering::Relaxed);
            page
        }
        page => page,
    }
}

/// `GUARD_REGIONS`: not asked yet.
const UNKNOWN: u8 = 0;
/// `GUARD_REGIONS`: the kernel installs guard regions.
const AVAILABLE: u8 = 1;
/// `GUARD_REGIONS`: it does not (before Linux 6.13), or one failed to install.
const UNAVAILABLE: u8 = 2;
/// Whether this process can use guard regions: [`UNKNOWN`], [`AVAILABLE`] or [`UNAVAILABLE`].
static GUARD_REGIONS: AtomicU8 = AtomicU8::new(UNKNOWN);

/// True if the kernel installs guard regions (`MADV_GUARD_INSTALL`, Linux 6.13+). Asked once
/// per process, by installing one on a scratch mapping; false from then on if one ever fails
/// to install on a stack chunk (memory locked with `mlockall`, say).
pub(crate) fn guard_regions_available() -> bool {
    match GUARD_REGIONS.load(Ordering::Relaxed) {
        AVAILABLE => true,
        UNAVAILABLE => false,
        _ => {
            let available = probe_guard_regions();
            GUARD_REGIONS.store(if available { AVAILABLE } else { UNAVAILABLE }, Ordering::Relaxed);
            available
        }
    }
}

/// A guard region failed to install where the probe said they work: from now on the
/// process uses guard pages.
pub(super) fn guard_regions_failed() {
    GUARD_REGIONS.store(UNAVAILABLE, Ordering::Relaxed);
}

fn probe_guard_regions() -> bool {
    let page = page_size();
    let Ok(addr) = map(2 * page, libc::PROT_READ | libc::PROT_WRITE) else { return false };
    // SAFETY: `addr` is the start of the two-page private anonymous mapping just made, which
    // nothing else uses; an older kernel rejects the unknown advice with EINVAL.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, page, MADV_GUARD_INSTALL) };
    // SAFETY: the scratch mapping made above, used by nothing.
    unsafe { libc::munmap(addr as *mut libc::c_void, 2 * page) };
    rc == 0
}

/// How the stacks of a pool are guarded; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Guards {
    /// A guard region (`MADV_GUARD_INSTALL`) under each stack: no mapping of its own.
    Regions,
    /// A `PROT_NONE` page under each stack: two mappings per stack.
    Pages,
    /// No guard; a canary at the bottom of each stack.
    Unguarded,
}

impl Guards {
    /// What a runtime gets: `guarded` unless `unguarded_stacks`, regions if `regions` allows
    /// them and the kernel has them.
    pub(crate) fn choose(guarded: bool, regions: bool) -> Guards {
        match (guarded, regions && guarded && guard_regions_available()) {
            (false, _) => Guards::Unguarded,
            (true, true) => Guards::Regions,
            (true, false) => Guards::Pages,
        }
    }
}

/// Usable size a request is served with: at least [`MIN_STACK_SIZE`], whole pages; an
/// `InvalidInput` error past [`MAX_STACK_SIZE`].
#[inline]
pub(crate) fn usable_size(requested: usize) -> io::Result<usize> {
    let page = page_size();
    if requested > MAX_STACK_SIZE {
        return Err(too_large(requested));
    }
    // No overflow: `requested` is at most MAX_STACK_SIZE, far below usize::MAX - page; the
    // page size is a power of two.
    Ok((requested.max(MIN_STACK_SIZE) + page - 1) & !(page - 1))
}

#[cold]
#[inline(never)]
pub(super) fn too_large(requested: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "a coroutine stack of {requested} bytes is larger than spindle maps \
             (MAX_STACK_SIZE = {MAX_STACK_SIZE} bytes)"
        ),
    )
}

/// How deep the stack whose top is `base` and whose usable size is `size` has been used, in
/// bytes: from `base` down to the start of its lowest resident page (at least the record's
/// page; 0 if the kernel cannot say). Asks `mincore` over the whole pages of the stack, from
/// the bottom up, through a buffer on this stack: allocates nothing and is async-signal-safe
/// (the overflow handler calls it).
pub(crate) fn touched_depth(base: usize, size: usize) -> usize {
    let page = page_size();
    // Whole pages only: an unguarded stack's lowest page is shared with its neighbour's top.
    let (Some(bottom), Some(top)) = (
        base.checked_sub(size).and_then(|b| b.checked_next_multiple_of(page)),
        base.checked_next_multiple_of(page),
    ) else {
        return 0;
    };
    let pages = top.saturating_sub(bottom) / page;
    let mut resident = [0u8; 256];
    let mut first = 0;
    while first < pages {
        let n = (pages - first).min(resident.len());
        let from = bottom + first * page;
        // SAFETY: [from, from + n pages) is page-aligned and inside the stack's own mapping;
        // mincore writes one byte per page into `resident`, which holds at least `n`.
        let rc = unsafe {
            libc::mincore(from as *mut libc::c_void, n * page, resident.as_mut_ptr().cast())
        };
        if rc != 0 {
            return 0;
        }
        if let Some(i) = resident[..n].iter().position(|&r| r & 1 != 0) {
            return (base - (from + i * page)).min(size);
        }
        first += n;
    }
    0
}

/// One coroutine stack: a slice of a pool chunk. Owned by a coroutine while it lives, by the
/// pool otherwise; its memory belongs to the chunk and lives as long as the pool.
pub(crate) struct Stack {
    /// Highest address (stacks grow down).
    base: usize,
    /// Usable bytes above the guard page (or above the canary word when unguarded).
    size: usize,
    /// A guard (region or `PROT_NONE` page) lies right under the usable part.
    guarded: bool,
    /// `base - RECORD_SLOT`, where the coroutine's frames start: worked out once, because
    /// corosensei asks for it on every resumption.
    frames_top: StackPointer,
}

// SAFETY: a guarded stack has a guard page (a guard region or a PROT_NONE page, both fault on
// any access) right below its usable part, included in `limit()`, as the trait requires. An
// unguarded stack has none; it is only created after the runtime's builder was given the
// caller's promise (an `unsafe` method) that no coroutine overflows its stack.
unsafe impl corosensei::stack::Stack for Stack {
    #[inline]
    fn base(&self) -> StackPointer {
        self.frames_top
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        let guard = if self.guarded { page_size() } else { 0 };
        StackPointer::new(self.base - self.size - guard).expect("stack limit is never zero")
    }
}

impl Stack {
    pub(super) fn new(base: usize, size: usize, guarded: bool) -> Stack {
        let frames_top = StackPointer::new(base - RECORD_SLOT).expect("stack base is never zero");
        Stack { base, size, guarded, frames_top }
    }

    /// Where the coroutine's record goes: the top [`RECORD_SLOT`] bytes, above the base handed
    /// to the coroutine, 16-byte aligned.
    pub(crate) fn record_slot(&self) -> *mut u8 {
        (self.base - RECORD_SLOT) as *mut u8
    }

    /// Highest address.
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// Lowest usable address (where an unguarded stack's canary sits).
    pub(crate) fn bottom(&self) -> usize {
        self.base - self.size
    }

    /// Usable size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn is_guarded(&self) -> bool {
        self.guarded
    }

    /// The address range whose access means this stack overflowed: the guard page; for an
    /// unguarded stack, the stack itself and one chunk's length below it, which holds the
    /// stacks a runaway coroutine runs through and the guard under the chunk where it faults
    /// (see `StackPool::carve_unguarded`).
    pub(crate) fn overflow_range(&self) -> (usize, usize) {
        let page = page_size();
        let bottom = self.bottom();
        if self.guarded {
            (bottom - page, bottom)
        } else {
            let reach = self.size.saturating_mul(pool::CHUNK_STACKS).saturating_add(2 * page);
            // Never the null page: a null pointer is not an overflow.
            (bottom.saturating_sub(reach).max(page), self.base)
        }
    }

    pub(super) fn write_canary(&self) {
        let at = self.bottom() as *mut u64;
        // SAFETY: the lowest word of an unguarded stack is inside its chunk's writable mapping and
        // is not in use: a coroutine reaching it has already overflowed.
        unsafe { at.write(CANARY) }
    }

    /// True unless this is an unguarded stack whose canary was overwritten.
    #[cfg(test)]
    pub(crate) fn canary_intact(&self) -> bool {
        if self.guarded {
            return true;
        }
        let at = self.bottom() as *const u64;
        // SAFETY: as in `write_canary`; reading it races with nothing (one thread).
        unsafe { at.read_volatile() == CANARY }
    }

    /// Gives the stack's touched pages back to the kernel; they read as zeros when next used.
    /// A guard region stays (`MADV_DONTNEED` keeps them).
    pub(super) fn release_memory(&self) {
        // SAFETY: [bottom, base) is this stack's own writable memory, which no coroutine uses
        // (it is in the free list). MADV_DONTNEED on private anonymous memory only drops pages.
        unsafe {
            libc::madvise(self.bottom() as *mut libc::c_void, self.size, libc::MADV_DONTNEED)
        };
    }
}

/// Maps `len` bytes of private anonymous memory, not charged to the commit limit (only touched
/// pages cost memory), never backed by huge pages (a 2 MiB page would make every stack in it
/// resident), with protection `prot`.
pub(super) fn map(len: usize, prot: libc::c_int) -> io::Result<usize> {
    // SAFETY: an anonymous private mapping with a null hint aliases nothing.
    let addr = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the mapping just made; the advice only changes how it is backed. A kernel
    // without transparent huge pages rejects it, which changes nothing.
    unsafe { libc::madvise(addr, len, libc::MADV_NOHUGEPAGE) };
    Ok(addr as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_pages_with_a_floor() {
        assert_eq!(usable_size(1).unwrap(), MIN_STACK_SIZE);
        assert_eq!(usable_size(MIN_STACK_SIZE + 1).unwrap(), MIN_STACK_SIZE + page_size());
        assert_eq!(usable_size(MAX_STACK_SIZE).unwrap(), MAX_STACK_SIZE);
    }

    #[test]
    fn the_kernel_is_asked_for_guard_regions() {
        // Linux 6.13 added MADV_GUARD_INSTALL: from there on the probe must find it.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
        let major: u32 = parts.next().unwrap().parse().unwrap();
        let minor: u32 = parts.next().unwrap().parse().unwrap();
        assert_eq!(guard_regions_available(), (major, minor) >= (6, 13), "kernel {release}");
        assert_eq!(Guards::choose(false, true), Guards::Unguarded);
        assert_eq!(Guards::choose(true, false), Guards::Pages);
    }
}
