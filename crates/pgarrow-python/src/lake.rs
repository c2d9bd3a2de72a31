//! Lake tables from Python: `pgarrow.export_ducklake`, `pgarrow.export_delta` and
//! `pgarrow.export_iceberg`, one table or query, or several tables (`table=` / `schema=`
//! patterns) each into its own lake table, read in one snapshot.

use std::collections::HashMap;

use pgarrow::blocking;
use pgarrow::names::TablePattern;
use pgarrow::partition::PartitionOptions;
use pgarrow::protocol::quote_ident;
use pgarrow_lake::{
    IfExists, LakeName, LakeStats, LakeTarget, SharedSnapshot, export_tables_to_lake,
    export_to_lake,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::{py_err, usage_error};
use crate::runtime::{Prologue, document_on_runtime, hooks, kwargs, source};

/// The lake table the keywords every lake function takes name: exactly one of `ducklake`
/// (a catalog database), `delta` (a location) or `iceberg` (an SQL catalog's database or a
/// REST catalog's address, with its `iceberg_properties`), with `lake_table` and Iceberg's
/// `catalog_name`. [`LakeName`] makes the target, as the CLI's flags do.
#[allow(clippy::too_many_arguments)]
fn lake_name(
    py: Python<'_>,
    ducklake: Option<&String>,
    delta: Option<&String>,
    iceberg: Option<&String>,
    iceberg_properties: Option<&HashMap<String, String>>,
    lake_table: Option<&String>,
    catalog_name: Option<&String>,
) -> PyResult<LakeName> {
    let mut name = LakeName::default();
    name.ducklake = ducklake.cloned();
    name.delta = delta.cloned();
    name.iceberg = iceberg.cloned();
    name.lake_table = lake_table.cloned();
    name.catalog_name = catalog_name.cloned();
    let given = [&name.ducklake, &name.delta, &name.iceberg]
        .iter()
        .filter(|g| g.is_some())
        .count();
    if given != 1 {
        return Err(usage_error(
            py,
            "name the lake table: ducklake= or iceberg= (a catalog, with lake_table=), or \
             delta= (a location)",
        ));
    }
    name.iceberg_properties = iceberg_properties_of(py, iceberg, iceberg_properties)?;
    Ok(name)
}

/// `iceberg_properties=` (pyiceberg's properties of the REST catalog at `iceberg=`) as
/// [`LakeName::iceberg_properties`], sorted by key. Refused without `iceberg=`, and with a
/// `uri` other than `iceberg=` (the catalog's address is given once). Errors name keys only:
/// values may be secrets.
pub(crate) fn iceberg_properties_of(
    py: Python<'_>,
    iceberg: Option<&String>,
    given: Option<&HashMap<String, String>>,
) -> PyResult<Vec<(String, String)>> {
    let Some(given) = given else {
        return Ok(Vec::new());
    };
    let Some(uri) = iceberg else {
        return Err(usage_error(
            py,
            "iceberg_properties= are an Iceberg REST catalog's properties: give the catalog's \
             address as iceberg=\"http(s)://...\"",
        ));
    };
    if given.get("uri").is_some_and(|u| u != uri) {
        return Err(usage_error(
            py,
            "iceberg_properties: its \"uri\" is not iceberg=; the catalog's address is iceberg= \
             (leave \"uri\" out)",
        ));
    }
    let mut out: Vec<(String, String)> = given
        .iter()
        .filter(|(k, _)| k.as_str() != "uri")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.sort();
    Ok(out)
}

/// `table`'s name as [`LakeName::target`] reads it back unchanged (quoted: its case and any
/// dot kept).
fn exact(table: &pgarrow::names::TableName) -> String {
    quote_ident(&table.name)
}

/// The keyword arguments of `export_lake` (the wrappers pass each by name, as the public
/// functions name them; a format's own are `None` for the others).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct LakeArgs<'py> {
    ducklake: Option<String>,
    delta: Option<String>,
    iceberg: Option<String>,
    /// A REST catalog's properties (pyiceberg's), with `iceberg`.
    iceberg_properties: Option<HashMap<String, String>>,
    lake_table: Option<String>,
    catalog_name: Option<String>,
    /// DuckLake's.
    data_path: Option<String>,
    /// Iceberg's.
    warehouse: Option<String>,
    /// Delta's.
    checkpoint_interval: Option<u64>,
    if_exists: String,
    by: Option<String>,
    since: Option<String>,
    late_rows: String,
    restart: bool,
    options: Option<Bound<'py, PyDict>>,
    storage_options: Option<HashMap<String, String>>,
}

