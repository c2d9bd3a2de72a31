//! What a mirror is told (its options, the delete mode) and what it tells (its progress events
//! and statistics).

use std::time::Duration;

use pgarrow::partition::PartitionOptions;
use pgarrow::{Error, ExportOptions, Result};
use serde::Serialize;

/// How a mirror runs: [`MirrorOptions::new`], then `with_*`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MirrorOptions {
    /// The logical replication slot (made, with its snapshot, by the first run).
    pub slot: String,
    /// The publication the slot's changes are read through; by default one named as the slot,
    /// made for the tables when missing.
    pub publication: Option<String>,
    /// A commit comes at the first transaction boundary this long after the last.
    pub commit_interval: Duration,
    /// ... or once this many changes arrived, whichever comes first.
    pub commit_changes: u64,
    /// End once every change committed before the start is in the tables (a scheduled job),
    /// instead of following until stopped.
    pub catch_up: bool,
    /// Start over: drop the slot if it exists and export every table again in a new one's
    /// snapshot, replacing the lake tables.
    pub start_over: bool,
    /// The first export's options (and the change stream's types and policies, the same).
    pub export: ExportOptions,
    /// The first export's connections and parts.
    pub partitions: PartitionOptions,
    /// Times a commit that found the table's files changed (compaction beside the mirror)
    /// reads the table again and tries anew.
    pub retries: usize,
    /// Make the slot a failover slot (PostgreSQL 17), synchronized to standbys so that the
    /// mirror goes on after a failover.
    pub failover: bool,
    /// At a schema change the lake table cannot take in place (a column added with a
    /// default, a renamed column, columns in a new order, a column dropped from a Delta
    /// table), export that table again in a new snapshot, replacing its rows in one commit,
    /// and go on; else stop, naming the change. On by default.
    pub reexport: bool,
    /// How a commit takes rows out of the table's files: recorded beside them (the default),
    /// or by writing the files again without them.
    pub deletes: DeleteMode,
    /// The memory the mirror's bookkeeping may take (its key index held in memory, by a
    /// quarter of it; past that, written out with the table): 512 MiB by default.
    pub memory_limit: u64,
    /// Where changes past the budget are set aside (the system's temporary directory when
    /// `None`).
    pub spill_dir: Option<std::path::PathBuf>,
    /// How long failures that may pass ([`Error::is_transient`]: the source's connections or
    /// the catalog's cut, an object store or catalog that did not answer) are tried through
    /// before the run gives up, counted from the first failure since the run last committed:
    /// [`DEFAULT_RETRY_FOR`] unless told; zero gives up at the first.
    pub retry_for: Duration,
    /// Serve the mirror's figures in Prometheus' text format on `GET /metrics` at this
    /// address while it runs (port 0: one the system picks, said by
    /// [`MirrorProgress::Metrics`]).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The patterns (`--table`, `--schema`) the tables were chosen by: a table that comes to
    /// match them while the mirror runs (made, or renamed into them) joins it, exported in a
    /// snapshot of its own and then followed ([`MirrorProgress::Joined`]). Empty: the tables
    /// given only (and those added to the mirror's own publication).
    pub patterns: Vec<pgarrow::names::TablePattern>,
}

/// The address a metrics endpoint listens on, from `PORT` (on the loopback interface: only
/// this machine can scrape it) or `HOST:PORT` (`0.0.0.0:PORT` for every interface).
///
/// # Errors
/// Neither, or a host that does not resolve.
pub fn metrics_address(text: &str) -> Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    if let Ok(port) = text.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            Error::usage(format!(
                "metrics address {text:?}: give PORT (on 127.0.0.1) or HOST:PORT"
            ))
        })
}

/// How long a mirror tries through failures that may pass unless told: five minutes.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(300);

/// The memory a mirror's bookkeeping takes unless told: 512 MiB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 512 << 20;

/// The memory a key index holds in memory under a budget of `limit` bytes: a quarter of it.
pub(crate) fn index_memory(limit: u64) -> usize {
    usize::try_from(limit / 4).unwrap_or(usize::MAX)
}

/// The memory a table's pending changes take before they are set aside: a quarter of the
/// budget. A commit of changes set aside folds them in buckets of half that.
pub(crate) fn pending_memory(limit: u64) -> usize {
    usize::try_from(limit / 4).unwrap_or(usize::MAX)
}

