//! Captured binary COPY streams (`testdata/copy/*.bin`, made by `just regen-fixtures` from the
//! `.sql` beside them) decode the same however the input is split.

use std::path::PathBuf;

use arrow_array::RecordBatch;
use pgarrow_decode::{CopyDecoder, DecodeOptions, PgColumn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn fixture(name: &str) -> (Vec<PgColumn>, Vec<u8>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/copy");
    let bin = std::fs::read(dir.join(format!("{name}.bin"))).expect("fixture .bin");
    let columns = std::fs::read_to_string(dir.join(format!("{name}.columns")))
        .expect("fixture .columns")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut parts = l.split('\t');
            let name = parts.next().unwrap();
            let oid = parts.next().unwrap().parse().unwrap();
            let typmod = parts.next().unwrap().parse().unwrap();
            PgColumn::new(name, oid, typmod)
        })
        .collect();
    (columns, bin)
}

/// Decodes `chunks` in order, flushing whenever a batch is full, and returns all batches.
fn decode_chunks<'a>(
    columns: &[PgColumn],
    options: DecodeOptions,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<RecordBatch> {
    let mut decoder = CopyDecoder::new(columns.to_vec(), options).unwrap();
    let mut batches = Vec::new();
    for mut chunk in chunks {
        while !chunk.is_empty() {
            let used = decoder.decode(chunk).unwrap();
            chunk = &chunk[used..];
            if decoder.has_batch() {
                batches.extend(decoder.flush().unwrap());
            }
        }
    }
    batches.extend(decoder.finish().unwrap());
    batches
}

fn concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(&batches[0].schema(), batches).unwrap()
}

#[test]
fn mixed_types_split_at_every_offset() {
    let (columns, bin) = fixture("mixed");
    let options = DecodeOptions::default();
    let whole = decode_chunks(&columns, options, [&bin[..]]);
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].num_rows(), 64);
    assert_eq!(whole[0].num_columns(), columns.len());
    for split in 0..=bin.len() {
        let parts = decode_chunks(&columns, options, [&bin[..split], &bin[split..]]);
        assert_eq!(parts, whole, "split at byte {split}");
    }
}

#[test]
fn mixed_types_byte_by_byte_and_small_batches() {
    let (columns, bin) = fixture("mixed");
    let whole = concat(&decode_chunks(
        &columns,
        DecodeOptions::default(),
        [&bin[..]],
    ));
    let options = DecodeOptions {
        batch_rows: 5,
        ..DecodeOptions::default()
    };
    let bytewise = decode_chunks(&columns, options, bin.chunks(1));
    assert_eq!(bytewise.len(), 13, "64 rows in batches of 5");
    assert!(bytewise[..12].iter().all(|b| b.num_rows() == 5));
    assert_eq!(concat(&bytewise), whole);
}

#[test]
fn lineitem_random_chunks() {
    let (columns, bin) = fixture("lineitem");
    let options = DecodeOptions {
        batch_rows: 4096,
        ..DecodeOptions::default()
    };
    let whole = decode_chunks(&columns, options, [&bin[..]]);
    assert_eq!(
        whole.iter().map(RecordBatch::num_rows).sum::<usize>(),
        20_000
    );
    let mut rng = StdRng::seed_from_u64(42);
    for _ in 0..20 {
        let mut chunks = Vec::new();
        let mut rest = &bin[..];
        while !rest.is_empty() {
            let n = rng.random_range(1..=rest.len().min(70_000));
            let (a, b) = rest.split_at(n);
            chunks.push(a);
            rest = b;
        }
        assert_eq!(decode_chunks(&columns, options, chunks), whole);
    }
}

#[test]
fn batches_cut_by_bytes() {
    let (columns, bin) = fixture("lineitem");
    let options = DecodeOptions {
        batch_rows: usize::MAX,
        batch_bytes: 100_000,
    };
    let batches = decode_chunks(&columns, options, [&bin[..]]);
    assert!(batches.len() > 20, "got {} batches", batches.len());
    // Each batch stops at the first row that reaches the byte budget.
    for b in &batches[..batches.len() - 1] {
        let rows = b.num_rows();
        assert!(
            (400..=1000).contains(&rows),
            "{rows} rows in a 100 kB batch"
        );
    }
    let whole = decode_chunks(&columns, DecodeOptions::default(), [&bin[..]]);
    assert_eq!(concat(&batches), concat(&whole));
}

#[test]
fn truncated_streams_fail_at_finish() {
    let (columns, bin) = fixture("mixed");
    for cut in [
        0,
        5,
        19,
        21,
        100,
        bin.len() / 2,
        bin.len() - 2,
        bin.len() - 1,
    ] {
        let mut decoder = CopyDecoder::new(columns.clone(), DecodeOptions::default()).unwrap();
        let mut rest = &bin[..cut];
        while !rest.is_empty() {
            let used = decoder.decode(rest).unwrap();
            rest = &rest[used..];
        }
        let err = decoder.finish().unwrap_err();
        assert!(
            err.to_string().contains("stream ended"),
            "cut at {cut}: {err}"
        );
    }
}
