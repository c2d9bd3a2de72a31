//! Apache Iceberg tables (format version 2): an export's Parquet files committed into an
//! Iceberg table whose catalog is the SQL catalog in a PostgreSQL database (the
//! `iceberg_tables` layout pyiceberg's `SqlCatalog` and Iceberg's `JdbcCatalog` share).
//!
//! The files go under the table's `data/` directory (in `column_transform=value/`
//! directories when the table is partitioned), written by pgarrow's partitioned export with
//! Parquet field IDs (the table schema's). Then one manifest (Avro) lists them with their
//! partition tuples, counts and bounds; a manifest list names it (and, for an append, every
//! manifest of the table's current snapshot); and a new metadata file adds the snapshot, with
//! the export's provenance in its summary. The commit swaps the table's metadata location in
//! the catalog from the one the export began on to the new one, in one statement that holds
//! only if no other writer swapped it first: readers see the table before the export or
//! after it, never between. An export that fails, or whose commit fails, removes what it
//! wrote; a process killed before the commit leaves files no snapshot names (Iceberg's
//! `remove_orphan_files` removes them).
//!
//! Two writers committing at once both land: the loser of the swap reads the winner's
//! metadata and commits again on top of it, up to [`IcebergTarget::retries`] times. An
//! append retries onto any commit that left the columns and the partitioning as they were; a
//! replace does not retry, and fails naming the table, with nothing committed.
//!
//! ```no_run
//! # async fn run() -> pgarrow::Result<()> {
//! use pgarrow_lake::{IcebergTarget, IfExists, export_to_iceberg};
//! let catalog = pgarrow::protocol::Config::parse("postgresql://localhost/lake")?;
//! let target = IcebergTarget::new(catalog, "sales", "orders")
//!     .with_warehouse("s3://bucket/warehouse")
//!     .with_if_exists(IfExists::Append);
//! let stats = export_to_iceberg(
//!     "postgresql://localhost/shop",
//!     "orders",
//!     &Default::default(),
//!     &pgarrow::partition::PartitionOptions::new(4),
//!     &target,
//!     Default::default(),
//! )
//! .await?;
//! println!("snapshot {}: {} rows", stats.snapshot_id, stats.rows);
//! # Ok(())
//! # }
//! ```

mod catalog;
mod equality;
pub(crate) mod expire;
mod manifest;
pub(crate) mod mirror;
mod read;
mod schema;

use std::time::{SystemTime, UNIX_EPOCH};

use pgarrow::incremental::{IncrementalOptions, IncrementalState};
use pgarrow::io::{
    DirTarget, FieldIds, Format, Layout, Location, Manifest, PartitionField, SinkOptions,
    StorageOptions, Transform,
};
use pgarrow::partition::{PartitionOptions, PartitionedStats};
use pgarrow::protocol::Config;
use pgarrow::{Error, ErrorKind, ExportOptions, Hooks, IntoConfig, Result, Source};
use serde_json::{Value as Json, json};

use crate::common::IfExists;
use crate::retry::Retries;
use catalog::SqlCatalog;
use manifest::{DataFile, SpecField};
pub use read::open_iceberg;
use schema::IcebergSchema;

/// The catalog name of an SQL catalog when none is given (pyiceberg's `load_catalog()`
/// default).
pub const DEFAULT_CATALOG_NAME: &str = "default";

/// Where and how an export goes into an Iceberg table: [`IcebergTarget::new`], then `with_*`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IcebergTarget {
    /// The database of the SQL catalog.
    pub catalog: Config,
    /// The catalog's name in that database ([`DEFAULT_CATALOG_NAME`] unless given).
    pub catalog_name: String,
    /// The table's namespace (made when missing; `a.b` for a nested one).
    pub namespace: String,
    /// The table.
    pub table: String,
    /// Where a new table goes: `<warehouse>/<namespace>.db/<table>` (a directory or an
    /// object store URL). An existing table keeps its own location.
    pub warehouse: Option<String>,
    /// When the table exists.
    pub if_exists: IfExists,
    /// Credentials and settings for an object store.
    pub storage: StorageOptions,
    /// The data files' Parquet options (field IDs are always written).
    pub options: SinkOptions,
    /// Where files roll over (`max_file_rows`, `max_file_bytes`), and a new table's partition
    /// spec (`partitions`: a column, or Iceberg's `year`, `month`, `day`, `hour`, `bucket`,
    /// `truncate` of one; by default an existing table's own).
    pub layout: Layout,
    /// Times a commit that lost the swap to another writer commits again on top of it.
    pub retries: usize,
    /// An incremental run of a table instead of the export's source: what changed since the
    /// run whose state the table's last commit carries (the first run: the whole table, or
    /// from `since`), appended with this run's state in the same commit.
    pub incremental: Option<IncrementalOptions>,
}

impl IcebergTarget {
    /// Table `namespace.table` of the SQL catalog in database `catalog`.
    pub fn new(catalog: Config, namespace: impl Into<String>, table: impl Into<String>) -> Self {
        IcebergTarget {
            catalog,
            catalog_name: DEFAULT_CATALOG_NAME.to_owned(),
            namespace: namespace.into(),
            table: table.into(),
            warehouse: None,
            if_exists: IfExists::Fail,
            storage: StorageOptions::default(),
            options: SinkOptions::default(),
            layout: Layout::default(),
            retries: 100,
            incremental: None,
        }
    }

    /// An incremental run of `options.table` (the export's source is then ignored).
    pub fn with_incremental(mut self, options: IncrementalOptions) -> Self {
        self.incremental = Some(options);
        self
    }

