//! Classic Delta checkpoints: the table's state at a version in one Parquet file, a row per
//! action (the protocol, the metadata, the transactions, the live files, the tombstones not
//! yet expired), each in its own struct column, so that readers start there instead of
//! replaying every commit. Read here too, by any writer: classic, multi-part, and V2
//! checkpoints (UUID-named, in JSON or Parquet, or classic-named), whose file actions may sit
//! in sidecar files under `_delta_log/_sidecars/`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, MapArray, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pgarrow::io::Location;
use pgarrow::{Error, ErrorKind, Result};

use super::log::{Action, Add, DeletionVector, Format, Metadata, Protocol, Remove, Txn};

/// The checkpoint of a state's `actions`, as Parquet bytes: each action, serialized as in a
/// commit (`{"add": {...}}`), a row of [`schema`] (arrow-json's decoder), the other columns
/// null.
pub(crate) fn write(actions: &[Action]) -> Result<Vec<u8>> {
    let internal = |e: &dyn std::fmt::Display| -> Error {
        ErrorKind::Internal(format!("writing a Delta checkpoint: {e}")).into()
    };
    let schema = Arc::new(schema());
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .build_decoder()
        .map_err(|e| internal(&e))?;
    decoder.serialize(actions).map_err(|e| internal(&e))?;
    let batch = decoder
        .flush()
        .map_err(|e| internal(&e))?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, None).map_err(|e| internal(&e))?;
    writer.write(&batch).map_err(|e| internal(&e))?;
    writer.close().map_err(|e| internal(&e))?;
    Ok(bytes)
}

/// A checkpoint's columns (PROTOCOL.md, "Checkpoint Schema"): a struct per action, every field
/// nullable; maps of strings in `key_value` entries of a `key` and a `value` (Spark's names),
/// lists of strings of `item`s (arrow-rs's; Parquet readers take either).
fn schema() -> Schema {
    let utf8 = |name: &str| Field::new(name, DataType::Utf8, true);
    let long = |name: &str| Field::new(name, DataType::Int64, true);
    let int = |name: &str| Field::new(name, DataType::Int32, true);
    let boolean = |name: &str| Field::new(name, DataType::Boolean, true);
    let list =
        |name: &str| Field::new_list(name, Field::new_list_field(DataType::Utf8, true), true);
    let map = |name: &str| {
        let key = Field::new("key", DataType::Utf8, false);
        Field::new_map(name, "key_value", key, utf8("value"), false, true)
    };
    let structure = |name: &str, fields: Vec<Field>| Field::new_struct(name, fields, true);
    let deletion_vector = || {
        let fields = vec![
            utf8("storageType"),
            utf8("pathOrInlineDv"),
            int("offset"),
            int("sizeInBytes"),
            long("cardinality"),
        ];
        structure("deletionVector", fields)
    };
    let txn = vec![utf8("appId"), long("version"), long("lastUpdated")];
    let add = vec![
        utf8("path"),
        map("partitionValues"),
        long("size"),
        long("modificationTime"),
        boolean("dataChange"),
        utf8("stats"),
        map("tags"),
        deletion_vector(),
        long("baseRowId"),
        long("defaultRowCommitVersion"),
    ];
    let remove = vec![
        utf8("path"),
        long("deletionTimestamp"),
        boolean("dataChange"),
        boolean("extendedFileMetadata"),
        map("partitionValues"),
        long("size"),
        deletion_vector(),
    ];
    let meta = vec![
        utf8("id"),
        utf8("name"),
        utf8("description"),
        structure("format", vec![utf8("provider"), map("options")]),
        utf8("schemaString"),
        list("partitionColumns"),
        map("configuration"),
        long("createdTime"),
    ];
    let protocol = vec![
        int("minReaderVersion"),
        int("minWriterVersion"),
        list("readerFeatures"),
        list("writerFeatures"),
    ];
    Schema::new(vec![
        structure("txn", txn),
        structure("add", add),
        structure("remove", remove),
        structure("metaData", meta),
        structure("protocol", protocol),
    ])
}

/// The actions of checkpoint `version` of the log `log`, held in the files `names` (one, or a
/// multi-part checkpoint's parts), with its sidecars' file actions.
///
/// # Errors
/// Storage errors; a file that is not a checkpoint pgarrow can read, named: a UUID-named (V2)
/// checkpoint without exactly one `checkpointMetadata` action, any checkpoint whose
/// `checkpointMetadata` names another version, a sidecar missing or naming another.
pub(crate) fn read_checkpoint(
    version: i64,
    names: &[String],
    log: &Location,
) -> Result<Vec<Action>> {
    Ok(read_all(version, names, log, Sidecars::Follow)?.actions)
}

