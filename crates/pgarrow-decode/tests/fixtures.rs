//! Captured binary COPY streams (`testdata/copy/*.bin`, made by `just regen-fixtures` from the
//! `.sql` beside them) decode the same however the input is split.

use arrow_array::RecordBatch;
use pgarrow_decode::{CopyDecoder, DecodeOptions, PgColumn};
use pgarrow_protocol::framing::CopyDataWalk;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "common/feed.rs"]
mod feed;
#[path = "common/fixture.rs"]
mod fixture;
#[path = "common/messages.rs"]
mod messages;
use feed::feed;
use fixture::fixture;
use messages::walk_messages;

/// Decodes `chunks` in order, flushing whenever a batch is full, and returns all batches.
fn decode_chunks<'a>(
    columns: &[PgColumn],
    options: DecodeOptions,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<RecordBatch> {
    let mut decoder = CopyDecoder::new(columns.to_vec(), options).unwrap();
    feed(&mut decoder, chunks).unwrap()
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
    let options = DecodeOptions::default().with_batch_rows(5);
    let bytewise = decode_chunks(&columns, options, bin.chunks(1));
    assert_eq!(bytewise.len(), 13, "64 rows in batches of 5");
    assert!(bytewise[..12].iter().all(|b| b.num_rows() == 5));
    assert_eq!(concat(&bytewise), whole);
}

