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

mod at;
mod follow;
mod metrics;
mod options;
pub(crate) mod pending;
mod schema;
mod source;
mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgarrow::names::TableName;
use pgarrow::protocol::Config;
use pgarrow::{Error, ErrorKind, Hooks, IntoConfig, Result, Source};
use pgarrow_changes::slot::ReplicationSlot;

use crate::common::IfExists;
pub use crate::live::IndexStats;
pub use crate::live::MirrorPoint;
use crate::live::{Live, debug};
use crate::table::{LakeTable, Opened};
use crate::target::{LakeTarget, export_tables_to_lake, export_to_lake};
pub use at::{LakePoint, SourcePoint, TableAt, mirror_at, mirror_at_text};
use follow::follow;
pub(crate) use follow::{after, commit_table, is_moved, pend};
use metrics::Metrics;
pub use options::{
    DEFAULT_MEMORY_LIMIT, DEFAULT_RETRY_FOR, DeleteMode, MirrorOptions, MirrorProgress,
    MirrorStats, metrics_address,
};
pub(crate) use options::{index_memory, pending_memory};
pub(crate) use schema::SchemaChange;
pub use source::resolve_tables;
use source::{Prepared, SlotState, drop_slot, prepare};
pub use status::{MirrorStatus, TableStatus, mirror_status};

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
    pub(crate) pending: pending::Pending,
    /// Of the schema's columns, how many are the table's.
    pub(crate) columns: usize,
    /// The table's types as the stream's last Relation message gave them, by column.
    pub(crate) types: Vec<arrow_schema::DataType>,
}

