//! A lake table that follows PostgreSQL: [`mirror_to_lake`] exports tables into lake tables in
//! the snapshot of a new logical replication slot, then follows the slot and commits the
//! changes, each commit at a transaction boundary and carrying the WAL position it reaches.
//!
//! # Exactly once
//! Every commit of a mirrored table records the slot and the position it brings the table to
//! (the first, the export's, records the slot's consistent point). The slot is confirmed only
//! once every table with changes up to a checkpoint has committed them. A mirror that starts
//! again reads each table's position back from the table itself, streams from the lowest, and
//! leaves out of each table the transactions it already holds: a process killed at any moment
//! leaves each table equal to the source at its recorded position, and the next run goes on
//! from there, with no change lost or applied twice.
//!
//! # What a commit holds
//! The net effect of the changes since the last commit, by the table's key (its primary key,
//! else its replica identity index; under `REPLICA IDENTITY FULL` without one, by all the
//! row's values, identical rows counted): rows inserted or updated are written as new data
//! files, laid out as the table is partitioned; the rows they replace and the rows deleted
//! are deleted by position (DuckLake's delete files, Delta's deletion vectors, Iceberg's
//! position delete files), or, under [`DeleteMode::CopyOnWrite`], each file that loses rows is
//! written again without them in the same commit; a truncate ends every row first. A value an
//! update did not send
//! (an unchanged TOASTed value) is taken from the change before it or from the lake table's
//! row, never written as NULL.
//!
//! # Schema changes
//! Columns added without a default, dropped and widened are taken in place where the format
//! can; any other change of a table's columns (a default, a rename, a new order) exports that
//! table again in a new snapshot, replacing its rows in one commit
//! ([`reexport`](MirrorOptions::reexport)).
//!
//! ```no_run
//! # async fn run() -> pgarrow::Result<()> {
//! use pgarrow::names::TableName;
//! use pgarrow_lake::mirror::{MirrorOptions, mirror_to_lake};
//! use pgarrow_lake::{DuckLakeTarget, LakeTarget};
//! let catalog = pgarrow::protocol::Config::parse("postgresql://localhost/lake")?;
//! let target = LakeTarget::from(
//!     DuckLakeTarget::new(catalog, "shop", "orders").with_data_path("s3://bucket/lake/"),
//! );
//! let options = MirrorOptions::new("orders_mirror").with_catch_up(true);
//! let stats = mirror_to_lake(
//!     "postgresql://localhost/shop",
//!     &[TableName::new(Some("public"), "orders")],
//!     &target,
//!     &options,
//!     Default::default(),
//! )
//! .await?;
//! println!("{} commits, the tables are at {}", stats.commits, stats.end_lsn);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use pgarrow::names::TableName;
use pgarrow::partition::PartitionOptions;
use pgarrow::protocol::{Config, Connection, quote_ident, quote_literal};
use pgarrow::{Error, ErrorKind, ExportOptions, Hooks, IntoConfig, Result, Source};
use pgarrow_changes::slot::ReplicationSlot;
use pgarrow_changes::{COMMIT_LSN_COLUMN, ChangeEvent, ChangeOptions, ChangeStream, ValueFormat};
use pgarrow_protocol::replication::Lsn;
use serde::Serialize;

use crate::common::IfExists;
pub use crate::live::MirrorPoint;
use crate::live::{self, Live, Plan, debug};
use crate::retry::Retries;
use crate::table::{LakeTable, Opened};
use crate::target::{LakeTarget, export_to_lake};

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
        }
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

/// What a mirror reports while it runs ([`Hooks`]'s `P`): each shows as the line the command
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
    /// Every table holds the changes up to `lsn`, confirmed to the slot.
    Checkpoint {
        /// The position confirmed.
        lsn: String,
        /// The furthest position the server reported.
        server_lsn: String,
        /// How far behind the server the mirror is, in bytes of WAL.
        lag_bytes: u64,
        /// Changes per second since the last checkpoint.
        changes_per_s: f64,
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
            } => write!(
                f,
                "{table}: {changes} changes committed up to {lsn} (snapshot {snapshot}): \
                 {inserted} rows written, {deleted} deleted{} in {commit_s:.2} s",
                if *truncated { ", truncated first" } else { "" }
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
            MirrorProgress::Checkpoint {
                lsn,
                server_lsn,
                lag_bytes,
                changes_per_s,
            } => write!(
                f,
                "at {lsn} (server {server_lsn}, {lag_bytes} bytes behind), \
                 {changes_per_s:.0} changes/s"
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
}

/// How a mirrored table's rows are told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowKey {
    /// By the values of its key's columns.
    Columns(Vec<String>),
    /// By all their values (a table under `REPLICA IDENTITY FULL` without a key), identical
    /// rows counted.
    WholeRow,
}

