//! The framing of backend messages, without I/O: the message tags, the five-byte header, and
//! a walk over the whole CopyData messages at the front of a buffer.
//!
//! Every backend message is a one-byte tag, an `i32` length that counts itself and the body but
//! not the tag, then the body. During a `COPY ... TO STDOUT` PostgreSQL sends one CopyData
//! message per row; [`CopyDataWalk`] hands out their payloads as ranges of the buffer they
//! arrived in, so that a decoder can read rows in place and never sees a tag or a length.
//! The client ([`CopyOut::walk`](crate::CopyOut::walk)), the decoder's tests and its benchmarks
//! all walk messages with it.

use std::ops::Range;

/// Backend message tags (the first byte of each message), by name.
pub mod tag {
    /// CopyData: a piece of COPY data (one row, as PostgreSQL sends it).
    pub const COPY_DATA: u8 = b'd';
    /// CopyDone: the end of the COPY data.
    pub const COPY_DONE: u8 = b'c';
    /// CopyOutResponse: a COPY TO STDOUT starts.
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    /// CommandComplete: a statement finished (`COPY n`).
    pub const COMMAND_COMPLETE: u8 = b'C';
    /// ErrorResponse.
    pub const ERROR_RESPONSE: u8 = b'E';
    /// NoticeResponse.
    pub const NOTICE_RESPONSE: u8 = b'N';
    /// ParameterStatus: a run-time parameter changed.
    pub const PARAMETER_STATUS: u8 = b'S';
    /// NotificationResponse (LISTEN/NOTIFY).
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    /// ReadyForQuery: the server waits for the next query.
    pub const READY_FOR_QUERY: u8 = b'Z';
}

/// Bytes of a message header: the tag and the `i32` length.
pub const HEADER_LEN: usize = 5;

/// The largest body of a message that is read whole (RowDescription of 1600 columns, error
/// texts, catalog rows): a longer claim is a protocol error, checked before any buffer grows,
/// so a server claiming gigabytes costs nothing. CopyData is never read whole (a walk takes
/// only messages already in its buffer, and `CopyOut` hands the rest out as it arrives), so
/// it has no such cap: a row may be as large as PostgreSQL allows (1 GB).
pub const MAX_MESSAGE_LEN: usize = 64 << 20;

/// The header at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Fewer than [`HEADER_LEN`] bytes.
    Incomplete,
    /// A message: its tag and the length of its body (the declared length less its own four
    /// bytes).
    Message {
        /// The tag.
        tag: u8,
        /// Bytes of body after the header.
        body: usize,
    },
    /// A length below 4 (the length counts its own four bytes): a protocol violation.
    BadLength {
        /// The tag.
        tag: u8,
        /// The declared length.
        len: i32,
    },
}

/// Reads the header at the front of `buf`.
#[inline]
pub fn header(buf: &[u8]) -> Header {
    let Some(&[tag, a, b, c, d]) = buf.first_chunk::<HEADER_LEN>() else {
        return Header::Incomplete;
    };
    let len = i32::from_be_bytes([a, b, c, d]);
    match usize::try_from(len).ok().and_then(|l| l.checked_sub(4)) {
        Some(body) => Header::Message { tag, body },
        None => Header::BadLength { tag, len },
    }
}

/// A walk over the whole CopyData messages at the front of a buffer, yielding their payloads
/// as ranges of the buffer.
///
/// It stops at the first message that is not CopyData, has a bad length, or has not fully
/// arrived: those are for the checked path ([`CopyOut::fill`](crate::CopyOut::fill)), which
/// reports what is wrong. A consumer takes payloads with `next`, and when it stops part-way
/// into the last one it took, says where with [`finish`](CopyDataWalk::finish); the
/// [`Walked`] that returns tells the buffer's owner what was used.
#[derive(Debug, Clone)]
pub struct CopyDataWalk<'a> {
    buf: &'a [u8],
    /// Where the next message starts: the end of the last payload taken.
    pos: usize,
    /// Messages taken. (The payload bytes and where the last payload starts follow from
    /// these two: the walk's hot path keeps nothing else.)
    messages: usize,
}

impl<'a> CopyDataWalk<'a> {
    /// A walk from the start of `buf`, which must start at a message boundary.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        CopyDataWalk {
            buf,
            pos: 0,
            messages: 0,
        }
    }

    /// The buffer the payload ranges index.
    #[inline]
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    /// Ends the walk. `stopped_at` is `None` when every payload taken was used whole, else
    /// the index into [`buf`](CopyDataWalk::buf), within the last payload taken, of its first
    /// unused byte.
    ///
    /// # Panics
    /// If `stopped_at` is not within the last payload taken.
    #[inline]
    pub fn finish(self, stopped_at: Option<usize>) -> Walked {
        let data = self.pos - HEADER_LEN * self.messages;
        let left = match stopped_at {
            None => 0,
            Some(at) => {
                assert!(
                    self.last_payload_start()
                        .is_some_and(|start| (start..=self.pos).contains(&at)),
                    "stopped outside the last payload taken"
                );
                self.pos - at
            }
        };
        Walked {
            bytes: self.pos - left,
            data: data - left,
            left,
        }
    }

    /// Where the last payload taken starts, found again from the start of the buffer (only
    /// needed when a consumer stops inside it).
    fn last_payload_start(&self) -> Option<usize> {
        let mut start = None;
        let mut p = 0;
        for _ in 0..self.messages {
            let Header::Message { body, .. } = header(&self.buf[p..]) else {
                return None;
            };
            start = Some(p + HEADER_LEN);
            p += HEADER_LEN + body;
        }
        start
    }
}

