//! The machinery behind [`select!`](crate::select): wait on several channel operations at
//! once and complete exactly one.
//!
//! `select!` puts its arms in a random order (unless `biased;`), tries them in that order,
//! and if none is ready registers the same waker in the queue of every arm's channel
//! (receives first, see `select`), parks once, and on waking retries the arms in the same
//! order. Registrations left in the other queues are removed on the way out (a stale one
//! would be skipped anyway). A select that was woken for one channel but completed an
//! operation on another passes the wakeup on to the next waiter of every other channel that
//! is ready, so no message or slot is left with nobody woken for it.
//!
//! Rendezvous send arms have one more rule. Their value is made only once the arm is chosen,
//! so a receiver that may not wait for a sender (`try_recv`, a select with a `default` arm)
//! but finds one parked in a send arm *claims* it: wakes it and parks until it has chosen. A
//! select woken by a claim chooses the claimed arm before any other (choosing wakes the
//! claimant), so the claimant is never left waiting for a choice that does not come.

use std::time::Duration;

use super::deadline_after;
use crate::park::{self, Reason, Token, Wake, Waker};

/// One operation of a `select!`: a receive on a [`super::channel::Receiver`] or a send on a
/// [`super::channel::Sender`]. Implementation detail of the macro.
#[doc(hidden)]
pub trait SelectArm {
    /// True if the operation can complete now; then the arm is chosen and the macro completes
    /// it at once. (A send on a rendezvous channel commits here: it wakes the receiver that
    /// will take the value.)
    fn try_begin(&self) -> bool;
    /// Like `try_begin` without committing; may err towards `true`.
    fn maybe_ready(&self) -> bool;
    /// Queues the select's waker where this operation's progress will wake it.
    fn register(&self, waker: Waker) -> Token;
    /// True for a send: registered after every receive (see `select`).
    fn is_send(&self) -> bool;
    /// Removes what `register` queued.
    fn unregister(&self, token: Token);
    /// Wakes the next waiter of the same kind, for a wakeup this select consumed.
    fn pass_on(&self);
    /// For a select woken with `waker`: true if a receiver that may not wait for a sender
    /// (`try_recv`, a select with a `default` arm) woke it to make this send arm's value
    /// (and waits for it). The arm must then be chosen. Removes the claim.
    fn take_claim(&self, waker: Waker) -> bool;
    /// For a select with a `default` arm, when no arm is ready: true if a sender parked in
    /// another select's send arm, woken to make its value, has handed it to this receive arm.
    /// May park for that; false at once if there is no such sender.
    fn try_claim(&self) -> bool;
}

/// How long a `select!` may wait. Implementation detail of the macro.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// No `default` arm: park until an arm is ready.
    Block,
    /// `default =>`: never park.
    Never,
    /// `default(timeout) =>`: park at most this long.
    Timeout(Duration),
}

/// Arms up to this many keep their registrations and their order on the stack.
const INLINE_ARMS: usize = 16;

/// The first `INLINE_ARMS` arm indices in the order written: what a biased select tries, and
/// what a fair one shuffles.
const WRITTEN: [usize; INLINE_ARMS] = {
    let mut order = [0; INLINE_ARMS];
    let mut i = 0;
    while i < INLINE_ARMS {
        order[i] = i;
        i += 1;
    }
    order
};

