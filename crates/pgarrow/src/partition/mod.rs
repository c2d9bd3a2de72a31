//! Exports over several connections, reading disjoint parts of one consistent snapshot.
//!
//! One connection is one server backend, and on a plain table the backend is the limit: the
//! decoder keeps up with it. A partitioned export splits the source into parts and reads them
//! over several connections at once:
//!
//! 1. **One snapshot.** A coordinating connection opens a `REPEATABLE READ, READ ONLY`
//!    transaction and exports its snapshot (`pg_export_snapshot()`); every worker connection
//!    imports it (`SET TRANSACTION SNAPSHOT`) before reading, so the parts together are the
//!    table as of one instant, whatever commits meanwhile. [`SnapshotMode::PerConnection`]
//!    gives each connection its own snapshot instead, for servers that cannot export one.
//! 2. **Parts.** A `--table` export is split into physical block ranges
//!    (`ctid >= '(a,0)' AND ctid < '(b,0)'`, a TID range scan on PostgreSQL 14+), sized from
//!    the relation's size on disk (`pg_relation_size`): no COUNT or MIN/MAX scan. Partitioned
//!    tables and inheritance parents are expanded to their leaves, each read with `ONLY`.
//!    With [`PartitionOptions::by`], an integer, date or timestamp column is split into key
//!    ranges instead (bounds from the `pg_stats` histogram, else from its MIN and MAX), which
//!    also works for queries. Without either, a query is one part.
//! 3. **A shared queue.** There are more parts than connections (four per connection, but no
//!    smaller than [`MIN_PART_BYTES`] on disk, unless [`PartitionOptions::parts`] says
//!    otherwise), and each connection takes the next part when it finishes one, so a faster
//!    connection reads more.
//! 4. **Bounded memory.** Batches and encoded row groups waiting between the connections and
//!    the writer are counted against [`PartitionOptions::memory_limit`]; a connection that
//!    would exceed it waits (and the server then waits on its socket).
//!
//! The [`PartitionPlan`] (parts, snapshot, schema) is plain data that serializes to JSON: an
//! external scheduler can plan once, hold the snapshot with [`Coordinator`], and run each part
//! anywhere with [`export_part`].
//!
//! ```no_run
//! # async fn run() -> Result<(), pgarrow::Error> {
//! use pgarrow::partition::{PartitionOptions, PartitionedExport};
//! use pgarrow::Source;
//!
//! let options = PartitionOptions::new(4);
//! let mut export = PartitionedExport::start(
//!     "postgresql://postgres@localhost/db",
//!     Source::table("orders")?,
//!     &Default::default(),
//!     &options,
//! )
//! .await?;
//! while let Some((part, batch)) = export.next_batch().await? {
//!     println!("part {part}: {} rows", batch.num_rows());
//! }
//! # Ok(())
//! # }
//! ```

use crate::{Error, Result};
use pgarrow_types::ChoiceError;

mod budget;
mod files;
mod hold;
mod plan;
mod run;
mod split;
mod worker;

pub use files::{ExportedFiles, export_files, export_part_to_file, export_to_dir, export_to_file};
pub use hold::{Holder, NOTIFY_CHANNEL, Released};
pub use plan::ArrayDims;
pub use plan::{
    Coordinator, Part, PartRange, PartRead, PartitionPlan, export_part, export_part_with,
};
pub use run::{PartResult, PartitionedExport, PartitionedStats};

/// The smallest part the default plan makes of a table (on disk): 16 MiB.
pub const MIN_PART_BYTES: u64 = 16 << 20;

/// The default [`PartitionOptions::memory_limit`]: 1 GiB.
pub const DEFAULT_MEMORY_LIMIT: usize = 1 << 30;

/// How the connections of a partitioned export see the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotMode {
    /// One snapshot, exported by the coordinating connection and imported by every worker:
    /// the parts together are the source as of one instant.
    #[default]
    Shared,
    /// Each connection takes its own snapshot when it starts reading: rows committed between
    /// two connections' starts may be seen by one part and not another, or moved between
    /// parts (duplicated or missed). For servers that cannot export snapshots.
    PerConnection,
}

impl std::str::FromStr for SnapshotMode {
    type Err = Error;

    /// `shared` or `per-connection`: the CLI's `--snapshot` and Python's `snapshot=`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "shared" => Ok(SnapshotMode::Shared),
            "per-connection" => Ok(SnapshotMode::PerConnection),
            other => {
                Err(ChoiceError::new("snapshot mode", other, "shared or per-connection").into())
            }
        }
    }
}

impl std::fmt::Display for SnapshotMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SnapshotMode::Shared => "shared",
            SnapshotMode::PerConnection => "per-connection",
        })
    }
}

/// How to split an export over connections: [`PartitionOptions::new`], then `with_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionOptions {
    /// Connections reading at once (at least 1).
    pub connections: usize,
    /// Parts to plan; `None`: four per connection (block ranges: no smaller than
    /// [`MIN_PART_BYTES`], but at least one per connection).
    pub parts: Option<usize>,
    /// Split on this result column's values (an integer, date or timestamp column) instead of
    /// block ranges; required to split a query.
    pub by: Option<String>,
    /// One shared snapshot (the default), or one per connection.
    pub snapshot: SnapshotMode,
    /// Read in this exported snapshot instead of taking one (with [`SnapshotMode::Shared`]):
    /// the `pg_export_snapshot()` of a transaction the caller keeps open, or the snapshot a
    /// replication slot exported as it was created, while its connection stays idle.
    pub import_snapshot: Option<String>,
    /// Where the imported snapshot stands in the WAL, when the caller knows (a slot's
    /// consistent point): the plan's and the manifest's `wal_lsn`.
    pub snapshot_lsn: Option<String>,
    /// The replication slot the imported snapshot is of, for the plan and the manifest.
    pub replication_slot: Option<String>,
    /// Bytes that batches and encoded row groups in flight may take, together, at most.
    pub memory_limit: usize,
    /// Write a single output in the source's order (parts in plan order, block ranges in table
    /// order): parts that finish early wait in memory, within the limit, for those before.
    pub order_preserving: bool,
}

