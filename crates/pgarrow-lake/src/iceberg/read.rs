//! An Iceberg table's current snapshot as an [`Input`]: its live data files (of any writer),
//! without the rows its deletes delete (position delete files, format version 3's deletion
//! vectors, equality delete files), each file read as the table's current schema (by field
//! ID, or through the table's name mapping for files without IDs), for `pgarrow import` to
//! load into PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use pgarrow::io::{Input, InputOptions, StorageOptions, TableFile};
use pgarrow::{Error, ErrorKind, Result};
use serde_json::Value as Json;

use super::IcebergCatalog;
use super::blocking;
use super::catalog::Catalog;
use super::connected::Connected;
use super::spec::{NestedField, TableMetadata, Type};
use crate::avro::{self, Value};

/// The Iceberg table `namespace.table` of `catalog` (a REST catalog, or an SQL catalog's
/// database, `catalog_name` in it) (its current snapshot) as the input of a load.
///
/// # Errors
/// No such table; a table without a snapshot; equality delete files in its snapshot (named);
/// data files that are not Parquet; the catalog's and the files' errors.
pub async fn open_iceberg(
    catalog: &IcebergCatalog,
    catalog_name: &str,
    namespace: &str,
    table: &str,
    storage: &StorageOptions,
    options: &InputOptions,
) -> Result<Input> {
    let name = format!("{namespace}.{table}");
    let refuse = |what: String| -> Error {
        ErrorKind::InvalidInput(format!("Iceberg table {name}: {what}")).into()
    };
    let mut db = Connected::connect(catalog, catalog_name, storage).await?;
    let loaded = db.load(namespace, table).await;
    let storage = &db.storage().clone();
    db.close().await;
    let Some(loaded) = loaded? else {
        return Err(ErrorKind::Usage(format!(
            "Iceberg table {name}: the catalog {catalog_name:?} has no such table"
        ))
        .into());
    };
    let meta = loaded.metadata;
    let fields = meta
        .current_schema()
        .map(|s| s.fields.clone())
        .ok_or_else(|| refuse("its metadata has no current schema".into()))?;
    // No snapshot (-1, or none): a table of no rows, of its columns.
    let Some(id) = meta.current_snapshot_id() else {
        let schema = table_schema(&fields, &[])?;
        return Ok(Input::open_table_as(
            format!("Iceberg table {name} (no snapshot)"),
            schema,
            Vec::new(),
            Vec::new(),
            options,
        )?);
    };
    let snap = meta
        .snapshot(id)
        .ok_or_else(|| refuse(format!("its current snapshot {id} is not in its metadata")))?;
    let list = snap
        .manifest_list
        .clone()
        .ok_or_else(|| refuse(format!("snapshot {id} has no manifest list")))?;
    // What a file that lacks a column holds in it: an identity partition's value from the
    // file's partition tuple (writers may leave such columns out of the files), else the
    // column's `initial-default` (files written before it was added). Never NULL in their
    // place.
    let identity = identity_columns(&meta, &fields);
    let defaults = initial_defaults(&fields).map_err(&refuse)?;
    let nested_defaults = nested_defaults(&fields).map_err(&refuse)?;
    let names = name_mapping(&meta).map_err(&refuse)?.map(Arc::new);
    let storage2 = storage.clone();
    // Each column's Iceberg type, for the partition values the tuple holds as bytes.
    let fields_of: Vec<Type> = fields.iter().map(|f| f.ty.clone()).collect();
    let files = blocking(move || {
        snapshot_files(&list, &storage2)?
            .into_iter()
            .map(|f| {
                let mut file =
                    TableFile::new(crate::iceberg::located(&f.path, &storage2)?, f.rows, Vec::new())
                        .with_deleted(f.deleted);
                for (partition, index) in &identity {
                    // A NULL partition is a NULL value (not the column's default); a tuple
                    // without the field (another spec's file) says nothing.
                    let held = matches!(&f.partition, Value::Record(fs) if fs.iter().any(|(n, _)| n == partition));
                    match avro_scalar(f.partition.get(partition), &fields_of[*index]) {
                        Some(value) => file = file.with_absent(*index, value),
                        None if held => {
                            file = file.with_absent(*index, arrow_array::new_null_array(&DataType::Null, 1))
                        }
                        None => {}
                    }
                }
                for (index, value) in &defaults {
                    file = file.with_absent(*index, value.clone());
                }
                for (id, value) in &nested_defaults {
                    file = file.with_default(*id, value.clone());
                }
                if let Some(names) = &names {
                    file = file.with_names(names.clone());
                }
                Ok(file)
            })
            .collect::<Result<Vec<_>>>()
    })
    .await
    .map_err(|e| e.context(format!("Iceberg table {name}")))?;
    let schema = blocking(move || table_schema(&fields, &files).map(|s| (s, files)))
        .await
        .map_err(|e| e.context(format!("Iceberg table {name}")))?;
    let (schema, files) = schema;
    Ok(Input::open_table_as(
        format!("Iceberg table {name} (snapshot {id})"),
        schema,
        files,
        Vec::new(),
        options,
    )?)
}

