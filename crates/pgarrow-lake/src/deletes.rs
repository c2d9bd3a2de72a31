//! Position delete files, as Iceberg specifies them and DuckLake writes them too: a Parquet
//! file of `file_path` (the data file) and `pos` (a row's position in it, from 0), sorted by
//! both, the columns carrying Iceberg's reserved field IDs.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::live::Positions;
use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use pgarrow::io::{Input, InputOptions, Location};
use pgarrow::{Error, ErrorKind, Result};

/// Iceberg's field IDs of a position delete file's columns.
const FILE_PATH_ID: &str = "2147483546";
const POS_ID: &str = "2147483545";

fn failed(e: impl std::fmt::Display) -> Error {
    ErrorKind::Internal(format!("a position delete file: {e}")).into()
}

/// Writes at `at` the position delete file of `deletes` (each data file's path, as readers
/// name it, and its positions, ascending): its size and its footer's length. Blocking.
///
/// # Errors
/// The storage's.
pub(crate) fn write(at: &Location, deletes: &[(String, Positions)]) -> Result<(u64, u64)> {
    let field = |name: &str, ty: DataType, id: &str| {
        Field::new(name, ty, false).with_metadata(
            [("PARQUET:field_id".to_owned(), id.to_owned())]
                .into_iter()
                .collect::<std::collections::HashMap<String, String>>(),
        )
    };
    // Plain text in the embedded Arrow schema, as Iceberg's own writers declare it (engines
    // built on arrow-rs refuse a dictionary there); Parquet still dictionary-encodes the
    // repeated paths on the page.
    let schema = Arc::new(Schema::new(vec![
        field("file_path", DataType::Utf8, FILE_PATH_ID),
        field("pos", DataType::Int64, POS_ID),
    ]));
    let mut sorted: Vec<&(String, Positions)> = deletes.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut bytes = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut bytes, schema.clone(), None).map_err(failed)?;
    // In batches of a bounded size: a file may lose millions of rows in one commit.
    const BATCH: usize = 64 * 1024;
    let mut rows = sorted
        .iter()
        .flat_map(|(path, p)| p.iter().map(move |pos| (path.as_str(), pos)))
        .peekable();
    while rows.peek().is_some() {
        let chunk: Vec<(&str, u64)> = rows.by_ref().take(BATCH).collect();
        let paths = StringArray::from_iter_values(chunk.iter().map(|(path, _)| *path));
        let positions = Int64Array::from_iter_values(chunk.iter().map(|&(_, p)| p as i64));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(paths), Arc::new(positions)])
                .map_err(failed)?;
        writer.write(&batch).map_err(failed)?;
    }
    writer.close().map_err(failed)?;
    let footer = bytes
        .len()
        .checked_sub(8)
        .map(|at| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]))
        .unwrap_or(0);
    at.write_atomically(&bytes)?;
    Ok((bytes.len() as u64, u64::from(footer)))
}

/// The positions a position delete file at `at` deletes, by data file path (ascending, as
/// listed). Blocking.
///
/// # Errors
/// A file without a string `file_path` and an int64 `pos`, or with a null or negative
/// position (named); the storage's.
pub(crate) fn read(at: &Location) -> Result<BTreeMap<String, Vec<u64>>> {
    let shown = at.to_string();
    let bad = |what: &str| -> Error {
        ErrorKind::InvalidInput(format!("the position delete file {shown} {what}")).into()
    };
    let input = Input::open(std::slice::from_ref(at), &InputOptions::default())?;
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for batch in input {
        let batch = batch.map_err(|e| Error::from(pgarrow::io::Error::Input(e)))?;
        let pos = batch
            .column_by_name("pos")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(|| bad("has no int64 column \"pos\""))?;
        let paths = batch
            .column_by_name("file_path")
            .ok_or_else(|| bad("has no column \"file_path\""))?;
        let path_at = text_column(paths.as_ref())
            .ok_or_else(|| bad("has a \"file_path\" that is not text"))?;
        for row in 0..batch.num_rows() {
            let (Some(path), false) = (path_at(row), pos.is_null(row) || pos.value(row) < 0) else {
                return Err(bad("lists a null path or a null or negative position"));
            };
            match out.get_mut(path) {
                Some(p) => p.push(pos.value(row) as u64),
                None => {
                    out.insert(path.to_owned(), vec![pos.value(row) as u64]);
                }
            }
        }
    }
    Ok(out)
}

/// Each row's text of a string column (plain, large, view, or dictionary-encoded).
#[allow(clippy::type_complexity)]
fn text_column<'a>(a: &'a dyn Array) -> Option<Box<dyn Fn(usize) -> Option<&'a str> + 'a>> {
    use arrow_array::cast::AsArray;
    Some(match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            Box::new(move |i| (!s.is_null(i)).then(|| s.value(i)))
        }
        DataType::LargeUtf8 => {
            let s = a.as_string::<i64>();
            Box::new(move |i| (!s.is_null(i)).then(|| s.value(i)))
        }
        DataType::Utf8View => {
            let s = a.as_string_view();
            Box::new(move |i| (!s.is_null(i)).then(|| s.value(i)))
        }
        DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => {
            let d = a.as_dictionary::<arrow_array::types::Int32Type>();
            let values = d.values().as_string::<i32>();
            Box::new(move |i| (!d.is_null(i)).then(|| values.value(d.keys().value(i) as usize)))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_deletes_read_back_by_data_file() {
        let dir = tempfile::tempdir().unwrap();
        let at = Location::parse(
            dir.path().join("d.parquet").to_str().unwrap(),
            &Default::default(),
        )
        .unwrap();
        let deletes = vec![
            ("s3://b/data/z.parquet".to_owned(), vec![0, 7, 9].into()),
            ("s3://b/data/a.parquet".to_owned(), vec![3].into()),
        ];
        let (bytes, footer) = write(&at, &deletes).unwrap();
        assert!(bytes > footer && footer > 0);
        let back = read(&at).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back["s3://b/data/z.parquet"], vec![0, 7, 9]);
        assert_eq!(back["s3://b/data/a.parquet"], vec![3]);
        // Plain text as readers built on arrow-rs expect it (not a dictionary), the paths
        // still dictionary-encoded on the page.
        let file = std::fs::File::open(dir.path().join("d.parquet")).unwrap();
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert_eq!(builder.schema().field(0).data_type(), &DataType::Utf8);
        let column = builder.metadata().row_group(0).column(0);
        assert!(
            column
                .encodings()
                .any(|e| e == parquet::basic::Encoding::RLE_DICTIONARY),
            "{:?}",
            column.encodings().collect::<Vec<_>>()
        );
    }
}
