//! Arrow IPC input checked before arrow-ipc decodes it. The IPC readers trust what a
//! message says about its buffers: a buffer past the end of its body, a negative length or a
//! block that is shorter than its prefix makes them panic instead of returning an error. So
//! every message is checked here first (its flatbuffer verified, every buffer inside the
//! body, no negative length or count), and a malformed one ends the read with an error that
//! says which message and what is wrong.
//!
//! Streams pass through [`CheckedStream`], which holds one message's metadata at a time and
//! hands its body on unbuffered; files are checked by [`check_file`] (the footer and the
//! metadata of every block, a few small reads) before the file reader opens them.

use super::{Malformed, malformed};
use std::io::{self, Read, Seek, SeekFrom};

use arrow_ipc::{Message, MessageHeader, RecordBatch as BatchHeader};

/// The marker before each message's metadata length (absent in old streams).
const CONTINUATION: [u8; 4] = [0xff; 4];

/// An IPC stream whose messages are checked as they pass: `Read` yields the same bytes as
/// the inner reader, or an `InvalidData` error at the first malformed message.
pub(super) struct CheckedStream<R> {
    inner: R,
    /// The current message's checked prefix and metadata, handed on from `at`.
    head: Vec<u8>,
    at: usize,
    /// Bytes of the current message's body still to pass through.
    body_left: u64,
    /// Messages seen, for errors.
    messages: u64,
    /// The end-of-stream marker (or the end of the bytes) was reached.
    ended: bool,
}

impl<R: Read> CheckedStream<R> {
    pub(super) fn new(inner: R) -> Self {
        CheckedStream {
            inner,
            head: Vec::new(),
            at: 0,
            body_left: 0,
            messages: 0,
            ended: false,
        }
    }

    /// Reads and checks the next message's prefix and metadata into `head`.
    fn next_message(&mut self) -> io::Result<()> {
        self.head.clear();
        self.at = 0;
        let mut word = [0u8; 4];
        if !read_or_end(&mut self.inner, &mut word)? {
            self.ended = true;
            return Ok(());
        }
        self.head.extend_from_slice(&word);
        if word == CONTINUATION {
            self.inner.read_exact(&mut word).map_err(|e| self.cut(e))?;
            self.head.extend_from_slice(&word);
        }
        let len = i32::from_le_bytes(word);
        if len == 0 {
            self.ended = true;
            return Ok(());
        }
        self.messages += 1;
        let len = usize::try_from(len)
            .map_err(|_| self.malformed(format!("a negative metadata length ({len})")))?;
        let start = self.head.len();
        // `take` grows the buffer with the bytes that arrive: an implausible length costs a
        // short read, not the allocation it asks for.
        let read = (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut self.head)?;
        if read != len {
            return Err(self.malformed(format!(
                "the stream ends inside its metadata ({read} of {len} bytes)"
            )));
        }
        self.body_left =
            check_message(&self.head[start..]).map_err(|what| self.malformed(what.to_string()))?;
        Ok(())
    }

    fn malformed(&self, what: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "message {} of the IPC stream is malformed: {what}",
                self.messages
            ),
        )
    }

    fn cut(&self, e: io::Error) -> io::Error {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            self.malformed("the stream ends inside its length".to_owned())
        } else {
            e
        }
    }
}

impl<R: Read> Read for CheckedStream<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.head.len() {
                let n = out.len().min(self.head.len() - self.at);
                out[..n].copy_from_slice(&self.head[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.body_left > 0 {
                let want = out
                    .len()
                    .min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
                let n = self.inner.read(&mut out[..want])?;
                // A body cut short reaches the IPC reader as the end of its bytes, which it
                // reports.
                self.body_left = if n == 0 { 0 } else { self.body_left - n as u64 };
                if n == 0 {
                    self.ended = true;
                }
                return Ok(n);
            }
            if self.ended || out.is_empty() {
                return Ok(0);
            }
            self.next_message()?;
        }
    }
}

/// Fills `buf`, or returns `false` when the bytes end before its first byte.
fn read_or_end(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the IPC stream ends inside a message's length",
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Checks a message's metadata (the flatbuffer, without its length prefix) and returns the
/// length of the body that follows it.
fn check_message(metadata: &[u8]) -> Result<u64, Malformed> {
    let message = arrow_ipc::root_as_message(metadata)
        .map_err(|e| malformed!("its metadata is not an IPC message ({e})"))?;
    let body = u64::try_from(message.bodyLength())
        .map_err(|_| malformed!("a negative body length ({})", message.bodyLength()))?;
    if let Some(batch) = batch_header(&message) {
        check_batch(&batch, body)?;
    }
    Ok(body)
}

/// The record batch a message carries: its own, or a dictionary batch's data.
fn batch_header<'a>(message: &Message<'a>) -> Option<BatchHeader<'a>> {
    match message.header_type() {
        MessageHeader::RecordBatch => message.header_as_record_batch(),
        MessageHeader::DictionaryBatch => message.header_as_dictionary_batch()?.data(),
        _ => None,
    }
}

