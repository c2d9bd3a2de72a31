//! Parquet's Variant, as JSON text: readers give a Variant column as a Struct of a binary
//! `metadata` (the dictionary of object keys), a binary `value` (the encoded value) and, when
//! the writer shredded it, a `typed_value` (the values of one type in a column of their own:
//! a primitive, a Struct of shredded object fields, a List of shredded elements). This puts
//! shredded values back together as the Variant shredding spec says and decodes the Variant
//! encoding: primitives, short strings, objects and arrays. Numbers keep every digit
//! (decimals exactly, floats in their shortest exact form; NaN and infinity, which JSON
//! lacks, are refused), dates and times are ISO 8601 strings, binary is `\x` hex text, a
//! UUID its usual text. A shredded value reads as its unshredded form would: object keys in
//! the Variant's own order (sorted), whichever column held each field.

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::{Array, StructArray};
use arrow_schema::DataType;

use crate::error::{EncodeError, Shredded, Step, VariantFault as V, VariantPart};

use super::json::{
    BinaryGetter, JsonWriter, binary_getter, clock, date, decimal, float, float32, quote, timestamp,
};

/// Nesting allowed in one value (each level costs at least one byte of the value).
const MAX_DEPTH: usize = 256;

/// Whether a Struct's fields are a Variant's: a binary `metadata`, and a binary `value` or a
/// `typed_value` (shredded), and nothing else.
pub(crate) fn is_variant(fields: &arrow_schema::Fields) -> bool {
    let binary = |t: &DataType| {
        matches!(
            t,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        )
    };
    fields
        .iter()
        .any(|f| f.name() == "metadata" && binary(f.data_type()))
        && fields
            .iter()
            .any(|f| (f.name() == "value" && binary(f.data_type())) || f.name() == "typed_value")
        && fields
            .iter()
            .all(|f| matches!(f.name().as_str(), "metadata" | "value" | "typed_value"))
}

/// The JSON writer of a Variant column (see [`is_variant`]), shredded or not.
pub(crate) fn writer(s: &StructArray) -> Result<JsonWriter<'_>, EncodeError> {
    let metadata = s.column_by_name("metadata").ok_or(V::NoMetadataColumn)?;
    let metadata = binary_getter(metadata.as_ref())?;
    let level = level(s, 0)?;
    Ok(Box::new(move |i, out| {
        let m = metadata(i).ok_or(V::NoMetadata)?;
        let m = Metadata::parse(m).map_err(|e| e.at(Step::VariantMetadata))?;
        // Missing where a value is required: a Variant null.
        if !level(i, &m, out)? {
            out.push_str("null");
        }
        Ok(())
    }))
}

/// Writes the value of one shredding level (a Variant, an object's field, an array's
/// element) at a row; `false` when it is missing (neither `value` nor `typed_value`).
type Level<'a> = Box<dyn Fn(usize, &Metadata<'_>, &mut String) -> Result<bool, EncodeError> + 'a>;

/// Writes a `typed_value` at a row, given the level's `value` there (the rest of a partially
/// shredded object; anything else with a typed value is an error).
type Typed<'a> =
    Box<dyn Fn(usize, &Metadata<'_>, Option<&[u8]>, &mut String) -> Result<(), EncodeError> + 'a>;

/// The level of Struct `s`: its `value` and `typed_value`, either of which may be absent.
fn level(s: &StructArray, depth: usize) -> Result<Level<'_>, EncodeError> {
    if depth > MAX_DEPTH {
        return Err(V::ShreddedTooDeep(MAX_DEPTH).into());
    }
    let value: Option<BinaryGetter<'_>> = s
        .column_by_name("value")
        .map(|c| binary_getter(c.as_ref()))
        .transpose()
        .map_err(|_| V::ValueNotBinary)?;
    let typed = match s.column_by_name("typed_value") {
        Some(c) => Some((c.as_ref(), typed(c.as_ref(), depth)?)),
        None => None,
    };
    if value.is_none() && typed.is_none() {
        return Err(V::EmptyLevel.into());
    }
    Ok(Box::new(move |i, m, out| {
        let v = value.as_ref().and_then(|get| get(i));
        match (&typed, v) {
            (Some((array, write)), v) if !array.is_null(i) => write(i, m, v, out).map(|()| true),
            (_, Some(v)) => write_value(m, v, 0, out)
                .map(|()| true)
                .map_err(|e| e.at(Step::VariantValue)),
            (_, None) => Ok(false),
        }
    }))
}