/// One mirrored table.
pub(crate) struct Mirrored {
    pub(crate) table: TableName,
    /// What its exports read: the table, or the columns its changes carry when they are not
    /// all of its own (generated columns, a publication's column list).
    pub(crate) source: Source,
    pub(crate) target: LakeTarget,
    pub(crate) key: RowKey,
    pub(crate) lake: Box<dyn LakeTable>,
    pub(crate) live: Live,
    pub(crate) point: MirrorPoint,
    /// Changes since the last commit.
    pub(crate) pending: Vec<RecordBatch>,
    /// Of the schema's columns, how many are the table's.
    pub(crate) columns: usize,
    /// The table's types as the stream's last Relation message gave them, by column.
    pub(crate) types: Vec<arrow_schema::DataType>,
}

/// Mirrors `tables` into lake tables: `target` itself for one table, else `target` named for
/// each ([`LakeTarget::for_table`]). The first run makes the slot and exports the tables in
/// its snapshot; every run then follows the slot, committing at transaction boundaries every
/// [`commit_interval`](MirrorOptions::commit_interval) or
/// [`commit_changes`](MirrorOptions::commit_changes), until the hooks' stop (after a last
/// commit), the end of the WAL present at the start (with
/// [`catch_up`](MirrorOptions::catch_up)) or the server's end of the stream.
///
/// # Errors
/// A table without a key the changes name rows by (no primary key, replica identity index or
/// `REPLICA IDENTITY FULL`); a slot whose tables do not all record it (an
/// interrupted first run: start over with [`start_over`](MirrorOptions::start_over)); a slot
/// the server invalidated or dropped; a schema change no export again takes (the key's
/// columns dropped; any, without [`reexport`](MirrorOptions::reexport)); the export's, the
/// stream's and the commits' errors. Every table is then as its last commit left it.
pub async fn mirror_to_lake(
    config: impl IntoConfig,
    tables: &[TableName],
    target: &LakeTarget,
    options: &MirrorOptions,
    hooks: Hooks<'_, MirrorProgress>,
) -> Result<MirrorStats> {
    let mut hooks = hooks;
    let config = config.into_config()?;
    if tables.is_empty() {
        return Err(Error::usage("a mirror needs at least one table"));
    }
    let publication = options
        .publication
        .clone()
        .unwrap_or_else(|| options.slot.clone());
    let mut source = Connection::connect(&config)
        .await
        .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
    let version = source.server_version_num();
    if options.failover && version < 170_000 {
        let _ = source.close().await;
        return Err(Error::usage(format!(
            "failover slots need PostgreSQL 17 or later; the server is {}.{}: leave out \
             --failover",
            version / 10_000,
            version % 10_000
        )));
    }
    let mut keys = Vec::with_capacity(tables.len());
    let mut named = Vec::with_capacity(tables.len());
    for t in tables {
        let (table, key) = describe(&mut source, t).await?;
        keys.push(key);
        named.push(table);
    }
    ensure_publication(&mut source, &publication, &named).await?;
    let mut sources = Vec::with_capacity(named.len());
    for t in &named {
        sources.push(published(&mut source, &publication, t).await?);
    }
    let targets: Vec<LakeTarget> = named
        .iter()
        .map(|t| match tables.len() {
            1 => target.clone(),
            _ => target.for_table(t, "public"),
        })
        .collect();
    let slot = slot_state(&mut source, &options.slot).await?;
    let _ = source.close().await;

    let mut stats = MirrorStats {
        slot: options.slot.clone(),
        publication: publication.clone(),
        tables: named.iter().map(TableName::quoted).collect(),
        ..MirrorStats::default()
    };
    let mut opened = open_all(&targets, &keys).await?;
    let recorded = opened
        .iter()
        .filter(|o| {
            o.as_ref()
                .and_then(|(_, _, p)| p.as_ref())
                .is_some_and(|p| p.slot == options.slot)
        })
        .count();
    let start_over = options.start_over || (recorded == 0 && slot.is_none());
    if !start_over {
        match &slot {
            None => {
                return Err(Error::usage(format!(
                    "the lake tables follow replication slot {:?}, which no longer exists: the \
                     changes since their last commit are gone with it. Start over from a new \
                     snapshot (--start-over)",
                    options.slot
                )));
            }
            Some(state) if state.lost => {
                return Err(Error::usage(format!(
                    "replication slot {:?} was invalidated (the server removed WAL it still \
                     needed: max_slot_wal_keep_size): the changes since the tables' last commit \
                     are gone. Start over from a new snapshot (--start-over)",
                    options.slot
                )));
            }
            Some(_) if recorded < tables.len() => {
                return Err(Error::usage(format!(
                    "replication slot {:?} exists, but {} of the {} lake tables do not record \
                     it (a first run that did not finish, or a slot of something else): start \
                     over from a new snapshot (--start-over), which drops the slot and replaces \
                     the tables, or name another slot",
                    options.slot,
                    tables.len() - recorded,
                    tables.len()
                )));
            }
            Some(_) => {}
        }
    }
    if start_over {
        if slot.is_some() {
            drop_slot(&config, &options.slot).await?;
        }
        let rows = first_export(&config, &named, &sources, &targets, options, &mut hooks).await?;
        stats.exported = true;
        stats.exported_rows = rows;
        opened = open_all(&targets, &keys).await?;
    }
    let mut mirrored = Vec::with_capacity(tables.len());
    for ((((table, source), target), key), o) in named
        .into_iter()
        .zip(sources)
        .zip(targets)
        .zip(keys)
        .zip(opened)
    {
        let Some((lake, live, Some(point))) = o else {
            return Err(ErrorKind::Unexpected(format!(
                "lake table {} has no mirror position after its export",
                target.name()
            ))
            .into());
        };
        mirrored.push(Mirrored {
            table,
            source,
            target,
            key,
            lake,
            live,
            point,
            pending: Vec::new(),
            columns: 0,
            types: Vec::new(),
        });
    }
    // A table exported again at a schema change: the stream starts over from the slot's
    // confirmed position, every table leaving out what it holds.
    while let Some(Again {
        table: i,
        why,
        renamed,
    }) = follow(
        &config,
        &publication,
        options,
        &mut mirrored,
        &mut stats,
        &mut hooks,
    )
    .await?
    {
        reexport(
            &config,
            &mut mirrored[i],
            &why,
            &renamed,
            options,
            &mut stats,
            &mut hooks,
        )
        .await?;
    }
    Ok(stats)
}

