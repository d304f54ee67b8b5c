//! [`Queue`]: Python's `queue.Queue`, `LifoQueue` and `PriorityQueue` for coroutines.

use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use super::{deadline_after, wait, Waiters};
use crate::park::ObjectId;

/// A queue with an optional size limit and Python's task accounting, in FIFO, LIFO or
/// priority order.
///
/// * [`Queue::fifo`] (`queue.Queue`), [`Queue::lifo`] (`queue.LifoQueue`),
///   [`Queue::priority`] (`queue.PriorityQueue`: smallest item first; equal items in the order
///   they were put).
/// * `maxsize` 0 means unbounded, as in Python; otherwise `put` parks while the queue is full.
/// * `put`/`get` park; `*_timeout` give up after a while; `*_nowait` never park. The errors
///   [`Full`] and [`Empty`] are Python's `queue.Full` and `queue.Empty` (`Full` gives the
///   item back).
/// * Every `put` counts an unfinished task; [`Queue::task_done`] marks one finished and
///   [`Queue::join`] parks until none is left (a joinable queue).
///
/// Waiters are woken in FIFO order; an item is not reserved for the woken getter (see the
/// [module docs](super#fairness)).
///
/// ```
/// use std::rc::Rc;
/// use spindle_runtime::sync::Queue;
///
/// spindle_runtime::run(|| {
///     let jobs = Rc::new(Queue::priority(0));
///     for job in [3, 1, 2] {
///         jobs.put(job);
///     }
///     let q = jobs.clone();
///     let worker = spindle_runtime::spawn(move || {
///         let mut done = Vec::new();
///         while let Ok(job) = q.get_nowait() {
///             done.push(job);
///             q.task_done().unwrap();
///         }
///         done
///     });
///     jobs.join(); // parks until every job was marked done
///     assert_eq!(worker.join().unwrap(), [1, 2, 3]);
/// });
/// ```
pub struct Queue<T> {
    /// The items, in the queue's order.
    items: RefCell<Box<dyn Store<T>>>,
    /// Python's `maxsize`: 0 for unbounded.
    maxsize: usize,
    /// Items put and not yet marked done with `task_done`.
    unfinished: Cell<usize>,
    /// Coroutines parked in `get`.
    getters: Waiters,
    /// Its name in park reasons (`Queue#3`).
    id: ObjectId,
    /// Coroutines parked in `put` (bounded queues).
    putters: Waiters,
    /// Coroutines parked in `join`.
    joiners: Waiters,
}

/// `put_nowait`/`put_timeout` failed: the queue is full. The item is inside.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

/// `get_nowait`/`get_timeout` failed: the queue is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Empty;

/// `task_done` was called more times than items were put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskDoneError;

/// The order of a [`Queue`]: where `put` stores and `get` takes.
trait Store<T> {
    fn push(&mut self, item: T);
    fn pop(&mut self) -> Option<T>;
    fn len(&self) -> usize;
}

impl<T> Store<T> for VecDeque<T> {
    fn push(&mut self, item: T) {
        self.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.pop_front()
    }
    fn len(&self) -> usize {
        VecDeque::len(self)
    }
}

impl<T> Store<T> for Vec<T> {
    fn push(&mut self, item: T) {
        Vec::push(self, item);
    }
    fn pop(&mut self) -> Option<T> {
        Vec::pop(self)
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// A priority entry: smallest item first, then first put.
struct Prioritized<T> {
    item: T,
    /// Order of the `put`, to keep equal items FIFO.
    seq: u64,
}

impl<T: Ord> PartialEq for Prioritized<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T: Ord> Eq for Prioritized<T> {}
impl<T: Ord> PartialOrd for Prioritized<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Ord> Ord for Prioritized<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.item.cmp(&other.item).then(self.seq.cmp(&other.seq))
    }
}

/// Min-heap of items, FIFO among equals.
struct PriorityStore<T> {
    heap: BinaryHeap<Reverse<Prioritized<T>>>,
    next_seq: u64,
}

impl<T: Ord> Store<T> for PriorityStore<T> {
    fn push(&mut self, item: T) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Prioritized { item, seq }));
    }
    fn pop(&mut self) -> Option<T> {
        self.heap.pop().map(|Reverse(p)| p.item)
    }
    fn len(&self) -> usize {
        self.heap.len()
    }
}

impl<T: 'static> Queue<T> {
    /// First in, first out (Python's `queue.Queue(maxsize)`); `maxsize` 0 = unbounded.
    pub fn fifo(maxsize: usize) -> Queue<T> {
        Queue::with_store(Box::new(VecDeque::new()), maxsize)
    }

    /// Last in, first out (Python's `queue.LifoQueue(maxsize)`); `maxsize` 0 = unbounded.
    pub fn lifo(maxsize: usize) -> Queue<T> {
        Queue::with_store(Box::new(Vec::new()), maxsize)
    }

    /// Smallest first, FIFO among equal items (Python's `queue.PriorityQueue(maxsize)`);
    /// `maxsize` 0 = unbounded. Use `(priority, item)` tuples or `std::cmp::Reverse` to order
    /// by something else.
    pub fn priority(maxsize: usize) -> Queue<T>
    where
        T: Ord,
    {
        Queue::with_store(Box::new(PriorityStore { heap: BinaryHeap::new(), next_seq: 0 }), maxsize)
    }
}

