//! Loading Arrow data into a table: binary `COPY ... FROM STDIN` in one transaction, appending,
//! replacing the table's rows, or upserting on a key.

use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Schema};
use pgarrow_encode::{EncodePolicies, HEADER, RowEncoder, TRAILER};

use crate::create::create_table;
use crate::names::IntoTableName;
use crate::names::write_target;
use crate::policy::{LossKind, LossReport, Losses};
use crate::protocol::{Connection, TransactionStatus};
use crate::{Client, ColumnMapping, Error, ErrorKind, Hooks, Result, Source};

mod statements;

use statements::LoadStatements;

/// What a load does with the rows already in the table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LoadMode {
    /// Adds the rows.
    #[default]
    Append,
    /// Replaces every row (`TRUNCATE` in the same transaction).
    Replace,
    /// Inserts rows whose key is new and updates the others, through a temporary table and
    /// `INSERT ... ON CONFLICT (key) DO UPDATE`. The key must have a unique index.
    Upsert {
        /// The key columns.
        key: Vec<String>,
    },
}

/// What a load did. Its document form (`--json`, Python's dict) names times in seconds:
/// `total_s`, `connect_s`, `describe_s`, `read_s`, `encode_s`, `send_s`, `commit_s`, and
/// the lossy conversions as `losses` (per column and kind, as an export's).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct LoadStats {
    /// Rows loaded (as the server counted them).
    pub rows: u64,
    /// Bytes of COPY data sent.
    pub bytes: u64,
    /// Wall time.
    #[serde(rename = "total_s", serialize_with = "crate::stats::seconds")]
    pub total: Duration,
    /// Connecting, where the load made its connection ([`crate::blocking::load`]); zero
    /// when it was given one.
    #[serde(rename = "connect_s", serialize_with = "crate::stats::seconds")]
    pub connect: Duration,
    /// Describing the table.
    #[serde(rename = "describe_s", serialize_with = "crate::stats::seconds")]
    pub describe: Duration,
    /// Reading the input (the batches' iterator).
    #[serde(rename = "read_s", serialize_with = "crate::stats::seconds")]
    pub read: Duration,
    /// Encoding rows.
    #[serde(rename = "encode_s", serialize_with = "crate::stats::seconds")]
    pub encode: Duration,
    /// Sending them, and the server taking them.
    #[serde(rename = "send_s", serialize_with = "crate::stats::seconds")]
    pub send: Duration,
    /// The upsert's INSERT (if any) and COMMIT.
    #[serde(rename = "commit_s", serialize_with = "crate::stats::seconds")]
    pub commit: Duration,
    /// The values a policy converted with a loss ([`LoadOptions::policies`]), per column.
    #[serde(serialize_with = "crate::stats::loss_report")]
    pub losses: LossReport,
    /// Input columns left out because they are generated columns of the table (the server
    /// computes them).
    pub skipped_generated: Vec<String>,
}

/// How a load runs: what it does with the rows already there, and whether it may create the
/// table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Append, replace or upsert.
    pub mode: LoadMode,
    /// What to do with values their columns cannot hold exactly: by default they are
    /// refused; a policy that takes them counts them ([`LoadStats::losses`]).
    pub policies: EncodePolicies,
    /// Create the table from the input's schema when it does not exist (in the load's
    /// transaction): each column gets the PostgreSQL type its field metadata names
    /// (`pgarrow.pg_type`, as pgarrow exports write it) where that type exists in the target
    /// database, else the type its Arrow type maps to.
    pub create: bool,
    /// The column types `create` gives nested fields without such metadata (a Struct, a
    /// Map, a list of them): one `jsonb` each (the default), or types of their own.
    pub create_nested: CreateNested,
}

/// The column type a created table gives a nested field without pgarrow's metadata (a
/// Struct, a Map, lists of them, as Spark, DuckDB or pyarrow write them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CreateNested {
    /// `jsonb`: an object per Struct or Map, an array per list.
    #[default]
    Json,
    /// A composite type per Struct (named `<table>_<column>`, a nested Struct
    /// `<table>_<column>_<field>`, created in the table's schema unless a type of that name
    /// is there), arrays of them for lists, `hstore` for a Map of text to text (the extension
    /// must be installed), `jsonb` for any other Map.
    Typed,
}

