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

/// The size buckets are cut down to, below their share of the budget while
/// [`MOST_BUCKETS`] allow: a small bucket's fold (its keys' hash table, the rows it keeps)
/// stays in the processor's caches. A 1M-row update (350 MB of changes) folded in 128
/// buckets took 1.9-2.0 s, in 6 of 64 MiB 2.3-2.6 s, its lookups 0.3 s against 0.55.
const SMALL_BUCKET: usize = 2 << 20;

/// A table's changes in commit order: batches in memory, then (or instead) a spill file.
pub(crate) struct Changes<'a> {
    pub(crate) memory: &'a [RecordBatch],
    pub(crate) spill: Option<PathBuf>,
    /// Only the changes of transactions committed at or after this position count.
    pub(crate) after: pgarrow_protocol::replication::Lsn,
    /// The lake format whose forms the values take (as the table's files hold them).
    pub(crate) format: Option<crate::common::Format>,
    /// The first pass, made as the changes were set aside (see [`Surveying`]): used when it
    /// was made reading them as this fold does, else the fold makes its own.
    pub(crate) surveyed: Option<&'a Surveying>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::from(ErrorKind::Internal(format!(
        "folding changes set aside ({what}): {e}"
    )))
}

/// How changes are read: only those after a position, the table's columns (the first) in a
/// lake format's forms.
pub(crate) type Reading = (
    pgarrow_protocol::replication::Lsn,
    usize,
    Option<crate::common::Format>,
);

/// `b` read as `reading` says: only rows after its position (`None`: none left), in the
/// lake format's forms.
fn read_as(b: &RecordBatch, (after, columns, format): Reading) -> Result<Option<RecordBatch>> {
    let b = super::after(b, after)?;
    if b.num_rows() == 0 {
        return Ok(None);
    }
    match format {
        Some(f) => crate::common::lake_batch(&b, columns, f).map(Some),
        None => Ok(Some(b)),
    }
}

/// Each batch of `changes` (only rows after its position), in order, to `each`. Blocking.
fn each_batch(
    memory: &[RecordBatch],
    spill: Option<&Path>,
    reading: Reading,
    mut each: impl FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let mut one = |b: RecordBatch| -> Result<()> {
        match read_as(&b, reading)? {
            Some(b) => each(b),
            None => Ok(()),
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

/// As [`each_batch`], the batches read on a thread of their own, a few ahead of `each`: the
/// reading (the file's, the values' lake forms) goes on while `each` works. Blocking.
fn each_batch_ahead(
    memory: &[RecordBatch],
    spill: Option<&Path>,
    reading: Reading,
    mut each: impl FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<RecordBatch>>(2);
        scope.spawn(move || {
            let sent = each_batch(memory, spill, reading, |b| {
                // Taken no more (`each` failed): stop reading.
                tx.send(Ok(b))
                    .map_err(|_| failed("the changes", "no longer read"))
            });
            if let Err(e) = sent {
                let _ = tx.send(Err(e));
            }
        });
        for b in rx {
            // Dropping the receiver (returning) stops the reader at its next batch.
            each(b?)?;
        }
        Ok(())
    })
}

/// The first pass: the changes' bytes, the place of the last truncate (its batch's row),
/// whether an update changed its key, and a sample of their keys (uniform, of at most
/// [`SAMPLE`]), whose quantiles cut the buckets.
#[derive(Clone)]
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
    let mut surveying = Surveying::new(reading, key.to_vec(), whole);
    each_batch(memory, spill, reading, |b| surveying.step(&b))?;
    Ok(surveying.out)
}

/// The first pass made a batch at a time, as the changes come: a table's pending changes
/// set aside on disk are surveyed as they are written (see
/// [`Pending`](crate::mirror::pending::Pending)), so that their fold does not read them once
/// more for it. Made for one way of reading them ([`Reading`]) and one key.
pub(crate) struct Surveying {
    reading: Reading,
    key: Vec<String>,
    whole: bool,
    out: Surveyed,
    /// Rows stepped over, and keys seen (the sample's reservoir).
    at: usize,
    seen: u64,
    rng: fastrand::Rng,
}

