//! Arbitrary bytes as the start of a binary COPY stream, looked ahead into for array depths:
//! never a panic, and scanning it in two pieces finds what scanning it whole finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgarrow_decode::ArrayDepths;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let columns = vec![0, 1, 3];
    let mut whole = ArrayDepths::new(columns.clone());
    whole.scan(stream);
    let mut pieces = ArrayDepths::new(columns.clone());
    let cut = (cut as usize * stream.len()) / 255;
    pieces.scan(&stream[..cut]);
    pieces.scan(stream);
    for c in columns {
        assert_eq!(whole.depth(c), pieces.depth(c));
        if let Some(d) = whole.depth(c) {
            assert!((1..=6).contains(&d));
        }
    }
    assert_eq!(whole.rows(), pieces.rows());
});
