//! Arbitrary bytes, or a run of messages built from them, through the CopyData walk: every
//! payload it yields is a whole CopyData message's, in order and back to back; it stops exactly
//! where the next message is not a whole CopyData; and `finish` accounts for what was taken.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgarrow_protocol::framing::{CopyDataWalk, HEADER_LEN, Header, header, tag};

/// The header at the front of `buf`, read directly.
fn expected_header(buf: &[u8]) -> Header {
    if buf.len() < 5 {
        return Header::Incomplete;
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len >= 4 {
        Header::Message {
            tag: buf[0],
            body: len as usize - 4,
        }
    } else {
        Header::BadLength { tag: buf[0], len }
    }
}

/// Whether a whole CopyData message starts at the front of `buf`.
fn whole_copy_data(buf: &[u8]) -> bool {
    match expected_header(buf) {
        Header::Message { tag, body } => tag == b'd' && body <= buf.len() - 5,
        _ => false,
    }
}

/// Messages built from the input, so that the walk meets long runs of valid CopyData: each
/// piece is a control byte (tag, and whether the length is made wrong) and a body length byte.
fn build(mut data: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    while let [control, n, rest @ ..] = data {
        let len = (*n as usize).min(rest.len());
        let (body, rest) = rest.split_at(len);
        let tag = match control & 0x0f {
            0..=11 => tag::COPY_DATA,
            12 => tag::COPY_DONE,
            13 => tag::NOTICE_RESPONSE,
            14 => tag::ERROR_RESPONSE,
            _ => *control,
        };
        let declared: i32 = match control >> 4 {
            0..=12 => body.len() as i32 + 4,
            // One byte more than follows: cut off, or the next message's tag taken as body.
            13 => body.len() as i32 + 5,
            // Below 4: a bad length.
            14 => i32::from(*n % 8) - 4,
            // Anything.
            _ => i32::from_be_bytes([body.len() as u8, *n, *control, 0xff]),
        };
        buf.push(tag);
        buf.extend_from_slice(&declared.to_be_bytes());
        buf.extend_from_slice(body);
        data = rest;
    }
    // Whatever is left: a cut-off tail.
    buf.extend_from_slice(data);
    buf
}

fuzz_target!(|data: &[u8]| {
    let [mode, pick, take, rest @ ..] = data else {
        return;
    };
    let built;
    let buf: &[u8] = if mode & 1 == 0 {
        rest
    } else {
        built = build(rest);
        &built
    };
    assert_eq!(HEADER_LEN, 5);
    assert_eq!(header(buf), expected_header(buf));

    // The whole walk.
    let mut walk = CopyDataWalk::new(buf);
    assert!(std::ptr::eq(walk.buf(), buf));
    let mut ranges = Vec::new();
    for r in walk.by_ref() {
        ranges.push(r);
    }
    // A walk does not resume past what stopped it.
    assert_eq!(walk.next(), None);
    assert_eq!(walk.next(), None);

    let mut end = 0; // where the next message starts
    let mut sum = 0;
    for r in &ranges {
        assert!(
            r.start <= r.end && r.end <= buf.len(),
            "{r:?} outside {}",
            buf.len()
        );
        assert_eq!(
            r.start,
            end + 5,
            "payloads are back to back, after a header each"
        );
        let h = &buf[end..r.start];
        assert_eq!(h[0], b'd');
        let declared = i32::from_be_bytes([h[1], h[2], h[3], h[4]]);
        assert_eq!(declared as i64, r.len() as i64 + 4);
        assert_eq!(
            header(&buf[end..]),
            Header::Message {
                tag: b'd',
                body: r.len()
            }
        );
        end = r.end;
        sum += r.len();
    }
    // It stopped exactly at the first thing that is not a whole CopyData message.
    assert!(!whole_copy_data(&buf[end..]), "stopped early at {end}");
    assert_eq!(header(&buf[end..]), expected_header(&buf[end..]));

    // finish(None): everything taken was used.
    let w = walk.clone().finish(None);
    assert_eq!((w.bytes(), w.data(), w.left()), (end, sum, 0));

    // finish(Some(at)) inside the last payload (either end included).
    if let Some(last) = ranges.last() {
        let at = last.start + *pick as usize % (last.len() + 1);
        let w = walk.finish(Some(at));
        assert_eq!(w.bytes(), at);
        assert_eq!(w.left(), last.end - at);
        assert_eq!(w.bytes() + w.left(), last.end);
        assert_eq!(w.data(), sum - w.left());
    }

    // A walk stopped part-way: the same payloads, and finish counts only those taken.
    let k = *take as usize % (ranges.len() + 1);
    let mut walk = CopyDataWalk::new(buf);
    let first: Vec<_> = walk.by_ref().take(k).collect();
    assert_eq!(first, ranges[..k]);
    let taken_end = first.last().map_or(0, |r| r.end);
    let taken_sum: usize = first.iter().map(|r| r.len()).sum();
    let w = walk.clone().finish(None);
    assert_eq!((w.bytes(), w.data(), w.left()), (taken_end, taken_sum, 0));
    if let Some(last) = first.last() {
        let at = last.start + *pick as usize % (last.len() + 1);
        let w = walk.finish(Some(at));
        assert_eq!((w.bytes(), w.left()), (at, last.end - at));
        assert_eq!(w.data(), taken_sum - w.left());
    }
});
