//! Any of the three formats as one target, and what any of them did as one report: what the
//! command line and Python build from their arguments, name per table when several tables go
//! into a lake, run with [`export_to_lake`], and show.
//!
//! ```no_run
//! # async fn run() -> pgarrow::Result<()> {
//! use pgarrow_lake::{DeltaTarget, LakeTarget, export_to_lake};
//! let target = LakeTarget::from(DeltaTarget::new("s3://bucket/lake/orders"));
//! let stats = export_to_lake(
//!     "postgresql://localhost/shop",
//!     "orders",
//!     &Default::default(),
//!     &pgarrow::partition::PartitionOptions::new(2),
//!     &target,
//!     Default::default(),
//! )
//! .await?;
//! println!("{} rows into {} table {}: {}", stats.rows, stats.format, stats.table, stats.point());
//! # Ok(())
//! # }
//! ```

use pgarrow::incremental::{IncrementalOptions, IncrementalState};
use pgarrow::io::{Layout, SinkOptions, StorageOptions};
use pgarrow::names::TableName;
use pgarrow::partition::{PartitionOptions, PartitionedStats};
use pgarrow::{ExportOptions, Hooks, IntoConfig, Result, Source};

use crate::common::{IfExists, LakeRun};
use crate::delta::{DeltaTarget, export_to_delta};
use crate::ducklake::{DuckLakeTarget, export_to_ducklake};
use crate::iceberg::{IcebergStats, IcebergTarget, export_tables_to_iceberg, export_to_iceberg};

/// A lake table of any format.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LakeTarget {
    /// A DuckLake table.
    DuckLake(DuckLakeTarget),
    /// A Delta Lake table.
    Delta(DeltaTarget),
    /// An Apache Iceberg table.
    Iceberg(IcebergTarget),
}

impl From<DuckLakeTarget> for LakeTarget {
    fn from(t: DuckLakeTarget) -> Self {
        LakeTarget::DuckLake(t)
    }
}

impl From<DeltaTarget> for LakeTarget {
    fn from(t: DeltaTarget) -> Self {
        LakeTarget::Delta(t)
    }
}

impl From<IcebergTarget> for LakeTarget {
    fn from(t: IcebergTarget) -> Self {
        LakeTarget::Iceberg(t)
    }
}

/// Sets one field of whichever target it is.
macro_rules! each {
    ($self:ident, $t:ident => $body:expr) => {
        match $self {
            LakeTarget::DuckLake(ref mut $t) => $body,
            LakeTarget::Delta(ref mut $t) => $body,
            LakeTarget::Iceberg(ref mut $t) => $body,
        }
    };
}

impl LakeTarget {
    /// The format's name: `ducklake`, `delta` or `iceberg`.
    pub fn format(&self) -> &'static str {
        match self {
            LakeTarget::DuckLake(_) => "ducklake",
            LakeTarget::Delta(_) => "delta",
            LakeTarget::Iceberg(_) => "iceberg",
        }
    }

    /// The format, for what the formats share.
    pub(crate) fn lake_format(&self) -> crate::common::Format {
        match self {
            LakeTarget::DuckLake(_) => crate::common::Format::DuckLake,
            LakeTarget::Delta(_) => crate::common::Format::Delta,
            LakeTarget::Iceberg(_) => crate::common::Format::Iceberg,
        }
    }

    /// The table, as reports name it: `schema.name` (a DuckLake schema, an Iceberg
    /// namespace), or a Delta table's location.
    pub fn name(&self) -> String {
        match self {
            LakeTarget::DuckLake(t) => format!("{}.{}", t.schema, t.table),
            LakeTarget::Delta(t) => t.location.clone(),
            LakeTarget::Iceberg(t) => format!("{}.{}", t.namespace, t.table),
        }
    }

    /// The same target for `table`, one of several tables exported into lake tables of their
    /// own: in a catalog, the table's schema (or `default_schema`) and name; a Delta table at
    /// `LOCATION/SCHEMA.NAME`.
    pub fn for_table(&self, table: &TableName, default_schema: &str) -> LakeTarget {
        let schema = table
            .schema
            .clone()
            .unwrap_or_else(|| default_schema.to_owned());
        let mut out = self.clone();
        match &mut out {
            LakeTarget::DuckLake(t) => {
                t.schema = schema;
                t.table = table.name.clone();
            }
            LakeTarget::Iceberg(t) => {
                t.namespace = schema;
                t.table = table.name.clone();
            }
            LakeTarget::Delta(t) => {
                t.location = format!(
                    "{}/{schema}.{}",
                    t.location.trim_end_matches('/'),
                    table.name
                );
            }
        }
        out
    }

    /// When the table exists.
    pub fn with_if_exists(mut self, if_exists: IfExists) -> Self {
        each!(self, t => t.if_exists = if_exists);
        self
    }

    /// Object store settings.
    pub fn with_storage(mut self, storage: StorageOptions) -> Self {
        each!(self, t => t.storage = storage);
        self
    }

    /// The data files' Parquet options.
    pub fn with_options(mut self, options: SinkOptions) -> Self {
        each!(self, t => t.options = options);
        self
    }

    /// Where files roll over, and the table's partitions.
    pub fn layout(&self) -> &Layout {
        match self {
            LakeTarget::DuckLake(t) => &t.layout,
            LakeTarget::Delta(t) => &t.layout,
            LakeTarget::Iceberg(t) => &t.layout,
        }
    }

    /// Where files roll over, and the table's partitions.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        each!(self, t => t.layout = layout);
        self
    }

    /// An incremental run of `options.table`, its state the table's.
    pub fn with_incremental(mut self, options: IncrementalOptions) -> Self {
        each!(self, t => t.incremental = Some(options));
        self
    }
}

