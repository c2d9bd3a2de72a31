//! Planning a partitioned export: the coordinating transaction and its snapshot, the parts
//! (block ranges of each leaf relation, or key ranges), and starting one part's export.

use std::sync::Arc;

use arrow_schema::Schema;
use serde::{Deserialize, Serialize};

use crate::client::copy_statement;
use crate::export::ConnSlot;
use crate::protocol::{Connection, quote_ident, quote_literal};
use crate::types::oid;
use crate::{
    Client, ColumnPlan, Error, ErrorKind, Export, ExportOptions, ExportPlan, IntoConfig, Result,
    Source,
};

use super::{PartitionOptions, SnapshotMode};

/// The version of the plan's JSON form ([`PartitionPlan::pgarrow_plan`]).
const PLAN_VERSION: u32 = 1;

/// The server version from which `ctid` ranges are read with a TID range scan (PostgreSQL 14).
const TID_RANGE_SCANS: u32 = 140_000;

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
}

/// An array column's depth, fixed by the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayDims {
    /// The column's position (0-based).
    pub column: usize,
    /// Its dimensions.
    pub dims: usize,
}

/// One part of a partitioned export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Part {
    /// Its position in the plan (0-based).
    pub part: usize,
    /// The relation it reads (`"schema"."name"`), for block ranges.
    pub relation: Option<String>,
    /// What it reads.
    pub range: PartRange,
    /// The SELECT that reads it.
    pub sql: String,
    /// Its size on disk, for block ranges (a guide to its rows, not a count).
    pub estimated_bytes: Option<u64>,
}

/// What a part reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartRange {
    /// Physical blocks `start..end` of one relation (`end` open for the last range).
    Blocks {
        /// First block.
        start: u64,
        /// Block after the last, or `None` for the rest of the relation.
        end: Option<u64>,
    },
    /// Rows whose `column` is in `[from, to)` (either side open when `None`), and the NULLs
    /// when `nulls`.
    Keys {
        /// The result column.
        column: String,
        /// Lower bound (inclusive), as text.
        from: Option<String>,
        /// Upper bound (exclusive), as text.
        to: Option<String>,
        /// Whether this part also takes the rows where the column is NULL.
        nulls: bool,
    },
    /// The whole source, or the whole of one relation that has no blocks to split.
    All,
}

