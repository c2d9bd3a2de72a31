//! Parquet Variant values (semi-structured data: Spark 4's `variant`, Delta's `variant` type,
//! Iceberg v3's `variant`) read as JSON text, for a PostgreSQL `jsonb` column.
//!
//! A Variant column in a Parquet file is a group of two binary fields: `metadata` (a
//! dictionary of the field names its objects use) and `value` (the value, self-describing),
//! as the Parquet format's `VariantEncoding.md` lays them out. [`to_json`] turns one pair into
//! JSON text, exactly:
//!
//! - null, booleans, integers and decimals as JSON literals and numbers (decimals by their
//!   exact digits, trailing zeros after the point dropped, as Spark's `to_json` gives them);
//! - doubles and floats by the shortest digits that read back as the same value (NaN and
//!   infinities are refused: JSON has no such number);
//! - strings as JSON strings (U+0000 is refused: `jsonb` cannot hold it), binary as its base64
//!   text;
//! - dates, timestamps, times and UUIDs as JSON strings in the forms Spark's `to_json` gives
//!   (`2024-02-29`, `2024-02-29 12:34:56.789012+00:00` in UTC, the same without the offset for
//!   a timestamp without time zone, `12:34:56.5`, `12345678-9abc-def0-1234-56789abcdef0`);
//! - objects and arrays as JSON objects and arrays.
//!
//! Bytes that are not a Variant are an error that says where, never a panic. A value whose
//! parts are shredded into typed columns (`typed_value`, `VariantShredding.md`) is refused by
//! [`json_array`], naming the column and the row: the unshredded pairs are read.
//!
//! ```
//! let mut out = String::new();
//! // Metadata: version 1, one key "a"; value: the object {"a": 1} (an int8).
//! let metadata = [0x01, 0x01, 0x00, 0x01, b'a'];
//! let value = [0x02, 0x01, 0x00, 0x00, 0x02, 0x0c, 0x01];
//! pgarrow_io::variant::to_json(&metadata, &value, &mut out).unwrap();
//! assert_eq!(out, r#"{"a":1}"#);
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

use crate::Error;

type Batches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>;

/// The metadata key of an Arrow extension type's name.
const EXTENSION_NAME: &str = "ARROW:extension:name";

/// The Arrow extension name of JSON text (`arrow.json`), which pgarrow loads as `jsonb`.
pub const JSON_EXTENSION: &str = "arrow.json";

/// The Arrow extension name arrow-rs gives a Variant column (`arrow.parquet.variant`) when it
/// knows the type: a field of that name is read as one.
pub const VARIANT_EXTENSION: &str = "arrow.parquet.variant";

/// How deep arrays and objects may nest (PostgreSQL's own JSON parsers stop near this depth).
pub const MAX_DEPTH: usize = 1_000;

/// The most JSON text one value may become: `jsonb` holds less than 256 MiB.
pub const MAX_JSON_BYTES: usize = (1 << 28) - 1;

/// The Arrow field a table's Variant column is read as: JSON text (`Utf8`, extension
/// `arrow.json`), nullable, which pgarrow creates and loads as `jsonb`. A lake reader gives its
/// table this field for a column of type `variant` (with the column's field ID added to its
/// metadata); [`Input::open_table_as`](crate::Input::open_table_as) then reads the files'
/// Variant groups of that column as JSON, and any other type of it as it reads JSON text.
pub fn variant_field(name: impl Into<String>) -> Field {
    Field::new(name, DataType::Utf8, true).with_metadata(HashMap::from([(
        EXTENSION_NAME.to_owned(),
        JSON_EXTENSION.to_owned(),
    )]))
}

