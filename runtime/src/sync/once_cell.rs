//! [`OnceCell`]: a value initialized once, by the first coroutine that asks.

use std::cell::Cell;
use std::fmt;

use super::{wait, Waiters};
use crate::context;
use crate::park::ObjectId;

/// A cell written once. [`OnceCell::get_or_init`] runs the initializer in the first coroutine
/// that needs the value; others asking meanwhile park until it is ready, even if the
/// initializer parks (reads a socket, sleeps, locks).
///
/// If the initializer panics or its coroutine is cancelled, the cell stays empty and the next
/// waiting coroutine runs its own initializer. An initializer that asks for the same cell
/// panics with a clear message instead of deadlocking.
///
/// ```
/// use std::rc::Rc;
/// use spindle_runtime::sync::OnceCell;
///
/// spindle_runtime::run(|| {
///     let config = Rc::new(OnceCell::new());
///     let c = config.clone();
///     let other = spindle_runtime::spawn(move || *c.get_or_init(|| 1));
///     let mine = *config.get_or_init(|| {
///         spindle_runtime::yield_now(); // the other coroutine asks meanwhile and waits
///         2
///     });
///     assert_eq!((mine, other.join().unwrap()), (2, 2));
/// });
/// ```
pub struct OnceCell<T> {
    /// The value, once initialized.
    value: std::cell::OnceCell<T>,
    /// Id of the coroutine running an initializer right now (`u64::MAX` outside a runtime).
    initializer: Cell<Option<u64>>,
    /// Coroutines parked waiting for the running initializer.
    waiters: Waiters,
    /// Its name in park reasons (`OnceCell#3`).
    id: ObjectId,
}

/// Clears `initializer` and wakes the next waiter if the initializer unwinds.
struct Initializing<'a, T>(&'a OnceCell<T>);

impl<T> Drop for Initializing<'_, T> {
    fn drop(&mut self) {
        self.0.initializer.set(None);
        if self.0.value.get().is_some() {
            self.0.waiters.wake_all();
        } else {
            // Failed: the next waiter tries its own initializer.
            self.0.waiters.wake_one();
        }
    }
}

impl<T> OnceCell<T> {
    /// Names this object `label` in park reasons, deadlock reports and traces: `label#3` rather
    /// than `OnceCell#3` (see [`ObjectId`](crate::park::ObjectId)).
    pub fn label(&self, label: &'static str) {
        self.id.label(label);
    }

    /// An empty cell.
    pub const fn new() -> OnceCell<T> {
        OnceCell {
            value: std::cell::OnceCell::new(),
            initializer: Cell::new(None),
            waiters: Waiters::new(),
            id: ObjectId::new("OnceCell"),
        }
    }

    /// The value, if initialized.
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// Stores `value` if the cell is empty; gives it back otherwise. Waits for an initializer
    /// that is running in another coroutine.
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("the initializer runs once"));
        match value {
            None => Ok(()),
            Some(v) => Err(v),
        }
    }

    /// The value, initializing it with `init` if the cell is empty and nobody is initializing
    /// it; parks while another coroutine's initializer runs.
    ///
    /// # Panics
    /// If `init` asks for this cell (reentrant initialization), or `init` panics.
    #[track_caller]
    pub fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        let me = context::current_id();
        let me = me.unwrap_or(u64::MAX);
        loop {
            if let Some(v) = self.value.get() {
                return v;
            }
            match self.initializer.get() {
                None => {
                    self.initializer.set(Some(me));
                    let running = Initializing(self);
                    let value = init();
                    if self.value.set(value).is_err() {
                        unreachable!("only the initializer writes the cell");
                    }
                    drop(running);
                    return self.value.get().expect("just set");
                }
                Some(id) if id == me => {
                    panic!("OnceCell::get_or_init: the initializer asked for its own cell")
                }
                // Woken when the initializer finished or failed: look again.
                Some(_) => {
                    wait!(self.waiters, self.id.reason("OnceCell::get_or_init"), None);
                }
            }
        }
    }

    /// Consumes the cell and returns the value, if initialized.
    pub fn into_inner(self) -> Option<T> {
        self.value.into_inner()
    }

    /// Takes the value out, leaving the cell empty (`&mut` proves nobody is initializing it).
    pub fn take(&mut self) -> Option<T> {
        self.value.take()
    }
}

impl<T> Default for OnceCell<T> {
    fn default() -> OnceCell<T> {
        OnceCell::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OnceCell").field(&self.value.get()).finish()
    }
}
