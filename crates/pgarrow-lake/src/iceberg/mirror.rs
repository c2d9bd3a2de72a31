//! An Iceberg table kept by a mirror: read as the mirror holds it (its current snapshot's live
//! data files, the rows its position delete files delete, and the position its last commit
//! reached, in the snapshot summary's provenance), and one snapshot per fold of changes. The
//! snapshot adds a manifest of the new rows' data files and a delete manifest of one position
//! delete file listing the rows the fold deletes (format version 2), each by its data file's
//! path and its position there; a truncate starts the snapshot's manifest list afresh. The commit swaps the table's metadata location
//! only if no other writer moved it: otherwise nothing is committed and the mirror reads the
//! table again.

use std::collections::{HashMap, HashSet};

use pgarrow::io::{Format, Layout, Manifest, ManifestFile, PartitionField};
use pgarrow::{Error, ErrorKind, Result};
use serde_json::{Value as Json, json};

use super::catalog::{Catalog, Change, Committed, Loaded, TableChange};
use super::connected::Connected;
use super::manifest::{self, DataFile, SpecField, Typed};
use super::spec::{Snapshot, TableMetadata, TableRequirement, TableUpdate};
use super::{
    IcebergTarget, blocking, located, new_snapshot_id, requirements, schema, set_sequence,
    snapshot_updates, spec_layout,
};
use crate::cleanup::Cleanup;
use crate::common::new_uuid;
use crate::live::{
    INDEX_HOME, LakeCommit, Laps, Live, LiveFile, MOVED, MirrorPoint, NewRows, Place, Plan,
    Positions,
};
use crate::table::{Apart, Staged};

/// An Iceberg table a mirror commits to.
pub(crate) struct IcebergMirror {
    target: IcebergTarget,
    name: String,
    /// The table's metadata, and where it is.
    table: Box<Loaded>,
    /// Each live data file's path (as the manifests name it), by the ID the mirror's index
    /// knows it by.
    paths: HashMap<i64, String>,
    next_id: i64,
    /// The table's partition spec (empty: not partitioned), and its fields as the layout
    /// that writes rows by them.
    spec: Vec<SpecField>,
    partitions: Vec<PartitionField>,
    /// Each live data file's partition tuple, by ID: a position delete file applies to the
    /// data files of its own partition, so a commit writes one per partition it deletes from.
    parts: HashMap<i64, Partition>,
    /// A REST catalog's session, held from commit to commit.
    session: Option<Connected>,
}

/// A mirror's commit to one table, staged: its files written (removed when it is dropped
/// unkept) and its updates ready, for the table's own commit or a commit of several tables at
/// once ([`commit_together`]).
pub(crate) struct StagedCommit {
    target: IcebergTarget,
    /// The table as the mirror read it, which the updates apply to.
    base: Loaded,
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
    cleanup: Cleanup,
    data_files: Vec<DataFile>,
    storage: pgarrow::io::StorageOptions,
    snapshot_id: i64,
    /// Seconds writing its files and manifests.
    write_s: f64,
    /// The table's REST session, carried while the commit is staged.
    session: Option<Connected>,
    /// The table after a commit of several tables landed.
    after: Option<Loaded>,
}

/// Commits several tables' staged commits in one operation of their catalog (a REST
/// catalog's multi-table transaction, one transaction of an SQL catalog's database): all land,
/// or none. `Err(why)` inside when they did not (another writer committed to one of them
/// first, the tables are in different catalogs, or the catalog cannot): each table then
/// commits on its own, its staged files removed ([`IcebergMirror::unstage`]).
///
/// # Errors
/// The catalog's; a commit whose outcome is unknown (its files then kept).
pub(crate) async fn commit_together(
    staged: &mut [&mut StagedCommit],
) -> Result<std::result::Result<(), Apart>> {
    let Some(first) = staged.first_mut() else {
        return Ok(Ok(()));
    };
    let (catalog, name) = (
        first.target.catalog.clone(),
        first.target.catalog_name.clone(),
    );
    if staged
        .iter()
        .any(|s| s.target.catalog != catalog || s.target.catalog_name != name)
    {
        return Ok(Err(Apart {
            why: "the tables are in different catalogs".into(),
            lasting: true,
        }));
    }
    let first = &mut staged[0];
    let mut session = match first.session.take() {
        Some(c) => c,
        None => Connected::connect(&catalog, &name, &first.target.storage).await?,
    };
    let answer = {
        let changes: Vec<TableChange<'_>> = staged
            .iter()
            .map(|s| TableChange {
                namespace: &s.target.namespace,
                table: &s.target.table,
                change: Change::Update {
                    base: &s.base,
                    requirements: s.requirements.clone(),
                    updates: s.updates.clone(),
                },
            })
            .collect();
        session.commit_all(&changes).await
    };
    // A REST catalog's session serves the next commit; an SQL catalog's connection is not
    // held between commits.
    match session {
        rest @ Connected::Rest(_) => staged[0].session = Some(rest),
        sql => sql.close().await,
    }
    match answer? {
        Ok(Committed::Done(tables)) => {
            for (s, table) in staged.iter_mut().zip(tables) {
                s.after = Some(table);
            }
            Ok(Ok(()))
        }
        Ok(Committed::Conflict(why)) => Ok(Err(Apart {
            why: format!("another writer committed to one of the tables first ({why})"),
            lasting: false,
        })),
        // It may have landed: every file it names stays.
        Ok(Committed::Unknown(why)) => {
            for s in staged.iter_mut() {
                s.cleanup.keep();
            }
            Err(super::catalog::unknown(&why))
        }
        Err(why) => Ok(Err(Apart { why, lasting: true })),
    }
}

