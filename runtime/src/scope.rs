//! Scoped coroutines: coroutines that may borrow from the caller's stack.
//!
//! [`scope`] runs a closure that can spawn coroutines borrowing local data, and returns only
//! after every one of them has finished, as `std::thread::scope` does for threads:
//!
//! ```
//! let mut totals = [0u64; 3];
//! let words = vec!["green", "threads", "spin"];
//! spindle_runtime::run(|| {
//!     spindle_runtime::scope(|s| {
//!         for (total, word) in totals.iter_mut().zip(&words) {
//!             s.spawn(move || {
//!                 spindle_runtime::yield_now();
//!                 *total = word.len() as u64;
//!             });
//!         }
//!     });
//! });
//! assert_eq!(totals, [5, 7, 4]);
//! ```
//!
//! Soundness does not depend on the handles: leak one with `mem::forget` and `scope` still
//! waits. If the coroutine calling `scope` is cancelled (or a `time::timeout` around it
//! expires) while it waits, it cancels the scoped coroutines and goes on waiting until they have
//! unwound, then unwinds itself. A panic in a scoped coroutine nobody joins is reported on
//! stderr, as for any coroutine; a panic in the closure itself carries on after the wait.

use std::cell::{Cell, RefCell};
use std::io;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::context::{self, with_core};
use crate::coroutine::{spawn_raw, Builder, Coroutine, JoinError, JoinHandle};
use crate::park::{self, Reason, Wake, Waker};

/// The scope handed to the closure of [`scope`]: spawn borrowing coroutines with it.
pub struct Scope<'scope, 'env: 'scope> {
    /// Scoped coroutines that have not finished.
    running: Cell<usize>,
    /// The coroutine waiting in `scope` for `running` to reach zero.
    waiter: Cell<Option<Waker>>,
    /// Every coroutine spawned here, for cancelling them when the owner is cancelled.
    children: RefCell<Vec<Coroutine>>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// Decrements the scope's count when a scoped coroutine is completely done.
struct Exit<'scope>(&'scope Cell<usize>, &'scope Cell<Option<Waker>>);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
        if self.0.get() == 0 {
            if let Some(w) = self.1.take() {
                w.wake();
            }
        }
    }
}

/// A handle to join a scoped coroutine; it cannot outlive its scope.
pub struct ScopedJoinHandle<'scope, T> {
    inner: JoinHandle<T>,
    scope: PhantomData<&'scope ()>,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the coroutine and returns its value; see [`JoinHandle::join`].
    pub fn join(self) -> Result<T, JoinError> {
        self.inner.join()
    }

    /// True once it has finished.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Cancels it; see [`JoinHandle::cancel`].
    pub fn cancel(&self) {
        self.inner.cancel()
    }

    /// The coroutine this handle joins.
    pub fn coroutine(&self) -> &Coroutine {
        self.inner.coroutine()
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Spawns a coroutine that may borrow anything that outlives the scope.
    ///
    /// # Panics
    /// When no stack can be mapped; see [`Scope::spawn_with`] for the error-returning form.
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + 'scope,
        T: 'scope,
    {
        self.spawn_with(Builder::new(), f).unwrap_or_else(|e| panic!("spindle: spawn failed: {e}"))
    }

    /// Like [`Scope::spawn`] with the settings of `builder` (name, stack size, daemon).
    pub fn spawn_with<F, T>(
        &'scope self,
        builder: Builder,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + 'scope,
        T: 'scope,
    {
        let exit = Exit(&self.running, &self.waiter);
        self.running.set(self.running.get() + 1);
        let spawned = context::expect_core("Scope::spawn", |core| {
            // SAFETY: `f`, `T` and `exit` borrow only data that outlives 'scope, and `scope`
            // does not return (nor unwind) before `running` is back to zero, which happens when
            // `exit` is dropped as the last act of the coroutine.
            unsafe { spawn_raw(core, builder, f, exit) }
        });
        // On error `exit` was dropped with the closure, undoing the count.
        let inner = spawned?;
        self.children.borrow_mut().push(inner.coroutine().clone());
        Ok(ScopedJoinHandle { inner, scope: PhantomData })
    }
}

/// Runs `f` with a [`Scope`] for spawning coroutines that borrow from this stack frame, and
/// waits for all of them before returning `f`'s value.
///
/// # Panics
/// Outside a coroutine of a running spindle runtime; and again with `f`'s panic if it panics
/// (after the wait).
#[track_caller]
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    if !context::in_runtime() {
        context::outside_runtime("scope");
    }
    let scope = Scope {
        running: Cell::new(0),
        waiter: Cell::new(None),
        children: RefCell::new(Vec::new()),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    let mut interrupted = false;
    while scope.running.get() > 0 {
        // Until interrupted, an ordinary park: cancellation and timeouts end it. After that the
        // wait must go on regardless, or the borrowed data would go away under the children.
        let reason = Reason::new("scope: waiting for scoped coroutines");
        let register = |w| scope.waiter.set(Some(w));
        let wake = with_core(|core| {
            if interrupted {
                core.park_shielded(reason, register)
            } else {
                core.park(reason, None, register)
            }
        })
        .expect("checked above");
        if wake == Wake::Cancelled {
            scope.waiter.set(None);
            if !interrupted {
                interrupted = true;
                for child in scope.children.borrow().iter() {
                    child.cancel_inner();
                }
            }
        }
    }
    if interrupted {
        park::unwind();
    }
    match result {
        Ok(value) => value,
        Err(payload) => resume_unwind(payload),
    }
}
