//! Change data capture: a slot's changes as they come (`Changes`), into file sets
//! (`changes_to`), and file sets applied to tables (`apply_changes`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use pgarrow::Nanoseconds;
use pgarrow::blocking;
use pgarrow_changes::{ChangeEvent, ChangeOptions, ChangeStream, ValueFormat};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::error::{py_err, usage_error};
use crate::export::PyBatch;
use crate::runtime::{
    Interrupt, config, dir_format, document_on_runtime, kwargs, location, seconds,
};

/// The slot, its publications and how to read them: what `Changes` and `changes_to` share.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct SlotArgs {
    create_slot: bool,
    catch_up: bool,
    /// "auto", "binary" or "text".
    values: String,
    /// A WAL position (`16/B374D848`) to skip transactions committed before.
    start: Option<String>,
    /// Where large transactions streamed before their commit are set aside.
    spill_dir: Option<PathBuf>,
}

impl SlotArgs {
    fn options(
        self,
        py: Python<'_>,
        slot: &str,
        publications: &[String],
    ) -> PyResult<ChangeOptions> {
        let names: Vec<&str> = publications.iter().map(String::as_str).collect();
        let values = self.values;
        let values = values
            .parse::<ValueFormat>()
            .map_err(|e| usage_error(py, format!("values={values:?}: {e}")))?;
        let start = match self.start {
            Some(start) => Some(start.parse().map_err(|e: pgarrow::protocol::Error| {
                usage_error(py, format!("start={start:?}: {e}"))
            })?),
            None => None,
        };
        Ok(ChangeOptions::new(slot, &names)
            .with_create_slot(self.create_slot)
            .with_catch_up(self.catch_up)
            .with_values(values)
            .with_start(start)
            .with_spill_dir(self.spill_dir))
    }
}

/// The keyword arguments `Changes` adds.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct StreamArgs {
    batch_rows: Option<usize>,
    /// Seconds rows may wait for a checkpoint.
    flush_interval: f64,
}

/// A slot's changes as they come (made by `pgarrow._pgarrow.Changes(...)`): `next_event`
/// waits with the GIL released and returns `("rows", table, batch)`, `("schema", table,
/// lsn)` (the LSN where its columns changed, None for a table's first schema) or
/// `("checkpoint", lsn, None)`; `confirm(lsn)` tells the slot a checkpoint is
/// durable.
#[pyclass(module = "pgarrow._pgarrow", name = "Changes")]
pub(crate) struct PyChanges {
    interrupt: Interrupt,
    runtime: tokio::runtime::Runtime,
    /// `None` once closed (an ended stream stays, for its last checkpoint's confirmation).
    stream: Mutex<Option<ChangeStream>>,
}

#[pymethods]
impl PyChanges {
    /// Connects and starts streaming the slot's changes for `publications`.
    #[new]
    #[pyo3(signature = (conninfo, slot, publications, **args))]
    fn new(
        py: Python<'_>,
        conninfo: Option<&str>,
        slot: &str,
        publications: Vec<String>,
        args: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let slot_args: SlotArgs = kwargs(py, args)?;
        let args: StreamArgs = kwargs(py, args)?;
        let config = config(conninfo, None)?;
        let mut options = slot_args.options(py, slot, &publications)?;
        if let Some(rows) = args.batch_rows {
            let decode = options.decode.with_batch_rows(rows.max(1));
            options = options.with_decode(decode);
        }
        options = options.with_flush_interval(seconds(py, "flush_interval", args.flush_interval)?);
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
                Py::new(py, PyBatch::new(b.batch))?.into_any(),
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

/// The keyword arguments `changes_to` adds: the files and when they roll.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct RollArgs {
    /// "parquet" or "arrow".
    format: Option<String>,
    roll_rows: u64,
    roll_bytes: usize,
    roll_seconds: f64,
    storage_options: Option<HashMap<String, String>>,
}

/// Streams the slot's changes into file sets under `output` (a directory or an object URL)
/// with their manifest, as `pgarrow changes -o` does, until caught up (`catch_up`) or
/// interrupted (Ctrl-C ends it at a transaction boundary, after a last roll); returns the
/// statistics.
#[pyfunction]
#[pyo3(signature = (conninfo, output, slot, publications, **args))]
pub(crate) fn changes_to(
    py: Python<'_>,
    conninfo: Option<&str>,
    output: PathBuf,
    slot: &str,
    publications: Vec<String>,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let slot_args: SlotArgs = kwargs(py, args)?;
    let args: RollArgs = kwargs(py, args)?;
    let config = config(conninfo, None)?;
    let options = slot_args.options(py, slot, &publications)?;
    let mut target = pgarrow_changes::ChangeTarget::dir(
        location(py, &output, args.storage_options)?,
        dir_format(py, args.format.as_deref())?,
    );
    target.roll_rows = args.roll_rows.max(1);
    target.roll_bytes = args.roll_bytes.max(1);
    target.roll_interval = seconds(py, "roll_seconds", args.roll_seconds)?;
    document_on_runtime(py, move |runtime, stop| {
        // Stopped, the run winds down at a transaction boundary itself: waited for, not cut.
        let hooks = crate::runtime::hooks(stop);
        let run = pgarrow_changes::changes_to(config, options, &target, hooks);
        blocking::wait(runtime, stop, run)
    })
}

/// The keyword arguments of `apply_changes`.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct ApplyArgs {
    /// A source table to its target.
    tables: Option<HashMap<String, String>>,
    /// A target's key columns.
    keys: Option<HashMap<String, Vec<String>>>,
    state_table: Option<String>,
    /// "error" or "round".
    nanoseconds: String,
    storage_options: Option<HashMap<String, String>>,
    /// A lake table's bookkeeping budget, as a size (`"256MiB"`, bytes).
    memory_limit: Option<String>,
    /// Where a lake table's changes past the budget are set aside.
    spill_dir: Option<PathBuf>,
}

