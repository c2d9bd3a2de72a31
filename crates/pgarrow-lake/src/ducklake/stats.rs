//! A data file's column statistics as DuckLake's catalog keeps them, from its Parquet footer:
//! sizes and counts for every leaf column, and bounds as DuckDB renders values in text for
//! the types whose rendering pgarrow knows exactly. A bound a reader could misread (a date
//! past year 9999, PostgreSQL's infinities, a float's, whose NaNs Parquet leaves out) is left
//! out, never written wrong.

use std::collections::HashMap;

use parquet::file::metadata::ParquetMetaData;

use super::columns::LakeColumn;
use crate::bounds::{self, Value, date_text, decimal_text, split_micros};

/// One column's statistics in one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ColumnStats {
    pub(crate) column_size_bytes: i64,
    pub(crate) value_count: i64,
    pub(crate) null_count: Option<i64>,
    /// Bounds DuckDB can read back ([`render`] gives them `Some`).
    pub(crate) min: Option<Value>,
    pub(crate) max: Option<Value>,
}

/// The statistics of each leaf column of a file (by column ID), summed and bounded over its
/// row groups.
pub(crate) fn file_stats(
    metadata: &ParquetMetaData,
    columns: &[LakeColumn],
) -> HashMap<i64, ColumnStats> {
    let by_id: HashMap<i64, &LakeColumn> = columns.iter().map(|c| (c.id, c)).collect();
    let mut out = HashMap::new();
    for leaf in bounds::leaves(metadata) {
        let Some(id) = leaf.id.map(i64::from) else {
            continue;
        };
        let Some(column) = by_id.get(&id) else {
            continue;
        };
        // Bounds only where the catalog compares them (as `compare_as`), and DuckDB can read.
        let keep =
            |v: Option<Value>| v.filter(|v| column.compare_as.is_some() && render(v).is_some());
        out.insert(
            id,
            ColumnStats {
                column_size_bytes: leaf.size,
                value_count: leaf.values,
                null_count: leaf.nulls,
                min: keep(leaf.min),
                max: keep(leaf.max),
            },
        );
    }
    out
}

/// A bound as DuckDB renders its value in text; `None` for one it may misread.
pub(crate) fn render(value: &Value) -> Option<String> {
    Some(match value {
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Decimal(n, scale) => decimal_text(*n, *scale),
        Value::Date(days) => date_text(i64::from(*days))?,
        Value::Timestamp { micros, utc } => timestamp(*micros, *utc)?,
        Value::Text(text) => text.clone(),
    })
}

/// Microseconds since 1970 as DuckDB renders a timestamp (`+00` for one with a time zone,
/// which DuckLake keeps in UTC), for years 1 to 9999 only.
fn timestamp(micros: i64, zoned: bool) -> Option<String> {
    let (date, h, mi, s, frac) = split_micros(micros)?;
    let mut text = format!("{date} {h:02}:{mi:02}:{s:02}");
    if frac != 0 {
        text.push_str(&format!(".{frac:06}"));
    }
    if zoned {
        text.push_str("+00");
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_duckdb_renders_them() {
        assert_eq!(
            timestamp(1_767_225_600_000_000, true).as_deref(),
            Some("2026-01-01 00:00:00+00")
        );
        assert_eq!(
            timestamp(-1, false).as_deref(),
            Some("1969-12-31 23:59:59.999999")
        );
        assert_eq!(timestamp(i64::MAX, false), None);
        assert_eq!(render(&Value::Decimal(12345, 2)).as_deref(), Some("123.45"));
        assert_eq!(render(&Value::Date(i32::MAX)), None);
        assert_eq!(render(&Value::Int(-7)).as_deref(), Some("-7"));
    }
}