/// The sidecar files (their names in the log's `_sidecars` directory) checkpoint `version`
/// (in the files `names`) names, not read.
///
/// # Errors
/// As [`read_checkpoint`]'s, but for the sidecars themselves.
pub(crate) fn sidecars_named(
    version: i64,
    names: &[String],
    log: &Location,
) -> Result<Vec<String>> {
    Ok(read_all(version, names, log, Sidecars::Name)?.sidecars)
}

/// What a checkpoint file's `sidecar` actions are taken for.
#[derive(Clone, Copy, PartialEq)]
enum Sidecars {
    /// Their files read, their actions the checkpoint's.
    Follow,
    /// Their names kept, nothing read.
    Name,
    /// Refused: a sidecar names no other.
    Refuse,
}

fn read_all(version: i64, names: &[String], log: &Location, mode: Sidecars) -> Result<Read> {
    let mut all = Read::default();
    for name in names {
        let at = log.join(name);
        let kind = super::replay::log_file(name);
        let read = match kind {
            Some(super::replay::LogFile::Uuid { json: true, .. }) => read_json(&at, log, mode)?,
            _ => read_part(&at, log, mode)?,
        };
        let bad = |what: String| -> Error {
            ErrorKind::InvalidInput(format!(
                "Delta checkpoint {at}: {what}: not a checkpoint pgarrow can read"
            ))
            .into()
        };
        if matches!(kind, Some(super::replay::LogFile::Uuid { .. })) && read.versions.len() != 1 {
            return Err(bad(format!(
                "a UUID-named (V2) checkpoint holds one checkpointMetadata action, and this one \
                 holds {}",
                read.versions.len()
            )));
        }
        if let Some(other) = read.versions.iter().find(|v| **v != version) {
            return Err(bad(format!(
                "its checkpointMetadata is of version {other}, and its name of version {version}"
            )));
        }
        all.actions.extend(read.actions);
        all.sidecars.extend(read.sidecars);
    }
    Ok(all)
}

/// The actions of the classic checkpoint (or checkpoint part) at `at`.
///
/// # Errors
/// Storage errors; a file that is not a checkpoint pgarrow can read, named.
#[cfg(test)]
pub(crate) fn read(at: &Location, log: &Location) -> Result<Vec<Action>> {
    Ok(read_part(at, log, Sidecars::Follow)?.actions)
}

/// What one checkpoint file holds: its actions (with its sidecars', when followed), the
/// versions its `checkpointMetadata` actions give (one in a V2 checkpoint, none in a V1), and
/// the sidecars it names.
#[derive(Default)]
struct Read {
    actions: Vec<Action>,
    versions: Vec<i64>,
    sidecars: Vec<String>,
}

impl Read {
    /// The sidecar `path` that the checkpoint at `at` names, taken as `mode` says.
    fn sidecar(&mut self, path: &str, at: &Location, log: &Location, mode: Sidecars) -> Result<()> {
        let file = path.rsplit('/').next().unwrap_or(path);
        match mode {
            Sidecars::Refuse => {
                return Err(ErrorKind::InvalidInput(format!(
                    "Delta checkpoint {at}: a sidecar file names another sidecar: not a \
                     checkpoint pgarrow can read"
                ))
                .into());
            }
            Sidecars::Follow => self.actions.extend(sidecar(path, at, log)?),
            Sidecars::Name => {}
        }
        self.sidecars.push(super::read::uri_decode(file));
        Ok(())
    }
}

/// The file actions of the sidecar a checkpoint at `at` names by `path`: sidecars live in
/// the log's `_sidecars` directory (the protocol's rule), so a full URI names one there, by
/// its file name.
fn sidecar(path: &str, at: &Location, log: &Location) -> Result<Vec<Action>> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let sidecar = log.join("_sidecars").join(&super::read::uri_decode(file));
    if !sidecar.exists()? {
        return Err(ErrorKind::InvalidInput(format!(
            "Delta checkpoint {at}: its sidecar {path} is not there ({sidecar}): the table's \
             files cannot be known"
        ))
        .into());
    }
    let read = read_part(&sidecar, log, Sidecars::Refuse)
        .map_err(|e| e.context(format!("the sidecar {path} of {at}")))?;
    Ok(read
        .actions
        .into_iter()
        .filter(|a| matches!(a, Action::Add(_) | Action::Remove(_)))
        .collect())
}

