//! The change stream itself: a replication connection running `START_REPLICATION` with
//! `pgoutput`, its messages decoded into [`ChangeEvent`]s.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use pgarrow_decode::{ColumnMapping, DecodeOptions};
use pgarrow_protocol::FieldDescription;
use pgarrow_protocol::ReplicationStream;
use pgarrow_protocol::replication::{
    Lsn, Message, OldRow, PgOutputParser, RelationColumn, StreamMessage, parse_stream_message,
};

use pgarrow::Hooks;
use pgarrow::names::TableName;
use pgarrow::policy::Policies;
use pgarrow::protocol::{Config, Connection, quote_ident, quote_literal};
use pgarrow::{Error, ErrorKind, IntoConfig, Result};

use crate::decode::{self, ChangeAt, Op, RelationDecoder};
use crate::streamed::{Replay, Streamed, StreamedStats};

/// How values are asked for; read from text by its [`FromStr`](std::str::FromStr) (`auto`,
/// `binary`, `text`), the one parser of the CLI's `--values` and Python's `values=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ValueFormat {
    /// Binary where the server can send it (PostgreSQL 14+), else text.
    #[default]
    Auto,
    /// Each type's binary send format, decoded to the export's Arrow types (14+).
    Binary,
    /// Text: every column is text.
    Text,
}

impl std::str::FromStr for ValueFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<ValueFormat> {
        match s {
            "auto" => Ok(ValueFormat::Auto),
            "binary" => Ok(ValueFormat::Binary),
            "text" => Ok(ValueFormat::Text),
            other => Err(pgarrow::policy::ChoiceError::new(
                "value format",
                other,
                "auto, binary or text",
            )
            .into()),
        }
    }
}

impl std::fmt::Display for ValueFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ValueFormat::Auto => "auto",
            ValueFormat::Binary => "binary",
            ValueFormat::Text => "text",
        })
    }
}

/// What to stream and how: [`ChangeOptions::new`], then `with_*`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChangeOptions {
    /// The logical replication slot (output plugin `pgoutput`).
    pub slot: String,
    /// The publications whose tables' changes are sent.
    pub publications: Vec<String>,
    /// Create the slot when it does not exist (its changes then start now).
    pub create_slot: bool,
    /// Start after this position (transactions committed before it are skipped), when it is
    /// past the slot's confirmed position.
    pub start: Option<Lsn>,
    /// Binary or text values.
    pub values: ValueFormat,
    /// How batches are cut (rows, bytes).
    pub decode: DecodeOptions,
    /// What to do where a value has no exact Arrow form.
    pub policies: Policies,
    /// A checkpoint comes at the first transaction boundary after this long since the last,
    /// or after [`flush_rows`](Self::flush_rows) rows, whichever comes first.
    pub flush_interval: Duration,
    /// A checkpoint comes at the first transaction boundary once this many rows were
    /// delivered or buffered since the last.
    pub flush_rows: u64,
    /// End once every change committed before the stream started is delivered (a batch job,
    /// run again later), instead of streaming until stopped.
    pub catch_up: bool,
    /// How often the slot is told the position confirmed, at least.
    pub status_interval: Duration,
    /// Let the server send a large transaction in parts before its commit (`streaming`,
    /// PostgreSQL 14+; past its `logical_decoding_work_mem`): the parts are set aside on local
    /// disk under [`spill_dir`](Self::spill_dir) and delivered at the commit, in commit order
    /// like every other transaction; an aborted one leaves nothing. Off, the server holds such a
    /// transaction (spilling it on its side) and sends it whole once committed.
    pub streaming: bool,
    /// Where streamed transactions are set aside (the system's temporary directory when
    /// `None`).
    pub spill_dir: Option<std::path::PathBuf>,
    /// While nothing comes, a checkpoint at the last position delivered every
    /// [`flush_interval`](Self::flush_interval) (at least a second) all the same: a consumer
    /// that does its own upkeep at checkpoints gets to it on an idle source.
    pub idle_checkpoints: bool,
}

impl ChangeOptions {
    /// Changes from `slot` for `publications`, with the defaults.
    pub fn new(slot: impl Into<String>, publications: &[&str]) -> ChangeOptions {
        ChangeOptions {
            slot: slot.into(),
            publications: publications.iter().map(|p| (*p).to_owned()).collect(),
            create_slot: false,
            start: None,
            values: ValueFormat::Auto,
            decode: DecodeOptions::default(),
            policies: Policies::default(),
            flush_interval: Duration::from_secs(1),
            flush_rows: 1_000_000,
            catch_up: false,
            status_interval: Duration::from_secs(10),
            streaming: true,
            spill_dir: None,
            idle_checkpoints: false,
        }
    }

    /// Checkpoints while nothing comes, too (see
    /// [`idle_checkpoints`](Self::idle_checkpoints)).
    pub fn with_idle_checkpoints(mut self, on: bool) -> Self {
        self.idle_checkpoints = on;
        self
    }

    /// Create the slot when it does not exist.
    pub fn with_create_slot(mut self, create_slot: bool) -> Self {
        self.create_slot = create_slot;
        self
    }

    /// Start after `start` (when it is past the slot's confirmed position).
    pub fn with_start(mut self, start: Option<Lsn>) -> Self {
        self.start = start;
        self
    }

