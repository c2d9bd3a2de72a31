//! Lake tables from Python: `pgarrow.export_ducklake`, `pgarrow.export_delta` and
//! `pgarrow.export_iceberg`.

use std::collections::HashMap;

use pgarrow::blocking;
use pgarrow::io::StorageOptions;
use pgarrow::partition::{self, PartitionOptions};
use pgarrow::protocol::Config;
use pgarrow_lake::{
    DeltaTarget, DuckLakeTarget, IcebergTarget, IfExists, export_to_delta, export_to_ducklake,
    export_to_iceberg,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::{py_err, usage_error};
use crate::runtime::{Prologue, document_on_runtime, hooks, kwargs, source};

/// What both lake exports take from their arguments: the connection, the export's options,
/// the source, when the table exists, the object store settings.
struct Common {
    config: Config,
    options: crate::options::Options,
    source: pgarrow::Source,
    if_exists: IfExists,
    storage: StorageOptions,
}

impl Common {
    fn new(
        py: Python<'_>,
        conninfo: Option<&str>,
        (source, is_table): (&str, bool),
        options: Option<&Bound<'_, PyDict>>,
        if_exists: &str,
        storage: Option<HashMap<String, String>>,
    ) -> PyResult<Common> {
        let Prologue { config, options } = Prologue::new(conninfo, options, true)?.read_only();
        if options.slot.is_some() {
            return Err(usage_error(
                py,
                "replication_slot: an export into a lake table is not handed off to a slot yet",
            ));
        }
        let if_exists: IfExists = if_exists
            .parse()
            .map_err(|e: pgarrow::Error| usage_error(py, e.to_string()))?;
        Ok(Common {
            config,
            options,
            source: self::source(source, is_table)?,
            if_exists,
            storage: storage.unwrap_or_default().into_iter().collect(),
        })
    }
}

/// `lake_table` (`[schema.]name`), or the exported table's name, in `default_schema`.
fn lake_name(
    py: Python<'_>,
    lake_table: Option<&str>,
    source: &pgarrow::Source,
    default_schema: &str,
) -> PyResult<(String, String)> {
    match (lake_table, source.as_table()) {
        (Some(name), _) => {
            let name = pgarrow::names::TableName::parse(name)
                .map_err(|e| usage_error(py, format!("lake_table: {e}")))?;
            Ok((
                name.schema.unwrap_or_else(|| default_schema.to_owned()),
                name.name,
            ))
        }
        (None, Some(t)) => Ok((default_schema.to_owned(), t.name.clone())),
        (None, None) => Err(usage_error(
            py,
            "a query has no table name: give lake_table=\"[schema.]name\"",
        )),
    }
}

/// An incremental run's keyword arguments, which every lake export takes.
struct RunArgs {
    incremental_by: Option<String>,
    since: Option<String>,
    late_rows: String,
    restart: bool,
}

/// An incremental run into a lake table (its state the table's), from its arguments.
fn run_options(
    py: Python<'_>,
    source: &pgarrow::Source,
    args: RunArgs,
) -> PyResult<Option<pgarrow::incremental::IncrementalOptions>> {
    let Some(column) = args.incremental_by else {
        if args.since.is_some() || args.restart {
            return Err(usage_error(py, "since and restart are incremental_by's"));
        }
        return Ok(None);
    };
    let Some(t) = source.as_table() else {
        return Err(usage_error(
            py,
            "incremental_by reads one table (table=...), not a query",
        ));
    };
    let late_rows: pgarrow::incremental::LateRows = args
        .late_rows
        .parse()
        .map_err(|e: pgarrow::Error| usage_error(py, format!("late_rows: {e}")))?;
    let mut run = pgarrow::incremental::IncrementalOptions::new(t.clone(), column)
        .with_late_rows(late_rows)
        .with_restart(args.restart);
    if let Some(since) = args.since {
        run = run.with_since(since);
    }
    Ok(Some(run))
}

/// The keyword arguments of `export_ducklake` (the wrapper passes each by name).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct LakeArgs<'py> {
    catalog: String,
    lake_table: Option<String>,
    data_path: Option<String>,
    if_exists: String,
    incremental_by: Option<String>,
    since: Option<String>,
    late_rows: String,
    restart: bool,
    options: Option<Bound<'py, PyDict>>,
    storage_options: Option<HashMap<String, String>>,
}