/// A V2 checkpoint in JSON (`n.checkpoint.u.json`): an action per line, as in a commit, and
/// `checkpointMetadata` and `sidecar` actions.
fn read_json(at: &Location, log: &Location, mode: Sidecars) -> Result<Read> {
    let bytes = at.read()?;
    let bad = |e: &dyn std::fmt::Display| -> Error {
        ErrorKind::InvalidInput(format!(
            "Delta checkpoint {at}: {e}: not a checkpoint pgarrow can read"
        ))
        .into()
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| bad(&format!("not UTF-8: {e}")))?;
    let mut out = Read::default();
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&format!("line {}: {e}", k + 1)))?;
        if let Some(meta) = value.get("checkpointMetadata") {
            let version = meta.get("version").and_then(serde_json::Value::as_i64);
            out.versions.push(version.ok_or_else(|| {
                bad(&format!(
                    "line {}: a checkpointMetadata without its version",
                    k + 1
                ))
            })?);
        } else if let Some(side) = value.get("sidecar") {
            let path = side.get("path").and_then(serde_json::Value::as_str);
            let path =
                path.ok_or_else(|| bad(&format!("line {}: a sidecar without a path", k + 1)))?;
            out.sidecar(path, at, log, mode)?;
        } else {
            let actions = super::log::parse_commit(line.as_bytes())
                .map_err(|e| bad(&format!("line {}: {e}", k + 1)))?;
            out.actions.extend(actions);
        }
    }
    Ok(out)
}

/// A checkpoint file's actions; `sidecars`: whether it may name sidecar files (a sidecar may
/// not: one naming another, or itself, is refused rather than followed).
fn read_part(at: &Location, log: &Location, mode: Sidecars) -> Result<Read> {
    let bytes = bytes::Bytes::from(at.read()?);
    let bad = |e: &dyn std::fmt::Display| -> Error {
        ErrorKind::InvalidInput(format!(
            "Delta checkpoint {at}: {e}: not a checkpoint pgarrow can read"
        ))
        .into()
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| bad(&e))?;
    let mut read = Read::default();
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        let column = |name: &str| batch.column_by_name(name).and_then(|c| c.as_struct_opt());
        for row in 0..batch.num_rows() {
            if let Some(s) = column("add").filter(|s| s.is_valid(row)) {
                read.actions.push(Action::Add(Add {
                    path: text(s, "path", row).ok_or_else(|| bad(&"an add without a path"))?,
                    partition_values: pairs(s, "partitionValues", row).unwrap_or_default(),
                    size: long(s, "size", row).unwrap_or(0),
                    modification_time: long(s, "modificationTime", row).unwrap_or(0),
                    data_change: boolean(s, "dataChange", row).unwrap_or(false),
                    stats: text(s, "stats", row),
                    tags: pairs(s, "tags", row),
                    deletion_vector: deletion_vector(s, row),
                    base_row_id: long(s, "baseRowId", row),
                    default_row_commit_version: long(s, "defaultRowCommitVersion", row),
                }));
            } else if let Some(s) = column("remove").filter(|s| s.is_valid(row)) {
                read.actions.push(Action::Remove(Remove {
                    path: text(s, "path", row).ok_or_else(|| bad(&"a remove without a path"))?,
                    deletion_timestamp: long(s, "deletionTimestamp", row),
                    data_change: boolean(s, "dataChange", row).unwrap_or(false),
                    extended_file_metadata: boolean(s, "extendedFileMetadata", row),
                    partition_values: pairs(s, "partitionValues", row),
                    size: long(s, "size", row),
                    deletion_vector: deletion_vector(s, row),
                }));
            } else if let Some(s) = column("metaData").filter(|s| s.is_valid(row)) {
                let format = child(s, "format").and_then(|c| c.as_struct_opt());
                read.actions.push(Action::MetaData(Metadata {
                    id: text(s, "id", row).unwrap_or_default(),
                    name: text(s, "name", row),
                    description: text(s, "description", row),
                    format: Format {
                        provider: format
                            .and_then(|f| text(f, "provider", row))
                            .unwrap_or_else(|| "parquet".into()),
                        options: format
                            .and_then(|f| pairs(f, "options", row))
                            .map(required)
                            .unwrap_or_default(),
                    },
                    schema_string: text(s, "schemaString", row)
                        .ok_or_else(|| bad(&"metadata without a schema"))?,
                    partition_columns: texts(s, "partitionColumns", row).unwrap_or_default(),
                    created_time: long(s, "createdTime", row),
                    configuration: pairs(s, "configuration", row)
                        .map(required)
                        .unwrap_or_default(),
                }));
            } else if let Some(s) = column("protocol").filter(|s| s.is_valid(row)) {
                read.actions.push(Action::Protocol(Protocol {
                    min_reader_version: long(s, "minReaderVersion", row).unwrap_or(1) as i32,
                    min_writer_version: long(s, "minWriterVersion", row).unwrap_or(2) as i32,
                    reader_features: texts(s, "readerFeatures", row),
                    writer_features: texts(s, "writerFeatures", row),
                }));
            } else if let Some(s) = column("sidecar").filter(|s| s.is_valid(row)) {
                // A V2 checkpoint (whatever its name) may keep its files' actions in sidecar
                // files: read them too, or the table has no files.
                let path = text(s, "path", row).ok_or_else(|| bad(&"a sidecar without a path"))?;
                read.sidecar(&path, at, log, mode)?;
            } else if let Some(s) = column("checkpointMetadata").filter(|s| s.is_valid(row)) {
                let version = long(s, "version", row);
                read.versions
                    .push(version.ok_or_else(|| bad(&"a checkpointMetadata without its version"))?);
            } else if let Some(s) = column("txn").filter(|s| s.is_valid(row)) {
                read.actions.push(Action::Txn(Txn {
                    app_id: text(s, "appId", row).unwrap_or_default(),
                    version: long(s, "version", row).unwrap_or(0),
                    last_updated: long(s, "lastUpdated", row),
                }));
            }
        }
    }
    Ok(read)
}