    /// Binary or text values.
    pub fn with_values(mut self, values: ValueFormat) -> Self {
        self.values = values;
        self
    }

    /// How batches are cut.
    pub fn with_decode(mut self, decode: DecodeOptions) -> Self {
        self.decode = decode;
        self
    }

    /// What to do where a value has no exact Arrow form.
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    /// A checkpoint at the first transaction boundary this long after the last.
    pub fn with_flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// A checkpoint at the first transaction boundary after this many rows.
    pub fn with_flush_rows(mut self, rows: u64) -> Self {
        self.flush_rows = rows;
        self
    }

    /// End once every change committed before the start is delivered.
    pub fn with_catch_up(mut self, catch_up: bool) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// Tell the slot the confirmed position at least this often.
    pub fn with_status_interval(mut self, interval: Duration) -> Self {
        self.status_interval = interval;
        self
    }

    /// Large transactions streamed before their commit (PostgreSQL 14+), or not.
    pub fn with_streaming(mut self, streaming: bool) -> Self {
        self.streaming = streaming;
        self
    }

    /// Where streamed transactions are set aside until their commit.
    pub fn with_spill_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.spill_dir = dir;
        self
    }
}

/// A table's schema.
#[derive(Debug, Clone)]
pub struct TableSchema {
    /// The table.
    pub table: TableName,
    /// Its relation OID on the server.
    pub oid: u32,
    /// The batches' schema: the table's columns, then `_op`, `_lsn`, `_commit_lsn`,
    /// `_commit_time`, `_xid`, `_unchanged` and `_old` (named by [`OP_COLUMN`](crate::OP_COLUMN)
    /// and the constants beside it).
    pub schema: SchemaRef,
    /// Whether it replaces an earlier schema of the same table in this stream.
    pub changed: bool,
    /// Where the change was announced.
    pub lsn: Lsn,
}

/// Rows of one table.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    /// The table.
    pub table: TableName,
    /// The rows, in the table's current schema.
    pub batch: RecordBatch,
}

/// What a [`ChangeStream`] delivers.
#[derive(Debug, Clone)]
pub enum ChangeEvent {
    /// A table's schema, before its first rows and again when it changed.
    Schema(TableSchema),
    /// Changed rows of one table, in commit order.
    Rows(ChangeBatch),
    /// Every change committed up to this position was in the events before: confirm it once
    /// they are durable.
    Checkpoint(Lsn),
}

/// The transaction being read.
#[derive(Debug, Clone, Copy)]
struct Transaction {
    commit_lsn: Lsn,
    commit_time: i64,
    xid: u32,
    /// Committed before the start position: its changes are skipped.
    skip: bool,
}

/// A running stream's positions, as [`ChangeStream::positions`] shares them.
#[derive(Debug)]
pub struct StreamPositions {
    received: std::sync::atomic::AtomicU64,
    confirmed: std::sync::atomic::AtomicU64,
    /// Microseconds since 2000-01-01 UTC; `i64::MIN`: none yet.
    committed_at: std::sync::atomic::AtomicI64,
}

impl StreamPositions {
    fn new(at: Lsn) -> StreamPositions {
        StreamPositions {
            received: at.0.into(),
            confirmed: at.0.into(),
            committed_at: i64::MIN.into(),
        }
    }

