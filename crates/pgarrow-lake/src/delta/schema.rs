//! A Delta table's schema from an export's Arrow schema, by the mapping the docs give: each
//! Arrow type to the Delta type whose Parquet form pgarrow's files hold, a type Delta has no
//! type for first given its exact form (`crate::common::value_forms`: a uuid or a time as
//! text, an interval as its struct), and what no form reaches (not a type pgarrow exports)
//! refused by column.

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use pgarrow::{Error, ErrorKind, Result};
use serde_json::{Value, json};

/// An export's schema as a Delta table's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeltaSchema {
    /// The `struct` type, as `schemaString` spells it.
    pub(crate) json: Value,
    /// Whether a column (at any depth) is a timestamp without time zone: the table then
    /// needs the `timestampNtz` feature.
    pub(crate) ntz: bool,
}

/// The Delta schema of `schema`.
///
/// # Errors
/// A column of a type no form of Delta's holds (none that pgarrow's export makes), named.
pub(crate) fn delta_schema(schema: &Schema) -> Result<DeltaSchema> {
    let schema = crate::common::lake_schema(schema, crate::common::Format::Delta);
    let mut ntz = false;
    let fields = schema
        .fields()
        .iter()
        .map(|f| field_json(f, f.name(), &mut ntz))
        .collect::<Result<Vec<_>>>()?;
    Ok(DeltaSchema {
        json: json!({"type": "struct", "fields": fields}),
        ntz,
    })
}

fn field_json(field: &Field, path: &str, ntz: &mut bool) -> Result<Value> {
    // A value given another form says which, and what it was, to every reader of the schema.
    let mut metadata = serde_json::Map::new();
    if let Some(form) = field.metadata().get(pgarrow::io::META_FORM) {
        metadata.insert(pgarrow::io::META_FORM.into(), form.clone().into());
        if let Some(t) = field.metadata().get(pgarrow::types::META_PG_TYPE) {
            metadata.insert(pgarrow::types::META_PG_TYPE.into(), t.clone().into());
        }
    }
    Ok(json!({
        "name": field.name(),
        "type": type_json(field, path, ntz)?,
        "nullable": field.is_nullable(),
        "metadata": metadata,
    }))
}

fn type_json(field: &Field, path: &str, ntz: &mut bool) -> Result<Value> {
    let refuse = |why: &str| -> Error {
        ErrorKind::Usage(format!("column \"{path}\" ({}): {why}", field.data_type())).into()
    };
    let extension = field
        .metadata()
        .get("ARROW:extension:name")
        .map(String::as_str);
    Ok(Value::String(match field.data_type() {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "byte".into(),
        DataType::Int16 => "short".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "long".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            return Err(refuse(
                "Delta has no unsigned integers: cast the column to a wider signed type in the \
                 query (oid::bigint)",
            ));
        }
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            if *s < 0 {
                return Err(refuse(
                    "Delta's decimals have no negative scale: cast the column in the query",
                ));
            }
            format!("decimal({p},{s})")
        }
        DataType::Decimal256(..) => {
            return Err(refuse(
                "Delta's decimals have at most 38 digits: export the column as text \
                 (`--numeric text`) or cast it in the query",
            ));
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Dictionary(_, value)
            if matches!(**value, DataType::Utf8 | DataType::LargeUtf8) =>
        {
            "string".into()
        }
        DataType::FixedSizeBinary(16) if extension == Some("arrow.uuid") => {
            return Err(refuse(
                "Delta has no UUID type (and its binary is not the Parquet form pgarrow writes \
                 for one): cast the column to text in the query (id::text)",
            ));
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            *ntz = true;
            "timestamp_ntz".into()
        }
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamp".into(),
        DataType::Timestamp(..) => {
            return Err(refuse(
                "Delta's timestamps hold microseconds: export timestamps as microseconds (the \
                 default)",
            ));
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            return Err(refuse(
                "Delta has no time-of-day type: cast the column to text (or to an interval's \
                 microseconds) in the query",
            ));
        }
        DataType::Interval(_) | DataType::Duration(_) => {
            return Err(refuse(
                "Delta has no interval type: cast the column to text in the query",
            ));
        }
        DataType::List(child) | DataType::LargeList(child) => {
            return Ok(json!({
                "type": "array",
                "elementType": type_json(child, &format!("{path}[]"), ntz)?,
                "containsNull": child.is_nullable(),
            }));
        }
        DataType::Struct(children) => {
            let fields = children
                .iter()
                .map(|c| field_json(c, &format!("{path}.{}", c.name()), ntz))
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
            return Ok(json!({
                "type": "map",
                "keyType": type_json(key, &format!("{path}.key"), ntz)?,
                "valueType": type_json(value, &format!("{path}.value"), ntz)?,
                "valueContainsNull": value.is_nullable(),
            }));
        }
        other => {
            return Err(refuse(&format!(
                "Delta has no type for {other}: cast the column in the query"
            )));
        }
    }))
}

