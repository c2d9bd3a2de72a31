//! An Iceberg table's schema from an export's Arrow schema, by the mapping the docs give: each
//! Arrow type to the Iceberg (format version 2) type whose Parquet form pgarrow's files hold,
//! numbered as the files' field IDs number them, and a type Iceberg has no exact form for
//! refused by column, with what to do instead.

use std::collections::BTreeMap;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use pgarrow::{Error, ErrorKind, Result};
use serde_json::{Value, json};

/// An export's schema as an Iceberg table's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IcebergSchema {
    /// The fields of the `struct`, as the table metadata spells them.
    pub(crate) fields: Vec<Value>,
    /// The highest field ID.
    pub(crate) last_id: i32,
    /// Every primitive field's type by its ID (`"long"`, `"decimal(10, 2)"`).
    pub(crate) types: BTreeMap<i32, String>,
}

impl IcebergSchema {
    /// The schema as the table metadata holds it, with its ID.
    pub(crate) fn json(&self, id: i64) -> Value {
        json!({"type": "struct", "schema-id": id, "fields": self.fields})
    }

    /// The ID of top-level column `name`.
    pub(crate) fn id_of(&self, name: &str) -> Option<i64> {
        self.fields
            .iter()
            .find(|f| f["name"].as_str() == Some(name))
            .and_then(|f| f["id"].as_i64())
    }
}

/// The Iceberg schema of `schema`, numbered as [`pgarrow::io::with_field_ids`] numbers a
/// file's fields.
///
/// # Errors
/// A column of a type Iceberg cannot hold exactly, named, with what to do instead.
pub(crate) fn iceberg_schema(schema: &Schema) -> Result<IcebergSchema> {
    let numbered = pgarrow::io::with_field_ids(schema);
    let mut out = IcebergSchema {
        fields: Vec::new(),
        last_id: 0,
        types: BTreeMap::new(),
    };
    let mut fields = Vec::new();
    for f in numbered.fields() {
        fields.push(field_json(f, f.name(), &mut out)?);
    }
    out.fields = fields;
    Ok(out)
}

fn id(field: &Field) -> Result<i32> {
    field
        .metadata()
        .get("PARQUET:field_id")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Error::from(ErrorKind::Internal(format!(
                "field {} has no field ID",
                field.name()
            )))
        })
}

fn field_json(field: &Field, path: &str, out: &mut IcebergSchema) -> Result<Value> {
    let id = id(field)?;
    out.last_id = out.last_id.max(id);
    Ok(json!({
        "id": id,
        "name": field.name(),
        "required": !field.is_nullable(),
        "type": type_json(field, id, path, out)?,
    }))
}

fn type_json(field: &Field, id: i32, path: &str, out: &mut IcebergSchema) -> Result<Value> {
    let refuse = |why: &str| -> Error {
        ErrorKind::Usage(format!("column \"{path}\" ({}): {why}", field.data_type())).into()
    };
    let extension = field
        .metadata()
        .get("ARROW:extension:name")
        .map(String::as_str);
    let primitive: String = match field.data_type() {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "int".into(),
        DataType::Int64 => "long".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            return Err(refuse(
                "Iceberg has no unsigned integers: cast the column to a wider signed type in \
                 the query (oid::bigint)",
            ));
        }
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            if *s < 0 {
                return Err(refuse(
                    "Iceberg's decimals have no negative scale: cast the column in the query",
                ));
            }
            format!("decimal({p}, {s})")
        }
        DataType::Decimal256(..) => {
            return Err(refuse(
                "Iceberg's decimals have at most 38 digits: export the column as text \
                 (`--numeric text`) or cast it in the query",
            ));
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::FixedSizeBinary(16) if extension == Some("arrow.uuid") => "uuid".into(),
        DataType::FixedSizeBinary(n) => format!("fixed[{n}]"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Date32 => "date".into(),
        DataType::Time64(TimeUnit::Microsecond) => "time".into(),
        DataType::Timestamp(TimeUnit::Microsecond, None) => "timestamp".into(),
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamptz".into(),
        DataType::Timestamp(..) | DataType::Time32(_) | DataType::Time64(_) => {
            return Err(refuse(
                "Iceberg's times and timestamps (format version 2) hold microseconds: export \
                 them as microseconds (the default)",
            ));
        }
        DataType::Interval(_) | DataType::Duration(_) => {
            return Err(refuse(
                "Iceberg has no interval type: cast the column to text in the query",
            ));
        }
        DataType::List(child) | DataType::LargeList(child) => {
            let element_id = self::id(child)?;
            out.last_id = out.last_id.max(element_id);
            return Ok(json!({
                "type": "list",
                "element-id": element_id,
                "element": type_json(child, element_id, &format!("{path}[]"), out)?,
                "element-required": !child.is_nullable(),
            }));
        }
        DataType::Struct(children) => {
            let fields = children
                .iter()
                .map(|c| field_json(c, &format!("{path}.{}", c.name()), out))
                .collect::<Result<Vec<_>>>()?;
            return Ok(json!({"type": "struct", "fields": fields}));
        }
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(refuse("a map without key and value fields"));
            };
            let [key, value] = &kv.iter().collect::<Vec<_>>()[..] else {
                return Err(refuse("a map without key and value fields"));
            };
            let (key_id, value_id) = (self::id(key)?, self::id(value)?);
            out.last_id = out.last_id.max(key_id).max(value_id);
            return Ok(json!({
                "type": "map",
                "key-id": key_id,
                "key": type_json(key, key_id, &format!("{path}.key"), out)?,
                "value-id": value_id,
                "value": type_json(value, value_id, &format!("{path}.value"), out)?,
                "value-required": !value.is_nullable(),
            }));
        }
        other => {
            return Err(refuse(&format!(
                "Iceberg has no type for {other}: cast the column in the query"
            )));
        }
    };
    out.types.insert(id, primitive.clone());
    Ok(Value::String(primitive))
}

