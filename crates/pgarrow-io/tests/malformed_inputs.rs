//! Files the fuzzer made that the Parquet reader itself panics on: the input catches the panic
//! and answers with an input error naming the file, never a crash.

use pgarrow_io::{Input, InputOptions};

/// A Parquet file whose data page says it is dictionary-encoded while its column chunk has
/// no dictionary page (found by the `import_input` fuzz target; the `parquet` crate panics,
/// "Decoder for dict should have been set").
#[test]
fn a_dictionary_page_that_is_not_there_is_an_input_error() {
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/fuzz/dictionary-page-missing.parquet.bin"),
    )
    .expect("the fuzzer's file");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.parquet");
    std::fs::write(&path, bytes).unwrap();
    let input = match Input::open(&[path], &InputOptions::default()) {
        Ok(input) => input,
        Err(e) => {
            assert!(e.is_input() || e.is_usage(), "{e}");
            return;
        }
    };
    let mut failed = None;
    for batch in input {
        if let Err(e) = batch {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("the file cannot be read through");
    assert!(e.to_string().contains("f.parquet"), "{e}");
}
