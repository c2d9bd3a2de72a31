//! Parquet row groups encoded on several threads and written into one file.
//!
//! One zstd Parquet writer encodes about as fast as one connection delivers rows; with several
//! connections it would be the limit. [`Sink::into_row_groups`] splits a Parquet sink in two:
//! [`RowGroupEncoder`]s, one per thread, each encoding whole row groups (column chunks,
//! compressed, in memory), and the [`RowGroupFile`], which appends finished row groups in the
//! order it is given them and writes the footer. Row groups are cut at
//! [`SinkOptions::row_group_rows`](crate::SinkOptions) rows or
//! [`row_group_bytes`](crate::SinkOptions) bytes of encoded data, as the sink's own are.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::arrow::{ARROW_SCHEMA_META_KEY, encode_arrow_schema};
use parquet::file::metadata::KeyValue;
use parquet::file::writer::SerializedFileWriter;

use super::geo::{Covering, GEO_KEY, GeoColumns};
use super::order::OrderCheck;
use super::output::{self, Out};
use super::parquet_compat::compatible_batch;
use crate::{Error, Result};

/// What every encoder of one file shares: the column writer factory, the file's schema and
/// the row group limits.
#[derive(Clone)]
pub struct RowGroupEncoders {
    factory: Arc<ArrowRowGroupWriterFactory>,
    /// The schema the batches are converted to (intervals as structs), when they need it.
    converted: Option<SchemaRef>,
    /// The bbox covering columns added to each (converted) batch.
    covering: Option<Arc<Covering>>,
    /// The file's Arrow schema.
    schema: SchemaRef,
    row_group_rows: usize,
    row_group_bytes: usize,
    /// The file's geometry columns, nothing seen yet: each encoder summarizes its own.
    geo: Option<GeoColumns>,
    /// The order the file's row groups claim, nothing seen yet: each encoder checks its own.
    order: Option<OrderCheck>,
}

impl std::fmt::Debug for RowGroupEncoders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowGroupEncoders")
            .field("row_group_rows", &self.row_group_rows)
            .field("row_group_bytes", &self.row_group_bytes)
            .finish_non_exhaustive()
    }
}

impl RowGroupEncoders {
    /// A new encoder, for one thread.
    pub fn encoder(&self) -> RowGroupEncoder {
        RowGroupEncoder {
            geo: self.geo.clone(),
            order: self.order.clone(),
            shared: self.clone(),
            writers: None,
            rows: 0,
        }
    }
}

/// Encodes batches into row groups, on the thread that owns it.
pub struct RowGroupEncoder {
    shared: RowGroupEncoders,
    /// The row group in progress: one writer per leaf column.
    writers: Option<Vec<ArrowColumnWriter>>,
    rows: usize,
    /// The geometries of the row group in progress.
    geo: Option<GeoColumns>,
    /// The order of this encoder's rows, checked.
    order: Option<OrderCheck>,
}

impl std::fmt::Debug for RowGroupEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowGroupEncoder")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// A row group encoded in memory, ready for [`RowGroupFile::append`].
pub struct EncodedRowGroup {
    chunks: Vec<ArrowColumnChunk>,
    rows: usize,
    bytes: usize,
    geo: Option<GeoColumns>,
}

