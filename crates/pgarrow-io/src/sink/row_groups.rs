//! Parquet row groups encoded on several threads and written into one file.
//!
//! One zstd Parquet writer encodes about as fast as one connection delivers rows; with several
//! connections it would be the limit. [`Sink::into_row_groups`] splits a Parquet sink in two:
//! [`RowGroupEncoder`]s, one per thread, each encoding whole row groups (column chunks,
//! compressed, in memory), and the [`RowGroupFile`], which appends finished row groups in the
//! order it is given them and writes the footer. Row groups are cut at
//! [`SinkOptions::row_group_rows`](crate::SinkOptions) rows or
//! [`row_group_bytes`](crate::SinkOptions) bytes of encoded data, as the sink's own are.
//!
//! One encoder may also spread a row group's columns over several threads
//! ([`RowGroupEncoder::with_threads`]): each column chunk is encoded and compressed by a writer
//! of its own, so a file written by one caller (a mirror's data file) is encoded on every core.
//! Small batches are held until there is enough work to spread: the rows and their order are
//! the same either way, and a row group may end a few batches later than on one thread.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
    compute_leaves,
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
            threads: 1,
            held: Vec::new(),
            held_bytes: 0,
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
    /// Threads a row group's columns are spread over.
    threads: usize,
    /// With several threads, batches not yet encoded (see [`HOLD_UP_TO`]), and their bytes.
    held: Vec<RecordBatch>,
    held_bytes: usize,
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
    /// This encoder with its columns encoded on up to `threads` threads (the caller's among
    /// them): batches are held until 4 MiB of them is worth spreading.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

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
            let room = self.shared.row_group_rows - self.rows - self.held_rows();
            let take = room.min(batch.num_rows() - offset);
            self.hold(batch.slice(offset, take))?;
            offset += take;
            if self.rows + self.held_rows() >= self.shared.row_group_rows
                || self.in_progress_bytes() >= self.shared.row_group_bytes
            {
                done.extend(self.finish()?);
            }
        }
        Ok(done)
    }

    /// Rows held, not yet encoded.
    fn held_rows(&self) -> usize {
        self.held.iter().map(RecordBatch::num_rows).sum()
    }

    /// Encodes `batch`, or on several threads holds it until the batches held are worth
    /// spreading (small batches would leave the other threads idle).
    fn hold(&mut self, batch: RecordBatch) -> Result<()> {
        if self.threads <= 1 {
            return self.encode(&[batch]);
        }
        self.held_bytes += batch.columns().iter().map(column_bytes).sum::<usize>();
        self.held.push(batch);
        match self.held_bytes >= HOLD_UP_TO {
            true => self.encode_held(),
            false => Ok(()),
        }
    }

    fn encode_held(&mut self) -> Result<()> {
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        match held.is_empty() {
            true => Ok(()),
            false => self.encode(&held),
        }
    }

    /// Encodes `batches`, one after another, each leaf column by its own writer: the columns
    /// spread over the threads.
    fn encode(&mut self, batches: &[RecordBatch]) -> Result<()> {
        let writers = match &mut self.writers {
            Some(w) => w,
            None => self
                .writers
                .insert(self.shared.factory.create_column_writers(0)?),
        };
        // Each leaf column's parts (one per batch) with the bytes they hold: the work they are.
        let mut leaves: Vec<(Vec<ArrowLeafColumn>, usize)> =
            (0..writers.len()).map(|_| (Vec::new(), 0)).collect();
        for batch in batches {
            let mut at = 0;
            for (field, column) in self.shared.schema.fields().iter().zip(batch.columns()) {
                let of_column = compute_leaves(field, column)?;
                let share = column_bytes(column) / of_column.len().max(1);
                for leaf in of_column {
                    let (parts, bytes) = leaves.get_mut(at).ok_or_else(|| {
                        Error::Unsupported("more Parquet leaf columns than writers".into())
                    })?;
                    parts.push(leaf);
                    *bytes += share;
                    at += 1;
                }
            }
            self.rows += batch.num_rows();
        }
        let work = writers
            .iter_mut()
            .zip(leaves)
            .map(|(writer, (parts, bytes))| ((writer, parts), bytes))
            .collect();
        spread(work, self.threads, |(writer, parts)| {
            parts.iter().try_for_each(|leaf| writer.write(leaf))
        })?;
        Ok(())
    }

    /// Memory held for the row group in progress (its batches held included).
    pub fn memory_size(&self) -> usize {
        self.held_bytes
            + self
                .writers
                .as_ref()
                .map_or(0, |w| w.iter().map(ArrowColumnWriter::memory_size).sum())
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
    /// The Parquet encoder failed to encode or close a column.
    pub fn finish(&mut self) -> Result<Option<EncodedRowGroup>> {
        self.encode_held()?;
        let Some(writers) = self.writers.take() else {
            return Ok(None);
        };
        let rows = std::mem::take(&mut self.rows);
        let bytes = writers
            .iter()
            .map(ArrowColumnWriter::get_estimated_total_bytes)
            .sum();
        // Closing a column compresses its last page and its dictionary.
        let work = writers
            .into_iter()
            .map(|w| {
                let share = w.get_estimated_total_bytes();
                (w, share)
            })
            .collect();
        let chunks = spread(work, self.threads, ArrowColumnWriter::close)?;
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

/// Work smaller than this (bytes of the columns it reads) is not worth a thread.
const SPREAD_FROM: usize = 256 << 10;

/// An encoder on several threads holds batches until they hold this many bytes, then
/// encodes them together.
const HOLD_UP_TO: usize = 4 << 20;

/// The bytes `column` holds (of its buffers, only the part it uses).
fn column_bytes(column: &arrow_array::ArrayRef) -> usize {
    column.to_data().get_slice_memory_size().unwrap_or(0)
}

/// `f` of each item, on up to `threads` threads (this one among them), each thread taking the
/// heaviest item left as it is free (the weights only order them: what an item costs is
/// learned by doing it); the results in the items' order. The first error is returned (every
/// item is still done).
fn spread<T, R, E>(
    items: Vec<(T, usize)>,
    threads: usize,
    f: impl Fn(T) -> std::result::Result<R, E> + Sync,
) -> std::result::Result<Vec<R>, E>
where
    T: Send,
    R: Send,
    E: Send,
{
    let weight: usize = items.iter().map(|(_, w)| w).sum();
    let threads = threads.min(items.len());
    if threads <= 1 || weight < SPREAD_FROM {
        return items.into_iter().map(|(item, _)| f(item)).collect();
    }
    // Lightest first: each thread pops the heaviest left.
    let mut left: Vec<(usize, T, usize)> = items
        .into_iter()
        .enumerate()
        .map(|(i, (item, w))| (i, item, w))
        .collect();
    left.sort_by_key(|&(_, _, w)| w);
    let count = left.len();
    let left = std::sync::Mutex::new(left);
    let work = || {
        let mut done = Vec::new();
        loop {
            let next = match left.lock() {
                Ok(mut left) => left.pop(),
                Err(poisoned) => poisoned.into_inner().pop(),
            };
            let Some((i, item, _)) = next else {
                return done;
            };
            done.push((i, f(item)));
        }
    };
    let mut done: Vec<(usize, std::result::Result<R, E>)> = std::thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut done = work();
        for other in others {
            match other.join() {
                Ok(d) => done.extend(d),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });
    debug_assert_eq!(done.len(), count);
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
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
    /// Whether finishing syncs the file.
    sync: bool,
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
            sync: options.sync,
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

    /// Bytes written so far (the row groups appended).
    pub fn bytes_written(&self) -> usize {
        self.writer.bytes_written()
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
        output::finish(out, self.target, self.sync)
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

    /// Work is taken by the threads as they are free and comes back in its order; an error
    /// is the first.
    #[test]
    fn spread_work_comes_back_in_order() {
        let items: Vec<(u64, usize)> = (0..9).map(|i| (i, (i as usize + 1) << 18)).collect();
        // Each item waits (a while at most) until three threads hold one: it is done on
        // three threads only if three take work at once.
        let on = std::sync::Mutex::new(std::collections::HashSet::new());
        let met = std::sync::Condvar::new();
        let done = spread(items.clone(), 3, |i| {
            let mut on = on.lock().unwrap();
            on.insert(std::thread::current().id());
            met.notify_all();
            let timeout = std::time::Duration::from_secs(10);
            drop(
                met.wait_timeout_while(on, timeout, |on| on.len() < 3)
                    .unwrap(),
            );
            Ok::<_, String>(i * 10)
        })
        .unwrap();
        assert_eq!(done, (0..9).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(on.lock().unwrap().len(), 3, "on three threads");
        let failed = spread(items.clone(), 2, |i| match i {
            4 | 7 => Err(format!("item {i}")),
            _ => Ok(i),
        });
        assert_eq!(failed, Err("item 4".to_owned()));
        // Light work stays on the caller's thread.
        let light: Vec<(u64, usize)> = (0..9).map(|i| (i, 10)).collect();
        let here = std::thread::current().id();
        spread(light, 4, |_| match std::thread::current().id() == here {
            true => Ok(()),
            false => Err(()),
        })
        .unwrap();
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
