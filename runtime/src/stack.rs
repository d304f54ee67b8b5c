//! Coroutine stacks: mapped once, pooled, reused.
//!
//! Mapping a fresh stack costs ~4 µs (mmap + mprotect + munmap), about 300 times a context switch,
//! so finished coroutines hand their stack back to a [`StackPool`] and the next spawn of the same
//! size takes it from there: in the steady state a spawn makes no system call.
//!
//! Two kinds of stack:
//!
//! * **Guarded** (the default): its own mapping with one `PROT_NONE` page under it. Running into
//!   that page faults, and [`crate::overflow`] turns the fault into a report naming the coroutine.
//!   Each guarded stack costs two kernel memory mappings, and Linux allows
//!   `vm.max_map_count` (65530 by default) per process: past ~32k live coroutines the mapping
//!   fails and [`StackPool::take`] returns an error that says so.
//! * **Unguarded** (opt-in, `unsafe`, see `RuntimeBuilder::unguarded_stacks`): stacks carved
//!   from large chunks, many to a mapping, so the map limit no longer binds. There is no guard
//!   page; a canary word at the bottom of each stack is checked whenever its coroutine switches
//!   out, which catches most overflows after the fact, but not all, and not before they have
//!   corrupted the neighbouring stack. That is why the caller must promise there are none.

use std::io;
use std::ptr;

use corosensei::stack::StackPointer;

/// Default usable size of a coroutine's stack: 64 KiB.
///
/// Only touched pages cost memory: a coroutine that parks after a shallow call chain holds one
/// or two 4 KiB pages, so 100k parked coroutines take a few hundred MiB of RSS whatever this
/// size is. 64 KiB leaves room for formatting, panics with messages and moderately deep calls.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

/// Smallest stack we hand out, guard excluded.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Default size of the main coroutine's stack (the closure given to `run`): 1 MiB.
pub const DEFAULT_MAIN_STACK_SIZE: usize = 1024 * 1024;

/// Number of stacks of one size kept for reuse when guarded; more are unmapped on release.
pub const DEFAULT_POOL_LIMIT: usize = 1024;

/// Stacks per mapping in unguarded mode.
const CHUNK_STACKS: usize = 64;

/// How far below a page boundary an unguarded stack's base sits (see `carve_chunk`); keeps
/// the base 16-byte aligned.
const CANARY_SHIFT: usize = 16;

/// Written at the lowest word of every unguarded stack; checked when its coroutine switches out.
pub(crate) const CANARY: u64 = 0x5350_494e_444c_4521; // "SPINDLE!"

/// The system's page size, asked once per process: every spawn needs it several times
/// (rounding the size, finding the overflow range), and `sysconf` is a libc call each time.
#[inline]
pub(crate) fn page_size() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
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

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Usable size a request is served with: at least [`MIN_STACK_SIZE`], whole pages.
pub(crate) fn usable_size(requested: usize) -> usize {
    round_up(requested.max(MIN_STACK_SIZE), page_size())
}

/// One coroutine stack. Owned by a coroutine while it lives, by the pool otherwise.
pub(crate) struct Stack {
    /// Highest address (stacks grow down).
    base: usize,
    /// Usable bytes above the guard page (or above the canary word when unguarded).
    size: usize,
    /// `Some(mapping length)` when this stack is its own guarded mapping, unmapped on drop;
    /// `None` when it is a slice of a pool chunk and lives as long as the pool.
    mapping: Option<usize>,
}

// SAFETY: a guarded stack has a PROT_NONE page below `limit() + page`, as the trait requires.
// An unguarded stack has none; it is only created after the runtime's builder was given the
// caller's promise (an `unsafe` method) that no coroutine overflows its stack.
unsafe impl corosensei::stack::Stack for Stack {
    #[inline]
    fn base(&self) -> StackPointer {
        StackPointer::new(self.base).expect("stack base is never zero")
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        let guard = if self.mapping.is_some() { page_size() } else { 0 };
        StackPointer::new(self.base - self.size - guard).expect("stack limit is never zero")
    }
}

