//! Stack overflow reports.
//!
//! A coroutine that runs off the end of its stack touches the guard page under it and the kernel
//! raises SIGSEGV (or SIGBUS). spindle installs, once per process, a handler that runs on the
//! thread's alternate signal stack, compares the faulting address with the guard range of the
//! coroutine running on this thread, and if it matches writes
//!
//! ```text
//! spindle: coroutine #3 'parser' overflowed its stack (65536 bytes); give it more with Builder::stack_size
//! ```
//!
//! to stderr and aborts. Any other fault goes to the handler that was installed before (Rust's
//! own, which reports main-thread overflows), or to the default action.
//!
//! The handler only reads plain memory (the runtime's thread-local pointer, the running
//! coroutine's record through it: see `context::running_header`, which the runtime hands to
//! [`install`], so this file imports nothing of the runtime) and calls `write(2)` and
//! `abort(3)`, all of which are async-signal-safe.

use std::cell::Cell;
use std::mem;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

/// What the handler needs to know about a coroutine. Written once, when the coroutine is
/// spawned, into the top bytes of its own stack (above the part it runs on, see
/// `stack::RECORD_SLOT`, as part of its task record), so switching to a coroutine costs the
/// handler nothing: it finds the header through the scheduler's pointer to the running record.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Header {
    /// Faults in `[lo, hi)` are this coroutine's overflow.
    pub lo: usize,
    pub hi: usize,
    pub stack_size: usize,
    pub id: u64,
    /// Name bytes, owned by the task record, which outlives every run of the coroutine.
    pub name: *const u8,
    pub name_len: usize,
}

static INSTALL: Once = Once::new();
/// The `running_header` given to [`install`], as a plain function pointer: the handler finds
/// the running coroutine's header through it. Null until `install`.
static RUNNING_HEADER: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());
static mut PREVIOUS_SEGV: mem::MaybeUninit<libc::sigaction> = mem::MaybeUninit::zeroed();
static mut PREVIOUS_BUS: mem::MaybeUninit<libc::sigaction> = mem::MaybeUninit::zeroed();

/// Installs the handler for the process (once) and makes sure this thread has an alternate
/// signal stack, without which a handler could not run on an exhausted stack.
/// `running_header` tells the handler the header of the coroutine running on the calling
/// thread (null if none); it must be async-signal-safe.
pub(crate) fn install(running_header: fn() -> *const Header) {
    RUNNING_HEADER.store(running_header as *mut (), Ordering::Release);
    INSTALL.call_once(|| {
        // SAFETY: sigaction is given a fully initialised struct; the previous actions are written
        // to statics that are only read by the handler, which cannot run before this returns.
        unsafe {
            let mut action: libc::sigaction = mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGSEGV, &action, ptr::addr_of_mut!(PREVIOUS_SEGV).cast());
            libc::sigaction(libc::SIGBUS, &action, ptr::addr_of_mut!(PREVIOUS_BUS).cast());
        }
    });
    ensure_alt_stack();
}

thread_local! {
    /// An alternate signal stack this module mapped for a thread that had none; never unmapped,
    /// since a signal could still arrive on it while the thread lives.
    static OWN_ALT_STACK: Cell<bool> = const { Cell::new(false) };
}

fn ensure_alt_stack() {
    if OWN_ALT_STACK.with(|c| c.get()) {
        return;
    }
    // SAFETY: querying the current alternate stack with a null new-stack pointer changes nothing.
    let mut current: libc::stack_t = unsafe { mem::zeroed() };
    // SAFETY: as above; `current` is a valid out-pointer.
    unsafe { libc::sigaltstack(ptr::null(), &mut current) };
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return; // Rust's runtime (or the user) already gave this thread one.
    }
    let size = libc::SIGSTKSZ.max(64 * 1024);
    // SAFETY: an anonymous private mapping with a null hint aliases nothing.
    let addr = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return; // Overflows will then kill the process without our report; nothing worse.
    }
    let stack = libc::stack_t { ss_sp: addr, ss_flags: 0, ss_size: size };
    // SAFETY: `stack` describes the writable mapping just made, which is never unmapped.
    unsafe { libc::sigaltstack(&stack, ptr::null_mut()) };
    OWN_ALT_STACK.with(|c| c.set(true));
}

/// Appends `bytes` to `buf` at `*len`, truncating at the buffer's end.
fn push(buf: &mut [u8], len: &mut usize, bytes: &[u8]) {
    let n = bytes.len().min(buf.len() - *len);
    buf[*len..*len + n].copy_from_slice(&bytes[..n]);
    *len += n;
}

fn push_number(buf: &mut [u8], len: &mut usize, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push(buf, len, &digits[i..]);
}

/// The header of the coroutine running on this thread, through the function `install` was
/// given; null if none runs.
fn running_header() -> *const Header {
    let f = RUNNING_HEADER.load(Ordering::Acquire);
    if f.is_null() {
        return ptr::null();
    }
    // SAFETY: a non-null value was stored by `install` from a `fn() -> *const Header`.
    let f: fn() -> *const Header = unsafe { mem::transmute::<*mut (), fn() -> *const Header>(f) };
    f()
}

extern "C" fn handler(signum: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let header = running_header();
    // SAFETY: a non-null header is in the record on the top page of the running coroutine's
    // stack, written at spawn and mapped while the coroutine is alive; the fault is at the
    // other end of the stack.
    let running = if header.is_null() { None } else { Some(unsafe { header.read() }) };
    if let Some(running) = running.filter(|r| (r.lo..r.hi).contains(&addr)) {
        let mut buf = [0u8; 512];
        let mut len = 0;
        push(&mut buf, &mut len, b"\nspindle: coroutine #");
        push_number(&mut buf, &mut len, running.id);
        if !running.name.is_null() {
            push(&mut buf, &mut len, b" '");
            // SAFETY: name/name_len describe the running task's name, alive while it runs.
            let name = unsafe { std::slice::from_raw_parts(running.name, running.name_len) };
            push(&mut buf, &mut len, name);
            push(&mut buf, &mut len, b"'");
        }
        push(&mut buf, &mut len, b" overflowed its stack (");
        push_number(&mut buf, &mut len, running.stack_size as u64);
        push(
            &mut buf,
            &mut len,
            b" bytes); give it more with Builder::stack_size or RuntimeBuilder::stack_size\n",
        );
        // SAFETY: write(2) and abort(3) are async-signal-safe; buf[..len] is initialised.
        unsafe {
            libc::write(2, buf.as_ptr().cast(), len);
            libc::abort();
        }
    }
    // Not ours: hand the fault to whoever handled it before us.
    let previous = if signum == libc::SIGBUS {
        ptr::addr_of!(PREVIOUS_BUS)
    } else {
        ptr::addr_of!(PREVIOUS_SEGV)
    };
    // SAFETY: the statics were written by `install` before this handler could be called.
    let previous = unsafe { (*previous).assume_init_read() };
    let target = previous.sa_sigaction;
    if target == libc::SIG_DFL || target == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction runs again and the
        // process dies of the signal as it would have without us.
        // SAFETY: resetting a signal's action to SIG_DFL is always valid.
        unsafe {
            let mut action: libc::sigaction = mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(signum, &action, ptr::null_mut());
        }
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { mem::transmute(target) };
        f(signum, info, context);
    } else {
        // SAFETY: a handler installed without SA_SIGINFO takes only the signal number.
        let f: extern "C" fn(libc::c_int) = unsafe { mem::transmute(target) };
        f(signum);
    }
}
