//! The native half of the Python package: `pgarrow._pgarrow`, wrapped by
//! `python/pgarrow/__init__.py` (which users import).
//!
//! Data crosses through the Arrow C data and stream interfaces (PyCapsules named
//! `arrow_schema`, `arrow_array` and `arrow_array_stream`), so pyarrow, polars, DuckDB or any
//! other Arrow implementation takes the buffers without a copy. Every wait on the server runs
//! with the GIL released, checking for signals every 100 ms: Ctrl-C cancels the server query
//! and raises `KeyboardInterrupt`.

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::ffi::to_ffi;
use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_schema::SchemaRef;
use arrow_schema::ffi::FFI_ArrowSchema;
use pgarrow::blocking::{self, CopyOptions, Reader};
use pgarrow::incremental::{
    IncrementalOptions, IncrementalState, LateRows, RunTarget, export_run, next_run, run_name,
};
use pgarrow::io::Format;
use pgarrow::partition::{self, Coordinator, Holder, PartRead, PartitionOptions, PartitionPlan};
use pgarrow::protocol::Config;
use pgarrow::{
    Category, Client, CreateNested, DirTarget, ExportStats, FileTarget, Hooks, Input, InputOptions,
    LoadHooks, LoadMode, LoadOptions, Location, Source, Stop, StorageOptions, TableName,
    TablePattern,
};
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyList, PyTuple, PyType};

mod options;
use options::Options;

// The system allocator, not mimalloc as in the CLI: `read_arrow` keeps every batch, and with
// mimalloc that memory cost 1.1-1.3 s of system time on 2M lineitem rows (mimalloc's options
// set at import came too late to change it); with glibc's malloc, 0.3 s and a smaller peak.
// See benches/RESULTS.md.

pyo3::create_exception!(
    _pgarrow,
    Error,
    PyException,
    "Base class of pgarrow's errors. Attributes: `sqlstate` and `server_message` (when the \
     server reported the error, else None), `detail`, `hint`, and `rows` (rows delivered \
     before the failure, when the export had started)."
);
pyo3::create_exception!(
    _pgarrow,
    ConnectError,
    Error,
    "Connecting or authenticating failed (the server is unreachable, refused the connection, \
     or the database does not exist)."
);
pyo3::create_exception!(
    _pgarrow,
    QueryError,
    Error,
    "The server refused or aborted the query (see `sqlstate`), or the connection broke while \
     it ran."
);
pyo3::create_exception!(
    _pgarrow,
    DecodeError,
    Error,
    "A value has no exact Arrow form under the chosen options; the message names the column, \
     the row, and the option that would let it through."
);
pyo3::create_exception!(
    _pgarrow,
    OutputError,
    Error,
    "Writing the output file failed; nothing was left behind."
);
/// The Python exception for a pgarrow error, its class from what the caller can do about it
/// ([`Category`]), with its attributes set.
fn py_err(py: Python<'_>, e: &pgarrow::Error) -> PyErr {
    let message = e.to_string();
    let err = match e.category() {
        Category::Usage => usage_error(py, message),
        Category::Connection => ConnectError::new_err(message),
        Category::Server => QueryError::new_err(message),
        Category::Value if matches!(root_kind(e), pgarrow::ErrorKind::Decode(_)) => {
            DecodeError::new_err(message)
        }
        Category::Output => OutputError::new_err(message),
        // Ctrl-C while a Python producer of `write`'s input ran: the handler raised inside it,
        // and its C stream can pass on only the text.
        Category::Input if message.contains("\nKeyboardInterrupt") => {
            PyKeyboardInterrupt::new_err(message)
        }
        _ => Error::new_err(message),
    };
    let value = err.value(py);
    let db = e.as_db_error();
    // Setting attributes on a fresh exception instance does not fail.
    let _ = value.setattr("sqlstate", db.map(|d| d.code.clone()));
    let _ = value.setattr("server_message", db.map(|d| d.message.clone()));
    let _ = value.setattr("detail", db.and_then(|d| d.detail.clone()));
    let _ = value.setattr("hint", db.and_then(|d| d.hint.clone()));
    let _ = value.setattr("rows", e.rows_delivered());
    err
}

/// `pgarrow.UsageError` (defined in Python, as a subclass of both `pgarrow.Error` and
/// `ValueError`), or a plain `ValueError` if the package cannot be imported.
fn usage_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    let message = message.into();
    match py
        .import("pgarrow")
        .and_then(|m| m.getattr("UsageError"))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from))
    {
        Ok(class) => PyErr::from_type(class, message),
        Err(_) => PyValueError::new_err(message),
    }
}

/// What failed, under any context the message adds.
fn root_kind(e: &pgarrow::Error) -> &pgarrow::ErrorKind {
    let mut inner = e;
    while let pgarrow::ErrorKind::Context { source, .. } = inner.kind() {
        inner = source;
    }
    inner.kind()
}

/// A [`Stop`] that Python's signal handlers set: its check (run by the library's blocking
/// adapter on this thread, every `CHECK_EVERY` while it waits) takes the GIL back for a
/// moment to run them; the exception a handler raised (`KeyboardInterrupt`) is kept, and
/// wins over the cancellation it caused.
struct Interrupt {
    stop: Stop,
    raised: Arc<Mutex<Option<PyErr>>>,
}

impl Interrupt {
    fn new() -> Interrupt {
        let raised: Arc<Mutex<Option<PyErr>>> = Arc::default();
        let slot = Arc::clone(&raised);
        let stop = Stop::polled(move || match Python::attach(|py| py.check_signals()) {
            Ok(()) => false,
            Err(e) => {
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                true
            }
        });
        Interrupt { stop, raised }
    }

    /// Runs `f` with the GIL released, stopped by Python's signal handlers.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Stop) -> pgarrow::Result<T> + Send,
    ) -> PyResult<T> {
        let stop = &self.stop;
        let result = py.detach(|| f(stop));
        let raised = self.raised.lock().unwrap_or_else(|p| p.into_inner()).take();
        match (result, raised) {
            (_, Some(e)) => Err(e),
            (Ok(v), None) => Ok(v),
            (Err(e), None) => Err(py_err(py, &e)),
        }
    }
}

/// Runs `f` with the GIL released and a fresh [`Interrupt`]'s stop.
fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce(&Stop) -> pgarrow::Result<T> + Send,
) -> PyResult<T> {
    Interrupt::new().run(py, f)
}

