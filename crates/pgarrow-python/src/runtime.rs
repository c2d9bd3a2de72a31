//! What every call shares: the prologue (connection settings and options parsed and checked
//! before anything connects), the run with the GIL released and Ctrl-C checked, the result
//! as Python objects, and the Arrow PyCapsules.

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_schema::SchemaRef;
use arrow_schema::ffi::FFI_ArrowSchema;
use pgarrow::blocking;
use pgarrow::io::Format;
use pgarrow::io::{Location, StorageOptions};
use pgarrow::protocol::Config;
use pgarrow::{Source, Stop};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};

use crate::error::{Error, py_err, usage_error};
use crate::options::Options;
use crate::stats;

/// A [`Stop`] that Python's signal handlers set: its check (run by the library's blocking
/// adapter on this thread, every `CHECK_EVERY` while it waits) takes the GIL back for a
/// moment to run them; the exception a handler raised (`KeyboardInterrupt`) is kept, and
/// wins over the cancellation it caused.
pub(crate) struct Interrupt {
    stop: Stop,
    raised: Arc<Mutex<Option<PyErr>>>,
}

impl Interrupt {
    pub(crate) fn new() -> Interrupt {
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
    pub(crate) fn run<T: Send>(
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
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce(&Stop) -> pgarrow::Result<T> + Send,
) -> PyResult<T> {
    Interrupt::new().run(py, f)
}

/// [`detached`], with a runtime for the engine's futures.
pub(crate) fn on_runtime<T: Send>(
    py: Python<'_>,
    f: impl FnOnce(&tokio::runtime::Runtime, &Stop) -> pgarrow::Result<T> + Send,
) -> PyResult<T> {
    detached(py, |stop| f(&blocking::runtime()?, stop))
}

/// [`detached`] for a call that returns a statistics document: the document as Python
/// objects (dicts, lists, numbers, strings; see [`stats`]).
pub(crate) fn document<T: serde::Serialize + Send>(
    py: Python<'_>,
    f: impl FnOnce(&Stop) -> pgarrow::Result<T> + Send,
) -> PyResult<Py<PyAny>> {
    let doc = detached(py, f)?;
    stats::to_python(py, &doc)
}

/// [`on_runtime`] for a call that returns a statistics document, as [`document`].
pub(crate) fn document_on_runtime<T: serde::Serialize + Send>(
    py: Python<'_>,
    f: impl FnOnce(&tokio::runtime::Runtime, &Stop) -> pgarrow::Result<T> + Send,
) -> PyResult<Py<PyAny>> {
    let doc = on_runtime(py, f)?;
    stats::to_python(py, &doc)
}

/// The prologue of every call that connects: the connection settings and the options, both
/// checked before anything connects (an unknown option or a bad value is a `ValueError`
/// naming it). `file` says whether the options of files are allowed.
pub(crate) struct Prologue {
    pub(crate) config: Config,
    pub(crate) options: Options,
}

impl Prologue {
    pub(crate) fn new(
        conninfo: Option<&str>,
        options: Option<&Bound<'_, PyDict>>,
        file: bool,
    ) -> PyResult<Prologue> {
        let options = Options::parse(options, file)?;
        let config = config(conninfo, options.statement_timeout)?;
        Ok(Prologue { config, options })
    }

    /// The same, for a call that only reads (exports into files).
    pub(crate) fn read_only(mut self) -> Prologue {
        self.config.read_only = true;
        self
    }
}

/// The connection settings: a URL or `key=value` string, else `DATABASE_URL`, else the `PG*`
/// environment (as the CLI).
pub(crate) fn config(conninfo: Option<&str>, timeout: Option<Duration>) -> PyResult<Config> {
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

/// What to read: a table by name, or a query.
pub(crate) fn source(text: &str, is_table: bool) -> PyResult<Source> {
    if is_table {
        Source::table(text).map_err(|e| PyValueError::new_err(e.to_string()))
    } else {
        Ok(Source::query(text))
    }
}

/// The keyword arguments of a native function, as its `#[derive(FromPyObject)]` struct
/// (`#[pyo3(from_item_all)]`). The Python wrappers pass every one by name: the defaults live
/// once, in the public signatures users read, and a missing one is a wrapper's bug (a
/// `TypeError` naming the field).
pub(crate) fn kwargs<'py, T: for<'a> FromPyObject<'a, 'py>>(
    py: Python<'py>,
    args: Option<&Bound<'py, PyDict>>,
) -> PyResult<T> {
    match args {
        Some(args) => args.extract().map_err(Into::into),
        None => PyDict::new(py).extract().map_err(Into::into),
    }
}

/// A PyCapsule holding `value` (boxed: the capsule's pointer is the value's address, as the
/// Arrow PyCapsule interface requires); a consumer moves the value out and leaves it released,
/// and dropping it then does nothing.
pub(crate) fn capsule<'py, T: Send + 'static>(
    py: Python<'py>,
    value: T,
    name: &'static CStr,
) -> PyResult<Bound<'py, PyCapsule>> {
    PyCapsule::new_with_value(py, value, name)
}

/// `schema` as an `arrow_schema` PyCapsule.
pub(crate) fn schema_capsule<'py>(
    py: Python<'py>,
    schema: &SchemaRef,
) -> PyResult<Bound<'py, PyCapsule>> {
    let ffi = FFI_ArrowSchema::try_from(schema.as_ref())
        .map_err(|e| Error::new_err(format!("exporting the schema: {e}")))?;
    capsule(py, ffi, c"arrow_schema")
}

/// A path or URL, with the object stores' settings.
pub(crate) fn parse_location(path: &Path, storage: &StorageOptions) -> pgarrow::Result<Location> {
    match path.to_str() {
        Some(text) => Ok(Location::parse(text, storage)?),
        None => Ok(Location::Local(path.to_owned())),
    }
}

/// [`parse_location`] for Python: a bad URL or setting is a `UsageError`.
pub(crate) fn location(
    py: Python<'_>,
    path: &Path,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<Location> {
    let storage: StorageOptions = storage_options.unwrap_or_default().into_iter().collect();
    parse_location(path, &storage).map_err(|e| py_err(py, &e))
}

/// The format of one file: `format`, else from the extension of `path`.
pub(crate) fn file_format(py: Python<'_>, format: Option<&str>, path: &Path) -> PyResult<Format> {
    match format {
        Some(f) => f
            .parse::<Format>()
            .map_err(|e| usage_error(py, format!("format: {e}"))),
        None => Format::from_path(path).ok_or_else(|| {
            usage_error(
                py,
                format!(
                    "cannot tell the format from {}: use a .parquet, .arrow or .arrows \
                     extension, or format=",
                    path.display()
                ),
            )
        }),
    }
}

/// The format of the files in a directory: `format`, else Parquet.
pub(crate) fn dir_format(py: Python<'_>, format: Option<&str>) -> PyResult<Format> {
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

/// `value` seconds, 0 or more.
pub(crate) fn seconds(py: Python<'_>, name: &str, value: f64) -> PyResult<Duration> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(usage_error(
            py,
            format!("{name} is a number of seconds, 0 or more"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

/// Hooks with the call's stop (Ctrl-C), and no progress.
pub(crate) fn hooks<P>(stop: &pgarrow::Stop) -> pgarrow::Hooks<'static, P> {
    pgarrow::Hooks::new().with_stop(stop.clone())
}
