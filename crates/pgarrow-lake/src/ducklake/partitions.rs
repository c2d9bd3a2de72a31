//! DuckLake's partition keys from pgarrow's value partitions, and back.
//!
//! DuckLake's temporal transforms take one part of a date or timestamp (`year` 2026, `month`
//! 11, `day` 25, `hour` 10: the calendar's numbers, not counts since 1970), so pgarrow's
//! `month(c)` is DuckLake's `year(c), month(c)`, `day(c)` is `year, month, day` and `hour(c)`
//! `year, month, day, hour`: the same files, the same values. Identity partitions keep their
//! column in the files (DuckLake's readers read values from the files). `bucket` and
//! `truncate` have no DuckLake form, and the parts of a zoned timestamp depend on the
//! reader's time zone: both are refused.

use arrow_schema::{DataType, Schema};
use pgarrow::io::{Layout, PartitionField, PartitionValue, Transform};
use pgarrow::{ErrorKind, Result};

use super::columns::LakeColumn;

/// One DuckLake partition key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) column_id: i64,
    /// `identity`, `year`, `month`, `day` or `hour`.
    pub(crate) transform: String,
    /// The layout's partition it comes from.
    from: usize,
    /// Which number of that partition's value it is (0 the year ... 3 the hour), or `None`
    /// for the whole value (identity).
    part: Option<usize>,
}

const PARTS: [&str; 4] = ["year", "month", "day", "hour"];

fn refuse(message: String) -> pgarrow::Error {
    ErrorKind::Usage(message).into()
}

/// The DuckLake keys of `layout`'s value partitions over a table of `columns` (the export's
/// `schema`).
///
/// # Errors
/// A transform DuckLake has no form for, or a temporal one of a zoned timestamp.
pub(crate) fn keys(layout: &Layout, columns: &[LakeColumn], schema: &Schema) -> Result<Vec<Key>> {
    let mut keys = Vec::new();
    for (from, field) in layout.partitions.iter().enumerate() {
        let column = columns
            .iter()
            .find(|c| c.parent.is_none() && c.name == field.column)
            .ok_or_else(|| {
                refuse(format!(
                    "value partition {field}: no column \"{}\"",
                    field.column
                ))
            })?;
        let parts = match field.transform {
            Transform::Identity => {
                keys.push(Key {
                    column_id: column.id,
                    transform: "identity".into(),
                    from,
                    part: None,
                });
                continue;
            }
            Transform::Year => 1,
            Transform::Month => 2,
            Transform::Day => 3,
            Transform::Hour => 4,
            Transform::Bucket(_) | Transform::Truncate(_) => {
                return Err(refuse(format!(
                    "value partition {field}: DuckLake partitions by a column or by year, \
                     month, day or hour"
                )));
            }
        };
        if let Ok(f) = schema.field_with_name(&field.column)
            && matches!(f.data_type(), DataType::Timestamp(_, Some(_)))
        {
            return Err(refuse(format!(
                "value partition {field}: DuckLake takes the parts of a timestamptz in the \
                 reader's time zone; partition by a timestamp (`... AT TIME ZONE 'UTC'` in the \
                 query) or a date"
            )));
        }
        for (part, name) in PARTS.iter().enumerate().take(parts) {
            keys.push(Key {
                column_id: column.id,
                transform: (*name).to_owned(),
                from,
                part: Some(part),
            });
        }
    }
    Ok(keys)
}

/// Each key's value for a file whose partition values (pgarrow's, in layout order) are
/// `values`: NULL for a NULL.
///
/// # Errors
/// A value that is not the text its transform writes.
pub(crate) fn values(keys: &[Key], values: &[PartitionValue]) -> Result<Vec<Option<String>>> {
    keys.iter()
        .map(|key| {
            let value = values.get(key.from).ok_or_else(|| {
                refuse(format!(
                    "a file has {} partition values, and the table {} keys",
                    values.len(),
                    keys.len()
                ))
            })?;
            let Some(text) = &value.value else {
                return Ok(None);
            };
            let Some(part) = key.part else {
                return Ok(Some(text.clone()));
            };
            calendar_part(text, part)
                .map(|n| Some(n.to_string()))
                .ok_or_else(|| {
                    refuse(format!(
                        "partition {}: value {text:?} has no {}",
                        value.name, PARTS[part]
                    ))
                })
        })
        .collect()
}