/// Whether `field` is a Variant group as a Parquet file's reader gives it: a struct of a binary
/// `metadata` and a binary `value` (and, shredded, a `typed_value`), nothing else; or a field
/// of extension [`VARIANT_EXTENSION`].
pub fn is_variant(field: &Field) -> bool {
    if field.metadata().get(EXTENSION_NAME).map(String::as_str) == Some(VARIANT_EXTENSION) {
        return true;
    }
    let DataType::Struct(children) = field.data_type() else {
        return false;
    };
    let binary = |name: &str| {
        children.iter().any(|c| {
            c.name() == name
                && matches!(
                    c.data_type(),
                    DataType::Binary | DataType::LargeBinary | DataType::BinaryView
                )
        })
    };
    binary("metadata")
        && binary("value")
        && children
            .iter()
            .all(|c| matches!(c.name().as_str(), "metadata" | "value" | "typed_value"))
}

/// Whether `field` is JSON text (`Utf8` of extension `arrow.json`): what a table asks for when
/// it reads a Variant column as [`variant_field`].
pub fn is_json_text(field: &Field) -> bool {
    field.data_type() == &DataType::Utf8
        && field.metadata().get(EXTENSION_NAME).map(String::as_str) == Some(JSON_EXTENSION)
}

/// Why a Variant's bytes did not become JSON text. Offsets count from the first byte of the
/// metadata or of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VariantError {
    /// The metadata is not a Variant's.
    #[error("its metadata is malformed at byte {offset}: {what}")]
    Metadata {
        /// Where.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// The value is not a Variant's.
    #[error("its value is malformed at byte {offset}: {what}")]
    Value {
        /// Where.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// A primitive type this reader does not know (a later version of the specification's).
    #[error("its value holds a primitive of unknown type {id} at byte {offset}")]
    UnknownType {
        /// Where.
        offset: usize,
        /// The type's ID.
        id: u8,
    },
    /// A value JSON text in `jsonb` cannot say: a NaN or infinite float, a string holding
    /// U+0000, arrays and objects nested past [`MAX_DEPTH`], text past [`MAX_JSON_BYTES`].
    #[error("its value holds {what} at byte {offset}, which jsonb cannot hold")]
    NotJson {
        /// Where.
        offset: usize,
        /// What it holds.
        what: &'static str,
    },
}

impl VariantError {
    /// Whether the bytes are not a Variant (rather than one JSON cannot say).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            VariantError::Metadata { .. } | VariantError::Value { .. }
        )
    }
}

type VResult<T> = std::result::Result<T, VariantError>;

/// Appends the JSON text of the Variant of `metadata` and `value` to `out` (on an error, `out`
/// may hold part of it).
///
/// # Errors
/// [`VariantError`]: bytes that are not a Variant (where), a primitive type of a later
/// specification, a value JSON in `jsonb` cannot hold.
pub fn to_json(metadata: &[u8], value: &[u8], out: &mut String) -> VResult<()> {
    let dictionary = Dictionary::parse(metadata)?;
    let limit = out.len().saturating_add(MAX_JSON_BYTES);
    let mut writer = Writer {
        dictionary,
        out,
        limit,
    };
    writer.value(value, 0, 0)?;
    Ok(())
}

/// The metadata's dictionary of field names.
struct Dictionary<'a> {
    /// Bytes per offset (1 to 4).
    width: usize,
    /// How many names.
    len: usize,
    /// The `len + 1` offsets.
    offsets: &'a [u8],
    /// The names' bytes.
    bytes: &'a [u8],
    /// Where `bytes` starts in the metadata, for messages.
    at: usize,
}

fn metadata_error(offset: usize, what: &'static str) -> VariantError {
    VariantError::Metadata { offset, what }
}

fn value_error(offset: usize, what: &'static str) -> VariantError {
    VariantError::Value { offset, what }
}

/// The unsigned little-endian integer of `bytes` (1 to 4 of them).
fn le(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rev()
        .fold(0usize, |n, &b| (n << 8) | usize::from(b))
}

