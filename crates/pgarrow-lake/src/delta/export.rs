//! An export into a Delta table: the table read, the export's files written under its root,
//! described as `add` actions, and committed as one version through [`DeltaLog`], onto
//! each newer version another writer committed while the change still fits it.

use std::collections::BTreeMap;

use pgarrow::incremental::IncrementalState;
use pgarrow::io::{DirTarget, Format, Layout, Location, Manifest, PartitionField, Transform};
use pgarrow::partition::PartitionOptions;
use pgarrow::{Error, ErrorKind, ExportOptions, Hooks, IntoConfig, Result, Source};

use super::commit::{DeltaLog, Landed};
use super::log::{self, Action, Add, Metadata, Protocol, Remove, Snapshot};
use super::schema::{self, DeltaSchema};
use super::{DeltaStats, DeltaTarget, now_ms, replay, stats, with_feature, writable};
use crate::cleanup::blocking;
use crate::common::{IfExists, LakeRun};
use crate::retry::Retries;
use crate::run::Exported;

/// Exports `source` into the Delta table `target` describes, over `partitions.connections`
/// connections reading one snapshot, and commits the files in one version.
///
/// # Errors
/// The table exists and [`IfExists::Fail`]; its columns differ from the export's (named); a
/// column of a type Delta cannot hold (named); a table feature pgarrow does not write
/// (named); a replace raced by another commit; the export's errors; storage errors. The
/// table is then as it was, and the files written are removed.
pub async fn export_to_delta(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    target: &DeltaTarget,
    hooks: Hooks<'_>,
) -> Result<DeltaStats> {
    if let Some(field) = target
        .layout
        .partitions
        .iter()
        .find(|f| f.transform != Transform::Identity)
    {
        return Err(ErrorKind::Usage(format!(
            "value partition {field}: Delta partitions by column values (--files-by COLUMN); \
             derive a month or a bucket as a column in the query"
        ))
        .into());
    }
    let table = Opened::read(target).await?;
    let files = table.files(target);
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
        table.previous.as_ref(),
    )
    .await?;
    let (ours, adds) = table.describe(&manifest, &arrow).await?;
    let rows = adds.iter().map(|(_, rows)| rows).sum();
    let paths = adds.iter().map(|(a, _)| a.path.clone()).collect();
    let (run, _) = crate::run::finish(run, rows, paths)?;
    let run_state: Option<serde_json::Value> = match &run {
        Some(r) => Some(serde_json::to_value(&r.state).map_err(|e| {
            Error::from(ErrorKind::Internal(format!("the incremental state: {e}")))
        })?),
        None => None,
    };
    let partition_columns = table.partition_columns();
    let plan = Plan {
        name: &table.name,
        if_exists: table.if_exists,
        ours: &ours,
        partition_columns: &partition_columns,
        adds: &adds,
        manifest: &manifest,
        run_state: run_state.as_ref(),
    };
    let mut tries = Retries::new(target.retries, format!("Delta table {}", table.name));
    let (landed, created, removed) = table
        .commit(&plan, target, &mut tries, run.as_ref())
        .await?;
    Ok(DeltaStats {
        export: written.keep(),
        version: landed.version,
        created,
        rows,
        files: adds.len(),
        removed,
        retried: tries.retried(),
        checkpointed: landed.checkpointed,
        run,
    })
}

/// The table an export goes into, as read before it: its state if it exists, the last
/// incremental run's state it holds, and what the export does to it.
struct Opened {
    name: String,
    root: Location,
    log: Location,
    existing: Option<Snapshot>,
    previous: Option<IncrementalState>,
    if_exists: IfExists,
    /// The export's layout: an append without partitions of its own writes files as the table
    /// is partitioned.
    layout: Layout,
}