/// Whether a file's `field` holds the values of a table column of Delta type `ty` as they
/// are (its type is the one pgarrow would give that column).
pub(crate) fn holds(field: &Field, ty: &Value) -> bool {
    // A `variant` is held as a Variant group (metadata and value), read as JSON text.
    if ty.as_str() == Some("variant") {
        return pgarrow::io::variant::is_variant(field);
    }
    let mut ntz = false;
    type_json(field, field.name(), &mut ntz).is_ok_and(|t| bare(&t) == bare(ty))
}

/// A type as a table's schema gives it, without what does not make it another type (field
/// metadata, nullability), to compare with another.
fn bare(ty: &Value) -> Value {
    match ty {
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("struct") => {
                let fields: Vec<Value> = o
                    .get("fields")
                    .and_then(Value::as_array)
                    .map(|fs| {
                        fs.iter()
                            .map(|f| json!({"name": f.get("name"), "type": bare(&f["type"])}))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({"type": "struct", "fields": fields})
            }
            Some("array") => json!({"type": "array", "elementType": bare(&o["elementType"])}),
            Some("map") => json!({
                "type": "map",
                "keyType": bare(&o["keyType"]),
                "valueType": bare(&o["valueType"]),
            }),
            _ => ty.clone(),
        },
        _ => ty.clone(),
    }
}

/// The table's top-level fields: name, type, nullable.
pub(crate) fn fields(schema: &Value) -> Vec<(String, Value, bool)> {
    schema
        .get("fields")
        .and_then(Value::as_array)
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    (
                        f.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        f.get("type").cloned().unwrap_or(Value::Null),
                        f.get("nullable").and_then(Value::as_bool).unwrap_or(true),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A top-level column of a table being read: its name, the name (and ID) its files hold it
/// under, its type, and its type as the files name its fields.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    /// The physical name under column mapping (`delta.columnMapping.physicalName`), else
    /// the name.
    pub(crate) physical: String,
    /// `delta.columnMapping.id`, under column mapping.
    pub(crate) id: Option<i64>,
    pub(crate) ty: Value,
    /// `ty` with each nested field under its physical name.
    pub(crate) file_ty: Value,
}

/// Key of a field's physical name under column mapping.
const PHYSICAL_NAME: &str = "delta.columnMapping.physicalName";

/// The table's top-level columns, with the names their files give them under column mapping
/// `mode` (`none`, `name`, `id`).
///
/// # Errors
/// Under column mapping, a field without its physical name (or, in mode `id`, its ID).
pub(crate) fn columns(schema: &Value, mode: &str) -> std::result::Result<Vec<Column>, String> {
    let mapped = mode != "none";
    let fields = schema.get("fields").and_then(Value::as_array);
    fields
        .into_iter()
        .flatten()
        .map(|f| {
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let ty = f.get("type").cloned().unwrap_or(Value::Null);
            let metadata = &f["metadata"];
            let physical = match (mapped, metadata[PHYSICAL_NAME].as_str()) {
                (false, _) => name.clone(),
                (true, Some(p)) => p.to_owned(),
                (true, None) => {
                    return Err(format!(
                        "it maps columns by name, and column \"{name}\" has no {PHYSICAL_NAME}"
                    ));
                }
            };
            let id = metadata["delta.columnMapping.id"].as_i64();
            if mode == "id" && id.is_none() {
                return Err(format!(
                    "it maps columns by ID, and column \"{name}\" has no delta.columnMapping.id"
                ));
            }
            let file_ty = match mapped {
                true => physical_type(&ty),
                false => ty.clone(),
            };
            Ok(Column {
                name,
                physical,
                id: id.filter(|_| mapped),
                ty,
                file_ty,
            })
        })
        .collect()
}

/// `ty` with each field of a struct in it (at any depth) under its physical name, as files
/// written under column mapping name them.
fn physical_type(ty: &Value) -> Value {
    let Some(o) = ty.as_object() else {
        return ty.clone();
    };
    let mut o = o.clone();
    match o.get("type").and_then(Value::as_str) {
        Some("struct") => {
            if let Some(Value::Array(fields)) = o.get_mut("fields") {
                for f in fields {
                    if let Some(p) = f["metadata"][PHYSICAL_NAME].as_str().map(str::to_owned) {
                        f["name"] = Value::String(p);
                    }
                    f["type"] = physical_type(&f["type"]);
                }
            }
        }
        Some("array") => {
            o["elementType"] = physical_type(&o["elementType"]);
        }
        Some("map") => {
            o["keyType"] = physical_type(&o["keyType"]);
            o["valueType"] = physical_type(&o["valueType"]);
        }
        _ => {}
    }
    Value::Object(o)
}

/// A file's type `dt` of a column of Delta type `ty` with the table's names of the fields in
/// it (the file's may be physical names): by place, as [`holds`] found them to be.
pub(crate) fn logical_type(dt: &DataType, ty: &Value) -> DataType {
    let kind = ty.get("type").and_then(Value::as_str);
    let with = |f: &arrow_schema::FieldRef, ty: &Value| {
        std::sync::Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(logical_type(f.data_type(), ty)),
        )
    };
    match (dt, kind) {
        (DataType::Struct(fields), Some("struct")) => {
            let theirs = ty["fields"].as_array().cloned().unwrap_or_default();
            if theirs.len() != fields.len() {
                return dt.clone();
            }
            DataType::Struct(
                fields
                    .iter()
                    .zip(&theirs)
                    .map(|(f, t)| {
                        let name = t["name"].as_str().unwrap_or(f.name());
                        std::sync::Arc::new(
                            f.as_ref()
                                .clone()
                                .with_name(name)
                                .with_data_type(logical_type(f.data_type(), &t["type"])),
                        )
                    })
                    .collect(),
            )
        }
        // A Variant group (metadata and value) is read as JSON text: jsonb.
        (_, None) if ty.as_str() == Some("variant") => DataType::Utf8,
        (DataType::List(item), Some("array")) => DataType::List(with(item, &ty["elementType"])),
        (DataType::LargeList(item), Some("array")) => {
            DataType::LargeList(with(item, &ty["elementType"]))
        }
        (DataType::Map(entries, sorted), Some("map")) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                let kv: arrow_schema::Fields =
                    vec![with(&kv[0], &ty["keyType"]), with(&kv[1], &ty["valueType"])].into();
                DataType::Map(
                    std::sync::Arc::new(
                        entries
                            .as_ref()
                            .clone()
                            .with_data_type(DataType::Struct(kv)),
                    ),
                    *sorted,
                )
            }
            _ => dt.clone(),
        },
        _ => dt.clone(),
    }
}

