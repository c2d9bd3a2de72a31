//! Walking a buffer of CopyData messages as pgarrow's client does: shared by
//! `tests/fixtures.rs`, `benches/decode.rs` and `examples/decode_fixture.rs` (which include
//! this file by path).

use arrow_array::RecordBatch;
use pgarrow_decode::CopyDecoder;

/// Walks `framed` (CopyData messages, as `pgarrow_testkit::copy` makes them), the bytes
/// arriving `read` at a time: whole rows through `decode_messages`, and payload by payload
/// through `decode` what it declines or stops inside, flushing every full batch into
/// `batches` and finishing at the end. Returns the bytes of COPY data handed over.
///
/// # Panics
/// On anything in `framed` that is not a CopyData message.
pub fn walk_messages(
    decoder: &mut CopyDecoder,
    framed: &[u8],
    read: usize,
    mut batches: impl FnMut(RecordBatch),
) -> pgarrow_decode::Result<usize> {
    // Bytes arrived and used, payload bytes left of the current message, COPY data.
    let (mut arrived, mut pos, mut remaining, mut data) = (0, 0, 0, 0);
    loop {
        if decoder.has_batch() {
            decoder.flush()?.into_iter().for_each(&mut batches);
        }
        loop {
            if remaining == 0 && pos < arrived {
                let taken = decoder.decode_messages(&framed[pos..arrived])?;
                assert!(taken.data <= taken.bytes && pos + taken.bytes <= arrived);
                pos += taken.bytes;
                remaining = taken.left;
                data += taken.data;
                if decoder.has_batch() {
                    break;
                }
            }
            if remaining == 0 {
                if arrived - pos < 5 {
                    break;
                }
                assert_eq!(framed[pos], b'd', "a CopyData message at byte {pos}");
                let len = i32::from_be_bytes(framed[pos + 1..pos + 5].try_into().unwrap());
                remaining = usize::try_from(len - 4).expect("a CopyData length");
                pos += 5;
            }
            let n = remaining.min(arrived - pos);
            if n == 0 {
                break;
            }
            let used = decoder.decode(&framed[pos..pos + n])?;
            pos += used;
            remaining -= used;
            data += used;
            if decoder.has_batch() {
                break;
            }
        }
        if decoder.has_batch() {
            continue;
        }
        if arrived == framed.len() {
            break;
        }
        arrived = (arrived + read.max(1)).min(framed.len());
    }
    assert_eq!((pos, remaining), (framed.len(), 0), "all of it used");
    assert_eq!(decoder.bytes_consumed(), data as u64);
    decoder.finish()?.into_iter().for_each(batches);
    Ok(data)
}
