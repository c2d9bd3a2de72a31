//! Hand-built `COPY ... (FORMAT binary)` byte streams for decoder unit tests.
//!
//! The binary COPY format is: an 11-byte signature, an `i32` flags field, an
//! `i32` header-extension length followed by that many bytes, then tuples
//! (`i16` field count, then per field an `i32` length, `-1` for NULL, and the
//! field bytes), and finally a trailer (`i16` `-1`). All integers are
//! big-endian.
//!
//! ```
//! use pgarrow_testkit::copy::CopyBuilder;
//!
//! let bytes = CopyBuilder::new()
//!     .row(&[Some(&1i32.to_be_bytes()), None])
//!     .trailer()
//!     .finish();
//! assert_eq!(&bytes[..11], b"PGCOPY\n\xff\r\n\0");
//! assert_eq!(&bytes[bytes.len() - 2..], &[0xff, 0xff]);
//! ```

/// The 11-byte signature every binary COPY stream starts with.
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Builds binary COPY byte streams piece by piece.
///
/// [`CopyBuilder::default`] is the same as [`CopyBuilder::new`] (it writes the
/// standard header). Nothing is validated, so malformed streams can be built
/// on purpose with [`CopyBuilder::raw`] and [`CopyBuilder::with_header`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyBuilder {
    buf: Vec<u8>,
}

impl Default for CopyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl CopyBuilder {
    /// Starts a stream with the standard header: the signature, flags `0` and
    /// an empty header extension (19 bytes in all).
    pub fn new() -> Self {
        Self::with_header(0, &[])
    }

    /// Starts a stream with the signature, the given flags field and header
    /// extension (its length is written as an `i32` before it).
    pub fn with_header(flags: u32, extension: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(SIGNATURE.len() + 8 + extension.len());
        buf.extend_from_slice(SIGNATURE);
        buf.extend_from_slice(&flags.to_be_bytes());
        let len = i32::try_from(extension.len()).expect("header extension longer than i32::MAX");
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(extension);
        Self { buf }
    }

    /// Starts an empty builder with no header at all (for tests of truncated
    /// or bad signatures; add bytes with [`CopyBuilder::raw`]).
    pub fn empty() -> Self {
        Self { buf: Vec::new() }
    }

    /// Appends one tuple: the `i16` field count, then for each field its
    /// `i32` length (`-1` for `None`, i.e. NULL) followed by its bytes.
    ///
    /// # Panics
    ///
    /// If there are more than `i16::MAX` fields or a field is longer than
    /// `i32::MAX` bytes.
    pub fn row(&mut self, fields: &[Option<&[u8]>]) -> &mut Self {
        let count = i16::try_from(fields.len()).expect("more than i16::MAX fields");
        self.buf.extend_from_slice(&count.to_be_bytes());
        for field in fields {
            match field {
                None => self.buf.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(bytes) => {
                    let len = i32::try_from(bytes.len()).expect("field longer than i32::MAX");
                    self.buf.extend_from_slice(&len.to_be_bytes());
                    self.buf.extend_from_slice(bytes);
                }
            }
        }
        self
    }

