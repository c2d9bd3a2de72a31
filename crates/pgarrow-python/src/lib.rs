//! The native half of the Python package: `pgarrow._pgarrow`, wrapped by the modules of
//! `python/pgarrow/` (which users import; split by the same concerns as this crate).
//!
//! Data crosses through the Arrow C data and stream interfaces (PyCapsules named
//! `arrow_schema`, `arrow_array` and `arrow_array_stream`), so pyarrow, polars, DuckDB or any
//! other Arrow implementation takes the buffers without a copy. Every wait on the server runs
//! with the GIL released, checking for signals every 100 ms: Ctrl-C cancels the server query
//! and raises `KeyboardInterrupt`. Results (statistics) cross as dicts built here from the
//! engine's serde documents, without JSON text.
//!
//! By concern, as py-polars splits its own:
//!
//! - [`error`]: the exceptions, and pgarrow's errors mapped onto them;
//! - [`runtime`]: the prologue every call shares (settings and options checked before
//!   connecting, the run without the GIL, results as Python objects, PyCapsules);
//! - [`options`]: the export's options, as keyword arguments;
//! - [`stats`]: statistics documents as Python objects;
//! - [`export`]: reading (`Export`, `Batch`, `schema`) and exports into files;
//! - [`load`]: `write` and `copy`;
//! - [`changes`]: change streams, their file sets and their application;
//! - [`plan`]: plans of partitioned reads and their holders.
//!
//! Native functions take their essentials positionally and the rest as keyword arguments
//! parsed once into a `#[derive(FromPyObject)]` struct per concern: the public signatures, with
//! their defaults, types and docs, are the Python wrappers'.

mod changes;
mod error;
mod export;
mod lake;
mod load;
mod options;
mod plan;
mod runtime;
mod stats;

use pyo3::prelude::*;

// The system allocator, not mimalloc as in the CLI: `read_arrow` keeps every batch, and with
// mimalloc that memory cost 1.1-1.3 s of system time on 2M lineitem rows (mimalloc's options
// set at import came too late to change it); with glibc's malloc, 0.3 s and a smaller peak.
// See benches/RESULTS.md.

/// The module.
#[pymodule]
fn _pgarrow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // A malformed file's reader panic is caught and raised as pgarrow.Error, without a panic
    // message on stderr first.
    pgarrow::io::panic::quiet_caught_reader_panics();
    // The library's warnings (and, under PGARROW_DEBUG, its debug lines) on stderr, unless the
    // process has a logger already.
    pgarrow::logging::to_stderr();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // This module's file is also an ADBC driver (pgarrow.adbc), entered here.
    m.add("ADBC_ENTRYPOINT", pgarrow_adbc::ENTRYPOINT)?;
    m.add("Error", py.get_type::<error::Error>())?;
    m.add("ConnectError", py.get_type::<error::ConnectError>())?;
    m.add("QueryError", py.get_type::<error::QueryError>())?;
    m.add("DecodeError", py.get_type::<error::DecodeError>())?;
    m.add("OutputError", py.get_type::<error::OutputError>())?;
    m.add("DataError", py.get_type::<error::DataError>())?;
    m.add_class::<export::PyExport>()?;
    m.add_class::<export::PyBatch>()?;
    m.add_function(wrap_pyfunction!(export::schema, m)?)?;
    m.add_function(wrap_pyfunction!(export::export_file, m)?)?;
    m.add_function(wrap_pyfunction!(export::export_dir, m)?)?;
    m.add_function(wrap_pyfunction!(lake::export_lake, m)?)?;
    m.add_function(wrap_pyfunction!(lake::mirror, m)?)?;
    m.add_function(wrap_pyfunction!(lake::compact_lake, m)?)?;
    m.add_function(wrap_pyfunction!(lake::expire_lake, m)?)?;
    m.add_function(wrap_pyfunction!(export::export_incremental, m)?)?;
    m.add_function(wrap_pyfunction!(export::export_tables, m)?)?;
    m.add_class::<plan::PyPlan>()?;
    m.add_class::<plan::PyHolder>()?;
    m.add_function(wrap_pyfunction!(plan::plan_schema, m)?)?;
    m.add_class::<changes::PyChanges>()?;
    m.add_function(wrap_pyfunction!(changes::changes_to, m)?)?;
    m.add_function(wrap_pyfunction!(changes::apply_changes, m)?)?;
    m.add_function(wrap_pyfunction!(load::write, m)?)?;
    m.add_function(wrap_pyfunction!(load::copy, m)?)?;
    Ok(())
}
