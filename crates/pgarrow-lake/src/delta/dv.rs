//! Deletion vectors: the row positions a Delta table deletes from a data file, from the
//! descriptor an `add` action carries (PROTOCOL.md, "Deletion Vector Descriptor Schema" and
//! "Deletion Vector Format"): inline (Z85 text in the log), or in a file of the table (by a
//! UUID, or an absolute path), each a 64-bit roaring bitmap in the portable format behind a
//! magic number, checked against its size, checksum and cardinality. Written ([`DvFile`]) as
//! a mirror writes them: one file per commit, holding a vector for each data file that loses
//! rows, each named by its offset.

use pgarrow::io::{Location, StorageOptions};
use pgarrow::{ErrorKind, Result};

use super::log::DeletionVector;

/// The magic number before a deletion vector's bitmap (the portable format).
const MAGIC: u32 = 1_681_511_377;

/// The magic number of Delta's older native format.
const NATIVE_MAGIC: u32 = 1_681_511_376;

/// Z85's alphabet (ZeroMQ RFC 32): a digit's value is its place.
const Z85: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

fn malformed(why: impl Into<String>) -> pgarrow::Error {
    ErrorKind::InvalidInput(format!("a malformed deletion vector: {}", why.into())).into()
}

/// Bytes (a multiple of 4 long) as Z85 text.
fn z85_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() / 4 * 5);
    for chunk in bytes.chunks(4) {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        let mut n = u32::from_be_bytes(word);
        let mut digits = [0u8; 5];
        for d in digits.iter_mut().rev() {
            *d = Z85[(n % 85) as usize];
            n /= 85;
        }
        out.extend(digits.iter().map(|&d| d as char));
    }
    out
}

/// Z85 text as bytes: each 5 characters a big-endian 32-bit number in base 85.
fn z85_decode(text: &str) -> Result<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(5) {
        return Err(malformed(format!(
            "its Z85 text is {} characters, not a multiple of 5",
            bytes.len()
        )));
    }
    let mut out = Vec::with_capacity(bytes.len() / 5 * 4);
    for chunk in bytes.chunks(5) {
        let mut n: u64 = 0;
        for &c in chunk {
            let digit = Z85
                .iter()
                .position(|&z| z == c)
                .ok_or_else(|| malformed(format!("{:?} is not a Z85 character", c as char)))?;
            n = n * 85 + digit as u64;
        }
        let n = u32::try_from(n).map_err(|_| malformed("a Z85 group past 32 bits"))?;
        out.extend_from_slice(&n.to_be_bytes());
    }
    Ok(out)
}

/// A cursor over little-endian numbers, each read checked against the bytes left.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| malformed("its bitmap ends early"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

/// The positions of a `RoaringBitmapArray`, ascending: the magic number 1681511377
/// (little-endian), then a 64-bit roaring bitmap in the portable format, as the protocol
/// specifies and writers write; or Delta's older "native" form the protocol's own inline
/// example is in: the magic number 1681511376 (big-endian), the number of 32-bit bitmaps and
/// each one's size (big-endian), the bitmaps (of the high keys 0, 1, ...).
///
/// # Errors
/// A bitmap that is not one; more than `limit` positions (a run container names up to 65,536
/// rows in 4 bytes: the log's cardinality bounds what a vector may claim).
pub(crate) fn positions(bitmap: &[u8], limit: u64) -> Result<Vec<u64>> {
    let mut r = Reader {
        bytes: bitmap,
        at: 0,
    };
    let first = r.take(4)?;
    let (le, be) = (
        u32::from_le_bytes([first[0], first[1], first[2], first[3]]),
        u32::from_be_bytes([first[0], first[1], first[2], first[3]]),
    );
    let mut out = Vec::new();
    if le == MAGIC {
        let buckets = r.u64()?;
        for _ in 0..buckets {
            let high = u64::from(r.u32()?) << 32;
            read_roaring32(&mut r, limit, &mut out, high)?;
        }
    } else if be == NATIVE_MAGIC {
        let be32 = |r: &mut Reader<'_>| -> Result<u32> {
            let b = r.take(4)?;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let count = be32(&mut r)?;
        for high in 0..u64::from(count) {
            let size = be32(&mut r)? as usize;
            let end = r.at.saturating_add(size);
            read_roaring32(&mut r, limit, &mut out, high << 32)?;
            if r.at != end {
                return Err(malformed(format!("bitmap {high} is not {size} bytes")));
            }
        }
    } else {
        return Err(malformed(
            "its magic number is neither 1681511377 nor 1681511376",
        ));
    }
    if r.at != bitmap.len() {
        return Err(malformed(format!(
            "{} bytes past its bitmap",
            bitmap.len() - r.at
        )));
    }
    Ok(out)
}