/// An incremental run into a lake table (its state the table's): the cursor column and how.
#[derive(Clone)]
struct Run {
    column: String,
    since: Option<String>,
    late_rows: pgarrow::incremental::LateRows,
    restart: bool,
}

impl Run {
    /// The arguments' run, when `by` asks for one.
    fn new(py: Python<'_>, args: &LakeArgs<'_>) -> PyResult<Option<Run>> {
        let Some(column) = &args.by else {
            if args.since.is_some() || args.restart {
                return Err(usage_error(
                    py,
                    "since= and restart= are options of by= (an incremental run)",
                ));
            }
            return Ok(None);
        };
        let late_rows = args
            .late_rows
            .parse()
            .map_err(|e: pgarrow::Error| usage_error(py, format!("late_rows: {e}")))?;
        Ok(Some(Run {
            column: column.clone(),
            since: args.since.clone(),
            late_rows,
            restart: args.restart,
        }))
    }

    /// The run of `table`.
    fn of(&self, table: pgarrow::names::TableName) -> pgarrow::incremental::IncrementalOptions {
        let mut run = pgarrow::incremental::IncrementalOptions::new(table, self.column.clone())
            .with_late_rows(self.late_rows)
            .with_restart(self.restart);
        if let Some(since) = &self.since {
            run = run.with_since(since.clone());
        }
        run
    }
}

/// The lake table the arguments name: `lake_table` (`[schema.]name`), else the exported
/// table's name (`source`; `None` with several tables, each named later).
fn target(
    py: Python<'_>,
    args: &LakeArgs<'_>,
    source: Option<&pgarrow::Source>,
) -> PyResult<LakeTarget> {
    let name = lake_name(
        py,
        args.ducklake.as_ref(),
        args.delta.as_ref(),
        args.iceberg.as_ref(),
        args.iceberg_properties.as_ref(),
        args.lake_table.as_ref(),
        args.catalog_name.as_ref(),
    )?;
    let query = source.is_some_and(|s| s.as_table().is_none());
    if query && name.delta.is_none() && name.lake_table.is_none() {
        return Err(usage_error(
            py,
            "a query has no table name: give lake_table=\"[schema.]name\"",
        ));
    }
    let table = source.and_then(pgarrow::Source::as_table).map(exact);
    let mut name = name;
    name.data_path = args.data_path.clone();
    name.warehouse = args.warehouse.clone();
    name.checkpoint_interval = args.checkpoint_interval;
    name.target(table.as_deref()).map_err(|e| py_err(py, &e))
}

