//! Plans: the parts of a partitioned read in one held snapshot (`Plan`, held by this
//! process; `Holder`, held by a detached process until every part was read).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgarrow::blocking;
use pgarrow::partition::{self, Coordinator, Holder, PartitionOptions, PartitionPlan};
use pgarrow::protocol::Config;
use pgarrow::{ExportOptions, Source};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};

use crate::error::{py_err, usage_error};
use crate::runtime::{Prologue, detached, schema_capsule, source};

/// The settings, source and options of a plan, checked; the partition options default to
/// `parts` parts (the engines' tasks), one connection each.
fn plan_inputs(
    conninfo: Option<&str>,
    text: &str,
    is_table: bool,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Config, Source, ExportOptions, PartitionOptions)> {
    let Prologue { config, options } = Prologue::new(conninfo, options, false)?;
    let source = source(text, is_table)?;
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
pub(crate) struct PyPlan {
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

    /// The plan as JSON (the document engines' tasks carry).
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
pub(crate) struct PyHolder {
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
pub(crate) fn plan_schema<'py>(
    py: Python<'py>,
    plan_json: &str,
) -> PyResult<Bound<'py, PyCapsule>> {
    let plan = PartitionPlan::from_json(plan_json).map_err(|e| py_err(py, &e))?;
    schema_capsule(py, &Arc::new(plan.schema))
}