    /// The catalog's name.
    pub fn with_catalog_name(mut self, name: impl Into<String>) -> Self {
        self.catalog_name = name.into();
        self
    }

    /// Where a new table goes.
    pub fn with_warehouse(mut self, warehouse: impl Into<String>) -> Self {
        self.warehouse = Some(warehouse.into());
        self
    }

    crate::common::target_setters!();
}

/// What an export into an Iceberg table did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IcebergStats {
    /// The export's own statistics.
    pub export: PartitionedStats,
    /// The snapshot that made the rows visible.
    pub snapshot_id: i64,
    /// Its sequence number.
    pub sequence_number: i64,
    /// The table's new metadata file.
    pub metadata_location: String,
    /// Whether the commit made the table.
    pub created: bool,
    /// Rows added.
    pub rows: u64,
    /// Data files added.
    pub files: usize,
    /// Commits made again on top of another writer's.
    pub retried: usize,
    /// An incremental run's state and kind.
    pub run: Option<crate::common::LakeRun>,
}

/// Runs `f` (blocking storage calls) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::from(ErrorKind::Internal(format!("a storage task: {e}"))))?
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A table's metadata file, read and parsed.
async fn read_metadata(location: &str, storage: &StorageOptions) -> Result<Json> {
    let at = crate::iceberg::located(location, storage)?;
    let shown = location.to_owned();
    let bytes = blocking(move || Ok(at.read()?)).await?;
    // Writers may gzip it (`write.metadata.compression-codec = gzip`: `.gz.metadata.json`).
    let bytes = match bytes.starts_with(&[0x1f, 0x8b]) {
        true => {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                .map_err(|e| {
                    Error::from(ErrorKind::Unexpected(format!(
                        "Iceberg metadata {shown} is not a whole gzip stream: {e}"
                    )))
                })?;
            out
        }
        false => bytes,
    };
    let mut meta: Json = serde_json::from_slice(&bytes).map_err(|e| {
        Error::from(ErrorKind::Unexpected(format!(
            "Iceberg metadata {shown} is not JSON: {e}"
        )))
    })?;
    signed_snapshot_ids(&mut meta);
    Ok(meta)
}

/// Snapshot IDs a writer printed as unsigned numbers past 2^63-1, as the longs they are (the
/// same 64 bits), wherever the metadata names one: every reader and writer here then reads
/// them as `i64`.
fn signed_snapshot_ids(meta: &mut Json) {
    // Only where the key is (indexing a missing key mutably would add a null).
    fn fix(o: &mut Json, key: &str) {
        if let Some(v) = o.get_mut(key)
            && let Some(id) = snapshot_id(v)
        {
            *v = id.into();
        }
    }
    fix(meta, "current-snapshot-id");
    for key in ["snapshots", "snapshot-log"] {
        if let Some(list) = meta.get_mut(key).and_then(Json::as_array_mut) {
            for s in list {
                fix(s, "snapshot-id");
                fix(s, "parent-snapshot-id");
            }
        }
    }
    if let Some(refs) = meta.get_mut("refs").and_then(Json::as_object_mut) {
        for r in refs.values_mut() {
            fix(r, "snapshot-id");
        }
    }
}

/// A snapshot ID as the metadata spells it: a long, or (as some writers print them) the
/// unsigned number of the same 64 bits.
pub(crate) fn snapshot_id(v: &Json) -> Option<i64> {
    // Two's complement: the same 64 bits, as Java's long holds them.
    v.as_i64().or_else(|| v.as_u64().map(|u| u as i64))
}

/// A random snapshot ID (positive, as Iceberg's writers make them).
fn new_snapshot_id() -> i64 {
    let hex = crate::common::new_uuid().replace('-', "");
    i64::from_str_radix(&hex[..15], 16).unwrap_or(1).max(1)
}

/// The Iceberg name of a transform.
fn transform_name(t: Transform) -> String {
    match t {
        Transform::Identity => "identity".into(),
        Transform::Year => "year".into(),
        Transform::Month => "month".into(),
        Transform::Day => "day".into(),
        Transform::Hour => "hour".into(),
        Transform::Bucket(n) => format!("bucket[{n}]"),
        Transform::Truncate(w) => format!("truncate[{w}]"),
    }
}

/// A transform from its Iceberg name.
fn parse_transform(name: &str) -> Option<Transform> {
    let arg = |prefix: &str| -> Option<u32> {
        name.strip_prefix(prefix)?
            .strip_prefix('[')?
            .strip_suffix(']')?
            .parse()
            .ok()
    };
    Some(match name {
        "identity" => Transform::Identity,
        "year" => Transform::Year,
        "month" => Transform::Month,
        "day" => Transform::Day,
        "hour" => Transform::Hour,
        _ => match (arg("bucket"), arg("truncate")) {
            (Some(n), _) => Transform::Bucket(n),
            (_, Some(w)) => Transform::Truncate(w),
            _ => return None,
        },
    })
}

/// The table's current schema and default partition spec, from its metadata.
pub(crate) fn current_schema(meta: &Json) -> Option<&Json> {
    let id = meta["current-schema-id"].as_i64()?;
    meta["schemas"]
        .as_array()?
        .iter()
        .find(|s| s["schema-id"].as_i64() == Some(id))
}

