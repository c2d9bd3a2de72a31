//! The key columns of a table's data file, read one row group at a time: only the footer and
//! the key columns' chunks are read (ranged reads of an object), and only one row group's keys
//! are in memory at once, however large the file.

use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::{Buf, Bytes};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::reader::{ChunkReader, Length};
use pgarrow::{Error, ErrorKind, Result};

use super::LiveFile;
use crate::cleanup::blocking;

/// Rows per batch a row group's keys come in.
const BATCH_ROWS: usize = 64 * 1024;

/// A data file opened for its keys: its footer read, the key columns found.
pub(crate) struct KeyReader {
    /// The file (where it is, its constants; not its deleted positions).
    file: Arc<LiveFile>,
    key: Arc<[String]>,
    metadata: ArrowReaderMetadata,
    mask: ProjectionMask,
    /// The key columns' leaves.
    leaves: Vec<usize>,
}

impl KeyReader {
    /// Reads the footer of `file` and finds the columns of `key` in it (a column the file
    /// leaves out comes from its constant).
    ///
    /// # Errors
    /// The storage's; [`ErrorKind::InvalidInput`] when the file is not Parquet or lacks a key
    /// column.
    pub(crate) async fn open(file: &LiveFile, key: &[String]) -> Result<KeyReader> {
        // Where it is and what it leaves out (not its deleted positions, which may be many).
        let file = Arc::new(LiveFile {
            location: file.location.clone(),
            constants: file.constants.clone(),
            deleted: Default::default(),
            ..*file
        });
        let key: Arc<[String]> = key.into();
        blocking(move || {
            let bad = |e: &dyn std::fmt::Display| bad(&file, e);
            let (metadata, _) = file.location.parquet_metadata().map_err(|e| bad(&e))?;
            let metadata =
                ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new())
                    .map_err(|e| bad(&e))?;
            let arrow = metadata.schema().clone();
            let constant = |k: &String| file.constants.iter().any(|c| &c.name == k);
            let roots = key
                .iter()
                .filter(|k| !constant(k))
                .map(|k| {
                    arrow
                        .index_of(k)
                        .map_err(|_| bad(&format!("no key column {k:?}")))
                })
                .collect::<Result<Vec<_>>>()?;
            let mask =
                ProjectionMask::roots(metadata.metadata().file_metadata().schema_descr(), roots);
            let leaves = (0..metadata
                .metadata()
                .file_metadata()
                .schema_descr()
                .num_columns())
                .filter(|&i| mask.leaf_included(i))
                .collect();
            Ok(KeyReader {
                file,
                key,
                metadata,
                mask,
                leaves,
            })
        })
        .await
    }

    /// Its row groups.
    pub(crate) fn row_groups(&self) -> usize {
        self.metadata.metadata().num_row_groups()
    }

    /// The bytes of the key columns' chunks in all its row groups (what reading its keys
    /// reads, besides the footer).
    pub(crate) fn key_bytes(&self) -> u64 {
        let groups = self.metadata.metadata().row_groups();
        groups
            .iter()
            .flat_map(|g| self.leaves.iter().map(|&i| g.column(i).compressed_size()))
            .map(|b| u64::try_from(b).unwrap_or(0))
            .sum()
    }

    /// The keys of row group `group`, in the order of the key's columns: only its key
    /// columns' chunks read.
    ///
    /// # Errors
    /// The storage's; [`ErrorKind::InvalidInput`] when the chunks do not decode.
    pub(crate) async fn read(&self, group: usize) -> Result<Vec<RecordBatch>> {
        let (file, key) = (self.file.clone(), self.key.clone());
        let (metadata, mask) = (self.metadata.clone(), self.mask.clone());
        let ranges: Vec<std::ops::Range<u64>> = self
            .leaves
            .iter()
            .map(|&i| {
                let (start, len) = metadata.metadata().row_group(group).column(i).byte_range();
                start..start + len
            })
            .collect();
        blocking(move || {
            let bad = |e: &dyn std::fmt::Display| bad(&file, e);
            let parts = file.location.read_ranges(&ranges)?;
            let chunks = Chunks(ranges.iter().map(|r| r.start).zip(parts).collect());
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(chunks, metadata)
                .with_projection(mask)
                .with_row_groups(vec![group])
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| bad(&e))?;
            let mut out = Vec::new();
            for batch in reader {
                let batch = file.with_constants(batch.map_err(|e| bad(&e))?)?;
                // The projection keeps the file's column order: put the key's back.
                let columns = key
                    .iter()
                    .map(|k| {
                        batch
                            .column_by_name(k)
                            .cloned()
                            .ok_or_else(|| bad(&format!("no key column {k:?}")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let fields: Vec<_> = key
                    .iter()
                    .zip(&columns)
                    .map(|(k, c)| arrow_schema::Field::new(k, c.data_type().clone(), true))
                    .collect();
                out.push(
                    RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns)
                        .map_err(|e| bad(&e))?,
                );
            }
            Ok(out)
        })
        .await
    }
}

fn bad(file: &LiveFile, e: &dyn std::fmt::Display) -> Error {
    Error::from(ErrorKind::InvalidInput(format!(
        "reading {}: {e}",
        file.location
    )))
}

/// Some byte ranges of a file, each starting where its offset says: what a row group's key
/// columns need, served to the Parquet reader as if it were the file.
struct Chunks(Vec<(u64, Bytes)>);

impl Chunks {
    /// The part holding `start`, from there on.
    fn from(&self, start: u64) -> parquet::errors::Result<Bytes> {
        // The part that holds `start`; at a part's very end (two chunks side by side: the
        // next one's start), the empty rest of the part only when no part starts there.
        let within = |(at, b): &&(u64, Bytes)| *at <= start && start < at + b.len() as u64;
        let at_end = |(at, b): &&(u64, Bytes)| start == at + b.len() as u64;
        self.0
            .iter()
            .find(within)
            .or_else(|| self.0.iter().find(at_end))
            .map(|(at, b)| b.slice(usize::try_from(start - at).unwrap_or(0)..))
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "offset {start} is outside the key columns' chunks"
                ))
            })
    }
}

