//! Iceberg's equality deletes (rows deleted by value, as Flink's and other streaming writers
//! write them) turned into the positions they delete in each data file, as the specification
//! applies them: an equality delete file deletes the rows of the data files of an older data
//! sequence number (strictly) in its partition (every partition when its spec has none) whose
//! values of its equality columns (by field ID) equal one of its rows, a NULL equal to a NULL.
//!
//! The delete files' keys are held in memory (they are small: the values of a few columns of
//! the rows deleted); each data file they apply to is read for those columns alone.

use std::collections::{HashMap, HashSet};

use arrow_array::{Array, ArrayRef, RecordBatch};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pgarrow::io::{Location, StorageOptions};
use pgarrow::{Error, ErrorKind, Result};
use pgarrow_changes::net::KeyEncoder;

use crate::avro::Value;

/// An equality delete file of a snapshot.
pub(crate) struct EqualityDelete {
    pub(crate) path: String,
    /// Its data sequence number.
    pub(crate) sequence: i64,
    pub(crate) spec_id: i64,
    pub(crate) partition: Value,
    /// Its equality columns' field IDs.
    pub(crate) ids: Vec<i32>,
}

/// A data file an equality delete may apply to.
pub(crate) struct Target<'a> {
    pub(crate) path: &'a str,
    pub(crate) sequence: i64,
    pub(crate) spec_id: i64,
    pub(crate) partition: &'a Value,
}

/// Whether a partition tuple is of an unpartitioned spec (a delete of it applies everywhere).
fn global(partition: &Value) -> bool {
    match partition {
        Value::Record(fields) => fields.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

/// The positions `deletes` delete in each of `data` (by path; files they delete nothing from
/// are left out). Blocking.
///
/// # Errors
/// A file that cannot be read; a delete file or data file without an equality column.
pub(crate) fn positions(
    data: &[Target<'_>],
    deletes: &[EqualityDelete],
    storage: &StorageOptions,
) -> Result<HashMap<String, Vec<u64>>> {
    let mut out = HashMap::new();
    if deletes.is_empty() {
        return Ok(out);
    }
    // Each delete file's keys, read once.
    let mut keys: Vec<HashSet<Vec<u8>>> = Vec::with_capacity(deletes.len());
    for d in deletes {
        let at = crate::iceberg::located(&d.path, storage)?;
        keys.push(
            row_keys(&at, &d.ids, "equality delete file")?
                .into_iter()
                .collect(),
        );
    }
    for file in data {
        // The delete files that apply to it, grouped by their equality columns.
        let mut groups: Vec<(&[i32], Vec<usize>)> = Vec::new();
        for (k, d) in deletes.iter().enumerate() {
            let applies = file.sequence < d.sequence
                && (global(&d.partition)
                    || (d.spec_id == file.spec_id && &d.partition == file.partition));
            if !applies {
                continue;
            }
            match groups.iter_mut().find(|(ids, _)| *ids == d.ids.as_slice()) {
                Some((_, ks)) => ks.push(k),
                None => groups.push((&d.ids, vec![k])),
            }
        }
        if groups.is_empty() {
            continue;
        }
        let at = crate::iceberg::located(file.path, storage)?;
        let mut deleted = Vec::new();
        for (ids, ks) in groups {
            for (position, key) in row_keys(&at, ids, "data file")?.iter().enumerate() {
                if ks.iter().any(|&k| keys[k].contains(key)) {
                    deleted.push(position as u64);
                }
            }
        }
        if !deleted.is_empty() {
            deleted.sort_unstable();
            deleted.dedup();
            out.insert(file.path.to_owned(), deleted);
        }
    }
    Ok(out)
}

/// Each row's key of the columns with field `ids` of the Parquet file at `at` (read alone),
/// in the file's order.
fn row_keys(at: &Location, ids: &[i32], what: &str) -> Result<Vec<Vec<u8>>> {
    let shown = at.to_string();
    let bad = |e: &dyn std::fmt::Display| -> Error {
        ErrorKind::InvalidInput(format!("the {what} {shown}: {e}")).into()
    };
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(Bytes::from(at.read()?)).map_err(|e| bad(&e))?;
    let id_of = |f: &arrow_schema::Field| {
        f.metadata()
            .get(parquet::arrow::PARQUET_FIELD_ID_META_KEY)
            .and_then(|v| v.parse::<i32>().ok())
    };
    let roots = ids
        .iter()
        .map(|id| {
            builder
                .schema()
                .fields()
                .iter()
                .position(|f| id_of(f) == Some(*id))
                .ok_or_else(|| bad(&format!("it has no column of field ID {id}")))
        })
        .collect::<Result<Vec<usize>>>()?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.clone());
    // The projection keeps the file's order of columns: the IDs' order is put back by ID.
    let reader = builder.with_projection(mask).build().map_err(|e| bad(&e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|e| bad(&e))?;
        let columns = ids
            .iter()
            .map(|id| {
                batch
                    .schema()
                    .fields()
                    .iter()
                    .position(|f| id_of(f) == Some(*id))
                    .map(|k| batch.column(k).clone())
                    .ok_or_else(|| bad(&format!("it has no column of field ID {id}")))
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let arrays: Vec<&dyn Array> = columns.iter().map(|c| c.as_ref()).collect();
        let (body, ends) = KeyEncoder::encode_all(&arrays).map_err(|e| bad(&e))?;
        let mut start = 0;
        for end in ends {
            out.push(body[start..end].to_vec());
            start = end;
        }
    }
    Ok(out)
}
