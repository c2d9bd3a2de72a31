//! Value partitions: a column, or a transform of one (Iceberg's: `year`, `month`, `day`, `hour`,
//! `bucket(N, c)`, `truncate(W, c)`), turned into each row's partition key and into the
//! directory segment that names it (`c_day=2026-11-25`).
//!
//! Keys are computed a column at a time into plain integers or borrowed bytes, and a row's key
//! is the concatenation of its fields' encodings (a null and every value distinct, the empty
//! string included), so that grouping a batch allocates only for the partitions it opens.

use std::fmt;
use std::str::FromStr;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How a partition value is made from its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// The value itself (the column then lives in the directory names, not in the files).
    Identity,
    /// The year of a date or timestamp (`2026`).
    Year,
    /// The month (`2026-11`).
    Month,
    /// The day (`2026-11-25`).
    Day,
    /// The hour of a timestamp (`2026-11-25-10`).
    Hour,
    /// Iceberg's hash bucket: `murmur3_x86_32(value) mod N`, of integers, dates, timestamps,
    /// text, bytes, uuids and decimals.
    Bucket(u32),
    /// Integers and decimals rounded down to a multiple of W; text cut to W characters, bytes
    /// to W bytes.
    Truncate(u32),
}

impl Transform {
    /// The suffix Iceberg gives a partition field of this transform (`_day`, `_bucket`, ...).
    fn suffix(self) -> &'static str {
        match self {
            Transform::Identity => "",
            Transform::Year => "_year",
            Transform::Month => "_month",
            Transform::Day => "_day",
            Transform::Hour => "_hour",
            Transform::Bucket(_) => "_bucket",
            Transform::Truncate(_) => "_trunc",
        }
    }
}

/// One value partition: a column of the result and how its values become partitions.
/// Parsed from `COLUMN`, `day(COLUMN)`, `bucket(16, COLUMN)`, `truncate(4, COLUMN)`; a
/// column name in double quotes keeps any character (`day("Order Date")`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PartitionField {
    /// The result column.
    pub column: String,
    /// The transform.
    pub transform: Transform,
}

impl PartitionField {
    /// A partition of `column` by `transform`.
    pub fn new(column: impl Into<String>, transform: Transform) -> PartitionField {
        PartitionField {
            column: column.into(),
            transform,
        }
    }

    /// The partition's name, the key of its directories: the column for the identity,
    /// else the column and the transform as Iceberg names them (`l_shipdate_day`).
    pub fn name(&self) -> String {
        format!("{}{}", self.column, self.transform.suffix())
    }
}

impl fmt::Display for PartitionField {
    /// As [`FromStr`] reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = !self.column.is_empty()
            && self
                .column
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$');
        let column = match plain {
            true => self.column.clone(),
            false => format!("\"{}\"", self.column.replace('"', "\"\"")),
        };
        match self.transform {
            Transform::Identity => f.write_str(&column),
            Transform::Year => write!(f, "year({column})"),
            Transform::Month => write!(f, "month({column})"),
            Transform::Day => write!(f, "day({column})"),
            Transform::Hour => write!(f, "hour({column})"),
            Transform::Bucket(n) => write!(f, "bucket({n}, {column})"),
            Transform::Truncate(w) => write!(f, "truncate({w}, {column})"),
        }
    }
}

const SHAPES: &str = "COLUMN, year(COLUMN), month(COLUMN), day(COLUMN), hour(COLUMN), bucket(N, COLUMN) or \
     truncate(W, COLUMN)";

impl FromStr for PartitionField {
    type Err = Error;

