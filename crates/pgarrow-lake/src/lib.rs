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

pub mod ducklake;

pub use ducklake::{DuckLakeStats, DuckLakeTarget, IfExists, export_to_ducklake};
