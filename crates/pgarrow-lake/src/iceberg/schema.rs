//! An Iceberg table's schema from an export's Arrow schema, by the mapping the docs give: each
//! Arrow type to the Iceberg (format version 2) type whose Parquet form pgarrow's files hold,
//! numbered as the files' field IDs number them, a type Iceberg has no type for first given its
//! exact form (`crate::common::value_forms`), and what no form reaches (nanosecond timestamps,
//! which pgarrow does not export) refused by column.

use std::collections::BTreeMap;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use pgarrow::io::FieldIds;
use pgarrow::{Error, ErrorKind, Result};

use super::spec::{self, NestedField, Type};

/// An export's schema as an Iceberg table's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IcebergSchema {
    /// The fields of the `struct`.
    pub(crate) fields: Vec<NestedField>,
    /// The highest field ID.
    pub(crate) last_id: i32,
    /// Every primitive field's type by its ID (`"long"`, `"decimal(10, 2)"`).
    pub(crate) types: BTreeMap<i32, String>,
}

impl IcebergSchema {
    /// The schema as the table metadata holds it, with its ID.
    pub(crate) fn schema(&self, id: i64) -> spec::Schema {
        spec::Schema::new(id, self.fields.clone())
    }

    /// The ID of top-level column `name`.
    pub(crate) fn id_of(&self, name: &str) -> Option<i64> {
        self.fields.iter().find(|f| f.name == name).map(|f| f.id)
    }
}

/// The Iceberg schema of `schema`, numbered as [`pgarrow::io::with_field_ids_from`] numbers
/// a file's fields with `ids`.
///
/// # Errors
/// A column of a type no form of Iceberg's holds (none that pgarrow's export makes), named.
pub(crate) fn iceberg_schema(schema: &Schema, ids: &FieldIds) -> Result<IcebergSchema> {
    let schema = crate::common::lake_schema(schema, crate::common::Format::Iceberg);
    let numbered = pgarrow::io::with_field_ids_from(&schema, ids);
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

fn field_json(field: &Field, path: &str, out: &mut IcebergSchema) -> Result<NestedField> {
    let id = id(field)?;
    out.last_id = out.last_id.max(id);
    let ty = type_json(field, id, path, out)?;
    Ok(NestedField::new(
        i64::from(id),
        field.name(),
        !field.is_nullable(),
        ty,
    ))
}

fn type_json(field: &Field, id: i32, path: &str, out: &mut IcebergSchema) -> Result<Type> {
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
        // An enum's labels (Parquet holds the text, dictionary-encoded).
        DataType::Dictionary(_, value)
            if matches!(**value, DataType::Utf8 | DataType::LargeUtf8) =>
        {
            "string".into()
        }
        // A file pgarrow wrote names the type in the field's metadata, without the extension.
        DataType::FixedSizeBinary(16)
            if extension == Some("arrow.uuid")
                || field
                    .metadata()
                    .get(pgarrow::types::META_PG_TYPE)
                    .map(String::as_str)
                    == Some("uuid") =>
        {
            "uuid".into()
        }
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
            return Ok(Type::List {
                element_id: i64::from(element_id),
                element: Box::new(type_json(child, element_id, &format!("{path}[]"), out)?),
                element_required: !child.is_nullable(),
            });
        }
        DataType::Struct(children) => {
            let fields = children
                .iter()
                .map(|c| field_json(c, &format!("{path}.{}", c.name()), out))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Type::Struct(fields));
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
            return Ok(Type::Map {
                key_id: i64::from(key_id),
                key: Box::new(type_json(key, key_id, &format!("{path}.key"), out)?),
                value_id: i64::from(value_id),
                value: Box::new(type_json(value, value_id, &format!("{path}.value"), out)?),
                value_required: !value.is_nullable(),
            });
        }
        other => {
            return Err(refuse(&format!(
                "Iceberg has no type for {other}: cast the column in the query"
            )));
        }
    };
    out.types.insert(id, primitive.clone());
    Ok(Type::Primitive(primitive))
}

/// The field IDs of a table's schema (its `fields`) by path, for the export's files to keep;
/// new fields numbered after `last_column_id`.
pub(crate) fn known_ids(fields: &[NestedField], last_column_id: i64) -> FieldIds {
    fn put(path: &[String], name: &str, id: i64, ty: &Type, out: &mut FieldIds) {
        let path = [path, &[name.to_owned()]].concat();
        if let Ok(id) = i32::try_from(id) {
            out.known.insert(path.clone(), id);
        }
        walk(ty, &path, out);
    }
    fn walk(ty: &Type, path: &[String], out: &mut FieldIds) {
        match ty {
            Type::Struct(fields) => {
                for f in fields {
                    put(path, &f.name, f.id, &f.ty, out);
                }
            }
            Type::List {
                element_id,
                element,
                ..
            } => put(path, "element", *element_id, element, out),
            Type::Map {
                key_id,
                key,
                value_id,
                value,
                ..
            } => {
                put(path, "key", *key_id, key, out);
                put(path, "value", *value_id, value, out);
            }
            Type::Primitive(_) => {}
        }
    }
    let mut out = FieldIds {
        known: Default::default(),
        next: i32::try_from(last_column_id).unwrap_or(0) + 1,
    };
    for f in fields {
        put(&[], &f.name, f.id, &f.ty, &mut out);
    }
    out
}

