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

use std::time::{Duration, SystemTime};

use arrow_schema::SchemaRef;
use pgarrow::io::Location;
use pgarrow::{Error, ErrorKind, Hooks, Result};
use serde::Serialize;

use crate::live::{self, Live, LiveFile, Plan};
use crate::mirror::{TableMirror, is_moved};
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
    /// Commits made (one per group of files up to the target size).
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
    /// Group `group` of `groups` is read and written, its commit next.
    Rewriting {
        group: usize,
        groups: usize,
        /// The files it rewrites, and their live rows.
        files: usize,
        rows: u64,
    },
    /// The group's commit landed.
    Committed {
        group: usize,
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
            CompactProgress::Rewriting {
                group,
                groups,
                files,
                rows,
            } => write!(
                f,
                "group {group}/{groups}: {files} files, {rows} rows rewritten"
            ),
            CompactProgress::Committed {
                group,
                snapshot,
                files_written,
            } => write!(
                f,
                "group {group}: committed as snapshot {snapshot} ({files_written} files)"
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
/// of the target size, each group of files up to it in one commit that ends the old files
/// (and their delete files) and adds the new ones. Readers see the same rows before and after
/// every commit; a mirror's position is carried on.
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
    'read: loop {
        let Some((mut lake, mut live, point)) = TableMirror::open(&target, &[]).await? else {
            return Err(Error::usage(format!(
                "there is no {} table {name} to compact",
                target.format()
            )));
        };
        let groups = groups(&live, target_bytes);
        if groups.is_empty() {
            return Ok(stats);
        }
        let schema = newest_schema(&live).await?;
        let count = groups.len();
        for (n, group) in groups.into_iter().enumerate() {
            let plan = rewrite_plan(&live, &group, &schema).await?;
            let folded: u64 = group
                .iter()
                .map(|id| live.files[id].deleted.len() as u64)
                .sum();
            hooks.report(&CompactProgress::Rewriting {
                group: n + 1,
                groups: count,
                files: group.len(),
                rows: plan.inserted(),
            });
            match lake.commit(&mut live, &plan, point.as_ref()).await {
                Ok(done) => {
                    hooks.report(&CompactProgress::Committed {
                        group: n + 1,
                        snapshot: done.snapshot,
                        files_written: done.files,
                    });
                    stats.commits += 1;
                    stats.files_rewritten += group.len() as u64;
                    stats.files_written += done.files as u64;
                    stats.rows += plan.inserted();
                    stats.deletes_folded += folded;
                    stats.snapshot = Some(done.snapshot);
                }
                Err(e) if is_moved(&e) => {
                    if stats.retried as usize >= options.retries {
                        stats.stepped_aside = true;
                        return Ok(stats);
                    }
                    stats.retried += 1;
                    hooks.report(&CompactProgress::Moved {
                        retry: stats.retried as usize,
                        retries: options.retries,
                    });
                    continue 'read;
                }
                Err(e) => return Err(e.context(format!("compacting {name}"))),
            }
        }
        return Ok(stats);
    }
}

/// The groups of files to rewrite, each up to `target` bytes (a file with deletes alone when
/// larger): every file with deletes, and the small ones when there are two or more.
fn groups(live: &Live, target: u64) -> Vec<Vec<i64>> {
    let small = target / 4 * 3;
    let mut picked: Vec<&LiveFile> = live
        .files
        .values()
        .filter(|f| !f.deleted.is_empty() || f.bytes < small)
        .collect();
    if picked.len() < 2 && picked.iter().all(|f| f.deleted.is_empty()) {
        return Vec::new();
    }
    picked.sort_by_key(|f| f.id);
    let mut groups: Vec<Vec<i64>> = Vec::new();
    let mut size = 0u64;
    for f in picked {
        // The live share of a file's bytes.
        let live_bytes = match f.rows {
            0 => 0,
            rows => f.bytes / rows * (rows - f.deleted.len() as u64),
        };
        match groups.last_mut() {
            Some(g) if size + live_bytes <= target => {
                g.push(f.id);
                size += live_bytes;
            }
            _ => {
                groups.push(vec![f.id]);
                size = live_bytes;
            }
        }
    }
    // A group of one file without deletes gains nothing.
    groups.retain(|g| g.len() > 1 || live.files[&g[0]].deleted.len() as u64 > 0);
    groups
}