/// The identity partition fields of every partition spec, by the name the partition tuples
/// give them, with the place of their source column among `fields`.
fn identity_columns(meta: &TableMetadata, fields: &[NestedField]) -> Vec<(String, usize)> {
    meta.partition_specs
        .iter()
        .flat_map(|spec| &spec.fields)
        .filter(|f| f.transform == "identity")
        .filter_map(|f| {
            let index = fields.iter().position(|c| c.id == f.source_id)?;
            Some((f.name.clone(), index))
        })
        .collect()
}

/// Each column's `initial-default` (the value of the rows written before it was added), as a
/// one-row array of its JSON form (the specification's single-value serialization), cast to
/// the column's type as a file's rows are read.
///
/// # Errors
/// A default of a form no cast reads (an object or an array: a nested default), named.
fn initial_defaults(
    fields: &[NestedField],
) -> std::result::Result<Vec<(usize, arrow_array::ArrayRef)>, String> {
    let mut out = Vec::new();
    for (index, f) in fields.iter().enumerate() {
        if let Some(value) = initial_default(f)? {
            out.push((index, value));
        }
    }
    Ok(out)
}

/// The `initial-default` of every field nested in a column (a struct's fields, at any depth,
/// list elements' and map values' included), by field ID (see [`initial_defaults`]).
///
/// # Errors
/// A default of a form no cast reads, named.
fn nested_defaults(
    fields: &[NestedField],
) -> std::result::Result<Vec<(i64, arrow_array::ArrayRef)>, String> {
    fn walk(
        ty: &Type,
        out: &mut Vec<(i64, arrow_array::ArrayRef)>,
    ) -> std::result::Result<(), String> {
        match ty {
            Type::Struct(fields) => {
                for f in fields {
                    if let Some(value) = initial_default(f)? {
                        out.push((f.id, value));
                    }
                    walk(&f.ty, out)?;
                }
            }
            Type::List { element, .. } => walk(element, out)?,
            Type::Map { key, value, .. } => {
                walk(key, out)?;
                walk(value, out)?;
            }
            Type::Primitive(_) => {}
        }
        Ok(())
    }
    let mut out = Vec::new();
    for f in fields {
        walk(&f.ty, &mut out)?;
    }
    Ok(out)
}

/// A field's `initial-default` as a one-row array; `None` without one.
fn initial_default(f: &NestedField) -> std::result::Result<Option<arrow_array::ArrayRef>, String> {
    use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
    {
        let Some(default) = f.initial_default() else {
            return Ok(None);
        };
        let value: ArrayRef = match default {
            Json::Null => return Ok(None),
            Json::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Arc::new(Int64Array::from(vec![i])),
                None => Arc::new(Float64Array::from(vec![n.as_f64().unwrap_or(f64::NAN)])),
            },
            // Binary and fixed defaults are hex, a uuid's its text: their bytes.
            Json::String(text) if is_bytes_type(&f.ty) => {
                let hex: String = text.chars().filter(|c| *c != '-').collect();
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| {
                        hex.get(i..i + 2)
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                    })
                    .collect::<Option<Vec<u8>>>()
                    .filter(|_| hex.len().is_multiple_of(2))
                    .ok_or_else(|| {
                        format!(
                            "column {:?} has the initial default {text:?}, which is not hex",
                            f.name
                        )
                    })?;
                Arc::new(arrow_array::BinaryArray::from(vec![bytes.as_slice()]))
            }
            Json::String(text) => Arc::new(StringArray::from(vec![text.as_str()])),
            other => {
                return Err(format!(
                    "column {:?} has the initial default {other}, which pgarrow does not read yet",
                    f.name
                ));
            }
        };
        Ok(Some(value))
    }
}