impl<'a> Dictionary<'a> {
    fn parse(metadata: &'a [u8]) -> VResult<Dictionary<'a>> {
        let &header = metadata.first().ok_or(metadata_error(0, "it is empty"))?;
        if header & 0x0f != 1 {
            return Err(metadata_error(0, "its version is not 1"));
        }
        let width = usize::from(header >> 6) + 1;
        let len_bytes = metadata
            .get(1..1 + width)
            .ok_or(metadata_error(1, "it ends inside the dictionary's size"))?;
        let len = le(len_bytes);
        let start = 1 + width;
        let offsets_len = len
            .checked_add(1)
            .and_then(|n| n.checked_mul(width))
            .filter(|&n| n <= metadata.len() - start)
            .ok_or(metadata_error(
                start,
                "it ends inside the dictionary's offsets",
            ))?;
        let offsets = &metadata[start..start + offsets_len];
        let at = start + offsets_len;
        let bytes = &metadata[at..];
        let dictionary = Dictionary {
            width,
            len,
            offsets,
            bytes,
            at,
        };
        if dictionary.offset(len) > bytes.len() {
            return Err(metadata_error(
                start + len * width,
                "the dictionary's last offset is past its end",
            ));
        }
        Ok(dictionary)
    }

    fn offset(&self, i: usize) -> usize {
        le(&self.offsets[i * self.width..(i + 1) * self.width])
    }

    /// The name of ID `id`; `at`: where the value refers to it, for messages.
    fn name(&self, id: usize, at: usize) -> VResult<&'a str> {
        if id >= self.len {
            return Err(value_error(
                at,
                "a field ID is past the metadata's dictionary",
            ));
        }
        let (start, end) = (self.offset(id), self.offset(id + 1));
        let bytes = self.bytes.get(start..end).ok_or(metadata_error(
            self.at,
            "a name's offsets are out of order or past the end",
        ))?;
        std::str::from_utf8(bytes)
            .map_err(|_| metadata_error(self.at + start, "a name is not UTF-8"))
    }
}

/// Writes one Variant's JSON text.
struct Writer<'a, 'o> {
    dictionary: Dictionary<'a>,
    out: &'o mut String,
    /// The length `out` may not pass.
    limit: usize,
}

impl Writer<'_, '_> {
    /// Writes the value that starts `v` (at `at` in the whole value) and returns its length.
    ///
    /// BE ADVISED: the offsets of an array's or object's elements come from the bytes. Each
    /// element must end before the next one in the bytes begins, so that no two elements
    /// share bytes: otherwise a few bytes whose elements all point at one nested value would
    /// write text exponential in their length.
    fn value(&mut self, v: &[u8], at: usize, depth: usize) -> VResult<usize> {
        let &header = v.first().ok_or(value_error(at, "it ends before a value"))?;
        let (basic, head) = (header & 0x03, usize::from(header >> 2));
        let len = match basic {
            0 => self.primitive(v, at, header >> 2)?,
            1 => {
                let text = v
                    .get(1..1 + head)
                    .ok_or(value_error(at, "a short string runs past the end"))?;
                self.string(text, at + 1)?;
                1 + head
            }
            2 => self.object(v, at, head, depth)?,
            _ => self.array(v, at, head, depth)?,
        };
        if self.out.len() > self.limit {
            return Err(VariantError::NotJson {
                offset: at,
                what: "more JSON text than 256 MiB",
            });
        }
        Ok(len)
    }

    /// The `count`, offset width and first offset's place of an array or object whose header
    /// is `head`, `ids` bytes per field ID before the offsets.
    fn container(v: &[u8], at: usize, head: usize, id_width: usize) -> VResult<Container> {
        let large = head & (if id_width == 0 { 0x04 } else { 0x10 }) != 0;
        let count_width = if large { 4 } else { 1 };
        let count = le(v
            .get(1..1 + count_width)
            .ok_or(value_error(at, "it ends inside an element count"))?);
        let width = (head & 0x03) + 1;
        let ids = 1 + count_width;
        let offsets = count
            .checked_mul(id_width)
            .and_then(|n| n.checked_add(ids))
            .ok_or(value_error(at, "an element count past the value"))?;
        let fields = count
            .checked_add(1)
            .and_then(|n| n.checked_mul(width))
            .and_then(|n| n.checked_add(offsets))
            .filter(|&n| n <= v.len())
            .ok_or(value_error(at, "an element count past the value"))?;
        let container = Container {
            count,
            width,
            ids,
            offsets,
            fields,
        };
        if fields + container.offset(v, count) > v.len() {
            return Err(value_error(at, "the last element offset is past the value"));
        }
        Ok(container)
    }