impl PartitionOptions {
    /// `connections` connections, with every other option at its default.
    pub fn new(connections: usize) -> Self {
        PartitionOptions {
            connections: connections.max(1),
            parts: None,
            by: None,
            snapshot: SnapshotMode::Shared,
            import_snapshot: None,
            snapshot_lsn: None,
            replication_slot: None,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            order_preserving: false,
        }
    }

    /// `connections` connections reading at once (at least 1).
    pub fn with_connections(mut self, connections: usize) -> Self {
        self.connections = connections.max(1);
        self
    }

    /// Split on `column`'s values.
    pub fn with_by(mut self, column: impl Into<String>) -> Self {
        self.by = Some(column.into());
        self
    }

    /// Plan `parts` parts.
    pub fn with_parts(mut self, parts: usize) -> Self {
        self.parts = Some(parts.max(1));
        self
    }

    /// The snapshot mode.
    pub fn with_snapshot(mut self, mode: SnapshotMode) -> Self {
        self.snapshot = mode;
        self
    }

    /// Read in the exported snapshot `id` (see [`PartitionOptions::import_snapshot`]).
    pub fn with_import_snapshot(mut self, id: impl Into<String>) -> Self {
        self.import_snapshot = Some(id.into());
        self
    }

    /// Read in the snapshot replication slot `slot` exported as it was created, whose changes
    /// start at `lsn` (its consistent point): see `pgarrow_changes::slot`.
    pub fn with_import_snapshot_at(
        mut self,
        id: impl Into<String>,
        slot: impl Into<String>,
        lsn: impl Into<String>,
    ) -> Self {
        self.import_snapshot = Some(id.into());
        self.replication_slot = Some(slot.into());
        self.snapshot_lsn = Some(lsn.into());
        self
    }

    /// The memory limit, in bytes.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Keep the source's order in a single output.
    pub fn with_order_preserving(mut self, yes: bool) -> Self {
        self.order_preserving = yes;
        self
    }

    /// The number of parts to plan; for a source of `bytes` on disk, the default stops at one
    /// part per [`MIN_PART_BYTES`] (but gives each connection one): small parts cost a COPY
    /// each, and as files of their own (`--output-dir`) they compress worse.
    /// It is a multiple of the connections, so that none is left reading the last part alone
    /// for long.
    pub(crate) fn planned_parts(&self, bytes: Option<u64>) -> usize {
        let n = self.connections;
        let by_default = match bytes {
            Some(b) => (n * 4)
                .min((b.div_ceil(MIN_PART_BYTES) as usize).next_multiple_of(n))
                .max(n),
            None => n * 4,
        };
        self.parts.unwrap_or(by_default).max(1)
    }
}

/// Parses a byte size: `1073741824`, `512MiB`, `1GiB`, `64MB`, `2G`.
///
/// # Errors
/// Not a number with an optional unit (B, kB/KiB, MB/MiB, GB/GiB, TB/TiB, or K/M/G/T).
pub fn parse_size(s: &str) -> Result<usize> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().map_err(|_| {
        Error::usage(format!(
            "invalid size \"{s}\": expected a number of bytes such as 512MiB"
        ))
    })?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        "t" | "tib" => 1024.0f64.powi(4),
        "tb" => 1e12,
        other => {
            return Err(Error::usage(format!(
                "invalid size \"{s}\": unknown unit \"{other}\" (use B, KiB, MiB, GiB, kB, MB, GB)"
            )));
        }
    };
    let bytes = number * factor;
    if !(1.0..=usize::MAX as f64).contains(&bytes) {
        return Err(Error::usage(format!(
            "invalid size \"{s}\": must be at least one byte"
        )));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::load::tests::round_trips;

    #[test]
    fn snapshot_modes_round_trip() {
        round_trips::<SnapshotMode>(
            &["shared", "per-connection"],
            "per_connection",
            "shared or per-connection",
        );
    }

    #[test]
    fn a_bad_size_is_a_usage_error() {
        for bad in ["", "12 parsecs", "0", "-1MiB"] {
            assert!(parse_size(bad).unwrap_err().is_usage(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("64MB").unwrap(), 64_000_000);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        for bad in ["", "0", "MiB", "12 parsecs", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options() {
        let o = PartitionOptions::new(0);
        assert_eq!(o.connections, 1);
        assert_eq!(o.planned_parts(None), 4);
        assert_eq!(
            PartitionOptions::new(3).with_parts(0).planned_parts(None),
            1
        );
        let four = PartitionOptions::new(4);
        assert_eq!(four.planned_parts(Some(10 << 30)), 16);
        assert_eq!(four.planned_parts(Some(100 << 20)), 8);
        assert_eq!(four.planned_parts(Some(1 << 20)), 4);
        assert_eq!(four.with_parts(7).planned_parts(Some(1 << 20)), 7);
        assert_eq!(
            "per-connection".parse::<SnapshotMode>().unwrap(),
            SnapshotMode::PerConnection
        );
        assert!("none".parse::<SnapshotMode>().is_err());
    }
}