/// A table to export again: which, why, and the columns renamed for sure.
struct Again {
    table: usize,
    why: String,
    renamed: Vec<(String, String)>,
}

/// Exports `m`'s table again into its lake table, replacing its rows in one commit, in the
/// snapshot of a temporary slot: the commit records the mirror's slot at that snapshot's
/// consistent point, so the stream's changes before it are left out and those after applied.
async fn reexport(
    config: &Config,
    m: &mut Mirrored,
    why: &str,
    renamed: &[(String, String)],
    options: &MirrorOptions,
    stats: &mut MirrorStats,
    hooks: &mut Hooks<'_, MirrorProgress>,
) -> Result<()> {
    let name = m.table.quoted();
    let lake_table = m.target.name();
    let context = |e: Error| {
        e.context(format!(
            "exporting {name} again into {lake_table} ({why}); the lake table is as its last \
             commit left it"
        ))
    };
    // An Iceberg table renames the columns first, keeping their field IDs, which the export
    // again then keeps too (it numbers a table's columns by name).
    if !renamed.is_empty() {
        m.lake.rename(renamed).await.map_err(context)?;
    }
    let temporary = format!("pgarrow_again_{}_{}", std::process::id(), stats.reexported);
    let slot = ReplicationSlot::create_temporary(config, &temporary, "pgoutput")
        .await
        .map_err(context)?;
    let info = slot.info().clone();
    let partitions = options.partitions.clone().with_import_snapshot_at(
        &info.snapshot_name,
        &options.slot,
        &info.consistent_point,
    );
    let done = export_to_lake(
        config,
        m.source.clone(),
        &options.export,
        &partitions,
        &m.target.clone().with_if_exists(IfExists::Replace),
        Hooks::new().with_stop(hooks.stop().clone()),
    )
    .await;
    // The temporary slot goes with its connection.
    let released = slot.release().await;
    let done = done.map_err(context)?;
    released.map_err(context)?;
    let Some((lake, live, Some(point))) = crate::table::open(&m.target, &m.key).await? else {
        return Err(ErrorKind::Unexpected(format!(
            "lake table {lake_table} has no mirror position after its export"
        ))
        .into());
    };
    (m.lake, m.live, m.point) = (lake, live, point);
    m.pending.clear();
    m.columns = 0;
    m.types.clear();
    stats.reexported += 1;
    stats.exported_rows += done.rows;
    hooks.report(&MirrorProgress::Reexported {
        table: name.clone(),
        lake_table: lake_table.clone(),
        why: why.to_owned(),
        rows: done.rows,
        lsn: info.consistent_point,
    });
    Ok(())
}

/// The tables `patterns` select on the source (`pg_dump`'s patterns: `--table`, `--schema`),
/// in schema and name order: what a mirror of patterns follows.
///
/// # Errors
/// Connecting; a pattern that matches nothing.
pub async fn resolve_tables(
    config: impl IntoConfig,
    patterns: &[pgarrow::names::TablePattern],
) -> Result<Vec<TableName>> {
    let config = config.into_config()?;
    let mut conn = Connection::connect(&config)
        .await
        .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
    let tables = pgarrow::names::resolve(&mut conn, patterns).await;
    let _ = conn.close().await;
    tables
}