/// Whether `ty` holds `void` items: a list's, or a map's keys or values, at any depth (a
/// struct's `void` field, or a `void` column, is not one).
pub(crate) fn void_items(ty: &Value) -> bool {
    let void = |ty: &Value| ty.as_str() == Some("void") || void_items(ty);
    match ty.get("type").and_then(Value::as_str) {
        Some("struct") => ty["fields"]
            .as_array()
            .is_some_and(|fs| fs.iter().any(|f| void_items(&f["type"]))),
        Some("array") => void(&ty["elementType"]),
        Some("map") => void(&ty["keyType"]) || void(&ty["valueType"]),
        _ => false,
    }
}

/// Key of a field's type changes under type widening.
const TYPE_CHANGES: &str = "delta.typeChanges";

/// Checks each type change the schema records (`delta.typeChanges` of any field, at any
/// depth) is one the protocol's type widening allows, which a reader widens by casting.
///
/// # Errors
/// A change it does not allow, or a record that is not one, named by its field.
pub(crate) fn type_changes(schema: &Value) -> std::result::Result<(), String> {
    fn walk(ty: &Value, path: &str) -> std::result::Result<(), String> {
        match ty.get("type").and_then(Value::as_str) {
            Some("struct") => {
                for f in ty["fields"].as_array().into_iter().flatten() {
                    let name = f["name"].as_str().unwrap_or("");
                    let here = match path.is_empty() {
                        true => name.to_owned(),
                        false => format!("{path}.{name}"),
                    };
                    if let Some(changes) = f["metadata"].get(TYPE_CHANGES) {
                        field_changes(changes, &here)?;
                    }
                    walk(&f["type"], &here)?;
                }
                Ok(())
            }
            Some("array") => walk(&ty["elementType"], path),
            Some("map") => {
                walk(&ty["keyType"], path)?;
                walk(&ty["valueType"], path)
            }
            _ => Ok(()),
        }
    }
    fn field_changes(changes: &Value, path: &str) -> std::result::Result<(), String> {
        // Spark writes the list itself; a writer may write it as a JSON string.
        let parsed;
        let changes = match changes {
            Value::String(text) => {
                parsed = serde_json::from_str::<Value>(text).map_err(|e| {
                    format!("column \"{path}\" has a {TYPE_CHANGES} that is not JSON: {e}")
                })?;
                &parsed
            }
            other => other,
        };
        let list = changes
            .as_array()
            .ok_or_else(|| format!("column \"{path}\" has a {TYPE_CHANGES} that is not a list"))?;
        for change in list {
            let (from, to) = (change["fromType"].as_str(), change["toType"].as_str());
            let (Some(from), Some(to)) = (from, to) else {
                return Err(format!(
                    "column \"{path}\" has a type change without fromType and toType: {change}"
                ));
            };
            if !widens(from, to) {
                return Err(format!(
                    "column \"{path}\" was changed from {from} to {to}, which is not a type \
                     widening Delta allows (typeWidening), so pgarrow does not read its older \
                     files"
                ));
            }
        }
        Ok(())
    }
    walk(schema, "")
}

