//! Folding changes too large for memory (a source transaction that updated millions of rows):
//! they are cut by key into buckets, each a spill file small enough to fold in memory. Keys of
//! different buckets do not meet, so each bucket folds on its own against the table, as
//! [`Live::plan`] folds a commit's changes; the rows each leaves are set aside in one more
//! spill file, which the commit's data files are written from a batch at a time. A truncate
//! heads every bucket (what came before it is dropped). An update that changed its key ties
//! two buckets together: changes with one are folded whole, in memory, as before.

use std::collections::BTreeMap;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;
use pgarrow::{Error, ErrorKind, Result};
use pgarrow_changes::net::{KeyEncoder, KeyHashing};
use pgarrow_changes::{OLD_COLUMN, OP_COLUMN};

use super::{Live, Plan};
use crate::mirror::pending::{read_spill, spill_error};

/// The most buckets a fold cuts changes into (each a file open while they are cut).
const MOST_BUCKETS: usize = 128;

/// Rows a commit writes, set aside in a spill file (removed when the last holder drops it).
pub(crate) struct SpilledRows {
    file: tempfile::TempPath,
    pub(crate) schema: SchemaRef,
    pub(crate) rows: u64,
}

impl std::fmt::Debug for SpilledRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SpilledRows({} rows at {})", self.rows, self.file.display())
    }
}

impl SpilledRows {
    /// Its batches, in order, to `each`. Blocking.
    ///
    /// # Errors
    /// The file's and `each`'s.
    pub(crate) fn each(&self, each: impl FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        read_spill(&self.file, each)
    }
}

/// A table's changes in commit order: batches in memory, then (or instead) a spill file.
pub(crate) struct Changes<'a> {
    pub(crate) memory: &'a [RecordBatch],
    pub(crate) spill: Option<PathBuf>,
    /// Only the changes of transactions committed at or after this position count.
    pub(crate) after: pgarrow_protocol::replication::Lsn,
    /// The lake format whose forms the values take (as the table's files hold them).
    pub(crate) format: Option<crate::common::Format>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::from(ErrorKind::Internal(format!(
        "folding changes set aside ({what}): {e}"
    )))
}

/// A spill file being written: its file opened at its first rows (a bucket that gets none
/// takes no file handle).
struct Writer {
    dir: PathBuf,
    file: Option<tempfile::TempPath>,
    writer: Option<arrow_ipc::writer::StreamWriter<BufWriter<File>>>,
    schema: Option<SchemaRef>,
    rows: u64,
}

