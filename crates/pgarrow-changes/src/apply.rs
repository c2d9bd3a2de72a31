//! Changes applied to tables of another PostgreSQL, by key: what [`changes_to`](super::changes_to)
//! wrote, replayed into the tables they describe.
//!
//! A batch of one table's changes is first reduced, here, to the last effect on each key: the
//! row it leaves (an insert, an update) or its absence (a delete, the old key of an update that
//! changed the key). A TOASTed value an update did not send (`_unchanged`) is taken from the
//! change before it on the same key, or, when there is none in the batch, from the target's
//! row. The effects then go through the load's binary COPY into two temporary tables, and up to
//! four statements apply them: the unsent values filled in from the target, the deletes, the
//! updates of rows that exist, the inserts of rows that do not (left out when the updates
//! matched every staged row of a unique key). A truncate empties the table between the changes
//! before it and those after.
//!
//! [`apply_changes`] replays a changes directory: each roll (the files one checkpoint made
//! durable) in one transaction, with a row of a state table (`pgarrow_applied_changes`)
//! recording the slot's checkpoint it reached, so that a rerun applies each roll once.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchReader as _, UInt32Array};
use arrow_schema::{ArrowError, Field, Fields, Schema};
use pgarrow_encode::{EncodePolicies, RowEncoder};
use pgarrow_protocol::replication::Lsn;
use serde::Serialize;

use crate::decode::{OLD_COLUMN, OP_COLUMN, Op, UNCHANGED_COLUMN, meta_fields};
use crate::files::{CHANGES_MANIFEST, ChangesFile, ChangesManifest};
use crate::net::{Change, Effect, Kept, KeyAt, reduce};
use pgarrow::names::TableName;
use pgarrow::names::{KeyChoice, key_columns, write_target};
use pgarrow::protocol::{quote_ident, quote_literal};
use pgarrow::{Client, Error, ErrorKind, IntoConfig, LoadMode, LoadOptions, Result, Source};
use pgarrow::{Hooks, Stop};
use pgarrow_io::Location;
use pgarrow_io::{Input, InputOptions};

/// The temporary table of the rows an apply leaves (inserted or updated).
const STAGE_ROWS: &str = "_pgarrow_apply_rows";
/// The temporary table of the keys an apply removes.
const STAGE_GONE: &str = "_pgarrow_apply_gone";
/// The stage's column naming the values to take from the target.
const STAGE_UNCHANGED: &str = "_pgarrow_unchanged";
/// The stage's key columns of the target row those values come from (`_pgarrow_src_1`, ...).
const STAGE_SOURCE: &str = "_pgarrow_src_";

/// The state table's default name.
pub const APPLIED_TABLE: &str = "pgarrow_applied_changes";

/// How changes are applied: [`ApplyOptions::default`], then `with_*`, or `try_with_*` for
/// the settings read from text, which may be refused.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApplyOptions {
    /// Where a source table's changes go: `(source, target)`. A table not listed goes to the
    /// table of the same name. A name without a schema means `public`.
    pub tables: Vec<(TableName, TableName)>,
    /// A target's key: `(target, columns)`. A target not listed is keyed by its primary key
    /// (else its replica identity index).
    pub keys: Vec<(TableName, Vec<String>)>,
    /// The table recording, per slot, the checkpoint applied up to (created when missing).
    pub state_table: TableName,
    /// What to do with values that do not fit their columns exactly.
    pub policies: EncodePolicies,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            tables: Vec::new(),
            keys: Vec::new(),
            state_table: TableName::new(None::<String>, APPLIED_TABLE),
            policies: EncodePolicies::default(),
        }
    }
}

impl ApplyOptions {
    /// `source`'s changes go into `target` (names as SQL reads them: `schema.table`, unquoted
    /// names folded to lower case).
    ///
    /// # Errors
    /// A name that is not one.
    pub fn try_with_table(mut self, source: &str, target: &str) -> Result<Self> {
        self.tables
            .push((TableName::parse(source)?, TableName::parse(target)?));
        Ok(self)
    }

    /// `table` (a target) is keyed by `columns` (as the table names them).
    ///
    /// # Errors
    /// A name that is not one; no columns.
    pub fn try_with_key<S: Into<String>>(
        mut self,
        table: &str,
        columns: impl IntoIterator<Item = S>,
    ) -> Result<Self> {
        let columns: Vec<String> = columns.into_iter().map(Into::into).collect();
        if columns.is_empty() || columns.iter().any(String::is_empty) {
            return Err(Error::usage(format!(
                "the key of {table}: give its columns, comma-separated"
            )));
        }
        self.keys.push((TableName::parse(table)?, columns));
        Ok(self)
    }

    /// The state table (`schema.table`, as SQL reads it).
    ///
    /// # Errors
    /// A name that is not one.
    pub fn try_with_state_table(mut self, name: &str) -> Result<Self> {
        self.state_table = TableName::parse(name)?;
        Ok(self)
    }

    /// What to do with values that do not fit their columns exactly.
    pub fn with_policies(mut self, policies: EncodePolicies) -> Self {
        self.policies = policies;
        self
    }
}

/// What an apply did. Its document form (`--json`, Python's dict) names the time `total_s`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ApplyStats {
    /// The slot the changes came from.
    pub slot: String,
    /// Rolls applied, each in its own transaction.
    pub rolls: u64,
    /// Rolls found applied before (by an earlier run) and left alone.
    pub rolls_skipped: u64,
    /// Files read.
    pub files: u64,
    /// Changes read.
    pub changes: u64,
    /// Rows written (inserted or updated): one per key, however many changes it had.
    pub upserted: u64,
    /// Rows deleted.
    pub deleted: u64,
    /// Truncates applied.
    pub truncates: u64,
    /// The checkpoint the target now has every change up to (empty when nothing is applied).
    pub checkpoint_lsn: String,
    /// The target tables written.
    pub tables: Vec<String>,
    /// Wall time.
    #[serde(rename = "total_s", serialize_with = "crate::seconds")]
    pub total: Duration,
}

