//! Captured binary COPY streams (`testdata/copy/*.bin`, made by `just regen-fixtures` from the
//! `.sql` beside them) decode the same however the input is split.

use arrow_array::RecordBatch;
use pgarrow_decode::{CopyDecoder, DecodeOptions, PgColumn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn fixture(name: &str) -> (Vec<PgColumn>, Vec<u8>) {
    let copy = pgarrow_testkit::fixtures::captured_copy(name);
    let columns = copy
        .columns
        .into_iter()
        .map(|(name, oid, typmod)| PgColumn::new(name, oid, typmod))
        .collect();
    (columns, copy.bytes)
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

/// Corrupted streams (bytes flipped, cut, duplicated) give errors, never panics, and never
/// allocate beyond what the input justifies (the scratch buffer grows only by bytes received).
#[test]
fn corrupted_streams_never_panic() {
    let (columns, bin) = fixture("mixed");
    let mut rng = StdRng::seed_from_u64(7);
    let mut failures = 0;
    for round in 0..3000 {
        let mut input = bin.clone();
        match round % 3 {
            0 => {
                for _ in 0..rng.random_range(1..8) {
                    let i = rng.random_range(0..input.len());
                    input[i] = rng.random();
                }
            }
            1 => {
                let i = rng.random_range(19..input.len());
                input.truncate(i);
                input.extend_from_slice(&[0xff, 0xff]);
            }
            _ => {
                let i = rng.random_range(19..input.len() - 1);
                let j = rng.random_range(i..input.len());
                let copy = input[i..j].to_vec();
                input.splice(i..i, copy);
            }
        }
        let mut decoder = CopyDecoder::new(columns.clone(), DecodeOptions::default()).unwrap();
        let mut rest = &input[..];
        let result = loop {
            if rest.is_empty() {
                break decoder.finish().map(|_| ());
            }
            match decoder.decode(rest) {
                Ok(used) => rest = &rest[used..],
                Err(e) => break Err(e),
            }
            if decoder.has_batch()
                && let Err(e) = decoder.flush()
            {
                break Err(e);
            }
        };
        if let Err(e) = result {
            failures += 1;
            assert!(!e.to_string().is_empty());
        }
    }
    // Most corruptions must be caught; some flips land in values and stay valid.
    assert!(
        failures > 1500,
        "only {failures} of 3000 corrupted streams failed"
    );
}

#[test]
fn garbage_never_panics() {
    let (columns, _) = fixture("mixed");
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..2000 {
        let len = rng.random_range(0..512);
        let mut input: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if rng.random_bool(0.5) {
            // A valid header so the tuple parser sees the garbage.
            let mut header = pgarrow_decode::SIGNATURE.to_vec();
            header.extend_from_slice(&[0; 8]);
            header.extend_from_slice(&input);
            input = header;
        }
        let mut decoder = CopyDecoder::new(columns.clone(), DecodeOptions::default()).unwrap();
        if decoder.decode(&input).is_ok() {
            let _ = decoder.finish();
        }
    }
}
