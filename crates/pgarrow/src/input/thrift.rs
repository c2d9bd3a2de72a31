//! A walk over a Parquet footer's Thrift compact encoding, before the parquet crate decodes
//! it. parquet 60 skips the booleans of an unknown list, set or map field as if each took no
//! byte (they take one), so a footer of a few bytes that claims a list of two billion
//! booleans keeps its reader busy for seconds (one per such list: minutes for a footer of a
//! few kilobytes). Parquet's footer has no such field, so one is refused here; and every
//! container must fit the bytes left, which bounds the parquet crate's own walk by the
//! footer's length.

/// Checks the compact-encoded `FileMetaData` in `footer`: a well-formed struct (as far as it
/// goes: the parquet crate reports what is missing), no container of booleans, no container
/// with more elements than bytes left, no nesting deeper than 64.
pub(super) fn check_footer(footer: &[u8]) -> Result<(), String> {
    let mut walk = Walk { buf: footer, at: 0 };
    walk.value(STRUCT, 0)
        .map_err(|what| format!("its footer is malformed at byte {}: {what}", walk.at))
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

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.buf.get(self.at).ok_or("it ends inside a value")?;
        self.at += 1;
        Ok(b)
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        match usize::try_from(n) {
            Ok(n) if n <= self.left() => {
                self.at += n;
                Ok(())
            }
            _ => Err(format!("a value of {n} bytes with {} left", self.left())),
        }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a variable-length integer longer than 10 bytes".to_owned())
    }

    /// A container of `size` elements of `types` (one, or a map's key and value).
    fn elements(&mut self, size: u64, types: &[u8], depth: u32) -> Result<(), String> {
        if types.iter().any(|&t| t == BOOL_TRUE || t == BOOL_FALSE) {
            return Err("a list, set or map of booleans (Parquet's footer has none)".to_owned());
        }
        // Every element other than a boolean takes a byte at least.
        if size > self.left() as u64 {
            return Err(format!(
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

    fn value(&mut self, ty: u8, depth: u32) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
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
                let header = self.byte()?;
                let size = match header >> 4 {
                    15 => self.varint()?,
                    short => u64::from(short),
                };
                self.elements(size, &[header & 0x0f], depth)
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
            other => Err(format!("a value of unknown type {other}")),
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
        check_footer(&footer).unwrap();
    }

    #[test]
    fn a_list_of_booleans_or_a_list_longer_than_its_bytes_is_refused() {
        // field 9 (unknown), list of 2^31 booleans in seven bytes.
        let bools = [0x15, 0x02, 0x49, 0xf1, 0x80, 0x80, 0x80, 0x80, 0x08, 0x00];
        let err = check_footer(&bools).unwrap_err();
        assert!(err.contains("booleans"), "{err}");
        // A map of i32 to booleans, the same.
        let map = [0x1b, 0x05, 0x51, 0x02, 0x01, 0x00];
        assert!(check_footer(&map).unwrap_err().contains("booleans"));
        // A list of a million i32 in a few bytes.
        let long = [0x19, 0xf5, 0xc0, 0x84, 0x3d, 0x02, 0x00];
        let err = check_footer(&long).unwrap_err();
        assert!(err.contains("1000000 elements with 2 bytes left"), "{err}");
        // Cut short, deep, or of an unknown type.
        assert!(check_footer(&[0x15]).unwrap_err().contains("ends inside"));
        let deep: Vec<u8> = std::iter::repeat_n(0x1c, 100).collect();
        assert!(check_footer(&deep).unwrap_err().contains("deeper than 64"));
        assert!(
            check_footer(&[0x1e])
                .unwrap_err()
                .contains("unknown type 14")
        );
    }
}