/// What `export_ducklake` returns: the export's statistics and the commit's.
#[derive(serde::Serialize)]
struct LakeReport {
    #[serde(flatten)]
    stats: partition::PartitionedStats,
    format: &'static str,
    table: String,
    snapshot: i64,
    table_id: i64,
    created: bool,
    files: usize,
    retried: usize,
    /// An incremental run's state, as the commit carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    incremental: Option<pgarrow::incremental::IncrementalState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    late_scan: Option<bool>,
}

/// Exports `source` into a DuckLake table and commits it in one catalog transaction.
#[pyfunction]
#[pyo3(signature = (conninfo, source, is_table, **args))]
pub(crate) fn export_ducklake(
    py: Python<'_>,
    conninfo: Option<&str>,
    source: &str,
    is_table: bool,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let args: LakeArgs<'_> = kwargs(py, args)?;
    let Common {
        config,
        options,
        source,
        if_exists,
        storage,
    } = Common::new(
        py,
        conninfo,
        (source, is_table),
        args.options.as_ref(),
        &args.if_exists,
        args.storage_options,
    )?;
    let (schema, table) = lake_name(py, args.lake_table.as_deref(), &source, "main")?;
    let catalog = Config::parse(&args.catalog).map_err(|e| py_err(py, &e.into()))?;
    let mut target = DuckLakeTarget::new(catalog, schema.clone(), table.clone())
        .with_if_exists(if_exists)
        .with_storage(storage)
        .with_options(options.sink)
        .with_layout(options.layout);
    if let Some(path) = args.data_path {
        target = target.with_data_path(path);
    }
    let run = RunArgs {
        incremental_by: args.incremental_by,
        since: args.since,
        late_rows: args.late_rows,
        restart: args.restart,
    };
    if let Some(run) = run_options(py, &source, run)? {
        target = target.with_incremental(run);
    }
    let export = options.export;
    let partitions = options
        .partitions
        .unwrap_or_else(|| PartitionOptions::new(1));
    let name = format!("{schema}.{table}");
    document_on_runtime(py, move |runtime, stop| {
        let run = export_to_ducklake(config, source, &export, &partitions, &target, hooks(stop));
        let stats = blocking::wait(runtime, stop, run)?;
        Ok(LakeReport {
            stats: stats.export,
            format: "ducklake",
            table: name,
            snapshot: stats.snapshot,
            table_id: stats.table_id,
            created: stats.created,
            files: stats.files,
            retried: stats.retried,
            incremental: stats.run.as_ref().map(|r| r.state.clone()),
            first_run: stats.run.as_ref().map(|r| r.first),
            late_scan: stats.run.as_ref().map(|r| r.late_scan),
        })
    })
}

/// The keyword arguments of `export_delta`.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct DeltaArgs<'py> {
    location: String,
    if_exists: String,
    checkpoint_interval: Option<u64>,
    incremental_by: Option<String>,
    since: Option<String>,
    late_rows: String,
    restart: bool,
    options: Option<Bound<'py, PyDict>>,
    storage_options: Option<HashMap<String, String>>,
}

/// What `export_delta` returns: the export's statistics and the commit's.
#[derive(serde::Serialize)]
struct DeltaReport {
    #[serde(flatten)]
    stats: partition::PartitionedStats,
    format: &'static str,
    table: String,
    version: i64,
    created: bool,
    files: usize,
    removed: usize,
    retried: usize,
    checkpointed: bool,
    /// An incremental run's state, as the commit carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    incremental: Option<pgarrow::incremental::IncrementalState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    late_scan: Option<bool>,
}

