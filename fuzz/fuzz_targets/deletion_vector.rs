//! Arbitrary bytes as a Delta deletion vector's bitmap (a 64-bit roaring bitmap, portable or
//! native, behind its magic number, read by the `roaring` crate) and as Z85 text (the `z85`
//! crate): never a panic, no positions listed past those a vector may claim; and every set of
//! positions, written as a mirror writes a vector, reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pgarrow_lake::fuzzing::deletion_vector(data);
});
