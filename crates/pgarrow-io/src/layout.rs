//! Files laid out the way readers query them: value partitions written as Hive-style
//! directories (`l_shipdate_day=2026-11-25/part-00000-00000.parquet`), and files rolled at a
//! number of rows or a size, each a complete file.
//!
//! A [`LayoutWriter`] takes the batches of one export (or one part of it), splits each batch by
//! its rows' partition values, and writes every partition's rows into that partition's open
//! file. However many partitions a batch touches, the memory held stays within the writer's
//! limit: every open file costs its output buffer and its row group in progress, and when they
//! add up past the limit the least recently used files are finished (a partition seen again
//! later gets a new file). Files are written as every sink writes them (a temporary name,
//! renamed when complete); a writer dropped unfinished removes the files it completed.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Int32Array, RecordBatch, StringArray};
//! use arrow_schema::{DataType, Field, Schema};
//! use pgarrow_io::{Format, Layout, LayoutWriter, Location, SinkOptions};
//!
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("region", DataType::Utf8, true),
//!     Field::new("n", DataType::Int32, true),
//! ]));
//! let batch = RecordBatch::try_new(schema.clone(), vec![
//!     Arc::new(StringArray::from(vec!["eu", "us", "eu"])),
//!     Arc::new(Int32Array::from(vec![1, 2, 3])),
//! ])?;
//! let dir = tempfile::tempdir()?;
//! let layout = Layout::default().with_partition("region".parse()?);
//! let mut writer = LayoutWriter::new(
//!     Location::from(dir.path()), Format::Parquet, &SinkOptions::default(), &schema, &layout,
//!     "part-00000", 64 << 20,
//! )?;
//! writer.write(&batch)?;
//! let files = writer.finish()?;
//! assert_eq!(files.len(), 2);
//! assert_eq!(files[0].path, "region=eu/part-00000-00000.parquet");
//! assert_eq!(files[0].rows, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod transform;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::{Error, Format, Location, Result, Sink, SinkOptions};
use transform::Resolved;
pub use transform::{HIVE_NULL, PartitionField, Transform};

/// How an export's files are laid out: value partitions, and where files roll over;
/// [`Layout::default`] (one file, no partitions), then `with_*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Layout {
    /// The value partitions, outermost directory first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionField>,
    /// A file ends after this many rows, and the next begins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_rows: Option<u64>,
    /// A file ends before it would pass this many bytes (a row alone larger than that gets
    /// a file of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_bytes: Option<u64>,
    /// The columns of identity partitions stay in the files too (a lake table's readers
    /// read the values from the files, not from the directory names, which are then only
    /// names); by default they live in the directory names alone, as Hive lays them out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_partition_columns: bool,
}

impl Layout {
    /// Adds a value partition (an inner directory level after those given before).
    pub fn with_partition(mut self, field: PartitionField) -> Self {
        self.partitions.push(field);
        self
    }

    /// The value partitions (replacing any given before).
    pub fn with_partitions(mut self, fields: Vec<PartitionField>) -> Self {
        self.partitions = fields;
        self
    }

    /// Rows per file, at most.
    pub fn with_max_file_rows(mut self, rows: Option<u64>) -> Self {
        self.max_file_rows = rows;
        self
    }

