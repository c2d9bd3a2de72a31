//! Parquet's Variant (unshredded), as JSON text: readers give a Variant column as a Struct of
//! two binary fields, `metadata` (the dictionary of object keys) and `value` (the encoded
//! value), which this decodes per the Parquet Variant encoding: primitives, short strings,
//! objects and arrays. Numbers keep every digit (decimals exactly, floats in their shortest
//! exact form; NaN and infinity, which JSON lacks, are refused), dates and times are ISO
//! 8601 strings, binary is `\x` hex text, a UUID its usual text.

use std::fmt::Write as _;

use super::json::{clock, date, decimal, float, quote, timestamp};

/// Nesting allowed in one value (each level costs at least one byte of the value).
const MAX_DEPTH: usize = 256;

/// Whether a Struct's fields are a Variant's: `metadata` and `value`, both binary (a
/// shredded Variant's `typed_value` is reported by [`shredded`]).
pub(crate) fn is_variant(fields: &arrow_schema::Fields) -> bool {
    let binary = |t: &arrow_schema::DataType| {
        matches!(
            t,
            arrow_schema::DataType::Binary
                | arrow_schema::DataType::LargeBinary
                | arrow_schema::DataType::BinaryView
        )
    };
    fields.len() >= 2
        && fields
            .iter()
            .any(|f| f.name() == "metadata" && binary(f.data_type()))
        && fields
            .iter()
            .any(|f| f.name() == "value" && binary(f.data_type()))
        && fields
            .iter()
            .all(|f| matches!(f.name().as_str(), "metadata" | "value" | "typed_value"))
}

/// Whether the Variant's values are shredded (a `typed_value` field), which is not decoded.
pub(crate) fn shredded(fields: &arrow_schema::Fields) -> bool {
    fields.iter().any(|f| f.name() == "typed_value")
}

/// The dictionary of a Variant's metadata: its key strings.
struct Metadata<'a> {
    bytes: &'a [u8],
    offsets: Vec<usize>,
}

impl<'a> Metadata<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Metadata<'a>, String> {
        let header = *bytes.first().ok_or("empty metadata")?;
        if header & 0x0f != 1 {
            return Err(format!(
                "metadata of version {} (1 is known)",
                header & 0x0f
            ));
        }
        let size = usize::from(header >> 6) + 1;
        let mut at = 1;
        let count = read_uint(bytes, &mut at, size)?;
        if count > bytes.len() {
            return Err(format!(
                "a dictionary of {count} keys in {} bytes",
                bytes.len()
            ));
        }
        let offsets = (0..=count)
            .map(|_| read_uint(bytes, &mut at, size))
            .collect::<Result<Vec<_>, _>>()?;
        let strings = &bytes[at..];
        if offsets.windows(2).any(|w| w[0] > w[1]) || offsets.last() > Some(&strings.len()) {
            return Err("dictionary offsets out of order or past its end".to_owned());
        }
        Ok(Metadata {
            bytes: strings,
            offsets,
        })
    }

    fn key(&self, id: usize) -> Result<&'a str, String> {
        let (start, end) = match (self.offsets.get(id), self.offsets.get(id + 1)) {
            (Some(&s), Some(&e)) => (s, e),
            _ => return Err(format!("key {id} is not in the dictionary")),
        };
        std::str::from_utf8(&self.bytes[start..end]).map_err(|_| format!("key {id} is not UTF-8"))
    }
}

/// A little-endian unsigned integer of `size` bytes at `*at`.
fn read_uint(bytes: &[u8], at: &mut usize, size: usize) -> Result<usize, String> {
    let end = at.checked_add(size).filter(|&e| e <= bytes.len());
    let Some(end) = end else {
        return Err("it ends inside an integer".to_owned());
    };
    let mut v = 0usize;
    for (k, b) in bytes[*at..end].iter().enumerate() {
        v |= usize::from(*b) << (8 * k);
    }
    *at = end;
    Ok(v)
}

