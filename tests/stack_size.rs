//! Stack sizes: the sizes that are errors rather than undefined behaviour.

use std::io::ErrorKind;

use spindle::{Builder, Runtime, MAX_STACK_SIZE};

/// Uses a little more than `N` bytes of stack (its frame), then returns.
#[inline(never)]
fn use_stack<const N: usize>() {
    let mut frame = [0u8; N];
    std::hint::black_box(&mut frame);
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