    /// The furthest WAL position the server said it has.
    pub fn received(&self) -> Lsn {
        Lsn(self.received.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The position confirmed to the slot: everything before it is the caller's for good.
    pub fn confirmed(&self) -> Lsn {
        Lsn(self.confirmed.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// When the last transaction delivered committed on the server (microseconds since
    /// 2000-01-01 UTC); `None` before the first.
    pub fn delivered_commit_time(&self) -> Option<i64> {
        let t = self.committed_at.load(std::sync::atomic::Ordering::Relaxed);
        (t != i64::MIN).then_some(t)
    }
}

/// A running change stream.
pub struct ChangeStream {
    stream: ReplicationStream<Box<Connection>>,
    catalog: Connection,
    parser: PgOutputParser,
    options: ChangeOptions,
    text_values: bool,
    relations: HashMap<u32, RelationDecoder>,
    txn: Option<Transaction>,
    events: VecDeque<ChangeEvent>,
    /// The end of the last transaction whose rows are buffered, not yet delivered.
    pending: Option<Lsn>,
    /// The end of the last transaction whose rows were all delivered.
    delivered: Lsn,
    /// The commit times (microseconds since 2000-01-01 UTC, as the server's) of the last
    /// transaction pending and of the last delivered.
    pending_time: Option<i64>,
    delivered_time: Option<i64>,
    /// The positions as other tasks read them while the stream runs.
    shared: std::sync::Arc<StreamPositions>,
    /// What the caller confirmed (or the server's own position where nothing was pending).
    confirmed: Lsn,
    /// The furthest WAL position seen.
    received: Lsn,
    /// Where the stream started (the slot's confirmed position or the start asked for):
    /// transactions committed before it are skipped.
    resume: Lsn,
    /// With `catch_up`: the server's WAL position when the stream started.
    target: Option<Lsn>,
    caught_up: bool,
    last_status: Instant,
    last_checkpoint: Instant,
    /// Their stop ends the stream at a transaction boundary; their progress hears each
    /// position confirmed.
    hooks: Hooks<'static, Lsn>,
    ended: bool,
    /// Rows since the last checkpoint.
    rows: u64,
    /// A checkpoint asked for at the next transaction boundary.
    checkpoint_asked: bool,
    /// A checkpoint asked for at the end of the transaction ending at this position (or the
    /// first past it).
    checkpoint_at: Option<Lsn>,
    /// Why values come as text when binary was possible.
    text_reason: Option<String>,
    /// Transactions streamed before their commit, set aside until it.
    streamed: Streamed,
    /// A committed streamed transaction being read again.
    replay: Option<Replaying>,
    /// Whether the server was asked to stream large transactions.
    streaming: bool,
}

/// A committed streamed transaction being delivered.
struct Replaying {
    txn: Transaction,
    end_lsn: Lsn,
    messages: Replay,
    parser: PgOutputParser,
}

impl std::fmt::Debug for ChangeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeStream")
            .field("slot", &self.options.slot)
            .field("confirmed", &self.confirmed)
            .finish_non_exhaustive()
    }
}

impl ChangeStream {
    /// Connects (a replication connection for the stream, a plain one for the catalog) and
    /// starts streaming.
    ///
    /// # Errors
    /// A missing slot (without `create_slot`) or publication, a slot of another plugin, a role
    /// without REPLICATION, `wal_level` not `logical`, binary values asked of a server before
    /// 14: each said so.
    pub async fn start(config: impl IntoConfig, options: ChangeOptions) -> Result<ChangeStream> {
        Self::start_with(config, options, Hooks::new()).await
    }

    /// As [`ChangeStream::start`], with hooks: their stop ends the stream at the next
    /// transaction boundary (after a last checkpoint), and their progress hears each position
    /// [confirmed](ChangeStream::confirm) to the server.
    ///
    /// # Errors
    /// As [`ChangeStream::start`].
    pub async fn start_with(
        config: impl IntoConfig,
        options: ChangeOptions,
        hooks: Hooks<'static, Lsn>,
    ) -> Result<ChangeStream> {
        let config = config.into_config()?;
        if options.publications.is_empty() {
            return Err(Error::usage(
                "changes need at least one publication (CREATE PUBLICATION name FOR TABLE ...)",
            ));
        }
        let mut catalog = Connection::connect(&config)
            .await
            .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
        let version = catalog.server_version_num();
        let text_values = match options.values {
            ValueFormat::Text => true,
            ValueFormat::Auto => version < 140_000,
            ValueFormat::Binary if version < 140_000 => {
                return Err(Error::usage(format!(
                    "binary change values need PostgreSQL 14 or later (the server is {}); \
                     ask for text values",
                    catalog.parameter("server_version").unwrap_or("older")
                )));
            }
            ValueFormat::Binary => false,
        };
        check_publications(&mut catalog, &options.publications).await?;
        // Auto: binary unless a published column has no binary decoder (the export casts such
        // a type to text on the server, which a replication stream cannot do).
        let mut text_reason = None;
        if options.values == ValueFormat::Auto && !text_values {
            let textual = text_only_columns(&mut catalog, &options).await?;
            if !textual.is_empty() {
                text_reason = Some(format!(
                    "values come as text: pgarrow has no binary decoder for {}",
                    textual.join(", ")
                ));
            }
        }
        let text_values = text_values || text_reason.is_some();
        let slot = slot_position(&mut catalog, &options.slot).await?;
        let mut repl_config: Config = config.clone();
        repl_config.replication = true;
        repl_config.read_only = false;
        let mut repl = Connection::connect(&repl_config).await.map_err(|e| {
            Error::from(ErrorKind::Connect(e)).context(
                "cannot open a replication connection (a role with the REPLICATION attribute \
                 and a pg_hba.conf line that admits it are needed)",
            )
        })?;
        let confirmed = match slot {
            Some(lsn) => lsn,
            None if options.create_slot => {
                let sql = format!(
                    "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput",
                    quote_ident(&options.slot)
                );
                let rows = repl.simple_query(&sql).await.map_err(|e| {
                    Error::from(e)
                        .context(format!("cannot create replication slot {:?}", options.slot))
                })?;
                rows.first()
                    .and_then(|r| r.get(1).cloned().flatten())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_default()
            }
            None => {
                return Err(Error::usage(format!(
                    "replication slot {:?} does not exist: create it with pgarrow export \
                     --replication-slot NAME --create-slot (which also exports the table as of the slot's start), or ask for it \
                     to be created here (--create-slot)",
                    options.slot
                )));
            }
        };
        let resume = options.start.unwrap_or_default().max(confirmed);
        let target = match options.catch_up {
            true => {
                let rows = catalog
                    .simple_query("SELECT pg_catalog.pg_current_wal_insert_lsn()::text")
                    .await?;
                let text = rows.first().and_then(|r| r.first().cloned().flatten());
                Some(
                    text.as_deref()
                        .unwrap_or("0/0")
                        .parse()
                        .map_err(Error::from)?,
                )
            }
            false => None,
        };
        let pubs = options
            .publications
            .iter()
            .map(|p| quote_ident(p))
            .collect::<Vec<_>>()
            .join(",");
        let binary = if text_values {
            String::new()
        } else {
            ", binary 'true'".to_owned()
        };
        let streaming = options.streaming && version >= 140_000;
        let (proto, streamed) = match streaming {
            true => ("2", ", streaming 'on'"),
            false => ("1", ""),
        };
        let command = format!(
            "START_REPLICATION SLOT {} LOGICAL {resume} (proto_version '{proto}', \
             publication_names {}{binary}{streamed})",
            quote_ident(&options.slot),
            quote_literal(&pubs)
        );
        let stream = ReplicationStream::start(Box::new(repl), &command)
            .await
            .map_err(|e| {
                Error::from(e).context(format!("cannot stream from slot {:?}", options.slot))
            })?;
        let now = Instant::now();
        Ok(ChangeStream {
            stream,
            catalog,
            parser: PgOutputParser::new(false),
            text_values,
            relations: HashMap::new(),
            txn: None,
            events: VecDeque::new(),
            pending: None,
            delivered: resume,
            pending_time: None,
            delivered_time: None,
            shared: std::sync::Arc::new(StreamPositions::new(resume)),
            confirmed: resume,
            received: resume,
            resume,
            target,
            caught_up: false,
            last_status: now,
            last_checkpoint: now,
            hooks,
            ended: false,
            rows: 0,
            checkpoint_asked: false,
            checkpoint_at: None,
            text_reason,
            streamed: Streamed::new(options.spill_dir.as_deref()),
            replay: None,
            streaming,
            options,
        })
    }

    /// Where the stream started: changes committed after this position come.
    pub fn started_at(&self) -> Lsn {
        self.resume
    }

    /// Whether values arrive as text (every column text) rather than binary.
    pub fn text_values(&self) -> bool {
        self.text_values
    }

    /// Why values come as text on a server that could send binary ([`ValueFormat::Auto`] and
    /// a published column without a binary decoder), naming the columns.
    pub fn text_reason(&self) -> Option<&str> {
        self.text_reason.as_deref()
    }

    /// Whether the server streams large transactions before their commit.
    pub fn streaming(&self) -> bool {
        self.streaming
    }

    /// What transactions streamed before their commit cost so far.
    pub fn streamed(&self) -> StreamedStats {
        self.streamed.stats()
    }

    /// The position confirmed last.
    pub fn confirmed(&self) -> Lsn {
        self.confirmed
    }

    /// The position of the last checkpoint delivered.
    pub fn delivered(&self) -> Lsn {
        self.delivered
    }

    /// The stream's positions, shared: another task (a metrics endpoint) reads them as they
    /// move, while the stream runs.
    pub fn positions(&self) -> std::sync::Arc<StreamPositions> {
        self.shared.clone()
    }

    /// Publishes the positions to [`positions`](Self::positions)' readers.
    fn share(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.shared.received.store(self.received.0, Relaxed);
        self.shared.confirmed.store(self.confirmed.0, Relaxed);
        self.shared
            .committed_at
            .store(self.delivered_time.unwrap_or(i64::MIN), Relaxed);
    }

    /// When the last transaction whose rows were all delivered committed on the server (a
    /// time as the server's, microseconds since 2000-01-01 UTC); `None` before the first.
    pub fn delivered_commit_time(&self) -> Option<i64> {
        self.delivered_time
    }

    /// The furthest WAL position the server said it has (its keepalives' and data's): how far
    /// behind the stream is, against [`delivered`](Self::delivered).
    pub fn server_lsn(&self) -> Lsn {
        self.received
    }

    /// The next event; `None` once the stream ended (stopped, caught up, or the server ended
    /// it), after a last checkpoint.
    ///
    /// # Errors
    /// The server's error, a broken connection, a value that cannot be decoded (naming the
    /// table, column, row and LSN).
    pub async fn next_event(&mut self) -> Result<Option<ChangeEvent>> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            if self.txn.is_none() {
                if self.hooks.stop().is_stopped() || self.caught_up {
                    self.checkpoint()?;
                    self.ended = true;
                    continue;
                }
                if self.pending.is_some()
                    && (self.checkpoint_asked
                        || self.rows >= self.options.flush_rows
                        || self.last_checkpoint.elapsed() >= self.options.flush_interval)
                {
                    self.checkpoint()?;
                    continue;
                }
                if self.idle_checkpoint_due() {
                    // Everything before the start was skipped: delivered, as far as it goes.
                    self.delivered = self.delivered.max(self.resume);
                    self.last_checkpoint = Instant::now();
                    self.events
                        .push_back(ChangeEvent::Checkpoint(self.delivered));
                    continue;
                }
            }
            if self.last_status.elapsed() >= self.options.status_interval {
                self.send_status(false).await?;
            }
            if self.replay.is_some() {
                self.replay_step().await?;
                continue;
            }
            let wait = self.wait_time();
            let stop = self.hooks.stop().clone();
            let message: Option<bytes::Bytes> = tokio::select! {
                m = self.stream.next() => m?,
                () = tokio::time::sleep(wait) => {
                    // Idle: a catch-up asks where the server is.
                    if self.target.is_some() && self.txn.is_none() {
                        self.send_status(true).await?;
                    }
                    continue;
                }
                () = stop.stopped(), if self.txn.is_none() => continue,
            };
            let Some(message) = message else {
                // The server ended the stream.
                self.checkpoint()?;
                self.ended = true;
                continue;
            };
            self.handle(&message).await?;
        }
    }

