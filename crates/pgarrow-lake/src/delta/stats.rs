//! A data file's statistics as an `add` action carries them: `numRecords`, and per column
//! (nested as the schema nests them) `nullCount`, `minValues`, `maxValues`, from the file's
//! Parquet footer. Bounds are written only where they are sure and a reader parses them
//! exactly: integers, decimals of up to 15 digits (JSON numbers readers may read as
//! doubles), dates and timestamps of years 1 to 9999 (timestamps to the millisecond, the
//! minimum rounded down and the maximum up, as the protocol truncates them), exact text.
//! Columns inside lists and maps get none.

use parquet::file::metadata::ParquetMetaData;
use serde_json::{Map, Value};

use crate::bounds::{self, Value as Bound, date_text, decimal_text, split_micros};

/// The `stats` JSON of a file of `rows` rows whose footer is `metadata`.
pub(crate) fn stats_json(metadata: &ParquetMetaData, rows: u64) -> String {
    let mut nulls = Map::new();
    let mut mins = Map::new();
    let mut maxes = Map::new();
    for leaf in bounds::leaves(metadata) {
        if leaf.repeated {
            continue;
        }
        if let Some(n) = leaf.nulls {
            put(&mut nulls, &leaf.path, Value::from(n));
        }
        // All NULL: no bounds, and none needed.
        if let (Some(min), Some(max)) = (&leaf.min, &leaf.max)
            && let (Some(min), Some(max)) = (render(min, false), render(max, true))
        {
            put(&mut mins, &leaf.path, min);
            put(&mut maxes, &leaf.path, max);
        }
    }
    let mut out = Map::new();
    out.insert("numRecords".into(), Value::from(rows));
    out.insert("minValues".into(), Value::Object(mins));
    out.insert("maxValues".into(), Value::Object(maxes));
    out.insert("nullCount".into(), Value::Object(nulls));
    Value::Object(out).to_string()
}

/// Sets `value` at `path` in nested objects.
fn put(into: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            into.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = into
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                put(inner, rest, value);
            }
        }
    }
}

/// A bound as a Delta reader parses it (`upper`: a maximum, rounded up where it is rounded).
fn render(value: &Bound, upper: bool) -> Option<Value> {
    Some(match value {
        // Readers gain nothing from a boolean's bounds.
        Bound::Bool(_) => return None,
        Bound::Int(n) => match i64::try_from(*n) {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(u64::try_from(*n).ok()?),
        },
        Bound::Decimal(n, scale) => {
            // Exact as a double only up to 15 significant digits.
            if n.unsigned_abs() >= 1_000_000_000_000_000 {
                return None;
            }
            let text = decimal_text(*n, *scale);
            let number: f64 = text.parse().ok()?;
            Value::from(number)
        }
        Bound::Date(days) => Value::from(date_text(i64::from(*days))?),
        Bound::Timestamp { micros, utc } => {
            let millis = match upper {
                false => micros.div_euclid(1000),
                true => micros.checked_add(999)?.div_euclid(1000),
            };
            let (date, h, mi, s, frac) = split_micros(millis.checked_mul(1000)?)?;
            let zone = if *utc { "Z" } else { "" };
            Value::from(format!(
                "{date}T{h:02}:{mi:02}:{s:02}.{:03}{zone}",
                frac / 1000
            ))
        }
        Bound::Text(text) => Value::from(text.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_render_as_delta_readers_parse_them() {
        assert_eq!(render(&Bound::Int(-3), false), Some(Value::from(-3)));
        assert_eq!(
            render(&Bound::Decimal(12345, 2), false),
            Some(Value::from(123.45))
        );
        assert_eq!(render(&Bound::Decimal(10_i128.pow(20), 2), false), None);
        assert_eq!(
            render(&Bound::Date(0), false),
            Some(Value::from("1970-01-01"))
        );
        assert_eq!(render(&Bound::Date(i32::MAX), false), None);
        let t = Bound::Timestamp {
            micros: 1_500,
            utc: true,
        };
        assert_eq!(
            render(&t, false),
            Some(Value::from("1970-01-01T00:00:00.001Z"))
        );
        assert_eq!(
            render(&t, true),
            Some(Value::from("1970-01-01T00:00:00.002Z"))
        );
        let ntz = Bound::Timestamp {
            micros: -1,
            utc: false,
        };
        assert_eq!(
            render(&ntz, false),
            Some(Value::from("1969-12-31T23:59:59.999"))
        );
        assert_eq!(render(&Bound::Bool(true), false), None);
    }

    #[test]
    fn nested_paths_nest() {
        let mut m = Map::new();
        put(&mut m, &["s".into(), "a".into()], Value::from(1));
        put(&mut m, &["s".into(), "b".into()], Value::from(2));
        put(&mut m, &["x".into()], Value::from(3));
        assert_eq!(Value::Object(m).to_string(), r#"{"s":{"a":1,"b":2},"x":3}"#);
    }
}