impl Opened {
    /// The table `target` names, refused if it exists and the export may not add to it.
    async fn read(target: &DeltaTarget) -> Result<Opened> {
        let root = Location::parse(&target.location, &target.storage)?;
        let name = target.location.clone();
        let log = root.join("_delta_log");
        let existing = {
            let log = log.clone();
            blocking(move || replay::load(&log)).await?
        };
        let previous = match (&existing, &target.incremental) {
            (Some(table), Some(_)) => {
                let (log, version) = (log.clone(), table.version);
                blocking(move || last_state(&log, version)).await?
            }
            _ => None,
        };
        let if_exists = crate::run::if_exists(
            target.incremental.as_ref(),
            existing.is_some(),
            previous.is_some(),
            target.if_exists,
        )
        .map_err(|e| e.context(format!("Delta table {name}")))?;
        if let Some(table) = &existing {
            if if_exists == IfExists::Fail {
                return Err(ErrorKind::Usage(format!(
                    "Delta table {name} exists (version {}): append to it or replace it \
                     (--if-exists append, --if-exists replace)",
                    table.version
                ))
                .into());
            }
            writable(table, if_exists, &name)?;
        }
        let mut layout = target.layout.clone();
        if layout.partitions.is_empty()
            && if_exists == IfExists::Append
            && let Some(table) = &existing
        {
            layout.partitions = table
                .metadata
                .partition_columns
                .iter()
                .map(|c| PartitionField::new(c.clone(), Transform::Identity))
                .collect();
        }
        Ok(Opened {
            name,
            root,
            log,
            existing,
            previous,
            if_exists,
            layout: layout.with_partition_columns_kept(false),
        })
    }

    /// Where the export writes its files: under the table's root, named `part-UUID-...`.
    fn files(&self, target: &DeltaTarget) -> DirTarget {
        DirTarget::new(self.root.clone(), Format::Parquet)
            // Delta's schema has no JSON, UUID or geometry types: its readers are shown plain
            // text and binary, as the table's schema says.
            .with_options(
                target
                    .options
                    .clone()
                    .with_arrow_extensions(false)
                    .with_forms(crate::common::value_forms(crate::common::Format::Delta)),
            )
            .with_layout(self.layout.clone())
            .with_file_prefix(format!("part-{}", crate::common::new_uuid()))
    }

    fn partition_columns(&self) -> Vec<String> {
        let fields = &self.layout.partitions;
        fields.iter().map(|f| f.column.clone()).collect()
    }

    /// The export's schema as Delta's, and each file it wrote as an `add` (with its rows).
    async fn describe(
        &self,
        manifest: &Manifest,
        arrow: &arrow_schema::Schema,
    ) -> Result<(DeltaSchema, Vec<(Add, u64)>)> {
        let ours = schema::delta_schema(arrow)
            .map_err(|e| e.context(format!("Delta table {}", self.name)))?;
        // The table's schema holds the partition columns too; the files do not.
        let (root, manifest, columns) = (
            self.root.clone(),
            manifest.clone(),
            self.partition_columns(),
        );
        let types: BTreeMap<String, serde_json::Value> = schema::fields(&ours.json)
            .into_iter()
            .map(|(n, t, _)| (n, t))
            .collect();
        let adds = blocking(move || describe_files(&root, &manifest, &columns, &types)).await?;
        Ok((ours, adds))
    }

    /// Commits `plan` as the next version, onto each newer version another writer committed
    /// while `tries` allow and the plan still follows it (`run`'s check of an incremental
    /// run's state included): the version landed, whether it made the table, and the files it
    /// removed.
    async fn commit(
        &self,
        plan: &Plan<'_>,
        target: &DeltaTarget,
        tries: &mut Retries,
        run: Option<&LakeRun>,
    ) -> Result<(Landed, bool, usize)> {
        let log = DeltaLog {
            log: &self.log,
            name: &self.name,
            checkpoint_interval: target.checkpoint_interval,
        };
        let mut state = self.existing.clone();
        loop {
            let (version, actions, removed) = plan.actions(state.as_ref())?;
            if let Some(landed) = log.commit(state.as_ref(), actions).await? {
                return Ok((landed, state.is_none(), removed));
            }
            tries
                .lost(format_args!("another writer took version {version}"))
                .await?;
            let (newer, winners) = self.since(state.as_ref()).await?;
            plan.may_follow(state.as_ref(), newer.as_ref(), &winners)?;
            let theirs = winners
                .iter()
                .rev()
                .find_map(|(v, actions)| commit_state(actions, *v).transpose())
                .transpose()?;
            crate::run::check_race(run, self.previous.as_ref(), theirs.as_ref())
                .map_err(|e| e.context(format!("Delta table {}", self.name)))?;
            state = newer;
        }
    }