    fn array(&mut self, v: &[u8], at: usize, head: usize, depth: usize) -> VResult<usize> {
        if depth >= MAX_DEPTH {
            return Err(VariantError::NotJson {
                offset: at,
                what: "arrays and objects nested more than 1000 deep",
            });
        }
        let c = Self::container(v, at, head, 0)?;
        let end = c.offset(v, c.count);
        self.out.push('[');
        for i in 0..c.count {
            if i > 0 {
                self.out.push(',');
            }
            let (start, next) = (c.offset(v, i), c.offset(v, i + 1));
            if start > next || next > end {
                return Err(value_error(at, "an array's offsets are out of order"));
            }
            let element = &v[c.fields + start..c.fields + next];
            self.value(element, at + c.fields + start, depth + 1)?;
        }
        self.out.push(']');
        Ok(c.fields + end)
    }

    fn object(&mut self, v: &[u8], at: usize, head: usize, depth: usize) -> VResult<usize> {
        if depth >= MAX_DEPTH {
            return Err(VariantError::NotJson {
                offset: at,
                what: "arrays and objects nested more than 1000 deep",
            });
        }
        let id_width = ((head >> 2) & 0x03) + 1;
        let c = Self::container(v, at, head, id_width)?;
        let end = c.offset(v, c.count);
        // Each element's bytes run to the next element's start (in byte order) or the end.
        let mut starts: Vec<usize> = (0..c.count).map(|i| c.offset(v, i)).collect();
        starts.sort_unstable();
        if starts.windows(2).any(|w| w[0] == w[1]) {
            return Err(value_error(at, "two object fields share one offset"));
        }
        let mut sorted = true;
        let mut previous: Option<&str> = None;
        self.out.push('{');
        for i in 0..c.count {
            if i > 0 {
                self.out.push(',');
            }
            let id_at = c.ids + i * id_width;
            let id = le(&v[id_at..id_at + id_width]);
            let name = self.dictionary.name(id, at + id_at)?;
            if let Some(p) = previous {
                sorted &= p < name;
            }
            previous = Some(name);
            self.string(name.as_bytes(), at + id_at)?;
            self.out.push(':');
            let start = c.offset(v, i);
            if start >= end {
                return Err(value_error(at, "an object field's offset is past its end"));
            }
            let k = starts.partition_point(|&s| s <= start);
            let next = starts.get(k).copied().unwrap_or(end).min(end);
            let element = &v[c.fields + start..c.fields + next];
            self.value(element, at + c.fields + start, depth + 1)?;
        }
        self.out.push('}');
        // Names must be unique; in their sorted order (as they must be written) a repeat is
        // seen as two equal neighbours.
        if !sorted {
            let mut names = (0..c.count)
                .map(|i| {
                    let id_at = c.ids + i * id_width;
                    self.dictionary
                        .name(le(&v[id_at..id_at + id_width]), at + id_at)
                })
                .collect::<VResult<Vec<&str>>>()?;
            names.sort_unstable();
            if names.windows(2).any(|w| w[0] == w[1]) {
                return Err(value_error(at, "an object holds one name twice"));
            }
        }
        Ok(c.fields + end)
    }

