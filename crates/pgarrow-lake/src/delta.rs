//! Delta Lake tables: an export's Parquet files committed into a Delta table, its log
//! (`_delta_log`) beside the data, local or in any object store pgarrow writes to.
//!
//! The files go under the table's root (in `column=value/` directories when the table is
//! partitioned), written by pgarrow's partitioned export. Then one commit adds them: the
//! next version's JSON file in the log, created only if no other writer created it first
//! (a hard link locally; a conditional put in S3, GCS and Azure). It holds the export's
//! provenance (`commitInfo`), the table's protocol and metadata when new or replaced, a
//! `remove` for each file a replace drops, and an `add` for each new file with its
//! statistics. Readers see the table before the export or after it, never between. An
//! export that fails, or whose commit fails, removes its files; a process killed before the
//! commit leaves files no version names (Delta's `VACUUM` removes them).
//!
//! Two writers committing at once both land: the loser of a version reads what the winner
//! committed and tries the next one, up to [`DeltaTarget::retries`] times. An append retries
//! onto any other commit that left the columns as they were; a replace retries only past
//! commits that left the table's files and columns alone, and otherwise fails, naming the
//! version, with nothing committed.
//!
//! Every [`DeltaTarget::checkpoint_interval`] versions (or the table's own
//! `delta.checkpointInterval`) the writer of that version also writes a checkpoint: the
//! table's state in one Parquet file, so that readers need not replay the whole log.
//!
//! ```no_run
//! # async fn run() -> pgarrow::Result<()> {
//! use pgarrow_lake::{DeltaTarget, IfExists, export_to_delta};
//! let target = DeltaTarget::new("s3://bucket/lake/orders").with_if_exists(IfExists::Append);
//! let stats = export_to_delta(
//!     "postgresql://localhost/shop",
//!     "orders",
//!     &Default::default(),
//!     &pgarrow::partition::PartitionOptions::new(4),
//!     &target,
//!     Default::default(),
//! )
//! .await?;
//! println!("version {}: {} rows", stats.version, stats.rows);
//! # Ok(())
//! # }
//! ```

mod checkpoint;
pub(crate) mod dv;
pub(crate) mod expire;
mod log;
pub(crate) mod mirror;
pub(crate) mod read;
mod replay;
mod schema;
mod stats;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use pgarrow::io::{
    DirTarget, Format, Layout, Location, Manifest, PartitionField, SinkOptions, StorageOptions,
    Transform,
};
use pgarrow::partition::{PartitionOptions, PartitionedStats};
use pgarrow::{Error, ErrorKind, ExportOptions, Hooks, IntoConfig, Result, Source};

use crate::common::IfExists;
use crate::retry::Retries;
use log::{Action, Add, Metadata, Protocol, Remove, Snapshot};
use pgarrow::incremental::{IncrementalOptions, IncrementalState};
pub use read::open_delta;
use schema::DeltaSchema;

/// The writer features pgarrow keeps when it commits to a table that has them: those that ask
/// nothing of a writer adding files (or that pgarrow checks for in the table before it writes).
const WRITER_FEATURES: &[&str] = &[
    "appendOnly",
    "invariants",
    "checkConstraints",
    "changeDataFeed",
    "columnMapping",
    "deletionVectors",
    "timestampNtz",
    "domainMetadata",
    "vacuumProtocolCheck",
    "typeWidening",
    "typeWidening-preview",
    "generatedColumns",
    "identityColumns",
    "allowColumnDefaults",
];

/// Checkpoints every this many versions, unless the table says otherwise.
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 10;

/// Where and how an export goes into a Delta table: [`DeltaTarget::new`], then `with_*`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeltaTarget {
    /// The table's root: a local directory or an object store URL.
    pub location: String,
    /// When the table exists.
    pub if_exists: IfExists,
    /// Credentials and settings for an object store.
    pub storage: StorageOptions,
    /// The data files' Parquet options.
    pub options: SinkOptions,
    /// Where files roll over (`max_file_rows`, `max_file_bytes`), and the table's partition
    /// columns (`partitions`: identity fields only, as Delta partitions by column values; by
    /// default an existing table's own).
    pub layout: Layout,
    /// Times a commit that lost its version to another writer tries the next one.
    pub retries: usize,
    /// A checkpoint every this many versions, unless the table's `delta.checkpointInterval`
    /// says otherwise (0: none).
    pub checkpoint_interval: u64,
    /// An incremental run of a table instead of the export's source: what changed since the
    /// run whose state the table's last such commit carries (in its `commitInfo`), appended
    /// with this run's state in the same version.
    pub incremental: Option<IncrementalOptions>,
}