    /// Bytes per file, at most.
    pub fn with_max_file_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_file_bytes = bytes;
        self
    }

    /// Whether identity partitions' columns stay in the files.
    pub fn with_partition_columns_kept(mut self, keep: bool) -> Self {
        self.keep_partition_columns = keep;
        self
    }

    /// Whether it asks for anything beyond one file.
    pub fn is_plain(&self) -> bool {
        self.partitions.is_empty() && self.max_file_rows.is_none() && self.max_file_bytes.is_none()
    }

    /// Checks the limits and that every partition applies to `schema`, naming what does not.
    ///
    /// # Errors
    /// [`Error::Invalid`]: a limit of zero, a partition repeated, a column that is missing or
    /// of a type its transform does not take.
    pub fn check(&self, schema: &Schema) -> Result<()> {
        self.resolve(schema).map(drop)
    }

    fn resolve(&self, schema: &Schema) -> Result<Vec<Resolved>> {
        if self.max_file_rows == Some(0) {
            return Err(Error::usage(
                "a file holds at least one row (--max-file-rows)",
            ));
        }
        if self.max_file_bytes.is_some_and(|b| b < MIN_FILE_BYTES) {
            return Err(Error::usage(format!(
                "files of fewer than {} KiB are not worth their footers (--max-file-size)",
                MIN_FILE_BYTES >> 10
            )));
        }
        let mut names = Vec::new();
        let mut resolved = Vec::new();
        for field in &self.partitions {
            let name = field.name();
            if names.contains(&name) {
                return Err(Error::usage(format!(
                    "value partition {field} is given twice (as {name})"
                )));
            }
            names.push(name);
            resolved.push(Resolved::new(field, schema)?);
        }
        Ok(resolved)
    }

    /// The schema of the files: `schema` without the columns of identity partitions, whose
    /// values the directories hold (unless [`Layout::keep_partition_columns`]).
    ///
    /// # Errors
    /// As [`Layout::check`].
    pub fn file_schema(&self, schema: &SchemaRef) -> Result<SchemaRef> {
        let resolved = self.resolve(schema)?;
        Ok(project_schema(
            schema,
            &kept_columns(schema, &resolved, self),
        ))
    }
}

/// The smallest `max_file_bytes` taken.
const MIN_FILE_BYTES: u64 = 64 << 10;

/// The write buffer of each open file (a Parquet writer holds its row group until it writes
/// it out whole, so a small one costs no speed).
const FILE_BUFFER: usize = 64 << 10;

/// What an open file costs beyond its row group in progress: its write buffer and its
/// writer's own state (column writers, page buffers).
const OPEN_FILE_COST: usize = FILE_BUFFER + (64 << 10);

/// One partition value of a file: the partition's name and the value as its directory
/// says it (unescaped); `None` for a null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PartitionValue {
    /// The partition's name ([`PartitionField::name`]).
    pub name: String,
    /// The value as text, `None` for a null.
    pub value: Option<String>,
}

/// A file a [`LayoutWriter`] completed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WrittenFile {
    /// Its path under the writer's directory (`k=v/part-00000-00000.parquet`).
    pub path: String,
    /// Its rows.
    pub rows: u64,
    /// Its size.
    pub bytes: u64,
    /// Its partition values, outermost first.
    pub values: Vec<PartitionValue>,
}

struct OpenFile {
    sink: Sink,
    location: Location,
    path: String,
}

struct Group {
    values: Vec<PartitionValue>,
    /// The directory, `a=1/b=2/` (empty without partitions).
    dir: String,
    /// The next file's number.
    next: u32,
    file: Option<OpenFile>,
    last_used: u64,
    /// Rows waiting for the file (slices of reordered batches), and what they hold by the
    /// estimate of their batches' bytes per row.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    pending_bytes: usize,
    /// Rows written out to spill files: (spill, first batch, batches).
    spilled: Vec<(usize, usize, usize)>,
}

/// Rows set aside on disk when the pending ones outgrow memory: one Arrow IPC file (an
/// unnamed temporary file, gone with it) per round, each partition's rows one run of batches.
struct Spill {
    reader: arrow_ipc::reader::FileReader<std::io::BufReader<std::fs::File>>,
}

/// How every file of one writer is made: its directory, format, options, rolling limits,
/// schema and name; shared with the threads that finish partitions.
struct Files {
    dir: Location,
    format: Format,
    options: SinkOptions,
    layout: Layout,
    file_schema: SchemaRef,
    prefix: String,
}

/// What a writer (or one of its finishing threads) made: the files it completed, and the
/// local directories it created (to remove again if the export fails).
#[derive(Default)]
struct Made {
    written: Vec<WrittenFile>,
    dirs: Vec<std::path::PathBuf>,
}

