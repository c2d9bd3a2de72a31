//! A DuckLake table kept by a mirror: read as the mirror holds it (its live files and their
//! delete files, the replication slot and WAL position its last commit reached), and one
//! commit per fold of changes: new data files, a new delete file for each data file that
//! loses rows (listing all its deleted positions, as DuckLake keeps one live delete file per
//! data file), a truncate as every row ended, and the position reached, in one catalog
//! transaction.

use std::collections::HashMap;

use pgarrow::io::{FieldIds, Format, Layout, Location, Manifest, ManifestFile};
use pgarrow::{Error, ErrorKind, Result};

use super::catalog::Catalog;
use super::columns::{known_ids, lake_columns_from};
use super::commit::{Commit, DeleteChange, MOVED, Seen};
use super::{DuckLakeTarget, Table, describe_files, find_table, last_column_id, partitions};
use crate::cleanup::Cleanup;
use crate::common::{IfExists, new_uuid};
use crate::live::{
    INDEX_HOME, LakeCommit, Laps, Live, LiveFile, MirrorPoint, NewRows, Place, Plan, Positions,
};
use crate::table::{Apart, Staged};

/// A table's commit staged: its files written, its catalog change ready to run alone or in
/// one catalog transaction with other tables' ([`commit_together`]).
pub(crate) struct StagedCommit {
    catalog: pgarrow::protocol::Config,
    schema: String,
    table: String,
    /// `schema.table`.
    name: String,
    if_exists: IfExists,
    expected: i64,
    columns: Vec<super::columns::LakeColumn>,
    keys: Vec<partitions::Key>,
    described: Vec<super::DataFile>,
    manifest: Manifest,
    deletes: Vec<DeleteChange>,
    point: Option<MirrorPoint>,
    since: Seen,
    rewrite: bool,
    dropped: Vec<i64>,
    dir: Location,
    /// The files written, removed unless the commit lands.
    cleanup: Cleanup,
    write_s: f64,
    /// Once landed: its snapshot and the IDs its data files got.
    landed: Option<(i64, Vec<i64>)>,
}

impl StagedCommit {
    /// The commit to run, alone or with other tables' in one snapshot.
    fn commit(&self) -> Commit<'_> {
        Commit {
            schema: &self.schema,
            table: &self.table,
            if_exists: self.if_exists,
            expected: Some(self.expected),
            columns: &self.columns,
            keys: &self.keys,
            repartition: false,
            files: &self.described,
            manifest: &self.manifest,
            run: None,
            previous: None,
            deletes: &self.deletes,
            point: self.point.as_ref(),
            since: Some(&self.since),
            rewrite: self.rewrite,
            dropped: &self.dropped,
        }
    }
}

/// Commits several tables' staged commits in one catalog transaction, one snapshot of the
/// lake holding all their changes: all land (each table's [`DuckLakeMirror::finish`]
/// follows), or none. `Err(why)` inside when they did not: the tables are in different
/// catalogs, or one moved; each table then commits on its own, its staged files removed.
///
/// # Errors
/// The catalog's; a `COMMIT` whose outcome is unknown (every staged file then kept).
pub(crate) async fn commit_together(
    staged: &mut [&mut StagedCommit],
) -> Result<std::result::Result<(), Apart>> {
    let Some(first) = staged.first() else {
        return Ok(Ok(()));
    };
    if staged.iter().any(|s| s.catalog != first.catalog) {
        return Ok(Err(Apart {
            why: "the tables are in different DuckLake catalogs".into(),
            lasting: true,
        }));
    }
    let mut catalog = Catalog::connect(&first.catalog).await?;
    let tried = {
        let commits: Vec<Commit<'_>> = staged.iter().map(|s| s.commit()).collect();
        super::commit::run_together(&commits, &mut catalog).await
    };
    catalog.close().await;
    match tried {
        Ok(Ok(done)) => {
            for (s, d) in staged.iter_mut().zip(done) {
                s.landed = Some((d.snapshot, d.file_ids));
            }
            Ok(Ok(()))
        }
        Ok(Err(e)) => Ok(Err(Apart {
            why: e.to_string(),
            lasting: false,
        })),
        Err(e) => {
            // Landed or not, no file it names may go.
            for s in staged.iter_mut() {
                s.cleanup.keep();
            }
            Err(e.context(format!(
                "committing {} DuckLake tables together (whether it landed is unknown)",
                staged.len()
            )))
        }
    }
}

