//! The export pipeline: batches decoded on the caller's task, encoded and written on a worker
//! thread behind a bounded hand-off, with progress, cancellation and statistics.
//!
//! BE ADVISED: the hand-off holds one batch. At most three batches are alive at once (one being
//! decoded, one waiting, one being written), so the slower side sets the pace and memory stays
//! bounded; a second slot bought no speed and cost a batch of memory (measured on the wide
//! table: 255 -> 225 MiB peak RSS).

use std::time::{Duration, Instant};

use arrow_array::{RecordBatch, RecordBatchWriter};
use arrow_schema::SchemaRef;
use pgarrow_io::{Format, LayoutWriter, Output, Sink, SinkOptions, WrittenFile};
use tokio::sync::{mpsc, oneshot};

use crate::export::request_cancel;
use crate::stats::ExportStats;
use crate::{Client, Error, ErrorKind, Export, ExportOptions, Hooks, Result, Source};

/// Where a file export writes: the format, the path (or stdout) and the file options;
/// [`FileTarget::new`], then `with_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileTarget {
    /// Parquet, Arrow IPC file or stream, or null (decode and discard).
    pub format: Format,
    /// A file (written atomically), stdout, or nothing (with [`Format::Null`]).
    pub output: Output,
    /// Compression, row groups, extra key-value metadata.
    pub options: SinkOptions,
}

impl FileTarget {
    /// A file target with default options.
    pub fn new(format: Format, output: Output) -> Self {
        FileTarget {
            format,
            output,
            options: SinkOptions::default(),
        }
    }

    /// Compression, row groups, extra key-value metadata.
    pub fn with_options(mut self, options: SinkOptions) -> Self {
        self.options = options;
        self
    }
}

/// What the writer thread does with batches, and how it ends.
pub(crate) trait Destination: Send + 'static {
    /// Bytes written, when known.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;
    fn finish(self, stats: &ExportStats) -> Result<Option<u64>>;
}

/// Any arrow [`RecordBatchWriter`], closed at the end.
struct ArrowWriter<W>(W);

impl<W: RecordBatchWriter + Send + 'static> Destination for ArrowWriter<W> {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.0.write(batch).map_err(|e| ErrorKind::Write(e).into())
    }

    fn finish(self, _: &ExportStats) -> Result<Option<u64>> {
        self.0
            .close()
            .map_err(|e| Error::from(ErrorKind::Write(e)))?;
        Ok(None)
    }
}

/// A file sink: the loss counts go into the footer.
impl Destination for Sink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        Ok(Sink::write(self, batch)?)
    }

    fn finish(self, stats: &ExportStats) -> Result<Option<u64>> {
        Ok(Some(
            self.finish_with_metadata(&loss_metadata(&stats.losses))?,
        ))
    }
}

/// Files laid out by value partitions and rolled at their limits: the files written come
/// back through `files` once they all are. The loss counts, known only at the end, when most
/// files are closed, go to the caller (the manifest), not into each footer.
pub(crate) struct Laid {
    pub(crate) writer: LayoutWriter,
    pub(crate) files: std::sync::Arc<std::sync::Mutex<Vec<WrittenFile>>>,
}

impl Destination for Laid {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        Ok(self.writer.write(batch)?)
    }

    fn finish(self, _: &ExportStats) -> Result<Option<u64>> {
        let files = self.writer.finish()?;
        let bytes = files.iter().map(|f| f.bytes).sum();
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = files;
        Ok(Some(bytes))
    }
}

