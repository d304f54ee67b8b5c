//! The run queue's ring buffer: a FIFO of `Copy` items with a power-of-two capacity.
//!
//! `VecDeque` would do, but every yield pushes once and pops once, and its wrap-around
//! arithmetic and length bookkeeping were an eighth of a yield's instructions. Here the head and
//! tail are free-running counters and an index is `counter & mask`: a push or a pop is a few
//! instructions and one branch.

/// A growable FIFO ring of `Copy` items.
pub(crate) struct Ring<T: Copy> {
    /// Never empty; `buf.len()` is a power of two.
    buf: Vec<T>,
    /// `buf.len() - 1`, kept so that a push or pop does not work it out.
    mask: usize,
    /// Counter of the front item; wraps around.
    head: usize,
    /// Counter one past the back item; `tail - head` items are queued.
    tail: usize,
}

impl<T: Copy> Ring<T> {
    /// An empty ring with room for 64 items; `fill` is any value of `T`, for the free slots.
    pub(crate) fn new(fill: T) -> Ring<T> {
        Ring { buf: vec![fill; 64], mask: 63, head: 0, tail: 0 }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    #[inline]
    fn mask(&self) -> usize {
        self.mask
    }

    #[inline]
    pub(crate) fn push_back(&mut self, item: T) {
        if self.len() > self.mask {
            self.grow(item);
        }
        let at = self.tail & self.mask();
        // SAFETY: `mask` is `buf.len() - 1` (`buf.len()` a power of two), so `at < buf.len()`.
        unsafe { *self.buf.get_unchecked_mut(at) = item };
        self.tail = self.tail.wrapping_add(1);
    }

    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        // SAFETY: `mask` is `buf.len() - 1` (`buf.len()` a power of two), so the masked index
        // is in bounds.
        let item = unsafe { *self.buf.get_unchecked(self.head & self.mask()) };
        self.head = self.head.wrapping_add(1);
        Some(item)
    }

    /// `pop_front`, with the number of items popped from the front so far, this one included
    /// (wrapping): a free count of the pops.
    #[inline]
    pub(crate) fn pop_front_counted(&mut self) -> Option<(T, usize)> {
        let item = self.pop_front()?;
        Some((item, self.head))
    }

    /// The item at position `i` from the front, if there are that many.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<T> {
        if i >= self.len() {
            return None;
        }
        // SAFETY: `mask` is `buf.len() - 1` (`buf.len()` a power of two), so the masked index
        // is in bounds; `i < len()`, so an item is queued there.
        Some(unsafe { *self.buf.get_unchecked(self.head.wrapping_add(i) & self.mask()) })
    }

    /// Removes the item at position `i` from the front, putting the back item in its place
    /// (`VecDeque::swap_remove_back`). `i` must be less than `len()`.
    pub(crate) fn swap_remove(&mut self, i: usize) -> T {
        assert!(i < self.len(), "ring index out of range");
        let mask = self.mask();
        let at = self.head.wrapping_add(i) & mask;
        self.tail = self.tail.wrapping_sub(1);
        let item = self.buf[at];
        self.buf[at] = self.buf[self.tail & mask];
        item
    }

    /// Doubles the capacity. The counters keep counting: each item moves to where its counter
    /// points under the new mask. `fill` is any value of `T`, for the slots not in use.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, fill: T) {
        let capacity = self.buf.len() * 2;
        let mut buf = vec![fill; capacity];
        let (old_mask, new_mask) = (self.mask(), capacity - 1);
        for i in 0..self.len() {
            let at = self.head.wrapping_add(i);
            buf[at & new_mask] = self.buf[at & old_mask];
        }
        self.buf = buf;
        self.mask = new_mask;
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;
    use crate::rng::Rng;
    use std::collections::VecDeque;

    #[test]
    fn pops_are_counted_across_growth() {
        let mut ring = Ring::new(0);
        for i in 0..1000 {
            ring.push_back(i);
            if i % 3 == 0 {
                ring.pop_front();
            }
        }
        let popped = 334;
        assert_eq!(ring.pop_front_counted(), Some((popped, popped + 1)));
    }

    #[test]
    fn behaves_like_a_vecdeque_across_growth_and_wrap_around() {
        let mut ring = Ring::new(0);
        let mut model = VecDeque::new();
        let mut rng = Rng::new(1);
        for step in 0..100_000u64 {
            match rng.below(7) {
                0..=2 => {
                    ring.push_back(step);
                    model.push_back(step);
                }
                3..=5 => {
                    assert_eq!(ring.get(0), model.front().copied());
                    assert_eq!(ring.pop_front(), model.pop_front());
                }
                _ if !model.is_empty() => {
                    let i = rng.below(model.len() as u64) as usize;
                    assert_eq!(Some(ring.swap_remove(i)), model.swap_remove_back(i));
                }
                _ => {}
            }
            assert_eq!(ring.len(), model.len());
            assert_eq!(ring.get(model.len() / 2), model.get(model.len() / 2).copied());
            assert_eq!(ring.get(model.len()), None);
        }
        while let Some(item) = model.pop_front() {
            assert_eq!(ring.pop_front(), Some(item));
        }
        assert!(ring.is_empty());
        assert_eq!(ring.pop_front(), None);
    }
}