/// The table's name mapping (`schema.name-mapping.default`: the names of each field ID in
/// files written without field IDs), if it has one.
///
/// # Errors
/// A mapping that is not the specification's JSON, named.
fn name_mapping(
    meta: &TableMetadata,
) -> std::result::Result<Option<pgarrow::io::NameMapping>, String> {
    // The mapping is JSON of its own inside a property's text (the specification's
    // "Column Projection" section): a list of fields, each of an optional ID and its names.
    #[derive(serde::Deserialize)]
    struct Mapped {
        #[serde(rename = "field-id", default)]
        field_id: Option<i64>,
        names: Vec<String>,
        #[serde(default)]
        fields: Option<Vec<Mapped>>,
    }
    fn fields(list: Vec<Mapped>) -> Vec<pgarrow::io::MappedField> {
        list.into_iter()
            .map(|m| pgarrow::io::MappedField {
                id: m.field_id,
                names: m.names,
                fields: fields(m.fields.unwrap_or_default()),
            })
            .collect()
    }
    let Some(text) = meta.property("schema.name-mapping.default") else {
        return Ok(None);
    };
    serde_json::from_str::<Vec<Mapped>>(text)
        .map(|list| Some(pgarrow::io::NameMapping(fields(list))))
        .map_err(|e| {
            format!("its name mapping (schema.name-mapping.default) is not one ({e}): {text}")
        })
}

/// Whether an Iceberg type's JSON values are bytes spelled as hex (or a uuid's text).
fn is_bytes_type(ty: &Type) -> bool {
    ty.primitive()
        .is_some_and(|t| t == "binary" || t == "uuid" || t.starts_with("fixed["))
}

/// A partition tuple's value as a one-row array (a date as its days, a timestamp as its
/// microseconds: each casts to the column's type; a decimal's unscaled big-endian bytes as the
/// column's decimal `ty`); `None` for a NULL partition.
fn avro_scalar(value: &Value, ty: &Type) -> Option<arrow_array::ArrayRef> {
    if let (Value::Bytes(b), Some((p, s))) = (value, decimal_type(ty))
        && !b.is_empty()
        && b.len() <= 16
    {
        // Two's complement, big-endian, sign-extended to 128 bits.
        let fill = if b[0] & 0x80 != 0 { 0xff } else { 0 };
        let mut bytes = [fill; 16];
        bytes[16 - b.len()..].copy_from_slice(b);
        // A precision the decimal cannot have leaves the bytes to the cast, which names them
        // (never a NULL in their place).
        if let Ok(array) = arrow_array::Decimal128Array::from(vec![i128::from_be_bytes(bytes)])
            .with_precision_and_scale(p, s)
        {
            return Some(Arc::new(array));
        }
    }
    avro_plain(value)
}

/// An Iceberg `decimal(P, S)` type's precision and scale.
fn decimal_type(ty: &Type) -> Option<(u8, i8)> {
    let t = ty.primitive()?.replace(' ', "");
    let (p, s) = t
        .strip_prefix("decimal(")?
        .strip_suffix(')')?
        .split_once(',')?;
    Some((p.parse().ok()?, s.parse().ok()?))
}

/// A partition tuple's value of a plain Avro type as a one-row array.
fn avro_plain(value: &Value) -> Option<arrow_array::ArrayRef> {
    use arrow_array::{
        BinaryArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, StringArray,
    };
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Value::Int(n) => Arc::new(Int32Array::from(vec![*n])),
        Value::Long(n) => Arc::new(Int64Array::from(vec![*n])),
        Value::Float(x) => Arc::new(Float32Array::from(vec![*x])),
        Value::Double(x) => Arc::new(Float64Array::from(vec![*x])),
        Value::String(t) => Arc::new(StringArray::from(vec![t.as_str()])),
        Value::Bytes(b) => Arc::new(BinaryArray::from(vec![b.as_slice()])),
        // A record, array or map is no partition value: left to the file.
        Value::Record(_) | Value::Array(_) | Value::Map(_) => return None,
    })
}

