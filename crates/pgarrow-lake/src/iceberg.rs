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
pub(crate) mod spec;

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

use crate::cleanup::Cleanup;
use crate::common::IfExists;
use crate::retry::Retries;
use catalog::{Catalog, Committed, Loaded, SqlCatalog};
use manifest::{DataFile, SpecField};
pub use read::open_iceberg;
use schema::IcebergSchema;
use spec::{PartitionSpec, Snapshot, TableMetadata, TableRequirement, TableUpdate};

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
async fn read_metadata(location: &str, storage: &StorageOptions) -> Result<TableMetadata> {
    let at = crate::iceberg::located(location, storage)?;
    let shown = location.to_owned();
    let bytes = blocking(move || Ok(at.read()?)).await?;
    // Writers may gzip it (`write.metadata.compression-codec = gzip`: `.gz.metadata.json`).
    let bytes = match bytes.starts_with(&[0x1f, 0x8b]) {
        true => {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                .map_err(|e| {
                    Error::from(ErrorKind::InvalidInput(format!(
                        "Iceberg metadata {shown} is not a whole gzip stream: {e}"
                    )))
                })?;
            out
        }
        false => bytes,
    };
    TableMetadata::parse(&bytes).map_err(|e| {
        Error::from(ErrorKind::InvalidInput(format!(
            "Iceberg metadata {shown} is not Iceberg table metadata: {e}"
        )))
    })
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

/// The table's partition spec as layout fields (its columns by name).
fn spec_layout(meta: &TableMetadata, name: &str) -> Result<Vec<PartitionField>> {
    let schema = meta.current_schema();
    let (_, fields) = meta.default_spec();
    fields
        .iter()
        .map(|f| {
            let column = schema
                .and_then(|s| s.field_by_id(f.source_id))
                .map(|c| c.name.as_str());
            match (column, parse_transform(&f.transform)) {
                (Some(column), Some(t)) => Ok(PartitionField::new(column, t)),
                _ => Err(ErrorKind::Usage(format!(
                    "Iceberg table {name}: partition field {:?} ({} of field {}) is not \
                     one pgarrow writes (a transform of a top-level column)",
                    f.name, f.transform, f.source_id
                ))
                .into()),
            }
        })
        .collect()
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
    let mut catalog =
        SqlCatalog::connect(&target.catalog, &target.catalog_name, &target.storage).await?;
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
    let base = catalog.load(ns, table).await?;
    let base_meta = base.as_ref().map(|b| &b.metadata);
    // An incremental run goes on from the state the table's last commit carries: appended
    // (a restart replaces the table's rows).
    let previous = match (base_meta, &target.incremental) {
        (Some(meta), Some(_)) => last_state(meta)?,
        _ => None,
    };
    let if_exists = crate::run::if_exists(
        target.incremental.as_ref(),
        base.is_some(),
        previous.is_some(),
        target.if_exists,
    )?;
    if let Some(meta) = base_meta {
        if if_exists == IfExists::Fail {
            return Err(ErrorKind::Usage(format!(
                "Iceberg table {name} exists: append to it or replace it (--if-exists append, \
                 --if-exists replace)"
            ))
            .into());
        }
        writable(meta)?;
    }
    let location = match (base_meta, &target.warehouse) {
        (Some(meta), _) => meta.location.trim_end_matches('/').to_owned(),
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
    if let Some(meta) = base_meta {
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
    let ids = match base_meta {
        Some(meta) => schema::known_ids(
            meta.current_schema().map_or(&[][..], |s| &s.fields),
            meta.last_column_id,
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
    let change = Change::new(base_meta, &ours, &layout, if_exists, respec)?;
    let snapshot_id = new_snapshot_id();
    let data_files = {
        let (manifest, spec, types, storage, data_dir) = (
            manifest.clone(),
            change.spec.clone(),
            schema::primitive_types(&change.schema.fields),
            target.storage.clone(),
            data_dir.clone(),
        );
        blocking(move || describe_files(&data_dir, &storage, &manifest, &spec, &types)).await?
    };
    let metadata_dir = format!("{location}/metadata");
    let manifest_path = format!("{metadata_dir}/{}-m0.avro", crate::common::new_uuid());
    let manifest_bytes = manifest::write_manifest(
        &data_files,
        &change.spec,
        change.spec_id,
        &change.schema,
        snapshot_id,
    )?;
    let manifest_length = manifest_bytes.len() as u64;
    let mut cleanup = Cleanup::new();
    cleanup
        .write(located(&manifest_path, &target.storage)?, manifest_bytes)
        .await?;
    let rows: u64 = data_files.iter().map(|f| f.rows).sum();
    let bytes: u64 = data_files.iter().map(|f| f.bytes).sum();
    let new_entry = manifest::list_entry(
        &manifest_path,
        manifest_length,
        &change.spec,
        change.spec_id,
        0,
        snapshot_id,
        &data_files,
    );
    let files = data_files.iter().map(|f| f.path.clone()).collect();
    let (run, run_state) = crate::run::finish(run, rows, files)?;
    let adding = Adding {
        ns,
        table,
        location: &location,
        ours: &ours,
        change: &change,
        if_exists,
        snapshot_id,
        new_entry: &new_entry,
        files: data_files.len(),
        rows,
        bytes,
        manifest: &manifest,
        run_state: run_state.as_ref(),
    };
    let existed = base.is_some();
    let mut tries = Retries::new(target.retries, format!("Iceberg table {name}"));
    let (sequence, done) = adding
        .commit(catalog, target, base, &mut tries, &mut cleanup, |now| {
            crate::run::check_race(run.as_ref(), previous.as_ref(), last_state(now)?.as_ref())
        })
        .await?;
    cleanup.keep();
    Ok(IcebergStats {
        export: written.keep(),
        snapshot_id,
        sequence_number: sequence,
        metadata_location: done.location,
        created: !existed && tries.retried() == 0,
        rows,
        files: data_files.len(),
        retried: tries.retried(),
        run,
    })
}

/// What an export changes of the table besides its snapshot: its schema after the export
/// (a new one when `evolved`), and the partition spec its files are written by (a new default
/// when `respec`).
struct Change {
    schema: spec::Schema,
    evolved: bool,
    last_column_id: i64,
    spec_id: i64,
    spec: Vec<SpecField>,
    respec: bool,
    /// The table's current schema and default spec the export began on.
    base_schema_id: Option<i64>,
    base_spec_id: Option<i64>,
}

impl Change {
    fn new(
        base: Option<&TableMetadata>,
        ours: &IcebergSchema,
        layout: &Layout,
        if_exists: IfExists,
        respec: bool,
    ) -> Result<Change> {
        let (schema, evolved, base_schema_id) = match base {
            None => (ours.schema(0), false, None),
            Some(meta) => {
                let current = meta.current_schema().ok_or_else(|| {
                    Error::from(ErrorKind::InvalidInput(
                        "its metadata has no current schema".into(),
                    ))
                })?;
                let replace = if_exists == IfExists::Replace;
                match schema::evolve(current, ours, replace) {
                    Err(why) => {
                        return Err(
                            ErrorKind::Usage(format!("{why}; nothing was committed")).into()
                        );
                    }
                    Ok(None) => (current.clone(), false, Some(current.schema_id)),
                    Ok(Some(fields)) => (
                        spec::Schema::new(meta.next_schema_id(), fields),
                        true,
                        Some(current.schema_id),
                    ),
                }
            }
        };
        let types = schema::primitive_types(&schema.fields);
        let mut spec = Vec::new();
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
        let mut spec_id = 0;
        if let Some(meta) = base {
            if respec {
                spec_id = evolved_spec(meta, &mut spec);
            } else {
                // The table's own partition field IDs and names.
                let (id, fields) = meta.default_spec();
                spec_id = id;
                for (ours, theirs) in spec.iter_mut().zip(fields) {
                    ours.field_id = theirs.field_id.unwrap_or(ours.field_id);
                    ours.name = theirs.name.clone();
                }
            }
        }
        let last_column_id = base
            .map_or(0, |m| m.last_column_id)
            .max(i64::from(ours.last_id));
        Ok(Change {
            schema,
            evolved,
            last_column_id,
            spec_id,
            spec,
            respec,
            base_schema_id,
            base_spec_id: base.map(|m| m.default_spec().0),
        })
    }

    /// The updates besides the snapshot's, on `meta`.
    fn updates(&self, meta: &TableMetadata) -> Vec<TableUpdate> {
        let mut out = Vec::new();
        if self.evolved {
            out.push(TableUpdate::AddSchema {
                schema: self.schema.clone(),
                last_column_id: self.last_column_id,
            });
            out.push(TableUpdate::SetCurrentSchema { schema_id: -1 });
        }
        if self.respec {
            out.extend(spec_updates(meta, self.spec_id, &self.spec));
        }
        out
    }

    /// What the change needs of the table besides its snapshot: the schema it evolves and the
    /// spec it replaces are still current.
    fn requirements(&self) -> Vec<TableRequirement> {
        let mut out = Vec::new();
        if let (true, Some(id)) = (self.evolved, self.base_schema_id) {
            out.push(TableRequirement::AssertCurrentSchemaId {
                current_schema_id: id,
            });
        }
        if let (true, Some(id)) = (self.respec, self.base_spec_id) {
            out.push(TableRequirement::AssertDefaultSpecId {
                default_spec_id: id,
            });
        }
        out
    }

    /// Whether the table another writer committed to (`now`) still takes this change: its
    /// schema and spec are the ones the export began on (or, for a table the export meant to
    /// make, the export's own).
    fn still_fits(&self, now: &TableMetadata, ours: &IcebergSchema) -> bool {
        let now_schema = now.current_schema();
        let (now_spec_id, now_spec) = now.default_spec();
        match self.base_schema_id {
            Some(id) => {
                now_schema.map(|s| s.schema_id) == Some(id)
                    && Some(now_spec_id) == self.base_spec_id
            }
            // The table another writer made must be this export's: its columns, numbered
            // alike, and its partitioning.
            None => {
                now_schema.is_some_and(|s| {
                    s.schema_id == self.schema.schema_id
                        && schema::evolve(s, ours, false) == Ok(None)
                }) && now_spec_id == self.spec_id
                    && now_spec.len() == self.spec.len()
                    && now_spec.iter().zip(&self.spec).all(|(theirs, ours)| {
                        theirs.source_id == ours.source_id
                            && theirs.transform == ours.transform
                            && theirs.field_id == Some(ours.field_id)
                    })
            }
        }
    }
}

/// An export's files, ready to commit as a snapshot of the table.
struct Adding<'a> {
    ns: &'a str,
    table: &'a str,
    location: &'a str,
    ours: &'a IcebergSchema,
    change: &'a Change,
    if_exists: IfExists,
    snapshot_id: i64,
    new_entry: &'a crate::avro::Value,
    files: usize,
    rows: u64,
    bytes: u64,
    manifest: &'a Manifest,
    run_state: Option<&'a String>,
}

impl Adding<'_> {
    /// Commits the snapshot onto `base` (none: a new table), onto each newer table another
    /// writer committed while `tries` allow and the change still fits it (`race`: an
    /// incremental run's check of the table now). Its sequence number and the table after it.
    async fn commit(
        &self,
        catalog: &mut SqlCatalog,
        target: &IcebergTarget,
        base: Option<Loaded>,
        tries: &mut Retries,
        cleanup: &mut Cleanup,
        race: impl Fn(&TableMetadata) -> Result<()>,
    ) -> Result<(i64, Box<Loaded>)> {
        let metadata_dir = format!("{}/metadata", self.location);
        let mut state = base;
        loop {
            let meta = state.as_ref().map(|l| &l.metadata);
            let sequence = meta.and_then(|m| m.last_sequence_number).unwrap_or(0) + 1;
            // The manifest list: the new manifest, then (an append) the current snapshot's.
            let mut entries = vec![set_sequence(self.new_entry.clone(), sequence)];
            let parent = meta.and_then(TableMetadata::current_snapshot_id);
            let previous = meta.and_then(TableMetadata::current_snapshot);
            if self.if_exists == IfExists::Append
                && let Some(list) = previous.and_then(|p| p.manifest_list.clone())
            {
                let at = crate::iceberg::located(&list, &target.storage)?;
                let bytes = blocking(move || Ok(at.read()?)).await?;
                entries.extend(manifest::read_manifest_list(&bytes)?);
            }
            let list_path = format!(
                "{metadata_dir}/snap-{}-{}-{}.avro",
                self.snapshot_id,
                tries.retried() + 1,
                crate::common::new_uuid()
            );
            let list_bytes =
                manifest::write_manifest_list(&entries, self.snapshot_id, parent, sequence)?;
            cleanup
                .write(located(&list_path, &target.storage)?, list_bytes)
                .await?;
            let mut summary = summary(
                self.if_exists,
                previous,
                self.files,
                self.rows,
                self.bytes,
                self.manifest,
            );
            if let Some(text) = self.run_state {
                summary.insert(STATE_KEY.into(), Json::String(text.clone()));
            }
            let snap = new_snapshot(
                self.snapshot_id,
                sequence,
                &list_path,
                summary,
                self.change.schema.schema_id,
                parent,
            );
            let committed = match &state {
                None => {
                    let new = new_metadata(self.location, self.ours, &self.change.spec, snap);
                    catalog.create(self.ns, self.table, new).await?
                }
                Some(b) => {
                    let mut updates = self.change.updates(&b.metadata);
                    updates.extend(snapshot_updates(snap));
                    let mut required = requirements(&b.metadata);
                    required.extend(self.change.requirements());
                    catalog
                        .commit(self.ns, self.table, b, &required, &updates)
                        .await?
                }
            };
            let why = match committed {
                Committed::Done(done) => return Ok((sequence, done)),
                Committed::Conflict(why) => why,
            };
            // Another writer committed first: what this attempt wrote names nothing.
            cleanup.remove(&located(&list_path, &target.storage)?).await;
            match (&state, self.if_exists) {
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
            tries.lost(why).await?;
            let now = catalog.load(self.ns, self.table).await?.ok_or_else(|| {
                Error::from(ErrorKind::Conflict(
                    "the table was dropped during the export; nothing was committed".into(),
                ))
            })?;
            writable(&now.metadata)?;
            race(&now.metadata)?;
            if !self.change.still_fits(&now.metadata, self.ours) {
                return Err(ErrorKind::Conflict(
                    "another writer changed the table's schema or partitioning during the \
                     export; nothing was committed"
                        .into(),
                )
                .into());
            }
            state = Some(now);
        }
    }
}

/// The snapshot summary key of an incremental run's state.
const STATE_KEY: &str = "pgarrow.incremental";

/// The state of the last incremental run the table's current snapshot descends from.
fn last_state(meta: &TableMetadata) -> Result<Option<IncrementalState>> {
    let mut snap = meta.current_snapshot();
    while let Some(s) = snap {
        if let Some(text) = s.summary.get(STATE_KEY).and_then(Json::as_str) {
            let at = format!("snapshot {}", s.snapshot_id);
            return crate::run::parse_state(text, &at).map(Some);
        }
        snap = s.parent_snapshot_id.and_then(|p| meta.snapshot(p));
    }
    Ok(None)
}

/// A snapshot's entry in the table metadata: made now, its manifest list at `list`, of the
/// schema `schema_id`, after `parent`.
fn new_snapshot(
    snapshot_id: i64,
    sequence: i64,
    list: &str,
    summary: serde_json::Map<String, Json>,
    schema_id: i64,
    parent: Option<i64>,
) -> Snapshot {
    Snapshot {
        snapshot_id,
        parent_snapshot_id: parent,
        sequence_number: Some(sequence),
        timestamp_ms: now_ms(),
        manifest_list: Some(list.to_owned()),
        summary,
        schema_id: Some(schema_id),
        other: Default::default(),
    }
}

/// The updates that commit `snap` as the table's current snapshot (its `main` branch).
fn snapshot_updates(snap: Snapshot) -> Vec<TableUpdate> {
    let id = snap.snapshot_id;
    vec![
        TableUpdate::AddSnapshot { snapshot: snap },
        TableUpdate::SetSnapshotRef {
            ref_name: "main".into(),
            snapshot_id: id,
            kind: "branch".into(),
        },
    ]
}

/// What must still hold of the table `base` for a change made from it to apply: it is the
/// same table, at the same snapshot.
fn requirements(base: &TableMetadata) -> Vec<TableRequirement> {
    let mut r = vec![TableRequirement::AssertRefSnapshotId {
        name: "main".into(),
        snapshot_id: base.current_snapshot_id(),
    }];
    if let Some(uuid) = &base.table_uuid {
        r.push(TableRequirement::AssertTableUuid { uuid: uuid.clone() });
    }
    r
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

/// Refuses a table pgarrow cannot add files to, naming why.
fn writable(meta: &TableMetadata) -> Result<()> {
    let version = meta.format_version;
    if version != 2 {
        return Err(ErrorKind::InvalidInput(format!(
            "it is of Iceberg format version {version}, and pgarrow writes version 2 tables \
             (upgrade it with `ALTER TABLE ... SET TBLPROPERTIES ('format-version'='2')` in \
             Spark, or pyiceberg's upgrade_table_version)"
        ))
        .into());
    }
    if meta.property("write.parquet.field-id.enabled") == Some("false") {
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
    previous: Option<&Snapshot>,
    files: usize,
    rows: u64,
    bytes: u64,
    manifest: &Manifest,
) -> serde_json::Map<String, Json> {
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
            Some(p) => p.summary.get(k)?.as_str()?.parse().ok(),
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
    s
}

/// The spec ID of the table's spec of `spec`'s fields, numbering them as Iceberg does: a
/// field of a source column and transform some spec of the table has keeps that field's ID
/// and name, a new one is numbered after `last-partition-id`; an existing spec of the same
/// fields is reused, else the spec is a new one, numbered after the table's specs.
fn evolved_spec(meta: &TableMetadata, spec: &mut [SpecField]) -> i64 {
    let mut last = meta.last_partition_id.unwrap_or(999);
    for ours in spec.iter_mut() {
        let known = meta
            .partition_specs
            .iter()
            .flat_map(|s| &s.fields)
            .find(|f| f.source_id == ours.source_id && f.transform == ours.transform);
        match known {
            Some(f) => {
                ours.field_id = f.field_id.unwrap_or(ours.field_id);
                ours.name = f.name.clone();
            }
            None => {
                last += 1;
                ours.field_id = last;
            }
        }
    }
    let same = |s: &&PartitionSpec| {
        s.fields.len() == spec.len()
            && s.fields.iter().zip(spec.iter()).all(|(f, ours)| {
                f.field_id == Some(ours.field_id)
                    && f.source_id == ours.source_id
                    && f.transform == ours.transform
            })
    };
    match meta.partition_specs.iter().find(same) {
        Some(s) => s.spec_id,
        None => {
            meta.partition_specs
                .iter()
                .map(|s| s.spec_id)
                .max()
                .unwrap_or(-1)
                + 1
        }
    }
}

/// The updates that make spec `spec_id` of `spec`'s fields the table's default (added when
/// new).
fn spec_updates(meta: &TableMetadata, spec_id: i64, spec: &[SpecField]) -> Vec<TableUpdate> {
    let mut out = Vec::new();
    if !meta.partition_specs.iter().any(|s| s.spec_id == spec_id) {
        out.push(TableUpdate::AddSpec {
            spec: PartitionSpec {
                spec_id,
                fields: spec.iter().map(SpecField::spec_field).collect(),
                other: Default::default(),
            },
        });
    }
    out.push(TableUpdate::SetDefaultSpec { spec_id });
    out
}

/// A new table's metadata, its first snapshot `snap`.
fn new_metadata(
    location: &str,
    schema: &IcebergSchema,
    spec: &[SpecField],
    snap: Snapshot,
) -> TableMetadata {
    let mut properties = serde_json::Map::new();
    properties.insert(
        "created-by".into(),
        Json::String(format!("pgarrow {}", env!("CARGO_PKG_VERSION"))),
    );
    let empty = TableMetadata {
        format_version: 2,
        table_uuid: Some(crate::common::new_uuid()),
        location: location.to_owned(),
        last_sequence_number: Some(0),
        last_updated_ms: snap.timestamp_ms,
        last_column_id: i64::from(schema.last_id),
        schemas: vec![schema.schema(0)],
        current_schema_id: Some(0),
        partition_specs: vec![PartitionSpec {
            spec_id: 0,
            fields: spec.iter().map(SpecField::spec_field).collect(),
            other: Default::default(),
        }],
        default_spec_id: Some(0),
        last_partition_id: Some(999 + spec.len() as i64),
        properties,
        current_snapshot_id: None,
        snapshots: Vec::new(),
        snapshot_log: Vec::new(),
        metadata_log: Vec::new(),
        sort_orders: Some(json!([{"order-id": 0, "fields": []}])),
        default_sort_order_id: Some(0),
        refs: Default::default(),
        other: Default::default(),
    };
    let now = snap.timestamp_ms;
    let mut m = empty.updated("", &snapshot_updates(snap), now);
    // A new table has no earlier metadata file.
    m.metadata_log.clear();
    m
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
    }
}
