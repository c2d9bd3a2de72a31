//! Changes into files: one file set per table, rolled by rows, bytes or seconds, named by LSN
//! range, each written atomically, with a manifest of LSN ranges; or one Arrow IPC stream per
//! run of a table's batches on standard output.
//!
//! # Exactly once
//! The manifest (`_changes.json`) is the record of what is durable. A roll writes the manifest
//! first with the files about to be written as `pending`, then the files (each atomic), then
//! the manifest again with those files listed and `end_lsn` moved to the checkpoint they end
//! at, and only then confirms that position to the slot. A run that starts where a manifest is
//! removes its pending files (a roll that did not finish) and streams from `end_lsn` or the
//! slot's confirmed position, whichever is later: a transaction is in exactly one listed file
//! set whether the process died before, during or after a roll.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow_array::{Array, RecordBatch, UInt64Array};
use arrow_schema::SchemaRef;
use pgarrow_io::{Format, Output, Sink, SinkOptions};
use pgarrow_protocol::replication::Lsn;
use serde::{Deserialize, Serialize};

use crate::decode::COMMIT_LSN_COLUMN;
use crate::{ChangeEvent, ChangeOptions, ChangeStream, TableSchema};
use pgarrow::names::TableName;
use pgarrow::{Error, Hooks, IntoConfig, Result};
use pgarrow_io::Location;

/// The manifest's name in the output directory.
pub const CHANGES_MANIFEST: &str = "_changes.json";

/// Where changes go and when files roll: [`ChangeTarget::dir`] or [`ChangeTarget::stdout`],
/// then `with_*`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChangeTarget {
    /// A directory (local or object store), or `None` for standard output (an Arrow IPC
    /// stream per run of one table's batches of one schema).
    pub dir: Option<Location>,
    /// Parquet or Arrow IPC file (ignored for standard output).
    pub format: Format,
    /// Roll once this many rows are buffered.
    pub roll_rows: u64,
    /// Roll once this many bytes of values are buffered (also inside a large transaction: its
    /// files then stay pending until it ends).
    pub roll_bytes: usize,
    /// Roll at the first transaction boundary this long after the last roll.
    pub roll_interval: Duration,
    /// Compression, row groups.
    pub sink: SinkOptions,
}

impl ChangeTarget {
    /// Files in `dir`, with the default rolls (1,000,000 rows, 128 MiB, 60 s).
    pub fn dir(dir: impl Into<Location>, format: Format) -> ChangeTarget {
        ChangeTarget::new(Some(dir.into()), format)
    }

    /// Standard output, one Arrow IPC stream per run of a table's batches.
    pub fn stdout() -> ChangeTarget {
        ChangeTarget::new(None, Format::ArrowStream)
    }

    fn new(dir: Option<Location>, format: Format) -> ChangeTarget {
        ChangeTarget {
            dir,
            format,
            roll_rows: 1_000_000,
            roll_bytes: 128 << 20,
            roll_interval: Duration::from_secs(60),
            sink: SinkOptions::default(),
        }
    }

    /// Roll once this many rows are buffered.
    pub fn with_roll_rows(mut self, rows: u64) -> Self {
        self.roll_rows = rows;
        self
    }

    /// Roll once this many bytes of values are buffered.
    pub fn with_roll_bytes(mut self, bytes: usize) -> Self {
        self.roll_bytes = bytes;
        self
    }

    /// Roll at the first transaction boundary this long after the last roll.
    pub fn with_roll_interval(mut self, interval: Duration) -> Self {
        self.roll_interval = interval;
        self
    }

    /// Compression, row groups.
    pub fn with_sink(mut self, sink: SinkOptions) -> Self {
        self.sink = sink;
        self
    }
}

/// What a run of [`changes_to`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ChangesStats {
    /// Where it started (changes committed after this came).
    pub start_lsn: String,
    /// The last position made durable and confirmed.
    pub end_lsn: String,
    /// Changed rows written.
    pub rows: u64,
    /// Files written (or IPC streams on standard output).
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Tables that had changes.
    pub tables: Vec<String>,
    /// Each schema change seen: `table at LSN`.
    pub schema_changes: Vec<String>,
}

/// The manifest of a changes directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesManifest {
    /// Its layout's version (1).
    pub version: u32,
    /// The slot the changes come from.
    pub slot: String,
    /// `parquet` or `arrow`.
    pub format: String,
    /// Every change committed up to here is in `files`.
    pub end_lsn: String,
    /// Files of a roll that has not finished: not part of the set (removed by the next run).
    pub pending: Vec<String>,
    /// The files, in the order written.
    pub files: Vec<ChangesFile>,
}