/// A live data file of a snapshot.
pub(crate) struct SnapshotFile {
    pub(crate) path: String,
    pub(crate) rows: Option<u64>,
    pub(crate) bytes: u64,
    /// The positions its position delete files delete, ascending.
    pub(crate) deleted: Vec<u64>,
    /// Its partition tuple, as its manifest entry holds it.
    pub(crate) partition: Value,
}

/// The live data files of the snapshot whose manifest list is at `list`, each with the
/// positions deleted from it: by every position delete file of the snapshot whose data
/// sequence number is at least the data file's (the specification's rule). Blocking.
///
/// Equality delete files are applied too ([`super::equality`]).
///
/// # Errors
/// Data files that are not Parquet; the files' errors.
pub(crate) fn snapshot_files(list: &str, storage: &StorageOptions) -> Result<Vec<SnapshotFile>> {
    let entries = avro::read_file(&crate::iceberg::located(list, storage)?.read()?)?.records;
    let mut live = LiveEntries::default();
    for m in &entries {
        live.read_manifest(m, storage)?;
    }
    let gone = position_deletes(&live.deletes, storage)?;
    let mut vectored = deletion_vectors(&live.vectors, storage)?;
    // The rows equality deletes delete, by position in each data file they apply to.
    let targets: Vec<super::equality::Target<'_>> = live
        .data
        .iter()
        .map(|d| super::equality::Target {
            path: &d.path,
            sequence: d.sequence,
            spec_id: d.spec_id,
            partition: &d.partition,
        })
        .collect();
    let mut by_value = super::equality::positions(&targets, &live.equality, storage)?;
    let mut data = live.data;
    // Oldest first (by data sequence number): a file's place says when it was written.
    data.sort_by_key(|d| d.sequence);
    Ok(data
        .into_iter()
        .map(|d| {
            let mut deleted: Vec<u64> = match vectored.remove(&d.path) {
                Some((s, positions)) if s >= d.sequence => positions,
                _ => gone
                    .get(&d.path)
                    .into_iter()
                    .flatten()
                    .filter(|(s, _)| *s >= d.sequence)
                    .flat_map(|(_, p)| p.iter().copied())
                    .collect(),
            };
            deleted.extend(by_value.remove(&d.path).unwrap_or_default());
            deleted.sort_unstable();
            deleted.dedup();
            SnapshotFile {
                path: d.path,
                rows: d.rows,
                bytes: d.bytes,
                deleted,
                partition: d.partition,
            }
        })
        .collect())
}

/// A data file's live manifest entry.
struct DataEntry {
    path: String,
    rows: Option<u64>,
    bytes: u64,
    /// Its data sequence number.
    sequence: i64,
    partition: Value,
    /// Its partition spec's ID.
    spec_id: i64,
}

/// The live entries of a snapshot's manifests, by content.
#[derive(Default)]
struct LiveEntries {
    data: Vec<DataEntry>,
    /// Position delete files, each with its data sequence number.
    deletes: Vec<(String, i64)>,
    vectors: Vec<Vector>,
    equality: Vec<super::equality::EqualityDelete>,
}

impl LiveEntries {
    /// Adds the live entries of the manifest that `m`, an entry of a manifest list, names.
    ///
    /// # Errors
    /// Files that are not Parquet (deletion vectors aside), or of a content pgarrow does not
    /// know; an entry that lacks what its content needs; the files' errors.
    fn read_manifest(&mut self, m: &Value, storage: &StorageOptions) -> Result<()> {
        let path = m.get("manifest_path").as_str().unwrap_or_default();
        let spec_id = m.get("partition_spec_id").as_i64().unwrap_or(0);
        // Entries without a sequence number of their own inherit their manifest's.
        let inherited = m.get("sequence_number").as_i64().unwrap_or(0);
        let manifest = avro::read_file(&crate::iceberg::located(path, storage)?.read()?)?;
        for entry in &manifest.records {
            // 2: deleted by this manifest's snapshot.
            if entry.get("status").as_i64() == Some(2) {
                continue;
            }
            let sequence = entry.get("sequence_number").as_i64().unwrap_or(inherited);
            self.add(entry.get("data_file"), sequence, spec_id)?;
        }
        Ok(())
    }