/// Chooses an arm, parking until one is ready: among the ready ones, the first in a random
/// order (a uniform choice), or in the order written when `biased`. `None` when the default
/// arm is due. Implementation detail of the macro.
#[doc(hidden)]
#[track_caller]
pub fn select(arms: &[&dyn SelectArm], mode: Mode, biased: bool) -> Option<usize> {
    let deadline = match mode {
        Mode::Timeout(d) => Some(deadline_after(d)),
        _ => None,
    };
    let n = arms.len();
    // The order to try the arms in: as written, or shuffled.
    let mut inline_order = WRITTEN;
    let mut spilled_order = Vec::new();
    let order: &[usize] = match (biased, n <= INLINE_ARMS) {
        (true, true) => &WRITTEN[..n],
        (false, true) => {
            shuffle(&mut inline_order[..n]);
            &inline_order[..n]
        }
        (_, false) => {
            spilled_order.extend(0..n);
            if !biased {
                shuffle(&mut spilled_order);
            }
            &spilled_order
        }
    };
    // Filled only when the select parks (an arm ready at once costs no zeroing).
    let mut inline_tokens: [Option<Token>; INLINE_ARMS];
    let mut spilled_tokens: Vec<Option<Token>>;
    // The waker of the last park, while the select has not looked since it woke.
    let mut woken: Option<Waker> = None;
    loop {
        let notified = woken.is_some();
        // Woken by a claimant: the send arm it claimed goes first (its receiver waits).
        // (A park is woken once, so at most one arm holds a claim for it.)
        let claimed = woken
            .take()
            .and_then(|waker| arms.iter().position(|arm| arm.take_claim(waker)))
            .filter(|&i| arms[i].try_begin());
        let ready = || order.iter().copied().find(|&i| arms[i].try_begin());
        if let Some(chosen) = claimed.or_else(ready) {
            if notified {
                for (i, arm) in arms.iter().enumerate() {
                    if i != chosen && arm.maybe_ready() {
                        arm.pass_on();
                    }
                }
            }
            return Some(chosen);
        }
        if let Mode::Never = mode {
            // Not ready, but a sender parked in a select! send arm is, once it has run.
            return order.iter().copied().find(|&i| arms[i].try_claim());
        }
        let tokens: &mut [Option<Token>] = if n <= INLINE_ARMS {
            inline_tokens = [None; INLINE_ARMS];
            &mut inline_tokens[..n]
        } else {
            spilled_tokens = vec![None; n];
            &mut spilled_tokens
        };
        let mut parked = None;
        let wake = park::park(Reason::new("select!"), deadline, |waker| {
            parked = Some(waker);
            // Receives first. Queuing a receiver on a rendezvous channel wakes a send arm
            // parked there, which can now hand it a value; were this select's own send arm on
            // that channel already queued, the park would end as it began (woken while
            // registering) and the select would spin, never reaching its deadline.
            for sends in [false, true] {
                for (arm, token) in arms.iter().zip(tokens.iter_mut()) {
                    if arm.is_send() == sends {
                        *token = Some(arm.register(waker));
                    }
                }
            }
        });
        for (arm, token) in arms.iter().zip(tokens.iter_mut()) {
            if let Some(t) = token.take() {
                arm.unregister(t);
            }
        }
        match wake {
            Wake::Notified => woken = parked,
            Wake::TimedOut => return None,
            Wake::Cancelled => park::unwind(),
        }
    }
}

/// Puts `order` in a uniformly random order (Fisher-Yates), drawing from the runtime's stream
/// of choices, so that a seeded runtime makes the same choices on every run.
fn shuffle(order: &mut [usize]) {
    for i in (1..order.len()).rev() {
        order.swap(i, crate::context::choose(i + 1));
    }
}

