//! Misuse gets a clear message.

mod util;

fn message_of(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    util::panic_message(&*std::panic::catch_unwind(f).expect_err("misuse must panic"))
}

#[test]
fn spawn_outside_a_runtime() {
    let msg = message_of(|| drop(spindle::spawn(|| ())));
    assert!(msg.contains("spawn must be called inside a spindle runtime"), "{msg}");
    assert!(msg.contains("spindle::run"), "{msg}");
}

#[test]
fn builder_spawn_outside_a_runtime() {
    let msg = message_of(|| drop(spindle::Builder::new().spawn(|| ())));
    assert!(msg.contains("spawn must be called inside a spindle runtime"), "{msg}");
}

#[test]
fn yield_now_outside_a_runtime() {
    let msg = message_of(spindle::yield_now);
    assert!(msg.contains("yield_now must be called inside a spindle runtime"), "{msg}");
}

#[test]
fn sleep_outside_a_runtime() {
    let msg = message_of(|| spindle::sleep(std::time::Duration::from_millis(1)));
    assert!(msg.contains("sleep must be called inside a spindle runtime"), "{msg}");
    let msg = message_of(|| spindle::sleep_until(std::time::Instant::now()));
    assert!(msg.contains("sleep_until must be called inside a spindle runtime"), "{msg}");
}

#[test]
fn current_outside_a_runtime() {
    let msg = message_of(|| drop(spindle::current()));
    assert!(msg.contains("current must be called inside a spindle runtime"), "{msg}");
}

#[test]
fn run_nested_inside_a_runtime() {
    let msg = message_of(|| {
        spindle::run(|| spindle::run(|| ()));
    });
    assert!(msg.contains("run called inside a running spindle runtime"), "{msg}");
    assert!(msg.contains("spindle::spawn"), "{msg}");
}

#[test]
fn joining_itself_panics_with_a_clear_message() {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
    let out = seen.clone();
    spindle::run(move || {
        let slot = std::rc::Rc::new(std::cell::RefCell::new(None::<spindle::JoinHandle<()>>));
        let s = slot.clone();
        let h = spindle::spawn(move || {
            spindle::yield_now();
            let me = s.borrow_mut().take().unwrap();
            let msg = message_of(std::panic::AssertUnwindSafe(|| drop(me.join())));
            *out.borrow_mut() = msg;
        });
        *slot.borrow_mut() = Some(h);
        spindle::yield_now();
        spindle::yield_now();
    });
    assert!(seen.borrow().contains("tried to join itself"), "{}", seen.borrow());
}

#[test]
fn a_finished_handle_joins_after_run_returned() {
    let h = spindle::run(|| {
        let h = spindle::spawn(|| 11);
        spindle::yield_now();
        h
    });
    assert_eq!(h.join().unwrap(), 11);
}

#[test]
fn a_runtime_on_another_thread_is_independent() {
    let t = std::thread::spawn(|| spindle::run(|| spindle::spawn(|| 3).join().unwrap()));
    let here = spindle::run(|| spindle::spawn(|| 4).join().unwrap());
    assert_eq!((t.join().unwrap(), here), (3, 4));
}

/// The file and line a panic inside `f` reports (what a user sees first), by a panic hook
/// that records it for this thread while `f` runs and stays quiet meanwhile.
fn panic_location(f: impl FnOnce() + std::panic::UnwindSafe) -> (String, u32) {
    use std::cell::{Cell, RefCell};
    thread_local! {
        static CAPTURING: Cell<bool> = const { Cell::new(false) };
        static SEEN: RefCell<Option<(String, u32)>> = const { RefCell::new(None) };
    }
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CAPTURING.try_with(Cell::get).unwrap_or(false) {
                return previous(info);
            }
            let location = info.location().map(|l| (l.file().to_owned(), l.line()));
            SEEN.with(|seen| seen.borrow_mut().get_or_insert_with(|| location.unwrap()).clone());
        }));
    });
    SEEN.with(|seen| seen.borrow_mut().take());
    CAPTURING.with(|c| c.set(true));
    let result = std::panic::catch_unwind(f);
    CAPTURING.with(|c| c.set(false));
    assert!(result.is_err(), "misuse must panic");
    SEEN.with(|seen| seen.borrow_mut().take()).expect("the hook saw the panic")
}