    /// Writes a primitive of type `id` whose header byte starts `v`; returns its length.
    fn primitive(&mut self, v: &[u8], at: usize, id: u8) -> VResult<usize> {
        let size = match id {
            0..=2 => 0,
            3 => 1,
            4 => 2,
            5 | 11 | 14 => 4,
            6 | 7 | 12 | 13 | 17..=19 => 8,
            8 => 5,
            9 => 9,
            10 => 17,
            15 | 16 => 4,
            20 => 16,
            _ => return Err(VariantError::UnknownType { offset: at, id }),
        };
        let data = v
            .get(1..1 + size)
            .ok_or(value_error(at, "a primitive runs past the end"))?;
        let mut len = 1 + size;
        let out = &mut *self.out;
        let i64_at = || i64::from_le_bytes(data[..8].try_into().unwrap_or_default());
        match id {
            0 => out.push_str("null"),
            1 => out.push_str("true"),
            2 => out.push_str("false"),
            3 => write_int(out, i64::from(data[0] as i8)),
            4 => write_int(out, i64::from(i16::from_le_bytes([data[0], data[1]]))),
            5 => write_int(
                out,
                i64::from(i32::from_le_bytes([data[0], data[1], data[2], data[3]])),
            ),
            6 => write_int(out, i64_at()),
            7 => write_float(
                out,
                f64::from_le_bytes(data.try_into().unwrap_or_default()),
                at,
            )?,
            14 => {
                let x = f32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                write_float(out, x, at)?;
            }
            8..=10 => {
                let scale = data[0];
                if scale > 38 {
                    return Err(value_error(at + 1, "a decimal's scale is past 38"));
                }
                let digits = &data[1..];
                let mut bytes = [if digits[digits.len() - 1] & 0x80 != 0 {
                    0xff
                } else {
                    0
                }; 16];
                bytes[..digits.len()].copy_from_slice(digits);
                write_decimal(out, i128::from_le_bytes(bytes), scale);
            }
            11 => {
                let days = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                out.push('"');
                write_date(out, i64::from(days));
                out.push('"');
            }
            12 | 13 => {
                write_timestamp(out, i128::from(i64_at()) * 1_000, 6, id == 12);
            }
            18 | 19 => write_timestamp(out, i128::from(i64_at()), 9, id == 18),
            17 => {
                let micros = i64_at();
                if !(0..86_400_000_000).contains(&micros) {
                    return Err(value_error(at + 1, "a time of day is outside the day"));
                }
                out.push('"');
                write_time(out, i128::from(micros) * 1_000, 6);
                out.push('"');
            }
            15 | 16 => {
                let n = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
                let bytes = v
                    .get(5..)
                    .and_then(|rest| rest.get(..n))
                    .ok_or(value_error(at, "a string or binary runs past the end"))?;
                len += n;
                if id == 16 {
                    self.string(bytes, at + 5)?;
                } else {
                    use arrow_cast::base64::{BASE64_STANDARD, Engine as _};
                    out.push('"');
                    BASE64_STANDARD.encode_string(bytes, out);
                    out.push('"');
                }
            }
            _ => {
                // 20: a UUID, big-endian.
                out.push('"');
                for (k, b) in data.iter().enumerate() {
                    if matches!(k, 4 | 6 | 8 | 10) {
                        out.push('-');
                    }
                    let _ = write!(out, "{b:02x}");
                }
                out.push('"');
            }
        }
        Ok(len)
    }

    /// Writes UTF-8 `bytes` (at `at`) as a JSON string.
    fn string(&mut self, bytes: &[u8], at: usize) -> VResult<()> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| value_error(at, "a string is not UTF-8"))?;
        if text.contains('\0') {
            return Err(VariantError::NotJson {
                offset: at,
                what: "a string with U+0000",
            });
        }
        write_json_string(self.out, text);
        Ok(())
    }
}

/// An array's or object's layout: element count, offset width, where its field IDs, offsets
/// and elements start (from its header byte).
struct Container {
    count: usize,
    width: usize,
    ids: usize,
    offsets: usize,
    fields: usize,
}

impl Container {
    fn offset(&self, v: &[u8], i: usize) -> usize {
        let at = self.offsets + i * self.width;
        le(&v[at..at + self.width])
    }
}

fn not_finite(at: usize) -> VariantError {
    VariantError::NotJson {
        offset: at,
        what: "a NaN or infinite float",
    }
}

fn write_int(out: &mut String, n: i64) {
    let _ = write!(out, "{n}");
}

