//! The native half of the Python package: `pgarrow._pgarrow`, wrapped by
//! `python/pgarrow/__init__.py` (which users import).
//!
//! Data crosses through the Arrow C data and stream interfaces (PyCapsules named
//! `arrow_schema`, `arrow_array` and `arrow_array_stream`), so pyarrow, polars, DuckDB or any
//! other Arrow implementation takes the buffers without a copy. Every wait on the server runs
//! with the GIL released, checking for signals every 100 ms: Ctrl-C cancels the server query
//! and raises `KeyboardInterrupt`.

use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use arrow_array::ffi::to_ffi;
use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_schema::SchemaRef;
use arrow_schema::ffi::FFI_ArrowSchema;
use pgarrow::blocking::{self, CHECK_EVERY, Reader};
use pgarrow::partition::{self};
use pgarrow::protocol::{Config, ErrorKind as WireKind};
use pgarrow::sink::{Format, Output};
use pgarrow::{Client, ExportStats, FileTarget, Hooks, LoadMode, LoadOptions, Source};
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyTuple};

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
    "Connecting or authenticating failed, or the connection broke."
);
pyo3::create_exception!(
    _pgarrow,
    QueryError,
    Error,
    "The server refused or aborted the query (see `sqlstate`), or it cannot be exported."
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

/// The Python exception for a pgarrow error, with its attributes set.
fn py_err(py: Python<'_>, e: &pgarrow::Error) -> PyErr {
    use pgarrow::ErrorKind as K;
    let message = e.to_string();
    // The class comes from what failed, under any context the message adds.
    let mut inner = e;
    while let K::Context { source, .. } = inner.kind() {
        inner = source;
    }
    let err = match inner.kind() {
        K::Protocol(p) if p.as_db_error().is_some() => {
            let code = e.code().unwrap_or_default();
            // Class 08 (connection), 28 (authorization) and 3D (no such database) are about
            // getting a connection, not about the query.
            if ["08", "28", "3D"].iter().any(|c| code.starts_with(c)) {
                ConnectError::new_err(message)
            } else {
                QueryError::new_err(message)
            }
        }
        K::Protocol(p) => match p.kind() {
            WireKind::Config(_) => PyValueError::new_err(message),
            _ => ConnectError::new_err(message),
        },
        K::Decode(_) => DecodeError::new_err(message),
        K::Query(_) | K::RowCount { .. } => QueryError::new_err(message),
        K::Sink(_) | K::Write(_) => OutputError::new_err(message),
        // Ctrl-C while a Python producer of `write`'s input ran: the handler raised inside it,
        // and its C stream can pass on only the text.
        K::Input(_) if message.contains("\nKeyboardInterrupt") => {
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

/// Runs `f` with the GIL released, giving it a check that takes the GIL back for a moment to
/// run Python's signal handlers (every [`CHECK_EVERY`] while it waits). A handler's exception
/// (`KeyboardInterrupt`) wins over the cancellation it caused.
fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce(&mut (dyn FnMut() -> bool + Send)) -> pgarrow::Result<T> + Send,
) -> PyResult<T> {
    let mut raised: Option<PyErr> = None;
    let result = py.detach(|| {
        let mut check = || match Python::attach(|py| py.check_signals()) {
            Ok(()) => true,
            Err(e) => {
                raised = Some(e);
                false
            }
        };
        f(&mut check)
    });
    match (result, raised) {
        (_, Some(e)) => Err(e),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(py_err(py, &e)),
    }
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
        let reader = detached(py, move |check| match partitions {
            Some(p) => blocking::export_partitioned_checked(config, source, &export, &p, check),
            None => blocking::export_checked(config, source, &export, check),
        })?;
        Ok(PyExport {
            schema: arrow_array::RecordBatchReader::schema(&reader),
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
        let next = detached(py, |check| reader.next_batch_checked(check));
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
        let data = StructArray::from(batch).into_data();
        let (array, schema) =
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
    let schema = detached(py, move |check| {
        runtime()?.block_on(async move {
            interruptible(check, async move {
                let mut client = Client::connect(config).await?;
                let plan = client.plan_with(&source, &policies).await?;
                client.close().await?;
                Ok(plan.schema)
            })
            .await
        })
    })?;
    schema_capsule(py, &schema)
}

/// Exports `source` to a Parquet or Arrow IPC file at `path` (written atomically); returns
/// the statistics as JSON text.
#[pyfunction]
#[pyo3(signature = (conninfo, source, path, format=None, is_table=false, options=None))]
fn export_file(
    py: Python<'_>,
    conninfo: Option<&str>,
    source: &str,
    path: PathBuf,
    format: Option<&str>,
    is_table: bool,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<String> {
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
    if path.is_dir() {
        return Err(PyValueError::new_err(format!(
            "{} is a directory: give a file name",
            path.display()
        )));
    }
    let target = FileTarget {
        format,
        output: Output::File(path),
        options: options.sink,
    };
    target
        .options
        .validate()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let export = options.export;
    let partitions = options.partitions;
    let stats = detached(py, move |check| {
        runtime()?.block_on(async move {
            if let Some(p) = partitions {
                let hooks = checked_hooks(check);
                let stats =
                    partition::export_to_file(config, source, &export, &p, &target, hooks).await?;
                return Ok(stats.export);
            }
            let mut client = interruptible(check, Client::connect(config)).await?;
            let hooks = checked_hooks(check);
            client.export_to_file(source, &export, &target, hooks).await
        })
    })?;
    Ok(stats.to_json())
}

/// Loads `data` (anything with `__arrow_c_stream__`: a pyarrow Table or RecordBatchReader, a
/// polars DataFrame, a DuckDB result, ...) into `table` in one transaction; returns the
/// statistics as JSON text. The GIL is released while it runs (the producer's stream takes it
/// back when it needs it); Ctrl-C stops it with CopyFail and a rollback.
#[pyfunction]
#[pyo3(signature = (conninfo, table, data, mode="append", key=None, create=false))]
fn write(
    py: Python<'_>,
    conninfo: Option<&str>,
    table: &str,
    data: &Bound<'_, PyAny>,
    mode: &str,
    key: Option<Vec<String>>,
    create: bool,
) -> PyResult<String> {
    let mode = match (mode, key) {
        ("append", None) => LoadMode::Append,
        ("replace", None) => LoadMode::Replace,
        ("upsert", Some(key)) if !key.is_empty() => LoadMode::Upsert { key },
        ("upsert", _) => {
            return Err(PyValueError::new_err(
                "mode='upsert' needs key=[...]: the columns of a unique index",
            ));
        }
        ("append" | "replace", Some(_)) => {
            return Err(PyValueError::new_err("key= applies to mode='upsert' only"));
        }
        (other, _) => {
            return Err(PyValueError::new_err(format!(
                "mode: expected 'append', 'replace' or 'upsert', not {other:?}"
            )));
        }
    };
    let options = LoadOptions::new(mode).with_create(create);
    let config = config(conninfo, None)?;
    if !data.hasattr("__arrow_c_stream__")? {
        return Err(PyTypeError::new_err(format!(
            "data must have __arrow_c_stream__ (a pyarrow Table or RecordBatchReader, a polars \
             DataFrame, a DuckDB result, ...), not {}",
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
    let table = table.to_owned();
    let stats = detached(py, move |check| {
        blocking::load_checked(config, &table, input, &options, check)
    })?;
    Ok(format!(
        "{{\"rows\": {}, \"bytes\": {}, \"total_s\": {:.6}, \"connect_s\": {:.6}, \
         \"describe_s\": {:.6}, \"read_s\": {:.6}, \"encode_s\": {:.6}, \"send_s\": {:.6}, \
         \"commit_s\": {:.6}}}",
        stats.rows,
        stats.bytes,
        stats.total.as_secs_f64(),
        stats.connect.as_secs_f64(),
        stats.describe.as_secs_f64(),
        stats.read.as_secs_f64(),
        stats.encode.as_secs_f64(),
        stats.send.as_secs_f64(),
        stats.commit.as_secs_f64()
    ))
}

/// Hooks that run `check` every [`CHECK_EVERY`] while an export runs, and cancel it when
/// `check` says stop (a signal handler raised): the server query is cancelled and the
/// temporary file removed.
fn checked_hooks<'a>(check: &'a mut (dyn FnMut() -> bool + Send)) -> Hooks<'a> {
    Hooks::new().cancel_on(async move {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if !check() {
                return;
            }
        }
    })
}

fn runtime() -> pgarrow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            pgarrow::ErrorKind::Internal(format!("cannot start a tokio runtime: {e}")).into()
        })
}

/// Runs `fut`, calling `check` every [`CHECK_EVERY`]; fails with `Cancelled` (dropping `fut`)
/// when it returns false.
async fn interruptible<T>(
    check: &mut dyn FnMut() -> bool,
    fut: impl std::future::Future<Output = pgarrow::Result<T>>,
) -> pgarrow::Result<T> {
    let mut fut = std::pin::pin!(fut);
    loop {
        match tokio::time::timeout(CHECK_EVERY, fut.as_mut()).await {
            Ok(out) => return out,
            Err(_) if check() => {}
            Err(_) => return Err(pgarrow::ErrorKind::Cancelled.into()),
        }
    }
}

/// The module.
#[pymodule]
fn _pgarrow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("ConnectError", py.get_type::<ConnectError>())?;
    m.add("QueryError", py.get_type::<QueryError>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("OutputError", py.get_type::<OutputError>())?;
    m.add_class::<PyExport>()?;
    m.add_class::<PyBatch>()?;
    m.add_function(wrap_pyfunction!(schema, m)?)?;
    m.add_function(wrap_pyfunction!(export_file, m)?)?;
    m.add_function(wrap_pyfunction!(write, m)?)?;
    Ok(())
}