/// Applies the changes directory `dir` (written by [`changes_to`](super::changes_to)) to the
/// database of `config`: every roll the state table does not list as applied, in order, each in
/// one transaction (with `SET CONSTRAINTS ALL DEFERRED`, so that deferrable foreign keys are
/// checked at its end). The hooks' stop is checked between batches and ends a statement that
/// waits (the roll under way is rolled back); their progress hears the statistics after each
/// roll.
///
/// # Errors
/// A directory without a changes manifest; a target table that does not exist or has no key;
/// a change the target cannot take (the load's errors, naming the column and the file); an
/// update whose unsent values the target does not have (it is not in step with the source);
/// [`ErrorKind::Cancelled`] when stopped. The roll under way is rolled back.
pub async fn apply_changes(
    config: impl IntoConfig,
    dir: &Location,
    options: &ApplyOptions,
    hooks: Hooks<'_, ApplyStats>,
) -> Result<ApplyStats> {
    let mut hooks = hooks;
    let stop = hooks.stop().clone();
    let started = Instant::now();
    let manifest = read_manifest(dir)?;
    let mut client = Client::connect(config).await?;
    let mut stats = ApplyStats {
        slot: manifest.slot.clone(),
        ..ApplyStats::default()
    };
    // Named exactly, as every table pgarrow writes into: never a temporary table, nor one
    // created in pg_temp when the search path starts with it (see `write_target`).
    let state = write_target(client.connection(), &options.state_table)
        .await?
        .quoted();
    let conn = client.connection();
    // Looked up first: IF NOT EXISTS alone has the server say "already exists" every run.
    let missing = conn
        .simple_query(&format!(
            "SELECT to_regclass({}) IS NULL",
            quote_literal(&state)
        ))
        .await?;
    if first_value(missing).as_deref() == Some("t") {
        conn.simple_query(&format!(
            "CREATE TABLE IF NOT EXISTS {state} (slot text PRIMARY KEY, checkpoint_lsn pg_lsn \
             NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await
        .map_err(|e| Error::from(e).context(format!("creating the state table {state}")))?;
    }
    let applied: Option<Lsn> = conn
        .simple_query(&format!(
            "SELECT checkpoint_lsn::text FROM {state} WHERE slot = {}",
            quote_literal(&manifest.slot)
        ))
        .await?
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
        .map(|t| t.parse())
        .transpose()?;
    if let Some(lsn) = applied {
        stats.checkpoint_lsn = lsn.to_string();
    }
    let mut targets: HashMap<String, Target> = HashMap::new();
    for roll in rolls(&manifest.files)? {
        let checkpoint = roll.checkpoint;
        if applied.is_some_and(|a| checkpoint <= a) {
            stats.rolls_skipped += 1;
            continue;
        }
        if stop.is_stopped() {
            return Err(ErrorKind::Cancelled.into());
        }
        let conn = client.connection();
        conn.simple_query("BEGIN; SET CONSTRAINTS ALL DEFERRED")
            .await?;
        let mut counts = ApplyStats::default();
        let token = client.connection().cancel_token();
        // A stop ends the roll where it is, even in a statement waiting on a lock: the
        // statement is cancelled and the connection closed, which rolls the roll back.
        let roll = stop.run(async {
            for file in roll.files {
                let target = target_of(&mut client, &mut targets, &file.table, options).await?;
                let at = file
                    .path
                    .split('/')
                    .fold(dir.clone(), |at, part| at.join(part));
                apply_file(&mut client, target, &at, options, &stop, &mut counts)
                    .await
                    .map_err(|e| e.context(format!("applying {at} to {}", target.name)))?;
                if !stats.tables.contains(&target.name) {
                    stats.tables.push(target.name.clone());
                }
            }
            client
                .connection()
                .simple_query(&format!(
                    "INSERT INTO {state} (slot, checkpoint_lsn) VALUES ({slot}, '{checkpoint}') \
                     ON CONFLICT (slot) DO UPDATE SET checkpoint_lsn = EXCLUDED.checkpoint_lsn, \
                     applied_at = now(); COMMIT",
                    slot = quote_literal(&manifest.slot)
                ))
                .await?;
            Ok::<(), Error>(())
        });
        let result = match roll.await {
            Ok(result) => result,
            Err(cancelled) => {
                token.cancel_within(pgarrow::CANCEL_REQUEST_TIMEOUT).await;
                return Err(cancelled);
            }
        };
        if let Err(e) = result {
            let conn = client.connection();
            if conn.is_ready() {
                let _ = conn.simple_query("ROLLBACK").await;
            }
            return Err(e);
        }
        stats.rolls += 1;
        stats.files += counts.files;
        stats.changes += counts.changes;
        stats.upserted += counts.upserted;
        stats.deleted += counts.deleted;
        stats.truncates += counts.truncates;
        stats.checkpoint_lsn = checkpoint.to_string();
        stats.total = started.elapsed();
        hooks.report(&stats);
    }
    client.close().await?;
    stats.total = started.elapsed();
    Ok(stats)
}

/// The manifest of a changes directory.
///
/// # Errors
/// A directory without one (named); one that is not a changes manifest.
pub fn read_manifest(dir: &Location) -> Result<ChangesManifest> {
    let at = dir.join(CHANGES_MANIFEST);
    if !at.exists()? {
        return Err(Error::usage(format!(
            "{dir} has no {CHANGES_MANIFEST}: give the directory `pgarrow changes` wrote"
        )));
    }
    serde_json::from_slice(&at.read()?).map_err(|e| {
        Error::invalid_input(format!(
            "{at} is not a changes manifest ({CHANGES_MANIFEST}): {e}"
        ))
    })
}

/// The files one checkpoint made durable.
#[derive(Debug)]
#[non_exhaustive]
pub struct Roll<'a> {
    /// The checkpoint: every change committed before it is in the roll or an earlier one.
    pub checkpoint: Lsn,
    /// The files, in the order written.
    pub files: Vec<&'a ChangesFile>,
}

/// The manifest's files cut into rolls, in order.
///
/// # Errors
/// A checkpoint that is not an LSN; files out of order.
pub fn rolls(files: &[ChangesFile]) -> Result<Vec<Roll<'_>>> {
    let mut out: Vec<Roll<'_>> = Vec::new();
    for file in files {
        let checkpoint: Lsn = file.checkpoint_lsn.parse().map_err(|e| {
            Error::from(e).context(format!("the checkpoint of {} in the manifest", file.path))
        })?;
        match out.last_mut() {
            Some(roll) if roll.checkpoint == checkpoint => roll.files.push(file),
            Some(roll) if roll.checkpoint > checkpoint => {
                return Err(Error::invalid_input(format!(
                    "the manifest lists {} (checkpoint {checkpoint}) after a file of \
                     checkpoint {}: it is not in the order pgarrow writes",
                    file.path, roll.checkpoint
                )));
            }
            _ => out.push(Roll {
                checkpoint,
                files: vec![file],
            }),
        }
    }
    Ok(out)
}

