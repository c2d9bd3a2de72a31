//! Deletion vectors: the row positions a Delta table deletes from a data file, from the
//! descriptor an `add` action carries (PROTOCOL.md, "Deletion Vector Descriptor Schema" and
//! "Deletion Vector Format"): inline (Z85 text in the log), or in a file of the table (by a
//! UUID, or an absolute path), each a 64-bit roaring bitmap in the portable format behind a
//! magic number, checked against its size, checksum and cardinality. Written ([`DvFile`]) as
//! a mirror writes them: one file per commit, holding a vector for each data file that loses
//! rows, each named by its offset.

use pgarrow::io::{Location, StorageOptions};
use pgarrow::{ErrorKind, Result};
use roaring::{RoaringBitmap, RoaringTreemap};

use crate::live::Positions;

use super::log::DeletionVector;

/// The magic number before a deletion vector's bitmap (the portable format).
const MAGIC: u32 = 1_681_511_377;

/// The magic number of Delta's older native format.
const NATIVE_MAGIC: u32 = 1_681_511_376;

fn malformed(why: impl Into<String>) -> pgarrow::Error {
    ErrorKind::InvalidInput(format!("a malformed deletion vector: {}", why.into())).into()
}

/// The `roaring` crate's refusal of a bitmap, as ours.
fn unreadable(e: std::io::Error) -> pgarrow::Error {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => malformed("its bitmap ends early"),
        _ => malformed(format!("its bitmap: {e}")),
    }
}

/// Z85 text (ZeroMQ RFC 32) as bytes: whole groups of 5 characters, each 4 bytes.
///
/// # Errors
/// Text that is not Z85, or ends in the `z85` crate's own padded group (a last group opening
/// with `#`, which plain Z85 never writes).
fn z85_decode(text: &str) -> Result<Vec<u8>> {
    let bytes = z85::decode(text).map_err(|e| malformed(format!("its Z85 text: {e}")))?;
    if bytes.len() != text.len() / 5 * 4 {
        return Err(malformed("its Z85 text ends in a padded group"));
    }
    Ok(bytes)
}

/// The positions of a `RoaringBitmapArray`, ascending: the magic number 1681511377
/// (little-endian), then a 64-bit roaring bitmap in the portable format (a `RoaringTreemap`
/// as the `roaring` crate serializes it), as the protocol specifies and writers write; or
/// Delta's older "native" form the protocol's own inline example is in: the magic number
/// 1681511376 (big-endian), the number of 32-bit bitmaps and each one's size (big-endian), the
/// bitmaps (of the high keys 0, 1, ...).
///
/// The bitmap is read whole before its positions are counted: a run container names up to
/// 65,536 rows in a few bytes and is held as a bitmap of 8 KiB, so what it takes is bounded
/// by some 600 times its bytes; the positions, 8 bytes each, are listed only under `limit`.
///
/// # Errors
/// A bitmap that is not one; more than `limit` positions (the log's cardinality bounds what a
/// vector may claim).
pub(crate) fn positions(bitmap: &[u8], limit: u64) -> Result<Vec<u64>> {
    Ok(treemap(bitmap, limit)?.iter().collect())
}

/// [`positions`] as the bitmap it reads.
pub(crate) fn treemap(bitmap: &[u8], limit: u64) -> Result<RoaringTreemap> {
    let (&magic, mut rest) = bitmap
        .split_first_chunk::<4>()
        .ok_or_else(|| malformed("its bitmap ends early"))?;
    let map = if u32::from_le_bytes(magic) == MAGIC {
        RoaringTreemap::deserialize_from(&mut rest).map_err(unreadable)?
    } else if u32::from_be_bytes(magic) == NATIVE_MAGIC {
        native(&mut rest)?
    } else {
        return Err(malformed(
            "its magic number is neither 1681511377 nor 1681511376",
        ));
    };
    if !rest.is_empty() {
        return Err(malformed(format!("{} bytes past its bitmap", rest.len())));
    }
    if map.len() > limit {
        return Err(malformed(format!(
            "more than the {limit} positions it may hold"
        )));
    }
    Ok(map)
}