/// Writes one export's batches into files laid out by a [`Layout`] under a directory.
pub struct LayoutWriter {
    files: Arc<Files>,
    resolved: Vec<Resolved>,
    /// The columns the files hold, when some are left out.
    kept: Option<Vec<usize>>,
    memory_limit: usize,
    /// What one more open file costs.
    file_cost: usize,
    groups: Vec<Group>,
    by_key: HashMap<Vec<u8>, usize>,
    open: usize,
    /// The bytes of all groups' pending rows.
    pending: usize,
    spills: Vec<Spill>,
    /// Where spill files go: the output directory when it is local (the same disk), else the
    /// system's temporary directory.
    spill_dir: std::path::PathBuf,
    clock: u64,
    made: Made,
    finished: bool,
}

impl std::fmt::Debug for LayoutWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayoutWriter")
            .field("dir", &self.files.dir)
            .field("layout", &self.files.layout)
            .field("open", &self.open)
            .field("written", &self.made.written.len())
            .finish_non_exhaustive()
    }
}

impl LayoutWriter {
    /// A writer of batches of `schema` into `dir` (which must exist, or be an object store's
    /// prefix), naming its files `PREFIX-00000.EXT`, `PREFIX-00001.EXT`, ... in each
    /// partition's directory, and holding at most about `memory_limit` bytes in open files.
    ///
    /// # Errors
    /// As [`Layout::check`]; [`Format::Null`], which writes no file.
    pub fn new(
        dir: Location,
        format: Format,
        options: &SinkOptions,
        schema: &SchemaRef,
        layout: &Layout,
        prefix: &str,
        memory_limit: usize,
    ) -> Result<LayoutWriter> {
        if format == Format::Null {
            return Err(Error::usage(
                "a laid-out export writes files: not the null format",
            ));
        }
        let resolved = layout.resolve(schema)?;
        let keep = kept_columns(schema, &resolved, layout);
        let file_schema = project_schema(schema, &keep);
        if file_schema.fields().is_empty() {
            return Err(Error::usage(
                "every column is an identity partition: the files would hold no column",
            ));
        }
        let kept = (keep.len() != schema.fields().len()).then_some(keep);
        let mut options = options.clone();
        options.buffer_bytes = FILE_BUFFER;
        // A file's size is known exactly only for its written row groups: smaller row
        // groups keep the estimate of the one in progress (before compression) a small part
        // of it, so that files end near their limit rather than well below it.
        if let Some(max) = layout.max_file_bytes {
            let quarter = usize::try_from(max / 4).unwrap_or(usize::MAX);
            options.row_group_bytes = options.row_group_bytes.min(quarter.max(1));
        }
        let file_cost = OPEN_FILE_COST + dir.upload_memory();
        // Thousands of files are synced at once when the writer finishes, not one by one.
        options.sync = !dir.is_local();
        let spill_dir = dir
            .as_local()
            .map_or_else(std::env::temp_dir, Path::to_path_buf);
        Ok(LayoutWriter {
            files: Arc::new(Files {
                dir,
                format,
                options,
                layout: layout.clone(),
                file_schema,
                prefix: prefix.to_owned(),
            }),
            resolved,
            kept,
            memory_limit,
            file_cost,
            groups: Vec::new(),
            by_key: HashMap::new(),
            open: 0,
            pending: 0,
            spills: Vec::new(),
            spill_dir,
            clock: 0,
            made: Made::default(),
            finished: false,
        })
    }

