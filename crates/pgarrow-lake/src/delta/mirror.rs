//! A Delta table kept by a mirror: read as the mirror holds it (its live files, the rows
//! their deletion vectors delete, and the position its last commit reached, a `txn` action of
//! the slot's application ID), and one version per fold of changes. The version adds the new
//! rows' files; gives each file that loses rows a new deletion vector (every row it deletes,
//! all in one deletion vector file of the commit), as a `remove` of the file with its old
//! vector and an `add` with the new one; removes a file whose rows are all gone (all of them
//! for a truncate); and records the position reached. It is created only if no other writer
//! took its version: otherwise nothing is committed and the mirror reads the table again.

use std::collections::{BTreeMap, HashMap};

use pgarrow::io::{Format, Layout, Location, Manifest, ManifestFile, PartitionField, Transform};
use pgarrow::{Error, ErrorKind, Result};
use pgarrow_protocol::replication::Lsn;

use super::commit::DeltaLog;
use super::dv::{self, DvFile};
use super::log::{Action, Add, Remove, Snapshot, Txn};
use super::{DeltaTarget, now_ms, replay, schema};
use crate::cleanup::{Cleanup, blocking};
use crate::common::{IfExists, new_uuid};
use crate::live::{
    Constant, INDEX_HOME, LakeCommit, Laps, Live, LiveFile, MOVED, MirrorPoint, NewRows, Place,
    Plan,
};

/// The application ID of a mirror's `txn` actions: this, then the slot's name.
const APP_PREFIX: &str = "pgarrow-mirror:";

/// The `txn` action that records a mirror of `slot` at `lsn` (its version is the position).
pub(crate) fn txn(slot: &str, lsn: Lsn, now: i64) -> Txn {
    Txn {
        app_id: format!("{APP_PREFIX}{slot}"),
        version: i64::try_from(lsn.0).unwrap_or(i64::MAX),
        last_updated: Some(now),
    }
}

/// A Delta table a mirror commits to.
pub(crate) struct DeltaMirror {
    target: DeltaTarget,
    name: String,
    root: Location,
    log: Location,
    state: Snapshot,
    /// Each live file's `add` action, by the ID the mirror's index knows the file by.
    adds: HashMap<i64, Add>,
    next_id: i64,
    /// The table's partition columns (which its files leave out) and their types.
    partitions: Vec<Partition>,
}

/// A partition column of the table.
#[derive(Debug, Clone)]
struct Partition {
    name: String,
    /// The type its values are read back as.
    data_type: arrow_schema::DataType,
}

/// The partition columns of `state`'s table, typed by its schema.
///
/// # Errors
/// A partition column the schema lacks, or of a type pgarrow does not read back.
fn partitions_of(state: &Snapshot, name: &str) -> Result<Vec<Partition>> {
    let schema: serde_json::Value =
        serde_json::from_str(&state.metadata.schema_string).map_err(|e| {
            Error::from(ErrorKind::InvalidInput(format!(
                "Delta table {name}: its schema is not JSON: {e}"
            )))
        })?;
    let fields = schema::fields(&schema);
    state
        .metadata
        .partition_columns
        .iter()
        .map(|column| {
            let ty = fields
                .iter()
                .find(|f| &f.0 == column)
                .map(|f| f.1.clone())
                .unwrap_or_default();
            let data_type = super::read::partition_type(&ty).ok_or_else(|| {
                Error::from(ErrorKind::InvalidInput(format!(
                    "Delta table {name}: partition column \"{column}\" is of type {ty}, which \
                     pgarrow does not read back"
                )))
            })?;
            Ok(Partition {
                name: column.clone(),
                data_type,
            })
        })
        .collect()
}