fn default_spec(meta: &Json) -> (i64, Vec<Json>) {
    let id = meta["default-spec-id"].as_i64().unwrap_or(0);
    let fields = meta["partition-specs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["spec-id"].as_i64() == Some(id))
        .and_then(|s| s["fields"].as_array().cloned())
        .unwrap_or_default();
    (id, fields)
}

/// The table's partition spec as layout fields (its columns by name).
fn spec_layout(meta: &Json, name: &str) -> Result<Vec<PartitionField>> {
    let schema = current_schema(meta);
    let (_, fields) = default_spec(meta);
    fields
        .iter()
        .map(|f| {
            let transform = f["transform"].as_str().unwrap_or_default();
            let column = schema
                .and_then(|s| s["fields"].as_array())
                .into_iter()
                .flatten()
                .find(|c| c["id"] == f["source-id"])
                .and_then(|c| c["name"].as_str());
            match (column, parse_transform(transform)) {
                (Some(column), Some(t)) => Ok(PartitionField::new(column, t)),
                _ => Err(ErrorKind::Usage(format!(
                    "Iceberg table {name}: partition field {} ({transform} of field {}) is not \
                     one pgarrow writes (a transform of a top-level column)",
                    f["name"], f["source-id"]
                ))
                .into()),
            }
        })
        .collect()
}

/// The metadata file's version number (`00003-<uuid>.metadata.json`), else the log's length.
fn metadata_version(location: &str, meta: &Json) -> i64 {
    let name = location.rsplit('/').next().unwrap_or_default();
    name.split_once('-')
        .and_then(|(v, _)| v.parse::<i64>().ok())
        .unwrap_or_else(|| {
            meta["metadata-log"]
                .as_array()
                .map_or(0, |l| l.len() as i64)
        })
}

/// A local warehouse as a `file:` URI of its absolute path (as Iceberg's own writers name
/// local files: readers built on iceberg-rust refuse a bare path), an object URL as given.
fn absolute(path: &str) -> Result<String> {
    if path.contains("://") {
        return Ok(path.trim_end_matches('/').to_owned());
    }
    let p = std::path::absolute(path)
        .map_err(|e| Error::from(ErrorKind::Usage(format!("warehouse {path}: {e}"))))?;
    Ok(format!(
        "file://{}",
        p.to_string_lossy().trim_end_matches('/')
    ))
}

/// Where a path of an Iceberg table's metadata is. A `file:` URI (`file:///abs`, Java's
/// `file:/abs`) names the path after its scheme as it is, not percent-decoded, as pyiceberg
/// and iceberg-rust read it (a partition directory `s=a%2Fb` is a file of that name); a bare
/// path (tables pgarrow wrote before it wrote URIs, and other writers') and an object URL as
/// any location.
///
/// # Errors
/// A `file:` URI naming another host; an object URL's.
pub(crate) fn located(path: &str, storage: &pgarrow::io::StorageOptions) -> Result<Location> {
    let local = match path.strip_prefix("file://") {
        Some(rest) if rest.starts_with('/') => Some(rest),
        Some(rest) => match rest.strip_prefix("localhost") {
            Some(abs) if abs.starts_with('/') => Some(abs),
            _ => {
                return Err(ErrorKind::Unexpected(format!(
                    "{path}: a file: URI of another host, which pgarrow cannot read"
                ))
                .into());
            }
        },
        None => path
            .strip_prefix("file:")
            .filter(|rest| rest.starts_with('/')),
    };
    match local {
        Some(abs) => Ok(Location::Local(std::path::PathBuf::from(abs))),
        None => Ok(Location::parse(path, storage)?),
    }
}

/// Exports `source` into the Iceberg table `target` describes, over
/// `partitions.connections` connections reading one snapshot, and commits the files in one
/// snapshot.
///
/// # Errors
/// The table exists and [`IfExists::Fail`]; a new table without a warehouse; its columns
/// differ from the export's (named); a column of a type Iceberg cannot hold (named); a table
/// of another format version; a replace raced by another commit; the export's errors; the
/// catalog's; storage errors. The table is then as it was, and the files written are removed.
pub async fn export_to_iceberg(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    target: &IcebergTarget,
    hooks: Hooks<'_>,
) -> Result<IcebergStats> {
    let name = format!("{}.{}", target.namespace, target.table);
    let mut catalog = SqlCatalog::connect(&target.catalog, &target.catalog_name).await?;
    let result = export(
        &mut catalog,
        config,
        source,
        options,
        partitions,
        target,
        hooks,
        &name,
    )
    .await;
    catalog.close().await;
    result.map_err(|e| e.context(format!("Iceberg table {name}")))
}

#[allow(clippy::too_many_arguments)]
async fn export(
    catalog: &mut SqlCatalog,
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    target: &IcebergTarget,
    hooks: Hooks<'_>,
    name: &str,
) -> Result<IcebergStats> {
    let (ns, table) = (target.namespace.as_str(), target.table.as_str());
    let base_location = catalog.current(ns, table).await?;
    let base = match &base_location {
        Some(loc) => Some(read_metadata(loc, &target.storage).await?),
        None => None,
    };
    // An incremental run goes on from the state the table's last commit carries: appended
    // (a restart replaces the table's rows).
    let previous = match (&base, &target.incremental) {
        (Some(meta), Some(_)) => last_state(meta)?,
        _ => None,
    };
    let if_exists = crate::run::if_exists(
        target.incremental.as_ref(),
        base.is_some(),
        previous.is_some(),
        target.if_exists,
    )?;
    if let Some(meta) = &base {
        if if_exists == IfExists::Fail {
            return Err(ErrorKind::Usage(format!(
                "Iceberg table {name} exists: append to it or replace it (--if-exists append, \
                 --if-exists replace)"
            ))
            .into());
        }
        writable(meta)?;
    }
    let location = match (&base, &target.warehouse) {
        (Some(meta), _) => meta["location"]
            .as_str()
            .ok_or_else(|| {
                Error::from(ErrorKind::Unexpected("its metadata has no location".into()))
            })?
            .trim_end_matches('/')
            .to_owned(),
        (None, Some(w)) => format!("{}/{ns}.db/{table}", absolute(w)?),
        (None, None) => {
            return Err(ErrorKind::Usage(
                "the table is new: give the warehouse its files go under (--warehouse PATH)".into(),
            )
            .into());
        }
    };
    let mut layout = target.layout.clone();
    // An export with partitions of its own into a table partitioned otherwise gives the table
    // a new partition spec in its commit (the old files keep theirs).
    let mut respec = false;
    if let Some(meta) = &base {
        let theirs = spec_layout(meta, name)?;
        if layout.partitions.is_empty() {
            layout.partitions = theirs;
        } else {
            respec = layout.partitions != theirs;
        }
    }
    let layout = layout.with_partition_columns_kept(true);
    // The files keep the table's field IDs for its columns; new columns are numbered after
    // its last.
    let ids = match &base {
        Some(meta) => schema::known_ids(
            current_schema(meta).map_or(&Json::Null, |s| &s["fields"]),
            meta["last-column-id"].as_i64().unwrap_or(0),
        ),
        None => FieldIds::default(),
    };
    let data_dir = format!("{location}/data");
    let files = DirTarget::new(
        crate::iceberg::located(&data_dir, &target.storage)?,
        Format::Parquet,
    )
    // Iceberg's readers read the files by the table's schema, which has no JSON or
    // geometry types: the files say plain text and binary too (pyiceberg refuses an
    // Arrow extension type it does not know).
    .with_options(
        target
            .options
            .clone()
            .with_known_field_ids(ids.clone())
            .with_arrow_extensions(false)
            .with_forms(crate::common::value_forms(crate::common::Format::Iceberg)),
    )
    .with_layout(layout.clone())
    .with_file_prefix(crate::common::new_uuid());
    let run = target.incremental.as_ref().map(|r| (r, previous.as_ref()));
    let (written, run) =
        crate::run::export(config, source, options, partitions, &files, hooks, run).await?;
    let manifest = written.manifest().clone();
    let arrow = manifest.schema.clone().ok_or_else(|| {
        Error::from(ErrorKind::Internal(
            "the export's manifest has no schema".into(),
        ))
    })?;
    let ours = schema::iceberg_schema(&arrow, &ids)?;
    // The table's schema after this commit, and whether it is a new one.
    let (schema_json, evolved, base_schema_id) = match &base {
        None => (ours.json(0), false, None),
        Some(meta) => {
            let current = current_schema(meta).ok_or_else(|| {
                Error::from(ErrorKind::Unexpected(
                    "its metadata has no current schema".into(),
                ))
            })?;
            let replace = if_exists == IfExists::Replace;
            match schema::evolve(current, &ours, replace) {
                Err(why) => {
                    return Err(ErrorKind::Usage(format!("{why}; nothing was committed")).into());
                }
                Ok(None) => (current.clone(), false, current["schema-id"].as_i64()),
                Ok(Some(fields)) => {
                    let new = json!({"type": "struct", "schema-id": next_schema_id(meta), "fields": fields});
                    (new, true, current["schema-id"].as_i64())
                }
            }
        }
    };
    let fields: Vec<Json> = schema_json["fields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let types = schema::primitive_types(&fields);
    let (mut spec_id, mut spec) = (0, Vec::new());
    for (k, field) in layout.partitions.iter().enumerate() {
        let source_id = ours.id_of(&field.column).ok_or_else(|| {
            Error::from(ErrorKind::Usage(format!(
                "partition {field}: no column \"{}\"",
                field.column
            )))
        })?;
        spec.push(SpecField {
            source_id,
            field_id: 1000 + k as i64,
            name: field.name(),
            transform: transform_name(field.transform),
            source_type: types.get(&(source_id as i32)).cloned().unwrap_or_default(),
        });
    }
    let base_spec_id = base.as_ref().map(|meta| default_spec(meta).0);
    if let Some(meta) = &base {
        if respec {
            spec_id = evolved_spec(meta, &mut spec);
        } else {
            // The table's own partition field IDs and names.
            let (id, fields) = default_spec(meta);
            spec_id = id;
            for (ours, theirs) in spec.iter_mut().zip(&fields) {
                ours.field_id = theirs["field-id"].as_i64().unwrap_or(ours.field_id);
                ours.name = theirs["name"].as_str().unwrap_or(&ours.name).to_owned();
            }
        }
    }
    let last_column_id = base
        .as_ref()
        .and_then(|m| m["last-column-id"].as_i64())
        .unwrap_or(0)
        .max(i64::from(ours.last_id));
    let snapshot_id = new_snapshot_id();
    let data_files = {
        let (manifest, spec, types, storage, data_dir) = (
            manifest.clone(),
            spec.clone(),
            types.clone(),
            target.storage.clone(),
            data_dir.clone(),
        );
        blocking(move || describe_files(&data_dir, &storage, &manifest, &spec, &types)).await?
    };
    let metadata_dir = format!("{location}/metadata");
    let manifest_path = format!("{metadata_dir}/{}-m0.avro", crate::common::new_uuid());
    let manifest_bytes =
        manifest::write_manifest(&data_files, &spec, spec_id, &schema_json, snapshot_id)?;
    let manifest_length = manifest_bytes.len() as u64;
    let mut cleanup = Cleanup::new(&target.storage);
    cleanup.write(&manifest_path, manifest_bytes).await?;
    let rows: u64 = data_files.iter().map(|f| f.rows).sum();
    let bytes: u64 = data_files.iter().map(|f| f.bytes).sum();
    let new_entry = manifest::list_entry(
        &manifest_path,
        manifest_length,
        &spec,
        spec_id,
        0,
        snapshot_id,
        &data_files,
    );
    let files = data_files.iter().map(|f| f.path.clone()).collect();
    let (run, run_state) = crate::run::finish(run, rows, files)?;
    let mut state = base.clone().zip(base_location.clone());
    let mut tries = Retries::new(
        target.retries,
        format!("Iceberg table {}.{}", target.namespace, target.table),
    );
    let (sequence, metadata_location) = loop {
        let sequence = state
            .as_ref()
            .and_then(|(m, _)| m["last-sequence-number"].as_i64())
            .unwrap_or(0)
            + 1;
        // The manifest list: the new manifest, then (an append) the current snapshot's.
        let mut entries = vec![set_sequence(new_entry.clone(), sequence)];
        let parent = state
            .as_ref()
            .and_then(|(m, _)| m["current-snapshot-id"].as_i64())
            .filter(|id| *id != -1);
        let previous_snapshot = match (&state, parent) {
            (Some((meta, _)), Some(parent)) => snapshot(meta, parent).cloned(),
            _ => None,
        };
        if if_exists == IfExists::Append
            && let Some(prev) = &previous_snapshot
        {
            let list = prev["manifest-list"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let at = crate::iceberg::located(&list, &target.storage)?;
            let bytes = blocking(move || Ok(at.read()?)).await?;
            entries.extend(manifest::read_manifest_list(&bytes)?);
        }
        let list_path = format!(
            "{metadata_dir}/snap-{snapshot_id}-{}-{}.avro",
            tries.retried() + 1,
            crate::common::new_uuid()
        );
        let list_bytes = manifest::write_manifest_list(&entries, snapshot_id, parent, sequence)?;
        cleanup.write(&list_path, list_bytes).await?;
        let mut summary = summary(
            if_exists,
            previous_snapshot.as_ref(),
            data_files.len(),
            rows,
            bytes,
            &manifest,
        );
        if let Some(text) = &run_state {
            summary[STATE_KEY] = Json::String(text.clone());
        }
        let snap = new_snapshot(
            snapshot_id,
            sequence,
            &list_path,
            summary,
            &schema_json,
            parent,
        );
        let (meta, version) = match &state {
            None => (new_metadata(&location, &ours, &spec, snap), 0),
            Some((meta, at)) => {
                let mut next = next_metadata(meta, at, snap);
                if evolved {
                    add_schema(&mut next, &schema_json, last_column_id);
                }
                if respec {
                    add_spec(&mut next, spec_id, &spec);
                }
                (next, metadata_version(at, meta) + 1)
            }
        };
        let meta_path = format!(
            "{metadata_dir}/{version:05}-{}.metadata.json",
            crate::common::new_uuid()
        );
        let text = serde_json::to_vec_pretty(&meta)
            .map_err(|e| Error::from(ErrorKind::Internal(format!("metadata JSON: {e}"))))?;
        cleanup.write(&meta_path, text).await?;
        let swapped = match &state {
            None => {
                catalog.ensure_namespace(ns).await?;
                catalog.create(ns, table, &meta_path).await?
            }
            Some((_, at)) => catalog.swap(ns, table, at, &meta_path).await?,
        };
        if swapped {
            break (sequence, meta_path);
        }
        // Another writer committed first: what this attempt wrote names nothing.
        cleanup.remove(&[&list_path, &meta_path]).await;
        match (&state, if_exists) {
            (Some(_), IfExists::Replace) => {
                return Err(ErrorKind::Conflict(
                    "another writer committed to the table while it was being replaced; \
                     nothing was committed"
                        .into(),
                )
                .into());
            }
            // Another writer made the table first: only an append goes on, onto it.
            (None, IfExists::Fail | IfExists::Replace) => {
                return Err(ErrorKind::Conflict(
                    "another writer made the table during the export; nothing was committed \
                     (--if-exists append adds to it)"
                        .into(),
                )
                .into());
            }
            _ => {}
        }
        tries.lost("another writer committed first").await?;
        let now = catalog.current(ns, table).await?.ok_or_else(|| {
            Error::from(ErrorKind::Conflict(
                "the table was dropped during the export; nothing was committed".into(),
            ))
        })?;
        let meta = read_metadata(&now, &target.storage).await?;
        writable(&meta)?;
        crate::run::check_race(run.as_ref(), previous.as_ref(), last_state(&meta)?.as_ref())?;
        let now_schema = current_schema(&meta);
        let (now_spec_id, now_spec) = default_spec(&meta);
        let unchanged = match base_schema_id {
            Some(id) => {
                now_schema.and_then(|s| s["schema-id"].as_i64()) == Some(id)
                    && Some(now_spec_id) == base_spec_id
            }
            // The table another writer made must be this export's: its columns, numbered
            // alike, and its partitioning.
            None => {
                now_schema.is_some_and(|s| {
                    s["schema-id"] == schema_json["schema-id"]
                        && schema::evolve(s, &ours, false) == Ok(None)
                }) && now_spec_id == spec_id
                    && now_spec.len() == spec.len()
                    && now_spec.iter().zip(&spec).all(|(theirs, ours)| {
                        theirs["source-id"].as_i64() == Some(ours.source_id)
                            && theirs["transform"].as_str() == Some(ours.transform.as_str())
                            && theirs["field-id"].as_i64() == Some(ours.field_id)
                    })
            }
        };
        if !unchanged {
            return Err(ErrorKind::Conflict(
                "another writer changed the table's schema or partitioning during the export; \
                 nothing was committed"
                    .into(),
            )
            .into());
        }
        state = Some((meta, now));
    };
    cleanup.keep();
    Ok(IcebergStats {
        export: written.keep(),
        snapshot_id,
        sequence_number: sequence,
        metadata_location,
        created: base.is_none() && tries.retried() == 0,
        rows,
        files: data_files.len(),
        retried: tries.retried(),
        run,
    })
}

/// The snapshot summary key of an incremental run's state.
const STATE_KEY: &str = "pgarrow.incremental";

/// The state of the last incremental run the table's current snapshot descends from.
fn last_state(meta: &Json) -> Result<Option<IncrementalState>> {
    let mut id = meta["current-snapshot-id"].as_i64();
    while let Some(snap) = id.filter(|i| *i != -1).and_then(|i| snapshot(meta, i)) {
        if let Some(text) = snap["summary"][STATE_KEY].as_str() {
            let at = format!("snapshot {}", snap["snapshot-id"]);
            return crate::run::parse_state(text, &at).map(Some);
        }
        id = snap["parent-snapshot-id"].as_i64();
    }
    Ok(None)
}

/// Files the commit writes beside the data, removed unless it lands.
struct Cleanup {
    storage: StorageOptions,
    paths: Vec<String>,
    kept: bool,
}

impl Cleanup {
    fn new(storage: &StorageOptions) -> Cleanup {
        Cleanup {
            storage: storage.clone(),
            paths: Vec::new(),
            kept: false,
        }
    }

    async fn write(&mut self, path: &str, bytes: Vec<u8>) -> Result<()> {
        let at = crate::iceberg::located(path, &self.storage)?;
        self.paths.push(path.to_owned());
        blocking(move || {
            if let Some(dir) = at.as_local().and_then(|p| p.parent()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::from(ErrorKind::Usage(format!("{}: {e}", dir.display())))
                })?;
            }
            Ok(at.write_atomically(&bytes)?)
        })
        .await
    }

    /// Removes `path` too unless kept (a file written otherwise).
    fn track(&mut self, path: &str) {
        self.paths.push(path.to_owned());
    }

    async fn remove(&mut self, paths: &[&str]) {
        for p in paths {
            if let Ok(at) = crate::iceberg::located(p, &self.storage) {
                let _ = blocking(move || Ok(at.remove()?)).await;
            }
            self.paths.retain(|x| x != p);
        }
    }

    fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for p in &self.paths {
            if let Ok(at) = crate::iceberg::located(p, &self.storage) {
                let _ = at.remove();
            }
        }
    }
}