    /// Whether an idle checkpoint is due: asked for, nothing pending or being read, and the
    /// flush interval (at least a second) past since the last checkpoint.
    fn idle_checkpoint_due(&self) -> bool {
        self.options.idle_checkpoints
            && self.pending.is_none()
            && self.replay.is_none()
            && self.txn.is_none()
            && self.last_checkpoint.elapsed() >= self.idle_interval()
    }

    fn idle_interval(&self) -> Duration {
        self.options.flush_interval.max(Duration::from_secs(1))
    }

    /// How long to wait for the server before a checkpoint or a status is due.
    fn wait_time(&self) -> Duration {
        let status = self
            .options
            .status_interval
            .saturating_sub(self.last_status.elapsed());
        // A checkpoint waits for the transaction under way to end: its messages, not a timer.
        let flush = match (&self.pending, &self.txn) {
            (Some(_), None) => self
                .options
                .flush_interval
                .saturating_sub(self.last_checkpoint.elapsed()),
            (None, None) if self.options.idle_checkpoints => self
                .idle_interval()
                .saturating_sub(self.last_checkpoint.elapsed()),
            _ => Duration::MAX,
        };
        let idle = match self.target {
            Some(_) => Duration::from_millis(200),
            None => Duration::MAX,
        };
        status.min(flush).min(idle).max(Duration::from_millis(1))
    }

