//! Decodes a captured stream (`testdata/copy/<name>.bin`) `times` times in one go, for
//! profilers: `valgrind --tool=callgrind target/release/examples/decode_fixture lineitem 10`.
//! With a third argument `messages`, the rows are first wrapped in CopyData messages, one per
//! row as the server sends them, and decoded with `decode_payloads` over a `CopyDataWalk` the way the client does
//! (in 64 KiB reads).
//! The benchmark numbers come from `benches/decode.rs`, not from this.

use std::hint::black_box;

use pgarrow_decode::{CopyDecoder, DecodeOptions, PgColumn};
use pgarrow_testkit::copy::copy_data_messages;

#[path = "../tests/common/messages.rs"]
mod messages;
use messages::walk_messages;

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
        walk_messages(&mut decoder, black_box(&framed), 64 << 10, |b| {
            rows += b.num_rows();
        })
        .expect("decode");
    } else {
        rows += feed(&mut decoder, header);
        for _ in 0..times {
            rows += feed(&mut decoder, tuples);
        }
        rows += feed(&mut decoder, &[0xff, 0xff]);
        rows += decoder
            .finish()
            .expect("finish")
            .map_or(0, |b| b.num_rows());
    }
    println!("{rows} rows, {} bytes", decoder.bytes_consumed());
}