/// The connection settings: a URL or `key=value` string, else `DATABASE_URL`, else the `PG*`
/// environment (as the CLI).
fn config(conninfo: Option<&str>, timeout: Option<Duration>) -> PyResult<Config> {
    let env_url = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty());
    let parsed = match conninfo.map(str::to_owned).or(env_url) {
        Some(s) => Config::parse(&s),
        None => Config::from_env(),
    };
    let mut config = parsed.map_err(|e| PyValueError::new_err(e.to_string()))?;
    if timeout.is_some() {
        config.statement_timeout = timeout;
    }
    Ok(config)
}

fn source(text: &str, is_table: bool) -> PyResult<Source> {
    if is_table {
        Source::table(text).map_err(|e| PyValueError::new_err(e.to_string()))
    } else {
        Ok(Source::query(text))
    }
}

/// A PyCapsule holding `value` (boxed: the capsule's pointer is the value's address, as the
/// Arrow PyCapsule interface requires); a consumer moves the value out and leaves it released,
/// and dropping it then does nothing.
fn capsule<'py, T: Send + 'static>(
    py: Python<'py>,
    value: T,
    name: &'static CStr,
) -> PyResult<Bound<'py, PyCapsule>> {
    PyCapsule::new_with_value(py, value, name)
}

fn schema_capsule<'py>(py: Python<'py>, schema: &SchemaRef) -> PyResult<Bound<'py, PyCapsule>> {
    let ffi = FFI_ArrowSchema::try_from(schema.as_ref())
        .map_err(|e| Error::new_err(format!("exporting the schema: {e}")))?;
    capsule(py, ffi, c"arrow_schema")
}

/// A running export (made by `pgarrow._pgarrow.Export(...)`): its schema, its batches one at
/// a time (`next_batch`, interruptible), or the whole stream (`__arrow_c_stream__`).
#[pyclass(module = "pgarrow._pgarrow", name = "Export")]
struct PyExport {
    schema: SchemaRef,
    /// Stops the reader while it waits (Ctrl-C).
    interrupt: Interrupt,
    /// `None` once handed out as a stream or closed.
    reader: Mutex<Option<Reader>>,
    /// The statistics when the reader was handed out or closed.
    last: Mutex<Option<ExportStats>>,
}

impl PyExport {
    fn take(&self) -> Option<Reader> {
        let reader = self.reader.lock().expect("not poisoned").take();
        if let Some(r) = &reader {
            *self.last.lock().expect("not poisoned") = Some(r.stats());
        }
        reader
    }
}

#[pymethods]
impl PyExport {
    /// Connects, describes the source and starts its COPY.
    #[new]
    #[pyo3(signature = (conninfo, source, is_table=false, options=None))]
    fn new(
        py: Python<'_>,
        conninfo: Option<&str>,
        source: &str,
        is_table: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let options = Options::parse(options, false)?;
        let config = config(conninfo, options.statement_timeout)?;
        let source = self::source(source, is_table)?;
        let export = options.export;
        let partitions = options.partitions;
        let interrupt = Interrupt::new();
        let reader = interrupt.run(py, move |stop| match partitions {
            Some(p) => blocking::export_partitioned(config, source, &export, &p, stop),
            None => blocking::export_with(config, source, &export, stop),
        })?;
        Ok(PyExport {
            schema: arrow_array::RecordBatchReader::schema(&reader),
            interrupt,
            reader: Mutex::new(Some(reader)),
            last: Mutex::new(None),
        })
    }

    /// Connects and starts reading part `index` of a plan (its JSON form) in the plan's
    /// snapshot: some `columns`, the rows where `filter` holds, at most `limit` rows.
    #[staticmethod]
    #[pyo3(signature = (conninfo, plan_json, index, options=None, columns=None, filter=None, limit=None))]
    #[allow(clippy::too_many_arguments)]
    fn part(
        py: Python<'_>,
        conninfo: Option<&str>,
        plan_json: &str,
        index: usize,
        options: Option<&Bound<'_, PyDict>>,
        columns: Option<Vec<String>>,
        filter: Option<String>,
        limit: Option<u64>,
    ) -> PyResult<Self> {
        let options = Options::parse(options, false)?;
        if options.partitions.is_some() {
            return Err(usage_error(
                py,
                "a part is read over one connection: partition options belong to the plan",
            ));
        }
        let config = config(conninfo, options.statement_timeout)?;
        let plan = PartitionPlan::from_json(plan_json).map_err(|e| py_err(py, &e))?;
        let mut read = PartRead::new();
        read.columns = columns;
        read.filter = filter;
        read.limit = limit;
        let export = options.export;
        let interrupt = Interrupt::new();
        let reader = interrupt.run(py, move |stop| {
            blocking::export_part(config, &plan, index, &export, &read, stop)
        })?;
        Ok(PyExport {
            schema: arrow_array::RecordBatchReader::schema(&reader),
            interrupt,
            reader: Mutex::new(Some(reader)),
            last: Mutex::new(None),
        })
    }

    /// The schema as an `arrow_schema` PyCapsule (the Arrow PyCapsule interface).
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.schema)
    }

    /// The next batch (an object with `__arrow_c_array__`), or None at the end. Waits with the
    /// GIL released; Ctrl-C cancels the server query and raises KeyboardInterrupt.
    fn next_batch(&self, py: Python<'_>) -> PyResult<Option<PyBatch>> {
        let mut guard = self.reader.lock().expect("not poisoned");
        let Some(reader) = guard.as_mut() else {
            return Ok(None);
        };
        // The reader was made with the interrupt's stop: it is what a signal handler sets.
        let next = self.interrupt.run(py, |_| reader.next_batch());
        if !matches!(next, Ok(Some(_))) {
            *self.last.lock().expect("not poisoned") = Some(reader.stats());
            *guard = None;
        }
        Ok(next?.map(|batch| PyBatch {
            batch: Mutex::new(Some(batch)),
        }))
    }

    /// The rest of the export as an `arrow_array_stream` PyCapsule, for any consumer of the
    /// Arrow PyCapsule interface. Once only.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // The schema is the export's own: a consumer's request is a hint it may ignore.
        let _ = requested_schema;
        let reader = self
            .take()
            .ok_or_else(|| Error::new_err("this export was already consumed or closed"))?;
        capsule(py, reader.into_ffi_stream(), c"arrow_array_stream")
    }

    /// What the export did so far (or in all, once it ended), as JSON text; once handed out
    /// as a stream, what it did until then.
    fn stats_json(&self) -> String {
        match self.reader.lock().expect("not poisoned").as_ref() {
            Some(r) => r.stats().to_json(),
            None => self
                .last
                .lock()
                .expect("not poisoned")
                .clone()
                .unwrap_or_default()
                .to_json(),
        }
    }

    /// Stops the export: the server query is cancelled and the connection closed.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        match self.take() {
            Some(reader) => py.detach(|| reader.cancel()).map_err(|e| py_err(py, &e)),
            None => Ok(()),
        }
    }
}

