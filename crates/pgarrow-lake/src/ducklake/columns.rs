//! The columns of a DuckLake table from an export's Arrow schema: DuckLake's type names, the
//! column IDs the data files carry as Parquet field IDs, and how the catalog compares values
//! of each type.

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use pgarrow::io::FieldIds;
use pgarrow::{Error, ErrorKind, Result};

/// A column of a DuckLake table (a nested field is a column whose parent is another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LakeColumn {
    /// Its ID: the Parquet field ID of its values in every data file.
    pub(crate) id: i64,
    pub(crate) name: String,
    /// DuckLake's type name (`int64`, `decimal(10,2)`, `list`...).
    pub(crate) ty: String,
    pub(crate) parent: Option<i64>,
    /// Its place among its siblings, from 1.
    pub(crate) order: i64,
    /// The PostgreSQL type its statistics (DuckLake's text) compare as, when pgarrow writes
    /// them; `None` for a type whose bounds it leaves out.
    pub(crate) compare_as: Option<&'static str>,
}

/// The columns of `schema`, numbered as pgarrow numbers Parquet field IDs
/// ([`pgarrow::io::with_field_ids`]: the top-level columns 1..n, then the nested fields).
///
/// # Errors
/// A column of a type DuckLake cannot hold exactly, named, with what to do instead.
#[cfg(test)]
pub(crate) fn lake_columns(schema: &Schema) -> Result<Vec<LakeColumn>> {
    lake_columns_from(schema, &FieldIds::default())
}

/// The columns of `schema`, numbered as [`pgarrow::io::with_field_ids_from`] numbers a file's
/// fields with `ids` (an existing table's IDs by path, new columns after them).
///
/// # Errors
/// As [`lake_columns`].
pub(crate) fn lake_columns_from(schema: &Schema, ids: &FieldIds) -> Result<Vec<LakeColumn>> {
    let schema = crate::common::lake_schema(schema, crate::common::Format::DuckLake);
    let numbered = pgarrow::io::with_field_ids_from(&schema, ids);
    let mut out = Vec::new();
    for (k, field) in numbered.fields().iter().enumerate() {
        push(field, None, k as i64 + 1, field.name(), &mut out)?;
    }
    Ok(out)
}

/// The columns of `schema` whose fields carry their own field IDs (a data file's).
///
/// # Errors
/// As [`lake_columns`].
pub(crate) fn lake_columns_as_numbered(schema: &Schema) -> Result<Vec<LakeColumn>> {
    let mut out = Vec::new();
    for (k, field) in schema.fields().iter().enumerate() {
        push(field, None, k as i64 + 1, field.name(), &mut out)?;
    }
    Ok(out)
}

/// A table's column IDs by path, as [`pgarrow::io::with_field_ids_from`] looks them up (a
/// list's element as `element`, a map's key and value as `key` and `value`), the next after
/// `last_id` for new columns.
pub(crate) fn known_ids(columns: &[LakeColumn], last_id: i64) -> FieldIds {
    let mut known = std::collections::HashMap::new();
    for c in columns {
        let mut path = Vec::new();
        let mut at = Some(c);
        while let Some(column) = at {
            let parent = column
                .parent
                .and_then(|p| columns.iter().find(|x| x.id == p));
            let name = match parent.map(|p| p.ty.as_str()) {
                Some("list") => "element".to_owned(),
                Some("map") if column.order <= 1 => "key".to_owned(),
                Some("map") => "value".to_owned(),
                _ => column.name.clone(),
            };
            path.push(name);
            at = parent;
        }
        path.reverse();
        if let Ok(id) = i32::try_from(c.id) {
            known.insert(path, id);
        }
    }
    FieldIds {
        known,
        next: i32::try_from(last_id).unwrap_or(0).saturating_add(1),
    }
}

/// Whether DuckLake widens a column of type `from` to `to` in place (its files of `from`
/// then read as `to`): integers to wider integers, `float32` to `float64`.
pub(crate) fn widens(from: &str, to: &str) -> bool {
    const SIGNED: [&str; 4] = ["int8", "int16", "int32", "int64"];
    const UNSIGNED: [&str; 4] = ["uint8", "uint16", "uint32", "uint64"];
    let rank = |list: &[&str], t: &str| list.iter().position(|x| *x == t);
    match (
        rank(&SIGNED, from),
        rank(&UNSIGNED, from),
        rank(&SIGNED, to),
        rank(&UNSIGNED, to),
    ) {
        (Some(a), _, Some(b), _) | (_, Some(a), _, Some(b)) => a < b,
        // An unsigned integer fits a signed one of twice its width.
        (_, Some(a), Some(b), _) => a < b,
        _ => from == "float32" && to == "float64",
    }
}

