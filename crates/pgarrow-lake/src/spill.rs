//! Batches set aside on local disk past a memory budget: Arrow IPC streams in a spill
//! directory (the system's temporary directory unless given), each file removed when what
//! holds it is dropped, read back a batch at a time.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use pgarrow::{Error, ErrorKind, Result};

/// A spill file's failure at `path`: the disk's (full, out of file handles, unwritable) as
/// such, else Arrow's.
pub(crate) fn spill_error(path: &Path, e: impl Into<Fault>) -> Error {
    match e.into() {
        Fault::Io(source) | Fault::Arrow(arrow_schema::ArrowError::IoError(_, source)) => {
            Error::from(pgarrow::io::Error::Io {
                what: "setting changes aside in",
                path: path.to_path_buf(),
                source,
            })
        }
        Fault::Arrow(e) => Error::from(ErrorKind::Internal(format!(
            "changes set aside in {}: {e}",
            path.display()
        ))),
    }
}

/// What a spill file's write or read can fail with.
pub(crate) enum Fault {
    Io(std::io::Error),
    Arrow(arrow_schema::ArrowError),
}

impl From<std::io::Error> for Fault {
    fn from(e: std::io::Error) -> Self {
        Fault::Io(e)
    }
}

impl From<arrow_schema::ArrowError> for Fault {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Fault::Arrow(e)
    }
}

/// A spill file being written: made at its first rows (a writer that gets none takes no file
/// handle), each batch flushed so that a reader sees it.
pub(crate) struct SpillWriter {
    dir: PathBuf,
    prefix: &'static str,
    file: Option<tempfile::TempPath>,
    writer: Option<arrow_ipc::writer::StreamWriter<BufWriter<File>>>,
    schema: Option<SchemaRef>,
    rows: u64,
    bytes: u64,
}

impl SpillWriter {
    /// A file of `dir` (the system's temporary directory when `None`) named `prefix...`.
    pub(crate) fn new(dir: Option<&Path>, prefix: &'static str) -> SpillWriter {
        SpillWriter {
            dir: dir.map_or_else(std::env::temp_dir, Path::to_path_buf),
            prefix,
            file: None,
            writer: None,
            schema: None,
            rows: 0,
            bytes: 0,
        }
    }

    /// Appends `batch`.
    ///
    /// # Errors
    /// The file's.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.writer.is_none() {
            let (out, path) = tempfile::Builder::new()
                .prefix(self.prefix)
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
            w.write(batch)
                .and_then(|()| w.flush())
                .map_err(|e| spill_error(path, e))?;
        }
        self.rows += batch.num_rows() as u64;
        self.bytes += batch.get_array_memory_size() as u64;
        Ok(())
    }

    /// Where it is, once it holds rows.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The memory of the batches written, about.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The rows written, the file closed (`None`: no rows).
    ///
    /// # Errors
    /// The file's.
    pub(crate) fn finish(mut self) -> Result<Option<Spilled>> {
        match (self.writer.take(), self.schema.take(), self.file.take()) {
            (Some(mut w), Some(schema), Some(file)) => {
                w.finish().map_err(|e| spill_error(&file, e))?;
                drop(w);
                Ok(Some(Spilled {
                    file,
                    schema,
                    rows: self.rows,
                }))
            }
            _ => Ok(None),
        }
    }
}

/// Batches set aside (removed when the last holder drops it).
pub(crate) struct Spilled {
    file: tempfile::TempPath,
    pub(crate) schema: SchemaRef,
    pub(crate) rows: u64,
}

impl std::fmt::Debug for Spilled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spilled({} rows at {})", self.rows, self.file.display())
    }
}

impl Spilled {
    /// Its batches, in order, to `each`. Blocking.
    ///
    /// # Errors
    /// The file's and `each`'s.
    pub(crate) fn each(&self, each: impl FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        read_spill(&self.file, each)
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

    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn batches_come_back_in_order_and_the_file_goes_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let mut w = SpillWriter::new(Some(dir.path()), "t-");
        assert!(w.path().is_none());
        for i in 0..5 {
            let b = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from_iter_values(i * 10..i * 10 + 10))],
            )
            .unwrap();
            w.write(&b).unwrap();
        }
        let spilled = w.finish().unwrap().unwrap();
        assert_eq!(spilled.rows, 50);
        let mut seen = Vec::new();
        spilled
            .each(|b| {
                let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                seen.extend(ids.values().iter().copied());
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        drop(spilled);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // An unwritable directory is the disk's error, naming it.
        let e = SpillWriter::new(Some(&dir.path().join("missing")), "t-")
            .write(
                &RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
