//! The stack pool: chunks, the stacks carved from them, and the free lists.
//!
//! A chunk is reserved in one `mmap` and carved one slot at a time as spawns need new stacks
//! (one system call per stack, so a failure comes exactly at the stack that cannot be had); a
//! finished coroutine's stack goes back to a free list of its size and the next spawn takes it
//! from there. How a slot is guarded depends on the pool's [`Guards`] (see the parent module).
//! Chunks are unmapped only with the pool.

use std::io;

use super::{
    guard_regions_failed, map, page_size, too_large, usable_size, Guards, Stack, CANARY_SHIFT,
    MADV_GUARD_INSTALL,
};
use crate::maps::{self, MapBudget, MapLimit, Refused};

/// Stacks per chunk of guard pages and of unguarded stacks, and in the first chunk of guard
/// regions of a size.
pub(super) const CHUNK_STACKS: usize = 64;

/// Most bytes of address space in one chunk of guard regions: the chunks of a size double from
/// [`CHUNK_STACKS`] slots up to this, so a million 64 KiB stacks take about 70 chunks.
const REGION_CHUNK_MAX: usize = 1 << 30;

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
    /// Slots it has.
    slots: usize,
    /// Slots carved so far; the rest are untouched (guard regions) or still `PROT_NONE`.
    carved: usize,
    /// Mapped writable, for guard regions (else `PROT_NONE`, for guard pages).
    regions: bool,
}

/// The free stacks of one size.
struct SizeClass {
    size: usize,
    /// Free stacks whose touched pages are still resident; reused first, most recent first.
    resident: Vec<Stack>,
    /// Free stacks whose pages were given back to the kernel.
    released: Vec<Stack>,
    /// Slots of the next chunk of guard regions of this size (doubling, see
    /// [`REGION_CHUNK_MAX`]); 0 before the first.
    next_chunk: usize,
}

/// Free stacks by size, handed out again before any new memory is made writable.
pub(crate) struct StackPool {
    /// Free stacks by size; programs use one or two sizes, so a short list is fastest.
    free: Vec<SizeClass>,
    /// Free guarded stacks per size whose memory stays resident; past it, released stacks give
    /// their pages back (they stay in the free list: chunk memory is never unmapped singly).
    limit: usize,
    guards: Guards,
    chunks: Vec<Chunk>,
    /// Guarded chunks with uncarved slots, by stack size.
    open: Vec<OpenChunk>,
    /// Guard pages: the mappings the pool may still make, from the first carve on.
    budget: Option<MapBudget>,
    /// The error handed out at the map limit, made in advance so that hitting the limit
    /// allocates nothing (see [`crate::maps`]); made again by the next carve that succeeds.
    spare_error: Option<io::Error>,
}

impl StackPool {
    pub(crate) fn new(guards: Guards, limit: usize) -> StackPool {
        StackPool {
            free: Vec::new(),
            limit,
            guards,
            chunks: Vec::new(),
            open: Vec::new(),
            budget: None,
            spare_error: Some(MapLimit::error()),
        }
    }

    /// How this pool guards its stacks (guard pages from the moment a guard region failed).
    pub(crate) fn guards(&self) -> Guards {
        self.guards
    }

    /// A stack of `usable_size(requested)` bytes: reused if one is free, else newly carved.
    /// `InvalidInput` past [`MAX_STACK_SIZE`](super::MAX_STACK_SIZE); at the map limit, the error of [`crate::maps`].
    #[inline]
    pub(crate) fn take(&mut self, requested: usize) -> io::Result<Stack> {
        let size = usable_size(requested)?;
        if let Some(class) = self.free.iter_mut().find(|c| c.size == size) {
            if let Some(stack) = class.resident.pop().or_else(|| class.released.pop()) {
                return Ok(stack);
            }
        }
        self.carve(size)
    }

