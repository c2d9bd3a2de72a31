//! Upkeep of a lake table, safe beside a mirror that commits to it: [`compact_lake`] rewrites
//! small files and files with deletes into files of a target size, and [`expire_lake`] drops
//! the snapshots (versions) older than a retention and the files only they referenced.
//!
//! Both commit optimistically, as a mirror does. A compaction commit names the files it
//! rewrites; when the mirror committed first, the compaction reads the table again and
//! plans anew, and after its retries it steps aside (the mirror goes on; nothing of the
//! compaction is committed). A mirror that finds a compaction committed first reads the
//! table again likewise. Expiry never removes a file a live snapshot holds, so a commit in
//! flight (whose new files no snapshot names yet, and whose deletes name live files) never
//! loses one.
//!
//! ```no_run
//! # async fn run() -> pgarrow::Result<()> {
//! use pgarrow_lake::maintain::{CompactOptions, ExpireOptions, compact_lake, expire_lake};
//! use pgarrow_lake::{DeltaTarget, LakeTarget};
//! let target = LakeTarget::from(DeltaTarget::new("s3://bucket/lake/orders"));
//! let compacted = compact_lake(&target, &CompactOptions::new(), Default::default()).await?;
//! println!("{} files into {}", compacted.files_rewritten, compacted.files_written);
//! let expired = expire_lake(
//!     &target,
//!     &ExpireOptions::new(std::time::Duration::from_secs(7 * 86_400)),
//! )
//! .await?;
//! println!("{} snapshots and {} files dropped", expired.snapshots, expired.files);
//! # Ok(())
//! # }
//! ```

use arrow_schema::SchemaRef;
use pgarrow::{Error, ErrorKind, Hooks, Result};
use serde::Serialize;

use crate::live::{FileRows, Live, LiveFile, Plan};
use crate::mirror::{RowKey, is_moved};
pub use crate::retention::{ExpireOptions, ExpireStats};
use crate::retry::Retries;
use crate::target::LakeTarget;

/// The size compaction writes files of, unless the target's layout says otherwise.
pub const DEFAULT_TARGET_FILE_BYTES: u64 = 128 << 20;

/// How [`compact_lake`] runs: [`CompactOptions::new`], then `with_*`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CompactOptions {
    /// The files' size: files under three quarters of it are merged, up to it a file.
    pub target_file_bytes: u64,
    /// Times a commit that found the table changed (the mirror committed first) reads the
    /// table again and tries anew, before compaction steps aside.
    pub retries: usize,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions::new()
    }
}

impl CompactOptions {
    /// Files of [`DEFAULT_TARGET_FILE_BYTES`], 10 retries.
    pub fn new() -> CompactOptions {
        CompactOptions {
            target_file_bytes: DEFAULT_TARGET_FILE_BYTES,
            retries: 10,
        }
    }

    /// Files of this size.
    pub fn with_target_file_bytes(mut self, bytes: u64) -> Self {
        self.target_file_bytes = bytes.max(1);
        self
    }

    /// Retries before stepping aside.
    pub fn with_retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }
}

/// What [`compact_lake`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct CompactStats {
    /// `ducklake`, `delta` or `iceberg`.
    pub format: &'static str,
    /// The lake table.
    pub table: String,
    /// Commits made: 1, or 0 (nothing to compact, or stepped aside).
    pub commits: u64,
    /// Data files rewritten (and so ended).
    pub files_rewritten: u64,
    /// Data files written.
    pub files_written: u64,
    /// Rows rewritten.
    pub rows: u64,
    /// Deleted rows the rewrite left out (deletes folded into the files).
    pub deletes_folded: u64,
    /// Commits that found the table changed and tried anew.
    pub retried: u64,
    /// Whether compaction gave way to another writer after its retries (what is committed
    /// stays; the rest is left for a later run).
    pub stepped_aside: bool,
    /// The table's snapshot (version) after the last commit.
    pub snapshot: Option<i64>,
}