impl std::str::FromStr for CreateNested {
    type Err = Error;

    /// The choice named `name` (`json` or `typed`): how the command line's
    /// `--create-nested`, Python's `create_nested=` and ADBC's `pgarrow.create_nested` read.
    /// An unknown name is an [`ErrorKind::Usage`] naming the choices.
    fn from_str(name: &str) -> Result<CreateNested> {
        match name {
            "json" => Ok(CreateNested::Json),
            "typed" => Ok(CreateNested::Typed),
            other => {
                Err(pgarrow_types::ChoiceError::new("create_nested", other, "json or typed").into())
            }
        }
    }
}

impl std::fmt::Display for CreateNested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CreateNested::Json => "json",
            CreateNested::Typed => "typed",
        })
    }
}

impl LoadOptions {
    /// Options with `mode`, not creating the table.
    pub fn new(mode: LoadMode) -> Self {
        LoadOptions {
            mode,
            policies: EncodePolicies::default(),
            create: false,
            create_nested: CreateNested::Json,
        }
    }

    /// Loads with `policies` for the values their columns cannot hold exactly.
    pub fn with_policies(mut self, policies: EncodePolicies) -> Self {
        self.policies = policies;
        self
    }

    /// Creates the table when it does not exist.
    pub fn with_create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// The types `create` gives nested fields without pgarrow's metadata.
    pub fn with_create_nested(mut self, nested: CreateNested) -> Self {
        self.create_nested = nested;
        self
    }
}

impl LoadMode {
    /// The mode named `mode` (`append`, `replace` or `upsert`), with upsert's `key` columns:
    /// how the command line's `--mode`/`--key` and Python's `mode=`/`key=` are read, with one
    /// message for each mistake.
    ///
    /// # Errors
    /// [`ErrorKind::Usage`]: an unknown mode, an upsert without a key, a key without upsert.
    pub fn parse(mode: &str, key: Option<Vec<String>>) -> Result<LoadMode> {
        let key = key.filter(|k| !k.is_empty());
        match (mode, key) {
            ("append", None) => Ok(LoadMode::Append),
            ("replace", None) => Ok(LoadMode::Replace),
            ("upsert", Some(key)) => Ok(LoadMode::Upsert { key }),
            ("upsert", None) => Err(Error::usage(
                "mode upsert needs a key: the columns of a unique index",
            )),
            ("append" | "replace", Some(_)) => Err(Error::usage(format!(
                "a key applies to mode upsert only, not {mode}"
            ))),
            (other, _) => Err(Error::usage(format!(
                "unknown load mode {other:?}: expected append, replace or upsert"
            ))),
        }
    }

    /// Its name: `append`, `replace` or `upsert`.
    pub fn name(&self) -> &'static str {
        match self {
            LoadMode::Append => "append",
            LoadMode::Replace => "replace",
            LoadMode::Upsert { .. } => "upsert",
        }
    }
}

impl From<&LoadMode> for LoadOptions {
    fn from(mode: &LoadMode) -> Self {
        LoadOptions::new(mode.clone())
    }
}

impl From<LoadMode> for LoadOptions {
    fn from(mode: LoadMode) -> Self {
        LoadOptions::new(mode)
    }
}

impl From<&LoadOptions> for LoadOptions {
    fn from(options: &LoadOptions) -> Self {
        options.clone()
    }
}

/// A load's progress event ([`Hooks`]'s `P` for [`Client::load_with`] and [`copy`](crate::copy)),
/// heard after each chunk of encoded rows is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadProgress {
    /// Input rows sent so far.
    pub rows: u64,
    /// Bytes of binary COPY data sent so far.
    pub bytes: u64,
}

/// How long a stopped load may take to send CopyFail and roll back before its connection is
/// dropped (the server rolls back then too).
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// Bytes of encoded rows handed to the connection at a time.
const SEND_AT: usize = 1 << 20;