/// The output's preparation, the same for every export that writes files (single,
/// partitioned, one part of a plan, several tables): the options with `pgarrow.version` in the
/// file's metadata (unless the caller set it), checked unless nothing is written.
pub(crate) fn file_options(options: &SinkOptions, format: Format) -> Result<SinkOptions> {
    let mut options = options.clone();
    if !options.metadata.iter().any(|(k, _)| k == "pgarrow.version") {
        options.metadata.push((
            "pgarrow.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ));
    }
    if format != Format::Null {
        options.validate()?;
    }
    Ok(options)
}

/// The footer's metadata at the end of an export: the lossy conversions made, if any.
pub(crate) fn loss_metadata(losses: &crate::policy::LossReport) -> Vec<(String, String)> {
    match losses.is_empty() {
        true => Vec::new(),
        false => vec![("pgarrow.lossy_conversions".to_owned(), losses.to_string())],
    }
}

enum ToWriter {
    Batch(RecordBatch),
    Finish(Box<ExportStats>),
}

/// What the writer thread reports: bytes written, time writing, time finishing; `None` when
/// it was stopped before the end.
type WriterResult = Result<Option<(Option<u64>, Duration, Duration)>>;

/// The writer thread's handle, with the channel that feeds it and the one it reports on.
type Writer = (
    mpsc::Sender<ToWriter>,
    oneshot::Receiver<WriterResult>,
    std::thread::JoinHandle<()>,
);

fn spawn_writer<D: Destination>(mut dest: D) -> Result<Writer> {
    let (tx, mut rx) = mpsc::channel::<ToWriter>(1);
    let (done_tx, done_rx) = oneshot::channel();
    let handle = std::thread::Builder::new()
        .name("pgarrow-writer".into())
        .spawn(move || {
            let mut writing = Duration::ZERO;
            let result = (|| {
                while let Some(message) = rx.blocking_recv() {
                    match message {
                        ToWriter::Batch(batch) => {
                            let started = Instant::now();
                            dest.write(&batch)?;
                            writing += started.elapsed();
                        }
                        ToWriter::Finish(stats) => {
                            let started = Instant::now();
                            let written = dest.finish(&stats)?;
                            return Ok(Some((written, writing, started.elapsed())));
                        }
                    }
                }
                // Stopped before the end: `dest` is dropped unfinished.
                Ok(None)
            })();
            let _ = done_tx.send(result);
        })
        .map_err(|e| ErrorKind::Internal(format!("cannot start the writer thread: {e}")))?;
    Ok((tx, done_rx, handle))
}

/// A destination written on a thread of its own, one batch handed over at a time (the
/// reader decodes the next meanwhile): what [`pump`] does for one export, for a reader that
/// drives its own loop (a partitioned export's worker).
///
/// Dropped before it finished (the export failed or was stopped), it closes the channel and
/// waits for the thread to drop the destination: an unfinished file's temporary name is
/// removed before the worker (and then the process) goes on, never left behind by a process
/// that exits first.
pub(crate) struct WriterThread {
    tx: Option<mpsc::Sender<ToWriter>>,
    done: oneshot::Receiver<WriterResult>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            // A plain join, not the channel's blocking receive (which refuses to run on an
            // async thread): the writer ends once it sees the channel closed.
            let _ = thread.join();
        }
    }
}

impl WriterThread {
    pub(crate) fn spawn<D: Destination>(dest: D) -> Result<WriterThread> {
        let (tx, done, thread) = spawn_writer(dest)?;
        Ok(WriterThread {
            tx: Some(tx),
            done,
            thread: Some(thread),
        })
    }

    /// Hands `batch` over, waiting while the writer is busy with the one before.
    ///
    /// # Errors
    /// The writer's, when it failed.
    pub(crate) async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if let Some(tx) = &self.tx
            && tx.send(ToWriter::Batch(batch)).await.is_ok()
        {
            return Ok(());
        }
        Err(match (&mut self.done).await {
            Ok(Err(e)) => e,
            _ => ErrorKind::Internal("the writer thread stopped".into()).into(),
        })
    }

    /// Finishes the destination with the export's statistics: the bytes written, the time
    /// spent writing and finishing.
    ///
    /// # Errors
    /// The writer's.
    pub(crate) async fn finish(mut self, stats: &ExportStats) -> Result<(Option<u64>, Duration)> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(ToWriter::Finish(Box::new(stats.clone()))).await;
        }
        match (&mut self.done).await {
            Ok(Ok(Some((written, writing, finishing)))) => Ok((written, writing + finishing)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(None)) | Err(_) => {
                Err(ErrorKind::Internal("the writer thread stopped before the end".into()).into())
            }
        }
    }
}