    /// Writes a batch: each row into its partition's file.
    ///
    /// # Errors
    /// A file cannot be created or written.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = batch.num_rows();
        // Where each row goes, as group numbers.
        let (groups, single) = self.group_rows(batch)?;
        let batch = match &self.kept {
            Some(keep) => batch.project(keep)?,
            None => batch.clone(),
        };
        let batch = match batch.schema() == self.files.file_schema {
            true => batch,
            false => {
                RecordBatch::try_new(self.files.file_schema.clone(), batch.columns().to_vec())?
            }
        };
        if let Some(group) = single {
            match self.resolved.is_empty() {
                true => self.write_rows(group, &batch)?,
                false => {
                    let per_row = batch.get_array_memory_size() / rows;
                    self.pending += batch.get_array_memory_size();
                    self.hold(group, batch, per_row)?;
                }
            }
        } else {
            // Rows in group order (stable), taken once, then written group by group as
            // slices of the reordered batch.
            let mut counts = vec![0u32; self.groups.len() + 1];
            for g in &groups {
                counts[*g as usize + 1] += 1;
            }
            for i in 1..counts.len() {
                counts[i] += counts[i - 1];
            }
            let starts = counts.clone();
            let mut order = vec![0u32; rows];
            for (row, g) in groups.iter().enumerate() {
                let at = &mut counts[*g as usize];
                order[*at as usize] = row as u32;
                *at += 1;
            }
            let indices = UInt32Array::from(order);
            let columns = batch
                .columns()
                .iter()
                .map(|c| arrow_select::take::take(c, &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let sorted = RecordBatch::try_new(batch.schema(), columns)?;
            let per_row = sorted.get_array_memory_size() / rows;
            // The reordered batch stays in memory as long as any slice of it waits: it is
            // counted whole, once.
            self.pending += sorted.get_array_memory_size();
            for g in 0..self.groups.len() {
                let (start, end) = (starts[g] as usize, starts[g + 1] as usize);
                if end > start {
                    self.hold(g, sorted.slice(start, end - start), per_row)?;
                }
            }
        }
        self.hold_to_limit()
    }

    /// Keeps rows of a partition until it has a row group's worth (or memory runs short),
    /// so that each file gets whole row groups, not a few rows from every batch.
    fn hold(&mut self, g: usize, rows: RecordBatch, per_row: usize) -> Result<()> {
        let bytes = rows.num_rows() * per_row;
        let group = &mut self.groups[g];
        group.pending_rows += rows.num_rows();
        group.pending_bytes += bytes;
        group.pending.push(rows);
        let chunk_bytes = self.chunk_bytes();
        let group = &mut self.groups[g];
        if group.pending_rows >= self.files.options.row_group_rows
            || group.pending_bytes >= chunk_bytes
        {
            self.flush_pending(g)?;
        }
        Ok(())
    }

    /// Writes a partition's pending rows into its file, as one batch: a writer's cost per
    /// call and column is paid once, not for each batch's few rows.
    fn flush_pending(&mut self, g: usize) -> Result<()> {
        let group = &mut self.groups[g];
        let pending = std::mem::take(&mut group.pending);
        group.pending_rows = 0;
        group.pending_bytes = 0;
        match pending.len() {
            0 => Ok(()),
            1 => self.write_rows(g, &pending[0]),
            _ => {
                let rows = arrow_select::concat::concat_batches(&self.files.file_schema, &pending)?;
                drop(pending);
                self.write_rows(g, &rows)
            }
        }
    }

    /// Each row's group (opening the groups new values make), or the one group of them all.
    fn group_rows(&mut self, batch: &RecordBatch) -> Result<(Vec<u32>, Option<usize>)> {
        if self.resolved.is_empty() {
            if self.groups.is_empty() {
                self.add_group(Vec::new(), Vec::new());
            }
            return Ok((Vec::new(), Some(0)));
        }
        let columns: Vec<_> = self
            .resolved
            .iter()
            .map(|r| batch.column(r.index))
            .collect();
        let keys: Vec<_> = self
            .resolved
            .iter()
            .zip(&columns)
            .map(|(r, c)| r.keys(c))
            .collect();
        let mut groups = Vec::with_capacity(batch.num_rows());
        let mut key = Vec::new();
        // Rows of one partition often come together: the last row's key is checked first.
        let mut last_key = Vec::new();
        let mut last = None;
        for row in 0..batch.num_rows() {
            key.clear();
            for k in &keys {
                k.encode(row, &mut key);
            }
            if let Some(g) = last
                && last_key == key
            {
                groups.push(g);
                continue;
            }
            let g = match self.by_key.get(key.as_slice()) {
                Some(g) => *g,
                None => {
                    let values = self
                        .resolved
                        .iter()
                        .zip(&keys)
                        .map(|(r, k)| PartitionValue {
                            name: r.field.name(),
                            value: r.value_text(k, row),
                        })
                        .collect();
                    self.add_group(key.clone(), values)
                }
            } as u32;
            groups.push(g);
            last = Some(g);
            std::mem::swap(&mut last_key, &mut key);
        }
        let single = match groups.first() {
            Some(first) if groups.iter().all(|g| g == first) => Some(*first as usize),
            _ => None,
        };
        Ok((groups, single))
    }

    fn add_group(&mut self, key: Vec<u8>, values: Vec<PartitionValue>) -> usize {
        let dir: String = values
            .iter()
            .map(|v: &PartitionValue| {
                let value = match &v.value {
                    Some(text) => transform::escape(text),
                    None => HIVE_NULL.to_owned(),
                };
                format!("{}={value}/", transform::escape(&v.name))
            })
            .collect();
        self.groups.push(Group {
            values,
            dir,
            next: 0,
            file: None,
            last_used: 0,
            pending: Vec::new(),
            pending_rows: 0,
            pending_bytes: 0,
            spilled: Vec::new(),
        });
        let g = self.groups.len() - 1;
        self.by_key.insert(key, g);
        g
    }

    /// Writes rows of one group into its files (making room for its file first, when it has
    /// none open).
    fn write_rows(&mut self, g: usize, rows: &RecordBatch) -> Result<()> {
        self.clock += 1;
        self.groups[g].last_used = self.clock;
        if self.groups[g].file.is_none() {
            // Room for one more open file first.
            while self.open > 0 && (self.open + 1) * self.file_cost > self.memory_limit / 2 {
                self.close_least_recent(Some(g))?;
            }
            self.open += 1;
        }
        let done = self.groups[g].write_rows(&self.files, rows, &mut self.made);
        if self.groups[g].file.is_none() {
            self.open -= 1;
        }
        done
    }

    fn close_file(&mut self, g: usize) -> Result<()> {
        if self.groups[g].file.is_some() {
            self.open -= 1;
        }
        self.groups[g].close_file(&mut self.made)
    }

    /// Finishes the open file used least recently (other than `except`'s).
    fn close_least_recent(&mut self, except: Option<usize>) -> Result<()> {
        let oldest = self
            .groups
            .iter()
            .enumerate()
            .filter(|(g, group)| group.file.is_some() && Some(*g) != except)
            .min_by_key(|(_, group)| group.last_used)
            .map(|(g, _)| g);
        match oldest {
            Some(g) => self.close_file(g),
            None => Ok(()),
        }
    }

    /// What the open files hold in memory.
    fn held_by_files(&self) -> usize {
        self.open * self.file_cost
            + self
                .groups
                .iter()
                .filter_map(|g| g.file.as_ref())
                .map(|f| f.sink.buffered())
                .sum::<usize>()
    }

    /// What the writer holds in memory: its open files and the batches its pending rows are
    /// slices of.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held_by_files() + self.pending
    }

