//! Stack sizes: how deep a coroutine went ([`spindle::Coroutine::stack_used`]), and the sizes
//! that are errors rather than undefined behaviour.

use std::io::ErrorKind;
use std::rc::Rc;

use spindle::sync::Event;
use spindle::{Builder, Runtime, MAX_STACK_SIZE};

/// Uses a little more than `N` bytes of stack (its frame), then returns.
#[inline(never)]
fn use_stack<const N: usize>() {
    let mut frame = [0u8; N];
    std::hint::black_box(&mut frame);
}

#[test]
fn stack_used_is_the_depth_each_coroutine_reached() {
    for regions in [true, false] {
        let rt = Runtime::builder().guard_regions(regions).build().unwrap();
        rt.run(|| {
            let go = Rc::new(Event::new());
            let (g1, g2) = (go.clone(), go.clone());
            let shallow = spindle::spawn(move || g1.wait());
            let deep = spindle::spawn(move || {
                use_stack::<{ 40 * 1024 }>();
                g2.wait()
            });
            spindle::yield_now(); // both are parked now
            let (s, d) = (shallow.coroutine().stack_used(), deep.coroutine().stack_used());
            assert!((4096..=16 * 1024).contains(&s), "shallow used {s} (regions {regions})");
            assert!((40 * 1024..=64 * 1024).contains(&d), "deep used {d} (regions {regions})");
            assert_eq!(s % 4096, 0, "whole pages");
            let (c1, c2) = (shallow.coroutine().clone(), deep.coroutine().clone());
            go.set();
            shallow.join().unwrap();
            deep.join().unwrap();
            assert_eq!((c1.stack_used(), c2.stack_used()), (0, 0), "finished");
        });
    }
}

#[test]
fn a_coroutine_can_watch_its_own_stack_grow() {
    let (before, after) = spindle::run(|| {
        spindle::spawn(|| {
            let before = spindle::current().stack_used();
            use_stack::<{ 24 * 1024 }>();
            (before, spindle::current().stack_used())
        })
        .join()
        .unwrap()
    });
    assert!(before < 16 * 1024, "{before}");
    assert!(after >= 24 * 1024 && after > before, "{before} -> {after}");
}

#[test]
fn a_stack_reused_from_the_pool_shows_the_deepest_of_its_coroutines() {
    // Documented: the mark is the stack's, since its pages were last given back.
    spindle::run(|| {
        spindle::spawn(use_stack::<{ 40 * 1024 }>).join().unwrap();
        let used = spindle::spawn(|| spindle::current().stack_used()).join().unwrap();
        assert!(used >= 40 * 1024, "{used}");
    });
}

#[test]
fn absurd_stack_sizes_are_invalid_input_not_undefined_behaviour() {
    spindle::run(|| {
        for size in [MAX_STACK_SIZE + 1, 1 << 62, usize::MAX] {
            let err = Builder::new().stack_size(size).spawn(|| ()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{size}: {err}");
            assert!(err.to_string().contains(&size.to_string()), "{err}");
        }
        // The largest size is mapped (only touched pages cost memory), and the runtime goes on.
        let h = Builder::new().stack_size(MAX_STACK_SIZE).spawn(use_stack::<{ 1 << 20 }>).unwrap();
        assert!(h.join().is_ok());
        assert_eq!(spindle::spawn(|| 7).join().unwrap(), 7);
    });
}

#[test]
fn a_runtime_with_an_absurd_stack_size_is_not_built() {
    for size in [MAX_STACK_SIZE + 1, 1 << 62, usize::MAX] {
        let err = Runtime::builder().stack_size(size).build().err().expect("rejected");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{size}: {err}");
        let err = Runtime::builder().main_stack_size(size).build().err().expect("rejected");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{size}: {err}");
    }
    let rt = Runtime::builder().stack_size(MAX_STACK_SIZE).build().unwrap();
    assert_eq!(rt.run(|| spindle::spawn(|| 6 * 7).join().unwrap()), 42);
}