/// What [`compact_lake`] reports as it goes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CompactProgress {
    /// The files' live rows are being read and written, the commit next.
    Rewriting {
        /// The files it rewrites, and their live rows.
        files: usize,
        rows: u64,
    },
    /// The commit landed.
    Committed {
        /// The table's snapshot (version) it made.
        snapshot: i64,
        files_written: usize,
    },
    /// Another writer committed first: the table is read again (`retry` of `retries`).
    Moved { retry: usize, retries: usize },
}

impl std::fmt::Display for CompactProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompactProgress::Rewriting { files, rows } => {
                write!(f, "rewriting {files} files ({rows} live rows)")
            }
            CompactProgress::Committed {
                snapshot,
                files_written,
            } => write!(
                f,
                "committed as snapshot {snapshot}: {files_written} files written"
            ),
            CompactProgress::Moved { retry, retries } => write!(
                f,
                "another writer committed first: reading the table again ({retry}/{retries})"
            ),
        }
    }
}

/// Rewrites the table's small files and files with deletes: every file with deleted rows, and
/// the files under three quarters of the target size when there are two or more, into files
/// of the target size, in one commit that ends the old files (and their delete files) and
/// adds the new ones. The rows are read a file at a time as the new files are written (the
/// memory holds one file's rows). Readers see the same rows before and after; a mirror's
/// position is carried on.
///
/// # Errors
/// A table that does not exist; a table of a kind pgarrow does not write; files that cannot
/// be read or written; the catalog's.
pub async fn compact_lake(
    target: &LakeTarget,
    options: &CompactOptions,
    mut hooks: Hooks<'_, CompactProgress>,
) -> Result<CompactStats> {
    let name = target.name();
    let mut stats = CompactStats {
        format: target.format(),
        table: name.clone(),
        ..CompactStats::default()
    };
    let target = match target.layout().max_file_bytes {
        Some(_) => target.clone(),
        None => target.clone().with_layout(
            target
                .layout()
                .clone()
                .with_max_file_bytes(Some(options.target_file_bytes)),
        ),
    };
    let target_bytes = target
        .layout()
        .max_file_bytes
        .unwrap_or(options.target_file_bytes);
    let mut tries = Retries::new(options.retries, format!("compacting {name}"));
    loop {
        let Some((mut lake, mut live, point)) =
            crate::table::open(&target, &RowKey::Columns(Vec::new()), u64::MAX).await?
        else {
            return Err(Error::usage(format!(
                "there is no {} table {name} to compact",
                target.format()
            )));
        };
        let picked = picked(&live, target_bytes);
        if picked.is_empty() {
            return Ok(stats);
        }
        let schema = newest_schema(&live).await?;
        let plan = rewrite_plan(&live, &picked, &schema);
        let folded: u64 = picked.iter().map(|id| live.files[id].deleted.len()).sum();
        hooks.report(&CompactProgress::Rewriting {
            files: picked.len(),
            rows: plan.rewritten(),
        });
        match lake.commit(&mut live, &plan, point.as_ref()).await {
            Ok(done) => {
                hooks.report(&CompactProgress::Committed {
                    snapshot: done.snapshot,
                    files_written: done.files,
                });
                stats.commits += 1;
                stats.files_rewritten += picked.len() as u64;
                stats.files_written += done.files as u64;
                stats.rows += plan.rewritten();
                stats.deletes_folded += folded;
                stats.snapshot = Some(done.snapshot);
                return Ok(stats);
            }
            Err(e) if is_moved(&e) => {
                if tries.lost(e).await.is_err() {
                    // The tries are spent: compaction gives way to the other writer.
                    stats.stepped_aside = true;
                    return Ok(stats);
                }
                stats.retried += 1;
                hooks.report(&CompactProgress::Moved {
                    retry: tries.retried(),
                    retries: options.retries,
                });
            }
            Err(e) => return Err(e.context(format!("compacting {name}"))),
        }
    }
}