impl std::fmt::Debug for EncodedRowGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedRowGroup")
            .field("rows", &self.rows)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl EncodedRowGroup {
    /// Rows in the row group.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Its encoded size in memory, about.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl RowGroupEncoder {
    /// Encodes `batch`, returning the row groups it completed (none, usually).
    ///
    /// # Errors
    /// The Parquet encoder refused a value.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<Vec<EncodedRowGroup>> {
        if let Some(geo) = &mut self.geo {
            geo.observe(batch)?;
        }
        if let Some(order) = &mut self.order {
            order.check(batch)?;
        }
        let converted;
        let batch = match &self.shared.converted {
            Some(schema) => {
                converted = compatible_batch(batch, schema)?;
                &converted
            }
            None => batch,
        };
        let covered;
        let batch = match &self.shared.covering {
            Some(covering) => {
                covered = covering.add(batch)?;
                &covered
            }
            None => batch,
        };
        let mut done = Vec::new();
        let mut offset = 0;
        while offset < batch.num_rows() {
            let room = self.shared.row_group_rows - self.rows;
            let take = room.min(batch.num_rows() - offset);
            let slice = batch.slice(offset, take);
            self.encode(&slice)?;
            offset += take;
            if self.rows >= self.shared.row_group_rows
                || self.in_progress_bytes() >= self.shared.row_group_bytes
            {
                done.extend(self.finish()?);
            }
        }
        Ok(done)
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        let writers = match &mut self.writers {
            Some(w) => w,
            None => self
                .writers
                .insert(self.shared.factory.create_column_writers(0)?),
        };
        let mut leaves = writers.iter_mut();
        for (field, column) in self.shared.schema.fields().iter().zip(batch.columns()) {
            for leaf in compute_leaves(field, column)? {
                let writer = leaves.next().ok_or_else(|| {
                    Error::Unsupported("more Parquet leaf columns than writers".into())
                })?;
                writer.write(&leaf)?;
            }
        }
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Bytes of encoded data held for the row group in progress.
    pub fn in_progress_bytes(&self) -> usize {
        self.writers.as_ref().map_or(0, |w| {
            w.iter()
                .map(ArrowColumnWriter::get_estimated_total_bytes)
                .sum()
        })
    }

    /// Ends the row group in progress, if it has rows.
    ///
    /// # Errors
    /// The Parquet encoder failed to close a column.
    pub fn finish(&mut self) -> Result<Option<EncodedRowGroup>> {
        let Some(writers) = self.writers.take() else {
            return Ok(None);
        };
        let rows = std::mem::take(&mut self.rows);
        let bytes = writers
            .iter()
            .map(ArrowColumnWriter::get_estimated_total_bytes)
            .sum();
        let chunks = writers
            .into_iter()
            .map(ArrowColumnWriter::close)
            .collect::<Result<Vec<_>, _>>()?;
        // The row group takes what was seen since the last one (a batch is summarized
        // whole before it is cut, so a group's summary may cover a few rows of the next: the
        // file's, their union, is exact).
        let geo =
            self.shared.geo.clone().map(|empty| {
                std::mem::replace(self.geo.as_mut().expect("set with shared.geo"), empty)
            });
        Ok((rows > 0).then_some(EncodedRowGroup {
            chunks,
            rows,
            bytes,
            geo,
        }))
    }
}

/// The Parquet file that encoded row groups are appended to; written atomically, as a
/// [`Sink`](crate::Sink)'s file is.
pub struct RowGroupFile {
    writer: SerializedFileWriter<Out>,
    target: Option<PathBuf>,
    /// The Arrow schema embedded in the footer.
    schema: SchemaRef,
    rows: u64,
    /// The geometry columns, summarized over the row groups appended.
    geo: Option<GeoColumns>,
}

