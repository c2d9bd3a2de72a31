//! An export into a DuckLake table: the table found in the catalog (not held idle through the
//! export, which may take hours, past a server's `idle_session_timeout` or a proxy's), the
//! export's files written under its directory with the table's column IDs, and committed in
//! one catalog transaction by [`Commit`], again onto each newer snapshot another writer made
//! while the change still fits it. Several tables exported in one source snapshot are
//! committed in one catalog transaction, one lake snapshot.

use pgarrow::incremental::IncrementalState;
use pgarrow::io::{DirTarget, FieldIds, Format, Layout, Location, Manifest, Transform};
use pgarrow::partition::{ExportedFiles, PartitionOptions};
use pgarrow::{ErrorKind, ExportOptions, Hooks, IntoConfig, Result, Source};

use super::catalog::Catalog;
use super::columns::{LakeColumn, known_ids, lake_columns_from};
use super::commit::{Commit, Committed, run_together};
use super::partitions::Key;
use super::{
    DataFile, DuckLakeStats, DuckLakeTarget, Table, describe_files, evolve, find_schema,
    find_table, is_race, last_column_id, last_state, partitions, same_partitions,
};
use crate::common::{IfExists, LakeRun, new_uuid};
use crate::retry::Retries;
use crate::run::Exported;

/// Exports `source` into the DuckLake table `target` describes, over
/// `partitions.connections` connections reading one snapshot, and commits the files in one
/// catalog transaction.
///
/// # Errors
/// The table exists and [`IfExists::Fail`]; its columns differ from the export's (named); a
/// column of a type DuckLake cannot hold (named); the export's errors; the catalog's. The
/// table is then as it was, and the files written are removed.
pub async fn export_to_ducklake(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    target: &DuckLakeTarget,
    hooks: Hooks<'_>,
) -> Result<DuckLakeStats> {
    let config = config.into_config()?;
    let prepared =
        Prepared::new(&config, source.into(), options, partitions, target, hooks).await?;
    let mut out = commit_all(vec![prepared]).await?;
    Ok(out.remove(0))
}

/// Exports each source into its DuckLake table (every target of one catalog, the first's),
/// then commits all of them in one catalog transaction: one snapshot makes every table's rows
/// visible (and the tables, when new), so that readers see them all at the source snapshot
/// they were read in, or none.
///
/// # Errors
/// [`export_to_ducklake`]'s, for any of the tables: then no table changed, and the files are
/// removed.
pub(crate) async fn export_tables_to_ducklake(
    config: &pgarrow::protocol::Config,
    jobs: Vec<(Source, &DuckLakeTarget, Hooks<'_>)>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
) -> Result<Vec<DuckLakeStats>> {
    let mut prepared = Vec::with_capacity(jobs.len());
    for (source, target, hooks) in jobs {
        let p = Prepared::new(config, source, options, partitions, target, hooks)
            .await
            .map_err(|e| e.context(format!("DuckLake table {}.{}", target.schema, target.table)))?;
        prepared.push(p);
    }
    commit_all(prepared).await
}

/// An export whose files are written, its catalog change ready: removed unless committed.
struct Prepared<'t> {
    target: &'t DuckLakeTarget,
    opened: Opened,
    written: ExportedFiles,
    run: Option<LakeRun>,
    manifest: Manifest,
    columns: Vec<LakeColumn>,
    keys: Vec<Key>,
    /// The files' partitioning is the export's own (`--files-by`): it becomes the table's.
    repartition: bool,
    described: Vec<DataFile>,
    rows: u64,
}