impl Surveying {
    fn new(reading: Reading, key: Vec<String>, whole: bool) -> Surveying {
        Surveying {
            reading,
            key,
            whole,
            out: Surveyed {
                bytes: 0,
                rows: 0,
                truncate: None,
                key_changed: false,
                sample: Vec::new(),
            },
            at: 0,
            seen: 0,
            rng: fastrand::Rng::with_seed(0x5eed),
        }
    }

    /// Takes `b` in, as the changes were given (read as its [`Reading`] says).
    ///
    /// # Errors
    /// As the fold's (a key that does not encode, columns missing).
    pub(crate) fn see(&mut self, b: &RecordBatch) -> Result<()> {
        match read_as(b, self.reading)? {
            Some(b) => self.step(&b),
            None => Ok(()),
        }
    }

    /// Takes `b` in, read already.
    fn step(&mut self, b: &RecordBatch) -> Result<()> {
        let columns = self.reading.1;
        let out = &mut self.out;
        let (body, ends) = match self.whole {
            true => (Vec::new(), Vec::new()),
            false => KeyEncoder::encode_all(&key_columns(b, &self.key, columns)?)
                .map_err(|e| failed("a key", e))?,
        };
        let mut start = 0;
        for end in ends {
            let k = &body[start..end];
            start = end;
            if out.sample.len() < SAMPLE {
                out.sample.push(k.to_vec());
            } else if let Ok(j) = usize::try_from(self.rng.u64(0..=self.seen))
                && j < SAMPLE
            {
                out.sample[j] = k.to_vec();
            }
            self.seen += 1;
        }
        out.bytes += b.get_array_memory_size();
        out.rows += b.num_rows() as u64;
        let ops = op_column(b)?;
        for i in 0..b.num_rows() {
            if ops.value(i) == "truncate" {
                out.truncate = Some((self.at + i, b.slice(i, 1)));
            }
        }
        if !out.key_changed && !self.whole {
            out.key_changed = key_changes(b, &self.key, columns)?;
        }
        self.at += b.num_rows();
        Ok(())
    }

