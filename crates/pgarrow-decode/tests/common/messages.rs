//! Walking a buffer of CopyData messages as pgarrow's client does, with the protocol crate's
//! framing (`CopyDataWalk`): shared by `tests/fixtures.rs`, `benches/decode.rs` and
//! `examples/decode_fixture.rs` (which include this file by path).

use arrow_array::RecordBatch;
use pgarrow_decode::CopyDecoder;
use pgarrow_protocol::framing::{CopyDataWalk, HEADER_LEN, Header, header, tag};

/// Walks `framed` (CopyData messages, as `pgarrow_testkit::copy` makes them), the bytes
/// arriving `read` at a time, as `CopyOut` hands them out: the whole messages that have
/// arrived through `decode_payloads`, and through `decode` the rest of a message cut off at
/// the end of what arrived or stopped in by a full batch; flushing every full batch into
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
                let mut walk = CopyDataWalk::new(&framed[pos..arrived]);
                let stopped = decoder.decode_payloads(walk.buf(), &mut walk)?;
                let walked = walk.finish(stopped);
                pos += walked.bytes();
                remaining = walked.left();
                data += walked.data();
                if decoder.has_batch() {
                    break;
                }
            }
            if remaining == 0 {
                match header(&framed[pos..arrived]) {
                    Header::Incomplete => break,
                    Header::Message {
                        tag: tag::COPY_DATA,
                        body,
                    } => {
                        remaining = body;
                        pos += HEADER_LEN;
                    }
                    other => panic!("{other:?} at byte {pos}: not a CopyData message"),
                }
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
