//! Reading the lake at a source point: for a WAL position, a time, or the latest point the
//! mirror finished, the snapshot or version of each lake table that holds the source as it
//! was there, and the statements that open them.
//!
//! A commit round brings every table with changes to one transaction boundary and records it
//! (DuckLake and Iceberg in one catalog operation; Delta table by table, and a run killed
//! between them brings the others to it first): a table's newest commit at or before a point
//! holds it as the source had it there, the changes after being in later commits. The slot
//! confirms a round only once all its tables committed, so every point up to what the slot
//! confirmed is whole, whatever the format.

use std::collections::BTreeMap;

use pgarrow::names::TableName;
use pgarrow::protocol::{Config, Connection, quote_literal};
use pgarrow::{Error, ErrorKind, IntoConfig, Result};
use pgarrow_protocol::replication::Lsn;
use serde::Serialize;

use crate::delta::mirror::DeltaMirror;
use crate::ducklake::mirror::DuckLakeMirror;
use crate::iceberg::mirror::IcebergMirror;
use crate::live::MirrorPoint;
use crate::target::LakeTarget;

/// The source point to read the lake at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcePoint {
    /// The latest point every table holds whole: what the slot confirmed (without the slot,
    /// the tables' furthest recorded position).
    Latest,
    /// A WAL position: the lake as the source was there (a later one is taken as the latest).
    Lsn(Lsn),
    /// A time (microseconds since 1970-01-01 UTC): the latest recorded position whose
    /// transaction committed on the source at or before it.
    Time(i64),
}

impl std::str::FromStr for SourcePoint {
    type Err = Error;

    /// `latest`, or a WAL position (`16/B374D848`); a time goes through [`mirror_at_text`],
    /// which has the source read it.
    fn from_str(s: &str) -> Result<SourcePoint> {
        match s.trim() {
            "latest" => Ok(SourcePoint::Latest),
            t => t.parse().map(SourcePoint::Lsn).map_err(|_| {
                Error::usage(format!(
                    "{s:?} is neither `latest` nor a WAL position (such as 16/B374D848)"
                ))
            }),
        }
    }
}

/// The lake at a source point, as [`mirror_at`] finds it.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct LakePoint {
    /// The slot whose positions were read.
    pub slot: String,
    /// The point asked for, as text.
    pub asked: String,
    /// The source point the tables are read at (a WAL position): every table's snapshot below
    /// holds the source as it was there.
    pub lsn: String,
    /// When the source committed the transaction at the newest position the tables record at
    /// or before `lsn` (microseconds since 1970-01-01 UTC), when a commit recorded it.
    pub time_us: Option<i64>,
    /// What the slot confirmed: points up to it are whole in every format (`None`: no slot).
    pub confirmed_lsn: Option<String>,
    /// Each table.
    pub tables: Vec<TableAt>,
}

/// One lake table at a [`LakePoint`].
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct TableAt {
    /// The source table (`schema.name`).
    pub table: String,
    /// The lake table.
    pub lake_table: String,
    /// `ducklake`, `delta` or `iceberg`.
    pub format: String,
    /// Its snapshot at the point: a DuckLake snapshot, a Delta version, an Iceberg snapshot
    /// ID (`None`: the table did not exist yet there, or has no commit of the slot).
    pub snapshot: Option<i64>,
    /// The position that snapshot's commit recorded (at or before the point: no change of the
    /// table came between).
    pub recorded_lsn: Option<String>,
    /// Statements that read the table at that snapshot, by reader: `duckdb` (DuckLake),
    /// `spark` (Delta, Iceberg), `deltalake` and `polars` (Delta), `pyiceberg` (Iceberg).
    pub read: BTreeMap<String, String>,
}