/// Every length and count non-negative, every buffer inside a body of `body` bytes.
fn check_batch(batch: &BatchHeader<'_>, body: u64) -> Result<(), Malformed> {
    if batch.length() < 0 {
        return Err(malformed!("a negative row count ({})", batch.length()));
    }
    for (i, node) in batch.nodes().iter().flatten().enumerate() {
        if node.length() < 0 || node.null_count() < 0 {
            return Err(malformed!(
                "field node {i} has a negative length ({}) or null count ({})",
                node.length(),
                node.null_count()
            ));
        }
    }
    for (i, buffer) in batch.buffers().iter().flatten().enumerate() {
        let end = u64::try_from(buffer.offset())
            .ok()
            .zip(u64::try_from(buffer.length()).ok())
            .and_then(|(offset, length)| offset.checked_add(length));
        if end.is_none_or(|end| end > body) {
            return Err(malformed!(
                "buffer {i} (offset {}, length {}) lies outside the message's body of {body} \
                 bytes",
                buffer.offset(),
                buffer.length()
            ));
        }
    }
    if let Some(counts) = batch.variadicBufferCounts()
        && let Some(count) = counts.iter().find(|c| *c < 0)
    {
        return Err(malformed!("a negative variadic buffer count ({count})"));
    }
    Ok(())
}

/// Checks an IPC file's footer and the metadata of every block it lists (each inside the
/// file, its message well formed, its buffers inside its body), and leaves `file` at its
/// start. The errors say which block and what is wrong.
pub(super) fn check_file<S: Read + Seek>(file: &mut S) -> Result<(), Malformed> {
    let size = file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    let checked = check_blocks(file, size);
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    checked
}

fn check_blocks<S: Read + Seek>(file: &mut S, size: u64) -> Result<(), Malformed> {
    // "ARROW1" + padding at the start, the footer's length and "ARROW1" at the end.
    if size < 8 + 10 {
        return Err(malformed!("{size} bytes are too few for an IPC file"));
    }
    let mut trailer = [0u8; 10];
    read_at(file, size - 10, &mut trailer)?;
    if &trailer[4..] != b"ARROW1" {
        return Err("it does not end as an IPC file does (ARROW1)".into());
    }
    let footer_len = i32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let footer_len = u64::try_from(footer_len)
        .ok()
        .filter(|len| *len <= size - 10)
        .ok_or_else(|| format!("its footer's length ({footer_len}) does not fit the file"))?;
    let mut footer = vec![0u8; footer_len as usize];
    read_at(file, size - 10 - footer_len, &mut footer)?;
    let footer = arrow_ipc::root_as_footer(&footer)
        .map_err(|e| malformed!("its footer is malformed ({e})"))?;
    let dictionaries = footer.dictionaries().into_iter().flatten();
    let batches = footer.recordBatches().into_iter().flatten();
    for (i, block) in dictionaries.chain(batches).enumerate() {
        check_block(file, size, block).map_err(|what| malformed!("block {i}: {what}"))?;
    }
    Ok(())
}

fn check_block<S: Read + Seek>(
    file: &mut S,
    size: u64,
    block: &arrow_ipc::Block,
) -> Result<(), Malformed> {
    let (offset, meta, body) = (block.offset(), block.metaDataLength(), block.bodyLength());
    let fits = u64::try_from(offset)
        .ok()
        .zip(u64::try_from(meta).ok())
        .zip(u64::try_from(body).ok())
        .and_then(|((o, m), b)| o.checked_add(m)?.checked_add(b))
        .is_some_and(|end| end <= size);
    if !fits || meta < 8 {
        return Err(malformed!(
            "offset {offset}, metadata {meta} and body {body} bytes do not fit the file's \
             {size}"
        ));
    }
    let mut metadata = vec![0u8; meta as usize];
    read_at(file, offset as u64, &mut metadata)?;
    let message = if metadata[..4] == CONTINUATION {
        &metadata[8..]
    } else {
        &metadata[4..]
    };
    let message = arrow_ipc::root_as_message(message)
        .map_err(|e| malformed!("its metadata is not an IPC message ({e})"))?;
    if let Some(batch) = batch_header(&message) {
        check_batch(&batch, body as u64)?;
    }
    Ok(())
}