/// Waits on several channel operations and runs the arm of the one that completes, like
/// crossbeam-channel's `select!` (and Go's `select`).
///
/// Arms, in any number and order, separated by commas (optional after a block):
///
/// * `recv(rx) -> msg => body`: `msg` is `Result<T, RecvError>`; a disconnected channel is
///   ready at once with `Err`.
/// * `send(tx, value) -> res => body`: `res` is `Result<(), SendError<T>>`; the `value`
///   expression is evaluated only if this arm is chosen. It may park (other coroutines then
///   run, and the room or receiver the arm was chosen for may be gone when the value is
///   ready): the send then completes as [`Sender::send`](super::channel::Sender::send)
///   would, parking until there is room or a receiver takes the value.
/// * `default => body` (or `default() => body`): runs if no operation is ready now (never
///   parks).
/// * `default(timeout) => body` (or `timeout(timeout) => body`): parks at most `timeout`,
///   then runs `body`.
///
/// This is crossbeam-channel's grammar: an argument list may end with a comma
/// (`recv(rx,)`, `send(tx, v,)`, `default(d,)`), and so may the list of arms.
///
/// Without a default arm, `select!` parks until an operation can complete.
///
/// # Which arm, when several are ready
///
/// **A random one**, each ready arm as likely as any other (as in Go, crossbeam-channel and
/// tokio), so that an arm that is always ready cannot starve the others. The choice is drawn
/// from the runtime's own stream of choices, apart from its schedule: a runtime built with
/// [`seed`](crate::RuntimeBuilder::seed) makes the same choices on every run.
///
/// To choose by position instead, write `biased;` before the arms: the **first ready arm in
/// the order written** then wins, every time. That can express priorities (a shutdown
/// channel before the work channel), and it is what an arm listed first that is always ready
/// starves the others with. The marker is tokio's; crossbeam-channel and `futures` spell the
/// same thing as a second macro, `select_biased!`. spindle keeps it inside the one `select!`
/// so that it works wherever `select!` is re-exported (the `spindle` facade re-exports only
/// `select!`) and stands at the top of the arms, where a reader meets it first.
///
/// One exception to both orders: a select woken by a [`Receiver::try_recv`] (or a `select!`
/// with a `default` arm) that waits for the value of its rendezvous send arm chooses that
/// arm, since that receiver waits for it.
///
/// [`Receiver::try_recv`]: super::channel::Receiver::try_recv
///
/// ```
/// use std::time::Duration;
/// use spindle_runtime::{select, sync::channel};
///
/// spindle_runtime::run(|| {
///     let (tx1, rx1) = channel::unbounded::<i32>();
///     let (_tx2, rx2) = channel::unbounded::<&str>();
///     tx1.send(7).unwrap();
///     let got = select! {
///         recv(rx2) -> msg => format!("rx2: {:?}", msg),
///         recv(rx1) -> msg => format!("rx1: {}", msg.unwrap()),
///         default(Duration::from_secs(1)) => "timed out".to_string(),
///     };
///     assert_eq!(got, "rx1: 7");
///
///     // Both ready: `biased;` takes the first written.
///     let (stop_tx, stop) = channel::unbounded::<()>();
///     stop_tx.send(()).unwrap();
///     tx1.send(8).unwrap();
///     let got = select! {
///         biased;
///         recv(stop) -> _ => "stop",
///         recv(rx1) -> _ => "work",
///     };
///     assert_eq!(got, "stop");
/// });
/// ```
#[macro_export]
macro_rules! select {
    (biased; $($tokens:tt)*) => {{
        // Read by `__select_bind` (items are not hygienic): the order among ready arms.
        const __SPINDLE_SELECT_BIASED: bool = true;
        $crate::__select_parse!(@ops [] @default [] @rest $($tokens)*)
    }};
    ($($tokens:tt)*) => {{
        const __SPINDLE_SELECT_BIASED: bool = false;
        $crate::__select_parse!(@ops [] @default [] @rest $($tokens)*)
    }};
}

/// Parses `select!` arms into a normalized list. Implementation detail.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_parse {
    // All parsed.
    (@ops [$($ops:tt)*] @default [$($default:tt)*] @rest $(,)?) => {
        $crate::__select_bind!(@bound [] @ops [$($ops)*] @default [$($default)*])
    };
    // Arm heads; an argument list may end with a comma, as in crossbeam-channel.
    (@ops $ops:tt @default $default:tt @rest recv($rx:expr $(,)?) -> $p:pat => $($rest:tt)*) => {
        $crate::__select_parse!(@ops $ops @default $default @head (recv $rx ; $p) @body $($rest)*)
    };
    (@ops $ops:tt @default $default:tt @rest send($tx:expr, $v:expr $(,)?) -> $p:pat => $($rest:tt)*) => {
        $crate::__select_parse!(@ops $ops @default $default @head (send $tx ; $v ; $p) @body $($rest)*)
    };
    (@ops $ops:tt @default [] @rest default $(())? => $($rest:tt)*) => {
        $crate::__select_parse!(@ops $ops @default [] @head (default) @body $($rest)*)
    };
    (@ops $ops:tt @default [] @rest default($d:expr $(,)?) => $($rest:tt)*) => {
        $crate::__select_parse!(@ops $ops @default [] @head (timeout $d) @body $($rest)*)
    };
    (@ops $ops:tt @default [] @rest timeout($d:expr $(,)?) => $($rest:tt)*) => {
        $crate::__select_parse!(@ops $ops @default [] @head (timeout $d) @body $($rest)*)
    };
    (@ops $ops:tt @default [$($d:tt)+] @rest default $($rest:tt)*) => {
        compile_error!("select! takes at most one default (or timeout) arm")
    };
    (@ops $ops:tt @default [$($d:tt)+] @rest timeout $($rest:tt)*) => {
        compile_error!("select! takes at most one default (or timeout) arm")
    };
    // Arm bodies: a block (comma optional) or an expression (comma unless last).
    (@ops $ops:tt @default $default:tt @head $head:tt @body $body:block $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(@push $ops $default $head [$body] @rest $($($rest)*)?)
    };
    (@ops $ops:tt @default $default:tt @head $head:tt @body $body:block $($rest:tt)+) => {
        $crate::__select_parse!(@push $ops $default $head [$body] @rest $($rest)*)
    };
    (@ops $ops:tt @default $default:tt @head $head:tt @body $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(@push $ops $default $head [$body] @rest $($($rest)*)?)
    };
    // Store a parsed arm.
    (@push [$($ops:tt)*] $default:tt (default) [$body:expr] @rest $($rest:tt)*) => {
        $crate::__select_parse!(@ops [$($ops)*] @default [(never) $body] @rest $($rest)*)
    };
    (@push [$($ops:tt)*] $default:tt (timeout $d:expr) [$body:expr] @rest $($rest:tt)*) => {
        $crate::__select_parse!(@ops [$($ops)*] @default [(timeout $d) $body] @rest $($rest)*)
    };
    (@push [$($ops:tt)*] $default:tt $head:tt [$body:expr] @rest $($rest:tt)*) => {
        $crate::__select_parse!(@ops [$($ops)* ($head $body)] @default $default @rest $($rest)*)
    };
    (@ops $ops:tt @default $default:tt @rest $($rest:tt)+) => {
        compile_error!(concat!(
            "select!: expected `recv(rx) -> msg => ...`, `send(tx, value) -> res => ...`, ",
            "`default => ...` or `default(timeout) => ...`, found: ",
            stringify!($($rest)+)
        ))
    };
}