/// A snapshot's entry in the table metadata: made now, its manifest list at `list`, of the
/// schema `schema`, after `parent`.
fn new_snapshot(
    snapshot_id: i64,
    sequence: i64,
    list: &str,
    summary: Json,
    schema: &Json,
    parent: Option<i64>,
) -> Json {
    let mut snap = json!({
        "snapshot-id": snapshot_id,
        "sequence-number": sequence,
        "timestamp-ms": now_ms(),
        "manifest-list": list,
        "summary": summary,
        "schema-id": schema["schema-id"],
    });
    if let Some(p) = parent {
        snap["parent-snapshot-id"] = json!(p);
    }
    snap
}

/// A manifest list entry with its sequence numbers set.
fn set_sequence(entry: crate::avro::Value, sequence: i64) -> crate::avro::Value {
    use crate::avro::Value;
    match entry {
        Value::Record(fields) => Value::Record(
            fields
                .into_iter()
                .map(|(k, v)| match k.as_str() {
                    "sequence_number" | "min_sequence_number" => (k, Value::Long(sequence)),
                    _ => (k, v),
                })
                .collect(),
        ),
        other => other,
    }
}

/// Snapshot `id` of the metadata.
fn snapshot(meta: &Json, id: i64) -> Option<&Json> {
    meta["snapshots"]
        .as_array()?
        .iter()
        .find(|s| snapshot_id(&s["snapshot-id"]) == Some(id))
}

