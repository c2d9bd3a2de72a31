//! A walk over a Parquet footer's Thrift compact encoding, before the parquet crate decodes
//! it. parquet 60 skips the booleans of an unknown list, set or map field as if each took no
//! byte (they take one), so a footer of a few bytes that claims a list of two billion
//! booleans keeps its reader busy for seconds (one per such list: minutes for a footer of a
//! few kilobytes). Parquet's footer has no such field, so one is refused here; and every
//! container must fit the bytes left, which bounds the parquet crate's own walk by the
//! footer's length.
//!
//! Kept by hand rather than on a Thrift crate: the walk is its bounds and the fields it drops,
//! which would still be written around any generic reader; the parquet crate's is what it guards.

use super::{Malformed, malformed};

/// Checks the compact-encoded `FileMetaData` in `footer`: a well-formed struct (as far as it
/// goes: the parquet crate reports what is missing), no container of booleans, no container
/// with more elements than bytes left, no nesting deeper than 64.
///
/// Returns the footer without the fields whose wire type is not the one Parquet's
/// specification gives their number, in the structs the parquet crate decodes field by field
/// (`FileMetaData`, `RowGroup`, `ColumnChunk`, `ColumnMetaData`), when it had any: the
/// parquet crate reads a field by its number whatever its type, so one an old writer used
/// for something else (Dremio 3.2 wrote a list of page headers as `ColumnMetaData` field 15,
/// which is now `bloom_filter_length`, an i32) derails the rest of the footer. Thrift's own
/// readers, pyarrow's and DuckDB's among them, skip such a field; so does this.
pub(super) fn check_footer(footer: &[u8]) -> Result<Option<Vec<u8>>, Malformed> {
    let mut walk = Walk { buf: footer, at: 0 };
    let mut out = Vec::with_capacity(footer.len());
    let dropped = walk
        .rewrite_struct(Known::FileMetaData, &mut out, 0)
        .map_err(|what| malformed!("its footer is malformed at byte {}: {what}", walk.at))?;
    Ok(dropped.then_some(out))
}

/// The structs of the footer whose fields are checked against their types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    FileMetaData,
    RowGroup,
    ColumnChunk,
    ColumnMetaData,
}

const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const BINARY: u8 = 8;

impl Known {
    /// The compact type of field `id` (parquet.thrift), `None` for a field not in the
    /// specification (kept: the parquet crate skips it by its own type).
    fn expected(self, id: i64) -> Option<u8> {
        let types: &[u8] = match self {
            Known::FileMetaData => &[I32, LIST, I64, LIST, LIST, BINARY, LIST, STRUCT, BINARY],
            Known::RowGroup => &[LIST, I64, I64, LIST, I64, I64, I16],
            Known::ColumnChunk => &[BINARY, I64, STRUCT, I64, I32, I64, I32, STRUCT, BINARY],
            Known::ColumnMetaData => &[
                I32, LIST, LIST, I32, I64, I64, I64, LIST, I64, I64, I64, STRUCT, LIST, I64, I32,
                STRUCT, STRUCT,
            ],
        };
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        types.get(index).copied()
    }

    /// The known struct that field `id` holds (directly, or as a list's elements).
    fn child(self, id: i64) -> Option<Known> {
        match (self, id) {
            (Known::FileMetaData, 4) => Some(Known::RowGroup),
            (Known::RowGroup, 1) => Some(Known::ColumnChunk),
            (Known::ColumnChunk, 3) => Some(Known::ColumnMetaData),
            _ => None,
        }
    }
}

/// Writes a compact field header: the id as a delta from `last` when it fits four bits.
fn field_header(out: &mut Vec<u8>, id: i64, ty: u8, last: i64) {
    match id - last {
        delta @ 1..=15 => out.push(((delta as u8) << 4) | ty),
        _ => {
            out.push(ty);
            let mut zigzag = ((id << 1) ^ (id >> 63)) as u64;
            while zigzag >= 0x80 {
                out.push((zigzag as u8) | 0x80);
                zigzag >>= 7;
            }
            out.push(zigzag as u8);
        }
    }
}

const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;

/// Nesting allowed: Parquet's own footer is a few levels deep.
const MAX_DEPTH: u32 = 64;