    /// Back within the limit. Pending rows are slices of whole batches, which only go once
    /// none of their rows waits: past half the limit, every partition's pending rows go to a
    /// spill file on disk, and the batches go. Open files get the other half: past it, the
    /// least recently used are finished.
    fn hold_to_limit(&mut self) -> Result<()> {
        let half = self.memory_limit / 2;
        if self.pending > half {
            self.spill()?;
        }
        self.close_files_over(half)
    }

    /// Writes every partition's pending rows to a new spill file, each partition's rows
    /// together.
    fn spill(&mut self) -> Result<()> {
        let io = |source| Error::Io {
            what: "cannot write a spill file in",
            path: self.spill_dir.clone(),
            source,
        };
        let file = tempfile::tempfile_in(&self.spill_dir).map_err(io)?;
        let mut writer = arrow_ipc::writer::FileWriter::try_new(
            std::io::BufWriter::with_capacity(1 << 20, file),
            &self.files.file_schema,
        )?;
        let index = self.spills.len();
        let mut batches = 0;
        for group in &mut self.groups {
            if group.pending.is_empty() {
                continue;
            }
            // One batch per partition and round (IPC's cost per batch and column is paid
            // once, and reading it back is one read).
            let pending = std::mem::take(&mut group.pending);
            let rows = match pending.len() {
                1 => pending.into_iter().next().expect("one batch"),
                _ => arrow_select::concat::concat_batches(&self.files.file_schema, &pending)?,
            };
            writer.write(&rows)?;
            group.spilled.push((index, batches, 1));
            batches += 1;
            group.pending_rows = 0;
            group.pending_bytes = 0;
        }
        writer.finish()?;
        let mut file = writer
            .into_inner()?
            .into_inner()
            .map_err(|e| io(e.into_error()))?;
        std::io::Seek::rewind(&mut file).map_err(io)?;
        let reader = arrow_ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)?;
        self.spills.push(Spill { reader });
        self.pending = 0;
        Ok(())
    }

    /// A partition's rows not yet in its file: its spilled runs read back, in order, then its
    /// pending ones.
    fn runs(&mut self, g: usize) -> Result<Vec<RecordBatch>> {
        let mut runs = Vec::new();
        for (spill, first, count) in std::mem::take(&mut self.groups[g].spilled) {
            for i in first..first + count {
                let reader = &mut self.spills[spill].reader;
                reader.set_index(i)?;
                let rows = reader.next().transpose()?.ok_or_else(|| {
                    Error::Invalid(format!("spill file {spill} ended before batch {i}"))
                })?;
                runs.push(rows);
            }
        }
        let group = &mut self.groups[g];
        runs.extend(std::mem::take(&mut group.pending));
        group.pending_rows = 0;
        group.pending_bytes = 0;
        Ok(runs)
    }

    /// The rows a partition gathers before they go to its file: a row group's worth, within
    /// an eighth of the memory limit.
    fn chunk_bytes(&self) -> usize {
        self.files
            .options
            .row_group_bytes
            .min(self.memory_limit / 8)
    }

    /// Finishes the least recently used files while the open ones hold more than `bytes`
    /// (one stays open).
    fn close_files_over(&mut self, bytes: usize) -> Result<()> {
        while self.open > 1 && self.held_by_files() > bytes {
            self.close_least_recent(None)?;
        }
        Ok(())
    }

    /// Finishes every open file, and returns every file written, in path order.
    ///
    /// Most of a laid-out export's work is here: with many partitions, their rows wait (in
    /// memory or spilled) until the end. Partitions are independent, so they are written on
    /// as many threads as the machine has cores (the export's reading is over by now): this
    /// thread reads each partition's spilled rows back and hands the partition over, a few
    /// at a time, so that memory holds only the partitions in hand.
    ///
    /// # Errors
    /// A file cannot be finished (the files are then removed).
    pub fn finish(mut self) -> Result<Vec<WrittenFile>> {
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(self.groups.len());
        let chunk_bytes = self.chunk_bytes();
        self.open = 0;
        match threads {
            0 | 1 => {
                for g in 0..self.groups.len() {
                    let runs = self.runs(g)?;
                    let group = self.groups[g].take();
                    group.finish(&self.files, runs, chunk_bytes, &mut self.made)?;
                }
            }
            _ => self.finish_on(threads, chunk_bytes)?,
        }
        self.pending = 0;
        self.spills.clear();
        self.sync()?;
        self.finished = true;
        let mut written = std::mem::take(&mut self.made.written);
        written.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(written)
    }

    /// [`LayoutWriter::finish`]'s partitions written on `threads` threads; what they made is
    /// kept (for the cleanup of a failed export) whether they succeed or not.
    fn finish_on(&mut self, threads: usize, chunk_bytes: usize) -> Result<()> {
        type Job = (Group, Vec<RecordBatch>);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(threads);
        let rx = std::sync::Mutex::new(rx);
        let files = self.files.clone();
        let files = &*files;
        let (made, failed) = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let rx = &rx;
                    scope.spawn(move || {
                        let mut made = Made::default();
                        let mut failed = None;
                        loop {
                            let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                            let Ok((group, runs)) = job else { break };
                            if let Err(e) = group.finish(files, runs, chunk_bytes, &mut made) {
                                failed = Some(e);
                                break;
                            }
                        }
                        (made, failed)
                    })
                })
                .collect();
            let mut failed = None;
            for g in 0..self.groups.len() {
                let job = match self.runs(g) {
                    Ok(runs) => (self.groups[g].take(), runs),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                // A worker that failed stops taking jobs; when all have, the send fails.
                if tx.send(job).is_err() {
                    break;
                }
            }
            drop(tx);
            let mut made = Made::default();
            for worker in workers {
                let (theirs, error) = worker.join().unwrap_or_else(|_| {
                    let e = Error::Invalid("a thread finishing partitions panicked".into());
                    (Made::default(), Some(e))
                });
                made.written.extend(theirs.written);
                made.dirs.extend(theirs.dirs);
                failed = failed.or(error);
            }
            (made, failed)
        });
        self.made.written.extend(made.written);
        self.made.dirs.extend(made.dirs);
        failed.map_or(Ok(()), Err)
    }

    /// Makes every file written durable before the caller lists them (a manifest): a few
    /// files each synced, with their directories (what a mirror's commit writes: a sync of the
    /// whole file system would wait for every other writer's dirty pages too, a source
    /// database's on the same disk included, 0.12 s of a 0.17 s commit measured); many, one
    /// sync of the local file system for all of them.
    fn sync(&self) -> Result<()> {
        /// Files past this many are made durable by one sync of the file system.
        const EACH: usize = 64;
        let Some(root) = self.files.dir.as_local() else {
            return Ok(());
        };
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source: std::io::Error| Error::Io {
                what: "cannot sync",
                path,
                source,
            }
        };
        if self.made.written.len() > EACH {
            let dir = std::fs::File::open(root).map_err(io(root))?;
            return rustix::fs::syncfs(&dir).map_err(|e| io(root)(e.into()));
        }
        let mut dirs = std::collections::BTreeSet::new();
        for f in &self.made.written {
            let path = root.join(&f.path);
            std::fs::File::open(&path)
                .and_then(|file| file.sync_all())
                .map_err(io(&path))?;
            dirs.insert(path.parent().unwrap_or(root).to_path_buf());
        }
        // The directories hold the renames that put the files in place; a directory made for
        // them is held by its parent, up to the root.
        for made in &self.made.dirs {
            let mut at = made.as_path();
            while let Some(parent) = at.parent().filter(|_| at != root) {
                dirs.insert(parent.to_path_buf());
                at = parent;
            }
        }
        for dir in &dirs {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        Ok(())
    }

    /// Files written so far (finished ones only).
    pub fn files_written(&self) -> usize {
        self.made.written.len()
    }
}

