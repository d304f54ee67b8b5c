//! Panics inside coroutines.
//!
//! A panic in a spawned coroutine ends that coroutine only: its [`crate::JoinHandle::join`]
//! returns `Err(JoinError::Panicked(panic))`, where [`Panic`] carries the payload, the message
//! and the location. The runtime and the other coroutines go on.
//!
//! Rust's default hook would print `thread 'main' panicked at ...` the moment a coroutine
//! panics, whether anyone joins it or not, and under the OS thread's name. spindle's hook
//! (installed once, wrapping whatever hook was set before) instead records the message and
//! location of a panic in a spawned coroutine, and the report goes to stderr only if nobody
//! joins it, as Python's `threading.excepthook` does:
//!
//! ```text
//! spindle: coroutine #4 'worker' panicked at src/main.rs:12:9:
//! index out of bounds: the len is 3 but the index is 7
//! ```
//!
//! Panics in `main` and outside coroutines go to the previous hook unchanged.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::fmt;
use std::sync::Once;

use crate::context::with_core;

/// What the hook saw of the last panic in a spawned coroutine.
struct Captured {
    coroutine_id: u64,
    message: Option<String>,
    location: Option<String>,
    backtrace: Option<Backtrace>,
}

thread_local! {
    static CAPTURED: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // On the timeline, whichever coroutine it is (main too).
            with_core(|core| {
                if let Some(id) = core.current_id() {
                    core.trace_event("panic", id);
                }
            });
            let id = with_core(
                |core| {
                    if core.in_spawned_coroutine() {
                        core.current_id()
                    } else {
                        None
                    }
                },
            )
            .flatten();
            let Some(coroutine_id) = id else {
                return previous(info);
            };
            // On the scheduler's stack: the unwinder needs more than a coroutine may have.
            let backtrace = with_core(|core| core.on_thread_stack(Backtrace::capture))
                .unwrap_or_else(Backtrace::capture);
            let captured = Captured {
                coroutine_id,
                message: info.payload_as_str().map(str::to_owned),
                location: info.location().map(|l| l.to_string()),
                backtrace: (backtrace.status() == BacktraceStatus::Captured).then_some(backtrace),
            };
            let _ = CAPTURED.try_with(|c| c.replace(Some(captured)));
        }));
    });
}

/// A panic that ended a coroutine: its payload plus what the panic hook saw.
pub struct Panic {
    payload: Box<dyn Any + Send + 'static>,
    message: Option<String>,
    location: Option<String>,
    backtrace: Option<Backtrace>,
}

impl Panic {
    /// Wraps the payload caught from coroutine `coroutine_id`, with the hook's record if any.
    pub(crate) fn new(payload: Box<dyn Any + Send + 'static>, coroutine_id: u64) -> Panic {
        let captured = CAPTURED
            .try_with(|c| c.borrow_mut().take())
            .ok()
            .flatten()
            .filter(|c| c.coroutine_id == coroutine_id);
        let message = captured
            .as_ref()
            .and_then(|c| c.message.clone())
            .or_else(|| payload_str(&*payload).map(str::to_owned));
        let (location, backtrace) = match captured {
            Some(c) => (c.location, c.backtrace),
            None => (None, None),
        };
        Panic { payload, message, location, backtrace }
    }

    /// A panic that never ran in a coroutine: payload and message are `message` (what a
    /// handle's spawn request reports when the runtime could not start its coroutine, as
    /// `spawn` would have panicked).
    pub(crate) fn from_message(message: String) -> Panic {
        Panic {
            payload: Box::new(message.clone()),
            message: Some(message),
            location: None,
            backtrace: None,
        }
    }

    /// The panic message, when the payload was a string (as with `panic!("...")`).
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Where it panicked, as `file:line:column`.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The backtrace, when `RUST_BACKTRACE` asked for one.
    pub fn backtrace(&self) -> Option<&Backtrace> {
        self.backtrace.as_ref()
    }

    /// The payload, as `std::thread::JoinHandle::join` would return it; pass it to
    /// `std::panic::resume_unwind` to carry the panic on.
    pub fn into_payload(self) -> Box<dyn Any + Send + 'static> {
        self.payload
    }

    /// The payload, borrowed.
    pub fn payload(&self) -> &(dyn Any + Send + 'static) {
        &*self.payload
    }
}

/// The message of a panic payload made by `panic!("...")`.
pub(crate) fn payload_str(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Panic")
            .field("message", &self.message)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("panicked")?;
        if let Some(location) = &self.location {
            write!(f, " at {location}")?;
        }
        match &self.message {
            Some(message) => write!(f, ": {message}"),
            None => f.write_str(" (with a non-string payload)"),
        }
    }
}

/// Prints the report for a panic nobody joined.
pub(crate) fn report_unjoined(coroutine: &dyn fmt::Display, panic: &Panic) {
    eprintln!("{}", unjoined_report(coroutine, panic));
}

/// The text [`report_unjoined`] prints.
pub(crate) fn unjoined_report(coroutine: &dyn fmt::Display, panic: &Panic) -> String {
    let mut out = format!("spindle: coroutine {coroutine} panicked");
    if let Some(location) = &panic.location {
        out.push_str(" at ");
        out.push_str(location);
    }
    out.push_str(":\n");
    out.push_str(panic.message.as_deref().unwrap_or("Box<dyn Any>"));
    if let Some(bt) = &panic.backtrace {
        // Symbolizing a backtrace reads the debug information with a deep stack of its own: on
        // the thread's stack, not a coroutine's (a 64 KiB one overflowed).
        let text = with_core(|core| core.on_thread_stack(|| bt.to_string()))
            .unwrap_or_else(|| bt.to_string());
        out.push_str("\nstack backtrace:\n");
        out.push_str(&text);
    }
    out
}