    /// Confirms that everything up to `lsn` (a checkpoint's) is durable: the slot's
    /// `confirmed_flush_lsn` follows.
    ///
    /// # Errors
    /// A position past the last checkpoint delivered; a broken connection.
    pub async fn confirm(&mut self, lsn: Lsn) -> Result<()> {
        if lsn > self.delivered {
            return Err(Error::usage(format!(
                "cannot confirm {lsn}: the last checkpoint delivered is {}",
                self.delivered
            )));
        }
        if lsn > self.confirmed {
            self.confirmed = lsn;
            self.share();
            self.send_status(false).await?;
            self.hooks.report(&lsn);
        }
        Ok(())
    }

    /// Ends the stream (CopyDone) after telling the slot the position confirmed, and closes the
    /// connections.
    ///
    /// # Errors
    /// A broken connection.
    pub async fn close(mut self) -> Result<()> {
        self.send_status(false).await?;
        self.stream.finish().await?;
        let _ = self.catalog.close().await;
        Ok(())
    }

    async fn send_status(&mut self, reply: bool) -> Result<()> {
        let now = pg_now();
        let flushed = self.confirmed;
        self.stream
            .send_status(self.received.max(flushed), flushed, flushed, now, reply)
            .await?;
        self.last_status = Instant::now();
        Ok(())
    }

    /// Delivers every buffered row, then the checkpoint of the last transaction they end.
    fn checkpoint(&mut self) -> Result<()> {
        let mut oids: Vec<u32> = self.relations.keys().copied().collect();
        oids.sort_unstable();
        for oid in oids {
            self.flush_relation(oid)?;
        }
        if let Some(lsn) = self.pending.take() {
            self.delivered = lsn;
            self.delivered_time = self.pending_time.take().or(self.delivered_time);
            self.share();
            self.events.push_back(ChangeEvent::Checkpoint(lsn));
        }
        self.last_checkpoint = Instant::now();
        self.rows = 0;
        self.checkpoint_asked = false;
        Ok(())
    }

    /// Asks for a checkpoint at the next transaction boundary (a consumer whose buffers are
    /// full, say).
    pub fn request_checkpoint(&mut self) {
        self.checkpoint_asked = true;
    }

    /// Asks for a checkpoint at the end of the transaction that ends at `lsn`, or of the first
    /// that ends past it, whatever the flush interval and rows (a consumer bringing what it
    /// writes to a position it wrote before, say).
    pub fn request_checkpoint_at(&mut self, lsn: Lsn) {
        self.checkpoint_at = Some(lsn);
    }

    fn flush_relation(&mut self, oid: u32) -> Result<()> {
        if let Some(d) = self.relations.get_mut(&oid)
            && let Some(batch) = d.flush()?
        {
            self.events.push_back(ChangeEvent::Rows(ChangeBatch {
                table: d.table.clone(),
                batch,
            }));
        }
        Ok(())
    }

    async fn handle(&mut self, body: &[u8]) -> Result<()> {
        match parse_stream_message(body)? {
            StreamMessage::Keepalive { wal_end, reply, .. } => {
                self.received = self.received.max(wal_end);
                if self.txn.is_none() {
                    // Nothing of ours lies before the server's position: it may move on.
                    let buffered = self.relations.values().any(|d| d.rows() > 0);
                    if self.pending.is_none() && !buffered && self.confirmed == self.delivered {
                        self.delivered = self.delivered.max(wal_end);
                        self.confirmed = self.delivered;
                    }
                    self.share();
                    if let Some(target) = self.target
                        && wal_end >= target
                    {
                        self.caught_up = true;
                    }
                }
                if reply {
                    self.send_status(false).await?;
                }
                Ok(())
            }
            StreamMessage::XLogData { start, data, .. } => {
                self.received = self.received.max(start);
                self.share();
                let message = self.parser.parse(data)?;
                match message {
                    Message::StreamStart { xid, first_segment } => {
                        if self.txn.is_some() {
                            return Err(Error::unexpected(
                                "a streamed transaction's part inside another transaction",
                            ));
                        }
                        self.streamed.start(xid, first_segment)
                    }
                    Message::StreamStop => {
                        self.streamed.stop();
                        Ok(())
                    }
                    Message::StreamAbort { xid, subxid, .. } => self.streamed.abort(xid, subxid),
                    Message::StreamCommit {
                        xid,
                        commit_lsn,
                        end_lsn,
                        commit_time,
                        ..
                    } => self.stream_commit(xid, commit_lsn, end_lsn, commit_time),
                    message if self.streamed.in_part() => {
                        self.streamed.push(start, message_xid(&message), data)
                    }
                    message => self.apply(start, message).await,
                }
            }
        }
    }

