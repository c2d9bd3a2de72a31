//! Planning a partitioned export: the plan (plain data, JSON), the coordinating transaction and
//! its snapshot, the array depths settled before the parts start, and starting one part's
//! export. How a source is cut into parts is in `split`.

use std::sync::Arc;

use arrow_schema::Schema;
use serde::{Deserialize, Serialize};

pub use super::split::Part;
use crate::described::copy_statement;
use crate::export::ConnSlot;
use crate::protocol::{Connection, quote_ident, quote_literal};
use crate::{
    Client, ColumnMapping, DescribedSource, Error, Export, ExportOptions, IntoConfig, Result,
    Source,
};
pub use pgarrow_types::PartRange;

use super::{PartitionOptions, SnapshotMode};

/// The version of the plan's JSON form ([`PartitionPlan::pgarrow_plan`]).
const PLAN_VERSION: u32 = 1;

/// A partitioned export, planned: what each part reads, and the snapshot they share.
///
/// It is plain data, and its JSON form (`serde_json`) is what `pgarrow plan` prints: a
/// scheduler hands each part to a worker, which runs it with [`export_part`] while the
/// [`Coordinator`] that made the plan holds the snapshot open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PartitionPlan {
    /// The version of this format (1).
    pub pgarrow_plan: u32,
    /// The whole source as one SELECT (identifiers quoted).
    pub source: String,
    /// The exported snapshot every part reads in (`pg_export_snapshot()`), unless each
    /// connection takes its own.
    pub snapshot: Option<String>,
    /// The server's WAL position when the snapshot was taken (the replay position on a
    /// standby): where a change stream would start to follow this export.
    pub wal_lsn: Option<String>,
    /// `server_version_num` of the server planned on.
    pub server_version: u32,
    /// Array columns whose depth comes from the data, with the depth the plan fixed (from the
    /// source's first rows) so that every part writes the same schema.
    pub array_dims: Vec<ArrayDims>,
    /// The Arrow schema every part's batches have.
    pub schema: Schema,
    /// The parts, in the source's order.
    pub parts: Vec<Part>,
    /// When set, each part's reader notifies this channel (`pg_notify`) as it starts, with
    /// the payload `"<snapshot> <part> start"`, and as its transaction commits at the end of
    /// the part, with `"<snapshot> <part> end"`: how a [`Holder`](super::Holder) follows the
    /// reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// The logical replication slot whose snapshot the parts read in
    /// ([`PartitionOptions::with_import_snapshot_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_slot: Option<String>,
}

/// An array column's depth, fixed by the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayDims {
    /// The column's position (0-based).
    pub column: usize,
    /// Its dimensions.
    pub dims: usize,
}

/// What a worker reads of its part: all of it by default, or some columns, the rows matching
/// a condition, at most some rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartRead {
    /// The columns, in this order (names of the plan's schema); all when `None`.
    pub columns: Option<Vec<String>>,
    /// A SQL boolean expression over the part's result columns.
    pub filter: Option<String>,
    /// At most this many rows.
    pub limit: Option<u64>,
}

impl PartRead {
    /// The whole part.
    pub fn new() -> PartRead {
        PartRead::default()
    }

