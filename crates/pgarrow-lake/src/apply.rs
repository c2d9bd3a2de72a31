//! A changes directory (as `pgarrow changes` writes it) applied to lake tables: what a mirror
//! does with the slot's stream, done later, elsewhere, from the files. [`apply_to_lake`] folds
//! each table's changes of each roll (the files one checkpoint made durable) into one commit,
//! as a mirror's: rows inserted or updated as data files, the rows they replace and the rows
//! deleted as the format's deletes, unsent TOASTed values from the lake table's rows. Each
//! commit records the slot and the roll's checkpoint, as a mirror's does; a rerun skips what
//! each table already holds, so each change is applied once, whenever a run stopped.
//!
//! The lake table must exist and record the slot: export the table into it in the slot's
//! snapshot first (`pgarrow export --replication-slot SLOT --create-slot`, into the lake
//! table), or let a mirror of the slot make it.
//!
//! ```no_run
//! # async fn run() -> pgarrow::Result<()> {
//! use pgarrow::io::Location;
//! use pgarrow_lake::apply::{LakeApplyOptions, apply_to_lake};
//! use pgarrow_lake::{DeltaTarget, LakeTarget};
//! let dir = Location::parse("s3://bucket/changes/orders/", &Default::default())?;
//! let target = LakeTarget::from(DeltaTarget::new("s3://bucket/delta/orders"));
//! let stats = apply_to_lake(&dir, &target, &LakeApplyOptions::default(), Default::default())
//!     .await?;
//! println!("{} rolls applied, up to {}", stats.rolls, stats.checkpoint_lsn);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::time::Instant;

use arrow_array::RecordBatch;
use pgarrow::io::{Input, InputOptions, Location};
use pgarrow::names::TableName;
use pgarrow::{Error, Hooks, Result};
use pgarrow_changes::{ApplyStats, META_DEFAULTS, META_KEY};
use pgarrow_protocol::replication::Lsn;

use crate::live::MirrorPoint;
use crate::mirror::{
    DeleteMode, MirrorOptions, MirrorStats, Mirrored, RowKey, SchemaChange, after, commit_table,
};
use crate::target::LakeTarget;

/// How [`apply_to_lake`] runs: [`LakeApplyOptions::default`], then `with_*`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LakeApplyOptions {
    /// A source table's key, `(table, columns)`, when its files do not name one (files of
    /// pgarrow before 0.x name their replica identity's columns; this overrides them).
    pub keys: Vec<(TableName, Vec<String>)>,
    /// Times a commit that found the table changed (compaction beside it) reads the table
    /// again and tries anew.
    pub retries: usize,
    /// How a commit takes rows out of the table's files (as a mirror's).
    pub deletes: DeleteMode,
    /// The memory its bookkeeping may take (as a mirror's).
    pub memory_limit: u64,
    /// Where changes past the budget are set aside until their commit (the system's
    /// temporary directory when `None`).
    pub spill_dir: Option<std::path::PathBuf>,
}

impl Default for LakeApplyOptions {
    fn default() -> Self {
        LakeApplyOptions {
            keys: Vec::new(),
            retries: 10,
            deletes: DeleteMode::MergeOnRead,
            memory_limit: crate::mirror::DEFAULT_MEMORY_LIMIT,
            spill_dir: None,
        }
    }
}

impl LakeApplyOptions {
    /// `table` (a source table) is keyed by `columns`.
    pub fn with_key(mut self, table: TableName, columns: Vec<String>) -> Self {
        self.keys.push((table, columns));
        self
    }

    /// Take rows out of the files this way.
    pub fn with_deletes(mut self, deletes: DeleteMode) -> Self {
        self.deletes = deletes;
        self
    }

    /// The memory its bookkeeping may take.
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Set changes past the budget aside under `dir`.
    pub fn with_spill_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.spill_dir = dir;
        self
    }
}