/// The files to rewrite: every file with deletes, and the files under three quarters of
/// `target` bytes; none when that is one small file without deletes (alone it gains nothing).
fn picked(live: &Live, target: u64) -> Vec<i64> {
    let small = target / 4 * 3;
    let picked: Vec<&LiveFile> = live
        .files
        .values()
        .filter(|f| !f.deleted.is_empty() || f.bytes < small)
        .collect();
    if picked.len() < 2 && picked.iter().all(|f| f.deleted.is_empty()) {
        return Vec::new();
    }
    picked.iter().map(|f| f.id).collect()
}

/// The columns of the table's newest file (the table's columns as its last write left them:
/// a file written before a column was added lacks it, one before a type was widened has the
/// narrower type).
async fn newest_schema(live: &Live) -> Result<SchemaRef> {
    let newest = live
        .files
        .values()
        .max_by_key(|f| f.id)
        .ok_or_else(|| Error::from(ErrorKind::Internal("no files".into())))?;
    // The columns the files leave out (a Delta table's partition columns), after theirs.
    let constants: Vec<arrow_schema::Field> = newest
        .constants
        .iter()
        .map(|c| arrow_schema::Field::new(&c.name, c.data_type.clone(), true))
        .collect();
    let newest = newest.location.clone();
    // The footer's Arrow schema, its fields' metadata (PostgreSQL types, extensions) kept in
    // the new files; a type the rows are read as otherwise is cast to it.
    tokio::task::spawn_blocking(move || -> Result<SchemaRef> {
        let (meta, _) = newest.parquet_metadata()?;
        let file = meta.file_metadata();
        let schema =
            parquet::arrow::parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
                .map_err(|e| {
                    Error::from(ErrorKind::InvalidInput(format!(
                        "the columns of {newest}: {e}"
                    )))
                })?;
        let mut fields: Vec<arrow_schema::FieldRef> = schema.fields().to_vec();
        fields.extend(constants.into_iter().map(std::sync::Arc::new));
        Ok(std::sync::Arc::new(
            arrow_schema::Schema::new_with_metadata(fields, schema.metadata().clone()),
        ))
    })
    .await
    .map_err(|e| Error::from(ErrorKind::Internal(format!("reading a footer: {e}"))))?
}

/// The commit that rewrites the files `ids`: their live rows, as `schema`, read a file at a
/// time as the new files are written, and the files ended.
fn rewrite_plan(live: &Live, ids: &[i64], schema: &SchemaRef) -> Plan {
    let files: Vec<LiveFile> = ids
        .iter()
        .map(|id| live.files[id].clone())
        .filter(|f| f.rows > f.deleted.len())
        .collect();
    Plan {
        rewrite: true,
        ended: ids.to_vec(),
        file_rows: (!files.is_empty()).then(|| FileRows {
            schema: schema.clone(),
            files,
        }),
        ..Plan::default()
    }
}

/// Drops the table's snapshots older than the retention, never the newest, and removes the
/// files no snapshot left holds: Iceberg snapshots and their manifests, Delta's log versions
/// before a checkpoint and the files its removes tombstoned, DuckLake's snapshots (the whole
/// lake's) and the files they alone held. A mirror's position stays (the commit holding it is
/// kept).
///
/// # Errors
/// A table that does not exist; files that cannot be read or removed; the catalog's.
pub async fn expire_lake(target: &LakeTarget, options: &ExpireOptions) -> Result<ExpireStats> {
    let mut stats = match target {
        LakeTarget::DuckLake(t) => crate::ducklake::expire::expire(t, options).await?,
        LakeTarget::Delta(t) => crate::delta::expire::expire(t, options).await?,
        LakeTarget::Iceberg(t) => crate::iceberg::expire::expire(t, options).await?,
    };
    stats.format = target.format();
    stats.table = target.name();
    stats.dry_run = options.dry_run;
    Ok(stats)
}