    fn from_str(text: &str) -> Result<PartitionField> {
        let wrong = |why: &str| {
            Error::usage(format!(
                "invalid value partition \"{text}\": {why} (expected {SHAPES})"
            ))
        };
        let s = text.trim();
        let column = |c: &str| -> Result<String> {
            let c = c.trim();
            if let Some(inner) = c.strip_prefix('"') {
                let inner = inner
                    .strip_suffix('"')
                    .ok_or_else(|| wrong("an unclosed quote"))?;
                if inner.is_empty() {
                    return Err(wrong("an empty column name"));
                }
                return Ok(inner.replace("\"\"", "\""));
            }
            if c.is_empty() || c.contains(['(', ')', ',', '"']) {
                return Err(wrong("no column name"));
            }
            Ok(c.to_owned())
        };
        let Some(open) = s.find('(').filter(|_| !s.starts_with('"')) else {
            return Ok(PartitionField::new(column(s)?, Transform::Identity));
        };
        let inner = s[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| wrong("no closing parenthesis"))?;
        let name = s[..open].trim().to_ascii_lowercase();
        let width = |inner: &str| -> Result<(u32, String)> {
            let (n, c) = inner
                .split_once(',')
                .ok_or_else(|| wrong("a width or count and a column are needed"))?;
            let n: u32 = n
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| wrong("the width or count must be a positive integer"))?;
            Ok((n, column(c)?))
        };
        let (transform, column) = match name.as_str() {
            "year" | "years" => (Transform::Year, column(inner)?),
            "month" | "months" => (Transform::Month, column(inner)?),
            "day" | "days" => (Transform::Day, column(inner)?),
            "hour" | "hours" => (Transform::Hour, column(inner)?),
            "bucket" => {
                let (n, c) = width(inner)?;
                (Transform::Bucket(n), c)
            }
            "truncate" => {
                let (w, c) = width(inner)?;
                (Transform::Truncate(w), c)
            }
            other => return Err(wrong(&format!("unknown transform \"{other}\""))),
        };
        Ok(PartitionField::new(column, transform))
    }
}

/// A partition field checked against a schema: where its column is and how to read it.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) field: PartitionField,
    pub(crate) index: usize,
    kind: Kind,
}

/// What a column's values are, for the transforms.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    UInt,
    Bool,
    Date,
    /// A timestamp of this many units per second.
    Timestamp(i64),
    Text,
    Bytes,
    Uuid,
    Decimal(i8),
    /// An enum (Dictionary(Int16, Utf8)).
    Enum,
}

fn kind_of(field: &Field) -> Option<Kind> {
    Some(match field.data_type() {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Kind::Int,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => Kind::UInt,
        DataType::Boolean => Kind::Bool,
        DataType::Date32 => Kind::Date,
        DataType::Timestamp(unit, _) => Kind::Timestamp(match unit {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000,
        }),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Text,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Kind::Bytes,
        DataType::FixedSizeBinary(16) => Kind::Uuid,
        DataType::Decimal128(_, scale) => Kind::Decimal(*scale),
        DataType::Dictionary(k, v) if **k == DataType::Int16 && **v == DataType::Utf8 => Kind::Enum,
        _ => return None,
    })
}

impl Resolved {
    /// Finds `field`'s column in `schema` and checks that its transform applies to it.
    pub(crate) fn new(field: &PartitionField, schema: &Schema) -> Result<Resolved> {
        let (index, column) = schema
            .fields()
            .iter()
            .enumerate()
            .find(|(_, f)| f.name() == &field.column)
            .ok_or_else(|| {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                Error::usage(format!(
                    "value partition {field}: the result has no column \"{}\" (its columns: {})",
                    field.column,
                    names.join(", ")
                ))
            })?;
        let refuse = |why: &str| {
            Error::usage(format!(
                "value partition {field}: column \"{}\" is {}: {why}",
                field.column,
                column.data_type()
            ))
        };
        let kind = kind_of(column).ok_or_else(|| {
            refuse(
                "partitions are made of integers, booleans, dates, timestamps, text, bytes, \
                 uuids, decimals and enums",
            )
        })?;
        let fits = match field.transform {
            Transform::Identity => !matches!(kind, Kind::Bytes | Kind::Uuid),
            Transform::Year | Transform::Month | Transform::Day => {
                matches!(kind, Kind::Date | Kind::Timestamp(_))
            }
            Transform::Hour => matches!(kind, Kind::Timestamp(_)),
            Transform::Bucket(_) => !matches!(kind, Kind::Bool | Kind::Enum),
            Transform::Truncate(_) => matches!(
                kind,
                Kind::Int | Kind::UInt | Kind::Text | Kind::Bytes | Kind::Decimal(_)
            ),
        };
        if !fits {
            return Err(refuse(match field.transform {
                Transform::Identity => {
                    "bytes and uuids make poor directory names: use bucket(N, ...)"
                }
                Transform::Year | Transform::Month | Transform::Day => {
                    "this transform takes a date or a timestamp"
                }
                Transform::Hour => "hour takes a timestamp",
                Transform::Bucket(_) => {
                    "bucket takes integers, dates, timestamps, text, bytes, uuids or decimals"
                }
                _ => "truncate takes integers, decimals, text or bytes",
            }));
        }
        Ok(Resolved {
            field: field.clone(),
            index,
            kind,
        })
    }