/// Exports `source` (or, with `patterns` / `schemas`, every table they match, read in one
/// snapshot, each into a lake table of its own schema and name) into the lake table
/// `ducklake=`, `delta=` or `iceberg=` names: one commit per table. Returns the statistics,
/// a list of them for several tables.
#[pyfunction]
#[pyo3(signature = (conninfo, source, is_table, patterns, schemas, **args))]
pub(crate) fn export_lake(
    py: Python<'_>,
    conninfo: Option<&str>,
    source: &str,
    is_table: bool,
    patterns: Vec<String>,
    schemas: Vec<String>,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let args: LakeArgs<'_> = kwargs(py, args)?;
    let Prologue { config, options } =
        Prologue::new(conninfo, args.options.as_ref(), true)?.read_only();
    if options.slot.is_some() {
        return Err(usage_error(
            py,
            "replication_slot: an export into a lake table is not handed off to a slot yet",
        ));
    }
    let if_exists: IfExists = args
        .if_exists
        .parse()
        .map_err(|e: pgarrow::Error| usage_error(py, e.to_string()))?;
    let storage = storage_options(args.storage_options.as_ref());
    let export = options.export;
    let partitions = options
        .partitions
        .unwrap_or_else(|| PartitionOptions::new(1));
    let several = !(patterns.is_empty() && schemas.is_empty());
    let source = match several {
        true => None,
        false => Some(self::source(source, is_table)?),
    };
    let base = target(py, &args, source.as_ref())?
        .with_if_exists(if_exists)
        .with_storage(storage)
        .with_options(options.sink)
        .with_layout(options.layout);
    let Some(source) = source else {
        if args.lake_table.is_some() {
            return Err(usage_error(
                py,
                "lake_table names one lake table: several tables go into tables of their own \
                 schemas and names",
            ));
        }
        let mut found = Vec::new();
        for t in &patterns {
            found.push(TablePattern::parse(t).map_err(|e| py_err(py, &e))?);
        }
        for s in &schemas {
            found.push(TablePattern::schema(s).map_err(|e| py_err(py, &e))?);
        }
        let run = Run::new(py, &args)?;
        return document_on_runtime(py, move |runtime, stop| {
            let shared =
                blocking::wait(runtime, stop, SharedSnapshot::begin(config.clone(), &found))?;
            let mut jobs = Vec::new();
            for table in shared.tables().to_vec() {
                // The tables found are schema-qualified: no default schema is taken.
                let mut target = base.for_table(&table, "public");
                if let Some(run) = &run {
                    target = target.with_incremental(run.of(table.clone()));
                }
                jobs.push((pgarrow::Source::from(table), target));
            }
            let read = shared.partitions(&partitions);
            // DuckLake and Iceberg tables are committed together (one transaction of their
            // catalog).
            let all = export_tables_to_lake(config.clone(), jobs, &export, &read, |_| hooks(stop));
            let out: Vec<LakeStats> = blocking::wait(runtime, stop, all)?;
            blocking::wait(runtime, stop, shared.end())?;
            Ok(out)
        });
    };
    let mut target = base;
    if let Some(run) = Run::new(py, &args)? {
        let Some(table) = source.as_table() else {
            return Err(usage_error(
                py,
                "by= (an incremental run) reads one table (table=...), not a query",
            ));
        };
        target = target.with_incremental(run.of(table.clone()));
    }
    document_on_runtime(py, move |runtime, stop| {
        let run = export_to_lake(config, source, &export, &partitions, &target, hooks(stop));
        blocking::wait(runtime, stop, run)
    })
}

/// `storage_options=` as the object store settings.
fn storage_options(given: Option<&HashMap<String, String>>) -> pgarrow::io::StorageOptions {
    given.cloned().unwrap_or_default().into_iter().collect()
}

/// The keyword arguments of `mirror` (the wrapper passes each by name).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct MirrorArgs<'py> {
    ducklake: Option<String>,
    delta: Option<String>,
    iceberg: Option<String>,
    iceberg_properties: Option<HashMap<String, String>>,
    warehouse: Option<String>,
    catalog_name: Option<String>,
    data_path: Option<String>,
    lake_table: Option<String>,
    slot: String,
    publication: Option<String>,
    commit_interval: f64,
    commit_changes: u64,
    catch_up: bool,
    start_over: bool,
    failover: bool,
    reexport: bool,
    deletes: Option<String>,
    spill_dir: Option<String>,
    retry_for: f64,
    metrics_listen: Option<String>,
    status: bool,
    at: Option<String>,
    options: Option<Bound<'py, PyDict>>,
    storage_options: Option<HashMap<String, String>>,
}