/// How a mirror's (and [`apply`](crate::apply)'s) commits take rows out of the lake table's
/// data files, as Iceberg's `write.delete.mode` names the two ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DeleteMode {
    /// The deleted positions are recorded beside the files: Delta's deletion vectors,
    /// Iceberg's position delete files, DuckLake's delete files. A commit writes little; the
    /// reader leaves the deleted rows out (and compaction folds them in later).
    #[default]
    MergeOnRead,
    /// Each data file that loses rows is written again without them, in the same commit, and
    /// ends: the table is data files only, for readers that read neither deletion vectors nor
    /// delete files (a Delta table never takes the `deletionVectors` feature). A commit costs
    /// the rewritten files' size, and (with a key) a pass over the mirror's index.
    CopyOnWrite,
}

impl DeleteMode {
    /// Its name: `merge-on-read` or `copy-on-write`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteMode::MergeOnRead => "merge-on-read",
            DeleteMode::CopyOnWrite => "copy-on-write",
        }
    }
}

impl std::fmt::Display for DeleteMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DeleteMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<DeleteMode> {
        match s {
            "merge-on-read" => Ok(DeleteMode::MergeOnRead),
            "copy-on-write" => Ok(DeleteMode::CopyOnWrite),
            _ => Err(Error::usage(format!(
                "unknown delete mode {s:?}: merge-on-read (deletion vectors, delete files) or \
                 copy-on-write (files written again without the deleted rows)"
            ))),
        }
    }
}

impl MirrorOptions {
    /// A mirror through `slot`, with the defaults: a commit every 10 seconds or 100,000
    /// changes, following until stopped.
    pub fn new(slot: impl Into<String>) -> MirrorOptions {
        MirrorOptions {
            slot: slot.into(),
            publication: None,
            commit_interval: Duration::from_secs(10),
            commit_changes: 100_000,
            catch_up: false,
            start_over: false,
            export: ExportOptions::default(),
            partitions: PartitionOptions::new(1),
            retries: 10,
            failover: false,
            reexport: true,
            deletes: DeleteMode::MergeOnRead,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            spill_dir: None,
            retry_for: DEFAULT_RETRY_FOR,
            metrics_listen: None,
            patterns: Vec::new(),
        }
    }

    /// Serve the figures for Prometheus at `address` (see
    /// [`metrics_listen`](Self::metrics_listen)).
    pub fn with_metrics_listen(mut self, address: Option<std::net::SocketAddr>) -> Self {
        self.metrics_listen = address;
        self
    }

    /// Let tables that come to match `patterns` join the mirror while it runs (see
    /// [`patterns`](Self::patterns)).
    pub fn with_patterns(mut self, patterns: Vec<pgarrow::names::TablePattern>) -> Self {
        self.patterns = patterns;
        self
    }

    /// Try through failures that may pass for this long (see
    /// [`retry_for`](Self::retry_for)).
    pub fn with_retry_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    /// Where changes past the budget are set aside.
    pub fn with_spill_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.spill_dir = dir;
        self
    }

    /// The memory its bookkeeping may take (see [`memory_limit`](Self::memory_limit)).
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Take rows out of the files this way.
    pub fn with_deletes(mut self, deletes: DeleteMode) -> Self {
        self.deletes = deletes;
        self
    }

    /// Export a table again at a schema change it cannot take in place (else stop).
    pub fn with_reexport(mut self, reexport: bool) -> Self {
        self.reexport = reexport;
        self
    }

    /// Make the slot a failover slot (PostgreSQL 17).
    pub fn with_failover(mut self, failover: bool) -> Self {
        self.failover = failover;
        self
    }

    /// Read through publication `name`.
    pub fn with_publication(mut self, name: Option<String>) -> Self {
        self.publication = name;
        self
    }

    /// A commit at the first transaction boundary this long after the last.
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// A commit once this many changes arrived.
    pub fn with_commit_changes(mut self, changes: u64) -> Self {
        self.commit_changes = changes.max(1);
        self
    }

    /// End once caught up.
    pub fn with_catch_up(mut self, catch_up: bool) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// Start over in a new slot.
    pub fn with_start_over(mut self, start_over: bool) -> Self {
        self.start_over = start_over;
        self
    }

    /// The first export's options.
    pub fn with_export(mut self, export: ExportOptions) -> Self {
        self.export = export;
        self
    }

    /// The first export's connections and parts.
    pub fn with_partitions(mut self, partitions: PartitionOptions) -> Self {
        self.partitions = partitions;
        self
    }
}