impl Length for Chunks {
    fn len(&self) -> u64 {
        self.0
            .iter()
            .map(|(at, b)| at + b.len() as u64)
            .max()
            .unwrap_or(0)
    }
}

impl ChunkReader for Chunks {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.from(start)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let part = self.from(start)?;
        if part.len() < length {
            return Err(parquet::errors::ParquetError::General(format!(
                "{length} bytes at offset {start} run past the key columns' chunks"
            )));
        }
        Ok(part.slice(..length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_serve_only_what_they_hold() {
        let c = Chunks(vec![
            (10, Bytes::from_static(b"abcd")),
            (100, Bytes::from_static(b"xyz")),
        ]);
        assert_eq!(c.len(), 103);
        assert_eq!(&c.get_bytes(11, 2).unwrap()[..], b"bc");
        assert_eq!(&c.get_bytes(100, 3).unwrap()[..], b"xyz");
        let mut s = String::new();
        std::io::Read::read_to_string(&mut c.get_read(12).unwrap(), &mut s).unwrap();
        assert_eq!(s, "cd");
        assert!(c.get_bytes(12, 3).is_err(), "past a part's end");
        assert!(c.get_bytes(50, 1).is_err(), "between parts");
        assert!(c.get_read(9).is_err(), "before the first");
        // Two chunks side by side: the second's start is the second's, not the first's end.
        let c = Chunks(vec![
            (0, Bytes::from_static(b"ab")),
            (2, Bytes::from_static(b"cd")),
        ]);
        assert_eq!(&c.get_bytes(2, 2).unwrap()[..], b"cd");
        assert_eq!(&c.get_bytes(0, 2).unwrap()[..], b"ab");
    }
}