/// Finds, for `at`, the snapshot or version of each lake table of the mirror of `tables` into
/// `target` through `slot` (named as [`mirror_to_lake`](super::mirror_to_lake) names them)
/// that holds the source as it was at that point, without running the mirror.
///
/// # Errors
/// The source's (it reads the slot) and the catalogs'; no tables; a time before every commit
/// that records one.
pub async fn mirror_at(
    config: impl IntoConfig,
    tables: &[TableName],
    target: &LakeTarget,
    slot: &str,
    at: &SourcePoint,
) -> Result<LakePoint> {
    let config = config.into_config()?;
    if tables.is_empty() {
        return Err(Error::usage(
            "reading the lake at a point needs at least one table",
        ));
    }
    let confirmed = confirmed_lsn(&config, slot).await?;
    let mut found = Vec::with_capacity(tables.len());
    for table in tables {
        let target = match tables.len() {
            1 => target.clone(),
            _ => target.for_table(table, "public"),
        };
        let history = match &target {
            LakeTarget::DuckLake(t) => DuckLakeMirror::history(t).await?,
            LakeTarget::Delta(t) => DeltaMirror::history(t).await?,
            LakeTarget::Iceberg(t) => IcebergMirror::history(t).await?,
        }
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, p)| p.slot == slot)
        .collect::<Vec<_>>();
        found.push((table, target, history));
    }
    let furthest = found
        .iter()
        .flat_map(|(_, _, h)| h.iter().map(|(_, p)| p.lsn))
        .max();
    // The latest point every table holds whole.
    let whole = confirmed.or(furthest).unwrap_or_default();
    let lsn = match at {
        SourcePoint::Latest => whole,
        SourcePoint::Lsn(l) => (*l).min(whole),
        SourcePoint::Time(t) => found
            .iter()
            .flat_map(|(_, _, h)| h.iter().map(|(_, p)| p))
            .filter(|p| p.time.is_some_and(|pt| pt <= *t))
            .map(|p| p.lsn)
            .max()
            .ok_or_else(|| {
                Error::usage(format!(
                    "no commit of the mirror through slot {slot:?} records a source transaction \
                     committed at or before {} (its export's commit records no time): ask \
                     for a later time or a WAL position",
                    time_text(*t)
                ))
            })?
            .min(whole),
    };
    let mut point = LakePoint {
        slot: slot.to_owned(),
        asked: match at {
            SourcePoint::Latest => "latest".to_owned(),
            SourcePoint::Lsn(l) => l.to_string(),
            SourcePoint::Time(t) => time_text(*t),
        },
        lsn: lsn.to_string(),
        time_us: None,
        confirmed_lsn: confirmed.map(|c| c.to_string()),
        tables: Vec::with_capacity(found.len()),
    };
    let mut newest: Option<&MirrorPoint> = None;
    for (table, target, history) in &found {
        let here = history.iter().rev().find(|(_, p)| p.lsn <= lsn);
        if let Some((_, p)) = here
            && newest.is_none_or(|n| p.lsn > n.lsn)
        {
            newest = Some(p);
        }
        point.tables.push(TableAt {
            table: table.to_string(),
            lake_table: target.name(),
            format: format_name(target).to_owned(),
            snapshot: here.map(|(s, _)| *s),
            recorded_lsn: here.map(|(_, p)| p.lsn.to_string()),
            read: here.map(|(s, _)| readers(target, *s)).unwrap_or_default(),
        });
    }
    point.time_us = newest.and_then(|p| p.time);
    Ok(point)
}

/// [`mirror_at`] with the point as text: `latest`, a WAL position, or a time the source reads
/// (`timestamptz` input, in the session's time zone unless it names one).
///
/// # Errors
/// A time the source does not read; [`mirror_at`]'s.
pub async fn mirror_at_text(
    config: impl IntoConfig,
    tables: &[TableName],
    target: &LakeTarget,
    slot: &str,
    at: &str,
) -> Result<LakePoint> {
    let config = config.into_config()?;
    let point = match at.parse::<SourcePoint>() {
        Ok(p) => p,
        Err(_) => SourcePoint::Time(source_time(&config, at).await?),
    };
    mirror_at(config, tables, target, slot, &point).await
}

/// `text` as the source reads a `timestamptz`, in microseconds since 1970-01-01 UTC.
async fn source_time(config: &Config, text: &str) -> Result<i64> {
    let mut conn = Connection::connect(config)
        .await
        .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
    let sql = format!(
        "SELECT (extract(epoch FROM {}::timestamptz) * 1000000)::bigint::text",
        quote_literal(text)
    );
    let rows = conn.simple_query(&sql).await;
    let _ = conn.close().await;
    let rows = rows.map_err(|e| {
        Error::usage(format!(
            "{text:?} is neither `latest`, a WAL position (such as 16/B374D848) nor a time the \
             source reads: {e}"
        ))
    })?;
    rows.first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Error::usage(format!("{text:?}: the source gave no time for it")))
}