/// Applies the changes directory `dir` to lake tables: `target` itself when the changes are
/// of one table, else `target` named for each ([`LakeTarget::for_table`]), each table's changes
/// of a roll in one commit recording the slot and the roll's checkpoint. The hooks' progress
/// hears the statistics after each roll.
///
/// # Errors
/// A directory without a changes manifest; a lake table that does not exist or does not
/// record the slot (named, with how to make it); a table without a key; a schema change a
/// mirror does not follow; a column added with a default; the commits' errors. Each table is
/// then as its last commit left it.
pub async fn apply_to_lake(
    dir: &Location,
    target: &LakeTarget,
    options: &LakeApplyOptions,
    hooks: Hooks<'_, ApplyStats>,
) -> Result<ApplyStats> {
    let mut hooks = hooks;
    let started = Instant::now();
    let manifest = pgarrow_changes::read_manifest(dir)?;
    let rolls = pgarrow_changes::rolls(&manifest.files)?;
    let mut names: Vec<&str> = Vec::new();
    for f in &manifest.files {
        if !names.contains(&f.table.as_str()) {
            names.push(&f.table);
        }
    }
    let mut stats = ApplyStats::default();
    stats.slot = manifest.slot.clone();
    let mirror_options = MirrorOptions {
        retries: options.retries,
        deletes: options.deletes,
        memory_limit: options.memory_limit,
        spill_dir: options.spill_dir.clone(),
        ..MirrorOptions::new(manifest.slot.clone())
    };
    let mut tables: HashMap<String, Mirrored> = HashMap::new();
    for roll in &rolls {
        let mut applied = false;
        let mut counts = MirrorStats::default();
        // Each table's files of the roll, in order: one commit, or one per run of files with
        // the same columns (a schema change between them).
        let mut order: Vec<&str> = Vec::new();
        for f in &roll.files {
            if !order.contains(&f.table.as_str()) {
                order.push(&f.table);
            }
        }
        for table in order {
            let mut before: Option<Lsn> = None;
            for file in roll.files.iter().filter(|f| f.table == table) {
                if hooks.stop().is_stopped() {
                    return Err(pgarrow::ErrorKind::Cancelled.into());
                }
                let at = file
                    .path
                    .split('/')
                    .fold(dir.clone(), |at, part| at.join(part));
                let rows = read_file(&at).await?;
                if !tables.contains_key(table) {
                    let m = open(table, &rows, &names, target, options, &manifest.slot).await?;
                    tables.insert(table.to_owned(), m);
                }
                let (Some(m), Some(rows)) = (tables.get_mut(table), rows) else {
                    continue;
                };
                let batch = after(&rows, m.point.lsn)?;
                if batch.num_rows() == 0 {
                    continue;
                }
                if let Some(pending) = m.pending.schema()
                    && pending.fields() != batch.schema().fields()
                {
                    // New columns: what came before goes in under the old ones, up to the
                    // transaction that announced them (which must not also hold rows before).
                    let first: Lsn = file.first_commit_lsn.parse()?;
                    let last = before.unwrap_or(m.point.lsn);
                    if first.0 <= last.0 {
                        return Err(Error::usage(format!(
                            "a transaction changed rows of {table} and then its columns (at \
                             {first}): a lake table takes whole transactions under one set of \
                             columns"
                        )));
                    }
                    commit_table(
                        m,
                        first,
                        None,
                        &mirror_options,
                        &mut counts,
                        &mut Hooks::new(),
                    )
                    .await
                    .map_err(|e| e.context(format!("applying to {}", m.target.name())))?;
                }
                follow_columns(m, &batch).map_err(|e| e.context(format!("applying {at}")))?;
                crate::mirror::pend(m, batch, &mirror_options)?;
                before = Some(file.last_commit_lsn.parse()?);
                stats.files += 1;
            }
            let Some(m) = tables.get_mut(table) else {
                continue;
            };
            if m.pending.is_empty() {
                continue;
            }
            commit_table(
                m,
                roll.checkpoint,
                None,
                &mirror_options,
                &mut counts,
                &mut Hooks::new(),
            )
            .await
            .map_err(|e| e.context(format!("applying to {}", m.target.name())))?;
            applied = true;
            if !stats.tables.contains(&m.target.name()) {
                stats.tables.push(m.target.name());
            }
        }
        match applied {
            true => stats.rolls += 1,
            false => stats.rolls_skipped += 1,
        }
        stats.changes += counts.changes;
        stats.upserted += counts.inserted;
        stats.deleted += counts.deleted;
        stats.truncates += counts.truncates;
        stats.checkpoint_lsn = roll.checkpoint.to_string();
        stats.total = started.elapsed();
        hooks.report(&stats);
    }
    stats.total = started.elapsed();
    Ok(stats)
}

/// The rows of a changes file (`None`: none).
async fn read_file(at: &Location) -> Result<Option<RecordBatch>> {
    let at = at.clone();
    tokio::task::spawn_blocking(move || -> Result<Option<RecordBatch>> {
        let input = Input::open(std::slice::from_ref(&at), &InputOptions::default())?;
        let mut batches = Vec::new();
        for b in input {
            batches.push(b.map_err(|e| Error::from(pgarrow::io::Error::Input(e)))?);
        }
        let Some(first) = batches.first() else {
            return Ok(None);
        };
        // The rows with the schema metadata `pgarrow changes` gave the file (the key, the
        // columns with defaults), which a Parquet file keeps in its Arrow schema.
        let mut schema = first.schema();
        if schema.metadata().is_empty()
            && let Ok((meta, _)) = at.parquet_metadata()
        {
            let file = meta.file_metadata();
            if let Ok(s) = parquet::arrow::parquet_to_arrow_schema(
                file.schema_descr(),
                file.key_value_metadata(),
            ) {
                schema = std::sync::Arc::new(
                    schema.as_ref().clone().with_metadata(s.metadata().clone()),
                );
            }
        }
        arrow_select::concat::concat_batches(&schema, &batches)
            .map(Some)
            .map_err(|e| Error::invalid_input(format!("{at}: {e}")))
    })
    .await
    .map_err(|e| Error::internal(format!("reading a changes file: {e}")))?
}

