//! An export into an Iceberg table: the table loaded from its catalog, the export's files
//! written under its `data` directory with the table's field IDs, described in one manifest,
//! and committed as one snapshot (with the schema and partition spec the export brings) by
//! the catalog, onto each newer table another writer committed while the change still fits it.

use pgarrow::incremental::IncrementalState;
use pgarrow::io::{DirTarget, FieldIds, Format, Layout, Manifest};
use pgarrow::partition::PartitionOptions;
use pgarrow::{Error, ErrorKind, ExportOptions, Hooks, IntoConfig, Result, Source};
use serde_json::{Value as Json, json};

use super::catalog::{Catalog, Change as CatalogChange, Committed, Loaded, TableChange};
use super::connected::Connected;
use super::manifest::{self, SpecField};
use super::schema::{self, IcebergSchema};
use super::spec::{self, PartitionSpec, Snapshot, TableMetadata, TableRequirement, TableUpdate};
use super::{
    IcebergStats, IcebergTarget, describe_files, located, new_snapshot, new_snapshot_id,
    requirements, set_sequence, snapshot_updates, spec_layout, summary, transform_name, writable,
};
use crate::cleanup::{Cleanup, blocking};
use crate::common::IfExists;
use crate::retry::Retries;
use crate::run::Exported;

/// A local warehouse as a `file:` URI of its absolute path (as Iceberg's own writers name
/// local files: readers built on iceberg-rust refuse a bare path), an object URL as given.
fn absolute(path: &str) -> Result<String> {
    if path.contains("://") {
        return Ok(path.trim_end_matches('/').to_owned());
    }
    let p = std::path::absolute(path)
        .map_err(|e| Error::from(ErrorKind::Usage(format!("warehouse {path}: {e}"))))?;
    Ok(format!(
        "file://{}",
        p.to_string_lossy().trim_end_matches('/')
    ))
}

/// Exports `source` into the Iceberg table `target` describes, over
/// `partitions.connections` connections reading one snapshot, and commits the files in one
/// snapshot.
///
/// # Errors
/// The table exists and [`IfExists::Fail`]; a new table without a warehouse; its columns
/// differ from the export's (named); a column of a type Iceberg cannot hold (named); a table
/// of another format version; a replace raced by another commit; the export's errors; the
/// catalog's; storage errors. The table is then as it was, and the files written are removed.
pub async fn export_to_iceberg(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    target: &IcebergTarget,
    hooks: Hooks<'_>,
) -> Result<IcebergStats> {
    let name = format!("{}.{}", target.namespace, target.table);
    let mut catalog =
        Connected::connect(&target.catalog, &target.catalog_name, &target.storage).await?;
    let result = async {
        let prepared = Prepared::new(
            &mut catalog,
            config,
            source,
            options,
            partitions,
            target,
            hooks,
        )
        .await?;
        prepared.commit_alone(&mut catalog).await
    }
    .await;
    catalog.close().await;
    result.map_err(|e| e.context(format!("Iceberg table {name}")))
}