impl Mirrored {
    /// `table`, read by `source`, kept in `target` (told apart by `key`) as `opened` holds it,
    /// nothing pending yet.
    pub(crate) fn new(
        table: TableName,
        source: Source,
        target: LakeTarget,
        key: RowKey,
        (lake, live, point): (Box<dyn LakeTable>, Live, MirrorPoint),
    ) -> Mirrored {
        Mirrored {
            table,
            source,
            target,
            key,
            lake,
            live,
            point,
            pending: pending::Pending::default(),
            columns: 0,
            types: Vec::new(),
        }
    }
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
///
/// A failure that may pass ([`Error::is_transient`]: a connection to the source or the catalog
/// cut, an object store or catalog that did not answer) is not the end while
/// [`retry_for`](MirrorOptions::retry_for) lasts: the run waits a jittered backoff, reported as
/// [`MirrorProgress::Retrying`], and starts again from the tables' commits and the slot, which
/// keep every change exactly once across it.
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
    let metrics = match options.metrics_listen {
        Some(address) => Some(Arc::new(Metrics::listen(address, &options.slot).await?)),
        None => None,
    };
    if let Some(m) = &metrics {
        hooks.report(&MirrorProgress::Metrics {
            address: m.address.to_string(),
        });
        // Every event the caller sees, the endpoint counts.
        let (recorder, mut outer) = (m.clone(), hooks);
        hooks = Hooks::new().with_stop(outer.stop().clone()).on_progress(
            move |event: &MirrorProgress| {
                recorder.record(event);
                outer.report(event);
            },
        );
    }
    let mut stats = MirrorStats::default();
    let mut backoff = Backoff::new(options.retry_for);
    let mut options = options.clone();
    loop {
        let before = (stats.commits, stats.reexported);
        let mut attempt = Attempt {
            first: FirstExport::NotBegun,
            metrics: metrics.as_deref(),
        };
        let tried = run(
            &config,
            tables,
            target,
            &options,
            &mut hooks,
            &mut stats,
            &mut attempt,
        )
        .await;
        let first = attempt.first;
        match tried {
            Ok(()) => return Ok(stats),
            Err(e) if e.is_transient() && !hooks.stop().is_stopped() => {
                // A run that committed (or exported) before it failed made progress: the time
                // to give up counts from this failure.
                if (stats.commits, stats.reexported) != before || first == FirstExport::Done {
                    backoff = Backoff::new(options.retry_for);
                }
                // A first export cut short left a slot its tables do not record: the next
                // try begins again; one that finished is not done again.
                if first != FirstExport::NotBegun {
                    options.start_over = first == FirstExport::Begun;
                }
                let Some(wait) = backoff.next() else {
                    return Err(e);
                };
                stats.restarts += 1;
                hooks.report(&MirrorProgress::Retrying {
                    attempt: backoff.failures,
                    wait_s: wait.as_secs_f64(),
                    left_s: backoff.left().as_secs_f64(),
                    error: e.to_string(),
                });
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = hooks.stop().stopped() => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// One try of a mirror: how far it got with a first export, and the endpoint it reports to.
#[derive(Debug)]
struct Attempt<'m> {
    first: FirstExport,
    metrics: Option<&'m Metrics>,
}

/// How far a try of a mirror got with a first export (a new slot and every table exported in
/// its snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstExport {
    NotBegun,
    Begun,
    Done,
}

/// The waits between a mirror's tries after failures that may pass: jittered, each bound
/// twice the last (from one second up to thirty), for `within` after the first failure.
#[derive(Debug)]
struct Backoff {
    within: Duration,
    first: Option<Instant>,
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const LONGEST: Duration = Duration::from_secs(30);

    fn new(within: Duration) -> Backoff {
        Backoff {
            within,
            first: None,
            failures: 0,
        }
    }

    /// The time left to try in.
    fn left(&self) -> Duration {
        self.within
            .saturating_sub(self.first.map_or(Duration::ZERO, |f| f.elapsed()))
    }

    /// The wait before the next try, after a failure; `None` when the time is spent.
    fn next(&mut self) -> Option<Duration> {
        let first = *self.first.get_or_insert_with(Instant::now);
        self.failures += 1;
        let left = self.within.checked_sub(first.elapsed())?;
        if left.is_zero() {
            return None;
        }
        let bound = Self::FIRST
            .saturating_mul(1 << self.failures.saturating_sub(1).min(5))
            .min(Self::LONGEST);
        // Half the bound and a random part of the other half: tries of several mirrors cut
        // at once do not come back in step.
        let wait = bound / 2 + bound.mul_f64(fastrand::f64() / 2.0);
        Some(wait.min(left))
    }
}

/// One try of [`mirror_to_lake`], its counts added to `stats`.
async fn run(
    config: &Config,
    tables: &[TableName],
    target: &LakeTarget,
    options: &MirrorOptions,
    hooks: &mut Hooks<'_, MirrorProgress>,
    stats: &mut MirrorStats,
    attempt: &mut Attempt<'_>,
) -> Result<()> {
    let metrics = attempt.metrics;
    let config = config.clone();
    // Tables that came to match the patterns since the caller read them (joined a run
    // before this try, say) are this run's too.
    let resolved;
    let tables = match grows(options) {
        true => {
            resolved = resolve_tables(config.clone(), &options.patterns).await?;
            resolved.as_slice()
        }
        false => tables,
    };
    // ... and those added to the mirror's own publication.
    let with_own;
    let tables = match options.publication.is_none() && (tables.len() > 1 || grows(options)) {
        true => {
            with_own = source::with_published(&config, tables, &options.slot).await?;
            with_own.as_slice()
        }
        false => tables,
    };
    let Prepared {
        publication,
        tables: named,
        keys,
        sources,
        slot,
        republished,
    } = prepare(&config, tables, options).await?;
    // One table is named by the target itself, unless patterns may bring more (then each
    // table by its own name, as several are).
    let mut alone = tables.len() == 1 && !grows(options);
    let mut targets: Vec<LakeTarget> = named
        .iter()
        .map(|t| match alone {
            true => target.clone(),
            false => target.for_table(t, "public"),
        })
        .collect();
    stats.slot.clone_from(&options.slot);
    stats.publication.clone_from(&publication);
    stats.tables = named.iter().map(TableName::quoted).collect();
    let mut opened = open_all(&targets, &keys, options.memory_limit).await?;
    if tables.len() == 1 && !alone && opened[0].is_none() {
        // A mirror of one table made when one table was named by the target itself.
        if let Some(o) = crate::table::open(target, &keys[0], options.memory_limit).await? {
            (targets[0], opened[0], alone) = (target.clone(), Some(o), true);
        }
    }
    // Tables the mirror's own publication had lost are as if they had no lake table: the
    // changes made while they were out of it are not in the slot, so they are exported again.
    for &i in &republished {
        opened[i] = None;
    }
    let recorded = opened
        .iter()
        .filter(|o| {
            o.as_ref()
                .and_then(|(_, _, p)| p.as_ref())
                .is_some_and(|p| p.slot == options.slot)
        })
        .count();
    let start_over = options.start_over || (recorded == 0 && slot.is_none());
    // Tables without a lake table yet beside tables that record the slot (made, or come to
    // match the patterns, since the last run) join the mirror rather than start it over.
    let absent = opened.iter().filter(|o| o.is_none()).count();
    let joins_now = !start_over && !alone && recorded > 0 && slot.is_some() && absent > 0;
    if !start_over {
        let counted = if joins_now {
            recorded + absent
        } else {
            recorded
        };
        goes_on(options, slot.as_ref(), counted, tables.len())?;
    }
    if start_over {
        attempt.first = FirstExport::Begun;
        if slot.is_some() {
            drop_slot(&config, &options.slot).await?;
        }
        let rows = first_export(&config, &named, &sources, &targets, options, hooks).await?;
        attempt.first = FirstExport::Done;
        stats.exported = true;
        stats.exported_rows = rows;
        opened = open_all(&targets, &keys, options.memory_limit).await?;
    }
    let named_all = named.clone();
    let mut mirrored = Vec::with_capacity(tables.len());
    let mut joining = Vec::new();
    for ((((table, source), target), key), o) in named
        .into_iter()
        .zip(sources)
        .zip(targets)
        .zip(keys)
        .zip(opened)
    {
        if o.is_none() && joins_now {
            joining.push(table);
            continue;
        }
        let Some((lake, live, Some(point))) = o else {
            return Err(ErrorKind::Unexpected(format!(
                "lake table {} has no mirror position after its export",
                target.name()
            ))
            .into());
        };
        mirrored.push(Mirrored::new(
            table,
            source,
            target,
            key,
            (lake, live, point),
        ));
    }
    // Tables without a lake table yet join first; then a table exported again at a schema
    // change, tables joining or leaving: the stream starts over from the slot's confirmed
    // position, every table leaving out what it holds.
    let mut growing = Growing {
        known: named_all,
        discovers: !alone,
    };
    let mut tables_changed = Some(source::Discovered {
        joining,
        leaving: Vec::new(),
    });
    loop {
        if let Some(found) = tables_changed.take() {
            let mut leaving = found.leaving;
            leaving.sort_by_key(|l| std::cmp::Reverse(l.0));
            for (i, why) in leaving {
                let m = mirrored.remove(i);
                stats.left += 1;
                hooks.report(&MirrorProgress::Left {
                    table: m.table.quoted(),
                    lake_table: m.target.name(),
                    why,
                });
            }
            for table in found.joining {
                let into = Joining {
                    config: &config,
                    publication: &publication,
                    target,
                    options,
                };
                into.join(table, stats, hooks, &mut mirrored).await?;
            }
        }
        let again = follow(
            &config,
            &publication,
            options,
            &mut mirrored,
            stats,
            hooks,
            metrics,
            &mut growing,
        )
        .await?;
        match again {
            None => break,
            Some(Again::Reexport {
                table: i,
                why,
                renamed,
            }) => {
                reexport(
                    &config,
                    &mut mirrored[i],
                    &why,
                    &renamed,
                    options,
                    stats,
                    hooks,
                )
                .await?;
            }
            Some(Again::Tables(found)) => tables_changed = Some(found),
        }
    }
    stats.index = mirrored
        .iter()
        .map(|m| m.live.index.stats())
        .fold(IndexStats::default(), IndexStats::plus);
    Ok(())
}

/// Refuses to go on from `slot` (none: it no longer exists) when it cannot carry the lake
/// tables on from their commits: dropped, invalidated, or not recorded by all `tables` of
/// them (`recorded` do).
fn goes_on(
    options: &MirrorOptions,
    slot: Option<&SlotState>,
    recorded: usize,
    tables: usize,
) -> Result<()> {
    match slot {
        None => Err(Error::usage(format!(
            "the lake tables follow replication slot {:?}, which no longer exists: the changes \
             since their last commit are gone with it. Start over from a new snapshot \
             (--start-over)",
            options.slot
        ))),
        Some(state) if state.lost => Err(Error::usage(format!(
            "replication slot {:?} was invalidated (the server removed WAL it still needed: \
             max_slot_wal_keep_size): the changes since the tables' last commit are gone. \
             Start over from a new snapshot (--start-over)",
            options.slot
        ))),
        Some(_) if recorded < tables => Err(Error::usage(format!(
            "replication slot {:?} exists, but {} of the {tables} lake tables do not record it \
             (a first run that did not finish, or a slot of something else): start over from a \
             new snapshot (--start-over), which drops the slot and replaces the tables, or name \
             another slot",
            options.slot,
            tables - recorded,
        ))),
        Some(_) => Ok(()),
    }
}

/// Why a stream ended before its time, for the run to act on before it follows again.
enum Again {
    /// A table to export again: which, why, and the columns renamed for sure.
    Reexport {
        table: usize,
        why: String,
        renamed: Vec<(String, String)>,
    },
    /// Tables that join the mirror, and tables that leave it.
    Tables(source::Discovered),
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
    let (rows, consistent, (lake, live, point)) =
        export_at_new_point(config, &m.source, &m.target, &m.key, options, hooks)
            .await
            .map_err(context)?;
    (m.lake, m.live, m.point) = (lake, live, point);
    m.pending.clear();
    m.columns = 0;
    m.types.clear();
    stats.reexported += 1;
    stats.exported_rows += rows;
    hooks.report(&MirrorProgress::Reexported {
        table: name.clone(),
        lake_table: lake_table.clone(),
        why: why.to_owned(),
        rows,
        lsn: consistent,
    });
    Ok(())
}

/// Exports `source` into `target`, replacing its rows in one commit, in the snapshot of a
/// temporary slot: the commit records the mirror's slot at that snapshot's consistent point,
/// so the stream's changes before it are left out and those after applied. Gives the rows
/// exported, that point, and the table as the mirror then holds it.
async fn export_at_new_point(
    config: &Config,
    source: &Source,
    target: &LakeTarget,
    key: &RowKey,
    options: &MirrorOptions,
    hooks: &Hooks<'_, MirrorProgress>,
) -> Result<(u64, String, (Box<dyn LakeTable>, Live, MirrorPoint))> {
    let temporary = format!(
        "pgarrow_again_{}_{}",
        std::process::id(),
        NEXT_TEMPORARY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let slot = ReplicationSlot::create_temporary(config, &temporary, "pgoutput").await?;
    let info = slot.info().clone();
    let partitions = options.partitions.clone().with_import_snapshot_at(
        &info.snapshot_name,
        &options.slot,
        &info.consistent_point,
    );
    let done = export_to_lake(
        config,
        source.clone(),
        &options.export,
        &partitions,
        &target.clone().with_if_exists(IfExists::Replace),
        Hooks::new().with_stop(hooks.stop().clone()),
    )
    .await;
    // The temporary slot goes with its connection.
    let released = slot.release().await;
    let done = done?;
    released?;
    let Some((lake, live, Some(point))) =
        crate::table::open(target, key, options.memory_limit).await?
    else {
        return Err(ErrorKind::Unexpected(format!(
            "lake table {} has no mirror position after its export",
            target.name()
        ))
        .into());
    };
    Ok((done.rows, info.consistent_point, (lake, live, point)))
}

/// Temporary slots' numbers within the process.
static NEXT_TEMPORARY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether tables may join the mirror by its patterns: any pattern but one naming one table.
fn grows(options: &MirrorOptions) -> bool {
    match options.patterns.as_slice() {
        [] => false,
        [one] => one.exact().is_none(),
        _ => true,
    }
}

/// What a run keeps to find tables that join it.
pub(crate) struct Growing {
    /// The tables the patterns matched when last read.
    pub(crate) known: Vec<TableName>,
    /// Whether tables may join or leave (not a mirror of one table named by the target).
    pub(crate) discovers: bool,
}

/// Where tables join a run: its source, publication, lake and options.
struct Joining<'a> {
    config: &'a Config,
    publication: &'a str,
    /// The lake target, named for each table that joins.
    target: &'a LakeTarget,
    options: &'a MirrorOptions,
}

impl Joining<'_> {
    /// Makes `table` a table of the running mirror (its lake table named by `target` for it):
    /// in the mirror's publication (its own, added to it), exported in a snapshot of its own, then
    /// followed. A table that cannot be (no key, not in a publication given) is reported as not
    /// followed, and the others go on.
    async fn join(
        &self,
        table: TableName,
        stats: &mut MirrorStats,
        hooks: &mut Hooks<'_, MirrorProgress>,
        mirrored: &mut Vec<Mirrored>,
    ) -> Result<()> {
        let Joining {
            config,
            publication,
            target,
            options,
        } = *self;
        let target = target.for_table(&table, "public");
        let mut conn = pgarrow::protocol::Connection::connect(config)
            .await
            .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
        let ready = async {
            let (named, key) = source::describe(&mut conn, &table).await?;
            match options.publication {
                None => source::publish(&mut conn, publication, &named).await?,
                Some(_) if !source::publishes(&mut conn, publication, &named).await? => {
                    return Err(Error::usage(format!(
                        "publication {publication:?} does not publish it (ALTER PUBLICATION {} ADD \
                     TABLE {})",
                        pgarrow::protocol::quote_ident(publication),
                        named.quoted()
                    )));
                }
                Some(_) => {}
            }
            let source = source::published(&mut conn, publication, &named).await?;
            Ok((named, key, source))
        }
        .await;
        let _ = conn.close().await;
        let (named, key, source) = match ready {
            Ok(ready) => ready,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                stats.left += 1;
                hooks.report(&MirrorProgress::Left {
                    table: table.quoted(),
                    lake_table: target.name(),
                    why: format!("not followed: {e}"),
                });
                return Ok(());
            }
        };
        let (rows, consistent, (lake, live, point)) =
            export_at_new_point(config, &source, &target, &key, options, hooks)
                .await
                .map_err(|e| {
                    e.context(format!(
                        "exporting {} into {}, which joined the mirror",
                        named.quoted(),
                        target.name()
                    ))
                })?;
        stats.exported_rows += rows;
        stats.joined += 1;
        hooks.report(&MirrorProgress::Joined {
            table: named.quoted(),
            lake_table: target.name(),
            rows,
            lsn: consistent,
        });
        if !stats.tables.contains(&named.quoted()) {
            stats.tables.push(named.quoted());
        }
        mirrored.push(Mirrored::new(
            named,
            source,
            target,
            key,
            (lake, live, point),
        ));
        Ok(())
    }
}

