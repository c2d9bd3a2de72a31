//! Nested Arrow values (Structs, Maps, Lists, from any writer) as JSON text, for `json`,
//! `jsonb` and `text` columns: a Struct is an object of its fields, a Map an object (text
//! keys) or a list of `{"key", "value"}` objects, a List an array. Numbers keep every digit
//! (integers and decimals exactly, floats in their shortest form that reads back the same);
//! dates and times are ISO 8601 strings, binary is PostgreSQL's `\x` hex text. A value JSON
//! cannot hold (a float NaN or infinity) is refused, never changed.

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type,
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    IntervalDayTimeType, IntervalMonthDayNanoType, IntervalYearMonthType, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::{DataType, IntervalUnit, TimeUnit};

use crate::error::{EncodeError, Holder, JsonFault, NestedFault, Step};
use crate::read::{changed, null_at};

/// Writes value `i` as JSON text.
pub(crate) type JsonWriter<'a> = Box<dyn Fn(usize, &mut String) -> Result<(), EncodeError> + 'a>;

/// Whether values of `t` are written as JSON into `json`/`jsonb`/`text` columns: the nested
/// types (a scalar goes into a column of its own kind).
pub(crate) fn is_nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Struct(_)
            | DataType::Map(..)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
    )
}

/// Whether every value of `t`, at any depth, has a JSON form (checked when the column is
/// parsed, so that a type JSON cannot take is refused before any row).
pub(crate) fn supported(t: &DataType) -> bool {
    match t {
        DataType::Struct(fields) => fields.iter().all(|f| supported(f.data_type())),
        DataType::Map(entries, _) => supported(entries.data_type()),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f)
        | DataType::LargeListView(f) => supported(f.data_type()),
        DataType::Dictionary(_, v) => supported(v),
        DataType::RunEndEncoded(..) | DataType::Union(..) => false,
        _ => true,
    }
}

fn primitive<T: ArrowPrimitiveType>(array: &dyn Array) -> Result<&PrimitiveArray<T>, EncodeError> {
    array.as_primitive_opt::<T>().ok_or_else(|| changed(array))
}

/// A JSON string literal of `s`.
pub(crate) fn quote(s: &str, out: &mut String) {
    pgarrow_types::push_json_string(out, s);
}

pub(crate) fn date(days: i64, out: &mut String) {
    let (y, m, d) = pgarrow_types::civil_from_days(days);
    match y {
        0..=9999 => write!(out, "{y:04}-{m:02}-{d:02}"),
        _ => write!(out, "{y:+}-{m:02}-{d:02}"),
    }
    .unwrap_or(());
}

/// `HH:MM:SS[.fraction]` of nanoseconds within a day, the fraction without trailing zeros.
pub(crate) fn clock(nanos: i64, out: &mut String) {
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    fraction(frac, out);
}

