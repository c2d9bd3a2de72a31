//! Lake tables: a pgarrow export committed into a table of a lake format, so that readers
//! query a table through its catalog, never half an export.
//!
//! pgarrow writes the data files with its own Parquet writer (exact types, field IDs, rolled
//! files), through the same partitioned export as files in a directory
//! ([`pgarrow::partition::export_files`]); this crate owns what makes them a table: the
//! metadata and the commit. One export is one commit: nothing is visible before it, and an
//! export that fails (or whose commit fails) removes the files it wrote.
//!
//! - [`ducklake`]: DuckLake tables, the catalog in a PostgreSQL database.
//! - [`delta`]: Delta Lake tables, the log beside the data (local or any object store).
//! - [`iceberg`]: Apache Iceberg tables, behind a REST catalog or the SQL catalog in a
//!   PostgreSQL database.
//!
//! A lake table that follows PostgreSQL, kept equal to its source through a logical
//! replication slot: [`mirror`].
//!
//! Any of them as one target and one report: [`LakeTarget`], [`export_to_lake`],
//! [`LakeStats`]. Several tables go into lake tables of their own, read in one snapshot:
//! [`SharedSnapshot`], [`LakeTarget::for_table`]. A table as the command line and Python name
//! it, to write or to read: [`LakeName`], [`open_lake`].

pub mod apply;
mod avro;
mod bounds;
mod cleanup;
mod common;
mod deletes;
pub mod delta;
pub mod ducklake;
pub mod iceberg;
mod live;
pub mod maintain;
pub mod mirror;
mod named;
mod retention;
mod retry;
mod run;
mod spill;
mod sql;
mod table;
mod tables;
mod target;

pub use delta::{DeltaStats, DeltaTarget, export_to_delta};
pub use ducklake::{DuckLakeStats, DuckLakeTarget, export_to_ducklake};
pub use iceberg::{
    IcebergCatalog, IcebergStats, IcebergTarget, RestCatalogOptions, export_to_iceberg,
};
pub use named::{LakeName, open_lake};
pub use tables::SharedSnapshot;
pub use target::{LakeStats, LakeTarget, export_tables_to_lake, export_to_lake};

pub use common::{IfExists, LakeRun};

/// Internals exposed for the cargo-fuzz targets in `fuzz/` (a separate crate, so `pub(crate)`
/// does not reach it). Hidden from the docs on purpose: not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::avro::fuzz_round_trip as avro_round_trip;
    pub use crate::delta::dv::fuzz_positions as deletion_vector;
}
