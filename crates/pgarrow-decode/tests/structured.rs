//! Structure-aware robustness: generated streams of nested types (arrays of several dimensions,
//! records, ranges, multiranges, hstore, enums) decode completely when valid, identically
//! however they are split, and give errors (never panics) once truncated or corrupted. The
//! cargo-fuzz targets in `fuzz/` drive the same generator with fuzzer bytes.

mod common;

use arrow_array::RecordBatch;
use common::feed::feed;
use common::shapes::{plans, shapes};
use pgarrow_decode::{ColumnMapping, CopyDecoder, DecodeOptions};
use pgarrow_testkit::copygen::{Entropy, Gen};

fn decode(
    plans: &[ColumnMapping],
    chunks: &[&[u8]],
) -> Result<Vec<RecordBatch>, pgarrow_decode::Error> {
    let options = DecodeOptions::default().with_batch_rows(7);
    // The generator writes any lower bounds: dropped (counted), not refused.
    let policies = pgarrow_decode::policy::Policies::default()
        .with_array_bounds(pgarrow_decode::policy::ArrayBounds::Drop);
    let mut d = CopyDecoder::with_policies(plans.to_vec(), options, policies)?;
    feed(&mut d, chunks.iter().copied())
}

#[test]
fn generated_nested_streams() {
    let shapes = shapes();
    let plans = plans(&shapes);
    let mut corrupted_failed = 0;
    for seed in 1..=400u64 {
        let rows = 1 + (seed % 23) as usize;
        let mut g = Gen {
            entropy: Entropy::Seeded(seed),
        };
        let valid = g.stream(&shapes, rows);
        let whole = decode(&plans, &[&valid]).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(whole.iter().map(RecordBatch::num_rows).sum::<usize>(), rows);
        let cut = 1 + (g.entropy.below(valid.len() as u64 - 1) as usize);
        let split = decode(&plans, &[&valid[..cut], &valid[cut..]]).unwrap();
        assert_eq!(split, whole, "seed {seed}, split at {cut}");

        let mut bad = valid.clone();
        g.corrupt(&mut bad);
        if decode(&plans, &[&bad]).is_err() {
            corrupted_failed += 1;
        }
    }
    assert!(
        corrupted_failed > 200,
        "only {corrupted_failed} corruptions detected"
    );
}

/// Fuzzer-style input: the generator driven by raw bytes instead of a seed.
#[test]
fn byte_driven_streams_never_panic() {
    let shapes = shapes();
    let plans = plans(&shapes);
    let mut entropy_source = Entropy::Seeded(99);
    for _ in 0..300 {
        let bytes: Vec<u8> = (0..256).map(|_| entropy_source.next_u64() as u8).collect();
        let mut g = Gen {
            entropy: Entropy::Bytes(&bytes),
        };
        let mut stream = g.stream(&shapes, 3);
        g.corrupt(&mut stream);
        let _ = decode(&plans, &[&stream]);
    }
}