/// Refuses a table pgarrow cannot add files to, naming why.
fn writable(meta: &Json) -> Result<()> {
    let version = meta["format-version"].as_i64().unwrap_or(1);
    if version != 2 {
        return Err(ErrorKind::InvalidInput(format!(
            "it is of Iceberg format version {version}, and pgarrow writes version 2 tables \
             (upgrade it with `ALTER TABLE ... SET TBLPROPERTIES ('format-version'='2')` in \
             Spark, or pyiceberg's upgrade_table_version)"
        ))
        .into());
    }
    if meta["properties"]["write.parquet.field-id.enabled"] == json!("false") {
        return Err(ErrorKind::InvalidInput(
            "it maps columns by name (write.parquet.field-id.enabled = false)".into(),
        )
        .into());
    }
    Ok(())
}

/// The snapshot summary: the operation, what it added, the table's totals where the previous
/// snapshot gave them, and the export's provenance.
fn summary(
    if_exists: IfExists,
    previous: Option<&Json>,
    files: usize,
    rows: u64,
    bytes: u64,
    manifest: &Manifest,
) -> Json {
    let replace = if_exists == IfExists::Replace && previous.is_some();
    let mut s = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        s.insert(k.to_owned(), Json::String(v));
    };
    put(
        "operation",
        if replace { "overwrite" } else { "append" }.into(),
    );
    put("added-data-files", files.to_string());
    put("added-records", rows.to_string());
    put("added-files-size", bytes.to_string());
    let total = |k: &str| -> Option<u64> {
        match previous {
            None => Some(0),
            Some(p) => p["summary"][k].as_str()?.parse().ok(),
        }
    };
    if replace {
        for (deleted, total_key) in [
            ("deleted-data-files", "total-data-files"),
            ("deleted-records", "total-records"),
            ("removed-files-size", "total-files-size"),
        ] {
            if let Some(n) = total(total_key) {
                put(deleted, n.to_string());
            }
        }
        put("total-data-files", files.to_string());
        put("total-records", rows.to_string());
        put("total-files-size", bytes.to_string());
        for k in [
            "total-delete-files",
            "total-position-deletes",
            "total-equality-deletes",
        ] {
            put(k, "0".into());
        }
    } else {
        for (k, added) in [
            ("total-data-files", files as u64),
            ("total-records", rows),
            ("total-files-size", bytes),
        ] {
            if let Some(n) = total(k) {
                put(k, (n + added).to_string());
            }
        }
        for k in [
            "total-delete-files",
            "total-position-deletes",
            "total-equality-deletes",
        ] {
            if let Some(n) = total(k) {
                put(k, n.to_string());
            }
        }
    }
    put("pgarrow", crate::common::provenance(manifest).to_string());
    Json::Object(s)
}