/// Mirrors the tables `patterns` and `schemas` match into DuckLake tables of `ducklake` (one
/// table: the lake table `lake_table`, else its own name in schema `main`; several: each its
/// own schema and name), Delta tables at `delta` (several: `schema.name` under it) or Iceberg
/// tables of the catalog `iceberg` names (an SQL catalog's database, new tables under
/// `warehouse`; or a REST catalog's address, with `iceberg_properties`) through replication
/// slot `slot`, until caught up (`catch_up`) or interrupted.
/// Returns the statistics.
#[pyfunction]
#[pyo3(signature = (conninfo, patterns, schemas, **args))]
pub(crate) fn mirror(
    py: Python<'_>,
    conninfo: Option<&str>,
    patterns: Vec<String>,
    schemas: Vec<String>,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    use pgarrow_lake::mirror::{MirrorOptions, mirror_to_lake};
    let args: MirrorArgs<'_> = kwargs(py, args)?;
    let Prologue { config, options } = Prologue::new(conninfo, args.options.as_ref(), true)?;
    // memory_limit= bounds the mirror's bookkeeping as well as its first export's.
    let memory_given = match &args.options {
        Some(o) => o.contains("memory_limit")?,
        None => false,
    };
    let memory_limit = match (memory_given, &options.partitions) {
        (true, Some(p)) => p.memory_limit as u64,
        _ => pgarrow_lake::mirror::DEFAULT_MEMORY_LIMIT,
    };
    if !(args.commit_interval.is_finite() && args.commit_interval >= 0.0) {
        return Err(usage_error(
            py,
            "commit_interval takes a number of seconds, 0 or more",
        ));
    }
    if !(args.retry_for.is_finite() && args.retry_for >= 0.0) {
        return Err(usage_error(
            py,
            "retry_for takes a number of seconds, 0 or more",
        ));
    }
    let metrics_listen = match &args.metrics_listen {
        Some(a) => Some(pgarrow_lake::mirror::metrics_address(a).map_err(|e| py_err(py, &e))?),
        None => None,
    };
    let mut found = Vec::new();
    for t in &patterns {
        found.push(TablePattern::parse(t).map_err(|e| py_err(py, &e))?);
    }
    for s in &schemas {
        found.push(TablePattern::schema(s).map_err(|e| py_err(py, &e))?);
    }
    if found.is_empty() {
        return Err(usage_error(py, "give table= or schema= patterns"));
    }
    let mut named = lake_name(
        py,
        args.ducklake.as_ref(),
        args.delta.as_ref(),
        args.iceberg.as_ref(),
        args.iceberg_properties.as_ref(),
        args.lake_table.as_ref(),
        args.catalog_name.as_ref(),
    )?;
    named.data_path = args.data_path.clone();
    named.warehouse = args.warehouse.clone();
    // The names and options are checked before connecting; the table is known once the
    // patterns are resolved.
    named.target(None).map_err(|e| py_err(py, &e))?;
    let storage = storage_options(args.storage_options.as_ref());
    let mirror_options = MirrorOptions::new(args.slot.clone())
        .with_patterns(found.clone())
        .with_publication(args.publication.clone())
        .with_commit_interval(std::time::Duration::from_secs_f64(args.commit_interval))
        .with_commit_changes(args.commit_changes)
        .with_catch_up(args.catch_up)
        .with_start_over(args.start_over)
        .with_failover(args.failover)
        .with_reexport(args.reexport)
        .with_deletes(delete_mode(py, args.deletes.as_deref())?)
        .with_memory_limit(memory_limit)
        .with_spill_dir(args.spill_dir.clone().map(std::path::PathBuf::from))
        .with_retry_for(std::time::Duration::from_secs_f64(args.retry_for))
        .with_metrics_listen(metrics_listen)
        .with_export(options.export)
        .with_partitions(
            options
                .partitions
                .unwrap_or_else(|| PartitionOptions::new(1)),
        );
    let (sink, layout) = (options.sink, options.layout);
    let (status, at, slot) = (args.status, args.at.clone(), args.slot.clone());
    document_on_runtime(py, move |runtime, stop| {
        let resolved = pgarrow_lake::mirror::resolve_tables(config.clone(), &found);
        let tables = blocking::wait(runtime, stop, resolved)?;
        // One table: the lake table `lake_table`, else its own name; several: each its own.
        let one = match (&named.lake_table, tables.as_slice()) {
            (Some(_), [_, _, ..]) => {
                return Err(pgarrow::Error::usage(
                    "lake_table names one lake table: several tables go into tables of their \
                     own schemas and names",
                ));
            }
            (None, [one]) => Some(exact(one)),
            _ => None,
        };
        let target = named.target(one.as_deref())?;
        let target = target
            .with_storage(storage)
            .with_options(sink)
            .with_layout(layout);
        if status {
            let read = pgarrow_lake::mirror::mirror_status(config.clone(), &tables, &target, &slot);
            return blocking::wait(runtime, stop, read).map(Mirrored::Status);
        }
        if let Some(at) = &at {
            let read =
                pgarrow_lake::mirror::mirror_at_text(config.clone(), &tables, &target, &slot, at);
            return blocking::wait(runtime, stop, read).map(Mirrored::At);
        }
        let run = mirror_to_lake(
            config.clone(),
            &tables,
            &target,
            &mirror_options,
            hooks(stop),
        );
        blocking::wait(runtime, stop, run).map(|s| Mirrored::Ran(Box::new(s)))
    })
}