/// A data file's partition tuple.
type Partition = Vec<Option<Typed>>;

/// Where a commit writes, and the schema it starts from.
struct Staging {
    storage: pgarrow::io::StorageOptions,
    data_dir: String,
    metadata_dir: String,
    current: super::spec::Schema,
}

impl Staging {
    fn new(
        meta: &TableMetadata,
        name: &str,
        storage: pgarrow::io::StorageOptions,
    ) -> Result<Staging> {
        let location = meta.location.trim_end_matches('/');
        let current = meta.current_schema().cloned().ok_or_else(|| {
            Error::from(ErrorKind::InvalidInput(format!(
                "Iceberg table {name}: its metadata has no current schema"
            )))
        })?;
        Ok(Staging {
            storage,
            data_dir: format!("{location}/data"),
            metadata_dir: format!("{location}/metadata"),
            current,
        })
    }
}

/// The table's current partition spec, with its source columns' types.
fn table_spec(meta: &TableMetadata) -> Vec<SpecField> {
    let types = schema::primitive_types(meta.current_schema().map_or(&[][..], |s| &s.fields));
    meta.default_spec()
        .1
        .iter()
        .map(|f| {
            let source_id = f.source_id;
            SpecField {
                source_id,
                field_id: f.field_id.unwrap_or(-1),
                name: f.name.clone(),
                transform: f.transform.clone(),
                source_type: i32::try_from(source_id)
                    .ok()
                    .and_then(|id| types.get(&id).cloned())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

impl IcebergMirror {
    /// The position the table's current snapshot records, and that snapshot's ID; `None`:
    /// no such table.
    ///
    /// # Errors
    /// The catalog's; metadata that does not read.
    pub(crate) async fn position(
        target: &IcebergTarget,
    ) -> Result<Option<(Option<MirrorPoint>, Option<i64>)>> {
        let catalog =
            Connected::connect(&target.catalog, &target.catalog_name, &target.storage).await?;
        let mut catalog = catalog;
        let loaded = catalog.load(&target.namespace, &target.table).await;
        catalog.close().await;
        let Some(table) = loaded? else {
            return Ok(None);
        };
        let meta = &table.metadata;
        let snap = meta.current_snapshot();
        let point = snap
            .and_then(|s| s.summary.get("pgarrow"))
            .and_then(Json::as_str)
            .and_then(MirrorPoint::from_provenance);
        Ok(Some((point, meta.current_snapshot_id())))
    }

    /// The current snapshot and its ancestors the table still has that record a mirror's
    /// position, oldest first, with that position; `None`: no such table.
    ///
    /// # Errors
    /// The catalog's; metadata that does not read.
    pub(crate) async fn history(target: &IcebergTarget) -> Result<Option<Vec<(i64, MirrorPoint)>>> {
        let mut catalog =
            Connected::connect(&target.catalog, &target.catalog_name, &target.storage).await?;
        let loaded = catalog.load(&target.namespace, &target.table).await;
        catalog.close().await;
        let Some(table) = loaded? else {
            return Ok(None);
        };
        let meta = &table.metadata;
        let mut out = Vec::new();
        let mut at = meta.current_snapshot();
        while let Some(snap) = at {
            if let Some(point) = snap
                .summary
                .get("pgarrow")
                .and_then(Json::as_str)
                .and_then(MirrorPoint::from_provenance)
            {
                out.push((snap.snapshot_id, point));
            }
            at = snap.parent_snapshot_id.and_then(|id| meta.snapshot(id));
        }
        out.reverse();
        Ok(Some(out))
    }

    /// The table `target` names, if it exists: as the mirror holds it (its index by `key`),
    /// and the position its last commit that carries one reached.
    ///
    /// # Errors
    /// A partition spec pgarrow does not write (a transform of a nested column); equality
    /// delete files; its files' and the catalog's errors.
    pub(crate) async fn open(
        target: &IcebergTarget,
        key: Vec<String>,
        whole: bool,
        memory: usize,
    ) -> Result<Option<(IcebergMirror, Live, Option<MirrorPoint>)>> {
        let name = format!("{}.{}", target.namespace, target.table);
        let mut catalog =
            Connected::connect(&target.catalog, &target.catalog_name, &target.storage).await?;
        let loaded = catalog.load(&target.namespace, &target.table).await;
        // The table's files are where its catalog says, with the storage it gives.
        let target = &IcebergTarget {
            storage: catalog.storage().clone(),
            ..target.clone()
        };
        let session = match catalog {
            rest @ Connected::Rest(_) => Some(rest),
            sql => {
                sql.close().await;
                None
            }
        };
        let Some(table) = loaded? else {
            return Ok(None);
        };
        let table = Box::new(table);
        let meta = &table.metadata;
        super::writable(meta)?;
        let partitions = spec_layout(meta, &name)?;
        let spec = table_spec(meta);
        let snap = meta.current_snapshot();
        let point = snap
            .and_then(|s| s.summary.get("pgarrow"))
            .and_then(Json::as_str)
            .and_then(MirrorPoint::from_provenance);
        let files = match snap.and_then(|s| s.manifest_list.as_deref()) {
            Some(list) => {
                let (list, storage) = (list.to_owned(), target.storage.clone());
                blocking(move || super::read::snapshot_files(&list, &storage))
                    .await
                    .map_err(|e| e.context(format!("Iceberg table {name}")))?
            }
            None => Vec::new(),
        };
        let mut paths = HashMap::new();
        let mut parts = HashMap::new();
        let mut live_files = Vec::with_capacity(files.len());
        for (id, f) in files.into_iter().enumerate() {
            let id = id as i64;
            if !spec.is_empty() {
                parts.insert(id, partition_of(&f.partition, &spec, &name)?);
            }
            let location = located(&f.path, &target.storage)?;
            let rows = match f.rows {
                Some(rows) => rows,
                None => {
                    let at = location.clone();
                    blocking(move || Ok(at.parquet_metadata()?.0.file_metadata().num_rows()))
                        .await? as u64
                }
            };
            paths.insert(id, f.path);
            live_files.push(LiveFile {
                constants: Vec::new(),
                id,
                location,
                rows,
                bytes: f.bytes,
                deleted: f.deleted.into(),
            });
        }
        let next_id = live_files.len() as i64;
        let key = match whole {
            true => meta.current_schema().map(|s| s.names()).unwrap_or_default(),
            false => key,
        };
        let place = Place {
            home: Some(located(&meta.location, &target.storage)?.join(INDEX_HOME)),
            memory,
        };
        let live = Live::load(key, whole, live_files, &place)
            .await
            .map_err(|e| e.context(format!("reading Iceberg table {name}")))?;
        Ok(Some((
            IcebergMirror {
                target: target.clone(),
                name,
                table,
                paths,
                next_id,
                spec,
                partitions,
                parts,
                session,
            },
            live,
            point,
        )))
    }

    /// The table's columns, in order.
    pub(crate) fn column_names(&self) -> Vec<String> {
        self.table
            .metadata
            .current_schema()
            .map(|s| s.names())
            .unwrap_or_default()
    }

    /// Renames columns, `(old, new)`, in a new schema of the table that keeps their field IDs,
    /// committed without a snapshot: data files map columns by ID, so every snapshot reads
    /// the same values under the new names.
    ///
    /// # Errors
    /// A column the table does not have; another writer moved the table ([`MOVED`]); the
    /// catalog's and the store's.
    pub(crate) async fn rename(&mut self, renames: &[(String, String)]) -> Result<()> {
        let name = self.name.clone();
        let meta = &self.table.metadata;
        let mut schema = meta.current_schema().cloned().ok_or_else(|| {
            Error::from(ErrorKind::InvalidInput(format!(
                "Iceberg table {name}: its metadata has no current schema"
            )))
        })?;
        for (old, new) in renames {
            let field = schema
                .fields
                .iter_mut()
                .find(|f| f.name == *old)
                .ok_or_else(|| {
                    Error::from(ErrorKind::Usage(format!(
                        "Iceberg table {name} has no column {old:?} to rename {new:?}"
                    )))
                })?;
            field.name = new.clone();
        }
        schema.schema_id = meta.next_schema_id();
        let updates = [
            TableUpdate::AddSchema {
                schema,
                last_column_id: meta.last_column_id,
            },
            TableUpdate::SetCurrentSchema { schema_id: -1 },
        ];
        // No file is written: nothing to keep.
        self.commit_updates(&updates, "renaming columns of", &mut Cleanup::new())
            .await
    }

    /// Commits `updates` onto the table the mirror read, if no other writer moved it (else
    /// [`MOVED`]); `what` says what the commit did, for its errors.
    /// `cleanup`: the commit's files, kept when its outcome is unknown.
    async fn commit_updates(
        &mut self,
        updates: &[TableUpdate],
        what: &str,
        cleanup: &mut Cleanup,
    ) -> Result<()> {
        let name = &self.name;
        let mut catalog = match self.session.take() {
            Some(c) => c,
            None => {
                Connected::connect(
                    &self.target.catalog,
                    &self.target.catalog_name,
                    &self.target.storage,
                )
                .await?
            }
        };
        let required = requirements(&self.table.metadata);
        let committed = catalog
            .commit(
                &self.target.namespace,
                &self.target.table,
                &self.table,
                &required,
                updates,
            )
            .await;
        // A REST catalog's session (its connections, its token) serves the next commit; an
        // SQL catalog's connection is not held between commits.
        match catalog {
            rest @ Connected::Rest(_) => self.session = Some(rest),
            sql => sql.close().await,
        }
        let committed = committed.map_err(|e| e.context(format!("{what} Iceberg table {name}")))?;
        if matches!(committed, super::catalog::Committed::Unknown(_)) {
            cleanup.keep();
        }
        self.table = committed
            .or_conflict(&format!("another writer committed to Iceberg table {name}"))
            .map_err(|e| e.context(format!("{what} Iceberg table {name}")))?;
        Ok(())
    }

    /// Commits `plan` (its rows as data files, its deletes as one position delete file) with
    /// `point` as the table's next snapshot, then brings `live` up to date.
    ///
    /// # Errors
    /// Another writer moved the table ([`MOVED`]: the caller reads it again and folds anew);
    /// a column the table cannot take; files that cannot be written; the catalog's.
    pub(crate) async fn commit(
        &mut self,
        live: &mut Live,
        plan: &Plan,
        point: Option<&MirrorPoint>,
    ) -> Result<LakeCommit> {
        let mut staged = self.stage(plan, point).await?;
        self.session = staged.session.take();
        self.commit_updates(&staged.updates, "committing to", &mut staged.cleanup)
            .await?;
        self.finish(live, plan, staged).await
    }

    /// After `staged` landed (alone, or with other tables: then `after` is the table after
    /// it): its files kept, and `live` brought up to date.
    pub(crate) async fn finish(
        &mut self,
        live: &mut Live,
        plan: &Plan,
        staged: StagedCommit,
    ) -> Result<LakeCommit> {
        let StagedCommit {
            mut cleanup,
            data_files,
            storage,
            snapshot_id,
            write_s,
            session,
            after,
            ..
        } = staged;
        if let Some(after) = after {
            *self.table = after;
        }
        if session.is_some() {
            self.session = session;
        }
        cleanup.keep();
        let laps = Laps::new(&self.name);
        let files = data_files.len();
        self.committed(live, plan, data_files, &storage).await?;
        let index_s = laps.lap("index updated");
        Ok(LakeCommit {
            snapshot: snapshot_id,
            files,
            write_s,
            index_s,
        })
    }

    /// Takes back a staged commit that did not land: its files are removed, its session kept.
    pub(crate) fn unstage(&mut self, staged: StagedCommit) {
        if staged.session.is_some() {
            self.session = staged.session;
        }
    }

    /// Writes `plan`'s files (its rows as data files, its deletes as position delete files)
    /// and the manifests and manifest list of the table's next snapshot, recording `point`:
    /// the commit, ready to send, alone or with other tables'.
    pub(crate) async fn stage(
        &mut self,
        plan: &Plan,
        point: Option<&MirrorPoint>,
    ) -> Result<StagedCommit> {
        let laps = Laps::new(&self.name);
        // Vended credentials about to expire: new ones, from the table loaded again.
        if let Some(Connected::Rest(rest)) = &mut self.session
            && rest.storage_due()
        {
            rest.load(&self.target.namespace, &self.target.table)
                .await
                .map_err(|e| {
                    e.context(format!(
                        "renewing the storage credentials of Iceberg table {}",
                        self.name
                    ))
                })?;
            self.target.storage = rest.storage().clone();
        }
        let meta = self.table.metadata.clone();
        let mut cleanup = Cleanup::new();
        let at = Staging::new(&meta, &self.name, self.target.storage.clone())?;
        let (table_schema, evolved, data_files) = match plan.new_rows() {
            Some(rows) => self.data_files(rows, &at, &mut cleanup).await?,
            None => (at.current.clone(), None, Vec::new()),
        };
        let (delete_files, deleted_rows) = self.delete_files(plan, &at, &mut cleanup).await?;
        laps.lap("files written");
        let snapshot_id = new_snapshot_id();
        let sequence = meta.last_sequence_number.unwrap_or(0) + 1;
        let spec_id = meta.default_spec().0;
        let mut entries = Vec::new();
        for files in [&data_files, &delete_files] {
            if files.is_empty() {
                continue;
            }
            let path = format!("{}/{}-m0.avro", at.metadata_dir, new_uuid());
            let bytes =
                manifest::write_manifest(files, &self.spec, spec_id, &table_schema, snapshot_id)?;
            let length = bytes.len() as u64;
            cleanup.write(located(&path, &at.storage)?, bytes).await?;
            let entry =
                manifest::list_entry(&path, length, &self.spec, spec_id, 0, snapshot_id, files);
            entries.push(set_sequence(entry, sequence));
        }
        let previous: Option<Snapshot> = meta.current_snapshot().cloned();
        let merge = Merge {
            storage: &at.storage,
            schema: &table_schema,
            spec: &self.spec,
            spec_id,
            snapshot_id,
            sequence,
            dir: &at.metadata_dir,
        };
        let kept_bytes = match previous.as_ref().and_then(|p| p.manifest_list.as_deref()) {
            Some(list) if !plan.truncate => {
                self.kept_manifests(plan, list, &merge, &mut entries, &mut cleanup)
                    .await?
            }
            _ => None,
        };
        let parent = meta.current_snapshot_id();
        let list_path = format!(
            "{}/snap-{snapshot_id}-1-{}.avro",
            at.metadata_dir,
            new_uuid()
        );
        let list_bytes = manifest::write_manifest_list(&entries, snapshot_id, parent, sequence)?;
        cleanup
            .write(located(&list_path, &at.storage)?, list_bytes)
            .await?;
        let summary = match (plan.rewrite, plan.ended.is_empty() || plan.truncate) {
            (true, _) => replace_summary(
                "replace",
                point,
                json!({"compacted": true}),
                &data_files,
                &entries,
                kept_bytes.unwrap_or(0),
            ),
            // Copy-on-write: rows deleted by ending their files and adding what they keep.
            (false, false) => replace_summary(
                "overwrite",
                point,
                json!({"changes": plan.changes, "truncated": false}),
                &data_files,
                &entries,
                kept_bytes.unwrap_or(0),
            ),
            (false, true) => summary(
                previous.as_ref(),
                plan,
                point,
                &data_files,
                delete_files.len(),
                deleted_rows,
            ),
        };
        let snap = super::new_snapshot(
            snapshot_id,
            sequence,
            &list_path,
            summary.as_object().cloned().unwrap_or_default(),
            table_schema.schema_id,
            parent,
        );
        let mut updates = Vec::new();
        if let Some(last_column_id) = evolved {
            updates.push(TableUpdate::AddSchema {
                schema: table_schema.clone(),
                last_column_id,
            });
            updates.push(TableUpdate::SetCurrentSchema { schema_id: -1 });
        }
        updates.extend(snapshot_updates(snap));
        let write_s = laps.lap("staged");
        Ok(StagedCommit {
            target: self.target.clone(),
            base: (*self.table).clone(),
            requirements: requirements(&self.table.metadata),
            updates,
            cleanup,
            data_files,
            storage: at.storage,
            snapshot_id,
            write_s,
            session: self.session.take(),
            after: None,
        })
    }

    /// `rows` written as data files (tracked by `cleanup`) and described, with the table's
    /// schema after them: the source's columns, keeping the IDs of those the table has (and
    /// the new last column ID when it changed).
    async fn data_files(
        &self,
        rows: NewRows,
        at: &Staging,
        cleanup: &mut Cleanup,
    ) -> Result<(super::spec::Schema, Option<i64>, Vec<DataFile>)> {
        let (name, current) = (&self.name, &at.current);
        let last_column_id = self.table.metadata.last_column_id;
        let ids = schema::known_ids(&current.fields, last_column_id);
        let ours = schema::iceberg_schema(&rows.schema(), &ids)
            .map_err(|e| e.context(format!("Iceberg table {name}")))?;
        let (table_schema, evolved) = match schema::evolve(current, &ours, true) {
            Err(why) => {
                return Err(ErrorKind::Usage(format!(
                    "Iceberg table {name}: {why}; nothing was committed"
                ))
                .into());
            }
            Ok(None) => (current.clone(), None),
            Ok(Some(fields)) => (
                super::spec::Schema::new(self.table.metadata.next_schema_id(), fields),
                Some(last_column_id.max(i64::from(ours.last_id))),
            ),
        };
        let written = self.write_rows(rows, &at.data_dir, &ids).await?;
        for f in &written.files {
            cleanup.track(located(
                &format!("{}/{}", at.data_dir, f.path),
                &at.storage,
            )?);
        }
        let types = schema::primitive_types(&table_schema.fields);
        let (dir, s, spec) = (at.data_dir.clone(), at.storage.clone(), self.spec.clone());
        let described =
            blocking(move || super::describe_files(&dir, &s, &written, &spec, &types)).await?;
        Ok((table_schema, evolved, described))
    }

    /// A position delete file of every row `plan` deletes, one per partition it deletes from
    /// (tracked by `cleanup`), and the rows they delete.
    async fn delete_files(
        &self,
        plan: &Plan,
        at: &Staging,
        cleanup: &mut Cleanup,
    ) -> Result<(Vec<DataFile>, u64)> {
        let mut delete_files = Vec::new();
        let mut deleted_rows = 0u64;
        if plan.truncate || plan.rewrite || plan.deletes.is_empty() {
            return Ok((delete_files, deleted_rows));
        }
        // Each partition's (data file path, positions), in the order first met.
        type ByFile = Vec<(String, Positions)>;
        let mut by_partition: Vec<(Partition, ByFile)> = Vec::new();
        for (id, positions) in &plan.deletes {
            let path = self.paths.get(id).ok_or_else(|| {
                Error::from(ErrorKind::Conflict(format!(
                    "{MOVED}: file {id} is not the table's"
                )))
            })?;
            let p = positions.clone();
            deleted_rows += p.len();
            let partition = self.parts.get(id).cloned().unwrap_or_default();
            match by_partition.iter_mut().find(|(k, _)| *k == partition) {
                Some((_, group)) => group.push((path.clone(), p)),
                None => by_partition.push((partition, vec![(path.clone(), p)])),
            }
        }
        for (partition, deletes) in by_partition {
            let rows: u64 = deletes.iter().map(|(_, p)| p.len()).sum();
            let path = format!("{}/{}-deletes.parquet", at.data_dir, new_uuid());
            let located = located(&path, &at.storage)?;
            cleanup.track(located.clone());
            let (bytes, _) = blocking(move || crate::deletes::write(&located, &deletes)).await?;
            delete_files.push(DataFile::position_deletes(path, rows, bytes, partition));
        }
        Ok((delete_files, deleted_rows))
    }

    /// The manifests of the snapshot before (its manifest `list`), onto `entries`: as they
    /// are, or merged by `merge` once there are many (so that readers open few) and always
    /// when `plan` ends files, marking them deleted: compaction's (which ends every delete
    /// file too, as it rewrites every data file with deletes) and copy-on-write's (whose
    /// older delete files stay for the files they name). The bytes of the files a merge kept.
    async fn kept_manifests(
        &self,
        plan: &Plan,
        list: &str,
        merge: &Merge<'_>,
        entries: &mut Vec<crate::avro::Value>,
        cleanup: &mut Cleanup,
    ) -> Result<Option<u64>> {
        let at = located(list, merge.storage)?;
        let bytes = blocking(move || Ok(at.read()?)).await?;
        let before = manifest::read_manifest_list(&bytes)?;
        let ending: Option<Ending> = (!plan.ended.is_empty()).then(|| Ending {
            files: plan
                .ended
                .iter()
                .filter_map(|id| self.paths.get(id).cloned())
                .collect(),
            deletes: plan.rewrite,
        });
        if let Some(ending) = &ending
            && ending.files.len() != plan.ended.len()
        {
            return Err(ErrorKind::Conflict(format!(
                "{MOVED}: a file the commit ends is not the table's"
            ))
            .into());
        }
        let merged = match before.len() >= MERGE_AT || ending.is_some() {
            true => merge.merge(&before, ending.as_ref(), cleanup).await?,
            false => None,
        };
        match merged {
            Some((merged, bytes)) => {
                entries.extend(merged);
                Ok(Some(bytes))
            }
            None if ending.is_some() => Err(ErrorKind::InvalidInput(format!(
                "Iceberg table {}: its manifests are of several partition specs, whose files \
                 pgarrow does not rewrite (compaction, copy-on-write deletes)",
                self.name
            ))
            .into()),
            None => {
                entries.extend(before);
                Ok(None)
            }
        }
    }

    /// The index as the snapshot of `plan` left it, its new `data_files` numbered on.
    async fn committed(
        &mut self,
        live: &mut Live,
        plan: &Plan,
        data_files: Vec<DataFile>,
        storage: &pgarrow::io::StorageOptions,
    ) -> Result<()> {
        if plan.truncate {
            self.paths.clear();
            self.parts.clear();
        }
        live.committed(plan);
        self.paths.retain(|id, _| live.files.contains_key(id));
        self.parts.retain(|id, _| live.files.contains_key(id));
        let mut written = Vec::with_capacity(data_files.len());
        for f in data_files {
            let id = self.next_id;
            self.next_id += 1;
            written.push(LiveFile {
                constants: Vec::new(),
                id,
                location: located(&f.path, storage)?,
                rows: f.rows,
                bytes: f.bytes,
                deleted: Default::default(),
            });
            if !self.spec.is_empty() {
                self.parts.insert(id, f.partition.clone());
            }
            self.paths.insert(id, f.path);
        }
        // Rows split by partition are not in the files in the order written.
        let in_order = self.target.options.sorted_by.is_empty() && self.spec.is_empty();
        live.add_written(written, plan.rows_alone(), in_order).await
    }

    /// Writes `rows` as data files under the table's `data` directory, with its field IDs.
    async fn write_rows(
        &self,
        rows: NewRows,
        data_dir: &str,
        ids: &pgarrow::io::FieldIds,
    ) -> Result<Manifest> {
        let mut layout = Layout::default()
            .with_max_file_rows(self.target.layout.max_file_rows)
            .with_max_file_bytes(self.target.layout.max_file_bytes)
            .with_partition_columns_kept(true);
        layout.partitions = self.partitions.clone();
        let options = self
            .target
            .options
            .clone()
            .with_field_ids(true)
            .with_known_field_ids(ids.clone())
            .with_arrow_extensions(false)
            .with_forms(crate::common::value_forms(crate::common::Format::Iceberg));
        let dir = located(data_dir, &self.target.storage)?;
        let written = crate::live::write_rows(dir, options, layout, rows, new_uuid()).await?;
        let files = written
            .into_iter()
            .map(|w| {
                // Its partition values, which the entry or `add` records.
                let mut f = ManifestFile::new(w.path, w.rows, w.bytes);
                f.values = w.values;
                f
            })
            .collect();
        Ok(Manifest::new(Format::Parquet, None, None, None, files))
    }
}

/// A snapshot's manifests are merged into one data and one delete manifest once it has this
/// many (Iceberg's own writers merge at 100 by default; a mirror adds two a commit).
const MERGE_AT: usize = 64;

/// The files a commit ends as it merges the manifests: data files by path, and every delete
/// file when `deletes` (compaction's, which rewrites every data file with deletes).
#[derive(Clone)]
struct Ending {
    files: HashSet<String>,
    deletes: bool,
}

/// Where a commit merges its snapshot's manifests.
struct Merge<'a> {
    storage: &'a pgarrow::io::StorageOptions,
    schema: &'a super::spec::Schema,
    spec: &'a [SpecField],
    spec_id: i64,
    snapshot_id: i64,
    sequence: i64,
    dir: &'a str,
}

impl Merge<'_> {
    /// The entries of the manifest list `before` merged: every live file of its manifests in
    /// one manifest of data files and one of delete files, each entry `EXISTING` with the
    /// sequence numbers and snapshot it had. `None` (nothing merged) when a manifest is of
    /// another partition spec.
    ///
    /// With `ending` (a rewrite), the data files it names and every delete file are entries
    /// `DELETED` by this snapshot instead.
    async fn merge(
        &self,
        before: &[crate::avro::Value],
        ending: Option<&Ending>,
        cleanup: &mut Cleanup,
    ) -> Result<Option<(Vec<crate::avro::Value>, u64)>> {
        use crate::avro::Value;
        if before
            .iter()
            .any(|m| m.get("partition_spec_id").as_i64() != Some(self.spec_id))
        {
            return Ok(None);
        }
        let (list, storage) = (before.to_vec(), self.storage.clone());
        let ending = ending.cloned();
        let this_snapshot = self.snapshot_id;
        let groups = blocking(move || {
            let mut groups: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
            for m in &list {
                let path = m.get("manifest_path").as_str().unwrap_or_default();
                let inherited = m.get("sequence_number").as_i64().unwrap_or(0);
                let added_by = m.get("added_snapshot_id").as_i64().unwrap_or(0);
                let deletes = m.get("content").as_i64().unwrap_or(0) != 0;
                let manifest = crate::avro::read_file(&located(path, &storage)?.read()?)?;
                for entry in manifest.records {
                    // 2: deleted by the manifest's snapshot, gone from this one.
                    if entry.get("status").as_i64() == Some(2) {
                        continue;
                    }
                    let sequence = entry.get("sequence_number").as_i64().unwrap_or(inherited);
                    let file_sequence = entry
                        .get("file_sequence_number")
                        .as_i64()
                        .unwrap_or(inherited);
                    let snapshot = entry.get("snapshot_id").as_i64().unwrap_or(added_by);
                    let ended = ending.as_ref().is_some_and(|ending| {
                        (deletes && ending.deletes)
                            || ending.files.contains(
                                entry
                                    .get("data_file")
                                    .get("file_path")
                                    .as_str()
                                    .unwrap_or_default(),
                            )
                    });
                    let (status, snapshot) = match ended {
                        true => (2, this_snapshot),
                        false => (0, snapshot),
                    };
                    let Value::Record(fields) = entry else {
                        continue;
                    };
                    let fields = fields
                        .into_iter()
                        .map(|(k, v)| match k.as_str() {
                            "status" => (k, Value::Int(status)),
                            "snapshot_id" => (k, Value::Long(snapshot)),
                            "sequence_number" => (k, Value::Long(sequence)),
                            "file_sequence_number" => (k, Value::Long(file_sequence)),
                            _ => (k, v),
                        })
                        .collect();
                    groups[usize::from(deletes)].push(Value::Record(fields));
                }
            }
            Ok(groups)
        })
        .await?;
        let mut out = Vec::new();
        // The bytes of the data files left live.
        let bytes: i64 = groups[0]
            .iter()
            .filter(|e| e.get("status").as_i64() == Some(0))
            .filter_map(|e| e.get("data_file").get("file_size_in_bytes").as_i64())
            .sum();
        for (k, entries) in groups.iter().enumerate() {
            if entries.is_empty() {
                continue;
            }
            let deletes = k == 1;
            let bytes =
                manifest::write_entries(entries, self.spec, self.spec_id, self.schema, deletes)?;
            let path = format!("{}/{}-m-merged.avro", self.dir, new_uuid());
            let length = bytes.len() as u64;
            cleanup.write(located(&path, self.storage)?, bytes).await?;
            let count = |status: i64| -> (usize, i64) {
                let of: Vec<_> = entries
                    .iter()
                    .filter(|e| e.get("status").as_i64() == Some(status))
                    .collect();
                let rows = of
                    .iter()
                    .filter_map(|e| e.get("data_file").get("record_count").as_i64())
                    .sum();
                (of.len(), rows)
            };
            let min_sequence = entries
                .iter()
                .filter_map(|e| e.get("sequence_number").as_i64())
                .min()
                .unwrap_or(self.sequence);
            out.push(manifest::existing_list_entry(
                &path,
                length,
                self.spec_id,
                deletes,
                self.sequence,
                min_sequence,
                self.snapshot_id,
                count(0),
                count(2),
            ));
        }
        Ok(Some((out, u64::try_from(bytes).unwrap_or(0))))
    }
}

/// A data file's partition tuple as its manifest entry holds it, typed by `spec`.
fn partition_of(record: &crate::avro::Value, spec: &[SpecField], name: &str) -> Result<Partition> {
    spec.iter()
        .map(|f| {
            Typed::from_avro(record.get(&f.name), f.result_type()).map_err(|e| {
                Error::from(ErrorKind::InvalidInput(format!(
                    "Iceberg table {name}: partition field {:?}: {e}",
                    f.name
                )))
            })
        })
        .collect()
}

/// The summary of a mirror's snapshot: what it added and deleted, the table's totals, and the
/// position it reaches (in pgarrow's provenance, where the next run finds it).
fn summary(
    previous: Option<&Snapshot>,
    plan: &Plan,
    point: Option<&MirrorPoint>,
    data_files: &[DataFile],
    delete_files: usize,
    deleted_rows: u64,
) -> Json {
    let added_rows: u64 = data_files.iter().map(|f| f.rows).sum();
    let added_bytes: u64 = data_files.iter().map(|f| f.bytes).sum();
    let total = |k: &str| -> u64 {
        match (plan.truncate, previous) {
            (false, Some(p)) => p
                .summary
                .get(k)
                .and_then(Json::as_str)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            _ => 0,
        }
    };
    let operation = match (plan.truncate, data_files.is_empty(), delete_files == 0) {
        (true, ..) => "overwrite",
        (false, false, true) => "append",
        (false, true, false) => "delete",
        _ => "overwrite",
    };
    let s = |v: u64| Json::String(v.to_string());
    json!({
        "operation": operation,
        "added-data-files": s(data_files.len() as u64),
        "added-records": s(added_rows),
        "added-files-size": s(added_bytes),
        "added-delete-files": s(delete_files as u64),
        "added-position-deletes": s(deleted_rows),
        "total-data-files": s(total("total-data-files") + data_files.len() as u64),
        "total-records": s(total("total-records") + added_rows),
        "total-files-size": s(total("total-files-size") + added_bytes),
        "total-delete-files": s(total("total-delete-files") + delete_files as u64),
        "total-position-deletes": s(total("total-position-deletes") + deleted_rows),
        "total-equality-deletes": s(total("total-equality-deletes")),
        "pgarrow": provenance(point, json!({
            "changes": plan.changes,
            "truncated": plan.truncate,
        })),
    })
}

/// pgarrow's provenance of a snapshot: `more`, with the mirror's position when there is one
/// (where the next run finds it).
fn provenance(point: Option<&MirrorPoint>, mut more: Json) -> Json {
    more["pgarrow"] = env!("CARGO_PKG_VERSION").into();
    if let Some(point) = point {
        point.record(&mut more);
    }
    Json::String(more.to_string())
}

/// The summary of a snapshot that ended files as it added `data_files` (compaction's
/// `replace`: the same rows; copy-on-write's `overwrite`), the files the manifest list
/// `entries` keeps being `kept_bytes`: the table's totals counted from the manifest list, the
/// position carried on, `provenance_more` in pgarrow's provenance.
fn replace_summary(
    operation: &str,
    point: Option<&MirrorPoint>,
    provenance_more: Json,
    data_files: &[DataFile],
    entries: &[crate::avro::Value],
    kept_bytes: u64,
) -> Json {
    let sum = |content: i64, what: &str| -> i64 {
        entries
            .iter()
            .filter(|e| e.get("content").as_i64().unwrap_or(0) == content)
            .map(|e| {
                ["added", "existing"]
                    .iter()
                    .filter_map(|k| e.get(&format!("{k}_{what}_count")).as_i64())
                    .sum::<i64>()
            })
            .sum()
    };
    let deleted = |content: i64, what: &str| -> i64 {
        entries
            .iter()
            .filter(|e| e.get("content").as_i64().unwrap_or(0) == content)
            .filter_map(|e| e.get(&format!("deleted_{what}_count")).as_i64())
            .sum()
    };
    let added_rows: u64 = data_files.iter().map(|f| f.rows).sum();
    let added_bytes: u64 = data_files.iter().map(|f| f.bytes).sum();
    let s = |v: i64| Json::String(v.to_string());
    json!({
        "operation": operation,
        "added-data-files": s(data_files.len() as i64),
        "added-records": s(added_rows as i64),
        "added-files-size": s(added_bytes as i64),
        "deleted-data-files": s(deleted(0, "files")),
        "deleted-records": s(deleted(0, "rows")),
        "removed-delete-files": s(deleted(1, "files")),
        "removed-position-deletes": s(deleted(1, "rows")),
        "total-data-files": s(sum(0, "files")),
        "total-records": s(sum(0, "rows")),
        "total-files-size": s((kept_bytes + added_bytes) as i64),
        "total-delete-files": s(sum(1, "files")),
        "total-position-deletes": s(sum(1, "rows")),
        "total-equality-deletes": s(0),
        "pgarrow": provenance(point, provenance_more),
    })
}

impl crate::table::LakeTable for IcebergMirror {
    fn column_names(&self) -> Vec<String> {
        IcebergMirror::column_names(self)
    }

    fn rename<'a>(&'a mut self, renames: &'a [(String, String)]) -> crate::table::Pending<'a, ()> {
        Box::pin(IcebergMirror::rename(self, renames))
    }

    fn commit<'a>(
        &'a mut self,
        live: &'a mut Live,
        plan: &'a Plan,
        point: Option<&'a MirrorPoint>,
    ) -> crate::table::Pending<'a, LakeCommit> {
        Box::pin(IcebergMirror::commit(self, live, plan, point))
    }

    fn stage<'a>(
        &'a mut self,
        _live: &'a Live,
        plan: &'a Plan,
        point: Option<&'a MirrorPoint>,
    ) -> crate::table::Pending<'a, Option<Staged>> {
        Box::pin(async move {
            let staged = IcebergMirror::stage(self, plan, point).await?;
            Ok(Some(Staged::Iceberg(Box::new(staged))))
        })
    }

    fn finish<'a>(
        &'a mut self,
        live: &'a mut Live,
        plan: &'a Plan,
        staged: Staged,
    ) -> crate::table::Pending<'a, LakeCommit> {
        Box::pin(async move {
            match staged {
                Staged::Iceberg(staged) => IcebergMirror::finish(self, live, plan, *staged).await,
                Staged::DuckLake(_) => Err(pgarrow::ErrorKind::Internal(
                    "a DuckLake commit staged for an Iceberg table".into(),
                )
                .into()),
            }
        })
    }

    fn unstage(&mut self, staged: Staged) {
        if let Staged::Iceberg(staged) = staged {
            IcebergMirror::unstage(self, *staged);
        }
    }

    fn stages(&self) -> bool {
        true
    }
}