/// The columns of the table's newest file (the table's columns as its last write left them:
/// a file written before a column was added lacks it, one before a type was widened has the
/// narrower type).
async fn newest_schema(live: &Live) -> Result<SchemaRef> {
    let newest = live
        .files
        .values()
        .max_by_key(|f| f.id)
        .map(|f| f.location.clone())
        .ok_or_else(|| Error::from(ErrorKind::Internal("no files".into())))?;
    tokio::task::spawn_blocking(move || -> Result<SchemaRef> {
        let (meta, _) = newest.parquet_metadata()?;
        let file = meta.file_metadata();
        let schema =
            parquet::arrow::parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
                .map_err(|e| {
                    Error::from(ErrorKind::Usage(format!("the columns of {newest}: {e}")))
                })?;
        Ok(std::sync::Arc::new(schema))
    })
    .await
    .map_err(|e| Error::from(ErrorKind::Internal(format!("reading a footer: {e}"))))?
}

/// The commit that rewrites the files `group`: their live rows, as `schema`, and every live
/// position of theirs deleted.
async fn rewrite_plan(live: &Live, group: &[i64], schema: &SchemaRef) -> Result<Plan> {
    let mut asked = Vec::with_capacity(group.len());
    let mut plan = Plan {
        rewrite: true,
        ..Plan::default()
    };
    for id in group {
        let file = live.files[id].clone();
        let mut deleted = file.deleted.iter().copied().peekable();
        let positions: Vec<u64> = (0..file.rows)
            .filter(|p| deleted.next_if_eq(p).is_none())
            .collect();
        plan.deletes.insert(*id, positions.clone());
        if !positions.is_empty() {
            asked.push((file, positions));
        }
    }
    if !asked.is_empty() {
        let rows = live::read_rows(asked).await?;
        plan.rows = Some(live::as_schema(&rows, schema)?);
    }
    Ok(plan)
}

/// How [`expire_lake`] runs: [`ExpireOptions::new`], then `with_*`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExpireOptions {
    /// Snapshots (versions) older than this go; the newest stays whatever its age.
    pub older_than: Duration,
    /// Report what would go, and change nothing.
    pub dry_run: bool,
    /// Times a commit that found the table changed tries anew.
    pub retries: usize,
}

impl ExpireOptions {
    /// Snapshots older than `older_than` go.
    pub fn new(older_than: Duration) -> ExpireOptions {
        ExpireOptions {
            older_than,
            dry_run: false,
            retries: 10,
        }
    }

    /// Report only.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Retries.
    pub fn with_retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// The time before which snapshots go, in milliseconds since the epoch.
    pub(crate) fn cutoff_ms(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(now.saturating_sub(self.older_than).as_millis()).unwrap_or(i64::MAX)
    }
}

/// What [`expire_lake`] did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ExpireStats {
    /// `ducklake`, `delta` or `iceberg`.
    pub format: &'static str,
    /// The lake table (a DuckLake catalog's snapshots are the whole lake's).
    pub table: String,
    /// Snapshots (Delta: log versions) dropped.
    pub snapshots: u64,
    /// Files removed: data files, delete files, and the format's metadata files.
    pub files: u64,
    /// Their bytes, where known.
    pub bytes: u64,
    /// Nothing was changed.
    pub dry_run: bool,
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

/// Removes `files` (after the commit that dropped them), counting them into `stats`; a file
/// already gone is not an error.
pub(crate) fn remove_files(files: &[(Location, u64)], stats: &mut ExpireStats, dry: bool) {
    for (f, bytes) in files {
        if dry || f.remove().is_ok() {
            stats.files += 1;
            stats.bytes += bytes;
        }
    }
}
