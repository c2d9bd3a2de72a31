//! Where batches go: Parquet, Arrow IPC file or stream, or nowhere (for measuring).
//!
//! A [`Sink`] writes RecordBatches of one schema to an [`Output`]. File outputs are written to a
//! temporary file in the target's directory and renamed over the target only by
//! [`Sink::finish`]: a sink dropped without finishing (an error, a cancellation) leaves no file
//! at the target path and removes its temporary file.
//!
//! Parquet cannot hold everything Arrow can: arrow-rs refuses `Interval(MonthDayNano)`, and
//! Parquet's own INTERVAL keeps only milliseconds. The Parquet sink therefore writes an interval,
//! at any depth (a column, a list element, a struct field), as
//! `Struct{months: Int32, days: Int32, microseconds: Int64}`, which is exact for PostgreSQL
//! intervals, and says so in the field's metadata (`pgarrow.interval_encoding`). A result with
//! no columns, or a struct with no fields, which Parquet cannot hold, is refused before any file
//! is created, naming the column.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Int32Array, RecordBatch};
//! use arrow_schema::{DataType, Field, Schema};
//! use pgarrow_io::{Format, Output, Sink, SinkOptions};
//!
//! let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true)]));
//! let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(vec![1, 2]))])?;
//! let dir = std::env::temp_dir().join(format!("pgarrow-sink-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("n.parquet");
//! let mut sink = Sink::create(Format::Parquet, Output::File(path.clone()), &schema, &SinkOptions::default())?;
//! sink.write(&batch)?;
//! let written = sink.finish()?;
//! assert!(written > 0 && path.exists());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
use crate::Result;

pub(crate) mod geo;
mod options;
mod order;
mod output;
mod parquet_compat;
mod row_groups;

use geo::{Covering, GEO_KEY, GeoColumns};
use options::writer_properties;
pub use options::{
    BloomFilter, ColumnEncoding, Compression, DEFAULT_ROW_GROUP_BYTES, Encoding, FieldIds, Format,
    IntervalEncoding, SinkOptions, SortKey, with_field_ids, with_field_ids_from,
};
use order::OrderCheck;
use output::Out;
pub use output::{Output, Remote, RemoteWrite};

use parquet_compat::check_parquet_schema;
pub use parquet_compat::{
    META_FORM, ValueForms, compatible_batch, compatible_schema, parquet_compatible_schema,
};
pub use row_groups::{EncodedRowGroup, RowGroupEncoder, RowGroupEncoders, RowGroupFile};

use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchWriter};
use arrow_schema::{ArrowError, Schema, SchemaRef};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::{ARROW_SCHEMA_META_KEY, ArrowWriter, encode_arrow_schema};
use parquet::file::metadata::KeyValue;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// Field metadata key saying how the Parquet sink encoded an interval column.
pub const META_INTERVAL_ENCODING: &str = "pgarrow.interval_encoding";

enum Writer {
    /// The writer, and the Arrow schema to embed in the footer when it is finished (with the
    /// metadata known only then).
    Parquet(Box<ArrowWriter<Out>>, SchemaRef),
    /// A Parquet file whose row groups' columns are encoded on several threads
    /// ([`SinkOptions::encode_threads`]).
    Columns(Box<(RowGroupFile, RowGroupEncoder)>),
    File(arrow_ipc::writer::FileWriter<Out>),
    Stream(arrow_ipc::writer::StreamWriter<Out>),
    Null,
}