impl PartitionPlan {
    /// The plan from its JSON form.
    ///
    /// # Errors
    /// Not a plan pgarrow wrote, or one of another version.
    pub fn from_json(json: &str) -> Result<PartitionPlan> {
        let plan: PartitionPlan = serde_json::from_str(json)
            .map_err(|e| Error::query(format!("not a pgarrow plan: {e}")))?;
        if plan.pgarrow_plan != PLAN_VERSION {
            return Err(Error::query(format!(
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

    /// The part at `index`.
    ///
    /// # Errors
    /// There is no such part.
    pub fn part(&self, index: usize) -> Result<&Part> {
        self.parts.get(index).ok_or_else(|| {
            Error::query(format!(
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
    columns: ExportPlan,
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
        let (snapshot, wal_lsn) = match partitions.snapshot {
            SnapshotMode::Shared => {
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
            SnapshotMode::PerConnection => {
                let rows = conn.simple_query(&format!("SELECT {lsn}")).await?;
                (
                    None,
                    rows.first().and_then(|r| r.first().cloned().flatten()),
                )
            }
        };
        if partitions.snapshot == SnapshotMode::Shared && snapshot.is_none() {
            return Err(Error::query("pg_export_snapshot() returned no snapshot"));
        }
        let mut columns = client.plan_with(&source, &options.policies).await?;
        let sql = source.sql();
        let array_dims = settle_depths(&mut client, &sql, &mut columns, options).await?;
        let parts = plan_parts(&mut client, &source, &sql, &columns, partitions).await?;
        let plan = PartitionPlan {
            pgarrow_plan: PLAN_VERSION,
            source: sql,
            snapshot,
            wal_lsn,
            server_version: client.conn().server_version_num(),
            array_dims,
            schema: columns.schema.as_ref().clone(),
            parts,
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

    /// How long connecting took, and planning after that.
    pub(crate) fn timings(&self) -> (std::time::Duration, std::time::Duration) {
        (self.connect, self.describe)
    }

    /// The described columns, for workers in this process.
    pub(crate) fn columns(&self) -> &ExportPlan {
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
                    "cannot read in the plan's snapshot {id}: the transaction that exported \
                     it must still be open (is `pgarrow plan --hold` still running, on this \
                     database?)"
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
) -> Result<ExportPlan> {
    let mut columns = client
        .plan_with(&Source::query(plan.source.clone()), &options.policies)
        .await?;
    for d in &plan.array_dims {
        if let Some(c) = columns.columns.get_mut(d.column) {
            c.kind = c.kind.with_list_depth(d.dims);
        }
    }
    columns.schema = schema_of(&columns.columns);
    if *columns.schema != plan.schema {
        return Err(Error::query(format!(
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

fn schema_of(columns: &[ColumnPlan]) -> arrow_schema::SchemaRef {
    Arc::new(Schema::new(
        columns.iter().map(ColumnPlan::field).collect::<Vec<_>>(),
    ))
}

/// The export plan of one part: the described columns, with the part's COPY statement.
pub(crate) fn part_export_plan(columns: &ExportPlan, part: &Part) -> ExportPlan {
    ExportPlan {
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
    let part = plan.part(index)?;
    let mut client = Client::connect(config).await?;
    enter_snapshot(client.connection(), plan.snapshot.as_deref()).await?;
    let columns = describe_for_parts(&mut client, plan, options).await?;
    let export_plan = part_export_plan(&columns, part);
    let connect = client.take_connect_time();
    Export::start(
        ConnSlot::Owned(Box::new(client.into_connection())),
        export_plan,
        options,
        connect,
    )
    .await
}

/// Fixes the depth of every array column whose depth comes from the data, from the source's
/// first `batch_rows` rows (the rows a single-connection export reads ahead for the same
/// purpose): the first non-empty value's dimensions, or one.
async fn settle_depths(
    client: &mut Client,
    sql: &str,
    columns: &mut ExportPlan,
    options: &ExportOptions,
) -> Result<Vec<ArrayDims>> {
    let targets: Vec<usize> = (0..columns.columns.len())
        .filter(|&i| columns.columns[i].kind.list_depth_from_data())
        .collect();
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let aliases: Vec<String> = (1..=columns.columns.len())
        .map(|i| format!("c{i}"))
        .collect();
    let probes: Vec<String> = targets
        .iter()
        .map(|i| {
            let c = &aliases[*i];
            format!(
                "(SELECT pg_catalog.array_ndims(x.{c}) FROM x \
                 WHERE pg_catalog.array_ndims(x.{c}) IS NOT NULL LIMIT 1)::text"
            )
        })
        .collect();
    let probe = format!(
        "WITH x AS MATERIALIZED (SELECT * FROM ({sql}\n) AS s({}) LIMIT {}) SELECT {}",
        aliases.join(", "),
        options.decode.batch_rows,
        probes.join(", ")
    );
    let rows = client.connection().simple_query(&probe).await?;
    let row = rows.first();
    let mut out = Vec::new();
    for (k, i) in targets.into_iter().enumerate() {
        let seen = row.and_then(|r| r.get(k).cloned().flatten());
        let dims = match seen {
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| Error::query(format!("unexpected array_ndims() answer {v:?}")))?,
            None => 1,
        };
        columns.columns[i].kind = columns.columns[i].kind.with_list_depth(dims);
        out.push(ArrayDims { column: i, dims });
    }
    columns.schema = schema_of(&columns.columns);
    Ok(out)
}

/// The parts of `source`.
async fn plan_parts(
    client: &mut Client,
    source: &Source,
    sql: &str,
    columns: &ExportPlan,
    partitions: &PartitionOptions,
) -> Result<Vec<Part>> {
    let n = partitions.planned_parts(None);
    if let Some(by) = &partitions.by {
        return key_parts(client, sql, columns, by, n).await;
    }
    let Source::Table { schema, name } = source else {
        // A query has no blocks to split: one part, unless a key column was given.
        return Ok(vec![whole(sql)]);
    };
    let qualified = match schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(name)),
        None => quote_ident(name),
    };
    if client.conn().server_version_num() >= TID_RANGE_SCANS {
        return block_parts(client, &qualified, columns, partitions).await;
    }
    // Before PostgreSQL 14 a ctid range is a scan of the whole relation: split on a
    // single-column integer primary key instead, else read leaf by leaf.
    let pk = format!(
        "SELECT a.attname::text FROM pg_catalog.pg_index i \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE i.indrelid = {}::pg_catalog.regclass AND i.indisprimary AND i.indnatts = 1 \
           AND a.atttypid IN (20, 21, 23)",
        quote_literal(&qualified)
    );
    let rows = client.connection().simple_query(&pk).await?;
    match rows.first().and_then(|r| r.first().cloned().flatten()) {
        Some(key)
            if columns
                .columns
                .iter()
                .filter(|c| c.column.name == key)
                .count()
                == 1 =>
        {
            key_parts(client, sql, columns, &key, n).await
        }
        _ => {
            let leaves = leaves(client, &qualified).await?;
            let cols = column_list(columns);
            Ok(leaves
                .iter()
                .enumerate()
                .map(|(i, leaf)| Part {
                    part: i,
                    relation: Some(leaf.name.clone()),
                    range: PartRange::All,
                    sql: format!("SELECT {cols} FROM ONLY {}", leaf.name),
                    estimated_bytes: Some(leaf.bytes),
                })
                .collect())
        }
    }
}

fn whole(sql: &str) -> Part {
    Part {
        part: 0,
        relation: None,
        range: PartRange::All,
        sql: sql.to_owned(),
        estimated_bytes: None,
    }
}

/// The result columns as a select list, quoted.
fn column_list(columns: &ExportPlan) -> String {
    columns
        .columns
        .iter()
        .map(|c| quote_ident(&c.column.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A relation the source reads from, with its size on disk.
struct Leaf {
    /// `"schema"."name"`.
    name: String,
    /// `relkind`.
    kind: String,
    bytes: u64,
    block_size: u64,
}

/// The relation and, for a partitioned table or an inheritance parent, every relation below
/// it, in creation order; partitioned tables themselves (which hold no rows) left out.
async fn leaves(client: &mut Client, qualified: &str) -> Result<Vec<Leaf>> {
    let sql = format!(
        "WITH RECURSIVE tree(oid) AS (
    SELECT {}::pg_catalog.regclass::pg_catalog.oid
  UNION
    SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid
)
SELECT n.nspname::text, c.relname::text, c.relkind::text,
       pg_catalog.pg_relation_size(c.oid)::text, pg_catalog.current_setting('block_size')
FROM tree JOIN pg_catalog.pg_class c ON c.oid = tree.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind <> 'p'
ORDER BY c.oid",
        quote_literal(qualified)
    );
    let rows = client.connection().simple_query(&sql).await?;
    rows.iter()
        .map(|r| {
            let get = |i: usize| {
                r.get(i).cloned().flatten().ok_or_else(|| {
                    Error::query(format!(
                        "unexpected answer to pgarrow's relation query: {r:?}"
                    ))
                })
            };
            let num = |i: usize| {
                get(i)?.parse::<u64>().map_err(|_| {
                    Error::query(format!(
                        "unexpected answer to pgarrow's relation query: {r:?}"
                    ))
                })
            };
            Ok(Leaf {
                name: format!("{}.{}", quote_ident(&get(0)?), quote_ident(&get(1)?)),
                kind: get(2)?,
                bytes: num(3)?,
                block_size: num(4)?.max(1),
            })
        })
        .collect()
}

/// Block ranges of every leaf, about `total / n` blocks each, the last range of each leaf open
/// so that it also takes blocks added after its size was read.
async fn block_parts(
    client: &mut Client,
    qualified: &str,
    columns: &ExportPlan,
    partitions: &PartitionOptions,
) -> Result<Vec<Part>> {
    let leaves = leaves(client, qualified).await?;
    let cols = column_list(columns);
    let blocks = |l: &Leaf| l.bytes.div_ceil(l.block_size);
    let with_blocks = || leaves.iter().filter(|l| has_blocks(&l.kind));
    let total: u64 = with_blocks().map(blocks).sum();
    let n = partitions.planned_parts(Some(with_blocks().map(|l| l.bytes).sum()));
    let target = total.div_ceil(n as u64).max(1);
    let mut parts = Vec::new();
    for leaf in &leaves {
        let base = format!("SELECT {cols} FROM ONLY {}", leaf.name);
        if !has_blocks(&leaf.kind) {
            // A foreign table or a view below the parent: read whole.
            parts.push(Part {
                part: parts.len(),
                relation: Some(leaf.name.clone()),
                range: PartRange::All,
                sql: base,
                estimated_bytes: None,
            });
            continue;
        }
        let b = blocks(leaf);
        let ranges = b.div_ceil(target).max(1);
        let step = b.div_ceil(ranges).max(1);
        for r in 0..ranges {
            let start = r * step;
            let end = (r + 1 < ranges).then_some((r + 1) * step);
            let mut sql = format!("{base} WHERE ctid >= '({start},0)'::pg_catalog.tid");
            if let Some(end) = end {
                sql.push_str(&format!(" AND ctid < '({end},0)'::pg_catalog.tid"));
            }
            parts.push(Part {
                part: parts.len(),
                relation: Some(leaf.name.clone()),
                range: PartRange::Blocks { start, end },
                sql,
                estimated_bytes: Some(end.unwrap_or(b).saturating_sub(start) * leaf.block_size),
            });
        }
    }
    if parts.is_empty() {
        // A partitioned table without partitions.
        parts.push(whole(&format!("SELECT {cols} FROM {qualified}")));
    }
    Ok(parts)
}

/// Relation kinds with blocks and ctids: tables, materialized views.
fn has_blocks(relkind: &str) -> bool {
    matches!(relkind, "r" | "m")
}

/// How a key column's values are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyClass {
    Integer,
    Date,
    Timestamp,
}

/// Key ranges of the result column `by`: `n` ranges with bounds from the column's `pg_stats`
/// histogram when it comes straight from a table that was analyzed, else evenly between its
/// finite MIN and MAX. NULLs go with the first range.
async fn key_parts(
    client: &mut Client,
    sql: &str,
    columns: &ExportPlan,
    by: &str,
    n: usize,
) -> Result<Vec<Part>> {
    let matching: Vec<usize> = (0..columns.columns.len())
        .filter(|&i| columns.columns[i].column.name == by)
        .collect();
    let index = match matching.as_slice() {
        [i] => *i,
        [] => {
            let names: Vec<&str> = columns
                .columns
                .iter()
                .map(|c| c.column.name.as_str())
                .collect();
            return Err(Error::query(format!(
                "--partition-by {by}: the result has no column of that name (its columns: {}); \
                 names are exact",
                names.join(", ")
            )));
        }
        _ => {
            return Err(Error::query(format!(
                "--partition-by {by}: the result has {} columns of that name; rename them",
                matching.len()
            )));
        }
    };
    let column = &columns.columns[index].column;
    let class = match column.oid {
        oid::INT2 | oid::INT4 | oid::INT8 => KeyClass::Integer,
        oid::DATE => KeyClass::Date,
        oid::TIMESTAMP | oid::TIMESTAMPTZ => KeyClass::Timestamp,
        _ => {
            return Err(Error::query(format!(
                "--partition-by {by}: a {} column cannot be split into ranges; use an integer, \
                 date or timestamp column",
                column.type_name
            )));
        }
    };
    let type_name = column.type_name.clone();
    let quoted = quote_ident(by);
    let mut bounds = histogram(client, sql, index).await?;
    if bounds.len() < 2 {
        bounds = even_bounds(client, sql, &quoted, class, n).await?;
    } else {
        bounds = pick(&bounds, n);
    }
    bounds.dedup();
    if bounds.is_empty() {
        return Ok(vec![whole(sql)]);
    }
    let lit = |v: &str| format!("CAST({} AS {type_name})", quote_literal(v));
    let mut parts = Vec::new();
    for i in 0..=bounds.len() {
        let from = i.checked_sub(1).map(|j| bounds[j].clone());
        let to = bounds.get(i).cloned();
        let condition = match (&from, &to) {
            (None, Some(t)) => format!("({quoted} < {} OR {quoted} IS NULL)", lit(t)),
            (Some(f), Some(t)) => format!("{quoted} >= {} AND {quoted} < {}", lit(f), lit(t)),
            (Some(f), None) => format!("{quoted} >= {}", lit(f)),
            (None, None) => unreachable!("bounds is not empty"),
        };
        parts.push(Part {
            part: i,
            relation: None,
            range: PartRange::Keys {
                column: by.to_owned(),
                nulls: from.is_none(),
                from,
                to,
            },
            sql: format!("SELECT * FROM ({sql}\n) AS _pgarrow_part WHERE {condition}"),
            estimated_bytes: None,
        });
    }
    Ok(parts)
}

/// The `pg_stats` histogram bounds of result column `index`, when it is a table's column.
async fn histogram(client: &mut Client, sql: &str, index: usize) -> Result<Vec<String>> {
    let described = client.connection().describe(sql).await?;
    let Some(field) = described.columns.as_ref().and_then(|c| c.get(index)) else {
        return Ok(Vec::new());
    };
    if field.table_oid == 0 || field.column_id <= 0 {
        return Ok(Vec::new());
    }
    let query = format!(
        "SELECT s.histogram_bounds::text FROM pg_catalog.pg_stats s
JOIN pg_catalog.pg_namespace n ON n.nspname = s.schemaname
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname
WHERE c.oid = {} AND a.attnum = {} AND s.histogram_bounds IS NOT NULL
ORDER BY s.inherited DESC LIMIT 1",
        field.table_oid, field.column_id
    );
    let rows = client.connection().simple_query(&query).await?;
    Ok(rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .map(|text| parse_array_text(&text))
        .unwrap_or_default())
}

/// `n - 1` bounds spread evenly over the column's finite values (±infinity fall in the first
/// and last ranges), computed by the server in the column's own type.
async fn even_bounds(
    client: &mut Client,
    sql: &str,
    quoted: &str,
    class: KeyClass,
    n: usize,
) -> Result<Vec<String>> {
    if n < 2 {
        return Ok(Vec::new());
    }
    let (finite, step) = match class {
        KeyClass::Integer => (
            "true",
            format!(
                "(lo::pg_catalog.numeric + pg_catalog.floor((hi::pg_catalog.numeric - \
                 lo::pg_catalog.numeric) * i / {n}))::pg_catalog.int8::text"
            ),
        ),
        KeyClass::Date => (
            "pg_catalog.isfinite(v)",
            format!("(lo + ((hi - lo)::pg_catalog.int8 * i / {n})::pg_catalog.int4)::text"),
        ),
        KeyClass::Timestamp => (
            "pg_catalog.isfinite(v)",
            format!("(lo + (hi - lo) * (i::pg_catalog.float8 / {n}))::text"),
        ),
    };
    let query = format!(
        "SELECT DISTINCT {step}, i FROM (
    SELECT pg_catalog.min(v) FILTER (WHERE {finite}) AS lo,
           pg_catalog.max(v) FILTER (WHERE {finite}) AS hi
    FROM (SELECT {quoted} AS v FROM ({sql}\n) AS _pgarrow_s) AS k
) AS m, pg_catalog.generate_series(1, {}) AS i
WHERE lo IS NOT NULL AND lo < hi ORDER BY i",
        n - 1
    );
    let rows = client.connection().simple_query(&query).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect())
}

/// `n - 1` of `bounds` (sorted), evenly spaced, without their ends.
fn pick(bounds: &[String], n: usize) -> Vec<String> {
    let last = bounds.len() - 1;
    (1..n)
        .map(|k| bounds[(k * last + n / 2) / n].clone())
        .collect()
}

/// The elements of a one-dimensional array's text form (`{1,2}`, `{"a b",c}`).
fn parse_array_text(text: &str) -> Vec<String> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or("");
    let mut out = Vec::new();
    let mut chars = inner.chars();
    let mut item = String::new();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => item.extend(chars.next()),
            ',' if !quoted => out.push(std::mem::take(&mut item)),
            c => item.push(c),
        }
    }
    if !inner.is_empty() {
        out.push(item);
    }
    out
}

impl Error {
    /// This error, explained by `what` (which comes first in the message).
    pub(crate) fn context(mut self, what: impl Into<String>) -> Error {
        // The rows are said once, by the outer error.
        let rows = self.rows.take();
        let e = Error::from(ErrorKind::Context {
            what: what.into(),
            source: Box::new(self),
        });
        match rows {
            Some(r) => e.with_rows(r),
            None => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_text() {
        assert_eq!(parse_array_text("{1,5,9}"), ["1", "5", "9"]);
        assert_eq!(
            parse_array_text(r#"{"2024-01-01 00:00:00","a\"b",c}"#),
            ["2024-01-01 00:00:00", "a\"b", "c"]
        );
        assert!(parse_array_text("{}").is_empty());
    }

    #[test]
    fn picking_bounds() {
        let b: Vec<String> = (0..=100).map(|i| i.to_string()).collect();
        assert_eq!(pick(&b, 4), ["25", "50", "75"]);
        assert_eq!(pick(&b, 1), Vec::<String>::new());
        let two: Vec<String> = vec!["1".into(), "9".into()];
        assert_eq!(pick(&two, 4), ["1", "9", "9"]);
    }

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
            }],
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
