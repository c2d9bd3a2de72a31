//! A Delta table's current version as an [`Input`]: its live files (from any writer), each
//! with its partition values put back as columns in the table's order, for `pgarrow import`
//! to load into PostgreSQL, without the rows its deletion vectors delete. Under column mapping
//! (`delta.columnMapping.mode` `name` or `id`) the files hold each column, and each field in
//! one, under its physical name (and its ID): they are found so and given the table's names.

use std::sync::Arc;

use arrow_schema::{DataType, Field, TimeUnit};
use pgarrow::io::{Input, InputOptions, Location, StorageOptions, TableFile};
use pgarrow::{Error, ErrorKind, Result};
use serde_json::Value;

use super::{replay, schema};

/// Reader features whose tables pgarrow reads (deletion vectors applied file by file).
const READER_FEATURES: &[&str] = &[
    "columnMapping",
    "timestampNtz",
    "deletionVectors",
    "typeWidening",
    "typeWidening-preview",
    "vacuumProtocolCheck",
    "variantType",
    "variantType-preview",
    "v2Checkpoint",
];

/// The Delta table at `location` (its latest version) as the input of a load.
///
/// # Errors
/// No table there; a table with deletion vectors, column mapping or a reader feature pgarrow
/// does not read (named); a partition column of a type it cannot restore; the files' errors.
pub fn open_delta(
    location: &str,
    storage: &StorageOptions,
    options: &InputOptions,
) -> Result<Input> {
    let root = Location::parse(location, storage)?;
    let refuse = |what: String| -> Error {
        ErrorKind::InvalidInput(format!("Delta table {location}: {what}")).into()
    };
    let Some(table) = replay::load(&root.join("_delta_log"))? else {
        return Err(ErrorKind::Usage(format!(
            "Delta table {location}: there is no table there (no _delta_log commit)"
        ))
        .into());
    };
    let p = &table.protocol;
    if p.min_reader_version > 3 {
        return Err(refuse(format!(
            "it needs Delta reader version {}, past what pgarrow reads",
            p.min_reader_version
        )));
    }
    if let Some(f) = p
        .reader_features
        .iter()
        .flatten()
        .find(|f| !READER_FEATURES.contains(&f.as_str()))
    {
        return Err(refuse(format!(
            "it has the reader feature {f:?}, which pgarrow does not read"
        )));
    }
    let mode = table
        .metadata
        .configuration
        .get("delta.columnMapping.mode")
        .map_or("none", String::as_str);
    if !matches!(mode, "none" | "name" | "id") {
        return Err(refuse(format!(
            "it maps columns in mode {mode:?} (delta.columnMapping.mode), which pgarrow does not \
             know (none, name, id)"
        )));
    }
    let schema: Value = serde_json::from_str(&table.metadata.schema_string)
        .map_err(|e| refuse(format!("its schema is not JSON: {e}")))?;
    let columns = schema::columns(&schema, mode).map_err(refuse)?;
    schema::type_changes(&schema).map_err(refuse)?;
    if let Some(c) = columns.iter().find(|c| schema::void_items(&c.ty)) {
        return Err(refuse(format!(
            "column \"{}\" has void items (in a list or map), which no writer may write and \
             pgarrow does not read",
            c.name
        )));
    }
    let mut partitions = Vec::new();
    for column in &table.metadata.partition_columns {
        let (index, c) = columns
            .iter()
            .enumerate()
            .find(|(_, c)| &c.name == column)
            .ok_or_else(|| {
                refuse(format!(
                    "partition column \"{column}\" is not in its schema"
                ))
            })?;
        let dt = partition_type(&c.ty).ok_or_else(|| {
            refuse(format!(
                "partition column \"{column}\" is of type {}, which pgarrow does not restore",
                c.ty
            ))
        })?;
        // Restored into each file's columns under the name the files give the column, its
        // value by that name in the log.
        partitions.push((
            index,
            Arc::new(Field::new(&c.physical, dt, true)),
            c.physical.clone(),
        ));
    }
    let files = table
        .files
        .values()
        .map(|add| {
            let at = match add.path.contains("://") {
                true => Location::parse(&uri_decode(&add.path), storage)?,
                false => root.join_path(&uri_decode(&add.path)),
            };
            let rows = add
                .stats
                .as_deref()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .and_then(|s| s.get("numRecords")?.as_u64());
            let columns = partitions
                .iter()
                .map(|(index, field, column)| {
                    let value = add.partition_values.get(column).cloned().flatten();
                    // An empty string is a NULL in Delta's partition values.
                    let value = value.filter(|v| !v.is_empty());
                    (*index, field.clone(), value)
                })
                .collect();
            // A deletion vector's rows are left out (its file's own rows counted as they end).
            let deleted = match &add.deletion_vector {
                Some(dv) => super::dv::read(dv, &root, storage)
                    .map_err(|e| e.context(format!("the deletion vector of {}", add.path)))?
                    .iter()
                    .collect(),
                None => Vec::new(),
            };
            Ok(TableFile::new(at, rows, columns).with_deleted(deleted))
        })
        .collect::<Result<Vec<_>>>()?;
    let (schema, file_schema) = table_schema(&columns, &partitions, &files, mode == "id")
        .map_err(|e| e.context(format!("Delta table {location}")))?;
    Ok(Input::open_table_named(
        format!("Delta table {location} (version {})", table.version),
        schema,
        file_schema,
        files,
        Vec::new(),
        options,
    )?)
}