/// One 32-bit roaring bitmap (RoaringFormatSpec), each value, above `high`, pushed to `out`
/// in order, up to `limit` values in all.
fn read_roaring32(r: &mut Reader<'_>, limit: u64, out: &mut Vec<u64>, high: u64) -> Result<()> {
    let mut each = |low: u32| -> Result<()> {
        if out.len() as u64 >= limit {
            return Err(malformed(format!(
                "more than the {limit} positions it may hold"
            )));
        }
        out.push(high | u64::from(low));
        Ok(())
    };
    const SERIAL_COOKIE_NO_RUNCONTAINER: u32 = 12346;
    const SERIAL_COOKIE: u32 = 12347;
    const NO_OFFSET_THRESHOLD: usize = 4;
    let cookie = r.u32()?;
    let (size, runs): (usize, Option<Vec<u8>>) = if cookie & 0xFFFF == SERIAL_COOKIE {
        let size = (cookie >> 16) as usize + 1;
        let flags = r.take(size.div_ceil(8))?.to_vec();
        (size, Some(flags))
    } else if cookie == SERIAL_COOKIE_NO_RUNCONTAINER {
        (r.u32()? as usize, None)
    } else {
        return Err(malformed(format!("an unknown roaring cookie {cookie}")));
    };
    if size > 1 << 16 {
        return Err(malformed(format!("{size} containers in one bucket")));
    }
    let mut headers = Vec::with_capacity(size);
    for _ in 0..size {
        let key = r.u16()?;
        let cardinality = usize::from(r.u16()?) + 1;
        headers.push((key, cardinality));
    }
    if runs.is_none() || size >= NO_OFFSET_THRESHOLD {
        r.take(size * 4)?;
    }
    for (k, (key, cardinality)) in headers.into_iter().enumerate() {
        let high16 = u32::from(key) << 16;
        let is_run = runs
            .as_ref()
            .is_some_and(|flags| flags[k / 8] & (1 << (k % 8)) != 0);
        if is_run {
            let n = r.u16()?;
            for _ in 0..n {
                let start = u32::from(r.u16()?);
                let length = u32::from(r.u16()?);
                if start + length > 0xFFFF {
                    return Err(malformed("a run past its container"));
                }
                for v in start..=start + length {
                    each(high16 | v)?;
                }
            }
        } else if cardinality <= 4096 {
            for _ in 0..cardinality {
                each(high16 | u32::from(r.u16()?))?;
            }
        } else {
            let words = r.take(8192)?;
            for (w, word) in words.chunks(8).enumerate() {
                let mut a = [0u8; 8];
                a.copy_from_slice(word);
                let mut bits = u64::from_le_bytes(a);
                while bits != 0 {
                    let b = bits.trailing_zeros();
                    each(high16 | (w as u32 * 64 + b))?;
                    bits &= bits - 1;
                }
            }
        }
    }
    Ok(())
}

