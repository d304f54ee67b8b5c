//! Graceful stop on SIGINT and SIGTERM, through a self-pipe.
//!
//! There is no signal crate among the dependencies, so this is the classic self-pipe: a signal
//! handler that does nothing but `write` one byte to a pipe (`write` is async-signal-safe), and
//! a coroutine that reads the other end through the reactor like any socket. One pipe per
//! runtime: [`on_signals`] takes how many runtimes will wait, so that a server with one runtime
//! per core (`--shards N`, `shards.rs`) hands one [`StopSignal`] to each and every runtime
//! hears the same signal.
//!
//! A second SIGINT or SIGTERM while the server is still finishing its requests ends the process
//! at once (exit status 130), as a second Ctrl-C does in most servers.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use mio::unix::pipe::{Receiver, Sender};
use spindle::IoSource;

/// The write ends of the stop pipes, one per waiting runtime. Set once, before the handler is
/// installed, and never changed: the handler only reads it.
static STOP_PIPES: OnceLock<Vec<Sender>> = OnceLock::new();

/// Stop signals received so far; the second one exits without waiting.
static SIGNALS_SEEN: AtomicUsize = AtomicUsize::new(0);

/// One runtime's end of a stop pipe: [`StopSignal::wait`] parks until SIGINT or SIGTERM.
/// `Send`, so it can be handed to the thread of the runtime that will wait on it.
pub struct StopSignal(Receiver);

impl StopSignal {
    /// Parks the calling coroutine until a stop signal arrives. Must run inside a runtime: the
    /// pipe is registered with the current runtime's reactor here.
    pub fn wait(self) -> io::Result<()> {
        let pipe = IoSource::new(self.0)?;
        let mut byte = [0u8; 1];
        match (&pipe).read(&mut byte)? {
            0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the stop pipe closed")),
            _ => Ok(()),
        }
    }
}

/// Installs the SIGINT and SIGTERM handler and returns `waiters` stop signals, one per runtime
/// that is to stop. May be called once per process.
pub fn on_signals(waiters: usize) -> io::Result<Vec<StopSignal>> {
    let mut senders = Vec::with_capacity(waiters);
    let mut receivers = Vec::with_capacity(waiters);
    for _ in 0..waiters {
        // Both ends non-blocking and close-on-exec: the handler must never block.
        let (sender, receiver) = mio::unix::pipe::new()?;
        senders.push(sender);
        receivers.push(StopSignal(receiver));
    }
    STOP_PIPES
        .set(senders)
        .map_err(|_| io::Error::other("the stop signal handler is installed once per process"))?;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid value of the type (empty mask, no flags); the
        // fields that matter are set below before it is used.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `action` is fully initialised and `on_signal` is async-signal-safe (it reads
        // an already-set OnceLock and an atomic, and calls only `write` and `_exit`).
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(receivers)
}

/// The handler: on the first signal, one byte into every stop pipe; on a later one, exit now.
extern "C" fn on_signal(_signal: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno, valid for the thread's life; the
    // handler saves it and puts it back, so the interrupted code sees its own.
    let errno = unsafe { *libc::__errno_location() };
    if SIGNALS_SEEN.fetch_add(1, Ordering::Relaxed) > 0 {
        // SAFETY: _exit is async-signal-safe and ends the process without running destructors.
        unsafe { libc::_exit(130) };
    }
    for pipe in STOP_PIPES.get().map_or(&[][..], Vec::as_slice) {
        let byte = 1u8;
        // SAFETY: the descriptor is the open, non-blocking write end of a pipe that lives in a
        // static for the rest of the process; `byte` is one readable byte. A full pipe (a stop
        // already pending) makes it fail with EAGAIN, which is fine.
        let _ = unsafe { libc::write(pipe.as_raw_fd(), (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: as above, this thread's errno.
    unsafe { *libc::__errno_location() = errno };
}