fn read_at<S: Read + Seek>(file: &mut S, at: u64, buf: &mut [u8]) -> Result<(), Malformed> {
    file.seek(SeekFrom::Start(at))
        .and_then(|_| file.read_exact(buf))
        .map_err(|e| malformed!("cannot read {} bytes at {at}: {e}", buf.len()))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::Arc;

    use arrow_array::{Int32Array, RecordBatch, StringArray};
    use arrow_ipc::reader::{FileReader, StreamReader};
    use arrow_ipc::writer::{FileWriter, StreamWriter};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(StringArray::from(vec![Some("a"), Some("bé"), None])),
            ],
        )
        .unwrap()
    }

    fn stream_bytes() -> Vec<u8> {
        let b = batch();
        let mut out = Vec::new();
        let mut w = StreamWriter::try_new(&mut out, &b.schema()).unwrap();
        w.write(&b).unwrap();
        w.write(&b).unwrap();
        w.finish().unwrap();
        drop(w);
        out
    }

    fn file_bytes() -> Vec<u8> {
        let b = batch();
        let mut out = Vec::new();
        let mut w = FileWriter::try_new(&mut out, &b.schema()).unwrap();
        w.write(&b).unwrap();
        w.finish().unwrap();
        drop(w);
        out
    }

    fn read_stream(bytes: &[u8]) -> Result<Vec<RecordBatch>, Malformed> {
        let reader =
            StreamReader::try_new(CheckedStream::new(bytes), None).map_err(|e| e.to_string())?;
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Malformed::from(e.to_string()))
    }

    /// The offset of the first buffer of the first record batch message in `bytes`: the
    /// place where the message says where its data is.
    fn first_buffer_offset(bytes: &[u8], from: usize) -> usize {
        let mut at = from;
        loop {
            assert_eq!(bytes[at..at + 4], CONTINUATION);
            let len = i32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            let meta = &bytes[at + 8..at + 8 + len];
            let message = arrow_ipc::root_as_message(meta).unwrap();
            if let Some(batch) = message.header_as_record_batch() {
                let buffer = batch.buffers().unwrap().get(1);
                let offset = buffer.offset().to_le_bytes();
                let length = buffer.length().to_le_bytes();
                let mut pair = offset.to_vec();
                pair.extend_from_slice(&length);
                let found = meta
                    .windows(16)
                    .position(|w| w == pair.as_slice())
                    .expect("the buffer's offset and length are in the metadata");
                return at + 8 + found;
            }
            at += 8 + len + message.bodyLength() as usize;
        }
    }

    #[test]
    fn a_well_formed_stream_reads_unchanged() {
        let bytes = stream_bytes();
        let got = read_stream(&bytes).unwrap();
        assert_eq!(got, vec![batch(), batch()]);
        // Byte by byte, as a slow pipe would hand it over.
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let Some((&b, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                if out.is_empty() {
                    return Ok(0);
                }
                out[0] = b;
                self.0 = rest;
                Ok(1)
            }
        }
        let reader = StreamReader::try_new(CheckedStream::new(OneByte(&bytes)), None).unwrap();
        assert_eq!(reader.map(Result::unwrap).count(), 2);
    }

    #[test]
    fn a_buffer_past_its_body_is_an_error_not_a_panic() {
        let mut bytes = stream_bytes();
        let at = first_buffer_offset(&bytes, 0);
        bytes[at..at + 8].copy_from_slice(&5_046_272i64.to_le_bytes());
        let err = read_stream(&bytes).unwrap_err();
        assert!(
            err.to_string()
                .contains("message 2 of the IPC stream is malformed: buffer 1 (offset 5046272"),
            "{err}"
        );
        // A negative length, the same.
        let mut bytes = stream_bytes();
        bytes[at + 8..at + 16].copy_from_slice(&(-3i64).to_le_bytes());
        let err = read_stream(&bytes).unwrap_err();
        assert!(err.to_string().contains("buffer 1 (offset"), "{err}");
    }

    #[test]
    fn a_cut_stream_is_an_error() {
        let bytes = stream_bytes();
        for cut in [5, 12, 200, bytes.len() - 20] {
            assert!(read_stream(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bytes = stream_bytes();
        bytes[4..8].copy_from_slice(&(-8i32).to_le_bytes());
        let err = read_stream(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("negative metadata length (-8)"),
            "{err}"
        );
    }

    #[test]
    fn file_blocks_are_checked_before_the_reader_opens_them() {
        let good = file_bytes();
        check_file(&mut Cursor::new(&good)).unwrap();
        let mut cursor = Cursor::new(&good);
        check_file(&mut cursor).unwrap();
        assert_eq!(cursor.position(), 0);
        assert_eq!(
            FileReader::try_new(cursor, None)
                .unwrap()
                .map(Result::unwrap)
                .count(),
            1
        );

        // The first record batch's buffer moved past its body.
        let mut bad = good.clone();
        let n = bad.len();
        let footer_len = i32::from_le_bytes(bad[n - 10..n - 6].try_into().unwrap()) as usize;
        let footer = arrow_ipc::root_as_footer(&good[n - 10 - footer_len..n - 10]).unwrap();
        let block = footer.recordBatches().unwrap().get(0).offset() as usize;
        let at = first_buffer_offset(&bad, block);
        bad[at..at + 8].copy_from_slice(&1_000_000i64.to_le_bytes());
        let err = check_file(&mut Cursor::new(&bad)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("block 0: buffer 1 (offset 1000000"),
            "{err}"
        );

        // A footer length past the start, and a file too short to hold one.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 10..n - 6].copy_from_slice(&i32::MAX.to_le_bytes());
        let err = check_file(&mut Cursor::new(&bad)).unwrap_err();
        assert!(err.to_string().contains("footer's length"), "{err}");
        let err = check_file(&mut Cursor::new(&good[..12])).unwrap_err();
        assert!(err.to_string().contains("too few"), "{err}");
    }
}
