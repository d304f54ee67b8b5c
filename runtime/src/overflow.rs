//! Stack overflow reports.
//!
//! A coroutine that runs off the end of its stack touches the guard under it (a guard region or
//! a `PROT_NONE` page: both fault alike) and the kernel raises SIGSEGV (or SIGBUS). spindle
//! installs, once per process, a handler that runs on the thread's alternate signal stack,
//! compares the faulting address with the guard range of the coroutine running on this thread,
//! and if it matches writes
//!
//! ```text
//! spindle: coroutine #3 'parser' overflowed its stack (65536 bytes, 65536 used); give it more with Builder::stack_size
//! ```
//!
//! to stderr and aborts. A coroutine on an unguarded stack (`RuntimeBuilder::unguarded_stacks`)
//! has no guard, so its overflow runs into the stacks below it and faults only where the memory
//! ends, or never (the canary check at its next switch reports that). A fault while such a
//! coroutine runs, with the faulting address or its stack pointer in or below its stack (see
//! `stack::Stack::overflow_range`), is reported as a probable overflow the same way.
//!
//! Any other fault goes to the handler that was installed before (Rust's own, which reports
//! main-thread overflows), or to the default action.
//!
//! The handler only reads plain memory (the runtime's thread-local pointer, the running
//! coroutine's record through it: see `context::running_header`, which the runtime hands to
//! [`install`], so this file imports nothing of the runtime), asks `mincore(2)` how much of the
//! stack was used (`stack::touched_depth`, also handed over) and calls `write(2)` and
//! `abort(3)`, all of which are async-signal-safe; it allocates nothing.

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
    /// Faults in `[lo, hi)` are this coroutine's overflow: its guard page, or for an unguarded
    /// stack the stack and one chunk's length below it.
    pub lo: usize,
    pub hi: usize,
    /// Top of its stack (the usable part is `[base - stack_size, base)`): how much of it was
    /// used is measured from here.
    pub base: usize,
    pub stack_size: usize,
    /// Its stack has a guard, so a fault in `[lo, hi)` is certainly an overflow; without one
    /// it is a probable one, and so is any fault while its stack pointer lies in `[lo, hi)`
    /// below the stack.
    pub guarded: bool,
    pub id: u64,
    /// Name bytes, owned by the task record, which outlives every run of the coroutine.
    pub name: *const u8,
    pub name_len: usize,
}

impl Header {
    /// True if a fault at `addr`, with the stack pointer at `sp` (if known), is this
    /// coroutine's (probable, when unguarded) overflow.
    fn is_overflow(&self, addr: usize, sp: Option<usize>) -> bool {
        let below = self.base.saturating_sub(self.stack_size);
        (self.lo..self.hi).contains(&addr)
            || (!self.guarded && sp.is_some_and(|sp| (self.lo..below).contains(&sp)))
    }
}

/// Measures how much of a stack was used, `(base, size) -> bytes`: `stack::touched_depth`.
pub(crate) type StackUsed = fn(usize, usize) -> usize;

static INSTALL: Once = Once::new();
/// The `running_header` given to [`install`], as a plain function pointer: the handler finds
/// the running coroutine's header through it. Null until `install`.
static RUNNING_HEADER: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());
/// The `stack_used` given to [`install`], as a plain function pointer. Null until `install`.
static STACK_USED: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());
static mut PREVIOUS_SEGV: mem::MaybeUninit<libc::sigaction> = mem::MaybeUninit::zeroed();
static mut PREVIOUS_BUS: mem::MaybeUninit<libc::sigaction> = mem::MaybeUninit::zeroed();

/// Installs the handler for the process (once) and makes sure this thread has an alternate
/// signal stack, without which a handler could not run on an exhausted stack.
/// `running_header` tells the handler the header of the coroutine running on the calling
/// thread (null if none) and `stack_used` how much of a stack was used; both must be
/// async-signal-safe.
pub(crate) fn install(running_header: fn() -> *const Header, stack_used: StackUsed) {
    STACK_USED.store(stack_used as *mut (), Ordering::Release);
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

/// How much of the stack `running` describes was used, through the function `install` was
/// given; 0 if none was.
fn stack_used(running: &Header) -> usize {
    let f = STACK_USED.load(Ordering::Acquire);
    if f.is_null() {
        return 0;
    }
    // SAFETY: a non-null value was stored by `install` from a `StackUsed`.
    let f: StackUsed = unsafe { mem::transmute::<*mut (), StackUsed>(f) };
    f(running.base, running.stack_size)
}

/// The stack pointer of the code the signal interrupted, where the platform says.
#[allow(unused_variables)]
fn interrupted_sp(context: *mut libc::c_void) -> Option<usize> {
    if context.is_null() {
        return None;
    }
    #[cfg(all(any(target_os = "linux", target_os = "android"), target_arch = "x86_64"))]
    {
        let context = context.cast::<libc::ucontext_t>();
        // SAFETY: the kernel passes a valid ucontext_t as the third argument of SA_SIGINFO
        // handlers; only a register is read.
        let sp = unsafe { (*context).uc_mcontext.gregs[libc::REG_RSP as usize] };
        return Some(sp as usize);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "aarch64"))]
    {
        let context = context.cast::<libc::ucontext_t>();
        // SAFETY: as above.
        let sp = unsafe { (*context).uc_mcontext.sp };
        return Some(sp as usize);
    }
    #[allow(unreachable_code)]
    None
}

extern "C" fn handler(signum: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let header = running_header();
    // SAFETY: a non-null header is in the record on the top page of the running coroutine's
    // stack, written at spawn and mapped while the coroutine is alive; the fault is at the
    // other end of the stack.
    let running = if header.is_null() { None } else { Some(unsafe { header.read() }) };
    let sp = interrupted_sp(context);
    if let Some(running) = running.filter(|r| r.is_overflow(addr, sp)) {
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
        if running.guarded {
            push(&mut buf, &mut len, b" overflowed its stack (");
        } else {
            push(&mut buf, &mut len, b" probably overflowed its unguarded stack (");
        }
        push_number(&mut buf, &mut len, running.stack_size as u64);
        push(&mut buf, &mut len, b" bytes, ");
        push_number(&mut buf, &mut len, stack_used(&running) as u64);
        push(&mut buf, &mut len, b" used)");
        if !running.guarded {
            push(&mut buf, &mut len, b" and may have corrupted other coroutines' stacks");
        }
        push(
            &mut buf,
            &mut len,
            b"; give it more with Builder::stack_size or RuntimeBuilder::stack_size\n",
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