impl<'t> Prepared<'t> {
    /// Writes the export's files under the table's directory, with its column IDs, and
    /// checks them against the table as it was.
    async fn new(
        config: &pgarrow::protocol::Config,
        source: Source,
        options: &ExportOptions,
        partitions: &PartitionOptions,
        target: &'t DuckLakeTarget,
        hooks: Hooks<'_>,
    ) -> Result<Prepared<'t>> {
        if let Some(field) = target
            .layout
            .partitions
            .iter()
            .find(|f| matches!(f.transform, Transform::Bucket(_) | Transform::Truncate(_)))
        {
            return Err(ErrorKind::Usage(format!(
                "value partition {field}: DuckLake partitions by a column or by year, month, \
                 day or hour"
            ))
            .into());
        }
        let opened = Opened::read(target).await?;
        let name = &opened.name;
        let location = Location::parse(&opened.dir, &target.storage)?;
        let files = DirTarget::new(location.clone(), Format::Parquet)
            .with_options(
                target
                    .options
                    .clone()
                    .with_field_ids(true)
                    .with_known_field_ids(opened.ids.clone())
                    .with_forms(crate::common::value_forms(crate::common::Format::DuckLake)),
            )
            .with_layout(opened.layout.clone())
            .with_file_prefix(format!("ducklake-{}", new_uuid()));
        let Exported {
            files: written,
            run,
            manifest,
            schema,
        } = crate::run::export(
            config.clone(),
            source,
            options,
            partitions,
            &files,
            hooks,
            target.incremental.as_ref(),
            opened.previous.as_ref(),
        )
        .await?;
        let columns = lake_columns_from(&schema, &opened.ids)
            .map_err(|e| e.context(format!("DuckLake table {name}")))?;
        if let Some(table) = &opened.existing {
            let replace = opened.if_exists == IfExists::Replace;
            evolve(&table.columns, &columns, replace, name)?;
        }
        let keys = partitions::keys(&opened.layout, &columns, &schema)
            .map_err(|e| e.context(format!("DuckLake table {name}")))?;
        // Files partitioned otherwise than the table: its partitioning changes with the
        // commit when the export asked for its own (--files-by), as DuckDB's SET PARTITIONED
        // BY does.
        let repartition = !target.layout.partitions.is_empty();
        if let Some(table) = &opened.existing
            && !repartition
        {
            same_partitions(table, &keys, name)?;
        }
        let described = describe_files(&location, &manifest, &columns, &keys).await?;
        let rows = described.iter().map(|f| f.rows).sum();
        let paths = described
            .iter()
            .map(|f| format!("{}{}", opened.dir, f.path))
            .collect();
        let (run, _) = crate::run::finish(run, rows, paths)?;
        Ok(Prepared {
            target,
            opened,
            written,
            run,
            manifest,
            columns,
            keys,
            repartition,
            described,
            rows,
        })
    }

    /// The catalog change.
    fn commit(&self) -> Commit<'_> {
        Commit {
            schema: &self.target.schema,
            table: &self.target.table,
            if_exists: self.opened.if_exists,
            run: self.run.as_ref(),
            previous: self.opened.previous.as_ref(),
            expected: self.opened.existing.as_ref().map(|t| t.id),
            columns: &self.columns,
            keys: &self.keys,
            repartition: self.repartition,
            files: &self.described,
            manifest: &self.manifest,
            deletes: &[],
            point: None,
            since: None,
            rewrite: false,
            dropped: &[],
        }
    }

    /// The export's statistics, its commit `done` landed after `retried` lost races.
    fn landed(self, done: Committed, retried: usize) -> DuckLakeStats {
        DuckLakeStats {
            export: self.written.keep(),
            snapshot: done.snapshot,
            table_id: done.table_id,
            created: done.created,
            rows: self.rows,
            files: self.described.len(),
            retried,
            run: self.run,
        }
    }
}

