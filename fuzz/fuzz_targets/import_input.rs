//! Arbitrary bytes through the load's input and encoder: written to a file read as Parquet,
//! an Arrow IPC file or an IPC stream (by the first byte), opened with `pgarrow_io::Input` (the
//! INT96 scan, the dictionary-offset repair and checksums included) and read to its end; each
//! batch's columns then go through the encoder into `jsonb` and `text` targets where it takes
//! them. Never a panic (libfuzzer aborts on one, even where the input catches it), never an
//! endless loop: any input ends in batches or an error.
#![no_main]

use std::io::Write as _;

use libfuzzer_sys::fuzz_target;
use pgarrow_encode::RowEncoder;
use pgarrow_io::{Input, InputOptions};
use pgarrow_types::PgColumn;

/// Removes the input file when the run ends.
struct Remove<'a>(&'a std::path::Path);

impl Drop for Remove<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    let extension = match kind % 3 {
        0 => "parquet",
        1 => "arrow",
        _ => "arrows",
    };
    let path =
        std::env::temp_dir().join(format!("pgarrow-fuzz-{}.{extension}", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes))
        .unwrap();
    let _remove = Remove(&path);
    let options = InputOptions::default().with_batch_rows(64);
    let Ok(input) = Input::open(std::slice::from_ref(&path), &options) else {
        return;
    };
    let schema = arrow_array::RecordBatchReader::schema(&input);
    let catalog = pgarrow_types::Catalog::new();
    // A few bytes can legally describe billions of rows (a run of nulls): the first
    // thousands are as good a test as all of them.
    let mut rows = 0;
    for batch in input {
        let Ok(batch) = batch else {
            return;
        };
        rows += batch.num_rows();
        if rows > 100_000 {
            return;
        }
        for (i, field) in schema.fields().iter().enumerate() {
            let one = arrow_schema::Schema::new(vec![field.as_ref().clone()]);
            let Ok(column) = batch.project(&[i]) else {
                continue;
            };
            for oid in [pgarrow_types::oid::JSONB, pgarrow_types::oid::TEXT] {
                let target = [PgColumn::new(field.name(), oid, -1)];
                if let Ok(encoder) = RowEncoder::new(&target, &catalog, &one) {
                    let _ = encoder.encode(&column, 0, &mut Vec::new());
                }
            }
        }
    }
});