/// Exports each source into its Iceberg table (every target of one catalog, the first's),
/// then commits all of them in one multi-table transaction: a REST catalog's
/// `transactions/commit`, one transaction of an SQL catalog's database. Readers see every
/// table's new snapshot, or none. Where the catalog cannot (a REST server without the
/// endpoint, or one that makes no new table inside a transaction), each table is committed on
/// its own, and the second value says why.
///
/// # Errors
/// [`export_to_iceberg`]'s, for any of the tables: then no table changed (unless committed
/// each on its own: the error names the table it stopped at), and the files are removed.
pub(crate) async fn export_tables_to_iceberg(
    config: &pgarrow::protocol::Config,
    jobs: Vec<(Source, &IcebergTarget, Hooks<'_>)>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
) -> Result<(Vec<IcebergStats>, Option<String>)> {
    let Some((_, first, _)) = jobs.first() else {
        return Ok((Vec::new(), None));
    };
    let mut catalog =
        Connected::connect(&first.catalog, &first.catalog_name, &first.storage).await?;
    let result = async {
        let mut prepared = Vec::with_capacity(jobs.len());
        for (source, target, hooks) in jobs {
            let name = format!("{}.{}", target.namespace, target.table);
            let p = Prepared::new(
                &mut catalog,
                config.clone(),
                source,
                options,
                partitions,
                target,
                hooks,
            )
            .await
            .map_err(|e| e.context(format!("Iceberg table {name}")))?;
            prepared.push(p);
        }
        commit_together(&mut catalog, prepared).await
    }
    .await;
    catalog.close().await;
    result
}

/// Commits every export in one operation of the catalog, onto the tables as they are after
/// each conflict while `tries` allow (the first's retries); each on its own where the catalog
/// cannot commit them together (and why).
async fn commit_together(
    catalog: &mut Connected,
    mut prepared: Vec<Prepared>,
) -> Result<(Vec<IcebergStats>, Option<String>)> {
    let names: Vec<&str> = prepared.iter().map(|p| p.name.as_str()).collect();
    let retries = prepared.first().map_or(0, |p| p.target.retries);
    let mut tries = Retries::new(retries, format!("Iceberg tables {}", names.join(", ")));
    loop {
        let mut attempts = Vec::with_capacity(prepared.len());
        for p in prepared.iter_mut() {
            attempts.push(p.attempt(tries.retried()).await?);
        }
        let together = {
            let changes: Vec<TableChange<'_>> = prepared
                .iter()
                .zip(&attempts)
                .map(|(p, a)| p.change(a))
                .collect();
            catalog.commit_all(&changes).await?
        };
        let why = match together {
            Err(apart) => {
                for (p, a) in prepared.iter_mut().zip(attempts) {
                    p.discard(a).await?;
                }
                log::info!("{apart}: each table is committed on its own");
                let mut out = Vec::with_capacity(prepared.len());
                for p in prepared {
                    let name = p.name.clone();
                    let landed: Vec<String> = out
                        .iter()
                        .map(|s: &IcebergStats| s.metadata_location.clone())
                        .collect();
                    let stats = p.commit_alone(catalog).await.map_err(|e| {
                        let before = match landed.len() {
                            0 => String::new(),
                            n => format!(" ({n} table(s) before it were committed)"),
                        };
                        e.context(format!("Iceberg table {name}{before}"))
                    })?;
                    out.push(stats);
                }
                return Ok((out, Some(apart)));
            }
            Ok(Committed::Done(tables)) => {
                let retried = tries.retried();
                let out = prepared
                    .into_iter()
                    .zip(attempts)
                    .zip(tables)
                    .map(|((p, a), done)| p.landed(&a, done, retried))
                    .collect();
                return Ok((out, None));
            }
            // It may have landed: every file it names stays.
            Ok(Committed::Unknown(why)) => {
                for p in prepared {
                    p.keep_all();
                }
                return Err(super::catalog::unknown(&why));
            }
            Ok(Committed::Conflict(why)) => why,
        };
        for (p, a) in prepared.iter_mut().zip(attempts) {
            p.discard(a).await?;
        }
        tries.lost(why).await?;
        for p in prepared.iter_mut() {
            p.reload(catalog)
                .await
                .map_err(|e| e.context(format!("Iceberg table {}", p.name)))?;
        }
    }
}

/// An export's files, written and described, ready to commit as a snapshot of its table;
/// removed when dropped uncommitted.
struct Prepared {
    ns: String,
    table: String,
    name: String,
    /// The target, with the storage its catalog gives the table.
    target: IcebergTarget,
    location: String,
    ours: IcebergSchema,
    change: Change,
    if_exists: IfExists,
    snapshot_id: i64,
    new_entry: crate::avro::Value,
    files: usize,
    rows: u64,
    bytes: u64,
    manifest: Manifest,
    run: Option<crate::common::LakeRun>,
    run_state: Option<String>,
    previous: Option<IncrementalState>,
    /// The table as last read; none while the export makes it.
    state: Option<Loaded>,
    written: pgarrow::partition::ExportedFiles,
    cleanup: Cleanup,
}

/// One attempt at the commit: its manifest list, sequence number and snapshot.
struct Attempt {
    list_path: String,
    sequence: i64,
    snapshot: Snapshot,
}

impl Prepared {
    /// Reads the table `target` names, exports `source` under it and writes the manifest of
    /// its files.
    async fn new(
        catalog: &mut Connected,
        config: impl IntoConfig,
        source: impl Into<Source>,
        options: &ExportOptions,
        partitions: &PartitionOptions,
        target: &IcebergTarget,
        hooks: Hooks<'_>,
    ) -> Result<Prepared> {
        let name = format!("{}.{}", target.namespace, target.table);
        let opened = Opened::read(catalog, target, &name).await?;
        // The table's files are where its catalog says, with the storage it gives.
        let target = IcebergTarget {
            storage: catalog.storage().clone(),
            ..target.clone()
        };
        let files = opened.files(&target)?;
        let Exported {
            files: written,
            run,
            manifest,
            schema: arrow,
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
        let ours = schema::iceberg_schema(&arrow, &opened.ids)?;
        let Opened {
            base,
            previous,
            if_exists,
            location,
            layout,
            respec,
            ..
        } = opened;
        let change = Change::new(
            base.as_ref().map(|b| &b.metadata),
            &ours,
            &layout,
            if_exists,
            respec,
        )?;
        let snapshot_id = new_snapshot_id();
        let mut cleanup = Cleanup::new();
        let (data_files, new_entry) = stage(
            &manifest,
            &change,
            &location,
            snapshot_id,
            &target,
            &mut cleanup,
        )
        .await?;
        let rows: u64 = data_files.iter().map(|f| f.rows).sum();
        let bytes: u64 = data_files.iter().map(|f| f.bytes).sum();
        let paths = data_files.iter().map(|f| f.path.clone()).collect();
        let (run, run_state) = crate::run::finish(run, rows, paths)?;
        Ok(Prepared {
            ns: target.namespace.clone(),
            table: target.table.clone(),
            name,
            target,
            location,
            ours,
            change,
            if_exists,
            snapshot_id,
            new_entry,
            files: data_files.len(),
            rows,
            bytes,
            manifest,
            run,
            run_state,
            previous,
            state: base,
            written,
            cleanup,
        })
    }

    /// Commits the snapshot on its own, onto each newer table another writer committed while
    /// the target's retries allow and the change still fits it.
    async fn commit_alone(mut self, catalog: &mut Connected) -> Result<IcebergStats> {
        let mut tries = Retries::new(self.target.retries, format!("Iceberg table {}", self.name));
        loop {
            let a = self.attempt(tries.retried()).await?;
            let committed = {
                let c = self.change(&a);
                match c.change {
                    CatalogChange::Create(metadata) => {
                        catalog.create(c.namespace, c.table, *metadata).await?
                    }
                    CatalogChange::Update {
                        base,
                        requirements,
                        updates,
                    } => {
                        catalog
                            .commit(c.namespace, c.table, base, &requirements, &updates)
                            .await?
                    }
                }
            };
            let why = match committed {
                Committed::Done(done) => return Ok(self.landed(&a, *done, tries.retried())),
                // It may have landed: every file it names stays.
                Committed::Unknown(why) => {
                    self.keep_all();
                    return Err(super::catalog::unknown(&why));
                }
                Committed::Conflict(why) => why,
            };
            self.discard(a).await?;
            tries.lost(why).await?;
            self.reload(catalog).await?;
        }
    }

    /// Writes the manifest list of an attempt onto the table as last read: the new manifest,
    /// then (an append) the current snapshot's.
    async fn attempt(&mut self, retried: usize) -> Result<Attempt> {
        let meta = self.state.as_ref().map(|l| &l.metadata);
        let sequence = meta.and_then(|m| m.last_sequence_number).unwrap_or(0) + 1;
        let mut entries = vec![set_sequence(self.new_entry.clone(), sequence)];
        let parent = meta.and_then(TableMetadata::current_snapshot_id);
        let previous = meta.and_then(TableMetadata::current_snapshot);
        if self.if_exists == IfExists::Append
            && let Some(list) = previous.and_then(|p| p.manifest_list.clone())
        {
            let at = crate::iceberg::located(&list, &self.target.storage)?;
            let bytes = blocking(move || Ok(at.read()?)).await?;
            entries.extend(manifest::read_manifest_list(&bytes)?);
        }
        let list_path = format!(
            "{}/metadata/snap-{}-{}-{}.avro",
            self.location,
            self.snapshot_id,
            retried + 1,
            crate::common::new_uuid()
        );
        let list_bytes =
            manifest::write_manifest_list(&entries, self.snapshot_id, parent, sequence)?;
        self.cleanup
            .write(located(&list_path, &self.target.storage)?, list_bytes)
            .await?;
        let mut summary = summary(
            self.if_exists,
            previous,
            self.files,
            self.rows,
            self.bytes,
            &self.manifest,
        );
        if let Some(text) = &self.run_state {
            summary.insert(STATE_KEY.into(), Json::String(text.clone()));
        }
        let snapshot = new_snapshot(
            self.snapshot_id,
            sequence,
            &list_path,
            summary,
            self.change.schema.schema_id,
            parent,
        );
        Ok(Attempt {
            list_path,
            sequence,
            snapshot,
        })
    }

    /// What the attempt asks of the catalog: the table made, or updated under requirements.
    fn change(&self, a: &Attempt) -> TableChange<'_> {
        let change = match &self.state {
            None => CatalogChange::Create(Box::new(new_metadata(
                &self.location,
                &self.ours,
                &self.change.spec,
                a.snapshot.clone(),
            ))),
            Some(b) => {
                let mut updates = self.change.updates(&b.metadata);
                updates.extend(snapshot_updates(a.snapshot.clone()));
                let mut requirements = requirements(&b.metadata);
                requirements.extend(self.change.requirements());
                CatalogChange::Update {
                    base: b,
                    requirements,
                    updates,
                }
            }
        };
        TableChange {
            namespace: &self.ns,
            table: &self.table,
            change,
        }
    }

    /// Removes what an attempt that did not land wrote (it names nothing).
    async fn discard(&mut self, a: Attempt) -> Result<()> {
        self.cleanup
            .remove(&located(&a.list_path, &self.target.storage)?)
            .await;
        Ok(())
    }

    /// Reads the table again after a lost race: a table another writer changed takes the
    /// export still only if it appends, its incremental run was not raced, and its schema and
    /// partitioning are the ones the export began on.
    async fn reload(&mut self, catalog: &mut Connected) -> Result<()> {
        let now = catalog.load(&self.ns, &self.table).await?;
        let changed = match (&self.state, &now) {
            (Some(was), Some(now)) => was.location != now.location,
            (None, None) => false,
            _ => true,
        };
        if !changed {
            return Ok(());
        }
        match (&self.state, self.if_exists) {
            (Some(_), IfExists::Replace) => {
                return Err(ErrorKind::Conflict(
                    "another writer committed to the table while it was being replaced; \
                     nothing was committed"
                        .into(),
                )
                .into());
            }
            // Another writer made the table first: only an append goes on, onto it.
            (None, IfExists::Fail | IfExists::Replace) => {
                return Err(ErrorKind::Conflict(
                    "another writer made the table during the export; nothing was committed \
                     (--if-exists append adds to it)"
                        .into(),
                )
                .into());
            }
            _ => {}
        }
        let now = now.ok_or_else(|| {
            Error::from(ErrorKind::Conflict(
                "the table was dropped during the export; nothing was committed".into(),
            ))
        })?;
        writable(&now.metadata)?;
        crate::run::check_race(
            self.run.as_ref(),
            self.previous.as_ref(),
            last_state(&now.metadata)?.as_ref(),
        )?;
        if !self.change.still_fits(&now.metadata, &self.ours) {
            return Err(ErrorKind::Conflict(
                "another writer changed the table's schema or partitioning during the export; \
                 nothing was committed"
                    .into(),
            )
            .into());
        }
        self.target.storage = catalog.storage().clone();
        self.state = Some(now);
        Ok(())
    }

    /// The export's statistics, its files kept: the attempt `a` landed as `done`.
    fn landed(mut self, a: &Attempt, done: Loaded, retried: usize) -> IcebergStats {
        self.cleanup.keep();
        IcebergStats {
            export: self.written.keep(),
            snapshot_id: self.snapshot_id,
            sequence_number: a.sequence,
            metadata_location: done.location,
            created: self.state.is_none(),
            rows: self.rows,
            files: self.files,
            retried,
            run: self.run,
        }
    }

    /// Keeps every file, for a commit that may have landed.
    fn keep_all(mut self) {
        self.cleanup.keep();
        let _ = self.written.keep();
    }
}

/// The table an export goes into, as loaded before it: its metadata if it exists, the last
/// incremental run's state it holds, what the export does to it, where its files go, and the
/// layout and field IDs they are written by.
struct Opened {
    base: Option<Loaded>,
    previous: Option<IncrementalState>,
    if_exists: IfExists,
    location: String,
    /// The export's partitions, else the table's.
    layout: Layout,
    /// Whether the export's partitions give the table a new partition spec.
    respec: bool,
    /// The table's field IDs for its columns; new columns are numbered after its last.
    ids: FieldIds,
}

impl Opened {
    /// The table `target` names, refused if it exists and the export may not add to it.
    async fn read(catalog: &mut Connected, target: &IcebergTarget, name: &str) -> Result<Opened> {
        let (ns, table) = (target.namespace.as_str(), target.table.as_str());
        let base = catalog.load(ns, table).await?;
        let base_meta = base.as_ref().map(|b| &b.metadata);
        // An incremental run goes on from the state the table's last commit carries: appended
        // (a restart replaces the table's rows).
        let previous = match (base_meta, &target.incremental) {
            (Some(meta), Some(_)) => last_state(meta)?,
            _ => None,
        };
        let if_exists = crate::run::if_exists(
            target.incremental.as_ref(),
            base.is_some(),
            previous.is_some(),
            target.if_exists,
        )?;
        if let Some(meta) = base_meta {
            if if_exists == IfExists::Fail {
                return Err(ErrorKind::Usage(format!(
                    "Iceberg table {name} exists: append to it or replace it (--if-exists \
                     append, --if-exists replace)"
                ))
                .into());
            }
            writable(meta)?;
        }
        let location = match (base_meta, &target.warehouse) {
            (Some(meta), _) => meta.location.trim_end_matches('/').to_owned(),
            (None, w) => {
                let warehouse = w.as_deref().map(absolute).transpose()?;
                catalog
                    .new_location(ns, table, warehouse.as_deref())
                    .await?
            }
        };
        let mut layout = target.layout.clone();
        // An export with partitions of its own into a table partitioned otherwise gives the
        // table a new partition spec in its commit (the old files keep theirs).
        let mut respec = false;
        if let Some(meta) = base_meta {
            let theirs = spec_layout(meta, name)?;
            if layout.partitions.is_empty() {
                layout.partitions = theirs;
            } else {
                respec = layout.partitions != theirs;
            }
        }
        let ids = match base_meta {
            Some(meta) => schema::known_ids(
                meta.current_schema().map_or(&[][..], |s| &s.fields),
                meta.last_column_id,
            ),
            None => FieldIds::default(),
        };
        Ok(Opened {
            base,
            previous,
            if_exists,
            location,
            layout: layout.with_partition_columns_kept(true),
            respec,
            ids,
        })
    }

    /// Where the export writes its files: the table's `data` directory, with its field IDs.
    fn files(&self, target: &IcebergTarget) -> Result<DirTarget> {
        let data_dir = format!("{}/data", self.location);
        Ok(
            DirTarget::new(located(&data_dir, &target.storage)?, Format::Parquet)
                // Iceberg's readers read the files by the table's schema, which has no JSON or
                // geometry types: the files say plain text and binary too (pyiceberg refuses
                // an Arrow extension type it does not know).
                .with_options(
                    target
                        .options
                        .clone()
                        .with_known_field_ids(self.ids.clone())
                        .with_arrow_extensions(false)
                        .with_forms(crate::common::value_forms(crate::common::Format::Iceberg)),
                )
                .with_layout(self.layout.clone())
                .with_file_prefix(crate::common::new_uuid()),
        )
    }
}

/// The export's files (its `manifest`) described as data files by `change`'s spec and schema,
/// and their manifest written (tracked by `cleanup`) with its entry for the snapshot's list.
async fn stage(
    manifest: &Manifest,
    change: &Change,
    location: &str,
    snapshot_id: i64,
    target: &IcebergTarget,
    cleanup: &mut Cleanup,
) -> Result<(Vec<super::manifest::DataFile>, crate::avro::Value)> {
    let data_files = {
        let (manifest, spec, types, storage, data_dir) = (
            manifest.clone(),
            change.spec.clone(),
            schema::primitive_types(&change.schema.fields),
            target.storage.clone(),
            format!("{location}/data"),
        );
        blocking(move || describe_files(&data_dir, &storage, &manifest, &spec, &types)).await?
    };
    let manifest_path = format!("{location}/metadata/{}-m0.avro", crate::common::new_uuid());
    let bytes = manifest::write_manifest(
        &data_files,
        &change.spec,
        change.spec_id,
        &change.schema,
        snapshot_id,
    )?;
    let length = bytes.len() as u64;
    cleanup
        .write(located(&manifest_path, &target.storage)?, bytes)
        .await?;
    let entry = manifest::list_entry(
        &manifest_path,
        length,
        &change.spec,
        change.spec_id,
        0,
        snapshot_id,
        &data_files,
    );
    Ok((data_files, entry))
}

/// What an export changes of the table besides its snapshot: its schema after the export
/// (a new one when `evolved`), and the partition spec its files are written by (a new default
/// when `respec`).
struct Change {
    schema: spec::Schema,
    evolved: bool,
    last_column_id: i64,
    spec_id: i64,
    spec: Vec<SpecField>,
    respec: bool,
    /// The table's current schema and default spec the export began on.
    base_schema_id: Option<i64>,
    base_spec_id: Option<i64>,
}

impl Change {
    fn new(
        base: Option<&TableMetadata>,
        ours: &IcebergSchema,
        layout: &Layout,
        if_exists: IfExists,
        respec: bool,
    ) -> Result<Change> {
        let (schema, evolved, base_schema_id) = match base {
            None => (ours.schema(0), false, None),
            Some(meta) => {
                let current = meta.current_schema().ok_or_else(|| {
                    Error::from(ErrorKind::InvalidInput(
                        "its metadata has no current schema".into(),
                    ))
                })?;
                let replace = if_exists == IfExists::Replace;
                match schema::evolve(current, ours, replace) {
                    Err(why) => {
                        return Err(
                            ErrorKind::Usage(format!("{why}; nothing was committed")).into()
                        );
                    }
                    Ok(None) => (current.clone(), false, Some(current.schema_id)),
                    Ok(Some(fields)) => (
                        spec::Schema::new(meta.next_schema_id(), fields),
                        true,
                        Some(current.schema_id),
                    ),
                }
            }
        };
        let types = schema::primitive_types(&schema.fields);
        let mut spec = Vec::new();
        for (k, field) in layout.partitions.iter().enumerate() {
            let source_id = ours.id_of(&field.column).ok_or_else(|| {
                Error::from(ErrorKind::Usage(format!(
                    "partition {field}: no column \"{}\"",
                    field.column
                )))
            })?;
            spec.push(SpecField {
                source_id,
                field_id: 1000 + k as i64,
                name: field.name(),
                transform: transform_name(field.transform),
                source_type: types.get(&(source_id as i32)).cloned().unwrap_or_default(),
            });
        }
        let mut spec_id = 0;
        if let Some(meta) = base {
            if respec {
                spec_id = evolved_spec(meta, &mut spec);
            } else {
                // The table's own partition field IDs and names.
                let (id, fields) = meta.default_spec();
                spec_id = id;
                for (ours, theirs) in spec.iter_mut().zip(fields) {
                    ours.field_id = theirs.field_id.unwrap_or(ours.field_id);
                    ours.name = theirs.name.clone();
                }
            }
        }
        let last_column_id = base
            .map_or(0, |m| m.last_column_id)
            .max(i64::from(ours.last_id));
        Ok(Change {
            schema,
            evolved,
            last_column_id,
            spec_id,
            spec,
            respec,
            base_schema_id,
            base_spec_id: base.map(|m| m.default_spec().0),
        })
    }

    /// The updates besides the snapshot's, on `meta`.
    fn updates(&self, meta: &TableMetadata) -> Vec<TableUpdate> {
        let mut out = Vec::new();
        if self.evolved {
            out.push(TableUpdate::AddSchema {
                schema: self.schema.clone(),
                last_column_id: self.last_column_id,
            });
            out.push(TableUpdate::SetCurrentSchema { schema_id: -1 });
        }
        if self.respec {
            out.extend(spec_updates(meta, self.spec_id, &self.spec));
        }
        out
    }

    /// What the change needs of the table besides its snapshot: the schema it evolves and the
    /// spec it replaces are still current.
    fn requirements(&self) -> Vec<TableRequirement> {
        let mut out = Vec::new();
        if let (true, Some(id)) = (self.evolved, self.base_schema_id) {
            out.push(TableRequirement::AssertCurrentSchemaId {
                current_schema_id: id,
            });
        }
        if let (true, Some(id)) = (self.respec, self.base_spec_id) {
            out.push(TableRequirement::AssertDefaultSpecId {
                default_spec_id: id,
            });
        }
        out
    }

    /// Whether the table another writer committed to (`now`) still takes this change: its
    /// schema and spec are the ones the export began on (or, for a table the export meant to
    /// make, the export's own).
    fn still_fits(&self, now: &TableMetadata, ours: &IcebergSchema) -> bool {
        let now_schema = now.current_schema();
        let (now_spec_id, now_spec) = now.default_spec();
        match self.base_schema_id {
            Some(id) => {
                now_schema.map(|s| s.schema_id) == Some(id)
                    && Some(now_spec_id) == self.base_spec_id
            }
            // The table another writer made must be this export's: its columns, numbered
            // alike, and its partitioning.
            None => {
                now_schema.is_some_and(|s| {
                    s.schema_id == self.schema.schema_id
                        && schema::evolve(s, ours, false) == Ok(None)
                }) && now_spec_id == self.spec_id
                    && now_spec.len() == self.spec.len()
                    && now_spec.iter().zip(&self.spec).all(|(theirs, ours)| {
                        theirs.source_id == ours.source_id
                            && theirs.transform == ours.transform
                            && theirs.field_id == Some(ours.field_id)
                    })
            }
        }
    }
}

/// The snapshot summary key of an incremental run's state.
const STATE_KEY: &str = "pgarrow.incremental";

/// The state of the last incremental run the table's current snapshot descends from.
fn last_state(meta: &TableMetadata) -> Result<Option<IncrementalState>> {
    let mut snap = meta.current_snapshot();
    while let Some(s) = snap {
        if let Some(text) = s.summary.get(STATE_KEY).and_then(Json::as_str) {
            let at = format!("snapshot {}", s.snapshot_id);
            return crate::run::parse_state(text, &at).map(Some);
        }
        snap = s.parent_snapshot_id.and_then(|p| meta.snapshot(p));
    }
    Ok(None)
}

/// The spec ID of the table's spec of `spec`'s fields, numbering them as Iceberg does: a
/// field of a source column and transform some spec of the table has keeps that field's ID
/// and name, a new one is numbered after `last-partition-id`; an existing spec of the same
/// fields is reused, else the spec is a new one, numbered after the table's specs.
fn evolved_spec(meta: &TableMetadata, spec: &mut [SpecField]) -> i64 {
    let mut last = meta.last_partition_id.unwrap_or(999);
    for ours in spec.iter_mut() {
        let known = meta
            .partition_specs
            .iter()
            .flat_map(|s| &s.fields)
            .find(|f| f.source_id == ours.source_id && f.transform == ours.transform);
        match known {
            Some(f) => {
                ours.field_id = f.field_id.unwrap_or(ours.field_id);
                ours.name = f.name.clone();
            }
            None => {
                last += 1;
                ours.field_id = last;
            }
        }
    }
    let same = |s: &&PartitionSpec| {
        s.fields.len() == spec.len()
            && s.fields.iter().zip(spec.iter()).all(|(f, ours)| {
                f.field_id == Some(ours.field_id)
                    && f.source_id == ours.source_id
                    && f.transform == ours.transform
            })
    };
    match meta.partition_specs.iter().find(same) {
        Some(s) => s.spec_id,
        None => {
            meta.partition_specs
                .iter()
                .map(|s| s.spec_id)
                .max()
                .unwrap_or(-1)
                + 1
        }
    }
}

/// The updates that make spec `spec_id` of `spec`'s fields the table's default (added when
/// new).
fn spec_updates(meta: &TableMetadata, spec_id: i64, spec: &[SpecField]) -> Vec<TableUpdate> {
    let mut out = Vec::new();
    if !meta.partition_specs.iter().any(|s| s.spec_id == spec_id) {
        out.push(TableUpdate::AddSpec {
            spec: PartitionSpec {
                spec_id,
                fields: spec.iter().map(SpecField::spec_field).collect(),
                other: Default::default(),
            },
        });
    }
    out.push(TableUpdate::SetDefaultSpec { spec_id });
    out
}

/// A new table's metadata, its first snapshot `snap`.
fn new_metadata(
    location: &str,
    schema: &IcebergSchema,
    spec: &[SpecField],
    snap: Snapshot,
) -> TableMetadata {
    let mut properties = serde_json::Map::new();
    properties.insert(
        "created-by".into(),
        Json::String(format!("pgarrow {}", env!("CARGO_PKG_VERSION"))),
    );
    let empty = TableMetadata {
        format_version: 2,
        table_uuid: Some(crate::common::new_uuid()),
        location: location.to_owned(),
        last_sequence_number: Some(0),
        last_updated_ms: snap.timestamp_ms,
        last_column_id: i64::from(schema.last_id),
        schemas: vec![schema.schema(0)],
        current_schema_id: Some(0),
        partition_specs: vec![PartitionSpec {
            spec_id: 0,
            fields: spec.iter().map(SpecField::spec_field).collect(),
            other: Default::default(),
        }],
        default_spec_id: Some(0),
        last_partition_id: Some(999 + spec.len() as i64),
        properties,
        current_snapshot_id: None,
        snapshots: Vec::new(),
        snapshot_log: Vec::new(),
        metadata_log: Vec::new(),
        sort_orders: Some(json!([{"order-id": 0, "fields": []}])),
        default_sort_order_id: Some(0),
        refs: Default::default(),
        other: Default::default(),
        unsigned_ids: Default::default(),
    };
    let now = snap.timestamp_ms;
    let mut m = empty.updated("", &snapshot_updates(snap), now);
    // A new table has no earlier metadata file.
    m.metadata_log.clear();
    m
}
