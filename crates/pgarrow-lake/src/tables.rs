//! Several tables into lake tables of their own, every one read in one PostgreSQL snapshot: a
//! transaction held open while each table's export reads in its exported snapshot
//! (`pg_export_snapshot()`), so that the tables agree with one another as the database did at
//! one moment. Each table is its own commit (a table's readers see it before or after its
//! export, never between); an export that fails leaves the tables committed before it.
//!
//! ```no_run
//! # async fn run() -> pgarrow::Result<()> {
//! use pgarrow::names::TablePattern;
//! use pgarrow::partition::PartitionOptions;
//! use pgarrow_lake::{DeltaTarget, SharedSnapshot, export_to_delta};
//! let url = "postgresql://localhost/shop";
//! let patterns = vec![TablePattern::parse("public.*")?];
//! let shared = SharedSnapshot::begin(url, &patterns).await?;
//! for table in shared.tables().to_vec() {
//!     let target = DeltaTarget::new(format!("s3://bucket/lake/{}", table.name));
//!     let partitions = shared.partitions(&PartitionOptions::new(2));
//!     export_to_delta(url, table, &Default::default(), &partitions, &target, Default::default())
//!         .await?;
//! }
//! shared.end().await?;
//! # Ok(())
//! # }
//! ```

use pgarrow::names::{TableName, TablePattern, resolve};
use pgarrow::partition::PartitionOptions;
use pgarrow::protocol::Connection;
use pgarrow::{Error, ErrorKind, IntoConfig, Result};

/// A snapshot several exports read in, held by an open transaction, and the tables the
/// patterns named in it.
pub struct SharedSnapshot {
    conn: Connection,
    id: String,
    tables: Vec<TableName>,
}

impl std::fmt::Debug for SharedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSnapshot")
            .field("id", &self.id)
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl SharedSnapshot {
    /// Connects, opens the `REPEATABLE READ, READ ONLY` transaction whose snapshot every table
    /// is read in, exports that snapshot, and resolves `patterns` into tables (in schema and
    /// name order; a partition is left out when its partitioned table is in).
    ///
    /// # Errors
    /// Connecting; a server that cannot export a snapshot (a standby before PostgreSQL 10); a
    /// pattern that matches nothing.
    pub async fn begin(
        config: impl IntoConfig,
        patterns: &[TablePattern],
    ) -> Result<SharedSnapshot> {
        let config = config.into_config()?;
        let mut conn = Connection::connect(&config)
            .await
            .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
        conn.simple_query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let rows = conn
            .simple_query("SELECT pg_catalog.pg_export_snapshot()")
            .await?;
        let id = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .ok_or_else(|| {
                Error::from(ErrorKind::Unexpected(
                    "pg_export_snapshot() returned no snapshot".into(),
                ))
            })?;
        let tables = resolve(&mut conn, patterns).await?;
        Ok(SharedSnapshot { conn, id, tables })
    }

    /// The tables, in schema and name order.
    pub fn tables(&self) -> &[TableName] {
        &self.tables
    }

    /// `partitions`, reading in the shared snapshot.
    pub fn partitions(&self, partitions: &PartitionOptions) -> PartitionOptions {
        partitions.clone().with_import_snapshot(self.id.clone())
    }

    /// Ends the transaction, once every export has read.
    ///
    /// # Errors
    /// The server's.
    pub async fn end(mut self) -> Result<()> {
        self.conn.simple_query("COMMIT").await?;
        let _ = self.conn.close().await;
        Ok(())
    }
}
