//! Coroutine-local storage: each coroutine sees its own value (Python's `threading.local`).
//!
//! ```
//! use std::cell::Cell;
//! spindle_runtime::coroutine_local! {
//!     static REQUESTS: Cell<u32> = Cell::new(0);
//! }
//! spindle_runtime::run(|| {
//!     let h = spindle_runtime::spawn(|| {
//!         REQUESTS.with(|r| r.set(r.get() + 5));
//!         spindle_runtime::yield_now();
//!         REQUESTS.with(|r| r.get())
//!     });
//!     REQUESTS.with(|r| r.set(r.get() + 1));
//!     assert_eq!(h.join().unwrap(), 5);
//!     assert_eq!(REQUESTS.with(|r| r.get()), 1);
//! });
//! ```
//!
//! A value is made by its initialiser the first time a coroutine touches it, and dropped when
//! that coroutine finishes, on its own stack (so its destructor may still use the runtime).
//! `std::thread_local!` inside a coroutine is shared by every coroutine of the thread: use
//! this instead for per-coroutine state.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::context;

/// Index source for local keys; each key takes one on first use.
static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

/// A key for a coroutine-local value; made by [`coroutine_local!`](crate::coroutine_local).
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
    /// Index into each coroutine's local table, plus one; 0 until first use.
    index: AtomicUsize,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey { init, index: AtomicUsize::new(0) }
    }

    fn index(&self) -> usize {
        let index = self.index.load(Ordering::Acquire);
        if index != 0 {
            return index - 1;
        }
        let fresh = NEXT_INDEX.fetch_add(1, Ordering::Relaxed) + 1;
        match self.index.compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => fresh - 1,
            Err(raced) => raced - 1,
        }
    }

    /// Calls `f` with the current coroutine's value, making it first if needed.
    ///
    /// # Panics
    /// Outside a coroutine of a running spindle runtime.
    #[track_caller]
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let index = self.index();
        let value =
            context::expect_core("coroutine_local access", |core| core.local(index, self.init));
        // SAFETY: `value` points into a Box owned by the current coroutine's record, which is
        // neither replaced nor dropped until the coroutine's body ends; `f` runs inside that
        // body, so the box outlives this borrow. Only shared references are ever made.
        f(unsafe { &*value })
    }
}

/// Declares coroutine-local statics, as `std::thread_local!` declares thread-locals.
///
/// ```
/// spindle_runtime::coroutine_local! {
///     /// Per-coroutine scratch buffer.
///     pub static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::new());
/// }
/// ```
#[macro_export]
macro_rules! coroutine_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])* $vis static $name: $crate::LocalKey<$t> = $crate::LocalKey::new({
            fn init() -> $t {
                $init
            }
            init
        });
        $crate::coroutine_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $crate::coroutine_local!($(#[$attr])* $vis static $name: $t = $init;);
    };
}