impl Client {
    /// Loads `batches` (all of `schema`) into `table` (`name` or `schema.name`) in one
    /// transaction: the input's columns go into the table's columns of the same names (others
    /// get their defaults); every value is checked against its column's type (see
    /// `pgarrow_encode`). A failure of any kind (a value, the server, the input) rolls back:
    /// the table is as it was.
    ///
    /// A `name` without its schema is never a temporary table, though the session's
    /// temporary schema comes first on the search path: it is the table of the first schema
    /// of `current_schemas(false)`, less `pg_temp`, that has a relation of that name, and
    /// [`LoadOptions::create`] makes a missing one in the first of those schemas (not in
    /// `pg_temp`, where a bare `CREATE TABLE` goes when the search path starts with it).
    /// `pg_temp.name` is the session's temporary table.
    ///
    /// `options` is a [`LoadMode`] or [`LoadOptions`]. The batches are read and encoded on a
    /// thread of the load's own, a few chunks ahead of the socket, so that encoding overlaps
    /// the server's work.
    ///
    /// # Errors
    /// An input column the table does not have; one whose type cannot go into its column; a
    /// value that does not fit (column, row, value); the server's error; the input's error;
    /// [`ErrorKind::Usage`] for a name without its schema when the search path names no
    /// schema but `pg_temp`.
    pub async fn load<I>(
        &mut self,
        table: impl IntoTableName,
        schema: &Schema,
        batches: I,
        options: impl Into<LoadOptions>,
    ) -> Result<LoadStats>
    where
        I: IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
        I::IntoIter: Send + 'static,
    {
        self.load_with(table, schema, batches, &options.into(), Hooks::new())
            .await
    }