/// A target table: its name, key, and the key's types (for telling keys apart).
struct Target {
    name: String,
    key: Vec<String>,
    /// The key is unique in the target (it covers a unique index's columns): an update's row
    /// count then says whether every staged row matched one.
    key_unique: bool,
    key_encoder: KeyTypes,
}

/// The key columns' types as the target has them.
struct KeyTypes {
    columns: Vec<pgarrow_decode::PgColumn>,
    catalog: pgarrow_decode::mapping::Catalog,
}

/// `a` and `b` name the same table (a missing schema is `public`).
fn same_table(a: &TableName, b: &TableName) -> bool {
    a.name == b.name
        && a.schema.as_deref().unwrap_or("public") == b.schema.as_deref().unwrap_or("public")
}

/// The target of the source table `source` (as the manifest names it), looked up once.
async fn target_of<'t>(
    client: &mut Client,
    targets: &'t mut HashMap<String, Target>,
    source: &str,
    options: &ApplyOptions,
) -> Result<&'t Target> {
    if !targets.contains_key(source) {
        let parsed = TableName::parse(source)?;
        let table = options
            .tables
            .iter()
            .find(|(s, _)| same_table(s, &parsed))
            .map_or(parsed, |(_, t)| t.clone());
        let target = describe_target(client, table, options).await?;
        targets.insert(source.to_owned(), target);
    }
    Ok(&targets[source])
}

async fn describe_target(
    client: &mut Client,
    table: TableName,
    options: &ApplyOptions,
) -> Result<Target> {
    let conn = client.connection();
    let target = write_target(conn, &table).await?;
    let name = target.quoted();
    let regclass = quote_literal(&name);
    let exists = conn
        .simple_query(&format!("SELECT to_regclass({regclass}) IS NOT NULL"))
        .await?;
    if first_value(exists).as_deref() != Some("t") {
        return Err(Error::usage(format!(
            "the target table {name} does not exist: create it (an export's schema, `pgarrow \
             import --create`), or map the changes elsewhere (--table SOURCE=TARGET)"
        )));
    }
    let given = options
        .keys
        .iter()
        .find(|(t, _)| same_table(t, &table))
        .filter(|(_, key)| !key.is_empty());
    let key = match given {
        Some((_, key)) => key.clone(),
        _ => {
            // The primary key, else the replica identity index, in the index's column order.
            let key = key_columns(conn, &target, KeyChoice::PrimaryKey).await?;
            if key.is_empty() {
                return Err(Error::usage(format!(
                    "the target table {name} has no primary key (nor replica identity index) \
                     to apply changes by: give its key (--key {name}=COLUMN[,COLUMN...])"
                )));
            }
            key
        }
    };
    let key_unique = match given {
        // The primary key and a replica identity index are unique.
        None => true,
        Some(_) => {
            let names = key
                .iter()
                .map(|k| quote_literal(k))
                .collect::<Vec<_>>()
                .join(", ");
            let rows = conn
                .simple_query(&format!(
                    "SELECT EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = \
                     to_regclass({regclass}) AND i.indisunique AND i.indpred IS NULL AND \
                     i.indexprs IS NULL AND NOT EXISTS (SELECT FROM \
                     unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) k(attnum) JOIN \
                     pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = \
                     k.attnum WHERE a.attname::text <> ALL (ARRAY[{names}]::text[])))"
                ))
                .await?;
            first_value(rows).as_deref() == Some("t")
        }
    };
    let list = key.iter().map(|k| quote_ident(k)).collect::<Vec<_>>();
    let plan = client
        .describe(&Source::query(format!(
            "SELECT {} FROM {name}",
            list.join(", ")
        )))
        .await
        .map_err(|e| e.context(format!("the key of {name}")))?;
    Ok(Target {
        name,
        key,
        key_unique,
        key_encoder: KeyTypes {
            columns: plan.columns.into_iter().map(|c| c.column).collect(),
            catalog: plan.catalog,
        },
    })
}

/// The byte ranges of the rows of a binary COPY body of `columns` columns (no header).
fn split_rows(body: &[u8], columns: usize) -> std::result::Result<Vec<Range<usize>>, String> {
    let mut rows = Vec::new();
    let mut at = 0;
    let read = |at: usize, n: usize| body.get(at..at + n).ok_or("a key row cut short");
    while at < body.len() {
        let start = at;
        at += 2;
        for _ in 0..columns {
            let len = i32::from_be_bytes(read(at, 4)?.try_into().map_err(|_| "a length")?);
            at += 4;
            if len > 0 {
                at += len as usize;
            }
        }
        read(start, at - start)?;
        rows.push(start..at);
    }
    Ok(rows)
}