    #[cold]
    #[inline(never)]
    fn carve(&mut self, size: usize) -> io::Result<Stack> {
        let stack = match self.guards {
            Guards::Unguarded => {
                self.carve_unguarded(size)?;
                let class = self.class(size);
                class.resident.pop().expect("a chunk was just carved")
            }
            Guards::Regions | Guards::Pages => self.carve_guarded(size)?,
        };
        if self.spare_error.is_none() {
            self.spare_error = Some(MapLimit::error());
        }
        Ok(stack)
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
                self.free.push(SizeClass {
                    size,
                    resident: Vec::new(),
                    released: Vec::new(),
                    next_chunk: 0,
                });
                self.free.last_mut().expect("just pushed")
            }
        }
    }

    /// Guards the next slot of an open chunk of `size` (mapping a chunk if none is open) and
    /// returns it as a stack: one system call per stack, so a failure comes exactly at the
    /// stack that cannot be had. With guard pages, asks the budget first.
    fn carve_guarded(&mut self, size: usize) -> io::Result<Stack> {
        let page = page_size();
        let slot = size + page; // no overflow: size <= MAX_STACK_SIZE
        if self.guards == Guards::Pages {
            // Two for the stack split out of its chunk, one for a chunk mapped for it.
            let budget = self.budget.get_or_insert_with(MapBudget::new);
            if let Err(refused) = budget.admit(3) {
                return Err(self.map_limit(refused));
            }
        }
        let open = match self.open.iter().position(|c| c.size == size) {
            Some(i) => i,
            None => self.open_chunk(size, slot)?,
        };
        let chunk = &self.open[open];
        let start = chunk.addr + chunk.carved * slot;
        if chunk.regions {
            // SAFETY: [start, start + page) is the first page of an uncarved slot of a
            // writable chunk this pool mapped; nothing refers to it.
            let rc = unsafe { libc::madvise(start as *mut libc::c_void, page, MADV_GUARD_INSTALL) };
            if rc != 0 {
                self.guard_region_failed(start)?;
            }
        } else {
            // SAFETY: [start + page, start + slot) is the usable part of an uncarved slot inside
            // a chunk this pool reserved; nothing else refers to it.
            let rc = unsafe {
                libc::mprotect(
                    (start + page) as *mut libc::c_void,
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            if rc != 0 {
                return Err(self.map_failed(io::Error::last_os_error(), size));
            }
        }
        let chunk = &mut self.open[open];
        chunk.carved += 1;
        if chunk.carved == chunk.slots {
            self.open.swap_remove(open);
        }
        Ok(Stack::new(start + slot, size, true))
    }

    /// Maps a chunk for guarded stacks of `size` in slots of `slot` bytes; returns its index
    /// in `open`.
    fn open_chunk(&mut self, size: usize, slot: usize) -> io::Result<usize> {
        let regions = self.guards == Guards::Regions;
        // A chunk holds CHUNK_STACKS slots, or as many as fit in REGION_CHUNK_MAX (at least
        // one); chunks of guard regions double from there up to REGION_CHUNK_MAX.
        let most = (REGION_CHUNK_MAX / slot).max(1);
        let first = CHUNK_STACKS.min(most);
        let slots = if regions {
            let class = self.class(size);
            let slots = if class.next_chunk == 0 { first } else { class.next_chunk };
            class.next_chunk = slots.saturating_mul(2).min(most);
            slots
        } else {
            first
        };
        let prot = if regions { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_NONE };
        let len = slot.checked_mul(slots).ok_or_else(|| too_large(size))?;
        let addr = map(len, prot).map_err(|e| self.map_failed(e, size))?;
        self.chunks.push(Chunk { addr, len });
        self.open.push(OpenChunk { size, addr, slots, carved: 0, regions });
        Ok(self.open.len() - 1)
    }

    /// A guard region would not install at `start` although the kernel has them (memory
    /// locked with `mlockall`, say): guards it with a `PROT_NONE` page instead, and from now
    /// on this pool, and every new one in the process, uses guard pages.
    #[cold]
    fn guard_region_failed(&mut self, start: usize) -> io::Result<()> {
        guard_regions_failed();
        self.guards = Guards::Pages;
        let page = page_size();
        // SAFETY: as for the guard region: the first page of an uncarved slot of our chunk.
        let rc = unsafe { libc::mprotect(start as *mut libc::c_void, page, libc::PROT_NONE) };
        if rc != 0 {
            return Err(self.map_failed(io::Error::last_os_error(), page));
        }
        Ok(())
    }

    /// Maps one chunk of [`CHUNK_STACKS`] unguarded stacks of `size` and frees them into the pool.
    ///
    /// Layout: a `PROT_NONE` page, one spare page, then the stacks back to back, each shifted
    /// down by [`CANARY_SHIFT`] bytes from a page boundary. So the canary (the lowest word of
    /// stack `i`) sits in the same page as the top of stack `i - 1`, which that stack's
    /// coroutine touches anyway, and the canary of stack 0 in the spare page. A parked coroutine
    /// then holds the pages its frames touched and nothing more; with the canaries on pages of
    /// their own, each stack held one more page (4 KiB) for its canary alone. The `PROT_NONE`
    /// page stops a runaway overflow at the end of the chunk, with a fault the overflow handler
    /// reports, rather than in whatever memory lies below.
    fn carve_unguarded(&mut self, size: usize) -> io::Result<()> {
        let page = page_size();
        let len = size.checked_mul(CHUNK_STACKS).and_then(|l| l.checked_add(2 * page));
        let len = len.ok_or_else(|| too_large(size))?;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let addr = map(len, rw).map_err(|e| self.map_failed(e, size))?;
        self.chunks.push(Chunk { addr, len });
        // SAFETY: the first page of the chunk just mapped, which no stack includes.
        if unsafe { libc::mprotect(addr as *mut libc::c_void, page, libc::PROT_NONE) } != 0 {
            return Err(self.map_failed(io::Error::last_os_error(), size));
        }
        let list = &mut self.class(size).resident;
        // Hand out the highest stack first, so a chunk fills top down.
        for i in 0..CHUNK_STACKS {
            let base = addr + 2 * page + (i + 1) * size - CANARY_SHIFT;
            let stack = Stack::new(base, size, false);
            stack.write_canary();
            list.push(stack);
        }
        Ok(())
    }

    /// The error for a failed `mmap` or `mprotect`: at the map limit (ENOMEM with the mappings
    /// counted near `vm.max_map_count`), the one [`crate::maps`] explains; else what the
    /// kernel said.
    #[cold]
    fn map_failed(&mut self, err: io::Error, size: usize) -> io::Error {
        if err.raw_os_error() == Some(libc::ENOMEM) {
            let refused = match &mut self.budget {
                Some(budget) => budget.recount(),
                None => {
                    let mut buf = [0u8; 512];
                    let maps = maps::count_mappings(&mut buf);
                    maps.zip(maps::max_map_count()).map(|(maps, limit)| Refused { maps, limit })
                }
            };
            if let Some(refused) = refused.filter(|r| r.maps.saturating_add(2) >= r.limit) {
                return self.map_limit(refused);
            }
        }
        io::Error::new(err.kind(), format!("cannot map a {size}-byte coroutine stack: {err}"))
    }

    /// The map-limit error, filled in: the spare one if the pool has it.
    #[cold]
    fn map_limit(&mut self, refused: Refused) -> io::Error {
        let per_stack = if self.guards == Guards::Pages { 2 } else { 0 };
        let error = self.spare_error.take().unwrap_or_else(MapLimit::error);
        MapLimit::fill(error, refused, per_stack)
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
    use crate::stack::{guard_regions_available, touched_depth, MAX_STACK_SIZE};

    /// Writes a byte `depth` bytes below the top of `stack`.
    fn touch(stack: &Stack, depth: usize) {
        assert!(depth <= stack.size());
        // SAFETY: inside the stack's usable part, which the test owns (no coroutine runs on it).
        unsafe { ((stack.base() - depth) as *mut u8).write_volatile(1) };
    }

    fn mappings() -> usize {
        maps::count_mappings(&mut [0u8; 4096]).unwrap()
    }

    /// Both guarded pools, or only guard pages where the kernel has no guard regions.
    fn guarded_kinds() -> Vec<Guards> {
        if guard_regions_available() {
            vec![Guards::Regions, Guards::Pages]
        } else {
            vec![Guards::Pages]
        }
    }

    #[test]
    fn absurd_sizes_are_invalid_input() {
        for size in [MAX_STACK_SIZE + 1, 1 << 62, usize::MAX] {
            let err = usable_size(size).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{size}");
            assert!(err.to_string().contains("MAX_STACK_SIZE"), "{err}");
            let mut pool = StackPool::new(Guards::Regions, 4);
            assert_eq!(pool.take(size).err().unwrap().kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn released_stacks_are_reused() {
        for guards in guarded_kinds() {
            let mut pool = StackPool::new(guards, 4);
            let a = pool.take(32 * 1024).unwrap();
            let base = a.base;
            pool.release(a);
            assert_eq!(pool.free_count(), 1);
            let b = pool.take(32 * 1024).unwrap();
            assert_eq!(b.base, base, "{guards:?}");
            assert_eq!(pool.free_count(), 0);
        }
    }

    #[test]
    fn stacks_past_the_pool_limit_give_their_memory_back() {
        for guards in guarded_kinds() {
            let mut pool = StackPool::new(guards, 1);
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
            assert_eq!(unsafe { ((b_base - 8) as *const u64).read() }, 0, "{guards:?}");
            assert_eq!(touched_depth(b.base(), b.size()), page_size(), "only the page just read");
        }
    }

    #[test]
    fn guarded_stacks_are_neighbours_with_a_guard_between() {
        for guards in guarded_kinds() {
            let mut pool = StackPool::new(guards, 4);
            let a = pool.take(16 * 1024).unwrap();
            let b = pool.take(16 * 1024).unwrap();
            let page = page_size();
            assert_eq!(b.base - a.base, 16 * 1024 + page, "one slot apart");
            assert_eq!(b.overflow_range(), (a.base, a.base + page), "b's guard sits on a's top");
            assert!(a.is_guarded() && b.is_guarded());
        }
    }

    #[test]
    fn guard_regions_make_no_mappings_and_guard_pages_two_per_stack() {
        if !guard_regions_available() {
            return;
        }
        // Other test threads map and unmap meanwhile (thread stacks, runtimes): the margins
        // are wide, and the two figures are far apart.
        let count = 1000;
        let before = mappings();
        let mut regions = StackPool::new(Guards::Regions, 4);
        let kept: Vec<Stack> = (0..count).map(|_| regions.take(16 * 1024).unwrap()).collect();
        let with_regions = mappings().saturating_sub(before);
        assert!(with_regions < 50, "{with_regions} new mappings for {count} guard regions");
        assert!(regions.chunks.len() <= 5, "chunks double: {}", regions.chunks.len());
        drop(kept);
        drop(regions);

        let before = mappings();
        let mut pages = StackPool::new(Guards::Pages, 4);
        let kept: Vec<Stack> = (0..count).map(|_| pages.take(16 * 1024).unwrap()).collect();
        let with_pages = mappings().saturating_sub(before);
        assert!(with_pages > 2 * count - 50, "{with_pages} new mappings for {count} guard pages");
        drop(kept);
    }

    #[test]
    fn touched_depth_is_the_lowest_resident_page() {
        let page = page_size();
        let mut kinds = guarded_kinds();
        kinds.push(Guards::Unguarded);
        for guards in kinds {
            let mut pool = StackPool::new(guards, 4);
            let stack = pool.take(64 * 1024).unwrap();
            let (base, size) = (stack.base(), stack.size());
            touch(&stack, 1);
            assert_eq!(touched_depth(base, size), base - (base - 1) / page * page, "{guards:?}");
            touch(&stack, 20_000);
            let depth = touched_depth(base, size);
            assert!((20_000..20_000 + page).contains(&depth), "{guards:?}: {depth}");
            // A coroutine that used all of it touched every page on the way down.
            for depth in (1..=size).step_by(page).chain([size]) {
                touch(&stack, depth);
            }
            assert!(touched_depth(base, size) >= size - page, "{guards:?}");
            assert!(touched_depth(base, size) <= size, "{guards:?}");
        }
    }

    #[test]
    fn unguarded_stacks_come_from_chunks_with_canaries() {
        let mut pool = StackPool::new(Guards::Unguarded, 1);
        let a = pool.take(16 * 1024).unwrap();
        assert!(!a.is_guarded());
        assert!(a.canary_intact());
        assert_eq!(pool.free_count(), CHUNK_STACKS - 1);
        let (lo, hi) = a.overflow_range();
        assert_eq!(hi, a.base());
        assert!(lo < a.bottom() - 16 * 1024, "the range reaches below the stack");
        pool.release(a);
        assert_eq!(pool.free_count(), CHUNK_STACKS);
    }

    #[test]
    fn the_map_limit_is_an_error_made_in_advance() {
        let mut pool = StackPool::new(Guards::Pages, 4);
        let first = pool.take(16 * 1024).unwrap();
        // Pretend the process is at the limit whatever it has: other test threads map and
        // unmap meanwhile (hundreds of stacks at a time), so a limit taken from a count of
        // now let the carve through about one run in six.
        let budget = pool.budget.as_mut().expect("guard pages keep a budget");
        *budget = MapBudget::with_limit(maps::HEADROOM + 2);
        let err = pool.take(16 * 1024).err().expect("refused at the budget");
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        let text = err.to_string();
        assert!(text.contains("vm.max_map_count"), "{text}");
        assert!(text.contains("costs two"), "{text}");
        assert!(pool.spare_error.is_none(), "the spare error was handed out");
        // The pool still serves stacks it has.
        pool.release(first);
        let again = pool.take(16 * 1024).unwrap();
        pool.release(again);
        // Once a carve succeeds, a spare is made again.
        *pool.budget.as_mut().unwrap() = MapBudget::with_limit(usize::MAX);
        let reused = pool.take(16 * 1024).unwrap();
        assert!(pool.spare_error.is_none(), "a reused stack carves nothing");
        let carved = pool.take(16 * 1024).unwrap();
        assert!(pool.spare_error.is_some());
        pool.release(reused);
        pool.release(carved);
    }

    #[test]
    fn enomem_near_the_limit_is_the_map_limit_error_and_elsewhere_plain() {
        let mut pool = StackPool::new(Guards::Pages, 4);
        let stack = pool.take(16 * 1024).unwrap(); // the budget is made at the first carve
                                                   // Other test threads map and unmap meanwhile: a limit below any count.
        *pool.budget.as_mut().unwrap() = MapBudget::with_limit(1);
        let enomem = || io::Error::from_raw_os_error(libc::ENOMEM);
        let err = pool.map_failed(enomem(), 16 * 1024);
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        assert!(err.to_string().contains("vm.max_map_count"), "{err}");
        assert!(pool.spare_error.is_none(), "the error made in advance was used");
        // Far from the limit, ENOMEM is what the kernel said.
        *pool.budget.as_mut().unwrap() = MapBudget::with_limit(usize::MAX / 2);
        let err = pool.map_failed(enomem(), 16 * 1024);
        let text = err.to_string();
        assert!(text.starts_with("cannot map a 16384-byte coroutine stack: "), "{text}");
        assert!(!text.contains("vm.max_map_count"), "{text}");
        pool.release(stack);
    }
}