impl Group {
    /// The group, leaving an empty one (no file, no rows) in its place.
    fn take(&mut self) -> Group {
        std::mem::replace(
            self,
            Group {
                values: Vec::new(),
                dir: String::new(),
                next: self.next,
                file: None,
                last_used: 0,
                pending: Vec::new(),
                pending_rows: 0,
                pending_bytes: 0,
                spilled: Vec::new(),
            },
        )
    }

    /// Writes rows into the group's files, rolling them at the layout's limits.
    fn write_rows(&mut self, files: &Files, rows: &RecordBatch, made: &mut Made) -> Result<()> {
        let per_row = (rows.get_array_memory_size() / rows.num_rows().max(1)).max(1) as u64;
        let mut at = 0;
        while at < rows.num_rows() {
            if self.file.is_none() {
                self.open_file(files, made)?;
            }
            let file = self.file.as_ref().expect("opened above");
            let (written, size) = (file.sink.rows(), file.sink.size_estimate());
            let left = rows.num_rows() - at;
            let mut take = left as u64;
            if let Some(max) = files.layout.max_file_rows {
                take = take.min(max - written);
            }
            if let Some(max) = files.layout.max_file_bytes {
                // Room for the footer, then as many rows as fit by their size in memory
                // (at least one in an empty file).
                let room = max.saturating_sub(size + footer_room(max));
                let fit = room / per_row;
                take = take.min(if written == 0 { fit.max(1) } else { fit });
            }
            if take == 0 {
                self.close_file(made)?;
                continue;
            }
            let piece = rows.slice(at, take as usize);
            let file = self.file.as_mut().expect("opened above");
            file.sink.write(&piece)?;
            at += take as usize;
            let full = files
                .layout
                .max_file_rows
                .is_some_and(|max| file.sink.rows() >= max);
            if full {
                self.close_file(made)?;
            }
        }
        Ok(())
    }