impl DeltaMirror {
    /// The position the table records for each slot's mirror, at its newest version (which
    /// it returns); `None`: no table there.
    ///
    /// # Errors
    /// The storage's; a log that does not read.
    pub(crate) async fn position(target: &DeltaTarget) -> Result<Option<(Vec<MirrorPoint>, i64)>> {
        let log = Location::parse(&target.location, &target.storage)?.join("_delta_log");
        let Some(state) = blocking(move || replay::load(&log)).await? else {
            return Ok(None);
        };
        let points = state
            .txns
            .values()
            .filter_map(|t| {
                Some(MirrorPoint {
                    slot: t.app_id.strip_prefix(APP_PREFIX)?.to_owned(),
                    lsn: Lsn(u64::try_from(t.version).ok()?),
                    time: None,
                })
            })
            .collect();
        Ok(Some((points, state.version)))
    }

    /// Each version of the table whose rows a mirror's commit (or its export) brought to a
    /// position, with that position, oldest first: a version that recorded one, and the versions
    /// after it that changed no rows (maintenance) until the next; `None`: no table there. The
    /// versions whose commits the log no longer holds are left out.
    ///
    /// # Errors
    /// The storage's; a commit that does not read.
    pub(crate) async fn history(target: &DeltaTarget) -> Result<Option<Vec<(i64, MirrorPoint)>>> {
        let log = Location::parse(&target.location, &target.storage)?.join("_delta_log");
        blocking(move || {
            let listing = replay::list(&log)?;
            if listing.commits.is_empty() {
                return Ok(None);
            }
            let mut out = Vec::new();
            let mut current: HashMap<String, MirrorPoint> = HashMap::new();
            for &v in &listing.commits {
                let actions = super::log::read_commit(&log, v)?;
                let time = actions.iter().find_map(|a| match a {
                    Action::CommitInfo(info) => info
                        .get("pgarrow")
                        .and_then(MirrorPoint::from_value)
                        .and_then(|p| p.time),
                    _ => None,
                });
                let mut changed = false;
                for a in &actions {
                    match a {
                        Action::Txn(t) => {
                            if let (Some(slot), Ok(lsn)) =
                                (t.app_id.strip_prefix(APP_PREFIX), u64::try_from(t.version))
                            {
                                let point = MirrorPoint {
                                    slot: slot.to_owned(),
                                    lsn: Lsn(lsn),
                                    time,
                                };
                                current.insert(slot.to_owned(), point);
                            }
                        }
                        Action::Add(add) if add.data_change => changed = true,
                        Action::Remove(r) if r.data_change => changed = true,
                        _ => {}
                    }
                }
                let recorded = actions.iter().any(|a| matches!(a, Action::Txn(_)));
                if changed && !recorded {
                    // Rows changed by another writer: no position holds for them.
                    current.clear();
                }
                out.extend(current.values().map(|p| (v, p.clone())));
            }
            Ok(Some(out))
        })
        .await
    }

    /// The table at `target`, if there is one: as the mirror holds it (its index by `key`),
    /// and the position its mirror's last commit reached.
    ///
    /// # Errors
    /// A table pgarrow does not write (its protocol, constraints, column mapping); a partition
    /// column of a type pgarrow does not read back from the log; its files' and deletion
    /// vectors' errors.
    pub(crate) async fn open(
        target: &DeltaTarget,
        key: Vec<String>,
        whole: bool,
        memory: usize,
    ) -> Result<Option<(DeltaMirror, Live, Option<MirrorPoint>)>> {
        let name = target.location.clone();
        let root = Location::parse(&target.location, &target.storage)?;
        let log = root.join("_delta_log");
        let state = {
            let log = log.clone();
            blocking(move || replay::load(&log)).await?
        };
        let Some(state) = state else {
            return Ok(None);
        };
        super::writable(&state, IfExists::Append, &name)?;
        let partitions = partitions_of(&state, &name)?;
        let point = state
            .txns
            .values()
            .filter_map(|t| {
                let slot = t.app_id.strip_prefix(APP_PREFIX)?;
                Some(MirrorPoint {
                    slot: slot.to_owned(),
                    lsn: Lsn(u64::try_from(t.version).ok()?),
                    time: None,
                })
            })
            .max_by_key(|p| p.lsn);
        // IDs in the order the files were written (what compaction takes the newest
        // file's columns by).
        let mut by_time: Vec<&Add> = state.files.values().collect();
        by_time.sort_by_key(|a| a.modification_time);
        let adds: HashMap<i64, Add> = by_time
            .into_iter()
            .enumerate()
            .map(|(i, a)| (i as i64, a.clone()))
            .collect();
        let files = {
            let (adds, root, storage) = (adds.clone(), root.clone(), target.storage.clone());
            let parts = partitions.clone();
            blocking(move || {
                let mut files = Vec::with_capacity(adds.len());
                for (id, add) in adds {
                    files.push(live_file(id, &add, &root, &storage, &parts)?);
                }
                files.sort_by_key(|f| f.id);
                Ok(files)
            })
            .await?
        };
        let next_id = adds.len() as i64;
        let key = match whole {
            true => serde_json::from_str::<serde_json::Value>(&state.metadata.schema_string)
                .map(|s| schema::fields(&s).into_iter().map(|(n, ..)| n).collect())
                .unwrap_or_default(),
            false => key,
        };
        let place = Place {
            home: Some(root.join(INDEX_HOME)),
            memory,
        };
        let live = Live::load(key, whole, files, &place)
            .await
            .map_err(|e| e.context(format!("reading Delta table {name}")))?;
        Ok(Some((
            DeltaMirror {
                target: target.clone(),
                name,
                root,
                log,
                state,
                adds,
                next_id,
                partitions,
            },
            live,
            point,
        )))
    }