    /// A streamed transaction committed: its messages are delivered from the next step on, as
    /// one transaction committed at `commit_lsn`.
    fn stream_commit(&mut self, xid: u32, commit_lsn: Lsn, end_lsn: Lsn, time: i64) -> Result<()> {
        if self.txn.is_some() {
            return Err(Error::unexpected(
                "a streamed transaction committed inside another transaction",
            ));
        }
        let txn = Transaction {
            commit_lsn,
            commit_time: time,
            xid,
            skip: commit_lsn < self.resume,
        };
        match self.streamed.commit(xid)? {
            Some(messages) => {
                self.txn = Some(txn);
                self.replay = Some(Replaying {
                    txn,
                    end_lsn,
                    messages,
                    parser: PgOutputParser::in_stream_part(false),
                });
            }
            None => self.end_transaction(txn, end_lsn),
        }
        Ok(())
    }

    /// Delivers a committed streamed transaction's messages until an event is ready or they
    /// end (then the transaction ends as a plain one does at its Commit).
    async fn replay_step(&mut self) -> Result<()> {
        let Some(mut replay) = self.replay.take() else {
            return Ok(());
        };
        while self.events.is_empty() {
            let Some((lsn, data)) = replay.messages.next_message()? else {
                self.txn = None;
                self.end_transaction(replay.txn, replay.end_lsn);
                return Ok(());
            };
            let message = replay.parser.parse(data)?;
            self.apply(lsn, message).await?;
        }
        self.replay = Some(replay);
        Ok(())
    }

    /// A transaction ended at `end_lsn`: its rows are pending a checkpoint.
    fn end_transaction(&mut self, txn: Transaction, end_lsn: Lsn) {
        if !txn.skip {
            self.pending = Some(end_lsn);
            self.pending_time = Some(txn.commit_time);
            if self.checkpoint_at.is_some_and(|at| end_lsn >= at) {
                self.checkpoint_at = None;
                self.checkpoint_asked = true;
            }
        }
        if let Some(target) = self.target
            && end_lsn >= target
        {
            self.caught_up = true;
        }
    }