    /// Whether the column itself is left out of the files (an identity partition: its value
    /// is in the directory's name, as Hive, Spark, DuckDB and pyarrow write them).
    pub(crate) fn is_identity(&self) -> bool {
        self.field.transform == Transform::Identity
    }
}

/// One field's keys for the rows of a batch.
pub(crate) enum Keys<'a> {
    /// An integer per row (transformed values, days, buckets, ...).
    Ints(Vec<Option<i64>>),
    /// Bytes per row, borrowed from the column (text, truncated text and bytes).
    Bytes(Vec<Option<&'a [u8]>>),
    /// A 128-bit integer per row (decimals).
    Wide(Vec<Option<i128>>),
}

impl Keys<'_> {
    /// Appends row `row`'s key to `out`: a null and every value encode differently.
    pub(crate) fn encode(&self, row: usize, out: &mut Vec<u8>) {
        match self {
            Keys::Ints(v) => match v[row] {
                None => out.push(0),
                Some(x) => {
                    out.push(1);
                    out.extend_from_slice(&x.to_le_bytes());
                }
            },
            Keys::Wide(v) => match v[row] {
                None => out.push(0),
                Some(x) => {
                    out.push(1);
                    out.extend_from_slice(&x.to_le_bytes());
                }
            },
            Keys::Bytes(v) => match v[row] {
                None => out.push(0),
                Some(b) => {
                    out.push(1);
                    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                    out.extend_from_slice(b);
                }
            },
        }
    }
}