    /// The table's columns, in order.
    pub(crate) fn column_names(&self) -> Vec<String> {
        serde_json::from_str::<serde_json::Value>(&self.state.metadata.schema_string)
            .map(|s| schema::fields(&s).into_iter().map(|(n, ..)| n).collect())
            .unwrap_or_default()
    }

    /// Why the table cannot follow a source that dropped `dropped`, if it cannot: a Delta
    /// table without column mapping keeps a dropped column's values in its files, where a
    /// column added later under the same name would find them.
    pub(crate) fn refuses_drop(&self, dropped: &[String]) -> Option<String> {
        (!dropped.is_empty()).then(|| {
            format!(
                "column(s) {} were dropped, which a Delta table pgarrow writes (without column \
                 mapping) cannot follow",
                dropped
                    .iter()
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// Why the table cannot take `columns` (the source's) as they are, if it cannot: a type
    /// changed (widened), which a Delta table pgarrow writes does not follow in place.
    pub(crate) fn refuses_types(&self, columns: &arrow_schema::Schema) -> Option<String> {
        let theirs = serde_json::from_str(&self.state.metadata.schema_string).ok()?;
        // Columns the export would refuse are said so by the commit.
        let ours = schema::delta_schema(columns).ok()?;
        schema::retyped(&theirs, &ours.json).map(|what| format!("{what})"))
    }

    /// Commits `plan` (its rows as data files, its deletes as deletion vectors) with `point`
    /// as the next version, then brings `live` up to date.
    ///
    /// # Errors
    /// Another writer took the version ([`MOVED`]: the caller reads the table again and folds
    /// anew); a column the table cannot take; files that cannot be written.
    pub(crate) async fn commit(
        &mut self,
        live: &mut Live,
        plan: &Plan,
        point: Option<&MirrorPoint>,
    ) -> Result<LakeCommit> {
        let name = self.name.clone();
        let laps = Laps::new(&name);
        let now = now_ms();
        let mut actions = Vec::new();
        let mut cleanup = Cleanup::new();
        let (adds, kept) = self
            .actions(live, plan, point, now, &mut actions, &mut cleanup)
            .await?;
        let written_at = laps.lap("files written");
        let log = DeltaLog {
            log: &self.log,
            name: &name,
            checkpoint_interval: self.target.checkpoint_interval,
        };
        let Some(landed) = log.commit(Some(&self.state), actions).await? else {
            return Err(ErrorKind::Conflict(format!(
                "{MOVED}: another writer committed version {} of Delta table {name}",
                self.state.version + 1
            ))
            .into());
        };
        cleanup.keep();
        let committed_at = laps.lap("committed");
        let version = landed.version;
        self.state = landed.state;
        // The index and the files as the version left them.
        if plan.truncate {
            self.adds.clear();
        }
        live.committed(plan);
        self.adds.retain(|id, _| live.files.contains_key(id));
        for (id, add) in kept {
            self.adds.insert(id, add);
        }
        let files = adds.len();
        let mut written = Vec::with_capacity(files);
        for (add, _) in adds {
            let id = self.next_id;
            self.next_id += 1;
            written.push(live_file(
                id,
                &add,
                &self.root,
                &self.target.storage,
                &self.partitions,
            )?);
            self.adds.insert(id, add);
        }
        // Rows split by partition are not in the files in the order written.
        let in_order = self.target.options.sorted_by.is_empty() && self.partitions.is_empty();
        live.add_written(written, plan.rows_alone(), in_order)
            .await?;
        let indexed_at = laps.lap("index updated");
        Ok(LakeCommit {
            snapshot: version,
            files,
            write_s: written_at,
            index_s: indexed_at - committed_at,
        })
    }

    /// The version's actions, into `actions`, the files written for it into `written`: the new
    /// rows' `add`s (each with its rows), and the new `add` of each file that lost rows and
    /// kept some, by its ID.
    async fn actions(
        &self,
        live: &Live,
        plan: &Plan,
        point: Option<&MirrorPoint>,
        now: i64,
        actions: &mut Vec<Action>,
        cleanup: &mut Cleanup,
    ) -> Result<(Vec<(Add, u64)>, Vec<(i64, Add)>)> {
        let theirs: serde_json::Value = serde_json::from_str(&self.state.metadata.schema_string)
            .map_err(|e| {
                Error::from(ErrorKind::InvalidInput(format!(
                    "Delta table {}: its schema is not JSON: {e}",
                    self.name
                )))
            })?;
        // The rows, as data files, and the table's schema with the columns they add.
        let (adds, evolved, ntz) = match plan.new_rows() {
            Some(rows) => {
                let ours = schema::delta_schema(&rows.schema())
                    .map_err(|e| e.context(format!("Delta table {}", self.name)))?;
                let evolved = schema::evolve(&theirs, &ours.json, &self.name)?;
                let manifest = self.write_rows(rows).await?;
                for f in &manifest.files {
                    cleanup.track(self.root.join_path(&f.path));
                }
                let (root, m) = (self.root.clone(), manifest.clone());
                let columns: Vec<String> = self.partitions.iter().map(|p| p.name.clone()).collect();
                let types: BTreeMap<String, serde_json::Value> = schema::fields(&ours.json)
                    .into_iter()
                    .map(|(n, t, _)| (n, t))
                    .collect();
                let mut adds =
                    blocking(move || super::export::describe_files(&root, &m, &columns, &types))
                        .await?;
                for (add, _) in &mut adds {
                    add.data_change = !plan.rewrite;
                }
                (adds, evolved, ours.ntz)
            }
            None => (Vec::new(), None, false),
        };
        // The deletes: every file that loses rows gets a vector of all it deletes, or goes.
        let (changed, kept, has_vectors) = self.deletes(live, plan, now, cleanup).await?;
        // The protocol and metadata: deletion vectors enabled (once), new columns.
        let mut protocol = self.state.protocol.clone();
        let mut metadata = self.state.metadata.clone();
        if has_vectors {
            protocol = super::with_feature(&protocol, "deletionVectors");
            metadata
                .configuration
                .insert("delta.enableDeletionVectors".into(), "true".into());
        }
        if ntz {
            protocol = super::with_feature(&protocol, "timestampNtz");
        }
        if let Some(evolved) = evolved {
            metadata.schema_string = evolved.to_string();
        }
        let inserted: u64 = adds.iter().map(|(_, r)| r).sum();
        actions.push(Action::CommitInfo(commit_info(
            plan,
            point,
            now,
            adds.len(),
            inserted,
        )));
        if protocol != self.state.protocol {
            actions.push(Action::Protocol(protocol));
        }
        if metadata != self.state.metadata {
            actions.push(Action::MetaData(metadata));
        }
        if let Some(point) = point.filter(|_| !plan.rewrite) {
            actions.push(Action::Txn(txn(&point.slot, point.lsn, now)));
        }
        actions.extend(changed);
        actions.extend(adds.iter().map(|(a, _)| Action::Add(a.clone())));
        Ok((adds, kept))
    }

    /// The `remove` and `add` actions of each file that loses rows (all of them for a
    /// truncate): a new deletion vector of every row it deletes (all in one file of the
    /// commit, tracked by `cleanup`), or none when no row is left; the new `add` of each file
    /// that keeps rows, by its ID; whether a deletion vector was written.
    ///
    /// # Errors
    /// A file the table no longer has ([`MOVED`]); the vectors' file cannot be written.
    async fn deletes(
        &self,
        live: &Live,
        plan: &Plan,
        now: i64,
        cleanup: &mut Cleanup,
    ) -> Result<(Vec<Action>, Vec<(i64, Add)>, bool)> {
        let mut vectors = DvFile::new();
        let mut changed = Vec::new();
        let mut kept = Vec::new();
        let remove = |add: &Add| Remove {
            path: add.path.clone(),
            deletion_timestamp: Some(now),
            data_change: !plan.rewrite,
            extended_file_metadata: Some(true),
            partition_values: Some(add.partition_values.clone()),
            size: Some(add.size),
            deletion_vector: add.deletion_vector.clone(),
        };
        if plan.truncate {
            changed.extend(self.adds.values().map(|a| Action::Remove(remove(a))));
        } else {
            for id in &plan.ended {
                let Some(add) = self.adds.get(id) else {
                    return Err(ErrorKind::Conflict(format!(
                        "{MOVED}: file {id} is not the table's"
                    ))
                    .into());
                };
                changed.push(Action::Remove(remove(add)));
            }
            for (id, positions) in &plan.deletes {
                let (Some(add), Some(file)) = (self.adds.get(id), live.files.get(id)) else {
                    return Err(ErrorKind::Conflict(format!(
                        "{MOVED}: file {id} is not the table's"
                    ))
                    .into());
                };
                let mut all = file.deleted.clone();
                all.union_with(positions);
                changed.push(Action::Remove(remove(add)));
                if all.len() < file.rows {
                    let vector = vectors.push(&all)?;
                    let now_add = Add {
                        deletion_vector: Some(vector),
                        stats: add.stats.as_deref().map(wide),
                        data_change: true,
                        ..add.clone()
                    };
                    changed.push(Action::Add(now_add.clone()));
                    kept.push((*id, now_add));
                }
            }
        }
        let has_vectors = vectors.bytes.len() > 1;
        if has_vectors {
            let at = self.root.join_path(&vectors.name());
            cleanup
                .write(at, std::mem::take(&mut vectors.bytes))
                .await?;
        }
        Ok((changed, kept, has_vectors))
    }

    /// Writes `rows` as data files at the table's root.
    async fn write_rows(&self, rows: NewRows) -> Result<Manifest> {
        let mut layout = Layout::default()
            .with_max_file_rows(self.target.layout.max_file_rows)
            .with_max_file_bytes(self.target.layout.max_file_bytes)
            .with_partition_columns_kept(false);
        // By the table's partition columns, which the files leave out.
        layout.partitions = self
            .partitions
            .iter()
            .map(|p| PartitionField::new(p.name.clone(), Transform::Identity))
            .collect();
        let options = self
            .target
            .options
            .clone()
            .with_arrow_extensions(false)
            .with_forms(crate::common::value_forms(crate::common::Format::Delta));
        let prefix = format!("part-{}", new_uuid());
        let written =
            crate::live::write_rows(self.root.clone(), options, layout, rows, prefix).await?;
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

/// A file of the table as the mirror's index holds it: its rows (from its statistics, else its
/// footer) and the positions its deletion vector deletes.
fn live_file(
    id: i64,
    add: &Add,
    root: &Location,
    storage: &pgarrow::io::StorageOptions,
    partitions: &[Partition],
) -> Result<LiveFile> {
    let location = match add.path.contains("://") {
        true => Location::parse(&super::read::uri_decode(&add.path), storage)?,
        false => root.join_path(&super::read::uri_decode(&add.path)),
    };
    let rows = match add
        .stats
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|s| s.get("numRecords")?.as_u64())
    {
        Some(rows) => rows,
        None => location.parquet_metadata()?.0.file_metadata().num_rows() as u64,
    };
    let deleted = match &add.deletion_vector {
        Some(v) => dv::read(v, root, storage)
            .map_err(|e| e.context(format!("the deletion vector of {}", add.path)))?,
        None => Default::default(),
    };
    // An empty string is a NULL in Delta's partition values.
    let constants = partitions
        .iter()
        .map(|p| Constant {
            name: p.name.clone(),
            data_type: p.data_type.clone(),
            value: add
                .partition_values
                .get(&p.name)
                .cloned()
                .flatten()
                .filter(|v| !v.is_empty()),
        })
        .collect();
    Ok(LiveFile {
        id,
        location,
        rows,
        bytes: u64::try_from(add.size).unwrap_or(0),
        deleted,
        constants,
    })
}

/// A file's statistics once a deletion vector hides some of its rows: its bounds are wide
/// (`tightBounds: false`), its `numRecords` still the file's.
fn wide(stats: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(stats) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.insert("tightBounds".into(), serde_json::Value::Bool(false));
            serde_json::Value::Object(m).to_string()
        }
        _ => stats.to_owned(),
    }
}

impl crate::table::LakeTable for DeltaMirror {
    fn column_names(&self) -> Vec<String> {
        DeltaMirror::column_names(self)
    }

    fn refuses(&self, dropped: &[String], columns: &arrow_schema::Schema) -> Option<String> {
        self.refuses_drop(dropped)
            .or_else(|| self.refuses_types(columns))
    }

    fn commit<'a>(
        &'a mut self,
        live: &'a mut Live,
        plan: &'a Plan,
        point: Option<&'a MirrorPoint>,
    ) -> crate::table::Pending<'a, LakeCommit> {
        Box::pin(DeltaMirror::commit(self, live, plan, point))
    }
}

/// The `commitInfo` of a commit of `plan` at `now` (`adds` files of `inserted` rows):
/// compaction's `OPTIMIZE` (the same rows in fewer files, no data changed, so streaming
/// readers skip it), else a mirror's `STREAMING UPDATE`, each with pgarrow's provenance.
fn commit_info(
    plan: &Plan,
    point: Option<&MirrorPoint>,
    now: i64,
    adds: usize,
    inserted: u64,
) -> serde_json::Value {
    let provenance = |mut p: serde_json::Value| {
        if let Some(point) = point {
            point.record(&mut p);
        }
        p
    };
    match plan.rewrite {
        // Compaction: the same rows in fewer files, no data changed (dataChange false:
        // streaming readers skip it).
        true => serde_json::json!({
            "timestamp": now,
            "operation": "OPTIMIZE",
            "operationParameters": {"predicate": "[]", "zOrderBy": "[]"},
            "isBlindAppend": false,
            "engineInfo": format!("pgarrow/{}", env!("CARGO_PKG_VERSION")),
            "operationMetrics": {
                "numAddedFiles": adds.to_string(),
                "numRemovedFiles": plan.ended.len().to_string(),
                "numOutputRows": inserted.to_string(),
            },
            "pgarrow": provenance(serde_json::json!({
                "pgarrow": env!("CARGO_PKG_VERSION"),
                "compacted": true,
            })),
        }),
        false => serde_json::json!({
            "timestamp": now,
            "operation": "STREAMING UPDATE",
            "operationParameters": {
                "outputMode": "Update",
                "queryId": point.map(|p| p.slot.clone()),
                "epochId": point.map(|p| p.lsn.to_string()),
            },
            "isBlindAppend": false,
            "engineInfo": format!("pgarrow/{}", env!("CARGO_PKG_VERSION")),
            "operationMetrics": {
                "numAddedFiles": adds.to_string(),
                "numOutputRows": inserted.to_string(),
                "numDeletedRows": plan.deleted().to_string(),
            },
            "pgarrow": provenance(serde_json::json!({
                "pgarrow": env!("CARGO_PKG_VERSION"),
                "changes": plan.changes,
                "truncated": plan.truncate,
            })),
        }),
    }
}