fn required(m: BTreeMap<String, Option<String>>) -> BTreeMap<String, String> {
    m.into_iter().filter_map(|(k, v)| Some((k, v?))).collect()
}

fn child<'a>(s: &'a StructArray, name: &str) -> Option<&'a ArrayRef> {
    s.column_by_name(name)
}

fn text(s: &StructArray, name: &str, row: usize) -> Option<String> {
    string_at(child(s, name)?, row)
}

fn string_at(a: &dyn Array, row: usize) -> Option<String> {
    if a.is_null(row) {
        return None;
    }
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Some(a.as_string::<i64>().value(row).to_owned()),
        DataType::Utf8View => Some(a.as_string_view().value(row).to_owned()),
        _ => None,
    }
}

fn long(s: &StructArray, name: &str, row: usize) -> Option<i64> {
    let a = child(s, name)?;
    if a.is_null(row) {
        return None;
    }
    match a.data_type() {
        DataType::Int64 => Some(a.as_primitive::<Int64Type>().value(row)),
        DataType::Int32 => Some(i64::from(a.as_primitive::<Int32Type>().value(row))),
        _ => None,
    }
}

fn boolean(s: &StructArray, name: &str, row: usize) -> Option<bool> {
    let a = child(s, name)?;
    (a.is_valid(row) && a.data_type() == &DataType::Boolean).then(|| a.as_boolean().value(row))
}

fn texts(s: &StructArray, name: &str, row: usize) -> Option<Vec<String>> {
    let a = child(s, name)?;
    if a.is_null(row) {
        return None;
    }
    let items = match a.data_type() {
        DataType::List(_) => a.as_list::<i32>().value(row),
        DataType::LargeList(_) => a.as_list::<i64>().value(row),
        _ => return None,
    };
    Some(
        (0..items.len())
            .filter_map(|k| string_at(&items, k))
            .collect(),
    )
}

fn pairs(s: &StructArray, name: &str, row: usize) -> Option<BTreeMap<String, Option<String>>> {
    let a = child(s, name)?;
    if a.is_null(row) {
        return None;
    }
    let m: &MapArray = a.as_map_opt()?;
    let entries = m.value(row);
    let (keys, values) = (entries.column(0), entries.column(1));
    Some(
        (0..entries.len())
            .filter_map(|k| Some((string_at(keys, k)?, string_at(values, k))))
            .collect(),
    )
}

