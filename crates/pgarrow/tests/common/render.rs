//! Values both ways for the comparisons: our Arrow values rendered as the server renders them
//! (text, JSON, leaves of nested values), the SQL that makes the server render a value in a
//! comparable form, and the small conversions between the two (hex, floats' bit patterns).
#![allow(dead_code)]

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, IntervalMonthDayNanoType, Time64MicrosecondType, TimestampMicrosecondType,
    UInt32Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Field, TimeUnit};
use pgarrow::{DecodeOptions, ExportOptions};

use super::Exported;

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(s, "{b:02x}").expect("writing to a String");
    }
    s
}

pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// `digits` (an integer's decimal text, maybe with a leading '-') divided by 10^scale, rendered
/// like PostgreSQL's `numeric_out` renders a value with exactly `scale` fractional digits.
pub fn scaled_decimal(digits: &str, scale: i8) -> String {
    let (neg, abs) = match digits.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, digits),
    };
    let sign = if neg { "-" } else { "" };
    if scale <= 0 {
        let zeros = "0".repeat(usize::from(scale.unsigned_abs()));
        if abs == "0" {
            return "0".to_owned();
        }
        return format!("{sign}{abs}{zeros}");
    }
    let scale = scale as usize;
    let padded = format!("{abs:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Canonical text of a float32 for comparisons: its bit pattern, or `NaN`.
pub fn f32_key(v: f32) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else {
        format!("f32:{:08x}", v.to_bits())
    }
}

/// Canonical text of a float64 for comparisons: its bit pattern, or `NaN`.
pub fn f64_key(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else {
        format!("f64:{:016x}", v.to_bits())
    }
}

/// Parses float text as PostgreSQL's `float8out` prints it.
pub fn parse_pg_f64(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        _ => s
            .parse()
            .unwrap_or_else(|e| panic!("server float {s:?}: {e}")),
    }
}

/// Parses float text as PostgreSQL's `float4out` prints it.
pub fn parse_pg_f32(s: &str) -> f32 {
    match s {
        "NaN" => f32::NAN,
        "Infinity" => f32::INFINITY,
        "-Infinity" => f32::NEG_INFINITY,
        _ => s
            .parse()
            .unwrap_or_else(|e| panic!("server float {s:?}: {e}")),
    }
}