/// What an export into a lake table did, whatever its format (serialized as the command
/// line's `--json` line and Python's dictionary: the export's statistics, then the commit's;
/// a field another format has is left out).
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct LakeStats {
    /// The export's own statistics.
    #[serde(flatten)]
    pub export: PartitionedStats,
    /// `ducklake`, `delta` or `iceberg`.
    pub format: &'static str,
    /// The table ([`LakeTarget::name`]).
    pub table: String,
    /// Rows added.
    #[serde(skip)]
    pub rows: u64,
    /// DuckLake's snapshot, Iceberg's snapshot ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<i64>,
    /// DuckLake's table ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_id: Option<i64>,
    /// Iceberg's new metadata file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_location: Option<String>,
    /// Iceberg's sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<i64>,
    /// Delta's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Whether the commit made the table.
    pub created: bool,
    /// Data files added.
    pub files: usize,
    /// Files a Delta replace removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<usize>,
    /// Commits begun again after losing a race with another writer.
    pub retried: usize,
    /// Whether a Delta export wrote its version's checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpointed: Option<bool>,
    /// An incremental run's state, as the commit carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<IncrementalState>,
    /// Whether the incremental run was a first run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_run: Option<bool>,
    /// Whether it scanned for late rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_scan: Option<bool>,
    /// With several tables exported together: how many tables became visible in the one
    /// commit this table's was part of (a multi-table transaction); 1 when each table was
    /// committed on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed_together: Option<usize>,
    /// Why the tables were committed each on its own, where they were exported together into
    /// a catalog that cannot commit them at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apart: Option<String>,
    /// From the export's end to the commit: the files' footers read, the metadata written,
    /// the catalog's or log's commit (and its retries).
    #[serde(rename = "commit_s", serialize_with = "seconds")]
    pub commit: std::time::Duration,
}

fn seconds<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl LakeStats {
    /// What every format reports.
    fn new(
        export: PartitionedStats,
        target: &LakeTarget,
        (rows, created, files, retried): (u64, bool, usize, usize),
        run: Option<LakeRun>,
    ) -> LakeStats {
        LakeStats {
            export,
            format: target.format(),
            table: target.name(),
            rows,
            snapshot: None,
            table_id: None,
            metadata_location: None,
            sequence_number: None,
            version: None,
            created,
            files,
            removed: None,
            retried,
            checkpointed: None,
            first_run: run.as_ref().map(|r| r.first),
            late_scan: run.as_ref().map(|r| r.late_scan),
            incremental: run.map(|r| r.state),
            committed_together: None,
            apart: None,
            commit: std::time::Duration::ZERO,
        }
    }

    /// Where the rows became visible: `snapshot N` or `version N`.
    pub fn point(&self) -> String {
        match (self.version, self.snapshot) {
            (Some(v), _) => format!("version {v}"),
            (None, Some(s)) => format!("snapshot {s}"),
            (None, None) => "committed".to_owned(),
        }
    }
}

/// Exports `source` into the lake table `target` names, whatever its format (see
/// [`export_to_ducklake`], [`export_to_delta`], [`export_to_iceberg`]).
///
/// # Errors
/// The format's export's.
pub async fn export_to_lake(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    target: &LakeTarget,
    hooks: Hooks<'_>,
) -> Result<LakeStats> {
    let started = std::time::Instant::now();
    let mut stats = match target {
        LakeTarget::DuckLake(t) => {
            let s = export_to_ducklake(config, source, options, partitions, t, hooks).await?;
            LakeStats::ducklake(s, target)
        }
        LakeTarget::Delta(t) => {
            let s = export_to_delta(config, source, options, partitions, t, hooks).await?;
            LakeStats {
                version: Some(s.version),
                removed: Some(s.removed),
                checkpointed: Some(s.checkpointed),
                ..LakeStats::new(
                    s.export,
                    target,
                    (s.rows, s.created, s.files, s.retried),
                    s.run,
                )
            }
        }
        LakeTarget::Iceberg(t) => {
            let s = export_to_iceberg(config, source, options, partitions, t, hooks).await?;
            LakeStats::iceberg(s, target)
        }
    };
    stats.commit = started.elapsed().saturating_sub(stats.export.export.total);
    Ok(stats)
}