/// A double or float as the shortest digits that read back as it: plainly from 0.001 to
/// 10^7 (as Java writes them), in exponent form outside.
fn write_float<F>(out: &mut String, x: F, at: usize) -> VResult<()>
where
    F: Into<f64> + Copy + std::fmt::Display + std::fmt::LowerExp,
{
    let wide: f64 = x.into();
    if !wide.is_finite() {
        return Err(not_finite(at));
    }
    let magnitude = wide.abs();
    let _ = if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        write!(out, "{x}")
    } else {
        write!(out, "{x:e}")
    };
    Ok(())
}

/// `unscaled` × 10^-`scale` by its digits, without the zeros that end its fraction.
fn write_decimal(out: &mut String, unscaled: i128, scale: u8) {
    if unscaled < 0 {
        out.push('-');
    }
    let scale = usize::from(scale);
    // At least one digit before the point.
    let digits = format!("{:0>width$}", unscaled.unsigned_abs(), width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    out.push_str(whole);
    let fraction = fraction.trim_end_matches('0');
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
}

/// A date as Spark writes it: `YYYY-MM-DD`, a year past 9999 signed (`+10000`), one before 1
/// with its sign (year 0 is 1 BC).
fn write_date(out: &mut String, days: i64) {
    let (year, month, day) = pgarrow_types::civil_from_days(days);
    let _ = match year {
        0..=9999 => write!(out, "{year:04}-{month:02}-{day:02}"),
        10_000.. => write!(out, "+{year}-{month:02}-{day:02}"),
        _ => write!(out, "-{:04}-{month:02}-{day:02}", year.unsigned_abs()),
    };
}

/// `HH:MM:SS`, then the fraction of `nanos` (of the day) to `digits` places without its
/// trailing zeros.
fn write_time(out: &mut String, nanos: i128, digits: u32) {
    let seconds = nanos / 1_000_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60
    );
    let fraction = nanos % 1_000_000_000 / 10i128.pow(9 - digits);
    if fraction != 0 {
        let text = format!("{fraction:0width$}", width = digits as usize);
        out.push('.');
        out.push_str(text.trim_end_matches('0'));
    }
}

/// A timestamp of `nanos` since 1970 (UTC) as Spark's `to_json` writes one in a UTC session:
/// `2024-02-29 12:34:56.789`, with `+00:00` after it when it is one `with_zone`.
fn write_timestamp(out: &mut String, nanos: i128, digits: u32, with_zone: bool) {
    const DAY: i128 = 86_400_000_000_000;
    out.push('"');
    write_date(out, nanos.div_euclid(DAY) as i64);
    out.push(' ');
    write_time(out, nanos.rem_euclid(DAY), digits);
    if with_zone {
        out.push_str("+00:00");
    }
    out.push('"');
}