impl DeltaTarget {
    /// The table at `location` (a directory or an object store URL).
    pub fn new(location: impl Into<String>) -> Self {
        DeltaTarget {
            location: location.into(),
            if_exists: IfExists::Fail,
            storage: StorageOptions::default(),
            options: SinkOptions::default(),
            layout: Layout::default(),
            retries: 100,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            incremental: None,
        }
    }

    /// An incremental run of `options.table` (the export's source is then ignored).
    pub fn with_incremental(mut self, options: IncrementalOptions) -> Self {
        self.incremental = Some(options);
        self
    }

    crate::common::target_setters!();

    /// A checkpoint every `versions` versions (0: none).
    pub fn with_checkpoint_interval(mut self, versions: u64) -> Self {
        self.checkpoint_interval = versions;
        self
    }
}

/// What an export into a Delta table did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeltaStats {
    /// The export's own statistics.
    pub export: PartitionedStats,
    /// The version that made the rows visible.
    pub version: i64,
    /// Whether the commit made the table.
    pub created: bool,
    /// Rows added.
    pub rows: u64,
    /// Data files added.
    pub files: usize,
    /// Data files a replace removed from the table.
    pub removed: usize,
    /// Commits tried again at a later version after another writer took theirs.
    pub retried: usize,
    /// Whether this export wrote the version's checkpoint.
    pub checkpointed: bool,
    /// An incremental run's state and kind.
    pub run: Option<crate::common::LakeRun>,
}

/// Runs `f` (blocking storage calls) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::from(ErrorKind::Internal(format!("a storage task: {e}"))))?
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

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
    // An append without partitions of its own writes files as the table is partitioned.
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
    let layout = layout.with_partition_columns_kept(false);
    let files = DirTarget::new(root.clone(), Format::Parquet)
        // Delta's schema has no JSON, UUID or geometry types: its readers are shown plain text
        // and binary, as the table's schema says.
        .with_options(
            target
                .options
                .clone()
                .with_arrow_extensions(false)
                .with_forms(crate::common::value_forms(crate::common::Format::Delta)),
        )
        .with_layout(layout.clone())
        .with_file_prefix(format!("part-{}", crate::common::new_uuid()));
    let run = target.incremental.as_ref().map(|r| (r, previous.as_ref()));
    let (written, run) =
        crate::run::export(config, source, options, partitions, &files, hooks, run).await?;
    let manifest = written.manifest().clone();
    let arrow = manifest.schema.clone().ok_or_else(|| {
        Error::from(ErrorKind::Internal(
            "the export's manifest has no schema".into(),
        ))
    })?;
    let ours =
        schema::delta_schema(&arrow).map_err(|e| e.context(format!("Delta table {name}")))?;
    let partition_columns: Vec<String> =
        layout.partitions.iter().map(|f| f.column.clone()).collect();
    // The table's schema holds the partition columns too; the files do not.
    let adds = {
        let (root, manifest, columns) = (root.clone(), manifest.clone(), partition_columns.clone());
        let types: BTreeMap<String, serde_json::Value> = schema::fields(&ours.json)
            .into_iter()
            .map(|(n, t, _)| (n, t))
            .collect();
        blocking(move || describe_files(&root, &manifest, &columns, &types)).await?
    };
    let rows = adds.iter().map(|(_, rows)| rows).sum();
    let paths = adds.iter().map(|(a, _)| a.path.clone()).collect();
    let (run, _) = crate::run::finish(run, rows, paths)?;
    let run_state: Option<serde_json::Value> = match &run {
        Some(r) => Some(serde_json::to_value(&r.state).map_err(|e| {
            Error::from(ErrorKind::Internal(format!("the incremental state: {e}")))
        })?),
        None => None,
    };
    let plan = Plan {
        name: &name,
        if_exists,
        ours: &ours,
        partition_columns: &partition_columns,
        adds: &adds,
        manifest: &manifest,
        run_state: run_state.as_ref(),
    };
    let mut state = existing;
    let mut tries = Retries::new(target.retries, format!("Delta table {name}"));
    let (version, actions, created, removed) = loop {
        let (version, actions, removed) = plan.actions(state.as_ref())?;
        let committed = {
            let (log, actions) = (log.clone(), actions.clone());
            blocking(move || log::commit(&log, version, &actions)).await?
        };
        if committed {
            break (version, actions, state.is_none(), removed);
        }
        tries
            .lost(format_args!("another writer took version {version}"))
            .await?;
        // Another writer took the version: read what it (and any after it) committed.
        let (log2, from) = (log.clone(), state.as_ref().map_or(0, |s| s.version + 1));
        let (newer, winners) = blocking(move || {
            let newer = replay::load(&log2)?;
            let upto = newer.as_ref().map_or(-1, |s| s.version);
            let mut winners = Vec::new();
            for v in from..=upto {
                winners.push((v, log::read_commit(&log2, v)?));
            }
            Ok((newer, winners))
        })
        .await?;
        plan.may_follow(state.as_ref(), newer.as_ref(), &winners)?;
        let theirs = winners
            .iter()
            .rev()
            .find_map(|(v, actions)| commit_state(actions, *v).transpose())
            .transpose()?;
        crate::run::check_race(run.as_ref(), previous.as_ref(), theirs.as_ref())
            .map_err(|e| e.context(format!("Delta table {name}")))?;
        state = newer;
    };
    let interval = state
        .as_ref()
        .and_then(|s| s.metadata.configuration.get("delta.checkpointInterval"))
        .or_else(|| {
            actions.iter().find_map(|a| match a {
                Action::MetaData(m) => m.configuration.get("delta.checkpointInterval"),
                _ => None,
            })
        })
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(target.checkpoint_interval);
    let mut checkpointed = false;
    if interval > 0 && version > 0 && (version as u64).is_multiple_of(interval) {
        let after = Snapshot::apply(state, version, actions, &log)?;
        let log = log.clone();
        // The commit has landed: a checkpoint that cannot be written leaves the table
        // correct (readers replay the commits), so it is reported, not an error.
        match blocking(move || write_checkpoint(&log, &after)).await {
            Ok(()) => checkpointed = true,
            Err(e) => {
                // `checkpointed` says so; the log says why.
                ::log::warn!(
                    "Delta table {name}: no checkpoint at version {version} (the commit stands; \
                     readers replay the log): {e}"
                )
            }
        }
    }
    Ok(DeltaStats {
        export: written.keep(),
        version,
        created,
        rows,
        files: adds.len(),
        removed,
        retried: tries.retried(),
        checkpointed,
        run,
    })
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