/// A slot's changes as they come (made by `pgarrow._pgarrow.Changes(...)`): `next_event`
/// waits with the GIL released and returns `("rows", table, batch)`, `("schema", table,
/// lsn)` (the LSN where its columns changed, None for a table's first schema) or
/// `("checkpoint", lsn, None)`; `confirm(lsn)` tells the slot a checkpoint is
/// durable.
#[pyclass(module = "pgarrow._pgarrow", name = "Changes")]
struct PyChanges {
    interrupt: Interrupt,
    runtime: tokio::runtime::Runtime,
    /// `None` once closed (an ended stream stays, for its last checkpoint's confirmation).
    stream: Mutex<Option<pgarrow_changes::ChangeStream>>,
}

#[pymethods]
impl PyChanges {
    /// Connects and starts streaming the slot's changes for `publications`.
    #[new]
    #[pyo3(signature = (conninfo, slot, publications, create_slot=false, catch_up=false, values="auto", start=None, batch_rows=None, flush_interval=1.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        conninfo: Option<&str>,
        slot: &str,
        publications: Vec<String>,
        create_slot: bool,
        catch_up: bool,
        values: &str,
        start: Option<&str>,
        batch_rows: Option<usize>,
        flush_interval: f64,
    ) -> PyResult<Self> {
        use pgarrow_changes::ChangeStream;
        let config = config(conninfo, None)?;
        let mut options = change_options(
            py,
            slot,
            &publications,
            create_slot,
            catch_up,
            values,
            start,
        )?;
        if let Some(rows) = batch_rows {
            options.decode.batch_rows = rows.max(1);
        }
        options.flush_interval = seconds(py, "flush_interval", flush_interval)?;
        let runtime = blocking::runtime().map_err(|e| py_err(py, &e))?;
        let interrupt = Interrupt::new();
        let stream = interrupt.run(py, |stop| {
            blocking::block_on(&runtime, stop, ChangeStream::start(config, options))
        })?;
        Ok(PyChanges {
            interrupt,
            runtime,
            stream: Mutex::new(Some(stream)),
        })
    }

    /// The next event, or None once the stream ended (caught up, or the server ended it).
    fn next_event<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        use pgarrow_changes::ChangeEvent;
        let mut guard = self.stream.lock().expect("not poisoned");
        let Some(stream) = guard.as_mut() else {
            return Ok(None);
        };
        let runtime = &self.runtime;
        let next = self.interrupt.run(py, |stop| {
            blocking::block_on(runtime, stop, stream.next_event())
        });
        let event = match next {
            Ok(Some(e)) => e,
            // Ended, but kept until closed: its last checkpoint may still be confirmed.
            Ok(None) => return Ok(None),
            Err(e) => {
                // An error or Ctrl-C mid-read: the stream cannot go on (what was not confirmed
                // comes again next time).
                *guard = None;
                return Err(e);
            }
        };
        let tuple = match event {
            ChangeEvent::Rows(b) => (
                "rows",
                b.table.quoted(),
                Py::new(
                    py,
                    PyBatch {
                        batch: Mutex::new(Some(b.batch)),
                    },
                )?
                .into_any(),
            ),
            // A changed schema carries where it changed; a table's first one, None.
            ChangeEvent::Schema(s) => (
                "schema",
                s.table.quoted(),
                match s.changed {
                    true => s.lsn.to_string().into_pyobject(py)?.into_any().unbind(),
                    false => py.None(),
                },
            ),
            ChangeEvent::Checkpoint(lsn) => ("checkpoint", lsn.to_string(), py.None()),
        };
        PyTuple::new(
            py,
            [
                tuple.0.into_pyobject(py)?.into_any(),
                tuple.1.into_pyobject(py)?.into_any(),
                tuple.2.into_bound(py),
            ],
        )
        .map(Some)
    }

    /// Tells the slot that every change up to checkpoint `lsn` is durable.
    fn confirm(&self, py: Python<'_>, lsn: &str) -> PyResult<()> {
        let lsn: pgarrow::protocol::replication::Lsn = lsn
            .parse()
            .map_err(|e: pgarrow::protocol::Error| usage_error(py, e.to_string()))?;
        let mut guard = self.stream.lock().expect("not poisoned");
        let Some(stream) = guard.as_mut() else {
            return Err(usage_error(py, "the change stream is closed"));
        };
        let runtime = &self.runtime;
        self.interrupt.run(py, |stop| {
            blocking::block_on(runtime, stop, stream.confirm(lsn))
        })
    }

    /// Why values come as text where binary was possible, or None.
    fn text_reason(&self) -> Option<String> {
        let guard = self.stream.lock().expect("not poisoned");
        guard
            .as_ref()
            .and_then(|s| s.text_reason().map(str::to_owned))
    }

    /// Ends the stream (the slot keeps the position confirmed last).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let stream = self.stream.lock().expect("not poisoned").take();
        match stream {
            Some(stream) => py
                .detach(|| self.runtime.block_on(stream.close()))
                .map_err(|e| py_err(py, &e)),
            None => Ok(()),
        }
    }
}

/// What `Changes` and `changes_to` share: the slot, its publications and how to read them.
fn change_options(
    py: Python<'_>,
    slot: &str,
    publications: &[String],
    create_slot: bool,
    catch_up: bool,
    values: &str,
    start: Option<&str>,
) -> PyResult<pgarrow_changes::ChangeOptions> {
    use pgarrow_changes::{ChangeOptions, ValueFormat};
    let names: Vec<&str> = publications.iter().map(String::as_str).collect();
    let mut options = ChangeOptions::new(slot, &names);
    options.create_slot = create_slot;
    options.catch_up = catch_up;
    options.values = values
        .parse::<ValueFormat>()
        .map_err(|e| usage_error(py, format!("values={values:?}: {e}")))?;
    if let Some(start) = start {
        options.start = Some(start.parse().map_err(|e: pgarrow::protocol::Error| {
            usage_error(py, format!("start={start:?}: {e}"))
        })?);
    }
    Ok(options)
}

