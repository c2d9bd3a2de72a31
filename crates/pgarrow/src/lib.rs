//! Move data out of PostgreSQL into Apache Arrow, exactly and fast.
//!
//! [`Client::export`] describes a query (Parse/Describe, no execution), looks up the names of
//! its column types in one catalog query, casts columns whose types have no binary decoder to
//! `text`, and runs `COPY (...) TO STDOUT (FORMAT binary)`. The COPY data is decoded in place
//! from the connection's read buffer into Arrow arrays. The result is an [`Export`]:
//!
//! * a `futures::Stream` of `Result<RecordBatch>`, with its [`schema`](Export::schema) known
//!   before the first batch and its [`stats`](Export::stats) at any time;
//! * or, with [`Export::write_to`], batches written into any arrow `RecordBatchWriter` on a
//!   worker thread while the next ones are decoded;
//! * or, with [`Client::export_to_file`], the whole pipeline into Parquet or Arrow IPC files,
//!   written atomically, with progress and cancellation ([`Hooks`]).
//!
//! [`blocking::export`] gives the same as an arrow `RecordBatchReader` for synchronous code.
//! [`partition`] reads a source over several connections in one snapshot (or one part of a
//! plan, anywhere), and [`Client::load`] goes the other way: Arrow batches into a table, with
//! one binary `COPY ... FROM STDIN` in one transaction.
//!
//! ```no_run
//! # async fn run() -> Result<(), pgarrow::Error> {
//! use futures_util::StreamExt;
//!
//! let mut client = pgarrow::Client::connect("postgresql://postgres@localhost/postgres").await?;
//! let mut export = client.export("SELECT * FROM pg_class", &Default::default()).await?;
//! println!("{}", export.schema());
//! while let Some(batch) = export.next().await {
//!     println!("{} rows", batch?.num_rows());
//! }
//! println!("{:?}", export.stats());
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod blocking;
mod bound;
mod catalog;
mod client;
mod copy;
mod create;
mod described;
mod error;
mod estimate;
mod export;
mod geo;
mod hooks;
pub mod incremental;
mod load;
pub mod logging;
pub mod names;
pub mod partition;
mod pipeline;
mod running;
mod source;
mod stats;
mod stop;
mod tables;
mod typedefs;

pub use bound::{BoundResult, BoundStatement};
pub use catalog::column_mappings;
pub use client::{Client, IntoConfig};
pub use copy::{CopyOptions, CopyStats, Domains, copy};
pub use described::{DescribedSource, ExportOptions};
pub use error::{Category, Error, ErrorKind, Result};
pub use export::{CANCEL_REQUEST_TIMEOUT, Export};
pub use hooks::Hooks;
pub use load::{CreateNested, LoadMode, LoadOptions, LoadProgress, LoadStats};
pub use pipeline::FileTarget;
pub use source::Source;
pub use stats::ExportStats;
pub use stop::Stop;
pub use tables::{TablesExport, TablesStats, export_tables};

/// How PostgreSQL types become Arrow types: type mappings, the catalog they are made from,
/// and the metadata keys of the fields.
pub use pgarrow_decode::mapping;
/// What to do where a value has no exact Arrow form ([`policy::Policies`]), and the count of
/// each conversion made ([`policy::LossReport`]).
pub use pgarrow_decode::policy;
/// Type OIDs and the scalar decoders ([`types::ColumnKind`]).
pub use pgarrow_decode::types;
pub use pgarrow_decode::{
    ColumnMapping, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, DecodeOptions, PgColumn,
};
/// A load's encoder error ([`ErrorKind::Encode`]): what was wrong with a value or a column
/// ([`encode::ErrorKind`]), in which column, at which row and where inside a nested value.
pub use pgarrow_encode::error as encode;
/// What a load does with an input value its column cannot hold exactly
/// ([`LoadOptions::policies`]).
pub use pgarrow_encode::{EncodePolicies, Nanoseconds};
/// Bytes in and out of Arrow, with no PostgreSQL: the output formats and their writer
/// ([`io::Sink`]), the inputs of a load ([`io::Input`]), object stores ([`io::Location`]) and
/// the manifest of a directory ([`io::Manifest`]), with their error ([`io::Error`]).
pub use pgarrow_io as io;
/// The wire-protocol crate, for its error kinds ([`protocol::ErrorKind`]) and settings.
/// The wire protocol client: [`Config`](protocol::Config) (what [`Client::connect`] takes,
/// besides URLs), [`Connection`](protocol::Connection), [`DbError`](protocol::DbError), the
/// cancel token; reachable only here, so that each item has one path.
pub use pgarrow_protocol as protocol;

/// The book's "As a library" page (`docs/src/library.md`), whose Rust examples are compiled
/// (and run, unless marked `no_run`) by `cargo test -p pgarrow --doc`, so that none goes
/// stale. `crates/pgarrow-cli/tests/docs.rs` checks that every page with a Rust example is
/// included here.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/src/library.md")]
pub struct LibraryChapter;
