//! Loads: Arrow data or files into a table (`write`), and a table or query of one server into
//! a table of another (`copy`).

use std::collections::HashMap;
use std::path::PathBuf;

use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use pgarrow::blocking;
use pgarrow::io::{Input, InputOptions, StorageOptions};
use pgarrow::names::TableName;
use pgarrow::{CopyOptions, CreateNested, Domains, LoadMode, LoadOptions};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyList, PyTuple};

use crate::error::{py_err, usage_error};
use crate::runtime::{Prologue, config, document, hooks, kwargs, parse_location};

/// How rows go into the table: the keyword arguments `write` and `copy` share.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct LoadArgs {
    /// "append", "replace" or "upsert".
    mode: String,
    /// The upsert's key columns.
    key: Option<Vec<String>>,
    create: bool,
    /// "json" or "typed".
    create_nested: String,
}

impl LoadArgs {
    fn options(self, py: Python<'_>) -> PyResult<LoadOptions> {
        let mode = LoadMode::parse(&self.mode, self.key).map_err(|e| py_err(py, &e))?;
        let nested: CreateNested = self.create_nested.parse().map_err(|e| py_err(py, &e))?;
        Ok(LoadOptions::new(mode)
            .with_create(self.create)
            .with_create_nested(nested))
    }
}

/// The keyword arguments `write` adds.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct WriteArgs {
    /// The rows per batch read from files.
    batch_rows: Option<usize>,
    storage_options: Option<HashMap<String, String>>,
    /// "error" or "round".
    nanoseconds: String,
    /// A Delta table's location, read instead of `data`.
    delta: Option<String>,
    /// An Iceberg table's catalog (an SQL catalog's database, a REST catalog's address), read
    /// instead of `data` (with `lake_table`).
    iceberg: Option<String>,
    /// The REST catalog's properties (pyiceberg's), with `iceberg`.
    iceberg_properties: Option<HashMap<String, String>>,
    /// A DuckLake catalog database, read instead of `data` (with `lake_table`).
    ducklake: Option<String>,
    /// The Iceberg table, `namespace.name`, or the DuckLake table, `schema.name`.
    lake_table: Option<String>,
    /// The Iceberg catalog's name.
    catalog_name: Option<String>,
}