/// What `mirror` gives back: its statistics, (with `status`) where it is, or (with `at`) the
/// lake tables' snapshots at a source point.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Mirrored {
    Ran(Box<pgarrow_lake::mirror::MirrorStats>),
    Status(pgarrow_lake::mirror::MirrorStatus),
    At(pgarrow_lake::mirror::LakePoint),
}

/// The keys of [`MaintainArgs`] (the wrappers pass every one, `None` when not theirs).
const MAINTAIN_KEYS: [&str; 11] = [
    "ducklake",
    "delta",
    "iceberg",
    "iceberg_properties",
    "lake_table",
    "catalog_name",
    "storage_options",
    "target_file_bytes",
    "retries",
    "older_than",
    "dry_run",
];

/// The keyword arguments naming one lake table, for `compact_lake` and `expire_lake`.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct MaintainArgs {
    ducklake: Option<String>,
    delta: Option<String>,
    iceberg: Option<String>,
    iceberg_properties: Option<HashMap<String, String>>,
    lake_table: Option<String>,
    catalog_name: Option<String>,
    storage_options: Option<HashMap<String, String>>,
    target_file_bytes: Option<u64>,
    retries: Option<usize>,
    older_than: Option<f64>,
    dry_run: Option<bool>,
}

impl MaintainArgs {
    /// The lake table's name, as the keywords give it.
    fn name(&self, py: Python<'_>) -> PyResult<LakeName> {
        lake_name(
            py,
            self.ducklake.as_ref(),
            self.delta.as_ref(),
            self.iceberg.as_ref(),
            self.iceberg_properties.as_ref(),
            self.lake_table.as_ref(),
            self.catalog_name.as_ref(),
        )
    }

    /// The lake table the arguments name.
    fn target(&self, py: Python<'_>) -> PyResult<LakeTarget> {
        self.target_or(py, None)
    }

    /// The lake table the arguments name; a catalog's without `lake_table` is `table` (the
    /// one source table of a changes directory, as [`LakeName::target`] reads it).
    fn target_or(&self, py: Python<'_>, table: Option<&str>) -> PyResult<LakeTarget> {
        let name = self.name(py)?;
        if name.delta.is_none() && name.lake_table.is_none() && table.is_none() {
            return Err(usage_error(py, "lake_table= names the catalog's table"));
        }
        let target = name.target(table).map_err(|e| py_err(py, &e))?;
        Ok(target.with_storage(storage_options(self.storage_options.as_ref())))
    }
}