/// Exports `source` into a Delta table and commits it in one version.
#[pyfunction]
#[pyo3(signature = (conninfo, source, is_table, **args))]
pub(crate) fn export_delta(
    py: Python<'_>,
    conninfo: Option<&str>,
    source: &str,
    is_table: bool,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let args: DeltaArgs<'_> = kwargs(py, args)?;
    let Common {
        config,
        options,
        source,
        if_exists,
        storage,
    } = Common::new(
        py,
        conninfo,
        (source, is_table),
        args.options.as_ref(),
        &args.if_exists,
        args.storage_options,
    )?;
    let mut target = DeltaTarget::new(args.location.clone())
        .with_if_exists(if_exists)
        .with_storage(storage)
        .with_options(options.sink)
        .with_layout(options.layout);
    if let Some(n) = args.checkpoint_interval {
        target = target.with_checkpoint_interval(n);
    }
    let run = RunArgs {
        incremental_by: args.incremental_by,
        since: args.since,
        late_rows: args.late_rows,
        restart: args.restart,
    };
    if let Some(run) = run_options(py, &source, run)? {
        target = target.with_incremental(run);
    }
    let export = options.export;
    let partitions = options
        .partitions
        .unwrap_or_else(|| PartitionOptions::new(1));
    let name = args.location;
    document_on_runtime(py, move |runtime, stop| {
        let run = export_to_delta(config, source, &export, &partitions, &target, hooks(stop));
        let stats = blocking::wait(runtime, stop, run)?;
        Ok(DeltaReport {
            stats: stats.export,
            format: "delta",
            table: name,
            version: stats.version,
            created: stats.created,
            files: stats.files,
            removed: stats.removed,
            retried: stats.retried,
            checkpointed: stats.checkpointed,
            incremental: stats.run.as_ref().map(|r| r.state.clone()),
            first_run: stats.run.as_ref().map(|r| r.first),
            late_scan: stats.run.as_ref().map(|r| r.late_scan),
        })
    })
}

/// The keyword arguments of `export_iceberg`.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct IcebergArgs<'py> {
    catalog: String,
    catalog_name: Option<String>,
    lake_table: Option<String>,
    warehouse: Option<String>,
    if_exists: String,
    incremental_by: Option<String>,
    since: Option<String>,
    late_rows: String,
    restart: bool,
    options: Option<Bound<'py, PyDict>>,
    storage_options: Option<HashMap<String, String>>,
}

/// What `export_iceberg` returns: the export's statistics and the commit's.
#[derive(serde::Serialize)]
struct IcebergReport {
    #[serde(flatten)]
    stats: partition::PartitionedStats,
    format: &'static str,
    table: String,
    snapshot: i64,
    sequence_number: i64,
    metadata_location: String,
    created: bool,
    files: usize,
    retried: usize,
    /// An incremental run's state, as the commit carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    incremental: Option<pgarrow::incremental::IncrementalState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    late_scan: Option<bool>,
}

/// Exports `source` into an Iceberg table and commits it in one snapshot.
#[pyfunction]
#[pyo3(signature = (conninfo, source, is_table, **args))]
pub(crate) fn export_iceberg(
    py: Python<'_>,
    conninfo: Option<&str>,
    source: &str,
    is_table: bool,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let args: IcebergArgs<'_> = kwargs(py, args)?;
    let Common {
        config,
        options,
        source,
        if_exists,
        storage,
    } = Common::new(
        py,
        conninfo,
        (source, is_table),
        args.options.as_ref(),
        &args.if_exists,
        args.storage_options,
    )?;
    let (namespace, table) = lake_name(py, args.lake_table.as_deref(), &source, "default")?;
    let catalog = Config::parse(&args.catalog).map_err(|e| py_err(py, &e.into()))?;
    let mut target = IcebergTarget::new(catalog, namespace.clone(), table.clone())
        .with_if_exists(if_exists)
        .with_storage(storage)
        .with_options(options.sink)
        .with_layout(options.layout);
    if let Some(name) = args.catalog_name {
        target = target.with_catalog_name(name);
    }
    if let Some(w) = args.warehouse {
        target = target.with_warehouse(w);
    }
    let run = RunArgs {
        incremental_by: args.incremental_by,
        since: args.since,
        late_rows: args.late_rows,
        restart: args.restart,
    };
    if let Some(run) = run_options(py, &source, run)? {
        target = target.with_incremental(run);
    }
    let export = options.export;
    let partitions = options
        .partitions
        .unwrap_or_else(|| PartitionOptions::new(1));
    let name = format!("{namespace}.{table}");
    document_on_runtime(py, move |runtime, stop| {
        let run = export_to_iceberg(config, source, &export, &partitions, &target, hooks(stop));
        let stats = blocking::wait(runtime, stop, run)?;
        Ok(IcebergReport {
            stats: stats.export,
            format: "iceberg",
            table: name,
            snapshot: stats.snapshot_id,
            sequence_number: stats.sequence_number,
            metadata_location: stats.metadata_location,
            created: stats.created,
            files: stats.files,
            retried: stats.retried,
            incremental: stats.run.as_ref().map(|r| r.state.clone()),
            first_run: stats.run.as_ref().map(|r| r.first),
            late_scan: stats.run.as_ref().map(|r| r.late_scan),
        })
    })
}