/// Each lake table as the mirror holds it, if it exists.
async fn open_all(
    targets: &[LakeTarget],
    keys: &[RowKey],
    memory: u64,
) -> Result<Vec<Option<Opened>>> {
    let mut out = Vec::with_capacity(targets.len());
    let started = Instant::now();
    for (target, key) in targets.iter().zip(keys) {
        out.push(crate::table::open(target, key, memory).await?);
    }
    debug(format_args!(
        "{} lake table(s) read in {:.3} s",
        targets.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(out)
}

/// Makes the slot and exports every table into its lake table in the slot's snapshot, every
/// commit recording the slot's consistent point: tables of one DuckLake or Iceberg catalog in
/// one commit of the catalog (see [`export_tables_to_lake`]), so that the lake is at that one
/// point whole or not at all. A failed export drops the slot again.
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
    let jobs: Vec<(Source, LakeTarget)> = sources
        .iter()
        .zip(targets)
        .map(|(source, target)| {
            let target = match options.start_over {
                true => target.clone().with_if_exists(IfExists::Replace),
                false => target.clone(),
            };
            (source.clone(), target)
        })
        .collect();
    let stop = hooks.stop().clone();
    let done = export_tables_to_lake(config, jobs, &options.export, &partitions, |_| {
        Hooks::new().with_stop(stop.clone())
    })
    .await;
    let released = slot.release().await;
    let done = match done {
        Ok(done) => done,
        Err(e) => {
            let _ = drop_slot(config, &options.slot).await;
            let names: Vec<String> = tables.iter().map(TableName::quoted).collect();
            return Err(e.context(format!(
                "exporting {} in the snapshot of slot {:?}",
                names.join(", "),
                options.slot
            )));
        }
    };
    released?;
    let mut rows = 0;
    for ((table, target), stats) in tables.iter().zip(targets).zip(&done) {
        rows += stats.rows;
        hooks.report(&MirrorProgress::Exported {
            table: table.quoted(),
            lake_table: target.name(),
            rows: stats.rows,
            lsn: info.consistent_point.clone(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backoff_waits_longer_each_try_jittered_and_ends_with_its_time() {
        let mut b = Backoff::new(Duration::from_secs(3600));
        let waits: Vec<Duration> = (0..8).map(|_| b.next().unwrap()).collect();
        for (i, w) in waits.iter().enumerate() {
            // Half the bound and up to half again: 1 s, 2 s, 4 s ... 30 s at most.
            let bound = Duration::from_secs(1 << i.min(5)).min(Backoff::LONGEST);
            assert!(
                *w >= bound / 2 && *w <= bound,
                "try {i}: {w:?} of {bound:?}"
            );
        }
        assert_eq!(b.failures, 8);
        assert!(b.left() > Duration::from_secs(3500));
        // No time: no try; a little: a wait no longer than what is left.
        assert_eq!(Backoff::new(Duration::ZERO).next(), None);
        let mut short = Backoff::new(Duration::from_millis(300));
        assert!(short.next().unwrap() <= Duration::from_millis(300));
    }
}
