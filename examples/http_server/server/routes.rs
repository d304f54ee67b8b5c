//! The routes: what each request target asks for, and doing it.
//!
//! * `/`: "Hello, World!", as in the TechEmpower plaintext test.
//! * `/work?us=N`: N microseconds of CPU work (a spin on the clock that never yields), for
//!   runs where CPU, not the network, is what runs out. Capped at [`MAX_WORK_US`].
//! * `/sleep?ms=N`: parks the connection's coroutine for N milliseconds, to show many slow
//!   requests in flight at once. Capped at [`MAX_SLEEP_MS`].
//!
//! Any method is accepted; a `HEAD` gets the headers alone.

use std::time::{Duration, Instant};

use super::response::Status;

/// Most CPU one `/work` request may ask for: 0.1 s.
pub const MAX_WORK_US: u64 = 100_000;
/// Longest one `/sleep` request may park: 10 s.
pub const MAX_SLEEP_MS: u64 = 10_000;

/// A request target, parsed before the request's body is read (it owns nothing of the
/// buffer, which reading the body reuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Hello,
    /// Spin for this many microseconds (already capped).
    Work(u64),
    /// Park for this many milliseconds (already capped).
    Sleep(u64),
    /// A known path whose query is missing or not a number.
    BadQuery(&'static str),
    NotFound,
}

/// A route's answer.
pub struct Reply {
    pub status: Status,
    pub body: Body,
}

/// A body: the fixed ones are not copied.
pub enum Body {
    Static(&'static [u8]),
    Text(String),
}

impl Body {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Body::Static(bytes) => bytes,
            Body::Text(text) => text.as_bytes(),
        }
    }
}

impl Route {
    /// The route of `target` (origin form: a path and an optional query).
    pub fn of(target: &str) -> Route {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        match path {
            "/" => Route::Hello,
            "/work" => match number(query, "us") {
                Some(us) => Route::Work(us.min(MAX_WORK_US)),
                None => Route::BadQuery("/work wants ?us=N, N microseconds of CPU work\n"),
            },
            "/sleep" => match number(query, "ms") {
                Some(ms) => Route::Sleep(ms.min(MAX_SLEEP_MS)),
                None => Route::BadQuery("/sleep wants ?ms=N, N milliseconds\n"),
            },
            _ => Route::NotFound,
        }
    }

    /// Does what the route asks (spins, parks) and returns the reply.
    pub fn run(self) -> Reply {
        match self {
            Route::Hello => Reply { status: Status::Ok, body: Body::Static(b"Hello, World!") },
            Route::Work(us) => {
                spin_for(Duration::from_micros(us));
                Reply { status: Status::Ok, body: Body::Text(format!("worked {us} us\n")) }
            }
            Route::Sleep(ms) => {
                spindle::sleep(Duration::from_millis(ms));
                Reply { status: Status::Ok, body: Body::Text(format!("slept {ms} ms\n")) }
            }
            Route::BadQuery(why) => {
                Reply { status: Status::BadRequest, body: Body::Static(why.as_bytes()) }
            }
            Route::NotFound => {
                Reply { status: Status::NotFound, body: Body::Static(b"not found\n") }
            }
        }
    }
}

/// The value of `name=N` among the `&`-separated pairs of `query`, if N is a whole number.
fn number(query: &str, name: &str) -> Option<u64> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
}

/// Holds the thread, computing, for `how_long`: nothing else on this runtime runs meanwhile,
/// as with any CPU-bound handler.
fn spin_for(how_long: Duration) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < how_long {
        for _ in 0..64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}