/// Whether Delta's type widening changes a column of type `from` to `to` (PROTOCOL.md "Type
/// Widening"): integers to wider integers, `float` to `double`, `byte`, `short` or `integer`
/// to `double`, `date` to `timestamp_ntz`, a decimal to one with as many more digits before
/// the point and no fewer after, and an integer to a decimal that holds all its digits.
pub(crate) fn widens(from: &str, to: &str) -> bool {
    let rank = |t: &str| {
        ["byte", "short", "integer", "long"]
            .iter()
            .position(|r| *r == t)
    };
    let decimal = |t: &str| -> Option<(u32, u32)> {
        let inner = t.strip_prefix("decimal(")?.strip_suffix(')')?;
        let (p, s) = inner.split_once(',')?;
        Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
    };
    match (rank(from), rank(to), decimal(from), decimal(to)) {
        (Some(a), Some(b), ..) => a < b,
        (Some(a), None, _, None) => a < 3 && to == "double",
        // An integer to a decimal of as many digits before its point as the integer type can
        // have: the protocol's decimal(10 + k1, k2) for every type up to integer (20 for
        // long), and as Delta's own writer allows, which widened a byte to decimal(4, 1) in
        // delta-kernel-rs's golden table. Every value fits, so the cast is exact either way.
        (Some(a), None, _, Some((p, s))) => {
            let digits = [3, 5, 10, 20][a];
            p >= s && p - s >= digits
        }
        (None, None, Some((p1, s1)), Some((p2, s2))) => p2 >= p1 && s2 >= s1 && p2 - p1 >= s2 - s1,
        _ => matches!((from, to), ("float", "double") | ("date", "timestamp_ntz")),
    }
}

/// The first column `export` gives another type than `table` does, said (unclosed: the
/// caller ends the parenthesis), if any.
pub(crate) fn retyped(table: &Value, export: &Value) -> Option<String> {
    let shown = |t: &Value| match t {
        Value::String(s) => s.clone(),
        other => other
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
    };
    let ours = fields(export);
    fields(table).into_iter().find_map(|(n, t, _)| {
        let (_, o, _) = ours.iter().find(|o| o.0 == n)?;
        (bare(&t) != bare(o)).then(|| {
            format!(
                "column \"{n}\" is {} in the table and {} in the export (Delta changes a \
                 column's type only through its typeWidening feature, which pgarrow does not \
                 write",
                shown(&t),
                shown(o)
            )
        })
    })
}