impl Writer {
    fn new(dir: &Path) -> Result<Writer> {
        Ok(Writer {
            dir: dir.to_path_buf(),
            file: None,
            writer: None,
            schema: None,
            rows: 0,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.writer.is_none() {
            let (out, path) = tempfile::Builder::new()
                .prefix("pgarrow-fold-")
                .suffix(".arrows")
                .tempfile_in(&self.dir)
                .map_err(|e| spill_error(&self.dir, e))?
                .into_parts();
            self.writer = Some(
                arrow_ipc::writer::StreamWriter::try_new(BufWriter::new(out), &batch.schema())
                    .map_err(|e| spill_error(&path, e))?,
            );
            self.file = Some(path);
            self.schema = Some(batch.schema());
        }
        if let (Some(w), Some(path)) = (&mut self.writer, &self.file) {
            w.write(batch).map_err(|e| spill_error(path, e))?;
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// The rows written, their file closed (`None`: no rows).
    fn finish(mut self) -> Result<Option<SpilledRows>> {
        match (self.writer.take(), self.schema.take(), self.file.take()) {
            (Some(mut w), Some(schema), Some(file)) => {
                w.finish().map_err(|e| spill_error(&file, e))?;
                drop(w);
                Ok(Some(SpilledRows {
                    file,
                    schema,
                    rows: self.rows,
                }))
            }
            _ => Ok(None),
        }
    }
}

/// How changes are read: only those after a position, the table's columns (the first) in a
/// lake format's forms.
type Reading = (
    pgarrow_protocol::replication::Lsn,
    usize,
    Option<crate::common::Format>,
);

/// Each batch of `changes` (only rows after its position), in order, to `each`. Blocking.
fn each_batch(
    memory: &[RecordBatch],
    spill: Option<&Path>,
    (after, columns, format): Reading,
    mut each: impl FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let mut one = |b: RecordBatch| -> Result<()> {
        let b = crate::mirror::after(&b, after)?;
        if b.num_rows() == 0 {
            return Ok(());
        }
        match format {
            Some(f) => each(crate::common::lake_batch(&b, columns, f)?),
            None => each(b),
        }
    };
    if let Some(path) = spill {
        read_spill(path, &mut one)?;
    }
    for b in memory {
        one(b.clone())?;
    }
    Ok(())
}

/// The first pass: the changes' bytes, the place of the last truncate (its batch's row) and
/// whether an update changed its key.
struct Surveyed {
    bytes: usize,
    rows: u64,
    truncate: Option<(usize, RecordBatch)>,
    key_changed: bool,
}

fn survey(
    memory: &[RecordBatch],
    spill: Option<&Path>,
    reading: Reading,
    key: &[String],
) -> Result<Surveyed> {
    let columns = reading.1;
    let mut out = Surveyed {
        bytes: 0,
        rows: 0,
        truncate: None,
        key_changed: false,
    };
    let mut at = 0usize;
    each_batch(memory, spill, reading, |b| {
        out.bytes += b.get_array_memory_size();
        out.rows += b.num_rows() as u64;
        let ops = op_column(&b)?;
        for i in 0..b.num_rows() {
            if ops.value(i) == "truncate" {
                out.truncate = Some((at + i, b.slice(i, 1)));
            }
        }
        if !out.key_changed {
            out.key_changed = key_changes(&b, key, columns)?;
        }
        at += b.num_rows();
        Ok(())
    })?;
    Ok(out)
}

fn op_column(b: &RecordBatch) -> Result<&arrow_array::StringArray> {
    b.column_by_name(OP_COLUMN)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| failed("the changes", format!("no {OP_COLUMN}")))
}

/// The key columns of `b` (within its first `columns`).
fn key_columns<'b>(b: &'b RecordBatch, key: &[String], columns: usize) -> Result<Vec<&'b dyn Array>> {
    let schema = b.schema();
    key.iter()
        .map(|k| {
            schema
                .index_of(k)
                .ok()
                .filter(|&i| i < columns)
                .map(|i| b.column(i).as_ref())
                .ok_or_else(|| failed("the changes", format!("no key column {k:?}")))
        })
        .collect()
}

/// Whether an update of `b` carries an old key other than its new one.
fn key_changes(b: &RecordBatch, key: &[String], columns: usize) -> Result<bool> {
    let Some(old) = b.column_by_name(OLD_COLUMN).and_then(|c| c.as_struct_opt()) else {
        return Ok(false);
    };
    if old.null_count() == old.len() {
        return Ok(false);
    }
    let schema = b.schema();
    let idx: Vec<usize> = key
        .iter()
        .filter_map(|k| schema.index_of(k).ok().filter(|&i| i < columns))
        .collect();
    let new: Vec<&dyn Array> = idx.iter().map(|&i| b.column(i).as_ref()).collect();
    let olds: Vec<&dyn Array> = idx.iter().map(|&i| old.column(i).as_ref()).collect();
    let (nb, ne) = KeyEncoder::encode_all(&new).map_err(|e| failed("a key", e))?;
    let (ob, oe) = KeyEncoder::encode_all(&olds).map_err(|e| failed("a key", e))?;
    let (mut ns, mut os) = (0, 0);
    for i in 0..b.num_rows() {
        let (n, o) = (&nb[ns..ne[i]], &ob[os..oe[i]]);
        (ns, os) = (ne[i], oe[i]);
        if old.is_valid(i) && n != o {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Live {
    /// Folds `changes` bucket by bucket (see the module's text), each bucket about
    /// `bucket_bytes` of changes, the spill files in `dir`; `None` when an update changed its
    /// key (the caller folds them whole).
    ///
    /// # Errors
    /// As [`plan`](Self::plan); the spill files'.
    pub(crate) async fn plan_large(
        &self,
        changes: Changes<'_>,
        columns: usize,
        table: &str,
        bucket_bytes: usize,
        dir: Option<&Path>,
    ) -> Result<Option<Plan>> {
        if self.whole || self.key.is_empty() {
            return Ok(None);
        }
        let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let rows_dir = dir.clone();
        let memory: Vec<RecordBatch> = changes.memory.to_vec();
        let (spill, key) = (changes.spill.clone(), self.key.clone());
        let reading: Reading = (changes.after, columns, changes.format);
        let buckets = tokio::task::spawn_blocking(move || -> Result<Option<(Vec<Writer>, u64)>> {
            let surveyed = survey(&memory, spill.as_deref(), reading, &key)?;
            if surveyed.key_changed {
                return Ok(None);
            }
            // At most MOST_BUCKETS files open at once: past that, buckets grow beyond
            // their share.
            let n = surveyed
                .bytes
                .div_ceil(bucket_bytes.max(1))
                .clamp(2, MOST_BUCKETS);
            let mut buckets = (0..n).map(|_| Writer::new(&dir)).collect::<Result<Vec<_>>>()?;
            let first = match &surveyed.truncate {
                Some((at, row)) => {
                    for b in &mut buckets {
                        b.write(row)?;
                    }
                    at + 1
                }
                None => 0,
            };
            let hashing = KeyHashing::default();
            let mut at = 0usize;
            let mut picked: Vec<Vec<u32>> = vec![Vec::new(); n];
            each_batch(&memory, spill.as_deref(), reading, |b| {
                let rows = b.num_rows();
                let skip = first.saturating_sub(at).min(rows);
                at += rows;
                if skip == rows {
                    return Ok(());
                }
                let (body, ends) = KeyEncoder::encode_all(&key_columns(&b, &key, columns)?)
                    .map_err(|e| failed("a key", e))?;
                let mut start = 0;
                for (i, end) in ends.into_iter().enumerate() {
                    if i >= skip {
                        let h = hashing.hash_one(&body[start..end]);
                        picked[(h % n as u64) as usize].push(i as u32);
                    }
                    start = end;
                }
                for (bucket, rows) in buckets.iter_mut().zip(&mut picked) {
                    if rows.is_empty() {
                        continue;
                    }
                    let indices = arrow_array::UInt32Array::from(std::mem::take(rows));
                    let part = arrow_select::take::take_record_batch(&b, &indices)
                        .map_err(|e| failed("a bucket", e))?;
                    bucket.write(&part)?;
                }
                Ok(())
            })?;
            Ok(Some((buckets, surveyed.rows)))
        })
        .await
        .map_err(|e| failed("a task", e))??;
        let Some((buckets, changed)) = buckets else {
            return Ok(None);
        };
        let mut total = Plan::default();
        let mut rows = Some(Writer::new(&rows_dir)?);
        let mut deletes: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
        for bucket in buckets {
            let Some(spilled) = tokio::task::spawn_blocking(move || bucket.finish())
                .await
                .map_err(|e| failed("a task", e))??
            else {
                continue;
            };
            let schema = spilled.schema.clone();
            let batch = tokio::task::spawn_blocking(move || -> Result<RecordBatch> {
                let mut parts = Vec::new();
                spilled.each(|b| {
                    parts.push(b);
                    Ok(())
                })?;
                arrow_select::concat::concat_batches(&schema, &parts)
                    .map_err(|e| failed("a bucket", e))
            })
            .await
            .map_err(|e| failed("a task", e))??;
            let plan = self
                .plan(&batch, columns, table, super::read_rows)
                .await?;
            drop(batch);
            total.truncate |= plan.truncate;
            total.changes += plan.changes;
            total.lookup_s += plan.lookup_s;
            total.index_read += plan.index_read;
            total.gone.extend(plan.gone);
            for (file, mut positions) in plan.deletes {
                deletes.entry(file).or_default().append(&mut positions);
            }
            if let Some(left) = plan.rows {
                let mut w = rows.take().ok_or_else(|| failed("the rows", "gone"))?;
                w = tokio::task::spawn_blocking(move || w.write(&left).map(|()| w))
                    .await
                    .map_err(|e| failed("a task", e))??;
                rows = Some(w);
            }
        }
        for positions in deletes.values_mut() {
            positions.sort_unstable();
            positions.dedup();
        }
        total.deletes = deletes;
        // Every change once (a truncate heads each bucket).
        total.changes = changed;
        if let Some(w) = rows {
            total.spilled = tokio::task::spawn_blocking(move || w.finish())
                .await
                .map_err(|e| failed("a task", e))??
                .map(Arc::new);
        }
        Ok(Some(total))
    }
}
