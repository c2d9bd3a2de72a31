//! A captured COPY stream (`testdata/copy/<name>.bin`) with its columns as the decoder takes
//! them: shared by `tests/fixtures.rs` and `tests/alloc.rs` (which include this file by path).

use pgarrow_decode::PgColumn;

/// The columns and the bytes of the captured stream `name`.
pub fn fixture(name: &str) -> (Vec<PgColumn>, Vec<u8>) {
    let copy = pgarrow_testkit::fixtures::captured_copy(name);
    let columns = copy
        .columns
        .into_iter()
        .map(|(name, oid, typmod)| PgColumn::new(name, oid, typmod))
        .collect();
    (columns, copy.bytes)
}
