//! The decoder allocates per batch, never per row or per field, and reuses its buffers once a
//! batch is dropped (issue #4).
//!
//! A counting global allocator counts, on the test's own thread, every `alloc`,
//! `alloc_zeroed` and `realloc` made while a captured stream (`testdata/copy/*.bin`) is decoded
//! with small and large batches. Allocations must grow with the number of batches, not rows:
//! each batch may cost a bounded number of allocations per column (its buffers, their growth,
//! the arrays built at flush), and the whole stream far fewer allocations than it has rows.
//! It counts the bytes asked for as well: once the consumer drops its batches, their buffers
//! come back and a batch allocates a few percent of its own size.

// `GlobalAlloc` is an unsafe trait: implementing it is the only way to count allocations. The
// implementation below only forwards to `System`; this file is the one place it is allowed.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pgarrow_decode::{CopyDecoder, DecodeOptions, PgColumn};

#[path = "common/fixture.rs"]
mod fixture;
use fixture::fixture;

/// Counts allocations on the current thread, forwarding everything to [`System`].
struct CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

thread_local! {
    /// Allocations (`alloc`, `alloc_zeroed`, `realloc`) made by this thread. A const-initialised
    /// `Cell<u64>` has no destructor, so reading it never allocates and never fails.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    /// Bytes those allocations asked for (a `realloc` counts its new size).
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn count_one(bytes: usize) {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    let _ = BYTES.try_with(|n| n.set(n.get() + bytes as u64));
}

fn allocated_bytes() -> u64 {
    BYTES.with(Cell::get)
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards its arguments unchanged to `System`, which implements
// `GlobalAlloc`'s contract; the callers' obligations (non-zero layout size, `ptr` allocated by
// this allocator with `layout`) are passed on as they are. The only addition is incrementing a
// thread-local `Cell`, which does not allocate, does not unwind and does not touch the memory.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one(layout.size());
        // SAFETY: the caller upholds `alloc_zeroed`'s contract for `layout`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one(new_size);
        // SAFETY: the caller upholds `realloc`'s contract: `ptr` came from this allocator (that
        // is, from `System`) with `layout`, and `new_size` is valid for its alignment.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `dealloc`'s contract: `ptr` came from `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// What decoding one stream cost.
#[derive(Debug)]
struct Cost {
    /// Rows of each batch.
    rows: Vec<usize>,
    /// Allocations made while each batch was decoded and flushed.
    allocations: Vec<u64>,
    /// Bytes allocated while each batch was decoded and flushed.
    bytes: Vec<u64>,
    /// Bytes of Arrow buffers in each batch.
    batch_bytes: Vec<u64>,
}

/// Decodes `bin` handed over in pieces of `chunk` bytes with batches of `batch_rows` rows, and
/// counts the allocations of each batch (the decoder's construction is not counted).
fn decode_counting(columns: &[PgColumn], bin: &[u8], batch_rows: usize, chunk: usize) -> Cost {
    let options = DecodeOptions::default().with_batch_rows(batch_rows);
    let mut decoder = CopyDecoder::new(columns.to_vec(), options).unwrap();
    // Sized up front, so recording a batch allocates nothing.
    let mut cost = Cost {
        rows: Vec::with_capacity(1024),
        allocations: Vec::with_capacity(1024),
        bytes: Vec::with_capacity(1024),
        batch_bytes: Vec::with_capacity(1024),
    };
    let mut record = |batch: Option<arrow_array::RecordBatch>, (start, start_bytes): (u64, u64)| {
        let n = batch.as_ref().map_or(0, |b| b.num_rows());
        let size = batch
            .as_ref()
            .map_or(0, |b| b.get_array_memory_size() as u64);
        // Free the batch before counting, as a consumer would once it is written.
        drop(batch);
        if n > 0 {
            cost.rows.push(n);
            cost.allocations.push(allocations() - start);
            cost.bytes.push(allocated_bytes() - start_bytes);
            cost.batch_bytes.push(size);
        }
    };
    let mut start = (allocations(), allocated_bytes());
    for mut piece in bin.chunks(chunk) {
        while !piece.is_empty() {
            let used = decoder.decode(piece).unwrap();
            piece = &piece[used..];
            if decoder.has_batch() {
                record(decoder.flush().unwrap(), start);
                start = (allocations(), allocated_bytes());
            }
        }
    }
    record(decoder.finish().unwrap(), start);
    assert!(cost.rows.len() < 1024, "too many batches to record");
    cost
}

/// Allocations one batch may make per column, whatever its row count: the column's buffers
/// (values, offsets, validity), their growth, and the arrays and buffers built at flush. (Today
/// about 4 for a column without NULLs and 9 for one with NULLs, whose validity bitmap regrows
/// from 1,024 rows in every batch.) The first batch may make twice as many: its buffers grow
/// from their initial 1,024-row capacity to the batch's size.
const PER_COLUMN: u64 = 16;
/// Allocations one batch may make besides its columns (the RecordBatch, its column vector).
const PER_BATCH: u64 = 16;

/// Decodes `name` with batches of 1,000 and of 10,000 rows, in one piece and in 8 KiB and
/// 64 KiB pieces, and checks that every batch stays within the per-column budget and the whole
/// stream within a small fraction of its row count.
fn allocations_grow_with_batches_not_rows(name: &str, rows: usize) {
    let (columns, bin) = fixture(name);
    let budget = PER_COLUMN * columns.len() as u64 + PER_BATCH;
    for chunk in [usize::MAX, 64 << 10, 8 << 10] {
        for batch_rows in [1_000, 10_000] {
            let cost = decode_counting(&columns, &bin, batch_rows, chunk);
            let what = format!("{name}, batches of {batch_rows} rows, pieces of {chunk} bytes");
            assert_eq!(cost.rows.iter().sum::<usize>(), rows, "{what}");
            assert_eq!(cost.rows.len(), rows.div_ceil(batch_rows), "{what}");
            let total: u64 = cost.allocations.iter().sum();
            eprintln!(
                "{what}: {} batches, {total} allocations, per batch {:?}",
                cost.rows.len(),
                cost.allocations
            );
            for (i, (&n, &r)) in cost.allocations.iter().zip(&cost.rows).enumerate() {
                let budget = if i == 0 { 2 * budget } else { budget };
                assert!(
                    n <= budget,
                    "{what}: batch {i} ({r} rows) made {n} allocations, more than {budget} \
                     ({PER_COLUMN} per column x {} columns + {PER_BATCH}{}): something \
                     allocates per row or per field",
                    columns.len(),
                    if i == 0 {
                        ", doubled for the first batch"
                    } else {
                        ""
                    }
                );
            }
            // One allocation per value of a single column would already be `rows`.
            assert!(
                total * 5 < rows as u64,
                "{what}: {total} allocations for {rows} rows"
            );
        }
    }
}

#[test]
fn lineitem_allocates_per_batch_not_per_row() {
    allocations_grow_with_batches_not_rows("lineitem", 20_000);
}

#[test]
fn wide_allocates_per_batch_not_per_row() {
    allocations_grow_with_batches_not_rows("wide", 20_000);
}

/// The counter sees allocations, so a passing test above means something.
#[test]
fn the_counter_counts() {
    let before = allocations();
    let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(10));
    assert_eq!(allocations() - before, 1);
    drop(v);
    let before = allocations();
    let s: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    assert!(allocations() - before >= 100, "one String per item");
    drop(s);
}

/// A consumer that drops each batch gives its buffers back: after the first two batches
/// (buffers growing, then sized), a batch allocates a few percent of its own size (arrays,
/// validity bitmaps, booleans), not fresh buffers for all its values.
fn buffers_come_back(name: &str) {
    let (columns, bin) = fixture(name);
    let cost = decode_counting(&columns, &bin, 1_000, 64 << 10);
    assert!(cost.rows.len() >= 10, "{name}: {} batches", cost.rows.len());
    let steady = 2..cost.rows.len() - 1;
    let allocated: u64 = cost.bytes[steady.clone()].iter().sum();
    let held: u64 = cost.batch_bytes[steady.clone()].iter().sum();
    eprintln!(
        "{name}: batches {steady:?} allocated {allocated} bytes for {held} bytes of arrays \
         (first batches: {:?})",
        &cost.bytes[..2]
    );
    assert!(held > 0);
    assert!(
        allocated * 10 < held,
        "{name}: steady batches allocated {allocated} bytes for {held} bytes of arrays: \
         their buffers were not reused"
    );
}

#[test]
fn lineitem_buffers_come_back() {
    buffers_come_back("lineitem");
}

#[test]
fn wide_buffers_come_back() {
    buffers_come_back("wide");
}