/// A DuckLake table a mirror commits to.
pub(crate) struct DuckLakeMirror {
    target: DuckLakeTarget,
    table: Table,
    /// Columns dropped at the source: ended by the next commit that writes rows.
    dropped: Vec<i64>,
    /// Each data file's live delete file.
    delete_files: HashMap<i64, i64>,
    /// The table's last commit with a position, as the mirror read it: a commit finding
    /// another there reads the table again.
    seen: Seen,
}

/// The table `target` names, when its catalog is a DuckLake one and has it.
async fn catalog_table(catalog: &mut Catalog, target: &DuckLakeTarget) -> Result<Option<Table>> {
    let exists = catalog
        .query("SELECT to_regclass('ducklake_metadata')::text", &[])
        .await?;
    if exists.first().and_then(|r| r[0].as_ref()).is_none() {
        return Ok(None);
    }
    find_table(catalog, &target.schema, &target.table).await
}

impl DuckLakeMirror {
    /// The table `target` names, if it exists: as the mirror holds it (its index by `key`),
    /// and the position its last commit that carries one reached.
    ///
    /// # Errors
    /// Rows DuckDB inlined into the catalog (a mirror deletes by file position); the catalog's
    /// and the files' errors.
    pub(crate) async fn open(
        target: &DuckLakeTarget,
        key: Vec<String>,
        whole: bool,
        memory: usize,
    ) -> Result<Option<(DuckLakeMirror, Live, Option<MirrorPoint>)>> {
        let name = format!("{}.{}", target.schema, target.table);
        let mut catalog = Catalog::connect(&target.catalog).await?;
        let opened = Self::read(&mut catalog, target, &name).await;
        catalog.close().await;
        let Some((table, files, delete_files, seen)) = opened? else {
            return Ok(None);
        };
        let point = seen.point.clone();
        let key = match whole {
            true => top_columns(&table).map(str::to_owned).collect(),
            false => key,
        };
        let place = Place {
            home: Some(Location::parse(&table.dir, &target.storage)?.join(INDEX_HOME)),
            memory,
        };
        let live = Live::load(key, whole, files, &place)
            .await
            .map_err(|e| e.context(format!("reading DuckLake table {name}")))?;
        Ok(Some((
            DuckLakeMirror {
                target: target.clone(),
                table,
                dropped: Vec::new(),
                delete_files,
                seen,
            },
            live,
            point,
        )))
    }

    /// The position the table's newest mirror commit recorded, and the catalog's snapshot
    /// then; `None`: no such table.
    ///
    /// # Errors
    /// The catalog's.
    pub(crate) async fn position(
        target: &DuckLakeTarget,
    ) -> Result<Option<(Option<MirrorPoint>, Option<i64>)>> {
        let mut catalog = Catalog::connect(&target.catalog).await?;
        let read = async {
            let Some(table) = catalog_table(&mut catalog, target).await? else {
                return Ok(None);
            };
            let seen = super::commit::last_point(&mut catalog, table.id).await?;
            Ok(Some((seen.point, seen.snapshot)))
        }
        .await;
        catalog.close().await;
        read
    }

    /// Each snapshot that committed a mirror's changes (or its export) to the table `target`
    /// names, oldest first, with the position it recorded; `None` when there is no such table.
    pub(crate) async fn history(
        target: &DuckLakeTarget,
    ) -> Result<Option<Vec<(i64, MirrorPoint)>>> {
        let mut catalog = Catalog::connect(&target.catalog).await?;
        let read = async {
            let Some(table) = catalog_table(&mut catalog, target).await? else {
                return Ok(None);
            };
            super::commit::points(&mut catalog, table.id)
                .await
                .map(Some)
        }
        .await;
        catalog.close().await;
        read
    }