#[test]
fn lineitem_random_chunks() {
    let (columns, bin) = fixture("lineitem");
    let options = DecodeOptions::default().with_batch_rows(4096);
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
    let options = DecodeOptions::default()
        .with_batch_rows(usize::MAX)
        .with_batch_bytes(100_000);
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

/// `walk_messages` on a new decoder, with the errors as text.
fn walk(
    columns: &[PgColumn],
    options: DecodeOptions,
    framed: &[u8],
    read: usize,
) -> Result<(Vec<RecordBatch>, usize), String> {
    let mut decoder = CopyDecoder::new(columns.to_vec(), options).unwrap();
    let mut batches = Vec::new();
    let data = walk_messages(&mut decoder, framed, read, |b| batches.push(b))
        .map_err(|e| e.to_string())?;
    Ok((batches, data))
}

/// Decodes `bin` in one piece, with the errors as text, for comparing with `walk_messages`.
fn decode_whole(
    columns: &[PgColumn],
    options: DecodeOptions,
    bin: &[u8],
) -> Result<Vec<RecordBatch>, String> {
    let mut decoder = CopyDecoder::new(columns.to_vec(), options).unwrap();
    let mut batches = Vec::new();
    let mut rest = bin;
    while !rest.is_empty() {
        let used = decoder.decode(rest).map_err(|e| e.to_string())?;
        rest = &rest[used..];
        if decoder.has_batch() {
            batches.extend(decoder.flush().map_err(|e| e.to_string())?);
        }
    }
    batches.extend(decoder.finish().map_err(|e| e.to_string())?);
    Ok(batches)
}

#[test]
fn messages_walked_as_postgres_sends_them() {
    for name in ["lineitem", "wide", "mixed"] {
        let (columns, bin) = fixture(name);
        let framed = pgarrow_testkit::copy::copy_data_messages(&bin, columns.len());
        for batch_rows in [1000, 65_536] {
            let options = DecodeOptions::default().with_batch_rows(batch_rows);
            let whole = decode_whole(&columns, options, &bin).unwrap();
            for read in [framed.len(), 65_536, 8192, 333, 7] {
                let (batches, data) = walk(&columns, options, &framed, read).unwrap();
                assert_eq!(data, bin.len(), "{name}, reads of {read}");
                assert_eq!(batches, whole, "{name}, reads of {read}, {batch_rows} rows");
            }
        }
    }
}

/// Framing no server uses: rows cut across messages anywhere, several rows in one message.
#[test]
fn messages_split_anywhere() {
    let mut rng = StdRng::seed_from_u64(5);
    for name in ["lineitem", "wide", "mixed"] {
        let (columns, bin) = fixture(name);
        let options = DecodeOptions::default().with_batch_rows(777);
        let whole = decode_whole(&columns, options, &bin).unwrap();
        for round in 0..12 {
            // From a cut every few bytes to one every few rows.
            let gap = [3, 40, 300, 2000][round % 4];
            let mut cuts = Vec::new();
            let mut at = 0;
            loop {
                at += rng.random_range(1..=gap);
                if at >= bin.len() {
                    break;
                }
                cuts.push(at);
            }
            let framed = pgarrow_testkit::copy::copy_data_split(&bin, &cuts);
            let read = rng.random_range(1..=framed.len().min(100_000));
            let (batches, data) = walk(&columns, options, &framed, read).unwrap();
            assert_eq!(data, bin.len());
            assert_eq!(batches, whole, "{name}, round {round}");
        }
    }
}

#[test]
fn messages_stop_at_other_messages() {
    let (columns, bin) = fixture("mixed");
    let framed = pgarrow_testkit::copy::copy_data_messages(&bin, columns.len());
    let first = 1 + i32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize;
    let second =
        first + 1 + i32::from_be_bytes(framed[first + 1..first + 5].try_into().unwrap()) as usize;
    // A NoticeResponse between the second and the third row.
    let mut buf = framed[..second].to_vec();
    buf.extend_from_slice(b"N\0\0\0\x04");
    buf.extend_from_slice(&framed[second..]);
    let mut decoder = CopyDecoder::new(columns, DecodeOptions::default()).unwrap();
    // The first message (the header and row 1) and the second, then the notice stops it.
    let mut walk = CopyDataWalk::new(&buf);
    let stopped = decoder.decode_payloads(walk.buf(), &mut walk).unwrap();
    let walked = walk.finish(stopped);
    assert_eq!(
        (walked.bytes(), walked.data(), walked.left()),
        (second, second - 10, 0)
    );
    assert_eq!(decoder.rows_decoded(), 2);
    assert_eq!(decoder.bytes_consumed(), (second - 10) as u64);
    // A message cut off at the end of what arrived is not taken.
    let third = &buf[second + 5..];
    let mut walk = CopyDataWalk::new(&third[..20]);
    assert_eq!(
        decoder.decode_payloads(walk.buf(), &mut walk).unwrap(),
        None
    );
    assert_eq!(walk.finish(None).bytes(), 0);
    assert_eq!(decoder.rows_decoded(), 2);
}

/// A batch that fills inside a message holding several rows stops there: the rest of the
/// message is given back, and comes through `decode` after the flush.
#[test]
fn a_full_batch_stops_inside_a_message() {
    let (columns, bin) = fixture("mixed");
    // Two messages: the first holds the header and rows 1 to 3, the second the rest.
    let row = |n: usize| {
        let mut decoder = CopyDecoder::new(columns.clone(), DecodeOptions::default()).unwrap();
        let mut at = 0;
        while decoder.rows_decoded() < n as u64 {
            at += decoder.decode(&bin[at..at + 1]).unwrap();
        }
        at
    };
    let (row1, row3) = (row(1), row(3));
    let framed = pgarrow_testkit::copy::copy_data_split(&bin, &[row3]);
    let options = DecodeOptions::default().with_batch_rows(1);
    let mut decoder = CopyDecoder::new(columns, options).unwrap();
    let mut walk = CopyDataWalk::new(&framed);
    let stopped = decoder.decode_payloads(walk.buf(), &mut walk).unwrap();
    // Stopped after row 1, inside the first payload (which starts after its 5-byte header).
    assert_eq!(stopped, Some(5 + row1));
    let walked = walk.finish(stopped);
    assert_eq!(
        (walked.bytes(), walked.data(), walked.left()),
        (5 + row1, row1, row3 - row1)
    );
    assert_eq!(decoder.rows_decoded(), 1);
}

/// A bad value or a bad length inside a message is reported as `decode` reports it: the same
/// row, column and byte offset of the COPY stream.
#[test]
fn messages_report_errors_like_decode() {
    let (columns, bin) = fixture("lineitem");
    let framed = pgarrow_testkit::copy::copy_data_messages(&bin, columns.len());
    // The start of row 3's message (the first carries the header and row 1).
    let mut at = 0;
    for _ in 0..2 {
        at += 1 + i32::from_be_bytes(framed[at + 1..at + 5].try_into().unwrap()) as usize;
    }
    // Where each field's length is, in row 3's message.
    let mut lens = vec![at + 5 + 2];
    for _ in 1..columns.len() {
        let p = lens[lens.len() - 1];
        let len = i32::from_be_bytes(framed[p..p + 4].try_into().unwrap());
        lens.push(p + 4 + len as usize);
    }
    let last = lens[columns.len() - 1];
    let options = DecodeOptions::default();
    for (what, offset, value, row) in [
        ("a 7-byte int8", lens[0] + 3, 7u8, "row 3"),
        ("a negative length", lens[0], 0xfe, "row 3"),
        // l_comment 3 bytes longer: in the stream it runs on into the next row (never into
        // the next message's header), whose field count is then wrong.
        (
            "a length past the message",
            last + 3,
            framed[last + 3] + 3,
            "row 4",
        ),
    ] {
        let mut bad = framed.clone();
        bad[offset] = value;
        // The same corruption in the plain stream: three message headers before it.
        let mut plain = bin.clone();
        let payload_offset = offset - 5 * 3;
        plain[payload_offset] = value;
        let expected = decode_whole(&columns, options, &plain).unwrap_err();
        for read in [bad.len(), 1000] {
            let err = walk(&columns, options, &bad, read).unwrap_err();
            assert_eq!(err, expected, "{what}, reads of {read}");
        }
        assert!(expected.contains(row), "{what}: {expected}");
    }
}

/// A value error says where the value starts in the COPY stream, whichever way the stream
/// arrives: in one piece, in small pieces, or framed as CopyData messages.
#[test]
fn value_errors_carry_the_byte_offset_of_the_value() {
    let (columns, bin) = fixture("lineitem");
    // Where row 3 starts: decode byte by byte until two rows are done.
    let mut decoder = CopyDecoder::new(columns.clone(), DecodeOptions::default()).unwrap();
    let mut row3 = 0;
    while decoder.rows_decoded() < 2 {
        row3 += decoder.decode(&bin[row3..row3 + 1]).unwrap();
    }
    // Row 3's first field (an int8) claims 7 bytes: its value starts after the field count
    // and the length word.
    let mut bad = bin.clone();
    bad[row3 + 2..row3 + 6].copy_from_slice(&7i32.to_be_bytes());
    let value_start = (row3 + 6) as u64;
    let offset_of = |e: pgarrow_decode::Error| match e.into_kind() {
        pgarrow_decode::ErrorKind::Value { offset, row, .. } => (offset, row),
        other => panic!("not a value error: {other:?}"),
    };
    for piece in [bad.len(), 1000, 7, 1] {
        let mut decoder = CopyDecoder::new(columns.clone(), DecodeOptions::default()).unwrap();
        let mut at = 0;
        let err = loop {
            let end = (at + piece).min(bad.len());
            match decoder.decode(&bad[at..end]) {
                Ok(used) => at += used,
                Err(e) => break e,
            }
        };
        assert_eq!(offset_of(err), (Some(value_start), 3), "pieces of {piece}");
    }
    // Framed: one message per row, the first also holding the header; row 3 is in the third.
    let mut framed = pgarrow_testkit::copy::copy_data_messages(&bin, columns.len());
    let in_framed = row3 + 3 * 5;
    framed[in_framed + 2..in_framed + 6].copy_from_slice(&7i32.to_be_bytes());
    for read in [framed.len(), 1000] {
        let mut decoder = CopyDecoder::new(columns.clone(), DecodeOptions::default()).unwrap();
        let err = walk_messages(&mut decoder, &framed, read, drop).unwrap_err();
        assert_eq!(offset_of(err), (Some(value_start), 3), "reads of {read}");
    }
}