/// Applies the changes directory `path` (as `changes_to` writes it) to the tables of
/// `conninfo`'s database, as `pgarrow apply` does; returns the statistics.
#[pyfunction]
#[pyo3(signature = (conninfo, path, **args))]
pub(crate) fn apply_changes(
    py: Python<'_>,
    conninfo: Option<&str>,
    path: PathBuf,
    args: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let lake = args.and_then(|a| {
        ["ducklake", "delta", "iceberg"]
            .iter()
            .any(|k| a.get_item(k).ok().flatten().is_some_and(|v| !v.is_none()))
            .then_some(a)
    });
    if let Some(lake) = lake {
        // Into lake tables: the lake's arguments, the keys of source tables.
        let given: ApplyArgs = kwargs(py, Some(&lake_free(py, lake)?))?;
        if given.tables.is_some() || given.state_table.is_some() {
            return Err(usage_error(
                py,
                "tables= and state_table= are PostgreSQL's: a lake table is named by ducklake=, \
                 delta= or iceberg= (and lake_table=), and records what it holds itself",
            ));
        }
        let mut keys: Vec<_> = given.keys.unwrap_or_default().into_iter().collect();
        keys.sort();
        let dir = location(py, &path, given.storage_options.clone())?;
        let lake_args = PyDict::new(py);
        for k in [
            "ducklake",
            "delta",
            "iceberg",
            "iceberg_properties",
            "lake_table",
            "catalog_name",
            "storage_options",
        ] {
            if let Some(v) = lake.get_item(k)? {
                lake_args.set_item(k, v)?;
            }
        }
        let deletes: Option<String> = lake.get_item("deletes")?.map(|v| v.extract()).transpose()?;
        let deletes = crate::lake::delete_mode(py, deletes.as_deref())?;
        let mut options = pgarrow_lake::apply::LakeApplyOptions::default()
            .with_deletes(deletes)
            .with_spill_dir(given.spill_dir);
        if let Some(limit) = &given.memory_limit {
            let bytes = pgarrow::partition::parse_size(limit)
                .map_err(|e| usage_error(py, format!("memory_limit={limit:?}: {e}")))?;
            options = options.with_memory_limit(bytes as u64);
        }
        return crate::lake::apply_to_lake(py, dir, &lake_args, keys, options);
    }
    if let Some(given) = args.and_then(|a| a.get_item("iceberg_properties").ok().flatten()) {
        // Into PostgreSQL: there is no REST catalog to give properties to.
        let given: Option<HashMap<String, String>> = given.extract()?;
        crate::lake::iceberg_properties_of(py, None, given.as_ref())?;
    }
    let args: ApplyArgs = kwargs(py, args)?;
    if args.memory_limit.is_some() || args.spill_dir.is_some() {
        return Err(usage_error(
            py,
            "memory_limit= and spill_dir= bound a lake table's bookkeeping (ducklake=, delta=, \
             iceberg=): into PostgreSQL, each roll is applied by the server",
        ));
    }
    let config = config(conninfo, None)?;
    let usage = |e: pgarrow::Error| usage_error(py, e.to_string());
    let mut options = pgarrow_changes::ApplyOptions::default();
    if let Some(name) = &args.state_table {
        options = options.try_with_state_table(name).map_err(usage)?;
    }
    // Sorted: the same options in the same order, whatever the dict's.
    let mut tables: Vec<_> = args.tables.unwrap_or_default().into_iter().collect();
    tables.sort();
    for (source, target) in tables {
        options = options.try_with_table(&source, &target).map_err(usage)?;
    }
    let mut keys: Vec<_> = args.keys.unwrap_or_default().into_iter().collect();
    keys.sort();
    for (table, columns) in keys {
        options = options.try_with_key(&table, columns).map_err(usage)?;
    }
    let nanoseconds: Nanoseconds = args
        .nanoseconds
        .parse()
        .map_err(|e| usage_error(py, format!("nanoseconds: {e}")))?;
    let policies = options.policies.with_nanoseconds(nanoseconds);
    options = options.with_policies(policies);
    let dir = location(py, &path, args.storage_options)?;
    document_on_runtime(py, move |runtime, stop| {
        let hooks = crate::runtime::hooks(stop);
        let run = pgarrow_changes::apply_changes(config, &dir, &options, hooks);
        blocking::wait(runtime, stop, run)
    })
}

/// `args` without the lake's arguments (`ducklake`, `delta`, `iceberg`, `iceberg_properties`,
/// `lake_table`, `catalog_name`, `deletes`).
fn lake_free<'py>(py: Python<'py>, args: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for (k, v) in args.iter() {
        let key: String = k.extract()?;
        if ![
            "ducklake",
            "delta",
            "iceberg",
            "iceberg_properties",
            "lake_table",
            "catalog_name",
            "deletes",
        ]
        .contains(&key.as_str())
        {
            out.set_item(k, v)?;
        }
    }
    Ok(out)
}