/// The UUID of a `u` descriptor's 20 Z85 characters, in its canonical text.
fn uuid_text(z85: &str) -> Result<String> {
    let b = z85_decode(z85)?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// The file a deletion vector is in, when it is in one (not inline): its UUID-named file under
/// the table at `root`, or its absolute path.
///
/// # Errors
/// A UUID path that is not one.
pub(crate) fn file_of(
    dv: &DeletionVector,
    root: &Location,
    storage: &StorageOptions,
) -> Result<Option<Location>> {
    Ok(match dv.storage_type.as_str() {
        "p" => Some(Location::parse(&dv.path_or_inline_dv, storage)?),
        "u" => {
            let text = &dv.path_or_inline_dv;
            if text.len() < 20 || !text.is_char_boundary(text.len() - 20) {
                return Err(malformed(format!("the UUID path {text:?}")));
            }
            let (prefix, id) = text.split_at(text.len() - 20);
            let name = format!("deletion_vector_{}.bin", uuid_text(id)?);
            Some(match prefix.is_empty() {
                true => root.join_path(&name),
                false => root.join_path(&format!("{prefix}/{name}")),
            })
        }
        _ => None,
    })
}

/// The positions (from 0, ascending) the deletion vector `dv` deletes from a data file of
/// the table at `root`.
///
/// # Errors
/// A descriptor, file or bitmap that is not what the protocol says (named); a cardinality
/// other than the positions' count; the file's storage's errors.
pub(crate) fn read(
    dv: &DeletionVector,
    root: &Location,
    storage: &StorageOptions,
) -> Result<Vec<u64>> {
    let size = usize::try_from(dv.size_in_bytes)
        .map_err(|_| malformed(format!("a size of {} bytes", dv.size_in_bytes)))?;
    let bitmap = match dv.storage_type.as_str() {
        "i" => {
            let mut bytes = z85_decode(&dv.path_or_inline_dv)?;
            if bytes.len() < size {
                return Err(malformed("its inline text is shorter than its size"));
            }
            bytes.truncate(size);
            bytes
        }
        "u" | "p" => {
            let file = file_of(dv, root, storage)?.unwrap_or_else(|| root.clone());
            let bytes = file.read()?;
            let offset = usize::try_from(dv.offset.unwrap_or(1))
                .map_err(|_| malformed("a negative offset"))?;
            let shown = file.to_string();
            let at = |from: usize, n: usize| -> Result<&[u8]> {
                bytes
                    .get(from..from.saturating_add(n))
                    .ok_or_else(|| malformed(format!("{shown} ends before its deletion vector")))
            };
            if bytes.first() != Some(&1) {
                return Err(malformed(format!("{shown} is not of format version 1")));
            }
            let stored = u32::from_be_bytes(at(offset, 4)?.try_into().unwrap_or_default());
            if stored as usize != size {
                return Err(malformed(format!(
                    "{shown} holds {stored} bytes at offset {offset}, and the log says {size}"
                )));
            }
            let data = at(offset + 4, size)?.to_vec();
            let checksum =
                u32::from_be_bytes(at(offset + 4 + size, 4)?.try_into().unwrap_or_default());
            let mut crc = flate2::Crc::new();
            crc.update(&data);
            if crc.sum() != checksum {
                return Err(malformed(format!("{shown}: its checksum does not match")));
            }
            data
        }
        other => return Err(malformed(format!("the storage type {other:?}"))),
    };
    let limit = u64::try_from(dv.cardinality)
        .map_err(|_| malformed(format!("a cardinality of {}", dv.cardinality)))?;
    let out = positions(&bitmap, limit.saturating_add(1))?;
    if out.len() as i64 != dv.cardinality {
        return Err(malformed(format!(
            "it holds {} positions, and the log says {}",
            out.len(),
            dv.cardinality
        )));
    }
    Ok(out)
}

/// `positions` (ascending, distinct) as a `RoaringBitmapArray`: the magic number, then the
/// portable 64-bit roaring bitmap, each bucket's containers arrays (up to 4,096 values) or
/// bitmaps, without runs.
pub(crate) fn bitmap(positions: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + positions.len() * 2);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    let buckets = split_by(positions, |p| p >> 32);
    out.extend_from_slice(&(buckets.len() as u64).to_le_bytes());
    for bucket in buckets {
        out.extend_from_slice(&((bucket[0] >> 32) as u32).to_le_bytes());
        let containers = split_by(bucket, |p| (p >> 16) & 0xFFFF);
        out.extend_from_slice(&12346u32.to_le_bytes());
        out.extend_from_slice(&(containers.len() as u32).to_le_bytes());
        for c in &containers {
            out.extend_from_slice(&(((c[0] >> 16) & 0xFFFF) as u16).to_le_bytes());
            out.extend_from_slice(&((c.len() - 1) as u16).to_le_bytes());
        }
        // The offset of each container from the bucket's cookie.
        let mut at = 8 + containers.len() * 8;
        for c in &containers {
            out.extend_from_slice(&(at as u32).to_le_bytes());
            at += if c.len() <= 4096 { c.len() * 2 } else { 8192 };
        }
        for c in &containers {
            if c.len() <= 4096 {
                for &p in *c {
                    out.extend_from_slice(&((p & 0xFFFF) as u16).to_le_bytes());
                }
            } else {
                let mut words = [0u64; 1024];
                for &p in *c {
                    let low = (p & 0xFFFF) as usize;
                    words[low / 64] |= 1 << (low % 64);
                }
                for w in words {
                    out.extend_from_slice(&w.to_le_bytes());
                }
            }
        }
    }
    out
}