/// Refuses a table whose protocol asks of a writer what pgarrow does not do, naming it.
fn writable(table: &Snapshot, if_exists: IfExists, name: &str) -> Result<()> {
    let refuse = |what: String| -> Error {
        ErrorKind::InvalidInput(format!("Delta table {name}: {what}; nothing was written")).into()
    };
    let p = &table.protocol;
    if p.min_writer_version > 7 || p.min_reader_version > 3 {
        return Err(refuse(format!(
            "it needs Delta reader version {} and writer version {}, past what pgarrow writes",
            p.min_reader_version, p.min_writer_version
        )));
    }
    if let Some(unknown) = p
        .writer_features
        .iter()
        .flatten()
        .find(|f| !WRITER_FEATURES.contains(&f.as_str()))
    {
        return Err(refuse(format!(
            "it has the writer feature {unknown:?}, which pgarrow does not write"
        )));
    }
    let config = &table.metadata.configuration;
    if let Some(key) = config.keys().find(|k| k.starts_with("delta.constraints.")) {
        return Err(refuse(format!(
            "it has the CHECK constraint {key:?}, which pgarrow does not evaluate"
        )));
    }
    if config
        .get("delta.columnMapping.mode")
        .is_some_and(|m| m != "none")
    {
        return Err(refuse(
            "it maps columns by ID or name (delta.columnMapping.mode), which pgarrow does not \
             write"
                .into(),
        ));
    }
    if if_exists == IfExists::Replace && config.get("delta.appendOnly").is_some_and(|v| v == "true")
    {
        return Err(refuse(
            "it is append-only (delta.appendOnly): it cannot be replaced".into(),
        ));
    }
    let schema: serde_json::Value = serde_json::from_str(&table.metadata.schema_string)
        .map_err(|e| refuse(format!("its schema is not JSON: {e}")))?;
    let text = schema.to_string();
    for (key, what) in [
        ("delta.invariants", "a column invariant"),
        ("delta.generationExpression", "a generated column"),
        ("delta.identity.", "an identity column"),
        ("CURRENT_DEFAULT", "a column default"),
    ] {
        if text.contains(&format!("\"{key}")) {
            return Err(refuse(format!(
                "it has {what}, which pgarrow does not write"
            )));
        }
    }
    Ok(())
}

