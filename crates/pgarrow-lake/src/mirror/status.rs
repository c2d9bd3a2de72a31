//! Where a mirror is, read without running it: its slot on the source (what it confirmed, how
//! far the server's WAL is past it) and each lake table's recorded position and snapshot.

use pgarrow::names::TableName;
use pgarrow::protocol::{Config, Connection, quote_literal};
use pgarrow::{Error, ErrorKind, IntoConfig, Result};
use serde::Serialize;

use crate::delta::mirror::DeltaMirror;
use crate::ducklake::mirror::DuckLakeMirror;
use crate::iceberg::mirror::IcebergMirror;
use crate::live::MirrorPoint;
use crate::target::LakeTarget;

/// A mirror's slot and tables, as [`mirror_status`] reads them.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct MirrorStatus {
    /// The slot.
    pub slot: String,
    /// Whether the source has it.
    pub slot_exists: bool,
    /// Whether a session is reading it now (a mirror running).
    pub active: bool,
    /// Its `wal_status` (`reserved`, `extended`, `unreserved`, `lost`; PostgreSQL 13+).
    pub wal_status: Option<String>,
    /// What it confirmed: every table holds the changes before it.
    pub confirmed_lsn: Option<String>,
    /// The source's WAL position now (where its next record goes).
    pub server_lsn: String,
    /// How far the source's WAL is past what the slot confirmed, in bytes.
    pub lag_bytes: Option<u64>,
    /// Each table.
    pub tables: Vec<TableStatus>,
}

/// A mirrored table's lake table, as [`mirror_status`] reads it.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct TableStatus {
    /// The source table (`schema.name`).
    pub table: String,
    /// The lake table.
    pub lake_table: String,
    /// Whether the lake table exists.
    pub exists: bool,
    /// The position its newest commit recorded for this slot (`None`: none; another slot's
    /// mirror, or not a mirror's table).
    pub lsn: Option<String>,
    /// Its snapshot or version now (DuckLake snapshot, Delta version, Iceberg snapshot ID).
    pub snapshot: Option<i64>,
    /// How far the source's WAL is past the table's position, in bytes.
    pub behind_bytes: Option<u64>,
}

/// Reads where the mirror of `tables` into `target` through `slot` is (`target` itself for
/// one table, else named for each, as [`mirror_to_lake`](super::mirror_to_lake) names them),
/// without running it: the slot's state on the source, and each lake table's position.
///
/// # Errors
/// The source's and the catalogs'; no tables.
pub async fn mirror_status(
    config: impl IntoConfig,
    tables: &[TableName],
    target: &LakeTarget,
    slot: &str,
) -> Result<MirrorStatus> {
    let config = config.into_config()?;
    if tables.is_empty() {
        return Err(Error::usage("a mirror's status needs at least one table"));
    }
    let mut status = slot_status(&config, slot).await?;
    let server = super::metrics::parse_lsn(&status.server_lsn);
    for table in tables {
        let target = match tables.len() {
            1 => target.clone(),
            _ => target.for_table(table, "public"),
        };
        let (exists, points, snapshot) = match &target {
            LakeTarget::DuckLake(t) => match DuckLakeMirror::position(t).await? {
                Some((point, snapshot)) => (true, point.into_iter().collect(), snapshot),
                None => (false, Vec::new(), None),
            },
            LakeTarget::Delta(t) => match DeltaMirror::position(t).await? {
                Some((points, version)) => (true, points, Some(version)),
                None => (false, Vec::new(), None),
            },
            LakeTarget::Iceberg(t) => match IcebergMirror::position(t).await? {
                Some((point, snapshot)) => (true, point.into_iter().collect(), snapshot),
                None => (false, Vec::new(), None),
            },
        };
        let mine: Option<&MirrorPoint> = points.iter().find(|p| p.slot == slot);
        status.tables.push(TableStatus {
            table: table.to_string(),
            lake_table: target.name(),
            exists,
            lsn: mine.map(|p| p.lsn.to_string()),
            snapshot,
            behind_bytes: mine.and_then(|p| Some(server?.saturating_sub(p.lsn.0))),
        });
    }
    Ok(status)
}

/// The slot's state and the server's WAL position.
async fn slot_status(config: &Config, slot: &str) -> Result<MirrorStatus> {
    let mut conn = Connection::connect(config)
        .await
        .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
    let wal_status = match conn.server_version_num() >= 130000 {
        true => "wal_status::text",
        false => "NULL::text",
    };
    let sql = format!(
        "SELECT pg_catalog.pg_current_wal_insert_lsn()::text, s.active::text, {wal_status}, \
         s.confirmed_flush_lsn::text, \
         (pg_catalog.pg_current_wal_insert_lsn() - s.confirmed_flush_lsn)::bigint::text \
         FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_replication_slots s \
         ON s.slot_name = {}",
        quote_literal(slot)
    );
    let rows = conn.simple_query(&sql).await;
    let _ = conn.close().await;
    let row = rows?.into_iter().next().unwrap_or_default();
    let text = |i: usize| row.get(i).cloned().flatten();
    Ok(MirrorStatus {
        slot: slot.to_owned(),
        slot_exists: text(1).is_some(),
        active: text(1).as_deref() == Some("true"),
        wal_status: text(2),
        confirmed_lsn: text(3),
        server_lsn: text(0).unwrap_or_default(),
        lag_bytes: text(4)
            .and_then(|b| b.parse::<i64>().ok())
            .map(|b| b.max(0) as u64),
        tables: Vec::new(),
    })
}
