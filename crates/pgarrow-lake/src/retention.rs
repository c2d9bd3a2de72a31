//! What expiry of a lake table is asked for and did, whatever its format: what the formats'
//! own expiry (their `expire` modules) takes and gives, below the dispatch in
//! [`maintain`](crate::maintain).

use std::time::{Duration, SystemTime};

use pgarrow::io::Location;
use serde::Serialize;

/// How [`expire_lake`](crate::maintain::expire_lake) runs: [`ExpireOptions::new`], then `with_*`.
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

/// What [`expire_lake`](crate::maintain::expire_lake) did (or, dry, would do).
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
