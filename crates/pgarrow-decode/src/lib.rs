//! PostgreSQL binary COPY format to Apache Arrow.
//!
//! [`CopyDecoder`] is a push decoder: hand it bytes of a `COPY ... TO STDOUT (FORMAT binary)`
//! stream split anywhere, get Arrow [`RecordBatch`](arrow_array::RecordBatch)es out. Each
//! column gets one typed decoder chosen from its PostgreSQL type OID and typmod
//! ([`types::ColumnKind::for_type`]); the values go straight into vectors that become Arrow buffers
//! without a copy. There are no sockets here: the decoder is fed by the network client, by a
//! file written with `COPY ... TO 'file' (FORMAT binary)`, by a fuzzer or by a benchmark.
//!
//! What describes PostgreSQL rather than Arrow (type OIDs, [`PgColumn`], the catalog model
//! [`mapping::Catalog`], the ±infinity values) is `pgarrow-types`', shared with the encoder and
//! re-exported here where it always was.
//!
//! Values that Arrow cannot hold exactly (infinite dates and timestamps, numeric NaN, a
//! `time` of 24:00:00, ...) are errors naming the row and column, never silently changed.
//!
//! ```
//! use pgarrow_decode::{CopyDecoder, DecodeOptions, PgColumn, types::oid};
//!
//! let columns = vec![PgColumn::new("id", oid::INT8, -1), PgColumn::new("name", oid::TEXT, -1)];
//! let decoder = CopyDecoder::new(columns, DecodeOptions::default())?;
//! assert_eq!(decoder.schema().field(1).name(), "name");
//! # Ok::<(), pgarrow_decode::Error>(())
//! ```
#![warn(missing_docs)]

mod buffers;
mod column;
mod column_mapping;
mod decoder;
mod error;
mod geo;
pub mod mapping;
mod nested;
pub mod numeric;
mod peek;
pub mod policy;
mod recycle;
pub mod types;
pub mod wire;

pub use column_mapping::{ColumnMapping, Constraints};
pub use decoder::{
    CopyDecoder, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, DecodeOptions, MAX_BATCH_BYTES, SIGNATURE,
};
pub use error::{
    Error, ErrorKind, FieldError, Refusal, Result, Special, Unrepresentable, WireType,
};
pub use peek::ArrayDepths;
/// A result column as the server describes it, from `pgarrow-types`.
pub use pgarrow_types::PgColumn;