fn deletion_vector(s: &StructArray, row: usize) -> Option<DeletionVector> {
    let dv = child(s, "deletionVector")?.as_struct_opt()?;
    if dv.is_null(row) {
        return None;
    }
    Some(DeletionVector {
        storage_type: text(dv, "storageType", row)?,
        path_or_inline_dv: text(dv, "pathOrInlineDv", row)?,
        offset: long(dv, "offset", row).map(|v| v as i32),
        size_in_bytes: long(dv, "sizeInBytes", row).unwrap_or(0) as i32,
        cardinality: long(dv, "cardinality", row).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_as_its_actions() {
        let mut values = BTreeMap::new();
        values.insert("d".to_owned(), Some("2026-01-01".to_owned()));
        values.insert("n".to_owned(), None);
        let actions = vec![
            Action::Protocol(Protocol {
                min_reader_version: 3,
                min_writer_version: 7,
                reader_features: Some(vec!["timestampNtz".into()]),
                writer_features: Some(vec!["timestampNtz".into()]),
            }),
            Action::MetaData(Metadata {
                id: "id".into(),
                name: None,
                description: None,
                format: Format {
                    provider: "parquet".into(),
                    options: BTreeMap::new(),
                },
                schema_string: "{\"type\":\"struct\",\"fields\":[]}".into(),
                partition_columns: vec!["d".into(), "n".into()],
                created_time: Some(1),
                configuration: [("k".to_owned(), "v".to_owned())].into(),
            }),
            Action::Txn(Txn {
                app_id: "app".into(),
                version: 4,
                last_updated: None,
            }),
            Action::Add(Add {
                path: "d=2026-01-01/a.parquet".into(),
                partition_values: values.clone(),
                size: 10,
                modification_time: 2,
                data_change: true,
                stats: Some("{\"numRecords\":1}".into()),
                tags: None,
                deletion_vector: Some(DeletionVector {
                    storage_type: "u".into(),
                    path_or_inline_dv: "ab".into(),
                    offset: Some(1),
                    size_in_bytes: 3,
                    cardinality: 4,
                }),
                base_row_id: None,
                default_row_commit_version: None,
            }),
            Action::Remove(Remove {
                path: "old.parquet".into(),
                deletion_timestamp: Some(3),
                data_change: true,
                extended_file_metadata: Some(true),
                partition_values: Some(values),
                size: Some(5),
                deletion_vector: None,
            }),
        ];
        let bytes = write(&actions).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let at = Location::from(dir.path()).join("0.checkpoint.parquet");
        assert!(at.create_new(&bytes).unwrap());
        assert_eq!(read(&at, &Location::from(dir.path())).unwrap(), actions);
    }

    #[test]
    fn the_checkpoint_keeps_the_columns_delta_readers_want() {
        // The Parquet columns pgarrow's checkpoints have always had, in their order.
        let bytes = bytes::Bytes::from(write(&[]).unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let columns = reader.parquet_schema().columns();
        let paths: Vec<String> = columns.iter().map(|c| c.path().string()).collect();
        let map = |p: &str| [format!("{p}.key_value.key"), format!("{p}.key_value.value")];
        let list = |p: &str| [format!("{p}.list.item")];
        let dv = |p: &str| {
            [
                "storageType",
                "pathOrInlineDv",
                "offset",
                "sizeInBytes",
                "cardinality",
            ]
            .map(|f| format!("{p}.deletionVector.{f}"))
        };
        let mut want: Vec<String> = ["txn.appId", "txn.version", "txn.lastUpdated", "add.path"]
            .map(String::from)
            .into();
        want.extend(map("add.partitionValues"));
        want.extend(
            [
                "add.size",
                "add.modificationTime",
                "add.dataChange",
                "add.stats",
            ]
            .map(String::from),
        );
        want.extend(map("add.tags"));
        want.extend(dv("add"));
        want.extend(
            [
                "add.baseRowId",
                "add.defaultRowCommitVersion",
                "remove.path",
            ]
            .map(String::from),
        );
        want.extend(
            [
                "remove.deletionTimestamp",
                "remove.dataChange",
                "remove.extendedFileMetadata",
            ]
            .map(String::from),
        );
        want.extend(map("remove.partitionValues"));
        want.push("remove.size".into());
        want.extend(dv("remove"));
        want.extend(
            [
                "metaData.id",
                "metaData.name",
                "metaData.description",
                "metaData.format.provider",
            ]
            .map(String::from),
        );
        want.extend(map("metaData.format.options"));
        want.push("metaData.schemaString".into());
        want.extend(list("metaData.partitionColumns"));
        want.extend(map("metaData.configuration"));
        want.extend(
            [
                "metaData.createdTime",
                "protocol.minReaderVersion",
                "protocol.minWriterVersion",
            ]
            .map(String::from),
        );
        want.extend(list("protocol.readerFeatures"));
        want.extend(list("protocol.writerFeatures"));
        assert_eq!(paths, want);
    }
}