    /// Adds the live entry's `file`, of data sequence number `sequence` and partition spec
    /// `spec_id`, by its content.
    fn add(&mut self, file: &Value, sequence: i64, spec_id: i64) -> Result<()> {
        let file_path = file
            .get("file_path")
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let format = file.get("file_format").as_str().unwrap_or_default();
        let content = file.get("content").as_i64().unwrap_or(0);
        // A deletion vector (format version 3): a blob of a Puffin file.
        if content == 1 && format.eq_ignore_ascii_case("puffin") {
            self.vectors.push(Vector::of(file, file_path, sequence)?);
            return Ok(());
        }
        if !format.eq_ignore_ascii_case("parquet") {
            return Err(ErrorKind::InvalidInput(format!(
                "its file {file_path} is {format}, and pgarrow reads Parquet"
            ))
            .into());
        }
        match content {
            0 => self.data.push(DataEntry {
                rows: file
                    .get("record_count")
                    .as_i64()
                    .and_then(|n| u64::try_from(n).ok()),
                bytes: file
                    .get("file_size_in_bytes")
                    .as_i64()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                path: file_path,
                sequence,
                partition: file.get("partition").clone(),
                spec_id,
            }),
            1 => self.deletes.push((file_path, sequence)),
            2 => self
                .equality
                .push(equality_delete(file, file_path, sequence, spec_id)?),
            other => {
                return Err(ErrorKind::InvalidInput(format!(
                    "its file {file_path} is of content {other}, which pgarrow does not know"
                ))
                .into());
            }
        }
        Ok(())
    }
}

/// The equality delete file `file` at `path`, of data sequence number `sequence` and
/// partition spec `spec_id`.
///
/// # Errors
/// A file that names no equality column.
fn equality_delete(
    file: &Value,
    path: String,
    sequence: i64,
    spec_id: i64,
) -> Result<super::equality::EqualityDelete> {
    let ids: Vec<i32> = match file.get("equality_ids") {
        Value::Array(ids) => ids
            .iter()
            .filter_map(|v| v.as_i64().and_then(|n| i32::try_from(n).ok()))
            .collect(),
        _ => Vec::new(),
    };
    if ids.is_empty() {
        return Err(ErrorKind::InvalidInput(format!(
            "its equality delete file {path} names no equality column"
        ))
        .into());
    }
    Ok(super::equality::EqualityDelete {
        path,
        sequence,
        spec_id,
        partition: file.get("partition").clone(),
        ids,
    })
}

/// Positions deleted from a data file, with the data sequence number of the delete file or
/// deletion vector that deletes them.
type Sequenced = (i64, Vec<u64>);

/// Each data file's deleted positions from the position delete files `deletes`, with the
/// data sequence number of the delete file that lists them.
fn position_deletes(
    deletes: &[(String, i64)],
    storage: &StorageOptions,
) -> Result<HashMap<String, Vec<Sequenced>>> {
    let mut gone: HashMap<String, Vec<Sequenced>> = HashMap::new();
    for (path, sequence) in deletes {
        let at = crate::iceberg::located(path, storage)?;
        for (file, positions) in crate::deletes::read(&at)? {
            gone.entry(file).or_default().push((*sequence, positions));
        }
    }
    Ok(gone)
}

/// Each data file's deletion vector's positions, with the vector's data sequence number. A
/// data file's applies when it is of the file's data sequence number or later; position
/// delete files are then not read for that file (the vector holds theirs, as the
/// specification has writers merge them).
///
/// # Errors
/// A data file with two deletion vectors; a blob that is not one; the files' errors.
fn deletion_vectors(
    vectors: &[Vector],
    storage: &StorageOptions,
) -> Result<HashMap<String, Sequenced>> {
    let mut puffins: HashMap<String, Vec<u8>> = HashMap::new();
    let mut vectored: HashMap<String, Sequenced> = HashMap::new();
    for v in vectors {
        if !puffins.contains_key(&v.path) {
            let bytes = crate::iceberg::located(&v.path, storage)?.read()?;
            puffins.insert(v.path.clone(), bytes);
        }
        let positions = v.positions(&puffins[&v.path])?;
        if vectored
            .insert(v.data_file.clone(), (v.sequence, positions))
            .is_some()
        {
            return Err(ErrorKind::InvalidInput(format!(
                "its data file {} has two deletion vectors",
                v.data_file
            ))
            .into());
        }
    }
    Ok(vectored)
}