/// Number `part` (0 the year, 1 the month, 2 the day, 3 the hour) of a temporal partition
/// value as pgarrow writes them (`2026`, `2026-11`, `2026-11-25`, `2026-11-25-10`; a year
/// before 1 with a sign).
fn calendar_part(text: &str, part: usize) -> Option<i64> {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let n: i64 = rest.split('-').nth(part)?.parse().ok()?;
    Some(if part == 0 { sign * n } else { n })
}

/// pgarrow's value partitions that make the DuckLake keys `spec` (column ID, transform) of a
/// table of `columns`, so that an append writes files the way the table is partitioned.
///
/// # Errors
/// A spec pgarrow cannot write (a `month` without its `year`, `bucket`, ...), named.
pub(crate) fn layout_of(
    spec: &[(i64, String)],
    columns: &[LakeColumn],
) -> Result<Vec<PartitionField>> {
    let mut fields = Vec::new();
    let mut i = 0;
    let shown = || {
        spec.iter()
            .map(|(c, t)| format!("{t}(column {c})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    while i < spec.len() {
        let (column_id, transform) = &spec[i];
        let column = columns
            .iter()
            .find(|c| c.id == *column_id && c.parent.is_none())
            .ok_or_else(|| {
                refuse(format!(
                    "the table's partition keys ({}) name no column",
                    shown()
                ))
            })?;
        if transform == "identity" {
            fields.push(PartitionField::new(
                column.name.clone(),
                Transform::Identity,
            ));
            i += 1;
            continue;
        }
        // year, then as many of month, day, hour of the same column as follow in order.
        let run = spec[i..]
            .iter()
            .zip(PARTS)
            .take_while(|((c, t), want)| c == column_id && t == want)
            .count();
        let transform = match run {
            1 => Transform::Year,
            2 => Transform::Month,
            3 => Transform::Day,
            4 => Transform::Hour,
            _ => {
                return Err(refuse(format!(
                    "the table is partitioned by {}, which pgarrow does not write (it writes \
                     a column, or year; year, month; year, month, day; year, month, day, hour \
                     of one)",
                    shown()
                )));
            }
        };
        fields.push(PartitionField::new(column.name.clone(), transform));
        i += run;
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{Field, TimeUnit};

    fn column(id: i64, name: &str) -> LakeColumn {
        LakeColumn {
            id,
            name: name.into(),
            ty: "date".into(),
            parent: None,
            order: id,
            compare_as: None,
        }
    }

    #[test]
    fn temporal_partitions_are_duckdb_calendar_parts() {
        let columns = [column(1, "k"), column(2, "d"), column(3, "t")];
        let schema = Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("d", DataType::Date32, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]);
        let layout = Layout::default()
            .with_partition("k".parse().unwrap())
            .with_partition("day(d)".parse().unwrap());
        let found = keys(&layout, &columns, &schema).unwrap();
        let spec: Vec<(i64, String)> = found
            .iter()
            .map(|k| (k.column_id, k.transform.clone()))
            .collect();
        assert_eq!(
            spec,
            vec![
                (1, "identity".into()),
                (2, "year".into()),
                (2, "month".into()),
                (2, "day".into())
            ]
        );
        let value = |name: &str, v: Option<&str>| -> PartitionValue {
            serde_json::from_value(serde_json::json!({"name": name, "value": v})).unwrap()
        };
        assert_eq!(
            values(
                &found,
                &[value("k", Some("a/b")), value("d_day", Some("2026-01-05"))]
            )
            .unwrap(),
            vec![
                Some("a/b".into()),
                Some("2026".into()),
                Some("1".into()),
                Some("5".into())
            ]
        );
        assert_eq!(
            values(&found, &[value("k", None), value("d_day", None)]).unwrap(),
            vec![None, None, None, None]
        );
        assert_eq!(calendar_part("-0044-03-15", 0), Some(-44));
        assert_eq!(calendar_part("2026-11-25-07", 3), Some(7));
        // Back: the table's keys as pgarrow's partitions.
        assert_eq!(layout_of(&spec, &columns).unwrap(), layout.partitions);
        let odd = [(2, "month".to_owned())];
        assert!(
            layout_of(&odd, &columns)
                .unwrap_err()
                .to_string()
                .contains("month(column 2)")
        );
        // Refused: zoned timestamps' parts, and transforms DuckLake lacks.
        let zoned = Layout::default().with_partition("hour(t)".parse().unwrap());
        assert!(
            keys(&zoned, &columns, &schema)
                .unwrap_err()
                .to_string()
                .contains("time zone")
        );
        let bucket = Layout::default().with_partition("bucket(4, k)".parse().unwrap());
        assert!(
            keys(&bucket, &columns, &schema)
                .unwrap_err()
                .to_string()
                .contains("year, month")
        );
    }
}
