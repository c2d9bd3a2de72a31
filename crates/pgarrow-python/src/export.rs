//! Exports: a running export read batch by batch or as a stream (`Export`, `Batch`), the
//! schema an export would have, and exports into files: one file, a directory of parts,
//! several tables, an incremental run, and an export handed off to a new replication slot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arrow_array::ffi::to_ffi;
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_schema::SchemaRef;
use arrow_schema::ffi::FFI_ArrowSchema;
use pgarrow::blocking::{self, Reader};
use pgarrow::incremental::{
    IncrementalOptions, IncrementalState, LateRows, RunTarget, export_run, next_run, run_name,
};
use pgarrow::io::DirTarget;
use pgarrow::io::Format;
use pgarrow::names::{TableName, TablePattern};
use pgarrow::partition::{self, PartRead, PartitionOptions, PartitionPlan};
use pgarrow::protocol::Config;
use pgarrow::{Client, ExportOptions, ExportStats, FileTarget, Source, Stop};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyTuple};

use crate::error::{Error, py_err, usage_error};
use crate::runtime::{
    Interrupt, Prologue, capsule, dir_format, document_on_runtime, file_format, hooks, kwargs,
    location, on_runtime, schema_capsule, source,
};
use crate::stats;

/// A running export (made by `pgarrow._pgarrow.Export(...)`): its schema, its batches one at
/// a time (`next_batch`, interruptible), or the whole stream (`__arrow_c_stream__`).
#[pyclass(module = "pgarrow._pgarrow", name = "Export")]
pub(crate) struct PyExport {
    schema: SchemaRef,
    /// Stops the reader while it waits (Ctrl-C).
    interrupt: Interrupt,
    /// `None` once handed out as a stream or closed.
    reader: Mutex<Option<Reader>>,
    /// The statistics when the reader was handed out or closed.
    last: Mutex<Option<ExportStats>>,
}

/// The keyword arguments of `Export.part`: what of the part to read.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct PartArgs<'py> {
    options: Option<Bound<'py, PyDict>>,
    columns: Option<Vec<String>>,
    filter: Option<String>,
    limit: Option<u64>,
}