    /// Appends arbitrary bytes as they are.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Appends the trailer: an `i16` field count of `-1` (`ff ff`).
    pub fn trailer(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Returns a copy of the bytes written so far; the builder keeps them, so
    /// it can be extended further (e.g. to build a truncated and a complete
    /// stream from one builder).
    pub fn finish(&mut self) -> Vec<u8> {
        self.buf.clone()
    }
}

/// Wraps a whole binary COPY stream in CopyData messages (`d`, an `i32` length counting
/// itself, the payload) the way PostgreSQL sends it: the header rides in the first row's
/// message, then one message per row, and the trailer in a message of its own (with no rows,
/// the header and the trailer share one).
///
/// The rows are found by walking `ncols` field lengths from each tuple's start; the stream
/// must not carry OIDs. Panics on a stream that does not have that shape.
pub fn copy_data_messages(stream: &[u8], ncols: usize) -> Vec<u8> {
    let ext = u32::from_be_bytes(stream[15..19].try_into().expect("a header"));
    // A cut after each row: the header goes with the first, the trailer is left alone.
    let mut cuts = Vec::new();
    let mut p = 19 + ext as usize;
    while p + 2 < stream.len() {
        let count = i16::from_be_bytes([stream[p], stream[p + 1]]);
        assert_eq!(count as usize, ncols, "tuple at byte {p}");
        p += 2;
        for _ in 0..ncols {
            let len = i32::from_be_bytes(stream[p..p + 4].try_into().expect("a field length"));
            p += 4 + usize::try_from(len).unwrap_or(0);
        }
        cuts.push(p);
    }
    copy_data_split(stream, &cuts)
}

/// Wraps `stream` in CopyData messages cut at the given byte offsets (ascending, each inside
/// the stream): framing no server uses, for testing a decoder that walks messages against
/// rows split across them and messages holding several.
pub fn copy_data_split(stream: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len() + 5 * (cuts.len() + 1));
    let mut start = 0;
    for &end in cuts.iter().chain([&stream.len()]) {
        assert!(start <= end && end <= stream.len(), "cut at {end}");
        if end == start {
            continue;
        }
        let len = i32::try_from(end - start + 4).expect("message under 2 GiB");
        out.push(b'd');
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&stream[start..end]);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

    #[test]
    fn new_writes_exact_header() {
        let bytes = CopyBuilder::new().finish();
        assert_eq!(bytes, HEADER);
        assert_eq!(bytes.len(), 19);
        assert_eq!(CopyBuilder::default().finish(), HEADER);
    }

    #[test]
    fn with_header_writes_flags_and_extension() {
        let bytes = CopyBuilder::with_header(0x0001_0000, b"ab").finish();
        let mut expected = SIGNATURE.to_vec();
        expected.extend_from_slice(&[0, 1, 0, 0]);
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(b"ab");
        assert_eq!(bytes, expected);
    }

    #[test]
    fn rows_and_trailer_exact_bytes() {
        let bytes = CopyBuilder::new()
            .row(&[Some(&[0, 0, 0, 7]), None, Some(b"")])
            .row(&[])
            .trailer()
            .finish();
        let mut expected = HEADER.to_vec();
        expected.extend_from_slice(&[0, 3]);
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 7]);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(&[0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 0]);
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn raw_and_empty() {
        let mut b = CopyBuilder::empty();
        assert!(b.as_bytes().is_empty());
        b.raw(b"PGCOPY").raw(&[1, 2]);
        assert_eq!(b.finish(), b"PGCOPY\x01\x02");
        // finish does not consume: further appends still work.
        b.trailer();
        assert_eq!(b.finish(), b"PGCOPY\x01\x02\xff\xff");
    }

    #[test]
    fn messages_as_postgres_sends_them() {
        let one = 1i32.to_be_bytes();
        let stream = CopyBuilder::new()
            .row(&[Some(&one)])
            .row(&[None])
            .trailer()
            .finish();
        let framed = copy_data_messages(&stream, 1);
        let mut expected = vec![b'd', 0, 0, 0, 4 + 19 + 10];
        expected.extend_from_slice(&stream[..29]);
        expected.extend_from_slice(&[b'd', 0, 0, 0, 4 + 6]);
        expected.extend_from_slice(&stream[29..35]);
        expected.extend_from_slice(&[b'd', 0, 0, 0, 4 + 2, 0xff, 0xff]);
        assert_eq!(framed, expected);

        // No rows: header and trailer in one message.
        let empty = CopyBuilder::new().trailer().finish();
        let mut expected = vec![b'd', 0, 0, 0, 4 + 21];
        expected.extend_from_slice(&empty);
        assert_eq!(copy_data_messages(&empty, 1), expected);
    }

    #[test]
    fn split_anywhere() {
        let framed = copy_data_split(b"abcdef", &[1, 1, 4]);
        assert_eq!(framed, b"d\0\0\0\x05ad\0\0\0\x07bcdd\0\0\0\x06ef".to_vec());
    }
}