impl Iterator for CopyDataWalk<'_> {
    type Item = Range<usize>;

    /// The next whole CopyData message's payload, or `None` (for good: a walk does not
    /// resume past what stopped it).
    #[inline]
    fn next(&mut self) -> Option<Range<usize>> {
        let rest = self.buf.get(self.pos..)?;
        let Header::Message {
            tag: tag::COPY_DATA,
            body,
        } = header(rest)
        else {
            return None;
        };
        let start = self.pos + HEADER_LEN;
        let end = start.checked_add(body).filter(|&e| e <= self.buf.len())?;
        self.pos = end;
        self.messages += 1;
        Some(start..end)
    }
}

/// What a [`CopyDataWalk`] used, for the owner of its buffer
/// ([`CopyOut::consume_walk`](crate::CopyOut::consume_walk)): made only by
/// [`CopyDataWalk::finish`], so that what is consumed is always what was walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a walk's use must be given to the buffer it walked"]
pub struct Walked {
    bytes: usize,
    data: usize,
    left: usize,
}

impl Walked {
    /// Bytes of the buffer to advance past: whole messages, and the used part of the last
    /// one's payload.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Payload bytes used.
    pub fn data(&self) -> usize {
        self.data
    }

    /// Payload bytes of the last message taken that were not used (0 when none).
    pub fn left(&self) -> usize {
        self.left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn headers() {
        assert_eq!(header(b"d\0\0\0"), Header::Incomplete);
        assert_eq!(
            header(&message(b'd', b"abc")),
            Header::Message { tag: b'd', body: 3 }
        );
        let mut huge = vec![b'd'];
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            header(&huge),
            Header::Message {
                tag: b'd',
                body: i32::MAX as usize - 4
            }
        );
        assert_eq!(CopyDataWalk::new(&huge).next(), None, "not arrived");
        for len in [i32::MIN, -1, 0, 3] {
            let mut m = vec![b'd'];
            m.extend_from_slice(&len.to_be_bytes());
            assert_eq!(header(&m), Header::BadLength { tag: b'd', len });
        }
    }

    #[test]
    fn walks_whole_copy_data_and_stops_at_anything_else() {
        let mut buf = message(b'd', b"one");
        buf.extend(message(b'd', b""));
        buf.extend(message(b'd', b"three"));
        buf.extend(message(b'C', b"COPY 2\0"));
        buf.extend(message(b'd', b"after"));
        let mut walk = CopyDataWalk::new(&buf);
        let payloads: Vec<&[u8]> = walk.by_ref().map(|r| &buf[r]).collect();
        assert_eq!(payloads, [&b"one"[..], b"", b"three"]);
        let walked = walk.finish(None);
        assert_eq!((walked.bytes(), walked.data(), walked.left()), (23, 8, 0));
        assert_eq!(buf[walked.bytes()], b'C');
    }

    #[test]
    fn a_message_cut_off_or_with_a_bad_length_stops_the_walk() {
        let whole = message(b'd', b"abcdef");
        for cut in 0..whole.len() {
            let mut buf = message(b'd', b"x");
            buf.extend_from_slice(&whole[..cut]);
            let mut walk = CopyDataWalk::new(&buf);
            assert_eq!(walk.next(), Some(5..6));
            assert_eq!(walk.next(), None, "cut at {cut}");
            assert_eq!(walk.finish(None).bytes(), 6);
        }
        let mut buf = vec![b'd'];
        buf.extend_from_slice(&2i32.to_be_bytes());
        assert_eq!(CopyDataWalk::new(&buf).next(), None);
    }

    #[test]
    fn stopping_inside_the_last_payload_gives_back_its_rest() {
        let mut buf = message(b'd', b"abc");
        buf.extend(message(b'd', b"defgh"));
        let mut walk = CopyDataWalk::new(&buf);
        walk.next();
        let second = walk.next().unwrap();
        let walked = walk.finish(Some(second.start + 2));
        assert_eq!((walked.bytes(), walked.data(), walked.left()), (15, 5, 3));
        assert_eq!(&buf[walked.bytes()..], b"fgh");
    }

    #[test]
    #[should_panic(expected = "stopped outside the last payload taken")]
    fn stopping_before_the_last_payload_is_a_bug() {
        let mut buf = message(b'd', b"abc");
        buf.extend(message(b'd', b"defgh"));
        let mut walk = CopyDataWalk::new(&buf);
        walk.next();
        walk.next();
        let _ = walk.finish(Some(1));
    }
}
