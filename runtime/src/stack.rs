//! Coroutine stacks: mapped once, pooled, reused.
//!
//! Mapping a fresh stack costs ~4 µs (mmap + mprotect + munmap), about 300 times a context switch,
//! so finished coroutines hand their stack back to a [`StackPool`] and the next spawn of the same
//! size takes it from there: in the steady state a spawn makes no system call.
//!
//! Two kinds of stack:
//!
//! * **Guarded** (the default): one `PROT_NONE` page under each stack. Running into that page
//!   faults, and [`crate::overflow`] turns the fault into a report naming the coroutine. Stacks
//!   are carved, on demand, from chunks of [`CHUNK_STACKS`] slots `[guard | stack]` reserved in
//!   one go, so neighbouring coroutines' stacks are neighbours in memory and share page-table
//!   pages. (With a mapping per stack, each resumption of one of thousands of coroutines walked
//!   its own page-table page: the echo server at 2000 connections did 0.72x the requests of a
//!   hand-written mio loop that way, 0.89x carved from chunks.) Each carved stack still splits
//!   its chunk into two kernel memory mappings, and Linux allows `vm.max_map_count` (65530 by
//!   default) per process: past ~32k live coroutines carving fails and [`StackPool::take`]
//!   returns an error that says so.
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

/// Free guarded stacks of one size whose memory stays resident for reuse; the memory of any
/// more is given back to the kernel on release (`MADV_DONTNEED`), their address space kept.
pub const DEFAULT_POOL_LIMIT: usize = 1024;

/// Stacks per chunk reservation.
const CHUNK_STACKS: usize = 64;

/// How far below a page boundary an unguarded stack's base sits (see `carve_chunk`); keeps
/// the base 16-byte aligned.
const CANARY_SHIFT: usize = 16;

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

/// One coroutine stack: a slice of a pool chunk. Owned by a coroutine while it lives, by the
/// pool otherwise; its memory belongs to the chunk and lives as long as the pool.
pub(crate) struct Stack {
    /// Highest address (stacks grow down).
    base: usize,
    /// Usable bytes above the guard page (or above the canary word when unguarded).
    size: usize,
    /// A `PROT_NONE` page lies right under the usable part.
    guarded: bool,
    /// `base - RECORD_SLOT`, where the coroutine's frames start: worked out once, because
    /// corosensei asks for it on every resumption.
    frames_top: StackPointer,
}

