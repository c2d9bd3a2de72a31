//! The decoder alone on captured binary COPY streams (`testdata/copy/*.bin`): no server.
//!
//! `cargo bench -p pgarrow-decode --bench decode` (or `just bench-decode`, which saves a
//! criterion baseline named `main` for critcmp). Throughput is in bytes of COPY stream; the
//! rows of each stream are printed first, so rows/s = rows / time.
//!
//! - `decode/<case>`: the whole stream handed over in one call (the fast path only);
//! - `chunks/<case>/<size>`: the stream in 8 KiB or 64 KiB pieces, as a socket delivers it,
//!   so fields straddling two pieces take the scratch-buffer path;
//! - `<case>_x10`: the stream's tuples repeated ten times, decoded with the default batch
//!   size: several full batches, so later batches start from buffers sized by the last one,
//!   as in a long export;
//! - `messages/<case>_x10`: that stream in CopyData messages, one per row as the server sends
//!   them, walked as pgarrow's client does (`CopyDataWalk` and `decode_payloads`, in 64 KiB reads): the decoder's
//!   share of a real export. Throughput is still in bytes of COPY data (the messages' headers
//!   not counted).
//!
//! The global allocator is mimalloc, as the `pgarrow` binary's was until #16 (which measured
//! the system allocator better for whole exports, threads and Parquet writer included): kept
//! here so that these numbers compare with earlier baselines. In this tight loop, with the
//! system allocator every batch's fresh buffers come from `mmap`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pgarrow_decode::{CopyDecoder, DecodeOptions, PgColumn};

#[path = "../tests/common/messages.rs"]
mod messages;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A captured stream: its columns, its bytes and its row count.
struct Case {
    name: String,
    columns: Vec<PgColumn>,
    bin: Vec<u8>,
    rows: usize,
}

fn fixture(name: &str, rows: usize) -> Case {
    let copy = pgarrow_testkit::fixtures::captured_copy(name);
    Case {
        name: name.to_owned(),
        columns: copy
            .columns
            .into_iter()
            .map(|(name, oid, typmod)| PgColumn::new(name, oid, typmod))
            .collect(),
        bin: copy.bytes,
        rows,
    }
}

/// The same stream with its tuples repeated `times` times (header and trailer once).
fn repeated(case: &Case, times: usize) -> Case {
    let bin = &case.bin;
    let ext = u32::from_be_bytes([bin[15], bin[16], bin[17], bin[18]]) as usize;
    let (header, rest) = bin.split_at(19 + ext);
    let (tuples, trailer) = rest.split_at(rest.len() - 2);
    assert_eq!(trailer, [0xff, 0xff], "{}: no trailer", case.name);
    let mut out = Vec::with_capacity(header.len() + tuples.len() * times + 2);
    out.extend_from_slice(header);
    for _ in 0..times {
        out.extend_from_slice(tuples);
    }
    out.extend_from_slice(trailer);
    Case {
        name: format!("{}_x{times}", case.name),
        columns: case.columns.clone(),
        bin: out,
        rows: case.rows * times,
    }
}

/// Decodes `input` handed over in pieces of `chunk` bytes, flushing every full batch, and
/// returns the rows decoded.
fn decode_all(columns: &[PgColumn], input: &[u8], chunk: usize) -> usize {
    let mut decoder =
        CopyDecoder::new(columns.to_vec(), DecodeOptions::default()).expect("decoder");
    let mut rows = 0;
    for mut piece in input.chunks(chunk) {
        while !piece.is_empty() {
            let used = decoder.decode(black_box(piece)).expect("decode");
            piece = &piece[used..];
            if decoder.has_batch() {
                let batch = decoder.flush().expect("flush");
                rows += black_box(batch).map_or(0, |b| b.num_rows());
            }
        }
    }
    let batch = decoder.finish().expect("finish");
    rows + black_box(batch).map_or(0, |b| b.num_rows())
}

fn bench_case(c: &mut Criterion, group: &str, case: &Case, chunks: &[usize]) {
    eprintln!(
        "{}: {} rows, {} columns, {} bytes of COPY stream ({:.0} bytes/row)",
        case.name,
        case.rows,
        case.columns.len(),
        case.bin.len(),
        case.bin.len() as f64 / case.rows as f64
    );
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(case.bin.len() as u64));
    for &chunk in chunks {
        let id = if chunk >= case.bin.len() {
            BenchmarkId::new(&case.name, "whole")
        } else {
            BenchmarkId::new(&case.name, format!("{}KiB", chunk >> 10))
        };
        g.bench_with_input(id, &chunk, |b, &chunk| {
            b.iter(|| assert_eq!(decode_all(&case.columns, &case.bin, chunk), case.rows));
        });
    }
    g.finish();
}

/// The decoder walking `case` framed as CopyData messages, in 64 KiB reads.
fn bench_messages(c: &mut Criterion, case: &Case) {
    let framed = pgarrow_testkit::copy::copy_data_messages(&case.bin, case.columns.len());
    let mut g = c.benchmark_group("messages");
    g.throughput(Throughput::Bytes(case.bin.len() as u64));
    g.bench_function(&case.name, |b| {
        b.iter(|| {
            let mut decoder =
                CopyDecoder::new(case.columns.clone(), DecodeOptions::default()).expect("decoder");
            let mut rows = 0;
            let data = messages::walk_messages(&mut decoder, black_box(&framed), 64 << 10, |b| {
                rows += black_box(b).num_rows();
            })
            .expect("decode");
            assert_eq!((rows, data), (case.rows, case.bin.len()));
        });
    });
    g.finish();
}

fn decoder_benches(c: &mut Criterion) {
    let lineitem = fixture("lineitem", 20_000);
    let wide = fixture("wide", 20_000);
    let mixed = fixture("mixed", 64);
    for case in [&lineitem, &wide, &mixed] {
        bench_case(c, "decode", case, &[usize::MAX]);
    }
    for case in [&lineitem, &wide] {
        bench_case(c, "chunks", case, &[64 << 10, 8 << 10]);
    }
    for case in [&lineitem, &wide] {
        let x10 = repeated(case, 10);
        bench_case(c, "decode", &x10, &[usize::MAX]);
        bench_messages(c, &x10);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = decoder_benches
}
criterion_main!(benches);