/// What the slot confirmed, if the source has it.
async fn confirmed_lsn(config: &Config, slot: &str) -> Result<Option<Lsn>> {
    let mut conn = Connection::connect(config)
        .await
        .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
    let sql = format!(
        "SELECT confirmed_flush_lsn::text FROM pg_catalog.pg_replication_slots \
         WHERE slot_name = {}",
        quote_literal(slot)
    );
    let rows = conn.simple_query(&sql).await;
    let _ = conn.close().await;
    Ok(rows?
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|t| t.parse().ok()))
}

fn format_name(target: &LakeTarget) -> &'static str {
    match target {
        LakeTarget::DuckLake(_) => "ducklake",
        LakeTarget::Delta(_) => "delta",
        LakeTarget::Iceberg(_) => "iceberg",
    }
}

/// A time as UTC text (`2026-11-29T02:21:24.5Z`).
fn time_text(micros: i64) -> String {
    let (days, rest) = (
        micros.div_euclid(86_400_000_000),
        micros.rem_euclid(86_400_000_000),
    );
    let (y, m, d) = pgarrow_types::civil_from_days(days);
    let mut time = Vec::new();
    pgarrow_types::write_time(rest, &mut time);
    format!("{y:04}-{m:02}-{d:02}T{}Z", String::from_utf8_lossy(&time))
}

/// Double-quoted SQL identifiers, dot-separated.
fn sql_name(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// A Python string literal.
fn py(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// The statements that read `target` at `snapshot`, by reader.
fn readers(target: &LakeTarget, snapshot: i64) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match target {
        LakeTarget::DuckLake(t) => {
            // As DuckDB attached the catalog (`ATTACH 'ducklake:postgres:...' AS lake`).
            out.insert(
                "duckdb".to_owned(),
                format!(
                    "SELECT * FROM lake.{} AT (VERSION => {snapshot})",
                    sql_name(&[&t.schema, &t.table])
                ),
            );
        }
        LakeTarget::Delta(t) => {
            out.insert(
                "spark".to_owned(),
                format!(
                    "SELECT * FROM delta.`{}` VERSION AS OF {snapshot}",
                    t.location.replace('`', "``")
                ),
            );
            out.insert(
                "deltalake".to_owned(),
                // `scan()` applies deletion vectors (deltalake 1.x).
                format!(
                    "pyarrow.table(deltalake.DeltaTable({}, version={snapshot}).scan())",
                    py(&t.location)
                ),
            );
            out.insert(
                "polars".to_owned(),
                format!("polars.read_delta({}, version={snapshot})", py(&t.location)),
            );
        }
        LakeTarget::Iceberg(t) => {
            // As the catalog is named where it is read.
            out.insert(
                "spark".to_owned(),
                format!(
                    "SELECT * FROM {} VERSION AS OF {snapshot}",
                    sql_name(&[&t.catalog_name, &t.namespace, &t.table])
                ),
            );
            out.insert(
                "pyiceberg".to_owned(),
                format!(
                    "catalog.load_table(({}, {})).scan(snapshot_id={snapshot}).to_arrow()",
                    py(&t.namespace),
                    py(&t.table)
                ),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_read_from_text_and_times_print_as_utc() {
        assert_eq!(
            "latest".parse::<SourcePoint>().unwrap(),
            SourcePoint::Latest
        );
        assert_eq!(
            " 16/B374D848 ".parse::<SourcePoint>().unwrap(),
            SourcePoint::Lsn(Lsn(0x16_B374_D848))
        );
        let e = "yesterday".parse::<SourcePoint>().unwrap_err().to_string();
        assert!(e.contains("WAL position"), "{e}");
        assert_eq!(time_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(time_text(1_795_918_884_500_000), "2026-11-29T02:21:24.5Z");
        assert_eq!(time_text(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn read_statements_quote_what_they_name() {
        let catalog = Config::parse("postgresql://localhost/lake").unwrap();
        let target = LakeTarget::from(crate::DuckLakeTarget::new(catalog, "sh\"op", "orders"));
        let read = readers(&target, 12);
        assert_eq!(
            read["duckdb"],
            "SELECT * FROM lake.\"sh\"\"op\".\"orders\" AT (VERSION => 12)"
        );
    }
}