/// One file of a changes directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesFile {
    /// The table (quoted, schema-qualified).
    pub table: String,
    /// Its path under the directory.
    pub path: String,
    /// The commit LSN of its first transaction.
    pub first_commit_lsn: String,
    /// The commit LSN of its last transaction.
    pub last_commit_lsn: String,
    /// The checkpoint its roll ended at (the manifest's `end_lsn` once it was listed): every
    /// file of one roll has the same.
    pub checkpoint_lsn: String,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A table's rows not yet written: runs of one schema.
#[derive(Default)]
struct Buffered {
    runs: Vec<(SchemaRef, Vec<RecordBatch>)>,
}

/// What [`changes_to`] reports while it runs ([`Hooks`]'s `P`): each shows as the line the
/// command line prints.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangesProgress {
    /// The values come as text though binary was asked for: why.
    TextValues {
        /// The reason (a type the server cannot send in binary, say).
        reason: String,
    },
    /// A table's schema changed at `lsn`: what follows is a new file set (in a directory) or
    /// a new IPC stream (on standard output).
    SchemaChanged {
        /// The table.
        table: TableName,
        /// Where its new schema begins.
        lsn: Lsn,
    },
    /// A roll was written, listed in the manifest and confirmed to the slot.
    Rolled {
        /// Files written.
        files: usize,
        /// Changed rows in them.
        rows: u64,
        /// The checkpoint they end at.
        lsn: Lsn,
    },
}

impl std::fmt::Display for ChangesProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangesProgress::TextValues { reason } => f.write_str(reason),
            ChangesProgress::SchemaChanged { table, lsn } => write!(
                f,
                "the schema of {} changed at {lsn}: what follows has the new schema",
                table.quoted()
            ),
            ChangesProgress::Rolled { files, rows, lsn } => {
                write!(f, "wrote {files} file(s), {rows} changed rows, up to {lsn}")
            }
        }
    }
}

/// Streams the changes of `options`' slot into `target` until the hooks' stop is set (the
/// stream ends at the next transaction boundary, after a last roll), the stream catches up
/// (with [`ChangeOptions::catch_up`]) or the server ends it; the hooks' progress hears each
/// [`ChangesProgress`].
///
/// # Errors
/// The stream's (see [`ChangeStream::start`]); an output that cannot be written; a directory
/// whose manifest names another slot or format.
pub async fn changes_to(
    config: impl IntoConfig,
    mut options: ChangeOptions,
    target: &ChangeTarget,
    hooks: Hooks<'_, ChangesProgress>,
) -> Result<ChangesStats> {
    let mut hooks = hooks;
    let mut manifest = match &target.dir {
        Some(dir) => Some(open_manifest(dir, &options.slot, target.format)?),
        None => None,
    };
    if let Some(m) = &manifest
        && !m.end_lsn.is_empty()
    {
        let end: Lsn = m.end_lsn.parse()?;
        options.start = Some(options.start.unwrap_or_default().max(end));
    }
    // A checkpoint is a roll: the stream cuts them where the rolls are due.
    options.flush_rows = target.roll_rows;
    options.flush_interval = target.roll_interval;
    let stream_hooks = Hooks::new().with_stop(hooks.stop().clone());
    let mut stream = ChangeStream::start_with(config, options, stream_hooks).await?;
    if let Some(reason) = stream.text_reason() {
        hooks.report(&ChangesProgress::TextValues {
            reason: reason.to_owned(),
        });
    }
    let mut stats = ChangesStats {
        start_lsn: stream.started_at().to_string(),
        end_lsn: stream.started_at().to_string(),
        ..ChangesStats::default()
    };
    let result = match (&target.dir, manifest.as_mut()) {
        (Some(dir), Some(manifest)) => {
            to_dir(&mut stream, dir, manifest, target, &mut stats, &mut hooks).await
        }
        _ => to_stdout(&mut stream, target, &mut stats, &mut hooks).await,
    };
    match result {
        Ok(()) => {
            stream.close().await?;
            Ok(stats)
        }
        Err(e) => Err(e),
    }
}

/// The manifest of `dir` (a new one when there is none), its unfinished roll undone.
fn open_manifest(dir: &Location, slot: &str, format: Format) -> Result<ChangesManifest> {
    dir.prepare_dir()?;
    let at = dir.join(CHANGES_MANIFEST);
    let format_name = format_name(format)?;
    if !at.exists()? {
        return Ok(ChangesManifest {
            version: 1,
            slot: slot.to_owned(),
            format: format_name.to_owned(),
            ..ChangesManifest::default()
        });
    }
    let bytes = at.read()?;
    let mut m: ChangesManifest = serde_json::from_slice(&bytes).map_err(|e| {
        Error::invalid_input(format!(
            "{CHANGES_MANIFEST} in the output directory is not a changes manifest: {e}"
        ))
    })?;
    if m.slot != slot {
        return Err(Error::usage(format!(
            "the output directory holds the changes of slot {:?}, not {slot:?}: use another \
             directory",
            m.slot
        )));
    }
    if m.format != format_name {
        return Err(Error::usage(format!(
            "the output directory holds {} files, not {format_name}",
            m.format
        )));
    }
    if !m.pending.is_empty() {
        for path in &m.pending {
            join_path(dir, path).remove()?;
        }
        m.pending.clear();
        dir.join(CHANGES_MANIFEST)
            .write_atomically(&manifest_json(&m)?)?;
    }
    Ok(m)
}

