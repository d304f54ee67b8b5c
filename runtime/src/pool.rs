//! Worker pools: at most N coroutines at once (Python's `ThreadPoolExecutor`, gevent's `Pool`).
//!
//! ```
//! use std::time::Duration;
//! use spindle_runtime::pool::Pool;
//!
//! spindle_runtime::run(|| {
//!     let pool = Pool::new(3);
//!     // `map` keeps at most 3 running and yields results in input order.
//!     let squares: Vec<u64> = pool
//!         .map(1..=10u64, |n| {
//!             spindle_runtime::sleep(Duration::from_millis(10 - n));
//!             n * n
//!         })
//!         .map(Result::unwrap)
//!         .collect();
//!     assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
//!
//!     let h = pool.spawn(|| "done");
//!     pool.join();
//!     assert_eq!(h.join().unwrap(), "done");
//! });
//! ```
//!
//! [`Pool::spawn`] parks the caller while the pool is full, so a producer that spawns faster
//! than the pool works is slowed to its pace (backpressure). Waiting spawners get free slots in
//! the order they started waiting.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use crate::coroutine::{Builder, JoinError, JoinHandle};
use crate::park::ObjectId;
use crate::sync::{wait, Waiters};

/// What a pool's coroutines and its handle share.
struct Shared {
    size: usize,
    /// Coroutines of this pool running (or about to), at most `size`.
    active: Cell<usize>,
    /// Spawners waiting for a free slot.
    slot_waiters: Waiters,
    /// Its name in park reasons (`Pool#3`).
    id: ObjectId,
    /// Coroutines waiting in `join` for `active` to reach zero.
    idle_waiters: Waiters,
}

/// Frees a slot when a pooled coroutine ends, however it ends.
struct SlotGuard(Rc<Shared>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let shared = &self.0;
        shared.active.set(shared.active.get() - 1);
        shared.slot_waiters.wake_one();
        if shared.active.get() == 0 {
            shared.idle_waiters.wake_all();
        }
    }
}

/// A bound on how many coroutines run at once. Cloning gives another handle to the same pool.
#[derive(Clone)]
pub struct Pool {
    shared: Rc<Shared>,
    builder: Builder,
}

impl Pool {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `Pool#3` (see [`ObjectId`]).
    pub fn label(&self, label: &'static str) {
        self.shared.id.label(label);
    }

    /// A pool running at most `size` coroutines at once.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn new(size: usize) -> Pool {
        Pool::with_builder(size, Builder::new())
    }

    /// A pool whose coroutines are spawned with `builder`'s settings (name, stack size, ...).
    pub fn with_builder(size: usize, builder: Builder) -> Pool {
        assert!(size > 0, "spindle: a Pool needs a size of at least 1");
        Pool {
            shared: Rc::new(Shared {
                size,
                active: Cell::new(0),
                slot_waiters: Waiters::new(),
                id: ObjectId::new("Pool"),
                idle_waiters: Waiters::new(),
            }),
            builder,
        }
    }

    /// Maximum number of coroutines running at once.
    pub fn size(&self) -> usize {
        self.shared.size
    }

    /// Coroutines of this pool running now.
    pub fn active(&self) -> usize {
        self.shared.active.get()
    }

    /// Free slots now.
    pub fn free(&self) -> usize {
        self.shared.size - self.shared.active.get()
    }

    /// Spawns `f` in the pool, first parking until a slot is free.
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let shared = &self.shared;
        while shared.active.get() >= shared.size {
            wait!(shared.slot_waiters, shared.id.reason("Pool::spawn"), None);
        }
        self.start(f)
    }

    /// Spawns `f` if a slot is free now; gives `f` back otherwise.
    pub fn try_spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, F>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        if self.shared.active.get() >= self.shared.size {
            return Err(f);
        }
        Ok(self.start(f))
    }

    /// Same as [`Pool::spawn`], under the name `concurrent.futures` users know.
    #[track_caller]
    pub fn submit<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.spawn(f)
    }

    #[track_caller]
    fn start<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.shared.active.set(self.shared.active.get() + 1);
        let guard = SlotGuard(self.shared.clone());
        let spawned = self.builder.clone().spawn(move || {
            let _guard = guard;
            f()
        });
        // On error the closure, and with it the guard, was dropped: the slot is free again.
        spawned.unwrap_or_else(|e| panic!("spindle: Pool::spawn failed: {e}"))
    }

    /// Applies `f` to every item, at most `size` at once, and yields the results in input
    /// order as they become available (Python's `Executor.map`). A panic in `f` comes out as
    /// that item's `Err(JoinError::Panicked)`; the other items still run.
    #[track_caller]
    pub fn map<I, F, T>(&self, items: I, f: F) -> Map<I::IntoIter, F, T>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> T + Clone + 'static,
        T: 'static,
    {
        Map { pool: self.clone(), items: items.into_iter(), f, running: VecDeque::new() }
    }

    /// Waits until no coroutine of this pool is running.
    #[track_caller]
    pub fn join(&self) {
        let shared = &self.shared;
        while shared.active.get() > 0 {
            wait!(shared.idle_waiters, shared.id.reason("Pool::join"), None);
        }
    }
}

/// The iterator of [`Pool::map`].
pub struct Map<I, F, T> {
    pool: Pool,
    items: I,
    f: F,
    /// Spawned, not yet yielded, in input order.
    running: VecDeque<JoinHandle<T>>,
}

impl<I, F, T> Iterator for Map<I, F, T>
where
    I: Iterator,
    I::Item: 'static,
    F: Fn(I::Item) -> T + Clone + 'static,
    T: 'static,
{
    type Item = Result<T, JoinError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Keep the pool busy: start items while slots are free, and at least one when none
        // is running, so this iterator makes progress even when other work fills the pool.
        while self.running.len() < self.pool.size()
            && (self.running.is_empty() || self.pool.free() > 0)
        {
            let Some(item) = self.items.next() else { break };
            let f = self.f.clone();
            self.running.push_back(self.pool.spawn(move || f(item)));
        }
        self.running.pop_front().map(JoinHandle::join)
    }
}
