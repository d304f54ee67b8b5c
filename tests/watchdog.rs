//! The watchdog names a coroutine that holds the thread too long.

use std::sync::mpsc;
use std::time::Duration;

use spindle::{Builder, Runtime, Stall};

#[test]
fn a_blocking_coroutine_is_reported_then_named_when_it_yields() {
    // The report is what releases the blocked coroutine: nothing here guesses at timing.
    let (tx, rx) = mpsc::channel::<Stall>();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let tx = std::sync::Mutex::new(tx);
    let gate_tx = std::sync::Mutex::new(gate_tx);
    let rt = Runtime::builder()
        .watchdog(Duration::from_millis(20))
        .watchdog_handler(move |stall| {
            // The report first, then the gate: once the gate opens, `run` may return and read
            // the reports before this handler would otherwise have sent its own.
            tx.lock().unwrap().send(stall.clone()).unwrap();
            if !stall.ended {
                let _ = gate_tx.lock().unwrap().send(());
            }
        })
        .build()
        .unwrap();
    rt.run(|| {
        Builder::new()
            .name("slowpoke")
            .spawn(move || gate_rx.recv_timeout(Duration::from_secs(20)).expect("reported"))
            .unwrap()
            .join()
            .unwrap();
    });
    let reports: Vec<Stall> = rx.try_iter().collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(!reports[0].ended);
    assert_eq!(reports[0].name.as_deref(), Some("slowpoke"), "named while it still runs");
    assert!(reports[1].ended);
    assert_eq!(reports[1].name.as_deref(), Some("slowpoke"));
    assert_eq!(reports[1].coroutine_id, reports[0].coroutine_id);
    assert!(reports[1].running_for >= reports[0].running_for);
}

#[test]
fn coroutines_that_yield_are_not_reported() {
    let (tx, rx) = mpsc::channel::<Stall>();
    let tx = std::sync::Mutex::new(tx);
    let rt = Runtime::builder()
        .watchdog(Duration::from_secs(2))
        .watchdog_handler(move |stall| tx.lock().unwrap().send(stall.clone()).unwrap())
        .build()
        .unwrap();
    rt.run(|| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                spindle::spawn(|| {
                    for _ in 0..2000 {
                        spindle::yield_now();
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        spindle::sleep(Duration::from_millis(30));
    });
    assert_eq!(rx.try_iter().count(), 0);
}