/// Evaluates each arm's channel expression once, binding it to its own (hygienic) name, then
/// generates the select. Implementation detail.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_bind {
    (@bound [$($bound:tt)*] @ops [((recv $rx:expr ; $p:pat) $body:expr) $($ops:tt)*] @default $default:tt) => {{
        let handle = &$rx;
        $crate::__select_bind!(@bound [$($bound)* (recv handle [] $p => $body)] @ops [$($ops)*] @default $default)
    }};
    (@bound [$($bound:tt)*] @ops [((send $tx:expr ; $v:expr ; $p:pat) $body:expr) $($ops:tt)*] @default $default:tt) => {{
        let handle = &$tx;
        $crate::__select_bind!(@bound [$($bound)* (send handle [$v] $p => $body)] @ops [$($ops)*] @default $default)
    }};
    (@bound [$(($kind:ident $h:ident [$($v:expr)?] $p:pat => $body:expr))*] @ops [] @default [$($default:tt)*]) => {{
        let arms: &[&dyn $crate::sync::select::SelectArm] = &[$($h.__select_arm()),*];
        let chosen = $crate::sync::select::select(
            arms,
            $crate::__select_mode!($($default)*),
            __SPINDLE_SELECT_BIASED,
        );
        #[allow(unused_mut, unused_variables)]
        let mut index = 0usize;
        match chosen {
            #[allow(unused_assignments)]
            ::std::option::Option::Some(chosen) => {
                $(
                    if { index += 1; chosen + 1 == index } {
                        $crate::__select_arm!($kind $h [$($v)?] $p => $body)
                    } else
                )*
                { ::std::unreachable!("select! chose an arm it does not have") }
            }
            ::std::option::Option::None => $crate::__select_default!($($default)*),
        }
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_arm {
    (recv $h:ident [] $p:pat => $body:expr) => {{
        let $p = $h.__select_recv();
        $body
    }};
    (send $h:ident [$v:expr] $p:pat => $body:expr) => {{
        let arm = $h.__select_send_arm();
        let $p = arm.send($v);
        $body
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_mode {
    () => {
        $crate::sync::select::Mode::Block
    };
    ((never) $body:expr) => {
        $crate::sync::select::Mode::Never
    };
    ((timeout $d:expr) $body:expr) => {
        $crate::sync::select::Mode::Timeout($d)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_default {
    () => {
        ::std::unreachable!("select! without a default arm returned without choosing")
    };
    (($($mode:tt)*) $body:expr) => {
        $body
    };
}