impl<T> Queue<T> {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `Queue#3` (see [`ObjectId`]).
    pub fn label(&self, label: &'static str) {
        self.id.label(label);
    }

    fn with_store(store: Box<dyn Store<T>>, maxsize: usize) -> Queue<T> {
        Queue {
            items: RefCell::new(store),
            maxsize,
            unfinished: Cell::new(0),
            getters: Waiters::new(),
            id: ObjectId::new("Queue"),
            putters: Waiters::new(),
            joiners: Waiters::new(),
        }
    }

    /// Items in the queue now (Python's `qsize`).
    pub fn qsize(&self) -> usize {
        self.items.borrow().len()
    }

    /// True if no item is in the queue.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// True if the queue is bounded and holds `maxsize` items.
    pub fn full(&self) -> bool {
        self.maxsize > 0 && self.qsize() >= self.maxsize
    }

    /// The size limit; 0 for unbounded.
    pub fn maxsize(&self) -> usize {
        self.maxsize
    }

    /// Items put and not yet marked done.
    pub fn unfinished_tasks(&self) -> usize {
        self.unfinished.get()
    }

    /// Puts an item, parking while the queue is full.
    #[track_caller]
    pub fn put(&self, item: T) {
        if let Err(Full(_)) = self.put_until(item, None) {
            unreachable!("a put without deadline does not time out");
        }
    }

    /// Puts an item if there is room now.
    pub fn put_nowait(&self, item: T) -> Result<(), Full<T>> {
        if self.full() {
            return Err(Full(item));
        }
        self.store(item);
        Ok(())
    }

    /// Like [`Queue::put`], giving up after `timeout` with the item back.
    #[track_caller]
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), Full<T>> {
        self.put_until(item, Some(deadline_after(timeout)))
    }

    /// Takes an item, parking while the queue is empty.
    #[track_caller]
    pub fn get(&self) -> T {
        self.get_until(None).expect("a get without deadline does not time out")
    }

    /// Takes an item if there is one now.
    pub fn get_nowait(&self) -> Result<T, Empty> {
        let item = self.items.borrow_mut().pop().ok_or(Empty)?;
        self.putters.wake_one();
        Ok(item)
    }

    /// Like [`Queue::get`], giving up after `timeout`.
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Empty> {
        self.get_until(Some(deadline_after(timeout)))
    }

    /// Marks one item taken with `get` as processed; when none is left unfinished, wakes
    /// every coroutine in [`Queue::join`]. `Err` if called more times than items were put
    /// (Python raises `ValueError`).
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        let n = self.unfinished.get();
        if n == 0 {
            return Err(TaskDoneError);
        }
        self.unfinished.set(n - 1);
        if n == 1 {
            self.joiners.wake_all();
        }
        Ok(())
    }

    /// Parks until every item put has been marked done with `task_done`.
    #[track_caller]
    pub fn join(&self) {
        self.join_until(None);
    }

    /// Like [`Queue::join`], giving up after `timeout`: returns whether all tasks were done.
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_until(Some(deadline_after(timeout)))
    }

    fn store(&self, item: T) {
        self.items.borrow_mut().push(item);
        self.unfinished.set(self.unfinished.get() + 1);
        self.getters.wake_one();
    }

    #[track_caller]
    fn put_until(&self, mut item: T, deadline: Option<Instant>) -> Result<(), Full<T>> {
        loop {
            match self.put_nowait(item) {
                Ok(()) => return Ok(()),
                Err(Full(i)) => item = i,
            }
            if !wait!(self.putters, self.id.reason("Queue::put"), deadline) {
                return Err(Full(item));
            }
        }
    }

    #[track_caller]
    fn get_until(&self, deadline: Option<Instant>) -> Result<T, Empty> {
        loop {
            if let Ok(item) = self.get_nowait() {
                return Ok(item);
            }
            if !wait!(self.getters, self.id.reason("Queue::get"), deadline) {
                return Err(Empty);
            }
        }
    }

    #[track_caller]
    fn join_until(&self, deadline: Option<Instant>) -> bool {
        if self.unfinished.get() == 0 {
            return true;
        }
        // Timed out: the last task may still have been marked done meanwhile.
        wait!(self.joiners, self.id.reason("Queue::join"), deadline) || self.unfinished.get() == 0
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.qsize())
            .field("maxsize", &self.maxsize)
            .field("unfinished_tasks", &self.unfinished.get())
            .finish()
    }
}

impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Full(..)")
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is full")
    }
}

impl fmt::Display for Empty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is empty")
    }
}

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl<T> std::error::Error for Full<T> {}
impl std::error::Error for Empty {}
impl std::error::Error for TaskDoneError {}