impl Stack {
    /// Maps a new stack of `size` usable bytes with a guard page under it.
    fn map_guarded(size: usize) -> io::Result<Stack> {
        let page = page_size();
        let len = size + page;
        // SAFETY: an anonymous private mapping with a null hint aliases nothing.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(map_error(io::Error::last_os_error(), size));
        }
        let stack = Stack { base: addr as usize + len, size, mapping: Some(len) };
        // SAFETY: [addr + page, addr + len) lies inside the mapping made just above.
        let rc = unsafe {
            libc::mprotect(
                (addr as *mut u8).add(page).cast(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            // `stack` unmaps itself on drop.
            return Err(map_error(io::Error::last_os_error(), size));
        }
        Ok(stack)
    }

    /// Usable size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn is_guarded(&self) -> bool {
        self.mapping.is_some()
    }

    /// The address range whose access means this stack overflowed: the guard page, or for an
    /// unguarded stack the lowest page (where the canary sits).
    pub(crate) fn overflow_range(&self) -> (usize, usize) {
        let page = page_size();
        let bottom = self.base - self.size;
        if self.mapping.is_some() {
            (bottom - page, bottom)
        } else {
            (bottom, bottom + page)
        }
    }

    fn write_canary(&self) {
        let at = (self.base - self.size) as *mut u64;
        // SAFETY: the lowest word of an unguarded stack is inside its chunk's writable mapping and
        // is not in use: a coroutine reaching it has already overflowed.
        unsafe { at.write(CANARY) }
    }

    /// True unless this is an unguarded stack whose canary was overwritten.
    #[cfg(test)]
    pub(crate) fn canary_intact(&self) -> bool {
        if self.mapping.is_some() {
            return true;
        }
        let at = (self.base - self.size) as *const u64;
        // SAFETY: as in `write_canary`; reading it races with nothing (one thread).
        unsafe { at.read_volatile() == CANARY }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(len) = self.mapping {
            // SAFETY: this stack owns exactly this mapping, and no coroutine runs on it any more
            // (stacks are only dropped by the pool or after `into_stack`).
            let rc = unsafe { libc::munmap((self.base - len) as *mut libc::c_void, len) };
            debug_assert_eq!(rc, 0);
        }
    }
}

/// Rewrites ENOMEM from mmap/mprotect into an error that names the map-count limit when that is
/// what was hit, and what to do about it.
fn map_error(err: io::Error, size: usize) -> io::Error {
    if err.raw_os_error() != Some(libc::ENOMEM) {
        return io::Error::new(
            err.kind(),
            format!("cannot map a {size}-byte coroutine stack: {err}"),
        );
    }
    let maps = std::fs::read_to_string("/proc/self/maps").map(|s| s.lines().count()).ok();
    let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    let msg = match (maps, limit) {
        (Some(maps), Some(limit)) if maps + 2 >= limit => format!(
            "cannot map a coroutine stack: the process has {maps} memory mappings and Linux allows \
             vm.max_map_count = {limit}; each guarded stack costs two. Raise the limit \
             (sysctl vm.max_map_count=262144, as root) or build the runtime with \
             RuntimeBuilder::unguarded_stacks() to go past ~32k live coroutines"
        ),
        _ => format!("cannot map a {size}-byte coroutine stack: out of memory ({err})"),
    };
    io::Error::new(io::ErrorKind::OutOfMemory, msg)
}

/// A chunk mapping that unguarded stacks are carved from. Unmapped when the pool drops.
struct Chunk {
    addr: usize,
    len: usize,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: the pool is dropped with the runtime core, after every coroutine finished, so
        // no stack carved from this chunk is in use.
        let rc = unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
        debug_assert_eq!(rc, 0);
    }
}

/// Free stacks by size, handed out again before any new mapping is made.
pub(crate) struct StackPool {
    /// `(usable size, free stacks)`; programs use one or two sizes, so a short list is fastest.
    free: Vec<(usize, Vec<Stack>)>,
    /// Free stacks kept per size (guarded mode); past it, released stacks are unmapped.
    limit: usize,
    guarded: bool,
    chunks: Vec<Chunk>,
}

impl StackPool {
    pub(crate) fn new(guarded: bool, limit: usize) -> StackPool {
        StackPool { free: Vec::new(), limit, guarded, chunks: Vec::new() }
    }