/// The writer of a `typed_value` column: an object's shredded fields (a Struct of levels),
/// an array's elements (a List of levels), or a primitive.
fn typed(array: &dyn Array, depth: usize) -> Result<Typed<'_>, EncodeError> {
    Ok(match array.data_type() {
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut shredded = Vec::with_capacity(fields.len());
            for (f, c) in fields.iter().zip(s.columns()) {
                let field = match c.data_type() {
                    DataType::Struct(inner)
                        if inner
                            .iter()
                            .all(|f| matches!(f.name().as_str(), "value" | "typed_value")) =>
                    {
                        c.as_struct()
                    }
                    _ => return Err(V::FieldNotGroup(f.name().clone()).into()),
                };
                shredded.push((f.name().as_str(), level(field, depth + 1)?));
            }
            // Written in the Variant's own order (keys sorted, as its objects store them):
            // the shredded fields sorted once here, merged row by row with the rest of a
            // partially shredded object, each value written in place.
            shredded.sort_unstable_by(|a, b| a.0.cmp(b.0));
            Box::new(move |i, m, rest, out| {
                let mut others = match rest {
                    Some(rest) => object(m, rest)
                        .map_err(|e| e.at(Step::VariantValue))?
                        .ok_or(V::NotAnObject)?,
                    None => Vec::new(),
                };
                others.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let (mut typed, mut others) =
                    (shredded.iter().peekable(), others.into_iter().peekable());
                let mut first = true;
                out.push('{');
                loop {
                    let from_typed = match (typed.peek(), others.peek()) {
                        (None, None) => break,
                        (Some((name, _)), Some((key, _))) if *name == *key => {
                            return Err(V::ShreddedTwice((*key).to_owned()).into());
                        }
                        (Some((name, _)), Some((key, _))) => *name < *key,
                        (typed, _) => typed.is_some(),
                    };
                    // The key, then the value; a shredded field that is missing takes its
                    // key back out.
                    let start = out.len();
                    if !first {
                        out.push(',');
                    }
                    if from_typed {
                        let Some((name, level)) = typed.next() else {
                            break;
                        };
                        quote(name, out);
                        out.push(':');
                        if level(i, m, out).map_err(|e| e.at(Step::Field((*name).to_owned())))? {
                            first = false;
                        } else {
                            out.truncate(start);
                        }
                    } else {
                        let Some((key, bytes)) = others.next() else {
                            break;
                        };
                        quote(key, out);
                        out.push(':');
                        write_value(m, bytes, 1, out).map_err(|e| e.at(Step::VariantValue))?;
                        first = false;
                    }
                }
                out.push('}');
                Ok(())
            })
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let (offsets, items): (Vec<usize>, &dyn Array) = match array.data_type() {
                DataType::List(_) => {
                    let l = array.as_list::<i32>();
                    let o = l.value_offsets().iter().map(|&o| o as usize).collect();
                    (o, l.values().as_ref())
                }
                _ => {
                    let l = array.as_list::<i64>();
                    let o = l.value_offsets().iter().map(|&o| o as usize).collect();
                    (o, l.values().as_ref())
                }
            };
            let elements = items.as_struct_opt().ok_or(V::ElementsNotGroups)?;
            let element = level(elements, depth + 1)?;
            Box::new(move |i, m, rest, out| {
                if rest.is_some() {
                    return Err(V::ValueAndTyped(Shredded::Array).into());
                }
                let (start, end) = (offsets[i], offsets[i + 1]);
                out.push('[');
                for j in start..end {
                    if j > start {
                        out.push(',');
                    }
                    // A missing element (which writers must not make) reads as a Variant
                    // null, as the spec says of a value missing where one is required.
                    if !element(j, m, out).map_err(|e| e.at(Step::Element(j - start + 1)))? {
                        out.push_str("null");
                    }
                }
                out.push(']');
                Ok(())
            })
        }
        // Variant's uuid, shredded as FIXED_LEN_BYTE_ARRAY(16) (binary is BYTE_ARRAY).
        DataType::FixedSizeBinary(16) => {
            let a = array.as_fixed_size_binary();
            Box::new(move |i, _, rest, out| {
                if rest.is_some() {
                    return Err(V::ValueAndTyped(Shredded::Uuid).into());
                }
                uuid(a.value(i), out);
                Ok(())
            })
        }
        DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Date32
        | DataType::Time64(_)
        | DataType::Timestamp(..)
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => {
            let write = super::json::writer(array)?;
            Box::new(move |i, _, rest, out| {
                if rest.is_some() {
                    return Err(V::ValueAndTyped(Shredded::Primitive).into());
                }
                write(i, out)
            })
        }
        t => return Err(V::TypedValueType(t.clone()).into()),
    })
}