    /// [`load`](Client::load) with progress and a stop: `hooks`' stop ends the load between
    /// chunks or while it waits on the server (it sends CopyFail, or, with a server that does
    /// not answer within a few seconds, drops the connection, and rolls back); its progress
    /// hears a [`LoadProgress`] after each chunk sent.
    ///
    /// Columns whose type has no binary encoder (`inet`, `bit`, `tsvector`, ...) and take
    /// text are copied into a temporary table as text and cast into the table
    /// ([`RowEncoder::text_columns`]): the server's input function reads them, and its error
    /// for a bad value names the value but not the row.
    ///
    /// # Errors
    /// As [`load`](Client::load), and [`ErrorKind::Cancelled`] when the hooks' stop said so.
    pub async fn load_with<I>(
        &mut self,
        table: impl IntoTableName,
        schema: &Schema,
        batches: I,
        options: &LoadOptions,
        hooks: Hooks<'_, LoadProgress>,
    ) -> Result<LoadStats>
    where
        I: IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
        I::IntoIter: Send + 'static,
    {
        let mut hooks = hooks;
        let started = Instant::now();
        let mut stats = LoadStats::default();
        let table = table.into_table_name()?;
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        // The statements come from names: a usage error is found here, before anything is sent.
        LoadStatements::check(&table, &columns, &options.mode)?;
        let mut schema = std::borrow::Cow::Borrowed(schema);
        let mut keep: Option<Vec<usize>> = None;
        // Inside the caller's transaction block (an ADBC connection without autocommit, say),
        // the load is a savepoint of it: a failure undoes the load alone, and the caller's
        // COMMIT or ROLLBACK decides the rest.
        let conn = self.connection();
        let nested = conn.transaction_status() == TransactionStatus::InBlock;
        let (begin, commit, rollback) = match nested {
            true => (
                "SAVEPOINT _pgarrow_load",
                "RELEASE SAVEPOINT _pgarrow_load",
                "ROLLBACK TO SAVEPOINT _pgarrow_load; RELEASE SAVEPOINT _pgarrow_load",
            ),
            false => ("BEGIN", "COMMIT", "ROLLBACK"),
        };
        conn.simple_query(begin).await?;
        let result = async {
            // Named exactly before anything is read or written, in the load's transaction:
            // a bare name never means a temporary table of that name (see `write_target`).
            let table = write_target(self.connection(), &table).await?;
            let mut load = LoadStatements::new(&table, &columns, &options.mode)?;
            if options.create {
                create_table(self.connection(), &table, &schema, options.create_nested).await?;
            }
            // Generated columns are computed by the server: the input's values for them are
            // left out (and named in the statistics), as COPY would refuse them.
            let generated = generated_columns(self.connection(), &table).await?;
            if columns.iter().any(|c| generated.contains(c)) {
                let kept: Vec<usize> = (0..columns.len())
                    .filter(|&i| !generated.contains(&columns[i]))
                    .collect();
                if kept.is_empty() {
                    return Err(Error::usage(format!(
                        "every input column is a generated column of {table}: nothing to load"
                    )));
                }
                stats.skipped_generated = columns
                    .iter()
                    .filter(|c| generated.contains(c))
                    .cloned()
                    .collect();
                let names: Vec<String> = kept.iter().map(|&i| columns[i].clone()).collect();
                load = LoadStatements::new(&table, &names, &options.mode)?;
                schema = std::borrow::Cow::Owned(
                    schema
                        .project(&kept)
                        .map_err(|e| Error::internal(format!("projecting the input: {e}")))?,
                );
                keep = Some(kept);
            }
            // The target's types, in the input's order (a missing column is the server's
            // error, naming it).
            let plan = self
                .describe(&Source::query(load.describe.as_str()))
                .await
                .map_err(|e| e.context(format!("the columns of {table}")))?;
            let targets = plan.columns.iter().map(|c| &c.column);
            let encoder =
                RowEncoder::with_policies(targets, &plan.catalog, &schema, options.policies)
                    .map_err(|e| Error::from(ErrorKind::Encode(e)))?;
            let text_columns = encoder.text_columns();
            stats.describe = started.elapsed();
            let load = load.with_text_columns(&text_types(&text_columns, &plan.columns)?)?;
            let conn = self.connection();
            for sql in load.before_copy() {
                conn.simple_query(sql).await?;
            }
            let batches = batches.into_iter();
            let batches: Box<dyn Iterator<Item = _> + Send> = match keep.take() {
                None => Box::new(batches),
                Some(kept) => {
                    Box::new(batches.map(move |b: std::result::Result<RecordBatch, _>| {
                        b.and_then(|b| b.project(&kept))
                    }))
                }
            };
            copy_rows(conn, &load.copy, encoder, batches, &mut hooks, &mut stats).await?;
            let t = Instant::now();
            if let Some(insert) = &load.insert {
                conn.simple_query(insert)
                    .await
                    .map_err(|e| load.insert_failed(e.into()))?;
            }
            if let Some(drop) = &load.drop_stage {
                // Dropped now, not at COMMIT: inside a caller's transaction, another load
                // may follow (and would find the stage there).
                conn.simple_query(drop).await?;
            }
            conn.simple_query(commit).await?;
            stats.commit = t.elapsed();
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = result {
            let conn = self.connection();
            if conn.is_ready() {
                let _ = tokio::time::timeout(STOP_GRACE, conn.simple_query(rollback)).await;
            }
            return Err(e);
        }
        stats.total = started.elapsed();
        Ok(stats)
    }
}

/// The generated columns of `table` (none when it does not exist yet).
async fn generated_columns(
    conn: &mut Connection,
    table: &crate::names::TableName,
) -> Result<Vec<String>> {
    let rows = conn
        .simple_query(&format!(
            "SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = \
             to_regclass({})::oid AND attnum > 0 AND NOT attisdropped AND attgenerated <> ''",
            crate::protocol::quote_literal(&table.quoted())
        ))
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect())
}

/// The encoder's text columns with their target columns' types, for [`LoadStatements`].
fn text_types<'a>(
    text_columns: &[usize],
    targets: &'a [ColumnMapping],
) -> Result<Vec<(usize, &'a str)>> {
    text_columns
        .iter()
        .map(|&i| match targets.get(i) {
            Some(c) => Ok((i, c.column.type_name.as_str())),
            None => Err(Error::internal(format!(
                "the encoder's text column {i} is not among the {} target columns",
                targets.len()
            ))),
        })
        .collect()
}