/// The table's schema after an append of `export`'s columns (by name; the order may differ,
/// as Delta readers match columns by name): `None` when it stays as it is, else the table's
/// columns followed by the export's new ones (nullable: the table's earlier rows have none).
/// A table column the export lacks is NULL in its rows, so it must be nullable.
///
/// # Errors
/// A column of another type in the export (Delta changes a column's type only through its
/// `typeWidening` feature, which pgarrow does not write), or a NOT NULL column it lacks:
/// named.
pub(crate) fn evolve(table: &Value, export: &Value, name: &str) -> Result<Option<Value>> {
    let theirs = fields(table);
    let ours = fields(export);
    let refuse = |what: String| -> Error {
        ErrorKind::Usage(format!("Delta table {name}: {what}; nothing was committed")).into()
    };
    if let Some(what) = retyped(table, export) {
        return Err(refuse(format!("{what}: cast the column in the query)")));
    }
    for (n, _, nullable) in &theirs {
        if !nullable && !ours.iter().any(|o| &o.0 == n) {
            return Err(refuse(format!(
                "its column \"{n}\" holds no NULL (nullable: false), and the export has no \
                 such column"
            )));
        }
    }
    let added: Vec<Value> = export
        .get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|f| {
            let n = f.get("name").and_then(Value::as_str).unwrap_or("");
            !theirs.iter().any(|t| t.0 == n)
        })
        .map(|f| {
            let mut f = f.clone();
            f["nullable"] = Value::Bool(true);
            f
        })
        .collect();
    if added.is_empty() {
        return Ok(None);
    }
    let mut evolved = table.clone();
    if let Some(list) = evolved.get_mut("fields").and_then(Value::as_array_mut) {
        list.extend(added);
    }
    Ok(Some(evolved))
}

