//! A data file's column statistics as DuckLake's catalog keeps them, from its Parquet footer:
//! sizes and counts for every leaf column, and bounds as DuckDB renders values in text for
//! the types whose rendering pgarrow knows exactly. A bound a reader could misread (a date
//! past year 9999, PostgreSQL's infinities, a float's, whose NaNs Parquet leaves out) is left
//! out, never written wrong.

use std::collections::HashMap;

use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

use super::columns::LakeColumn;

/// One column's statistics in one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ColumnStats {
    pub(crate) column_size_bytes: i64,
    pub(crate) value_count: i64,
    pub(crate) null_count: Option<i64>,
    pub(crate) min: Option<String>,
    pub(crate) max: Option<String>,
}

/// The statistics of each leaf column of a file (by column ID), summed and bounded over its
/// row groups.
pub(crate) fn file_stats(
    metadata: &ParquetMetaData,
    columns: &[LakeColumn],
) -> HashMap<i64, ColumnStats> {
    let by_id: HashMap<i64, &LakeColumn> = columns.iter().map(|c| (c.id, c)).collect();
    let descr = metadata.file_metadata().schema_descr();
    let mut out: HashMap<i64, ColumnStats> = HashMap::new();
    // Whether every row group had bounds for the column (else the file has none).
    let mut bounded: HashMap<i64, bool> = HashMap::new();
    for group in metadata.row_groups() {
        for (leaf, chunk) in group.columns().iter().enumerate() {
            let info = descr.column(leaf).self_type().get_basic_info().clone();
            if !info.has_id() {
                continue;
            }
            let id = i64::from(info.id());
            let Some(column) = by_id.get(&id) else {
                continue;
            };
            let entry = out.entry(id).or_insert_with(|| ColumnStats {
                null_count: Some(0),
                ..ColumnStats::default()
            });
            entry.column_size_bytes += chunk.compressed_size();
            entry.value_count += chunk.num_values();
            let stats = chunk.statistics();
            entry.null_count = match (entry.null_count, stats.and_then(Statistics::null_count_opt))
            {
                (Some(a), Some(b)) => Some(a + b as i64),
                _ => None,
            };
            let bounds = stats.and_then(|s| bounds(s, &column.ty));
            let ok = bounded.entry(id).or_insert(true);
            match bounds {
                Some((min, max)) if *ok => {
                    let entry = out.get_mut(&id).expect("inserted above");
                    entry.min = Some(match entry.min.take() {
                        Some(old) => pick(old, min, &column.ty, true),
                        None => min,
                    });
                    entry.max = Some(match entry.max.take() {
                        Some(old) => pick(old, max, &column.ty, false),
                        None => max,
                    });
                }
                _ => *ok = false,
            }
        }
    }
    for (id, ok) in bounded {
        if !ok && let Some(entry) = out.get_mut(&id) {
            entry.min = None;
            entry.max = None;
        }
    }
    out
}

/// The lesser (`min`) or greater of two rendered bounds of one type.
pub(crate) fn pick(a: String, b: String, ty: &str, min: bool) -> String {
    let less = match sort_key(&a, ty).partial_cmp(&sort_key(&b, ty)) {
        Some(o) => o.is_lt(),
        None => a < b,
    };
    if less == min { a } else { b }
}

/// A rendered bound as something that orders as its value does.
#[derive(PartialEq, PartialOrd)]
enum Key<'a> {
    Number(f64, i128),
    Text(&'a str),
}

fn sort_key<'a>(text: &'a str, ty: &str) -> Key<'a> {
    if ty.starts_with("int") || ty.starts_with("uint") {
        return Key::Number(0.0, text.parse().unwrap_or(0));
    }
    if ty.starts_with("decimal") {
        // Same scale within a column: the digits without the point order as the values.
        return Key::Number(0.0, text.replace('.', "").parse().unwrap_or(0));
    }
    // Dates and timestamps (fixed-width, years 1 to 9999) and text order as their bytes.
    Key::Text(text)
}

/// A column chunk's bounds, rendered for DuckLake's type `ty`, or `None`.
fn bounds(stats: &Statistics, ty: &str) -> Option<(String, String)> {
    let both =
        |f: &dyn Fn(&Statistics, bool) -> Option<String>| Some((f(stats, true)?, f(stats, false)?));
    both(&|s, min| render(s, ty, min))
}

