//! Arbitrary bytes as a Delta deletion vector's bitmap (a 64-bit roaring bitmap, portable or
//! native, behind its magic number) and as Z85 text: never a panic, and no allocation past the
//! positions a vector may claim; and every set of positions, written as a mirror writes a
//! vector, reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pgarrow_lake::fuzzing::deletion_vector(data);
});