    /// Its pass, when it was made reading the changes as `reading` does, for `key`.
    fn made_for(&self, reading: Reading, key: &[String], whole: bool) -> Option<Surveyed> {
        let same = self.reading.0 == reading.0
            && self.reading.1 == reading.1
            && self.reading.2 == reading.2
            && self.key == key
            && self.whole == whole;
        same.then(|| self.out.clone())
    }
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

/// A bucket's changes as one batch, its file closed and read back (`None`: it got none).
/// Blocking.
fn read_bucket(bucket: SpillWriter) -> Result<Option<RecordBatch>> {
    let Some(spilled) = bucket.finish()? else {
        return Ok(None);
    };
    let mut parts = Vec::new();
    spilled.each(|b| {
        parts.push(b);
        Ok(())
    })?;
    arrow_select::concat::concat_batches(&spilled.schema, &parts)
        .map(Some)
        .map_err(|e| failed("a bucket", e))
}

impl Live {
    /// A first pass over changes to come, read as `reading` says, for [`Changes::surveyed`]
    /// (`None`: the table has no key, its changes fold whole).
    pub(crate) fn surveying(&self, reading: Reading) -> Option<Surveying> {
        (!self.key.is_empty()).then(|| Surveying::new(reading, self.key.clone(), self.whole))
    }

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
        let cutting = std::time::Instant::now();
        let whole = self.whole.then(|| (self.index.secret(), table.to_owned()));
        let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let rows_dir = dir.clone();
        let memory: Vec<RecordBatch> = changes.memory.to_vec();
        let (spill, key) = (changes.spill.clone(), self.key.clone());
        let reading: Reading = (changes.after, columns, changes.format);
        let surveyed = changes
            .surveyed
            .and_then(|s| s.made_for(reading, &key, whole.is_some()));
        let buckets =
            tokio::task::spawn_blocking(move || -> Result<Option<(Vec<SpillWriter>, u64)>> {
                let surveyed = match surveyed {
                    Some(s) => s,
                    None => survey(&memory, spill.as_deref(), reading, &key, whole.is_some())?,
                };
                if surveyed.key_changed {
                    return Ok(None);
                }
                // At most MOST_BUCKETS files open at once: past that, buckets grow beyond
                // their share.
                let mut surveyed = surveyed;
                let wanted = surveyed
                    .bytes
                    .div_ceil(bucket_bytes.clamp(1, SMALL_BUCKET))
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
                // Each bucket's part of a batch is written on a thread of its own (a batch's
                // parts in flight at most) while the next batch is cut.
                let (parts, to_write) = std::sync::mpsc::sync_channel::<(usize, RecordBatch)>(n);
                let (cut, written) = std::thread::scope(|scope| {
                    let writer = scope.spawn(move || -> Result<Vec<SpillWriter>> {
                        for (i, part) in to_write {
                            buckets[i].write(&part)?;
                        }
                        Ok(buckets)
                    });
                    let cut = each_batch_ahead(&memory, spill.as_deref(), reading, |b| {
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
                                    picked
                                        [splits.partition_point(|s| s.as_slice() <= d.as_slice())]
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
                        for (i, rows) in picked.iter_mut().enumerate() {
                            if rows.is_empty() {
                                continue;
                            }
                            let indices = arrow_array::UInt32Array::from(std::mem::take(rows));
                            let part = arrow_select::take::take_record_batch(&b, &indices)
                                .map_err(|e| failed("a bucket", e))?;
                            // Refused: the writer failed, and its error is the one told.
                            if parts.send((i, part)).is_err() {
                                return Err(failed("a bucket", "no longer written"));
                            }
                        }
                        Ok(())
                    });
                    // The writer ends with the parts.
                    drop(parts);
                    let written = writer
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (cut, written)
                });
                let buckets = written?;
                cut?;
                Ok(Some((buckets, surveyed.rows)))
            })
            .await
            .map_err(|e| failed("a task", e))??;
        let Some((buckets, changed)) = buckets else {
            return Ok(None);
        };
        super::debug(format_args!(
            "{table}: changes cut into {} buckets in {:.3} s",
            buckets.len(),
            cutting.elapsed().as_secs_f64()
        ));
        // Three at once: the buckets read back (one ahead), each folded, the rows each leaves
        // set aside; the reading and the writing on threads of their own. That holds up to
        // four buckets at once (one read, one waiting, one folded, its rows being set aside):
        // when four do not fit in a bucket's share of the budget (a small budget, or past
        // MOST_BUCKETS), they go one at a time, the next read when the last one's rows are set
        // aside.
        let ahead = buckets
            .iter()
            .map(|b| b.bytes().saturating_mul(4))
            .max()
            .is_none_or(|most| most <= bucket_bytes as u64);
        let (read_tx, mut read) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(1);
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let _ = ask.send(());
        let reader = tokio::task::spawn_blocking(move || {
            // Each bucket read when asked for (empty ones skipped).
            for bucket in buckets.into_iter().filter(|b| b.path().is_some()) {
                if asked.recv().is_err() {
                    return;
                }
                match read_bucket(bucket) {
                    Ok(None) => {}
                    Ok(Some(batch)) => {
                        if read_tx.blocking_send(Ok(batch)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = read_tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        let (rows_tx, mut rows_rx) = tokio::sync::mpsc::channel::<RecordBatch>(1);
        let (done, mut set_aside) = tokio::sync::mpsc::unbounded_channel::<()>();
        let writer = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut w = SpillWriter::new(Some(&rows_dir), "pgarrow-rows-");
            while let Some(rows) = rows_rx.blocking_recv() {
                w.write(&rows)?;
                let _ = done.send(());
            }
            w.finish()
        });
        let mut total = Plan::default();
        let mut deletes: BTreeMap<i64, Positions> = BTreeMap::new();
        let folded = async {
            while let Some(batch) = read.recv().await {
                let batch = batch?;
                if ahead {
                    let _ = ask.send(());
                }
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
                    if rows_tx.send(left).await.is_err() {
                        // The writer stopped: its error is told below.
                        break;
                    }
                    if !ahead && set_aside.recv().await.is_none() {
                        break;
                    }
                }
                if !ahead {
                    let _ = ask.send(());
                }
            }
            Ok::<(), Error>(())
        }
        .await;
        // The reader stops at a fold's error (nothing takes its batches), the writer at the
        // end of the rows.
        drop(read);
        drop(ask);
        drop(rows_tx);
        reader.await.map_err(|e| failed("a task", e))?;
        let written = writer.await.map_err(|e| failed("a task", e))?;
        folded?;
        total.deletes = deletes;
        // Every change once (a truncate heads each bucket).
        total.changes = changed;
        total.spilled = written?.map(Arc::new);
        Ok(Some(total))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray, StructArray, UInt64Array};
    use arrow_schema::{DataType, Field, Fields, Schema};
    use pgarrow_changes::COMMIT_LSN_COLUMN;
    use pgarrow_protocol::replication::Lsn;

    use super::*;

    /// Changes of a table keyed by `id`: `ops` from key `from` on, committed at `lsn`, each
    /// update's old key given by `old` (its key again when `None`).
    fn changes(from: i64, ops: &[&str], lsn: u64, old: Option<i64>) -> RecordBatch {
        let n = ops.len() as i64;
        let old_fields = Fields::from(vec![Field::new("id", DataType::Int64, true)]);
        // Spread over the keys' range, out of order.
        let id = |k: i64| k * 7919 % 10007;
        let olds: Vec<Option<i64>> = (from..from + n)
            .map(|k| Some(old.unwrap_or(id(k))))
            .collect();
        let old = StructArray::new(
            old_fields.clone(),
            vec![Arc::new(Int64Array::from(olds))],
            None,
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new(OP_COLUMN, DataType::Utf8, false),
            Field::new(OLD_COLUMN, DataType::Struct(old_fields), true),
            Field::new(COMMIT_LSN_COLUMN, DataType::UInt64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values((from..from + n).map(id))),
                Arc::new(StringArray::from(ops.to_vec())),
                Arc::new(old),
                Arc::new(UInt64Array::from(vec![lsn; ops.len()])),
            ],
        )
        .unwrap()
    }

    /// The same pass; its bytes those of the batches as they were set aside (read back, each
    /// array counts the whole message its buffers are slices of: more).
    fn same(a: &Surveyed, b: &Surveyed) {
        assert_eq!((a.rows, a.key_changed), (b.rows, b.key_changed));
        assert!(
            a.bytes > 0 && a.bytes <= b.bytes,
            "{} vs {}",
            a.bytes,
            b.bytes
        );
        assert_eq!(a.sample, b.sample);
        assert_eq!(
            a.truncate.as_ref().map(|t| t.0),
            b.truncate.as_ref().map(|t| t.0)
        );
    }

    #[test]
    fn the_pass_made_as_changes_are_set_aside_is_the_folds_own() {
        let dir = tempfile::tempdir().unwrap();
        let key = vec!["id".to_owned()];
        let reading: Reading = (Lsn(10), 1, None);
        // More keys than the sample holds, a truncate among them, rows before the position.
        let mut batches: Vec<RecordBatch> = (0..12)
            .map(|i| changes(i * 1000, &["update"; 1000], 20 + i as u64, None))
            .collect();
        batches.insert(
            3,
            changes(50_000, &["insert", "truncate", "insert"], 15, None),
        );
        batches.insert(5, changes(60_000, &["delete"; 40], 5, None));
        let mut spill = crate::spill::SpillWriter::new(Some(dir.path()), "t-");
        let mut surveying = Surveying::new(reading, key.clone(), false);
        for b in &batches {
            surveying.see(b).unwrap();
            spill.write(b).unwrap();
        }
        let path = spill.path().unwrap().to_path_buf();
        let _spilled = spill.finish().unwrap().unwrap();
        let own = survey(&[], Some(&path), reading, &key, false).unwrap();
        assert_eq!(own.rows, 12 * 1000 + 3);
        assert_eq!(own.truncate.as_ref().map(|t| t.0), Some(3 * 1000 + 1));
        assert!(!own.key_changed);
        assert_eq!(own.sample.len(), SAMPLE);
        let made = surveying.made_for(reading, &key, false).unwrap();
        same(&made, &own);
        // Made for another position, other columns, another key: not taken.
        assert!(
            surveying
                .made_for((Lsn(11), 1, None), &key, false)
                .is_none()
        );
        assert!(
            surveying
                .made_for((Lsn(10), 2, None), &key, false)
                .is_none()
        );
        assert!(
            surveying
                .made_for(reading, &["other".to_owned()], false)
                .is_none()
        );
        assert!(surveying.made_for(reading, &key, true).is_none());

        // An update that changed its key is found the same way.
        let moved = changes(90_000, &["update"; 3], 30, Some(-1));
        surveying.see(&moved).unwrap();
        assert!(
            surveying
                .made_for(reading, &key, false)
                .unwrap()
                .key_changed
        );
    }
}