    async fn apply(&mut self, lsn: Lsn, message: Message<'_>) -> Result<()> {
        let in_txn = |txn: Option<Transaction>| {
            txn.ok_or_else(|| Error::unexpected("a change outside a transaction"))
        };
        match message {
            Message::Begin {
                final_lsn,
                commit_time,
                xid,
            } => {
                self.txn = Some(Transaction {
                    commit_lsn: final_lsn,
                    commit_time,
                    xid,
                    skip: final_lsn < self.resume,
                });
            }
            Message::Commit { end_lsn, .. } => {
                let txn = in_txn(self.txn.take())?;
                self.end_transaction(txn, end_lsn);
            }
            Message::Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
                ..
            } => {
                // pgoutput sends a Relation message without a WAL position: it is announced at
                // its transaction's commit.
                let at = match self.txn {
                    Some(t) => t.commit_lsn,
                    None => self.received,
                };
                self.relation(at, oid, namespace, name, replica_identity, &columns)
                    .await?;
            }
            Message::Insert { relation, new, .. } => {
                let txn = in_txn(self.txn)?;
                if !txn.skip {
                    self.change(relation, Op::Insert, lsn, &txn, Some(&new), None)?;
                }
            }
            Message::Update {
                relation, old, new, ..
            } => {
                let txn = in_txn(self.txn)?;
                if !txn.skip {
                    let old = old.as_ref().map(|(k, t)| (*k, t));
                    self.change(relation, Op::Update, lsn, &txn, Some(&new), old)?;
                }
            }
            Message::Delete { relation, old, .. } => {
                let txn = in_txn(self.txn)?;
                if !txn.skip {
                    self.change(relation, Op::Delete, lsn, &txn, Some(&old.1), None)?;
                }
            }
            Message::Truncate { relations, .. } => {
                let txn = in_txn(self.txn)?;
                if !txn.skip {
                    for relation in relations {
                        self.change(relation, Op::Truncate, lsn, &txn, None, None)?;
                    }
                }
            }
            Message::Origin { .. } | Message::Type { .. } | Message::LogicalMessage { .. } => {}
            Message::StreamStart { .. }
            | Message::StreamStop
            | Message::StreamCommit { .. }
            | Message::StreamAbort { .. } => {
                return Err(Error::unexpected(
                    "a streamed transaction's message inside a transaction",
                ));
            }
            Message::TwoPhase { .. } => {
                return Err(Error::unexpected(
                    "the server sent a two-phase transaction, which was not asked for",
                ));
            }
        }
        Ok(())
    }

    fn change(
        &mut self,
        relation: u32,
        op: Op,
        lsn: Lsn,
        txn: &Transaction,
        row: Option<&pgarrow_protocol::replication::Tuple<'_>>,
        old: Option<(OldRow, &pgarrow_protocol::replication::Tuple<'_>)>,
    ) -> Result<()> {
        let Some(decoder) = self.relations.get_mut(&relation) else {
            return Err(Error::unexpected(format!(
                "a change to relation {relation} before its Relation message"
            )));
        };
        let at = ChangeAt {
            lsn,
            commit_lsn: txn.commit_lsn,
            commit_time: txn.commit_time,
            xid: txn.xid,
        };
        decoder.push(op, &at, row, old)?;
        self.rows += 1;
        if decoder.is_full() {
            self.flush_relation(relation)?;
        }
        Ok(())
    }

    async fn relation(
        &mut self,
        lsn: Lsn,
        oid: u32,
        namespace: &str,
        name: &str,
        replica_identity: u8,
        columns: &[RelationColumn<'_>],
    ) -> Result<()> {
        let schema_name = if namespace.is_empty() {
            "pg_catalog"
        } else {
            namespace
        };
        let table = TableName::new(Some(schema_name), name);
        let (plans, defaults) = plan_relation(
            &mut self.catalog,
            oid,
            &table,
            columns,
            self.text_values,
            &self.options.policies,
        )
        .await?;
        let key: Vec<&str> = columns.iter().filter(|c| c.key).map(|c| c.name).collect();
        let identity = match replica_identity {
            b'd' => "default",
            b'n' => "nothing",
            b'f' => "full",
            b'i' => "index",
            _ => "unknown",
        };
        let metadata = vec![
            (decode::META_TABLE.to_owned(), table.quoted()),
            (decode::META_RELATION_OID.to_owned(), oid.to_string()),
            (
                decode::META_REPLICA_IDENTITY.to_owned(),
                identity.to_owned(),
            ),
            (
                decode::META_VALUES.to_owned(),
                if self.text_values { "text" } else { "binary" }.to_owned(),
            ),
            (
                decode::META_KEY.to_owned(),
                serde_json::to_string(&key).unwrap_or_default(),
            ),
            (
                decode::META_DEFAULTS.to_owned(),
                serde_json::to_string(&defaults).unwrap_or_default(),
            ),
        ];
        let decoder = RelationDecoder::new(
            table.clone(),
            plans,
            self.text_values,
            metadata,
            self.options.decode,
            self.options.policies,
        )?;
        let changed = match self.relations.get(&oid) {
            Some(old) if old.schema() == decoder.schema() => return Ok(()),
            Some(_) => {
                self.flush_relation(oid)?;
                true
            }
            None => false,
        };
        self.events.push_back(ChangeEvent::Schema(TableSchema {
            table,
            oid,
            schema: decoder.schema(),
            changed,
            lsn,
        }));
        self.relations.insert(oid, decoder);
        Ok(())
    }
}

/// The (sub)transaction a message of a streamed part belongs to.
fn message_xid(message: &Message<'_>) -> Option<u32> {
    match message {
        Message::Relation { xid, .. }
        | Message::Type { xid, .. }
        | Message::Insert { xid, .. }
        | Message::Update { xid, .. }
        | Message::Delete { xid, .. }
        | Message::Truncate { xid, .. }
        | Message::LogicalMessage { xid, .. } => *xid,
        _ => None,
    }
}

/// Plans a relation's columns as the export would (its catalog, its constraints), each decoded
/// from its binary send format; or all text. Also the columns with a default (or a missing
/// value: what the rows before an added column take).
async fn plan_relation(
    conn: &mut Connection,
    oid: u32,
    table: &TableName,
    columns: &[RelationColumn<'_>],
    text_values: bool,
    policies: &Policies,
) -> Result<(Vec<ColumnMapping>, Vec<String>)> {
    let rows = conn
        .simple_query(&format!(
            "SELECT attname, attnum::text, \
             (atthasmissing OR atthasdef OR attidentity <> '')::text \
             FROM pg_catalog.pg_attribute WHERE attrelid = {oid} AND attnum > 0 \
             AND NOT attisdropped"
        ))
        .await?;
    let defaults: Vec<String> = rows
        .iter()
        .filter(|r| r.get(2).and_then(|v| v.as_deref()) == Some("true"))
        .filter_map(|r| r.first().cloned().flatten())
        .filter(|name| columns.iter().any(|c| c.name == name))
        .collect();
    let attnums: HashMap<String, i16> = rows
        .into_iter()
        .filter_map(|r| match r.as_slice() {
            [Some(name), Some(num), _] => num.parse().ok().map(|n| (name.clone(), n)),
            _ => None,
        })
        .collect();
    let fields: Vec<FieldDescription> = columns
        .iter()
        .map(|c| FieldDescription {
            name: c.name.to_owned(),
            table_oid: oid,
            column_id: attnums.get(c.name).copied().unwrap_or(0),
            type_oid: c.type_oid,
            type_modifier: c.type_modifier,
            type_size: 0,
        })
        .collect();
    let plans = pgarrow::column_mappings(conn, &fields, Some(table), policies).await?;
    let plans = plans
        .into_iter()
        .map(|plan| match plan.cast {
            _ if text_values => Ok(ColumnMapping {
                constraints: plan.constraints,
                ..ColumnMapping::text(plan.column, policies)
            }),
            None => Ok(plan),
            // A type pgarrow renders from its binary form as the server's text.
            Some(_) => plan.from_binary_as_text().ok_or_else(|| {
                Error::usage(format!(
                    "column {:?} of {} ({}): pgarrow has no decoder for its binary form (or a \
                     policy asks for its text); stream text values instead",
                    plan.column.name,
                    table.quoted(),
                    plan.column.type_name
                ))
            }),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((plans, defaults))
}

/// The published columns (`table.column (type)`) that binary values cannot give: no binary
/// decoder for their type (nor a rendering of its binary form as its text), or a policy that
/// asks for their text.
async fn text_only_columns(conn: &mut Connection, options: &ChangeOptions) -> Result<Vec<String>> {
    let pubs = options
        .publications
        .iter()
        .map(|p| quote_literal(p))
        .collect::<Vec<_>>()
        .join(",");
    let rows = conn
        .simple_query(&format!(
            "SELECT DISTINCT c.oid::text, n.nspname, c.relname, a.attname, a.attnum::text, \
             a.atttypid::text, a.atttypmod::text \
             FROM pg_catalog.pg_publication_tables pt \
             JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname \
             JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
               AND NOT a.attisdropped \
             WHERE pt.pubname IN ({pubs}) ORDER BY 1, 5"
        ))
        .await?;
    let mut fields = Vec::with_capacity(rows.len());
    let mut names = Vec::with_capacity(rows.len());
    for row in &rows {
        let [
            Some(rel),
            Some(schema),
            Some(table),
            Some(att),
            Some(num),
            Some(ty),
            Some(typmod),
        ] = row.as_slice()
        else {
            return Err(Error::unexpected(
                "a published column without its catalog entry",
            ));
        };
        let bad = || Error::unexpected(format!("a catalog row that does not parse: {row:?}"));
        fields.push(FieldDescription {
            name: att.clone(),
            table_oid: rel.parse().map_err(|_| bad())?,
            column_id: num.parse().map_err(|_| bad())?,
            type_oid: ty.parse().map_err(|_| bad())?,
            type_modifier: typmod.parse().map_err(|_| bad())?,
            type_size: 0,
        });
        names.push(format!("{}.{}", quote_ident(schema), quote_ident(table)));
    }
    if fields.is_empty() {
        return Ok(Vec::new());
    }
    let plans = pgarrow::column_mappings(conn, &fields, None, &options.policies).await?;
    Ok(plans
        .iter()
        .zip(&names)
        .filter(|(plan, _)| plan.cast.is_some() && plan.from_binary_as_text().is_none())
        .map(|(plan, table)| {
            format!(
                "{table}.{} ({})",
                quote_ident(&plan.column.name),
                plan.column.type_name
            )
        })
        .collect())
}

/// Fails naming the publications that do not exist.
async fn check_publications(conn: &mut Connection, names: &[String]) -> Result<()> {
    let list = names
        .iter()
        .map(|n| quote_literal(n))
        .collect::<Vec<_>>()
        .join(",");
    let rows = conn
        .simple_query(&format!(
            "SELECT pubname FROM pg_catalog.pg_publication WHERE pubname IN ({list})"
        ))
        .await?;
    let found: Vec<String> = rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    let missing: Vec<&String> = names.iter().filter(|n| !found.contains(n)).collect();
    if !missing.is_empty() {
        return Err(Error::usage(format!(
            "no publication {missing:?} in this database (CREATE PUBLICATION name FOR TABLE \
             ... or FOR ALL TABLES)"
        )));
    }
    Ok(())
}

/// The slot's confirmed position, `None` when there is no such slot; a slot of another plugin
/// or database is refused.
async fn slot_position(conn: &mut Connection, slot: &str) -> Result<Option<Lsn>> {
    let rows = conn
        .simple_query(&format!(
            "SELECT plugin, database = pg_catalog.current_database(), \
             coalesce(confirmed_flush_lsn, '0/0')::text FROM pg_catalog.pg_replication_slots \
             WHERE slot_name = {}",
            quote_literal(slot)
        ))
        .await?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    match row.as_slice() {
        [Some(plugin), _, _] if plugin != "pgoutput" => Err(Error::usage(format!(
            "replication slot {slot:?} uses output plugin {plugin:?}; changes read pgoutput \
             slots"
        ))),
        [_, Some(same), _] if same != "t" => Err(Error::usage(format!(
            "replication slot {slot:?} belongs to another database"
        ))),
        [_, _, Some(lsn)] => Ok(Some(lsn.parse()?)),
        _ => Err(Error::usage(format!(
            "replication slot {slot:?} is not a logical slot"
        ))),
    }
}

/// Now, in microseconds since 2000-01-01 UTC.
fn pg_now() -> i64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    unix - pgarrow_decode::wire::PG_EPOCH_US
}

#[cfg(test)]
mod tests {
    use super::ValueFormat;

    #[test]
    fn value_formats_read_their_own_names_and_refuse_others() {
        for format in [ValueFormat::Auto, ValueFormat::Binary, ValueFormat::Text] {
            assert_eq!(format.to_string().parse::<ValueFormat>().unwrap(), format);
        }
        let e = "hex".parse::<ValueFormat>().unwrap_err();
        assert_eq!(e.category(), pgarrow::Category::Usage);
        assert!(e.to_string().contains("auto, binary or text"), "{e}");
        assert!(e.to_string().contains("\"hex\""), "{e}");
    }
}
