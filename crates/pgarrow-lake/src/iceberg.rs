//! Apache Iceberg tables (format version 2): an export's Parquet files committed into an
//! Iceberg table of a REST catalog ([`rest`]) or of the SQL catalog in a PostgreSQL database
//! (the `iceberg_tables` layout pyiceberg's `SqlCatalog` and Iceberg's `JdbcCatalog` share).
//!
//! The files go under the table's `data/` directory (in `column_transform=value/`
//! directories when the table is partitioned), written by pgarrow's partitioned export with
//! Parquet field IDs (the table schema's). Then one manifest (Avro) lists them with their
//! partition tuples, counts and bounds; a manifest list names it (and, for an append, every
//! manifest of the table's current snapshot); and a new metadata file adds the snapshot, with
//! the export's provenance in its summary. The commit moves the table from the metadata the
//! export began on to the new one only if no other writer moved it first (the SQL catalog:
//! one statement that swaps its metadata location; a REST catalog: the server, under the
//! commit's requirements): readers see the table before the export or after it, never
//! between. An export that fails, or whose commit fails, removes what it
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
mod connected;
mod equality;
pub(crate) mod expire;
mod export;
mod manifest;
pub(crate) mod mirror;
mod read;
pub mod rest;
mod schema;
mod sigv4;
pub(crate) mod spec;

use std::time::{SystemTime, UNIX_EPOCH};

use pgarrow::incremental::IncrementalOptions;
use pgarrow::io::{
    Layout, Location, Manifest, PartitionField, SinkOptions, StorageOptions, Transform,
};
use pgarrow::partition::PartitionedStats;
use pgarrow::protocol::Config;
use pgarrow::{Error, ErrorKind, Result};
use serde_json::Value as Json;

use crate::cleanup::blocking;
use crate::common::IfExists;
pub(crate) use export::export_tables_to_iceberg;
pub use export::export_to_iceberg;
use manifest::{DataFile, SpecField};
pub use read::open_iceberg;
pub use rest::RestCatalogOptions;
use spec::{Snapshot, TableMetadata, TableRequirement, TableUpdate};

/// The catalog name of an SQL catalog when none is given (pyiceberg's `load_catalog()`
/// default).
pub const DEFAULT_CATALOG_NAME: &str = "default";

/// An Iceberg catalog: the SQL catalog in a PostgreSQL database (pyiceberg's `SqlCatalog`,
/// Iceberg's JDBC catalog), or a REST catalog (Polaris, Glue, S3 Tables, Unity, Lakekeeper,
/// Nessie, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// Held once per target, as DuckLake's target holds its `Config`: boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum IcebergCatalog {
    /// The SQL catalog in the database of this connection.
    Sql(Config),
    /// A REST catalog.
    Rest(RestCatalogOptions),
}

impl From<Config> for IcebergCatalog {
    fn from(config: Config) -> Self {
        IcebergCatalog::Sql(config)
    }
}

impl From<RestCatalogOptions> for IcebergCatalog {
    fn from(options: RestCatalogOptions) -> Self {
        IcebergCatalog::Rest(options)
    }
}

impl IcebergCatalog {
    /// The catalog of `text`: an `http://` or `https://` address is a REST catalog's `uri`,
    /// anything else a PostgreSQL connection string of an SQL catalog.
    ///
    /// # Errors
    /// A connection string that does not parse.
    pub fn parse(text: &str) -> Result<IcebergCatalog> {
        if text.starts_with("http://") || text.starts_with("https://") {
            return Ok(IcebergCatalog::Rest(RestCatalogOptions::new(text)));
        }
        Ok(IcebergCatalog::Sql(Config::parse(text)?))
    }

    /// Whether this is a REST catalog.
    pub fn is_rest(&self) -> bool {
        matches!(self, IcebergCatalog::Rest(_))
    }

    /// The catalog with REST property `key` set (an SQL catalog: refused).
    ///
    /// # Errors
    /// An SQL catalog, which takes no properties.
    pub fn with_property(self, key: &str, value: &str) -> Result<IcebergCatalog> {
        match self {
            IcebergCatalog::Rest(o) => Ok(IcebergCatalog::Rest(o.with_property(key, value))),
            IcebergCatalog::Sql(_) => Err(ErrorKind::Usage(format!(
                "Iceberg catalog property {key} is a REST catalog's; this is an SQL catalog \
                 (a postgresql:// URL)"
            ))
            .into()),
        }
    }
}

/// Where and how an export goes into an Iceberg table: [`IcebergTarget::new`], then `with_*`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IcebergTarget {
    /// The catalog: an SQL catalog's database, or a REST catalog.
    pub catalog: IcebergCatalog,
    /// An SQL catalog's name in its database ([`DEFAULT_CATALOG_NAME`] unless given).
    pub catalog_name: String,
    /// The table's namespace (made when missing; `a.b` for a nested one).
    pub namespace: String,
    /// The table.
    pub table: String,
    /// Where a new table goes: `<warehouse>/<namespace>.db/<table>` (a directory or an
    /// object store URL; a REST catalog without it: where the server puts the table). An
    /// existing table keeps its own location.
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
    /// Table `namespace.table` of `catalog` (an SQL catalog's [`Config`], or a REST catalog's
    /// [`RestCatalogOptions`]).
    pub fn new(
        catalog: impl Into<IcebergCatalog>,
        namespace: impl Into<String>,
        table: impl Into<String>,
    ) -> Self {
        IcebergTarget {
            catalog: catalog.into(),
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
                _ => Err(ErrorKind::InvalidInput(format!(
                    "Iceberg table {name}: partition field {:?} ({} of field {}) is not \
                     one pgarrow writes (a transform of a top-level column)",
                    f.name, f.transform, f.source_id
                ))
                .into()),
            }
        })
        .collect()
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