/// Runs the COPY `sql` on `conn`: `batches` are read and encoded on a thread of their own, a
/// few chunks ahead of the socket, and each chunk is sent as it comes (then `hooks.progress`
/// hears of it). `stats` gets the rows the server counted, the bytes sent and the time spent
/// reading, encoding and sending.
///
/// # Errors
/// The input's, the encoder's or the server's error (the server's names the input row: see
/// [`at_input_row`]), or [`ErrorKind::Cancelled`] when `hooks.stop` stops it; the COPY has
/// been failed (CopyFail) then, and the caller rolls back.
async fn copy_rows<I>(
    conn: &mut Connection,
    sql: &str,
    encoder: RowEncoder,
    batches: I,
    hooks: &mut Hooks<'_, LoadProgress>,
    stats: &mut LoadStats,
) -> Result<()>
where
    I: IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
    I::IntoIter: Send + 'static,
{
    let mut copy = conn.copy_in(sql).await?;
    // Reading and encoding run on a thread of their own, a few buffers ahead of the
    // socket: the server takes one buffer while the next is encoded.
    let (chunks, mut encoded) = tokio::sync::mpsc::channel(IN_FLIGHT);
    let (recycle, recycled) = std::sync::mpsc::channel();
    let input = batches.into_iter();
    std::thread::Builder::new()
        .name("pgarrow-load-encode".into())
        .spawn(move || encode_input(input, &encoder, &chunks, &recycled))
        .map_err(|e| Error::internal(format!("cannot start the encoding thread: {e}")))?;
    let stop = hooks.stop.clone();
    let sent: Result<()> = async {
        loop {
            let chunk = stop
                .run(encoded.recv())
                .await?
                .ok_or_else(|| Error::internal("the encoding thread stopped without a word"))??;
            let t = Instant::now();
            stop.run(copy.write(&chunk.buf)).await??;
            stats.send += t.elapsed();
            hooks.report(&LoadProgress {
                rows: chunk.rows,
                bytes: copy.bytes(),
            });
            if let Some(last) = chunk.last {
                (stats.read, stats.encode) = (last.read, last.encode);
                stats.losses = last.losses;
                return Ok(());
            }
            let _ = recycle.send(chunk.buf);
        }
    }
    .await;
    // Whatever happened, the encoding thread stops at its next send.
    drop(encoded);
    stats.bytes = copy.bytes();
    if let Err(e) = sent.map_err(at_input_row) {
        // The server discards what it took; its own error, if it has one, is the same as
        // ours or follows from it. A stopped load gives a server that does not read a few
        // seconds, then drops the connection (which rolls back too).
        let message = format!("pgarrow: {e}");
        let fail = copy.fail(&message);
        match e.is_cancelled() {
            true => drop(tokio::time::timeout(STOP_GRACE, fail).await),
            false => drop(fail.await),
        }
        return Err(e);
    }
    let t = Instant::now();
    stats.rows = copy.finish().await.map_err(|e| at_input_row(e.into()))?;
    stats.send += t.elapsed();
    Ok(())
}

/// Encoded rows on their way to the socket.
struct Chunk {
    /// Whole rows of binary COPY data (the header first, the trailer last).
    buf: Vec<u8>,
    /// Input rows encoded so far.
    rows: u64,
    /// With the last chunk: what the encoding thread measured and counted.
    last: Option<Last>,
}

/// What the encoding thread tells with its last chunk.
struct Last {
    /// Time spent reading the input.
    read: Duration,
    /// Time spent encoding.
    encode: Duration,
    /// The conversions a policy made.
    losses: LossReport,
}

/// The encoder's counts as a report of the export's kind.
fn encoder_losses(encoder: &RowEncoder) -> LossReport {
    LossReport {
        columns: encoder
            .rounded()
            .into_iter()
            .map(|(column, n)| {
                let mut losses = Losses::default();
                losses.add(LossKind::NanosecondsRounded, n);
                (column, losses)
            })
            .collect(),
    }
}

/// Chunks in flight between the encoding thread and the socket (about 1 MiB each).
const IN_FLIGHT: usize = 4;
/// Rows encoded at a time, so that chunks stay near [`SEND_AT`] whatever the batch size.
const SLICE_ROWS: usize = 4096;