    /// The table now, and each version committed after `state` with its actions: what
    /// another writer committed while this export ran.
    async fn since(
        &self,
        state: Option<&Snapshot>,
    ) -> Result<(Option<Snapshot>, Vec<(i64, Vec<Action>)>)> {
        let (log, from) = (self.log.clone(), state.map_or(0, |s| s.version + 1));
        blocking(move || {
            let newer = replay::load(&log)?;
            let upto = newer.as_ref().map_or(-1, |s| s.version);
            let mut winners = Vec::new();
            for v in from..=upto {
                winners.push((v, log::read_commit(&log, v)?));
            }
            Ok((newer, winners))
        })
        .await
    }
}

/// The incremental state a commit's `commitInfo` carries (version `version`), if any.
fn commit_state(actions: &[Action], version: i64) -> Result<Option<IncrementalState>> {
    for a in actions {
        if let Action::CommitInfo(info) = a
            && let Some(state) = info.get("pgarrow").and_then(|p| p.get("incremental"))
        {
            let at = format!("version {version}");
            return crate::run::parse_state(&state.to_string(), &at).map(Some);
        }
    }
    Ok(None)
}

/// The state of the last incremental run committed to the table, up to `version`: the
/// commits read back from the newest (a log cleaned up past it ends the search).
fn last_state(log: &Location, version: i64) -> Result<Option<IncrementalState>> {
    for v in (0..=version).rev() {
        if !log.join(&log::commit_name(v)).exists()? {
            return Ok(None);
        }
        if let Some(state) = commit_state(&log::read_commit(log, v)?, v)? {
            return Ok(Some(state));
        }
    }
    Ok(None)
}

/// Each written file as an `add` action (with its rows), its statistics read from its footer.
pub(super) fn describe_files(
    root: &Location,
    manifest: &Manifest,
    partition_columns: &[String],
    types: &BTreeMap<String, serde_json::Value>,
) -> Result<Vec<(Add, u64)>> {
    let modified = now_ms();
    manifest
        .files
        .iter()
        .map(|f| {
            let mut values = BTreeMap::new();
            for column in partition_columns {
                let value = f
                    .values
                    .iter()
                    .find(|v| &v.name == column)
                    .and_then(|v| v.value.clone());
                let ty = types.get(column).and_then(|t| t.as_str()).unwrap_or("");
                values.insert(column.clone(), partition_value(column, ty, value)?);
            }
            let (metadata, _) = root.join_path(&f.path).parquet_metadata()?;
            Ok((
                Add {
                    path: log::uri_path(&f.path),
                    partition_values: values,
                    size: f.bytes as i64,
                    modification_time: modified,
                    data_change: true,
                    stats: Some(stats::stats_json(&metadata, f.rows)),
                    tags: None,
                    deletion_vector: None,
                    base_row_id: None,
                    default_row_commit_version: None,
                },
                f.rows,
            ))
        })
        .collect()
}

/// A partition value as Delta serializes it, from the layout's text of it.
fn partition_value(column: &str, ty: &str, value: Option<String>) -> Result<Option<String>> {
    let refuse = |why: &str| -> Error {
        ErrorKind::Usage(format!("partition column \"{column}\" ({ty}): {why}")).into()
    };
    let Some(value) = value else {
        return Ok(None);
    };
    match ty {
        "string" if value.is_empty() => Err(refuse(
            "Delta cannot tell an empty string from NULL in a partition value: partition by \
             another column, or map '' to something else in the query",
        )),
        "string" | "byte" | "short" | "integer" | "long" | "boolean" | "date" => Ok(Some(value)),
        t if t.starts_with("decimal") => Ok(Some(value)),
        // `YYYY-MM-DD HH:MM:SS[.ffffff]`: as the protocol spells a timestamp without time
        // zone, and in UTC with a `Z` (its recommended form) for one with.
        "timestamp_ntz" => Ok(Some(value)),
        "timestamp" => Ok(Some(format!("{}Z", value.replacen(' ', "T", 1)))),
        _ => Err(refuse(
            "Delta partitions by strings, numbers, booleans, dates and timestamps",
        )),
    }
}

