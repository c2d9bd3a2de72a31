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

mod follow;
mod options;
pub(crate) mod pending;
mod schema;
mod source;

use std::time::Instant;

use pgarrow::names::TableName;
use pgarrow::protocol::Config;
use pgarrow::{Error, ErrorKind, Hooks, IntoConfig, Result, Source};
use pgarrow_changes::slot::ReplicationSlot;

use crate::common::IfExists;
pub use crate::live::IndexStats;
pub use crate::live::MirrorPoint;
use crate::live::{Live, debug};
use crate::table::{LakeTable, Opened};
use crate::target::{LakeTarget, export_to_lake};
use follow::follow;
pub(crate) use follow::{after, commit_table, is_moved};
pub use options::{DEFAULT_MEMORY_LIMIT, DeleteMode, MirrorOptions, MirrorProgress, MirrorStats};
pub(crate) use options::{index_memory, pending_memory};
pub(crate) use schema::SchemaChange;
pub use source::resolve_tables;
use source::{Prepared, SlotState, drop_slot, prepare};

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
    let Prepared {
        publication,
        tables: named,
        keys,
        sources,
        slot,
    } = prepare(&config, tables, options).await?;
    let targets: Vec<LakeTarget> = named
        .iter()
        .map(|t| match tables.len() {
            1 => target.clone(),
            _ => target.for_table(t, "public"),
        })
        .collect();
    let mut stats = MirrorStats {
        slot: options.slot.clone(),
        publication: publication.clone(),
        tables: named.iter().map(TableName::quoted).collect(),
        ..MirrorStats::default()
    };
    let mut opened = open_all(&targets, &keys, options.memory_limit).await?;
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
        goes_on(options, slot.as_ref(), recorded, tables.len())?;
    }
    if start_over {
        if slot.is_some() {
            drop_slot(&config, &options.slot).await?;
        }
        let rows = first_export(&config, &named, &sources, &targets, options, &mut hooks).await?;
        stats.exported = true;
        stats.exported_rows = rows;
        opened = open_all(&targets, &keys, options.memory_limit).await?;
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
            pending: pending::Pending::default(),
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
    stats.index = mirrored
        .iter()
        .map(|m| m.live.index.stats())
        .fold(IndexStats::default(), IndexStats::plus);
    Ok(stats)
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
    let Some((lake, live, Some(point))) =
        crate::table::open(&m.target, &m.key, options.memory_limit).await?
    else {
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
