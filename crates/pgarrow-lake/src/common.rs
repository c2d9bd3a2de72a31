//! What the lake formats share: when a table exists, an incremental run's outcome, the
//! provenance every commit records, new UUIDs, and the targets' common setters.

/// The `with_*` setters every lake target has: when the table exists, the object store
/// settings, the data files' Parquet options, their layout.
macro_rules! target_setters {
    () => {
        /// When the table exists.
        pub fn with_if_exists(mut self, if_exists: crate::common::IfExists) -> Self {
            self.if_exists = if_exists;
            self
        }

        /// Object store settings.
        pub fn with_storage(mut self, storage: pgarrow::io::StorageOptions) -> Self {
            self.storage = storage;
            self
        }

        /// The data files' Parquet options.
        pub fn with_options(mut self, options: pgarrow::io::SinkOptions) -> Self {
            self.options = options;
            self
        }

        /// Where files roll over, and the table's partitions (see the target's `layout`).
        pub fn with_layout(mut self, layout: pgarrow::io::Layout) -> Self {
            self.layout = layout;
            self
        }
    };
}
pub(crate) use target_setters;

use pgarrow::{Error, ErrorKind, Result};

/// An incremental run committed into a lake table: the state it left in the commit (the next
/// run reads it back from the table), and what kind of run it was.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LakeRun {
    /// The state the commit carries.
    pub state: pgarrow::incremental::IncrementalState,
    /// Whether it was a first run (the whole table, or from `since`).
    pub first: bool,
    /// Whether it scanned for late rows.
    pub late_scan: bool,
}

/// What an export does when the table exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfExists {
    /// Refuse, naming the table (the default: nothing is ever overwritten or added to unless
    /// asked).
    #[default]
    Fail,
    /// Add the rows to it (the columns must be the same).
    Append,
    /// Replace its rows (and, in a Delta table, its columns), in one commit: the old rows
    /// stay readable by time travel until the format's maintenance expires them.
    Replace,
}

impl std::str::FromStr for IfExists {
    type Err = Error;

    fn from_str(s: &str) -> Result<IfExists> {
        match s {
            "fail" => Ok(IfExists::Fail),
            "append" => Ok(IfExists::Append),
            "replace" => Ok(IfExists::Replace),
            other => Err(ErrorKind::Usage(format!(
                "if-exists {other:?} (possible values: fail, append, replace)"
            ))
            .into()),
        }
    }
}

/// Where a commit's rows came from, as every format records it with the commit (DuckLake's
/// snapshot changes, Delta's `commitInfo`, Iceberg's snapshot summary): pgarrow's version, the
/// source, the PostgreSQL snapshot and WAL position it was read at, the server, the rows and
/// the lossy conversions made.
pub(crate) fn provenance(manifest: &pgarrow::io::Manifest) -> serde_json::Value {
    serde_json::json!({
        "pgarrow": env!("CARGO_PKG_VERSION"),
        "source": manifest.source,
        "snapshot": manifest.snapshot,
        "wal_lsn": manifest.wal_lsn,
        "replication_slot": manifest.replication_slot,
        "server_version": manifest.server_version,
        "rows": manifest.rows,
        "lossy_conversions": manifest.lossy_conversions,
    })
}