/// The table's Arrow schema, and the same columns as the files name them (under column
/// mapping, each column and each field in one by its physical name, with its ID as a field ID
/// in mode `id`): each column as a file that holds it under the table's type gives it
/// (keeping what the file says of it: pgarrow's PostgreSQL type, an extension), a partition
/// column as its values are restored, else the Arrow type of its Delta type (a column no file
/// holds as the table types it: added or widened since, or `void`, in no file); every field
/// nullable.
fn table_schema(
    columns: &[schema::Column],
    partitions: &[(usize, Arc<Field>, String)],
    files: &[TableFile],
    by_id: bool,
) -> Result<(arrow_schema::SchemaRef, arrow_schema::SchemaRef)> {
    let mut found: Vec<Option<Field>> = vec![None; columns.len()];
    for (k, c) in columns.iter().enumerate() {
        if let Some((_, field, _)) = partitions.iter().find(|p| p.2 == c.physical) {
            found[k] = Some(field.as_ref().clone());
        }
    }
    crate::common::fields_from_files(files, columns, &mut found, |c, f| {
        (f.name() == &c.physical && super::schema::holds(f, &c.file_ty)).then(|| {
            let mut metadata = f.metadata().clone();
            metadata.remove(parquet::arrow::PARQUET_FIELD_ID_META_KEY);
            f.clone().with_nullable(true).with_metadata(metadata)
        })
    })?;
    let mut logical = Vec::with_capacity(columns.len());
    let mut physical = Vec::with_capacity(columns.len());
    for (c, field) in columns.iter().zip(found) {
        let field = match field {
            Some(field) => field,
            None => column_type(&c.file_ty)
                .map(|dt| Field::new(&c.physical, dt, true))
                .ok_or_else(|| {
                    Error::from(ErrorKind::InvalidInput(format!(
                        "no data file holds column \"{}\" as the table types it ({}), and \
                         pgarrow reads that type only from a file that does",
                        c.name, c.ty
                    )))
                })?,
        };
        logical.push(
            Field::new(
                &c.name,
                schema::logical_type(field.data_type(), &c.ty),
                true,
            )
            .with_metadata(field.metadata().clone()),
        );
        let mut metadata = field.metadata().clone();
        if let (true, Some(id)) = (by_id, c.id) {
            metadata.insert(
                parquet::arrow::PARQUET_FIELD_ID_META_KEY.to_owned(),
                id.to_string(),
            );
        }
        physical.push(field.with_metadata(metadata));
    }
    Ok((
        Arc::new(arrow_schema::Schema::new(logical)),
        Arc::new(arrow_schema::Schema::new(physical)),
    ))
}

