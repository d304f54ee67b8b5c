//! The words of park and wake: why a park ended ([`Wake`]), what a parked coroutine waits on
//! ([`Reason`]) and the handle that ends one park ([`Waker`]).
//!
//! Plain data, importing nothing of the runtime, so that the drivers (the reactor, the
//! remote-wake queue) and the task record can name them without reaching the scheduler. What a
//! [`Waker`] *does* lives with the scheduler's park/wake code (`crate::park`).

use std::fmt;
use std::marker::PhantomData;

/// Why a [`park`](crate::park::park) returned.
///
/// More reasons may be added: a `match` outside this crate needs a `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wake {
    /// A [`Waker`] for this park was woken.
    Notified,
    /// The park's deadline passed before anyone woke it.
    TimedOut,
    /// The coroutine is being cancelled or an enclosing `time::timeout` expired: clean up and
    /// call [`unwind`](crate::park::unwind).
    Cancelled,
}

/// What a parked coroutine waits on: a static description and, optionally, a number that tells
/// instances apart (a coroutine id, a file descriptor, an address). Shown in deadlock reports.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    /// What the coroutine called, e.g. `"Mutex::lock"`, `"TcpStream::read"`, `"sleep"`.
    pub what: &'static str,
    /// Which object, when that helps: `Some(fd)`, `Some(coroutine id)`, `Some(address)`.
    pub on: Option<u64>,
}

impl Reason {
    /// A reason without an object.
    pub const fn new(what: &'static str) -> Reason {
        Reason { what, on: None }
    }

    /// A reason naming which object is waited on.
    pub const fn on(what: &'static str, on: u64) -> Reason {
        Reason { what, on: Some(on) }
    }

    /// A reason naming the object by its address (for locks and channels).
    pub fn at<T: ?Sized>(what: &'static str, object: &T) -> Reason {
        Reason { what, on: Some(object as *const T as *const () as usize as u64) }
    }

    pub(crate) const RUNNING: Reason = Reason::new("running");
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.on {
            None => f.write_str(self.what),
            Some(on) if on > 0xffff_ffff => write!(f, "{} ({on:#x})", self.what),
            Some(on) => write!(f, "{} ({on})", self.what),
        }
    }
}

/// Wakes one particular park of one particular coroutine. `Copy`, cheap (two words) and not
/// `Send`: it only works on the runtime's own thread. For other threads see
/// [`RemoteWaker`](crate::park::RemoteWaker).
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<spindle_runtime::park::Waker>();
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Waker {
    pub(crate) key: usize,
    pub(crate) seq: u64,
    pub(crate) _not_send: PhantomData<*const ()>,
}

impl Waker {
    /// The waker for park `seq` of the coroutine in slot `key`.
    #[inline]
    pub(crate) fn new(key: usize, seq: u64) -> Waker {
        Waker { key, seq, _not_send: PhantomData }
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Waker(slot {}, park {})", self.key, self.seq)
    }
}
