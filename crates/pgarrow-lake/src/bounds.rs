//! A data file's column statistics from its Parquet footer, for every lake format: sizes,
//! counts and null counts per leaf column, and bounds typed by the footer's own logical types,
//! so that each format renders them its own way (DuckLake's text, Delta's JSON, Iceberg's binary single values).
//!
//! A bound is kept only where it is sure: every row group had one, it is exact (text cut
//! short is left out), and its type is one pgarrow renders exactly. Floats are left out (a
//! Parquet footer's float bounds leave NaN out, so a reader would skip files holding NaN),
//! and so are values a reader may not parse (dates past year 9999, PostgreSQL's infinities):
//! the formats' renderers refuse those.

use std::cmp::Ordering;

use parquet::basic::{LogicalType, TimeUnit, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

/// A typed bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Bool(bool),
    /// Any integer, signed or unsigned.
    Int(i128),
    /// An unscaled decimal and its scale.
    Decimal(i128, u32),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 00:00, in UTC (`utc`) or of no zone.
    Timestamp {
        micros: i64,
        utc: bool,
    },
    Text(String),
}

impl Value {
    /// The order of two bounds of one column (of one type).
    fn cmp_same(&self, other: &Value) -> Option<Ordering> {
        Some(match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Decimal(a, s), Value::Decimal(b, t)) if s == t => a.cmp(b),
            (Value::Date(a), Value::Date(b)) => a.cmp(b),
            (Value::Timestamp { micros: a, .. }, Value::Timestamp { micros: b, .. }) => a.cmp(b),
            (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => return None,
        })
    }
}

/// One leaf column's statistics over a file's row groups.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf {
    /// Its Parquet field ID, when it has one.
    pub(crate) id: Option<i32>,
    /// Its path: the top-level column's name, then the nested fields' (Parquet's own names,
    /// `list`/`element` included).
    pub(crate) path: Vec<String>,
    /// Whether it is inside a list or a map (its counts are of elements, not rows).
    pub(crate) repeated: bool,
    pub(crate) size: i64,
    pub(crate) values: i64,
    pub(crate) nulls: Option<i64>,
    pub(crate) min: Option<Value>,
    pub(crate) max: Option<Value>,
}

/// The statistics of every leaf column of the file whose footer is `metadata`, in the
/// footer's order.
pub(crate) fn leaves(metadata: &ParquetMetaData) -> Vec<Leaf> {
    let descr = metadata.file_metadata().schema_descr();
    let mut out: Vec<Leaf> = (0..descr.num_columns())
        .map(|k| {
            let column = descr.column(k);
            let info = column.self_type().get_basic_info();
            Leaf {
                id: info.has_id().then(|| info.id()),
                path: column.path().parts().to_vec(),
                repeated: column.max_rep_level() > 0,
                size: 0,
                values: 0,
                nulls: Some(0),
                min: None,
                max: None,
            }
        })
        .collect();
    // Whether every row group so far had bounds for the column.
    let mut bounded = vec![true; out.len()];
    for group in metadata.row_groups() {
        for (k, chunk) in group.columns().iter().enumerate() {
            let Some(leaf) = out.get_mut(k) else { continue };
            leaf.size += chunk.compressed_size();
            leaf.values += chunk.num_values();
            let stats = chunk.statistics();
            leaf.nulls = match (leaf.nulls, stats.and_then(Statistics::null_count_opt)) {
                (Some(a), Some(b)) => i64::try_from(b).ok().map(|b| a + b),
                _ => None,
            };
            if !bounded[k] {
                continue;
            }
            let column = descr.column(k);
            let logical = column.self_type().get_basic_info().logical_type_ref();
            match stats.and_then(|s| chunk_bounds(s, column.physical_type(), logical)) {
                Some((min, max)) => {
                    leaf.min = Some(match leaf.min.take() {
                        Some(old) => least(old, min, Ordering::Less),
                        None => min,
                    });
                    leaf.max = Some(match leaf.max.take() {
                        Some(old) => least(old, max, Ordering::Greater),
                        None => max,
                    });
                }
                None => {
                    bounded[k] = false;
                    leaf.min = None;
                    leaf.max = None;
                }
            }
        }
    }
    out
}

/// Of `a` and `b`, the one ordered `toward` the other (the lesser for `Less`).
pub(crate) fn least(a: Value, b: Value, toward: Ordering) -> Value {
    match a.cmp_same(&b) {
        Some(o) if o == toward || o == Ordering::Equal => a,
        _ => b,
    }
}