/// The lake table of source table `quoted`, as a mirror holds it, at the position it records.
async fn open(
    quoted: &str,
    rows: &Option<RecordBatch>,
    names: &[&str],
    target: &LakeTarget,
    options: &LakeApplyOptions,
    slot: &str,
) -> Result<Mirrored> {
    let table = TableName::parse(quoted)?;
    let target = match names.len() {
        1 => target.clone(),
        _ => target.for_table(&table, "public"),
    };
    let given = options.keys.iter().find(|(t, _)| {
        t.name == table.name
            && t.schema.as_deref().unwrap_or("public")
                == table.schema.as_deref().unwrap_or("public")
    });
    let metadata = |name: &str| {
        rows.as_ref()
            .and_then(|r| r.schema().metadata().get(name).cloned())
    };
    let key: Vec<String> = match given {
        Some((_, key)) => key.clone(),
        None => metadata(META_KEY)
            .and_then(|k| serde_json::from_str(&k).ok())
            .unwrap_or_default(),
    };
    // Under REPLICA IDENTITY FULL every change names its row by all its values.
    let key = match (given, metadata(pgarrow_changes::META_REPLICA_IDENTITY)) {
        (None, Some(identity)) if identity == "full" => RowKey::WholeRow,
        _ => RowKey::Columns(key),
    };
    if key == RowKey::Columns(Vec::new()) {
        return Err(Error::usage(format!(
            "the changes of {quoted} do not name its key (files of an older pgarrow, or a \
             table without a replica identity): give it (--key TABLE=COLUMNS)"
        )));
    }
    let Some((lake, live, point)) = crate::table::open(&target, &key, options.memory_limit).await?
    else {
        return Err(Error::usage(format!(
            "there is no lake table {} for the changes of {quoted}: export the table into it \
             in the slot's snapshot first (pgarrow export --replication-slot {slot} \
             --create-slot, into the lake table), or let `pgarrow mirror --slot {slot}` make it",
            target.name()
        )));
    };
    let point = match point {
        Some(p) if p.slot == slot => p,
        Some(p) => {
            return Err(Error::usage(format!(
                "lake table {} follows replication slot {:?}, and the changes come from {slot:?}",
                target.name(),
                p.slot
            )));
        }
        None => {
            return Err(Error::usage(format!(
                "lake table {} records no replication slot, so the changes of {quoted} cannot be \
                 told apart from what it holds: export the table into it in the snapshot of \
                 slot {slot:?} (pgarrow export --replication-slot {slot})",
                target.name()
            )));
        }
    };
    // An apply exports nothing.
    let source = pgarrow::Source::Table(table.clone());
    let point = MirrorPoint {
        slot: point.slot,
        lsn: point.lsn,
        time: None,
    };
    Ok(Mirrored::new(
        table,
        source,
        target,
        key,
        (lake, live, point),
    ))
}

/// Takes the columns of `batch` (a file's changes) for the table: a mirror's schema changes
/// (columns added without a default, dropped, widened) follow; the rest are refused.
fn follow_columns(m: &mut Mirrored, batch: &RecordBatch) -> Result<()> {
    let schema = batch.schema();
    let columns = schema.fields().len() - pgarrow_changes::net::CHANGE_COLUMNS;
    let theirs: Vec<String> = schema.fields()[..columns]
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let ours = m.lake.column_names();
    if theirs != ours {
        let defaults: Option<Vec<String>> = schema
            .metadata()
            .get(META_DEFAULTS)
            .and_then(|d| serde_json::from_str(d).ok());
        let unknown: Vec<String>;
        let defaults = match &defaults {
            Some(d) => d.as_slice(),
            // Files that do not say which columns have defaults: any added column may.
            None => {
                unknown = theirs.clone();
                unknown.as_slice()
            }
        };
        // Files hold changes only: the rows a change needs again are not in them.
        let table_columns = arrow_schema::Schema::new(schema.fields()[..columns].to_vec());
        let change = SchemaChange::compare(m, &ours, &table_columns, defaults)
            .and_then(|c| match c.reexport {
                Some(why) => Err(why),
                None => Ok(c),
            })
            .map_err(|what| {
                Error::usage(format!(
                    "the columns of {} changed: {what}. The lake table holds every change \
                     before it; nothing after it was applied (a mirror exports such a table \
                     again; applying files cannot)",
                    m.table.quoted()
                ))
            })?;
        m.lake.evolve(&change.dropped_names);
    }
    m.columns = columns;
    Ok(())
}
