//! RwLock: shared readers, exclusive writers, and the phase-fair policy (no starvation).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use spindle::sync::RwLock;
use spindle::{spawn, yield_now, JoinError, Runtime};

type Log = Rc<RefCell<Vec<String>>>;

fn reader(lock: &Rc<RwLock<()>>, log: &Log, name: &'static str) -> spindle::JoinHandle<()> {
    let (lock, log) = (lock.clone(), log.clone());
    spawn(move || {
        let _g = lock.read();
        log.borrow_mut().push(format!("{name} in"));
        yield_now();
        log.borrow_mut().push(format!("{name} out"));
    })
}

fn writer(lock: &Rc<RwLock<()>>, log: &Log, name: &'static str) -> spindle::JoinHandle<()> {
    let (lock, log) = (lock.clone(), log.clone());
    spawn(move || {
        let _g = lock.write();
        log.borrow_mut().push(format!("{name} in"));
        yield_now();
        log.borrow_mut().push(format!("{name} out"));
    })
}

#[test]
fn readers_share_and_writers_exclude() {
    spindle::run(|| {
        let lock = RwLock::new(5);
        let (a, b) = (lock.read(), lock.read());
        assert_eq!(*a + *b, 10);
        assert!(lock.try_write().is_none());
        drop((a, b));
        let mut w = lock.write();
        *w += 1;
        assert!(lock.try_read().is_none());
        assert!(lock.try_write().is_none());
        drop(w);
        assert_eq!(*lock.read(), 6);
    });
}

#[test]
fn waiting_writer_blocks_new_readers_and_gets_the_lock_when_current_readers_leave() {
    spindle::run(|| {
        let lock = Rc::new(RwLock::new(()));
        let log: Log = Rc::default();
        let first = lock.read();
        let w = writer(&lock, &log, "writer");
        yield_now(); // the writer parks behind the read lock
        assert!(lock.try_read().is_none(), "a reader barged past a waiting writer");
        let r = reader(&lock, &log, "late reader");
        yield_now();
        drop(first);
        w.join().unwrap();
        r.join().unwrap();
        assert_eq!(*log.borrow(), ["writer in", "writer out", "late reader in", "late reader out"]);
    });
}

#[test]
fn writer_release_admits_all_waiting_readers_as_a_batch_before_the_next_writer() {
    spindle::run(|| {
        let lock = Rc::new(RwLock::new(()));
        let log: Log = Rc::default();
        let held = lock.write();
        let w1 = writer(&lock, &log, "w1");
        let r1 = reader(&lock, &log, "r1");
        let r2 = reader(&lock, &log, "r2");
        let w2 = writer(&lock, &log, "w2");
        yield_now();
        drop(held); // readers waiting: they go first, together
        for h in [w1, r1, r2, w2] {
            h.join().unwrap();
        }
        assert_eq!(
            *log.borrow(),
            ["r1 in", "r2 in", "r1 out", "r2 out", "w1 in", "w1 out", "w2 in", "w2 out"]
        );
    });
}

#[test]
fn timed_out_writer_lets_the_readers_queued_behind_it_in() {
    let rt = Runtime::builder().virtual_time(true).build().unwrap();
    rt.run(|| {
        let lock = Rc::new(RwLock::new(()));
        let log: Log = Rc::default();
        let first = lock.read();
        let l = lock.clone();
        let w = spawn(move || l.write_timeout(Duration::from_millis(10)).is_none());
        yield_now();
        let r = reader(&lock, &log, "queued reader");
        yield_now();
        assert!(log.borrow().is_empty(), "the reader must queue behind the waiting writer");
        assert!(w.join().unwrap(), "write_timeout should time out");
        r.join().unwrap(); // admitted although `first` is still held
        assert_eq!(*log.borrow(), ["queued reader in", "queued reader out"]);
        drop(first);
        assert!(lock.try_write().is_some());
    });
}

#[test]
fn cancelled_writer_leaves_no_trace() {
    spindle::run(|| {
        let lock = Rc::new(RwLock::new(0));
        let guard = lock.read();
        let l = lock.clone();
        let w = spawn(move || *l.write() += 1);
        yield_now();
        w.cancel();
        assert!(matches!(w.join(), Err(JoinError::Cancelled)));
        assert!(lock.try_read().is_some(), "readers are not blocked by a cancelled writer");
        drop(guard);
        *lock.try_write().expect("free") += 2;
        assert_eq!(*lock.read(), 2);
    });
}