/// `text` as a JSON string.
fn write_json_string(out: &mut String, text: &str) {
    out.push('"');
    let mut rest = text;
    while let Some(k) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
        out.push_str(&rest[..k]);
        let c = rest.as_bytes()[k];
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{c:04x}");
            }
        }
        rest = &rest[k + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// The binary bytes of a `metadata` or `value` child, whatever its binary type.
enum Bytes<'a> {
    Binary(&'a arrow_array::BinaryArray),
    Large(&'a arrow_array::LargeBinaryArray),
    View(&'a arrow_array::BinaryViewArray),
}

impl<'a> Bytes<'a> {
    fn of(array: &'a ArrayRef) -> Option<Bytes<'a>> {
        Some(match array.data_type() {
            DataType::Binary => Bytes::Binary(array.as_binary::<i32>()),
            DataType::LargeBinary => Bytes::Large(array.as_binary::<i64>()),
            DataType::BinaryView => Bytes::View(array.as_binary_view()),
            _ => return None,
        })
    }

    fn get(&self, i: usize) -> Option<&'a [u8]> {
        match self {
            Bytes::Binary(a) => a.is_valid(i).then(|| a.value(i)),
            Bytes::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Bytes::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// The JSON text of each value of the Variant column `name` (a struct of `metadata` and
/// `value`, [`is_variant`]), NULL where the struct is null, as a `Utf8` array; `first_row` is
/// the place of its first row in its file, for messages.
///
/// # Errors
/// Bytes that are not a Variant ([`Error::Input`]), a value `jsonb` cannot hold or a
/// shredded one (`typed_value`, which is not reassembled) ([`Error::Unsupported`]): each
/// naming the column and the row.
pub fn json_array(array: &ArrayRef, name: &str, first_row: u64) -> crate::Result<ArrayRef> {
    let not_variant = || {
        Error::Input(ArrowError::ParseError(format!(
            "column \"{name}\" is not a Variant group (a binary metadata and value)"
        )))
    };
    let strukt: &StructArray = array.as_struct_opt().ok_or_else(not_variant)?;
    let child = |n: &str| strukt.column_by_name(n);
    let (Some(metadata), Some(value)) = (child("metadata"), child("value")) else {
        return Err(not_variant());
    };
    let (metadata, value) = match (Bytes::of(metadata), Bytes::of(value)) {
        (Some(m), Some(v)) => (m, v),
        _ => return Err(not_variant()),
    };
    let typed = child("typed_value");
    let mut builder = arrow_array::builder::StringBuilder::with_capacity(strukt.len(), 0);
    let mut text = String::new();
    for i in 0..strukt.len() {
        if strukt.is_null(i) {
            builder.append_null();
            continue;
        }
        let row = first_row + i as u64;
        if typed.is_some_and(|t| t.is_valid(i)) {
            return Err(Error::Unsupported(format!(
                "column \"{name}\", row {row}: the Variant is shredded (its typed_value holds \
                 part of it), which pgarrow does not reassemble"
            )));
        }
        text.clear();
        let decoded = match (metadata.get(i), value.get(i)) {
            (Some(m), Some(v)) => to_json(m, v, &mut text),
            // Missing where a value is required: a Variant null.
            (Some(_), None) => {
                text.push_str("null");
                Ok(())
            }
            (None, _) => Err(metadata_error(0, "it is null")),
        };
        match decoded {
            Ok(()) => builder.append_value(&text),
            Err(e) if e.is_malformed() => {
                return Err(Error::Input(ArrowError::ParseError(format!(
                    "column \"{name}\", row {row}: the Variant is not one: {e}"
                ))));
            }
            Err(e) => {
                return Err(Error::Unsupported(format!(
                    "column \"{name}\", row {row}: the Variant {e}"
                )));
            }
        }
    }
    Ok(Arc::new(builder.finish()) as ArrayRef)
}

/// `batches` with their Variant columns at `columns` (places in `schema`) read as JSON text:
/// the schema they then have, and the batches, their rows counted for messages.
pub(crate) fn decoded(
    schema: &SchemaRef,
    batches: Batches,
    columns: Vec<usize>,
) -> (SchemaRef, Batches) {
    if columns.is_empty() {
        return (schema.clone(), batches);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match columns.contains(&i) {
            true => json_field_of(f),
            false => f.as_ref().clone(),
        })
        .collect();
    let out = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let schema = out.clone();
    let mut seen = 0u64;
    let batches = batches.map(move |batch| {
        let batch = batch?;
        let mut arrays = batch.columns().to_vec();
        for &k in &columns {
            arrays[k] =
                json_array(&arrays[k], out.field(k).name(), seen).map_err(ArrowError::from)?;
        }
        seen += batch.num_rows() as u64;
        RecordBatch::try_new_with_options(
            out.clone(),
            arrays,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )
    });
    (schema, Box::new(batches))
}

/// The JSON text field of the Variant field `field`: [`variant_field`] of its name, keeping
/// its metadata (a field ID) but its extension.
pub(crate) fn json_field_of(field: &Field) -> Field {
    let mut metadata = field.metadata().clone();
    metadata.insert(EXTENSION_NAME.to_owned(), JSON_EXTENSION.to_owned());
    metadata.remove("ARROW:extension:metadata");
    variant_field(field.name()).with_metadata(metadata)
}

#[cfg(test)]
mod tests;
