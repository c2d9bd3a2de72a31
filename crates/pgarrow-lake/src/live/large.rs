//! Folding changes too large for memory (a source transaction that updated millions of rows):
//! they are cut by key into buckets, each a spill file small enough to fold in memory, each a
//! range of keys (cut at the quantiles of a sample), so that each bucket's lookups read a range
//! of the key index's blocks, not all of them. Keys of
//! different buckets do not meet, so each bucket folds on its own against the table, as
//! [`Live::plan`] folds a commit's changes; the rows each leaves are set aside in one more
//! spill file, which the commit's data files are written from a batch at a time. A truncate
//! heads every bucket (what came before it is dropped). An update that changed its key ties
//! two buckets together: changes with one are folded whole, in memory, as before.
//!
//! A table told apart by whole rows (see [`whole`](super::whole)) is cut by its rows'
//! digests, evenly over their range (digests are uniform): each update is cut into the delete
//! of its old row and the insert of its new one first, each going where its digest does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use pgarrow::{Error, ErrorKind, Result};
use pgarrow_changes::net::KeyEncoder;
use pgarrow_changes::{OLD_COLUMN, OP_COLUMN};

use super::{Live, Plan, Positions, whole};
use crate::spill::{SpillWriter, read_spill};

/// The most buckets a fold cuts changes into (each a file open while they are cut).
const MOST_BUCKETS: usize = 128;

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
        let b = super::after(&b, after)?;
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

/// The first pass: the changes' bytes, the place of the last truncate (its batch's row),
/// whether an update changed its key, and a sample of their keys (uniform, of at most
/// [`SAMPLE`]), whose quantiles cut the buckets.
struct Surveyed {
    bytes: usize,
    rows: u64,
    truncate: Option<(usize, RecordBatch)>,
    key_changed: bool,
    sample: Vec<Vec<u8>>,
}

/// The keys sampled to cut the buckets by.
const SAMPLE: usize = 8192;

impl Surveyed {
    /// The keys that end each bucket but the last, so that each holds about as many changes
    /// and a range of keys (its lookups then read a range of the index's blocks).
    fn splits(&mut self, buckets: usize) -> Vec<Vec<u8>> {
        self.sample.sort_unstable();
        let n = self.sample.len();
        let mut splits: Vec<Vec<u8>> = (1..buckets)
            .filter_map(|i| self.sample.get(i * n / buckets).cloned())
            .collect();
        splits.dedup();
        splits
    }
}