/// The encoding thread: reads `input`, encodes it in slices of [`SLICE_ROWS`] and hands
/// chunks of about [`SEND_AT`] bytes to `chunks` (buffers come back through `recycled`). Ends
/// after the last chunk, at the first error (sent), or when the receiver is gone.
fn encode_input(
    input: impl Iterator<Item = std::result::Result<RecordBatch, ArrowError>>,
    encoder: &RowEncoder,
    chunks: &tokio::sync::mpsc::Sender<Result<Chunk>>,
    recycled: &std::sync::mpsc::Receiver<Vec<u8>>,
) {
    let capacity = SEND_AT + SEND_AT / 2;
    let mut buf = Vec::with_capacity(capacity);
    buf.extend_from_slice(HEADER);
    let (mut read, mut encode) = (Duration::ZERO, Duration::ZERO);
    let mut row = 0u64;
    let mut read_started = Instant::now();
    for batch in input {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                let _ = chunks.blocking_send(Err(ErrorKind::Input(e).into()));
                return;
            }
        };
        read += read_started.elapsed();
        let mut offset = 0;
        while offset < batch.num_rows() {
            let n = SLICE_ROWS.min(batch.num_rows() - offset);
            let t = Instant::now();
            let encoded = encoder.encode(&batch.slice(offset, n), row + offset as u64, &mut buf);
            encode += t.elapsed();
            if let Err(e) = encoded {
                let _ = chunks.blocking_send(Err(ErrorKind::Encode(e).into()));
                return;
            }
            offset += n;
            if buf.len() >= SEND_AT {
                let mut next = recycled
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(capacity));
                next.clear();
                let chunk = Chunk {
                    buf: std::mem::replace(&mut buf, next),
                    rows: row + offset as u64,
                    last: None,
                };
                if chunks.blocking_send(Ok(chunk)).is_err() {
                    return;
                }
            }
        }
        row += batch.num_rows() as u64;
        read_started = Instant::now();
    }
    buf.extend_from_slice(TRAILER);
    let _ = chunks.blocking_send(Ok(Chunk {
        buf,
        rows: row,
        last: Some(Last {
            read,
            encode,
            losses: encoder_losses(encoder),
        }),
    }));
}

/// A server error raised by the COPY names its line (`COPY t, line 3, column v: ...`): the
/// input row of that number (both count from 1, as the export's errors do).
fn at_input_row(e: Error) -> Error {
    let Some(context) = e.as_db_error().and_then(|d| d.where_.clone()) else {
        return e;
    };
    let Some(rest) = context.strip_prefix("COPY ") else {
        return e;
    };
    let mut parts = rest.split(", ");
    let _table = parts.next();
    let Some(line) = parts
        .next()
        .and_then(|l| l.strip_prefix("line "))
        .and_then(|l| l.parse::<u64>().ok())
    else {
        return e;
    };
    // The context names the column for a value its input function refused; a constraint's
    // error names it in its own field.
    let column = parts
        .next()
        .and_then(|c| c.strip_prefix("column "))
        .map(|c| c.split(':').next().unwrap_or(c).to_owned())
        .or_else(|| e.as_db_error().and_then(|d| d.column.clone()))
        .map(|c| format!("column \"{c}\", "))
        .unwrap_or_default();
    e.context(format!("{column}row {line} of the input"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every word reads as its choice and prints as itself; another word is a usage error
    /// naming it and the words taken (the choices of other modules are checked with it too).
    pub(crate) fn round_trips<T>(words: &[&str], wrong: &str, expected: &str)
    where
        T: std::str::FromStr<Err = crate::Error> + std::fmt::Display,
    {
        for word in words {
            let parsed: T = word.parse().unwrap_or_else(|e| panic!("{word}: {e}"));
            assert_eq!(parsed.to_string(), *word);
        }
        let Err(e) = wrong.parse::<T>() else {
            panic!("{wrong} was taken")
        };
        assert!(e.is_usage(), "{e}");
        let message = e.to_string();
        assert!(message.contains(&format!("{wrong:?}")), "{message}");
        assert!(message.contains(expected), "{message}");
    }

    #[test]
    fn create_nested_and_domains_round_trip() {
        round_trips::<CreateNested>(&["json", "typed"], "jsonb", "json or typed");
        round_trips::<crate::copy::Domains>(&["define", "base"], "drop", "define or base");
    }

    #[test]
    fn modes_parse_with_their_keys() {
        assert_eq!(LoadMode::parse("append", None).unwrap(), LoadMode::Append);
        let key = Some(vec!["id".to_owned()]);
        assert_eq!(
            LoadMode::parse("upsert", key.clone()).unwrap(),
            LoadMode::Upsert {
                key: vec!["id".to_owned()]
            }
        );
        for (mode, key) in [("upsert", None), ("replace", key), ("merge", None)] {
            assert!(LoadMode::parse(mode, key).unwrap_err().is_usage(), "{mode}");
        }
    }
}