/// Runs every export's catalog change in one catalog transaction (the first's catalog),
/// again after each race another writer won while the first's retries allow (the transaction
/// reads the tables again and checks each change still fits).
///
/// # Errors
/// A change that no longer fits, or the tries spent: nothing committed, the files removed. A
/// `COMMIT` whose outcome is unknown: the files kept.
async fn commit_all(prepared: Vec<Prepared<'_>>) -> Result<Vec<DuckLakeStats>> {
    let Some(first) = prepared.first() else {
        return Ok(Vec::new());
    };
    let names: Vec<&str> = prepared.iter().map(|p| p.opened.name.as_str()).collect();
    let what = match names.as_slice() {
        [one] => format!("DuckLake table {one}"),
        all => format!("DuckLake tables {}", all.join(", ")),
    };
    if let Some(other) = prepared
        .iter()
        .find(|p| p.target.catalog != first.target.catalog)
    {
        return Err(ErrorKind::Usage(format!(
            "DuckLake table {} is in another catalog than {}: tables committed together share \
             one",
            other.opened.name, first.opened.name
        ))
        .into());
    }
    let mut tries = Retries::new(first.target.retries, what.clone());
    let mut catalog = Catalog::connect(&first.target.catalog).await?;
    let done = loop {
        let tried = {
            let commits: Vec<Commit<'_>> = prepared.iter().map(Prepared::commit).collect();
            run_together(&commits, &mut catalog).await
        };
        let lost = match tried {
            Ok(Ok(done)) => break Ok(done),
            Ok(Err(e)) if is_race(&e) => tries.lost(e).await,
            Ok(Err(e)) => Err(e),
            Err(e) => {
                // It may have landed: no file it names may go.
                for p in prepared {
                    p.written.keep();
                }
                catalog.close().await;
                return Err(e.context(format!("committing {what} (whether it landed is unknown)")));
            }
        };
        if let Err(e) = lost {
            break Err(e.context(format!("committing to {what}")));
        }
    };
    catalog.close().await;
    let retried = tries.retried();
    Ok(prepared
        .into_iter()
        .zip(done?)
        .map(|(p, d)| p.landed(d, retried))
        .collect())
}

/// The table an export goes into, as found before it: the table if it exists, the last
/// incremental run's state it holds, what the export does to it, its directory, and the
/// layout and column IDs its files are written by.
struct Opened {
    name: String,
    existing: Option<Table>,
    previous: Option<IncrementalState>,
    if_exists: IfExists,
    dir: String,
    /// The export's columns take the table's IDs by path; new ones are numbered after the
    /// table's highest (a dropped column's ID is never reused).
    ids: FieldIds,
    /// An append without partitions of its own writes files as the table is partitioned.
    layout: Layout,
}

impl Opened {
    /// The table `target` names, refused if it exists and the export may not add to it.
    async fn read(target: &DuckLakeTarget) -> Result<Opened> {
        let mut catalog = Catalog::connect(&target.catalog).await?;
        let opened = Opened::read_in(&mut catalog, target).await;
        catalog.close().await;
        opened
    }

    async fn read_in(catalog: &mut Catalog, target: &DuckLakeTarget) -> Result<Opened> {
        let data_path = catalog.open(target.data_path.as_deref()).await?;
        let existing = find_table(catalog, &target.schema, &target.table).await?;
        let name = format!("{}.{}", target.schema, target.table);
        let previous = match (&existing, &target.incremental) {
            (Some(table), Some(_)) => last_state(catalog, table.id).await?,
            _ => None,
        };
        let if_exists = crate::run::if_exists(
            target.incremental.as_ref(),
            existing.is_some(),
            previous.is_some(),
            target.if_exists,
        )
        .map_err(|e| e.context(format!("DuckLake table {name}")))?;
        if existing.is_some() && if_exists == IfExists::Fail {
            return Err(ErrorKind::Usage(format!(
                "DuckLake table {name} exists: append to it or replace it (--if-exists append, \
                 --if-exists replace)"
            ))
            .into());
        }
        let dir = match &existing {
            Some(table) => table.dir.clone(),
            None => match find_schema(catalog, &target.schema).await? {
                Some((_, schema_dir)) => format!("{schema_dir}{}/", target.table),
                None => format!("{data_path}{}/{}/", target.schema, target.table),
            },
        };
        let ids = match &existing {
            Some(table) => known_ids(&table.columns, last_column_id(catalog, table.id).await?),
            None => FieldIds::default(),
        };
        let mut layout = target.layout.clone();
        if layout.partitions.is_empty()
            && let Some(Table {
                partition: Some((_, spec)),
                columns,
                ..
            }) = &existing
        {
            layout.partitions = partitions::layout_of(spec, columns)
                .map_err(|e| e.context(format!("DuckLake table {name}")))?;
        }
        Ok(Opened {
            name,
            existing,
            previous,
            if_exists,
            dir,
            ids,
            layout: layout.with_partition_columns_kept(true),
        })
    }
}