/// `value` seconds, 0 or more.
fn seconds(py: Python<'_>, name: &str, value: f64) -> PyResult<Duration> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(usage_error(
            py,
            format!("{name} is a number of seconds, 0 or more"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

/// Streams the slot's changes into file sets under `output` (a directory or an object URL)
/// with their manifest, as `pgarrow changes -o` does, until caught up (`catch_up`) or
/// interrupted (Ctrl-C ends it at a transaction boundary, after a last roll); returns the
/// statistics as JSON text.
#[pyfunction]
#[pyo3(signature = (conninfo, output, slot, publications, format=None, create_slot=false, catch_up=false, values="auto", start=None, roll_rows=1_000_000, roll_bytes=134_217_728, roll_seconds=60.0, storage_options=None))]
#[allow(clippy::too_many_arguments)]
fn changes_to(
    py: Python<'_>,
    conninfo: Option<&str>,
    output: PathBuf,
    slot: &str,
    publications: Vec<String>,
    format: Option<&str>,
    create_slot: bool,
    catch_up: bool,
    values: &str,
    start: Option<&str>,
    roll_rows: u64,
    roll_bytes: usize,
    roll_seconds: f64,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<String> {
    let config = config(conninfo, None)?;
    let options = change_options(
        py,
        slot,
        &publications,
        create_slot,
        catch_up,
        values,
        start,
    )?;
    let mut target = pgarrow_changes::ChangeTarget::dir(
        location(py, &output, storage_options)?,
        dir_format(py, format)?,
    );
    target.roll_rows = roll_rows.max(1);
    target.roll_bytes = roll_bytes.max(1);
    target.roll_interval = seconds(py, "roll_seconds", roll_seconds)?;
    detached(py, move |stop| {
        let runtime = blocking::runtime()?;
        // Stopped, the run winds down at a transaction boundary itself: waited for, not cut.
        let mut quiet = |_: &str| {};
        let run = pgarrow_changes::changes_to(config, options, &target, stop.clone(), &mut quiet);
        document(&blocking::wait(&runtime, stop, run)?)
    })
}

/// Applies the changes directory `path` (as `changes_to` writes it) to the tables of
/// `conninfo`'s database, as `pgarrow apply` does; returns the statistics as JSON text.
#[pyfunction]
#[pyo3(signature = (conninfo, path, tables=None, keys=None, state_table=None, nanoseconds="error", storage_options=None))]
#[allow(clippy::too_many_arguments)]
fn apply_changes(
    py: Python<'_>,
    conninfo: Option<&str>,
    path: PathBuf,
    tables: Option<HashMap<String, String>>,
    keys: Option<HashMap<String, Vec<String>>>,
    state_table: Option<&str>,
    nanoseconds: &str,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<String> {
    let config = config(conninfo, None)?;
    let usage = |e: pgarrow::Error| usage_error(py, e.to_string());
    let mut options = pgarrow_changes::ApplyOptions::default();
    if let Some(name) = state_table {
        options = options.state_table(name).map_err(usage)?;
    }
    // Sorted: the same options in the same order, whatever the dict's.
    let mut tables: Vec<_> = tables.unwrap_or_default().into_iter().collect();
    tables.sort();
    for (source, target) in tables {
        options = options.map_table(&source, &target).map_err(usage)?;
    }
    let mut keys: Vec<_> = keys.unwrap_or_default().into_iter().collect();
    keys.sort();
    for (table, columns) in keys {
        options = options.key(&table, columns).map_err(usage)?;
    }
    options.policies.nanoseconds = nanoseconds
        .parse()
        .map_err(|e: String| usage_error(py, format!("nanoseconds: {e}")))?;
    let dir = location(py, &path, storage_options)?;
    detached(py, move |stop| {
        let runtime = blocking::runtime()?;
        let mut quiet = |_: &pgarrow_changes::ApplyStats| {};
        let run = pgarrow_changes::apply_changes(config, &dir, &options, stop, &mut quiet);
        document(&blocking::wait(&runtime, stop, run)?)
    })
}

/// One record batch, handed to Python through the Arrow C data interface.
#[pyclass(module = "pgarrow._pgarrow", name = "Batch")]
struct PyBatch {
    batch: Mutex<Option<RecordBatch>>,
}

#[pymethods]
impl PyBatch {
    /// The batch as a pair of `arrow_schema` and `arrow_array` PyCapsules. Once only.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let _ = requested_schema;
        let batch = self
            .batch
            .lock()
            .expect("not poisoned")
            .take()
            .ok_or_else(|| Error::new_err("this batch was already consumed"))?;
        // The schema of the batch itself, not of its struct array: so that its metadata
        // (the table of a change batch, the source's types) crosses too.
        let schema = FFI_ArrowSchema::try_from(batch.schema().as_ref())
            .map_err(|e| Error::new_err(format!("exporting a batch's schema: {e}")))?;
        let data = StructArray::from(batch).into_data();
        let (array, _) =
            to_ffi(&data).map_err(|e| Error::new_err(format!("exporting a batch: {e}")))?;
        let schema = capsule(py, schema, c"arrow_schema")?;
        let array = capsule(py, array, c"arrow_array")?;
        PyTuple::new(py, [schema.into_any(), array.into_any()])
    }
}

/// The Arrow schema an export of `source` would produce (described, not run), as an
/// `arrow_schema` PyCapsule.
#[pyfunction]
#[pyo3(signature = (conninfo, source, is_table=false, options=None))]
fn schema<'py>(
    py: Python<'py>,
    conninfo: Option<&str>,
    source: &str,
    is_table: bool,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyCapsule>> {
    let options = Options::parse(options, false)?;
    let config = config(conninfo, options.statement_timeout)?;
    let source = self::source(source, is_table)?;
    let policies = options.export.policies;
    let schema = detached(py, move |stop| {
        let runtime = blocking::runtime()?;
        blocking::block_on(&runtime, stop, async move {
            let mut client = Client::connect(config).await?;
            let plan = client.plan_with(&source, &policies).await?;
            client.close().await?;
            Ok(plan.schema)
        })
    })?;
    schema_capsule(py, &schema)
}

/// Exports `source` to a Parquet or Arrow IPC file at `path` (written atomically); returns
/// the statistics as JSON text.
#[pyfunction]
#[pyo3(signature = (conninfo, source, path, format=None, is_table=false, options=None, storage_options=None))]
#[allow(clippy::too_many_arguments)]
fn export_file(
    py: Python<'_>,
    conninfo: Option<&str>,
    source: &str,
    path: PathBuf,
    format: Option<&str>,
    is_table: bool,
    options: Option<&Bound<'_, PyDict>>,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<String> {
    let location = location(py, &path, storage_options)?;
    let options = Options::parse(options, true)?;
    let config = config(conninfo, options.statement_timeout)?;
    let source = self::source(source, is_table)?;
    let format = match format {
        Some(f) => f
            .parse::<Format>()
            .map_err(|e| PyValueError::new_err(format!("format: {e}")))?,
        None => Format::from_path(&path).ok_or_else(|| {
            PyValueError::new_err(format!(
                "cannot tell the format from {}: use a .parquet, .arrow or .arrows extension, \
                 or format=",
                path.display()
            ))
        })?,
    };
    if format == Format::Null {
        return Err(PyValueError::new_err(
            "format 'null' writes nothing: use pgarrow.read_batches to read without a file",
        ));
    }
    if location.as_local().is_some_and(Path::is_dir) {
        return Err(PyValueError::new_err(format!(
            "{location} is a directory: give a file name"
        )));
    }
    let target = FileTarget {
        format,
        output: location.output(),
        options: options.sink,
    };
    target
        .options
        .validate()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let export = options.export;
    let partitions = options.partitions;
    if let Some(slot) = options.slot {
        let target = RunTarget::File(target);
        return detached(py, move |stop| {
            export_in_slot(config, slot, source, &export, partitions, &target, stop)
        });
    }
    detached(py, move |stop| {
        let runtime = blocking::runtime()?;
        let hooks = Hooks::new().with_stop(stop.clone());
        // The export watches the stop itself: stopped, it cancels the query and removes its
        // temporary file before it returns.
        match partitions {
            Some(p) => {
                let run = partition::export_to_file(config, source, &export, &p, &target, hooks);
                document(&blocking::wait(&runtime, stop, run)?)
            }
            None => {
                let mut client = blocking::block_on(&runtime, stop, Client::connect(config))?;
                let run = client.export_to_file(source, &export, &target, hooks);
                document(&blocking::wait(&runtime, stop, run)?)
            }
        }
    })
}

/// Loads `data` into `table` in one transaction; returns the statistics as JSON text. `data`
/// is anything with `__arrow_c_stream__` (a pyarrow Table or RecordBatchReader, a polars
/// DataFrame, a DuckDB result, ...), or paths: files (Parquet, Arrow IPC file or stream, by
/// extension) or one directory written by an export (the files its manifest lists, each
/// checked against its row count). The GIL is released while it runs (a producer's stream
/// takes it back when it needs it); Ctrl-C stops it with CopyFail and a rollback.
#[pyfunction]
#[pyo3(signature = (conninfo, table, data, mode="append", key=None, create=false, batch_rows=None, storage_options=None, nanoseconds="error", create_nested="json"))]
#[allow(clippy::too_many_arguments)]
fn write(
    py: Python<'_>,
    conninfo: Option<&str>,
    table: &str,
    data: &Bound<'_, PyAny>,
    mode: &str,
    key: Option<Vec<String>>,
    create: bool,
    batch_rows: Option<usize>,
    storage_options: Option<HashMap<String, String>>,
    nanoseconds: &str,
    create_nested: &str,
) -> PyResult<String> {
    let mode = LoadMode::parse(mode, key).map_err(|e| py_err(py, &e))?;
    let nested = CreateNested::parse(create_nested).map_err(|e| py_err(py, &e))?;
    let mut policies = pgarrow::EncodePolicies::default();
    policies.nanoseconds = nanoseconds
        .parse()
        .map_err(|e: String| usage_error(py, format!("nanoseconds: {e}")))?;
    let options = LoadOptions::new(mode)
        .with_create(create)
        .with_create_nested(nested)
        .with_policies(policies);
    let config = config(conninfo, None)?;
    let table = TableName::parse(table).map_err(|e| py_err(py, &e.into()))?;
    if let Some(paths) = paths(data)? {
        let mut input_options = InputOptions::default();
        if let Some(rows) = batch_rows {
            input_options.batch_rows = rows.max(1);
        }
        let storage: StorageOptions = storage_options.unwrap_or_default().into_iter().collect();
        let inputs = paths
            .iter()
            .map(|p| parse_location(p, &storage))
            .collect::<pgarrow::Result<Vec<_>>>()
            .map_err(|e| py_err(py, &e))?;
        // Every file is opened, and its columns checked, before connecting; without the GIL,
        // since objects are asked for over the network.
        return detached(py, move |stop| {
            let input = Input::open(&inputs, &input_options)?;
            document(&blocking::load(config, table, input, &options, stop)?)
        });
    }
    if !data.hasattr("__arrow_c_stream__")? {
        return Err(PyTypeError::new_err(format!(
            "data must have __arrow_c_stream__ (a pyarrow Table or RecordBatchReader, a polars \
             DataFrame, a DuckDB result, ...) or be a path or a list of paths, not {}",
            data.get_type().name()?
        )));
    }
    let capsule = data
        .call_method0("__arrow_c_stream__")?
        .cast_into::<PyCapsule>()
        .map_err(|_| PyTypeError::new_err("__arrow_c_stream__() did not return a capsule"))?;
    let pointer = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
    // SAFETY: the capsule is named "arrow_array_stream", so by the Arrow PyCapsule interface
    // it holds a valid FFI_ArrowArrayStream that its consumer may move out; `from_raw` moves
    // it and leaves a released stream behind (release = NULL), which the capsule's destructor
    // then skips. Exercised by the pytest suite's write tests (pyarrow, polars, a generator).
    #[allow(unsafe_code)]
    let stream = unsafe { FFI_ArrowArrayStream::from_raw(pointer.as_ptr().cast()) };
    let input = RecordBatchStreamReader::try_new(stream)
        .map_err(|e| PyValueError::new_err(format!("data's Arrow stream: {e}")))?;
    detached(py, move |stop| {
        document(&blocking::load(config, table, input, &options, stop)?)
    })
}

/// `data` as paths, when it is a `str`, an `os.PathLike` or a list or tuple of them.
fn paths(data: &Bound<'_, PyAny>) -> PyResult<Option<Vec<PathBuf>>> {
    if let Ok(path) = data.extract::<PathBuf>() {
        return Ok(Some(vec![path]));
    }
    if data.is_instance_of::<PyList>() || data.is_instance_of::<PyTuple>() {
        let paths: Vec<PathBuf> = data.extract().map_err(|_| {
            PyTypeError::new_err(
                "a list given as data must hold paths (str or os.PathLike) of files to load; \
                 Arrow data is anything with __arrow_c_stream__ (a pyarrow Table, a polars \
                 DataFrame, ...)",
            )
        })?;
        return Ok(Some(paths));
    }
    Ok(None)
}

/// Exports every relation that the `table` and `schema` patterns match (as the CLI's
/// `--table` and `--schema` read them) into `output_dir`, one file per table, in one
/// snapshot, then `_manifest.json`; returns the statistics (the manifest's fields) as JSON.
#[pyfunction]
#[pyo3(signature = (conninfo, tables, schemas, output_dir, format=None, options=None, storage_options=None))]
#[allow(clippy::too_many_arguments)]
fn export_tables(
    py: Python<'_>,
    conninfo: Option<&str>,
    tables: Vec<String>,
    schemas: Vec<String>,
    output_dir: PathBuf,
    format: Option<&str>,
    options: Option<&Bound<'_, PyDict>>,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<String> {
    let output_dir = location(py, &output_dir, storage_options)?;
    let options = Options::parse(options, true)?;
    if options.partitions.is_some() {
        return Err(usage_error(
            py,
            "several tables are read one after another in one snapshot: the options of \
             partitioned reads apply to one table or query",
        ));
    }
    let mut config = config(conninfo, options.statement_timeout)?;
    config.read_only = true;
    let mut patterns = Vec::new();
    for t in &tables {
        patterns.push(TablePattern::parse(t).map_err(|e| py_err(py, &e))?);
    }
    for s in &schemas {
        patterns.push(TablePattern::schema(s).map_err(|e| py_err(py, &e))?);
    }
    if patterns.is_empty() {
        return Err(usage_error(py, "give table= or schema= patterns"));
    }
    let target = DirTarget {
        dir: output_dir,
        format: dir_format(py, format)?,
        options: options.sink,
    };
    let export = options.export;
    detached(py, move |stop| {
        let runtime = blocking::runtime()?;
        let hooks = Hooks::new().with_stop(stop.clone());
        let run = pgarrow::export_tables(config, &patterns, &export, target, hooks);
        document(&blocking::wait(&runtime, stop, run)?)
    })
}

/// Exports `source` into `output_dir`, one file per part (over `partitions` connections in
/// one snapshot), then `_manifest.json`; returns the statistics as JSON.
#[pyfunction]
#[pyo3(signature = (conninfo, source, output_dir, format=None, is_table=false, options=None, storage_options=None))]
#[allow(clippy::too_many_arguments)]
fn export_dir(
    py: Python<'_>,
    conninfo: Option<&str>,
    source: &str,
    output_dir: PathBuf,
    format: Option<&str>,
    is_table: bool,
    options: Option<&Bound<'_, PyDict>>,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<String> {
    let output_dir = location(py, &output_dir, storage_options)?;
    let options = Options::parse(options, true)?;
    let mut config = config(conninfo, options.statement_timeout)?;
    config.read_only = true;
    let source = self::source(source, is_table)?;
    let target = DirTarget {
        dir: output_dir,
        format: dir_format(py, format)?,
        options: options.sink,
    };
    let export = options.export;
    if let Some(slot) = options.slot {
        let target = RunTarget::Dir(target);
        let partitions = options.partitions;
        return detached(py, move |stop| {
            export_in_slot(config, slot, source, &export, partitions, &target, stop)
        });
    }
    let partitions = options
        .partitions
        .unwrap_or_else(|| partition::PartitionOptions::new(1));
    detached(py, move |stop| {
        let runtime = blocking::runtime()?;
        let hooks = Hooks::new().with_stop(stop.clone());
        let run = partition::export_to_dir(config, source, &export, &partitions, &target, hooks);
        document(&blocking::wait(&runtime, stop, run)?)
    })
}

/// `replication_slot=`: the slot created, the export read in its snapshot (over one
/// connection unless `partitions` says more); the statistics with the slot, as JSON.
fn export_in_slot(
    config: Config,
    (name, plugin): (String, String),
    source: Source,
    export: &pgarrow::ExportOptions,
    partitions: Option<PartitionOptions>,
    target: &RunTarget,
    stop: &Stop,
) -> pgarrow::Result<String> {
    #[derive(serde::Serialize)]
    struct Report<'a> {
        #[serde(flatten)]
        stats: &'a partition::PartitionedStats,
        replication_slot: &'a pgarrow_changes::slot::SlotInfo,
    }
    let runtime = blocking::runtime()?;
    let hooks = Hooks::new().with_stop(stop.clone());
    let partitions = partitions.unwrap_or_else(|| PartitionOptions::new(1));
    let run = pgarrow_changes::slot::export_in_new_slot(
        config,
        &name,
        &plugin,
        source,
        export,
        &partitions,
        target,
        hooks,
    );
    let (stats, info) = blocking::wait(&runtime, stop, run)?;
    document(&Report {
        stats: &stats,
        replication_slot: &info,
    })
}

/// What an incremental run returns: its statistics, its facts and the state it saved.
#[derive(serde::Serialize)]
struct IncrementalReport<'a> {
    #[serde(flatten)]
    stats: &'a pgarrow::ExportStats,
    run: u64,
    first: bool,
    late_scan: bool,
    state: &'a IncrementalState,
}

/// One incremental run of `table` by `column` (`pgarrow.export(..., incremental_by=)`): into
/// `path` named for the run (`orders.run-000003.parquet`) or `output_dir/run-000003`, then the
/// state at `state` replaced; returns the statistics and the run's facts as JSON.
#[pyfunction]
#[pyo3(signature = (conninfo, table, column, state, path=None, output_dir=None, format=None, since=None, restart=false, late_rows="auto", options=None, storage_options=None))]
#[allow(clippy::too_many_arguments)]
fn export_incremental(
    py: Python<'_>,
    conninfo: Option<&str>,
    table: &str,
    column: &str,
    state: PathBuf,
    path: Option<PathBuf>,
    output_dir: Option<PathBuf>,
    format: Option<&str>,
    since: Option<String>,
    restart: bool,
    late_rows: &str,
    options: Option<&Bound<'_, PyDict>>,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<String> {
    let options = Options::parse(options, true)?;
    let mut config = config(conninfo, options.statement_timeout)?;
    config.read_only = true;
    let table = TableName::parse(table).map_err(|e| py_err(py, &e.into()))?;
    let late_rows: LateRows = late_rows
        .parse()
        .map_err(|e: String| usage_error(py, format!("late_rows: {e}")))?;
    let state = location(py, &state, storage_options.clone())?;
    let previous = IncrementalState::load(&state).map_err(|e| py_err(py, &e))?;
    let run = next_run(previous.as_ref());
    let named = |p: &Path, dir: bool| PathBuf::from(run_name(&p.to_string_lossy(), run, dir));
    let mut partitions = options.partitions;
    let target = match (path, output_dir) {
        (Some(path), None) => {
            let path = named(&path, false);
            let format = match format {
                Some(f) => f
                    .parse::<Format>()
                    .map_err(|e| usage_error(py, format!("format: {e}")))?,
                None => Format::from_path(&path).ok_or_else(|| {
                    usage_error(
                        py,
                        format!(
                            "cannot tell the format from {}: use a .parquet, .arrow or .arrows \
                             extension, or format=",
                            path.display()
                        ),
                    )
                })?,
            };
            RunTarget::File(FileTarget {
                format,
                output: location(py, &path, storage_options)?.output(),
                options: options.sink,
            })
        }
        (None, Some(dir)) => {
            partitions.get_or_insert_with(|| PartitionOptions::new(1));
            RunTarget::Dir(DirTarget {
                dir: location(py, &named(&dir, true), storage_options)?,
                format: dir_format(py, format)?,
                options: options.sink,
            })
        }
        _ => return Err(usage_error(py, "give a path or output_dir= (one of them)")),
    };
    let mut incremental = IncrementalOptions::new(table, column)
        .late_rows(late_rows)
        .restart(restart);
    if let Some(since) = since {
        incremental = incremental.since(since);
    }
    let export = options.export;
    detached(py, move |stop| {
        let runtime = blocking::runtime()?;
        let hooks = Hooks::new().with_stop(stop.clone());
        let run = export_run(
            config,
            &incremental,
            previous.as_ref(),
            &export,
            partitions.as_ref(),
            &target,
            hooks,
        );
        let done = blocking::wait(&runtime, stop, run)?;
        done.state.save(&state)?;
        document(&IncrementalReport {
            stats: &done.stats,
            run: done.state.run,
            first: done.first,
            late_scan: done.late_scan,
            state: &done.state,
        })
    })
}

/// A path or URL, with the object stores' settings.
fn parse_location(path: &Path, storage: &StorageOptions) -> pgarrow::Result<Location> {
    match path.to_str() {
        Some(text) => Ok(Location::parse(text, storage)?),
        None => Ok(Location::Local(path.to_owned())),
    }
}

/// [`parse_location`] for Python: a bad URL or setting is a `UsageError`.
fn location(
    py: Python<'_>,
    path: &Path,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<Location> {
    let storage: StorageOptions = storage_options.unwrap_or_default().into_iter().collect();
    parse_location(path, &storage).map_err(|e| py_err(py, &e))
}

/// The format of the files in a directory: `format`, else Parquet.
fn dir_format(py: Python<'_>, format: Option<&str>) -> PyResult<Format> {
    match format {
        None => Ok(Format::Parquet),
        Some(f) => match f.parse::<Format>() {
            Ok(Format::Null) => Err(usage_error(
                py,
                "format: a directory holds files: parquet, arrow or arrow-stream",
            )),
            Ok(f) => Ok(f),
            Err(e) => Err(usage_error(py, format!("format: {e}"))),
        },
    }
}

/// Copies `source` (on `from_conninfo`) into `table` (on `to_conninfo`) in one transaction
/// of the target; returns the statistics as JSON.
#[pyfunction]
#[pyo3(signature = (from_conninfo, source, to_conninfo, table, is_table=false, mode="append", key=None, create=false, options=None, create_nested="json", domains="define"))]
#[allow(clippy::too_many_arguments)]
fn copy(
    py: Python<'_>,
    from_conninfo: Option<&str>,
    source: &str,
    to_conninfo: Option<&str>,
    table: &str,
    is_table: bool,
    mode: &str,
    key: Option<Vec<String>>,
    create: bool,
    options: Option<&Bound<'_, PyDict>>,
    create_nested: &str,
    domains: &str,
) -> PyResult<String> {
    let nested = CreateNested::parse(create_nested).map_err(|e| py_err(py, &e))?;
    let domains: blocking::Domains = domains.parse().map_err(|e| py_err(py, &e))?;
    let shape_given = match options {
        Some(d) => d.contains("array_shape")?,
        None => false,
    };
    let mut options = Options::parse(options, false)?;
    // Arrays as the server's text unless asked otherwise: bounds and depths arrive exactly.
    if !shape_given {
        options.export.policies.array_shape = pgarrow::policy::ArrayShape::Text;
    }
    let mode = LoadMode::parse(mode, key).map_err(|e| py_err(py, &e))?;
    let mut from = config(from_conninfo, options.statement_timeout)?;
    from.read_only = true;
    let to = match to_conninfo {
        Some(_) => config(to_conninfo, None)?,
        None => config(from_conninfo, None)?,
    };
    let source = self::source(source, is_table)?;
    let table = TableName::parse(table).map_err(|e| py_err(py, &e.into()))?;
    let copy = CopyOptions::new(
        LoadOptions::new(mode)
            .with_create(create)
            .with_create_nested(nested),
    )
    .with_export(options.export)
    .with_partitions(options.partitions)
    .with_domains(domains);
    detached(py, move |stop| {
        let hooks = LoadHooks::default().stop(stop);
        document(&blocking::copy(from, source, to, table, &copy, hooks)?)
    })
}

/// The settings, source and options of a plan, checked; the partition options default to
/// `parts` parts (the engines' tasks), one connection each.
fn plan_inputs(
    conninfo: Option<&str>,
    source: &str,
    is_table: bool,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Config, Source, pgarrow::ExportOptions, PartitionOptions)> {
    let options = Options::parse(options, false)?;
    let config = config(conninfo, options.statement_timeout)?;
    let source = self::source(source, is_table)?;
    let mut partitions = options
        .partitions
        .unwrap_or_else(|| PartitionOptions::new(1));
    if partitions.parts.is_none() {
        partitions.parts = Some(partitions.connections);
    }
    Ok((config, source, options.export, partitions))
}

/// A plan whose snapshot this process holds (`pgarrow.plan(...)`): its coordinating
/// transaction stays open until `close()`, or until the object is dropped.
#[pyclass(module = "pgarrow._pgarrow", name = "Plan")]
struct PyPlan {
    json: String,
    /// The coordinator, then the runtime its connection runs on (dropped in this order).
    held: Mutex<Option<(Coordinator, tokio::runtime::Runtime)>>,
}

#[pymethods]
impl PyPlan {
    /// Connects, opens the snapshot and plans the parts.
    #[new]
    #[pyo3(signature = (conninfo, source, is_table=false, options=None))]
    fn new(
        py: Python<'_>,
        conninfo: Option<&str>,
        source: &str,
        is_table: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let (config, source, export, partitions) =
            plan_inputs(conninfo, source, is_table, options)?;
        let (coordinator, runtime) = detached(py, move |stop| {
            let runtime = blocking::runtime()?;
            let begin = Coordinator::begin(config, source, &export, &partitions);
            let coordinator = blocking::block_on(&runtime, stop, begin)?;
            Ok((coordinator, runtime))
        })?;
        Ok(PyPlan {
            json: coordinator.plan().to_json(),
            held: Mutex::new(Some((coordinator, runtime))),
        })
    }

    /// The plan as JSON.
    fn plan_json(&self) -> String {
        self.json.clone()
    }

    /// Whether the snapshot is still held by this object (not closed).
    fn held(&self) -> bool {
        self.held.lock().expect("not poisoned").is_some()
    }

    /// Ends the coordinating transaction, releasing the snapshot. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let held = self.held.lock().expect("not poisoned").take();
        match held {
            Some((coordinator, runtime)) => py
                .detach(|| runtime.block_on(coordinator.close()))
                .map_err(|e| py_err(py, &e)),
            None => Ok(()),
        }
    }
}

/// A plan held until every part was read once (`python -m pgarrow._hold`, the detached
/// holder of lazy engines): see `pgarrow::partition::Holder`.
#[pyclass(module = "pgarrow._pgarrow", name = "Holder")]
struct PyHolder {
    json: String,
    held: Mutex<Option<(Holder, tokio::runtime::Runtime)>>,
}

#[pymethods]
impl PyHolder {
    /// Connects, opens the snapshot, plans the parts and listens for their ends.
    #[new]
    #[pyo3(signature = (conninfo, source, is_table=false, options=None))]
    fn new(
        py: Python<'_>,
        conninfo: Option<&str>,
        source: &str,
        is_table: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let (config, source, export, partitions) =
            plan_inputs(conninfo, source, is_table, options)?;
        let (holder, runtime) = detached(py, move |stop| {
            let runtime = blocking::runtime()?;
            let start = async {
                let coordinator =
                    Coordinator::begin(config.clone(), source, &export, &partitions).await?;
                Holder::start(coordinator, config).await
            };
            let holder = blocking::block_on(&runtime, stop, start)?;
            Ok((holder, runtime))
        })?;
        Ok(PyHolder {
            json: holder.plan().to_json(),
            held: Mutex::new(Some((holder, runtime))),
        })
    }

    /// The plan as JSON (with the channel its parts notify).
    fn plan_json(&self) -> String {
        self.json.clone()
    }

    /// Holds the snapshot while parts are read: until `idle` seconds pass without a part
    /// starting or finishing ("idle"), or `linger` seconds so once every part was read
    /// ("all_read"); then releases it.
    fn wait(&self, py: Python<'_>, idle: f64, linger: f64) -> PyResult<&'static str> {
        let seconds = |name: &str, s: f64| {
            Duration::try_from_secs_f64(s)
                .map_err(|_| PyValueError::new_err(format!("{name}: expected seconds, got {s}")))
        };
        let (idle, linger) = (seconds("hold_timeout", idle)?, seconds("linger", linger)?);
        let Some((holder, runtime)) = self.held.lock().expect("not poisoned").take() else {
            return Err(usage_error(py, "this holder already ended"));
        };
        let released = detached(py, move |stop| {
            blocking::block_on(&runtime, stop, holder.wait(idle, linger))
        })?;
        Ok(match released {
            partition::Released::AllRead => "all_read",
            _ => "idle",
        })
    }
}

/// The Arrow schema of a plan (its JSON form), as an `arrow_schema` PyCapsule.
#[pyfunction]
fn plan_schema<'py>(py: Python<'py>, plan_json: &str) -> PyResult<Bound<'py, PyCapsule>> {
    let plan = PartitionPlan::from_json(plan_json).map_err(|e| py_err(py, &e))?;
    schema_capsule(py, &Arc::new(plan.schema))
}