/// What a mirror reports while it runs ([`Hooks`](pgarrow::Hooks)'s `P`): each shows as the line the command
/// line prints, and as a JSON line with `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MirrorProgress {
    /// A table was exported into its lake table in the slot's snapshot.
    Exported {
        /// The source table.
        table: String,
        /// The lake table.
        lake_table: String,
        /// Rows exported.
        rows: u64,
        /// The slot's consistent point: the table's first position.
        lsn: String,
    },
    /// A table's changes up to a position were committed.
    Committed {
        /// The source table.
        table: String,
        /// The position the table is at now.
        lsn: String,
        /// Changes folded into the commit.
        changes: u64,
        /// Rows written (inserted or updated).
        inserted: u64,
        /// Rows deleted by position (updated rows' old versions included).
        deleted: u64,
        /// Whether the table was emptied first.
        truncated: bool,
        /// The lake table's new snapshot or version.
        snapshot: i64,
        /// Seconds the commit took, files included.
        commit_s: f64,
        /// Of them: seconds folding the changes into what the commit writes and deletes,
        /// and of those, seconds finding the changed keys' rows in the key index.
        fold_s: f64,
        lookup_s: f64,
        /// Of them: seconds writing its data and delete files; making them the table's (its
        /// log, catalog or metadata, a multi-table transaction's whole); bringing the key
        /// index up to date and persisting it.
        write_s: f64,
        publish_s: f64,
        index_s: f64,
        /// Bytes of the key index read to find those rows.
        index_read_bytes: u64,
        /// How many tables the one commit this table's was part of made visible at once (a
        /// multi-table transaction of their catalog); 1: the table's own commit.
        together: usize,
    },
    /// A table's columns changed: the lake table takes the new ones with its next commit.
    SchemaChanged {
        /// The source table.
        table: String,
        /// The transaction that announced them.
        lsn: String,
        /// Columns added (NULL in the rows before).
        added: Vec<String>,
        /// Columns dropped.
        dropped: Vec<String>,
    },
    /// A table's columns changed in a way its lake table cannot take in place (`why`): it
    /// was exported again in a new snapshot, its rows replaced in one commit.
    Reexported {
        /// The source table.
        table: String,
        /// The lake table.
        lake_table: String,
        /// Why.
        why: String,
        /// Rows exported.
        rows: u64,
        /// The new snapshot's place in the WAL: the table's position now.
        lsn: String,
    },
    /// A table joined the mirror while it ran (added to its publication, or made to match its
    /// patterns): exported in a snapshot of its own, then followed from there.
    Joined {
        /// The source table.
        table: String,
        /// The lake table.
        lake_table: String,
        /// Rows exported.
        rows: u64,
        /// The snapshot's place in the WAL: the table's first position.
        lsn: String,
    },
    /// A table left the mirror (dropped, or no longer in its publication): no longer
    /// followed, its lake table kept as its last commit left it.
    Left {
        /// The source table.
        table: String,
        /// The lake table.
        lake_table: String,
        /// Why.
        why: String,
    },
    /// The figures are served for Prometheus at `address` (`GET /metrics`) while the mirror
    /// runs.
    Metrics {
        /// Where: the address and port listened on.
        address: String,
    },
    /// The run failed for a reason that may pass (`error`) and starts again from the tables'
    /// commits after `wait_s` seconds: try `attempt` since it last committed, `left_s`
    /// seconds of [`retry_for`](MirrorOptions::retry_for) left.
    Retrying {
        /// Tries failed since the run last committed.
        attempt: u32,
        /// Seconds until the next.
        wait_s: f64,
        /// Seconds left to try in.
        left_s: f64,
        /// What failed.
        error: String,
    },
    /// Every table holds the changes up to `lsn`, confirmed to the slot.
    Checkpoint {
        /// The position confirmed.
        lsn: String,
        /// The furthest position the server reported.
        server_lsn: String,
        /// How far behind the server the mirror is, in bytes of WAL.
        lag_bytes: u64,
        /// ... and in seconds: none when the server has nothing past the tables, else how long
        /// ago the newest transaction they hold committed at the source (`None`: not known
        /// yet, before this run's first).
        lag_s: Option<f64>,
        /// Changes per second since the last checkpoint.
        changes_per_s: f64,
        /// Times so far a key index was written out past its memory, or a commit's changes
        /// folded in buckets past the budget.
        spills: u64,
    },
}