/// A column chunk's bounds as values of its logical type, or `None`.
fn chunk_bounds(
    stats: &Statistics,
    physical: PhysicalType,
    logical: Option<&LogicalType>,
) -> Option<(Value, Value)> {
    let both = |f: &dyn Fn(bool) -> Option<Value>| Some((f(true)?, f(false)?));
    match (stats, physical, logical) {
        (Statistics::Boolean(v), _, None) => both(&|min| pick(v, min).map(|b| Value::Bool(*b))),
        (Statistics::Int32(v), _, None) => {
            both(&|min| pick(v, min).map(|n| Value::Int(i128::from(*n))))
        }
        (Statistics::Int64(v), _, None) => {
            both(&|min| pick(v, min).map(|n| Value::Int(i128::from(*n))))
        }
        (Statistics::Int32(v), _, Some(LogicalType::Integer(int))) => both(&|min| {
            let n = *pick(v, min)?;
            Some(Value::Int(match int.is_signed {
                true => i128::from(n),
                false => i128::from(n as u32),
            }))
        }),
        (Statistics::Int64(v), _, Some(LogicalType::Integer(int))) => both(&|min| {
            let n = *pick(v, min)?;
            Some(Value::Int(match int.is_signed {
                true => i128::from(n),
                false => i128::from(n as u64),
            }))
        }),
        (Statistics::Int32(v), _, Some(LogicalType::Decimal(d))) => {
            let scale = u32::try_from(d.scale).ok()?;
            both(&|min| pick(v, min).map(|n| Value::Decimal(i128::from(*n), scale)))
        }
        (Statistics::Int64(v), _, Some(LogicalType::Decimal(d))) => {
            let scale = u32::try_from(d.scale).ok()?;
            both(&|min| pick(v, min).map(|n| Value::Decimal(i128::from(*n), scale)))
        }
        (Statistics::FixedLenByteArray(v), _, Some(LogicalType::Decimal(d))) => {
            let scale = u32::try_from(d.scale).ok()?;
            both(&|min| {
                let bytes = pick(v, min)?.data();
                if bytes.is_empty() || bytes.len() > 16 {
                    return None;
                }
                let mut full = [if bytes[0] & 0x80 != 0 { 0xff } else { 0 }; 16];
                full[16 - bytes.len()..].copy_from_slice(bytes);
                Some(Value::Decimal(i128::from_be_bytes(full), scale))
            })
        }
        (Statistics::Int32(v), _, Some(LogicalType::Date)) => {
            both(&|min| pick(v, min).map(|n| Value::Date(*n)))
        }
        (Statistics::Int64(v), _, Some(LogicalType::Timestamp(t))) => {
            let per_micro = match t.unit {
                TimeUnit::MICROS => 1,
                // Milliseconds scale up exactly; nanoseconds are left out (DuckLake and Delta
                // keep microseconds).
                TimeUnit::MILLIS => 1000,
                TimeUnit::NANOS => return None,
            };
            let utc = t.is_adjusted_to_u_t_c;
            both(&|min| {
                let micros = pick(v, min)?.checked_mul(per_micro)?;
                Some(Value::Timestamp { micros, utc })
            })
        }
        (Statistics::ByteArray(v), PhysicalType::BYTE_ARRAY, Some(LogicalType::String)) => {
            both(&|min| {
                // A bound cut short (long text) is still a bound; kept only when exact, to be
                // sure it is the text itself.
                let exact = if min {
                    v.min_is_exact()
                } else {
                    v.max_is_exact()
                };
                exact.then_some(())?;
                std::str::from_utf8(pick(v, min)?.data())
                    .ok()
                    .map(|s| Value::Text(s.to_owned()))
            })
        }
        _ => None,
    }
}

fn pick<T>(v: &parquet::file::statistics::ValueStatistics<T>, min: bool) -> Option<&T> {
    if min { v.min_opt() } else { v.max_opt() }
}

/// An unscaled decimal as text with `scale` digits after the point.
pub(crate) fn decimal_text(unscaled: i128, scale: u32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Days since 1970-01-01 as `YYYY-MM-DD`, for years 1 to 9999 only.
pub(crate) fn date_text(days: i64) -> Option<String> {
    let (y, m, d) = civil(days)?;
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// Microseconds since 1970 as a date and a time of day (`YYYY-MM-DD`, hours, minutes,
/// seconds, microseconds), for years 1 to 9999 only.
pub(crate) fn split_micros(micros: i64) -> Option<(String, i64, i64, i64, i64)> {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    let date = date_text(days)?;
    let (secs, frac) = (rest / 1_000_000, rest % 1_000_000);
    Some((date, secs / 3600, secs / 60 % 60, secs % 60, frac))
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01), for years 1 to 9999.
pub(crate) fn civil(days: i64) -> Option<(i64, i64, i64)> {
    // Howard Hinnant's days_from_civil, inverted.
    let z = days.checked_add(719_468)?;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (1..=9999).contains(&y).then_some((y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_decimals_render_exactly() {
        assert_eq!(date_text(0).as_deref(), Some("1970-01-01"));
        assert_eq!(date_text(20_540).as_deref(), Some("2026-03-28"));
        assert_eq!(date_text(-719_162).as_deref(), Some("0001-01-01"));
        assert_eq!(date_text(i64::from(i32::MAX)), None);
        assert_eq!(date_text(2_932_897), None); // 10000-01-01
        assert_eq!(
            split_micros(-1),
            Some(("1969-12-31".to_owned(), 23, 59, 59, 999_999))
        );
        assert_eq!(split_micros(i64::MAX), None);
        assert_eq!(decimal_text(-5, 2), "-0.05");
        assert_eq!(decimal_text(12345, 2), "123.45");
        assert_eq!(decimal_text(7, 0), "7");
    }

    #[test]
    fn bounds_merge_by_their_values() {
        let a = Value::Decimal(-50, 2);
        let b = Value::Decimal(25, 2);
        assert_eq!(least(a.clone(), b.clone(), Ordering::Less), a);
        assert_eq!(least(a, b.clone(), Ordering::Greater), b);
        let t = |s: &str| Value::Text(s.to_owned());
        assert_eq!(least(t("b"), t("ab"), Ordering::Less), t("ab"));
        assert_eq!(
            least(Value::Int(9), Value::Int(10), Ordering::Greater),
            Value::Int(10)
        );
    }
}
