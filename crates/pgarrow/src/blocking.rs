//! Exports, loads and copies for synchronous programs: an arrow [`RecordBatchReader`], and
//! the one adapter ([`block_on`]) that runs any of the engine's async calls to its end or
//! until its [`Stop`].
//!
//! ```no_run
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use arrow_array::RecordBatchReader;
//!
//! let reader = pgarrow::blocking::export(
//!     "postgresql://postgres@localhost/postgres",
//!     "SELECT * FROM pg_class",
//!     &Default::default(),
//! )?;
//! println!("{}", reader.schema());
//! for batch in reader {
//!     println!("{} rows", batch?.num_rows());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The reader runs its own single-threaded tokio runtime: do not use it from inside an async
//! runtime (use [`Export`](crate::Export) there).
//!
//! A host that must stay responsive while it waits (an interpreter that handles Ctrl-C, say)
//! passes hooks with a [`Stop::polled`] to [`export_with`], [`load`] or [`copy`] (or the stop
//! to [`block_on`]): its check runs on
//! the calling thread every [`CHECK_EVERY`] while the call waits on the server, and when it
//! says stop, the server query is cancelled and the call fails with [`ErrorKind::Cancelled`].
//! [`Reader::into_ffi_stream`] hands the export to any Arrow implementation in the process
//! (the C stream interface).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};

use crate::copy::{CopyOptions, CopyStats};
use crate::export::request_cancel;
use crate::load::{LoadOptions, LoadProgress, LoadStats};
use crate::names::IntoTableName;
use crate::partition::{PartRead, PartitionOptions, PartitionPlan};
use crate::running::Running;
use crate::stats::ExportStats;
use crate::{Client, Error, ErrorKind, ExportOptions, Hooks, IntoConfig, Result, Source, Stop};

/// How often a blocking call polls its [`Stop`] while it waits.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Connects, describes `source` and starts its COPY; the returned reader yields its batches.
///
/// # Errors
/// As [`Client::connect`] and [`Client::export`].
pub fn export(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
) -> Result<Reader> {
    export_with(config, source, options, Hooks::new())
}

/// [`export`] with hooks: their stop ends it (while it starts, and while its reader waits):
/// the server is sent a cancel request (if the query was sent), the connection is closed and
/// the call fails with [`ErrorKind::Cancelled`]; their progress hears the statistics after
/// each batch the reader hands out.
///
/// # Errors
/// As [`export`], and [`ErrorKind::Cancelled`].
pub fn export_with(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    hooks: Hooks<'static>,
) -> Result<Reader> {
    let runtime = runtime()?;
    let start = Running::start(
        config.into_config()?,
        source.into(),
        options,
        None,
        &hooks.stop,
    );
    let export = wait(&runtime, &hooks.stop, start)?;
    Ok(Reader::new(export, hooks, runtime))
}

/// [`export_with`] over several connections in one snapshot (see [`crate::partition`]):
/// the reader yields the batches of every part as they come, in no particular order unless
/// [`PartitionOptions::order_preserving`].
///
/// # Errors
/// As [`PartitionedExport::start`], and [`ErrorKind::Cancelled`].
///
/// [`PartitionedExport::start`]: crate::partition::PartitionedExport::start
pub fn export_partitioned(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    hooks: Hooks<'static>,
) -> Result<Reader> {
    let runtime = runtime()?;
    let config = config.into_config()?;
    let start = Running::start(
        config,
        source.into(),
        options,
        Some(partitions),
        &hooks.stop,
    );
    let export = wait(&runtime, &hooks.stop, start)?;
    Ok(Reader::new(export, hooks, runtime))
}

/// Reads part `index` of `plan` on a new connection, in the plan's snapshot (see
/// [`crate::partition::export_part_with`]): what a worker of an engine runs, in any process.
///
/// # Errors
/// As [`crate::partition::export_part_with`], and [`ErrorKind::Cancelled`].
pub fn export_part(
    config: impl IntoConfig,
    plan: &PartitionPlan,
    index: usize,
    options: &ExportOptions,
    read: &PartRead,
    hooks: Hooks<'static>,
) -> Result<Reader> {
    let runtime = runtime()?;
    let config = config.into_config()?;
    let start = crate::partition::export_part_with(config, plan, index, options, read);
    let export = block_on(&runtime, &hooks.stop, start)?;
    Ok(Reader::new(Running::One(Box::new(export)), hooks, runtime))
}