fn take(bytes: &[u8], at: usize, n: usize) -> Result<&[u8], String> {
    at.checked_add(n)
        .and_then(|end| bytes.get(at..end))
        .ok_or_else(|| "it ends inside a value".to_owned())
}

fn le<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], String> {
    Ok(take(bytes, at, N)?.try_into().unwrap_or([0; N]))
}

/// Writes the Variant (`metadata`, `value`) as JSON.
pub(crate) fn to_json(metadata: &[u8], value: &[u8], out: &mut String) -> Result<(), String> {
    let metadata = Metadata::parse(metadata).map_err(|e| format!("Variant metadata: {e}"))?;
    write_value(&metadata, value, 0, out).map_err(|e| format!("Variant value: {e}"))
}

fn write_value(m: &Metadata<'_>, v: &[u8], depth: usize, out: &mut String) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH}"));
    }
    let header = *v.first().ok_or("an empty value")?;
    let (basic, high) = (header & 0x03, usize::from(header >> 2));
    match basic {
        0 => primitive(high, v, out),
        1 => {
            let s = take(v, 1, high)?;
            quote(
                std::str::from_utf8(s).map_err(|_| "a string that is not UTF-8")?,
                out,
            );
            Ok(())
        }
        2 => {
            let offset_size = (high & 0x03) + 1;
            let id_size = ((high >> 2) & 0x03) + 1;
            let large = high & 0x10 != 0;
            let mut at = 1;
            let n = read_uint(v, &mut at, if large { 4 } else { 1 })?;
            if n > v.len() {
                return Err(format!("an object of {n} fields in {} bytes", v.len()));
            }
            let ids = (0..n)
                .map(|_| read_uint(v, &mut at, id_size))
                .collect::<Result<Vec<_>, _>>()?;
            let offsets = (0..=n)
                .map(|_| read_uint(v, &mut at, offset_size))
                .collect::<Result<Vec<_>, _>>()?;
            let values = &v[at..];
            out.push('{');
            for (k, id) in ids.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                quote(m.key(*id)?, out);
                out.push(':');
                let start = offsets[k];
                let field = values
                    .get(start..)
                    .ok_or_else(|| format!("field {k} starts past the object's end"))?;
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
                return Err(format!("an array of {n} elements in {} bytes", v.len()));
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
                let element = values
                    .get(*start..)
                    .ok_or_else(|| format!("element {k} starts past the array's end"))?;
                write_value(m, element, depth + 1, out)?;
            }
            out.push(']');
            Ok(())
        }
    }
}

/// A primitive of type `id` whose header is `v[0]`.
fn primitive(id: usize, v: &[u8], out: &mut String) -> Result<(), String> {
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
            let scale = *v.get(1).ok_or("it ends inside a decimal")?;
            let digits = match id {
                8 => i32::from_le_bytes(le(v, 2)?).to_string(),
                9 => i64::from_le_bytes(le(v, 2)?).to_string(),
                _ => i128::from_le_bytes(le(v, 2)?).to_string(),
            };
            let scale = i8::try_from(scale)
                .ok()
                .filter(|s| *s <= 38)
                .ok_or_else(|| format!("a decimal of scale {scale}"))?;
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
        14 => float(f64::from(f32::from_le_bytes(le(v, 1)?)), out)?,
        15 | 16 => {
            let n = u32::from_le_bytes(le(v, 1)?) as usize;
            let bytes = take(v, 5, n)?;
            if id == 16 {
                quote(
                    std::str::from_utf8(bytes).map_err(|_| "a string that is not UTF-8")?,
                    out,
                );
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
                return Err(format!("a time of {micros} microseconds"));
            }
            out.push('"');
            clock(micros * 1_000, out);
            out.push('"');
        }
        20 => {
            let b = take(v, 1, 16)?;
            out.push('"');
            for (k, byte) in b.iter().enumerate() {
                if matches!(k, 4 | 6 | 8 | 10) {
                    out.push('-');
                }
                let _ = write!(out, "{byte:02x}");
            }
            out.push('"');
        }
        other => return Err(format!("a primitive of unknown type {other}")),
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
        to_json(m, v, &mut out).map(|()| out)
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
}