/// Floor division.
fn div_floor(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

use pgarrow_types::civil_from_days as civil;

fn year_text(y: i64) -> String {
    match (0..=9999).contains(&y) {
        true => format!("{y:04}"),
        false => format!("{y}"),
    }
}

fn date_text(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{}-{m:02}-{d:02}", year_text(y))
}

impl Resolved {
    /// Micros since the epoch of a timestamp value in this column's unit (floor).
    fn to_micros(per_second: i64, v: i64) -> i64 {
        match per_second {
            1 => v.saturating_mul(1_000_000),
            1_000 => v.saturating_mul(1_000),
            1_000_000 => v,
            _ => div_floor(v, 1_000),
        }
    }

    /// This field's key for every row of `column`.
    pub(crate) fn keys<'a>(&self, column: &'a ArrayRef) -> Keys<'a> {
        let t = self.field.transform;
        match self.kind {
            Kind::Int | Kind::UInt | Kind::Date => {
                let ints = ints(column);
                Keys::Ints(match t {
                    Transform::Identity => ints,
                    Transform::Bucket(n) => map(ints, |v| bucket(&murmur3(&v.to_le_bytes()), n)),
                    Transform::Truncate(w) => map(ints, |v| v - v.rem_euclid(i64::from(w))),
                    Transform::Year => map(ints, |d| civil(d).0 - 1970),
                    Transform::Month => map(ints, |d| {
                        let (y, m, _) = civil(d);
                        (y - 1970) * 12 + i64::from(m) - 1
                    }),
                    Transform::Day => ints,
                    Transform::Hour => unreachable!("checked by Resolved::new"),
                })
            }
            Kind::Timestamp(per_second) => {
                let micros = map(ints(column), |v| Resolved::to_micros(per_second, v));
                Keys::Ints(match t {
                    Transform::Identity => ints(column),
                    Transform::Bucket(n) => map(micros, |v| bucket(&murmur3(&v.to_le_bytes()), n)),
                    Transform::Year => {
                        map(micros, |v| civil(div_floor(v, MICROS_PER_DAY)).0 - 1970)
                    }
                    Transform::Month => map(micros, |v| {
                        let (y, m, _) = civil(div_floor(v, MICROS_PER_DAY));
                        (y - 1970) * 12 + i64::from(m) - 1
                    }),
                    Transform::Day => map(micros, |v| div_floor(v, MICROS_PER_DAY)),
                    Transform::Hour => map(micros, |v| div_floor(v, MICROS_PER_HOUR)),
                    Transform::Truncate(_) => unreachable!("checked by Resolved::new"),
                })
            }
            Kind::Bool => {
                let b = column.as_boolean();
                Keys::Ints(b.iter().map(|v| v.map(i64::from)).collect())
            }
            Kind::Decimal(_) => {
                let d = column.as_primitive::<Decimal128Type>();
                let values = d.iter();
                Keys::Wide(match t {
                    Transform::Identity => values.collect(),
                    Transform::Truncate(w) => values
                        .map(|v| v.map(|v| v - v.rem_euclid(i128::from(w))))
                        .collect(),
                    Transform::Bucket(n) => values
                        .map(|v| v.map(|v| i128::from(bucket(&murmur3(&decimal_bytes(v)), n))))
                        .collect(),
                    _ => unreachable!("checked by Resolved::new"),
                })
            }
            Kind::Text | Kind::Bytes | Kind::Uuid | Kind::Enum => {
                let bytes = byte_values(column);
                match t {
                    Transform::Identity => Keys::Bytes(bytes),
                    Transform::Truncate(w) => Keys::Bytes(
                        bytes
                            .into_iter()
                            .map(|v| {
                                v.map(|b| match self.kind {
                                    Kind::Text => truncate_chars(b, w as usize),
                                    _ => &b[..b.len().min(w as usize)],
                                })
                            })
                            .collect(),
                    ),
                    Transform::Bucket(n) => Keys::Ints(
                        bytes
                            .into_iter()
                            .map(|v| v.map(|b| bucket(&murmur3(b), n)))
                            .collect(),
                    ),
                    _ => unreachable!("checked by Resolved::new"),
                }
            }
        }
    }

    /// The partition value of row `row` of `keys` as text: what its directory says
    /// (before escaping), and what the manifest records. `None` for a null.
    pub(crate) fn value_text(&self, keys: &Keys<'_>, row: usize) -> Option<String> {
        let t = self.field.transform;
        match keys {
            Keys::Ints(v) => {
                let v = v[row]?;
                Some(match (t, self.kind) {
                    (Transform::Year, _) => year_text(v + 1970),
                    (Transform::Month, _) => {
                        let y = div_floor(v, 12) + 1970;
                        format!("{}-{:02}", year_text(y), v.rem_euclid(12) + 1)
                    }
                    (Transform::Day, _) | (Transform::Identity, Kind::Date) => date_text(v),
                    (Transform::Hour, _) => {
                        format!("{}-{:02}", date_text(div_floor(v, 24)), v.rem_euclid(24))
                    }
                    (Transform::Identity, Kind::Bool) => (v != 0).to_string(),
                    (Transform::Identity, Kind::Timestamp(per_second)) => {
                        timestamp_text(Resolved::to_micros(per_second, v), per_second, v)
                    }
                    _ => v.to_string(),
                })
            }
            Keys::Wide(v) => {
                let v = v[row]?;
                match (t, self.kind) {
                    (Transform::Bucket(_), _) => Some(v.to_string()),
                    (_, Kind::Decimal(scale)) => Some(decimal_text(v, scale)),
                    _ => Some(v.to_string()),
                }
            }
            Keys::Bytes(v) => {
                let b = v[row]?;
                Some(match self.kind {
                    Kind::Bytes => b.iter().map(|x| format!("{x:02x}")).collect(),
                    _ => String::from_utf8_lossy(b).into_owned(),
                })
            }
        }
    }
}

fn map(v: Vec<Option<i64>>, f: impl Fn(i64) -> i64) -> Vec<Option<i64>> {
    v.into_iter().map(|x| x.map(&f)).collect()
}