    #[allow(clippy::type_complexity)]
    async fn read(
        catalog: &mut Catalog,
        target: &DuckLakeTarget,
        name: &str,
    ) -> Result<Option<(Table, Vec<LiveFile>, HashMap<i64, i64>, Seen)>> {
        let exists = catalog
            .query("SELECT to_regclass('ducklake_metadata')::text", &[])
            .await?;
        if exists.first().and_then(|r| r[0].as_ref()).is_none() {
            return Ok(None);
        }
        catalog
            .batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let read = async {
            let none: Result<Option<_>> = Ok(None);
            let Some(table) = find_table(catalog, &target.schema, &target.table).await? else {
                return none;
            };
            let t = table.id.to_string();
            let inlined = catalog
                .query(
                    "SELECT table_name FROM ducklake_inlined_data_tables WHERE table_id = $1::bigint",
                    &[Some(&t)],
                )
                .await?;
            for r in inlined {
                let Some(inlined) = &r[0] else { continue };
                let live = catalog
                    .query(
                        &format!(
                            "SELECT count(*)::text FROM {} WHERE end_snapshot IS NULL",
                            super::catalog::quote_ident(inlined)
                        ),
                        &[],
                    )
                    .await?;
                if live.first().and_then(|r| r[0].as_deref()) != Some("0") {
                    return Err(ErrorKind::InvalidInput(format!(
                        "DuckLake table {name} holds rows DuckDB inlined into the catalog, \
                         which a mirror cannot delete by position: flush them into files \
                         first (CALL ducklake_flush_inlined_data('LAKE'))"
                    ))
                    .into());
                }
            }
            let files = catalog
                .query(
                    "SELECT data_file_id::text, path, path_is_relative::text, \
                     record_count::text, file_size_bytes::text FROM ducklake_data_file f \
                     WHERE table_id = $1::bigint AND end_snapshot IS NULL ORDER BY f.data_file_id",
                    &[Some(&t)],
                )
                .await?;
            let deletes = catalog
                .query(
                    "SELECT data_file_id::text, delete_file_id::text, path, \
                     path_is_relative::text FROM ducklake_delete_file \
                     WHERE table_id = $1::bigint AND end_snapshot IS NULL",
                    &[Some(&t)],
                )
                .await?;
            let point = super::commit::last_point(catalog, table.id).await?;
            Ok(Some((table, files, deletes, point)))
        }
        .await;
        let _ = catalog.batch("COMMIT").await;
        let Some((table, files, deletes, point)) = read? else {
            return Ok(None);
        };
        let number =
            |v: &Option<String>| -> i64 { v.as_deref().and_then(|v| v.parse().ok()).unwrap_or(-1) };
        let path_of = |path: &Option<String>, relative: &Option<String>| -> String {
            let path = path.clone().unwrap_or_default();
            match relative.as_deref() {
                Some("true") => format!("{}{path}", table.dir),
                _ => path,
            }
        };
        let mut delete_files = HashMap::new();
        let mut deleted: HashMap<i64, Vec<u64>> = HashMap::new();
        for d in &deletes {
            let file = number(&d[0]);
            if delete_files.insert(file, number(&d[1])).is_some() {
                return Err(ErrorKind::Unexpected(format!(
                    "DuckLake table {name}: data file {file} has two live delete files"
                ))
                .into());
            }
            let at = path_of(&d[2], &d[3]);
            deleted.insert(
                file,
                super::read::delete_positions(&at, &target.storage).await?,
            );
        }
        let mut live = Vec::with_capacity(files.len());
        for f in &files {
            let id = number(&f[0]);
            let gone: Positions = deleted.remove(&id).unwrap_or_default().into();
            live.push(LiveFile {
                constants: Vec::new(),
                id,
                location: Location::parse(&path_of(&f[1], &f[2]), &target.storage)?,
                rows: u64::try_from(number(&f[3])).unwrap_or(0),
                bytes: u64::try_from(number(&f[4])).unwrap_or(0),
                deleted: gone,
            });
        }
        Ok(Some((table, live, delete_files, point)))
    }

    /// Commits `plan` (its rows as data files, its deletes as delete files) with `point` as
    /// the table's next snapshot, then brings `live` up to date.
    ///
    /// # Errors
    /// The table's files changed since they were read ([`MOVED`]: the caller reads the table
    /// again and folds anew); a column the table does not have (a schema change); files that
    /// cannot be written; the catalog's.
    pub(crate) async fn commit(
        &mut self,
        live: &mut Live,
        plan: &Plan,
        point: Option<&MirrorPoint>,
    ) -> Result<LakeCommit> {
        let mut staged = self.stage(live, plan, point).await?;
        let mut catalog = Catalog::connect(&self.target.catalog).await?;
        let done = staged.commit().run(&mut catalog).await;
        catalog.close().await;
        let done = match done {
            Ok(done) => done,
            Err(e) => {
                // Another commit landed first (a process of this mirror killed as it
                // committed, whose backend finished after it died): read the table again.
                if super::is_race(&e) {
                    return Err(ErrorKind::Conflict(format!("{MOVED}: {e}")).into());
                }
                return Err(e.context(format!("committing to DuckLake table {}", staged.name)));
            }
        };
        staged.landed = Some((done.snapshot, done.file_ids));
        self.finish(live, plan, staged).await
    }