/// `8-4-4-4-12` lowercase text of a UUID's 16 bytes.
pub fn uuid_text(b: &[u8]) -> String {
    assert_eq!(b.len(), 16);
    let h = hex(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// One value in a canonical text form that a server expression can also produce:
/// - integers: decimal (`v::text`);
/// - floats: [`f32_key`] / [`f64_key`] (the reference side parses `v::text`);
/// - decimals: `numeric_out` text with exactly `scale` fractional digits (`v::text`);
/// - Utf8: the string itself; Binary: lowercase hex (`encode(v, 'hex')`);
/// - FixedSizeBinary(16): UUID text (`v::text`); Boolean: `true`/`false` (`v::text`);
/// - Date32: days since 1970-01-01 (`v - DATE '1970-01-01'`);
/// - Time64(us), Timestamp(us): microseconds since midnight / since the Unix epoch;
/// - Interval(MonthDayNano): `months|days|microseconds` (nanoseconds must be whole us).
pub fn render(a: &dyn Array, i: usize) -> String {
    match a.data_type() {
        DataType::Boolean => a.as_boolean().value(i).to_string(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i).to_string(),
        DataType::Float32 => f32_key(a.as_primitive::<Float32Type>().value(i)),
        DataType::Float64 => f64_key(a.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal128(_, s) => {
            scaled_decimal(&a.as_primitive::<Decimal128Type>().value(i).to_string(), *s)
        }
        DataType::Decimal256(_, s) => {
            scaled_decimal(&a.as_primitive::<Decimal256Type>().value(i).to_string(), *s)
        }
        DataType::Utf8 => a.as_string::<i32>().value(i).to_owned(),
        DataType::Binary => hex(a.as_binary::<i32>().value(i)),
        DataType::FixedSizeBinary(16) => uuid_text(a.as_fixed_size_binary().value(i)),
        DataType::Date32 => a.as_primitive::<Date32Type>().value(i).to_string(),
        DataType::Time64(TimeUnit::Microsecond) => a
            .as_primitive::<Time64MicrosecondType>()
            .value(i)
            .to_string(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => a
            .as_primitive::<TimestampMicrosecondType>()
            .value(i)
            .to_string(),
        DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano) => {
            let v = a.as_primitive::<IntervalMonthDayNanoType>().value(i);
            assert_eq!(
                v.nanoseconds % 1000,
                0,
                "interval nanoseconds {} are not whole microseconds",
                v.nanoseconds
            );
            format!("{}|{}|{}", v.months, v.days, v.nanoseconds / 1000)
        }
        other => panic!("no canonical rendering for {other}"),
    }
}

/// Server expression: microseconds since the Unix epoch of the `timestamp` expression `v`,
/// exact over the whole range (`extract(epoch ...)` rounds near the top of the range).
pub fn ts_micros_sql(v: &str) -> String {
    format!(
        "(({v})::date - DATE '1970-01-01')::int8 * 86400000000 \
         + (extract(epoch FROM ({v})::time) * 1000000)::int8"
    )
}

/// Server expression: `months|days|microseconds` of the interval expression `v`.
pub fn interval_parts_sql(v: &str) -> String {
    format!(
        "CASE WHEN {v} IS NULL THEN NULL ELSE \
         concat_ws('|', extract(year FROM {v}) * 12 + extract(month FROM {v}), \
         extract(day FROM {v}), \
         extract(hour FROM {v}) * 3600000000 + extract(minute FROM {v}) * 60000000 \
         + extract(microseconds FROM {v})) END"
    )
}

/// Options that cut batches every `rows` rows.
pub fn batch_rows(rows: usize) -> ExportOptions {
    ExportOptions::default().with_decode(
        DecodeOptions::default()
            .with_batch_rows(rows)
            .with_batch_bytes(pgarrow::DEFAULT_BATCH_BYTES),
    )
}

/// JSON text of a string, escaped like PostgreSQL's `escape_json`.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                write!(out, "\\u{:04x}", u32::from(c)).expect("writing to a String");
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Nested values as compact JSON, the way `array_to_json` / `row_to_json` print them: lists as
/// arrays, structs as objects with their field names, strings and enum labels quoted, integers
/// and booleans bare, NULL as `null`.
pub fn render_json(a: &dyn Array, i: usize) -> String {
    if a.is_null(i) {
        return "null".to_owned();
    }
    match a.data_type() {
        DataType::List(_) => {
            let items = a.as_list::<i32>().value(i);
            let parts: Vec<String> = (0..items.len())
                .map(|j| render_json(items.as_ref(), j))
                .collect();
            format!("[{}]", parts.join(","))
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let parts: Vec<String> = fields
                .iter()
                .zip(s.columns())
                .map(|(f, c)| format!("{}:{}", json_string(f.name()), render_json(c.as_ref(), i)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        DataType::Dictionary(_, _) => {
            let d = a.as_dictionary::<Int16Type>();
            let key = usize::try_from(d.keys().value(i)).expect("non-negative key");
            render_json(d.values().as_ref(), key)
        }
        DataType::Utf8 => json_string(a.as_string::<i32>().value(i)),
        DataType::Boolean
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Decimal128(..) => render(a, i),
        other => panic!("no JSON rendering for {other}"),
    }
}

/// SQL for `expr` as its type's output function prints it, as psql shows it (NULL stays NULL;
/// the test is on the text, as a composite of NULLs `IS NULL`):
/// `format('%s')` calls the output function, which a cast to text does not always do
/// (`'1.2.3.4'::inet::text` is `1.2.3.4/32`, its output `1.2.3.4`).
pub fn output_of(expr: &str) -> String {
    format!("CASE WHEN ({expr})::text IS NOT NULL THEN format('%s', {expr}) END")
}

/// Renders a scalar Arrow value the way the server queries of `nested.rs` render it: bool as
/// t/f, floats as Rust prints them (compare floats with [`f64_bits`]), decimals with their
/// scale, enum dictionary values as their label, and everything else as [`render`] does
/// (integers and text as themselves, binary as lower-case hex, Date32 as days since 1970,
/// Time64/Timestamp as their microseconds).
pub fn leaf(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Boolean => if a.as_boolean().value(i) { "t" } else { "f" }.to_owned(),
        DataType::Float32 => a.as_primitive::<Float32Type>().value(i).to_string(),
        DataType::Float64 => a.as_primitive::<Float64Type>().value(i).to_string(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i).to_owned(),
        DataType::Utf8View => a.as_string_view().value(i).to_owned(),
        DataType::Decimal128(..) => a.as_primitive::<Decimal128Type>().value_as_string(i),
        DataType::Decimal256(..) => a.as_primitive::<Decimal256Type>().value_as_string(i),
        DataType::Dictionary(k, v) if **k == DataType::Int16 && **v == DataType::Utf8 => {
            let d = a.as_dictionary::<Int16Type>();
            let key = usize::try_from(d.keys().value(i)).expect("non-negative dictionary key");
            d.values().as_string::<i32>().value(key).to_owned()
        }
        _ => render(a, i),
    })
}

/// The bits of a float the server printed (`NaN`, `Infinity`, shortest round-trip digits).
pub fn f64_bits(s: &str) -> u64 {
    parse_pg_f64(s).to_bits()
}

/// The element array of a List value at `i`, `None` when the list is NULL.
pub fn list_at(a: &dyn Array, i: usize) -> Option<ArrayRef> {
    let l = a.as_list::<i32>();
    (!l.is_null(i)).then(|| l.value(i))
}

/// Every leaf of a `depth`-deep List value at `i`, with its 0-based path, in order. Inner lists
/// are never NULL (a PostgreSQL array is rectangular).
pub fn list_leaves(a: &dyn Array, i: usize, depth: usize) -> Vec<(Vec<i64>, Option<String>)> {
    fn walk(
        a: &dyn Array,
        i: usize,
        depth: usize,
        path: &mut Vec<i64>,
        out: &mut Vec<(Vec<i64>, Option<String>)>,
    ) {
        if depth == 0 {
            out.push((path.clone(), leaf(a, i)));
            return;
        }
        let l = a.as_list::<i32>();
        assert!(!l.is_null(i), "inner list at {path:?} is NULL");
        let v = l.value(i);
        for k in 0..v.len() {
            path.push(k as i64);
            walk(&v, k, depth - 1, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    if !a.is_null(i) {
        walk(a, i, depth, &mut Vec::new(), &mut out);
    }
    out
}

/// A child of a Struct array by name.
pub fn child<'a>(a: &'a dyn Array, name: &str) -> &'a ArrayRef {
    a.as_struct()
        .column_by_name(name)
        .unwrap_or_else(|| panic!("struct has no field {name}: {:?}", a.data_type()))
}

/// The names of a Struct type's fields.
pub fn struct_names(t: &DataType) -> Vec<String> {
    match t {
        DataType::Struct(f) => f.iter().map(|f| f.name().clone()).collect(),
        other => panic!("expected a Struct, got {other}"),
    }
}

/// `List(item)` with a nullable `item` field, as pgarrow builds lists.
pub fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, true)))
}

/// The element type of a List.
pub fn item_type(t: &DataType) -> &DataType {
    match t {
        DataType::List(f) => f.data_type(),
        other => panic!("expected a List, got {other}"),
    }
}

/// Parses `(id, path..., value)` server rows into `(id, path, value)`.
pub fn server_leaves(
    rows: Vec<(i32, Vec<Option<String>>)>,
) -> Vec<(i32, Vec<i64>, Option<String>)> {
    let mut out: Vec<(i32, Vec<i64>, Option<String>)> = rows
        .into_iter()
        .map(|(id, mut r)| {
            let value = r.pop().expect("a value column");
            let path = r
                .into_iter()
                .map(|p| p.expect("subscript").parse().expect("integer subscript"))
                .collect();
            (id, path, value)
        })
        .collect();
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

/// Our leaves of a `depth`-deep list column as `(id, path, value)`, sorted like
/// [`server_leaves`].
pub fn our_leaves(
    out: &Exported,
    column: &str,
    depth: usize,
) -> Vec<(i32, Vec<i64>, Option<String>)> {
    let mut v: Vec<(i32, Vec<i64>, Option<String>)> = out
        .rows(column)
        .into_iter()
        .flat_map(|(id, a)| {
            list_leaves(&a, 0, depth)
                .into_iter()
                .map(move |(p, v)| (id, p, v))
        })
        .collect();
    v.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    v
}

/// A server boolean.
pub fn pg_bool(v: &Option<String>) -> bool {
    match v.as_deref() {
        Some("t") => true,
        Some("f") => false,
        other => panic!("not a boolean: {other:?}"),
    }
}
