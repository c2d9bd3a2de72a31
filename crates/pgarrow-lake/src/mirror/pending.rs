//! A table's changes since its last commit: held in memory up to a share of the budget, then
//! set aside in a spill file (Arrow IPC, in the spill directory) that a commit reads back a
//! batch at a time (see [`Live::plan_large`](crate::live::Live::plan_large)).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;
use pgarrow::{Error, ErrorKind, Result};
use pgarrow_changes::COMMIT_LSN_COLUMN;
use pgarrow_protocol::replication::Lsn;

/// A table's pending changes, in the order they came.
#[derive(Default)]
pub(crate) struct Pending {
    batches: Vec<RecordBatch>,
    /// The memory of `batches`.
    bytes: usize,
    /// Changes, all told.
    rows: usize,
    /// The newest commit position among them.
    newest: u64,
    schema: Option<SchemaRef>,
    spill: Option<Spill>,
}

/// The changes set aside: a file of the spill directory (removed when dropped).
struct Spill {
    file: tempfile::TempPath,
    writer: arrow_ipc::writer::StreamWriter<BufWriter<File>>,
    bytes: u64,
}

/// A spill file's failure at `path`: the disk's (full, out of file handles, unwritable) as
/// such, else Arrow's.
pub(crate) fn spill_error(path: &Path, e: impl Into<SpillFault>) -> Error {
    match e.into() {
        SpillFault::Io(source) | SpillFault::Arrow(arrow_schema::ArrowError::IoError(_, source)) => {
            Error::from(pgarrow::io::Error::Io {
                what: "setting changes aside in",
                path: path.to_path_buf(),
                source,
            })
        }
        SpillFault::Arrow(e) => Error::from(ErrorKind::Internal(format!(
            "changes set aside in {}: {e}",
            path.display()
        ))),
    }
}

/// What a spill file's write or read can fail with.
pub(crate) enum SpillFault {
    Io(std::io::Error),
    Arrow(arrow_schema::ArrowError),
}

impl From<std::io::Error> for SpillFault {
    fn from(e: std::io::Error) -> Self {
        SpillFault::Io(e)
    }
}

impl From<arrow_schema::ArrowError> for SpillFault {
    fn from(e: arrow_schema::ArrowError) -> Self {
        SpillFault::Arrow(e)
    }
}

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Drops every change (and the spill file).
    pub(crate) fn clear(&mut self) {
        *self = Pending::default();
    }

    /// Their columns (the first batch's).
    pub(crate) fn schema(&self) -> Option<SchemaRef> {
        self.schema.clone()
    }

    /// Whether they were set aside in a spill file.
    pub(crate) fn spilled(&self) -> bool {
        self.spill.is_some()
    }

    /// Whether any of them committed at or after `lsn`.
    pub(crate) fn any_since(&self, lsn: Lsn) -> bool {
        !self.is_empty() && self.newest >= lsn.0
    }

    /// Bytes set aside on disk.
    pub(crate) fn spilled_bytes(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.bytes)
    }

    /// Adds `batch`; past `limit` bytes in memory, they are all set aside in a file of `dir`
    /// (the system's temporary directory when `None`), and the later ones go there too.
    ///
    /// # Errors
    /// The spill file's.
    pub(crate) fn push(&mut self, batch: RecordBatch, limit: usize, dir: Option<&Path>) -> Result<()> {
        if let Some(commits) = batch
            .column_by_name(COMMIT_LSN_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::UInt64Array>())
            && let Some(&max) = commits.values().iter().max()
        {
            self.newest = self.newest.max(max);
        }
        self.rows += batch.num_rows();
        if self.schema.is_none() {
            self.schema = Some(batch.schema());
        }
        if let Some(spill) = &mut self.spill {
            return spill.write(&batch);
        }
        self.bytes += batch.get_array_memory_size();
        self.batches.push(batch);
        if self.bytes > limit {
            let schema = self.batches[0].schema();
            let mut spill = Spill::new(dir, &schema)?;
            for b in std::mem::take(&mut self.batches) {
                spill.write(&b)?;
            }
            self.bytes = 0;
            self.spill = Some(spill);
        }
        Ok(())
    }

    /// The batches held in memory (none once set aside).
    pub(crate) fn in_memory(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Where they were set aside.
    pub(crate) fn spill_path(&self) -> Option<PathBuf> {
        self.spill.as_ref().map(|s| s.file.to_path_buf())
    }
}

impl Spill {
    fn new(dir: Option<&Path>, schema: &SchemaRef) -> Result<Spill> {
        let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let (out, file) = tempfile::Builder::new()
            .prefix("pgarrow-mirror-")
            .suffix(".arrows")
            .tempfile_in(&dir)
            .map_err(|e| spill_error(&dir, e))?
            .into_parts();
        let writer = arrow_ipc::writer::StreamWriter::try_new(BufWriter::new(out), schema)
            .map_err(|e| spill_error(&file, e))?;
        Ok(Spill {
            file,
            writer,
            bytes: 0,
        })
    }

    /// Appends `batch`, flushed so that a reader sees it.
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .and_then(|()| self.writer.flush())
            .map_err(|e| spill_error(&self.file, e))?;
        self.bytes += batch.get_array_memory_size() as u64;
        Ok(())
    }
}

/// The batches of the spill file at `path`, in order, to `each`. Blocking.
///
/// # Errors
/// The file's and `each`'s.
pub(crate) fn read_spill(
    path: &Path,
    mut each: impl FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| spill_error(path, e))?;
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::BufReader::new(file), None)
        .map_err(|e| spill_error(path, e))?;
    for batch in reader {
        each(batch.map_err(|e| spill_error(path, e))?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, UInt64Array};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch(from: i64, n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(COMMIT_LSN_COLUMN, DataType::UInt64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(from..from + n)),
                Arc::new(UInt64Array::from_iter_values((from..from + n).map(|v| v as u64))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn past_the_limit_changes_are_set_aside_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pending::default();
        p.push(batch(0, 10), 1 << 20, Some(dir.path())).unwrap();
        assert!(!p.spilled() && p.in_memory().len() == 1);
        for i in 1..20 {
            p.push(batch(i * 10, 10), 4096, Some(dir.path())).unwrap();
        }
        assert!(p.spilled() && p.in_memory().is_empty());
        assert!(p.any_since(Lsn(199)) && !p.any_since(Lsn(200)));
        let mut seen = Vec::new();
        read_spill(&p.spill_path().unwrap(), |b| {
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            seen.extend(ids.values().iter().copied());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        let path = p.spill_path().unwrap();
        p.clear();
        assert!(p.is_empty() && !path.exists());
    }
}