/// Writes the checkpoint of `state` and points `_last_checkpoint` at it.
pub(crate) fn write_checkpoint(log: &Location, state: &Snapshot) -> Result<()> {
    let retention = state
        .metadata
        .configuration
        .get("delta.deletedFileRetentionDuration")
        .and_then(|v| interval_ms(v))
        .unwrap_or(7 * 86_400_000);
    let actions = state.checkpoint_actions(now_ms() - retention);
    let adds = actions
        .iter()
        .filter(|a| matches!(a, Action::Add(_)))
        .count();
    let bytes = checkpoint::write(&actions)?;
    let name = format!("{:020}.checkpoint.parquet", state.version);
    // Another writer's checkpoint of the same version holds the same state.
    log.join(&name).create_new(&bytes)?;
    let last = log.join("_last_checkpoint");
    let newer = last
        .read()
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("version")?.as_i64())
        .is_some_and(|v| v > state.version);
    if !newer {
        let pointer = serde_json::json!({
            "version": state.version,
            "size": actions.len(),
            "sizeInBytes": bytes.len(),
            "numOfAddFiles": adds,
        });
        last.write_atomically(pointer.to_string().as_bytes())?;
    }
    Ok(())
}

/// `interval 7 days` (and hours, minutes, weeks) in milliseconds.
fn interval_ms(text: &str) -> Option<i64> {
    let mut words = text.split_whitespace();
    if words.next()? != "interval" {
        return None;
    }
    let n: i64 = words.next()?.parse().ok()?;
    let unit = match words.next()?.trim_end_matches('s') {
        "week" => 7 * 86_400_000,
        "day" => 86_400_000,
        "hour" => 3_600_000,
        "minute" => 60_000,
        "second" => 1000,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// Each written file as an `add` action (with its rows), its statistics read from its footer.
fn describe_files(
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

/// `base` with `feature` (a reader and writer feature) among its table features: reader
/// version 3 and writer version 7, listing every feature the table's older versions implied.
pub(crate) fn with_feature(base: &Protocol, feature: &str) -> Protocol {
    let has = |list: &Option<Vec<String>>| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|f| f == feature))
    };
    if has(&base.reader_features) && has(&base.writer_features) {
        return base.clone();
    }
    let mut writer: Vec<String> = base.writer_features.clone().unwrap_or_else(|| {
        let implied: &[&str] = match base.min_writer_version {
            0 | 1 => &[],
            2 => &["appendOnly", "invariants"],
            3 => &["appendOnly", "invariants", "checkConstraints"],
            4 => &[
                "appendOnly",
                "invariants",
                "checkConstraints",
                "changeDataFeed",
                "generatedColumns",
            ],
            5 => &[
                "appendOnly",
                "invariants",
                "checkConstraints",
                "changeDataFeed",
                "generatedColumns",
                "columnMapping",
            ],
            _ => &[
                "appendOnly",
                "invariants",
                "checkConstraints",
                "changeDataFeed",
                "generatedColumns",
                "columnMapping",
                "identityColumns",
            ],
        };
        implied.iter().map(|s| (*s).to_owned()).collect()
    });
    let mut reader: Vec<String> =
        base.reader_features
            .clone()
            .unwrap_or_else(|| match base.min_reader_version {
                2 => vec!["columnMapping".to_owned()],
                _ => Vec::new(),
            });
    for list in [&mut writer, &mut reader] {
        if !list.iter().any(|f| f == feature) {
            list.push(feature.to_owned());
        }
    }
    Protocol {
        min_reader_version: 3,
        min_writer_version: 7,
        reader_features: Some(reader),
        writer_features: Some(writer),
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
            actions.push(Action::Txn(mirror::txn(slot, lsn, now)));
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
        assert_eq!(interval_ms("interval 2 days"), Some(2 * 86_400_000));
        assert_eq!(interval_ms("7 days"), None);
    }
}