/// Writes batches of one schema in one format.
pub struct Sink {
    writer: Writer,
    target: Option<PathBuf>,
    /// The schema after converting intervals to structs (for Parquet, or IPC on request),
    /// when the batches' schema has intervals.
    converted: Option<SchemaRef>,
    row_group_bytes: usize,
    rows: u64,
    /// Whether finishing syncs the file (else its writer syncs many at once).
    sync: bool,
    /// A Parquet file's geometry columns, summarized for GeoParquet's `geo` metadata.
    geo: Option<Box<GeoColumns>>,
    /// The bbox covering columns added to each (converted) batch.
    covering: Option<Box<Covering>>,
    /// The order a Parquet file's `sorting_columns` claim, checked row by row.
    order: Option<Box<OrderCheck>>,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("target", &self.target)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl Sink {
    /// Opens a sink. For a file, the temporary file is created now, next to the target, so a
    /// missing or read-only directory fails before any work is done.
    ///
    /// # Errors
    /// The temporary file cannot be created, or the writer refuses the schema.
    pub fn create(
        format: Format,
        output: Output,
        schema: &SchemaRef,
        options: &SinkOptions,
    ) -> Result<Sink> {
        if format == Format::Parquet {
            check_parquet_schema(schema)?;
        }
        if format == Format::Null {
            return Ok(Sink {
                writer: Writer::Null,
                target: None,
                converted: None,
                row_group_bytes: options.row_group_bytes,
                rows: 0,
                sync: options.sync,
                geo: None,
                covering: None,
                order: None,
            });
        }
        let (out, target) = output::open(output, format, options.buffer_bytes)?;
        let interval_structs = format == Format::Parquet
            || options.intervals == IntervalEncoding::Struct
            || options.forms != ValueForms::default();
        // The file's key-value metadata also goes into the embedded Arrow schema, which is where
        // pyarrow and pandas look for it in a Parquet file.
        let (written, converted) = match interval_structs {
            true => {
                let converted = compatible_schema(schema, &options.forms);
                let changed = converted != *schema;
                (converted.clone(), changed.then_some(converted))
            }
            false => (schema.clone(), None),
        };
        let (written, converted) = match options.arrow_extensions {
            true => (written, converted),
            false => match without_extensions(&written) {
                Some(plain) => (plain.clone(), Some(plain)),
                None => (written, converted),
            },
        };
        let covering = match format == Format::Parquet && options.geo_bbox {
            true => Covering::of(&written)?,
            false => None,
        };
        let written = covering.as_ref().map_or(written, |c| c.schema().clone());
        let file_schema = Arc::new(with_metadata(&written, options));
        let file_schema = match format == Format::Parquet && options.field_ids {
            true => Arc::new(match &options.known_field_ids {
                Some(ids) => with_field_ids_from(&file_schema, ids),
                None => with_field_ids(&file_schema),
            }),
            false => file_schema,
        };
        let writer = match format {
            Format::Parquet => {
                // The Arrow schema is embedded at the end, once the metadata known only then
                // (lossy conversions) can be in it too: pyarrow and pandas read the schema's
                // metadata from there, not from the footer's key-value list.
                // The writer gives a `geoarrow.wkb` column Parquet's GEOMETRY or GEOGRAPHY
                // type: only when asked, else it sees plain binary (the embedded schema keeps
                // the extension either way).
                let writer_schema = match options.geo_types {
                    true => file_schema.clone(),
                    false => geo::without_geo_types(&file_schema),
                };
                let options = ArrowWriterOptions::new()
                    .with_properties(writer_properties(options, Some(&file_schema))?)
                    .with_skip_arrow_metadata(true);
                let w = ArrowWriter::try_new_with_options(out, writer_schema, options)?;
                Writer::Parquet(Box::new(w), file_schema)
            }
            Format::ArrowFile => {
                Writer::File(arrow_ipc::writer::FileWriter::try_new(out, &file_schema)?)
            }
            Format::ArrowStream => {
                Writer::Stream(arrow_ipc::writer::StreamWriter::try_new(out, &file_schema)?)
            }
            Format::Null => Writer::Null,
        };
        let (geo, order) = match format {
            Format::Parquet => (
                GeoColumns::of(schema, covering.is_some()).map(Box::new),
                OrderCheck::of(schema, &options.sorted_by)?.map(Box::new),
            ),
            _ => (None, None),
        };
        let sink = Sink {
            writer,
            target,
            converted,
            row_group_bytes: options.row_group_bytes,
            rows: 0,
            sync: options.sync,
            geo,
            covering: covering.map(Box::new),
            order,
        };
        if options.encode_threads <= 1 {
            return Ok(sink);
        }
        // The encoder converts, covers, summarizes and checks each batch itself.
        let (row_group_bytes, sync) = (sink.row_group_bytes, sink.sync);
        match sink.into_row_groups(options)? {
            Ok((file, encoders)) => {
                let encoder = encoders.encoder().with_threads(options.encode_threads);
                Ok(Sink {
                    writer: Writer::Columns(Box::new((file, encoder))),
                    target: None,
                    converted: None,
                    row_group_bytes,
                    rows: 0,
                    sync,
                    geo: None,
                    covering: None,
                    order: None,
                })
            }
            Err(sink) => Ok(sink),
        }
    }

    /// Writes one batch.
    ///
    /// # Errors
    /// The writer or the output failed.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if let Some(geo) = &mut self.geo {
            geo.observe(batch)?;
        }
        if let Some(order) = &mut self.order {
            order.check(batch)?;
        }
        self.rows += batch.num_rows() as u64;
        let converted;
        let batch = match &self.converted {
            Some(schema) => {
                converted = compatible_batch(batch, schema)?;
                &converted
            }
            None => batch,
        };
        let covered;
        let batch = match &self.covering {
            Some(covering) => {
                covered = covering.add(batch)?;
                &covered
            }
            None => batch,
        };
        match &mut self.writer {
            Writer::Parquet(w, _) => {
                w.write(batch)?;
                if w.in_progress_size() >= self.row_group_bytes {
                    w.flush()?;
                }
            }
            Writer::Columns(w) => {
                let (file, encoder) = &mut **w;
                for group in encoder.write(batch)? {
                    file.append(group)?;
                }
            }
            Writer::File(w) => w.write(batch)?,
            Writer::Stream(w) => w.write(batch)?,
            Writer::Null => {}
        }
        Ok(())
    }

    /// A Parquet sink, before any batch, split for encoding on several threads: the file
    /// that row groups are appended to, and the encoders that make them (see
    /// [`RowGroupFile`]). Any other sink comes back unchanged as the error.
    ///
    /// # Errors
    /// The sink is not a Parquet sink, or batches were already written to it (`Ok(Err(sink))`);
    /// the writer failed to start (`Err`).
    #[allow(clippy::type_complexity)]
    pub fn into_row_groups(
        self,
        options: &SinkOptions,
    ) -> Result<std::result::Result<(RowGroupFile, RowGroupEncoders), Sink>> {
        match self.writer {
            Writer::Parquet(w, schema) if self.rows == 0 => {
                let (writer, factory) = w.into_serialized_writer()?;
                Ok(Ok(RowGroupFile::new(
                    writer,
                    factory,
                    self.target,
                    schema,
                    (self.converted, self.covering.map(|c| *c)),
                    (self.geo.map(|g| *g), self.order.map(|o| *o)),
                    options,
                )))
            }
            writer => Ok(Err(Sink { writer, ..self })),
        }
    }

    /// Pushes what an Arrow IPC stream has written so far through to its output (standard
    /// output, a pipe), so that a reader sees every batch written; other formats are complete
    /// only once finished, and this does nothing for them.
    ///
    /// # Errors
    /// The output failed.
    pub fn flush(&mut self) -> Result<()> {
        if let Writer::Stream(w) = &mut self.writer {
            w.flush()?;
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The file's size so far, or what it would be if it ended now: the bytes written, plus
    /// (for Parquet) the row group in progress as encoded before compression, which
    /// compression only shrinks.
    pub fn size_estimate(&self) -> u64 {
        match &self.writer {
            Writer::Parquet(w, _) => (w.bytes_written() + w.in_progress_size()) as u64,
            Writer::Columns(w) => (w.0.bytes_written() + w.1.in_progress_bytes()) as u64,
            Writer::File(w) => w.get_ref().bytes,
            Writer::Stream(w) => w.get_ref().bytes,
            Writer::Null => 0,
        }
    }

    /// The memory the writer holds for data not yet written out: a Parquet writer's row group
    /// in progress (an Arrow IPC writer holds none beyond its output's buffer).
    pub fn buffered(&self) -> usize {
        match &self.writer {
            Writer::Parquet(w, _) => w.memory_size(),
            Writer::Columns(w) => w.1.memory_size(),
            _ => 0,
        }
    }

    /// Finishes the format, flushes, and renames the temporary file over the target.
    /// Returns the number of bytes written.
    ///
    /// # Errors
    /// Finishing, flushing or renaming failed; the temporary file is then removed.
    pub fn finish(self) -> Result<u64> {
        self.finish_with_metadata(&[])
    }

    /// As [`Sink::finish`], adding key-value metadata known only at the end (such as counts of
    /// lossy conversions) to the Parquet footer or the Arrow IPC file footer. An Arrow IPC
    /// stream has no footer: there the metadata is not written.
    ///
    /// # Errors
    /// As [`Sink::finish`].
    pub fn finish_with_metadata(self, metadata: &[(String, String)]) -> Result<u64> {
        let mut metadata = metadata.to_vec();
        if let Some(geo) = &self.geo {
            metadata.push((GEO_KEY.to_owned(), geo.metadata()));
        }
        let metadata = &metadata[..];
        let out = match self.writer {
            Writer::Columns(w) => {
                let (mut file, mut encoder) = *w;
                if let Some(group) = encoder.finish()? {
                    file.append(group)?;
                }
                return file.finish_with_metadata(metadata);
            }
            Writer::Parquet(mut w, schema) => {
                for (k, v) in metadata {
                    w.append_key_value_metadata(KeyValue::new(k.clone(), v.clone()));
                }
                let mut meta = schema.metadata().clone();
                meta.extend(metadata.iter().cloned());
                let schema = Schema::new_with_metadata(schema.fields().clone(), meta);
                w.append_key_value_metadata(KeyValue::new(
                    ARROW_SCHEMA_META_KEY.to_owned(),
                    encode_arrow_schema(&schema),
                ));
                w.into_inner()?
            }
            Writer::File(mut w) => {
                for (k, v) in metadata {
                    w.write_metadata(k.clone(), v.clone());
                }
                w.finish()?;
                w.into_inner()?
            }
            Writer::Stream(mut w) => {
                w.finish()?;
                w.into_inner()?
            }
            Writer::Null => return Ok(0),
        };
        output::finish(out, self.target, self.sync)
    }
}

/// A sink is an arrow [`RecordBatchWriter`]: `close` is [`Sink::finish`]. Errors travel as
/// [`ArrowError::ExternalError`] wrapping this crate's [`Error`](crate::Error).
impl RecordBatchWriter for Sink {
    fn write(&mut self, batch: &RecordBatch) -> std::result::Result<(), ArrowError> {
        Sink::write(self, batch).map_err(|e| ArrowError::ExternalError(Box::new(e)))
    }

    fn close(self) -> std::result::Result<(), ArrowError> {
        self.finish()
            .map(drop)
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))
    }
}