/// One commit's intent, made into actions against whatever state the table is in.
struct Plan<'a> {
    name: &'a str,
    if_exists: IfExists,
    ours: &'a DeltaSchema,
    partition_columns: &'a [String],
    adds: &'a [(Add, u64)],
    manifest: &'a Manifest,
    /// An incremental run's state, carried in `commitInfo`.
    run_state: Option<&'a serde_json::Value>,
}

impl Plan<'_> {
    /// The version to commit, its actions, and the files it removes, on `state`.
    fn actions(&self, state: Option<&Snapshot>) -> Result<(i64, Vec<Action>, usize)> {
        let now = now_ms();
        let schema_string = self.ours.json.to_string();
        let mut actions = Vec::new();
        let replacing = state.is_some() && self.if_exists == IfExists::Replace;
        let operation = match (state, self.if_exists) {
            (None, _) => "CREATE TABLE AS SELECT",
            (Some(_), IfExists::Replace) => "CREATE OR REPLACE TABLE AS SELECT",
            _ => "WRITE",
        };
        let mode = match (state, self.if_exists) {
            (None, IfExists::Fail) => "ErrorIfExists",
            (_, IfExists::Replace) => "Overwrite",
            _ => "Append",
        };
        actions.push(Action::CommitInfo(serde_json::json!({
            "timestamp": now,
            "operation": operation,
            "operationParameters": {
                "mode": mode,
                "partitionBy": serde_json::to_string(self.partition_columns).unwrap_or_default(),
            },
            "isBlindAppend": state.is_some() && self.if_exists == IfExists::Append,
            "engineInfo": format!("pgarrow/{}", env!("CARGO_PKG_VERSION")),
            "operationMetrics": {
                "numFiles": self.adds.len().to_string(),
                "numOutputRows": self.adds.iter().map(|(_, r)| r).sum::<u64>().to_string(),
                "numOutputBytes": self.adds.iter().map(|(a, _)| a.size).sum::<i64>().to_string(),
            },
            "pgarrow": match self.run_state {
                Some(state) => {
                    let mut p = crate::common::provenance(self.manifest);
                    p["incremental"] = state.clone();
                    p
                }
                None => crate::common::provenance(self.manifest),
            },
        })));
        // An export in a replication slot's snapshot: where a mirror of the slot goes on from.
        if let (Some(slot), Some(lsn)) = (
            &self.manifest.replication_slot,
            self.manifest
                .wal_lsn
                .as_deref()
                .and_then(|l| l.parse().ok()),
        ) {
            actions.push(Action::Txn(super::mirror::txn(slot, lsn, now)));
        }
        let needed = self.protocol(state.map(|s| &s.protocol));
        let mut removed = 0;
        match state {
            None => {
                actions.push(Action::Protocol(needed));
                actions.push(Action::MetaData(Metadata {
                    id: crate::common::new_uuid(),
                    name: None,
                    description: None,
                    format: log::Format {
                        provider: "parquet".into(),
                        options: BTreeMap::new(),
                    },
                    schema_string,
                    partition_columns: self.partition_columns.to_vec(),
                    created_time: Some(now),
                    configuration: BTreeMap::new(),
                }));
            }
            Some(table) => {
                if needed != table.protocol {
                    actions.push(Action::Protocol(needed));
                }
                if replacing {
                    let metadata = Metadata {
                        schema_string,
                        partition_columns: self.partition_columns.to_vec(),
                        ..table.metadata.clone()
                    };
                    if metadata != table.metadata {
                        actions.push(Action::MetaData(metadata));
                    }
                    for file in table.files.values() {
                        removed += 1;
                        actions.push(Action::Remove(Remove {
                            path: file.path.clone(),
                            deletion_timestamp: Some(now),
                            data_change: true,
                            extended_file_metadata: Some(true),
                            partition_values: Some(file.partition_values.clone()),
                            size: Some(file.size),
                            deletion_vector: file.deletion_vector.clone(),
                        }));
                    }
                } else if let Some(evolved) = self.appendable(table)? {
                    actions.push(Action::MetaData(Metadata {
                        schema_string: evolved.to_string(),
                        ..table.metadata.clone()
                    }));
                }
            }
        }
        actions.extend(self.adds.iter().map(|(a, _)| Action::Add(a.clone())));
        let version = state.map_or(0, |s| s.version + 1);
        Ok((version, actions, removed))
    }

    /// The protocol the commit leaves: the table's (or the least a reader and a writer need,
    /// for a new table), with `timestampNtz` when a column needs it.
    fn protocol(&self, table: Option<&Protocol>) -> Protocol {
        let Some(base) = table.cloned() else {
            // A new table asks for nothing it does not need.
            let features = self.ours.ntz.then(|| vec!["timestampNtz".to_owned()]);
            return Protocol {
                min_reader_version: if self.ours.ntz { 3 } else { 1 },
                min_writer_version: if self.ours.ntz { 7 } else { 2 },
                reader_features: features.clone(),
                writer_features: features,
            };
        };
        match self.ours.ntz {
            true => with_feature(&base, "timestampNtz"),
            false => base,
        }
    }

    /// Refuses an append the table cannot take: a column of another type, other partitions,
    /// a NULL in a column that holds none; the table's schema with the export's new columns
    /// added when it has any.
    fn appendable(&self, table: &Snapshot) -> Result<Option<serde_json::Value>> {
        let theirs: serde_json::Value = serde_json::from_str(&table.metadata.schema_string)
            .map_err(|e| {
                Error::from(ErrorKind::InvalidInput(format!(
                    "Delta table {}: its schema is not JSON: {e}",
                    self.name
                )))
            })?;
        let evolved = schema::evolve(&theirs, &self.ours.json, self.name)?;
        if table.metadata.partition_columns != self.partition_columns {
            let shown = |c: &[String]| match c.is_empty() {
                true => "nothing".to_owned(),
                false => c.join(", "),
            };
            return Err(ErrorKind::Usage(format!(
                "Delta table {} is partitioned by {}, and the export by {}: leave out \
                 --files-by to write its own partitions",
                self.name,
                shown(&table.metadata.partition_columns),
                shown(self.partition_columns)
            ))
            .into());
        }
        for column in schema::required_columns(&theirs) {
            let nulls = self
                .adds
                .iter()
                .any(|(a, _)| match a.partition_values.get(&column) {
                    Some(v) => v.is_none(),
                    None => stats_nulls(a, &column).is_none_or(|n| n > 0),
                });
            if nulls {
                return Err(ErrorKind::Usage(format!(
                    "Delta table {}: column \"{column}\" holds no NULL (nullable: false), and \
                     the export has NULLs in it",
                    self.name
                ))
                .into());
            }
        }
        Ok(evolved)
    }

    /// Whether the commit may go on at the next version after `winners` (another writer's
    /// commits since `before` was read): an append past any that left the columns alone
    /// (checked again on `after`), a replace only past commits that touched no file and no
    /// column.
    fn may_follow(
        &self,
        before: Option<&Snapshot>,
        after: Option<&Snapshot>,
        winners: &[(i64, Vec<Action>)],
    ) -> Result<()> {
        let Some(after) = after else {
            return Ok(());
        };
        if before.is_none() && self.if_exists == IfExists::Fail {
            return Err(ErrorKind::Conflict(format!(
                "Delta table {}: another writer created it (version {}) while this export ran; \
                 nothing was committed (--if-exists append or replace to add to it)",
                self.name, after.version
            ))
            .into());
        }
        writable(after, self.if_exists, self.name)?;
        if self.if_exists == IfExists::Replace && before.is_some() {
            let touched = winners.iter().find(|(_, actions)| {
                actions.iter().any(|a| {
                    matches!(
                        a,
                        Action::Add(_)
                            | Action::Remove(_)
                            | Action::MetaData(_)
                            | Action::Protocol(_)
                    )
                })
            });
            if let Some((version, _)) = touched {
                return Err(ErrorKind::Conflict(format!(
                    "Delta table {}: version {version}, committed by another writer while this \
                     replace ran, changed its files or columns; the replace would drop rows it \
                     never saw, so nothing was committed (run it again)",
                    self.name
                ))
                .into());
            }
        }
        Ok(())
    }
}

