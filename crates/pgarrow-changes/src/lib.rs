//! The change stream: a logical replication slot's changes as Arrow batches
//! ([`ChangeStream`]), written into rolled files with a manifest of LSN ranges
//! ([`changes_to`]), applied to a PostgreSQL table ([`apply_changes`]), and the hand-off from
//! an export to the stream ([`slot`]).
//!
//! [`ChangeStream`] opens a replication connection, runs `START_REPLICATION` on a slot with
//! the `pgoutput` plugin and a set of publications, and turns what arrives into
//! [`ChangeEvent`]s: a table's schema (before its first rows, and again, announced, when a
//! `Relation` message changes it), batches of a table's changed rows, and checkpoints. Values
//! come in their binary send format (`binary 'true'`, PostgreSQL 14+) and are decoded by the
//! export's per-column decoders ([`RelationDecoder`]); on PostgreSQL 13, or when asked, they
//! come as text and every column is text.
//!
//! # Exactly once
//! A [`ChangeEvent::Checkpoint`] says that every change committed up to its LSN was in the
//! events before it. Once those rows are durable wherever they went, call
//! [`ChangeStream::confirm`]: the slot's `confirmed_flush_lsn` follows, and a new stream on the
//! slot starts after it. A stream started at a later position ([`ChangeOptions::start`], a
//! manifest's end) skips the transactions committed before it, so rows made durable but not
//! yet confirmed when a process died are not delivered twice. Only committed transactions are
//! delivered, so a checkpoint always falls between transactions: on PostgreSQL 14+ the server
//! streams a large transaction in parts before its commit ([`ChangeOptions::streaming`]); the
//! parts are set aside on local disk and delivered at the commit, in commit order (an aborted
//! one leaves nothing). Before 14, the server holds it and sends it once committed.
//!
//! [`changes_to`] is the whole loop for files: one file set per table, rolled by rows, bytes or
//! seconds, named by LSN range, written atomically, with a manifest of LSN ranges
//! ([`ChangesManifest`]).

#![warn(missing_docs)]

mod apply;
mod decode;
mod files;
pub mod net;
pub mod slot;
mod stream;
mod streamed;

pub use apply::{
    APPLIED_TABLE, ApplyOptions, ApplyStats, Roll, apply_changes, read_manifest, rolls,
};
pub use decode::{
    COMMIT_LSN_COLUMN, COMMIT_TIME_COLUMN, LSN_COLUMN, META_DEFAULTS, META_KEY, META_LSN,
    META_RELATION_OID, META_REPLICA_IDENTITY, META_TABLE, META_VALUES, OLD_COLUMN, OP_COLUMN,
    UNCHANGED_COLUMN, XID_COLUMN,
};
pub use decode::{ChangeAt, Op, RelationDecoder};
pub use files::{
    CHANGES_MANIFEST, ChangeTarget, ChangesFile, ChangesManifest, ChangesProgress, ChangesStats,
    changes_to,
};
pub use stream::{
    ChangeBatch, ChangeEvent, ChangeOptions, ChangeStream, StreamPositions, TableSchema,
    ValueFormat,
};
pub use streamed::StreamedStats;

/// A duration as seconds (a float), as every document of pgarrow writes times.
fn seconds<S: serde::Serializer>(
    d: &std::time::Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_secs_f64())
}