/// `schema` without its top-level columns' Arrow extension types, `None` when it has none.
fn without_extensions(schema: &SchemaRef) -> Option<SchemaRef> {
    const KEYS: [&str; 2] = ["ARROW:extension:name", "ARROW:extension:metadata"];
    let has = |f: &arrow_schema::Field| KEYS.iter().any(|k| f.metadata().contains_key(k));
    if !schema.fields().iter().any(|f| has(f)) {
        return None;
    }
    let fields: Vec<arrow_schema::Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut meta = f.metadata().clone();
            KEYS.iter().for_each(|k| {
                meta.remove(k);
            });
            f.as_ref().clone().with_metadata(meta)
        })
        .collect();
    Some(Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

fn with_metadata(schema: &SchemaRef, options: &SinkOptions) -> Schema {
    let mut meta: HashMap<String, String> = schema.metadata().clone().into();
    meta.extend(options.metadata.iter().cloned());
    Schema::new_with_metadata(schema.fields().clone(), meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, StructArray};
    use arrow_buffer::IntervalMonthDayNano;
    use arrow_schema::{DataType, Field, Fields, IntervalUnit};
    use std::fs::File;
    use std::path::Path;
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("iv", DataType::Interval(IntervalUnit::MonthDayNano), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None])),
                Arc::new(IntervalMonthDayNanoArray::from(vec![
                    Some(IntervalMonthDayNano::new(1, -2, 3_000)),
                    None,
                ])),
            ],
        )
        .unwrap()
    }

    /// A Parquet sink writing `path`.
    fn parquet_sink(path: &Path, schema: &SchemaRef, options: &SinkOptions) -> Sink {
        Sink::create(
            Format::Parquet,
            Output::File(path.to_path_buf()),
            schema,
            options,
        )
        .unwrap()
    }

    /// Row groups end at the byte bound as well as at the row count: the writer's memory.
    #[test]
    fn parquet_row_groups_bounded_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, false)]));
        let batch = |start: i32| {
            let values = Int32Array::from_iter_values(start..start + 10_000);
            RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap()
        };
        let write = |row_group_bytes| {
            let options = SinkOptions {
                compression: Compression::None,
                row_group_bytes,
                ..SinkOptions::default()
            };
            let mut sink = parquet_sink(&path, &schema, &options);
            for i in 0..10 {
                sink.write(&batch(i * 10_000)).unwrap();
            }
            sink.finish().unwrap();
            let file = File::open(&path).unwrap();
            let builder =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap();
            let groups = builder.metadata().num_row_groups();
            let rows: usize = builder
                .build()
                .unwrap()
                .map(|b| b.unwrap().num_rows())
                .sum();
            assert_eq!(rows, 100_000);
            groups
        };
        assert_eq!(write(DEFAULT_ROW_GROUP_BYTES), 1);
        // 10,000 int32 values are about 40 KB in memory: a group per batch or two.
        let groups = write(40_000);
        assert!((5..=10).contains(&groups), "{groups} row groups");
    }

    /// A file whose columns are encoded on several threads is the file one thread writes:
    /// the same row groups, column chunks and values (intervals converted, metadata added);
    /// small batches, held until they are worth spreading, give the same rows in order.
    #[test]
    fn parquet_columns_on_several_threads_make_the_same_file() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("iv", DataType::Interval(IntervalUnit::MonthDayNano), true),
        ]));
        let batch = |start: i64, n: i64| {
            let ids = Int64Array::from_iter_values(start..start + n);
            let names = arrow_array::StringArray::from_iter(
                (start..start + n)
                    .map(|i| (i % 7 != 0).then(|| format!("name {} of a row", i % 5_000))),
            );
            let ivs = IntervalMonthDayNanoArray::from_iter_values(
                (start..start + n).map(|i| IntervalMonthDayNano::new(1, (i % 30) as i32, i)),
            );
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(ids), Arc::new(names), Arc::new(ivs)],
            )
            .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let write = |threads: usize, rows: i64| {
            let path = dir.path().join(format!("t{threads}-{rows}.parquet"));
            let options = SinkOptions::default()
                .with_row_group_bytes(1 << 20)
                .with_encode_threads(threads);
            let mut sink = parquet_sink(&path, &schema, &options);
            for start in (0..180_000).step_by(rows as usize) {
                sink.write(&batch(start, rows)).unwrap();
            }
            assert!(sink.size_estimate() > 0 && sink.buffered() > 0);
            let bytes = sink
                .finish_with_metadata(&[("k".into(), "v".into())])
                .unwrap();
            assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
            path
        };
        let read = |path: &Path| {
            let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                File::open(path).unwrap(),
            )
            .unwrap();
            let meta = builder.metadata().clone();
            let schema = builder.schema().clone();
            let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
            let all = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
            (meta, schema, all)
        };
        let ((m1, s1, b1), (m3, s3, b3)) = (read(&write(1, 60_000)), read(&write(3, 60_000)));
        assert!(m1.num_row_groups() > 1, "the byte bound cuts row groups");
        assert_eq!(m1.num_row_groups(), m3.num_row_groups());
        for (g1, g3) in m1.row_groups().iter().zip(m3.row_groups()) {
            assert_eq!(g1.num_rows(), g3.num_rows());
            let sizes = |g: &parquet::file::metadata::RowGroupMetaData| {
                g.columns()
                    .iter()
                    .map(|c| (c.compressed_size(), c.statistics().cloned()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(sizes(g1), sizes(g3));
        }
        assert_eq!(s1, s3);
        assert_eq!(s3.metadata().get("k").map(String::as_str), Some("v"));
        assert_eq!(b1, b3);
        assert_eq!(b3.num_rows(), 180_000);
        let (m, s, b) = read(&write(2, 1_000));
        assert!(m.num_row_groups() > 1);
        assert_eq!((s, b), (s1, b1));
    }

    #[test]
    fn parquet_interval_becomes_exact_struct() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let b = batch();
        let mut sink = parquet_sink(&path, &b.schema(), &SinkOptions::default());
        sink.write(&b).unwrap();
        sink.finish().unwrap();
        let file = File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let iv = batches[0]
            .column(1)
            .as_any()
            .downcast_ref::<StructArray>()
            .unwrap();
        let micros = iv.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(micros.value(0), 3);
        assert!(iv.is_null(1));
        // Only the target remains in the directory, with the mode any new file gets.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let other = tempfile::tempdir().unwrap();
        let plain = other.path().join("plain");
        File::create(&plain).unwrap();
        let mode = |p: &Path| {
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
        };
        assert_eq!(mode(&path), mode(&plain));
    }

    /// Through arrow's trait, `close` finishes the file like `finish`.
    #[test]
    fn record_batch_writer_closes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.arrow");
        let b = batch();
        let sink = Sink::create(
            Format::ArrowFile,
            Output::File(path.clone()),
            &b.schema(),
            &SinkOptions::default(),
        )
        .unwrap();
        fn write_all(mut w: impl RecordBatchWriter, b: &RecordBatch) {
            w.write(b).unwrap();
            w.write(b).unwrap();
            w.close().unwrap();
        }
        write_all(sink, &b);
        let reader =
            arrow_ipc::reader::FileReader::try_new(File::open(&path).unwrap(), None).unwrap();
        let rows: usize = reader.map(|r| r.unwrap().num_rows()).sum();
        assert_eq!(rows, 2 * b.num_rows());
    }

    /// Shapes Parquet cannot hold fail before any file exists, naming the column; Arrow IPC
    /// keeps them, row count included.
    #[test]
    fn zero_columns_and_empty_structs() {
        let dir = tempfile::tempdir().unwrap();
        let empty = Arc::new(Schema::empty());
        let rows3 = RecordBatch::try_new_with_options(
            empty.clone(),
            vec![],
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(3)),
        )
        .unwrap();
        let nested = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new(
                "c",
                DataType::List(Arc::new(Field::new(
                    "item",
                    DataType::Struct(Fields::from(vec![Field::new(
                        "e",
                        DataType::Struct(Fields::empty()),
                        true,
                    )])),
                    true,
                ))),
                true,
            ),
        ]));
        let parquet = dir.path().join("t.parquet");
        for (schema, needle) in [(&empty, "no columns"), (&nested, "column \"c[].e\"")] {
            let err = Sink::create(
                Format::Parquet,
                Output::File(parquet.clone()),
                schema,
                &SinkOptions::default(),
            )
            .unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
        let arrow = dir.path().join("t.arrow");
        let mut sink = Sink::create(
            Format::ArrowFile,
            Output::File(arrow.clone()),
            &empty,
            &SinkOptions::default(),
        )
        .unwrap();
        sink.write(&rows3).unwrap();
        sink.finish().unwrap();
        let reader =
            arrow_ipc::reader::FileReader::try_new(File::open(&arrow).unwrap(), None).unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 3);
    }

    #[test]
    fn dropped_sink_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for format in [Format::Parquet, Format::ArrowFile, Format::ArrowStream] {
            let path = dir.path().join("t.out");
            let b = batch();
            let schema = b.schema();
            let mut sink = Sink::create(
                format,
                Output::File(path.clone()),
                &schema,
                &SinkOptions::default(),
            )
            .unwrap();
            sink.write(&b).unwrap();
            drop(sink);
            assert!(!path.exists());
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                0,
                "{format}"
            );
        }
    }

    #[test]
    fn devices_are_written_not_replaced() {
        let dev_null = Path::new("/dev/null");
        let before = std::fs::metadata(dev_null).unwrap();
        let b = batch();
        let mut sink = Sink::create(
            Format::ArrowStream,
            Output::File(dev_null.to_path_buf()),
            &b.schema(),
            &SinkOptions::default(),
        )
        .unwrap();
        sink.write(&b).unwrap();
        assert!(sink.finish().unwrap() > 0);
        let after = std::fs::metadata(dev_null).unwrap();
        assert!(!after.is_file(), "/dev/null is still a device");
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&before),
            std::os::unix::fs::MetadataExt::ino(&after)
        );
    }

    #[test]
    fn parses_options() {
        assert_eq!(
            "zstd:9".parse::<Compression>().unwrap(),
            Compression::Zstd(9)
        );
        assert!("brotli".parse::<Compression>().is_err());
        let options = |compression, row_group_rows| SinkOptions {
            compression,
            row_group_rows,
            ..SinkOptions::default()
        };
        assert!(options(Compression::Zstd(22), 1).validate().is_ok());
        assert!(options(Compression::Zstd(99), 1).validate().is_err());
        assert!(options(Compression::None, 0).validate().is_err());
        assert_eq!(
            "arrow-stream".parse::<Format>().unwrap(),
            Format::ArrowStream
        );
        assert_eq!(
            Format::from_path(Path::new("x.PARQUET")),
            Some(Format::Parquet)
        );
        assert_eq!(Format::from_path(Path::new("x.csv")), None);
    }

    #[test]
    fn missing_directory_fails_early() {
        let b = batch();
        let err = Sink::create(
            Format::Parquet,
            Output::File(PathBuf::from("/nonexistent-dir-pgarrow/x.parquet")),
            &b.schema(),
            &SinkOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir-pgarrow"),
            "{err}"
        );
    }
}