impl PyExport {
    fn start(
        py: Python<'_>,
        f: impl FnOnce(&Stop) -> pgarrow::Result<Reader> + Send,
    ) -> PyResult<Self> {
        let interrupt = Interrupt::new();
        let reader = interrupt.run(py, f)?;
        Ok(PyExport {
            schema: arrow_array::RecordBatchReader::schema(&reader),
            interrupt,
            reader: Mutex::new(Some(reader)),
            last: Mutex::new(None),
        })
    }

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
        let Prologue { config, options } = Prologue::new(conninfo, options, false)?;
        let source = self::source(source, is_table)?;
        let export = options.export;
        let partitions = options.partitions;
        PyExport::start(py, move |stop| match partitions {
            Some(p) => blocking::export_partitioned(config, source, &export, &p, hooks(stop)),
            None => blocking::export_with(config, source, &export, hooks(stop)),
        })
    }

    /// Connects and starts reading part `index` of a plan (its JSON form) in the plan's
    /// snapshot: some `columns`, the rows where `filter` holds, at most `limit` rows.
    #[staticmethod]
    #[pyo3(signature = (conninfo, plan_json, index, **args))]
    fn part(
        py: Python<'_>,
        conninfo: Option<&str>,
        plan_json: &str,
        index: usize,
        args: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let args: PartArgs<'_> = kwargs(py, args)?;
        let Prologue { config, options } = Prologue::new(conninfo, args.options.as_ref(), false)?;
        if options.partitions.is_some() {
            return Err(usage_error(
                py,
                "a part is read over one connection: partition options belong to the plan",
            ));
        }
        let plan = PartitionPlan::from_json(plan_json).map_err(|e| py_err(py, &e))?;
        let mut read = PartRead::new();
        if let Some(columns) = args.columns {
            read = read.with_columns(columns);
        }
        if let Some(filter) = args.filter {
            read = read.with_filter(filter);
        }
        if let Some(limit) = args.limit {
            read = read.with_limit(limit);
        }
        let export = options.export;
        PyExport::start(py, move |stop| {
            blocking::export_part(config, &plan, index, &export, &read, hooks(stop))
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
        Ok(next?.map(PyBatch::new))
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

    /// What the export did so far (or in all, once it ended), as a dict; once handed out as
    /// a stream, what it did until then.
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let stats = match self.reader.lock().expect("not poisoned").as_ref() {
            Some(r) => r.stats(),
            None => self
                .last
                .lock()
                .expect("not poisoned")
                .clone()
                .unwrap_or_default(),
        };
        stats::to_python(py, &stats)
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
pub(crate) struct PyBatch {
    batch: Mutex<Option<RecordBatch>>,
}

impl PyBatch {
    pub(crate) fn new(batch: RecordBatch) -> PyBatch {
        PyBatch {
            batch: Mutex::new(Some(batch)),
        }
    }
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
pub(crate) fn schema<'py>(
    py: Python<'py>,
    conninfo: Option<&str>,
    source: &str,
    is_table: bool,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyCapsule>> {
    let Prologue { config, options } = Prologue::new(conninfo, options, false)?;
    let source = self::source(source, is_table)?;
    let policies = options.export.policies;
    let schema = on_runtime(py, move |runtime, stop| {
        blocking::block_on(runtime, stop, async move {
            let mut client = Client::connect(config).await?;
            let plan = client.describe_with(&source, &policies).await?;
            client.close().await?;
            Ok(plan.schema)
        })
    })?;
    schema_capsule(py, &schema)
}

/// The keyword arguments every export into files takes.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct OutputArgs<'py> {
    /// "parquet", "arrow" or "arrow-stream"; by default from the file's extension (Parquet
    /// for a directory).
    format: Option<String>,
    /// The export's options (`options.rs`), files' included.
    options: Option<Bound<'py, PyDict>>,
    /// The object stores' settings.
    storage_options: Option<HashMap<String, String>>,
}

/// What an export into one file did: over one connection, or several.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum FileStats {
    One(ExportStats),
    Parts(partition::PartitionedStats),
}

/// Exports `source` to a Parquet or Arrow IPC file at `path` (written atomically); returns
/// the statistics. With `replication_slot` among the options, the export is read in the
/// snapshot of a slot it creates.
#[pyfunction]
#[pyo3(signature = (conninfo, source, is_table, path, **args))]
pub(crate) fn export_file(
    py: Python<'_>,
    conninfo: Option<&str>,
    source: &str,
    is_table: bool,
    path: PathBuf,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let args: OutputArgs<'_> = kwargs(py, args)?;
    let location = location(py, &path, args.storage_options)?;
    let Prologue { config, options } = Prologue::new(conninfo, args.options.as_ref(), true)?;
    let source = self::source(source, is_table)?;
    let format = file_format(py, args.format.as_deref(), &path)?;
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
    if !options.layout.is_plain() {
        return Err(usage_error(
            py,
            "files_by, max_file_rows and max_file_size write several files: export into a \
             directory (pgarrow.export_dataset)",
        ));
    }
    let target = FileTarget::new(format, location.output()).with_options(options.sink);
    target
        .options
        .validate()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let export = options.export;
    let partitions = options.partitions;
    if let Some(slot) = options.slot {
        let target = RunTarget::File(target);
        return in_slot(py, config, slot, source, export, partitions, target);
    }
    document_on_runtime(py, move |runtime, stop| {
        let hooks = hooks(stop);
        // The export watches the stop itself: stopped, it cancels the query and removes its
        // temporary file before it returns.
        Ok(match partitions {
            Some(p) => {
                let run = partition::export_to_file(config, source, &export, &p, &target, hooks);
                FileStats::Parts(blocking::wait(runtime, stop, run)?)
            }
            None => {
                let mut client = blocking::block_on(runtime, stop, Client::connect(config))?;
                let run = client.export_to_file(source, &export, &target, hooks);
                FileStats::One(blocking::wait(runtime, stop, run)?)
            }
        })
    })
}

/// Exports `source` into `output_dir`, one file per part (over `partitions` connections in
/// one snapshot), then `_manifest.json`; returns the statistics. With `replication_slot`
/// among the options, the export is read in the snapshot of a slot it creates.
#[pyfunction]
#[pyo3(signature = (conninfo, source, is_table, output_dir, **args))]
pub(crate) fn export_dir(
    py: Python<'_>,
    conninfo: Option<&str>,
    source: &str,
    is_table: bool,
    output_dir: PathBuf,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let args: OutputArgs<'_> = kwargs(py, args)?;
    let output_dir = location(py, &output_dir, args.storage_options)?;
    let Prologue { config, options } =
        Prologue::new(conninfo, args.options.as_ref(), true)?.read_only();
    let source = self::source(source, is_table)?;
    let target = DirTarget::new(output_dir, dir_format(py, args.format.as_deref())?)
        .with_options(options.sink)
        .with_layout(options.layout);
    let export = options.export;
    if let Some(slot) = options.slot {
        let target = RunTarget::Dir(target);
        return in_slot(py, config, slot, source, export, options.partitions, target);
    }
    let partitions = options
        .partitions
        .unwrap_or_else(|| PartitionOptions::new(1));
    document_on_runtime(py, move |runtime, stop| {
        let hooks = hooks(stop);
        let run = partition::export_to_dir(config, source, &export, &partitions, &target, hooks);
        blocking::wait(runtime, stop, run)
    })
}

/// What an export handed off to a new slot returns: its statistics and the slot.
#[derive(serde::Serialize)]
struct SlotReport {
    #[serde(flatten)]
    stats: partition::PartitionedStats,
    replication_slot: pgarrow_changes::slot::SlotInfo,
}

/// `replication_slot=`: the slot created, the export read in its snapshot (over one
/// connection unless `partitions` says more); the statistics with the slot.
fn in_slot(
    py: Python<'_>,
    config: Config,
    (name, plugin): (String, String),
    source: Source,
    export: ExportOptions,
    partitions: Option<PartitionOptions>,
    target: RunTarget,
) -> PyResult<Py<PyAny>> {
    let partitions = partitions.unwrap_or_else(|| PartitionOptions::new(1));
    document_on_runtime(py, move |runtime, stop| {
        let hooks = hooks(stop);
        let run = pgarrow_changes::slot::export_in_new_slot(
            config,
            &name,
            &plugin,
            source,
            &export,
            &partitions,
            &target,
            hooks,
        );
        let (stats, replication_slot) = blocking::wait(runtime, stop, run)?;
        Ok(SlotReport {
            stats,
            replication_slot,
        })
    })
}

/// Exports every relation that the `tables` and `schemas` patterns match (as the CLI's
/// `--table` and `--schema` read them) into `output_dir`, one file per table, in one
/// snapshot, then `_manifest.json`; returns the statistics (the manifest's fields).
#[pyfunction]
#[pyo3(signature = (conninfo, tables, schemas, output_dir, **args))]
pub(crate) fn export_tables(
    py: Python<'_>,
    conninfo: Option<&str>,
    tables: Vec<String>,
    schemas: Vec<String>,
    output_dir: PathBuf,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let args: OutputArgs<'_> = kwargs(py, args)?;
    let output_dir = location(py, &output_dir, args.storage_options)?;
    let Prologue { config, options } =
        Prologue::new(conninfo, args.options.as_ref(), true)?.read_only();
    let mut export = options.export;
    if let Some(p) = &options.partitions {
        // memory_limit alone bounds each table's export; the others split one source.
        let limit = p.memory_limit;
        if p.clone()
            .with_memory_limit(PartitionOptions::new(1).memory_limit)
            != PartitionOptions::new(1)
        {
            return Err(usage_error(
                py,
                "several tables are read one after another in one snapshot: the options of \
                 partitioned reads apply to one table or query",
            ));
        }
        export.memory_limit = Some(limit);
    }
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
    let target = DirTarget::new(output_dir, dir_format(py, args.format.as_deref())?)
        .with_options(options.sink)
        .with_layout(options.layout);
    document_on_runtime(py, move |runtime, stop| {
        let hooks = hooks(stop);
        let run = pgarrow::export_tables(config, &patterns, &export, target, hooks);
        blocking::wait(runtime, stop, run)
    })
}

/// The keyword arguments of an incremental run.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct IncrementalArgs<'py> {
    /// The run's file (named for the run), or
    path: Option<PathBuf>,
    /// its directory (named for the run).
    output_dir: Option<PathBuf>,
    since: Option<String>,
    restart: bool,
    late_rows: String,
    format: Option<String>,
    options: Option<Bound<'py, PyDict>>,
    storage_options: Option<HashMap<String, String>>,
}

/// What an incremental run returns: its statistics, its facts and the state it saved.
#[derive(serde::Serialize)]
struct IncrementalReport {
    #[serde(flatten)]
    stats: ExportStats,
    run: u64,
    first: bool,
    late_scan: bool,
    state: IncrementalState,
}

/// One incremental run of `table` by `column`: into `path` named for the run
/// (`orders.run-000003.parquet`) or `output_dir/run-000003`, then the state at `state`
/// replaced; returns the statistics and the run's facts.
#[pyfunction]
#[pyo3(signature = (conninfo, table, column, state, **args))]
pub(crate) fn export_incremental(
    py: Python<'_>,
    conninfo: Option<&str>,
    table: &str,
    column: &str,
    state: PathBuf,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let args: IncrementalArgs<'_> = kwargs(py, args)?;
    let Prologue { config, options } =
        Prologue::new(conninfo, args.options.as_ref(), true)?.read_only();
    let table = TableName::parse(table).map_err(|e| py_err(py, &e.into()))?;
    let late_rows: LateRows = args
        .late_rows
        .parse()
        .map_err(|e: pgarrow::Error| usage_error(py, format!("late_rows: {e}")))?;
    let storage_options = args.storage_options;
    let state = location(py, &state, storage_options.clone())?;
    let previous = IncrementalState::load(&state).map_err(|e| py_err(py, &e))?;
    let run = next_run(previous.as_ref());
    let named = |p: &Path, dir: bool| PathBuf::from(run_name(&p.to_string_lossy(), run, dir));
    let mut partitions = options.partitions;
    let target = match (args.path, args.output_dir) {
        (Some(_), None) if !options.layout.is_plain() => {
            return Err(usage_error(
                py,
                "files_by, max_file_rows and max_file_size write several files: give \
                 output_dir= instead of a path",
            ));
        }
        (Some(path), None) => {
            let path = named(&path, false);
            RunTarget::File(
                FileTarget::new(
                    file_format(py, args.format.as_deref(), &path)?,
                    location(py, &path, storage_options)?.output(),
                )
                .with_options(options.sink),
            )
        }
        (None, Some(dir)) => {
            partitions.get_or_insert_with(|| PartitionOptions::new(1));
            RunTarget::Dir(
                DirTarget::new(
                    location(py, &named(&dir, true), storage_options)?,
                    dir_format(py, args.format.as_deref())?,
                )
                .with_options(options.sink)
                .with_layout(options.layout),
            )
        }
        _ => return Err(usage_error(py, "give a path or output_dir= (one of them)")),
    };
    let mut incremental = IncrementalOptions::new(table, column)
        .with_late_rows(late_rows)
        .with_restart(args.restart);
    if let Some(since) = args.since {
        incremental = incremental.with_since(since);
    }
    let export = options.export;
    document_on_runtime(py, move |runtime, stop| {
        let hooks = hooks(stop);
        let run = export_run(
            config,
            &incremental,
            previous.as_ref(),
            &export,
            partitions.as_ref(),
            &target,
            hooks,
        );
        let done = blocking::wait(runtime, stop, run)?;
        done.state.save(&state)?;
        Ok(IncrementalReport {
            stats: done.stats,
            run: done.state.run,
            first: done.first,
            late_scan: done.late_scan,
            state: done.state,
        })
    })
}