/// The UUID text of 16 bytes.
fn uuid(b: &[u8], out: &mut String) {
    out.push('"');
    for (k, byte) in b.iter().enumerate() {
        if matches!(k, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{byte:02x}");
    }
    out.push('"');
}

/// The dictionary of a Variant's metadata: its key strings.
struct Metadata<'a> {
    bytes: &'a [u8],
    offsets: Vec<usize>,
}

impl<'a> Metadata<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Metadata<'a>, EncodeError> {
        let header = *bytes.first().ok_or(V::EmptyMetadata)?;
        if header & 0x0f != 1 {
            return Err(V::Version(header & 0x0f).into());
        }
        let size = usize::from(header >> 6) + 1;
        let mut at = 1;
        let count = read_uint(bytes, &mut at, size)?;
        if count > bytes.len() {
            return Err(V::DictionarySize {
                keys: count,
                bytes: bytes.len(),
            }
            .into());
        }
        let offsets = (0..=count)
            .map(|_| read_uint(bytes, &mut at, size))
            .collect::<Result<Vec<_>, _>>()?;
        let strings = &bytes[at..];
        if offsets.windows(2).any(|w| w[0] > w[1]) || offsets.last() > Some(&strings.len()) {
            return Err(V::DictionaryOffsets.into());
        }
        Ok(Metadata {
            bytes: strings,
            offsets,
        })
    }

    fn key(&self, id: usize) -> Result<&'a str, EncodeError> {
        let (start, end) = match (self.offsets.get(id), self.offsets.get(id + 1)) {
            (Some(&s), Some(&e)) => (s, e),
            _ => return Err(V::UnknownKey(id).into()),
        };
        std::str::from_utf8(&self.bytes[start..end]).map_err(|_| V::KeyNotUtf8(id).into())
    }
}

/// A little-endian unsigned integer of `size` bytes at `*at`.
fn read_uint(bytes: &[u8], at: &mut usize, size: usize) -> Result<usize, EncodeError> {
    let end = at.checked_add(size).filter(|&e| e <= bytes.len());
    let Some(end) = end else {
        return Err(V::Truncated(VariantPart::Integer).into());
    };
    let mut v = 0usize;
    for (k, b) in bytes[*at..end].iter().enumerate() {
        v |= usize::from(*b) << (8 * k);
    }
    *at = end;
    Ok(v)
}

fn take(bytes: &[u8], at: usize, n: usize) -> Result<&[u8], EncodeError> {
    at.checked_add(n)
        .and_then(|end| bytes.get(at..end))
        .ok_or_else(|| V::Truncated(VariantPart::Value).into())
}

fn le<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], EncodeError> {
    Ok(take(bytes, at, N)?.try_into().unwrap_or([0; N]))
}

/// Writes the Variant (`metadata`, `value`) as JSON.
#[cfg(test)]
fn to_json(metadata: &[u8], value: &[u8], out: &mut String) -> Result<(), EncodeError> {
    let metadata = Metadata::parse(metadata).map_err(|e| e.at(Step::VariantMetadata))?;
    write_value(&metadata, value, 0, out).map_err(|e| e.at(Step::VariantValue))
}