impl std::fmt::Display for MirrorProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MirrorProgress::Exported {
                table,
                lake_table,
                rows,
                lsn,
            } => write!(
                f,
                "exported {table} into {lake_table}: {rows} rows, at {lsn}"
            ),
            MirrorProgress::Committed {
                table,
                lsn,
                changes,
                inserted,
                deleted,
                truncated,
                snapshot,
                commit_s,
                together,
                ..
            } => write!(
                f,
                "{table}: {changes} changes committed up to {lsn} (snapshot {snapshot}): \
                 {inserted} rows written, {deleted} deleted{}{} in {commit_s:.2} s",
                if *truncated { ", truncated first" } else { "" },
                match together {
                    1 => String::new(),
                    n => format!(", with {} other tables in one transaction", n - 1),
                }
            ),
            MirrorProgress::SchemaChanged {
                table,
                lsn,
                added,
                dropped,
            } => write!(
                f,
                "{table}: columns changed at {lsn}: added [{}], dropped [{}]",
                added.join(", "),
                dropped.join(", ")
            ),
            MirrorProgress::Reexported {
                table,
                lake_table,
                why,
                rows,
                lsn,
            } => write!(
                f,
                "{table}: {why}: exported again into {lake_table}: {rows} rows, at {lsn}"
            ),
            MirrorProgress::Joined {
                table,
                lake_table,
                rows,
                lsn,
            } => write!(
                f,
                "{table} joined the mirror: exported into {lake_table}: {rows} rows, at {lsn}"
            ),
            MirrorProgress::Left {
                table,
                lake_table,
                why,
            } => write!(
                f,
                "{table} left the mirror ({why}): {lake_table} kept as its last commit left it"
            ),
            MirrorProgress::Checkpoint {
                lsn,
                server_lsn,
                lag_bytes,
                changes_per_s,
                ..
            } => write!(
                f,
                "at {lsn} (server {server_lsn}, {lag_bytes} bytes behind), \
                 {changes_per_s:.0} changes/s"
            ),
            MirrorProgress::Metrics { address } => {
                write!(f, "metrics for Prometheus at http://{address}/metrics")
            }
            MirrorProgress::Retrying {
                attempt,
                wait_s,
                left_s,
                error,
            } => write!(
                f,
                "{error}: trying again in {wait_s:.1} s (try {attempt}, {left_s:.0} s left \
                 to try in)"
            ),
        }
    }
}

/// What a mirror did.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct MirrorStats {
    /// The slot.
    pub slot: String,
    /// The publication.
    pub publication: String,
    /// The source tables.
    pub tables: Vec<String>,
    /// Whether this run made the slot and exported the tables in its snapshot.
    pub exported: bool,
    /// Rows the first export wrote, and the exports again at schema changes.
    pub exported_rows: u64,
    /// Where the run started streaming.
    pub start_lsn: String,
    /// Where every table is now.
    pub end_lsn: String,
    /// Commits made (one per table with changes per checkpoint).
    pub commits: u64,
    /// Data files written by them.
    pub files: u64,
    /// Changes folded into them.
    pub changes: u64,
    /// Rows written.
    pub inserted: u64,
    /// Rows deleted by position.
    pub deleted: u64,
    /// Truncates.
    pub truncates: u64,
    /// Commits begun again after the table's files changed beside the mirror.
    pub retried: u64,
    /// Tables exported again at a schema change they could not take in place.
    pub reexported: u64,
    /// Tables that joined the running mirror (exported in a snapshot of their own, then
    /// followed).
    pub joined: u64,
    /// Tables that left it (out of its publication, dropped, or not followable).
    pub left: u64,
    /// Times the run failed for a reason that may pass (a connection cut, a catalog or object
    /// store that did not answer) and started again within
    /// [`retry_for`](MirrorOptions::retry_for).
    pub restarts: u64,
    /// Commit rounds that committed several tables at once, in one operation of their catalog
    /// (DuckLake's one catalog transaction and snapshot, Iceberg's multi-table transactions).
    pub together: u64,
    /// Why rounds of several tables are committed table by table (a catalog that cannot
    /// commit them together): said once, and the run's later rounds do not try again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apart: Option<String>,
    /// Bytes of changes set aside on disk past the budget (`spill_dir`) until their commit,
    /// and the commits that folded such changes in buckets.
    pub set_aside_bytes: u64,
    pub folded_in_buckets: u64,
    /// The tables' key indexes at the end of the run, summed: their memory and disk, what
    /// finding rows read.
    pub index: crate::live::IndexStats,
    /// Large source transactions the server streamed before their commit, set aside on disk
    /// (`spill_dir`) until it.
    pub streamed: pgarrow_changes::StreamedStats,
}