/// The Arrow type a partition column's values are restored as.
pub(crate) fn partition_type(ty: &Value) -> Option<DataType> {
    Some(match ty.as_str()? {
        "string" => DataType::Utf8,
        "long" => DataType::Int64,
        "integer" => DataType::Int32,
        "short" => DataType::Int16,
        "byte" => DataType::Int8,
        "boolean" => DataType::Boolean,
        "float" => DataType::Float32,
        "double" => DataType::Float64,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "timestamp_ntz" => DataType::Timestamp(TimeUnit::Microsecond, None),
        t => {
            let inner = t.strip_prefix("decimal(")?.strip_suffix(')')?;
            let (p, s) = inner.split_once(',')?;
            DataType::Decimal128(p.trim().parse().ok()?, s.trim().parse().ok()?)
        }
    })
}

/// The Arrow type of a column of Delta type `ty` that no data file holds as the table types
/// it, its nested fields named as `ty` names them: `void` as nulls (`Null`, a struct's field
/// too: the files lack it), a nested type of its fields' types (a list's item `element`, a
/// map's entries `key_value`, as Parquet names them); `None` for a type pgarrow reads only
/// from a file that holds it (a list's or map's `void`, which no writer may write, `variant`).
pub(crate) fn column_type(ty: &Value) -> Option<DataType> {
    let nested = |ty: &Value| match ty.as_str() {
        Some("void") => None,
        _ => column_type(ty),
    };
    match ty.get("type").and_then(Value::as_str) {
        Some("struct") => {
            let fields = ty["fields"].as_array()?;
            let fields: Option<Vec<Field>> = fields
                .iter()
                .map(|f| {
                    Some(Field::new(
                        f["name"].as_str()?,
                        column_type(&f["type"])?,
                        true,
                    ))
                })
                .collect();
            Some(DataType::Struct(fields?.into()))
        }
        Some("array") => Some(DataType::List(Arc::new(Field::new(
            "element",
            nested(&ty["elementType"])?,
            true,
        )))),
        Some("map") => {
            let entries = DataType::Struct(
                vec![
                    Field::new("key", nested(&ty["keyType"])?, false),
                    Field::new("value", nested(&ty["valueType"])?, true),
                ]
                .into(),
            );
            Some(DataType::Map(
                Arc::new(Field::new("key_value", entries, false)),
                false,
            ))
        }
        _ => match ty.as_str()? {
            "void" => Some(DataType::Null),
            "binary" => Some(DataType::Binary),
            _ => partition_type(ty),
        },
    }
}

/// A log path's percent-encoding undone.
pub(crate) fn uri_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths_decode_to_the_files_names() {
        assert_eq!(uri_decode("k=a%252Fb/p%20q.parquet"), "k=a%2Fb/p q.parquet");
        assert_eq!(uri_decode("100%"), "100%");
        assert_eq!(
            partition_type(&Value::from("decimal(10, 2)")),
            Some(DataType::Decimal128(10, 2))
        );
        assert_eq!(partition_type(&Value::from("binary")), None);
    }

    #[test]
    fn columns_no_file_holds_take_their_delta_types() {
        assert_eq!(column_type(&Value::from("void")), Some(DataType::Null));
        assert_eq!(column_type(&Value::from("long")), Some(DataType::Int64));
        let ty = serde_json::json!({"type": "struct", "fields": [
            {"name": "a", "type": "long"},
            {"name": "l", "type": {"type": "array", "elementType": "double"}},
            {"name": "m", "type": {"type": "map", "keyType": "string", "valueType": "date"}},
        ]});
        let DataType::Struct(fields) = column_type(&ty).unwrap() else {
            panic!("a struct");
        };
        let types: Vec<String> = fields
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect();
        assert_eq!(types.len(), 3);
        assert_eq!(fields[0].data_type(), &DataType::Int64);
        assert_eq!(
            fields[1].data_type(),
            &DataType::List(Arc::new(Field::new("element", DataType::Float64, true)))
        );
        assert!(
            matches!(fields[2].data_type(), DataType::Map(e, false) if e.name() == "key_value"),
            "{types:?}"
        );
        // A struct's void field is nulls; a list's void items are read only from a file that
        // holds them (none may).
        let with_void =
            serde_json::json!({"type": "struct", "fields": [{"name": "v", "type": "void"}]});
        assert_eq!(
            column_type(&with_void),
            Some(DataType::Struct(
                vec![Field::new("v", DataType::Null, true)].into()
            ))
        );
        let inner = serde_json::json!({"type": "array", "elementType": "void"});
        assert_eq!(column_type(&inner), None);
    }
}
