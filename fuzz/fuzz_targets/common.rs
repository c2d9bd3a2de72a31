//! Shared by the fuzz targets: decode a stream completely; any error is fine, a panic is a bug.

#[path = "../../crates/pgarrow-decode/tests/common/shapes.rs"]
#[allow(dead_code)]
pub mod shapes;

use pgarrow_decode::{ColumnMapping, CopyDecoder, DecodeOptions};
use pgarrow_testkit::copygen::{Entropy, Gen, Shape};

/// Decodes `input` split in two at a point chosen by the input, flushing small batches.
pub fn decode(plans: &[ColumnMapping], input: &[u8], split: usize) {
    let options = DecodeOptions::default().with_batch_rows(5);
    // The generator writes any lower bounds: dropped (counted), not refused.
    let policies = pgarrow_decode::policy::Policies::default()
        .with_array_bounds(pgarrow_decode::policy::ArrayBounds::Drop);
    let Ok(mut d) = CopyDecoder::with_policies(plans.to_vec(), options, policies) else {
        return;
    };
    let split = split.min(input.len());
    for mut chunk in [&input[..split], &input[split..]] {
        while !chunk.is_empty() {
            match d.decode(chunk) {
                Ok(used) => chunk = &chunk[used..],
                Err(_) => return,
            }
            if d.has_batch() && d.flush().is_err() {
                return;
            }
        }
    }
    let _ = d.finish();
}

/// A structure-aware case: the fuzzer's bytes drive the generator for `shapes`, then corrupt
/// the stream about half of the time.
// Unused by `copy_decoder`, which feeds raw bytes.
#[allow(dead_code)]
pub fn structured(data: &[u8], shapes: &[Shape]) {
    let plans = shapes::plans(shapes);
    let mut g = Gen {
        entropy: Entropy::Bytes(data),
    };
    let rows = 1 + g.entropy.below(8) as usize;
    let mut stream = g.stream(shapes, rows);
    if g.entropy.chance(50) {
        g.corrupt(&mut stream);
    }
    let split = g.entropy.below(stream.len() as u64 + 1) as usize;
    decode(&plans, &stream, split);
}