struct Walk<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Walk<'_> {
    fn left(&self) -> usize {
        self.buf.len() - self.at
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        let b = *self.buf.get(self.at).ok_or("it ends inside a value")?;
        self.at += 1;
        Ok(b)
    }

    fn skip(&mut self, n: u64) -> Result<(), Malformed> {
        match usize::try_from(n) {
            Ok(n) if n <= self.left() => {
                self.at += n;
                Ok(())
            }
            _ => Err(malformed!("a value of {n} bytes with {} left", self.left())),
        }
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a variable-length integer longer than 10 bytes".into())
    }

    /// Copies the struct at the walk's position into `out`, leaving out the fields of `known`
    /// whose type is not their specified one; whether it left any out (here or inside).
    fn rewrite_struct(
        &mut self,
        known: Known,
        out: &mut Vec<u8>,
        depth: u32,
    ) -> Result<bool, Malformed> {
        if depth > MAX_DEPTH {
            return Err(malformed!("values nested deeper than {MAX_DEPTH}"));
        }
        let (mut last_in, mut last_out) = (0i64, 0i64);
        let mut dropped = false;
        loop {
            let header = self.byte()?;
            if header == 0 {
                out.push(0);
                return Ok(dropped);
            }
            let ty = header & 0x0f;
            let id = match header >> 4 {
                0 => {
                    let zigzag = self.varint()?;
                    ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64)
                }
                delta => last_in + i64::from(delta),
            };
            last_in = id;
            let start = self.at;
            let matches = |expected: u8| match expected {
                BOOL_TRUE | BOOL_FALSE => ty == BOOL_TRUE || ty == BOOL_FALSE,
                e => ty == e,
            };
            if known.expected(id).is_some_and(|e| !matches(e)) {
                self.value(ty, depth + 1)?;
                dropped = true;
                continue;
            }
            field_header(out, id, ty, last_out);
            last_out = id;
            match known.child(id) {
                Some(child) if ty == STRUCT => {
                    dropped |= self.rewrite_struct(child, out, depth + 1)?;
                }
                Some(child) if ty == LIST => {
                    let list_start = self.at;
                    let (size, element) = self.list_header()?;
                    out.extend_from_slice(&self.buf[list_start..self.at]);
                    if element != STRUCT {
                        let elements = self.at;
                        self.elements(size, &[element], depth + 1)?;
                        out.extend_from_slice(&self.buf[elements..self.at]);
                        continue;
                    }
                    if size > self.left() as u64 {
                        return Err(malformed!(
                            "a container of {size} elements with {} bytes left",
                            self.left()
                        ));
                    }
                    for _ in 0..size {
                        dropped |= self.rewrite_struct(child, out, depth + 2)?;
                    }
                }
                _ => {
                    self.value(ty, depth + 1)?;
                    out.extend_from_slice(&self.buf[start..self.at]);
                }
            }
        }
    }

    /// A list's or set's header: its size and its elements' type.
    fn list_header(&mut self) -> Result<(u64, u8), Malformed> {
        let header = self.byte()?;
        let size = match header >> 4 {
            15 => self.varint()?,
            short => u64::from(short),
        };
        Ok((size, header & 0x0f))
    }

    /// A container of `size` elements of `types` (one, or a map's key and value).
    fn elements(&mut self, size: u64, types: &[u8], depth: u32) -> Result<(), Malformed> {
        if types.iter().any(|&t| t == BOOL_TRUE || t == BOOL_FALSE) {
            return Err("a list, set or map of booleans (Parquet's footer has none)".into());
        }
        // Every element other than a boolean takes a byte at least.
        if size > self.left() as u64 {
            return Err(malformed!(
                "a container of {size} elements with {} bytes left",
                self.left()
            ));
        }
        for _ in 0..size {
            for &t in types {
                self.value(t, depth + 1)?;
            }
        }
        Ok(())
    }

    fn value(&mut self, ty: u8, depth: u32) -> Result<(), Malformed> {
        if depth > MAX_DEPTH {
            return Err(malformed!("values nested deeper than {MAX_DEPTH}"));
        }
        match ty {
            // A struct field's boolean is its type; in containers booleans are refused.
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            3 => self.skip(1),
            4..=6 => self.varint().map(drop),
            7 => self.skip(8),
            8 => {
                let n = self.varint()?;
                self.skip(n)
            }
            LIST | SET => {
                let (size, element) = self.list_header()?;
                self.elements(size, &[element], depth)
            }
            MAP => {
                let size = self.varint()?;
                if size == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                self.elements(size, &[kinds >> 4, kinds & 0x0f], depth)
            }
            STRUCT => loop {
                let header = self.byte()?;
                if header == 0 {
                    return Ok(());
                }
                if header >> 4 == 0 {
                    self.varint()?;
                }
                self.value(header & 0x0f, depth + 1)?;
            },
            13 => self.skip(16),
            other => Err(malformed!("a value of unknown type {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_footer_pyarrow_would_write_passes() {
        // FileMetaData { version: 1 (i32), schema: [SchemaElement { name: "s" }],
        // num_rows: 3 (i64), row_groups: [], created_by: "x" }.
        let footer = [
            0x15, 0x02, // field 1, i32, zigzag 1
            0x19, 0x1c, // field 2, list of one struct
            0x48, 0x01, b's', 0x00, // field 4 binary "s", stop
            0x16, 0x06, // field 3, i64 3
            0x19, 0x0c, // field 4, empty list of structs
            0x28, 0x01, b'x', // field 6 binary "x"
            0x00,
        ];
        assert_eq!(check_footer(&footer).unwrap(), None);
    }

    #[test]
    fn a_field_of_another_type_than_its_number_has_is_left_out() {
        // FileMetaData { version: 1, row_groups: [RowGroup { columns: [ColumnChunk {
        // file_offset: 4, meta_data: ColumnMetaData { num_values: 39, 15: [{1: 7}] (a list
        // where bloom_filter_length, an i32, belongs), 16: {} } }], num_rows: 39 }] }.
        let footer = [
            0x15, 0x02, // field 1, i32 1
            0x39, 0x1c, // field 4, list of one struct (RowGroup)
            0x19, 0x1c, // field 1, list of one struct (ColumnChunk)
            0x26, 0x08, // field 2, i64 4
            0x1c, // field 3, struct (ColumnMetaData)
            0x56, 0x4e, // field 5, i64 39
            0xa9, 0x1c, 0x15, 0x0e, 0x00, // field 15, list of one struct {1: i32 7}
            0x1c, 0x00, // field 16, empty struct
            0x00, // end of ColumnMetaData
            0x00, // end of ColumnChunk
            0x26, 0x4e, // RowGroup field 3, i64 39
            0x00, // end of RowGroup
            0x00,
        ];
        let fixed = check_footer(&footer).unwrap().expect("field 15 left out");
        let expected = [
            0x15, 0x02, 0x39, 0x1c, 0x19, 0x1c, 0x26, 0x08, 0x1c, 0x56, 0x4e,
            // field 16 now follows field 5: its delta is 11.
            0xbc, 0x00, 0x00, 0x00, 0x26, 0x4e, 0x00, 0x00,
        ];
        assert_eq!(fixed, expected);
        // What is left is well formed, and has nothing more to leave out.
        assert_eq!(check_footer(&fixed).unwrap(), None);
        // A long delta is written with its id in full.
        let mut out = Vec::new();
        field_header(&mut out, 20, I64, 2);
        assert_eq!(out, [0x06, 0x28]);
    }

    #[test]
    fn a_list_of_booleans_or_a_list_longer_than_its_bytes_is_refused() {
        // field 9 (unknown), list of 2^31 booleans in seven bytes.
        let bools = [0x15, 0x02, 0x49, 0xf1, 0x80, 0x80, 0x80, 0x80, 0x08, 0x00];
        let err = check_footer(&bools).unwrap_err();
        assert!(err.to_string().contains("booleans"), "{err}");
        // A map of i32 to booleans, the same.
        let map = [0x1b, 0x05, 0x51, 0x02, 0x01, 0x00];
        assert!(
            check_footer(&map)
                .unwrap_err()
                .to_string()
                .contains("booleans")
        );
        // A list of a million i32 in a few bytes.
        let long = [0x19, 0xf5, 0xc0, 0x84, 0x3d, 0x02, 0x00];
        let err = check_footer(&long).unwrap_err();
        assert!(
            err.to_string()
                .contains("1000000 elements with 2 bytes left"),
            "{err}"
        );
        // Cut short, deep, or of an unknown type.
        assert!(
            check_footer(&[0x15])
                .unwrap_err()
                .to_string()
                .contains("ends inside")
        );
        let deep: Vec<u8> = std::iter::repeat_n(0x1c, 100).collect();
        assert!(
            check_footer(&deep)
                .unwrap_err()
                .to_string()
                .contains("deeper than 64")
        );
        assert!(
            check_footer(&[0x1e])
                .unwrap_err()
                .to_string()
                .contains("unknown type 14")
        );
    }
}