/// The ID a new schema of the table takes: one past its highest.
fn next_schema_id(meta: &Json) -> i64 {
    meta["schemas"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["schema-id"].as_i64())
        .max()
        .unwrap_or(0)
        + 1
}

/// `schema` added to the metadata as its current schema.
fn add_schema(meta: &mut Json, schema: &Json, last_column_id: i64) {
    match meta["schemas"].as_array_mut() {
        Some(a) => a.push(schema.clone()),
        None => meta["schemas"] = json!([schema]),
    }
    meta["current-schema-id"] = schema["schema-id"].clone();
    meta["last-column-id"] = json!(last_column_id);
}

/// The spec ID of the table's spec of `spec`'s fields, numbering them as Iceberg does: a
/// field of a source column and transform some spec of the table has keeps that field's ID
/// and name, a new one is numbered after `last-partition-id`; an existing spec of the same
/// fields is reused, else the spec is a new one, numbered after the table's specs.
fn evolved_spec(meta: &Json, spec: &mut [SpecField]) -> i64 {
    let specs: Vec<&Json> = meta["partition-specs"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut last = meta["last-partition-id"].as_i64().unwrap_or(999);
    for ours in spec.iter_mut() {
        let known = specs
            .iter()
            .flat_map(|s| s["fields"].as_array().into_iter().flatten())
            .find(|f| {
                f["source-id"].as_i64() == Some(ours.source_id)
                    && f["transform"].as_str() == Some(ours.transform.as_str())
            });
        match known {
            Some(f) => {
                ours.field_id = f["field-id"].as_i64().unwrap_or(ours.field_id);
                ours.name = f["name"].as_str().unwrap_or(&ours.name).to_owned();
            }
            None => {
                last += 1;
                ours.field_id = last;
            }
        }
    }
    let same = |s: &&&Json| {
        let fields = s["fields"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        fields.len() == spec.len()
            && fields.iter().zip(spec.iter()).all(|(f, ours)| {
                f["field-id"].as_i64() == Some(ours.field_id)
                    && f["source-id"].as_i64() == Some(ours.source_id)
                    && f["transform"].as_str() == Some(ours.transform.as_str())
            })
    };
    match specs.iter().find(same) {
        Some(s) => s["spec-id"].as_i64().unwrap_or(0),
        None => {
            specs
                .iter()
                .filter_map(|s| s["spec-id"].as_i64())
                .max()
                .unwrap_or(-1)
                + 1
        }
    }
}

/// Makes spec `spec_id` of `spec`'s fields the table's default (added when new).
fn add_spec(meta: &mut Json, spec_id: i64, spec: &[SpecField]) {
    let known = meta["partition-specs"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s["spec-id"].as_i64() == Some(spec_id)));
    if !known {
        let new = json!({"spec-id": spec_id, "fields": spec.iter().map(SpecField::json).collect::<Vec<_>>()});
        match meta["partition-specs"].as_array_mut() {
            Some(a) => a.push(new),
            None => meta["partition-specs"] = json!([new]),
        }
    }
    meta["default-spec-id"] = json!(spec_id);
    let highest = spec.iter().map(|f| f.field_id).max().unwrap_or(999);
    let last = meta["last-partition-id"]
        .as_i64()
        .unwrap_or(999)
        .max(highest);
    meta["last-partition-id"] = json!(last);
}

/// A new table's metadata, its first snapshot `snap`.
fn new_metadata(location: &str, schema: &IcebergSchema, spec: &[SpecField], snap: Json) -> Json {
    let now = snap["timestamp-ms"].clone();
    let id = snap["snapshot-id"].clone();
    json!({
        "format-version": 2,
        "table-uuid": crate::common::new_uuid(),
        "location": location,
        "last-sequence-number": snap["sequence-number"],
        "last-updated-ms": now,
        "last-column-id": schema.last_id,
        "current-schema-id": 0,
        "schemas": [schema.json(0)],
        "default-spec-id": 0,
        "partition-specs": [{"spec-id": 0, "fields": spec.iter().map(SpecField::json).collect::<Vec<_>>()}],
        "last-partition-id": 999 + spec.len() as i64,
        "default-sort-order-id": 0,
        "sort-orders": [{"order-id": 0, "fields": []}],
        "properties": {"created-by": format!("pgarrow {}", env!("CARGO_PKG_VERSION"))},
        "current-snapshot-id": id,
        "refs": {"main": {"snapshot-id": id, "type": "branch"}},
        "snapshots": [snap],
        "snapshot-log": [{"snapshot-id": id, "timestamp-ms": now}],
        "metadata-log": [],
    })
}

/// The metadata after `meta` (at `at`) with snapshot `snap` made current; everything else
/// in it (another writer's properties, statistics, other branches) kept as it was.
fn next_metadata(meta: &Json, at: &str, snap: Json) -> Json {
    let mut m = meta.clone();
    let now = snap["timestamp-ms"].clone();
    let id = snap["snapshot-id"].clone();
    let previous_updated = m["last-updated-ms"].clone();
    m["last-sequence-number"] = snap["sequence-number"].clone();
    m["last-updated-ms"] = now.clone();
    m["current-snapshot-id"] = id.clone();
    if !m["refs"].is_object() {
        m["refs"] = json!({});
    }
    m["refs"]["main"] = json!({"snapshot-id": id, "type": "branch"});
    let push = |m: &mut Json, key: &str, v: Json| match m[key].as_array_mut() {
        Some(a) => a.push(v),
        None => m[key] = json!([v]),
    };
    push(&mut m, "snapshots", snap);
    push(
        &mut m,
        "snapshot-log",
        json!({"snapshot-id": id, "timestamp-ms": now}),
    );
    log_metadata(&mut m, at, previous_updated);
    m
}

/// Adds the metadata file at `at` (last updated `updated`) to `m`'s metadata log, which keeps
/// the newest files the table's property says (Iceberg's default: 100), as Iceberg's own
/// writers do: a mirror commits often.
fn log_metadata(m: &mut Json, at: &str, updated: Json) {
    let entry = json!({"metadata-file": at, "timestamp-ms": updated});
    match m["metadata-log"].as_array_mut() {
        Some(a) => a.push(entry),
        None => m["metadata-log"] = json!([entry]),
    }
    let keep = m["properties"]["write.metadata.previous-versions-max"]
        .as_str()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100)
        .max(1);
    if let Some(log) = m["metadata-log"].as_array_mut()
        && log.len() > keep
    {
        log.drain(..log.len() - keep);
    }
}

