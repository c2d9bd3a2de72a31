//! Decodes a captured stream (`testdata/copy/<name>.bin`) `times` times in one go, for
//! profilers: `valgrind --tool=callgrind target/release/examples/decode_fixture lineitem 10`.
//! With a third argument `messages`, the rows are first wrapped in CopyData messages, one per
//! row as the server sends them, and decoded with `decode_messages` the way the client does.
//! The benchmark numbers come from `benches/decode.rs`, not from this.

use std::hint::black_box;

use pgarrow_decode::{CopyDecoder, DecodeOptions, PgColumn};
use pgarrow_testkit::copy::copy_data_messages;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "lineitem".into());
    let times: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(10);
    let messages = args.next().is_some_and(|m| m == "messages");
    let copy = pgarrow_testkit::fixtures::captured_copy(&name);
    let columns: Vec<PgColumn> = copy
        .columns
        .into_iter()
        .map(|(name, oid, typmod)| PgColumn::new(name, oid, typmod))
        .collect();
    let bin = &copy.bytes;
    let ext = u32::from_be_bytes([bin[15], bin[16], bin[17], bin[18]]) as usize;
    let (header, rest) = bin.split_at(19 + ext);
    let tuples = &rest[..rest.len() - 2];
    let mut decoder = CopyDecoder::new(columns, DecodeOptions::default()).expect("decoder");
    let mut rows = 0;
    let feed = |decoder: &mut CopyDecoder, mut input: &[u8]| {
        let mut rows = 0;
        while !input.is_empty() {
            let used = decoder.decode(black_box(input)).expect("decode");
            input = &input[used..];
            if decoder.has_batch() {
                rows += decoder.flush().expect("flush").map_or(0, |b| b.num_rows());
            }
        }
        rows
    };
    if messages {
        // The whole stream framed as the server sends it, then walked as the client does.
        let mut stream = header.to_vec();
        for _ in 0..times {
            stream.extend_from_slice(tuples);
        }
        stream.extend_from_slice(&[0xff, 0xff]);
        let framed = copy_data_messages(&stream, decoder.schema().fields().len());
        let mut buf = &framed[..];
        while !buf.is_empty() {
            let taken = decoder.decode_messages(black_box(buf)).expect("decode");
            buf = &buf[taken.bytes..];
            // What it declined, or the rest of a message it stopped in, goes to `decode`.
            let payload = if taken.left > 0 {
                taken.left
            } else if taken.bytes == 0 {
                let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
                buf = &buf[5..];
                len as usize - 4
            } else {
                0
            };
            rows += feed(&mut decoder, &buf[..payload]);
            buf = &buf[payload..];
            if decoder.has_batch() {
                rows += decoder.flush().expect("flush").map_or(0, |b| b.num_rows());
            }
        }
    } else {
        rows += feed(&mut decoder, header);
        for _ in 0..times {
            rows += feed(&mut decoder, tuples);
        }
        rows += feed(&mut decoder, &[0xff, 0xff]);
    }
    rows += decoder
        .finish()
        .expect("finish")
        .map_or(0, |b| b.num_rows());
    println!("{rows} rows, {} bytes", decoder.bytes_consumed());
}