/// Connects and loads `input`'s batches into `table` in one transaction (see
/// [`Client::load_with`]). When the hooks' stop stops it (between chunks, or while it waits
/// on the server), the load sends CopyFail (or closes the connection), the server rolls
/// back, and the call fails with [`ErrorKind::Cancelled`]. Either way the table is as it
/// was.
///
/// # Errors
/// As [`Client::connect`] and [`Client::load`], and [`ErrorKind::Cancelled`].
pub fn load(
    config: impl IntoConfig,
    table: impl IntoTableName,
    input: impl RecordBatchReader + Send + 'static,
    options: &LoadOptions,
    hooks: Hooks<'_, LoadProgress>,
) -> Result<LoadStats> {
    let runtime = runtime()?;
    let config = config.into_config()?;
    let stop = hooks.stop.clone();
    let started = std::time::Instant::now();
    let mut client = block_on(&runtime, &stop, Client::connect(config))?;
    let connect = started.elapsed();
    let schema = input.schema();
    // The load reads `input` on a thread of its own; that thread must be done with it before
    // this returns (the input may be a producer in a host, such as Python, that is gone later).
    let ended = Arc::new(AtomicBool::new(false));
    let (alive, gone) = std::sync::mpsc::channel::<()>();
    let input = Owned {
        input,
        ended: Arc::clone(&ended),
        _alive: alive,
    };
    let load = client.load_with(table, &schema, input, options, hooks);
    // The load watches its stop itself (it sends CopyFail and rolls back, within a grace
    // period), so it is polled here, never cut off.
    let loaded = wait(&runtime, &stop, load);
    ended.store(true, Ordering::Relaxed);
    loop {
        match gone.recv_timeout(CHECK_EVERY) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !stop.poll() => {}
            _ => break,
        }
    }
    let mut stats = loaded?;
    stats.connect = connect;
    stats.total += connect;
    let _ = runtime.block_on(client.close());
    Ok(stats)
}

/// [`copy`](crate::copy) for a synchronous caller: runs it to its end on a runtime of its
/// own, [polling](Stop::poll) the hooks' stop on this thread while it waits.
///
/// # Errors
/// As [`copy`](crate::copy).
pub fn copy(
    from: impl IntoConfig,
    source: impl Into<Source>,
    to: impl IntoConfig,
    table: impl IntoTableName,
    options: &CopyOptions,
    hooks: Hooks<'_, LoadProgress>,
) -> Result<CopyStats> {
    let runtime = runtime()?;
    let stop = hooks.stop.clone();
    // The copy watches its stop itself (the load rolls back, the source's query is
    // cancelled), so it is polled here, never cut off.
    wait(
        &runtime,
        &stop,
        crate::copy(from, source, to, table, options, hooks),
    )
}

/// A load's input that ends once `ended` is set, and whose drop the caller can wait for.
struct Owned<R> {
    input: R,
    ended: Arc<AtomicBool>,
    _alive: std::sync::mpsc::Sender<()>,
}

impl<R: Iterator> Iterator for Owned<R> {
    type Item = R::Item;

    fn next(&mut self) -> Option<R::Item> {
        match self.ended.load(Ordering::Relaxed) {
            true => None,
            false => self.input.next(),
        }
    }
}

/// A running export as an arrow [`RecordBatchReader`]: an iterator of
/// `Result<RecordBatch, ArrowError>` whose errors wrap a [`crate::Error`]
/// ([`ArrowError::ExternalError`]; downcast it for the SQLSTATE).
///
/// Dropping it before the end cancels the server query and closes the connection.
pub struct Reader {
    schema: SchemaRef,
    /// `None` once it ended or failed.
    export: Option<Running>,
    /// The statistics at the end.
    last: ExportStats,
    /// Their stop stops it while it waits; their progress hears of each batch.
    hooks: Hooks<'static>,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("schema", &self.schema)
            .field("export", &self.export)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// The reader of `export`, which runs on `runtime` with `hooks`: what every export of
    /// this module hands out.
    fn new(export: Running, hooks: Hooks<'static>, runtime: tokio::runtime::Runtime) -> Reader {
        Reader {
            schema: export.schema(),
            export: Some(export),
            last: ExportStats::default(),
            hooks,
            runtime,
        }
    }