    /// A stack of `usable_size(requested)` bytes: reused if one is free, else newly mapped.
    pub(crate) fn take(&mut self, requested: usize) -> io::Result<Stack> {
        let size = usable_size(requested);
        if let Some((_, list)) = self.free.iter_mut().find(|(s, _)| *s == size) {
            if let Some(stack) = list.pop() {
                return Ok(stack);
            }
        }
        if self.guarded {
            Stack::map_guarded(size)
        } else {
            self.carve_chunk(size)?;
            self.take(size)
        }
    }

    /// Takes back the stack of a finished coroutine.
    pub(crate) fn release(&mut self, stack: Stack) {
        let size = stack.size;
        let list = match self.free.iter_mut().position(|(s, _)| *s == size) {
            Some(i) => &mut self.free[i].1,
            None => {
                self.free.push((size, Vec::new()));
                &mut self.free.last_mut().expect("just pushed").1
            }
        };
        // Unguarded stacks live in chunks and are always kept.
        if !stack.is_guarded() || list.len() < self.limit {
            list.push(stack);
        }
    }

    /// Maps one chunk of [`CHUNK_STACKS`] unguarded stacks of `size` and frees them into the pool.
    ///
    /// Layout: one spare page, then the stacks back to back, each shifted down by
    /// [`CANARY_SHIFT`] bytes from a page boundary. So the canary (the lowest word of stack
    /// `i`) sits in the same page as the top of stack `i - 1`, which that stack's coroutine
    /// touches anyway, and the canary of stack 0 in the spare page. A parked coroutine then
    /// holds the pages its frames touched and nothing more; with the canaries on pages of their
    /// own, each stack held one more page (4 KiB) for its canary alone.
    fn carve_chunk(&mut self, size: usize) -> io::Result<()> {
        let page = page_size();
        let len = size * CHUNK_STACKS + page;
        // SAFETY: an anonymous private mapping with a null hint aliases nothing.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(map_error(io::Error::last_os_error(), size));
        }
        self.chunks.push(Chunk { addr: addr as usize, len });
        let list = match self.free.iter_mut().position(|(s, _)| *s == size) {
            Some(i) => &mut self.free[i].1,
            None => {
                self.free.push((size, Vec::new()));
                &mut self.free.last_mut().expect("just pushed").1
            }
        };
        // Hand out the highest stack first, so a chunk fills top down.
        for i in 0..CHUNK_STACKS {
            let base = addr as usize + page + (i + 1) * size - CANARY_SHIFT;
            let stack = Stack { base, size, mapping: None };
            stack.write_canary();
            list.push(stack);
        }
        Ok(())
    }

    /// Number of free stacks held (all sizes); for tests and stats.
    #[cfg(test)]
    pub(crate) fn free_count(&self) -> usize {
        self.free.iter().map(|(_, l)| l.len()).sum()
    }
}

impl Drop for StackPool {
    fn drop(&mut self) {
        // Free stacks first: unguarded ones point into chunks, which go last.
        self.free.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_pages_with_a_floor() {
        assert_eq!(usable_size(1), MIN_STACK_SIZE);
        assert_eq!(usable_size(MIN_STACK_SIZE + 1), MIN_STACK_SIZE + page_size());
    }

    #[test]
    fn released_stacks_are_reused() {
        let mut pool = StackPool::new(true, 4);
        let a = pool.take(32 * 1024).unwrap();
        let base = a.base;
        pool.release(a);
        assert_eq!(pool.free_count(), 1);
        let b = pool.take(32 * 1024).unwrap();
        assert_eq!(b.base, base);
        assert_eq!(pool.free_count(), 0);
    }

    #[test]
    fn pool_limit_unmaps_extra_guarded_stacks() {
        let mut pool = StackPool::new(true, 1);
        let a = pool.take(16 * 1024).unwrap();
        let b = pool.take(16 * 1024).unwrap();
        pool.release(a);
        pool.release(b);
        assert_eq!(pool.free_count(), 1);
    }

    #[test]
    fn unguarded_stacks_come_from_chunks_with_canaries() {
        let mut pool = StackPool::new(false, 1);
        let a = pool.take(16 * 1024).unwrap();
        assert!(!a.is_guarded());
        assert!(a.canary_intact());
        assert_eq!(pool.free_count(), CHUNK_STACKS - 1);
        pool.release(a);
        assert_eq!(pool.free_count(), CHUNK_STACKS);
    }
}