/// A deletion vector of a snapshot (format version 3): the `deletion-vector-v1` blob at
/// `offset` of the Puffin file `path`, of `size` bytes, deleting `cardinality` positions of
/// `data_file`.
struct Vector {
    path: String,
    data_file: String,
    offset: i64,
    size: i64,
    cardinality: i64,
    sequence: i64,
}

impl Vector {
    /// The deletion vector of the manifest entry's `file`, a blob of the Puffin file `path`,
    /// of data sequence number `sequence`.
    ///
    /// # Errors
    /// An entry without the data file it deletes from or without the blob's place.
    fn of(file: &Value, path: String, sequence: i64) -> Result<Vector> {
        let field = |name: &str| {
            file.get(name).as_i64().ok_or_else(|| -> Error {
                ErrorKind::InvalidInput(format!("its deletion vector in {path} has no {name}"))
                    .into()
            })
        };
        Ok(Vector {
            data_file: file
                .get("referenced_data_file")
                .as_str()
                .ok_or_else(|| -> Error {
                    ErrorKind::InvalidInput(format!(
                        "its deletion vector in {path} names no data file"
                    ))
                    .into()
                })?
                .to_owned(),
            offset: field("content_offset")?,
            size: field("content_size_in_bytes")?,
            cardinality: field("record_count")?,
            path,
            sequence,
        })
    }

    /// Its positions, ascending, from the bytes of its Puffin file: the blob is its length
    /// (4 bytes, big-endian, of the magic number and the bitmap), the magic number and a
    /// portable 64-bit roaring bitmap (the same as a Delta deletion vector's), and the CRC-32
    /// of both (big-endian); each checked, and the positions counted against the manifest's.
    ///
    /// # Errors
    /// A blob that is not one, named.
    fn positions(&self, puffin: &[u8]) -> Result<Vec<u64>> {
        let bad = |why: String| -> Error {
            ErrorKind::InvalidInput(format!(
                "its deletion vector at offset {} of {}: {why}",
                self.offset, self.path
            ))
            .into()
        };
        let (Ok(offset), Ok(size)) = (usize::try_from(self.offset), usize::try_from(self.size))
        else {
            return Err(bad(format!(
                "an offset of {} and a size of {}",
                self.offset, self.size
            )));
        };
        let blob = puffin
            .get(offset..offset.saturating_add(size))
            .filter(|b| b.len() == size && size >= 12)
            .ok_or_else(|| bad(format!("the file ends before its {size} bytes")))?;
        let length = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        if length != size - 8 {
            return Err(bad(format!(
                "it says it is {length} bytes, and the manifest {}",
                size - 8
            )));
        }
        let body = &blob[4..size - 4];
        let stored = u32::from_be_bytes([
            blob[size - 4],
            blob[size - 3],
            blob[size - 2],
            blob[size - 1],
        ]);
        let mut crc = flate2::Crc::new();
        crc.update(body);
        if crc.sum() != stored {
            return Err(bad("its checksum does not match".into()));
        }
        let limit = u64::try_from(self.cardinality)
            .map_err(|_| bad(format!("a record count of {}", self.cardinality)))?;
        let positions = crate::delta::dv::positions(body, limit.saturating_add(1))
            .map_err(|e| bad(e.to_string()))?;
        if positions.len() as u64 != limit {
            return Err(bad(format!(
                "it holds {} positions, and the manifest says {limit}",
                positions.len()
            )));
        }
        Ok(positions)
    }
}