    fn open_file(&mut self, files: &Files, made: &mut Made) -> Result<()> {
        let path = format!(
            "{}{}-{:05}.{}",
            self.dir,
            files.prefix,
            self.next,
            files.format.extension()
        );
        self.next += 1;
        if let Some(root) = files.dir.as_local()
            && !self.dir.is_empty()
        {
            let dir = root.join(&self.dir);
            if !dir.is_dir() {
                std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                    what: "cannot create the directory",
                    path: dir.clone(),
                    source,
                })?;
                made.dirs.push(dir);
            }
        }
        let location = files.dir.join_path(&path);
        let sink = Sink::create(
            files.format,
            location.output(),
            &files.file_schema,
            &files.options,
        )?;
        self.file = Some(OpenFile {
            sink,
            location,
            path,
        });
        Ok(())
    }

    fn close_file(&mut self, made: &mut Made) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let rows = file.sink.rows();
        let bytes = file
            .sink
            .finish()
            .map_err(|e| e.context(format!("writing {}", file.location)))?;
        made.written.push(WrittenFile {
            path: file.path,
            rows,
            bytes,
            values: self.values.clone(),
        });
        Ok(())
    }

    /// Writes the group's rows, `runs` (its spilled rows, then its pending ones), into its
    /// files, gathered into batches of up to a row group's rows or `chunk_bytes`; then ends
    /// its file.
    fn finish(
        mut self,
        files: &Files,
        runs: Vec<RecordBatch>,
        chunk_bytes: usize,
        made: &mut Made,
    ) -> Result<()> {
        let mut gathered: Vec<RecordBatch> = Vec::new();
        let (mut rows, mut bytes) = (0, 0);
        let total = runs.len();
        for (i, run) in runs.into_iter().enumerate() {
            rows += run.num_rows();
            bytes += run.get_array_memory_size();
            gathered.push(run);
            if rows >= files.options.row_group_rows || bytes >= chunk_bytes || i + 1 == total {
                let batch = match gathered.len() {
                    1 => gathered.pop().expect("one batch"),
                    _ => arrow_select::concat::concat_batches(
                        &files.file_schema,
                        &std::mem::take(&mut gathered),
                    )?,
                };
                self.write_rows(files, &batch, made)?;
                (rows, bytes) = (0, 0);
            }
        }
        self.close_file(made)
    }
}

impl Drop for LayoutWriter {
    /// Unfinished, the files it completed are removed (open ones remove their temporary
    /// files as they drop), then the directories it made, if empty.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        for f in &self.made.written {
            let _ = self.files.dir.join_path(&f.path).remove();
        }
        for g in &mut self.groups {
            g.file = None;
        }
        for dir in self.made.dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Bytes kept free for a file's footer.
fn footer_room(max: u64) -> u64 {
    (64 << 10).min(max / 8)
}

fn kept_columns(schema: &Schema, resolved: &[Resolved], layout: &Layout) -> Vec<usize> {
    (0..schema.fields().len())
        .filter(|i| {
            layout.keep_partition_columns
                || !resolved.iter().any(|r| r.is_identity() && r.index == *i)
        })
        .collect()
}

fn project_schema(schema: &SchemaRef, keep: &[usize]) -> SchemaRef {
    if keep.len() == schema.fields().len() {
        return schema.clone();
    }
    let fields: Vec<_> = keep.iter().map(|i| schema.field(*i).clone()).collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[cfg(test)]
mod tests;