fn write_value(
    m: &Metadata<'_>,
    v: &[u8],
    depth: usize,
    out: &mut String,
) -> Result<(), EncodeError> {
    if depth > MAX_DEPTH {
        return Err(V::TooDeep(MAX_DEPTH).into());
    }
    let header = *v.first().ok_or(V::EmptyValue)?;
    let (basic, high) = (header & 0x03, usize::from(header >> 2));
    match basic {
        0 => primitive(high, v, out),
        1 => {
            let s = take(v, 1, high)?;
            quote(std::str::from_utf8(s).map_err(|_| V::NotUtf8)?, out);
            Ok(())
        }
        2 => {
            let fields = object(m, v)?.unwrap_or_default();
            out.push('{');
            for (k, (key, field)) in fields.into_iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                quote(key, out);
                out.push(':');
                write_value(m, field, depth + 1, out)?;
            }
            out.push('}');
            Ok(())
        }
        _ => {
            let offset_size = (high & 0x03) + 1;
            let large = high & 0x04 != 0;
            let mut at = 1;
            let n = read_uint(v, &mut at, if large { 4 } else { 1 })?;
            if n > v.len() {
                return Err(V::ArraySize {
                    elements: n,
                    bytes: v.len(),
                }
                .into());
            }
            let offsets = (0..=n)
                .map(|_| read_uint(v, &mut at, offset_size))
                .collect::<Result<Vec<_>, _>>()?;
            let values = &v[at..];
            out.push('[');
            for (k, start) in offsets[..n].iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                let element = values.get(*start..).ok_or(V::ElementPastEnd(k))?;
                write_value(m, element, depth + 1, out)?;
            }
            out.push(']');
            Ok(())
        }
    }
}

/// An object's fields: each key, and the bytes from the field's value on.
type Fields<'m, 'v> = Vec<(&'m str, &'v [u8])>;

/// The fields of object `v`, or `None` when `v` is not an object.
fn object<'m, 'v>(m: &Metadata<'m>, v: &'v [u8]) -> Result<Option<Fields<'m, 'v>>, EncodeError> {
    let header = *v.first().ok_or(V::EmptyValue)?;
    let (basic, high) = (header & 0x03, usize::from(header >> 2));
    if basic != 2 {
        return Ok(None);
    }
    let offset_size = (high & 0x03) + 1;
    let id_size = ((high >> 2) & 0x03) + 1;
    let large = high & 0x10 != 0;
    let mut at = 1;
    let n = read_uint(v, &mut at, if large { 4 } else { 1 })?;
    if n > v.len() {
        return Err(V::ObjectSize {
            fields: n,
            bytes: v.len(),
        }
        .into());
    }
    let ids = (0..n)
        .map(|_| read_uint(v, &mut at, id_size))
        .collect::<Result<Vec<_>, _>>()?;
    let offsets = (0..=n)
        .map(|_| read_uint(v, &mut at, offset_size))
        .collect::<Result<Vec<_>, _>>()?;
    let values = &v[at..];
    ids.iter()
        .enumerate()
        .map(|(k, id)| {
            let field = values.get(offsets[k]..).ok_or(V::FieldPastEnd(k))?;
            Ok((m.key(*id)?, field))
        })
        .collect::<Result<Vec<_>, EncodeError>>()
        .map(Some)
}

