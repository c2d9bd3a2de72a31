//! Feeding a decoder its input in pieces, as reads hand them out: shared by `tests/fixtures.rs`,
//! `tests/oracle.rs` (which include this file by path) and `tests/structured.rs`.

use arrow_array::RecordBatch;
use pgarrow_decode::CopyDecoder;

/// Decodes `chunks` in order, flushing every full batch, then finishes the stream: every
/// batch, or the first error.
pub fn feed<'a>(
    decoder: &mut CopyDecoder,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> pgarrow_decode::Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for mut chunk in chunks {
        while !chunk.is_empty() {
            let used = decoder.decode(chunk)?;
            chunk = &chunk[used..];
            if decoder.has_batch() {
                batches.extend(decoder.flush()?);
            }
        }
    }
    batches.extend(decoder.finish()?);
    Ok(batches)
}
