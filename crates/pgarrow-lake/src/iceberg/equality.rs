//! Iceberg's equality deletes (rows deleted by value, as Flink's and other streaming writers
//! write them) turned into the positions they delete in each data file, as the specification
//! applies them: an equality delete file deletes the rows of the data files of an older data
//! sequence number (strictly) in its partition (every partition when its spec has none) whose
//! values of its equality columns (by field ID) equal one of its rows, a NULL equal to a NULL.
//!
//! The delete files' keys are held in memory up to a budget (they are small: the values of a
//! few columns of the rows deleted), in passes past it; each data file they apply to is read
//! for those columns alone, once per pass.

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

/// The memory the delete files' keys may take at once: past it, the keys read so far are
/// applied (each data file they may apply to read for its equality columns) and let go before
/// more are read, so the import's memory does not grow with the deletes.
const KEY_BUDGET: usize = 64 << 20;

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
    positions_within(data, deletes, storage, KEY_BUDGET)
}

/// [`positions`], the delete files' keys held `budget` bytes at a time.
fn positions_within(
    data: &[Target<'_>],
    deletes: &[EqualityDelete],
    storage: &StorageOptions,
    budget: usize,
) -> Result<HashMap<String, Vec<u64>>> {
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    // The keys of this pass, per delete file, and the bytes they take.
    let mut keys: Vec<HashSet<Vec<u8>>> = vec![HashSet::new(); deletes.len()];
    let mut held = 0usize;
    for (k, d) in deletes.iter().enumerate() {
        let at = crate::iceberg::located(&d.path, storage)?;
        each_key(&at, &d.ids, "equality delete file", |_, key| {
            // The key, and about what a set's entry costs beside it.
            held += key.len() + 48;
            keys[k].insert(key.to_vec());
            if held >= budget {
                apply(data, deletes, &keys, storage, &mut out)?;
                keys = vec![HashSet::new(); deletes.len()];
                held = 0;
            }
            Ok(())
        })?;
    }
    if held > 0 {
        apply(data, deletes, &keys, storage, &mut out)?;
    }
    for deleted in out.values_mut() {
        deleted.sort_unstable();
        deleted.dedup();
    }
    Ok(out)
}

/// Adds to `out` the positions of each of `data` whose key equals one of `keys` (the keys of
/// this pass, per delete file) of a delete that applies to it.
fn apply(
    data: &[Target<'_>],
    deletes: &[EqualityDelete],
    keys: &[HashSet<Vec<u8>>],
    storage: &StorageOptions,
    out: &mut HashMap<String, Vec<u64>>,
) -> Result<()> {
    for file in data {
        // The delete files that apply to it (with keys in this pass), grouped by their
        // equality columns.
        let mut groups: Vec<(&[i32], Vec<usize>)> = Vec::new();
        for (k, d) in deletes.iter().enumerate() {
            let applies = !keys[k].is_empty()
                && file.sequence < d.sequence
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
            each_key(&at, ids, "data file", |position, key| {
                if ks.iter().any(|&k| keys[k].contains(key)) {
                    deleted.push(position);
                }
                Ok(())
            })?;
        }
        if !deleted.is_empty() {
            out.entry(file.path.to_owned()).or_default().extend(deleted);
        }
    }
    Ok(())
}

/// Each row's position and key of the columns with field `ids` of the Parquet file at `at`
/// (read alone, a batch at a time), in the file's order, given to `f`.
fn each_key(
    at: &Location,
    ids: &[i32],
    what: &str,
    mut f: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
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
    let mut position = 0u64;
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
            f(position, &body[start..end])?;
            position += 1;
            start = end;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A Parquet file at `dir/name` of one nullable int64 column of field ID 1.
    fn file(dir: &std::path::Path, name: &str, values: &[Option<i64>]) -> String {
        let field = arrow_schema::Field::new("k", arrow_schema::DataType::Int64, true)
            .with_metadata(HashMap::from([(
                parquet::arrow::PARQUET_FIELD_ID_META_KEY.to_owned(),
                "1".to_owned(),
            )]));
        let schema = Arc::new(arrow_schema::Schema::new(vec![field]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow_array::Int64Array::from(values.to_vec()))],
        )
        .unwrap();
        let path = dir.join(name);
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            schema,
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn deletes_apply_the_same_whatever_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let old = file(
            dir.path(),
            "old.parquet",
            &[Some(1), Some(2), Some(3), Some(1), None, Some(2)],
        );
        let new = file(dir.path(), "new.parquet", &[Some(1), None]);
        let unpartitioned = Value::Record(Vec::new());
        let data = [
            Target {
                path: &old,
                sequence: 1,
                spec_id: 0,
                partition: &unpartitioned,
            },
            // Written after the deletes: they do not apply to it.
            Target {
                path: &new,
                sequence: 3,
                spec_id: 0,
                partition: &unpartitioned,
            },
        ];
        let delete = |name: &str, values: &[Option<i64>]| EqualityDelete {
            path: file(dir.path(), name, values),
            sequence: 2,
            spec_id: 0,
            partition: unpartitioned.clone(),
            ids: vec![1],
        };
        let deletes = [
            delete("a.parquet", &[Some(1), None]),
            delete("b.parquet", &[Some(3)]),
        ];
        let storage = StorageOptions::default();
        let want = HashMap::from([(old.clone(), vec![0, 2, 3, 4])]);
        // One pass; a pass per key (a budget of one byte).
        assert_eq!(
            positions_within(&data, &deletes, &storage, usize::MAX).unwrap(),
            want
        );
        assert_eq!(
            positions_within(&data, &deletes, &storage, 1).unwrap(),
            want
        );
    }
}