/// Where an export's columns differ from a table's current schema (`table`, its `fields`):
/// a column missing from the table, of another type or number, or nullable where the table
/// requires a value. `None` when the export's files can be added to the table as they are.
pub(crate) fn difference(table: &Value, ours: &IcebergSchema) -> Option<String> {
    let theirs = table["fields"].as_array().cloned().unwrap_or_default();
    for field in &ours.fields {
        let name = field["name"].as_str().unwrap_or_default();
        let Some(t) = theirs.iter().find(|t| t["name"].as_str() == Some(name)) else {
            return Some(format!(
                "column \"{name}\" is not in the table (adding columns to an Iceberg table is \
                 not done by pgarrow yet: add it with pyiceberg or Spark first)"
            ));
        };
        if bare(&t["type"]) != bare(&field["type"]) || t["id"] != field["id"] {
            return Some(format!(
                "column \"{name}\" is {} (field {}) in the table, and {} (field {}) in the export",
                t["type"], t["id"], field["type"], field["id"]
            ));
        }
        if t["required"] == json!(true) && field["required"] != json!(true) {
            return Some(format!(
                "column \"{name}\" is required in the table, and may be NULL in the export"
            ));
        }
    }
    for t in &theirs {
        let name = t["name"].as_str().unwrap_or_default();
        if t["required"] == json!(true) && !ours.fields.iter().any(|f| f["name"] == t["name"]) {
            return Some(format!(
                "the table requires column \"{name}\", which the export does not have"
            ));
        }
    }
    None
}

/// A type without what does not make it another (docs, defaults, nullability of nested
/// fields compared as IDs and types).
fn bare(ty: &Value) -> Value {
    match ty {
        Value::Object(o) => {
            let mut kept = serde_json::Map::new();
            for (k, v) in o {
                match k.as_str() {
                    "doc" | "initial-default" | "write-default" => {}
                    "fields" => {
                        let fields: Vec<Value> = v
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|f| json!({"id": f["id"], "name": f["name"], "type": bare(&f["type"])}))
                            .collect();
                        kept.insert(k.clone(), Value::Array(fields));
                    }
                    _ => {
                        kept.insert(k.clone(), bare(v));
                    }
                }
            }
            Value::Object(kept)
        }
        Value::String(s) => Value::String(s.replace(' ', "")),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn types_are_mapped_and_numbered_as_the_files() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("d", DataType::Decimal128(10, 2), true),
            Field::new_list("l", Field::new("item", DataType::Utf8, true), true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
                true,
            ),
        ]);
        let s = iceberg_schema(&schema).unwrap();
        assert_eq!(
            s.fields[0],
            json!({"id": 1, "name": "id", "required": true, "type": "long"})
        );
        assert_eq!(s.fields[1]["type"], json!("decimal(10, 2)"));
        assert_eq!(
            s.fields[2]["type"],
            json!({"type": "list", "element-id": 5, "element": "string", "element-required": false})
        );
        assert_eq!(s.fields[3]["id"], json!(4));
        assert_eq!(s.last_id, 5);
        assert_eq!(s.types[&4], "timestamptz");
        assert_eq!(s.id_of("t"), Some(4));
        assert_eq!(difference(&s.json(0), &s), None);
        let other =
            iceberg_schema(&Schema::new(vec![Field::new("id", DataType::Int32, false)])).unwrap();
        assert!(difference(&s.json(0), &other).unwrap().contains("\"id\""));
        let extra =
            iceberg_schema(&Schema::new(vec![Field::new("x", DataType::Int32, true)])).unwrap();
        assert!(
            difference(&s.json(0), &extra)
                .unwrap()
                .contains("not in the table")
        );
    }

    #[test]
    fn types_iceberg_cannot_hold_are_refused_by_column() {
        for (ty, why) in [
            (DataType::UInt32, "bigint"),
            (
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                "microseconds",
            ),
            (DataType::Decimal256(50, 2), "38"),
            (
                DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
                "interval",
            ),
        ] {
            let e = iceberg_schema(&Schema::new(vec![Field::new("c", ty, true)])).unwrap_err();
            assert!(e.to_string().contains("column \"c\""), "{e}");
            assert!(e.to_string().contains(why), "{e}");
        }
    }
}
