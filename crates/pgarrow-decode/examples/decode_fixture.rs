//! Decodes a captured stream (`testdata/copy/<name>.bin`) `times` times in one go, for
//! profilers: `valgrind --tool=callgrind target/release/examples/decode_fixture lineitem 10`.
//! The benchmark numbers come from `benches/decode.rs`, not from this.

use std::hint::black_box;

use pgarrow_decode::{CopyDecoder, DecodeOptions, PgColumn};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "lineitem".into());
    let times: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(10);
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
    let mut feed = |decoder: &mut CopyDecoder, mut input: &[u8]| {
        while !input.is_empty() {
            let used = decoder.decode(black_box(input)).expect("decode");
            input = &input[used..];
            if decoder.has_batch() {
                rows += decoder.flush().expect("flush").map_or(0, |b| b.num_rows());
            }
        }
    };
    feed(&mut decoder, header);
    for _ in 0..times {
        feed(&mut decoder, tuples);
    }
    feed(&mut decoder, &[0xff, 0xff]);
    rows += decoder
        .finish()
        .expect("finish")
        .map_or(0, |b| b.num_rows());
    println!("{rows} rows, {} bytes", decoder.bytes_consumed());
}