/// Every primitive field's type by its ID, in `fields`.
pub(crate) fn primitive_types(fields: &[NestedField]) -> BTreeMap<i32, String> {
    fn walk(ty: &Type, id: i64, out: &mut BTreeMap<i32, String>) {
        match ty {
            Type::Primitive(t) => {
                if let Ok(id) = i32::try_from(id) {
                    out.insert(id, t.clone());
                }
            }
            Type::Struct(fields) => {
                for f in fields {
                    walk(&f.ty, f.id, out);
                }
            }
            Type::List {
                element_id,
                element,
                ..
            } => walk(element, *element_id, out),
            Type::Map {
                key_id,
                key,
                value_id,
                value,
                ..
            } => {
                walk(key, *key_id, out);
                walk(value, *value_id, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    for f in fields {
        walk(&f.ty, f.id, &mut out);
    }
    out
}

/// Of a table column's type and the export's, the one the table takes: the same, or the
/// wider of two Iceberg lets a column be promoted between (`int` and `long`, `float` and
/// `double`, decimals of one scale); `None` for any other pair.
fn merged_type(table: &Type, ours: &Type) -> Option<Type> {
    if table.same_as(ours) {
        return Some(table.clone());
    }
    let (t, o) = (table.primitive()?, ours.primitive()?);
    let wider = |a: &str, b: &str| -> Option<&str> {
        match (a, b) {
            ("int", "long") | ("long", "int") => Some("long"),
            ("float", "double") | ("double", "float") => Some("double"),
            _ => None,
        }
    };
    if let Some(w) = wider(t, o) {
        return Some(Type::Primitive(w.to_owned()));
    }
    let (tp, ts) = super::manifest::decimal_of(t)?;
    let (op, os) = super::manifest::decimal_of(o)?;
    (ts == os).then(|| Type::Primitive(format!("decimal({}, {ts})", tp.max(op))))
}

/// The table's columns after this export: an append keeps the table's and adds the export's
/// new ones (optional, after the others), promoting a column whose export type is wider; a
/// replace takes the export's columns (keeping the IDs of those of the same name). `None`
/// when they are the table's as they are; an error naming the column the table cannot take.
pub(crate) fn evolve(
    table: &spec::Schema,
    ours: &IcebergSchema,
    replace: bool,
) -> std::result::Result<Option<Vec<NestedField>>, String> {
    let theirs = &table.fields;
    let mut out: Vec<NestedField> = if replace { Vec::new() } else { theirs.clone() };
    for field in &ours.fields {
        let name = field.name.as_str();
        let Some(t) = theirs.iter().find(|t| t.name == name) else {
            let mut added = field.clone();
            added.required = false;
            out.push(added);
            continue;
        };
        let merged = merged_type(&t.ty, &field.ty).ok_or_else(|| {
            format!(
                "column \"{name}\" is {} in the table, and {} in the export: Iceberg changes a \
                 column's type only from int to long, float to double, or to a decimal of more \
                 digits",
                t.ty, field.ty
            )
        })?;
        if replace {
            let mut kept = field.clone();
            kept.ty = merged;
            kept.required = false;
            out.push(kept);
        } else {
            if t.required && !field.required {
                return Err(format!(
                    "column \"{name}\" is required in the table, and may be NULL in the export"
                ));
            }
            if let Some(slot) = out.iter_mut().find(|o| o.name == name) {
                slot.ty = merged;
            }
        }
    }
    if !replace
        && let Some(t) = theirs
            .iter()
            .find(|t| t.required && !ours.fields.iter().any(|f| f.name == t.name))
    {
        return Err(format!(
            "the table requires column {:?}, which the export does not have",
            t.name
        ));
    }
    let same = out.len() == theirs.len()
        && out
            .iter()
            .zip(theirs)
            .all(|(a, b)| a.name == b.name && a.id == b.id && a.ty.same_as(&b.ty));
    Ok((!same).then_some(out))
}

/// Whether a file's `field` (with its field ID) holds the values of the table's column
/// `table_field` as they are: the type pgarrow would give it is the column's, nested IDs
/// included.
pub(crate) fn holds(field: &Field, table_field: &NestedField) -> bool {
    let mut out = IcebergSchema {
        fields: Vec::new(),
        last_id: 0,
        types: BTreeMap::new(),
    };
    let Ok(id) = id(field) else {
        return false;
    };
    i64::from(id) == table_field.id
        && type_json(field, id, field.name(), &mut out).is_ok_and(|t| t.same_as(&table_field.ty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::sync::Arc;

    /// Fields as the table metadata spells them.
    fn fj(fields: &[NestedField]) -> Value {
        serde_json::to_value(fields).unwrap()
    }

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
        let s = iceberg_schema(&schema, &FieldIds::default()).unwrap();
        assert_eq!(
            fj(&s.fields)[0],
            json!({"id": 1, "name": "id", "required": true, "type": "long"})
        );
        assert_eq!(fj(&s.fields)[1]["type"], json!("decimal(10, 2)"));
        assert_eq!(
            fj(&s.fields)[2]["type"],
            json!({"type": "list", "element-id": 5, "element": "string", "element-required": false})
        );
        assert_eq!(fj(&s.fields)[3]["id"], json!(4));
        assert_eq!(s.last_id, 5);
        assert_eq!(s.types[&4], "timestamptz");
        assert_eq!(s.id_of("t"), Some(4));
        // The same columns: nothing to change; numbered by the table's IDs.
        assert_eq!(evolve(&s.schema(0), &s, false), Ok(None));
        let ids = known_ids(&s.fields, 5);
        assert_eq!(ids.known[&vec!["l".to_owned(), "element".to_owned()]], 5);
        assert_eq!(ids.next, 6);
        // A new column and a wider type: added and promoted, the others kept.
        let wider = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Utf8, true),
            Field::new("d", DataType::Decimal128(12, 2), true),
        ]);
        let w = iceberg_schema(&wider, &ids).unwrap();
        assert_eq!(w.id_of("x"), Some(6));
        assert_eq!(w.id_of("d"), Some(2));
        let fields = evolve(&s.schema(0), &w, false).unwrap().unwrap();
        assert_eq!(fields.len(), 5);
        assert_eq!(fj(&fields)[1]["type"], json!("decimal(12, 2)"));
        assert_eq!(fj(&fields)[4]["name"], json!("x"));
        assert_eq!(fj(&fields)[4]["required"], json!(false));
        assert_eq!(primitive_types(&fields)[&6], "string");
        // A replace takes the export's columns.
        let replaced = evolve(&s.schema(0), &w, true).unwrap().unwrap();
        assert_eq!(replaced.len(), 3);
        // Another type: refused, naming the column; a required column missing, too.
        let other = iceberg_schema(
            &Schema::new(vec![Field::new("id", DataType::Utf8, true)]),
            &ids,
        )
        .unwrap();
        assert!(
            evolve(&s.schema(0), &other, false)
                .unwrap_err()
                .contains("\"id\"")
        );
        let none = iceberg_schema(
            &Schema::new(vec![Field::new("x", DataType::Utf8, true)]),
            &ids,
        )
        .unwrap();
        assert!(
            evolve(&s.schema(0), &none, false)
                .unwrap_err()
                .contains("requires")
        );
    }

    #[test]
    fn types_iceberg_cannot_hold_are_refused_by_column_and_the_others_take_a_form() {
        for (ty, want) in [
            (DataType::UInt32, "long"),
            (DataType::UInt64, "decimal(20, 0)"),
            (DataType::Decimal256(50, 2), "string"),
            (DataType::Float16, "float"),
        ] {
            let s = iceberg_schema(
                &Schema::new(vec![Field::new("c", ty, true)]),
                &FieldIds::default(),
            )
            .unwrap();
            assert_eq!(fj(&s.fields)[0]["type"], json!(want));
        }
        let s = iceberg_schema(
            &Schema::new(vec![
                Field::new(
                    "span",
                    DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
                    true,
                ),
                Field::new("after", DataType::Int32, true),
            ]),
            &FieldIds::default(),
        )
        .unwrap();
        assert_eq!(fj(&s.fields)[0]["type"]["type"], json!("struct"));
        assert_eq!(
            fj(&s.fields)[0]["type"]["fields"][2]["name"],
            json!("microseconds")
        );
        // Numbered as the files number them: the columns first, then the struct's fields.
        assert_eq!(fj(&s.fields)[1]["id"], json!(2));
        assert_eq!(fj(&s.fields)[0]["type"]["fields"][0]["id"], json!(3));
        assert_eq!(s.last_id, 5);
        // What pgarrow never writes is still refused, named.
        let e = iceberg_schema(
            &Schema::new(vec![Field::new(
                "c",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                true,
            )]),
            &FieldIds::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("column \"c\""), "{e}");
        assert!(e.to_string().contains("microseconds"), "{e}");
    }
}
