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

/// What a parked coroutine waits on: a static description and, optionally, which instance
/// ([`Subject`]). Shown in deadlock reports, park listings and traces.
///
/// Objects are named by small per-runtime numbers (`Mutex::lock (Mutex#3)`), never by
/// address, so that a report or trace of a seeded run reads the same every time.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    /// What the coroutine called, e.g. `"Mutex::lock"`, `"TcpStream::read"`, `"sleep"`.
    pub what: &'static str,
    /// Which instance, when that helps.
    pub on: Option<Subject>,
}

/// Which instance a [`Reason`] is about.
///
/// More kinds may be added: a `match` outside this crate needs a `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// A number of the caller's choosing; shown as `(42)`.
    Number(u64),
    /// A file descriptor (a socket); shown as `(fd 12)`.
    Fd(i32),
    /// Another coroutine, by id (a join); shown as `(#5)`.
    Coroutine(u64),
    /// A lock, channel or other waitable object, by its per-runtime number and its name (the
    /// kind, or the label the program gave it: see [`ObjectId`](crate::park::ObjectId));
    /// shown as `(Mutex#3)`, `(accounts#3)`.
    Object {
        /// The kind (`"Mutex"`) or the object's label.
        name: &'static str,
        /// Its number in the runtime it was first waited on in, from 1.
        id: u32,
    },
}

impl Reason {
    /// A reason without an object.
    pub const fn new(what: &'static str) -> Reason {
        Reason { what, on: None }
    }

    /// A reason with a number of the caller's choosing.
    pub const fn on(what: &'static str, on: u64) -> Reason {
        Reason { what, on: Some(Subject::Number(on)) }
    }

    /// A reason naming a file descriptor.
    pub const fn fd(what: &'static str, fd: i32) -> Reason {
        Reason { what, on: Some(Subject::Fd(fd)) }
    }

    /// A reason naming another coroutine (the one joined).
    pub const fn coroutine(what: &'static str, id: u64) -> Reason {
        Reason { what, on: Some(Subject::Coroutine(id)) }
    }

    pub(crate) const RUNNING: Reason = Reason::new("running");
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Subject::Number(n) => write!(f, "{n}"),
            Subject::Fd(fd) => write!(f, "fd {fd}"),
            Subject::Coroutine(id) => write!(f, "#{id}"),
            Subject::Object { name, id } => write!(f, "{name}#{id}"),
        }
    }
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
