//! One runtime per shard: run_sharded, Shards, and a listening port shared through
//! SO_REUSEPORT.

mod util;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use spindle::net::TcpListener;
use spindle::Shards;

#[test]
fn run_sharded_returns_every_result_in_shard_order() {
    let base = String::from("shard"); // borrowed by every shard: main need not be 'static
    let results = spindle::run_sharded(4, |shard| {
        let coroutine = spindle::spawn(move || shard * 10);
        (format!("{base} {shard}"), coroutine.join().unwrap(), std::thread::current().id())
    });
    let names: Vec<_> = results.iter().map(|(n, v, _)| (n.as_str(), *v)).collect();
    assert_eq!(names, [("shard 0", 0), ("shard 1", 10), ("shard 2", 20), ("shard 3", 30)]);
    let threads: BTreeSet<_> = results.iter().map(|(_, _, t)| format!("{t:?}")).collect();
    assert_eq!(threads.len(), 4, "one OS thread per shard");
}

#[test]
fn each_shard_runs_on_a_thread_named_after_it() {
    let names = spindle::run_sharded(2, |_| std::thread::current().name().map(str::to_owned));
    assert_eq!(names, [Some("spindle-shard-0".into()), Some("spindle-shard-1".into())]);
}

#[test]
fn shards_use_the_runtime_builder_they_are_given() {
    let builder = spindle::Runtime::builder().virtual_time(true);
    let slept = Shards::new(2)
        .runtime(builder)
        .run(|_| {
            let start = spindle::time::now();
            spindle::sleep(Duration::from_secs(3600)); // virtual: returns at once
            spindle::time::now() - start
        })
        .unwrap();
    assert_eq!(slept, [Duration::from_secs(3600); 2]);
}

/// The CPUs this thread may run on, from /proc (Cpus_allowed_list: "0-1", "1", "0,2").
fn cpus_allowed() -> String {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap();
    line.split_whitespace().nth(1).unwrap().to_owned()
}

#[test]
fn pinned_shards_each_run_on_one_cpu() {
    let allowed = Shards::new(2).pin_to_cores(true).run(|_| cpus_allowed()).unwrap();
    for cpus in &allowed {
        assert!(cpus.parse::<usize>().is_ok(), "pinned to one CPU, got {cpus:?}");
    }
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    if available > 1 {
        assert_ne!(allowed[0], allowed[1], "two CPUs available, two different ones used");
    }
}

#[test]
fn a_panicking_shard_is_named_and_cancels_the_others() {
    let unwound = Arc::new(AtomicUsize::new(0));
    struct Count(Arc<AtomicUsize>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let u = unwound.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        spindle::run_sharded(3, |shard| {
            if shard == 1 {
                panic!("shard one gives up");
            }
            let _count = Count(u.clone());
            // Would wait an hour; the other shard's panic cancels it instead.
            spindle::sleep(Duration::from_secs(3600));
        })
    }));
    let msg = util::panic_message(&*result.expect_err("run_sharded reports the panic"));
    assert!(msg.starts_with("spindle: shard 1 of 3 panicked: shard one gives up"), "{msg}");
    assert_eq!(unwound.load(Ordering::SeqCst), 2, "shards 0 and 2 were cancelled and unwound");
}

#[test]
fn a_deadlocked_shard_is_reported_as_that_shards_failure() {
    let result = std::panic::catch_unwind(|| {
        spindle::run_sharded(2, |shard| {
            if shard == 0 {
                spindle::park::park(spindle::park::Reason::new("never"), None, |_| {});
            } else {
                spindle::sleep(Duration::from_secs(3600));
            }
        })
    });
    let msg = util::panic_message(&*result.expect_err("the deadlock is reported"));
    assert!(msg.starts_with("spindle: shard 0 of 2 panicked: spindle: deadlock"), "{msg}");
}

/// Shard 0's address and how many shards listen on it, for the other shard and the client.
#[derive(Default)]
struct Published {
    state: Mutex<(Option<SocketAddr>, usize)>,
    changed: Condvar,
}

impl Published {
    /// One more shard listens on `addr`.
    fn bound(&self, addr: SocketAddr) {
        let mut state = self.state.lock().unwrap();
        *state = (Some(addr), state.1 + 1);
        self.changed.notify_all();
    }
    /// Blocks until `n` shards listen; returns their address.
    fn wait(&self, n: usize) -> SocketAddr {
        let state = self.changed.wait_while(self.state.lock().unwrap(), |s| s.1 < n).unwrap();
        state.0.unwrap()
    }
}

#[test]
fn two_shards_accept_on_one_reuseport_port() {
    let published = Arc::new(Published::default());
    let p = published.clone();
    // A plain-thread client: asks until it has been answered by both shards, then stops each.
    let client = std::thread::spawn(move || {
        let addr = p.wait(2);
        let ask = |command: u8| {
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            conn.write_all(&[command]).unwrap();
            let mut shard = [0u8];
            conn.read_exact(&mut shard).unwrap();
            shard[0]
        };
        let mut seen = BTreeSet::new();
        // The kernel picks a listener by a hash of each connection's ports: a few tries reach
        // both (the bound is there only so that a broken group fails instead of hanging).
        for _ in 0..10_000 {
            seen.insert(ask(b'?'));
            if seen.len() == 2 {
                break;
            }
        }
        // A shard told to stop closes its listener before it answers, so the second stop
        // can only reach the other one.
        let stopped = [ask(b'q'), ask(b'q')];
        (seen, stopped)
    });
    let accepted = spindle::run_sharded(2, |shard| {
        let listener = if shard == 0 {
            TcpListener::bind_reuseport("127.0.0.1:0").unwrap()
        } else {
            let p = published.clone();
            let addr = spindle::unblock(move || p.wait(1));
            TcpListener::bind_reuseport(addr).unwrap()
        };
        published.bound(listener.local_addr().unwrap());
        let mut answered = 0;
        loop {
            let (mut conn, _) = listener.accept().unwrap();
            let mut command = [0u8];
            conn.read_exact(&mut command).unwrap();
            answered += 1;
            if command[0] == b'q' {
                drop(listener);
                conn.write_all(&[shard as u8]).unwrap();
                return answered;
            }
            conn.write_all(&[shard as u8]).unwrap();
        }
    });
    let (seen, stopped) = client.join().unwrap();
    assert_eq!(seen, BTreeSet::from([0, 1]), "both shards accepted");
    assert_eq!(BTreeSet::from(stopped), BTreeSet::from([0, 1]), "each stop reached one shard");
    assert!(
        accepted.iter().all(|&n| n >= 2),
        "each shard answered a query and a stop: {accepted:?}"
    );
}

#[test]
fn a_plain_bind_cannot_join_a_reuseport_group() {
    spindle::run(|| {
        let shared = TcpListener::bind_reuseport("127.0.0.1:0").unwrap();
        let addr = shared.local_addr().unwrap();
        let err = TcpListener::bind(addr).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    });
}

#[test]
#[should_panic(expected = "at least one shard")]
fn zero_shards_is_refused() {
    let _ = Shards::new(0);
}