impl Export<'_> {
    /// Writes every batch to `writer` on a worker thread (decoding stays on this task), then
    /// closes it. Returns the statistics, `write` and `finish` included.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut client = pgarrow::Client::connect("postgresql://postgres@localhost/db").await?;
    /// let export = client.export("SELECT * FROM orders", &Default::default()).await?;
    /// let file = std::fs::File::create("orders.arrow")?;
    /// let writer = arrow_ipc::writer::FileWriter::try_new(file, &export.schema())?;
    /// let stats = export.write_to(writer).await?;
    /// println!("{} rows", stats.rows);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The export's error (it comes first when both sides failed), or the writer's.
    pub async fn write_to<W: RecordBatchWriter + Send + 'static>(
        self,
        writer: W,
    ) -> Result<ExportStats> {
        self.write_to_with(writer, Hooks::new()).await
    }

    /// As [`write_to`](Export::write_to), with progress and cancellation.
    ///
    /// # Errors
    /// As [`write_to`](Export::write_to); [`ErrorKind::Cancelled`] when the hooks cancelled.
    pub async fn write_to_with<W: RecordBatchWriter + Send + 'static>(
        self,
        writer: W,
        hooks: Hooks<'_>,
    ) -> Result<ExportStats> {
        let mut hooks = hooks;
        pump(self, ArrowWriter(writer), &mut hooks).await
    }
}

/// Decodes `export` here and writes on a worker thread into `dest`.
pub(crate) async fn pump<D: Destination>(
    mut export: Export<'_>,
    dest: D,
    hooks: &mut Hooks<'_>,
) -> Result<ExportStats> {
    // It reports on `done` before it ends, which every path below awaits.
    let (tx, done, _thread) = spawn_writer(dest)?;
    let mut progress = hooks.progress.take();
    // Whether the export reached its end (else the writer failed first).
    let read = async {
        while let Some(batch) = export.next_batch().await? {
            if tx.send(ToWriter::Batch(batch)).await.is_err() {
                // The writer failed; its error is reported below.
                return Ok(false);
            }
            if let Some(p) = progress.as_mut() {
                p(&export.stats());
            }
        }
        Ok::<bool, Error>(true)
    };
    let read = hooks.or_cancelled(read).await;
    hooks.progress = progress;
    let may_run = match &read {
        None | Some(Ok(false)) => true,
        // A server error ended the COPY itself.
        Some(Err(e)) => e.as_db_error().is_none(),
        Some(Ok(true)) => false,
    };
    if may_run {
        // Stopped before the end: the server is told to stop here (the connection's drop
        // cannot send the request once the runtime is gone), then the connection is closed.
        request_cancel(&export.cancel_token()).await;
    }
    match read {
        None => {
            drop(export);
            drop(tx);
            // Wait for the writer to drop its output (a temporary file is removed).
            let _ = done.await;
            Err(ErrorKind::Cancelled.into())
        }
        Some(Err(e)) => {
            drop(export);
            drop(tx);
            let _ = done.await;
            Err(e)
        }
        Some(Ok(_)) => {
            let mut stats = export.stats();
            let read_ended = Instant::now();
            let _ = tx.send(ToWriter::Finish(Box::new(stats.clone()))).await;
            drop(tx);
            // Unfinished only when the writer failed, which is reported below.
            drop(export);
            match done.await {
                Ok(Ok(Some((written, writing, finishing)))) => {
                    stats.written = written;
                    stats.write = writing;
                    stats.finish = finishing;
                    // The writer's last batches and the finish come after the reading.
                    stats.total += read_ended.elapsed();
                    stats.peak_rss = crate::stats::peak_rss();
                    Ok(stats)
                }
                Ok(Ok(None)) => Err(ErrorKind::Internal(
                    "the writer thread stopped before the end".into(),
                )
                .into()),
                Ok(Err(e)) => Err(e.with_rows(stats.rows)),
                Err(_) => Err(ErrorKind::Internal("the writer thread panicked".into()).into()),
            }
        }
    }
}

