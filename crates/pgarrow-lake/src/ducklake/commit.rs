//! The commit of an export's files into a DuckLake table: one catalog transaction that adds
//! a snapshot, the schema and table when new (with their partitioning), the files with their
//! statistics and partition values, and the table's statistics.

use std::cmp::Ordering;

use pgarrow::incremental::IncrementalState;
use pgarrow::io::Manifest;
use pgarrow::{Error, ErrorKind, Result};

use super::catalog::{Catalog, quote_ident};
use super::columns::LakeColumn;
use super::partitions::Key;
use super::{
    DataFile, Evolution, IfExists, Table, evolve, find_schema, find_table, same_partitions, stats,
};
use crate::bounds::{self, Value};
use crate::common::new_uuid;

/// One commit of files into a table, run in one catalog transaction.
pub(super) struct Commit<'a> {
    pub(super) schema: &'a str,
    pub(super) table: &'a str,
    pub(super) if_exists: IfExists,
    /// The table's ID when the export began, if it existed.
    pub(super) expected: Option<i64>,
    pub(super) columns: &'a [LakeColumn],
    /// The partition keys of the files (the table's).
    pub(super) keys: &'a [Key],
    /// Whether the files' partitioning is the export's own: it then becomes the table's when
    /// the table's differs.
    pub(super) repartition: bool,
    pub(super) files: &'a [DataFile],
    pub(super) manifest: &'a Manifest,
    /// An incremental run, its state carried in the snapshot's changes.
    pub(super) run: Option<&'a crate::common::LakeRun>,
    /// The run's state it went on from.
    pub(super) previous: Option<&'a IncrementalState>,
    /// Rows deleted from the table's files (a mirror's commit).
    pub(super) deletes: &'a [DeleteChange],
    /// The replication slot and WAL position the commit brings the table to (a mirror's).
    pub(super) point: Option<&'a crate::live::MirrorPoint>,
    /// The position the mirror's view of the table is at: the table's last commit must
    /// still be there ([`MOVED`] otherwise).
    pub(super) since: Option<&'a Seen>,
    /// The commit rewrites files (compaction): the table's rows stay the same.
    pub(super) rewrite: bool,
    /// Columns the commit ends (dropped at a mirror's source), with their nested fields.
    pub(super) dropped: &'a [i64],
}

/// The deletes of one data file a commit makes: a new delete file listing every position
/// deleted (the file's earlier ones too), or, when none of its rows is left, the data file
/// ended.
pub(super) struct DeleteChange {
    pub(super) data_file_id: i64,
    /// The delete file the data file has now, which the new one replaces.
    pub(super) previous: Option<i64>,
    /// The new delete file: its path under the table's directory, positions, size, footer.
    pub(super) file: Option<(String, u64, u64, u64)>,
    /// Rows the commit deletes.
    pub(super) removed: u64,
}

/// The message of a commit that found the table's files changed under it (compaction, say):
/// the mirror reads the table again and folds its changes anew.
pub(super) use crate::live::MOVED;

/// What a commit made.
pub(super) struct Committed {
    pub(super) snapshot: i64,
    pub(super) table_id: i64,
    pub(super) created: bool,
    /// The IDs the data files got, in order.
    pub(super) file_ids: Vec<i64>,
}