/// The table's Arrow schema, its columns matched by field ID: each column as a file that holds
/// it under the table's type gives it (keeping what the file says of it: pgarrow's PostgreSQL
/// type, an extension), else a primitive from its Iceberg type (a column no file holds as the
/// table types it: added or promoted since); every field nullable, named as the table names
/// it now.
fn table_schema(fields: &[NestedField], files: &[TableFile]) -> Result<Arc<Schema>> {
    let mut found: Vec<Option<Field>> = vec![None; fields.len()];
    crate::common::fields_from_files(files, fields, &mut found, |want, f| {
        super::schema::holds(f, want).then(|| f.clone().with_name(&want.name).with_nullable(true))
    })?;
    let fields = fields
        .iter()
        .zip(found)
        .map(|(want, field)| match field {
            Some(field) => Ok(field),
            None => primitive(want),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// The Arrow field of a primitive column from its Iceberg type, with its field ID.
fn primitive(want: &NestedField) -> Result<Field> {
    column(&want.name, want.id, &want.ty)
}

/// The Arrow field `name` of Iceberg type `ty`, with its field ID `id`.
fn column(name: &str, id: i64, want: &Type) -> Result<Field> {
    let ty = want.primitive().unwrap_or_default().replace(' ', "");
    let mut metadata = std::collections::HashMap::from([(
        parquet::arrow::PARQUET_FIELD_ID_META_KEY.to_owned(),
        id.to_string(),
    )]);
    let dt = match ty.as_str() {
        "boolean" => DataType::Boolean,
        "int" => DataType::Int32,
        "long" => DataType::Int64,
        "float" => DataType::Float32,
        "double" => DataType::Float64,
        "date" => DataType::Date32,
        "time" => DataType::Time64(TimeUnit::Microsecond),
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        // Format version 3's: loaded as PostgreSQL's microseconds, a value that is not whole
        // microseconds refused by the load (or rounded, as `--nanoseconds` says).
        "timestamp_ns" => DataType::Timestamp(TimeUnit::Nanosecond, None),
        "timestamptz_ns" => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        // Format version 3's type of no values (a column no writer gave a type yet).
        "unknown" => DataType::Null,
        // Format version 3's semi-structured values, in the files as Parquet's Variant
        // group: JSON text (`jsonb`), as pgarrow-io reads a Variant.
        "variant" => {
            let json = pgarrow::io::variant::variant_field(name);
            metadata.extend(json.metadata().clone());
            json.data_type().clone()
        }
        "string" => DataType::Utf8,
        "binary" => DataType::Binary,
        "uuid" => {
            metadata.insert("ARROW:extension:name".into(), "arrow.uuid".into());
            DataType::FixedSizeBinary(16)
        }
        t if t.starts_with("decimal(") => match decimal_type(want) {
            Some((p, s)) => DataType::Decimal128(p, s),
            None => return Err(unreadable(name, want)),
        },
        // Format version 3's: WKB, as GeoArrow's `geoarrow.wkb` (PostGIS's `geometry`, or
        // `geography` for spherical edges) with the type's CRS (OGC:CRS84 by default).
        t if t == "geometry" || t.starts_with("geometry(") || t.starts_with("geography") => {
            let spherical = t.starts_with("geography");
            let args = t
                .split_once('(')
                .map(|(_, rest)| rest.trim_end_matches(')'))
                .unwrap_or_default();
            // The CRS is the first argument (a geography's second is its edge algorithm);
            // the spaces of `ty` are gone, which no CRS form GeoArrow reads needs.
            // (quoted by some writers: pyiceberg's `geometry('srid:4326')`).
            let crs = match args.split(',').next().map(|c| c.trim_matches(['\'', '"'])) {
                Some(crs) if !crs.is_empty() => crs,
                _ => "OGC:CRS84",
            };
            let mut ext = serde_json::json!({ "crs": crs });
            if spherical {
                ext["edges"] = "spherical".into();
            }
            metadata.insert("ARROW:extension:name".into(), "geoarrow.wkb".into());
            metadata.insert("ARROW:extension:metadata".into(), ext.to_string());
            DataType::Binary
        }
        t if t.starts_with("fixed[") => {
            match t.trim_start_matches("fixed[").trim_end_matches(']').parse() {
                Ok(n) => DataType::FixedSizeBinary(n),
                Err(_) => return Err(unreadable(name, want)),
            }
        }
        // A nested type (a column of a table no file holds yet: an empty table's): its
        // fields, each with its ID.
        "" => nested(want).ok_or_else(|| unreadable(name, want))?,
        _ => return Err(unreadable(name, want)),
    };
    Ok(Field::new(name, dt, true).with_metadata(metadata))
}

/// The Arrow type of a nested Iceberg type (`struct`, `list`, `map`), its fields with their IDs.
fn nested(ty: &Type) -> Option<DataType> {
    let field = |name: &str, id: i64, ty: &Type| -> Option<Field> { column(name, id, ty).ok() };
    Some(match ty {
        Type::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| field(&f.name, f.id, &f.ty))
                .collect::<Option<Vec<Field>>>()?
                .into(),
        ),
        Type::List {
            element_id,
            element,
            ..
        } => DataType::List(Arc::new(field("element", *element_id, element)?)),
        Type::Map {
            key_id,
            key,
            value_id,
            value,
            ..
        } => {
            let key = field("key", *key_id, key)?.with_nullable(false);
            let value = field("value", *value_id, value)?;
            DataType::Map(
                Arc::new(Field::new(
                    "key_value",
                    DataType::Struct(vec![key, value].into()),
                    false,
                )),
                false,
            )
        }
        Type::Primitive(_) => return None,
    })
}

fn unreadable(name: &str, ty: &Type) -> Error {
    ErrorKind::InvalidInput(format!(
        "no data file holds column \"{name}\" as the table types it ({ty}), and pgarrow reads \
         that type only from a file that does"
    ))
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Puffin file's bytes with one deletion vector blob of `positions` at offset 4.
    fn puffin(positions: &[u64]) -> (Vec<u8>, usize) {
        let body = crate::delta::dv::bitmap(&positions.to_vec().into());
        let mut crc = flate2::Crc::new();
        crc.update(&body);
        let mut out = b"PFA1".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc.sum().to_be_bytes());
        let size = out.len() - 4;
        out.extend_from_slice(b"PFA1");
        (out, size)
    }

    fn vector(size: usize, cardinality: i64) -> Vector {
        Vector {
            path: "dv.puffin".into(),
            data_file: "d.parquet".into(),
            offset: 4,
            size: size as i64,
            cardinality,
            sequence: 1,
        }
    }

    #[test]
    fn geometry_and_geography_read_as_geoarrow_wkb_with_their_crs() {
        let ext = |ty: &str| {
            let f = column("g", 1, &Type::Primitive(ty.into())).unwrap();
            assert_eq!(f.data_type(), &DataType::Binary);
            assert_eq!(f.metadata()["ARROW:extension:name"], "geoarrow.wkb");
            f.metadata()["ARROW:extension:metadata"].clone()
        };
        assert_eq!(ext("geometry"), r#"{"crs":"OGC:CRS84"}"#);
        assert_eq!(ext("geometry(srid:3857)"), r#"{"crs":"srid:3857"}"#);
        assert_eq!(ext("geometry('EPSG:4326')"), r#"{"crs":"EPSG:4326"}"#);
        assert_eq!(
            ext("geography(srid:4326, vincenty)"),
            r#"{"crs":"srid:4326","edges":"spherical"}"#
        );
    }

    #[test]
    fn a_deletion_vector_blob_reads_as_its_positions_and_each_fault_is_named() {
        let positions = [0, 7, 70_000, 1 << 33];
        let (bytes, size) = puffin(&positions);
        assert_eq!(vector(size, 4).positions(&bytes).unwrap(), positions);
        let fault = |v: Vector, bytes: &[u8]| v.positions(bytes).unwrap_err().to_string();
        // The manifest's count, size or offset disagreeing; a byte changed; a file cut short.
        assert!(fault(vector(size, 3), &bytes).contains("manifest says 3"));
        assert!(fault(vector(size - 1, 4), &bytes).contains("says it is"));
        let mut changed = bytes.clone();
        changed[12] ^= 1;
        let e = fault(vector(size, 4), &changed);
        assert!(
            e.contains("checksum") && e.contains("offset 4 of dv.puffin"),
            "{e}"
        );
        assert!(fault(vector(size, 4), &bytes[..20]).contains("ends before"));
    }
}