fn format_name(format: Format) -> Result<&'static str> {
    match format {
        Format::Parquet => Ok("parquet"),
        Format::ArrowFile => Ok("arrow"),
        _ => Err(Error::usage(
            "changes go to Parquet or Arrow IPC files in a directory, or to standard output",
        )),
    }
}

fn manifest_json(m: &ChangesManifest) -> Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(m)
        .map_err(|e| Error::internal(format!("cannot write the manifest: {e}")))?;
    text.push(b'\n');
    Ok(text)
}

/// `path` (`dir/file`, as the manifest lists it) under `dir`.
fn join_path(dir: &Location, path: &str) -> Location {
    path.split('/').fold(dir.clone(), |at, part| at.join(part))
}

/// A table's directory name: its schema and name, `/`, `%` and control characters escaped.
fn table_dir(table: &TableName) -> String {
    let raw = format!(
        "{}.{}",
        table.schema.as_deref().unwrap_or("public"),
        table.name
    );
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c == '/' || c == '%' || c == '\\' || c.is_control() {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A table's new schema: listed in the statistics and reported.
fn schema_changed(
    schema: &TableSchema,
    stats: &mut ChangesStats,
    hooks: &mut Hooks<'_, ChangesProgress>,
) {
    stats
        .schema_changes
        .push(format!("{} at {}", schema.table.quoted(), schema.lsn));
    hooks.report(&ChangesProgress::SchemaChanged {
        table: schema.table.clone(),
        lsn: schema.lsn,
    });
}

async fn to_dir(
    stream: &mut ChangeStream,
    dir: &Location,
    manifest: &mut ChangesManifest,
    target: &ChangeTarget,
    stats: &mut ChangesStats,
    hooks: &mut Hooks<'_, ChangesProgress>,
) -> Result<()> {
    let mut buffered: BTreeMap<String, (TableName, Buffered)> = BTreeMap::new();
    let mut bytes = 0usize;
    // Files of this roll already written (a large transaction): listed once the roll ends.
    let mut written: Vec<ChangesFile> = Vec::new();
    loop {
        let event = stream.next_event().await?;
        let end = event.is_none();
        match event {
            Some(ChangeEvent::Schema(s)) if s.changed => {
                schema_changed(&s, stats, hooks);
            }
            Some(ChangeEvent::Schema(_)) => {}
            Some(ChangeEvent::Rows(b)) => {
                bytes += b.batch.get_array_memory_size();
                let entry = buffered
                    .entry(b.table.quoted())
                    .or_insert_with(|| (b.table.clone(), Buffered::default()));
                match entry.1.runs.last_mut() {
                    Some((schema, batches)) if *schema == b.batch.schema() => {
                        batches.push(b.batch);
                    }
                    _ => entry.1.runs.push((b.batch.schema(), vec![b.batch])),
                }
                if bytes >= target.roll_bytes {
                    // Inside a transaction maybe: written now, listed when the roll ends at
                    // the next transaction boundary.
                    written.extend(write_files(dir, manifest, target, &mut buffered, stats)?);
                    bytes = 0;
                    stream.request_checkpoint();
                }
            }
            Some(ChangeEvent::Checkpoint(lsn)) => {
                written.extend(write_files(dir, manifest, target, &mut buffered, stats)?);
                for f in &mut written {
                    f.checkpoint_lsn = lsn.to_string();
                }
                let rolled = ChangesProgress::Rolled {
                    files: written.len(),
                    rows: written.iter().map(|f| f.rows).sum(),
                    lsn,
                };
                manifest.files.append(&mut written);
                manifest.pending.clear();
                manifest.end_lsn = lsn.to_string();
                dir.join(CHANGES_MANIFEST)
                    .write_atomically(&manifest_json(manifest)?)?;
                stream.confirm(lsn).await?;
                if !matches!(rolled, ChangesProgress::Rolled { files: 0, .. }) {
                    hooks.report(&rolled);
                }
                stats.end_lsn = lsn.to_string();
                bytes = 0;
            }
            None => {}
        }
        if end {
            return Ok(());
        }
    }
}

/// Writes every buffered run to its own file, the manifest listing them as pending first.
fn write_files(
    dir: &Location,
    manifest: &mut ChangesManifest,
    target: &ChangeTarget,
    buffered: &mut BTreeMap<String, (TableName, Buffered)>,
    stats: &mut ChangesStats,
) -> Result<Vec<ChangesFile>> {
    let ext = target.format.extension();
    let mut planned = Vec::new();
    for (quoted, (table, buf)) in std::mem::take(buffered) {
        let runs = buf.runs.len();
        for (i, (schema, batches)) in buf.runs.into_iter().enumerate() {
            let (first, last) = commit_range(&batches)?;
            let mut name = format!("{:016X}-{:016X}", first.0, last.0);
            if runs > 1 {
                name.push_str(&format!("_{i}"));
            }
            let mut path = format!("{}/{name}.{ext}", table_dir(&table));
            // Two rolls inside one large transaction: same range, a further suffix.
            let mut n = 1;
            while manifest.pending.contains(&path) || manifest.files.iter().any(|f| f.path == path)
            {
                path = format!("{}/{name}.{n}.{ext}", table_dir(&table));
                n += 1;
            }
            manifest.pending.push(path.clone());
            planned.push((quoted.clone(), path, schema, batches, first, last));
        }
    }
    if planned.is_empty() {
        return Ok(Vec::new());
    }
    dir.join(CHANGES_MANIFEST)
        .write_atomically(&manifest_json(manifest)?)?;
    let mut files = Vec::with_capacity(planned.len());
    for (table, path, schema, batches, first, last) in planned {
        let at = join_path(dir, &path);
        if let Some((parent, _)) = path.rsplit_once('/') {
            join_path(dir, parent).prepare_dir()?;
        }
        let mut sink = Sink::create(target.format, at.output(), &schema, &target.sink)
            .map_err(|e| Error::from(e).context(format!("writing {path}")))?;
        let mut rows = 0;
        for b in &batches {
            sink.write(b)?;
            rows += b.num_rows() as u64;
        }
        let bytes = sink.finish()?;
        stats.rows += rows;
        stats.files += 1;
        stats.bytes += bytes;
        if !stats.tables.contains(&table) {
            stats.tables.push(table.clone());
        }
        files.push(ChangesFile {
            table,
            path,
            first_commit_lsn: first.to_string(),
            last_commit_lsn: last.to_string(),
            checkpoint_lsn: String::new(),
            rows,
            bytes,
        });
    }
    Ok(files)
}

/// The first and last `_commit_lsn` of `batches` (in commit order).
fn commit_range(batches: &[RecordBatch]) -> Result<(Lsn, Lsn)> {
    let lsns = |b: &RecordBatch| -> Result<UInt64Array> {
        b.column_by_name(COMMIT_LSN_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
            .cloned()
            .ok_or_else(|| Error::internal("a change batch without _commit_lsn"))
    };
    let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
        return Err(Error::internal("an empty run of changes"));
    };
    let (first, last) = (lsns(first)?, lsns(last)?);
    if first.is_empty() || last.is_empty() {
        return Err(Error::internal("an empty change batch"));
    }
    Ok((Lsn(first.value(0)), Lsn(last.value(last.len() - 1))))
}

async fn to_stdout(
    stream: &mut ChangeStream,
    target: &ChangeTarget,
    stats: &mut ChangesStats,
    hooks: &mut Hooks<'_, ChangesProgress>,
) -> Result<()> {
    let mut current: Option<(SchemaRef, Sink)> = None;
    loop {
        match stream.next_event().await? {
            Some(ChangeEvent::Schema(s)) if s.changed => {
                schema_changed(&s, stats, hooks);
            }
            Some(ChangeEvent::Schema(_)) => {}
            Some(ChangeEvent::Rows(b)) => {
                let schema = b.batch.schema();
                if current.as_ref().is_none_or(|(s, _)| *s != schema) {
                    if let Some((_, sink)) = current.take() {
                        stats.bytes += sink.finish()?;
                    }
                    let sink =
                        Sink::create(Format::ArrowStream, Output::Stdout, &schema, &target.sink)?;
                    stats.files += 1;
                    current = Some((schema, sink));
                }
                let table = b.table.quoted();
                if !stats.tables.contains(&table) {
                    stats.tables.push(table);
                }
                stats.rows += b.batch.num_rows() as u64;
                if let Some((_, sink)) = current.as_mut() {
                    sink.write(&b.batch)?;
                }
            }
            Some(ChangeEvent::Checkpoint(lsn)) => {
                if let Some((_, sink)) = current.as_mut() {
                    sink.flush()?;
                }
                stream.confirm(lsn).await?;
                stats.end_lsn = lsn.to_string();
            }
            None => break,
        }
    }
    if let Some((_, sink)) = current.take() {
        stats.bytes += sink.finish()?;
    }
    Ok(())
}