/// A statistics document (its serde form) as JSON text, for Python's `json.loads`.
fn document(stats: &impl serde::Serialize) -> pgarrow::Result<String> {
    serde_json::to_string(stats)
        .map_err(|e| pgarrow::ErrorKind::Internal(format!("statistics as JSON: {e}")).into())
}

/// The module.
#[pymodule]
fn _pgarrow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // A malformed file's reader panic is caught and raised as pgarrow.Error, without a panic
    // message on stderr first.
    pgarrow::io::quiet_caught_reader_panics();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // This module's file is also an ADBC driver (pgarrow.adbc), entered here.
    m.add("ADBC_ENTRYPOINT", pgarrow_adbc::ENTRYPOINT)?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("ConnectError", py.get_type::<ConnectError>())?;
    m.add("QueryError", py.get_type::<QueryError>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("OutputError", py.get_type::<OutputError>())?;
    m.add_class::<PyExport>()?;
    m.add_class::<PyBatch>()?;
    m.add_class::<PyPlan>()?;
    m.add_class::<PyHolder>()?;
    m.add_function(wrap_pyfunction!(plan_schema, m)?)?;
    m.add_function(wrap_pyfunction!(schema, m)?)?;
    m.add_class::<PyChanges>()?;
    m.add_function(wrap_pyfunction!(changes_to, m)?)?;
    m.add_function(wrap_pyfunction!(apply_changes, m)?)?;
    m.add_function(wrap_pyfunction!(export_file, m)?)?;
    m.add_function(wrap_pyfunction!(export_dir, m)?)?;
    m.add_function(wrap_pyfunction!(export_incremental, m)?)?;
    m.add_function(wrap_pyfunction!(export_tables, m)?)?;
    m.add_function(wrap_pyfunction!(write, m)?)?;
    m.add_function(wrap_pyfunction!(copy, m)?)?;
    Ok(())
}