    /// Writes `plan`'s files (its rows as data files, laid out as the table is partitioned;
    /// a delete file per data file that loses rows) and readies its catalog change,
    /// recording `point`: the commit, ready to run alone or with other tables' (see
    /// [`commit_together`]).
    ///
    /// # Errors
    /// A data file the table no longer has ([`MOVED`]); files that cannot be written; the
    /// catalog's.
    pub(crate) async fn stage(
        &mut self,
        live: &Live,
        plan: &Plan,
        point: Option<&MirrorPoint>,
    ) -> Result<StagedCommit> {
        let name = format!("{}.{}", self.target.schema, self.target.table);
        let dir = Location::parse(&self.table.dir, &self.target.storage)?;
        let mut catalog = Catalog::connect(&self.target.catalog).await?;
        let last_id = last_column_id(&mut catalog, self.table.id).await;
        catalog.close().await;
        let ids = known_ids(&self.table.columns, last_id?);
        let laps = Laps::new(&name);
        let prefix = format!("ducklake-{}", new_uuid());
        // The rows, as data files laid out as the table is partitioned.
        let (manifest, columns, keys) = match plan.new_rows() {
            Some(rows) => self.write_rows(rows, &dir, &ids, &prefix, &name).await?,
            // No files: no partition values to check against the table's.
            None => (
                Manifest::new(Format::Parquet, None, None, None, Vec::new()),
                self.table.columns.clone(),
                Vec::new(),
            ),
        };
        let mut cleanup = Cleanup::new();
        for f in &manifest.files {
            cleanup.track(dir.join_path(&f.path));
        }
        let described = describe_files(&dir, &manifest, &columns, &keys).await?;
        let deletes = self
            .delete_files(live, plan, &dir, &prefix, &mut cleanup)
            .await?;
        let write_s = laps.lap("footers read, delete files written");
        Ok(StagedCommit {
            catalog: self.target.catalog.clone(),
            schema: self.target.schema.clone(),
            table: self.target.table.clone(),
            name,
            if_exists: match plan.truncate {
                true => IfExists::Replace,
                false => IfExists::Append,
            },
            expected: self.table.id,
            columns,
            keys,
            described,
            manifest,
            deletes,
            point: point.cloned(),
            since: self.seen.clone(),
            rewrite: plan.rewrite,
            dropped: match plan.adds_rows() {
                true => self.dropped.clone(),
                false => Vec::new(),
            },
            dir,
            cleanup,
            write_s,
            landed: None,
        })
    }

    /// After `staged` landed (alone, or with other tables'): its files kept, the table's
    /// position and `live` brought up to date.
    ///
    /// # Errors
    /// The catalog's, reading the table's columns or delete files again; the index's.
    pub(crate) async fn finish(
        &mut self,
        live: &mut Live,
        plan: &Plan,
        mut staged: StagedCommit,
    ) -> Result<LakeCommit> {
        let (snapshot, file_ids) = staged.landed.take().ok_or_else(|| {
            Error::from(ErrorKind::Internal(
                "a DuckLake commit finished before it landed".into(),
            ))
        })?;
        staged.cleanup.keep();
        let laps = Laps::new(&staged.name);
        if let Some(point) = &staged.point {
            self.seen = Seen {
                point: Some(point.clone()),
                snapshot: Some(snapshot),
            };
        }
        self.committed(
            live,
            plan,
            &staged.columns,
            &staged.deletes,
            &staged.dir,
            &staged.described,
            &file_ids,
        )
        .await?;
        Ok(LakeCommit {
            snapshot,
            files: staged.described.len(),
            write_s: staged.write_s,
            index_s: laps.lap("index updated"),
        })
    }