/// A column's null count in an `add`'s statistics.
fn stats_nulls(add: &Add, column: &str) -> Option<i64> {
    let stats: serde_json::Value = serde_json::from_str(add.stats.as_deref()?).ok()?;
    stats.get("nullCount")?.get(column)?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field, Schema};

    fn table(version: i64) -> Snapshot {
        let ours =
            schema::delta_schema(&Schema::new(vec![Field::new("id", DataType::Int32, true)]))
                .unwrap();
        Snapshot {
            version,
            protocol: Protocol {
                min_reader_version: 1,
                min_writer_version: 2,
                reader_features: None,
                writer_features: None,
            },
            metadata: Metadata {
                id: "t".into(),
                name: None,
                description: None,
                format: log::Format {
                    provider: "parquet".into(),
                    options: BTreeMap::new(),
                },
                schema_string: ours.json.to_string(),
                partition_columns: vec![],
                created_time: None,
                configuration: BTreeMap::new(),
            },
            files: BTreeMap::new(),
            removed: BTreeMap::new(),
            txns: BTreeMap::new(),
        }
    }

    fn add(path: &str) -> Action {
        Action::Add(Add {
            path: path.into(),
            partition_values: BTreeMap::new(),
            size: 1,
            modification_time: 0,
            data_change: true,
            stats: Some("{\"numRecords\":1,\"nullCount\":{\"id\":0}}".into()),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
        })
    }

    #[test]
    fn an_append_follows_other_writers_and_a_replace_follows_none_that_touched_files() {
        let ours =
            schema::delta_schema(&Schema::new(vec![Field::new("id", DataType::Int32, true)]))
                .unwrap();
        let manifest = Manifest::new(Format::Parquet, None, None, None, vec![]);
        let plan = |if_exists| Plan {
            name: "t",
            if_exists,
            ours: &ours,
            partition_columns: &[],
            adds: &[],
            manifest: &manifest,
            run_state: None,
        };
        let (before, after) = (table(3), table(4));
        let appended = vec![(
            4,
            vec![Action::CommitInfo(serde_json::json!({})), add("x.parquet")],
        )];
        plan(IfExists::Append)
            .may_follow(Some(&before), Some(&after), &appended)
            .unwrap();
        let e = plan(IfExists::Replace)
            .may_follow(Some(&before), Some(&after), &appended)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("version 4") && e.contains("nothing was committed"),
            "{e}"
        );
        // A commit that touched no file (a transaction's progress) does not stop a replace.
        let txn = vec![(
            4,
            vec![Action::Txn(log::Txn {
                app_id: "a".into(),
                version: 1,
                last_updated: None,
            })],
        )];
        plan(IfExists::Replace)
            .may_follow(Some(&before), Some(&after), &txn)
            .unwrap();
        // A table another writer made while a refusing export ran.
        let e = plan(IfExists::Fail)
            .may_follow(None, Some(&table(0)), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("another writer created it"), "{e}");
        // The append's version and actions on the new state.
        let (version, actions, removed) = plan(IfExists::Append).actions(Some(&after)).unwrap();
        assert_eq!((version, removed), (5, 0));
        assert!(matches!(actions[0], Action::CommitInfo(_)));
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::MetaData(_) | Action::Protocol(_)))
        );
    }

    #[test]
    fn replacing_removes_every_file_and_a_naive_timestamp_asks_for_its_feature() {
        let arrow = Schema::new(vec![Field::new(
            "at",
            DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None),
            true,
        )]);
        let ours = schema::delta_schema(&arrow).unwrap();
        let manifest = Manifest::new(Format::Parquet, None, None, None, vec![]);
        let plan = Plan {
            name: "t",
            if_exists: IfExists::Replace,
            ours: &ours,
            partition_columns: &[],
            adds: &[],
            manifest: &manifest,
            run_state: None,
        };
        let mut state = table(7);
        for p in ["a.parquet", "b.parquet"] {
            if let Action::Add(a) = add(p) {
                state.files.insert((p.to_owned(), String::new()), a);
            }
        }
        let (version, actions, removed) = plan.actions(Some(&state)).unwrap();
        assert_eq!((version, removed), (8, 2));
        let protocol = actions.iter().find_map(|a| match a {
            Action::Protocol(p) => Some(p.clone()),
            _ => None,
        });
        let protocol = protocol.expect("the protocol is raised");
        assert_eq!(
            (protocol.min_reader_version, protocol.min_writer_version),
            (3, 7)
        );
        assert_eq!(
            protocol.writer_features.unwrap(),
            ["appendOnly", "invariants", "timestampNtz"]
        );
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::MetaData(m) if m.id == "t"))
        );
    }
}