/// The top-level columns of `schema` that may hold no NULL.
pub(crate) fn required_columns(schema: &Value) -> Vec<String> {
    fields(schema)
        .into_iter()
        .filter(|(_, _, nullable)| !nullable)
        .map(|(n, ..)| n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn arrow_types_map_to_delta_types() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("d", DataType::Decimal128(10, 2), true),
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new(
                "tz",
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
                true,
            ),
            Field::new_list("l", Field::new("item", DataType::Utf8, true), true),
        ]);
        let got = delta_schema(&schema).unwrap();
        assert!(got.ntz);
        let types: Vec<Value> = fields(&got.json).into_iter().map(|f| f.1).collect();
        assert_eq!(
            types,
            vec![
                json!("long"),
                json!("decimal(10,2)"),
                json!("timestamp_ntz"),
                json!("timestamp"),
                json!({"type": "array", "elementType": "string", "containsNull": true}),
            ]
        );
        assert_eq!(required_columns(&got.json), ["id"]);
        assert_eq!(evolve(&got.json, &got.json, "t").unwrap(), None);
        // Fewer columns (nullable ones) and a new one: the new one is added, nullable.
        let other = delta_schema(&Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("new", DataType::Utf8, false),
        ]))
        .unwrap();
        let evolved = evolve(&got.json, &other.json, "t").unwrap().unwrap();
        let last = fields(&evolved).pop().unwrap();
        assert_eq!(last, ("new".to_owned(), json!("string"), true));
        assert_eq!(fields(&evolved).len(), 6);
        // Another type, or a NOT NULL column missing, is refused by name.
        let narrower =
            delta_schema(&Schema::new(vec![Field::new("id", DataType::Int32, false)])).unwrap();
        let e = evolve(&got.json, &narrower.json, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"id\" is long in the table and integer"), "{e}");
        let none = delta_schema(&Schema::new(vec![Field::new(
            "d",
            DataType::Decimal128(10, 2),
            true,
        )]))
        .unwrap();
        let e = evolve(&got.json, &none.json, "t").unwrap_err().to_string();
        assert!(e.contains("\"id\" holds no NULL"), "{e}");
    }

    #[test]
    fn type_widening_allows_what_the_protocol_allows() {
        for (from, to, allowed) in [
            ("byte", "short", true),
            ("short", "integer", true),
            ("integer", "long", true),
            ("byte", "long", true),
            ("long", "integer", false),
            ("integer", "integer", false),
            ("float", "double", true),
            ("double", "float", false),
            ("integer", "double", true),
            ("long", "double", false),
            ("date", "timestamp_ntz", true),
            ("date", "timestamp", false),
            ("timestamp_ntz", "date", false),
            ("decimal(6,2)", "decimal(10,4)", true),
            ("decimal(6, 2)", "decimal(10, 2)", true),
            ("decimal(6,2)", "decimal(7,4)", false),
            ("decimal(6,2)", "decimal(8,1)", false),
            ("integer", "decimal(10,0)", true),
            ("integer", "decimal(12,2)", true),
            ("integer", "decimal(9,0)", false),
            ("integer", "decimal(10,1)", false),
            // As Delta's writer widens the narrower integers (delta-kernel-rs's golden table).
            ("byte", "decimal(4,1)", true),
            ("byte", "decimal(3,1)", false),
            ("short", "decimal(6,1)", true),
            ("short", "decimal(5,1)", false),
            ("long", "decimal(20,0)", true),
            ("long", "decimal(19,0)", false),
            ("string", "long", false),
            ("integer", "string", false),
        ] {
            assert_eq!(widens(from, to), allowed, "{from} -> {to}");
        }
        let schema = |changes: Value| {
            json!({"type": "struct", "fields": [{"name": "s", "type": {"type": "struct", "fields": [
                {"name": "e", "type": {"type": "array", "elementType": "long"}, "nullable": true,
                 "metadata": {"delta.typeChanges": changes}}]}, "nullable": true, "metadata": {}}]})
        };
        let ok = json!([{"fromType": "short", "toType": "integer", "fieldPath": "element"},
                        {"fromType": "integer", "toType": "long", "fieldPath": "element"}]);
        assert_eq!(type_changes(&schema(ok.clone())), Ok(()));
        assert_eq!(type_changes(&schema(Value::String(ok.to_string()))), Ok(()));
        let e =
            type_changes(&schema(json!([{"fromType": "string", "toType": "long"}]))).unwrap_err();
        assert!(e.contains("\"s.e\" was changed from string to long"), "{e}");
        let e = type_changes(&schema(json!({"fromType": "int"}))).unwrap_err();
        assert!(e.contains("not a list"), "{e}");
        // void items of a list or map, not a void column or struct field.
        assert!(!void_items(&json!("void")));
        assert!(void_items(&json!({"type": "array", "elementType": "void"})));
        assert!(void_items(
            &json!({"type": "struct", "fields": [{"name": "a", "type": {
            "type": "map", "keyType": "string", "valueType": "void"}}]})
        ));
        assert!(!void_items(
            &json!({"type": "struct", "fields": [{"name": "a", "type": "void"}]})
        ));
    }

    #[test]
    fn types_delta_has_no_type_for_take_an_exact_form_named_in_the_metadata() {
        let uuid = Field::new("c", DataType::FixedSizeBinary(16), true).with_metadata(
            std::collections::HashMap::from([(
                "ARROW:extension:name".to_owned(),
                "arrow.uuid".to_owned(),
            )]),
        );
        for (field, ty, form) in [
            (
                Field::new("c", DataType::UInt32, true),
                json!("long"),
                "widened",
            ),
            (
                Field::new("c", DataType::UInt64, true),
                json!("decimal(20,0)"),
                "widened",
            ),
            (uuid, json!("string"), "text"),
            (
                Field::new("c", DataType::Time64(TimeUnit::Microsecond), true),
                json!("string"),
                "text",
            ),
            (
                Field::new("c", DataType::Decimal256(50, 2), true),
                json!("string"),
                "text",
            ),
            (
                Field::new("c", DataType::Float16, true),
                json!("float"),
                "widened",
            ),
        ] {
            let got = delta_schema(&Schema::new(vec![field])).unwrap().json;
            let f = &got["fields"][0];
            assert_eq!(
                (&f["type"], &f["metadata"]["pgarrow.form"]),
                (&ty, &json!(form))
            );
        }
        // An interval is the struct the files hold.
        let schema = Schema::new(vec![Field::new(
            "span",
            DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
            true,
        )]);
        let got = delta_schema(&schema).unwrap().json;
        let names: Vec<&Value> = got["fields"][0]["type"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| &f["name"])
            .collect();
        assert_eq!(
            names,
            [&json!("months"), &json!("days"), &json!("microseconds")]
        );
    }
}