impl Client {
    /// Exports `source` into a file (or stdout, or nowhere with [`Format::Null`]): describes
    /// it, creates the output (a file's temporary file first, so that a bad path fails before
    /// the query runs), runs the COPY, decodes here and writes on a worker thread, then
    /// finishes the file (with the loss counts in its footer) and renames it over the target.
    /// A failed or cancelled export leaves no file behind.
    ///
    /// The file's key-value metadata gets `pgarrow.version` unless the options set it.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), pgarrow::Error> {
    /// use pgarrow::{Client, FileTarget, Hooks, Source};
    /// use pgarrow::io::{Format, Output};
    ///
    /// let mut client = Client::connect("postgresql://postgres@localhost/db").await?;
    /// let target = FileTarget::new(Format::Parquet, Output::File("orders.parquet".into()));
    /// let stats = client
    ///     .export_to_file(Source::table("orders")?, &Default::default(), &target, Hooks::new())
    ///     .await?;
    /// println!("{} rows, {:?} bytes written", stats.rows, stats.written);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Client::export`], the output's errors, and [`ErrorKind::Cancelled`].
    pub async fn export_to_file(
        &mut self,
        source: impl Into<Source>,
        options: &ExportOptions,
        target: &FileTarget,
        hooks: Hooks<'_>,
    ) -> Result<ExportStats> {
        let mut sink_options = file_options(&target.options, target.format)?;
        sink_options.row_group_bytes =
            options.limited_row_group_bytes(sink_options.row_group_bytes);
        let create = |schema: &SchemaRef| {
            Ok(Sink::create(
                target.format,
                target.output.clone(),
                schema,
                &sink_options,
            )?)
        };
        self.export_into(source.into(), options, create, hooks)
            .await
    }

    /// Describes `source`, makes its destination with `create` (before the query runs, so that
    /// a bad output fails first; made again when an array column's depth, taken from the data,
    /// changed the schema), runs the COPY and writes into it on a worker thread.
    pub(crate) async fn export_into<D: Destination>(
        &mut self,
        source: Source,
        options: &ExportOptions,
        create: impl Fn(&SchemaRef) -> Result<D>,
        hooks: Hooks<'_>,
    ) -> Result<ExportStats> {
        let mut hooks = hooks;
        // Cancelled while a statement runs (describing, or starting a COPY whose query computes
        // before its first row), the connection is left mid-exchange and unusable; the server
        // is told to stop here, since its drop cannot send the request once the runtime ends.
        let token = self.conn().cancel_token();
        let cancelled = || async {
            request_cancel(&token).await;
            Error::from(ErrorKind::Cancelled)
        };
        let Some(plan) = hooks
            .or_cancelled(self.describe_with(&source, &options.policies))
            .await
        else {
            return Err(cancelled().await);
        };
        let plan = plan?;
        let planned = plan.schema.clone();
        let mut dest = create(&planned)?;
        let Some(export) = hooks
            .or_cancelled(self.export_described(plan, options))
            .await
        else {
            return Err(cancelled().await);
        };
        let export = export?;
        if export.schema() != planned {
            drop(dest);
            dest = match create(&export.schema()) {
                Ok(dest) => dest,
                Err(e) => {
                    request_cancel(&export.cancel_token()).await;
                    return Err(e);
                }
            };
        }
        pump(export, dest, &mut hooks).await
    }
}