    /// One delete change per data file that loses rows: a new delete file of every position
    /// it deletes (tracked by `cleanup`), or none when it ends whole (compaction's, or every
    /// row deleted).
    ///
    /// # Errors
    /// A file the table no longer has ([`MOVED`]); a delete file that cannot be written.
    async fn delete_files(
        &self,
        live: &Live,
        plan: &Plan,
        dir: &Location,
        prefix: &str,
        cleanup: &mut Cleanup,
    ) -> Result<Vec<DeleteChange>> {
        let mut deletes = Vec::new();
        if plan.truncate {
            return Ok(deletes);
        }
        let moved = || Error::from(ErrorKind::Conflict(MOVED.into()));
        for file in &plan.ended {
            let data = live.files.get(file).ok_or_else(moved)?;
            deletes.push(DeleteChange {
                data_file_id: *file,
                previous: self.delete_files.get(file).copied(),
                file: None,
                removed: data.rows.saturating_sub(data.deleted.len()),
            });
        }
        for (file, positions) in &plan.deletes {
            let data = live.files.get(file).ok_or_else(moved)?;
            let mut all = data.deleted.clone();
            all.union_with(positions);
            let file_written = if all.len() >= data.rows {
                None
            } else {
                let path = format!("{prefix}-delete-{file}.parquet");
                let at = dir.join_path(&path);
                cleanup.track(at.clone());
                let (bytes, footer) =
                    write_delete_file(&at, &data.location.to_string(), &all).await?;
                Some((path, all.len(), bytes, footer))
            };
            deletes.push(DeleteChange {
                data_file_id: *file,
                previous: self.delete_files.get(file).copied(),
                file: file_written,
                removed: positions.len(),
            });
        }
        Ok(deletes)
    }

    /// The table, its delete files and `live` as the commit of `plan` left them: the catalog's
    /// columns read again when the commit changed them, the new files (`described`, by their
    /// `ids`) in the index.
    #[allow(clippy::too_many_arguments)]
    async fn committed(
        &mut self,
        live: &mut Live,
        plan: &Plan,
        columns: &[super::columns::LakeColumn],
        deletes: &[DeleteChange],
        dir: &Location,
        described: &[super::DataFile],
        ids: &[i64],
    ) -> Result<()> {
        // The table as it is now.
        if plan.adds_rows() && columns_changed(&self.table.columns, columns, &self.dropped) {
            let mut catalog = Catalog::connect(&self.target.catalog).await?;
            let table = find_table(&mut catalog, &self.target.schema, &self.target.table).await;
            catalog.close().await;
            if let Some(table) = table? {
                self.table = table;
            }
            self.dropped.clear();
        }
        if plan.truncate {
            self.delete_files.clear();
        }
        live.committed(plan);
        for d in deletes {
            self.delete_files.remove(&d.data_file_id);
        }
        self.refresh_delete_ids().await?;
        // Unpartitioned and unsorted, the rows went into the files in order: their places
        // are known without reading the files back.
        let in_order = self.table.partition.is_none() && self.target.options.sorted_by.is_empty();
        let written = described
            .iter()
            .zip(ids)
            .map(|(f, id)| LiveFile {
                constants: Vec::new(),
                id: *id,
                location: dir.join_path(&f.path),
                rows: f.rows,
                bytes: f.bytes,
                deleted: Default::default(),
            })
            .collect();
        live.add_written(written, plan.rows_alone(), in_order)
            .await?;
        Ok(())
    }

    /// The table's columns (top-level), in order.
    pub(crate) fn column_names(&self) -> Vec<&str> {
        top_columns(&self.table).collect()
    }

    /// The IDs of the top-level columns named `names`.
    pub(crate) fn column_ids(&self, names: &[String]) -> Vec<i64> {
        self.table
            .columns
            .iter()
            .filter(|c| c.parent.is_none() && names.contains(&c.name))
            .map(|c| c.id)
            .collect()
    }

    /// The source's columns changed: the next commit that writes rows takes the new ones
    /// (added, widened) and ends `dropped`.
    pub(crate) fn evolve(&mut self, dropped: Vec<i64>) {
        self.dropped.extend(dropped);
    }

    /// The live delete file of each data file, read again after a commit.
    async fn refresh_delete_ids(&mut self) -> Result<()> {
        let mut catalog = Catalog::connect(&self.target.catalog).await?;
        let rows = catalog
            .query(
                "SELECT data_file_id::text, delete_file_id::text FROM ducklake_delete_file \
                 WHERE table_id = $1::bigint AND end_snapshot IS NULL",
                &[Some(&self.table.id.to_string())],
            )
            .await;
        catalog.close().await;
        self.delete_files = rows?
            .iter()
            .filter_map(|r| {
                Some((
                    r[0].as_deref()?.parse().ok()?,
                    r[1].as_deref()?.parse().ok()?,
                ))
            })
            .collect();
        Ok(())
    }

    fn layout(&self, name: &str) -> Result<Layout> {
        let mut layout = Layout::default()
            .with_max_file_rows(self.target.layout.max_file_rows)
            .with_max_file_bytes(self.target.layout.max_file_bytes);
        if let Some((_, spec)) = &self.table.partition {
            layout.partitions = partitions::layout_of(spec, &self.table.columns)
                .map_err(|e| e.context(format!("DuckLake table {name}")))?;
        }
        Ok(layout.with_partition_columns_kept(true))
    }