/// How many of `schema`'s columns are the table's: the rest must be the change columns
/// [`changes_to`](super::changes_to) writes, by name and type (so that reading them cannot
/// fail later).
fn table_columns(schema: &Schema) -> Result<usize> {
    let fields = schema.fields();
    // `_old` is the last change column, a struct of the table's columns.
    let n = fields
        .len()
        .checked_sub(meta_fields(&Fields::empty()).len());
    let Some(n) = n else {
        return Err(Error::invalid_input(format!(
            "not a file of changes: it has {} columns, fewer than the change columns",
            fields.len()
        )));
    };
    let expected = meta_fields(&fields[..n].iter().cloned().collect());
    for (field, want) in fields[n..].iter().zip(&expected) {
        if field.name() != want.name() || !field.data_type().equals_datatype(want.data_type()) {
            return Err(Error::invalid_input(format!(
                "not a file of changes: its columns end with {} {}, where a file of changes has \
                 {} {}",
                quote_ident(field.name()),
                field.data_type(),
                quote_ident(want.name()),
                want.data_type()
            )));
        }
    }
    Ok(n)
}

/// The column positions of a change file's schema.
struct Layout {
    /// The table's columns (the fields before the metadata).
    columns: Vec<Arc<Field>>,
    /// The key columns' positions among them.
    key: Vec<usize>,
    /// The key columns' fields.
    key_schema: Arc<Schema>,
}