fn fraction(nanos: i64, out: &mut String) {
    if nanos != 0 {
        let digits = format!("{nanos:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// An instant (`value` in `per_sec` units from 1970) as `YYYY-MM-DDTHH:MM:SS[.f]`, with `Z`
/// when the type has a time zone (the value is UTC).
pub(crate) fn timestamp(value: i64, per_sec: i64, zoned: bool, out: &mut String) {
    let nanos_per_unit = 1_000_000_000 / per_sec;
    let day_units = 86_400 * per_sec;
    let days = value.div_euclid(day_units);
    let rest = i128::from(value.rem_euclid(day_units)) * i128::from(nanos_per_unit);
    date(days, out);
    out.push('T');
    clock(rest as i64, out);
    if zoned {
        out.push('Z');
    }
}

/// A Decimal's digits with its scale applied: exact.
pub(crate) fn decimal(digits: String, scale: i8, out: &mut String) {
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(d) => ("-", d.to_owned()),
        None => ("", digits),
    };
    out.push_str(sign);
    if scale <= 0 {
        out.push_str(&digits);
        if digits != "0" {
            out.extend(std::iter::repeat_n('0', usize::from(scale.unsigned_abs())));
        }
        return;
    }
    let scale = usize::from(scale.unsigned_abs());
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    out.push_str(int);
    out.push('.');
    out.push_str(frac);
}

pub(crate) fn float(v: f64, out: &mut String) -> Result<(), EncodeError> {
    if !v.is_finite() {
        return Err(JsonFault::NotFinite(v).into());
    }
    let _ = write!(out, "{v}");
    Ok(())
}

/// The shortest text of an f32 that names the same f32 (not its f64 widening's).
pub(crate) fn float32(v: f32, out: &mut String) -> Result<(), EncodeError> {
    if !v.is_finite() {
        return Err(JsonFault::NotFinite(f64::from(v)).into());
    }
    let _ = write!(out, "{v}");
    Ok(())
}

/// `PT<seconds>S` of a duration in `per_sec` units.
fn duration(v: i64, per_sec: i64, out: &mut String) {
    let sign = if v < 0 { "-" } else { "" };
    let v = i128::from(v).unsigned_abs();
    let per = per_sec.unsigned_abs() as u128;
    let _ = write!(out, "\"{sign}PT{}", v / per);
    fraction(((v % per) * (1_000_000_000 / per)) as i64, out);
    out.push_str("S\"");
}

macro_rules! display {
    ($array:expr, $t:ty) => {{
        let a = primitive::<$t>($array)?;
        Box::new(move |i, out: &mut String| {
            let _ = write!(out, "{}", a.value(i));
            Ok(())
        })
    }};
}

/// The JSON writer of `array`'s values (which are not NULL where it is called; NULLs inside
/// are `null`).
pub(crate) fn writer(array: &dyn Array) -> Result<JsonWriter<'_>, EncodeError> {
    Ok(match array.data_type() {
        DataType::Null => Box::new(|_, out| {
            out.push_str("null");
            Ok(())
        }),
        DataType::Boolean => {
            let a = array.as_boolean_opt().ok_or_else(|| changed(array))?;
            Box::new(move |i, out| {
                out.push_str(if a.value(i) { "true" } else { "false" });
                Ok(())
            })
        }
        DataType::Int8 => display!(array, Int8Type),
        DataType::Int16 => display!(array, Int16Type),
        DataType::Int32 => display!(array, Int32Type),
        DataType::Int64 => display!(array, Int64Type),
        DataType::UInt8 => display!(array, UInt8Type),
        DataType::UInt16 => display!(array, UInt16Type),
        DataType::UInt32 => display!(array, UInt32Type),
        DataType::UInt64 => display!(array, UInt64Type),
        DataType::Float16 => {
            let a = primitive::<Float16Type>(array)?;
            Box::new(move |i, out| float(f64::from(a.value(i).to_f32()), out))
        }
        DataType::Float32 => {
            // The shortest f32 text, which names the same f32 (not its f64 widening).
            let a = primitive::<Float32Type>(array)?;
            Box::new(move |i, out| float32(a.value(i), out))
        }
        DataType::Float64 => {
            let a = primitive::<Float64Type>(array)?;
            Box::new(move |i, out| float(a.value(i), out))
        }
        DataType::Decimal32(_, s) => {
            let (a, s) = (primitive::<Decimal32Type>(array)?, *s);
            Box::new(move |i, out| {
                decimal(a.value(i).to_string(), s, out);
                Ok(())
            })
        }
        DataType::Decimal64(_, s) => {
            let (a, s) = (primitive::<Decimal64Type>(array)?, *s);
            Box::new(move |i, out| {
                decimal(a.value(i).to_string(), s, out);
                Ok(())
            })
        }
        DataType::Decimal128(_, s) => {
            let (a, s) = (primitive::<Decimal128Type>(array)?, *s);
            Box::new(move |i, out| {
                decimal(a.value(i).to_string(), s, out);
                Ok(())
            })
        }
        DataType::Decimal256(_, s) => {
            let (a, s) = (primitive::<Decimal256Type>(array)?, *s);
            Box::new(move |i, out| {
                decimal(a.value(i).to_string(), s, out);
                Ok(())
            })
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let get = crate::read::Strs::of(array.data_type())
                .ok_or_else(|| changed(array))?
                .getter(array)?;
            Box::new(move |i, out| {
                quote(get(i), out);
                Ok(())
            })
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let get = crate::read::Binaries::of(array.data_type())
                .ok_or_else(|| changed(array))?
                .getter(array)?;
            Box::new(move |i, out| {
                out.push_str("\"\\\\x");
                for b in get(i) {
                    let _ = write!(out, "{b:02x}");
                }
                out.push('"');
                Ok(())
            })
        }
        DataType::Date32 => {
            let a = primitive::<Date32Type>(array)?;
            Box::new(move |i, out| {
                out.push('"');
                date(i64::from(a.value(i)), out);
                out.push('"');
                Ok(())
            })
        }
        DataType::Date64 => {
            let a = primitive::<Date64Type>(array)?;
            Box::new(move |i, out| {
                out.push('"');
                match a.value(i) % 86_400_000 {
                    0 => date(a.value(i) / 86_400_000, out),
                    _ => timestamp(a.value(i), 1_000, false, out),
                }
                out.push('"');
                Ok(())
            })
        }
        DataType::Timestamp(unit, zone) => {
            let zoned = zone.is_some();
            let (get, per_sec): (Box<dyn Fn(usize) -> i64 + '_>, i64) = match unit {
                TimeUnit::Second => {
                    let a = primitive::<TimestampSecondType>(array)?;
                    (Box::new(move |i| a.value(i)), 1)
                }
                TimeUnit::Millisecond => {
                    let a = primitive::<TimestampMillisecondType>(array)?;
                    (Box::new(move |i| a.value(i)), 1_000)
                }
                TimeUnit::Microsecond => {
                    let a = primitive::<TimestampMicrosecondType>(array)?;
                    (Box::new(move |i| a.value(i)), 1_000_000)
                }
                TimeUnit::Nanosecond => {
                    let a = primitive::<TimestampNanosecondType>(array)?;
                    (Box::new(move |i| a.value(i)), 1_000_000_000)
                }
            };
            Box::new(move |i, out| {
                out.push('"');
                timestamp(get(i), per_sec, zoned, out);
                out.push('"');
                Ok(())
            })
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            let nanos: Box<dyn Fn(usize) -> i64 + '_> = match array.data_type() {
                DataType::Time32(TimeUnit::Second) => {
                    let a = primitive::<Time32SecondType>(array)?;
                    Box::new(move |i| i64::from(a.value(i)) * 1_000_000_000)
                }
                DataType::Time32(_) => {
                    let a = primitive::<Time32MillisecondType>(array)?;
                    Box::new(move |i| i64::from(a.value(i)) * 1_000_000)
                }
                DataType::Time64(TimeUnit::Microsecond) => {
                    let a = primitive::<Time64MicrosecondType>(array)?;
                    Box::new(move |i| a.value(i) * 1_000)
                }
                _ => {
                    let a = primitive::<Time64NanosecondType>(array)?;
                    Box::new(move |i| a.value(i))
                }
            };
            Box::new(move |i, out| {
                let n = nanos(i);
                if !(0..=86_400_000_000_000).contains(&n) {
                    return Err(JsonFault::TimeOfDay(n).into());
                }
                out.push('"');
                clock(n, out);
                out.push('"');
                Ok(())
            })
        }
        DataType::Duration(unit) => {
            let (get, per_sec): (Box<dyn Fn(usize) -> i64 + '_>, i64) = match unit {
                TimeUnit::Second => {
                    let a = primitive::<DurationSecondType>(array)?;
                    (Box::new(move |i| a.value(i)), 1)
                }
                TimeUnit::Millisecond => {
                    let a = primitive::<DurationMillisecondType>(array)?;
                    (Box::new(move |i| a.value(i)), 1_000)
                }
                TimeUnit::Microsecond => {
                    let a = primitive::<DurationMicrosecondType>(array)?;
                    (Box::new(move |i| a.value(i)), 1_000_000)
                }
                TimeUnit::Nanosecond => {
                    let a = primitive::<DurationNanosecondType>(array)?;
                    (Box::new(move |i| a.value(i)), 1_000_000_000)
                }
            };
            Box::new(move |i, out| {
                duration(get(i), per_sec, out);
                Ok(())
            })
        }
        DataType::Interval(unit) => {
            // Each part kept apart, as the types keep them: months, days, and the time part.
            let parts: Box<dyn Fn(usize) -> (i32, i32, i64) + '_> = match unit {
                IntervalUnit::YearMonth => {
                    let a = primitive::<IntervalYearMonthType>(array)?;
                    Box::new(move |i| (a.value(i), 0, 0))
                }
                IntervalUnit::DayTime => {
                    let a = primitive::<IntervalDayTimeType>(array)?;
                    Box::new(move |i| {
                        let v = a.value(i);
                        (0, v.days, i64::from(v.milliseconds) * 1_000_000)
                    })
                }
                IntervalUnit::MonthDayNano => {
                    let a = primitive::<IntervalMonthDayNanoType>(array)?;
                    Box::new(move |i| {
                        let v = a.value(i);
                        (v.months, v.days, v.nanoseconds)
                    })
                }
            };
            Box::new(move |i, out| {
                let (months, days, nanos) = parts(i);
                let _ = write!(
                    out,
                    "{{\"months\":{months},\"days\":{days},\"nanoseconds\":{nanos}}}"
                );
                Ok(())
            })
        }
        DataType::Dictionary(..) => {
            let d = array
                .as_any_dictionary_opt()
                .ok_or_else(|| changed(array))?;
            let keys = d.normalized_keys();
            let values = d.values().as_ref();
            let write = writer(values)?;
            Box::new(move |i, out| {
                let k = keys[i];
                if null_at(values, k) {
                    out.push_str("null");
                    return Ok(());
                }
                write(k, out)
            })
        }
        // Parquet's Variant, as readers give it: decoded, not a Struct of two binaries; a
        // shredded one (`typed_value`) put back together first.
        DataType::Struct(fields) if crate::variant::is_variant(fields) => {
            let s = array.as_struct_opt().ok_or_else(|| changed(array))?;
            crate::variant::writer(s)?
        }
        DataType::Struct(fields) => {
            let s = array.as_struct_opt().ok_or_else(|| changed(array))?;
            let names: Vec<(&str, String)> = fields
                .iter()
                .map(|f| {
                    let mut q = String::new();
                    quote(f.name(), &mut q);
                    (f.name().as_str(), q)
                })
                .collect();
            let children = s
                .columns()
                .iter()
                .map(|c| Ok((c.as_ref(), writer(c.as_ref())?)))
                .collect::<Result<Vec<_>, EncodeError>>()?;
            Box::new(move |i, out| {
                out.push('{');
                for (k, ((name, quoted), (child, write))) in names.iter().zip(&children).enumerate()
                {
                    if k > 0 {
                        out.push(',');
                    }
                    out.push_str(quoted);
                    out.push(':');
                    element(*child, write, i, out)
                        .map_err(|e| e.at(Step::Field((*name).to_owned())))?;
                }
                out.push('}');
                Ok(())
            })
        }
        DataType::Map(..) => {
            let m = array.as_map_opt().ok_or_else(|| changed(array))?;
            let (keys, values) = (m.keys().as_ref(), m.values().as_ref());
            let text_keys = matches!(
                keys.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            );
            let (write_key, write_value) = (writer(keys)?, writer(values)?);
            let offsets = m.value_offsets();
            Box::new(move |i, out| {
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                // An object keeps one value per key (jsonb the last): a repeated key would
                // lose an entry.
                if text_keys && end - start > 1 {
                    let mut seen = std::collections::HashSet::new();
                    for j in start..end {
                        if let Some(key) = text_at(keys, j)
                            && !seen.insert(key)
                        {
                            return Err(NestedFault::DuplicateKey {
                                key: key.to_owned(),
                                into: Holder::JsonObject,
                            }
                            .into());
                        }
                    }
                }
                out.push(if text_keys { '{' } else { '[' });
                for j in start..end {
                    if j > start {
                        out.push(',');
                    }
                    if text_keys {
                        write_key(j, out)?;
                        out.push(':');
                    } else {
                        out.push_str("{\"key\":");
                        element(keys, &write_key, j, out)?;
                        out.push_str(",\"value\":");
                    }
                    element(values, &write_value, j, out)?;
                    if !text_keys {
                        out.push('}');
                    }
                }
                out.push(if text_keys { '}' } else { ']' });
                Ok(())
            })
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::ListView(_)
        | DataType::LargeListView(_) => {
            // Each list's items `start..end`, and the items.
            type Ranges<'a> = (Box<dyn Fn(usize) -> (usize, usize) + 'a>, &'a dyn Array);
            let (range, items): Ranges<'_> = match array.data_type() {
                DataType::List(_) => {
                    let l = array.as_list_opt::<i32>().ok_or_else(|| changed(array))?;
                    let o = l.value_offsets();
                    (
                        Box::new(move |i| (o[i] as usize, o[i + 1] as usize)),
                        l.values().as_ref(),
                    )
                }
                DataType::LargeList(_) => {
                    let l = array.as_list_opt::<i64>().ok_or_else(|| changed(array))?;
                    let o = l.value_offsets();
                    (
                        Box::new(move |i| (o[i] as usize, o[i + 1] as usize)),
                        l.values().as_ref(),
                    )
                }
                DataType::FixedSizeList(_, n) => {
                    let l = array
                        .as_fixed_size_list_opt()
                        .ok_or_else(|| changed(array))?;
                    let n = *n as usize;
                    (Box::new(move |i| (i * n, i * n + n)), l.values().as_ref())
                }
                DataType::ListView(_) => {
                    let l = array
                        .as_list_view_opt::<i32>()
                        .ok_or_else(|| changed(array))?;
                    let (o, s) = (l.value_offsets(), l.value_sizes());
                    (
                        Box::new(move |i| (o[i] as usize, o[i] as usize + s[i] as usize)),
                        l.values().as_ref(),
                    )
                }
                _ => {
                    let l = array
                        .as_list_view_opt::<i64>()
                        .ok_or_else(|| changed(array))?;
                    let (o, s) = (l.value_offsets(), l.value_sizes());
                    (
                        Box::new(move |i| (o[i] as usize, o[i] as usize + s[i] as usize)),
                        l.values().as_ref(),
                    )
                }
            };
            let write = writer(items)?;
            Box::new(move |i, out| {
                let (start, end) = range(i);
                out.push('[');
                for j in start..end {
                    if j > start {
                        out.push(',');
                    }
                    element(items, &write, j, out)
                        .map_err(|e| e.at(Step::Element(j - start + 1)))?;
                }
                out.push(']');
                Ok(())
            })
        }
        t => return Err(JsonFault::Type(t.clone()).into()),
    })
}