/// A random (version 4) UUID as text, lowercase and hyphenated.
pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Fills each column of `wanted` not yet `found` with the first field of `files` (read in
/// order, until every column is found) that `pick` takes for it, as `pick` makes it the
/// table's: what a reader of a lake table types its columns by when the files say more than
/// the table's metadata (pgarrow's PostgreSQL types, extensions). The source table's primary
/// key is left out: a lake table holds no key (appends may repeat one), so a load that
/// creates its table must not declare it. A file whose footer cannot give an Arrow schema is
/// passed over (its reading fails later, named).
///
/// # Errors
/// A file that cannot be read.
pub(crate) fn fields_from_files<W>(
    files: &[pgarrow::io::TableFile],
    wanted: &[W],
    found: &mut [Option<arrow_schema::Field>],
    pick: impl Fn(&W, &arrow_schema::Field) -> Option<arrow_schema::Field>,
) -> Result<()> {
    for file in files {
        if found.iter().all(Option::is_some) {
            break;
        }
        let (metadata, _) = file.location.parquet_metadata()?;
        let meta = metadata.file_metadata();
        let Ok(schema) =
            parquet::arrow::parquet_to_arrow_schema(meta.schema_descr(), meta.key_value_metadata())
        else {
            continue;
        };
        for (want, slot) in wanted.iter().zip(found.iter_mut()) {
            if slot.is_none() {
                *slot = schema.fields().iter().find_map(|f| pick(want, f)).map(|f| {
                    let mut metadata = f.metadata().clone();
                    metadata.remove(pgarrow::types::META_PRIMARY_KEY);
                    f.with_metadata(metadata)
                });
            }
        }
    }
    Ok(())
}

/// The exact forms a table format gives the values it has no type for, written into its data
/// files and given to the changes a mirror or `apply` commits, so that both hold the same
/// types (the book's lake pages give each format's type mapping):
/// - Delta has no `uuid`, time of day, unsigned or 16-bit float type, and its decimals stop at
///   38 digits: a `uuid` is its canonical text (as Spark and Databricks store UUIDs), a `time`
///   PostgreSQL's text of it, `oid`/`xid` a `long` (`xid8` a `decimal(20,0)`), a wide
///   `numeric` its exact text, a `halfvec`'s Float16 a `float`;
/// - Iceberg has `uuid` and `time` but no unsigned or 16-bit float type, decimals to 38
///   digits;
/// - DuckLake has them all but Float16 and decimals past 38 digits.
///
/// Every format holds an `interval` as the struct pgarrow's Parquet files hold
/// (`months`, `days`, `microseconds`). Each converted field keeps its PostgreSQL type in its
/// metadata and names its form (`pgarrow.form`), which `import` reads to load it back.
pub(crate) fn value_forms(format: Format) -> pgarrow::io::ValueForms {
    let all = pgarrow::io::ValueForms::default()
        .with_wide_decimal_text(true)
        .with_float16_widened(true);
    match format {
        Format::DuckLake => all,
        Format::Iceberg => all.with_unsigned_widened(true),
        Format::Delta => all
            .with_unsigned_widened(true)
            .with_uuid_text(true)
            .with_time_text(true),
    }
}

/// The three lake formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    DuckLake,
    Delta,
    Iceberg,
}

/// `schema` as `format`'s data files hold it ([`value_forms`]).
pub(crate) fn lake_schema(
    schema: &arrow_schema::Schema,
    format: Format,
) -> arrow_schema::SchemaRef {
    pgarrow::io::compatible_schema(&std::sync::Arc::new(schema.clone()), &value_forms(format))
}

/// A change batch (the table's first `columns` columns, then the change's own) as `format`'s
/// data files hold the table's values ([`value_forms`]): the table's columns and the old
/// image (`_old`) converted, the change's positions and flags as they are.
///
/// # Errors
/// A value the conversion refuses (none that pgarrow's decoders make).
pub(crate) fn lake_batch(
    batch: &arrow_array::RecordBatch,
    columns: usize,
    format: Format,
) -> Result<arrow_array::RecordBatch> {
    use std::sync::Arc;
    let schema = batch.schema();
    let converted = |i: usize| i < columns || schema.field(i).name() == pgarrow_changes::OLD_COLUMN;
    let picked: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| converted(i))
        .collect();
    let part = Arc::new(arrow_schema::Schema::new(
        picked
            .iter()
            .map(|&i| schema.field(i).clone())
            .collect::<Vec<_>>(),
    ));
    let lake = pgarrow::io::compatible_schema(&part, &value_forms(format));
    if lake == part {
        return Ok(batch.clone());
    }
    let bad =
        |e: pgarrow::io::Error| Error::from(e).context("giving the changes the lake table's forms");
    let values = arrow_array::RecordBatch::try_new(
        part,
        picked.iter().map(|&i| batch.column(i).clone()).collect(),
    )
    .map_err(|e| Error::from(ErrorKind::Internal(format!("the changes' columns: {e}"))))?;
    let values = pgarrow::io::compatible_batch(&values, &lake).map_err(bad)?;
    let mut fields: Vec<arrow_schema::FieldRef> = schema.fields().iter().cloned().collect();
    let mut arrays = batch.columns().to_vec();
    for (k, &i) in picked.iter().enumerate() {
        fields[i] = lake.fields()[k].clone();
        arrays[i] = values.column(k).clone();
    }
    arrow_array::RecordBatch::try_new(
        Arc::new(arrow_schema::Schema::new_with_metadata(
            fields,
            schema.metadata().clone(),
        )),
        arrays,
    )
    .map_err(|e| Error::from(ErrorKind::Internal(format!("the changes' columns: {e}"))))
}