/// An integer, date or timestamp column's values as i64.
fn ints(column: &ArrayRef) -> Vec<Option<i64>> {
    macro_rules! collect {
        ($t:ty) => {
            column
                .as_primitive::<$t>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect()
        };
    }
    match column.data_type() {
        DataType::Int8 => collect!(Int8Type),
        DataType::Int16 => collect!(Int16Type),
        DataType::Int32 => collect!(Int32Type),
        DataType::Int64 => collect!(Int64Type),
        DataType::UInt8 => collect!(UInt8Type),
        DataType::UInt16 => collect!(UInt16Type),
        DataType::UInt32 => collect!(UInt32Type),
        DataType::Date32 => collect!(Date32Type),
        DataType::Timestamp(TimeUnit::Second, _) => collect!(TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => collect!(TimestampMillisecondType),
        DataType::Timestamp(TimeUnit::Microsecond, _) => collect!(TimestampMicrosecondType),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => collect!(TimestampNanosecondType),
        other => unreachable!("{other} is not an integer column (checked by Resolved::new)"),
    }
}

/// A text, bytes, uuid or enum column's values as bytes (an enum's by its label).
fn byte_values(column: &ArrayRef) -> Vec<Option<&[u8]>> {
    match column.data_type() {
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::as_bytes))
            .collect(),
        DataType::LargeUtf8 => column
            .as_string::<i64>()
            .iter()
            .map(|v| v.map(str::as_bytes))
            .collect(),
        DataType::Utf8View => column
            .as_string_view()
            .iter()
            .map(|v| v.map(str::as_bytes))
            .collect(),
        DataType::Binary => column.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => column.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => column.as_binary_view().iter().collect(),
        DataType::FixedSizeBinary(_) => column.as_fixed_size_binary().iter().collect(),
        DataType::Dictionary(_, _) => {
            let d = column.as_dictionary::<Int16Type>();
            let labels = d.values().as_string::<i32>();
            d.keys()
                .iter()
                .map(|k| k.map(|k| labels.value(k as usize).as_bytes()))
                .collect()
        }
        other => unreachable!("{other} is not a byte column (checked by Resolved::new)"),
    }
}

/// The first `w` characters of UTF-8 text.
fn truncate_chars(b: &[u8], w: usize) -> &[u8] {
    match std::str::from_utf8(b) {
        Ok(s) => match s.char_indices().nth(w) {
            Some((end, _)) => &b[..end],
            None => b,
        },
        Err(_) => &b[..b.len().min(w)],
    }
}

fn timestamp_text(micros: i64, per_second: i64, raw: i64) -> String {
    let days = div_floor(micros, MICROS_PER_DAY);
    let of_day = micros - days * MICROS_PER_DAY;
    let secs = of_day / 1_000_000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = format!("{} {h:02}:{m:02}:{s:02}", date_text(days));
    let fraction = raw.rem_euclid(per_second);
    if fraction != 0 {
        let digits = per_second.ilog10() as usize;
        let f = format!("{fraction:0digits$}");
        text.push('.');
        text.push_str(f.trim_end_matches('0'));
    }
    text
}

fn decimal_text(v: i128, scale: i8) -> String {
    if scale <= 0 {
        return (v * 10i128.pow(u32::from(scale.unsigned_abs()))).to_string();
    }
    let scale = scale as usize;
    let digits = v.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    format!("{}{int}.{frac}", if v < 0 { "-" } else { "" })
}

/// An unscaled decimal as Iceberg hashes it: its two's complement, big-endian, in the fewest
/// bytes that hold it.
fn decimal_bytes(v: i128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

/// Iceberg's bucket of a hash: `(hash & i32::MAX) % n`.
fn bucket(hash: &i32, n: u32) -> i64 {
    i64::from((hash & i32::MAX) as u32 % n)
}

/// MurmurHash3 x86 32-bit with seed 0, as Iceberg's bucket transform hashes values.
pub(crate) fn murmur3(data: &[u8]) -> i32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h: u32 = 0;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut k: u32 = 0;
        for (i, b) in tail.iter().enumerate() {
            k ^= u32::from(*b) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h as i32
}

/// A partition value as a directory name segment: every byte but `A-Z a-z 0-9 - _ .` and the
/// bytes of non-ASCII characters percent-encoded, as the readers (pyarrow's `uri` segments,
/// DuckDB, polars, Spark) decode them; so no value can add a level (`/`), end the key (`=`), or
/// be taken for the null (`__HIVE_DEFAULT_PARTITION__` is written only for a null).
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    // "." and ".." are not names a directory can have.
    match out.as_str() {
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        _ => out,
    }
}