/// Where the metadata file after the one at `at` (of metadata `meta`) goes, in `metadata_dir`.
fn next_metadata_path(metadata_dir: &str, at: &str, meta: &Json) -> String {
    let version = metadata_version(at, meta) + 1;
    format!(
        "{metadata_dir}/{version:05}-{}.metadata.json",
        crate::common::new_uuid()
    )
}

/// Each written file as a manifest entry, its statistics read from its footer.
fn describe_files(
    data_dir: &str,
    storage: &StorageOptions,
    manifest: &Manifest,
    spec: &[SpecField],
    types: &std::collections::BTreeMap<i32, String>,
) -> Result<Vec<DataFile>> {
    let root = crate::iceberg::located(data_dir, storage)?;
    manifest
        .files
        .iter()
        .map(|f| {
            let (metadata, _) = root.join_path(&f.path).parquet_metadata()?;
            DataFile::new(data_dir, f, &metadata, spec, types)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_round_trip_their_iceberg_names() {
        for t in [
            Transform::Identity,
            Transform::Year,
            Transform::Month,
            Transform::Day,
            Transform::Hour,
            Transform::Bucket(16),
            Transform::Truncate(4),
        ] {
            assert_eq!(parse_transform(&transform_name(t)), Some(t));
        }
        assert_eq!(parse_transform("void"), None);
        assert!(new_snapshot_id() > 0);
        assert_eq!(
            metadata_version("s3://b/t/metadata/00012-abc.metadata.json", &json!({})),
            12
        );
        assert_eq!(
            metadata_version(
                "/t/metadata/v3.metadata.json",
                &json!({"metadata-log": [1, 2]})
            ),
            2
        );
    }

    #[test]
    fn a_commit_keeps_what_it_does_not_know() {
        let meta = json!({"format-version": 2, "snapshots": [], "x-other": {"a": 1},
            "last-updated-ms": 5, "refs": {"b": {"snapshot-id": 1, "type": "branch"}}});
        let snap = json!({"snapshot-id": 9, "sequence-number": 3, "timestamp-ms": 7});
        let next = next_metadata(&meta, "/m/00001-x.metadata.json", snap);
        assert_eq!(next["x-other"], json!({"a": 1}));
        assert_eq!(next["refs"]["b"]["snapshot-id"], json!(1));
        assert_eq!(next["refs"]["main"]["snapshot-id"], json!(9));
        assert_eq!(next["metadata-log"][0]["timestamp-ms"], json!(5));
        assert_eq!(next["last-sequence-number"], json!(3));
        assert!(writable(&json!({"format-version": 1})).is_err());
        assert!(writable(&next).is_ok());
        // The metadata log keeps the newest files the table's property says.
        let mut meta = next;
        meta["properties"] = json!({"write.metadata.previous-versions-max": "3"});
        for k in 2..8 {
            let snap = json!({"snapshot-id": 9 + k, "sequence-number": 3 + k, "timestamp-ms": 7});
            meta = next_metadata(&meta, &format!("/m/{k:05}-x.metadata.json"), snap);
        }
        let log: Vec<&str> = meta["metadata-log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["metadata-file"].as_str().unwrap())
            .collect();
        assert_eq!(
            log,
            [
                "/m/00005-x.metadata.json",
                "/m/00006-x.metadata.json",
                "/m/00007-x.metadata.json"
            ]
        );
    }
}