/// `values` (ascending) in runs of one `key`.
fn split_by(values: &[u64], key: impl Fn(u64) -> u64) -> Vec<&[u64]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=values.len() {
        if i == values.len() || key(values[i]) != key(values[start]) {
            out.push(&values[start..i]);
            start = i;
        }
    }
    out
}

/// One commit's deletion vector file: format version 1, then each vector's size, bitmap and
/// checksum (big-endian), named `deletion_vector_<uuid>.bin` at the table's root.
pub(crate) struct DvFile {
    uuid: [u8; 16],
    pub(crate) bytes: Vec<u8>,
}

impl DvFile {
    /// An empty file of a new UUID.
    pub(crate) fn new() -> DvFile {
        let text = crate::common::new_uuid().replace('-', "");
        let mut uuid = [0u8; 16];
        for (i, b) in uuid.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        DvFile {
            uuid,
            bytes: vec![1],
        }
    }

    /// The file's name, relative to the table's root.
    pub(crate) fn name(&self) -> String {
        let hex: String = self.uuid.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "deletion_vector_{}-{}-{}-{}-{}.bin",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    /// Adds the vector of `positions` (ascending, distinct): its descriptor.
    pub(crate) fn push(&mut self, positions: &[u64]) -> Result<DeletionVector> {
        let data = bitmap(positions);
        let size = i32::try_from(data.len())
            .map_err(|_| malformed(format!("{} bytes for one data file", data.len())))?;
        let offset = i32::try_from(self.bytes.len())
            .map_err(|_| malformed("a deletion vector file past 2 GiB"))?;
        self.bytes.extend_from_slice(&(size as u32).to_be_bytes());
        self.bytes.extend_from_slice(&data);
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        self.bytes.extend_from_slice(&crc.sum().to_be_bytes());
        Ok(DeletionVector {
            storage_type: "u".into(),
            path_or_inline_dv: z85_encode(&self.uuid),
            offset: Some(offset),
            size_in_bytes: size,
            cardinality: positions.len() as i64,
        })
    }
}

/// For the fuzz target: arbitrary bytes as a deletion vector's bitmap, and as Z85 text; the
/// positions a bitmap holds (and the bytes read as positions) written and read back the same.
///
/// # Panics
/// When a written bitmap does not read back as its positions.
#[doc(hidden)]
pub fn fuzz_positions(bytes: &[u8]) -> usize {
    let round_trip = |mut p: Vec<u64>| {
        p.sort_unstable();
        p.dedup();
        let back = positions(&bitmap(&p), p.len() as u64 + 1);
        assert_eq!(
            back.ok().as_ref(),
            Some(&p),
            "a written bitmap reads back otherwise"
        );
    };
    let found = positions(bytes, 1 << 20).map_or(0, |p| {
        let n = p.len();
        round_trip(p);
        n
    });
    // Each 4 bytes a position, spread over a few buckets and containers.
    round_trip(
        bytes
            .chunks_exact(4)
            .map(|c| {
                let n = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                (u64::from(n >> 29) << 32) | u64::from(n & 0x3_FFFF)
            })
            .collect(),
    );
    let text = String::from_utf8_lossy(bytes);
    found + z85_decode(&text).map_or(0, |b| b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocols_inline_example_reads_as_it_says() {
        // PROTOCOL.md, "JSON Example 3 — Inline": rows 3, 4, 7, 11, 18, 29.
        let dv = DeletionVector {
            storage_type: "i".into(),
            path_or_inline_dv: "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L".into(),
            offset: None,
            size_in_bytes: 40,
            cardinality: 6,
        };
        let root = Location::parse("/nowhere", &StorageOptions::default()).unwrap();
        assert_eq!(
            read(&dv, &root, &StorageOptions::default()).unwrap(),
            vec![3, 4, 7, 11, 18, 29]
        );
        // A cardinality the bitmap does not hold is an error, not a guess.
        let wrong = DeletionVector {
            cardinality: 5,
            ..dv
        };
        let e = read(&wrong, &root, &StorageOptions::default()).unwrap_err();
        assert!(e.to_string().contains("6 positions"), "{e}");
    }

    #[test]
    fn the_protocols_uuid_example_names_its_file() {
        // "JSON Example 1": prefix ab, then the UUID's 20 characters.
        assert_eq!(
            uuid_text("^-aqEH.-t@S}K{vb[*k^").unwrap(),
            "d2c639aa-8816-431a-aaf6-d3fe2512ff61"
        );
    }

    /// A bitmap of one bucket `high` holding `body` (a 32-bit roaring serialization).
    fn bitmap(high: u32, body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_le_bytes().to_vec();
        out.extend_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&high.to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn run_and_bitmap_containers_and_high_buckets() {
        // Runs: cookie 12347 with one container (size - 1 = 0 in the high 16 bits), its
        // run flag set, no offsets (fewer than 4 containers); runs [10..=12] and [100..=100].
        let mut body = (12347u32).to_le_bytes().to_vec();
        body.push(1);
        body.extend_from_slice(&0u16.to_le_bytes()); // key
        body.extend_from_slice(&3u16.to_le_bytes()); // cardinality - 1
        body.extend_from_slice(&2u16.to_le_bytes()); // two runs
        for (start, len) in [(10u16, 2u16), (100, 0)] {
            body.extend_from_slice(&start.to_le_bytes());
            body.extend_from_slice(&len.to_le_bytes());
        }
        assert_eq!(
            positions(&bitmap(1, &body), 1 << 20).unwrap(),
            vec![
                (1 << 32) + 10,
                (1 << 32) + 11,
                (1 << 32) + 12,
                (1 << 32) + 100
            ]
        );
        // A bitmap container (more than 4096 values): every even value of key 2.
        let mut body = (12346u32).to_le_bytes().to_vec();
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&2u16.to_le_bytes());
        body.extend_from_slice(&(32768u16 - 1).to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes()); // offset
        for _ in 0..1024 {
            body.extend_from_slice(&0x5555_5555_5555_5555u64.to_le_bytes());
        }
        let got = positions(&bitmap(0, &body), 1 << 20).unwrap();
        assert_eq!(got.len(), 32768);
        assert_eq!(&got[..2], &[2 << 16, (2 << 16) + 2]);
        // Truncated: an error, not a panic.
        let mut short = bitmap(0, &body);
        short.truncate(100);
        assert!(positions(&short, 1 << 20).is_err());
        assert!(positions(&[0, 1, 2], 1 << 20).is_err());
        // More positions than allowed: an error as soon as they pass it.
        let e = positions(&bitmap(0, &body), 100).unwrap_err().to_string();
        assert!(e.contains("100 positions"), "{e}");
    }

    #[test]
    fn written_vectors_read_back_from_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let storage = StorageOptions::default();
        let root = Location::parse(dir.path().to_str().unwrap(), &storage).unwrap();
        let small = vec![0, 3, 9, 70_000];
        // A bitmap container (past 4,096 values in one), and a bucket past 32 bits.
        let mut large: Vec<u64> = (0..10_000).map(|p| p * 3).collect();
        large.extend([(1 << 32) + 5, (1 << 32) + 6]);
        let mut file = DvFile::new();
        let a = file.push(&small).unwrap();
        let b = file.push(&large).unwrap();
        assert_eq!(a.offset, Some(1));
        assert_eq!((a.cardinality, b.cardinality), (4, 10_002));
        root.join_path(&file.name())
            .write_atomically(&file.bytes)
            .unwrap();
        assert_eq!(read(&a, &root, &storage).unwrap(), small);
        assert_eq!(read(&b, &root, &storage).unwrap(), large);
        // The UUID in the descriptor names the file.
        assert_eq!(
            format!(
                "deletion_vector_{}.bin",
                uuid_text(&a.path_or_inline_dv).unwrap()
            ),
            file.name()
        );
        // Inline, the same bitmap reads the same.
        let data = super::bitmap(&small);
        let mut padded = data.clone();
        padded.resize(data.len().div_ceil(4) * 4, 0);
        let inline = DeletionVector {
            storage_type: "i".into(),
            path_or_inline_dv: z85_encode(&padded),
            offset: None,
            size_in_bytes: data.len() as i32,
            cardinality: 4,
        };
        assert_eq!(read(&inline, &root, &storage).unwrap(), small);
        assert_eq!(z85_decode(&z85_encode(&padded)).unwrap(), padded);
    }
}