    /// Only `columns`, in this order.
    pub fn with_columns(mut self, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Only the rows for which `condition` (SQL over the result columns) is true.
    pub fn with_filter(mut self, condition: impl Into<String>) -> Self {
        self.filter = Some(condition.into());
        self
    }

    /// At most `rows` rows.
    pub fn with_limit(mut self, rows: u64) -> Self {
        self.limit = Some(rows);
        self
    }

    /// The described columns narrowed to this read, with the SELECT that reads it of `part`.
    fn apply(&self, columns: &DescribedSource, part: &Part) -> Result<(DescribedSource, String)> {
        if self.columns.is_none() && self.filter.is_none() && self.limit.is_none() {
            return Ok((columns.clone(), part.sql.clone()));
        }
        let mut narrowed = columns.clone();
        let select = match &self.columns {
            None => "*".to_owned(),
            Some(names) => {
                let mut picked = Vec::with_capacity(names.len());
                for name in names {
                    let mut found = columns.columns.iter().filter(|c| &c.column.name == name);
                    match (found.next(), found.next()) {
                        (Some(c), None) => picked.push(c.clone()),
                        (None, _) => {
                            return Err(Error::usage(format!(
                                "the plan has no column {name:?}; its columns are {}",
                                field_list(&columns.schema)
                            )));
                        }
                        (Some(_), Some(_)) => {
                            return Err(Error::usage(format!(
                                "the plan has several columns named {name:?}: it cannot be \
                                 picked by name"
                            )));
                        }
                    }
                }
                narrowed.schema = schema_of(&picked);
                narrowed.columns = picked;
                names
                    .iter()
                    .map(|n| quote_ident(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let mut sql = format!("SELECT {select} FROM ({}\n) AS _pgarrow_read", part.sql);
        if let Some(filter) = &self.filter {
            sql.push_str(&format!("\nWHERE ({filter}\n)"));
        }
        if let Some(limit) = self.limit {
            sql.push_str(&format!("\nLIMIT {limit}"));
        }
        Ok((narrowed, sql))
    }
}

impl PartitionPlan {
    /// The plan from its JSON form.
    ///
    /// # Errors
    /// Not a plan pgarrow wrote, or one of another version.
    pub fn from_json(json: &str) -> Result<PartitionPlan> {
        let plan: PartitionPlan = serde_json::from_str(json)
            .map_err(|e| Error::usage(format!("not a pgarrow plan: {e}")))?;
        if plan.pgarrow_plan != PLAN_VERSION {
            return Err(Error::usage(format!(
                "plan format {} is not supported by this pgarrow (it reads format {PLAN_VERSION})",
                plan.pgarrow_plan
            )));
        }
        Ok(plan)
    }

    /// The plan as JSON, indented.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan always serializes")
    }

    /// Part number `index` (its [`Part::part`]; a plan trimmed to some of its parts keeps
    /// their numbers).
    ///
    /// # Errors
    /// There is no such part.
    pub fn part(&self, index: usize) -> Result<&Part> {
        let found = match self.parts.get(index) {
            Some(p) if p.part == index => Some(p),
            _ => self.parts.iter().find(|p| p.part == index),
        };
        found.ok_or_else(|| {
            Error::usage(format!(
                "the plan has {} parts (0 to {}); there is no part {index}",
                self.parts.len(),
                self.parts.len().saturating_sub(1)
            ))
        })
    }
}

/// The coordinating connection: its open transaction holds the snapshot the parts read in,
/// until it is closed or dropped.
#[derive(Debug)]
pub struct Coordinator {
    client: Client,
    /// Connecting, and describing and planning.
    connect: std::time::Duration,
    describe: std::time::Duration,
    plan: PartitionPlan,
    /// The described columns, depths fixed.
    columns: DescribedSource,
}

impl Coordinator {
    /// Connects, opens a `REPEATABLE READ, READ ONLY` transaction, exports its snapshot (under
    /// [`SnapshotMode::Shared`]) and plans the parts of `source`.
    ///
    /// # Errors
    /// Connecting; describing the source; a server that cannot export a snapshot (the message
    /// names [`SnapshotMode::PerConnection`]); a `by` column that is missing or of a type that
    /// cannot be split.
    pub async fn begin(
        config: impl IntoConfig,
        source: impl Into<Source>,
        options: &ExportOptions,
        partitions: &PartitionOptions,
    ) -> Result<Coordinator> {
        let source = source.into();
        let started = std::time::Instant::now();
        let mut client = Client::connect(config).await?;
        let connect = started.elapsed();
        let conn = client.connection();
        conn.simple_query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let lsn = "(CASE WHEN pg_catalog.pg_is_in_recovery() THEN \
                   pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() END)::text";
        let (snapshot, wal_lsn) = match (&partitions.import_snapshot, partitions.snapshot) {
            (Some(id), SnapshotMode::Shared) => {
                // The caller's snapshot: the parts read in it too; when it was taken is the
                // caller's to know, so no WAL position is claimed for it.
                let set = format!("SET TRANSACTION SNAPSHOT {}", quote_literal(id));
                conn.simple_query(&set).await.map_err(|e| {
                    Error::from(e).context(format!(
                        "cannot read in snapshot {id} (its transaction must still be open)"
                    ))
                })?;
                (Some(id.clone()), partitions.snapshot_lsn.clone())
            }
            (Some(_), SnapshotMode::PerConnection) => {
                return Err(Error::usage(
                    "an imported snapshot is shared: it cannot go with per-connection snapshots",
                ));
            }
            (None, SnapshotMode::Shared) => {
                let rows = conn
                    .simple_query(&format!("SELECT pg_catalog.pg_export_snapshot(), {lsn}"))
                    .await
                    .map_err(|e| {
                        Error::from(e).context(
                            "cannot export a snapshot for the connections to share (a server \
                             that cannot, such as a standby before PostgreSQL 10, needs \
                             per-connection snapshots: --snapshot per-connection, which may \
                             duplicate or miss rows that change during the export)",
                        )
                    })?;
                let row = rows.first();
                let get = |i: usize| row.and_then(|r| r.get(i).cloned().flatten());
                (get(0), get(1))
            }
            (None, SnapshotMode::PerConnection) => {
                let rows = conn.simple_query(&format!("SELECT {lsn}")).await?;
                (
                    None,
                    rows.first().and_then(|r| r.first().cloned().flatten()),
                )
            }
        };
        if partitions.snapshot == SnapshotMode::Shared && snapshot.is_none() {
            return Err(Error::unexpected(
                "pg_export_snapshot() returned no snapshot",
            ));
        }
        let mut columns = client.describe_with(&source, &options.policies).await?;
        let sql = source.sql();
        let array_dims = settle_depths(&mut client, &sql, &mut columns, options).await?;
        let parts =
            super::split::plan_parts(&mut client, &source, &sql, &columns, partitions).await?;
        let plan = PartitionPlan {
            pgarrow_plan: PLAN_VERSION,
            source: sql,
            snapshot,
            wal_lsn,
            server_version: client.conn().server_version_num(),
            array_dims,
            schema: columns.schema.as_ref().clone(),
            parts,
            notify: None,
            replication_slot: partitions.replication_slot.clone(),
        };
        Ok(Coordinator {
            client,
            connect,
            describe: started.elapsed() - connect,
            plan,
            columns,
        })
    }

    /// The plan.
    pub fn plan(&self) -> &PartitionPlan {
        &self.plan
    }

    /// The plan, to change before handing it out (a [`Holder`](super::Holder) sets its
    /// `notify`).
    pub(crate) fn plan_mut(&mut self) -> &mut PartitionPlan {
        &mut self.plan
    }

    /// How long connecting took, and planning after that.
    pub(crate) fn timings(&self) -> (std::time::Duration, std::time::Duration) {
        (self.connect, self.describe)
    }

    /// The described columns, for workers in this process.
    pub(crate) fn columns(&self) -> &DescribedSource {
        &self.columns
    }

    /// Ends the transaction (so the snapshot) and closes the connection.
    ///
    /// # Errors
    /// The server refused the COMMIT, or the connection broke.
    pub async fn close(mut self) -> Result<()> {
        self.client.connection().simple_query("COMMIT").await?;
        self.client.close().await
    }

    /// Whether the connection still holds the transaction: it answers a trivial query. (A
    /// terminated backend or a broken connection ends the snapshot.)
    ///
    /// # Errors
    /// The server's error, or the broken connection's.
    pub async fn check(&mut self) -> Result<()> {
        self.client.connection().simple_query("SELECT 1").await?;
        Ok(())
    }
}

/// Opens the worker transaction: `REPEATABLE READ, READ ONLY`, in the plan's snapshot if it has
/// one.
pub(crate) async fn enter_snapshot(conn: &mut Connection, snapshot: Option<&str>) -> Result<()> {
    conn.simple_query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    if let Some(id) = snapshot {
        conn.simple_query(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(id)))
            .await
            .map_err(|e| {
                Error::from(e).context(format!(
                    "cannot read in the plan's snapshot {id}: it is no longer held (the plan \
                     was closed, its holder ended once every part was read or its hold timed \
                     out, or its connection ended), or this is another database. Make a new \
                     plan, or hold this one for as long as the job reads it (`pgarrow plan \
                     --hold`, a `with pgarrow.plan(...)` block, or a longer hold_timeout)"
                ))
            })?;
    }
    Ok(())
}

/// Describes the plan's source on a worker connection (inside its snapshot) and fixes the
/// array depths as the plan did; the schema must be the plan's.
pub(crate) async fn describe_for_parts(
    client: &mut Client,
    plan: &PartitionPlan,
    options: &ExportOptions,
) -> Result<DescribedSource> {
    let mut columns = client
        .describe_with(&Source::query(plan.source.clone()), &options.policies)
        .await?;
    for d in &plan.array_dims {
        if let Some(c) = columns.columns.get_mut(d.column) {
            c.kind = c.kind.with_list_depth(d.dims);
        }
    }
    // The plan read a table, whose constraints its fields carry; the parts read its SQL.
    for (c, f) in columns.columns.iter_mut().zip(plan.schema.fields()) {
        c.constraints = pgarrow_decode::Constraints::of_field(f);
    }
    columns.schema = schema_of(&columns.columns);
    if *columns.schema != plan.schema {
        return Err(Error::usage(format!(
            "the source's columns are not those of the plan (the table changed since it was \
             planned?): the plan has {}, the server now describes {}",
            field_list(&plan.schema),
            field_list(&columns.schema)
        )));
    }
    Ok(columns)
}

fn field_list(schema: &Schema) -> String {
    let fields: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect();
    format!("({})", fields.join(", "))
}

fn schema_of(columns: &[ColumnMapping]) -> arrow_schema::SchemaRef {
    Arc::new(Schema::new(
        columns.iter().map(ColumnMapping::field).collect::<Vec<_>>(),
    ))
}

/// The export plan of one part: the described columns, with the part's COPY statement.
pub(crate) fn part_export_plan(columns: &DescribedSource, part: &Part) -> DescribedSource {
    DescribedSource {
        copy_sql: copy_statement(&part.sql, &columns.columns),
        ..columns.clone()
    }
}

/// Exports part `index` of `plan` on a new connection, in the plan's snapshot: what a worker
/// of an external scheduler runs (`pgarrow export --plan plan.json --part K`).
///
/// # Errors
/// Connecting; the plan's snapshot is no longer held (its [`Coordinator`] ended); the source
/// changed since it was planned; as [`Client::export`].
pub async fn export_part(
    config: impl IntoConfig,
    plan: &PartitionPlan,
    index: usize,
    options: &ExportOptions,
) -> Result<Export<'static>> {
    export_part_with(config, plan, index, options, &PartRead::new()).await
}

/// [`export_part`], reading only what `read` asks for: some columns, the rows matching a
/// condition, at most some rows (`SELECT cols FROM (part) WHERE ... LIMIT n`, in the plan's
/// snapshot). When the plan has a [`PartitionPlan::notify`] channel, the part's transaction
/// notifies it and commits once every row was read.
///
/// # Errors
/// As [`export_part`]; a column the plan does not have.
pub async fn export_part_with(
    config: impl IntoConfig,
    plan: &PartitionPlan,
    index: usize,
    options: &ExportOptions,
    read: &PartRead,
) -> Result<Export<'static>> {
    let part = plan.part(index)?;
    let mut client = Client::connect(config).await?;
    let notify = match (&plan.notify, &plan.snapshot) {
        (Some(channel), Some(snapshot)) => Some((channel, format!("{snapshot} {}", part.part))),
        _ => None,
    };
    if let Some((channel, payload)) = &notify {
        // Outside the transaction, so delivered now: the holder counts a part starting as
        // activity, and keeps the snapshot while parts still start.
        notify_holder(client.connection(), channel, &format!("{payload} start")).await?;
    }
    enter_snapshot(client.connection(), plan.snapshot.as_deref()).await?;
    let columns = describe_for_parts(&mut client, plan, options).await?;
    let (columns, sql) = read.apply(&columns, part)?;
    let described = DescribedSource {
        copy_sql: copy_statement(&sql, &columns.columns),
        ..columns
    };
    if let Some((channel, payload)) = &notify {
        // Queued in the transaction, delivered by the COMMIT at the end: a part that fails
        // (its transaction rolled back) is not counted as read.
        notify_holder(client.connection(), channel, &format!("{payload} end")).await?;
    }
    let connect = client.take_connect_time();
    let mut export = Export::start(
        ConnSlot::Owned(Box::new(client.into_connection())),
        described,
        options,
        connect,
    )
    .await?;
    if notify.is_some() {
        export.finish_with("COMMIT");
    }
    Ok(export)
}

async fn notify_holder(conn: &mut Connection, channel: &str, payload: &str) -> Result<()> {
    conn.simple_query(&format!(
        "SELECT pg_catalog.pg_notify({}, {})",
        quote_literal(channel),
        quote_literal(payload)
    ))
    .await?;
    Ok(())
}

/// Fixes the depth of every array column whose depth comes from the data, from the COPY data
/// of the source's first `batch_rows` rows (as a single-connection export reads ahead for the
/// same purpose, by the same code): the first non-empty value's dimensions, or one.
async fn settle_depths(
    client: &mut Client,
    sql: &str,
    columns: &mut DescribedSource,
    options: &ExportOptions,
) -> Result<Vec<ArrayDims>> {
    let settled =
        crate::export::probe_array_depths(client.connection(), sql, &mut columns.columns, options)
            .await?;
    if settled.is_empty() {
        return Ok(Vec::new());
    }
    columns.schema = schema_of(&columns.columns);
    Ok(settled
        .into_iter()
        .map(|(column, dims)| ArrayDims { column, dims })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_round_trip_as_json() {
        let plan = PartitionPlan {
            pgarrow_plan: PLAN_VERSION,
            source: "SELECT * FROM \"t\"".into(),
            snapshot: Some("00000003-0000001B-1".into()),
            wal_lsn: Some("0/16B3748".into()),
            server_version: 150_004,
            array_dims: vec![ArrayDims { column: 1, dims: 2 }],
            schema: Schema::new(vec![arrow_schema::Field::new(
                "a",
                arrow_schema::DataType::Int32,
                true,
            )]),
            parts: vec![Part {
                part: 0,
                relation: Some("\"public\".\"t\"".into()),
                range: PartRange::Blocks {
                    start: 0,
                    end: Some(8),
                },
                sql: "SELECT 1".into(),
                estimated_bytes: Some(65536),
                estimated_rows: Some(100),
            }],
            notify: None,
            replication_slot: None,
        };
        let json = plan.to_json();
        assert!(json.contains("\"kind\": \"blocks\""), "{json}");
        assert_eq!(PartitionPlan::from_json(&json).unwrap(), plan);
        assert!(PartitionPlan::from_json("{}").is_err());
        let other = json.replace("\"pgarrow_plan\": 1", "\"pgarrow_plan\": 9");
        let e = PartitionPlan::from_json(&other).unwrap_err().to_string();
        assert!(e.contains("format 9"), "{e}");
        assert!(plan.part(1).unwrap_err().to_string().contains("no part 1"));
    }
}