impl std::fmt::Debug for RowGroupFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowGroupFile")
            .field("target", &self.target)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl RowGroupFile {
    pub(crate) fn new(
        writer: SerializedFileWriter<Out>,
        factory: ArrowRowGroupWriterFactory,
        target: Option<PathBuf>,
        schema: SchemaRef,
        (converted, covering): (Option<SchemaRef>, Option<Covering>),
        (geo, order): (Option<GeoColumns>, Option<OrderCheck>),
        options: &crate::SinkOptions,
    ) -> (RowGroupFile, RowGroupEncoders) {
        let encoders = RowGroupEncoders {
            factory: Arc::new(factory),
            converted,
            covering: covering.map(Arc::new),
            schema: schema.clone(),
            row_group_rows: options.row_group_rows.max(1),
            row_group_bytes: options.row_group_bytes.max(1),
            geo: geo.clone(),
            order,
        };
        let file = RowGroupFile {
            writer,
            target,
            schema,
            rows: 0,
            geo,
        };
        (file, encoders)
    }

    /// Appends a row group: its column chunks are copied into the file.
    ///
    /// # Errors
    /// Writing failed.
    pub fn append(&mut self, group: EncodedRowGroup) -> Result<()> {
        if let (Some(file), Some(seen)) = (&mut self.geo, &group.geo) {
            file.merge(seen);
        }
        let mut row_group = self.writer.next_row_group()?;
        for chunk in group.chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.rows += group.rows as u64;
        Ok(())
    }

    /// Rows appended so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the footer with `metadata` added (as [`Sink::finish_with_metadata`](crate::Sink::finish_with_metadata)
    /// does) and renames the file over its target. Returns the bytes written.
    ///
    /// # Errors
    /// Writing, flushing or renaming failed; the temporary file is then removed.
    pub fn finish_with_metadata(mut self, metadata: &[(String, String)]) -> Result<u64> {
        let mut metadata = metadata.to_vec();
        if let Some(geo) = &self.geo {
            metadata.push((GEO_KEY.to_owned(), geo.metadata()));
        }
        for (k, v) in &metadata {
            self.writer
                .append_key_value_metadata(KeyValue::new(k.clone(), v.clone()));
        }
        let mut meta = self.schema.metadata().clone();
        meta.extend(metadata.iter().cloned());
        let schema = Schema::new_with_metadata(self.schema.fields().clone(), meta);
        self.writer.append_key_value_metadata(KeyValue::new(
            ARROW_SCHEMA_META_KEY.to_owned(),
            encode_arrow_schema(&schema),
        ));
        let out = self.writer.into_inner()?;
        output::finish(out, self.target, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, Output, Sink, SinkOptions};
    use arrow_array::{Array, Int64Array, IntervalMonthDayNanoArray, StructArray};
    use arrow_buffer::IntervalMonthDayNano;
    use arrow_schema::{DataType, Field, IntervalUnit};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn batch(schema: &SchemaRef, from: i64, n: i64) -> RecordBatch {
        let ids = Int64Array::from((from..from + n).collect::<Vec<_>>());
        let spans = IntervalMonthDayNanoArray::from(
            (from..from + n)
                .map(|i| IntervalMonthDayNano::new(1, i as i32, i * 1000))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(spans)]).unwrap()
    }

    #[test]
    fn row_groups_from_several_threads_make_one_file() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("span", DataType::Interval(IntervalUnit::MonthDayNano), true),
        ]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let options = SinkOptions {
            row_group_rows: 300,
            ..SinkOptions::default()
        };
        let sink = Sink::create(
            Format::Parquet,
            Output::File(path.clone()),
            &schema,
            &options,
        )
        .unwrap();
        let (mut file, encoders) = sink.into_row_groups(&options).unwrap().unwrap();
        let groups: Vec<EncodedRowGroup> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|t| {
                    let mut encoder = encoders.encoder();
                    let schema = schema.clone();
                    s.spawn(move || {
                        let mut done = Vec::new();
                        for b in 0..5 {
                            done.extend(
                                encoder
                                    .write(&batch(&schema, t * 1000 + b * 100, 100))
                                    .unwrap(),
                            );
                        }
                        done.extend(encoder.finish().unwrap());
                        done
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        // 500 rows per thread, cut at 300: 300 + 200 each.
        let rows: Vec<usize> = groups.iter().map(EncodedRowGroup::rows).collect();
        assert_eq!(rows, [300, 200, 300, 200]);
        for g in groups {
            file.append(g).unwrap();
        }
        assert!(!path.exists(), "renamed only when finished");
        let written = file
            .finish_with_metadata(&[("k".into(), "v".into())])
            .unwrap();
        assert_eq!(written, std::fs::metadata(&path).unwrap().len());
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 4);
        let read_schema = reader.schema().clone();
        assert_eq!(
            read_schema.metadata().get("k").map(String::as_str),
            Some("v")
        );
        let mut ids = Vec::new();
        for b in reader.build().unwrap() {
            let b = b.unwrap();
            let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let span = b.column(1).as_any().downcast_ref::<StructArray>().unwrap();
            assert_eq!(span.len(), id.len());
            ids.extend(id.values().iter().copied());
        }
        ids.sort_unstable();
        let expected: Vec<i64> = (0..500).chain(1000..1500).collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn only_an_unused_parquet_sink_splits() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let options = SinkOptions::default();
        let sink = Sink::create(Format::Null, Output::Discard, &schema, &options).unwrap();
        assert!(sink.into_row_groups(&options).unwrap().is_err());
    }
}