/// The directory segment of a null partition value, as Hive writes it.
pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        Date32Array, Decimal128Array, FixedSizeBinaryArray, Int32Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    use std::sync::Arc;

    #[test]
    fn fields_parse_and_print_back() {
        for text in [
            "l_shipdate",
            "day(l_shipdate)",
            "year(d)",
            "month(d)",
            "hour(ts)",
            "bucket(16, id)",
            "truncate(4, name)",
            "day(\"Order Date\")",
            "\"a\"\"b\"",
        ] {
            let f: PartitionField = text.parse().unwrap();
            assert_eq!(f.to_string(), text);
        }
        let f: PartitionField = "DAY( x )".parse().unwrap();
        assert_eq!(f, PartitionField::new("x", Transform::Day));
        assert_eq!(f.name(), "x_day");
        assert_eq!(
            "bucket(8,id)".parse::<PartitionField>().unwrap().name(),
            "id_bucket"
        );
        for bad in [
            "",
            "day(x",
            "week(x)",
            "bucket(0, x)",
            "bucket(x)",
            "truncate(-1, x)",
            "\"x",
        ] {
            let e = bad.parse::<PartitionField>().unwrap_err();
            assert!(
                e.is_usage() && e.to_string().contains("expected COLUMN"),
                "{e}"
            );
        }
    }

    /// The test vectors of Iceberg's specification (Appendix B).
    #[test]
    fn murmur3_matches_iceberg() {
        assert_eq!(murmur3(&34i64.to_le_bytes()), 2017239379);
        assert_eq!(murmur3(b"iceberg"), 1210000089);
        assert_eq!(murmur3(&[0, 1, 2, 3]), -188683207);
        // 2017-11-16 is day 17486.
        assert_eq!(murmur3(&17486i64.to_le_bytes()), -653330422);
        // 2017-11-16T22:31:08 in micros.
        assert_eq!(murmur3(&1510871468000000i64.to_le_bytes()), -2047944441);
        // 14.20 is 1420 unscaled.
        assert_eq!(murmur3(&decimal_bytes(1420)), -500754589);
        let uuid = [
            0xf7, 0x9c, 0x3e, 0x09, 0x67, 0x7c, 0x4b, 0xbd, 0xa4, 0x79, 0x3f, 0x34, 0x9c, 0xb7,
            0x85, 0xe7,
        ];
        assert_eq!(murmur3(&uuid), 1488055340);
        assert_eq!(decimal_bytes(-1), vec![0xff]);
        assert_eq!(decimal_bytes(128), vec![0x00, 0x80]);
        assert_eq!(decimal_bytes(0), vec![0x00]);
    }

    fn resolve(text: &str, field: Field) -> Resolved {
        Resolved::new(&text.parse().unwrap(), &Schema::new(vec![field])).unwrap()
    }

    fn texts(r: &Resolved, column: ArrayRef) -> Vec<Option<String>> {
        let keys = r.keys(&column);
        (0..column.len()).map(|i| r.value_text(&keys, i)).collect()
    }

    #[test]
    fn time_transforms_name_their_values_as_iceberg_does() {
        let days = Arc::new(Date32Array::from(vec![
            Some(20_417),
            None,
            Some(-1),
            Some(i32::MAX),
        ]));
        let f = || Field::new("d", DataType::Date32, true);
        let s = |v: &[Option<&str>]| v.iter().map(|x| x.map(str::to_owned)).collect::<Vec<_>>();
        assert_eq!(
            texts(&resolve("day(d)", f()), days.clone()),
            s(&[
                Some("2025-11-25"),
                None,
                Some("1969-12-31"),
                Some("5881580-07-11")
            ])
        );
        assert_eq!(
            texts(&resolve("month(d)", f()), days.clone()),
            s(&[Some("2025-11"), None, Some("1969-12"), Some("5881580-07")])
        );
        assert_eq!(
            texts(&resolve("year(d)", f()), days.clone()),
            s(&[Some("2025"), None, Some("1969"), Some("5881580")])
        );
        assert_eq!(
            texts(&resolve("d", f()), days),
            s(&[
                Some("2025-11-25"),
                None,
                Some("1969-12-31"),
                Some("5881580-07-11")
            ])
        );
        let ts = Arc::new(
            TimestampMicrosecondArray::from(vec![Some(1_764_064_800_000_000), Some(-1)])
                .with_timezone("UTC"),
        );
        let f = || Field::new("t", ts.data_type().clone(), true);
        assert_eq!(
            texts(&resolve("hour(t)", f()), ts.clone()),
            s(&[Some("2025-11-25-10"), Some("1969-12-31-23")])
        );
        assert_eq!(
            texts(&resolve("t", f()), ts),
            s(&[
                Some("2025-11-25 10:00:00"),
                Some("1969-12-31 23:59:59.999999")
            ])
        );
    }

    #[test]
    fn buckets_and_truncation() {
        let ints = Arc::new(Int64Array::from(vec![Some(34), Some(-1), None, Some(10)]));
        let f = || Field::new("i", DataType::Int64, true);
        let b = texts(&resolve("bucket(16, i)", f()), ints.clone());
        assert_eq!(
            b[0].as_deref(),
            Some(&*((2017239379i64 & 0x7fff_ffff) % 16).to_string())
        );
        assert_eq!(b[2], None);
        let t = texts(&resolve("truncate(10, i)", f()), ints);
        assert_eq!(
            t,
            vec![
                Some("30".into()),
                Some("-10".into()),
                None,
                Some("10".into())
            ]
        );
        let text = Arc::new(StringArray::from(vec![
            Some("iceberg"),
            Some("é€"),
            Some(""),
            None,
        ]));
        let f = || Field::new("s", DataType::Utf8, true);
        let t = texts(&resolve("truncate(1, s)", f()), text.clone());
        assert_eq!(
            t,
            vec![Some("i".into()), Some("é".into()), Some("".into()), None]
        );
        let b = texts(&resolve("bucket(1000, s)", f()), text);
        assert_eq!(b[0].as_deref(), Some(&*(1210000089 % 1000).to_string()));
        let dec = Arc::new(
            Decimal128Array::from(vec![Some(1420), Some(-5), None])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        let f = || Field::new("n", dec.data_type().clone(), true);
        assert_eq!(
            texts(&resolve("n", f()), dec.clone()),
            vec![Some("14.20".into()), Some("-0.05".into()), None]
        );
        assert_eq!(
            texts(&resolve("truncate(50, n)", f()), dec),
            vec![Some("14.00".into()), Some("-0.50".into()), None]
        );
    }

    #[test]
    fn columns_a_transform_cannot_take_are_refused_by_name() {
        let schema = Schema::new(vec![
            Field::new("i", DataType::Int32, true),
            Field::new("u", DataType::FixedSizeBinary(16), true),
            Field::new("f", DataType::Float64, true),
        ]);
        for (text, words) in [
            ("day(i)", "takes a date or a timestamp"),
            ("u", "use bucket"),
            ("f", "partitions are made of"),
            ("missing", "no column \"missing\" (its columns: i, u, f)"),
        ] {
            let e = Resolved::new(&text.parse().unwrap(), &schema).unwrap_err();
            assert!(e.is_usage() && e.to_string().contains(words), "{e}");
        }
        let uuid = resolve(
            "bucket(4, u)",
            Field::new("u", DataType::FixedSizeBinary(16), true),
        );
        let col: ArrayRef =
            Arc::new(FixedSizeBinaryArray::try_from_iter([[7u8; 16]].iter()).unwrap());
        assert!(texts(&uuid, col)[0].is_some());
        let k = resolve("i", Field::new("i", DataType::Int32, true));
        let col: ArrayRef = Arc::new(Int32Array::from(vec![Some(0), None]));
        let keys = k.keys(&col);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        keys.encode(0, &mut a);
        keys.encode(1, &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn escaping_keeps_every_value_one_segment() {
        assert_eq!(escape("2026-11-25"), "2026-11-25");
        assert_eq!(escape("a/b=c d"), "a%2Fb%3Dc%20d");
        assert_eq!(escape("é"), "%C3%A9");
        assert_eq!(escape("%"), "%25");
        assert_eq!(escape(".."), "%2E%2E");
        assert_eq!(escape(""), "");
    }
}