/// Loads `data` into `table` in one transaction; returns the statistics. `data` is anything
/// with `__arrow_c_stream__` (a pyarrow Table or RecordBatchReader, a polars DataFrame, a
/// DuckDB result, ...), or paths: files (Parquet, Arrow IPC file or stream, by extension) or
/// one directory written by an export (the files its manifest lists, each checked against
/// its row count). The GIL is released while it runs (a producer's stream takes it back when
/// it needs it); Ctrl-C stops it with CopyFail and a rollback.
#[pyfunction]
#[pyo3(signature = (conninfo, table, data, **args))]
pub(crate) fn write(
    py: Python<'_>,
    conninfo: Option<&str>,
    table: &str,
    data: &Bound<'_, PyAny>,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let load: LoadArgs = kwargs(py, args)?;
    let args: WriteArgs = kwargs(py, args)?;
    let options = load.options(py)?;
    let nanoseconds: pgarrow::Nanoseconds = args
        .nanoseconds
        .parse()
        .map_err(|e| usage_error(py, format!("nanoseconds: {e}")))?;
    let policies = pgarrow::EncodePolicies::default().with_nanoseconds(nanoseconds);
    let options = options.with_policies(policies);
    let config = config(conninfo, None)?;
    let table = TableName::parse(table).map_err(|e| py_err(py, &e.into()))?;
    let mut input_options = InputOptions::default();
    if let Some(rows) = args.batch_rows {
        input_options = input_options.with_batch_rows(rows.max(1));
    }
    let storage: StorageOptions = args
        .storage_options
        .unwrap_or_default()
        .into_iter()
        .collect();
    let properties = crate::lake::iceberg_properties_of(
        py,
        args.iceberg.as_ref(),
        args.iceberg_properties.as_ref(),
    )?;
    let mut lake = pgarrow_lake::LakeName::default();
    lake.ducklake = args.ducklake;
    lake.delta = args.delta;
    lake.iceberg = args.iceberg;
    if lake != pgarrow_lake::LakeName::default() {
        if !data.is_none() {
            return Err(usage_error(
                py,
                "data and delta=, iceberg= or ducklake= are two inputs: give one (data=None to \
                 read the lake table)",
            ));
        }
        lake.lake_table = args.lake_table;
        lake.catalog_name = args.catalog_name;
        lake.iceberg_properties = properties;
        // The names are checked, the catalog, the log or metadata read, and every file
        // opened before loading, without the GIL.
        lake.target(None).map_err(|e| py_err(py, &e))?;
        return crate::runtime::document_on_runtime(py, move |runtime, stop| {
            let open = pgarrow_lake::open_lake(&lake, &storage, &input_options);
            let input = blocking::wait(runtime, stop, open)?;
            blocking::load(config, table, input, &options, hooks(stop))
        });
    }
    if args.lake_table.is_some() || args.catalog_name.is_some() {
        return Err(usage_error(
            py,
            "lake_table is iceberg='s and ducklake='s, catalog_name iceberg='s",
        ));
    }
    if let Some(paths) = paths(data)? {
        let inputs = paths
            .iter()
            .map(|p| parse_location(p, &storage))
            .collect::<pgarrow::Result<Vec<_>>>()
            .map_err(|e| py_err(py, &e))?;
        // Every file is opened, and its columns checked, before connecting; without the GIL,
        // since objects are asked for over the network.
        return document(py, move |stop| {
            let input = Input::open(&inputs, &input_options)?;
            blocking::load(config, table, input, &options, hooks(stop))
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
    document(py, move |stop| {
        blocking::load(config, table, input, &options, hooks(stop))
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

/// The keyword arguments `copy` adds.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct CopyArgs<'py> {
    is_table: bool,
    /// "define" or "base".
    domains: String,
    /// The export's options (the source's reading).
    options: Option<Bound<'py, PyDict>>,
}

/// Copies `source` (on `from_conninfo`) into `table` (on `to_conninfo`) in one transaction
/// of the target; returns the statistics.
#[pyfunction]
#[pyo3(signature = (from_conninfo, source, to_conninfo, table, **args))]
pub(crate) fn copy(
    py: Python<'_>,
    from_conninfo: Option<&str>,
    source: &str,
    to_conninfo: Option<&str>,
    table: &str,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let load: LoadArgs = kwargs(py, args)?;
    let args: CopyArgs<'_> = kwargs(py, args)?;
    let load = load.options(py)?;
    let domains: Domains = args.domains.parse().map_err(|e| py_err(py, &e))?;
    let shape_given = match &args.options {
        Some(d) => d.contains("array_shape")?,
        None => false,
    };
    let Prologue {
        config: mut from,
        mut options,
    } = Prologue::new(from_conninfo, args.options.as_ref(), false)?;
    // Arrays as the server's text unless asked otherwise: bounds and depths arrive exactly.
    if !shape_given {
        options.export.policies.array_shape = pgarrow::policy::ArrayShape::Text;
    }
    from.read_only = true;
    let to = match to_conninfo {
        Some(_) => config(to_conninfo, None)?,
        None => config(from_conninfo, None)?,
    };
    let source = crate::runtime::source(source, args.is_table)?;
    let table = TableName::parse(table).map_err(|e| py_err(py, &e.into()))?;
    let copy = CopyOptions::new(load)
        .with_export(options.export)
        .with_partitions(options.partitions)
        .with_domains(domains);
    document(py, move |stop| {
        blocking::copy(from, source, to, table, &copy, hooks(stop))
    })
}