/// The first pass; with `whole`, no key is sampled (digests are cut evenly).
fn survey(
    memory: &[RecordBatch],
    spill: Option<&Path>,
    reading: Reading,
    key: &[String],
    whole: bool,
) -> Result<Surveyed> {
    let columns = reading.1;
    let mut out = Surveyed {
        bytes: 0,
        rows: 0,
        truncate: None,
        key_changed: false,
        sample: Vec::new(),
    };
    let mut at = 0usize;
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut seen = 0u64;
    each_batch(memory, spill, reading, |b| {
        let (body, ends) = match whole {
            true => (Vec::new(), Vec::new()),
            false => KeyEncoder::encode_all(&key_columns(&b, key, columns)?)
                .map_err(|e| failed("a key", e))?,
        };
        let mut start = 0;
        for end in ends {
            let k = &body[start..end];
            start = end;
            if out.sample.len() < SAMPLE {
                out.sample.push(k.to_vec());
            } else if let Ok(j) = usize::try_from(rng.u64(0..=seen))
                && j < SAMPLE
            {
                out.sample[j] = k.to_vec();
            }
            seen += 1;
        }
        out.bytes += b.get_array_memory_size();
        out.rows += b.num_rows() as u64;
        let ops = op_column(&b)?;
        for i in 0..b.num_rows() {
            if ops.value(i) == "truncate" {
                out.truncate = Some((at + i, b.slice(i, 1)));
            }
        }
        if !out.key_changed && !whole {
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
fn key_columns<'b>(
    b: &'b RecordBatch,
    key: &[String],
    columns: usize,
) -> Result<Vec<&'b dyn Array>> {
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
    /// key, or the table has none (the caller folds them whole).
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
        if self.key.is_empty() {
            return Ok(None);
        }
        let whole = self.whole.then(|| (self.index.secret(), table.to_owned()));
        let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let rows_dir = dir.clone();
        let memory: Vec<RecordBatch> = changes.memory.to_vec();
        let (spill, key) = (changes.spill.clone(), self.key.clone());
        let reading: Reading = (changes.after, columns, changes.format);
        let buckets =
            tokio::task::spawn_blocking(move || -> Result<Option<(Vec<SpillWriter>, u64)>> {
                let surveyed = survey(&memory, spill.as_deref(), reading, &key, whole.is_some())?;
                if surveyed.key_changed {
                    return Ok(None);
                }
                // At most MOST_BUCKETS files open at once: past that, buckets grow beyond
                // their share.
                let mut surveyed = surveyed;
                let wanted = surveyed
                    .bytes
                    .div_ceil(bucket_bytes.max(1))
                    .clamp(2, MOST_BUCKETS);
                let splits = match whole {
                    // Digests are uniform: cut evenly (an update's halves double some).
                    Some(_) => (1..wanted)
                        .map(|i| {
                            (u128::MAX / wanted as u128 * i as u128)
                                .to_be_bytes()
                                .to_vec()
                        })
                        .collect(),
                    None => surveyed.splits(wanted),
                };
                let n = splits.len() + 1;
                let mut buckets: Vec<SpillWriter> = (0..n)
                    .map(|_| SpillWriter::new(Some(&dir), "pgarrow-fold-"))
                    .collect();
                let first = match &surveyed.truncate {
                    Some((at, row)) => {
                        for b in &mut buckets {
                            b.write(row)?;
                        }
                        at + 1
                    }
                    None => 0,
                };
                let mut at = 0usize;
                let mut picked: Vec<Vec<u32>> = vec![Vec::new(); n];
                each_batch(&memory, spill.as_deref(), reading, |b| {
                    let rows = b.num_rows();
                    let skip = first.saturating_sub(at).min(rows);
                    at += rows;
                    if skip == rows {
                        return Ok(());
                    }
                    let b = match &whole {
                        Some((secret, table)) => {
                            let b = whole::halves(&b.slice(skip, rows - skip), columns, table)?;
                            let values: Vec<&dyn Array> =
                                b.columns()[..columns].iter().map(|c| c.as_ref()).collect();
                            let digests = whole::digests(secret, &values)
                                .map_err(|e| failed("a row's digest", e))?;
                            for (i, d) in digests.iter().enumerate() {
                                picked[splits.partition_point(|s| s.as_slice() <= d.as_slice())]
                                    .push(i as u32);
                            }
                            b
                        }
                        None => {
                            let (body, ends) =
                                KeyEncoder::encode_all(&key_columns(&b, &key, columns)?)
                                    .map_err(|e| failed("a key", e))?;
                            let mut start = 0;
                            for (i, end) in ends.into_iter().enumerate() {
                                if i >= skip {
                                    let k = &body[start..end];
                                    picked[splits.partition_point(|s| s.as_slice() <= k)]
                                        .push(i as u32);
                                }
                                start = end;
                            }
                            b
                        }
                    };
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
        let mut rows = Some(SpillWriter::new(Some(&rows_dir), "pgarrow-rows-"));
        let mut deletes: BTreeMap<i64, Positions> = BTreeMap::new();
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
            let plan = self.plan(&batch, columns, table, super::read_rows).await?;
            drop(batch);
            total.truncate |= plan.truncate;
            total.changes += plan.changes;
            total.lookup_s += plan.lookup_s;
            total.index_read += plan.index_read;
            total.gone.extend(plan.gone);
            for (file, positions) in plan.deletes {
                deletes.entry(file).or_default().union_with(&positions);
            }
            if let Some(left) = plan.rows {
                let mut w = rows.take().ok_or_else(|| failed("the rows", "gone"))?;
                w = tokio::task::spawn_blocking(move || w.write(&left).map(|()| w))
                    .await
                    .map_err(|e| failed("a task", e))??;
                rows = Some(w);
            }
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