/// Compacts the lake table the arguments name (`pgarrow lake compact`). Returns the statistics.
#[pyfunction]
#[pyo3(signature = (**args))]
pub(crate) fn compact_lake(
    py: Python<'_>,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    use pgarrow_lake::maintain::CompactOptions;
    let args: MaintainArgs = kwargs(py, args)?;
    let target = args.target(py)?;
    let mut options = CompactOptions::new();
    if let Some(bytes) = args.target_file_bytes {
        options = options.with_target_file_bytes(bytes);
    }
    if let Some(retries) = args.retries {
        options = options.with_retries(retries);
    }
    document_on_runtime(py, move |runtime, stop| {
        let run = pgarrow_lake::maintain::compact_lake(&target, &options, hooks(stop));
        blocking::wait(runtime, stop, run)
    })
}

/// Expires the lake table the arguments name (`pgarrow lake expire`). Returns the statistics.
#[pyfunction]
#[pyo3(signature = (**args))]
pub(crate) fn expire_lake(py: Python<'_>, args: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
    use pgarrow_lake::maintain::ExpireOptions;
    let args: MaintainArgs = kwargs(py, args)?;
    let target = args.target(py)?;
    let older_than = args.older_than.unwrap_or(7.0 * 86_400.0);
    let older_than = std::time::Duration::try_from_secs_f64(older_than)
        .map_err(|_| usage_error(py, "older_than takes a number of seconds, 0 or more"))?;
    let options = ExpireOptions::new(older_than).with_dry_run(args.dry_run.unwrap_or(false));
    document_on_runtime(py, move |runtime, stop| {
        let run = pgarrow_lake::maintain::expire_lake(&target, &options);
        blocking::wait(runtime, stop, run)
    })
}

/// The delete mode `name` names (`merge-on-read` when none).
pub(crate) fn delete_mode(
    py: Python<'_>,
    name: Option<&str>,
) -> PyResult<pgarrow_lake::mirror::DeleteMode> {
    name.map_or(Ok(Default::default()), |n| {
        n.parse()
            .map_err(|e: pgarrow::Error| usage_error(py, format!("deletes: {e}")))
    })
}

/// Applies the changes directory at `dir` to lake tables (`apply_changes(..., delta=...)`):
/// `args` names them as for `compact_lake` (`lake_table` optional for one table); `keys` are
/// source tables' keys.
pub(crate) fn apply_to_lake(
    py: Python<'_>,
    dir: pgarrow::io::Location,
    args: &Bound<'_, PyDict>,
    keys: Vec<(String, Vec<String>)>,
    options: pgarrow_lake::apply::LakeApplyOptions,
) -> PyResult<Py<PyAny>> {
    let all = PyDict::new(py);
    for k in MAINTAIN_KEYS {
        all.set_item(k, args.get_item(k)?)?;
    }
    let args: MaintainArgs = all.extract()?;
    // The keywords are checked before the directory is read.
    args.name(py)?;
    let manifest = pgarrow_changes::read_manifest(&dir).map_err(|e| py_err(py, &e))?;
    let mut sources: Vec<&str> = manifest.files.iter().map(|f| f.table.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    if sources.len() > 1 && args.lake_table.is_some() {
        return Err(usage_error(
            py,
            "lake_table= names one lake table, and the changes are of several tables: each goes \
             into the lake table of its own schema and name",
        ));
    }
    let one = match sources.as_slice() {
        [one] => Some(exact(
            &pgarrow::names::TableName::parse(one).map_err(|e| usage_error(py, e.to_string()))?,
        )),
        _ => None,
    };
    let target = args.target_or(py, one.as_deref())?;
    let mut options = options;
    for (table, columns) in keys {
        let table = pgarrow::names::TableName::parse(&table)
            .map_err(|e| usage_error(py, format!("keys: {e}")))?;
        options = options.with_key(table, columns);
    }
    document_on_runtime(py, move |runtime, stop| {
        let run = pgarrow_lake::apply::apply_to_lake(&dir, &target, &options, hooks(stop));
        blocking::wait(runtime, stop, run)
    })
}