/// Every public entry point that panics outside a runtime reports the caller's line, not a
/// line inside spindle (`#[track_caller]` all the way down).
#[test]
fn misuse_panics_point_at_the_callers_line() {
    use std::time::Duration;
    macro_rules! check {
        ($what:literal, $call:expr) => {{
            let line = line!();
            let (file, at) = panic_location(|| {
                let _ = $call;
            });
            assert!(file.ends_with("misuse.rs"), "{}: reported at {file}:{at}", $what);
            assert!((line..line + 8).contains(&at), "{}: reported at line {at}", $what);
        }};
    }
    check!("spawn", spindle::spawn(|| ()));
    check!("Builder::spawn", spindle::Builder::new().spawn(|| ()));
    check!("yield_now", spindle::yield_now());
    check!("sleep", spindle::sleep(Duration::from_millis(1)));
    check!("sleep_until", spindle::sleep_until(std::time::Instant::now()));
    check!("current", spindle::current());
    check!("coroutines", spindle::coroutines());
    check!("active_count", spindle::active_count());
    check!("timeout", spindle::time::timeout(Duration::from_millis(1), || ()));
    check!("unblock", spindle::unblock(|| ()));
    check!("scope", spindle::scope(|_| ()));
    check!("park", spindle::park::park(spindle::park::Reason::new("x"), None, |_| {}));
    #[allow(clippy::diverging_sub_expression)]
    {
        check!("unwind", spindle::park::unwind());
    }
    check!("recv", spindle::sync::channel::bounded::<u8>(1).1.recv());
    check!("recv_timeout", {
        let (_tx, rx) = spindle::sync::channel::bounded::<u8>(1);
        rx.recv_timeout(Duration::from_millis(1))
    });
    check!("TcpListener::bind", spindle::net::TcpListener::bind("127.0.0.1:0"));
    check!("UdpSocket::bind", spindle::net::UdpSocket::bind("127.0.0.1:0"));
    check!("TcpStream::connect", spindle::net::TcpStream::connect("127.0.0.1:9"));
    check!("TcpStream::connect_timeout", {
        let addr = "127.0.0.1:9".parse().unwrap();
        spindle::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
    });
    check!("UnixStream::pair", spindle::net::UnixStream::pair());
    check!("IoSource::from_fd", spindle::IoSource::from_fd(std::io::pipe().unwrap().0));
    let path = std::env::temp_dir().join(format!("spindle-misuse-{}.sock", std::process::id()));
    check!("UnixListener::bind", spindle::net::UnixListener::bind(&path));
    let _ = std::fs::remove_file(&path);
    check!("UnixDatagram::bind", spindle::net::UnixDatagram::bind(&path));
    let _ = std::fs::remove_file(&path);
    check!("UnixDatagram::pair", spindle::net::UnixDatagram::pair());
    check!("UnixDatagram::unbound", spindle::net::UnixDatagram::unbound());
    // Waits that must park: their primitive is made to block first, outside any runtime.
    check!("Mutex::lock", {
        let m = spindle::sync::Mutex::new(0);
        let _held = m.lock();
        drop(m.lock())
    });
    check!("RwLock::read", {
        let l = spindle::sync::RwLock::new(0);
        let _held = l.write();
        drop(l.read())
    });
    check!("Semaphore::acquire", drop(spindle::sync::Semaphore::new(0).acquire()));
    check!("Event::wait", spindle::sync::Event::new().wait());
    check!("Barrier::wait", spindle::sync::Barrier::new(2).wait());
    check!("WaitGroup::wait", {
        let wg = spindle::sync::WaitGroup::new();
        wg.add(1);
        wg.wait()
    });
    check!("Condvar::wait", {
        let m = spindle::sync::Mutex::new(0);
        let c = spindle::sync::Condvar::new();
        drop(c.wait(m.lock()))
    });
    check!("Sender::send", {
        let (tx, _rx) = spindle::sync::channel::bounded::<u8>(0);
        tx.send(1)
    });
    check!("Queue::get", spindle::sync::Queue::<u8>::fifo(0).get());
    check!("Queue::put", {
        let q = spindle::sync::Queue::fifo(1);
        q.put(1);
        q.put(2)
    });
    check!("Timer::after", spindle::time::Timer::after(Duration::from_millis(1), || ()));
    check!("ReentrantMutex::lock", drop(spindle::sync::ReentrantMutex::new(0).lock()));
    check!("Pool::spawn", spindle::pool::Pool::new(1).spawn(|| ()));
    check!("select!", {
        let (_tx, rx) = spindle::sync::channel::bounded::<u8>(1);
        spindle::select! { recv(rx) -> m => m.is_ok() }
    });
}

#[test]
fn timer_after_outside_a_runtime_names_itself() {
    let msg = message_of(|| drop(spindle::time::Timer::after(std::time::Duration::ZERO, || ())));
    assert!(msg.contains("Timer::after must be called inside a spindle runtime"), "{msg}");
}
