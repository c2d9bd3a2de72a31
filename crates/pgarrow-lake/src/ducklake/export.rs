//! An export into a DuckLake table: the table found in the catalog (not held idle through the
//! export, which may take hours, past a server's `idle_session_timeout` or a proxy's), the
//! export's files written under its directory with the table's column IDs, and committed in
//! one catalog transaction by [`Commit`], again onto each newer snapshot another writer made
//! while the change still fits it.

use pgarrow::incremental::IncrementalState;
use pgarrow::io::{DirTarget, FieldIds, Format, Layout, Location, Transform};
use pgarrow::partition::PartitionOptions;
use pgarrow::{ErrorKind, ExportOptions, Hooks, IntoConfig, Result, Source};

use super::catalog::Catalog;
use super::columns::{known_ids, lake_columns_from};
use super::commit::{Commit, Committed};
use super::{
    DuckLakeStats, DuckLakeTarget, Table, describe_files, evolve, find_schema, find_table, is_race,
    last_column_id, last_state, partitions, same_partitions,
};
use crate::common::{IfExists, new_uuid};
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
    if let Some(field) = target
        .layout
        .partitions
        .iter()
        .find(|f| matches!(f.transform, Transform::Bucket(_) | Transform::Truncate(_)))
    {
        return Err(ErrorKind::Usage(format!(
            "value partition {field}: DuckLake partitions by a column or by year, month, day \
             or hour"
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
        config,
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
    // Files partitioned otherwise than the table: its partitioning changes with the commit
    // when the export asked for its own (--files-by), as DuckDB's SET PARTITIONED BY does.
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
    let plan = Commit {
        schema: &target.schema,
        table: &target.table,
        if_exists: opened.if_exists,
        run: run.as_ref(),
        previous: opened.previous.as_ref(),
        expected: opened.existing.as_ref().map(|t| t.id),
        columns: &columns,
        keys: &keys,
        repartition,
        files: &described,
        manifest: &manifest,
        deletes: &[],
        point: None,
        since: None,
        rewrite: false,
        dropped: &[],
        together: false,
    };
    let mut tries = Retries::new(target.retries, format!("DuckLake table {name}"));
    let done = commit(&plan, target, &mut tries, name).await?;
    Ok(DuckLakeStats {
        export: written.keep(),
        snapshot: done.snapshot,
        table_id: done.table_id,
        created: done.created,
        rows,
        files: described.len(),
        retried: tries.retried(),
        run,
    })
}

/// Runs `plan`'s catalog transaction, again after each race another writer won while `tries`
/// allow (the transaction reads the table again and checks the change still fits).
async fn commit(
    plan: &Commit<'_>,
    target: &DuckLakeTarget,
    tries: &mut Retries,
    name: &str,
) -> Result<Committed> {
    let mut catalog = Catalog::connect(&target.catalog).await?;
    let done = loop {
        let lost = match plan.run(&mut catalog).await {
            Ok(done) => break Ok(done),
            Err(e) if is_race(&e) => tries.lost(e).await,
            Err(e) => Err(e),
        };
        if let Err(e) = lost {
            break Err(e.context(format!("committing to DuckLake table {name}")));
        }
    };
    catalog.close().await;
    done
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