/// Several tables' commits in one catalog transaction that adds one snapshot: all land, or
/// none. Tables made, altered or partitioned anew go in it as their data does: the
/// snapshot's one schema version holds every table's new columns. The outer error is the
/// `COMMIT`'s, whose outcome is then unknown; the inner one a commit that was rolled back (a
/// table moved, another writer won the race, or the catalog refused).
///
/// # Errors
/// The catalog's, starting or ending the transaction.
pub(super) async fn run_together(
    commits: &[Commit<'_>],
    catalog: &mut Catalog,
) -> Result<std::result::Result<Vec<Committed>, Error>> {
    catalog
        .batch("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await?;
    let tried = async {
        let mut snap = NewSnapshot::after_last(catalog).await?;
        let mut done = Vec::with_capacity(commits.len());
        for (i, c) in commits.iter().enumerate() {
            if commits[..i]
                .iter()
                .any(|o| (o.schema, o.table) == (c.schema, c.table))
            {
                return Err(Error::from(ErrorKind::Usage(format!(
                    "DuckLake table {} is the target of two exports of one commit",
                    c.name()
                ))));
            }
            done.push(c.table_changes(catalog, &mut snap).await?);
        }
        snap.insert(catalog).await?;
        if let Some(first) = commits.first() {
            first.record_changes(catalog, &snap, commits, &done).await?;
        }
        Ok::<_, Error>(done)
    }
    .await;
    match tried {
        Ok(done) => {
            catalog.batch("COMMIT").await?;
            Ok(Ok(done))
        }
        Err(e) => {
            let _ = catalog.batch("ROLLBACK").await;
            Ok(Err(e))
        }
    }
}

impl Commit<'_> {
    pub(super) async fn run(&self, catalog: &mut Catalog) -> Result<Committed> {
        catalog
            .batch("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await?;
        match self.changes(catalog).await {
            Ok(done) => {
                catalog.batch("COMMIT").await?;
                Ok(done)
            }
            Err(e) => {
                let _ = catalog.batch("ROLLBACK").await;
                Err(e)
            }
        }
    }

    async fn changes(&self, catalog: &mut Catalog) -> Result<Committed> {
        let mut snap = NewSnapshot::after_last(catalog).await?;
        let done = self.table_changes(catalog, &mut snap).await?;
        snap.insert(catalog).await?;
        self.record_changes(
            catalog,
            &snap,
            std::slice::from_ref(self),
            std::slice::from_ref(&done),
        )
        .await?;
        Ok(done)
    }

    /// `schema.table`.
    fn name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// The table's changes in snapshot `snap` (not yet added).
    async fn table_changes(
        &self,
        catalog: &mut Catalog,
        snap: &mut NewSnapshot,
    ) -> Result<Committed> {
        let name = self.name();
        let table = find_table(catalog, self.schema, self.table).await?;
        self.refuse_moved(table.as_ref(), &name)?;
        let evolution = match &table {
            Some(t) => self.check_against(catalog, t, &name).await?,
            None => Evolution::default(),
        };
        let created = table.is_none();
        let repartitioned = self.repartitions(table.as_ref());
        let (table_id, mut partition_id) = match &table {
            Some(t) => (t.id, t.partition.as_ref().map(|p| p.0)),
            None => self.create_table(catalog, snap).await?,
        };
        let t = table_id.to_string();
        if repartitioned {
            partition_id = Some(self.repartition(catalog, &t, snap).await?);
        }
        let altered = !created && !evolution.is_none();
        if altered {
            alter_columns(catalog, &evolution, &t, snap).await?;
        }
        if repartitioned || altered {
            snap.changes.push(format!("altered_table:{table_id}"));
        }
        if !created && self.if_exists == IfExists::Replace {
            self.end_rows(catalog, &t, &snap.s).await?;
            snap.changes.push(format!("deleted_from_table:{table_id}"));
        }
        if let Some(since) = self.since {
            still_at(catalog, table_id, since).await?;
        }
        if !self.deletes.is_empty() {
            self.delete_rows(catalog, &t, &snap.s, &mut snap.next_file_id)
                .await?;
            snap.changes.push(format!("deleted_from_table:{table_id}"));
        }
        let file_ids = self
            .add_files(catalog, &t, &snap.s, partition_id, &mut snap.next_file_id)
            .await?;
        if let Some(old) = &table
            && self.if_exists != IfExists::Replace
        {
            self.null_where_appended(catalog, old, &evolution, &t)
                .await?;
        }
        if !self.files.is_empty() || created {
            snap.changes.push(format!("inserted_into_table:{table_id}"));
        }
        Ok(Committed {
            snapshot: snap.id,
            table_id,
            created,
            file_ids,
        })
    }

    /// Refuses a commit onto a table another writer made, dropped or replaced since the
    /// export began: only an append goes on, onto a table of the same columns.
    fn refuse_moved(&self, table: Option<&Table>, name: &str) -> Result<()> {
        let moved = table.map(|t| t.id) != self.expected;
        if moved && !(self.if_exists == IfExists::Append && table.is_some()) {
            return Err(ErrorKind::Conflict(format!(
                "DuckLake table {name} was {} by another writer during the export; nothing \
                 was committed",
                if table.is_some() { "made" } else { "dropped" }
            ))
            .into());
        }
        Ok(())
    }

    /// Checks the commit against the table `t` as it is (its columns, the ones that take no
    /// NULL, its partitioning, an incremental run's race) and returns what it does to the
    /// table's columns, the columns it drops among those ended.
    async fn check_against(
        &self,
        catalog: &mut Catalog,
        t: &Table,
        name: &str,
    ) -> Result<Evolution> {
        let mut evolution = evolve(
            &t.columns,
            self.columns,
            self.if_exists == IfExists::Replace,
            name,
        )?;
        for c in &t.columns {
            let gone =
                self.dropped.contains(&c.id) || c.parent.is_some_and(|p| self.dropped.contains(&p));
            if gone && !evolution.ended.contains(&c.id) {
                evolution.ended.push(c.id);
            }
        }
        if self.if_exists != IfExists::Replace {
            self.no_nulls_in_required(catalog, t.id, name).await?;
        }
        if !self.repartition && !self.files.is_empty() {
            same_partitions(t, self.keys, name)?;
        }
        if self.run.is_some() {
            let theirs = super::last_state(catalog, t.id).await?;
            crate::run::check_race(self.run, self.previous, theirs.as_ref())
                .map_err(|e| e.context(format!("DuckLake table {name}")))?;
        }
        Ok(evolution)
    }

    /// Makes the table in `snap` (its schema too when there is none): its columns, empty
    /// statistics, and the files' partitioning when they have one. Returns the table's ID and
    /// its partitioning's.
    async fn create_table(
        &self,
        catalog: &mut Catalog,
        snap: &mut NewSnapshot,
    ) -> Result<(i64, Option<i64>)> {
        let schema_id = match find_schema(catalog, self.schema).await? {
            Some((id, _)) => id,
            None => self.create_schema(catalog, snap).await?,
        };
        let id = snap.catalog_id();
        let version = snap.schema_change();
        let t = id.to_string();
        catalog
            .exec(
                "INSERT INTO ducklake_table VALUES ($1::bigint, $2::uuid, $3::bigint, \
                 NULL, $4::bigint, $5, $6, true)",
                &[
                    Some(&t),
                    Some(&new_uuid()),
                    Some(&snap.s),
                    Some(&schema_id.to_string()),
                    Some(self.table),
                    Some(&format!("{}/", self.table)),
                ],
            )
            .await?;
        insert_columns(catalog, self.columns, &snap.s, &t, version).await?;
        catalog
            .exec(
                "INSERT INTO ducklake_table_stats VALUES ($1::bigint, 0, 0, 0)",
                &[Some(&t)],
            )
            .await?;
        let mut partition_id = None;
        if !self.keys.is_empty() {
            let p = snap.catalog_id();
            insert_partition(catalog, p, self.keys, &t, &snap.s).await?;
            partition_id = Some(p);
        }
        snap.changes.push(format!(
            "created_table:{}.{}",
            quote_ident(self.schema),
            quote_ident(self.table)
        ));
        Ok((id, partition_id))
    }

    /// Makes the table's schema in `snap`: its ID.
    async fn create_schema(&self, catalog: &mut Catalog, snap: &mut NewSnapshot) -> Result<i64> {
        let id = snap.catalog_id();
        snap.schema_change();
        catalog
            .exec(
                "INSERT INTO ducklake_schema VALUES ($1::bigint, $2::uuid, \
                 $3::bigint, NULL, $4, $5, true)",
                &[
                    Some(&id.to_string()),
                    Some(&new_uuid()),
                    Some(&snap.s),
                    Some(self.schema),
                    Some(&format!("{}/", self.schema)),
                ],
            )
            .await?;
        snap.changes
            .push(format!("created_schema:{}", quote_ident(self.schema)));
        Ok(id)
    }

    /// Whether the commit changes the partitioning of the existing `table` to the files'
    /// own.
    fn repartitions(&self, table: Option<&Table>) -> bool {
        let spec: Vec<(i64, String)> = self
            .keys
            .iter()
            .map(|k| (k.column_id, k.transform.clone()))
            .collect();
        self.repartition
            && table
                .is_some_and(|t| t.partition.as_ref().map_or(&[][..], |(_, theirs)| theirs) != spec)
    }

    /// Changes the partitioning of table `t` to the files' in a new schema version of
    /// `snap`: ends the table's and adds theirs, whose ID it returns.
    async fn repartition(
        &self,
        catalog: &mut Catalog,
        t: &str,
        snap: &mut NewSnapshot,
    ) -> Result<i64> {
        snap.schema_change();
        catalog
            .exec(
                "UPDATE ducklake_partition_info SET end_snapshot = $1::bigint \
                 WHERE table_id = $2::bigint AND end_snapshot IS NULL",
                &[Some(&snap.s), Some(t)],
            )
            .await?;
        let p = snap.catalog_id();
        insert_partition(catalog, p, self.keys, t, &snap.s).await?;
        Ok(p)
    }

    /// Marks NULL in the statistics of table `old` where an append brings it: the table's
    /// earlier rows in a column new to it, and the new rows in a column the export lacks.
    async fn null_where_appended(
        &self,
        catalog: &mut Catalog,
        old: &Table,
        evolution: &Evolution,
        t: &str,
    ) -> Result<()> {
        let mut nullable: Vec<String> = evolution.new.iter().map(i64::to_string).collect();
        nullable.extend(
            old.columns
                .iter()
                .filter(|c| !self.columns.iter().any(|e| e.id == c.id))
                .map(|c| c.id.to_string()),
        );
        if nullable.is_empty() {
            return Ok(());
        }
        catalog
            .exec(
                "UPDATE ducklake_table_column_stats SET contains_null = true \
                 WHERE table_id = $1::bigint \
                 AND column_id = ANY(string_to_array($2, ',')::bigint[])",
                &[Some(t), Some(&nullable.join(","))],
            )
            .await?;
        Ok(())
    }

    /// Records the changes `snap` made, with the commit's provenance and a message naming
    /// the tables of the commits `all` (this one, or several in one snapshot: their tables
    /// and rows then in its provenance, and each incremental run's state under its table's
    /// ID, `done`'s).
    async fn record_changes(
        &self,
        catalog: &mut Catalog,
        snap: &NewSnapshot,
        all: &[Commit<'_>],
        done: &[Committed],
    ) -> Result<()> {
        let names: Vec<String> = all.iter().map(Commit::name).collect();
        let mut provenance = self.provenance()?;
        if all.len() > 1 {
            provenance["tables"] = names.clone().into();
            provenance["source"] = serde_json::Value::Null;
            provenance["rows"] = all.iter().map(|c| c.manifest.rows).sum::<u64>().into();
            if let Some(map) = provenance.as_object_mut() {
                map.remove("incremental");
            }
            let mut states = serde_json::Map::new();
            for (c, d) in all.iter().zip(done) {
                if let Some(run) = c.run {
                    states.insert(d.table_id.to_string(), state_json(run)?);
                }
            }
            if !states.is_empty() {
                provenance[INCREMENTAL_BY_TABLE] = states.into();
            }
        }
        let name = names.join(", ");
        catalog
            .exec(
                "INSERT INTO ducklake_snapshot_changes VALUES ($1::bigint, $2, 'pgarrow', $3, $4)",
                &[
                    Some(&snap.s),
                    Some(&snap.changes.join(",")),
                    Some(&match (self.rewrite, self.point) {
                        (true, _) => format!("pgarrow compaction of {name}"),
                        (false, Some(p)) => format!("pgarrow mirror of {name} to {}", p.lsn),
                        (false, None) => format!("pgarrow export of {name}"),
                    }),
                    Some(&provenance.to_string()),
                ],
            )
            .await?;
        Ok(())
    }

    /// The commit's provenance: the manifest's, with a mirror's position, a compaction's
    /// mark and an incremental run's state.
    fn provenance(&self) -> Result<serde_json::Value> {
        let mut provenance = crate::common::provenance(self.manifest);
        if let Some(point) = self.point {
            point.record(&mut provenance);
            provenance["mirror"] = true.into();
        }
        if self.rewrite {
            provenance["compacted"] = true.into();
        }
        if let Some(run) = self.run {
            provenance["incremental"] = state_json(run)?;
        }
        Ok(provenance)
    }

    /// Refuses an append that leaves out a column the table holds no NULL in.
    async fn no_nulls_in_required(
        &self,
        catalog: &mut Catalog,
        table_id: i64,
        name: &str,
    ) -> Result<()> {
        let required = catalog
            .query(
                "SELECT column_id::text, column_name FROM ducklake_column \
                 WHERE table_id = $1::bigint AND end_snapshot IS NULL AND NOT nulls_allowed",
                &[Some(&table_id.to_string())],
            )
            .await?;
        for r in required {
            let id: i64 = r[0].as_deref().and_then(|v| v.parse().ok()).unwrap_or(-1);
            if !self.columns.iter().any(|c| c.id == id) && !self.dropped.contains(&id) {
                return Err(ErrorKind::Usage(format!(
                    "DuckLake table {name}: its column \"{}\" takes no NULL, and the export \
                     lacks it",
                    r[1].as_deref().unwrap_or_default()
                ))
                .into());
            }
        }
        Ok(())
    }

    /// Ends every live row of the table at snapshot `s`: its data files, their delete
    /// files, the rows DuckDB inlined into the catalog; its statistics start again.
    async fn end_rows(&self, catalog: &mut Catalog, t: &str, s: &str) -> Result<()> {
        for table in ["ducklake_data_file", "ducklake_delete_file"] {
            catalog
                .exec(
                    &format!(
                        "UPDATE {table} SET end_snapshot = $1::bigint \
                         WHERE table_id = $2::bigint AND end_snapshot IS NULL"
                    ),
                    &[Some(s), Some(t)],
                )
                .await?;
        }
        let inlined = catalog
            .query(
                "SELECT table_name FROM ducklake_inlined_data_tables WHERE table_id = $1::bigint",
                &[Some(t)],
            )
            .await?;
        for row in inlined {
            let Some(name) = &row[0] else { continue };
            catalog
                .exec(
                    &format!(
                        "UPDATE {} SET end_snapshot = $1::bigint WHERE end_snapshot IS NULL",
                        quote_ident(name)
                    ),
                    &[Some(s)],
                )
                .await?;
        }
        catalog
            .exec(
                "UPDATE ducklake_table_stats SET record_count = 0, file_size_bytes = 0 \
                 WHERE table_id = $1::bigint",
                &[Some(t)],
            )
            .await?;
        catalog
            .exec(
                "DELETE FROM ducklake_table_column_stats WHERE table_id = $1::bigint",
                &[Some(t)],
            )
            .await?;
        Ok(())
    }

    /// Adds the data files, their column statistics and the table's statistics.
    async fn add_files(
        &self,
        catalog: &mut Catalog,
        t: &str,
        s: &str,
        partition_id: Option<i64>,
        next_file_id: &mut i64,
    ) -> Result<Vec<i64>> {
        let partition = partition_id.map(|p| p.to_string());
        let mut ids = Vec::with_capacity(self.files.len());
        let mut partition_values = Vec::new();
        let stats = catalog
            .query(
                "SELECT next_row_id::text FROM ducklake_table_stats WHERE table_id = $1::bigint \
                 FOR UPDATE",
                &[Some(t)],
            )
            .await?;
        let mut row_id: i64 = stats
            .first()
            .and_then(|r| r[0].as_deref())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut files = Vec::new();
        let mut column_stats = Vec::new();
        let (mut rows, mut bytes) = (0i64, 0i64);
        for f in self.files {
            let id = *next_file_id;
            *next_file_id += 1;
            ids.push(id);
            files.push(vec![
                Some(id.to_string()),
                Some(t.to_owned()),
                Some(s.to_owned()),
                Some(f.path.clone()),
                Some(f.rows.to_string()),
                Some(f.bytes.to_string()),
                Some(f.footer.to_string()),
                Some(row_id.to_string()),
                partition.clone(),
            ]);
            for (k, value) in f.partition_values.iter().enumerate() {
                partition_values.push(vec![
                    Some(id.to_string()),
                    Some(t.to_owned()),
                    Some(k.to_string()),
                    value.clone(),
                ]);
            }
            row_id += f.rows as i64;
            rows += f.rows as i64;
            bytes += f.bytes as i64;
            let mut ids: Vec<&i64> = f.stats.keys().collect();
            ids.sort();
            for column in ids {
                let c = &f.stats[column];
                column_stats.push(vec![
                    Some(id.to_string()),
                    Some(t.to_owned()),
                    Some(column.to_string()),
                    Some(c.column_size_bytes.to_string()),
                    Some(c.value_count.to_string()),
                    c.null_count.map(|n| n.to_string()),
                    c.min.as_ref().and_then(stats::render),
                    c.max.as_ref().and_then(stats::render),
                ]);
            }
        }
        catalog
            .exec_each(
                "INSERT INTO ducklake_data_file (data_file_id, table_id, begin_snapshot, \
                 end_snapshot, file_order, path, path_is_relative, file_format, record_count, \
                 file_size_bytes, footer_size, row_id_start, partition_id, encryption_key, \
                 mapping_id, partial_max) VALUES ($1::bigint, $2::bigint, $3::bigint, NULL, \
                 NULL, $4, true, 'parquet', $5::bigint, $6::bigint, $7::bigint, $8::bigint, \
                 $9::bigint, NULL, NULL, NULL)",
                &files,
            )
            .await?;
        catalog
            .exec_each(
                "INSERT INTO ducklake_file_partition_value VALUES ($1::bigint, $2::bigint, \
                 $3::bigint, $4)",
                &partition_values,
            )
            .await?;
        catalog
            .exec_each(
                "INSERT INTO ducklake_file_column_stats (data_file_id, table_id, column_id, \
                 column_size_bytes, value_count, null_count, min_value, max_value, \
                 contains_nan, extra_stats) VALUES ($1::bigint, $2::bigint, $3::bigint, \
                 $4::bigint, $5::bigint, $6::bigint, $7, $8, NULL, NULL)",
                &column_stats,
            )
            .await?;
        catalog
            .exec(
                "UPDATE ducklake_table_stats SET record_count = record_count + $2::bigint, \
                 next_row_id = $3::bigint, file_size_bytes = file_size_bytes + $4::bigint \
                 WHERE table_id = $1::bigint",
                &[
                    Some(t),
                    Some(&rows.to_string()),
                    Some(&row_id.to_string()),
                    Some(&bytes.to_string()),
                ],
            )
            .await?;
        self.table_column_stats(catalog, t).await?;
        Ok(ids)
    }

    /// Ends each touched data file's delete file and adds its new one (or ends the data file
    /// when no row of it is left), after checking that the table still has them as the
    /// mirror read it ([`MOVED`] otherwise); the table's row count goes down by the rows
    /// deleted.
    async fn delete_rows(
        &self,
        catalog: &mut Catalog,
        t: &str,
        s: &str,
        next_file_id: &mut i64,
    ) -> Result<()> {
        let mut removed = 0u64;
        for d in self.deletes {
            let file = d.data_file_id.to_string();
            let state = catalog
                .query(
                    "SELECT (SELECT count(*) FROM ducklake_data_file WHERE data_file_id =                      $1::bigint AND table_id = $2::bigint AND end_snapshot IS NULL)::text,                      (SELECT string_agg(delete_file_id::text, ',') FROM ducklake_delete_file                      WHERE data_file_id = $1::bigint AND end_snapshot IS NULL)",
                    &[Some(&file), Some(t)],
                )
                .await?;
            let live = state.first().and_then(|r| r[0].as_deref()) == Some("1");
            let current = state.first().and_then(|r| r[1].clone());
            if !live || current != d.previous.map(|p| p.to_string()) {
                return Err(ErrorKind::Conflict(format!(
                    "{MOVED}: data file {file} is {}, its delete file {current:?}, not {:?}",
                    if live { "live" } else { "gone" },
                    d.previous
                ))
                .into());
            }
            if let Some(previous) = d.previous {
                catalog
                    .exec(
                        "UPDATE ducklake_delete_file SET end_snapshot = $1::bigint                          WHERE delete_file_id = $2::bigint",
                        &[Some(s), Some(&previous.to_string())],
                    )
                    .await?;
            }
            match &d.file {
                Some((path, count, bytes, footer)) => {
                    let id = *next_file_id;
                    *next_file_id += 1;
                    catalog
                        .exec(
                            "INSERT INTO ducklake_delete_file (delete_file_id, table_id,                              begin_snapshot, end_snapshot, data_file_id, path,                              path_is_relative, format, delete_count, file_size_bytes,                              footer_size, encryption_key, partial_max) VALUES ($1::bigint,                              $2::bigint, $3::bigint, NULL, $4::bigint, $5, true, 'parquet',                              $6::bigint, $7::bigint, $8::bigint, NULL, NULL)",
                            &[
                                Some(&id.to_string()),
                                Some(t),
                                Some(s),
                                Some(&file),
                                Some(path),
                                Some(&count.to_string()),
                                Some(&bytes.to_string()),
                                Some(&footer.to_string()),
                            ],
                        )
                        .await?;
                }
                None => {
                    catalog
                        .exec(
                            "UPDATE ducklake_data_file SET end_snapshot = $1::bigint                              WHERE data_file_id = $2::bigint",
                            &[Some(s), Some(&file)],
                        )
                        .await?;
                }
            }
            removed += d.removed;
        }
        catalog
            .exec(
                "UPDATE ducklake_table_stats SET record_count = greatest(record_count -                  $2::bigint, 0) WHERE table_id = $1::bigint",
                &[Some(t), Some(&removed.to_string())],
            )
            .await?;
        Ok(())
    }

    /// Folds the files' bounds into the table's: the files' own compared here (as
    /// [`stats`] orders them), then with the table's in the catalog, as PostgreSQL values of
    /// the column's type. A column of a type pgarrow leaves unbounded, or a file without
    /// bounds for a column that has values, leaves the table's bounds unknown (NULL).
    async fn table_column_stats(&self, catalog: &mut Catalog, t: &str) -> Result<()> {
        for column in self.columns {
            let mut seen = false;
            let mut nulls = Some(false);
            // Known while every file with values in the column has bounds for it.
            let mut bounded = column.compare_as.is_some();
            let (mut lo, mut hi): (Option<Value>, Option<Value>) = (None, None);
            for f in self.files {
                let Some(c) = f.stats.get(&column.id) else {
                    continue;
                };
                seen = true;
                nulls = match (nulls, c.null_count) {
                    (Some(a), Some(n)) => Some(a || n > 0),
                    _ => None,
                };
                match (&c.min, &c.max) {
                    (Some(min), Some(max)) => {
                        lo = Some(match lo.take() {
                            Some(old) => bounds::least(old, min.clone(), Ordering::Less),
                            None => min.clone(),
                        });
                        hi = Some(match hi.take() {
                            Some(old) => bounds::least(old, max.clone(), Ordering::Greater),
                            None => max.clone(),
                        });
                    }
                    // Only NULLs: nothing to bound.
                    _ if c.null_count == Some(c.value_count) => {}
                    _ => bounded = false,
                }
            }
            if !seen {
                continue;
            }
            let (lo, hi) = match bounded {
                true => (
                    lo.as_ref().and_then(stats::render),
                    hi.as_ref().and_then(stats::render),
                ),
                false => (None, None),
            };
            let ty = column.compare_as.unwrap_or("text");
            let id = column.id.to_string();
            let nulls = nulls.map(|n| n.to_string());
            let params = [
                Some(t),
                Some(id.as_str()),
                nulls.as_deref(),
                lo.as_deref(),
                hi.as_deref(),
                Some(if bounded { "true" } else { "false" }),
            ];
            let updated = catalog
                .exec(
                    &format!(
                        "UPDATE ducklake_table_column_stats SET \
                         contains_null = contains_null OR $3::boolean, \
                         min_value = CASE WHEN NOT $6::boolean OR min_value IS NULL THEN NULL \
                           WHEN $4::text IS NULL THEN min_value \
                           ELSE LEAST(min_value::{ty}, $4::text::{ty})::text END, \
                         max_value = CASE WHEN NOT $6::boolean OR max_value IS NULL THEN NULL \
                           WHEN $5::text IS NULL THEN max_value \
                           ELSE GREATEST(max_value::{ty}, $5::text::{ty})::text END \
                         WHERE table_id = $1::bigint AND column_id = $2::bigint"
                    ),
                    &params,
                )
                .await?;
            if updated == 0 {
                catalog
                    .exec(
                        "INSERT INTO ducklake_table_column_stats (table_id, column_id, \
                         contains_null, contains_nan, min_value, max_value, extra_stats) \
                         VALUES ($1::bigint, $2::bigint, $3::boolean, NULL, \
                         CASE WHEN $6::boolean THEN $4::text END, \
                         CASE WHEN $6::boolean THEN $5::text END, NULL)",
                        &params,
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

/// The snapshot a commit makes, as its steps build it: its ID, the catalog's counters moved
/// on from the last snapshot's, and the changes it records.
struct NewSnapshot {
    id: i64,
    /// `id` as text, as the statements take it.
    s: String,
    schema_version: i64,
    /// Whether `schema_version` is the snapshot's own (one for every table it changes).
    schema_changed: bool,
    next_catalog_id: i64,
    next_file_id: i64,
    /// Its `changes_made`, in order.
    changes: Vec<String>,
}

impl NewSnapshot {
    /// The snapshot after the catalog's last.
    ///
    /// # Errors
    /// A catalog without a snapshot, or whose last one is malformed.
    async fn after_last(catalog: &mut Catalog) -> Result<Self> {
        let last = catalog
            .query(
                "SELECT snapshot_id::text, schema_version::text, next_catalog_id::text, \
                 next_file_id::text FROM ducklake_snapshot s ORDER BY s.snapshot_id DESC LIMIT 1",
                &[],
            )
            .await?;
        let last = last.first().ok_or_else(|| {
            Error::from(ErrorKind::Unexpected(
                "the DuckLake catalog has no snapshot".into(),
            ))
        })?;
        let number = |k: usize| -> Result<i64> {
            last[k]
                .as_deref()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    ErrorKind::Unexpected(
                        "the DuckLake catalog's last snapshot is malformed".into(),
                    )
                    .into()
                })
        };
        let id = number(0)? + 1;
        log::debug!("commit: last snapshot {:?}, making {id}", last[0]);
        Ok(Self {
            id,
            s: id.to_string(),
            schema_version: number(1)?,
            schema_changed: false,
            next_catalog_id: number(2)?,
            next_file_id: number(3)?,
            changes: Vec::new(),
        })
    }

    /// The schema version of the snapshot's changes to schemas, tables and columns: one
    /// past the last snapshot's, for all of them (as DuckDB numbers them).
    fn schema_change(&mut self) -> i64 {
        if !self.schema_changed {
            self.schema_version += 1;
            self.schema_changed = true;
        }
        self.schema_version
    }

    /// Takes the next catalog ID (a schema's, a table's, a partitioning's).
    fn catalog_id(&mut self) -> i64 {
        let id = self.next_catalog_id;
        self.next_catalog_id += 1;
        id
    }

    /// Adds the snapshot to the catalog, with the counters as the commit left them.
    async fn insert(&self, catalog: &mut Catalog) -> Result<()> {
        catalog
            .exec(
                "INSERT INTO ducklake_snapshot VALUES ($1::bigint, now(), $2::bigint, \
                 $3::bigint, $4::bigint)",
                &[
                    Some(&self.s),
                    Some(&self.schema_version.to_string()),
                    Some(&self.next_catalog_id.to_string()),
                    Some(&self.next_file_id.to_string()),
                ],
            )
            .await?;
        Ok(())
    }
}

/// The provenance key of a snapshot of several tables holding each one's incremental run's
/// state, by table ID (a snapshot of one table holds it as `incremental`).
pub(super) const INCREMENTAL_BY_TABLE: &str = "incremental_by_table";

/// An incremental run's state as the provenance records it.
fn state_json(run: &crate::common::LakeRun) -> Result<serde_json::Value> {
    serde_json::to_value(&run.state)
        .map_err(|e| Error::from(ErrorKind::Internal(format!("the incremental state: {e}"))))
}

/// Ends the columns `evolution` ends and begins those it begins in table `t`, in the
/// schema version of `snap`.
async fn alter_columns(
    catalog: &mut Catalog,
    evolution: &Evolution,
    t: &str,
    snap: &mut NewSnapshot,
) -> Result<()> {
    let version = snap.schema_change();
    let ended: Vec<String> = evolution.ended.iter().map(i64::to_string).collect();
    catalog
        .exec(
            "UPDATE ducklake_column SET end_snapshot = $1::bigint \
             WHERE table_id = $2::bigint AND end_snapshot IS NULL \
             AND column_id = ANY(string_to_array($3, ',')::bigint[])",
            &[Some(&snap.s), Some(t), Some(&ended.join(","))],
        )
        .await?;
    insert_columns(catalog, &evolution.begun, &snap.s, t, version).await
}

/// Refuses a commit when the last commit of table `table_id` with a position is no longer
/// `since`, the one the mirror read the table at ([`MOVED`]).
async fn still_at(catalog: &mut Catalog, table_id: i64, since: &Seen) -> Result<()> {
    let now = last_point(catalog, table_id).await?;
    if now != *since {
        return Err(ErrorKind::Conflict(format!(
            "{MOVED}: its last commit with a position is {now}, not {since}"
        ))
        .into());
    }
    Ok(())
}

/// Adds `columns` to table `t` from snapshot `s` (nullable, with DuckDB's defaults), the
/// table's schema version `version` from then.
async fn insert_columns(
    catalog: &mut Catalog,
    columns: &[LakeColumn],
    s: &str,
    t: &str,
    version: i64,
) -> Result<()> {
    let rows: Vec<Vec<Option<String>>> = columns
        .iter()
        .map(|c| {
            let scalar = !matches!(c.ty.as_str(), "list" | "struct" | "map");
            vec![
                Some(c.id.to_string()),
                Some(s.to_owned()),
                Some(t.to_owned()),
                Some(c.order.to_string()),
                Some(c.name.clone()),
                Some(c.ty.clone()),
                c.parent.map(|p| p.to_string()),
                scalar.then(|| "literal".to_owned()),
            ]
        })
        .collect();
    catalog
        .exec_each(
            "INSERT INTO ducklake_column (column_id, begin_snapshot, end_snapshot, table_id, \
             column_order, column_name, column_type, initial_default, default_value, \
             nulls_allowed, parent_column, default_value_type, default_value_dialect) VALUES \
             ($1::bigint, $2::bigint, NULL, $3::bigint, $4::bigint, $5, $6, NULL, 'NULL', true, \
             $7::bigint, $8, 'duckdb')",
            &rows,
        )
        .await?;
    catalog
        .exec(
            "INSERT INTO ducklake_schema_versions VALUES ($1::bigint, $2::bigint, $3::bigint)",
            &[Some(s), Some(&version.to_string()), Some(t)],
        )
        .await?;
    Ok(())
}

/// Adds partitioning `p` of table `t` by `keys` from snapshot `s`.
async fn insert_partition(
    catalog: &mut Catalog,
    p: i64,
    keys: &[Key],
    t: &str,
    s: &str,
) -> Result<()> {
    let p_text = p.to_string();
    catalog
        .exec(
            "INSERT INTO ducklake_partition_info VALUES ($1::bigint, $2::bigint, $3::bigint, NULL)",
            &[Some(&p_text), Some(t), Some(s)],
        )
        .await?;
    let rows: Vec<Vec<Option<String>>> = keys
        .iter()
        .enumerate()
        .map(|(k, key)| {
            vec![
                Some(p_text.clone()),
                Some(t.to_owned()),
                Some(k.to_string()),
                Some(key.column_id.to_string()),
                Some(key.transform.clone()),
            ]
        })
        .collect();
    catalog
        .exec_each(
            "INSERT INTO ducklake_partition_column VALUES ($1::bigint, $2::bigint, $3::bigint, \
             $4::bigint, $5)",
            &rows,
        )
        .await?;
    Ok(())
}

/// The last commit of a table that records a mirror's position: the position, and the
/// snapshot (a commit beside the mirror, such as compaction, carries the position on in a
/// snapshot of its own: a mirror that read the table before it must read it again).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) point: Option<crate::live::MirrorPoint>,
    pub(crate) snapshot: Option<i64>,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.point, self.snapshot) {
            (Some(p), Some(s)) => write!(f, "{} (snapshot {s})", p.lsn),
            _ => f.write_str("none"),
        }
    }
}

/// pgarrow's snapshots that changed table `$1` and record a mirror's position: their
/// provenance and ID.
const RECORDING: &str = "SELECT c.commit_extra_info, c.snapshot_id::text AS snapshot \
     FROM ducklake_snapshot_changes c \
     WHERE author = 'pgarrow' AND commit_extra_info LIKE '%\"replication_slot\"%' \
     AND string_to_array(changes_made, ',') && \
     ARRAY['inserted_into_table:' || $1, 'deleted_from_table:' || $1]";

/// Each snapshot of pgarrow that changed table `table_id` recording a mirror's position,
/// oldest first, with that position.
pub(super) async fn points(
    catalog: &mut Catalog,
    table_id: i64,
) -> Result<Vec<(i64, crate::live::MirrorPoint)>> {
    let rows = catalog
        .query(
            &format!("{RECORDING} ORDER BY c.snapshot_id"),
            &[Some(&table_id.to_string())],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let point = crate::live::MirrorPoint::from_provenance(r[0].as_deref()?)?;
            Some((r[1].as_deref()?.parse().ok()?, point))
        })
        .collect())
}

/// The last commit of table `table_id` that records a position.
pub(super) async fn last_point(catalog: &mut Catalog, table_id: i64) -> Result<Seen> {
    let rows = catalog
        .query(
            &format!("{RECORDING} ORDER BY c.snapshot_id DESC LIMIT 1"),
            &[Some(&table_id.to_string())],
        )
        .await?;
    let row = rows.first();
    Ok(Seen {
        point: row
            .and_then(|r| r[0].as_deref())
            .and_then(crate::live::MirrorPoint::from_provenance),
        snapshot: row
            .and_then(|r| r[1].as_deref())
            .and_then(|s| s.parse().ok()),
    })
}