impl LakeStats {
    fn ducklake(s: crate::ducklake::DuckLakeStats, target: &LakeTarget) -> LakeStats {
        LakeStats {
            snapshot: Some(s.snapshot),
            table_id: Some(s.table_id),
            ..LakeStats::new(
                s.export,
                target,
                (s.rows, s.created, s.files, s.retried),
                s.run,
            )
        }
    }

    fn iceberg(s: IcebergStats, target: &LakeTarget) -> LakeStats {
        LakeStats {
            snapshot: Some(s.snapshot_id),
            sequence_number: Some(s.sequence_number),
            metadata_location: Some(s.metadata_location),
            ..LakeStats::new(
                s.export,
                target,
                (s.rows, s.created, s.files, s.retried),
                s.run,
            )
        }
    }
}

/// Exports several sources, each into its own lake table (`jobs`, all read over `partitions`:
/// one shared snapshot, [`crate::SharedSnapshot`]), with `hooks(i)` for the `i`th.
///
/// Tables of one catalog are committed together, at the snapshot they were read in: DuckLake
/// tables in one catalog transaction (one lake snapshot holds all of them), Iceberg tables in
/// one multi-table transaction (a REST catalog's `transactions/commit`, one transaction of an
/// SQL catalog's database). Readers see all of the tables' new rows or none, and an error
/// leaves every table as it was. Where an Iceberg catalog cannot, each is committed on its
/// own and every report's [`LakeStats::apart`] says why. Delta tables (the format has no
/// commit of several tables), and tables of different catalogs, are exported and committed
/// one after another.
///
/// # Errors
/// The first table's error (see [`export_to_lake`]).
pub async fn export_tables_to_lake<'h>(
    config: impl IntoConfig,
    jobs: Vec<(Source, LakeTarget)>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    mut hooks: impl FnMut(usize) -> Hooks<'h>,
) -> Result<Vec<LakeStats>> {
    let config = config.into_config()?;
    let one_catalog = match jobs.first() {
        Some((_, LakeTarget::Iceberg(first))) => jobs.iter().all(|(_, t)| {
            matches!(t, LakeTarget::Iceberg(t)
                if t.catalog == first.catalog && t.catalog_name == first.catalog_name)
        }),
        Some((_, LakeTarget::DuckLake(first))) => jobs.iter().all(|(_, t)| {
            matches!(t, LakeTarget::DuckLake(t)
                if t.catalog == first.catalog && t.data_path == first.data_path)
        }),
        _ => false,
    };
    if !one_catalog || jobs.len() < 2 {
        let mut out = Vec::with_capacity(jobs.len());
        for (i, (source, target)) in jobs.into_iter().enumerate() {
            let stats = export_to_lake(
                config.clone(),
                source,
                options,
                partitions,
                &target,
                hooks(i),
            )
            .await?;
            out.push(stats);
        }
        return Ok(out);
    }
    let started = std::time::Instant::now();
    let (stats, apart) = match &jobs[0].1 {
        LakeTarget::DuckLake(_) => {
            let ducklakes = jobs
                .iter()
                .enumerate()
                .filter_map(|(i, (source, target))| match target {
                    LakeTarget::DuckLake(t) => Some((source.clone(), t, hooks(i))),
                    _ => None,
                })
                .collect();
            let stats =
                crate::ducklake::export_tables_to_ducklake(&config, ducklakes, options, partitions)
                    .await?;
            let stats: Vec<LakeStats> = stats
                .into_iter()
                .zip(&jobs)
                .map(|(s, (_, target))| LakeStats::ducklake(s, target))
                .collect();
            (stats, None)
        }
        _ => {
            let icebergs: Vec<(Source, &IcebergTarget, Hooks<'h>)> = jobs
                .iter()
                .enumerate()
                .filter_map(|(i, (source, target))| match target {
                    LakeTarget::Iceberg(t) => Some((source.clone(), t, hooks(i))),
                    _ => None,
                })
                .collect();
            let (stats, apart) =
                export_tables_to_iceberg(&config, icebergs, options, partitions).await?;
            let stats: Vec<LakeStats> = stats
                .into_iter()
                .zip(&jobs)
                .map(|(s, (_, target))| LakeStats::iceberg(s, target))
                .collect();
            (stats, apart)
        }
    };
    let elapsed = started.elapsed();
    let together = match apart {
        None => stats.len(),
        Some(_) => 1,
    };
    // The exports ran one after another, then the one commit.
    let exporting: std::time::Duration = stats.iter().map(|s| s.export.export.total).sum();
    Ok(stats
        .into_iter()
        .map(|mut stats| {
            stats.committed_together = Some(together);
            stats.apart = apart.clone();
            stats.commit = elapsed.saturating_sub(exporting);
            stats
        })
        .collect())
}