/// The native form's 32-bit bitmaps after its magic number, each behind its size.
fn native(rest: &mut &[u8]) -> Result<RoaringTreemap> {
    fn be32(rest: &mut &[u8]) -> Result<u32> {
        let (&n, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed("its bitmap ends early"))?;
        *rest = tail;
        Ok(u32::from_be_bytes(n))
    }
    let count = be32(rest)?;
    let mut bitmaps = Vec::new();
    for high in 0..count {
        let size = be32(rest)? as usize;
        let (mut body, tail) = rest
            .split_at_checked(size)
            .ok_or_else(|| malformed("its bitmap ends early"))?;
        bitmaps.push((
            high,
            RoaringBitmap::deserialize_from(&mut body).map_err(unreadable)?,
        ));
        if !body.is_empty() {
            return Err(malformed(format!("bitmap {high} is not {size} bytes")));
        }
        *rest = tail;
    }
    Ok(RoaringTreemap::from_bitmaps(bitmaps))
}

/// The UUID of a `u` descriptor's 20 Z85 characters, in its canonical text.
fn uuid_text(z85: &str) -> Result<String> {
    let bytes = z85_decode(z85)?;
    let uuid = uuid::Uuid::from_slice(&bytes)
        .map_err(|_| malformed(format!("{z85:?} is not a UUID's 20 characters")))?;
    Ok(uuid.to_string())
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
) -> Result<Positions> {
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
    let out = Positions::from(treemap(&bitmap, limit.saturating_add(1))?);
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
/// portable 64-bit roaring bitmap (a `RoaringTreemap` serialized), each bucket's containers
/// arrays (up to 4,096 values) or bitmaps, without runs (the `roaring` crate of 0.10 writes no
/// run containers: the bytes stay what every earlier pgarrow wrote).
pub(crate) fn bitmap(positions: &Positions) -> Vec<u8> {
    let map = positions.bitmap();
    let mut out = Vec::with_capacity(4 + map.serialized_size());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    map.serialize_into(&mut out)
        .expect("writing into a Vec does not fail");
    out
}

/// One commit's deletion vector file: format version 1, then each vector's size, bitmap and
/// checksum (big-endian), named `deletion_vector_<uuid>.bin` at the table's root.
pub(crate) struct DvFile {
    uuid: uuid::Uuid,
    pub(crate) bytes: Vec<u8>,
}

impl DvFile {
    /// An empty file of a new UUID.
    pub(crate) fn new() -> DvFile {
        DvFile {
            uuid: uuid::Uuid::new_v4(),
            bytes: vec![1],
        }
    }

    /// The file's name, relative to the table's root.
    pub(crate) fn name(&self) -> String {
        format!("deletion_vector_{}.bin", self.uuid)
    }

    /// Adds the vector of `positions` (ascending, distinct): its descriptor.
    pub(crate) fn push(&mut self, positions: &Positions) -> Result<DeletionVector> {
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
            path_or_inline_dv: z85::encode(self.uuid.as_bytes()),
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
        let back = positions(&bitmap(&Positions::from(p.clone())), p.len() as u64 + 1);
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
        let a = file.push(&small.clone().into()).unwrap();
        let b = file.push(&large.clone().into()).unwrap();
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
        let data = super::bitmap(&small.clone().into());
        let mut padded = data.clone();
        padded.resize(data.len().div_ceil(4) * 4, 0);
        let inline = DeletionVector {
            storage_type: "i".into(),
            path_or_inline_dv: z85::encode(&padded),
            offset: None,
            size_in_bytes: data.len() as i32,
            cardinality: 4,
        };
        assert_eq!(read(&inline, &root, &storage).unwrap(), small);
        assert_eq!(z85_decode(&z85::encode(&padded)).unwrap(), padded);
    }

    #[test]
    fn written_bitmaps_keep_their_bytes() {
        // What pgarrow's own RoaringBitmapArray writer wrote before the `roaring` crate did:
        // one bucket, cookie 12346 (no runs), two array containers with their offsets.
        assert_eq!(
            super::bitmap(&vec![0, 3, 9, 70_000].into()),
            [
                209, 211, 57, 100, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 58, 48, 0, 0, 2, 0, 0, 0, 0,
                0, 2, 0, 1, 0, 0, 0, 24, 0, 0, 0, 30, 0, 0, 0, 0, 0, 3, 0, 9, 0, 112, 17
            ]
        );
        assert_eq!(
            super::bitmap(&Positions::default()),
            [209, 211, 57, 100, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        // A bitmap container and a second bucket: its length and checksum.
        let large: Vec<u64> = (0..10_000)
            .map(|p| p * 3)
            .chain([(1 << 32) + 5, (1 << 32) + 6])
            .collect();
        let bytes = super::bitmap(&large.into());
        let mut crc = flate2::Crc::new();
        crc.update(&bytes);
        assert_eq!((bytes.len(), crc.sum()), (8248, 0x721c_83f5));
    }
}