impl Layout {
    fn of(schema: &Schema, target: &Target) -> Result<Layout> {
        let n = table_columns(schema)?;
        let columns: Vec<Arc<Field>> = schema.fields()[..n].to_vec();
        let key = target
            .key
            .iter()
            .map(|k| {
                columns.iter().position(|f| f.name() == k).ok_or_else(|| {
                    Error::usage(format!(
                        "the changes have no column {} (of the key of {}): key the target by \
                         columns the changes carry (--key)",
                        quote_ident(k),
                        target.name
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let key_schema = Arc::new(Schema::new(
            key.iter().map(|&k| columns[k].clone()).collect::<Vec<_>>(),
        ));
        Ok(Layout {
            columns,
            key,
            key_schema,
        })
    }
}

/// Applies one change file to its target, in the caller's transaction.
async fn apply_file(
    client: &mut Client,
    target: &Target,
    at: &Location,
    options: &ApplyOptions,
    stop: &Stop,
    counts: &mut ApplyStats,
) -> Result<()> {
    let input = Input::open(std::slice::from_ref(at), &InputOptions::default())?;
    let schema = input.schema();
    let layout = Layout::of(&schema, target)?;
    let t = &target.name;
    let key_names: Vec<String> = target.key.iter().map(|k| quote_ident(k)).collect();
    let rows_stage = format!("pg_temp.{}", quote_ident(STAGE_ROWS));
    let gone_stage = format!("pg_temp.{}", quote_ident(STAGE_GONE));
    let column_list: Vec<String> = layout
        .columns
        .iter()
        .map(|f| quote_ident(f.name()))
        .collect();
    let sources: Vec<String> = (1..=target.key.len())
        .map(|i| quote_ident(&format!("{STAGE_SOURCE}{i}")))
        .collect();
    let source_list = key_names
        .iter()
        .zip(&sources)
        .map(|(k, s)| format!("{k} AS {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    client
        .connection()
        .simple_query(&format!(
            "CREATE TEMPORARY TABLE {rows_stage} ON COMMIT DROP AS SELECT {}, NULL::text[] AS \
             {unchanged}, {source_list} FROM {t} WITH NO DATA; \
             CREATE TEMPORARY TABLE {gone_stage} ON COMMIT DROP AS SELECT {} FROM {t} WITH NO \
             DATA",
            column_list.join(", "),
            key_names.join(", "),
            unchanged = quote_ident(STAGE_UNCHANGED),
        ))
        .await?;
    let keys = RowEncoder::with_policies(
        &target.key_encoder.columns,
        &target.key_encoder.catalog,
        &layout.key_schema,
        options.policies,
    )
    .map_err(|e| Error::from(ErrorKind::Encode(e)))?;
    let statements = Statements::new(target, &layout, &rows_stage, &gone_stage, &sources);
    counts.files += 1;
    for batch in input {
        if stop.is_stopped() {
            return Err(ErrorKind::Cancelled.into());
        }
        let batch = batch.map_err(|e| Error::from(ErrorKind::Input(e)))?;
        let ops = batch
            .column(layout.columns.len())
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::invalid_input(format!("{OP_COLUMN} is not a text column")))?;
        let mut start = 0;
        for i in 0..=batch.num_rows() {
            if i < batch.num_rows() && ops.value(i) != Op::Truncate.as_str() {
                continue;
            }
            if i > start {
                let run = batch.slice(start, i - start);
                apply_run(
                    client,
                    &run,
                    &layout,
                    &keys,
                    &statements,
                    options.policies,
                    counts,
                )
                .await?;
            }
            if i < batch.num_rows() {
                client
                    .connection()
                    .simple_query(&format!("TRUNCATE ONLY {t}"))
                    .await?;
                counts.truncates += 1;
                counts.changes += 1;
            }
            start = i + 1;
        }
    }
    // The next file of the roll makes its own stage, for its own columns.
    client
        .connection()
        .simple_query(&format!("DROP TABLE {rows_stage}, {gone_stage}"))
        .await?;
    Ok(())
}

/// The statements that apply a run once its effects are staged.
struct Statements {
    rows_stage: String,
    gone_stage: String,
    delete: String,
    update: Option<String>,
    insert: String,
    /// The key is unique in the target: when the update's row count is the number of rows
    /// staged, every one matched a row and the insert has nothing to do.
    key_unique: bool,
    /// The fill of unsent values: its head (`UPDATE stage s SET `) and tail (`FROM target ...`).
    fill: (String, String),
    unfilled: String,
}

impl Statements {
    fn new(
        target: &Target,
        layout: &Layout,
        rows_stage: &str,
        gone_stage: &str,
        sources: &[String],
    ) -> Statements {
        let t = &target.name;
        let keys: Vec<String> = target.key.iter().map(|k| quote_ident(k)).collect();
        let on = |a: &str, b: &str| {
            keys.iter()
                .map(|k| format!("{a}.{k} = {b}.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let columns: Vec<String> = layout
            .columns
            .iter()
            .map(|f| quote_ident(f.name()))
            .collect();
        let sets: Vec<String> = columns
            .iter()
            .filter(|c| !keys.contains(c))
            .map(|c| format!("{c} = s.{c}"))
            .collect();
        let unchanged = quote_ident(STAGE_UNCHANGED);
        let from_source = keys
            .iter()
            .zip(sources)
            .map(|(k, s)| format!("t.{k} = s.{s}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        Statements {
            rows_stage: rows_stage.to_owned(),
            gone_stage: gone_stage.to_owned(),
            delete: format!(
                "WITH d AS (DELETE FROM {t} t USING {gone_stage} s WHERE {} RETURNING 1) \
                 SELECT count(*) FROM d",
                on("t", "s")
            ),
            key_unique: target.key_unique,
            update: (!sets.is_empty()).then(|| {
                format!(
                    "UPDATE {t} t SET {} FROM {rows_stage} s WHERE {}",
                    sets.join(", "),
                    on("t", "s")
                )
            }),
            insert: format!(
                "INSERT INTO {t} ({list}) OVERRIDING SYSTEM VALUE SELECT {list} FROM \
                 {rows_stage} s WHERE NOT EXISTS (SELECT FROM {t} t WHERE {})",
                on("t", "s"),
                list = columns.join(", ")
            ),
            fill: (
                format!("UPDATE {rows_stage} s SET "),
                format!(
                    ", {unchanged} = NULL FROM {t} t WHERE s.{unchanged} IS NOT NULL AND \
                     {from_source}"
                ),
            ),
            unfilled: format!("SELECT count(*) FROM {rows_stage} WHERE {unchanged} IS NOT NULL"),
        }
    }
}

/// Applies one run of changes (no truncate among them) to the target, in five steps a reader
/// can follow: read and check the run ([`read_run`]), reduce it to the last effect on each key
/// ([`reduce`]), stage the effects as two batches ([`stage`]), and run the statements that
/// fill unsent values, delete and upsert ([`execute`]).
async fn apply_run(
    client: &mut Client,
    run: &RecordBatch,
    layout: &Layout,
    keys: &RowEncoder,
    statements: &Statements,
    policies: EncodePolicies,
    counts: &mut ApplyStats,
) -> Result<()> {
    let read = read_run(run, layout, keys)?;
    let effects = reduce(&read.changes(), layout.columns.len())
        .map_err(|e| Error::invalid_input(format!("{} of the run: {e}", run.num_rows())))?;
    counts.changes += run.num_rows() as u64;
    let staged = stage(run, layout, &read, &effects)?;
    execute(client, statements, layout, staged, policies, counts).await
}

/// A run's changes as read from its batch: each change's operation, its keys as the target's
/// types encode them (equal keys, equal bytes), and the columns it did not send.
#[derive(Debug)]
struct ReadRun {
    ops: Vec<Op>,
    /// The key columns of the rows, and of the old images.
    new_keys: Vec<ArrayRef>,
    old_keys: Vec<ArrayRef>,
    /// The keys encoded, and each row's range in them.
    new_body: Vec<u8>,
    old_body: Vec<u8>,
    new_rows: Vec<Range<usize>>,
    old_rows: Vec<Range<usize>>,
    /// Per change, whether it is an update that sent its old key.
    has_old: Vec<bool>,
    /// Per change, the columns (by position) whose values it did not send.
    unchanged: Vec<Vec<usize>>,
}

impl ReadRun {
    /// The changes, as the reduction takes them.
    fn changes(&self) -> Vec<Change<'_>> {
        (0..self.ops.len())
            .map(|i| Change {
                op: self.ops[i],
                key: &self.new_body[self.new_rows[i].clone()],
                old_key: self.has_old[i].then(|| &self.old_body[self.old_rows[i].clone()]),
                unchanged: self.unchanged[i].clone(),
            })
            .collect()
    }
}

/// Reads and checks a run: a change file that holds what pgarrow never writes (an unknown
/// operation, a misshapen metadata column, an unchanged column that is no column apply fills)
/// is an input error; a change without a value for a key column (a replica identity that does
/// not cover the target's key) cannot be applied ([`Error::out_of_step`]). Each names the
/// change by its LSN.
fn read_run(run: &RecordBatch, layout: &Layout, keys: &RowEncoder) -> Result<ReadRun> {
    let n = layout.columns.len();
    let ops = run
        .column(n)
        .as_string_opt::<i32>()
        .ok_or_else(|| Error::invalid_input(format!("{OP_COLUMN} is not a text column")))?;
    let lsns = run
        .column(n + 1)
        .as_primitive_opt::<arrow_array::types::UInt64Type>();
    let unchanged = run
        .column(n + 5)
        .as_list_opt::<i32>()
        .ok_or_else(|| Error::invalid_input(format!("{UNCHANGED_COLUMN} is not a list column")))?;
    let old = run
        .column(n + 6)
        .as_struct_opt()
        .ok_or_else(|| Error::invalid_input(format!("{OLD_COLUMN} is not a struct column")))?;
    let change_at = |i: usize| match lsns {
        Some(l) => format!("the change at LSN {}", Lsn(l.value(i))),
        None => format!("change {}", i + 1),
    };
    let key_body = |arrays: Vec<ArrayRef>| -> Result<Vec<u8>> {
        let batch = RecordBatch::try_new(layout.key_schema.clone(), arrays)
            .map_err(|e| Error::internal(format!("the key columns: {e}")))?;
        let mut body = Vec::new();
        keys.encode(&batch, 0, &mut body)
            .map_err(|e| Error::from(ErrorKind::Encode(e)))?;
        Ok(body)
    };
    let new_keys: Vec<ArrayRef> = layout.key.iter().map(|&k| run.column(k).clone()).collect();
    let old_keys: Vec<ArrayRef> = layout.key.iter().map(|&k| old.column(k).clone()).collect();
    let new_body = key_body(new_keys.clone())?;
    let old_body = key_body(old_keys.clone())?;
    let split = |body: &[u8]| split_rows(body, layout.key.len()).map_err(Error::internal);
    let (new_rows, old_rows) = (split(&new_body)?, split(&old_body)?);
    let rows = run.num_rows();
    let (mut read_ops, mut has_olds, mut unsent) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    for i in 0..rows {
        let op = match ops.value(i) {
            "insert" => Op::Insert,
            "update" => Op::Update,
            "delete" => Op::Delete,
            other => {
                return Err(Error::invalid_input(format!(
                    "{}: {OP_COLUMN} is {other:?}, not insert, update, delete or truncate",
                    change_at(i)
                )));
            }
        };
        let has_old = op == Op::Update && old.is_valid(i);
        let missing = |arrays: &[ArrayRef]| {
            arrays
                .iter()
                .position(|a| a.is_null(i))
                .map(|p| layout.columns[layout.key[p]].name().clone())
        };
        if let Some(column) =
            missing(&new_keys).or_else(|| has_old.then(|| missing(&old_keys)).flatten())
        {
            return Err(Error::out_of_step(format!(
                "{} ({}) has no value for the key column {}: the source's replica identity \
                 must cover the target's key",
                change_at(i),
                op.as_str(),
                quote_ident(&column)
            )));
        }
        let mut columns = Vec::new();
        if unchanged.is_valid(i) {
            let names = unchanged.value(i);
            let names = names.as_string::<i32>();
            for name in names.iter().flatten() {
                if name.starts_with("_old.") {
                    continue;
                }
                match layout.columns.iter().position(|f| f.name() == name) {
                    Some(c) if !layout.key.contains(&c) => columns.push(c),
                    _ => {
                        return Err(Error::invalid_input(format!(
                            "{}: {UNCHANGED_COLUMN} names {name:?}, which is not a column \
                             apply can fill (a key column, or none of the table's)",
                            change_at(i)
                        )));
                    }
                }
            }
        }
        read_ops.push(op);
        has_olds.push(has_old);
        unsent.push(columns);
    }
    Ok(ReadRun {
        ops: read_ops,
        new_keys,
        old_keys,
        new_body,
        old_body,
        new_rows,
        old_rows,
        has_old: has_olds,
        unchanged: unsent,
    })
}

/// A run's effects as the two batches the statements read: the keys gone (deleted, or
/// replaced by an update of the key), and the rows kept, with the names of the columns whose
/// values come from the target's row (`_pgarrow_unchanged`) and where that row is
/// (`_pgarrow_src_N`).
struct Staged {
    gone: Option<RecordBatch>,
    kept: Option<RecordBatch>,
    /// The columns some kept row takes from the target.
    filled: Vec<usize>,
}

/// Stages the effects of a run: pure, no server involved.
fn stage(run: &RecordBatch, layout: &Layout, read: &ReadRun, effects: &[Effect]) -> Result<Staged> {
    let n = layout.columns.len();
    let mut kept: Vec<&Kept> = Vec::new();
    let mut gone: Vec<KeyAt> = Vec::new();
    for effect in effects {
        match effect {
            Effect::Keep(k) => kept.push(k),
            Effect::Gone(at) => gone.push(*at),
        }
    }
    // The key columns of the changes `at` point to.
    let pick = |at: &[KeyAt]| -> Result<Vec<ArrayRef>> {
        let indices: Vec<(usize, usize)> = at
            .iter()
            .map(|a| match *a {
                KeyAt::New(r) => (0, r as usize),
                KeyAt::Old(r) => (1, r as usize),
            })
            .collect();
        read.new_keys
            .iter()
            .zip(read.old_keys.iter())
            .map(|(new, old)| {
                arrow_select::interleave::interleave(&[new.as_ref(), old.as_ref()], &indices)
                    .map_err(|e| Error::internal(format!("gathering keys: {e}")))
            })
            .collect()
    };
    let gone = match gone.is_empty() {
        true => None,
        false => Some(
            RecordBatch::try_new(layout.key_schema.clone(), pick(&gone)?)
                .map_err(|e| Error::internal(format!("the deleted keys: {e}")))?,
        ),
    };
    let mut filled: Vec<usize> = Vec::new();
    if kept.is_empty() {
        return Ok(Staged {
            gone,
            kept: None,
            filled,
        });
    }
    let mut fields: Vec<Arc<Field>> = layout.columns.clone();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(n + 1 + layout.key.len());
    for c in 0..n {
        let indices: UInt32Array = kept.iter().map(|k| k.value_row(c)).collect();
        if kept.iter().any(|k| k.value_row(c).is_none()) {
            filled.push(c);
        }
        arrays.push(
            arrow_select::take::take(run.column(c).as_ref(), &indices, None)
                .map_err(|e| Error::internal(format!("gathering rows: {e}")))?,
        );
    }
    let mut names = ListBuilder::new(StringBuilder::new());
    for k in &kept {
        let missing: Vec<usize> = (0..n).filter(|&c| k.value_row(c).is_none()).collect();
        if missing.is_empty() {
            names.append_null();
        } else {
            for c in missing {
                names.values().append_value(layout.columns[c].name());
            }
            names.append(true);
        }
    }
    let names = names.finish();
    fields.push(Arc::new(Field::new(
        STAGE_UNCHANGED,
        names.data_type().clone(),
        true,
    )));
    arrays.push(Arc::new(names));
    let sources: Vec<KeyAt> = kept.iter().map(|k| k.source).collect();
    for (i, array) in pick(&sources)?.into_iter().enumerate() {
        let field = layout.columns[layout.key[i]].as_ref().clone();
        fields.push(Arc::new(
            field.with_name(format!("{STAGE_SOURCE}{}", i + 1)),
        ));
        arrays.push(array);
    }
    let kept = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| Error::internal(format!("the rows kept: {e}")))?;
    Ok(Staged {
        gone,
        kept: Some(kept),
        filled,
    })
}

/// The statement that fills the `filled` columns of the staged rows from the target's rows,
/// where a change did not send them (TOASTed values an update left alone).
fn fill_statement(statements: &Statements, layout: &Layout, filled: &[usize]) -> String {
    let sets = filled
        .iter()
        .map(|&c| {
            let name = layout.columns[c].name();
            format!(
                "{q} = CASE WHEN {lit} = ANY(s.{u}) THEN t.{q} ELSE s.{q} END",
                q = quote_ident(name),
                lit = quote_literal(name),
                u = quote_ident(STAGE_UNCHANGED)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let (head, tail) = &statements.fill;
    format!("{head}{sets}{tail}")
}

/// Loads the staged batches into the session's stage tables and runs the statements: the
/// fill of unsent values (a row the target lacks is a target out of step), the delete and
/// the upsert. Counts what was deleted and upserted.
async fn execute(
    client: &mut Client,
    statements: &Statements,
    layout: &Layout,
    staged: Staged,
    policies: EncodePolicies,
    counts: &mut ApplyStats,
) -> Result<()> {
    client
        .connection()
        .simple_query(&format!(
            "TRUNCATE {}, {}",
            statements.rows_stage, statements.gone_stage
        ))
        .await?;
    let load = LoadOptions::new(LoadMode::Append).with_policies(policies);
    let gone = staged.gone.is_some();
    if let Some(batch) = staged.gone {
        client
            .load(
                TableName::new(Some("pg_temp"), STAGE_GONE),
                &layout.key_schema,
                vec![Ok::<_, ArrowError>(batch)],
                load.clone(),
            )
            .await?;
    }
    let kept = staged.kept.as_ref().map_or(0, RecordBatch::num_rows);
    if let Some(batch) = staged.kept {
        let schema = batch.schema();
        client
            .load(
                TableName::new(Some("pg_temp"), STAGE_ROWS),
                schema.as_ref(),
                vec![Ok::<_, ArrowError>(batch)],
                load,
            )
            .await?;
    }
    let conn = client.connection();
    if !staged.filled.is_empty() {
        conn.simple_query(&fill_statement(statements, layout, &staged.filled))
            .await?;
        let left = count(conn.simple_query(&statements.unfilled).await?);
        if left > 0 {
            return Err(Error::out_of_step(format!(
                "{left} updated row(s) did not send unchanged TOASTed values, and the target has \
                 no row to take them from: the target is not in step with the source (apply \
                 the changes from the point its copy was taken)"
            )));
        }
    }
    if gone {
        counts.deleted += count(conn.simple_query(&statements.delete).await?);
    }
    if kept > 0 {
        let updated = match &statements.update {
            Some(update) => conn.execute(update).await?.unwrap_or(0),
            None => 0,
        };
        if !(statements.key_unique && updated == kept as u64) {
            conn.execute(&statements.insert).await?;
        }
        counts.upserted += kept as u64;
    }
    Ok(())
}

/// The first value of the first row.
fn first_value(rows: Vec<pgarrow::protocol::TextRow>) -> Option<String> {
    rows.into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
}

/// The first value of the first row, as a count.
fn count(rows: Vec<pgarrow::protocol::TextRow>) -> u64 {
    first_value(rows).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;

    #[test]
    fn rows_of_a_copy_body_are_split() {
        let mut body = Vec::new();
        for (a, b) in [(Some(&b"xy"[..]), None), (None, Some(&b""[..]))] {
            body.extend_from_slice(&2i16.to_be_bytes());
            for v in [a, b] {
                match v {
                    Some(v) => {
                        body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        body.extend_from_slice(v);
                    }
                    None => body.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
        }
        let rows = split_rows(&body, 2).unwrap();
        assert_eq!(rows, [0..12, 12..22]);
        assert!(split_rows(&body[..20], 2).is_err());
    }

    #[test]
    fn only_the_change_columns_changes_to_writes_are_taken() {
        let table = Fields::from(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("v", DataType::Utf8, true),
        ]);
        let mut fields: Vec<Field> = table.iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(meta_fields(&table));
        assert_eq!(table_columns(&Schema::new(fields.clone())).unwrap(), 2);
        // Each change column of another type, or missing, is refused by name: never read.
        let base = fields.len() - 7;
        for i in 0..7 {
            let mut bad = fields.clone();
            bad[base + i] = Field::new(bad[base + i].name(), DataType::Int64, true);
            let e = table_columns(&Schema::new(bad)).unwrap_err().to_string();
            assert!(
                e.contains("not a file of changes") && e.contains("Int64"),
                "{e}"
            );
        }
        // `_unchanged` of numbers; `_old` with other columns than the table's.
        let mut bad = fields.clone();
        bad[base + 5] = Field::new(
            UNCHANGED_COLUMN,
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            true,
        );
        assert!(table_columns(&Schema::new(bad)).is_err());
        let mut bad = fields.clone();
        bad[base + 6] = Field::new(OLD_COLUMN, DataType::Struct(table[..1].into()), true);
        assert!(table_columns(&Schema::new(bad)).is_err());
        assert!(table_columns(&Schema::new(fields[..3].to_vec())).is_err());
        let e = table_columns(&Schema::new(fields[base + 1..].to_vec())).unwrap_err();
        assert!(e.to_string().contains("fewer than"), "{e}");
    }

    #[test]
    fn rolls_follow_the_checkpoints() {
        let file = |path: &str, lsn: &str| ChangesFile {
            path: path.into(),
            checkpoint_lsn: lsn.into(),
            ..ChangesFile::default()
        };
        let files = [file("a", "0/10"), file("b", "0/10"), file("c", "0/20")];
        let r = rolls(&files).unwrap();
        let paths: Vec<Vec<&str>> = r
            .iter()
            .map(|r| r.files.iter().map(|f| f.path.as_str()).collect())
            .collect();
        assert_eq!(paths, [vec!["a", "b"], vec!["c"]]);
        let backwards = [file("a", "0/20"), file("b", "0/10")];
        assert!(rolls(&backwards).is_err());
    }

    /// A run of `ops` on table `(id int4, v text)` keyed by `id`, with `ids` (None: no key).
    fn run_of(
        ops: &[&str],
        ids: &[Option<i32>],
        unchanged: &[Option<&str>],
    ) -> (RecordBatch, Layout) {
        use arrow_array::builder::ListBuilder;
        use arrow_array::{Int32Array, StringArray, UInt64Array, new_null_array};
        let table: Fields = vec![
            Field::new("id", DataType::Int32, true),
            Field::new("v", DataType::Utf8, true),
        ]
        .into();
        let mut fields: Vec<Field> = table.iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(meta_fields(&table));
        let schema = Arc::new(Schema::new(fields));
        let n = ops.len();
        let mut names = ListBuilder::new(StringBuilder::new());
        for u in unchanged {
            match u {
                Some(name) => {
                    names.values().append_value(name);
                    names.append(true);
                }
                None => names.append_null(),
            }
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(ids.to_vec())),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("v{i}")),
            )),
            Arc::new(StringArray::from_iter_values(ops.iter().copied())),
            Arc::new(UInt64Array::from_iter_values(
                (0..n as u64).map(|i| 0x100 + i),
            )),
        ];
        columns.push(Arc::new(UInt64Array::from(vec![0x200; n])));
        columns.push(Arc::new(
            arrow_array::TimestampMicrosecondArray::from(vec![0; n]).with_timezone("UTC"),
        ));
        columns.push(Arc::new(UInt32Array::from(vec![7; n])));
        columns.push(Arc::new(names.finish()));
        columns.push(new_null_array(schema.field(8).data_type(), n));
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let layout = Layout {
            columns: schema.fields()[..2].to_vec(),
            key: vec![0],
            key_schema: Arc::new(Schema::new(vec![schema.field(0).clone()])),
        };
        (batch, layout)
    }

    fn int4_keys(layout: &Layout) -> RowEncoder {
        let id = pgarrow_decode::PgColumn::new("id", pgarrow::types::oid::INT4, -1);
        RowEncoder::new(
            [&id],
            &pgarrow_decode::mapping::Catalog::new(),
            &layout.key_schema,
        )
        .unwrap()
    }

    #[test]
    fn a_run_is_read_with_its_keys_and_unsent_columns() {
        let (run, layout) = run_of(
            &["insert", "update", "delete"],
            &[Some(1), Some(1), Some(2)],
            &[None, Some("v"), None],
        );
        let read = read_run(&run, &layout, &int4_keys(&layout)).unwrap();
        assert_eq!(read.ops, [Op::Insert, Op::Update, Op::Delete]);
        assert_eq!(read.unchanged, [vec![], vec![1], vec![]]);
        let changes = read.changes();
        assert_eq!(changes[0].key, changes[1].key, "equal keys, equal bytes");
        assert_ne!(changes[0].key, changes[2].key);
        let effects = reduce(&changes, 2).unwrap();
        let staged = stage(&run, &layout, &read, &effects).unwrap();
        assert_eq!(staged.gone.as_ref().map(RecordBatch::num_rows), Some(1));
        let kept = staged.kept.unwrap();
        assert_eq!(kept.num_rows(), 1, "key 1's last change wins");
        assert_eq!(kept.schema().field(2).name(), STAGE_UNCHANGED);
        assert_eq!(kept.schema().field(3).name(), &format!("{STAGE_SOURCE}1"));
        assert!(
            staged.filled.is_empty(),
            "the update's unsent v comes from the insert before it in the run"
        );
        // Alone in its run, the update's unsent value comes from the target.
        let (run, layout) = run_of(&["update"], &[Some(1)], &[Some("v")]);
        let read = read_run(&run, &layout, &int4_keys(&layout)).unwrap();
        let effects = reduce(&read.changes(), 2).unwrap();
        let staged = stage(&run, &layout, &read, &effects).unwrap();
        assert!(staged.gone.is_none());
        assert_eq!(staged.filled, [1]);
    }

    #[test]
    fn a_malformed_run_is_an_input_error_and_a_missing_key_a_value_error() {
        let (run, layout) = run_of(&["insert", "upsert"], &[Some(1), Some(2)], &[None, None]);
        let e = read_run(&run, &layout, &int4_keys(&layout)).unwrap_err();
        assert_eq!(e.category(), pgarrow::Category::Input, "{e}");
        assert!(
            e.to_string().contains("LSN 0/101") && e.to_string().contains("\"upsert\""),
            "{e}"
        );
        let (run, layout) = run_of(&["insert"], &[Some(1)], &[Some("id")]);
        let e = read_run(&run, &layout, &int4_keys(&layout)).unwrap_err();
        assert_eq!(e.category(), pgarrow::Category::Input, "{e}");
        let (run, layout) = run_of(&["delete"], &[None], &[None]);
        let e = read_run(&run, &layout, &int4_keys(&layout)).unwrap_err();
        assert_eq!(e.category(), pgarrow::Category::Value, "{e}");
        assert!(e.to_string().contains("replica identity"), "{e}");
    }

    #[test]
    fn the_fill_sets_only_the_unsent_columns() {
        let (_, layout) = run_of(&[], &[], &[]);
        let statements = Statements {
            rows_stage: String::new(),
            gone_stage: String::new(),
            delete: String::new(),
            update: None,
            insert: String::new(),
            key_unique: true,
            fill: ("UPDATE s SET ".into(), " FROM t".into()),
            unfilled: String::new(),
        };
        assert_eq!(
            fill_statement(&statements, &layout, &[1]),
            "UPDATE s SET \"v\" = CASE WHEN 'v' = ANY(s.\"_pgarrow_unchanged\") THEN t.\"v\" \
             ELSE s.\"v\" END FROM t"
        );
    }
}