/// A primitive of type `id` whose header is `v[0]`.
fn primitive(id: usize, v: &[u8], out: &mut String) -> Result<(), EncodeError> {
    match id {
        0 => out.push_str("null"),
        1 => out.push_str("true"),
        2 => out.push_str("false"),
        3 => write!(out, "{}", i8::from_le_bytes(le(v, 1)?)).unwrap_or(()),
        4 => write!(out, "{}", i16::from_le_bytes(le(v, 1)?)).unwrap_or(()),
        5 => write!(out, "{}", i32::from_le_bytes(le(v, 1)?)).unwrap_or(()),
        6 => write!(out, "{}", i64::from_le_bytes(le(v, 1)?)).unwrap_or(()),
        7 => float(f64::from_le_bytes(le(v, 1)?), out)?,
        8..=10 => {
            let scale = *v.get(1).ok_or(V::Truncated(VariantPart::Decimal))?;
            let digits = match id {
                8 => i32::from_le_bytes(le(v, 2)?).to_string(),
                9 => i64::from_le_bytes(le(v, 2)?).to_string(),
                _ => i128::from_le_bytes(le(v, 2)?).to_string(),
            };
            let scale = i8::try_from(scale)
                .ok()
                .filter(|s| *s <= 38)
                .ok_or(V::DecimalScale(scale))?;
            decimal(digits, scale, out);
        }
        11 => {
            out.push('"');
            date(i64::from(i32::from_le_bytes(le(v, 1)?)), out);
            out.push('"');
        }
        12 | 13 | 18 | 19 => {
            let per_sec = if id >= 18 { 1_000_000_000 } else { 1_000_000 };
            out.push('"');
            timestamp(
                i64::from_le_bytes(le(v, 1)?),
                per_sec,
                matches!(id, 12 | 18),
                out,
            );
            out.push('"');
        }
        14 => float32(f32::from_le_bytes(le(v, 1)?), out)?,
        15 | 16 => {
            let n = u32::from_le_bytes(le(v, 1)?) as usize;
            let bytes = take(v, 5, n)?;
            if id == 16 {
                quote(std::str::from_utf8(bytes).map_err(|_| V::NotUtf8)?, out);
            } else {
                out.push_str("\"\\\\x");
                for b in bytes {
                    let _ = write!(out, "{b:02x}");
                }
                out.push('"');
            }
        }
        17 => {
            let micros = i64::from_le_bytes(le(v, 1)?);
            if !(0..86_400_000_000).contains(&micros) {
                return Err(V::Time(micros).into());
            }
            out.push('"');
            clock(micros * 1_000, out);
            out.push('"');
        }
        20 => uuid(take(v, 1, 16)?, out),
        other => return Err(V::UnknownPrimitive(other).into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metadata with `keys`, one-byte offsets.
    fn metadata(keys: &[&str]) -> Vec<u8> {
        let mut m = vec![0x01, keys.len() as u8, 0];
        let mut end = 0u8;
        for k in keys {
            end += k.len() as u8;
            m.push(end);
        }
        for k in keys {
            m.extend_from_slice(k.as_bytes());
        }
        m
    }

    fn json(m: &[u8], v: &[u8]) -> Result<String, String> {
        let mut out = String::new();
        to_json(m, v, &mut out)
            .map(|()| out)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn primitives() {
        let m = metadata(&[]);
        assert_eq!(json(&m, &[0x00]).unwrap(), "null");
        assert_eq!(json(&m, &[0x04]).unwrap(), "true");
        assert_eq!(json(&m, &[0x08]).unwrap(), "false");
        assert_eq!(json(&m, &[3 << 2, 0xff]).unwrap(), "-1");
        let mut i64v = vec![6 << 2];
        i64v.extend_from_slice(&i64::MIN.to_le_bytes());
        assert_eq!(json(&m, &i64v).unwrap(), "-9223372036854775808");
        let mut d = vec![10 << 2, 3];
        d.extend_from_slice(&(-12_345_678_901_234_567_890_123i128).to_le_bytes());
        assert_eq!(json(&m, &d).unwrap(), "-12345678901234567890.123");
        let mut f = vec![7 << 2];
        f.extend_from_slice(&0.1f64.to_le_bytes());
        assert_eq!(json(&m, &f).unwrap(), "0.1");
        let mut nan = vec![7 << 2];
        nan.extend_from_slice(&f64::NAN.to_le_bytes());
        assert!(json(&m, &nan).unwrap_err().contains("NaN has no JSON form"));
        let mut day = vec![11 << 2];
        day.extend_from_slice(&(-719_528i32).to_le_bytes());
        assert_eq!(json(&m, &day).unwrap(), "\"0000-01-01\"");
        let mut ts = vec![12 << 2];
        ts.extend_from_slice(&1_500_000i64.to_le_bytes());
        assert_eq!(json(&m, &ts).unwrap(), "\"1970-01-01T00:00:01.5Z\"");
        let mut ns = vec![19 << 2];
        ns.extend_from_slice(&1i64.to_le_bytes());
        assert_eq!(json(&m, &ns).unwrap(), "\"1970-01-01T00:00:00.000000001\"");
        let mut s = vec![16 << 2, 3, 0, 0, 0];
        s.extend_from_slice("a\"é".as_bytes().get(..3).unwrap());
        assert!(json(&m, &s).is_err(), "a cut UTF-8 sequence");
        let short = [(2 << 2) | 1, b'h', b'i'];
        assert_eq!(json(&m, &short).unwrap(), "\"hi\"");
        let mut bin = vec![15 << 2, 2, 0, 0, 0, 0x00, 0xff];
        assert_eq!(json(&m, &bin).unwrap(), r#""\\x00ff""#);
        bin.truncate(6);
        assert!(json(&m, &bin).unwrap_err().contains("ends inside"));
        let mut uuid = vec![20 << 2];
        uuid.extend_from_slice(&[0x12; 16]);
        assert_eq!(
            json(&m, &uuid).unwrap(),
            "\"12121212-1212-1212-1212-121212121212\""
        );
        assert!(
            json(&m, &[21 << 2])
                .unwrap_err()
                .contains("unknown type 21")
        );
        // Typed: where (the value, not the metadata) and what.
        let e = to_json(&m, &[21 << 2], &mut String::new()).unwrap_err();
        assert_eq!(e.path(), [Step::VariantValue]);
        assert_eq!(
            *e.kind(),
            crate::ErrorKind::Variant(V::UnknownPrimitive(21))
        );
    }

    #[test]
    fn objects_and_arrays() {
        let m = metadata(&["a", "b"]);
        // {"b": 1, "a": [true, "x"]}: field ids 1, 0; offsets into the values.
        let array = [0x03, 2, 0, 1, 3, 0x04, (1 << 2) | 1, b'x'];
        let mut object = vec![0x02, 2, 1, 0, 0, 2];
        object.push((2 + array.len()) as u8);
        object.extend_from_slice(&[3 << 2, 1]);
        object.extend_from_slice(&array);
        assert_eq!(json(&m, &object).unwrap(), r#"{"b":1,"a":[true,"x"]}"#);
        // A key id outside the dictionary, an object claiming more fields than bytes.
        let bad = [0x02, 1, 7, 0, 1, 0x00];
        assert!(json(&m, &bad).unwrap_err().contains("key 7"));
        assert!(json(&m, &[0x02, 200]).unwrap_err().contains("200 fields"));
        // Metadata of another version, or cut short.
        assert!(json(&[0x02, 0, 0], &[0]).unwrap_err().contains("version 2"));
        assert!(json(&[0x01, 5], &[0]).is_err());
    }

    #[test]
    fn arbitrary_bytes_are_an_error_or_json_never_a_panic() {
        // A small generator (xorshift), so that the same cases run every time.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let m = metadata(&["a", "bc", ""]);
        let mut decoded = 0;
        for _ in 0..50_000 {
            let len = (next() % 24) as usize;
            let v: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut out = String::new();
            if to_json(&m, &v, &mut out).is_ok() {
                decoded += 1;
                assert!(!out.is_empty());
            }
            let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = to_json(&junk, &v, &mut String::new());
        }
        assert!(decoded > 1_000, "only {decoded} values decoded");
    }

    /// A shredded Variant column (`metadata`, `value`, `typed_value`) written by [`writer`].
    fn shredded_rows(fields: Vec<(&str, arrow_array::ArrayRef)>) -> Vec<Result<String, String>> {
        let (names, arrays): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
        let fields: Vec<arrow_schema::Field> = names
            .iter()
            .zip(&arrays)
            .map(|(n, a)| arrow_schema::Field::new(*n, a.data_type().clone(), true))
            .collect();
        let rows = arrays[0].len();
        let s = StructArray::new(fields.into(), arrays, None);
        assert!(is_variant(s.fields()));
        let write = writer(&s).unwrap();
        (0..rows)
            .map(|i| {
                let mut out = String::new();
                write(i, &mut out).map(|()| out).map_err(|e| e.to_string())
            })
            .collect()
    }

    fn binaries(values: &[Option<&[u8]>]) -> arrow_array::ArrayRef {
        std::sync::Arc::new(arrow_array::BinaryArray::from(values.to_vec()))
    }

    #[test]
    fn shredded_primitives_read_as_their_unshredded_form() {
        use arrow_array::{Float32Array, Int64Array};
        let m = metadata(&[]);
        let rows = shredded_rows(vec![
            ("metadata", binaries(&[Some(m.as_slice()); 5])),
            // 34, null, "n/a", 100, missing (a Variant null): the spec's own example, and
            // a float32 as its own shortest text.
            (
                "value",
                binaries(&[
                    None,
                    Some(&[0x00]),
                    Some(&[0x0d, b'n', b'/', b'a']),
                    None,
                    None,
                ]),
            ),
            (
                "typed_value",
                std::sync::Arc::new(Int64Array::from(vec![
                    Some(34),
                    None,
                    None,
                    Some(100),
                    None,
                ])),
            ),
        ]);
        let ok: Vec<&str> = rows.iter().map(|r| r.as_deref().unwrap()).collect();
        assert_eq!(ok, ["34", "null", "\"n/a\"", "100", "null"]);
        // A typed value beside a value is only an object's (partial shredding).
        let rows = shredded_rows(vec![
            ("metadata", binaries(&[Some(m.as_slice())])),
            ("value", binaries(&[Some(&[0x00])])),
            (
                "typed_value",
                std::sync::Arc::new(Float32Array::from(vec![0.1f32])),
            ),
        ]);
        assert!(rows[0].as_ref().unwrap_err().contains("both"), "{rows:?}");
        let rows = shredded_rows(vec![
            ("metadata", binaries(&[Some(m.as_slice())])),
            (
                "typed_value",
                std::sync::Arc::new(Float32Array::from(vec![0.1f32])),
            ),
        ]);
        assert_eq!(rows[0].as_deref().unwrap(), "0.1");
    }

    #[test]
    fn shredded_objects_and_arrays_are_put_back_together() {
        use arrow_array::{ArrayRef, Int32Array, ListArray, StringArray};
        use arrow_buffer::OffsetBuffer;
        use std::sync::Arc;
        let level = |value: ArrayRef, typed: ArrayRef| -> ArrayRef {
            Arc::new(StructArray::new(
                vec![
                    arrow_schema::Field::new("value", value.data_type().clone(), true),
                    arrow_schema::Field::new("typed_value", typed.data_type().clone(), true),
                ]
                .into(),
                vec![value, typed],
                None,
            ))
        };
        // Keys: a, b, c (sorted); shredded a (int32) and c (string); b only in the value.
        let m = metadata(&["a", "b", "c"]);
        // {"b": true} as a Variant object: 1 field, id 1, offsets 0, 1.
        let rest: &[u8] = &[0x02, 1, 1, 0, 1, 0x04];
        let a = level(
            binaries(&[None, Some(&[0x00]), None, None]),
            Arc::new(Int32Array::from(vec![Some(7), None, None, None])),
        );
        let c = level(
            binaries(&[None, None, None, None]),
            Arc::new(StringArray::from(vec![Some("x"), Some("y"), None, None])),
        );
        let object: ArrayRef = Arc::new(StructArray::new(
            vec![
                arrow_schema::Field::new("a", a.data_type().clone(), false),
                arrow_schema::Field::new("c", c.data_type().clone(), false),
            ]
            .into(),
            vec![a, c],
            Some(vec![true, true, true, false].into()),
        ));
        let rows = shredded_rows(vec![
            ("metadata", binaries(&[Some(m.as_slice()); 4])),
            // Row 4 is not an object: its value is a string.
            (
                "value",
                binaries(&[Some(rest), None, None, Some(&[0x05, b'h'])]),
            ),
            ("typed_value", object.clone()),
        ]);
        let ok: Vec<&str> = rows.iter().map(|r| r.as_deref().unwrap()).collect();
        assert_eq!(
            ok,
            [
                "{\"a\":7,\"b\":true,\"c\":\"x\"}",
                "{\"a\":null,\"c\":\"y\"}",
                "{}",
                "\"h\""
            ]
        );
        // A field both shredded and in the value (the spec calls it invalid): refused, in
        // any row, whether the shredded one is there or missing.
        let both: &[u8] = &[0x02, 1, 0, 0, 1, 0x04];
        let rows = shredded_rows(vec![
            ("metadata", binaries(&[Some(m.as_slice()); 4])),
            ("value", binaries(&[Some(both), None, Some(both), None])),
            ("typed_value", object),
        ]);
        for row in [0, 2] {
            let e = rows[row].as_ref().unwrap_err();
            assert!(e.contains("field \"a\" is both shredded"), "{e}");
        }
        // An array of shredded elements: ["p", null], then one whose element is missing (a
        // Variant null, as the spec says).
        let elements = level(
            binaries(&[None, Some(&[0x00]), None]),
            Arc::new(StringArray::from(vec![Some("p"), None, None])),
        );
        let list: ArrayRef = Arc::new(ListArray::new(
            Arc::new(arrow_schema::Field::new(
                "element",
                elements.data_type().clone(),
                false,
            )),
            OffsetBuffer::new(vec![0, 2, 3].into()),
            elements,
            None,
        ));
        let rows = shredded_rows(vec![
            ("metadata", binaries(&[Some(m.as_slice()); 2])),
            ("typed_value", list),
        ]);
        assert_eq!(rows[0].as_deref().unwrap(), "[\"p\",null]");
        assert_eq!(rows[1].as_deref().unwrap(), "[null]");
    }
}