fn field_id(field: &Field) -> i64 {
    field
        .metadata()
        .get("PARQUET:field_id")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn push(
    field: &Field,
    parent: Option<i64>,
    order: i64,
    path: &str,
    out: &mut Vec<LakeColumn>,
) -> Result<()> {
    let id = field_id(field);
    let extension = field
        .metadata()
        .get("ARROW:extension:name")
        .map(String::as_str);
    let refuse = |why: &str| -> Error {
        ErrorKind::Usage(format!("column \"{path}\" ({}): {why}", field.data_type())).into()
    };
    let (ty, compare_as): (String, Option<&'static str>) = match field.data_type() {
        DataType::Boolean => ("boolean".into(), Some("boolean")),
        DataType::Int8 => ("int8".into(), Some("numeric")),
        DataType::Int16 => ("int16".into(), Some("numeric")),
        DataType::Int32 => ("int32".into(), Some("numeric")),
        DataType::Int64 => ("int64".into(), Some("numeric")),
        DataType::UInt8 => ("uint8".into(), Some("numeric")),
        DataType::UInt16 => ("uint16".into(), Some("numeric")),
        DataType::UInt32 => ("uint32".into(), Some("numeric")),
        DataType::UInt64 => ("uint64".into(), Some("numeric")),
        DataType::Float32 => ("float32".into(), Some("float8")),
        DataType::Float64 => ("float64".into(), Some("float8")),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            (format!("decimal({p},{s})"), Some("numeric"))
        }
        DataType::Decimal256(..) => {
            return Err(refuse(
                "DuckLake's decimals have at most 38 digits: export the column as text \
                 (`--numeric text`) or cast it in the query",
            ));
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => match extension {
            Some("arrow.json") => ("json".into(), None),
            _ => ("varchar".into(), Some("text COLLATE \"C\"")),
        },
        DataType::Dictionary(_, value)
            if matches!(**value, DataType::Utf8 | DataType::LargeUtf8) =>
        {
            ("varchar".into(), Some("text COLLATE \"C\""))
        }
        DataType::FixedSizeBinary(16) if extension == Some("arrow.uuid") => ("uuid".into(), None),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => ("blob".into(), None),
        DataType::Date32 => ("date".into(), Some("date")),
        DataType::Time64(TimeUnit::Microsecond) => ("time".into(), None),
        DataType::Timestamp(unit, None) => {
            let name = match unit {
                TimeUnit::Second => "timestamp_s",
                TimeUnit::Millisecond => "timestamp_ms",
                TimeUnit::Microsecond => "timestamp",
                TimeUnit::Nanosecond => "timestamp_ns",
            };
            // Only microseconds render as PostgreSQL's timestamp without losing digits.
            let compare = (*unit == TimeUnit::Microsecond).then_some("timestamp");
            (name.into(), compare)
        }
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => {
            ("timestamptz".into(), Some("timestamptz"))
        }
        DataType::Timestamp(_, Some(_)) => {
            return Err(refuse(
                "DuckLake's timestamptz holds microseconds: export timestamps as microseconds",
            ));
        }
        DataType::Interval(_) => {
            return Err(refuse(
                "DuckLake's interval is not the Parquet form pgarrow writes: cast the column \
                 to text in the query",
            ));
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            ("list".into(), None)
        }
        DataType::Struct(_) => ("struct".into(), None),
        DataType::Map(..) => ("map".into(), None),
        other => {
            return Err(refuse(&format!(
                "DuckLake has no type for {other}: cast the column in the query"
            )));
        }
    };
    out.push(LakeColumn {
        id,
        name: field.name().clone(),
        ty,
        parent,
        order,
        compare_as,
    });
    // The nested fields: a list's element, a struct's fields, a map's key and value.
    let children: Vec<&Field> = match field.data_type() {
        DataType::List(child) | DataType::LargeList(child) | DataType::FixedSizeList(child, _) => {
            vec![child.as_ref()]
        }
        DataType::Struct(children) => children.iter().map(AsRef::as_ref).collect(),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) => kv.iter().map(AsRef::as_ref).collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    // A list's element and a map's key and value named as DuckDB names them (its writer
    // looks a file's fields up by the catalog's names).
    let named = |k: usize| match field.data_type() {
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => Some("element"),
        DataType::Map(..) => Some(if k == 0 { "key" } else { "value" }),
        _ => None,
    };
    for (k, child) in children.into_iter().enumerate() {
        let child = match named(k) {
            Some(name) => child.clone().with_name(name),
            None => child.clone(),
        };
        let path = format!("{path}.{}", child.name());
        push(&child, Some(id), k as i64 + 1, &path, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn nested_columns_follow_the_field_ids() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new_list("l", Field::new("element", DataType::Int64, true), true),
            Field::new_struct(
                "s",
                vec![
                    Field::new("a", DataType::Utf8, true),
                    Field::new("b", DataType::Decimal128(10, 2), true),
                ],
                true,
            ),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
                true,
            ),
        ]);
        let cols = lake_columns(&schema).unwrap();
        let got: Vec<(i64, &str, &str, Option<i64>, i64)> = cols
            .iter()
            .map(|c| (c.id, c.name.as_str(), c.ty.as_str(), c.parent, c.order))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "id", "int32", None, 1),
                (2, "l", "list", None, 2),
                (5, "element", "int64", Some(2), 1),
                (3, "s", "struct", None, 3),
                (6, "a", "varchar", Some(3), 1),
                (7, "b", "decimal(10,2)", Some(3), 2),
                (4, "t", "timestamptz", None, 4),
            ]
        );
    }

    #[test]
    fn widening_is_what_ducklake_promotes() {
        assert!(widens("int32", "int64") && widens("int8", "int16") && widens("uint8", "int16"));
        assert!(widens("uint32", "uint64") && widens("float32", "float64"));
        assert!(
            !widens("int64", "int32") && !widens("uint32", "int32") && !widens("int32", "uint64")
        );
        assert!(
            !widens("int32", "float64") && !widens("varchar", "int64") && !widens("int32", "int32")
        );
    }

    #[test]
    fn a_tables_ids_number_an_export_by_path() {
        let schema = Schema::new(vec![
            Field::new("b", DataType::Utf8, true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                true,
            ),
            Field::new("new", DataType::Int64, true),
        ]);
        // DuckDB's numbering: l (5) before its element (6); b is 2; 1 was dropped.
        let table = vec![
            LakeColumn {
                id: 2,
                name: "b".into(),
                ty: "varchar".into(),
                parent: None,
                order: 2,
                compare_as: None,
            },
            LakeColumn {
                id: 5,
                name: "l".into(),
                ty: "list".into(),
                parent: None,
                order: 5,
                compare_as: None,
            },
            LakeColumn {
                id: 6,
                name: "element".into(),
                ty: "int32".into(),
                parent: Some(5),
                order: 1,
                compare_as: None,
            },
        ];
        let cols = lake_columns_from(&schema, &known_ids(&table, 6)).unwrap();
        let ids: Vec<(String, i64, Option<i64>)> = cols
            .iter()
            .map(|c| (c.name.clone(), c.id, c.parent))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("b".into(), 2, None),
                ("l".into(), 5, None),
                ("element".into(), 6, Some(5)),
                ("new".into(), 7, None)
            ]
        );
    }

    #[test]
    fn types_it_has_no_type_for_take_an_exact_form() {
        let schema = Schema::new(vec![
            Field::new(
                "span",
                DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
                true,
            ),
            Field::new("n", DataType::Decimal256(50, 2), true),
            Field::new("o", DataType::UInt32, true),
        ]);
        let cols = lake_columns(&schema).unwrap();
        let got: Vec<(&str, &str)> = cols
            .iter()
            .map(|c| (c.name.as_str(), c.ty.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("span", "struct"),
                ("months", "int32"),
                ("days", "int32"),
                ("microseconds", "int64"),
                ("n", "varchar"),
                ("o", "uint32"),
            ]
        );
    }
}