fn render(stats: &Statistics, ty: &str, min: bool) -> Option<String> {
    macro_rules! value {
        ($v:expr) => {
            if min { $v.min_opt()? } else { $v.max_opt()? }
        };
    }
    match (stats, ty) {
        (Statistics::Boolean(v), "boolean") => Some(value!(v).to_string()),
        (Statistics::Int32(v), "int8" | "int16" | "int32") => Some(value!(v).to_string()),
        (Statistics::Int32(v), "uint8" | "uint16" | "uint32") => {
            Some((*value!(v) as u32).to_string())
        }
        (Statistics::Int64(v), "int64") => Some(value!(v).to_string()),
        (Statistics::Int64(v), "uint64") => Some((*value!(v) as u64).to_string()),
        (Statistics::Int32(v), t) if t.starts_with("decimal") => {
            Some(decimal(i128::from(*value!(v)), scale(t)?))
        }
        (Statistics::Int64(v), t) if t.starts_with("decimal") => {
            Some(decimal(i128::from(*value!(v)), scale(t)?))
        }
        (Statistics::FixedLenByteArray(v), t) if t.starts_with("decimal") => {
            let bytes = value!(v).data();
            if bytes.is_empty() || bytes.len() > 16 {
                return None;
            }
            let mut full = [if bytes[0] & 0x80 != 0 { 0xff } else { 0 }; 16];
            full[16 - bytes.len()..].copy_from_slice(bytes);
            Some(decimal(i128::from_be_bytes(full), scale(t)?))
        }
        (Statistics::ByteArray(v), "varchar") => {
            // A bound cut short (long text) is still a bound; kept only when exact, to be
            // sure it is the text itself.
            let exact = if min {
                v.min_is_exact()
            } else {
                v.max_is_exact()
            };
            exact.then_some(())?;
            std::str::from_utf8(value!(v).data())
                .ok()
                .map(str::to_owned)
        }
        (Statistics::Int32(v), "date") => date(i64::from(*value!(v))),
        (Statistics::Int64(v), "timestamp") => timestamp(*value!(v), false),
        (Statistics::Int64(v), "timestamptz") => timestamp(*value!(v), true),
        _ => None,
    }
}

fn scale(ty: &str) -> Option<u32> {
    ty.strip_suffix(')')?
        .rsplit(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// An unscaled decimal as text with `scale` digits after the point.
fn decimal(unscaled: i128, scale: u32) -> String {
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
fn date(days: i64) -> Option<String> {
    let (y, m, d) = civil(days)?;
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// Microseconds since 1970 as DuckDB renders a timestamp (`+00` for one with a time zone,
/// which DuckLake keeps in UTC), for years 1 to 9999 only.
fn timestamp(micros: i64, zoned: bool) -> Option<String> {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    let (y, m, d) = civil(days)?;
    let (secs, frac) = (rest / 1_000_000, rest % 1_000_000);
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}");
    if frac != 0 {
        text.push_str(&format!(".{frac:06}"));
    }
    if zoned {
        text.push_str("+00");
    }
    Some(text)
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01), for years 1 to 9999.
fn civil(days: i64) -> Option<(i64, i64, i64)> {
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
    fn values_render_as_duckdb_renders_them() {
        assert_eq!(date(0).as_deref(), Some("1970-01-01"));
        assert_eq!(date(20_540).as_deref(), Some("2026-03-28"));
        assert_eq!(date(-719_162).as_deref(), Some("0001-01-01"));
        assert_eq!(date(i64::from(i32::MAX)), None);
        assert_eq!(date(2_932_897), None); // 10000-01-01
        assert_eq!(
            timestamp(1_767_225_600_000_000, true).as_deref(),
            Some("2026-01-01 00:00:00+00")
        );
        assert_eq!(
            timestamp(-1, false).as_deref(),
            Some("1969-12-31 23:59:59.999999")
        );
        assert_eq!(timestamp(i64::MAX, false), None);
        assert_eq!(decimal(-5, 2), "-0.05");
        assert_eq!(decimal(12345, 2), "123.45");
        assert_eq!(decimal(7, 0), "7");
        assert_eq!(scale("decimal(10,2)"), Some(2));
        assert_eq!(pick("9".into(), "10".into(), "int32", true), "9");
        assert_eq!(
            pick("-0.50".into(), "0.25".into(), "decimal(4,2)", false),
            "0.25"
        );
        assert_eq!(
            pick("2026-01-02".into(), "2025-12-31".into(), "date", true),
            "2025-12-31"
        );
    }
}
