//! Bytes in and out of Arrow, with no PostgreSQL in sight: what pgarrow writes and reads, and
//! where.
//!
//! * [`Sink`]: batches of one schema into Parquet, Arrow IPC file or stream (or nowhere), to
//!   an [`Output`]: a file written atomically (a temporary file renamed only by
//!   [`Sink::finish`]), standard output, or an object uploaded in parts;
//! * [`Input`]: the batches of files, a directory written by an export (exactly the files its
//!   [`Manifest`] lists), an object, a pattern of objects or a prefix, read as their formats
//!   by ranges and checked before they are trusted;
//! * [`Location`]: a local path or, with the `cloud` feature, an object in S3, GCS or Azure
//!   ([`StorageOptions`], credentials from each cloud's environment and AWS profiles), with
//!   atomic writes, uploads in parts and ranged reads; without the feature a cloud's URL is
//!   refused, naming it;
//! * [`LayoutWriter`]: one export's batches into files laid out by a [`Layout`]: value
//!   partitions as Hive-style directories, files rolled at a row count or a size, within a
//!   memory limit however many partitions are open;
//! * [`Manifest`]: what a directory of files holds (`_manifest.json`), written last;
//! * [`Error`]: what failed, and whether the call must change
//!   ([`is_usage`](Error::is_usage)).
//!
//! The engine (`pgarrow`) wraps [`Error`] in its own; the formats' edge cases (intervals in
//! Parquet, files from other writers) are the sink's and the input's business.
#![warn(missing_docs)]

mod error;
mod input;
mod layout;
mod manifest;
mod sink;
mod store;
pub mod variant;

pub use error::{Error, Result};
pub use input::{
    DEFAULT_INPUT_BATCH_ROWS, Input, InputOptions, MappedField, NameMapping, TableFile, cast_exact,
};
pub use layout::{
    HIVE_NULL, Layout, LayoutWriter, PartitionField, PartitionValue, Transform, WrittenFile,
};
pub use manifest::{DirTarget, MANIFEST_NAME, MANIFEST_VERSION, Manifest, ManifestFile};
pub use sink::{
    BloomFilter, ColumnEncoding, Compression, DEFAULT_ROW_GROUP_BYTES, EncodedRowGroup, Encoding,
    FieldIds, Format, IntervalEncoding, META_FORM, META_INTERVAL_ENCODING, Output, Remote,
    RemoteWrite, RowGroupEncoder, RowGroupEncoders, RowGroupFile, Sink, SinkOptions, SortKey,
    ValueForms, compatible_batch, compatible_schema, parquet_compatible_schema, with_field_ids,
    with_field_ids_from,
};
#[cfg(feature = "cloud")]
pub use store::ObjectLocation;
pub use store::{
    Cloud, DEFAULT_MAX_IN_FLIGHT, DEFAULT_PART_SIZE, Location, StorageError, StorageOptions,
    StorageProblem,
};

/// The panic hook of a program that reads files through [`Input`]: some readers panic on
/// malformed data, which pgarrow catches and reports as an input error naming the file.
pub mod panic {
    pub use crate::input::{in_caught_reader, quiet_caught_reader_panics};
}