    /// The next batch, or `None` at the end, with pgarrow's own error. When the stop of the
    /// reader's hooks (given to [`export_with`]) stops it while it waits, the server query is
    /// cancelled, the reader ends and the call fails with [`ErrorKind::Cancelled`].
    ///
    /// # Errors
    /// As [`Export::next_batch`](crate::Export::next_batch), and [`ErrorKind::Cancelled`].
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let Some(export) = self.export.as_mut() else {
            return Ok(None);
        };
        let result = block_on(&self.runtime, &self.hooks.stop, export.next_batch());
        match &result {
            Ok(Some(_)) => {
                if self.hooks.progress.is_some() {
                    self.hooks.report(&export.stats());
                }
            }
            Err(e) if e.is_cancelled() => {
                if let Some(export) = self.export.take() {
                    self.last = export.stats();
                    // A cancel that cannot be sent still closes the connection, which ends
                    // the query at the server's next write.
                    let _ = self.runtime.block_on(export.cancel());
                }
                return Err(Error::from(ErrorKind::Cancelled).with_rows(self.last.rows));
            }
            // Ended or failed: the connection is closed now rather than when dropped.
            _ => {
                self.last = export.stats();
                self.export = None;
            }
        }
        result
    }

    /// The export as an Arrow C stream (`ArrowArrayStream`), for any Arrow implementation in
    /// the process: its errors carry this crate's message, and releasing the stream before
    /// its end cancels the server query.
    pub fn into_ffi_stream(self) -> FFI_ArrowArrayStream {
        FFI_ArrowArrayStream::new(Box::new(self))
    }

    /// What the export did so far, or in all once it ended.
    pub fn stats(&self) -> ExportStats {
        match &self.export {
            Some(export) => export.stats(),
            None => self.last.clone(),
        }
    }

    /// Stops the export, cancelling the server query.
    ///
    /// # Errors
    /// As [`Export::cancel`](crate::Export::cancel).
    pub fn cancel(mut self) -> Result<()> {
        match self.export.take() {
            Some(export) => self.runtime.block_on(export.cancel()),
            None => Ok(()),
        }
    }
}

/// A single-threaded runtime with timers and I/O, for a blocking front door or a worker.
///
/// # Errors
/// [`ErrorKind::Internal`] when the system refuses it.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    crate::running::runtime()
}

/// Runs `fut` on `runtime` to its end, unless `stop` is stopped first: then `fut` is dropped
/// unfinished (closing whatever connection it holds) and the result is
/// [`ErrorKind::Cancelled`]. While it waits, `stop` is [polled](Stop::poll) on this thread
/// every [`CHECK_EVERY`]. The one blocking adapter of every front door (the CLI, Python).
///
/// # Errors
/// `fut`'s error, or [`ErrorKind::Cancelled`].
pub fn block_on<T>(
    runtime: &tokio::runtime::Runtime,
    stop: &Stop,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    wait(runtime, stop, stop.run(fut))?
}

/// Runs `fut` on `runtime` to its end, polling `stop` on this thread every [`CHECK_EVERY`]
/// while it is pending: for work that watches `stop` itself and winds down on its own when
/// stopped (an export given [`Hooks::with_stop`](crate::Hooks::with_stop) removes its
/// temporary file first; a load sends CopyFail and rolls back), which [`block_on`] would cut
/// off.
pub fn wait<F: Future>(runtime: &tokio::runtime::Runtime, stop: &Stop, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    loop {
        // The future is polled where it left off: a timeout does not restart it. (The timer
        // is made inside the runtime, which it needs.)
        let waited =
            runtime.block_on(async { tokio::time::timeout(CHECK_EVERY, fut.as_mut()).await });
        match waited {
            Ok(out) => return out,
            Err(_) => {
                stop.poll();
            }
        }
    }
}

impl Iterator for Reader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().map_err(Error::into).transpose()
    }
}

impl RecordBatchReader for Reader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        match self.export.take() {
            Some(Running::One(export)) => {
                // Outside the runtime, the connection's own drop cannot send the cancel
                // request: send it here, then close.
                let token = export.cancel_token();
                drop(export);
                self.runtime.block_on(request_cancel(&token));
            }
            // Its own drop stops its workers and cancels their queries.
            Some(Running::Parts(p)) => drop(p),
            None => {}
        }
    }
}