/// Each lake table as the mirror holds it, if it exists.
async fn open_all(targets: &[LakeTarget], keys: &[RowKey]) -> Result<Vec<Option<Opened>>> {
    let mut out = Vec::with_capacity(targets.len());
    let started = Instant::now();
    for (target, key) in targets.iter().zip(keys) {
        out.push(crate::table::open(target, key).await?);
    }
    debug(format_args!(
        "{} lake table(s) read in {:.3} s",
        targets.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(out)
}

/// The table's name as the server has it and its key: the primary key, else the replica
/// identity index, else (under `REPLICA IDENTITY FULL`) its whole rows.
async fn describe(conn: &mut Connection, table: &TableName) -> Result<(TableName, RowKey)> {
    let regclass = quote_literal(&table.quoted());
    let rows = conn
        .simple_query(&format!(
            "SELECT n.nspname::text, c.relname::text, c.relreplident::text, c.relkind::text \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass({regclass})"
        ))
        .await?;
    let Some(row) = rows.into_iter().next() else {
        return Err(Error::usage(format!(
            "table {} does not exist",
            table.quoted()
        )));
    };
    let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    let named = TableName::new(Some(text(0)), text(1));
    let name = named.quoted();
    if !matches!(text(3).as_str(), "r" | "p") {
        return Err(Error::usage(format!(
            "{name} is not a table: a mirror follows a table's changes"
        )));
    }
    let identity = text(2);
    // The key the WAL's updates and deletes carry: the replica identity index, else the
    // primary key.
    let key = pgarrow::names::key_columns(conn, &named, pgarrow::names::KeyChoice::ReplicaIdentity)
        .await?;
    match identity.as_str() {
        "n" => Err(Error::usage(format!(
            "{name} has REPLICA IDENTITY NOTHING: its updates and deletes are not published, \
             so no mirror can follow it (ALTER TABLE {name} REPLICA IDENTITY DEFAULT)"
        ))),
        _ if !key.is_empty() => Ok((named, RowKey::Columns(key))),
        // Its updates and deletes carry the whole old row.
        "f" => Ok((named, RowKey::WholeRow)),
        _ => Err(Error::usage(format!(
            "{name} has no primary key (nor replica identity index): its updates and deletes \
             name no row. Give it a primary key (or ALTER TABLE {name} REPLICA IDENTITY USING \
             INDEX a unique index)"
        ))),
    }
}

/// What a mirror's exports of `table` read: the table, or, when its changes through
/// `publication` carry fewer columns (stored generated columns, which PostgreSQL publishes
/// only when asked from 18 on; a publication's column list), a query of those columns, so
/// that the lake table has the columns the changes do.
async fn published(conn: &mut Connection, publication: &str, table: &TableName) -> Result<Source> {
    let regclass = quote_literal(&table.quoted());
    let names = |rows: Vec<Vec<Option<String>>>| -> Vec<String> {
        rows.into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect()
    };
    let all = names(
        conn.simple_query(&format!(
            "SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = \
             to_regclass({regclass}) AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        ))
        .await?,
    );
    // Before PostgreSQL 18 generated columns are never published (and pg_publication_tables
    // lists them all the same); from 15 on a publication may list its columns.
    let version = conn.server_version_num();
    let generated = names(
        conn.simple_query(&format!(
            "SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = \
             to_regclass({regclass}) AND attnum > 0 AND NOT attisdropped AND attgenerated <> ''"
        ))
        .await?,
    );
    let listed = match version >= 150_000 {
        true => names(
            conn.simple_query(&format!(
                "SELECT a::text FROM pg_catalog.pg_publication_tables p, unnest(p.attnames) a \
                 WHERE p.pubname = {} AND p.schemaname = {} AND p.tablename = {}",
                quote_literal(publication),
                quote_literal(table.schema.as_deref().unwrap_or("public")),
                quote_literal(&table.name)
            ))
            .await?,
        ),
        false => all.clone(),
    };
    let published: Vec<String> = listed
        .into_iter()
        .filter(|c| version >= 180_000 || !generated.contains(c))
        .collect();
    if published.is_empty() || published.len() == all.len() {
        return Ok(Source::Table(table.clone()));
    }
    let columns: Vec<String> = all
        .iter()
        .filter(|c| published.contains(c))
        .map(|c| quote_ident(c))
        .collect();
    Ok(Source::Query(format!(
        "SELECT {} FROM {}",
        columns.join(", "),
        table.quoted()
    )))
}

/// Makes publication `name` for `tables` when it does not exist; else checks it covers them.
async fn ensure_publication(conn: &mut Connection, name: &str, tables: &[TableName]) -> Result<()> {
    let exists = conn
        .simple_query(&format!(
            "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = {}",
            quote_literal(name)
        ))
        .await?;
    if exists.is_empty() {
        let list = tables
            .iter()
            .map(TableName::quoted)
            .collect::<Vec<_>>()
            .join(", ");
        conn.simple_query(&format!(
            "CREATE PUBLICATION {} FOR TABLE {list}",
            quote_ident(name)
        ))
        .await
        .map_err(|e| {
            Error::from(e).context(format!(
                "making publication {name:?} for the mirrored tables (or make it yourself and \
                 name it with --publication)"
            ))
        })?;
        return Ok(());
    }
    for t in tables {
        let covered = conn
            .simple_query(&format!(
                "SELECT 1 FROM pg_catalog.pg_publication_tables WHERE pubname = {} \
                 AND schemaname = {} AND tablename = {}",
                quote_literal(name),
                quote_literal(t.schema.as_deref().unwrap_or("public")),
                quote_literal(&t.name)
            ))
            .await?;
        if covered.is_empty() {
            return Err(Error::usage(format!(
                "publication {name:?} does not publish {} (ALTER PUBLICATION {} ADD TABLE {})",
                t.quoted(),
                quote_ident(name),
                t.quoted()
            )));
        }
    }
    Ok(())
}

/// A slot as the server has it.
struct SlotState {
    /// Its WAL was removed (`wal_status = 'lost'`, or an invalidation reason).
    lost: bool,
}

async fn slot_state(conn: &mut Connection, slot: &str) -> Result<Option<SlotState>> {
    let version = conn.server_version_num();
    let status = if version >= 130000 {
        "coalesce(wal_status, '')"
    } else {
        "''"
    };
    let rows = conn
        .simple_query(&format!(
            "SELECT plugin::text, {status}::text FROM pg_catalog.pg_replication_slots \
             WHERE slot_name = {}",
            quote_literal(slot)
        ))
        .await?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let plugin = row.first().cloned().flatten().unwrap_or_default();
    if plugin != "pgoutput" {
        return Err(Error::usage(format!(
            "replication slot {slot:?} is a slot of {plugin:?}, not pgoutput: name another \
             slot"
        )));
    }
    Ok(Some(SlotState {
        lost: row.get(1).cloned().flatten().as_deref() == Some("lost"),
    }))
}

async fn drop_slot(config: &Config, slot: &str) -> Result<()> {
    let mut conn = Connection::connect(config)
        .await
        .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
    let dropped = conn
        .simple_query(&format!(
            "SELECT pg_catalog.pg_drop_replication_slot({})",
            quote_literal(slot)
        ))
        .await;
    let _ = conn.close().await;
    dropped
        .map(|_| ())
        .map_err(|e| Error::from(e).context(format!("dropping replication slot {slot:?}")))
}

/// Makes the slot and exports every table into its lake table in the slot's snapshot (each
/// commit recording the slot's consistent point). A failed export drops the slot again.
async fn first_export(
    config: &Config,
    tables: &[TableName],
    sources: &[Source],
    targets: &[LakeTarget],
    options: &MirrorOptions,
    hooks: &mut Hooks<'_, MirrorProgress>,
) -> Result<u64> {
    let slot =
        ReplicationSlot::create_with(config, &options.slot, "pgoutput", options.failover).await?;
    let info = slot.info().clone();
    let partitions = options.partitions.clone().with_import_snapshot_at(
        &info.snapshot_name,
        &info.slot_name,
        &info.consistent_point,
    );
    let mut rows = 0;
    let mut failed = None;
    for ((table, source), target) in tables.iter().zip(sources).zip(targets) {
        let target = match options.start_over {
            true => target.clone().with_if_exists(IfExists::Replace),
            false => target.clone(),
        };
        let done = export_to_lake(
            config,
            source.clone(),
            &options.export,
            &partitions,
            &target,
            Hooks::new().with_stop(hooks.stop().clone()),
        )
        .await;
        match done {
            Ok(stats) => {
                rows += stats.rows;
                hooks.report(&MirrorProgress::Exported {
                    table: table.quoted(),
                    lake_table: target.name(),
                    rows: stats.rows,
                    lsn: info.consistent_point.clone(),
                });
            }
            Err(e) => {
                failed = Some(e.context(format!(
                    "exporting {} into {} in the snapshot of slot {:?}",
                    table.quoted(),
                    target.name(),
                    options.slot
                )));
                break;
            }
        }
    }
    let released = slot.release().await;
    if let Some(e) = failed {
        let _ = drop_slot(config, &options.slot).await;
        return Err(e);
    }
    released?;
    Ok(rows)
}

/// Follows the slot, committing each table's changes at every checkpoint and confirming it;
/// ends with the table to export again (and why) at a schema change it cannot take in place.
async fn follow(
    config: &Config,
    publication: &str,
    options: &MirrorOptions,
    mirrored: &mut [Mirrored],
    stats: &mut MirrorStats,
    hooks: &mut Hooks<'_, MirrorProgress>,
) -> Result<Option<Again>> {
    // What a stream before this one gathered comes again: it was not confirmed.
    for m in mirrored.iter_mut() {
        m.pending.clear();
    }
    let start = mirrored
        .iter()
        .map(|m| m.point.lsn)
        .min()
        .unwrap_or_default();
    let stream_options = ChangeOptions::new(&options.slot, &[publication])
        .with_start(Some(start))
        .with_values(ValueFormat::Binary)
        .with_decode(options.export.decode)
        .with_policies(options.export.policies)
        .with_catch_up(options.catch_up)
        .with_flush_interval(options.commit_interval)
        .with_flush_rows(options.commit_changes);
    let mut waited = 0;
    let mut stream = loop {
        let stream_hooks = Hooks::new().with_stop(hooks.stop().clone());
        match ChangeStream::start_with(config.clone(), stream_options.clone(), stream_hooks).await {
            Ok(stream) => break stream,
            // The walsender of a stream this run just closed has not let go of the slot yet
            // ("replication slot ... is active for PID ...").
            Err(e) if e.code() == Some("55006") && waited < 50 && stats.reexported > 0 => {
                waited += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) if e.to_string().contains("binary") => {
                return Err(
                    e.context("a mirror reads values in their binary form (PostgreSQL 14+)")
                );
            }
            Err(e) => return Err(e),
        }
    };
    stats.start_lsn = stream.started_at().to_string();
    stats.end_lsn = start.to_string();
    let by_name: HashMap<String, usize> = mirrored
        .iter()
        .enumerate()
        .map(|(i, m)| (m.table.quoted(), i))
        .collect();
    let mut since = Instant::now();
    let mut changes_since = 0u64;
    while let Some(event) = stream.next_event().await? {
        match event {
            ChangeEvent::Schema(s) => {
                let Some(&i) = by_name.get(&s.table.quoted()) else {
                    continue;
                };
                let m = &mut mirrored[i];
                let columns = s.schema.fields().len() - pgarrow_changes::net::CHANGE_COLUMNS;
                let theirs: Vec<String> = s.schema.fields()[..columns]
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let ours: Vec<String> = m.lake.column_names();
                // Columns of a transaction the table holds already (a stream that starts
                // before the table's position replays older Relation messages): the lake
                // table's are newer.
                if s.lsn < m.point.lsn {
                    m.columns = columns;
                    continue;
                }
                let table_columns =
                    arrow_schema::Schema::new(s.schema.fields()[..columns].to_vec());
                // A type the table does not take in place is seen here even when the names are
                // the same and the stream has had no other columns (a run that stopped before
                // it exported the table again).
                if s.changed || theirs != ours || m.lake.refuses(&[], &table_columns).is_some() {
                    let defaults: Vec<String> = s
                        .schema
                        .metadata()
                        .get(pgarrow_changes::META_DEFAULTS)
                        .and_then(|d| serde_json::from_str(d).ok())
                        .unwrap_or_else(|| theirs.clone());
                    let change = SchemaChange::compare(m, &ours, &table_columns, &defaults);
                    // Rows of the announcing transaction under the old columns (an ALTER
                    // TABLE after changes in one transaction) cannot be committed apart.
                    if m.pending
                        .iter()
                        .any(|b| !after(b, s.lsn).is_ok_and(|a| a.num_rows() == 0))
                    {
                        if options.reexport && change.is_ok() {
                            stream.close().await?;
                            let why = "a transaction changed its rows and then its columns";
                            let renamed = change.map(|c| c.renamed).unwrap_or_default();
                            return Ok(Some(Again {
                                table: i,
                                why: why.to_owned(),
                                renamed,
                            }));
                        }
                        return Err(Error::usage(format!(
                            "a transaction changed rows of {} and then its columns (at {}): a \
                             mirror commits whole transactions under one set of columns. Start \
                             over from a new snapshot (--start-over)",
                            m.table.quoted(),
                            s.lsn
                        )));
                    }
                    // What changed before the new columns goes in under the old ones, at the
                    // transaction that announced them (and before a change refused).
                    commit_table(m, s.lsn, options, stats, hooks).await?;
                    let change = change.map_err(|what| {
                        Error::usage(format!(
                            "the columns of {} changed at {}: {what}. The lake table holds every \
                             change before it; nothing after it was committed. Start over from a \
                             new snapshot to take the new columns (--start-over)",
                            m.table.quoted(),
                            s.lsn
                        ))
                    })?;
                    if let Some(why) = change.reexport {
                        if !options.reexport {
                            return Err(Error::usage(format!(
                                "the columns of {} changed at {}: {why}, which the lake table \
                                 cannot take in place. The lake table holds every change before \
                                 it; nothing after it was committed. Let the mirror export the \
                                 table again (leave out --no-reexport), or start over from a \
                                 new snapshot (--start-over)",
                                m.table.quoted(),
                                s.lsn
                            )));
                        }
                        stream.close().await?;
                        return Ok(Some(Again {
                            table: i,
                            why,
                            renamed: change.renamed,
                        }));
                    }
                    m.lake.evolve(&change.dropped_names);
                    hooks.report(&MirrorProgress::SchemaChanged {
                        table: m.table.quoted(),
                        lsn: s.lsn.to_string(),
                        added: change.added,
                        dropped: change.dropped_names,
                    });
                }
                m.columns = columns;
                m.types = table_columns
                    .fields()
                    .iter()
                    .map(|f| f.data_type().clone())
                    .collect();
            }
            ChangeEvent::Rows(b) => {
                let Some(&i) = by_name.get(&b.table.quoted()) else {
                    continue;
                };
                let m = &mut mirrored[i];
                let batch = after(&b.batch, m.point.lsn)?;
                if batch.num_rows() > 0 {
                    changes_since += batch.num_rows() as u64;
                    m.pending.push(batch);
                }
            }
            ChangeEvent::Checkpoint(lsn) => {
                for m in mirrored.iter_mut() {
                    commit_table(m, lsn, options, stats, hooks).await?;
                }
                stream.confirm(lsn).await?;
                stats.end_lsn = lsn.to_string();
                let server = stream.server_lsn().max(lsn);
                let elapsed = since.elapsed().as_secs_f64().max(1e-9);
                hooks.report(&MirrorProgress::Checkpoint {
                    lsn: lsn.to_string(),
                    server_lsn: server.to_string(),
                    lag_bytes: server.0.saturating_sub(lsn.0),
                    changes_per_s: changes_since as f64 / elapsed,
                });
                since = Instant::now();
                changes_since = 0;
            }
        }
    }
    stream.close().await?;
    Ok(None)
}

/// A table's columns as a new Relation message gives them, against the lake table's: what
/// the lake table takes in place (columns added without a value for the rows before, columns
/// dropped, types widened), what needs the table's rows again (`reexport`, why), or what a
/// mirror cannot follow at all (the error's text).
pub(crate) struct SchemaChange {
    pub(crate) added: Vec<String>,
    pub(crate) dropped_names: Vec<String>,
    /// Why the lake table cannot take the change in place: the table is exported again.
    pub(crate) reexport: Option<String>,
    /// Columns renamed for sure, `(old, new)`: in their place among the others, not the last
    /// (a column added goes last).
    pub(crate) renamed: Vec<(String, String)>,
}

impl SchemaChange {
    /// The change from `ours` (the lake table's columns) to `theirs` (the source's), or why a
    /// mirror cannot follow it; `defaults` names the source's columns with a default (or a
    /// value the rows before them take).
    pub(crate) fn compare(
        m: &Mirrored,
        ours: &[String],
        theirs: &arrow_schema::Schema,
        defaults: &[String],
    ) -> std::result::Result<SchemaChange, String> {
        let columns = theirs;
        let theirs: Vec<String> = columns.fields().iter().map(|f| f.name().clone()).collect();
        let theirs = theirs.as_slice();
        let added: Vec<String> = theirs
            .iter()
            .filter(|c| !ours.contains(c))
            .cloned()
            .collect();
        let dropped: Vec<String> = ours
            .iter()
            .filter(|c| !theirs.contains(c))
            .cloned()
            .collect();
        if let RowKey::Columns(key) = &m.key
            && let Some(k) = key.iter().find(|k| dropped.contains(k))
        {
            return Err(format!("its key column {k:?} is gone"));
        }
        let mut reexport = Self::reexport(m, ours, columns, &added, &dropped, defaults);
        let renamed = Self::renamed(ours, columns, &added, &dropped);
        // Told apart by whole rows, the table's index holds digests of the old columns.
        let types: Vec<&arrow_schema::DataType> =
            columns.fields().iter().map(|f| f.data_type()).collect();
        let retyped = !m.types.is_empty() && m.types.iter().collect::<Vec<_>>() != types;
        if m.key == RowKey::WholeRow
            && reexport.is_none()
            && (!added.is_empty() || !dropped.is_empty() || retyped)
        {
            reexport = Some(
                "the columns of a table told apart by whole rows (REPLICA IDENTITY FULL, no \
                 key) changed"
                    .into(),
            );
        }
        Ok(SchemaChange {
            added,
            dropped_names: dropped,
            reexport,
            renamed,
        })
    }

    /// The columns renamed for sure: a column gone whose place (not the last) a new one
    /// takes, the others in their order. A new column goes after the others, so only a rename
    /// puts one there (or a column dropped and one added last, when the last).
    fn renamed(
        ours: &[String],
        columns: &arrow_schema::Schema,
        added: &[String],
        dropped: &[String],
    ) -> Vec<(String, String)> {
        let theirs: Vec<&String> = columns.fields().iter().map(|f| f.name()).collect();
        if ours.len() != theirs.len() {
            return Vec::new();
        }
        ours.iter()
            .zip(&theirs)
            .enumerate()
            .filter(|(i, (old, new))| {
                *i + 1 < ours.len() && dropped.contains(old) && added.contains(new)
            })
            .map(|(_, (old, new))| (old.clone(), (*new).clone()))
            .collect()
    }

    /// Why the lake table cannot take the change in place, if it cannot.
    fn reexport(
        m: &Mirrored,
        ours: &[String],
        columns: &arrow_schema::Schema,
        added: &[String],
        dropped: &[String],
        defaults: &[String],
    ) -> Option<String> {
        let theirs: Vec<String> = columns.fields().iter().map(|f| f.name().clone()).collect();
        // The columns kept, in a new order: the lake's columns keep theirs.
        let kept_old: Vec<&String> = ours.iter().filter(|c| theirs.contains(c)).collect();
        let kept_new: Vec<&String> = theirs.iter().filter(|c| ours.contains(c)).collect();
        if kept_old != kept_new {
            return Some("the columns are in a new order".into());
        }
        // A renamed column keeps its place among the columns; a Relation message names the
        // columns only, so a column dropped and another added in its place look the same.
        // Taken as a drop and an add, a rename would lose the column's values.
        for (i, old) in ours.iter().enumerate() {
            if dropped.contains(old)
                && let Some(new) = theirs.get(i)
                && added.contains(new)
                && ours.len() == theirs.len()
            {
                return Some(format!(
                    "column {old:?} was renamed {new:?} (or dropped and another added in its \
                     place)"
                ));
            }
        }
        if let Some(why) = m.lake.refuses(dropped, columns) {
            return Some(why);
        }
        // A column added with a default gives the rows before it that value (a table
        // rewritten, for a volatile one) with no change in the WAL.
        added.iter().find(|c| defaults.contains(c)).map(|c| {
            format!(
                "column {c:?} was added with a default, which the rows before it take with no \
                 change in the WAL"
            )
        })
    }
}

/// The rows of `batch` whose transactions committed at or after `lsn` (those before are in
/// the table already).
pub(crate) fn after(batch: &RecordBatch, lsn: Lsn) -> Result<RecordBatch> {
    let commits = batch
        .column_by_name(COMMIT_LSN_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<arrow_array::UInt64Array>())
        .ok_or_else(|| Error::from(ErrorKind::Internal(format!("no {COMMIT_LSN_COLUMN}"))))?;
    if commits.values().iter().all(|&c| c >= lsn.0) {
        return Ok(batch.clone());
    }
    let keep: arrow_array::BooleanArray =
        commits.values().iter().map(|&c| Some(c >= lsn.0)).collect();
    arrow_select::filter::filter_record_batch(batch, &keep)
        .map_err(|e| Error::from(ErrorKind::Internal(format!("filtering changes: {e}"))))
}

/// Commits a table's pending changes up to `lsn`, reading the table again and folding anew
/// when its files changed beside the mirror.
pub(crate) async fn commit_table(
    m: &mut Mirrored,
    lsn: Lsn,
    options: &MirrorOptions,
    stats: &mut MirrorStats,
    hooks: &mut Hooks<'_, MirrorProgress>,
) -> Result<()> {
    if m.pending.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let schema = m.pending[0].schema();
    let batch = arrow_select::concat::concat_batches(&schema, &m.pending)
        .map_err(|e| Error::from(ErrorKind::Internal(format!("gathering changes: {e}"))))?;
    // The values as the lake table's files hold them (a uuid as text in Delta, an interval as
    // its struct): the rows it keeps and the keys it finds are of the same types.
    let batch = crate::common::lake_batch(&batch, m.columns, m.target.lake_format())?;
    let name = m.table.quoted();
    let point = MirrorPoint {
        slot: options.slot.clone(),
        lsn,
    };
    let mut tries = Retries::new(options.retries, format!("mirroring into {name}"));
    let (plan, done): (Plan, _) = loop {
        // Only what the table does not hold yet (all of it, unless the table moved on).
        let batch = after(&batch, m.point.lsn)?;
        let planning = Instant::now();
        let plan = m.live.plan(&batch, m.columns, &name, live::read_rows).await;
        debug(format_args!(
            "{name}: {} changes folded in {:.3} s",
            batch.num_rows(),
            planning.elapsed().as_secs_f64()
        ));
        let plan = match (plan, options.deletes) {
            (Ok(plan), DeleteMode::CopyOnWrite) => plan.copy_on_write(&m.live, &batch, m.columns),
            (plan, _) => plan,
        };
        let tried = match plan {
            Ok(plan) if plan.is_empty() => {
                // The changes cancel out: nothing to commit (the slot is confirmed past them).
                m.pending.clear();
                stats.changes += plan.changes;
                return Ok(());
            }
            Ok(plan) => match m.lake.commit(&mut m.live, &plan, Some(&point)).await {
                Ok(done) => break (plan, done),
                Err(e) => e,
            },
            Err(e) => e,
        };
        // The table's files changed beside the mirror (compaction; expiry then removed files
        // the mirror read from): read the table again and fold anew. Another error on a table
        // that did not change is the error.
        let moved = is_moved(&tried);
        debug(format_args!("moved ({moved}): {tried}"));
        if tries.lost(&tried).await.is_err() {
            return Err(tried);
        }
        let Some((lake, live, now)) = crate::table::open(&m.target, &m.key).await? else {
            return Err(Error::usage(format!(
                "lake table {} was dropped beside the mirror",
                m.target.name()
            )));
        };
        if !moved && same_files(&live, &m.live) {
            return Err(tried);
        }
        stats.retried += 1;
        match now {
            Some(now) if now.slot == options.slot => m.point = now,
            _ => {
                return Err(Error::usage(format!(
                    "lake table {} no longer records slot {:?}: another writer replaced it \
                     beside the mirror",
                    m.target.name(),
                    options.slot
                )));
            }
        }
        m.lake = lake;
        m.live = live;
    };
    m.pending.clear();
    m.point = point;
    stats.commits += 1;
    stats.files += done.files as u64;
    stats.changes += plan.changes;
    stats.inserted += plan.inserted();
    stats.deleted += plan.deleted();
    stats.truncates += u64::from(plan.truncate);
    hooks.report(&MirrorProgress::Committed {
        table: name,
        lsn: lsn.to_string(),
        changes: plan.changes,
        inserted: plan.inserted(),
        deleted: plan.deleted(),
        truncated: plan.truncate,
        snapshot: done.snapshot,
        commit_s: started.elapsed().as_secs_f64(),
    });
    Ok(())
}

/// Whether two reads of a table found the same files (each at the same place, with the same
/// deletes).
fn same_files(a: &Live, b: &Live) -> bool {
    let files = |l: &Live| {
        let mut f: Vec<(String, usize)> = l
            .files
            .values()
            .map(|f| (f.location.to_string(), f.deleted.len()))
            .collect();
        f.sort();
        f
    };
    files(a) == files(b)
}

/// Whether `e` says the table's files changed under a commit: an optimistic commit that lost
/// its race ([`Error::is_conflict`], by its kind, never its text).
pub(crate) fn is_moved(e: &Error) -> bool {
    e.is_conflict()
}