/// Value `j` of `array`, `null` when it is NULL.
fn element(
    array: &dyn Array,
    write: &JsonWriter<'_>,
    j: usize,
    out: &mut String,
) -> Result<(), EncodeError> {
    if null_at(array, j) {
        out.push_str("null");
        Ok(())
    } else {
        write(j, out)
    }
}

/// Reads value `j` of a Binary, LargeBinary or BinaryView array (`None` when NULL).
pub(crate) type BinaryGetter<'a> = Box<dyn Fn(usize) -> Option<&'a [u8]> + 'a>;

pub(crate) fn binary_getter(array: &dyn Array) -> Result<BinaryGetter<'_>, EncodeError> {
    let present = move |j: usize| !array.is_null(j);
    Ok(match array.data_type() {
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            Box::new(move |j| present(j).then(|| a.value(j)))
        }
        DataType::LargeBinary => {
            let a = array.as_binary::<i64>();
            Box::new(move |j| present(j).then(|| a.value(j)))
        }
        DataType::BinaryView => {
            let a = array.as_binary_view();
            Box::new(move |j| present(j).then(|| a.value(j)))
        }
        _ => return Err(changed(array)),
    })
}

/// The text at `j` of a Utf8, LargeUtf8 or Utf8View array (`None` when NULL or not text).
fn text_at(array: &dyn Array, j: usize) -> Option<&str> {
    if array.is_null(j) {
        return None;
    }
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(j)),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(j)),
        DataType::Utf8View => Some(array.as_string_view().value(j)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{Int64Builder, MapBuilder, StringBuilder};
    use arrow_array::{
        ArrayRef, BinaryArray, Date32Array, Decimal128Array, Float64Array, Int32Array, ListArray,
        StructArray, TimestampMicrosecondArray,
    };
    use arrow_schema::Field;

    use super::*;

    fn json(array: &dyn Array) -> Vec<String> {
        let write = writer(array).unwrap();
        (0..array.len())
            .map(|i| {
                let mut s = String::new();
                element(array, &write, i, &mut s).unwrap();
                s
            })
            .collect()
    }

    #[test]
    fn nested_values_as_json() {
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None]));
        let dec: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(-12_345_678_901_234_567_890_123i128), Some(5)])
                .with_precision_and_scale(38, 3)
                .unwrap(),
        );
        let s = StructArray::from(vec![
            (Arc::new(Field::new("a\"", DataType::Int32, true)), ints),
            (
                Arc::new(Field::new("d", dec.data_type().clone(), true)),
                dec,
            ),
        ]);
        assert_eq!(
            json(&s),
            [
                r#"{"a\"":1,"d":-12345678901234567890.123}"#,
                r#"{"a\"":null,"d":0.005}"#
            ]
        );
        let mut m = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
        m.keys().append_value("k");
        m.values().append_value(i64::MAX);
        m.append(true).unwrap();
        m.append(true).unwrap();
        assert_eq!(json(&m.finish()), [r#"{"k":9223372036854775807}"#, "{}"]);
        // A repeated key is refused: an object keeps one value per key.
        let mut m = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
        for v in [1, 2] {
            m.keys().append_value("k");
            m.values().append_value(v);
        }
        m.append(true).unwrap();
        let dup = m.finish();
        let e = writer(&dup).unwrap()(0, &mut String::new()).unwrap_err();
        assert_eq!(
            *e.kind(),
            crate::ErrorKind::Nested(NestedFault::DuplicateKey {
                key: "k".into(),
                into: Holder::JsonObject
            })
        );
        assert!(e.to_string().contains("the key \"k\" twice"), "{e}");
        let list =
            ListArray::from_iter_primitive::<Int32Type, _, _>([Some(vec![Some(1), None]), None]);
        assert_eq!(json(&list), ["[1,null]", "null"]);
        assert_eq!(
            json(&Float64Array::from(vec![0.1, 1e300])),
            ["0.1", &format!("{}", 1e300)]
        );
        let e = writer(&Float64Array::from(vec![f64::INFINITY])).unwrap()(0, &mut String::new())
            .unwrap_err();
        assert_eq!(
            *e.kind(),
            crate::ErrorKind::Json(JsonFault::NotFinite(f64::INFINITY))
        );
        assert_eq!(e.to_string(), "inf has no JSON form");
        assert_eq!(
            json(&BinaryArray::from(vec![&b"\x00\xff"[..]])),
            [r#""\\x00ff""#]
        );
        assert_eq!(
            json(&Date32Array::from(vec![0, -719_528, 2_932_897])),
            [r#""1970-01-01""#, r#""0000-01-01""#, r#""+10000-01-01""#]
        );
        let ts = TimestampMicrosecondArray::from(vec![1, -1]).with_timezone("+02:00");
        assert_eq!(
            json(&ts),
            [
                r#""1970-01-01T00:00:00.000001Z""#,
                r#""1969-12-31T23:59:59.999999Z""#
            ]
        );
    }
}