    /// Writes `rows` as data files under the table's directory, laid out as the table is.
    async fn write_rows(
        &self,
        rows: NewRows,
        dir: &Location,
        ids: &FieldIds,
        prefix: &str,
        name: &str,
    ) -> Result<(
        Manifest,
        Vec<super::columns::LakeColumn>,
        Vec<partitions::Key>,
    )> {
        let schema = rows.schema();
        let columns = lake_columns_from(&schema, ids)
            .map_err(|e| e.context(format!("DuckLake table {name}")))?;
        // Added and widened columns evolve the table in the commit (evolve refuses the rest).
        super::evolve(&self.table.columns, &columns, false, name)?;
        let layout = self.layout(name)?;
        let keys = partitions::keys(&layout, &columns, &schema)
            .map_err(|e| e.context(format!("DuckLake table {name}")))?;
        let options = self
            .target
            .options
            .clone()
            .with_field_ids(true)
            .with_known_field_ids(ids.clone())
            .with_forms(crate::common::value_forms(crate::common::Format::DuckLake));
        let written =
            crate::live::write_rows(dir.clone(), options, layout, rows, prefix.to_owned()).await?;
        let files = written
            .into_iter()
            .map(|w| {
                let mut f = ManifestFile::new(w.path, w.rows, w.bytes);
                f.values = w.values;
                f
            })
            .collect();
        let mut manifest = Manifest::new(Format::Parquet, None, None, None, files);
        manifest.schema = Some(schema.as_ref().clone());
        Ok((manifest, columns, keys))
    }
}

/// A position delete file at `at` of the positions deleted from `data_file`: its size and
/// footer length.
async fn write_delete_file(
    at: &Location,
    data_file: &str,
    positions: &Positions,
) -> Result<(u64, u64)> {
    let (at, deletes) = (at.clone(), vec![(data_file.to_owned(), positions.clone())]);
    tokio::task::spawn_blocking(move || crate::deletes::write(&at, &deletes))
        .await
        .map_err(|e| Error::from(ErrorKind::Internal(format!("writing a delete file: {e}"))))?
}

/// Whether a commit of `written` columns changes the table's (`table`, less `dropped`).
fn columns_changed(
    table: &[super::columns::LakeColumn],
    written: &[super::columns::LakeColumn],
    dropped: &[i64],
) -> bool {
    !dropped.is_empty()
        || written.iter().any(|w| {
            !table
                .iter()
                .any(|t| t.id == w.id && t.ty == w.ty && t.name == w.name)
        })
}

/// The names of `table`'s top-level columns, in order.
fn top_columns(table: &Table) -> impl Iterator<Item = &str> {
    let mut columns: Vec<_> = table
        .columns
        .iter()
        .filter(|c| c.parent.is_none())
        .collect();
    columns.sort_by_key(|c| c.order);
    columns.into_iter().map(|c| c.name.as_str())
}

impl crate::table::LakeTable for DuckLakeMirror {
    fn column_names(&self) -> Vec<String> {
        self.column_names().into_iter().map(str::to_owned).collect()
    }

    fn evolve(&mut self, dropped: &[String]) {
        let ids = self.column_ids(dropped);
        DuckLakeMirror::evolve(self, ids);
    }

    fn commit<'a>(
        &'a mut self,
        live: &'a mut Live,
        plan: &'a Plan,
        point: Option<&'a MirrorPoint>,
    ) -> crate::table::Pending<'a, LakeCommit> {
        Box::pin(DuckLakeMirror::commit(self, live, plan, point))
    }

    fn stage<'a>(
        &'a mut self,
        live: &'a Live,
        plan: &'a Plan,
        point: Option<&'a MirrorPoint>,
    ) -> crate::table::Pending<'a, Option<Staged>> {
        Box::pin(async move {
            let staged = DuckLakeMirror::stage(self, live, plan, point).await?;
            Ok(Some(Staged::DuckLake(Box::new(staged))))
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
                Staged::DuckLake(staged) => DuckLakeMirror::finish(self, live, plan, *staged).await,
                Staged::Iceberg(_) => Err(ErrorKind::Internal(
                    "an Iceberg commit staged for a DuckLake table".into(),
                )
                .into()),
            }
        })
    }

    fn stages(&self) -> bool {
        true
    }
}