// SAFETY: a guarded stack has a PROT_NONE page right below its usable part, included in
// `limit()`, as the trait requires. An unguarded stack has none; it is only created after the
// runtime's builder was given the caller's promise (an `unsafe` method) that no coroutine
// overflows its stack.
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
    fn new(base: usize, size: usize, guarded: bool) -> Stack {
        let frames_top = StackPointer::new(base - RECORD_SLOT).expect("stack base is never zero");
        Stack { base, size, guarded, frames_top }
    }

    /// Where the coroutine's record goes: the top [`RECORD_SLOT`] bytes, above the base handed
    /// to the coroutine, 16-byte aligned.
    pub(crate) fn record_slot(&self) -> *mut u8 {
        (self.base - RECORD_SLOT) as *mut u8
    }

    /// Usable size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn is_guarded(&self) -> bool {
        self.guarded
    }

    /// The address range whose access means this stack overflowed: the guard page, or for an
    /// unguarded stack the lowest page (where the canary sits).
    pub(crate) fn overflow_range(&self) -> (usize, usize) {
        let page = page_size();
        let bottom = self.base - self.size;
        if self.guarded {
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
        if self.guarded {
            return true;
        }
        let at = (self.base - self.size) as *const u64;
        // SAFETY: as in `write_canary`; reading it races with nothing (one thread).
        unsafe { at.read_volatile() == CANARY }
    }

    /// Gives the stack's touched pages back to the kernel; they read as zeros when next used.
    fn release_memory(&self) {
        let bottom = self.base - self.size;
        // SAFETY: [bottom, base) is this stack's own writable memory, which no coroutine uses
        // (it is in the free list). MADV_DONTNEED on private anonymous memory only drops pages.
        unsafe { libc::madvise(bottom as *mut libc::c_void, self.size, libc::MADV_DONTNEED) };
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

/// A chunk reservation that stacks are carved from. Unmapped when the pool drops.
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

/// A guarded chunk with slots not yet carved.
struct OpenChunk {
    /// Usable size of its stacks.
    size: usize,
    /// Start of the reservation; slot `i` is `[addr + i * slot, addr + (i + 1) * slot)`, its
    /// first page the guard.
    addr: usize,
    /// Slots carved so far (made writable); the rest are still `PROT_NONE`.
    carved: usize,
}

/// The free stacks of one size.
struct SizeClass {
    size: usize,
    /// Free stacks whose touched pages are still resident; reused first, most recent first.
    resident: Vec<Stack>,
    /// Free stacks whose pages were given back to the kernel.
    released: Vec<Stack>,
}

/// Free stacks by size, handed out again before any new memory is made writable.
pub(crate) struct StackPool {
    /// Free stacks by size; programs use one or two sizes, so a short list is fastest.
    free: Vec<SizeClass>,
    /// Free guarded stacks per size whose memory stays resident; past it, released stacks give
    /// their pages back (they stay in the free list: chunk memory is never unmapped singly).
    limit: usize,
    guarded: bool,
    chunks: Vec<Chunk>,
    /// Guarded chunks with uncarved slots, by stack size.
    open: Vec<OpenChunk>,
}

impl StackPool {
    pub(crate) fn new(guarded: bool, limit: usize) -> StackPool {
        StackPool { free: Vec::new(), limit, guarded, chunks: Vec::new(), open: Vec::new() }
    }

    /// A stack of `usable_size(requested)` bytes: reused if one is free, else newly carved.
    pub(crate) fn take(&mut self, requested: usize) -> io::Result<Stack> {
        let size = usable_size(requested);
        if let Some(class) = self.free.iter_mut().find(|c| c.size == size) {
            if let Some(stack) = class.resident.pop().or_else(|| class.released.pop()) {
                return Ok(stack);
            }
        }
        if self.guarded {
            self.carve_guarded(size)
        } else {
            self.carve_chunk(size)?;
            self.take(size)
        }
    }

    /// Takes back the stack of a finished coroutine.
    pub(crate) fn release(&mut self, stack: Stack) {
        let limit = self.limit;
        let class = self.class(stack.size);
        // Unguarded stacks keep their memory: a neighbour's canary sits in their top page.
        if stack.guarded && class.resident.len() >= limit {
            stack.release_memory();
            class.released.push(stack);
        } else {
            class.resident.push(stack);
        }
    }

    fn class(&mut self, size: usize) -> &mut SizeClass {
        match self.free.iter().position(|c| c.size == size) {
            Some(i) => &mut self.free[i],
            None => {
                self.free.push(SizeClass { size, resident: Vec::new(), released: Vec::new() });
                self.free.last_mut().expect("just pushed")
            }
        }
    }

    /// Makes the next slot of an open chunk of `size` writable (reserving a chunk if none is
    /// open) and returns it as a stack. One `mprotect` per stack, so a failure (the map limit)
    /// comes exactly at the stack that cannot be had.
    fn carve_guarded(&mut self, size: usize) -> io::Result<Stack> {
        let page = page_size();
        let slot = size + page;
        let open = match self.open.iter().position(|c| c.size == size) {
            Some(i) => i,
            None => {
                let len = slot * CHUNK_STACKS;
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
                self.chunks.push(Chunk { addr: addr as usize, len });
                self.open.push(OpenChunk { size, addr: addr as usize, carved: 0 });
                self.open.len() - 1
            }
        };
        let chunk = &mut self.open[open];
        let start = chunk.addr + chunk.carved * slot;
        // SAFETY: [start + page, start + slot) is the usable part of an uncarved slot inside a
        // chunk this pool reserved; nothing else refers to it.
        let rc = unsafe {
            libc::mprotect(
                (start + page) as *mut libc::c_void,
                size,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return Err(map_error(io::Error::last_os_error(), size));
        }
        chunk.carved += 1;
        if chunk.carved == CHUNK_STACKS {
            self.open.swap_remove(open);
        }
        Ok(Stack::new(start + slot, size, true))
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
        let list = &mut self.class(size).resident;
        // Hand out the highest stack first, so a chunk fills top down.
        for i in 0..CHUNK_STACKS {
            let base = addr as usize + page + (i + 1) * size - CANARY_SHIFT;
            let stack = Stack::new(base, size, false);
            stack.write_canary();
            list.push(stack);
        }
        Ok(())
    }

    /// Number of free stacks held (all sizes); for tests and stats.
    #[cfg(test)]
    pub(crate) fn free_count(&self) -> usize {
        self.free.iter().map(|c| c.resident.len() + c.released.len()).sum()
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
    fn stacks_past_the_pool_limit_give_their_memory_back() {
        let mut pool = StackPool::new(true, 1);
        let a = pool.take(16 * 1024).unwrap();
        let b = pool.take(16 * 1024).unwrap();
        let (a_base, b_base) = (a.base, b.base);
        // SAFETY: the top word of a fresh guarded stack is writable and unused.
        unsafe { ((b_base - 8) as *mut u64).write(7) };
        pool.release(a);
        pool.release(b); // past the limit: its pages are dropped, it goes behind `a`
        assert_eq!(pool.free_count(), 2);
        assert_eq!(pool.take(16 * 1024).unwrap().base, a_base, "resident stacks first");
        let b = pool.take(16 * 1024).unwrap();
        assert_eq!(b.base, b_base);
        // SAFETY: as above; the page was dropped, so it reads as zero again.
        assert_eq!(unsafe { ((b_base - 8) as *const u64).read() }, 0);
    }

    #[test]
    fn guarded_stacks_are_neighbours_with_a_guard_between() {
        let mut pool = StackPool::new(true, 4);
        let a = pool.take(16 * 1024).unwrap();
        let b = pool.take(16 * 1024).unwrap();
        let page = page_size();
        assert_eq!(b.base - a.base, 16 * 1024 + page, "one slot apart");
        assert_eq!(b.overflow_range(), (a.base, a.base + page), "b's guard sits on a's top");
        assert!(a.is_guarded() && b.is_guarded());
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
