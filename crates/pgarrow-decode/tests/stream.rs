//! Stream-level rules of the binary COPY format, on hand-built streams.

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use pgarrow_decode::{CopyDecoder, DecodeOptions, PgColumn, types::oid};
use pgarrow_testkit::CopyBuilder;

fn int4_cols(n: usize) -> Vec<PgColumn> {
    (0..n)
        .map(|i| PgColumn::new(format!("c{i}"), oid::INT4, -1))
        .collect()
}

/// Decodes all of `input` in one call per chunk of `chunk` bytes, flushing full batches;
/// returns the row count of each batch, or the first error's text.
fn run(
    columns: Vec<PgColumn>,
    options: DecodeOptions,
    input: &[u8],
    chunk: usize,
) -> Result<Vec<usize>, String> {
    let mut d = CopyDecoder::new(columns, options).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for mut c in input.chunks(chunk.max(1)) {
        while !c.is_empty() {
            let used = d.decode(c).map_err(|e| e.to_string())?;
            c = &c[used..];
            if d.has_batch() {
                let b = d.flush().map_err(|e| e.to_string())?.expect("a full batch");
                rows.push(b.num_rows());
            }
        }
    }
    if let Some(b) = d.finish().map_err(|e| e.to_string())? {
        rows.push(b.num_rows());
    }
    Ok(rows)
}

#[test]
fn zero_column_rows_count_once() {
    let mut b = CopyBuilder::new();
    for _ in 0..5 {
        b.row(&[]);
    }
    let bytes = b.trailer().finish();
    for chunk in [1, 3, bytes.len()] {
        assert_eq!(
            run(vec![], DecodeOptions::default(), &bytes, chunk),
            Ok(vec![5])
        );
    }
}

#[test]
fn oid_flag_skips_the_oid_field() {
    let mut b = CopyBuilder::with_header(1 << 16, &[]);
    b.raw(&1i16.to_be_bytes());
    b.raw(&4i32.to_be_bytes()).raw(&99u32.to_be_bytes()); // the OID field
    b.raw(&4i32.to_be_bytes()).raw(&7i32.to_be_bytes());
    let bytes = b.trailer().finish();
    let mut d = CopyDecoder::new(int4_cols(1), DecodeOptions::default()).unwrap();
    assert_eq!(d.decode(&bytes).unwrap(), bytes.len());
    let batch = d.finish().unwrap().unwrap();
    assert_eq!(batch.column(0).as_primitive::<Int32Type>().value(0), 7);
}

#[test]
fn header_rules() {
    // A non-critical flag and a header extension are skipped.
    let mut b = CopyBuilder::with_header(1, b"extension bytes");
    b.row(&[Some(&5i32.to_be_bytes())]);
    let bytes = b.trailer().finish();
    assert_eq!(
        run(int4_cols(1), DecodeOptions::default(), &bytes, 2),
        Ok(vec![1])
    );
    // An unknown critical flag is refused.
    let bytes = CopyBuilder::with_header(1 << 17, &[]).trailer().finish();
    let err = run(int4_cols(1), DecodeOptions::default(), &bytes, 64).unwrap_err();
    assert!(err.contains("critical header flags"), "{err}");
    // A wrong signature is refused.
    let mut bytes = CopyBuilder::new().trailer().finish();
    bytes[0] = b'X';
    let err = run(int4_cols(1), DecodeOptions::default(), &bytes, 64).unwrap_err();
    assert!(err.contains("signature"), "{err}");
}

#[test]
fn tuple_rules() {
    let four = 4i32.to_be_bytes();
    // Field count differs from the column count.
    let bytes = CopyBuilder::new()
        .row(&[Some(&four), Some(&four)])
        .trailer()
        .finish();
    let err = run(int4_cols(1), DecodeOptions::default(), &bytes, 64).unwrap_err();
    assert!(
        err.contains("tuple has 2 fields, expected 1") && err.contains("row 1"),
        "{err}"
    );
    // A negative length other than -1.
    let bytes = CopyBuilder::new()
        .raw(&1i16.to_be_bytes())
        .raw(&(-2i32).to_be_bytes())
        .finish();
    let err = run(int4_cols(1), DecodeOptions::default(), &bytes, 64).unwrap_err();
    assert!(err.contains("bad field length -2"), "{err}");
    // Bytes after the trailer.
    let bytes = CopyBuilder::new().trailer().raw(&[0]).finish();
    let err = run(int4_cols(1), DecodeOptions::default(), &bytes, 64).unwrap_err();
    assert!(err.contains("after the COPY trailer"), "{err}");
    // A wrong-sized int4 names row and column.
    let bytes = CopyBuilder::new()
        .row(&[Some(&four)])
        .row(&[Some(&[1, 2])])
        .trailer()
        .finish();
    let err = run(int4_cols(1), DecodeOptions::default(), &bytes, 64).unwrap_err();
    assert!(err.starts_with("row 2, column 1 \"c0\" (integer)"), "{err}");
}

/// The byte budget counts only complete rows: a batch never fills up in the middle of a row,
/// whatever the split, so no row is lost or torn.
#[test]
fn byte_budget_reached_mid_row() {
    let columns = vec![
        PgColumn::new("a", oid::TEXT, -1),
        PgColumn::new("b", oid::TEXT, -1),
    ];
    let small = vec![b'x'; 600];
    let big = vec![b'y'; 8_000];
    let mut b = CopyBuilder::new();
    b.row(&[Some(&small), Some(b"1")]);
    for _ in 0..3 {
        b.row(&[Some(&small), Some(&big)]);
    }
    let bytes = b.trailer().finish();
    let options = DecodeOptions::default()
        .with_batch_rows(1000)
        .with_batch_bytes(1000);
    for chunk in [1, 7, 700, 5_000, bytes.len()] {
        assert_eq!(
            run(columns.clone(), options, &bytes, chunk),
            Ok(vec![2, 1, 1]),
            "chunks of {chunk}"
        );
    }
}

#[test]
fn flush_mid_row_keeps_the_partial_row() {
    let columns = int4_cols(2);
    let one = 1i32.to_be_bytes();
    let bytes = CopyBuilder::new()
        .row(&[Some(&one), Some(&one)])
        .row(&[Some(&one), None])
        .trailer()
        .finish();
    let mut d = CopyDecoder::new(columns, DecodeOptions::default()).unwrap();
    // Stop inside the second row, after its first field.
    let cut = 19 + 2 + 16 + 2 + 8;
    assert_eq!(d.decode(&bytes[..cut]).unwrap(), cut);
    assert!(d.flush().unwrap().is_none(), "no batch from a torn row");
    assert_eq!(d.decode(&bytes[cut..]).unwrap(), bytes.len() - cut);
    let batch = d.finish().unwrap().unwrap();
    assert_eq!(batch.num_rows(), 2);
    assert!(batch.column(1).is_null(1));
}
